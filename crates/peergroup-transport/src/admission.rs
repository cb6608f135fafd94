//! Which incoming handshakes a node takes on: the defence against floods of connection
//! attempts.
//!
//! A handshake holds one of [`Limits::max_pending_handshakes`](crate::Limits) slots until it
//! completes or times out. Initials from forged source addresses never complete, so without
//! more a flood of them would hold every slot and lock genuine members out. Once
//! [`RETRY_ABOVE`] handshakes are in progress, a source must first prove it receives at its
//! address: QUIC address validation (a Retry packet whose token it must echo). A forged source
//! never sees the token and costs no slot; a genuine one pays a round trip. A source that does
//! prove its address can still only hold [`MAX_PENDING_PER_IP`] slots while the node is under
//! pressure. Refused, retried and failed handshakes are logged at warn, at most once per
//! [`LOG_INTERVAL`] with a count.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Handshakes in progress above which a source address must be validated (QUIC Retry)
/// before its handshake takes a slot (at most half the slots).
pub const RETRY_ABOVE: usize = 16;
/// Handshakes one source IP may have in progress while more than [`RETRY_ABOVE`] are.
pub const MAX_PENDING_PER_IP: usize = 8;
/// At most one warning per this interval about refused or retried handshakes.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one incoming handshake.
pub(crate) enum Verdict {
    /// Take it on; the slot is held until the guard drops.
    Accept(Slot),
    /// Ask the source to prove its address first.
    Retry,
    /// Refuse it (every slot taken, or too many from its IP).
    Refuse(&'static str),
}

/// A handshake slot and its source's count, released on drop.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = lock(&self.per_ip);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The slots of one node's accept loop.
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    max: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    log: Mutex<(Option<Instant>, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    /// Admission for `max` handshakes at once.
    pub(crate) fn new(max: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_ip: Arc::default(),
            log: Mutex::new((None, 0)),
        }
    }

    /// Handshakes in progress now.
    pub(crate) fn pending(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// The verdict on a handshake from `remote`, `validated` when it echoed a Retry token.
    pub(crate) fn judge(&self, remote: SocketAddr, validated: bool) -> Verdict {
        let pending = self.pending();
        let pressed = pending >= RETRY_ABOVE.min(self.max / 2);
        if pressed && !validated {
            return Verdict::Retry;
        }
        let ip = remote.ip();
        let mut per_ip = lock(&self.per_ip);
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if pressed && from_ip >= MAX_PENDING_PER_IP {
            return Verdict::Refuse("too many handshakes from one address");
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Verdict::Refuse("too many handshakes");
        };
        *per_ip.entry(ip).or_default() += 1;
        Verdict::Accept(Slot {
            _permit: permit,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }

    /// Logs a refused or retried handshake from `remote`: the first at once, then one per
    /// [`LOG_INTERVAL`] saying how many there were.
    pub(crate) fn note(&self, remote: SocketAddr, what: &str) {
        let mut log = lock(&self.log);
        log.1 += 1;
        if log.0.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
            tracing::warn!(%remote, count = log.1, pending = self.pending(), "handshake {what}");
            *log = (Some(Instant::now()), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, ip], port))
    }

    #[test]
    fn under_pressure_sources_prove_their_address_and_one_ip_holds_few_slots() {
        let a = Admission::new(64);
        let mut held = Vec::new();
        // Below the threshold anyone is taken, even many from one IP.
        for port in 0..RETRY_ABOVE as u16 {
            match a.judge(from(1, port), false) {
                Verdict::Accept(s) => held.push(s),
                _ => panic!("refused below the threshold"),
            }
        }
        // Now an unvalidated source is asked to retry; a validated one from a busy IP is
        // refused, from another IP taken.
        assert!(matches!(a.judge(from(2, 1), false), Verdict::Retry));
        assert!(matches!(a.judge(from(1, 99), true), Verdict::Refuse(_)));
        let mut taken = 0;
        for ip in 2..=200u8 {
            match a.judge(from(ip, 1), true) {
                Verdict::Accept(s) => {
                    held.push(s);
                    taken += 1;
                }
                Verdict::Refuse(_) => break,
                Verdict::Retry => panic!("validated sources are not retried"),
            }
        }
        assert_eq!(taken, 64 - RETRY_ABOVE, "every slot, then refusals");
        assert!(matches!(a.judge(from(250, 1), true), Verdict::Refuse(_)));
        // Slots and per-IP counts come back when the handshakes end.
        held.clear();
        assert_eq!(a.pending(), 0);
        assert!(lock(&a.per_ip).is_empty());
        assert!(matches!(a.judge(from(1, 5), false), Verdict::Accept(_)));
    }
}
