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

use common::lab::{joined_through, Lab, Nat, Trio};
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
    let Trio {
        mut r,
        mut a,
        mut b,
        a_name,
        b_name,
    } = joined_through(&r_host, &a_host, &b_host, true);
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

/// A direct connection that could only be made through R is upgraded in place: while A's
/// host drops everything between A and B, A opens it (through R), then the cut ends, A
/// sends 64 MiB on it at once, and the connection moves to a direct path during the
/// transfer (`proto::upgrade`). B receives every byte, in order, on the one connection; the
/// connection is then on a direct path at both ends and outlives R.
#[test]
fn a_relayed_direct_connection_is_upgraded_in_place_without_losing_a_byte() {
    let Some(mut lab) = Lab::for_test("pgu") else {
        return;
    };
    let r_host = lab.public("pub1");
    let a_host = lab.behind(&["a"], Nat::PortRestricted).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);
    let Trio {
        mut r,
        mut a,
        mut b,
        a_name,
        b_name,
    } = joined_through(&r_host, &a_host, &b_host, true);
    lab.cut(&a_host, &b_host);
    phase("A and B joined through R; no datagram passes between them");

    let ask = json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000});
    let d = until("A opens a direct connection to B", BOUND, || {
        let v = a.try_call(ask.clone());
        if v["ok"] == true {
            Ok(v)
        } else {
            // Presence has not told A of B yet.
            Err(v.to_string())
        }
    });
    let id = d["connection_id"].as_u64().unwrap();
    assert_eq!(
        d["relayed"], true,
        "with A and B cut apart, only R carries it: {d}"
    );
    lab.mend(&a_host, &b_host);
    phase(&format!(
        "A's direct connection {id} to B began relayed; the cut ended"
    ));
    let sent =
        a.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": 64 << 20, "seed": 21}));
    b.wait_received("64 MiB on one connection, intact", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == 64 << 20
    });
    let at_a = a.wait_direct_path(id, BOUND);
    let at_b = until("B's end on a direct path", BOUND, || {
        match b
            .directs()
            .into_iter()
            .find(|c| c["member"] == a_name.as_str())
        {
            Some(c) if c["relayed"] == false => Ok(c),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(
        at_a["address"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", b_host.public_ip)),
        "A reaches B where B's NAT maps it: {at_a}"
    );
    phase(&format!(
        "upgraded: A at {}, B at {}",
        at_a["address"], at_b["address"]
    ));

    r.kill_host();
    phase("R was killed");
    // Long enough for the idle timeout (3 s) to end anything that ran through R.
    std::thread::sleep(Duration::from_secs(5));
    a.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": 1 << 20, "seed": 23}));
    b.wait_received("1 MiB more on the upgraded connection", BOUND, |c| {
        c["bytes"] == 65 << 20
    });
    assert_eq!(a.wait_direct_path(id, BOUND)["connection_id"], id);
    phase("the upgraded connection outlived R");
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
