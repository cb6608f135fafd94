//! Shared by the network-namespace tests (`netns_*.rs`): creating and removing namespaces,
//! the skip rules, and driving one `pg-peer` process per host (see `src/bin/pg-peer.rs`);
//! and by the service tests (`service_processes.rs`): [`Proc`], a helper process driven by
//! JSON lines, which [`Peer`] wraps.
//!
//! Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

pub mod lab;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `PEER_GROUP_STATUS_LISTENING`.
pub const LISTENING: u64 = 0x1;
/// `PEER_GROUP_STATUS_HAS_CONNECTIONS`.
pub const HAS_CONNECTIONS: u64 = 0x2;
/// Upper bound for one answer of a peer (commands that wait carry their own, shorter bound).
pub const ANSWER_BOUND: Duration = Duration::from_secs(60);
/// Upper bound for a peer to exit after end of input.
pub const EXIT_BOUND: Duration = Duration::from_secs(20);

/// Prints one progress line for the CI log, prefixed with the test binary's name and the
/// seconds since its first progress line.
pub fn phase(msg: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{} {t:5.1}s] {msg}", env!("CARGO_CRATE_NAME"));
}

// ---------------------------------------------------------------------------------------
// Namespaces and skip rules

/// The namespaces a test created; dropping it deletes them (and with them their links).
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Creates `names` in order and checks that `ip netns exec` works in the first. The error
    /// is a reason to skip; whatever was created is removed again when the error is returned.
    pub fn create(names: &[String]) -> Result<Namespaces, String> {
        let mut namespaces = Namespaces { names: Vec::new() };
        for name in names {
            ip(&["netns", "add", name])
                .map_err(|e| format!("cannot create network namespace {name}: {e}"))?;
            namespaces.names.push(name.clone());
        }
        if let Some(first) = names.first() {
            ip(&["netns", "exec", first, "ip", "link", "show", "lo"])
                .map_err(|e| format!("`ip netns exec` does not work here: {e}"))?;
        }
        Ok(namespaces)
    }

    /// Creates one more namespace, removed with the others (before them: last made, first
    /// removed).
    pub fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])
            .map_err(|e| format!("cannot create network namespace {name}: {e}"))?;
        self.names.push(name.to_owned());
        Ok(())
    }

    /// Creates the switch namespace `ns("sw")`, then one namespace `ns(h)` for each host `h`.
    pub fn switch_and_hosts(
        ns: impl Fn(&str) -> String,
        hosts: &[&str],
    ) -> Result<Namespaces, String> {
        let names: Vec<String> = std::iter::once("sw")
            .chain(hosts.iter().copied())
            .map(ns)
            .collect();
        Namespaces::create(&names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            match ip(&["netns", "del", name]) {
                Ok(()) => phase(&format!("removed namespace {name}")),
                Err(e) => eprintln!(
                    "[{}] could not remove namespace {name}: {e}",
                    env!("CARGO_CRATE_NAME")
                ),
            }
        }
    }
}

/// Runs `ip ARGS`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
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
pub fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether this process may make namespaces: root and a working `ip`. The error is the
/// reason to [`skip`].
pub fn preflight() -> Result<(), String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "needs root to create network namespaces (uid {uid})"
            ))
        }
        None => return Err("cannot read the uid from /proc/self/status".into()),
    }
    ip(&["-V"]).map_err(|e| format!("iproute2 is not usable: {e}"))
}

/// Reports a missing capability: a skip on a developer machine, a failure under CI.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// Connects `host_ns` to bridge `bridge` in namespace `switch`: a veth pair with `port` on the
/// bridge and `eth0` (address `addr`, e.g. `10.0.0.1/24`) in the host.
pub fn attach_host(switch: &str, bridge: &str, port: &str, host_ns: &str, addr: &str) {
    ip_ok(&[
        "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host_ns,
    ]);
    ip_ok(&["-n", switch, "link", "set", port, "master", bridge, "up"]);
    ip_ok(&["-n", host_ns, "link", "set", "lo", "up"]);
    ip_ok(&["-n", host_ns, "addr", "add", addr, "dev", "eth0"]);
    ip_ok(&["-n", host_ns, "link", "set", "eth0", "up"]);
}

// ---------------------------------------------------------------------------------------
// Peers

/// One helper process driven by JSON lines over stdin/stdout; killed if still running when
/// dropped (after a panic: no process is left behind).
pub struct Proc {
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts `cmd` with piped stdin and stdout; a thread forwards its output lines.
    pub fn spawn(label: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
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
        Proc {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The next output line (within [`ANSWER_BOUND`]).
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(ANSWER_BOUND)
            .unwrap_or_else(|e| panic!("{}: no output line: {e}", self.label))
    }

    /// The next output line, which must be JSON.
    pub fn json_line(&self) -> Value {
        let line = self.line();
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.label))
    }

    /// Sends one command without waiting for its answer (read it with
    /// [`Proc::json_line`]): several processes then work at once.
    pub fn send(&mut self, req: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot send {req}: {e}", self.label));
    }

    /// Sends one command; returns its answer whatever it is.
    pub fn try_call(&mut self, req: Value) -> Value {
        self.send(&req);
        self.json_line()
    }

    /// Sends one command and returns its answer, which must be `"ok": true`.
    pub fn call(&mut self, req: Value) -> Value {
        let answer = self.try_call(req.clone());
        assert_eq!(
            answer["ok"], true,
            "{}: {req} was refused: {answer}",
            self.label
        );
        answer
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Closes stdin: the process ends its work and exits (see [`Proc::finish`]).
    pub fn end_input(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits for the exit (within [`EXIT_BOUND`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {EXIT_BOUND:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit, which must be a success.
    pub fn wait_success(&mut self) {
        let status = self.wait_exit();
        assert!(status.success(), "{}: exited with {status}", self.label);
    }

    /// Closes stdin and waits for the exit.
    pub fn finish(&mut self) -> ExitStatus {
        self.end_input();
        self.wait_exit()
    }

    /// Closes stdin and waits for the exit, which must be a success.
    pub fn finish_success(&mut self) {
        self.end_input();
        self.wait_success();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `pg-peer` process inside a host's namespace, over a home of its own (the [`Proc`]
/// calls reach it through `Deref`). When the tests run through the service
/// (`PEERGROUP_SERVICE=required`), each host runs a `peergroupd` of its own, in its
/// namespace, and the peer goes through it: a service serves one machine.
pub struct Peer {
    pub label: &'static str,
    // Before the daemon and the home: the process goes first.
    proc: Proc,
    daemon: Option<Proc>,
    _home: tempfile::TempDir,
    netns: String,
    listen: String,
    extra: Vec<String>,
    /// Environment variables of the process (and of its service).
    env: Vec<(String, String)>,
}

/// Starts `pg-peer` on `home` in `netns` (and its service first, when the tests run through
/// one).
fn launch(
    label: &'static str,
    netns: &str,
    listen: &str,
    extra: &[&str],
    env: &[(String, String)],
    home: &std::path::Path,
) -> (Proc, Option<Proc>) {
    let through_service = std::env::var("PEERGROUP_SERVICE").as_deref() == Ok("required");
    let socket = home.join("run").join("peergroupd.sock");
    let daemon = through_service.then(|| {
        // A killed service leaves its socket behind; the new one takes its place.
        let _ = std::fs::remove_file(&socket);
        let d = Proc::spawn(
            label,
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    netns,
                    env!("CARGO_BIN_EXE_pg-daemon"),
                    "--socket",
                ])
                .arg(&socket)
                // Its own directory apart: the peer's is then made from the peer's
                // session, with its listen address and transport limits.
                .arg("--home")
                .arg(home.join("daemon"))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("RUST_LOG", "warn"),
        );
        assert_eq!(d.line(), format!("listening {}", socket.display()));
        d
    });
    let mut command = Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            netns,
            env!("CARGO_BIN_EXE_pg-peer"),
            "--home",
        ])
        .arg(home)
        .args(["--listen", listen])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PG_PEER_LABEL", label);
    if through_service {
        command.env("PEERGROUP_SERVICE_SOCKET", &socket);
    }
    (Proc::spawn(label, &mut command), daemon)
}

impl std::ops::Deref for Peer {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl Peer {
    pub fn spawn(label: &'static str, netns: &str, listen: &str) -> Peer {
        Peer::spawn_with(label, netns, listen, &[])
    }

    /// [`Peer::spawn`] with more `pg-peer` arguments (e.g. `["--limits", "default"]`).
    pub fn spawn_with(label: &'static str, netns: &str, listen: &str, extra: &[&str]) -> Peer {
        Peer::spawn_env(label, netns, listen, extra, &[])
    }

    /// [`Peer::spawn_with`] with environment variables `env` for the process and its service
    /// (e.g. `PEERGROUP_MAX_NEIGHBOURS`).
    pub fn spawn_env(
        label: &'static str,
        netns: &str,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Peer {
        let home = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (proc, daemon) = launch(label, netns, listen, extra, &env, home.path());
        Peer {
            label,
            proc,
            daemon,
            _home: home,
            netns: netns.to_owned(),
            listen: listen.to_owned(),
            extra: extra.iter().map(|e| (*e).to_owned()).collect(),
            env,
        }
    }

    /// Kills the host (SIGKILL: a crash, nothing closed) and starts it again on the same
    /// home, listen address and arguments; the new process holds no group until `open`.
    pub fn restart(&mut self) {
        self.kill_host();
        let _ = self.proc.wait_exit();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (proc, daemon) = launch(
            self.label,
            &self.netns,
            &self.listen,
            &extra,
            &self.env,
            self._home.path(),
        );
        self.proc = proc;
        self.daemon = daemon;
        phase(&format!("{} restarted", self.label));
    }

    /// SIGKILL to the host's group: its service first when it runs through one (which holds
    /// the group), then the process.
    pub fn kill_host(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            d.kill();
        }
        self.proc.kill();
    }

    /// Closes stdin, waits for the exit, which must be a success, and logs it.
    pub fn finish_logged(&mut self) {
        let status = self.finish();
        assert!(status.success(), "{} exited with {status}", self.label);
        phase(&format!("{} exited: {status}", self.label));
    }

    /// Makes an identity with `classifier`; returns its peer name and public XML.
    pub fn identity(&mut self, classifier: &str) -> (String, String) {
        let v = self.call(json!({"cmd": "identity", "classifier": classifier}));
        (
            v["peer_name"].as_str().unwrap().to_owned(),
            v["xml"].as_str().unwrap().to_owned(),
        )
    }

    pub fn status(&mut self) -> Status {
        Status::of(&self.call(json!({"cmd": "status"})))
    }

    /// The peer's neighbour entry for `member` (see `pg-peer`), if connected to it.
    pub fn neighbour(&mut self, member: &str) -> Option<Value> {
        self.status().neighbour(member)
    }

    /// Adds a record with `text` as its data; returns its id (32 hex digits).
    pub fn add(&mut self, text: &str) -> String {
        let v = self.call(json!({"cmd": "add", "text": text}));
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(id.len(), 32, "{}: add answered a bad id: {v}", self.label);
        id
    }

    /// Creates the group and brings it online (relaying for members when `relay`); returns
    /// once it listens.
    pub fn create_group(&mut self, relay: bool) {
        self.call(json!({"cmd": "create"}));
        if relay {
            self.call(json!({"cmd": "relay", "on": true}));
        }
        self.call(json!({"cmd": "connect"}));
        self.call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));
    }

    /// Joins with an invitation `inviter` makes for the identity `xml` (`inviting`: one
    /// that lets this member invite too), relays when `relay`, and connects; returns the
    /// group's peer name.
    pub fn join_from(
        &mut self,
        inviter: &mut Peer,
        xml: &str,
        inviting: bool,
        relay: bool,
    ) -> String {
        let inv = inviter.call(json!({"cmd": "invite", "xml": xml, "inviting": inviting}));
        let joined = self.call(json!({"cmd": "join", "invitation": inv["invitation"]}));
        if relay {
            self.call(json!({"cmd": "relay", "on": true}));
        }
        self.call(json!({"cmd": "connect"}));
        joined["group"].as_str().unwrap().to_owned()
    }

    /// Waits until the member listens and has a connection (status 3), which it must reach.
    pub fn wait_joined(&mut self) {
        let both = LISTENING | HAS_CONNECTIONS;
        let s = self.call(json!({"cmd": "wait", "bits": both, "timeout_ms": 60_000}));
        assert_eq!(s["status"], both, "{} reaches status 3: {s}", self.label);
    }

    /// Waits until the data that arrived on some connection (`received`) satisfies `has`,
    /// e.g. all `bytes` of a transfer with its SHA-256.
    pub fn wait_received(&mut self, what: &str, bound: Duration, has: impl Fn(&Value) -> bool) {
        let label = self.label;
        until(&format!("{label} received {what}"), bound, || {
            let v = self.call(json!({"cmd": "received"}));
            if v["connections"].as_array().unwrap().iter().any(&has) {
                Ok(())
            } else {
                Err(v.to_string())
            }
        });
    }

    /// Waits until the member list (`PeerGroupEnumMembers`) gives `member`'s presence at an
    /// address starting with `prefix` (an IP and a colon, say).
    pub fn wait_listed(&mut self, member: &str, prefix: &str, bound: Duration) {
        let label = self.label;
        until(
            &format!("{label}'s member list gives {member} at {prefix}"),
            bound,
            || {
                let m = self.call(json!({"cmd": "members"}));
                let listed = m["members"].as_array().unwrap().iter().any(|x| {
                    x["identity"] == member
                        && x["addresses"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|s| s.as_str().unwrap().starts_with(prefix))
                });
                if listed {
                    Ok(())
                } else {
                    Err(m.to_string())
                }
            },
        );
    }

    /// The peer's open direct connections (`{"connection_id","member","address","relayed"}`).
    pub fn directs(&mut self) -> Vec<Value> {
        let v = self.call(json!({"cmd": "directs"}));
        v["directs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the direct connection `id` runs on a direct path (upgraded in place when
    /// it began relayed); returns it.
    pub fn wait_direct_path(&mut self, id: u64, bound: Duration) -> Value {
        let label = self.label;
        until(
            &format!("{label}'s direct connection {id} on a direct path"),
            bound,
            || match self
                .directs()
                .into_iter()
                .find(|d| d["connection_id"] == id)
            {
                Some(d) if d["relayed"] == false => Ok(d),
                other => Err(format!("{other:?}")),
            },
        )
    }

    /// The peer's live records: count, digest and ids.
    pub fn records(&mut self) -> Records {
        let v = self.call(json!({"cmd": "records"}));
        let ids: BTreeSet<String> = v["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: records without ids: {v}", self.label))
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let count = v["count"].as_u64().unwrap() as usize;
        assert_eq!(
            count,
            ids.len(),
            "{}: count and ids disagree: {v}",
            self.label
        );
        Records {
            count,
            digest: v["digest"].as_str().unwrap().to_owned(),
            ids,
        }
    }
}

/// A peer's record database, from a `records` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    pub count: usize,
    pub digest: String,
    pub ids: BTreeSet<String>,
}

impl std::fmt::Display for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} records, digest {}", self.count, &self.digest[..12])
    }
}

/// A peer's view of its group, from a `status` answer.
#[derive(Debug)]
pub struct Status {
    pub status: u64,
    /// Neighbour member names with their connection ids.
    pub neighbours: Vec<(String, u64)>,
    /// Kinds of the remembered disconnects, oldest first.
    pub disconnects: Vec<String>,
    pub raw: Value,
}

impl Status {
    /// The neighbour entry for `member`, if connected to it.
    pub fn neighbour(&self, member: &str) -> Option<Value> {
        self.raw["neighbours"]
            .as_array()?
            .iter()
            .find(|n| n["member"] == member)
            .cloned()
    }

    pub fn of(v: &Value) -> Status {
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

    pub fn members(&self) -> BTreeSet<String> {
        self.neighbours.iter().map(|(m, _)| m.clone()).collect()
    }

    pub fn connection_to(&self, member: &str) -> Option<u64> {
        self.neighbours
            .iter()
            .find(|(m, _)| m == member)
            .map(|(_, id)| *id)
    }
}

/// "B#1 in, C#2 out": the neighbours by host label, connection id and direction.
pub fn describe(s: &Status, names: &[(&str, &str)]) -> String {
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
pub fn until<T>(what: &str, bound: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
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
