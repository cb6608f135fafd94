//! `cargo xtask bench reconcile`: range-based set reconciliation of (record id, version)
//! sets, in memory: rounds, bytes exchanged and time, for n = 10³, 10⁵, 10⁶ records and
//! d = 0, 1 and 1 % differences. Prints a table; asserts nothing.

use std::time::Instant;

use peergroup_proto::reconcile::{run_local, ItemKey, Reconciler};

fn key(i: u64, version: u32) -> ItemKey {
    // Spread ids like random GUIDs.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&h.to_be_bytes());
    id[8..].copy_from_slice(&i.to_be_bytes());
    ItemKey::synthetic(id, version)
}

fn main() {
    println!(
        "{:>9} {:>9} {:>7} {:>12} {:>10} {:>10}",
        "n", "d", "rounds", "bytes", "ms", "found"
    );
    for n in [1_000u64, 100_000, 1_000_000] {
        for d in [0u64, 1, n / 100] {
            let a: Vec<ItemKey> = (0..n).map(|i| key(i, 1)).collect();
            // B differs from A in d records: half B lacks, half B holds at a newer version.
            let b: Vec<ItemKey> = (0..n)
                .filter(|i| !(i % 2 == 0 && i / 2 < d.div_ceil(2) && d > 0))
                .map(|i| {
                    if i % 2 == 1 && i / 2 < d / 2 {
                        key(i, 2)
                    } else {
                        key(i, 1)
                    }
                })
                .collect();
            let t = Instant::now();
            let mut ra = Reconciler::new(a).expect("items");
            let mut rb = Reconciler::new(b).expect("items");
            let built = t.elapsed();
            let t = Instant::now();
            let (have, need, rounds, bytes) = run_local(&mut ra, &mut rb).expect("reconcile");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "{n:>9} {d:>9} {rounds:>7} {bytes:>12} {ms:>10.2} {:>10}   (sets built in {:.0} ms)",
                have.len() + need.len(),
                built.as_secs_f64() * 1e3
            );
        }
    }
}
