//! # Store
//!
//! Owns all sled access: the index under `<data-dir>/index/` (metadata,
//! folders, flags, per-folder sync state, POP3 UIDLs, the unified index) and
//! the directory of raw message files under `<data-dir>/messages/`. Keys are
//! big-endian so sled's order is the order queries want.
//!
//! The index is derived data: if sled cannot open it, the directory is moved
//! aside (never deleted) and a fresh one is built; the servers and the
//! message files fill it again. A schema version is kept in the `meta` tree
//! so later versions can migrate.
//!
//! The store never talks to the network or to D-Bus.

mod blobs;
mod messages;
mod pop3;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

pub use messages::{Flags, FolderInfo, FolderState, MessageId, NewMessage, Record, Summary};
use tracing::{info, warn};

/// Version of the index layout written by this daemon.
pub const SCHEMA_VERSION: u32 = 1;
const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema-version";
/// sled's default page cache is 1 GiB; a desktop daemon must stay small,
/// and the index (no message bodies) is small too.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// The open index and the message directory. Cheap to clone: sled handles
/// are shared.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    messages: PathBuf,
    trees: messages::Trees,
}

impl Store {
    /// Open (or create) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        crate::fsutil::create_private_dir(data_dir)?;
        let index = data_dir.join("index");
        let messages = data_dir.join("messages");
        crate::fsutil::create_private_dir(&messages)?;
        let db = match open_db(&index) {
            Ok(db) => db,
            Err(e) => {
                let aside = data_dir.join(format!(
                    "index.unreadable-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                ));
                warn!(
                    "The index at {} cannot be opened ({e:#}); moving it to {} and rebuilding from the servers.",
                    index.display(),
                    aside.display()
                );
                std::fs::rename(&index, &aside).with_context(|| {
                    format!(
                        "Cannot move the unreadable index aside to {}",
                        aside.display()
                    )
                })?;
                open_db(&index)?
            }
        };
        if db.was_recovered() {
            info!("Opened the index at {}.", index.display());
        } else {
            info!("Created a new index at {}.", index.display());
        }
        let trees = messages::Trees::open(&db)?;
        Ok(Store {
            db,
            messages,
            trees,
        })
    }

    /// The directory of raw message files.
    pub fn messages_dir(&self) -> &Path {
        &self.messages
    }

    /// Make every write so far durable (fsync). Call before any
    /// acknowledgement that depends on them.
    pub async fn flush(&self) -> Result<()> {
        self.db
            .flush_async()
            .await
            .context("Cannot flush the index")?;
        Ok(())
    }

    /// The tree of one account's data (named `account/<id>/<what>`).
    pub fn account_tree(&self, account: &str, what: &str) -> Result<sled::Tree> {
        self.db
            .open_tree(format!("account/{account}/{what}"))
            .context("Cannot open an index tree")
    }

    /// Drop everything of an account: its messages (and the message files
    /// no other account refers to), folders and per-account trees.
    pub async fn remove_account(&self, account: &str) -> Result<()> {
        self.remove_account_messages(account).await?;
        let prefix = format!("account/{account}/");
        for name in self.db.tree_names() {
            if name.starts_with(prefix.as_bytes()) {
                self.db
                    .drop_tree(&name)
                    .context("Cannot drop an index tree")?;
            }
        }
        self.flush().await
    }
}

fn open_db(path: &Path) -> Result<sled::Db> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .mode(sled::Mode::LowSpace)
        .open()
        .with_context(|| format!("Cannot open sled at {}", path.display()))?;
    let meta = db.open_tree(META_TREE)?;
    match meta.get(SCHEMA_KEY)? {
        None => {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        Some(v) => {
            let version = <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .unwrap_or(u32::MAX);
            if version != SCHEMA_VERSION {
                bail!("index schema version {version}, this daemon reads {SCHEMA_VERSION}");
            }
        }
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reopen_keeps_data_and_drops_accounts() -> Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            store.account_tree("a", "messages")?.insert(b"k", b"v")?;
            store.account_tree("b", "messages")?.insert(b"k", b"v")?;
            store.flush().await?;
        }
        let store = Store::open(dir.path())?;
        assert!(store.account_tree("a", "messages")?.get(b"k")?.is_some());
        store.remove_account("a").await?;
        assert!(store.account_tree("a", "messages")?.is_empty());
        assert!(store.account_tree("b", "messages")?.get(b"k")?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn unreadable_index_is_moved_aside() -> Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            store
                .db
                .open_tree(META_TREE)?
                .insert(SCHEMA_KEY, &99u32.to_be_bytes())?;
            store.flush().await?;
        }
        let _store = Store::open(dir.path())?;
        let aside: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("index.unreadable-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        Ok(())
    }
}
