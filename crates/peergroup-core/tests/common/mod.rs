//! Set-up shared by peergroup-core's integration tests (each test file says `mod common;`):
//! members with a home of their own listening on loopback, the club group, invitations and
//! joins, and waits that are bounded by [`WAIT`] so that a missing change fails a test
//! instead of hanging it. Each test binary uses a part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peergroup_core::direct::PEER_CONNECTION_NEIGHBOR;
use peergroup_core::identity::hresult::HRESULT;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{
    CoreError, Event, EventItem, EventSubscription, GroupHandle, NewRecord, Peergroup,
};

/// An upper bound for anything a test waits for: a missing change fails the test, not hangs it.
pub const WAIT: Duration = Duration::from_secs(30);
/// Online and connected to at least one neighbour.
pub const BOTH: u32 = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
/// The record type of the tests' notes.
pub const NOTES: [u8; 16] = [0x11; 16];
/// Attributes of a note titled "Minutes" of 12 pages.
pub const MINUTES: &str =
    "<attributes><attribute name=\"Title\" type=\"string\">Minutes</attribute>\
    <attribute name=\"Pages\" type=\"int\">12</attribute></attributes>";
/// Attributes of a note titled "Menu" of 2 pages.
pub const MENU: &str = "<attributes><attribute name=\"Title\" type=\"string\">Menu</attribute>\
    <attribute name=\"Pages\" type=\"int\">2</attribute></attributes>";

/// Any port on the IPv4 loopback: where every test instance listens.
pub fn loopback() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

/// A library instance over a fresh temporary home that holds no identity yet.
pub struct Node {
    /// The home; removed when the node is dropped.
    pub home: tempfile::TempDir,
    pub pg: Peergroup,
}

/// A [`Node`] listening on [`loopback`].
pub fn node() -> Node {
    let home = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(home.path()).unwrap();
    Node {
        pg: Peergroup::new(store, loopback()),
        home,
    }
}

/// A library instance over a fresh temporary home with one identity.
pub struct Member {
    /// The home; removed when the member is dropped.
    pub home: tempfile::TempDir,
    pub pg: Peergroup,
    pub id: PeerName,
}

impl Member {
    /// The member's identity as the XML an invitation is made for.
    pub fn public_xml(&self) -> String {
        self.pg.identities().public_xml(&self.id).unwrap()
    }
}

/// A member whose identity has `name` for classifier and friendly name, listening on
/// [`loopback`].
pub fn member(name: &str) -> Member {
    member_as(name, name)
}

/// A member whose identity has the classifier `name` and the friendly name `friendly`.
pub fn member_as(name: &str, friendly: &str) -> Member {
    let Node { home, pg } = node();
    let id = pg
        .identities()
        .create(Some(name), Some(friendly), None)
        .unwrap();
    Member { home, pg, id }
}

/// The properties of "The Club" (classifier "club") created by `creator`.
pub fn club(creator: &PeerName) -> GroupProperties {
    GroupProperties {
        classifier: "club".into(),
        friendly_name: "The Club".into(),
        creator_peer_name: creator.to_string(),
        ..Default::default()
    }
}

/// `m`'s new club, offline.
pub fn create_club(m: &Member) -> GroupHandle {
    m.pg.create_group(club(&m.id)).unwrap()
}

/// Connects `g` and waits (unchecked, bounded) until it listens: an invitation made after
/// this carries the addresses the group listens at.
pub async fn online(g: GroupHandle) -> GroupHandle {
    g.connect().await.unwrap();
    g.wait_status(STATUS_LISTENING, WAIT).await.unwrap();
    g
}

/// `m` joins `owner`'s group with an invitation made for its identity (no roles, no
/// expiry); the handle is offline.
pub fn invite(owner: &GroupHandle, m: &Member) -> GroupHandle {
    let invitation = owner.create_invitation(&m.public_xml(), None, &[]).unwrap();
    m.pg.join(Some(&m.id), &invitation).unwrap()
}

/// [`invite`], then connect (without waiting for anything).
pub async fn joined(owner: &GroupHandle, m: &Member) -> GroupHandle {
    let g = invite(owner, m);
    g.connect().await.unwrap();
    g
}

/// `alice`'s group of `props` with `bob` joined: both online, with both status bits, and
/// exactly one neighbour connection each (both may have dialed; the duplicate is gone).
pub async fn pair(
    alice: &Member,
    bob: &Member,
    props: GroupProperties,
) -> (GroupHandle, GroupHandle) {
    let group = alice.pg.create_group(props).unwrap();
    group.connect().await.unwrap();
    // The invitation carries the addresses the group listens at: wait until it does.
    assert_eq!(
        group.wait_status(STATUS_LISTENING, WAIT).await.unwrap(),
        STATUS_LISTENING
    );
    let joined = joined(&group, bob).await;
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    assert_eq!(group.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    for g in [&group, &joined] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while g.connections(PEER_CONNECTION_NEIGHBOR).unwrap().len() != 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no single neighbour"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (group, joined)
}

/// Polls `cond` every 20 ms until it holds; fails naming `what` after [`WAIT`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next event (within [`WAIT`]; a lag report or the end of the subscription fails).
pub async fn next_event(sub: &mut EventSubscription) -> Event {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(EventItem::Event(e))) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An hour from now, in milliseconds since the Unix epoch: a record's expiry.
pub fn in_an_hour() -> i64 {
    now_ms() + 3_600_000
}

/// A note with `attributes` that expires at `expires_ms` and holds "hello".
pub fn note(attributes: &str, expires_ms: i64) -> NewRecord {
    NewRecord {
        record_type: NOTES,
        attributes: attributes.into(),
        expires_ms,
        data: b"hello".to_vec(),
    }
}

/// The HRESULT of a call that must fail.
pub fn code<T: std::fmt::Debug>(r: Result<T, CoreError>) -> HRESULT {
    r.expect_err("an error").hresult()
}

/// Every file below `dir` whose name satisfies `wanted`, depth first.
pub fn files_named(dir: &Path, wanted: &impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_named(&path, wanted));
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(wanted)
        {
            found.push(path);
        }
    }
    found
}

/// A record id in lowercase hex, as a child process prints it.
pub fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
