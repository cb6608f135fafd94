//! `cargo xtask bench relay`: what a relay member costs, next to the direct path on the same
//! nodes, on loopback. Prints figures as ratios against the direct run in the same process;
//! asserts none.
//!
//! Three nodes: A and B both connected to R. **Direct**: A dials B at B's address.
//! **Relayed**: A asks R for a tunnel to B (`Node::open_tunnel`), R carries it
//! (`TunnelRequest::relay_to`), B accepts the offer, and A dials B's end of the tunnel: the
//! same end-to-end member connection, R forwarding its ciphertext (as channel datagrams once
//! the tunnel's channel is up, which the bench waits for before measuring). Figures:
//!
//! - **first connection**: from asking for the tunnel to the end-to-end connection being up
//!   (tunnel set-up plus handshake), next to a direct connect;
//! - **throughput**: `BENCH_RELAY_MIB` MiB (default 64) of 1 MiB frames A→B, relayed ÷
//!   direct (the target is ≥ 0.8×);
//! - **CPU per MiB**: the process's CPU time (all three nodes run here) per MiB moved, and
//!   the difference, relayed − direct: about what the relay spends per MiB it carries.
//!
//! This is the loopback floor: no NAT, no link delay, three QUIC stacks on two cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{
    CertificateDer, CloseCode, Connection, CredentialResolver, Credentials, Frame, IncomingTunnel,
    NoCredentials, Node, NodeConfig, PinnedCertificates, TrustPolicy,
};

const NAME: &str = "bench.peergroup";
const B_ID: u64 = 0xB;
const A_ID: u64 = 0xA;
const FRAME: usize = 1024 * 1024;

struct Id {
    cert: CertificateDer<'static>,
    creds: Credentials,
}

fn identity(name: &str) -> Id {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert = IdentityCertificate::issue(&key, "bench", name).unwrap();
    let cert = CertificateDer::from(cert.der().to_vec());
    let creds = Credentials::from_identity(&key, vec![cert.clone()]).unwrap();
    Id { cert, creds }
}

fn pin(ids: &[&Id]) -> Arc<dyn TrustPolicy> {
    Arc::new(PinnedCertificates::new(ids.iter().map(|i| i.cert.clone())))
}

fn serving(id: &Id) -> Arc<dyn CredentialResolver> {
    let table: HashMap<String, Credentials> = [(NAME.to_owned(), id.creds.clone())].into();
    Arc::new(table)
}

fn bind(credentials: Arc<dyn CredentialResolver>, trust: Arc<dyn TrustPolicy>) -> Node {
    Node::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig::new(credentials, trust),
    )
    .unwrap()
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Sends `mib` MiB A→B on `tx`, received on `rx`; returns (wall time, CPU time).
async fn transfer(tx: &Connection, rx: &Connection, mib: usize) -> (Duration, Duration) {
    let payload = Bytes::from(vec![0x5a; FRAME]);
    let (cpu0, t0) = (cpu(), Instant::now());
    let sending = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..mib {
                tx.send(&Frame::new(7, payload.clone()).unwrap())
                    .await
                    .unwrap();
            }
        })
    };
    let mut got = 0;
    while got < mib * FRAME {
        got += rx.recv().await.unwrap().payload().len();
    }
    sending.await.unwrap();
    (t0.elapsed(), cpu().saturating_sub(cpu0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: usize = std::env::var("BENCH_RELAY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (ia, ir, ib) = (identity("A"), identity("R"), identity("B"));
    let a = bind(Arc::new(NoCredentials), pin(&[]));
    let r = bind(serving(&ir), pin(&[&ia, &ib]));
    let b = bind(serving(&ib), pin(&[&ia]));
    let a_to_r = a
        .connect(r.local_addr(), NAME, &ia.creds, pin(&[&ir]))
        .await
        .unwrap();
    r.accept().await.unwrap();
    let b_to_r = b
        .connect(r.local_addr(), NAME, &ib.creds, pin(&[&ir]))
        .await
        .unwrap();
    let r_from_b = r.accept().await.unwrap();
    let _ = &b_to_r;

    // The direct path first.
    let t0 = Instant::now();
    let (direct, direct_in) = tokio::join!(
        a.connect(b.local_addr(), NAME, &ia.creds, pin(&[&ib])),
        b.accept()
    );
    let direct_connect = t0.elapsed();
    let (direct, direct_in) = (direct.unwrap(), direct_in.unwrap());

    // The relayed path: tunnel, then the same handshake through it.
    let t0 = Instant::now();
    let opening = {
        let (a, via) = (a.clone(), a_to_r.clone());
        tokio::spawn(async move { a.open_tunnel(&via, B_ID).await })
    };
    let relaying = {
        let (r, to) = (r.clone(), r_from_b.clone());
        tokio::spawn(async move {
            match r.accept_tunnel().await.unwrap() {
                IncomingTunnel::Request(req) => req.relay_to(&to, A_ID).await.unwrap(),
                IncomingTunnel::Offer(_) => panic!("R was offered a tunnel"),
            }
        })
    };
    match b.accept_tunnel().await.unwrap() {
        IncomingTunnel::Offer(o) => {
            o.accept().unwrap();
        }
        IncomingTunnel::Request(_) => panic!("B was asked to relay"),
    }
    let carried = relaying.await.unwrap();
    let at_b: SocketAddr = opening.await.unwrap().unwrap();
    let (relayed, relayed_in) =
        tokio::join!(a.connect(at_b, NAME, &ia.creds, pin(&[&ib])), b.accept());
    let relayed_connect = t0.elapsed();
    let (relayed, relayed_in) = (relayed.unwrap(), relayed_in.unwrap());
    assert!(relayed.relayed_via().is_some());
    let channel_wait = Instant::now();
    while !(a.tunnels().iter().all(|t| t.channel) && b.tunnels().iter().all(|t| t.channel)) {
        assert!(
            channel_wait.elapsed() < Duration::from_secs(10),
            "no channel"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let channel_up = t0.elapsed();

    // Warm both paths (congestion windows, MTU discovery), then measure each.
    transfer(&direct, &direct_in, 4).await;
    transfer(&relayed, &relayed_in, 4).await;
    let (dw, dc) = transfer(&direct, &direct_in, mib).await;
    let (rw, rc) = transfer(&relayed, &relayed_in, mib).await;
    let rate = |w: Duration| mib as f64 / w.as_secs_f64();
    let per_mib = |c: Duration| c.as_secs_f64() * 1e3 / mib as f64;
    println!("relay bench: loopback, {mib} MiB of 1 MiB frames, three nodes in one process");
    println!(
        "first connection   direct {:>8.3} ms   relayed {:>8.3} ms   ({:.2}x)",
        direct_connect.as_secs_f64() * 1e3,
        relayed_connect.as_secs_f64() * 1e3,
        relayed_connect.as_secs_f64() / direct_connect.as_secs_f64()
    );
    println!(
        "throughput         direct {:>8.1} MiB/s relayed {:>8.1} MiB/s ({:.2}x direct; target >= 0.80x)",
        rate(dw),
        rate(rw),
        rate(rw) / rate(dw)
    );
    println!(
        "CPU per MiB        direct {:>8.2} ms    relayed {:>8.2} ms    (relay's share ~ {:.2} ms/MiB)",
        per_mib(dc),
        per_mib(rc),
        per_mib(rc.saturating_sub(dc))
    );
    println!(
        "channel up         {:>8.3} ms after asking for the tunnel",
        channel_up.as_secs_f64() * 1e3
    );
    let (up, down) = carried.bytes();
    let (cu, cd) = carried.channel_bytes();
    println!(
        "relay carried      {up} bytes A->B ({:.1}% by channel), {down} bytes B->A ({:.1}% by channel)",
        100.0 * cu as f64 / up.max(1) as f64,
        100.0 * cd as f64 / down.max(1) as f64
    );
    for n in [&a, &b, &r] {
        let _ = n.close(CloseCode::Shutdown, Duration::from_secs(5)).await;
    }
}
