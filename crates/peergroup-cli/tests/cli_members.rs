//! Members from the command line: `members` and `group issue-credentials`, with real
//! processes, two homes and QUIC on loopback. Waits are bounded; nothing asserts on timing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn peergroup(home: &Path, args: &[&str]) -> Output {
    peergroup_on(home, "127.0.0.1:0", args)
}

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

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command failed, and its message contains `needle`.
fn fails_with(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
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

/// One home with an identity and a group it created; returns the group's peer name.
fn home_with_group(home: &Path, classifier: &str) -> String {
    ok(peergroup(
        home,
        &["identity", "create", "--classifier", classifier],
    ));
    json(&ok(peergroup(
        home,
        &["--json", "group", "create", "--classifier", "club"],
    )))["group_peer_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A background process whose standard output lines arrive on a channel.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    fn spawn(home: &Path, listen: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peergroup"))
            .arg("--home")
            .arg(home)
            .args(args)
            .env("PEERGROUP_LISTEN", listen)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines }
    }

    /// The first JSON line (within `bound`) for which `want` holds.
    fn wait_for(
        &self,
        bound: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + bound;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v = json(&line);
                    if want(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Closes standard input (the process closes its group and exits); its exit status.
    fn finish(mut self) -> bool {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Bob joins Alice's group and adds a record while Alice watches: Alice's watch prints
/// Bob's JOINED; Alice's `members` then lists her first and Bob (gone: not present); Alice
/// promotes Bob with `group issue-credentials --store`, and Bob's entry shows the new role.
#[test]
fn members_lists_the_group_and_issue_credentials_promotes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let group = home_with_group(&a, "alice");
    let alice_id = json(&ok(peergroup(&a, &["--json", "identity", "show"])))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(peergroup(
        &b,
        &["identity", "create", "--classifier", "bob"],
    ));
    let bob_show = json(&ok(peergroup(&b, &["--json", "identity", "show"])));
    let bob_id = bob_show["peer_name"].as_str().unwrap().to_owned();
    let xml_file = tmp.path().join("bob.xml");
    std::fs::write(&xml_file, bob_show["xml"].as_str().unwrap()).unwrap();

    // Before any connection Alice knows herself only.
    let listed = json(&ok(peergroup(&a, &["--json", "members", &group])));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["identity"], alice_id.as_str());
    assert_eq!(listed[0]["roles"], serde_json::json!(["admin"]));

    let listen = format!("127.0.0.1:{}", free_udp_port());
    let invitation = ok(peergroup_on(
        &a,
        &listen,
        &[
            "invite",
            &group,
            "--identity-xml",
            xml_file.to_str().unwrap(),
        ],
    ));
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, &invitation).unwrap();
    ok(peergroup(&b, &["join", inv_file.to_str().unwrap()]));

    let alice = Background::spawn(
        &a,
        &listen,
        &["--json", "watch", &group, "--kind", "member"],
    );
    assert!(
        alice
            .wait_for(Duration::from_secs(20), |v| v["change"] == "connected"
                && v["identity"] == alice_id.as_str())
            .is_some(),
        "Alice's own presence"
    );
    ok(peergroup(
        &b,
        &["record", "add", &group, "--data", "hi", "--wait", "20"],
    ));
    assert!(
        alice
            .wait_for(Duration::from_secs(20), |v| v["change"] == "joined"
                && v["identity"] == bob_id.as_str())
            .is_some(),
        "Alice's watch prints Bob's JOINED"
    );
    assert!(alice.finish(), "watch exits cleanly at end of input");

    let listed = json(&ok(peergroup(&a, &["--json", "members", &group])));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["identity"], alice_id.as_str());
    assert_eq!(listed[1]["identity"], bob_id.as_str());
    assert_eq!(listed[1]["roles"], serde_json::json!(["member"]));
    assert_eq!(listed[1]["issuer"], alice_id.as_str());
    let present = json(&ok(peergroup(
        &a,
        &["--json", "members", &group, "--present"],
    )));
    assert!(
        present
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["identity"] != bob_id.as_str()),
        "Bob closed: not present"
    );

    // Bob may not issue credentials; an unknown member gets PEER_E_IDENTITY_NOT_FOUND.
    fails_with(
        peergroup(
            &b,
            &["group", "issue-credentials", &group, &alice_id, "--store"],
        ),
        "PEER_E_NOT_AUTHORIZED",
    );
    let stranger = tmp.path().join("c");
    ok(peergroup(
        &stranger,
        &["identity", "create", "--classifier", "carol"],
    ));
    let carol_id = json(&ok(peergroup(&stranger, &["--json", "identity", "show"])))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    fails_with(
        peergroup(
            &a,
            &["group", "issue-credentials", &group, &carol_id, "--store"],
        ),
        "PEER_E_IDENTITY_NOT_FOUND",
    );

    // Without --store: an invitation with the role asked.
    let inv = ok(peergroup(
        &a,
        &[
            "group",
            "issue-credentials",
            &group,
            &bob_id,
            "--role",
            "inviting-member",
        ],
    ));
    assert!(inv.contains("<PEERINVITATION"), "{inv}");

    // With --store: Bob's member data now names him an administrator.
    ok(peergroup(
        &a,
        &[
            "group",
            "issue-credentials",
            &group,
            &bob_id,
            "--role",
            "admin",
            "--store",
        ],
    ));
    let bob_entry = json(&ok(peergroup(
        &a,
        &["--json", "members", &group, "--member", &bob_id],
    )));
    assert_eq!(bob_entry[0]["roles"], serde_json::json!(["admin"]));
    assert_eq!(bob_entry[0]["present"], false);
}
