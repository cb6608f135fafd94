//! Group messages from peers: decoding never panics, and what decodes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::wire::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    if let Ok(msg) = Message::decode(kind, payload) {
        let (k, bytes) = msg.encode();
        assert_eq!(k, kind);
        assert_eq!(bytes, payload, "the codec is canonical");
    }
});
