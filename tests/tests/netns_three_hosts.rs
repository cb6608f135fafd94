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

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `PEER_GROUP_STATUS_LISTENING`.
const LISTENING: u64 = 0x1;
/// `PEER_GROUP_STATUS_HAS_CONNECTIONS`.
const HAS_CONNECTIONS: u64 = 0x2;
/// Upper bound for one answer of a peer (commands that wait carry their own, shorter bound).
const ANSWER_BOUND: Duration = Duration::from_secs(60);
/// Upper bound for the group to form: status 3 everywhere, then the full mesh.
const FORM_BOUND: Duration = Duration::from_secs(40);
/// Upper bound for A and B to notice that C is gone (the peers' idle timeout is 3 s).
const LOSS_BOUND: Duration = Duration::from_secs(20);
/// Upper bound for C to be back in the mesh after its link returns.
const HEAL_BOUND: Duration = Duration::from_secs(60);
/// Upper bound for a peer to exit after end of input.
const EXIT_BOUND: Duration = Duration::from_secs(20);

/// Prints one progress line for the CI log, with the seconds since the test began.
fn phase(msg: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[netns_three_hosts {t:5.1}s] {msg}");
}

// ---------------------------------------------------------------------------------------
// Namespaces

/// The namespaces this test created; dropping it deletes them (and with them their links).
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.names.push(name.to_owned());
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            match ip(&["netns", "del", name]) {
                Ok(()) => phase(&format!("removed namespace {name}")),
                Err(e) => eprintln!("[netns_three_hosts] could not remove namespace {name}: {e}"),
            }
        }
    }
}

/// Runs `ip ARGS`; the error carries its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like [`ip`], but the namespaces exist now: a failure is the test's failure.
fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Reports a missing capability: a skip on a developer machine, a failure under CI.
fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
}

// ---------------------------------------------------------------------------------------
// Peers

/// One `pg-peer` process inside a host's namespace.
struct Peer {
    label: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    _home: tempfile::TempDir,
}

impl Peer {
    fn spawn(label: &'static str, netns: &str, listen: &str) -> Peer {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                env!("CARGO_BIN_EXE_pg-peer"),
                "--home",
            ])
            .arg(home.path())
            .args(["--listen", listen])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pg-peer in {netns}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            label,
            stdin: child.stdin.take(),
            child,
            lines,
            _home: home,
        }
    }

    /// Sends one command and returns its answer, which must be `"ok": true`.
    fn call(&mut self, req: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot send {req}: {e}", self.label));
        let line = self
            .lines
            .recv_timeout(ANSWER_BOUND)
            .unwrap_or_else(|e| panic!("{}: no answer to {req}: {e}", self.label));
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: answer is not JSON ({e}): {line}", self.label));
        assert_eq!(
            answer["ok"], true,
            "{}: {req} was refused: {answer}",
            self.label
        );
        answer
    }

    fn status(&mut self) -> Status {
        Status::of(&self.call(json!({"cmd": "status"})))
    }

    /// Closes stdin (the peer closes its group and exits) and waits for the exit.
    fn finish(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + EXIT_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running {EXIT_BOUND:?} after end of input",
                self.label
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // After a panic: do not leave the process behind in a namespace about to go.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A peer's view of its group, from a `status` answer.
#[derive(Debug)]
struct Status {
    status: u64,
    /// Neighbour member names with their connection ids.
    neighbours: Vec<(String, u64)>,
    /// Kinds of the remembered disconnects, oldest first.
    disconnects: Vec<String>,
    raw: Value,
}

impl Status {
    fn of(v: &Value) -> Status {
        let neighbours = v["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["member"].as_str().unwrap().to_owned(),
                    n["connection_id"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let disconnects = v["disconnects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect();
        Status {
            status: v["status"].as_u64().unwrap(),
            neighbours,
            disconnects,
            raw: v.clone(),
        }
    }

    fn members(&self) -> BTreeSet<String> {
        self.neighbours.iter().map(|(m, _)| m.clone()).collect()
    }

    fn connection_to(&self, member: &str) -> Option<u64> {
        self.neighbours
            .iter()
            .find(|(m, _)| m == member)
            .map(|(_, id)| *id)
    }
}

/// "B#1 in, C#2 out": the neighbours by host label, connection id and direction.
fn describe(s: &Status, names: &[(&str, &str)]) -> String {
    let label = |m: &str| {
        names
            .iter()
            .find(|(_, n)| *n == m)
            .map_or("?", |(l, _)| *l)
            .to_owned()
    };
    let list: Vec<String> = s.raw["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{}#{} {} {}",
                label(n["member"].as_str().unwrap()),
                n["connection_id"],
                if n["outbound"] == true {
                    "out to"
                } else {
                    "in from"
                },
                n["address"].as_str().unwrap()
            )
        })
        .collect();
    format!("status {} [{}]", s.status, list.join(", "))
}

/// Polls `check` until it gives a value; panics with the last observation after `bound`.
fn until<T>(what: &str, bound: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + bound;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "not within {bound:?}: {what}; last seen: {last}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn three_hosts_join_connect_and_see_a_host_cut_off() {
    phase("start");
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return skip(&format!(
                "needs root to create network namespaces (uid {uid})"
            ))
        }
        None => return skip("cannot read the uid from /proc/self/status"),
    }
    if let Err(e) = ip(&["-V"]) {
        return skip(&format!("iproute2 is not usable: {e}"));
    }

    let pid = std::process::id();
    let subnet = format!("10.231.{}", pid % 250 + 1);
    let ns = |h: &str| format!("pgt{pid}-{h}");
    let switch = ns("sw");
    let hosts = ["a", "b", "c"];

    // Declared before the peers, so it drops after them: processes first, then namespaces.
    let mut namespaces = Namespaces { names: Vec::new() };
    for name in [switch.clone()]
        .into_iter()
        .chain(hosts.iter().map(|h| ns(h)))
    {
        if let Err(e) = namespaces.add(&name) {
            return skip(&format!("cannot create network namespace {name}: {e}"));
        }
    }
    if let Err(e) = ip(&["netns", "exec", &switch, "ip", "link", "show", "lo"]) {
        return skip(&format!("`ip netns exec` does not work here: {e}"));
    }

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
        ip_ok(&[
            "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &host_ns,
        ]);
        ip_ok(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
        ip_ok(&["-n", &host_ns, "link", "set", "lo", "up"]);
        ip_ok(&["-n", &host_ns, "addr", "add", &addr, "dev", "eth0"]);
        ip_ok(&["-n", &host_ns, "link", "set", "eth0", "up"]);
        phase(&format!(
            "host {h}: {host_ns} eth0 {addr} <-> {switch} {port}"
        ));
    }

    phase("starting one pg-peer per host");
    let mut a = Peer::spawn("A", &ns("a"), &format!("{subnet}.1:0"));
    let mut b = Peer::spawn("B", &ns("b"), &format!("{subnet}.2:0"));
    let mut c = Peer::spawn("C", &ns("c"), &format!("{subnet}.3:0"));

    let name_of = |p: &mut Peer, classifier: &str| {
        let v = p.call(json!({"cmd": "identity", "classifier": classifier}));
        (
            v["peer_name"].as_str().unwrap().to_owned(),
            v["xml"].as_str().unwrap().to_owned(),
        )
    };
    let (a_name, _) = name_of(&mut a, "a");
    let (b_name, b_xml) = name_of(&mut b, "b");
    let (c_name, c_xml) = name_of(&mut c, "c");

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
    let others =
        |me: &str| -> BTreeSet<String> { names.iter().filter(|n| *n != me).cloned().collect() };
    let mesh = until(
        "a full mesh: each host a neighbour of the other two",
        FORM_BOUND,
        || {
            let (sa, sb, sc) = (a.status(), b.status(), c.status());
            if sa.members() == others(&a_name)
                && sb.members() == others(&b_name)
                && sc.members() == others(&c_name)
            {
                Ok((sa, sb, sc))
            } else {
                Err(format!("A {}, B {}, C {}", sa.raw, sb.raw, sc.raw))
            }
        },
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
        let (sa, sb, sc) = (a.status(), b.status(), c.status());
        if sa.members() == others(&a_name)
            && sb.members() == others(&b_name)
            && sc.members() == others(&c_name)
        {
            Ok((sa, sb, sc))
        } else {
            Err(format!("A {}, B {}, C {}", sa.raw, sb.raw, sc.raw))
        }
    });
    phase(&format!("full mesh again: A {}", describe(&sa, &labels)));
    phase(&format!("                 B {}", describe(&sb, &labels)));
    phase(&format!("                 C {}", describe(&sc, &labels)));

    phase("end of input to every peer; waiting for them to exit");
    for p in [&mut a, &mut b, &mut c] {
        let status = p.finish();
        assert!(status.success(), "{} exited with {status}", p.label);
        phase(&format!("{} exited: {status}", p.label));
    }
    drop((a, b, c));
    drop(namespaces);
    phase("done");
}
