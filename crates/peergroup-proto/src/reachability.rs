//! Where a member can be reached from outside: what other members saw.
//!
//! Every `Hello` carries the address its sender sees the connection's other end at
//! ([`crate::wire::Hello::observed`]). On a connection this member dialled, that is its
//! *mapped* address: its own source address as the far side sees it, after any NAT. On one it
//! accepted, that is the address the dialler reached it at: a *confirmed* address, proven by
//! a member that got through. From mapped addresses seen by observers at different IPs the
//! member learns its NAT's mapping class; presence and `Hello` advertise confirmed addresses
//! first, then mapped ones, then interface addresses (which are private behind a NAT).
//!
//! Members are authenticated (only a member's `Hello` is read), but one member could still
//! lie; a mapped address seen by one observer only ranks after those two agree on, and every
//! table here is bounded ([`MAX_OBSERVERS`], [`MAX_CONFIRMED`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::io::Millis;
use crate::wire::MAX_ADDRS;

/// Most observer IPs whose latest view is kept (the oldest view goes first).
pub const MAX_OBSERVERS: usize = 16;
/// Most confirmed addresses kept (the least recently confirmed goes first).
pub const MAX_CONFIRMED: usize = 8;
/// How long a view or a confirmation counts: a NAT's mapping does not outlive its idle
/// timeout by much, and a member that moved must stop advertising where it was.
pub const OBSERVATION_TTL_MS: Millis = 10 * 60 * 1000;

/// What a member knows of its NAT's mapping (RFC 4787).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NatClass {
    /// No observer has reported yet.
    Unknown,
    /// Observers see an interface address: no NAT in front of this member.
    None,
    /// Observers at different IPs see one mapped address: others can reach it there once
    /// the NAT lets them in (full cone, restricted cone).
    EndpointIndependent,
    /// Observers at different IPs see different mapped ports (a symmetric NAT): a mapped
    /// address is good only towards the observer that saw it.
    EndpointDependent,
}

impl std::fmt::Display for NatClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NatClass::Unknown => "unknown",
            NatClass::None => "none",
            NatClass::EndpointIndependent => "endpoint-independent",
            NatClass::EndpointDependent => "endpoint-dependent",
        })
    }
}

/// The views of other members on this member's addresses.
#[derive(Clone, Debug, Default)]
pub struct Reachability {
    /// Observer IP → (the mapped address it saw, when).
    mapped: BTreeMap<IpAddr, (SocketAddr, Millis)>,
    /// Confirmed address → when a member last got through to it.
    confirmed: BTreeMap<SocketAddr, Millis>,
}

impl Reachability {
    /// No views yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// On a connection this member dialled to `observer`, the far side saw it at `mapped`.
    pub fn observe(&mut self, observer: SocketAddr, mapped: SocketAddr, now: Millis) {
        self.expire(now);
        let ip = observer.ip();
        if !self.mapped.contains_key(&ip) && self.mapped.len() >= MAX_OBSERVERS {
            if let Some(oldest) = self
                .mapped
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k)
            {
                self.mapped.remove(&oldest);
            }
        }
        self.mapped.insert(ip, (mapped, now));
    }

    /// A member that dialled this one got through at `addr`.
    pub fn confirm(&mut self, addr: SocketAddr, now: Millis) {
        self.expire(now);
        if !self.confirmed.contains_key(&addr) && self.confirmed.len() >= MAX_CONFIRMED {
            if let Some(oldest) = self
                .confirmed
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(a, _)| *a)
            {
                self.confirmed.remove(&oldest);
            }
        }
        self.confirmed.insert(addr, now);
    }

    fn expire(&mut self, now: Millis) {
        let live = |at: Millis| now.saturating_sub(at) <= OBSERVATION_TTL_MS;
        self.mapped.retain(|_, (_, at)| live(*at));
        self.confirmed.retain(|_, at| live(*at));
    }

    /// The mapping class, given the member's interface addresses.
    pub fn nat(&self, interface: &[SocketAddr]) -> NatClass {
        if self.mapped.is_empty() {
            // Dialled only: a member that got through at an interface address saw no NAT.
            return if self.confirmed.keys().any(|a| interface.contains(a)) {
                NatClass::None
            } else {
                NatClass::Unknown
            };
        }
        if self.mapped.values().any(|(a, _)| interface.contains(a)) {
            return NatClass::None;
        }
        let mut seen: Vec<SocketAddr> = self.mapped.values().map(|(a, _)| *a).collect();
        seen.sort();
        seen.dedup();
        match (self.mapped.len(), seen.len()) {
            // One observer cannot tell the classes apart.
            (1, _) => NatClass::Unknown,
            (_, 1) => NatClass::EndpointIndependent,
            _ => NatClass::EndpointDependent,
        }
    }

    /// Mapped addresses, the one most observers agree on first, with how many saw each.
    pub fn mapped(&self) -> Vec<(SocketAddr, usize)> {
        let mut count: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for (a, _) in self.mapped.values() {
            *count.entry(*a).or_default() += 1;
        }
        let mut out: Vec<(SocketAddr, usize)> = count.into_iter().collect();
        out.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        out
    }

    /// Addresses members got through to, the most recent first.
    pub fn confirmed(&self) -> Vec<SocketAddr> {
        let mut out: Vec<(SocketAddr, Millis)> =
            self.confirmed.iter().map(|(a, t)| (*a, *t)).collect();
        out.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        out.into_iter().map(|(a, _)| a).collect()
    }

    /// What to advertise, at most [`MAX_ADDRS`]: confirmed addresses, mapped ones two
    /// observers agree on, the other mapped ones (unless the NAT maps per destination: those
    /// reach nobody else), then the interface addresses. No address twice.
    pub fn advertised(&self, interface: &[SocketAddr]) -> Vec<SocketAddr> {
        let nat = self.nat(interface);
        let mapped = self.mapped();
        let agreed = mapped.iter().filter(|(_, n)| *n >= 2).map(|(a, _)| *a);
        let single = mapped
            .iter()
            .filter(|(_, n)| *n < 2 && nat != NatClass::EndpointDependent)
            .map(|(a, _)| *a);
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in self
            .confirmed()
            .into_iter()
            .chain(agreed)
            .chain(single)
            .chain(interface.iter().copied())
        {
            if !out.contains(&a) && out.len() < MAX_ADDRS {
                out.push(a);
            }
        }
        out
    }

    /// What to offer a member for a coordinated punch, at most [`MAX_ADDRS`]: like
    /// [`Reachability::advertised`], but with every mapped address even when the NAT maps
    /// per destination. The port is then wrong for the member, but the IP is the NAT's: the
    /// member's packets to it open the member's own address-restricted NAT to us.
    pub fn punch_candidates(&self, interface: &[SocketAddr]) -> Vec<SocketAddr> {
        let mapped = self.mapped();
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in self
            .confirmed()
            .into_iter()
            .chain(mapped.into_iter().map(|(a, _)| a))
            .chain(interface.iter().copied())
        {
            if !out.contains(&a) && out.len() < MAX_ADDRS {
                out.push(a);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes_from_observers_at_two_ips() {
        let lan = [a("10.1.0.2:7000")];
        let mut r = Reachability::new();
        assert_eq!(r.nat(&lan), NatClass::Unknown);
        r.observe(a("198.18.0.10:7000"), a("198.18.1.1:7000"), 0);
        assert_eq!(r.nat(&lan), NatClass::Unknown, "one observer tells nothing");
        // Another port of the same IP is the same observer.
        r.observe(a("198.18.0.10:7001"), a("198.18.1.1:7000"), 1);
        assert_eq!(r.nat(&lan), NatClass::Unknown);
        r.observe(a("198.18.0.11:7000"), a("198.18.1.1:7000"), 2);
        assert_eq!(r.nat(&lan), NatClass::EndpointIndependent);
        r.observe(a("198.18.0.12:7000"), a("198.18.1.1:40001"), 3);
        assert_eq!(r.nat(&lan), NatClass::EndpointDependent);

        // Only dialled, reached at an interface address: no NAT in between.
        let mut dialled = Reachability::new();
        dialled.confirm(a("198.18.0.20:7000"), 0);
        assert_eq!(dialled.nat(&[a("198.18.0.20:7000")]), NatClass::None);
        assert_eq!(dialled.nat(&lan), NatClass::Unknown);

        let mut public = Reachability::new();
        public.observe(a("198.18.0.10:7000"), a("198.18.0.20:7000"), 0);
        assert_eq!(public.nat(&[a("198.18.0.20:7000")]), NatClass::None);
    }

    #[test]
    fn a_nat_mapping_per_destination_still_offers_its_ip_for_punching() {
        let lan = [a("10.1.0.2:7000")];
        let mut r = Reachability::new();
        r.observe(a("198.18.0.10:1"), a("198.18.1.4:40001"), 0);
        r.observe(a("198.18.0.11:1"), a("198.18.1.4:40002"), 0);
        assert_eq!(r.nat(&lan), NatClass::EndpointDependent);
        // Nobody else reaches those ports: not advertised...
        assert_eq!(r.advertised(&lan), vec![lan[0]]);
        // ...but a punch partner's packets to the NAT's IP open its own filter to us.
        assert_eq!(
            r.punch_candidates(&lan),
            vec![a("198.18.1.4:40001"), a("198.18.1.4:40002"), lan[0]]
        );
    }

    #[test]
    fn confirmed_then_agreed_then_single_then_interface() {
        let lan = [a("10.1.0.2:7000")];
        let mut r = Reachability::new();
        r.observe(a("198.18.0.10:1"), a("198.18.1.1:7000"), 0);
        r.observe(a("198.18.0.11:1"), a("198.18.1.1:7000"), 0);
        assert_eq!(r.advertised(&lan), vec![a("198.18.1.1:7000"), lan[0]]);
        r.confirm(a("198.18.1.1:7000"), 5);
        r.confirm(a("198.18.1.9:7000"), 6);
        assert_eq!(
            r.advertised(&lan),
            vec![a("198.18.1.9:7000"), a("198.18.1.1:7000"), lan[0]]
        );
        // Behind a symmetric NAT, a mapping one observer saw reaches nobody else.
        let mut sym = Reachability::new();
        sym.observe(a("198.18.0.10:1"), a("198.18.1.4:1000"), 0);
        sym.observe(a("198.18.0.11:1"), a("198.18.1.4:2000"), 0);
        assert_eq!(sym.advertised(&lan), lan.to_vec());
    }

    #[test]
    fn views_are_bounded_and_expire() {
        let mut r = Reachability::new();
        for i in 0..(MAX_OBSERVERS as u8 + 5) {
            r.observe(
                SocketAddr::from(([198, 18, 0, i], 1)),
                a("198.18.1.1:7000"),
                Millis::from(i),
            );
        }
        assert_eq!(r.mapped.len(), MAX_OBSERVERS);
        for i in 0..(MAX_CONFIRMED as u16 + 5) {
            r.confirm(
                SocketAddr::from(([198, 18, 1, 1], 7000 + i)),
                Millis::from(i),
            );
        }
        assert_eq!(r.confirmed().len(), MAX_CONFIRMED);
        // Ten minutes later nothing counts.
        r.confirm(a("198.18.1.1:9"), OBSERVATION_TTL_MS + 100);
        assert_eq!(r.confirmed(), vec![a("198.18.1.1:9")]);
        assert!(r.mapped().is_empty());
        // 8 confirmed, 8 mapped (each agreed by two observers) and 4 interface addresses:
        // the list stops at MAX_ADDRS, confirmed and agreed ones kept.
        let mut full = Reachability::new();
        for i in 0..8u8 {
            full.confirm(SocketAddr::from(([198, 18, 2, i], 1)), 0);
            for o in [2 * i, 2 * i + 1] {
                full.observe(
                    SocketAddr::from(([198, 18, 0, o], 1)),
                    SocketAddr::from(([198, 18, 3, i], 1)),
                    0,
                );
            }
        }
        let interface: Vec<SocketAddr> = (0..4u8)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 1)))
            .collect();
        let list = full.advertised(&interface);
        assert_eq!(list.len(), MAX_ADDRS);
        assert!(list.iter().all(|a| !interface.contains(a)));
    }
}
