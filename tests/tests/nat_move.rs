//! Members that move, in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! A, listening on a wildcard address, joins B's group: A dialled its neighbour connection
//! to B. A opens a direct connection to B and sends 64 MiB; while the data flows, A's host
//! is renumbered (its address replaced by another). The connection A dialled migrates (QUIC
//! validates the new path), so B receives every byte intact; A notices the new address
//! within its poll (`core/driver.rs`, `ADDRESS_POLL`) and B's member list
//! (`PeerGroupEnumMembers`) then gives A's presence at the new address, and a new direct
//! connection from B reaches A there. A direct connection B had dialled to A before (A
//! accepted it: a server cannot migrate) ends at A with `PEER_CONNECTION_DISCONNECTED` as
//! soon as A notices, and at B when its packets go unanswered; B opens it again.
//!
//! A member that switches uplinks (its host leaves one router's LAN for another's, as a
//! laptop leaves Wi-Fi for a phone's network) keeps its transfer the same way, and learns
//! its new NAT from the members whose connections migrated: they see its packets come from
//! a new address and tell it (`Observed`), so its NAT class and presence change without a
//! new connection.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{peer_on, Lab, Nat};
use common::{phase, until, Peer};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Upper bound for each step.
const BOUND: Duration = Duration::from_secs(60);
/// The transfer that crosses the renumbering.
const TRANSFER: u64 = 64 << 20;

/// Waits until `p`'s member list gives `member`'s presence at an address of `ip`.
fn wait_listed(p: &mut Peer, member: &str, ip: Ipv4Addr) {
    p.wait_listed(member, &format!("{ip}:"), BOUND);
}

/// Waits until some bytes of a transfer reached `p`.
fn wait_started(p: &mut Peer) {
    let label = p.label;
    until(
        &format!("{label} receives the start of the transfer"),
        BOUND,
        || {
            let v = p.call(json!({"cmd": "received"}));
            let started = v["connections"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["bytes"].as_u64().unwrap_or(0) > 0);
            if started {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );
}

#[test]
fn a_renumbered_member_keeps_its_transfer_and_is_found_at_its_new_address() {
    let Some(mut lab) = Lab::for_test("pgn") else {
        return;
    };
    let b_host = lab.public("pub1");
    let a_host = lab.public("pub2");
    // Not a NAT test: both public; A on a wildcard address so that the kernel picks the
    // new source address once the old one is gone.
    assert_eq!(a_host.nat, Nat::Public);
    let mut b = peer_on("B", &b_host, &[]);
    let mut a = Peer::spawn("A", &a_host.ns, "0.0.0.0:0");
    let (b_name, _) = b.identity("b");
    let (a_name, a_xml) = a.identity("a");
    b.create_group(false);
    a.join_from(&mut b, &a_xml, false, false);
    a.wait_joined();
    let old = a_host.addr;
    wait_listed(&mut b, &a_name, old);
    phase("A joined B's group from its wildcard address");

    // B's connection to A, which A accepted.
    let accepted = b.call(json!({"cmd": "direct", "member": a_name, "timeout_ms": 30_000}));
    let accepted_id = accepted["connection_id"].as_u64().unwrap();
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    let id = d["connection_id"].as_u64().unwrap();
    a.send(&json!({"cmd": "send_bulk", "connection_id": id, "bytes": TRANSFER, "seed": 31}));
    // Renumber once part of the transfer has arrived.
    wait_started(&mut b);
    let new = Ipv4Addr::new(198, 18, 0, 200);
    lab.renumber(&a_host, new);
    phase(&format!("A's host renumbered mid-transfer: {old} -> {new}"));
    let sent = a.json_line();
    assert_eq!(sent["ok"], true, "A's send completes: {sent}");
    b.wait_received("the 64 MiB across the renumbering, intact", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == TRANSFER
    });
    phase("the transfer crossed the renumbering intact");
    // The connection A had accepted ends at both ends (PEER_DISCONNECTED = 2).
    until("B's connection that A accepted ends at B", BOUND, || {
        let v = b.call(json!({"cmd": "received"}));
        let ended = v["directs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["connection_id"] == accepted_id && c["status"] == 2);
        if ended {
            Ok(())
        } else {
            Err(v["directs"].to_string())
        }
    });
    let at_a = a.call(json!({"cmd": "received"}));
    let disconnected_at_a = at_a["directs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == 2)
        .count();
    assert!(disconnected_at_a >= 1, "A reported it: {at_a}");

    wait_listed(&mut b, &a_name, new);
    // B reaches A where it is now.
    let d = b.call(json!({"cmd": "direct", "member": a_name, "timeout_ms": 30_000}));
    assert!(
        d["address"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{new}:")),
        "B reaches A at its new address: {d}"
    );
    let id = d["connection_id"].as_u64().unwrap();
    let sent =
        b.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": 1 << 20, "seed": 33}));
    a.wait_received("1 MiB from B at the new address", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == 1 << 20
    });
    phase("presence carries the new address; B reached A there");
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}

/// A behind a symmetric NAT (a new random port for every new mapping) dialled B; in the
/// middle of 64 MiB its NAT forgets every mapping (conntrack flushed), so A's packets come
/// from a new port: B, the server of both connections, validates the new path and the
/// transfer completes intact; the neighbour connection stays up.
#[test]
fn a_nat_rebinding_mid_transfer_is_survived() {
    let Some(mut lab) = Lab::for_test("pgr") else {
        return;
    };
    let b_host = lab.public("pub1");
    let a_host = lab.behind(&["a"], Nat::Symmetric).remove(0);
    let mut b = peer_on("B", &b_host, &[]);
    let mut a = common::lab::peer_on("A", &a_host, &[]);
    let (b_name, _) = b.identity("b");
    let (a_name, a_xml) = a.identity("a");
    b.create_group(false);
    a.join_from(&mut b, &a_xml, false, false);
    a.wait_joined();
    let before = b.neighbour(&a_name).expect("B has A as a neighbour");
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    let id = d["connection_id"].as_u64().unwrap();
    a.send(&json!({"cmd": "send_bulk", "connection_id": id, "bytes": TRANSFER, "seed": 35}));
    wait_started(&mut b);
    lab.rebind(&a_host);
    phase("A's NAT forgot its mappings mid-transfer");
    let sent = a.json_line();
    assert_eq!(sent["ok"], true, "A's send completes: {sent}");
    b.wait_received("the 64 MiB across the rebinding, intact", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == TRANSFER
    });
    let after = b.neighbour(&a_name).expect("B still has A as a neighbour");
    assert_eq!(
        before["connection_id"], after["connection_id"],
        "the same neighbour connection: {before} {after}"
    );
    phase("the transfer and the neighbour connection survived the rebinding");
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}

/// Waits until `p`'s status gives NAT class `nat` (`pg-peer`'s `"nat"`).
fn wait_nat(p: &mut Peer, nat: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    until(&format!("{}'s NAT class is {nat}", p.label), BOUND, || {
        last = p.call(json!({"cmd": "status"}));
        if last["nat"] == nat {
            Ok(())
        } else {
            Err(format!(
                "nat {} advertised {}",
                last["nat"], last["advertised"]
            ))
        }
    });
    last
}

#[test]
fn a_member_that_switches_uplinks_keeps_its_transfer_and_learns_its_new_nat() {
    let Some(mut lab) = Lab::for_test("pgu") else {
        return;
    };
    let b_host = lab.public("pub1");
    let c_host = lab.public("pub2");
    // A starts behind a symmetric NAT (a phone's network) and moves behind a full cone
    // (home Wi-Fi): the class changes, and the new network lets others dial A.
    let a_host = lab.behind(&["a"], Nat::Symmetric).remove(0);
    let spare = lab.behind(&["wifi"], Nat::FullCone).remove(0);
    let mut b = peer_on("B", &b_host, &[]);
    let mut c = peer_on("C", &c_host, &[]);
    let mut a = Peer::spawn("A", &a_host.ns, "0.0.0.0:0");
    let (b_name, _) = b.identity("b");
    let (_, c_xml) = c.identity("c");
    let (a_name, a_xml) = a.identity("a");
    b.create_group(false);
    c.join_from(&mut b, &c_xml, false, false);
    c.wait_joined();
    a.join_from(&mut b, &a_xml, false, false);
    a.wait_joined();
    // A dialled B and C (it is unreachable itself): two observers at two IPs.
    until("A is a neighbour of B and C", BOUND, || {
        let s = a.status();
        if s.members().len() >= 2 {
            Ok(())
        } else {
            Err(format!("{:?}", s.neighbours))
        }
    });
    wait_nat(&mut a, "endpoint-dependent");
    phase("A joined from behind its symmetric NAT");

    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    let id = d["connection_id"].as_u64().unwrap();
    a.send(&json!({"cmd": "send_bulk", "connection_id": id, "bytes": TRANSFER, "seed": 41}));
    wait_started(&mut b);
    let a_host = lab.switch_uplink(&a_host, &spare);
    let sent = a.json_line();
    assert_eq!(sent["ok"], true, "A's send completes: {sent}");
    b.wait_received("the 64 MiB across the uplink switch, intact", BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == TRANSFER
    });
    phase("the transfer crossed the uplink switch intact");

    // B and C see A's packets come from the full cone's one mapping and say so.
    let status = wait_nat(&mut a, "endpoint-independent");
    let mapped = format!("{}:", a_host.public_ip);
    assert!(
        status["advertised"].as_array().unwrap()[0]
            .as_str()
            .unwrap()
            .starts_with(&mapped),
        "A advertises its new mapping first: {status}"
    );
    phase("A learnt its new NAT from the connections that migrated");
    wait_listed(&mut c, &a_name, a_host.public_ip);
    // The full cone lets C in: C reaches A directly at the new mapping.
    let d = c.call(json!({"cmd": "direct", "member": a_name, "timeout_ms": 30_000}));
    assert!(
        d["address"].as_str().unwrap().starts_with(&mapped) && d["relayed"] != true,
        "C reaches A directly at its new mapping: {d}"
    );
    let id = d["connection_id"].as_u64().unwrap();
    let sent =
        c.call(json!({"cmd": "send_bulk", "connection_id": id, "bytes": 1 << 20, "seed": 43}));
    a.wait_received("1 MiB from C at the new mapping", BOUND, |x| {
        x["sha256"] == sent["sha256"] && x["bytes"] == 1 << 20
    });
    phase("presence carries the new mapping; C dialled A there");
    for p in [&mut a, &mut b, &mut c] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
