//! # Removing passwords that belong to no account
//!
//! Two kinds of passwords outlive their account: those of a creation that
//! crashed between storing them and writing the settings file, and those of
//! a deleted account whose secret store could not be written then (a locked
//! keyring, a store that failed). One background task, started with the
//! daemon and stopped at shutdown, removes both: at start, whenever a
//! `Delete` leaves some behind, and every retry interval while any are left.
//! It never prompts (a locked keyring is simply tried again later) and never
//! touches the passwords of an account the registry knows (existing, being
//! created, or whose settings file could not be read).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::retired::Retired;
use super::Registry;
use crate::secrets::{SecretError, SecretStore};

/// How often passwords still to remove are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// [`RETRY_INTERVAL`], or `FACTEUR_SECRET_RETRY_MS` (for tests).
pub fn retry_interval() -> Duration {
    std::env::var("FACTEUR_SECRET_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(RETRY_INTERVAL)
}

/// What the cleanup task works with.
#[derive(Clone)]
pub struct Cleanup {
    /// The accounts whose passwords must stay.
    pub registry: Arc<Registry>,
    /// Where the passwords are.
    pub secrets: Arc<SecretStore>,
    /// Ids of deleted accounts whose passwords are still to be removed.
    pub retired: Arc<Retired>,
    /// Wakes the task before its interval ends.
    pub wake: Arc<Notify>,
}

impl Cleanup {
    /// Remove the passwords of ids the registry does not know; true when
    /// the store could be searched.
    pub async fn remove_orphans(&self) -> bool {
        let registry = self.registry.clone();
        match self.secrets.remove_orphans(|id| registry.knows(id)).await {
            Ok(removed) => {
                for id in removed {
                    warn!(
                        "Removed the stored password(s) of {id}, which has no settings file \
                         (an account creation was interrupted, or the account was deleted)."
                    );
                    self.retired.remove(&id).await;
                }
                true
            }
            Err(SecretError::Locked) => {
                debug!(
                    "The keyring is locked; passwords of removed accounts are looked for later."
                );
                false
            }
            Err(e) => {
                warn!("Cannot look for passwords of removed accounts: {e}");
                false
            }
        }
    }

    /// At start, before any change can run: a noted id that is still an
    /// account is one whose Delete did not finish (a crash before its
    /// settings file went); its passwords are its own, so the note goes.
    pub async fn reconcile(&self) {
        for id in self.retired.ids().await {
            if self.registry.knows(&id) {
                info!("Account {id} still exists; its passwords are kept.");
                self.retired.remove(&id).await;
            }
        }
    }

    /// Try once to remove the passwords of every retired id; true when
    /// none is left. An id the registry still knows is being deleted right
    /// now (its settings file is not gone yet): it waits for the next pass.
    pub async fn remove_retired(&self) -> bool {
        let mut left = false;
        for id in self.retired.ids().await {
            if self.registry.knows(&id) {
                left = true;
                continue;
            }
            match self.secrets.delete_account(&id).await {
                Ok(()) => {
                    info!("Removed the stored password(s) of deleted account {id}.");
                    self.retired.remove(&id).await;
                }
                Err(SecretError::Locked) => {
                    debug!("Account {id}: the keyring is locked; its passwords are removed later.");
                    left = true;
                }
                Err(e) => {
                    warn!("Account {id}: cannot remove its passwords yet: {e}");
                    left = true;
                }
            }
        }
        !left
    }

    /// Run until `stop`: a pass at once, then one whenever woken or, while
    /// something is left, every `every`.
    pub async fn run(self, orphans_done: bool, every: Duration, stop: CancellationToken) {
        let mut orphans_done = orphans_done;
        loop {
            if !orphans_done {
                orphans_done = self.remove_orphans().await;
            }
            let done = self.remove_retired().await && orphans_done;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(every), if !done => {}
            }
        }
    }
}
