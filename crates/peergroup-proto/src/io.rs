//! The machine's vocabulary: what goes in ([`Input`]), what comes out ([`Output`]: messages,
//! events, storage writes), the events the application is told ([`GroupEvent`]), the ids and
//! the time. Every part of the group (the composer in [`crate::machine`], replication, the
//! member rules) speaks it, and none of them has to import another to do so.

use std::net::SocketAddr;

use crate::records::record::Record;
use crate::relay::{Refusal, TunnelId};
use crate::wire::{Message, PeerEntry, SignedProperties};

/// A connection, as numbered by the transport.
pub type ConnId = u64;
/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// `PEER_GROUP_STATUS_LISTENING`.
pub const STATUS_LISTENING: u32 = 0x1;
/// `PEER_GROUP_STATUS_HAS_CONNECTIONS`.
pub const STATUS_HAS_CONNECTIONS: u32 = 0x2;

/// Why this side ends a connection (the driver maps these to transport close codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The group was closed or deleted here.
    GroupClosed,
    /// A second connection to the same node; the other one is kept.
    Duplicate,
    /// The peer is this node.
    ConnectedToSelf,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// This node has all the neighbours it wants (or dropped this one to make room for a
    /// member short of neighbours); the peer was sent others to try.
    Busy,
    /// The connection ran through a relay whose connection ended.
    RelayGone,
    /// This member's addresses changed and the peer dialled it: the peer goes on sending to
    /// the old address, so this member dials it again (the connections it dialled migrate).
    Moved,
}

/// `PEER_CONNECTION_STATUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConnectionStatus {
    /// `PEER_CONNECTED`.
    Connected = 1,
    /// `PEER_DISCONNECTED`.
    Disconnected = 2,
    /// `PEER_CONNECTION_FAILED`.
    Failed = 3,
}

/// `PEER_RECORD_CHANGE_TYPE`: how a record changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecordChange {
    /// `PEER_RECORD_ADDED`.
    Added = 1,
    /// `PEER_RECORD_UPDATED`.
    Updated = 2,
    /// `PEER_RECORD_DELETED`.
    Deleted = 3,
    /// `PEER_RECORD_EXPIRED`.
    Expired = 4,
}

/// What the application is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// `PEER_GROUP_EVENT_STATUS_CHANGED` with the new status bits.
    StatusChanged(u32),
    /// `PEER_GROUP_EVENT_PROPERTY_CHANGED`.
    PropertyChanged,
    /// `PEER_GROUP_EVENT_NEIGHBOR_CONNECTION`.
    NeighborConnection {
        /// Connected or disconnected.
        status: ConnectionStatus,
        /// The connection.
        conn: ConnId,
        /// The neighbour's node id.
        node_id: u64,
    },
    /// `PEER_GROUP_EVENT_CONNECTION_FAILED`, with the reason.
    ConnectionFailed(i32),
    /// `PEER_GROUP_EVENT_MEMBER_CHANGED`: a member's presence or membership information
    /// changed (see [`crate::members::member_event`]).
    MemberChanged {
        /// What happened.
        change: MemberChange,
        /// The member's peer name.
        identity: String,
    },
    /// `PEER_GROUP_EVENT_RECORD_CHANGED`: a record was added, updated, deleted or expired,
    /// here or by another member.
    RecordChanged {
        /// What happened.
        change: RecordChange,
        /// The record's type (GUID bytes in Windows order).
        record_type: [u8; 16],
        /// The record's id.
        id: [u8; 16],
    },
}

/// Something the driver must make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// The node has synchronised with the group at least once.
    Synced,
    /// Members and addresses seen, for the next `Connect`.
    KnownPeers(Vec<PeerEntry>),
    /// New signed properties.
    Properties(SignedProperties),
    /// A chain an administrator published for this member (member data): the host adopts it
    /// when it is valid, this member's, and newer than the one held.
    Credentials(Vec<u8>),
}

/// What the machine asks of its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start accepting connections for this group.
    StartListening,
    /// Connect to an address.
    Dial(SocketAddr),
    /// Connect to node `node_id` through a tunnel that the relay member on connection `via`
    /// carries ([`crate::relay`]).
    DialVia {
        /// The connection to the relay.
        via: ConnId,
        /// The node to reach.
        node_id: u64,
    },
    /// As a relay: carry tunnel `tunnel` to the member on connection `to`, offering it as
    /// coming from node `from_node`.
    RelayTunnel {
        /// The tunnel asked for.
        tunnel: TunnelId,
        /// The target's connection.
        to: ConnId,
        /// The asker's node id.
        from_node: u64,
    },
    /// As a target: accept the tunnel offered.
    AcceptTunnel(TunnelId),
    /// As a relay: stop carrying this tunnel now (relaying was turned off here or in the
    /// group); both ends see it end.
    EndTunnel(TunnelId),
    /// Refuse a tunnel asked for or offered.
    RefuseTunnel(TunnelId, Refusal),
    /// Send a message on a connection.
    Send(ConnId, Message),
    /// Close a connection.
    Disconnect(ConnId, CloseReason),
    /// Tell the application.
    Event(GroupEvent),
    /// Write to storage.
    Persist(Persist),
}

/// Inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `PeerGroupConnect`.
    Connect,
    /// `PeerGroupConnectByAddress`.
    ConnectByAddress(Vec<SocketAddr>),
    /// A member of the group announces itself on this node's link at these addresses (LAN
    /// discovery, [`crate::lan`]): dialled first while short of neighbours.
    Discovered(Vec<SocketAddr>),
    /// The driver listens, at these addresses.
    Listening(Vec<SocketAddr>),
    /// This node's interface addresses changed (it moved to another network, or was
    /// renumbered): these are the new ones.
    AddressesChanged(Vec<SocketAddr>),
    /// An authenticated member's connection is up.
    ConnectionUp {
        /// Its id.
        conn: ConnId,
        /// The member's peer name, from its membership certificate.
        member: String,
        /// Where it is.
        remote: SocketAddr,
        /// True when this side dialed.
        outbound: bool,
        /// For a connection through a relay: which relay, and the node it said is at the
        /// other end (the `Hello` must agree).
        via: Option<Via>,
    },
    /// QUIC moved a direct connection to another path: the peer's packets now come from
    /// `remote` (it moved, or its NAT gave it a new mapping). The driver notices on the
    /// connection's next frame.
    RemoteChanged(ConnId, SocketAddr),
    /// A connection ended.
    ConnectionDown(ConnId),
    /// A dial failed (with the HRESULT of the failure).
    DialFailed(SocketAddr, i32),
    /// A [`Output::DialVia`] to this node failed (with the HRESULT of the failure).
    DialViaFailed(u64, i32),
    /// A member neighbour asks this member, as a relay, for a tunnel to node `target`.
    TunnelRequest {
        /// The driver's number for it.
        tunnel: TunnelId,
        /// The asker's connection.
        from: ConnId,
        /// The node it wants to reach.
        target: u64,
    },
    /// A relay on connection `via` offers a tunnel from node `from`.
    TunnelOffer {
        /// The driver's number for it.
        tunnel: TunnelId,
        /// The relay's connection.
        via: ConnId,
        /// The node at the other end.
        from: u64,
    },
    /// A tunnel this member carried or accepted ended.
    TunnelEnded(TunnelId),
    /// A message from a connection.
    Message(ConnId, Message),
    /// Properties from a peer whose signature and signer the driver verified.
    VerifiedProperties(ConnId, SignedProperties),
    /// Properties set here by an administrator (already signed).
    LocalProperties(SignedProperties),
    /// Records the application stored here (added, updated, deleted, imported): report and
    /// flood them.
    LocalRecords(Vec<Record>),
    /// The time passed.
    Tick,
    /// `PeerGroupClose` of the last handle, or `PeerGroupDelete`.
    Close,
}

/// How a relayed connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via {
    /// The connection to the relay member the tunnel runs on.
    pub relay: ConnId,
    /// The node at the other end of the tunnel.
    pub node: u64,
}

/// `PEER_MEMBER_CHANGE_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberChange {
    /// `PEER_MEMBER_CONNECTED`: its presence appeared.
    Connected = 1,
    /// `PEER_MEMBER_DISCONNECTED`: its presence was deleted or expired.
    Disconnected = 2,
    /// `PEER_MEMBER_UPDATED`: its presence changed (addresses, attributes).
    Updated = 3,
    /// `PEER_MEMBER_JOINED`: membership information for it was published.
    Joined = 4,
    /// `PEER_MEMBER_LEFT`: in the header, undocumented, never raised.
    Left = 5,
}
