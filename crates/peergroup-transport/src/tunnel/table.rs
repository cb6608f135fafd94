//! The node's open tunnel ends by virtual address, and the channels it has in use, shared by
//! the socket wrapper (which sends to ends and routes channel datagrams) and the node (which
//! opens and closes them).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use bytes::Bytes;
use quinn::udp::Transmit;
use quinn::AsyncUdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::datagram::{self, Route, Router, CHANNEL_HEADER_LEN};
use super::port::Inbound;
use super::{addr, wire, MAX_CHANNELS, MAX_TUNNEL_ENDS, TUNNEL_QUEUE_PACKETS};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether two socket addresses are the same, an IPv4 address and its IPv4-mapped form alike.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Where a member connection's peer is now: QUIC's view, which follows migrations.
pub(crate) trait Remote: Send + Sync {
    fn remote_address(&self) -> SocketAddr;
}

impl Remote for quinn::Connection {
    fn remote_address(&self) -> SocketAddr {
        quinn::Connection::remote_address(self)
    }
}

/// A member connection, by the address its peer is at.
pub(crate) type RemoteRef = Arc<dyn Remote>;

/// One open tunnel end, for status display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Its virtual address: connect to it, or see it as [`Connection::remote_address`].
    ///
    /// [`Connection::remote_address`]: crate::Connection::remote_address
    pub addr: SocketAddr,
    /// The id of the connection (to the relay) the tunnel runs on.
    pub via: u64,
    /// The node at the other end: the target asked for, or the node an offer came from.
    pub peer_node: u64,
    /// Whether its datagrams go as channel datagrams (straight to the relay's socket) rather
    /// than as stream data.
    pub channel: bool,
}

/// A tunnel end's bounded outgoing queue, filled by the socket without ever waiting.
pub(crate) struct PacketQueue {
    tx: mpsc::Sender<Bytes>,
}

impl PacketQueue {
    pub fn new() -> (PacketQueue, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(TUNNEL_QUEUE_PACKETS);
        (PacketQueue { tx }, rx)
    }

    /// Queues a datagram; `false` if the queue is full (or the end gone) and it was dropped.
    pub fn push(&self, packet: Bytes) -> bool {
        self.tx.try_send(packet).is_ok()
    }
}

/// How a tunnel end came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// We asked a relay for it ([`Node::open_tunnel`](crate::Node::open_tunnel)).
    Opened,
    /// We accepted a relay's offer.
    Accepted,
}

/// What a tunnel end's task and the socket share: when a datagram last went either way, and
/// the wake-up for a channel grant.
pub(crate) struct EndSignals {
    base: Instant,
    last_ms: AtomicU64,
    /// Notified when a channel is granted, and when it is confirmed.
    pub channel: Notify,
}

impl EndSignals {
    fn new() -> Self {
        EndSignals {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            channel: Notify::new(),
        }
    }

    /// Records a datagram now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When a datagram last went either way (the end's opening if none).
    pub fn last(&self) -> Instant {
        self.base + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A channel granted to one of our ends by its relay.
struct EndChannel {
    id: u32,
    /// The member connection to the relay: its address is where channel datagrams go.
    relay: RemoteRef,
    /// That address as last seen.
    addr: SocketAddr,
    /// Confirmed by the relay: datagrams go by channel from now on.
    up: bool,
}

struct Entry {
    via: u64,
    peer_node: u64,
    origin: Origin,
    queue: PacketQueue,
    signals: Arc<EndSignals>,
    channel: Option<EndChannel>,
}

/// One leg of a tunnel we relay.
struct Leg {
    /// The member connection to that leg's node: only datagrams from its address are taken.
    conn: RemoteRef,
    addr: SocketAddr,
    /// The other leg's channel id.
    other: u32,
    /// The leg's node has probed: it can send us channel datagrams, and we it.
    confirmed: bool,
    /// Bytes forwarded from this leg (the relayed tunnel's counter for that direction).
    bytes: Arc<AtomicU64>,
}

impl Leg {
    /// Whether `from` is the leg's address, looking again at the connection's (it may have
    /// moved) before saying no.
    fn is_from(&mut self, from: SocketAddr) -> bool {
        if same(self.addr, from) {
            return true;
        }
        self.addr = self.conn.remote_address();
        same(self.addr, from)
    }
}

/// What a channel id stands for at this node.
enum Channel {
    /// A leg of a tunnel we relay.
    Leg(Leg),
    /// The channel of our tunnel end at that virtual address.
    End(SocketAddrV4),
}

struct State {
    /// The counter behind virtual addresses; only grows, so an address is never reused.
    next: u64,
    ends: HashMap<SocketAddrV4, Entry>,
    /// Every channel id in use here, ours as a relay and those our relays granted us.
    channels: HashMap<u32, Channel>,
    /// The counter behind the channel ids we grant, hashed under `keys` so that the ids do not
    /// tell an on-path observer how many tunnels we relayed.
    next_channel: u64,
}

/// What [`Table::reserve`] found.
pub(crate) enum Reserve {
    /// A new end at that address; its queue's receiving side and its signals.
    New(SocketAddrV4, mpsc::Receiver<Bytes>, Arc<EndSignals>),
    /// An end we opened to the same target on the same connection already exists.
    Existing(SocketAddr),
    /// [`MAX_TUNNEL_ENDS`] ends are open (or the address space is used up).
    Full,
}

/// What [`Table::send`] did with a transmit to a virtual address.
pub(crate) enum Sent {
    /// Queued for the end's stream (or dropped); nothing for the socket.
    Handled,
    /// The end's channel is up: the socket sends these bytes to the relay.
    Channel {
        to: SocketAddr,
        contents: Vec<u8>,
        segment_size: Option<usize>,
    },
}

pub(crate) struct Table {
    ipv6: bool,
    state: Mutex<State>,
    keys: RandomState,
    /// The node's raw socket (under the wrapper), for probes; set once the socket is wrapped.
    raw: OnceLock<Weak<dyn AsyncUdpSocket>>,
}

impl Table {
    /// A table for a socket of that family.
    pub fn new(ipv6: bool) -> Self {
        Table {
            ipv6,
            state: Mutex::new(State {
                next: 1,
                ends: HashMap::new(),
                channels: HashMap::new(),
                next_channel: 0,
            }),
            keys: RandomState::new(),
            raw: OnceLock::new(),
        }
    }

    /// `addr` in the form the socket uses.
    pub fn presented(&self, addr: SocketAddrV4) -> SocketAddr {
        addr::presented(addr, self.ipv6)
    }

    /// Gives the table the socket under the wrapper, for probes.
    pub fn set_raw_socket(&self, socket: Weak<dyn AsyncUdpSocket>) {
        let _ = self.raw.set(socket);
    }

    /// Makes room for a new end, unless one we opened for the same pair exists.
    pub fn reserve(&self, via: u64, peer_node: u64, origin: Origin) -> Reserve {
        let mut state = lock(&self.state);
        if origin == Origin::Opened {
            if let Some(existing) = find(&state, via, peer_node) {
                return Reserve::Existing(self.presented(existing));
            }
        }
        if state.ends.len() >= MAX_TUNNEL_ENDS {
            return Reserve::Full;
        }
        let addr = loop {
            let n = state.next;
            state.next += 1;
            match addr::nth(n) {
                Some(a) => break a,
                None if n & 0xFFFF == 0 => continue,
                None => return Reserve::Full,
            }
        };
        let (queue, rx) = PacketQueue::new();
        let signals = Arc::new(EndSignals::new());
        state.ends.insert(
            addr,
            Entry {
                via,
                peer_node,
                origin,
                queue,
                signals: signals.clone(),
                channel: None,
            },
        );
        Reserve::New(addr, rx, signals)
    }

    /// Forgets an end: later datagrams to its address are dropped, its channel id is free.
    pub fn remove(&self, addr: SocketAddrV4) {
        let mut state = lock(&self.state);
        if let Some(Entry {
            channel: Some(ch), ..
        }) = state.ends.remove(&addr)
        {
            state.channels.remove(&ch.id);
        }
    }

    /// The end we opened to `target` on connection `via`, if open.
    pub fn find_opened(&self, via: u64, target: u64) -> Option<SocketAddr> {
        find(&lock(&self.state), via, target).map(|a| self.presented(a))
    }

    /// Whether no further end can be opened now.
    pub fn is_full(&self) -> bool {
        lock(&self.state).ends.len() >= MAX_TUNNEL_ENDS
    }

    /// The connection the tunnel end at `addr` runs on, if `addr` is an open end.
    pub fn via_of(&self, addr: SocketAddr) -> Option<u64> {
        let v = addr::canonical(addr)?;
        lock(&self.state).ends.get(&v).map(|e| e.via)
    }

    /// Every open end, by address.
    pub fn list(&self) -> Vec<TunnelInfo> {
        let state = lock(&self.state);
        let mut all: Vec<(SocketAddrV4, TunnelInfo)> = state
            .ends
            .iter()
            .map(|(a, e)| {
                let info = TunnelInfo {
                    addr: self.presented(*a),
                    via: e.via,
                    peer_node: e.peer_node,
                    channel: e.channel.as_ref().is_some_and(|c| c.up),
                };
                (*a, info)
            })
            .collect();
        all.sort_by_key(|(a, _)| *a);
        all.into_iter().map(|(_, i)| i).collect()
    }

    /// Sends `contents` to the end at `dest`, split into datagrams of `segment_size` (GSO):
    /// by its channel if that is up, else into its stream's queue. Datagrams for an unknown
    /// end, beyond a full queue, or of a size a tunnel cannot carry are dropped.
    pub fn send(&self, dest: SocketAddrV4, contents: &[u8], segment_size: Option<usize>) -> Sent {
        let state = lock(&self.state);
        let Some(end) = state.ends.get(&dest) else {
            return Sent::Handled;
        };
        let size = segment_size.unwrap_or(contents.len()).max(1);
        end.signals.touch();
        if let Some(ch) = end.channel.as_ref().filter(|c| c.up) {
            let header = datagram::header(ch.id);
            let count = contents.len().div_ceil(size);
            let mut out = Vec::with_capacity(contents.len() + count * CHANNEL_HEADER_LEN);
            for d in contents.chunks(size) {
                out.extend_from_slice(&header);
                out.extend_from_slice(d);
            }
            return Sent::Channel {
                to: ch.relay.remote_address(),
                contents: out,
                segment_size: (count > 1).then_some(size + CHANNEL_HEADER_LEN),
            };
        }
        for d in contents.chunks(size) {
            if wire::length_prefix(d.len()).is_some() {
                end.queue.push(Bytes::copy_from_slice(d));
            }
        }
        Sent::Handled
    }

    /// Takes a channel id the end at `addr`'s relay granted: `false` (the tunnel stays on its
    /// stream) if the end is gone or has one, the id is in use here, or [`MAX_CHANNELS`] are.
    pub fn grant(&self, addr: SocketAddrV4, id: u32, relay: RemoteRef) -> bool {
        let mut state = lock(&self.state);
        let full = state.channels.len() >= MAX_CHANNELS;
        let taken = state.channels.contains_key(&id);
        let Some(end) = state.ends.get_mut(&addr) else {
            return false;
        };
        if full || taken || end.channel.is_some() {
            return false;
        }
        let relay_addr = relay.remote_address();
        end.channel = Some(EndChannel {
            id,
            relay,
            addr: relay_addr,
            up: false,
        });
        end.signals.channel.notify_one();
        state.channels.insert(id, Channel::End(addr));
        true
    }

    /// Sends the end at `addr` a probe to its relay; `Some(true)` once its channel is up,
    /// `None` if it has no channel (gone, never granted, or given up).
    pub fn probe(&self, addr: SocketAddrV4) -> Option<bool> {
        let (to, header) = {
            let mut state = lock(&self.state);
            let ch = state.ends.get_mut(&addr)?.channel.as_mut()?;
            if ch.up {
                return Some(true);
            }
            ch.addr = ch.relay.remote_address();
            (ch.addr, datagram::header(ch.id))
        };
        if let Some(socket) = self.raw.get().and_then(Weak::upgrade) {
            // Lost like any datagram if the socket is busy; the next probe follows.
            let _ = socket.try_send(&transmit(to, &header, None, None));
        }
        Some(false)
    }

    /// Sends a punch datagram ([`datagram::PUNCH`]) to each real address of `addrs` from the
    /// node's socket, in the socket's form (lost like any datagram when the socket is busy;
    /// virtual addresses and the other family's are skipped).
    pub fn punch(&self, addrs: &[SocketAddr]) {
        let Some(socket) = self.raw.get().and_then(Weak::upgrade) else {
            return;
        };
        for &to in addrs {
            let to = match to {
                _ if addr::canonical(to).is_some() => continue,
                SocketAddr::V4(v4) if self.ipv6 => addr::presented(v4, true),
                SocketAddr::V6(_) if !self.ipv6 => continue,
                to => to,
            };
            let _ = socket.try_send(&transmit(to, &datagram::PUNCH, None, None));
        }
    }

    /// Whether the end at `addr` has a confirmed channel.
    pub fn channel_is_up(&self, addr: SocketAddrV4) -> bool {
        lock(&self.state)
            .ends
            .get(&addr)
            .and_then(|e| e.channel.as_ref())
            .is_some_and(|c| c.up)
    }

    /// Gives up the end at `addr`'s channel: its datagrams stay on the stream.
    pub fn drop_channel(&self, addr: SocketAddrV4) {
        let mut state = lock(&self.state);
        if let Some(ch) = state.ends.get_mut(&addr).and_then(|e| e.channel.take()) {
            state.channels.remove(&ch.id);
        }
    }

    /// Two channel ids for a tunnel we relay between the connections `a` (the requester) and
    /// `b` (the target), counting forwarded bytes into `a_bytes` and `b_bytes`; `None` (the
    /// tunnel stays on its streams) if [`MAX_CHANNELS`] would be passed.
    pub fn open_legs(
        &self,
        a: RemoteRef,
        b: RemoteRef,
        a_bytes: Arc<AtomicU64>,
        b_bytes: Arc<AtomicU64>,
    ) -> Option<(u32, u32)> {
        let mut state = lock(&self.state);
        if state.channels.len() + 2 > MAX_CHANNELS {
            return None;
        }
        let fresh = |state: &mut State, not: Option<u32>| loop {
            state.next_channel += 1;
            let id = self.keys.hash_one(state.next_channel) as u32;
            if !state.channels.contains_key(&id) && Some(id) != not {
                break id;
            }
        };
        let ia = fresh(&mut state, None);
        let ib = fresh(&mut state, Some(ia));
        let leg = |conn: RemoteRef, other, bytes| {
            let addr = conn.remote_address();
            Channel::Leg(Leg {
                conn,
                addr,
                other,
                confirmed: false,
                bytes,
            })
        };
        state.channels.insert(ia, leg(a, ib, a_bytes));
        state.channels.insert(ib, leg(b, ia, b_bytes));
        Some((ia, ib))
    }

    /// Frees a relayed tunnel's channel ids.
    pub fn close_legs(&self, (a, b): (u32, u32)) {
        let mut state = lock(&self.state);
        for id in [a, b] {
            if matches!(state.channels.get(&id), Some(Channel::Leg(_))) {
                state.channels.remove(&id);
            }
        }
    }

    /// Channel ids in use.
    #[cfg(test)]
    pub fn channel_count(&self) -> usize {
        lock(&self.state).channels.len()
    }

    /// The router for a batch of received slots (each from the source set with
    /// [`ChannelRouter::source`]), holding the table while it lives: legs forward to each other
    /// through `socket`, ends deliver (or copy into `inbound`). Forwards are gathered into GSO
    /// sends across slots; [`ChannelRouter::finish`] (or dropping it) sends the last.
    pub fn router<'a>(
        &'a self,
        socket: &'a dyn AsyncUdpSocket,
        inbound: &'a Inbound,
    ) -> ChannelRouter<'a> {
        // GSO takes at most this many segments, and at most 64 KiB in all.
        let max_segments = socket.max_transmit_segments().max(1);
        ChannelRouter {
            table: self,
            state: lock(&self.state),
            socket,
            inbound,
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            ecn: None,
            max_segments,
            batch: None,
        }
    }
}

/// Largest GSO send in bytes (the kernel's limit for one UDP send is 64 KiB).
const MAX_GSO_BYTES: usize = 65_000;

/// Forwarded datagrams for one address waiting to go as one GSO send.
struct Batch {
    to: SocketAddr,
    ecn: Option<quinn::udp::EcnCodepoint>,
    /// Size of every datagram in it but possibly the last.
    size: usize,
    count: usize,
    /// A shorter datagram came last: nothing more can follow.
    closed: bool,
    buf: Vec<u8>,
}

fn transmit<'a>(
    destination: SocketAddr,
    contents: &'a [u8],
    segment_size: Option<usize>,
    ecn: Option<quinn::udp::EcnCodepoint>,
) -> Transmit<'a> {
    Transmit {
        destination,
        ecn,
        contents,
        segment_size,
        src_ip: None,
    }
}

/// Routes the channel datagrams of received slots (see [`datagram::demux_slot`]).
pub(crate) struct ChannelRouter<'a> {
    table: &'a Table,
    state: MutexGuard<'a, State>,
    socket: &'a dyn AsyncUdpSocket,
    inbound: &'a Inbound,
    from: SocketAddr,
    ecn: Option<quinn::udp::EcnCodepoint>,
    max_segments: usize,
    batch: Option<Batch>,
}

impl ChannelRouter<'_> {
    /// Where the next slot's datagrams came from, and their ECN bits.
    pub fn source(&mut self, from: SocketAddr, ecn: Option<quinn::udp::EcnCodepoint>) {
        self.from = from;
        self.ecn = ecn;
    }

    /// Sends what is gathered.
    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(b) = self.batch.take() {
            let segments = (b.count > 1).then_some(b.size);
            // A full socket drops, as a router would: the ends' congestion control answers.
            let _ = self
                .socket
                .try_send(&transmit(b.to, &b.buf, segments, b.ecn));
        }
    }

    /// Adds one datagram for `to` to the batch, sending the batch first if it cannot join.
    fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        if let Some(b) = self.batch.as_mut() {
            let fits = b.to == to
                && b.ecn == self.ecn
                && !b.closed
                && datagram.len() <= b.size
                && b.count < self.max_segments
                && b.buf.len() + datagram.len() <= MAX_GSO_BYTES;
            if fits {
                b.buf.extend_from_slice(datagram);
                b.count += 1;
                b.closed = datagram.len() < b.size;
                return;
            }
            self.flush();
        }
        let mut buf = Vec::with_capacity(MAX_GSO_BYTES.min(datagram.len() * self.max_segments));
        buf.extend_from_slice(datagram);
        self.batch = Some(Batch {
            to,
            ecn: self.ecn,
            size: datagram.len(),
            count: 1,
            closed: false,
            buf,
        });
    }

    /// A probe from a leg: the leg is confirmed, and once both are, each is told.
    fn probed(&mut self, id: u32) {
        let Some(Channel::Leg(leg)) = self.state.channels.get_mut(&id) else {
            return;
        };
        let newly = !leg.confirmed;
        leg.confirmed = true;
        let other = leg.other;
        let Some(Channel::Leg(peer)) = self.state.channels.get(&other) else {
            return;
        };
        if !peer.confirmed {
            return;
        }
        let peer_addr = peer.addr;
        // Confirm to the prober each time (its last confirmation may be lost), and to the
        // other leg when the channel has just come up.
        let _ = self
            .socket
            .try_send(&transmit(self.from, &datagram::header(id), None, None));
        if newly {
            let _ =
                self.socket
                    .try_send(&transmit(peer_addr, &datagram::header(other), None, None));
        }
    }
}

impl Router for ChannelRouter<'_> {
    fn route(&mut self, id: u32, inner: &[u8]) -> Route {
        let from = self.from;
        match self.state.channels.get_mut(&id) {
            Some(Channel::Leg(leg)) => {
                if !leg.is_from(from) {
                    return Route::Drop;
                }
                if inner.is_empty() {
                    self.probed(id);
                    return Route::Drop;
                }
                if !leg.confirmed {
                    return Route::Drop;
                }
                let (other, bytes) = (leg.other, leg.bytes.clone());
                match self.state.channels.get(&other) {
                    Some(Channel::Leg(peer)) if peer.confirmed => {
                        let len = (CHANNEL_HEADER_LEN + inner.len()) as u64;
                        bytes.fetch_add(len, Ordering::Relaxed);
                        Route::Forward {
                            id: other,
                            to: peer.addr,
                        }
                    }
                    _ => Route::Drop,
                }
            }
            Some(Channel::End(addr)) => {
                let addr = *addr;
                let Some(ch) = self
                    .state
                    .ends
                    .get_mut(&addr)
                    .and_then(|e| e.channel.as_mut().map(|c| (c, &e.signals)))
                else {
                    return Route::Drop;
                };
                let (ch, signals) = ch;
                if !same(ch.addr, from) {
                    ch.addr = ch.relay.remote_address();
                    if !same(ch.addr, from) {
                        return Route::Drop;
                    }
                }
                if inner.is_empty() {
                    if !ch.up {
                        ch.up = true;
                        signals.channel.notify_one();
                    }
                    return Route::Drop;
                }
                signals.touch();
                Route::Deliver {
                    from: self.table.presented(addr),
                }
            }
            None => Route::Drop,
        }
    }

    fn forward(&mut self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>) {
        let size = segment_size.unwrap_or(contents.len()).max(1);
        for datagram in contents.chunks(size) {
            self.push(to, datagram);
        }
    }

    fn copy_out(&mut self, from: SocketAddr, inner: &[u8]) {
        let _ = self.inbound.try_send((from, Bytes::copy_from_slice(inner)));
    }
}

fn find(state: &State, via: u64, peer_node: u64) -> Option<SocketAddrV4> {
    state
        .ends
        .iter()
        .find(|(_, e)| e.origin == Origin::Opened && e.via == via && e.peer_node == peer_node)
        .map(|(a, _)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_end(
        t: &Table,
        via: u64,
        peer: u64,
        origin: Origin,
    ) -> (SocketAddrV4, mpsc::Receiver<Bytes>) {
        match t.reserve(via, peer, origin) {
            Reserve::New(a, rx, _) => (a, rx),
            _ => panic!("no room"),
        }
    }

    #[test]
    fn a_stalled_queue_drops_beyond_its_bound() {
        let (queue, mut rx) = PacketQueue::new();
        let pushed = (0..TUNNEL_QUEUE_PACKETS + 100)
            .filter(|i| queue.push(Bytes::from(i.to_be_bytes().to_vec())))
            .count();
        assert_eq!(pushed, TUNNEL_QUEUE_PACKETS);
        assert_eq!(rx.len(), TUNNEL_QUEUE_PACKETS);
        // The first ones are kept, in order; the drops were the late ones.
        assert_eq!(
            rx.try_recv().unwrap(),
            Bytes::from(0usize.to_be_bytes().to_vec())
        );
        assert!(queue.push(Bytes::from_static(b"room again")));
    }

    #[test]
    fn at_most_max_tunnel_ends_and_addresses_are_never_reused() {
        let t = Table::new(false);
        let mut ends: Vec<_> = (0..MAX_TUNNEL_ENDS as u64)
            .map(|i| new_end(&t, 1, i, Origin::Accepted))
            .collect();
        assert!(t.is_full());
        assert!(matches!(t.reserve(1, 999, Origin::Accepted), Reserve::Full));
        assert_eq!(t.list().len(), MAX_TUNNEL_ENDS);
        let (gone, _) = ends.remove(0);
        t.remove(gone);
        let (fresh, _) = new_end(&t, 1, 999, Origin::Accepted);
        assert_ne!(fresh, gone);
        assert!(ends.iter().all(|(a, _)| *a != fresh));
        assert_eq!(t.via_of(SocketAddr::V4(gone)), None);
        assert_eq!(t.via_of(SocketAddr::V4(fresh)), Some(1));
    }

    #[test]
    fn an_opened_end_is_reused_for_the_same_connection_and_target() {
        let t = Table::new(true);
        let (a, _rx) = new_end(&t, 7, 42, Origin::Opened);
        let shown = t.presented(a);
        assert!(shown.is_ipv6());
        assert!(matches!(t.reserve(7, 42, Origin::Opened), Reserve::Existing(e) if e == shown));
        assert_eq!(t.find_opened(7, 42), Some(shown));
        assert_eq!(t.find_opened(8, 42), None);
        // An accepted end from that node is another end.
        assert!(matches!(
            t.reserve(7, 42, Origin::Accepted),
            Reserve::New(..)
        ));
        assert_eq!(
            t.list()[0],
            TunnelInfo {
                addr: shown,
                via: 7,
                peer_node: 42,
                channel: false,
            }
        );
    }

    #[test]
    fn gso_transmits_are_split_and_unknown_ends_get_nothing() {
        let t = Table::new(false);
        let (a, mut rx) = new_end(&t, 1, 2, Origin::Opened);
        let contents: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        assert!(matches!(t.send(a, &contents, Some(1000)), Sent::Handled));
        let sizes: Vec<usize> = (0..3).map(|_| rx.try_recv().unwrap().len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert!(matches!(t.send(a, &contents[..10], None), Sent::Handled));
        assert_eq!(rx.try_recv().unwrap(), &contents[..10]);
        let unknown: SocketAddrV4 = "240.9.9.9:9".parse().unwrap();
        assert!(matches!(t.send(unknown, &contents, None), Sent::Handled));
        assert!(rx.try_recv().is_err());
    }

    /// A peer that stays where it is.
    struct Fixed(SocketAddr);

    impl Remote for Fixed {
        fn remote_address(&self) -> SocketAddr {
            self.0
        }
    }

    fn fixed(addr: SocketAddr) -> RemoteRef {
        Arc::new(Fixed(addr))
    }

    fn counter() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(0))
    }

    #[test]
    fn at_most_max_channels_ids_are_in_use() {
        let t = Table::new(false);
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut pairs = Vec::new();
        while let Some(p) = t.open_legs(fixed(peer), fixed(peer), counter(), counter()) {
            assert_ne!(p.0, p.1);
            pairs.push(p);
        }
        assert_eq!(pairs.len() * 2, MAX_CHANNELS);
        assert_eq!(t.channel_count(), MAX_CHANNELS);
        // An end's grant is refused too while they are all in use.
        let (end, _rx) = new_end(&t, 1, 2, Origin::Opened);
        assert!(!t.grant(end, 7, fixed(peer)));
        t.close_legs(pairs.pop().unwrap());
        assert!(t.grant(end, 7, fixed(peer)));
        assert_eq!(t.channel_count(), MAX_CHANNELS - 1);
        // The end's id goes with it.
        t.remove(end);
        assert_eq!(t.channel_count(), MAX_CHANNELS - 2);
    }

    #[test]
    fn a_grant_is_refused_for_an_id_in_use_and_a_second_one() {
        let t = Table::new(false);
        let relay = "127.0.0.1:9".parse().unwrap();
        let (a, _ra) = new_end(&t, 1, 2, Origin::Opened);
        let (b, _rb) = new_end(&t, 1, 3, Origin::Opened);
        assert!(t.grant(a, 5, fixed(relay)));
        assert!(!t.grant(b, 5, fixed(relay)), "id 5 is a's");
        assert!(!t.grant(a, 6, fixed(relay)), "a has one");
        let gone: SocketAddrV4 = "240.9.9.9:9".parse().unwrap();
        assert!(!t.grant(gone, 8, fixed(relay)));
        // Granted but not confirmed: datagrams still go to the stream's queue.
        assert!(matches!(t.send(a, b"x", None), Sent::Handled));
        assert!(!t.channel_is_up(a));
        t.drop_channel(a);
        assert!(t.grant(b, 5, fixed(relay)));
    }

    /// A UDP socket as quinn wraps it, known writable (as quinn's driver makes it), and its
    /// address.
    async fn quinn_socket() -> (Arc<dyn AsyncUdpSocket>, SocketAddr) {
        use quinn::Runtime;
        let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = std.local_addr().unwrap();
        let socket = quinn::TokioRuntime.wrap_udp_socket(std).unwrap();
        let mut poller = socket.clone().create_io_poller();
        std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx))
            .await
            .unwrap();
        (socket, addr)
    }

    fn peer_socket() -> (std::net::UdpSocket, SocketAddr) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.set_nonblocking(false).unwrap();
        let addr = s.local_addr().unwrap();
        (s, addr)
    }

    fn route(t: &Table, socket: &dyn AsyncUdpSocket, from: SocketAddr, dg: &[u8]) -> Route {
        let (tx, _rx) = mpsc::channel(4);
        let mut r = t.router(socket, &tx);
        r.source(from, None);
        let (id, inner) = datagram::parse(dg).unwrap();
        r.route(id, inner)
    }

    fn recv(s: &std::net::UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn relay_legs_forward_only_after_both_probed_and_only_from_their_own_address() {
        let t = Table::new(false);
        let (socket, _) = quinn_socket().await;
        let (a, a_addr) = peer_socket();
        let (b, b_addr) = peer_socket();
        let (up, down) = (counter(), counter());
        let (ia, ib) = t
            .open_legs(fixed(a_addr), fixed(b_addr), up.clone(), down.clone())
            .unwrap();
        let data = |id: u32| {
            let mut d = datagram::header(id).to_vec();
            d.extend_from_slice(&[0x55; 100]);
            d
        };
        // Nothing is forwarded before both legs probed.
        assert_eq!(route(&t, &*socket, a_addr, &data(ia)), Route::Drop);
        assert_eq!(
            route(&t, &*socket, a_addr, &datagram::header(ia)),
            Route::Drop
        );
        assert_eq!(route(&t, &*socket, a_addr, &data(ia)), Route::Drop);
        // B's probe brings the channel up: both are told.
        assert_eq!(
            route(&t, &*socket, b_addr, &datagram::header(ib)),
            Route::Drop
        );
        assert_eq!(recv(&b), datagram::header(ib));
        assert_eq!(recv(&a), datagram::header(ia));
        assert_eq!(
            route(&t, &*socket, a_addr, &data(ia)),
            Route::Forward { id: ib, to: b_addr }
        );
        assert_eq!(
            route(&t, &*socket, b_addr, &data(ib)),
            Route::Forward { id: ia, to: a_addr }
        );
        assert_eq!(up.load(Ordering::Relaxed), 105);
        assert_eq!(down.load(Ordering::Relaxed), 105);
        // From anywhere else, with a leg's id, nothing.
        let (_, stranger) = peer_socket();
        assert_eq!(route(&t, &*socket, stranger, &data(ia)), Route::Drop);
        assert_eq!(route(&t, &*socket, b_addr, &data(ia)), Route::Drop);
        assert_eq!(route(&t, &*socket, a_addr, &data(ia ^ ib ^ 1)), Route::Drop);
        assert_eq!(up.load(Ordering::Relaxed), 105);
        t.close_legs((ia, ib));
        assert_eq!(route(&t, &*socket, a_addr, &data(ia)), Route::Drop);
        assert_eq!(t.channel_count(), 0);
    }

    #[tokio::test]
    async fn an_end_sends_by_channel_once_its_relay_confirms() {
        let t = Table::new(false);
        let (socket, _) = quinn_socket().await;
        t.set_raw_socket(Arc::downgrade(&socket));
        let (relay, relay_addr) = peer_socket();
        let (end, mut queue) = new_end(&t, 1, 2, Origin::Opened);
        assert_eq!(t.probe(end), None, "no channel yet");
        assert!(t.grant(end, 77, fixed(relay_addr)));
        assert_eq!(t.probe(end), Some(false));
        assert_eq!(recv(&relay), datagram::header(77));
        // Only the relay's address can confirm.
        let (_, stranger) = peer_socket();
        assert_eq!(
            route(&t, &*socket, stranger, &datagram::header(77)),
            Route::Drop
        );
        assert!(!t.channel_is_up(end));
        assert_eq!(
            route(&t, &*socket, relay_addr, &datagram::header(77)),
            Route::Drop
        );
        assert!(t.channel_is_up(end));
        assert_eq!(t.probe(end), Some(true));
        // Two GSO segments become two channel datagrams in one send.
        let contents = [[0x41u8; 10], [0x42u8; 10]].concat();
        let Sent::Channel {
            to,
            contents: out,
            segment_size,
        } = t.send(end, &contents, Some(10))
        else {
            panic!("not by channel");
        };
        assert_eq!(to, relay_addr);
        assert_eq!(segment_size, Some(15));
        let mut want = datagram::header(77).to_vec();
        want.extend([0x41; 10]);
        want.extend(datagram::header(77));
        want.extend([0x42; 10]);
        assert_eq!(out, want);
        assert!(queue.try_recv().is_err(), "nothing went to the stream");
        // From the relay, data is delivered as from the end's virtual address.
        let mut dg = datagram::header(77).to_vec();
        dg.extend([0x43; 20]);
        assert_eq!(
            route(&t, &*socket, relay_addr, &dg),
            Route::Deliver {
                from: t.presented(end)
            }
        );
        assert_eq!(route(&t, &*socket, stranger, &dg), Route::Drop);
        assert!(t.list()[0].channel);
    }

    #[derive(Debug)]
    struct AlwaysWritable;

    impl quinn::UdpPoller for AlwaysWritable {
        fn poll_writable(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A socket that records what it is asked to send.
    #[derive(Debug, Default)]
    struct Recording {
        sent: Mutex<Vec<(SocketAddr, usize, Option<usize>)>>,
    }

    impl AsyncUdpSocket for Recording {
        fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn quinn::UdpPoller>> {
            Box::pin(AlwaysWritable)
        }
        fn try_send(&self, t: &Transmit) -> std::io::Result<()> {
            lock(&self.sent).push((t.destination, t.contents.len(), t.segment_size));
            Ok(())
        }
        fn poll_recv(
            &self,
            _: &mut std::task::Context,
            _: &mut [std::io::IoSliceMut<'_>],
            _: &mut [quinn::udp::RecvMeta],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Pending
        }
        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            Ok("127.0.0.1:1".parse().unwrap())
        }
        fn max_transmit_segments(&self) -> usize {
            4
        }
    }

    #[test]
    fn forwards_from_many_slots_go_out_in_gso_sends_of_equal_datagrams() {
        let t = Table::new(false);
        let socket = Recording::default();
        let (tx, _rx) = mpsc::channel(4);
        let (x, y): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let mut r = t.router(&socket, &tx);
        r.source(x, None);
        // Six full datagrams for x, one slot each: two sends of at most four segments.
        for _ in 0..6 {
            r.forward(x, &[0x41; 1000], None);
        }
        // A shorter one ends a batch; one for another address starts a new one.
        r.forward(x, &[0x42; 500], None);
        r.forward(x, &[0x43; 1000], None);
        r.forward(y, &[0x44; 1000], None);
        // A GSO run of three, split into datagrams and gathered again.
        r.forward(y, &[0x45; 3000], Some(1000));
        r.finish();
        assert_eq!(
            *lock(&socket.sent),
            vec![
                (x, 4000, Some(1000)),
                (x, 2500, Some(1000)),
                (x, 1000, None),
                (y, 4000, Some(1000)),
            ]
        );
    }

    #[test]
    fn punches_go_to_real_addresses_in_the_socket_s_form() {
        let real: SocketAddr = "198.18.1.1:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        let addrs = [real, "240.0.0.1:7".parse().unwrap(), v6];
        let t = Table::new(false);
        let socket: Arc<Recording> = Arc::default();
        let dynamic: Arc<dyn AsyncUdpSocket> = socket.clone();
        t.set_raw_socket(Arc::downgrade(&dynamic));
        t.punch(&addrs);
        assert_eq!(
            *lock(&socket.sent),
            vec![(real, datagram::PUNCH.len(), None)]
        );
        // The receiver's wrapper drops them: never QUIC, no channel.
        assert!(!datagram::is_quic(datagram::PUNCH[0]));
        assert_eq!(datagram::parse(&datagram::PUNCH), None);

        let t6 = Table::new(true);
        let socket6: Arc<Recording> = Arc::default();
        let dynamic6: Arc<dyn AsyncUdpSocket> = socket6.clone();
        t6.set_raw_socket(Arc::downgrade(&dynamic6));
        t6.punch(&addrs);
        let mapped: SocketAddr = "[::ffff:198.18.1.1]:4000".parse().unwrap();
        assert_eq!(
            lock(&socket6.sent).iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![mapped, v6]
        );
    }
}
