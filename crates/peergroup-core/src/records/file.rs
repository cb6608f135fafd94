//! Reading and writing database export files (`PeerGroupExportDatabase`,
//! `PeerGroupImportDatabase`); the format and its parser are `peergroup_proto`'s
//! [`records::dbfile`](super::dbfile).

use super::dbfile::{encode, parse, DatabaseFile, MAX_DATABASE_FILE_BYTES};
use super::record::Record;
use crate::error::{CoreError, Result};

/// The permissions of a written database file: the owner's only (it holds the group's data).
pub const FILE_MODE: u32 = 0o600;

/// Reads and [`parse`]s the file at `path`; a file over [`MAX_DATABASE_FILE_BYTES`] is refused
/// before it is read. File-system errors are the identity layer's I/O errors (their
/// HRESULTs are Windows' file errors).
pub fn read(path: &std::path::Path) -> Result<DatabaseFile> {
    use std::io::Read;
    let io = |op: &'static str, e: std::io::Error| {
        CoreError::from(crate::identity::IdentityError::Io {
            op,
            path: path.display().to_string(),
            source: e,
        })
    };
    let file = std::fs::File::open(path).map_err(|e| io("open", e))?;
    let mut bytes = Vec::new();
    file.take(MAX_DATABASE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io("read", e))?;
    Ok(parse(&bytes)?)
}

/// Writes `records` of `group` exported by `member` to `path`, atomically and durably
/// (temporary file, fsync, rename, directory fsync).
pub fn write(path: &std::path::Path, group: &str, member: &str, records: &[Record]) -> Result<()> {
    crate::identity::fsutil::write_atomic(path, &encode(group, member, records), FILE_MODE)?;
    Ok(())
}
