//! # POP3 errors
//!
//! Owns the typed error of the POP3 client and the parsing of the extended
//! response codes of RFC 2449 §8 and RFC 3206 (`-ERR [IN-USE] ...`). The
//! scheduler branches on these (back off, ask for a password, give up), so
//! they are an enum and not text. Mapping to the D-Bus error names is left
//! to the interface edge.
//!
//! No variant ever holds a password: login failures carry only what the
//! server said, and the server's text is cleaned of control characters and
//! shortened before it is kept (see `server_text`).

use std::fmt;
use std::time::Duration;

/// Longest server text kept in an error; the rest is cut. RFC 2449 §4 caps a
/// response line at 512 octets, so this loses nothing from a sane server.
const MAX_SERVER_TEXT: usize = 512;

/// Why a POP3 operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to the connection failed.
    #[error("The POP3 connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// Writing the retrieved message to the caller's sink failed (a full
    /// disk, say); the connection itself may be fine.
    #[error("Cannot write the retrieved message: {0}")]
    Sink(#[source] std::io::Error),
    /// The server did not answer a step within the configured time.
    #[error("The POP3 server did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The server closed the connection (EOF) before the reply was complete.
    #[error("The POP3 server closed the connection")]
    Closed,
    /// The server answered `-ERR` to a command other than a login.
    #[error("The POP3 server refused {command}: {message}")]
    Server {
        /// The command that was refused, e.g. `DELE 3` (never a credential).
        command: String,
        /// The RFC 2449 / RFC 3206 response code, when the server sent one.
        code: Option<ResponseCode>,
        /// The rest of the server's text, cleaned for display.
        message: String,
    },
    /// The server refused the credentials (`-ERR` to USER, PASS or AUTH,
    /// without a code saying the cause is temporary or elsewhere).
    #[error("The POP3 server refused the login: {message}")]
    AuthenticationFailed {
        /// The response code, usually `[AUTH]` or none.
        code: Option<ResponseCode>,
        /// The server's text, cleaned for display; never the password.
        message: String,
    },
    /// The server's reply does not follow the protocol.
    #[error("The POP3 server sent a malformed reply: {0}")]
    Protocol(String),
    /// The server sent a line longer than the configured bound.
    #[error("The POP3 server sent a line longer than {limit} bytes")]
    LineTooLong {
        /// The bound, in bytes, including the line end.
        limit: usize,
    },
    /// A message, or a listing, is larger than the bound the caller set.
    #[error("The message is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The bound in bytes (or in entries, for a listing).
        limit: u64,
    },
    /// The server sent bytes after its `+OK` to STLS and before the TLS
    /// handshake: a response-injection attempt (Poddebniak et al., "Why TLS
    /// is better without STARTTLS", USENIX Security 2021).
    #[error(
        "The POP3 server sent data after accepting STLS and before the TLS handshake; \
         refusing the connection (possible response injection)"
    )]
    StlsInjection,
    /// The account requires TLS through STLS but the server does not offer
    /// it (RFC 8314 §5: no fall-back to cleartext).
    #[error(
        "The POP3 server does not offer STLS, and this account requires TLS; \
         use implicit TLS (port 995) or fix the server"
    )]
    TlsRequired,
    /// An earlier failure (or a cancelled call) left the connection in the
    /// middle of a reply, so the next reply cannot be told apart; reconnect.
    #[error("The POP3 session is out of step after an earlier failure; reconnect")]
    Desynchronized,
    /// The caller passed something that cannot be sent safely, such as a
    /// user name with a line break (which would inject a command).
    #[error("Cannot send this to a POP3 server: {0}")]
    InvalidInput(&'static str),
}

impl Error {
    /// Whether trying again later may succeed: network trouble, timeouts and
    /// the codes that say so (`[SYS/TEMP]`, `[IN-USE]`, `[LOGIN-DELAY]`).
    /// Everything else (a wrong password, a protocol violation, a refused
    /// STLS) needs a person or a code change.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io(_) | Error::Timeout(_) | Error::Closed | Error::Desynchronized => true,
            Error::Server { code, .. } => match code {
                Some(code) => code.is_transient(),
                // A bare -ERR says nothing; the scheduler's backoff bounds
                // how often it is retried.
                None => true,
            },
            _ => false,
        }
    }

    /// The response code of a `-ERR` reply, if there was one.
    pub fn response_code(&self) -> Option<&ResponseCode> {
        match self {
            Error::Server { code, .. } | Error::AuthenticationFailed { code, .. } => code.as_ref(),
            _ => None,
        }
    }
}

/// An extended response code in brackets after `-ERR` (RFC 2449 §8, RFC 3206).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    /// `[LOGIN-DELAY]`: logged in too soon after the last login (RFC 2449 §8.1.1).
    LoginDelay,
    /// `[IN-USE]`: another session holds the maildrop lock (RFC 2449 §8.1.2).
    InUse,
    /// `[AUTH]`: the credentials are wrong or refused (RFC 3206 §5).
    Auth,
    /// `[SYS/TEMP]`: a temporary problem on the server (RFC 3206 §4).
    SysTemp,
    /// `[SYS/PERM]`: a lasting problem on the server (RFC 3206 §4).
    SysPerm,
    /// Any other code, as sent (cleaned, upper-cased).
    Other(String),
}

impl ResponseCode {
    /// Whether the code says a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ResponseCode::LoginDelay | ResponseCode::InUse | ResponseCode::SysTemp
        )
    }

    /// Parse the text inside the brackets. Codes are hierarchical and
    /// case-insensitive (RFC 2449 §8: "SYS/TEMP" refines "SYS").
    fn from_bytes(code: &[u8]) -> ResponseCode {
        let code = server_text(code).to_ascii_uppercase();
        match code.as_str() {
            "LOGIN-DELAY" => ResponseCode::LoginDelay,
            "IN-USE" => ResponseCode::InUse,
            "AUTH" => ResponseCode::Auth,
            "SYS/TEMP" => ResponseCode::SysTemp,
            "SYS/PERM" => ResponseCode::SysPerm,
            _ => ResponseCode::Other(code),
        }
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::InUse => "IN-USE",
            ResponseCode::Auth => "AUTH",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::Other(s) => s,
        };
        f.write_str(s)
    }
}

/// Split the text of a `-ERR` reply into its response code and the rest.
/// `text` is what follows `-ERR `. A `[` without a closing `]` is not a
/// code; the whole text is then the message.
pub(crate) fn split_response_code(text: &[u8]) -> (Option<ResponseCode>, String) {
    if let Some(rest) = text.strip_prefix(b"[") {
        if let Some(end) = rest.iter().position(|&b| b == b']') {
            let (code, after) = rest.split_at(end);
            let after = after.get(1..).unwrap_or_default();
            if !code.is_empty() {
                return (
                    Some(ResponseCode::from_bytes(code)),
                    server_text(after.trim_ascii_start()),
                );
            }
        }
    }
    (None, server_text(text))
}

/// Server bytes made fit for an error message or a log line: not assumed to
/// be UTF-8 (invalid sequences become U+FFFD), control characters replaced,
/// and cut at a bound so a hostile server cannot grow our errors.
pub(crate) fn server_text(bytes: &[u8]) -> String {
    let bytes = bytes.get(..MAX_SERVER_TEXT).unwrap_or(bytes);
    String::from_utf8_lossy(bytes.trim_ascii())
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}
