//! Presence records' payloads arrive from every member (JSON: node id, addresses,
//! attributes, time of change). Decoding must refuse anything malformed or over its bounds
//! without panicking, and a payload that decodes must round-trip through `encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::members::{Presence, MAX_PRESENCE_ADDRS};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Presence::decode(data) {
        assert!(p.addrs.len() <= MAX_PRESENCE_ADDRS);
        let again = Presence::decode(&p.encode()).expect("an encoding decodes");
        assert_eq!(again, p);
        assert!(!again.differs_from(&p));
    }
});
