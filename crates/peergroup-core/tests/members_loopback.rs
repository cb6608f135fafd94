//! Members over real QUIC on loopback: presence and member data published by each member,
//! `members` with its flags and identity, MEMBER_CHANGED events, promotion by
//! `issue_credentials`, and groups with presence disabled.

use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult;
use peergroup_core::identity::PeerName;
use peergroup_core::members::{
    CredentialSpec, Member, MemberChange, PEER_GROUP_STORE_CREDENTIALS, PEER_MEMBER_PRESENT,
};
use peergroup_core::properties::{GroupProperties, PEER_DISABLE_PRESENCE};
use peergroup_core::{
    Event, EventFilter, EventItem, EventKind, EventSubscription, GroupHandle, Peergroup,
};

mod common;

use common::{invite, member, online, until, WAIT};

/// Reads member events until one is `(change, identity)`; returns it.
async fn member_event(sub: &mut EventSubscription, change: MemberChange, who: &PeerName) {
    let want = Event::MemberChanged {
        change,
        identity: who.to_string(),
    };
    loop {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(EventItem::Event(e))) if e == want => return,
            Ok(Some(EventItem::Event(Event::MemberChanged { .. }))) => {}
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}

fn create_offline(h: &common::Member, flags: u32) -> GroupHandle {
    h.pg.create_group(GroupProperties {
        flags,
        ..common::club(&h.id)
    })
    .unwrap()
}

async fn create(h: &common::Member, flags: u32) -> GroupHandle {
    online(create_offline(h, flags)).await
}

async fn join(admin: &GroupHandle, h: &common::Member) -> GroupHandle {
    online(invite(admin, h)).await
}

fn present(g: &GroupHandle) -> Vec<Member> {
    g.members(PEER_MEMBER_PRESENT, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_publish_presence_and_see_each_other_come_and_go() {
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    let a = create_offline(&alice, 0);
    let mut events = a
        .subscribe(EventFilter::kinds(&[EventKind::MemberChanged]))
        .unwrap();
    let a = online(a).await;
    member_event(&mut events, MemberChange::Joined, &alice.id).await;
    member_event(&mut events, MemberChange::Connected, &alice.id).await;

    let b = join(&a, &bob).await;
    let c = join(&a, &carol).await;
    member_event(&mut events, MemberChange::Joined, &bob.id).await;
    for g in [&a, &b, &c] {
        until("three members present everywhere", || present(g).len() == 3).await;
    }

    // The local member comes first; each present member has its node's addresses.
    let list = a.members(0, None).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].identity, alice.id.to_string());
    let bobs = b.members(0, None).unwrap();
    assert_eq!(bobs[0].identity, bob.id.to_string());
    let seen_bob = a.members(0, Some(&bob.id)).unwrap();
    assert_eq!(seen_bob.len(), 1);
    assert_eq!(seen_bob[0].addresses, b.listen_addrs().unwrap());
    assert!(seen_bob[0].is_present() && seen_bob[0].node_id != 0);
    let cred = &seen_bob[0].credential;
    assert_eq!(cred.friendly_name, "bob");
    assert_eq!(cred.roles, vec![Role::Member]);
    assert_eq!(cred.issuer_peer_name, alice.id.to_string());
    assert_eq!(cred.issuer_friendly_name, "alice");
    assert!(cred.not_before < cred.not_after);
    assert_eq!(
        list[0].credential.roles,
        vec![Role::Admin],
        "the creator is the administrator"
    );

    // Bob closes cleanly: his presence is deleted; he stays a known member, not present.
    b.close().await.unwrap();
    member_event(&mut events, MemberChange::Disconnected, &bob.id).await;
    until("Bob no longer present", || present(&a).len() == 2).await;
    let all = a.members(0, None).unwrap();
    assert_eq!(all.len(), 3);
    let bob_now = a.members(0, Some(&bob.id)).unwrap();
    assert!(!bob_now[0].is_present() && bob_now[0].addresses.is_empty());
    let err = a.members(PEER_MEMBER_PRESENT, Some(&bob.id)).unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_IDENTITY_NOT_FOUND);

    // An unknown member and unknown flags are errors.
    let stranger = member("stranger");
    let err = a.members(0, Some(&stranger.id)).unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_IDENTITY_NOT_FOUND);
    assert_eq!(
        a.members(0x10, None).unwrap_err().hresult(),
        hresult::E_INVALIDARG
    );

    // The reserved records are not the application's: not listed, not counted.
    assert!(a.enum_records(None).unwrap().is_empty());
    assert_eq!(a.record_count().unwrap(), 0);

    c.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_promoted_by_issue_credentials_can_set_properties() {
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    let a = create(&alice, 0).await;
    let b = join(&a, &bob).await;
    let c = join(&a, &carol).await;
    until("Alice knows Carol's member data", || {
        a.members(0, Some(&carol.id)).is_ok()
    })
    .await;

    // Neither Carol nor Bob may set properties or issue credentials.
    let mut update = c.properties().unwrap();
    update.comment = "carol was here".into();
    assert_eq!(
        c.set_properties(&update).unwrap_err().hresult(),
        hresult::PEER_E_NOT_AUTHORIZED
    );
    assert_eq!(
        b.issue_credentials(&carol.id, None, PEER_GROUP_STORE_CREDENTIALS)
            .unwrap_err()
            .hresult(),
        hresult::PEER_E_NOT_AUTHORIZED
    );

    // Bad input changes nothing: unknown flags, an unknown subject with no info, a key that
    // is not the subject's.
    // What credentials may change: Carol's certificate (her presence may still arrive meanwhile).
    let credentials = |g: &GroupHandle| {
        g.members(0, Some(&carol.id))
            .unwrap()
            .into_iter()
            .map(|m| (m.identity, m.credential))
            .collect::<Vec<_>>()
    };
    let before = a.members(0, Some(&carol.id)).unwrap();
    let before_credentials = credentials(&a);
    assert_eq!(
        a.issue_credentials(&carol.id, None, 0x8)
            .unwrap_err()
            .hresult(),
        hresult::E_INVALIDARG
    );
    let stranger = member("stranger");
    assert_eq!(
        a.issue_credentials(&stranger.id, None, PEER_GROUP_STORE_CREDENTIALS)
            .unwrap_err()
            .hresult(),
        hresult::PEER_E_IDENTITY_NOT_FOUND
    );
    let wrong_key = CredentialSpec {
        friendly_name: "carol".into(),
        public_key_der: before[0].credential.public_key_der.clone(),
        roles: vec![Role::Admin],
        not_after: None,
    };
    assert!(a
        .issue_credentials(&bob.id, Some(&wrong_key), PEER_GROUP_STORE_CREDENTIALS)
        .is_err());
    assert_eq!(credentials(&a), before_credentials);

    // Flags 0: the credentials come back as an invitation, nothing is published.
    let xml = a
        .issue_credentials(
            &carol.id,
            Some(&CredentialSpec {
                roles: vec![Role::InvitingMember],
                ..wrong_key.clone()
            }),
            0,
        )
        .unwrap();
    let inv = Peergroup::parse_invitation(&xml).unwrap();
    assert_eq!(inv.roles, vec![Role::InvitingMember]);
    assert_eq!(credentials(&a), before_credentials);

    // Promotion: stored, Carol adopts it, and from then on she administers the group.
    let mut props_events = b
        .subscribe(EventFilter::kinds(&[EventKind::PropertyChanged]))
        .unwrap();
    a.issue_credentials(
        &carol.id,
        Some(&CredentialSpec {
            roles: vec![Role::Admin],
            ..wrong_key
        }),
        PEER_GROUP_STORE_CREDENTIALS,
    )
    .unwrap();
    until("Carol holds the administrator role", || {
        c.roles().unwrap().contains(&Role::Admin)
    })
    .await;
    c.set_properties(&update).unwrap();
    match tokio::time::timeout(WAIT, props_events.next()).await {
        Ok(Some(EventItem::Event(Event::PropertyChanged))) => {}
        other => panic!("expected Bob to see the change, got {other:?}"),
    }
    until("Bob has Carol's comment", || {
        b.properties().unwrap().comment == "carol was here"
    })
    .await;
    until("Bob sees Carol as an administrator", || {
        b.members(0, Some(&carol.id))
            .is_ok_and(|m| m[0].credential.roles == vec![Role::Admin])
    })
    .await;

    // As an administrator Carol grants the administrator role to a newcomer, who connects
    // through her (she now presents her new chain).
    let dave = member("dave");
    let invitation = c
        .create_invitation(&dave.public_xml(), None, &[Role::Admin])
        .unwrap();
    let d = online(dave.pg.join(Some(&dave.id), &invitation).unwrap()).await;
    assert_eq!(d.roles().unwrap(), vec![Role::Admin]);
    until("Dave knows four members", || {
        d.members(0, None).is_ok_and(|m| m.len() == 4)
    })
    .await;
    d.close().await.unwrap();

    // The adopted credentials are Carol's from now on: reopened, she is still an administrator.
    let group = c.group_name().clone();
    c.close().await.unwrap();
    let again = carol.pg.open_group(Some(&carol.id), &group).unwrap();
    assert!(again.roles().unwrap().contains(&Role::Admin));
    again.close().await.unwrap();

    for g in [b, a] {
        g.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_presence_disabled_members_are_known_but_never_present() {
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    let a = create(&alice, PEER_DISABLE_PRESENCE).await;
    let b = join(&a, &bob).await;
    let c = join(&a, &carol).await;
    for g in [&a, &b, &c] {
        until("three members known everywhere", || {
            g.members(0, None).unwrap().len() == 3
        })
        .await;
    }
    for g in [&a, &b, &c] {
        until("nobody present", || present(g).is_empty()).await;
        assert!(g.members(0, None).unwrap().iter().all(|m| !m.is_present()));
    }
    for g in [c, b, a] {
        g.close().await.unwrap();
    }
}
