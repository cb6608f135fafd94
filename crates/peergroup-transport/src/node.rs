//! The node: one QUIC endpoint (one UDP socket) that accepts and makes connections, and the
//! tunnels that reach nodes it cannot route to (`crate::tunnel`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::admission::{Admission, Verdict};
use crate::close::CloseCode;
use crate::connection::{self, Connection, Established, StreamSetupError};
use crate::credentials::{CredentialResolver, Credentials};
use crate::error::{Result, TransportError};
use crate::frame::MAX_ENCODED_FRAME_LEN;
use crate::trust::{Side, TrustPolicy};
use crate::tunnel::{self, Hub, IncomingTunnel, TunnelInfo};
use crate::{socket, tls};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bounds and timeouts of a node. Every queue the transport keeps is bounded by one of
/// these; the defaults suit a group over the Internet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a handshake (TLS plus control stream set-up) may take, each way; also how long
    /// a tunnel stream may take for its header, and an opener for its answer.
    pub handshake_timeout: Duration,
    /// A connection that hears nothing for this long is closed ([`CloseReason::TimedOut`]);
    /// a tunnel end that carries no datagram either way for this long ends. The default
    /// (8 s) notices a dead peer within seconds; with a keep-alive every 2 s a lossy link
    /// has four round trips (and their retransmissions) per period to be heard on.
    ///
    /// [`CloseReason::TimedOut`]: crate::CloseReason::TimedOut
    pub idle_timeout: Duration,
    /// How often an idle connection sends a keep-alive; below `idle_timeout`.
    pub keep_alive: Duration,
    /// QUIC flow-control window of the control stream and of each tunnel stream, in bytes:
    /// how much a peer may send before we read it, and how much we may have in flight before
    /// the peer reads. The connection as a whole gets one such window per possible stream
    /// (`1 + MAX_TUNNELS_PER_CONNECTION`), so tunnels never take the control stream's.
    pub stream_window: u32,
    /// Bound of each connection's send queue, in bytes; at least [`MAX_ENCODED_FRAME_LEN`].
    pub send_queue_bytes: usize,
    /// How long a send waits for room in a full queue before the peer is declared stalled.
    pub stall_timeout: Duration,
    /// Incoming handshakes in progress at once; more are refused.
    pub max_pending_handshakes: usize,
    /// Accepted connections waiting for [`Node::accept`]; handshakes wait while it is full.
    pub accept_backlog: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(8),
            keep_alive: Duration::from_secs(2),
            stream_window: 2 * 1024 * 1024,
            send_queue_bytes: 4 * 1024 * 1024,
            stall_timeout: Duration::from_secs(10),
            max_pending_handshakes: 64,
            accept_backlog: 64,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(TransportError::InvalidConfig(what.to_owned()));
        if self.send_queue_bytes < MAX_ENCODED_FRAME_LEN
            || self.send_queue_bytes > u32::MAX as usize
        {
            return bad("send_queue_bytes must hold one largest frame and fit in 32 bits");
        }
        if self.keep_alive >= self.idle_timeout {
            return bad("keep_alive must be shorter than idle_timeout");
        }
        if self.stream_window == 0 || self.max_pending_handshakes == 0 || self.accept_backlog == 0 {
            return bad("windows and backlogs must not be zero");
        }
        if self.handshake_timeout.is_zero() || self.stall_timeout.is_zero() {
            return bad("timeouts must not be zero");
        }
        Ok(())
    }
}

/// What a node needs from the group layer: how to answer as a server, whom to trust.
pub struct NodeConfig {
    /// Server-side credentials, chosen per connection by SNI.
    pub credentials: Arc<dyn CredentialResolver>,
    /// Which clients may connect (checked in the handshake, without the SNI; see
    /// [`TrustPolicy`]).
    pub trust: Arc<dyn TrustPolicy>,
    /// Bounds and timeouts.
    pub limits: Limits,
}

impl NodeConfig {
    /// A configuration with the default [`Limits`].
    pub fn new(credentials: Arc<dyn CredentialResolver>, trust: Arc<dyn TrustPolicy>) -> Self {
        NodeConfig {
            credentials,
            trust,
            limits: Limits::default(),
        }
    }
}

/// The node's open connections by id.
pub(crate) struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Connection>>,
}

impl Registry {
    fn new() -> Self {
        Registry {
            next_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn insert(&self, conn: Connection) {
        lock(&self.conns).insert(conn.id(), conn);
    }

    pub(crate) fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    fn get(&self, id: u64) -> Option<Connection> {
        lock(&self.conns).get(&id).cloned()
    }

    fn all(&self) -> Vec<Connection> {
        let mut all: Vec<Connection> = lock(&self.conns).values().cloned().collect();
        all.sort_by_key(Connection::id);
        all
    }
}

/// A Peergroup node: one UDP socket, one QUIC endpoint, serving and making connections.
///
/// Cheap to clone; all clones are the same node. [`Node::close`] is the way to end it; dropping
/// the last clone without closing closes every connection with [`CloseCode::Shutdown`] but
/// does not wait for peers to be told.
///
/// ```no_run
/// # async fn demo(credentials: peergroup_transport::Credentials,
/// #               trust: std::sync::Arc<dyn peergroup_transport::TrustPolicy>,
/// #               resolver: std::sync::Arc<dyn peergroup_transport::CredentialResolver>,
/// #               peer: std::net::SocketAddr) -> peergroup_transport::Result<()> {
/// use peergroup_transport::{default_listen_addr, CloseCode, Frame, Node, NodeConfig};
/// use std::time::Duration;
/// let node = Node::bind(default_listen_addr()?, NodeConfig::new(resolver, trust.clone()))?;
/// let conn = node.connect(peer, "chat-5f2a.peergroup", &credentials, trust).await?;
/// conn.send(&Frame::new(1, &b"hello"[..])?).await?;
/// let answer = conn.recv().await?;
/// # let _ = answer;
/// node.close(CloseCode::GroupClosed, Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    endpoint: Mutex<Option<quinn::Endpoint>>,
    local_addr: SocketAddr,
    limits: Limits,
    registry: Arc<Registry>,
    hub: Arc<Hub>,
    accepted: tokio::sync::Mutex<mpsc::Receiver<Connection>>,
    accept_task: JoinHandle<()>,
    released: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        // Fallback only: Node::close is the bounded, explicit way.
        if let Some(endpoint) = lock(&self.endpoint).take() {
            endpoint.close(
                quinn::VarInt::from_u32(CloseCode::Shutdown.code()),
                b"node dropped",
            );
        }
        self.hub.shutdown();
        self.accept_task.abort();
    }
}

impl Node {
    /// Binds a UDP socket on `addr` and starts serving: see [`default_listen_addr`] for the
    /// address to use. Must be called inside a tokio runtime.
    ///
    /// Fails with [`TransportError::Bind`] (`PEER_E_UNABLE_TO_LISTEN`) when the address cannot
    /// be bound, [`TransportError::InvalidConfig`] for out-of-range limits.
    ///
    /// [`default_listen_addr`]: crate::default_listen_addr
    pub fn bind(addr: SocketAddr, config: NodeConfig) -> Result<Node> {
        config.limits.check()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TransportError::Internal(
                "Node::bind must be called inside a tokio runtime".into(),
            ));
        }
        let server = tls::server_config(config.credentials, config.trust, &config.limits)?;
        let udp = socket::bind(addr)?;
        let local_addr = udp
            .local_addr()
            .map_err(|source| TransportError::Bind { addr, source })?;
        let table = Arc::new(tunnel::Table::new(local_addr.is_ipv6()));
        let (port, inbound) = tunnel::Port::new(table.clone());
        let hub = Hub::new(table, inbound, &config.limits);
        let runtime = Arc::new(quinn::TokioRuntime);
        let (udp, released) = socket::wrap(&*runtime, udp, port)
            .map_err(|source| TransportError::Bind { addr, source })?;
        let mut endpoint_config = quinn::EndpointConfig::default();
        // Peers must never clear QUIC's fixed bit towards us: a first byte without it is how
        // the socket wrapper tells channel datagrams (and later kinds of ours) from QUIC.
        endpoint_config.grease_quic_bit(false);
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(endpoint_config, Some(server), udp, runtime)
                .map_err(|source| TransportError::Bind { addr, source })?;
        let registry = Arc::new(Registry::new());
        let (tx, rx) = mpsc::channel(config.limits.accept_backlog);
        let accept_task = tokio::spawn(accept_loop(
            endpoint.clone(),
            config.limits.clone(),
            registry.clone(),
            hub.clone(),
            tx,
        ));
        tracing::debug!(%local_addr, "node listening");
        Ok(Node {
            inner: Arc::new(NodeInner {
                endpoint: Mutex::new(Some(endpoint)),
                local_addr,
                limits: config.limits,
                registry,
                hub,
                accepted: tokio::sync::Mutex::new(rx),
                accept_task,
                released: Mutex::new(Some(released)),
            }),
        })
    }

    /// The address the node is bound to (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The node's limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Connects to `addr`, asking for `server_name` (SNI), presenting `credentials`, and
    /// accepting the server's chain only if `trust` does.
    ///
    /// `server_name` must be a DNS name (letters, digits, hyphens, dot-separated labels; not an
    /// IP address): the group layer derives one per group. Returns once the server has
    /// accepted our certificate too, so a returned connection is authenticated both ways.
    ///
    /// Errors: [`TransportError::InvalidServerName`]; [`TransportError::NotAuthenticated`] if
    /// either side's policy refused the other's chain; [`TransportError::Refused`] if the
    /// server has no credentials for the name; [`TransportError::ConnectFailed`] for no answer
    /// within the handshake timeout and other failures; [`TransportError::NodeClosed`].
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        credentials: &Credentials,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<Connection> {
        let id = self.reserve_connection_id();
        self.connect_as(id, addr, server_name, credentials, trust)
            .await
    }

    /// A connection id no connection of this node has or will be given: for a caller that
    /// must name a connection before it exists (Windows' `PeerGroupOpenDirectConnection`
    /// returns the id at once and reports the outcome later). Pass it to
    /// [`Node::connect_as`].
    pub fn reserve_connection_id(&self) -> u64 {
        self.inner.registry.next_id()
    }

    /// [`Node::connect`], giving the connection the id `id` from
    /// [`Node::reserve_connection_id`]. Ids not reserved on this node may clash with others.
    pub async fn connect_as(
        &self,
        id: u64,
        addr: SocketAddr,
        server_name: &str,
        credentials: &Credentials,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<Connection> {
        tls::check_server_name(server_name)?;
        let config = tls::client_config(credentials, trust, &self.inner.limits)?;
        let connecting = {
            let endpoint = lock(&self.inner.endpoint);
            let endpoint = endpoint.as_ref().ok_or(TransportError::NodeClosed)?;
            endpoint
                .connect_with(config, addr, server_name)
                .map_err(|e| match e {
                    quinn::ConnectError::EndpointStopping => TransportError::NodeClosed,
                    quinn::ConnectError::InvalidServerName(name) => {
                        TransportError::InvalidServerName(name)
                    }
                    other => TransportError::ConnectFailed {
                        addr,
                        reason: other.to_string(),
                    },
                })?
        };
        let handshake = async {
            let quic = connecting
                .await
                .map_err(|e| connection::connect_error(addr, e))?;
            match connection::open_control(&quic).await {
                Ok((send, recv)) => Ok((quic, send, recv)),
                Err(StreamSetupError::Lost(e)) => Err(connection::connect_error(addr, e)),
                Err(StreamSetupError::Violation(reason)) => {
                    quic.close(
                        quinn::VarInt::from_u32(CloseCode::ProtocolViolation.code()),
                        reason.as_bytes(),
                    );
                    Err(TransportError::ConnectFailed { addr, reason })
                }
            }
        };
        let (quic, send, recv) =
            match tokio::time::timeout(self.inner.limits.handshake_timeout, handshake).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(TransportError::ConnectFailed {
                        addr,
                        reason: format!(
                            "no complete handshake within {:?}",
                            self.inner.limits.handshake_timeout
                        ),
                    })
                }
            };
        let peer_chain = peer_chain(&quic);
        Ok(Connection::start(
            Established {
                quic,
                send,
                recv,
                server_name: server_name.to_owned(),
                peer_chain,
                peer_side: Side::Server,
            },
            id,
            &self.inner.limits,
            &self.inner.registry,
            &self.inner.hub,
        ))
    }

    /// The next connection a peer made to us, authenticated and with its control stream up;
    /// `None` once the node is closed.
    ///
    /// The handshake checked the client's chain with the node's [`TrustPolicy`] without the
    /// SNI; check [`Connection::server_name`] against [`Connection::peer_chain`] before
    /// trusting the pair, and close with [`CloseCode::NotAuthorized`] if they do not belong
    /// together. A peer refused in the handshake never shows up here.
    pub async fn accept(&self) -> Option<Connection> {
        self.inner.accepted.lock().await.recv().await
    }

    /// The open connection with that id, or [`TransportError::UnknownConnection`]
    /// (`PEER_E_CONNECTION_NOT_FOUND`).
    pub fn connection(&self, id: u64) -> Result<Connection> {
        self.inner
            .registry
            .get(id)
            .ok_or(TransportError::UnknownConnection(id))
    }

    /// Every open connection, by id.
    pub fn connections(&self) -> Vec<Connection> {
        self.inner.registry.all()
    }

    /// Asks the relay at the other end of `via` for a tunnel to node `target` (an id of the
    /// group layer's choosing), and returns the tunnel end's virtual address.
    ///
    /// Connect to that address with [`Node::connect`] as to a real one: the connection runs
    /// end to end through the tunnel (the relay sees only its ciphertext), and several
    /// connections may share the tunnel. A tunnel we opened on `via` to `target` that is still
    /// open is returned again, without asking the relay. The request waits at most the
    /// handshake timeout, including the wait for a free tunnel stream when
    /// [`MAX_TUNNELS_PER_CONNECTION`](crate::MAX_TUNNELS_PER_CONNECTION) are open on `via`.
    ///
    /// Errors: [`TransportError::TunnelRefused`] with the relay's answer, or `Busy` when this
    /// node has [`MAX_TUNNEL_ENDS`](crate::MAX_TUNNEL_ENDS) ends open;
    /// [`TransportError::ConnectFailed`] for no answer in time or a failed stream;
    /// [`TransportError::UnknownConnection`] if `via` is not this node's;
    /// [`TransportError::Closed`], [`TransportError::NodeClosed`].
    pub async fn open_tunnel(&self, via: &Connection, target: u64) -> Result<SocketAddr> {
        if !self
            .inner
            .registry
            .get(via.id())
            .is_some_and(|c| c.same_as(via))
        {
            return Err(match via.close_reason() {
                Some(reason) => TransportError::Closed(reason),
                None => TransportError::UnknownConnection(via.id()),
            });
        }
        self.inner.hub.open_tunnel(via, target).await
    }

    /// The next tunnel request or offer a peer sent; `None` once the node is closed.
    ///
    /// At most [`TUNNEL_BACKLOG`](crate::TUNNEL_BACKLOG) wait; more are refused with
    /// [`TunnelRefusal::Busy`](crate::TunnelRefusal::Busy). Answer each soon: the opener waits
    /// at most its handshake timeout.
    pub async fn accept_tunnel(&self) -> Option<IncomingTunnel> {
        self.inner.hub.accept().await
    }

    /// Sends a punch datagram to each of `addrs` from this node's socket: the first step of
    /// a coordinated punch, before dialling them, so this side's NAT lets their packets in.
    /// Tunnel (virtual) addresses are skipped.
    pub fn punch(&self, addrs: &[SocketAddr]) {
        self.inner.hub.table.punch(addrs);
    }

    /// The open tunnel ends, by virtual address.
    pub fn tunnels(&self) -> Vec<TunnelInfo> {
        self.inner.hub.table.list()
    }

    /// Closes the node: every connection with `code`, then waits (at most `timeout`) until the
    /// peers were told and the UDP socket is closed.
    ///
    /// Every tunnel end and relayed tunnel ends too, and [`Node::accept_tunnel`] returns
    /// `None`. When this returns `Ok`, the port is free again. On
    /// [`TransportError::CloseTimedOut`] (`PEER_E_TIMEOUT`) the connections are closed but
    /// some peer may not have been told; the socket goes when the last QUIC task ends. A
    /// second call returns `Ok` at once.
    pub async fn close(&self, code: CloseCode, timeout: Duration) -> Result<()> {
        let Some(endpoint) = lock(&self.inner.endpoint).take() else {
            return Ok(());
        };
        let released = lock(&self.inner.released).take();
        let conns = self.inner.registry.all();
        for conn in &conns {
            conn.note_local_close(code, "node closed");
        }
        endpoint.close(quinn::VarInt::from_u32(code.code()), b"node closed");
        self.inner.accept_task.abort();
        // Every tunnel task ends; their streams hold QUIC state (and so the socket).
        self.inner.hub.shutdown();
        let hub = self.inner.hub.clone();
        // Connections accepted but not yet taken are closed now; none is handed out after this.
        // (An `accept` already waiting holds the lock; it gets `None` when the senders go.)
        if let Ok(mut accepted) = self.inner.accepted.try_lock() {
            accepted.close();
            while accepted.try_recv().is_ok() {}
        }
        let wait = async move {
            // Tunnel requests and offers nobody took are dropped.
            hub.drain().await;
            // Every connection has sent its close and drained.
            endpoint.wait_idle().await;
            // Every connection has dropped its QUIC handles.
            for conn in &conns {
                conn.closed().await;
            }
            drop(endpoint);
            // The endpoint driver and the last connection task are gone, and so is the socket.
            if let Some(released) = released {
                let _ = released.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| TransportError::CloseTimedOut {
                what: "closing the node",
                waited: timeout,
            })?;
        tracing::debug!(local_addr = %self.inner.local_addr, "node closed");
        Ok(())
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

/// The peer's certificate chain as the handshake left it.
fn peer_chain(quic: &quinn::Connection) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    quic.peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .map(|chain| *chain)
        .unwrap_or_default()
}

/// Accepts incoming connections, each handshake in its own task, at most
/// `max_pending_handshakes` at once, under the flood rules of [`crate::admission`].
async fn accept_loop(
    endpoint: quinn::Endpoint,
    limits: Limits,
    registry: Arc<Registry>,
    hub: Arc<Hub>,
    tx: mpsc::Sender<Connection>,
) {
    let admission = Arc::new(Admission::new(limits.max_pending_handshakes));
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let slot = match admission.judge(remote, incoming.remote_address_validated()) {
            Verdict::Accept(slot) => slot,
            Verdict::Retry => {
                // quinn refuses a second Retry itself (the source validated already).
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                admission.note(remote, "asked to validate its address (Retry)");
                continue;
            }
            Verdict::Refuse(why) => {
                incoming.refuse();
                admission.note(remote, why);
                continue;
            }
        };
        let (limits, registry, hub, tx, admission) = (
            limits.clone(),
            registry.clone(),
            hub.clone(),
            tx.clone(),
            admission.clone(),
        );
        tokio::spawn(async move {
            match accept_one(incoming, &limits, &registry, &hub).await {
                Ok(conn) => {
                    // Holds the handshake slot while the backlog is full.
                    if tx.send(conn.clone()).await.is_err() {
                        conn.close(CloseCode::Shutdown, "node closed");
                    }
                }
                Err(e) => {
                    // A refused certificate, a timeout: worth a warning, rate-limited.
                    tracing::debug!(%remote, error = %e, "incoming connection failed");
                    admission.note(remote, "failed");
                }
            }
            drop(slot);
        });
    }
}

/// One incoming handshake, bounded by the handshake timeout.
async fn accept_one(
    incoming: quinn::Incoming,
    limits: &Limits,
    registry: &Arc<Registry>,
    hub: &Arc<Hub>,
) -> Result<Connection> {
    let addr = incoming.remote_address();
    let handshake = async {
        let quic = incoming
            .accept()
            .map_err(|e| connection::connect_error(addr, e))?
            .await
            .map_err(|e| connection::connect_error(addr, e))?;
        match connection::accept_control(&quic).await {
            Ok((send, recv)) => Ok((quic, send, recv)),
            Err(StreamSetupError::Lost(e)) => Err(connection::connect_error(addr, e)),
            Err(StreamSetupError::Violation(reason)) => {
                quic.close(
                    quinn::VarInt::from_u32(CloseCode::ProtocolViolation.code()),
                    reason.as_bytes(),
                );
                Err(TransportError::ConnectFailed { addr, reason })
            }
        }
    };
    let (quic, send, recv) = tokio::time::timeout(limits.handshake_timeout, handshake)
        .await
        .map_err(|_| TransportError::ConnectFailed {
            addr,
            reason: "handshake timed out".into(),
        })??;
    let server_name = quic
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name)
        .unwrap_or_default();
    Ok(Connection::start(
        Established {
            peer_chain: peer_chain(&quic),
            quic,
            send,
            recv,
            server_name,
            peer_side: Side::Client,
        },
        registry.next_id(),
        limits,
        registry,
        hub,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::NoCredentials;
    use crate::frame::FrameError;
    use crate::trust::PinnedCertificates;
    use crate::CloseReason;
    use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
    use rustls_pki_types::CertificateDer;

    const BOUND: Duration = Duration::from_secs(20);

    fn identity() -> (PrivateKey, CertificateDer<'static>) {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = IdentityCertificate::issue(&key, "t", "T").unwrap();
        (key, CertificateDer::from(cert.der().to_vec()))
    }

    fn creds(key: &PrivateKey, cert: &CertificateDer<'static>) -> Credentials {
        Credentials::from_identity(key, vec![cert.clone()]).unwrap()
    }

    /// A server serving "grp" that trusts `client`, and a client node.
    fn nodes(
        server: &(PrivateKey, CertificateDer<'static>),
        client: &CertificateDer<'static>,
    ) -> (Node, Node) {
        let table: HashMap<String, Credentials> =
            [("grp".to_owned(), creds(&server.0, &server.1))].into();
        let s = Node::bind(
            "127.0.0.1:0".parse().unwrap(),
            NodeConfig::new(Arc::new(table), Arc::new(PinnedCertificates::new([client]))),
        )
        .unwrap();
        let c = Node::bind(
            "127.0.0.1:0".parse().unwrap(),
            NodeConfig::new(
                Arc::new(NoCredentials),
                Arc::new(PinnedCertificates::default()),
            ),
        )
        .unwrap();
        (s, c)
    }

    /// A raw QUIC connection from `c` to `s`, past the handshake, control stream not set up.
    async fn raw_connect(
        c: &Node,
        s: &Node,
        credentials: &Credentials,
        server_cert: &CertificateDer<'static>,
    ) -> std::result::Result<quinn::Connection, quinn::ConnectionError> {
        let trust = Arc::new(PinnedCertificates::new([server_cert]));
        let config = tls::client_config(credentials, trust, c.limits()).unwrap();
        let endpoint = lock(&c.inner.endpoint).clone().unwrap();
        endpoint
            .connect_with(config, s.local_addr(), "grp")
            .unwrap()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_without_the_key_of_its_certificate_fails_the_signature_check() {
        let server = identity();
        let (victim_key, victim_cert) = identity();
        let (thief_key, _) = identity();
        let (s, c) = nodes(&server, &victim_cert);
        // The thief presents the victim's (trusted) certificate but signs with its own key;
        // Credentials::new would refuse the pair, so build it behind its back.
        let signer = tls::provider()
            .key_provider
            .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(
                thief_key.pkcs8_der().to_vec().into(),
            ))
            .unwrap();
        let forged = Credentials::from_certified_key(rustls::sign::CertifiedKey::new(
            vec![victim_cert.clone()],
            signer,
        ));
        let e = tokio::time::timeout(
            BOUND,
            c.connect(
                s.local_addr(),
                "grp",
                &forged,
                Arc::new(PinnedCertificates::new([&server.1])),
            ),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            matches!(e, TransportError::NotAuthenticated { .. }),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("error 51"),
            "decrypt_error expected: {e}"
        );
        // The real owner of the certificate gets in.
        let ok = c
            .connect(
                s.local_addr(),
                "grp",
                &creds(&victim_key, &victim_cert),
                Arc::new(PinnedCertificates::new([&server.1])),
            )
            .await
            .unwrap();
        assert_eq!(ok.peer_chain(), std::slice::from_ref(&server.1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_sending_bytes_that_are_not_frames_is_closed_as_a_violation() {
        let server = identity();
        let (client_key, client_cert) = identity();
        let (s, c) = nodes(&server, &client_cert);
        let cases: [(&[u8], FrameError); 2] = [
            (&[9, 0, 1], FrameError::BadVersion(9)),
            (
                &[1, 0, 1, 0x00, 0x10, 0x00, 0x01],
                FrameError::Oversize {
                    len: crate::MAX_FRAME_LEN + 1,
                },
            ),
        ];
        for (garbage, expected) in cases {
            let quic = raw_connect(&c, &s, &creds(&client_key, &client_cert), &server.1)
                .await
                .unwrap();
            let (mut send, _recv) = match connection::open_control(&quic).await {
                Ok(streams) => streams,
                Err(_) => panic!("control stream set-up failed"),
            };
            send.write_all(garbage).await.unwrap();
            let inc = tokio::time::timeout(BOUND, s.accept())
                .await
                .unwrap()
                .unwrap();
            let e = tokio::time::timeout(BOUND, inc.recv())
                .await
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(&e, TransportError::Frame(f) if *f == expected),
                "{e:?}"
            );
            match tokio::time::timeout(BOUND, quic.closed()).await.unwrap() {
                quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
                    close.error_code.into_inner(),
                    u64::from(CloseCode::ProtocolViolation.code())
                ),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                inc.closed().await.code(),
                Some(CloseCode::ProtocolViolation)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_preamble_never_becomes_a_connection() {
        let server = identity();
        let (client_key, client_cert) = identity();
        let (s, c) = nodes(&server, &client_cert);
        let quic = raw_connect(&c, &s, &creds(&client_key, &client_cert), &server.1)
            .await
            .unwrap();
        let (mut send, _recv) = quic.open_bi().await.unwrap();
        send.write_all(b"HTTP").await.unwrap();
        match tokio::time::timeout(BOUND, quic.closed()).await.unwrap() {
            quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(
                close.error_code.into_inner(),
                u64::from(CloseCode::ProtocolViolation.code())
            ),
            other => panic!("{other:?}"),
        }
        assert!(s.connections().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_is_not_a_tunnel_is_reset_and_the_connection_goes_on() {
        use crate::frame::Frame;
        use crate::tunnel::TunnelRefusal;
        let server = identity();
        let (client_key, client_cert) = identity();
        let (s, c) = nodes(&server, &client_cert);
        let quic = raw_connect(&c, &s, &creds(&client_key, &client_cert), &server.1)
            .await
            .unwrap();
        let Ok((mut control, _control_recv)) = connection::open_control(&quic).await else {
            panic!("control stream set-up failed");
        };
        let inc = tokio::time::timeout(BOUND, s.accept())
            .await
            .unwrap()
            .unwrap();
        let request = |kind: u8, node: u64| {
            let mut h = b"PGT1".to_vec();
            h.push(kind);
            h.extend_from_slice(&node.to_be_bytes());
            h
        };
        let garbage: [(Vec<u8>, bool); 3] = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(), false),
            (request(9, 7), false),
            // A header cut short by the end of the stream.
            (b"PGT1\x01".to_vec(), true),
        ];
        for (bytes, finish) in garbage {
            let (mut send, mut recv) = quic.open_bi().await.unwrap();
            send.write_all(&bytes).await.unwrap();
            if finish {
                send.finish().unwrap();
            }
            let read = tokio::time::timeout(BOUND, recv.read(&mut [0u8; 1]))
                .await
                .unwrap();
            let code = quinn::VarInt::from_u32(CloseCode::ProtocolViolation.code());
            assert!(
                matches!(read, Err(quinn::ReadError::Reset(c)) if c == code),
                "{read:?}"
            );
        }
        // The connection is untouched: frames still arrive, and a real request is one.
        let frame = Frame::new(5, &b"still here"[..]).unwrap();
        control.write_all(&frame.header()).await.unwrap();
        control.write_all(frame.payload()).await.unwrap();
        assert_eq!(
            tokio::time::timeout(BOUND, inc.recv())
                .await
                .unwrap()
                .unwrap(),
            frame
        );
        let (mut send, mut recv) = quic.open_bi().await.unwrap();
        send.write_all(&request(1, 7)).await.unwrap();
        let Some(IncomingTunnel::Request(req)) = tokio::time::timeout(BOUND, s.accept_tunnel())
            .await
            .unwrap()
        else {
            panic!("expected a tunnel request");
        };
        assert_eq!((req.target(), req.via().id()), (7, inc.id()));
        req.refuse(TunnelRefusal::UnknownTarget);
        let mut answer = [0u8; 1];
        tokio::time::timeout(BOUND, recv.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, [TunnelRefusal::UnknownTarget.code()]);
        assert!(inc.close_reason().is_none());
        assert!(quic.close_reason().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_node_ends_its_tunnels_and_accept_tunnel() {
        let server = identity();
        let (client_key, client_cert) = identity();
        let (s, c) = nodes(&server, &client_cert);
        let quic = raw_connect(&c, &s, &creds(&client_key, &client_cert), &server.1)
            .await
            .unwrap();
        let Ok(_control) = connection::open_control(&quic).await else {
            panic!("control stream set-up failed");
        };
        let offer = |from: u64| {
            let quic = quic.clone();
            async move {
                let (mut send, recv) = quic.open_bi().await.unwrap();
                let mut header = b"PGT1\x02".to_vec();
                header.extend_from_slice(&from.to_be_bytes());
                send.write_all(&header).await.unwrap();
                (send, recv)
            }
        };
        let (_send, mut recv) = offer(3).await;
        let Some(IncomingTunnel::Offer(o)) = tokio::time::timeout(BOUND, s.accept_tunnel())
            .await
            .unwrap()
        else {
            panic!("expected a tunnel offer");
        };
        assert_eq!(o.from(), 3);
        let end = o.accept().unwrap();
        let mut answer = [0u8; 1];
        tokio::time::timeout(BOUND, recv.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, [0]);
        assert_eq!(s.tunnels().len(), 1);
        assert_eq!(s.tunnels()[0].addr, end);
        // Another offer nobody takes, and somebody waiting for one, when the node closes.
        let _untaken = offer(4).await;
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.accept_tunnel().await.is_none() }
        });
        let addr = s.local_addr();
        tokio::time::timeout(BOUND, s.close(CloseCode::Shutdown, BOUND))
            .await
            .unwrap()
            .unwrap();
        std::net::UdpSocket::bind(addr).expect("port released with tunnels open");
        assert!(tokio::time::timeout(BOUND, waiting).await.unwrap().unwrap());
        assert!(s.tunnels().is_empty());
        assert!(s.accept_tunnel().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_node_closes_its_connections_with_shutdown() {
        let server = identity();
        let (client_key, client_cert) = identity();
        let (s, c) = nodes(&server, &client_cert);
        let out = c
            .connect(
                s.local_addr(),
                "grp",
                &creds(&client_key, &client_cert),
                Arc::new(PinnedCertificates::new([&server.1])),
            )
            .await
            .unwrap();
        let inc = s.accept().await.unwrap();
        drop(inc);
        drop(s);
        let reason = tokio::time::timeout(BOUND, out.closed()).await.unwrap();
        assert_eq!(
            reason,
            CloseReason::Peer {
                code: CloseCode::Shutdown,
                reason: "node dropped".into()
            }
        );
    }

    #[test]
    fn default_limits_are_valid_and_checks_bite() {
        Limits::default().check().unwrap();
        let small = Limits {
            send_queue_bytes: 1000,
            ..Limits::default()
        };
        assert!(matches!(
            small.check(),
            Err(TransportError::InvalidConfig(_))
        ));
        let keep_alive = Limits {
            keep_alive: Duration::from_secs(60),
            ..Limits::default()
        };
        assert!(keep_alive.check().is_err());
    }
}
