//! # Secrets still to remove
//!
//! A deleted account is gone at once (object, settings file, mail), but its
//! passwords can only go when the secret store can be written: a locked
//! keyring must not block `Delete`. Until then its id is kept in a small
//! durable note, `<config-dir>/secrets-to-remove.json`, written atomically;
//! [`super::lifecycle`] retries the removal in the background and at every
//! start. An id in the note is never given to a new account, so a removal
//! that finally succeeds can only hit the deleted account's passwords.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::warn;

/// The note's file name in the config directory.
pub const FILE_NAME: &str = "secrets-to-remove.json";

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    version: u32,
    ids: BTreeSet<String>,
}

const NOTE_VERSION: u32 = 1;

/// The ids whose secrets are still to be removed, and their file.
pub struct Retired {
    path: PathBuf,
    /// Held across each write, so the file is written in the order of the
    /// changes.
    ids: Mutex<BTreeSet<String>>,
}

impl Retired {
    /// Read the note of `config_dir` (blocking: call it off the async
    /// workers). A damaged note is reported and read as empty: the orphan
    /// sweep at start still removes the secrets of accounts that have no
    /// settings file.
    pub fn load(config_dir: &Path) -> Retired {
        let path = config_dir.join(FILE_NAME);
        let ids = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Note>(&bytes) {
                Ok(note) if note.version == NOTE_VERSION => note.ids,
                Ok(note) => {
                    warn!(
                        "Ignoring {}: unsupported version {}.",
                        path.display(),
                        note.version
                    );
                    BTreeSet::new()
                }
                Err(e) => {
                    warn!("Ignoring {}: {e}.", path.display());
                    BTreeSet::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => {
                warn!("Cannot read {}: {e}.", path.display());
                BTreeSet::new()
            }
        };
        Retired {
            path,
            ids: Mutex::new(ids),
        }
    }

    /// The ids in the note.
    pub async fn ids(&self) -> BTreeSet<String> {
        self.ids.lock().await.clone()
    }

    /// Add `id` to the note, durably.
    pub async fn add(&self, id: &str) -> Result<()> {
        let mut ids = self.ids.lock().await;
        if ids.contains(id) {
            return Ok(());
        }
        let mut next = ids.clone();
        next.insert(id.to_owned());
        write(&self.path, &next).await?;
        *ids = next;
        Ok(())
    }

    /// Take `id` out of the note, durably. A note that cannot be written is
    /// only logged: removing the same secrets again is harmless.
    pub async fn remove(&self, id: &str) {
        let mut ids = self.ids.lock().await;
        if !ids.remove(id) {
            return;
        }
        if let Err(e) = write(&self.path, &ids).await {
            warn!("Cannot update {}: {e:#}", self.path.display());
        }
    }
}

/// Write the note (or remove it when empty) off the async workers.
async fn write(path: &Path, ids: &BTreeSet<String>) -> Result<()> {
    let path = path.to_owned();
    let note = Note {
        version: NOTE_VERSION,
        ids: ids.clone(),
    };
    tokio::task::spawn_blocking(move || {
        if note.ids.is_empty() {
            return crate::fsutil::remove_durably(&path);
        }
        let mut json = serde_json::to_vec_pretty(&note).context("Cannot encode the note")?;
        json.push(b'\n');
        crate::fsutil::write_atomic(&path, &json, 0o600)
    })
    .await
    .context("The file task failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_note_survives_a_restart_and_goes_when_empty() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let note = Retired::load(dir.path());
        assert!(note.ids().await.is_empty());
        note.add("a").await?;
        note.add("b").await?;
        let again = Retired::load(dir.path());
        assert_eq!(again.ids().await, BTreeSet::from(["a".into(), "b".into()]));
        again.remove("a").await;
        again.remove("b").await;
        assert!(!dir.path().join(FILE_NAME).exists());
        assert!(Retired::load(dir.path()).ids().await.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_damaged_note_reads_as_empty() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(FILE_NAME), b"{not json")?;
        assert!(Retired::load(dir.path()).ids().await.is_empty());
        Ok(())
    }
}
