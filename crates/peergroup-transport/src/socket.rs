//! The node's UDP socket, wrapped so that closing can wait until the port is really released.
//!
//! quinn shares the socket between its endpoint driver and every connection, each holding an
//! `Arc`, and drops it from its own tasks. [`ReleasingSocket`] delegates everything to the
//! runtime's socket and owns the last reference to it: its I/O pollers keep it alive, and when
//! it goes, the inner socket (and so the file descriptor) is dropped first and then a signal
//! fires. `Node::close` waits for that signal, so when it returns the port can be bound again.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;

use crate::error::{Result, TransportError};

/// Binds a UDP socket; an IPv6 socket is made dual-stack where the system allows it.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::UdpSocket> {
    let err = |source| TransportError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        if let Err(e) = socket.set_only_v6(false) {
            tracing::debug!(error = %e, "socket stays IPv6-only");
        }
    }
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

/// Wraps `socket` for quinn; the receiver fires once the socket is closed.
pub(crate) fn wrap(
    runtime: &dyn Runtime,
    socket: std::net::UdpSocket,
) -> io::Result<(Arc<dyn AsyncUdpSocket>, oneshot::Receiver<()>)> {
    let (tx, rx) = oneshot::channel();
    let inner = runtime.wrap_udp_socket(socket)?;
    let wrapped = ReleasingSocket {
        inner,
        _released: Signal(Some(tx)),
    };
    Ok((Arc::new(wrapped), rx))
}

/// Fires when dropped.
struct Signal(Option<oneshot::Sender<()>>);

impl Drop for Signal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The runtime's socket plus a signal. Field order matters: fields drop in declaration order,
/// so the socket is closed before the signal fires.
struct ReleasingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    _released: Signal,
}

impl fmt::Debug for ReleasingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasingSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for ReleasingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(ReleasingPoller {
            inner: self.inner.clone().create_io_poller(),
            _owner: self,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// The inner socket's poller, holding the wrapper alive; the inner poller (and its reference to
/// the inner socket) drops first.
struct ReleasingPoller {
    inner: Pin<Box<dyn UdpPoller>>,
    _owner: Arc<ReleasingSocket>,
}

impl fmt::Debug for ReleasingPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasingPoller").finish_non_exhaustive()
    }
}

impl UdpPoller for ReleasingPoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_writable(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_fires_after_the_port_is_free() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let (wrapped, released) = wrap(&quinn::TokioRuntime, socket).unwrap();
        let poller = wrapped.clone().create_io_poller();
        drop(wrapped);
        // The poller still holds the socket.
        assert!(std::net::UdpSocket::bind(addr).is_err());
        drop(poller);
        released.await.unwrap();
        std::net::UdpSocket::bind(addr).unwrap();
    }

    #[test]
    fn binding_a_taken_port_is_unable_to_listen() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = bind(taken.local_addr().unwrap()).unwrap_err();
        assert_eq!(
            e.hresult(),
            peergroup_identity::hresult::PEER_E_UNABLE_TO_LISTEN
        );
    }
}
