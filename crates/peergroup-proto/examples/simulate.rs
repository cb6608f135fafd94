//! Whole-group scenarios in the deterministic simulator: hundreds to a thousand members in one
//! process, real signatures, simulated links. `cargo xtask sim [SCENARIO] [--seed N]` runs
//! this in release mode; it prints, per scenario, the time for records to reach every member,
//! the messages per member, and whether every database is identical at the end.
//!
//! ```text
//! cargo run --release -p peergroup-proto --features test-utils --example simulate -- [SCENARIO...] [--seed N]
//! ```

use std::time::Instant;

use peergroup_proto::sim::{Sim, SimConfig};

const TYPE: [u8; 16] = [0x5a; 16];

struct Outcome {
    name: &'static str,
    members: usize,
    records: usize,
    /// Add-to-last-member delivery times (simulated ms), one per record.
    delivery: Vec<u64>,
    /// Records that some online member never reported.
    undelivered: usize,
    messages_per_member: f64,
    identical: bool,
    /// Simulated time from the heal (or the last change) to identical databases, if measured.
    converged_after: Option<u64>,
    wall_ms: u128,
    /// Link ends, and how many of them run through a relay (NAT scenarios).
    links: Option<(usize, usize)>,
}

fn form(cfg: SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    let mut t = 30_000;
    sim.run_until(t);
    while !sim.connected() && t < 600_000 {
        t += 10_000;
        sim.run_until(t);
    }
    assert!(
        sim.connected(),
        "the group did not form within 10 simulated minutes"
    );
    sim
}

fn base(members: usize, seed: u64) -> SimConfig {
    SimConfig {
        members,
        seed,
        records: true,
        latency: (10, 50),
        ..SimConfig::default()
    }
}

/// A scenario's simulator, its message count when the measured part began, and its start.
struct Run {
    sim: Sim,
    before: u64,
    wall: Instant,
}

impl Run {
    /// The outcome over every member; with `converge`, first runs until every database is
    /// identical (at most 5 simulated minutes) and reports how long that took.
    fn finish(mut self, name: &'static str, records: usize, converge: bool) -> Outcome {
        let members = self.sim.nodes.len();
        let all: Vec<usize> = (0..members).collect();
        let converged_after = if converge {
            until_identical(&mut self.sim, &all, 300_000)
        } else {
            None
        };
        let (delivery, undelivered) = deliveries(&self.sim, &vec![true; members]);
        Outcome {
            name,
            members,
            records,
            delivery,
            undelivered,
            messages_per_member: (self.sim.messages - self.before) as f64 / members as f64,
            identical: self.sim.identical(&all),
            converged_after,
            wall_ms: self.wall.elapsed().as_millis(),
            links: None,
        }
    }
}

/// Delivery times of every tracked record over the members in `online`.
fn deliveries(sim: &Sim, online: &[bool]) -> (Vec<u64>, usize) {
    let mut times = Vec::new();
    let mut undelivered = 0;
    for (_, d) in sim.deliveries() {
        let mut last = 0;
        let mut complete = true;
        for (i, seen) in d.seen.iter().enumerate() {
            if !online[i] {
                continue;
            }
            match seen {
                Some(t) => last = last.max(t - d.added),
                None => complete = false,
            }
        }
        if complete {
            times.push(last);
        } else {
            undelivered += 1;
        }
    }
    times.sort_unstable();
    (times, undelivered)
}

/// Runs until every listed member holds the same records (checked each simulated second),
/// at most `bound` ms; returns how long it took.
fn until_identical(sim: &mut Sim, members: &[usize], bound: u64) -> Option<u64> {
    let start = sim.now();
    while sim.now() - start <= bound {
        if sim.identical(members) {
            return Some(sim.now() - start);
        }
        let t = sim.now();
        sim.run_until(t + 1_000);
    }
    None
}

/// `writers` records from members spread over the group, one every 500 ms, then 10 s to
/// settle.
fn write_and_settle(sim: &mut Sim, members: usize, writers: usize) {
    for k in 0..writers {
        let writer = (k * 7919) % members;
        sim.add_record(writer, TYPE, vec![k as u8; 64]);
        let t = sim.now();
        sim.run_until(t + 500);
    }
    let t = sim.now();
    sim.run_until(t + 10_000);
}

fn flood(name: &'static str, members: usize, writers: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let mut sim = form(base(members, seed));
    let before = sim.messages;
    write_and_settle(&mut sim, members, writers);
    let run = Run { sim, before, wall };
    run.finish(name, writers, false)
}

/// Flooding where 80 % of the members sit behind NATs of a realistic mix (full cone 10 %,
/// address-restricted 15 %, port-restricted 50 %, symmetric 25 %) and a tenth of the public
/// ones relay: members meet through relays and punch where the NATs allow; the share of links
/// that stay relayed is printed (target ≤ 15 %).
fn nat(name: &'static str, members: usize, writers: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let mut sim = form(SimConfig {
        nat_per_mille: 800,
        nat_mix: Some([100, 150, 500, 250]),
        relay_per_mille: 100,
        ..base(members, seed)
    });
    // Time for relayed neighbours to punch (three tries over a few seconds).
    let t = sim.now();
    sim.run_until(t + 60_000);
    let before = sim.messages;
    let kinds_before = sim.by_kind.clone();
    write_and_settle(&mut sim, members, writers);
    let links = sim.link_counts();
    // Which messages the measured window carried, per member.
    let per_kind: Vec<String> = sim
        .by_kind
        .iter()
        .map(|(k, n)| {
            let was = kinds_before.get(k).copied().unwrap_or(0);
            format!("kind {k}: {:.1}", (n - was) as f64 / members as f64)
        })
        .collect();
    eprintln!(
        "{name}: messages per member by kind: {}",
        per_kind.join(", ")
    );
    let run = Run { sim, before, wall };
    let mut o = run.finish(name, writers, false);
    o.links = Some(links);
    o
}

fn partition(members: usize, per_side: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let mut sim = form(base(members, seed));
    let before = sim.messages;
    let side_b: Vec<usize> = (members / 2..members).collect();
    sim.partition(&side_b);
    let t = sim.now();
    sim.run_until(t + 5_000);
    for k in 0..per_side {
        sim.add_record(k % (members / 2), TYPE, vec![1, k as u8]);
        sim.add_record(members / 2 + k % (members / 2), TYPE, vec![2, k as u8]);
        let t = sim.now();
        sim.run_until(t + 200);
    }
    let t = sim.now();
    sim.run_until(t + 10_000);
    sim.heal();
    let run = Run { sim, before, wall };
    run.finish("partition-heal", 2 * per_side, true)
}

fn churn(members: usize, writes: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let mut sim = form(base(members, seed));
    let before = sim.messages;
    let mut away = Vec::new();
    for k in 0..writes {
        if k % 10 == 0 {
            // A tenth of the members leave, the previous leavers come back.
            for &i in &away {
                sim.rejoin(i);
            }
            away = (0..members / 10)
                .map(|j| 1 + (k * 31 + j * 17) % (members - 1))
                .collect();
            away.sort_unstable();
            away.dedup();
            for &i in &away {
                sim.leave(i);
            }
        }
        let writer = (k * 13) % members;
        if !away.contains(&writer) {
            sim.add_record(writer, TYPE, vec![3, k as u8]);
        }
        let t = sim.now();
        sim.run_until(t + 1_000);
    }
    for &i in &away {
        sim.rejoin(i);
    }
    let run = Run { sim, before, wall };
    run.finish("churn", writes, true)
}

fn lossy(members: usize, writes: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let mut sim = form(SimConfig {
        loss_per_mille: 50,
        clock_skew: 120_000,
        ..base(members, seed)
    });
    let before = sim.messages;
    for k in 0..writes {
        sim.add_record((k * 101) % members, TYPE, vec![4, k as u8]);
        let t = sim.now();
        sim.run_until(t + 300);
    }
    let run = Run { sim, before, wall };
    run.finish("loss5%-skew2min", writes, true)
}

/// A scenario run with a seed.
type Scenario = Box<dyn Fn(u64) -> Outcome>;

fn pct(v: &[u64], p: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].to_string()
}

fn main() {
    let mut seed = 1u64;
    let mut wanted: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seed" {
            seed = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seed takes a number");
        } else {
            wanted.push(a);
        }
    }
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("flood-100", Box::new(|s| flood("flood-100", 100, 50, s))),
        ("flood-1000", Box::new(|s| flood("flood-1000", 1000, 50, s))),
        ("partition-heal", Box::new(|s| partition(200, 50, s))),
        ("churn", Box::new(|s| churn(200, 100, s))),
        ("lossy", Box::new(|s| lossy(200, 100, s))),
        ("nat-300", Box::new(|s| nat("nat-300", 300, 50, s))),
        ("nat-1000", Box::new(|s| nat("nat-1000", 1000, 50, s))),
    ];
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| !scenarios.iter().any(|(n, _)| n == w))
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = scenarios.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown scenario {unknown:?}; known: {names:?}");
        std::process::exit(2);
    }
    println!("simulator: seed {seed}, links 10-50 ms one way; times are simulated ms");
    println!(
        "{:<16} {:>7} {:>7} {:>9} {:>9} {:>9} {:>11} {:>9} {:>10} {:>9}",
        "scenario",
        "members",
        "records",
        "deliv p50",
        "deliv p99",
        "deliv max",
        "msgs/member",
        "identical",
        "converged",
        "wall ms"
    );
    let mut failed = false;
    for (name, run) in &scenarios {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let o = run(seed);
        failed |= !o.identical || o.undelivered > 0;
        println!(
            "{:<16} {:>7} {:>7} {:>9} {:>9} {:>9} {:>11.1} {:>9} {:>10} {:>9}",
            o.name,
            o.members,
            o.records,
            pct(&o.delivery, 0.5),
            pct(&o.delivery, 0.99),
            o.delivery.last().map_or("-".into(), |v| v.to_string()),
            o.messages_per_member,
            if o.identical { "yes" } else { "NO" },
            o.converged_after.map_or("-".into(), |v| format!("{v} ms")),
            o.wall_ms
        );
        if o.undelivered > 0 {
            println!("  {} records never reached some member", o.undelivered);
        }
        if let Some((links, relayed)) = o.links {
            let share = 100.0 * relayed as f64 / links.max(1) as f64;
            println!(
                "  links relayed: {relayed} of {links} link ends ({share:.1} %; target <= 15 %)"
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}
