//! `cargo xtask bench relay`, second part: a member relay in the NAT lab (`tests/common/lab.rs`),
//! with real `pg-peer` processes (release builds), `PeerGroupSendData` end to end. Prints figures
//! as ratios against the direct run on the same hosts; asserts none. Needs root, iproute2 and
//! nftables (skipped, with the reason, elsewhere).
//!
//! - **throughput**: A and B, two public hosts, and R, a public relay member. 64 MiB
//!   (`BENCH_RELAY_MIB`) of 1 MiB messages on a direct connection A→B, from the start of the
//!   send to the last message's arrival at B (both stamped with the machine's clock). Then A's host drops all traffic with B's, A and B meet through
//!   R, and the same transfer runs on a new direct connection, which goes through R. Target:
//!   relayed ≥ 0.8× direct.
//! - **relay CPU per MiB**: R's process CPU time (user + system) during the relayed transfer.
//! - **connect to relayed neighbour**: C behind a symmetric NAT, D behind a port-restricted
//!   one (they can never dial each other): from D's `PeerGroupConnect` to D having C as a
//!   neighbour through a relay, next to D's first connection to R.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::lab::{peer_on, Lab, Nat};
use common::{until, Peer, LISTENING};
use serde_json::{json, Value};

/// Upper bound for each wait of the bench.
const BOUND: Duration = Duration::from_secs(120);

/// CPU time (user + system) of process `pid`, from `/proc/<pid>/stat`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Unix time in ms, the clock `pg-peer` stamps arrivals with.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Sends `bytes` A→B on a new direct connection; returns (MiB/s from the send's start to the
/// last byte's arrival at B, whether it was relayed, R's CPU time meanwhile).
fn transfer(
    a: &mut Peer,
    b: &mut Peer,
    b_name: &str,
    bytes: u64,
    r_pid: u32,
) -> (f64, bool, Duration) {
    // A new seed each time (odd: `pg-peer` sets the low bit): a transfer is told from
    // earlier ones by its digest.
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(3);
    let seed = SEED.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    let id = d["connection_id"].as_u64().unwrap();
    let relayed = d["relayed"] == true;
    let cpu0 = cpu(r_pid);
    let start = unix_ms();
    let sent =
        a.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": bytes, "seed": seed}));
    let mut got = Value::Null;
    until("B has the transfer", BOUND, || {
        let v = b.call(json!({"cmd": "received"}));
        match v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"] == sent["sha256"] && c["bytes"] == bytes)
        {
            Some(c) => {
                got = c.clone();
                Ok(())
            }
            None => Err(v.to_string()),
        }
    });
    let r_cpu = cpu(r_pid).saturating_sub(cpu0);
    a.call(json!({"cmd": "close_direct", "connection_id": id}));
    let span = (got["last_ms"].as_f64().unwrap() - start) / 1e3;
    let mib = (bytes >> 20) as f64;
    (mib / span.max(1e-6), relayed, r_cpu)
}

/// Transfers timed per path; the median is printed, with the range.
const RUNS: usize = 5;

/// The run with the median rate of `n` runs of `f`, its rate replaced by (median, min, max).
fn median(
    n: usize,
    mut f: impl FnMut() -> (f64, bool, Duration),
) -> ((f64, f64, f64), bool, Duration) {
    let mut runs: Vec<(f64, bool, Duration)> = (0..n).map(|_| f()).collect();
    runs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (lo, hi) = (runs[0].0, runs[n - 1].0);
    let (rate, relayed, cpu) = runs[n / 2];
    ((rate, lo, hi), relayed, cpu)
}

fn main() {
    let mib: u64 = std::env::var("BENCH_RELAY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let Some(mut lab) = Lab::for_test("pgb") else {
        println!("relay lab bench skipped: no lab here (needs root, iproute2, nftables)");
        return;
    };
    let r_host = lab.public("relay");
    let a_host = lab.public("a");
    let b_host = lab.public("b");
    let c_host = lab.behind(&["c"], Nat::Symmetric).remove(0);
    let d_host = lab.behind(&["d"], Nat::PortRestricted).remove(0);
    let mut r = peer_on("R", &r_host, &[]);
    let mut a = peer_on("A", &a_host, &[]);
    let mut b = peer_on("B", &b_host, &[]);
    let (r_name, _) = r.identity("r");
    let (_, a_xml) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    r.create_group(true);
    a.join_from(&mut r, &a_xml, true, false);
    b.join_from(&mut r, &b_xml, true, false);
    a.wait_joined();
    b.wait_joined();
    until("A has B as a direct neighbour", BOUND, || {
        match a.neighbour(&b_name) {
            Some(n) if n["relayed_by"].is_null() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let r_pid = r.id();
    // A first run warms both hosts' paths (congestion windows, MTU discovery).
    transfer(&mut a, &mut b, &b_name, 4 << 20, r_pid);
    let (direct, direct_relayed, direct_cpu) =
        median(RUNS, || transfer(&mut a, &mut b, &b_name, mib << 20, r_pid));
    assert!(!direct_relayed, "A reaches B directly first");

    lab.cut(&a_host, &b_host);
    until("A has B as a neighbour through R", BOUND, || {
        match a.neighbour(&b_name) {
            Some(n) if n["relayed_by"].is_u64() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    transfer(&mut a, &mut b, &b_name, 4 << 20, r_pid);
    let (relayed, was_relayed, relay_cpu) =
        median(RUNS, || transfer(&mut a, &mut b, &b_name, mib << 20, r_pid));
    assert!(was_relayed, "after the cut A reaches B through R only");

    // Connect to a relayed neighbour: D joins behind its NAT, C is already there behind its.
    let mut c = peer_on("C", &c_host, &[]);
    let mut d = peer_on("D", &d_host, &[]);
    let (c_name, c_xml) = c.identity("c");
    let (_, d_xml) = d.identity("d");
    c.join_from(&mut r, &c_xml, true, false);
    c.wait_joined();
    let inv = r.call(json!({"cmd": "invite", "xml": d_xml, "inviting": true}));
    d.call(json!({"cmd": "join", "invitation": inv["invitation"]}));
    let t0 = Instant::now();
    d.call(json!({"cmd": "connect"}));
    let mut first = None;
    until("D has C as a neighbour through R", BOUND, || {
        if first.is_none() && d.neighbour(&r_name).is_some() {
            first = Some(t0.elapsed());
        }
        match d.neighbour(&c_name) {
            Some(n) if n["relayed_by"].is_u64() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let to_relayed = t0.elapsed();
    d.call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));

    println!("relay lab bench: public hosts A, B and relay member R; {mib} MiB of 1 MiB PeerGroupSendData messages, median of {RUNS}");
    println!(
        "throughput         direct {:>8.1} MiB/s ({:.0}-{:.0}) relayed {:>8.1} MiB/s ({:.0}-{:.0}) ({:.2}x direct; target >= 0.80x)",
        direct.0, direct.1, direct.2, relayed.0, relayed.1, relayed.2,
        relayed.0 / direct.0
    );
    let per_mib = |c: Duration| c.as_secs_f64() * 1e3 / mib as f64;
    println!(
        "relay CPU per MiB  {:>8.2} ms while relaying   ({:.2} ms/MiB while A and B talked directly)",
        per_mib(relay_cpu),
        per_mib(direct_cpu)
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "connect            D (port-restricted NAT) to C (symmetric NAT) through R: {:.0} ms after PeerGroupConnect (first connection, to R: {:.0} ms)",
        ms(to_relayed),
        first.map_or(f64::NAN, ms)
    );
    for p in [&mut a, &mut b, &mut c, &mut d, &mut r] {
        p.finish();
    }
    drop(lab);
}
