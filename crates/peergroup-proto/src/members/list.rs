//! The member list (`PeerGroupEnumMembers`), built from the member-data and presence records
//! a member holds.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::identity::gmc::{GmcChain, GroupRootCertificate, Role};
use crate::records::record::Record;

use super::{member_data_chain, Presence, PEER_MEMBER_PRESENT};

/// `PEER_CREDENTIAL_INFO`: what a member's membership certificate says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialInfo {
    /// `pwzFriendlyName`: the member's friendly name.
    pub friendly_name: String,
    /// `pPublicKey`: the member's public key, DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
    /// `pwzIssuerPeerName`: who issued the certificate (the group, for the creator).
    pub issuer_peer_name: String,
    /// `pwzIssuerFriendlyName`.
    pub issuer_friendly_name: String,
    /// `ftValidityStart`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `ftValidityEnd`, seconds since the Unix epoch.
    pub not_after: i64,
    /// `pRoles`.
    pub roles: Vec<Role>,
}

impl CredentialInfo {
    /// The credential information of a chain's leaf; the issuer's friendly name comes from
    /// the next certificate up, or the group root's.
    pub fn of_chain(chain: &GmcChain, grc: &GroupRootCertificate) -> Self {
        let leaf = chain.leaf();
        let issuer_friendly_name = chain.gmcs().get(1).map_or_else(
            || grc.friendly_name().to_owned(),
            |g| g.friendly_name().to_owned(),
        );
        CredentialInfo {
            friendly_name: leaf.friendly_name().to_owned(),
            public_key_der: leaf.public_key_der().to_vec(),
            issuer_peer_name: leaf.issuer_peer_name().to_string(),
            issuer_friendly_name,
            not_before: leaf.not_before(),
            not_after: leaf.not_after(),
            roles: leaf.roles().to_vec(),
        }
    }
}

/// `PEER_MEMBER`: one member as this member knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// `dwFlags`: [`PEER_MEMBER_PRESENT`] when it has a live presence record.
    pub flags: u32,
    /// `pwzIdentity`: its peer name.
    pub identity: String,
    /// `pwzAttributes`: its presence attributes (empty: none).
    pub attributes: String,
    /// `ullNodeId`: its node, from its presence (0 when absent).
    pub node_id: u64,
    /// `pAddresses`: where it listens, from its presence (none when absent).
    pub addresses: Vec<SocketAddr>,
    /// `pCredentialInfo`: its membership certificate's information.
    pub credential: CredentialInfo,
}

impl Member {
    /// True when the member is online (`PEER_MEMBER_PRESENT`).
    pub fn is_present(&self) -> bool {
        self.flags & PEER_MEMBER_PRESENT != 0
    }
}

/// The newest chain each member's member data holds, by subject peer name: the latest
/// validity start, then the latest publication.
pub fn newest_chains(member_data: &[Record]) -> BTreeMap<String, GmcChain> {
    let mut best: BTreeMap<String, (i64, i64, GmcChain)> = BTreeMap::new();
    for r in member_data.iter().filter(|r| !r.is_deleted()) {
        let Ok(chain) = member_data_chain(r) else {
            continue;
        };
        let subject = chain.leaf().peer_name().to_string();
        let key = (chain.leaf().not_before(), r.modified);
        match best.get(&subject) {
            Some((nb, m, _)) if (*nb, *m) >= key => {}
            _ => {
                best.insert(subject, (key.0, key.1, chain));
            }
        }
    }
    best.into_iter().map(|(k, (_, _, c))| (k, c)).collect()
}

/// Every known member: the local one first (from its own chain), then the others by peer
/// name. Members come from member data and from presence (whose signing chain stands in for
/// member data not published yet, e.g. with `PEER_MEMBER_DATA_OPTIONAL`).
pub fn build(
    me: &str,
    my_chain: &GmcChain,
    grc: &GroupRootCertificate,
    member_data: &[Record],
    presence: &[Record],
) -> Vec<Member> {
    let mut chains = newest_chains(member_data);
    chains.insert(me.to_owned(), my_chain.clone());
    let mut present: BTreeMap<String, (i64, Presence)> = BTreeMap::new();
    for r in presence.iter().filter(|r| !r.is_deleted()) {
        let Ok(p) = Presence::decode(&r.data) else {
            continue;
        };
        if present
            .get(&r.creator)
            .is_some_and(|(m, _)| *m >= r.modified)
        {
            continue;
        }
        if !chains.contains_key(&r.creator) {
            if let Ok((chain, _)) = r.security_parts() {
                chains.insert(r.creator.clone(), chain);
            }
        }
        present.insert(r.creator.clone(), (r.modified, p));
    }
    let mut out: Vec<Member> = chains
        .into_iter()
        .map(|(identity, chain)| {
            let p = present.get(&identity).map(|(_, p)| p);
            Member {
                flags: if p.is_some() { PEER_MEMBER_PRESENT } else { 0 },
                attributes: p.map(|p| p.attributes.clone()).unwrap_or_default(),
                node_id: p.map_or(0, |p| p.node_id),
                addresses: p.map(|p| p.addrs.clone()).unwrap_or_default(),
                credential: CredentialInfo::of_chain(&chain, grc),
                identity,
            }
        })
        .collect();
    out.sort_by_key(|m| (m.identity != me, m.identity.clone()));
    out
}
