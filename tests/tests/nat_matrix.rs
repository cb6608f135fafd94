//! The NAT matrix (`common/lab.rs`), as real `pg-peer` processes: members behind every pair
//! of {public, full cone, address-restricted, port-restricted, symmetric}, two public relay
//! members R1 and R2, a carrier-grade NAT pair and two members behind one NAT.
//!
//! One group holds them all. Each of the ten matrix members writes a record that every
//! other one receives (both ways for every pair). Then every member A of the first column
//! opens `PeerGroupOpenDirectConnection` to every member B of the second, with no address
//! (the library picks the path: direct where the NATs allow it, else through a relay), and
//! sends 16 MiB on it that B receives intact. A connection that began relayed is upgraded in
//! place by a punch (`proto::upgrade`): the 22 pairs plain punching opens (all but
//! port-restricted × symmetric, symmetric × port-restricted and symmetric × symmetric) end
//! on a direct path. The carrier-grade pair does the same; the pair behind one NAT reaches
//! each other at their LAN addresses, not through a hairpin. Then R1 stops: every connection
//! on a direct path carries on, and every pair opens a direct connection again and carries
//! data through what is left (R2 where no direct path exists).
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{peer_on, Host, Lab, Nat, Probed};
use common::{phase, until, Peer};
use serde_json::json;
use std::time::Duration;

/// What each pair carries on its first direct connection.
const TRANSFER: u64 = 16 << 20;
/// Upper bound for a relayed connection of a punchable pair to reach a direct path.
const UPGRADE_BOUND: Duration = Duration::from_secs(60);
/// What each pair carries after R1 stopped.
const AFTER_STOP: u64 = 1 << 20;
/// Upper bound for one record or transfer to arrive.
const ARRIVAL_BOUND: Duration = Duration::from_secs(120);

/// `PEER_E_NODE_NOT_FOUND` as pg-peer reports it (an i32).
const PEER_E_NODE_NOT_FOUND: i32 = 0x8063_0108_u32 as i32;
/// `PEER_E_CONNECTION_FAILED` as pg-peer reports it.
const PEER_E_CONNECTION_FAILED: i32 = 0x8063_0109_u32 as i32;

/// The matrix profiles, in order.
const PROFILES: [Nat; 5] = [
    Nat::Public,
    Nat::FullCone,
    Nat::AddressRestricted,
    Nat::PortRestricted,
    Nat::Symmetric,
];
const A_LABELS: [&str; 5] = ["A-pub", "A-full", "A-addr", "A-port", "A-sym"];
const B_LABELS: [&str; 5] = ["B-pub", "B-full", "B-addr", "B-port", "B-sym"];

/// A host of profile `nat` named `label` (lab names stay short and apart from the routers').
fn host(lab: &mut Lab, label: &str, nat: Nat) -> Host {
    let name = label.to_lowercase().replace('-', "");
    match nat {
        Nat::Public => lab.public(&name),
        nat => lab.behind(&[&name], nat).remove(0),
    }
}

/// The NAT is what the matrix says before the test relies on it.
fn assert_profile(label: &str, nat: Nat, p: &Probed) {
    let (independent, other_ips, other_ports) = match nat {
        Nat::FullCone => (Some(true), true, true),
        Nat::AddressRestricted => (Some(true), false, true),
        Nat::PortRestricted => (Some(true), false, false),
        Nat::Symmetric => (Some(false), false, false),
        Nat::Carrier => (None, false, false),
        _ => return,
    };
    if let Some(i) = independent {
        assert_eq!(p.independent_mapping, i, "{label}: mapping: {p:?}");
    }
    assert_eq!(p.open_to_other_ips, other_ips, "{label}: filtering: {p:?}");
    assert_eq!(
        p.open_to_other_ports, other_ports,
        "{label}: filtering: {p:?}"
    );
}

/// Whether plain hole punching opens a path from a member behind `a` to one behind `b`: all
/// but a port-restricted NAT facing a symmetric one (each side's packets come from a port
/// the other never sent to), either way round, and two symmetric ones.
fn punchable(a: Nat, b: Nat) -> bool {
    !matches!(
        (a, b),
        (Nat::PortRestricted, Nat::Symmetric)
            | (Nat::Symmetric, Nat::PortRestricted)
            | (Nat::Symmetric, Nat::Symmetric)
    )
}

/// The seed of the data `a` sends `b` in `round` (distinct per pair and round).
fn seed(a: usize, b: usize, round: u64) -> u64 {
    (round << 16) | ((a as u64) << 8) | b as u64 | 1 << 40
}

/// One direct connection asked for: who, to whom, and what it answered.
struct Opened {
    from: usize,
    to: usize,
    connection_id: u64,
    relayed: bool,
    address: String,
}

/// Has every `(from, to)` in `pairs` open a direct connection at once (one command per
/// process at a time: `pairs` names each `from` once). Asks again while presence has not
/// named `to` yet, and with `settling` (the group rewires after a member left) while the
/// attempt fails, within [`ARRIVAL_BOUND`].
fn open_all(
    peers: &mut [Peer],
    names: &[String],
    pairs: &[(usize, usize)],
    settling: bool,
) -> Vec<Opened> {
    for &(from, to) in pairs {
        peers[from].send(&json!({"cmd": "direct", "member": names[to], "timeout_ms": 60_000}));
    }
    pairs
        .iter()
        .map(|&(from, to)| {
            let mut v = peers[from].json_line();
            let deadline = std::time::Instant::now() + ARRIVAL_BOUND;
            // Presence may not have told `from` of `to` yet: ask again until it has.
            let again = |v: &serde_json::Value| {
                v["hresult"] == PEER_E_NODE_NOT_FOUND
                    || (settling && v["hresult"] == PEER_E_CONNECTION_FAILED)
            };
            while again(&v) && std::time::Instant::now() < deadline {
                phase(&format!(
                    "{} → {}: {v}; again",
                    peers[from].label, peers[to].label
                ));
                std::thread::sleep(Duration::from_millis(500));
                v = peers[from]
                    .try_call(json!({"cmd": "direct", "member": names[to], "timeout_ms": 60_000}));
            }
            assert_eq!(
                v["ok"], true,
                "{} opens a direct connection to {}: {v}",
                peers[from].label, peers[to].label
            );
            Opened {
                from,
                to,
                connection_id: v["connection_id"].as_u64().unwrap(),
                relayed: v["relayed"].as_bool().unwrap(),
                address: v["address"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Sends `bytes` on each opened connection at once, and waits until each receiver holds
/// them, intact (same SHA-256, all of it on one connection).
fn transfer_all(peers: &mut [Peer], opened: &[Opened], bytes: u64, round: u64) {
    for o in opened {
        peers[o.from].send(&json!({
            "cmd": "send_bulk",
            "connection_id": o.connection_id,
            "bytes": bytes,
            "seed": seed(o.from, o.to, round),
        }));
    }
    let sent: Vec<String> = opened
        .iter()
        .map(|o| {
            let v = peers[o.from].json_line();
            assert_eq!(v["ok"], true, "{} sends: {v}", peers[o.from].label);
            v["sha256"].as_str().unwrap().to_owned()
        })
        .collect();
    for (o, sha) in opened.iter().zip(&sent) {
        let from = peers[o.from].label;
        let receiver = &mut peers[o.to];
        receiver.wait_received(
            &format!("the {bytes} bytes {from} sent"),
            ARRIVAL_BOUND,
            |c| c["sha256"] == sha.as_str() && c["bytes"] == bytes,
        );
    }
}

#[test]
fn every_nat_pair_carries_a_direct_connection_and_survives_the_relay_stopping() {
    let Some(mut lab) = Lab::for_test("pgx") else {
        return;
    };
    let r1_host = lab.public("pub1");
    let r2_host = lab.public("pub2");
    let mut hosts: Vec<Host> = Vec::new();
    let mut labels: Vec<&'static str> = Vec::new();
    for (i, &nat) in PROFILES.iter().enumerate() {
        hosts.push(host(&mut lab, A_LABELS[i], nat));
        labels.push(A_LABELS[i]);
    }
    for (i, &nat) in PROFILES.iter().enumerate() {
        hosts.push(host(&mut lab, B_LABELS[i], nat));
        labels.push(B_LABELS[i]);
    }
    // The carrier-grade pair (10, 11) and two hosts on one LAN behind one NAT (12, 13).
    hosts.push(host(&mut lab, "C-1", Nat::Carrier));
    hosts.push(host(&mut lab, "C-2", Nat::Carrier));
    labels.extend(["C-1", "C-2"]);
    hosts.extend(lab.behind(&["lan1", "lan2"], Nat::PortRestricted));
    labels.extend(["L-1", "L-2"]);
    for (h, label) in hosts.iter().zip(&labels) {
        if h.nat != Nat::Public && !label.starts_with("L-") {
            assert_profile(label, h.nat, &lab.check(h, &r1_host, &r2_host));
        }
    }
    phase("the NATs are what the matrix says");

    let mut r1 = peer_on("R1", &r1_host, &[]);
    let mut r2 = peer_on("R2", &r2_host, &[]);
    let mut peers: Vec<Peer> = hosts
        .iter()
        .zip(&labels)
        .map(|(h, label)| peer_on(label, h, &[]))
        .collect();
    r1.identity("r1");
    let (_, r2_xml) = r2.identity("r2");
    let mut names = Vec::new();
    let mut xmls = Vec::new();
    for (i, p) in peers.iter_mut().enumerate() {
        let (name, xml) = p.identity(&format!("m{i}"));
        names.push(name);
        xmls.push(xml);
    }
    r1.create_group(true);
    r2.join_from(&mut r1, &r2_xml, false, true);
    r2.wait_joined();
    for (p, xml) in peers.iter_mut().zip(&xmls) {
        p.join_from(&mut r1, xml, false, false);
    }
    for p in peers.iter_mut() {
        p.wait_joined();
    }
    phase("all joined");

    // Records both ways: each matrix member writes one, every other one receives it.
    let ids: Vec<String> = (0..10)
        .map(|i| peers[i].add(&format!("from {}", labels[i])))
        .collect();
    for p in peers.iter_mut().take(10) {
        let label = p.label;
        until(
            &format!("{label} holds every matrix member's record"),
            ARRIVAL_BOUND,
            || {
                let r = p.records();
                match ids.iter().find(|id| !r.ids.contains(*id)) {
                    None => Ok(()),
                    Some(missing) => Err(format!("missing {missing}: {r}")),
                }
            },
        );
    }
    phase("every matrix member holds every matrix member's record");

    // 16 MiB on a direct connection from every A to every B: five rounds of five pairs at
    // once, A_i to B_(i+round). The connections stay open.
    let mut began = vec![vec![false; 5]; 5];
    let mut kept: Vec<Opened> = Vec::new();
    for round in 0..5 {
        let pairs: Vec<(usize, usize)> = (0..5).map(|a| (a, 5 + (a + round) % 5)).collect();
        let opened = open_all(&mut peers, &names, &pairs, false);
        transfer_all(&mut peers, &opened, TRANSFER, round as u64);
        for o in &opened {
            began[o.from][o.to - 5] = o.relayed;
        }
        kept.extend(opened);
        phase(&format!(
            "matrix round {round}: 16 MiB intact on five pairs"
        ));
    }
    // Every punchable pair ends on a direct path, the same connection upgraded in place.
    for o in &kept {
        if punchable(PROFILES[o.from], PROFILES[o.to - 5]) {
            peers[o.from].wait_direct_path(o.connection_id, UPGRADE_BOUND);
        }
    }
    let mut table = vec![vec![String::new(); 5]; 5];
    for o in &kept {
        let now = peers[o.from]
            .directs()
            .into_iter()
            .find(|d| d["connection_id"] == o.connection_id)
            .unwrap_or_else(|| panic!("{} lost its connection", peers[o.from].label));
        let path = |relayed: bool| if relayed { "relayed" } else { "direct" };
        table[o.from][o.to - 5] = match (began[o.from][o.to - 5], now["relayed"] == true) {
            (true, false) => "upgraded".to_owned(),
            (_, now) => path(now).to_owned(),
        };
    }
    let mut printed = format!("{:>8}", "A \\ B");
    for b in B_LABELS {
        printed += &format!("{b:>10}");
    }
    for (a, row) in table.iter().enumerate() {
        printed += &format!("\n{:>8}", A_LABELS[a]);
        for cell in row {
            printed += &format!("{cell:>10}");
        }
    }
    phase(&format!(
        "paths of the matrix's direct connections (upgraded: began relayed, now direct):\n{printed}"
    ));
    // A public member or a full-cone one is dialled directly from anywhere.
    for (a, row) in table.iter().enumerate() {
        for b in [0, 1] {
            assert_eq!(
                row[b], "direct",
                "{} reaches {} without a relay:\n{printed}",
                A_LABELS[a], B_LABELS[b]
            );
        }
    }

    // The carrier-grade pair carries 16 MiB; the pair behind one NAT meets on its LAN.
    let opened = open_all(&mut peers, &names, &[(10, 11), (12, 13)], false);
    transfer_all(&mut peers, &opened, TRANSFER, 9);
    let lan = &opened[1];
    assert!(!lan.relayed, "L-1 reaches L-2 without a relay");
    assert!(
        lan.address.starts_with(&format!("{}:", hosts[13].addr)),
        "L-1 reaches L-2 at its LAN address {}, not through a hairpin: {}",
        hosts[13].addr,
        lan.address
    );
    phase(&format!(
        "carrier-grade pair: {}; LAN pair at {}",
        if opened[0].relayed {
            "relayed"
        } else {
            "direct"
        },
        lan.address
    ));

    // R1 stops: the connections on a direct path carry on; every pair connects again
    // through what is left.
    r1.call(json!({"cmd": "close"}));
    phase("R1 closed its group");
    let on_direct: Vec<Opened> = kept
        .into_iter()
        .filter(|o| table[o.from][o.to - 5] != "relayed")
        .collect();
    for round in 0..5 {
        // One send per process at a time.
        let batch: Vec<&Opened> = on_direct
            .iter()
            .filter(|o| (o.to - 5 + 5 - o.from) % 5 == round)
            .collect();
        for o in &batch {
            peers[o.from].send(&json!({
                "cmd": "send_bulk",
                "connection_id": o.connection_id,
                "bytes": AFTER_STOP,
                "seed": seed(o.from, o.to, 20 + round as u64),
            }));
        }
        for o in &batch {
            let v = peers[o.from].json_line();
            assert_eq!(
                v["ok"], true,
                "{} sends after R1 stopped: {v}",
                peers[o.from].label
            );
        }
        for o in &batch {
            let from = peers[o.from].label;
            // Each receiver gets one such connection per round at most: count them.
            let before = on_direct
                .iter()
                .filter(|p| p.to == o.to && (p.to - 5 + 5 - p.from) % 5 < round)
                .count();
            let receiver = &mut peers[o.to];
            until(
                &format!(
                    "{} received {from}'s 1 MiB more on its first connection",
                    receiver.label
                ),
                ARRIVAL_BOUND,
                || {
                    let v = receiver.call(json!({"cmd": "received"}));
                    let longer = v["connections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|c| c["bytes"] == TRANSFER + AFTER_STOP)
                        .count();
                    if longer > before {
                        Ok(())
                    } else {
                        Err(v.to_string())
                    }
                },
            );
        }
    }
    phase(&format!(
        "after R1 stopped, the {} connections on a direct path carried 1 MiB more",
        on_direct.len()
    ));
    for round in 0..5 {
        let pairs: Vec<(usize, usize)> = (0..5).map(|a| (a, 5 + (a + round) % 5)).collect();
        let opened = open_all(&mut peers, &names, &pairs, true);
        transfer_all(&mut peers, &opened, AFTER_STOP, 10 + round as u64);
    }
    phase("after R1 stopped, every pair carried data on a new direct connection");

    // All close at once; then each must have exited cleanly.
    for p in peers.iter_mut().chain([&mut r2, &mut r1]) {
        p.end_input();
    }
    for p in peers.iter_mut().chain([&mut r2, &mut r1]) {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
