//! The invitation functions of `p2p.h`: `PeerGroupCreateInvitation`,
//! `PeerGroupCreatePasswordInvitation` and `PeerGroupParseInvitation`.

use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::Peergroup;

use crate::convert::{guid_role, invitation_block, unix_from_filetime};
use crate::ffi::{give_wstr, read_in_opt, read_req, require_in, require_out, slice_in};
use crate::runtime::{entry, lock, ToHresult};
use crate::types::{FILETIME, GUID, HGROUP, PCWSTR, PEER_INVITATION_INFO, PWSTR, ULONG};

/// Invites the identity described by `pwzIdentityInfo` (its `PeerIdentityGetXML` document)
/// with the roles `pRoles` (none: Member) until `*pftExpiration` (NULL: the issuer's own
/// remaining lifetime). Administrators and inviting members only (`PEER_E_NOT_AUTHORIZED`);
/// nobody grants a role above their own. A GUID that is no `PEER_GROUP_ROLE_*` is
/// `PEER_E_INVALID_ROLE_PROPERTY`; an expiration after the issuer's or in the past is
/// `PEER_E_INVALID_TIME_PERIOD`.
///
/// # Safety
/// `pwzIdentityInfo` NULL or NUL-terminated UTF-16; `pftExpiration` NULL or readable;
/// `pRoles` NULL or readable for `cRoles` GUIDs; `ppwzInvitation` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupCreateInvitation(
    hGroup: HGROUP,
    pwzIdentityInfo: PCWSTR,
    pftExpiration: *mut FILETIME,
    cRoles: ULONG,
    pRoles: *const GUID,
    ppwzInvitation: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzInvitation)?;
        if pwzIdentityInfo.is_null() || (cRoles > 0 && pRoles.is_null()) {
            return Err(hresult::E_INVALIDARG);
        }
        let group = lock().group(hGroup)?;
        // SAFETY: per this function's contract.
        let identity_xml = unsafe { read_req(pwzIdentityInfo) }?;
        // SAFETY: the caller promises NULL or a readable FILETIME.
        let expiration = unsafe { read_in_opt(pftExpiration) }.map(unix_from_filetime);
        // SAFETY: checked non-null when `cRoles` > 0; the caller promises `cRoles` readable
        // GUIDs.
        let roles = unsafe { slice_in(pRoles, cRoles as usize) }
            .iter()
            .map(guid_role)
            .collect::<Result<Vec<_>, _>>()?;
        let invitation = group
            .create_invitation(&identity_xml, expiration, &roles)
            .hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzInvitation, &invitation) };
        Ok(hresult::S_OK)
    })
}

/// An invitation without a membership certificate, for `PeerGroupPasswordJoin`. The group
/// needs `PEER_GROUP_PASSWORD_AUTHENTICATION` (else `PEER_E_INVALID_GROUP_PROPERTIES`);
/// administrators and inviting members only.
///
/// # Safety
/// `ppwzInvitation` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupCreatePasswordInvitation(
    hGroup: HGROUP,
    ppwzInvitation: *mut PWSTR,
) -> HRESULT {
    entry(|| {
        require_out(ppwzInvitation)?;
        let group = lock().group(hGroup)?;
        let invitation = group.create_password_invitation().hr()?;
        // SAFETY: checked non-null.
        unsafe { give_wstr(ppwzInvitation, &invitation) };
        Ok(hresult::S_OK)
    })
}

/// Decodes an invitation for display, as one block for `PeerFreeData`: names, validity,
/// roles, cloud fields, the authentication scheme, and for GMC invitations the invitee's
/// name and public key (`pSubjectPublicKey`; NULL with the subject names for password
/// invitations). `cClassifiers` is 0. Malformed text is `E_INVALIDARG`; a root certificate
/// that does not match the group name is `PEER_E_INVITATION_NOT_TRUSTED`.
///
/// # Safety
/// `pwzInvitation` NULL or NUL-terminated UTF-16; `ppInvitationInfo` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupParseInvitation(
    pwzInvitation: PCWSTR,
    ppInvitationInfo: *mut *mut PEER_INVITATION_INFO,
) -> HRESULT {
    entry(|| {
        require_out(ppInvitationInfo)?;
        require_in(pwzInvitation)?;
        lock().store()?;
        // SAFETY: per this function's contract.
        let text = unsafe { read_req(pwzInvitation) }?;
        let invitation = Peergroup::parse_invitation(&text).hr()?;
        let info = invitation_block(&invitation)?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppInvitationInfo.write(info) };
        Ok(hresult::S_OK)
    })
}
