//! The socket wrapper's side of tunnels: datagrams to virtual addresses go into tunnel queues
//! instead of the UDP socket, and datagrams from tunnels are received as if from the socket.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use tokio::sync::mpsc;

use super::table::Table;
use super::{addr, TUNNEL_RECV_PACKETS};

/// Where tunnel ends put the datagrams they receive: (virtual source address, datagram).
pub(crate) type Inbound = mpsc::Sender<(SocketAddr, Bytes)>;

pub(crate) struct Port {
    table: Arc<Table>,
    recv: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
    /// Which source `poll_recv` tries first next time; it alternates, so neither the UDP
    /// socket nor the tunnels can starve the other.
    tunnel_first: AtomicBool,
}

impl Port {
    /// A port sending into `table`'s queues, and the bounded channel to receive through it.
    pub fn new(table: Arc<Table>) -> (Port, Inbound) {
        let (tx, rx) = mpsc::channel(TUNNEL_RECV_PACKETS);
        let port = Port {
            table,
            recv: Mutex::new(rx),
            tunnel_first: AtomicBool::new(false),
        };
        (port, tx)
    }

    /// Takes the transmit if it is for a virtual address (queued, or dropped as UDP would lose
    /// it); `false` leaves it for the real socket.
    pub fn try_send(&self, transmit: &Transmit) -> bool {
        let Some(dest) = addr::canonical(transmit.destination) else {
            return false;
        };
        self.table
            .send(dest, transmit.contents, transmit.segment_size);
        true
    }

    /// Receives from the tunnels and from `socket`, alternating which goes first; both register
    /// the waker when neither has anything.
    pub fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        socket: impl FnOnce(
            &mut Context,
            &mut [IoSliceMut<'_>],
            &mut [RecvMeta],
        ) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.tunnel_first.fetch_xor(true, Ordering::Relaxed) {
            if let Poll::Ready(n) = self.poll_tunnels(cx, bufs, meta) {
                return Poll::Ready(Ok(n));
            }
            socket(cx, bufs, meta)
        } else {
            if let Poll::Ready(r) = socket(cx, bufs, meta) {
                return Poll::Ready(r);
            }
            self.poll_tunnels(cx, bufs, meta).map(Ok)
        }
    }

    /// Fills slots with tunnel datagrams, one datagram per slot.
    fn poll_tunnels(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<usize> {
        let mut rx = self.recv.lock().unwrap_or_else(PoisonError::into_inner);
        let mut filled = 0;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
            let (from, packet) = loop {
                let next = if filled == 0 {
                    match rx.poll_recv(cx) {
                        Poll::Ready(Some(p)) => Some(p),
                        // The hub holds a sender while the node lives.
                        Poll::Ready(None) | Poll::Pending => None,
                    }
                } else {
                    rx.try_recv().ok()
                };
                match next {
                    // Larger than quinn's buffer: more than quinn would accept anyway.
                    Some((_, p)) if p.len() > buf.len() => continue,
                    Some(p) => break p,
                    None => {
                        return if filled == 0 {
                            Poll::Pending
                        } else {
                            Poll::Ready(filled)
                        }
                    }
                }
            };
            buf[..packet.len()].copy_from_slice(&packet);
            // One datagram per slot; no ECN bits or destination IP came through a tunnel.
            *m = RecvMeta {
                addr: from,
                len: packet.len(),
                stride: packet.len(),
                ..RecvMeta::default()
            };
            filled += 1;
        }
        if filled == 0 {
            Poll::Pending
        } else {
            Poll::Ready(filled)
        }
    }
}
