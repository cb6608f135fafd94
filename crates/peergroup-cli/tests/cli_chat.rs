//! `chat` through the binary: piped standard input and output, two homes, QUIC on loopback.
//! Waits are bounded; nothing asserts on timing.

mod common;

use common::*;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `chat` in `home` with `input` as its whole standard input; its output.
fn chat_with_input(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(home, "127.0.0.1:0")
        .arg("chat")
        .args(args)
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

    let mut alice = Killed(
        command(&a, &listen)
            .args(["chat", &group, "--name", "Alice", "--wait", "0"])
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
