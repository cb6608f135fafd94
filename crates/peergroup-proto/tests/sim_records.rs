//! Record replication in the simulated network: flooding, reconciliation after partitions
//! and churn, the rights rules, forged records, and reproducibility. Small scenarios (at
//! most 100 members); `cargo xtask sim` runs the large ones.

use peergroup_proto::sim::{Sim, SimConfig};

const TYPE: [u8; 16] = [0x42; 16];

fn sim(members: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members,
        seed,
        records: true,
        ..SimConfig::default()
    });
    // Everyone joins within 10 s; by a minute maintenance has connected the group.
    sim.run_until(90_000);
    assert!(sim.connected(), "the group formed");
    sim
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[test]
fn records_flood_to_every_member_and_databases_converge() {
    let n = 60;
    let mut sim = sim(n, 11);
    let mut ids = Vec::new();
    for (k, writer) in [1, 7, 22, 40, 59].into_iter().enumerate() {
        for j in 0..4u8 {
            ids.push(sim.add_record(writer, TYPE, vec![k as u8, j]));
        }
    }
    let t = sim.now();
    sim.run_until(t + 5_000);
    for (id, d) in sim.deliveries() {
        assert!(
            d.seen.iter().all(|s| s.is_some()),
            "record {id:02x?} reached every member"
        );
    }
    assert!(sim.identical(&all(n)));
    assert_eq!(sim.items(0).len(), ids.len());
    for i in 0..n {
        let stats = sim.nodes[i].replication_stats();
        assert_eq!(stats.rejected, 0, "member {i}");
    }
    // Updates and deletes flood the same way.
    sim.modify_record(1, ids[0], Some(b"second".to_vec()));
    sim.modify_record(7, ids[4], None);
    let t = sim.now();
    sim.run_until(t + 5_000);
    assert!(sim.identical(&all(n)));
    for i in 0..n {
        let r = sim.record(i, &ids[0]).unwrap();
        assert_eq!((r.version, r.data.as_slice()), (2, &b"second"[..]));
        assert!(sim.record(i, &ids[4]).unwrap().is_deleted(), "member {i}");
    }
}

#[test]
fn only_the_creator_or_an_administrator_changes_a_record() {
    let n = 30;
    let mut sim = sim(n, 12);
    let id = sim.add_record(5, TYPE, b"mine".to_vec());
    let t = sim.now();
    sim.run_until(t + 3_000);
    // Member 9 (not the creator, not an administrator) forges an update below the API.
    sim.modify_record(9, id, Some(b"stolen".to_vec()));
    let t = sim.now();
    sim.run_until(t + 40_000);
    for i in (0..n).filter(|&i| i != 9) {
        let r = sim.record(i, &id).unwrap();
        assert_eq!(r.data, b"mine", "member {i} refused the update");
    }
    let refused: u64 = (0..n)
        .map(|i| sim.nodes[i].replication_stats().rejected)
        .sum();
    assert!(refused > 0, "members saw and refused the forged update");
    // Member 0 is an administrator: its update is everyone's.
    sim.modify_record(0, id, Some(b"admin".to_vec()));
    let t = sim.now();
    sim.run_until(t + 5_000);
    for i in (0..n).filter(|&i| i != 9) {
        assert_eq!(sim.record(i, &id).unwrap().data, b"admin", "member {i}");
    }
}

#[test]
fn a_record_with_a_bad_signature_is_dropped_by_every_member() {
    let n = 30;
    let mut sim = sim(n, 13);
    let id = sim.add_record(3, TYPE, b"genuine".to_vec());
    let t = sim.now();
    sim.run_until(t + 3_000);
    let mut forged = sim.record(3, &id).unwrap();
    forged.version += 1;
    forged.data = b"forged".to_vec();
    // Keeps member 3's old signature: it no longer matches.
    sim.inject_record(3, forged);
    let t = sim.now();
    sim.run_until(t + 40_000);
    for i in (0..n).filter(|&i| i != 3) {
        assert_eq!(sim.record(i, &id).unwrap().data, b"genuine", "member {i}");
    }
}

#[test]
fn both_sides_of_a_partition_write_and_converge_after_it_heals() {
    let n = 40;
    let mut sim = sim(n, 14);
    let side_b: Vec<usize> = (20..40).collect();
    sim.partition(&side_b);
    let t = sim.now();
    sim.run_until(t + 2_000);
    for i in 0..10 {
        sim.add_record(i % 20, TYPE, vec![b'a', i as u8]);
        sim.add_record(20 + i % 20, TYPE, vec![b'b', i as u8]);
    }
    let t = sim.now();
    sim.run_until(t + 10_000);
    assert!(sim.identical(&(0..20).collect::<Vec<_>>()), "side A agrees");
    assert!(sim.identical(&side_b), "side B agrees");
    assert!(!sim.identical(&all(n)), "the sides differ while cut");
    sim.heal();
    let t = sim.now();
    sim.run_until(t + 60_000);
    assert!(sim.connected());
    assert!(
        sim.identical(&all(n)),
        "every database is the same after the heal"
    );
    assert_eq!(sim.items(0).len(), 20);
}

#[test]
fn churn_and_late_joiners_converge() {
    let n = 50;
    let mut sim = Sim::new(SimConfig {
        members: n,
        seed: 15,
        records: true,
        join_window: 40_000,
        ..SimConfig::default()
    });
    sim.run_until(12_000);
    // Early members write while others have not joined yet.
    for i in 0..30 {
        sim.add_record(i % 5, TYPE, vec![i as u8]);
    }
    sim.run_until(20_000);
    // Some members leave for a while and miss records.
    for i in [6, 8, 10] {
        sim.leave(i);
    }
    sim.run_until(25_000);
    for i in 0..20 {
        sim.add_record(1 + i % 3, TYPE, vec![100 + i as u8]);
    }
    sim.run_until(30_000);
    for i in [6, 8, 10] {
        sim.rejoin(i);
    }
    sim.run_until(120_000);
    assert!(sim.connected());
    assert!(sim.identical(&all(n)));
    assert_eq!(sim.items(0).len(), 50);
}

#[test]
fn loss_and_clock_skew_still_converge() {
    let n = 40;
    let mut sim = Sim::new(SimConfig {
        members: n,
        seed: 16,
        records: true,
        loss_per_mille: 50,
        clock_skew: 120_000,
        ..SimConfig::default()
    });
    sim.run_until(30_000);
    for i in 0..40 {
        sim.add_record(i % n, TYPE, vec![i as u8]);
    }
    sim.run_until(60_000);
    assert!(sim.identical(&all(n)));
    assert_eq!(sim.items(0).len(), 40);
}

#[test]
fn expired_records_disappear_everywhere() {
    let n = 20;
    let mut sim = sim(n, 17);
    sim.add_record(2, TYPE, b"short".to_vec());
    let t = sim.now();
    sim.run_until(t + 5_000);
    assert_eq!(sim.items(10).len(), 1);
    // Records expire an hour after they were added.
    sim.run_until(t + 3_600_000 + 10_000);
    for i in 0..n {
        assert!(sim.items(i).is_empty(), "member {i}");
    }
}

#[test]
fn the_same_seed_gives_the_same_replication() {
    let run = |seed| {
        let mut sim = sim(30, seed);
        for i in 0..10 {
            sim.add_record(i, TYPE, vec![i as u8]);
        }
        let t = sim.now();
        sim.run_until(t + 5_000);
        let delivery: Vec<Vec<Option<u64>>> =
            sim.deliveries().map(|(_, d)| d.seen.clone()).collect();
        (sim.messages, delivery)
    };
    let a = run(21);
    assert_eq!(a, run(21));
    assert_ne!(a, run(22));
}
