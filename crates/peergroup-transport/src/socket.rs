//! The node's UDP socket, wrapped so that closing can wait until the port is really released,
//! and so that tunnels look like UDP peers to quinn.
//!
//! quinn shares the socket between its endpoint driver and every connection, each holding an
//! `Arc`, and drops it from its own tasks. [`ReleasingSocket`] delegates everything to the
//! runtime's socket and owns the last reference to it: its I/O pollers keep it alive, and when
//! it goes, the inner socket (and so the file descriptor) is dropped first and then a signal
//! fires. `Node::close` waits for that signal, so when it returns the port can be bound again.
//!
//! Datagrams to a tunnel end's virtual address never reach the socket as such: the wrapper's
//! [`Port`] queues them for the tunnel (or sends them to the relay as channel datagrams), and
//! hands quinn the datagrams tunnels received as if the socket had. Channel datagrams the socket
//! receives are forwarded or delivered before quinn sees the rest (see `tunnel::port`).

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
use crate::tunnel::{Port, Sent};

/// Receives in a row whose every datagram was relayed or consumed before the wrapper yields:
/// a flood of channel datagrams cannot keep the endpoint's task from the rest of its work.
const DEMUX_ROUNDS: usize = 16;

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

/// Wraps `socket` for quinn, with `tunnels` for virtual addresses; the receiver fires once the
/// socket is closed.
pub(crate) fn wrap(
    runtime: &dyn Runtime,
    socket: std::net::UdpSocket,
    tunnels: Port,
) -> io::Result<(Arc<dyn AsyncUdpSocket>, oneshot::Receiver<()>)> {
    let (tx, rx) = oneshot::channel();
    let inner = runtime.wrap_udp_socket(socket)?;
    tunnels.table().set_raw_socket(Arc::downgrade(&inner));
    let wrapped = ReleasingSocket {
        inner,
        tunnels,
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
    tunnels: Port,
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
        match self.tunnels.try_send(transmit) {
            None => self.inner.try_send(transmit),
            // Queued or dropped: a tunnel's stream never makes the endpoint wait.
            Some(Sent::Handled) => Ok(()),
            // The socket's own back-pressure holds, as for any datagram to a real address.
            Some(Sent::Channel {
                to,
                contents,
                segment_size,
            }) => self.inner.try_send(&Transmit {
                destination: to,
                ecn: transmit.ecn,
                contents: &contents,
                segment_size,
                src_ip: None,
            }),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.tunnels.poll_recv(cx, bufs, meta, |cx, bufs, meta| {
            for _ in 0..DEMUX_ROUNDS {
                let n = match self.inner.poll_recv(cx, bufs, meta) {
                    Poll::Ready(Ok(n)) => n,
                    other => return other,
                };
                let kept = self.tunnels.demux(&*self.inner, bufs, meta, n);
                if kept > 0 {
                    return Poll::Ready(Ok(kept));
                }
            }
            // All relayed: come back after the runtime has run something else.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
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

    use crate::tunnel::{Origin, Reserve, Table, TUNNEL_RECV_PACKETS};
    use bytes::Bytes;
    use std::future::poll_fn;
    use std::net::{SocketAddrV4, UdpSocket};
    use std::time::Duration;

    /// A wrapped socket on `addr` with a tunnel table, and the table's sender side.
    fn wrapped(addr: &str) -> (Arc<dyn AsyncUdpSocket>, Arc<Table>, crate::tunnel::Inbound) {
        let socket = bind(addr.parse().unwrap()).unwrap();
        let table = Arc::new(Table::new(socket.local_addr().unwrap().is_ipv6()));
        let (port, inbound) = Port::new(table.clone());
        let (wrapped, _released) = wrap(&quinn::TokioRuntime, socket, port).unwrap();
        (wrapped, table, inbound)
    }

    fn transmit(destination: SocketAddr, contents: &[u8]) -> Transmit<'_> {
        Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        }
    }

    /// One slot's worth: source, stride, bytes.
    async fn recv_one(socket: &dyn AsyncUdpSocket) -> (SocketAddr, usize, Vec<u8>) {
        let mut buf = vec![0u8; 65_536];
        let mut meta = [RecvMeta::default()];
        let n = tokio::time::timeout(
            Duration::from_secs(20),
            poll_fn(|cx| socket.poll_recv(cx, &mut [IoSliceMut::new(&mut buf)], &mut meta)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
        (meta[0].addr, meta[0].stride, buf[..meta[0].len].to_vec())
    }

    #[tokio::test]
    async fn sending_to_an_unknown_virtual_address_is_ok_and_sends_nothing() {
        let (socket, table, _inbound) = wrapped("127.0.0.1:0");
        let Reserve::New(known, mut queue, _) = table.reserve(1, 2, Origin::Opened) else {
            panic!("no room");
        };
        for unknown in ["240.1.2.3:4", "[::ffff:240.1.2.3]:4"] {
            socket
                .try_send(&transmit(unknown.parse().unwrap(), b"lost"))
                .unwrap();
        }
        assert!(queue.try_recv().is_err());
        // Both forms of a known one reach its queue; a real address still goes to the socket.
        socket
            .try_send(&transmit(SocketAddr::V4(known), b"one"))
            .unwrap();
        let mapped = SocketAddr::new(known.ip().to_ipv6_mapped().into(), known.port());
        socket.try_send(&transmit(mapped, b"two")).unwrap();
        assert_eq!(queue.try_recv().unwrap(), &b"one"[..]);
        assert_eq!(queue.try_recv().unwrap(), &b"two"[..]);
        let real = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut poller = socket.clone().create_io_poller();
        poll_fn(|cx| poller.as_mut().poll_writable(cx))
            .await
            .unwrap();
        socket
            .try_send(&transmit(real.local_addr().unwrap(), b"real"))
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = real.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"real");
    }

    #[tokio::test]
    async fn tunnel_datagrams_arrive_from_their_virtual_address_beside_real_ones() {
        for (bind_addr, ipv6) in [("127.0.0.1:0", false), ("[::1]:0", true)] {
            let (socket, table, inbound) = wrapped(bind_addr);
            let from = table.presented("240.0.0.0:1".parse::<SocketAddrV4>().unwrap());
            assert_eq!(from.is_ipv6(), ipv6);
            let real = UdpSocket::bind(if ipv6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
            for i in 0..3u8 {
                inbound.try_send((from, Bytes::from(vec![i; 100]))).unwrap();
                // Growing sizes, so that GRO cannot coalesce them into one slot.
                let size = 2 + usize::from(i);
                // QUIC's fixed bit set: anything else is the wrapper's own.
                real.send_to(&vec![0x49; size], socket.local_addr().unwrap())
                    .unwrap();
            }
            let mut tunnel = Vec::new();
            let mut direct = Vec::new();
            for _ in 0..6 {
                let (addr, stride, bytes) = recv_one(&*socket).await;
                if addr == from {
                    assert_eq!(stride, bytes.len(), "one datagram per slot");
                    tunnel.push(bytes);
                } else {
                    assert_eq!(addr, real.local_addr().unwrap());
                    direct.push(bytes);
                }
            }
            assert_eq!(tunnel, (0..3u8).map(|i| vec![i; 100]).collect::<Vec<_>>());
            assert_eq!(direct, (2..5).map(|n| vec![0x49u8; n]).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn at_most_tunnel_recv_packets_wait_for_the_endpoint() {
        let (_socket, table, inbound) = wrapped("127.0.0.1:0");
        let from = table.presented("240.0.0.0:1".parse().unwrap());
        let taken = (0..TUNNEL_RECV_PACKETS + 100)
            .filter(|_| inbound.try_send((from, Bytes::from_static(b"x"))).is_ok())
            .count();
        assert_eq!(taken, TUNNEL_RECV_PACKETS);
    }

    #[tokio::test]
    async fn the_signal_fires_after_the_port_is_free() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let (port, _inbound) = Port::new(Arc::new(Table::new(false)));
        let (wrapped, released) = wrap(&quinn::TokioRuntime, socket, port).unwrap();
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
