//! What a `peergroupd` client sends, decoded as the service does: frames split off a byte
//! stream, each decoded strictly. The decoder must never panic, refuse an oversized prefix
//! before reading on, and what it accepts must re-encode to exactly the bytes it came from.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_core::service::proto::{split_frame, ClientFrame, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match split_frame(rest) {
            Ok(Some((body, used))) => {
                if let Ok(frame) = ClientFrame::decode(body) {
                    assert_eq!(frame.encode(), &rest[..used], "not canonical");
                }
                assert_eq!(used, HEADER_LEN + body.len());
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
