//! Group events over real QUIC on loopback: status changes, neighbour connections with their
//! ids, property changes, and the end of a subscription when its group closes.

use std::time::Duration;

use peergroup_core::events::ConnectionChange;
use peergroup_core::io::{ConnectionStatus, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{
    Event, EventFilter, EventItem, EventKind, EventSubscription, GroupHandle, Neighbour,
};

mod common;

use common::{create_club, invite, member, next_event, BOTH, WAIT};

/// Reads events until `done` holds for all read so far; returns them.
async fn collect(sub: &mut EventSubscription, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    while !done(&seen) {
        seen.push(next_event(sub).await);
    }
    seen
}

fn connected_and(status: u32) -> impl Fn(&[Event]) -> bool {
    move |seen| {
        seen.iter().any(|e| connection(e).is_some()) && seen.contains(&Event::StatusChanged(status))
    }
}

/// The neighbour list once it names one neighbour (bounded by [`WAIT`]).
async fn neighbours_once_connected(g: &GroupHandle) -> Vec<Neighbour> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = g.neighbours().unwrap();
        if n.len() == 1 || tokio::time::Instant::now() > deadline {
            assert_eq!(n.len(), 1, "{n:?}");
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn connection(e: &Event) -> Option<ConnectionChange> {
    match e {
        Event::NeighborConnection(c) => Some(*c),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_status_and_neighbour_connection_events() {
    let alice = member("alice");
    let bob = member("bob");
    let group = create_club(&alice);

    // Subscribed while offline to every kind but member changes (members_loopback.rs
    // tests those); a second subscription takes status changes only.
    let mut all = group
        .subscribe(EventFilter::kinds(&[
            EventKind::StatusChanged,
            EventKind::PropertyChanged,
            EventKind::RecordChanged,
            EventKind::NeighborConnection,
            EventKind::ConnectionFailed,
        ]))
        .unwrap();
    let mut statuses = group
        .subscribe(EventFilter::kinds(&[EventKind::StatusChanged]))
        .unwrap();
    group.connect().await.unwrap();
    assert_eq!(
        next_event(&mut all).await,
        Event::StatusChanged(STATUS_LISTENING)
    );
    assert_eq!(
        next_event(&mut statuses).await,
        Event::StatusChanged(STATUS_LISTENING)
    );

    // Bob joins and connects; both sides see the neighbour with the same ids as neighbours().
    let joined = invite(&group, &bob);
    let mut bobs = joined
        .subscribe(EventFilter::kinds(&[
            EventKind::StatusChanged,
            EventKind::NeighborConnection,
        ]))
        .unwrap();
    joined.connect().await.unwrap();

    let seen = collect(&mut all, connected_and(BOTH)).await;
    assert_eq!(seen.len(), 2, "one connection, one status change: {seen:?}");
    let up = seen.iter().find_map(connection).unwrap();
    assert_eq!(up.status, ConnectionStatus::Connected);
    assert_eq!((up.next_connection_id, up.failed_reason), (0, 0));
    assert_eq!(next_event(&mut statuses).await, Event::StatusChanged(BOTH));

    let seen = collect(&mut bobs, connected_and(BOTH)).await;
    let bob_up = seen.iter().find_map(connection).unwrap();
    assert_eq!(bob_up.status, ConnectionStatus::Connected);
    assert!(
        seen.iter().all(|e| match e {
            Event::StatusChanged(s) => s & !BOTH == 0,
            Event::NeighborConnection(c) => *c == bob_up,
            _ => false,
        }),
        "only the kinds Bob asked for, one connection: {seen:?}"
    );

    // The neighbour list is refreshed right after the events are published.
    let alices_view = neighbours_once_connected(&group).await;
    assert_eq!(alices_view[0].connection_id, up.connection_id);
    assert_eq!(alices_view[0].node_id, up.node_id);
    let bobs_view = neighbours_once_connected(&joined).await;
    assert_eq!(bobs_view[0].connection_id, bob_up.connection_id);
    assert_eq!(bobs_view[0].node_id, bob_up.node_id);
    assert_ne!(up.node_id, bob_up.node_id, "each names the other node");

    // A property change made here is an event here (the status-only subscription skips it).
    let mut update = group.properties().unwrap();
    update.comment = "changed".into();
    group.set_properties(&update).unwrap();
    assert_eq!(next_event(&mut all).await, Event::PropertyChanged);

    // Unsubscribing stops delivery: the dropped subscription is gone from the hub.
    drop(statuses);

    // Alice closes: Bob sees the neighbour go and loses HAS_CONNECTIONS; Alice's own
    // subscription gets her last events (offline: status 0), then ends.
    group.close().await.unwrap();
    let seen = collect(&mut bobs, connected_and(STATUS_LISTENING)).await;
    assert_eq!(
        seen.iter().find_map(connection),
        Some(ConnectionChange {
            status: ConnectionStatus::Disconnected,
            ..bob_up
        })
    );

    let mut last = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, all.next()).await {
            Ok(Some(EventItem::Event(e))) => last.push(e),
            Ok(None) => break,
            other => panic!("expected the subscription to end, got {other:?}"),
        }
    }
    assert!(all.is_closed());
    assert_eq!(
        last.last(),
        Some(&Event::StatusChanged(0)),
        "offline at the end: {last:?}"
    );
    joined.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_needs_a_live_handle() {
    let alice = member("alice");
    let group = alice
        .pg
        .create_group(GroupProperties {
            classifier: "club".into(),
            creator_peer_name: alice.id.to_string(),
            ..Default::default()
        })
        .unwrap();
    let name = group.group_name().clone();
    let sub = group.subscribe(EventFilter::all()).unwrap();
    group.close().await.unwrap();
    assert!(sub.is_closed(), "the group closed for good");
    assert_eq!(sub.try_next(), None);
    let again = alice.pg.open_group(Some(&alice.id), &name).unwrap();
    alice.pg.delete_group(Some(&alice.id), &name).await.unwrap();
    assert!(matches!(
        again.subscribe(EventFilter::all()),
        Err(peergroup_core::CoreError::InvalidGroup)
    ));
}
