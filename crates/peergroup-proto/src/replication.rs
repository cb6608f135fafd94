//! Record replication, the part of the group machine that keeps every member's database
//! the same: flooding, reconciliation on every connection, and pulling what is missing.
//!
//! - **Flooding.** A record stored here by the application ([`crate::io::Input::LocalRecords`])
//!   goes to every neighbour at once as [`Message::Record`]. A member that receives one
//!   verifies it, stores it, and forwards it to its other neighbours only when it was new
//!   (stored, not ignored), so each member forwards each version once and the flood dies out.
//! - **Reconciliation.** When a neighbour connection is up, the side with the smaller node id
//!   runs a range-based set reconciliation ([`crate::reconcile`]) over both sides' items
//!   `(id, version, digest)`. The initiator offers what the responder lacks
//!   ([`Message::Offer`]) and requests what it lacks itself; the responder requests what it
//!   was offered. A member that learned records this way reconciles with its other
//!   neighbours in turn (a wave that costs one round per connection where nothing differs),
//!   and every [`Config::anti_entropy_interval`](crate::machine::Config) each member
//!   reconciles with one random neighbour, so even a lost message heals.
//! - **Pulling.** Records move only when the receiver asks ([`Message::Request`], at most
//!   [`MAX_REQUEST_IDS`] ids, at most [`REQUEST_WINDOW`] requests outstanding per
//!   connection), so a late joiner syncing 100k records never floods a send queue. Pulled
//!   records are verified as they arrive and stored [`PULL_BATCH`] at a time, in one
//!   transaction (what costs a database is mostly the index pages each transaction rewrites,
//!   so fewer, larger transactions store a large group faster); a smaller batch is stored
//!   as soon as no request is outstanding any more, or [`PULL_FLUSH_MS`] after it began.
//!   Nothing waits on a pulled record before it is stored: no one was told it is held.
//!
//! **Limit.** Nothing times out a reconciliation or a request: a neighbour that stops
//! answering (but keeps its connection up) stalls replication with itself, and the ids
//! requested from it are not asked of others, until the connection ends (the transport's
//! idle timeout, or a close). Anti-entropy with the other neighbours is not affected.
//!
//! Storage and verification are the [`RecordPort`] the host gives the machine: SQLite and
//! real signatures in the driver, memory (and the same signatures) in the simulator. The
//! machine calls it synchronously; it never does I/O of its own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::io::{ConnId, GroupEvent, Millis, Output, Persist, RecordChange};
use crate::port::{PutOutcome, RecordPort};
use crate::reconcile::{ItemKey, Reconciler, DIGEST_BYTES};
use crate::records::record::{ChainCache, Record};
use crate::wire::{Message, MAX_OFFER_ITEMS, MAX_RECORDS_BYTES, MAX_REQUEST_IDS};

/// Requests a member keeps outstanding on one connection.
pub const REQUEST_WINDOW: usize = 4;
/// How long after learning records by reconciliation a member reconciles with its other
/// neighbours (so that a burst of arrivals triggers one wave, not one per batch).
pub const SETTLE_MS: Millis = 50;
/// Most pulled records kept (verified, not yet stored) before they are stored together.
pub const PULL_BATCH: usize = REQUEST_WINDOW * MAX_REQUEST_IDS;
/// Longest a pulled record waits before it is stored, while more answers are expected.
pub const PULL_FLUSH_MS: Millis = 20;
/// Room kept in a [`Message::Records`] frame for its counts and the missing ids.
const RECORDS_OVERHEAD: usize = 4 + 4 + MAX_REQUEST_IDS * 16 + 64;

/// Counters of what replication did, for tests, the simulator and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationStats {
    /// Record versions stored from peers.
    pub stored: u64,
    /// Records from peers that failed verification (dropped).
    pub rejected: u64,
    /// Records from peers already held (or beaten by what is held).
    pub duplicates: u64,
    /// Reconciliations this member started.
    pub reconciliations: u64,
    /// Storage errors (the records concerned are dropped and come back by reconciliation).
    pub storage_errors: u64,
}

/// Replication state of one neighbour connection.
#[derive(Default)]
struct Session {
    /// This side's reconciliation, while it runs.
    initiator: Option<Reconciler>,
    /// The responder's snapshot while the peer reconciles with us.
    responder: Option<Reconciler>,
    /// Start another reconciliation when this one ends.
    rerun: bool,
    /// Ids to request from this peer, in order, and the same as a set.
    want: VecDeque<[u8; 16]>,
    wanted: HashSet<[u8; 16]>,
    /// Requests sent and not fully answered: ids still expected.
    outstanding: BTreeSet<[u8; 16]>,
}

/// How a record reached this member.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Flood,
    Pull,
}

/// The replication half of a group machine.
pub(crate) struct Replication {
    port: Box<dyn RecordPort>,
    sessions: BTreeMap<ConnId, Session>,
    /// Ids requested from some connection, so that one record is asked for once.
    requested: HashMap<[u8; 16], ConnId>,
    /// When to reconcile with every neighbour after learning records by pulling.
    wave_at: Option<Millis>,
    /// Pulled records that verified, waiting to be stored together ([`PULL_BATCH`]).
    pulled: Vec<Record>,
    /// When `pulled` is stored at the latest.
    flush_at: Option<Millis>,
    stats: ReplicationStats,
    /// This member's peer name: member data naming it, by someone else, is offered to the
    /// host as new credentials.
    member: String,
}

/// The event a stored change raises: `MEMBER_CHANGED` for the reserved member records
/// (or nothing), `RECORD_CHANGED` for the application's.
fn change_event(r: &Record, change: RecordChange) -> Option<GroupEvent> {
    if crate::records::view::is_reserved_type(&r.record_type) {
        return crate::members::member_event(r, change);
    }
    Some(GroupEvent::RecordChanged {
        change,
        record_type: r.record_type,
        id: r.id,
    })
}

impl Replication {
    pub(crate) fn new(port: Box<dyn RecordPort>, member: &str) -> Self {
        Replication {
            member: member.to_owned(),
            port,
            sessions: BTreeMap::new(),
            requested: HashMap::new(),
            wave_at: None,
            pulled: Vec::new(),
            flush_at: None,
            stats: ReplicationStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &ReplicationStats {
        &self.stats
    }

    pub(crate) fn port(&mut self) -> &mut dyn RecordPort {
        self.port.as_mut()
    }

    /// The next time replication wants a tick.
    pub(crate) fn timeout(&self) -> Option<Millis> {
        self.wave_at.into_iter().chain(self.flush_at).min()
    }

    /// A neighbour connection is established; `initiate` on the side with the smaller id.
    pub(crate) fn up(
        &mut self,
        conn: ConnId,
        initiate: bool,
        now: i64,
        out: &mut VecDeque<Output>,
    ) {
        self.sessions.insert(conn, Session::default());
        if initiate {
            self.start(conn, now, out);
        }
    }

    /// A neighbour connection ended: forget its sessions and requests (reconciliation with
    /// the others recovers what was still expected from it).
    pub(crate) fn down(&mut self, conn: ConnId) {
        if let Some(s) = self.sessions.remove(&conn) {
            for id in s.outstanding {
                if self.requested.get(&id) == Some(&conn) {
                    self.requested.remove(&id);
                }
            }
        }
    }

    /// Everything a member closing down drops (pulled records that verified are stored
    /// first).
    pub(crate) fn clear(&mut self, now: i64, out: &mut VecDeque<Output>) {
        self.flush(now, out);
        self.sessions.clear();
        self.requested.clear();
        self.wave_at = None;
    }

    /// Starts a reconciliation with `conn`, or marks one to follow the running one.
    pub(crate) fn start(&mut self, conn: ConnId, now: i64, out: &mut VecDeque<Output>) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.initiator.is_some() {
            session.rerun = true;
            return;
        }
        let items = match self.port.items(now) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "listing records to reconcile");
                self.stats.storage_errors += 1;
                return;
            }
        };
        let started = Reconciler::new(items).and_then(|mut r| r.initiate().map(|m| (r, m)));
        match started {
            Ok((r, first)) => {
                session.initiator = Some(r);
                self.stats.reconciliations += 1;
                out.push_back(Output::Send(conn, Message::ReconcileQuery(first)));
            }
            Err(e) => tracing::warn!(error = %e, "starting a reconciliation"),
        }
    }

    /// Timers: storing pulled records, and the reconciliation wave after them.
    pub(crate) fn tick(&mut self, now_ms: Millis, out: &mut VecDeque<Output>) {
        if self.flush_at.is_some_and(|t| t <= now_ms) {
            self.flush(now_ms as i64, out);
        }
        if self.wave_at.is_some_and(|t| t <= now_ms) {
            if self
                .sessions
                .values()
                .any(|s| !s.want.is_empty() || !s.outstanding.is_empty())
            {
                // Still pulling: reconcile once that is done, not on every batch.
                self.wave_at = Some(now_ms + SETTLE_MS);
                return;
            }
            self.wave_at = None;
            let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
            for conn in conns {
                self.start(conn, now_ms as i64, out);
            }
        }
    }

    /// Removes expired records and reports those that were live.
    pub(crate) fn expire(&mut self, now: i64, out: &mut VecDeque<Output>) {
        match self.port.expire(now) {
            Ok(gone) => {
                for r in gone.into_iter().filter(|r| !r.is_deleted()) {
                    if let Some(e) = change_event(&r, RecordChange::Expired) {
                        out.push_back(Output::Event(e));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "expiring records");
                self.stats.storage_errors += 1;
            }
        }
    }

    /// Records the application stored here: report them and flood them.
    pub(crate) fn local(&mut self, records: Vec<Record>, out: &mut VecDeque<Output>) {
        for r in records {
            let change = if r.is_deleted() {
                RecordChange::Deleted
            } else if r.version == 1 {
                RecordChange::Added
            } else {
                RecordChange::Updated
            };
            if let Some(e) = change_event(&r, change) {
                out.push_back(Output::Event(e));
            }
            let bytes = r.encode();
            for conn in self.sessions.keys() {
                out.push_back(Output::Send(*conn, Message::Record(bytes.clone())));
            }
        }
    }

    /// A replication message from a neighbour. `Err` is a protocol violation.
    pub(crate) fn message(
        &mut self,
        conn: ConnId,
        msg: Message,
        now: i64,
        out: &mut VecDeque<Output>,
    ) -> std::result::Result<(), String> {
        if !self.sessions.contains_key(&conn) {
            return Err("replication before the hello".into());
        }
        match msg {
            Message::Record(bytes) => {
                let record = Record::decode(&bytes).map_err(|e| e.to_string())?;
                let stored = self.accept(vec![record], now, Via::Flood, out);
                if stored.first().is_some_and(|s| *s) {
                    for other in self.sessions.keys() {
                        if *other != conn {
                            out.push_back(Output::Send(*other, Message::Record(bytes.clone())));
                        }
                    }
                }
            }
            Message::ReconcileQuery(query) => {
                let session = self.sessions.get_mut(&conn).expect("checked above");
                if session.responder.is_none() {
                    let items = self.port.items(now).map_err(|e| e.to_string())?;
                    session.responder = Some(Reconciler::new(items).map_err(|e| e.to_string())?);
                }
                let responder = session.responder.as_mut().expect("set above");
                let answer = responder.respond(&query).map_err(|e| e.to_string())?;
                out.push_back(Output::Send(conn, Message::ReconcileAnswer(answer)));
            }
            Message::ReconcileAnswer(answer) => {
                let session = self.sessions.get_mut(&conn).expect("checked above");
                let Some(initiator) = session.initiator.as_mut() else {
                    return Err("a reconciliation answer with no query".into());
                };
                let round = initiator.step(&answer).map_err(|e| e.to_string())?;
                for chunk in round.have.chunks(MAX_OFFER_ITEMS) {
                    out.push_back(Output::Send(
                        conn,
                        Message::Offer {
                            items: chunk.to_vec(),
                            done: false,
                        },
                    ));
                }
                match round.next {
                    Some(next) => out.push_back(Output::Send(conn, Message::ReconcileQuery(next))),
                    None => {
                        session.initiator = None;
                        out.push_back(Output::Send(
                            conn,
                            Message::Offer {
                                items: Vec::new(),
                                done: true,
                            },
                        ));
                    }
                }
                self.want(conn, &round.need);
                let rerun = {
                    let s = self.sessions.get_mut(&conn).expect("checked above");
                    s.initiator.is_none() && std::mem::take(&mut s.rerun)
                };
                if rerun {
                    self.start(conn, now, out);
                }
                self.pump(conn, out);
            }
            Message::Offer { items, done } => {
                if done {
                    self.sessions.get_mut(&conn).expect("checked").responder = None;
                }
                self.want(conn, &items);
                self.pump(conn, out);
            }
            Message::Request(ids) => {
                let encodings = self.port.encodings(&ids, now).map_err(|e| e.to_string())?;
                let mut missing = Vec::new();
                let mut batch: Vec<Vec<u8>> = Vec::new();
                let mut size = 0;
                for (id, enc) in ids.iter().zip(encodings) {
                    match enc {
                        None => missing.push(*id),
                        Some(bytes) => {
                            if !batch.is_empty()
                                && size + bytes.len() + 4 > MAX_RECORDS_BYTES - RECORDS_OVERHEAD
                            {
                                out.push_back(Output::Send(
                                    conn,
                                    Message::Records {
                                        records: std::mem::take(&mut batch),
                                        missing: Vec::new(),
                                    },
                                ));
                                size = 0;
                            }
                            size += bytes.len() + 4;
                            batch.push(bytes);
                        }
                    }
                }
                out.push_back(Output::Send(
                    conn,
                    Message::Records {
                        records: batch,
                        missing,
                    },
                ));
            }
            Message::Records { records, missing } => {
                let mut decoded = Vec::with_capacity(records.len());
                for bytes in &records {
                    decoded.push(Record::decode(bytes).map_err(|e| e.to_string())?);
                }
                {
                    let session = self.sessions.get_mut(&conn).expect("checked above");
                    for id in decoded.iter().map(|r| &r.id).chain(missing.iter()) {
                        if session.outstanding.remove(id) && self.requested.get(id) == Some(&conn) {
                            self.requested.remove(id);
                        }
                    }
                }
                self.pull(decoded, now, out);
                self.pump(conn, out);
            }
            other => return Err(format!("not a replication message: {other:?}")),
        }
        Ok(())
    }

    /// Queues for request the offered items this member lacks (or holds an older or
    /// conflicting version of).
    fn want(&mut self, conn: ConnId, items: &[ItemKey]) {
        let mut wanted = Vec::new();
        for item in items {
            if self.requested.contains_key(&item.id) {
                continue;
            }
            match self.port.held(&item.id) {
                Ok(Some((version, digest))) => {
                    if version > item.version || (version == item.version && digest == item.digest)
                    {
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "looking up a record");
                    self.stats.storage_errors += 1;
                    continue;
                }
            }
            wanted.push(item.id);
        }
        let session = self.sessions.get_mut(&conn).expect("caller checked");
        for id in wanted {
            if session.wanted.insert(id) {
                session.want.push_back(id);
            }
        }
    }

    /// Sends requests while the window allows.
    fn pump(&mut self, conn: ConnId, out: &mut VecDeque<Output>) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        while session.outstanding.len() < REQUEST_WINDOW * MAX_REQUEST_IDS
            && !session.want.is_empty()
        {
            let mut ids = Vec::with_capacity(MAX_REQUEST_IDS);
            while ids.len() < MAX_REQUEST_IDS {
                let Some(id) = session.want.pop_front() else {
                    break;
                };
                session.wanted.remove(&id);
                if self.requested.contains_key(&id) {
                    continue;
                }
                self.requested.insert(id, conn);
                session.outstanding.insert(id);
                ids.push(id);
            }
            if ids.is_empty() {
                break;
            }
            out.push_back(Output::Send(conn, Message::Request(ids)));
        }
    }

    /// Pulled records: verified now, stored with those before them when [`PULL_BATCH`] are
    /// waiting or no answer is expected any more (else at `flush_at`).
    fn pull(&mut self, records: Vec<Record>, now: i64, out: &mut VecDeque<Output>) {
        let good = self.verified(records, now, Via::Pull);
        self.pulled.extend(good.into_iter().map(|(_, r)| r));
        let expecting = self.sessions.values().any(|s| !s.outstanding.is_empty());
        if self.pulled.len() >= PULL_BATCH || !expecting {
            self.flush(now, out);
        } else if !self.pulled.is_empty() && self.flush_at.is_none() {
            self.flush_at = Some(now.max(0) as Millis + PULL_FLUSH_MS);
        }
    }

    /// Stores the pulled records waiting, in one transaction, and reports them; schedules
    /// the reconciliation wave when any was new.
    fn flush(&mut self, now: i64, out: &mut VecDeque<Output>) {
        self.flush_at = None;
        if self.pulled.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pulled);
        let stored = self.store(records.into_iter().enumerate().collect(), out);
        if stored.iter().any(|(_, s)| *s) && self.wave_at.is_none() {
            self.wave_at = Some(now.max(0) as Millis + SETTLE_MS);
        }
    }

    /// The records that verify and have not expired at `now`, with their positions; counts
    /// the others.
    fn verified(&mut self, records: Vec<Record>, now: i64, via: Via) -> Vec<(usize, Record)> {
        let checks = self.port.verify(&records, now);
        let mut good = Vec::with_capacity(records.len());
        for (i, (r, check)) in records.into_iter().zip(checks).enumerate() {
            match check {
                Ok(()) if !r.is_expired(now) => good.push((i, r)),
                Ok(()) => self.stats.duplicates += 1,
                Err(e) => {
                    tracing::info!(error = %e, via = if via == Via::Flood { "flood" } else { "pull" }, "dropping a record that does not verify");
                    self.stats.rejected += 1;
                }
            }
        }
        good
    }

    /// Verifies and stores records from a peer; reports what changed. Returns, per record,
    /// whether it was stored.
    fn accept(
        &mut self,
        records: Vec<Record>,
        now: i64,
        via: Via,
        out: &mut VecDeque<Output>,
    ) -> Vec<bool> {
        let n = records.len();
        let good = self.verified(records, now, via);
        let mut stored = vec![false; n];
        for (i, s) in self.store(good, out) {
            stored[i] = s;
        }
        stored
    }

    /// Stores verified records (with their positions) in one transaction and reports what
    /// changed; returns, per position, whether it was stored.
    fn store(
        &mut self,
        good: Vec<(usize, Record)>,
        out: &mut VecDeque<Output>,
    ) -> Vec<(usize, bool)> {
        let (index, good): (Vec<usize>, Vec<Record>) = good.into_iter().unzip();
        let mut stored: Vec<(usize, bool)> = index.iter().map(|&i| (i, false)).collect();
        if good.is_empty() {
            return stored;
        }
        let outcomes = match self.port.put(&good) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "storing records");
                self.stats.storage_errors += 1;
                return stored;
            }
        };
        for ((r, outcome), slot) in good.iter().zip(outcomes).zip(stored.iter_mut()) {
            let change = match (outcome, r.is_deleted()) {
                (PutOutcome::Ignored, _) => {
                    self.stats.duplicates += 1;
                    continue;
                }
                (PutOutcome::Inserted, true) => None,
                (PutOutcome::Inserted, false) => Some(RecordChange::Added),
                (PutOutcome::Replaced, true) => Some(RecordChange::Deleted),
                (PutOutcome::Replaced, false) => Some(RecordChange::Updated),
            };
            self.stats.stored += 1;
            slot.1 = true;
            if r.record_type == crate::members::MEMBER_DATA_TYPE
                && !r.is_deleted()
                && r.creator != self.member
                && crate::members::member_data_chain(r)
                    .is_ok_and(|c| c.leaf().peer_name().to_string() == self.member)
            {
                out.push_back(Output::Persist(Persist::Credentials(r.data.clone())));
            }
            if let Some(e) = change.and_then(|c| change_event(r, c)) {
                out.push_back(Output::Event(e));
            }
        }
        stored
    }
}

/// Verification as every member does it, with a chain cache, shared by the ports of one
/// group (and, in the simulator, by every member: the answer depends only on the record,
/// the root and the time).
#[derive(Clone)]
pub struct Verifier {
    grc: Arc<crate::identity::gmc::GroupRootCertificate>,
    cache: Arc<Mutex<ChainCache>>,
    /// SHA-256 of encodings that verified, when enabled ([`Verifier::with_memo`]).
    memo: Option<Arc<Mutex<std::collections::HashSet<[u8; 32]>>>>,
}

impl Verifier {
    /// Most encodings a memo keeps.
    pub const MEMO_CAPACITY: usize = 200_000;

    /// A verifier for the group of `grc`.
    pub fn new(grc: crate::identity::gmc::GroupRootCertificate) -> Self {
        Verifier {
            grc: Arc::new(grc),
            cache: Arc::new(Mutex::new(ChainCache::default())),
            memo: None,
        }
    }

    /// Remembers every encoding that verified, so that the same bytes verify at once the
    /// next time (only the time bound is checked again): the answer depends only on the
    /// bytes, the root and the time. The simulator shares one among a thousand members; a
    /// running group shares one between the connections' readers, which verify records as
    /// they arrive, and its machine. At most [`Verifier::MEMO_CAPACITY`] encodings are
    /// remembered (the memo empties itself when full; a miss only costs a full check).
    pub fn with_memo(mut self) -> Self {
        self.memo = Some(Arc::default());
        self
    }

    /// [`Record::verify`] of each record at `now`, one after the other on the caller's
    /// thread (a host may split a large batch over its cores: the answers do not depend on
    /// the order).
    pub fn verify(&self, records: &[Record], now: i64) -> Vec<Result<()>> {
        // Each caller keeps its own chain cache for the batch, seeded from the shared one.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let results = records
            .iter()
            .map(|r| {
                let Some(memo) = &self.memo else {
                    let member = r.verify_cached(&self.grc, now, &mut cache)?;
                    return crate::members::check_reserved(r, &member, &self.grc);
                };
                let hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &r.encode())
                    .as_ref()
                    .try_into()
                    .expect("32 bytes");
                let known = memo
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&hash);
                if known
                    && r.modified <= now.saturating_add(crate::records::record::MAX_FUTURE_SKEW_MS)
                {
                    return Ok(());
                }
                let member = r.verify_cached(&self.grc, now, &mut cache)?;
                crate::members::check_reserved(r, &member, &self.grc)?;
                let mut memo = memo.lock().unwrap_or_else(|p| p.into_inner());
                if memo.len() >= Self::MEMO_CAPACITY {
                    memo.clear();
                }
                memo.insert(hash);
                Ok(())
            })
            .collect();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .absorb(cache);
        results
    }
}

/// A record database in memory, for the simulator and tests: the same rules as the SQLite
/// store (conflict order, expiry), nothing durable.
pub struct MemoryPort {
    records: BTreeMap<[u8; 16], (Record, [u8; DIGEST_BYTES])>,
    verifier: Verifier,
}

impl MemoryPort {
    /// An empty database whose incoming records `verifier` checks.
    pub fn new(verifier: Verifier) -> Self {
        MemoryPort {
            records: BTreeMap::new(),
            verifier,
        }
    }

    /// Every stored version, by id.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values().map(|(r, _)| r)
    }

    /// Stores a record without verification (what the application path does after signing).
    pub fn store(&mut self, record: Record) -> PutOutcome {
        let digest = ItemKey::of(&record).digest;
        match self.records.get(&record.id) {
            Some((old, _)) if !record.wins_over(old) => PutOutcome::Ignored,
            Some(_) => {
                self.records.insert(record.id, (record, digest));
                PutOutcome::Replaced
            }
            None => {
                self.records.insert(record.id, (record, digest));
                PutOutcome::Inserted
            }
        }
    }
}

impl RecordPort for MemoryPort {
    fn items(&mut self, now: i64) -> Result<Vec<ItemKey>> {
        Ok(self
            .records
            .values()
            .filter(|(r, _)| !r.is_expired(now))
            .map(|(r, d)| ItemKey {
                id: r.id,
                version: r.version,
                digest: *d,
            })
            .collect())
    }

    fn held(&mut self, id: &[u8; 16]) -> Result<Option<(u32, [u8; DIGEST_BYTES])>> {
        Ok(self.records.get(id).map(|(r, d)| (r.version, *d)))
    }

    fn encodings(&mut self, ids: &[[u8; 16]], now: i64) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(ids
            .iter()
            .map(|id| {
                self.records
                    .get(id)
                    .filter(|(r, _)| !r.is_expired(now))
                    .map(|(r, _)| r.encode())
            })
            .collect())
    }

    fn verify(&mut self, records: &[Record], now: i64) -> Vec<Result<()>> {
        self.verifier.verify(records, now)
    }

    fn put(&mut self, records: &[Record]) -> Result<Vec<PutOutcome>> {
        for r in records {
            r.check()?;
        }
        Ok(records.iter().map(|r| self.store(r.clone())).collect())
    }

    fn of_type(&mut self, record_type: &[u8; 16], now: i64) -> Result<Vec<Record>> {
        Ok(self
            .records
            .values()
            .map(|(r, _)| r)
            .filter(|r| &r.record_type == record_type && !r.is_deleted() && !r.is_expired(now))
            .cloned()
            .collect())
    }

    fn expire(&mut self, now: i64) -> Result<Vec<Record>> {
        let gone: Vec<[u8; 16]> = self
            .records
            .iter()
            .filter(|(_, (r, _))| r.is_expired(now))
            .map(|(id, _)| *id)
            .collect();
        Ok(gone
            .into_iter()
            .filter_map(|id| self.records.remove(&id).map(|(r, _)| r))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProtoError;
    use crate::identity::IdentityError;

    const NOW: i64 = 1_700_000_000_000;

    /// A port over memory that records the size of every put; a record whose data is
    /// `forged` fails verification (signatures are tested with the verifier; this tests
    /// what replication does with the answers).
    #[derive(Clone, Default)]
    struct CountingPort {
        puts: Arc<Mutex<Vec<usize>>>,
        held: Arc<Mutex<BTreeMap<[u8; 16], Record>>>,
    }

    impl RecordPort for CountingPort {
        fn items(&mut self, _now: i64) -> Result<Vec<ItemKey>> {
            Ok(Vec::new())
        }
        fn held(&mut self, id: &[u8; 16]) -> Result<Option<(u32, [u8; DIGEST_BYTES])>> {
            Ok(self
                .held
                .lock()
                .unwrap()
                .get(id)
                .map(|r| (r.version, ItemKey::of(r).digest)))
        }
        fn encodings(&mut self, ids: &[[u8; 16]], _now: i64) -> Result<Vec<Option<Vec<u8>>>> {
            Ok(vec![None; ids.len()])
        }
        fn verify(&mut self, records: &[Record], _now: i64) -> Vec<Result<()>> {
            records
                .iter()
                .map(|r| {
                    if r.data == b"forged" {
                        Err(ProtoError::Identity(IdentityError::Tampered))
                    } else {
                        Ok(())
                    }
                })
                .collect()
        }
        fn put(&mut self, records: &[Record]) -> Result<Vec<PutOutcome>> {
            self.puts.lock().unwrap().push(records.len());
            let mut held = self.held.lock().unwrap();
            Ok(records
                .iter()
                .map(|r| match held.insert(r.id, r.clone()) {
                    None => PutOutcome::Inserted,
                    Some(_) => PutOutcome::Replaced,
                })
                .collect())
        }
        fn expire(&mut self, _now: i64) -> Result<Vec<Record>> {
            Ok(Vec::new())
        }
        fn of_type(&mut self, record_type: &[u8; 16], _now: i64) -> Result<Vec<Record>> {
            Ok(self
                .held
                .lock()
                .unwrap()
                .values()
                .filter(|r| &r.record_type == record_type)
                .cloned()
                .collect())
        }
    }

    fn record(i: u32) -> Record {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        Record {
            record_type: [7; 16],
            id,
            id_nonce: [0; 16],
            version: 1,
            flags: 0,
            creator: "alice".into(),
            modifier: "alice".into(),
            attributes: String::new(),
            created: NOW,
            expires: NOW + 3_600_000,
            modified: NOW,
            data: i.to_be_bytes().to_vec(),
            security: vec![1],
        }
    }

    /// A replication with one connection (1) offered `n` records; returns the requests it
    /// sent.
    fn offered(n: u32) -> (Replication, CountingPort, Vec<Vec<[u8; 16]>>) {
        let port = CountingPort::default();
        let mut repl = Replication::new(Box::new(port.clone()), "bob");
        let mut out = VecDeque::new();
        repl.up(1, false, NOW, &mut out);
        let items = (0..n).map(|i| ItemKey::of(&record(i))).collect();
        repl.message(1, Message::Offer { items, done: true }, NOW, &mut out)
            .unwrap();
        let requests = out
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(1, Message::Request(ids)) => Some(ids),
                _ => None,
            })
            .collect();
        (repl, port, requests)
    }

    fn answer(ids: &[[u8; 16]], forged: Option<usize>) -> Message {
        let records = ids
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let mut r = record(u32::from_be_bytes(id[..4].try_into().unwrap()));
                if forged == Some(k) {
                    r.data = b"forged".to_vec();
                }
                r.encode()
            })
            .collect();
        Message::Records {
            records,
            missing: Vec::new(),
        }
    }

    fn added(out: &VecDeque<Output>) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::Event(GroupEvent::RecordChanged { .. })))
            .count()
    }

    #[test]
    fn pulled_records_are_stored_together_once_no_answer_is_expected() {
        let (mut repl, port, requests) = offered(3 * MAX_REQUEST_IDS as u32);
        assert_eq!(requests.len(), 3);
        let mut out = VecDeque::new();
        repl.message(1, answer(&requests[0], None), NOW, &mut out)
            .unwrap();
        repl.message(1, answer(&requests[1], Some(7)), NOW, &mut out)
            .unwrap();
        // Two answers in, one expected: nothing stored yet, a flush is scheduled.
        assert!(port.puts.lock().unwrap().is_empty());
        assert_eq!(added(&out), 0);
        assert_eq!(repl.timeout(), Some(NOW as Millis + PULL_FLUSH_MS));
        repl.message(1, answer(&requests[2], None), NOW, &mut out)
            .unwrap();
        // The last answer: every record that verified, in one put; the forged one dropped.
        assert_eq!(*port.puts.lock().unwrap(), vec![3 * MAX_REQUEST_IDS - 1]);
        assert_eq!(added(&out), 3 * MAX_REQUEST_IDS - 1);
        assert_eq!(repl.stats().rejected, 1);
        assert_eq!(repl.stats().stored, 3 * MAX_REQUEST_IDS as u64 - 1);
        let forged = &requests[1][7];
        assert!(port.held.lock().unwrap().get(forged).is_none());
    }

    #[test]
    fn pulled_records_wait_at_most_the_flush_delay() {
        let (mut repl, port, requests) = offered(2 * MAX_REQUEST_IDS as u32);
        let mut out = VecDeque::new();
        repl.message(1, answer(&requests[0], None), NOW, &mut out)
            .unwrap();
        assert!(port.puts.lock().unwrap().is_empty());
        repl.tick(NOW as Millis + PULL_FLUSH_MS - 1, &mut out);
        assert!(port.puts.lock().unwrap().is_empty());
        repl.tick(NOW as Millis + PULL_FLUSH_MS, &mut out);
        assert_eq!(*port.puts.lock().unwrap(), vec![MAX_REQUEST_IDS]);
        assert_eq!(added(&out), MAX_REQUEST_IDS);
    }

    #[test]
    fn a_full_batch_is_stored_at_once_and_closing_stores_the_rest() {
        let n = PULL_BATCH + 3 * MAX_REQUEST_IDS;
        let (mut repl, port, mut requests) = offered(n as u32);
        let mut out = VecDeque::new();
        let mut answered = 0;
        while answered < PULL_BATCH / MAX_REQUEST_IDS {
            let ids = requests.remove(0);
            repl.message(1, answer(&ids, None), NOW, &mut out).unwrap();
            answered += 1;
            // Every answer frees room in the window for another request.
            requests.extend(out.drain(..).filter_map(|o| match o {
                Output::Send(1, Message::Request(ids)) => Some(ids),
                _ => None,
            }));
        }
        assert_eq!(*port.puts.lock().unwrap(), vec![PULL_BATCH]);
        let ids = requests.remove(0);
        repl.message(1, answer(&ids, None), NOW, &mut out).unwrap();
        assert_eq!(port.puts.lock().unwrap().len(), 1);
        repl.clear(NOW, &mut out);
        assert_eq!(
            *port.puts.lock().unwrap(),
            vec![PULL_BATCH, MAX_REQUEST_IDS]
        );
        assert_eq!(repl.timeout(), None);
    }
}
