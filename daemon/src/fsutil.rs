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

/// Create a directory (and its parents) readable by the user only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("Cannot create directory {}", dir.display()))
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
}
