//! `PeerGroupExportDatabase` and `PeerGroupImportDatabase`: the record database to and from
//! a file, only while the group is offline.

use std::sync::MutexGuard;

use crate::group::LocalGroup;
use crate::state::GroupState;

use crate::error::{CoreError, Result};
use crate::records::attributes::Attributes;
use crate::records::record::Record;
use crate::records::store::index_rows;

use crate::values::{DatabaseProgress, DatabaseStage};

/// `PeerGroupExportDatabase` and `PeerGroupImportDatabase` (file format and rules:
/// [`crate::records::dbfile`]).
impl LocalGroup {
    /// The state, checked for a live handle of a group that is not online: the database
    /// calls are refused once the group connected (`PEER_E_GROUP_IN_USE`).
    fn offline(&self, what: &str) -> Result<MutexGuard<'_, GroupState>> {
        let st = self.live()?;
        if st.driver.is_some() {
            return Err(CoreError::GroupInUse(format!(
                "{what} is only allowed before the group connects"
            )));
        }
        Ok(st)
    }

    /// `PeerGroupExportDatabase`: writes this member's tombstones and live records (not the
    /// expired ones) to `path`, atomically; returns how many. `PEER_E_GROUP_IN_USE` once the
    /// group is online; file-system errors as Windows reports them.
    pub fn export_database(&self, path: &std::path::Path) -> Result<u64> {
        self.export_database_with(path, |_| {})
    }

    /// [`LocalGroup::export_database`], telling `progress` how far it got.
    pub fn export_database_with(
        &self,
        path: &std::path::Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        let _st = self.offline("database export")?;
        progress(DatabaseProgress {
            stage: DatabaseStage::Reading,
            done: 0,
            total: 0,
        });
        let now = crate::clock::unix_now_ms();
        let mut records = self.with_records(|db| {
            let mut all = db.list(None, now)?;
            all.extend(db.tombstones()?.into_iter().filter(|t| !t.is_expired(now)));
            Ok(all)
        })?;
        records.sort_by_key(|r| r.id);
        let total = records.len() as u64;
        progress(DatabaseProgress {
            stage: DatabaseStage::Writing,
            done: 0,
            total,
        });
        crate::blocking::off_the_workers(|| {
            crate::records::file::write(
                path,
                &self.inner.key.1.to_string(),
                &self.inner.key.0.to_string(),
                &records,
            )
        })?;
        progress(DatabaseProgress {
            stage: DatabaseStage::Writing,
            done: total,
            total,
        });
        Ok(total)
    }

    /// `PeerGroupImportDatabase`: stores the records of a file [`LocalGroup::export_database`]
    /// wrote for this group and member, each under the conflict order, in one transaction;
    /// returns how many changed the database. The file must be intact, of this group and
    /// member, and every record must verify; else nothing changes (`PEER_E_INVALID_DATABASE`,
    /// or the failing record's error). Expired records are skipped. `PEER_E_GROUP_IN_USE`
    /// once the group is online.
    pub fn import_database(&self, path: &std::path::Path) -> Result<u64> {
        self.import_database_with(path, |_| {})
    }

    /// [`LocalGroup::import_database`], telling `progress` how far it got: reading the
    /// file, verifying each record (the long part), storing them in one transaction.
    pub fn import_database_with(
        &self,
        path: &std::path::Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        let st = self.offline("database import")?;
        let now = crate::clock::unix_now_ms();
        progress(DatabaseProgress {
            stage: DatabaseStage::Reading,
            done: 0,
            total: 0,
        });
        let records = crate::records::file::read(path)?.records_to_import_with(
            &self.inner.key.1.to_string(),
            &self.inner.key.0.to_string(),
            &self.inner.grc,
            now,
            &mut |done, total| {
                progress(DatabaseProgress {
                    stage: DatabaseStage::Verifying,
                    done,
                    total,
                })
            },
        )?;
        let total = records.len() as u64;
        progress(DatabaseProgress {
            stage: DatabaseStage::Storing,
            done: 0,
            total,
        });
        let batch = records
            .into_iter()
            .map(|r| {
                let rows = if r.is_deleted() {
                    Vec::new()
                } else {
                    index_rows(&Attributes::parse(&r.attributes)?)
                };
                Ok((r, rows))
            })
            .collect::<Result<Vec<_>>>()?;
        let outcomes = self.write_records(|db| db.put_many(&batch))?;
        drop(st);
        progress(DatabaseProgress {
            stage: DatabaseStage::Storing,
            done: total,
            total,
        });
        let changed: Vec<Record> = batch
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| *o != crate::records::store::PutOutcome::Ignored)
            .map(|((r, _), _)| r)
            .collect();
        self.publish_local(&changed);
        Ok(changed.len() as u64)
    }
}
