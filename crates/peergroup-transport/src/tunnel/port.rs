//! The socket wrapper's side of tunnels: datagrams to virtual addresses go into tunnel queues
//! (or out by channel) instead of to their address, datagrams from tunnels are received as if
//! from the socket, and channel datagrams the socket receives are forwarded or delivered
//! before quinn sees what is left.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use quinn::AsyncUdpSocket;
use tokio::sync::mpsc;

use super::datagram;
use super::table::{Sent, Table};
use super::{addr, TUNNEL_RECV_PACKETS};

/// Where tunnel ends put the datagrams they receive: (virtual source address, datagram).
pub(crate) type Inbound = mpsc::Sender<(SocketAddr, Bytes)>;

pub(crate) struct Port {
    table: Arc<Table>,
    recv: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
    /// For channel datagrams that cannot be delivered in place.
    inbound: Inbound,
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
            inbound: tx.clone(),
            tunnel_first: AtomicBool::new(false),
        };
        (port, tx)
    }

    /// The tunnel table this port sends into.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Takes the transmit if it is for a virtual address: queued, dropped as UDP would lose it,
    /// or turned into channel datagrams for the socket to send. `None` leaves it for its
    /// address.
    pub fn try_send(&self, transmit: &Transmit) -> Option<Sent> {
        let dest = addr::canonical(transmit.destination)?;
        Some(
            self.table
                .send(dest, transmit.contents, transmit.segment_size),
        )
    }

    /// Handles the channel datagrams among the first `n` slots `socket` received: forwarded
    /// ones are sent on through `socket`, delivered ones become slots from their tunnel end's
    /// virtual address. Returns how many slots are left for quinn, moved to the front.
    pub fn demux(
        &self,
        socket: &dyn AsyncUdpSocket,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        n: usize,
    ) -> usize {
        let mut kept = 0;
        // Made at the first slot that needs it: it holds the table, and gathers forwards
        // across slots into GSO sends.
        let mut router = None;
        for i in 0..n.min(bufs.len()).min(meta.len()) {
            let mut m = meta[i];
            let len = m.len.min(bufs[i].len());
            if !datagram::all_quic(&bufs[i][..len], m.stride) {
                let router = router.get_or_insert_with(|| self.table.router(socket, &self.inbound));
                router.source(m.addr, m.ecn);
                let slot = datagram::demux_slot(&mut bufs[i], len, m.stride, router);
                if slot.len == 0 {
                    continue;
                }
                m.len = slot.len;
                m.stride = slot.stride;
                if let Some(from) = slot.from {
                    m.addr = from;
                    m.dst_ip = None;
                }
            }
            if kept != i {
                // An earlier slot went entirely: move this one down (quinn's buffers are all
                // the same size).
                let (low, high) = bufs.split_at_mut(i);
                m.len = m.len.min(low[kept].len());
                low[kept][..m.len].copy_from_slice(&high[0][..m.len]);
            }
            meta[kept] = m;
            kept += 1;
        }
        if let Some(router) = router {
            router.finish();
        }
        kept
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
