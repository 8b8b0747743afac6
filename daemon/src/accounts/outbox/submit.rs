//! # One submission with an account's passwords
//!
//! Shared by `Send` ([`crate::accounts::Lifecycle::send`]) and the outbox's
//! sender: the passwords are read from the secret store for this send only
//! (never kept), then [`crate::smtp::submit`] sends and keeps the Sent copy
//! (on the server, and here at once: announced through the events loop as
//! `MessagesAdded` and new counts, before this returns).

use crate::accounts::Account;
use crate::net::{Failure, FailureKind};
use crate::secrets::{SecretError, SecretStore, Which};
use crate::store::Store;
use crate::sync::Scheduler;

/// Send `raw` through the account (SMTP AUTH with its SMTP password, else
/// its incoming one), then keep the Sent copy of an IMAP account.
pub(crate) async fn send_with(
    secrets: &SecretStore,
    store: &Store,
    scheduler: &Scheduler,
    account: &Account,
    raw: &[u8],
) -> crate::smtp::Outcome {
    use crate::smtp::{Outcome, SendError};
    let id = &account.id;
    let refused = |e: SecretError| {
        let f = Failure::new(
            FailureKind::Credentials,
            format!("Cannot read the password: {e}"),
        );
        Outcome::Failed(SendError {
            cause: crate::smtp::Cause::Net(f.kind),
            message: f.message,
        })
    };
    let smtp = match secrets.get(id, Which::Smtp).await {
        Ok(p) => p.filter(|p| !p.is_empty()),
        Err(e) => return refused(e),
    };
    let incoming = match secrets.get(id, Which::Incoming).await {
        Ok(p) => p.filter(|p| !p.is_empty()),
        Err(e) if smtp.is_none() => return refused(e),
        Err(_) => None,
    };
    let passwords = crate::smtp::Passwords {
        smtp: smtp.as_deref().or(incoming.as_deref()).map(String::as_str),
        incoming: incoming.as_deref().map(String::as_str),
    };
    let reporter = scheduler.reporter(id);
    let outcome =
        crate::smtp::submit(id, &account.settings(), passwords, store, &reporter, raw).await;
    // The Sent copy's MessagesAdded and counts go out before the reply.
    reporter.flush().await;
    outcome
}
