//! Range-based set reconciliation of record versions, with the negentropy protocol.
//!
//! Two members holding nearly the same records find the differences in a few rounds whose
//! size follows the number of differences, not the size of the database: each round sends
//! fingerprints of ranges, and only ranges whose fingerprints differ are split further.
//!
//! The items are (record id, version): a record both sides hold at different versions shows
//! up on both sides' lists, and the side holding the newer version sends it. Items map onto
//! negentropy's (timestamp, 32-byte id) as timestamp 0 and `id ‖ version (big-endian) ‖ 0…`,
//! so ranges follow record ids. This module only computes the differences; sending records
//! is the caller's.

use negentropy::{Id, Negentropy, NegentropyStorageVector};

/// Largest reconciliation message, in bytes (negentropy's frame size limit).
pub const MAX_MESSAGE: u64 = 64 * 1024;

/// One record version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    /// The record id (GUID bytes).
    pub id: [u8; 16],
    /// The record version.
    pub version: u32,
}

impl ItemKey {
    fn to_id(self) -> Id {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.id);
        bytes[16..20].copy_from_slice(&self.version.to_be_bytes());
        Id::from_byte_array(bytes)
    }

    fn from_id(id: &Id) -> Self {
        let b = id.as_bytes();
        let mut rid = [0u8; 16];
        rid.copy_from_slice(&b[..16]);
        ItemKey {
            id: rid,
            version: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        }
    }
}

/// A malformed or out-of-order reconciliation message.
#[derive(Debug, thiserror::Error)]
#[error("reconciliation: {0}")]
pub struct ReconcileError(String);

impl From<negentropy::Error> for ReconcileError {
    fn from(e: negentropy::Error) -> Self {
        ReconcileError(e.to_string())
    }
}

/// What one initiator round yields.
#[derive(Debug, Default)]
pub struct Round {
    /// The next message to send, or `None` when reconciliation is complete.
    pub next: Option<Vec<u8>>,
    /// Items this side has and the other lacks (send those records).
    pub have: Vec<ItemKey>,
    /// Items the other side has and this side lacks (ask for those records).
    pub need: Vec<ItemKey>,
}

/// One side of a reconciliation over a snapshot of (id, version) items.
pub struct Reconciler {
    neg: Negentropy<'static, NegentropyStorageVector>,
}

impl Reconciler {
    /// A reconciler over these items (duplicates are an error).
    pub fn new(items: impl IntoIterator<Item = ItemKey>) -> Result<Self, ReconcileError> {
        let mut storage = NegentropyStorageVector::new();
        for item in items {
            storage.insert(0, item.to_id())?;
        }
        storage.seal()?;
        Ok(Reconciler {
            neg: Negentropy::owned(storage, MAX_MESSAGE)?,
        })
    }

    /// The initiator's first message.
    pub fn initiate(&mut self) -> Result<Vec<u8>, ReconcileError> {
        Ok(self.neg.initiate()?)
    }

    /// The responder's answer to a message.
    pub fn respond(&mut self, message: &[u8]) -> Result<Vec<u8>, ReconcileError> {
        Ok(self.neg.reconcile(message)?)
    }

    /// The initiator's handling of an answer: the differences found so far and the next
    /// message, if any.
    pub fn step(&mut self, answer: &[u8]) -> Result<Round, ReconcileError> {
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = self.neg.reconcile_with_ids(answer, &mut have, &mut need)?;
        Ok(Round {
            next,
            have: have.iter().map(ItemKey::from_id).collect(),
            need: need.iter().map(ItemKey::from_id).collect(),
        })
    }
}

/// Runs a whole reconciliation in memory (for tests and benchmarks): the differences as the
/// initiator sees them, the number of round trips, and the bytes exchanged.
pub fn run_local(
    initiator: &mut Reconciler,
    responder: &mut Reconciler,
) -> Result<(Vec<ItemKey>, Vec<ItemKey>, usize, usize), ReconcileError> {
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let mut msg = initiator.initiate()?;
    let (mut rounds, mut bytes) = (0, 0);
    loop {
        rounds += 1;
        bytes += msg.len();
        let answer = responder.respond(&msg)?;
        bytes += answer.len();
        let round = initiator.step(&answer)?;
        have.extend(round.have);
        need.extend(round.need);
        match round.next {
            Some(next) => msg = next,
            None => break,
        }
    }
    have.sort();
    need.sort();
    Ok((have, need, rounds, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u32, version: u32) -> ItemKey {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        id[4..8].copy_from_slice(&i.to_be_bytes());
        ItemKey { id, version }
    }

    #[test]
    fn finds_exactly_the_differences() {
        let base: Vec<ItemKey> = (0..5000).map(|i| key(i, 1)).collect();
        let mut a = base.clone();
        let mut b = base.clone();
        a.push(key(9001, 1)); // only A
        b.push(key(9002, 1)); // only B
        a[10] = key(10, 2); // A updated record 10
        let (have, need, rounds, bytes) = run_local(
            &mut Reconciler::new(a).unwrap(),
            &mut Reconciler::new(b).unwrap(),
        )
        .unwrap();
        let mut want_have = vec![key(9001, 1), key(10, 2)];
        let mut want_need = vec![key(9002, 1), key(10, 1)];
        want_have.sort();
        want_need.sort();
        assert_eq!(have, want_have);
        assert_eq!(need, want_need);
        assert!(rounds >= 1);
        assert!(
            bytes < 5000 * 32 / 4,
            "far less than sending every id ({bytes} bytes)"
        );
    }

    #[test]
    fn equal_sets_finish_in_one_round() {
        let items: Vec<ItemKey> = (0..10_000).map(|i| key(i, 3)).collect();
        let (have, need, rounds, _) = run_local(
            &mut Reconciler::new(items.clone()).unwrap(),
            &mut Reconciler::new(items).unwrap(),
        )
        .unwrap();
        assert!(have.is_empty() && need.is_empty());
        assert_eq!(rounds, 1);
    }

    #[test]
    fn garbage_messages_are_errors_not_panics() {
        let mut r = Reconciler::new((0..100).map(|i| key(i, 1))).unwrap();
        for junk in [&b""[..], b"\x00", b"\x61\xff\xff\xff", &[0x61; 300]] {
            let _ = r.respond(junk);
        }
    }

    proptest! {
        #[test]
        fn any_two_sets_reconcile(a in proptest::collection::btree_set((0u32..400, 1u32..3), 0..200),
                                  b in proptest::collection::btree_set((0u32..400, 1u32..3), 0..200)) {
            let a: Vec<ItemKey> = a.into_iter().map(|(i, v)| key(i, v)).collect();
            let b: Vec<ItemKey> = b.into_iter().map(|(i, v)| key(i, v)).collect();
            let (have, need, _, _) = run_local(&mut Reconciler::new(a.clone()).unwrap(), &mut Reconciler::new(b.clone()).unwrap()).unwrap();
            let mut want_have: Vec<ItemKey> = a.iter().filter(|k| !b.contains(k)).copied().collect();
            let mut want_need: Vec<ItemKey> = b.iter().filter(|k| !a.contains(k)).copied().collect();
            want_have.sort();
            want_need.sort();
            prop_assert_eq!(have, want_have);
            prop_assert_eq!(need, want_need);
        }
    }
}
