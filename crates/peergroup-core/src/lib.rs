//! Peergroup's group core.
//!
//! It will hold the group state machine (membership, invitations, records, presence,
//! events) and its tokio driver; see `docs/architecture.md`. Today it passes the identity
//! layer through to the C ABI and the command line, which may only use this crate.

#![forbid(unsafe_code)]

pub use peergroup_transport as transport;
pub use peergroup_transport::identity;
