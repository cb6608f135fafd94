//! Records from peers and from the database file: decoding never panics, and what decodes
//! re-encodes to the same bytes (the encoding is canonical, so signatures and the conflict
//! order see one form of each record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::records::record::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(record.encode(), data, "the codec is canonical");
        assert_eq!(record.encoded_len(), data.len());
        // What a verifier does next must not panic either.
        let _ = record.security_parts();
        let _ = record.signed_bytes();
    }
});
