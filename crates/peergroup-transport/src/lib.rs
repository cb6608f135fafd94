//! Peergroup's transport layer: QUIC connections with mutual TLS, framed messages, close codes.
//!
//! A [`Node`] is one quinn endpoint on one UDP socket (ALPN [`ALPN`], TLS 1.3 only, rustls with
//! the ring provider). It knows nothing of groups: the group layer supplies the certificates
//! to present ([`CredentialResolver`], [`Credentials`]) and the trust decisions
//! ([`TrustPolicy`]), and a peer its policy refuses fails the handshake and never gets a
//! stream. Each [`Connection`] carries [`Frame`]s, in order, on one control stream, with
//! bounded queues; it ends with a [`CloseCode`] the peer observes. The wire protocol is in
//! `docs/protocol.md`; [`TransportError::hresult`] is the one table to Windows HRESULTs.
//!
//! A node can reach a node it cannot route to through a third one both can reach: tunnels
//! ([`Node::open_tunnel`], [`Node::accept_tunnel`], [`IncomingTunnel`]) are virtual UDP paths
//! over extra streams of member connections, each end a virtual address in 240.0.0.0/4 that
//! [`Node::connect`] dials as any other; the relay copies end-to-end QUIC ciphertext.
//!
//! Without the default `quic` feature the crate is only the frame codec, close codes, listen
//! address parsing and the error type: what the fuzz crate builds, without quinn and rustls.

#![forbid(unsafe_code)]

pub use peergroup_identity as identity;

pub mod close;
pub mod error;
pub mod frame;
pub mod listen;
pub mod tunnel;

#[cfg(feature = "quic")]
pub mod admission;
#[cfg(feature = "quic")]
mod connection;
#[cfg(feature = "quic")]
mod credentials;
#[cfg(feature = "quic")]
mod node;
#[cfg(feature = "quic")]
mod socket;
#[cfg(feature = "test-utils")]
pub mod testing;
#[cfg(feature = "quic")]
mod tls;
#[cfg(feature = "quic")]
mod trust;

pub use close::{CloseCode, CloseReason};
pub use error::{Result, TransportError};
pub use frame::{Frame, FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use listen::{default_listen_addr, DEFAULT_LISTEN, LISTEN_ENV};
pub use tunnel::{
    TunnelRefusal, CHANNEL_PROBES, CHANNEL_PROBE_INTERVAL, MAX_CHANNELS,
    MAX_TUNNELS_PER_CONNECTION, MAX_TUNNEL_ENDS, MAX_TUNNEL_PACKET, TUNNEL_BACKLOG, TUNNEL_MAGIC,
    TUNNEL_QUEUE_PACKETS, TUNNEL_RECV_PACKETS,
};

#[cfg(feature = "quic")]
pub use connection::{Connection, CLIENT_PREAMBLE, SERVER_PREAMBLE};
#[cfg(feature = "quic")]
pub use credentials::{CredentialResolver, Credentials, NoCredentials};
#[cfg(feature = "quic")]
pub use node::{Limits, Node, NodeConfig};
/// Certificate and key types of the TLS layer, re-exported so callers need no extra dependency.
#[cfg(feature = "quic")]
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
#[cfg(feature = "quic")]
pub use trust::{PinnedCertificates, Side, TrustError, TrustPolicy};
#[cfg(feature = "quic")]
pub use tunnel::{IncomingTunnel, RelayedTunnel, TunnelInfo, TunnelOffer, TunnelRequest};

/// The ALPN protocol id every Peergroup connection negotiates.
pub const ALPN: &[u8] = b"peergroup/1";
