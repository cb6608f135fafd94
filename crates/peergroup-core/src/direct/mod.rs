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
//!
//! A direct connection that could only be made through a relay member is upgraded to a
//! direct path in place when a coordinated punch succeeds (`direct/upgrade.rs`, the protocol in
//! [`crate::upgrade`]): same connection id, no event, no message lost or reordered.

mod upgrade;

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
use crate::upgrade::{Candidate as CandidateId, Side, Token};
use tokio::sync::mpsc;

pub(crate) use upgrade::Paths;

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
    /// The connection data is sent on; `None` while dialing or greeting.
    up: Option<(Connection, u64)>,
    /// While a relayed connection is being upgraded: the relayed connection and where
    /// candidates go.
    upgrade: Option<Upgrading>,
    /// Closed by the application before it was up: drop it when the dial ends.
    cancelled: bool,
}

/// The upgrade of one relayed direct connection, as the table sees it.
struct Upgrading {
    /// The relayed connection (closed with the entry, also after sending moved away).
    relayed: Connection,
    /// This end's role in the direct connection.
    role: Side,
    /// The token candidates greet with, once known.
    token: Option<Token>,
    /// The serving task takes candidates here.
    candidates: mpsc::Sender<Candidate>,
}

/// A candidate connection up and greeted with its token.
pub(crate) struct Candidate {
    /// Who dialled it, for which attempt.
    id: CandidateId,
    conn: Connection,
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
                upgrade: None,
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
                upgrade: None,
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
        if let Some(u) = &entry.upgrade {
            u.relayed
                .close(CloseCode::Shutdown, "direct connection closed");
        }
        Ok(())
    }

    /// Connection `id` is relayed and its upgrade starts: candidates for it go to `tx`.
    fn upgrading(&self, id: u64, relayed: &Connection, role: Side, tx: mpsc::Sender<Candidate>) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.upgrade = Some(Upgrading {
                relayed: relayed.clone(),
                role,
                token: None,
                candidates: tx,
            });
        }
    }

    /// The token candidates of connection `id` greet with.
    fn set_token(&self, id: u64, token: Token) {
        if let Some(u) = self
            .lock()
            .entries
            .get_mut(&id)
            .and_then(|e| e.upgrade.as_mut())
        {
            u.token = Some(token);
        }
    }

    /// Where a candidate from `member` greeting with `token` goes, and this end's role
    /// for that connection.
    fn candidate_route(
        &self,
        token: &Token,
        member: &str,
    ) -> Option<(mpsc::Sender<Candidate>, Side)> {
        self.lock().entries.values().find_map(|e| {
            let u = e.upgrade.as_ref()?;
            (e.member == member && u.token.as_ref() == Some(token))
                .then(|| (u.candidates.clone(), u.role))
        })
    }

    /// Sends `last` on connection `id`'s current connection, then makes `to` the one data
    /// goes on: under the send lock, so no message of the application falls between.
    /// False when the current connection is gone.
    async fn switch_sending(&self, id: u64, last: &Frame, to: &Connection) -> bool {
        let lock = self.send_lock(id, |_| true);
        let _together = lock.lock().await;
        let Some(current) = self.connection(id) else {
            return false;
        };
        if current.send(last).await.is_err() {
            return false;
        }
        match self.lock().entries.get_mut(&id).and_then(|e| e.up.as_mut()) {
            Some((conn, _)) => {
                *conn = to.clone();
                true
            }
            None => false,
        }
    }

    /// The upgrade of connection `id` is over: no more candidates for it.
    fn upgrade_over(&self, id: u64) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.upgrade = None;
        }
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

    /// This node moved to other addresses: the direct connections it accepted on a direct
    /// path are closed (their peers go on sending to the old address, and a server cannot
    /// migrate); their applications get `PEER_CONNECTION_DISCONNECTED` and open them again.
    /// The ones it dialled migrate and stay. Returns how many were closed.
    pub(crate) fn close_accepted(&self) -> usize {
        let t = self.lock();
        let accepted: Vec<&Connection> = t
            .entries
            .values()
            .filter_map(|e| e.up.as_ref().map(|(c, _)| c))
            .filter(|c| {
                c.peer_side() == crate::transport::Side::Client && c.relayed_via().is_none()
            })
            .collect();
        for c in &accepted {
            c.close(CloseCode::Shutdown, "moved: open the connection again");
        }
        accepted.len()
    }

    /// The group goes offline: every direct connection, made or being made, is closed with
    /// `code`; returns the made ones so the caller can wait until their peers were told.
    pub(crate) fn close_all(&self, code: CloseCode) -> Vec<Connection> {
        let mut t = self.lock();
        t.closed = true;
        let conns: Vec<Connection> = t
            .entries
            .values_mut()
            .flat_map(|e| {
                e.cancelled = true;
                let relayed = e.upgrade.take().map(|u| u.relayed);
                e.up.as_ref()
                    .map(|(c, _)| c.clone())
                    .into_iter()
                    .chain(relayed)
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
    /// The network side of upgrades: this node's addresses, and dials.
    pub(crate) paths: Arc<dyn Paths>,
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
        match greet(&conn, self.node_id, None).await {
            // A candidate's greeting on a new connection is not ours to take.
            Ok((node_id, None)) => self.serve(conn, member, node_id, Side::Dialer).await,
            Ok((_, Some(_))) => {
                conn.close(
                    CloseCode::ProtocolViolation,
                    "bad direct connection greeting",
                );
                self.dial_failed(id, hresult::PEER_E_CONNECTION_FAILED);
            }
            Err(hr) => self.dial_failed(id, hr),
        }
    }

    /// Greets on an accepted direct connection from `member` and serves it until it ends;
    /// a candidate for an upgrade goes to the connection it upgrades.
    pub(crate) async fn run_accepted(self: Arc<Self>, conn: Connection, member: String) {
        let Ok((node_id, token)) = greet_first(&conn, self.node_id, &self.directs, &member).await
        else {
            return;
        };
        match token {
            None => self.serve(conn, member, node_id, Side::Acceptor).await,
            Some((tx, role, attempt)) => {
                // Dialled by the other end of the connection it upgrades.
                let id = CandidateId {
                    side: role.other(),
                    attempt,
                };
                if let Err(e) = tx.send(Candidate { id, conn }).await {
                    e.0.conn.close(CloseCode::Shutdown, "upgrade over");
                }
            }
        }
    }

    async fn serve(&self, conn: Connection, member: String, node_id: u64, role: Side) {
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
        let end = upgrade::Link::new(self, id, conn, member, role).run().await;
        end.closed().await;
        self.directs.remove(id);
        self.report(ConnectionStatus::Disconnected, id, node_id, 0);
    }
}

fn hello_frame(node_id: u64, candidate: Option<(&Token, u8)>) -> std::result::Result<Frame, i32> {
    Frame::new(
        u16::from(KIND_DIRECT_HELLO),
        data::encode_direct_hello(node_id, candidate),
    )
    .map_err(|_| hresult::E_FAIL)
}

async fn recv_hello(conn: &Connection) -> std::result::Result<(u64, Option<(Token, u8)>), i32> {
    let frame = conn.recv().await.map_err(|e| e.hresult())?;
    if frame.kind() != u16::from(KIND_DIRECT_HELLO) {
        return Err(hresult::PEER_E_CONNECTION_FAILED);
    }
    data::decode_direct_hello(frame.payload()).map_err(|_| hresult::PEER_E_CONNECTION_FAILED)
}

/// Bounds a greeting by [`GREETING_TIMEOUT`], closing the connection when it fails.
async fn bounded<T>(
    conn: &Connection,
    exchange: impl std::future::Future<Output = std::result::Result<T, i32>>,
) -> std::result::Result<T, i32> {
    match tokio::time::timeout(GREETING_TIMEOUT, exchange).await {
        Ok(Ok(v)) => Ok(v),
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

/// The dialling side's greeting: sends ours (with the token and attempt on a candidate)
/// and waits for the peer's: its node id and candidate tag, or the HRESULT of the failure
/// (the connection is then closed).
async fn greet(
    conn: &Connection,
    node_id: u64,
    candidate: Option<(&Token, u8)>,
) -> std::result::Result<(u64, Option<(Token, u8)>), i32> {
    let hello = hello_frame(node_id, candidate)?;
    bounded(conn, async {
        conn.send(&hello).await.map_err(|e| e.hresult())?;
        recv_hello(conn).await
    })
    .await
}

/// Where an accepted candidate goes: its connection's serving task, that end's role, and
/// the attempt it was dialled for.
type Route = (mpsc::Sender<Candidate>, Side, u8);

/// The accepting side's greeting: the peer's first, so that a candidate is told from a new
/// connection; ours answers with the same tag. A token no upgrade of `member` holds is
/// refused.
async fn greet_first(
    conn: &Connection,
    node_id: u64,
    directs: &Directs,
    member: &str,
) -> std::result::Result<(u64, Option<Route>), i32> {
    bounded(conn, async {
        let (peer, tag) = recv_hello(conn).await?;
        let route = match &tag {
            None => None,
            Some((t, attempt)) => {
                let (tx, role) = directs
                    .candidate_route(t, member)
                    .ok_or(hresult::PEER_E_CONNECTION_FAILED)?;
                Some((tx, role, *attempt))
            }
        };
        let hello = hello_frame(node_id, tag.as_ref().map(|(t, a)| (t, *a)))?;
        conn.send(&hello).await.map_err(|e| e.hresult())?;
        Ok((peer, route))
    })
    .await
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

/// `PeerGroupSendData` on connection `id` of the group: the direct connection of that id
/// (its current path, looked up under its send lock), else `neighbour`; `live` tells which
/// other ids are still connections of it, to prune locks. The message goes in order, as one
/// or more parts sent back to back.
pub(crate) async fn send_data(
    directs: &Directs,
    id: u64,
    neighbour: Option<Connection>,
    live: impl Fn(u64) -> bool,
    data_type: &[u8; 16],
    payload: &[u8],
) -> Result<()> {
    if payload.len() > data::MAX_DATA_LEN {
        return Err(CoreError::DataTooLarge(payload.len()));
    }
    let lock = directs.send_lock(id, live);
    let _together = lock.lock().await;
    let conn = directs
        .connection(id)
        .or(neighbour)
        .ok_or(CoreError::ConnectionNotFound(id))?;
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
