//! `PeerGroupImportConfig` takes a configuration document and a password from the caller:
//! the envelope parser, the sealed blob, the decryption path and the payload decoder must
//! each fail cleanly on any input, and a payload that decodes re-encodes to one that decodes
//! to the same configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::config_export::{parse_envelope, GroupConfig};
use peergroup_identity::export::SealedExport;
use peergroup_identity::PeerName;

/// Opening runs PBKDF2 for the declared rounds; above this the fuzzer would crawl.
const MAX_FUZZ_ITERATIONS: u32 = 2000;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok((_, _, blob)) = parse_envelope(text) {
            let cheap = SealedExport::decode(&blob)
                .map(|s| s.iterations() <= MAX_FUZZ_ITERATIONS)
                .unwrap_or(true);
            if cheap {
                let _ = GroupConfig::open(text, "password");
            }
        }
    }
    let identity: PeerName = "0000000000000000000000000000000000000000.fuzz"
        .parse()
        .expect("a valid name");
    let group: PeerName = "1111111111111111111111111111111111111111.fuzz"
        .parse()
        .expect("a valid name");
    if let Ok(config) = GroupConfig::decode_payload(identity.clone(), group.clone(), bytes) {
        let again = GroupConfig::decode_payload(identity, group, &config.encode_payload())
            .expect("our own payload decodes");
        assert_eq!(again.encode_payload(), config.encode_payload());
    }
});
