//! Peergroup's group core.
//!
//! The runtime: the deterministic group of `peergroup_proto` ([`machine::Group`]) driven by
//! a tokio task over the transport, with its records in SQLite, handles, events and the
//! service client. Proto's modules, identity and transport are re-exported, so the C ABI, the
//! command line and the daemon reach them through this crate only.

#![forbid(unsafe_code)]

#[cfg(feature = "net")]
mod api;
#[cfg(feature = "net")]
pub mod blocking;
pub mod calls;
#[cfg(feature = "net")]
mod clock;
#[cfg(feature = "net")]
mod control;
#[cfg(feature = "net")]
pub mod direct;
#[cfg(feature = "net")]
mod discovery;
#[cfg(feature = "net")]
mod driver;
pub mod error;
pub mod events;
#[cfg(feature = "net")]
pub mod group;
pub mod group_store;
#[cfg(feature = "net")]
mod handle;
#[cfg(feature = "net")]
mod network;
#[cfg(feature = "net")]
pub mod password;
#[cfg(feature = "net")]
mod paths;
#[cfg(feature = "net")]
mod ports;
#[cfg(feature = "net")]
mod race;
pub mod records;
pub mod service;
#[cfg(feature = "net")]
mod signing;
#[cfg(feature = "net")]
mod state;
pub mod throttle;
#[cfg(feature = "net")]
mod trust;

#[cfg(feature = "net")]
pub use api::{GroupHandle, PasswordHold, Peergroup};
pub use calls::{GroupCall, GroupReply};
#[cfg(feature = "net")]
pub use control::Neighbour;
pub use error::{CoreError, Result};
pub use events::{Event, EventFilter, EventHub, EventItem, EventKind, EventSubscription};
#[cfg(feature = "net")]
pub use group::{DatabaseProgress, DatabaseStage, LocalGroup, LocalPeergroup, NewRecord};
#[cfg(feature = "net")]
pub use handle::password::LocalPasswordHold;
#[cfg(feature = "net")]
pub use network::reachable_addrs;
pub use peergroup_proto::{
    config_export, data, dialback, invitation, io, lan, machine, members, port, properties,
    reachability, reconcile, relay, replication, rng, upgrade, values, wire,
};
pub use peergroup_proto::{transport, transport::identity};
#[cfg(feature = "net")]
pub use trust::server_name_of;
