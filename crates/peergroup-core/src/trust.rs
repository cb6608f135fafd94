//! The trust registry: the groups that run on this node, by TLS server name. It is the node's
//! credential resolver (server certificates by SNI) and its trust policy (a peer must present
//! a membership chain of a group we run, or be a would-be password joiner while one takes
//! passwords), so a non-member never gets a stream.

use std::collections::HashMap;
use std::sync::RwLock;

use tokio::sync::mpsc;

use crate::clock::unix_now;
use crate::identity::gmc::{validate_chain, Gmc, GroupRootCertificate, Member};
use crate::identity::{Authority, IdentityCertificate, IdentityError, PeerName};
use crate::transport::{
    CertificateDer, CredentialResolver, Credentials, Side, TrustError, TrustPolicy,
};

use crate::control::NetEvent;

/// The DNS name a group is asked for in TLS (SNI): a hash of the group name, since peer names
/// are not DNS names.
pub fn server_name_of(group: &PeerName) -> String {
    format!(
        "g{}.peergroup",
        Authority::of_public_key(group.to_string().as_bytes())
    )
}

/// What one running group offers the node.
pub(crate) struct Hosted {
    pub(crate) grc: GroupRootCertificate,
    pub(crate) credentials: Credentials,
    pub(crate) listening: bool,
    /// True when the group accepts password joiners.
    pub(crate) password: bool,
    pub(crate) net: mpsc::Sender<NetEvent>,
}

/// The groups that run on this node, by server name.
#[derive(Default)]
pub struct Registry {
    pub(crate) groups: RwLock<HashMap<String, Hosted>>,
}

/// The group server name a connection's server name stands for: itself, or the group of a
/// direct connection's name.
fn canonical(server_name: &str) -> std::borrow::Cow<'_, str> {
    match crate::direct::group_of_direct_name(server_name) {
        Some(group) => std::borrow::Cow::Owned(group),
        None => std::borrow::Cow::Borrowed(server_name),
    }
}

impl Registry {
    /// Applies `change` to the entry of the group served as `server_name`, if it has one.
    pub(crate) fn update(&self, server_name: &str, change: impl FnOnce(&mut Hosted)) {
        if let Some(h) = self
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(server_name)
        {
            change(h);
        }
    }

    pub(crate) fn any_password_group(&self) -> bool {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|h| h.listening && h.password)
    }

    /// Where the driver of the group served as `server_name` takes its network events.
    pub(crate) fn events_of(&self, server_name: &str) -> Option<mpsc::Sender<NetEvent>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(server_name)
            .map(|h| h.net.clone())
    }

    pub(crate) fn password_candidate(
        &self,
        server_name: &str,
        chain: &[CertificateDer<'_>],
    ) -> Option<IdentityCertificate> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups
            .get(server_name)
            .filter(|h| h.listening && h.password)?;
        match chain {
            [leaf] => IdentityCertificate::from_der(leaf).ok(),
            _ => None,
        }
    }

    pub(crate) fn validate(
        &self,
        server_name: &str,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<Member, TrustError> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        let hosted = groups
            .get(server_name)
            .ok_or_else(|| TrustError::Untrusted(format!("no group is served as {server_name}")))?;
        validate_chain(&hosted.grc, chain, unix_now()).map_err(|e| match e {
            IdentityError::InvalidTimePeriod(why) => TrustError::Expired(why),
            IdentityError::BadEncoding(why) => TrustError::BadCertificate(why),
            other => TrustError::Untrusted(other.to_string()),
        })
    }
}

impl TrustPolicy for Registry {
    fn verify_peer(
        &self,
        peer_side: Side,
        server_name: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<(), TrustError> {
        let name = match (peer_side, server_name) {
            (Side::Server, Some(name)) => canonical(name).into_owned(),
            _ => {
                // As a server we do not see the SNI here: take the group the chain names;
                // the pairing is checked again once the connection is up.
                let leaf = chain
                    .first()
                    .ok_or_else(|| TrustError::BadCertificate("no certificate".into()))?;
                match Gmc::from_der(leaf) {
                    Ok(gmc) => server_name_of(gmc.group_name()),
                    Err(e) => {
                        // A would-be password joiner: only its own identity certificate, and
                        // only while some listening group takes passwords (the exchange is
                        // all such a peer may do).
                        if chain.len() == 1
                            && IdentityCertificate::from_der(leaf).is_ok()
                            && self.any_password_group()
                        {
                            return Ok(());
                        }
                        return Err(TrustError::BadCertificate(e.to_string()));
                    }
                }
            }
        };
        if peer_side == Side::Client {
            let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
            if !groups.get(&name).is_some_and(|h| h.listening) {
                return Err(TrustError::Untrusted(
                    "that group is not listening here".into(),
                ));
            }
        }
        self.validate(&name, chain).map(|_| ())
    }
}

impl CredentialResolver for Registry {
    fn resolve(&self, server_name: &str) -> Option<Credentials> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups
            .get(canonical(server_name).as_ref())
            .filter(|h| h.listening)
            .map(|h| h.credentials.clone())
    }
}
