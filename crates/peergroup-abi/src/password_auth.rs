//! `PeerGroupResumePasswordAuthentication`: Windows 7 added it without documentation; the
//! behaviour here is Peergroup's (see `peergroup_core`'s `handle::password` module).

use peergroup_core::identity::hresult::{self, HRESULT};

use crate::runtime::{entry, lock, ToHresult};
use crate::types::{HGROUP, HPEEREVENT};

/// Lets password authentication at this member go on after a failure suspended it. A
/// registration listing `PEER_GROUP_EVENT_AUTHENTICATION_FAILED` suspends password
/// authentication when a joiner fails it (joiners are then refused with
/// `PEER_E_NOT_AUTHORIZED`); the application handles the event, then calls this with that
/// registration. `E_INVALIDARG` for a bad `hPeerEventHandle`, or a registration that is not
/// for authentication failures of this group; `PEER_E_INVALID_GROUP` for a bad `hGroup`;
/// `PEER_E_NOT_FOUND` when nothing is suspended.
#[no_mangle]
pub extern "C" fn PeerGroupResumePasswordAuthentication(
    hGroup: HGROUP,
    hPeerEventHandle: HPEEREVENT,
) -> HRESULT {
    entry(|| {
        let (group, registration) = {
            let rt = lock();
            (rt.group(hGroup)?, rt.event(hPeerEventHandle)?)
        };
        let hold = registration.password_hold().ok_or(hresult::E_INVALIDARG)?;
        group.resume_password_authentication(hold).hr()?;
        Ok(hresult::S_OK)
    })
}
