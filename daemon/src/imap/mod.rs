//! # IMAP accounts
//!
//! The engine that keeps one IMAP account in sync: connect and log in
//! ([`session`]), sync folders ([`sync`]), then wait for new mail with IDLE
//! on INBOX (or NOOP polling when the server has no IDLE), syncing every
//! other folder on the account's poll interval. On any failure it reports
//! the account `offline` (or `error` when a person must act), backs off with
//! jitter and reconnects, catching up on everything that arrived meanwhile.
//!
//! It owns no D-Bus code: it reports through [`crate::sync::events::Reporter`]
//! and answers [`Request`]s from the scheduler.

pub mod bounded;
pub mod command;
pub mod folders;
pub mod session;
pub mod sync;
pub mod utf7;

use std::collections::VecDeque;
use std::time::Duration;

use crate::sync::State;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::{MessageId, Store};
use crate::sync::events::Reporter;
use crate::sync::scheduler::Request;
use session::{drain, step, step_within, Caps, ImapSession};

/// How long one IDLE lasts before it is re-issued. RFC 2177 allows 29
/// minutes, but NAT gateways and some servers drop idle flows after about
/// 10 (Geary re-issues at 9.5, Delta Chat times out at 5), and a silent dead
/// connection is only noticed when DONE gets no answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(9 * 60);
/// How long DONE may take before the connection is considered dead.
const DONE_TIMEOUT: Duration = Duration::from_secs(15);
/// Polling interval of INBOX on servers without IDLE.
const NOOP_INTERVAL: Duration = Duration::from_secs(60);
/// First reconnection delay; doubles up to [`BACKOFF_MAX`] (Delta Chat's
/// values), with jitter so many clients do not reconnect in step.
const BACKOFF_START: Duration = Duration::from_secs(2);
/// Longest reconnection delay.
const BACKOFF_MAX: Duration = Duration::from_secs(80);
/// How long the known folders are synced without LIST after the server
/// sent a folder list that cannot be read.
pub(crate) const LIST_RETRY: Duration = Duration::from_secs(30 * 60);

/// One account's engine. Lives in its own task; ends when `cancel` fires.
pub struct Engine {
    id: String,
    settings: Settings,
    password: Zeroizing<String>,
    store: Store,
    reporter: Reporter,
    caps: Caps,
    healthy: bool,
    /// The UIDNEXT of INBOX at its last pass, as the server announced it.
    inbox_next: std::sync::atomic::AtomicU32,
    /// Until when LIST is not tried again after the server sent a folder
    /// list that cannot be read (see [`Engine::pass`]).
    list_unreadable_until: Option<Instant>,
}

/// Why a session ended.
enum End {
    Cancelled,
    Failed(Failure),
}

impl From<Failure> for End {
    fn from(f: Failure) -> Self {
        End::Failed(f)
    }
}

/// Next backoff delay after `current`, with ±25 % jitter.
pub fn next_backoff(current: Duration) -> Duration {
    let doubled = current.saturating_mul(2).min(BACKOFF_MAX);
    let jitter = rand::random_range(0.75..1.25);
    doubled.mul_f64(jitter).min(BACKOFF_MAX)
}

impl Engine {
    /// An engine for an account.
    pub fn new(
        id: String,
        settings: Settings,
        password: Zeroizing<String>,
        store: Store,
        reporter: Reporter,
    ) -> Self {
        Engine {
            id,
            settings,
            password,
            store,
            reporter,
            caps: Caps::default(),
            healthy: false,
            inbox_next: std::sync::atomic::AtomicU32::new(0),
            list_unreadable_until: None,
        }
    }

    /// Run until cancelled: connect, sync, idle; reconnect with backoff.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, cancel: CancellationToken) {
        let mut backoff = BACKOFF_START;
        // Syncs asked for while offline, answered by the next session's
        // first pass (or its failure).
        let mut waiting: Vec<SyncReply> = Vec::new();
        loop {
            let result = tokio::select! {
                r = self.session(&mut requests, &cancel, std::mem::take(&mut waiting)) => r,
                _ = cancel.cancelled() => End::Cancelled,
            };
            let failure = match result {
                End::Cancelled => return,
                End::Failed(f) => f,
            };
            // A session that got as far as a full pass was healthy: start
            // the backoff from the beginning again.
            if std::mem::take(&mut self.healthy) {
                backoff = BACKOFF_START;
            }
            let state = match failure.kind {
                FailureKind::Auth
                | FailureKind::Tls
                | FailureKind::Certificate
                | FailureKind::NotSupported
                | FailureKind::DiskFull => State::Error,
                FailureKind::Credentials => State::NeedsCredentials,
                _ => State::Offline,
            };
            warn!(
                "Account {}: {}; retrying in about {} s.",
                self.id,
                failure,
                backoff.as_secs()
            );
            self.reporter.failure(state, &failure);
            // A wrong password or a refused certificate will not fix itself:
            // wait the longest delay, never retry in a tight loop.
            let delay = if failure.is_transient() {
                backoff
            } else {
                BACKOFF_MAX
            };
            let deadline = Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = cancel.cancelled() => return,
                    r = requests.recv() => match r {
                        // "Sync now" while offline: reconnect at once and
                        // answer with that pass, never with the old failure.
                        Some(Request::Sync(reply)) => {
                            waiting.push(reply);
                            backoff = BACKOFF_START;
                            break;
                        }
                        Some(Request::Delete(_, reply)) => {
                            let _ = reply.send(Err(failure.clone()));
                        }
                        None => return,
                    },
                }
            }
            backoff = next_backoff(backoff);
        }
    }

    /// One connected session, until it fails or is cancelled. `waiting`
    /// Syncs (and those asked for while connecting) are answered by the
    /// first pass. A Sync that comes during a pass is answered by the next
    /// one, which starts at once, with the new messages of both: mail the
    /// running pass fetched is reported, never lost to a Sync.
    async fn session(
        &mut self,
        requests: &mut mpsc::Receiver<Request>,
        cancel: &CancellationToken,
        waiting: Vec<SyncReply>,
    ) -> End {
        self.reporter.state(State::Syncing, "");
        // Each with the new messages already stored for it.
        let mut pending: Vec<(SyncReply, u32)> = waiting.into_iter().map(|r| (r, 0)).collect();
        let mut queued = VecDeque::new();
        let connected = {
            let connect = session::connect(&self.settings, &self.password);
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
        let (mut session, caps) = match connected {
            Ok(s) => s,
            Err(f) => {
                for (reply, _) in pending.drain(..) {
                    let _ = reply.send(Err(f.clone()));
                }
                for request in queued {
                    if let Request::Delete(_, reply) = request {
                        let _ = reply.send(Err(f.clone()));
                    }
                }
                return End::Failed(f);
            }
        };
        self.caps = caps;
        info!(
            "Account {}: connected to {}.",
            self.id, self.settings.incoming_host
        );
        let poll = Duration::from_secs(u64::from(self.settings.poll_interval_minutes) * 60);
        let mut full_due = Instant::now();
        let mut inbox_dirty = true;
        loop {
            let full = Instant::now() >= full_due || !pending.is_empty();
            if full || inbox_dirty {
                self.reporter.state(State::Syncing, "");
                match self.pass(&mut session, full).await {
                    Ok(new) => {
                        for (reply, carried) in pending.drain(..) {
                            let _ = reply.send(Ok(new.saturating_add(carried)));
                        }
                        // Asked for during this pass: another one now.
                        while let Ok(request) = requests.try_recv() {
                            match request {
                                Request::Sync(reply) => pending.push((reply, new)),
                                other => queued.push_back(other),
                            }
                        }
                    }
                    Err(f) => {
                        for (reply, _) in pending.drain(..) {
                            let _ = reply.send(Err(f.clone()));
                        }
                        return End::Failed(f);
                    }
                }
                if full {
                    full_due = Instant::now() + poll;
                    self.healthy = true;
                }
                inbox_dirty = false;
                self.reporter.synced();
                self.reporter.state(State::Idle, "");
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
            let wait = full_due.saturating_duration_since(Instant::now());
            let woke = if let Some(request) = queued.pop_front() {
                // Asked for while connecting or during a pass.
                Ok((session, Wake::Request(request)))
            } else if self.caps.idle {
                self.idle(session, wait.min(IDLE_TIMEOUT), requests, cancel)
                    .await
            } else {
                self.noop_wait(session, wait.min(NOOP_INTERVAL), requests, cancel)
                    .await
            };
            let (s, wake) = match woke {
                Ok(v) => v,
                Err(end) => {
                    for (reply, _) in pending.drain(..) {
                        let failure = match &end {
                            End::Failed(f) => f.clone(),
                            End::Cancelled => {
                                Failure::new(FailureKind::Local, "The account was stopped")
                            }
                        };
                        let _ = reply.send(Err(failure));
                    }
                    return end;
                }
            };
            session = s;
            match wake {
                Wake::NewData => inbox_dirty = true,
                Wake::Timeout => {}
                Wake::Request(Request::Sync(reply)) => pending.push((reply, 0)),
                Wake::Request(Request::Delete(id, reply)) => {
                    let r = self.delete(&mut session, &id).await;
                    let failed = r.as_ref().err().filter(|f| f.is_transient()).cloned();
                    let _ = reply.send(r);
                    if let Some(f) = failed {
                        return End::Failed(f);
                    }
                    inbox_dirty = true;
                }
                Wake::Cancelled => {
                    let _ = tokio::time::timeout(DONE_TIMEOUT, session.logout()).await;
                    return End::Cancelled;
                }
            }
        }
    }

    /// A pass: every folder when `full`, else INBOX only. INBOX is left
    /// selected, ready for IDLE.
    async fn pass(&mut self, session: &mut ImapSession, full: bool) -> Result<u32, Failure> {
        let mut samples = Vec::new();
        let folders = if full {
            self.list_or_known(session).await?
        } else {
            match self
                .store
                .folder(&self.id, "INBOX")
                .map_err(Failure::from)?
            {
                Some(f) => vec![f],
                None => self.sync_folder_list(session).await?,
            }
        };
        let (mut new, mut announced) = (0u32, 0u32);
        let inbox = folders
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("INBOX"))
            .cloned();
        let others = folders
            .iter()
            .filter(|f| !f.name.eq_ignore_ascii_case("INBOX"));
        // INBOX last, so it stays selected for IDLE.
        for folder in others.chain(inbox.as_ref()) {
            // Mail landing in Sent, Drafts, Trash, Spam or Archive is not
            // news to the user: no notification for it.
            let quiet = matches!(
                folder.role.as_deref(),
                Some("sent" | "drafts" | "trash" | "spam" | "archive")
            );
            let mut ignored = Vec::new();
            let sink = if quiet { &mut ignored } else { &mut samples };
            let n = self.sync_folder(session, folder, sink).await?;
            new += n;
            if !quiet {
                announced += n;
            }
        }
        self.reporter.notify(announced as usize, samples);
        Ok(new)
    }

    /// IDLE on the selected INBOX until new data, the timeout, a request or
    /// cancellation.
    async fn idle(
        &self,
        session: ImapSession,
        limit: Duration,
        requests: &mut mpsc::Receiver<Request>,
        cancel: &CancellationToken,
    ) -> Result<(ImapSession, Wake), End> {
        // Check UIDNEXT right before IDLE: mail that arrived between the
        // last FETCH and now must not wait for the next wake-up.
        let mut session = session;
        if let Some(inbox) = self
            .store
            .folder(&self.id, "INBOX")
            .map_err(|e| End::Failed(e.into()))?
        {
            let status = step("STATUS", session.status("INBOX", "(UIDNEXT)")).await?;
            drain(&mut session);
            let known = inbox
                .state
                .map(|s| s.uidnext)
                .unwrap_or(0)
                .max(self.inbox_next.load(std::sync::atomic::Ordering::Relaxed));
            if status.uid_next.is_some_and(|n| n > known) {
                return Ok((session, Wake::NewData));
            }
        }
        let mut handle = session.idle();
        step("IDLE", handle.init()).await?;
        let wake = {
            let (fut, stop) = handle.wait_with_timeout(limit);
            let wake = tokio::select! {
                r = fut => match r {
                    Ok(async_imap::extensions::idle::IdleResponse::NewData(resp)) => {
                        if let imap_proto::Response::Data {
                            status: imap_proto::Status::Bye,
                            outcome,
                        } = resp.parsed()
                        {
                            // The server is leaving (shutdown, kick):
                            // say so rather than fail later on DONE.
                            return Err(End::Failed(Failure::new(
                                FailureKind::Connection,
                                format!(
                                    "The server {} closed the connection: {}",
                                    self.settings.incoming_host,
                                    outcome.information.as_deref().unwrap_or("BYE")
                                ),
                            )));
                        }
                        Wake::NewData
                    }
                    Ok(async_imap::extensions::idle::IdleResponse::Timeout) => Wake::Timeout,
                    // async-imap reports a dropped connection as a manual
                    // interrupt; DONE below tells which it was.
                    Ok(async_imap::extensions::idle::IdleResponse::ManualInterrupt) => Wake::NewData,
                    Err(e) => return Err(End::Failed(session::imap_failure("IDLE", e))),
                },
                _ = tokio::time::sleep(limit) => Wake::Timeout,
                r = requests.recv() => match r {
                    Some(r) => Wake::Request(r),
                    None => Wake::Cancelled,
                },
                _ = cancel.cancelled() => Wake::Cancelled,
            };
            drop(stop);
            wake
        };
        let session = step_within(DONE_TIMEOUT, "DONE", handle.done()).await?;
        Ok((session, wake))
    }

    /// Servers without IDLE: NOOP on INBOX every minute.
    async fn noop_wait(
        &self,
        mut session: ImapSession,
        limit: Duration,
        requests: &mut mpsc::Receiver<Request>,
        cancel: &CancellationToken,
    ) -> Result<(ImapSession, Wake), End> {
        let wake = tokio::select! {
            _ = tokio::time::sleep(limit) => Wake::Timeout,
            r = requests.recv() => match r {
                Some(r) => Wake::Request(r),
                None => Wake::Cancelled,
            },
            _ = cancel.cancelled() => Wake::Cancelled,
        };
        if matches!(wake, Wake::Timeout) {
            step("NOOP", session.noop()).await?;
            let wake = if drain(&mut session) {
                Wake::NewData
            } else {
                Wake::Timeout
            };
            return Ok((session, wake));
        }
        Ok((session, wake))
    }

    /// Delete a message on the server (flag, expunge), then locally, only
    /// once the server said OK to each step: async-imap's STORE and EXPUNGE
    /// streams end on a tagged NO as on OK (see [`command`]), and a refused
    /// delete taken for done would drop the local record of a message the
    /// server still has (fetched again, and announced, at the next pass).
    async fn delete(&self, session: &mut ImapSession, id: &MessageId) -> Result<(), Failure> {
        let folder = self
            .store
            .folder_of(id)
            .map_err(Failure::from)?
            .ok_or_else(|| Failure::new(FailureKind::Local, "The message's folder is gone"))?;
        let uidvalidity = select(session, &folder.name).await?;
        if uidvalidity == Some(id.uidvalidity) {
            let uid = id.uid.to_string();
            command::run(
                session,
                "UID STORE",
                &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
                |_| {},
            )
            .await?;
            if self.caps.uidplus {
                command::run(
                    session,
                    "UID EXPUNGE",
                    &format!("UID EXPUNGE {uid}"),
                    |_| {},
                )
                .await?;
            } else {
                command::run(session, "EXPUNGE", "EXPUNGE", |_| {}).await?;
            }
        } else if uidvalidity.is_none() {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("The server gave no UIDVALIDITY for {}", folder.display),
            ));
        }
        // Deleted on the server (or the record is of an older UIDVALIDITY,
        // which the server no longer has).
        self.store
            .remove_uids(&self.id, folder.no, &[id.uid])
            .await
            .map_err(Failure::from)?;
        self.reporter.counts();
        // Leave INBOX selected for IDLE.
        select(session, "INBOX").await?;
        Ok(())
    }
}

/// SELECT `name` through [`command::run`] (only a tagged OK counts);
/// returns the UIDVALIDITY the server gave.
async fn select(session: &mut ImapSession, name: &str) -> Result<Option<u32>, Failure> {
    let mut uidvalidity = None;
    command::run(
        session,
        "SELECT",
        &format!("SELECT {}", command::quoted(name)?),
        |r| {
            if let imap_proto::Response::Data {
                status: imap_proto::Status::Ok,
                outcome,
            } = r
            {
                if let Some(imap_proto::ResponseCode::UidValidity(v)) = &outcome.code {
                    uidvalidity = Some(*v);
                }
            }
        },
    )
    .await?;
    drain(session);
    Ok(uidvalidity)
}

/// Where the answer to a Sync goes.
type SyncReply = oneshot::Sender<Result<u32, Failure>>;

/// What ended a wait.
enum Wake {
    NewData,
    Timeout,
    Request(Request),
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_to_a_cap() {
        let mut d = BACKOFF_START;
        let mut seen = Vec::new();
        for _ in 0..10 {
            d = next_backoff(d);
            seen.push(d);
        }
        assert!(seen[0] >= Duration::from_secs(3) && seen[0] <= Duration::from_secs(5));
        assert!(seen.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(seen[9] >= BACKOFF_MAX.mul_f64(0.75));
    }
}
