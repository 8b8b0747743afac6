//! # A message stored ahead of its folder's sync
//!
//! The copy of a sent message, appended to the Sent folder on the server
//! with a UID the server named, is stored here at once rather than at the
//! next sync of that folder. It goes the way a fetched batch goes
//! ([`Store::store_batch`]: files, manifest, index, flush), into the
//! folder's current UIDVALIDITY only, and without moving the folder's
//! sync state: its high-water mark (UIDNEXT) still covers only what a
//! sync fetched, so UIDs below the copy's that another client appended
//! are still fetched, and the next sync finds the copy's UID stored and
//! does not fetch it again.

use anyhow::{Context as _, Result};

use super::{FolderInfo, MessageId, NewMessage, Store};

impl Store {
    /// Store `message` in folder `name` (the server's spelling) of
    /// `account`, under UIDVALIDITY `uidvalidity`. `None` when the folder
    /// is not synced here yet or its UIDVALIDITY is another (the next sync
    /// fetches it); else the folder and the id when the message was not
    /// there already (none when a sync stored it first).
    pub async fn store_ahead(
        &self,
        account: &str,
        name: &str,
        uidvalidity: u32,
        message: NewMessage,
    ) -> Result<Option<(FolderInfo, Option<MessageId>)>> {
        let this = self.clone();
        let (account, name) = (account.to_owned(), name.to_owned());
        let stored = tokio::task::spawn_blocking(move || {
            this.admit(&account, || {
                let Some(folder) = this.folder(&account, &name)? else {
                    return Ok(None);
                };
                if folder.state.map(|s| s.uidvalidity) != Some(uidvalidity) {
                    return Ok(None);
                }
                let ids =
                    this.store_batch_blocking(&account, &folder, vec![message], None, true)?;
                Ok(Some((folder, ids.into_iter().next())))
            })
        })
        .await
        .context("The store task failed")??;
        if stored.is_some() {
            self.flush().await?;
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests;
