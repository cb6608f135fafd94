//! The control channel between a group's handles and its driver task: what a handle asks
//! ([`Control`]), what the network tells the driver ([`NetEvent`]), and the handle the group
//! keeps on a running driver ([`DriverHandle`]), whose reads (status, addresses, neighbours)
//! bypass the channel.

pub use crate::values::Neighbour;
use crate::values::Reachable;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::direct::{ConnectionInfo, Directs, PEER_CONNECTION_DIRECT, PEER_CONNECTION_NEIGHBOR};
use crate::error::Result;
use crate::identity::IdentityCertificate;
use crate::io::ConnId;
use crate::transport::{CloseCode, Connection, Frame, Node};

/// How long a group's close waits for its peers to be told.
pub const GROUP_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a handle asks of its group's driver.
pub(crate) enum Control {
    Connect(Vec<SocketAddr>),
    /// Dial a direct connection under a reserved id: at `addr`, or (when `None`) on every
    /// path the group knows to the member.
    OpenDirect {
        id: u64,
        member: String,
        addr: Option<SocketAddr>,
    },
    LocalProperties(crate::wire::SignedProperties),
    LocalRecords(Vec<crate::records::record::Record>),
    /// Relay for other members from now on (or stop).
    SetRelay(bool),
    Close(oneshot::Sender<()>),
}

/// What the network tells a group's driver.
pub(crate) enum NetEvent {
    /// A member announces itself on the LAN at these addresses ([`crate::discovery`]).
    Discovered(Vec<std::net::SocketAddr>),
    Up {
        conn: Connection,
        member: String,
        outbound: bool,
        /// For a dial through a relay: the node dialled.
        via_node: Option<u64>,
    },
    /// A member's direct connection to us is up (authenticated, not yet greeted).
    DirectUp {
        conn: Connection,
        member: String,
    },
    Down(ConnId, crate::transport::CloseReason),
    Frame(ConnId, Frame),
    DialFailed(SocketAddr, i32),
    /// A dial through a relay to this node failed.
    DialViaFailed(u64, i32),
    /// Every path of a direct connection's first race failed: race the paths known now.
    DirectRetry {
        id: u64,
        member: String,
        hr: i32,
    },
    /// A tunnel asked for (as relay) or offered (as target) on one of the group's
    /// connections.
    Tunnel(crate::transport::IncomingTunnel),
    /// A tunnel this member carried or accepted ended.
    TunnelEnded(crate::relay::TunnelId),
    /// A peer with only an identity certificate, for a group that takes passwords.
    PasswordCandidate {
        conn: Connection,
        subject: IdentityCertificate,
    },
}

/// The handle the group layer keeps on a running driver.
#[derive(Clone)]
pub(crate) struct DriverHandle {
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) status: watch::Receiver<u32>,
    pub(crate) addrs: Arc<Mutex<Vec<SocketAddr>>>,
    pub(crate) disconnects: Arc<Mutex<Vec<crate::transport::CloseReason>>>,
    pub(crate) neighbours: Arc<Mutex<Vec<Neighbour>>>,
    /// What the machine advertises and knows of its NAT, refreshed after every input.
    pub(crate) reachable: Arc<Mutex<Reachable>>,
    pub(crate) task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    pub(crate) node: Arc<Node>,
    pub(crate) directs: Arc<Directs>,
}

impl DriverHandle {
    pub(crate) fn set_relay(&self, on: bool) {
        let _ = self.control.send(Control::SetRelay(on));
    }

    pub(crate) fn status(&self) -> u32 {
        *self.status.borrow()
    }

    pub(crate) fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn reachable(&self) -> Reachable {
        self.reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn neighbours(&self) -> Vec<Neighbour> {
        self.neighbours
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn recent_disconnects(&self) -> Vec<crate::transport::CloseReason> {
        self.disconnects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn connect(&self, addrs: Vec<SocketAddr>) {
        let _ = self.control.send(Control::Connect(addrs));
    }

    pub(crate) fn local_properties(&self, signed: crate::wire::SignedProperties) {
        let _ = self.control.send(Control::LocalProperties(signed));
    }

    /// `PeerGroupOpenDirectConnection`: reserves the connection's id and has the driver
    /// dial; the outcome comes as a direct connection event for that id.
    pub(crate) fn open_direct(&self, member: &str, addr: Option<SocketAddr>) -> Result<u64> {
        let id = self.node.reserve_connection_id();
        self.directs.dialing(id, member)?;
        let open = Control::OpenDirect {
            id,
            member: member.to_owned(),
            addr,
        };
        if self.control.send(open).is_err() {
            self.directs.close_all(CloseCode::GroupClosed);
            return Err(crate::error::CoreError::InvalidGroup);
        }
        Ok(id)
    }

    /// `PeerGroupCloseDirectConnection`.
    pub(crate) fn close_direct(&self, id: u64) -> Result<()> {
        self.directs.close(id)
    }

    /// `PeerGroupEnumConnections`: the neighbour and/or direct connections (`flags`).
    pub(crate) fn connections(&self, flags: u32) -> Vec<ConnectionInfo> {
        let mut out = Vec::new();
        if flags & PEER_CONNECTION_NEIGHBOR != 0 {
            out.extend(self.neighbours().into_iter().map(|n| {
                ConnectionInfo {
                    flags: PEER_CONNECTION_NEIGHBOR
                        | n.relayed_by
                            .map_or(0, |_| crate::direct::PEERGROUP_CONNECTION_RELAYED),
                    connection_id: n.connection_id,
                    node_id: n.node_id,
                    member: n.member,
                    address: n.address,
                }
            }));
        }
        if flags & PEER_CONNECTION_DIRECT != 0 {
            out.extend(self.directs.list());
        }
        out
    }

    /// `PeerGroupSendData` on a neighbour or direct connection of this group.
    pub(crate) async fn send_data(&self, id: u64, data_type: &[u8; 16], data: &[u8]) -> Result<()> {
        let is_neighbour = |k: u64| {
            self.neighbours
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|n| n.connection_id == k)
        };
        let neighbour = match self.directs.connection(id) {
            Some(_) => None,
            None if is_neighbour(id) => Some(
                self.node
                    .connection(id)
                    .map_err(|_| crate::error::CoreError::ConnectionNotFound(id))?,
            ),
            None => return Err(crate::error::CoreError::ConnectionNotFound(id)),
        };
        crate::direct::send_data(&self.directs, id, neighbour, is_neighbour, data_type, data).await
    }

    /// Records this process stored: the machine reports and floods them.
    pub(crate) fn local_records(&self, records: Vec<crate::records::record::Record>) {
        let _ = self.control.send(Control::LocalRecords(records));
    }

    pub(crate) async fn wait_status(&self, bits: u32, timeout: Duration) -> u32 {
        let mut rx = self.status.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| s & bits == bits)).await;
        let status = *rx.borrow();
        status
    }

    /// Takes the group offline: the machine tells every neighbour (close code "group
    /// closed"), the group leaves the node's registry, and the task ends; bounded in time.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(GROUP_CLOSE_TIMEOUT + Duration::from_secs(1), rx).await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }

    /// The fallback when a handle is dropped without `close`: stop without waiting.
    pub(crate) fn abort(&self) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.control.send(Control::Close(tx));
    }
}
