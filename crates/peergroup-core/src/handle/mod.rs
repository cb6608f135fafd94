//! The group handle's calls, one file per concern. Each is an `impl LocalGroup` block over the
//! shared group state; none is imported by the layers below.

pub(crate) mod config;
pub(crate) mod database;
pub(crate) mod direct;
pub(crate) mod members;
pub(crate) mod password;
pub(crate) mod records;
pub(crate) mod time;
