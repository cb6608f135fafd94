//! The record database: the model and parsers of `peergroup_proto::records`, and the
//! runtime's parts over them, the SQLite store ([`store`]) with its search queries
//! ([`query`]) and database export files on disk ([`file`](mod@file)).

pub use peergroup_proto::records::*;

#[cfg(feature = "store")]
pub mod file;
#[cfg(feature = "store")]
pub mod query;
#[cfg(feature = "store")]
pub mod store;
