//! The database export file as `PeerGroupImportDatabase` reads it: parsing never panics, and
//! what parses re-encodes to the same bytes (one form per file: the digest covers it all).
//!
//! Each input is tried as it is and, so that mutations reach the structure behind the
//! checksum, once more with a valid SHA-256 trailer appended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::records::dbfile;
use ring::digest::{digest, SHA256};

fn check(bytes: &[u8]) {
    if let Ok(file) = dbfile::parse(bytes) {
        assert_eq!(
            dbfile::encode(&file.group, &file.member, &file.records),
            bytes,
            "the file format is canonical"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(digest(&SHA256, data).as_ref());
    check(&sealed);
});
