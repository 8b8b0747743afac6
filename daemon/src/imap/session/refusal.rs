//! # IMAP refusals in words
//!
//! async-imap reports a `NO` or `BAD` with the response's debug form
//! (`code: None, info: Some("[AUTHENTICATIONFAILED] Authentication
//! failed.")`); these helpers take the server's words out of it, tell a
//! refused password from a server's own limit (RFC 5530 `[LIMIT]`,
//! `[UNAVAILABLE]`, `[INUSE]`, `[OVERQUOTA]`, or "too many connections") and
//! build the sentence a person reads.

use crate::net::steps::clean;
use crate::net::{self, Failure, FailureKind};

/// Classify an async-imap error. Its text is cut to a sentence's length:
/// some errors quote everything the server sent.
pub fn imap_failure(what: &str, e: async_imap::error::Error) -> Failure {
    let mut f = classify(what, e);
    if f.message.chars().count() > 300 {
        f.message = f.message.chars().take(300).chain("…".chars()).collect();
    }
    f
}

fn classify(what: &str, e: async_imap::error::Error) -> Failure {
    use async_imap::error::Error as E;
    match e {
        E::Io(io) => Failure::new(
            if io.kind() == std::io::ErrorKind::TimedOut {
                FailureKind::Timeout
            } else {
                FailureKind::Connection
            },
            format!("The connection broke during {what}: {io}"),
        ),
        E::ConnectionLost => Failure::new(
            FailureKind::Connection,
            format!("The server closed the connection during {what}"),
        ),
        E::No(m) | E::Bad(m) => {
            let text = said(&m);
            let kind = if is_limit(&text) {
                FailureKind::ServerLimit
            } else {
                FailureKind::Protocol
            };
            Failure::new(
                kind,
                format!("The server refused {what}{}", quoted_text(&text)),
            )
        }
        other => Failure::new(
            FailureKind::Protocol,
            format!("{what} failed: {}", clean(&other.to_string())),
        ),
    }
}

/// ` (text)`, or nothing for an empty text.
pub(super) fn quoted_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// What the server said, out of the text of an async-imap `No`/`Bad`:
/// async-imap puts the response's debug form there (`code: None, info:
/// Some("[AUTHENTICATIONFAILED] Authentication failed.")`); a person wants
/// `[AUTHENTICATIONFAILED] Authentication failed.`. Text in another form is
/// kept as it is (cleaned).
pub fn said(m: &str) -> String {
    for key in ["info: ", "information: "] {
        let Some(at) = m.find(key) else { continue };
        let rest = &m[at + key.len()..];
        if rest.starts_with("None") {
            return alert_of(m);
        }
        if let Some(quoted) = rest.strip_prefix("Some(\"") {
            return clean(&format!("{}{}", alert_of(m), unescape(quoted)));
        }
    }
    clean(m)
}

/// `[ALERT] ` when the debug form carries that code (the one response
/// code imap-proto parses that a person must see).
fn alert_of(m: &str) -> String {
    if m.contains("code: Some(Alert)") {
        "[ALERT] ".to_owned()
    } else {
        String::new()
    }
}

/// A Rust debug string up to its closing quote, unescaped.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') | Some('r') | Some('t') => out.push(' '),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// Whether a server's text says it refused for a limit of its own: the
/// RFC 5530 response codes `[LIMIT]`, `[UNAVAILABLE]`, `[INUSE]`, `[OVERQUOTA]`,
/// or words saying so (too many connections).
pub fn is_limit(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    ["[LIMIT]", "[UNAVAILABLE]", "[INUSE]", "[OVERQUOTA]"]
        .iter()
        .any(|code| upper.contains(code))
        || net::mentions_limit(text)
}

/// A refused login as a failure. Only a refusal of the credentials is
/// `Auth` (which makes the account wait for a new password): a bare `NO`,
/// or the RFC 5530 codes `[AUTHENTICATIONFAILED]`, `[AUTHORIZATIONFAILED]`
/// and `[EXPIRED]`. A server limit is `ServerLimit`; `[SERVERBUG]` and a
/// `BAD` are the server's own trouble (`Protocol`, retried);
/// `[PRIVACYREQUIRED]` asks for TLS; `[CONTACTADMIN]` needs the provider.
pub(super) fn login_refused(host: &str, login: &str, e: async_imap::error::Error) -> Failure {
    let (text, bad) = match e {
        async_imap::error::Error::No(m) => (said(&m), false),
        async_imap::error::Error::Bad(m) => (said(&m), true),
        other => return imap_failure("the login", other),
    };
    let upper = text.to_ascii_uppercase();
    let has = |code: &str| upper.contains(code);
    let words = quoted_text(&text);
    if is_limit(&text) {
        Failure::new(
            FailureKind::ServerLimit,
            format!(
                "The server {host} refused the login for {login} for now, for a limit of \
                 its own{words}; facteur tries again later"
            ),
        )
    } else if has("[AUTHENTICATIONFAILED]") || has("[AUTHORIZATIONFAILED]") || has("[EXPIRED]") {
        Failure::new(
            FailureKind::Auth,
            format!("The server {host} refused the password for login {login}{words}"),
        )
    } else if has("[PRIVACYREQUIRED]") {
        Failure::new(
            FailureKind::Tls,
            format!(
                "The server {host} refuses logins without encryption{words}; use security tls \
                 or starttls"
            ),
        )
    } else if has("[CONTACTADMIN]") {
        Failure::new(
            FailureKind::NotSupported,
            format!(
                "The server {host} refused the login for {login} and asks you to contact its \
                 administrator{words}"
            ),
        )
    } else if bad || has("[SERVERBUG]") {
        Failure::new(
            FailureKind::Protocol,
            format!(
                "The server {host} could not log {login} in because of a problem of its \
                 own{words}; facteur tries again later"
            ),
        )
    } else {
        Failure::new(
            FailureKind::Auth,
            format!("The server {host} refused the password for login {login}{words}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::error::Error as E;

    #[test]
    fn only_a_refusal_of_the_credentials_asks_for_a_password() {
        let kind = |e| login_refused("h", "u", e).kind;
        let no = |t: &str| E::No(format!("code: None, info: Some({t:?})"));
        assert_eq!(
            kind(no("[AUTHENTICATIONFAILED] Authentication failed.")),
            FailureKind::Auth
        );
        assert_eq!(kind(no("Login failed.")), FailureKind::Auth);
        assert_eq!(kind(no("[EXPIRED] Password expired")), FailureKind::Auth);
        assert_eq!(
            kind(no("[SERVERBUG] Internal error occurred")),
            FailureKind::Protocol
        );
        assert_eq!(kind(no("[PRIVACYREQUIRED] Use TLS")), FailureKind::Tls);
        assert_eq!(
            kind(no("[CONTACTADMIN] Account disabled")),
            FailureKind::NotSupported
        );
        assert_eq!(
            kind(no("[LIMIT] Too many connections")),
            FailureKind::ServerLimit
        );
        assert_eq!(kind(E::Bad("unexpected".into())), FailureKind::Protocol);
    }

    #[test]
    fn the_server_text_is_taken_out_of_the_debug_form() {
        assert_eq!(
            said(r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(
            said(r#"code: Some(Alert), info: Some("Say \"hi\"")"#),
            "[ALERT] Say \"hi\""
        );
        assert_eq!(said("code: None, info: None"), "");
        assert_eq!(
            said(
                r#"outcome: ResponseOutcome { code: None, information: Some("No such mailbox") }"#
            ),
            "No such mailbox"
        );
        assert_eq!(said("plain words"), "plain words");
    }

    #[test]
    fn a_refused_password_reads_as_a_sentence() {
        let e = E::No(
            r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#.to_owned(),
        );
        let f = login_refused("127.0.0.1", "bench1", e);
        assert_eq!(f.kind, FailureKind::Auth);
        assert_eq!(
            f.message,
            "The server 127.0.0.1 refused the password for login bench1 \
             ([AUTHENTICATIONFAILED] Authentication failed.)"
        );
        for debug in ["Some(", "None", "code:"] {
            assert!(!f.message.contains(debug), "{f}");
        }
    }

    #[test]
    fn server_limits_at_login_are_their_own_kind() {
        for text in [
            "[LIMIT] Too many sessions",
            "[UNAVAILABLE] Backend down",
            "[INUSE] Mailbox locked",
            "[OVERQUOTA] Over quota",
            "Maximum number of connections from user+IP exceeded",
        ] {
            let e = E::No(format!("code: None, info: Some({text:?})"));
            let f = login_refused("imap.example.net", "ann", e);
            assert_eq!(f.kind, FailureKind::ServerLimit, "{text}: {f}");
            assert_eq!(f.code(), "server-limit");
            assert!(f.message.contains(text), "{f}");
        }
    }

    #[test]
    fn other_refusals_keep_the_words_only() {
        let f = imap_failure(
            "SELECT",
            E::No(r#"code: None, info: Some("Mailbox doesn't exist: Foo")"#.to_owned()),
        );
        assert_eq!(f.kind, FailureKind::Protocol);
        assert_eq!(
            f.message,
            "The server refused SELECT (Mailbox doesn't exist: Foo)"
        );
        let f = imap_failure(
            "APPEND",
            E::No(r#"code: None, info: Some("[OVERQUOTA] Quota exceeded")"#.to_owned()),
        );
        assert_eq!(f.kind, FailureKind::ServerLimit);
    }
}
