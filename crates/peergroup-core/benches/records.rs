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
//!
//! For profiling: `cargo bench -p peergroup-core --bench records -- join` runs only the
//! joins; `PEERGROUP_BENCH_JOIN_SIZES=100000` chooses their sizes (comma-separated), and
//! `PEERGROUP_BENCH_KEY=ed25519` gives both members Ed25519 identity keys instead of the
//! default ECDSA P-256. Each join also prints the CPU time both processes spent in it.
//! `-- store` measures the storage path alone: records shaped like the join's (1 KiB of
//! data, the security data of a real signature) stored in a new database in batches of
//! `PEERGROUP_BENCH_STORE_BATCH` (default 2048, what a joiner stores at once).

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peergroup_core::identity::keys::{verify_signature, KeyAlgorithm};
use peergroup_core::identity::{IdentityStore, PeerName, PrivateKey};
use peergroup_core::io::{RecordChange, STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{Event, EventFilter, EventItem, EventKind, GroupHandle, NewRecord, Peergroup};

const BOTH: u32 = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
const TYPE: [u8; 16] = [0xbe; 16];
const JOINER: &str = "PEERGROUP_BENCH_JOINER";
/// Comma-separated join sizes (default 10000,100000).
const JOIN_SIZES: &str = "PEERGROUP_BENCH_JOIN_SIZES";
/// `ed25519` for Ed25519 identity keys (default: the identity store's, ECDSA P-256).
const KEY: &str = "PEERGROUP_BENCH_KEY";

struct Member {
    home: tempfile::TempDir,
    pg: Peergroup,
    id: PeerName,
}

fn listen() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

/// The identity key the members of the bench use: the default unless `PEERGROUP_BENCH_KEY`
/// says `ed25519`.
fn bench_key() -> Option<PrivateKey> {
    match std::env::var(KEY).as_deref() {
        Ok("ed25519") => Some(PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap()),
        Ok(other) if !other.is_empty() => panic!("{KEY}={other}: only ed25519 is known"),
        _ => None,
    }
}

fn member(name: &str) -> Member {
    let home = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(home.path()).unwrap();
    let id = store
        .create(Some(name), Some(name), bench_key().as_ref())
        .unwrap();
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
    let cpu_before = cpu_ms();
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
    let cpu = cpu_ms() - cpu_before;
    let (rss, hwm) = (rss_kib(), hwm_kib());
    let count = g.record_count().unwrap();
    println!("JOINED {ms:.0} {count} {rss_before} {rss} {hwm} {cpu}");
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

/// CPU time (user and system) this process has used, in ms.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, in clock ticks of (on Linux) 10 ms.
    (ticks(11) + ticks(12)) * 10
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
    {
        // What every joiner pays per record, on one core: one signature check.
        let sample = a.enum_records(None).unwrap();
        let parts: Vec<_> = sample
            .iter()
            .take(5_000)
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
            "signature check ({}, ring): {:.1} µs per record on one core",
            if std::env::var(KEY).as_deref() == Ok("ed25519") {
                "Ed25519"
            } else {
                "ECDSA P-256"
            },
            t.elapsed().as_secs_f64() * 1e6 / parts.len() as f64
        );
    }
    let bob_home = tempfile::tempdir().unwrap();
    let bob = IdentityStore::open(bob_home.path())
        .unwrap()
        .create(Some("bob"), Some("bob"), bench_key().as_ref())
        .unwrap();
    let xml = IdentityStore::open(bob_home.path())
        .unwrap()
        .public_xml(&bob)
        .unwrap();
    let inv_path = bob_home.path().join("invitation.xml");
    std::fs::write(&inv_path, a.create_invitation(&xml, None, &[]).unwrap()).unwrap();
    let cpu_before = cpu_ms();
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
    let sender_cpu = cpu_ms() - cpu_before;
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 7 {
        println!("join of {records} records: the joiner did not finish ({line:?})");
    } else {
        println!(
            "join, {records} records of 1 KiB on loopback: {} ms to hold {} records \
             (loading the group took {load_ms:.0} ms); joiner resident memory {} MiB \
             (peak {} MiB, {} MiB before connecting); CPU: joiner {} ms, \
             group's member {sender_cpu} ms",
            f[1],
            f[2],
            f[4].parse::<u64>().unwrap_or(0) / 1024,
            f[5].parse::<u64>().unwrap_or(0) / 1024,
            f[3].parse::<u64>().unwrap_or(0) / 1024,
            f[6],
        );
    }
    a.close().await.unwrap();
    drop(alice.home);
}

/// The storage path alone: `n` records of the join's shape stored in batches, as a joiner
/// stores pulled records (no verification: that is measured apart).
fn store_only(n: usize) {
    use peergroup_core::records::record::Record;
    use peergroup_core::records::store::RecordStore;
    let batch: usize = std::env::var("PEERGROUP_BENCH_STORE_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2048);
    let dir = tempfile::tempdir().unwrap();
    let mut db = RecordStore::open(dir.path().join("records.db")).unwrap();
    let now = now_ms();
    let records: Vec<Record> = (0..n)
        .map(|i| {
            // Random-looking ids, as derived ids are.
            let h = ring::digest::digest(&ring::digest::SHA256, &(i as u64).to_be_bytes());
            Record {
                record_type: TYPE,
                id: h.as_ref()[..16].try_into().unwrap(),
                id_nonce: h.as_ref()[16..].try_into().unwrap(),
                version: 1,
                flags: 0,
                creator: "0123456789abcdef0123456789abcdef01234567.bench".into(),
                modifier: "0123456789abcdef0123456789abcdef01234567.bench".into(),
                attributes: String::new(),
                created: now,
                expires: now + 24 * 3_600_000 + (i as i64 % 5_000),
                modified: now,
                data: vec![i as u8; 1024],
                // About what a one-link chain and an ECDSA signature take.
                security: vec![0x5a; 760],
            }
        })
        .collect();
    let (t, cpu) = (Instant::now(), cpu_ms());
    for chunk in records.chunks(batch) {
        let rows: Vec<_> = chunk.iter().map(|r| (r.clone(), Vec::new())).collect();
        db.put_many(&rows).unwrap();
    }
    println!(
        "store only: {n} records of 1 KiB in batches of {batch}: {:.0} ms, CPU {} ms",
        t.elapsed().as_secs_f64() * 1e3,
        cpu_ms() - cpu
    );
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
    if std::env::args().skip(1).any(|a| a == "store") {
        store_only(100_000);
        return;
    }
    // `cargo bench ... -- join` runs only the joins (for profiling).
    let only_join = std::env::args().skip(1).any(|a| a == "join");
    let sizes: Vec<usize> = std::env::var(JOIN_SIZES)
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("join sizes are numbers"))
        .collect();
    rt.block_on(async {
        if !only_join {
            flood(10, 50).await;
        }
        for n in sizes {
            join(n).await;
        }
    });
}
