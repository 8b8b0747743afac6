//! # Wire names read by facteurctl
//!
//! Property names of the Account object and the keys of message summaries
//! and verify reports, as the D-Bus contract spells them
//! (`dbus/org.facteur.Facteur1.xml`). `facteur-dbus` exports the
//! bus names, paths and settings keys but not these yet, so the few that
//! facteurctl reads by name are gathered here, once. Everything else is
//! passed through generically (all properties, all summary keys), so a key
//! the daemon adds later still shows up in `--json` and `account show`.

/// Account properties.
pub mod prop {
    /// `s`
    pub const ID: &str = "Id";
    /// `s`
    pub const NAME: &str = "Name";
    /// `s`
    pub const EMAIL_ADDRESS: &str = "EmailAddress";
    /// `s`
    pub const INCOMING_PROTOCOL: &str = "IncomingProtocol";
    /// `a{ss}`, role → folder
    pub const FOLDERS: &str = "Folders";
    /// `s`
    pub const STATE: &str = "State";
    /// `s`
    pub const LAST_ERROR: &str = "LastError";
    /// `s`, a stable code from the documented list, `''` when healthy
    pub const LAST_ERROR_CODE: &str = "LastErrorCode";
    /// `b`, true when only the user can fix what is wrong
    pub const ATTENTION_NEEDED: &str = "AttentionNeeded";
    /// `t`, unix seconds of the next retry, 0 for none
    pub const NEXT_RETRY: &str = "NextRetry";
    /// `(uu)`, (done, total) messages of the current pass, (0, 0) when idle
    pub const PROGRESS: &str = "Progress";
    /// `t`, unix seconds, 0 for never
    pub const LAST_SYNC: &str = "LastSync";
    /// `u`
    pub const MESSAGE_COUNT: &str = "MessageCount";
    /// `u`
    pub const UNREAD_COUNT: &str = "UnreadCount";

    /// The order `account show` prints properties in; others follow,
    /// sorted.
    pub const SHOW_ORDER: &[&str] = &[
        ID,
        NAME,
        EMAIL_ADDRESS,
        "DisplayName",
        "UseUnified",
        INCOMING_PROTOCOL,
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
        FOLDERS,
        "AcceptInvalidCerts",
        STATE,
        ATTENTION_NEEDED,
        LAST_ERROR_CODE,
        LAST_ERROR,
        NEXT_RETRY,
        PROGRESS,
        LAST_SYNC,
        MESSAGE_COUNT,
        UNREAD_COUNT,
    ];
}

/// Keys of a message summary (`ListUnified`, `ListMessages`).
pub mod summary {
    /// `s`, the id `show` takes
    pub const ID: &str = "id";
    /// `s`
    pub const FROM: &str = "from";
    /// `s`, decoded
    pub const SUBJECT: &str = "subject";
    /// `date` (`x`, unix seconds) after `crate::shape`, which makes
    /// `date` an RFC 3339 string
    pub const DATE_UNIX: &str = "date-unix";
}

/// Keys of a verify report (`Verify`, `VerifySettings`).
pub mod report {
    /// `b`
    pub const INCOMING_OK: &str = "incoming-ok";
    /// `s`
    pub const INCOMING_ERROR: &str = "incoming-error";
    /// `b`
    pub const SMTP_OK: &str = "smtp-ok";
    /// `s`
    pub const SMTP_ERROR: &str = "smtp-error";
    /// `b`, false when the settings have no SMTP host (receive-only)
    pub const SMTP_SET: &str = "smtp-set";
    /// `as`
    pub const CAPABILITIES: &str = "capabilities";
    /// `u`
    pub const ELAPSED_MS: &str = "elapsed-ms";
    /// `aa{sv}`
    pub const STEPS: &str = "steps";
    /// Step: `s`, incoming or smtp
    pub const SERVICE: &str = "service";
    /// Step: `s`, dns, connect, tls, …
    pub const STEP: &str = "step";
    /// Step: `b`
    pub const OK: &str = "ok";
    /// Step: `s`
    pub const DETAIL: &str = "detail";
}
