//! A tunnel end: moves datagrams between its virtual address and its tunnel stream, and
//! brings up the channel its relay grants.
//!
//! It ends when either half of the stream ends or fails (the outer connection closing
//! included), when no datagram went either way (stream or channel) for the idle timeout, or
//! when the node closes; its table entry goes with it, so later datagrams to its address are
//! dropped.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::hub::Hub;
use super::port::Inbound;
use super::stream::{self, Streams};
use super::table::{EndSignals, Origin, Reserve};
use super::wire::{self, Item, PacketDecoder};
use super::{CHANNEL_PROBES, CHANNEL_PROBE_INTERVAL};

/// Largest chunk taken from QUIC per read.
const READ_CHUNK: usize = 64 * 1024;

/// Makes `streams` (answered with 0 already, or to be answered with 0 first when
/// `answer_first`) a tunnel end and returns its virtual address. An end we opened to the same
/// pair that exists already is returned instead, and `streams` are ended. Gives the streams
/// back if [`MAX_TUNNEL_ENDS`](super::MAX_TUNNEL_ENDS) ends are open. `relay` is the QUIC
/// connection to the relay, where channel datagrams go.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attach(
    hub: &Arc<Hub>,
    runtime: &Handle,
    via: u64,
    relay: Option<quinn::Connection>,
    peer_node: u64,
    origin: Origin,
    streams: Streams,
    answer_first: bool,
) -> Result<SocketAddr, Streams> {
    let (addr, queue, signals) = match hub.table.reserve(via, peer_node, origin) {
        Reserve::New(addr, queue, signals) => (addr, queue, signals),
        Reserve::Existing(addr) => {
            let (mut send, mut recv) = streams;
            stream::abandon(&mut send, &mut recv);
            return Ok(addr);
        }
        Reserve::Full => return Err(streams),
    };
    let presented = hub.table.presented(addr);
    tracing::debug!(%presented, via, peer_node, ?origin, "tunnel end open");
    let end = End {
        hub: hub.clone(),
        addr,
        relay,
        signals,
    };
    runtime.spawn(end.run(streams, queue, answer_first));
    Ok(presented)
}

/// What an end's task works with.
struct End {
    hub: Arc<Hub>,
    addr: SocketAddrV4,
    relay: Option<quinn::Connection>,
    signals: Arc<EndSignals>,
}

/// How the stream loops ended.
enum Ending {
    /// The peer finished its half: finish ours.
    Finished,
    /// Idle, or the node closing: finish ours, stop theirs.
    Quiet,
    /// A failure or a bad length: reset ours, stop theirs.
    Failed,
}

impl End {
    async fn run(
        self,
        (mut send, mut recv): Streams,
        queue: mpsc::Receiver<Bytes>,
        answer_first: bool,
    ) {
        let hub = &self.hub;
        let from = hub.table.presented(self.addr);
        let ending = {
            let reader = self.read_packets(&mut recv, from, &hub.inbound);
            let writer = self.write_packets(&mut send, queue, answer_first);
            tokio::select! {
                ending = reader => ending,
                () = writer => Ending::Failed,
                () = self.idle(hub.idle_timeout) => Ending::Quiet,
                () = self.bring_up_channel() => Ending::Quiet,
                () = hub.closing() => Ending::Quiet,
            }
        };
        hub.table.remove(self.addr);
        match ending {
            Ending::Finished | Ending::Quiet => {
                let _ = send.finish();
                let _ = recv.stop(stream::ENDED);
            }
            Ending::Failed => stream::abandon(&mut send, &mut recv),
        }
        tracing::debug!(%from, "tunnel end closed");
    }

    /// Resolves once no datagram went either way for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let deadline = self.signals.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Once the relay grants a channel, probes it until the relay confirms (datagrams then go
    /// by channel) or [`CHANNEL_PROBES`] went unanswered (the channel is given up, datagrams
    /// stay on the stream). Never resolves.
    async fn bring_up_channel(&self) {
        let table = &self.hub.table;
        loop {
            // A grant stores a wake-up if nobody waits yet.
            self.signals.channel.notified().await;
            let mut up = false;
            for _ in 0..CHANNEL_PROBES {
                match table.probe(self.addr) {
                    Some(true) => {
                        up = true;
                        break;
                    }
                    Some(false) => {}
                    None => break,
                }
                tokio::select! {
                    () = tokio::time::sleep(CHANNEL_PROBE_INTERVAL) => {}
                    () = self.signals.channel.notified() => {}
                }
            }
            if up || table.channel_is_up(self.addr) {
                tracing::debug!(addr = %self.addr, "tunnel channel up");
            } else {
                tracing::debug!(addr = %self.addr, "tunnel channel not confirmed; staying on the stream");
                table.drop_channel(self.addr);
            }
        }
    }

    /// Delivers the stream's datagrams to the socket, dropping them when its channel is full;
    /// takes the relay's channel grant.
    async fn read_packets(
        &self,
        recv: &mut RecvStream,
        from: SocketAddr,
        inbound: &Inbound,
    ) -> Ending {
        let mut decoder = PacketDecoder::default();
        loop {
            match recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => decoder.push(&chunk.bytes),
                Ok(None) => return Ending::Finished,
                Err(e) => {
                    tracing::debug!(%from, error = %e, "tunnel stream failed");
                    return Ending::Failed;
                }
            }
            loop {
                match decoder.next_item() {
                    Ok(Some(Item::Packet(packet))) => {
                        self.signals.touch();
                        let _ = inbound.try_send((from, packet));
                    }
                    Ok(Some(Item::Channel(id))) => {
                        let granted = self.relay.clone().is_some_and(|relay| {
                            self.hub.table.grant(self.addr, id, Arc::new(relay))
                        });
                        tracing::debug!(%from, granted, "tunnel channel offered");
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%from, error = ?e, "bad tunnel stream");
                        return Ending::Failed;
                    }
                }
            }
        }
    }

    /// Writes queued datagrams to the stream, each behind its length; returns when the stream
    /// fails.
    async fn write_packets(
        &self,
        send: &mut SendStream,
        mut queue: mpsc::Receiver<Bytes>,
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
            self.signals.touch();
            let mut chunks = [Bytes::copy_from_slice(&prefix), packet];
            if send.write_all_chunks(&mut chunks).await.is_err() {
                return;
            }
        }
    }
}
