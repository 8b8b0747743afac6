//! # The outbox sender
//!
//! `Enqueue` stores a message durably (its file fsynced, its entry flushed)
//! before it answers; a background task then hands queued messages to
//! each account's SMTP server in the order they were queued, as soon as the
//! server is reachable, with backoff between attempts. A permanent refusal
//! (a 5xx reply, a message that cannot be sent) stops the retries and is
//! kept as the entry's `failed` state and `last-error`. The Sent copy is
//! kept as for `Send`.

use super::mail::Refused;
use super::Account;
use crate::store::Queued;

/// The outbox: see the module docs.
#[derive(Default)]
pub struct Outbox {}

impl Outbox {
    /// `Enqueue`: store `raw` durably for the account; its outbox id.
    pub async fn enqueue(&self, account: &Account, raw: Vec<u8>) -> Result<String, Refused> {
        let _ = (account, raw);
        Err(Refused::NotSupported("Enqueue is not built yet".into()))
    }

    /// `ListOutbox`: the account's queued and failed messages, oldest first.
    pub async fn list(&self, account: &Account) -> Result<Vec<Queued>, Refused> {
        let _ = account;
        Err(Refused::NotSupported("ListOutbox is not built yet".into()))
    }

    /// `CancelOutbox`: drop a message that is not being sent right now.
    pub async fn cancel(&self, account: &Account, id: &str) -> Result<(), Refused> {
        let _ = (account, id);
        Err(Refused::NotSupported(
            "CancelOutbox is not built yet".into(),
        ))
    }
}
