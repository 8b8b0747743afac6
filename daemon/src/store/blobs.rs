//! # Message files
//!
//! Raw messages as immutable, content-addressed files under
//! `<data-dir>/messages/<xx>/<sha256>`: one message delivered to two
//! accounts is stored once. A file is zstd-compressed (`.zst`) when that
//! saves at least a tenth of its size, else kept as is (`.eml`), so the
//! bytes stay readable with ordinary tools whatever happens to the index.
//!
//! Files are written to a temporary name and renamed; a batch is made
//! durable with one `syncfs` plus an fsync of each directory touched, before
//! the index transaction that points at them (see [`super::messages`]).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

/// zstd level: fast, and mail compresses well at any level.
const ZSTD_LEVEL: i32 = 3;

/// The content hash of `raw`, as stored in the index.
pub fn hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

fn dir_of(root: &Path, hash: &str) -> PathBuf {
    root.join(hash.get(..2).unwrap_or("00"))
}

/// The two names a blob can have.
fn paths(root: &Path, hash: &str) -> (PathBuf, PathBuf) {
    let dir = dir_of(root, hash);
    (
        dir.join(format!("{hash}.zst")),
        dir.join(format!("{hash}.eml")),
    )
}

/// Write `raw` unless a file with the same content exists. Returns the
/// directory written to, which the caller must sync (see [`sync`]).
pub fn write(root: &Path, hash: &str, raw: &[u8]) -> Result<Option<PathBuf>> {
    let (zst, eml) = paths(root, hash);
    if zst.exists() || eml.exists() {
        return Ok(None);
    }
    let dir = dir_of(root, hash);
    std::fs::create_dir_all(&dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL).context("Cannot compress a message")?;
    let (target, bytes) = if compressed.len() * 10 <= raw.len() * 9 {
        (zst, &compressed[..])
    } else {
        (eml, raw)
    };
    let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("Cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("Cannot write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, &target).with_context(|| format!("Cannot rename {}", tmp.display()))?;
    Ok(Some(dir))
}

/// Make the files of a batch and their directory entries durable.
pub fn sync(root: &Path, dirs: &BTreeSet<PathBuf>) -> Result<()> {
    if dirs.is_empty() {
        return Ok(());
    }
    // One syncfs flushes every file of the batch: far cheaper than an
    // fsync per message, with the same guarantee once it returns.
    let root_dir =
        std::fs::File::open(root).with_context(|| format!("Cannot open {}", root.display()))?;
    rustix::fs::syncfs(root_dir.as_fd()).context("Cannot sync the message files")?;
    for dir in dirs {
        crate::fsutil::sync_dir(dir)?;
    }
    crate::fsutil::sync_dir(root)
}

/// Read a blob back, decompressed. `limit` bounds the decompressed size.
pub fn read(root: &Path, hash: &str, limit: usize) -> Result<Vec<u8>> {
    let (zst, eml) = paths(root, hash);
    match std::fs::read(&zst) {
        Ok(bytes) => {
            let mut out = Vec::new();
            let mut decoder = zstd::stream::read::Decoder::new(&bytes[..])
                .context("Cannot open a compressed message")?;
            let copied = std::io::copy(
                &mut std::io::Read::take(&mut decoder, limit as u64 + 1),
                &mut out,
            )
            .with_context(|| format!("Cannot decompress {}", zst.display()))?;
            anyhow::ensure!(
                copied as usize <= limit,
                "The message {hash} is larger than {limit} bytes"
            );
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::read(&eml).with_context(|| format!("Cannot read {}", eml.display()))
        }
        Err(e) => Err(e).with_context(|| format!("Cannot read {}", zst.display())),
    }
}

/// Remove a blob (both possible names).
pub fn remove(root: &Path, hash: &str) -> Result<()> {
    let (zst, eml) = paths(root, hash);
    crate::fsutil::remove_durably(&zst)?;
    crate::fsutil::remove_durably(&eml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_compressed_and_plain() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let text = b"Subject: hi\r\n\r\n".repeat(200);
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut dirs = BTreeSet::new();
        for raw in [&text[..], &random[..], b""] {
            let h = hash(raw);
            dirs.extend(write(dir.path(), &h, raw)?);
            assert_eq!(
                write(dir.path(), &h, raw)?,
                None,
                "content-addressed: written once"
            );
            assert_eq!(read(dir.path(), &h, 1 << 20)?, raw);
        }
        sync(dir.path(), &dirs)?;
        let h = hash(&text);
        assert!(paths(dir.path(), &h).0.exists(), "text compresses");
        assert!(read(dir.path(), &h, 10).is_err(), "limit applies");
        remove(dir.path(), &h)?;
        assert!(read(dir.path(), &h, 1 << 20).is_err());
        Ok(())
    }
}
