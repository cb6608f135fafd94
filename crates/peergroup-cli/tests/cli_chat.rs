//! `chat` through the binary: piped standard input and output, two homes, QUIC on loopback.
//! Waits are bounded; nothing asserts on timing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn peergroup_on(home: &Path, listen: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peergroup"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("PEERGROUP_LISTEN", listen)
        .stdin(Stdio::null())
        .output()
        .expect("peergroup runs")
}

fn peergroup(home: &Path, args: &[&str]) -> Output {
    peergroup_on(home, "127.0.0.1:0", args)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The default identity of `home` (made on first use), which the other commands act as: its
/// peer name.
fn identity(home: &Path) -> String {
    json(&ok(peergroup(home, &["--json", "identity", "default"])))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Alice's group (she listens at `listen`) with Bob joined: the group's peer name.
fn group_of_two(tmp: &Path, a: &Path, b: &Path, listen: &str) -> String {
    let group = json(&ok(peergroup(
        a,
        &["--json", "group", "create", "--classifier", "club"],
    )))["group_peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_xml = json(&ok(peergroup(b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    let xml_file = tmp.join("bob.xml");
    std::fs::write(&xml_file, bob_xml).unwrap();
    let invitation = ok(peergroup_on(
        a,
        listen,
        &[
            "invite",
            &group,
            "--identity-xml",
            xml_file.to_str().unwrap(),
        ],
    ));
    let inv_file = tmp.join("inv.xml");
    std::fs::write(&inv_file, invitation).unwrap();
    ok(peergroup(b, &["join", inv_file.to_str().unwrap()]));
    group
}

/// A child process killed when the test ends, passed or not.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `chat` in `home` with `input` as its whole standard input; its output.
fn chat_with_input(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peergroup"))
        .arg("--home")
        .arg(home)
        .arg("chat")
        .args(args)
        .env("PEERGROUP_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Alice chats in a process kept open; Bob, in another, says a line and runs `/who`, then
/// his input ends: Alice is shown his line with his name, Bob sees his own line and who is
/// connected, and exits 0. Alice answers and leaves with `/quit` (exit 0). Bob's next chat
/// prints the history: his earlier line. The lines are records of the chat type, with an
/// `Author` attribute that search finds.
#[test]
fn two_members_chat_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    identity(&a);
    identity(&b);
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let group = group_of_two(tmp.path(), &a, &b, &listen);

    let mut alice = Kill(
        Command::new(env!("CARGO_BIN_EXE_peergroup"))
            .arg("--home")
            .arg(&a)
            .args(["chat", &group, "--name", "Alice", "--wait", "0"])
            .env("PEERGROUP_LISTEN", &listen)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel::<String>();
    let out = alice.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let until = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("{needle:?} not shown at Alice; saw {seen:?}");
    };
    until("* Alice in ");

    let bob = chat_with_input(
        &b,
        &[&group, "--name", "Bob", "--wait", "20"],
        "hello from Bob\n/who\n",
    );
    let bob_out = ok(bob);
    assert!(bob_out.contains("] Bob: hello from Bob"), "{bob_out}");
    assert!(bob_out.contains("* here:"), "{bob_out}");
    let shown = until("Bob: hello from Bob");
    assert!(shown.starts_with('['), "{shown}");

    let mut stdin = alice.0.stdin.take().unwrap();
    stdin.write_all(b"hi Bob\n/quit\n").unwrap();
    until("] Alice: hi Bob");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = alice.0.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = alice.0.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "Alice's chat exits 0 on /quit"
    );
    drop(stdin);

    // Bob again, alone: the history holds his line.
    let again = ok(chat_with_input(&b, &[&group, "--wait", "1"], ""));
    assert!(again.contains("] Bob: hello from Bob"), "{again}");

    // The lines are records of the chat type, found by their author.
    let found = ok(peergroup(
        &a,
        &[
            "--json",
            "record",
            "search",
            &group,
            "--where",
            "Author=string:Bob",
        ],
    ));
    let records: Vec<serde_json::Value> = found.lines().map(json).collect();
    assert_eq!(records.len(), 1, "{found}");
    assert_eq!(records[0]["type"], "{8B5C2E1A-6F3D-4C7E-9A41-636861742121}");
    assert_eq!(records[0]["data"], "hello from Bob");
}
