//! # Settings keys
//!
//! The `a{sv}` keys accepted by `CreateAccount`, `Update` and
//! `VerifySettings`, and returned (without passwords) by `Discover`. Each key
//! has exactly one D-Bus type; the daemon refuses any other.

/// The D-Bus type a settings key must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `s`
    Str,
    /// `s`, write-only: stored in the secret store, never read back.
    Secret,
    /// `b`
    Bool,
    /// `q`
    U16,
    /// `u`
    U32,
}

impl KeyKind {
    /// The D-Bus signature of the kind.
    pub fn signature(self) -> &'static str {
        match self {
            KeyKind::Str | KeyKind::Secret => "s",
            KeyKind::Bool => "b",
            KeyKind::U16 => "q",
            KeyKind::U32 => "u",
        }
    }

    /// The D-Bus type name, as `gdbus` spells it in a variant literal.
    pub fn type_name(self) -> &'static str {
        match self {
            KeyKind::Str | KeyKind::Secret => "string",
            KeyKind::Bool => "boolean",
            KeyKind::U16 => "uint16",
            KeyKind::U32 => "uint32",
        }
    }
}

/// One settings key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as it appears in the `a{sv}` dictionary.
    pub name: &'static str,
    /// Its type.
    pub kind: KeyKind,
    /// One line for `--help` and error messages.
    pub help: &'static str,
}

macro_rules! keys {
    ($($konst:ident = $name:literal : $kind:ident, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $konst: &str = $name;
        )*
        /// Every settings key, in the order documented in DESIGN.md.
        pub const KEYS: &[Key] = &[
            $(Key { name: $name, kind: KeyKind::$kind, help: $help },)*
        ];
    };
}

keys! {
    NAME = "name": Str, "Account name shown to the user (default: the address)";
    EMAIL = "email": Str, "E-mail address of the account";
    DISPLAY_NAME = "display-name": Str, "Your name, used in the From header of mail you send";
    USE_UNIFIED = "use-unified": Bool, "Deliver this account's mail into the Unified folder (default: true)";
    INCOMING_PROTOCOL = "incoming-protocol": Str, "imap or pop3 (default: imap)";
    INCOMING_HOST = "incoming-host": Str, "Host name of the IMAP or POP3 server";
    INCOMING_PORT = "incoming-port": U16, "Port of the incoming server (default from protocol and security)";
    INCOMING_SECURITY = "incoming-security": Str, "tls, starttls or none (default: tls)";
    INCOMING_LOGIN = "incoming-login": Str, "Login on the incoming server (default: the address)";
    INCOMING_PASSWORD = "incoming-password": Secret, "Password on the incoming server (write-only)";
    POLL_INTERVAL_MINUTES = "poll-interval-minutes": U32, "Minutes between polls, 1 to 1440 (default: 15)";
    LEAVE_ON_SERVER = "leave-on-server": Bool, "POP3: leave messages on the server (default: true)";
    DELETE_ON_SERVER = "delete-on-server": Bool, "POP3: deleting locally also deletes on the server (default: false)";
    SMTP_HOST = "smtp-host": Str, "Host name of the SMTP server (empty: no outgoing server)";
    SMTP_PORT = "smtp-port": U16, "Port of the SMTP server (default: 465 for tls, 587 for starttls, 25 for none)";
    SMTP_SECURITY = "smtp-security": Str, "tls, starttls or none (default: tls)";
    SMTP_LOGIN = "smtp-login": Str, "Login on the SMTP server (default: the incoming login)";
    SMTP_PASSWORD = "smtp-password": Secret, "Password on the SMTP server (default: the incoming password; write-only)";
    FOLDER_SENT = "folder-sent": Str, "Folder for sent mail (empty: detected)";
    FOLDER_DRAFTS = "folder-drafts": Str, "Folder for drafts (empty: detected)";
    FOLDER_TRASH = "folder-trash": Str, "Folder for deleted mail (empty: detected)";
    FOLDER_SPAM = "folder-spam": Str, "Folder for spam (empty: detected)";
    FOLDER_ARCHIVE = "folder-archive": Str, "Folder for archived mail (empty: detected)";
    ACCEPT_INVALID_CERTS = "accept-invalid-certs": Bool, "Accept certificates that fail verification (default: false; unsafe)";
}

/// Values of `incoming-protocol`.
pub const PROTOCOLS: &[&str] = &["imap", "pop3"];
/// Values of `incoming-security` and `smtp-security`.
pub const SECURITIES: &[&str] = &["tls", "starttls", "none"];
/// Folder roles, as used in the `Folders` property, with their keys.
pub const FOLDER_ROLES: &[(&str, &str)] = &[
    ("sent", FOLDER_SENT),
    ("drafts", FOLDER_DRAFTS),
    ("trash", FOLDER_TRASH),
    ("spam", FOLDER_SPAM),
    ("archive", FOLDER_ARCHIVE),
];

/// The key with this name, if there is one.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
