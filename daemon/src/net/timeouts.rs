//! # Deadlines
//!
//! The one timeout table of facteur: every step of every protocol (name
//! resolution, TCP connect, TLS, greeting, CAPABILITY, STARTTLS, login and
//! every command afterwards) waits at most this long, for the sync engines
//! and Verify alike. Verify also cuts each step to what is left of its
//! per-service budget (see [`super::Steps`]).
//!
//! `FACTEUR_COMMAND_TIMEOUT_MS`, read once at the first use, caps every
//! deadline but the name resolution, TCP connect and TLS ones (the
//! greeting, replies, logins, commands and stream writes): a test against
//! a server that greets and then goes silent then takes seconds, not a
//! minute. It is meant for tests; an unset, empty, zero or unreadable
//! value leaves the table as it is.

use std::sync::OnceLock;
use std::time::Duration;

/// Longest name resolution.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest TCP connect (all addresses together).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest TLS handshake (implicit or after STARTTLS).
pub const TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a greeting or a short command's answer before login
/// (CAPABILITY, CAPA, EHLO, STARTTLS): a server that takes longer is
/// broken or overloaded, and a person verifying settings is waiting.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest login: servers delay failed logins on purpose (Dovecot waits
/// 2 s by default), and some check passwords against slow back ends.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one command may wait for its answer (or, for a long answer,
/// for its next response).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Silence after which a stream read fails. Longer than the IMAP IDLE
/// re-issue interval (see `imap::IDLE_TIMEOUT`), so that only a dead
/// connection trips it; every command has its own shorter deadline.
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(11 * 60);

/// How long a report waits for LOGOUT/QUIT after its answer is known: the
/// report must come back within the time a D-Bus caller waits.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// The environment variable that caps the deadlines (for tests).
pub const COMMAND_TIMEOUT_ENV: &str = "FACTEUR_COMMAND_TIMEOUT_MS";

/// The cap from [`COMMAND_TIMEOUT_ENV`], read once.
fn cap() -> Option<Duration> {
    static CAP: OnceLock<Option<Duration>> = OnceLock::new();
    *CAP.get_or_init(|| {
        let cap = parse_cap(std::env::var(COMMAND_TIMEOUT_ENV).ok().as_deref());
        if let Some(c) = cap {
            tracing::info!(
                "{COMMAND_TIMEOUT_ENV} is set: every command waits at most {} ms.",
                c.as_millis()
            );
        }
        cap
    })
}

fn parse_cap(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// `limit`, cut to the test cap when `FACTEUR_COMMAND_TIMEOUT_MS` is set.
/// Every command deadline goes through this.
pub fn within(limit: Duration) -> Duration {
    match cap() {
        Some(c) => limit.min(c),
        None => limit,
    }
}

/// The deadline of a name resolution.
pub fn dns_timeout() -> Duration {
    DNS_TIMEOUT
}

/// The deadline of a TCP connect.
pub fn connect_timeout() -> Duration {
    CONNECT_TIMEOUT
}

/// The deadline of a TLS handshake.
pub fn tls_timeout() -> Duration {
    TLS_TIMEOUT
}

/// The deadline of a greeting or a short reply.
pub fn reply_timeout() -> Duration {
    within(REPLY_TIMEOUT)
}

/// The deadline of a login.
pub fn auth_timeout() -> Duration {
    within(AUTH_TIMEOUT)
}

/// [`GOODBYE_TIMEOUT`], capped like the others.
pub fn goodbye_timeout() -> Duration {
    within(GOODBYE_TIMEOUT)
}

/// The deadline of one command (or of the next response of a long one).
pub fn command_timeout() -> Duration {
    within(COMMAND_TIMEOUT)
}

/// A duration for a sentence: `1.5 s`, `60 s`, `800 ms`.
pub fn shown(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_read_as_milliseconds() {
        assert_eq!(parse_cap(Some("1500")), Some(Duration::from_millis(1500)));
        assert_eq!(parse_cap(Some(" 200 ")), Some(Duration::from_millis(200)));
        assert_eq!(parse_cap(Some("0")), None);
        assert_eq!(parse_cap(Some("soon")), None);
        assert_eq!(parse_cap(None), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(shown(Duration::from_millis(800)), "800 ms");
        assert_eq!(shown(Duration::from_secs(60)), "60 s");
        assert_eq!(shown(Duration::from_millis(1500)), "1.5 s");
    }
}
