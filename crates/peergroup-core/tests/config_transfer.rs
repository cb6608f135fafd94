//! `PeerGroupExportConfig`/`PeerGroupImportConfig` over real homes and real QUIC on loopback:
//! a member's configuration moved to a second home connects there and sees the group's records.

use std::path::Path;

use peergroup_core::identity::export::MIN_ITERATIONS;
use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult::*;
use peergroup_core::identity::PeerName;
use peergroup_core::properties::GroupProperties;
use peergroup_core::{NewRecord, Peergroup};

mod common;

use common::{create_club, files_named, member_as, node, now_ms, online, until, Node, BOTH, WAIT};

/// Every file under `dir` with its bytes, sorted: "nothing on disk changed" is equality.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = files_named(dir, &|_| true)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn moved_identity(from: &Peergroup, to: &Node, who: &PeerName) {
    let xml = from
        .identities()
        .export_with_rounds(who, "id pw", MIN_ITERATIONS)
        .unwrap();
    to.pg.identities().import(&xml, "id pw").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_configuration_connects_and_sees_the_records() {
    let (a, b, b2) = (member_as("alice", "Alice"), member_as("bob", "Bob"), node());
    let bob = b.id.clone();
    let group = online(create_club(&a)).await;
    let id = group
        .add_record(NewRecord {
            record_type: [0x22; 16],
            attributes: String::new(),
            expires_ms: now_ms() + 3_600_000,
            data: b"hello from alice".to_vec(),
        })
        .unwrap();
    let joined = common::joined(&group, &b).await;
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    let config = joined
        .export_config_with_rounds("move me", MIN_ITERATIONS)
        .unwrap();
    assert!(config.starts_with("<PEERGROUPCONFIG"));
    assert!(!config.contains("hello"), "the payload is sealed");
    joined.close().await.unwrap();

    // Without the identity, the import is refused and writes nothing.
    let before = snapshot(b2.home.path());
    let err = b2.pg.import_config(&config, "move me", false).unwrap_err();
    assert_eq!(err.hresult(), PEER_E_NOT_FOUND);
    assert_eq!(snapshot(b2.home.path()), before);

    moved_identity(&b.pg, &b2, &bob);
    let before = snapshot(b2.home.path());
    let err = b2.pg.import_config(&config, "wrong", false).unwrap_err();
    assert_eq!(err.hresult() as u32, 0x8007_0056);
    assert_eq!(
        snapshot(b2.home.path()),
        before,
        "a wrong password changes nothing"
    );
    assert!(b2.pg.identities().groups(&bob).unwrap().is_empty());

    let (who, which) = b2.pg.import_config(&config, "move me", false).unwrap();
    assert_eq!((&who, &which), (&bob, group.group_name()));
    assert!(
        !snapshot(b2.home.path())
            .iter()
            .any(|(p, _)| p.ends_with("root.p8")),
        "a member's export carries no root key"
    );
    let before = snapshot(b2.home.path());
    let again = b2.pg.import_config(&config, "move me", false).unwrap_err();
    assert_eq!(again.hresult(), PEER_E_ALREADY_EXISTS);
    assert_eq!(snapshot(b2.home.path()), before);

    let moved = b2.pg.open_group(Some(&who), &which).unwrap();
    assert_eq!(moved.roles().unwrap(), vec![Role::Member]);
    assert_eq!(
        moved.properties().unwrap().friendly_name,
        "The Club",
        "the properties came along"
    );
    // Open: an overwrite would pull the files from under it.
    let busy = b2.pg.import_config(&config, "move me", true).unwrap_err();
    assert_eq!(busy.hresult(), PEER_E_GROUP_IN_USE);
    moved.connect().await.unwrap();
    assert_eq!(moved.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    until("Alice's record at the moved member", || {
        moved.get_record(&id).is_ok()
    })
    .await;
    assert_eq!(moved.get_record(&id).unwrap().data, b"hello from alice");
    moved.close().await.unwrap();

    // Closed, it may be overwritten.
    let (_, g) = b2.pg.import_config(&config, "move me", true).unwrap();
    assert_eq!(&g, group.group_name());
    group.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_export_carries_the_root_key() {
    let (a, a2) = (member_as("alice", "Alice"), node());
    let alice = a.id.clone();
    let group =
        a.pg.create_group(GroupProperties {
            classifier: "club".into(),
            creator_peer_name: alice.to_string(),
            ..Default::default()
        })
        .unwrap();
    let config = group.export_config_with_rounds("", MIN_ITERATIONS).unwrap();
    moved_identity(&a.pg, &a2, &alice);
    let (who, which) = a2.pg.import_config(&config, "", false).unwrap();
    let root_keys = snapshot(a2.home.path())
        .into_iter()
        .filter(|(p, _)| p.ends_with("root.p8"))
        .count();
    assert_eq!(root_keys, 1, "the owner's group root key came along");
    let moved = a2.pg.open_group(Some(&who), &which).unwrap();
    assert_eq!(moved.roles().unwrap(), vec![Role::Admin]);
    assert_eq!(moved.properties().unwrap(), group.properties().unwrap());
    moved.close().await.unwrap();
    group.close().await.unwrap();
}
