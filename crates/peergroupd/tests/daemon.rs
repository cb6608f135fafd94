//! The daemon in-process: open counts across client sessions, the user check, and a
//! service that goes away.

use std::time::{Duration, Instant};

use peergroup_core::identity::hresult;
use peergroup_core::identity::IdentityStore;
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::record::MAX_RECORD_DATA;
use peergroup_core::{CoreError, NewRecord, Peergroup};
use peergroupd::{current_uid, Background};

/// Upper bound for the daemon to notice a session that ended.
const BOUND: Duration = Duration::from_secs(20);

struct Setup {
    dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    service: Background,
    key: peergroup_core::group::GroupKey,
}

fn home(dir: &tempfile::TempDir) -> IdentityStore {
    IdentityStore::open(dir.path().join("home")).unwrap()
}

async fn setup(uid: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = home(&dir);
    let me = store.create(Some("d"), Some("d"), None).unwrap();
    let pg = Peergroup::embedded(
        store,
        Some("127.0.0.1:0".parse().unwrap()),
        Default::default(),
    );
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
    let listen = Some("127.0.0.1:0".parse().unwrap());
    let service = Background::start(home(&dir), listen, socket.clone(), uid).unwrap();
    Setup {
        dir,
        socket,
        service,
        key,
    }
}

fn client(s: &Setup) -> peergroup_core::Result<Peergroup> {
    Peergroup::through_service(home(&s.dir), None, Default::default(), s.socket.clone())
}

async fn until_count(s: &Setup, n: usize) {
    let deadline = Instant::now() + BOUND;
    while s.service.daemon().open_count(&s.key) != n {
        assert!(Instant::now() < deadline, "open count never became {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_counts_span_sessions_and_a_dead_service_is_reported() {
    let s = setup(current_uid().unwrap()).await;
    let a = client(&s).unwrap();
    let b = client(&s).unwrap();
    assert!(a.is_service() && b.is_service());
    let ha1 = a.open_group(Some(&s.key.0), &s.key.1).unwrap();
    let ha2 = a.open_group(Some(&s.key.0), &s.key.1).unwrap();
    let hb = b.open_group(Some(&s.key.0), &s.key.1).unwrap();
    assert_eq!(s.service.daemon().open_count(&s.key), 3);
    assert_eq!(s.service.daemon().session_count(), 2);
    ha1.close().await.unwrap();
    assert_eq!(s.service.daemon().open_count(&s.key), 2);

    // A subscription is forwarded by the daemon until the client drops it.
    let sub = hb.subscribe(peergroup_core::EventFilter::all()).unwrap();
    assert_eq!(s.service.daemon().subscription_count(), 1);
    drop(sub);
    assert_eq!(s.service.daemon().subscription_count(), 0);

    // A record over the size limit is refused with the in-process error; the session and
    // its handles survive.
    let huge = NewRecord {
        record_type: *b"daemon-test-type",
        attributes: String::new(),
        expires_ms: i64::MAX / 2,
        data: vec![0; MAX_RECORD_DATA + 1],
    };
    let err = ha2.add_record(huge).unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Proto(peergroup_core::error::ProtoError::Record(
                peergroup_core::error::RecordError::TooLarge
            ))
        ),
        "{err}"
    );
    assert_eq!(ha2.status().unwrap(), 0);

    // a's process ends: its session ends and the daemon counts its handles out.
    drop(ha2);
    drop(a);
    until_count(&s, 1).await;
    assert_eq!(hb.status().unwrap(), 0);

    let Setup {
        dir,
        socket,
        service,
        key,
    } = s;
    service.stop().unwrap();
    // The service is gone: calls fail with PEER_E_SERVICE_NOT_AVAILABLE, opening too.
    let err = hb.status().unwrap_err();
    assert!(matches!(err, CoreError::ServiceNotAvailable(_)), "{err}");
    assert_eq!(err.hresult(), hresult::PEER_E_SERVICE_NOT_AVAILABLE);
    let err = b.open_group(Some(&key.0), &key.1).err().unwrap();
    assert_eq!(err.hresult(), hresult::PEER_E_SERVICE_NOT_AVAILABLE);

    // A restarted service is reached by the same instance's next open (a new session); the
    // old handle stays invalid.
    let listen = Some("127.0.0.1:0".parse().unwrap());
    let again = Background::start(home(&dir), listen, socket, current_uid().unwrap()).unwrap();
    let h = b.open_group(Some(&key.0), &key.1).unwrap();
    assert_eq!(h.status().unwrap(), 0);
    assert_eq!(again.daemon().open_count(&key), 1);
    assert!(hb.status().is_err());
    h.close().await.unwrap();
    drop(hb);
    again.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_of_another_user_are_refused() {
    let s = setup(current_uid().unwrap().wrapping_add(1)).await;
    let err = client(&s).err().unwrap();
    assert_eq!(
        err.hresult(),
        hresult::PEER_E_SERVICE_NOT_AVAILABLE,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_is_service_not_available() {
    let dir = tempfile::tempdir().unwrap();
    let err = Peergroup::through_service(
        home(&dir),
        None,
        Default::default(),
        dir.path().join("none.sock"),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.hresult(),
        hresult::PEER_E_SERVICE_NOT_AVAILABLE,
        "{err}"
    );
}

/// Whether UDP `port` on loopback can be bound (nobody holds it).
fn udp_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_session_of_a_directory_releases_its_port() {
    let s = setup(current_uid().unwrap()).await;
    // A data directory of its own (not the daemon's), listening on a fixed port.
    let other = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(other.path()).unwrap();
    let me = store.create(Some("o"), Some("o"), None).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let pg =
        Peergroup::through_service(store, listen, Default::default(), s.socket.clone()).unwrap();
    let g = pg
        .create_group(GroupProperties {
            classifier: "port".into(),
            creator_peer_name: me.to_string(),
            ..Default::default()
        })
        .unwrap();
    g.connect().await.unwrap();
    g.wait_status(peergroup_core::io::STATUS_LISTENING, BOUND)
        .await
        .unwrap();
    assert_eq!(
        pg.local_addr().await,
        listen,
        "the service's node took the port"
    );
    assert!(!udp_free(port));

    // The process closes its group (the last handle anywhere: the node closes and the port
    // is released) and goes away (its session ends).
    g.close().await.unwrap();
    drop(pg);
    let deadline = Instant::now() + BOUND;
    while !udp_free(port) {
        assert!(Instant::now() < deadline, "port {port} still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while s.service.daemon().session_count() != 0 {
        assert!(Instant::now() < deadline, "the session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads from `s` until the daemon closes it (or [`BOUND`] passes: a failure); what it sent.
async fn until_closed(s: &mut tokio::net::UnixStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the daemon kept the connection open");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_say_nothing_are_capped_and_closed() {
    use peergroupd::{HELLO_TIMEOUT, MAX_HELLO_FRAME, MAX_UNGREETED};
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixStream;
    let s = setup(current_uid().unwrap()).await;
    let mut idle = Vec::new();
    for _ in 0..MAX_UNGREETED {
        idle.push(UnixStream::connect(&s.socket).await.unwrap());
    }
    // One more while all of those are waiting: closed at once, nothing sent.
    let started = Instant::now();
    let mut over = UnixStream::connect(&s.socket).await.unwrap();
    assert!(until_closed(&mut over).await.is_empty());
    assert!(
        started.elapsed() < HELLO_TIMEOUT,
        "closed at once, not when it would have timed out"
    );
    // The silent ones are closed once their time to say Hello is up; then a client is served.
    for c in &mut idle {
        assert!(until_closed(c).await.is_empty());
    }
    assert!(started.elapsed() >= HELLO_TIMEOUT);
    let pg = client(&s).unwrap();
    let h = pg.open_group(Some(&s.key.0), &s.key.1).unwrap();
    assert_eq!(h.status().unwrap(), 0);

    // A first frame announcing more than a Hello can be is refused before its body comes.
    let mut big = UnixStream::connect(&s.socket).await.unwrap();
    let len = (MAX_HELLO_FRAME as u32 + 1).to_be_bytes();
    let mut header = vec![0u8; peergroup_core::service::proto::HEADER_LEN];
    let n = header.len();
    header[n - 4..].copy_from_slice(&len);
    big.write_all(&header).await.unwrap();
    let answer = until_closed(&mut big).await;
    let (body, _) = peergroup_core::service::proto::split_frame(&answer)
        .unwrap()
        .expect("one error frame");
    let frame = peergroup_core::service::proto::ServerFrame::decode(body).unwrap();
    assert!(
        matches!(
            frame,
            peergroup_core::service::proto::ServerFrame::Response {
                response: peergroup_core::service::proto::Response::Error(_),
                ..
            }
        ),
        "{frame:?}"
    );
    h.close().await.unwrap();
}
