//! Where a node listens: `$PEERGROUP_LISTEN`, or dual-stack `[::]:0`.

use std::net::{Ipv6Addr, SocketAddr};

use crate::error::{Result, TransportError};

/// The environment variable that overrides the listen address (`ip:port`, IPv6 in brackets).
pub const LISTEN_ENV: &str = "PEERGROUP_LISTEN";

/// The listen address when `$PEERGROUP_LISTEN` is not set: every IPv6 and (through
/// v4-mapped addresses on a dual-stack socket) IPv4 address, on a port the OS chooses.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

/// The address a node should bind: `$PEERGROUP_LISTEN` when set and not empty, else
/// [`DEFAULT_LISTEN`].
///
/// A value that is not `ip:port` (for example `localhost:0`, or a port above 65535) is an
/// error, [`TransportError::InvalidListenAddress`] (`PEER_E_INVALID_ADDRESS`), rather than a
/// silent fallback: a node that listens somewhere other than where it was told is hard to debug.
pub fn default_listen_addr() -> Result<SocketAddr> {
    match std::env::var_os(LISTEN_ENV) {
        None => Ok(DEFAULT_LISTEN),
        Some(v) => match v.to_str() {
            Some(text) => listen_addr_from(Some(text)),
            None => Err(TransportError::InvalidListenAddress {
                value: v.to_string_lossy().into_owned(),
                reason: format!("${LISTEN_ENV} is not valid UTF-8"),
            }),
        },
    }
}

/// [`default_listen_addr`] for a given value of the variable (`None` when unset).
pub fn listen_addr_from(value: Option<&str>) -> Result<SocketAddr> {
    match value {
        None => Ok(DEFAULT_LISTEN),
        Some(text) if text.trim().is_empty() => Ok(DEFAULT_LISTEN),
        Some(text) => parse_listen_addr(text),
    }
}

/// Parses `ip:port` (`127.0.0.1:0`, `[::1]:4000`); host names are not accepted.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr> {
    text.trim()
        .parse::<SocketAddr>()
        .map_err(|e| TransportError::InvalidListenAddress {
            value: text.to_owned(),
            reason: format!("{e}; expected ip:port such as 127.0.0.1:0 or [::]:4000"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergroup_identity::hresult::PEER_E_INVALID_ADDRESS;

    #[test]
    fn unset_or_empty_means_dual_stack_any_port() {
        assert_eq!(listen_addr_from(None).unwrap(), DEFAULT_LISTEN);
        assert_eq!(listen_addr_from(Some("")).unwrap(), DEFAULT_LISTEN);
        assert_eq!(DEFAULT_LISTEN.to_string(), "[::]:0");
    }

    #[test]
    fn addresses_parse_and_bad_values_are_invalid_address() {
        assert_eq!(
            listen_addr_from(Some("127.0.0.1:0")).unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr(" [::1]:4000 ").unwrap(),
            "[::1]:4000".parse().unwrap()
        );
        for bad in ["localhost:0", "127.0.0.1", "1.2.3.4:70000", "::1:5", "x"] {
            let e = listen_addr_from(Some(bad)).unwrap_err();
            assert_eq!(e.hresult(), PEER_E_INVALID_ADDRESS, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
