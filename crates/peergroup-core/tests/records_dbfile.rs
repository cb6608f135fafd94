//! `PeerGroupExportDatabase` / `PeerGroupImportDatabase` on a member's own database: export,
//! wipe, import gives the same database; a truncated, garbage, tampered, other group's or
//! other member's file is refused and changes nothing; both calls are refused once online.

use std::time::Duration;

use peergroup_core::identity::hresult::*;
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::dbfile;
use peergroup_core::records::record::Record;
use peergroup_core::{GroupHandle, NewRecord};

const SEARCH: &str =
    "<peersearch><clause attrib=\"title\" type=\"string\">M*</clause></peersearch>";

mod common;

use common::{code, files_named, member, note, now_ms, Member, MENU, MINUTES};

fn create(m: &Member, classifier: &str) -> GroupHandle {
    m.pg.create_group(GroupProperties {
        classifier: classifier.into(),
        friendly_name: classifier.into(),
        creator_peer_name: m.id.to_string(),
        ..Default::default()
    })
    .unwrap()
}

/// Closes the group, removes its record database and opens it again: an empty database.
async fn wipe(m: &Member, group: GroupHandle) -> GroupHandle {
    let name = group.group_name().clone();
    group.close().await.unwrap();
    let files = files_named(m.home.path(), &|n| n.starts_with("records.db"));
    assert!(!files.is_empty(), "the group had a record database");
    for f in files {
        std::fs::remove_file(f).unwrap();
    }
    let group = m.pg.open_group(Some(&m.id), &name).unwrap();
    assert!(group.enum_records(None).unwrap().is_empty(), "wiped");
    group
}

/// Everything a member sees of its database.
fn contents(group: &GroupHandle) -> (Vec<Record>, Vec<Record>) {
    (
        group.enum_records(None).unwrap(),
        group.search_records(SEARCH).unwrap(),
    )
}

#[tokio::test]
async fn export_wipe_import_gives_the_same_database() {
    let alice = member("alice");
    let group = create(&alice, "club");
    let later = now_ms() + 3_600_000;
    let a = group.add_record(note(MINUTES, later)).unwrap();
    let b = group.add_record(note(MENU, later)).unwrap();
    let c = group.add_record(note("", later)).unwrap();
    group
        .update_record(&a, MENU, later + 1, b"v2".to_vec())
        .unwrap();
    group.delete_record(&c).unwrap();
    let before = contents(&group);
    assert_eq!((before.0.len(), before.1.len()), (2, 2));

    let file = alice.home.path().join("club.pgdb");
    assert_eq!(
        group.export_database(&file).unwrap(),
        3,
        "two live records and a tombstone"
    );
    let group = wipe(&alice, group).await;
    assert_eq!(group.import_database(&file).unwrap(), 3);
    assert_eq!(contents(&group), before);
    assert_eq!(group.get_record(&a).unwrap().version, 2);
    assert_eq!(group.get_record(&b).unwrap().version, 1);
    // The tombstone came back too: the record stays deleted.
    assert_eq!(code(group.get_record(&c)), PEER_E_RECORD_NOT_FOUND);

    // Importing again changes nothing, and a new export is the same file.
    assert_eq!(group.import_database(&file).unwrap(), 0);
    let again = alice.home.path().join("again.pgdb");
    assert_eq!(group.export_database(&again).unwrap(), 3);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&file).unwrap()
    );
    group.close().await.unwrap();
}

#[tokio::test]
async fn bad_files_are_refused_and_change_nothing() {
    let alice = member("alice");
    let group = create(&alice, "club");
    let later = now_ms() + 3_600_000;
    group.add_record(note(MINUTES, later)).unwrap();
    group.add_record(note(MENU, later)).unwrap();
    let file = alice.home.path().join("club.pgdb");
    group.export_database(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let parsed = dbfile::parse(&bytes).unwrap();
    let group = wipe(&alice, group).await;

    let try_import = |name: &str, content: &[u8]| {
        let path = alice.home.path().join(name);
        std::fs::write(&path, content).unwrap();
        let hr = code(group.import_database(&path));
        assert!(
            group.enum_records(None).unwrap().is_empty(),
            "{name} changed the database"
        );
        hr
    };
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            try_import("truncated", &bytes[..cut]),
            PEER_E_INVALID_DATABASE,
            "cut at {cut}"
        );
    }
    assert_eq!(
        try_import(
            "garbage",
            b"this is not a database file at all, not even close"
        ),
        PEER_E_INVALID_DATABASE
    );
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"more");
    assert_eq!(try_import("appended", &appended), PEER_E_INVALID_DATABASE);

    // Another member's database of this group.
    let forged = dbfile::encode(&parsed.group, "0.mallory", &parsed.records);
    assert_eq!(try_import("member", &forged), PEER_E_INVALID_DATABASE);

    // A well-formed file whose second record was altered after signing: nothing of it lands.
    let mut records = parsed.records.clone();
    records[1].data = b"altered".to_vec();
    let tampered = dbfile::encode(&parsed.group, &parsed.member, &records);
    assert_eq!(try_import("tampered", &tampered), NTE_BAD_SIGNATURE);

    // Another group of the same member.
    let other = create(&alice, "other");
    other.add_record(note(MINUTES, later)).unwrap();
    let other_file = alice.home.path().join("other.pgdb");
    other.export_database(&other_file).unwrap();
    assert_eq!(
        try_import("other", &std::fs::read(&other_file).unwrap()),
        PEER_E_INVALID_DATABASE
    );
    other.close().await.unwrap();

    // A missing file is the file system's error.
    assert_eq!(
        code(group.import_database(&alice.home.path().join("missing.pgdb"))),
        HRESULT_FILE_NOT_FOUND
    );

    // The intact file still imports.
    assert_eq!(group.import_database(&file).unwrap(), 2);
    group.close().await.unwrap();
}

#[tokio::test]
async fn expired_records_are_neither_exported_nor_imported() {
    let alice = member("alice");
    let group = create(&alice, "club");
    let soon = now_ms() + 1_000;
    let short = group.add_record(note(MINUTES, soon)).unwrap();
    let long = group.add_record(note(MENU, now_ms() + 3_600_000)).unwrap();
    let file = alice.home.path().join("club.pgdb");
    assert_eq!(group.export_database(&file).unwrap(), 2);
    // Wait until the short record has expired (the check is on the clock, not the wait).
    while now_ms() <= soon {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let group = wipe(&alice, group).await;
    assert_eq!(
        group.import_database(&file).unwrap(),
        1,
        "the expired one is skipped"
    );
    assert_eq!(code(group.get_record(&short)), PEER_E_RECORD_NOT_FOUND);
    assert!(group.get_record(&long).is_ok());
    assert_eq!(group.export_database(&file).unwrap(), 1);
    group.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_are_refused_once_online() {
    let alice = member("alice");
    let group = create(&alice, "club");
    group
        .add_record(note(MINUTES, now_ms() + 3_600_000))
        .unwrap();
    let file = alice.home.path().join("club.pgdb");
    group.export_database(&file).unwrap();
    group.connect().await.unwrap();
    let other = alice.home.path().join("online.pgdb");
    assert_eq!(code(group.export_database(&other)), PEER_E_GROUP_IN_USE);
    assert!(!other.exists(), "nothing written");
    assert_eq!(code(group.import_database(&file)), PEER_E_GROUP_IN_USE);
    group.close().await.unwrap();
}

#[tokio::test]
async fn export_and_import_report_their_progress_stage_by_stage() {
    use peergroup_core::{DatabaseProgress, DatabaseStage};
    let alice = member("alice");
    let group = create(&alice, "club");
    let later = now_ms() + 3_600_000;
    let batch: Vec<NewRecord> = (0..600).map(|_| note(MENU, later)).collect();
    group.add_records(batch).unwrap();
    let file = alice.home.path().join("progress.pgdb");

    let mut seen: Vec<DatabaseProgress> = Vec::new();
    assert_eq!(
        group.export_database_with(&file, |p| seen.push(p)).unwrap(),
        600
    );
    assert_eq!(seen.first().map(|p| p.stage), Some(DatabaseStage::Reading));
    let last = *seen.last().unwrap();
    assert_eq!(
        (last.stage, last.done, last.total),
        (DatabaseStage::Writing, 600, 600)
    );

    let group = wipe(&alice, group).await;
    let mut seen: Vec<DatabaseProgress> = Vec::new();
    assert_eq!(
        group.import_database_with(&file, |p| seen.push(p)).unwrap(),
        600
    );
    let stages: Vec<DatabaseStage> = seen.iter().map(|p| p.stage).collect();
    let mut order = stages.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            DatabaseStage::Reading,
            DatabaseStage::Verifying,
            DatabaseStage::Storing
        ]
    );
    // Verification reports as it goes (every 256 records), never going back.
    let verifying: Vec<u64> = seen
        .iter()
        .filter(|p| p.stage == DatabaseStage::Verifying)
        .map(|p| p.done)
        .collect();
    assert!(verifying.len() >= 3, "{verifying:?}");
    assert!(verifying.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*verifying.last().unwrap(), 600);
    let last = *seen.last().unwrap();
    assert_eq!((last.done, last.total), (600, 600));
    group.close().await.unwrap();
}
