//! `send` and `listen` from the command line: real processes, two homes, QUIC on loopback.
//! Waits are bounded; nothing asserts on timing.

mod common;

use common::*;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes that show both order and content: a xorshift stream.
fn content(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Alice listens with `--out FILE --count 1`; Bob first sends to a member nobody knows
/// (refused, `PEER_E_NODE_NOT_FOUND`, and the listener is not disturbed), then a file of a
/// few MiB: it arrives byte-identical, both sides report the same byte and message counts,
/// and both exit 0.
#[test]
fn a_file_sent_to_a_listener_arrives_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let alice = identity(&a);
    identity(&b);
    let stranger = identity(&c);
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let group = group_of_two(tmp.path(), &a, &b, &listen);

    let received = tmp.path().join("received.bin");
    let listener = Background::spawn(
        &a,
        &listen,
        &[
            "--json",
            "listen",
            &group,
            "--out",
            path_str(&received),
            "--count",
            "1",
        ],
    );
    let ready = listener
        .wait_for(Duration::from_secs(20), |v| v["event"] == "listening")
        .expect("the listener comes online");
    assert_eq!(ready["member"], alice.as_str());

    // A member nobody in the group knows: refused, naming the HRESULT.
    let out = peergroup(
        &b,
        &["send", &group, "--to", &stranger, "--wait", "20", "-"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains("PEER_E_NODE_NOT_FOUND"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    // Five whole messages of 1 MiB and a partial one.
    let data = content(5 * (1 << 20) + 12345);
    let file = tmp.path().join("file.bin");
    std::fs::write(&file, &data).unwrap();
    let sent = json(&ok(peergroup(
        &b,
        &["--json", "send", &group, "--to", &alice, path_str(&file)],
    )));
    assert_eq!(sent["sent"], data.len() as u64);
    assert_eq!(sent["messages"], 6);
    assert_eq!(sent["to"], alice.as_str());

    let end = listener
        .wait_for(Duration::from_secs(30), |v| v["event"] == "end")
        .expect("the listener saw the end of the transfer");
    assert_eq!(end["bytes"], data.len() as u64);
    assert_eq!(end["messages"], 6);
    assert!(listener.exit(), "listen exits 0 after --count transfers");
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the file arrived changed");
}

/// Without `--out`, `listen --json` prints one object per message (connection, type, size)
/// and one at the end; standard input works as `send`'s input, an empty input is a transfer
/// of no messages, and a transfer the listener does not confirm makes `send` fail.
#[test]
fn listen_prints_a_line_per_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let alice = identity(&a);
    identity(&b);
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let group = group_of_two(tmp.path(), &a, &b, &listen);
    let ty = "{01234567-89AB-CDEF-0123-456789ABCDEF}";
    let listener = Background::spawn(
        &a,
        &listen,
        &["--json", "listen", &group, "--type", ty, "--count", "2"],
    );
    listener
        .wait_for(Duration::from_secs(20), |v| v["event"] == "listening")
        .expect("the listener comes online");

    let mut send = command(&b, "127.0.0.1:0")
        .args(["send", &group, "--to", &alice, "--type", ty, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = send.stdin.take().unwrap();
        stdin.write_all(b"hello over a direct connection").unwrap();
    }
    let out = ok(send.wait_with_output().unwrap());
    assert!(out.contains("sent 30 bytes in 1 message "), "{out}");

    let msg = listener
        .wait_for(Duration::from_secs(30), |v| v["event"] == "data")
        .expect("a line for the message");
    assert_eq!(msg["bytes"], 30);
    assert_eq!(msg["type"], ty);
    let conn = msg["connection_id"].clone();
    let end = listener
        .wait_for(Duration::from_secs(30), |v| v["event"] == "end")
        .expect("a line for the end");
    assert_eq!(end["connection_id"], conn);
    assert_eq!(
        (end["bytes"].as_u64(), end["messages"].as_u64()),
        (Some(30), Some(1))
    );

    // A transfer the listener does not take (another type): no receipt, so `send` fails.
    let out = peergroup(
        &b,
        &[
            "send",
            &group,
            "--to",
            &alice,
            "--wait",
            "2",
            path_str(&tmp.path().join("inv.xml")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(
        err.contains("no receipt") && err.contains("PEER_E_TIMEOUT"),
        "{err}"
    );

    // An empty input: a transfer with no message.
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = ok(peergroup(
        &b,
        &[
            "send",
            &group,
            "--to",
            &alice,
            "--type",
            ty,
            path_str(&empty),
        ],
    ));
    assert!(out.contains("sent 0 bytes in 0 messages"), "{out}");
    let end = listener
        .wait_for(Duration::from_secs(30), |v| v["event"] == "end")
        .expect("a line for the second end");
    assert_eq!(
        (end["bytes"].as_u64(), end["messages"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(listener.exit(), "listen exits 0 after --count transfers");
}

/// `listen --out -` writes the data, raw, on standard output and nothing else: its report
/// lines go to standard error.
#[test]
fn listen_out_dash_writes_only_the_data_on_standard_output() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let alice = identity(&a);
    identity(&b);
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let group = group_of_two(tmp.path(), &a, &b, &listen);
    let mut child = command(&a, &listen)
        .args(["--json", "listen", &group, "--out", "-", "--count", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let data_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).unwrap();
        buf
    });
    let (tx, reports) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut child = Killed(child);
    let ready = reports
        .recv_timeout(Duration::from_secs(20))
        .expect("a listening report on standard error");
    assert_eq!(json(&ready)["event"], "listening", "{ready}");

    let data = content(3 * (1 << 20) + 1);
    let file = tmp.path().join("file.bin");
    std::fs::write(&file, &data).unwrap();
    ok(peergroup(
        &b,
        &["send", &group, "--to", &alice, path_str(&file)],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "listen did not exit after --count 1"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let got = data_thread.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(
        got == data,
        "standard output holds the data and nothing else"
    );
}

/// A `listen --out FILE` that fails before any data (here: a group this home does not hold)
/// leaves FILE as it was; one whose directory does not exist fails at once.
#[test]
fn a_listen_that_fails_leaves_its_out_file_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    identity(&home);
    let file = tmp.path().join("precious.bin");
    std::fs::write(&file, b"precious").unwrap();
    let unknown = "0000000000000000000000000000000000000000.nogroup";
    let out = peergroup(&home, &["listen", unknown, "--out", path_str(&file)]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    let nowhere = tmp.path().join("no-such-dir").join("x.bin");
    fails_with(
        peergroup(&home, &["listen", unknown, "--out", path_str(&nowhere)]),
        "no-such-dir",
    );
    assert!(!nowhere.exists());
}
