//! # A disposable Dovecot per test
//!
//! [`Dovecot::start`] runs the system's Dovecot 2.3 (Debian `dovecot-imapd`,
//! `dovecot-pop3d`, `dovecot-lmtpd`) in the foreground with a configuration
//! of its own in a temporary directory: its own `base_dir`, `state_dir`, log
//! file, users and Maildirs, and listeners on free loopback ports for IMAP
//! (plain with STARTTLS), IMAPS, POP3 (plain with STLS), POP3S and LMTP (a
//! unix socket and a port). Nothing in `/etc/dovecot` is read and no system
//! service is touched. The server certificate comes from a [`TestCa`].
//!
//! It runs as root (CI) or as a normal user. Dovecot refuses to give mail
//! processes uid 0, so under root the mailboxes belong to `nobody`; under a
//! normal user everything, Dovecot's own service users included, is that
//! user, with no chroot.
//!
//! The helpers change mailboxes the way another client or the MTA would:
//! `doveadm -c <conf>` for what it can do without a network client, and a
//! short IMAP session ([`ImapClient`]) on the plain port for what needs exact
//! bytes or the new UID (APPEND with `APPENDUID`, `UID FETCH BODY.PEEK[]`).
//! [`Dovecot::deliver_lmtp`] delivers through LMTP like an MTA.
//!
//! Dovecot is stopped on drop: the whole process group it runs in is sent
//! SIGTERM (sessions get `* BYE Server shutting down.`), then SIGKILL if it
//! lingers. [`Dovecot::stop`] and [`Dovecot::start_again`] restart it on the
//! same ports with the same mail.
//!
//! What this module leaves to the tests: what to assert. Every wait has a
//! deadline; a missing Dovecot fails the test with the packages to install.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::tls::{CertPair, TestCa, LOCAL_NAMES};
use crate::{run_with_deadline, DEADLINE, TEST_COMMAND};

/// The Debian packages the Dovecot harness needs.
pub const PACKAGES: &str = "dovecot-imapd dovecot-pop3d dovecot-lmtpd";

/// The address every listener binds to.
pub const LISTEN_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The host name clients should use: it is in the server certificate, and
/// resolves to [`LISTEN_IP`] (a resolver that tries `::1` first is refused
/// there and moves on).
pub const HOST: &str = "localhost";

/// How many times a first start picks new ports after a port was taken
/// between choosing it and Dovecot binding it.
const START_ATTEMPTS: usize = 5;

/// How long Dovecot gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often waits poll.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Which certificate the TLS listeners present, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerTls {
    /// `ssl = yes` with a leaf for `localhost`/`127.0.0.1` signed by the CA.
    #[default]
    CaSigned,
    /// `ssl = yes` with a self-signed leaf nobody trusts.
    SelfSigned,
    /// `ssl = yes` with a CA-signed leaf for `wrong-host.invalid` only.
    WrongHost,
    /// `ssl = yes` with a CA-signed leaf that expired in 2001.
    Expired,
    /// `ssl = no`: no STARTTLS/STLS offered, and no IMAPS/POP3S listeners.
    Off,
}

/// How to configure a [`Dovecot`]. Start from `DovecotOptions::default()`.
#[derive(Debug, Clone)]
pub struct DovecotOptions {
    /// The server certificate (default: signed by the CA).
    pub tls: ServerTls,
    /// The CA to issue the certificate from; share one between servers so
    /// the process under test trusts a single file. Default: a new one.
    pub ca: Option<Arc<TestCa>>,
    /// `imap_idle_notify_interval`: how often an idling client gets
    /// `* OK Still here` (Dovecot's default is two minutes).
    pub idle_notify_interval: Duration,
    /// `mail_max_userip_connections` (Dovecot's default of 10 is low for
    /// tests that open many sessions).
    pub max_userip_connections: u32,
    /// The hierarchy separator of the inbox namespace.
    pub separator: char,
    /// Create and subscribe Drafts, Sent, Trash, Junk and Archive (with
    /// their special-use flags) on first login; otherwise they only get the
    /// flag once created.
    pub auto_special_folders: bool,
    /// Keep Dovecot's delays after a failed login (2 s, then a per-IP
    /// penalty growing to 15 s). Off by default so wrong-password tests stay
    /// fast: a failure then answers in about half a second.
    pub auth_delays: bool,
    /// Appended verbatim to the configuration.
    pub extra_config: String,
}

impl Default for DovecotOptions {
    fn default() -> DovecotOptions {
        DovecotOptions {
            tls: ServerTls::CaSigned,
            ca: None,
            idle_notify_interval: Duration::from_secs(120),
            max_userip_connections: 100,
            separator: '/',
            auto_special_folders: false,
            auth_delays: false,
            extra_config: String::new(),
        }
    }
}

/// The loopback ports a [`Dovecot`] listens on. They stay the same across
/// [`Dovecot::stop`] and [`Dovecot::start_again`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// IMAP, plain with STARTTLS (unless TLS is off).
    pub imap: u16,
    /// IMAP over implicit TLS; `None` when TLS is off.
    pub imaps: Option<u16>,
    /// POP3, plain with STLS (unless TLS is off).
    pub pop3: u16,
    /// POP3 over implicit TLS; `None` when TLS is off.
    pub pop3s: Option<u16>,
    /// LMTP over TCP (the unix socket is [`Dovecot::lmtp_socket`]).
    pub lmtp: u16,
}

/// What `doveadm mailbox status` says about a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    /// Number of messages.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// The UID the next message will get.
    pub uidnext: u32,
    /// The folder's UIDVALIDITY.
    pub uidvalidity: u32,
    /// The highest modification sequence (CONDSTORE).
    pub highestmodseq: u64,
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// A running (or stopped) private Dovecot.
pub struct Dovecot {
    /// Configuration, users, Maildirs, sockets and logs; removed on drop,
    /// after the server is stopped.
    dir: TempDir,
    /// Fixed paths and identities, decided once.
    setup: Setup,
    /// The listeners, kept across restarts.
    ports: Ports,
    /// The CA the server certificate comes from.
    ca: Arc<TestCa>,
    /// The certificate the TLS listeners present (`None` when TLS is off).
    server_cert: Option<CertPair>,
    /// Which certificate that is.
    tls: ServerTls,
    /// Login name (lowercase) → password, for the harness's own sessions.
    users: Mutex<BTreeMap<String, String>>,
    /// The master process, leader of its own process group. Set by
    /// `start`/`start_again`, taken and reaped by `stop` and drop.
    master: Mutex<Option<Child>>,
    /// How long the last start took, until every listener answered.
    last_start: Mutex<Duration>,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("dir", &self.dir.path())
            .field("ports", &self.ports)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Everything about an instance that does not change between starts.
#[derive(Debug)]
struct Setup {
    dovecot: PathBuf,
    doveadm: PathBuf,
    identity: Identity,
    options: DovecotOptions,
    /// The configuration file.
    conf: PathBuf,
    /// `base_dir`: sockets and the master's pid file.
    run: PathBuf,
    /// One passwd-file per user (`users/<login>`).
    users: PathBuf,
    /// Home directories; each user's Maildir is `home/<login>/Maildir`.
    home: PathBuf,
    /// Dovecot's log file.
    log: PathBuf,
    /// The master's own stdout and stderr (errors before logging is up).
    stderr: PathBuf,
    /// `instance_name`, in the process titles (`dovecot-<name>/imap`).
    instance: String,
}

/// Who the server and the mailboxes run as.
#[derive(Debug, Clone)]
struct Identity {
    /// The tests run as root: keep Dovecot's service users, mail as nobody.
    root: bool,
    /// The current user and group names (used when not root).
    user: String,
    group: String,
    /// Owner of the mailboxes.
    mail_uid: u32,
    mail_gid: u32,
}

impl Dovecot {
    /// Start a Dovecot with `options`, and wait until every listener
    /// answers. Fails the test if Dovecot is not installed or does not come
    /// up within [`DEADLINE`], with its log.
    pub fn start(options: DovecotOptions) -> Dovecot {
        let dovecot = find_program("dovecot");
        let doveadm = find_program("doveadm");
        let identity = Identity::current();
        let dir = if identity.root {
            // Mail processes run as nobody and must reach their Maildir: a
            // TMPDIR under /root would not be traversable.
            tempfile::Builder::new()
                .prefix("facteur-dovecot-")
                .tempdir_in("/tmp")
                .expect("create a temporary directory for Dovecot")
        } else {
            crate::short_tempdir("facteur-dovecot-")
        };
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .expect("chmod the Dovecot directory");
        let instance = format!(
            "facteur-{}",
            root.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit('-').next())
                .unwrap_or("test")
        );
        let setup = Setup {
            dovecot,
            doveadm,
            identity,
            conf: root.join("dovecot.conf"),
            run: root.join("run"),
            users: root.join("users"),
            home: root.join("home"),
            log: root.join("dovecot.log"),
            stderr: root.join("dovecot.stderr"),
            instance,
            options,
        };
        for d in [&setup.run, &setup.users, &setup.home, &root.join("state")] {
            fs::create_dir_all(d).expect("create a Dovecot directory");
            // The auth process (user `dovecot` under root) reads users/.
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .expect("chmod a Dovecot directory");
        }
        if setup.identity.root {
            std::os::unix::fs::chown(
                &setup.home,
                Some(setup.identity.mail_uid),
                Some(setup.identity.mail_gid),
            )
            .expect("give home/ to the mail user");
        }

        let ca = setup
            .options
            .ca
            .clone()
            .unwrap_or_else(|| Arc::new(TestCa::new()));
        let tls = setup.options.tls;
        let server_cert = match tls {
            ServerTls::CaSigned => Some(ca.leaf().clone()),
            ServerTls::SelfSigned => Some(ca.self_signed(LOCAL_NAMES)),
            ServerTls::WrongHost => Some(ca.issue(&["wrong-host.invalid"])),
            ServerTls::Expired => Some(ca.issue_expired(LOCAL_NAMES)),
            ServerTls::Off => None,
        };
        if let Some(pair) = &server_cert {
            // Copies, so the server does not depend on the CA's lifetime.
            fs::write(root.join("server.pem"), &pair.cert_pem).expect("write server.pem");
            fs::write(root.join("server.key"), &pair.key_pem).expect("write server.key");
            fs::set_permissions(root.join("server.key"), fs::Permissions::from_mode(0o600))
                .expect("chmod server.key");
        }

        let mut dovecot = Dovecot {
            ports: Ports {
                imap: 0,
                imaps: None,
                pop3: 0,
                pop3s: None,
                lmtp: 0,
            },
            dir,
            setup,
            ca,
            server_cert,
            tls,
            users: Mutex::new(BTreeMap::new()),
            master: Mutex::new(None),
            last_start: Mutex::new(Duration::ZERO),
        };

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            dovecot.ports = free_ports(tls != ServerTls::Off);
            let conf = dovecot.render_config();
            fs::write(&dovecot.setup.conf, conf).expect("write dovecot.conf");
            match dovecot.spawn_and_wait() {
                Ok(()) => return dovecot,
                Err(StartFailure::PortTaken(log)) => failures.push(log),
                Err(StartFailure::Other(message)) => panic!("{message}"),
            }
        }
        panic!(
            "Dovecot could not bind its ports in {START_ATTEMPTS} attempts (another \
             process took them each time). Last log:\n{}",
            failures.pop().unwrap_or_default()
        );
    }

    /// Stop the server (see the module documentation). Mail, users and
    /// ports are kept for [`Dovecot::start_again`]. Does nothing if it is
    /// not running.
    pub fn stop(&self) {
        if let Err(e) = self.stop_inner() {
            panic!("{e}\n{}", self.log());
        }
    }

    /// Start the server again after [`Dovecot::stop`], on the same ports and
    /// with the same mail. Fails the test if a port was taken meanwhile.
    pub fn start_again(&self) {
        assert!(
            !self.is_running(),
            "Dovecot::start_again called while Dovecot is running"
        );
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartFailure::PortTaken(log)) => panic!(
                "Dovecot could not start again: one of its ports ({:?}) was taken \
                 while it was stopped. Log:\n{log}",
                self.ports
            ),
            Err(StartFailure::Other(message)) => panic!("{message}"),
        }
    }

    /// Whether the master process is running.
    pub fn is_running(&self) -> bool {
        let mut master = self.master();
        match master.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The master process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.master().as_ref().map(Child::id)
    }

    /// How long the last start took, from spawning `dovecot` until every
    /// listener answered.
    pub fn startup_time(&self) -> Duration {
        *self.last_start.lock().unwrap_or_else(|e| e.into_inner())
    }

    // -- where it is ---------------------------------------------------------

    /// The host name for clients, [`HOST`].
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// All listener ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// IMAP with STARTTLS (or plain only when TLS is off).
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAP over implicit TLS. Fails the test when TLS is off.
    pub fn imaps_port(&self) -> u16 {
        self.ports
            .imaps
            .expect("this Dovecot runs with ServerTls::Off: it has no IMAPS port")
    }

    /// POP3 with STLS (or plain only when TLS is off).
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }

    /// POP3 over implicit TLS. Fails the test when TLS is off.
    pub fn pop3s_port(&self) -> u16 {
        self.ports
            .pop3s
            .expect("this Dovecot runs with ServerTls::Off: it has no POP3S port")
    }

    /// LMTP over TCP on [`LISTEN_IP`].
    pub fn lmtp_port(&self) -> u16 {
        self.ports.lmtp
    }

    /// LMTP over a unix socket (mode 0666), for an MTA on this machine.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.setup.run.join("lmtp")
    }

    /// The CA the server certificate comes from.
    pub fn ca(&self) -> &Arc<TestCa> {
        &self.ca
    }

    /// The CA certificate file to trust (for example as `SSL_CERT_FILE`).
    pub fn ca_cert_path(&self) -> &Path {
        self.ca.cert_path()
    }

    /// The certificate the TLS listeners present (`None` when TLS is off).
    pub fn server_cert(&self) -> Option<&CertPair> {
        self.server_cert.as_ref()
    }

    /// Which certificate the server presents.
    pub fn tls(&self) -> ServerTls {
        self.tls
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file (for `doveadm -c`, `doveconf -c`).
    pub fn conf_path(&self) -> &Path {
        &self.setup.conf
    }

    /// A user's Maildir (Maildir++ layout: subfolders are `.Name` inside).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.setup
            .home
            .join(user.to_ascii_lowercase())
            .join("Maildir")
    }

    /// Dovecot's log so far, followed by anything the master printed itself.
    pub fn log(&self) -> String {
        let mut out = fs::read_to_string(&self.setup.log).unwrap_or_default();
        let stderr = fs::read_to_string(&self.setup.stderr).unwrap_or_default();
        if !stderr.trim().is_empty() {
            let _ = write!(out, "\n--- dovecot stdout/stderr ---\n{stderr}");
        }
        out
    }

    // -- users ---------------------------------------------------------------

    /// Add a user, or change a user's password, before or after start.
    ///
    /// `name` is the login (an address such as `alice@example.test` is
    /// fine: ASCII letters, digits and `.-_@+`). Dovecot lowercases logins,
    /// so `Alice` and `alice` are one user. Any password works, colons and
    /// non-ASCII included (it is stored base64-encoded).
    ///
    /// A new user can log in at once. A password *change* on a running
    /// server waits for the next wall-clock second: Dovecot re-reads a
    /// passwd-file at most once a second and only when its mtime or size
    /// changed.
    pub fn add_user(&self, name: &str, password: &str) {
        assert!(
            !name.is_empty()
                && name.len() <= 100
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b)),
            "add_user: `{name}` is not a login this harness accepts \
             (ASCII letters, digits and .-_@+, not starting with a dot)"
        );
        let login = name.to_ascii_lowercase();
        let path = self.setup.users.join(&login);
        let old_mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
        let line = format!(
            "{login}:{{PLAIN.b64}}{}\n",
            base64(password.as_bytes(), b"+/", true)
        );
        let tmp = self.setup.users.join(format!(".{login}.tmp"));
        fs::write(&tmp, line).expect("write a passwd-file");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod a passwd-file");
        if let Some(old) = old_mtime {
            // Same size and same second would look unchanged to Dovecot.
            let bumped = old + Duration::from_secs(1);
            let mtime = SystemTime::now().max(bumped);
            fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(mtime))
                .expect("set a passwd-file's mtime");
        }
        fs::rename(&tmp, &path).expect("install a passwd-file");
        self.users_lock().insert(login, password.to_owned());
        if old_mtime.is_some() && self.is_running() {
            wait_for_next_second();
        }
    }

    /// The password the harness knows for `user`.
    fn password(&self, user: &str) -> String {
        self.users_lock()
            .get(&user.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| {
                panic!("`{user}` is not a user of this Dovecot: call add_user first")
            })
    }

    /// A logged-in IMAP session for `user` on the plain port.
    pub fn imap_client(&self, user: &str) -> ImapClient {
        let password = self.password(user);
        let mut client = ImapClient::connect(self.ports.imap);
        client.login(user, &password);
        client
    }

    // -- mail ----------------------------------------------------------------

    /// A new message in `user`'s INBOX, as a delivery makes it (no flags,
    /// `\Recent`, the next UID). The bytes are stored as given: with CRLF
    /// line ends they come back byte for byte from `FETCH BODY[]`. Returns
    /// the new UID.
    pub fn deliver(&self, user: &str, raw: &[u8]) -> u32 {
        self.append(user, "INBOX", raw, &[])
    }

    /// APPEND `raw` to `folder` (UTF-8 name) with `flags` (such as
    /// `\Seen`, `$Label1`). Returns the new UID.
    pub fn append(&self, user: &str, folder: &str, raw: &[u8], flags: &[&str]) -> u32 {
        let mut imap = self.imap_client(user);
        let uid = imap.append(folder, flags, raw);
        imap.logout();
        uid
    }

    /// Deliver through LMTP (the unix socket), as an MTA does. Dovecot adds
    /// `Return-Path`, `Delivered-To` and `Received` headers, so the stored
    /// bytes differ from `raw`; bare LF line ends are sent as CRLF.
    pub fn deliver_lmtp(&self, user: &str, raw: &[u8]) {
        let mut lmtp = Lmtp::connect(&self.lmtp_socket());
        if let Err(e) = lmtp.deliver("facteur-tests@localhost", user, raw) {
            panic!("LMTP delivery to {user} failed: {e}\n{}", self.log());
        }
    }

    /// Create a folder (UTF-8 name, such as `Reçus/Été`; Dovecot stores it
    /// in modified UTF-7). Parents are created too.
    pub fn create_folder(&self, user: &str, name: &str) {
        self.doveadm_ok(&["mailbox", "create", "-u", user, name], None);
    }

    /// Delete a folder and the messages in it.
    pub fn delete_folder(&self, user: &str, name: &str) {
        self.doveadm_ok(&["mailbox", "delete", "-u", user, name], None);
    }

    /// Rename a folder.
    pub fn rename_folder(&self, user: &str, from: &str, to: &str) {
        self.doveadm_ok(&["mailbox", "rename", "-u", user, from, to], None);
    }

    /// Every folder of `user` (UTF-8 names), as `doveadm mailbox list` says.
    pub fn folders(&self, user: &str) -> Vec<String> {
        self.doveadm_ok(&["mailbox", "list", "-u", user], None)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Replace a message's flags (`\Seen`, `\Flagged`, `$Label1`, …; empty
    /// clears them).
    pub fn set_flags(&self, user: &str, folder: &str, uid: u32, flags: &[&str]) {
        let flags = flags.join(" ");
        let uid = uid.to_string();
        self.doveadm_ok(
            &[
                "flags", "replace", "-u", user, &flags, "mailbox", folder, "uid", &uid,
            ],
            None,
        );
    }

    /// A message's flags, without `\Recent` (which belongs to a session).
    /// Fails the test if there is no such message.
    pub fn flags(&self, user: &str, folder: &str, uid: u32) -> Vec<String> {
        let uid_s = uid.to_string();
        let out = self.doveadm_ok(
            &[
                "-f", "tab", "fetch", "-u", user, "flags", "mailbox", folder, "uid", &uid_s,
            ],
            None,
        );
        let row = out
            .lines()
            .nth(1)
            .unwrap_or_else(|| panic!("{user}: no message with UID {uid} in {folder}"));
        row.split_whitespace()
            .filter(|f| *f != "\\Recent")
            .map(str::to_owned)
            .collect()
    }

    /// Expunge one message.
    pub fn expunge(&self, user: &str, folder: &str, uid: u32) {
        let uid = uid.to_string();
        self.doveadm_ok(
            &["expunge", "-u", user, "mailbox", folder, "uid", &uid],
            None,
        );
    }

    /// The UIDs in a folder, ascending.
    pub fn list_uids(&self, user: &str, folder: &str) -> Vec<u32> {
        let out = self.doveadm_ok(&["search", "-u", user, "mailbox", folder, "all"], None);
        let mut uids: Vec<u32> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|u| {
                u.parse()
                    .unwrap_or_else(|_| panic!("doveadm search printed a bad UID: {out}"))
            })
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The exact bytes a client gets for `UID FETCH <uid> BODY.PEEK[]`.
    /// Fails the test if there is no such message.
    pub fn fetch_raw(&self, user: &str, folder: &str, uid: u32) -> Vec<u8> {
        let mut imap = self.imap_client(user);
        imap.command_ok(&format!("EXAMINE {}", mailbox_arg(folder)));
        let body = imap
            .uid_fetch_body(uid)
            .unwrap_or_else(|| panic!("{user}: no message with UID {uid} in {folder}"));
        imap.logout();
        body
    }

    /// `doveadm mailbox status` for a folder.
    pub fn status(&self, user: &str, folder: &str) -> FolderStatus {
        let out = self.doveadm_ok(
            &[
                "-f",
                "tab",
                "mailbox",
                "status",
                "-u",
                user,
                "messages unseen uidnext uidvalidity highestmodseq",
                folder,
            ],
            None,
        );
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let values: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let get = |name: &str| -> u64 {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| values.get(i))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("doveadm mailbox status has no {name}: {out}"))
        };
        let small = |name: &str| -> u32 {
            u32::try_from(get(name)).unwrap_or_else(|_| panic!("{name} does not fit 32 bits"))
        };
        FolderStatus {
            messages: small("messages"),
            unseen: small("unseen"),
            uidnext: small("uidnext"),
            uidvalidity: small("uidvalidity"),
            highestmodseq: get("highestmodseq"),
        }
    }

    /// A folder's UIDVALIDITY.
    pub fn uidvalidity(&self, user: &str, folder: &str) -> u32 {
        self.status(user, folder).uidvalidity
    }

    /// Give a folder a new, larger UIDVALIDITY while keeping its messages
    /// and their UID numbers: the case where a client must throw away what
    /// it knows about the folder and fetch it again. Works for INBOX. A
    /// session that has the folder selected gets `* BYE` and is closed.
    /// Returns the new UIDVALIDITY.
    pub fn change_uidvalidity(&self, user: &str, folder: &str) -> u32 {
        let old = self.uidvalidity(user, folder);
        let new = old.checked_add(1).unwrap_or(1);
        let new_s = new.to_string();
        self.doveadm_ok(
            &[
                "mailbox",
                "update",
                "-u",
                user,
                "--uid-validity",
                &new_s,
                folder,
            ],
            None,
        );
        let now = self.uidvalidity(user, folder);
        assert_eq!(
            now, new,
            "doveadm did not change the UIDVALIDITY of {folder}"
        );
        now
    }

    /// Delete a folder and create it again, empty, with a new UIDVALIDITY
    /// (not INBOX, which cannot be deleted). Returns the new UIDVALIDITY.
    pub fn recreate_folder(&self, user: &str, folder: &str) -> u32 {
        let old = self.uidvalidity(user, folder);
        self.delete_folder(user, folder);
        self.create_folder(user, folder);
        let new = self.uidvalidity(user, folder);
        assert_ne!(old, new, "recreating {folder} kept its UIDVALIDITY");
        new
    }

    /// Disconnect every session of `user` gracefully (`doveadm kick`: the
    /// client gets `* BYE`). Returns how many sessions there were.
    pub fn kick(&self, user: &str) -> usize {
        let sessions = self.sessions(user).len();
        let out = self.doveadm(&["kick", user], None);
        // 68 (EX_NOUSER) means "no users kicked".
        assert!(
            out.status.success() || out.status.code() == Some(68),
            "doveadm kick {user} failed: {}",
            crate::text(&out.stderr)
        );
        sessions
    }

    /// Kill every IMAP and POP3 process of `user` with SIGKILL: the client
    /// sees the connection drop without a BYE. Returns how many there were.
    pub fn kill_sessions(&self, user: &str) -> usize {
        let pids = self.sessions(user);
        for (_, pid) in &pids {
            // The process may have exited meanwhile: that is fine.
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -s KILL {pid} 2>/dev/null")])
                .status();
        }
        pids.len()
    }

    /// The live sessions of `user`: (protocol, process id).
    pub fn sessions(&self, user: &str) -> Vec<(String, u32)> {
        let out = self.doveadm_ok(&["-f", "tab", "who", "-1", user], None);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                Some((cols.get(1)?.to_string(), cols.get(2)?.trim().parse().ok()?))
            })
            .collect()
    }

    // -- doveadm -------------------------------------------------------------

    /// Run `doveadm -c <conf> <args>` with a deadline. User commands (`-u`)
    /// need the server running: they look the user up through its auth
    /// socket.
    pub fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(&self.setup.doveadm);
        cmd.arg("-c").arg(&self.setup.conf).args(args);
        run_with_deadline(&mut cmd, stdin, DEADLINE)
    }

    /// [`Dovecot::doveadm`], failing the test unless it succeeds; returns
    /// its standard output.
    pub fn doveadm_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.doveadm(args, stdin);
        if !out.status.success() {
            let hint = if self.is_running() {
                ""
            } else {
                " (Dovecot is stopped: user commands need it running)"
            };
            panic!(
                "doveadm {} failed with {}{hint}\nstdout:\n{}\nstderr:\n{}\nDovecot log:\n{}",
                args.join(" "),
                out.status,
                crate::text(&out.stdout),
                crate::text(&out.stderr),
                self.log()
            );
        }
        crate::text(&out.stdout)
    }

    // -- internals -----------------------------------------------------------

    fn master(&self) -> MutexGuard<'_, Option<Child>> {
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn users_lock(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration file for the current ports.
    fn render_config(&self) -> String {
        let s = &self.setup;
        let o = &s.options;
        let id = &s.identity;
        let root = self.dir.path().display();
        let mut c = String::new();
        let _ = writeln!(
            c,
            "# Written by facteur-tests (tests/src/dovecot.rs) for one test run.\n\
             # Nothing here reads /etc/dovecot or touches a system service.\n\
             instance_name = {instance}\n\
             base_dir = {run}\n\
             state_dir = {root}/state\n\
             log_path = {log}\n\
             auth_verbose = yes\n\
             protocols = imap pop3 lmtp\n\
             listen = {LISTEN_IP}\n\
             auth_mechanisms = plain login\n\
             # Loopback counts as secured for Dovecot anyway; this also covers\n\
             # logins on the plain ports from anywhere else.\n\
             disable_plaintext_auth = no\n\
             first_valid_uid = 1\n\
             mail_location = maildir:~/Maildir\n\
             mail_max_userip_connections = {maxconn}\n\
             imap_idle_notify_interval = {idle} secs\n\
             pop3_uidl_format = %08Xu%08Xv\n",
            instance = s.instance,
            run = s.run.display(),
            log = s.log.display(),
            maxconn = o.max_userip_connections,
            idle = o.idle_notify_interval.as_secs().max(1),
        );
        match self.tls {
            ServerTls::Off => c.push_str("ssl = no\n"),
            _ => {
                let _ = writeln!(
                    c,
                    "ssl = yes\nssl_cert = <{root}/server.pem\nssl_key = <{root}/server.key"
                );
            }
        }
        let auto = if o.auto_special_folders {
            "subscribe"
        } else {
            "no"
        };
        let _ = writeln!(
            c,
            "namespace inbox {{\n  inbox = yes\n  separator = {}",
            o.separator
        );
        for (name, flag) in [
            ("Drafts", "\\Drafts"),
            ("Sent", "\\Sent"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
            ("Archive", "\\Archive"),
        ] {
            let _ = writeln!(
                c,
                "  mailbox {name} {{\n    special_use = {flag}\n    auto = {auto}\n  }}"
            );
        }
        c.push_str("}\n");
        // One passwd-file per user: a new user's file is read at its first
        // lookup, without waiting for Dovecot's once-a-second re-check.
        let _ = writeln!(
            c,
            "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}/%u\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={home}/%u\n}}",
            users = s.users.display(),
            uid = id.mail_uid,
            gid = id.mail_gid,
            home = s.home.display(),
        );
        let chroot = if id.root { "" } else { "  chroot =\n" };
        let _ = writeln!(
            c,
            "service imap-login {{\n{chroot}  inet_listener imap {{\n    port = {}\n  }}",
            self.ports.imap
        );
        if let Some(p) = self.ports.imaps {
            let _ = writeln!(
                c,
                "  inet_listener imaps {{\n    port = {p}\n    ssl = yes\n  }}"
            );
        }
        c.push_str("}\n");
        let _ = writeln!(
            c,
            "service pop3-login {{\n{chroot}  inet_listener pop3 {{\n    port = {}\n  }}",
            self.ports.pop3
        );
        if let Some(p) = self.ports.pop3s {
            let _ = writeln!(
                c,
                "  inet_listener pop3s {{\n    port = {p}\n    ssl = yes\n  }}"
            );
        }
        c.push_str("}\n");
        let _ = writeln!(
            c,
            "service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n  \
             inet_listener lmtp {{\n    address = {LISTEN_IP}\n    port = {}\n  }}\n}}",
            self.ports.lmtp
        );
        c.push_str("service anvil {\n");
        c.push_str(chroot);
        if !o.auth_delays {
            // Without this listener the auth process finds no penalty socket
            // (ENOENT) and keeps no per-IP penalty: otherwise every failed
            // login from 127.0.0.1 delays the next ones by up to 15 s.
            c.push_str("  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n");
        }
        c.push_str("}\n");
        if !o.auth_delays {
            c.push_str("auth_failure_delay = 0\n");
        }
        if !id.root {
            // Dovecot's "rootless" setup: every service runs as us.
            let _ = writeln!(
                c,
                "default_login_user = {u}\ndefault_internal_user = {u}\n\
                 default_internal_group = {g}\n\
                 service auth-worker {{\n  user = $default_internal_user\n}}",
                u = id.user,
                g = id.group,
            );
        }
        if !o.extra_config.is_empty() {
            c.push_str(&o.extra_config);
            c.push('\n');
        }
        c
    }

    /// Spawn the master and wait until every listener answers.
    fn spawn_and_wait(&self) -> Result<(), StartFailure> {
        let s = &self.setup;
        // Leftovers of a previous run: a stale penalty socket would make the
        // auth process retry it for 5 s; a stale pid file could name a live
        // unrelated process after pid reuse.
        let _ = fs::remove_file(s.run.join("anvil-auth-penalty"));
        let _ = fs::remove_file(s.run.join("master.pid"));
        let log_offset = fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0);
        let stderr = fs::File::options()
            .create(true)
            .append(true)
            .open(&s.stderr)
            .expect("open dovecot.stderr");
        let stdout = stderr.try_clone().expect("clone a file handle");
        let started = Instant::now();
        let child = Command::new(&s.dovecot)
            .arg("-F")
            .arg("-c")
            .arg(&s.conf)
            // Its own process group, so stop() can signal every process of
            // this instance (and only those) at once.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", s.dovecot.display()));
        *self.master() = Some(child);

        let deadline = started + DEADLINE;
        loop {
            let exited = {
                let mut guard = self.master();
                let child = guard.as_mut().expect("the master was just stored");
                match child.try_wait() {
                    Ok(Some(status)) => {
                        *guard = None;
                        Some(status)
                    }
                    Ok(None) => None,
                    Err(e) => panic!("cannot wait for Dovecot: {e}"),
                }
            };
            if let Some(status) = exited {
                // Let the log process flush the fatal error.
                thread::sleep(Duration::from_millis(100));
                return Err(self.start_failure(status, log_offset));
            }
            if self.listeners_ready() {
                *self.last_start.lock().unwrap_or_else(|e| e.into_inner()) = started.elapsed();
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.stop_inner();
                return Err(StartFailure::Other(format!(
                    "Dovecot did not answer on all of {:?} and {} within {DEADLINE:?}.\n{}",
                    self.ports,
                    self.lmtp_socket().display(),
                    self.log()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Classify a master that exited while starting, from the log it wrote
    /// after `log_offset`.
    fn start_failure(&self, status: ExitStatus, log_offset: u64) -> StartFailure {
        let log = self.log();
        let fresh = fs::read(&self.setup.log)
            .ok()
            .and_then(|l| l.get(log_offset as usize..).map(crate::text))
            .unwrap_or_default();
        let stderr = fs::read_to_string(&self.setup.stderr).unwrap_or_default();
        if fresh.contains("Address already in use")
            || (fresh.is_empty() && stderr.contains("Address already in use"))
        {
            StartFailure::PortTaken(log)
        } else {
            StartFailure::Other(format!(
                "Dovecot exited during startup ({status}).\nConfiguration {}:\n{}\nLog:\n{log}",
                self.setup.conf.display(),
                fs::read_to_string(&self.setup.conf).unwrap_or_default()
            ))
        }
    }

    /// Whether every listener accepts a connection, and the plain IMAP and
    /// POP3 ones greet (so their login processes are up).
    fn listeners_ready(&self) -> bool {
        let p = self.ports;
        for port in [p.imaps, p.pop3s, Some(p.lmtp)].into_iter().flatten() {
            if connect(port, Duration::from_millis(500)).is_err() {
                return false;
            }
        }
        if UnixStream::connect(self.lmtp_socket()).is_err() {
            return false;
        }
        greets(p.imap, b"* OK") && greets(p.pop3, b"+OK")
    }

    /// SIGTERM the process group, reap the master, SIGKILL what lingers.
    fn stop_inner(&self) -> Result<(), String> {
        let Some(mut child) = self.master().take() else {
            return Ok(());
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
        // Mail processes outlive the master when it alone is signalled; the
        // group signal reached them too, wait until they are all gone.
        let deadline = Instant::now() + STOP_GRACE;
        while group_alive(pgid) {
            if Instant::now() > deadline {
                signal_group(pgid, "KILL");
                thread::sleep(Duration::from_millis(200));
                if group_alive(pgid) {
                    return Err(format!(
                        "processes of Dovecot's group {pgid} survived SIGKILL"
                    ));
                }
                break;
            }
            thread::sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("facteur-tests: stopping Dovecot: {e}");
        }
    }
}

/// Why a start did not succeed.
enum StartFailure {
    /// Another process bound one of the ports first: try other ports.
    PortTaken(String),
    /// Anything else: the message for the test failure.
    Other(String),
}

// ---------------------------------------------------------------------------
// Processes, identities and ports
// ---------------------------------------------------------------------------

/// The path of a Dovecot program, or a test failure naming the packages.
fn find_program(name: &str) -> PathBuf {
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
    fn current() -> Identity {
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
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", &format!("kill -s {signal} -- -{pgid} 2>/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether any process of the group is still there.
fn group_alive(pgid: u32) -> bool {
    signal_group(pgid, "0")
}

/// Free loopback ports for the listeners: bound together (so they differ)
/// and released for Dovecot. Another process may take one meanwhile;
/// `start` then tries again with new ones.
fn free_ports(tls: bool) -> Ports {
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
fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((LISTEN_IP, port)), timeout)
}

/// Whether the server on `port` sends a greeting starting with `prefix`.
fn greets(port: u16, prefix: &[u8]) -> bool {
    let Ok(stream) = connect(port, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = Vec::new();
    let _ = BufReader::new(stream).read_until(b'\n', &mut line);
    line.starts_with(prefix)
}

/// Sleep until the wall clock enters the next second (plus a margin).
fn wait_for_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    thread::sleep(Duration::from_secs(1) - into + Duration::from_millis(50));
}

// ---------------------------------------------------------------------------
// Encodings
// ---------------------------------------------------------------------------

/// Base64 with the given two last alphabet characters, padded or not.
fn base64(bytes: &[u8], last: &[u8; 2], pad: bool) -> String {
    const ABC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let sym = |v: u32| -> char {
        let v = (v & 63) as usize;
        char::from(if v < 62 { ABC[v] } else { last[v - 62] })
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(sym(n >> (18 - 6 * i)));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// A folder name in IMAP's modified UTF-7 (RFC 3501 section 5.1.3), as it
/// goes on the wire: `Reçus/Été` → `Re&AOc-us/&AMk-t&AOk-`.
pub fn encode_mailbox_name(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&base64(&bytes, b"+,", false));
        out.push('-');
        pending.clear();
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A folder name as an IMAP command argument: modified UTF-7, quoted.
pub fn mailbox_arg(name: &str) -> String {
    quote(&encode_mailbox_name(name))
}

/// An IMAP quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

// ---------------------------------------------------------------------------
// A minimal IMAP client
// ---------------------------------------------------------------------------

/// A tiny synchronous IMAP client over a plain loopback TCP connection,
/// for the harness and for tests that need a second client (a concurrent
/// mutator, a session holding a folder selected). Every read has the
/// harness [`DEADLINE`]; a server that stops answering fails the test.
pub struct ImapClient {
    reader: BufReader<TcpStream>,
    greeting: String,
    next_tag: u32,
}

/// The server's answer to one command.
#[derive(Debug, Clone)]
pub struct ImapReply {
    /// Untagged responses, each with its CRLF and any literals inline,
    /// exactly as received.
    pub untagged: Vec<Vec<u8>>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The rest of the tagged line (with any response code).
    pub text: String,
}

impl ImapReply {
    /// Whether the command completed with OK.
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }

    /// All untagged responses as (lossy) text.
    pub fn untagged_text(&self) -> String {
        self.untagged.iter().map(|u| crate::text(u)).collect()
    }
}

impl ImapClient {
    /// Connect to `127.0.0.1:<port>` and read the greeting.
    pub fn connect(port: u16) -> ImapClient {
        let stream = connect(port, DEADLINE)
            .unwrap_or_else(|e| panic!("cannot connect to IMAP on port {port}: {e}"));
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            greeting: String::new(),
            next_tag: 1,
        };
        let greeting = client
            .read_unit(Instant::now() + DEADLINE)
            .unwrap_or_else(|| panic!("the IMAP server on port {port} closed without a greeting"));
        client.greeting = crate::text(&greeting);
        assert!(
            client.greeting.starts_with("* OK"),
            "unexpected IMAP greeting: {}",
            client.greeting
        );
        client
    }

    /// The greeting line.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// LOGIN with literals (LITERAL+), so any password works. Fails the
    /// test unless the server says OK.
    pub fn login(&mut self, user: &str, password: &str) {
        let mut cmd = Vec::new();
        let _ = write!(cmd, "LOGIN {{{}+}}\r\n", user.len());
        cmd.extend_from_slice(user.as_bytes());
        let _ = write!(cmd, " {{{}+}}\r\n", password.len());
        cmd.extend_from_slice(password.as_bytes());
        let reply = self.command_bytes(&cmd);
        assert!(reply.is_ok(), "IMAP LOGIN as {user} failed: {}", reply.text);
    }

    /// Send one command (without tag or CRLF) and read the reply.
    pub fn command(&mut self, cmd: &str) -> ImapReply {
        self.command_bytes(cmd.as_bytes())
    }

    /// [`ImapClient::command`], failing the test unless the reply is OK.
    pub fn command_ok(&mut self, cmd: &str) -> ImapReply {
        let reply = self.command(cmd);
        assert!(
            reply.is_ok(),
            "IMAP `{cmd}` failed: {} {}\n{}",
            reply.status,
            reply.text,
            reply.untagged_text()
        );
        reply
    }

    /// APPEND a message with flags; returns its UID (from `APPENDUID`).
    pub fn append(&mut self, folder: &str, flags: &[&str], raw: &[u8]) -> u32 {
        let mut cmd = Vec::new();
        let _ = write!(
            cmd,
            "APPEND {} ({}) {{{}+}}\r\n",
            mailbox_arg(folder),
            flags.join(" "),
            raw.len()
        );
        cmd.extend_from_slice(raw);
        let reply = self.command_bytes(&cmd);
        assert!(
            reply.is_ok(),
            "IMAP APPEND to {folder} failed: {} {}",
            reply.status,
            reply.text
        );
        // "[APPENDUID <uidvalidity> <uid>] Append completed."
        reply
            .text
            .split_once("[APPENDUID ")
            .and_then(|(_, rest)| rest.split(']').next())
            .and_then(|codes| codes.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| panic!("APPEND reply without APPENDUID: {}", reply.text))
    }

    /// `UID FETCH <uid> BODY.PEEK[]` in the selected folder: the message's
    /// exact bytes, or `None` if there is no such UID.
    pub fn uid_fetch_body(&mut self, uid: u32) -> Option<Vec<u8>> {
        let reply = self.command_ok(&format!("UID FETCH {uid} (UID BODY.PEEK[])"));
        reply.untagged.iter().find_map(|u| {
            let at = find(u, b"BODY[] {")?;
            let rest = &u[at + b"BODY[] {".len()..];
            let close = find(rest, b"}\r\n")?;
            let len: usize = std::str::from_utf8(&rest[..close]).ok()?.parse().ok()?;
            let start = close + 3;
            rest.get(start..start + len).map(<[u8]>::to_vec)
        })
    }

    /// LOGOUT and close.
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }

    /// Send `cmd` (which may contain LITERAL+ literals) with a new tag.
    ///
    /// A server that says `* BYE` and closes the connection (a kick, a
    /// shutdown, a UIDVALIDITY change) gives a reply with status `BYE`.
    fn command_bytes(&mut self, cmd: &[u8]) -> ImapReply {
        let tag = format!("h{}", self.next_tag);
        self.next_tag += 1;
        let mut line = Vec::with_capacity(cmd.len() + tag.len() + 3);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(cmd);
        line.extend_from_slice(b"\r\n");
        // A closed connection may still hold a BYE to read: look first.
        let write_error = self.reader.get_mut().write_all(&line).err();
        let deadline = Instant::now() + DEADLINE;
        let mut untagged: Vec<Vec<u8>> = Vec::new();
        loop {
            let Some(unit) = self.read_unit(deadline) else {
                if let Some(bye) = untagged.iter().find(|u| u.starts_with(b"* BYE")) {
                    let text = crate::text(bye).trim_end().to_owned();
                    return ImapReply {
                        untagged,
                        status: "BYE".into(),
                        text,
                    };
                }
                panic!(
                    "the IMAP server closed the connection without BYE{}; received: {}",
                    write_error
                        .map(|e| format!(" (write: {e})"))
                        .unwrap_or_default(),
                    untagged.iter().map(|u| crate::text(u)).collect::<String>()
                );
            };
            if let Some(rest) = unit.strip_prefix(format!("{tag} ").as_bytes()) {
                let rest = crate::text(rest);
                let (status, text) = rest.trim_end().split_once(' ').unwrap_or((&rest, ""));
                return ImapReply {
                    untagged,
                    status: status.to_owned(),
                    text: text.to_owned(),
                };
            }
            untagged.push(unit);
        }
    }

    /// One response: a line, plus any literal it announces and the rest of
    /// the line after it, and so on. `None` when the server has closed the
    /// connection.
    fn read_unit(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        let mut unit = Vec::new();
        loop {
            let start = unit.len();
            if !read_line(&mut self.reader, &mut unit, deadline, "IMAP") {
                assert!(
                    unit.is_empty(),
                    "the IMAP server closed the connection inside a response: {}",
                    crate::text(&unit)
                );
                return None;
            }
            let line = &unit[start..];
            match literal_len(line) {
                Some(n) => {
                    let mut buf = vec![0; n];
                    read_exact(&mut self.reader, &mut buf, deadline, "IMAP");
                    unit.extend_from_slice(&buf);
                }
                None => return Some(unit),
            }
        }
    }
}

/// The length of the literal a line announces (`... {123}\r\n`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = body[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&body[open + 1..]);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Something with a settable read timeout.
trait Timed {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()>;
}

impl Timed for TcpStream {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
}

impl Timed for UnixStream {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
}

/// The time left until `deadline`, failing the test once it has passed.
fn remaining(deadline: Instant, what: &str) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(
        !left.is_zero(),
        "the {what} server did not answer within {DEADLINE:?}"
    );
    left
}

/// Append one LF-terminated line to `buf`, within `deadline`. False if the
/// connection ended first (whatever arrived is in `buf`).
fn read_line<S: Read + Timed>(
    r: &mut BufReader<S>,
    buf: &mut Vec<u8>,
    deadline: Instant,
    what: &str,
) -> bool {
    loop {
        r.get_ref()
            .set_timeout(remaining(deadline, what))
            .expect("set a read timeout");
        match r.read_until(b'\n', buf) {
            Ok(0) => return false,
            Ok(_) if buf.ends_with(b"\n") => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                remaining(deadline, what);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset after BYE is an end like any other.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("reading from the {what} server failed: {e}"),
        }
    }
}

/// Fill `buf` within `deadline`.
fn read_exact<S: Read + Timed>(
    r: &mut BufReader<S>,
    buf: &mut [u8],
    deadline: Instant,
    what: &str,
) {
    let mut filled = 0;
    while filled < buf.len() {
        r.get_ref()
            .set_timeout(remaining(deadline, what))
            .expect("set a read timeout");
        match r.read(&mut buf[filled..]) {
            Ok(0) => panic!("the {what} server closed the connection inside a literal"),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                remaining(deadline, what);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading from the {what} server failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal LMTP client
// ---------------------------------------------------------------------------

/// One LMTP connection over a unix socket.
struct Lmtp {
    reader: BufReader<UnixStream>,
}

impl Lmtp {
    fn connect(path: &Path) -> Lmtp {
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("cannot connect to LMTP at {}: {e}", path.display()));
        let mut lmtp = Lmtp {
            reader: BufReader::new(stream),
        };
        let (code, text) = lmtp.reply();
        assert_eq!(code, 220, "unexpected LMTP greeting: {text}");
        lmtp
    }

    /// A reply: its code and all its lines.
    fn reply(&mut self) -> (u16, String) {
        let deadline = Instant::now() + DEADLINE;
        let mut all = Vec::new();
        loop {
            let start = all.len();
            assert!(
                read_line(&mut self.reader, &mut all, deadline, "LMTP"),
                "the LMTP server closed the connection: {}",
                crate::text(&all)
            );
            let line = &all[start..];
            // "250-more" continues, "250 last" ends.
            if line.len() < 4 || line[3] != b'-' {
                let code = std::str::from_utf8(&line[..line.len().min(3)])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return (code, crate::text(&all));
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("LMTP write failed: {e}"));
    }

    /// One transaction: LHLO, MAIL, RCPT, DATA (CRLF line ends, dot-stuffed).
    fn deliver(&mut self, from: &str, to: &str, raw: &[u8]) -> Result<(), String> {
        let step = |lmtp: &mut Lmtp, cmd: &str, want: u16| -> Result<(), String> {
            lmtp.send(format!("{cmd}\r\n").as_bytes());
            let (code, text) = lmtp.reply();
            if code == want {
                Ok(())
            } else {
                Err(format!("`{cmd}` answered {text}"))
            }
        };
        step(self, "LHLO facteur-tests", 250)?;
        step(self, &format!("MAIL FROM:<{from}>"), 250)?;
        step(self, &format!("RCPT TO:<{to}>"), 250)?;
        step(self, "DATA", 354)?;
        let mut data = Vec::with_capacity(raw.len() + 64);
        let mut at_line_start = true;
        let mut prev = 0u8;
        for &b in raw {
            if at_line_start && b == b'.' {
                data.push(b'.');
            }
            if b == b'\n' && prev != b'\r' {
                data.push(b'\r');
            }
            data.push(b);
            at_line_start = b == b'\n';
            prev = b;
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        // One reply per recipient.
        let (code, text) = self.reply();
        if code != 250 {
            return Err(format!("the message was refused: {text}"));
        }
        let _ = step(self, "QUIT", 221);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7() {
        assert_eq!(encode_mailbox_name("INBOX"), "INBOX");
        assert_eq!(encode_mailbox_name("Reçus/Été"), "Re&AOc-us/&AMk-t&AOk-");
        assert_eq!(encode_mailbox_name("A&B"), "A&-B");
        assert_eq!(encode_mailbox_name("日本語"), "&ZeVnLIqe-");
        assert_eq!(mailbox_arg("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn base64_standard() {
        assert_eq!(base64(b"p:\xc3\xbc s", b"+/", true), "cDrDvCBz");
        assert_eq!(base64(b"ab", b"+/", true), "YWI=");
        assert_eq!(base64(b"a", b"+/", true), "YQ==");
    }

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"a LOGIN {3+}\r\n"), Some(3));
        assert_eq!(literal_len(b"* OK done\r\n"), None);
    }
}
