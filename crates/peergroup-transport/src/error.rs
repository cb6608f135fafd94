//! The transport layer's error type and its one HRESULT table.

use std::net::SocketAddr;
use std::time::Duration;

use peergroup_identity::hresult::{self, HRESULT};

use crate::close::{CloseCode, CloseReason};
use crate::frame::FrameError;
use crate::tunnel::TunnelRefusal;

/// Everything that can go wrong in the transport layer.
///
/// The variants hold no QUIC or TLS types, so the group layer can match on them without
/// depending on quinn or rustls; [`TransportError::hresult`] is the single place where they
/// become Windows HRESULTs.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `$PEERGROUP_LISTEN` (or another listen address given as text) is not `ip:port`.
    #[error("invalid listen address {value:?}: {reason}")]
    InvalidListenAddress {
        /// The text as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The UDP socket could not be bound (address in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server name is not a DNS name, so it cannot be sent as SNI.
    #[error("invalid server name {0:?}: it must be a DNS name")]
    InvalidServerName(String),
    /// The certificate chain or private key cannot be used for TLS (empty chain, unknown key
    /// type, key not matching the end-entity certificate).
    #[error("unusable credentials: {0}")]
    BadCredentials(String),
    /// A limit or timeout in the node's configuration is out of range.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// The connection could not be made: no answer within the handshake timeout, unreachable
    /// address, incompatible QUIC version or ALPN.
    #[error("connection to {addr} failed: {reason}")]
    ConnectFailed {
        /// The peer's address.
        addr: SocketAddr,
        /// What the QUIC stack reported.
        reason: String,
    },
    /// The peer's endpoint refused the connection: it has no credentials for the server name
    /// asked for, or it is not accepting connections now.
    #[error("connection to {addr} refused: {reason}")]
    Refused {
        /// The peer's address.
        addr: SocketAddr,
        /// What the QUIC stack reported.
        reason: String,
    },
    /// The TLS handshake failed on certificates: our trust policy refused the peer's chain, or
    /// the peer's refused ours. No stream was opened.
    #[error("connection with {addr} not authenticated: {reason}")]
    NotAuthenticated {
        /// The peer's address.
        addr: SocketAddr,
        /// What TLS reported.
        reason: String,
    },
    /// No open connection has that id.
    #[error("no connection with id {0}")]
    UnknownConnection(u64),
    /// A frame could not be built (too large) or the peer sent bytes that are not frames.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer stopped reading: our bounded send queue stayed full for the stall timeout. The
    /// connection has been closed with [`CloseCode::Stalled`].
    #[error("peer stalled: {queued} bytes queued, no room for {waited:?}")]
    Stalled {
        /// Bytes waiting in the send queue when we gave up.
        queued: usize,
        /// How long the send waited for room.
        waited: Duration,
    },
    /// The connection is closed; the reason says by whom and how.
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// The relay (or, through it, the target) refused a tunnel, or this node has no room for
    /// another tunnel end (`Busy`).
    #[error("tunnel refused: {0}")]
    TunnelRefused(TunnelRefusal),
    /// The node was closed; it can no longer connect or accept.
    #[error("the node is closed")]
    NodeClosed,
    /// A bounded close did not finish in time.
    #[error("{what} did not finish within {waited:?}")]
    CloseTimedOut {
        /// Which step was still running.
        what: &'static str,
        /// The bound that passed.
        waited: Duration,
    },
    /// A failure inside the QUIC or TLS stack that no caller action explains.
    #[error("internal transport error: {0}")]
    Internal(String),
}

/// Result alias of the transport layer.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

impl TransportError {
    /// The HRESULT a Windows program would see for this error.
    ///
    /// This is the one mapping table of the transport crate:
    ///
    /// | error | HRESULT |
    /// | --- | --- |
    /// | `InvalidListenAddress` | `PEER_E_INVALID_ADDRESS` |
    /// | `Bind` | `PEER_E_UNABLE_TO_LISTEN` |
    /// | `InvalidServerName`, `InvalidConfig` | `E_INVALIDARG` |
    /// | `BadCredentials` | `PEER_E_INVALID_CREDENTIAL` |
    /// | `ConnectFailed` (timeout, unreachable, QUIC/ALPN mismatch) | `PEER_E_CONNECTION_FAILED` |
    /// | `Refused` | `PEER_E_CONNECTION_REFUSED` |
    /// | `NotAuthenticated` (trust refused a chain) | `PEER_E_CONNECTION_NOT_AUTHENTICATED` |
    /// | `UnknownConnection` | `PEER_E_CONNECTION_NOT_FOUND` |
    /// | `Frame(BadVersion)` | `PEER_E_UNSUPPORTED_VERSION` |
    /// | `Frame(Oversize / Truncated)` | `E_INVALIDARG` |
    /// | `Stalled`, `CloseTimedOut` | `PEER_E_TIMEOUT` |
    /// | `Closed` with code `NOT_AUTHORIZED` | `PEER_E_NOT_AUTHORIZED` |
    /// | `Closed` by idle timeout | `PEER_E_TIMEOUT` |
    /// | `Closed` by reset or a transport error | `PEER_E_CONNECTION_FAILED` |
    /// | `Closed` otherwise | `PEER_E_CONNECTION_NOT_FOUND` (the connection is gone) |
    /// | `TunnelRefused` (any refusal) | `PEER_E_CONNECTION_FAILED` |
    /// | `NodeClosed` | `E_HANDLE` (like a closed handle) |
    /// | `Internal` | `E_FAIL` |
    pub fn hresult(&self) -> HRESULT {
        use TransportError::*;
        match self {
            InvalidListenAddress { .. } => hresult::PEER_E_INVALID_ADDRESS,
            Bind { .. } => hresult::PEER_E_UNABLE_TO_LISTEN,
            InvalidServerName(_) | InvalidConfig(_) => hresult::E_INVALIDARG,
            BadCredentials(_) => hresult::PEER_E_INVALID_CREDENTIAL,
            ConnectFailed { .. } => hresult::PEER_E_CONNECTION_FAILED,
            Refused { .. } => hresult::PEER_E_CONNECTION_REFUSED,
            NotAuthenticated { .. } => hresult::PEER_E_CONNECTION_NOT_AUTHENTICATED,
            UnknownConnection(_) => hresult::PEER_E_CONNECTION_NOT_FOUND,
            Frame(FrameError::BadVersion(_)) => hresult::PEER_E_UNSUPPORTED_VERSION,
            Frame(FrameError::Oversize { .. } | FrameError::Truncated { .. }) => {
                hresult::E_INVALIDARG
            }
            Stalled { .. } | CloseTimedOut { .. } => hresult::PEER_E_TIMEOUT,
            Closed(reason) => match reason {
                r if r.code() == Some(CloseCode::NotAuthorized) => hresult::PEER_E_NOT_AUTHORIZED,
                CloseReason::TimedOut => hresult::PEER_E_TIMEOUT,
                CloseReason::Reset | CloseReason::Transport { .. } => {
                    hresult::PEER_E_CONNECTION_FAILED
                }
                _ => hresult::PEER_E_CONNECTION_NOT_FOUND,
            },
            TunnelRefused(_) => hresult::PEER_E_CONNECTION_FAILED,
            NodeClosed => hresult::E_HANDLE,
            Internal(_) => hresult::E_FAIL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergroup_identity::hresult::*;

    #[test]
    fn table_uses_the_documented_values() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let bind = TransportError::Bind {
            addr,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(bind.hresult() as u32, 0x8063_2096);
        assert_eq!(bind.hresult(), PEER_E_UNABLE_TO_LISTEN);
        let bad_listen = TransportError::InvalidListenAddress {
            value: "x".into(),
            reason: "y".into(),
        };
        assert_eq!(bad_listen.hresult() as u32, 0x8063_7007);
        let refused_trust = TransportError::NotAuthenticated {
            addr,
            reason: "r".into(),
        };
        assert_eq!(refused_trust.hresult() as u32, 0x8063_010A);
        let failed = TransportError::ConnectFailed {
            addr,
            reason: "r".into(),
        };
        assert_eq!(failed.hresult() as u32, 0x8063_0109);
        assert_eq!(
            TransportError::UnknownConnection(3).hresult() as u32,
            0x8063_0103
        );
        assert_eq!(
            TransportError::Frame(FrameError::BadVersion(9)).hresult(),
            PEER_E_UNSUPPORTED_VERSION
        );
        assert_eq!(
            TransportError::Frame(FrameError::Truncated { buffered: 1 }).hresult(),
            E_INVALIDARG
        );
        let not_authorized = CloseReason::Peer {
            code: CloseCode::NotAuthorized,
            reason: String::new(),
        };
        assert_eq!(
            TransportError::Closed(not_authorized).hresult(),
            PEER_E_NOT_AUTHORIZED
        );
        let left = CloseReason::Peer {
            code: CloseCode::MemberLeft,
            reason: String::new(),
        };
        assert_eq!(
            TransportError::Closed(left).hresult(),
            PEER_E_CONNECTION_NOT_FOUND
        );
        assert_eq!(
            TransportError::Closed(CloseReason::TimedOut).hresult(),
            PEER_E_TIMEOUT
        );
        let stalled = TransportError::Stalled {
            queued: 1,
            waited: Duration::from_secs(1),
        };
        assert_eq!(stalled.hresult(), PEER_E_TIMEOUT);
        for refusal in TunnelRefusal::ALL {
            let e = TransportError::TunnelRefused(refusal);
            assert_eq!(e.hresult() as u32, 0x8063_0109, "{e}");
        }
        assert_eq!(
            TransportError::TunnelRefused(TunnelRefusal::NotAllowed).to_string(),
            "tunnel refused: NOT_ALLOWED (1)"
        );
    }
}
