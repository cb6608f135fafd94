//! Partition and heal in network namespaces: two sides of a group write records while cut
//! off from each other; after the link returns every database is identical.
//!
//! Topology (all inside namespaces the test makes; nothing touches the root namespace):
//!
//! ```text
//!   pgp<pid>-a: eth0 10.232.S.1/24 ─┐                               ┌─ pgp<pid>-c: eth0 10.232.S.3/24
//!                                   ├─ br1 ── trunk1 ═ trunk2 ── br2 ┤
//!   pgp<pid>-b: eth0 10.232.S.2/24 ─┘   (both bridges in pgp<pid>-sw) └─ pgp<pid>-d: eth0 10.232.S.4/24
//! ```
//!
//! where S is derived from the pid (names and subnet differ from `netns_three_hosts`, so the
//! two tests can run at once). One `pg-peer` process runs per host, driven over stdin/stdout
//! (see `src/bin/pg-peer.rs`).
//!
//! A creates the group and invites B, C and D; all four connect and form a full mesh. Each
//! adds a record and all four databases become identical. Then the trunk between the bridges
//! goes down: side 1 (A, B) and side 2 (C, D) lose each other but keep their own link. Each
//! host adds five records; each side converges on its own database and the two sides differ.
//! The trunk comes back: the members reconnect across it and reconcile, and every database
//! holds the same 24 records (same ids, versions, data and signatures: the `records` digest).
//!
//! Needs root and iproute2. Without them it prints "skipped: …" and passes, except under CI
//! (`CI=true`), where a missing capability fails. The namespaces are removed on every exit
//! path, panics included (a Drop guard).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{describe, ip_ok, phase, preflight, skip, until, Namespaces, Peer, Records};
use common::{HAS_CONNECTIONS, LISTENING};
use serde_json::json;

/// Upper bound for the group to form: status 3 everywhere, then the full mesh.
const FORM_BOUND: Duration = Duration::from_secs(40);
/// Upper bound for records to reach every member of a connected group (or side).
const SPREAD_BOUND: Duration = Duration::from_secs(30);
/// Upper bound for each side to drop the other (the peers' idle timeout is 3 s).
const LOSS_BOUND: Duration = Duration::from_secs(20);
/// Upper bound for every database to be identical after the trunk returns.
const HEAL_BOUND: Duration = Duration::from_secs(90);
/// Records each host adds while the sides are cut off.
const WRITES_WHILE_CUT: usize = 5;

/// Everyone's records, or a description of everyone's for a failure message.
fn all_records(peers: &mut [Peer]) -> Vec<Records> {
    peers.iter_mut().map(|p| p.records()).collect()
}

fn show(peers: &[Peer], records: &[Records]) -> String {
    peers
        .iter()
        .zip(records)
        .map(|(p, r)| format!("{} {r}", p.label))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Ok when every peer in `peers` holds exactly the records `expected`, with equal digests.
fn agree(peers: &mut [Peer], expected: &BTreeSet<String>) -> Result<Records, String> {
    let records = all_records(peers);
    let first = &records[0];
    if &first.ids == expected && records.iter().all(|r| r == first) {
        Ok(first.clone())
    } else {
        Err(format!(
            "want {} records: {}",
            expected.len(),
            show(peers, &records)
        ))
    }
}

#[test]
fn partitioned_sides_write_and_every_database_is_identical_after_heal() {
    phase("start");
    if let Err(reason) = preflight() {
        return skip(&reason);
    }

    let pid = std::process::id();
    let subnet = format!("10.232.{}", pid % 250 + 1);
    let ns = |h: &str| format!("pgp{pid}-{h}");
    let switch = ns("sw");
    let hosts = ["a", "b", "c", "d"];

    // Declared before the peers, so it drops after them: processes first, then namespaces.
    let namespaces = match Namespaces::switch_and_hosts(ns, &hosts) {
        Ok(n) => n,
        Err(reason) => return skip(&reason),
    };

    phase(&format!(
        "namespaces {} (bridges br1, br2 joined by trunk1=trunk2), hosts {}, subnet {subnet}.0/24",
        switch,
        hosts.map(ns).join(" ")
    ));
    for br in ["br1", "br2"] {
        ip_ok(&["-n", &switch, "link", "add", br, "type", "bridge"]);
        ip_ok(&["-n", &switch, "link", "set", br, "up"]);
    }
    ip_ok(&[
        "-n", &switch, "link", "add", "trunk1", "type", "veth", "peer", "name", "trunk2",
    ]);
    ip_ok(&[
        "-n", &switch, "link", "set", "trunk1", "master", "br1", "up",
    ]);
    ip_ok(&[
        "-n", &switch, "link", "set", "trunk2", "master", "br2", "up",
    ]);
    for (i, h) in hosts.iter().enumerate() {
        let bridge = if i < 2 { "br1" } else { "br2" };
        let host_ns = ns(h);
        let port = format!("p-{h}");
        let addr = format!("{subnet}.{}/24", i + 1);
        common::attach_host(&switch, bridge, &port, &host_ns, &addr);
        phase(&format!(
            "host {h}: {host_ns} eth0 {addr} <-> {switch} {port} on {bridge}"
        ));
    }

    phase("starting one pg-peer per host");
    let labels = ["A", "B", "C", "D"];
    let mut peers: Vec<Peer> = labels
        .iter()
        .zip(hosts)
        .enumerate()
        .map(|(i, (label, h))| Peer::spawn(label, &ns(h), &format!("{subnet}.{}:0", i + 1)))
        .collect();
    let idents: Vec<(String, String)> = peers
        .iter_mut()
        .zip(hosts)
        .map(|(p, h)| p.identity(h))
        .collect();
    let member: Vec<String> = idents.iter().map(|(n, _)| n.clone()).collect();
    let by_label: Vec<(&str, &str)> = labels
        .iter()
        .zip(&member)
        .map(|(l, m)| (*l, m.as_str()))
        .collect();

    phase("A creates the group and connects");
    peers[0].call(json!({"cmd": "create"}));
    peers[0].call(json!({"cmd": "connect"}));
    let s = peers[0].call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));
    assert_eq!(
        s["status"].as_u64().unwrap() & LISTENING,
        LISTENING,
        "A listens: {s}"
    );
    phase(&format!("A listens on {}", s["listen"]));

    phase("A invites B, C and D; they join and connect");
    for i in 1..4 {
        let inv = peers[0].call(json!({"cmd": "invite", "xml": idents[i].1}));
        peers[i].call(json!({"cmd": "join", "invitation": inv["invitation"]}));
        peers[i].call(json!({"cmd": "connect"}));
    }
    let both = LISTENING | HAS_CONNECTIONS;
    for p in peers.iter_mut() {
        let s = p.call(json!({"cmd": "wait", "bits": both, "timeout_ms": 30_000}));
        assert_eq!(s["status"], both, "{} reaches status 3: {s}", p.label);
    }
    phase("all four report status 3 (LISTENING|HAS_CONNECTIONS)");

    // Each host's expected neighbours, in full mesh and while cut (its own side only).
    let others = |i: usize, among: std::ops::Range<usize>| -> BTreeSet<String> {
        among
            .filter(|&j| j != i)
            .map(|j| member[j].clone())
            .collect()
    };
    let side = |i: usize| if i < 2 { 0..2 } else { 2..4 };
    let neighbours_are = |peers: &mut [Peer], want: &dyn Fn(usize) -> BTreeSet<String>| {
        let statuses: Vec<_> = peers.iter_mut().map(|p| p.status()).collect();
        if statuses
            .iter()
            .enumerate()
            .all(|(i, s)| s.members() == want(i))
        {
            Ok(statuses)
        } else {
            Err(statuses
                .iter()
                .zip(&labels)
                .map(|(s, l)| format!("{l} {}", describe(s, &by_label)))
                .collect::<Vec<_>>()
                .join("; "))
        }
    };
    let mesh = until(
        "a full mesh: each host a neighbour of the other three",
        FORM_BOUND,
        || neighbours_are(&mut peers, &|i| others(i, 0..4)),
    );
    for (s, l) in mesh.iter().zip(&labels) {
        phase(&format!("full mesh: {l} {}", describe(s, &by_label)));
    }

    phase("each host adds one record");
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for p in peers.iter_mut() {
        let label = p.label;
        expected.insert(p.add(&format!("{label}: before the cut")));
    }
    let joined = until(
        "all four databases identical with the four records",
        SPREAD_BOUND,
        || agree(&mut peers, &expected),
    );
    phase(&format!("all four agree: {joined}"));

    phase("cutting the trunk: side 1 (A, B) and side 2 (C, D) lose each other");
    ip_ok(&["-n", &switch, "link", "set", "trunk1", "down"]);
    let cut = until(
        "each side drops the other and keeps its own link",
        LOSS_BOUND,
        || neighbours_are(&mut peers, &|i| others(i, side(i))),
    );
    for (s, l) in cut.iter().zip(&labels) {
        phase(&format!("cut: {l} {}", describe(s, &by_label)));
    }

    phase(&format!(
        "while cut, every host adds {WRITES_WHILE_CUT} records"
    ));
    let mut side_ids = [expected.clone(), expected.clone()];
    for (i, p) in peers.iter_mut().enumerate() {
        let label = p.label;
        for n in 0..WRITES_WHILE_CUT {
            side_ids[i / 2].insert(p.add(&format!("{label}: while cut, #{n}")));
        }
    }
    let (left, right) = peers.split_at_mut(2);
    let side1 = until("A and B agree on side 1's records", SPREAD_BOUND, || {
        agree(left, &side_ids[0])
    });
    let side2 = until("C and D agree on side 2's records", SPREAD_BOUND, || {
        agree(right, &side_ids[1])
    });
    phase(&format!("side 1 (A, B): {side1}"));
    phase(&format!("side 2 (C, D): {side2}"));
    let per_side = 4 + 2 * WRITES_WHILE_CUT;
    assert_eq!(side1.count, per_side, "side 1 holds its records only");
    assert_eq!(side2.count, per_side, "side 2 holds its records only");
    assert_ne!(
        side1.digest, side2.digest,
        "the sides' databases differ while cut"
    );
    assert!(
        side1.ids.is_disjoint(&(&side2.ids - &expected)),
        "no record written on side 2 reached side 1 while cut"
    );

    phase("the trunk comes back up");
    ip_ok(&["-n", &switch, "link", "set", "trunk1", "up"]);
    let all: BTreeSet<String> = side_ids[0].union(&side_ids[1]).cloned().collect();
    let total = 4 + 4 * WRITES_WHILE_CUT;
    assert_eq!(all.len(), total, "every add made a distinct record");
    let healed = until(
        "every database identical, with all 24 records",
        HEAL_BOUND,
        || agree(&mut peers, &all),
    );
    assert_eq!(healed.count, total);
    phase(&format!("healed: all four agree: {healed}"));
    for (i, p) in peers.iter_mut().enumerate() {
        let s = p.status();
        phase(&format!(
            "after heal: {} {}",
            labels[i],
            describe(&s, &by_label)
        ));
    }

    phase("end of input to every peer; waiting for them to exit");
    for p in peers.iter_mut() {
        p.end_input();
    }
    for p in peers.iter_mut() {
        p.finish_logged();
    }
    drop(peers);
    drop(namespaces);
    phase("done");
}
