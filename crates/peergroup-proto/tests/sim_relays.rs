//! Member relays in the simulated network: members behind NATs (nobody can dial them) reach
//! each other through relay members, within the relays' bounds, and a direct link is never
//! replaced by a relayed one.

use peergroup_proto::relay::MAX_TUNNELS_PER_RELAY;
use peergroup_proto::sim::{Sim, SimConfig};
use peergroup_proto::wire::KIND_PEERS;

const TYPE: [u8; 16] = [0x52; 16];

fn natted_sim(members: usize, seed: u64, relay_per_mille: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members,
        seed,
        records: true,
        nat_per_mille: 500,
        relay_per_mille,
        ..SimConfig::default()
    });
    sim.run_until(120_000);
    sim
}

/// Links between two members behind NATs, and how many of them run through a relay.
fn natted_pairs(sim: &Sim) -> (usize, usize) {
    let mut pairs = 0;
    let mut relayed = 0;
    for (i, g) in sim.nodes.iter().enumerate() {
        if !sim.natted[i] {
            continue;
        }
        for (conn, _, node, _, _) in g.neighbours() {
            let j = sim.nodes.iter().position(|o| o.node_id() == node).unwrap();
            if sim.natted[j] {
                pairs += 1;
                if g.relayed_by(conn).is_some() {
                    relayed += 1;
                }
            }
        }
    }
    (pairs, relayed)
}

#[test]
fn members_behind_nats_meet_through_relays_within_the_bounds() {
    let n = 200;
    let mut sim = natted_sim(n, 5, 100);
    assert!(sim.connected(), "the group formed");
    let natted = sim.natted.iter().filter(|x| **x).count();
    let relays = sim.relaying.iter().filter(|x| **x).count();
    assert!(
        natted > 60 && relays >= 2,
        "{natted} behind NATs, {relays} relays"
    );
    let (pairs, relayed) = natted_pairs(&sim);
    assert!(pairs > 0, "members behind NATs became neighbours");
    assert_eq!(pairs, relayed, "and every such link runs through a relay");
    assert!(sim.max_carried > 0 && sim.max_carried <= MAX_TUNNELS_PER_RELAY);
    // A relayed neighbour is relayed by a member that relays.
    for g in &sim.nodes {
        for (conn, ..) in g.neighbours() {
            if let Some(relay) = g.relayed_by(conn) {
                let r = sim.nodes.iter().position(|o| o.node_id() == relay).unwrap();
                assert!(sim.relaying[r] && !sim.natted[r]);
            }
        }
    }
    // Records flood over relayed links like any other.
    let writer = sim.natted.iter().position(|x| *x).unwrap();
    sim.add_record(writer, TYPE, b"behind a NAT".to_vec());
    let t = sim.now();
    sim.run_until(t + 10_000);
    for (_, d) in sim.deliveries() {
        assert!(d.seen.iter().all(|s| s.is_some()), "reached every member");
    }
}

#[test]
fn without_relays_members_behind_nats_never_link_with_each_other() {
    let sim = natted_sim(120, 6, 0);
    assert!(sim.connected(), "they still join through public members");
    assert_eq!(natted_pairs(&sim), (0, 0));
    assert_eq!(sim.relayed_links(), 0);
    assert_eq!(sim.max_carried, 0);
}

#[test]
fn when_the_plain_public_members_leave_members_behind_nats_keep_their_relayed_links() {
    let n = 150;
    let mut sim = natted_sim(n, 7, 150);
    let leaving: Vec<usize> = (1..n)
        .filter(|&i| !sim.natted[i] && !sim.relaying[i])
        .collect();
    assert!(!leaving.is_empty());
    for &i in &leaving {
        sim.leave(i);
    }
    let t = sim.now();
    sim.run_until(t + 60_000);
    for i in (0..n).filter(|i| sim.natted[*i]) {
        assert!(
            sim.nodes[i].neighbours().count() > 0,
            "member {i} behind a NAT kept neighbours"
        );
    }
    let (pairs, relayed) = natted_pairs(&sim);
    assert_eq!(pairs, relayed);
    assert!(relayed > 0);
    // A record written behind a NAT reaches the relays that carry its links.
    let writer = (0..n).rev().find(|i| sim.natted[*i]).unwrap();
    let id = sim.add_record(writer, TYPE, b"after the exodus".to_vec());
    let t = sim.now();
    sim.run_until(t + 10_000);
    let relays_of_writer: Vec<u64> = sim.nodes[writer]
        .neighbours()
        .filter_map(|nb| sim.nodes[writer].relayed_by(nb.0))
        .collect();
    for relay in relays_of_writer {
        let r = sim.nodes.iter().position(|g| g.node_id() == relay).unwrap();
        assert!(sim.record(r, &id).is_some(), "relay {r} got it");
    }
}

#[test]
fn the_same_seed_gives_the_same_relayed_run() {
    let a = natted_sim(80, 9, 200);
    let b = natted_sim(80, 9, 200);
    assert_eq!(a.messages, b.messages);
    assert_eq!(a.relayed_links(), b.relayed_links());
    assert_eq!(natted_pairs(&a), natted_pairs(&b));
}

/// A realistic mix: a fifth of the members public (a tenth of those relay), the rest behind
/// full-cone, address-restricted, port-restricted and symmetric NATs. Members meet through
/// relays and punch through them (`Message::Punch`): only the pairs no punch opens stay
/// relayed, a small share of all links.
#[test]
fn with_a_realistic_nat_mix_punching_leaves_few_links_relayed() {
    let mut sim = Sim::new(SimConfig {
        members: 300,
        seed: 11,
        records: true,
        nat_per_mille: 800,
        nat_mix: Some([100, 150, 500, 250]),
        relay_per_mille: 100,
        ..SimConfig::default()
    });
    sim.run_until(60_000);
    assert!(sim.connected(), "the group formed");
    let peers = |sim: &Sim| sim.by_kind.get(&KIND_PEERS).copied().unwrap_or(0);
    let (m0, c0, p0) = (sim.messages, sim.closes, peers(&sim));
    sim.run_until(120_000);
    let per_member_second = |n: u64| n as f64 / 300.0 / 60.0;
    println!(
        "60 s once formed: {:.1} messages per member per second ({:.2} Peers), {} closes",
        per_member_second(sim.messages - m0),
        per_member_second(peers(&sim) - p0),
        sim.closes - c0
    );
    // Entries change when members come and go, not while the relays stay full: naming a
    // relay that refused at once sent every member thousands of Peers (RELAY_SETTLE_MS).
    // What is left is a relay list or a dial-back result changing now and then: each such
    // change reaches every member's every neighbour (about 1 a second here; the seed
    // moves it between 0.1 and 7).
    assert!(
        per_member_second(peers(&sim) - p0) < 2.0,
        "members keep gossiping entry changes"
    );
    let (links, relayed) = sim.link_counts();
    let share = relayed as f64 / links as f64;
    println!(
        "300 members, 80 % behind NATs: {relayed} of {links} link ends relayed ({:.1} %)",
        share * 100.0
    );
    assert!(share <= 0.15, "{relayed} of {links} link ends relayed");
    // What stays relayed is a pair no punch opens.
    use peergroup_proto::sim::punchable;
    for (i, g) in sim.nodes.iter().enumerate() {
        for (conn, _, node, _, _) in g.neighbours() {
            if g.relayed_by(conn).is_some() {
                let j = sim.nodes.iter().position(|o| o.node_id() == node).unwrap();
                assert!(
                    !punchable(sim.nat[i], sim.nat[j]),
                    "{:?} and {:?} punch, yet stayed relayed",
                    sim.nat[i],
                    sim.nat[j]
                );
            }
        }
    }
}

/// Dial-backs tell the NAT filters apart: a member behind a full cone is reached unasked by
/// a member it never sent to and becomes public; one behind a restricted or symmetric NAT
/// finds it is not. The figures go to the test's output.
#[test]
fn dial_backs_find_the_full_cones_and_only_them() {
    use peergroup_proto::dialback::Outside;
    use peergroup_proto::reachability::NatClass;
    use peergroup_proto::sim::SimNat;
    let n = 200;
    let mut sim = Sim::new(SimConfig {
        members: n,
        seed: 21,
        nat_per_mille: 800,
        nat_mix: Some([250, 250, 250, 250]),
        relay_per_mille: 100,
        ..SimConfig::default()
    });
    sim.run_until(120_000);
    assert!(sim.connected(), "the group formed");
    let mut count = std::collections::BTreeMap::<(String, &str), usize>::new();
    for (i, g) in sim.nodes.iter().enumerate() {
        // Only a mapping seen alike by two observer IPs is tested; the simulator's public
        // members share one IP (127.0.0.1), so a member that dialled only them has no class.
        let outcome = match g.outside() {
            Outside::Unknown if g.nat_class() == NatClass::Unknown => "no class",
            Outside::Unknown => "unknown",
            Outside::Reachable(_) => "reachable",
            Outside::Unreachable => "unreachable",
        };
        *count
            .entry((format!("{:?}", sim.nat[i]), outcome))
            .or_default() += 1;
    }
    println!("dial-back outcomes after 120 s: {count:?}");
    let of = |nat: SimNat, outcome: &str| {
        count
            .get(&(format!("{nat:?}"), outcome))
            .copied()
            .unwrap_or(0)
    };
    let cones = of(SimNat::FullCone, "reachable")
        + of(SimNat::FullCone, "unreachable")
        + of(SimNat::FullCone, "unknown");
    assert!(cones > 20, "{cones} full cones with a class");
    assert_eq!(
        of(SimNat::FullCone, "reachable"),
        cones,
        "every full cone was dialled back"
    );
    for nat in [
        SimNat::AddressRestricted,
        SimNat::PortRestricted,
        SimNat::Symmetric,
    ] {
        assert_eq!(of(nat, "reachable"), 0, "{nat:?} let an unasked dial in");
        assert!(of(nat, "unreachable") > 0, "{nat:?} was tested");
    }
    // Public members need no test.
    assert_eq!(
        of(SimNat::Public, "reachable") + of(SimNat::Public, "unreachable"),
        0
    );
}
