//! Real connections over UDP on 127.0.0.1 with real certificates from the identity layer.
//!
//! Timeouts here are only upper bounds against hangs; no test asserts how long anything takes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use peergroup_identity::hresult;
use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{
    CertificateDer, CloseCode, CloseReason, Connection, CredentialResolver, Credentials, Frame,
    Limits, NoCredentials, Node, NodeConfig, PinnedCertificates, Side, TransportError, TrustPolicy,
    MAX_FRAME_LEN,
};

/// Upper bound for anything that should finish; a hang fails the test instead of stalling CI.
const BOUND: Duration = Duration::from_secs(20);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("did not finish within the bound")
}

/// An identity: key, self-signed certificate, and the credentials made of them.
struct Id {
    cert: CertificateDer<'static>,
    creds: Credentials,
}

fn identity(alg: KeyAlgorithm, name: &str) -> Id {
    let key = PrivateKey::generate(alg).unwrap();
    let cert = IdentityCertificate::issue(&key, "transport-test", name).unwrap();
    let cert = CertificateDer::from(cert.der().to_vec());
    let creds = Credentials::from_identity(&key, vec![cert.clone()]).unwrap();
    Id { cert, creds }
}

fn pin(ids: &[&Id]) -> Arc<dyn TrustPolicy> {
    Arc::new(PinnedCertificates::new(ids.iter().map(|i| i.cert.clone())))
}

fn serving(names: &[(&str, &Id)]) -> Arc<dyn CredentialResolver> {
    let table: HashMap<String, Credentials> = names
        .iter()
        .map(|(n, id)| (n.to_string(), id.creds.clone()))
        .collect();
    Arc::new(table)
}

fn node(resolver: Arc<dyn CredentialResolver>, trust: Arc<dyn TrustPolicy>) -> Node {
    node_with(resolver, trust, Limits::default())
}

fn node_with(
    resolver: Arc<dyn CredentialResolver>,
    trust: Arc<dyn TrustPolicy>,
    limits: Limits,
) -> Node {
    let config = NodeConfig {
        credentials: resolver,
        trust,
        limits,
    };
    Node::bind("127.0.0.1:0".parse().unwrap(), config).unwrap()
}

/// A server serving `name` as `server`, trusting `client`, and a connected pair.
async fn pair(server: &Id, client: &Id, name: &str) -> (Node, Node, Connection, Connection) {
    let s = node(serving(&[(name, server)]), pin(&[client]));
    let c = node(Arc::new(NoCredentials), pin(&[]));
    let out = within(c.connect(s.local_addr(), name, &client.creds, pin(&[server])))
        .await
        .unwrap();
    let inc = within(s.accept()).await.unwrap();
    (s, c, out, inc)
}

fn numbered(i: u32) -> Frame {
    // Sizes vary from empty to a few hundred KiB; the payload says which frame it is.
    let len = (i as usize * 7919) % (300 * 1024);
    let mut payload = i.to_be_bytes().to_vec();
    payload.resize(len.max(4), (i % 251) as u8);
    Frame::new((i % 65_536) as u16, payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_frames_both_ways_in_order() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let client = identity(KeyAlgorithm::Ed25519, "Client");
    let (s, c, out, inc) = pair(&server, &client, "alpha.peergroup").await;

    assert_eq!(out.server_name(), "alpha.peergroup");
    assert_eq!(inc.server_name(), "alpha.peergroup");
    assert_eq!(out.peer_chain(), std::slice::from_ref(&server.cert));
    assert_eq!(inc.peer_chain(), std::slice::from_ref(&client.cert));
    assert_eq!(out.peer_side(), Side::Server);
    assert_eq!(inc.peer_side(), Side::Client);
    assert_eq!(out.remote_address(), s.local_addr());
    assert_eq!(inc.remote_address(), c.local_addr());
    assert_eq!(s.connection(inc.id()).unwrap().id(), inc.id());

    const N: u32 = 60;
    let send_all = |conn: Connection| async move {
        for i in 0..N {
            conn.send(&numbered(i)).await.unwrap();
        }
        conn.send(&Frame::new(9, vec![1u8; MAX_FRAME_LEN]).unwrap())
            .await
            .unwrap();
    };
    let recv_all = |conn: Connection| async move {
        for i in 0..N {
            assert_eq!(conn.recv().await.unwrap(), numbered(i));
        }
        assert_eq!(conn.recv().await.unwrap().payload().len(), MAX_FRAME_LEN);
    };
    within(async {
        tokio::join!(
            send_all(out.clone()),
            send_all(inc.clone()),
            recv_all(out.clone()),
            recv_all(inc.clone()),
        )
    })
    .await;

    within(c.close(CloseCode::Shutdown, BOUND)).await.unwrap();
    within(s.close(CloseCode::Shutdown, BOUND)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_the_policy_refuses_fails_the_handshake_and_is_never_accepted() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let member = identity(KeyAlgorithm::EcdsaP256, "Member");
    let stranger = identity(KeyAlgorithm::EcdsaP256, "Stranger");
    let s = node(serving(&[("grp.peergroup", &server)]), pin(&[&member]));
    let c = node(Arc::new(NoCredentials), pin(&[]));

    let e = within(c.connect(
        s.local_addr(),
        "grp.peergroup",
        &stranger.creds,
        pin(&[&server]),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(e, TransportError::NotAuthenticated { .. }),
        "{e:?}"
    );
    assert_eq!(e.hresult(), hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED);

    // The next connection the server sees is the member's: the stranger never got one.
    let ok = within(c.connect(
        s.local_addr(),
        "grp.peergroup",
        &member.creds,
        pin(&[&server]),
    ))
    .await
    .unwrap();
    let accepted = within(s.accept()).await.unwrap();
    assert_eq!(accepted.peer_chain(), std::slice::from_ref(&member.cert));
    assert_eq!(s.connections().len(), 1);
    drop(ok);
    within(s.close(CloseCode::Shutdown, BOUND)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_client_policy_refuses_fails_the_handshake() {
    let server = identity(KeyAlgorithm::Ed25519, "Server");
    let impostor = identity(KeyAlgorithm::Ed25519, "Impostor");
    let client = identity(KeyAlgorithm::Ed25519, "Client");
    let s = node(serving(&[("grp.peergroup", &impostor)]), pin(&[&client]));
    let c = node(Arc::new(NoCredentials), pin(&[]));
    let e = within(c.connect(
        s.local_addr(),
        "grp.peergroup",
        &client.creds,
        pin(&[&server]),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        e.hresult(),
        hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED,
        "{e:?}"
    );
    assert!(s.connections().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_server_credentials() {
    let red = identity(KeyAlgorithm::EcdsaP256, "Red");
    let blue = identity(KeyAlgorithm::Ed25519, "Blue");
    let client = identity(KeyAlgorithm::EcdsaP256, "Client");
    let s = node(
        serving(&[("red.peergroup", &red), ("blue.peergroup", &blue)]),
        pin(&[&client]),
    );
    let c = node(Arc::new(NoCredentials), pin(&[]));

    for (name, id) in [("red.peergroup", &red), ("blue.peergroup", &blue)] {
        // Each name is answered with its own certificate: pinning only that one suffices.
        let out = within(c.connect(s.local_addr(), name, &client.creds, pin(&[id])))
            .await
            .unwrap();
        assert_eq!(out.peer_chain(), std::slice::from_ref(&id.cert));
        let inc = within(s.accept()).await.unwrap();
        assert_eq!(inc.server_name(), name);
    }

    // Asking for red while trusting only blue fails: red's certificate came back.
    let e = within(c.connect(
        s.local_addr(),
        "red.peergroup",
        &client.creds,
        pin(&[&blue]),
    ))
    .await
    .unwrap_err();
    assert_eq!(e.hresult(), hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED);

    // A name the server does not serve is refused.
    let e = within(c.connect(
        s.local_addr(),
        "green.peergroup",
        &client.creds,
        pin(&[&red, &blue]),
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, TransportError::Refused { .. }), "{e:?}");
    assert_eq!(e.hresult(), hresult::PEER_E_CONNECTION_REFUSED);

    // A name that cannot be SNI is refused before anything is sent.
    let e = within(c.connect(s.local_addr(), "10.0.0.1", &client.creds, pin(&[&red])))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::InvalidServerName(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_observes_exactly_our_close_code() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let client = identity(KeyAlgorithm::EcdsaP256, "Client");
    let s = node(serving(&[("grp.peergroup", &server)]), pin(&[&client]));
    let c = node(Arc::new(NoCredentials), pin(&[]));
    for code in CloseCode::ALL {
        let out = within(c.connect(
            s.local_addr(),
            "grp.peergroup",
            &client.creds,
            pin(&[&server]),
        ))
        .await
        .unwrap();
        let inc = within(s.accept()).await.unwrap();
        // Alternate which side closes.
        let (closer, peer) = if code.code() % 2 == 0 {
            (&inc, &out)
        } else {
            (&out, &inc)
        };
        let reason = format!("closing with {code}");
        closer.close(code, &reason);
        assert_eq!(
            within(peer.closed()).await,
            CloseReason::Peer {
                code,
                reason: reason.clone()
            }
        );
        assert_eq!(
            within(closer.closed()).await,
            CloseReason::Local { code, reason }
        );
        // A closed connection refuses frames, says why, and is gone from its node.
        let e = within(peer.recv()).await.unwrap_err();
        assert!(
            matches!(&e, TransportError::Closed(r) if r.code() == Some(code)),
            "{e:?}"
        );
        let e = within(peer.send(&Frame::new(1, &b"late"[..]).unwrap()))
            .await
            .unwrap_err();
        assert!(matches!(e, TransportError::Closed(_)), "{e:?}");
        let e = s.connection(inc.id()).unwrap_err();
        assert_eq!(e.hresult(), hresult::PEER_E_CONNECTION_NOT_FOUND);
    }
    let not_authorized = TransportError::Closed(CloseReason::Peer {
        code: CloseCode::NotAuthorized,
        reason: String::new(),
    });
    assert_eq!(not_authorized.hresult(), hresult::PEER_E_NOT_AUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushed_delivers_every_queued_frame_before_the_code() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let client = identity(KeyAlgorithm::EcdsaP256, "Client");
    let (_s, _c, out, inc) = pair(&server, &client, "grp.peergroup").await;
    // 30 x 16 KiB: within the receiver's flow-control window, so nobody needs to read yet.
    let frame = |i: u32| Frame::new(i as u16, vec![i as u8; 16 * 1024]).unwrap();
    for i in 0..30 {
        within(out.send(&frame(i))).await.unwrap();
    }
    let ended = within(out.close_flushed(CloseCode::MemberLeft, "bye", BOUND)).await;
    let expected_code = |r: &CloseReason| r.code() == Some(CloseCode::MemberLeft);
    assert!(matches!(&ended, CloseReason::Local { .. }) && expected_code(&ended));
    let e = within(out.send(&frame(99))).await.unwrap_err();
    assert!(matches!(e, TransportError::Closed(_)), "{e:?}");

    // The server reads only now, after the close: every frame is there, then the code.
    for i in 0..30 {
        assert_eq!(within(inc.recv()).await.unwrap(), frame(i));
    }
    match within(inc.recv()).await.unwrap_err() {
        TransportError::Closed(reason) => assert_eq!(
            reason,
            CloseReason::Peer {
                code: CloseCode::MemberLeft,
                reason: "bye".into()
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_close_tells_peers_and_releases_the_port() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let client = identity(KeyAlgorithm::EcdsaP256, "Client");
    let (s, c, out, inc) = pair(&server, &client, "grp.peergroup").await;
    let addr = s.local_addr();

    // A frame in flight and a recv waiting when the node closes.
    within(out.send(&Frame::new(1, &b"hi"[..]).unwrap()))
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let out = out.clone();
        async move { out.recv().await }
    });

    within(s.close(CloseCode::GroupClosed, BOUND))
        .await
        .unwrap();
    // The port is free: something else can bind it now.
    std::net::UdpSocket::bind(addr).expect("the node's port is released after close");

    assert_eq!(
        within(out.closed()).await.code(),
        Some(CloseCode::GroupClosed)
    );
    let e = within(waiting).await.unwrap().unwrap_err();
    assert!(matches!(e, TransportError::Closed(_)), "{e:?}");
    assert_eq!(
        inc.close_reason(),
        Some(CloseReason::Local {
            code: CloseCode::GroupClosed,
            reason: "node closed".into()
        })
    );
    assert!(within(s.accept()).await.is_none());
    let e = within(s.connect(addr, "grp.peergroup", &client.creds, pin(&[&server])))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::NodeClosed), "{e:?}");
    // Closing twice is fine.
    within(s.close(CloseCode::GroupClosed, BOUND))
        .await
        .unwrap();

    let client_addr = c.local_addr();
    within(c.close(CloseCode::Shutdown, BOUND)).await.unwrap();
    std::net::UdpSocket::bind(client_addr).expect("the client's port is released too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_makes_send_fail_with_stalled() {
    let server = identity(KeyAlgorithm::EcdsaP256, "Server");
    let client = identity(KeyAlgorithm::EcdsaP256, "Client");
    let limits = Limits {
        stream_window: 256 * 1024,
        send_queue_bytes: peergroup_transport::frame::MAX_ENCODED_FRAME_LEN,
        stall_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = node_with(
        serving(&[("grp.peergroup", &server)]),
        pin(&[&client]),
        limits.clone(),
    );
    let c = node_with(Arc::new(NoCredentials), pin(&[]), limits);
    let out = within(c.connect(
        s.local_addr(),
        "grp.peergroup",
        &client.creds,
        pin(&[&server]),
    ))
    .await
    .unwrap();
    let inc = within(s.accept()).await.unwrap(); // and never read from

    let frame = Frame::new(7, vec![0u8; 64 * 1024]).unwrap();
    // Window (256 KiB) + queue (~1 MiB) hold about 20 such frames; 1000 is far beyond.
    let mut sent = 0;
    let error = within(async {
        loop {
            match out.send(&frame).await {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1000, "sends never stalled");
        }
    })
    .await;
    assert!(matches!(error, TransportError::Stalled { .. }), "{error:?}");
    assert_eq!(error.hresult(), hresult::PEER_E_TIMEOUT);
    assert_eq!(within(inc.closed()).await.code(), Some(CloseCode::Stalled));
    assert_eq!(within(out.closed()).await.code(), Some(CloseCode::Stalled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_a_taken_port_is_unable_to_listen() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = Node::bind(
        taken.local_addr().unwrap(),
        NodeConfig::new(Arc::new(NoCredentials), pin(&[])),
    )
    .unwrap_err();
    assert_eq!(e.hresult(), hresult::PEER_E_UNABLE_TO_LISTEN, "{e}");
}
