//! `PeerGroupPeerTimeToUniversalTime` and `PeerGroupUniversalTimeToPeerTime`.
//!
//! Peer time is the group's reference clock for record times. Here it is the members' wall
//! clock in ms since the Unix epoch (see docs/architecture.md): members keep their clocks
//! synchronised by the system (NTP), and the machine refuses records too far in the future
//! instead of measuring an offset. So both conversions are the identity; what they keep
//! from Windows is the contract: a member that never synchronised with its group has no
//! peer time yet (`PEER_E_GROUP_NOT_READY`).

use crate::error::{CoreError, Result};
use crate::group::LocalGroup;

impl LocalGroup {
    /// `PeerGroupPeerTimeToUniversalTime`: peer time (ms since the Unix epoch) to UTC (ms
    /// since the Unix epoch). `PEER_E_GROUP_NOT_READY` before the first synchronisation.
    pub fn peer_time_to_universal(&self, peer_ms: i64) -> Result<i64> {
        self.synchronised()?;
        Ok(peer_ms)
    }

    /// `PeerGroupUniversalTimeToPeerTime`: the inverse of
    /// [`LocalGroup::peer_time_to_universal`], with the same errors.
    pub fn universal_to_peer_time(&self, utc_ms: i64) -> Result<i64> {
        self.synchronised()?;
        Ok(utc_ms)
    }

    fn synchronised(&self) -> Result<()> {
        if self.live()?.config.synced {
            Ok(())
        } else {
            Err(CoreError::NotReady)
        }
    }
}
