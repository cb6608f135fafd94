//! The member functions of `p2p.h`: `PeerGroupEnumMembers` and `PeerGroupIssueCredentials`,
//! and the `PEER_MEMBER` / `PEER_CREDENTIAL_INFO` conversions.

use std::mem::size_of;
use std::ptr;

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::identity::PeerName;
use peergroup_core::members::{CredentialInfo, CredentialSpec, Member};

use crate::alloc::CBlock;
use crate::convert::{
    cert_public_key_info, filetime_from_unix, guid_role, peer_address_from_socket_addr, role_guid,
    unix_from_filetime,
};
use crate::ffi::{
    give_wstr, read_cstr_req, read_opt, read_req, require_in, require_out, slice_in, try_slice_in,
};
use crate::identity::open_enumeration;
use crate::runtime::{entry, lock, EnumItem, ToHresult};
use crate::types::{
    CERT_PUBLIC_KEY_INFO, DWORD, FILETIME, GUID, HGROUP, HPEERENUM, PCWSTR, PEER_ADDRESS,
    PEER_CREDENTIAL_INFO, PEER_MEMBER, PWSTR,
};

/// A member's credential information as a child of `block`. The key comes from a chain the
/// core validated; should it not decompose, `pPublicKey` is NULL rather than the item lost.
fn credential_child(block: &mut CBlock, c: &CredentialInfo) -> *mut PEER_CREDENTIAL_INFO {
    let roles: Vec<GUID> = c.roles.iter().map(|r| role_guid(*r)).collect();
    let key = cert_public_key_info(block, &c.public_key_der).unwrap_or(ptr::null_mut());
    let value = PEER_CREDENTIAL_INFO {
        dwSize: size_of::<PEER_CREDENTIAL_INFO>() as DWORD,
        dwFlags: 0,
        pwzFriendlyName: block.wstr(&c.friendly_name),
        pPublicKey: key,
        pwzIssuerPeerName: block.wstr(&c.issuer_peer_name),
        pwzIssuerFriendlyName: block.wstr(&c.issuer_friendly_name),
        ftValidityStart: filetime_from_unix(c.not_before),
        ftValidityEnd: filetime_from_unix(c.not_after),
        cRoles: roles.len() as u32,
        pRoles: block.array(&roles),
    };
    block.child(value)
}

/// A `PEER_MEMBER` as a child of `block`, every pointer filled: identity, attributes (empty
/// when the member published none), the addresses (NULL with `cAddresses` 0 when it is not
/// present) and the credential information.
pub fn member_child(block: &mut CBlock, m: &Member) -> *mut PEER_MEMBER {
    let addrs: Vec<PEER_ADDRESS> = m
        .addresses
        .iter()
        .map(peer_address_from_socket_addr)
        .collect();
    let value = PEER_MEMBER {
        dwSize: size_of::<PEER_MEMBER>() as DWORD,
        dwFlags: m.flags,
        pwzIdentity: block.wstr(&m.identity),
        pwzAttributes: block.wstr(&m.attributes),
        ullNodeId: m.node_id,
        cAddresses: addrs.len() as u32,
        pAddresses: if addrs.is_empty() {
            ptr::null_mut()
        } else {
            block.array(&addrs)
        },
        pCredentialInfo: credential_child(block, &m.credential),
    };
    block.child(value)
}

/// Reads a `CERT_PUBLIC_KEY_INFO` back into a DER SubjectPublicKeyInfo (`E_INVALIDARG` when
/// its parts do not make one).
///
/// # Safety
/// `p` readable, with its strings and blobs readable for their lengths.
unsafe fn read_public_key(p: *const CERT_PUBLIC_KEY_INFO) -> Result<Vec<u8>, HRESULT> {
    // SAFETY: per this function's contract.
    let info = unsafe { p.read() };
    let bytes = |ptr: *const u8, len: DWORD| -> Result<Vec<u8>, HRESULT> {
        if len > 64 * 1024 {
            return Err(hresult::E_INVALIDARG);
        }
        // SAFETY: the caller promises `len` readable bytes (NULL is refused for `len` > 0).
        Ok(unsafe { try_slice_in(ptr, len as usize) }?.to_vec())
    };
    // SAFETY: the caller promises NULL or a NUL-terminated string.
    let oid = unsafe { read_cstr_req(info.Algorithm.pszObjId) }?;
    let parameters = bytes(
        info.Algorithm.Parameters.pbData,
        info.Algorithm.Parameters.cbData,
    )?;
    let key = bytes(info.PublicKey.pbData, info.PublicKey.cbData)?;
    let unused = u8::try_from(info.PublicKey.cUnusedBits).map_err(|_| hresult::E_INVALIDARG)?;
    crate::spki::encode_spki(&oid, &parameters, &key, unused).ok_or(hresult::E_INVALIDARG)
}

/// Reads what `PeerGroupIssueCredentials` takes from a `PEER_CREDENTIAL_INFO`: `dwSize`
/// (must be `sizeof`), the friendly name, the public key (required), the roles (at least
/// one) and the validity end (zero: the issuer's remaining lifetime). The issuer fields and
/// the validity start are ignored, as Windows does.
///
/// # Safety
/// `p` readable, its pointers NULL or readable as their fields say.
unsafe fn read_credential_info(p: *const PEER_CREDENTIAL_INFO) -> Result<CredentialSpec, HRESULT> {
    // SAFETY: per this function's contract.
    let info = unsafe { p.read() };
    if info.dwSize as usize != size_of::<PEER_CREDENTIAL_INFO>()
        || info.pPublicKey.is_null()
        || info.cRoles == 0
        || info.pRoles.is_null()
        || info.cRoles > 16
    {
        return Err(hresult::E_INVALIDARG);
    }
    // SAFETY: per this function's contract.
    let friendly_name = unsafe { read_opt(info.pwzFriendlyName) }?.unwrap_or_default();
    // SAFETY: checked non-null; per this function's contract.
    let public_key_der = unsafe { read_public_key(info.pPublicKey) }?;
    // SAFETY: checked non-null; the caller promises `cRoles` readable GUIDs.
    let roles = unsafe { slice_in(info.pRoles, info.cRoles as usize) }
        .iter()
        .map(guid_role)
        .collect::<Result<Vec<_>, _>>()?;
    let not_after =
        (info.ftValidityEnd != FILETIME::default()).then(|| unix_from_filetime(info.ftValidityEnd));
    Ok(CredentialSpec {
        friendly_name,
        public_key_der,
        roles,
        not_after,
    })
}

/// Enumerates the group's known members; items are `PEER_MEMBER`. `dwFlags` 0: every known
/// member, `PEER_MEMBER_PRESENT`: those online (other flags: `E_INVALIDARG`). With
/// `pwzIdentity`, that member alone, or `PEER_E_IDENTITY_NOT_FOUND` when it is not known
/// (not present, with `PEER_MEMBER_PRESENT`); with NULL the local member comes first.
///
/// # Safety
/// `pwzIdentity` NULL or NUL-terminated UTF-16; `phPeerEnum` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupEnumMembers(
    hGroup: HGROUP,
    dwFlags: DWORD,
    pwzIdentity: PCWSTR,
    phPeerEnum: *mut HPEERENUM,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEnum)?;
        let group = lock().group(hGroup)?;
        // SAFETY: per this function's contract.
        let identity = match unsafe { read_opt(pwzIdentity) }? {
            Some(text) => Some(text.parse::<PeerName>().hr()?),
            None => None,
        };
        let members = group.members(dwFlags, identity.as_ref()).hr()?;
        open_enumeration(
            members
                .into_iter()
                .map(|m| EnumItem::Member(Box::new(m)))
                .collect(),
            phPeerEnum,
        )
    })
}

/// Mints new credentials for `pwzSubjectIdentity` (administrators only:
/// `PEER_E_NOT_AUTHORIZED`): with `pCredentialInfo`'s roles, key and validity end, or with
/// NULL the roles of the member's stored member data (`PEER_E_IDENTITY_NOT_FOUND` when there
/// is none) until the issuer's own expiry. `PEER_GROUP_STORE_CREDENTIALS` publishes them in
/// the group database, where the member picks them up; with `dwFlags` 0 they come back as an
/// invitation in `ppwzInvitation` (then required: `E_POINTER`), which is also written when
/// given with the flag.
///
/// # Safety
/// `pwzSubjectIdentity` NULL or NUL-terminated UTF-16; `pCredentialInfo` NULL or a readable
/// `PEER_CREDENTIAL_INFO`; `ppwzInvitation` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupIssueCredentials(
    hGroup: HGROUP,
    pwzSubjectIdentity: PCWSTR,
    pCredentialInfo: *mut PEER_CREDENTIAL_INFO,
    dwFlags: DWORD,
    ppwzInvitation: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        if dwFlags == 0 {
            require_out(ppwzInvitation)?;
        }
        require_in(pwzSubjectIdentity)?;
        let group = lock().group(hGroup)?;
        // SAFETY: per this function's contract.
        let subject = unsafe { read_req(pwzSubjectIdentity) }?
            .parse::<PeerName>()
            .hr()?;
        let info = if pCredentialInfo.is_null() {
            None
        } else {
            // SAFETY: checked non-null; per this function's contract.
            Some(unsafe { read_credential_info(pCredentialInfo) }?)
        };
        let invitation = group
            .issue_credentials(&subject, info.as_ref(), dwFlags)
            .hr()?;
        if !ppwzInvitation.is_null() {
            // SAFETY: checked non-null; the caller promises it is writable.
            unsafe { give_wstr(ppwzInvitation, &invitation) };
        }
        Ok(hresult::S_OK)
    })
}
