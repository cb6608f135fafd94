//! The membership machine in a simulated network of a hundred members.

use peergroup_proto::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_proto::sim::{Sim, SimConfig};

fn run(seed: u64, members: usize) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members,
        seed,
        ..SimConfig::default()
    });
    sim.run_until(60_000);
    sim
}

#[test]
fn every_member_connects_and_listens() {
    let sim = run(7, 100);
    for (i, g) in sim.nodes.iter().enumerate() {
        assert_eq!(
            g.status(),
            STATUS_LISTENING | STATUS_HAS_CONNECTIONS,
            "member {i} status"
        );
        assert!(g.is_synced());
    }
    assert!(sim.connected(), "the neighbour graph is connected");
    let max = *sim.degrees().iter().max().unwrap();
    assert!(max <= 8, "no member holds more than max_neighbours ({max})");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(42, 60);
    let b = run(42, 60);
    assert_eq!(a.degrees(), b.degrees());
    assert_eq!(a.messages, b.messages);
    let c = run(43, 60);
    assert!(a.degrees() != c.degrees() || a.messages != c.messages);
}

#[test]
fn a_larger_group_forms_one_connected_mesh_within_the_maximum() {
    // 300 members joining within 10 s through the creator: random peer samples and the
    // occasional extra dial make one connected group, with nobody over the maximum.
    let sim = run(5, 300);
    assert!(sim.connected(), "one connected group");
    let degrees = sim.degrees();
    assert!(degrees.iter().all(|&d| (1..=8).contains(&d)), "{degrees:?}");
    for (i, g) in sim.nodes.iter().enumerate() {
        assert!(
            g.known_peers().count() > 100,
            "member {i} learned of most members"
        );
    }
}

/// A group of `members` (the last `held_back` not yet connected) run for 10 minutes, until
/// the occasional extra dials filled every member up to the maximum of 8 neighbours (the
/// seeds are chosen so that every member is full).
fn saturated(seed: u64, members: usize, held_back: usize) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members,
        seed,
        held_back,
        ..SimConfig::default()
    });
    sim.run_until(600_000);
    assert!(held_back > 0 || sim.connected());
    let degrees = sim.degrees();
    assert!(
        degrees[..members - held_back]
            .iter()
            .filter(|&&d| d < 8)
            .count()
            <= 2,
        "the group is saturated: {degrees:?}"
    );
    sim
}

/// Member `i`'s neighbour count.
fn degree(sim: &Sim, i: usize) -> usize {
    sim.degrees()[i]
}

#[test]
fn a_member_cut_off_from_a_saturated_group_gets_back_in_after_the_heal() {
    // 12 members, every one with the maximum of 8 neighbours: member 5 is cut off, the
    // others fill its slots again among themselves, and only then is the network healed.
    let mut sim = saturated(7, 12, 0);
    sim.partition(&[5]);
    sim.run_until(sim.now() + 300_000);
    assert_eq!(degree(&sim, 5), 0, "member 5 is cut off");
    let degrees = sim.degrees();
    assert!(
        (0..12).filter(|&i| i != 5).all(|i| degrees[i] == 8),
        "the others refilled: {degrees:?}"
    );
    sim.heal();
    sim.run_until(sim.now() + 60_000);
    assert!(degree(&sim, 5) >= 1, "member 5 has a neighbour again");
    assert!(sim.connected(), "one connected group again");
    let degrees = sim.degrees();
    assert!(degrees.iter().all(|&d| d <= 8), "{degrees:?}");
    // Long after, nobody is left out and nobody exceeds the maximum.
    sim.run_until(sim.now() + 300_000);
    assert!(sim.connected(), "{:?}", sim.degrees());
    let degrees = sim.degrees();
    assert!(degrees.iter().all(|&d| (1..=8).contains(&d)), "{degrees:?}");
}

#[test]
fn a_new_member_joins_a_saturated_group() {
    // 12 members saturate the group; then a 13th, which never connected, joins through the
    // creator's address, like a member invited late.
    let mut sim = saturated(2, 13, 1);
    let degrees = sim.degrees();
    assert!(degrees[..12].iter().all(|&d| d == 8), "{degrees:?}");
    assert_eq!(degree(&sim, 12), 0);
    sim.rejoin(12);
    sim.run_until(sim.now() + 60_000);
    assert!(sim.nodes[12].is_synced(), "the newcomer synchronised");
    assert_eq!(
        sim.nodes[12].status(),
        STATUS_LISTENING | STATUS_HAS_CONNECTIONS
    );
    assert!(sim.connected(), "{:?}", sim.degrees());
    let degrees = sim.degrees();
    assert!(degrees.iter().all(|&d| (1..=8).contains(&d)), "{degrees:?}");
}

#[test]
fn full_members_making_room_settle_without_churn_within_the_maximum() {
    // Left to run, the extra dials fill nearly every member to the maximum; members short of
    // neighbours then displace others. Minute by minute the group stays connected, nobody
    // exceeds the maximum, and connections closed (referrals and drops) die down instead of
    // feeding each other.
    for (seed, members) in [(7, 100), (5, 300)] {
        let mut sim = run(seed, members);
        let mut per_minute = Vec::new();
        for minute in 2..=11 {
            let before = sim.closes;
            sim.run_until(minute * 60_000);
            per_minute.push(sim.closes - before);
            assert!(sim.connected(), "{members} members, minute {minute}");
            let degrees = sim.degrees();
            assert!(
                degrees.iter().all(|&d| (1..=8).contains(&d)),
                "{members} members, minute {minute}: {degrees:?}"
            );
        }
        let last = *per_minute.last().unwrap();
        assert!(
            last < per_minute[0] && (last as usize) < members / 10,
            "{members} members: closes per minute {per_minute:?}"
        );
    }
}
