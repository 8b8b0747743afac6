//! # Message manifests
//!
//! Message files are content-addressed and say nothing about the account
//! or folder that holds them, so a lost index alone would orphan what only
//! this machine keeps (a POP3 message the server deleted after download).
//! Each account therefore has an append-only manifest,
//! `<data-dir>/manifests/<account>.log`, one JSON object per line:
//!
//! | `op` | meaning |
//! | --- | --- |
//! | `add` | a stored message: folder (raw name, display, role), UIDVALIDITY, UID, flags, content hash, date, POP3 unique-id and first-seen time |
//! | `remove` | that message was removed (expunged, deleted, folder cleared) |
//! | `uidl` | a POP3 unique-id entry as it is now (a pending server deletion) |
//! | `forget-uidl` | the unique-id is no longer on the server |
//!
//! `add` lines are written before the `syncfs` that makes the batch's message
//! files durable, so they cost no fsync of their own and are on disk before
//! the index points at the files; `remove` lines are synced with the removal.
//!
//! At every open the manifests are folded and checked against the index
//! ([`Store::replay_manifests`]): a message whose file is present and right
//! but whose record is missing (a new, rebuilt or truncated index) is
//! restored with its folder and unique-id; a folder restored so gets the
//! state `uidnext = highest uid + 1` (the highest of every `add` and
//! `remove` line, so a local UID is never given twice) and
//! `highestmodseq = 0`, so the next IMAP pass checks flags and expunges
//! again. Then each manifest is rewritten from the fold (compaction), under
//! the manifest lock from read to rewrite; compaction keeps the `remove` line
//! of a folder's highest UID when no `add` line carries it. IMAP mail
//! without a manifest line is simply fetched again; the server has it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sled::Transactional as _;
use tracing::{info, warn};

use super::messages::{
    abort, add_ref, date_key, folder_key, from_json, msg_key, prefix, to_json, tx_error,
    unified_key, Flags, FolderInfo, FolderState, Record,
};
use super::pop3::{uidl_key, UidlEntry};
use super::{blobs, lock, Open, Store};

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(super) enum Line {
    /// A stored message.
    Add {
        /// Raw folder name.
        folder: String,
        /// Folder display name.
        display: String,
        /// Folder number (part of message ids), kept across a rebuild.
        #[serde(default)]
        no: u64,
        /// Folder role.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// UIDVALIDITY.
        uidvalidity: u32,
        /// UID.
        uid: u32,
        /// Flags bits.
        flags: u8,
        /// Content hash (the file name).
        hash: String,
        /// The date used when the message has no Date header.
        date: i64,
        /// POP3 unique-id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uidl: Option<String>,
        /// POP3 first-seen time.
        #[serde(default, skip_serializing_if = "is_zero")]
        first_seen: u64,
    },
    /// A removed message.
    Remove {
        /// Raw folder name.
        folder: String,
        /// UIDVALIDITY.
        uidvalidity: u32,
        /// UID.
        uid: u32,
    },
    /// A POP3 unique-id entry, as it is now.
    Uidl {
        /// The unique-id.
        uidl: String,
        /// The entry.
        entry: UidlEntry,
    },
    /// A POP3 unique-id forgotten.
    ForgetUidl {
        /// The unique-id.
        uidl: String,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The folded state of one manifest.
#[derive(Default)]
struct Fold {
    /// (folder, uidvalidity, uid) → the `add` line.
    adds: BTreeMap<(String, u32, u32), Line>,
    uidls: BTreeMap<String, UidlEntry>,
    /// (folder, uidvalidity) → the highest UID of any `add` or `remove`.
    highest: BTreeMap<(String, u32), u32>,
    lines: usize,
}

impl Fold {
    fn apply(&mut self, line: Line) {
        self.lines += 1;
        match line {
            Line::Add {
                ref folder,
                uidvalidity,
                uid,
                ref uidl,
                first_seen,
                ..
            } => {
                if let Some(u) = uidl {
                    self.uidls.insert(
                        u.clone(),
                        UidlEntry {
                            first_seen,
                            uid,
                            pending_delete: false,
                        },
                    );
                }
                self.note_uid(folder, uidvalidity, uid);
                self.adds.insert((folder.clone(), uidvalidity, uid), line);
            }
            Line::Remove {
                folder,
                uidvalidity,
                uid,
            } => {
                self.note_uid(&folder, uidvalidity, uid);
                self.adds.remove(&(folder, uidvalidity, uid));
            }
            Line::Uidl { uidl, entry } => {
                self.uidls.insert(uidl, entry);
            }
            Line::ForgetUidl { uidl } => {
                self.uidls.remove(&uidl);
            }
        }
    }

    fn note_uid(&mut self, folder: &str, uidvalidity: u32, uid: u32) {
        let highest = self
            .highest
            .entry((folder.to_owned(), uidvalidity))
            .or_default();
        *highest = (*highest).max(uid);
    }

    /// At most as many lines as [`Fold::compacted`] gives, without making
    /// them.
    fn compacted_bound(&self) -> usize {
        self.adds.len() + self.uidls.len() + self.highest.len()
    }

    /// The lines that give this state again.
    fn compacted(&self) -> Vec<Line> {
        let mut out = Vec::new();
        // The highest UID of a folder no `add` carries any more stays as its
        // `remove` line, so that UIDs are never given twice.
        for ((folder, uidvalidity), uid) in &self.highest {
            if !self
                .adds
                .contains_key(&(folder.clone(), *uidvalidity, *uid))
            {
                out.push(Line::Remove {
                    folder: folder.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                });
            }
        }
        // An `add` keeps its unique-id only when that is still known as the
        // `add` would set it; otherwise a forgotten unique-id would come back.
        let mut carried = BTreeSet::new();
        for line in self.adds.values() {
            let mut line = line.clone();
            if let Line::Add {
                uid,
                uidl,
                first_seen,
                ..
            } = &mut line
            {
                if let Some(u) = uidl.take() {
                    let same = UidlEntry {
                        first_seen: *first_seen,
                        uid: *uid,
                        pending_delete: false,
                    };
                    if self.uidls.get(&u) == Some(&same) {
                        carried.insert(u.clone());
                        *uidl = Some(u);
                    } else {
                        *first_seen = 0;
                    }
                }
            }
            out.push(line);
        }
        for (uidl, entry) in &self.uidls {
            if !carried.contains(uidl) {
                out.push(Line::Uidl {
                    uidl: uidl.clone(),
                    entry: entry.clone(),
                });
            }
        }
        out
    }
}

fn encode(lines: &[Line]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l).context("Cannot encode a manifest line")?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Read a manifest; a line that does not parse (the torn end of a write cut
/// short) is skipped with a warning.
fn read_fold(path: &Path) -> Result<Fold> {
    let file =
        std::fs::File::open(path).with_context(|| format!("Cannot open {}", path.display()))?;
    let mut fold = Fold::default();
    let mut bad = 0usize;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("Cannot read {}", path.display()))?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(&line) {
            Ok(l) => fold.apply(l),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        warn!(
            "{}: skipped {bad} unreadable line(s) (a write cut short?).",
            path.display()
        );
    }
    Ok(fold)
}

impl Store {
    fn manifest_path(&self, account: &str) -> PathBuf {
        self.shared.manifests.join(format!("{account}.log"))
    }

    /// Append lines to an account's manifest; with `sync`, durably.
    pub(super) fn manifest_append(&self, account: &str, lines: &[Line], sync: bool) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let bytes = encode(lines)?;
        let path = self.manifest_path(account);
        let _guard = lock(&self.shared.manifest_lock);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("Cannot open {}", path.display()))?;
        file.write_all(&bytes)
            .with_context(|| format!("Cannot write {}", path.display()))?;
        if sync {
            file.sync_data()
                .with_context(|| format!("Cannot sync {}", path.display()))?;
        }
        Ok(())
    }

    /// Delete an account's manifest (the account is removed).
    pub(super) fn remove_manifest(&self, account: &str) -> Result<()> {
        let _guard = lock(&self.shared.manifest_lock);
        crate::fsutil::remove_durably(&self.manifest_path(account))
    }

    /// Fold every manifest, restore what the index lacks, and rewrite each
    /// manifest compacted. Accounts in the index without a manifest (an
    /// index older than manifests) get one written from the index.
    pub(super) fn replay_manifests(&self, open: &Open) -> Result<()> {
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
                    super::messages::MAX_MESSAGE_BYTES,
                ) {
                    Ok(raw) => records.push(Record {
                        uid: *uid,
                        uidvalidity: *uidvalidity,
                        flags: Flags(*flags),
                        size: raw.len() as u64,
                        meta: crate::mail::meta(&raw, *date),
                        hash: hash.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn add(uid: u32, uidl: Option<&str>) -> Line {
        Line::Add {
            folder: "INBOX".into(),
            display: "INBOX".into(),
            no: 4,
            role: None,
            uidvalidity: 1,
            uid,
            flags: 0,
            hash: format!("h{uid}"),
            date: 0,
            uidl: uidl.map(str::to_owned),
            first_seen: 5,
        }
    }

    fn remove(uid: u32) -> Line {
        Line::Remove {
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid,
        }
    }

    fn fold(lines: impl IntoIterator<Item = Line>) -> Fold {
        let mut fold = Fold::default();
        for l in lines {
            fold.apply(l);
        }
        fold
    }

    #[test]
    fn fold_applies_removals_and_compacts() -> Result<()> {
        let mut fold = Fold::default();
        for l in [
            add(1, Some("a")),
            add(2, Some("b")),
            Line::Remove {
                folder: "INBOX".into(),
                uidvalidity: 1,
                uid: 1,
            },
            Line::ForgetUidl { uidl: "a".into() },
        ] {
            // Round trip through the text form too.
            let bytes = encode(std::slice::from_ref(&l))?;
            fold.apply(serde_json::from_slice(&bytes[..bytes.len() - 1])?);
        }
        assert_eq!(fold.adds.len(), 1);
        assert_eq!(fold.uidls.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(fold.compacted(), vec![add(2, Some("b"))]);
        Ok(())
    }

    /// A unique-id forgotten while its message stays is not brought back by
    /// compaction.
    #[test]
    fn compaction_keeps_forgotten_uidls_forgotten() {
        let before = fold([
            add(1, Some("u")),
            add(2, Some("v")),
            Line::ForgetUidl { uidl: "u".into() },
        ]);
        let live = before.compacted();
        assert!(live.len() <= before.compacted_bound());
        let after = fold(live);
        assert_eq!(after.uidls.keys().collect::<Vec<_>>(), vec!["v"]);
        assert_eq!(after.adds.len(), 2);
        assert_eq!(after.compacted(), before.compacted());
    }

    /// The highest UID of a folder survives compaction when its message was
    /// removed, so a rebuilt folder's uidnext is past it.
    #[test]
    fn compaction_keeps_the_highest_removed_uid() {
        let before = fold([add(1, None), add(2, None), add(3, None), remove(3)]);
        let after = fold(before.compacted());
        assert_eq!(after.adds.len(), 2);
        assert_eq!(after.highest.get(&("INBOX".to_owned(), 1)), Some(&3));
        assert_eq!(after.compacted(), before.compacted());
    }
}
