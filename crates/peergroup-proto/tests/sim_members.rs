//! Member data and presence in the simulated network: presence converges across 50 members,
//! a clean leave is a DISCONNECTED everywhere, and a member cut off is DISCONNECTED once its
//! presence expires.

use peergroup_proto::members::duties::MemberSettings;
use peergroup_proto::members::MemberChange;
use peergroup_proto::sim::{Sim, SimConfig};

fn sim(members: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members,
        seed,
        records: true,
        member_duties: Some(MemberSettings::default()),
        ..SimConfig::default()
    });
    // Everyone joins within 10 s; by 90 s maintenance has connected the group.
    sim.run_until(90_000);
    assert!(sim.connected(), "the group formed");
    sim
}

fn names(sim: &Sim, n: usize) -> Vec<String> {
    let mut all: Vec<String> = (0..n)
        .map(|i| sim.member_name(i).unwrap().to_owned())
        .collect();
    all.sort();
    all
}

/// The members that saw `change` of `who` after `since`.
fn saw(sim: &Sim, change: MemberChange, who: &str, since: u64) -> Vec<usize> {
    let mut v: Vec<usize> = sim
        .member_events
        .iter()
        .filter(|(_, t, c, id)| *t >= since && *c == change && id == who)
        .map(|(i, ..)| *i)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn presence_converges_in_fifty_members_and_a_clean_leave_is_seen_everywhere() {
    let n = 50;
    let mut sim = sim(n, 5);
    let everyone = names(&sim, n);
    for i in 0..n {
        assert_eq!(sim.present(i), everyone, "member {i} sees every presence");
    }
    let who = sim.member_name(7).unwrap().to_owned();
    let all: Vec<usize> = (0..n).collect();
    assert_eq!(saw(&sim, MemberChange::Connected, &who, 0), all);
    assert_eq!(saw(&sim, MemberChange::Joined, &who, 0), all);

    // Member 7 closes cleanly: its tombstone reaches the others at once.
    let t = sim.now();
    sim.leave(7);
    sim.run_until(t + 10_000);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != 7).collect();
    let seen = saw(&sim, MemberChange::Disconnected, &who, t);
    for i in &others {
        assert!(seen.contains(i), "member {i} saw member 7 leave: {seen:?}");
        assert!(!sim.present(*i).contains(&who));
    }

    // Presence is refreshed before it expires: long after a lifetime, all but 7 present.
    let t = sim.now();
    sim.run_until(t + 700_000);
    let mut expected = everyone.clone();
    expected.retain(|n| n != &who);
    for i in &others {
        assert_eq!(sim.present(*i), expected, "member {i} after refreshes");
    }
    assert!(
        saw(&sim, MemberChange::Disconnected, &expected[0], t).is_empty(),
        "a refresh is no disconnection"
    );
}

#[test]
fn a_member_cut_off_is_disconnected_when_its_presence_expires() {
    // 12 members: by the heal the others have filled its slots among themselves (up to the
    // maximum of 8 neighbours each); a member short of neighbours still gets back in.
    let n = 12;
    let mut sim = sim(n, 9);
    let who = sim.member_name(3).unwrap().to_owned();
    let t = sim.now();
    sim.partition(&[3]);
    // Within the presence lifetime nobody has given up on it yet.
    sim.run_until(t + 60_000);
    assert!(saw(&sim, MemberChange::Disconnected, &who, t).is_empty());
    // After it (300 s, and a maintenance round), everyone else has.
    sim.run_until(t + 330_000);
    let seen = saw(&sim, MemberChange::Disconnected, &who, t);
    for i in (0..n).filter(|&i| i != 3) {
        assert!(seen.contains(&i), "member {i} saw the expiry: {seen:?}");
        assert!(!sim.present(i).contains(&who));
    }
    // Healed, its refreshed presence comes back: CONNECTED again.
    let t = sim.now();
    sim.heal();
    sim.run_until(t + 200_000);
    for i in (0..n).filter(|&i| i != 3) {
        assert!(sim.present(i).contains(&who), "member {i} sees 3 back");
    }
    assert!(!saw(&sim, MemberChange::Connected, &who, t).is_empty());
    assert!(sim.connected(), "member 3 is a neighbour again");
}

#[test]
fn with_member_data_optional_a_member_publishes_it_when_it_first_acts() {
    use peergroup_proto::members::MEMBER_DATA_TYPE;
    let n = 6;
    let mut sim = Sim::new(SimConfig {
        members: n,
        seed: 3,
        records: true,
        member_duties: Some(MemberSettings {
            data_optional: true,
            ..MemberSettings::default()
        }),
        ..SimConfig::default()
    });
    sim.run_until(90_000);
    let member_data = |sim: &mut Sim, i: usize| {
        let now = sim.clock(i) as i64;
        sim.nodes[i]
            .record_port()
            .unwrap()
            .of_type(&MEMBER_DATA_TYPE, now)
            .unwrap()
    };
    assert!(member_data(&mut sim, 0).is_empty(), "nobody acted yet");
    assert_eq!(
        sim.present(0).len(),
        n,
        "presence is published all the same"
    );

    let t = sim.now();
    sim.add_record(4, [0x42; 16], b"hello".to_vec());
    sim.run_until(t + 10_000);
    let who = sim.member_name(4).unwrap().to_owned();
    for i in 0..n {
        let data = member_data(&mut sim, i);
        assert_eq!(data.len(), 1, "member {i} holds member 4's data only");
        assert_eq!(data[0].creator, who);
    }
    assert_eq!(saw(&sim, MemberChange::Joined, &who, t).len(), n);
}
