//! The connection and data functions of `p2p.h`: `PeerGroupOpenDirectConnection`,
//! `PeerGroupCloseDirectConnection`, `PeerGroupEnumConnections` and `PeerGroupSendData`.
//!
//! Connection ids are the library's (unique for the life of the process's node); what
//! arrives comes as `PEER_GROUP_EVENT_DIRECT_CONNECTION` and `PEER_GROUP_EVENT_INCOMING_DATA`
//! events (see `events.rs`).

use peergroup_core::direct::ConnectionInfo;
use peergroup_core::identity::hresult::{self, HRESULT};

use crate::alloc::CBlock;
use crate::convert::{guid_bytes, peer_address_from_socket_addr, socket_addr_from_peer_address};
use crate::ffi::{read_in_opt, read_in_req, read_req, require_in, require_out, try_slice_in};
use crate::identity::open_enumeration;
use crate::runtime::{entry, group_and_network, lock, EnumItem, ToHresult};
use crate::types::{
    DWORD, GUID, HGROUP, HPEERENUM, PCWSTR, PEER_ADDRESS, PEER_CONNECTION_INFO, PVOID, ULONG,
    ULONGLONG,
};

/// A `PEER_CONNECTION_INFO` child of `block`, its strings in the same block.
pub fn connection_child(block: &mut CBlock, c: &ConnectionInfo) -> *mut PEER_CONNECTION_INFO {
    let peer = block.wstr(&c.member);
    block.child(PEER_CONNECTION_INFO {
        dwSize: std::mem::size_of::<PEER_CONNECTION_INFO>() as DWORD,
        dwFlags: c.flags,
        ullConnectionId: c.connection_id,
        ullNodeId: c.node_id,
        pwzPeerId: peer,
        address: peer_address_from_socket_addr(&c.address),
    })
}

/// Starts a direct connection to the member `pwzIdentity` and writes its connection id at
/// once. The id is usable when a `PEER_GROUP_EVENT_DIRECT_CONNECTION` event for it reports
/// `PEER_CONNECTED`; a failed attempt still returns `S_OK` and the event reports
/// `PEER_CONNECTION_FAILED` with `hrConnectionFailedReason` (as on Windows). `pAddress` may
/// be NULL here (Windows requires it): the member's address as a neighbour or as last seen.
///
/// Errors: `E_INVALIDARG` (NULL identity, a name that is not a peer name, a bad
/// `PEER_ADDRESS`), `E_POINTER` (NULL `pullConnectionId`), `PEER_E_CONNECT_SELF`,
/// `PEER_E_GROUP_NOT_READY` (not connected), `PEER_E_NODE_NOT_FOUND` (no address given and
/// none known), `E_HANDLE`.
///
/// # Safety
/// `pwzIdentity` NULL or NUL-terminated UTF-16; `pAddress` NULL or a readable
/// `PEER_ADDRESS`; `pullConnectionId` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupOpenDirectConnection(
    hGroup: HGROUP,
    pwzIdentity: PCWSTR,
    pAddress: *mut PEER_ADDRESS,
    pullConnectionId: *mut ULONGLONG,
) -> HRESULT {
    entry(|| {
        require_out(pullConnectionId)?;
        require_in(pwzIdentity)?;
        let group = lock().group(hGroup)?;
        // SAFETY: checked non-null; per this function's contract.
        let member = unsafe { read_req(pwzIdentity) }?
            .parse::<peergroup_core::identity::PeerName>()
            .map_err(|_| hresult::E_INVALIDARG)?;
        // SAFETY: the caller promises NULL or a readable PEER_ADDRESS.
        let address = unsafe { read_in_opt(pAddress) }
            .map(|a| socket_addr_from_peer_address(&a))
            .transpose()?;
        let id = group.open_direct_connection(&member, address).hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { pullConnectionId.write(id) };
        Ok(hresult::S_OK)
    })
}

/// Closes a direct connection (or stops one being made); both sides then get a
/// `PEER_DISCONNECTED` direct connection event. `PEER_E_CONNECTION_NOT_FOUND` for an id that
/// is not an open direct connection of the group.
#[no_mangle]
pub extern "C" fn PeerGroupCloseDirectConnection(
    hGroup: HGROUP,
    ullConnectionId: ULONGLONG,
) -> HRESULT {
    entry(|| {
        let group = lock().group(hGroup)?;
        group.close_direct_connection(ullConnectionId).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Enumerates the group's connections; items are `PEER_CONNECTION_INFO`. `dwFlags` is
/// `PEER_CONNECTION_NEIGHBOR`, `PEER_CONNECTION_DIRECT` or both; anything else is
/// `E_INVALIDARG`. An offline group has none.
///
/// # Safety
/// `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupEnumConnections(
    hGroup: HGROUP,
    dwFlags: DWORD,
    phPeerEnum: *mut HPEERENUM,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        let group = lock().group(hGroup)?;
        let conns = group.connections(dwFlags).hr()?;
        open_enumeration(
            conns.into_iter().map(EnumItem::Connection).collect(),
            phPeerEnum,
        )
    })
}

/// Sends `cbData` bytes at `pvData`, tagged with `*pType`, on a neighbour or direct
/// connection of the group. The other member gets them whole, in the order sent on that
/// connection, as one `PEER_GROUP_EVENT_INCOMING_DATA` event. Returns once the message is
/// queued; waits while the receiver does not keep up.
///
/// Errors: `PEER_E_CONNECTION_NOT_FOUND` (no open connection of the group with that id, also
/// once it closed), `E_INVALIDARG` (NULL `pType`, NULL `pvData` with `cbData` > 0, or more
/// than 16 MiB in one message), `E_HANDLE`.
///
/// # Safety
/// `pType` NULL or a readable GUID; `pvData` NULL or readable for `cbData` bytes.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupSendData(
    hGroup: HGROUP,
    ullConnectionId: ULONGLONG,
    pType: *const GUID,
    cbData: ULONG,
    pvData: PVOID,
) -> HRESULT {
    entry(|| {
        // SAFETY: the caller promises NULL or a readable GUID.
        let data_type = guid_bytes(&unsafe { read_in_req(pType) }?);
        // SAFETY: the caller promises NULL or cbData readable bytes, which stay untouched for
        // the length of this call.
        let data: &[u8] = unsafe { try_slice_in(pvData as *const u8, cbData as usize) }?;
        let (group, net) = group_and_network(hGroup)?;
        net.rt
            .block_on(group.send_data(ullConnectionId, &data_type, data))
            .hr()?;
        Ok(hresult::S_OK)
    })
}
