//! # Messages, folders and the unified index
//!
//! The sled trees behind folder listings and message queries. Keys are
//! big-endian so sled's order is the order wanted:
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `folders` | account `\0` raw folder name | [`FolderInfo`] (JSON), with the folder's sync state |
//! | `messages` | account `\0` folder no (8) uid (4) | [`Record`] (JSON) |
//! | `by-date` | account `\0` folder no (8) inverted date (8) uid (4) | empty |
//! | `unified` | inverted date (8) account `\0` folder no (8) uid (4) | empty |
//! | `refs` | content hash | number of records pointing at the message file (8) |
//! | `journal` | account `\0` sequence (8) | a local change ([`super::journal`]) |
//! | `placeholders` | see [`super::placeholder`] | |
//!
//! "Newest first" is then a prefix scan. A batch of messages and the
//! folder state that covers it (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) go in
//! one transaction, after the message files are durable, and are flushed
//! before anyone is told: a crash at any point means at most a re-download.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use anyhow::{anyhow, Context as _, Result};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional as _;

use super::manifest::Line;
use super::{blobs, Store};
use crate::mail::Meta;

/// The biggest message [`Store::raw`] returns; bigger ones are refused.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// The trees of this module.
#[derive(Clone)]
pub struct Trees {
    pub(super) folders: sled::Tree,
    pub(super) messages: sled::Tree,
    pub(super) by_date: sled::Tree,
    pub(super) unified: sled::Tree,
    pub(super) refs: sled::Tree,
    pub(super) pop3: sled::Tree,
    pub(super) journal: sled::Tree,
    pub(super) placeholders: sled::Tree,
}

impl Trees {
    /// Open (or create) the trees.
    pub fn open(db: &sled::Db) -> Result<Self> {
        Ok(Trees {
            folders: db.open_tree("folders")?,
            messages: db.open_tree("messages")?,
            by_date: db.open_tree("by-date")?,
            unified: db.open_tree("unified")?,
            refs: db.open_tree("refs")?,
            pop3: db.open_tree("pop3")?,
            journal: db.open_tree("journal")?,
            placeholders: db.open_tree("placeholders")?,
        })
    }
}

/// System flags, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags(pub u8);

impl Flags {
    /// `\Seen`
    pub const SEEN: u8 = 1;
    /// `\Answered`
    pub const ANSWERED: u8 = 2;
    /// `\Flagged`
    pub const FLAGGED: u8 = 4;
    /// `\Deleted`
    pub const DELETED: u8 = 8;
    /// `\Draft`
    pub const DRAFT: u8 = 16;

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// Sync state of one folder for one UIDVALIDITY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The server's UIDVALIDITY.
    pub uidvalidity: u32,
    /// Every UID below this is known locally (or was expunged).
    pub uidnext: u32,
    /// CONDSTORE's HIGHESTMODSEQ at the last sync, 0 without CONDSTORE.
    pub highestmodseq: u64,
}

/// One folder of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderInfo {
    /// Stable number inside the store (part of keys and message ids).
    pub no: u64,
    /// The name as the server spells it (modified UTF-7 for IMAP).
    pub name: String,
    /// The name decoded for people.
    pub display: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<String>,
    /// Special-use role (`sent`, `drafts`, `trash`, `spam`, `archive`, …).
    pub role: Option<String>,
    /// Whether it can hold messages.
    pub selectable: bool,
    /// Sync state; `None` before the first sync.
    pub state: Option<FolderState>,
}

/// What the index keeps about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// IMAP UID (or a local number for POP3).
    pub uid: u32,
    /// UIDVALIDITY the UID belongs to.
    pub uidvalidity: u32,
    /// Flags.
    pub flags: Flags,
    /// Size in bytes of the raw message.
    pub size: u64,
    /// Content hash: the name of the message file.
    pub hash: String,
    /// Parsed headers.
    pub meta: Meta,
    /// IMAP keywords (`$Junk`, `work`…), as the server spells them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// A message fetched from a server, before it is stored.
pub struct NewMessage {
    /// UID.
    pub uid: u32,
    /// Flags on the server.
    pub flags: Flags,
    /// Keywords on the server.
    pub keywords: Vec<String>,
    /// The raw bytes, exactly as fetched.
    pub raw: Vec<u8>,
    /// The server's arrival time (unix seconds), for messages without Date.
    pub internal_date: i64,
}

/// The opaque, stable message id of the contract:
/// `<account>.<folder no>.<uidvalidity>.<uid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId {
    /// Account id.
    pub account: String,
    /// Folder number.
    pub folder: u64,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UID.
    pub uid: u32,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.account, self.folder, self.uidvalidity, self.uid
        )
    }
}

impl std::str::FromStr for MessageId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.rsplitn(4, '.');
        let uid = parts.next().and_then(|p| p.parse().ok()).ok_or(())?;
        let uidvalidity = parts.next().and_then(|p| p.parse().ok()).ok_or(())?;
        let folder = parts.next().and_then(|p| p.parse().ok()).ok_or(())?;
        let account = parts
            .next()
            .filter(|a| crate::settings::valid_id(a))
            .ok_or(())?;
        Ok(MessageId {
            account: account.to_owned(),
            folder,
            uidvalidity,
            uid,
        })
    }
}

/// A message as listed (one entry of ListMessages/ListUnified).
#[derive(Debug, Clone)]
pub struct Summary {
    /// Message id.
    pub id: MessageId,
    /// Folder display name.
    pub folder: String,
    /// The record.
    pub record: Record,
}

pub(super) fn prefix(account: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(account.len() + 13);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k
}

pub(super) fn folder_key(account: &str, name: &str) -> Vec<u8> {
    let mut k = prefix(account);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(super) fn msg_key(account: &str, folder: u64, uid: u32) -> Vec<u8> {
    let mut k = prefix(account);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

/// Dates sort newest first once inverted (the sign bit flipped so negative
/// dates order correctly, then all bits).
fn inverted(date: i64) -> [u8; 8] {
    (!((date as u64) ^ (1 << 63))).to_be_bytes()
}

pub(super) fn date_key(account: &str, folder: u64, date: i64, uid: u32) -> Vec<u8> {
    let mut k = prefix(account);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&inverted(date));
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

pub(super) fn unified_key(account: &str, folder: u64, date: i64, uid: u32) -> Vec<u8> {
    let mut k = inverted(date).to_vec();
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

/// Split a unified key back into (account, folder, uid).
pub(super) fn parse_unified_key(k: &[u8]) -> Option<(String, u64, u32)> {
    let rest = k.get(8..)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let account = std::str::from_utf8(&rest[..nul]).ok()?.to_owned();
    let tail = rest.get(nul + 1..)?;
    let folder = u64::from_be_bytes(tail.get(..8)?.try_into().ok()?);
    let uid = u32::from_be_bytes(tail.get(8..12)?.try_into().ok()?);
    Some((account, folder, uid))
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).context("Cannot encode an index record")
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).context("Damaged index record")
}

type TxResult<T> = Result<T, ConflictableTransactionError<anyhow::Error>>;

pub(super) fn abort(e: anyhow::Error) -> ConflictableTransactionError<anyhow::Error> {
    ConflictableTransactionError::Abort(e)
}

pub(super) fn tx_error(e: sled::transaction::TransactionError<anyhow::Error>) -> anyhow::Error {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => anyhow!(e).context("Index write failed"),
    }
}

/// Add `delta` to the reference count of a message file; returns the new
/// count.
pub(super) fn add_ref(refs: &TransactionalTree, hash: &str, delta: i64) -> TxResult<u64> {
    let now = refs
        .get(hash.as_bytes())?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    let next = now.saturating_add_signed(delta);
    if next == 0 {
        refs.remove(hash.as_bytes())?;
    } else {
        refs.insert(hash.as_bytes(), &next.to_be_bytes())?;
    }
    Ok(next)
}

impl Store {
    /// Every folder of an account, by raw name.
    pub fn folders(&self, account: &str) -> Result<Vec<FolderInfo>> {
        let o = self.handle()?;
        o.trees
            .folders
            .scan_prefix(prefix(account))
            .map(|kv| from_json(&kv?.1))
            .collect()
    }

    /// One folder by raw name.
    pub fn folder(&self, account: &str, name: &str) -> Result<Option<FolderInfo>> {
        let o = self.handle()?;
        o.trees
            .folders
            .get(folder_key(account, name))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// One folder by display name.
    pub fn folder_by_display(&self, account: &str, display: &str) -> Result<Option<FolderInfo>> {
        Ok(self
            .folders(account)?
            .into_iter()
            .find(|f| f.display == display))
    }

    /// Create or update a folder's listing data (not its sync state).
    pub fn upsert_folder(
        &self,
        account: &str,
        name: &str,
        display: &str,
        delimiter: Option<String>,
        role: Option<String>,
        selectable: bool,
    ) -> Result<FolderInfo> {
        self.admit(account, || {
            self.upsert_folder_admitted(account, name, display, delimiter, role, selectable)
        })
    }

    fn upsert_folder_admitted(
        &self,
        account: &str,
        name: &str,
        display: &str,
        delimiter: Option<String>,
        role: Option<String>,
        selectable: bool,
    ) -> Result<FolderInfo> {
        let existing = self.folder(account, name)?;
        let o = self.handle()?;
        let info = match existing {
            Some(mut f) => {
                f.display = display.to_owned();
                f.delimiter = delimiter;
                f.role = role;
                f.selectable = selectable;
                f
            }
            None => FolderInfo {
                no: o.db.generate_id().map_err(|e| self.failed(e.into()))?,
                name: name.to_owned(),
                display: display.to_owned(),
                delimiter,
                role,
                selectable,
                state: None,
            },
        };
        o.trees
            .folders
            .insert(folder_key(account, name), to_json(&info)?)
            .map_err(|e| self.failed(e.into()))?;
        Ok(info)
    }

    /// Store a batch of new messages of one folder, and the folder state
    /// that covers them, durably. Returns the ids of the messages that were
    /// not already there. Runs the file and index work off the async
    /// threads.
    pub async fn store_batch(
        &self,
        account: &str,
        folder: &FolderInfo,
        messages: Vec<NewMessage>,
        state: Option<FolderState>,
    ) -> Result<Vec<MessageId>> {
        let this = self.clone();
        let (account, folder) = (account.to_owned(), folder.clone());
        let ids = tokio::task::spawn_blocking(move || {
            this.admit(&account, || {
                this.store_batch_blocking(&account, &folder, messages, state, false)
            })
        })
        .await
        .context("The store task failed")??;
        self.flush().await?;
        Ok(ids)
    }

    /// Write the message files of a batch (content hash, raw bytes);
    /// returns the directories the batch's `syncfs` must cover. The caller
    /// holds `files_lock` until its index commit.
    pub(super) fn write_files(&self, raws: Vec<(String, Vec<u8>)>) -> Result<BTreeSet<PathBuf>> {
        let mut dirs = BTreeSet::new();
        for (hash, raw) in raws {
            dirs.insert(
                blobs::write(&self.shared.messages, &hash, &raw).map_err(|e| self.failed(e))?,
            );
        }
        Ok(dirs)
    }

    /// With `ahead` (a message stored ahead of the folder's sync, see
    /// [`Store::store_ahead`]), nothing is stored unless the folder still
    /// has the UIDVALIDITY of `folder` when the index is written.
    pub(super) fn store_batch_blocking(
        &self,
        account: &str,
        folder: &FolderInfo,
        messages: Vec<NewMessage>,
        state: Option<FolderState>,
        ahead: bool,
    ) -> Result<Vec<MessageId>> {
        let uidvalidity = state.or(folder.state).map(|s| s.uidvalidity).unwrap_or(0);
        // Hashes and headers first, outside the files lock, so that several
        // accounts' batches parse in parallel.
        let mut records = Vec::with_capacity(messages.len());
        let mut lines = Vec::with_capacity(messages.len());
        let mut raws = Vec::with_capacity(messages.len());
        for m in messages {
            let hash = blobs::hash(&m.raw);
            lines.push(Line::Add {
                folder: folder.name.clone(),
                display: folder.display.clone(),
                no: folder.no,
                role: folder.role.clone(),
                uidvalidity,
                uid: m.uid,
                flags: m.flags.0,
                hash: hash.clone(),
                date: m.internal_date,
                uidl: None,
                first_seen: 0,
            });
            records.push(Record {
                uid: m.uid,
                uidvalidity,
                flags: m.flags,
                size: m.raw.len() as u64,
                meta: crate::mail::meta(&m.raw, m.internal_date),
                hash: hash.clone(),
                keywords: m.keywords,
            });
            raws.push((hash, m.raw));
        }
        // From the files to the index commit: see `files_lock`. Files first,
        // durable, then the index that points at them.
        let _files = super::lock(&self.shared.files_lock);
        let dirs = self.write_files(raws)?;
        // The manifest lines go with the files: the syncfs below makes both
        // durable.
        self.manifest_append(account, &lines, false)
            .map_err(|e| self.failed(e))?;
        blobs::sync(&self.shared.messages, &dirs).map_err(|e| self.failed(e))?;
        let o = self.handle()?;
        let t = &o.trees;
        let fkey = folder_key(account, &folder.name);
        let encoded: Vec<_> = records
            .iter()
            .map(|r| Ok((r, to_json(r)?)))
            .collect::<Result<_>>()?;
        let new_uids = (&t.messages, &t.by_date, &t.unified, &t.refs, &t.folders)
            .transaction(|(msgs, by_date, unified, refs, folders)| {
                let mut new = Vec::new();
                if ahead {
                    let now: Option<FolderInfo> = folders
                        .get(&fkey)?
                        .map(|v| from_json(&v))
                        .transpose()
                        .map_err(abort)?;
                    if now.and_then(|f| f.state).map(|s| s.uidvalidity) != Some(uidvalidity) {
                        return Ok(new);
                    }
                }
                for (r, json) in &encoded {
                    let key = msg_key(account, folder.no, r.uid);
                    if msgs.get(&key)?.is_some() {
                        continue;
                    }
                    msgs.insert(key, json.as_slice())?;
                    by_date.insert(date_key(account, folder.no, r.meta.date, r.uid), &[][..])?;
                    unified.insert(unified_key(account, folder.no, r.meta.date, r.uid), &[][..])?;
                    add_ref(refs, &r.hash, 1)?;
                    new.push(r.uid);
                }
                if let Some(state) = state {
                    let mut info: FolderInfo = match folders.get(&fkey)? {
                        Some(v) => from_json(&v).map_err(abort)?,
                        None => folder.clone(),
                    };
                    info.state = Some(state);
                    folders.insert(fkey.as_slice(), to_json(&info).map_err(abort)?)?;
                }
                Ok(new)
            })
            .map_err(|e| self.failed(tx_error(e)))?;
        Ok(new_uids
            .into_iter()
            .map(|uid| MessageId {
                account: account.to_owned(),
                folder: folder.no,
                uidvalidity,
                uid,
            })
            .collect())
    }

    /// The records of those messages that are stored (unreadable ones
    /// left out).
    pub fn records(&self, ids: &[MessageId]) -> Vec<Record> {
        ids.iter()
            .filter_map(|id| self.record(id).ok().flatten())
            .collect()
    }

    /// Run blocking store work (sled, files) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| anyhow::anyhow!("A store task failed: {e}"))?
    }

    /// The record of a message, if it is stored.
    pub fn record(&self, id: &MessageId) -> Result<Option<Record>> {
        let Some(v) = self
            .handle()?
            .trees
            .messages
            .get(msg_key(&id.account, id.folder, id.uid))?
        else {
            return Ok(None);
        };
        let r: Record = from_json(&v)?;
        Ok((r.uidvalidity == id.uidvalidity).then_some(r))
    }

    /// The folder a message id points into.
    pub fn folder_of(&self, id: &MessageId) -> Result<Option<FolderInfo>> {
        Ok(self
            .folders(&id.account)?
            .into_iter()
            .find(|f| f.no == id.folder))
    }
}

#[cfg(test)]
mod tests;
