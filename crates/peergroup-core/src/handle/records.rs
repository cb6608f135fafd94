//! The record calls (`PeerGroupAddRecord` … `PeerGroupSearchRecords`): each change is signed
//! and stored here durably (off the async workers), then flooded to the group when it is
//! online, else reconciled at the next connection.

use std::sync::MutexGuard;

use crate::group::LocalGroup;
use crate::state::{lock, GroupState};

use crate::error::{AuthorizationError, CoreError, ExpirationError, RecordError, Result};
use crate::identity::gmc::Role;
use crate::records::attributes::Attributes;
use crate::records::record::{derive_id, Record};
use crate::records::search::Criteria;
use crate::records::store::index_rows;
use crate::records::store::RecordStore;
use crate::records::view::is_reserved_type;

use crate::values::NewRecord;

/// A fresh id nonce from the system's secure random generator (the record id is derived
/// from it: [`crate::records::record::derive_id`]).
pub(crate) fn new_id_nonce() -> Result<[u8; 16]> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut nonce = [0u8; 16];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CoreError::Protocol("the system random generator failed".into()))?;
    Ok(nonce)
}

/// The rights rule of `PeerGroupUpdateRecord` and `PeerGroupDeleteRecord`: the record's
/// creator, or any administrator.
fn may_modify(me: &str, admin: bool, record: &Record) -> bool {
    admin || record.creator == me
}

/// The record calls (`PeerGroup*Record*`): each change is stored here durably, then flooded
/// to the group when it is online (else reconciled at the next connection).
impl LocalGroup {
    /// The state, checked for a live handle and a synchronised member
    /// (`PEER_E_GROUP_NOT_READY` before the first synchronisation).
    pub(crate) fn ready(&self) -> Result<MutexGuard<'_, GroupState>> {
        let st = self.live()?;
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        Ok(st)
    }

    pub(crate) fn with_records<T>(
        &self,
        f: impl FnOnce(&mut RecordStore) -> Result<T>,
    ) -> Result<T> {
        self.inner.with_records(f)
    }

    pub(crate) fn write_records<T>(
        &self,
        f: impl FnOnce(&mut RecordStore) -> Result<T>,
    ) -> Result<T> {
        self.inner.write_records(f)
    }

    /// `PeerGroupAddRecord`: signs and stores a new record of this member; returns its id.
    /// Errors: `PEER_E_GROUP_NOT_READY` before synchronisation, `PEER_E_NOT_AUTHORIZED` for a
    /// reserved type, `PEER_E_INVALID_RECORD_EXPIRATION` for an expiration not in the future,
    /// `PEER_E_INVALID_ATTRIBUTES`/`PEER_E_TOO_MANY_ATTRIBUTES`, `PEER_E_MAX_RECORD_SIZE_EXCEEDED`.
    pub fn add_record(&self, new: NewRecord) -> Result<[u8; 16]> {
        Ok(self.add_records(vec![new])?[0])
    }

    /// [`LocalGroup::add_record`] of many records in one durable transaction (one disk sync
    /// for the batch, where `add_record` syncs each): all are stored, or, when one is refused
    /// with its error, none. Returns the ids in order. Not a Windows call; what a program
    /// loading many records at once wants.
    pub fn add_records(&self, batch: Vec<NewRecord>) -> Result<Vec<[u8; 16]>> {
        let st = self.ready()?;
        let now = crate::clock::unix_now_ms();
        let me = self.inner.key.0.to_string();
        let mut rows = Vec::with_capacity(batch.len());
        for new in batch {
            if is_reserved_type(&new.record_type) {
                return Err(AuthorizationError::ReservedType.into());
            }
            if new.expires_ms <= now {
                return Err(RecordError::Expiration(ExpirationError::NotInTheFuture {
                    expires: new.expires_ms,
                    now,
                })
                .into());
            }
            let attributes = Attributes::parse(&new.attributes)?;
            let id_nonce = new_id_nonce()?;
            let mut record = Record {
                record_type: new.record_type,
                id: derive_id(&me, &new.record_type, now, &id_nonce),
                id_nonce,
                version: 1,
                flags: 0,
                creator: me.clone(),
                modifier: me.clone(),
                attributes: new.attributes,
                created: now,
                expires: new.expires_ms,
                modified: now,
                data: new.data,
                security: Vec::new(),
            };
            record.sign(self.inner.identity.private_key(), &st.chain)?;
            rows.push((record, index_rows(&attributes)));
        }
        self.write_records(|db| db.put_many(&rows))?;
        drop(st);
        let records: Vec<Record> = rows.into_iter().map(|(r, _)| r).collect();
        let ids = records.iter().map(|r| r.id).collect();
        self.publish_local(&records);
        Ok(ids)
    }

    /// The live stored record `id` that this member may modify (its creator, or an admin).
    fn modifiable(&self, st: &GroupState, id: &[u8; 16], now: i64) -> Result<Record> {
        let old = self.with_records(|db| db.get_live(id, now))?;
        let me = self.inner.key.0.to_string();
        if !may_modify(&me, st.member.has_role(Role::Admin), &old) {
            return Err(AuthorizationError::NotCreatorOrAdmin { modifier: me }.into());
        }
        Ok(old)
    }

    /// `PeerGroupUpdateRecord`: new attributes, expiration and data for record `id`, as its
    /// next version, modified and signed by this member. Errors: `PEER_E_RECORD_NOT_FOUND`
    /// (absent, deleted or expired), `PEER_E_NOT_AUTHORIZED` (neither creator nor admin),
    /// `PEER_E_INVALID_RECORD_EXPIRATION` (earlier than the stored expiration), and those of
    /// [`LocalGroup::add_record`] for the attributes and the size.
    pub fn update_record(
        &self,
        id: &[u8; 16],
        attributes: &str,
        expires_ms: i64,
        data: Vec<u8>,
    ) -> Result<()> {
        let st = self.ready()?;
        let now = crate::clock::unix_now_ms();
        let old = self.modifiable(&st, id, now)?;
        if expires_ms < old.expires {
            return Err(RecordError::Expiration(ExpirationError::Shortened {
                expires: expires_ms,
                stored: old.expires,
            })
            .into());
        }
        let parsed = Attributes::parse(attributes)?;
        let version = old
            .version
            .checked_add(1)
            .ok_or(RecordError::NoNextVersion)?;
        let mut record = Record {
            version,
            modifier: self.inner.key.0.to_string(),
            attributes: attributes.to_owned(),
            expires: expires_ms,
            modified: now,
            data,
            security: Vec::new(),
            ..old
        };
        record.sign(self.inner.identity.private_key(), &st.chain)?;
        self.write_records(|db| db.put_with_attributes(&record, &index_rows(&parsed)))?;
        drop(st);
        self.publish_local(std::slice::from_ref(&record));
        Ok(())
    }

    /// `PeerGroupDeleteRecord`: stores the signed tombstone of record `id`, which floods
    /// like any version and outlives every copy of the record. Same errors and rights as [`LocalGroup::update_record`].
    pub fn delete_record(&self, id: &[u8; 16]) -> Result<()> {
        let st = self.ready()?;
        let now = crate::clock::unix_now_ms();
        let old = self.modifiable(&st, id, now)?;
        let mut tombstone = old.tombstone(&self.inner.key.0.to_string(), now);
        tombstone.sign(self.inner.identity.private_key(), &st.chain)?;
        self.write_records(|db| db.put(&tombstone))?;
        drop(st);
        self.publish_local(std::slice::from_ref(&tombstone));
        Ok(())
    }

    /// Hands records stored here by this process (added, updated, deleted, imported) to the
    /// running group, which floods them to its neighbours and reports them as record events.
    /// Does nothing while the group is offline: the next connection reconciles them.
    pub(crate) fn publish_local(&self, records: &[Record]) {
        let driver = lock(&self.inner.state).driver.clone();
        if let Some(d) = driver {
            d.local_records(records.to_vec());
        }
    }

    /// `PeerGroupGetRecord`: the live record `id` (`PEER_E_RECORD_NOT_FOUND` when it is
    /// absent, deleted or expired).
    pub fn get_record(&self, id: &[u8; 16]) -> Result<Record> {
        let _st = self.ready()?;
        self.with_records(|db| db.get_live(id, crate::clock::unix_now_ms()))
    }

    /// How many live records the group holds here (what `PeerGroupEnumRecords` of every type
    /// would list), without reading them.
    pub fn record_count(&self) -> Result<u64> {
        let _st = self.ready()?;
        let now = crate::clock::unix_now_ms();
        self.with_records(|db| {
            let mut reserved = 0;
            for t in [
                crate::members::MEMBER_DATA_TYPE,
                crate::members::PRESENCE_TYPE,
            ] {
                reserved += db.list(Some(t), now)?.len() as u64;
            }
            Ok(db.count_live(now)?.saturating_sub(reserved))
        })
    }

    /// `PeerGroupEnumRecords`: the live records of `record_type` (`None`: every type), by id.
    /// The library's own member records (reserved types) are listed only when asked for by
    /// type.
    pub fn enum_records(&self, record_type: Option<[u8; 16]>) -> Result<Vec<Record>> {
        let _st = self.ready()?;
        let mut all = self.with_records(|db| db.list(record_type, crate::clock::unix_now_ms()))?;
        if record_type.is_none() {
            all.retain(|r| !is_reserved_type(&r.record_type));
        }
        Ok(all)
    }

    /// `PeerGroupSearchRecords`: the live records that match `criteria` (a `<peersearch>`
    /// document), by id. `PEER_E_INVALID_SEARCH`, or `E_INVALIDARG` for a bad escape.
    pub fn search_records(&self, criteria: &str) -> Result<Vec<Record>> {
        let _st = self.ready()?;
        let criteria = Criteria::parse(criteria)?;
        let mut found =
            self.with_records(|db| db.search(&criteria, crate::clock::unix_now_ms()))?;
        found.retain(|r| !is_reserved_type(&r.record_type));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::view::is_reserved_type;

    fn record_by(creator: &str) -> Record {
        Record {
            record_type: [1; 16],
            id: [2; 16],
            id_nonce: [0; 16],
            version: 1,
            flags: 0,
            creator: creator.into(),
            modifier: creator.into(),
            attributes: String::new(),
            created: 1,
            expires: 2,
            modified: 1,
            data: Vec::new(),
            security: Vec::new(),
        }
    }

    #[test]
    fn only_the_creator_or_an_admin_modifies_a_record() {
        let r = record_by("alice");
        assert!(may_modify("alice", false, &r), "the creator");
        assert!(may_modify("carol", true, &r), "an administrator");
        assert!(!may_modify("bob", false, &r), "another member");
    }

    #[test]
    fn record_ids_are_version_8_distinct_and_never_reserved() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let id = derive_id("alice", &[1; 16], 5, &new_id_nonce().unwrap());
            assert!(seen.insert(id));
            assert_eq!(id[7] >> 4, 8);
            assert_eq!(id[8] & 0xc0, 0x80);
            assert!(!is_reserved_type(&id));
        }
    }
}
