//! Groups from the command line: real processes, real homes, QUIC on loopback.

mod common;

use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A process creates a group and exits; the next process opens it (PeerGroupOpen) from disk.
#[test]
fn a_group_outlives_the_process_that_created_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("a");
    ok(peergroup(
        &home,
        &["identity", "create", "--classifier", "me"],
    ));
    let created = json(&ok(peergroup(
        &home,
        &[
            "--json",
            "group",
            "create",
            "--classifier",
            "club",
            "--name",
            "Club",
        ],
    )));
    let name = created["group_peer_name"].as_str().unwrap().to_owned();
    let shown = json(&ok(peergroup(&home, &["--json", "group", "show", &name])));
    assert_eq!(shown["friendly_name"], "Club");
    assert_eq!(shown["roles"][0], "Admin");
    ok(peergroup(
        &home,
        &["group", "set", &name, "--comment", "hello"],
    ));
    assert_eq!(
        json(&ok(peergroup(&home, &["--json", "group", "show", &name])))["comment"],
        "hello"
    );
    let listed = json(&ok(peergroup(&home, &["--json", "group", "list"])));
    assert_eq!(listed[0]["peer_name"], name.as_str());
    ok(peergroup(&home, &["group", "delete", &name]));
    let gone = peergroup(&home, &["group", "show", &name]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("PEER_E_NOT_FOUND"));
}

/// Two processes, two homes: invite, join, connect; both report LISTENING|HAS_CONNECTIONS.
#[test]
fn invite_join_and_connect_between_two_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(peergroup(
        &a,
        &["identity", "create", "--classifier", "alice"],
    ));
    ok(peergroup(
        &b,
        &["identity", "create", "--classifier", "bob"],
    ));
    let group = json(&ok(peergroup(
        &a,
        &["--json", "group", "create", "--classifier", "club"],
    )))["group_peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_xml = json(&ok(peergroup(&b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    let xml_file = tmp.path().join("bob.xml");
    std::fs::write(&xml_file, bob_xml).unwrap();

    // Alice listens on a fixed port, so the invitation can name it while she is offline.
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let invite = command(&a, &listen)
        .args([
            "invite",
            &group,
            "--identity-xml",
            xml_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let invitation = ok(invite);
    assert!(
        invitation.contains(&listen),
        "the invitation names Alice's address"
    );
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, &invitation).unwrap();
    let garbage = tmp.path().join("garbage.xml");
    std::fs::write(&garbage, "<nope/>").unwrap();
    let refused = peergroup(&b, &["join", garbage.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("E_INVALIDARG"));
    ok(peergroup(&b, &["join", inv_file.to_str().unwrap()]));

    let spawn = |home: &Path, listen: &str| {
        command(home, listen)
            .args(["--json", "connect", &group])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let mut alice = spawn(&a, &listen);
    let mut bob = spawn(&b, "127.0.0.1:0");
    let reached = |child: &mut std::process::Child| {
        let out = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = BufReader::new(out).lines();
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if json(&line)["status"] == 3 {
                return true;
            }
        }
        false
    };
    assert!(reached(&mut bob), "Bob reaches LISTENING|HAS_CONNECTIONS");
    assert!(
        reached(&mut alice),
        "Alice reaches LISTENING|HAS_CONNECTIONS"
    );
    for child in [&mut alice, &mut bob] {
        drop(child.stdin.take()); // EOF: close the group and exit
        let status = child.wait().unwrap();
        assert!(status.success());
    }
}

/// What a script relies on: every failure names an HRESULT (name and hex) with a hint, and
/// exits non-zero; `invite --json` is an object whose invitation joins; `-v` logs on standard
/// error only; `connect` with its standard error not a terminal draws no progress.
#[test]
fn errors_name_an_hresult_json_invitations_and_no_progress_off_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let group = home_with_group(&a, "alice");

    // A file that is not there, a bad argument, a group that is not there.
    let missing = tmp.path().join("missing.xml");
    let out = peergroup(
        &a,
        &["identity", "import", path_str(&missing), "--password", "x"],
    );
    fails_with(out, "(HRESULT_FILE_NOT_FOUND, 0x80070002)\nhint: ");
    let out = peergroup(&a, &["record", "list", &group, "--type", "not-a-guid"]);
    fails_with(out, "(E_INVALIDARG, 0x80070057)\nhint: ");
    let out = peergroup(
        &a,
        &[
            "group",
            "show",
            "0000000000000000000000000000000000000000.x",
        ],
    );
    fails_with(out, "(PEER_E_NOT_FOUND, 0x80070490)\nhint: ");

    // invite --json: the invitation, which Bob joins with (offline).
    let bob_xml = json(&ok(peergroup(&b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    let xml_file = tmp.path().join("bob.xml");
    std::fs::write(&xml_file, bob_xml).unwrap();
    let invited = json(&ok(peergroup(
        &a,
        &[
            "--json",
            "invite",
            &group,
            "--identity-xml",
            path_str(&xml_file),
        ],
    )));
    let invitation = invited["invitation"]
        .as_str()
        .expect("an invitation string");
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, invitation).unwrap();
    let joined = json(&ok(peergroup(&b, &["--json", "join", path_str(&inv_file)])));
    assert_eq!(joined["group_peer_name"], group.as_str());

    // -v: logs on standard error (plain text off a terminal), the data alone on standard
    // output.
    let out = peergroup(
        &a,
        &["-v", "--json", "group", "create", "--classifier", "logged"],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(json(&ok(out))["group_peer_name"].is_string());
    assert!(err.contains(" INFO "), "info logs with -v: {err:?}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes off a terminal: {err:?}"
    );

    // Standard error is a pipe here: the status lines come, the spinner does not.
    let out = peergroup(&a, &["--json", "connect", &group, "--seconds", "1"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = json_lines(&ok(out));
    assert!(
        lines.iter().any(|l| l["status"].as_u64().is_some()),
        "status lines: {lines:?}"
    );
    assert!(!err.contains("synchronising"), "no progress drawn: {err:?}");
}

/// `join --connect`: Bob joins and goes online in one process; it prints the group's
/// properties, then status lines up to LISTENING|HAS_CONNECTIONS with Alice, and exits 0 at
/// end of input.
#[test]
fn join_with_connect_joins_and_goes_online() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let listen = format!("127.0.0.1:{}", free_udp_port());
    ok(peergroup(
        &a,
        &["identity", "create", "--classifier", "alice"],
    ));
    let group = create_group(&a);
    let bob_xml = json(&ok(peergroup(&b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    let xml_file = tmp.path().join("bob.xml");
    std::fs::write(&xml_file, bob_xml).unwrap();
    let invitation = ok(peergroup_on(
        &a,
        &listen,
        &["invite", &group, "--identity-xml", path_str(&xml_file)],
    ));
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, invitation).unwrap();

    let bound = Duration::from_secs(20);
    let alice = Background::spawn(&a, &listen, &["--json", "connect", &group]);
    let bob = Background::spawn(
        &b,
        ANY_PORT,
        &["--json", "join", path_str(&inv_file), "--connect"],
    );
    let props = bob.wait_for(bound, |v| v.get("group_peer_name").is_some());
    assert_eq!(
        props.expect("the group's properties")["group_peer_name"],
        group.as_str()
    );
    assert!(
        bob.wait_for(bound, |v| v["status"] == 3).is_some(),
        "Bob reaches LISTENING|HAS_CONNECTIONS"
    );
    assert!(
        alice.wait_for(bound, |v| v["status"] == 3).is_some(),
        "Alice reaches LISTENING|HAS_CONNECTIONS"
    );
    assert!(bob.finish(), "join --connect exits 0 at end of input");
    assert!(alice.finish(), "connect exits 0 at end of input");
}

/// A group password from a file (never on the command line), and `--ask-password` with no
/// terminal refused before anything is created.
#[test]
fn a_group_password_comes_from_a_file_or_the_terminal_never_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("a");
    ok(peergroup(
        &home,
        &["identity", "create", "--classifier", "me"],
    ));
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "open sesame\nignored\n").unwrap();
    let created = password_group(&home, &pw);
    assert_eq!(created["password_enabled"], true, "{created}");
    // Standard input is no terminal here: nothing to ask on, and no group made.
    fails_with(
        peergroup(
            &home,
            &["group", "create", "--classifier", "other", "--ask-password"],
        ),
        "needs a terminal",
    );
    let listed = json(&ok(peergroup(&home, &["--json", "group", "list"])));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

/// A member joining again with a password invitation is told it is one already and that
/// the password (here a wrong one) was not checked; its membership is as it was.
#[test]
fn a_rejoin_with_a_password_says_nothing_was_checked_or_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    identity(&a);
    identity(&b);
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "open sesame\n").unwrap();
    let created = password_group(&a, &pw);
    let group = created["group_peer_name"].as_str().unwrap().to_owned();
    let xml_file = tmp.path().join("bob.xml");
    identity_xml_to(&b, &xml_file);
    let inv = ok(peergroup(
        &a,
        &["invite", &group, "--identity-xml", path_str(&xml_file)],
    ));
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, inv).unwrap();
    ok(peergroup(&b, &["join", path_str(&inv_file)]));
    let before = ok(peergroup(&b, &["--json", "group", "list"]));

    let pinv = ok(peergroup(&a, &["invite", &group, "--password"]));
    let pinv_file = tmp.path().join("pinv.xml");
    std::fs::write(&pinv_file, pinv).unwrap();
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let out = peergroup(
        &b,
        &[
            "join",
            path_str(&pinv_file),
            "--password-file",
            path_str(&wrong),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("already a member"), "{err}");
    assert!(err.contains("password was not checked"), "{err}");
    assert_eq!(ok(peergroup(&b, &["--json", "group", "list"])), before);
}
