//! # The IMAP engine's loop
//!
//! Drives [`crate::imap::Engine`]: connect, a full pass, then wait for new
//! mail on INBOX (IDLE or NOOP) until the poll interval says every folder
//! is due again; on any failure report it (one mapping, [`health`]), wait
//! ([`wait`]: the backoff, or for new credentials) and reconnect, catching
//! up on everything that arrived meanwhile.
//!
//! The journal of local changes is replayed on the server right after
//! connecting and before every pass ([`Engine::replay`]); a Replay request
//! (new entries) wakes IDLE for a replay and an INBOX pass, and is ignored
//! while offline (the next session replays everything).
//!
//! Requests from the scheduler: a Sync during backoff, connect or a pass is
//! answered by a real pass (the next one, at once, when a pass was already
//! running, with the new messages of both: mail the running pass fetched is
//! reported, never lost); a Delete runs between passes. Every answer comes
//! after the state it implies is applied and announced
//! ([`Reporter::flush`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::events::Reporter;
use super::health;
use super::scheduler::{DeleteReply, Request, SyncReply};
use super::wait::{self, Woke};
use crate::imap::{drain, ends_session, Engine, WaitFailed, Wake};
use crate::net::{Failure, FailureKind};
use crate::settings::Settings;

/// Longest a connection and login may take as a whole (each step has its
/// own, shorter deadline; this one only guards the sum).
const CONNECT_LIMIT: Duration = Duration::from_secs(5 * 60);

/// Longest a pass may take as a whole: each command has its own deadline;
/// this bounds the sum (a first sync of a large account on a slow link
/// takes long, but never stays `syncing` for good).
const PASS_LIMIT: Duration = Duration::from_secs(60 * 60);

/// Why a session ended.
enum End {
    Cancelled,
    /// It failed; these requests are answered once the failure is shown.
    Failed {
        failure: Failure,
        syncs: Vec<SyncReply>,
        deletes: Vec<DeleteReply>,
        /// A Sync that woke IDLE just before the connection failed: it
        /// never saw a pass, so it is carried to the next session (like a
        /// Sync during the backoff), not answered with this failure.
        carried: Option<SyncReply>,
        /// It got as far as a full pass: the backoff starts over.
        healthy: bool,
    },
}

/// One account's IMAP engine: its operations, its reporter, its requests.
pub struct Driver {
    engine: Engine,
    reporter: Arc<Reporter>,
    settings: watch::Receiver<Settings>,
}

impl Driver {
    /// A driver for `engine`, reporting through `reporter`, taking new
    /// settings (that need no new connection) from `settings`.
    pub fn new(
        engine: Engine,
        reporter: Arc<Reporter>,
        settings: watch::Receiver<Settings>,
    ) -> Self {
        Driver {
            engine,
            reporter,
            settings,
        }
    }

    /// New settings from [`super::Scheduler::reconfigure`], if any.
    fn take_settings(&mut self) {
        if self.settings.has_changed().unwrap_or(false) {
            let s = self.settings.borrow_and_update().clone();
            self.engine.set_settings(s);
        }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.engine.settings().poll_interval_minutes) * 60)
    }

    /// Run until cancelled: connect, sync, idle; reconnect after failures.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, cancel: CancellationToken) {
        let mut backoff = Backoff::new();
        // Syncs asked for while offline, answered by the next session's
        // first pass (or its failure).
        let mut waiting: Vec<SyncReply> = Vec::new();
        loop {
            let end = tokio::select! {
                r = self.session(&mut requests, &cancel, std::mem::take(&mut waiting)) => r,
                _ = cancel.cancelled() => End::Cancelled,
            };
            let End::Failed {
                failure,
                syncs,
                deletes,
                carried,
                healthy,
            } = end
            else {
                return;
            };
            if healthy {
                backoff.reset();
            }
            let state = health::state_of(&failure);
            let delay = health::retry_after(&failure, &mut backoff, None);
            let deadline = delay.map(|d| Instant::now() + d);
            match delay {
                Some(d) => warn!(
                    "Account {}: {failure}; retrying in about {} s.",
                    self.engine.id(),
                    d.as_secs()
                ),
                None => warn!(
                    "Account {}: {failure}; waiting for new credentials.",
                    self.engine.id()
                ),
            }
            self.reporter
                .failed(state, &failure, health::unix_at(deadline));
            if !syncs.is_empty() || !deletes.is_empty() {
                self.reporter.flush().await;
            }
            for reply in syncs {
                let _ = reply.send(Err(failure.clone()));
            }
            for reply in deletes {
                let _ = reply.send(Err(failure.clone()));
            }
            if let Some(reply) = carried {
                waiting.push(reply);
                continue;
            }
            loop {
                match wait::wait(deadline, &mut requests, &cancel).await {
                    Woke::Deadline => break,
                    Woke::Cancelled => return,
                    // "Sync now" while offline (or waiting for credentials:
                    // one more try): reconnect at once and answer with that
                    // pass, never with the old failure.
                    Woke::Request(Request::Sync(reply)) => {
                        waiting.push(reply);
                        backoff.reset();
                        break;
                    }
                    Woke::Request(Request::Delete(_, reply)) => {
                        let _ = reply.send(Err(failure.clone()));
                    }
                    // Replayed once connected again.
                    Woke::Request(Request::Replay) => {}
                }
            }
        }
    }

    /// One connected session, until it fails or is cancelled. `waiting`
    /// Syncs (and those asked for while connecting) are answered by the
    /// first pass. A Sync that comes during a pass is answered by the next
    /// one, which starts at once, with the new messages of both.
    async fn session(
        &mut self,
        requests: &mut mpsc::Receiver<Request>,
        cancel: &CancellationToken,
        waiting: Vec<SyncReply>,
    ) -> End {
        self.take_settings();
        self.reporter.syncing();
        // Each with the new messages already stored for it.
        let mut pending: Vec<(SyncReply, u32)> = waiting.into_iter().map(|r| (r, 0)).collect();
        let mut queued = VecDeque::new();
        let connected = {
            let connect = tokio::time::timeout(CONNECT_LIMIT, self.engine.connect());
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    r = &mut connect => break r,
                    r = requests.recv() => match r {
                        Some(Request::Sync(reply)) => pending.push((reply, 0)),
                        Some(other) => queued.push_back(other),
                        None => return End::Cancelled,
                    },
                }
            }
        };
        let connected = connected.unwrap_or_else(|_| {
            Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "Connecting to {} took longer than {} s",
                    self.engine.settings().incoming_host,
                    CONNECT_LIMIT.as_secs()
                ),
            ))
        });
        let mut session = match connected {
            Ok(s) => s,
            Err(failure) => {
                return End::Failed {
                    failure,
                    syncs: pending.into_iter().map(|(r, _)| r).collect(),
                    deletes: deletes_of(queued),
                    carried: None,
                    healthy: false,
                }
            }
        };
        info!(
            "Account {}: connected to {}.",
            self.engine.id(),
            self.engine.settings().incoming_host
        );
        let mut healthy = false;
        let mut last_full: Option<Instant> = None;
        let mut inbox_dirty = true;
        loop {
            // Settings changed meanwhile (a new poll interval counts from
            // the last full pass).
            self.take_settings();
            let full_due = last_full.map_or_else(Instant::now, |at| at + self.poll_interval());
            let full = Instant::now() >= full_due || !pending.is_empty();
            if full || inbox_dirty {
                self.reporter.syncing();
                // Local changes reach the server first (right after
                // connecting, and before each pass), so the pass reads the
                // server with them applied.
                let engine = &mut self.engine;
                let replay_and_pass = async {
                    engine.replay(&mut session).await?;
                    engine.pass(&mut session, full).await
                };
                let pass = tokio::time::timeout(PASS_LIMIT, replay_and_pass)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure::new(
                            FailureKind::Timeout,
                            format!(
                                "A pass over {} took longer than {} minutes",
                                self.engine.settings().incoming_host,
                                PASS_LIMIT.as_secs() / 60
                            ),
                        ))
                    });
                match pass {
                    Ok(new) => {
                        let answered = std::mem::take(&mut pending);
                        // Asked for during this pass: another one now.
                        while let Ok(request) = requests.try_recv() {
                            match request {
                                Request::Sync(reply) => pending.push((reply, new)),
                                other => queued.push_back(other),
                            }
                        }
                        if full {
                            last_full = Some(Instant::now());
                            healthy = true;
                        }
                        inbox_dirty = false;
                        self.reporter.healthy();
                        if !answered.is_empty() {
                            self.reporter.flush().await;
                        }
                        for (reply, carried) in answered {
                            let _ = reply.send(Ok(new.saturating_add(carried)));
                        }
                    }
                    Err(failure) => {
                        return End::Failed {
                            failure,
                            syncs: pending.into_iter().map(|(r, _)| r).collect(),
                            deletes: deletes_of(queued),
                            carried: None,
                            healthy,
                        }
                    }
                }
            }
            // Anything that arrived during the pass?
            if drain(&mut session) {
                inbox_dirty = true;
                continue;
            }
            // A Sync came during the pass: the next one runs now.
            if !pending.is_empty() {
                continue;
            }
            let full_due = last_full.map_or_else(Instant::now, |at| at + self.poll_interval());
            let limit = full_due.saturating_duration_since(Instant::now());
            let woke = if let Some(request) = queued.pop_front() {
                // Asked for while connecting or during a pass.
                Ok((session, Wake::Other(Woke::Request(request))))
            } else {
                self.engine
                    .wait(session, limit, wait::request(requests, cancel))
                    .await
            };
            let wake = match woke {
                Ok((s, wake)) => {
                    session = s;
                    wake
                }
                Err(WaitFailed { failure, woke }) => {
                    // A request that woke IDLE before DONE failed is
                    // answered like one that came during the failure: a
                    // Sync by the next session, a Delete with the failure.
                    let mut deletes = deletes_of(queued);
                    let mut carried = None;
                    match woke {
                        Some(Woke::Request(Request::Sync(reply))) => carried = Some(reply),
                        Some(Woke::Request(Request::Delete(_, reply))) => deletes.push(reply),
                        Some(Woke::Request(Request::Replay)) => {}
                        Some(Woke::Deadline | Woke::Cancelled) | None => {}
                    }
                    return End::Failed {
                        failure,
                        syncs: pending.into_iter().map(|(r, _)| r).collect(),
                        deletes,
                        carried,
                        healthy,
                    };
                }
            };
            match wake {
                Wake::NewData => inbox_dirty = true,
                Wake::Timeout | Wake::Other(Woke::Deadline) => {}
                Wake::Other(Woke::Request(Request::Sync(reply))) => pending.push((reply, 0)),
                // The journal has new entries: replayed by the INBOX pass
                // this starts (replay first, see above).
                Wake::Other(Woke::Request(Request::Replay)) => inbox_dirty = true,
                Wake::Other(Woke::Request(Request::Delete(id, reply))) => {
                    let r = self.engine.delete(&mut session, &id).await;
                    if let Err(failure) = &r {
                        if ends_session(failure) {
                            // The connection is in doubt: the failure is
                            // shown, then answered, then the session ends.
                            return End::Failed {
                                failure: failure.clone(),
                                syncs: pending.into_iter().map(|(r, _)| r).collect(),
                                deletes: std::iter::once(reply).chain(deletes_of(queued)).collect(),
                                carried: None,
                                healthy,
                            };
                        }
                    }
                    // The counts it changed are announced before the answer.
                    self.reporter.flush().await;
                    let _ = reply.send(r);
                    inbox_dirty = true;
                }
                Wake::Other(Woke::Cancelled) => {
                    Engine::logout(session).await;
                    return End::Cancelled;
                }
            }
        }
    }
}

/// The answers owed to the Deletes among `queued`.
fn deletes_of(queued: VecDeque<Request>) -> Vec<DeleteReply> {
    queued
        .into_iter()
        .filter_map(|r| match r {
            Request::Delete(_, reply) => Some(reply),
            Request::Sync(_) | Request::Replay => None,
        })
        .collect()
}
