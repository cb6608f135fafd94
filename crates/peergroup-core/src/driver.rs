//! The tokio side of a group: binds the state machine to the transport and to storage.
//!
//! One [`Network`] per library instance owns the transport node (bound on first use,
//! closed when no group is online) and a [`Registry`] of the groups that run, which is both
//! the node's credential resolver (server certificates by SNI) and its trust policy (a peer
//! must present a membership chain of a group we run). Each online group has one driver task
//! that feeds its machine and carries out what the machine asks.

pub use crate::values::Neighbour;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::clock::unix_now;
use crate::direct::{
    ConnectionInfo, DirectContext, Directs, PEER_CONNECTION_DIRECT, PEER_CONNECTION_NEIGHBOR,
};
use crate::error::{CoreError, Result};
use crate::group::{verify_properties, GroupInner, LocalPeergroup};
use crate::identity::gmc::{
    issue_gmc_at, role::roles_may_issue, validate_chain, Gmc, GroupRootCertificate, Member,
};
use crate::identity::{Authority, IdentityCertificate, IdentityError, PeerName};
use crate::io::{CloseReason, ConnId, GroupEvent, Input, Output, Persist};
use crate::machine::{Config, Group};
use crate::replication::Verifier;
use crate::store_port::StorePort;
use crate::transport::{
    CertificateDer, CloseCode, Connection, CredentialResolver, Credentials, Frame, Node,
    NodeConfig, Side, TrustError, TrustPolicy,
};
use crate::wire::Message;

/// How long a group's close waits for its peers to be told.
pub const GROUP_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing the node waits for the last peers and the socket.
pub const NODE_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a refused newcomer's connection may take to receive its referral before closing.
pub const REFERRAL_LINGER: Duration = Duration::from_millis(500);
/// How long a group's close lets each connection flush what was queued (its presence
/// tombstone) before closing it.
pub const CLOSE_FLUSH: Duration = Duration::from_millis(1500);
/// Frames queued for one connection before it counts as stalled.
pub const CONNECTION_QUEUE: usize = 256;
/// How many connection ends a group remembers for [`crate::LocalGroup::recent_disconnects`].
pub const RECENT_DISCONNECTS: usize = 32;
/// Network events queued for one group before readers wait (back-pressure to the peers).
pub const NET_QUEUE: usize = 1024;

/// The DNS name a group is asked for in TLS (SNI): a hash of the group name, since peer names
/// are not DNS names.
pub fn server_name_of(group: &PeerName) -> String {
    format!(
        "g{}.peergroup",
        Authority::of_public_key(group.to_string().as_bytes())
    )
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// What one running group offers the node.
struct Hosted {
    grc: GroupRootCertificate,
    credentials: Credentials,
    listening: bool,
    /// True when the group accepts password joiners.
    password: bool,
    net: mpsc::Sender<NetEvent>,
}

/// The groups that run on this node, by server name.
#[derive(Default)]
pub struct Registry {
    groups: RwLock<HashMap<String, Hosted>>,
}

/// The group server name a connection's server name stands for: itself, or the group of a
/// direct connection's name.
fn canonical(server_name: &str) -> std::borrow::Cow<'_, str> {
    match crate::direct::group_of_direct_name(server_name) {
        Some(group) => std::borrow::Cow::Owned(group),
        None => std::borrow::Cow::Borrowed(server_name),
    }
}

impl Registry {
    /// Applies `change` to the entry of the group served as `server_name`, if it has one.
    fn update(&self, server_name: &str, change: impl FnOnce(&mut Hosted)) {
        if let Some(h) = self
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(server_name)
        {
            change(h);
        }
    }

    fn any_password_group(&self) -> bool {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|h| h.listening && h.password)
    }

    /// Where the driver of the group served as `server_name` takes its network events.
    fn events_of(&self, server_name: &str) -> Option<mpsc::Sender<NetEvent>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(server_name)
            .map(|h| h.net.clone())
    }

    fn password_candidate(
        &self,
        server_name: &str,
        chain: &[CertificateDer<'_>],
    ) -> Option<IdentityCertificate> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups
            .get(server_name)
            .filter(|h| h.listening && h.password)?;
        match chain {
            [leaf] => IdentityCertificate::from_der(leaf).ok(),
            _ => None,
        }
    }

    fn validate(
        &self,
        server_name: &str,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<Member, TrustError> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        let hosted = groups
            .get(server_name)
            .ok_or_else(|| TrustError::Untrusted(format!("no group is served as {server_name}")))?;
        validate_chain(&hosted.grc, chain, unix_now()).map_err(|e| match e {
            IdentityError::InvalidTimePeriod(why) => TrustError::Expired(why),
            IdentityError::BadEncoding(why) => TrustError::BadCertificate(why),
            other => TrustError::Untrusted(other.to_string()),
        })
    }
}

impl TrustPolicy for Registry {
    fn verify_peer(
        &self,
        peer_side: Side,
        server_name: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<(), TrustError> {
        let name = match (peer_side, server_name) {
            (Side::Server, Some(name)) => canonical(name).into_owned(),
            _ => {
                // As a server we do not see the SNI here: take the group the chain names;
                // the pairing is checked again once the connection is up.
                let leaf = chain
                    .first()
                    .ok_or_else(|| TrustError::BadCertificate("no certificate".into()))?;
                match Gmc::from_der(leaf) {
                    Ok(gmc) => server_name_of(gmc.group_name()),
                    Err(e) => {
                        // A would-be password joiner: only its own identity certificate, and
                        // only while some listening group takes passwords (the exchange is
                        // all such a peer may do).
                        if chain.len() == 1
                            && IdentityCertificate::from_der(leaf).is_ok()
                            && self.any_password_group()
                        {
                            return Ok(());
                        }
                        return Err(TrustError::BadCertificate(e.to_string()));
                    }
                }
            }
        };
        if peer_side == Side::Client {
            let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
            if !groups.get(&name).is_some_and(|h| h.listening) {
                return Err(TrustError::Untrusted(
                    "that group is not listening here".into(),
                ));
            }
        }
        self.validate(&name, chain).map(|_| ())
    }
}

impl CredentialResolver for Registry {
    fn resolve(&self, server_name: &str) -> Option<Credentials> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups
            .get(canonical(server_name).as_ref())
            .filter(|h| h.listening)
            .map(|h| h.credentials.clone())
    }
}

struct NetNode {
    node: Arc<Node>,
    registry: Arc<Registry>,
    accept_task: tokio::task::JoinHandle<()>,
}

/// The transport node of a library instance, bound on first use.
pub(crate) struct Network {
    listen: Option<SocketAddr>,
    limits: crate::transport::Limits,
    node_id: u64,
    state: tokio::sync::Mutex<Option<NetNode>>,
}

impl Network {
    pub(crate) fn new(listen: Option<SocketAddr>, limits: crate::transport::Limits) -> Self {
        Network {
            listen,
            limits,
            node_id: random_u64(),
            state: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn node(&self) -> Result<(Arc<Node>, Arc<Registry>)> {
        let mut state = self.state.lock().await;
        if let Some(n) = state.as_ref() {
            return Ok((n.node.clone(), n.registry.clone()));
        }
        let addr = match self.listen {
            Some(a) => a,
            None => crate::transport::default_listen_addr()?,
        };
        let registry = Arc::new(Registry::default());
        let mut config = NodeConfig::new(registry.clone(), registry.clone());
        config.limits = self.limits.clone();
        let node = Arc::new(Node::bind(addr, config)?);
        tracing::info!(addr = %node.local_addr(), "transport node bound");
        let accept_task = tokio::spawn(accept_loop(node.clone(), registry.clone()));
        *state = Some(NetNode {
            node: node.clone(),
            registry: registry.clone(),
            accept_task,
        });
        Ok((node, registry))
    }

    /// The listen address set for this instance, if it is a concrete one (an IP that is not
    /// unspecified and a port that is not 0), else `$PEERGROUP_LISTEN` under the same rule.
    pub(crate) fn configured_addr(&self) -> Option<SocketAddr> {
        let addr = match self.listen {
            Some(a) => a,
            None => crate::transport::default_listen_addr().ok()?,
        };
        (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
    }

    /// The bound address, if the node is up.
    pub(crate) async fn local_addr(&self) -> Option<SocketAddr> {
        self.state
            .lock()
            .await
            .as_ref()
            .map(|n| n.node.local_addr())
    }

    /// Closes the node once no group runs on it: the last step of the close cascade, which
    /// releases the UDP port.
    pub(crate) async fn release_if_idle(&self) {
        let mut state = self.state.lock().await;
        let idle = state.as_ref().is_some_and(|n| {
            n.registry
                .groups
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        });
        if !idle {
            return;
        }
        let n = state.take().expect("checked above");
        n.accept_task.abort();
        if let Err(e) = n
            .node
            .close(CloseCode::GroupClosed, NODE_CLOSE_TIMEOUT)
            .await
        {
            tracing::warn!(error = %e, "closing the transport node");
        }
        tracing::info!("transport node closed");
    }
}

async fn accept_loop(node: Arc<Node>, registry: Arc<Registry>) {
    while let Some(conn) = node.accept().await {
        let direct = crate::direct::group_of_direct_name(conn.server_name());
        let name = direct
            .clone()
            .unwrap_or_else(|| conn.server_name().to_owned());
        match registry.validate(&name, conn.peer_chain()) {
            Ok(member) => {
                let net = registry.events_of(&name);
                match net {
                    Some(net) => {
                        let member = member.peer_name().to_string();
                        let up = match direct {
                            Some(_) => NetEvent::DirectUp { conn, member },
                            None => NetEvent::Up {
                                conn,
                                member,
                                outbound: false,
                            },
                        };
                        let _ = net.send(up).await;
                    }
                    None => conn.close(CloseCode::NotAuthorized, "group not served here"),
                }
            }
            Err(e) => {
                let net = registry.events_of(&name);
                let candidate = registry
                    .password_candidate(&name, conn.peer_chain())
                    .filter(|_| direct.is_none());
                match (candidate, net) {
                    (Some(subject), Some(net)) => {
                        let _ = net
                            .send(NetEvent::PasswordCandidate { conn, subject })
                            .await;
                    }
                    _ => {
                        tracing::info!(server_name = %name, error = %e, "refusing a connection");
                        conn.close(CloseCode::NotAuthorized, "not a member of that group");
                    }
                }
            }
        }
    }
}

enum Control {
    Connect(Vec<SocketAddr>),
    /// Dial a direct connection under a reserved id.
    OpenDirect {
        id: u64,
        member: String,
        addr: SocketAddr,
    },
    LocalProperties(crate::wire::SignedProperties),
    LocalRecords(Vec<crate::records::record::Record>),
    Close(oneshot::Sender<()>),
}

enum NetEvent {
    Up {
        conn: Connection,
        member: String,
        outbound: bool,
    },
    /// A member's direct connection to us is up (authenticated, not yet greeted).
    DirectUp {
        conn: Connection,
        member: String,
    },
    Down(ConnId, crate::transport::CloseReason),
    Frame(ConnId, Frame),
    DialFailed(SocketAddr, i32),
    /// A peer with only an identity certificate, for a group that takes passwords.
    PasswordCandidate {
        conn: Connection,
        subject: IdentityCertificate,
    },
}

/// The handle the group layer keeps on a running driver.
#[derive(Clone)]
pub(crate) struct DriverHandle {
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<u32>,
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    disconnects: Arc<Mutex<Vec<crate::transport::CloseReason>>>,
    neighbours: Arc<Mutex<Vec<Neighbour>>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    node: Arc<Node>,
    directs: Arc<Directs>,
}

impl DriverHandle {
    pub(crate) fn status(&self) -> u32 {
        *self.status.borrow()
    }

    pub(crate) fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn neighbours(&self) -> Vec<Neighbour> {
        self.neighbours
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn recent_disconnects(&self) -> Vec<crate::transport::CloseReason> {
        self.disconnects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn connect(&self, addrs: Vec<SocketAddr>) {
        let _ = self.control.send(Control::Connect(addrs));
    }

    pub(crate) fn local_properties(&self, signed: crate::wire::SignedProperties) {
        let _ = self.control.send(Control::LocalProperties(signed));
    }

    /// `PeerGroupOpenDirectConnection`: reserves the connection's id and has the driver
    /// dial; the outcome comes as a direct connection event for that id.
    pub(crate) fn open_direct(&self, member: &str, addr: SocketAddr) -> Result<u64> {
        let id = self.node.reserve_connection_id();
        self.directs.dialing(id, member, addr)?;
        let open = Control::OpenDirect {
            id,
            member: member.to_owned(),
            addr,
        };
        if self.control.send(open).is_err() {
            self.directs.close_all(CloseCode::GroupClosed);
            return Err(crate::error::CoreError::InvalidGroup);
        }
        Ok(id)
    }

    /// `PeerGroupCloseDirectConnection`.
    pub(crate) fn close_direct(&self, id: u64) -> Result<()> {
        self.directs.close(id)
    }

    /// `PeerGroupEnumConnections`: the neighbour and/or direct connections (`flags`).
    pub(crate) fn connections(&self, flags: u32) -> Vec<ConnectionInfo> {
        let mut out = Vec::new();
        if flags & PEER_CONNECTION_NEIGHBOR != 0 {
            out.extend(self.neighbours().into_iter().map(|n| ConnectionInfo {
                flags: PEER_CONNECTION_NEIGHBOR,
                connection_id: n.connection_id,
                node_id: n.node_id,
                member: n.member,
                address: n.address,
            }));
        }
        if flags & PEER_CONNECTION_DIRECT != 0 {
            out.extend(self.directs.list());
        }
        out
    }

    /// `PeerGroupSendData` on a neighbour or direct connection of this group.
    pub(crate) async fn send_data(&self, id: u64, data_type: &[u8; 16], data: &[u8]) -> Result<()> {
        let is_neighbour = |k: u64| {
            self.neighbours
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|n| n.connection_id == k)
        };
        let conn = match self.directs.connection(id) {
            Some(c) => c,
            None if is_neighbour(id) => self
                .node
                .connection(id)
                .map_err(|_| crate::error::CoreError::ConnectionNotFound(id))?,
            None => return Err(crate::error::CoreError::ConnectionNotFound(id)),
        };
        crate::direct::send_data(&self.directs, &conn, is_neighbour, data_type, data).await
    }

    /// Records this process stored: the machine reports and floods them.
    pub(crate) fn local_records(&self, records: Vec<crate::records::record::Record>) {
        let _ = self.control.send(Control::LocalRecords(records));
    }

    pub(crate) async fn wait_status(&self, bits: u32, timeout: Duration) -> u32 {
        let mut rx = self.status.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| s & bits == bits)).await;
        let status = *rx.borrow();
        status
    }

    /// Takes the group offline: the machine tells every neighbour (close code "group
    /// closed"), the group leaves the node's registry, and the task ends; bounded in time.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(GROUP_CLOSE_TIMEOUT + Duration::from_secs(1), rx).await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }

    /// The fallback when a handle is dropped without `close`: stop without waiting.
    pub(crate) fn abort(&self) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.control.send(Control::Close(tx));
    }
}

/// Starts the driver of a group (binding the node if needed).
pub(crate) async fn start(pg: &LocalPeergroup, inner: &Arc<GroupInner>) -> Result<DriverHandle> {
    let (node, registry) = pg.shared.network.node().await?;
    let (chain, config, signed) = {
        let st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.chain.clone(), st.config.clone(), st.signed.clone())
    };
    let der_chain: Vec<CertificateDer<'static>> = chain
        .to_der_list()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let credentials = Credentials::from_identity(inner.identity.private_key(), der_chain)?;
    let server_name = server_name_of(&inner.key.1);
    let (net_tx, net_rx) = mpsc::channel(NET_QUEUE);
    registry
        .groups
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            server_name.clone(),
            Hosted {
                grc: inner.grc.clone(),
                credentials: credentials.clone(),
                listening: false,
                password: config.properties.password_enabled(),
                net: net_tx.clone(),
            },
        );
    // One verifier per running group, shared by its connections' readers and its machine.
    let verifier = Verifier::new(inner.grc.clone()).with_memo();
    let mut cfg = Config::new(pg.shared.network.node_id, &inner.key.0.to_string());
    cfg.creator = config.properties.creator_peer_name == inner.key.0.to_string();
    cfg.synced_before = config.synced;
    cfg.seed = random_u64();
    let mut machine = Group::new(cfg, inner.store.load_peers()?, signed)
        .with_records(Box::new(StorePort::new(inner.clone(), verifier.clone())))
        .with_members(
            Box::new(crate::members::handle::GroupPublisher::new(inner.clone())),
            crate::members::duties::MemberSettings::from_properties(&config.properties),
        );
    machine.add_bootstrap(&inner.store.load_bootstrap()?);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(0);
    let addrs = Arc::new(Mutex::new(Vec::new()));
    let disconnects = Arc::new(Mutex::new(Vec::new()));
    let neighbours = Arc::new(Mutex::new(Vec::new()));
    let directs = Arc::new(Directs::default());
    let direct = Arc::new(DirectContext {
        directs: directs.clone(),
        events: inner.clone(),
        node_id: pg.shared.network.node_id,
    });
    let driver = Driver {
        machine,
        inner: inner.clone(),
        node,
        registry,
        server_name,
        credentials,
        net_tx,
        conns: HashMap::new(),
        status: status_tx,
        addrs: addrs.clone(),
        disconnects: disconnects.clone(),
        neighbours: neighbours.clone(),
        verifier,
        direct,
        closing: Vec::new(),
    };
    let driver_node = driver.node.clone();
    let task = tokio::spawn(driver.run(control_rx, net_rx));
    Ok(DriverHandle {
        control: control_tx,
        status: status_rx,
        addrs,
        disconnects,
        neighbours,
        task: Arc::new(Mutex::new(Some(task))),
        node: driver_node,
        directs,
    })
}

struct Driver {
    machine: Group,
    inner: Arc<GroupInner>,
    node: Arc<Node>,
    registry: Arc<Registry>,
    server_name: String,
    credentials: Credentials,
    net_tx: mpsc::Sender<NetEvent>,
    conns: HashMap<ConnId, Writer>,
    status: watch::Sender<u32>,
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    disconnects: Arc<Mutex<Vec<crate::transport::CloseReason>>>,
    neighbours: Arc<Mutex<Vec<Neighbour>>>,
    verifier: Verifier,
    direct: Arc<DirectContext>,
    /// Connections closing after their queued frames, which the shutdown waits for.
    closing: Vec<Connection>,
}

/// A connection's ordered outgoing queue, served by its own task.
struct Writer {
    conn: Connection,
    queue: mpsc::Sender<WriterItem>,
}

enum WriterItem {
    Frame(Frame),
    Close(CloseCode, &'static str, Duration),
}

impl Driver {
    /// The machine's clock: peer time, ms since the Unix epoch (record times are on it).
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut net: mpsc::Receiver<NetEvent>,
    ) {
        loop {
            let now = self.now();
            let deadline = self
                .machine
                .poll_timeout()
                .map(|ms| Instant::now() + Duration::from_millis(ms.saturating_sub(now)));
            tokio::select! {
                msg = control.recv() => match msg {
                    Some(Control::Connect(addrs)) => {
                        let input = if addrs.is_empty() { Input::Connect } else { Input::ConnectByAddress(addrs) };
                        self.feed(input);
                    }
                    Some(Control::LocalProperties(p)) => self.feed(Input::LocalProperties(p)),
                    Some(Control::LocalRecords(r)) => self.feed(Input::LocalRecords(r)),
                    Some(Control::OpenDirect { id, member, addr }) => self.open_direct(id, member, addr),
                    Some(Control::Close(ack)) => {
                        self.shutdown().await;
                        let _ = ack.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(ev) = net.recv() => self.net_event(ev),
                _ = sleep_until(deadline) => self.feed(Input::Tick),
            }
        }
    }

    fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Up {
                conn,
                member,
                outbound,
            } => {
                if !self.machine.is_online() {
                    conn.close(CloseCode::GroupClosed, "group offline");
                    return;
                }
                let id = conn.id();
                let remote = conn.remote_address();
                self.spawn_io(conn);
                self.feed(Input::ConnectionUp {
                    conn: id,
                    member,
                    remote,
                    outbound,
                });
            }
            NetEvent::DirectUp { conn, member } => {
                if !self.machine.is_online() {
                    conn.close(CloseCode::GroupClosed, "group offline");
                    return;
                }
                tokio::spawn(self.direct.clone().run_accepted(conn, member));
            }
            NetEvent::Down(id, reason) => {
                {
                    let mut log = self.disconnects.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() >= RECENT_DISCONNECTS {
                        log.remove(0);
                    }
                    log.push(reason);
                }
                self.conns.remove(&id);
                self.feed(Input::ConnectionDown(id));
            }
            NetEvent::Frame(id, frame) => {
                let Ok(kind) = u8::try_from(frame.kind()) else {
                    self.violation(id, "unknown frame kind");
                    return;
                };
                match Message::decode(kind, frame.payload()) {
                    Ok(Message::Properties(signed)) => {
                        match verify_properties(&self.inner.grc, &signed) {
                            Ok(_) => self.feed(Input::VerifiedProperties(id, signed)),
                            Err(e) => {
                                tracing::warn!(conn = id, error = %e, "dropping unverifiable properties");
                            }
                        }
                    }
                    Ok(msg) => self.feed(Input::Message(id, msg)),
                    Err(e) => self.violation(id, &e.to_string()),
                }
            }
            NetEvent::DialFailed(addr, hr) => self.feed(Input::DialFailed(addr, hr)),
            NetEvent::PasswordCandidate { conn, subject } => self.password_candidate(conn, subject),
        }
    }

    /// Runs the authenticator's side of a password join, when this member may grant the
    /// group's password role.
    fn password_candidate(&mut self, conn: Connection, subject: IdentityCertificate) {
        let (props, chain, allowed) = {
            let st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let role = st.config.properties.group_password_role;
            (
                st.config.properties.clone(),
                st.chain.clone(),
                roles_may_issue(st.member.roles(), role),
            )
        };
        let password: String = match props.group_password.clone() {
            Some(p) if props.password_enabled() => p,
            _ => {
                conn.close(CloseCode::NotAuthorized, "no password authentication");
                return;
            }
        };
        if !allowed || !self.machine.is_online() {
            conn.close(
                CloseCode::NotAuthorized,
                "this member cannot grant membership",
            );
            return;
        }
        if self.inner.password_gate.is_suspended() {
            conn.close(
                CloseCode::NotAuthorized,
                "password authentication is suspended",
            );
            return;
        }
        let inner = self.inner.clone();
        let identity = self.inner.identity.clone();
        let group = self.inner.key.1.clone();
        let role = props.group_password_role;
        tokio::spawn(async move {
            let own_leaf = chain.to_der_list().into_iter().next().unwrap_or_default();
            let issue = |s: &IdentityCertificate| {
                Ok(issue_gmc_at(
                    identity.private_key(),
                    &chain,
                    s,
                    &[role],
                    None,
                    unix_now(),
                )?)
            };
            let result =
                crate::password::authenticate(&conn, &password, &group, &own_leaf, &subject, issue)
                    .await;
            if let Err(e @ CoreError::PasswordRejected) = result {
                // Suspend first (when held), so a handler of the event can resume at once.
                inner.password_gate.failed();
                inner
                    .events
                    .publish(&crate::events::Event::AuthenticationFailed(e.hresult()));
            }
        });
    }

    /// Dials a direct connection to `member` at `addr` under the reserved `id`; the member
    /// answering must be the one asked for.
    fn open_direct(&mut self, id: u64, member: String, addr: SocketAddr) {
        let node = self.node.clone();
        let name = crate::direct::direct_server_name_of(&self.server_name);
        let group_name = self.server_name.clone();
        let creds = self.credentials.clone();
        let registry = self.registry.clone();
        let direct = self.direct.clone();
        tokio::spawn(async move {
            let trust: Arc<dyn TrustPolicy> = registry.clone();
            let conn = match node.connect_as(id, addr, &name, &creds, trust).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "direct dial failed");
                    direct.dial_failed(id, e.hresult());
                    return;
                }
            };
            match registry.validate(&group_name, conn.peer_chain()) {
                Ok(m) if m.peer_name().to_string() == member => {
                    direct.run_dialed(conn, member).await;
                }
                _ => {
                    conn.close(CloseCode::NotAuthorized, "not the member asked for");
                    direct.dial_failed(
                        id,
                        crate::identity::hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED,
                    );
                }
            }
        });
    }

    fn violation(&mut self, id: ConnId, why: &str) {
        tracing::info!(conn = id, why, "protocol violation");
        if let Some(w) = self.conns.remove(&id) {
            w.conn
                .close(CloseCode::ProtocolViolation, "protocol violation");
        }
        self.feed(Input::ConnectionDown(id));
    }

    /// One reader task and one writer task per connection.
    fn spawn_io(&mut self, conn: Connection) {
        let id = conn.id();
        let (queue, mut rx) = mpsc::channel::<WriterItem>(CONNECTION_QUEUE);
        let writer_conn = conn.clone();
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                match item {
                    WriterItem::Frame(f) => {
                        if writer_conn.send(&f).await.is_err() {
                            break;
                        }
                    }
                    WriterItem::Close(code, reason, flush) => {
                        // Everything queued before reaches the peer (bounded by `flush`).
                        writer_conn.close_flushed(code, reason, flush).await;
                        break;
                    }
                }
            }
        });
        let reader_conn = conn.clone();
        let net = self.net_tx.clone();
        let verifier = self.verifier.clone();
        let group = self.inner.clone();
        tokio::spawn(async move {
            let mut parts = crate::data::Reassembler::new();
            loop {
                match reader_conn.recv().await {
                    Ok(frame) if frame.kind() == u16::from(crate::data::KIND_DATA) => {
                        // Application data goes to the subscribers from here, not through
                        // the machine; a slow subscriber slows this peer down only.
                        let delivered =
                            crate::direct::deliver(&group.events, id, &mut parts, &frame).await;
                        if let Err(why) = delivered {
                            tracing::info!(conn = id, why, "protocol violation in data");
                            reader_conn.close(CloseCode::ProtocolViolation, "protocol violation");
                        }
                    }
                    Ok(frame) => {
                        // Records are verified here, on the blocking pool, before the driver
                        // sees them: the next batch is checked while the driver stores the
                        // last, and the machine's own check then finds them verified.
                        preverify(&verifier, &frame).await;
                        if net.send(NetEvent::Frame(id, frame)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        let reason = reader_conn.closed().await;
                        let _ = net.send(NetEvent::Down(id, reason)).await;
                        break;
                    }
                }
            }
        });
        self.conns.insert(id, Writer { conn, queue });
    }

    fn feed(&mut self, input: Input) {
        let now = self.now();
        self.machine.handle(now, input);
        let mut events = Vec::new();
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Event(e) => {
                    if let GroupEvent::StatusChanged(s) = e {
                        let _ = self.status.send(s);
                    }
                    events.push(e);
                }
                other => self.output(other),
            }
        }
        self.refresh_neighbours();
        // Published once the status and the neighbour list agree with them: a reader woken by
        // an event (a C program on its eventfd) that asks at once sees the change already.
        for e in events {
            self.inner.events.publish_group_event(&e);
            tracing::debug!(group = %self.inner.key.1, event = ?e, "group event");
        }
    }

    fn refresh_neighbours(&self) {
        let snapshot: Vec<Neighbour> = self
            .machine
            .neighbours()
            .map(|(conn, member, node_id, address, outbound)| Neighbour {
                connection_id: conn,
                member: member.to_owned(),
                node_id,
                address,
                outbound,
            })
            .collect();
        *self.neighbours.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::StartListening => {
                self.registry
                    .update(&self.server_name, |h| h.listening = true);
                let addrs = reachable_addrs(self.node.local_addr());
                *self.addrs.lock().unwrap_or_else(|p| p.into_inner()) = addrs.clone();
                let now = self.now();
                self.machine.handle(now, Input::Listening(addrs));
            }
            Output::Dial(addr) => {
                let node = self.node.clone();
                let name = self.server_name.clone();
                let creds = self.credentials.clone();
                let trust: Arc<dyn TrustPolicy> = self.registry.clone();
                let registry = self.registry.clone();
                let net = self.net_tx.clone();
                tokio::spawn(async move {
                    let ev = match node.connect(addr, &name, &creds, trust).await {
                        Ok(conn) => {
                            match registry.validate(&name, conn.peer_chain()) {
                                Ok(member) => NetEvent::Up {
                                    conn,
                                    member: member.peer_name().to_string(),
                                    outbound: true,
                                },
                                Err(_) => {
                                    conn.close(CloseCode::NotAuthorized, "not a member");
                                    NetEvent::DialFailed(addr, crate::identity::hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED)
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(%addr, error = %e, "dial failed");
                            NetEvent::DialFailed(addr, e.hresult())
                        }
                    };
                    let _ = net.send(ev).await;
                });
            }
            Output::Send(id, msg) => {
                let (kind, payload) = msg.encode();
                let Ok(frame) = Frame::new(u16::from(kind), payload) else {
                    tracing::error!(conn = id, "message over the frame limit dropped");
                    return;
                };
                if let Some(w) = self.conns.get(&id) {
                    if w.queue.try_send(WriterItem::Frame(frame)).is_err() {
                        // The peer does not keep up: drop it rather than buffer without bound.
                        tracing::info!(conn = id, "peer stalled; closing");
                        w.conn.close(CloseCode::Stalled, "send queue full");
                        self.conns.remove(&id);
                        let now = self.now();
                        self.machine.handle(now, Input::ConnectionDown(id));
                    }
                }
            }
            Output::Disconnect(id, reason) => {
                if let Some(w) = self.conns.remove(&id) {
                    let (code, text, linger) = match reason {
                        // After what was queued (the presence tombstone), bounded.
                        CloseReason::GroupClosed => {
                            (CloseCode::GroupClosed, "group closed", CLOSE_FLUSH)
                        }
                        CloseReason::ProtocolViolation => (
                            CloseCode::ProtocolViolation,
                            "protocol violation",
                            Duration::ZERO,
                        ),
                        CloseReason::Duplicate => {
                            (CloseCode::Shutdown, "duplicate connection", Duration::ZERO)
                        }
                        CloseReason::ConnectedToSelf => {
                            (CloseCode::Shutdown, "connected to self", Duration::ZERO)
                        }
                        CloseReason::Busy => (
                            CloseCode::Shutdown,
                            "busy: try the members referred",
                            REFERRAL_LINGER,
                        ),
                    };
                    // A referral must reach the newcomer first: close after the queued frames.
                    let queued = !linger.is_zero()
                        && w.queue
                            .try_send(WriterItem::Close(code, text, linger))
                            .is_ok();
                    if !queued {
                        w.conn.close(code, text);
                    }
                    if reason == CloseReason::GroupClosed {
                        self.closing.push(w.conn);
                    }
                }
            }
            // `feed` takes events out and publishes them once the state they describe is
            // visible; any other caller publishes at once.
            Output::Event(e) => self.inner.events.publish_group_event(&e),
            Output::Persist(p) => {
                if let Err(e) = self.persist(p) {
                    tracing::error!(group = %self.inner.key.1, error = %e, "storage write failed");
                }
            }
        }
    }

    fn persist(&mut self, p: Persist) -> Result<()> {
        match p {
            Persist::Synced => {
                let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
                st.config.synced = true;
                self.inner.store.save_config(&st.config)
            }
            Persist::KnownPeers(peers) => self.inner.store.save_peers(&peers),
            Persist::Credentials(chain) => {
                if crate::members::handle::adopt(&self.inner, &chain)? {
                    self.present_current_chain()?;
                }
                Ok(())
            }
            Persist::Properties(signed) => {
                let props = verify_properties(&self.inner.grc, &signed)?;
                self.registry
                    .update(&self.server_name, |h| h.password = props.password_enabled());
                self.inner.store.save_signed_properties(&signed)?;
                let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
                st.config.properties = props;
                st.signed = Some(signed);
                self.inner.store.save_config(&st.config)
            }
        }
    }

    /// Presents the member's current chain from the next connection on (dialed or accepted),
    /// after it adopted new credentials; connections up now keep the chain they showed.
    fn present_current_chain(&mut self) -> Result<()> {
        let chain = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .chain
            .clone();
        let der: Vec<CertificateDer<'static>> = chain
            .to_der_list()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let credentials = Credentials::from_identity(self.inner.identity.private_key(), der)?;
        self.registry
            .update(&self.server_name, |h| h.credentials = credentials.clone());
        self.credentials = credentials;
        Ok(())
    }

    /// The group's part of the close cascade: tell every neighbour, leave the registry,
    /// make the state durable, and wait (bounded) until the peers were told.
    async fn shutdown(&mut self) {
        self.feed(Input::Close);
        self.registry
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.server_name);
        let mut conns: Vec<Connection> = self.conns.drain().map(|(_, w)| w.conn).collect();
        for c in &conns {
            c.close(CloseCode::GroupClosed, "group closed");
        }
        conns.extend(self.direct.directs.close_all(CloseCode::GroupClosed));
        // Those the machine closed flush their queues first (their writers close them).
        conns.append(&mut self.closing);
        let wait = async {
            for c in &conns {
                c.closed().await;
            }
        };
        if tokio::time::timeout(GROUP_CLOSE_TIMEOUT, wait)
            .await
            .is_err()
        {
            tracing::warn!(group = %self.inner.key.1, "peers not all told of the close in time");
        }
        let _ = self.status.send(0);
        tracing::info!(group = %self.inner.key.1, "group offline");
    }
}

/// Verifies the records a `Record` or `Records` frame carries (the verifier remembers
/// those that passed); anything else, or anything that does not decode, is left to the
/// machine, which checks it again either way.
async fn preverify(verifier: &Verifier, frame: &Frame) {
    use crate::records::record::Record;
    let Ok(kind) = u8::try_from(frame.kind()) else {
        return;
    };
    if kind != crate::wire::KIND_RECORDS && kind != crate::wire::KIND_RECORD {
        return;
    }
    let records: Vec<Record> = match Message::decode(kind, frame.payload()) {
        Ok(Message::Record(bytes)) => Record::decode(&bytes).into_iter().collect(),
        Ok(Message::Records { records, .. }) => records
            .iter()
            .filter_map(|b| Record::decode(b).ok())
            .collect(),
        _ => return,
    };
    let verifier = verifier.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let _ = tokio::task::spawn_blocking(move || {
        crate::store_port::verify_on_all_cores(&verifier, &records, now)
    })
    .await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The addresses peers can reach a node bound to `local` at: the address itself, or every
/// interface address of its family (both, for a dual-stack `[::]`) when it is unspecified.
pub fn reachable_addrs(local: SocketAddr) -> Vec<SocketAddr> {
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| local.is_ipv6() || ip.is_ipv4())
        .filter(|ip| match ip {
            std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            std::net::IpAddr::V4(_) => true,
        })
        .map(|ip| SocketAddr::new(ip, local.port()))
        .collect();
    out.sort_by_key(|a| (a.ip().is_loopback(), a.is_ipv6()));
    out.truncate(crate::wire::MAX_ADDRS);
    out
}
