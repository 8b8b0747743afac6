//! # The outbox sender
//!
//! `Enqueue` stores a message durably (its file fsynced, its entry flushed)
//! before it answers; a background task ([`sender`]) then hands queued
//! messages to each account's SMTP server in the order they were queued, as
//! soon as the server is reachable, with backoff between attempts. A
//! permanent refusal (a 5xx reply, a message that cannot be sent) stops the
//! retries and is kept as the entry's `failed` state and `last-error`. The
//! Sent copy is kept as for `Send` (the one submit path, [`send_with`]).
//!
//! What is stored is what is sent: `Enqueue` adds the missing From, Date
//! and Message-ID before storing ([`crate::smtp::message::prepare`]), so
//! every retry sends the same bytes and the Message-ID names the message.
//! Queuing a message whose Message-ID is already queued or being sent for
//! the account stores nothing: the same bytes answer with that entry's id,
//! other bytes (an edited message) are refused (`AlreadyExists`).
//!
//! Passwords are read from the secret store for each attempt and dropped;
//! the outbox never stores one.

mod sender;
mod submit;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::mail::Refused;
use super::{Account, Registry};
use crate::secrets::SecretStore;
use crate::store::{Added, Queued, QueuedState, Store};
use crate::sync::events::{Event, Reporter};
use crate::sync::Scheduler;

pub(crate) use submit::send_with;

/// The outbox: see the module docs.
pub struct Outbox {
    inner: Arc<Inner>,
}

/// What the facade and the sender share.
struct Inner {
    registry: Arc<Registry>,
    store: Store,
    secrets: Arc<SecretStore>,
    scheduler: Arc<Scheduler>,
    /// Into the events loop: recounts (`OutboxCount`) settled at once.
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Something was queued: the sender looks at once.
    queued: Notify,
    /// Set by [`Outbox::wake`]: accounts waiting out a backoff try again
    /// at once.
    retry_now: std::sync::atomic::AtomicBool,
    /// Stops the sender (between two messages).
    stop: CancellationToken,
    /// The ids handed to the SMTP server right now. Marking an entry
    /// `sending` and `CancelOutbox` both hold this lock, so a message is
    /// never cancelled while it is being sent.
    sending: tokio::sync::Mutex<HashSet<String>>,
}

/// Unix seconds now.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Tell the events loop the account's outbox changed, and wait until the
/// new count is applied and announced: a recount the loop put off (it
/// counts at most once a second) is settled by the flush.
async fn announce(inner: &Inner, account: &str) {
    let reporter = Reporter::new(account, inner.events.clone());
    reporter.counts();
    reporter.flush().await;
}

/// Run a store call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("The store task failed: {e}"))?
}

/// Whether the message has an empty line between its header and its body.
fn has_separator(raw: &[u8]) -> bool {
    let starts_blank = raw.starts_with(b"\n") || raw.starts_with(b"\r\n");
    starts_blank || raw.windows(2).any(|w| w == b"\n\n") || raw.windows(3).any(|w| w == b"\n\r\n")
}

/// The entry `Enqueue` stores for `copy` (prepared bytes): its subject,
/// recipients and Message-ID.
fn describe(copy: &[u8]) -> Result<Queued, Refused> {
    let parsed = mail_parser::MessageParser::new()
        .parse_headers(copy)
        .ok_or_else(|| Refused::Invalid("The message headers cannot be read".into()))?;
    let mut to = Vec::new();
    for header in [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
    {
        for a in header.iter() {
            let Some(address) = a.address() else { continue };
            match a.name().filter(|n| !n.is_empty()) {
                Some(name) => to.push(format!("{name} <{address}>")),
                None => to.push(address.to_owned()),
            }
        }
    }
    Ok(Queued {
        id: String::new(),
        subject: parsed.subject().unwrap_or_default().to_owned(),
        to: to.join(", "),
        state: QueuedState::Queued,
        attempts: 0,
        last_error: String::new(),
        queued: unix_now(),
        hash: String::new(),
        message_id: parsed.message_id().unwrap_or_default().to_owned(),
        last_attempt: 0,
        unverified: false,
    })
}

impl Outbox {
    /// The outbox over these parts; its sender runs once [`Outbox::run`]
    /// is spawned.
    pub fn new(
        registry: Arc<Registry>,
        store: Store,
        secrets: Arc<SecretStore>,
        scheduler: Arc<Scheduler>,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                registry,
                store,
                secrets,
                scheduler,
                events,
                queued: Notify::new(),
                retry_now: std::sync::atomic::AtomicBool::new(false),
                stop: CancellationToken::new(),
                sending: tokio::sync::Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The sender task: spawn it once (with `Scheduler::spawn`, so shutdown
    /// awaits it); it returns after [`Outbox::shutdown`].
    pub fn run(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        sender::run(self.inner.clone())
    }

    /// Try every account's queue at once, backoff or not (an account's
    /// settings changed, the network came back).
    pub fn wake(&self) {
        self.inner
            .retry_now
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.queued.notify_one();
    }

    /// Stop the sender after the message it is sending, if any.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }

    /// `Enqueue`: store `raw` durably for the account; its outbox id.
    pub async fn enqueue(&self, account: &Account, raw: Vec<u8>) -> Result<String, Refused> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(Refused::Invalid("The message is empty".into()));
        }
        if !has_separator(&raw) {
            return Err(Refused::Invalid(
                "The message has no empty line between its header and its body".into(),
            ));
        }
        let settings = account.settings();
        if settings.smtp_host.is_empty() {
            return Err(Refused::Invalid(format!(
                "Account {} has no outgoing (SMTP) server; set smtp-host first",
                account.id
            )));
        }
        let prepared = crate::smtp::message::prepare(
            &raw,
            &settings.email,
            &settings.display_name,
            SystemTime::now(),
        )
        .map_err(|crate::smtp::message::Invalid(m)| Refused::Invalid(m))?;
        let entry = describe(&prepared.copy)?;
        let (store, id) = (self.inner.store.clone(), account.id.clone());
        let added = blocking(move || store.outbox_add(&id, &prepared.copy, entry)).await?;
        match added {
            Added::New(q) => {
                info!(
                    "Account {}: message {} queued for sending ({}).",
                    account.id, q.id, q.message_id
                );
                self.inner.scheduler.counts_changed(&account.id);
                self.inner.queued.notify_one();
                Ok(q.id)
            }
            Added::Same(q) => {
                info!(
                    "Account {}: message {} is queued already (same Message-ID {}).",
                    account.id, q.id, q.message_id
                );
                Ok(q.id)
            }
            Added::Differs(q) => Err(Refused::AlreadyExists(format!(
                "Message {} with the same Message-ID <{}> and other content is in the outbox \
                 already; cancel it first (CancelOutbox) or give the new one another Message-ID",
                q.id, q.message_id
            ))),
        }
    }

    /// `ListOutbox`: the account's queued and failed messages, oldest first.
    pub async fn list(&self, account: &Account) -> Result<Vec<Queued>, Refused> {
        let (store, id) = (self.inner.store.clone(), account.id.clone());
        Ok(blocking(move || store.outbox_list(&id)).await?)
    }

    /// `CancelOutbox`: drop a message that is not being sent right now.
    pub async fn cancel(&self, account: &Account, id: &str) -> Result<(), Refused> {
        let sending = self.inner.sending.lock().await;
        let (store, acc, qid) = (self.inner.store.clone(), account.id.clone(), id.to_owned());
        let found = blocking(move || store.outbox_get(&acc, &qid)).await?;
        if found.is_none() {
            return Err(Refused::NotFound(format!(
                "Account {} has no message {id:?} in its outbox",
                account.id
            )));
        }
        // Only what is handed to the server right now: an entry left
        // `sending` by a crash is not being sent, and may go.
        if sending.contains(id) {
            return Err(Refused::NotSupported(format!(
                "Message {id} is being sent right now and cannot be cancelled; \
                 list the outbox again to see how it went"
            )));
        }
        let (store, acc, qid) = (self.inner.store.clone(), account.id.clone(), id.to_owned());
        let removed = blocking(move || store.outbox_remove(&acc, &qid)).await?;
        drop(sending);
        if !removed {
            return Err(Refused::NotFound(format!(
                "Account {} has no message {id:?} in its outbox",
                account.id
            )));
        }
        info!("Account {}: queued message {id} cancelled.", account.id);
        self.inner.scheduler.counts_changed(&account.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_needs_a_blank_line() {
        assert!(has_separator(b"To: a@b\r\n\r\nbody"));
        assert!(has_separator(b"To: a@b\n\nbody"));
        assert!(has_separator(b"To: a@b\n\r\nbody"));
        assert!(!has_separator(b"To: a@b\r\nSubject: x\r\n"));
    }

    #[test]
    fn the_entry_names_subject_recipients_and_message_id() {
        let q = describe(
            b"From: a@example.test\r\nTo: Bob <bob@example.test>\r\nCc: c@example.test\r\n\
              Subject: =?utf-8?q?=C3=89t=C3=A9?=\r\nMessage-ID: <x1@example.test>\r\n\r\nhi\r\n",
        )
        .expect("a message");
        assert_eq!(q.subject, "Été");
        assert_eq!(q.to, "Bob <bob@example.test>, c@example.test");
        assert_eq!(q.message_id, "x1@example.test");
        assert_eq!(q.state, QueuedState::Queued);
    }
}
