//! Two nodes on 127.0.0.1: the client sends frames, the server echoes each one back, then the
//! client closes with every frame flushed, the server sees its close code, and both nodes shut
//! down (the UDP ports are free again). Mutual TLS with pinned self-signed identities.
//!
//! `cargo run -p peergroup-transport --example echo`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use peergroup_transport::identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{
    CertificateDer, CloseCode, CredentialResolver, Credentials, Frame, NoCredentials, Node,
    NodeConfig, PinnedCertificates, TrustPolicy,
};

/// Upper bound for every step, so a fault ends the example instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);
/// The frame kind this example uses.
const ECHO: u16 = 7;

struct Id {
    cert: CertificateDer<'static>,
    creds: Credentials,
}

fn identity(name: &str) -> Id {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("a key");
    let cert = IdentityCertificate::issue(&key, "echo", name).expect("a certificate");
    let cert = CertificateDer::from(cert.der().to_vec());
    let creds = Credentials::from_identity(&key, vec![cert.clone()]).expect("credentials");
    Id { cert, creds }
}

fn trusting(id: &Id) -> Arc<dyn TrustPolicy> {
    Arc::new(PinnedCertificates::new([id.cert.clone()]))
}

fn node(credentials: Arc<dyn CredentialResolver>, trust: Arc<dyn TrustPolicy>) -> Node {
    let config = NodeConfig::new(credentials, trust);
    Node::bind("127.0.0.1:0".parse().expect("an address"), config).expect("bound")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (server_id, client_id) = (identity("server"), identity("client"));
    // The server answers for the name "echo" with its certificate and trusts the client's.
    let names: HashMap<String, Credentials> =
        HashMap::from([("echo".to_owned(), server_id.creds.clone())]);
    let server = node(Arc::new(names), trusting(&client_id));
    let client = node(Arc::new(NoCredentials), trusting(&server_id));
    println!(
        "server on {}, client on {}",
        server.local_addr(),
        client.local_addr()
    );

    let echo = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.expect("a connection");
            let mut echoed = 0;
            while let Ok(frame) = conn.recv().await {
                conn.send(&frame).await.expect("echoed");
                echoed += 1;
            }
            (echoed, conn.closed().await)
        }
    });

    let conn = tokio::time::timeout(
        BOUND,
        client.connect(
            server.local_addr(),
            "echo",
            &client_id.creds,
            trusting(&server_id),
        ),
    )
    .await
    .expect("connected in time")
    .expect("connected");
    for text in ["hello", "peer", "group"] {
        let frame = Frame::new(ECHO, text.as_bytes().to_vec()).expect("a frame");
        conn.send(&frame).await.expect("sent");
        let back = tokio::time::timeout(BOUND, conn.recv())
            .await
            .expect("answered in time")
            .expect("an answer");
        assert_eq!(
            (back.kind(), back.payload().as_ref()),
            (ECHO, text.as_bytes())
        );
        println!("sent {text:?}, got it back");
    }
    conn.close_flushed(CloseCode::Shutdown, "done", BOUND).await;
    let (echoed, reason) = tokio::time::timeout(BOUND, echo)
        .await
        .expect("the server finished in time")
        .expect("the server task");
    assert_eq!(echoed, 3);
    assert_eq!(reason.code(), Some(CloseCode::Shutdown));
    println!(
        "server echoed {echoed} frames and saw the close code {:?}",
        reason.code()
    );

    client
        .close(CloseCode::Shutdown, BOUND)
        .await
        .expect("client closed");
    server
        .close(CloseCode::Shutdown, BOUND)
        .await
        .expect("server closed");
    println!("both nodes closed");
}
