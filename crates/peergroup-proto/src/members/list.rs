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

/// Where a starting node looks for members: the peer entries it kept (`known`), with what
/// present members' own presence records say added. Presence records are stored as they
/// arrive, so after a crash they can be newer than the kept entries, and they are the only
/// news of a member heard of only through presence. A member's kept addresses stay first;
/// its presence adds the ones it lacks (at most [`crate::wire::MAX_ADDRS`]); a member kept
/// with no entry gets one at version 0, so any gossip of it wins.
pub fn remembered_peers(
    mut known: Vec<crate::wire::PeerEntry>,
    members: &[Member],
    me: &str,
) -> Vec<crate::wire::PeerEntry> {
    for m in members
        .iter()
        .filter(|m| m.is_present() && m.identity != me && !m.addresses.is_empty())
    {
        match known.iter_mut().find(|e| e.member == m.identity) {
            Some(e) => {
                for a in &m.addresses {
                    if !e.addrs.contains(a) && e.addrs.len() < crate::wire::MAX_ADDRS {
                        e.addrs.push(*a);
                    }
                }
            }
            None => known.push(crate::wire::PeerEntry {
                member: m.identity.clone(),
                node_id: m.node_id,
                addrs: m
                    .addresses
                    .iter()
                    .copied()
                    .take(crate::wire::MAX_ADDRS)
                    .collect(),
                relays: Vec::new(),
                public: false,
                version: 0,
            }),
        }
    }
    known
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PeerEntry;

    fn member(name: &str, present: bool, addrs: &[&str]) -> Member {
        Member {
            flags: if present { PEER_MEMBER_PRESENT } else { 0 },
            identity: name.to_owned(),
            attributes: String::new(),
            node_id: 7,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            credential: CredentialInfo {
                friendly_name: String::new(),
                public_key_der: Vec::new(),
                issuer_peer_name: String::new(),
                issuer_friendly_name: String::new(),
                not_before: 0,
                not_after: 0,
                roles: Vec::new(),
            },
        }
    }

    #[test]
    fn a_starting_node_adds_what_presence_says_to_the_peers_it_kept() {
        let kept = vec![PeerEntry {
            member: "kept".into(),
            node_id: 1,
            addrs: vec!["10.0.0.1:1".parse().unwrap()],
            relays: vec![],
            public: false,
            version: 9,
        }];
        let members = [
            member("me", true, &["10.0.0.9:9"]),
            member("kept", true, &["198.18.1.1:1", "10.0.0.1:1"]),
            member("new", true, &["198.18.1.2:2"]),
            member("gone", false, &[]),
            member("silent", true, &[]),
        ];
        let out = remembered_peers(kept, &members, "me");
        let names: Vec<&str> = out.iter().map(|e| e.member.as_str()).collect();
        assert_eq!(names, ["kept", "new"]);
        // Kept addresses first, presence's added; the kept version stands.
        assert_eq!(
            out[0].addrs,
            [
                "10.0.0.1:1".parse().unwrap(),
                "198.18.1.1:1".parse().unwrap()
            ]
        );
        assert_eq!(out[0].version, 9);
        // Heard of only through presence: version 0, so gossip of it wins.
        assert_eq!(out[1].version, 0);
        assert_eq!(out[1].node_id, 7);
    }
}
