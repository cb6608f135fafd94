//! Whether members reach this member unasked: a dial-back by a third member.
//!
//! Observers tell a member its mapped address and its NAT's mapping class
//! ([`crate::reachability`]), but not its NAT's *filtering*: a full cone lets anyone in at
//! the mapped address, an address- or port-restricted NAT only those the member sent to
//! first. Only an unsolicited dial tells them apart. So a member whose mapping is
//! endpoint-independent asks a neighbour it dialled ([`DialBack::Ask`]); that neighbour asks
//! a third member, one the asker is not connected to, to dial the asker where the neighbour
//! sees the asker's packets come from ([`DialBack::Dial`]); the asker names the IPs it sent
//! to lately (dials, punches, neighbours: its NAT lets those in anyway), and the third member
//! is at none of them. The dial's `Hello` carries the
//! asker's nonce ([`crate::wire::Hello::dial_back`]). If it arrives, the member is
//! *reachable from outside*: its entry says `public`, so others dial its address before its
//! relays, and it needs one relay, not two. If the neighbour found a third member but no
//! such dial arrives within [`DIAL_BACK_WAIT_MS`], it is not.
//!
//! The address dialled is never the asker's to choose (it is where its packets come from),
//! so a member cannot aim other members' dials at a stranger; every step is bounded per
//! connection or in all ([`ASK_INTERVAL_MS`], [`MAX_DIAL_BACKS`], [`MAX_DIAL_BACK_EXCLUDE`]).
//! An asker that sent to more IPs than it can name, or whose NAT remembers a destination
//! longer than [`CONTACT_MEMORY_MS`], may be let in by that memory: the error is towards
//! "reachable", and costs a dial that fails before the member's relays are tried.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::io::{ConnId, Millis};
use crate::reachability::OBSERVATION_TTL_MS;
use crate::wire::{DialBack, MAX_DIAL_BACK_EXCLUDE};

/// How long the asker waits for the third member's dial once its neighbour said it asked one.
pub const DIAL_BACK_WAIT_MS: Millis = 10_000;
/// When the test found nothing (no neighbour to ask, no third member, no answer): the wait
/// before asking again.
pub const DIAL_BACK_RETRY_MS: Millis = 60_000;
/// A result is tested again after this long (a NAT's behaviour may change; results older
/// than [`OBSERVATION_TTL_MS`] no longer count).
pub const DIAL_BACK_REFRESH_MS: Millis = OBSERVATION_TTL_MS / 2;
/// A neighbour answers one [`DialBack::Ask`] per connection this often; sooner ones are
/// answered "not sent".
pub const ASK_INTERVAL_MS: Millis = 10_000;
/// Dials a member makes for other members' tests at once; further requests are ignored.
pub const MAX_DIAL_BACKS: usize = 4;
/// A dial for a test that neither came up nor failed by then is forgotten.
pub const DIAL_BACK_DIAL_TTL_MS: Millis = 30_000;
/// How long an IP this member sent to counts as one its NAT still admits (Linux conntrack
/// keeps an answered UDP flow 120 s, an unanswered one 30 s; home routers are alike).
pub const CONTACT_MEMORY_MS: Millis = 180_000;

/// What a dial-back told this member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outside {
    /// Not tested (or the result is too old, or the member moved since).
    Unknown,
    /// A member it never sent to reached it unasked at this address.
    Reachable(SocketAddr),
    /// A member asked to dial it did not get through: its NAT admits only those it sent to.
    Unreachable,
}

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outside::Unknown => f.write_str("unknown"),
            Outside::Reachable(a) => write!(f, "reachable at {a}"),
            Outside::Unreachable => f.write_str("unreachable"),
        }
    }
}

/// A test this member asked for.
#[derive(Clone, Copy, Debug)]
struct Asking {
    nonce: u64,
    /// The neighbour asked.
    via: ConnId,
    at: Millis,
    /// The neighbour's answer: `Some(true)` once it asked a third member.
    sent: Option<bool>,
}

/// The three roles of the dial-back, with no I/O: the asker's test and result, the
/// forwarder's rate limit, the dialler's dials for others.
#[derive(Debug, Default)]
pub struct DialBacks {
    asking: Option<Asking>,
    result: Option<(Outside, Millis)>,
    next_ask: Millis,
    /// As a forwarder: when each connection last asked.
    asked_by: BTreeMap<ConnId, Millis>,
    /// As a dialler: address dialled → (the asker's nonce, when).
    dials: BTreeMap<SocketAddr, (u64, Millis)>,
    /// IPs this member sent to lately (dials, connections), with when: not to be asked.
    contacted: BTreeMap<IpAddr, Millis>,
    /// The neighbour asked last, avoided next time when another can be asked.
    last_via: Option<ConnId>,
}

impl DialBacks {
    /// No test yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest result, [`Outside::Unknown`] once it is older than
    /// [`OBSERVATION_TTL_MS`].
    pub fn outside(&self, now: Millis) -> Outside {
        match self.result {
            Some((o, at)) if now.saturating_sub(at) <= OBSERVATION_TTL_MS => o,
            _ => Outside::Unknown,
        }
    }

    /// Forgets results and tests: the member moved, what was true of the old network says
    /// nothing of the new one.
    pub fn reset(&mut self, now: Millis) {
        self.asking = None;
        self.result = None;
        self.next_ask = now;
    }

    /// As the asker, at a maintenance tick: concludes a test whose wait is over, and says
    /// whether a new one is due. `eligible`: the member listens behind an endpoint-independent
    /// mapping (the only case a dial-back can tell something).
    pub fn tick(&mut self, now: Millis, eligible: bool) -> bool {
        if let Some(a) = self.asking {
            if now < a.at + DIAL_BACK_WAIT_MS {
                return false;
            }
            self.asking = None;
            if a.sent == Some(true) {
                self.result = Some((Outside::Unreachable, now));
                self.next_ask = now + DIAL_BACK_REFRESH_MS;
            } else {
                self.next_ask = a.at + DIAL_BACK_RETRY_MS;
            }
        }
        eligible && now >= self.next_ask
    }

    /// As the asker: a test goes to neighbour `via` now. Returns the message to send.
    pub fn ask(&mut self, via: ConnId, nonce: u64, now: Millis) -> DialBack {
        // Zero means "no dial-back" in a `Hello`.
        let nonce = nonce.max(1);
        self.asking = Some(Asking {
            nonce,
            via,
            at: now,
            sent: None,
        });
        self.next_ask = now + DIAL_BACK_RETRY_MS;
        self.last_via = Some(via);
        DialBack::Ask {
            nonce,
            exclude: self.exclude(now),
        }
    }

    /// The neighbour asked last.
    pub fn last_via(&self) -> Option<ConnId> {
        self.last_via
    }

    /// This member sent to `ip` (a dial, or a connection that was up): for
    /// [`CONTACT_MEMORY_MS`] its NAT lets packets from there in, so no test may come from it.
    pub fn contacted(&mut self, ip: IpAddr, now: Millis) {
        self.contacted
            .retain(|_, at| now.saturating_sub(*at) <= CONTACT_MEMORY_MS);
        if !self.contacted.contains_key(&ip) && self.contacted.len() >= MAX_DIAL_BACK_EXCLUDE {
            if let Some(oldest) = self
                .contacted
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(ip, _)| *ip)
            {
                self.contacted.remove(&oldest);
            }
        }
        self.contacted.insert(ip, now);
    }

    /// The IPs to exclude, the most recent first.
    fn exclude(&self, now: Millis) -> Vec<IpAddr> {
        let mut recent: Vec<(IpAddr, Millis)> = self
            .contacted
            .iter()
            .filter(|(_, at)| now.saturating_sub(**at) <= CONTACT_MEMORY_MS)
            .map(|(ip, at)| (*ip, *at))
            .collect();
        recent.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        recent
            .into_iter()
            .take(MAX_DIAL_BACK_EXCLUDE)
            .map(|(ip, _)| ip)
            .collect()
    }

    /// As the asker: no neighbour could be asked now (none dialled yet): soon again, as
    /// nothing was sent.
    pub fn nobody_to_ask(&mut self, now: Millis) {
        self.next_ask = now + ASK_INTERVAL_MS;
    }

    /// As the asker: neighbour `conn` answered whether it asked a third member. If it
    /// could not, another neighbour is asked once the forwarders' interval allows.
    pub fn answered(&mut self, conn: ConnId, nonce: u64, sent: bool, now: Millis) {
        if let Some(a) = self.asking.as_mut() {
            if a.via == conn && a.nonce == nonce {
                a.sent = Some(sent);
                if !sent {
                    self.asking = None;
                    self.next_ask = now + ASK_INTERVAL_MS;
                }
            }
        }
    }

    /// As the asker: an inbound connection from `from` had a `Hello` that carried `nonce`
    /// and saw this member at `seen`. True when that is the dial asked for (the result
    /// changed to reachable). From an IP this member sent to lately (a punch that crossed
    /// the test) it proves nothing: the test is asked again soon.
    pub fn dialled_back(
        &mut self,
        nonce: u64,
        seen: SocketAddr,
        from: SocketAddr,
        now: Millis,
    ) -> bool {
        match self.asking {
            Some(a) if nonce != 0 && a.nonce == nonce => {
                self.asking = None;
                let lately = self
                    .contacted
                    .get(&from.ip())
                    .is_some_and(|at| now.saturating_sub(*at) <= CONTACT_MEMORY_MS);
                if lately {
                    self.next_ask = now + ASK_INTERVAL_MS;
                    return false;
                }
                self.result = Some((Outside::Reachable(seen), now));
                self.next_ask = now + DIAL_BACK_REFRESH_MS;
                true
            }
            _ => false,
        }
    }

    /// As a forwarder: may connection `conn` ask now? (One ask per [`ASK_INTERVAL_MS`].)
    pub fn may_forward(&mut self, conn: ConnId, now: Millis) -> bool {
        if self
            .asked_by
            .get(&conn)
            .is_some_and(|at| now < at + ASK_INTERVAL_MS)
        {
            return false;
        }
        self.asked_by.insert(conn, now);
        true
    }

    /// As a dialler: asked to dial `addr` for a test with `nonce`. True when the dial should
    /// go (there is room: [`MAX_DIAL_BACKS`]).
    pub fn dial(&mut self, addr: SocketAddr, nonce: u64, now: Millis) -> bool {
        self.dials
            .retain(|_, (_, at)| now < *at + DIAL_BACK_DIAL_TTL_MS);
        if nonce == 0 || self.dials.contains_key(&addr) || self.dials.len() >= MAX_DIAL_BACKS {
            return false;
        }
        self.dials.insert(addr, (nonce, now));
        true
    }

    /// As a dialler: the connection to `addr` came up (its `Hello` carries the nonce
    /// returned), or the dial failed (the nonce is dropped).
    pub fn dial_done(&mut self, addr: SocketAddr) -> u64 {
        self.dials.remove(&addr).map_or(0, |(n, _)| n)
    }

    /// A connection ended: its forwarder entry goes (the table stays as small as the
    /// neighbour set), and a test asked through it is left to its wait.
    pub fn conn_down(&mut self, conn: ConnId) {
        self.asked_by.remove(&conn);
    }

    /// Dials for others in flight (for tests).
    pub fn dials_in_flight(&self) -> usize {
        self.dials.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_answered_ask_without_a_dial_concludes_unreachable_and_a_dial_reachable() {
        let mut d = DialBacks::new();
        assert!(d.tick(0, true));
        assert!(
            !DialBacks::new().tick(0, false),
            "only behind an endpoint-independent NAT"
        );
        d.contacted("198.18.0.10".parse().unwrap(), 0);
        let DialBack::Ask { nonce, exclude } = d.ask(7, 42, 0) else {
            panic!()
        };
        assert_eq!(exclude, vec!["198.18.0.10".parse::<IpAddr>().unwrap()]);
        assert!(!d.tick(1, true), "one test at a time");
        d.answered(8, nonce, true, 1);
        d.answered(7, nonce + 1, true, 1);
        // Neither the right connection nor the right nonce: no answer yet, no conclusion.
        assert!(!d.tick(DIAL_BACK_WAIT_MS, true));
        assert_eq!(d.outside(DIAL_BACK_WAIT_MS), Outside::Unknown);
        assert!(d.tick(DIAL_BACK_RETRY_MS, true), "asked again later");

        let DialBack::Ask { nonce, exclude } = d.ask(7, 43, 200_000) else {
            panic!()
        };
        assert!(
            exclude.is_empty(),
            "contacts are forgotten after CONTACT_MEMORY_MS"
        );
        d.answered(7, nonce, true, 200_000);
        assert!(!d.tick(200_000 + DIAL_BACK_WAIT_MS, true));
        assert_eq!(d.outside(200_000 + DIAL_BACK_WAIT_MS), Outside::Unreachable);

        let at = 200_000 + DIAL_BACK_WAIT_MS + DIAL_BACK_REFRESH_MS;
        assert!(d.tick(at, true), "tested again after the refresh");
        let DialBack::Ask { nonce, .. } = d.ask(9, 44, at) else {
            panic!()
        };
        let third = a("198.18.0.30:7000");
        assert!(!d.dialled_back(nonce + 1, a("198.18.1.1:7000"), third, at + 1));
        assert!(!d.dialled_back(0, a("198.18.1.1:7000"), third, at + 1));
        assert!(d.dialled_back(nonce, a("198.18.1.1:7000"), third, at + 1));
        assert_eq!(d.outside(at + 1), Outside::Reachable(a("198.18.1.1:7000")));
        assert_eq!(
            d.outside(at + 2 + OBSERVATION_TTL_MS),
            Outside::Unknown,
            "results age out"
        );
        d.reset(at + 2);
        assert_eq!(d.outside(at + 2), Outside::Unknown);
        assert!(d.tick(at + 2, true), "a move tests again at once");

        // "Not sent": another neighbour is asked after the forwarders' interval.
        let DialBack::Ask { nonce, .. } = d.ask(9, 45, at + 2) else {
            panic!()
        };
        d.answered(9, nonce, false, at + 3);
        assert_eq!(d.last_via(), Some(9));
        assert!(!d.tick(at + 3, true));
        assert!(d.tick(at + 3 + ASK_INTERVAL_MS, true));

        // A dial-back from an IP this member punched meanwhile proves nothing: asked again.
        let at = at + 3 + ASK_INTERVAL_MS;
        let DialBack::Ask { nonce, .. } = d.ask(9, 46, at) else {
            panic!()
        };
        d.contacted(third.ip(), at + 1);
        assert!(!d.dialled_back(nonce, a("198.18.1.1:7000"), third, at + 2));
        assert_eq!(d.outside(at + 2), Outside::Unknown);
        assert!(d.tick(at + 2 + ASK_INTERVAL_MS, true));
    }

    #[test]
    fn contacts_are_bounded_the_latest_kept() {
        let mut d = DialBacks::new();
        for i in 0..(MAX_DIAL_BACK_EXCLUDE as u16 + 10) {
            d.contacted(
                IpAddr::from([198, 18, (i >> 8) as u8, i as u8]),
                Millis::from(i),
            );
        }
        let ex = d.exclude(100);
        assert_eq!(ex.len(), MAX_DIAL_BACK_EXCLUDE);
        let last = MAX_DIAL_BACK_EXCLUDE as u16 + 9;
        assert_eq!(
            ex[0],
            IpAddr::from([198, 18, (last >> 8) as u8, last as u8])
        );
        assert!(!ex.contains(&IpAddr::from([198, 18, 0, 0])));
    }

    #[test]
    fn forwarders_and_diallers_are_bounded() {
        let mut d = DialBacks::new();
        assert!(d.may_forward(1, 0));
        assert!(!d.may_forward(1, ASK_INTERVAL_MS - 1));
        assert!(d.may_forward(2, 1));
        assert!(d.may_forward(1, ASK_INTERVAL_MS));
        d.conn_down(1);
        assert!(d.may_forward(1, ASK_INTERVAL_MS + 1));

        for i in 0..MAX_DIAL_BACKS as u16 {
            assert!(d.dial(SocketAddr::from(([198, 18, 1, 1], 1000 + i)), 5, 0));
        }
        let more = a("198.18.1.9:1");
        assert!(!d.dial(more, 5, 0), "at most MAX_DIAL_BACKS at once");
        assert!(!d.dial(a("198.18.1.1:1000"), 6, 0), "one per address");
        assert_eq!(d.dial_done(a("198.18.1.1:1000")), 5);
        assert_eq!(d.dial_done(a("198.18.1.1:1000")), 0);
        assert!(d.dial(more, 5, 0));
        assert!(!d.dial(a("198.18.1.9:2"), 0, 0), "a zero nonce is no test");
        // Dials that never ended are forgotten.
        assert!(d.dial(a("198.18.1.9:2"), 5, DIAL_BACK_DIAL_TTL_MS));
        assert_eq!(d.dials_in_flight(), 1);
    }
}
