//! Plain values the group API takes and returns, apart from the code that makes them so the
//! service protocol (`service::proto`, built without the network) can carry them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::gmc::Role;

/// Where a database export or import is (`GroupHandle::export_database_with`,
/// `GroupHandle::import_database_with`), for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProgress {
    /// The stage it is in.
    pub stage: DatabaseStage,
    /// Records done in this stage.
    pub done: u64,
    /// Records in this stage (0 while not known yet).
    pub total: u64,
}

/// The stages of a database export or import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatabaseStage {
    /// Reading the database (export) or the file (import).
    Reading,
    /// Writing the file (export).
    Writing,
    /// Checking each record's signature, membership and rights (import).
    Verifying,
    /// Storing the records in one transaction (import).
    Storing,
}

/// What `PeerGroupAddRecord` takes from the application's `PEER_RECORD`: the rest (id,
/// version, creator, modifier, times, security data) is the infrastructure's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    /// The application's record type, GUID bytes in Windows order; not a reserved type.
    pub record_type: [u8; 16],
    /// `pwzAttributes`: attribute XML, or empty for none.
    pub attributes: String,
    /// When the record expires, peer time in ms since the Unix epoch; must be in the future.
    pub expires_ms: i64,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A neighbour connection, as `GroupHandle::neighbours` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The transport's connection id (`ullConnectionId`).
    pub connection_id: u64,
    /// The member's peer name.
    pub member: String,
    /// The member's node id (`ullNodeId`).
    pub node_id: u64,
    /// Its address.
    pub address: SocketAddr,
    /// True when this side dialed.
    pub outbound: bool,
    /// For a neighbour reached through a relay member: the relay's node id.
    #[serde(default)]
    pub relayed_by: Option<u64>,
}

/// One connection of a group, as `PeerGroupEnumConnections` reports it
/// (`PEER_CONNECTION_INFO`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// `PEER_CONNECTION_NEIGHBOR` or `PEER_CONNECTION_DIRECT` (`direct`'s constants).
    pub flags: u32,
    /// `ullConnectionId`.
    pub connection_id: u64,
    /// `ullNodeId`: the peer's node id.
    pub node_id: u64,
    /// `pwzPeerId`: the member's peer name.
    pub member: String,
    /// `address`.
    pub address: SocketAddr,
}

/// What `PeerGroupIssueCredentials` takes from a `PEER_CREDENTIAL_INFO` (the issuer fields
/// and the validity start are the issuer's to set, so they are not here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSpec {
    /// `pwzFriendlyName`: the subject's friendly name.
    pub friendly_name: String,
    /// `pPublicKey`: the subject's public key, DER SubjectPublicKeyInfo; the subject peer
    /// name must be a name of it.
    pub public_key_der: Vec<u8>,
    /// `pRoles`: the roles granted (at least one).
    pub roles: Vec<Role>,
    /// `ftValidityEnd`, seconds since the Unix epoch; `None` (a zero `FILETIME`): the
    /// issuer's remaining lifetime.
    pub not_after: Option<i64>,
}

/// Where a member says it can be reached, and what it knows of its NAT
/// ([`crate::reachability`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachable {
    /// The addresses `Hello`, presence and invitations carry: confirmed, mapped, then
    /// interface addresses.
    pub advertised: Vec<std::net::SocketAddr>,
    /// The NAT's mapping class as other members' views tell it.
    pub nat: crate::reachability::NatClass,
    /// Addresses of the relay members this member names (see [`crate::relay`]): where a
    /// member that cannot reach it directly reaches the group, so invitations carry them.
    #[serde(default)]
    pub relays: Vec<std::net::SocketAddr>,
    /// Whether a third member reached it unasked ([`crate::dialback`]): a member behind a
    /// full cone is public, one behind a restricted NAT is not.
    #[serde(default = "unknown_outside")]
    pub outside: crate::dialback::Outside,
}

fn unknown_outside() -> crate::dialback::Outside {
    crate::dialback::Outside::Unknown
}
