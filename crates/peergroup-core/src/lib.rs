//! Peergroup's group core.
//!
//! The group is a deterministic state machine ([`machine::Group`]) driven by a tokio task
//! over the transport; [`sim`] runs the same machine in a simulated network. Identity and
//! transport are re-exported, so the C ABI and the command line reach them through this
//! crate only.

#![forbid(unsafe_code)]

#[cfg(feature = "net")]
mod api;
#[cfg(feature = "net")]
mod clock;
pub mod config_export;
#[cfg(feature = "net")]
mod config_transfer;
pub mod data;
#[cfg(feature = "net")]
pub mod direct;
#[cfg(feature = "net")]
mod driver;
pub mod error;
pub mod events;
#[cfg(feature = "net")]
pub mod group;
pub mod group_store;
pub mod invitation;
pub mod machine;
pub mod members;
#[cfg(feature = "net")]
pub mod password;
#[cfg(feature = "net")]
mod password_gate;
#[cfg(feature = "net")]
mod peer_time;
pub mod properties;
pub mod reconcile;
pub mod records;
pub mod replication;
pub mod service;
pub mod sim;
#[cfg(feature = "net")]
mod store_port;
pub mod values;
pub mod wire;

#[cfg(feature = "net")]
pub use api::{GroupHandle, PasswordHold, Peergroup};
#[cfg(feature = "net")]
pub use driver::{reachable_addrs, server_name_of, Neighbour};
pub use error::{CoreError, Result};
pub use events::{Event, EventFilter, EventHub, EventItem, EventKind, EventSubscription};
#[cfg(feature = "net")]
pub use group::{DatabaseProgress, DatabaseStage, LocalGroup, LocalPeergroup, NewRecord};
#[cfg(feature = "net")]
pub use password_gate::LocalPasswordHold;
pub use peergroup_transport as transport;
pub use peergroup_transport::identity;
