//! Crash-safe file writes: a temporary file, fsync, rename, fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IdentityError, Result};

/// Mode of private files (keys, metadata).
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the store's directories.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// A name no other writer will pick: process id plus random bits.
pub fn unique_suffix() -> String {
    let mut r = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
    format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(r))
}

/// Creates `dir` and its parents with mode 0700 where they do not exist.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(|e| IdentityError::io("create directory", dir, e))
}

/// Writes a new file in full and makes it durable before returning (no rename).
pub fn write_new_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| IdentityError::io("create", path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| IdentityError::io("write", path, e))
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = dir_of(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let result = write_new_durable(&tmp, bytes, mode)
        .and_then(|_| fs::rename(&tmp, path).map_err(|e| IdentityError::io("rename", path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// The directory `path` is in: "." for a bare file name (whose `parent()` is empty, and
/// an empty path opens nothing).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Flushes a directory's entries, so a rename in it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IdentityError::io("sync directory", dir, e))
}

/// A staging directory that is removed unless it is renamed into place.
pub struct StagingDir {
    path: Option<PathBuf>,
}

impl StagingDir {
    /// Creates `.staging-…` inside `parent`.
    pub fn new(parent: &Path) -> Result<Self> {
        let path = parent.join(format!(".staging-{}", unique_suffix()));
        fs::DirBuilder::new()
            .mode(PRIVATE_DIR_MODE)
            .create(&path)
            .map_err(|e| IdentityError::io("create directory", &path, e))?;
        Ok(StagingDir { path: Some(path) })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("present until committed")
    }

    /// Makes the staged directory durable and renames it to `dest`, which must not exist.
    pub fn commit(mut self, dest: &Path) -> std::io::Result<()> {
        let path = self.path.take().expect("present until committed");
        let sync = File::open(&path).and_then(|d| d.sync_all());
        let result = sync.and_then(|_| {
            if dest.exists() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            fs::rename(&path, dest)
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&path);
        }
        result
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("e1.xml")), Path::new("."));
        assert_eq!(dir_of(Path::new("./e1.xml")), Path::new("."));
        assert_eq!(dir_of(Path::new("out/e1.xml")), Path::new("out"));
        assert_eq!(dir_of(Path::new("/e1.xml")), Path::new("/"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", PRIVATE_FILE_MODE).unwrap();
        write_atomic(&p, b"two", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn staging_dir_vanishes_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StagingDir::new(dir.path()).unwrap();
            fs::write(s.path().join("x"), b"x").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let s = StagingDir::new(dir.path()).unwrap();
        fs::write(s.path().join("x"), b"x").unwrap();
        s.commit(&dir.path().join("final")).unwrap();
        assert_eq!(fs::read(dir.path().join("final/x")).unwrap(), b"x");
        let s = StagingDir::new(dir.path()).unwrap();
        fs::write(s.path().join("x"), b"y").unwrap();
        assert!(s.commit(&dir.path().join("final")).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
