//! # Opening the index
//!
//! Tells a damaged index from a disk that does not work:
//!
//! - sled's open runs under `catch_unwind`: garbage in its files can make it
//!   panic (`tried to serialize Uninitialized`), which must not take the
//!   daemon down at every start (reproduced: an index of several segments
//!   without its `snap.*` file and a changed byte at the start of `db`);
//! - right after the open, still under `catch_unwind`, every record of every
//!   tree is read once ([`verify`]), so that damage sled meets only when it
//!   reads a page is found here, not by the running daemon;
//! - an error that holds an I/O error of the environment (no space, quota,
//!   read-only, permission, EIO, the lock held by another process; see
//!   [`crate::fsutil::disk_condition`]) is returned as is: the index is not
//!   touched, and the caller retries later;
//! - anything else (sled's `Corruption`, a panic, a wrong schema version, an
//!   index directory that held data but comes up empty, i.e. truncated)
//!   moves the directory aside to `index.unreadable-<unix time>` (never
//!   deleted), says so in a warning, and opens a fresh index.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use tracing::{info, warn};

use super::SCHEMA_VERSION;
use crate::fsutil::disk_condition;

const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema-version";
/// sled's default page cache is 1 GiB; a desktop daemon must stay small,
/// and the index (no message bodies) is small too.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// What a start needs free on the disk: sled writes a new segment and a
/// snapshot when it opens.
const PROBE_BYTES: usize = 256 * 1024;

/// An open sled database.
pub(super) struct Opened {
    pub db: sled::Db,
    /// Created just now (new, or after moving a damaged one aside).
    pub fresh: bool,
}

/// Fail with the I/O error when the data directory cannot take a small
/// write (full, read-only, refused): better than letting sled fail halfway.
pub(super) fn probe_space(data_dir: &Path) -> Result<()> {
    use std::io::Write as _;
    let path = data_dir.join(crate::fsutil::temp_name("space-probe"));
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_data()
    })();
    let _ = std::fs::remove_file(&path);
    result.with_context(|| format!("Cannot write to {}", data_dir.display()))
}

/// Open the index at `index`, moving it aside and starting afresh when it
/// cannot be parsed. Errors are disk faults (see the module doc).
pub(super) fn open_index(data_dir: &Path, index: &Path) -> Result<Opened> {
    crate::fsutil::create_private_dir(index)?;
    let had_data = holds_data(index);
    let why = match try_sled(index) {
        Ok((db, Some(v))) if v == SCHEMA_VERSION => {
            info!("Opened the index at {}.", index.display());
            return Ok(Opened { db, fresh: false });
        }
        Ok((_, Some(v))) => {
            anyhow!("index schema version {v}, this daemon reads {SCHEMA_VERSION}")
        }
        Ok((db, None)) if !had_data => {
            write_schema(&db)?;
            info!("Created a new index at {}.", index.display());
            return Ok(Opened { db, fresh: true });
        }
        Ok((_, None)) => {
            anyhow!("it held data but sled found nothing in it (truncated or damaged)")
        }
        Err(e) if disk_condition(&e).is_some() => return Err(e),
        Err(e) => e,
    };
    let aside = aside_name(data_dir);
    warn!(
        "The index at {} cannot be read ({why:#}); moving it to {} and rebuilding it from the \
         message files, their manifests and the servers.",
        index.display(),
        aside.display()
    );
    std::fs::rename(index, &aside).with_context(|| {
        format!(
            "Cannot move the unreadable index aside to {}",
            aside.display()
        )
    })?;
    crate::fsutil::create_private_dir(index)?;
    let (db, _) = try_sled(index)?;
    write_schema(&db)?;
    info!("Created a new index at {}.", index.display());
    Ok(Opened { db, fresh: true })
}

/// Open sled, read the schema version and every record ([`verify`]); a
/// panic inside sled (in its open or in those reads) is made an error.
fn try_sled(index: &Path) -> Result<(sled::Db, Option<u32>)> {
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<_> {
        let db = sled::Config::new()
            .path(index)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace)
            .open()
            .with_context(|| format!("Cannot open sled at {}", index.display()))?;
        let version = db.open_tree(META_TREE)?.get(SCHEMA_KEY)?.map(|v| {
            <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .unwrap_or(u32::MAX)
        });
        verify(&db)?;
        Ok((db, version))
    }));
    match opened {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            bail!("sled panicked while reading it: {what}")
        }
    }
}

/// Read every record of every tree once, so that damage sled finds only
/// when it reads a page (an error, or a panic in the caller's
/// `catch_unwind`) is found here, at the open, and not by the first scan
/// of the running daemon. The index holds no message bodies: this is quick.
fn verify(db: &sled::Db) -> Result<()> {
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        for entry in tree.iter() {
            entry.with_context(|| {
                format!(
                    "Cannot read the tree {:?} of the index",
                    String::from_utf8_lossy(&name)
                )
            })?;
        }
    }
    Ok(())
}

fn write_schema(db: &sled::Db) -> Result<()> {
    db.open_tree(META_TREE)?
        .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
    db.flush().context("Cannot flush the new index")?;
    Ok(())
}

/// Whether sled's files in `index` hold any bytes.
fn holds_data(index: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(index) else {
        return false;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "conf")
        .any(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
}

fn aside_name(data_dir: &Path) -> std::path::PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = 0u32;
    loop {
        let name = if n == 0 {
            format!("index.unreadable-{secs}")
        } else {
            format!("index.unreadable-{secs}.{n}")
        };
        let path = data_dir.join(name);
        if !path.exists() {
            return path;
        }
        n += 1;
    }
}

/// Open with sled in a test, waiting while the lock of a just-dropped
/// handle is still held (sled's flusher thread lets go of the file a moment
/// after the last `Db` is dropped).
#[cfg(test)]
pub(super) fn open_when_free(config: &sled::Config) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match config.open() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

#[cfg(test)]
pub(super) fn set_schema(index: &Path, version: u32) -> Result<()> {
    let db = open_when_free(&sled::Config::new().path(index))?;
    db.open_tree(META_TREE)?
        .insert(SCHEMA_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

/// Replace `index` with a sled index that makes sled 0.34.7 panic inside
/// its open (`tried to serialize Uninitialized`), kept under
/// `testdata/sled-panics` (`db` compressed with zstd). It was made with the
/// recipe that reproduced the panic: an index of several segments (9,000
/// records of 20-116 bytes in one tree, flushed every 300), reopened three
/// times with 200 more records each (so the segment at the start of the
/// file is no longer the first of the log), its `snap.*` file removed and
/// byte 0 of `db` set to `!`. sled then rebuilds its page table from the
/// segments it can read, leaves holes for the pages of the unreadable one,
/// and panics writing that table as its new snapshot. The recipe depends on
/// how sled's background flushes lay the segments out, so it made sled
/// panic only some of the time; the saved result does every time.
#[cfg(test)]
pub(super) fn install_index_that_panics(index: &Path) -> Result<()> {
    const DB: &[u8] = include_bytes!("testdata/sled-panics/db.zst");
    const CONF: &[u8] = include_bytes!("testdata/sled-panics/conf");
    std::fs::remove_dir_all(index)?;
    std::fs::create_dir_all(index)?;
    std::fs::write(index.join("db"), zstd::decode_all(DB)?)?;
    std::fs::write(index.join("conf"), CONF)?;
    Ok(())
}

/// Whether sled's own open panics on `index` (a copy is opened, the
/// original is left alone).
#[cfg(test)]
pub(super) fn sled_panics_on(index: &Path) -> Result<bool> {
    let copy = tempfile::tempdir()?;
    for entry in std::fs::read_dir(index)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name()))?;
        }
    }
    let opened = std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(copy.path())
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace)
            .open()
            .map(drop)
    });
    Ok(opened.is_err())
}
