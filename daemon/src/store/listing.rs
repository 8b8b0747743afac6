//! # Listings
//!
//! The queries behind ListMessages, ListUnified and the counts: prefix
//! scans of the date-ordered trees (see [`super::messages`]).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};

use super::messages::Flags;
use super::messages::{
    from_json, msg_key, parse_unified_key, prefix, FolderInfo, MessageId, Record, Summary,
};
use super::placeholder::is_placeholder;
use super::Store;

impl Store {
    /// Messages of one folder, newest first.
    pub fn list_folder(
        &self,
        account: &str,
        folder: &FolderInfo,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Summary>> {
        let mut p = prefix(account);
        p.extend_from_slice(&folder.no.to_be_bytes());
        let mut out = Vec::new();
        let o = self.handle()?;
        for kv in o.trees.by_date.scan_prefix(&p).skip(offset).take(limit) {
            let (k, _) = kv?;
            let uid = k
                .get(k.len().saturating_sub(4)..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| anyhow!("Damaged date index key"))?;
            if let Some(v) = o.trees.messages.get(msg_key(account, folder.no, uid))? {
                let record: Record = from_json(&v)?;
                out.push(Summary {
                    id: MessageId {
                        account: account.to_owned(),
                        folder: folder.no,
                        uidvalidity: record.uidvalidity,
                        uid,
                    },
                    folder: folder.display.clone(),
                    record,
                });
            }
        }
        Ok(out)
    }

    /// The unified index, newest first, over the accounts `include` admits.
    pub fn list_unified(
        &self,
        include: impl Fn(&str) -> bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Summary>> {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut names: BTreeMap<(String, u64), String> = BTreeMap::new();
        let o = self.handle()?;
        for kv in o.trees.unified.iter() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let Some((account, folder, uid)) = parse_unified_key(&k) else {
                continue;
            };
            if !include(&account) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            let Some(v) = o.trees.messages.get(msg_key(&account, folder, uid))? else {
                continue;
            };
            let record: Record = from_json(&v)?;
            if !names.contains_key(&(account.clone(), folder)) {
                for f in self.folders(&account)? {
                    names.insert((account.clone(), f.no), f.display);
                }
            }
            out.push(Summary {
                folder: names
                    .get(&(account.clone(), folder))
                    .cloned()
                    .unwrap_or_default(),
                id: MessageId {
                    account,
                    folder,
                    uidvalidity: record.uidvalidity,
                    uid,
                },
                record,
            });
        }
        Ok(out)
    }

    /// (messages, unread) of one folder, or of every folder of the account.
    pub fn counts(&self, account: &str, folder: Option<u64>) -> Result<(u32, u32)> {
        let mut p = prefix(account);
        if let Some(f) = folder {
            p.extend_from_slice(&f.to_be_bytes());
        }
        let (mut total, mut unread) = (0u32, 0u32);
        let o = self.handle()?;
        for kv in o.trees.messages.scan_prefix(p) {
            let (_, v) = kv?;
            let r: Record = from_json(&v)?;
            total = total.saturating_add(1);
            if !r.flags.has(Flags::SEEN) {
                unread = unread.saturating_add(1);
            }
        }
        Ok((total, unread))
    }

    /// The UIDs and flags stored for a folder, by UID (placeholders left
    /// out: they are no server UIDs).
    pub fn uids(&self, account: &str, folder: u64) -> Result<BTreeMap<u32, Flags>> {
        let mut p = prefix(account);
        p.extend_from_slice(&folder.to_be_bytes());
        let mut out = BTreeMap::new();
        let o = self.handle()?;
        for kv in o.trees.messages.scan_prefix(p) {
            let (_, v) = kv?;
            let r: Record = from_json(&v)?;
            if is_placeholder(&r) {
                continue;
            }
            out.insert(r.uid, r.flags);
        }
        Ok(out)
    }

    /// The UIDs of a folder with their flags and keywords, by UID
    /// (placeholders left out).
    pub fn flag_sets(
        &self,
        account: &str,
        folder: u64,
    ) -> Result<BTreeMap<u32, (Flags, Vec<String>)>> {
        let mut p = prefix(account);
        p.extend_from_slice(&folder.to_be_bytes());
        let mut out = BTreeMap::new();
        let o = self.handle()?;
        for kv in o.trees.messages.scan_prefix(p) {
            let (_, v) = kv?;
            let r: Record = from_json(&v)?;
            if is_placeholder(&r) {
                continue;
            }
            out.insert(r.uid, (r.flags, r.keywords));
        }
        Ok(out)
    }

    /// The content hashes of a folder's messages (placeholders left out).
    pub fn hashes(&self, account: &str, folder: u64) -> Result<std::collections::HashSet<String>> {
        let mut p = prefix(account);
        p.extend_from_slice(&folder.to_be_bytes());
        let o = self.handle()?;
        let mut out = std::collections::HashSet::new();
        for kv in o.trees.messages.scan_prefix(p) {
            let r: Record = from_json(&kv?.1)?;
            if !is_placeholder(&r) {
                out.insert(r.hash);
            }
        }
        Ok(out)
    }
}
