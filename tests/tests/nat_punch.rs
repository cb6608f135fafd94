//! Hole punching in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! A and B sit behind port-restricted NATs: neither admits a packet from a host it has not
//! sent to, so a dial from one alone never reaches the other. They join through R, a public
//! relay member, and first meet through a tunnel R carries. Then they punch (`Punch` over
//! that relayed connection: both dial each other at once from their one socket) and become
//! direct neighbours; a direct connection A→B (`PeerGroupOpenDirectConnection`, no address)
//! takes that direct path. R is killed: the direct neighbour connection and the direct
//! connection stay up and carry data.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{peer_on, Lab, Nat};
use common::{phase, until, Peer};
use serde_json::{json, Value};
use std::time::Duration;

/// Upper bound for each step (the first punch leaves half a second after the relayed
/// connection is up).
const BOUND: Duration = Duration::from_secs(60);

/// Waits until `p` has `member` as a neighbour without a relay; returns the entry.
fn direct_neighbour(p: &mut Peer, member: &str) -> Value {
    let label = p.label;
    until(
        &format!("{label} has {member} as a direct neighbour"),
        BOUND,
        || match p.neighbour(member) {
            Some(n) if n["relayed_by"].is_null() => Ok(n),
            other => Err(format!("{other:?}")),
        },
    )
}

#[test]
fn members_behind_port_restricted_nats_punch_through_and_outlive_the_relay() {
    let Some(mut lab) = Lab::for_test("pgh") else {
        return;
    };
    let r_host = lab.public("pub1");
    let other = lab.public("pub2");
    let a_host = lab.behind(&["a"], Nat::PortRestricted).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);
    for h in [&a_host, &b_host] {
        let p = lab.check(h, &r_host, &other);
        assert!(
            p.independent_mapping,
            "{}: one mapping for all: {p:?}",
            h.label
        );
        assert!(
            !p.open_to_other_ports,
            "{}: admits only where it sent: {p:?}",
            h.label
        );
    }
    let mut r = peer_on("R", &r_host, &[]);
    let mut a = peer_on("A", &a_host, &[]);
    let mut b = peer_on("B", &b_host, &[]);
    r.identity("r");
    let (a_name, a_xml) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    r.create_group(true);
    a.join_from(&mut r, &a_xml, false, false);
    b.join_from(&mut r, &b_xml, false, false);
    a.wait_joined();
    b.wait_joined();
    phase("A and B joined through R");

    let at_a = direct_neighbour(&mut a, &b_name);
    direct_neighbour(&mut b, &a_name);
    phase(&format!(
        "A and B punched through: A reaches B at {}",
        at_a["address"]
    ));
    // Where B's NAT maps it: its router's public address, not B's own.
    assert!(
        at_a["address"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", b_host.public_ip)),
        "{at_a}"
    );

    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    assert_eq!(
        d["relayed"], false,
        "the direct connection takes the punched path: {d}"
    );
    let direct_id = d["connection_id"].as_u64().unwrap();
    let sent = a.call(
        json!({"cmd": "send_bulk", "connection_id": direct_id, "bytes": 4 << 20, "seed": 11}),
    );
    b.wait_received("4 MiB on the punched direct connection", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == 4 << 20
    });

    r.kill_host();
    phase("R was killed");
    // Long enough for the idle timeout (3 s) to end anything that ran through R.
    std::thread::sleep(Duration::from_secs(5));
    // Still neighbours without a relay (when both dials of a punch answered, the duplicate
    // rule may have kept the other of the two direct connections).
    direct_neighbour(&mut a, &b_name);
    // The direct connection of before carries on (its digest covers all it carried; ids
    // are each side's own)...
    a.call(json!({"cmd": "send_bulk", "connection_id": direct_id, "bytes": 1 << 20, "seed": 13}));
    b.wait_received("1 MiB more on the first direct connection", BOUND, |c| {
        c["bytes"] == 5 << 20
    });
    // ...and a new one finds the direct path with no relay left.
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    assert_eq!(d["relayed"], false, "{d}");
    let id = d["connection_id"].as_u64().unwrap();
    let sent =
        a.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": 1 << 20, "seed": 15}));
    b.wait_received("1 MiB on a new direct connection", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == 1 << 20
    });
    phase("the punched connections outlived the relay");
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
