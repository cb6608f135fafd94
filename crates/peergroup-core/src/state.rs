//! The shared state of open groups: what every layer of the runtime above it reads. One
//! [`Shared`] per library instance (identity store, open groups, network); one [`GroupInner`]
//! per open (identity, group), shared by its handles and its driver, holding the
//! [`GroupState`] under one lock, the record database under another (lock order: state, then
//! records), the event hub and the password gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::blocking::off_the_workers;
use crate::control::DriverHandle;
use crate::error::Result;
use crate::events::EventHub;
use crate::group_store::{GroupStore, StoredConfig};
use crate::identity::gmc::{GmcChain, GroupRootCertificate, Member};
use crate::identity::{Identity, IdentityStore, PeerName};
use crate::network::Network;
use crate::records::store::RecordStore;
use crate::wire::SignedProperties;

/// Identifies a group as one identity holds it.
pub type GroupKey = (PeerName, PeerName);

/// A library instance's shared parts: the identity store, the open groups and the network.
pub(crate) struct Shared {
    pub(crate) identities: IdentityStore,
    pub(crate) open: Mutex<HashMap<GroupKey, Arc<GroupInner>>>,
    pub(crate) network: Network,
}

/// The state of one open group, shared by its handles.
pub struct GroupInner {
    pub(crate) key: GroupKey,
    pub(crate) identity: Identity,
    pub(crate) store: GroupStore,
    pub(crate) grc: GroupRootCertificate,
    pub(crate) state: Mutex<GroupState>,
    /// The record database, once a record call opened it. Lock order: `state`, then this.
    pub(crate) records: Mutex<Option<RecordStore>>,
    /// The group's events, fanned out to its subscriptions; closed with the group.
    pub(crate) events: EventHub,
    /// Whether password authentication is suspended after a failure (`password_gate`).
    pub(crate) password_gate: PasswordGate,
    /// Wrong passwords lately, by joiner and address: attempts too soon are refused
    /// ([`crate::throttle`]). In memory: a restart forgets it.
    pub(crate) throttle: Mutex<crate::throttle::Throttle>,
}

/// The file of a group's record database, in its group directory.
pub const RECORDS_FILE: &str = "records.db";

pub(crate) struct GroupState {
    pub(crate) handles: usize,
    pub(crate) deleted: bool,
    pub(crate) chain: GmcChain,
    pub(crate) member: Member,
    pub(crate) config: StoredConfig,
    pub(crate) signed: Option<SignedProperties>,
    pub(crate) driver: Option<DriverHandle>,
}

/// Locks `m`, taking the data of a poisoned lock as it is (a panicked holder leaves plain data).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupInner {
    /// The password throttle (no other lock is taken while it is held).
    pub(crate) fn lock_throttle(&self) -> MutexGuard<'_, crate::throttle::Throttle> {
        lock(&self.throttle)
    }

    /// Runs `f` on the record database, opening it on first use. Lock order: a caller
    /// holding `state` may call this; nothing holding the records lock takes `state`.
    pub(crate) fn with_records<T>(
        &self,
        f: impl FnOnce(&mut RecordStore) -> Result<T>,
    ) -> Result<T> {
        let mut db = lock(&self.records);
        if db.is_none() {
            *db = Some(RecordStore::open(self.store.dir().join(RECORDS_FILE))?);
        }
        f(db.as_mut().expect("opened above"))
    }

    /// [`GroupInner::with_records`] for a durable write: the transaction's disk sync runs
    /// off the async workers ([`off_the_workers`]).
    pub(crate) fn write_records<T>(
        &self,
        f: impl FnOnce(&mut RecordStore) -> Result<T>,
    ) -> Result<T> {
        off_the_workers(|| self.with_records(f))
    }

    /// The member list as this member's records give it now (`PeerGroupEnumMembers` before
    /// its flags), this member first with `chain`, its own membership chain.
    pub(crate) fn member_list(&self, chain: &GmcChain) -> Result<Vec<crate::members::Member>> {
        use crate::members::{MEMBER_DATA_TYPE, PRESENCE_TYPE};
        let now = crate::clock::unix_now_ms();
        let (data, presence) = self.with_records(|db| {
            Ok((
                db.list(Some(MEMBER_DATA_TYPE), now)?,
                db.list(Some(PRESENCE_TYPE), now)?,
            ))
        })?;
        let me = self.key.0.to_string();
        Ok(crate::members::list::build(
            &me, chain, &self.grc, &data, &presence,
        ))
    }

    /// Closes the record database if it is open (checkpointing its WAL); the next record call
    /// would open it again. Errors are logged: a close is best effort, and the WAL is safe.
    pub(crate) fn close_records(&self) {
        if let Some(db) = lock(&self.records).take() {
            if let Err(e) = db.close() {
                tracing::warn!(group = %self.key.1, error = %e, "closing the record database");
            }
        }
    }
}

/// Whether password authentication is suspended, and how many holds ask for suspension.
#[derive(Default)]
pub(crate) struct PasswordGate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    holds: usize,
    suspended: bool,
}

impl PasswordGate {
    /// True while password joiners are refused.
    pub(crate) fn is_suspended(&self) -> bool {
        lock(&self.state).suspended
    }

    /// A joiner failed the proof: suspend, if anyone holds the gate.
    pub(crate) fn failed(&self) {
        let mut st = lock(&self.state);
        if st.holds > 0 {
            st.suspended = true;
        }
    }

    pub(crate) fn hold(&self) {
        lock(&self.state).holds += 1;
    }

    pub(crate) fn release(&self) {
        let mut st = lock(&self.state);
        st.holds = st.holds.saturating_sub(1);
        if st.holds == 0 {
            st.suspended = false;
        }
    }

    /// Ends a suspension; false when there was none.
    pub(crate) fn resume(&self) -> bool {
        std::mem::take(&mut lock(&self.state).suspended)
    }
}
