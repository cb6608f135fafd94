//! Groups over real QUIC on loopback: create, invite, join, connect, close.

use std::time::Duration;

use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult::*;
use peergroup_core::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::transport::{CloseCode, CloseReason};
use peergroup_core::{GroupHandle, Peergroup};

mod common;

use common::{joined, member, online, Member, BOTH, WAIT};

fn props(creator: &Member) -> GroupProperties {
    common::club(&creator.id)
}

/// `g`'s recent disconnects once there are any (polled 100 times, 50 ms apart).
async fn disconnects(g: &GroupHandle) -> Vec<CloseReason> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = g.recent_disconnects().unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_invite_join_connect_and_close_in_cascade() {
    let alice = member("alice");
    let bob = member("bob");
    let group = alice.pg.create_group(props(&alice)).unwrap();
    assert_eq!(group.status().unwrap(), 0, "groups start offline");
    assert_eq!(group.roles().unwrap(), vec![Role::Admin]);
    group.connect().await.unwrap();
    assert_eq!(
        group.wait_status(STATUS_LISTENING, WAIT).await.unwrap(),
        STATUS_LISTENING
    );
    let port = alice.pg.local_addr().await.unwrap().port();

    let invitation = group
        .create_invitation(&bob.public_xml(), None, &[])
        .unwrap();
    let info = Peergroup::parse_invitation(&invitation).unwrap();
    assert_eq!(&info.group_name, group.group_name());
    assert_eq!(info.roles, vec![Role::Member]);
    assert!(
        !info.addresses.is_empty(),
        "the invitation carries the issuer's addresses"
    );

    let joined = bob.pg.join(Some(&bob.id), &invitation).unwrap();
    assert_eq!(joined.status().unwrap(), 0, "join sends nothing");
    joined.connect().await.unwrap();
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    assert_eq!(group.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    assert_eq!(
        joined.properties().unwrap().group_peer_name,
        group.group_name().to_string()
    );

    // A second handle keeps the group up when the first closes.
    let second = alice
        .pg
        .open_group(Some(&alice.id), group.group_name())
        .unwrap();
    group.close().await.unwrap();
    assert_eq!(second.status().unwrap(), BOTH);
    assert_eq!(joined.status().unwrap(), BOTH);

    // The last handle closes the group: Bob sees our close code, and the port is free.
    second.close().await.unwrap();
    assert_eq!(
        joined.wait_status(STATUS_LISTENING, WAIT).await.unwrap() & STATUS_HAS_CONNECTIONS,
        0
    );
    let seen = disconnects(&joined).await;
    assert!(
        seen.iter()
            .any(|r| r.code() == Some(CloseCode::GroupClosed)),
        "Bob saw {seen:?}"
    );
    assert!(
        alice.pg.local_addr().await.is_none(),
        "no group online: node closed"
    );
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the UDP port was released");
    joined.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_documented_codes() {
    let alice = member("alice");
    let bob = member("bob");
    let eve = member("eve");
    let group = alice.pg.create_group(props(&alice)).unwrap();
    let group = online(group).await;

    let bob_xml = bob.public_xml();
    // For another identity.
    let for_bob = group.create_invitation(&bob_xml, None, &[]).unwrap();
    let e = eve.pg.join(Some(&eve.id), &for_bob).err().unwrap();
    assert_eq!(e.hresult(), PEER_E_INVITATION_NOT_TRUSTED);
    // Expired.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiring = group
        .create_invitation(&bob_xml, Some(now + 1), &[])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = bob.pg.join(Some(&bob.id), &expiring).err().unwrap();
    assert_eq!(e.hresult(), PEER_E_INVALID_TIME_PERIOD);
    // Garbage.
    assert_eq!(
        bob.pg
            .join(Some(&bob.id), "<nope/>")
            .err()
            .unwrap()
            .hresult(),
        E_INVALIDARG
    );
    // A member may not invite, nor set properties.
    let joined = bob.pg.join(Some(&bob.id), &for_bob).unwrap();
    joined.connect().await.unwrap();
    joined.wait_status(BOTH, WAIT).await.unwrap();
    let eve_xml = eve.public_xml();
    assert_eq!(
        joined
            .create_invitation(&eve_xml, None, &[])
            .err()
            .unwrap()
            .hresult(),
        PEER_E_NOT_AUTHORIZED
    );
    let mut p = joined.properties().unwrap();
    p.comment = "mine now".into();
    assert_eq!(
        joined.set_properties(&p).err().unwrap().hresult(),
        PEER_E_NOT_AUTHORIZED
    );
    // The administrator's change reaches Bob.
    let mut p = group.properties().unwrap();
    p.comment = "welcome".into();
    group.set_properties(&p).unwrap();
    let mut comment = String::new();
    for _ in 0..100 {
        comment = joined.properties().unwrap().comment;
        if comment == "welcome" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(comment, "welcome");
    joined.close().await.unwrap();
    group.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_group_gets_no_connection() {
    let alice = member("alice");
    let mallory = member("mallory");
    let group = online(alice.pg.create_group(props(&alice)).unwrap()).await;
    // Mallory runs her own group of the same classifier and dials Alice's address with it.
    let other = mallory.pg.create_group(props(&mallory)).unwrap();
    let addrs = group.listen_addrs().unwrap();
    other.connect_by_address(&addrs).await.unwrap();
    other.wait_status(STATUS_LISTENING, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        group.status().unwrap(),
        STATUS_LISTENING,
        "Alice holds no connection"
    );
    assert_eq!(
        other.status().unwrap(),
        STATUS_LISTENING,
        "Mallory holds no connection"
    );
    other.close().await.unwrap();
    group.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_connect_and_a_group_reopens_after_restart() {
    let alice = member("alice");
    let group = online(alice.pg.create_group(props(&alice)).unwrap()).await;
    let mut others = Vec::new();
    for i in 0..4 {
        let m = member(&format!("m{i}"));
        let inv = group
            .create_invitation(&m.public_xml(), None, &[Role::Member])
            .unwrap();
        let h = m.pg.join(Some(&m.id), &inv).unwrap();
        h.connect().await.unwrap();
        others.push((m, h));
    }
    for (_, h) in &others {
        assert_eq!(h.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    }
    let name = group.group_name().clone();
    group.close().await.unwrap();
    for (_, h) in others {
        h.close().await.unwrap();
    }
    // A new library instance over the same home opens the group from disk.
    let again = Peergroup::new(
        alice.pg.identities().clone(),
        Some("127.0.0.1:0".parse().unwrap()),
    );
    let reopened = again.open_group(Some(&alice.id), &name).unwrap();
    assert_eq!(reopened.properties().unwrap().friendly_name, "The Club");
    assert_eq!(reopened.roles().unwrap(), vec![Role::Admin]);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_invalidates_every_handle_and_closes_connections() {
    let alice = member("alice");
    let bob = member("bob");
    let group = alice.pg.create_group(props(&alice)).unwrap();
    let second = alice
        .pg
        .open_group(Some(&alice.id), group.group_name())
        .unwrap();
    let group = online(group).await;
    let joined = joined(&group, &bob).await;
    joined.wait_status(BOTH, WAIT).await.unwrap();

    let name = group.group_name().clone();
    alice.pg.delete_group(Some(&alice.id), &name).await.unwrap();
    assert_eq!(
        group.status().err().unwrap().hresult(),
        PEER_E_INVALID_GROUP
    );
    assert_eq!(
        second.status().err().unwrap().hresult(),
        PEER_E_INVALID_GROUP
    );
    assert_eq!(
        second.close().await.err().unwrap().hresult(),
        PEER_E_INVALID_GROUP
    );
    assert_eq!(
        alice
            .pg
            .open_group(Some(&alice.id), &name)
            .err()
            .unwrap()
            .hresult(),
        PEER_E_NOT_FOUND
    );
    let seen = disconnects(&joined).await;
    assert!(
        seen.iter()
            .any(|r| r.code() == Some(CloseCode::GroupClosed)),
        "{seen:?}"
    );
    assert!(alice.pg.identities().groups(&alice.id).unwrap().is_empty());
    joined.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_join_with_a_pake() {
    use peergroup_core::properties::{
        PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PASSWORD_AUTHENTICATION,
    };
    let alice = member("alice");
    let bob = member("bob");
    let group = alice
        .pg
        .create_group(GroupProperties {
            authentication_schemes: PEER_GROUP_GMC_AUTHENTICATION
                | PEER_GROUP_PASSWORD_AUTHENTICATION,
            group_password: Some("correct horse".into()),
            group_password_role: Role::Member,
            ..props(&alice)
        })
        .unwrap();
    let group = online(group).await;
    let invitation = group.create_password_invitation().unwrap();
    let info = Peergroup::parse_invitation(&invitation).unwrap();
    assert!(info.subject().is_none());
    assert_eq!(info.auth_scheme(), PEER_GROUP_PASSWORD_AUTHENTICATION);
    assert_eq!(info.roles, vec![Role::Member]);
    // A GMC join of a password invitation is refused.
    assert_eq!(
        bob.pg
            .join(Some(&bob.id), &invitation)
            .err()
            .unwrap()
            .hresult(),
        E_INVALIDARG
    );

    let wrong = bob
        .pg
        .password_join(Some(&bob.id), &invitation, "battery staple")
        .await;
    assert_eq!(wrong.err().unwrap().hresult() as u32, 0x8007_0056);
    assert!(
        bob.pg.identities().groups(&bob.id).unwrap().is_empty(),
        "a refused joiner stores nothing"
    );
    assert!(
        bob.pg.local_addr().await.is_none(),
        "and holds no connection"
    );
    assert_eq!(
        group.status().unwrap(),
        STATUS_LISTENING,
        "Alice holds no connection to it either"
    );

    let (joined, already) = bob
        .pg
        .password_join(Some(&bob.id), &invitation, "correct horse")
        .await
        .unwrap();
    assert!(!already);
    assert_eq!(joined.roles().unwrap(), vec![Role::Member]);
    joined.connect().await.unwrap();
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    let (again, already) = bob
        .pg
        .password_join(Some(&bob.id), &invitation, "correct horse")
        .await
        .unwrap();
    assert!(already, "PEER_S_ALREADY_A_MEMBER");
    again.close().await.unwrap();
    joined.close().await.unwrap();
    group.close().await.unwrap();
}
