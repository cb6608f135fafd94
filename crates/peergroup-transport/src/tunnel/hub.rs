//! The node's tunnel state: its tunnel ends, the incoming-tunnel backlog, and the shutdown
//! signal every tunnel task watches.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::end;
use super::incoming::IncomingTunnel;
use super::port::Inbound;
use super::stream;
use super::table::{Origin, Table};
use super::wire::{Header, Kind};
use super::{TunnelRefusal, TUNNEL_BACKLOG};
use crate::connection::Connection;
use crate::error::{Result, TransportError};
use crate::node::Limits;

pub(crate) struct Hub {
    pub table: Arc<Table>,
    /// Where tunnel ends deliver datagrams, for the socket to receive.
    pub inbound: Inbound,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    incoming_tx: mpsc::Sender<IncomingTunnel>,
    incoming_rx: tokio::sync::Mutex<mpsc::Receiver<IncomingTunnel>>,
    closing: watch::Sender<bool>,
}

impl Hub {
    pub fn new(table: Arc<Table>, inbound: Inbound, limits: &Limits) -> Arc<Hub> {
        let (incoming_tx, incoming_rx) = mpsc::channel(TUNNEL_BACKLOG);
        Arc::new(Hub {
            table,
            inbound,
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            incoming_tx,
            incoming_rx: tokio::sync::Mutex::new(incoming_rx),
            closing: watch::Sender::new(false),
        })
    }

    /// Resolves once the node closes (or its tunnel state is gone).
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Ends every tunnel task and the backlog. Whatever waits in the backlog now is dropped
    /// here if the backlog is free, else by [`Hub::drain`].
    pub fn shutdown(&self) {
        self.closing.send_replace(true);
        if let Ok(mut rx) = self.incoming_rx.try_lock() {
            rx.close();
            while rx.try_recv().is_ok() {}
        }
    }

    /// Drops what waits in the backlog (its streams keep the connections' state alive).
    pub async fn drain(&self) {
        let mut rx = self.incoming_rx.lock().await;
        rx.close();
        while rx.recv().await.is_some() {}
    }

    /// Queues an incoming tunnel for [`Hub::accept`]; gives it back if the backlog is full or
    /// closed.
    pub fn deliver(&self, tunnel: IncomingTunnel) -> std::result::Result<(), IncomingTunnel> {
        if self.is_closing() {
            return Err(tunnel);
        }
        self.incoming_tx
            .try_send(tunnel)
            .map_err(|e| e.into_inner())
    }

    /// The next incoming tunnel; `None` once the node is closed.
    pub async fn accept(&self) -> Option<IncomingTunnel> {
        let mut rx = self.incoming_rx.lock().await;
        let tunnel = tokio::select! {
            biased;
            _ = self.closing() => None,
            tunnel = rx.recv() => tunnel.filter(|_| !self.is_closing()),
        };
        if tunnel.is_none() {
            // Closed: nothing waiting may outlive the node (each holds a stream).
            rx.close();
            while rx.try_recv().is_ok() {}
        }
        tunnel
    }

    /// Asks the relay at the other end of `via` for a tunnel to `target`, or finds the one
    /// already open; see [`Node::open_tunnel`](crate::Node::open_tunnel).
    pub async fn open_tunnel(
        self: &Arc<Self>,
        via: &Connection,
        target: u64,
    ) -> Result<SocketAddr> {
        if self.is_closing() {
            return Err(TransportError::NodeClosed);
        }
        if let Some(addr) = self.table.find_opened(via.id(), target) {
            return Ok(addr);
        }
        if self.table.is_full() {
            return Err(TransportError::TunnelRefused(TunnelRefusal::Busy));
        }
        let header = Header {
            kind: Kind::Request,
            node: target,
        };
        let streams = stream::open(via, header, self.handshake_timeout).await?;
        let runtime = tokio::runtime::Handle::current();
        match end::attach(
            self,
            &runtime,
            via.id(),
            via.quic_handle(),
            target,
            Origin::Opened,
            streams,
            false,
        ) {
            Ok(addr) => Ok(addr),
            Err((mut send, mut recv)) => {
                // The table filled up while we asked: end the tunnel the relay set up.
                stream::abandon(&mut send, &mut recv);
                Err(TransportError::TunnelRefused(TunnelRefusal::Busy))
            }
        }
    }
}
