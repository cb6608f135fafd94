//! Tunnels on loopback: A and B each connected to R, A reaching B through R.
//!
//! Timeouts here are only upper bounds against hangs; no test asserts how long anything takes.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peergroup_identity::hresult;
use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{
    CertificateDer, CloseCode, CloseReason, Connection, CredentialResolver, Credentials, Frame,
    IncomingTunnel, Limits, NoCredentials, Node, NodeConfig, PinnedCertificates, RelayedTunnel,
    TransportError, TrustPolicy, TunnelInfo, TunnelOffer, TunnelRefusal, TunnelRequest,
    MAX_TUNNELS_PER_CONNECTION, TUNNEL_BACKLOG,
};

/// Upper bound for anything that should finish; a hang fails the test instead of stalling CI.
const BOUND: Duration = Duration::from_secs(30);
/// Upper bound for the bulk transfer through three debug-built QUIC stacks.
const TRANSFER_BOUND: Duration = Duration::from_secs(240);

const NAME: &str = "grp.peergroup";
/// The group layer's ids of A and B (any u64 the relay understands).
const A_ID: u64 = 0xA;
const B_ID: u64 = 0xB;

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("did not finish within the bound")
}

struct Id {
    cert: CertificateDer<'static>,
    creds: Credentials,
}

fn identity(name: &str) -> Id {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert = IdentityCertificate::issue(&key, "tunnel-test", name).unwrap();
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

fn bind(
    addr: &str,
    credentials: Arc<dyn CredentialResolver>,
    trust: Arc<dyn TrustPolicy>,
    limits: &Limits,
) -> Node {
    let config = NodeConfig {
        credentials,
        trust,
        limits: limits.clone(),
    };
    Node::bind(addr.parse().unwrap(), config).unwrap()
}

/// A, R and B; A and B connected to R (they dial it), B serving A for the inner connection.
struct Trio {
    ids: [Id; 3],
    a: Node,
    r: Node,
    b: Node,
    a_to_r: Connection,
    r_from_a: Connection,
    b_to_r: Connection,
    r_from_b: Connection,
}

impl Trio {
    async fn new(limits: Limits) -> Trio {
        Trio::bound("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", limits).await
    }

    /// The nodes bound where asked; A and B dial R at R's port on their own loopback.
    async fn bound(a: &str, r: &str, b: &str, limits: Limits) -> Trio {
        let ids = [identity("A"), identity("R"), identity("B")];
        let [ia, ir, ib] = &ids;
        let a = bind(a, Arc::new(NoCredentials), pin(&[]), &limits);
        let r = bind(r, serving(ir), pin(&[ia, ib]), &limits);
        let b = bind(b, serving(ib), pin(&[ia]), &limits);
        let r_port = r.local_addr().port();
        let r_for = |n: &Node| SocketAddr::new(n.local_addr().ip(), r_port);
        let a_to_r = within(a.connect(r_for(&a), NAME, &ia.creds, pin(&[ir])))
            .await
            .unwrap();
        let r_from_a = within(r.accept()).await.unwrap();
        let b_to_r = within(b.connect(r_for(&b), NAME, &ib.creds, pin(&[ir])))
            .await
            .unwrap();
        let r_from_b = within(r.accept()).await.unwrap();
        Trio {
            ids,
            a,
            r,
            b,
            a_to_r,
            r_from_a,
            b_to_r,
            r_from_b,
        }
    }

    /// A asks R for B, R relays to B, B accepts: A's and B's tunnel ends and R's handle.
    async fn tunnel(&self) -> (SocketAddr, SocketAddr, RelayedTunnel) {
        let opening = {
            let (a, via) = (self.a.clone(), self.a_to_r.clone());
            tokio::spawn(async move { a.open_tunnel(&via, B_ID).await })
        };
        let request = expect_request(within(self.r.accept_tunnel()).await.unwrap());
        assert_eq!(request.target(), B_ID);
        assert_eq!(request.via().id(), self.r_from_a.id());
        let relaying = {
            let to = self.r_from_b.clone();
            tokio::spawn(async move { request.relay_to(&to, A_ID).await })
        };
        let offer = expect_offer(within(self.b.accept_tunnel()).await.unwrap());
        assert_eq!(offer.from(), A_ID);
        assert_eq!(offer.via().id(), self.b_to_r.id());
        let at_b = offer.accept().unwrap();
        let relayed = within(relaying).await.unwrap().unwrap();
        let at_a = within(opening).await.unwrap().unwrap();
        (at_a, at_b, relayed)
    }

    /// The end-to-end connection A dials to `addr`, and B's side of it.
    async fn inner(&self, addr: SocketAddr) -> (Connection, Connection) {
        let [ia, _, ib] = &self.ids;
        let (out, inc) = within(async {
            tokio::join!(
                self.a.connect(addr, NAME, &ia.creds, pin(&[ib])),
                self.b.accept()
            )
        })
        .await;
        (out.unwrap(), inc.unwrap())
    }

    async fn close(self) {
        for node in [&self.a, &self.b, &self.r] {
            let addr = node.local_addr();
            within(node.close(CloseCode::Shutdown, BOUND))
                .await
                .unwrap();
            std::net::UdpSocket::bind(addr).expect("port released after close");
        }
    }
}

fn expect_request(t: IncomingTunnel) -> TunnelRequest {
    match t {
        IncomingTunnel::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn expect_offer(t: IncomingTunnel) -> TunnelOffer {
    match t {
        IncomingTunnel::Offer(o) => o,
        other => panic!("expected an offer, got {other:?}"),
    }
}

fn is_virtual(addr: SocketAddr) -> bool {
    let v4 = match addr {
        SocketAddr::V4(v4) => *v4.ip(),
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().expect("IPv4-mapped"),
    };
    v4.octets()[0] >= 240
}

async fn round_trip(x: &Connection, y: &Connection, kind: u16) {
    within(x.send(&Frame::new(kind, &b"ping"[..]).unwrap()))
        .await
        .unwrap();
    assert_eq!(within(y.recv()).await.unwrap().kind(), kind);
    within(y.send(&Frame::new(kind + 1, &b"pong"[..]).unwrap()))
        .await
        .unwrap();
    assert_eq!(within(x.recv()).await.unwrap().kind(), kind + 1);
}

/// FNV-1a, to compare what was sent with what arrived.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Limits that notice a dead path in seconds: a connection whose tunnel went times out soon.
fn short_idle() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(3),
        keep_alive: Duration::from_secs(1),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_through_a_relay_carries_frames_end_to_end() {
    let t = Trio::new(Limits::default()).await;
    let (at_a, at_b, relayed) = t.tunnel().await;
    assert!(is_virtual(at_a) && at_a.is_ipv4(), "{at_a}");
    assert!(is_virtual(at_b) && at_b.is_ipv4(), "{at_b}");
    // Both ends' channels come up: both probed, the relay confirmed.
    let a_end = TunnelInfo {
        addr: at_a,
        via: t.a_to_r.id(),
        peer_node: B_ID,
        channel: true,
    };
    let b_end = TunnelInfo {
        addr: at_b,
        via: t.b_to_r.id(),
        peer_node: A_ID,
        channel: true,
    };
    within(async {
        while t.a.tunnels() != [a_end.clone()] || t.b.tunnels() != [b_end.clone()] {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(t.r.tunnels().is_empty(), "a relay has no tunnel ends");

    let (out, inc) = t.inner(at_a).await;
    assert_eq!(out.remote_address(), at_a);
    assert_eq!(inc.remote_address(), at_b);
    assert_eq!(out.relayed_via(), Some(t.a_to_r.id()));
    assert_eq!(inc.relayed_via(), Some(t.b_to_r.id()));
    assert_eq!(t.a_to_r.relayed_via(), None);
    assert_eq!(t.r_from_b.relayed_via(), None);
    assert_eq!(inc.peer_chain(), std::slice::from_ref(&t.ids[0].cert));
    round_trip(&out, &inc, 10).await;
    // The control streams to the relay carry on beside the tunnel.
    round_trip(&t.a_to_r, &t.r_from_a, 20).await;

    // The same target on the same connection: the open tunnel, R is not asked again (nobody
    // would answer it).
    assert_eq!(
        within(t.a.open_tunnel(&t.a_to_r, B_ID)).await.unwrap(),
        at_a
    );
    assert_eq!(t.a.tunnels().len(), 1);

    // 16 MiB, one way, through the tunnel.
    const FRAMES: usize = 256;
    const FRAME: usize = 64 * 1024;
    let send = async {
        let mut hash = FNV_START;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..FRAMES {
            let payload: Vec<u8> = (0..FRAME)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            hash = fnv(hash, &payload);
            out.send(&Frame::new(i as u16, payload).unwrap())
                .await
                .unwrap();
        }
        hash
    };
    let recv = async {
        let mut hash = FNV_START;
        for i in 0..FRAMES {
            let frame = inc.recv().await.unwrap();
            assert_eq!(frame.kind(), i as u16);
            assert_eq!(frame.payload().len(), FRAME);
            hash = fnv(hash, frame.payload());
        }
        hash
    };
    let (sent, received) = tokio::time::timeout(TRANSFER_BOUND, async { tokio::join!(send, recv) })
        .await
        .expect("transfer did not finish within the bound");
    assert_eq!(sent, received, "the transfer arrived intact");
    let (up, down) = relayed.bytes();
    assert!(up > (FRAMES * FRAME) as u64, "relayed {up} bytes up");
    assert!(down > 0);
    // The channel carried it: the streams only what went before the channel was up.
    let (channel_up, channel_down) = relayed.channel_bytes();
    assert!(
        channel_up > (FRAMES * FRAME) as u64,
        "{channel_up} of {up} bytes up by channel"
    );
    assert!(channel_down > 0);
    assert!(!relayed.is_ended());
    t.close().await;
    within(relayed.ended()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_requester() {
    let t = Trio::new(Limits::default()).await;
    let open = || {
        let (a, via) = (t.a.clone(), t.a_to_r.clone());
        tokio::spawn(async move { a.open_tunnel(&via, B_ID).await })
    };

    // The relay refuses.
    let opening = open();
    expect_request(within(t.r.accept_tunnel()).await.unwrap()).refuse(TunnelRefusal::NotAllowed);
    let e = within(opening).await.unwrap().unwrap_err();
    assert!(
        matches!(e, TransportError::TunnelRefused(TunnelRefusal::NotAllowed)),
        "{e:?}"
    );
    assert_eq!(e.hresult(), hresult::PEER_E_CONNECTION_FAILED);

    // The target refuses: the relay learns its answer, the requester that the target refused.
    let opening = open();
    let request = expect_request(within(t.r.accept_tunnel()).await.unwrap());
    let relaying = {
        let to = t.r_from_b.clone();
        tokio::spawn(async move { request.relay_to(&to, A_ID).await })
    };
    expect_offer(within(t.b.accept_tunnel()).await.unwrap()).refuse(TunnelRefusal::NotAllowed);
    let e = within(relaying).await.unwrap().unwrap_err();
    assert!(
        matches!(e, TransportError::TunnelRefused(TunnelRefusal::NotAllowed)),
        "{e:?}"
    );
    let e = within(opening).await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::TunnelRefused(TunnelRefusal::TargetRefused)
        ),
        "{e:?}"
    );

    // A request dropped unanswered is refused as busy.
    let opening = open();
    drop(within(t.r.accept_tunnel()).await.unwrap());
    let e = within(opening).await.unwrap().unwrap_err();
    assert!(
        matches!(e, TransportError::TunnelRefused(TunnelRefusal::Busy)),
        "{e:?}"
    );

    assert!(t.a.tunnels().is_empty() && t.b.tunnels().is_empty());
    // None of it hurt the connections.
    round_trip(&t.a_to_r, &t.r_from_a, 30).await;
    round_trip(&t.b_to_r, &t.r_from_b, 40).await;
    t.close().await;
}

/// The extra tunnel stream waits for a free one (QUIC stream credit); it would fail with
/// `ConnectFailed` if none freed within the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_max_tunnels_per_connection_wait_for_a_free_stream() {
    let t = Trio::new(Limits::default()).await;
    let n = u64::from(MAX_TUNNELS_PER_CONNECTION);
    let openings: Vec<_> = (1..=n + 1)
        .map(|target| {
            let (a, via) = (t.a.clone(), t.a_to_r.clone());
            tokio::spawn(async move { a.open_tunnel(&via, target).await })
        })
        .collect();
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(expect_request(within(t.r.accept_tunnel()).await.unwrap()));
    }
    // Every tunnel stream is taken and one more waits: the control stream still works.
    round_trip(&t.a_to_r, &t.r_from_a, 50).await;
    round_trip(&t.r_from_a, &t.a_to_r, 60).await;
    let mut targets: BTreeSet<u64> = held.iter().map(TunnelRequest::target).collect();
    held.remove(0).refuse(TunnelRefusal::NotAllowed);
    // The freed stream lets the waiting one through.
    let last = expect_request(within(t.r.accept_tunnel()).await.unwrap());
    targets.insert(last.target());
    assert_eq!(targets, (1..=n + 1).collect());
    last.refuse(TunnelRefusal::NotAllowed);
    for request in held {
        request.refuse(TunnelRefusal::NotAllowed);
    }
    for opening in openings {
        let e = within(opening).await.unwrap().unwrap_err();
        assert!(
            matches!(e, TransportError::TunnelRefused(TunnelRefusal::NotAllowed)),
            "{e:?}"
        );
    }
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_backlog_are_refused_busy() {
    let t = Trio::new(Limits::default()).await;
    let [ia, ir, _] = &t.ids;
    // Enough connections from A to R for more streams than the backlog holds.
    let per_conn = MAX_TUNNELS_PER_CONNECTION as usize;
    let conns = TUNNEL_BACKLOG / per_conn + 1;
    let mut via = vec![t.a_to_r.clone()];
    for _ in 1..conns {
        via.push(
            within(t.a.connect(t.r.local_addr(), NAME, &ia.creds, pin(&[ir])))
                .await
                .unwrap(),
        );
        within(t.r.accept()).await.unwrap();
    }
    let total = conns * per_conn;
    let (tx, mut results) = tokio::sync::mpsc::unbounded_channel();
    for (c, conn) in via.iter().enumerate() {
        for s in 0..per_conn {
            let (a, conn, tx) = (t.a.clone(), conn.clone(), tx.clone());
            let target = (c * per_conn + s) as u64;
            tokio::spawn(async move {
                let _ = tx.send(a.open_tunnel(&conn, target).await);
            });
        }
    }
    let refused = |r: &peergroup_transport::Result<SocketAddr>, why| matches!(r, Err(TransportError::TunnelRefused(w)) if *w == why);
    // Nobody takes from the backlog yet: everything beyond it is refused at once.
    let extra = total - TUNNEL_BACKLOG;
    for _ in 0..extra {
        let r = within(results.recv()).await.unwrap();
        assert!(refused(&r, TunnelRefusal::Busy), "{r:?}");
    }
    for _ in 0..TUNNEL_BACKLOG {
        within(t.r.accept_tunnel())
            .await
            .unwrap()
            .refuse(TunnelRefusal::NotAllowed);
    }
    for _ in 0..TUNNEL_BACKLOG {
        let r = within(results.recv()).await.unwrap();
        assert!(refused(&r, TunnelRefusal::NotAllowed), "{r:?}");
    }
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_relays_connection_to_the_target_ends_the_tunnel() {
    let t = Trio::new(short_idle()).await;
    let (at_a, _at_b, relayed) = t.tunnel().await;
    let (out, inc) = t.inner(at_a).await;
    round_trip(&out, &inc, 70).await;

    t.r_from_b.close(CloseCode::Shutdown, "relay leaves B");
    within(relayed.ended()).await;
    // Both ends go, and so, for want of packets, does the connection through them.
    within(async {
        while !(t.a.tunnels().is_empty() && t.b.tunnels().is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(within(out.closed()).await, CloseReason::TimedOut);
    assert_eq!(within(inc.closed()).await, CloseReason::TimedOut);
    // A's connection to R is untouched.
    round_trip(&t.a_to_r, &t.r_from_a, 80).await;
    // A tunnel end gone, its address leads nowhere: a new dial to it fails.
    let [ia, _, ib] = &t.ids;
    let e = within(t.a.connect(at_a, NAME, &ia.creds, pin(&[ib])))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::ConnectFailed { .. }), "{e:?}");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_closes_a_tunnel_ends_it_at_both_ends_and_frees_its_channels() {
    let t = Trio::new(short_idle()).await;
    let (at_a, _at_b, relayed) = t.tunnel().await;
    let (out, inc) = t.inner(at_a).await;
    round_trip(&out, &inc, 110).await;
    relayed.close();
    within(relayed.ended()).await;
    assert!(relayed.is_ended());
    // The ends see their streams reset and go; the connection through them times out.
    within(async {
        while !(t.a.tunnels().is_empty() && t.b.tunnels().is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(within(out.closed()).await, CloseReason::TimedOut);
    // Both member connections to R are untouched, and R carries a new tunnel.
    round_trip(&t.a_to_r, &t.r_from_a, 120).await;
    let (at_a, _, again) = t.tunnel().await;
    let (out, inc) = t.inner(at_a).await;
    round_trip(&out, &inc, 130).await;
    assert!(!again.is_ended());
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_node_gets_ipv4_mapped_virtual_addresses() {
    // A on IPv6 loopback, B on IPv4 loopback, R dual-stack for both.
    let t = Trio::bound("[::1]:0", "[::]:0", "127.0.0.1:0", Limits::default()).await;
    let (at_a, at_b, _relayed) = t.tunnel().await;
    assert!(at_a.is_ipv6() && is_virtual(at_a), "{at_a}");
    assert!(at_b.is_ipv4() && is_virtual(at_b), "{at_b}");
    let (out, inc) = t.inner(at_a).await;
    assert_eq!(out.remote_address(), at_a);
    assert_eq!(out.relayed_via(), Some(t.a_to_r.id()));
    assert_eq!(inc.relayed_via(), Some(t.b_to_r.id()));
    round_trip(&out, &inc, 90).await;
    // The IPv4 form of the same address is the same tunnel.
    let SocketAddr::V6(v6) = at_a else {
        unreachable!()
    };
    let v4 = SocketAddr::new(v6.ip().to_ipv4_mapped().unwrap().into(), v6.port());
    let (out2, inc2) = t.inner(v4).await;
    assert_eq!(out2.relayed_via(), Some(t.a_to_r.id()));
    round_trip(&out2, &inc2, 100).await;
    assert_eq!(t.a.tunnels().len(), 1);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_tunnel_ends_after_the_idle_timeout() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_millis(500),
        ..Limits::default()
    };
    let t = Trio::new(limits).await;
    let (at_a, _at_b, relayed) = t.tunnel().await;
    // Nothing is sent through it: both ends go, and with them the relayed streams.
    within(relayed.ended()).await;
    within(async {
        while !(t.a.tunnels().is_empty() && t.b.tunnels().is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The member connections stay (keep-alives), and a new tunnel gets a new address.
    round_trip(&t.a_to_r, &t.r_from_a, 110).await;
    let (again, _, _) = t.tunnel().await;
    assert_ne!(again, at_a);
    t.close().await;
}
