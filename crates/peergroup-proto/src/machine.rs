//! The group as a deterministic state machine: no sockets, no clocks, no tasks.
//!
//! Inputs are API commands, connection changes, peer messages and the time; outputs are
//! dials, messages, disconnects, events and things to persist. The tokio driver feeds it from
//! the transport; tests feed it from a simulated network. Like quinn-proto, the same inputs in
//! the same order give the same outputs.
//!
//! Membership itself is settled before a connection reaches this machine: the transport's
//! handshake only lets members through, and `ConnectionUp` names the authenticated member.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use crate::dialback::{DialBacks, Outside};
use crate::io::{
    CloseReason, ConnId, ConnectionStatus, GroupEvent, Input, Millis, Output, Persist, Via,
    STATUS_HAS_CONNECTIONS, STATUS_LISTENING,
};
use crate::members::duties::{MemberDuties, MemberSettings};
use crate::port::{Publisher, RecordPort};
use crate::reachability::{NatClass, Reachability};
use crate::records::record::Record;
use crate::relay::{Leg, Relays};
use crate::replication::{Replication, ReplicationStats};
use crate::rng::Rng;
use crate::wire::{
    DialBack, Hello, Message, PeerEntry, SignedProperties, MAX_ADDRS, MAX_PEER_ENTRIES, MAX_RELAYS,
};

/// First wait before a member reached only through a relay is dialled directly again (with
/// a punch: [`PUNCH_ATTEMPTS`]); doubled after each failure up to [`DIRECT_RETRY_MAX_MS`].
/// The punches go at 0.5, 1.5 and 3.5 s, so a punchable pair is direct within seconds.
pub const DIRECT_RETRY_MS: Millis = 500;
/// Longest wait between direct dials of a member reached only through a relay.
pub const DIRECT_RETRY_MAX_MS: Millis = 5 * 60 * 1000;
/// Of those dials, how many are hole punches ([`Message::Punch`]: both sides dial at once)
/// before the member stays relayed, dialling alone at the growing wait.
pub const PUNCH_ATTEMPTS: u32 = 3;
/// Addresses of a [`Message::Punch`] dialled (the first ones: observed addresses first).
pub const PUNCH_ADDRS: usize = 3;
/// Inbound members a relaying member takes beyond [`Config::max_neighbours`]: members behind
/// NATs reach each other only through relays they are connected to, so a relay must have
/// room for many of them (64 in all with the default maximum of 8, as many as
/// [`crate::relay::MAX_TUNNELS_PER_RELAY`]).
pub const RELAY_EXTRA_NEIGHBOURS: usize = 56;
/// Relays a member behind a NAT keeps among its direct neighbours when it knows that many:
/// two, so that losing one leaves it reachable while it finds another.
pub const RELAYS_WANTED_BEHIND_NAT: usize = 2;
/// A relay neighbour is named in this member's entry only once its connection has held this
/// long: a relay at its capacity refuses a newcomer right after the `Hello`s, and naming it
/// meanwhile would send the whole group two entry changes for nothing (the 300-member NAT
/// simulation spent most of its messages on exactly that).
pub const RELAY_SETTLE_MS: Millis = 1000;
/// A relay that ended the connection this member dialled to it within [`RELAY_SETTLE_MS`]
/// (it was full) is not dialled for a relay slot again for this long.
pub const RELAY_REFUSED_RETRY_MS: Millis = 60_000;

/// Direct neighbours a member dials itself while it does not know its NAT's class, even
/// when members that dialled it fill its room: only a connection it dialled tells it where
/// its packets come from, and the class takes two such observers at different IPs
/// ([`crate::reachability`]). A member full of inbound neighbours (a reachable one, others'
/// random dials) drops one for its own dial until it knows; and keeps one it dialled while
/// its dial-back test has no result ([`crate::dialback`]).
pub const MIN_DIALLED: usize = 2;

/// Nodes (processes) of one member whose addresses a member keeps: a member may run on
/// several machines at once, and each is dialled at its own addresses. Beyond this, the
/// node with the oldest entry is forgotten.
pub const MAX_NODES_PER_MEMBER: usize = 4;
/// Dials of a node's addresses that failed one after the other, since it last answered,
/// after which it is forgotten if a newer node of its member is known (its process exited:
/// the member came back as another node).
pub const STALE_NODE_FAILURES: u32 = 3;

/// Settings of one group's machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub node_id: u64,
    /// This member's peer name.
    pub member: String,
    /// True for the group's creator (listens at once).
    pub creator: bool,
    /// True when the node synchronised before (listens at once, like the creator).
    pub synced_before: bool,
    /// Neighbours the node tries to keep.
    pub target_neighbours: usize,
    /// Most neighbours the node ever holds. Further inbound members are referred elsewhere,
    /// except a newcomer with fewer than `target_neighbours`: for it a full member drops one
    /// of its own neighbours (see [`Group`]), so a member is never left out of a full group.
    pub max_neighbours: usize,
    /// Period of connection maintenance.
    pub maintenance_interval: Millis,
    /// Seed of the machine's random choices (which members to dial), so runs repeat.
    pub seed: u64,
    /// Period of anti-entropy: each member reconciles its records with one random
    /// neighbour this often, whatever else happened.
    pub anti_entropy_interval: Millis,
    /// This member relays for other members of the group (opt-in; the group's properties
    /// may still turn relaying off, see [`crate::properties::PEERGROUP_DISABLE_RELAYS`]).
    pub relay: bool,
}

impl Config {
    /// Defaults for a member.
    pub fn new(node_id: u64, member: &str) -> Self {
        Config {
            node_id,
            member: member.to_owned(),
            creator: false,
            synced_before: false,
            target_neighbours: 4,
            max_neighbours: 8,
            maintenance_interval: 5_000,
            seed: node_id,
            anti_entropy_interval: 30_000,
            relay: false,
        }
    }
}

struct Neighbour {
    member: String,
    node_id: u64,
    outbound: bool,
    remote: SocketAddr,
    /// Its neighbour count from its `Hello` (a hint: it was that when the connection began).
    degree: usize,
    /// It relays for members (its `Hello` said so).
    relay: bool,
    /// The relay this connection runs through, if it is not direct.
    via: Option<Via>,
    /// When its `Hello` arrived.
    since: Millis,
}

struct Pending {
    member: String,
    outbound: bool,
    remote: SocketAddr,
    via: Option<Via>,
}

/// One group, as seen from one member.
///
/// **Neighbour management.** A member dials known members until it has
/// [`Config::target_neighbours`], and now and then one more at random while it has fewer than
/// [`Config::max_neighbours`]. It accepts inbound members up to the maximum; at the maximum it
/// refers a newcomer to other members and closes (`Busy`), unless the newcomer's `Hello` says
/// it has fewer neighbours than the target: then the member makes room by dropping the
/// neighbour that reported the most neighbours (ties broken by the seeded generator; never the
/// newcomer), sending it a referral before the close so it can rewire, and takes the newcomer.
/// A member therefore never holds more than the maximum, and a member with too few
/// neighbours (cut off by a partition, or new) always finds a place, even when every member
/// is full. Only members short of their target make room this way, and the dropped neighbour
/// is the best connected one, so it stays above its target and does not displace anyone in
/// turn: no churn loop.
pub struct Group {
    cfg: Config,
    now: Millis,
    online: bool,
    listening: bool,
    listen_requested: bool,
    synced: bool,
    status: u32,
    my_addrs: Vec<SocketAddr>,
    /// What other members saw of this member's addresses (mapped, confirmed).
    reach: Reachability,
    /// Whether members reach this member unasked, and the tests it runs for others.
    dial_backs: DialBacks,
    pending: BTreeMap<ConnId, Pending>,
    neighbours: BTreeMap<ConnId, Neighbour>,
    /// Every node of every member this one knows, by (member, node id), with its entry.
    known: BTreeMap<(String, u64), PeerEntry>,
    /// Per known node: dials of its addresses that failed since it last answered.
    node_failures: BTreeMap<u64, u32>,
    bootstrap: Vec<SocketAddr>,
    /// Addresses members announced on the LAN, newest first ([`crate::lan::MAX_LAN_FOUND`]).
    lan: Vec<SocketAddr>,
    dialing: BTreeSet<SocketAddr>,
    /// Nodes being dialled through a relay.
    dialing_via: BTreeSet<u64>,
    /// Nodes reached only through a relay: when to dial them directly next, and the wait
    /// after that.
    direct_retry: BTreeMap<u64, (Millis, Millis)>,
    /// Tunnels carried as a relay, and accepted as a target.
    relays: Relays,
    /// The relays this member last named in its entry.
    my_relays: Vec<u64>,
    /// When a relay neighbour that came up will have settled ([`RELAY_SETTLE_MS`]): the
    /// named relays are looked at again then.
    relay_naming_at: Option<Millis>,
    /// Relays that refused this member lately, with when they may be dialled again
    /// ([`RELAY_REFUSED_RETRY_MS`]); at most one entry per relay.
    relay_refused: BTreeMap<u64, Millis>,
    /// Members with no NAT in front of them that a dial at their addresses failed to reach
    /// since they were last neighbours: only these are dialled through their relays.
    direct_failed: BTreeSet<u64>,
    /// Punches sent to each member reached only through a relay.
    punches: BTreeMap<u64, u32>,
    /// The version of this member's own entry ([`PeerEntry::version`]).
    entry_version: u64,
    failed_reported: bool,
    properties: Option<SignedProperties>,
    next_maintenance: Option<Millis>,
    next_anti_entropy: Option<Millis>,
    /// Members learned since `known` was last persisted (written on maintenance and close,
    /// not on every message).
    known_dirty: bool,
    repl: Option<Replication>,
    /// Member data and presence publishing, when the host gave a publisher.
    duties: Option<MemberDuties>,
    rng: Rng,
    out: VecDeque<Output>,
}

impl Group {
    /// A group machine, offline, with what storage remembers.
    pub fn new(cfg: Config, known: Vec<PeerEntry>, properties: Option<SignedProperties>) -> Self {
        let synced = cfg.synced_before || cfg.creator;
        let rng = Rng::new(cfg.seed);
        Group {
            known: known
                .into_iter()
                .filter(|e| e.member != cfg.member)
                .map(|e| ((e.member.clone(), e.node_id), e))
                .collect(),
            node_failures: BTreeMap::new(),
            cfg,
            now: 0,
            online: false,
            listening: false,
            listen_requested: false,
            synced,
            status: 0,
            my_addrs: Vec::new(),
            reach: Reachability::new(),
            dial_backs: DialBacks::new(),
            pending: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            bootstrap: Vec::new(),
            lan: Vec::new(),
            dialing: BTreeSet::new(),
            dialing_via: BTreeSet::new(),
            direct_retry: BTreeMap::new(),
            relays: Relays::new(),
            my_relays: Vec::new(),
            relay_naming_at: None,
            relay_refused: BTreeMap::new(),
            direct_failed: BTreeSet::new(),
            punches: BTreeMap::new(),
            entry_version: 0,
            failed_reported: false,
            properties,
            next_maintenance: None,
            next_anti_entropy: None,
            known_dirty: false,
            repl: None,
            duties: None,
            rng,
            out: VecDeque::new(),
        }
    }

    /// Gives the machine a record database: it then replicates records (see
    /// [`crate::replication`]). Without one it runs membership only.
    pub fn with_records(mut self, port: Box<dyn RecordPort>) -> Self {
        self.repl = Some(Replication::new(port, &self.cfg.member));
        self
    }

    /// Makes the member publish its member data and presence (see [`crate::members`]),
    /// signed by `publisher`, under `settings` (updated when properties arrive). Needs
    /// [`Group::with_records`].
    pub fn with_members(mut self, publisher: Box<dyn Publisher>, settings: MemberSettings) -> Self {
        self.duties = Some(MemberDuties::new(
            publisher,
            settings,
            &self.cfg.member,
            self.cfg.node_id,
        ));
        self
    }

    /// Stores and floods records the member's duties made.
    fn publish_own(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        if let Some(r) = self.repl.as_mut() {
            match r.port().put(&records) {
                Ok(_) => r.local(records, &mut self.out),
                Err(e) => tracing::warn!(error = %e, "storing member records"),
            }
        }
    }

    /// Runs one duty with the clock and the record port, then publishes what it made.
    fn duty(&mut self, f: impl FnOnce(&mut MemberDuties, i64, &mut dyn RecordPort) -> Vec<Record>) {
        let now = self.now as i64;
        let made = match (self.duties.as_mut(), self.repl.as_mut()) {
            (Some(d), Some(r)) => f(d, now, r.port()),
            _ => return,
        };
        self.publish_own(made);
    }

    /// What replication did so far (zeros without a record database).
    pub fn replication_stats(&self) -> ReplicationStats {
        self.repl
            .as_ref()
            .map(|r| r.stats().clone())
            .unwrap_or_default()
    }

    /// The record database given to [`Group::with_records`].
    pub fn record_port(&mut self) -> Option<&mut dyn RecordPort> {
        self.repl.as_mut().map(|r| r.port())
    }

    /// Adds addresses to try first (an invitation's issuer addresses).
    pub fn add_bootstrap(&mut self, addrs: &[SocketAddr]) {
        for a in addrs {
            if !self.bootstrap.contains(a) {
                self.bootstrap.push(*a);
            }
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.cfg.node_id
    }

    /// The `PEER_GROUP_STATUS` bits.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// True after the first synchronisation with a member (or for the creator).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// True between `Connect` and `Close`.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The connected neighbours: (connection, member, node id, remote address, outbound).
    pub fn neighbours(&self) -> impl Iterator<Item = (ConnId, &str, u64, SocketAddr, bool)> {
        self.neighbours
            .iter()
            .map(|(c, n)| (*c, n.member.as_str(), n.node_id, n.remote, n.outbound))
    }

    /// Relay for other members (opt-in) or stop. Neighbours learn it from the `Hello` of
    /// connections made from now on.
    pub fn set_relay(&mut self, on: bool) {
        self.cfg.relay = on;
        self.end_tunnels_unless_relaying();
    }

    /// Ends the tunnels this member carries once it no longer relays (turned off here, or
    /// by the group's `PEERGROUP_DISABLE_RELAYS`): no tunnel outlives the permission.
    fn end_tunnels_unless_relaying(&mut self) {
        if self.cfg.relay && self.relays_allowed() {
            return;
        }
        for tunnel in self.relays.stop_carrying() {
            self.out.push_back(Output::EndTunnel(tunnel));
        }
    }

    /// For a neighbour connected through a relay: the relay's node id.
    pub fn relayed_by(&self, conn: ConnId) -> Option<u64> {
        let via = self.neighbours.get(&conn)?.via?;
        self.neighbours.get(&via.relay).map(|r| r.node_id)
    }

    /// Dials in flight and connections awaiting their `Hello`: (dialing, pending).
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.dialing.len() + self.dialing_via.len(),
            self.pending.len(),
        )
    }

    /// Tunnels this member carries as a relay, and tunnels it accepted, now.
    pub fn tunnels(&self) -> (usize, usize) {
        (self.relays.carried(), self.relays.accepted())
    }

    /// True when this member relays now: it opted in, the group allows it, and it listens.
    pub fn offers_relay(&self) -> bool {
        self.cfg.relay && self.listening && self.relays_allowed()
    }

    /// Most neighbours this member holds: [`Config::max_neighbours`], and
    /// [`RELAY_EXTRA_NEIGHBOURS`] more while it relays.
    /// True while this member needs a direct neighbour it dialled more, counting `dialing`
    /// dials under way: [`MIN_DIALLED`] while it does not know its NAT's class, one while its
    /// dial-back test has no result (it is asked through a neighbour it dialled).
    fn short_of_observers(&self, dialing: usize) -> bool {
        let dialled = dialing
            + self
                .neighbours
                .values()
                .filter(|n| n.outbound && n.via.is_none())
                .count();
        match self.nat_class() {
            NatClass::Unknown => dialled < MIN_DIALLED,
            NatClass::EndpointIndependent if self.listening => {
                self.outside() == Outside::Unknown && dialled < 1
            }
            _ => false,
        }
    }

    fn max_inbound(&self) -> usize {
        if self.offers_relay() {
            self.cfg.max_neighbours + RELAY_EXTRA_NEIGHBOURS
        } else {
            self.cfg.max_neighbours
        }
    }

    fn relays_allowed(&self) -> bool {
        self.properties
            .as_ref()
            .and_then(|p| {
                serde_json::from_slice::<crate::properties::GroupProperties>(&p.body).ok()
            })
            .is_none_or(|p| p.flags & crate::properties::PEERGROUP_DISABLE_RELAYS == 0)
    }

    /// The relays this member names in its entry: its direct neighbours that relay, unless
    /// members reach it at an interface address (no NAT in front of it).
    fn relays_to_name(&self) -> Vec<u64> {
        // A public member names its relays too: a firewall may still keep some member from
        // its addresses (its `public` flag makes others try those first).
        if !self.listening || !self.relays_allowed() {
            return Vec::new();
        }
        let mut settled: Vec<u64> = self
            .neighbours
            .values()
            .filter(|n| n.relay && n.via.is_none() && self.now >= n.since + RELAY_SETTLE_MS)
            .map(|n| n.node_id)
            .collect();
        settled.sort_unstable();
        // The ones named already stay named while connected: a new relay neighbour changes
        // the entry only when there is room for it.
        let mut ids: Vec<u64> = self
            .my_relays
            .iter()
            .copied()
            .filter(|r| settled.contains(r))
            .collect();
        for r in settled {
            if ids.len() < MAX_RELAYS && !ids.contains(&r) {
                ids.push(r);
            }
        }
        ids
    }

    /// Where the relays this member names can be reached: their advertised addresses as
    /// known, else where this member reaches them. An invitation made here carries them.
    pub fn relay_addrs(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for relay in &self.my_relays {
            let known = self
                .known
                .values()
                .find(|e| e.node_id == *relay)
                .map(|e| e.addrs.iter().take(2).copied().collect::<Vec<_>>())
                .unwrap_or_default();
            let addrs = if known.is_empty() {
                self.neighbours
                    .values()
                    .filter(|n| n.node_id == *relay && n.via.is_none())
                    .map(|n| n.remote)
                    .collect()
            } else {
                known
            };
            for a in addrs {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// This member's own entry, as neighbours and the peer list get it.
    fn my_entry(&self) -> PeerEntry {
        PeerEntry {
            member: self.cfg.member.clone(),
            node_id: self.cfg.node_id,
            addrs: self.advertised_addrs(),
            relays: self.my_relays.clone(),
            // As of this announcement; a change alone is not announced (a stale flag only
            // makes others try the relays sooner or later).
            public: self.publicly_reachable(),
            version: self.entry_version,
        }
    }

    /// Re-announces this member when the relays it names changed.
    fn relays_changed(&mut self) {
        let now = self.relays_to_name();
        if now != self.my_relays {
            self.my_relays = now;
            self.addresses_changed();
        }
    }

    /// Members and addresses known.
    pub fn known_peers(&self) -> impl Iterator<Item = &PeerEntry> {
        self.known.values()
    }

    /// What other members saw of this member's addresses.
    pub fn reachability(&self) -> &Reachability {
        &self.reach
    }

    /// This member's NAT mapping class, as other members' views tell it.
    pub fn nat_class(&self) -> NatClass {
        self.reach.nat(&self.my_addrs)
    }

    /// What a dial-back by a third member told this member ([`crate::dialback`]).
    pub fn outside(&self) -> Outside {
        self.dial_backs.outside(self.now)
    }

    /// Members reach this member's addresses unasked: no NAT in front of it, or a dial-back
    /// got through its NAT (a full cone).
    fn publicly_reachable(&self) -> bool {
        self.nat_class() == NatClass::None || matches!(self.outside(), Outside::Reachable(_))
    }

    /// Where this member says it can be reached (`Hello`, presence, the peer list): nothing
    /// before it listens; then confirmed and mapped addresses before interface ones
    /// ([`Reachability::advertised`]).
    pub fn advertised_addrs(&self) -> Vec<SocketAddr> {
        if !self.listening {
            return Vec::new();
        }
        self.reach.advertised(&self.my_addrs)
    }

    /// The addresses to offer a member for a coordinated punch
    /// ([`crate::reachability::Reachability::punch_candidates`]); none while not listening.
    pub fn punch_addrs(&self) -> Vec<SocketAddr> {
        if !self.listening {
            return Vec::new();
        }
        self.reach.punch_candidates(&self.my_addrs)
    }

    /// Every address that is this member's: advertised and interface ones (never dialled).
    fn own_addrs(&self) -> Vec<SocketAddr> {
        let mut mine = self.advertised_addrs();
        mine.extend(self.my_addrs.iter().copied());
        mine
    }

    /// This node's interface addresses changed. What observers saw of the old network says
    /// nothing of the new one, so it is forgotten (the next observations classify the NAT
    /// again); connections a member dialled to us are closed and that member dialled again,
    /// since it goes on sending to the old address (the ones we dialled migrate: QUIC
    /// validates the new path); neighbours and presence get the new addresses at once.
    fn moved(&mut self, addrs: Vec<SocketAddr>) {
        let new: Vec<SocketAddr> = addrs.into_iter().take(MAX_ADDRS).collect();
        if new == self.my_addrs {
            return;
        }
        self.my_addrs = new;
        self.reach = Reachability::new();
        self.dial_backs.reset(self.now);
        let accepted: Vec<ConnId> = self
            .neighbours
            .iter()
            .filter(|(_, n)| !n.outbound && n.via.is_none())
            .map(|(c, _)| *c)
            .collect();
        for c in accepted {
            self.conn_down(c);
            self.out
                .push_back(Output::Disconnect(c, CloseReason::Moved));
        }
        // Punching starts over from the new network.
        self.punches.clear();
        self.addresses_changed();
        if self.online {
            self.dial_more();
        }
        self.update_status();
    }

    /// The advertised addresses changed: tell the neighbours and refresh presence.
    fn addresses_changed(&mut self) {
        let addrs = self.advertised_addrs();
        if !self.listening {
            return;
        }
        self.my_relays = self.relays_to_name();
        self.entry_version = (self.entry_version + 1).max(self.now);
        let me = self.my_entry();
        for conn in self.neighbours.keys() {
            self.out
                .push_back(Output::Send(*conn, Message::Peers(vec![me.clone()])));
        }
        if self.online && self.synced {
            self.duty(|d, now, port| d.start(now, &addrs, port));
        }
    }

    /// The current signed properties, if any were set or received.
    pub fn properties(&self) -> Option<&SignedProperties> {
        self.properties.as_ref()
    }

    /// When the machine next wants a `Tick`.
    pub fn poll_timeout(&self) -> Option<Millis> {
        [
            self.next_maintenance,
            self.next_anti_entropy,
            self.repl.as_ref().and_then(|r| r.timeout()),
            self.duties.as_ref().and_then(|d| d.timeout()),
            self.online
                .then(|| self.direct_retry.values().map(|(at, _)| *at).min())
                .flatten(),
            self.relay_naming_at.filter(|_| self.online),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.out.pop_front();
        if let Some(Output::Dial(addr)) = &out {
            // Every dial opens this member's NAT to that IP: no dial-back test from there.
            self.dial_backs.contacted(addr.ip(), self.now);
        }
        out
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Connect => self.connect(),
            Input::ConnectByAddress(addrs) => {
                self.add_bootstrap(&addrs);
                self.connect();
            }
            Input::AddressesChanged(addrs) => self.moved(addrs),
            Input::RemoteChanged(conn, remote) => self.remote_changed(conn, remote),
            Input::Discovered(addrs) => {
                // Newest first, each announcement's addresses in its order.
                let new: Vec<SocketAddr> =
                    addrs.into_iter().take(crate::lan::MAX_LAN_ADDRS).collect();
                self.lan.retain(|l| !new.contains(l));
                self.lan.splice(0..0, new);
                self.lan.truncate(crate::lan::MAX_LAN_FOUND);
                if self.online {
                    self.dial_more();
                }
            }
            Input::Listening(addrs) => {
                self.my_addrs = addrs.into_iter().take(MAX_ADDRS).collect();
                self.listening = true;
                self.update_status();
                // Neighbours met before we listened know us without addresses: tell them.
                self.addresses_changed();
            }
            Input::ConnectionUp {
                conn,
                member,
                remote,
                outbound,
                via,
            } => {
                if !self.online {
                    self.out
                        .push_back(Output::Disconnect(conn, CloseReason::GroupClosed));
                    return;
                }
                match via {
                    Some(v) if outbound => {
                        self.dialing_via.remove(&v.node);
                    }
                    Some(_) => {}
                    None => {
                        self.dialing.remove(&remote);
                    }
                }
                if via.is_some_and(|v| self.direct_leg(v.relay).is_none()) {
                    // The relay went while the tunnel's connection came up.
                    self.out
                        .push_back(Output::Disconnect(conn, CloseReason::RelayGone));
                    return;
                }
                self.pending.insert(
                    conn,
                    Pending {
                        member,
                        outbound,
                        remote,
                        via,
                    },
                );
                let hello = Hello {
                    node_id: self.cfg.node_id,
                    listening: self.listening,
                    addrs: self.advertised_addrs(),
                    properties_version: self.properties.as_ref().map_or(0, |p| p.version),
                    neighbours: self.neighbours.len().min(u8::MAX as usize) as u8,
                    // A tunnel's address is the transport's own, not one the peer has.
                    observed: via.is_none().then_some(remote),
                    relay: self.offers_relay(),
                    entry_version: self.entry_version,
                    // The nonce of a dial-back test this dial was asked for, if it was.
                    dial_back: if outbound && via.is_none() {
                        self.dial_backs.dial_done(remote)
                    } else {
                        0
                    },
                };
                self.out
                    .push_back(Output::Send(conn, Message::Hello(hello)));
            }
            Input::ConnectionDown(conn) => {
                self.conn_down(conn);
                self.update_status();
                self.relays_changed();
                if self.online && self.neighbours.len() < self.cfg.target_neighbours {
                    self.dial_more();
                }
            }
            Input::DialFailed(addr, hr) => {
                self.dialing.remove(&addr);
                self.dial_backs.dial_done(addr);
                let failed: Vec<u64> = self
                    .known
                    .values()
                    .filter(|e| e.public && e.addrs.contains(&addr))
                    .map(|e| e.node_id)
                    .collect();
                self.direct_failed.extend(failed);
                self.node_dial_failed(addr);
                self.check_failed(hr);
            }
            Input::DialViaFailed(node, hr) => {
                self.dialing_via.remove(&node);
                self.check_failed(hr);
            }
            Input::TunnelRequest {
                tunnel,
                from,
                target,
            } => {
                let from = self.direct_leg(from);
                let to = self
                    .neighbours
                    .iter()
                    .find(|(_, n)| n.node_id == target && n.via.is_none())
                    .map(|(c, n)| Leg {
                        conn: *c,
                        node: n.node_id,
                    });
                let enabled = self.offers_relay();
                match self.relays.request(tunnel, enabled, from, to) {
                    Ok(to) => self.out.push_back(Output::RelayTunnel {
                        tunnel,
                        to,
                        from_node: from.map_or(0, |l| l.node),
                    }),
                    Err(why) => self.out.push_back(Output::RefuseTunnel(tunnel, why)),
                }
            }
            Input::TunnelOffer { tunnel, via, from } => {
                let via = self.direct_leg(via).filter(|_| self.online);
                match self.relays.offer(tunnel, via, from) {
                    Ok(()) => self.out.push_back(Output::AcceptTunnel(tunnel)),
                    Err(why) => self.out.push_back(Output::RefuseTunnel(tunnel, why)),
                }
            }
            Input::TunnelEnded(tunnel) => self.relays.ended(tunnel),
            Input::Message(conn, msg) => self.message(conn, msg),
            Input::VerifiedProperties(conn, props) => self.accept_properties(Some(conn), props),
            Input::LocalProperties(props) => self.accept_properties(None, props),
            Input::LocalRecords(records) => {
                if let Some(r) = self.repl.as_mut() {
                    r.local(records, &mut self.out);
                }
                self.duty(|d, now, _| d.acted(now));
            }
            Input::Tick => self.maintain(),
            Input::Close => self.close(),
        }
    }

    /// Forgets connection `conn` (pending or neighbour), the tunnels on it, and the
    /// connections through it.
    fn conn_down(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
        self.dial_backs.conn_down(conn);
        if let Some(n) = self.neighbours.get(&conn).filter(|n| n.via.is_none()) {
            self.dial_backs.contacted(n.remote.ip(), self.now);
        }
        self.relays.conn_down(conn);
        self.drop_through(conn);
        if let Some(r) = self.repl.as_mut() {
            r.down(conn);
        }
        if let Some(n) = self.neighbours.remove(&conn) {
            if n.relay && n.outbound && n.via.is_none() && self.now < n.since + RELAY_SETTLE_MS {
                // Ended as soon as it began: the relay was full (or gone); try others first.
                self.relay_refused
                    .insert(n.node_id, self.now + RELAY_REFUSED_RETRY_MS);
            }
            self.event(GroupEvent::NeighborConnection {
                status: ConnectionStatus::Disconnected,
                conn,
                node_id: n.node_id,
            });
        }
    }

    /// Connections through a relay end with the connection to the relay: close them now
    /// rather than when their idle timeout notices.
    fn drop_through(&mut self, relay: ConnId) {
        let through: Vec<ConnId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.via.is_some_and(|v| v.relay == relay))
            .map(|(c, _)| *c)
            .chain(
                self.neighbours
                    .iter()
                    .filter(|(_, n)| n.via.is_some_and(|v| v.relay == relay))
                    .map(|(c, _)| *c),
            )
            .collect();
        for c in through {
            // Connections through a relay are never relays themselves: no deeper recursion.
            self.conn_down(c);
            self.out
                .push_back(Output::Disconnect(c, CloseReason::RelayGone));
        }
    }

    /// Neighbour `conn` as a tunnel leg: only a direct member neighbour is one.
    fn direct_leg(&self, conn: ConnId) -> Option<Leg> {
        self.neighbours
            .get(&conn)
            .filter(|n| n.via.is_none())
            .map(|n| Leg {
                conn,
                node: n.node_id,
            })
    }

    fn connect(&mut self) {
        self.online = true;
        self.failed_reported = false;
        if self.synced && !self.listen_requested {
            self.listen_requested = true;
            self.out.push_back(Output::StartListening);
        }
        self.next_maintenance = Some(self.now + self.cfg.maintenance_interval);
        if self.repl.is_some() {
            self.next_anti_entropy = Some(self.now + self.cfg.anti_entropy_interval);
        }
        self.dial_more();
        if self.dialing.is_empty() && self.neighbours.is_empty() && !self.synced {
            self.check_failed(crate::identity::hresult::PEER_E_NO_MEMBERS_FOUND);
        }
    }

    fn persist_known(&mut self) {
        if std::mem::take(&mut self.known_dirty) {
            let all = self.known.values().cloned().collect();
            self.out
                .push_back(Output::Persist(Persist::KnownPeers(all)));
        }
    }

    fn close(&mut self) {
        // The presence tombstone goes out before the connections close.
        self.duty(|d, now, _| d.close(now));
        self.persist_known();
        for conn in self.pending.keys().chain(self.neighbours.keys()) {
            self.out
                .push_back(Output::Disconnect(*conn, CloseReason::GroupClosed));
        }
        self.pending.clear();
        self.neighbours.clear();
        self.dialing.clear();
        self.dialing_via.clear();
        self.direct_retry.clear();
        self.relays.clear();
        self.my_relays.clear();
        self.online = false;
        self.listening = false;
        self.listen_requested = false;
        self.next_maintenance = None;
        self.next_anti_entropy = None;
        if let Some(r) = self.repl.as_mut() {
            r.clear(self.now as i64, &mut self.out);
        }
        self.update_status();
    }

    fn message(&mut self, conn: ConnId, msg: Message) {
        match msg {
            Message::Hello(h) => {
                let Some(p) = self.pending.remove(&conn) else {
                    // A second Hello, or one on an unknown connection.
                    self.violation(conn);
                    return;
                };
                if h.node_id == self.cfg.node_id {
                    self.out
                        .push_back(Output::Disconnect(conn, CloseReason::ConnectedToSelf));
                    return;
                }
                if p.via.is_some_and(|v| v.node != h.node_id) {
                    // The relay named another node than the one that answered.
                    self.violation(conn);
                    return;
                }
                let mut moved = false;
                if let Some(seen) = h.observed.filter(|_| p.via.is_none()) {
                    let before = self.advertised_addrs();
                    let public = self.publicly_reachable();
                    if p.outbound {
                        // We dialled: the far side saw our source address after any NAT.
                        self.reach.observe(p.remote, seen, self.now);
                    } else {
                        // It dialled us and got through at `seen`: unasked, if it carries
                        // the nonce of our dial-back test.
                        self.reach.confirm(seen, self.now);
                        self.dial_backs
                            .dialled_back(h.dial_back, seen, p.remote, self.now);
                    }
                    if self.advertised_addrs() != before || self.publicly_reachable() != public {
                        // Tell the neighbours we have; this one hears it below.
                        self.addresses_changed();
                        moved = true;
                    }
                }
                if let Some((&other, _)) =
                    self.neighbours.iter().find(|(_, n)| n.node_id == h.node_id)
                {
                    // A direct connection replaces one through a relay; otherwise both sides
                    // keep the connection dialed by the smaller node id.
                    let old_relayed = self.neighbours[&other].via.is_some();
                    let new_relayed = p.via.is_some();
                    let keep_new = if old_relayed != new_relayed {
                        old_relayed
                    } else {
                        (p.outbound && self.cfg.node_id < h.node_id)
                            || (!p.outbound && h.node_id < self.cfg.node_id)
                    };
                    if !keep_new {
                        self.out
                            .push_back(Output::Disconnect(conn, CloseReason::Duplicate));
                        return;
                    }
                    self.neighbours.remove(&other);
                    self.relays.conn_down(other);
                    self.drop_through(other);
                    if let Some(r) = self.repl.as_mut() {
                        r.down(other);
                    }
                    self.out
                        .push_back(Output::Disconnect(other, CloseReason::Duplicate));
                }
                let mut addrs = h.addrs.clone();
                addrs.truncate(MAX_ADDRS);
                let room = self.max_inbound();
                if p.outbound && self.neighbours.len() >= room {
                    // One of too few observers of our own mapping stays, in an inbound one's
                    // place.
                    let observer = p.via.is_none() && self.short_of_observers(0);
                    if !(observer && self.make_room(true)) {
                        // Inbound members filled the room while we dialed.
                        self.out
                            .push_back(Output::Disconnect(conn, CloseReason::Busy));
                        return;
                    }
                }
                let needs_room = usize::from(h.neighbours) < self.cfg.target_neighbours;
                if !p.outbound && self.neighbours.len() >= room && needs_room {
                    // A member short of neighbours must find a place even in a full group.
                    let _ = self.make_room(false);
                }
                if !p.outbound && self.neighbours.len() >= room {
                    // Refer the newcomer to the members we know, then let it go.
                    let entries = self.sample_known();
                    let (relays, public) = self.relays_known(&p.member, h.node_id, h.entry_version);
                    self.learn(PeerEntry {
                        member: p.member,
                        node_id: h.node_id,
                        addrs,
                        relays,
                        public,
                        version: h.entry_version,
                    });
                    self.out
                        .push_back(Output::Send(conn, Message::Peers(entries)));
                    self.out
                        .push_back(Output::Disconnect(conn, CloseReason::Busy));
                    return;
                }
                if p.via.is_some_and(|v| self.direct_leg(v.relay).is_none()) {
                    // Making room dropped the relay this connection runs through.
                    self.out
                        .push_back(Output::Disconnect(conn, CloseReason::RelayGone));
                    return;
                }
                let (relays, public) = self.relays_known(&p.member, h.node_id, h.entry_version);
                self.learn(PeerEntry {
                    member: p.member.clone(),
                    node_id: h.node_id,
                    addrs,
                    relays,
                    public,
                    version: h.entry_version,
                });
                self.direct_failed.remove(&h.node_id);
                let dialled_at = (p.outbound && p.via.is_none()).then_some(p.remote);
                self.node_answered(&p.member, h.node_id, dialled_at);
                self.neighbours.insert(
                    conn,
                    Neighbour {
                        member: p.member,
                        node_id: h.node_id,
                        outbound: p.outbound,
                        remote: p.remote,
                        degree: usize::from(h.neighbours),
                        relay: h.relay,
                        via: p.via,
                        since: self.now,
                    },
                );
                if h.relay && p.via.is_none() {
                    let at = self.now + RELAY_SETTLE_MS;
                    self.relay_naming_at = Some(self.relay_naming_at.map_or(at, |t| t.min(at)));
                }
                if p.via.is_some() {
                    self.direct_retry
                        .entry(h.node_id)
                        .or_insert((self.now + DIRECT_RETRY_MS, DIRECT_RETRY_MS));
                } else {
                    self.direct_retry.remove(&h.node_id);
                }
                let relays_before = self.my_relays.clone();
                self.relays_changed();
                moved |= self.my_relays != relays_before;
                if !self.synced {
                    self.synced = true;
                    self.out.push_back(Output::Persist(Persist::Synced));
                }
                if self.online && !self.listen_requested {
                    self.listen_requested = true;
                    self.out.push_back(Output::StartListening);
                }
                self.event(GroupEvent::NeighborConnection {
                    status: ConnectionStatus::Connected,
                    conn,
                    node_id: h.node_id,
                });
                self.update_status();
                let mut entries = self.sample_known();
                if moved {
                    // Its Hello from us predates what it just told us.
                    entries.truncate(MAX_PEER_ENTRIES - 1);
                    entries.push(self.my_entry());
                }
                self.out
                    .push_back(Output::Send(conn, Message::Peers(entries)));
                if let Some(props) = &self.properties {
                    if props.version > h.properties_version {
                        self.out
                            .push_back(Output::Send(conn, Message::Properties(props.clone())));
                    }
                }
                if let Some(r) = self.repl.as_mut() {
                    // The smaller node id reconciles, so each connection runs one.
                    r.up(
                        conn,
                        self.cfg.node_id < h.node_id,
                        self.now as i64,
                        &mut self.out,
                    );
                }
            }
            Message::Peers(entries) => {
                if !self.neighbours.contains_key(&conn) {
                    self.violation(conn);
                    return;
                }
                let mut news = Vec::new();
                let mut moved = false;
                let sender = self.neighbours[&conn].node_id;
                for e in entries {
                    // The sender's own entry at new interface addresses, not its first ones.
                    let was = self
                        .known
                        .get(&(e.member.clone(), sender))
                        .filter(|_| e.node_id == sender)
                        .map(|k| k.addrs.clone())
                        .unwrap_or_default();
                    if e.member != self.cfg.member && self.learn(e.clone()) {
                        moved |= e.node_id == sender
                            && !was.is_empty()
                            && e.addrs.iter().any(|a| !was.contains(a));
                        news.push(e);
                    }
                }
                let n = &self.neighbours[&conn];
                if moved && !n.outbound && n.via.is_none() {
                    // A neighbour that dialled us says where it is now (it moved, and forgot
                    // what it was told of its old network): tell it again where its packets
                    // come from. This answer always comes after its news, so after it forgot.
                    self.out
                        .push_back(Output::Send(conn, Message::Observed(n.remote)));
                }
                if !news.is_empty() {
                    // Pass on only what was new here, so the gossip dies out.
                    for other in self.neighbours.keys() {
                        if *other != conn {
                            self.out
                                .push_back(Output::Send(*other, Message::Peers(news.clone())));
                        }
                    }
                }
            }
            Message::Punch(addrs) => self.punched(conn, addrs),
            Message::Observed(seen) => self.observed(conn, seen),
            Message::DialBack(d) => self.dial_back(conn, d),
            Message::Properties(_) => {
                // The driver verifies signed properties and sends VerifiedProperties instead.
                self.violation(conn);
            }
            Message::Record(_)
            | Message::ReconcileQuery(_)
            | Message::ReconcileAnswer(_)
            | Message::Offer { .. }
            | Message::Request(_)
            | Message::Records { .. } => {
                if !self.neighbours.contains_key(&conn) {
                    self.violation(conn);
                    return;
                }
                let now = self.now as i64;
                if let Some(r) = self.repl.as_mut() {
                    if let Err(why) = r.message(conn, msg, now, &mut self.out) {
                        tracing::info!(conn, why, "replication protocol violation");
                        self.violation(conn);
                    }
                }
            }
        }
    }

    fn accept_properties(&mut self, from: Option<ConnId>, props: SignedProperties) {
        if self
            .properties
            .as_ref()
            .is_some_and(|p| p.version >= props.version)
        {
            return;
        }
        self.properties = Some(props.clone());
        self.out
            .push_back(Output::Persist(Persist::Properties(props.clone())));
        if let Ok(parsed) =
            serde_json::from_slice::<crate::properties::GroupProperties>(&props.body)
        {
            let settings = MemberSettings::from_properties(&parsed);
            self.duty(|d, now, _| d.settings(settings, now));
        }
        self.event(GroupEvent::PropertyChanged);
        // Relaying may have been turned off or on.
        self.relays_changed();
        self.end_tunnels_unless_relaying();
        for conn in self.neighbours.keys() {
            if Some(*conn) != from {
                self.out
                    .push_back(Output::Send(*conn, Message::Properties(props.clone())));
            }
        }
    }

    /// Drops one neighbour to take a newcomer short of neighbours: the one that reported the
    /// most neighbours (ties broken by the seeded generator). It is sent a referral first, so
    /// it can rewire, then closed as `Busy`.
    /// `inbound_only`: among the neighbours that dialled this member (to make room for one it
    /// dialled itself, [`MIN_DIALLED`]). False when no neighbour could go.
    fn make_room(&mut self, inbound_only: bool) -> bool {
        let eligible = |n: &Neighbour| !inbound_only || !n.outbound;
        let Some(most) = self
            .neighbours
            .values()
            .filter(|n| eligible(n))
            .map(|n| n.degree)
            .max()
        else {
            return false;
        };
        let ties: Vec<ConnId> = self
            .neighbours
            .iter()
            .filter(|(_, n)| eligible(n) && n.degree == most)
            .map(|(c, _)| *c)
            .collect();
        let victim = ties[self.rng.range(0, ties.len() as u64) as usize];
        let entries = self.sample_known();
        self.out
            .push_back(Output::Send(victim, Message::Peers(entries)));
        self.out
            .push_back(Output::Disconnect(victim, CloseReason::Busy));
        if let Some(r) = self.repl.as_mut() {
            r.down(victim);
        }
        self.relays.conn_down(victim);
        self.drop_through(victim);
        if let Some(n) = self.neighbours.remove(&victim) {
            self.event(GroupEvent::NeighborConnection {
                status: ConnectionStatus::Disconnected,
                conn: victim,
                node_id: n.node_id,
            });
        }
        true
    }

    /// Up to [`MAX_PEER_ENTRIES`] known members, a random sample when there are more: every
    /// member must get to be known, and dialed, not only the first names in order.
    fn sample_known(&mut self) -> Vec<PeerEntry> {
        let mut all: Vec<&PeerEntry> = self.known.values().collect();
        if all.len() > MAX_PEER_ENTRIES {
            for i in 0..MAX_PEER_ENTRIES {
                let j = self.rng.range(i as u64, all.len() as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(MAX_PEER_ENTRIES);
        }
        all.into_iter().cloned().collect()
    }

    /// The relays a member named in that version of its entry (a `Hello` carries the
    /// version but not the relays).
    fn relays_known(&self, member: &str, node_id: u64, version: u64) -> (Vec<u64>, bool) {
        self.known
            .get(&(member.to_owned(), node_id))
            .filter(|k| k.version == version)
            .map(|k| (k.relays.clone(), k.public))
            .unwrap_or_default()
    }

    /// Records a node's addresses; true when that changed what we knew. Each node of a
    /// member has its own entry (at most [`MAX_NODES_PER_MEMBER`], the newest versions).
    fn learn(&mut self, mut entry: PeerEntry) -> bool {
        entry.addrs.truncate(MAX_ADDRS);
        entry.relays.truncate(MAX_RELAYS);
        let key = (entry.member.clone(), entry.node_id);
        match self.known.get_mut(&key) {
            Some(known) => {
                if entry.addrs.is_empty() || entry.version <= known.version {
                    return false;
                }
                if known.addrs == entry.addrs
                    && known.relays == entry.relays
                    && known.public == entry.public
                {
                    // Nothing to pass on; remember the version so older copies stay old.
                    known.version = entry.version;
                    return false;
                }
                *known = entry;
                self.known_dirty = true;
                true
            }
            None => {
                let (member, node) = key.clone();
                self.known.insert(key, entry);
                self.known_dirty = true;
                let mut nodes: Vec<(u64, u64)> = self
                    .known
                    .range((member.clone(), 0)..=(member.clone(), u64::MAX))
                    .map(|((_, node), e)| (e.version, *node))
                    .collect();
                if nodes.len() > MAX_NODES_PER_MEMBER {
                    nodes.sort();
                    let (_, oldest) = nodes[0];
                    self.forget_node(&member, oldest);
                    // Nothing new when the newcomer was the oldest.
                    return oldest != node;
                }
                true
            }
        }
    }

    /// Forgets node `node` of `member` (its entry and failure count).
    fn forget_node(&mut self, member: &str, node: u64) {
        if self.known.remove(&(member.to_owned(), node)).is_some() {
            self.known_dirty = true;
        }
        self.node_failures.remove(&node);
    }

    /// A dial to `addr` failed: every node listed there failed once more; one that failed
    /// [`STALE_NODE_FAILURES`] times while its member has a newer node is forgotten.
    fn node_dial_failed(&mut self, addr: SocketAddr) {
        let at: Vec<(String, u64, u64)> = self
            .known
            .iter()
            .filter(|(_, e)| e.addrs.contains(&addr))
            .map(|((m, n), e)| (m.clone(), *n, e.version))
            .collect();
        for (member, node, version) in at {
            let failures = self.node_failures.entry(node).or_insert(0);
            *failures += 1;
            if *failures < STALE_NODE_FAILURES {
                continue;
            }
            let newer = self
                .known
                .range((member.clone(), 0)..=(member.clone(), u64::MAX))
                .any(|((_, n), e)| *n != node && e.version > version);
            if newer {
                self.forget_node(&member, node);
            }
        }
    }

    /// Node `node` of `member` answered at `addr` (a connection we dialled there came up):
    /// it works again, and the member's older nodes that listed that address no longer do
    /// (the address is this node's now).
    fn node_answered(&mut self, member: &str, node: u64, addr: Option<SocketAddr>) {
        self.node_failures.remove(&node);
        let Some(addr) = addr else {
            return;
        };
        let stale: Vec<u64> = self
            .known
            .range((member.to_owned(), 0)..=(member.to_owned(), u64::MAX))
            .filter(|((_, n), e)| *n != node && e.addrs.contains(&addr))
            .map(|((_, n), _)| *n)
            .collect();
        for n in stale {
            let key = (member.to_owned(), n);
            if let Some(e) = self.known.get_mut(&key) {
                e.addrs.retain(|a| *a != addr);
                self.known_dirty = true;
                if e.addrs.is_empty() {
                    self.forget_node(member, n);
                }
            }
        }
    }

    fn maintain(&mut self) {
        if !self.online {
            return;
        }
        let now = self.now;
        if self.next_maintenance.is_some_and(|t| t <= now) {
            self.next_maintenance = Some(now + self.cfg.maintenance_interval);
            self.dial_more();
            self.dial_random();
            self.persist_known();
            if let Some(r) = self.repl.as_mut() {
                r.expire(now as i64, &mut self.out);
            }
        }
        // On its own clock (see `poll_timeout`): punches go within seconds.
        self.retry_direct();
        self.test_outside();
        if self.relay_naming_at.is_some_and(|t| t <= now) {
            // The next relay neighbour still settling, if any, sets the next look.
            self.relay_naming_at = self
                .neighbours
                .values()
                .filter(|n| n.relay && n.via.is_none())
                .map(|n| n.since + RELAY_SETTLE_MS)
                .filter(|t| *t > now)
                .min();
            self.relays_changed();
        }
        self.duty(|d, now, _| d.tick(now));
        if let Some(r) = self.repl.as_mut() {
            r.tick(now, &mut self.out);
            if self.next_anti_entropy.is_some_and(|t| t <= now) {
                self.next_anti_entropy = Some(now + self.cfg.anti_entropy_interval);
                let conns: Vec<ConnId> = self.neighbours.keys().copied().collect();
                if !conns.is_empty() {
                    let pick = conns[self.rng.range(0, conns.len() as u64) as usize];
                    r.start(pick, now as i64, &mut self.out);
                }
            }
        }
    }

    /// Concludes this member's dial-back test when its wait is over, and asks for a new one
    /// when due: through a neighbour it dialled (which sees its mapped address), naming its
    /// direct neighbours as the members not to ask.
    fn test_outside(&mut self) {
        let public = self.publicly_reachable();
        let eligible = self.listening && self.nat_class() == NatClass::EndpointIndependent;
        let due = self.dial_backs.tick(self.now, eligible);
        if self.publicly_reachable() != public {
            self.addresses_changed();
        }
        if !due {
            return;
        }
        let mut dialled: Vec<ConnId> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.outbound && n.via.is_none())
            .map(|(c, _)| *c)
            .collect();
        if dialled.len() > 1 {
            // The last one asked could not find a third member: try another.
            dialled.retain(|c| Some(*c) != self.dial_backs.last_via());
        }
        if dialled.is_empty() {
            self.dial_backs.nobody_to_ask(self.now);
            return;
        }
        let via = dialled[self.rng.range(0, dialled.len() as u64) as usize];
        // Neighbours are contacts too (a connection accepted long ago sent nothing lately
        // through the dial path).
        let ips: Vec<std::net::IpAddr> = self
            .neighbours
            .values()
            .filter(|n| n.via.is_none())
            .map(|n| n.remote.ip())
            .collect();
        for ip in ips {
            self.dial_backs.contacted(ip, self.now);
        }
        let nonce = self.rng.next_u64();
        let ask = self.dial_backs.ask(via, nonce, self.now);
        self.out
            .push_back(Output::Send(via, Message::DialBack(ask)));
    }

    /// A dial-back step from neighbour `conn` ([`crate::dialback`]).
    fn dial_back(&mut self, conn: ConnId, step: DialBack) {
        let Some(n) = self.neighbours.get(&conn) else {
            self.violation(conn);
            return;
        };
        let (asker, asker_at, relayed) = (n.node_id, n.remote, n.via.is_some());
        match step {
            DialBack::Ask { nonce, exclude } => {
                // Through a relay we do not see where its packets come from.
                let mut sent = false;
                if !relayed && self.dial_backs.may_forward(conn, self.now) {
                    let third: Vec<ConnId> = self
                        .neighbours
                        .iter()
                        .filter(|(c, t)| {
                            **c != conn
                                && t.via.is_none()
                                && t.node_id != asker
                                && !exclude.contains(&t.remote.ip())
                                && t.remote.ip() != asker_at.ip()
                        })
                        .map(|(c, _)| *c)
                        .collect();
                    if !third.is_empty() {
                        let to = third[self.rng.range(0, third.len() as u64) as usize];
                        self.out.push_back(Output::Send(
                            to,
                            Message::DialBack(DialBack::Dial {
                                node_id: asker,
                                addr: asker_at,
                                nonce,
                            }),
                        ));
                        sent = true;
                    }
                }
                self.out.push_back(Output::Send(
                    conn,
                    Message::DialBack(DialBack::Asked { nonce, sent }),
                ));
            }
            DialBack::Dial {
                node_id,
                addr,
                nonce,
            } => {
                // Dial even when connected: the asker's forwarder promised it a dial, and a
                // silence would read "unreachable". The asker tells a dial from a member it
                // sent to apart itself; a dial already under way there carries the nonce.
                let usable = !relayed
                    && self.online
                    && node_id != self.cfg.node_id
                    && !self.own_addrs().contains(&addr);
                if usable
                    && self.dial_backs.dial(addr, nonce, self.now)
                    && self.dialing.insert(addr)
                {
                    self.out.push_back(Output::Dial(addr));
                }
            }
            DialBack::Asked { nonce, sent } => {
                self.dial_backs.answered(conn, nonce, sent, self.now)
            }
        }
    }

    fn dial_more(&mut self) {
        let mine = self.own_addrs();
        let connected: BTreeSet<SocketAddr> = self.neighbours.values().map(|n| n.remote).collect();
        let connected_members: BTreeSet<&str> = self
            .neighbours
            .values()
            .map(|n| n.member.as_str())
            .collect();
        let mut candidates: Vec<SocketAddr> = Vec::new();
        for e in self.known.values() {
            if !connected_members.contains(e.member.as_str()) {
                candidates.extend(e.addrs.iter().copied());
            }
        }
        // Spread the load: members that all know the same list must not all dial its head.
        for i in (1..candidates.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            candidates.swap(i, j);
        }
        if self.neighbours.is_empty() {
            // With no neighbour at all, the invitation's addresses come first.
            let mut first: Vec<SocketAddr> = self.bootstrap.clone();
            first.extend(candidates);
            candidates = first;
        }
        // Before all, members found on this link: the nearest, and reached with no NAT.
        if !self.lan.is_empty() {
            let mut first: Vec<SocketAddr> = self.lan.clone();
            first.extend(candidates);
            candidates = first;
        }
        for addr in candidates {
            if self.neighbours.len() + self.dialing.len() >= self.cfg.target_neighbours
                && !self.short_of_observers(self.dialing.len())
            {
                break;
            }
            if mine.contains(&addr) || connected.contains(&addr) || self.dialing.contains(&addr) {
                continue;
            }
            self.dialing.insert(addr);
            self.out.push_back(Output::Dial(addr));
        }
        self.dial_a_relay();
        self.dial_via_relays();
    }

    /// A member with fewer relays among its direct neighbours than it wants dials one more,
    /// beyond its target: members that cannot dial a member behind a NAT reach it only
    /// through a relay both are connected to (the relays it names). A member behind a NAT
    /// wants [`RELAYS_WANTED_BEHIND_NAT`], any other one relay; the relays are the nodes other
    /// members name.
    fn dial_a_relay(&mut self) {
        let wanted = if self.publicly_reachable() {
            1
        } else {
            RELAYS_WANTED_BEHIND_NAT
        };
        let have = self
            .neighbours
            .values()
            .filter(|n| n.relay && n.via.is_none())
            .count();
        if !self.listening
            || !self.relays_allowed()
            || self.neighbours.len() >= self.cfg.max_neighbours
            || have >= wanted
        {
            return;
        }
        let now = self.now;
        self.relay_refused.retain(|_, until| *until > now);
        let relays: BTreeSet<u64> = self
            .known
            .values()
            .flat_map(|e| e.relays.iter().copied())
            .filter(|r| *r != self.cfg.node_id && !self.relay_refused.contains_key(r))
            .collect();
        let mine = self.own_addrs();
        let connected: BTreeSet<u64> = self.neighbours.values().map(|n| n.node_id).collect();
        let mut candidates: Vec<SocketAddr> = self
            .known
            .values()
            .filter(|e| relays.contains(&e.node_id) && !connected.contains(&e.node_id))
            .flat_map(|e| e.addrs.iter().copied())
            .filter(|a| !mine.contains(a))
            .collect();
        if candidates.iter().any(|a| self.dialing.contains(a)) {
            return;
        }
        for i in (1..candidates.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            candidates.swap(i, j);
        }
        if let Some(addr) = candidates.first().copied() {
            self.dialing.insert(addr);
            self.out.push_back(Output::Dial(addr));
        }
    }

    /// Dials, through one of the relays it names, each member short of a connection that
    /// names relays this member is directly connected to: at the same time as its
    /// addresses, since a member behind a NAT may never answer there (and a direct
    /// connection replaces the relayed one if it does).
    fn dial_via_relays(&mut self) {
        if !self.relays_allowed() {
            return;
        }
        let connected: BTreeSet<u64> = self.neighbours.values().map(|n| n.node_id).collect();
        let relays: BTreeMap<u64, ConnId> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.relay && n.via.is_none())
            .map(|(c, n)| (n.node_id, *c))
            .collect();
        let mut wanted: Vec<(u64, Vec<ConnId>)> = self
            .known
            .values()
            .filter(|e| !connected.contains(&e.node_id) && e.node_id != self.cfg.node_id)
            .filter(|e| !self.dialing_via.contains(&e.node_id))
            // A public member through a relay only once its addresses failed us.
            .filter(|e| !e.public || self.direct_failed.contains(&e.node_id))
            .map(|e| {
                let via: Vec<ConnId> = e
                    .relays
                    .iter()
                    .filter_map(|r| relays.get(r))
                    .copied()
                    .collect();
                (e.node_id, via)
            })
            .filter(|(_, via)| !via.is_empty())
            .collect();
        for i in (1..wanted.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            wanted.swap(i, j);
        }
        for (node_id, via) in wanted {
            if self.neighbours.len() + self.dialing_via.len() >= self.cfg.target_neighbours {
                break;
            }
            let via = via[self.rng.range(0, via.len() as u64) as usize];
            self.dialing_via.insert(node_id);
            self.out.push_back(Output::DialVia { via, node_id });
        }
    }

    /// Dials members reached only through a relay at their addresses again, with a growing
    /// wait, so a direct path replaces the relayed one once one exists.
    fn retry_direct(&mut self) {
        let now = self.now;
        let relayed: BTreeMap<u64, ConnId> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.via.is_some())
            .map(|(c, n)| (n.node_id, *c))
            .collect();
        self.direct_retry
            .retain(|node, _| relayed.contains_key(node));
        self.punches.retain(|node, _| relayed.contains_key(node));
        let mine = self.own_addrs();
        let due: Vec<u64> = self
            .direct_retry
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(n, _)| *n)
            .collect();
        for node in due {
            if let Some((at, wait)) = self.direct_retry.get_mut(&node) {
                *wait = (*wait * 2).min(DIRECT_RETRY_MAX_MS);
                *at = now + *wait;
            }
            let addrs: Vec<SocketAddr> = self
                .known
                .values()
                .filter(|e| e.node_id == node)
                .flat_map(|e| e.addrs.iter().copied())
                .filter(|a| !mine.contains(a) && !self.dialing.contains(a))
                .take(PUNCH_ADDRS)
                .collect();
            let punches = self.punches.entry(node).or_insert(0);
            if *punches < PUNCH_ATTEMPTS && self.listening {
                // Through the relayed connection: the member dials us while we dial it.
                *punches += 1;
                let conn = relayed[&node];
                let ours = self.advertised_addrs();
                self.out.push_back(Output::Send(conn, Message::Punch(ours)));
            }
            for addr in addrs {
                self.dialing.insert(addr);
                self.out.push_back(Output::Dial(addr));
            }
        }
    }

    /// A direct neighbour's packets now come from `remote`. If it dialled us, that is its
    /// new mapped address and only we can tell it: QUIC migrated the connection without a
    /// new `Hello`, so it would otherwise not learn where its new network maps it.
    fn remote_changed(&mut self, conn: ConnId, remote: SocketAddr) {
        let Some(n) = self.neighbours.get_mut(&conn) else {
            return;
        };
        if n.via.is_some() || n.remote == remote {
            return;
        }
        n.remote = remote;
        if !n.outbound {
            self.out
                .push_back(Output::Send(conn, Message::Observed(remote)));
        }
    }

    /// A neighbour we dialled sees our packets come from `seen` now: one more observation
    /// of our mapping, as its `Hello` gave (after a move the NAT class is learnt again from
    /// these).
    fn observed(&mut self, conn: ConnId, seen: SocketAddr) {
        let Some(n) = self.neighbours.get(&conn) else {
            return;
        };
        if !n.outbound || n.via.is_some() {
            // Only the far side of a connection we dialled sees our mapping.
            return;
        }
        let before = self.advertised_addrs();
        self.reach.observe(n.remote, seen, self.now);
        if self.advertised_addrs() != before {
            self.addresses_changed();
        }
    }

    /// A member reached through a relay dials us now: we dial it at once at the addresses it
    /// sent (the first [`PUNCH_ADDRS`]), so that both NATs let the other side in.
    fn punched(&mut self, conn: ConnId, addrs: Vec<SocketAddr>) {
        let Some(n) = self.neighbours.get(&conn) else {
            return;
        };
        if n.via.is_none() || !self.listening {
            // Only a relayed neighbour has a reason to punch; a direct one is ignored.
            return;
        }
        let mine = self.own_addrs();
        let connected: BTreeSet<SocketAddr> = self.neighbours.values().map(|n| n.remote).collect();
        let fresh: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| !mine.contains(a) && !connected.contains(a) && !self.dialing.contains(a))
            .take(PUNCH_ADDRS)
            .collect();
        for addr in fresh {
            self.dialing.insert(addr);
            self.out.push_back(Output::Dial(addr));
        }
    }

    /// Now and then, a member with room for more neighbours dials one more member at random,
    /// even with its target met: groups of members that each reached their target among
    /// themselves would otherwise never meet, and the group would stay split in cliques.
    fn dial_random(&mut self) {
        let n = self.neighbours.len();
        if n < self.cfg.target_neighbours
            || n >= self.cfg.max_neighbours
            || !self.dialing.is_empty()
            || self.rng.range(0, 4) != 0
        {
            return;
        }
        let connected: BTreeSet<&str> = self
            .neighbours
            .values()
            .map(|n| n.member.as_str())
            .collect();
        let mine = self.own_addrs();
        let candidates: Vec<SocketAddr> = self
            .known
            .values()
            .filter(|e| !connected.contains(e.member.as_str()))
            .filter_map(|e| e.addrs.first().copied())
            .filter(|a| !mine.contains(a))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let addr = candidates[self.rng.range(0, candidates.len() as u64) as usize];
        self.dialing.insert(addr);
        self.out.push_back(Output::Dial(addr));
    }

    fn check_failed(&mut self, hr: i32) {
        if self.online
            && !self.synced
            && self.neighbours.is_empty()
            && self.pending.is_empty()
            && self.dialing.is_empty()
            && self.dialing_via.is_empty()
            && !self.failed_reported
        {
            self.failed_reported = true;
            self.event(GroupEvent::ConnectionFailed(hr));
        }
    }

    fn violation(&mut self, conn: ConnId) {
        self.conn_down(conn);
        self.out
            .push_back(Output::Disconnect(conn, CloseReason::ProtocolViolation));
        self.update_status();
    }

    fn update_status(&mut self) {
        let mut status = 0;
        if self.listening && self.online {
            status |= STATUS_LISTENING;
        }
        if !self.neighbours.is_empty() {
            status |= STATUS_HAS_CONNECTIONS;
        }
        if status != self.status {
            self.status = status;
            self.event(GroupEvent::StatusChanged(status));
        }
    }

    fn event(&mut self, e: GroupEvent) {
        self.out.push_back(Output::Event(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult::PEER_E_CONNECTION_FAILED;

    fn drain(g: &mut Group) -> Vec<Output> {
        std::iter::from_fn(|| g.poll_output()).collect()
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn what_members_see_of_us_is_what_we_advertise() {
        let lan: SocketAddr = "10.1.0.2:7000".parse().unwrap();
        let mapped: SocketAddr = "198.18.1.1:7000".parse().unwrap();
        let mut c = Config::new(1, "natted");
        c.creator = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(1, Input::Listening(vec![lan]));
        assert_eq!(g.advertised_addrs(), vec![lan]);
        drain(&mut g);
        // Two members at two IPs, both dialled by us, see the same mapped address.
        let mut kept = Vec::new();
        for (conn, far) in [(7, "198.18.0.10:7000"), (8, "198.18.0.11:7000")] {
            let far: SocketAddr = far.parse().unwrap();
            g.handle(
                2,
                Input::ConnectionUp {
                    conn,
                    member: format!("m{conn}"),
                    remote: far,
                    outbound: true,
                    via: None,
                },
            );
            // Our Hello tells the far side where we see it.
            let out = drain(&mut g);
            kept.extend(out.iter().cloned());
            assert!(out.iter().any(|o| matches!(
                o,
                Output::Send(c, Message::Hello(h)) if *c == conn && h.observed == Some(far)
            )));
            g.handle(
                3,
                Input::Message(
                    conn,
                    Message::Hello(Hello {
                        node_id: 100 + conn,
                        listening: true,
                        addrs: vec![far],
                        properties_version: 0,
                        neighbours: 1,
                        observed: Some(mapped),
                        relay: false,
                        entry_version: 0,
                        dial_back: 0,
                    }),
                ),
            );
        }
        assert_eq!(g.nat_class(), NatClass::EndpointIndependent);
        assert_eq!(g.advertised_addrs(), vec![mapped, lan]);
        // The member whose Hello told us heard where we are now (the other had it in our
        // Hello).
        let mut out = kept;
        out.extend(drain(&mut g));
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Send(7, Message::Peers(p))
                    if p.iter().any(|e| e.member == "natted" && e.addrs == vec![mapped, lan])
            )),
            "{out:?}"
        );
        // A member that dials us and gets through confirms where: that goes first.
        let confirmed: SocketAddr = "198.18.1.1:7001".parse().unwrap();
        g.handle(
            4,
            Input::ConnectionUp {
                conn: 9,
                member: "m9".into(),
                remote: "198.18.0.12:5000".parse().unwrap(),
                outbound: false,
                via: None,
            },
        );
        g.handle(
            5,
            Input::Message(
                9,
                Message::Hello(Hello {
                    node_id: 109,
                    listening: true,
                    addrs: vec![],
                    properties_version: 0,
                    neighbours: 1,
                    observed: Some(confirmed),
                    relay: false,
                    entry_version: 0,
                    dial_back: 0,
                }),
            ),
        );
        assert_eq!(g.advertised_addrs(), vec![confirmed, mapped, lan]);
    }

    #[test]
    fn a_joiner_that_reaches_no_member_fails_and_does_not_listen() {
        let mut g = Group::new(Config::new(2, "joiner"), vec![], None);
        g.add_bootstrap(&[addr(1)]);
        g.handle(0, Input::Connect);
        assert_eq!(drain(&mut g), vec![Output::Dial(addr(1))]);
        g.handle(10, Input::DialFailed(addr(1), PEER_E_CONNECTION_FAILED));
        assert_eq!(
            drain(&mut g),
            vec![Output::Event(GroupEvent::ConnectionFailed(
                PEER_E_CONNECTION_FAILED
            ))]
        );
        assert_eq!(g.status(), 0);
    }

    #[test]
    fn members_found_on_the_lan_are_dialled_first_also_after_a_join_found_nobody() {
        let mut g = Group::new(Config::new(2, "joiner"), vec![], None);
        // Found before connecting: kept, not dialled.
        g.handle(0, Input::Discovered(vec![addr(7)]));
        assert!(drain(&mut g).is_empty());
        g.add_bootstrap(&[addr(1)]);
        g.handle(1, Input::Connect);
        assert_eq!(
            drain(&mut g),
            vec![Output::Dial(addr(7)), Output::Dial(addr(1))]
        );
        g.handle(10, Input::DialFailed(addr(7), PEER_E_CONNECTION_FAILED));
        g.handle(11, Input::DialFailed(addr(1), PEER_E_CONNECTION_FAILED));
        drain(&mut g);
        // The invitation's member is gone; another member announces itself on the LAN.
        g.handle(20, Input::Discovered(vec![addr(5), addr(6)]));
        let out = drain(&mut g);
        assert_eq!(out[..2], [Output::Dial(addr(5)), Output::Dial(addr(6))]);
        // At most MAX_LAN_FOUND kept, the oldest dropped.
        let many: Vec<SocketAddr> = (100..140).map(addr).collect();
        for chunk in many.chunks(4) {
            g.handle(30, Input::Discovered(chunk.to_vec()));
        }
        assert_eq!(g.lan.len(), crate::lan::MAX_LAN_FOUND);
        assert_eq!(g.lan[..2], [addr(136), addr(137)]);
        assert!(!g.lan.contains(&addr(123)) && g.lan.contains(&addr(124)));
    }

    #[test]
    fn the_creator_listens_at_once_and_close_tells_every_neighbour() {
        let mut c = Config::new(1, "creator");
        c.creator = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        assert_eq!(drain(&mut g), vec![Output::StartListening]);
        g.handle(1, Input::Listening(vec![addr(1)]));
        assert_eq!(g.status(), STATUS_LISTENING);
        drain(&mut g);
        g.handle(
            2,
            Input::ConnectionUp {
                conn: 7,
                member: "m".into(),
                remote: addr(2),
                outbound: false,
                via: None,
            },
        );
        let hello = Hello {
            node_id: 9,
            listening: false,
            addrs: vec![],
            properties_version: 0,
            neighbours: 0,
            observed: None,
            relay: false,
            entry_version: 0,
            dial_back: 0,
        };
        g.handle(3, Input::Message(7, Message::Hello(hello)));
        assert_eq!(g.status(), STATUS_LISTENING | STATUS_HAS_CONNECTIONS);
        drain(&mut g);
        g.handle(4, Input::Close);
        let out = drain(&mut g);
        assert!(out.contains(&Output::Disconnect(7, CloseReason::GroupClosed)));
        assert!(out.contains(&Output::Event(GroupEvent::StatusChanged(0))));
        assert!(!g.is_online());
    }

    #[test]
    fn simultaneous_dials_keep_exactly_one_connection_on_both_sides() {
        // Node 1 and node 2 dial each other at once: connection A (1 dialed) and B (2 dialed).
        let mut one = Group::new(Config::new(1, "one"), vec![], None);
        let mut two = Group::new(Config::new(2, "two"), vec![], None);
        for g in [&mut one, &mut two] {
            g.handle(0, Input::Connect);
            drain(g);
        }
        one.handle(
            1,
            Input::ConnectionUp {
                conn: 10,
                member: "two".into(),
                remote: addr(2),
                outbound: true,
                via: None,
            },
        );
        one.handle(
            1,
            Input::ConnectionUp {
                conn: 11,
                member: "two".into(),
                remote: addr(2),
                outbound: false,
                via: None,
            },
        );
        two.handle(
            1,
            Input::ConnectionUp {
                conn: 20,
                member: "one".into(),
                remote: addr(1),
                outbound: false,
                via: None,
            },
        );
        two.handle(
            1,
            Input::ConnectionUp {
                conn: 21,
                member: "one".into(),
                remote: addr(1),
                outbound: true,
                via: None,
            },
        );
        let hello = |n| {
            Message::Hello(Hello {
                node_id: n,
                listening: true,
                addrs: vec![],
                properties_version: 0,
                neighbours: 0,
                observed: None,
                relay: false,
                entry_version: 0,
                dial_back: 0,
            })
        };
        for conn in [10, 11] {
            one.handle(2, Input::Message(conn, hello(2)));
        }
        for conn in [20, 21] {
            two.handle(2, Input::Message(conn, hello(1)));
        }
        // Both keep the connection node 1 dialed: 10 on node 1, 20 on node 2.
        assert_eq!(one.neighbours().map(|n| n.0).collect::<Vec<_>>(), vec![10]);
        assert_eq!(two.neighbours().map(|n| n.0).collect::<Vec<_>>(), vec![20]);
    }

    #[test]
    fn newer_properties_win_and_flood_once() {
        let mut g = Group::new(Config::new(1, "m"), vec![], None);
        g.handle(0, Input::Connect);
        for (conn, node) in [(1, 11), (2, 12)] {
            g.handle(
                0,
                Input::ConnectionUp {
                    conn,
                    member: format!("p{node}"),
                    remote: addr(node as u16),
                    outbound: true,
                    via: None,
                },
            );
            g.handle(
                0,
                Input::Message(
                    conn,
                    Message::Hello(Hello {
                        node_id: node,
                        listening: true,
                        addrs: vec![],
                        properties_version: 0,
                        neighbours: 0,
                        observed: None,
                        relay: false,
                        entry_version: 0,
                        dial_back: 0,
                    }),
                ),
            );
        }
        drain(&mut g);
        let props = |v| SignedProperties {
            version: v,
            body: vec![],
            signer_chain: vec![],
            signature: vec![],
        };
        g.handle(1, Input::VerifiedProperties(1, props(2)));
        let out = drain(&mut g);
        assert!(out.contains(&Output::Event(GroupEvent::PropertyChanged)));
        assert!(out.contains(&Output::Send(2, Message::Properties(props(2)))));
        assert!(
            !out.contains(&Output::Send(1, Message::Properties(props(2)))),
            "not back to the sender"
        );
        g.handle(2, Input::VerifiedProperties(2, props(1)));
        assert!(drain(&mut g).is_empty(), "older properties change nothing");
    }

    /// A member (seed `seed`, at most 8 neighbours, target 4) with one inbound neighbour per
    /// entry of `degrees` (connections 1, 2, ...), each of whose `Hello` reported that many
    /// neighbours.
    fn member_with(seed: u64, degrees: &[u8]) -> Group {
        let mut c = Config::new(1, "m");
        c.seed = seed;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        for (i, &d) in degrees.iter().enumerate() {
            knock(&mut g, i as ConnId + 1, d);
        }
        drain(&mut g);
        g
    }

    /// Member `conn` (node id `100 + conn`) connects inbound, with `neighbours` in its `Hello`.
    fn knock(g: &mut Group, conn: ConnId, neighbours: u8) -> Vec<Output> {
        let remote = addr(1000 + conn as u16);
        g.handle(
            1,
            Input::ConnectionUp {
                conn,
                member: format!("p{conn}"),
                remote,
                outbound: false,
                via: None,
            },
        );
        g.handle(
            1,
            Input::Message(
                conn,
                Message::Hello(Hello {
                    node_id: 100 + conn,
                    listening: true,
                    addrs: vec![remote],
                    properties_version: 0,
                    neighbours,
                    observed: None,
                    relay: false,
                    entry_version: 0,
                    dial_back: 0,
                }),
            ),
        );
        drain(g)
    }

    fn conns(g: &Group) -> Vec<ConnId> {
        g.neighbours().map(|n| n.0).collect()
    }

    #[test]
    fn a_full_member_takes_a_newcomer_short_of_neighbours_and_drops_its_best_connected_one() {
        let mut g = member_with(1, &[3, 5, 8, 2, 4, 6, 7, 1]);
        let out = knock(&mut g, 50, 0);
        // Neighbour 3 reported the most neighbours: it gets a referral, then the close.
        let referral = out
            .iter()
            .position(|o| matches!(o, Output::Send(3, Message::Peers(p)) if !p.is_empty()))
            .expect("a referral to the dropped neighbour");
        let close = out
            .iter()
            .position(|o| *o == Output::Disconnect(3, CloseReason::Busy))
            .expect("the dropped neighbour is closed as busy");
        assert!(referral < close, "the referral goes before the close");
        assert!(out.contains(&Output::Event(GroupEvent::NeighborConnection {
            status: ConnectionStatus::Disconnected,
            conn: 3,
            node_id: 103,
        })));
        assert!(!out.iter().any(|o| matches!(o, Output::Disconnect(50, _))));
        assert_eq!(
            conns(&g),
            vec![1, 2, 4, 5, 6, 7, 8, 50],
            "never above the maximum"
        );
        // A second newcomer short of neighbours displaces the next best connected (7).
        let out = knock(&mut g, 51, 3);
        assert!(out.contains(&Output::Disconnect(7, CloseReason::Busy)));
        assert_eq!(conns(&g).len(), 8);
    }

    #[test]
    fn a_member_full_of_inbound_neighbours_still_dials_two_observers_of_its_own() {
        let mut g = member_with(1, &[3, 5, 8, 2, 4, 6, 7, 1]);
        let known: Vec<PeerEntry> = (20..23)
            .map(|n| PeerEntry {
                member: format!("p{n}"),
                node_id: n,
                addrs: vec![addr(n as u16)],
                relays: vec![],
                public: true,
                version: 1,
            })
            .collect();
        g.handle(2, Input::Message(1, Message::Peers(known)));
        drain(&mut g);
        // Every one of its eight neighbours dialled it: it dials two members itself.
        g.handle(5_000, Input::Tick);
        let dials = dials_in(&drain(&mut g));
        assert_eq!(dials.len(), MIN_DIALLED, "{dials:?}");
        // Each dial, once up, takes an inbound neighbour's place: never above the maximum.
        for (i, a) in dials.iter().enumerate() {
            let conn = 60 + i as ConnId;
            let node = u64::from(a.port());
            g.handle(
                5_001,
                Input::ConnectionUp {
                    conn,
                    member: format!("p{node}"),
                    remote: *a,
                    outbound: true,
                    via: None,
                },
            );
            g.handle(
                5_001,
                Input::Message(conn, hello_of(node, *a, None, false, 0)),
            );
            let out = drain(&mut g);
            assert!(!out.contains(&Output::Disconnect(conn, CloseReason::Busy)));
            assert!(out
                .iter()
                .any(|o| matches!(o, Output::Disconnect(c, CloseReason::Busy) if *c < 9)));
            assert_eq!(conns(&g).len(), 8);
        }
        // With two of its own, it dials no more, and a third is refused as before.
        g.handle(10_000, Input::Tick);
        assert!(!drain(&mut g).iter().any(|o| matches!(o, Output::Dial(_))));
    }

    /// The addresses dialled in `out`, in order.
    fn dials_in(out: &[Output]) -> Vec<SocketAddr> {
        out.iter()
            .filter_map(|o| match o {
                Output::Dial(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    /// Node `node` of member `member` at `port`, entry version `version`.
    fn node_entry(member: &str, node: u64, port: u16, version: u64) -> PeerEntry {
        PeerEntry {
            member: member.into(),
            node_id: node,
            addrs: vec![addr(port)],
            relays: vec![],
            public: true,
            version,
        }
    }

    fn nodes_of(g: &Group, member: &str) -> Vec<u64> {
        g.known_peers()
            .filter(|e| e.member == member)
            .map(|e| e.node_id)
            .collect()
    }

    #[test]
    fn every_node_of_a_member_is_kept_and_dialled_at_its_own_addresses() {
        // Member x runs on two machines (nodes 5 and 6): hearing of one keeps the other.
        let mut c = Config::new(1, "m");
        c.creator = true;
        let mut g = Group::new(c, vec![node_entry("x", 5, 500, 10)], None);
        g.handle(0, Input::Connect);
        drain(&mut g);
        up_at(&mut g, 1, 2, 2, false, None);
        drain(&mut g);
        g.handle(
            2,
            Input::Message(2, Message::Peers(vec![node_entry("x", 6, 600, 20)])),
        );
        assert_eq!(nodes_of(&g, "x"), vec![5, 6]);
        // An older copy of either is no news; a newer one of node 5 replaces only its own.
        g.handle(
            3,
            Input::Message(2, Message::Peers(vec![node_entry("x", 5, 501, 9)])),
        );
        g.handle(
            3,
            Input::Message(2, Message::Peers(vec![node_entry("x", 5, 502, 30)])),
        );
        let addrs: Vec<Vec<SocketAddr>> = g
            .known_peers()
            .filter(|e| e.member == "x")
            .map(|e| e.addrs.clone())
            .collect();
        assert_eq!(addrs, vec![vec![addr(502)], vec![addr(600)]]);
        // Dialling the member tries both machines.
        g.handle(5_000, Input::Tick);
        let dials = dials_in(&drain(&mut g));
        assert!(
            dials.contains(&addr(502)) && dials.contains(&addr(600)),
            "{dials:?}"
        );
        // At most MAX_NODES_PER_MEMBER: the oldest entry goes.
        for n in 0..MAX_NODES_PER_MEMBER as u64 {
            let e = node_entry("x", 70 + n, 700 + n as u16, 40 + n);
            g.handle(6_000, Input::Message(2, Message::Peers(vec![e])));
        }
        let kept = nodes_of(&g, "x");
        assert_eq!(kept.len(), MAX_NODES_PER_MEMBER);
        assert!(!kept.contains(&5) && !kept.contains(&6), "{kept:?}");
    }

    #[test]
    fn a_node_that_keeps_failing_is_forgotten_once_its_member_has_a_newer_one() {
        let mut c = Config::new(1, "m");
        c.creator = true;
        // Node 5 is x's old process; y has only node 8, which fails as often.
        let known = vec![
            node_entry("x", 5, 500, 10),
            node_entry("x", 6, 600, 20),
            node_entry("y", 8, 800, 10),
        ];
        let mut g = Group::new(c, known, None);
        g.handle(0, Input::Connect);
        drain(&mut g);
        let refused = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
        for i in 0..STALE_NODE_FAILURES {
            assert_eq!(nodes_of(&g, "x"), vec![5, 6], "after {i} failures");
            g.handle(10 + u64::from(i), Input::DialFailed(addr(500), refused));
            g.handle(10 + u64::from(i), Input::DialFailed(addr(800), refused));
        }
        assert_eq!(nodes_of(&g, "x"), vec![6], "the old process is forgotten");
        assert_eq!(nodes_of(&g, "y"), vec![8], "a member's only node stays");
    }

    #[test]
    fn a_node_that_answers_at_an_address_takes_it_from_its_members_older_nodes() {
        let mut c = Config::new(1, "m");
        c.creator = true;
        // x's process at port 500 was restarted: the new one (node 6) answers there.
        let mut g = Group::new(c, vec![node_entry("x", 5, 500, 10)], None);
        g.handle(0, Input::Connect);
        drain(&mut g);
        g.handle(
            1,
            Input::ConnectionUp {
                conn: 3,
                member: "x".into(),
                remote: addr(500),
                outbound: true,
                via: None,
            },
        );
        g.handle(1, Input::Message(3, hello_of(6, addr(500), None, false, 0)));
        assert_eq!(nodes_of(&g, "x"), vec![6], "node 5 had only that address");
    }

    #[test]
    fn a_full_member_refers_a_newcomer_that_has_its_target() {
        let mut g = member_with(1, &[3, 5, 8, 2, 4, 6, 7, 1]);
        let out = knock(&mut g, 50, 4);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Send(50, Message::Peers(p)) if !p.is_empty())));
        assert!(out.contains(&Output::Disconnect(50, CloseReason::Busy)));
        assert_eq!(conns(&g), vec![1, 2, 3, 4, 5, 6, 7, 8], "nobody dropped");
        // Below the maximum everyone is taken, short of neighbours or not.
        let mut g = member_with(1, &[3, 5, 8]);
        let out = knock(&mut g, 50, 7);
        assert!(!out.iter().any(|o| matches!(o, Output::Disconnect(..))));
        assert_eq!(conns(&g), vec![1, 2, 3, 50]);
    }

    #[test]
    fn among_equally_connected_neighbours_the_seed_picks_which_to_drop() {
        let dropped = |seed| {
            let mut g = member_with(seed, &[8; 8]);
            let out = knock(&mut g, 50, 0);
            assert!(conns(&g).contains(&50), "never the newcomer");
            assert_eq!(conns(&g).len(), 8);
            out.iter()
                .find_map(|o| match o {
                    Output::Disconnect(c, CloseReason::Busy) => Some(*c),
                    _ => None,
                })
                .expect("one neighbour dropped")
        };
        let victims: BTreeSet<ConnId> = (1..20).map(dropped).collect();
        assert!(victims.len() > 1, "the choice is spread: {victims:?}");
        for seed in 1..20 {
            assert_eq!(
                dropped(seed),
                dropped(seed),
                "the same seed, the same choice"
            );
        }
    }

    #[test]
    fn a_member_that_moves_closes_what_it_accepted_keeps_what_it_dialled_and_says_where_it_is() {
        let mut c = Config::new(1, "m");
        c.creator = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![addr(1)]));
        drain(&mut g);
        knock(&mut g, 1, 1);
        up(&mut g, 2, 7, false, None);
        g.reach.observe(addr(7), addr(3), 1);
        g.handle(5, Input::AddressesChanged(vec![addr(2)]));
        let out = drain(&mut g);
        assert!(
            out.contains(&Output::Disconnect(1, CloseReason::Moved)),
            "{out:?}"
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Disconnect(2, _))));
        // The kept neighbour hears the new address (observations of the old network gone).
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Send(2, Message::Peers(p)) if p[0].addrs == vec![addr(2)]
        )));
        assert_eq!(g.advertised_addrs(), vec![addr(2)]);
        // The member that had dialled us is dialled back where it listens.
        assert!(out.contains(&Output::Dial(addr(1001))), "{out:?}");
        // The same addresses again change nothing.
        g.handle(6, Input::AddressesChanged(vec![addr(2)]));
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn after_a_move_the_nat_class_is_learnt_again_from_what_dialled_neighbours_observe() {
        let lan: SocketAddr = "10.1.0.2:7000".parse().unwrap();
        let mut c = Config::new(1, "mover");
        c.creator = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(1, Input::Listening(vec![lan]));
        let far: Vec<SocketAddr> = ["198.18.0.10:7000", "198.18.0.11:7000"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mapped: SocketAddr = "198.18.1.1:7000".parse().unwrap();
        for (conn, at) in [(7, far[0]), (8, far[1])] {
            g.handle(
                2,
                Input::ConnectionUp {
                    conn,
                    member: format!("m{conn}"),
                    remote: at,
                    outbound: true,
                    via: None,
                },
            );
            g.handle(
                3,
                Input::Message(
                    conn,
                    Message::Hello(Hello {
                        node_id: 100 + conn,
                        listening: true,
                        addrs: vec![at],
                        properties_version: 0,
                        neighbours: 1,
                        observed: Some(mapped),
                        relay: false,
                        entry_version: 0,
                        dial_back: 0,
                    }),
                ),
            );
        }
        assert_eq!(g.nat_class(), NatClass::EndpointIndependent);
        // Behind another router now, a symmetric one: the old views are gone.
        let lan2: SocketAddr = "10.2.0.2:7000".parse().unwrap();
        g.handle(10, Input::AddressesChanged(vec![lan2]));
        assert_eq!(g.nat_class(), NatClass::Unknown);
        drain(&mut g);
        // The connections we dialled migrated; their far sides tell us what they see.
        let new7: SocketAddr = "198.18.1.2:40001".parse().unwrap();
        let new8: SocketAddr = "198.18.1.2:40002".parse().unwrap();
        g.handle(11, Input::Message(7, Message::Observed(new7)));
        let out = drain(&mut g);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Send(8, Message::Peers(p)) if p[0].addrs.contains(&new7)
            )),
            "the neighbours hear the new mapping: {out:?}"
        );
        g.handle(12, Input::Message(8, Message::Observed(new8)));
        assert_eq!(g.nat_class(), NatClass::EndpointDependent);
        // Only a connection we dialled tells us our mapping: an accepted one is ignored.
        knock(&mut g, 20, 0);
        drain(&mut g);
        let before = g.advertised_addrs();
        g.handle(13, Input::Message(20, Message::Observed(addr(9))));
        assert_eq!(g.advertised_addrs(), before);
        assert!(drain(&mut g).is_empty());
    }

    /// Connection `conn` from or to `remote` comes up with node `node`, whose `Hello` says it
    /// sees us at `observed` and carries `dial_back`.
    fn meet(
        g: &mut Group,
        now: Millis,
        (conn, node): (ConnId, u64),
        remote: SocketAddr,
        outbound: bool,
        observed: SocketAddr,
        dial_back: u64,
    ) -> Vec<Output> {
        g.handle(
            now,
            Input::ConnectionUp {
                conn,
                member: format!("p{node}"),
                remote,
                outbound,
                via: None,
            },
        );
        let mut out = drain(g);
        let hello = hello_of(node, remote, Some(observed), false, dial_back);
        g.handle(now, Input::Message(conn, hello));
        out.extend(drain(g));
        out
    }

    /// The `Hello` of listening node `node` at `at` with one neighbour.
    fn hello_of(
        node: u64,
        at: SocketAddr,
        observed: Option<SocketAddr>,
        relay: bool,
        dial_back: u64,
    ) -> Message {
        Message::Hello(Hello {
            node_id: node,
            listening: true,
            addrs: vec![at],
            properties_version: 0,
            neighbours: 1,
            observed,
            relay,
            entry_version: 0,
            dial_back,
        })
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A listening member behind an endpoint-independent NAT (LAN 10.1.0.2:7000, mapped
    /// 198.18.1.1:7000) with two dialled neighbours (conns 7 and 8, nodes 70 and 80); and the
    /// dial-back it asks at its first maintenance tick: (via, nonce, exclude).
    fn behind_a_cone() -> (Group, ConnId, u64, Vec<std::net::IpAddr>) {
        let mut c = Config::new(1, "asker");
        c.creator = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![sock("10.1.0.2:7000")]));
        let mapped = sock("198.18.1.1:7000");
        meet(
            &mut g,
            1,
            (7, 70),
            sock("198.18.0.10:7000"),
            true,
            mapped,
            0,
        );
        meet(
            &mut g,
            1,
            (8, 80),
            sock("198.18.0.11:7000"),
            true,
            mapped,
            0,
        );
        assert_eq!(g.nat_class(), NatClass::EndpointIndependent);
        assert_eq!(g.outside(), Outside::Unknown);
        g.handle(5_000, Input::Tick);
        let ask = drain(&mut g).into_iter().find_map(|o| match o {
            Output::Send(via, Message::DialBack(DialBack::Ask { nonce, exclude })) => {
                Some((via, nonce, exclude))
            }
            _ => None,
        });
        let (via, nonce, mut exclude) = ask.expect("asks for a dial-back");
        exclude.sort_unstable();
        (g, via, nonce, exclude)
    }

    #[test]
    fn a_cone_member_full_of_inbound_neighbours_dials_one_to_ask_its_dial_back_through() {
        let mut c = Config::new(1, "asker");
        c.creator = true;
        (c.target_neighbours, c.max_neighbours) = (2, 2);
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![sock("10.1.0.2:7000")]));
        let mapped = sock("198.18.1.1:7000");
        for (conn, node, at) in [(7, 70, "198.18.0.10:7000"), (8, 80, "198.18.0.11:7000")] {
            meet(&mut g, 1, (conn, node), sock(at), true, mapped, 0);
        }
        assert_eq!(g.nat_class(), NatClass::EndpointIndependent);
        drain(&mut g);
        // The two it dialled go (it dials them again, and those dials fail); two members
        // that dialled it fill its room.
        g.handle(2, Input::ConnectionDown(7));
        g.handle(2, Input::ConnectionDown(8));
        let refused = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
        for o in drain(&mut g) {
            if let Output::Dial(a) = o {
                g.handle(3, Input::DialFailed(a, refused));
            }
        }
        for (conn, node, at) in [(3, 30, "198.18.0.12:7000"), (4, 40, "198.18.0.13:7000")] {
            meet(&mut g, 4, (conn, node), sock(at), false, mapped, 0);
        }
        drain(&mut g);
        assert_eq!(g.nat_class(), NatClass::EndpointIndependent, "still known");
        // Full, at its target, yet it dials: a dial-back is asked through a dialled one.
        g.handle(5_000, Input::Tick);
        let out = drain(&mut g);
        let dialled = *dials_in(&out)
            .first()
            .unwrap_or_else(|| panic!("a dial: {out:?}"));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Send(_, Message::DialBack(_)))),
            "no neighbour it dialled to ask yet"
        );
        let node = g
            .known_peers()
            .find(|e| e.addrs.contains(&dialled))
            .map(|e| e.node_id)
            .unwrap();
        // The dial comes up in an inbound one's place; the next test goes through it.
        meet(&mut g, 5_001, (9, node), dialled, true, mapped, 0);
        assert_eq!(conns(&g).len(), 2);
        assert!(conns(&g).contains(&9));
        g.handle(5_000 + crate::dialback::ASK_INTERVAL_MS, Input::Tick);
        assert!(drain(&mut g)
            .iter()
            .any(|o| matches!(o, Output::Send(9, Message::DialBack(DialBack::Ask { .. })))));
    }

    #[test]
    fn a_dial_back_by_a_third_member_makes_a_cone_member_public() {
        let (mut a, via, nonce, exclude) = behind_a_cone();
        assert!([7, 8].contains(&via));
        assert_eq!(
            exclude,
            vec![sock("198.18.0.10:0").ip(), sock("198.18.0.11:0").ip()],
            "not its neighbours: its NAT admits them"
        );

        // The neighbour asked (node 70, say) sees the asker at its mapping on conn 1 and has
        // two other neighbours: node 80 (excluded) and node 3 at another IP.
        let mapped = sock("198.18.1.1:7000");
        let mut c = Config::new(70, "forwarder");
        c.creator = true;
        let mut b = Group::new(c, vec![], None);
        b.handle(0, Input::Connect);
        b.handle(0, Input::Listening(vec![sock("198.18.0.10:7000")]));
        let seen = sock("198.18.0.10:7000");
        meet(&mut b, 1, (1, 1), mapped, false, seen, 0);
        meet(&mut b, 1, (2, 80), sock("198.18.0.11:7000"), false, seen, 0);
        meet(&mut b, 1, (3, 3), sock("198.18.0.12:7000"), false, seen, 0);
        let ask = DialBack::Ask {
            nonce,
            exclude: exclude.clone(),
        };
        b.handle(2, Input::Message(1, Message::DialBack(ask.clone())));
        let out = drain(&mut b);
        let dial = DialBack::Dial {
            node_id: 1,
            addr: mapped,
            nonce,
        };
        assert!(out.contains(&Output::Send(3, Message::DialBack(dial.clone()))));
        assert!(!out.iter().any(|o| matches!(o, Output::Send(2, _))));
        assert!(out.contains(&Output::Send(
            1,
            Message::DialBack(DialBack::Asked { nonce, sent: true })
        )));
        // One ask per connection per interval.
        b.handle(3, Input::Message(1, Message::DialBack(ask)));
        assert_eq!(
            drain(&mut b),
            vec![Output::Send(
                1,
                Message::DialBack(DialBack::Asked { nonce, sent: false })
            )]
        );

        // The third member dials where it was told, and its Hello carries the nonce.
        let mut c3 = Config::new(3, "third");
        c3.creator = true;
        let mut t = Group::new(c3, vec![], None);
        t.handle(0, Input::Connect);
        t.handle(0, Input::Listening(vec![sock("198.18.0.12:7000")]));
        meet(&mut t, 1, (5, 70), seen, true, sock("198.18.0.12:7000"), 0);
        t.handle(2, Input::Message(5, Message::DialBack(dial.clone())));
        assert!(drain(&mut t).contains(&Output::Dial(mapped)));
        t.handle(
            3,
            Input::ConnectionUp {
                conn: 9,
                member: "p1".into(),
                remote: mapped,
                outbound: true,
                via: None,
            },
        );
        assert!(drain(&mut t).iter().any(|o| matches!(o,
            Output::Send(9, Message::Hello(h)) if h.dial_back == nonce)));
        // Asked again while connected to the asker: it dials again (silence would read
        // "unreachable"; the asker finds the dial comes from an IP it sent to).
        t.handle(4, Input::Message(5, Message::DialBack(dial.clone())));
        assert!(drain(&mut t).contains(&Output::Dial(mapped)));
        // A second ask while that dial is under way adds no dial.
        t.handle(5, Input::Message(5, Message::DialBack(dial)));
        assert!(!drain(&mut t).iter().any(|o| matches!(o, Output::Dial(_))));

        // The asker: the neighbour's answer, then the third member's dial at the mapping.
        a.handle(
            5_001,
            Input::Message(
                via,
                Message::DialBack(DialBack::Asked { nonce, sent: true }),
            ),
        );
        let out = meet(
            &mut a,
            5_002,
            (20, 3),
            sock("198.18.0.12:7000"),
            false,
            mapped,
            nonce,
        );
        assert_eq!(a.outside(), Outside::Reachable(mapped));
        assert!(
            out.iter().any(|o| matches!(o,
                Output::Send(7, Message::Peers(p)) if p.iter().any(|e| e.node_id == 1 && e.public))),
            "neighbours hear it is public"
        );
        // The wait passing changes nothing now.
        a.handle(
            5_000 + crate::dialback::DIAL_BACK_WAIT_MS + 5_000,
            Input::Tick,
        );
        assert_eq!(a.outside(), Outside::Reachable(mapped));
    }

    #[test]
    fn a_dial_back_that_never_comes_means_unreachable_and_a_move_forgets_it() {
        let (mut a, via, nonce, _) = behind_a_cone();
        // An inbound connection without the nonce (a punch partner) proves nothing.
        meet(
            &mut a,
            5_001,
            (20, 3),
            sock("198.18.0.12:7000"),
            false,
            sock("198.18.1.1:7000"),
            0,
        );
        a.handle(
            5_001,
            Input::Message(
                via,
                Message::DialBack(DialBack::Asked { nonce, sent: true }),
            ),
        );
        assert_eq!(a.outside(), Outside::Unknown);
        a.handle(5_000 + crate::dialback::DIAL_BACK_WAIT_MS, Input::Tick);
        assert_eq!(a.outside(), Outside::Unreachable);
        assert!(!a.my_entry().public);
        a.handle(20_000, Input::AddressesChanged(vec![sock("10.2.0.2:7000")]));
        assert_eq!(a.outside(), Outside::Unknown);

        // A neighbour that found no third member: no conclusion, asked again later.
        let (mut a, via, nonce, _) = behind_a_cone();
        a.handle(
            5_001,
            Input::Message(
                via,
                Message::DialBack(DialBack::Asked { nonce, sent: false }),
            ),
        );
        a.handle(5_000 + crate::dialback::DIAL_BACK_WAIT_MS, Input::Tick);
        assert_eq!(a.outside(), Outside::Unknown);
        a.handle(5_000 + crate::dialback::DIAL_BACK_RETRY_MS, Input::Tick);
        assert!(drain(&mut a)
            .iter()
            .any(|o| matches!(o, Output::Send(_, Message::DialBack(DialBack::Ask { .. })))));
    }

    #[test]
    fn a_member_tells_a_neighbour_that_dialled_it_where_its_packets_come_from_after_a_migration() {
        let mut g = member_with(1, &[3]);
        knock(&mut g, 20, 0);
        drain(&mut g);
        let moved: SocketAddr = "198.18.1.9:5555".parse().unwrap();
        g.handle(2, Input::RemoteChanged(20, moved));
        assert_eq!(
            drain(&mut g),
            vec![Output::Send(20, Message::Observed(moved))]
        );
        // Told once per change.
        g.handle(3, Input::RemoteChanged(20, moved));
        assert!(drain(&mut g).is_empty());
        // And again when it sends its own entry at new addresses (it moved and forgot what it
        // was told); its first entry came with its Hello.
        let entry = PeerEntry {
            member: "p20".into(),
            node_id: 120,
            addrs: vec!["10.2.0.2:7000".parse().unwrap()],
            relays: vec![],
            public: false,
            version: 50,
        };
        g.handle(3, Input::Message(20, Message::Peers(vec![entry.clone()])));
        assert!(drain(&mut g).contains(&Output::Send(20, Message::Observed(moved))));
        // An old copy of it changes nothing and is not answered.
        g.handle(3, Input::Message(20, Message::Peers(vec![entry])));
        assert!(!drain(&mut g)
            .iter()
            .any(|o| matches!(o, Output::Send(_, Message::Observed(_)))));
        // A connection we dialled is the other side's to report, and an unknown one nobody's.
        up(&mut g, 30, 7, false, None);
        drain(&mut g);
        g.handle(4, Input::RemoteChanged(30, moved));
        g.handle(4, Input::RemoteChanged(999, moved));
        assert!(drain(&mut g).is_empty());
    }

    /// Member `node` (a relay when `relay`), dialled by `g` on `conn`, says `Hello` at `now`.
    fn dialled_at(g: &mut Group, now: Millis, conn: ConnId, node: u64, relay: bool) {
        up_at(g, now, conn, node, relay, None);
    }

    /// We dialled node `node` (at `addr(node)`, or through `via`) on `conn` at `now`: its
    /// connection is up and its `Hello` arrived.
    fn up_at(g: &mut Group, now: Millis, conn: ConnId, node: u64, relay: bool, via: Option<Via>) {
        g.handle(
            now,
            Input::ConnectionUp {
                conn,
                member: format!("p{node}"),
                remote: addr(node as u16),
                outbound: true,
                via,
            },
        );
        let hello = hello_of(node, addr(node as u16), None, relay, 0);
        g.handle(now, Input::Message(conn, hello));
    }

    fn names_relay(out: &[Output], relay: u64) -> bool {
        out.iter().any(|o| {
            matches!(o, Output::Send(_, Message::Peers(p))
                if p.iter().any(|e| e.member == "m" && e.relays.contains(&relay)))
        })
    }

    #[test]
    fn a_relay_is_named_once_it_held_and_one_that_refused_at_once_is_left_alone_a_while() {
        let entry = |member: &str, node: u64, relays: Vec<u64>| PeerEntry {
            member: member.into(),
            node_id: node,
            addrs: vec![addr(node as u16)],
            relays,
            public: true,
            version: 1,
        };
        // Member "x" names node 8 as its relay: 8 is a relay this member may dial for one.
        let known = vec![entry("p8", 8, vec![]), entry("x", 9, vec![8])];
        let mut c = Config::new(1, "m");
        c.creator = true;
        let mut g = Group::new(c, known, None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![addr(1)]));
        drain(&mut g);
        // Relay 8 is full: it ends the connection right after the Hellos.
        dialled_at(&mut g, 10, 3, 8, true);
        g.handle(60, Input::ConnectionDown(3));
        let out = drain(&mut g);
        assert!(!names_relay(&out, 8), "no entry change for it: {out:?}");
        assert!(g.my_relays.is_empty());
        // Not asked for a relay slot again for a while; after that, it is.
        g.dialing.clear();
        g.dial_a_relay();
        assert!(!drain(&mut g).contains(&Output::Dial(addr(8))));
        g.now = 60 + RELAY_REFUSED_RETRY_MS;
        g.dial_a_relay();
        assert!(drain(&mut g).contains(&Output::Dial(addr(8))));
        // Relay 7 holds: named once RELAY_SETTLE_MS passed, not before.
        g.dialing.clear();
        let t = g.now + 1;
        dialled_at(&mut g, t, 2, 7, true);
        assert!(!names_relay(&drain(&mut g), 7));
        assert_eq!(
            g.poll_timeout().map(|p| p <= t + RELAY_SETTLE_MS),
            Some(true)
        );
        g.handle(t + RELAY_SETTLE_MS - 1, Input::Tick);
        assert!(!names_relay(&drain(&mut g), 7));
        g.handle(t + RELAY_SETTLE_MS, Input::Tick);
        assert!(names_relay(&drain(&mut g), 7));
        assert_eq!(g.my_relays, vec![7]);
    }

    #[test]
    fn hello_reports_the_neighbour_count() {
        let mut g = member_with(1, &[3, 5]);
        g.handle(
            2,
            Input::ConnectionUp {
                conn: 9,
                member: "p9".into(),
                remote: addr(1009),
                outbound: true,
                via: None,
            },
        );
        let out = drain(&mut g);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Send(9, Message::Hello(h)) if h.neighbours == 2)));
    }

    fn up(g: &mut Group, conn: ConnId, node: u64, relay: bool, via: Option<Via>) -> Vec<Output> {
        up_at(g, 1, conn, node, relay, via);
        drain(g)
    }

    #[test]
    fn a_direct_connection_replaces_a_relayed_one_and_a_relay_takes_its_tunnels_along() {
        let mut g = Group::new(Config::new(50, "me"), vec![], None);
        g.handle(0, Input::Connect);
        drain(&mut g);
        // Relay 7 directly; node 9 through it.
        up(&mut g, 1, 7, true, None);
        up(&mut g, 2, 9, false, Some(Via { relay: 1, node: 9 }));
        assert_eq!(g.relayed_by(2), Some(7));
        // A relay that names another node than the one answering is a violation.
        let out = up(&mut g, 3, 8, false, Some(Via { relay: 1, node: 11 }));
        assert!(out.contains(&Output::Disconnect(3, CloseReason::ProtocolViolation)));
        // A direct connection to node 9 comes up: it stays, the relayed one goes, whichever
        // side dialled (node 50 > 9, so the id rule alone would keep neither choice fixed).
        let out = up(&mut g, 4, 9, false, None);
        assert!(
            out.contains(&Output::Disconnect(2, CloseReason::Duplicate)),
            "{out:?}"
        );
        assert_eq!(g.relayed_by(4), None);
        assert!(g.neighbours().any(|n| n.0 == 4));
        // And a relayed one never replaces a direct one.
        let out = up(&mut g, 5, 9, false, Some(Via { relay: 1, node: 9 }));
        assert!(
            out.contains(&Output::Disconnect(5, CloseReason::Duplicate)),
            "{out:?}"
        );
        // Node 12 through the relay; the relay's connection ends: node 12's ends with it.
        up(&mut g, 6, 12, false, Some(Via { relay: 1, node: 12 }));
        g.handle(2, Input::ConnectionDown(1));
        let out = drain(&mut g);
        assert!(
            out.contains(&Output::Disconnect(6, CloseReason::RelayGone)),
            "{out:?}"
        );
        assert!(g.neighbours().all(|n| n.0 != 6));
        // A tunnel connection whose relay is already gone is closed before its Hello.
        g.handle(
            3,
            Input::ConnectionUp {
                conn: 7,
                member: "p13".into(),
                remote: addr(13),
                outbound: false,
                via: Some(Via { relay: 1, node: 13 }),
            },
        );
        assert!(drain(&mut g).contains(&Output::Disconnect(7, CloseReason::RelayGone)));
    }

    /// Node 7 (on connection 1) asks for tunnel `tunnel` to node 8.
    fn ask_relay_to_node_8(g: &mut Group, tunnel: crate::relay::TunnelId) -> Vec<Output> {
        g.handle(
            2,
            Input::TunnelRequest {
                tunnel,
                from: 1,
                target: 8,
            },
        );
        drain(g)
    }

    #[test]
    fn only_a_listening_opted_in_member_relays_and_only_between_direct_neighbours() {
        let mut g = Group::new(Config::new(50, "me"), vec![], None);
        g.handle(0, Input::Connect);
        up(&mut g, 1, 7, false, None);
        up(&mut g, 2, 8, false, None);
        g.handle(1, Input::Listening(vec![addr(50)]));
        drain(&mut g);
        let ask = ask_relay_to_node_8;
        assert_eq!(
            ask(&mut g, 1),
            vec![Output::RefuseTunnel(1, crate::relay::Refusal::NotAllowed)],
            "not opted in"
        );
        g.set_relay(true);
        assert!(g.offers_relay());
        assert_eq!(
            ask(&mut g, 2),
            vec![Output::RelayTunnel {
                tunnel: 2,
                to: 2,
                from_node: 7
            }]
        );
        assert_eq!(g.tunnels(), (1, 0));
        g.handle(3, Input::TunnelEnded(2));
        assert_eq!(g.tunnels(), (0, 0));
        // An unknown connection asks: refused, nothing counted.
        g.handle(
            3,
            Input::TunnelRequest {
                tunnel: 3,
                from: 99,
                target: 8,
            },
        );
        assert_eq!(
            drain(&mut g),
            vec![Output::RefuseTunnel(3, crate::relay::Refusal::NotAllowed)]
        );
    }

    #[test]
    fn an_older_copy_of_an_entry_never_undoes_a_newer_one() {
        let mut g = Group::new(Config::new(50, "me"), vec![], None);
        g.handle(0, Input::Connect);
        up(&mut g, 1, 7, false, None);
        up(&mut g, 2, 8, false, None);
        let entry = |version, port| PeerEntry {
            member: "x".into(),
            node_id: 9,
            addrs: vec![addr(port)],
            relays: vec![7],
            public: false,
            version,
        };
        g.handle(2, Input::Message(1, Message::Peers(vec![entry(5, 900)])));
        let out = drain(&mut g);
        assert!(
            out.contains(&Output::Send(2, Message::Peers(vec![entry(5, 900)]))),
            "new: passed on"
        );
        g.handle(3, Input::Message(2, Message::Peers(vec![entry(3, 901)])));
        assert!(drain(&mut g).is_empty(), "older: ignored, not passed on");
        let known = g.known_peers().find(|e| e.member == "x").unwrap();
        assert_eq!((known.version, known.addrs.clone()), (5, vec![addr(900)]));
        g.handle(4, Input::Message(2, Message::Peers(vec![entry(6, 901)])));
        assert_eq!(
            g.known_peers().find(|e| e.member == "x").unwrap().version,
            6
        );
    }

    #[test]
    fn a_relaying_member_takes_members_beyond_the_maximum_up_to_its_extra_room() {
        let mut c = Config::new(1, "m");
        c.relay = true;
        let mut g = Group::new(c, vec![], None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![addr(1)]));
        drain(&mut g);
        let room = g.cfg.max_neighbours + RELAY_EXTRA_NEIGHBOURS;
        for conn in 1..=room as ConnId {
            let out = knock(&mut g, conn, 4);
            assert!(
                !out.iter().any(|o| matches!(o, Output::Disconnect(..))),
                "member {conn} taken"
            );
        }
        assert_eq!(conns(&g).len(), room);
        let out = knock(&mut g, 500, 4);
        assert!(out.contains(&Output::Disconnect(500, CloseReason::Busy)));
        assert_eq!(conns(&g).len(), room, "never above the relay's room");
        // Without relaying, the plain maximum.
        g.set_relay(false);
        let out = knock(&mut g, 501, 4);
        assert!(out.contains(&Output::Disconnect(501, CloseReason::Busy)));
    }

    #[test]
    fn a_member_without_a_relay_neighbour_dials_one_beyond_its_target_and_a_second_behind_a_nat() {
        let entry = |member: &str, node_id, port, relays| PeerEntry {
            member: member.into(),
            node_id,
            addrs: vec![addr(port)],
            relays,
            public: false,
            version: 1,
        };
        // Every seed: a chance dial (`dial_random`) must not be what the test sees.
        for seed in 0..8 {
            let mut c = Config::new(50, "me");
            c.seed = seed;
            let mut g = Group::new(c, vec![], None);
            g.handle(0, Input::Connect);
            g.handle(0, Input::Listening(vec![addr(50)]));
            for (conn, node) in [(1, 7), (2, 8), (3, 9), (4, 10)] {
                up(&mut g, conn, node, false, None);
            }
            drain(&mut g);
            // Member x names nodes 77 and 78 as its relays; their entries say where they are.
            let peers = vec![
                entry("x", 11, 911, vec![77, 78]),
                entry("r1", 77, 977, vec![]),
                entry("r2", 78, 978, vec![]),
            ];
            g.handle(2, Input::Message(1, Message::Peers(peers)));
            drain(&mut g);
            let relay_dials = |out: &[Output]| -> Vec<u64> {
                [(977, 77), (978, 78)]
                    .into_iter()
                    .filter(|&(port, _)| out.contains(&Output::Dial(addr(port))))
                    .map(|(_, node)| node)
                    .collect()
            };
            g.handle(600_000, Input::Tick);
            let first = relay_dials(&drain(&mut g));
            assert_eq!(
                first.len(),
                1,
                "seed {seed}: one relay dialled beyond the target of 4"
            );
            // Its NAT class is not known to be "none": it wants a second relay too.
            up(&mut g, 5, first[0], true, None);
            drain(&mut g);
            g.handle(1_200_000, Input::Tick);
            let second = relay_dials(&drain(&mut g));
            assert_eq!(second.len(), 1, "seed {seed}: the other relay dialled");
            assert_ne!(second[0], first[0]);
        }
    }

    #[test]
    fn a_public_member_is_dialled_through_its_relay_only_after_its_address_failed() {
        for public in [false, true] {
            let mut g = Group::new(Config::new(50, "me"), vec![], None);
            g.handle(0, Input::Connect);
            g.handle(0, Input::Listening(vec![addr(50)]));
            // Node 7 relays; member x (node 11) names it.
            up(&mut g, 1, 7, true, None);
            let x = PeerEntry {
                member: "x".into(),
                node_id: 11,
                addrs: vec![addr(911)],
                relays: vec![7],
                public,
                version: 1,
            };
            g.handle(2, Input::Message(1, Message::Peers(vec![x])));
            g.handle(600_000, Input::Tick);
            let out = drain(&mut g);
            let via = Output::DialVia {
                via: 1,
                node_id: 11,
            };
            assert!(out.contains(&Output::Dial(addr(911))), "{out:?}");
            if !public {
                // Behind a NAT: its address may never answer, so the relay at once.
                assert!(out.contains(&via), "{out:?}");
                continue;
            }
            assert!(!out.contains(&via), "public: its address first: {out:?}");
            // A firewall drops what goes there: through the relay next time.
            g.handle(
                610_000,
                Input::DialFailed(addr(911), PEER_E_CONNECTION_FAILED),
            );
            g.handle(1_200_000, Input::Tick);
            let out = drain(&mut g);
            assert!(out.contains(&via), "after the failure: {out:?}");
        }
    }

    #[test]
    fn a_relayed_neighbour_is_punched_three_times_and_a_punch_is_answered_with_dials() {
        let mut g = Group::new(Config::new(50, "me"), vec![], None);
        g.handle(0, Input::Connect);
        g.handle(0, Input::Listening(vec![addr(50)]));
        up(&mut g, 1, 7, true, None);
        // Node 9 through relay 7; its entry says where it is.
        up(&mut g, 2, 9, false, Some(Via { relay: 1, node: 9 }));
        let nine = PeerEntry {
            member: "p9".into(),
            node_id: 9,
            addrs: vec![addr(909), addr(919)],
            relays: vec![7],
            public: false,
            version: 5,
        };
        g.handle(3, Input::Message(1, Message::Peers(vec![nine])));
        drain(&mut g);
        let punch = |out: &[Output]| {
            out.iter()
                .any(|o| matches!(o, Output::Send(2, Message::Punch(a)) if !a.is_empty()))
        };
        let mut punches = 0;
        // The retries come at 5 s, 10 s, 20 s, ... after the relayed connection.
        let mut now = 1;
        for _ in 0..6 {
            now += DIRECT_RETRY_MAX_MS;
            g.handle(now, Input::Tick);
            let out = drain(&mut g);
            if punch(&out) {
                punches += 1;
            }
            assert!(out.contains(&Output::Dial(addr(909))), "{out:?}");
            for a in [909, 919] {
                g.handle(
                    now + 1,
                    Input::DialFailed(addr(a), PEER_E_CONNECTION_FAILED),
                );
            }
            drain(&mut g);
        }
        assert_eq!(punches, PUNCH_ATTEMPTS, "three punches, then dials alone");

        // Node 9 punches us: we dial the addresses it sent, at once, the first three.
        let sent: Vec<SocketAddr> = (1..=5).map(|i| addr(950 + i)).collect();
        g.handle(now + 2, Input::Message(2, Message::Punch(sent.clone())));
        let out = drain(&mut g);
        let dialled: Vec<SocketAddr> = out
            .iter()
            .filter_map(|o| match o {
                Output::Dial(a) => Some(*a),
                _ => None,
            })
            .collect();
        assert_eq!(dialled, sent[..PUNCH_ADDRS]);
        // From a direct neighbour a punch means nothing.
        g.handle(now + 3, Input::Message(1, Message::Punch(vec![addr(990)])));
        assert!(!drain(&mut g).contains(&Output::Dial(addr(990))));
    }

    #[test]
    fn carried_tunnels_end_when_relaying_stops_here_or_in_the_group() {
        let mut g = Group::new(Config::new(50, "me"), vec![], None);
        g.handle(0, Input::Connect);
        up(&mut g, 1, 7, false, None);
        up(&mut g, 2, 8, false, None);
        g.handle(1, Input::Listening(vec![addr(50)]));
        g.set_relay(true);
        drain(&mut g);
        let ask = ask_relay_to_node_8;
        ask(&mut g, 1);
        ask(&mut g, 2);
        assert_eq!(g.tunnels(), (2, 0));
        // This member stops relaying: both tunnels end at once.
        g.set_relay(false);
        let mut ended: Vec<Output> = drain(&mut g);
        ended.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(ended, vec![Output::EndTunnel(1), Output::EndTunnel(2)]);
        assert_eq!(g.tunnels(), (0, 0));
        // On again; then the group's properties turn relaying off.
        g.set_relay(true);
        ask(&mut g, 3);
        let flags = crate::properties::PEERGROUP_DISABLE_RELAYS;
        let body = serde_json::to_vec(&crate::properties::GroupProperties {
            flags,
            ..Default::default()
        })
        .unwrap();
        let props = SignedProperties {
            version: 2,
            body,
            signer_chain: vec![],
            signature: vec![],
        };
        g.handle(4, Input::VerifiedProperties(1, props));
        assert!(drain(&mut g).contains(&Output::EndTunnel(3)));
        assert_eq!(g.tunnels(), (0, 0));
    }
}
