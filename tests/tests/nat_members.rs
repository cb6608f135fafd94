//! Members behind NATs, in the NAT lab (`common/lab.rs`), as real `pg-peer` processes.
//!
//! A public member R creates the group; A (behind a full-cone NAT) and B (behind a
//! port-restricted one) join through R. Each learns its mapped address from R's `Hello`
//! and advertises it before its private one, so B reaches A directly at A's public mapping
//! (A's NAT lets anyone in on a port A has sent from) — where B used to dial A's private
//! address and never get there.
//!
//! Needs root, iproute2 and nftables; skips elsewhere, fails under CI without them.

mod common;

use common::lab::{joined_through, Lab, Nat, Trio};
use common::{phase, until};
use std::time::Duration;

/// Upper bound for A and B to become each other's neighbours.
const MEET_BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_member_behind_a_cone_nat_is_reached_at_its_mapped_address() {
    let Some(mut lab) = Lab::for_test("pgm") else {
        return;
    };
    let r_host = lab.public("r");
    let a_host = lab.behind(&["a"], Nat::FullCone).remove(0);
    let b_host = lab.behind(&["b"], Nat::PortRestricted).remove(0);

    let Trio {
        mut r,
        mut a,
        mut b,
        a_name,
        b_name: _,
    } = joined_through(&r_host, &a_host, &b_host, false);
    phase("A and B joined through R");

    let s = until("B has A as a neighbour", MEET_BOUND, || {
        let s = b.status();
        if s.members().contains(&a_name) {
            Ok(s)
        } else {
            Err(s.raw.to_string())
        }
    });
    let to_a = s.raw["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["member"] == a_name.as_str())
        .unwrap()
        .clone();
    phase(&format!("B's connection to A: {to_a}"));
    let seen: std::net::SocketAddr = to_a["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(a_host.public_ip),
        "B reaches A at A's public mapping, not at {}",
        a_host.addr
    );
    // A advertises its mapping first; R, public, advertises where it listens.
    let sa = a.status();
    let first = sa.raw["advertised"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        first.starts_with(&format!("{}:", a_host.public_ip)),
        "A advertises its mapping first: {}",
        sa.raw
    );
    let sr = r.status();
    assert_eq!(sr.raw["nat"], "none", "R is public: {}", sr.raw);
    for p in [&mut a, &mut b, &mut r] {
        p.finish_logged();
    }
    drop(lab);
    phase("done");
}
