//! # Store
//!
//! Owns all sled access: the index under `<data-dir>/index/` (metadata,
//! folders, flags, per-folder sync state, POP3 UIDLs, the unified index) and
//! the directory of raw message files under `<data-dir>/messages/`. Keys are
//! big-endian so sled's order is the order queries want.
//!
//! The index is derived data. What only this machine holds (a POP3 message
//! the server deleted) is also written to a per-account manifest
//! (`manifest`), so that a lost index is rebuilt from the message files
//! and the manifests, and the servers fill in the rest.
//!
//! Faults of the disk and of the index are told apart (`open`):
//!
//! - an index that cannot be parsed (garbage, a panic inside sled, a wrong
//!   schema version, a truncated file that comes up empty) is moved aside
//!   (never deleted), a fresh one is built from the manifests, and the log
//!   says so;
//! - a disk that is full, read-only, refuses access or fails with EIO is
//!   not the index's fault: the store stays *unavailable* (every call
//!   answers [`Unavailable`]), the daemon keeps running, and
//!   [`Store::recover`] (called every [`RETRY_INTERVAL`]) opens it again
//!   once the disk works. The same happens when sled fails with such an
//!   error while running: sled 0.34 keeps returning a stored I/O error until
//!   its `Db` is dropped, so the store drops it and reopens.
//!
//! Every sled handle comes from the one indirection in [`Store`]: nothing
//! outside this module keeps a `Db` or a `Tree`, so dropping it really
//! closes the files (and releases sled's lock) for the reopen.
//!
//! The store never talks to the network or to D-Bus.

mod ahead;
mod blobs;
mod flags;
mod journal;
mod listing;
mod local;
mod local_folders;
mod manifest;
mod messages;
mod observer;
mod open;
mod outbox;
mod placeholder;
mod pop3;
mod removal;
mod repair;
mod settle;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tracing::{info, warn};

use crate::fsutil::{disk_condition, DiskCondition};
pub use journal::{Change, Effects, Entry, Flag, Outcome, Pending, Source};
pub use local::Target;
pub use local_folders::Renamed;
pub use messages::{Flags, FolderInfo, FolderState, MessageId, NewMessage, Record, Summary};
pub use observer::{Elsewhere, Observer};
pub use outbox::{Added, Queued, QueuedState};
pub use placeholder::{apply_flags, flag_list, from_flag_list, is_placeholder, PLACEHOLDER_BASE};
pub use repair::Damaged;

/// Version of the index layout written by this daemon.
pub const SCHEMA_VERSION: u32 = 1;
/// How often an unavailable store is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// The store cannot be used now (the disk is full, read-only, refuses
/// access or fails); it is tried again every [`RETRY_INTERVAL`].
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// What is wrong with the disk.
    pub condition: DiskCondition,
    /// A sentence a person can act on.
    pub message: String,
    /// The I/O error, kept as a source so that error chains classify.
    kind: std::io::ErrorKind,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unavailable {}

impl Unavailable {
    fn new(condition: DiskCondition, data_dir: &Path, cause: &anyhow::Error) -> Self {
        let (what, kind) = match condition {
            DiskCondition::Full => ("the disk is full", std::io::ErrorKind::StorageFull),
            DiskCondition::Unusable => ("the disk cannot be written", std::io::ErrorKind::Other),
        };
        Unavailable {
            condition,
            message: format!(
                "The message index is unavailable: {what} at {} ({cause:#}); \
                 facteur tries again every {} s",
                data_dir.display(),
                RETRY_INTERVAL.as_secs()
            ),
            kind,
        }
    }

    /// Whether the disk is full (the `disk-full` error code).
    pub fn is_disk_full(&self) -> bool {
        self.condition == DiskCondition::Full
    }

    /// The error as an `io::Error` of the matching kind.
    pub fn io_error(&self) -> std::io::Error {
        std::io::Error::new(self.kind, self.message.clone())
    }
}

/// The open index: the one place sled handles live.
pub(crate) struct Open {
    db: sled::Db,
    trees: messages::Trees,
}

struct Shared {
    data_dir: PathBuf,
    index: PathBuf,
    messages: PathBuf,
    manifests: PathBuf,
    open: RwLock<Option<Arc<Open>>>,
    down: Mutex<Option<Unavailable>>,
    /// Serializes manifest appends and rewrites.
    manifest_lock: Mutex<()>,
    /// Held from a batch's file writes to its index commit, and while
    /// orphaned files are deleted: a file one account is about to delete
    /// (its last reference just went) is never reused by another account's
    /// batch meanwhile.
    files_lock: Mutex<()>,
    /// Serializes opening.
    opening: Mutex<()>,
    /// One write gate per account (see [`Store::admit`]): `true` once the
    /// account was removed.
    gates: Mutex<HashMap<String, Arc<RwLock<bool>>>>,
}

/// The index and the message directory. Cheap to clone: every clone shares
/// the one open index.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    /// Open (or create) the store under `data_dir`. A damaged index is moved
    /// aside and rebuilt; a disk that does not work gives a store that is
    /// unavailable (see [`Store::unavailable`]) and recovers later. Fails only
    /// when the data directory itself cannot be made.
    pub fn open(data_dir: &Path) -> Result<Self> {
        crate::fsutil::create_private_dir(data_dir)?;
        let store = Store {
            shared: Arc::new(Shared {
                data_dir: data_dir.to_owned(),
                index: data_dir.join("index"),
                messages: data_dir.join("messages"),
                manifests: data_dir.join("manifests"),
                open: RwLock::new(None),
                down: Mutex::new(None),
                manifest_lock: Mutex::new(()),
                files_lock: Mutex::new(()),
                opening: Mutex::new(()),
                gates: Mutex::new(HashMap::new()),
            }),
        };
        if let Err(e) = store.try_open() {
            store.mark_down(&e)?;
        }
        Ok(store)
    }

    /// Open the index now; `Err` with the cause when the disk fails.
    fn try_open(&self) -> Result<()> {
        let _opening = lock(&self.shared.opening);
        let s = &self.shared;
        crate::fsutil::create_private_dir(&s.messages)?;
        crate::fsutil::create_private_dir(&s.manifests)?;
        open::probe_space(&s.data_dir)?;
        blobs::remove_leftovers(&s.messages);
        let opened = open::open_index(&s.data_dir, &s.index)?;
        let open = Arc::new(Open {
            trees: messages::Trees::open(&opened.db)?,
            db: opened.db,
        });
        // Replay through the local handle and publish it only afterwards: no
        // engine writes (or appends to a manifest) while the replay folds and
        // rewrites the manifests.
        if let Err(e) = self.replay_manifests(&open) {
            if disk_condition(&e).is_some() {
                return Err(e);
            }
            warn!("Cannot replay the message manifests into the index: {e:#}");
        }
        *write(&s.open) = Some(open);
        *lock(&s.down) = None;
        if opened.fresh {
            info!("The index at {} is ready.", s.index.display());
        }
        Ok(())
    }

    /// Record why the store cannot be used; errors that are no fault of the
    /// disk are returned.
    fn mark_down(&self, e: &anyhow::Error) -> Result<()> {
        let Some(condition) = disk_condition(e) else {
            return Err(anyhow::anyhow!("{e:#}"));
        };
        let why = Unavailable::new(condition, &self.shared.data_dir, e);
        warn!("{why}.");
        *write(&self.shared.open) = None;
        *lock(&self.shared.down) = Some(why);
        Ok(())
    }

    /// Why the store cannot be used now, if it cannot.
    pub fn unavailable(&self) -> Option<Unavailable> {
        lock(&self.shared.down).clone()
    }

    /// Try again to open an unavailable store. Returns `true` when it was
    /// unavailable and is open now (the caller then restarts what waited).
    pub fn recover(&self) -> bool {
        if self.unavailable().is_none() {
            return false;
        }
        match self.try_open() {
            Ok(()) => {
                info!(
                    "The message index at {} is available again.",
                    self.shared.index.display()
                );
                true
            }
            Err(e) => {
                if let Err(e) = self.mark_down(&e) {
                    warn!("The message index still cannot be opened: {e:#}");
                }
                false
            }
        }
    }

    /// The open index, or [`Unavailable`].
    fn handle(&self) -> Result<Arc<Open>> {
        if let Some(open) = read(&self.shared.open).clone() {
            return Ok(open);
        }
        let why = self.unavailable().unwrap_or_else(|| {
            Unavailable::new(
                DiskCondition::Unusable,
                &self.shared.data_dir,
                &anyhow::anyhow!("not open"),
            )
        });
        Err(anyhow::Error::new(why))
    }

    /// Look at the error of a store operation: a disk fault (sled's or a
    /// message file's) makes the store unavailable until [`Store::recover`]
    /// finds the disk working again, dropping sled's handle, whose stored
    /// error would otherwise never go away.
    fn note<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.failed(e))
    }

    /// [`Store::note`] for an error alone.
    fn failed(&self, e: anyhow::Error) -> anyhow::Error {
        if e.downcast_ref::<Unavailable>().is_none() && disk_condition(&e).is_some() {
            let _ = self.mark_down(&e);
        }
        e
    }

    /// The directory of raw message files.
    pub fn messages_dir(&self) -> &Path {
        &self.shared.messages
    }

    /// Make every write so far durable (fsync). Call before any
    /// acknowledgement that depends on them.
    pub async fn flush(&self) -> Result<()> {
        let open = self.handle()?;
        let r = open
            .db
            .flush_async()
            .await
            .map(|_| ())
            .context("Cannot flush the index");
        self.note(r)
    }

    fn gate(&self, account: &str) -> Arc<RwLock<bool>> {
        lock(&self.shared.gates)
            .entry(account.to_owned())
            .or_default()
            .clone()
    }

    /// Run one synchronous write of an account's data, unless the account
    /// was removed: the write holds the read side of the account's gate, so
    /// [`Store::remove_account`] waits for the writes under way (an engine
    /// cancelled while its batch runs in `spawn_blocking`) and none lands
    /// after it, re-creating records, manifest lines or folder state of a
    /// deleted account.
    pub(crate) fn admit<T>(&self, account: &str, write: impl FnOnce() -> Result<T>) -> Result<T> {
        let gate = self.gate(account);
        let removed = read(&gate);
        if *removed {
            anyhow::bail!("The account {account} was removed: nothing more is stored for it");
        }
        write()
    }

    /// Accept writes for an account again after [`Store::remove_account`]
    /// (a new account with the same id). The scheduler calls it when it
    /// starts an engine.
    pub fn revive(&self, account: &str) {
        *write(&self.gate(account)) = false;
    }

    /// Drop everything of an account: its messages (and the message files
    /// no other account refers to), folders, POP3 state, journal and
    /// manifest. Writes
    /// under way for it are waited for first, and later ones are refused
    /// until [`Store::revive`].
    pub async fn remove_account(&self, account: &str) -> Result<()> {
        let gate = self.gate(account);
        tokio::task::spawn_blocking(move || *write(&gate) = true)
            .await
            .context("The store task failed")?;
        let owner = account.to_owned();
        self.blocking(move |s| s.release_moves(&owner)).await?;
        self.remove_account_messages(account).await?;
        self.remove_journal(account)?;
        self.remove_manifest(account)?;
        self.remove_outbox(account)?;
        let open = self.handle()?;
        let prefix = format!("account/{account}/");
        for name in open.db.tree_names() {
            if name.starts_with(prefix.as_bytes()) {
                let r = open
                    .db
                    .drop_tree(&name)
                    .context("Cannot drop an index tree");
                self.note(r)?;
            }
        }
        self.flush().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod local_tests;
#[cfg(test)]
mod tests;
