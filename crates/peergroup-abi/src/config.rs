//! Configuration transfer and peer time: `PeerGroupExportConfig`, `PeerGroupImportConfig`,
//! `PeerGroupPeerTimeToUniversalTime` and `PeerGroupUniversalTimeToPeerTime`.

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::GroupHandle;

use crate::convert::unix_ms_from_filetime;
use crate::ffi::{give_wstr, read_in_req, read_req, require_out};
use crate::runtime::{entry, lock, started_network, ToHresult};
use crate::types::{BOOL, FILETIME, HGROUP, PCWSTR, PWSTR};

/// Exports this identity's membership of the group as XML sealed under `pwzPassword` (any
/// password, even empty, as on Windows). The owner's export carries the group root key.
/// `E_POINTER` for a NULL `ppwzXML`, `E_INVALIDARG` for a NULL password.
///
/// # Safety
/// `pwzPassword` NULL or NUL-terminated UTF-16; `ppwzXML` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupExportConfig(
    hGroup: HGROUP,
    pwzPassword: PCWSTR,
    ppwzXML: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzXML)?;
        // SAFETY: per this function's contract.
        let password = unsafe { read_req(pwzPassword) }?;
        let group = lock().group(hGroup)?;
        let xml = group.export_config(&password).hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzXML, &xml) };
        Ok(hresult::S_OK)
    })
}

/// Imports a configuration `PeerGroupExportConfig` wrote and returns the identity and group
/// peer names to pass to `PeerGroupOpen`. The identity must exist here (`PEER_E_NOT_FOUND`:
/// import it first with `PeerIdentityImport`); a group it already holds is
/// `PEER_E_ALREADY_EXISTS` unless `fOverwrite`, and `PEER_E_GROUP_IN_USE` while open. A
/// wrong password is `0x80070056`, a malformed, truncated or altered document the identity
/// import's codes; any refusal leaves the disk as it was.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16; out-pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupImportConfig(
    pwzXML: PCWSTR,
    pwzPassword: PCWSTR,
    fOverwrite: BOOL,
    ppwzIdentity: *mut PWSTR,
    ppwzGroup: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzIdentity)?;
        require_out(ppwzGroup)?;
        // SAFETY: per this function's contract.
        let xml = unsafe { read_req(pwzXML) }?;
        // SAFETY: per this function's contract.
        let password = unsafe { read_req(pwzPassword) }?;
        let net = started_network()?;
        let (identity, group) = net
            .pg
            .import_config(&xml, &password, fOverwrite != 0)
            .hr()?;
        // SAFETY: both checked non-null.
        unsafe {
            give_wstr(ppwzIdentity, &identity.to_string());
            give_wstr(ppwzGroup, &group.to_string());
        }
        Ok(hresult::S_OK)
    })
}

/// Converts one `FILETIME` with `convert` (Unix ms → Unix ms), keeping the sub-millisecond
/// ticks of the input.
///
/// # Safety
/// `input` NULL or readable; `output` NULL or writable.
unsafe fn convert_time(
    hGroup: HGROUP,
    input: *const FILETIME,
    output: *mut FILETIME,
    convert: fn(&GroupHandle, i64) -> peergroup_core::Result<i64>,
) -> HRESULT {
    entry(|| {
        require_out(output)?;
        // SAFETY: NULL or readable per the contract.
        let ft = unsafe { read_in_req(input) }?;
        let group = lock().group(hGroup)?;
        let ms = unix_ms_from_filetime(ft);
        let shift = convert(&group, ms).hr()?.saturating_sub(ms);
        let ticks = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
        let ticks = (i128::from(ticks) + i128::from(shift) * 10_000).clamp(0, u64::MAX as i128);
        let ticks = ticks as u64;
        // SAFETY: checked non-null; writable per the contract.
        unsafe {
            output.write(FILETIME {
                dwLowDateTime: ticks as u32,
                dwHighDateTime: (ticks >> 32) as u32,
            })
        };
        Ok(hresult::S_OK)
    })
}

/// Converts a peer time (the group's clock) to UTC. Peer time here is the members' shared
/// wall clock, so the value comes back unchanged; `PEER_E_GROUP_NOT_READY` before the
/// member synchronised with its group once, `E_INVALIDARG` for a NULL input, `E_POINTER`
/// for a NULL output.
///
/// # Safety
/// `pftPeerTime` NULL or readable; `pftUniversalTime` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupPeerTimeToUniversalTime(
    hGroup: HGROUP,
    pftPeerTime: *mut FILETIME,
    pftUniversalTime: *mut FILETIME,
) -> HRESULT {
    // SAFETY: per this function's contract.
    unsafe {
        convert_time(
            hGroup,
            pftPeerTime,
            pftUniversalTime,
            GroupHandle::peer_time_to_universal,
        )
    }
}

/// Converts UTC to peer time: the inverse of `PeerGroupPeerTimeToUniversalTime`, with its
/// errors.
///
/// # Safety
/// `pftUniversalTime` NULL or readable; `pftPeerTime` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupUniversalTimeToPeerTime(
    hGroup: HGROUP,
    pftUniversalTime: *mut FILETIME,
    pftPeerTime: *mut FILETIME,
) -> HRESULT {
    // SAFETY: per this function's contract.
    unsafe {
        convert_time(
            hGroup,
            pftUniversalTime,
            pftPeerTime,
            GroupHandle::universal_to_peer_time,
        )
    }
}
