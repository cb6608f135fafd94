//! `PeerGroupExportConfig`/`PeerGroupImportConfig` over real homes and real QUIC on loopback:
//! a member's configuration moved to a second home connects there and sees the group's records.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peergroup_core::identity::export::MIN_ITERATIONS;
use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult::*;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::machine::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{GroupHandle, NewRecord, Peergroup};

const WAIT: Duration = Duration::from_secs(20);
const BOTH: u32 = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;

struct Home {
    dir: tempfile::TempDir,
    pg: Peergroup,
}

fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(dir.path()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Home {
        pg: Peergroup::new(store, Some(listen)),
        dir,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every file under `dir` with its bytes, sorted: "nothing on disk changed" is equality.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn owner_group(h: &Home, alice: &PeerName) -> GroupHandle {
    let g =
        h.pg.create_group(GroupProperties {
            classifier: "club".into(),
            friendly_name: "The Club".into(),
            creator_peer_name: alice.to_string(),
            ..Default::default()
        })
        .unwrap();
    g.connect().await.unwrap();
    g.wait_status(STATUS_LISTENING, WAIT).await.unwrap();
    g
}

fn moved_identity(from: &Home, to: &Home, who: &PeerName) {
    let xml = from
        .pg
        .identities()
        .export_with_rounds(who, "id pw", MIN_ITERATIONS)
        .unwrap();
    to.pg.identities().import(&xml, "id pw").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_configuration_connects_and_sees_the_records() {
    let (a, b, b2) = (home(), home(), home());
    let alice =
        a.pg.identities()
            .create(Some("alice"), Some("Alice"), None)
            .unwrap();
    let bob =
        b.pg.identities()
            .create(Some("bob"), Some("Bob"), None)
            .unwrap();
    let group = owner_group(&a, &alice).await;
    let id = group
        .add_record(NewRecord {
            record_type: [0x22; 16],
            attributes: String::new(),
            expires_ms: now_ms() + 3_600_000,
            data: b"hello from alice".to_vec(),
        })
        .unwrap();
    let xml = b.pg.identities().public_xml(&bob).unwrap();
    let inv = group.create_invitation(&xml, None, &[]).unwrap();
    let joined = b.pg.join(Some(&bob), &inv).unwrap();
    joined.connect().await.unwrap();
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    let config = joined
        .export_config_with_rounds("move me", MIN_ITERATIONS)
        .unwrap();
    assert!(config.starts_with("<PEERGROUPCONFIG"));
    assert!(!config.contains("hello"), "the payload is sealed");
    joined.close().await.unwrap();

    // Without the identity, the import is refused and writes nothing.
    let before = snapshot(b2.dir.path());
    let err = b2.pg.import_config(&config, "move me", false).unwrap_err();
    assert_eq!(err.hresult(), PEER_E_NOT_FOUND);
    assert_eq!(snapshot(b2.dir.path()), before);

    moved_identity(&b, &b2, &bob);
    let before = snapshot(b2.dir.path());
    let err = b2.pg.import_config(&config, "wrong", false).unwrap_err();
    assert_eq!(err.hresult() as u32, 0x8007_0056);
    assert_eq!(
        snapshot(b2.dir.path()),
        before,
        "a wrong password changes nothing"
    );
    assert!(b2.pg.identities().groups(&bob).unwrap().is_empty());

    let (who, which) = b2.pg.import_config(&config, "move me", false).unwrap();
    assert_eq!((&who, &which), (&bob, group.group_name()));
    assert!(
        !snapshot(b2.dir.path())
            .iter()
            .any(|(p, _)| p.ends_with("root.p8")),
        "a member's export carries no root key"
    );
    let before = snapshot(b2.dir.path());
    let again = b2.pg.import_config(&config, "move me", false).unwrap_err();
    assert_eq!(again.hresult(), PEER_E_ALREADY_EXISTS);
    assert_eq!(snapshot(b2.dir.path()), before);

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
    let (a, a2) = (home(), home());
    let alice =
        a.pg.identities()
            .create(Some("alice"), Some("Alice"), None)
            .unwrap();
    let group =
        a.pg.create_group(GroupProperties {
            classifier: "club".into(),
            creator_peer_name: alice.to_string(),
            ..Default::default()
        })
        .unwrap();
    let config = group.export_config_with_rounds("", MIN_ITERATIONS).unwrap();
    moved_identity(&a, &a2, &alice);
    let (who, which) = a2.pg.import_config(&config, "", false).unwrap();
    let root_keys = snapshot(a2.dir.path())
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
