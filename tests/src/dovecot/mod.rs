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
mod config;
mod encoding;
mod imap_client;
mod lmtp;
mod mailbox;
mod process;
mod server;
mod users;

pub use encoding::{encode_mailbox_name, mailbox_arg};
pub use imap_client::{ImapClient, ImapReply};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

use crate::tls::{CertPair, TestCa};

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
