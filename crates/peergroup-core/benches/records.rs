//! `cargo xtask bench records`: record replication between real members over QUIC on
//! loopback. Prints, asserting nothing:
//!
//! - flood latency: a record added at one of 10 members until the last member reports it
//!   (record-changed event), p50/p99 over 50 records;
//! - join time: a new member connects to a group holding 10k and 100k records of 1 KiB and
//!   holds them all (measured in its own process), with that process's resident memory.
//!
//! `cargo xtask bench records` also runs the simulator's flood scenarios (100 and 1000
//! members, 10–50 ms links) and the reconciliation table.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peergroup_core::identity::keys::verify_signature;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::machine::{RecordChange, STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{Event, EventFilter, EventItem, EventKind, GroupHandle, NewRecord, Peergroup};

const BOTH: u32 = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
const TYPE: [u8; 16] = [0xbe; 16];
const JOINER: &str = "PEERGROUP_BENCH_JOINER";

struct Member {
    home: tempfile::TempDir,
    pg: Peergroup,
    id: PeerName,
}

fn listen() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

fn member(name: &str) -> Member {
    let home = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(home.path()).unwrap();
    let id = store.create(Some(name), Some(name), None).unwrap();
    Member {
        pg: Peergroup::new(store, listen()),
        home,
        id,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record(i: usize, size: usize) -> NewRecord {
    let mut data = vec![0u8; size];
    data[..8].copy_from_slice(&(i as u64).to_be_bytes());
    NewRecord {
        record_type: TYPE,
        attributes: String::new(),
        expires_ms: now_ms() + 24 * 3_600_000,
        data,
    }
}

async fn create(m: &Member) -> GroupHandle {
    let g =
        m.pg.create_group(GroupProperties {
            classifier: "bench".into(),
            friendly_name: "Bench".into(),
            creator_peer_name: m.id.to_string(),
            ..Default::default()
        })
        .unwrap();
    g.connect().await.unwrap();
    g.wait_status(STATUS_LISTENING, Duration::from_secs(10))
        .await
        .unwrap();
    g
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn flood(members: usize, records: usize) {
    let people: Vec<Member> = (0..members).map(|i| member(&format!("m{i}"))).collect();
    let first = create(&people[0]).await;
    let mut groups = vec![first];
    for m in &people[1..] {
        let xml = m.pg.identities().public_xml(&m.id).unwrap();
        let inv = groups[0].create_invitation(&xml, None, &[]).unwrap();
        let g = m.pg.join(Some(&m.id), &inv).unwrap();
        g.connect().await.unwrap();
        g.wait_status(BOTH, Duration::from_secs(20)).await.unwrap();
        groups.push(g);
    }
    // Let maintenance settle the mesh before measuring.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let groups = Arc::new(groups);
    let mut latencies = Vec::with_capacity(records);
    for k in 0..records {
        let mut subs: Vec<_> = groups
            .iter()
            .map(|g| {
                g.subscribe(EventFilter::kinds(&[EventKind::RecordChanged]))
                    .unwrap()
            })
            .collect();
        let start = Instant::now();
        let id = groups[k % members].add_record(record(k, 1024)).unwrap();
        let mut waits = Vec::new();
        for mut sub in subs.drain(..) {
            waits.push(tokio::spawn(async move {
                loop {
                    match sub.next().await {
                        Some(EventItem::Event(Event::RecordChanged {
                            change: RecordChange::Added,
                            id: got,
                            ..
                        })) if got == id => return Instant::now(),
                        Some(_) => {}
                        None => panic!("subscription ended"),
                    }
                }
            }));
        }
        let mut last = start;
        for w in waits {
            let at = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a record reached every member")
                .unwrap();
            last = last.max(at);
        }
        latencies.push((last - start).as_secs_f64() * 1e3);
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "flood latency, {members} members on loopback, {records} records of 1 KiB: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    for g in Arc::try_unwrap(groups).ok().unwrap() {
        g.close().await.unwrap();
    }
    drop(people);
}

/// The joiner's process: joins with the invitation, connects, and reports when it holds
/// `expected` records, with its resident memory.
async fn joiner(spec: &str) {
    let mut parts = spec.splitn(3, '|');
    let home = parts.next().unwrap();
    let expected: usize = parts.next().unwrap().parse().unwrap();
    let invitation = std::fs::read_to_string(parts.next().unwrap()).unwrap();
    let store = IdentityStore::open(home).unwrap();
    let me: PeerName = store.list().unwrap()[0].peer_name.parse().unwrap();
    let pg = Peergroup::new(store, listen());
    let g = pg.join(Some(&me), &invitation).unwrap();
    let mut sub = g
        .subscribe_with(
            EventFilter::kinds(&[EventKind::RecordChanged]),
            expected + 1024,
            None,
        )
        .unwrap();
    let rss_before = rss_kib();
    let start = Instant::now();
    g.connect().await.unwrap();
    let mut held = 0;
    while held < expected {
        match tokio::time::timeout(Duration::from_secs(120), sub.next()).await {
            Ok(Some(EventItem::Event(Event::RecordChanged { .. }))) => held += 1,
            Ok(Some(EventItem::Lagged(n))) => held += n as usize,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let (rss, hwm) = (rss_kib(), hwm_kib());
    let count = g.record_count().unwrap();
    println!("JOINED {ms:.0} {count} {rss_before} {rss} {hwm}");
    g.close().await.unwrap();
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn hwm_kib() -> u64 {
    status_kib("VmHWM:")
}

async fn join(records: usize) {
    let alice = member("alice");
    let a = create(&alice).await;
    let load = Instant::now();
    for chunk in (0..records).collect::<Vec<_>>().chunks(5_000) {
        a.add_records(chunk.iter().map(|&i| record(i, 1024)).collect())
            .unwrap();
    }
    let load_ms = load.elapsed().as_secs_f64() * 1e3;
    if records == 10_000 {
        // What every joiner pays per record, on one core: one signature check.
        let sample = a.enum_records(None).unwrap();
        let parts: Vec<_> = sample
            .iter()
            .map(|r| {
                let (chain, sig) = r.security_parts().unwrap();
                (
                    chain.leaf().public_key_der().to_vec(),
                    r.signed_bytes(),
                    sig,
                )
            })
            .collect();
        let t = Instant::now();
        for (key, msg, sig) in &parts {
            verify_signature(key, msg, sig).unwrap();
        }
        println!(
            "signature check (ECDSA P-256, ring): {:.1} µs per record on one core",
            t.elapsed().as_secs_f64() * 1e6 / parts.len() as f64
        );
    }
    let bob_home = tempfile::tempdir().unwrap();
    let bob = IdentityStore::open(bob_home.path())
        .unwrap()
        .create(Some("bob"), Some("bob"), None)
        .unwrap();
    let xml = IdentityStore::open(bob_home.path())
        .unwrap()
        .public_xml(&bob)
        .unwrap();
    let inv_path = bob_home.path().join("invitation.xml");
    std::fs::write(&inv_path, a.create_invitation(&xml, None, &[]).unwrap()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(
            JOINER,
            format!(
                "{}|{records}|{}",
                bob_home.path().display(),
                inv_path.display()
            ),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for l in out.lines() {
        let l = l.unwrap();
        if l.starts_with("JOINED") {
            line = l;
        }
    }
    child.wait().unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 6 {
        println!("join of {records} records: the joiner did not finish ({line:?})");
    } else {
        println!(
            "join, {records} records of 1 KiB on loopback: {} ms to hold {} records \
             (loading the group took {load_ms:.0} ms); joiner resident memory {} MiB \
             (peak {} MiB, {} MiB before connecting)",
            f[1],
            f[2],
            f[4].parse::<u64>().unwrap_or(0) / 1024,
            f[5].parse::<u64>().unwrap_or(0) / 1024,
            f[3].parse::<u64>().unwrap_or(0) / 1024,
        );
    }
    a.close().await.unwrap();
    drop(alice.home);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(spec) = std::env::var(JOINER) {
        rt.block_on(joiner(&spec));
        return;
    }
    println!(
        "machine: {} cores; release build",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // `cargo bench ... -- join` runs only the joins (for profiling).
    let only_join = std::env::args().skip(1).any(|a| a == "join");
    rt.block_on(async {
        if !only_join {
            flood(10, 50).await;
        }
        join(10_000).await;
        join(100_000).await;
    });
}
