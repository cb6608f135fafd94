//! The member records' port: the host side of [`Publisher`] (this member's chain and its
//! signature with the identity's key), and adopting a chain an administrator published.

use std::sync::Arc;

use crate::clock::unix_now;
use crate::error::Result;
use crate::identity::gmc::GmcChain;
use crate::records::record::Record;
use crate::state::GroupInner;

use crate::port::Publisher;

/// The running group's [`Publisher`]: the identity's key and the member's current chain.
pub(crate) struct GroupPublisher {
    inner: Arc<GroupInner>,
}

impl GroupPublisher {
    pub(crate) fn new(inner: Arc<GroupInner>) -> Self {
        GroupPublisher { inner }
    }
}

impl Publisher for GroupPublisher {
    fn chain(&self) -> GmcChain {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .chain
            .clone()
    }

    fn sign(&self, record: &mut Record) -> Result<(), crate::error::ProtoError> {
        let chain = self.chain();
        record.sign(self.inner.identity.private_key(), &chain)
    }
}

/// Adopts a chain an administrator published for this member, when it validates now, is
/// this identity's (name and key), differs from the one held and starts no earlier: the
/// member then holds its roles (and presents the chain from its next connection on). Returns
/// whether it was adopted.
pub(crate) fn adopt(inner: &GroupInner, bytes: &[u8]) -> Result<bool> {
    let chain = GmcChain::from_bytes(bytes)?;
    let member = chain.validate(&inner.grc, unix_now())?;
    if member.peer_name() != &inner.key.0
        || member.public_key_der() != inner.identity.private_key().public_key_der()
    {
        return Ok(false);
    }
    let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
    if st.chain == chain || chain.leaf().not_before() < st.chain.leaf().not_before() {
        return Ok(false);
    }
    inner.store.save_gmc(&chain.to_bytes())?;
    tracing::info!(group = %inner.key.1, roles = ?member.roles(), "adopted new credentials");
    st.chain = chain;
    st.member = member;
    Ok(true)
}
