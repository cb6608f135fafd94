//! Members: the rules and records of `peergroup_proto::members`, and the group handle's
//! member calls ([`handle`]).

pub use peergroup_proto::members::*;

pub(crate) mod handle;
