//! Reconciliation messages from peers (negentropy), to both roles: a responder answering a
//! query, and an initiator stepping on an answer. Neither may panic or loop; errors are
//! fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::reconcile::{ItemKey, Reconciler};

fn items() -> Vec<ItemKey> {
    (0u32..300)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            ItemKey::synthetic(id, 1 + i % 3)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, message)) = data.split_first() else {
        return;
    };
    let mut r = Reconciler::new(items()).expect("distinct items");
    if mode & 1 == 0 {
        let _ = r.respond(message);
    } else {
        let _ = r.initiate();
        let _ = r.step(message);
    }
});
