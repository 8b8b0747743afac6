//! # A disposable Postfix per test
//!
//! [`Mta::start`] runs the system's Postfix (Debian `postfix`) with a
//! configuration of its own in a temporary directory: its own
//! `config_directory`, `queue_directory`, `data_directory` and log file, and
//! three submission listeners on free loopback ports:
//!
//! - [`Mta::submissions_port`]: implicit TLS (RFC 8314, like port 465);
//! - [`Mta::submission_port`]: STARTTLS required before anything else
//!   (like port 587);
//! - [`Mta::plain_port`]: no TLS offered at all, AUTH in clear text: the
//!   server a client configured for STARTTLS must refuse to use.
//!
//! All three require AUTH, checked against the test [`Dovecot`]'s users
//! through Dovecot's SASL socket (the Dovecot must have been started with
//! [`dovecot_options`]), and deliver the domains given to [`Mta::start`]
//! into that Dovecot over LMTP, so a message sent through facteur can be
//! seen arriving over IMAP. Recipients not listed are refused with
//! `550 5.1.1` (a `virtual_mailbox_maps` of the users), which gives tests a
//! real refused recipient. The certificate is the Dovecot's, from the test
//! CA.
//!
//! Postfix's `master` must start as root (it drops to the `postfix` user
//! for everything else), so these tests need root, as CI has; a normal user
//! gets a test failure saying so. Nothing in `/etc/postfix` is read or
//! changed, except the `postfix` user and `postdrop` group the package
//! created. Postfix is stopped on drop: its process group gets SIGTERM,
//! then SIGKILL if it lingers.
//!
//! OpenSMTPD was not chosen: its spool directory and control socket are
//! compiled in (`/var/spool/smtpd`, `/var/run/smtpd.sock`), so only one can
//! run per machine, while tests run in parallel.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::dovecot::{Dovecot, DovecotOptions};
use crate::{running_as_root, DEADLINE, TEST_COMMAND};

/// The Debian package of the MTA.
pub const PACKAGE: &str = "postfix";

/// The address every listener binds to.
pub const LISTEN_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The host name clients use (in the test certificate).
pub const HOST: &str = "localhost";

/// Name of the SASL socket Dovecot offers Postfix, in Dovecot's `base_dir`.
const AUTH_SOCKET: &str = "auth-mta";

/// How long Postfix gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

const POLL: Duration = Duration::from_millis(20);

/// Postfix's `master` and the directory it lives in.
const MASTER: &str = "/usr/lib/postfix/sbin/master";

/// `options` with what the MTA needs from Dovecot: a SASL socket Postfix's
/// `smtpd` (user `postfix`) may use.
pub fn dovecot_options(mut options: DovecotOptions) -> DovecotOptions {
    let _ = write!(
        options.extra_config,
        "\n# For the test MTA (tests/src/mta.rs): SASL for Postfix.\n\
         service auth {{\n  unix_listener {AUTH_SOCKET} {{\n    mode = 0666\n  }}\n}}\n"
    );
    options
}

/// The ports a [`Mta`] listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Implicit TLS.
    pub submissions: u16,
    /// STARTTLS required.
    pub submission: u16,
    /// No TLS at all.
    pub plain: u16,
}

/// A running private Postfix.
pub struct Mta {
    /// Configuration, queue, data and log; removed on drop, after the stop.
    dir: TempDir,
    ports: Ports,
    /// The master, leader of its own process group; taken by drop.
    master: Option<Child>,
}

impl std::fmt::Debug for Mta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mta")
            .field("dir", &self.dir.path())
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

fn free_ports() -> Ports {
    let held: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind((LISTEN_IP, 0)).expect("bind a free loopback port"))
        .collect();
    let port = |i: usize| held[i].local_addr().expect("a bound address").port();
    Ports {
        submissions: port(0),
        submission: port(1),
        plain: port(2),
    }
}

/// uid and gid of a system user, with `id`.
fn ids(user: &str) -> (u32, u32) {
    let get = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `id {flag} {user}`: {e}"));
        crate::text(&out.stdout).trim().parse().unwrap_or_else(|_| {
            panic!(
                "there is no `{user}` user: install the Debian package `{PACKAGE}` \
                 (`apt-get install {PACKAGE}`) or run `{TEST_COMMAND}`"
            )
        })
    };
    (get("-u"), get("-g"))
}

/// The gid of a group, with `getent`.
fn gid(group: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .unwrap_or_else(|e| panic!("cannot run getent: {e}"));
    crate::text(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!("there is no `{group}` group: reinstall the Debian package `{PACKAGE}`")
        })
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

impl Mta {
    /// Start Postfix delivering `users` (addresses, each a user of
    /// `dovecot`) into `dovecot`, and wait until every listener answers.
    /// The domains it delivers are those of `users`.
    pub fn start(dovecot: &Dovecot, users: &[&str]) -> Mta {
        assert!(
            running_as_root(),
            "the test MTA (Postfix) must start as root: its master process binds \
             and then drops to the `postfix` user. Run the tests as root (CI does), \
             for example with `sudo -E {TEST_COMMAND}`"
        );
        assert!(
            Path::new(MASTER).exists(),
            "Postfix is not installed: install the Debian package `{PACKAGE}` \
             (`apt-get install {PACKAGE}`), or run `{TEST_COMMAND}`"
        );
        let auth_socket = dovecot.dir().join("run").join(AUTH_SOCKET);
        assert!(
            auth_socket.exists(),
            "Dovecot has no SASL socket for the MTA at {}: start it with \
             facteur_tests::mta::dovecot_options(…)",
            auth_socket.display()
        );
        let (postfix_uid, postfix_gid) = ids("postfix");
        let postdrop = gid("postdrop");

        let dir = tempfile::Builder::new()
            .prefix("facteur-postfix-")
            .tempdir_in("/tmp")
            .expect("create a temporary directory for Postfix");
        let root = dir.path().to_path_buf();
        chmod(&root, 0o755);
        let conf = root.join("conf");
        let queue = root.join("queue");
        let data = root.join("data");
        for d in [&conf, &queue, &data] {
            fs::create_dir_all(d).expect("create a Postfix directory");
        }
        chmod(&queue, 0o755);
        chown(&data, postfix_uid, postfix_gid);
        chmod(&data, 0o700);
        for sub in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            let p = queue.join(sub);
            fs::create_dir_all(&p).expect("create a queue directory");
            chown(&p, postfix_uid, 0);
            chmod(&p, 0o700);
        }
        fs::create_dir_all(queue.join("pid")).expect("create queue/pid");
        chmod(&queue.join("pid"), 0o755);
        for (sub, mode) in [("maildrop", 0o730), ("public", 0o710)] {
            let p = queue.join(sub);
            fs::create_dir_all(&p).expect("create a queue directory");
            chown(&p, postfix_uid, postdrop);
            chmod(&p, mode);
        }
        // The server certificate: the Dovecot's (from the test CA, valid for
        // localhost and 127.0.0.1). Postfix reads it as root before it drops
        // privileges.
        let pair = dovecot
            .server_cert()
            .expect("the Dovecot for the MTA must run with TLS");
        fs::write(conf.join("server.pem"), &pair.cert_pem).expect("write server.pem");
        fs::write(conf.join("server.key"), &pair.key_pem).expect("write server.key");
        chmod(&conf.join("server.key"), 0o600);
        let mut vmailbox = String::new();
        let mut domains: Vec<String> = Vec::new();
        for user in users {
            let _ = writeln!(vmailbox, "{} ok", user.to_ascii_lowercase());
            let domain = user
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .expect("MTA users are addresses");
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        fs::write(conf.join("vmailbox"), vmailbox).expect("write vmailbox");

        let mut mta = Mta {
            dir,
            ports: Ports {
                submissions: 0,
                submission: 0,
                plain: 0,
            },
            master: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            mta.ports = free_ports();
            let main_cf = main_cf(&root, &domains, dovecot.lmtp_port(), &auth_socket);
            fs::write(conf.join("main.cf"), main_cf).expect("write main.cf");
            fs::write(conf.join("master.cf"), master_cf(mta.ports)).expect("write master.cf");
            match mta.spawn_and_wait() {
                Ok(()) => return mta,
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("Postfix did not start:\n{log}"),
            }
        }
        panic!("Postfix could not bind its ports in 5 attempts. Last log:\n{last}");
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let out = fs::File::create(root.join("master.out")).expect("create master.out");
        let err = out.try_clone().expect("clone a file handle");
        let child = Command::new(MASTER)
            .arg("-c")
            .arg(root.join("conf"))
            // Stay in the foreground; the log goes to maillog_file.
            .arg("-d")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {MASTER}: {e}"));
        self.master = Some(child);
        let start = Instant::now();
        loop {
            if let Some(child) = self.master.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.master = None;
                    thread::sleep(Duration::from_millis(200));
                    return Err(format!(
                        "Postfix's master exited with {status}.\n{}",
                        self.log()
                    ));
                }
            }
            if self.ready() {
                return Ok(());
            }
            if start.elapsed() > DEADLINE {
                self.stop();
                return Err(format!(
                    "Postfix did not answer on {:?} within {DEADLINE:?}.\n{}",
                    self.ports,
                    self.log()
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn ready(&self) -> bool {
        let addr = |p: u16| SocketAddr::from((LISTEN_IP, p));
        let greets = |p: u16| {
            let Ok(s) = TcpStream::connect_timeout(&addr(p), Duration::from_millis(500)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
            line.starts_with("220 ")
        };
        TcpStream::connect_timeout(&addr(self.ports.submissions), Duration::from_millis(500))
            .is_ok()
            && greets(self.ports.submission)
            && greets(self.ports.plain)
    }

    /// The host name for clients, [`HOST`].
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// All listener ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Submission over implicit TLS.
    pub fn submissions_port(&self) -> u16 {
        self.ports.submissions
    }

    /// Submission with STARTTLS required.
    pub fn submission_port(&self) -> u16 {
        self.ports.submission
    }

    /// SMTP without TLS (STARTTLS is not offered).
    pub fn plain_port(&self) -> u16 {
        self.ports.plain
    }

    /// Postfix's log so far, and what the master printed itself.
    pub fn log(&self) -> String {
        let root = self.dir.path();
        let mut out = fs::read_to_string(root.join("maillog")).unwrap_or_default();
        let master = fs::read_to_string(root.join("master.out")).unwrap_or_default();
        if !master.trim().is_empty() {
            let _ = write!(out, "\n--- master stdout/stderr ---\n{master}");
        }
        out
    }

    /// Wait until the log has a line containing `needle`; the log, or
    /// `None` after [`DEADLINE`].
    pub fn wait_for_log(&self, needle: &str) -> Option<String> {
        crate::wait_until(DEADLINE, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
    }

    /// The configuration directory (for `postconf -c`).
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// Stop Postfix (SIGTERM to its process group, SIGKILL what lingers).
    pub fn stop(&mut self) {
        let Some(mut child) = self.master.take() else {
            return;
        };
        let pgid = child.id();
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                _ => {
                    signal_group(pgid, "KILL");
                    let _ = child.wait();
                    break;
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while signal_group(pgid, "0") && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        signal_group(pgid, "KILL");
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", &format!("kill -s {signal} -- -{pgid} 2>/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn main_cf(root: &Path, domains: &[String], lmtp_port: u16, auth_socket: &Path) -> String {
    let root = root.display();
    format!(
        "# Written by facteur-tests (tests/src/mta.rs) for one test run.\n\
         compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         maillog_file = {root}/maillog\n\
         maillog_file_prefixes = {root}\n\
         myhostname = mx.facteur.test\n\
         mydomain = facteur.test\n\
         myorigin = $myhostname\n\
         mydestination =\n\
         local_transport = error:local delivery is disabled\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         inet_interfaces = {LISTEN_IP}\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtp_dns_support_level = disabled\n\
         biff = no\n\
         virtual_mailbox_domains = {domains}\n\
         virtual_mailbox_maps = texthash:{root}/conf/vmailbox\n\
         virtual_transport = lmtp:inet:{LISTEN_IP}:{lmtp_port}\n\
         # Submission only: nothing is relayed or accepted without AUTH.\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
         smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n\
         smtpd_sasl_type = dovecot\n\
         smtpd_sasl_path = {auth}\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_tls_cert_file = {root}/conf/server.pem\n\
         smtpd_tls_key_file = {root}/conf/server.key\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_auth_only = no\n\
         # Fast tests: no delay after a refused login or command.\n\
         smtpd_error_sleep_time = 0\n\
         smtpd_soft_error_limit = 100\n\
         smtpd_hard_error_limit = 100\n",
        domains = domains.join(", "),
        auth = auth_socket.display(),
    )
}

fn master_cf(ports: Ports) -> String {
    let ip = LISTEN_IP;
    let mut c = String::from("# Written by facteur-tests (tests/src/mta.rs).\n");
    let _ = writeln!(
        c,
        "{ip}:{} inet n - n - - smtpd\n  -o syslog_name=postfix/submissions\n  \
         -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt",
        ports.submissions
    );
    let _ = writeln!(
        c,
        "{ip}:{} inet n - n - - smtpd\n  -o syslog_name=postfix/submission\n  \
         -o smtpd_tls_security_level=encrypt\n  -o smtpd_tls_auth_only=yes",
        ports.submission
    );
    let _ = writeln!(
        c,
        "{ip}:{} inet n - n - - smtpd\n  -o syslog_name=postfix/plain\n  \
         -o smtpd_tls_security_level=none",
        ports.plain
    );
    c.push_str(
        "pickup    unix  n       -       n       60      1       pickup\n\
         cleanup   unix  n       -       n       -       0       cleanup\n\
         qmgr      unix  n       -       n       300     1       qmgr\n\
         tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n\
         rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
         bounce    unix  -       -       n       -       0       bounce\n\
         defer     unix  -       -       n       -       0       bounce\n\
         trace     unix  -       -       n       -       0       bounce\n\
         verify    unix  -       -       n       -       1       verify\n\
         flush     unix  n       -       n       1000?   0       flush\n\
         proxymap  unix  -       -       n       -       -       proxymap\n\
         smtp      unix  -       -       n       -       -       smtp\n\
         relay     unix  -       -       n       -       -       smtp\n\
         showq     unix  n       -       n       -       -       showq\n\
         error     unix  -       -       n       -       -       error\n\
         retry     unix  -       -       n       -       -       error\n\
         discard   unix  -       -       n       -       -       discard\n\
         lmtp      unix  -       -       n       -       -       lmtp\n\
         anvil     unix  -       -       n       -       1       anvil\n\
         scache    unix  -       -       n       -       1       scache\n\
         postlog   unix-dgram n  -       n       -       1       postlogd\n",
    );
    c
}
