//! What a `peergroupd` client sends, decoded as the service does: frames split off a byte
//! stream, each decoded strictly. The decoder must never panic, refuse an oversized prefix
//! before reading on, and what it accepts must survive a round trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_core::service::proto::{split_frame, ClientFrame, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match split_frame(rest) {
            Ok(Some((body, used))) => {
                if let Ok(frame) = ClientFrame::decode(body) {
                    let again = frame.encode();
                    let back = ClientFrame::decode(&again[HEADER_LEN..]).expect("re-decodes");
                    assert_eq!(back, frame, "round trip");
                }
                assert_eq!(used, HEADER_LEN + body.len());
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
