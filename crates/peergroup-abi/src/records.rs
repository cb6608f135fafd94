//! The record functions of `p2p.h`: `PeerGroupAddRecord`, `UpdateRecord`, `DeleteRecord`,
//! `GetRecord`, `EnumRecords`, `SearchRecords`, `ExportDatabase` and `ImportDatabase`.
//!
//! Records are local for now: they live in this peer's database of the group and are not
//! yet sent to other members. Times cross as `FILETIME` and are Unix milliseconds inside;
//! GUIDs are 16 bytes in Windows order.

use std::sync::Arc;

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::{GroupHandle, NewRecord};

use crate::convert::{guid_bytes, guid_from_bytes, read_record, record_block, RecordInput};
use crate::ffi::{read_in_opt, read_in_req, read_req, require_in, require_out};
use crate::identity::open_enumeration;
use crate::runtime::{entry, lock, EnumItem, ToHresult};
use crate::types::{GUID, HGROUP, HPEERENUM, PCWSTR, PEER_RECORD};

/// Adds a record and writes its new id. Read from `pRecord`: `dwSize` (must be
/// `sizeof(PEER_RECORD)`, else `E_INVALIDARG`), `type`, `pwzAttributes`, `ftExpiration` (in
/// the future, else `PEER_E_INVALID_RECORD_EXPIRATION`) and `data`; the rest is the
/// infrastructure's. `PEER_E_INVALID_ATTRIBUTES` for attributes that are not valid XML.
///
/// # Safety
/// `pRecord` NULL or a readable `PEER_RECORD` whose `pwzAttributes` is NULL or
/// NUL-terminated UTF-16 and whose `data` is readable; `pRecordId` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupAddRecord(
    hGroup: HGROUP,
    pRecord: *mut PEER_RECORD,
    pRecordId: *mut GUID,
) -> HRESULT {
    entry(|| {
        require_out(pRecordId)?;
        // SAFETY: per this function's contract.
        let (group, input) = unsafe { group_and_record(hGroup, pRecord) }?;
        let id = group
            .add_record(NewRecord {
                record_type: input.record_type,
                attributes: input.attributes,
                expires_ms: input.expires_ms,
                data: input.data,
            })
            .hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { pRecordId.write(guid_from_bytes(&id)) };
        Ok(hresult::S_OK)
    })
}

/// Updates the record `pRecord->id`: its attributes, expiration (which may not shrink) and
/// data. The other fields are ignored; the version rises by one. `PEER_E_RECORD_NOT_FOUND`,
/// `PEER_E_NOT_AUTHORIZED` (neither the creator nor an administrator).
///
/// # Safety
/// As for `PeerGroupAddRecord`'s `pRecord`.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupUpdateRecord(
    hGroup: HGROUP,
    pRecord: *mut PEER_RECORD,
) -> HRESULT {
    entry(|| {
        // SAFETY: per this function's contract.
        let (group, input) = unsafe { group_and_record(hGroup, pRecord) }?;
        group
            .update_record(&input.id, &input.attributes, input.expires_ms, input.data)
            .hr()?;
        Ok(hresult::S_OK)
    })
}

/// Deletes a record (a tombstone underneath). `PEER_E_RECORD_NOT_FOUND`,
/// `PEER_E_NOT_AUTHORIZED`.
///
/// # Safety
/// `pRecordId` NULL or a readable `GUID`.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupDeleteRecord(hGroup: HGROUP, pRecordId: *const GUID) -> HRESULT {
    entry(|| {
        // SAFETY: per this function's contract.
        let id = unsafe { read_record_id(pRecordId) }?;
        let group = lock().group(hGroup)?;
        group.delete_record(&id).hr()?;
        Ok(hresult::S_OK)
    })
}

/// A live record of the local database as one `PeerFreeData` block.
/// `PEER_E_RECORD_NOT_FOUND` for an unknown, deleted or expired record.
///
/// # Safety
/// `pRecordId` NULL or a readable `GUID`; `ppRecord` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupGetRecord(
    hGroup: HGROUP,
    pRecordId: *const GUID,
    ppRecord: *mut *mut PEER_RECORD,
) -> HRESULT {
    entry(|| {
        require_out(ppRecord)?;
        // SAFETY: per this function's contract.
        let id = unsafe { read_record_id(pRecordId) }?;
        let group = lock().group(hGroup)?;
        let rec = group.get_record(&id).hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppRecord.write(record_block(&rec)) };
        Ok(hresult::S_OK)
    })
}

/// Enumerates the live records of one type (NULL `pRecordType`: all types); items are
/// `PEER_RECORD`.
///
/// # Safety
/// `pRecordType` NULL or a readable `GUID`; `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupEnumRecords(
    hGroup: HGROUP,
    pRecordType: *const GUID,
    phPeerEnum: *mut HPEERENUM,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        let group = lock().group(hGroup)?;
        // SAFETY: the caller promises NULL or a readable GUID.
        let record_type = unsafe { read_in_opt(pRecordType) }.map(|g| guid_bytes(&g));
        let records = group.enum_records(record_type).hr()?;
        open_enumeration(
            records
                .into_iter()
                .map(|r| EnumItem::Record(Box::new(r)))
                .collect(),
            phPeerEnum,
        )
    })
}

/// Enumerates the live records that match an XML query (`<peersearch>`); items are
/// `PEER_RECORD`. `PEER_E_INVALID_SEARCH` for a query that breaks the schema.
///
/// # Safety
/// `pwzCriteria` NULL or NUL-terminated UTF-16; `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupSearchRecords(
    hGroup: HGROUP,
    pwzCriteria: PCWSTR,
    phPeerEnum: *mut HPEERENUM,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        require_in(pwzCriteria)?;
        let group = lock().group(hGroup)?;
        // SAFETY: checked non-null; per this function's contract.
        let criteria = unsafe { read_req(pwzCriteria) }?;
        let records = group.search_records(&criteria).hr()?;
        open_enumeration(
            records
                .into_iter()
                .map(|r| EnumItem::Record(Box::new(r)))
                .collect(),
            phPeerEnum,
        )
    })
}

/// The argument checks of add and update, in Windows' order: a NULL record is
/// `E_INVALIDARG`, then the group, then the record as [`read_record`] reads it.
///
/// # Safety
/// `p` NULL or as for [`read_record`].
unsafe fn group_and_record(
    h: HGROUP,
    p: *const PEER_RECORD,
) -> Result<(Arc<GroupHandle>, RecordInput), HRESULT> {
    require_in(p)?;
    let group = lock().group(h)?;
    // SAFETY: checked non-null; forwarded contract.
    let input = unsafe { read_record(p) }?;
    Ok((group, input))
}

/// Reads a required record id: a NULL pointer is `E_INVALIDARG`.
///
/// # Safety
/// `p` NULL or a readable `GUID`.
unsafe fn read_record_id(p: *const GUID) -> Result<[u8; 16], HRESULT> {
    // SAFETY: forwarded contract.
    Ok(guid_bytes(&unsafe { read_in_req(p) }?))
}

/// Reads a required, non-empty file path.
///
/// # Safety
/// `p` NULL or NUL-terminated UTF-16.
unsafe fn read_path(p: PCWSTR) -> Result<std::path::PathBuf, HRESULT> {
    // SAFETY: forwarded contract.
    let path = unsafe { read_req(p) }?;
    if path.is_empty() {
        return Err(hresult::E_INVALIDARG);
    }
    Ok(path.into())
}

/// The body of the two database file calls: a NULL path is `E_INVALIDARG` (checked before
/// the handle, as Windows does), then the group, then `f` with the path.
///
/// # Safety
/// `pwzFilePath` NULL or NUL-terminated UTF-16.
unsafe fn with_group_file(
    hGroup: HGROUP,
    pwzFilePath: PCWSTR,
    f: impl FnOnce(&peergroup_core::GroupHandle, &std::path::Path) -> peergroup_core::Result<()>,
) -> HRESULT {
    entry(|| {
        require_in(pwzFilePath)?;
        let group = lock().group(hGroup)?;
        // SAFETY: checked non-null; per the caller's contract.
        let path = unsafe { read_path(pwzFilePath) }?;
        f(&group, &path).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Writes a snapshot of this member's database of the group (live records and tombstones,
/// not expired ones) to `pwzFilePath`, replacing the file atomically. Only before
/// `PeerGroupConnect`: `PEER_E_GROUP_IN_USE` once the group is online. File-system errors
/// come back as Windows' (`HRESULT_FROM_WIN32`).
///
/// # Safety
/// `pwzFilePath` NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupExportDatabase(hGroup: HGROUP, pwzFilePath: PCWSTR) -> HRESULT {
    // SAFETY: per this function's contract.
    unsafe {
        with_group_file(hGroup, pwzFilePath, |g, path| {
            g.export_database(path).map(|_| ())
        })
    }
}

/// Imports a file `PeerGroupExportDatabase` wrote for this group and this member: each record
/// is verified and stored under the conflict order, all in one transaction; expired ones are
/// skipped. A truncated, corrupted or foreign file (another group or member) is
/// `PEER_E_INVALID_DATABASE`, a record that fails verification its own error; either way
/// nothing changes. Only before `PeerGroupConnect` (`PEER_E_GROUP_IN_USE`). File-system
/// errors come back as Windows' (`HRESULT_FROM_WIN32`).
///
/// # Safety
/// `pwzFilePath` NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupImportDatabase(hGroup: HGROUP, pwzFilePath: PCWSTR) -> HRESULT {
    // SAFETY: per this function's contract.
    unsafe {
        with_group_file(hGroup, pwzFilePath, |g, path| {
            g.import_database(path).map(|_| ())
        })
    }
}
