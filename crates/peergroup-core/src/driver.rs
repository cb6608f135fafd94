//! The driver: one tokio task per online group that feeds the group's machine and carries out
//! what it asks: dials, frames on connections, events, storage writes. Handles reach it over
//! the control channel ([`crate::control`]); the network hands it connections
//! ([`crate::network`]); the trust registry ([`crate::trust`]) says who may connect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::clock::unix_now;
use crate::dialback::Outside;
use crate::direct::{DirectContext, Directs};
use crate::error::{CoreError, Result};
use crate::identity::gmc::{issue_gmc_at, role::roles_may_issue};
use crate::identity::IdentityCertificate;
use crate::io::{CloseReason, ConnId, GroupEvent, Input, Output, Persist, Via};
use crate::machine::{Config, Group};
use crate::paths::DirectPaths;
use crate::ports::records::StorePort;
use crate::race::{first_ok, Attempt, DIAL_STAGGER};
use crate::reachability::NatClass;
use crate::relay::{Refusal, TunnelId};
use crate::replication::Verifier;
use crate::signing::verify_properties;
use crate::state::{GroupInner, Shared};
use crate::transport::{
    CertificateDer, CloseCode, Connection, Credentials, Frame, IncomingTunnel, Node, TrustPolicy,
    TunnelRefusal,
};
use crate::values::Reachable;
use crate::wire::Message;

use crate::control::GROUP_CLOSE_TIMEOUT;
use crate::control::{Control, DriverHandle, Neighbour, NetEvent};
use crate::network::{random_u64, reachable_addrs};
use crate::trust::{server_name_of, Hosted, Registry};

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
/// How often a node bound to a wildcard address reads its interface addresses again, to
/// notice that it moved (another network, a new address) and tell the machine.
pub const ADDRESS_POLL: Duration = Duration::from_secs(1);

/// The members a starting group dials: the peers it kept, completed from the presence
/// records it holds (`crate::members::list::remembered_peers`): after a crash, or with every
/// member of its invitation gone, those are where the others were last.
/// The environment variable that caps a node's neighbours per group.
pub const MAX_NEIGHBOURS_VAR: &str = "PEERGROUP_MAX_NEIGHBOURS";
/// The most [`MAX_NEIGHBOURS_VAR`] may ask for.
pub const MAX_NEIGHBOURS_CAP: usize = 64;

/// `$PEERGROUP_MAX_NEIGHBOURS`: the most neighbours this node holds in each group (the
/// machine's default otherwise; the target it dials towards follows it down). For a member on
/// a metered link, or a test that needs members a node never met. A value that is not a
/// number in 1..=[`MAX_NEIGHBOURS_CAP`] is ignored, with a warning.
fn neighbour_limit() -> Option<usize> {
    let text = std::env::var(MAX_NEIGHBOURS_VAR).ok()?;
    let limit = parse_neighbour_limit(&text);
    if limit.is_none() {
        tracing::warn!("{MAX_NEIGHBOURS_VAR}={text:?} is not in 1..={MAX_NEIGHBOURS_CAP}: ignored");
    }
    limit
}

fn parse_neighbour_limit(text: &str) -> Option<usize> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_NEIGHBOURS_CAP).contains(n))
}

fn remembered(
    inner: &GroupInner,
    chain: &crate::identity::gmc::GmcChain,
) -> Result<Vec<crate::wire::PeerEntry>> {
    let members = inner.member_list(chain)?;
    let me = inner.key.0.to_string();
    Ok(crate::members::list::remembered_peers(
        inner.store.load_peers()?,
        &members,
        &me,
    ))
}

/// Starts the driver of a group (binding the node if needed).
pub(crate) async fn start(shared: &Shared, inner: &Arc<GroupInner>) -> Result<DriverHandle> {
    let (node, registry) = shared.network.node().await?;
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
    let mut cfg = Config::new(shared.network.node_id, &inner.key.0.to_string());
    cfg.creator = config.properties.creator_peer_name == inner.key.0.to_string();
    cfg.synced_before = config.synced;
    cfg.relay = config.relay;
    cfg.seed = random_u64();
    if let Some(max) = neighbour_limit() {
        cfg.max_neighbours = max;
        cfg.target_neighbours = cfg.target_neighbours.min(max);
    }
    let known = remembered(inner, &chain)?;
    let mut machine = Group::new(cfg, known, signed)
        .with_records(Box::new(StorePort::new(inner.clone(), verifier.clone())))
        .with_members(
            Box::new(crate::ports::presence::GroupPublisher::new(inner.clone())),
            crate::members::duties::MemberSettings::from_properties(&config.properties),
        );
    machine.add_bootstrap(&inner.store.load_bootstrap()?);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(0);
    let addrs = Arc::new(Mutex::new(Vec::new()));
    let disconnects = Arc::new(Mutex::new(Vec::new()));
    let neighbours = Arc::new(Mutex::new(Vec::new()));
    let reachable = Arc::new(Mutex::new(Reachable {
        advertised: Vec::new(),
        nat: NatClass::Unknown,
        relays: Vec::new(),
        outside: Outside::Unknown,
    }));
    let punch = Arc::new(Mutex::new(Vec::new()));
    let directs = Arc::new(Directs::default());
    let direct = Arc::new(DirectContext {
        directs: directs.clone(),
        events: inner.events.clone(),
        node_id: shared.network.node_id,
        paths: Arc::new(DirectPaths {
            node: node.clone(),
            registry: registry.clone(),
            group_name: server_name.clone(),
            credentials: credentials.clone(),
            punch: punch.clone(),
        }),
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
        reachable: reachable.clone(),
        punch,
        verifier,
        direct,
        closing: Vec::new(),
        tunnels: HashMap::new(),
        accepted_tunnels: HashMap::new(),
        carrying: HashMap::new(),
        next_tunnel: 1,
        lan: None,
    };
    let driver_node = driver.node.clone();
    let task = tokio::spawn(driver.run(control_rx, net_rx));
    Ok(DriverHandle {
        control: control_tx,
        status: status_rx,
        addrs,
        disconnects,
        neighbours,
        reachable,
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
    reachable: Arc<Mutex<Reachable>>,
    /// This node's addresses for a punch ([`crate::paths::DirectPaths`]).
    punch: Arc<Mutex<Vec<SocketAddr>>>,
    verifier: Verifier,
    direct: Arc<DirectContext>,
    /// Connections closing after their queued frames, which the shutdown waits for.
    closing: Vec<Connection>,
    /// Tunnels asked for or offered, waiting for the machine's decision.
    tunnels: HashMap<TunnelId, IncomingTunnel>,
    /// Tunnels accepted as a target: their virtual address, to notice when they end.
    accepted_tunnels: HashMap<TunnelId, SocketAddr>,
    /// Tunnels this member relays: firing the sender ends one ([`Output::EndTunnel`]).
    carrying: HashMap<TunnelId, tokio::sync::oneshot::Sender<()>>,
    next_tunnel: TunnelId,
    /// LAN discovery, from the first connect ([`crate::discovery`]).
    lan: Option<crate::discovery::Discovery>,
}

/// One way to reach a member for a direct connection.
enum Path {
    /// Dial this address (a tunnel's virtual address too).
    Addr(SocketAddr),
    /// Open a tunnel to this node through the relay on this connection, then dial it.
    Via(Connection, u64),
}

/// A connection's ordered outgoing queue, served by its own task.
struct Writer {
    conn: Connection,
    queue: mpsc::Sender<WriterItem>,
    /// Where the peer's packets came from when last looked (QUIC migrates).
    remote: SocketAddr,
}

enum WriterItem {
    Frame(Frame),
    Close(CloseCode, &'static str, Duration),
}

impl Driver {
    /// The machine's clock: peer time, ms since the Unix epoch (record times are on it).
    fn now(&self) -> u64 {
        crate::clock::unix_now_ms().max(0) as u64
    }

    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut net: mpsc::Receiver<NetEvent>,
    ) {
        let mut address_poll = tokio::time::interval(ADDRESS_POLL);
        address_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = self.now();
            let deadline = self
                .machine
                .poll_timeout()
                .map(|ms| Instant::now() + Duration::from_millis(ms.saturating_sub(now)));
            tokio::select! {
                msg = control.recv() => match msg {
                    Some(Control::Connect(addrs)) => {
                        self.start_lan();
                        let input = if addrs.is_empty() { Input::Connect } else { Input::ConnectByAddress(addrs) };
                        self.feed(input);
                    }
                    Some(Control::LocalProperties(p)) => self.feed(Input::LocalProperties(p)),
                    Some(Control::LocalRecords(r)) => self.feed(Input::LocalRecords(r)),
                    Some(Control::OpenDirect { id, member, addr }) => self.open_direct(id, member, addr),
                    Some(Control::SetRelay(on)) => self.machine.set_relay(on),
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
                _ = address_poll.tick() => self.check_addresses(),
                _ = sleep_until(deadline) => {
                    self.sweep_tunnels();
                    self.feed(Input::Tick);
                    self.announce_lan();
                }
            }
        }
    }

    fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Up {
                conn,
                member,
                outbound,
                via_node,
            } => {
                if !self.machine.is_online() {
                    conn.close(CloseCode::GroupClosed, "group offline");
                    return;
                }
                let id = conn.id();
                let remote = conn.remote_address();
                let via = match conn.relayed_via() {
                    None => None,
                    Some(relay) => {
                        // The node dialled, or the one the relay's offer named. The machine
                        // checks that the relay is one of this group's direct neighbours (a
                        // tunnel on another group's connection is not) and settles the dial.
                        let peer = via_node.or_else(|| {
                            self.node
                                .tunnels()
                                .into_iter()
                                .find(|t| t.addr == remote)
                                .map(|t| t.peer_node)
                        });
                        match peer {
                            Some(node) => Some(Via { relay, node }),
                            None => {
                                conn.close(CloseCode::Shutdown, "tunnel gone");
                                return;
                            }
                        }
                    }
                };
                self.spawn_io(conn);
                self.feed(Input::ConnectionUp {
                    conn: id,
                    member,
                    remote,
                    outbound,
                    via,
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
                self.check_path(id);
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
            NetEvent::Discovered(addrs) => self.feed(Input::Discovered(addrs)),
            NetEvent::DialViaFailed(node, hr) => self.feed(Input::DialViaFailed(node, hr)),
            NetEvent::DirectRetry { id, member, hr } => {
                let paths = self.paths_to(&member);
                if paths.is_empty() {
                    self.direct.dial_failed(id, hr);
                } else {
                    self.race_direct(id, member, paths, false);
                }
            }
            NetEvent::Tunnel(tunnel) => {
                let via = tunnel.via().id();
                if !self.conns.contains_key(&via) || !self.machine.is_online() {
                    tunnel.refuse(TunnelRefusal::NotAllowed);
                    return;
                }
                let id = self.next_tunnel;
                self.next_tunnel += 1;
                let input = match &tunnel {
                    IncomingTunnel::Request(r) => Input::TunnelRequest {
                        tunnel: id,
                        from: via,
                        target: r.target(),
                    },
                    IncomingTunnel::Offer(o) => Input::TunnelOffer {
                        tunnel: id,
                        via,
                        from: o.from(),
                    },
                };
                self.tunnels.insert(id, tunnel);
                self.feed(input);
                if let Some(left) = self.tunnels.remove(&id) {
                    // The machine always decides at once; never leave a tunnel waiting.
                    left.refuse(TunnelRefusal::NotAllowed);
                }
            }
            NetEvent::TunnelEnded(id) => {
                self.accepted_tunnels.remove(&id);
                self.carrying.remove(&id);
                self.feed(Input::TunnelEnded(id));
            }
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
        let who = subject.peer_name().to_string();
        let source = conn.remote_address().ip();
        let started = std::time::Instant::now();
        let too_soon = self.inner.lock_throttle().check(&who, source, started);
        if let Err(wait) = too_soon {
            // No exchange: no guess spent, none learnt.
            // Rounded up: a joiner that waits this long finds the wait over.
            let secs = (wait.as_millis() as u64).div_ceil(1000).max(1);
            tracing::warn!(joiner = %who, %source, wait_s = secs, "password attempt too soon after wrong ones; refused");
            conn.close(
                CloseCode::NotAuthorized,
                &format!("{} {secs}", crate::password::THROTTLED_REASON),
            );
            self.inner
                .events
                .publish(&crate::events::Event::AuthenticationFailed(
                    CoreError::PasswordThrottled(secs).hresult(),
                ));
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
            let rejected = || {
                inner
                    .lock_throttle()
                    .failed(&who, source, std::time::Instant::now());
            };
            let result = crate::password::authenticate(
                &conn, &password, &group, &own_leaf, &subject, issue, rejected,
            )
            .await;
            if result.is_ok() {
                inner.lock_throttle().succeeded(&who);
            }
            if let Err(e @ CoreError::PasswordRejected) = result {
                // Suspend first (when held), so a handler of the event can resume at once.
                inner.password_gate.failed();
                inner
                    .events
                    .publish(&crate::events::Event::AuthenticationFailed(e.hresult()));
            }
        });
    }

    /// Dials node `node_id` through a tunnel the relay on connection `via` carries; the
    /// connection then comes up like any other (the accept check sees the tunnel).
    fn dial_via(&mut self, via: ConnId, node_id: u64) {
        let net = self.net_tx.clone();
        let Some(relay) = self.conns.get(&via).map(|w| w.conn.clone()) else {
            let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
            let now = self.now();
            self.machine.handle(now, Input::DialViaFailed(node_id, hr));
            return;
        };
        let node = self.node.clone();
        let name = self.server_name.clone();
        let creds = self.credentials.clone();
        let trust: Arc<dyn TrustPolicy> = self.registry.clone();
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let dialled = async {
                let addr = node.open_tunnel(&relay, node_id).await?;
                node.connect(addr, &name, &creds, trust).await
            };
            let ev = match dialled.await {
                Ok(conn) => match registry.validate(&name, conn.peer_chain()) {
                    Ok(member) => NetEvent::Up {
                        conn,
                        member: member.peer_name().to_string(),
                        outbound: true,
                        via_node: Some(node_id),
                    },
                    Err(_) => {
                        conn.close(CloseCode::NotAuthorized, "not a member");
                        NetEvent::DialViaFailed(
                            node_id,
                            crate::identity::hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED,
                        )
                    }
                },
                Err(e) => {
                    tracing::debug!(node_id, error = %e, "dial through a relay failed");
                    NetEvent::DialViaFailed(node_id, e.hresult())
                }
            };
            let _ = net.send(ev).await;
        });
    }

    /// The ways to `member` this group knows, best first: the paths of its direct neighbour
    /// connections, the addresses its presence gave, the tunnels of its relayed neighbour
    /// connections, then new tunnels through the relays its presence names that we are
    /// directly connected to.
    fn paths_to(&self, member: &str) -> Vec<Path> {
        let mut seen = std::collections::HashSet::new();
        let mut direct = Vec::new();
        let mut relayed = Vec::new();
        for (conn, m, _, addr, _) in self.machine.neighbours() {
            if m != member || !seen.insert(addr) {
                continue;
            }
            match self.machine.relayed_by(conn) {
                None => direct.push(addr),
                // A tunnel that is up, but tried after the direct addresses: a direct path
                // may exist that the neighbour connection has not found yet.
                Some(_) => relayed.push(addr),
            }
        }
        let me = self.machine.node_id();
        let entries: Vec<&crate::wire::PeerEntry> = self
            .machine
            .known_peers()
            .filter(|e| e.member == member && e.node_id != me)
            .collect();
        for e in &entries {
            direct.extend(e.addrs.iter().copied().filter(|a| seen.insert(*a)));
        }
        let mut paths: Vec<Path> = direct.into_iter().chain(relayed).map(Path::Addr).collect();
        for e in &entries {
            for &relay in &e.relays {
                let conn = self
                    .machine
                    .neighbours()
                    .find(|&(c, _, node, _, _)| {
                        node == relay && self.machine.relayed_by(c).is_none()
                    })
                    .and_then(|(c, ..)| self.conns.get(&c));
                if let Some(w) = conn {
                    paths.push(Path::Via(w.conn.clone(), e.node_id));
                }
            }
        }
        paths
    }

    /// Dials a direct connection to `member` under the reserved `id`, at `addr` or on every
    /// path known to it ([`Driver::paths_to`], raced: [`crate::race`]); the member answering
    /// must be the one asked for.
    fn open_direct(&mut self, id: u64, member: String, addr: Option<SocketAddr>) {
        let paths = match addr {
            Some(a) => vec![Path::Addr(a)],
            None => self.paths_to(&member),
        };
        // With no address given, one more race if every path fails: while the first ran,
        // the paths may have changed under it (a punched neighbour connection replacing a
        // relayed one, a tunnel ending, presence naming new addresses).
        self.race_direct(id, member, paths, addr.is_none())
    }

    /// Races `paths` for the direct connection `id` to `member`; on failure, asks the driver
    /// for a second race when `retry`, else reports it.
    fn race_direct(&mut self, id: u64, member: String, paths: Vec<Path>, retry: bool) {
        let net = self.net_tx.clone();
        let node = self.node.clone();
        let name = crate::direct::direct_server_name_of(&self.server_name);
        let group_name = self.server_name.clone();
        let creds = self.credentials.clone();
        let registry = self.registry.clone();
        let direct = self.direct.clone();
        tokio::spawn(async move {
            let trust: Arc<dyn TrustPolicy> = registry.clone();
            let attempts: Vec<Attempt<Connection, i32>> = paths
                .into_iter()
                .map(|path| {
                    let (node, name, creds, trust) =
                        (node.clone(), name.clone(), creds.clone(), trust.clone());
                    let attempt: Attempt<Connection, i32> = Box::pin(async move {
                        let addr = match path {
                            Path::Addr(a) => a,
                            Path::Via(relay, target) => node
                                .open_tunnel(&relay, target)
                                .await
                                .map_err(|e| e.hresult())?,
                        };
                        node.connect_as(id, addr, &name, &creds, trust)
                            .await
                            .map_err(|e| {
                                tracing::debug!(%addr, error = %e, "direct dial failed");
                                e.hresult()
                            })
                    });
                    attempt
                })
                .collect();
            let conn = match first_ok(attempts, DIAL_STAGGER).await {
                Some(Ok(conn)) => conn,
                Some(Err(hr)) if retry => {
                    let _ = net.send(NetEvent::DirectRetry { id, member, hr }).await;
                    return;
                }
                Some(Err(hr)) => return direct.dial_failed(id, hr),
                None => {
                    return direct.dial_failed(id, crate::identity::hresult::PEER_E_NODE_NOT_FOUND)
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

    /// Tells the machine of accepted tunnels the transport has closed (idle, a leg gone).
    fn sweep_tunnels(&mut self) {
        if self.accepted_tunnels.is_empty() {
            return;
        }
        let open: std::collections::HashSet<SocketAddr> =
            self.node.tunnels().into_iter().map(|t| t.addr).collect();
        let ended: Vec<TunnelId> = self
            .accepted_tunnels
            .iter()
            .filter(|(_, addr)| !open.contains(addr))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.accepted_tunnels.remove(&id);
            self.feed(Input::TunnelEnded(id));
        }
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
        let remote = conn.remote_address();
        self.conns.insert(
            id,
            Writer {
                conn,
                queue,
                remote,
            },
        );
    }

    /// Tells the machine when a direct connection's peer sends from a new address (it moved,
    /// or its NAT rebound): looked at as each of its frames arrives, which is when a
    /// migration shows.
    fn check_path(&mut self, id: ConnId) {
        let Some(w) = self.conns.get_mut(&id) else {
            return;
        };
        if w.conn.relayed_via().is_some() {
            return;
        }
        match w.conn.path_remote() {
            Some(now) if now != w.remote => {
                w.remote = now;
                tracing::debug!(conn = id, remote = %now, "peer migrated");
                self.feed(Input::RemoteChanged(id, now));
            }
            _ => {}
        }
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
                relayed_by: self.machine.relayed_by(conn),
            })
            .collect();
        *self.neighbours.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
        let reachable = Reachable {
            advertised: self.machine.advertised_addrs(),
            nat: self.machine.nat_class(),
            relays: self.machine.relay_addrs(),
            outside: self.machine.outside(),
        };
        *self.reachable.lock().unwrap_or_else(|p| p.into_inner()) = reachable;
        *self.punch.lock().unwrap_or_else(|p| p.into_inner()) = self.machine.punch_addrs();
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
                self.announce_lan();
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
                                    via_node: None,
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
            Output::DialVia { via, node_id } => self.dial_via(via, node_id),
            Output::RelayTunnel {
                tunnel,
                to,
                from_node,
            } => {
                let Some(IncomingTunnel::Request(request)) = self.tunnels.remove(&tunnel) else {
                    return;
                };
                let Some(to) = self.conns.get(&to).map(|w| w.conn.clone()) else {
                    request.refuse(TunnelRefusal::UnknownTarget);
                    let now = self.now();
                    self.machine.handle(now, Input::TunnelEnded(tunnel));
                    return;
                };
                let net = self.net_tx.clone();
                let (stop, mut stopped) = tokio::sync::oneshot::channel();
                self.carrying.insert(tunnel, stop);
                tokio::spawn(async move {
                    match request.relay_to(&to, from_node).await {
                        Ok(carried) => {
                            tokio::select! {
                                () = carried.ended() => {}
                                // A dropped sender is no order to stop: only a sent one.
                                Ok(()) = &mut stopped => {
                                    carried.close();
                                    carried.ended().await;
                                }
                            }
                        }
                        Err(e) => tracing::debug!(tunnel, error = %e, "tunnel not carried"),
                    }
                    let _ = net.send(NetEvent::TunnelEnded(tunnel)).await;
                });
            }
            Output::EndTunnel(tunnel) => {
                if let Some(stop) = self.carrying.remove(&tunnel) {
                    let _ = stop.send(());
                }
            }
            Output::AcceptTunnel(tunnel) => {
                let Some(IncomingTunnel::Offer(offer)) = self.tunnels.remove(&tunnel) else {
                    return;
                };
                match offer.accept() {
                    Ok(addr) => {
                        self.accepted_tunnels.insert(tunnel, addr);
                    }
                    Err(e) => {
                        tracing::debug!(tunnel, error = %e, "accepting a tunnel");
                        let now = self.now();
                        self.machine.handle(now, Input::TunnelEnded(tunnel));
                    }
                }
            }
            Output::RefuseTunnel(tunnel, why) => {
                if let Some(t) = self.tunnels.remove(&tunnel) {
                    t.refuse(match why {
                        Refusal::NotAllowed => TunnelRefusal::NotAllowed,
                        Refusal::UnknownTarget => TunnelRefusal::UnknownTarget,
                        Refusal::Busy => TunnelRefusal::Busy,
                    });
                }
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
                        CloseReason::RelayGone => {
                            (CloseCode::Shutdown, "relay gone", Duration::ZERO)
                        }
                        CloseReason::Moved => (
                            CloseCode::Shutdown,
                            "moved: dialling you again",
                            Duration::ZERO,
                        ),
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
                // Group files are written atomically and synced: not on an async worker.
                if let Err(e) = crate::blocking::off_the_workers(|| self.persist(p)) {
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
                if crate::ports::presence::adopt(&self.inner, &chain)? {
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
    /// Starts LAN discovery once (`PEERGROUP_DISABLE_LAN` set: never): browsing at once,
    /// announcing once listening.
    fn start_lan(&mut self) {
        if self.lan.is_some() || std::env::var_os("PEERGROUP_DISABLE_LAN").is_some() {
            return;
        }
        self.lan = crate::discovery::Discovery::start(
            self.inner.grc.der(),
            self.node.local_addr(),
            self.net_tx.clone(),
        );
    }

    /// A wildcard-bound node that listens reads its interface addresses again; when they
    /// changed, the machine moves ([`Input::AddressesChanged`]) and the LAN hears the new
    /// ones.
    fn check_addresses(&mut self) {
        let local = self.node.local_addr();
        if !local.ip().is_unspecified() || self.machine.status() & crate::io::STATUS_LISTENING == 0
        {
            return;
        }
        let now = reachable_addrs(local);
        {
            let mut addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
            if *addrs == now {
                return;
            }
            tracing::info!(old = ?*addrs, new = ?now, "this node's addresses changed");
            addrs.clone_from(&now);
        }
        self.feed(Input::AddressesChanged(now));
        let closed = self.direct.directs.close_accepted();
        if closed > 0 {
            tracing::info!(
                closed,
                "accepted direct connections closed: this node moved"
            );
        }
        self.announce_lan();
    }

    /// Announces this node on the LAN while it listens (renewed when the window turns).
    fn announce_lan(&self) {
        let Some(lan) = &self.lan else {
            return;
        };
        if self.machine.status() & crate::io::STATUS_LISTENING == 0 {
            return;
        }
        let addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let ips: Vec<std::net::IpAddr> = addrs
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_loopback())
            .collect();
        lan.announce(&ips, self.node.local_addr().port(), self.now());
    }

    async fn shutdown(&mut self) {
        if let Some(lan) = self.lan.take() {
            lan.close().await;
        }
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
    let now = crate::clock::unix_now_ms();
    let _ = tokio::task::spawn_blocking(move || {
        crate::ports::records::verify_on_all_cores(&verifier, &records, now)
    })
    .await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_neighbour_limit_is_a_number_in_range_or_nothing() {
        assert_eq!(parse_neighbour_limit("3"), Some(3));
        assert_eq!(parse_neighbour_limit(" 64\n"), Some(MAX_NEIGHBOURS_CAP));
        for bad in ["0", "65", "-1", "", "eight", "3.5"] {
            assert_eq!(parse_neighbour_limit(bad), None, "{bad:?}");
        }
    }
}
