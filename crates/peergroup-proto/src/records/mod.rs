//! The record database's pure parts: the attribute XML records carry
//! (`PEER_RECORD.pwzAttributes`) and the criteria `PeerGroupSearchRecords` evaluates against it.
//!
//! Both documents come from applications and, through replication, from other members, so
//! both parsers are bounded, strict and total: they refuse what they do not understand rather
//! than guess, and they never panic. Nothing here does I/O; the runtime's SQLite store builds on it.

pub mod attributes;
pub mod dbfile;
pub mod search;

pub mod record;
pub mod view;
