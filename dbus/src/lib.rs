//! # The facteur D-Bus contract
//!
//! Everything an outside program needs to talk to `facteurd`: the bus name,
//! object paths and interface names ([`names`]), the settings keys accepted
//! by `CreateAccount`, `Update` and `VerifySettings` ([`keys`]), the one
//! error enum every method answers with ([`Error`]), and zbus proxies for the
//! Manager and Account interfaces ([`proxy`]).
//!
//! This crate does no I/O of its own. The daemon and `facteurctl` both depend
//! on it, so each name is spelled exactly once. The contract itself is
//! described in `DESIGN.md`; `dbus/org.facteur.Facteur1.xml` is the
//! introspection data the daemon must keep serving (a test compares them).

pub mod keys;
// The proxy macro generates undocumented items (signal args, streams).
#[allow(missing_docs)]
pub mod proxy;

pub use keys::{Key, KeyKind, KEYS};

/// Bus names, object paths and interface names.
pub mod names {
    /// The well-known name `facteurd` owns on the session bus.
    pub const BUS_NAME: &str = "org.facteur.Facteur1";
    /// The root object: the Manager and the ObjectManager live here.
    pub const ROOT_PATH: &str = "/org/facteur/Facteur1";
    /// Parent of every account object (`ACCOUNTS_PATH/<id>`).
    pub const ACCOUNTS_PATH: &str = "/org/facteur/Facteur1/accounts";
    /// The Manager interface, at [`ROOT_PATH`].
    pub const MANAGER_INTERFACE: &str = "org.facteur.Facteur1.Manager";
    /// The Account interface, one object per account.
    pub const ACCOUNT_INTERFACE: &str = "org.facteur.Facteur1.Account";
    /// Prefix of every error name the daemon answers with.
    pub const ERROR_PREFIX: &str = "org.facteur.Facteur1.Error";

    /// Every property of the Account interface: DESIGN.md's list, plus
    /// `AcceptInvalidCerts`, the health and progress properties
    /// (`LastErrorCode`, `AttentionNeeded`, `NextRetry`, `Progress`) whose
    /// names DESIGN.md reserves, and the two-way sync counters
    /// (`PendingChanges`, `OutboxCount`, `OutboxFailedCount`).
    pub const ACCOUNT_PROPERTIES: &[&str] = &[
        "Id",
        "Name",
        "EmailAddress",
        "DisplayName",
        "UseUnified",
        "IncomingProtocol",
        "IncomingHost",
        "IncomingPort",
        "IncomingSecurity",
        "IncomingLogin",
        "PollIntervalMinutes",
        "LeaveOnServer",
        "DeleteOnServer",
        "SmtpHost",
        "SmtpPort",
        "SmtpSecurity",
        "SmtpLogin",
        "Folders",
        "State",
        "LastError",
        "LastErrorCode",
        "AttentionNeeded",
        "NextRetry",
        "Progress",
        "LastSync",
        "MessageCount",
        "UnreadCount",
        "AcceptInvalidCerts",
        "PendingChanges",
        "OutboxCount",
        "OutboxFailedCount",
    ];

    /// The Account properties that describe run-time status rather than
    /// settings: they change without `Update`, each announced with
    /// PropertiesChanged.
    pub const STATUS_PROPERTIES: &[&str] = &[
        "State",
        "LastError",
        "LastErrorCode",
        "AttentionNeeded",
        "NextRetry",
        "Progress",
        "LastSync",
        "MessageCount",
        "UnreadCount",
        "PendingChanges",
        "OutboxCount",
        "OutboxFailedCount",
    ];

    /// Every property of the Manager interface.
    pub const MANAGER_PROPERTIES: &[&str] = &["Version", "SecretStore"];

    /// The object path of the account with the given id.
    pub fn account_path(id: &str) -> String {
        format!("{ACCOUNTS_PATH}/{id}")
    }

    /// The account id in an account object path, if it is one.
    pub fn account_id(path: &str) -> Option<&str> {
        path.strip_prefix(ACCOUNTS_PATH)?
            .strip_prefix('/')
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }
}

/// Values of the `State` property of an account.
pub mod state {
    /// Connected and up to date (or waiting for the next poll).
    pub const IDLE: &str = "idle";
    /// A sync pass is running.
    pub const SYNCING: &str = "syncing";
    /// The server cannot be reached; the daemon retries with backoff.
    pub const OFFLINE: &str = "offline";
    /// Something failed that retrying will not fix; see `LastError`.
    pub const ERROR: &str = "error";
    /// No usable password: the keyring is locked, or none was given.
    pub const NEEDS_CREDENTIALS: &str = "needs-credentials";
    /// The account is switched off.
    pub const DISABLED: &str = "disabled";
}

/// Values of the `LastErrorCode` property of an account: a stable code a
/// program can branch on, where `LastError` is the sentence for a person.
pub mod error_code {
    /// Healthy: no error since the last successful pass.
    pub const NONE: &str = "";
    /// The server refused the login or password.
    pub const AUTH_FAILED: &str = "auth-failed";
    /// TLS could not be set up with the server.
    pub const TLS_FAILED: &str = "tls-failed";
    /// The server's certificate is not trusted.
    pub const CERTIFICATE_UNTRUSTED: &str = "certificate-untrusted";
    /// The server could not be reached or closed the connection.
    pub const CONNECTION_FAILED: &str = "connection-failed";
    /// The server did not answer in time.
    pub const TIMEOUT: &str = "timeout";
    /// The server answered something facteur cannot use.
    pub const PROTOCOL: &str = "protocol";
    /// The disk holding the mail store is full.
    pub const DISK_FULL: &str = "disk-full";
    /// The keyring holding the password is locked.
    pub const KEYRING_LOCKED: &str = "keyring-locked";
    /// The server refused for a limit (too many connections, quota, rate).
    pub const SERVER_LIMIT: &str = "server-limit";
    /// No password is stored for the account.
    pub const NO_PASSWORD: &str = "no-password";
    /// Something went wrong inside facteur or on this machine (the message
    /// index, the secret store refused for another reason than a lock).
    pub const INTERNAL: &str = "internal";
    /// Every code, `NONE` first.
    pub const ALL: &[&str] = &[
        NONE,
        AUTH_FAILED,
        TLS_FAILED,
        CERTIFICATE_UNTRUSTED,
        CONNECTION_FAILED,
        TIMEOUT,
        PROTOCOL,
        DISK_FULL,
        KEYRING_LOCKED,
        SERVER_LIMIT,
        NO_PASSWORD,
        INTERNAL,
    ];
}

/// Values of the Manager's `SecretStore` property.
pub mod secret_store {
    /// Passwords live in the Secret Service (gnome-keyring, KWallet, …).
    pub const SECRET_SERVICE: &str = "secret-service";
    /// Passwords live in a 0600 file beside the account settings.
    pub const FILE: &str = "file";
}

/// Every error the daemon answers with, named
/// `org.facteur.Facteur1.Error.<Variant>`. Each carries a sentence a person
/// can act on.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.facteur.Facteur1.Error")]
pub enum Error {
    /// A D-Bus level failure (the daemon is not running, the bus is gone …).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A settings key, a value or an argument is not acceptable.
    InvalidArgument(String),
    /// No account, folder or message has this id.
    NotFound(String),
    /// An equal account already exists.
    AlreadyExists(String),
    /// The server refused the credentials.
    AuthenticationFailed(String),
    /// The server could not be reached.
    ConnectionFailed(String),
    /// TLS could not be set up or the certificate was refused.
    TlsFailed(String),
    /// A step did not finish in time.
    Timeout(String),
    /// The operation is not available (yet, or for this account).
    NotSupported(String),
    /// A failure inside the daemon; the message carries the cause.
    Internal(String),
}

impl Error {
    /// The short name of the error (`InvalidArgument`, …), without prefix.
    pub fn short_name(&self) -> String {
        use zbus::DBusError;
        let name = self.name();
        let name = name.as_str();
        name.rsplit('.').next().unwrap_or(name).to_owned()
    }

    /// The human sentence carried by the error.
    pub fn message(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::AuthenticationFailed(m)
            | Error::ConnectionFailed(m)
            | Error::TlsFailed(m)
            | Error::Timeout(m)
            | Error::NotSupported(m)
            | Error::Internal(m) => m.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_paths_round_trip() {
        let p = names::account_path("alice_example_org");
        assert_eq!(p, "/org/facteur/Facteur1/accounts/alice_example_org");
        assert_eq!(names::account_id(&p), Some("alice_example_org"));
        assert_eq!(names::account_id(names::ACCOUNTS_PATH), None);
        assert_eq!(
            names::account_id("/org/facteur/Facteur1/accounts/a/b"),
            None
        );
    }

    #[test]
    fn error_names_carry_the_prefix() {
        use zbus::DBusError;
        let e = Error::InvalidArgument("incoming-port: 0 is not a port".into());
        assert_eq!(
            e.name().as_str(),
            "org.facteur.Facteur1.Error.InvalidArgument"
        );
        assert_eq!(e.short_name(), "InvalidArgument");
        assert_eq!(e.message(), "incoming-port: 0 is not a port");
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut names: Vec<_> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
        assert!(keys::find("incoming-port").is_some());
        assert!(keys::find("bogus").is_none());
    }
}
