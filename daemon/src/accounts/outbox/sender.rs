//! # The sender task
//!
//! One task for every account. Each round it looks at each account's
//! queue and hands the oldest message that is not `failed` to the SMTP
//! server (one message per account per round, so one slow account does not
//! hold the others up); it sleeps when nothing is due, until something is
//! queued ([`super::Outbox::enqueue`]), [`super::Outbox::wake`] is called,
//! or an account's backoff ends.
//!
//! Per message:
//!
//! 1. the entry is marked `sending` (attempts + 1), flushed, before the
//!    SMTP transaction;
//! 2. sent → the entry and its file go (the Sent copy is kept by the
//!    shared submit path); retry later (no network, a timeout, a 4xx, a
//!    locked keyring) → back to `queued` with `last-error`, and the account
//!    waits out a [`Backoff`] with its order kept (the same message is
//!    first again); failed for good (5xx, a bad message, no SMTP host, a
//!    refused password or certificate) → `failed` with `last-error`, not
//!    retried, and the next message goes.
//!
//! A backoff ends early when the account's settings change (an `Update`:
//! the sender looks at the settings of waiting accounts every
//! [`SETTINGS_POLL`]) or on [`super::Outbox::wake`].
//!
//! ## An entry found `sending`
//!
//! It was interrupted (a crash, or a stop that could not wait). For an IMAP
//! account the Sent folder is searched for its Message-ID: the Sent copy
//! is appended only after the server's final 250, so found means delivered
//! and the entry goes. Not found (or a POP3 account, which has no Sent
//! folder) → it is sent again. The one window left: a crash after the
//! server's 250 and before the Sent copy is appended sends the message a
//! second time (same bytes and Message-ID, which receivers and threads see
//! as the same message).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{announce, blocking, send_with, unix_now, Inner};
use crate::accounts::Account;
use crate::net::FailureKind;
use crate::secrets::Which;
use crate::settings::{Protocol, Settings};
use crate::smtp::{Cause, Outcome};
use crate::store::{Queued, QueuedState};
use crate::sync::backoff::Backoff;

/// How often the settings of an account waiting out a backoff are looked
/// at (an Update ends the wait).
pub const SETTINGS_POLL: Duration = Duration::from_secs(1);

/// What one look at an account's queue did.
enum Step {
    /// Nothing to send.
    Idle,
    /// A message was dealt with (sent, failed, dropped): look again now.
    Done,
    /// Try again after a backoff.
    Later,
    /// The store failed: try again after a backoff too.
    StoreDown,
}

/// An account waiting out its backoff.
struct Waiting {
    backoff: Backoff,
    until: Instant,
    /// The settings the last attempt used: a change ends the wait.
    settings: Settings,
}

/// The task: see the module docs.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    // OutboxCount of what waited across the restart.
    for account in inner.registry.all() {
        inner.scheduler.counts_changed(&account.id);
    }
    loop {
        if inner.stop.is_cancelled() {
            break;
        }
        if inner.retry_now.swap(false, Ordering::SeqCst) {
            waiting.clear();
        }
        let mut again = false;
        let mut next: Option<Instant> = None;
        let at = |next: &mut Option<Instant>, t: Instant| {
            *next = Some(next.map_or(t, |n| n.min(t)));
        };
        for account in inner.registry.all() {
            if inner.stop.is_cancelled() {
                return;
            }
            let id = account.id.clone();
            if let Some(w) = waiting.get(&id) {
                if account.settings() != w.settings {
                    info!("Account {id}: settings changed; the outbox tries again now.");
                    waiting.remove(&id);
                } else if Instant::now() < w.until {
                    at(&mut next, w.until);
                    continue;
                }
            }
            match deliver_next(&inner, &account).await {
                Step::Idle => {
                    waiting.remove(&id);
                }
                Step::Done => {
                    waiting.remove(&id);
                    again = true;
                }
                Step::Later | Step::StoreDown => {
                    let settings = account.settings();
                    let w = waiting.entry(id).or_insert_with(|| Waiting {
                        backoff: Backoff::new(),
                        until: Instant::now(),
                        settings: settings.clone(),
                    });
                    w.settings = settings;
                    w.until = Instant::now() + w.backoff.next_delay();
                    at(&mut next, w.until);
                }
            }
        }
        waiting.retain(|id, _| inner.registry.get(id).is_some());
        if again {
            continue;
        }
        if !waiting.is_empty() {
            at(&mut next, Instant::now() + SETTINGS_POLL);
        }
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = inner.queued.notified() => {}
            _ = sleep => {}
            _ = inner.stop.cancelled() => break,
        }
    }
}

/// Outcomes the SMTP layer calls final that may pass for a queued message:
/// no readable password (a locked keyring), a server limit, a local disk
/// fault.
fn may_pass(cause: &Cause) -> bool {
    matches!(
        cause,
        Cause::Net(
            FailureKind::Credentials
                | FailureKind::ServerLimit
                | FailureKind::Local
                | FailureKind::DiskFull
        )
    )
}

/// Deal with the oldest message of the account that is not `failed`.
async fn deliver_next(inner: &Arc<Inner>, account: &Arc<Account>) -> Step {
    let id = account.id.clone();
    let store = inner.store.clone();
    let list = match blocking({
        let id = id.clone();
        move || store.outbox_list(&id)
    })
    .await
    {
        Ok(l) => l,
        Err(e) => {
            warn!("Account {id}: cannot read the outbox: {e:#}");
            return Step::StoreDown;
        }
    };
    let Some(mut q) = list.into_iter().find(|q| q.state != QueuedState::Failed) else {
        return Step::Idle;
    };
    if q.state == QueuedState::Sending {
        match interrupted(inner, account, &q).await {
            Ok(true) => {
                info!(
                    "Account {id}: message {} ({}) is in the Sent folder: it was delivered \
                     before the daemon stopped; it leaves the outbox.",
                    q.id, q.message_id
                );
                return remove(inner, &id, &q.id).await;
            }
            Ok(false) => info!(
                "Account {id}: message {} was being sent when the daemon stopped and is not \
                 in the Sent folder; sending it again.",
                q.id
            ),
            Err(message) => {
                info!(
                    "Account {id}: message {} was being sent when the daemon stopped; \
                     cannot look for it in the Sent folder yet: {message}",
                    q.id
                );
                q.last_error = message;
                return write(inner, &id, &q).await.unwrap_or(Step::Later);
            }
        }
    }
    let raw = {
        let (store, qid) = (inner.store.clone(), q.id.clone());
        blocking(move || store.outbox_raw(&qid)).await
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            warn!("Account {id}: message {}: {e:#}", q.id);
            q.state = QueuedState::Failed;
            q.last_error = format!("The queued message cannot be read: {e:#}");
            return write(inner, &id, &q).await.unwrap_or(Step::Done);
        }
    };
    // Marked `sending`, durably, before the transaction; CancelOutbox
    // waits for the mark and then refuses.
    {
        let mut sending = inner.sending.lock().await;
        q.state = QueuedState::Sending;
        q.attempts = q.attempts.saturating_add(1);
        q.last_attempt = unix_now();
        match write(inner, &id, &q).await {
            None => {}
            Some(step) => return step,
        }
        sending.insert(q.id.clone());
    }
    announce(inner, &id).await;
    info!(
        "Account {id}: sending queued message {} (attempt {}).",
        q.id, q.attempts
    );
    let outcome = send_with(&inner.secrets, &inner.store, account, &raw).await;
    let step = match outcome {
        Outcome::Sent { .. } => remove(inner, &id, &q.id).await,
        Outcome::RetryLater(e) => {
            q.state = QueuedState::Queued;
            q.last_error = e.message;
            write(inner, &id, &q).await.unwrap_or(Step::Later)
        }
        Outcome::Failed(e) if may_pass(&e.cause) => {
            q.state = QueuedState::Queued;
            q.last_error = e.message;
            write(inner, &id, &q).await.unwrap_or(Step::Later)
        }
        Outcome::Failed(e) => {
            warn!(
                "Account {id}: queued message {} failed for good; it is not retried.",
                q.id
            );
            q.state = QueuedState::Failed;
            q.last_error = e.message;
            write(inner, &id, &q).await.unwrap_or(Step::Done)
        }
    };
    inner.sending.lock().await.remove(&q.id);
    step
}

/// Write the entry back; `None` when written, else the step to take (the
/// entry is gone: next; the store failed: wait).
async fn write(inner: &Arc<Inner>, account: &str, q: &Queued) -> Option<Step> {
    let (store, acc, entry) = (inner.store.clone(), account.to_owned(), q.clone());
    let written = blocking(move || store.outbox_update(&acc, &entry)).await;
    announce(inner, account).await;
    match written {
        Ok(true) => None,
        Ok(false) => Some(Step::Done),
        Err(e) => {
            warn!("Account {account}: cannot update the outbox: {e:#}");
            Some(Step::StoreDown)
        }
    }
}

/// Remove a delivered entry and its file.
async fn remove(inner: &Arc<Inner>, account: &str, qid: &str) -> Step {
    let (store, acc, id) = (inner.store.clone(), account.to_owned(), qid.to_owned());
    let removed = blocking(move || store.outbox_remove(&acc, &id)).await;
    announce(inner, account).await;
    match removed {
        Ok(_) => Step::Done,
        Err(e) => {
            warn!("Account {account}: cannot remove sent message {qid} from the outbox: {e:#}");
            Step::StoreDown
        }
    }
}

/// Whether a message found `sending` was delivered: its Message-ID in the
/// Sent folder of an IMAP account. `Err` with a sentence when that cannot
/// be known now (the server is unreachable).
async fn interrupted(inner: &Arc<Inner>, account: &Account, q: &Queued) -> Result<bool, String> {
    let settings = account.settings();
    if settings.incoming_protocol != Protocol::Imap || q.message_id.is_empty() {
        return Ok(false);
    }
    let password = match inner.secrets.get(&account.id, Which::Incoming).await {
        Ok(Some(p)) if !p.is_empty() => p,
        // No password: no Sent copy was made either.
        Ok(_) => return Ok(false),
        Err(e) => return Err(format!("Cannot read the password: {e}")),
    };
    let looked = tokio::time::timeout(
        crate::smtp::SENT_COPY_TIMEOUT,
        crate::smtp::sent::contains(
            &account.id,
            &settings,
            &password,
            &inner.store,
            &q.message_id,
        ),
    )
    .await;
    match looked {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(f)) => Err(f.message),
        Err(_) => Err(format!(
            "The Sent folder did not answer within {} s",
            crate::smtp::SENT_COPY_TIMEOUT.as_secs()
        )),
    }
}
