//! `cargo xtask bench direct`: the throughput of `PeerGroupSendData` on a direct connection
//! between two members on loopback, next to raw quinn on the same machine with the same
//! cipher suites (rustls' ring provider, TLS 1.3) and certificates. Prints figures; asserts
//! none.
//!
//! - **SendData**: `GroupHandle::send_data` of `BENCH_DIRECT_BYTES` (default 1 GiB) in
//!   messages of 64 KiB on a direct connection; the receiver reads every message as an
//!   incoming-data event. Timed from the first send to the last message received.
//! - **raw quinn**: one unidirectional stream, the same bytes read to the end by the other side,
//!   written two ways: `write_all` of a 64 KiB buffer (quinn copies it, as `PeerGroupSendData`
//!   copies the caller's buffer: the like-for-like baseline the ratio uses), and `write_chunk`
//!   of a shared `Bytes` (no copy at all; an upper bound no buffer-taking API can reach).
//!
//! The per-call cost of the C ABI is the `abi` part of `cargo xtask bench direct` (a C program
//! built by xtask), printed after this.

#[path = "../../peergroup-transport/benches/common/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peergroup_core::direct::PEER_CONNECTION_NEIGHBOR;
use peergroup_core::identity::gmc::GroupRoot;
use peergroup_core::identity::IdentityStore;
use peergroup_core::io::{ConnectionStatus, STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{Event, EventFilter, EventItem, EventKind, EventSubscription, Peergroup};

const MSG: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(60);
const TYPE: [u8; 16] = [0x42; 16];

fn bytes_to_send() -> u64 {
    std::env::var("BENCH_DIRECT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

fn peer(home: &tempfile::TempDir, name: &str) -> (Peergroup, peergroup_core::identity::PeerName) {
    let store = IdentityStore::open(home.path()).unwrap();
    let id = store.create(Some(name), Some(name), None).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (Peergroup::new(store, Some(listen)), id)
}

async fn next(sub: &mut EventSubscription) -> Event {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(EventItem::Event(e))) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

async fn send_data(total: u64) -> Duration {
    let (ha, hb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, alice_id) = peer(&ha, "alice");
    let (bob, bob_id) = peer(&hb, "bob");
    let group = alice
        .create_group(GroupProperties {
            classifier: "bench".into(),
            friendly_name: "Bench".into(),
            creator_peer_name: alice_id.to_string(),
            ..Default::default()
        })
        .unwrap();
    group.connect().await.unwrap();
    group.wait_status(STATUS_LISTENING, WAIT).await.unwrap();
    let xml = bob.identities().public_xml(&bob_id).unwrap();
    let invitation = group.create_invitation(&xml, None, &[]).unwrap();
    let joined = bob.join(Some(&bob_id), &invitation).unwrap();
    joined.connect().await.unwrap();
    let both = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
    joined.wait_status(both, WAIT).await.unwrap();
    while group.connections(PEER_CONNECTION_NEIGHBOR).unwrap().len() != 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let filter = EventFilter::kinds(&[EventKind::DirectConnection, EventKind::IncomingData]);
    let mut a_events = group.subscribe(filter.clone()).unwrap();
    let mut b_events = joined.subscribe(filter).unwrap();
    let id = group.open_direct_connection(&bob_id, None).unwrap();
    match next(&mut a_events).await {
        Event::DirectConnection(c) if c.status == ConnectionStatus::Connected => {}
        other => panic!("direct connection not made: {other:?}"),
    }
    let _ = next(&mut b_events).await;

    let count = total.div_ceil(MSG as u64);
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let buf = vec![0xA5u8; MSG];
        for _ in 0..count {
            group.send_data(id, &TYPE, &buf).await.unwrap();
        }
        group
    });
    let mut received = 0u64;
    while received < count * MSG as u64 {
        match next(&mut b_events).await {
            Event::IncomingData { data, .. } => received += data.len() as u64,
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let group = sender.await.unwrap();
    group.close().await.unwrap();
    joined.close().await.unwrap();
    elapsed
}

async fn raw_quinn(total: u64, zero_copy: bool) -> Duration {
    let root = GroupRoot::create("bench", "Bench").unwrap();
    let (a, b) = (raw::member(&root, "server"), raw::member(&root, "client"));
    let (server, client) = raw::raw_endpoints(&a, &b);
    let addr = server.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut stream = conn.accept_uni().await.unwrap();
        let mut got = 0u64;
        while let Some(chunk) = stream.read_chunk(usize::MAX, true).await.unwrap() {
            got += chunk.bytes.len() as u64;
        }
        (got, conn, server)
    });
    let conn = client
        .connect(addr, "bench.peergroup")
        .unwrap()
        .await
        .unwrap();
    let count = total.div_ceil(MSG as u64);
    let chunk = bytes::Bytes::from(vec![0xA5u8; MSG]);
    let buf = vec![0xA5u8; MSG];
    let started = Instant::now();
    let mut stream = conn.open_uni().await.unwrap();
    for _ in 0..count {
        if zero_copy {
            stream.write_chunk(chunk.clone()).await.unwrap();
        } else {
            stream.write_all(&buf).await.unwrap();
        }
    }
    stream.finish().unwrap();
    let (got, server_conn, server) = reader.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(got, count * MSG as u64);
    server_conn.close(0u32.into(), b"done");
    conn.close(0u32.into(), b"done");
    server.wait_idle().await;
    elapsed
}

/// Prints the median throughput of `times` (and the range) and returns the median time.
fn report(name: &str, total: u64, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{name:<22} {:>7.1} MiB/s median of {} ({:.1}..{:.1})",
        mib_per_s(total, median),
        times.len(),
        mib_per_s(total, times[times.len() - 1]),
        mib_per_s(total, times[0]),
    );
    median
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total = bytes_to_send();
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    println!(
        "direct data on loopback: {} MiB in messages of {} KiB ({cores} cores)",
        total >> 20,
        MSG >> 10
    );
    // Warm-up of every path, then rounds of the three, interleaved so that whatever else the
    // machine does falls on all of them alike; the medians are compared.
    let rounds: usize = std::env::var("BENCH_DIRECT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let warm = (64 << 20).min(total);
    raw_quinn(warm, false).await;
    send_data(warm).await;
    let (mut raw, mut raw_zero_copy, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw.push(raw_quinn(total, false).await);
        raw_zero_copy.push(raw_quinn(total, true).await);
        ours.push(send_data(total).await);
    }
    let raw = report("raw quinn, write_all", total, raw);
    let raw_zero_copy = report("raw quinn, zero-copy", total, raw_zero_copy);
    let ours = report("PeerGroupSendData", total, ours);
    println!(
        "SendData/raw (zero-copy): {:.2}x",
        raw_zero_copy.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "SendData/raw (write_all): {:.2}x (target >= 0.9x)",
        raw.as_secs_f64() / ours.as_secs_f64()
    );
}
