//! Peergroup's deterministic group: everything a member decides, with no I/O.
//!
//! The group is a state machine ([`machine::Group`]): inputs are API commands, peer messages
//! and the time; outputs are messages, events and storage writes. Replication
//! ([`replication`]), the member rules ([`members`]), reconciliation ([`reconcile`]), the wire
//! codec ([`wire`]), the record model and its parsers ([`records`]), properties, invitations
//! and the configuration document are its parts. Like `quinn-proto`, this crate never names
//! its runtime: `peergroup-core` drives it over QUIC and SQLite, and the seeded simulator
//! (`sim`, feature `test-utils`) drives hundreds of members in one process.
//!
//! No module here opens a socket or a file, reads a clock or spawns a task: the host passes
//! the time in, and storage and signing go through the ports the machine is given.

#![forbid(unsafe_code)]

pub mod config_export;
pub mod data;
pub mod dialback;
pub mod error;
pub mod invitation;
pub mod io;
pub mod lan;
pub mod machine;
pub mod members;
pub mod port;
pub mod properties;
pub mod reachability;
pub mod reconcile;
pub mod records;
pub mod relay;
pub mod replication;
pub mod rng;
#[cfg(feature = "test-utils")]
pub mod sim;
pub mod upgrade;
pub mod values;
pub mod wire;

pub use error::{ProtoError, Result};
pub use peergroup_transport as transport;
pub use peergroup_transport::identity;
