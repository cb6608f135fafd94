//! The record calls of a group on its local database: add, update, delete, get, enumerate
//! and search, with Windows' error codes, and the database's life with the group's.
//! Every check here is about one member's own database (records_replication.rs covers
//! what other members see).

use std::time::Duration;

use peergroup_core::identity::hresult::*;
use peergroup_core::identity::IdentityStore;
use peergroup_core::{GroupHandle, NewRecord, Peergroup};

const PHOTOS: [u8; 16] = [0x22; 16];

mod common;

use common::{
    code, create_club as create, files_named, in_an_hour, invite, joined, loopback, member, now_ms,
    online, until, BOTH, MENU, MINUTES, NOTES, WAIT,
};

fn note(attributes: &str) -> NewRecord {
    common::note(attributes, in_an_hour())
}

fn search(title: &str, pages: i64) -> String {
    format!(
        "<peersearch><and>\
           <clause attrib=\"Title\" type=\"string\">{title}</clause>\
           <clause attrib=\"Pages\" type=\"int\" compare=\"greaterorequal\">{pages}</clause>\
         </and></peersearch>"
    )
}

#[tokio::test]
async fn add_get_update_delete_round_trip() {
    let alice = member("alice");
    let group = create(&alice);
    let before = now_ms();
    let id = group.add_record(note(MINUTES)).unwrap();
    let r = group.get_record(&id).unwrap();
    assert_eq!((r.id, r.record_type, r.version, r.flags), (id, NOTES, 1, 0));
    assert_eq!(r.creator, alice.id.to_string());
    assert_eq!(r.modifier, alice.id.to_string());
    assert_eq!(r.attributes, MINUTES);
    assert_eq!(r.data, b"hello");
    assert!(r.created >= before && r.created == r.modified);
    assert!(!r.security.is_empty(), "signed");

    let later = r.expires + 1000;
    group
        .update_record(&id, MENU, later, b"bye".to_vec())
        .unwrap();
    let u = group.get_record(&id).unwrap();
    assert_eq!((u.version, u.expires, u.created), (2, later, r.created));
    assert_eq!(
        (u.attributes.as_str(), u.data.as_slice()),
        (MENU, &b"bye"[..])
    );
    assert!(u.modified >= r.modified);
    // The same expiration is allowed too.
    group.update_record(&id, "", later, Vec::new()).unwrap();
    assert_eq!(group.get_record(&id).unwrap().version, 3);

    group.delete_record(&id).unwrap();
    assert_eq!(code(group.get_record(&id)), PEER_E_RECORD_NOT_FOUND);
    assert!(group.enum_records(None).unwrap().is_empty());
    assert!(group.enum_records(Some(NOTES)).unwrap().is_empty());
    let all =
        "<peersearch><clause attrib=\"peerrecordtype\" type=\"string\">*</clause></peersearch>";
    assert!(group.search_records(all).unwrap().is_empty());
    assert_eq!(code(group.delete_record(&id)), PEER_E_RECORD_NOT_FOUND);
    assert_eq!(
        code(group.update_record(&id, "", later, Vec::new())),
        PEER_E_RECORD_NOT_FOUND
    );
    group.close().await.unwrap();
}

#[tokio::test]
async fn enumerate_by_type_and_search() {
    let alice = member("alice");
    let group = create(&alice);
    let minutes = group.add_record(note(MINUTES)).unwrap();
    let menu = group.add_record(note(MENU)).unwrap();
    let photo = group
        .add_record(NewRecord {
            record_type: PHOTOS,
            ..note("")
        })
        .unwrap();

    let mut notes: Vec<_> = group
        .enum_records(Some(NOTES))
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let mut expected = vec![minutes, menu];
    notes.sort();
    expected.sort();
    assert_eq!(notes, expected);
    let photos = group.enum_records(Some(PHOTOS)).unwrap();
    assert_eq!(photos.iter().map(|r| r.id).collect::<Vec<_>>(), [photo]);
    assert_eq!(group.enum_records(None).unwrap().len(), 3);
    assert!(group.enum_records(Some([0x33; 16])).unwrap().is_empty());

    let ids = |xml: &str| -> Vec<[u8; 16]> {
        let mut v: Vec<_> = group
            .search_records(xml)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&search("M*", 0)), expected);
    assert_eq!(ids(&search("M*", 10)), [minutes]);
    assert_eq!(ids(&search("Me?u", 0)), [menu]);
    assert!(
        ids(&search("m*", 0)).is_empty(),
        "strings compare with case"
    );
    // The system attributes: the record type as Windows' GUID text.
    let photos_by_type = "<peersearch><clause attrib=\"peerrecordtype\" type=\"string\">\
        {22222222-2222-2222-2222-222222222222}</clause></peersearch>";
    assert_eq!(ids(photos_by_type), [photo]);
    let by_creator = format!(
        "<peersearch><clause attrib=\"peercreatorid\" type=\"string\">{}</clause></peersearch>",
        alice.id
    );
    assert_eq!(ids(&by_creator).len(), 3);

    assert_eq!(
        code(group.search_records("<nosearch/>")),
        PEER_E_INVALID_SEARCH
    );
    assert_eq!(code(group.search_records(&search("a\\b", 0))), E_INVALIDARG);
    group.close().await.unwrap();
}

#[tokio::test]
async fn refusals_have_their_codes() {
    let alice = member("alice");
    let group = create(&alice);
    let mut reserved = [0u8; 16];
    reserved[..4].copy_from_slice(&0x0000_0100u32.to_le_bytes()); // GRAPH_INFO
    assert_eq!(
        code(group.add_record(NewRecord {
            record_type: reserved,
            ..note("")
        })),
        PEER_E_NOT_AUTHORIZED
    );
    reserved[..4].copy_from_slice(&0x0200_0000u32.to_le_bytes()); // security properties
    assert_eq!(
        code(group.add_record(NewRecord {
            record_type: reserved,
            ..note("")
        })),
        PEER_E_NOT_AUTHORIZED
    );
    for expires_ms in [0, now_ms() - 1] {
        assert_eq!(
            code(group.add_record(NewRecord {
                expires_ms,
                ..note("")
            })),
            PEER_E_INVALID_RECORD_EXPIRATION
        );
    }
    assert_eq!(
        code(group.add_record(note("<attributes><x/></attributes>"))),
        PEER_E_INVALID_ATTRIBUTES
    );
    assert_eq!(
        code(group.add_record(note(
            "<attributes><attribute name=\"peerrecordid\" type=\"string\">x</attribute></attributes>"
        ))),
        PEER_E_INVALID_ATTRIBUTES
    );
    assert!(
        group.enum_records(None).unwrap().is_empty(),
        "nothing stored"
    );

    let id = group.add_record(note(MINUTES)).unwrap();
    let expires = group.get_record(&id).unwrap().expires;
    assert_eq!(
        code(group.update_record(&id, "", expires - 1, Vec::new())),
        PEER_E_INVALID_RECORD_EXPIRATION
    );
    assert_eq!(
        code(group.update_record(&id, "<bad", expires, Vec::new())),
        PEER_E_INVALID_ATTRIBUTES
    );
    assert_eq!(group.get_record(&id).unwrap().version, 1, "unchanged");
    assert_eq!(code(group.get_record(&[0x44; 16])), PEER_E_RECORD_NOT_FOUND);

    let second = alice
        .pg
        .open_group(Some(&alice.id), group.group_name())
        .unwrap();
    group.close().await.unwrap();
    assert_eq!(
        second.get_record(&id).unwrap().id,
        id,
        "the group is still open"
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_deleted_group_is_an_invalid_group() {
    let alice = member("alice");
    let group = create(&alice);
    let other = alice
        .pg
        .open_group(Some(&alice.id), group.group_name())
        .unwrap();
    let id = group.add_record(note("")).unwrap();
    other.close().await.unwrap();
    alice
        .pg
        .delete_group(Some(&alice.id), group.group_name())
        .await
        .unwrap();
    assert_eq!(code(group.get_record(&id)), PEER_E_INVALID_GROUP);
    assert_eq!(code(group.add_record(note(""))), PEER_E_INVALID_GROUP);
    assert_eq!(code(group.enum_records(None)), PEER_E_INVALID_GROUP);
}

#[tokio::test]
async fn records_survive_closing_the_last_handle_and_a_restart() {
    let alice = member("alice");
    let group = create(&alice);
    let name = group.group_name().clone();
    let id = group.add_record(note(MINUTES)).unwrap();
    group.close().await.unwrap();
    let dbs = files_named(alice.home.path(), &|n| n == "records.db");
    assert_eq!(
        dbs.len(),
        1,
        "one database, in the group's directory: {dbs:?}"
    );

    // Same instance, reopened.
    let again = alice.pg.open_group(Some(&alice.id), &name).unwrap();
    assert_eq!(again.get_record(&id).unwrap().attributes, MINUTES);
    again.close().await.unwrap();
    drop(alice.pg);

    // A new instance over the same home.
    let pg = Peergroup::new(IdentityStore::open(alice.home.path()).unwrap(), loopback());
    let reopened = pg.open_group(Some(&alice.id), &name).unwrap();
    let r = reopened.get_record(&id).unwrap();
    assert_eq!((r.version, r.attributes.as_str()), (1, MINUTES));
    assert_eq!(
        reopened.search_records(&search("Min*", 12)).unwrap().len(),
        1
    );
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn a_joiner_that_never_synchronised_is_not_ready() {
    let alice = member("alice");
    let bob = member("bob");
    let group = create(&alice);
    let joined = invite(&group, &bob);
    assert_eq!(code(joined.add_record(note(""))), PEER_E_GROUP_NOT_READY);
    assert_eq!(code(joined.get_record(&[1; 16])), PEER_E_GROUP_NOT_READY);
    assert_eq!(code(joined.enum_records(None)), PEER_E_GROUP_NOT_READY);
    assert_eq!(
        code(joined.search_records(&search("*", 0))),
        PEER_E_GROUP_NOT_READY
    );
    assert_eq!(
        code(joined.update_record(&[1; 16], "", in_an_hour(), Vec::new())),
        PEER_E_GROUP_NOT_READY
    );
    assert_eq!(code(joined.delete_record(&[1; 16])), PEER_E_GROUP_NOT_READY);
    joined.close().await.unwrap();
    group.close().await.unwrap();
}

/// Without replication a member holds only its own records, so the "creator or admin" rule
/// against another member's record is covered by the unit test in `group.rs`; here Bob, a
/// plain member, synchronises and then manages his own records, and Alice's record is simply
/// not in his database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronised_member_manages_its_own_records() {
    let alice = member("alice");
    let bob = member("bob");
    let group = create(&alice);
    let alices = group.add_record(note(MINUTES)).unwrap();
    let group = online(group).await;
    let joined = joined(&group, &bob).await;
    assert_eq!(joined.wait_status(BOTH, WAIT).await.unwrap(), BOTH);

    let deadline = tokio::time::Instant::now() + WAIT;
    let bobs = loop {
        match joined.add_record(note(MENU)) {
            Ok(id) => break id,
            Err(e) if e.hresult() == PEER_E_GROUP_NOT_READY => {
                assert!(tokio::time::Instant::now() < deadline, "Bob never synced");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let r = joined.get_record(&bobs).unwrap();
    assert_eq!(r.creator, bob.id.to_string());
    joined
        .update_record(&bobs, MINUTES, r.expires, Vec::new())
        .unwrap();
    assert_eq!(
        joined.get_record(&bobs).unwrap().modifier,
        bob.id.to_string()
    );
    // Alice's record reaches Bob, who may read it but not change it.
    until("Alice's record at Bob", || {
        joined.get_record(&alices).is_ok()
    })
    .await;
    assert_eq!(
        code(joined.update_record(&alices, "", in_an_hour(), Vec::new())),
        PEER_E_NOT_AUTHORIZED
    );
    joined.delete_record(&bobs).unwrap();
    let ids = |g: &GroupHandle| -> Vec<[u8; 16]> {
        g.enum_records(None).unwrap().iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(&joined), vec![alices]);
    until("Bob's delete at Alice", || ids(&group) == vec![alices]).await;
    joined.close().await.unwrap();
    group.close().await.unwrap();
}
