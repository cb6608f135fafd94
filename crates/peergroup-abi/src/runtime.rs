//! The library's process-wide state: the startup count, the identity store and the handle table.
//!
//! Handles (`HPEERENUM`, `HCRYPTPROV`, later `HGROUP` and `HPEEREVENT`) are slotmap keys packed
//! into a non-null pointer value. A closed handle's slot gets a new version, so a stale handle
//! never reaches the object that reused its slot, and a forged value finds nothing; both are
//! answered with the function's documented error. One table holds every kind, so a handle of
//! the wrong kind is caught too.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{LazyLock, Mutex, MutexGuard};

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::identity::{IdentityError, IdentityStore, NamePair, PeerName, PrivateKey};
use slotmap::{DefaultKey, Key, KeyData, SlotMap};

/// One object behind a handle.
pub enum Object {
    /// An open enumeration (`HPEERENUM`).
    Enumeration(Enumeration),
    /// A key pair handed out by `PeerIdentityGetCryptKey` (`HCRYPTPROV`).
    CryptKey(PrivateKey),
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
}

/// Everything the library keeps between calls.
pub struct Runtime {
    started: u32,
    store: Option<IdentityStore>,
    /// Every live handle.
    pub handles: SlotMap<DefaultKey, Object>,
}

static RUNTIME: LazyLock<Mutex<Runtime>> = LazyLock::new(|| {
    Mutex::new(Runtime {
        started: 0,
        store: None,
        handles: SlotMap::new(),
    })
});

/// Locks the runtime. A panic caught while it was held does not make it unusable: the
/// table's invariants hold between statements.
pub fn lock() -> MutexGuard<'static, Runtime> {
    RUNTIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// `PeerGroupStartup`'s bookkeeping: the first call opens the identity store.
    pub fn startup(&mut self) -> Result<(), HRESULT> {
        if self.started == 0 {
            self.store = Some(IdentityStore::from_env().map_err(|e| e.hresult())?);
        }
        self.started += 1;
        Ok(())
    }

    /// `PeerGroupShutdown`'s bookkeeping: the last call closes every handle.
    pub fn shutdown(&mut self) -> Result<(), HRESULT> {
        if self.started == 0 {
            return Err(hresult::PEER_E_NOT_INITIALIZED);
        }
        self.started -= 1;
        if self.started == 0 {
            // `clear` bumps every slot's version, so handles from before stay invalid.
            self.handles.clear();
            self.store = None;
        }
        Ok(())
    }

    /// The identity store, or `PEER_E_NOT_INITIALIZED` before startup.
    pub fn store(&self) -> Result<IdentityStore, HRESULT> {
        self.store.clone().ok_or(hresult::PEER_E_NOT_INITIALIZED)
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

fn tracing_log(e: &IdentityError) {
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
