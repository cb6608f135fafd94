//! `cargo xtask bench connect`: how long an authenticated member takes to connect, next to a
//! raw quinn handshake with the same certificates, on loopback. Prints figures; asserts none.
//!
//! - **member connect**: `Node::connect` with a membership chain (GMC) on both sides, each
//!   side validating the other's chain against the group root in the handshake, plus the
//!   control-stream set-up; done when the connection is returned (accepted by both sides).
//! - **raw quinn**: a quinn endpoint pair with the same certificates and keys, TLS 1.3 with
//!   client authentication whose verifiers check only the handshake signature; done when the
//!   handshake completes.
//!
//! Each sample is one fresh connection, closed before the next. `BENCH_CONNECTS` sets the
//! count (default 300).

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/raw.rs"]
mod raw;

use peergroup_identity::gmc::{validate_chain, GroupRoot, GroupRootCertificate};
use peergroup_transport::{
    CertificateDer, CloseCode, Credentials, Node, NodeConfig, Side, TrustError, TrustPolicy,
};
use raw::{key_der, member, raw_endpoints};

struct Members(GroupRootCertificate);

impl TrustPolicy for Members {
    fn verify_peer(
        &self,
        _: Side,
        _: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), TrustError> {
        validate_chain(&self.0, chain, unix_now())
            .map(|_| ())
            .map_err(|e| TrustError::Untrusted(e.to_string()))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<16} n={:<4} p50={:>8.3} ms  p99={:>8.3} ms  mean={:>8.3} ms  min={:>8.3} ms",
        samples.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
    );
    pct(0.5)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_CONNECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let root = GroupRoot::create("bench", "Bench").unwrap();
    let (a, b) = (member(&root, "server"), member(&root, "client"));
    let trust: Arc<dyn TrustPolicy> = Arc::new(Members(root.certificate().clone()));
    let server_creds = Credentials::new(a.chain.clone(), key_der(&a.key)).unwrap();
    let client_creds = Credentials::new(b.chain.clone(), key_der(&b.key)).unwrap();
    let mut resolver = std::collections::HashMap::new();
    resolver.insert("bench.peergroup".to_owned(), server_creds);
    let server = Arc::new(
        Node::bind(
            "127.0.0.1:0".parse().unwrap(),
            NodeConfig::new(Arc::new(resolver), trust.clone()),
        )
        .unwrap(),
    );
    let client = Node::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig::new(Arc::new(peergroup_transport::NoCredentials), trust.clone()),
    )
    .unwrap();
    let acceptor = {
        let server = server.clone();
        tokio::spawn(async move {
            while let Some(c) = server.accept().await {
                drop(c);
            }
        })
    };
    let addr = server.local_addr();
    // Warm up both paths.
    for _ in 0..10 {
        let c = client
            .connect(addr, "bench.peergroup", &client_creds, trust.clone())
            .await
            .unwrap();
        c.close(CloseCode::Shutdown, "bench");
    }
    let mut member_samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let c = client
            .connect(addr, "bench.peergroup", &client_creds, trust.clone())
            .await
            .unwrap();
        member_samples.push(t.elapsed());
        c.close(CloseCode::Shutdown, "bench");
    }
    let (raw_server, raw_client) = raw_endpoints(&a, &b);
    let raw_addr = raw_server.local_addr().unwrap();
    let raw_acceptor = tokio::spawn(async move {
        while let Some(incoming) = raw_server.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    let _ = conn.closed().await;
                }
            });
        }
    });
    for _ in 0..10 {
        let c = raw_client
            .connect(raw_addr, "bench.peergroup")
            .unwrap()
            .await
            .unwrap();
        c.close(0u32.into(), b"bench");
    }
    let mut raw_samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let c = raw_client
            .connect(raw_addr, "bench.peergroup")
            .unwrap()
            .await
            .unwrap();
        raw_samples.push(t.elapsed());
        c.close(0u32.into(), b"bench");
    }
    println!(
        "connect on loopback, {} connects each ({} cores)",
        n,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let m = report("member connect", member_samples);
    let r = report("raw quinn", raw_samples);
    println!(
        "member/raw p50 ratio: {:.2}x (target: member p50 < 2 ms and within 1.5x)",
        m.as_secs_f64() / r.as_secs_f64()
    );
    acceptor.abort();
    raw_acceptor.abort();
    let _ = client
        .close(CloseCode::Shutdown, Duration::from_secs(2))
        .await;
    let _ = server
        .close(CloseCode::Shutdown, Duration::from_secs(2))
        .await;
}
