//! The membership machine in a simulated network of a hundred members.

use peergroup_core::machine::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::sim::{Sim, SimConfig};

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
