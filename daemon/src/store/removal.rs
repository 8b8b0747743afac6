//! # Removing messages
//!
//! Expunges, UIDVALIDITY changes, vanished folders and deleted accounts:
//! the index records go in one transaction, a removal line goes to the
//! account's manifest (synced), the index is flushed, and only then are
//! the message files that no record points at any more deleted, under the
//! store's files lock and after their references were checked again (see
//! [`super::messages`] for the trees).

use anyhow::{Context as _, Result};
use sled::Transactional as _;

use super::manifest::Line;
use super::messages::{
    abort, add_ref, date_key, folder_key, from_json, msg_key, prefix, to_json, tx_error,
    unified_key, FolderInfo, MessageId, Record,
};
use super::{blobs, Store};

/// What a removal did: the (UID, UIDVALIDITY) of the records removed, and
/// the content hashes whose last reference went.
pub(super) type Removed = (Vec<(u32, u32)>, Vec<String>);

impl Store {
    /// Remove messages of a folder from the index; message files no record
    /// points at any more are deleted once the index is flushed. The file
    /// and index work runs off the async threads. Returns the ids of the
    /// messages that were there (for `MessagesRemoved`).
    pub async fn remove_uids(
        &self,
        account: &str,
        folder: u64,
        uids: &[u32],
    ) -> Result<Vec<MessageId>> {
        self.remove_uids_gated(account, folder, uids, true).await
    }

    /// [`Store::remove_uids`]; `gated`: refused once the account was
    /// removed (false only for the removal itself).
    async fn remove_uids_gated(
        &self,
        account: &str,
        folder: u64,
        uids: &[u32],
        gated: bool,
    ) -> Result<Vec<MessageId>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let (owner, uids) = (account.to_owned(), uids.to_vec());
        let account = owner.clone();
        let (removed, orphans) = tokio::task::spawn_blocking(move || {
            if gated {
                this.admit(&account, || {
                    this.remove_uids_blocking(&account, folder, &uids)
                })
            } else {
                this.remove_uids_blocking(&account, folder, &uids)
            }
        })
        .await
        .context("The store task failed")??;
        self.flush().await?;
        if !orphans.is_empty() {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.remove_orphans_blocking(&orphans))
                .await
                .context("The store task failed")?;
        }
        Ok(removed
            .into_iter()
            .map(|(uid, uidvalidity)| MessageId {
                account: owner.clone(),
                folder,
                uidvalidity,
                uid,
            })
            .collect())
    }

    /// The index part of [`Store::remove_uids`]: (the (UID, UIDVALIDITY)
    /// of those removed, the hashes whose last reference went).
    pub(super) fn remove_uids_blocking(
        &self,
        account: &str,
        folder: u64,
        uids: &[u32],
    ) -> Result<Removed> {
        let o = self.handle()?;
        let t = &o.trees;
        let (removed, orphans) = (&t.messages, &t.by_date, &t.unified, &t.refs)
            .transaction(|(msgs, by_date, unified, refs)| {
                let mut removed = Vec::new();
                let mut orphans = Vec::new();
                for uid in uids {
                    let key = msg_key(account, folder, *uid);
                    let Some(v) = msgs.remove(key)? else { continue };
                    let r: Record = from_json(&v).map_err(abort)?;
                    by_date.remove(date_key(account, folder, r.meta.date, r.uid))?;
                    unified.remove(unified_key(account, folder, r.meta.date, r.uid))?;
                    if add_ref(refs, &r.hash, -1)? == 0 {
                        orphans.push(r.hash);
                    }
                    removed.push((r.uid, r.uidvalidity));
                }
                Ok((removed, orphans))
            })
            .map_err(|e| self.failed(tx_error(e)))?;
        drop(o);
        if !removed.is_empty() {
            let name = self
                .folders(account)?
                .into_iter()
                .find(|f| f.no == folder)
                .map(|f| f.name);
            if let Some(name) = name {
                let lines: Vec<Line> = removed
                    .iter()
                    .map(|(uid, uidvalidity)| Line::Remove {
                        folder: name.clone(),
                        uidvalidity: *uidvalidity,
                        uid: *uid,
                    })
                    .collect();
                self.manifest_append(account, &lines, true)
                    .map_err(|e| self.failed(e))?;
            }
        }
        Ok((removed, orphans))
    }

    /// Delete the files of `hashes` that still no record points at. Under
    /// `files_lock`, so a batch of another account that stored the same
    /// content since (its reference is then back) keeps its file.
    pub(super) fn remove_orphans_blocking(&self, hashes: &[String]) {
        let _files = super::lock(&self.shared.files_lock);
        let Ok(o) = self.handle() else { return };
        for hash in hashes {
            match o.trees.refs.get(hash.as_bytes()) {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    tracing::warn!("Cannot check the references of message file {hash}: {e}");
                    continue;
                }
            }
            if let Err(e) = blobs::remove(&self.shared.messages, hash) {
                tracing::warn!("Cannot remove the message file {hash}: {e:#}");
            }
        }
    }

    /// Drop a folder's messages and state (UIDVALIDITY changed, or the
    /// folder is gone); with `forget`, the folder itself too.
    pub async fn clear_folder(
        &self,
        account: &str,
        folder: &FolderInfo,
        forget: bool,
    ) -> Result<()> {
        self.clear_folder_gated(account, folder, forget, true).await
    }

    /// [`Store::clear_folder`]; `gated` as in [`Store::remove_uids_gated`].
    async fn clear_folder_gated(
        &self,
        account: &str,
        folder: &FolderInfo,
        forget: bool,
        gated: bool,
    ) -> Result<()> {
        // A forgotten folder loses its placeholders too; a folder whose
        // UIDVALIDITY changed keeps them (their entries still land).
        let uids: Vec<u32> = if forget {
            self.folder_records(account, folder.no)?
                .iter()
                .map(|r| r.uid)
                .collect()
        } else {
            self.uids(account, folder.no)?.into_keys().collect()
        };
        for chunk in uids.chunks(1000) {
            self.remove_uids_gated(account, folder.no, chunk, gated)
                .await?;
        }
        let key = folder_key(account, &folder.name);
        let clear = || -> Result<()> {
            let o = self.handle()?;
            if forget {
                o.trees.folders.remove(key)?;
                let notes = super::placeholder::counter_key(account, folder.no);
                for k in o.trees.placeholders.scan_prefix(&notes).keys() {
                    o.trees.placeholders.remove(k?)?;
                }
            } else if let Some(mut info) = self.folder(account, &folder.name)? {
                info.state = None;
                o.trees.folders.insert(key, to_json(&info)?)?;
            }
            Ok(())
        };
        if gated {
            self.admit(account, clear)?;
        } else {
            clear()?;
        }
        self.flush().await
    }

    /// Drop every message and folder of an account.
    pub(super) async fn remove_account_messages(&self, account: &str) -> Result<()> {
        for folder in self.folders(account)? {
            self.clear_folder_gated(account, &folder, true, false)
                .await?;
        }
        let mut batch = sled::Batch::default();
        let o = self.handle()?;
        for kv in o.trees.pop3.scan_prefix(prefix(account)) {
            batch.remove(kv?.0);
        }
        o.trees.pop3.apply_batch(batch)?;
        self.flush().await
    }
}
