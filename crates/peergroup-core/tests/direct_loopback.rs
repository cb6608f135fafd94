//! Direct connections and application data over real QUIC on loopback
//! (`PeerGroupOpenDirectConnection`, `CloseDirectConnection`, `EnumConnections`, `SendData`).

use peergroup_core::data::MAX_DATA_LEN;
use peergroup_core::direct::{ConnectionInfo, PEER_CONNECTION_DIRECT, PEER_CONNECTION_NEIGHBOR};
use peergroup_core::events::ConnectionChange;
use peergroup_core::identity::hresult;
use peergroup_core::io::ConnectionStatus;
use peergroup_core::properties::GroupProperties;
use peergroup_core::{CoreError, Event, EventFilter, EventKind, EventSubscription, GroupHandle};

mod common;

use common::{member, next_event, Member, BOTH};

const CHAT: [u8; 16] = [0x11; 16];
const FILE: [u8; 16] = [0x22; 16];

/// Alice, Bob, and Alice's group with Bob joined: both online and neighbours.
async fn pair() -> (Member, Member, GroupHandle, GroupHandle) {
    let (alice, bob) = (member("alice"), member("bob"));
    let props = GroupProperties {
        classifier: "direct".into(),
        friendly_name: "Direct".into(),
        creator_peer_name: alice.id.to_string(),
        ..Default::default()
    };
    let (a, b) = common::pair(&alice, &bob, props).await;
    (alice, bob, a, b)
}

fn data_events() -> EventFilter {
    EventFilter::kinds(&[EventKind::DirectConnection, EventKind::IncomingData])
}

async fn next_direct(sub: &mut EventSubscription) -> ConnectionChange {
    match next_event(sub).await {
        Event::DirectConnection(c) => c,
        other => panic!("expected a direct connection event, got {other:?}"),
    }
}

async fn next_data(sub: &mut EventSubscription) -> (u64, [u8; 16], bytes::Bytes) {
    match next_event(sub).await {
        Event::IncomingData {
            connection_id,
            data_type,
            data,
        } => (connection_id, data_type, data),
        other => panic!("expected incoming data, got {other:?}"),
    }
}

fn directs(g: &GroupHandle) -> Vec<ConnectionInfo> {
    g.connections(PEER_CONNECTION_DIRECT).unwrap()
}

/// A message whose bytes depend on its sequence number, so order and content both show.
fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_connection_carries_data_in_order_and_closes_on_both_sides() {
    let (alice, bob, a, b) = pair().await;
    let mut a_events = a.subscribe(data_events()).unwrap();
    let mut b_events = b.subscribe(data_events()).unwrap();

    // Alice opens; the id she gets is the one her connected event names.
    let id = a.open_direct_connection(&bob.id, None).unwrap();
    let up = next_direct(&mut a_events).await;
    assert_eq!(up.status, ConnectionStatus::Connected);
    assert_eq!(up.connection_id, id);
    assert_ne!(up.node_id, 0);
    let b_up = next_direct(&mut b_events).await;
    assert_eq!(b_up.status, ConnectionStatus::Connected);
    let b_id = b_up.connection_id;

    // Both list it, with the other member's name; neighbours are listed apart.
    let listed = directs(&a);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].connection_id, id);
    assert_eq!(listed[0].member, bob.id.to_string());
    assert_eq!(listed[0].flags, PEER_CONNECTION_DIRECT);
    assert_eq!(directs(&b)[0].member, alice.id.to_string());
    assert_eq!(directs(&b)[0].connection_id, b_id);
    let neighbours = a.connections(PEER_CONNECTION_NEIGHBOR).unwrap();
    assert_eq!(neighbours.len(), 1);
    assert_ne!(neighbours[0].connection_id, id);
    let both = a
        .connections(PEER_CONNECTION_NEIGHBOR | PEER_CONNECTION_DIRECT)
        .unwrap();
    assert_eq!(both.len(), 2);
    for bad in [0, 4] {
        let err = a.connections(bad).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument(_)), "{err:?}");
        assert_eq!(err.hresult(), hresult::E_INVALIDARG);
    }

    // Messages of 64 KiB, one of several frames, and an empty one: whole and in order.
    let sizes = [64 * 1024, 3 * 1024 * 1024 + 7, 0, 1, 64 * 1024];
    for (seq, len) in sizes.iter().enumerate() {
        a.send_data(id, &CHAT, &message(seq as u64, *len))
            .await
            .unwrap();
    }
    for (seq, len) in sizes.iter().enumerate() {
        let (conn, ty, data) = next_data(&mut b_events).await;
        assert_eq!((conn, ty), (b_id, CHAT));
        assert_eq!(data.len(), *len);
        assert!(data[..] == message(seq as u64, *len)[..], "message {seq}");
    }
    // And the other way.
    b.send_data(b_id, &FILE, b"pong").await.unwrap();
    assert_eq!(
        next_data(&mut a_events).await,
        (id, FILE, bytes::Bytes::from_static(b"pong"))
    );

    // Too large a message is refused and nothing is sent.
    let huge = vec![0u8; MAX_DATA_LEN + 1];
    let err = a.send_data(id, &CHAT, &huge).await.unwrap_err();
    assert_eq!(err.hresult(), hresult::E_INVALIDARG);

    // Bob closes: both see it go, and sending on it is refused.
    b.close_direct_connection(b_id).unwrap();
    let down = next_direct(&mut b_events).await;
    assert_eq!(
        (down.status, down.connection_id),
        (ConnectionStatus::Disconnected, b_id)
    );
    let down = next_direct(&mut a_events).await;
    assert_eq!(
        (down.status, down.connection_id),
        (ConnectionStatus::Disconnected, id)
    );
    assert!(directs(&a).is_empty() && directs(&b).is_empty());
    let err = a.send_data(id, &CHAT, b"late").await.unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_CONNECTION_NOT_FOUND);
    let err = a.close_direct_connection(id).unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_CONNECTION_NOT_FOUND);

    // The neighbour connection still stands.
    assert_eq!(a.status().unwrap(), BOTH);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_on_a_neighbour_connection_and_type_filters() {
    let (_alice, _bob, a, b) = pair().await;
    let mut chat_only = b
        .subscribe(EventFilter::new(vec![
            peergroup_core::events::Registration {
                kind: EventKind::IncomingData,
                type_filter: Some(CHAT),
            },
        ]))
        .unwrap();
    let mut every = b.subscribe(data_events()).unwrap();
    let neighbour = a.connections(PEER_CONNECTION_NEIGHBOR).unwrap()[0].connection_id;
    let b_neighbour = b.connections(PEER_CONNECTION_NEIGHBOR).unwrap()[0].connection_id;

    a.send_data(neighbour, &FILE, b"file part").await.unwrap();
    a.send_data(neighbour, &CHAT, b"hello").await.unwrap();
    assert_eq!(
        next_data(&mut every).await,
        (b_neighbour, FILE, bytes::Bytes::from_static(b"file part"))
    );
    assert_eq!(
        next_data(&mut every).await,
        (b_neighbour, CHAT, bytes::Bytes::from_static(b"hello"))
    );
    // The filtered subscription saw the chat message only.
    assert_eq!(
        next_data(&mut chat_only).await,
        (b_neighbour, CHAT, bytes::Bytes::from_static(b"hello"))
    );
    assert!(chat_only.try_next().is_none());

    // Ids that are no connection of the group.
    let err = a
        .send_data(neighbour + 1000, &CHAT, b"x")
        .await
        .unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_CONNECTION_NOT_FOUND);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_reported_as_events() {
    let carol = member("carol");
    let (alice, bob, a, b) = pair().await;
    let mut a_events = a.subscribe(data_events()).unwrap();

    // Oneself: refused at once.
    let err = a.open_direct_connection(&alice.id, None).unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_CONNECT_SELF);
    // A member nobody has seen: no address.
    let err = a.open_direct_connection(&carol.id, None).unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_NODE_NOT_FOUND);

    // Bob's address, asking for Carol: the member that answers is not the one asked for.
    let bob_addr = a.connections(PEER_CONNECTION_NEIGHBOR).unwrap()[0].address;
    let id = a.open_direct_connection(&carol.id, Some(bob_addr)).unwrap();
    let failed = next_direct(&mut a_events).await;
    assert_eq!(failed.status, ConnectionStatus::Failed);
    assert_eq!(failed.connection_id, id);
    assert_eq!(
        failed.failed_reason,
        hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED
    );

    // Nobody at the address: the call succeeds, the event reports the failure.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let nobody = silent.local_addr().unwrap();
    drop(silent);
    let id = a.open_direct_connection(&bob.id, Some(nobody)).unwrap();
    let failed = next_direct(&mut a_events).await;
    assert_eq!(
        (failed.status, failed.connection_id),
        (ConnectionStatus::Failed, id)
    );
    assert_ne!(failed.failed_reason, 0);
    assert!(directs(&a).is_empty());
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_group_closes_its_direct_connections() {
    let (_alice, bob, a, b) = pair().await;
    let mut b_events = b.subscribe(data_events()).unwrap();
    let id = a.open_direct_connection(&bob.id, None).unwrap();
    let up = next_direct(&mut b_events).await;
    assert_eq!(up.status, ConnectionStatus::Connected);
    a.close().await.unwrap();
    let down = next_direct(&mut b_events).await;
    assert_eq!(
        (down.status, down.connection_id),
        (ConnectionStatus::Disconnected, up.connection_id)
    );
    assert!(directs(&b).is_empty());
    let _ = id;
    b.close().await.unwrap();
}

/// Bytes the big transfer sends: 1 GiB as the issue asks, unless
/// `PEERGROUP_DIRECT_TEST_BYTES` says otherwise.
fn transfer_bytes() -> u64 {
    std::env::var("PEERGROUP_DIRECT_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_arrives_intact_and_in_order() {
    const MSG: usize = 64 * 1024;
    let (_alice, bob, a, b) = pair().await;
    let mut a_events = a.subscribe(data_events()).unwrap();
    let mut b_events = b.subscribe(data_events()).unwrap();
    let id = a.open_direct_connection(&bob.id, None).unwrap();
    assert_eq!(
        next_direct(&mut a_events).await.status,
        ConnectionStatus::Connected
    );
    let b_id = next_direct(&mut b_events).await.connection_id;

    let total = transfer_bytes();
    let count = total.div_ceil(MSG as u64);
    let sender = tokio::spawn(async move {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; MSG];
        for seq in 0..count {
            let len = (total - seq * MSG as u64).min(MSG as u64) as usize;
            // Each message: its sequence number, then a fill that depends on it.
            buf[..len].fill(seq as u8 ^ 0x5A);
            buf[..8.min(len)].copy_from_slice(&seq.to_be_bytes()[..8.min(len)]);
            digest.update(&buf[..len]);
            a.send_data(id, &FILE, &buf[..len]).await.unwrap();
        }
        (a, digest.finish())
    });
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut received = 0u64;
    for seq in 0..count {
        let (conn, ty, data) = next_data(&mut b_events).await;
        assert_eq!((conn, ty), (b_id, FILE));
        assert!(data.len() >= 8);
        assert_eq!(data[..8], seq.to_be_bytes(), "message {seq} out of order");
        assert!(
            data[8..].iter().all(|&x| x == seq as u8 ^ 0x5A),
            "message {seq} damaged"
        );
        digest.update(&data);
        received += data.len() as u64;
    }
    let (a, sent) = sender.await.unwrap();
    assert_eq!(received, total);
    assert_eq!(digest.finish().as_ref(), sent.as_ref());
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A member whose presence arrived can be asked for at once: the check reads the presence
/// records as stored, not only the peers kept every few seconds (in the NAT lab a joiner got
/// `PEER_E_NODE_NOT_FOUND` for seconds; here Carol may already be a neighbour as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_presence_arrived_can_be_asked_for_at_once() {
    let (_alice, _bob, a, b) = pair().await;
    let carol = member("carol");
    let c = common::joined(&a, &carol).await;
    let carol_name = carol.id.to_string();
    common::until("Alice holds Carol's presence", || {
        a.members(peergroup_core::members::PEER_MEMBER_PRESENT, None)
            .unwrap()
            .iter()
            .any(|m| m.identity == carol_name && !m.addresses.is_empty())
    })
    .await;
    let mut a_events = a.subscribe(data_events()).unwrap();
    let id = a
        .open_direct_connection(&carol.id, None)
        .expect("Carol is known from her presence");
    let up = next_direct(&mut a_events).await;
    assert_eq!(up.connection_id, id);
    assert_eq!(up.status, ConnectionStatus::Connected);
    for g in [a, b, c] {
        g.close().await.unwrap();
    }
}
