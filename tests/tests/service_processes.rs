//! `peergroupd` with real processes: the service (`pg-daemon`, the `peergroupd` entry point),
//! client processes (`pg-service-client`) and a remote member (`pg-peer`), all on loopback.
//!
//! - `closing_in_one_process_keeps_the_group_for_the_other`: issue #6's scenario. Two
//!   clients open one group; the remote sees one connection; one closes and the remote stays
//!   connected; the other is killed (SIGKILL) and the remote observes `GROUP_CLOSED`; a third
//!   client opens the group again and reconnects.
//! - `bad_requests_do_not_disturb_other_clients`: garbage, an oversized frame, a wrong
//!   version and requests before `Hello` each get an error reply and a closed socket.
//! - `a_killed_service_is_reported_and_a_restarted_one_serves`.
//! - `sigterm_closes_groups_and_removes_the_socket`.
//! - `events_reach_every_subscribed_process`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peergroup_core::identity::hresult;
use peergroup_core::service::proto::{
    split_frame, ClientFrame, Request, Response, ServerFrame, WireLimits, HEADER_LEN,
    MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use peergroup_core::transport::Limits;
use serde_json::{json, Value};

mod common;

use common::{Proc, ANSWER_BOUND, HAS_CONNECTIONS, LISTENING};

/// Upper bound, from the issue, for the remote to observe the group closed.
const GROUP_CLOSED_BOUND: Duration = Duration::from_secs(2);

fn pg_peer(label: &str, home: &Path) -> Proc {
    Proc::spawn(
        label,
        Command::new(env!("CARGO_BIN_EXE_pg-peer"))
            .arg("--home")
            .arg(home)
            .args(["--listen", "127.0.0.1:0"]),
    )
}

/// Starts the service on `socket` over `home`; returns once it said it listens.
fn daemon(home: &Path, socket: &Path) -> Proc {
    let d = Proc::spawn(
        "peergroupd",
        Command::new(env!("CARGO_BIN_EXE_pg-daemon"))
            .arg("--socket")
            .arg(socket)
            .arg("--home")
            .arg(home)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn"),
    );
    assert_eq!(d.line(), format!("listening {}", socket.display()));
    d
}

/// A client process connected to the service of `d`, for its data directory.
fn client(label: &str, d: &Dirs) -> Proc {
    let c = Proc::spawn(label, &mut client_command(d));
    let hello = c.json_line();
    assert_eq!(hello["ok"], true, "{label}: cannot connect: {hello}");
    c
}

/// A service home holding one identity and one group it created; returns (identity, group).
fn home_with_group(home: &Path) -> (String, String) {
    let mut setup = pg_peer("setup", home);
    let identity = setup.call(json!({"cmd": "identity", "classifier": "svc"}))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = setup.call(json!({"cmd": "create"}))["group"]
        .as_str()
        .unwrap()
        .to_owned();
    setup.finish_success();
    (identity, group)
}

fn client_command(d: &Dirs) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pg-service-client"));
    c.arg("--socket").arg(&d.socket).arg("--home").arg(&d.home);
    c
}

struct Dirs {
    _root: tempfile::TempDir,
    home: PathBuf,
    socket: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let socket = root
        .path()
        .join("run")
        .join("peergroup")
        .join("peergroupd.sock");
    Dirs {
        home,
        socket,
        _root: root,
    }
}

fn open(c: &mut Proc, identity: &str, group: &str) -> u64 {
    c.call(json!({"cmd": "open", "identity": identity, "group": group}))["handle"]
        .as_u64()
        .unwrap()
}

/// Waits (bounded) until the remote lists `n` neighbours; returns its status answer.
fn remote_neighbours(remote: &mut Proc, n: usize) -> Value {
    let deadline = Instant::now() + ANSWER_BOUND;
    loop {
        let seen = remote.call(json!({"cmd": "status"}));
        if seen["neighbours"].as_array().unwrap().len() == n {
            return seen;
        }
        assert!(Instant::now() < deadline, "not {n} neighbours: {seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (30 s at most, in the service) until `handle` of client `c` has a connection;
/// `who` names it in the failure.
fn wait_connected(c: &mut Proc, handle: u64, who: &str) {
    let st = c.call(
        json!({"cmd": "wait", "handle": handle, "bits": HAS_CONNECTIONS, "timeout_ms": 30_000}),
    );
    assert_ne!(
        st["status"].as_u64().unwrap() & HAS_CONNECTIONS,
        0,
        "{who}: {st}"
    );
}

/// A remote member (in-process `pg-peer`, home of its own) that created a group and listens,
/// and an identity in the service's home that joined it (offline: the invitation is stored,
/// nothing is sent). Returns the remote's home (first, so it outlives the process), the
/// remote, its address, the identity and the group.
fn remote_and_member(d: &Dirs) -> (tempfile::TempDir, Proc, String, String, String) {
    let remote_home = tempfile::tempdir().unwrap();
    let mut remote = pg_peer("remote", remote_home.path());
    remote.call(json!({"cmd": "identity", "classifier": "remote"}));
    let group = remote.call(json!({"cmd": "create"}))["group"]
        .as_str()
        .unwrap()
        .to_owned();
    remote.call(json!({"cmd": "connect"}));
    let listening = remote.call(json!({"cmd": "wait", "bits": LISTENING, "timeout_ms": 20_000}));
    let remote_addr = listening["listen"][0].as_str().unwrap().to_owned();
    let mut setup = pg_peer("setup", &d.home);
    let me = setup.call(json!({"cmd": "identity", "classifier": "svc"}));
    let identity = me["peer_name"].as_str().unwrap().to_owned();
    let invitation = remote.call(json!({"cmd": "invite", "xml": me["xml"]}))["invitation"]
        .as_str()
        .unwrap()
        .to_owned();
    setup.call(json!({"cmd": "join", "invitation": invitation}));
    setup.finish_success();
    (remote_home, remote, remote_addr, identity, group)
}

#[test]
fn closing_in_one_process_keeps_the_group_for_the_other() {
    let d = dirs();
    let (_remote_home, mut remote, remote_addr, identity, group) = remote_and_member(&d);
    let _service = daemon(&d.home, &d.socket);

    // Two processes open the group; both connect.
    let mut a = client("client A", &d);
    let mut b = client("client B", &d);
    let ha = open(&mut a, &identity, &group);
    let hb = open(&mut b, &identity, &group);
    a.call(json!({"cmd": "connect", "handle": ha, "addrs": [remote_addr]}));
    wait_connected(&mut a, ha, "A");
    b.call(json!({"cmd": "connect", "handle": hb}));
    wait_connected(&mut b, hb, "B");

    // The remote sees one connection: both processes share the service's.
    let seen = remote_neighbours(&mut remote, 1);
    let member = seen["neighbours"][0]["member"].clone();
    assert_eq!(member, json!(identity), "{seen}");

    // A closes: the group stays connected for B.
    a.call(json!({"cmd": "close", "handle": ha}));
    let st = b.call(json!({"cmd": "status", "handle": hb}));
    assert_ne!(
        st["status"].as_u64().unwrap() & HAS_CONNECTIONS,
        0,
        "B after A closed: {st}"
    );
    let seen = remote.call(json!({"cmd": "status"}));
    assert_eq!(seen["neighbours"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["disconnects"], json!([]), "{seen}");
    // A's handle is gone; A's process itself is still a client.
    let gone = a.try_call(json!({"cmd": "status", "handle": ha}));
    assert_eq!(
        gone["hresult"],
        json!(hresult::PEER_E_INVALID_GROUP),
        "{gone}"
    );

    // B dies: its handle was the last, so the group closes and says so.
    b.kill();
    let deadline = Instant::now() + GROUP_CLOSED_BOUND;
    let closed = loop {
        let seen = remote.call(json!({"cmd": "status"}));
        let disconnects = seen["disconnects"].as_array().unwrap().clone();
        if let Some(d) = disconnects.iter().find(|d| d["kind"] == "peer") {
            break d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the remote saw no close from the service within {GROUP_CLOSED_BOUND:?}: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = closed["text"].as_str().unwrap();
    assert!(text.contains("GROUP_CLOSED (1)"), "{closed}");

    // A third process opens the group again: the service reconnects.
    let mut c = client("client C", &d);
    let hc = open(&mut c, &identity, &group);
    c.call(json!({"cmd": "connect", "handle": hc, "addrs": [remote_addr]}));
    wait_connected(&mut c, hc, "C");
    let seen = remote_neighbours(&mut remote, 1);
    assert_eq!(seen["neighbours"][0]["member"], json!(identity), "{seen}");

    c.finish_success();
    a.finish_success();
    remote.finish_success();
}

/// Sends raw `bytes` on a new connection and reads what comes back until the service closes
/// it: the frames it answered.
fn raw_exchange(socket: &Path, bytes: &[u8]) -> Vec<ServerFrame> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(ANSWER_BOUND)).unwrap();
    // The service may close before reading everything; what it answered is what counts.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    // Closing with our bytes unread, the service resets the connection: its reply was
    // delivered before that, and read_to_end keeps what it read.
    if let Err(e) = s.read_to_end(&mut got) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    let mut frames = Vec::new();
    let mut rest = &got[..];
    while let Some((body, used)) = split_frame(rest).unwrap() {
        frames.push(ServerFrame::decode(body).unwrap());
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "a torn frame from the service: {rest:?}");
    frames
}

fn hello_request(version: u8, home: &Path) -> Vec<u8> {
    ClientFrame {
        id: 1,
        request: Request::Hello {
            version,
            home: home.to_str().unwrap().to_owned(),
            listen: None,
            limits: WireLimits::from(&Limits::default()),
        },
    }
    .encode()
}

/// The frames are exactly one error response with `hr`.
fn assert_refused(frames: &[ServerFrame], hr: i32, what: &str) {
    match frames {
        [ServerFrame::Response {
            response: Response::Error(e),
            ..
        }] => assert_eq!(e.hresult, hr, "{what}: {frames:?}"),
        _ => panic!("{what}: expected one error reply, got {frames:?}"),
    }
}

/// Sending `bytes` on a fresh connection gets exactly one `E_INVALIDARG` error reply.
fn refuses_bytes(socket: &Path, bytes: &[u8], what: &str) {
    assert_refused(&raw_exchange(socket, bytes), hresult::E_INVALIDARG, what);
}

#[test]
fn bad_requests_do_not_disturb_other_clients() {
    let d = dirs();
    let (identity, group) = home_with_group(&d.home);
    let mut service = daemon(&d.home, &d.socket);

    // A well-behaved client, connected before and served after every bad one.
    let mut good = client("good client", &d);
    let h = open(&mut good, &identity, &group);
    let first = good.call(json!({"cmd": "add", "handle": h, "text": "before"}))["id"].clone();

    let garbage = raw_exchange(&d.socket, b"this is not a frame at all, just text\n");
    assert_refused(&garbage, hresult::E_INVALIDARG, "garbage");

    let mut oversized = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0; 64]);
    refuses_bytes(&d.socket, &oversized, "oversized");

    let mut other_version = hello_request(PROTOCOL_VERSION, &d.home);
    other_version[HEADER_LEN] = PROTOCOL_VERSION + 1;
    refuses_bytes(&d.socket, &other_version, "version");

    let old_hello = hello_request(0, &d.home);
    refuses_bytes(&d.socket, &old_hello, "hello v0");

    let no_hello = ClientFrame {
        id: 1,
        request: Request::Group {
            handle: 1,
            call: peergroup_core::GroupCall::Status {},
        },
    }
    .encode();
    refuses_bytes(&d.socket, &no_hello, "no hello");

    // A good hello then a torn frame: the hello is answered, the rest refused.
    let mut torn = hello_request(PROTOCOL_VERSION, &d.home);
    torn.extend_from_slice(&[0, 0, 0, 9, PROTOCOL_VERSION, 0, 0]);
    let frames = raw_exchange(&d.socket, &torn);
    assert!(
        matches!(
            frames.first(),
            Some(ServerFrame::Response {
                id: 1,
                response: Response::Session { .. }
            })
        ),
        "{frames:?}"
    );
    assert_refused(&frames[1..], hresult::E_INVALIDARG, "torn frame");

    // The handle of another connection is not this one's.
    let mut stranger = hello_request(PROTOCOL_VERSION, &d.home);
    stranger.extend(
        ClientFrame {
            id: 2,
            request: Request::Close(h),
        }
        .encode(),
    );
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(ANSWER_BOUND)).unwrap();
    s.write_all(&stranger).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answers = loop {
        let n = s.read(&mut chunk).unwrap();
        assert_ne!(n, 0, "the service closed a well-formed connection");
        buf.extend_from_slice(&chunk[..n]);
        let mut frames = Vec::new();
        let mut rest = &buf[..];
        while let Some((body, used)) = split_frame(rest).unwrap() {
            frames.push(ServerFrame::decode(body).unwrap());
            rest = &rest[used..];
        }
        if frames.len() == 2 {
            break frames;
        }
    };
    assert_refused(
        &answers[1..],
        hresult::PEER_E_INVALID_GROUP,
        "a stranger's handle",
    );
    drop(s);

    // The good client is still served, and its handle still valid.
    let second = good.call(json!({"cmd": "add", "handle": h, "text": "after"}))["id"].clone();
    let records = good.call(json!({"cmd": "records", "handle": h}));
    let ids = records["ids"].as_array().unwrap();
    assert!(ids.contains(&first) && ids.contains(&second), "{records}");
    // And new clients are accepted.
    let mut late = client("late client", &d);
    let hl = open(&mut late, &identity, &group);
    let records = late.call(json!({"cmd": "records", "handle": hl}));
    assert_eq!(records["texts"].as_array().unwrap().len(), 2, "{records}");

    late.finish_success();
    good.finish_success();
    service.kill();
}

#[test]
fn a_killed_service_is_reported_and_a_restarted_one_serves() {
    let d = dirs();
    let (identity, group) = home_with_group(&d.home);
    let mut service = daemon(&d.home, &d.socket);
    let mut c = client("client", &d);
    let h = open(&mut c, &identity, &group);
    let id = c.call(json!({"cmd": "add", "handle": h, "text": "kept"}))["id"].clone();

    service.kill();
    let answer = c.try_call(json!({"cmd": "status", "handle": h}));
    assert_eq!(
        answer["hresult"],
        json!(hresult::PEER_E_SERVICE_NOT_AVAILABLE),
        "{answer}"
    );
    // A new process cannot connect either; the socket file it finds is stale.
    assert!(d.socket.exists());
    let mut refused = Proc::spawn("refused client", &mut client_command(&d));
    let answer = refused.json_line();
    assert_eq!(
        answer["hresult"],
        json!(hresult::PEER_E_SERVICE_NOT_AVAILABLE),
        "{answer}"
    );
    refused.end_input();

    // A restarted service replaces the stale socket and serves the same, intact data.
    let _service = daemon(&d.home, &d.socket);
    let mut again = client("client again", &d);
    let h2 = open(&mut again, &identity, &group);
    let records = again.call(json!({"cmd": "records", "handle": h2}));
    assert_eq!(records["ids"], json!([id]), "{records}");
    assert_eq!(records["texts"], json!(["kept"]), "{records}");
    again.finish_success();
    c.finish_success();
}

#[test]
fn a_second_service_on_a_live_socket_refuses_to_start() {
    let d = dirs();
    let _service = daemon(&d.home, &d.socket);
    let out = Command::new(env!("CARGO_BIN_EXE_pg-daemon"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--home")
        .arg(&d.home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serves"), "{err}");
    // The first one still serves.
    let mut c = client("client", &d);
    c.finish_success();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.socket.parent().unwrap())
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn sigterm_closes_groups_and_removes_the_socket() {
    let d = dirs();
    let (identity, group) = home_with_group(&d.home);
    let mut service = daemon(&d.home, &d.socket);
    let mut c = client("client", &d);
    let h = open(&mut c, &identity, &group);
    c.call(json!({"cmd": "connect", "handle": h}));
    c.call(json!({"cmd": "wait", "handle": h, "bits": LISTENING, "timeout_ms": 20_000}));

    let status = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    service.wait_success();
    assert!(!d.socket.exists(), "the socket was left behind");
    let answer = c.try_call(json!({"cmd": "status", "handle": h}));
    assert_eq!(
        answer["hresult"],
        json!(hresult::PEER_E_SERVICE_NOT_AVAILABLE),
        "{answer}"
    );
    c.finish_success();
}

#[test]
fn events_reach_every_subscribed_process() {
    let d = dirs();
    let (identity, group) = home_with_group(&d.home);
    let mut service = daemon(&d.home, &d.socket);
    let mut a = client("client A", &d);
    let mut b = client("client B", &d);
    let ha = open(&mut a, &identity, &group);
    let hb = open(&mut b, &identity, &group);
    // Record events come from the running group: bring it online (the creator listens).
    a.call(json!({"cmd": "connect", "handle": ha}));
    a.call(json!({"cmd": "wait", "handle": ha, "bits": LISTENING, "timeout_ms": 20_000}));
    a.call(json!({"cmd": "subscribe", "handle": ha}));
    b.call(json!({"cmd": "subscribe", "handle": hb}));

    let id = a.call(json!({"cmd": "add", "handle": ha, "text": "for both"}))["id"].clone();
    // PEER_GROUP_EVENT_RECORD_CHANGED is 3.
    for p in [&mut a, &mut b] {
        let ev = p.call(json!({"cmd": "event", "kind": 3, "timeout_ms": 20_000}));
        assert_eq!(ev["id"], id, "{}: {ev}", p.label);
    }
    a.finish_success();
    b.finish_success();
    service.kill();
}

/// Data a remote member sends on its neighbour connection reaches both processes that
/// registered for incoming data, through the one connection they share.
#[test]
fn data_reaches_every_registered_process() {
    let d = dirs();
    let (_remote_home, mut remote, remote_addr, identity, group) = remote_and_member(&d);
    let _service = daemon(&d.home, &d.socket);

    let mut a = client("client A", &d);
    let mut b = client("client B", &d);
    let ha = open(&mut a, &identity, &group);
    let hb = open(&mut b, &identity, &group);
    a.call(json!({"cmd": "subscribe", "handle": ha}));
    b.call(json!({"cmd": "subscribe", "handle": hb}));
    a.call(json!({"cmd": "connect", "handle": ha, "addrs": [remote_addr]}));
    wait_connected(&mut a, ha, "A");
    remote_neighbours(&mut remote, 1);

    let sent = remote.call(json!({"cmd": "send", "text": "to both processes"}));
    assert_eq!(sent["sent"], 1, "{sent}");
    // PEER_GROUP_EVENT_INCOMING_DATA is 6.
    for p in [&mut a, &mut b] {
        let ev = p.call(json!({"cmd": "event", "kind": 6, "timeout_ms": 20_000}));
        assert_eq!(ev["text"], "to both processes", "{}: {ev}", p.label);
    }
    a.finish_success();
    b.finish_success();
    remote.finish_success();
}

/// Waits up to `bound` for one whole frame on `s`; whether it came.
fn answered(s: &mut UnixStream, bound: Duration) -> bool {
    s.set_read_timeout(Some(bound)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(_)) = split_frame(&got) {
            return true;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// CPU time of process `pid` so far (user + system), in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_the_service_backs_off_and_keeps_serving() {
    let d = dirs();
    let (identity, group) = home_with_group(&d.home);
    let log_path = d.home.parent().unwrap().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // 64 descriptors: a few dozen held connections use them up.
    let mut service = Proc::spawn(
        "peergroupd",
        Command::new("prlimit")
            .args(["--nofile=64:64", "--"])
            .arg(env!("CARGO_BIN_EXE_pg-daemon"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("--home")
            .arg(&d.home)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stderr(log),
    );
    assert_eq!(service.line(), format!("listening {}", d.socket.display()));
    let mut c = client("client", &d);
    let h = open(&mut c, &identity, &group);

    // Connections that say Hello and stay, until one gets no answer: accept is failing.
    let mut held = Vec::new();
    let exhausted = loop {
        assert!(held.len() < 200, "the service never ran out of descriptors");
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(&hello_request(PROTOCOL_VERSION, &d.home))
            .unwrap();
        let ok = answered(&mut s, Duration::from_secs(2));
        held.push(s);
        if !ok {
            break held.len();
        }
    };
    // Out of descriptors for a while: it must not spin, nor flood its log.
    let pid = service.id();
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - before;
    // Clock ticks are 100 a second on Linux: a spinning accept loop burns ~300 here.
    assert!(
        used < 100,
        "{used} ticks of CPU in 3 s while out of descriptors"
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    let warnings = text.lines().filter(|l| l.contains("accept")).count();
    assert!(
        warnings <= 2,
        "{warnings} accept warnings in {} bytes of log",
        text.len()
    );
    // What it served before goes on.
    let s = c.call(json!({"cmd": "status", "handle": h}));
    assert_eq!(s["ok"], true, "{s}");
    // Descriptors back: the connection left waiting is answered, and new clients served.
    let mut waiting = held.pop().unwrap();
    drop(held);
    assert!(
        answered(&mut waiting, ANSWER_BOUND),
        "the connection left waiting is served once descriptors are free"
    );
    let mut after = client("after", &d);
    open(&mut after, &identity, &group);
    common::phase(&format!(
        "out of descriptors after {exhausted} connections: {used} ticks in 3 s, {warnings} warnings"
    ));
    for p in [&mut c, &mut after] {
        p.finish_success();
    }
    service.kill();
}
