//! # Failure → state
//!
//! The one mapping from a [`Failure`] to what the account shows and what
//! its engine does next:
//!
//! | failure                         | State               | then                        |
//! |---------------------------------|---------------------|-----------------------------|
//! | `Auth`, `Credentials`           | `NeedsCredentials`  | wait for new credentials    |
//! | `Certificate`, `Tls`, `NotSupported` | `Error`        | retry after the longest delay |
//! | `DiskFull`                      | `Error`             | retry with backoff          |
//! | anything transient              | `Offline`           | retry with backoff          |
//!
//! `LastErrorCode` is [`Failure::code`], `AttentionNeeded`
//! [`Failure::attention_needed`], `NextRetry` the unix second of the next
//! attempt (0 while waiting for credentials).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::backoff::Backoff;
use super::State;
use crate::net::{Failure, FailureKind};

/// What an engine does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Try again after the backoff's next delay.
    Backoff,
    /// Try again after the longest delay: retrying soon will not help, but
    /// the cause may go away (a server fixed, a certificate renewed).
    Longest,
    /// Do not try again until new credentials come (a restart of the
    /// engine) or the user asks for a Sync.
    Credentials,
}

/// The state an account shows after `failure`.
pub fn state_of(failure: &Failure) -> State {
    match failure.kind {
        FailureKind::Auth | FailureKind::Credentials => State::NeedsCredentials,
        FailureKind::Certificate
        | FailureKind::Tls
        | FailureKind::NotSupported
        | FailureKind::DiskFull => State::Error,
        _ => State::Offline,
    }
}

/// What the engine does after `failure`.
pub fn then(failure: &Failure) -> Then {
    match failure.kind {
        FailureKind::Auth | FailureKind::Credentials => Then::Credentials,
        _ if failure.is_transient() => Then::Backoff,
        _ => Then::Longest,
    }
}

/// When the next attempt after `failure` is, from `backoff` (which grows)
/// and capped at `cap` when given (POP3's poll interval); `None` while
/// waiting for credentials.
pub fn retry_after(
    failure: &Failure,
    backoff: &mut Backoff,
    cap: Option<Duration>,
) -> Option<Duration> {
    match then(failure) {
        Then::Credentials => None,
        Then::Backoff => {
            let d = backoff.next_delay();
            Some(cap.map_or(d, |c| d.min(c)))
        }
        Then::Longest => Some(cap.map_or(Backoff::MAX, |c| c.max(Backoff::MAX))),
    }
}

/// The unix second at which `deadline` falls (rounded up), 0 for none:
/// the account's `NextRetry`.
pub fn unix_at(deadline: Option<Instant>) -> u64 {
    let Some(deadline) = deadline else {
        return 0;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now + left;
    at.as_secs() + u64::from(at.subsec_nanos() > 0)
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FailureKind) -> Failure {
        Failure::new(kind, "what happened")
    }

    #[test]
    fn refused_credentials_wait_for_the_user() {
        for kind in [FailureKind::Auth, FailureKind::Credentials] {
            let failure = f(kind);
            assert_eq!(state_of(&failure), State::NeedsCredentials);
            assert_eq!(then(&failure), Then::Credentials);
            assert!(failure.attention_needed());
            assert_eq!(retry_after(&failure, &mut Backoff::new(), None), None);
        }
        assert_eq!(f(FailureKind::Auth).code(), "auth-failed");
    }

    #[test]
    fn certificate_is_an_error_for_the_user() {
        let failure = f(FailureKind::Certificate);
        assert_eq!(state_of(&failure), State::Error);
        assert!(failure.attention_needed());
        assert_eq!(failure.code(), "certificate-untrusted");
        assert_eq!(then(&failure), Then::Longest);
    }

    #[test]
    fn tls_and_unsupported_are_errors_retried_slowly() {
        for kind in [FailureKind::Tls, FailureKind::NotSupported] {
            let failure = f(kind);
            assert_eq!(state_of(&failure), State::Error);
            assert!(!failure.attention_needed());
            assert_eq!(
                retry_after(&failure, &mut Backoff::new(), None),
                Some(Backoff::MAX)
            );
        }
    }

    #[test]
    fn a_full_disk_is_an_error_retried_with_backoff() {
        let failure = f(FailureKind::DiskFull);
        assert_eq!(state_of(&failure), State::Error);
        assert_eq!(then(&failure), Then::Backoff);
        assert_eq!(failure.code(), "disk-full");
    }

    #[test]
    fn transient_failures_are_offline_with_backoff() {
        for kind in [
            FailureKind::Connection,
            FailureKind::Timeout,
            FailureKind::Protocol,
            FailureKind::ServerLimit,
            FailureKind::Local,
        ] {
            let failure = f(kind);
            assert_eq!(state_of(&failure), State::Offline, "{kind:?}");
            assert_eq!(then(&failure), Then::Backoff, "{kind:?}");
            assert!(!failure.attention_needed());
        }
        assert_eq!(f(FailureKind::Connection).code(), "connection-failed");
        assert_eq!(f(FailureKind::Timeout).code(), "timeout");
    }

    #[test]
    fn backoff_delays_grow_and_a_cap_bounds_them() {
        let failure = f(FailureKind::Connection);
        let mut b = Backoff::new();
        assert_eq!(retry_after(&failure, &mut b, None), Some(Backoff::START));
        let second = retry_after(&failure, &mut b, None).unwrap_or_default();
        assert!(second > Backoff::START);
        let cap = Duration::from_secs(1);
        assert_eq!(retry_after(&failure, &mut b, Some(cap)), Some(cap));
        // A long poll interval does not shorten the slow retry.
        let tls = f(FailureKind::Tls);
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_after(&tls, &mut b, Some(hour)), Some(hour));
    }

    #[test]
    fn next_retry_is_in_the_future_and_zero_for_none() {
        assert_eq!(unix_at(None), 0);
        let now = unix_now();
        let at = unix_at(Some(Instant::now() + Duration::from_secs(30)));
        assert!(at >= now + 30 && at <= now + 32, "{at} vs {now}");
    }
}
