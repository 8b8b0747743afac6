//! # The POP3 engine's loop
//!
//! Drives [`crate::pop3::poll::Poller`]: a session at once, then one every
//! `poll-interval-minutes`; after a failure it reports it (one mapping,
//! [`health`]) and waits ([`wait`]: the backoff, capped by the interval, or
//! for new credentials). A Sync is answered by a session; one that comes
//! during a session by a new one right away, with what the running one
//! stored. A Delete is done locally at once (and remembered for the server
//! where the account says so, which polls at once). Every answer comes after
//! the state it implies is applied and announced ([`Reporter::flush`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::backoff::Backoff;
use super::events::Reporter;
use super::health;
use super::scheduler::{Request, SyncReply};
use super::wait::{self, Woke};
use crate::net::{Failure, FailureKind};
use crate::pop3::poll::Poller;
use crate::settings::Settings;

/// Longest a whole session may take: each command has its own deadline;
/// this bounds the sum (many large messages on a slow link take long, but
/// never for good).
const SESSION_LIMIT: Duration = Duration::from_secs(60 * 60);
/// How long a Delete that must reach the server waits for more Deletes, so
/// that a burst of them takes one session.
const DELETE_DEBOUNCE: Duration = Duration::from_secs(2);

/// One account's POP3 engine.
pub struct Driver {
    poller: Poller,
    reporter: Arc<Reporter>,
    settings: watch::Receiver<Settings>,
    /// Whether the scheduler still holds the settings channel.
    settings_open: bool,
}

impl Driver {
    /// A driver for `poller`, reporting through `reporter`, taking new
    /// settings (that need no new connection) from `settings`.
    pub fn new(
        poller: Poller,
        reporter: Arc<Reporter>,
        settings: watch::Receiver<Settings>,
    ) -> Self {
        Driver {
            poller,
            reporter,
            settings,
            settings_open: true,
        }
    }

    fn take_settings(&mut self) {
        if self.settings.has_changed().unwrap_or(false) {
            let s = self.settings.borrow_and_update().clone();
            self.poller.set_settings(s);
        }
    }

    /// Poll until cancelled.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, cancel: CancellationToken) {
        if let Err(f) = self.poller.inbox().await {
            warn!(
                "Account {}: cannot create the local INBOX: {f}",
                self.poller.id()
            );
        }
        let mut backoff = Backoff::new();
        // Syncs this poll answers, each with the new messages already stored
        // for it by the poll that was running when it came.
        let mut waiting: Vec<(SyncReply, u32)> = Vec::new();
        let mut queued = VecDeque::new();
        loop {
            self.take_settings();
            let interval =
                Duration::from_secs(u64::from(self.poller.settings().poll_interval_minutes) * 60);
            self.reporter.syncing();
            let mut joined = Vec::new();
            let result = {
                let poll = tokio::time::timeout(SESSION_LIMIT, self.poller.poll());
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        r = &mut poll => break r,
                        _ = cancel.cancelled() => return,
                        r = requests.recv() => match r {
                            Some(Request::Sync(reply)) => joined.push(reply),
                            Some(other) => queued.push_back(other),
                            None => return,
                        },
                    }
                }
            };
            let result = result.unwrap_or_else(|_| {
                Err(Failure::new(
                    FailureKind::Timeout,
                    format!(
                        "A session with {} took longer than {} minutes",
                        self.poller.settings().incoming_host,
                        SESSION_LIMIT.as_secs() / 60
                    ),
                ))
            });
            let ended = Instant::now();
            let awaiting_credentials =
                matches!(&result, Err(f) if matches!(health::then(f), health::Then::Credentials));
            let deadline = match &result {
                Ok(_) => {
                    backoff.reset();
                    self.reporter.healthy();
                    Some(Instant::now() + interval)
                }
                Err(f) => {
                    let delay = health::retry_after(f, &mut backoff, Some(interval));
                    let deadline = delay.map(|d| Instant::now() + d);
                    match delay {
                        Some(d) => warn!(
                            "Account {}: {f}; retrying in about {} s.",
                            self.poller.id(),
                            d.as_secs()
                        ),
                        None => warn!(
                            "Account {}: {f}; waiting for new credentials.",
                            self.poller.id()
                        ),
                    }
                    self.reporter
                        .failed(health::state_of(f), f, health::unix_at(deadline));
                    deadline
                }
            };
            if !waiting.is_empty() {
                self.reporter.flush().await;
            }
            for (reply, carried) in waiting.drain(..) {
                let _ = reply.send(result.clone().map(|n| n.saturating_add(carried)));
            }
            // A Sync that came during this poll may have come after its UIDL:
            // it is answered by a new poll right away, with what this one
            // stored (mail it fetched is reported, never lost to a Sync).
            let stored = result.as_ref().map_or(0, |n| *n);
            waiting.extend(joined.into_iter().map(|reply| (reply, stored)));
            let mut deadline = if waiting.is_empty() {
                deadline
            } else {
                Some(Instant::now())
            };
            let polled_ok = result.is_ok();
            loop {
                let woke = match queued.pop_front() {
                    Some(r) => Woke::Request(r),
                    None => {
                        let settings_open = self.settings_open;
                        let changed = tokio::select! {
                            w = wait::wait(deadline, &mut requests, &cancel) => Some(w),
                            c = self.settings.changed(), if settings_open => {
                                if c.is_err() {
                                    self.settings_open = false;
                                }
                                None
                            }
                        };
                        match changed {
                            Some(w) => w,
                            None => {
                                // New settings (a poll interval) count from
                                // the end of the last poll, not from the old
                                // deadline.
                                let s = self.settings.borrow_and_update().clone();
                                let minutes = u64::from(s.poll_interval_minutes);
                                self.poller.set_settings(s);
                                if polled_ok && waiting.is_empty() {
                                    deadline = Some(ended + Duration::from_secs(minutes * 60));
                                }
                                continue;
                            }
                        }
                    }
                };
                match woke {
                    Woke::Deadline => break,
                    Woke::Cancelled => return,
                    Woke::Request(Request::Sync(reply)) => {
                        waiting.push((reply, 0));
                        break;
                    }
                    Woke::Request(Request::Delete(id, reply)) => {
                        let r = self.poller.delete_local(&id).await;
                        let to_server = matches!(r, Ok(true));
                        self.reporter.flush().await;
                        let _ = reply.send(r.map(|_| ()));
                        // The server deletion waits for the next session:
                        // soon (one session for a burst of Deletes), but
                        // never while the password is wanting (that session
                        // would only fail again).
                        if to_server && !awaiting_credentials {
                            let soon = Instant::now() + DELETE_DEBOUNCE;
                            if deadline.is_none_or(|d| d > soon) {
                                deadline = Some(soon);
                            }
                        }
                    }
                    // POP3 changes are local only: nothing to replay.
                    Woke::Request(Request::Replay) => {}
                }
            }
        }
    }
}
