//! The database export file of `PeerGroupExportDatabase` and `PeerGroupImportDatabase`: a
//! snapshot of one member's record database of one group.
//!
//! **Format** (version 1), big-endian, nothing may follow:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `PGDB` |
//! | 1 | format version, 1 |
//! | 2 + n | the group's peer name, UTF-8, 1 ..= [`MAX_PEER_NAME_BYTES`] |
//! | 2 + n | the member's (exporting identity's) peer name, UTF-8, same bounds |
//! | per record: 1 + 4 + n | tag `1`, length, [`Record::encode`] (1 ..= [`MAX_RECORD_BYTES`]) |
//! | 1 | tag `0`: the end of the records |
//! | 8 | how many records precede |
//! | 32 | SHA-256 of every byte before it |
//!
//! The digest makes truncation and stray bytes detectable before anything is decoded; the
//! count says the end tag is the real end. [`parse`] is pure and total (a fuzz target): any
//! input gives a [`DatabaseFile`] or a [`FileError`], never a panic.
//!
//! **Rules** (Microsoft's, and ours where it is silent), enforced by the group's
//! `export_database` and `import_database`:
//! * both are refused once the group is online (`PEER_E_GROUP_IN_USE`);
//! * export writes the tombstones and live records, not those expired, atomically (temporary
//!   file, fsync, rename), so a reader never sees half a file;
//! * import accepts only a file of the same group and the same member
//!   ([`FileError`], `PEER_E_INVALID_DATABASE`); every record must pass
//!   [`Record::verify`] against the group root, expired ones are skipped, and the records are
//!   stored in one transaction under the conflict order: a bad file changes nothing.

use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};

use super::record::{Record, MAX_PEER_NAME_BYTES, MAX_RECORD_BYTES};
use crate::error::{DatabaseFileError as FileError, FileName, Result};
use crate::identity::gmc::GroupRootCertificate;

/// The first bytes of a database file.
pub const MAGIC: [u8; 4] = *b"PGDB";
/// The format this version writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Largest database file read, in bytes (larger is refused before it is read).
pub const MAX_DATABASE_FILE_BYTES: u64 = 1 << 30;

const TAG_RECORD: u8 = 1;
const TAG_END: u8 = 0;
/// Magic, version, two empty-name length prefixes, end tag, count, digest.
const MIN_FILE_BYTES: usize = 4 + 1 + 2 + 2 + 1 + 8 + SHA256_OUTPUT_LEN;

/// A parsed database file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseFile {
    /// The group's peer name, as written.
    pub group: String,
    /// The exporting member's peer name, as written.
    pub member: String,
    /// The records, in file order (export writes them by id).
    pub records: Vec<Record>,
}

/// How many records pass between two progress reports.
const PROGRESS_EVERY: usize = 256;

/// The file bytes for `records` of `group` as exported by `member`.
pub fn encode(group: &str, member: &str, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        MIN_FILE_BYTES
            + group.len()
            + member.len()
            + records.iter().map(|r| 5 + r.encoded_len()).sum::<usize>(),
    );
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    put_name(&mut out, group);
    put_name(&mut out, member);
    for r in records {
        let bytes = r.encode();
        out.push(TAG_RECORD);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out.push(TAG_END);
    out.extend_from_slice(&(records.len() as u64).to_be_bytes());
    let sum = digest(&SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    out
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    // Peer names are far below u16::MAX bytes (`parse` enforces MAX_PEER_NAME_BYTES).
    let b = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// Parses a database file strictly: size bound, digest first (so a truncated or altered file
/// is refused before anything is decoded), then magic, version, names, every record with
/// [`Record::decode`], the end tag, the count, and no stray bytes. Never panics.
pub fn parse(bytes: &[u8]) -> Result<DatabaseFile, FileError> {
    if bytes.len() as u64 > MAX_DATABASE_FILE_BYTES {
        return Err(FileError::TooLarge(bytes.len() as u64));
    }
    if bytes.len() < MIN_FILE_BYTES {
        return Err(FileError::Truncated);
    }
    let (body, sum) = bytes.split_at(bytes.len() - SHA256_OUTPUT_LEN);
    if bytes[..4] != MAGIC {
        return Err(FileError::NotADatabaseFile);
    }
    if digest(&SHA256, body).as_ref() != sum {
        return Err(FileError::Checksum);
    }
    let mut r = Reader(&body[4..]);
    let version = r.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(FileError::Format(version));
    }
    let group = r.name(FileName::Group)?;
    let member = r.name(FileName::Member)?;
    let mut records = Vec::new();
    loop {
        match r.take(1)?[0] {
            TAG_RECORD => {
                let n = u32::from_be_bytes(r.array()?) as usize;
                if n == 0 || n > MAX_RECORD_BYTES {
                    return Err(FileError::RecordLength {
                        index: records.len(),
                        len: n,
                    });
                }
                let record = Record::decode(r.take(n)?).map_err(|source| FileError::Record {
                    index: records.len(),
                    source,
                })?;
                records.push(record);
            }
            TAG_END => break,
            tag => return Err(FileError::UnknownTag(tag)),
        }
    }
    let count = u64::from_be_bytes(r.array()?);
    if count != records.len() as u64 {
        return Err(FileError::Count {
            counted: count,
            held: records.len() as u64,
        });
    }
    if !r.0.is_empty() {
        return Err(FileError::Trailing(r.0.len()));
    }
    Ok(DatabaseFile {
        group,
        member,
        records,
    })
}

impl DatabaseFile {
    /// Checks the file for an import into `group` by `member` and returns the records to
    /// store: the file must name the same group and member, every record must pass
    /// [`Record::verify`] against `grc` at `now_ms` (which includes [`Record::check`]), and
    /// records expired at `now_ms` are left out. The first failure refuses the whole file.
    pub fn records_to_import(
        self,
        group: &str,
        member: &str,
        grc: &GroupRootCertificate,
        now_ms: i64,
    ) -> Result<Vec<Record>> {
        self.records_to_import_with(group, member, grc, now_ms, &mut |_, _| {})
    }

    /// [`DatabaseFile::records_to_import`], calling `progress(verified, total)` as the
    /// records are verified (the long part of an import: one signature check each).
    pub fn records_to_import_with(
        self,
        group: &str,
        member: &str,
        grc: &GroupRootCertificate,
        now_ms: i64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<Record>> {
        if self.group != group {
            return Err(FileError::OtherGroup {
                file: self.group,
                group: group.to_owned(),
            }
            .into());
        }
        if self.member != member {
            return Err(FileError::OtherMember {
                file: self.member,
                member: member.to_owned(),
            }
            .into());
        }
        let total = self.records.len() as u64;
        let mut out = Vec::with_capacity(self.records.len());
        for (i, record) in self.records.into_iter().enumerate() {
            if i % PROGRESS_EVERY == 0 {
                progress(i as u64, total);
            }
            record.verify(grc, now_ms).map_err(|e| {
                tracing::warn!(record = i, error = %e, "database import: a record fails verification");
                e
            })?;
            if !record.is_expired(now_ms) {
                out.push(record);
            }
        }
        progress(total, total);
        Ok(out)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FileError> {
        if self.0.len() < n {
            return Err(FileError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FileError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn name(&mut self, which: FileName) -> Result<String, FileError> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        if n == 0 || n > MAX_PEER_NAME_BYTES {
            return Err(FileError::BadName(which));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| FileError::BadName(which))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult;
    use proptest::prelude::*;

    fn record(id: u8, flags: u32) -> Record {
        Record {
            record_type: [7; 16],
            id: [id; 16],
            id_nonce: [0; 16],
            version: 1,
            flags,
            creator: "a.alice".into(),
            modifier: "a.alice".into(),
            attributes: String::new(),
            created: 1,
            expires: 2,
            modified: 1,
            data: if flags & super::super::record::FLAG_DELETED != 0 {
                Vec::new()
            } else {
                vec![id; 3]
            },
            security: vec![1, 2, 3],
        }
    }

    fn sample() -> Vec<u8> {
        encode(
            "g.group",
            "a.alice",
            &[record(1, 0), record(2, 2), record(3, 0)],
        )
    }

    fn refused(bytes: &[u8]) {
        match parse(bytes) {
            Err(e) => {
                let e = crate::error::ProtoError::from(e);
                assert_eq!(e.hresult(), hresult::PEER_E_INVALID_DATABASE)
            }
            other => panic!("{} bytes gave {other:?}", bytes.len()),
        }
    }

    #[test]
    fn round_trips() {
        let f = parse(&sample()).unwrap();
        assert_eq!(f.group, "g.group");
        assert_eq!(f.member, "a.alice");
        assert_eq!(f.records, vec![record(1, 0), record(2, 2), record(3, 0)]);
        let empty = parse(&encode("g", "m", &[])).unwrap();
        assert!(empty.records.is_empty());
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample();
        for n in 0..bytes.len() {
            refused(&bytes[..n]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        refused(&longer);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            refused(&b);
        }
    }

    #[test]
    fn a_valid_digest_over_a_wrong_structure_is_refused() {
        // Rebuild the digest after each structural change: the parser must still refuse.
        let reseal = |mut body: Vec<u8>| {
            let sum = digest(&SHA256, &body);
            body.extend_from_slice(sum.as_ref());
            body
        };
        let bytes = sample();
        let body = bytes[..bytes.len() - SHA256_OUTPUT_LEN].to_vec();
        // The count is wrong.
        let mut b = body.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        refused(&reseal(b));
        // Another version.
        let mut b = body.clone();
        b[4] = 2;
        refused(&reseal(b));
        // Bytes between the end tag and the count are not allowed (count shifts).
        let mut b = body.clone();
        b.insert(n - 8, 0);
        refused(&reseal(b));
        // An empty group name.
        refused(&reseal(
            [&MAGIC[..], &[1, 0, 0, 0, 1, b'm', 0], &[0; 8]].concat(),
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_resealed_mutations(
            cut in 0usize..400, byte in any::<u8>(), at in 0usize..400
        ) {
            let bytes = sample();
            let mut body = bytes[..bytes.len() - SHA256_OUTPUT_LEN].to_vec();
            let at = at % body.len();
            body[at] = byte;
            body.truncate(cut.max(5).min(body.len()));
            let sum = digest(&SHA256, &body);
            body.extend_from_slice(sum.as_ref());
            let _ = parse(&body);
        }
    }
}
