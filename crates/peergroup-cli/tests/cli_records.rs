//! Records, database files and events from the command line: real processes, two homes,
//! QUIC on loopback. Waits are bounded; nothing asserts on timing.

mod common;

use common::*;

use std::time::{Duration, Instant};

/// Alice watches her group; Bob, a member, adds a record from a process of its own; Alice's
/// `watch --json` prints the record events (added, then updated), and Alice's
/// `record list --json` then holds the latest version.
#[test]
fn a_record_added_by_one_member_reaches_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let group = home_with_group(&a, "alice");
    ok(peergroup(
        &b,
        &["identity", "create", "--classifier", "bob"],
    ));
    let bob_xml = json(&ok(peergroup(&b, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    let xml_file = tmp.path().join("bob.xml");
    std::fs::write(&xml_file, bob_xml).unwrap();
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

    let alice = Background::spawn(&a, &listen, &["--json", "watch", &group]);
    assert!(
        alice
            .wait_for(Duration::from_secs(20), |v| v["event"] == "status_changed"
                && v["status"].as_u64().unwrap_or(0) & 1 == 1)
            .is_some(),
        "Alice's group listens"
    );

    let added = json(&ok(peergroup(
        &b,
        &[
            "--json",
            "record",
            "add",
            &group,
            "--attr",
            "Title=string:Minutes <draft> & more",
            "--attr",
            "Pages=int:12",
            "--data",
            "hello from bob",
            "--wait",
            "20",
        ],
    )));
    let id = added["id"].as_str().unwrap().to_owned();
    let event = alice
        .wait_for(Duration::from_secs(20), |v| {
            v["event"] == "record_changed" && v["id"] == id.as_str()
        })
        .expect("Alice's watch prints the record event");
    assert_eq!(event["change"], "added");

    // Bob, the creator, updates it from another process; the new version floods too.
    let updated = json(&ok(peergroup(
        &b,
        &[
            "--json",
            "record",
            "update",
            &group,
            &id,
            "--data",
            "v2 from bob",
            "--wait",
            "20",
        ],
    )));
    assert_eq!(updated["version"], 2);
    alice
        .wait_for(Duration::from_secs(20), |v| {
            v["event"] == "record_changed" && v["id"] == id.as_str() && v["change"] == "updated"
        })
        .expect("Alice's watch prints the update");
    assert!(alice.finish(), "watch exits cleanly at end of input");

    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let listed = json_lines(&ok(peergroup(&a, &["--json", "record", "list", &group])));
        if let Some(r) = listed
            .into_iter()
            .find(|r| r["id"] == id.as_str() && r["version"] == 2)
        {
            break r;
        }
        assert!(Instant::now() < deadline, "the record reaches Alice's list");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(record["data"], "v2 from bob");
    assert_eq!(record["version"], 2);
    assert!(record["attributes"]
        .as_str()
        .unwrap()
        .contains("Minutes &lt;draft&gt; &amp; more"));
    let found = json_lines(&ok(peergroup(
        &a,
        &[
            "--json",
            "record",
            "search",
            &group,
            "--where",
            "Title=string:Minutes <draft> & more",
            "--where",
            "Pages=int:12",
        ],
    )));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id.as_str());
}

/// `watch --count N` exits by itself after N events.
#[test]
fn watch_stops_after_count_events() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let group = home_with_group(&a, "alice");
    let w = Background::spawn(
        &a,
        "127.0.0.1:0",
        &["--json", "watch", &group, "--count", "1"],
    );
    let first = w.wait_for(Duration::from_secs(20), |_| true);
    assert_eq!(first.expect("one event")["event"], "status_changed");
    assert!(w.exit(), "watch exits 0 after --count events");
}

/// Offline on one home: add, get (text and --out), update, search, delete, db export/import.
#[test]
fn records_and_database_files_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let group = home_with_group(&a, "alice");
    let id = ok(peergroup(
        &a,
        &[
            "record",
            "add",
            &group,
            "--offline",
            "--attr",
            "Title=string:a*b",
            "--data",
            "first",
            "--expires",
            "2h",
        ],
    ))
    .trim()
    .to_owned();
    assert!(id.starts_with('{') && id.ends_with('}'), "{id}");
    let got = json(&ok(peergroup(
        &a,
        &["--json", "record", "get", &group, &id],
    )));
    assert_eq!(got["data"], "first");
    assert_eq!(got["type"], "{8B5C2E1A-6F3D-4C7E-9A41-6E6F74657321}");
    let out = tmp.path().join("data.bin");
    ok(peergroup(
        &a,
        &["record", "get", &group, &id, "--out", out.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), b"first");

    let updated = json(&ok(peergroup(
        &a,
        &[
            "--json",
            "record",
            "update",
            &group,
            &id,
            "--offline",
            "--data",
            "second",
        ],
    )));
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["data"], "second");
    // A --where string is literal: "a*b" matches itself, not "aXb".
    let hits = json_lines(&ok(peergroup(
        &a,
        &[
            "--json",
            "record",
            "search",
            &group,
            "--where",
            "Title=string:a*b",
        ],
    )));
    assert_eq!(hits.len(), 1);
    let none = ok(peergroup(
        &a,
        &[
            "--json",
            "record",
            "search",
            &group,
            "--where",
            "Title=string:a",
        ],
    ));
    assert!(none.trim().is_empty());

    let file = tmp.path().join("db.bin");
    let exported = json(&ok(peergroup(
        &a,
        &["--json", "db", "export", &group, file.to_str().unwrap()],
    )));
    assert_eq!(exported["exported"], 1);
    let imported = json(&ok(peergroup(
        &a,
        &["--json", "db", "import", &group, file.to_str().unwrap()],
    )));
    assert_eq!(imported["imported"], 0, "nothing newer in the file");

    ok(peergroup(
        &a,
        &["record", "delete", &group, &id, "--offline"],
    ));
    fails_with(
        peergroup(&a, &["record", "get", &group, &id]),
        "PEER_E_RECORD_NOT_FOUND",
    );
    assert!(ok(peergroup(&a, &["--json", "record", "list", &group]))
        .trim()
        .is_empty());
}

/// Bad input exits non-zero with a message naming the error.
#[test]
fn bad_input_is_refused_with_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let group = home_with_group(&a, "alice");
    fails_with(
        peergroup(
            &a,
            &[
                "record",
                "list",
                "0000000000000000000000000000000000000000.nothere",
            ],
        ),
        "PEER_E_NOT_FOUND",
    );
    fails_with(
        peergroup(
            &a,
            &["record", "add", &group, "--offline", "--type", "not-a-guid"],
        ),
        "bad GUID",
    );
    fails_with(
        peergroup(&a, &["record", "get", &group, "{1234}"]),
        "bad GUID",
    );
    fails_with(
        peergroup(
            &a,
            &["record", "add", &group, "--offline", "--attr", "Title"],
        ),
        "bad --attr",
    );
    fails_with(
        peergroup(
            &a,
            &[
                "record",
                "add",
                &group,
                "--offline",
                "--attr",
                "Title=float:1",
            ],
        ),
        "bad --attr",
    );
    fails_with(
        peergroup(
            &a,
            &[
                "record",
                "add",
                &group,
                "--offline",
                "--attr",
                "Pages=int:many",
            ],
        ),
        "PEER_E_INVALID_ATTRIBUTES",
    );
    fails_with(
        peergroup(
            &a,
            &["record", "add", &group, "--offline", "--expires", "soon"],
        ),
        "bad duration",
    );
    let garbage = tmp.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database").unwrap();
    fails_with(
        peergroup(&a, &["db", "import", &group, garbage.to_str().unwrap()]),
        "PEER_E_INVALID_DATABASE",
    );
    fails_with(
        peergroup(&a, &["watch", &group, "--kind", "weather"]),
        "unknown event kind",
    );
}
