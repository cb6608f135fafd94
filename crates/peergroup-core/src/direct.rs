//! Direct connections and application data (`PeerGroupOpenDirectConnection`,
//! `PeerGroupCloseDirectConnection`, `PeerGroupEnumConnections`, `PeerGroupSendData`).
//!
//! A direct connection is a QUIC connection of its own between two members, authenticated like
//! a neighbour connection (mutual TLS with membership chains) but asked for under the group's
//! *direct* server name ([`direct_server_name_of`]), so the accepting side knows it is not a
//! neighbour: the membership machine never sees it, and no group message may travel on it.
//! Each side greets with its node id ([`crate::data::KIND_DIRECT_HELLO`]); the connection is
//! reported connected once the peer's greeting arrived, and disconnected when either side
//! closes it, it fails, or the group goes offline.
//!
//! Data ([`crate::data::KIND_DATA`]) travels on neighbour and direct connections alike, on the
//! connection's ordered control stream, and is handed to the group's event subscribers by the
//! connection's reader task, not the driver: a slow subscriber slows that one sender down
//! through QUIC flow control ([`crate::EventHub::publish_waiting`]) and nothing else.

pub use crate::values::ConnectionInfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::data::{self, Reassembler, KIND_DATA, KIND_DIRECT_HELLO};
use crate::error::{CoreError, Result};
use crate::events::{ConnectionChange, Event, EventHub};
use crate::identity::hresult;
use crate::io::ConnectionStatus;
use crate::transport::{CloseCode, Connection, Frame, TransportError};

/// `PEER_CONNECTION_NEIGHBOR`: a neighbour connection, in [`ConnectionInfo::flags`].
pub const PEER_CONNECTION_NEIGHBOR: u32 = 0x1;
/// `PEER_CONNECTION_DIRECT`: a direct connection, in [`ConnectionInfo::flags`].
pub const PEER_CONNECTION_DIRECT: u32 = 0x2;
/// Peergroup extension, in [`ConnectionInfo::flags`] only (never a filter): the connection
/// runs through a relay member ([`crate::relay`]), not on a direct path.
pub const PEERGROUP_CONNECTION_RELAYED: u32 = 0x1_0000;
/// How long each side of a new direct connection waits for the other's greeting.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// The server name (SNI) direct connections of a group ask for: the group's
/// [`crate::server_name_of`] with `d` for its leading `g`.
pub fn direct_server_name_of(group_server_name: &str) -> String {
    format!(
        "d{}",
        group_server_name
            .strip_prefix('g')
            .unwrap_or(group_server_name)
    )
}

/// The group server name a direct server name stands for, or `None` for any other name.
pub fn group_of_direct_name(name: &str) -> Option<String> {
    name.strip_prefix('d')
        .filter(|rest| rest.ends_with(".peergroup"))
        .map(|rest| format!("g{rest}"))
}

struct Entry {
    member: String,
    /// `None` while dialing or greeting.
    up: Option<(Connection, u64)>,
    /// Closed by the application before it was up: drop it when the dial ends.
    cancelled: bool,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    /// One lock per connection data is being sent on, so that the parts of one message go out
    /// back to back.
    send_locks: HashMap<u64, Arc<tokio::sync::Mutex<()>>>,
    /// Set when the group goes offline: nothing new is registered after.
    closed: bool,
}

/// The direct connections of one running group, shared by its handles and its driver.
#[derive(Default)]
pub(crate) struct Directs {
    table: Mutex<Table>,
}

impl Directs {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a dial about to start under `id`.
    pub(crate) fn dialing(&self, id: u64, member: &str) -> Result<()> {
        let mut t = self.lock();
        if t.closed {
            return Err(CoreError::InvalidGroup);
        }
        t.entries.insert(
            id,
            Entry {
                member: member.to_owned(),
                up: None,
                cancelled: false,
            },
        );
        Ok(())
    }

    /// Registers a greeted connection; false (and the caller closes it) when the application
    /// closed it meanwhile or the group went offline.
    fn established(&self, conn: &Connection, member: &str, node_id: u64) -> bool {
        let mut t = self.lock();
        if t.closed {
            return false;
        }
        let id = conn.id();
        if t.entries.get(&id).is_some_and(|e| e.cancelled) {
            t.entries.remove(&id);
            return false;
        }
        t.entries.insert(
            id,
            Entry {
                member: member.to_owned(),
                up: Some((conn.clone(), node_id)),
                cancelled: false,
            },
        );
        true
    }

    fn remove(&self, id: u64) {
        let mut t = self.lock();
        t.entries.remove(&id);
        t.send_locks.remove(&id);
    }

    /// `PeerGroupCloseDirectConnection`: closes it (the reader reports the disconnection), or
    /// cancels it while it is still being made.
    pub(crate) fn close(&self, id: u64) -> Result<()> {
        let mut t = self.lock();
        let entry = t
            .entries
            .get_mut(&id)
            .ok_or(CoreError::ConnectionNotFound(id))?;
        match &entry.up {
            Some((conn, _)) => conn.close(CloseCode::Shutdown, "direct connection closed"),
            None => entry.cancelled = true,
        }
        Ok(())
    }

    /// The established direct connections.
    pub(crate) fn list(&self) -> Vec<ConnectionInfo> {
        let t = self.lock();
        let mut out: Vec<ConnectionInfo> = t
            .entries
            .iter()
            .filter_map(|(id, e)| {
                e.up.as_ref().map(|(conn, node_id)| ConnectionInfo {
                    flags: PEER_CONNECTION_DIRECT
                        | conn
                            .relayed_via()
                            .map_or(0, |_| PEERGROUP_CONNECTION_RELAYED),
                    connection_id: *id,
                    node_id: *node_id,
                    member: e.member.clone(),
                    address: conn.remote_address(),
                })
            })
            .collect();
        out.sort_by_key(|c| c.connection_id);
        out
    }

    /// The established direct connection `id`, if there is one.
    pub(crate) fn connection(&self, id: u64) -> Option<Connection> {
        self.lock()
            .entries
            .get(&id)
            .and_then(|e| e.up.as_ref().map(|(c, _)| c.clone()))
    }

    /// The lock that keeps the parts of one message together on connection `id`; locks of
    /// connections no longer in `live` are dropped on the way.
    fn send_lock(&self, id: u64, live: impl Fn(u64) -> bool) -> Arc<tokio::sync::Mutex<()>> {
        let mut t = self.lock();
        if let Some(lock) = t.send_locks.get(&id) {
            return lock.clone();
        }
        let Table {
            entries,
            send_locks,
            ..
        } = &mut *t;
        send_locks.retain(|k, _| entries.contains_key(k) || live(*k));
        send_locks.entry(id).or_default().clone()
    }

    /// The group goes offline: every direct connection, made or being made, is closed with
    /// `code`; returns the made ones so the caller can wait until their peers were told.
    pub(crate) fn close_all(&self, code: CloseCode) -> Vec<Connection> {
        let mut t = self.lock();
        t.closed = true;
        let conns: Vec<Connection> = t
            .entries
            .values_mut()
            .filter_map(|e| {
                e.cancelled = true;
                e.up.as_ref().map(|(c, _)| c.clone())
            })
            .collect();
        for c in &conns {
            c.close(code, "group closed");
        }
        conns
    }
}

/// What the tasks of direct connections need of their group.
pub(crate) struct DirectContext {
    pub(crate) directs: Arc<Directs>,
    /// The group's event hub (a clone shares it).
    pub(crate) events: EventHub,
    /// This node's id, sent in the greeting.
    pub(crate) node_id: u64,
}

impl DirectContext {
    fn hub(&self) -> &EventHub {
        &self.events
    }

    fn report(&self, status: ConnectionStatus, id: u64, node_id: u64, failed_reason: i32) {
        self.hub()
            .publish(&Event::DirectConnection(ConnectionChange {
                status,
                connection_id: id,
                node_id,
                next_connection_id: 0,
                failed_reason,
            }));
    }

    /// The end of a dial that did not give a connection: a failed event for the id.
    pub(crate) fn dial_failed(&self, id: u64, hr: i32) {
        self.directs.remove(id);
        self.report(ConnectionStatus::Failed, id, 0, hr);
    }

    /// Greets on a dialed connection to `member` and serves it until it ends.
    pub(crate) async fn run_dialed(self: Arc<Self>, conn: Connection, member: String) {
        let id = conn.id();
        match greet(&conn, self.node_id).await {
            Ok(node_id) => self.serve(conn, member, node_id).await,
            Err(hr) => self.dial_failed(id, hr),
        }
    }

    /// Greets on an accepted direct connection from `member` and serves it until it ends.
    pub(crate) async fn run_accepted(self: Arc<Self>, conn: Connection, member: String) {
        if let Ok(node_id) = greet(&conn, self.node_id).await {
            self.serve(conn, member, node_id).await;
        }
    }

    async fn serve(&self, conn: Connection, member: String, node_id: u64) {
        let id = conn.id();
        if !self.directs.established(&conn, &member, node_id) {
            conn.close(CloseCode::Shutdown, "direct connection closed");
            self.report(
                ConnectionStatus::Failed,
                id,
                node_id,
                hresult::PEER_E_CONNECTION_FAILED,
            );
            return;
        }
        self.report(ConnectionStatus::Connected, id, node_id, 0);
        let mut parts = Reassembler::new();
        loop {
            let frame = match conn.recv().await {
                Ok(f) => f,
                Err(_) => break,
            };
            let delivered = match u8::try_from(frame.kind()) {
                Ok(KIND_DATA) => deliver(self.hub(), id, &mut parts, &frame).await,
                _ => Err("only data may travel on a direct connection".to_owned()),
            };
            if let Err(why) = delivered {
                tracing::info!(conn = id, why, "protocol violation on a direct connection");
                conn.close(CloseCode::ProtocolViolation, "protocol violation");
                break;
            }
        }
        conn.closed().await;
        self.directs.remove(id);
        self.report(ConnectionStatus::Disconnected, id, node_id, 0);
    }
}

/// Sends our greeting and waits for the peer's: its node id, or the HRESULT of the failure
/// (the connection is then closed).
async fn greet(conn: &Connection, node_id: u64) -> std::result::Result<u64, i32> {
    let hello = Frame::new(
        u16::from(KIND_DIRECT_HELLO),
        data::encode_direct_hello(node_id),
    )
    .map_err(|_| hresult::E_FAIL)?;
    let exchange = async {
        conn.send(&hello).await.map_err(|e| e.hresult())?;
        let frame = conn.recv().await.map_err(|e| e.hresult())?;
        if frame.kind() != u16::from(KIND_DIRECT_HELLO) {
            return Err(hresult::PEER_E_CONNECTION_FAILED);
        }
        data::decode_direct_hello(frame.payload()).map_err(|_| hresult::PEER_E_CONNECTION_FAILED)
    };
    match tokio::time::timeout(GREETING_TIMEOUT, exchange).await {
        Ok(Ok(peer)) => Ok(peer),
        Ok(Err(hr)) => {
            conn.close(
                CloseCode::ProtocolViolation,
                "bad direct connection greeting",
            );
            Err(hr)
        }
        Err(_) => {
            conn.close(CloseCode::Shutdown, "no greeting in time");
            Err(hresult::PEER_E_TIMEOUT)
        }
    }
}

/// Takes one data frame of connection `id`: when it completes a message, hands the message to
/// the subscribers (waiting for room). An error is a protocol violation.
pub(crate) async fn deliver(
    hub: &EventHub,
    id: u64,
    parts: &mut Reassembler,
    frame: &Frame,
) -> std::result::Result<(), String> {
    match parts.push(frame.payload()) {
        Ok(Some(msg)) => {
            hub.publish_waiting(&Event::IncomingData {
                connection_id: id,
                data_type: msg.data_type,
                data: msg.data,
            })
            .await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// `PeerGroupSendData` on `conn` (the connection `id` of the group; `live` tells which other
/// ids are still connections of it, to prune locks): the message in order, as one or more
/// parts sent back to back.
pub(crate) async fn send_data(
    directs: &Directs,
    conn: &Connection,
    live: impl Fn(u64) -> bool,
    data_type: &[u8; 16],
    payload: &[u8],
) -> Result<()> {
    if payload.len() > data::MAX_DATA_LEN {
        return Err(CoreError::DataTooLarge(payload.len()));
    }
    let id = conn.id();
    let lock = directs.send_lock(id, live);
    let _together = lock.lock().await;
    for part in data::encode_parts(data_type, payload) {
        let frame = Frame::new(u16::from(KIND_DATA), part)
            .map_err(|e| CoreError::Transport(TransportError::Frame(e)))?;
        conn.send(&frame).await.map_err(|e| match e {
            TransportError::Closed(_) => CoreError::ConnectionNotFound(id),
            other => CoreError::Transport(other),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_names_map_back_to_their_group() {
        let g = "gabc123.peergroup";
        let d = direct_server_name_of(g);
        assert_eq!(d, "dabc123.peergroup");
        assert_eq!(group_of_direct_name(&d).as_deref(), Some(g));
        assert_eq!(group_of_direct_name(g), None);
        assert_eq!(group_of_direct_name("dfoo.example"), None);
    }
}
