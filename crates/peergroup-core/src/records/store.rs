//! The durable record database of one group for one member: SQLite (bundled) in one file.
//!
//! **Durability.** The file is opened in WAL journal mode with `synchronous=FULL` (and a WAL
//! checkpoint every 10 000 pages rather than 1 000, so that a joiner storing a large group
//! copies hot index pages into the main file less often): every
//! change is one transaction, and a transaction that committed has reached the disk (the WAL
//! is fsynced at each commit) before [`RecordStore::put`] returns `Ok`. A `kill -9` or a
//! power cut afterwards therefore loses nothing that was acknowledged; one during a put loses
//! only that put, which never returned. [`RecordStore::close`] checkpoints the WAL into the
//! main file; dropping the store without it is safe too (the next open replays the WAL).
//!
//! **Schema** (`PRAGMA user_version` = [`SCHEMA_VERSION`]):
//!
//! ```text
//! records(id BLOB PRIMARY KEY, type BLOB, version INTEGER, flags INTEGER, creator TEXT,
//!         modifier TEXT, created INTEGER, expires INTEGER, modified INTEGER, encoded BLOB,
//!         digest BLOB)
//!   index records_type(type),
//!         records_items(expires, id, version, digest) (covers the reconciliation items, and
//!         serves expiry: it starts with `expires`)
//! attributes(record_id BLOB → records(id) ON DELETE CASCADE, name TEXT, type TEXT, value)
//!   index attributes_name_value(name COLLATE NOCASE, value), attributes_record(record_id)
//! ```
//!
//! `encoded` is [`Record::encode`]: the record as it was signed, the only column records
//! are read back from; `digest` is the reconciliation digest of `encoded`
//! ([`crate::reconcile::digest_of`]), so that listing items reads no record; the others are
//! copies for indexes and queries. The attribute rows are whatever the caller
//! indexed with [`RecordStore::put_with_attributes`]; tombstones have none.
//!
//! Schema 2 had, besides, an index `records_expires(expires)`, which `records_items` makes
//! redundant and which cost every stored record one more random index insertion; opening a
//! schema 2 database drops it and marks the file schema 3 (nothing else differs).
//!
//! Attribute names compare without regard to ASCII case (as search looks them up), hence the
//! `NOCASE` name column of the index; a database made before that gets its index rebuilt on
//! open. [`RecordStore::search`] narrows a search through it (`records::query`).
//!
//! The store does not verify signatures or rights: its callers do ([`Record::verify`]) before
//! anything reaches it. It enforces the field rules ([`Record::check`]) and the conflict order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::record::{Record, FLAG_DELETED};
use super::search::Criteria;
use crate::error::{CoreError, Result};
use crate::reconcile::{digest_of, ItemKey, DIGEST_BYTES};

/// The schema this version writes and reads.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id BLOB PRIMARY KEY NOT NULL,
    type BLOB NOT NULL,
    version INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    creator TEXT NOT NULL,
    modifier TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    digest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_type ON records(type);
CREATE INDEX IF NOT EXISTS records_items ON records(expires, id, version, digest);
CREATE TABLE IF NOT EXISTS attributes (
    record_id BLOB NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    value
);
CREATE INDEX IF NOT EXISTS attributes_name_value ON attributes(name COLLATE NOCASE, value);
CREATE INDEX IF NOT EXISTS attributes_record ON attributes(record_id);
";

pub use crate::port::PutOutcome;

/// The records expired at `?1` (what [`RecordStore::expire`] removes).
const EXPIRED: &str = "SELECT encoded FROM records WHERE expires <= ?1";

/// A typed attribute value as indexed for search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexValue {
    /// An `int` or `date` attribute (dates as ms since the Unix epoch).
    Integer(i64),
    /// A `string` attribute.
    Text(String),
}

/// One attribute row of a record, for the search index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedAttribute {
    /// The attribute name.
    pub name: String,
    /// Its type as the XML names it (`string`, `int`, `date`).
    pub type_name: String,
    /// Its value.
    pub value: IndexValue,
}

/// The record database in one SQLite file.
#[derive(Debug)]
pub struct RecordStore {
    conn: Connection,
    path: PathBuf,
}

/// Creates the database file owner-only (0600) before SQLite does (it would make it 0644,
/// and its WAL and shared-memory files copy the database's mode), and tightens a file left
/// readable by others by an older version: it holds the group's records.
fn owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| CoreError::Database(format!("{}: {e}", path.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_MODE)
        .open(path)
        .map_err(failed)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_MODE))
                    .map_err(failed)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}

/// The mode of the database and its WAL files: the owner's only.
pub const PRIVATE_MODE: u32 = 0o600;

fn db(e: rusqlite::Error) -> CoreError {
    CoreError::Database(e.to_string())
}

impl RecordStore {
    /// Opens the database at `path`, creating it (and its schema) if missing. WAL mode and
    /// `synchronous=FULL` (module documentation). A file with a newer schema, or that is not
    /// a database, is [`CoreError::Database`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        owner_only(&path)?;
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CoreError::Database(format!(
                "journal mode {mode} instead of WAL"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=10000;",
        )
        .map_err(db)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(CoreError::Database(format!(
                "{} has schema {version}, newer than {SCHEMA_VERSION}",
                path.display()
            )));
        }
        if version == 1 {
            // Schema 1 held format-1 records (ids not bound to their creator), which no
            // member accepts any more: there is nothing to migrate.
            return Err(CoreError::Database(format!(
                "{} has schema {version} of a development version; remove it and let the \
                 group resynchronise",
                path.display()
            )));
        }
        // An index on the names as stored (case-sensitive) cannot serve search: rebuild it.
        let stale_index: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'index' \
                 AND name = 'attributes_name_value' AND sql NOT LIKE '%NOCASE%')",
                [],
                |row| row.get(0),
            )
            .map_err(db)?;
        let drop_stale = if stale_index {
            "DROP INDEX IF EXISTS attributes_name_value;"
        } else {
            ""
        };
        // Schema 2 → 3: only the redundant index goes.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {drop_stale} DROP INDEX IF EXISTS records_expires; {SCHEMA} \
             PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(db)?;
        Ok(RecordStore { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`RecordStore::put_with_attributes`] with no attribute rows.
    pub fn put(&mut self, record: &Record) -> Result<PutOutcome> {
        self.put_with_attributes(record, &[])
    }

    /// Stores `record` if no version of it is stored or it wins the conflict order
    /// ([`Record::wins_over`]) over the stored one, with `attributes` as its search rows
    /// (ignored for a tombstone), in one durable transaction. Check and comparison happen
    /// inside the transaction, so concurrent puts of one record cannot both win. A record
    /// that fails [`Record::check`] changes nothing.
    pub fn put_with_attributes(
        &mut self,
        record: &Record,
        attributes: &[IndexedAttribute],
    ) -> Result<PutOutcome> {
        record.check()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let outcome = put_in(&tx, &self.path, record, attributes)?;
        if outcome != PutOutcome::Ignored {
            tx.commit().map_err(db)?;
        }
        Ok(outcome)
    }

    /// Stores every (record, attribute rows) pair as [`RecordStore::put_with_attributes`]
    /// would, in order, in **one** durable transaction: all or nothing. Every record is
    /// checked ([`Record::check`]) before anything is written, and any failure rolls the
    /// whole batch back. Returns each pair's outcome, in order.
    pub fn put_many(
        &mut self,
        batch: &[(Record, Vec<IndexedAttribute>)],
    ) -> Result<Vec<PutOutcome>> {
        for (record, _) in batch {
            record.check()?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (r, attributes) in batch {
            outcomes.push(put_in(&tx, &self.path, r, attributes)?);
        }
        tx.commit().map_err(db)?;
        Ok(outcomes)
    }

    /// The reconciliation items of every version that has not expired at `now_ms`,
    /// tombstones included.
    pub fn items(&self, now_ms: i64) -> Result<Vec<ItemKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, version, digest FROM records WHERE expires > ?1")
            .map_err(db)?;
        let rows = stmt
            .query_map([now_ms], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, version, digest) = row.map_err(db)?;
            out.push(ItemKey {
                id: self.array(id)?,
                version,
                digest: self.array(digest)?,
            });
        }
        Ok(out)
    }

    /// The version and digest stored for `id`, expired or not.
    pub fn held(&self, id: &[u8; 16]) -> Result<Option<(u32, [u8; DIGEST_BYTES])>> {
        let row: Option<(u32, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT version, digest FROM records WHERE id = ?1")
            .map_err(db)?
            .query_row([&id[..]], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(db)?;
        row.map(|(v, d)| Ok((v, self.array(d)?))).transpose()
    }

    /// The canonical encodings of the stored versions of `ids` not expired at `now_ms`.
    pub fn encodings(&self, ids: &[[u8; 16]], now_ms: i64) -> Result<Vec<Option<Vec<u8>>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT encoded FROM records WHERE id = ?1 AND expires > ?2")
            .map_err(db)?;
        ids.iter()
            .map(|id| {
                stmt.query_row(params![&id[..], now_ms], |row| row.get(0))
                    .optional()
                    .map_err(db)
            })
            .collect()
    }

    fn array<const N: usize>(&self, bytes: Vec<u8>) -> Result<[u8; N]> {
        bytes.try_into().map_err(|_| CoreError::StoreCorrupted {
            path: self.path.display().to_string(),
            why: format!("a column is not {N} bytes"),
        })
    }
}

/// One put inside the caller's transaction: the conflict order against the stored version,
/// then the record (with its digest) and, unless it is a tombstone, its attribute rows.
/// `record` is checked.
fn put_in(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    record: &Record,
    attributes: &[IndexedAttribute],
) -> Result<PutOutcome> {
    let encoded = record.encode();
    let stored: Option<Vec<u8>> = tx
        .prepare_cached("SELECT encoded FROM records WHERE id = ?1")
        .map_err(db)?
        .query_row([&record.id[..]], |row| row.get(0))
        .optional()
        .map_err(db)?;
    let outcome = match stored {
        None => PutOutcome::Inserted,
        Some(bytes) => {
            let old = decode_stored(path, &bytes)?;
            if !record.wins_over(&old) {
                return Ok(PutOutcome::Ignored);
            }
            tx.prepare_cached("DELETE FROM records WHERE id = ?1")
                .map_err(db)?
                .execute([&record.id[..]])
                .map_err(db)?;
            PutOutcome::Replaced
        }
    };
    tx.prepare_cached(
        "INSERT INTO records (id, type, version, flags, creator, modifier, created, \
         expires, modified, encoded, digest) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .map_err(db)?
    .execute(params![
        &record.id[..],
        &record.record_type[..],
        record.version,
        record.flags,
        record.creator,
        record.modifier,
        record.created,
        record.expires,
        record.modified,
        &encoded,
        &digest_of(&encoded)[..],
    ])
    .map_err(db)?;
    if !record.is_deleted() {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO attributes (record_id, name, type, value) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db)?;
        for a in attributes {
            let value = match &a.value {
                IndexValue::Integer(i) => rusqlite::types::Value::Integer(*i),
                IndexValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
            };
            insert
                .execute(params![&record.id[..], a.name, a.type_name, value])
                .map_err(db)?;
        }
    }
    Ok(outcome)
}

impl RecordStore {
    /// The stored version of record `id`, tombstone or expired included (what replication
    /// holds); [`CoreError::RecordNotFound`] if there is none.
    pub fn get(&self, id: &[u8; 16]) -> Result<Record> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT encoded FROM records WHERE id = ?1",
                [&id[..]],
                |row| row.get(0),
            )
            .optional()
            .map_err(db)?;
        match bytes {
            Some(bytes) => decode_stored(&self.path, &bytes),
            None => Err(CoreError::RecordNotFound),
        }
    }

    /// Record `id` as `PeerGroupGetRecord` sees it: [`CoreError::RecordNotFound`] also when
    /// the stored version is a tombstone or has expired at `now_ms`.
    pub fn get_live(&self, id: &[u8; 16], now_ms: i64) -> Result<Record> {
        let record = self.get(id)?;
        if record.is_deleted() || record.is_expired(now_ms) {
            return Err(CoreError::RecordNotFound);
        }
        Ok(record)
    }

    /// The live records (not tombstones, not expired at `now_ms`), of `record_type` or of
    /// every type, ordered by id.
    pub fn list(&self, record_type: Option<[u8; 16]>, now_ms: i64) -> Result<Vec<Record>> {
        match record_type {
            Some(t) => self.query(
                "SELECT encoded FROM records WHERE type = ?1 AND flags & ?2 = 0 \
                 AND expires > ?3 ORDER BY id",
                params![&t[..], FLAG_DELETED, now_ms],
            ),
            None => self.query(
                "SELECT encoded FROM records WHERE flags & ?1 = 0 AND expires > ?2 \
                 ORDER BY id",
                params![FLAG_DELETED, now_ms],
            ),
        }
    }

    /// The live records at `now_ms` that match `criteria`, ordered by id: the candidates the
    /// attribute index offers for the clauses it can serve ([`super::query::candidates`]),
    /// then [`Criteria::matches`] on each, so the answer is exactly that of a full scan.
    pub fn search(&self, criteria: &Criteria, now_ms: i64) -> Result<Vec<Record>> {
        let (sql, params) = super::query::candidates(criteria, now_ms);
        let candidates = self.query(&sql, rusqlite::params_from_iter(params))?;
        Ok(super::query::filter_exact(criteria, candidates))
    }

    /// SQLite's plan for [`RecordStore::search`]'s candidate query (`EXPLAIN QUERY PLAN`,
    /// one detail line per step): which indexes a search uses, for tests and diagnostics.
    pub fn explain_search(&self, criteria: &Criteria, now_ms: i64) -> Result<Vec<String>> {
        let (sql, params) = super::query::candidates(criteria, now_ms);
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(db)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(3)
            })
            .map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
    }

    /// The tombstones held, ordered by id.
    pub fn tombstones(&self) -> Result<Vec<Record>> {
        self.query(
            "SELECT encoded FROM records WHERE flags & ?1 != 0 ORDER BY id",
            params![FLAG_DELETED],
        )
    }

    /// Removes every record and tombstone expired at `now_ms` (`expires <= now_ms`), in one
    /// transaction, and returns them ordered by id (for `PEER_RECORD_EXPIRED` events).
    pub fn expire(&mut self, now_ms: i64) -> Result<Vec<Record>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let gone = {
            // Sorted here, not by SQL: ordered by id, SQLite would scan every record in id
            // order rather than find the few expired ones through `records_items`.
            let mut stmt = tx.prepare_cached(EXPIRED).map_err(db)?;
            let rows = stmt
                .query_map([now_ms], |row| row.get::<_, Vec<u8>>(0))
                .map_err(db)?;
            let mut gone = Vec::new();
            for bytes in rows {
                gone.push(decode_stored(&self.path, &bytes.map_err(db)?)?);
            }
            gone.sort_by_key(|r: &Record| r.id);
            gone
        };
        if !gone.is_empty() {
            tx.execute("DELETE FROM records WHERE expires <= ?1", [now_ms])
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(gone)
    }

    /// Every stored (id, version), tombstones and not yet removed expired records included,
    /// ordered by id bytes: the input of reconciliation.
    pub fn ids_versions(&self) -> Result<Vec<([u8; 16], u32)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, version FROM records ORDER BY id")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, u32>(1)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, version) = row.map_err(db)?;
            let id: [u8; 16] = id.try_into().map_err(|_| CoreError::StoreCorrupted {
                path: self.path.display().to_string(),
                why: "a record id is not 16 bytes".into(),
            })?;
            out.push((id, version));
        }
        Ok(out)
    }

    /// How many live records there are (not tombstones, not expired at `now_ms`).
    pub fn count_live(&self, now_ms: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM records WHERE flags & ?1 = 0 AND expires > ?2",
                params![FLAG_DELETED, now_ms],
                |row| row.get(0),
            )
            .map_err(db)
    }

    /// How many records are stored, tombstones and not yet removed expired ones included.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            .map_err(db)
    }

    /// Checkpoints the WAL into the database file and closes it.
    pub fn close(self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(db)?;
        self.conn.close().map_err(|(_, e)| db(e))
    }

    fn query(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Record>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt
            .query_map(params, |row| row.get::<_, Vec<u8>>(0))
            .map_err(db)?;
        let mut out = Vec::new();
        for bytes in rows {
            out.push(decode_stored(&self.path, &bytes.map_err(db)?)?);
        }
        Ok(out)
    }
}

fn decode_stored(path: &Path, bytes: &[u8]) -> Result<Record> {
    Record::decode(bytes).map_err(|e| CoreError::StoreCorrupted {
        path: path.display().to_string(),
        why: format!("stored record: {e}"),
    })
}

/// The search index rows of parsed attributes: ints as integers, dates as ms since the Unix
/// epoch, strings as text.
pub fn index_rows(attributes: &super::attributes::Attributes) -> Vec<IndexedAttribute> {
    use super::attributes::AttrValue;
    use super::view::timestamp_ms;
    attributes
        .iter()
        .map(|a| IndexedAttribute {
            name: a.name.clone(),
            type_name: a.value.attr_type().as_str().to_owned(),
            value: match &a.value {
                AttrValue::String(s) => IndexValue::Text(s.clone()),
                AttrValue::Int(i) => IndexValue::Integer(*i),
                AttrValue::Date(t) => IndexValue::Integer(timestamp_ms(*t)),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
