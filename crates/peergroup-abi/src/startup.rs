//! `PeerGroupStartup` and `PeerGroupShutdown`.

use peergroup_core::identity::hresult::{self, HRESULT};

use crate::ffi::require_out;
use crate::runtime::{entry, lock};
use crate::types::{PEER_GROUP_VERSION, PEER_VERSION_DATA, WORD};

/// Negotiates a version: the low byte of a version WORD is the major number, the high byte
/// the minor one. Anything from 1.0 up is granted, capped at 1.1; below 1.0 is refused.
pub fn negotiate(requested: WORD) -> Result<WORD, HRESULT> {
    let (major, minor) = (requested & 0xff, requested >> 8);
    match (major, minor) {
        (0, _) => Err(hresult::PEER_E_UNSUPPORTED_VERSION),
        (1, 0) => Ok(0x0001),
        _ => Ok(PEER_GROUP_VERSION),
    }
}

/// Starts the library; every other call needs it first. Calls are counted: each successful
/// startup needs a `PeerGroupShutdown`.
///
/// # Safety
/// `pVersionData` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupStartup(
    wVersionRequested: WORD,
    pVersionData: *mut PEER_VERSION_DATA,
) -> HRESULT {
    entry(|| {
        require_out(pVersionData)?;
        let granted = negotiate(wVersionRequested)?;
        lock().startup()?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe {
            pVersionData.write(PEER_VERSION_DATA {
                wVersion: granted,
                wHighestVersion: PEER_GROUP_VERSION,
            })
        };
        Ok(hresult::S_OK)
    })
}

/// Undoes one `PeerGroupStartup`. The last one invalidates every handle still open, closes
/// the groups among them (bounded, as `PeerGroupClose` does) and stops the library's runtime.
#[no_mangle]
pub extern "C" fn PeerGroupShutdown() -> HRESULT {
    entry(|| {
        // The lock is released before the groups close: closing waits on the network.
        let teardown = lock().shutdown()?;
        if let Some(t) = teardown {
            t.run();
        }
        Ok(hresult::S_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate(0x0101), Ok(0x0101));
        assert_eq!(negotiate(0x0001), Ok(0x0001));
        assert_eq!(negotiate(0x0202), Ok(0x0101));
        assert_eq!(negotiate(0x0002), Ok(0x0101));
        assert_eq!(negotiate(0x0100), Err(hresult::PEER_E_UNSUPPORTED_VERSION));
        assert_eq!(negotiate(0), Err(hresult::PEER_E_UNSUPPORTED_VERSION));
    }
}
