//! # POP3 state
//!
//! POP3 has no folders and no server-side UIDs that survive anything but
//! UIDL, so the store keeps, per account, one entry per unique-id ever
//! downloaded: when it was first seen, the local UID it was stored under,
//! and whether a local deletion is waiting to be carried out on the server.
//! Tree `pop3`: key account `\0` unique-id, value [`UidlEntry`] (JSON).
//!
//! The entries of a batch are written in the same transaction as its
//! messages, so a UIDL is "seen" exactly when its message is stored: a crash
//! at any moment means at most a re-download, never a loss or a duplicate.
//! Message numbers are never stored: they are valid for one session only.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sled::Transactional as _;

use super::manifest::Line;
use super::messages::{
    abort, add_ref, date_key, folder_key, from_json, msg_key, prefix, to_json, tx_error,
    unified_key, FolderInfo, FolderState, MessageId, NewMessage, Record,
};
use super::{blobs, Store};

/// The UIDVALIDITY of a POP3 account's INBOX: local UIDs never restart.
pub const POP3_UIDVALIDITY: u32 = 1;

/// What the store remembers about one unique-id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UidlEntry {
    /// Unix seconds when it was first downloaded.
    pub first_seen: u64,
    /// The local UID of the stored message.
    pub uid: u32,
    /// A local deletion that must also happen on the server.
    pub pending_delete: bool,
}

pub(super) fn uidl_key(account: &str, uidl: &str) -> Vec<u8> {
    let mut k = prefix(account);
    k.extend_from_slice(uidl.as_bytes());
    k
}

impl Store {
    /// Every unique-id known for an account.
    pub fn pop3_entries(&self, account: &str) -> Result<BTreeMap<String, UidlEntry>> {
        let p = prefix(account);
        let mut out = BTreeMap::new();
        let o = self.handle()?;
        for kv in o.trees.pop3.scan_prefix(&p) {
            let (k, v) = kv?;
            let uidl = String::from_utf8_lossy(k.get(p.len()..).unwrap_or_default()).into_owned();
            out.insert(uidl, from_json(&v)?);
        }
        Ok(out)
    }

    /// Forget unique-ids the server no longer has.
    pub async fn pop3_forget(&self, account: &str, uidls: &[String]) -> Result<()> {
        if uidls.is_empty() {
            return Ok(());
        }
        self.admit(account, || {
            let mut batch = sled::Batch::default();
            for u in uidls {
                batch.remove(uidl_key(account, u));
            }
            self.handle()?
                .trees
                .pop3
                .apply_batch(batch)
                .map_err(|e| self.failed(e.into()))?;
            let lines: Vec<Line> = uidls
                .iter()
                .map(|u| Line::ForgetUidl { uidl: u.clone() })
                .collect();
            self.manifest_append(account, &lines, false)
                .map_err(|e| self.failed(e))
        })?;
        self.flush().await
    }

    /// Store downloaded messages with their unique-ids, durably, in the
    /// account's INBOX. Returns the ids of the stored messages.
    pub async fn pop3_store(
        &self,
        account: &str,
        inbox: &FolderInfo,
        messages: Vec<(String, NewMessage)>,
    ) -> Result<Vec<MessageId>> {
        let this = self.clone();
        let (account, inbox) = (account.to_owned(), inbox.clone());
        let ids = tokio::task::spawn_blocking(move || {
            this.admit(&account, || {
                this.pop3_store_blocking(&account, &inbox, messages)
            })
        })
        .await
        .context("The store task failed")??;
        self.flush().await?;
        Ok(ids)
    }

    fn pop3_store_blocking(
        &self,
        account: &str,
        inbox: &FolderInfo,
        messages: Vec<(String, NewMessage)>,
    ) -> Result<Vec<MessageId>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Hashes and headers outside the files lock (see store_batch).
        let mut prepared = Vec::with_capacity(messages.len());
        let mut raws = Vec::with_capacity(messages.len());
        for (uidl, m) in messages {
            let hash = blobs::hash(&m.raw);
            let meta = crate::mail::meta(&m.raw, m.internal_date);
            prepared.push((
                uidl,
                m.raw.len() as u64,
                hash.clone(),
                meta,
                m.internal_date,
            ));
            raws.push((hash, m.raw));
        }
        // From the files to the index commit: see `files_lock`.
        let _files = super::lock(&self.shared.files_lock);
        let dirs = self.write_files(raws)?;
        let o = self.handle()?;
        let t = &o.trees;
        let fkey = folder_key(account, &inbox.name);
        // The UIDs are planned before the transaction (one poller per
        // account writes here), so that the manifest lines can be written
        // with the files, before the syncfs that makes both durable.
        let current: FolderInfo = match t.folders.get(&fkey)? {
            Some(v) => from_json(&v)?,
            None => inbox.clone(),
        };
        let mut next = current.state.map(|s| s.uidnext).unwrap_or(1);
        let mut planned = Vec::with_capacity(prepared.len());
        let mut lines = Vec::with_capacity(prepared.len());
        let mut planned_uidls = BTreeSet::new();
        for (uidl, size, hash, meta, date) in &prepared {
            if t.pop3.contains_key(uidl_key(account, uidl))? || !planned_uidls.insert(uidl.clone())
            {
                continue;
            }
            let uid = next;
            next = next.saturating_add(1);
            lines.push(Line::Add {
                folder: inbox.name.clone(),
                display: inbox.display.clone(),
                no: inbox.no,
                role: inbox.role.clone(),
                uidvalidity: POP3_UIDVALIDITY,
                uid,
                flags: 0,
                hash: hash.clone(),
                date: *date,
                uidl: Some(uidl.clone()),
                first_seen: now,
            });
            planned.push((uid, uidl.clone(), *size, hash.clone(), meta.clone()));
        }
        self.manifest_append(account, &lines, false)
            .map_err(|e| self.failed(e))?;
        blobs::sync(&self.shared.messages, &dirs).map_err(|e| self.failed(e))?;
        let uids = (
            &t.messages,
            &t.by_date,
            &t.unified,
            &t.refs,
            &t.folders,
            &t.pop3,
        )
            .transaction(|(msgs, by_date, unified, refs, folders, pop3)| {
                let mut info: FolderInfo = match folders.get(&fkey)? {
                    Some(v) => from_json(&v).map_err(abort)?,
                    None => inbox.clone(),
                };
                let mut state = info.state.unwrap_or(FolderState {
                    uidvalidity: POP3_UIDVALIDITY,
                    uidnext: 1,
                    highestmodseq: 0,
                });
                let mut uids = Vec::new();
                for (uid, uidl, size, hash, meta) in &planned {
                    let uid = *uid;
                    let ukey = uidl_key(account, uidl);
                    if pop3.get(&ukey)?.is_some() {
                        continue;
                    }
                    if msgs.get(msg_key(account, info.no, uid))?.is_some() {
                        return Err(abort(anyhow::anyhow!(
                            "POP3 message {uidl} was to be stored as UID {uid}, which is taken"
                        )));
                    }
                    state.uidnext = state.uidnext.max(uid.saturating_add(1));
                    let record = Record {
                        uid,
                        uidvalidity: POP3_UIDVALIDITY,
                        flags: Default::default(),
                        size: *size,
                        hash: hash.clone(),
                        meta: meta.clone(),
                        keywords: Vec::new(),
                    };
                    msgs.insert(
                        msg_key(account, info.no, uid),
                        to_json(&record).map_err(abort)?,
                    )?;
                    by_date.insert(date_key(account, info.no, meta.date, uid), &[][..])?;
                    unified.insert(unified_key(account, info.no, meta.date, uid), &[][..])?;
                    add_ref(refs, hash, 1)?;
                    let entry = UidlEntry {
                        first_seen: now,
                        uid,
                        pending_delete: false,
                    };
                    pop3.insert(ukey, to_json(&entry).map_err(abort)?)?;
                    uids.push(uid);
                }
                info.state = Some(state);
                folders.insert(fkey.as_slice(), to_json(&info).map_err(abort)?)?;
                Ok(uids)
            })
            .map_err(|e| self.failed(tx_error(e)))?;
        Ok(uids
            .into_iter()
            .map(|uid| MessageId {
                account: account.to_owned(),
                folder: inbox.no,
                uidvalidity: POP3_UIDVALIDITY,
                uid,
            })
            .collect())
    }

    /// Mark the unique-id of a local message for deletion on the server at
    /// the next session. Returns whether one was found.
    pub async fn pop3_mark_delete(&self, account: &str, uid: u32) -> Result<bool> {
        let owner = account.to_owned();
        // Index scan, insert and a small fsync on a user's delete: off the
        // async workers.
        let found = self
            .blocking(move |store| {
                store.admit(&owner, || store.pop3_mark_delete_admitted(&owner, uid))
            })
            .await?;
        if found {
            self.flush().await?;
        }
        Ok(found)
    }

    fn pop3_mark_delete_admitted(&self, account: &str, uid: u32) -> Result<bool> {
        let found = self
            .pop3_entries(account)?
            .into_iter()
            .find(|(_, e)| e.uid == uid);
        let Some((uidl, mut entry)) = found else {
            return Ok(false);
        };
        entry.pending_delete = true;
        self.handle()?
            .trees
            .pop3
            .insert(uidl_key(account, &uidl), to_json(&entry)?)
            .map_err(|e| self.failed(e.into()))?;
        let line = Line::Uidl { uidl, entry };
        self.manifest_append(account, &[line], true)
            .map_err(|e| self.failed(e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Flags;

    fn m(n: u32) -> NewMessage {
        NewMessage {
            uid: 0,
            flags: Flags::default(),
            keywords: Vec::new(),
            raw: format!("Subject: p{n}\r\n\r\nbody\r\n").into_bytes(),
            internal_date: 1000 + i64::from(n),
        }
    }

    #[tokio::test]
    async fn uidls_are_recorded_once_with_their_messages() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
        let ids = store
            .pop3_store("p", &inbox, vec![("u1".into(), m(1)), ("u2".into(), m(2))])
            .await?;
        assert_eq!(ids.iter().map(|i| i.uid).collect::<Vec<_>>(), vec![1, 2]);
        // The same unique-id again (a re-download after a crash) is not
        // stored twice; a new one gets the next UID.
        let again = store
            .pop3_store("p", &inbox, vec![("u2".into(), m(2)), ("u3".into(), m(3))])
            .await?;
        assert_eq!(again.iter().map(|i| i.uid).collect::<Vec<_>>(), vec![3]);
        assert_eq!(store.counts("p", None)?.0, 3);
        let entries = store.pop3_entries("p")?;
        assert_eq!(entries.len(), 3);
        assert!(store.pop3_mark_delete("p", 2).await?);
        assert!(store
            .pop3_entries("p")?
            .get("u2")
            .is_some_and(|e| e.pending_delete));
        store.pop3_forget("p", &["u1".into()]).await?;
        assert!(!store.pop3_entries("p")?.contains_key("u1"));
        Ok(())
    }
}
