//! Record replication between real members over QUIC on loopback: three members see each
//! other's adds, updates and deletes with equal contents; the rights rule holds; a record
//! forged below the API is dropped by every member; a late joiner and a member back from
//! offline catch up; a member killed with SIGKILL mid-burst keeps what it acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use peergroup_core::group::RECORDS_FILE;
use peergroup_core::identity::hresult::*;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::records::record::Record;
use peergroup_core::records::store::RecordStore;
use peergroup_core::{GroupHandle, NewRecord, Peergroup};

mod common;

use common::{files_named, hex, member, now_ms, online, until, Member, BOTH, NOTES, WAIT};

fn note(text: &str) -> NewRecord {
    NewRecord {
        record_type: NOTES,
        attributes: format!(
            "<attributes><attribute name=\"text\" type=\"string\">{text}</attribute></attributes>"
        ),
        expires_ms: now_ms() + 3_600_000,
        data: text.as_bytes().to_vec(),
    }
}

/// What members must agree on: every live record, all fields, signature included.
fn contents(g: &GroupHandle) -> Vec<Record> {
    g.enum_records(None).unwrap()
}

async fn create(m: &Member) -> GroupHandle {
    online(common::create_club(m)).await
}

async fn join(owner: &GroupHandle, m: &Member) -> GroupHandle {
    let g = common::joined(owner, m).await;
    assert_eq!(g.wait_status(BOTH, WAIT).await.unwrap(), BOTH);
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_see_every_change_with_equal_contents() {
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    let a = create(&alice).await;
    let b = join(&a, &bob).await;
    let c = join(&a, &carol).await;
    let groups = [&a, &b, &c];

    let r1 = a.add_record(note("from alice")).unwrap();
    let r2 = b.add_record(note("from bob")).unwrap();
    let r3 = c.add_record(note("from carol")).unwrap();
    for g in groups {
        until("three records everywhere", || contents(g).len() == 3).await;
    }
    assert_eq!(contents(&a), contents(&b));
    assert_eq!(contents(&a), contents(&c));

    b.update_record(&r2, "", now_ms() + 7_200_000, b"bob again".to_vec())
        .unwrap();
    c.delete_record(&r3).unwrap();
    for g in groups {
        until("bob's update", || {
            g.get_record(&r2).is_ok_and(|r| r.version == 2)
        })
        .await;
        until("carol's delete", || {
            g.get_record(&r3).err().map(|e| e.hresult()) == Some(PEER_E_RECORD_NOT_FOUND)
        })
        .await;
    }
    assert_eq!(contents(&a), contents(&b));
    assert_eq!(contents(&a), contents(&c));
    assert_eq!(a.get_record(&r2).unwrap().data, b"bob again");
    assert_eq!(contents(&c).len(), 2);

    // Bob is neither the creator of Alice's record nor an administrator: refused, and
    // nothing changes anywhere. Alice (the creator, and an administrator) may change Bob's.
    let err = b
        .update_record(&r1, "", now_ms() + 7_200_000, b"mine now".to_vec())
        .unwrap_err();
    assert_eq!(err.hresult(), PEER_E_NOT_AUTHORIZED);
    a.update_record(
        &r2,
        "",
        now_ms() + 7_200_000,
        b"edited by the admin".to_vec(),
    )
    .unwrap();
    for g in groups {
        until("the admin's edit", || {
            g.get_record(&r2)
                .is_ok_and(|r| r.data == b"edited by the admin")
        })
        .await;
        assert_eq!(g.get_record(&r1).unwrap().data, b"from alice");
    }
    for g in [a, b, c] {
        g.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_is_dropped_and_offline_changes_reconcile() {
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    let a = create(&alice).await;
    let b = join(&a, &bob).await;
    let c = join(&a, &carol).await;
    let genuine = a.add_record(note("genuine")).unwrap();
    for g in [&b, &c] {
        until("the genuine record", || g.get_record(&genuine).is_ok()).await;
    }

    // Carol goes offline; while away she adds a record (it cannot flood), and someone
    // with access to her disk plants a forged version of Alice's record below the API.
    let group_name = c.group_name().clone();
    c.close().await.unwrap();
    let c = carol.pg.open_group(Some(&carol.id), &group_name).unwrap();
    let offline = c.add_record(note("written offline")).unwrap();
    let mut forged = c.get_record(&genuine).unwrap();
    c.close().await.unwrap();
    forged.version += 1;
    forged.data = b"forged".to_vec(); // Alice's old signature no longer matches
    let db_path = files_named(carol.home.path(), &|n| n == RECORDS_FILE)
        .pop()
        .expect("carol's record database");
    {
        let mut db = RecordStore::open(&db_path).unwrap();
        db.put(&forged).unwrap();
        db.close().unwrap();
    }

    // Back online: reconciliation brings her offline record to the others, in the same
    // exchange as the forged version, which every member refuses.
    let c = carol.pg.open_group(Some(&carol.id), &group_name).unwrap();
    c.connect().await.unwrap();
    c.wait_status(BOTH, WAIT).await.unwrap();
    for g in [&a, &b] {
        until("carol's offline record", || g.get_record(&offline).is_ok()).await;
        assert_eq!(g.get_record(&genuine).unwrap().data, b"genuine");
        assert_eq!(g.get_record(&genuine).unwrap().version, 1);
    }

    // A late joiner gets everything by reconciliation.
    let dave = member("dave");
    for i in 0..50 {
        a.add_record(note(&format!("backlog {i}"))).unwrap();
    }
    let d = join(&a, &dave).await;
    until("the backlog at the late joiner", || {
        contents(&d).len() == 52
    })
    .await;
    assert_eq!(contents(&d), contents(&a));
    for g in [a, b, c, d] {
        g.close().await.unwrap();
    }
}

const CHILD: &str = "PEERGROUP_TEST_BURST_HOME";

/// The child of `acknowledged_adds_survive_kill_9`: adds records as fast as it can and
/// prints each id once `add_record` returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_writer() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (home, group) = spec.split_once('|').unwrap();
    let store = IdentityStore::open(home).unwrap();
    let me: PeerName = store.list().unwrap().remove(0).peer_name.parse().unwrap();
    let pg = Peergroup::new(store, Some("127.0.0.1:0".parse().unwrap()));
    let group: PeerName = group.parse().unwrap();
    let g = pg.open_group(Some(&me), &group).unwrap();
    g.connect().await.unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let id = g.add_record(note(&format!("burst {i}"))).unwrap();
        writeln!(out, "ack {}", hex(&id)).unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_adds_survive_kill_9() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let alice = member("alice");
    let bob = member("bob");
    let a = create(&alice).await;
    let b = join(&a, &bob).await;
    let group = b.group_name().clone();
    b.close().await.unwrap();
    drop(bob.pg);

    // Bob's process (a child) adds a burst of records while connected to Alice.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "burst_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{}|{group}", bob.home.path().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("ack ") {
            acknowledged.push(line[at + 4..].to_owned());
            if acknowledged.len() == 200 {
                child.kill().unwrap(); // SIGKILL mid-burst
            }
        }
    }
    assert!(!child.wait().unwrap().success(), "the writer was killed");
    assert!(acknowledged.len() >= 200);

    // Restarted, Bob holds every record he acknowledged, and so does Alice once they sync.
    let store = IdentityStore::open(bob.home.path()).unwrap();
    let pg = Peergroup::new(store, common::loopback());
    let b = pg.open_group(Some(&bob.id), &group).unwrap();
    let held: std::collections::HashSet<String> = contents(&b).iter().map(|r| hex(&r.id)).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !held.contains(*id))
        .collect();
    assert!(lost.is_empty(), "{} acknowledged records lost", lost.len());
    b.connect().await.unwrap();
    b.wait_status(BOTH, WAIT).await.unwrap();
    until("alice holds bob's burst", || {
        let at_alice: std::collections::HashSet<String> =
            contents(&a).iter().map(|r| hex(&r.id)).collect();
        acknowledged.iter().all(|id| at_alice.contains(id))
    })
    .await;
    b.close().await.unwrap();
    a.close().await.unwrap();
}
