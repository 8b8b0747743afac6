//! # Sync progress
//!
//! While `facteurctl sync` waits for `Account.Sync`, the account's
//! `Progress` property — (done, total) messages of the current pass, (0, 0)
//! when idle — arrives in PropertiesChanged signals and is shown on standard
//! error, so that standard output keeps only the result:
//!
//! - on a terminal, a progress bar ([`indicatif`]), redrawn at most a few
//!   times a second whatever the signal rate, and cleared at the end;
//! - otherwise (a pipe, a log, CI), plain lines `ID: DONE/TOTAL messages`,
//!   one when `done` changed and at most one every [`LINE_INTERVAL`].
//!
//! The decisions (what a value means, when a line is due, what it says) are
//! pure functions, tested without a daemon.

use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zbus::zvariant::Value;

/// The least time between two plain progress lines.
pub const LINE_INTERVAL: Duration = Duration::from_secs(2);

/// The bar's layout: the account, the bar, the counts and the rate.
const BAR_TEMPLATE: &str = "{prefix} [{bar:30}] {pos}/{len} messages ({per_sec}, {eta} left)";

/// A `Progress` value, `(uu)`, as (done, total); `None` for anything else.
pub fn progress_value(value: &Value<'_>) -> Option<(u32, u32)> {
    match value {
        Value::Value(inner) => progress_value(inner),
        Value::Structure(s) => match s.fields() {
            [Value::U32(done), Value::U32(total)] => Some((*done, *total)),
            _ => None,
        },
        _ => None,
    }
}

/// `Progress` as a person reads it in `account show`: `-` when idle.
pub fn progress_text(done: u32, total: u32) -> String {
    if (done, total) == (0, 0) {
        "-".to_owned()
    } else {
        format!("{done}/{total} messages")
    }
}

/// The plain line `sync --all` prints before an account's pass when
/// standard error is no terminal: `ID: syncing (2 of 3)`.
pub fn start_line(id: &str, n: usize, of: usize) -> String {
    format!("{id}: syncing ({n} of {of})")
}

/// The plain line for one progress value.
pub fn progress_line(id: &str, done: u32, total: u32) -> String {
    format!("{id}: {done}/{total} messages")
}

/// Whether a plain line is due for `done` at `now`, given the last line
/// printed (its `done` and when). Idle (0 of 0) never prints.
pub fn line_due(last: Option<(u32, Instant)>, done: u32, total: u32, now: Instant) -> bool {
    if (done, total) == (0, 0) {
        return false;
    }
    match last {
        None => true,
        Some((last_done, at)) => {
            last_done != done && now.saturating_duration_since(at) >= LINE_INTERVAL
        }
    }
}

/// Shows the progress of one account's sync on standard error.
pub struct Display {
    id: String,
    kind: Kind,
}

enum Kind {
    /// A terminal: the bar, created at the first value with a total.
    Bar(Option<ProgressBar>),
    /// Not a terminal: the last line printed, with its `done` and time.
    Lines(Option<(u32, Instant)>),
}

impl Display {
    /// A display for account `id`: a bar when `terminal`, else lines.
    pub fn new(id: &str, terminal: bool) -> Display {
        Display {
            id: id.to_owned(),
            kind: if terminal {
                Kind::Bar(None)
            } else {
                Kind::Lines(None)
            },
        }
    }

    /// A new `Progress` value.
    pub fn update(&mut self, done: u32, total: u32) {
        match &mut self.kind {
            Kind::Bar(bar) => {
                if total == 0 {
                    return;
                }
                let bar = bar.get_or_insert_with(|| new_bar(&self.id, total));
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(done));
            }
            Kind::Lines(last) => {
                let now = Instant::now();
                if line_due(*last, done, total, now) {
                    *last = Some((done, now));
                    // Progress is a courtesy: a closed stderr does not stop
                    // the sync.
                    let _ = writeln!(
                        std::io::stderr(),
                        "{}",
                        progress_line(&self.id, done, total)
                    );
                }
            }
        }
    }

    /// The sync call returned: remove the bar.
    pub fn finish(self) {
        if let Kind::Bar(Some(bar)) = self.kind {
            bar.finish_and_clear();
        }
    }
}

fn new_bar(id: &str, total: u32) -> ProgressBar {
    let style = ProgressStyle::with_template(BAR_TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(u64::from(total)), ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar.set_prefix(id.to_owned());
    bar
}

#[cfg(test)]
mod tests;
