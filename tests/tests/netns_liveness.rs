//! Neighbour liveness with the library's default limits, in the NAT lab's internet
//! (`common/lab.rs`): a lossy link raises no false alarm, and a neighbour killed with -9 is
//! noticed within seconds (the keep-alives of `Limits::default()`), not at a long idle
//! timeout.
//!
//! X and Y are public hosts. While Y's namespace drops 30 % of UDP each way (nftables'
//! `numgen random`, so no netem is needed), X writes records: Y receives every one on the
//! same neighbour connection, and neither side logs a disconnect. Then the loss ends, Y is
//! killed, and X drops it as timed out.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{netns, peer_on, Lab};
use common::{phase, until, Status};
use std::time::{Duration, Instant};

/// How long the link stays lossy.
const LOSSY_PERIOD: Duration = Duration::from_secs(20);
/// Share of UDP datagrams dropped each way while lossy, in per cent.
const LOSS_PERCENT: u32 = 30;
/// Upper bound for records written during the loss to arrive.
const SPREAD_BOUND: Duration = Duration::from_secs(60);
/// Upper bound for a killed neighbour to be dropped: the default idle timeout with room for
/// a loaded machine.
const DEAD_BOUND: Duration = Duration::from_secs(20);

fn connection_to(s: &Status, member: &str) -> Option<u64> {
    s.raw["neighbours"]
        .as_array()?
        .iter()
        .find(|n| n["member"] == member)
        .and_then(|n| n["connection_id"].as_u64())
}

#[test]
fn a_lossy_link_keeps_its_neighbour_and_a_killed_one_is_dropped_within_seconds() {
    let Some(mut lab) = Lab::for_test("pgv") else {
        return;
    };
    let xh = lab.public("x");
    let yh = lab.public("y");
    let defaults = ["--limits", "default"];
    let mut x = peer_on("X", &xh, &defaults);
    let mut y = peer_on("Y", &yh, &defaults);
    let (x_name, _) = x.identity("x");
    let (y_name, y_xml) = y.identity("y");
    x.create_group(false);
    y.join_from(&mut x, &y_xml, false, false);
    x.wait_joined();
    y.wait_joined();
    let conn = until("Y has X as its neighbour", SPREAD_BOUND, || {
        let s = y.status();
        connection_to(&s, &x_name).ok_or(s.raw.to_string())
    });
    phase("X and Y are neighbours");

    let rules = [
        "add table inet pgloss".to_owned(),
        "add chain inet pgloss in { type filter hook input priority 0; }".to_owned(),
        "add chain inet pgloss out { type filter hook output priority 0; }".to_owned(),
        format!(
            "add rule inet pgloss in meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} counter drop"
        ),
        format!(
            "add rule inet pgloss out meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} counter drop"
        ),
    ];
    // Connections closed before (a duplicate resolved while meeting, say) do not count.
    let ended_before: Vec<usize> = [&mut x, &mut y]
        .into_iter()
        .map(|p| p.status().raw["disconnects"].as_array().unwrap().len())
        .collect();
    for rule in &rules {
        netns(&yh.ns, &["nft", rule]).unwrap_or_else(|e| panic!("loss rule: {e}"));
    }
    phase(&format!("Y drops {LOSS_PERCENT} % of UDP each way"));
    let start = Instant::now();
    let mut ids = Vec::new();
    while start.elapsed() < LOSSY_PERIOD {
        ids.push(x.add(&format!("written while lossy {}", ids.len())));
        std::thread::sleep(Duration::from_secs(1));
    }
    until(
        "Y holds every record written while lossy",
        SPREAD_BOUND,
        || {
            let r = y.records();
            match ids.iter().find(|id| !r.ids.contains(*id)) {
                None => Ok(()),
                Some(missing) => Err(format!("missing {missing}: {r}")),
            }
        },
    );
    let lossy = netns(&yh.ns, &["nft", "list table inet pgloss"]).unwrap();
    phase(&format!("loss rules at the end:\n{lossy}"));
    // Both directions really lost datagrams: each rule's counter is past zero.
    let dropped: Vec<u64> = lossy
        .split("packets ")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        dropped.len() == 2 && dropped.iter().all(|&n| n > 0),
        "both loss rules dropped datagrams: {lossy}"
    );
    netns(&yh.ns, &["nft", "delete table inet pgloss"]).unwrap();
    for (p, before) in [&mut x, &mut y].into_iter().zip(&ended_before) {
        let s = p.status();
        assert_eq!(
            s.raw["disconnects"].as_array().unwrap().len(),
            *before,
            "{}: no connection ended on the lossy link: {}",
            p.label,
            s.raw
        );
    }
    assert_eq!(
        connection_to(&y.status(), &x_name),
        Some(conn),
        "Y kept the same neighbour connection through the loss"
    );
    phase("no false alarm on the lossy link");

    y.kill_host();
    phase("Y killed");
    until("X drops its killed neighbour", DEAD_BOUND, || {
        let s = x.status();
        match connection_to(&s, &y_name) {
            None => Ok(()),
            Some(_) => Err(s.raw.to_string()),
        }
    });
    let s = x.status();
    let kinds: Vec<&str> = s.raw["disconnects"]
        .as_array()
        .unwrap()
        .iter()
        .skip(ended_before[0])
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["timed_out"], "X saw Y time out: {}", s.raw);
    phase("X dropped Y as timed out");
    x.finish_logged();
    drop(lab);
    phase("done");
}
