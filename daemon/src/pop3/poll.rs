//! # POP3 polling
//!
//! The engine of one POP3 account: a session every `poll-interval-minutes`
//! (and at once on Sync, after creation or an update), downloading only the
//! unique-ids never seen before. The order inside a session is what makes
//! it safe to kill at any moment (RFC 1939 §6: DELE only takes effect after
//! QUIT):
//!
//! 1. UIDL; forget unique-ids the server no longer has.
//! 2. RETR each new message, store a batch with its unique-ids in one
//!    transaction, flush.
//! 3. Only then DELE: the stored messages when messages are not left on the
//!    server, and pending local deletions when `delete-on-server` is set.
//! 4. QUIT.
//!
//! A kill before 2 completes means a re-download; between 2 and 4 the
//! unique-ids are known, so nothing is stored twice and the DELE is simply
//! sent again next time. Message numbers are used inside one session only.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::sync::State;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::error::Error;
use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::{Flags, FolderInfo, MessageId, NewMessage, Store};
use crate::sync::events::Reporter;
use crate::sync::scheduler::Request;

/// Largest message accepted: bounded memory whatever the server says.
pub const MAX_MESSAGE: u64 = 128 * 1024 * 1024;
/// Messages stored per transaction.
const BATCH_MESSAGES: usize = 100;
/// Bytes held before a batch is stored.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// First retry delay after a failed session; doubles up to [`RETRY_MAX`],
/// then the normal interval takes over.
const RETRY_START: Duration = Duration::from_secs(2);
/// Longest retry delay before the next interval.
const RETRY_MAX: Duration = Duration::from_secs(80);

/// Where the answer to a Sync goes.
type SyncReply = tokio::sync::oneshot::Sender<Result<u32, Failure>>;

pub use super::session::{failure, login};

/// One account's POP3 engine.
pub struct Poller {
    id: String,
    settings: Settings,
    password: Zeroizing<String>,
    store: Store,
    reporter: Reporter,
}

impl Poller {
    /// A poller for an account.
    pub fn new(
        id: String,
        settings: Settings,
        password: Zeroizing<String>,
        store: Store,
        reporter: Reporter,
    ) -> Self {
        Poller {
            id,
            settings,
            password,
            store,
            reporter,
        }
    }

    /// Poll until cancelled.
    pub async fn run(self, mut requests: mpsc::Receiver<Request>, cancel: CancellationToken) {
        // The INBOX exists (empty) from the start, so listing it works
        // before the first poll has stored anything.
        if let Err(f) = self.inbox() {
            warn!("Account {}: cannot create the local INBOX: {f}", self.id);
        }
        let interval = Duration::from_secs(u64::from(self.settings.poll_interval_minutes) * 60);
        let mut retry = RETRY_START;
        // Syncs this poll answers, each with the new messages already stored
        // for it by the poll that was running when it came.
        let mut waiting: Vec<(SyncReply, u32)> = Vec::new();
        let mut queued = VecDeque::new();
        loop {
            self.reporter.state(State::Syncing, "");
            let mut joined = Vec::new();
            let result = {
                let poll = self.poll();
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
            for (reply, carried) in waiting.drain(..) {
                let _ = reply.send(result.clone().map(|n| n.saturating_add(carried)));
            }
            // A Sync that came during this poll may have come after its UIDL:
            // it is answered by a new poll right away, with what this one
            // stored (mail it fetched is reported, never lost to a Sync).
            let stored = result.as_ref().map_or(0, |n| *n);
            waiting.extend(joined.into_iter().map(|reply| (reply, stored)));
            let next = match &result {
                Ok(_) => {
                    retry = RETRY_START;
                    self.reporter.synced();
                    self.reporter.state(State::Idle, "");
                    interval
                }
                Err(f) => {
                    let st = match f.kind {
                        FailureKind::Auth
                        | FailureKind::Tls
                        | FailureKind::Certificate
                        | FailureKind::NotSupported
                        | FailureKind::DiskFull => State::Error,
                        _ => State::Offline,
                    };
                    self.reporter.failure(st, f);
                    if f.is_transient() {
                        let delay = retry.min(interval);
                        warn!(
                            "Account {}: {f}; retrying in about {} s.",
                            self.id,
                            delay.as_secs()
                        );
                        retry = crate::imap::next_backoff(retry).min(RETRY_MAX);
                        delay
                    } else {
                        // A refused password is not retried in a tight loop.
                        warn!("Account {}: {f}; next try at the next poll.", self.id);
                        interval.max(RETRY_MAX)
                    }
                }
            };
            let deadline = Instant::now()
                + if waiting.is_empty() {
                    next
                } else {
                    Duration::ZERO
                };
            loop {
                let request = match queued.pop_front() {
                    Some(r) => Some(r),
                    None => tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = cancel.cancelled() => return,
                        r = requests.recv() => r,
                    },
                };
                match request {
                    Some(Request::Sync(reply)) => {
                        waiting.push((reply, 0));
                        break;
                    }
                    Some(Request::Delete(id, reply)) => {
                        let r = self.delete_local(&id).await;
                        let poll_now = matches!(r, Ok(true));
                        let _ = reply.send(r.map(|_| ()));
                        if poll_now {
                            break;
                        }
                    }
                    None => return,
                }
            }
        }
    }

    /// Delete a message locally; with leave-on-server and delete-on-server,
    /// remember to delete it on the server at the next session (stored, so
    /// it survives restarts). Returns whether a server deletion is pending.
    async fn delete_local(&self, id: &MessageId) -> Result<bool, Failure> {
        let s = &self.settings;
        let pending = if s.leave_on_server && s.delete_on_server {
            self.store
                .pop3_mark_delete(&self.id, id.uid)
                .await
                .map_err(Failure::from)?
        } else {
            false
        };
        self.store
            .remove_uids(&self.id, id.folder, &[id.uid])
            .await
            .map_err(Failure::from)?;
        self.reporter.counts();
        Ok(pending)
    }

    fn inbox(&self) -> Result<FolderInfo, Failure> {
        match self
            .store
            .folder(&self.id, "INBOX")
            .map_err(Failure::from)?
        {
            Some(f) => Ok(f),
            None => self
                .store
                .upsert_folder(&self.id, "INBOX", "INBOX", None, Some("inbox".into()), true)
                .map_err(Failure::from),
        }
    }

    /// One session; returns the number of new messages.
    async fn poll(&self) -> Result<u32, Failure> {
        let host = self.settings.incoming_host.clone();
        let login_name = self.settings.incoming_login().to_owned();
        let fail = |e| failure(&host, &login_name, e);
        let (mut client, caps) = login(&self.settings, &self.password).await?;
        if caps.advertised() && !caps.uidl() {
            return Err(Failure::new(
                FailureKind::NotSupported,
                format!(
                    "{host} does not support UIDL, so facteur cannot tell new messages from old ones; \
                     use IMAP for this account"
                ),
            ));
        }
        let listing = match client.uidl().await {
            Ok(l) => l,
            Err(Error::Server { .. }) => {
                return Err(Failure::new(
                    FailureKind::NotSupported,
                    format!(
                        "{host} refused UIDL; facteur needs it to avoid downloading mail twice"
                    ),
                ))
            }
            Err(e) => return Err(fail(e)),
        };
        let sizes: std::collections::HashMap<u32, u64> = client
            .list()
            .await
            .map_err(fail)?
            .into_iter()
            .map(|e| (e.number, e.size))
            .collect();
        let known = self.store.pop3_entries(&self.id).map_err(Failure::from)?;
        let on_server: BTreeSet<&str> = listing.iter().map(|e| e.uid.as_str()).collect();
        let gone: Vec<String> = known
            .keys()
            .filter(|u| !on_server.contains(u.as_str()))
            .cloned()
            .collect();
        self.store
            .pop3_forget(&self.id, &gone)
            .await
            .map_err(Failure::from)?;

        let inbox = self.inbox()?;
        let mut samples = Vec::new();
        let mut new_total = 0u32;
        let mut delete_now: Vec<u32> = Vec::new();
        let mut batch: Vec<(String, NewMessage)> = Vec::new();
        let mut batch_numbers: Vec<u32> = Vec::new();
        let mut batch_bytes = 0usize;
        let fresh: Vec<_> = listing
            .iter()
            .filter(|e| !known.contains_key(&e.uid))
            .filter(|e| {
                // Skipped before RETR: a message over the bound would end
                // every session at the same place.
                let size = sizes.get(&e.number).copied().unwrap_or(0);
                if size > MAX_MESSAGE {
                    warn!(
                        "Account {}: message {} on {host} has {size} bytes, more than the {MAX_MESSAGE} facteur accepts; it stays on the server.",
                        self.id, e.uid
                    );
                }
                size <= MAX_MESSAGE
            })
            .collect();
        if !fresh.is_empty() {
            debug!(
                "Account {}: {} new message(s) on {host}.",
                self.id,
                fresh.len()
            );
        }
        for (i, entry) in fresh.iter().enumerate() {
            let mut raw = Vec::with_capacity(
                sizes
                    .get(&entry.number)
                    .copied()
                    .unwrap_or(0)
                    .min(MAX_MESSAGE) as usize,
            );
            match client.retr(entry.number, &mut raw, MAX_MESSAGE).await {
                Ok(_) => {}
                Err(Error::TooLarge { limit }) => {
                    warn!(
                        "Account {}: message {} on {host} is larger than {limit} bytes; left on the server.",
                        self.id, entry.uid
                    );
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        format!(
                            "A message on {host} is larger than {limit} bytes and was left there"
                        ),
                    ));
                }
                Err(e) => return Err(fail(e)),
            }
            batch_bytes += raw.len();
            batch.push((
                entry.uid.clone(),
                NewMessage {
                    uid: 0,
                    flags: Flags::default(),
                    raw,
                    internal_date: now(),
                },
            ));
            batch_numbers.push(entry.number);
            let last = i + 1 == fresh.len();
            if last || batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES {
                let ids = self
                    .store
                    .pop3_store(&self.id, &inbox, std::mem::take(&mut batch))
                    .await
                    .map_err(Failure::from)?;
                batch_bytes = 0;
                // Stored and flushed: now, and only now, may they go.
                if !self.settings.leave_on_server {
                    delete_now.append(&mut batch_numbers);
                }
                batch_numbers.clear();
                for id in ids.iter().take(5usize.saturating_sub(samples.len())) {
                    if let Ok(Some(r)) = self.store.record(id) {
                        samples.push((r.meta.from.clone(), r.meta.subject.clone()));
                    }
                }
                new_total = new_total.saturating_add(ids.len() as u32);
                self.reporter
                    .new_messages(&inbox.display, ids.iter().map(|i| i.to_string()).collect());
                self.reporter.counts();
            }
        }
        // Messages stored in an earlier session that must still go: not left
        // on the server (a crash came between store and QUIT, or the option
        // changed), or deleted locally with delete-on-server.
        let known = self.store.pop3_entries(&self.id).map_err(Failure::from)?;
        for entry in &listing {
            if let Some(k) = known.get(&entry.uid) {
                let pending = self.settings.leave_on_server
                    && self.settings.delete_on_server
                    && k.pending_delete;
                if (!self.settings.leave_on_server || pending)
                    && !delete_now.contains(&entry.number)
                {
                    delete_now.push(entry.number);
                }
            }
        }
        for number in &delete_now {
            client.dele(*number).await.map_err(fail)?;
        }
        client.quit().await.map_err(fail)?;
        if !delete_now.is_empty() {
            info!(
                "Account {}: deleted {} message(s) on {host}.",
                self.id,
                delete_now.len()
            );
        }
        self.reporter.notify(new_total as usize, samples);
        Ok(new_total)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
