//! `group export-config`, `group import-config` and `status` from the command line: real
//! processes, real homes, QUIC on loopback.

mod common;

use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

#[test]
fn a_configuration_moves_to_another_home() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let alice = json(&ok(peergroup(
        &a,
        &["--json", "identity", "create", "--classifier", "alice"],
    )))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = json(&ok(peergroup(
        &a,
        &[
            "--json",
            "--as",
            &alice,
            "group",
            "create",
            "--classifier",
            "club",
            "--name",
            "Club",
        ],
    )))["group_peer_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "moving day\n").unwrap();
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "another day\n").unwrap();
    let (id_file, cfg_file) = (tmp.path().join("id.xml"), tmp.path().join("cfg.xml"));
    ok(peergroup(
        &a,
        &[
            "identity",
            "export",
            &alice,
            "--password-file",
            path_str(&pw),
            "-o",
            path_str(&id_file),
        ],
    ));
    ok(peergroup(
        &a,
        &[
            "--as",
            &alice,
            "group",
            "export-config",
            &group,
            "--password-file",
            path_str(&pw),
            "-o",
            path_str(&cfg_file),
        ],
    ));
    assert!(std::fs::read_to_string(&cfg_file)
        .unwrap()
        .starts_with("<PEERGROUPCONFIG"));
    // Both exports are private files; with --json they say where they went, or carry the
    // document.
    use std::os::unix::fs::PermissionsExt as _;
    for f in [&id_file, &cfg_file] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    let id_json = tmp.path().join("id2.xml");
    let told = json(&ok(peergroup(
        &a,
        &[
            "--json",
            "identity",
            "export",
            &alice,
            "--password-file",
            path_str(&pw),
            "-o",
            path_str(&id_json),
        ],
    )));
    assert_eq!(told["file"], path_str(&id_json));
    assert_eq!(told["peer_name"], alice.as_str());
    let cfg = json(&ok(peergroup(
        &a,
        &[
            "--json",
            "--as",
            &alice,
            "group",
            "export-config",
            &group,
            "--password-file",
            path_str(&pw),
        ],
    )));
    assert_eq!(cfg["group"], group.as_str());
    assert!(cfg["config"]
        .as_str()
        .unwrap()
        .starts_with("<PEERGROUPCONFIG"));

    let import = |extra: &[&str], pw: &Path| {
        let mut args = vec![
            "--json",
            "group",
            "import-config",
            path_str(&cfg_file),
            "--password-file",
            path_str(pw),
        ];
        args.extend_from_slice(extra);
        peergroup(&b, &args)
    };
    fails_with(import(&[], &pw), "PEER_E_NOT_FOUND");
    ok(peergroup(
        &b,
        &[
            "identity",
            "import",
            path_str(&id_file),
            "--password-file",
            path_str(&pw),
        ],
    ));
    fails_with(import(&[], &wrong), "0x80070056");
    let imported = json(&ok(import(&[], &pw)));
    assert_eq!(imported["identity"], alice.as_str());
    assert_eq!(imported["group"], group.as_str());
    fails_with(import(&[], &pw), "PEER_E_ALREADY_EXISTS");
    ok(import(&["--overwrite"], &pw));
    let shown = json(&ok(peergroup(
        &b,
        &["--json", "--as", &alice, "group", "show", &group],
    )));
    assert_eq!(shown["friendly_name"], "Club");
    assert_eq!(shown["roles"][0], "Admin");

    let offline = json(&ok(peergroup(
        &b,
        &["--json", "--as", &alice, "status", &group, "--offline"],
    )));
    assert_eq!(offline["status"], 0);
    assert_eq!(offline["neighbours"].as_array().unwrap().len(), 0);
    assert_eq!(
        offline["records"], 0,
        "the owner is synchronised: an empty database"
    );
}

#[test]
fn status_reports_a_neighbour_and_listen_addresses() {
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
    let xml_file = tmp.path().join("bob.xml");
    let bob_xml = json(&ok(peergroup(&b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&xml_file, bob_xml).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let invitation = ok(command(&a, &listen)
        .args(["invite", &group, "--identity-xml", path_str(&xml_file)])
        .output()
        .unwrap());
    let inv_file = tmp.path().join("inv.xml");
    std::fs::write(&inv_file, invitation).unwrap();
    ok(peergroup(&b, &["join", path_str(&inv_file)]));

    // Alice online in her own process until her standard input closes.
    let mut alice = command(&a, &listen)
        .args(["--json", "connect", &group])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(alice.stdout.take().unwrap()).lines();
    let listening = lines.any(|l| json(&l.unwrap())["status"] == 1);
    assert!(listening, "Alice listens");

    let report = json(&ok(peergroup(
        &b,
        &["--json", "status", &group, "--wait", "30"],
    )));
    assert_eq!(report["status"], 3);
    assert_eq!(
        report["status_names"],
        serde_json::json!(["LISTENING", "HAS_CONNECTIONS"])
    );
    let neighbours = report["neighbours"].as_array().unwrap();
    assert_eq!(neighbours.len(), 1);
    assert_eq!(neighbours[0]["address"], listen.as_str());
    assert!(!report["listen"].as_array().unwrap().is_empty());
    let text = ok(peergroup(&b, &["status", &group, "--wait", "30"]));
    assert!(text.contains("LISTENING | HAS_CONNECTIONS"), "{text}");
    assert!(text.contains("neighbours: 1"), "{text}");

    drop(alice.stdin.take());
    assert!(alice.wait().unwrap().success());
}
