//! # The outbox
//!
//! Messages queued with `Enqueue`: the raw bytes as a message file under
//! `<data-dir>/outbox/<id>.eml` (a private directory; the file and the
//! directory fsynced) written before the entry, and an entry per message in
//! the `outbox` tree, flushed before `Enqueue` answers, in the order they
//! were queued.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `outbox` | account `\0` sequence (8, big-endian) | [`Queued`] (JSON) |
//!
//! The sequence comes from sled's `generate_id`, unique over the whole
//! index, so the outbox id (the sequence in hex) names one message file
//! whatever the account. An entry is removed before its file: a crash in
//! between leaves a file no entry names, which [`Store::outbox_add`] never
//! reuses (ids only grow) and which harms nothing.
//!
//! [`Store::outbox_add`]: super::Store::outbox_add

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// The sled tree of the outbox.
const TREE: &str = "outbox";

/// Serializes the check for a queued Message-ID with the insert, so two
/// `Enqueue`s of the same message make one entry.
static ADDING: Mutex<()> = Mutex::new(());

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueuedState {
    /// Waiting for the SMTP server (or its turn).
    Queued,
    /// Being handed to the SMTP server now (or when the daemon stopped:
    /// the sender makes such entries `queued` and `unverified` at start).
    Sending,
    /// The server refused it for good (5xx, a bad message): not retried.
    Failed,
}

impl QueuedState {
    /// The contract's name of the state (`queued`, `sending`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            QueuedState::Queued => "queued",
            QueuedState::Sending => "sending",
            QueuedState::Failed => "failed",
        }
    }
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    /// The outbox id (returned by `Enqueue`).
    pub id: String,
    /// Decoded Subject.
    pub subject: String,
    /// The recipients, as a person reads them.
    pub to: String,
    /// Its state.
    pub state: QueuedState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed; empty when none did.
    pub last_error: String,
    /// Unix seconds when it was queued.
    pub queued: i64,
    /// Content hash of the message file.
    pub hash: String,
    /// Its Message-ID (added by `Enqueue` when missing).
    pub message_id: String,
    /// Unix seconds of the last attempt; 0 before the first.
    #[serde(default)]
    pub last_attempt: i64,
    /// Whether an earlier attempt may have reached the server (a send
    /// interrupted by a crash, or whose outcome was lost after DATA) and
    /// the Sent folder must be looked at before it is sent again.
    #[serde(default)]
    pub unverified: bool,
}

/// What [`super::Store::outbox_add`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// A new entry.
    New(Queued),
    /// The same bytes are queued already under this entry: nothing stored.
    Same(Queued),
    /// Another message with the same Message-ID is queued or being sent
    /// (this entry): nothing stored.
    Differs(Queued),
}

fn key(account: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(account.len() + 9);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn prefix(account: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k
}

/// The sequence an outbox id stands for; `None` for anything that is not
/// one of ours.
fn seq_of(id: &str) -> Option<u64> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

fn decode(value: &[u8]) -> Result<Queued> {
    serde_json::from_slice(value).context("An outbox entry cannot be read")
}

impl super::Store {
    fn outbox_dir(&self) -> PathBuf {
        self.shared.data_dir.join("outbox")
    }

    fn outbox_file(&self, id: &str) -> PathBuf {
        self.outbox_dir().join(format!("{id}.eml"))
    }

    fn outbox_tree(&self) -> Result<sled::Tree> {
        let open = self.handle()?;
        let r = open
            .db
            .open_tree(TREE)
            .context("Cannot open the outbox tree");
        self.note(r)
    }

    fn outbox_flush(&self) -> Result<()> {
        let open = self.handle()?;
        let r = open
            .db
            .flush()
            .map(|_| ())
            .context("Cannot flush the index");
        self.note(r)
    }

    /// Queue `raw` (ready to send: From, Date and Message-ID present) for
    /// `account`: the file written and synced, then the entry, flushed.
    /// When an entry of the account with the same Message-ID is queued or
    /// being sent, nothing is written and that entry is returned, as
    /// [`Added::Same`] for the same bytes (by hash) and [`Added::Differs`]
    /// for other bytes. `entry` gives everything but the id, state,
    /// attempts and hash.
    pub fn outbox_add(&self, account: &str, raw: &[u8], entry: Queued) -> Result<Added> {
        self.admit(account, || {
            let _one = ADDING.lock().unwrap_or_else(|p| p.into_inner());
            let hash = super::blobs::hash(raw);
            if !entry.message_id.is_empty() {
                let known = self
                    .outbox_list(account)?
                    .into_iter()
                    .find(|q| q.message_id == entry.message_id && q.state != QueuedState::Failed);
                if let Some(q) = known {
                    return Ok(if q.hash == hash {
                        Added::Same(q)
                    } else {
                        Added::Differs(q)
                    });
                }
            }
            let tree = self.outbox_tree()?;
            let open = self.handle()?;
            let seq = self.note(open.db.generate_id().context("Cannot number the message"))?;
            let id = format!("{seq:016x}");
            let dir = self.outbox_dir();
            let fresh = !dir.is_dir();
            self.note(crate::fsutil::create_private_dir(&dir))?;
            if fresh {
                // The new directory's entry in the data dir, durably.
                self.note(crate::fsutil::sync_dir(&self.shared.data_dir))?;
            }
            self.note(crate::fsutil::write_atomic(
                &self.outbox_file(&id),
                raw,
                0o600,
            ))?;
            let q = Queued {
                id,
                state: QueuedState::Queued,
                attempts: 0,
                last_error: String::new(),
                hash,
                last_attempt: 0,
                unverified: false,
                ..entry
            };
            let value = serde_json::to_vec(&q).context("Cannot encode an outbox entry")?;
            self.note(
                tree.insert(key(account, seq), value)
                    .context("Cannot store the outbox entry"),
            )?;
            self.outbox_flush()?;
            Ok(Added::New(q))
        })
    }

    /// The account's outbox, oldest first (failed entries included).
    pub fn outbox_list(&self, account: &str) -> Result<Vec<Queued>> {
        let tree = self.outbox_tree()?;
        let mut out = Vec::new();
        for item in tree.scan_prefix(prefix(account)) {
            let (_, value) = self.note(item.context("Cannot read the outbox"))?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// One entry of the account's outbox.
    pub fn outbox_get(&self, account: &str, id: &str) -> Result<Option<Queued>> {
        let Some(seq) = seq_of(id) else {
            return Ok(None);
        };
        let tree = self.outbox_tree()?;
        let value = self.note(
            tree.get(key(account, seq))
                .context("Cannot read the outbox"),
        )?;
        value.map(|v| decode(&v)).transpose()
    }

    /// Write a changed entry back, flushed; `false` (nothing written) when
    /// the entry is gone (cancelled, its account deleted).
    pub fn outbox_update(&self, account: &str, entry: &Queued) -> Result<bool> {
        let Some(seq) = seq_of(&entry.id) else {
            return Ok(false);
        };
        let value = serde_json::to_vec(entry).context("Cannot encode an outbox entry")?;
        let written = self.admit(account, || {
            let tree = self.outbox_tree()?;
            let k = key(account, seq);
            // Only over an entry that is still there.
            let swapped = loop {
                let current = self.note(tree.get(&k).context("Cannot read the outbox"))?;
                let Some(current) = current else {
                    break false;
                };
                let r = tree
                    .compare_and_swap(&k, Some(current), Some(value.clone()))
                    .context("Cannot store the outbox entry");
                if self.note(r)?.is_ok() {
                    break true;
                }
            };
            Ok(swapped)
        });
        match written {
            Ok(true) => {
                self.outbox_flush()?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            // A removed account: its outbox is gone.
            Err(e) if e.downcast_ref::<super::Unavailable>().is_none() && !self.knows(account) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn knows(&self, account: &str) -> bool {
        !*super::read(&self.gate(account))
    }

    /// The bytes of a queued message, checked against the entry's hash: a
    /// damaged file is an error, never sent.
    pub fn outbox_raw(&self, entry: &Queued) -> Result<Vec<u8>> {
        let path = self.outbox_file(&entry.id);
        let raw =
            std::fs::read(&path).with_context(|| format!("Cannot read {}", path.display()))?;
        if super::blobs::hash(&raw) != entry.hash {
            anyhow::bail!(
                "The message file {} is damaged (its content changed since it was queued)",
                path.display()
            );
        }
        Ok(raw)
    }

    /// Remove an entry (flushed) and then its file; `false` when there was
    /// no such entry.
    pub fn outbox_remove(&self, account: &str, id: &str) -> Result<bool> {
        let Some(seq) = seq_of(id) else {
            return Ok(false);
        };
        let tree = self.outbox_tree()?;
        let old = self.note(
            tree.remove(key(account, seq))
                .context("Cannot remove the outbox entry"),
        )?;
        if old.is_none() {
            return Ok(false);
        }
        self.outbox_flush()?;
        self.note(crate::fsutil::remove_durably(&self.outbox_file(id)))?;
        Ok(true)
    }

    /// Drop the account's whole outbox, entries and files (account removal).
    pub fn remove_outbox(&self, account: &str) -> Result<()> {
        for q in self.outbox_list(account)? {
            self.outbox_remove(account, &q.id)?;
        }
        Ok(())
    }

    /// How many messages wait in the account's outbox (`OutboxCount`):
    /// queued or sending, not failed.
    pub fn outbox_count(&self, account: &str) -> anyhow::Result<u32> {
        let n = self
            .outbox_list(account)?
            .iter()
            .filter(|q| q.state != QueuedState::Failed)
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// How many messages of the account's outbox failed for good
    /// (`OutboxFailedCount`).
    pub fn outbox_failed_count(&self, account: &str) -> anyhow::Result<u32> {
        let n = self
            .outbox_list(account)?
            .iter()
            .filter(|q| q.state == QueuedState::Failed)
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn entry(message_id: &str) -> Queued {
        Queued {
            id: String::new(),
            subject: "Hello".into(),
            to: "bob@example.test".into(),
            state: QueuedState::Queued,
            attempts: 0,
            last_error: String::new(),
            queued: 1,
            hash: String::new(),
            message_id: message_id.into(),
            last_attempt: 0,
            unverified: false,
        }
    }

    fn new(a: Added) -> Queued {
        match a {
            Added::New(q) => q,
            other => panic!("not added: {other:?}"),
        }
    }

    #[test]
    fn entries_are_kept_in_order_with_their_files() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(dir.path()).expect("open");
        let a = new(store.outbox_add("a", b"one", entry("<1@x>")).expect("add"));
        let b = new(store.outbox_add("a", b"two", entry("<2@x>")).expect("add"));
        // Another account's outbox.
        new(store
            .outbox_add("b", b"three", entry("<1@x>"))
            .expect("add"));
        let list = store.outbox_list("a").expect("list");
        let ids: Vec<&str> = list.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, [a.id.as_str(), b.id.as_str()]);
        assert_eq!(store.outbox_raw(&b).expect("raw"), b"two");
        assert_eq!(store.outbox_count("a").expect("count"), 2);

        let again = store.outbox_add("a", b"one", entry("<1@x>")).expect("add");
        assert_eq!(again, Added::Same(a.clone()));
        let edited = store
            .outbox_add("a", b"one, edited", entry("<1@x>"))
            .expect("add");
        assert_eq!(
            edited,
            Added::Differs(a.clone()),
            "other bytes, same Message-ID"
        );
        assert_eq!(store.outbox_list("a").expect("list").len(), 2);
        assert_eq!(
            store.outbox_raw(&a).expect("raw"),
            b"one",
            "the first bytes kept"
        );

        let mut failed = a.clone();
        failed.state = QueuedState::Failed;
        assert!(store.outbox_update("a", &failed).expect("update"));
        assert_eq!(store.outbox_count("a").expect("count"), 1);
        assert_eq!(store.outbox_failed_count("a").expect("count"), 1);

        assert!(store.outbox_remove("a", &a.id).expect("remove"));
        assert!(!store.outbox_remove("a", &a.id).expect("remove"));
        assert!(store.outbox_raw(&a).is_err(), "file removed");
        assert!(!store.outbox_update("a", &failed).expect("update"));
        assert!(store.outbox_get("a", "nonsense").expect("get").is_none());
        assert_eq!(store.outbox_failed_count("a").expect("count"), 0);

        store.remove_outbox("a").expect("drop");
        assert!(store.outbox_list("a").expect("list").is_empty());
        assert_eq!(store.outbox_list("b").expect("list").len(), 1);
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(dir.path()).expect("open");
        let q = new(store
            .outbox_add("a", b"To: b@x\r\n\r\nhi", entry("<1@x>"))
            .expect("add"));
        let file = dir.path().join("outbox").join(format!("{}.eml", q.id));
        std::fs::write(&file, b"To: b@x\r\n\r\nhX").expect("damage the file");
        let e = store
            .outbox_raw(&q)
            .expect_err("a damaged file is not read");
        assert!(format!("{e:#}").contains("damaged"), "{e:#}");
    }

    #[test]
    fn entries_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let id = {
            let store = Store::open(dir.path()).expect("open");
            new(store.outbox_add("a", b"raw", entry("<1@x>")).expect("add"))
        };
        let store = Store::open(dir.path()).expect("reopen");
        let list = store.outbox_list("a").expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, id.id);
        assert_eq!(store.outbox_raw(&id).expect("raw"), b"raw");
    }
}
