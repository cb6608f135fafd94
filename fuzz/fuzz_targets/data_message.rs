//! What a peer sends on a direct connection or as application data: greetings, the parts
//! of `PeerGroupSendData` messages and the upgrade messages of a relayed direct connection
//! (fed to both ends' upgrade machines), as a sequence of frames (kind, u16 length, payload).
//! Nothing may panic; every message handed on is whole and within the size limit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peergroup_proto::data::{
    decode_direct_hello, Reassembler, KIND_DATA, KIND_DIRECT_HELLO, MAX_DATA_LEN,
};
use peergroup_proto::upgrade::{Candidate, Side, Upgrade, UpgradeMessage, KIND_DIRECT_UPGRADE};

fuzz_target!(|data: &[u8]| {
    let mut parts = Reassembler::new();
    let mut ends = [Upgrade::dialer(0, [1; 16], vec![]), Upgrade::acceptor(vec![])];
    let mut now = 0;
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let payload = Bytes::copy_from_slice(&rest[3..3 + len]);
        match rest[0] {
            KIND_DIRECT_HELLO => {
                let _ = decode_direct_hello(&payload);
            }
            KIND_DATA => match parts.push(&payload) {
                Ok(Some(msg)) => assert!(msg.data.len() <= MAX_DATA_LEN),
                Ok(None) => assert!(parts.in_progress()),
                // A violation closes the connection: start over, as a new one would.
                Err(_) => parts = Reassembler::new(),
            },
            KIND_DIRECT_UPGRADE => {
                if let Ok(msg) = UpgradeMessage::decode(&payload) {
                    assert_eq!(UpgradeMessage::decode(&msg.encode()), Ok(msg.clone()));
                    now += 100;
                    for end in &mut ends {
                        // A violation closes the connection; the machine stays usable.
                        let _ = end.message(now, msg.clone());
                        end.candidate_up(now, Candidate { side: Side::Dialer, attempt: 1 });
                        end.tick(now);
                        while end.poll_action().is_some() {}
                    }
                }
            }
            _ => {}
        }
        rest = &rest[3 + len..];
    }
});
