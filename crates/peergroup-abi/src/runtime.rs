//! The library's process-wide state: the startup count, the identity store, the async
//! runtime with the group layer, and the handle table.
//!
//! Handles (`HPEERENUM`, `HCRYPTPROV`, `HGROUP`, `HPEEREVENT`) are slotmap keys packed
//! into a non-null pointer value. A closed handle's slot gets a new version, so a stale handle
//! never reaches the object that reused its slot, and a forged value finds nothing; both are
//! answered with the function's documented error. One table holds every kind, so a handle of
//! the wrong kind is caught too.
//!
//! The global mutex is held only to look things up or change the table: calls that wait
//! (network, close) clone an `Arc` out of it first and block on the runtime without it.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::identity::{IdentityError, IdentityStore, NamePair, PeerName, PrivateKey};
use peergroup_core::records::record::Record;
use peergroup_core::{CoreError, GroupHandle, Peergroup};
use slotmap::{DefaultKey, Key, KeyData, SlotMap};

use crate::events::EventRegistration;

/// Worker threads of the library's tokio runtime.
pub(crate) const WORKER_THREADS: usize = 2;
/// How long the last `PeerGroupShutdown` waits for the groups still open to close.
pub const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last `PeerGroupShutdown` waits for the runtime's tasks to stop.
pub const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a close waits for calls still running on the same handle (on other threads) to
/// let go of it.
pub(crate) const EXCLUSIVE_WAIT: Duration = Duration::from_secs(5);

/// One object behind a handle.
pub enum Object {
    /// An open enumeration (`HPEERENUM`).
    Enumeration(Enumeration),
    /// A key pair handed out by `PeerIdentityGetCryptKey` (`HCRYPTPROV`).
    CryptKey(PrivateKey),
    /// An open group (`HGROUP`). Shared so a call can use it without the global lock.
    Group(Arc<GroupHandle>),
    /// An event registration (`HPEEREVENT`).
    Event(Arc<EventRegistration>),
}

/// The async side of a started library: the tokio runtime and the group layer on it.
pub struct Network {
    /// Calls that wait block on this runtime (never inside it, never under the global lock).
    pub rt: tokio::runtime::Runtime,
    /// The group layer over the identity store.
    pub pg: Peergroup,
}

/// The items of an enumeration and how far the caller has read.
pub struct Enumeration {
    /// Items not yet handed out are `items[next..]`.
    pub items: Vec<EnumItem>,
    /// Index of the next item to hand out.
    pub next: usize,
}

/// One enumeration item, converted to its C structure when handed out.
pub enum EnumItem {
    /// `PEER_NAME_PAIR` (identities, groups).
    NamePair(NamePair),
    /// `PEER_RECORD` (records of a group).
    Record(Box<Record>),
    /// `PEER_CONNECTION_INFO` (connections of a group).
    Connection(peergroup_core::direct::ConnectionInfo),
    /// `PEER_MEMBER` (members of a group).
    Member(Box<peergroup_core::members::Member>),
}

/// Everything the library keeps between calls.
pub struct Runtime {
    started: u32,
    store: Option<IdentityStore>,
    net: Option<Arc<Network>>,
    /// Every live handle.
    pub handles: SlotMap<DefaultKey, Object>,
}

static RUNTIME: LazyLock<Mutex<Runtime>> = LazyLock::new(|| {
    Mutex::new(Runtime {
        started: 0,
        store: None,
        net: None,
        handles: SlotMap::new(),
    })
});

/// Locks the runtime. A panic caught while it was held does not make it unusable: the
/// table's invariants hold between statements.
pub fn lock() -> MutexGuard<'static, Runtime> {
    RUNTIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// `PeerGroupStartup`'s bookkeeping: the first call opens the identity store and starts
    /// the runtime (2 worker threads) with the group layer; the transport binds on first use,
    /// to `$PEERGROUP_LISTEN` or `[::]:0`.
    pub fn startup(&mut self) -> Result<(), HRESULT> {
        if self.started == 0 {
            let store = IdentityStore::from_env().map_err(|e| e.hresult())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .thread_name("peergroup")
                .enable_all()
                .build()
                .map_err(|_| hresult::E_OUTOFMEMORY)?;
            let pg = Peergroup::new(store.clone(), None);
            self.net = Some(Arc::new(Network { rt, pg }));
            self.store = Some(store);
        }
        self.started += 1;
        Ok(())
    }

    /// `PeerGroupShutdown`'s bookkeeping. The last call empties the table and hands back
    /// what must be closed; the caller runs the [`Teardown`] after releasing the lock.
    pub fn shutdown(&mut self) -> Result<Option<Teardown>, HRESULT> {
        if self.started == 0 {
            return Err(hresult::PEER_E_NOT_INITIALIZED);
        }
        self.started -= 1;
        if self.started > 0 {
            return Ok(None);
        }
        let groups = self
            .handles
            .drain()
            .filter_map(|(_, o)| match o {
                Object::Group(g) => Some(g),
                _ => None,
            })
            .collect();
        // `drain` bumps every slot's version, so handles from before stay invalid.
        self.store = None;
        Ok(Some(Teardown {
            groups,
            net: self.net.take(),
        }))
    }

    /// The identity store, or `PEER_E_NOT_INITIALIZED` before startup.
    pub fn store(&self) -> Result<IdentityStore, HRESULT> {
        self.store.clone().ok_or(hresult::PEER_E_NOT_INITIALIZED)
    }

    /// The runtime and group layer, or `PEER_E_NOT_INITIALIZED` before startup.
    pub fn network(&self) -> Result<Arc<Network>, HRESULT> {
        self.net.clone().ok_or(hresult::PEER_E_NOT_INITIALIZED)
    }

    /// The group behind an `HGROUP`: `PEER_E_NOT_INITIALIZED` before startup, and
    /// `PEER_E_INVALID_GROUP` for NULL, forged, closed, stale or other-kind handles.
    pub fn group(&self, h: *const c_void) -> Result<Arc<GroupHandle>, HRESULT> {
        self.store()?;
        match from_handle(h).and_then(|k| self.handles.get(k)) {
            Some(Object::Group(g)) => Ok(g.clone()),
            _ => Err(hresult::PEER_E_INVALID_GROUP),
        }
    }

    /// Takes an `HGROUP` out of the table (as [`Runtime::group`] checks it).
    pub fn remove_group(&mut self, h: *const c_void) -> Result<Arc<GroupHandle>, HRESULT> {
        self.group(h)?;
        match from_handle(h).and_then(|k| self.handles.remove(k)) {
            Some(Object::Group(g)) => Ok(g),
            _ => unreachable!("checked to be a group just above"),
        }
    }

    /// Ends the event registrations made through the `HGROUP` with this key (closed): they
    /// take no more events, and what they queued stays readable.
    pub fn end_registrations_of(&self, group: DefaultKey) {
        for object in self.handles.values() {
            if let Object::Event(r) = object {
                if r.group == group {
                    r.end();
                }
            }
        }
    }

    /// The registration behind an `HPEEREVENT`: `PEER_E_NOT_INITIALIZED` before startup,
    /// `E_INVALIDARG` for NULL, forged, unregistered, stale or other-kind handles.
    pub fn event(&self, h: *const c_void) -> Result<Arc<EventRegistration>, HRESULT> {
        self.store()?;
        match from_handle(h).and_then(|k| self.handles.get(k)) {
            Some(Object::Event(r)) => Ok(r.clone()),
            _ => Err(hresult::E_INVALIDARG),
        }
    }

    /// Takes an `HPEEREVENT` out of the table (as [`Runtime::event`] checks it).
    pub fn remove_event(&mut self, h: *const c_void) -> Result<Arc<EventRegistration>, HRESULT> {
        self.event(h)?;
        match from_handle(h).and_then(|k| self.handles.remove(k)) {
            Some(Object::Event(r)) => Ok(r),
            _ => unreachable!("checked to be a registration just above"),
        }
    }

    /// Inserts a new group handle. If the library was shut down meanwhile, the handle is
    /// given back with `PEER_E_NOT_INITIALIZED` so the caller closes it outside the lock.
    pub fn insert_group(
        &mut self,
        group: GroupHandle,
    ) -> Result<*mut c_void, (HRESULT, GroupHandle)> {
        if self.store.is_none() {
            return Err((hresult::PEER_E_NOT_INITIALIZED, group));
        }
        Ok(self.insert(Object::Group(Arc::new(group))))
    }

    /// Inserts an object and returns its handle value.
    pub fn insert(&mut self, object: Object) -> *mut c_void {
        to_handle(self.handles.insert(object))
    }
}

/// Packs a key into a handle value (never NULL: occupied slots have odd versions).
pub fn to_handle(key: DefaultKey) -> *mut c_void {
    key.data().as_ffi() as usize as *mut c_void
}

/// Unpacks a handle value; NULL is no key.
pub fn from_handle(h: *const c_void) -> Option<DefaultKey> {
    (!h.is_null()).then(|| KeyData::from_ffi(h as usize as u64).into())
}

/// The identity store if started.
pub fn started_store() -> Result<IdentityStore, HRESULT> {
    lock().store()
}

/// The runtime and group layer if started.
pub fn started_network() -> Result<Arc<Network>, HRESULT> {
    lock().network()
}

/// An `HGROUP`'s group with the runtime to block on, cloned out of the table.
pub fn group_and_network(h: *const c_void) -> Result<(Arc<GroupHandle>, Arc<Network>), HRESULT> {
    let rt = lock();
    Ok((rt.group(h)?, rt.network()?))
}

/// Waits (until `deadline`) for the other clones of `arc` to go, and returns the value.
/// Clones live only while a call on another thread uses the object, so this is short.
pub fn exclusive<T>(mut arc: Arc<T>, deadline: Instant) -> Option<T> {
    loop {
        match Arc::try_unwrap(arc) {
            Ok(value) => return Some(value),
            Err(shared) if Instant::now() < deadline => {
                arc = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return None,
        }
    }
}

/// What the last `PeerGroupShutdown` closes once the global lock is released.
pub struct Teardown {
    groups: Vec<Arc<GroupHandle>>,
    net: Option<Arc<Network>>,
}

impl Teardown {
    /// Closes every group still open (all at once, bounded by [`SHUTDOWN_CLOSE_TIMEOUT`]),
    /// then stops the runtime (bounded by [`RUNTIME_SHUTDOWN_TIMEOUT`]).
    pub fn run(self) {
        let deadline = Instant::now() + EXCLUSIVE_WAIT;
        let handles: Vec<GroupHandle> = self
            .groups
            .into_iter()
            .filter_map(|g| exclusive(g, deadline))
            .collect();
        let Some(net) = self.net else { return };
        net.rt.block_on(async {
            let closing: Vec<_> = handles
                .into_iter()
                .map(|h| tokio::spawn(async move { h.close().await }))
                .collect();
            let all = async {
                for task in closing {
                    let _ = task.await;
                }
            };
            let _ = tokio::time::timeout(SHUTDOWN_CLOSE_TIMEOUT, all).await;
        });
        if let Some(Network { rt, pg }) = exclusive(net, Instant::now() + EXCLUSIVE_WAIT) {
            {
                // The group layer's sockets deregister from this runtime's reactor.
                let _inside = rt.enter();
                drop(pg);
            }
            rt.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
        }
    }
}

/// Runs an exported function's body: a panic becomes `E_UNEXPECTED` and never crosses into C.
pub fn entry(body: impl FnOnce() -> Result<HRESULT, HRESULT>) -> HRESULT {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(hr)) | Ok(Err(hr)) => hr,
        Err(_) => hresult::E_UNEXPECTED,
    }
}

/// Turns a crate error into the HRESULT of its boundary table.
pub trait ToHresult<T> {
    /// Maps the error half.
    fn hr(self) -> Result<T, HRESULT>;
}

impl<T> ToHresult<T> for Result<T, IdentityError> {
    fn hr(self) -> Result<T, HRESULT> {
        self.map_err(|e| {
            tracing_log(&e);
            e.hresult()
        })
    }
}

impl<T> ToHresult<T> for Result<T, CoreError> {
    fn hr(self) -> Result<T, HRESULT> {
        self.map_err(|e| {
            tracing_log(&e);
            e.hresult()
        })
    }
}

fn tracing_log(e: &dyn std::fmt::Display) {
    if std::env::var_os("PEERGROUP_DEBUG").is_some() {
        eprintln!("peergroup: {e}");
    }
}

/// Resolves an identity argument: NULL means the default identity, as on Windows.
pub fn identity_or_default(
    store: &IdentityStore,
    name: Option<String>,
) -> Result<PeerName, HRESULT> {
    match name {
        Some(s) => s.parse::<PeerName>().hr(),
        None => store.default_identity().hr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_e_unexpected() {
        assert_eq!(entry(|| panic!("boom")), hresult::E_UNEXPECTED);
        assert_eq!(entry(|| Err(hresult::E_POINTER)), hresult::E_POINTER);
        assert_eq!(entry(|| Ok(hresult::S_FALSE)), hresult::S_FALSE);
    }

    #[test]
    fn handles_are_never_null_and_forgeries_find_nothing() {
        let mut map: SlotMap<DefaultKey, u8> = SlotMap::new();
        let k = map.insert(1);
        let h = to_handle(k);
        assert!(!h.is_null());
        assert_eq!(from_handle(h), Some(k));
        map.remove(k);
        let k2 = map.insert(2);
        assert_ne!(
            from_handle(h),
            Some(k2),
            "a stale handle does not reach the slot's new object"
        );
        assert!(map.get(from_handle(h).unwrap()).is_none());
        assert!(from_handle(std::ptr::null()).is_none());
        for forged in [1usize, 0x12345, usize::MAX, 0xdead_beef_0000_0001] {
            assert!(
                map.get(from_handle(forged as *const c_void).unwrap())
                    .is_none()
                    || forged == to_handle(k2) as usize
            );
        }
    }
}
