//! Online password guessing, slowed down: SPAKE2 leaves an attacker one guess per attempt,
//! so the number of attempts is what this bounds.
//!
//! Each wrong password counts against the joiner's identity (its peer name) and its source
//! IP. After a failure the next attempt from either must wait: [`FIRST_WAIT`], doubling
//! with each failure up to [`MAX_WAIT`]; and at most [`MAX_FAILURES_PER_HOUR`] failures count
//! per key in an hour, after which the key waits for the hour to pass. An attempt that comes
//! too early is refused before any exchange (no guess is spent, and none is learnt). The
//! table is bounded ([`MAX_KEYS`]); a success clears the joiner's identity, not its IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The wait after a first wrong password.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(5 * 60);
/// Wrong passwords one identity or one IP may make in an hour.
pub const MAX_FAILURES_PER_HOUR: u32 = 20;
/// Identities and IPs remembered at most (the one whose last failure is oldest goes).
pub const MAX_KEYS: usize = 1024;

const HOUR: Duration = Duration::from_secs(3600);

/// Who an attempt counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Identity(String),
    Source(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Record {
    /// Failures in the current hour.
    failures: u32,
    /// When the current hour began (its first failure).
    window: Instant,
    /// The last failure.
    last: Instant,
    /// No attempt before this.
    until: Instant,
}

/// The failures of password joiners at one group.
#[derive(Debug, Default)]
pub struct Throttle {
    keys: HashMap<Key, Record>,
}

impl Throttle {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Err(wait)` when `identity` or `source` may not try again yet (how long is left).
    pub fn check(&self, identity: &str, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let wait = [Key::Identity(identity.to_owned()), Key::Source(source)]
            .iter()
            .filter_map(|k| self.keys.get(k))
            .map(|r| r.until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// A wrong password from `identity` at `source`.
    pub fn failed(&mut self, identity: &str, source: IpAddr, now: Instant) {
        for key in [Key::Identity(identity.to_owned()), Key::Source(source)] {
            if !self.keys.contains_key(&key) && self.keys.len() >= MAX_KEYS {
                self.evict();
            }
            let r = self.keys.entry(key).or_insert(Record {
                failures: 0,
                window: now,
                last: now,
                until: now,
            });
            if now.duration_since(r.window) >= HOUR {
                *r = Record {
                    failures: 0,
                    window: now,
                    last: now,
                    until: now,
                };
            }
            r.failures += 1;
            r.last = now;
            r.until = if r.failures >= MAX_FAILURES_PER_HOUR {
                r.window + HOUR
            } else {
                // 1 s, 2 s, 4 s, … up to MAX_WAIT.
                let doubled = FIRST_WAIT.saturating_mul(1 << (r.failures - 1).min(20));
                now + doubled.min(MAX_WAIT)
            };
        }
    }

    /// The right password from `identity`: its failures are forgiven (its IP's are not: other
    /// identities may be guessing from there).
    pub fn succeeded(&mut self, identity: &str) {
        self.keys.remove(&Key::Identity(identity.to_owned()));
    }

    fn evict(&mut self) {
        if let Some(oldest) = self
            .keys
            .iter()
            .min_by_key(|(_, r)| r.last)
            .map(|(k, _)| k.clone())
        {
            self.keys.remove(&oldest);
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 7));
    const OTHER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 8));

    #[test]
    fn each_wrong_password_doubles_the_wait_for_the_identity_and_the_source() {
        let mut t = Throttle::new();
        let t0 = Instant::now();
        assert_eq!(t.check("eve", IP, t0), Ok(()));
        t.failed("eve", IP, t0);
        assert_eq!(t.check("eve", IP, t0), Err(FIRST_WAIT));
        // Another identity from the same IP waits too, and so does eve from elsewhere.
        assert!(t.check("mallory", IP, t0).is_err());
        assert!(t.check("eve", OTHER_IP, t0).is_err());
        assert_eq!(t.check("mallory", OTHER_IP, t0), Ok(()));
        let t1 = t0 + FIRST_WAIT;
        assert_eq!(t.check("eve", IP, t1), Ok(()));
        t.failed("eve", IP, t1);
        assert_eq!(t.check("eve", IP, t1), Err(2 * FIRST_WAIT));
        let t2 = t1 + 2 * FIRST_WAIT;
        t.failed("eve", IP, t2);
        assert_eq!(t.check("eve", IP, t2), Err(4 * FIRST_WAIT));
        // Success forgives the identity, not the IP.
        t.succeeded("eve");
        assert_eq!(t.check("eve", OTHER_IP, t2), Ok(()));
        assert!(t.check("eve", IP, t2).is_err());
    }

    #[test]
    fn the_wait_is_capped_and_an_hour_allows_only_so_many_failures() {
        let mut t = Throttle::new();
        let mut now = Instant::now();
        let start = now;
        for _ in 0..MAX_FAILURES_PER_HOUR - 1 {
            t.failed("eve", IP, now);
            let wait = t.check("eve", IP, now).unwrap_err();
            assert!(wait <= MAX_WAIT);
            now += wait;
        }
        assert!(
            now - start < HOUR,
            "the cap on the wait keeps this within the hour"
        );
        t.failed("eve", IP, now);
        // The twentieth failure closes the hour.
        let wait = t.check("eve", IP, now).unwrap_err();
        assert_eq!(now + wait, start + HOUR);
        assert_eq!(t.check("eve", IP, start + HOUR), Ok(()));
        // A new hour starts counting afresh.
        t.failed("eve", IP, start + HOUR);
        assert_eq!(t.check("eve", IP, start + HOUR), Err(FIRST_WAIT));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Throttle::new();
        let now = Instant::now();
        for i in 0..(2 * MAX_KEYS) as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed(
                &format!("id{i}"),
                ip,
                now + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(t.len() <= MAX_KEYS);
        // The newest are the ones kept.
        let last = 2 * MAX_KEYS as u32 - 1;
        let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + last));
        assert!(t.check(&format!("id{last}"), ip, now).is_err());
    }
}
