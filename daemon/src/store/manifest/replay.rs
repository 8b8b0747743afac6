//! Replaying manifests at open: restoring what the index lacks, then
//! rewriting each manifest compacted.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use sled::Transactional as _;
use tracing::{info, warn};

use crate::store::messages::{
    abort, add_ref, date_key, folder_key, from_json, msg_key, prefix, to_json, tx_error,
    unified_key, Flags, FolderInfo, FolderState, Record,
};
use crate::store::pop3::{uidl_key, UidlEntry};
use crate::store::{blobs, lock, Open, Store};

use super::fold::{read_fold, Fold};
use super::{encode, Line};

impl Store {
    /// Fold every manifest, restore what the index lacks, and rewrite each
    /// manifest compacted. Accounts in the index without a manifest (an
    /// index older than manifests) get one written from the index.
    pub(in crate::store) fn replay_manifests(&self, open: &Open) -> Result<()> {
        let mut seen = BTreeSet::new();
        let dir = &self.shared.manifests;
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("Cannot list {}", dir.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(account) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if !crate::settings::valid_id(account) {
                continue;
            }
            seen.insert(account.to_owned());
            // Held from read to rewrite: no line appended meanwhile is lost.
            let _guard = lock(&self.shared.manifest_lock);
            let fold = read_fold(&entry.path())?;
            let (restored, missing) = self.restore(open, account, &fold)?;
            if restored > 0 || missing > 0 {
                warn!(
                    "Account {account}: restored {restored} message(s) to the index from its manifest{}.",
                    if missing > 0 {
                        format!("; {missing} message file(s) are missing or damaged and will be fetched again where the server still has them")
                    } else {
                        String::new()
                    }
                );
            }
            let bound = fold.compacted_bound();
            if fold.lines > bound + bound / 2 + 16 {
                crate::fsutil::write_atomic(&entry.path(), &encode(&fold.compacted())?, 0o600)?;
            }
        }
        for account in index_accounts(open)? {
            if !seen.contains(&account) {
                let _guard = lock(&self.shared.manifest_lock);
                let lines = self.lines_from_index(open, &account)?;
                if !lines.is_empty() && !self.manifest_path(&account).exists() {
                    crate::fsutil::write_atomic(
                        &self.manifest_path(&account),
                        &encode(&lines)?,
                        0o600,
                    )?;
                    info!("Account {account}: wrote its message manifest from the index.");
                }
            }
        }
        open.db.flush().context("Cannot flush the index")?;
        Ok(())
    }

    /// Every line an account's index holds.
    fn lines_from_index(&self, open: &Open, account: &str) -> Result<Vec<Line>> {
        let mut uidls: BTreeMap<u32, (String, UidlEntry)> = BTreeMap::new();
        let p = prefix(account);
        for kv in open.trees.pop3.scan_prefix(&p) {
            let (k, v) = kv?;
            let uidl = String::from_utf8_lossy(k.get(p.len()..).unwrap_or_default()).into_owned();
            let e: UidlEntry = from_json(&v)?;
            uidls.insert(e.uid, (uidl, e));
        }
        let mut out = Vec::new();
        for kv in open.trees.folders.scan_prefix(&p) {
            let f: FolderInfo = from_json(&kv?.1)?;
            let mut mp = p.clone();
            mp.extend_from_slice(&f.no.to_be_bytes());
            for kv in open.trees.messages.scan_prefix(mp) {
                let r: Record = from_json(&kv?.1)?;
                if crate::store::is_placeholder(&r) {
                    continue;
                }
                let pop = uidls.remove(&r.uid).filter(|(_, e)| !e.pending_delete);
                out.push(Line::Add {
                    folder: f.name.clone(),
                    display: f.display.clone(),
                    no: f.no,
                    role: f.role.clone(),
                    uidvalidity: r.uidvalidity,
                    uid: r.uid,
                    flags: r.flags.0,
                    hash: r.hash.clone(),
                    date: r.meta.date,
                    first_seen: pop.as_ref().map(|(_, e)| e.first_seen).unwrap_or(0),
                    uidl: pop.map(|(u, _)| u),
                });
                if !r.keywords.is_empty() {
                    out.push(Line::Flags {
                        folder: f.name.clone(),
                        uidvalidity: r.uidvalidity,
                        uid: r.uid,
                        flags: r.flags.0,
                        keywords: r.keywords.clone(),
                    });
                }
            }
        }
        out.extend(
            uidls
                .into_values()
                .map(|(uidl, entry)| Line::Uidl { uidl, entry }),
        );
        Ok(out)
    }

    /// Restore the messages and unique-ids of one folded manifest that the
    /// index lacks. Returns (restored, missing files).
    fn restore(&self, open: &Open, account: &str, fold: &Fold) -> Result<(usize, usize)> {
        // Group by folder; only the newest UIDVALIDITY of a folder counts.
        let mut by_folder: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
        for line in fold.adds.values() {
            if let Line::Add { folder, .. } = line {
                by_folder.entry(folder.as_str()).or_default().push(line);
            }
        }
        let (mut restored, mut missing) = (0, 0);
        // A message being moved out (POP3 → IMAP) keeps its `add` line
        // until it lands, but lives as a placeholder meanwhile: restoring
        // it would show it twice.
        let moving = held_origins(open, account)?;
        let mut lost_uids: BTreeSet<(String, u32)> = BTreeSet::new();
        for (name, lines) in by_folder {
            let Some(Line::Add {
                display,
                no,
                role,
                uidvalidity: newest,
                ..
            }) = lines.last()
            else {
                continue;
            };
            let newest = *newest;
            let existing = open
                .trees
                .folders
                .get(folder_key(account, name))?
                .map(|v| from_json::<FolderInfo>(&v))
                .transpose()?;
            if let Some(state) = existing.as_ref().and_then(|f| f.state) {
                if state.uidvalidity != newest {
                    continue;
                }
            }
            let info = match existing {
                Some(f) => f,
                None => FolderInfo {
                    no: folder_no(open, *no)?,
                    name: name.to_owned(),
                    display: display.clone(),
                    delimiter: None,
                    role: role.clone(),
                    selectable: true,
                    state: None,
                },
            };
            let mut records = Vec::new();
            for line in &lines {
                let Line::Add {
                    uidvalidity,
                    uid,
                    flags,
                    hash,
                    date,
                    ..
                } = line
                else {
                    continue;
                };
                if *uidvalidity != newest
                    || moving.contains(&(info.no, *uidvalidity, *uid))
                    || open
                        .trees
                        .messages
                        .contains_key(msg_key(account, info.no, *uid))?
                {
                    continue;
                }
                match blobs::read(
                    &self.shared.messages,
                    hash,
                    crate::store::messages::MAX_MESSAGE_BYTES,
                ) {
                    Ok(raw) => records.push(Record {
                        uid: *uid,
                        uidvalidity: *uidvalidity,
                        flags: Flags(*flags),
                        size: raw.len() as u64,
                        meta: crate::mail::meta(&raw, *date),
                        hash: hash.clone(),
                        keywords: fold
                            .keywords
                            .get(&(name.to_owned(), *uidvalidity, *uid))
                            .cloned()
                            .unwrap_or_default(),
                    }),
                    Err(e) => {
                        warn!("Account {account}: cannot restore message {uid} of {name}: {e:#}");
                        lost_uids.insert((name.to_owned(), *uid));
                        missing += 1;
                    }
                }
            }
            // Removed UIDs count too: they are never given again.
            let max_uid = fold
                .highest
                .get(&(name.to_owned(), newest))
                .copied()
                .unwrap_or(0);
            restored += records.len();
            self.restore_folder(open, account, &info, &records, newest, max_uid)?;
        }
        // Unique-ids whose message could not be restored stay unknown, so
        // the next poll downloads the message again.
        let pop3: Vec<(&String, &UidlEntry)> = fold
            .uidls
            .iter()
            .filter(|(_, e)| !lost_uids.iter().any(|(_, uid)| *uid == e.uid))
            .collect();
        let mut batch = sled::Batch::default();
        let mut any = false;
        for (uidl, entry) in pop3 {
            let key = uidl_key(account, uidl);
            if !open.trees.pop3.contains_key(&key)? {
                batch.insert(key, to_json(entry)?);
                any = true;
            }
        }
        if any {
            open.trees.pop3.apply_batch(batch)?;
        }
        Ok((restored, missing))
    }

    /// Insert restored records of one folder in one transaction, and give
    /// the folder a state that covers them.
    fn restore_folder(
        &self,
        open: &Open,
        account: &str,
        info: &FolderInfo,
        records: &[Record],
        uidvalidity: u32,
        max_uid: u32,
    ) -> Result<()> {
        let t = &open.trees;
        let fkey = folder_key(account, &info.name);
        let encoded: Vec<_> = records
            .iter()
            .map(|r| Ok((r, to_json(r)?)))
            .collect::<Result<_>>()?;
        (&t.messages, &t.by_date, &t.unified, &t.refs, &t.folders)
            .transaction(|(msgs, by_date, unified, refs, folders)| {
                for (r, json) in &encoded {
                    let key = msg_key(account, info.no, r.uid);
                    if msgs.get(&key)?.is_some() {
                        continue;
                    }
                    msgs.insert(key, json.as_slice())?;
                    by_date.insert(date_key(account, info.no, r.meta.date, r.uid), &[][..])?;
                    unified.insert(unified_key(account, info.no, r.meta.date, r.uid), &[][..])?;
                    add_ref(refs, &r.hash, 1)?;
                }
                let mut f: FolderInfo = match folders.get(&fkey)? {
                    Some(v) => from_json(&v).map_err(abort)?,
                    None => info.clone(),
                };
                let next = max_uid.saturating_add(1);
                f.state = Some(match f.state {
                    Some(mut s) => {
                        s.uidnext = s.uidnext.max(next);
                        s
                    }
                    None => FolderState {
                        uidvalidity,
                        uidnext: next,
                        highestmodseq: 0,
                    },
                });
                folders.insert(fkey.as_slice(), to_json(&f).map_err(abort)?)?;
                Ok(())
            })
            .map_err(tx_error)
    }
}

/// A number for a restored folder: the one it had (so message ids stay
/// the same) unless another folder has it; sled's id generator is moved past
/// it either way.
fn folder_no(open: &Open, wanted: u64) -> Result<u64> {
    let mut taken = false;
    for kv in open.trees.folders.iter() {
        let f: FolderInfo = from_json(&kv?.1)?;
        taken |= f.no == wanted;
    }
    if taken {
        return Ok(open.db.generate_id()?);
    }
    // Folder numbers are few and small: step the generator past this one.
    for _ in 0..1_000_000 {
        if open.db.generate_id()? >= wanted {
            break;
        }
    }
    Ok(wanted)
}

/// The accounts the index has folders for.
fn index_accounts(open: &Open) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for kv in open.trees.folders.iter() {
        let (k, _) = kv?;
        if let Some(nul) = k.iter().position(|b| *b == 0) {
            out.insert(String::from_utf8_lossy(&k[..nul]).into_owned());
        }
    }
    Ok(out)
}

/// (folder, uidvalidity, uid) of every record of `account` that is the
/// origin of a placeholder (a pending move out of it).
fn held_origins(open: &Open, account: &str) -> Result<BTreeSet<(u64, u32, u32)>> {
    let mut out = BTreeSet::new();
    for kv in open.trees.placeholders.iter() {
        let (_, v) = kv?;
        // Counters are 4 raw bytes; the rest is JSON.
        if v.len() == 4 {
            continue;
        }
        let Ok(held) = from_json::<crate::store::placeholder::Held>(&v) else {
            continue;
        };
        if let Some(o) = held.origin.filter(|o| o.account == account) {
            out.insert((o.folder, o.record.uidvalidity, o.record.uid));
        }
    }
    Ok(out)
}
