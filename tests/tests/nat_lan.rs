//! LAN discovery in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! L1 and L2 sit on one LAN behind one NAT; R, the group's creator, is public. L1 joins
//! through R. R writes L2's invitation, which carries R's address only, and is then killed:
//! L2 can reach the group only by finding L1 on its link (mDNS, `core/discovery.rs`), and
//! does: it joins, synchronises and has L1 as a neighbour at L1's LAN address. A bystander
//! on the same LAN hears the announcements, and nothing in them names a member, the group
//! or a node.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{peer_on, Lab, Nat};
use common::{phase, until};
use serde_json::json;
use std::time::{Duration, Instant};

/// Upper bound for L2 to join through what it found.
const BOUND: Duration = Duration::from_secs(60);

/// `s` as the hex of its bytes, the form the bystander's capture is in.
fn hex(s: &[u8]) -> String {
    s.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_joiner_finds_a_member_on_its_lan_and_a_bystander_learns_no_name() {
    let Some(mut lab) = Lab::for_test("pgl") else {
        return;
    };
    let r_host = lab.public("pub1");
    let lan = lab.behind(&["lan1", "lan2", "lan3"], Nat::PortRestricted);
    let mut bystander = lab.probe(&lan[2]);
    let v = bystander.call(json!({"op": "mdns", "port": 5353}));
    assert_eq!(v["ok"], true, "the bystander listens: {v}");

    let mut r = peer_on("R", &r_host, &[]);
    let mut l1 = peer_on("L1", &lan[0], &[]);
    let mut l2 = peer_on("L2", &lan[1], &[]);
    let (r_name, _) = r.identity("r");
    let (l1_name, l1_xml) = l1.identity("l1");
    let (l2_name, l2_xml) = l2.identity("l2");
    r.create_group(false);
    l1.join_from(&mut r, &l1_xml, false, false);
    l1.wait_joined();
    let inv = r.call(json!({"cmd": "invite", "xml": l2_xml, "inviting": false}));
    let invitation = inv["invitation"].as_str().unwrap().to_owned();
    for h in [&lan[0], &lan[1]] {
        assert!(
            !invitation.contains(&h.addr.to_string()),
            "the invitation names no LAN address"
        );
    }
    r.kill_host();
    phase("L1 joined through R; R was killed; L2's invitation names only R");

    let joined = l2.call(json!({"cmd": "join", "invitation": invitation}));
    let t0 = Instant::now();
    l2.call(json!({"cmd": "connect"}));
    let at = until("L2 has L1 as a neighbour", BOUND, || {
        match l2.neighbour(&l1_name) {
            Some(n) => Ok(n),
            None => Err(format!("{:?}", l2.status())),
        }
    });
    let found_in = t0.elapsed();
    l2.wait_joined();
    assert!(
        at["address"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", lan[0].addr)),
        "L2 reaches L1 on the LAN: {at}"
    );
    phase(&format!(
        "L2 found L1 on the LAN and joined through it: neighbour {:.0} ms after connect",
        found_in.as_secs_f64() * 1e3
    ));

    // What the bystander heard: announcements, none naming anyone.
    let mut heard = Vec::new();
    loop {
        let v = bystander.try_call(json!({"op": "recv", "port": 5353, "timeout_ms": 500}));
        if v["ok"] != true {
            break;
        }
        heard.push(v["text"].as_str().unwrap().to_owned());
    }
    let service = hex(b"_peergroup");
    assert!(
        heard.iter().any(|p| p.contains(&service)),
        "the bystander heard the announcements ({} datagrams)",
        heard.len()
    );
    let l1_node = at["node_id"].as_u64().unwrap();
    let mut secrets: Vec<(String, String)> = Vec::new();
    for name in [&r_name, &l1_name, &l2_name] {
        secrets.push((format!("peer name {name}"), hex(name.as_bytes())));
        // The authority alone (the identity's hash), in text and as bytes.
        let authority = name.split('.').next().unwrap();
        secrets.push((format!("authority {authority}"), hex(authority.as_bytes())));
        if let Ok(raw) = (0..authority.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&authority[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
        {
            secrets.push((format!("authority bytes {authority}"), hex(&raw)));
        }
    }
    secrets.push((format!("node id {l1_node}"), hex(&l1_node.to_be_bytes())));
    secrets.push((
        format!("node id {l1_node} (le)"),
        hex(&l1_node.to_le_bytes()),
    ));
    if let Some(g) = joined["group"].as_str() {
        secrets.push((format!("group {g}"), hex(g.as_bytes())));
    }
    for (what, needle) in &secrets {
        for p in &heard {
            assert!(!p.contains(needle.as_str()), "the LAN heard {what}");
        }
    }
    phase(&format!(
        "the bystander heard {} mDNS datagrams; none carried any of {} identifiers",
        heard.len(),
        secrets.len()
    ));
    for p in [&mut l1, &mut l2] {
        p.finish_logged();
    }
    drop(bystander);
    drop(lab);
    phase("done");
}
