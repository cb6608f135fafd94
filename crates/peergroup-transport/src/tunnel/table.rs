//! The node's open tunnel ends by virtual address, shared by the socket wrapper (which sends to
//! them) and the node (which opens and closes them).

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{addr, wire, MAX_TUNNEL_ENDS, TUNNEL_QUEUE_PACKETS};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

struct Entry {
    via: u64,
    peer_node: u64,
    origin: Origin,
    queue: PacketQueue,
}

struct State {
    /// The counter behind virtual addresses; only grows, so an address is never reused.
    next: u64,
    ends: HashMap<SocketAddrV4, Entry>,
}

/// What [`Table::reserve`] found.
pub(crate) enum Reserve {
    /// A new end at that address; its queue's receiving side.
    New(SocketAddrV4, mpsc::Receiver<Bytes>),
    /// An end we opened to the same target on the same connection already exists.
    Existing(SocketAddr),
    /// [`MAX_TUNNEL_ENDS`] ends are open (or the address space is used up).
    Full,
}

pub(crate) struct Table {
    ipv6: bool,
    state: Mutex<State>,
}

impl Table {
    /// A table for a socket of that family.
    pub fn new(ipv6: bool) -> Self {
        Table {
            ipv6,
            state: Mutex::new(State {
                next: 1,
                ends: HashMap::new(),
            }),
        }
    }

    /// `addr` in the form the socket uses.
    pub fn presented(&self, addr: SocketAddrV4) -> SocketAddr {
        addr::presented(addr, self.ipv6)
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
        state.ends.insert(
            addr,
            Entry {
                via,
                peer_node,
                origin,
                queue,
            },
        );
        Reserve::New(addr, rx)
    }

    /// Forgets an end: later datagrams to its address are dropped.
    pub fn remove(&self, addr: SocketAddrV4) {
        lock(&self.state).ends.remove(&addr);
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
                };
                (*a, info)
            })
            .collect();
        all.sort_by_key(|(a, _)| *a);
        all.into_iter().map(|(_, i)| i).collect()
    }

    /// Queues `contents` for the end at `dest`, split into datagrams of `segment_size` (GSO).
    /// Datagrams for an unknown end, beyond a full queue, or of a size a tunnel cannot carry
    /// are dropped. Returns how many were queued.
    pub fn send(&self, dest: SocketAddrV4, contents: &[u8], segment_size: Option<usize>) -> usize {
        let state = lock(&self.state);
        let Some(end) = state.ends.get(&dest) else {
            return 0;
        };
        let size = segment_size.unwrap_or(contents.len()).max(1);
        contents
            .chunks(size)
            .filter(|d| wire::length_prefix(d.len()).is_some())
            .filter(|d| end.queue.push(Bytes::copy_from_slice(d)))
            .count()
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
            Reserve::New(a, rx) => (a, rx),
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
                peer_node: 42
            }
        );
    }

    #[test]
    fn gso_transmits_are_split_and_unknown_ends_get_nothing() {
        let t = Table::new(false);
        let (a, mut rx) = new_end(&t, 1, 2, Origin::Opened);
        let contents: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        assert_eq!(t.send(a, &contents, Some(1000)), 3);
        let sizes: Vec<usize> = (0..3).map(|_| rx.try_recv().unwrap().len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(t.send(a, &contents[..10], None), 1);
        assert_eq!(rx.try_recv().unwrap(), &contents[..10]);
        let unknown: SocketAddrV4 = "240.9.9.9:9".parse().unwrap();
        assert_eq!(t.send(unknown, &contents, None), 0);
        assert!(rx.try_recv().is_err());
    }
}
