//! The daemon in-process: open counts across client connections, handles closed when a
//! client's connection ends, and the user check.

use std::time::{Duration, Instant};

use peergroup_core::identity::hresult;
use peergroup_core::identity::IdentityStore;
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::record::MAX_RECORD_DATA;
use peergroup_core::service::Client;
use peergroup_core::{CoreError, NewRecord, Peergroup};
use peergroupd::{bind_socket, current_uid, Daemon};

/// Upper bound for the daemon to notice a connection that ended.
const BOUND: Duration = Duration::from_secs(20);

struct Setup {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    daemon: Daemon,
    key: peergroup_core::group::GroupKey,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

async fn setup(uid: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(dir.path().join("home")).unwrap();
    let me = store.create(Some("d"), Some("d"), None).unwrap();
    let pg = Peergroup::new(store, Some("127.0.0.1:0".parse().unwrap()));
    let g = pg
        .create_group(GroupProperties {
            classifier: "daemon".into(),
            creator_peer_name: me.to_string(),
            ..Default::default()
        })
        .unwrap();
    let key = (me, g.group_name().clone());
    g.close().await.unwrap();
    let socket = dir.path().join("run").join("peergroupd.sock");
    let listener = bind_socket(&socket).await.unwrap();
    let daemon = Daemon::new(pg, uid);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = daemon.clone();
    let served = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Setup {
        _dir: dir,
        socket,
        daemon,
        key,
        stop,
        served,
    }
}

async fn until_count(daemon: &Daemon, key: &peergroup_core::group::GroupKey, n: usize) {
    let deadline = Instant::now() + BOUND;
    while daemon.open_count(key) != n {
        assert!(Instant::now() < deadline, "open count never became {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_counts_span_connections_and_a_closed_connection_closes_its_handles() {
    let s = setup(current_uid().unwrap()).await;
    let a = Client::connect(&s.socket).await.unwrap();
    let b = Client::connect(&s.socket).await.unwrap();
    let ha1 = a.open_group(Some(&s.key.0), &s.key.1).await.unwrap();
    let ha2 = a.open_group(Some(&s.key.0), &s.key.1).await.unwrap();
    let hb = b.open_group(Some(&s.key.0), &s.key.1).await.unwrap();
    assert_ne!(ha1, ha2);
    assert_eq!(s.daemon.open_count(&s.key), 3);

    // Handles are per connection: b holds no handle numbered like a's second one.
    assert_ne!(hb, ha2);
    let err = b.close(ha2).await.unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_INVALID_GROUP);
    assert_eq!(s.daemon.open_count(&s.key), 3);
    a.close(ha1).await.unwrap();
    assert_eq!(s.daemon.open_count(&s.key), 2);
    let err = a.close(ha1).await.unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_INVALID_GROUP);

    // A record too large for the service protocol is refused in the client: the connection
    // and its handles survive.
    let huge = NewRecord {
        record_type: *b"daemon-test-type",
        attributes: String::new(),
        expires_ms: i64::MAX / 2,
        data: vec![0; MAX_RECORD_DATA + 1],
    };
    let err = a.add_record(ha2, huge).await.unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED);
    assert_eq!(a.status(ha2).await.unwrap(), 0);

    // a goes away with one handle open: the daemon counts it out.
    drop(a);
    until_count(&s.daemon, &s.key, 1).await;
    assert_eq!(b.status(hb).await.unwrap(), 0);
    b.close(hb).await.unwrap();
    assert_eq!(s.daemon.open_count(&s.key), 0);

    s.stop.send(()).unwrap();
    s.served.await.unwrap();
    // The service is gone: calls fail with PEER_E_SERVICE_NOT_AVAILABLE.
    let err = b.status(hb).await.unwrap_err();
    assert!(matches!(err, CoreError::ServiceNotAvailable(_)), "{err}");
    assert_eq!(err.hresult(), hresult::PEER_E_SERVICE_NOT_AVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_of_another_user_are_refused() {
    let s = setup(current_uid().unwrap().wrapping_add(1)).await;
    let err = Client::connect(&s.socket).await.err().unwrap();
    assert_eq!(
        err.hresult(),
        hresult::PEER_E_SERVICE_NOT_AVAILABLE,
        "{err}"
    );
    s.stop.send(()).unwrap();
    s.served.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_is_service_not_available() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::connect(&dir.path().join("none.sock"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.hresult(),
        hresult::PEER_E_SERVICE_NOT_AVAILABLE,
        "{err}"
    );
}
