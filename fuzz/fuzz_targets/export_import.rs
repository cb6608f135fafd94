//! `PeerIdentityImport` takes an export document and a password from the caller: the document
//! parser, the sealed-blob decoder, the decryption path and the payload decoder must each fail
//! cleanly on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_identity::documents;
use peergroup_identity::export::{ExportPayload, SealedExport};

/// Opening runs PBKDF2 for the declared rounds; above this the fuzzer would crawl.
const MAX_FUZZ_ITERATIONS: u32 = 2000;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = documents::parse_export(text);
    }
    if let Ok(sealed) = SealedExport::decode(bytes) {
        if sealed.iterations() <= MAX_FUZZ_ITERATIONS {
            let _ = sealed.open("0.fuzz", "password");
        }
    }
    let _ = ExportPayload::decode(bytes);
});
