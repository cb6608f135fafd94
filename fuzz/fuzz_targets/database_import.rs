//! The database export file as `PeerGroupImportDatabase` reads it: parsing never panics, and
//! what parses re-encodes to the same bytes (one form per file: the digest covers it all).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_core::records::dbfile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = dbfile::parse(data) {
        assert_eq!(
            dbfile::encode(&file.group, &file.member, &file.records),
            data,
            "the file format is canonical"
        );
    }
});
