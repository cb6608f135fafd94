//! Peer time conversions: refused before the first synchronisation, the identity after.

use std::net::SocketAddr;
use std::time::Duration;

use peergroup_core::identity::hresult::*;
use peergroup_core::identity::IdentityStore;
use peergroup_core::machine::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::Peergroup;

const WAIT: Duration = Duration::from_secs(20);

fn instance() -> (tempfile::TempDir, Peergroup) {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(dir.path()).unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (dir, Peergroup::new(store, Some(listen)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_time_needs_one_synchronisation() {
    let ((_a, a), (_b, b)) = (instance(), instance());
    let alice = a.identities().create(Some("alice"), None, None).unwrap();
    let bob = b.identities().create(Some("bob"), None, None).unwrap();
    let group = a
        .create_group(GroupProperties {
            classifier: "club".into(),
            creator_peer_name: alice.to_string(),
            ..Default::default()
        })
        .unwrap();
    let t = 1_700_000_000_123;
    assert_eq!(
        group.peer_time_to_universal(t).unwrap(),
        t,
        "the creator is in sync"
    );
    assert_eq!(group.universal_to_peer_time(t).unwrap(), t);
    group.connect().await.unwrap();
    group.wait_status(STATUS_LISTENING, WAIT).await.unwrap();

    let xml = b.identities().public_xml(&bob).unwrap();
    let joined = b
        .join(
            Some(&bob),
            &group.create_invitation(&xml, None, &[]).unwrap(),
        )
        .unwrap();
    let code = |r: peergroup_core::Result<i64>| r.unwrap_err().hresult();
    assert_eq!(
        code(joined.peer_time_to_universal(t)),
        PEER_E_GROUP_NOT_READY
    );
    assert_eq!(
        code(joined.universal_to_peer_time(t)),
        PEER_E_GROUP_NOT_READY
    );
    joined.connect().await.unwrap();
    let both = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
    assert_eq!(joined.wait_status(both, WAIT).await.unwrap(), both);
    let deadline = std::time::Instant::now() + WAIT;
    while joined.peer_time_to_universal(t).is_err() {
        assert!(std::time::Instant::now() < deadline, "never synchronised");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(joined.universal_to_peer_time(-5).unwrap(), -5);
    joined.close().await.unwrap();
    group.close().await.unwrap();
}
