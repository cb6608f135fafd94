//! The group lifecycle, status and properties functions of `p2p.h`: `PeerGroupCreate`,
//! `Open`, `Join`, `Connect`, `ConnectByAddress`, `Close`, `Delete`, `GetStatus`,
//! `GetProperties` and `SetProperties`.
//!
//! An `HGROUP` is an entry of the handle table holding an `Arc` of the group layer's handle.
//! Calls clone it out of the table and release the global lock before doing anything that
//! waits; network calls block on the library's runtime.

use std::time::Instant;

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::identity::PeerName;
use peergroup_core::GroupHandle;

use crate::alloc::CBlock;
use crate::convert::{
    peer_address_from_socket_addr, properties_block, read_properties, socket_addr_from_peer_address,
};
use crate::ffi::{read_opt, read_req, require_in, require_out, slice_in};
use crate::runtime::{
    entry, exclusive, from_handle, group_and_network, lock, started_network, ToHresult,
    EXCLUSIVE_WAIT,
};
use crate::types::{
    BOOL, DWORD, HGROUP, PCWSTR, PEERGROUP_NAT_CLASS, PEERGROUP_NAT_ENDPOINT_DEPENDENT,
    PEERGROUP_NAT_ENDPOINT_INDEPENDENT, PEERGROUP_NAT_NONE, PEERGROUP_NAT_UNKNOWN,
    PEERGROUP_OUTSIDE_REACHABLE, PEERGROUP_OUTSIDE_UNKNOWN, PEERGROUP_OUTSIDE_UNREACHABLE,
    PEERGROUP_REACHABILITY, PEER_ADDRESS, PEER_GROUP_PROPERTIES, ULONG,
};

/// Largest `cAddresses` accepted by `PeerGroupConnectByAddress`.
const MAX_CONNECT_ADDRESSES: usize = 1024;

/// Puts a new group handle in the table and writes it for the caller. If the library was
/// shut down meanwhile, the handle is closed again and `PEER_E_NOT_INITIALIZED` returned.
fn give_group(group: GroupHandle, out: *mut HGROUP) -> Result<HRESULT, HRESULT> {
    let inserted = lock().insert_group(group);
    match inserted {
        Ok(h) => {
            // SAFETY: callers checked `out`; the caller promises it is writable.
            unsafe { out.write(h) };
            Ok(hresult::S_OK)
        }
        Err((hr, group)) => {
            // Outside the lock; the fallback close of a dropped handle does not wait.
            drop(group);
            Err(hr)
        }
    }
}

/// Reads an optional identity argument: NULL is the default identity.
///
/// # Safety
/// `p` NULL or NUL-terminated UTF-16.
unsafe fn read_identity(p: PCWSTR) -> Result<Option<PeerName>, HRESULT> {
    // SAFETY: forwarded contract.
    unsafe { read_opt(p) }?
        .map(|s| s.parse::<PeerName>())
        .transpose()
        .hr()
}

/// Reads a required peer name: NULL is `E_INVALIDARG`.
///
/// # Safety
/// `p` NULL or NUL-terminated UTF-16.
unsafe fn read_peer_name(p: PCWSTR) -> Result<PeerName, HRESULT> {
    // SAFETY: forwarded contract.
    unsafe { read_req(p) }?.parse::<PeerName>().hr()
}

/// Creates a group from `pProperties` and returns an offline handle; the creator (NULL
/// `pwzCreatorPeerName`: the default identity) is its administrator. `pwzGroupPeerName`
/// must be NULL or empty (`PEER_E_INVALID_GROUP_PROPERTIES`): the name is generated.
/// `dwSize` must be at least the XP size of the structure (`E_INVALIDARG`).
///
/// # Safety
/// `pProperties` NULL or a readable `PEER_GROUP_PROPERTIES` (for `dwSize` bytes) whose strings
/// are NULL or NUL-terminated UTF-16; `phGroup` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupCreate(
    pProperties: *mut PEER_GROUP_PROPERTIES,
    phGroup: *mut HGROUP,
) -> HRESULT {
    entry(|| {
        require_out(phGroup)?;
        require_in(pProperties)?;
        let net = started_network()?;
        // SAFETY: checked non-null; per this function's contract.
        let props = unsafe { read_properties(pProperties) }?;
        let group = net.pg.create_group(props).hr()?;
        give_group(group, phGroup)
    })
}

/// Opens a new handle to a group this identity (NULL: the default one) created or joined.
/// `PEER_E_NOT_FOUND` if it did not. `pwzCloud` is read and otherwise ignored: there are no
/// PNRP clouds here.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16; `phGroup` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupOpen(
    pwzIdentity: PCWSTR,
    pwzGroupPeerName: PCWSTR,
    pwzCloud: PCWSTR,
    phGroup: *mut HGROUP,
) -> HRESULT {
    entry(|| {
        require_out(phGroup)?;
        require_in(pwzGroupPeerName)?;
        let net = started_network()?;
        // SAFETY: per this function's contract.
        let identity = unsafe { read_identity(pwzIdentity) }?;
        // SAFETY: per this function's contract.
        let group_name = unsafe { read_peer_name(pwzGroupPeerName) }?;
        // SAFETY: per this function's contract.
        let _cloud = unsafe { read_opt(pwzCloud) }?;
        let group = net.pg.open_group(identity.as_ref(), &group_name).hr()?;
        give_group(group, phGroup)
    })
}

/// Joins a group with a GMC invitation for this identity (NULL: the default one) and
/// returns an offline handle; nothing is sent until `PeerGroupConnect`. `pwzCloud` is read
/// and otherwise ignored.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16; `phGroup` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupJoin(
    pwzIdentity: PCWSTR,
    pwzInvitation: PCWSTR,
    pwzCloud: PCWSTR,
    phGroup: *mut HGROUP,
) -> HRESULT {
    entry(|| {
        require_out(phGroup)?;
        require_in(pwzInvitation)?;
        let net = started_network()?;
        // SAFETY: per this function's contract.
        let identity = unsafe { read_identity(pwzIdentity) }?;
        // SAFETY: per this function's contract.
        let invitation = unsafe { read_req(pwzInvitation) }?;
        // SAFETY: per this function's contract.
        let _cloud = unsafe { read_opt(pwzCloud) }?;
        let group = net.pg.join(identity.as_ref(), &invitation).hr()?;
        give_group(group, phGroup)
    })
}

/// Joins with a password invitation and the group password. The password is checked here,
/// by a SPAKE2 exchange with a member the invitation names (Windows checks it at the first
/// connect): a wrong password returns `HRESULT_FROM_WIN32(ERROR_INVALID_PASSWORD)` and stores
/// nothing. An identity that already joined gets a handle and `PEER_S_ALREADY_A_MEMBER`.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16 (invitation and password required);
/// `phGroup` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupPasswordJoin(
    pwzIdentity: PCWSTR,
    pwzInvitation: PCWSTR,
    pwzPassword: PCWSTR,
    pwzCloud: PCWSTR,
    phGroup: *mut HGROUP,
) -> HRESULT {
    entry(|| {
        require_out(phGroup)?;
        require_in(pwzInvitation)?;
        require_in(pwzPassword)?;
        let net = started_network()?;
        // SAFETY: per this function's contract.
        let identity = unsafe { read_identity(pwzIdentity) }?;
        // SAFETY: per this function's contract.
        let invitation = unsafe { read_req(pwzInvitation) }?;
        // SAFETY: per this function's contract.
        let password = unsafe { read_req(pwzPassword) }?;
        // SAFETY: per this function's contract.
        let _cloud = unsafe { read_opt(pwzCloud) }?;
        let (group, already) = net
            .rt
            .block_on(
                net.pg
                    .password_join(identity.as_ref(), &invitation, &password),
            )
            .hr()?;
        give_group(group, phGroup)?;
        Ok(if already {
            hresult::PEER_S_ALREADY_A_MEMBER
        } else {
            hresult::S_OK
        })
    })
}

/// Brings the group online: S_OK once the attempt has started (the transport is bound and
/// the group listens or looks for members); `PeerGroupGetStatus` shows the outcome.
#[no_mangle]
pub extern "C" fn PeerGroupConnect(hGroup: HGROUP) -> HRESULT {
    entry(|| {
        let (group, net) = group_and_network(hGroup)?;
        net.rt.block_on(group.connect()).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Like `PeerGroupConnect`, starting from the given addresses. Each `PEER_ADDRESS` needs
/// `dwSize == sizeof(PEER_ADDRESS)` and `AF_INET6`; v4-mapped addresses are used as IPv4.
/// `cAddresses` 0 (or over 1024), or a NULL array, is `E_INVALIDARG`.
///
/// # Safety
/// `pAddresses` NULL or readable for `cAddresses` structures.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupConnectByAddress(
    hGroup: HGROUP,
    cAddresses: ULONG,
    pAddresses: *mut PEER_ADDRESS,
) -> HRESULT {
    entry(|| {
        let count = cAddresses as usize;
        if pAddresses.is_null() || count == 0 || count > MAX_CONNECT_ADDRESSES {
            return Err(hresult::E_INVALIDARG);
        }
        let (group, net) = group_and_network(hGroup)?;
        // SAFETY: checked non-null; the caller promises `cAddresses` readable structures.
        let given = unsafe { slice_in(pAddresses as *const PEER_ADDRESS, count) };
        let addrs = given
            .iter()
            .map(socket_addr_from_peer_address)
            .collect::<Result<Vec<_>, _>>()?;
        net.rt.block_on(group.connect_by_address(&addrs)).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Invalidates this handle: it leaves the table first, so a second close of the same value
/// is `PEER_E_INVALID_GROUP`. The last handle to a group takes it offline (peers are told,
/// bounded in time) and the transport releases its port when no group is left online.
/// A handle whose group was deleted with `PeerGroupDelete` is released too, and the call
/// returns `PEER_E_INVALID_GROUP`, as for any call on such a handle. Event registrations
/// made through the handle end once the close is done: their last events (the group going
/// offline) stay readable, then `PeerGroupGetEventData` says `PEER_S_NO_EVENT_DATA`.
#[no_mangle]
pub extern "C" fn PeerGroupClose(hGroup: HGROUP) -> HRESULT {
    entry(|| {
        let (shared, net) = {
            let mut rt = lock();
            let group = rt.remove_group(hGroup)?;
            (group, rt.network()?)
        };
        // Another thread may be in a call on this handle right now; wait (bounded) until it
        // lets go. If it does not, the last user's drop takes the handle offline.
        let closed = match exclusive(shared, Instant::now() + EXCLUSIVE_WAIT) {
            Some(group) => net.rt.block_on(group.close()),
            None => Ok(()),
        };
        // Registrations made through this handle end after its last events (going offline).
        if let Some(key) = from_handle(hGroup) {
            lock().end_registrations_of(key);
        }
        closed.hr()?;
        Ok(hresult::S_OK)
    })
}

/// Deletes this identity's (NULL: the default one's) data for a group. Every open handle to
/// it becomes invalid at once (`PEER_E_INVALID_GROUP`; close them to release them) and its
/// connections close. `PEER_E_NOT_FOUND` if the identity has no such group.
///
/// # Safety
/// String arguments NULL or NUL-terminated UTF-16.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupDelete(pwzIdentity: PCWSTR, pwzGroupPeerName: PCWSTR) -> HRESULT {
    entry(|| {
        require_in(pwzGroupPeerName)?;
        let net = started_network()?;
        // SAFETY: per this function's contract.
        let identity = unsafe { read_identity(pwzIdentity) }?;
        // SAFETY: per this function's contract.
        let group_name = unsafe { read_peer_name(pwzGroupPeerName) }?;
        net.rt
            .block_on(net.pg.delete_group(identity.as_ref(), &group_name))
            .hr()?;
        Ok(hresult::S_OK)
    })
}

/// The group's status: `PEER_GROUP_STATUS_LISTENING` | `PEER_GROUP_STATUS_HAS_CONNECTIONS`,
/// 0 while offline.
///
/// # Safety
/// `pdwStatus` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupGetStatus(hGroup: HGROUP, pdwStatus: *mut DWORD) -> HRESULT {
    entry(|| {
        require_out(pdwStatus)?;
        let group = lock().group(hGroup)?;
        let status = group.status().hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { pdwStatus.write(status) };
        Ok(hresult::S_OK)
    })
}

/// Peergroup extension: makes this member relay for the group's other members (`fRelay`
/// TRUE) or stop (FALSE). Members behind NATs that cannot dial each other then connect
/// through it; the relay forwards their end-to-end encrypted connection. Kept with the
/// group; neighbours learn it on their next connection. `E_INVALIDARG` for a `fRelay`
/// other than TRUE (1) or FALSE (0); `PEER_E_INVALID_GROUP` for a bad or closed handle.
#[no_mangle]
pub extern "C" fn PeerGroupSetRelay(hGroup: HGROUP, fRelay: BOOL) -> HRESULT {
    entry(|| {
        let on = match fRelay {
            0 => false,
            1 => true,
            _ => return Err(hresult::E_INVALIDARG),
        };
        let group = lock().group(hGroup)?;
        group.set_relay(on).hr()?;
        Ok(hresult::S_OK)
    })
}

/// Peergroup extension: what this member knows of the NAT in front of it (the mapping class
/// from other members' views, the result of its dial-back test) and the addresses and relays
/// it advertises, as one block for `PeerFreeData`. Offline: unknown, no addresses.
/// `E_POINTER` for a NULL `ppReachability`; `PEER_E_INVALID_GROUP` for a bad handle.
///
/// # Safety
/// `ppReachability` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupGetReachability(
    hGroup: HGROUP,
    ppReachability: *mut *mut PEERGROUP_REACHABILITY,
) -> HRESULT {
    entry(|| {
        require_out(ppReachability)?;
        let group = lock().group(hGroup)?;
        let r = group.reachable().hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppReachability.write(reachability_block(&r)) };
        Ok(hresult::S_OK)
    })
}

/// `r` as a `PEERGROUP_REACHABILITY` block with its address arrays.
fn reachability_block(r: &peergroup_core::values::Reachable) -> *mut PEERGROUP_REACHABILITY {
    use peergroup_core::dialback::Outside;
    let addresses = |list: &[std::net::SocketAddr]| -> Vec<PEER_ADDRESS> {
        list.iter().map(peer_address_from_socket_addr).collect()
    };
    let (advertised, relays) = (addresses(&r.advertised), addresses(&r.relays));
    let (outside, at) = match r.outside {
        Outside::Unknown => (PEERGROUP_OUTSIDE_UNKNOWN, None),
        Outside::Reachable(a) => (PEERGROUP_OUTSIDE_REACHABLE, Some(a)),
        Outside::Unreachable => (PEERGROUP_OUTSIDE_UNREACHABLE, None),
    };
    let (mut block, root) = CBlock::for_array::<PEERGROUP_REACHABILITY>(1);
    let value = PEERGROUP_REACHABILITY {
        dwSize: size_of::<PEERGROUP_REACHABILITY>() as DWORD,
        natClass: nat_class(r.nat),
        outside,
        // SAFETY: PEER_ADDRESS is plain data (a size and a sockaddr_in6): all zero is valid.
        reachableAt: at.map_or(unsafe { std::mem::zeroed() }, |a| {
            peer_address_from_socket_addr(&a)
        }),
        cAddresses: advertised.len() as ULONG,
        pAddresses: block.array(&advertised),
        cRelays: relays.len() as ULONG,
        pRelays: block.array(&relays),
    };
    // SAFETY: the root holds one zeroed, aligned PEERGROUP_REACHABILITY owned by the block.
    unsafe { root.write(value) };
    block.into_raw() as *mut PEERGROUP_REACHABILITY
}

fn nat_class(c: peergroup_core::reachability::NatClass) -> PEERGROUP_NAT_CLASS {
    use peergroup_core::reachability::NatClass;
    match c {
        NatClass::Unknown => PEERGROUP_NAT_UNKNOWN,
        NatClass::None => PEERGROUP_NAT_NONE,
        NatClass::EndpointIndependent => PEERGROUP_NAT_ENDPOINT_INDEPENDENT,
        NatClass::EndpointDependent => PEERGROUP_NAT_ENDPOINT_DEPENDENT,
    }
}

/// The group's properties as one block (structure and strings) for `PeerFreeData`.
///
/// # Safety
/// `ppProperties` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupGetProperties(
    hGroup: HGROUP,
    ppProperties: *mut *mut PEER_GROUP_PROPERTIES,
) -> HRESULT {
    entry(|| {
        require_out(ppProperties)?;
        let group = lock().group(hGroup)?;
        let props = group.properties().hr()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppProperties.write(properties_block(&props)) };
        Ok(hresult::S_OK)
    })
}

/// Changes the group's properties: administrators only (`PEER_E_NOT_AUTHORIZED`). The
/// cloud, classifier, group and creator names cannot change (NULL or empty keeps them,
/// another value is `PEER_E_INVALID_GROUP_PROPERTIES`).
///
/// # Safety
/// As for `PeerGroupCreate`'s `pProperties`.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupSetProperties(
    hGroup: HGROUP,
    pProperties: *mut PEER_GROUP_PROPERTIES,
) -> HRESULT {
    entry(|| {
        require_in(pProperties)?;
        let group = lock().group(hGroup)?;
        // SAFETY: checked non-null; per this function's contract.
        let props = unsafe { read_properties(pProperties) }?;
        group.set_properties(&props).hr()?;
        Ok(hresult::S_OK)
    })
}
