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
//! | `remove` | that message was removed (expunged, deleted, folder cleared, moved away) |
//! | `flags` | the flags and keywords of a stored message changed locally (POP3) |
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

mod fold;
mod replay;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::pop3::UidlEntry;
use super::{lock, Store};

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
    /// The flags of a stored message changed locally.
    Flags {
        /// Raw folder name.
        folder: String,
        /// UIDVALIDITY.
        uidvalidity: u32,
        /// UID.
        uid: u32,
        /// Flags bits.
        flags: u8,
        /// Keywords.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keywords: Vec<String>,
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

/// Lines as the manifest stores them: one JSON object per line.
fn encode(lines: &[Line]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l).context("Cannot encode a manifest line")?;
        out.push(b'\n');
    }
    Ok(out)
}

impl Store {
    pub(super) fn manifest_path(&self, account: &str) -> PathBuf {
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
}
