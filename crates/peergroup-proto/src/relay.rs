//! Member relays: which tunnels a relay member carries, and which a member lets reach it.
//!
//! A member that cannot be dialled (behind a NAT, a firewall) stays connected to relay
//! members (those whose `Hello` says [`crate::wire::Hello::relay`]) and names them in its
//! peer entry ([`crate::wire::PeerEntry::relays`]). Another member then asks one of those
//! relays, over its own member connection to it, for a *tunnel* to that node; the relay
//! offers the tunnel to the target over the target's connection, and once both accept, the
//! two members run an ordinary end-to-end member connection (mutual TLS, the membership
//! chain checked as always) through it. The relay forwards ciphertext only.
//!
//! This module holds the decisions, with no I/O: the relay's [`Relays::request`] (is
//! relaying on, are both ends its direct neighbours, is there room) and the target's
//! [`Relays::offer`]. Every count is bounded by a named constant; the transport moves the
//! bytes and bounds its own queues.

use std::collections::BTreeMap;

use crate::io::ConnId;

/// Most tunnels one relay member carries at once, for all members together.
pub const MAX_TUNNELS_PER_RELAY: usize = 64;
/// Most tunnels a relay carries at once that start or end at one member's node: one member
/// cannot take a relay's whole capacity.
pub const MAX_TUNNELS_PER_MEMBER: usize = 8;
/// Most tunnels a member accepts at once from one other node (through any relays).
pub const MAX_OFFERS_PER_NODE: usize = 4;

/// A tunnel, as numbered by the driver (requests and offers share the numbering).
pub type TunnelId = u64;

/// Why a tunnel was refused (the transport sends it as the tunnel's answer code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Relaying is off on this member, or the group's properties turn it off, or the asker
    /// is not a direct member neighbour.
    NotAllowed,
    /// The target is not a direct neighbour of this relay.
    UnknownTarget,
    /// A bound was reached ([`MAX_TUNNELS_PER_RELAY`], [`MAX_TUNNELS_PER_MEMBER`],
    /// [`MAX_OFFERS_PER_NODE`]).
    Busy,
}

/// One tunnel a relay carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Carried {
    from_conn: ConnId,
    to_conn: ConnId,
    from_node: u64,
    to_node: u64,
}

/// The tunnels this member carries as a relay and the ones it accepted as a target.
#[derive(Debug, Default)]
pub struct Relays {
    carried: BTreeMap<TunnelId, Carried>,
    /// Accepted tunnel → (the relay's connection, the node at the other end).
    accepted: BTreeMap<TunnelId, (ConnId, u64)>,
}

/// A member neighbour as the relay decisions need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    /// Its connection.
    pub conn: ConnId,
    /// Its node id.
    pub node: u64,
}

impl Relays {
    /// No tunnels.
    pub fn new() -> Self {
        Self::default()
    }

    /// A member (`from`, a direct neighbour if `Some`) asks this relay for tunnel `tunnel`
    /// to node `target` (`to`: its direct neighbour connection, if any). `enabled`: this
    /// member relays and the group allows it. On `Ok` the tunnel counts until
    /// [`Relays::ended`] or a leg goes down.
    pub fn request(
        &mut self,
        tunnel: TunnelId,
        enabled: bool,
        from: Option<Leg>,
        to: Option<Leg>,
    ) -> Result<ConnId, Refusal> {
        let Some(from) = from.filter(|_| enabled) else {
            return Err(Refusal::NotAllowed);
        };
        let Some(to) = to.filter(|t| t.node != from.node) else {
            return Err(Refusal::UnknownTarget);
        };
        let touching = |node: u64| {
            self.carried
                .values()
                .filter(|c| c.from_node == node || c.to_node == node)
                .count()
        };
        if self.carried.len() >= MAX_TUNNELS_PER_RELAY
            || touching(from.node) >= MAX_TUNNELS_PER_MEMBER
            || touching(to.node) >= MAX_TUNNELS_PER_MEMBER
            || self.carried.contains_key(&tunnel)
        {
            return Err(Refusal::Busy);
        }
        self.carried.insert(
            tunnel,
            Carried {
                from_conn: from.conn,
                to_conn: to.conn,
                from_node: from.node,
                to_node: to.node,
            },
        );
        Ok(to.conn)
    }

    /// A relay (`via`, a direct neighbour if `Some`) offers tunnel `tunnel` from node
    /// `from_node`. Accepted while that node has fewer than [`MAX_OFFERS_PER_NODE`] here.
    pub fn offer(
        &mut self,
        tunnel: TunnelId,
        via: Option<Leg>,
        from_node: u64,
    ) -> Result<(), Refusal> {
        let Some(via) = via else {
            return Err(Refusal::NotAllowed);
        };
        let from_there = self
            .accepted
            .values()
            .filter(|(_, n)| *n == from_node)
            .count();
        if from_there >= MAX_OFFERS_PER_NODE || self.accepted.contains_key(&tunnel) {
            return Err(Refusal::Busy);
        }
        self.accepted.insert(tunnel, (via.conn, from_node));
        Ok(())
    }

    /// The tunnel ended (either end, or the transport gave up on it). Idempotent.
    pub fn ended(&mut self, tunnel: TunnelId) {
        self.carried.remove(&tunnel);
        self.accepted.remove(&tunnel);
    }

    /// A connection went down: the tunnels it carried end with it.
    pub fn conn_down(&mut self, conn: ConnId) {
        self.carried
            .retain(|_, c| c.from_conn != conn && c.to_conn != conn);
        self.accepted.retain(|_, (via, _)| *via != conn);
    }

    /// Tunnels this member carries as a relay now.
    pub fn carried(&self) -> usize {
        self.carried.len()
    }

    /// Forgets every tunnel carried as a relay and returns their ids, for the transport to
    /// end (this member stopped relaying, or the group turned relaying off).
    pub fn stop_carrying(&mut self) -> Vec<TunnelId> {
        std::mem::take(&mut self.carried).into_keys().collect()
    }

    /// Tunnels this member accepted as a target now.
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// Forgets every tunnel (the group went offline).
    pub fn clear(&mut self) {
        self.carried.clear();
        self.accepted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(conn: ConnId, node: u64) -> Option<Leg> {
        Some(Leg { conn, node })
    }

    #[test]
    fn a_relay_carries_only_between_its_direct_neighbours_when_enabled() {
        let mut r = Relays::new();
        assert_eq!(
            r.request(1, false, leg(1, 10), leg(2, 20)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            r.request(1, true, None, leg(2, 20)),
            Err(Refusal::NotAllowed),
            "a member that is not a direct neighbour gets nothing"
        );
        assert_eq!(
            r.request(1, true, leg(1, 10), None),
            Err(Refusal::UnknownTarget)
        );
        assert_eq!(
            r.request(1, true, leg(1, 10), leg(1, 10)),
            Err(Refusal::UnknownTarget),
            "no tunnel to oneself"
        );
        assert_eq!(r.request(1, true, leg(1, 10), leg(2, 20)), Ok(2));
        assert_eq!(r.carried(), 1);
        assert_eq!(
            r.request(1, true, leg(1, 10), leg(2, 20)),
            Err(Refusal::Busy),
            "a tunnel id is used once"
        );
        r.ended(1);
        r.ended(1);
        assert_eq!(r.carried(), 0);
    }

    #[test]
    fn the_bounds_per_member_and_per_relay_hold() {
        let mut r = Relays::new();
        let mut id = 0;
        for _ in 0..MAX_TUNNELS_PER_MEMBER {
            id += 1;
            assert!(r.request(id, true, leg(1, 10), leg(2, 20)).is_ok());
        }
        id += 1;
        assert_eq!(
            r.request(id, true, leg(1, 10), leg(3, 30)),
            Err(Refusal::Busy),
            "member 10 has its share"
        );
        assert_eq!(
            r.request(id, true, leg(3, 30), leg(2, 20)),
            Err(Refusal::Busy),
            "so has member 20, as a target"
        );
        // Many members, two tunnels each, until the relay is full.
        let mut node = 100;
        while r.carried() < MAX_TUNNELS_PER_RELAY {
            id += 1;
            node += 2;
            assert!(r
                .request(id, true, leg(node, node), leg(node + 1, node + 1))
                .is_ok());
        }
        id += 1;
        assert_eq!(
            r.request(id, true, leg(5000, 5000), leg(5001, 5001)),
            Err(Refusal::Busy)
        );
        // A leg going down frees its tunnels.
        r.conn_down(1);
        assert_eq!(r.carried(), MAX_TUNNELS_PER_RELAY - MAX_TUNNELS_PER_MEMBER);
        assert!(r
            .request(id, true, leg(5000, 5000), leg(5001, 5001))
            .is_ok());
    }

    #[test]
    fn a_target_accepts_a_bounded_number_from_one_node() {
        let mut r = Relays::new();
        assert_eq!(r.offer(1, None, 10), Err(Refusal::NotAllowed));
        for t in 0..MAX_OFFERS_PER_NODE as u64 {
            r.offer(t, leg(1, 99), 10).unwrap();
        }
        assert_eq!(
            r.offer(100, leg(2, 98), 10),
            Err(Refusal::Busy),
            "not through another relay either"
        );
        r.offer(101, leg(2, 98), 11).unwrap();
        r.conn_down(1);
        assert_eq!(r.accepted(), 1);
        r.offer(100, leg(2, 98), 10).unwrap();
        r.clear();
        assert_eq!((r.accepted(), r.carried()), (0, 0));
    }
}
