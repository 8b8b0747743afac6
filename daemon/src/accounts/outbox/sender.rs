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
//! 2. sent → the entry and its file go (the Sent copy, on the server and
//!    in the local store at once, is kept by the shared submit path);
//! 3. refused for the message itself (a 5xx to MAIL, RCPT or DATA, a
//!    message too big or that cannot be sent as it is) → `failed` with
//!    `last-error`, not retried, reported (`OutboxFailedCount`, a desktop
//!    notification), and the next message goes;
//! 4. anything about the account or the connection (no network, a
//!    timeout, a 4xx, a locked keyring, a refused password or certificate,
//!    no SMTP host, a captive portal speaking nonsense) → back to `queued`
//!    with `last-error`, and the account waits with its order kept (the
//!    same message is first again): a [`Backoff`], or, when only a person
//!    can fix it (password, certificate, no SMTP host), until its settings
//!    change or [`Backoff::MAX`].
//!
//! A wait ends early when the account's settings change (an `Update`:
//! [`super::Outbox::wake`] is called, and the sender also looks at the
//! settings of waiting accounts every [`SETTINGS_POLL`]).
//!
//! ## An entry found `sending`, or `unverified`
//!
//! `sending`: it was interrupted (a crash, or a stop that could not wait).
//! `unverified`: an attempt lost its connection or timed out during the
//! transaction, with no reply, so the server may have taken it. For an
//! IMAP account the Sent folder is searched for its Message-ID (compared
//! exactly) before it is sent again: found means delivered (our copy is
//! appended only after the server's final 250; some servers file
//! submitted mail in Sent themselves) and the entry goes. Not found (or a
//! POP3 account, which has no Sent folder) → it is sent again. The lookup
//! failing (the IMAP server unreachable) → the entry is written back
//! `queued` and `unverified` (so it can be cancelled) and the lookup is
//! tried again after a backoff. The windows left: a crash after the
//! server's 250 and before the Sent copy is appended, or a reply lost
//! after DATA on a server that does not file sent mail itself, sends the
//! message a second time (same bytes and Message-ID, which receivers and
//! threads see as the same message).

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
use crate::sync::events::Event;

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
    /// Only a person can fix it (password, certificate, no SMTP host):
    /// wait for a settings change, [`super::Outbox::wake`] or the longest
    /// backoff.
    Blocked,
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
    // What a stop left `sending` is not being sent: `queued` again, to be
    // looked up in Sent at its turn (and cancellable meanwhile); then
    // OutboxCount of what waited across the restart.
    for account in inner.registry.all() {
        recover(&inner, &account.id).await;
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
                step @ (Step::Later | Step::Blocked | Step::StoreDown) => {
                    let settings = account.settings();
                    let w = waiting.entry(id).or_insert_with(|| Waiting {
                        backoff: Backoff::new(),
                        until: Instant::now(),
                        settings: settings.clone(),
                    });
                    w.settings = settings;
                    let delay = match step {
                        Step::Blocked => Backoff::MAX,
                        _ => w.backoff.next_delay(),
                    };
                    w.until = Instant::now() + delay;
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

/// What a failed attempt means for the message and the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The message itself was refused: it fails for good.
    MessageFailed,
    /// The account or the connection failed: the message waits, the
    /// account backs off.
    Later,
    /// As `Later`, and the server may have taken the message: look in the
    /// Sent folder before sending it again.
    LaterUnverified,
    /// The account needs a person (password, certificate, no SMTP host):
    /// the message waits for a settings change.
    Blocked,
}

/// Only failures about the message itself fail it; everything about the
/// account or the connection keeps it queued.
fn verdict(outcome: &Outcome) -> Verdict {
    match outcome {
        Outcome::Sent { .. } => Verdict::Later,
        Outcome::RetryLater(e) | Outcome::Failed(e) => match (&e.cause, outcome) {
            (Cause::MaybeSent(_), _) => Verdict::LaterUnverified,
            (Cause::Rejected | Cause::BadMessage, Outcome::Failed(_)) => Verdict::MessageFailed,
            (
                Cause::Net(
                    FailureKind::Auth | FailureKind::Certificate | FailureKind::NotSupported,
                ),
                Outcome::Failed(_),
            ) => Verdict::Blocked,
            _ => Verdict::Later,
        },
    }
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
    if q.state == QueuedState::Sending || q.unverified {
        let why = if q.state == QueuedState::Sending {
            "was being sent when the daemon stopped"
        } else {
            "may have reached the server at its last attempt"
        };
        match interrupted(inner, account, &q).await {
            Ok(true) => {
                info!(
                    "Account {id}: message {} ({}) is in the Sent folder: it was delivered \
                     (it {why}); it leaves the outbox.",
                    q.id, q.message_id
                );
                return remove(inner, &id, &q.id).await;
            }
            Ok(false) => info!(
                "Account {id}: message {} {why} and is not in the Sent folder; sending it again.",
                q.id
            ),
            Err(message) => {
                info!(
                    "Account {id}: message {} {why}; cannot look for it in the Sent folder \
                     yet: {message}",
                    q.id
                );
                // Queued again (so it can be cancelled), still to be
                // looked up before it is sent.
                q.state = QueuedState::Queued;
                q.unverified = true;
                q.last_error = message;
                return write(inner, &id, &q).await.unwrap_or(Step::Later);
            }
        }
    }
    let raw = {
        let (store, entry) = (inner.store.clone(), q.clone());
        blocking(move || store.outbox_raw(&entry)).await
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            q.state = QueuedState::Failed;
            q.last_error = format!("The queued message cannot be read: {e:#}");
            return failed(inner, &id, &q).await;
        }
    };
    // Marked `sending`, durably, before the transaction; CancelOutbox
    // waits for the mark and then refuses.
    {
        let mut sending = inner.sending.lock().await;
        q.state = QueuedState::Sending;
        q.unverified = false;
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
    let outcome = send_with(
        &inner.secrets,
        &inner.store,
        &inner.scheduler,
        account,
        &raw,
    )
    .await;
    let step = match &outcome {
        Outcome::Sent { .. } => remove(inner, &id, &q.id).await,
        Outcome::RetryLater(e) | Outcome::Failed(e) => {
            q.last_error.clone_from(&e.message);
            match verdict(&outcome) {
                Verdict::MessageFailed => {
                    q.state = QueuedState::Failed;
                    failed(inner, &id, &q).await
                }
                v => {
                    q.state = QueuedState::Queued;
                    q.unverified = v == Verdict::LaterUnverified;
                    let step = if v == Verdict::Blocked {
                        info!(
                            "Account {id}: the outbox waits for the account's settings to \
                             change (or {} s): {}",
                            Backoff::MAX.as_secs(),
                            e.message
                        );
                        Step::Blocked
                    } else {
                        Step::Later
                    };
                    write(inner, &id, &q).await.unwrap_or(step)
                }
            }
        }
    };
    inner.sending.lock().await.remove(&q.id);
    step
}

/// At start: every entry of the account left `sending` becomes `queued`
/// and `unverified` (the sender is not running yet: nothing is being sent).
async fn recover(inner: &Arc<Inner>, account: &str) {
    let (store, acc) = (inner.store.clone(), account.to_owned());
    let recovered = blocking(move || {
        let mut n = 0usize;
        for mut q in store.outbox_list(&acc)? {
            if q.state == QueuedState::Sending {
                q.state = QueuedState::Queued;
                q.unverified = true;
                if store.outbox_update(&acc, &q)? {
                    n += 1;
                }
            }
        }
        Ok(n)
    })
    .await;
    match recovered {
        Ok(0) => {}
        Ok(n) => info!(
            "Account {account}: {n} message(s) were being sent when the daemon stopped; \
             each is looked up in the Sent folder before it is sent again."
        ),
        Err(e) => warn!("Account {account}: cannot read the outbox: {e:#}"),
    }
}

/// Store a message failed for good and report it: the log, a recount
/// (`OutboxFailedCount`) and a desktop notification.
async fn failed(inner: &Arc<Inner>, account: &str, q: &Queued) -> Step {
    warn!(
        "Account {account}: queued message {} failed for good; it is not retried: {}",
        q.id, q.last_error
    );
    let step = write(inner, account, q).await.unwrap_or(Step::Done);
    let _ = inner.events.send(Event::OutboxFailed {
        account: account.to_owned(),
        subject: q.subject.clone(),
        reason: q.last_error.clone(),
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::SendError;

    fn err(cause: Cause) -> SendError {
        SendError {
            cause,
            message: "x".into(),
        }
    }

    #[test]
    fn only_refusals_of_the_message_fail_it() {
        let failed = |c| verdict(&Outcome::Failed(err(c)));
        let later = |c| verdict(&Outcome::RetryLater(err(c)));
        assert_eq!(failed(Cause::Rejected), Verdict::MessageFailed);
        assert_eq!(failed(Cause::BadMessage), Verdict::MessageFailed);
        // 4xx: the message waits.
        assert_eq!(later(Cause::Rejected), Verdict::Later);
        // The account's trouble: never the message's.
        for kind in [
            FailureKind::Auth,
            FailureKind::Certificate,
            FailureKind::NotSupported,
        ] {
            assert_eq!(failed(Cause::Net(kind)), Verdict::Blocked, "{kind:?}");
        }
        for kind in [
            FailureKind::Tls,
            FailureKind::Protocol,
            FailureKind::Credentials,
            FailureKind::Connection,
            FailureKind::Local,
            FailureKind::ServerLimit,
        ] {
            assert_eq!(failed(Cause::Net(kind)), Verdict::Later, "{kind:?}");
            assert_eq!(later(Cause::Net(kind)), Verdict::Later, "{kind:?}");
        }
        // No reply after the transaction began: look in Sent first.
        assert_eq!(
            later(Cause::MaybeSent(FailureKind::Timeout)),
            Verdict::LaterUnverified
        );
    }
}
