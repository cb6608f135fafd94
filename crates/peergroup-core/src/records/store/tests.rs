//! Tests of the record store: the conflict order on put, tombstones, expiry, reopening.

use super::*;
use crate::error::{ProtoError, RecordError};
use crate::identity::hresult;

const NOW: i64 = 1_700_000_000_000;

fn rec(id: u8, version: u32, expires: i64) -> Record {
    Record {
        record_type: [if id % 2 == 0 { 0xA } else { 0xB }; 16],
        id: [id; 16],
        id_nonce: [0; 16],
        version,
        flags: 0,
        creator: "alice".into(),
        modifier: "alice".into(),
        attributes: String::new(),
        created: NOW,
        expires,
        modified: NOW + i64::from(version),
        data: vec![id, version as u8],
        security: vec![version as u8],
    }
}

fn open() -> (tempfile::TempDir, RecordStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open(dir.path().join("records.db")).unwrap();
    (dir, store)
}

#[test]
fn put_get_replace_ignore() {
    let (_dir, mut s) = open();
    let v1 = rec(1, 1, NOW + 1000);
    let v2 = rec(1, 2, NOW + 1000);
    assert_eq!(s.put(&v1).unwrap(), PutOutcome::Inserted);
    assert_eq!(s.get(&v1.id).unwrap(), v1);
    assert_eq!(s.put(&v1).unwrap(), PutOutcome::Ignored, "identical");
    assert_eq!(s.put(&v2).unwrap(), PutOutcome::Replaced);
    assert_eq!(s.put(&v1).unwrap(), PutOutcome::Ignored, "older");
    assert_eq!(s.get(&v1.id).unwrap(), v2);
    // A same-version rival decided by the tie-break.
    let mut rival = v2.clone();
    rival.modifier = "zed".into();
    assert_eq!(s.put(&rival).unwrap(), PutOutcome::Replaced);
    assert_eq!(s.put(&v2).unwrap(), PutOutcome::Ignored);
    assert_eq!(s.count().unwrap(), 1);

    let err = s.get(&[7; 16]).unwrap_err();
    assert!(matches!(err, CoreError::RecordNotFound));
    assert_eq!(err.hresult(), hresult::PEER_E_RECORD_NOT_FOUND);

    // Bad input changes nothing.
    let mut bad = rec(2, 1, NOW + 1000);
    bad.data = vec![0; crate::records::record::MAX_RECORD_DATA + 1];
    assert!(matches!(
        s.put(&bad),
        Err(CoreError::Proto(ProtoError::Record(RecordError::TooLarge)))
    ));
    bad.data.clear();
    bad.version = 0;
    assert!(matches!(
        s.put(&bad),
        Err(CoreError::Proto(ProtoError::Record(
            RecordError::VersionZero
        )))
    ));
    assert_eq!(s.count().unwrap(), 1);
}

#[test]
fn list_by_type_and_ids_versions() {
    let (_dir, mut s) = open();
    for id in [5u8, 1, 4, 2, 3] {
        s.put(&rec(id, u32::from(id), NOW + 1000)).unwrap();
    }
    let all = s.list(None, NOW).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id[0]).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let even = s.list(Some([0xA; 16]), NOW).unwrap();
    assert_eq!(even.iter().map(|r| r.id[0]).collect::<Vec<_>>(), [2, 4]);
    assert!(s.list(Some([0xC; 16]), NOW).unwrap().is_empty());
    assert_eq!(
        s.ids_versions().unwrap(),
        (1u8..=5)
            .map(|i| ([i; 16], u32::from(i)))
            .collect::<Vec<_>>()
    );
    // Expired at `now` but not yet removed: not listed.
    assert!(s.list(None, NOW + 1000).unwrap().is_empty());
}

#[test]
fn tombstone_hides_but_is_kept() {
    let (_dir, mut s) = open();
    let r = rec(1, 1, NOW + 1000);
    s.put_with_attributes(
        &r,
        &[IndexedAttribute {
            name: "n".into(),
            type_name: "int".into(),
            value: IndexValue::Integer(3),
        }],
    )
    .unwrap();
    let attr_rows = |s: &RecordStore| -> i64 {
        s.conn
            .query_row("SELECT COUNT(*) FROM attributes", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(attr_rows(&s), 1);
    let t = r.tombstone("alice", NOW + 10);
    assert_eq!(s.put(&t).unwrap(), PutOutcome::Replaced);
    assert_eq!(attr_rows(&s), 0, "a tombstone is not searchable");
    assert!(s.list(None, NOW).unwrap().is_empty());
    assert_eq!(s.tombstones().unwrap(), std::slice::from_ref(&t));
    assert_eq!(s.get(&r.id).unwrap(), t);
    assert!(matches!(
        s.get_live(&r.id, NOW),
        Err(CoreError::RecordNotFound)
    ));
    // The deleted version stays deleted when the old one comes back.
    assert_eq!(s.put(&r).unwrap(), PutOutcome::Ignored);
    assert_eq!(s.count().unwrap(), 1);
    assert_eq!(s.ids_versions().unwrap(), [(r.id, 2)]);
}

#[test]
fn expire_removes_and_returns() {
    let (_dir, mut s) = open();
    let soon = rec(1, 1, NOW + 10);
    let later = rec(2, 1, NOW + 100);
    let dead = rec(3, 1, NOW + 10).tombstone("alice", NOW);
    for r in [&soon, &later, &dead] {
        s.put(r).unwrap();
    }
    assert!(s.expire(NOW + 9).unwrap().is_empty());
    assert_eq!(s.expire(NOW + 10).unwrap(), [soon.clone(), dead]);
    assert_eq!(s.count().unwrap(), 1);
    assert!(matches!(s.get(&soon.id), Err(CoreError::RecordNotFound)));
    assert_eq!(s.get_live(&later.id, NOW + 99).unwrap(), later);
    assert!(s.get_live(&later.id, NOW + 100).is_err());
    assert_eq!(s.expire(NOW + 1000).unwrap(), [later]);
    assert_eq!(s.count().unwrap(), 0);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    let records: Vec<Record> = (0..50u8).map(|i| rec(i, 1, NOW + 1000)).collect();
    {
        let mut s = RecordStore::open(&path).unwrap();
        for r in &records {
            s.put(r).unwrap();
        }
        s.put(&records[7].tombstone("alice", NOW)).unwrap();
        // Dropped without close: the WAL is replayed on the next open.
    }
    let s = RecordStore::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), 50);
    assert_eq!(s.list(None, NOW).unwrap().len(), 49);
    assert_eq!(s.tombstones().unwrap().len(), 1);
    assert_eq!(s.get(&records[3].id).unwrap(), records[3]);
    s.close().unwrap();
    let s = RecordStore::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), 50);
    s.close().unwrap();
}

#[test]
fn wal_and_full_sync_are_set() {
    let (_dir, s) = open();
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = s
        .conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
}

#[test]
fn garbage_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    std::fs::write(&path, b"this is not a database, not at all, no".repeat(100)).unwrap();
    let err = RecordStore::open(&path).unwrap_err();
    assert!(matches!(err, CoreError::Database(_)), "{err}");
    assert_eq!(err.hresult(), hresult::PEER_E_DBINITIALIZATION_FAILED);
}

/// A schema 2 database (with its `records_expires` index) opens: the index is dropped, the
/// records stay, and the file is schema 3.
#[test]
fn schema_2_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    {
        let mut s = RecordStore::open(&path).unwrap();
        s.put(&rec(1, 1, NOW + 1_000)).unwrap();
        s.conn
            .execute_batch(
                "CREATE INDEX records_expires ON records(expires); PRAGMA user_version=2;",
            )
            .unwrap();
        s.close().unwrap();
    }
    let s = RecordStore::open(&path).unwrap();
    let version: i64 = s
        .conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let indexes: Vec<String> = s
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        !indexes.iter().any(|n| n == "records_expires"),
        "{indexes:?}"
    );
    assert!(indexes.iter().any(|n| n == "records_items"), "{indexes:?}");
    assert_eq!(
        s.get(&rec(1, 1, NOW + 1_000).id).unwrap(),
        rec(1, 1, NOW + 1_000)
    );
    // Expiry is served by records_items.
    let plan: Vec<String> = s
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {EXPIRED}"))
        .unwrap()
        .query_map([5], |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(plan.iter().any(|l| l.contains("records_items")), "{plan:?}");
}

#[test]
fn the_database_and_its_wal_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    {
        let mut s = RecordStore::open(&path).unwrap();
        s.put(&rec(1, 1, i64::MAX)).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            assert_eq!(mode(&f), PRIVATE_MODE, "{}", f.display());
        }
    }
    // A database an older version left readable by others is tightened on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    RecordStore::open(&path).unwrap();
    assert_eq!(mode(&path), PRIVATE_MODE);
}
