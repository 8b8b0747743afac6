//! # The journal of local changes
//!
//! Every change a user makes through facteur (flags, moves, copies,
//! folders) is applied to the local store and written here in the same
//! sled transaction, then flushed before the call returns; the account's
//! engine replays the entries in order when it is connected and settles
//! each one ([`Store::settle`]) only after the server confirmed it (or the
//! change became impossible: the message or folder is gone). A crash at
//! any point leaves the entry in the journal, and replaying it again is
//! harmless (flag stores and moves are idempotent per UID; APPENDs are
//! checked by Message-ID first).
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `journal` | account `\0` sequence (8) | [`Change`] (JSON) |
//!
//! Sequences come from sled's `generate_id`, so entries replay in the
//! order they were made, across restarts.

use serde::{Deserialize, Serialize};

use super::MessageId;

/// One flag of the contract: a system flag or an IMAP keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// `\Seen` (`seen`).
    Seen,
    /// `\Answered` (`answered`).
    Answered,
    /// `\Flagged` (`flagged`).
    Flagged,
    /// `\Deleted` (`deleted`).
    Deleted,
    /// `\Draft` (`draft`).
    Draft,
    /// A keyword atom (`$Junk`, `$Important`, `work`), as given.
    Keyword(String),
}

/// A change made locally, waiting to be applied on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// Flags added to and removed from one message.
    Flags {
        /// Folder number.
        folder: u64,
        /// UIDVALIDITY of the UID.
        uidvalidity: u32,
        /// UID on the server.
        uid: u32,
        /// Flags to add.
        add: Vec<Flag>,
        /// Flags to remove.
        remove: Vec<Flag>,
        /// The message's flags before the change: with CONDSTORE, a flag
        /// the server changed since (its value now differs from this one)
        /// keeps the server's value.
        before: Vec<Flag>,
        /// The folder's HIGHESTMODSEQ when the change was made
        /// (`UNCHANGEDSINCE`), 0 without CONDSTORE.
        modseq: u64,
    },
    /// A move or copy inside the account. Until the server answers, the
    /// target folder holds a placeholder record (UIDVALIDITY 0).
    Move {
        /// Source folder number.
        folder: u64,
        /// UIDVALIDITY of the UID.
        uidvalidity: u32,
        /// UID in the source folder.
        uid: u32,
        /// Target folder number.
        to: u64,
        /// The placeholder's UID in the target folder.
        placeholder: u32,
        /// A copy: the source stays.
        copy: bool,
    },
    /// A message to APPEND into a folder of this account (a move or copy
    /// from another account), from the local message file.
    Append {
        /// Target folder number.
        to: u64,
        /// The placeholder's UID in the target folder.
        placeholder: u32,
        /// Content hash of the message file.
        hash: String,
        /// Flags to give the copy.
        flags: Vec<Flag>,
        /// The message's Message-ID (empty when it has none): checked
        /// before an APPEND is repeated after a crash.
        message_id: String,
        /// For a move: the source account's `MovedOut` entry, which becomes
        /// an `Expunge` there once the APPEND is done.
        source: Option<Source>,
    },
    /// Removed locally because it moved to another account; expunged on
    /// this account's server once that account's APPEND is done (the entry
    /// then becomes an `Expunge`). Until then the engine skips it, and a
    /// pass does not fetch the message back.
    MovedOut {
        /// Folder number.
        folder: u64,
        /// UIDVALIDITY of the UID.
        uidvalidity: u32,
        /// UID.
        uid: u32,
    },
    /// Expunge one message on the server (already removed locally).
    Expunge {
        /// Folder number.
        folder: u64,
        /// UIDVALIDITY of the UID.
        uidvalidity: u32,
        /// UID.
        uid: u32,
    },
    /// CREATE a folder (raw server name, delimiter and namespace applied).
    CreateFolder {
        /// Raw name.
        name: String,
    },
    /// RENAME a folder (raw server names).
    RenameFolder {
        /// Raw name before.
        from: String,
        /// Raw name after.
        to: String,
    },
    /// DELETE a folder (raw server name).
    DeleteFolder {
        /// Raw name.
        name: String,
        /// The folder's number in the store (absent in entries older than
        /// it): entries made before the delete still name it, and the
        /// replay finds its server name here.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no: Option<u64>,
    },
}

/// Where the `MovedOut` entry of a cross-account move lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The source account.
    pub account: String,
    /// The sequence of its `MovedOut` entry.
    pub seq: u64,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its place in the account's journal.
    pub seq: u64,
    /// What to do.
    pub change: Change,
}

/// How the server answered an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done as asked (for flags: the flags the message has now on the
    /// server, when known, so the local record follows the per-flag merge).
    Applied {
        /// The flags now on the server, when the engine read them.
        flags: Option<Vec<Flag>>,
    },
    /// A move, copy or APPEND landed: the placeholder becomes the
    /// server's message (`uid` from COPYUID/APPENDUID; `None` when the
    /// server did not say, and the target's next pass fetches it).
    Landed {
        /// UIDVALIDITY of the target folder.
        uidvalidity: u32,
        /// The new UID, when the server said.
        uid: Option<u32>,
    },
    /// Cannot be done any more (the message or folder is gone, the server
    /// refused it for good): dropped, with the reason for the log; a
    /// placeholder goes, a moved-out message comes back at the next pass.
    Dropped(String),
}

/// What a local change or a settled entry did to stored messages, for
/// `MessagesAdded`, `MessagesChanged` and `MessagesRemoved`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Messages that appeared (a placeholder, the server's copy).
    pub added: Vec<MessageId>,
    /// Messages whose flags changed.
    pub changed: Vec<MessageId>,
    /// Messages that went.
    pub removed: Vec<MessageId>,
    /// Whether the account's folder list changed.
    pub folders: bool,
}

impl Effects {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty() && !self.folders
    }

    /// Add what `other` did.
    pub fn extend(&mut self, other: Effects) {
        self.added.extend(other.added);
        self.changed.extend(other.changed);
        self.removed.extend(other.removed);
        self.folders |= other.folders;
    }
}

/// What a folder's pending entries mean for a pass over it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    /// UIDs removed here (moved away, expunged) that the server still
    /// has: a pass neither fetches them back nor announces them.
    pub removed: std::collections::HashSet<u32>,
    /// UIDs with flag changes not yet on the server: a pass does not
    /// overwrite their flags with the server's.
    pub flags: std::collections::HashSet<u32>,
}

impl super::Store {
    /// The account's journal, oldest first. An entry that cannot be read
    /// (damaged, or written by a newer facteur) is removed, with a
    /// warning: it can never be replayed, and `PendingChanges` would never
    /// reach 0.
    pub fn journal(&self, account: &str) -> anyhow::Result<Vec<Entry>> {
        let p = super::messages::prefix(account);
        let o = self.handle()?;
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for kv in o.trees.journal.scan_prefix(&p) {
            let (k, v) = kv?;
            let Some(seq) = k
                .get(p.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            match super::messages::from_json::<Change>(&v) {
                Ok(change) => out.push(Entry { seq, change }),
                Err(e) => {
                    tracing::warn!(
                        "Account {account}: journal entry {seq} cannot be read and is removed (that local change will not reach the server): {e:#}"
                    );
                    unreadable.push(k);
                }
            }
        }
        for k in unreadable {
            o.trees.journal.remove(k)?;
        }
        Ok(out)
    }

    /// Settle an entry the engine replayed: remove it and apply what the
    /// server said, in one transaction, then flush. Returns what changed
    /// locally (a placeholder replaced, a dropped change undone). A
    /// sequence no longer in the journal settles to nothing. See
    /// [`super::settle`] for each outcome.
    pub async fn settle(
        &self,
        account: &str,
        seq: u64,
        outcome: Outcome,
    ) -> anyhow::Result<Effects> {
        let owner = account.to_owned();
        let (effects, orphans) = self
            .blocking(move |s| s.admit(&owner, || s.settle_blocking(&owner, seq, &outcome)))
            .await?;
        self.flush().await?;
        if !orphans.is_empty() {
            self.blocking(move |s| {
                s.remove_orphans_blocking(&orphans);
                Ok(())
            })
            .await?;
        }
        Ok(effects)
    }

    /// Settle a batch of entries (see [`Store::settle`]): one flush for
    /// all of them, not one per entry. Each entry is still settled in its
    /// own transaction, so a crash before the flush only replays some of
    /// them again (harmless, see the module docs).
    pub async fn settle_all(
        &self,
        account: &str,
        outcomes: Vec<(u64, Outcome)>,
    ) -> anyhow::Result<Effects> {
        if outcomes.is_empty() {
            return Ok(Effects::default());
        }
        let owner = account.to_owned();
        let (effects, orphans) = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    let mut effects = Effects::default();
                    let mut orphans = Vec::new();
                    for (seq, outcome) in &outcomes {
                        let (e, o) = s.settle_blocking(&owner, *seq, outcome)?;
                        effects.extend(e);
                        orphans.extend(o);
                    }
                    Ok((effects, orphans))
                })
            })
            .await?;
        self.flush().await?;
        if !orphans.is_empty() {
            self.blocking(move |s| {
                s.remove_orphans_blocking(&orphans);
                Ok(())
            })
            .await?;
        }
        Ok(effects)
    }

    /// How many entries wait in the account's journal (`PendingChanges`).
    pub fn pending_count(&self, account: &str) -> anyhow::Result<u32> {
        let o = self.handle()?;
        let n = o
            .trees
            .journal
            .scan_prefix(super::messages::prefix(account))
            .keys()
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The pending entries of one folder, for a pass over it: `removed`
    /// holds the source UIDs of pending moves (not copies), `MovedOut` and
    /// `Expunge` entries, `flags` the UIDs with pending flag changes.
    pub fn pending(&self, account: &str, folder: u64) -> anyhow::Result<Pending> {
        let mut out = Pending::default();
        for e in self.journal(account)? {
            match e.change {
                Change::Move {
                    folder: f,
                    uid,
                    copy: false,
                    ..
                }
                | Change::MovedOut { folder: f, uid, .. }
                | Change::Expunge { folder: f, uid, .. }
                    if f == folder =>
                {
                    out.removed.insert(uid);
                }
                Change::Flags { folder: f, uid, .. } if f == folder => {
                    out.flags.insert(uid);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Before an account's journal is dropped (the account is removed):
    /// its pending cross-account moves are let go without loss. A move
    /// *into* it (its `Append` holding a placeholder) is dropped the way a
    /// refused one is: the message goes back where it came from, and that
    /// account's `MovedOut` goes (it would hide the message for ever). A
    /// move *out of* it (its `MovedOut`) leaves the other account's `Append`
    /// to land on its own, without a source to expunge.
    pub(super) fn release_moves(&self, account: &str) -> anyhow::Result<()> {
        let mut orphans = Vec::new();
        for e in self.journal(account)? {
            match &e.change {
                Change::Append { .. } => {
                    let (_, o) = self.settle_blocking(
                        account,
                        e.seq,
                        &Outcome::Dropped("the account was removed".to_owned()),
                    )?;
                    orphans.extend(o);
                }
                Change::MovedOut { .. } => {
                    let o = self.handle()?;
                    for kv in o.trees.journal.iter() {
                        let (k, v) = kv?;
                        let Ok(Change::Append {
                            to,
                            placeholder,
                            hash,
                            flags,
                            message_id,
                            source: Some(src),
                        }) = super::messages::from_json::<Change>(&v)
                        else {
                            continue;
                        };
                        if src.account != account || src.seq != e.seq {
                            continue;
                        }
                        let detached = Change::Append {
                            to,
                            placeholder,
                            hash,
                            flags,
                            message_id,
                            source: None,
                        };
                        o.trees
                            .journal
                            .insert(k, super::messages::to_json(&detached)?)?;
                    }
                }
                _ => {}
            }
        }
        if !orphans.is_empty() {
            self.remove_orphans_blocking(&orphans);
        }
        Ok(())
    }

    /// Drop every journal entry and placeholder note of an account (the
    /// account is removed).
    pub(super) fn remove_journal(&self, account: &str) -> anyhow::Result<()> {
        let o = self.handle()?;
        let p = super::messages::prefix(account);
        for tree in [&o.trees.journal, &o.trees.placeholders] {
            let mut batch = sled::Batch::default();
            for k in tree.scan_prefix(&p).keys() {
                batch.remove(k?);
            }
            tree.apply_batch(batch).map_err(|e| self.failed(e.into()))?;
        }
        Ok(())
    }

    /// The ids grouped by (account, folder display name), for one signal
    /// per folder; ids whose folder is gone are grouped under an empty name.
    pub fn by_folder(&self, ids: &[MessageId]) -> Vec<(String, String, Vec<String>)> {
        let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut names: std::collections::HashMap<(String, u64), String> =
            std::collections::HashMap::new();
        for id in ids {
            let key = (id.account.clone(), id.folder);
            let display = names
                .entry(key)
                .or_insert_with(|| {
                    self.folder_of(id)
                        .ok()
                        .flatten()
                        .map(|f| f.display)
                        .unwrap_or_default()
                })
                .clone();
            match out
                .iter_mut()
                .find(|(a, f, _)| *a == id.account && *f == display)
            {
                Some((_, _, list)) => list.push(id.to_string()),
                None => out.push((id.account.clone(), display, vec![id.to_string()])),
            }
        }
        out
    }
}
