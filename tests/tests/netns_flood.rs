//! An outsider floods a member with connection attempts that never complete while another
//! member joins and both replicate, in network namespaces (`common/lab.rs`), as real
//! processes.
//!
//! X, on the lab's internet with 50 addresses, runs `pg-flood`: 200 QUIC handshakes a second
//! to A for the group's server name, from sockets that never read (to A, forged sources);
//! each would hold one of A's handshake slots for the handshake timeout (10 s), so the slots
//! would stay full. B joins A's group during the flood and the two exchange records: A asks
//! unvalidated sources to prove their address (QUIC Retry) once handshakes pile up, which the
//! flood never does and B's QUIC stack does by itself (`peergroup-transport/src/admission.rs`).
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::lab::{netns, peer_on, Lab};
use common::{phase, until, Proc, LISTENING};
use serde_json::json;

/// Upper bound for each step.
const BOUND: Duration = Duration::from_secs(60);
/// Handshakes the outsider starts each second.
const RATE: usize = 200;
/// Records each member adds during the flood.
const RECORDS: usize = 5;

#[test]
fn a_member_joins_and_replicates_while_an_outsider_floods_handshakes() {
    let Some(mut lab) = Lab::for_test("pgf") else {
        return;
    };
    let a_host = lab.public("a");
    let b_host = lab.public("b");
    let x_host = lab.public("x");
    // The outsider's sources: 50 more addresses on its link.
    let sources: Vec<String> = (100..150).map(|k| format!("198.18.0.{k}")).collect();
    for s in &sources {
        netns(
            &x_host.ns,
            &["ip", "addr", "add", &format!("{s}/16"), "dev", "eth0"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    let mut a = peer_on("A", &a_host, &[]);
    let mut b = peer_on("B", &b_host, &[]);
    a.identity("a");
    let (_, b_xml) = b.identity("b");
    let group = a.call(json!({"cmd": "create"}))["group"]
        .as_str()
        .unwrap()
        .to_owned();
    a.call(json!({"cmd": "connect"}));
    let s = a.call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));
    let target = s["listen"][0].as_str().unwrap().to_owned();
    phase(&format!("A's group listens at {target}"));

    let mut flood = Proc::spawn(
        "X",
        Command::new("ip").args([
            "netns",
            "exec",
            &x_host.ns,
            env!("CARGO_BIN_EXE_pg-flood"),
            "--to",
            &target,
            "--group",
            &group,
            "--rate",
            &RATE.to_string(),
            "--from",
            &sources.join(","),
        ]),
    );
    assert_eq!(flood.line(), "flooding");
    // Enough attempts to fill A's 64 slots, were it taking them all on; at this rate a slot
    // that frees is taken again at once (before these rules, B never got in).
    std::thread::sleep(Duration::from_secs(2));
    phase("X floods A");

    b.join_from(&mut a, &b_xml, false, false);
    b.wait_joined();
    phase("B joined during the flood");
    let mut ids = Vec::new();
    for k in 0..RECORDS {
        ids.push(a.add(&format!("from A {k}")));
        ids.push(b.add(&format!("from B {k}")));
    }
    let digest = until("A and B hold the same records", BOUND, || {
        let (ra, rb) = (a.records(), b.records());
        if ra == rb && ids.iter().all(|id| ra.ids.contains(id)) {
            Ok(ra.digest)
        } else {
            Err(format!("A {ra}, B {rb}"))
        }
    });
    phase(&format!(
        "replicated during the flood: {} records, digest {}",
        ids.len(),
        &digest[..12]
    ));

    flood.end_input();
    let started = flood.line();
    phase(&format!("X {started}"));
    let n: usize = started
        .strip_prefix("started ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        n > 3 * 64,
        "the flood outnumbered A's handshake slots: {started}"
    );
    flood.finish_success();
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
