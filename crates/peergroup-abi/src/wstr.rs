//! UTF-16 strings from C (`PCWSTR`).

use crate::types::{HRESULT, PCWSTR};
use peergroup_core::identity::hresult::E_INVALIDARG;

/// Longest string read from a caller, in UTF-16 units, so an unterminated buffer is caught
/// rather than read to the end of memory.
pub(crate) const MAX_WSTR_UNITS: usize = 1 << 20;

/// Reads an optional NUL-terminated UTF-16 string: NULL is `None`; invalid UTF-16 or a
/// string over the bound (1 Mi units) is `E_INVALIDARG`.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated array of WCHAR readable up to its NUL.
pub unsafe fn read_opt(p: PCWSTR) -> Result<Option<String>, HRESULT> {
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
pub unsafe fn read_req(p: PCWSTR) -> Result<String, HRESULT> {
    // SAFETY: forwarded contract.
    unsafe { read_opt(p) }?.ok_or(E_INVALIDARG)
}
