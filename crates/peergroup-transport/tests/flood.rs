//! A flood of connection attempts that never complete (as from forged source addresses)
//! does not lock a genuine member out (`src/admission.rs`).
//!
//! The flooders are `testing::DeafClients`: quinn clients on sockets that send but never
//! receive, from 127.0.0.2 and up: to the node, sources that cannot hear its answers, like
//! forged ones. Timeouts here are only upper bounds against hangs.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::testing::DeafClients;
use peergroup_transport::{
    CertificateDer, CloseCode, CredentialResolver, Credentials, Frame, Limits, NoCredentials, Node,
    NodeConfig, PinnedCertificates, TrustPolicy,
};

/// Upper bound for anything that should finish.
const BOUND: Duration = Duration::from_secs(20);
/// Flooding attempts: over three times the node's handshake slots.
const FLOOD: usize = 200;

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
    let sources: Vec<IpAddr> = (2..102u8)
        .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, k)))
        .collect();
    let flood = DeafClients::start(target, "flooded", &sources, FLOOD).unwrap();
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
    drop(flood);
    c.close(CloseCode::Shutdown, BOUND).await.unwrap();
    s.close(CloseCode::Shutdown, BOUND).await.unwrap();
}
