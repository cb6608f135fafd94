//! Peer names come from callers and from the network; parsing must never panic, and an
//! accepted name must print back to exactly the text it came from.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_identity::PeerName;

fuzz_target!(|text: &str| {
    if let Ok(name) = text.parse::<PeerName>() {
        assert_eq!(name.to_string(), text);
        let again: PeerName = name.to_string().parse().expect("a printed name must parse");
        assert_eq!(again, name);
    }
});
