//! Virtual addresses: where quinn sends to and hears from a tunnel end.
//!
//! They are in 240.0.0.0/4, reserved and never routed, so no real peer can have one. On an
//! IPv6 socket quinn speaks IPv4 addresses in their IPv4-mapped form (`::ffff:240.0.0.1`), so
//! that is the form handed out there; both forms are understood.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// The first octet of every virtual address (the top four bits make the /4).
const FIRST_OCTET_MIN: u8 = 240;
/// The largest 28-bit host part used: stays below 255.0.0.0, clear of the broadcast address.
const MAX_HOST: u64 = 0x0EFF_FFFF;

/// The `n`-th virtual address of a node (`n` from 1): the high bits pick the IP in
/// 240.0.0.0/4, the low 16 bits the port. `None` where the port would be 0 (quinn refuses
/// port 0) or the space is used up.
pub(crate) fn nth(n: u64) -> Option<SocketAddrV4> {
    let port = (n & 0xFFFF) as u16;
    let host = n >> 16;
    if port == 0 || host > MAX_HOST {
        return None;
    }
    let ip = Ipv4Addr::from(0xF000_0000 | host as u32);
    Some(SocketAddrV4::new(ip, port))
}

/// The virtual address `addr` names, in either form, or `None` for a real address.
pub(crate) fn canonical(addr: SocketAddr) -> Option<SocketAddrV4> {
    let v4 = match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(v6) => SocketAddrV4::new(v6.ip().to_ipv4_mapped()?, v6.port()),
    };
    (v4.ip().octets()[0] >= FIRST_OCTET_MIN).then_some(v4)
}

/// `addr` in the form a socket of that family uses.
pub(crate) fn presented(addr: SocketAddrV4, ipv6: bool) -> SocketAddr {
    if ipv6 {
        SocketAddr::new(addr.ip().to_ipv6_mapped().into(), addr.port())
    } else {
        SocketAddr::V4(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_virtual_distinct_and_never_port_zero() {
        assert_eq!(nth(1), Some("240.0.0.0:1".parse().unwrap()));
        assert_eq!(nth(0x1_0000), None);
        assert_eq!(nth(0x1_0001), Some("240.0.0.1:1".parse().unwrap()));
        assert_eq!(
            nth((MAX_HOST << 16) | 1),
            Some("254.255.255.255:1".parse().unwrap())
        );
        assert_eq!(nth((MAX_HOST + 1) << 16 | 1), None);
        let mut seen = std::collections::HashSet::new();
        for n in 1..200_000u64 {
            if let Some(a) = nth(n) {
                assert!(canonical(SocketAddr::V4(a)).is_some());
                assert!(seen.insert(a));
            }
        }
    }

    #[test]
    fn both_forms_are_understood_and_real_addresses_are_not_virtual() {
        let v: SocketAddrV4 = "240.0.3.4:9".parse().unwrap();
        let mapped = presented(v, true);
        assert_eq!(
            mapped,
            "[::ffff:240.0.3.4]:9".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(presented(v, false), SocketAddr::V4(v));
        assert_eq!(canonical(mapped), Some(v));
        assert_eq!(canonical(SocketAddr::V4(v)), Some(v));
        for real in [
            "127.0.0.1:9",
            "239.255.255.255:9",
            "[::1]:9",
            "[::ffff:10.0.0.1]:9",
        ] {
            assert_eq!(canonical(real.parse().unwrap()), None, "{real}");
        }
    }
}
