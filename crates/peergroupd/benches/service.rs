//! `cargo xtask bench service`: the cost of a call through `peergroupd` next to the same call
//! in-process, on one machine. Prints figures; asserts none.
//!
//! One group, created in a temporary home; the daemon serves it on a temporary socket in this
//! process (on a thread and runtime of its own, the same code as the binary), and a
//! `Peergroup` served by it calls it over the Unix socket from the caller's thread. Timed per call: `PeerGroupGetStatus` (status of an open handle) and
//! `PeerGroupAddRecord` (a 1 KiB record, stored durably: one SQLite transaction), each
//! `BENCH_SERVICE_CALLS` times (default 2 000 and a tenth as many adds), after a warm-up.

use std::time::{Duration, Instant};

use peergroup_core::identity::IdentityStore;
use peergroup_core::properties::GroupProperties;
use peergroup_core::{NewRecord, Peergroup};
use peergroupd::{current_uid, Background};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record() -> NewRecord {
    NewRecord {
        record_type: [0x5e; 16],
        attributes: String::new(),
        expires_ms: now_ms() + 3_600_000,
        data: vec![0xA5; 1024],
    }
}

/// Prints p50/p99/mean of `samples`; returns (p50, p99).
fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<30} n={:<5} p50={:>8.1} µs  p99={:>8.1} µs  mean={:>8.1} µs",
        samples.len(),
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
    );
    (pct(0.5), pct(0.99))
}

fn time(n: usize, mut call: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        call();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call();
        samples.push(t.elapsed());
    }
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_SERVICE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let adds = (n / 10).max(10);
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(dir.path().join("home")).unwrap();
    let me = store.create(Some("bench"), Some("Bench"), None).unwrap();
    let listen = Some("127.0.0.1:0".parse().unwrap());
    let pg = Peergroup::embedded(store, listen, Default::default());
    let g = pg
        .create_group(GroupProperties {
            classifier: "bench".into(),
            friendly_name: "Bench".into(),
            creator_peer_name: me.to_string(),
            ..Default::default()
        })
        .unwrap();
    let group = g.group_name().clone();

    // In-process: the handle's own calls.
    let local_status = time(n, || {
        g.status().unwrap();
    });
    let local_add = time(adds, || {
        g.add_record(record()).unwrap();
    });
    g.close().await.unwrap();

    // Through the service, over its Unix socket.
    let socket = dir.path().join("run").join("peergroupd.sock");
    let home = || IdentityStore::open(dir.path().join("home")).unwrap();
    let service =
        Background::start(home(), listen, socket.clone(), current_uid().unwrap()).unwrap();
    let client = Peergroup::through_service(home(), listen, Default::default(), socket).unwrap();
    let h = client.open_group(Some(&me), &group).unwrap();
    let remote_status = time(n, || {
        h.status().unwrap();
    });
    let remote_add = time(adds, || {
        h.add_record(record()).unwrap();
    });
    h.close().await.unwrap();
    drop(client);
    service.stop().unwrap();

    println!(
        "per call, in-process vs through peergroupd ({} cores):",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let (ls50, ls99) = report("PeerGroupGetStatus in-process", local_status);
    let (rs50, rs99) = report("PeerGroupGetStatus service", remote_status);
    let (la50, la99) = report("PeerGroupAddRecord in-process", local_add);
    let (ra50, ra99) = report("PeerGroupAddRecord service", remote_add);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let over = |a: Duration, b: Duration| us(a) - us(b);
    println!(
        "service overhead: GetStatus p50 {:.1} µs, p99 {:.1} µs; AddRecord p50 {:.1} µs, p99 {:.1} µs \
         (target < 50 µs p99 through the service)",
        over(rs50, ls50),
        over(rs99, ls99),
        over(ra50, la50),
        over(ra99, la99),
    );
}
