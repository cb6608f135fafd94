//! The fuzz seeds of the record decoder and the database import are real, current data:
//! they must decode (a seed the decoder refuses only exercises its first check). When a
//! format changes, regenerate them with
//! `cargo test -p peergroup-core --test fuzz_seeds -- --ignored` and commit the files.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use peergroup_core::identity::IdentityStore;
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::dbfile;
use peergroup_core::records::record::Record;
use peergroup_core::{NewRecord, Peergroup};

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

#[test]
fn record_decoder_seeds_decode_canonically() {
    for name in ["record.bin", "tombstone.bin"] {
        let bytes = std::fs::read(seeds("record_decoder").join(name)).unwrap();
        let r = Record::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.encode(), bytes, "{name}");
        assert_eq!(r.is_deleted(), name == "tombstone.bin");
    }
}

#[test]
fn database_import_seeds_parse() {
    let two = std::fs::read(seeds("database_import").join("two_records.pgdb")).unwrap();
    let f = dbfile::parse(&two).unwrap();
    assert_eq!(f.records.len(), 2);
    assert!(f.records.iter().any(|r| r.is_deleted()));
    assert_eq!(dbfile::encode(&f.group, &f.member, &f.records), two);
    let empty = std::fs::read(seeds("database_import").join("empty.pgdb")).unwrap();
    assert!(dbfile::parse(&empty).unwrap().records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fuzz seeds; run by hand when a format changes"]
async fn write_seeds() {
    let home = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(home.path()).unwrap();
    let me = store.create(Some("seed"), Some("Seed"), None).unwrap();
    let pg = Peergroup::new(store, Some("127.0.0.1:0".parse().unwrap()));
    let g = pg
        .create_group(GroupProperties {
            classifier: "seeds".into(),
            friendly_name: "Seeds".into(),
            creator_peer_name: me.to_string(),
            ..Default::default()
        })
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let new = |text: &str| NewRecord {
        record_type: [0x5e; 16],
        attributes: format!(
            "<attributes><attribute name=\"n\" type=\"string\">{text}</attribute></attributes>"
        ),
        // Far in the future, so the seeds stay importable.
        expires_ms: now + 50 * 365 * 86_400_000,
        data: text.as_bytes().to_vec(),
    };
    let empty = home.path().join("empty.pgdb");
    g.export_database(&empty).unwrap();
    let kept = g.add_record(new("kept")).unwrap();
    let gone = g.add_record(new("gone")).unwrap();
    g.delete_record(&gone).unwrap();
    let two = home.path().join("two.pgdb");
    g.export_database(&two).unwrap();
    let db = seeds("database_import");
    std::fs::copy(&empty, db.join("empty.pgdb")).unwrap();
    std::fs::copy(&two, db.join("two_records.pgdb")).unwrap();
    let records = dbfile::parse(&std::fs::read(&two).unwrap())
        .unwrap()
        .records;
    let rd = seeds("record_decoder");
    for r in records {
        let name = if r.id == kept {
            "record.bin"
        } else {
            "tombstone.bin"
        };
        std::fs::write(rd.join(name), r.encode()).unwrap();
    }
    g.close().await.unwrap();
}
