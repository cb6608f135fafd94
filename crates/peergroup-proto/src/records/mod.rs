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

/// What storing a record version did (the SQLite store's and the replication port's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// No version of the record was stored; now this one is.
    Inserted,
    /// This version won the conflict order over the stored one and replaced it.
    Replaced,
    /// The stored version wins (or is identical): nothing changed.
    Ignored,
}
