//! `PeerGetItemCount`, `PeerGetNextItem`, `PeerEndEnumeration` and `PeerFreeData`.

use std::ffi::c_void;

use peergroup_core::identity::hresult::{self, HRESULT};

use crate::alloc::{free_block, CBlock};
use crate::convert::record_child;
use crate::direct::connection_child;
use crate::ffi::require_out;
use crate::runtime::{entry, from_handle, lock, EnumItem, Object};
use crate::types::{HPEERENUM, PEER_NAME_PAIR, PVOID, ULONG};

/// Frees memory the library returned (strings, structures, item arrays, event data).
/// NULL is allowed. One call frees a whole block, with the strings and items inside it.
///
/// # Safety
/// `pvData` must be NULL or a pointer this library returned and that was not yet freed.
#[no_mangle]
pub unsafe extern "C" fn PeerFreeData(pvData: *const c_void) {
    let _ = entry(|| {
        // SAFETY: forwarded contract.
        unsafe { free_block(pvData as *mut u8) };
        Ok(hresult::S_OK)
    });
}

/// Number of items left in an enumeration.
///
/// # Safety
/// `pCount` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn PeerGetItemCount(hPeerEnum: HPEERENUM, pCount: *mut ULONG) -> HRESULT {
    entry(|| {
        require_out(pCount)?;
        let rt = lock();
        rt.store()?;
        let Some(Object::Enumeration(e)) = from_handle(hPeerEnum).and_then(|k| rt.handles.get(k))
        else {
            return Err(hresult::E_INVALIDARG);
        };
        let left = (e.items.len() - e.next) as ULONG;
        // SAFETY: checked non-null above; the caller promises it is writable.
        unsafe { pCount.write(left) };
        Ok(hresult::S_OK)
    })
}

/// Hands out up to `*pCount` items as one array freed by one `PeerFreeData`. At the end of
/// the enumeration `*pCount` is 0, `*pppvItems` NULL, and the result S_OK.
///
/// # Safety
/// `pCount` must be NULL or valid for reads and writes; `pppvItems` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn PeerGetNextItem(
    hPeerEnum: HPEERENUM,
    pCount: *mut ULONG,
    pppvItems: *mut *mut PVOID,
) -> HRESULT {
    entry(|| {
        require_out(pCount)?;
        require_out(pppvItems)?;
        // SAFETY: checked non-null; the caller promises it is readable.
        let wanted = unsafe { pCount.read() } as usize;
        let mut rt = lock();
        rt.store()?;
        let Some(Object::Enumeration(e)) =
            from_handle(hPeerEnum).and_then(|k| rt.handles.get_mut(k))
        else {
            return Err(hresult::E_INVALIDARG);
        };
        let n = wanted.min(e.items.len() - e.next);
        if n == 0 {
            // SAFETY: both checked non-null above.
            unsafe {
                pCount.write(0);
                pppvItems.write(std::ptr::null_mut());
            }
            return Ok(hresult::S_OK);
        }
        let (mut block, array) = CBlock::for_array::<PVOID>(n);
        for (i, item) in e.items[e.next..e.next + n].iter().enumerate() {
            let p: PVOID = match item {
                EnumItem::NamePair(pair) => {
                    let peer = block.wstr(&pair.peer_name);
                    let friendly = block.wstr(&pair.friendly_name);
                    block.child(PEER_NAME_PAIR {
                        dwSize: std::mem::size_of::<PEER_NAME_PAIR>() as u32,
                        pwzPeerName: peer,
                        pwzFriendlyName: friendly,
                    }) as PVOID
                }
                EnumItem::Record(rec) => record_child(&mut block, rec) as PVOID,
                EnumItem::Connection(c) => connection_child(&mut block, c) as PVOID,
                EnumItem::Member(m) => crate::members::member_child(&mut block, m) as PVOID,
            };
            // SAFETY: `array` has room for n pointers.
            unsafe { array.add(i).write(p) };
        }
        e.next += n;
        let raw = block.into_raw() as *mut PVOID;
        // SAFETY: both checked non-null above.
        unsafe {
            pCount.write(n as ULONG);
            pppvItems.write(raw);
        }
        Ok(hresult::S_OK)
    })
}

/// Releases an enumeration. A closed, stale or forged handle gets `E_INVALIDARG`.
#[no_mangle]
pub extern "C" fn PeerEndEnumeration(hPeerEnum: HPEERENUM) -> HRESULT {
    entry(|| {
        let mut rt = lock();
        rt.store()?;
        let key = from_handle(hPeerEnum).ok_or(hresult::E_INVALIDARG)?;
        match rt.handles.get(key) {
            Some(Object::Enumeration(_)) => {
                rt.handles.remove(key);
                Ok(hresult::S_OK)
            }
            _ => Err(hresult::E_INVALIDARG),
        }
    })
}
