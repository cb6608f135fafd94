//! The host's seams: what the machine asks of whoever runs it, synchronously. The runtime
//! implements them over SQLite and the identity's key; the simulator in memory.

use crate::error::Result;
use crate::identity::gmc::GmcChain;
use crate::reconcile::{ItemKey, DIGEST_BYTES};
use crate::records::record::Record;

/// The record database as the machine sees it: storage and verification, provided by the
/// host. Times are the machine's (ms since the Unix epoch, peer time).
pub trait RecordPort: Send {
    /// Every stored version that has not expired at `now`, live or tombstone, as items.
    fn items(&mut self, now: i64) -> Result<Vec<ItemKey>>;
    /// The version and digest stored for `id`, if any (expired or not).
    fn held(&mut self, id: &[u8; 16]) -> Result<Option<(u32, [u8; DIGEST_BYTES])>>;
    /// The canonical encodings of the stored versions of `ids` that have not expired at
    /// `now` (`None` for an id not held).
    fn encodings(&mut self, ids: &[[u8; 16]], now: i64) -> Result<Vec<Option<Vec<u8>>>>;
    /// Verifies records from a peer as [`Record::verify`] does.
    fn verify(&mut self, records: &[Record], now: i64) -> Vec<Result<()>>;
    /// Stores verified records in one durable transaction, each under the conflict order.
    fn put(&mut self, records: &[Record]) -> Result<Vec<PutOutcome>>;
    /// Removes every record whose expiration has come and returns them.
    fn expire(&mut self, now: i64) -> Result<Vec<Record>>;
    /// The live (not deleted, not expired at `now`) records of `record_type`: the member
    /// records the machine publishes are looked up this way.
    fn of_type(&mut self, record_type: &[u8; 16], now: i64) -> Result<Vec<Record>>;
}

/// The host's side of publishing: this member's current chain and its signature. The driver
/// signs with the identity's key; the simulator with its pool's.
pub trait Publisher: Send {
    /// The member's current membership chain (it changes when new credentials are adopted).
    fn chain(&self) -> GmcChain;
    /// Signs a record this member made or modified ([`Record::sign`]).
    fn sign(&self, record: &mut Record) -> Result<()>;
}

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
