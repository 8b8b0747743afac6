//! # Events
//!
//! How the sync engines tell the rest of the daemon what happened without
//! knowing about D-Bus: each engine holds a [`Reporter`] that sends
//! [`Event`]s down one channel; the service layer drains it in order,
//! updates the account status, emits signals and shows desktop
//! notifications.
//!
//! Before an engine answers a request (Sync, DeleteMessage) it awaits
//! [`Reporter::flush`]: an [`Event::Flush`] the events loop answers once
//! everything sent before it is applied and announced, so the reply never
//! overtakes the state it implies.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use super::State;
use crate::net::Failure;

/// What an account's last error becomes with a state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Unchanged (a new attempt after a failure keeps showing why).
    Keep,
    /// Cleared: the account is healthy.
    Clear,
    /// This failure.
    Set {
        /// `LastError`: a sentence a person can act on.
        message: String,
        /// `LastErrorCode`.
        code: &'static str,
        /// `AttentionNeeded`.
        attention: bool,
    },
}

/// What happened to messages (the `MessagesAdded`, `MessagesChanged` and
/// `MessagesRemoved` signals). New mail from the server comes as
/// [`Event::NewMessages`], which is announced as both `NewMessages` and
/// `MessagesAdded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesKind {
    /// Stored (moved or copied here, a placeholder replaced).
    Added,
    /// Flags changed.
    Changed,
    /// Gone (expunged, deleted, moved away).
    Removed,
}

/// Something an engine reports about its account.
#[derive(Debug)]
pub enum Event {
    /// The account's state changed.
    State {
        /// Account id.
        account: String,
        /// The new state.
        state: State,
        /// What becomes of the last error.
        problem: Problem,
        /// Unix seconds of the next attempt, 0 for none.
        next_retry: u64,
    },
    /// (done, total) messages of the current pass; (0, 0) when none runs.
    Progress {
        /// Account id.
        account: String,
        /// Messages stored in this pass.
        done: u32,
        /// Messages to fetch found so far in this pass.
        total: u32,
    },
    /// A sync pass finished successfully at this unix time.
    Synced {
        /// Account id.
        account: String,
        /// Unix seconds.
        at: u64,
    },
    /// New messages are durably stored.
    NewMessages {
        /// Account id.
        account: String,
        /// Folder display name.
        folder: String,
        /// Message ids.
        ids: Vec<String>,
    },
    /// Messages of one folder changed, whichever side changed them, after
    /// the change is durably stored: one event per folder per batch.
    Messages {
        /// Account id.
        account: String,
        /// What happened to them.
        kind: MessagesKind,
        /// Folder display name.
        folder: String,
        /// Message ids.
        ids: Vec<String>,
    },
    /// Message counts may have changed (flags, expunges, new mail), or the
    /// account's pending changes or outbox.
    Counts {
        /// Account id.
        account: String,
    },
    /// One desktop notification for a batch of new mail.
    Notify {
        /// Account id.
        account: String,
        /// How many new messages.
        count: usize,
        /// (from, subject) of the first few.
        samples: Vec<(String, String)>,
    },
    /// A queued message failed for good (the outbox): one desktop
    /// notification. Its count (`OutboxFailedCount`) follows a `Counts`.
    OutboxFailed {
        /// Account id.
        account: String,
        /// The message's subject.
        subject: String,
        /// Why (the server's reply where there is one).
        reason: String,
    },
    /// Wake account `account`'s engine to replay its journal (another
    /// account's replay changed it: a cross-account move's source).
    Kick {
        /// The account to wake.
        account: String,
    },
    /// Answer once every event before this one is applied and announced
    /// (counts included).
    Flush {
        /// Account id.
        account: String,
        /// Answered by the events loop.
        done: oneshot::Sender<()>,
    },
}

impl Event {
    /// The account the event is about.
    pub fn account(&self) -> &str {
        match self {
            Event::State { account, .. }
            | Event::Progress { account, .. }
            | Event::Synced { account, .. }
            | Event::NewMessages { account, .. }
            | Event::Messages { account, .. }
            | Event::Counts { account }
            | Event::Notify { account, .. }
            | Event::OutboxFailed { account, .. }
            | Event::Kick { account }
            | Event::Flush { account, .. } => account,
        }
    }
}

/// Shortest time between two Progress updates of one pass.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for the events loop to answer a flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Progress {
    done: u32,
    total: u32,
    /// When the last update was sent; `None` before the first of a pass.
    sent: Option<Instant>,
    /// Whether a non-zero value was sent in this pass.
    shown: bool,
}

/// The sending end an engine holds, bound to its account.
#[derive(Debug)]
pub struct Reporter {
    account: String,
    tx: mpsc::UnboundedSender<Event>,
    progress: Mutex<Progress>,
}

impl Reporter {
    /// A reporter for `account`. It takes the account's progress as shown
    /// (an engine it replaces may have left one), so its first
    /// [`Reporter::syncing`] sends (0, 0).
    pub fn new(account: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Reporter {
            account: account.to_owned(),
            tx,
            progress: Mutex::new(Progress {
                shown: true,
                ..Progress::default()
            }),
        }
    }

    /// The engine stopped: progress back to (0, 0), applied and announced
    /// when this returns.
    pub async fn stopped(&self) {
        self.reset_progress();
        self.flush().await;
    }

    fn send(&self, e: Event) {
        // The receiver lives as long as the daemon; after shutdown there is
        // nobody left to tell.
        let _ = self.tx.send(e);
    }

    fn state(&self, state: State, problem: Problem, next_retry: u64) {
        self.send(Event::State {
            account: self.account.clone(),
            state,
            problem,
            next_retry,
        });
    }

    /// A connection or a pass starts: `syncing`, the last error kept, no
    /// retry pending, progress from (0, 0).
    pub fn syncing(&self) {
        self.reset_progress();
        self.state(State::Syncing, Problem::Keep, 0);
    }

    /// A pass succeeded: `LastSync` now, then `idle` with the last error,
    /// its code, AttentionNeeded and NextRetry cleared.
    pub fn healthy(&self) {
        self.reset_progress();
        self.send(Event::Synced {
            account: self.account.clone(),
            at: super::health::unix_now(),
        });
        self.state(State::Idle, Problem::Clear, 0);
    }

    /// A failure: `state`, its sentence, code and attention, and the unix
    /// second of the next attempt (0 for none).
    pub fn failed(&self, state: State, failure: &Failure, next_retry: u64) {
        self.reset_progress();
        self.state(
            state,
            Problem::Set {
                message: failure.message.clone(),
                code: failure.code(),
                attention: failure.attention_needed(),
            },
            next_retry,
        );
    }

    /// Wait until the events loop has applied and announced everything
    /// reported so far (bounded: a stuck bus never holds a reply for good).
    pub async fn flush(&self) {
        let (done, answered) = oneshot::channel();
        self.send(Event::Flush {
            account: self.account.clone(),
            done,
        });
        if tokio::time::timeout(FLUSH_TIMEOUT, answered).await.is_err() {
            debug!(
                "Account {}: the events loop did not answer a flush within {} s.",
                self.account,
                FLUSH_TIMEOUT.as_secs()
            );
        }
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        match self.progress.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Back to (0, 0), announced only if something else was shown.
    fn reset_progress(&self) {
        let shown = {
            let mut p = self.lock_progress();
            let shown = p.shown;
            *p = Progress::default();
            shown
        };
        if shown {
            self.send(Event::Progress {
                account: self.account.clone(),
                done: 0,
                total: 0,
            });
        }
    }

    /// Change the progress of the pass and send it if the last update is
    /// at least [`PROGRESS_INTERVAL`] old (never one update per message).
    fn progress(&self, change: impl FnOnce(&mut Progress)) {
        let update = {
            let mut p = self.lock_progress();
            change(&mut p);
            let due = p.sent.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
            if due && p.total > 0 {
                p.sent = Some(Instant::now());
                p.shown = true;
                Some((p.done.min(p.total), p.total))
            } else {
                None
            }
        };
        if let Some((done, total)) = update {
            self.send(Event::Progress {
                account: self.account.clone(),
                done,
                total,
            });
        }
    }

    /// Messages to fetch found in this pass (adds to the total).
    pub fn found(&self, n: u32) {
        if n > 0 {
            self.progress(|p| p.total = p.total.saturating_add(n));
        }
    }

    /// Messages stored in this pass (adds to what is done).
    pub fn stored(&self, n: u32) {
        if n > 0 {
            self.progress(|p| p.done = p.done.saturating_add(n));
        }
    }

    /// Report stored messages.
    pub fn new_messages(&self, folder: &str, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.send(Event::NewMessages {
            account: self.account.clone(),
            folder: folder.to_owned(),
            ids,
        });
    }

    /// Report messages of `folder` that changed.
    pub fn messages(&self, kind: MessagesKind, folder: &str, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.send(Event::Messages {
            account: self.account.clone(),
            kind,
            folder: folder.to_owned(),
            ids,
        });
    }

    /// Report that counts may have changed.
    pub fn counts(&self) {
        self.send(Event::Counts {
            account: self.account.clone(),
        });
    }

    /// Ask for one desktop notification.
    pub fn notify(&self, count: usize, samples: Vec<(String, String)>) {
        if count == 0 {
            return;
        }
        self.send(Event::Notify {
            account: self.account.clone(),
            count,
            samples,
        });
    }
}

impl crate::store::Observer for Reporter {
    fn new_messages(&self, folder: &str, ids: Vec<String>) {
        Reporter::new_messages(self, folder, ids);
    }
    fn changed(&self, folder: &str, ids: Vec<String>) {
        self.messages(MessagesKind::Changed, folder, ids);
    }
    fn removed(&self, folder: &str, ids: Vec<String>) {
        self.messages(MessagesKind::Removed, folder, ids);
    }
    fn added(&self, folder: &str, ids: Vec<String>) {
        self.messages(MessagesKind::Added, folder, ids);
    }
    fn elsewhere(
        &self,
        account: &str,
        kind: crate::store::Elsewhere,
        folder: &str,
        ids: Vec<String>,
    ) {
        if ids.is_empty() {
            return;
        }
        self.send(Event::Messages {
            account: account.to_owned(),
            kind: match kind {
                crate::store::Elsewhere::Added => MessagesKind::Added,
                crate::store::Elsewhere::Changed => MessagesKind::Changed,
                crate::store::Elsewhere::Removed => MessagesKind::Removed,
            },
            folder: folder.to_owned(),
            ids,
        });
    }
    fn counts_of(&self, account: &str) {
        self.send(Event::Counts {
            account: account.to_owned(),
        });
    }
    fn kick(&self, account: &str) {
        self.send(Event::Kick {
            account: account.to_owned(),
        });
    }
    fn counts(&self) {
        Reporter::counts(self);
    }
    fn notify(&self, count: usize, samples: Vec<(String, String)>) {
        Reporter::notify(self, count, samples);
    }
    fn found(&self, n: u32) {
        Reporter::found(self, n);
    }
    fn stored(&self, n: u32) {
        Reporter::stored(self, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_rate_limited_and_ends_at_zero() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Reporter::new("a", tx);
        r.syncing();
        // A new reporter clears what an engine it replaces may have shown.
        assert!(matches!(
            drain(&mut rx).first(),
            Some(Event::Progress {
                done: 0,
                total: 0,
                ..
            })
        ));
        r.found(100);
        for _ in 0..50 {
            r.stored(1);
        }
        let sent: Vec<(u32, u32)> = drain(&mut rx)
            .into_iter()
            .filter_map(|e| match e {
                Event::Progress { done, total, .. } => Some((done, total)),
                _ => None,
            })
            .collect();
        // One update, not one per message.
        assert_eq!(sent, vec![(0, 100)]);
        tokio::time::advance(PROGRESS_INTERVAL).await;
        r.stored(1);
        r.found(20);
        let sent: Vec<(u32, u32)> = drain(&mut rx)
            .into_iter()
            .filter_map(|e| match e {
                Event::Progress { done, total, .. } => Some((done, total)),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![(51, 100)]);
        r.healthy();
        let events = drain(&mut rx);
        assert!(matches!(
            events.first(),
            Some(Event::Progress {
                done: 0,
                total: 0,
                ..
            })
        ));
        assert!(matches!(
            events.last(),
            Some(Event::State {
                state: State::Idle,
                problem: Problem::Clear,
                next_retry: 0,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_failure_carries_its_code_attention_and_retry() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Reporter::new("a", tx);
        let f = Failure::new(crate::net::FailureKind::Auth, "refused");
        r.failed(State::NeedsCredentials, &f, 0);
        match drain(&mut rx).pop() {
            Some(Event::State {
                state,
                problem,
                next_retry,
                ..
            }) => {
                assert_eq!(state, State::NeedsCredentials);
                assert_eq!(next_retry, 0);
                assert_eq!(
                    problem,
                    Problem::Set {
                        message: "refused".into(),
                        code: "auth-failed",
                        attention: true
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn flush_waits_for_the_loop() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Reporter::new("a", tx);
        r.counts();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = answered.clone();
        let loop_ = tokio::spawn(async move {
            let mut before = 0;
            while let Some(e) = rx.recv().await {
                match e {
                    Event::Flush { done, .. } => {
                        seen.store(before == 1, std::sync::atomic::Ordering::SeqCst);
                        let _ = done.send(());
                    }
                    _ => before += 1,
                }
            }
        });
        r.flush().await;
        assert!(answered.load(std::sync::atomic::Ordering::SeqCst));
        drop(r);
        let _ = loop_.await;
    }
}
