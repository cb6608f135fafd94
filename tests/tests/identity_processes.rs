//! Several processes share one identity store at once: each creates, renames and deletes its
//! own identities while the others do the same. The store must end exactly as the sum of
//! their work, every identity whole.
//!
//! The test re-runs its own binary as the worker processes (`PEERGROUP_TEST_WORKER` set).

use std::process::Command;

use peergroup_core::identity::{IdentityStore, PeerName};

const WORKERS: usize = 4;
const PER_WORKER: usize = 8;

#[test]
fn worker_entry() {
    let Ok(spec) = std::env::var("PEERGROUP_TEST_WORKER") else {
        return; // run only as a child of concurrent_processes_share_one_store
    };
    let (home, id) = spec.split_once('|').unwrap();
    let store = IdentityStore::open(home).unwrap();
    for i in 0..PER_WORKER {
        let name = store
            .create(Some(&format!("w{id}-{i}")), Some("temp"), None)
            .unwrap();
        store
            .set_friendly_name(&name, &format!("worker {id} #{i}"))
            .unwrap();
        if i % 2 == 1 {
            store.delete(&name).unwrap();
        }
        let _ = store.list().unwrap(); // readers run while the others write
    }
}

#[test]
fn concurrent_processes_share_one_store() {
    if std::env::var("PEERGROUP_TEST_WORKER").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", "worker_entry", "--nocapture", "--test-threads=1"])
                .env("PEERGROUP_TEST_WORKER", format!("{}|{w}", home.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker failed");
    }
    let store = IdentityStore::open(&home).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), WORKERS * PER_WORKER / 2);
    for pair in list {
        let name: PeerName = pair.peer_name.parse().unwrap();
        let classifier = name.classifier().to_owned();
        let (w, i) = classifier[1..].split_once('-').unwrap();
        assert_eq!(pair.friendly_name, format!("worker {w} #{i}"));
        store.load(&name).expect("whole identity");
    }
}
