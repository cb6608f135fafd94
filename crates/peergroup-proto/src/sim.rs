//! A deterministic simulated network for the group machine: hundreds to a thousand members
//! in one process, seeded, with per-link latency and packet loss, failed dials, partitions,
//! churn and clock skew, and no sockets or clocks.
//!
//! Addresses are only names here (`127.0.0.1:<10000 + index>`); nothing is ever sent.
//!
//! **Loss** is modelled as QUIC experiences it: a lost packet is retransmitted after a
//! timeout, so a message on a lossy link arrives late (in order) rather than never. Links
//! that fail outright are partitions and churn.
//!
//! **NATs and relays.** With [`SimConfig::nat_per_mille`] some members (never the creator)
//! sit behind a NAT: the members they dial see them at a mapped address (`100.64.x.y:20000`)
//! that is not theirs, and nobody can dial them ([`SimNat::Blocked`]) unless
//! [`SimConfig::nat_mix`] gives them a class: a full cone admits every dial at the mapped
//! address; an address- or port-restricted NAT or a symmetric one admits a dial only while
//! it has itself sent to the dialler ([`PUNCH_OPEN_MS`]) and the pair is one plain punching
//! opens ([`punchable`]), so a dial that arrives first waits for the other side's, as a QUIC
//! handshake resent after [`RESEND_MS`] does. With [`SimConfig::relay_per_mille`] some
//! public members relay ([`crate::relay`]); tunnels are simulated hop by hop (request to the
//! relay, offer to the target, then an end-to-end link).
//!
//! **Records.** With [`SimConfig::records`] every member gets a [`MemoryPort`] and a real
//! identity (keys, membership certificates from one group root, real signatures), so the
//! simulator runs replication exactly as members do, verification included. The identities
//! come from a pool made once per process (key generation is random), so two runs in one
//! process with the same seed are the same run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use crate::identity::gmc::{GmcChain, GroupRoot, Role};
use crate::identity::{IdentityCertificate, PrivateKey};
use crate::io::{ConnId, GroupEvent, Input, Millis, Output, RecordChange, Via};
use crate::machine::{Config, Group};
use crate::members::duties::MemberSettings;
use crate::members::{MemberChange, PRESENCE_TYPE};
use crate::port::Publisher;
use crate::reconcile::ItemKey;
use crate::records::record::{derive_id, Record};
use crate::replication::{MemoryPort, Verifier};
use crate::rng::Rng;

/// Simulated time 0 on the members' clocks: ms since the Unix epoch (mid-2025), inside
/// the validity of the pool's group root.
pub const SIM_EPOCH_MS: Millis = 1_750_000_000_000;

/// How long a NAT keeps admitting a member it sent to (a UDP mapping's life).
pub const PUNCH_OPEN_MS: Millis = 30_000;
/// When a dial a NAT dropped is tried again (QUIC resends its first flight).
pub const RESEND_MS: Millis = 1_000;

/// What a member sits behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimNat {
    /// No NAT.
    Public,
    /// Nobody can dial it (the model without [`SimConfig::nat_mix`]).
    Blocked,
    /// Admits anyone at its mapped address.
    FullCone,
    /// Admits an address it sent to, any port.
    AddressRestricted,
    /// Admits the address and port it sent to.
    PortRestricted,
    /// A mapping per destination, port-restricted.
    Symmetric,
}

/// Whether plain punching opens a path between members behind `a` and `b` (both dial at
/// once): all but port-restricted × symmetric either way round, symmetric × symmetric, and
/// anything blocked.
pub fn punchable(a: SimNat, b: SimNat) -> bool {
    use SimNat::*;
    !matches!(
        (a, b),
        (Blocked, _)
            | (_, Blocked)
            | (PortRestricted, Symmetric)
            | (Symmetric, PortRestricted)
            | (Symmetric, Symmetric)
    )
}

/// Settings of a simulated network.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Members, the first being the creator.
    pub members: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// One-way latency range, milliseconds.
    pub latency: (Millis, Millis),
    /// Chance (per thousand) that a dial fails even though the target listens.
    pub dial_loss_per_mille: u64,
    /// Joiners call Connect at a random time in `0..join_window`.
    pub join_window: Millis,
    /// Chance (per thousand) that a message's packet is lost and retransmitted (it then
    /// lands [`SimConfig::retransmit`] later, still in order).
    pub loss_per_mille: u64,
    /// Extra delay of a retransmitted message.
    pub retransmit: Millis,
    /// Each member's clock is off by a fixed amount in `-skew..=skew` ms.
    pub clock_skew: Millis,
    /// Give members record databases and identities, so they replicate.
    pub records: bool,
    /// Period of each member's anti-entropy reconciliation.
    pub anti_entropy_interval: Millis,
    /// With [`SimConfig::records`]: members publish member data and presence under these
    /// settings ([`crate::members`]); `None`: they do not.
    pub member_duties: Option<MemberSettings>,
    /// The last this many members do not connect at the start: they are newcomers that join
    /// a formed group when [`Sim::rejoin`] connects them.
    pub held_back: usize,
    /// Chance (per thousand) that a member other than the creator is behind a NAT.
    pub nat_per_mille: u64,
    /// Chance (per thousand) that a public member relays for the others (the creator does
    /// whenever this is not zero).
    pub relay_per_mille: u64,
    /// Shares (per thousand, summing to 1000) of full cone, address-restricted,
    /// port-restricted and symmetric NATs among the members behind one; `None`: all
    /// [`SimNat::Blocked`].
    pub nat_mix: Option<[u64; 4]>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            members: 100,
            seed: 1,
            latency: (5, 50),
            dial_loss_per_mille: 20,
            join_window: 10_000,
            loss_per_mille: 0,
            retransmit: 200,
            clock_skew: 0,
            records: false,
            anti_entropy_interval: 30_000,
            member_duties: None,
            held_back: 0,
            nat_per_mille: 0,
            relay_per_mille: 0,
            nat_mix: None,
        }
    }
}

enum Action {
    Input(usize, Input),
    /// A dial a NAT dropped, tried again: (from, to, address, latency).
    Resend(usize, usize, SocketAddr, Millis),
}

/// A tunnel in the making or carrying a link.
struct SimTunnel {
    /// The asker, its connection to the relay, and the node it wants.
    from: usize,
    from_via: ConnId,
    target_node: u64,
    /// The relay.
    relay: usize,
    /// The target and its connection to the relay, once offered.
    target: Option<(usize, ConnId)>,
}

/// The simulated network and its members.
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    actions: BTreeMap<u64, Action>,
    /// The members' machines, by index.
    pub nodes: Vec<Group>,
    listening: Vec<bool>,
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Per sending side of a link, when its last message lands: a link delivers in order.
    link_clock: BTreeMap<(usize, ConnId), Millis>,
    next_conn: ConnId,
    /// Messages delivered so far.
    pub messages: u64,
    /// Of those, how many of each frame kind ([`crate::wire::Message::kind`]).
    pub by_kind: BTreeMap<u8, u64>,
    /// Connections members closed so far (busy referrals, neighbours dropped to make room,
    /// duplicates): a measure of churn.
    pub closes: u64,
    /// Members' deadlines (simulated time), earliest first; stale entries are skipped.
    timers: BinaryHeap<Reverse<(Millis, usize)>>,
    /// Each member's current deadline.
    armed: Vec<Option<Millis>>,
    /// Each member's clock: simulated time plus this.
    offsets: Vec<Millis>,
    /// Partition side of each member; links between sides fail while `partitioned`.
    side: Vec<u8>,
    partitioned: bool,
    identities: Option<Arc<Pool>>,
    /// Per record added through [`Sim::add_record`]: when, and when each member stored it.
    deliveries: BTreeMap<[u8; 16], Delivery>,
    /// Every `MEMBER_CHANGED` event: (member reporting it, simulated time, change, identity).
    pub member_events: Vec<(usize, Millis, MemberChange, String)>,
    /// Which members are behind a NAT.
    pub natted: Vec<bool>,
    /// What each member sits behind.
    pub nat: Vec<SimNat>,
    /// When each member last sent to another (its NAT then admits that one for a while).
    sent: BTreeMap<(usize, usize), Millis>,
    /// Which members relay.
    pub relaying: Vec<bool>,
    tunnels: BTreeMap<u64, SimTunnel>,
    /// Links that run through a tunnel, both ends.
    link_tunnel: BTreeMap<(usize, ConnId), u64>,
    next_tunnel: u64,
    /// Most tunnels any relay carried at once.
    pub max_carried: usize,
}

/// A pool identity as the machine's [`Publisher`].
struct PoolPublisher {
    pool: Arc<Pool>,
    index: usize,
}

impl Publisher for PoolPublisher {
    fn chain(&self) -> GmcChain {
        self.pool.people[self.index].chain.clone()
    }

    fn sign(&self, record: &mut Record) -> crate::error::Result<()> {
        let person = &self.pool.people[self.index];
        record.sign(&person.key, &person.chain)
    }
}

/// When a record was added and when each member first reported it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Simulated time of the add.
    pub added: Millis,
    /// Simulated time each member reported it, by index.
    pub seen: Vec<Option<Millis>>,
}

/// A member identity of the pool.
struct Person {
    key: PrivateKey,
    chain: GmcChain,
    name: String,
}

/// An Ed25519 key from a seed (PKCS#8 v1: a fixed prefix and the 32-byte seed), so that
/// members' peer names, and with them every ordering by name, are the same in every run.
fn seeded_key(i: u64) -> PrivateKey {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    let seed = ring::digest::digest(&ring::digest::SHA256, &i.to_be_bytes());
    der.extend_from_slice(seed.as_ref());
    PrivateKey::from_pkcs8(&der).expect("an Ed25519 seed key")
}

/// Identities made once per process.
struct Pool {
    root: GroupRoot,
    people: Vec<Person>,
}

fn pool(n: usize) -> Arc<Pool> {
    static POOL: OnceLock<Mutex<Option<Arc<Pool>>>> = OnceLock::new();
    let mut slot = POOL
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = slot.as_ref().filter(|p| p.people.len() >= n) {
        return p.clone();
    }
    let root = match slot.as_ref() {
        Some(p) => GroupRoot::from_parts(p.root.key().pkcs8_der(), p.root.certificate().der())
            .expect("the pool's own root"),
        None => GroupRoot::create_at(
            "sim",
            "Simulated group",
            (SIM_EPOCH_MS / 1000) as i64 - 3600,
        )
        .expect("a group root"),
    };
    let mut people: Vec<Person> = Vec::with_capacity(n);
    if let Some(p) = slot.as_ref() {
        for person in &p.people {
            people.push(Person {
                key: PrivateKey::from_pkcs8(person.key.pkcs8_der()).expect("a pool key"),
                chain: person.chain.clone(),
                name: person.name.clone(),
            });
        }
    }
    let grc = root.certificate().clone();
    while people.len() < n {
        let i = people.len();
        let key = seeded_key(i as u64);
        let idc = IdentityCertificate::issue(&key, "", &format!("member {i}")).expect("a cert");
        let role = if i == 0 { Role::Admin } else { Role::Member };
        let chain = root
            .issue(&idc, &[role], grc.not_before(), grc.not_after())
            .expect("a membership");
        people.push(Person {
            name: chain.leaf().peer_name().to_string(),
            key,
            chain,
        });
    }
    let p = Arc::new(Pool { root, people });
    *slot = Some(p.clone());
    p
}

/// The simulated address of member `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16))
}

/// Where members see member `i` when it is behind a NAT: not an address it can be dialled at.
pub fn mapped_of(i: usize) -> SocketAddr {
    SocketAddr::from(([100, 64, (i >> 8) as u8, i as u8], 20_000))
}

impl Sim {
    /// A network where member 0 created the group and every other member holds an
    /// invitation naming member 0's address.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let identities = cfg.records.then(|| pool(cfg.members));
        let verifier = identities
            .as_ref()
            .map(|p| Verifier::new(p.root.certificate().clone()).with_memo());
        let mut offsets = Vec::with_capacity(cfg.members);
        let mut natted = vec![false; cfg.members];
        let mut nat = vec![SimNat::Public; cfg.members];
        let mut relaying = vec![false; cfg.members];
        let nodes = (0..cfg.members)
            .map(|i| {
                // No draws when off, so seeds chosen for runs without NATs keep their runs.
                natted[i] =
                    cfg.nat_per_mille > 0 && i != 0 && rng.range(0, 1000) < cfg.nat_per_mille;
                if natted[i] {
                    // Drawn only with a mix, so runs without one keep their seeds.
                    nat[i] = match cfg.nat_mix {
                        None => SimNat::Blocked,
                        Some([full, addr, port, _]) => match rng.range(0, 1000) {
                            x if x < full => SimNat::FullCone,
                            x if x < full + addr => SimNat::AddressRestricted,
                            x if x < full + addr + port => SimNat::PortRestricted,
                            _ => SimNat::Symmetric,
                        },
                    };
                }
                relaying[i] = cfg.relay_per_mille > 0
                    && !natted[i]
                    && (i == 0 || rng.range(0, 1000) < cfg.relay_per_mille);
                let name = match &identities {
                    Some(p) => p.people[i].name.clone(),
                    None => format!("member-{i}"),
                };
                let mut c = Config::new(rng.next_u64(), &name);
                c.creator = i == 0;
                c.anti_entropy_interval = cfg.anti_entropy_interval;
                c.relay = relaying[i];
                let mut g = Group::new(c, Vec::new(), None);
                if let Some(v) = &verifier {
                    g = g.with_records(Box::new(MemoryPort::new(v.clone())));
                }
                if let (Some(p), Some(settings)) = (&identities, cfg.member_duties) {
                    let publisher = PoolPublisher {
                        pool: p.clone(),
                        index: i,
                    };
                    g = g.with_members(Box::new(publisher), settings);
                }
                if i != 0 {
                    g.add_bootstrap(&[addr_of(0)]);
                }
                let skew = rng.range(0, 2 * cfg.clock_skew + 1);
                offsets.push(SIM_EPOCH_MS + skew - cfg.clock_skew);
                g
            })
            .collect();
        let mut sim = Sim {
            listening: vec![false; cfg.members],
            side: vec![0; cfg.members],
            partitioned: false,
            timers: BinaryHeap::new(),
            armed: vec![None; cfg.members],
            offsets,
            identities,
            deliveries: BTreeMap::new(),
            member_events: Vec::new(),
            natted,
            nat,
            sent: BTreeMap::new(),
            relaying,
            tunnels: BTreeMap::new(),
            link_tunnel: BTreeMap::new(),
            next_tunnel: 1,
            max_carried: 0,
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            actions: BTreeMap::new(),
            nodes,
            links: BTreeMap::new(),
            link_clock: BTreeMap::new(),
            next_conn: 1,
            messages: 0,
            by_kind: BTreeMap::new(),
            closes: 0,
        };
        sim.schedule(0, Action::Input(0, Input::Connect));
        for i in 1..sim.cfg.members.saturating_sub(sim.cfg.held_back).max(1) {
            let at = sim.rng.range(1, sim.cfg.join_window.max(2));
            sim.schedule(at, Action::Input(i, Input::Connect));
        }
        sim
    }

    /// The simulated time.
    pub fn now(&self) -> Millis {
        self.now
    }

    fn schedule(&mut self, at: Millis, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.actions.insert(self.seq, action);
    }

    fn latency(&mut self) -> Millis {
        let (lo, hi) = self.cfg.latency;
        self.rng.range(lo, hi + 1)
    }

    /// Runs until `until` (simulated milliseconds).
    pub fn run_until(&mut self, until: Millis) {
        loop {
            // Timers: tick every machine whose deadline passed, in index order.
            while let Some(Reverse((t, i))) = self.timers.peek().copied() {
                if self.armed[i] == Some(t) {
                    break;
                }
                self.timers.pop(); // re-armed since
            }
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next = match (next_timer, next_event) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_event == Some(next) {
                let Reverse((_, seq)) = self.queue.pop().expect("peeked");
                match self.actions.remove(&seq).expect("scheduled") {
                    Action::Input(i, input) => self.feed(i, input),
                    Action::Resend(i, j, addr, lat) => self.resent(i, j, addr, lat),
                }
            } else {
                let mut due = Vec::new();
                while let Some(Reverse((t, i))) = self.timers.peek().copied() {
                    if t > next {
                        break;
                    }
                    self.timers.pop();
                    if self.armed[i] == Some(t) {
                        self.armed[i] = None;
                        due.push(i);
                    }
                }
                due.sort_unstable();
                due.dedup();
                for i in due {
                    self.feed(i, Input::Tick);
                }
            }
        }
        self.now = until;
    }

    /// When member `i` wants a tick, in simulated time.
    fn deadline(&self, i: usize) -> Option<Millis> {
        self.nodes[i]
            .poll_timeout()
            .map(|t| t.saturating_sub(self.offsets[i]))
    }

    /// Member `i`'s clock now.
    pub fn clock(&self, i: usize) -> Millis {
        self.now + self.offsets[i]
    }

    fn feed(&mut self, i: usize, input: Input) {
        if let Input::Message(_, m) = &input {
            self.messages += 1;
            *self.by_kind.entry(m.kind()).or_default() += 1;
        }
        let now = self.clock(i);
        self.nodes[i].handle(now, input);
        self.max_carried = self.max_carried.max(self.nodes[i].tunnels().0);
        while let Some(out) = self.nodes[i].poll_output() {
            self.output(i, out);
        }
        self.rearm(i);
    }

    /// Notes member `i`'s next deadline (the timer heap keeps stale entries and skips them).
    fn rearm(&mut self, i: usize) {
        let d = self.deadline(i);
        if d != self.armed[i] {
            self.armed[i] = d;
            if let Some(t) = d {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    fn output(&mut self, i: usize, out: Output) {
        match out {
            Output::StartListening => {
                self.listening[i] = true;
                let now = self.clock(i);
                self.nodes[i].handle(now, Input::Listening(vec![addr_of(i)]));
                while let Some(o) = self.nodes[i].poll_output() {
                    self.output(i, o);
                }
            }
            Output::Dial(addr) => {
                let lat = self.latency();
                let lost = self.rng.range(0, 1000) < self.cfg.dial_loss_per_mille;
                let Some(j) = self.target_of(addr) else {
                    self.dial_fails(i, addr, lat);
                    return;
                };
                // This member's packets leave its NAT toward j: j may answer from now on.
                self.sent.insert((i, j), self.now);
                let admitted = self.admits(j, i);
                if !admitted
                    && !lost
                    && self.nat[j] != SimNat::Blocked
                    && punchable(self.nat[i], self.nat[j])
                    && self.listening[j]
                    && self.nodes[j].is_online()
                {
                    // Dropped at j's NAT for now; QUIC sends its first flight again.
                    self.schedule(self.now + RESEND_MS, Action::Resend(i, j, addr, lat));
                    return;
                }
                if !admitted
                    || !self.listening[j]
                    || !self.nodes[j].is_online()
                    || lost
                    || self.cut(i, j)
                {
                    self.dial_fails(i, addr, lat);
                    return;
                }
                self.link(i, j, addr, self.seen_at(i), None, lat);
            }
            Output::DialVia { via, node_id } => {
                let Some(&(r, cr)) = self.links.get(&(i, via)) else {
                    let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
                    self.schedule(
                        self.now,
                        Action::Input(i, Input::DialViaFailed(node_id, hr)),
                    );
                    return;
                };
                let tunnel = self.next_tunnel;
                self.next_tunnel += 1;
                self.tunnels.insert(
                    tunnel,
                    SimTunnel {
                        from: i,
                        from_via: via,
                        target_node: node_id,
                        relay: r,
                        target: None,
                    },
                );
                let at = self.in_order(i, via);
                self.schedule(
                    at,
                    Action::Input(
                        r,
                        Input::TunnelRequest {
                            tunnel,
                            from: cr,
                            target: node_id,
                        },
                    ),
                );
            }
            Output::RelayTunnel {
                tunnel,
                to,
                from_node,
            } => {
                let (Some(&(b, cb)), Some(t)) =
                    (self.links.get(&(i, to)), self.tunnels.get_mut(&tunnel))
                else {
                    self.schedule(self.now, Action::Input(i, Input::TunnelEnded(tunnel)));
                    return;
                };
                t.target = Some((b, cb));
                let at = self.in_order(i, to);
                self.schedule(
                    at,
                    Action::Input(
                        b,
                        Input::TunnelOffer {
                            tunnel,
                            via: cb,
                            from: from_node,
                        },
                    ),
                );
            }
            Output::RefuseTunnel(tunnel, _) => {
                let Some(t) = self.tunnels.remove(&tunnel) else {
                    return;
                };
                if i != t.relay {
                    // The target refused: the relay's count ends too.
                    self.schedule(self.now, Action::Input(t.relay, Input::TunnelEnded(tunnel)));
                }
                let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
                let lat = self.latency();
                self.schedule(
                    self.now + lat,
                    Action::Input(t.from, Input::DialViaFailed(t.target_node, hr)),
                );
            }
            Output::AcceptTunnel(tunnel) => {
                let Some(t) = self.tunnels.get(&tunnel) else {
                    return;
                };
                let (from, from_via, relay) = (t.from, t.from_via, t.relay);
                let Some((b, cb)) = t.target else {
                    return;
                };
                let (live_a, live_b) = (
                    self.links.contains_key(&(from, from_via)),
                    self.links.contains_key(&(b, cb)),
                );
                if !live_a || !live_b || self.cut(from, b) {
                    self.tunnels.remove(&tunnel);
                    self.schedule(self.now, Action::Input(relay, Input::TunnelEnded(tunnel)));
                    self.schedule(self.now, Action::Input(b, Input::TunnelEnded(tunnel)));
                    let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
                    let node = self.nodes[b].node_id();
                    self.schedule(
                        self.now,
                        Action::Input(from, Input::DialViaFailed(node, hr)),
                    );
                    return;
                }
                let lat = 2 * self.latency();
                let vias = (
                    Via {
                        relay: from_via,
                        node: self.nodes[b].node_id(),
                    },
                    Via {
                        relay: cb,
                        node: self.nodes[from].node_id(),
                    },
                );
                let tunnel_addr = SocketAddr::from(([240, 0, 0, 1], tunnel as u16));
                let (ci, cj) = self.link(from, b, tunnel_addr, tunnel_addr, Some(vias), lat);
                self.link_tunnel.insert((from, ci), tunnel);
                self.link_tunnel.insert((b, cj), tunnel);
            }
            Output::EndTunnel(tunnel) => {
                // The relay stops carrying it: the connection through it drops at both ends.
                let end = self
                    .link_tunnel
                    .iter()
                    .find(|(_, t)| **t == tunnel)
                    .map(|(end, _)| *end);
                if let Some((n, c)) = end {
                    if let Some(&(j, cj)) = self.links.get(&(n, c)) {
                        self.drop_link(n, c, j, cj);
                    }
                }
            }
            Output::Send(conn, msg) => {
                if let Some(&(j, cj)) = self.links.get(&(i, conn)) {
                    let at = self.in_order(i, conn);
                    self.schedule(at, Action::Input(j, Input::Message(cj, msg)));
                }
            }
            Output::Disconnect(conn, _) => {
                if let Some((j, cj)) = self.links.remove(&(i, conn)) {
                    self.closes += 1;
                    self.links.remove(&(j, cj));
                    let at = self.in_order(i, conn);
                    self.link_clock.remove(&(i, conn));
                    self.link_clock.remove(&(j, cj));
                    self.schedule(at, Action::Input(j, Input::ConnectionDown(cj)));
                    self.end_tunnel_of(i, conn, j, cj, at);
                }
            }
            Output::Event(GroupEvent::RecordChanged {
                change: RecordChange::Added,
                id,
                ..
            }) => {
                if let Some(d) = self.deliveries.get_mut(&id) {
                    d.seen[i].get_or_insert(self.now);
                }
            }
            Output::Event(GroupEvent::MemberChanged { change, identity }) => {
                self.member_events.push((i, self.now, change, identity));
            }
            Output::Event(_) | Output::Persist(_) => {}
        }
    }

    /// A connection from `i` to `j`: `j` sees it up after `lat`, `i` after twice that.
    fn link(
        &mut self,
        i: usize,
        j: usize,
        dialled: SocketAddr,
        seen_at: SocketAddr,
        vias: Option<(Via, Via)>,
        lat: Millis,
    ) -> (ConnId, ConnId) {
        let (ci, cj) = (self.next_conn, self.next_conn + 1);
        self.next_conn += 2;
        self.links.insert((i, ci), (j, cj));
        self.links.insert((j, cj), (i, ci));
        let up = |member: usize, conn, remote, outbound, via| Input::ConnectionUp {
            conn,
            member: format!("member-{member}"),
            remote,
            outbound,
            via,
        };
        self.schedule(
            self.now + lat,
            Action::Input(j, up(i, cj, seen_at, false, vias.map(|v| v.1))),
        );
        self.schedule(
            self.now + 2 * lat,
            Action::Input(i, up(j, ci, dialled, true, vias.map(|v| v.0))),
        );
        // Nothing the dialed side sends may land before the dialer saw the
        // connection up (in QUIC the handshake completes first).
        self.link_clock.insert((j, cj), self.now + 2 * lat);
        (ci, cj)
    }

    /// A link through a tunnel closed: the relay and the target stop counting the tunnel.
    fn end_tunnel_of(&mut self, i: usize, ci: ConnId, j: usize, cj: ConnId, at: Millis) {
        let a = self.link_tunnel.remove(&(i, ci));
        let b = self.link_tunnel.remove(&(j, cj));
        if let Some(tunnel) = a.or(b) {
            if let Some(t) = self.tunnels.remove(&tunnel) {
                self.schedule(at, Action::Input(t.relay, Input::TunnelEnded(tunnel)));
                if let Some((target, _)) = t.target {
                    self.schedule(at, Action::Input(target, Input::TunnelEnded(tunnel)));
                }
            }
        }
    }

    /// Relayed neighbours right now, over all members (each link counted at both ends).
    pub fn relayed_links(&self) -> usize {
        self.nodes
            .iter()
            .map(|g| {
                g.neighbours()
                    .filter(|n| g.relayed_by(n.0).is_some())
                    .count()
            })
            .sum()
    }

    /// The member an address dials: its own address when public, its mapped one behind a
    /// NAT that is not blocked.
    fn target_of(&self, addr: SocketAddr) -> Option<usize> {
        let j = if addr.ip().is_loopback() {
            addr.port().checked_sub(10_000)? as usize
        } else {
            let o = match addr.ip() {
                std::net::IpAddr::V4(v4) => v4.octets(),
                std::net::IpAddr::V6(_) => return None,
            };
            ((o[2] as usize) << 8) | o[3] as usize
        };
        if j >= self.nodes.len() {
            return None;
        }
        let right = match self.nat[j] {
            SimNat::Public => addr == addr_of(j),
            SimNat::Blocked => false,
            _ => addr == mapped_of(j),
        };
        right.then_some(j)
    }

    /// Whether `j`'s NAT lets a dial from `i` in now.
    fn admits(&self, j: usize, i: usize) -> bool {
        match self.nat[j] {
            SimNat::Public | SimNat::FullCone => true,
            SimNat::Blocked => false,
            _ => {
                punchable(self.nat[i], self.nat[j])
                    && self
                        .sent
                        .get(&(j, i))
                        .is_some_and(|t| self.now.saturating_sub(*t) <= PUNCH_OPEN_MS)
            }
        }
    }

    /// A dial from `i` that `j`'s NAT dropped, sent again: through if `j` has sent to `i`
    /// meanwhile (a punch), else failed.
    fn resent(&mut self, i: usize, j: usize, addr: SocketAddr, lat: Millis) {
        let up = self.admits(j, i)
            && self.listening[j]
            && self.nodes[j].is_online()
            && self.nodes[i].is_online()
            && !self.cut(i, j);
        if !up {
            self.dial_fails(i, addr, lat);
            return;
        }
        self.link(i, j, addr, self.seen_at(i), None, lat);
    }

    /// `i`'s dial of `addr` fails, after a round trip.
    fn dial_fails(&mut self, i: usize, addr: SocketAddr, lat: Millis) {
        let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
        self.schedule(
            self.now + 2 * lat,
            Action::Input(i, Input::DialFailed(addr, hr)),
        );
    }

    /// Where the members `i` dials see it: its mapped address behind a NAT.
    fn seen_at(&self, i: usize) -> SocketAddr {
        if self.natted[i] {
            mapped_of(i)
        } else {
            addr_of(i)
        }
    }

    /// Members' links, and how many of them run through a relay (each link counted at both
    /// ends).
    pub fn link_counts(&self) -> (usize, usize) {
        let all = self.nodes.iter().map(|g| g.neighbours().count()).sum();
        (all, self.relayed_links())
    }

    fn cut(&self, i: usize, j: usize) -> bool {
        self.partitioned && self.side[i] != self.side[j]
    }

    /// Cuts the network in two: `side_b` on one side, everyone else on the other. Every
    /// connection across fails at once (both ends see it drop) and no dial crosses until
    /// [`Sim::heal`].
    pub fn partition(&mut self, side_b: &[usize]) {
        self.side = vec![0; self.nodes.len()];
        for &i in side_b {
            self.side[i] = 1;
        }
        self.partitioned = true;
        let crossing: Vec<((usize, ConnId), (usize, ConnId))> = self
            .links
            .iter()
            .filter(|(&(i, _), &(j, _))| i < j && self.side[i] != self.side[j])
            .map(|(a, b)| (*a, *b))
            .collect();
        for ((i, ci), (j, cj)) in crossing {
            self.drop_link(i, ci, j, cj);
        }
    }

    /// The link between `(i, ci)` and `(j, cj)` fails now: both ends see it drop, and a
    /// tunnel it ran through ends.
    fn drop_link(&mut self, i: usize, ci: ConnId, j: usize, cj: ConnId) {
        self.links.remove(&(i, ci));
        self.links.remove(&(j, cj));
        self.link_clock.remove(&(i, ci));
        self.link_clock.remove(&(j, cj));
        self.schedule(self.now, Action::Input(i, Input::ConnectionDown(ci)));
        self.schedule(self.now, Action::Input(j, Input::ConnectionDown(cj)));
        self.end_tunnel_of(i, ci, j, cj, self.now);
    }

    /// Ends the partition: dials across succeed again (members reconnect on their next
    /// maintenance, then reconcile).
    pub fn heal(&mut self) {
        self.partitioned = false;
    }

    /// Member `i` closes the group (its connections close) — churn.
    pub fn leave(&mut self, i: usize) {
        self.schedule(self.now, Action::Input(i, Input::Close));
    }

    /// Member `i` connects again.
    pub fn rejoin(&mut self, i: usize) {
        self.schedule(self.now, Action::Input(i, Input::Connect));
    }

    /// Member `i` adds a record of `record_type` with `data`, signed with its identity,
    /// expiring in an hour of its clock; returns the id. Needs [`SimConfig::records`].
    pub fn add_record(&mut self, i: usize, record_type: [u8; 16], data: Vec<u8>) -> [u8; 16] {
        let pool = self.identities.clone().expect("a simulation with records");
        let person = &pool.people[i];
        let now = self.clock(i) as i64;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        let mut record = Record {
            record_type,
            id: derive_id(&person.name, &record_type, now, &nonce),
            id_nonce: nonce,
            version: 1,
            flags: 0,
            creator: person.name.clone(),
            modifier: person.name.clone(),
            attributes: String::new(),
            created: now,
            expires: now + 3_600_000,
            modified: now,
            data,
            security: Vec::new(),
        };
        record.sign(&person.key, &person.chain).expect("signing");
        let id = record.id;
        self.deliveries.insert(
            id,
            Delivery {
                added: self.now,
                seen: vec![None; self.nodes.len()],
            },
        );
        self.store_local(i, record);
        id
    }

    /// Member `i` (the creator or an administrator, else every member refuses it) makes the
    /// next version of record `id`: new data, or a tombstone when `data` is `None`.
    pub fn modify_record(&mut self, i: usize, id: [u8; 16], data: Option<Vec<u8>>) {
        let pool = self.identities.clone().expect("a simulation with records");
        let person = &pool.people[i];
        let now = self.clock(i) as i64;
        let current = self.record(i, &id).expect("the member holds the record");
        let mut next = match data {
            Some(data) => Record {
                version: current.version + 1,
                modifier: person.name.clone(),
                modified: now.max(current.modified),
                data,
                security: Vec::new(),
                ..current
            },
            None => current.tombstone(&person.name, now.max(current.modified)),
        };
        next.sign(&person.key, &person.chain).expect("signing");
        self.store_local(i, next);
    }

    /// Stores a record at member `i` below the API, without checks, and hands it to the
    /// machine as a local record: how a forged record would enter a group.
    pub fn inject_record(&mut self, i: usize, record: Record) {
        self.store_local(i, record);
    }

    fn store_local(&mut self, i: usize, record: Record) {
        let port = self.nodes[i]
            .record_port()
            .expect("a simulation with records");
        port.put(std::slice::from_ref(&record)).expect("memory put");
        self.feed(i, Input::LocalRecords(vec![record]));
    }

    /// Member `i`'s stored version of record `id`.
    pub fn record(&mut self, i: usize, id: &[u8; 16]) -> Option<Record> {
        let now = self.clock(i) as i64;
        let port = self.nodes[i].record_port()?;
        let enc = port.encodings(&[*id], now).ok()?.pop()??;
        Record::decode(&enc).ok()
    }

    /// Member `i`'s database as items, sorted.
    pub fn items(&mut self, i: usize) -> Vec<ItemKey> {
        let now = self.clock(i) as i64;
        let mut items = self.nodes[i]
            .record_port()
            .and_then(|p| p.items(now).ok())
            .unwrap_or_default();
        items.sort();
        items
    }

    /// True when every member in `members` holds the same records.
    pub fn identical(&mut self, members: &[usize]) -> bool {
        let Some((&first, rest)) = members.split_first() else {
            return true;
        };
        let want = self.items(first);
        rest.iter().all(|&i| self.items(i) == want)
    }

    /// The members member `i` holds a live presence record of, by peer name.
    pub fn present(&mut self, i: usize) -> Vec<String> {
        let now = self.clock(i) as i64;
        let mut names: Vec<String> = self.nodes[i]
            .record_port()
            .and_then(|p| p.of_type(&PRESENCE_TYPE, now).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.creator)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Add-to-report times of the records added with [`Sim::add_record`].
    pub fn deliveries(&self) -> impl Iterator<Item = (&[u8; 16], &Delivery)> {
        self.deliveries.iter()
    }

    /// The identity pool's member peer name of member `i` (with records).
    pub fn member_name(&self, i: usize) -> Option<&str> {
        self.identities.as_ref().map(|p| p.people[i].name.as_str())
    }

    /// When something sent now on `(i, conn)` lands: after its latency, and never before
    /// what was sent earlier on the same link (a QUIC stream delivers in order, and a
    /// graceful close comes after the data).
    fn in_order(&mut self, i: usize, conn: ConnId) -> Millis {
        let mut lat = self.latency();
        if self.cfg.loss_per_mille > 0 && self.rng.range(0, 1000) < self.cfg.loss_per_mille {
            lat += self.cfg.retransmit;
        }
        let clock = self.link_clock.entry((i, conn)).or_insert(0);
        *clock = (*clock).max(self.now + lat);
        *clock
    }

    /// True when the neighbour graph (connections both ends count as neighbours) connects
    /// every member.
    pub fn connected(&self) -> bool {
        let n = self.nodes.len();
        let mut adj = vec![Vec::new(); n];
        for (&(i, ci), &(j, cj)) in &self.links {
            let up = |k: usize, c: ConnId| self.nodes[k].neighbours().any(|nb| nb.0 == c);
            if up(i, ci) && up(j, cj) {
                adj[i].push(j);
            }
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    }

    /// Each member's neighbour count.
    pub fn degrees(&self) -> Vec<usize> {
        self.nodes.iter().map(|g| g.neighbours().count()).collect()
    }
}
