//! # Durable file writes
//!
//! What cannot be fetched again (account settings, the fallback secrets
//! file, message files) is written the one way that survives a crash at any
//! moment: a temporary file in the same directory, fsync, rename over the
//! target, fsync of the directory. A reader sees the old file or the new one,
//! never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Write `bytes` to `path` atomically, the file created with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    // One atomic write at a time in this process, so `.{name}.{pid}.tmp`
    // is never shared: settings and secrets are small and rarely written,
    // and a predictable name lets a crash test stop us exactly at the rename.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("Cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("Cannot write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("Cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("Cannot rename {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Remove `path` durably; a missing file is not an error.
pub fn remove_durably(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("Cannot remove {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsync a directory so that a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("Cannot sync directory {}", dir.display()))
}

/// Create a directory (and its parents) readable by the user only. An
/// existing directory that others can read or enter is tightened to 0700,
/// and the log says so.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("Cannot create directory {}", dir.display()))?;
    let mode = fs::metadata(dir)
        .with_context(|| format!("Cannot read the permissions of {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Cannot make {} private (mode 0700)", dir.display()))?;
        tracing::warn!(
            "{} was readable by others (mode {:o}); it is now private to you (mode 700).",
            dir.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// A temporary file name for `name` that no other writer in this or any
/// other process picks: `.{name}.{pid}.{counter}.{random}.tmp` (message
/// files, written by several accounts at once). Files named
/// `.*.tmp` are what [`is_temp_name`] recognises as leftovers.
pub fn temp_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        ".{name}.{}.{n}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Whether a file name is one of [`temp_name`]'s (a leftover after a crash
/// when found at start).
pub fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") && name.ends_with(b".tmp")
}

/// What an I/O failure says about the disk, for errors and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskCondition {
    /// No space left (ENOSPC) or over quota (EDQUOT).
    Full,
    /// Read-only file system, permission refused, an I/O error of the
    /// device, or the index locked by another process: the environment,
    /// not the data, is at fault, and it may come back.
    Unusable,
}

/// The disk condition an error chain holds, if any: an `io::Error` (also
/// inside sled's error) of a kind that says the environment is at fault.
/// Corruption, parse errors and the like give `None`.
pub fn disk_condition(e: &anyhow::Error) -> Option<DiskCondition> {
    e.chain().find_map(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_condition(io);
        }
        if let Some(sled::Error::Io(io)) = cause.downcast_ref::<sled::Error>() {
            return io_condition(io);
        }
        None
    })
}

/// [`disk_condition`] of one `io::Error`.
pub fn io_condition(e: &std::io::Error) -> Option<DiskCondition> {
    use std::io::ErrorKind as K;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const EIO: i32 = 5;
    const EROFS: i32 = 30;
    match e.raw_os_error() {
        Some(ENOSPC | EDQUOT) => return Some(DiskCondition::Full),
        Some(EIO | EROFS) => return Some(DiskCondition::Unusable),
        _ => {}
    }
    match e.kind() {
        K::StorageFull | K::QuotaExceeded => return Some(DiskCondition::Full),
        K::ReadOnlyFilesystem | K::PermissionDenied => return Some(DiskCondition::Unusable),
        _ => {}
    }
    // sled copies I/O errors it keeps into new ones that hold only the kind
    // and the debug text of the original.
    let text = format!("{e:?}");
    if text.contains("StorageFull") || text.contains("No space left") {
        Some(DiskCondition::Full)
    } else if text.contains("Input/output error")
        || text.contains("code: 5,")
        || text.contains("could not acquire lock")
    {
        Some(DiskCondition::Unusable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn atomic_write_replaces_and_sets_mode() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub/file.json");
        write_atomic(&path, b"one", 0o600)?;
        write_atomic(&path, b"two", 0o600)?;
        assert_eq!(fs::read(&path)?, b"two");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().context("parent")?)?.count(), 1);
        remove_durably(&path)?;
        remove_durably(&path)?;
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn temp_names_differ_and_are_recognised() {
        let a = temp_name("x");
        let b = temp_name("x");
        assert_ne!(a, b);
        assert!(is_temp_name(std::ffi::OsStr::new(&a)));
        assert!(!is_temp_name(std::ffi::OsStr::new("x.eml")));
    }

    #[test]
    fn open_private_dir_is_tightened() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().join("data");
        fs::create_dir(&d)?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        create_private_dir(&d)?;
        assert_eq!(fs::metadata(&d)?.permissions().mode() & 0o777, 0o700);
        let fresh = dir.path().join("new/sub");
        create_private_dir(&fresh)?;
        assert_eq!(fs::metadata(&fresh)?.permissions().mode() & 0o777, 0o700);
        Ok(())
    }

    #[test]
    fn disk_conditions_are_classified() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(28)).context("write");
        assert_eq!(disk_condition(&full), Some(DiskCondition::Full));
        // sled's copy of a stored error keeps only the kind and the text.
        let copied = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "Os { code: 28, kind: StorageFull }",
        );
        let sled_full = anyhow::Error::new(sled::Error::Io(copied)).context("Index write failed");
        assert_eq!(disk_condition(&sled_full), Some(DiskCondition::Full));
        let eio = anyhow::Error::new(std::io::Error::from_raw_os_error(5));
        assert_eq!(disk_condition(&eio), Some(DiskCondition::Unusable));
        let corrupt = anyhow::Error::new(sled::Error::Unsupported("bad".into()));
        assert_eq!(disk_condition(&corrupt), None);
        let eof = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(disk_condition(&eof), None);
    }
}
