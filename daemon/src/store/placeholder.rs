//! # Placeholders and the local-change transaction
//!
//! A message moved or copied into a folder of an IMAP account shows there
//! at once as a *placeholder*: a record with UIDVALIDITY 0 and a UID from
//! [`PLACEHOLDER_BASE`] upwards (a range real servers never reach; one
//! counter per folder, never reused), holding a reference on the message
//! file like any record. It is replaced by the server's message when the
//! engine settles the entry ([`super::Outcome::Landed`]). Placeholders are
//! listed, counted and readable, but [`Store::uids`], [`Store::flag_sets`]
//! and [`Store::hashes`] leave them out, so a pass never takes them for
//! server messages.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `placeholders` | account `\0` folder no (8) | the folder's next placeholder UID (4) |
//! | `placeholders` | account `\0` folder no (8) uid (4) | [`Held`] (JSON) |
//!
//! [`Tx`] gathers the trees a local change writes, so that records, the
//! placeholders and the journal entries of one change commit together.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional as _;

use super::journal::Flag;
use super::messages::{
    abort, add_ref, date_key, folder_key, from_json, msg_key, prefix, to_json, tx_error,
    unified_key, Flags, FolderInfo, Record,
};
use super::{Change, Store};

/// The first placeholder UID of a folder.
pub const PLACEHOLDER_BASE: u32 = 0xF000_0000;

/// Whether a record is a placeholder (see the module docs).
pub fn is_placeholder(r: &Record) -> bool {
    r.uidvalidity == 0 && r.uid >= PLACEHOLDER_BASE
}

/// What the store keeps beside a placeholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Held {
    /// The flags the copy gets on the server (those of the message when it
    /// was moved): flags set on the placeholder since are journaled for
    /// the real UID once it lands.
    pub(super) flags: Flags,
    /// The keywords, likewise.
    #[serde(default)]
    pub(super) keywords: Vec<String>,
    /// For a move: where the message was, to put it back if the move is
    /// dropped.
    #[serde(default)]
    pub(super) origin: Option<Origin>,
}

/// Where a moved message came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Origin {
    /// Account.
    pub(super) account: String,
    /// Folder number.
    pub(super) folder: u64,
    /// The record as it was there.
    pub(super) record: Record,
    /// Whether the source keeps a manifest of its own mail (POP3): a
    /// restored record gets its `add` line back.
    pub(super) local: bool,
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<anyhow::Error>>;

/// The trees of one local change, inside its transaction.
pub(super) struct Tx<'a> {
    pub(super) folders: &'a TransactionalTree,
    pub(super) msgs: &'a TransactionalTree,
    pub(super) by_date: &'a TransactionalTree,
    pub(super) unified: &'a TransactionalTree,
    pub(super) refs: &'a TransactionalTree,
    pub(super) journal: &'a TransactionalTree,
    pub(super) placeholders: &'a TransactionalTree,
}

impl Store {
    /// Run `f` in one transaction over the trees of [`Tx`].
    pub(super) fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> anyhow::Result<T> {
        let o = self.handle()?;
        let t = &o.trees;
        (
            &t.folders,
            &t.messages,
            &t.by_date,
            &t.unified,
            &t.refs,
            &t.journal,
            &t.placeholders,
        )
            .transaction(
                |(folders, msgs, by_date, unified, refs, journal, placeholders)| {
                    f(&Tx {
                        folders,
                        msgs,
                        by_date,
                        unified,
                        refs,
                        journal,
                        placeholders,
                    })
                },
            )
            .map_err(|e| self.failed(tx_error(e)))
    }
}

/// The key of a folder's placeholder counter.
pub(super) fn counter_key(account: &str, folder: u64) -> Vec<u8> {
    let mut key = prefix(account);
    key.extend_from_slice(&folder.to_be_bytes());
    key
}

/// The journal key of an entry.
pub(super) fn journal_key(account: &str, seq: u64) -> Vec<u8> {
    let mut k = prefix(account);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Tx<'_> {
    /// The record at (folder, uid), if any.
    pub(super) fn record(&self, account: &str, folder: u64, uid: u32) -> TxResult<Option<Record>> {
        self.msgs
            .get(msg_key(account, folder, uid))?
            .map(|v| from_json(&v).map_err(abort))
            .transpose()
    }

    /// Insert a record with its date keys and a reference on its file;
    /// `false` (nothing written) when the key is taken.
    pub(super) fn put(&self, account: &str, folder: u64, r: &Record) -> TxResult<bool> {
        let key = msg_key(account, folder, r.uid);
        if self.msgs.get(&key)?.is_some() {
            return Ok(false);
        }
        self.msgs.insert(key, to_json(r).map_err(abort)?)?;
        self.by_date
            .insert(date_key(account, folder, r.meta.date, r.uid), &[][..])?;
        self.unified
            .insert(unified_key(account, folder, r.meta.date, r.uid), &[][..])?;
        add_ref(self.refs, &r.hash, 1)?;
        Ok(true)
    }

    /// Rewrite a stored record (flags changed; same key and date).
    pub(super) fn update(&self, account: &str, folder: u64, r: &Record) -> TxResult<()> {
        self.msgs
            .insert(msg_key(account, folder, r.uid), to_json(r).map_err(abort)?)?;
        Ok(())
    }

    /// Remove a record with its date keys and its reference; returns it and
    /// whether its file has no reference left.
    pub(super) fn take(
        &self,
        account: &str,
        folder: u64,
        uid: u32,
    ) -> TxResult<Option<(Record, bool)>> {
        let Some(v) = self.msgs.remove(msg_key(account, folder, uid))? else {
            return Ok(None);
        };
        let r: Record = from_json(&v).map_err(abort)?;
        self.by_date
            .remove(date_key(account, folder, r.meta.date, r.uid))?;
        self.unified
            .remove(unified_key(account, folder, r.meta.date, r.uid))?;
        let orphan = add_ref(self.refs, &r.hash, -1)? == 0;
        if is_placeholder(&r) {
            self.placeholders.remove(msg_key(account, folder, uid))?;
        }
        Ok(Some((r, orphan)))
    }

    /// Append an entry to an account's journal; returns its sequence.
    pub(super) fn push(&self, account: &str, change: &Change) -> TxResult<u64> {
        let seq = self.journal.generate_id()?;
        self.journal
            .insert(journal_key(account, seq), to_json(change).map_err(abort)?)?;
        Ok(seq)
    }

    /// A new placeholder UID for a folder.
    pub(super) fn next_placeholder(&self, account: &str, folder: u64) -> TxResult<u32> {
        let key = counter_key(account, folder);
        let next = self
            .placeholders
            .get(&key)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(PLACEHOLDER_BASE)
            .max(PLACEHOLDER_BASE);
        if next == u32::MAX {
            return Err(abort(anyhow::anyhow!(
                "No placeholder UID is left for this folder"
            )));
        }
        self.placeholders
            .insert(key, &next.saturating_add(1).to_be_bytes())?;
        Ok(next)
    }

    /// What is kept beside a placeholder.
    pub(super) fn held(&self, account: &str, folder: u64, uid: u32) -> TxResult<Option<Held>> {
        self.placeholders
            .get(msg_key(account, folder, uid))?
            .map(|v| from_json(&v).map_err(abort))
            .transpose()
    }

    /// Keep `held` beside the placeholder at (folder, uid).
    pub(super) fn hold(&self, account: &str, folder: u64, uid: u32, held: &Held) -> TxResult<()> {
        self.placeholders
            .insert(msg_key(account, folder, uid), to_json(held).map_err(abort)?)?;
        Ok(())
    }

    /// A folder by raw name.
    pub(super) fn folder(&self, account: &str, name: &str) -> TxResult<Option<FolderInfo>> {
        self.folders
            .get(folder_key(account, name))?
            .map(|v| from_json(&v).map_err(abort))
            .transpose()
    }
}

/// The flags of a record as contract flags.
pub fn flag_list(flags: Flags, keywords: &[String]) -> Vec<Flag> {
    let mut out = Vec::new();
    for (bit, flag) in SYSTEM {
        if flags.has(*bit) {
            out.push(flag.clone());
        }
    }
    out.extend(keywords.iter().cloned().map(Flag::Keyword));
    out
}

/// Contract flags as record flags and keywords.
pub fn from_flag_list(list: &[Flag]) -> (Flags, Vec<String>) {
    apply_flags(Flags::default(), &[], list, &[])
}

const SYSTEM: &[(u8, Flag)] = &[
    (Flags::SEEN, Flag::Seen),
    (Flags::ANSWERED, Flag::Answered),
    (Flags::FLAGGED, Flag::Flagged),
    (Flags::DELETED, Flag::Deleted),
    (Flags::DRAFT, Flag::Draft),
];

fn bit(flag: &Flag) -> Option<u8> {
    SYSTEM.iter().find(|(_, f)| f == flag).map(|(b, _)| *b)
}

/// Add then remove flags: keywords compare case-insensitively (IMAP
/// keywords do), an added one keeps the spelling given; the keywords come
/// back sorted.
pub fn apply_flags(
    flags: Flags,
    keywords: &[String],
    add: &[Flag],
    remove: &[Flag],
) -> (Flags, Vec<String>) {
    let mut bits = flags.0;
    let mut kws = keywords.to_vec();
    for f in add {
        match (bit(f), f) {
            (Some(b), _) => bits |= b,
            (None, Flag::Keyword(k)) => {
                if !kws.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    kws.push(k.clone());
                }
            }
            (None, _) => {}
        }
    }
    for f in remove {
        match (bit(f), f) {
            (Some(b), _) => bits &= !b,
            (None, Flag::Keyword(k)) => kws.retain(|x| !x.eq_ignore_ascii_case(k)),
            (None, _) => {}
        }
    }
    // Sorted as a pass sorts the server's keywords, so comparing the two
    // never sees a change that is only an order.
    kws.sort();
    (Flags(bits), kws)
}

/// The flags in `after` and not in `before` (keywords case-insensitive).
pub fn flags_missing(after: &[Flag], before: &[Flag]) -> Vec<Flag> {
    after
        .iter()
        .filter(|f| !before.iter().any(|b| same_flag(b, f)))
        .cloned()
        .collect()
}

fn same_flag(a: &Flag, b: &Flag) -> bool {
    match (a, b) {
        (Flag::Keyword(x), Flag::Keyword(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_come_back_sorted() {
        let list = [
            Flag::Keyword("work".into()),
            Flag::Seen,
            Flag::Keyword("$Junk".into()),
        ];
        let (f, k) = from_flag_list(&list);
        assert!(f.has(Flags::SEEN));
        assert_eq!(k, vec!["$Junk".to_owned(), "work".to_owned()]);
        let (_, k) = apply_flags(f, &["zz".to_owned()], &[Flag::Keyword("aa".into())], &[]);
        assert_eq!(k, vec!["aa".to_owned(), "zz".to_owned()]);
    }
}
