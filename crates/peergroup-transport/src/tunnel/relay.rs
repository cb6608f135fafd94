//! The relay's part of a tunnel: copy the requester's stream into the target's and back, and
//! hold the tunnel's channel ids while it lasts.
//!
//! The relay reads a chunk only once it has written the last one, so QUIC flow control makes a
//! fast side wait for a slow one and the relay buffers at most one chunk each way. What it
//! copies is the ends' packet framing around end-to-end QUIC packets: ciphertext to it. Channel
//! datagrams never reach this task: the socket wrapper forwards them as they come.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quinn::{RecvStream, SendStream};
use tokio::sync::watch;

use super::hub::Hub;
use super::stream::{self, Streams};

/// Largest chunk held per direction.
const RELAY_CHUNK: usize = 64 * 1024;

/// A tunnel this node relays. Cheap to clone; the copying goes on whether or not a handle is
/// kept, until either side ends.
#[derive(Clone)]
pub struct RelayedTunnel {
    state: Arc<State>,
}

struct State {
    counters: Counters,
    ended: watch::Sender<bool>,
    /// Set by [`RelayedTunnel::close`].
    stop: tokio::sync::Notify,
}

/// Bytes relayed each way, by stream and by channel.
#[derive(Clone, Default)]
pub(crate) struct Counters {
    /// Requester to target, copied between the streams.
    pub up: Arc<AtomicU64>,
    /// Target to requester, copied between the streams.
    pub down: Arc<AtomicU64>,
    /// Requester to target, forwarded as channel datagrams.
    pub channel_up: Arc<AtomicU64>,
    /// Target to requester, forwarded as channel datagrams.
    pub channel_down: Arc<AtomicU64>,
}

impl RelayedTunnel {
    /// Bytes relayed so far: (requester to target, target to requester), stream framing and
    /// channel headers included.
    pub fn bytes(&self) -> (u64, u64) {
        let (cu, cd) = self.channel_bytes();
        let c = &self.state.counters;
        (
            c.up.load(Ordering::Relaxed) + cu,
            c.down.load(Ordering::Relaxed) + cd,
        )
    }

    /// Of those, the bytes forwarded as channel datagrams (headers included): all but what
    /// went before the channel came up, when it does.
    pub fn channel_bytes(&self) -> (u64, u64) {
        let c = &self.state.counters;
        (
            c.channel_up.load(Ordering::Relaxed),
            c.channel_down.load(Ordering::Relaxed),
        )
    }

    /// Whether the tunnel has ended.
    pub fn is_ended(&self) -> bool {
        *self.state.ended.borrow()
    }

    /// Ends the tunnel now: both streams are reset and its channel ids freed, so both ends
    /// see their tunnel end. For a relay that stops relaying.
    pub fn close(&self) {
        // A stored permit if the copying task is not waiting yet.
        self.state.stop.notify_one();
    }

    /// Waits until the tunnel has ended (either side ended or failed, or the node closed).
    pub async fn ended(&self) {
        let mut rx = self.state.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }
}

impl fmt::Debug for RelayedTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayedTunnel")
            .field("bytes", &self.bytes())
            .field("ended", &self.is_ended())
            .finish()
    }
}

/// Starts copying between the requester's and the target's streams, both answered already;
/// `legs` are the tunnel's channel ids in the node's table, freed when it ends.
pub(crate) fn start(
    hub: &Arc<Hub>,
    requester: Streams,
    target: Streams,
    counters: Counters,
    legs: Option<(u32, u32)>,
) -> RelayedTunnel {
    let state = Arc::new(State {
        counters,
        ended: watch::Sender::new(false),
        stop: tokio::sync::Notify::new(),
    });
    let (hub, task_state) = (hub.clone(), state.clone());
    tokio::spawn(async move {
        pump(hub.closing(), requester, target, &task_state).await;
        if let Some(legs) = legs {
            hub.table.close_legs(legs);
        }
        task_state.ended.send_replace(true);
    });
    RelayedTunnel { state }
}

/// The two sides of a relayed tunnel.
enum Side {
    Requester,
    Target,
}

/// How one direction of copying ended.
enum Copy {
    /// Its source finished: finish its destination.
    Finished,
    /// Its source or destination failed.
    Failed,
}

async fn pump(
    closing: impl std::future::Future<Output = ()>,
    (mut a_send, mut a_recv): Streams,
    (mut b_send, mut b_recv): Streams,
    state: &State,
) {
    // Which side's stream ended cleanly first: its end of stream is passed on; everything
    // else is reset, since a tunnel ends with either half.
    let finished = {
        let up = copy(&mut a_recv, &mut b_send, &state.counters.up);
        let down = copy(&mut b_recv, &mut a_send, &state.counters.down);
        tokio::select! {
            c = up => matches!(c, Copy::Finished).then_some(Side::Requester),
            c = down => matches!(c, Copy::Finished).then_some(Side::Target),
            () = closing => None,
            () = state.stop.notified() => None,
        }
    };
    match finished {
        Some(Side::Requester) => {
            let _ = b_send.finish();
            let _ = a_send.reset(stream::ENDED);
        }
        Some(Side::Target) => {
            let _ = a_send.finish();
            let _ = b_send.reset(stream::ENDED);
        }
        None => {
            let _ = a_send.reset(stream::ENDED);
            let _ = b_send.reset(stream::ENDED);
        }
    }
    let _ = a_recv.stop(stream::ENDED);
    let _ = b_recv.stop(stream::ENDED);
    let (up, down) = (
        state.counters.up.load(Ordering::Relaxed),
        state.counters.down.load(Ordering::Relaxed),
    );
    tracing::debug!(up, down, "relayed tunnel ended");
}

async fn copy(from: &mut RecvStream, to: &mut SendStream, count: &AtomicU64) -> Copy {
    loop {
        match from.read_chunk(RELAY_CHUNK, true).await {
            Ok(Some(chunk)) => {
                let len = chunk.bytes.len() as u64;
                if to.write_chunk(chunk.bytes).await.is_err() {
                    return Copy::Failed;
                }
                count.fetch_add(len, Ordering::Relaxed);
            }
            Ok(None) => return Copy::Finished,
            Err(_) => return Copy::Failed,
        }
    }
}
