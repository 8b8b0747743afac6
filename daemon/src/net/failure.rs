//! # Failures
//!
//! [`Failure`], the typed outcome every protocol module reports: a
//! [`FailureKind`] for the scheduler and the D-Bus edge, and a sentence a
//! person can act on (never Rust debug text, never a password). Also the
//! helpers the protocols share to turn what a server said into such a
//! sentence ([`server_text`]) and to recognise a server's own limits
//! ([`mentions_limit`]).

use std::fmt;

/// What kind of failure, for error names and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Name resolution or TCP connect failed, or the connection dropped.
    Connection,
    /// TLS could not be set up, the certificate was refused, or STARTTLS
    /// was required and not offered.
    Tls,
    /// A step took too long.
    Timeout,
    /// The server refused the credentials.
    Auth,
    /// No usable password.
    Credentials,
    /// The server said something we cannot work with.
    Protocol,
    /// The server lacks something we need.
    NotSupported,
    /// Local failure (store, disk).
    Local,
    /// The disk holding the store is full (ENOSPC, EDQUOT); retried.
    DiskFull,
    /// The server's certificate is not trusted (unknown issuer,
    /// self-signed, expired, wrong host name): only the user can decide.
    Certificate,
    /// The server refused for a limit of its own (too many connections,
    /// over quota, rate limit, temporarily unavailable); retried later.
    ServerLimit,
}

/// A failure a person can act on: what kind, and a sentence.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened, naming host, port or login (never a password).
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying later may help without a person doing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Connection
                | FailureKind::Timeout
                | FailureKind::Protocol
                | FailureKind::Local
                | FailureKind::DiskFull
                | FailureKind::ServerLimit
        )
    }

    /// Whether only the user can fix this (credentials, a certificate):
    /// the account's `AttentionNeeded`.
    pub fn attention_needed(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Auth | FailureKind::Credentials | FailureKind::Certificate
        )
    }

    /// The stable `LastErrorCode` of this failure ('' for none of the
    /// listed causes).
    pub fn code(&self) -> &'static str {
        match self.kind {
            FailureKind::Auth => "auth-failed",
            FailureKind::Tls => "tls-failed",
            FailureKind::Connection => "connection-failed",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol | FailureKind::NotSupported => "protocol",
            FailureKind::Credentials => "keyring-locked",
            FailureKind::DiskFull => "disk-full",
            FailureKind::Certificate => "certificate-untrusted",
            FailureKind::ServerLimit => "server-limit",
            FailureKind::Local => "internal",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Failure>() {
            Ok(f) => f,
            Err(e) => {
                let full = e
                    .downcast_ref::<crate::store::Unavailable>()
                    .map(|u| u.is_disk_full())
                    .unwrap_or(
                        crate::fsutil::disk_condition(&e)
                            == Some(crate::fsutil::DiskCondition::Full),
                    );
                let kind = if full {
                    FailureKind::DiskFull
                } else {
                    FailureKind::Local
                };
                Failure::new(kind, format!("{e:#}"))
            }
        }
    }
}

/// Server text made fit for a sentence: control characters replaced by
/// spaces, trimmed, cut at 300 characters.
pub fn server_text(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    if s.chars().count() > 300 {
        s = s.chars().take(299).collect();
        s.push('…');
    }
    s
}

/// Whether a server's words say it refused for a limit of its own (too
/// many connections, a rate limit, a quota), in any protocol. Response
/// codes are each protocol's business; this catches the free text servers
/// send with a BYE, a NO or a 4xx reply.
pub fn mentions_limit(text: &str) -> bool {
    const PHRASES: &[&str] = &[
        "too many connections",
        "too many simultaneous",
        "too many concurrent",
        "too many sessions",
        "too many logins",
        "maximum number of connections",
        "connection limit",
        "rate limit",
        "limit exceeded",
        "over quota",
        "quota exceeded",
        "try again later",
    ];
    let lower = text.to_lowercase();
    PHRASES.iter().any(|p| lower.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_recognised_in_free_text() {
        assert!(mentions_limit(
            "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"
        ));
        assert!(mentions_limit("Too many connections, slow down"));
        assert!(mentions_limit("4.7.0 Rate limit reached"));
        assert!(!mentions_limit("Authentication failed."));
        assert!(!mentions_limit(""));
    }

    #[test]
    fn server_text_is_one_clean_line() {
        assert_eq!(server_text("  a\r\nb\t "), "a  b");
        assert_eq!(server_text(&"x".repeat(400)).chars().count(), 300);
    }

    #[test]
    fn codes_follow_the_documented_list() {
        let code = |k| Failure::new(k, "x").code();
        assert_eq!(code(FailureKind::Certificate), "certificate-untrusted");
        assert_eq!(code(FailureKind::ServerLimit), "server-limit");
        assert_eq!(code(FailureKind::Timeout), "timeout");
        assert!(Failure::new(FailureKind::Certificate, "x").attention_needed());
        assert!(Failure::new(FailureKind::ServerLimit, "x").is_transient());
    }
}
