//! The replication port of a running group: its SQLite record database and real
//! verification, as the machine's [`RecordPort`].

use std::sync::Arc;

use crate::error::{ProtoError, Result};
use crate::port::PutOutcome;
use crate::port::RecordPort;
use crate::reconcile::{ItemKey, DIGEST_BYTES};
use crate::records::attributes::Attributes;
use crate::records::record::Record;
use crate::records::store::index_rows;
use crate::replication::Verifier;
use crate::state::GroupInner;

/// [`Verifier::verify`] of each record at `now`, a large batch split over the machine's
/// cores (a joiner verifies every record of the group once). The answers come in the order
/// of `records`.
pub(crate) fn verify_on_all_cores(
    verifier: &Verifier,
    records: &[Record],
    now: i64,
) -> Vec<Result<(), ProtoError>> {
    const PER_THREAD: usize = 16;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || records.len() < 2 * PER_THREAD {
        return verifier.verify(records, now);
    }
    let chunk = records.len().div_ceil(threads).max(PER_THREAD);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(chunk)
            .map(|part| scope.spawn(move || verifier.verify(part, now)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| {
                p.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The machine's view of a group's record database.
pub(crate) struct StorePort {
    inner: Arc<GroupInner>,
    verifier: Verifier,
}

impl StorePort {
    /// The port of a running group; `verifier` is shared with the connections' readers,
    /// which verify records before they reach the machine.
    pub(crate) fn new(inner: Arc<GroupInner>, verifier: Verifier) -> Self {
        StorePort { inner, verifier }
    }
}

impl RecordPort for StorePort {
    fn items(&mut self, now: i64) -> Result<Vec<ItemKey>, ProtoError> {
        Ok(self.inner.with_records(|db| db.items(now))?)
    }

    fn held(&mut self, id: &[u8; 16]) -> Result<Option<(u32, [u8; DIGEST_BYTES])>, ProtoError> {
        Ok(self.inner.with_records(|db| db.held(id))?)
    }

    fn encodings(
        &mut self,
        ids: &[[u8; 16]],
        now: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, ProtoError> {
        Ok(self.inner.with_records(|db| db.encodings(ids, now))?)
    }

    /// Signatures and rights ([`Record::verify`]), and attributes a search can index (a
    /// record whose attributes do not parse could never be found, and the application that
    /// made it could not have added it).
    fn verify(&mut self, records: &[Record], now: i64) -> Vec<Result<(), ProtoError>> {
        verify_on_all_cores(&self.verifier, records, now)
            .into_iter()
            .zip(records)
            .map(|(checked, r)| {
                checked?;
                if !r.is_deleted() {
                    Attributes::parse(&r.attributes)?;
                }
                Ok(())
            })
            .collect()
    }

    fn put(&mut self, records: &[Record]) -> Result<Vec<PutOutcome>, ProtoError> {
        let batch = records
            .iter()
            .map(|r| {
                let rows = if r.is_deleted() {
                    Vec::new()
                } else {
                    index_rows(&Attributes::parse(&r.attributes)?)
                };
                Ok((r.clone(), rows))
            })
            .collect::<Result<Vec<_>, ProtoError>>()?;
        Ok(self.inner.write_records(|db| db.put_many(&batch))?)
    }

    fn of_type(&mut self, record_type: &[u8; 16], now: i64) -> Result<Vec<Record>, ProtoError> {
        Ok(self
            .inner
            .with_records(|db| db.list(Some(*record_type), now))?)
    }

    fn expire(&mut self, now: i64) -> Result<Vec<Record>, ProtoError> {
        Ok(self.inner.write_records(|db| db.expire(now))?)
    }
}
