//! # Message files
//!
//! Raw messages as immutable, content-addressed files under
//! `<data-dir>/messages/<xx>/<sha256>`: one message delivered to two
//! accounts is stored once. A file is zstd-compressed (`.zst`) when that
//! saves at least a tenth of its size, else kept as is (`.eml`), so the
//! bytes stay readable with ordinary tools whatever happens to the index.
//!
//! Files are written to a temporary name unique to the writer (two
//! accounts storing the same message at once never share one) and renamed;
//! a batch is made durable with one `syncfs` plus an fsync of each directory
//! touched, before the index transaction that points at them (see
//! [`super::messages`]). Temporary files left by a crash are removed when
//! the store opens.
//!
//! A read checks the content against its address: a file whose bytes do
//! not hash to its name, that cannot be decompressed, or that is missing
//! gives a [`Damaged`] error naming the file; a damaged file is moved to
//! `<data-dir>/quarantine/` (never deleted).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

use super::Damaged;

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
/// directory of the file, which the caller must sync (see [`sync`]) even
/// when the file was already there: another account may have renamed it
/// into place a moment ago, not yet synced. An existing file is checked
/// against its hash first (a crash between rename and sync can leave it
/// torn); a damaged one goes to quarantine and is written again.
pub fn write(root: &Path, hash: &str, raw: &[u8]) -> Result<PathBuf> {
    let (zst, eml) = paths(root, hash);
    let dir = dir_of(root, hash);
    if zst.exists() || eml.exists() {
        match read(root, hash, raw.len()) {
            Ok(_) => return Ok(dir),
            Err(e) if e.downcast_ref::<Damaged>().is_some() => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL).context("Cannot compress a message")?;
    let (target, bytes) = if compressed.len() * 10 <= raw.len() * 9 {
        (zst, &compressed[..])
    } else {
        (eml, raw)
    };
    let tmp = dir.join(crate::fsutil::temp_name(hash));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("Cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("Cannot write {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, &target).with_context(|| format!("Cannot rename {}", tmp.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(dir)
}

/// Remove temporary files a crash left in the message directory; returns
/// how many.
pub fn remove_leftovers(root: &Path) -> usize {
    let mut removed = 0;
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    for dir in dirs.filter_map(|e| e.ok()) {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            if crate::fsutil::is_temp_name(&f.file_name()) && std::fs::remove_file(f.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            "Removed {removed} temporary file(s) an interrupted write left in {}.",
            root.display()
        );
    }
    removed
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

/// Read a blob back, decompressed and checked against its hash. `limit`
/// bounds the decompressed size. A missing or damaged file is a
/// [`Damaged`] error; a damaged one is moved to quarantine first.
pub fn read(root: &Path, hash: &str, limit: usize) -> Result<Vec<u8>> {
    let (zst, eml) = paths(root, hash);
    let (path, bytes) = match std::fs::read(&zst) {
        Ok(bytes) => (zst, bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read(&eml) {
            Ok(bytes) => (eml, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Damaged::missing(zst, eml).into())
            }
            Err(e) => return Err(e).with_context(|| format!("Cannot read {}", eml.display())),
        },
        Err(e) => return Err(e).with_context(|| format!("Cannot read {}", zst.display())),
    };
    let raw = if path.extension().is_some_and(|x| x == "zst") {
        let mut out = Vec::new();
        let decoded = zstd::stream::read::Decoder::new(&bytes[..]).and_then(|mut decoder| {
            std::io::copy(
                &mut std::io::Read::take(&mut decoder, limit as u64 + 1),
                &mut out,
            )
        });
        match decoded {
            Ok(copied) => anyhow::ensure!(
                copied as usize <= limit,
                "The message {hash} is larger than {limit} bytes"
            ),
            Err(e) => {
                return Err(
                    quarantine(root, &path, &format!("it cannot be decompressed: {e}")).into(),
                )
            }
        }
        out
    } else {
        bytes
    };
    if self::hash(&raw) != hash {
        return Err(quarantine(
            root,
            &path,
            "its content does not match its SHA-256 address",
        )
        .into());
    }
    Ok(raw)
}

/// Move a damaged file to `<data-dir>/quarantine/` and describe it.
fn quarantine(root: &Path, path: &Path, why: &str) -> Damaged {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let moved = root.parent().map(|d| d.join("quarantine")).and_then(|q| {
        crate::fsutil::create_private_dir(&q).ok()?;
        let to = q.join(format!("{name}.{secs}"));
        std::fs::rename(path, &to).ok()?;
        Some(to)
    });
    tracing::warn!(
        "The message file {} is damaged ({why}){}.",
        path.display(),
        moved
            .as_ref()
            .map(|m| format!("; moved it to {}", m.display()))
            .unwrap_or_else(|| "; it could not be moved aside".to_owned())
    );
    Damaged::corrupt(path.to_owned(), why, moved)
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
            dirs.insert(write(dir.path(), &h, raw)?);
            let files = || std::fs::read_dir(dir_of(dir.path(), &h)).map(|d| d.count());
            let before = files()?;
            write(dir.path(), &h, raw)?;
            assert_eq!(files()?, before, "content-addressed: written once");
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

    /// Finding 6: a flipped bit, a swapped file and a missing file are
    /// refused, named right, and the damaged file is kept in quarantine.
    #[test]
    fn damaged_files_are_refused_and_quarantined() -> Result<()> {
        let data = tempfile::tempdir()?;
        let root = data.path().join("messages");
        let text = b"Subject: compressible\r\n\r\n".repeat(100);
        let plain: Vec<u8> = (0..64u32)
            .flat_map(|i| Sha256::digest(i.to_be_bytes()).to_vec())
            .collect();
        let (ht, hp) = (hash(&text), hash(&plain));
        write(&root, &ht, &text)?;
        write(&root, &hp, &plain)?;
        let (zst, _) = paths(&root, &ht);
        let (_, eml) = paths(&root, &hp);
        // Bit flip in the plain file.
        let mut bytes = std::fs::read(&eml)?;
        bytes[100] ^= 0x10;
        std::fs::write(&eml, &bytes)?;
        let err = read(&root, &hp, 1 << 20)
            .err()
            .context("a flipped bit is refused")?;
        let d = err.downcast_ref::<Damaged>().context("typed error")?;
        assert_eq!(d.path, eml);
        assert!(!eml.exists(), "moved aside");
        let q = d.quarantined.clone().context("quarantined")?;
        assert_eq!(std::fs::read(&q)?, bytes, "kept, not deleted");
        assert!(err.to_string().contains(&format!("{hp}.eml")), "{err}");
        // The compressed file swapped for another message's.
        let other = zstd::bulk::compress(b"another message", 3)?;
        std::fs::write(&zst, other)?;
        let err = read(&root, &ht, 1 << 20)
            .err()
            .context("a swapped file is refused")?;
        assert!(err.to_string().contains(&format!("{ht}.zst")), "{err}");
        assert!(err.downcast_ref::<Damaged>().is_some_and(|d| !d.missing));
        // Now both are gone from their place: missing.
        let err = read(&root, &ht, 1 << 20).err().context("missing")?;
        assert!(
            err.downcast_ref::<Damaged>().is_some_and(|d| d.missing),
            "{err}"
        );
        assert!(err.to_string().contains(&ht), "{err}");
        Ok(())
    }

    /// Finding 10: temp names never clash, and leftovers go at open.
    #[test]
    fn leftover_temp_files_are_removed() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let h = hash(b"x");
        write(dir.path(), &h, b"x")?;
        let sub = dir_of(dir.path(), &h);
        std::fs::write(sub.join(format!(".{h}.123.tmp")), b"")?;
        std::fs::write(sub.join(crate::fsutil::temp_name(&h)), b"partial")?;
        assert_eq!(remove_leftovers(dir.path()), 2);
        assert_eq!(read(dir.path(), &h, 10)?, b"x");
        assert_eq!(std::fs::read_dir(&sub)?.count(), 1);
        Ok(())
    }
}
