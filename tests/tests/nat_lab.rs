//! The NAT lab checks itself: every profile, probed from two public observers, maps and
//! filters as its name says, and every router drops new inbound traffic at its own input.
//! (`common/lab.rs` builds the namespaces; they are removed on every exit path.)
//!
//! Needs root, iproute2 and nftables. Without them it prints "skipped: …" and passes, except
//! under CI (`CI=true`), where a missing capability fails.

mod common;

use common::lab::{Lab, Nat, Probed};
use common::phase;

#[test]
fn every_profile_maps_and_filters_as_named() {
    let Some(mut lab) = Lab::for_test("pgl") else {
        return;
    };
    let s1 = lab.public("s1");
    let s2 = lab.public("s2");
    let open = lab.public("open");
    let cone = lab.behind(&["cone"], Nat::FullCone).remove(0);
    let addr = lab.behind(&["addr"], Nat::AddressRestricted).remove(0);
    let port = lab.behind(&["port"], Nat::PortRestricted).remove(0);
    let sym = lab.behind(&["sym"], Nat::Symmetric).remove(0);
    let cgn = lab.behind(&["cgn"], Nat::Carrier).remove(0);

    // (independent mapping, open to other IPs, open to other ports of the same IP)
    let expect = [
        (&open, (true, true, true)),
        (&cone, (true, true, true)),
        (&addr, (true, false, true)),
        (&port, (true, false, false)),
        (&sym, (false, false, false)),
        (&cgn, (true, false, false)),
    ];
    for (host, (independent, other_ips, other_ports)) in expect {
        let p: Probed = lab.check(host, &s1, &s2);
        assert_eq!(
            (
                p.independent_mapping,
                p.open_to_other_ips,
                p.open_to_other_ports
            ),
            (independent, other_ips, other_ports),
            "{} behind {:?}: {p:?}",
            host.label,
            host.nat
        );
        // The observers see the router's public address, never the private one.
        assert_eq!(*p.mapped.ip(), host.public_ip, "{}: {p:?}", host.label);
    }
    // What the port-restricted and symmetric routers refused reached their own input, and
    // was dropped there.
    for host in [&port, &sym, &cgn] {
        let router = host.routers.last().unwrap();
        assert!(
            lab.input_drops(router) > 0,
            "{router} dropped no new inbound traffic"
        );
    }
    phase("done");
}

#[test]
fn a_firewall_lets_udp_out_to_one_member_only_and_a_lan_stays_a_lan() {
    let root_rules = root_ruleset();
    let Some(mut lab) = Lab::for_test("pgf") else {
        return;
    };
    let relay = lab.public("relay");
    let other = lab.public("other");
    let walled = lab
        .behind(&["walled"], Nat::UdpOnlyTo(relay.addr))
        .remove(0);
    // UDP to the one allowed member goes through, and its answer comes back.
    let mut w = lab.probe(&walled);
    let mut r = lab.probe(&relay);
    r.call(serde_json::json!({"op":"bind","port":3478,"echo":true}));
    w.call(serde_json::json!({"op":"bind","port":4000}));
    let to = format!("{}:3478", relay.addr);
    w.call(serde_json::json!({"op":"send","port":4000,"to":to,"text":"probe"}));
    assert_eq!(
        Lab::recv(&mut w, 4000)["text"],
        format!("seen {}:4000", walled.public_ip)
    );
    w.finish_success();
    r.finish_success();
    assert!(
        !lab.udp_reaches(&walled, &other, &relay),
        "UDP to anyone else is dropped"
    );
    // Two hosts behind one NAT reach each other on their LAN, at their private addresses.
    let pair = lab.behind(&["left", "right"], Nat::PortRestricted);
    let p = lab.check(&pair[0], &relay, &other);
    assert_eq!(*p.mapped.ip(), pair[0].public_ip);
    let mut left = lab.probe(&pair[0]);
    let mut right = lab.probe(&pair[1]);
    left.call(serde_json::json!({"op":"bind","port":5000,"echo":true}));
    right.call(serde_json::json!({"op":"bind","port":5000}));
    let to = format!("{}:5000", pair[0].addr);
    right.call(serde_json::json!({"op":"send","port":5000,"to":to,"text":"probe"}));
    let seen = Lab::recv(&mut right, 5000);
    assert_eq!(
        seen["text"],
        format!("seen {}:5000", pair[1].addr),
        "the LAN neighbour sees the private address: no hairpin through the router"
    );
    left.finish_success();
    right.finish_success();
    drop(lab);
    // The lab never touched the root namespace's firewall.
    assert_eq!(root_ruleset(), root_rules);
    phase("done");
}

fn root_ruleset() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
