//! Members from the command line: `members` and `group issue-credentials`, with real
//! processes, two homes and QUIC on loopback. Waits are bounded; nothing asserts on timing.

mod common;

use common::*;

use std::time::Duration;

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
