//! # Backoff
//!
//! The one reconnection delay of every engine: it starts at
//! [`Backoff::START`], doubles up to [`Backoff::MAX`] (Delta Chat's values),
//! with ±25 % jitter so many clients do not reconnect in step, and starts
//! over after a healthy pass.

use std::time::Duration;

/// The delay before the next attempt after a failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// First reconnection delay.
    pub const START: Duration = Duration::from_secs(2);
    /// Longest reconnection delay.
    pub const MAX: Duration = Duration::from_secs(80);

    /// A backoff at its first delay.
    pub fn new() -> Self {
        Backoff {
            current: Self::START,
        }
    }

    /// Back to the first delay (after a healthy pass, or a user's Sync).
    pub fn reset(&mut self) {
        self.current = Self::START;
    }

    /// The delay to wait now; the one after it grows.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.current;
        self.current = grow(self.current);
        now
    }
}

/// The delay after `current`: doubled, with ±25 % jitter, never over
/// [`Backoff::MAX`].
pub fn grow(current: Duration) -> Duration {
    let doubled = current.saturating_mul(2).min(Backoff::MAX);
    let jitter = rand::random_range(0.75..1.25);
    doubled.mul_f64(jitter).min(Backoff::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_first_delay() {
        let mut b = Backoff::new();
        assert_eq!(b.next_delay(), Backoff::START);
    }

    #[test]
    fn grows_with_jitter_to_a_cap() {
        let mut b = Backoff::new();
        let seen: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        // The second delay is the first doubled, ±25 %.
        assert!(seen[1] >= Duration::from_secs(3) && seen[1] <= Duration::from_secs(5));
        assert!(seen.iter().all(|d| *d <= Backoff::MAX));
        // It reaches the cap (within the jitter) and stays there.
        assert!(seen[11] >= Backoff::MAX.mul_f64(0.75));
        assert!(seen[11] <= Backoff::MAX);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| grow(Duration::from_secs(10))).collect();
        assert!(delays.len() > 1, "no jitter: {delays:?}");
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_secs(15) && *d <= Duration::from_secs(25)));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new();
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.next_delay(), Backoff::START);
    }
}
