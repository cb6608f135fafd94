//! Members behind NATs, in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! A public member R creates the group; A (behind a full-cone NAT) and B (behind a
//! port-restricted one) join through R. Each learns its mapped address from R's `Hello`
//! and advertises it before its private one, so B reaches A directly at A's public mapping
//! (A's NAT lets anyone in on a port A has sent from) — where B used to dial A's private
//! address and never get there.
//!
//! A member restarted while the member it joined through is gone (its invitation names only
//! that one) finds the group again from what it was told: B, killed and started again,
//! dials A at the mapping A's presence gave and is A's neighbour again.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{joined_through, peer_on, Lab, Nat, Trio};
use common::{phase, until, Peer};
use serde_json::json;
use std::time::Duration;

/// Upper bound for A and B to become each other's neighbours.
const MEET_BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_member_behind_a_cone_nat_is_reached_at_its_mapped_address() {
    let Some(mut lab) = Lab::for_test("pgm") else {
        return;
    };
    let r_host = lab.public("r");
    let a_host = lab.behind(&["a"], Nat::FullCone).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);

    let Trio {
        mut r,
        mut a,
        mut b,
        a_name,
        b_name: _,
    } = joined_through(&r_host, &a_host, &b_host, false);
    phase("A and B joined through R");

    let s = until("B has A as a neighbour", MEET_BOUND, || {
        let s = b.status();
        if s.members().contains(&a_name) {
            Ok(s)
        } else {
            Err(s.raw.to_string())
        }
    });
    let to_a = s.raw["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["member"] == a_name.as_str())
        .unwrap()
        .clone();
    phase(&format!("B's connection to A: {to_a}"));
    let seen: std::net::SocketAddr = to_a["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(a_host.public_ip),
        "B reaches A at A's public mapping, not at {}",
        a_host.addr
    );
    // A advertises its mapping first; R, public, advertises where it listens.
    let sa = a.status();
    let first = sa.raw["advertised"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        first.starts_with(&format!("{}:", a_host.public_ip)),
        "A advertises its mapping first: {}",
        sa.raw
    );
    let sr = r.status();
    assert_eq!(sr.raw["nat"], "none", "R is public: {}", sr.raw);
    for p in [&mut a, &mut b, &mut r] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}

/// Waits until `p` has `member` as a neighbour; returns that neighbour entry.
fn wait_neighbour(p: &mut Peer, member: &str) -> serde_json::Value {
    let label = p.label;
    until(
        &format!("{label} has {member} as a neighbour"),
        MEET_BOUND,
        || {
            let s = p.status();
            s.neighbour(member).ok_or(s.raw.to_string())
        },
    )
}

#[test]
fn a_member_restarted_while_its_inviter_is_gone_finds_a_cone_member_from_its_presence() {
    let Some(mut lab) = Lab::for_test("pgk") else {
        return;
    };
    let r_host = lab.public("r");
    let a_host = lab.behind(&["a"], Nat::FullCone).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);
    let mut r = peer_on("R", &r_host, &[]);
    let mut a = peer_on("A", &a_host, &[]);
    let mut b = peer_on("B", &b_host, &[]);
    r.identity("r");
    let (a_name, a_xml) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    r.create_group(false);
    a.join_from(&mut r, &a_xml, false, false);
    let group = b.join_from(&mut r, &b_xml, false, false);
    a.wait_joined();
    b.wait_joined();
    wait_neighbour(&mut b, &a_name);
    // B's records hold A's presence at A's public mapping.
    let mapped = format!("{}:", a_host.public_ip);
    b.wait_listed(&a_name, &mapped, MEET_BOUND);
    phase("A and B met; B knows A's presence");

    // R, the one member B's invitation names, leaves for good; then B crashes.
    r.finish_logged();
    b.restart();
    b.call(json!({"cmd": "open", "identity": b_name, "group": group}));
    b.call(json!({"cmd": "connect"}));
    // What matters is that B reaches A again (its status then follows).
    let to_a = wait_neighbour(&mut b, &a_name);
    let seen: std::net::SocketAddr = to_a["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(a_host.public_ip),
        "B reached A at its mapping: {to_a}"
    );
    phase("B, restarted with R gone, is A's neighbour again");
    // And the group works between them: a record from A reaches B.
    let id = a.add("after the restart");
    until("B holds A's new record", MEET_BOUND, || {
        let recs = b.records();
        if recs.ids.contains(&id) {
            Ok(())
        } else {
            Err(format!("{} records", recs.ids.len()))
        }
    });
    for p in [&mut a, &mut b] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}

/// The public members of the dial-back test: enough that each of A and B has members it
/// never met (each holds at most [`SMALL_ROOM`] neighbours).
const PUBLIC: [&str; 7] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7"];
/// `PEERGROUP_MAX_NEIGHBOURS` of every member: their target too, so that members full at
/// their target dial nobody at random, and A and B hold few members among the nine.
const SMALL_ROOM: &str = "4";
/// Upper bound for a dial-back result: the first test is asked at a maintenance tick once
/// two dialled members agree on the mapping, and one that found no third member (every
/// member met within `CONTACT_MEMORY_MS`) is asked again 10 s later.
const DIAL_BACK_BOUND: Duration = Duration::from_secs(120);

/// A dial-back tells the filters apart: A behind a full cone and B behind a port-restricted
/// NAT both have an endpoint-independent mapping; a member neither ever sent to, asked by a
/// neighbour, dials each at its mapping. It reaches A (reachable from outside: A's entry says
/// public) and not B.
#[test]
fn a_dial_back_finds_a_full_cone_reachable_and_a_port_restricted_nat_not() {
    let Some(mut lab) = Lab::for_test("pgd") else {
        return;
    };
    let hosts: Vec<_> = PUBLIC
        .iter()
        .map(|l| lab.public(&l.to_lowercase()))
        .collect();
    let a_host = lab.behind(&["a"], Nat::FullCone).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);
    let room = [("PEERGROUP_MAX_NEIGHBOURS", SMALL_ROOM)];
    let listen = |h: &common::lab::Host| format!("{}:0", h.addr);
    let mut publics: Vec<Peer> = PUBLIC
        .iter()
        .zip(&hosts)
        .map(|(l, h)| Peer::spawn_env(l, &h.ns, &listen(h), &[], &room))
        .collect();
    let (first, rest) = publics.split_first_mut().unwrap();
    first.identity("p1");
    first.create_group(false);
    for (i, p) in rest.iter_mut().enumerate() {
        let (_, xml) = p.identity(&format!("p{}", i + 2));
        p.join_from(first, &xml, false, false);
        p.wait_joined();
    }
    phase("seven public members joined");
    let mut a = Peer::spawn_env("A", &a_host.ns, &listen(&a_host), &[], &room);
    let mut b = Peer::spawn_env("B", &b_host.ns, &listen(&b_host), &[], &room);
    let (_, a_xml) = a.identity("a");
    let (_, b_xml) = b.identity("b");
    a.join_from(first, &a_xml, false, false);
    b.join_from(first, &b_xml, false, false);
    a.wait_joined();
    b.wait_joined();
    phase("A and B joined");

    let outside = |p: &mut Peer, want: &str| {
        let label = p.label;
        until(
            &format!("{label} is {want} from outside"),
            DIAL_BACK_BOUND,
            || {
                let s = p.status();
                let now = s.raw["outside"].as_str().unwrap_or_default().to_owned();
                if now.starts_with(want) {
                    Ok(s)
                } else {
                    Err(format!(
                        "nat {} outside {now}: {}",
                        s.raw["nat"], s.raw["neighbours"]
                    ))
                }
            },
        )
    };
    let sa = outside(&mut a, &format!("reachable at {}:", a_host.public_ip));
    assert_eq!(sa.raw["nat"], "endpoint-independent", "{}", sa.raw);
    let sb = outside(&mut b, "unreachable");
    assert_eq!(sb.raw["nat"], "endpoint-independent", "{}", sb.raw);
    // Neither result moves once found: B's restricted NAT never lets a stranger in.
    let again = b.status();
    assert_eq!(again.raw["outside"], "unreachable", "{}", again.raw);
    // All stop at once: each one's close then waits on no neighbour still up.
    let mut all: Vec<&mut Peer> = vec![&mut a, &mut b];
    all.extend(publics.iter_mut());
    for p in all.iter_mut() {
        p.end_input();
    }
    for p in all {
        let status = p.wait_exit();
        assert!(status.success(), "{} exited with {status}", p.label);
    }
    drop(lab);
    phase("done");
}
