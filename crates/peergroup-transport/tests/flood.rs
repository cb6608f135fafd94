//! A flood of connection attempts that never complete (as from forged source addresses)
//! does not lock a genuine member out (`src/admission.rs`).
//!
//! The flooders are quinn clients on sockets that send but never receive, from 127.0.0.2 and
//! up: to the node, sources that cannot hear its answers, like forged ones. Their Initials
//! are genuine (our ALPN, the served name), so each one the node takes on holds a handshake
//! slot until it times out. Timeouts here are only upper bounds against hangs.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{
    CertificateDer, CloseCode, CredentialResolver, Credentials, Frame, Limits, NoCredentials, Node,
    NodeConfig, PinnedCertificates, TrustPolicy, ALPN,
};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

/// Upper bound for anything that should finish.
const BOUND: Duration = Duration::from_secs(20);
/// Flooding attempts: over three times the node's handshake slots.
const FLOOD: usize = 200;

/// A socket that sends and never hears anything back.
struct Deaf(Arc<dyn AsyncUdpSocket>);

impl fmt::Debug for Deaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deaf")
    }
}

impl AsyncUdpSocket for Deaf {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }
    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.try_send(transmit)
    }
    fn poll_recv(
        &self,
        _cx: &mut Context,
        _bufs: &mut [IoSliceMut<'_>],
        _meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A quinn client endpoint on a deaf socket at `ip`, with a TLS configuration that would
/// never get past the server's certificate (it never gets that far).
fn deaf_endpoint(ip: [u8; 4]) -> quinn::Endpoint {
    let socket = std::net::UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap();
    let runtime = Arc::new(quinn::TokioRuntime);
    let deaf = Arc::new(Deaf(runtime.wrap_udp_socket(socket).unwrap()));
    let mut endpoint =
        quinn::Endpoint::new_with_abstract_socket(Default::default(), None, deaf, runtime).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

struct Id {
    cert: CertificateDer<'static>,
    creds: Credentials,
}

fn identity(name: &str) -> Id {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert = IdentityCertificate::issue(&key, "transport-test", name).unwrap();
    let cert = CertificateDer::from(cert.der().to_vec());
    let creds = Credentials::from_identity(&key, vec![cert.clone()]).unwrap();
    Id { cert, creds }
}

struct Serving(Credentials);

impl CredentialResolver for Serving {
    fn resolve(&self, name: &str) -> Option<Credentials> {
        (name == "flooded").then(|| self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_handshakes_that_never_complete_does_not_lock_a_member_out() {
    let server = identity("Server");
    let client = identity("Client");
    let trust_client: Arc<dyn TrustPolicy> =
        Arc::new(PinnedCertificates::new([client.cert.clone()]));
    let limits = Limits::default();
    let slots = limits.max_pending_handshakes;
    let s = Node::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig {
            credentials: Arc::new(Serving(server.creds.clone())),
            trust: trust_client,
            limits,
        },
    )
    .unwrap();
    let target = s.local_addr();

    // The flood: every attempt from its own port, spread over 100 addresses.
    let mut flooders = Vec::new();
    let mut attempts = Vec::new();
    for k in 0..FLOOD {
        let e = deaf_endpoint([127, 0, 0, 2 + (k % 100) as u8]);
        attempts.push(e.connect(target, "flooded").unwrap());
        flooders.push(e);
    }
    assert!(FLOOD > 3 * slots);
    // Let the Initials arrive before the member tries (they only need the loopback).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A member connects during the flood and is served.
    let c = Node::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig {
            credentials: Arc::new(NoCredentials),
            trust: Arc::new(PinnedCertificates::new(Vec::<Vec<u8>>::new())),
            limits: Limits::default(),
        },
    )
    .unwrap();
    let trust_server: Arc<dyn TrustPolicy> =
        Arc::new(PinnedCertificates::new([server.cert.clone()]));
    let out = tokio::time::timeout(
        BOUND,
        c.connect(target, "flooded", &client.creds, trust_server),
    )
    .await
    .expect("no hang")
    .expect("the member gets through the flood");
    let inc = tokio::time::timeout(BOUND, s.accept())
        .await
        .expect("no hang")
        .expect("accepted");
    out.send(&Frame::new(1, b"through".to_vec()).unwrap())
        .await
        .unwrap();
    assert_eq!(&inc.recv().await.unwrap().payload()[..], b"through");
    drop(attempts);
    for e in flooders {
        e.close(0u32.into(), b"");
    }
    c.close(CloseCode::Shutdown, BOUND).await.unwrap();
    s.close(CloseCode::Shutdown, BOUND).await.unwrap();
}
