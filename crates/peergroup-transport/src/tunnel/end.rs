//! A tunnel end: moves datagrams between its virtual address and its tunnel stream.
//!
//! It ends when either half of the stream ends or fails (the outer connection closing
//! included), when no datagram went either way for the idle timeout, or when the node closes;
//! its table entry goes with it, so later datagrams to its address are dropped.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::hub::Hub;
use super::port::Inbound;
use super::stream::{self, Streams};
use super::table::{Origin, Reserve};
use super::wire::{self, PacketDecoder};

/// Largest chunk taken from QUIC per read.
const READ_CHUNK: usize = 64 * 1024;

/// Makes `streams` (answered with 0 already, or to be answered with 0 first when
/// `answer_first`) a tunnel end and returns its virtual address. An end we opened to the same
/// pair that exists already is returned instead, and `streams` are ended. Gives the streams
/// back if [`MAX_TUNNEL_ENDS`](super::MAX_TUNNEL_ENDS) ends are open.
pub(crate) fn attach(
    hub: &Arc<Hub>,
    runtime: &Handle,
    via: u64,
    peer_node: u64,
    origin: Origin,
    streams: Streams,
    answer_first: bool,
) -> Result<SocketAddr, Streams> {
    let (addr, queue) = match hub.table.reserve(via, peer_node, origin) {
        Reserve::New(addr, queue) => (addr, queue),
        Reserve::Existing(addr) => {
            let (mut send, mut recv) = streams;
            stream::abandon(&mut send, &mut recv);
            return Ok(addr);
        }
        Reserve::Full => return Err(streams),
    };
    let presented = hub.table.presented(addr);
    tracing::debug!(%presented, via, peer_node, ?origin, "tunnel end open");
    runtime.spawn(run(hub.clone(), addr, streams, queue, answer_first));
    Ok(presented)
}

/// How the stream loops ended.
enum End {
    /// The peer finished its half: finish ours.
    Finished,
    /// Idle, or the node closing: finish ours, stop theirs.
    Quiet,
    /// A failure or a bad length: reset ours, stop theirs.
    Failed,
}

async fn run(
    hub: Arc<Hub>,
    addr: SocketAddrV4,
    (mut send, mut recv): Streams,
    queue: mpsc::Receiver<Bytes>,
    answer_first: bool,
) {
    let from = hub.table.presented(addr);
    let last = Mutex::new(Instant::now());
    let end = {
        let reader = read_packets(&mut recv, from, &hub.inbound, &last);
        let writer = write_packets(&mut send, queue, &last, answer_first);
        tokio::select! {
            end = reader => end,
            () = writer => End::Failed,
            () = idle(&last, hub.idle_timeout) => End::Quiet,
            () = hub.closing() => End::Quiet,
        }
    };
    hub.table.remove(addr);
    match end {
        End::Finished | End::Quiet => {
            let _ = send.finish();
            let _ = recv.stop(stream::ENDED);
        }
        End::Failed => stream::abandon(&mut send, &mut recv),
    }
    tracing::debug!(%from, "tunnel end closed");
}

fn touch(last: &Mutex<Instant>) {
    *last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
}

/// Resolves once nothing was touched for `timeout`.
async fn idle(last: &Mutex<Instant>, timeout: Duration) {
    loop {
        let deadline = *last.lock().unwrap_or_else(PoisonError::into_inner) + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Delivers the stream's datagrams to the socket, dropping them when its channel is full.
async fn read_packets(
    recv: &mut RecvStream,
    from: SocketAddr,
    inbound: &Inbound,
    last: &Mutex<Instant>,
) -> End {
    let mut decoder = PacketDecoder::default();
    loop {
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            Ok(None) => return End::Finished,
            Err(e) => {
                tracing::debug!(%from, error = %e, "tunnel stream failed");
                return End::Failed;
            }
        }
        loop {
            match decoder.next_packet() {
                Ok(Some(packet)) => {
                    touch(last);
                    let _ = inbound.try_send((from, packet));
                }
                Ok(None) => break,
                Err(len) => {
                    tracing::debug!(%from, len, "tunnel packet length out of bounds");
                    return End::Failed;
                }
            }
        }
    }
}

/// Writes queued datagrams to the stream, each behind its length; returns when the stream
/// fails.
async fn write_packets(
    send: &mut SendStream,
    mut queue: mpsc::Receiver<Bytes>,
    last: &Mutex<Instant>,
    answer_first: bool,
) {
    if answer_first && send.write_all(&[0]).await.is_err() {
        return;
    }
    while let Some(packet) = queue.recv().await {
        // The table only queues datagrams a tunnel can carry.
        let Some(prefix) = wire::length_prefix(packet.len()) else {
            continue;
        };
        touch(last);
        let mut chunks = [Bytes::copy_from_slice(&prefix), packet];
        if send.write_all_chunks(&mut chunks).await.is_err() {
            return;
        }
    }
}
