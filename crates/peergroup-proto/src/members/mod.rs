//! Members: the two reserved record types the library publishes for itself, the rules every
//! member checks them by, and the member list (`PeerGroupEnumMembers`) built from them.
//!
//! - **Member data** ([`MEMBER_DATA_TYPE`]): a member's membership information, i.e. its GMC
//!   chain (which carries its friendly name, key, roles and validity). Published by the
//!   member itself on its first synchronisation (the creator: when it first listens), or, with
//!   `PEER_MEMBER_DATA_OPTIONAL`, when it first acts; lives `ulMemberDataLifetime` and is
//!   refreshed while the member is online. An administrator may publish one for another member
//!   (`PeerGroupIssueCredentials` with `PEER_GROUP_STORE_CREDENTIALS`): that is how a member
//!   receives renewed credentials or new roles.
//! - **Presence** ([`PRESENCE_TYPE`]): node id, listen addresses and attributes of an online
//!   member; lives `ulPresenceLifetime`, refreshed at half-life, updated when the addresses
//!   change, deleted on a clean close. None with `PEER_DISABLE_PRESENCE`.
//!
//! Applications may not add records of these types (they are in the reserved range,
//! [`crate::records::view::is_reserved_type`]); the library signs them through
//! [`Publisher`](crate::port::Publisher). [`check_reserved`] is the receiving side's rule, run by every
//! member after the usual signature and rights checks.

pub mod duties;
pub mod list;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::{AuthorizationError, RecordError, Result};
use crate::identity::gmc::{GmcChain, GroupRootCertificate, Member as GmcMember, Role};
pub use crate::io::MemberChange;
use crate::io::{GroupEvent, RecordChange};
use crate::records::record::Record;
use crate::records::view::is_reserved_type;

pub use crate::values::CredentialSpec;
pub use list::{CredentialInfo, Member};

/// The member data record type, `{03000000-0000-0000-0000-000000000000}` (reserved range).
pub const MEMBER_DATA_TYPE: [u8; 16] = [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The presence record type, `{03000001-0000-0000-0000-000000000000}` (reserved range).
pub const PRESENCE_TYPE: [u8; 16] = [1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// `PEER_MEMBER_PRESENT`: the member has a live presence record.
pub const PEER_MEMBER_PRESENT: u32 = 0x1;
/// `PEER_GROUP_STORE_CREDENTIALS`: `PeerGroupIssueCredentials` publishes the new GMC.
pub const PEER_GROUP_STORE_CREDENTIALS: u32 = 0x1;

/// A presence record's payload (JSON): where an online member is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The member's node id (`PEER_MEMBER.ullNodeId`).
    pub node_id: u64,
    /// Its listen addresses.
    pub addrs: Vec<SocketAddr>,
    /// `PEER_MEMBER.pwzAttributes` (empty: none).
    pub attributes: String,
    /// When the content (node id, addresses, attributes) last changed, ms peer time: a
    /// refresh keeps it, so receivers tell a change (`UPDATED`) from a refresh (no event).
    pub changed: i64,
}

/// Most addresses a presence record carries.
pub const MAX_PRESENCE_ADDRS: usize = crate::wire::MAX_ADDRS;

impl Presence {
    /// The record payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serialises")
    }

    /// Parses a payload, bounded by the record's own bounds and [`MAX_PRESENCE_ADDRS`].
    pub fn decode(data: &[u8]) -> Result<Presence, RecordError> {
        let p: Presence = serde_json::from_slice(data).map_err(RecordError::Presence)?;
        if p.addrs.len() > MAX_PRESENCE_ADDRS {
            return Err(RecordError::PresenceAddresses(p.addrs.len()));
        }
        Ok(p)
    }

    /// True when `other` says something different (not just a refresh).
    pub fn differs_from(&self, other: &Presence) -> bool {
        self.node_id != other.node_id
            || self.addrs != other.addrs
            || self.attributes != other.attributes
    }
}

/// The subject chain a member-data record carries.
pub fn member_data_chain(record: &Record) -> Result<GmcChain, RecordError> {
    GmcChain::from_bytes(&record.data).map_err(RecordError::MemberData)
}

/// The rules of the reserved types, checked by every member on receipt after
/// [`Record::verify`] (which returned `modifier`):
///
/// - member data: the payload is a chain valid for the group at the record's modification
///   time, naming the record's creator, unless the creator is an administrator (it
///   publishes credentials it issued: `PeerGroupIssueCredentials`);
/// - presence: made and modified by the member it describes only, with a payload that parses;
/// - any other reserved type: refused (only the library makes reserved records).
///
/// Tombstones carry no payload and pass on the modifier rule alone.
pub fn check_reserved(
    record: &Record,
    modifier: &GmcMember,
    grc: &GroupRootCertificate,
) -> Result<()> {
    if !is_reserved_type(&record.record_type) {
        return Ok(());
    }
    if record.record_type == PRESENCE_TYPE {
        if record.modifier != record.creator {
            return Err(AuthorizationError::PresenceOfAnother.into());
        }
        if !record.is_deleted() {
            Presence::decode(&record.data)?;
        }
        return Ok(());
    }
    if record.record_type == MEMBER_DATA_TYPE {
        if record.is_deleted() {
            return Ok(());
        }
        let chain = member_data_chain(record)?;
        let subject = chain.validate(grc, record.modified.div_euclid(1000))?;
        let by_admin = modifier.has_role(Role::Admin) && record.modifier == record.creator;
        if subject.peer_name().to_string() != record.creator && !by_admin {
            return Err(AuthorizationError::MemberDataOfAnother.into());
        }
        return Ok(());
    }
    Err(AuthorizationError::ReservedType.into())
}

/// The `MEMBER_CHANGED` event a stored change of a reserved record raises, if any. A presence
/// update raises `UPDATED` only when its content changed ([`Presence::changed`] is the
/// version's own time); a refresh raises nothing. A member-data update raises nothing either.
pub fn member_event(record: &Record, change: RecordChange) -> Option<GroupEvent> {
    let (change, identity) = if record.record_type == PRESENCE_TYPE {
        let change = match change {
            RecordChange::Added => MemberChange::Connected,
            RecordChange::Deleted | RecordChange::Expired => MemberChange::Disconnected,
            RecordChange::Updated => {
                let p = Presence::decode(&record.data).ok()?;
                if p.changed != record.modified {
                    return None;
                }
                MemberChange::Updated
            }
        };
        (change, record.creator.clone())
    } else if record.record_type == MEMBER_DATA_TYPE && change == RecordChange::Added {
        let chain = member_data_chain(record).ok()?;
        (MemberChange::Joined, chain.leaf().peer_name().to_string())
    } else {
        return None;
    };
    Some(GroupEvent::MemberChanged { change, identity })
}

#[cfg(test)]
mod tests;
