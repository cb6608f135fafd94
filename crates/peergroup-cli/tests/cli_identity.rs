//! The `peergroup` command as a user runs it: real processes, real homes on disk.

mod common;

use common::*;

use std::process::Command;

use peergroup_core::identity::IdentityStore;

#[test]
fn identity_lifecycle_across_two_homes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let created: serde_json::Value = serde_json::from_str(&ok(peergroup(
        &a,
        &[
            "--json",
            "identity",
            "create",
            "--classifier",
            "cli",
            "--name",
            "Cli User",
        ],
    )))
    .unwrap();
    let name = created["peer_name"].as_str().unwrap().to_owned();
    assert!(name.ends_with(".cli") && name.len() == 44);

    let list: serde_json::Value =
        serde_json::from_str(&ok(peergroup(&a, &["--json", "identity", "list"]))).unwrap();
    assert_eq!(list[0]["peer_name"], name.as_str());
    assert_eq!(list[0]["friendly_name"], "Cli User");

    ok(peergroup(&a, &["identity", "rename", &name, "Renamed"]));
    let shown: serde_json::Value =
        serde_json::from_str(&ok(peergroup(&a, &["--json", "identity", "show", &name]))).unwrap();
    assert_eq!(shown["friendly_name"], "Renamed");
    assert!(shown["xml"]
        .as_str()
        .unwrap()
        .starts_with("<PEERIDENTITYINFO"));

    let export = tmp.path().join("id.xml");
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, "hunter2\n").unwrap();
    ok(peergroup(
        &a,
        &[
            "identity",
            "export",
            &name,
            "--password-file",
            pwfile.to_str().unwrap(),
            "-o",
            export.to_str().unwrap(),
        ],
    ));

    let export_s = export.to_str().unwrap();
    fails_with(
        peergroup(&b, &["identity", "import", export_s, "--password", "nope"]),
        "HRESULT_INVALID_PASSWORD, 0x80070056",
    );
    let garbage = tmp.path().join("garbage.xml");
    std::fs::write(&garbage, "not an export").unwrap();
    fails_with(
        peergroup(
            &b,
            &[
                "identity",
                "import",
                garbage.to_str().unwrap(),
                "--password",
                "hunter2",
            ],
        ),
        "E_INVALIDARG",
    );
    fails_with(
        peergroup(&b, &["identity", "import", export_s]),
        "a password is needed",
    );
    assert!(ok(peergroup(&b, &["identity", "list"])).contains("no identities"));

    let imported = ok(peergroup(
        &b,
        &["identity", "import", export_s, "--password", "hunter2"],
    ));
    assert!(imported.starts_with(&name) && imported.contains("Renamed"));

    ok(peergroup(&a, &["identity", "delete", &name]));
    fails_with(
        peergroup(&a, &["identity", "show", &name]),
        "PEER_E_NOT_FOUND",
    );
    fails_with(
        peergroup(&a, &["identity", "delete", "no-dot"]),
        "PEER_E_INVALID_PEER_NAME",
    );
}

#[test]
fn demo_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_peergroup"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("a wrong password is refused"));
    // Three members: Bob invited, Carol joined with the group password.
    assert!(stdout.contains("Bob 0x3, Alice 0x3"), "{stdout}");
    assert!(stdout.contains("Carol 0x3"), "{stdout}");
    // A record added at Alice is seen at the two others.
    assert!(
        stdout.contains("seen at Bob (RECORD_CHANGED): version 1, data \"see you at 9\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("seen at Carol (RECORD_CHANGED): version 1, data \"see you at 9\""),
        "{stdout}"
    );
    // Search: the matching criteria find the record, the other finds none.
    assert!(
        stdout.contains("Title=string:Minutes: search found 1 record(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Pages=int:12: search found 1 record(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Pages=int:99: search found 0 record(s)"),
        "{stdout}"
    );
    // Data on a direct connection arrives, and its close is seen at the other end.
    assert!(
        stdout.contains("(INCOMING_DATA): \"hello Carol, just you\""),
        "{stdout}"
    );
    assert!(stdout.contains("Carol saw it disconnected"), "{stdout}");
    assert!(stdout.contains("UDP port released"), "{stdout}");
    assert!(stdout.contains("Done."));
}

/// A process killed at any moment while creating identities never leaves half of one: every
/// identity the store lists loads completely, key and certificate matching.
#[test]
fn kill_during_create_leaves_no_half_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let mut killed = 0;
    for i in 0..40u64 {
        let mut child = command(&home, ANY_PORT)
            .args(["identity", "create", "--classifier", &format!("c{i}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the life of the process (start-up, key generation, writes).
        std::thread::sleep(std::time::Duration::from_micros(i * 500));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    let store = IdentityStore::open(&home).unwrap();
    let listed = store.list().unwrap();
    for pair in &listed {
        let name = pair.peer_name.parse().unwrap();
        let loaded = store.load(&name).expect("every listed identity is whole");
        assert_eq!(loaded.peer_name(), &name);
    }
    let visible = std::fs::read_dir(home.join("identities"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(
        visible,
        listed.len(),
        "no unreadable identity directory is visible"
    );
    eprintln!(
        "{killed} of 40 processes killed mid-way; {} identities whole",
        listed.len()
    );
}

/// `-o NAME` with no directory writes NAME in the current directory (its directory is ".":
/// the export used to fail with "sync directory" after writing the file).
#[test]
fn an_export_to_a_bare_file_name_lands_in_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let name = identity(&home);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, "hunter2\n").unwrap();
    let out = command(&home, ANY_PORT)
        .current_dir(&work)
        .args(["identity", "export", &name, "--password-file"])
        .arg(&pwfile)
        .args(["-o", "e1.xml"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    ok(out);
    let written = std::fs::read_to_string(work.join("e1.xml")).unwrap();
    assert!(
        written.contains("PEERIDENTITY") || written.starts_with('<'),
        "{written}"
    );
    let names: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("e1.xml")],
        "no temporary left"
    );
}
