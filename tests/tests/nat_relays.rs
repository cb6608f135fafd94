//! Member relays in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! Two public members R1 and R2 relay; A sits behind a symmetric NAT and B behind a
//! port-restricted one, so neither can ever dial the other (A's mapping changes per
//! destination, B's NAT admits only hosts B has sent to). Both join through R1, then become
//! each other's neighbours through a tunnel one of the relays carries: an end-to-end member
//! connection whose handshake and frames the relay only forwards. A opens a direct
//! connection to B (`PeerGroupOpenDirectConnection`, no address), which runs through the same
//! relay; that relay is killed mid-transfer: A sees the connection go, A and B meet again
//! through the other relay, and a new direct connection carries data intact. R1 forwards
//! the tunnel's datagrams as channel datagrams (counted at its host); R2's host drops every
//! channel datagram, so through R2 the tunnel stays on its streams and works all the same.
//! Then B invites
//! C, behind a third NAT: the
//! invitation carries the relays' addresses after B's own, so C joins although it can
//! reach B at none of B's.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{peer_on, Host, Lab, Nat};
use common::{phase, until, Peer};
use serde_json::json;
use std::time::Duration;

/// Upper bound for A and B to become each other's neighbours through a relay.
const MEET_BOUND: Duration = Duration::from_secs(60);

/// Waits until `p` has `member` as a neighbour through a relay; returns the relay's node id.
fn relayed_neighbour(p: &mut Peer, member: &str, not_by: Option<u64>) -> u64 {
    let label = p.label;
    until(
        &format!("{label} has {member} as a relayed neighbour"),
        MEET_BOUND,
        || {
            let s = p.status();
            match s.neighbour(member).and_then(|n| n["relayed_by"].as_u64()) {
                Some(relay) if Some(relay) != not_by => Ok(relay),
                _ => Err(s.raw.to_string()),
            }
        },
    )
}

/// Sends MiB after MiB A→B on direct connection `id` (which B has received `received` bytes
/// on) until one goes through `relay`'s host as channel datagrams (over a MiB of them);
/// returns what B then has on the connection.
fn by_channel(lab: &Lab, relay: &Host, a: &mut Peer, b: &mut Peer, id: u64, received: u64) -> u64 {
    let mut total = received;
    let mut seed = 101;
    let seen = until(
        "a MiB goes by channel through the relay",
        MEET_BOUND,
        || {
            let before = lab.channel_bytes(relay);
            a.call(
                json!({"cmd": "send_bulk", "connection_id": id, "bytes": 1 << 20, "seed": seed}),
            );
            seed += 2;
            total += 1 << 20;
            b.wait_received("a MiB more", MEET_BOUND, |c| {
                c["bytes"].as_u64().unwrap_or(0) >= total
            });
            match lab.channel_bytes(relay) - before {
                seen if seen > 1 << 20 => Ok(seen),
                seen => Err(format!("{seen} bytes of channel datagrams for a MiB")),
            }
        },
    );
    phase(&format!(
        "{}'s host saw {seen} bytes of channel datagrams for a MiB",
        relay.label
    ));
    total
}

#[test]
fn members_behind_nats_that_cannot_dial_each_other_meet_through_a_relay_member() {
    let Some(mut lab) = Lab::for_test("pgr") else {
        return;
    };
    let r1_host = lab.public("pub1");
    let r2_host = lab.public("pub2");
    let a_host = lab.behind(&["a"], Nat::Symmetric).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);
    let c_host = lab.behind(&["c"], Nat::AddressRestricted).remove(0);
    // The NATs are what the test says before it relies on them.
    let a_nat = lab.check(&a_host, &r1_host, &r2_host);
    assert!(!a_nat.independent_mapping, "A's NAT maps per destination");
    let b_nat = lab.check(&b_host, &r1_host, &r2_host);
    assert!(!b_nat.open_to_other_ips, "B's NAT admits only where B sent");

    lab.watch_channels(&r1_host, false);
    lab.watch_channels(&r2_host, true);
    let mut r1 = peer_on("R1", &r1_host, &[]);
    let mut r2 = peer_on("R2", &r2_host, &[]);
    let mut a = peer_on("A", &a_host, &[]);
    let mut b = peer_on("B", &b_host, &[]);
    let mut c = peer_on("C", &c_host, &[]);
    let (r1_name, _) = r1.identity("r1");
    let (_, r2_xml) = r2.identity("r2");
    let (a_name, a_xml) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    let (_, c_xml) = c.identity("c");
    r1.create_group(true);
    r2.join_from(&mut r1, &r2_xml, false, true);
    r2.wait_joined();
    a.join_from(&mut r1, &a_xml, true, false);
    b.join_from(&mut r1, &b_xml, true, false);
    a.wait_joined();
    b.wait_joined();
    phase("A and B joined");

    let relay = relayed_neighbour(&mut a, &b_name, None);
    let relay_b = relayed_neighbour(&mut b, &a_name, None);
    assert_eq!(relay, relay_b, "both ends name the same relay");
    let sa = a.status();
    let relay_name = sa.raw["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"].as_u64() == Some(relay) && n["relayed_by"].is_null())
        .map(|n| n["member"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("the relay is A's direct neighbour: {}", sa.raw));
    phase(&format!("A and B are neighbours through {relay_name}"));

    // A record written at A reaches B (over whichever neighbours), and data sent on every
    // neighbour connection, the relayed one too, goes out without error.
    let id = a.add("through a relay");
    until("B holds A's record", MEET_BOUND, || {
        let r = b.records();
        if r.ids.contains(&id) {
            Ok(())
        } else {
            Err(r.to_string())
        }
    });
    let sent = a.call(json!({"cmd": "send", "text": "hello through the relay"}));
    assert!(sent["sent"].as_u64().unwrap() >= 2, "{sent}");

    // A direct connection A→B runs through the same relay; the relay is killed while 64 MiB
    // are on their way. A sees the connection go (an event), then A and B meet again through
    // the other relay and a new direct connection carries data intact.
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    assert_eq!(d["relayed"], true, "A reaches B through a relay only: {d}");
    let direct_id = d["connection_id"].as_u64().unwrap();
    let first_is_r1 = relay_name == r1_name;
    let (stopping, staying) = if first_is_r1 {
        (&mut r1, &mut r2)
    } else {
        (&mut r2, &mut r1)
    };
    let (first_host, other_host) = if first_is_r1 {
        (&r1_host, &r2_host)
    } else {
        (&r2_host, &r1_host)
    };
    // Through R1 the tunnel's data goes by channel once the channel is up (a few probes
    // after the tunnel): R1's host counts them. Through R2, whose host drops them all, the
    // streams carry everything.
    let mut carried = 0;
    if first_is_r1 {
        carried = by_channel(&lab, first_host, &mut a, &mut b, direct_id, 0);
    }
    a.send(&json!({"cmd": "send_bulk", "connection_id": direct_id, "bytes": 64 << 20, "seed": 7}));
    b.wait_received("the first MiB on the direct connection", MEET_BOUND, |c| {
        c["bytes"].as_u64().unwrap_or(0) >= carried + (1 << 20)
    });
    stopping.kill_host();
    phase("the relay was killed mid-transfer");
    // The transfer ends either way: queued in time, or refused once the connection went.
    let sent = a.json_line();
    phase(&format!("A's transfer ended: {sent}"));
    until("A sees its direct connection go", MEET_BOUND, || {
        let v = a.call(json!({"cmd": "received"}));
        let gone = v["directs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["connection_id"] == direct_id && d["status"] == 2);
        if gone {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    let again = relayed_neighbour(&mut a, &b_name, Some(relay));
    assert_ne!(again, relay);
    relayed_neighbour(&mut b, &a_name, Some(relay));
    phase("A and B are neighbours through the other relay");
    let d = a.call(json!({"cmd": "direct", "member": b_name, "timeout_ms": 30_000}));
    let direct_id = d["connection_id"].as_u64().unwrap();
    let dropped_before = lab.channel_bytes(other_host);
    let sent = a
        .call(json!({"cmd": "send_bulk", "connection_id": direct_id, "bytes": 4 << 20, "seed": 8}));
    b.wait_received("the 4 MiB sent after the relay died", MEET_BOUND, |c| {
        c["sha256"] == sent["sha256"] && c["bytes"] == 4 << 20
    });
    phase("a new direct connection through the other relay carried 4 MiB intact");
    if first_is_r1 {
        // Through R2, whose host drops channel datagrams: the streams carried it; only the
        // probes of the tunnels set up meanwhile were dropped.
        let dropped = lab.channel_bytes(other_host) - dropped_before;
        assert!(dropped < 64 << 10, "R2's host dropped {dropped} bytes");
    } else {
        by_channel(&lab, other_host, &mut a, &mut b, direct_id, 4 << 20);
    }

    // B, behind its NAT, invites C behind another: C gets in through the relay named.
    let inv = b.call(json!({"cmd": "invite", "xml": c_xml}));
    c.call(json!({"cmd": "join", "invitation": inv["invitation"]}));
    c.call(json!({"cmd": "connect"}));
    c.wait_joined();
    until("C holds A's record", MEET_BOUND, || {
        let r = c.records();
        if r.ids.contains(&id) {
            Ok(())
        } else {
            Err(r.to_string())
        }
    });
    phase("C joined with B's invitation");
    for p in [&mut a, &mut b, &mut c, staying] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
