//! The Identity Manager functions of `p2p.h`.

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::identity::PeerName;

use crate::ffi::{give_wstr, read_opt, read_req, require_out};
use crate::runtime::{
    entry, from_handle, identity_or_default, lock, started_store, EnumItem, Enumeration, Object,
    ToHresult,
};
use crate::types::{BOOL, DWORD, HCRYPTPROV, HPEERENUM, PCWSTR, PWSTR};

/// Creates an identity. `hCryptProv` 0 makes a new key; a handle from
/// `PeerIdentityGetCryptKey` reuses that key.
///
/// # Safety
/// String arguments must be NULL or NUL-terminated UTF-16; `ppwzIdentity` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityCreate(
    pwzClassifier: PCWSTR,
    pwzFriendlyName: PCWSTR,
    hCryptProv: HCRYPTPROV,
    ppwzIdentity: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzIdentity)?;
        // SAFETY: per this function's contract.
        let classifier = unsafe { read_opt(pwzClassifier) }?;
        // SAFETY: per this function's contract.
        let friendly = unsafe { read_opt(pwzFriendlyName) }?;
        let (store, key) = {
            let rt = lock();
            let store = rt.store()?;
            let key = if hCryptProv == 0 {
                None
            } else {
                match from_handle(hCryptProv as *const _).and_then(|k| rt.handles.get(k)) {
                    Some(Object::CryptKey(key)) => Some(key.clone()),
                    _ => return Err(hresult::E_HANDLE),
                }
            };
            (store, key)
        };
        let name = store
            .create(classifier.as_deref(), friendly.as_deref(), key.as_ref())
            .hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzIdentity, &name.to_string()) };
        Ok(hresult::S_OK)
    })
}

/// Gets an identity's friendly name (NULL identity: the default one).
///
/// # Safety
/// As for [`PeerIdentityCreate`].
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityGetFriendlyName(
    pwzIdentity: PCWSTR,
    ppwzFriendlyName: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzFriendlyName)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let name = identity_or_default(&store, unsafe { read_opt(pwzIdentity) }?)?;
        let friendly = store.friendly_name(&name).hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzFriendlyName, &friendly) };
        Ok(hresult::S_OK)
    })
}

/// Sets an identity's friendly name (NULL identity: the default one).
///
/// # Safety
/// String arguments must be NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentitySetFriendlyName(
    pwzIdentity: PCWSTR,
    pwzFriendlyName: PCWSTR,
) -> HRESULT {
    entry(|| {
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let friendly = unsafe { read_req(pwzFriendlyName) }?;
        // SAFETY: per this function's contract.
        let name = identity_or_default(&store, unsafe { read_opt(pwzIdentity) }?)?;
        store.set_friendly_name(&name, &friendly).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Hands out a handle on an identity's key pair, which `PeerIdentityCreate` accepts as
/// `hCryptProv`. Release it with `CryptReleaseContext`.
///
/// # Safety
/// `pwzIdentity` NULL or NUL-terminated UTF-16; `phCryptProv` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityGetCryptKey(
    pwzIdentity: PCWSTR,
    phCryptProv: *mut HCRYPTPROV,
) -> HRESULT {
    entry(|| {
        require_out(phCryptProv)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let name = identity_or_default(&store, unsafe { read_opt(pwzIdentity) }?)?;
        let key = store.load(&name).hr()?.private_key().clone();
        let handle = lock().insert(Object::CryptKey(key));
        // SAFETY: checked non-null.
        unsafe { phCryptProv.write(handle as HCRYPTPROV) };
        Ok(hresult::S_OK)
    })
}

/// Releases a key handle from `PeerIdentityGetCryptKey` (Windows' advapi32 function of the
/// same name, provided here so ported code links). TRUE on success, FALSE for a handle that
/// is not open or flags that are not 0.
#[no_mangle]
pub extern "C" fn CryptReleaseContext(hProv: HCRYPTPROV, dwFlags: DWORD) -> BOOL {
    let hr = entry(|| {
        if dwFlags != 0 {
            return Err(hresult::E_INVALIDARG);
        }
        let mut rt = lock();
        let key = from_handle(hProv as *const _).ok_or(hresult::E_HANDLE)?;
        match rt.handles.get(key) {
            Some(Object::CryptKey(_)) => {
                rt.handles.remove(key);
                Ok(hresult::S_OK)
            }
            _ => Err(hresult::E_HANDLE),
        }
    });
    BOOL::from(hr == hresult::S_OK)
}

/// Deletes an identity; `PEER_E_GROUPS_EXIST` while it still belongs to groups.
///
/// # Safety
/// `pwzIdentity` must be NUL-terminated UTF-16 (NULL is `E_INVALIDARG`).
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityDelete(pwzIdentity: PCWSTR) -> HRESULT {
    entry(|| {
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let name = unsafe { read_req(pwzIdentity) }?.parse::<PeerName>().hr()?;
        store.delete(&name).hr()?;
        Ok(hresult::S_OK)
    })
}

pub(crate) fn open_enumeration(
    items: Vec<EnumItem>,
    out: *mut HPEERENUM,
) -> Result<HRESULT, HRESULT> {
    let handle = lock().insert(Object::Enumeration(Enumeration { items, next: 0 }));
    // SAFETY: callers checked `out`.
    unsafe { out.write(handle) };
    Ok(hresult::S_OK)
}

/// Enumerates the identities of this user; items are `PEER_NAME_PAIR`.
///
/// # Safety
/// `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerEnumIdentities(phPeerEnum: *mut HPEERENUM) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        let items = started_store()?.list().hr()?;
        open_enumeration(
            items.into_iter().map(EnumItem::NamePair).collect(),
            phPeerEnum,
        )
    })
}

/// Enumerates the groups of an identity; items are `PEER_NAME_PAIR`.
///
/// # Safety
/// `pwzIdentity` must be NUL-terminated UTF-16; `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerEnumGroups(
    pwzIdentity: PCWSTR,
    phPeerEnum: *mut HPEERENUM,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let name = unsafe { read_req(pwzIdentity) }?.parse::<PeerName>().hr()?;
        let items = store.groups(&name).hr()?;
        open_enumeration(
            items.into_iter().map(EnumItem::NamePair).collect(),
            phPeerEnum,
        )
    })
}

/// Builds `authority.classifier` for an identity (NULL: unsecured `0.classifier`) and a
/// classifier (NULL: the identity's own name); both NULL is `E_INVALIDARG`.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16; `ppwzPeerName` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerCreatePeerName(
    pwzIdentity: PCWSTR,
    pwzClassifier: PCWSTR,
    ppwzPeerName: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzPeerName)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let identity = unsafe { read_opt(pwzIdentity) }?;
        // SAFETY: per this function's contract.
        let classifier = unsafe { read_opt(pwzClassifier) }?;
        if identity.is_none() && classifier.is_none() {
            return Err(hresult::E_INVALIDARG);
        }
        let identity = identity.map(|s| s.parse::<PeerName>()).transpose().hr()?;
        let name = store
            .create_peer_name(identity.as_ref(), classifier.as_deref())
            .hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzPeerName, &name.to_string()) };
        Ok(hresult::S_OK)
    })
}

/// The public identity document an inviter needs (NULL identity: the default one).
///
/// # Safety
/// `pwzIdentity` NULL or NUL-terminated UTF-16; `ppwzIdentityXML` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityGetXML(
    pwzIdentity: PCWSTR,
    ppwzIdentityXML: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzIdentityXML)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let name = identity_or_default(&store, unsafe { read_opt(pwzIdentity) }?)?;
        let xml = store.public_xml(&name).hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzIdentityXML, &xml) };
        Ok(hresult::S_OK)
    })
}

/// Exports an identity with its private key, encrypted under a password.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16 (the password is required);
/// `ppwzExportXML` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityExport(
    pwzIdentity: PCWSTR,
    pwzPassword: PCWSTR,
    ppwzExportXML: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzExportXML)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let password = unsafe { read_req(pwzPassword) }?;
        // SAFETY: per this function's contract.
        let name = identity_or_default(&store, unsafe { read_opt(pwzIdentity) }?)?;
        let xml = store.export(&name, &password).hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzExportXML, &xml) };
        Ok(hresult::S_OK)
    })
}

/// Imports an exported identity. A wrong password, altered or truncated data each get their
/// own HRESULT, and nothing in the store changes.
///
/// # Safety
/// String arguments NUL-terminated UTF-16; `ppwzIdentity` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityImport(
    pwzImportXML: PCWSTR,
    pwzPassword: PCWSTR,
    ppwzIdentity: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzIdentity)?;
        let store = started_store()?;
        // SAFETY: per this function's contract.
        let xml = unsafe { read_req(pwzImportXML) }?;
        // SAFETY: per this function's contract.
        let password = unsafe { read_req(pwzPassword) }?;
        let name = store.import(&xml, &password).hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzIdentity, &name.to_string()) };
        Ok(hresult::S_OK)
    })
}

/// The default identity of this user, created the first time it is asked for.
///
/// # Safety
/// `ppwzPeerName` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerIdentityGetDefault(ppwzPeerName: *mut PWSTR) -> HRESULT {
    entry(|| {
        require_out(ppwzPeerName)?;
        let name = started_store()?.default_identity().hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzPeerName, &name.to_string()) };
        Ok(hresult::S_OK)
    })
}
