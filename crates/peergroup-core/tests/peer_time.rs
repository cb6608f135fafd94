//! Peer time conversions: refused before the first synchronisation, the identity after.

use peergroup_core::identity::hresult::*;
use peergroup_core::properties::GroupProperties;

mod common;

use common::{node, online, until, BOTH, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_time_needs_one_synchronisation() {
    let (na, nb) = (node(), node());
    let (a, b) = (&na.pg, &nb.pg);
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
    let group = online(group).await;

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
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    until("the first synchronisation", || {
        joined.peer_time_to_universal(t).is_ok()
    })
    .await;
    assert_eq!(joined.universal_to_peer_time(-5).unwrap(), -5);
    joined.close().await.unwrap();
    group.close().await.unwrap();
}
