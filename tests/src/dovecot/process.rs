//! Processes, identities and ports of the test server.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Identity, Ports, LISTEN_IP, PACKAGES};
use crate::{run_with_deadline, DEADLINE, TEST_COMMAND};

/// The path of a Dovecot program, or a test failure naming the packages.
pub(super) fn find_program(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // dovecot is in /usr/sbin, often not in a normal user's PATH.
    for extra in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let candidate = dir.join(name);
        let executable = fs::metadata(&candidate)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if executable {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed: the Dovecot tests need the Debian packages \
         {PACKAGES} (`sudo apt-get install {PACKAGES}`). Run `{TEST_COMMAND}`, \
         which installs every package the tests need and then runs them."
    );
}

impl Identity {
    /// Who we are, and who the mailboxes will belong to.
    pub(super) fn current() -> Identity {
        let uid: u32 = id_of(&["-u"]).parse().expect("`id -u` prints a number");
        if uid == 0 {
            // Dovecot refuses uid 0 for mail ("userdb returned 0 as uid").
            let parse = |s: String| -> u32 {
                s.parse()
                    .unwrap_or_else(|_| panic!("`id nobody` printed `{s}`"))
            };
            Identity {
                root: true,
                user: "root".into(),
                group: "root".into(),
                mail_uid: parse(id_of(&["-u", "nobody"])),
                mail_gid: parse(id_of(&["-g", "nobody"])),
            }
        } else {
            let gid: u32 = id_of(&["-g"]).parse().expect("`id -g` prints a number");
            Identity {
                root: false,
                user: id_of(&["-un"]),
                group: id_of(&["-gn"]),
                mail_uid: uid,
                mail_gid: gid,
            }
        }
    }
}

/// The output of `id <args>`, trimmed.
fn id_of(args: &[&str]) -> String {
    let out = run_with_deadline(Command::new("id").args(args), None, DEADLINE);
    assert!(
        out.status.success(),
        "`id {}` failed: {} (Dovecot needs the current user and group to have names)",
        args.join(" "),
        crate::text(&out.stderr)
    );
    crate::text(&out.stdout).trim().to_owned()
}

/// Send a signal to every process in a group. False if there was none.
pub(super) fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", &format!("kill -s {signal} -- -{pgid} 2>/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether any process of the group is still there.
pub(super) fn group_alive(pgid: u32) -> bool {
    signal_group(pgid, "0")
}

/// Free loopback ports for the listeners: bound together (so they differ)
/// and released for Dovecot. Another process may take one meanwhile;
/// `start` then tries again with new ones.
pub(super) fn free_ports(tls: bool) -> Ports {
    let bind = || TcpListener::bind((LISTEN_IP, 0)).expect("bind a free loopback port");
    let held: Vec<TcpListener> = (0..5).map(|_| bind()).collect();
    let port = |i: usize| {
        held[i]
            .local_addr()
            .expect("a bound socket has an address")
            .port()
    };
    Ports {
        imap: port(0),
        imaps: tls.then(|| port(1)),
        pop3: port(2),
        pop3s: tls.then(|| port(3)),
        lmtp: port(4),
    }
}

/// A TCP connection to a loopback port.
pub(super) fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((LISTEN_IP, port)), timeout)
}

/// Whether the server on `port` sends a greeting starting with `prefix`.
pub(super) fn greets(port: u16, prefix: &[u8]) -> bool {
    let Ok(stream) = connect(port, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = Vec::new();
    let _ = BufReader::new(stream).read_until(b'\n', &mut line);
    line.starts_with(prefix)
}

/// Sleep until the wall clock enters the next second (plus a margin).
pub(super) fn wait_for_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    thread::sleep(Duration::from_secs(1) - into + Duration::from_millis(50));
}
