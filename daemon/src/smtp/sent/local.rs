//! # The Sent copy, stored here at once
//!
//! What [`super::save_copy`] placed on the server is stored in the local
//! Sent folder as a sync would store it ([`Store::store_ahead`]), and
//! announced as a change (`MessagesAdded` and the counts, through the
//! [`Observer`]), not as new mail: no `NewMessages`, no notification.

use tracing::{info, warn};

use super::Saved;
use crate::store::{Observer, Store};

/// Store the copy `saved` describes in account `id`'s local Sent folder
/// and announce it; logs what it did. Returns whether it is stored here
/// now (by this call or by a sync that was faster).
pub async fn keep_locally(id: &str, store: &Store, observer: &dyn Observer, saved: Saved) -> bool {
    let Some(placed) = saved.placed else {
        // `save_copy` logged why.
        return false;
    };
    let uid = placed.message.uid;
    match store
        .store_ahead(id, &saved.folder, placed.uidvalidity, placed.message)
        .await
    {
        Ok(Some((folder, Some(message)))) => {
            info!(
                "Account {id}: the copy in {} (UID {uid}) is stored here as {message}.",
                folder.display
            );
            observer.added(&folder.display, vec![message.to_string()]);
            observer.counts();
            true
        }
        Ok(Some((folder, None))) => {
            info!(
                "Account {id}: the copy in {} (UID {uid}) was stored here already.",
                folder.display
            );
            true
        }
        Ok(None) => {
            info!(
                "Account {id}: {} is not synced here yet (or its UIDVALIDITY changed); \
                 the copy is stored at its next sync.",
                saved.display
            );
            false
        }
        Err(e) => {
            warn!(
                "Account {id}: the copy in {} could not be stored here ({e:#}); \
                 it is stored at the next sync of that folder.",
                saved.display
            );
            false
        }
    }
}
