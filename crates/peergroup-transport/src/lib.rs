//! Peergroup's transport layer.
//!
//! It will hold one QUIC endpoint per node (quinn + rustls mutual TLS, ALPN
//! [`ALPN`]), framed messages and the protocol's close codes; see `docs/architecture.md`.
//! Until the group layer lands it carries the identity layer up the stack, so that each
//! crate reaches only its neighbour.

#![forbid(unsafe_code)]

pub use peergroup_identity as identity;

/// The ALPN protocol id every Peergroup connection negotiates.
pub const ALPN: &[u8] = b"peergroup/1";
