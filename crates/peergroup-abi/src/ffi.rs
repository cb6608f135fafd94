//! The pointer helpers of the C ABI, in one place (as rustls-ffi keeps its own in one
//! `ffi.rs`): the NULL checks every exported function starts with, reading the caller's
//! strings, structures and arrays, and handing strings back.
//!
//! The checks are safe functions; what reads or writes through a pointer is `unsafe` and says
//! what it needs of the caller. None of them decides the order of an exported function's
//! checks: each function calls them in its documented (Windows') order.

use std::ffi::{c_char, CStr};

use peergroup_core::identity::hresult::{E_INVALIDARG, E_POINTER};

use crate::alloc::CBlock;
use crate::types::{HRESULT, PCWSTR, PWSTR};

/// Longest string read from a caller, in UTF-16 units, so an unterminated buffer is caught
/// rather than read to the end of memory.
pub(crate) const MAX_WSTR_UNITS: usize = 1 << 20;

/// `E_POINTER` for a NULL out-pointer: the error `p2p.h` gives when there is nowhere to write
/// the result, checked before anything else is done.
pub(crate) fn require_out<T>(p: *mut T) -> Result<(), HRESULT> {
    if p.is_null() {
        Err(E_POINTER)
    } else {
        Ok(())
    }
}

/// `E_INVALIDARG` for a NULL required input: a missing argument is the caller's mistake, not
/// a missing place to write (that is [`require_out`]'s `E_POINTER`).
pub(crate) fn require_in<T>(p: *const T) -> Result<(), HRESULT> {
    if p.is_null() {
        Err(E_INVALIDARG)
    } else {
        Ok(())
    }
}

/// Reads an optional in-argument (a `GUID`, a `FILETIME`, a `PEER_ADDRESS`): NULL is `None`.
/// A copy, so nothing keeps borrowing the caller's memory after the call.
///
/// # Safety
/// `p` must be NULL or aligned and readable for a `T`.
pub(crate) unsafe fn read_in_opt<T: Copy>(p: *const T) -> Option<T> {
    if p.is_null() {
        None
    } else {
        // SAFETY: checked non-null; the caller promises it is aligned and readable.
        Some(unsafe { p.read() })
    }
}

/// Reads a required in-argument: NULL is `E_INVALIDARG` (as [`require_in`]).
///
/// # Safety
/// As for [`read_in_opt`].
pub(crate) unsafe fn read_in_req<T: Copy>(p: *const T) -> Result<T, HRESULT> {
    require_in(p)?;
    // SAFETY: checked non-null; forwarded contract.
    Ok(unsafe { p.read() })
}

/// The caller's array of `len` items as a slice. Zero items is the empty slice whatever the
/// pointer (C callers pass NULL with 0), so `slice::from_raw_parts` never sees a NULL
/// pointer; the caller checks NULL with a non-zero length (and its own bounds) first.
///
/// # Safety
/// With `len` > 0, `p` must be non-null, aligned and readable for `len` items that stay
/// unchanged while the slice lives.
pub(crate) unsafe fn slice_in<'a, T>(p: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: per this function's contract.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

/// Like [`slice_in`], for arrays whose NULL check is not done yet: NULL with a non-zero
/// length is `E_INVALIDARG`.
///
/// # Safety
/// `p` NULL or as for [`slice_in`].
pub(crate) unsafe fn try_slice_in<'a, T>(p: *const T, len: usize) -> Result<&'a [T], HRESULT> {
    if len > 0 && p.is_null() {
        return Err(E_INVALIDARG);
    }
    // SAFETY: non-null when `len` > 0; forwarded contract.
    Ok(unsafe { slice_in(p, len) })
}

/// Reads an optional NUL-terminated UTF-16 string: NULL is `None`; invalid UTF-16 or a
/// string over the bound (1 Mi units) is `E_INVALIDARG`.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated array of WCHAR readable up to its NUL.
pub(crate) unsafe fn read_opt(p: PCWSTR) -> Result<Option<String>, HRESULT> {
    if p.is_null() {
        return Ok(None);
    }
    let mut len = 0usize;
    // SAFETY: the caller promises a NUL-terminated string; we stop at the NUL or the bound.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
        if len > MAX_WSTR_UNITS {
            return Err(E_INVALIDARG);
        }
    }
    // SAFETY: the `len` units before the NUL were just read one by one.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    String::from_utf16(units)
        .map(Some)
        .map_err(|_| E_INVALIDARG)
}

/// Reads a required string: NULL is `E_INVALIDARG`.
///
/// # Safety
/// As for [`read_opt`].
pub(crate) unsafe fn read_req(p: PCWSTR) -> Result<String, HRESULT> {
    // SAFETY: forwarded contract.
    unsafe { read_opt(p) }?.ok_or(E_INVALIDARG)
}

/// Reads a required NUL-terminated 8-bit string (an OID's `pszObjId`): NULL or text that is
/// not UTF-8 is `E_INVALIDARG`.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string readable up to its NUL.
pub(crate) unsafe fn read_cstr_req(p: *const c_char) -> Result<String, HRESULT> {
    require_in(p)?;
    // SAFETY: checked non-null; the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_owned)
        .map_err(|_| E_INVALIDARG)
}

/// Writes a new string for the caller to free with `PeerFreeData`: a block of its own, so the
/// one free the caller knows releases it.
///
/// # Safety
/// `out` must be non-null and valid for a write.
pub(crate) unsafe fn give_wstr(out: *mut PWSTR, s: &str) {
    let (block, _) = CBlock::for_wstr(s);
    // SAFETY: the caller checked `out`.
    unsafe { out.write(block.into_raw() as PWSTR) };
}
