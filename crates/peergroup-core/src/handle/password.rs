//! Authentication failures at a password authenticator, and resuming after them
//! (`PEER_GROUP_EVENT_AUTHENTICATION_FAILED`, `PeerGroupResumePasswordAuthentication`).
//!
//! Microsoft documents no behaviour for `PeerGroupResumePasswordAuthentication`; this is
//! ours. When a password joiner fails the proof at this member, the group raises
//! [`crate::Event::AuthenticationFailed`] with the reason (`0x80070056`, a wrong password).
//! An application that wants to decide what happens next takes a [`LocalPasswordHold`]
//! ([`LocalGroup::hold_password_authentication`]; the C ABI takes one for each registration
//! that lists `PEER_GROUP_EVENT_AUTHENTICATION_FAILED`). While any hold exists, a failure
//! *suspends* password authentication at this member: later password joiners are refused
//! (their connection is closed with `NotAuthorized`) until the application calls
//! [`LocalGroup::resume_password_authentication`]. That stops online guessing at the
//! speed of the network and leaves the policy (resume at once, after a delay, after asking
//! someone, never) to the application. Without holds, failures are only reported. When the
//! last hold goes, a suspension ends with it.

use std::sync::{Arc, Weak};

use crate::error::{CoreError, Result};
use crate::group::LocalGroup;
use crate::state::GroupInner;

/// An application's claim to decide when password authentication goes on after a failure.
/// Dropping it gives the claim up (and ends the suspension if it was the last one).
pub struct LocalPasswordHold {
    group: Weak<GroupInner>,
}

impl Drop for LocalPasswordHold {
    fn drop(&mut self) {
        if let Some(inner) = self.group.upgrade() {
            inner.password_gate.release();
        }
    }
}

impl LocalGroup {
    /// Takes a [`LocalPasswordHold`]: from now on a failed password authentication at this
    /// member suspends password authentication until
    /// [`LocalGroup::resume_password_authentication`].
    pub fn hold_password_authentication(&self) -> Result<LocalPasswordHold> {
        let _st = self.live()?;
        self.inner.password_gate.hold();
        Ok(LocalPasswordHold {
            group: Arc::downgrade(&self.inner),
        })
    }

    /// `PeerGroupResumePasswordAuthentication`: ends the suspension that a failed password
    /// authentication caused, so password joiners are served again. `hold` must be of this
    /// group (`E_INVALIDARG`); `PEER_E_NOT_FOUND` when nothing is suspended.
    pub fn resume_password_authentication(&self, hold: &LocalPasswordHold) -> Result<()> {
        let _st = self.live()?;
        let same = hold
            .group
            .upgrade()
            .is_some_and(|g| Arc::ptr_eq(&g, &self.inner));
        if !same {
            return Err(CoreError::InvalidRegistration(
                "the registration is not of this group".into(),
            ));
        }
        if self.inner.password_gate.resume() {
            tracing::info!(group = %self.inner.key.1, "password authentication resumed");
            Ok(())
        } else {
            Err(CoreError::NothingToResume)
        }
    }

    /// True while password authentication at this member is suspended after a failure.
    pub fn password_authentication_suspended(&self) -> Result<bool> {
        let _st = self.live()?;
        Ok(self.inner.password_gate.is_suspended())
    }
}
