//! Three hosts in network namespaces this test creates: join and connect across them; cutting
//! one host off is seen by the others as a lost connection.
//!
//! Topology (all inside namespaces the test makes; nothing touches the root namespace):
//!
//! ```text
//!   pgt<pid>-a: eth0 10.231.S.1/24 ─┐
//!   pgt<pid>-b: eth0 10.231.S.2/24 ─┼─ pgt<pid>-sw: bridge br0 (ports p-a, p-b, p-c)
//!   pgt<pid>-c: eth0 10.231.S.3/24 ─┘
//! ```
//!
//! where S is derived from the pid. One `pg-peer` process runs per host (`ip netns exec`),
//! driven over stdin/stdout (see `src/bin/pg-peer.rs`). A creates the group, invites B and C;
//! all three connect and form a full mesh. Then C's switch port goes down: A and B must drop
//! C (a timed-out connection) while keeping A–B, and C must lose both. Finally the port comes
//! back and C rejoins the mesh.
//!
//! Needs root and iproute2. Without them it prints "skipped: …" and passes, except under CI
//! (`CI=true`), where a missing capability fails. The namespaces are removed on every exit
//! path, panics included (a Drop guard).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{describe, ip_ok, phase, preflight, skip, until, Namespaces, Peer, Status};
use common::{HAS_CONNECTIONS, LISTENING};
use serde_json::json;

/// Upper bound for the group to form: status 3 everywhere, then the full mesh.
const FORM_BOUND: Duration = Duration::from_secs(40);
/// Upper bound for A and B to notice that C is gone (the peers' idle timeout is 3 s).
const LOSS_BOUND: Duration = Duration::from_secs(20);
/// Upper bound for C to be back in the mesh after its link returns.
const HEAL_BOUND: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------

/// The statuses of A, B and C once each has the other two as neighbours (`names` are their
/// member names, in that order); otherwise what they show.
fn full_mesh(
    peers: [&mut Peer; 3],
    names: &[String; 3],
) -> Result<(Status, Status, Status), String> {
    let [a, b, c] = peers;
    let others =
        |me: &str| -> BTreeSet<String> { names.iter().filter(|n| *n != me).cloned().collect() };
    let (sa, sb, sc) = (a.status(), b.status(), c.status());
    if sa.members() == others(&names[0])
        && sb.members() == others(&names[1])
        && sc.members() == others(&names[2])
    {
        Ok((sa, sb, sc))
    } else {
        Err(format!("A {}, B {}, C {}", sa.raw, sb.raw, sc.raw))
    }
}

#[test]
fn three_hosts_join_connect_and_see_a_host_cut_off() {
    phase("start");
    if let Err(reason) = preflight() {
        return skip(&reason);
    }

    let pid = std::process::id();
    let subnet = format!("10.231.{}", pid % 250 + 1);
    let ns = |h: &str| format!("pgt{pid}-{h}");
    let switch = ns("sw");
    let hosts = ["a", "b", "c"];

    // Declared before the peers, so it drops after them: processes first, then namespaces.
    let namespaces = match Namespaces::switch_and_hosts(ns, &hosts) {
        Ok(n) => n,
        Err(reason) => return skip(&reason),
    };

    phase(&format!(
        "namespaces {switch} (bridge br0) and {} {} {}, subnet {subnet}.0/24",
        ns("a"),
        ns("b"),
        ns("c")
    ));
    ip_ok(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
    ip_ok(&["-n", &switch, "link", "set", "br0", "up"]);
    for (i, h) in hosts.iter().enumerate() {
        let host_ns = ns(h);
        let port = format!("p-{h}");
        let addr = format!("{subnet}.{}/24", i + 1);
        common::attach_host(&switch, "br0", &port, &host_ns, &addr);
        phase(&format!(
            "host {h}: {host_ns} eth0 {addr} <-> {switch} {port}"
        ));
    }

    phase("starting one pg-peer per host");
    let mut a = Peer::spawn("A", &ns("a"), &format!("{subnet}.1:0"));
    let mut b = Peer::spawn("B", &ns("b"), &format!("{subnet}.2:0"));
    let mut c = Peer::spawn("C", &ns("c"), &format!("{subnet}.3:0"));

    let (a_name, _) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    let (c_name, c_xml) = c.identity("c");

    phase("A creates the group and connects");
    a.call(json!({"cmd": "create"}));
    a.call(json!({"cmd": "connect"}));
    let s = a.call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));
    assert_eq!(
        s["status"].as_u64().unwrap() & LISTENING,
        LISTENING,
        "A listens: {s}"
    );
    let a_listen = s["listen"].clone();
    let prefix = format!("{subnet}.1:");
    assert!(
        a_listen
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0].as_str().is_some_and(|a| a.starts_with(&prefix))),
        "A listens on its namespace address only: {a_listen}"
    );
    phase(&format!("A listens on {a_listen}"));

    phase("A invites B and C; they join and connect");
    for (p, xml) in [(&mut b, &b_xml), (&mut c, &c_xml)] {
        let inv = a.call(json!({"cmd": "invite", "xml": xml}));
        p.call(json!({"cmd": "join", "invitation": inv["invitation"]}));
        p.call(json!({"cmd": "connect"}));
    }
    let both = LISTENING | HAS_CONNECTIONS;
    for p in [&mut a, &mut b, &mut c] {
        let s = p.call(json!({"cmd": "wait", "bits": both, "timeout_ms": 30_000}));
        assert_eq!(s["status"], both, "{} reaches status 3: {s}", p.label);
    }
    phase("all three report status 3 (LISTENING|HAS_CONNECTIONS)");

    let names = [a_name.clone(), b_name.clone(), c_name.clone()];
    let mesh = until(
        "a full mesh: each host a neighbour of the other two",
        FORM_BOUND,
        || full_mesh([&mut a, &mut b, &mut c], &names),
    );
    let (sa, sb, sc) = mesh;
    let labels = [
        ("A", a_name.as_str()),
        ("B", b_name.as_str()),
        ("C", c_name.as_str()),
    ];
    phase(&format!("full mesh: A {}", describe(&sa, &labels)));
    phase(&format!("           B {}", describe(&sb, &labels)));
    phase(&format!("           C {}", describe(&sc, &labels)));
    let a_to_b = sa.connection_to(&b_name).unwrap();
    let b_to_a = sb.connection_to(&a_name).unwrap();
    let a_lost_before = sa.disconnects.len();
    let b_lost_before = sb.disconnects.len();

    phase("cutting C off: its switch port p-c goes down");
    ip_ok(&["-n", &switch, "link", "set", "p-c", "down"]);

    let (sa, sb) = until(
        "A and B drop C and record a timed-out connection",
        LOSS_BOUND,
        || {
            let (sa, sb) = (a.status(), b.status());
            let gone = |s: &Status, before: usize| {
                !s.members().contains(&c_name)
                    && s.disconnects.len() > before
                    && s.disconnects[before..].iter().any(|k| k == "timed_out")
            };
            if gone(&sa, a_lost_before) && gone(&sb, b_lost_before) {
                Ok((sa, sb))
            } else {
                Err(format!("A {}, B {}", sa.raw, sb.raw))
            }
        },
    );
    phase(&format!(
        "A saw {:?}, B saw {:?}",
        &sa.disconnects[a_lost_before..],
        &sb.disconnects[b_lost_before..]
    ));
    // A–B is untouched: the same connection on both sides, nothing else lost.
    assert_eq!(sa.members(), BTreeSet::from([b_name.clone()]), "{}", sa.raw);
    assert_eq!(sb.members(), BTreeSet::from([a_name.clone()]), "{}", sb.raw);
    assert_eq!(
        sa.connection_to(&b_name),
        Some(a_to_b),
        "A–B was not replaced"
    );
    assert_eq!(
        sb.connection_to(&a_name),
        Some(b_to_a),
        "B–A was not replaced"
    );
    assert_eq!(sa.status, both, "A still has a connection");
    assert_eq!(sb.status, both, "B still has a connection");
    for (label, s, before) in [("A", &sa, a_lost_before), ("B", &sb, b_lost_before)] {
        assert!(
            s.disconnects[before..].iter().all(|k| k == "timed_out"),
            "{label} lost only C, by timeout: {}",
            s.raw["disconnects"]
        );
    }
    let sc = until("C, cut off, loses both connections", LOSS_BOUND, || {
        let sc = c.status();
        if sc.neighbours.is_empty() && sc.status & HAS_CONNECTIONS == 0 {
            Ok(sc)
        } else {
            Err(sc.raw.to_string())
        }
    });
    phase(&format!("A kept A–B: {}", describe(&sa, &labels)));
    phase(&format!("B kept B–A: {}", describe(&sb, &labels)));
    phase(&format!(
        "C is alone: {}, saw {:?}",
        describe(&sc, &labels),
        sc.disconnects
    ));

    phase("C's port comes back up");
    ip_ok(&["-n", &switch, "link", "set", "p-c", "up"]);
    let (sa, sb, sc) = until("C back in the full mesh", HEAL_BOUND, || {
        full_mesh([&mut a, &mut b, &mut c], &names)
    });
    phase(&format!("full mesh again: A {}", describe(&sa, &labels)));
    phase(&format!("                 B {}", describe(&sb, &labels)));
    phase(&format!("                 C {}", describe(&sc, &labels)));

    phase("end of input to every peer; waiting for them to exit");
    for p in [&mut a, &mut b, &mut c] {
        p.finish_logged();
    }
    drop((a, b, c));
    drop(namespaces);
    phase("done");
}
