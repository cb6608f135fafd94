//! Tunnel streams a peer opens on a connection: their headers, and the requests and offers
//! they become.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{RecvStream, SendStream, VarInt};

use super::hub::Hub;
use super::relay::{self, RelayedTunnel};
use super::stream::{self, Pending, TUNNEL_PRIORITY};
use super::table::Origin;
use super::wire::{self, Header, Kind, HEADER_LEN};
use super::{end, TunnelRefusal};
use crate::close::CloseCode;
use crate::connection::Connection;
use crate::error::{Result, TransportError};

/// A tunnel stream a peer opened, waiting for an answer: from [`Node::accept_tunnel`].
///
/// Answer soon: the opener waits at most its handshake timeout. Dropped unanswered, it is
/// refused with [`TunnelRefusal::Busy`].
///
/// [`Node::accept_tunnel`]: crate::Node::accept_tunnel
#[derive(Debug)]
pub enum IncomingTunnel {
    /// A peer asks us to relay it to another node.
    Request(TunnelRequest),
    /// A relay offers us a path from another node.
    Offer(TunnelOffer),
}

impl IncomingTunnel {
    /// The connection the stream came on.
    pub fn via(&self) -> &Connection {
        match self {
            IncomingTunnel::Request(r) => r.via(),
            IncomingTunnel::Offer(o) => o.via(),
        }
    }

    /// Refuses it.
    pub fn refuse(self, why: TunnelRefusal) {
        match self {
            IncomingTunnel::Request(r) => r.refuse(why),
            IncomingTunnel::Offer(o) => o.refuse(why),
        }
    }
}

/// "Relay me to node `target`", from the peer on [`via`](Self::via).
///
/// The group layer decides: whether the requester may use us as a relay, and which of our
/// connections leads to `target`. Then [`relay_to`](Self::relay_to) it, or
/// [`refuse`](Self::refuse) it (`UnknownTarget` when no connection leads there).
pub struct TunnelRequest {
    via: Connection,
    target: u64,
    pending: Pending,
    hub: Arc<Hub>,
}

impl TunnelRequest {
    /// The requesting peer's connection.
    pub fn via(&self) -> &Connection {
        &self.via
    }

    /// The node the requester wants to reach (an id of the group layer's choosing).
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Refuses the request.
    pub fn refuse(self, why: TunnelRefusal) {
        self.pending.refuse(why);
    }

    /// Offers the tunnel to the target on `to`, saying it comes from `from_node`, and waits (at
    /// most the handshake timeout) for the target's answer. If it accepts, the requester is
    /// told and the relay copies both ways until either side ends; the returned handle says
    /// when and how much. Otherwise the requester is refused with
    /// [`TunnelRefusal::TargetRefused`] and the target's refusal
    /// ([`TransportError::TunnelRefused`]) or the failure is returned.
    pub async fn relay_to(self, to: &Connection, from_node: u64) -> Result<RelayedTunnel> {
        let TunnelRequest {
            via, pending, hub, ..
        } = self;
        let header = Header {
            kind: Kind::Offer,
            node: from_node,
        };
        let target = match stream::open(to, header, hub.handshake_timeout).await {
            Ok(streams) => streams,
            Err(e) => {
                pending.refuse(TunnelRefusal::TargetRefused);
                return Err(e);
            }
        };
        let (mut send, recv) = pending.into_streams();
        let (mut target_send, target_recv) = target;
        let counters = relay::Counters::default();
        // A channel for each side, if both connections are still there and ids are free.
        let legs = match (via.quic_handle(), to.quic_handle()) {
            (Some(a), Some(b)) => hub.table.open_legs(
                Arc::new(a),
                Arc::new(b),
                counters.channel_up.clone(),
                counters.channel_down.clone(),
            ),
            _ => None,
        };
        let mut answer = vec![0u8];
        if let Some((a, b)) = legs {
            answer.extend_from_slice(&wire::channel_grant(a));
            // Ahead of any packet on the target's stream: the copying starts after it.
            let granted = tokio::time::timeout(
                hub.handshake_timeout,
                target_send.write_all(&wire::channel_grant(b)),
            )
            .await;
            if !matches!(granted, Ok(Ok(()))) {
                hub.table.close_legs((a, b));
                let mut target_recv = target_recv;
                stream::abandon(&mut target_send, &mut target_recv);
                // The requester sees its tunnel stream fail instead of an answer.
                let mut recv = recv;
                stream::abandon(&mut send, &mut recv);
                return Err(TransportError::ConnectFailed {
                    addr: to.remote_address(),
                    reason: "the target left before the tunnel was set up".into(),
                });
            }
        }
        let answered = tokio::time::timeout(hub.handshake_timeout, send.write_all(&answer)).await;
        if !matches!(answered, Ok(Ok(()))) {
            if let Some(legs) = legs {
                hub.table.close_legs(legs);
            }
            let mut target_recv = target_recv;
            stream::abandon(&mut target_send, &mut target_recv);
            return Err(TransportError::ConnectFailed {
                addr: via.remote_address(),
                reason: "the requester left before the tunnel was set up".into(),
            });
        }
        Ok(relay::start(
            &hub,
            (send, recv),
            (target_send, target_recv),
            counters,
            legs,
        ))
    }
}

impl fmt::Debug for TunnelRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelRequest")
            .field("via", &self.via.id())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// "Node `from` wants a path to you through me", from the relay on [`via`](Self::via).
pub struct TunnelOffer {
    via: Connection,
    from: u64,
    pending: Pending,
    hub: Arc<Hub>,
}

impl TunnelOffer {
    /// The relay's connection.
    pub fn via(&self) -> &Connection {
        &self.via
    }

    /// The node the tunnel comes from, as the relay names it.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Refuses the offer.
    pub fn refuse(self, why: TunnelRefusal) {
        self.pending.refuse(why);
    }

    /// Accepts the offer: the stream becomes a tunnel end, and connections through it arrive
    /// at [`Node::accept`] with the returned virtual address as their
    /// [`remote_address`](Connection::remote_address).
    ///
    /// Fails with [`TransportError::TunnelRefused`]`(Busy)` (and refuses the offer so) when
    /// [`MAX_TUNNEL_ENDS`](super::MAX_TUNNEL_ENDS) ends are open, [`TransportError::NodeClosed`]
    /// once the node is closed.
    ///
    /// [`Node::accept`]: crate::Node::accept
    pub fn accept(self) -> Result<SocketAddr> {
        let TunnelOffer {
            via,
            from,
            pending,
            hub,
        } = self;
        if hub.is_closing() {
            return Err(TransportError::NodeClosed);
        }
        if hub.table.is_full() {
            pending.refuse(TunnelRefusal::Busy);
            return Err(TransportError::TunnelRefused(TunnelRefusal::Busy));
        }
        let runtime = pending.runtime().clone();
        let streams = pending.into_streams();
        match end::attach(
            &hub,
            &runtime,
            via.id(),
            via.quic_handle(),
            from,
            Origin::Accepted,
            streams,
            true,
        ) {
            Ok(addr) => Ok(addr),
            Err((mut send, mut recv)) => {
                // Filled up since the check above.
                stream::abandon(&mut send, &mut recv);
                Err(TransportError::TunnelRefused(TunnelRefusal::Busy))
            }
        }
    }
}

impl fmt::Debug for TunnelOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelOffer")
            .field("via", &self.via.id())
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Accepts the streams the peer opens after the control stream, each a tunnel stream, until
/// the connection or the node closes.
pub(crate) async fn serve_streams(conn: Connection, quic: quinn::Connection, hub: Arc<Hub>) {
    let closing = hub.closing();
    tokio::pin!(closing);
    loop {
        let (send, recv) = tokio::select! {
            streams = quic.accept_bi() => match streams {
                Ok(streams) => streams,
                Err(_) => return,
            },
            () = &mut closing => return,
        };
        tokio::spawn(read_header(conn.clone(), send, recv, hub.clone()));
    }
}

/// Reads a tunnel stream's header (within the handshake timeout) and hands the stream to the
/// backlog. A stream that is not a tunnel is reset; the connection goes on.
async fn read_header(via: Connection, mut send: SendStream, mut recv: RecvStream, hub: Arc<Hub>) {
    let mut bytes = [0u8; HEADER_LEN];
    let read = tokio::select! {
        read = tokio::time::timeout(hub.handshake_timeout, recv.read_exact(&mut bytes)) => read,
        () = hub.closing() => return,
    };
    let header = match read {
        Ok(Ok(())) => Header::decode(&bytes).map_err(str::to_owned),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no tunnel header within the handshake timeout".to_owned()),
    };
    let header = match header {
        Ok(header) => header,
        Err(reason) => {
            tracing::debug!(id = via.id(), %reason, "not a tunnel stream; reset");
            let code = VarInt::from_u32(CloseCode::ProtocolViolation.code());
            let _ = send.reset(code);
            let _ = recv.stop(code);
            return;
        }
    };
    let _ = send.set_priority(TUNNEL_PRIORITY);
    let pending = Pending::new((send, recv), hub.handshake_timeout);
    let tunnel = match header.kind {
        Kind::Request => IncomingTunnel::Request(TunnelRequest {
            via,
            target: header.node,
            pending,
            hub: hub.clone(),
        }),
        // No room for another end: no use asking the group layer.
        Kind::Offer if hub.table.is_full() => return pending.refuse(TunnelRefusal::Busy),
        Kind::Offer => IncomingTunnel::Offer(TunnelOffer {
            via,
            from: header.node,
            pending,
            hub: hub.clone(),
        }),
    };
    if let Err(tunnel) = hub.deliver(tunnel) {
        tracing::debug!("tunnel backlog full; refused");
        tunnel.refuse(TunnelRefusal::Busy);
    }
}
