//! One authenticated connection to a peer: its control stream, its bounded send queue, and how
//! it ends.
//!
//! Each connection carries one long-lived bidirectional *control stream*, opened by the client
//! right after the handshake (`docs/protocol.md`, "Streams"). Frames go out in the order
//! [`Connection::send`] queued them and come in through one [`FrameDecoder`].
//!
//! Bounds: the send queue holds at most `Limits::send_queue_bytes`; a send that finds no room
//! for `Limits::stall_timeout` fails with [`TransportError::Stalled`] and closes the connection
//! with [`CloseCode::Stalled`]. There is no receive queue: bytes wait in QUIC's receive buffer,
//! whose flow-control window (`Limits::stream_window`) makes a fast sender wait for a slow
//! reader. The decoder holds at most one unfinished frame.
//!
//! Lifetime: a connection lives until it is closed (by either side, the idle timeout, or the
//! node's close), not until the last handle is dropped: the node keeps it reachable by id,
//! as Windows keeps a connection reachable by its connection id. Once closed, it releases its
//! QUIC state; the handles that remain only report the [`CloseReason`].
//!
//! Besides the control stream, the peer may open tunnel streams (`crate::tunnel`); a task per
//! connection takes them until it closes.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use quinn::{ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::close::{CloseCode, CloseReason};
use crate::error::{Result, TransportError};
use crate::frame::{Frame, FrameDecoder, FrameError};
use crate::node::{Limits, Registry};
use crate::trust::Side;
use crate::tunnel::{self, Hub};

/// What the client writes first on the control stream. It makes the stream visible to the
/// server (QUIC announces a stream only with its first bytes) and names the stream layout.
pub const CLIENT_PREAMBLE: [u8; 4] = *b"PGC1";

/// What the server answers on the control stream once it accepted the client's certificate.
/// In TLS 1.3 the client's handshake completes before the server has checked the client
/// certificate, so the client waits for this before it reports the connection as made.
pub const SERVER_PREAMBLE: [u8; 4] = *b"PGS1";

/// Largest chunk taken from QUIC per read.
const READ_CHUNK: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to a peer, authenticated by the handshake. Cheap to clone; all clones are the
/// same connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    peer_side: Side,
    remote: SocketAddr,
    /// For a connection through a tunnel: the outer connection it runs on.
    relayed_via: Option<u64>,
    server_name: String,
    peer_chain: Vec<CertificateDer<'static>>,
    /// Taken (dropped) once the connection is closed, so no QUIC state outlives the close.
    quic: Mutex<Option<quinn::Connection>>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// Permits are bytes of queued frames; the bound of the send queue.
    queue: Arc<Semaphore>,
    queue_limit: usize,
    stall_timeout: Duration,
    end_of_stream_grace: Duration,
    recv: tokio::sync::Mutex<RecvHalf>,
    local_close: Mutex<Option<(CloseCode, String)>>,
    /// `Some` once closed and released.
    closed: watch::Sender<Option<CloseReason>>,
}

struct RecvHalf {
    stream: Option<RecvStream>,
    decoder: FrameDecoder,
}

/// What the writer task is asked to do, in order.
enum Outgoing {
    /// Write a frame: its header and payload, and the queue room it holds until written.
    Frame {
        chunks: [Bytes; 2],
        _room: OwnedSemaphorePermit,
    },
    /// End the control stream after everything before it, and say when the peer has it all.
    Finish(oneshot::Sender<()>),
}

/// What a handshake produced, ready to become a [`Connection`].
pub(crate) struct Established {
    pub quic: quinn::Connection,
    pub send: SendStream,
    pub recv: RecvStream,
    pub server_name: String,
    pub peer_chain: Vec<CertificateDer<'static>>,
    pub peer_side: Side,
}

impl Connection {
    /// Starts the connection's writer, tunnel-stream and monitor tasks and registers it with
    /// the node.
    pub(crate) fn start(
        est: Established,
        id: u64,
        limits: &Limits,
        registry: &Arc<Registry>,
        hub: &Arc<Hub>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let remote = est.quic.remote_address();
        let inner = Arc::new(Inner {
            id,
            peer_side: est.peer_side,
            remote,
            relayed_via: hub.table.via_of(remote),
            server_name: est.server_name,
            peer_chain: est.peer_chain,
            quic: Mutex::new(Some(est.quic.clone())),
            outgoing: tx,
            queue: Arc::new(Semaphore::new(limits.send_queue_bytes)),
            queue_limit: limits.send_queue_bytes,
            stall_timeout: limits.stall_timeout,
            end_of_stream_grace: limits.handshake_timeout,
            recv: tokio::sync::Mutex::new(RecvHalf {
                stream: Some(est.recv),
                decoder: FrameDecoder::new(),
            }),
            local_close: Mutex::new(None),
            closed: watch::Sender::new(None),
        });
        let conn = Connection { inner };
        // Registered before the monitor runs, so that a connection closing at once is removed.
        registry.insert(conn.clone());
        let writer = tokio::spawn(write_loop(
            conn.inner.clone(),
            est.quic.clone(),
            est.send,
            rx,
        ));
        let streams = tokio::spawn(tunnel::serve_streams(
            conn.clone(),
            est.quic.clone(),
            hub.clone(),
        ));
        tokio::spawn(monitor(
            conn.inner.clone(),
            est.quic,
            [writer, streams],
            Arc::downgrade(registry),
        ));
        conn
    }

    /// The connection's id: unique on this node for the node's lifetime, never reused.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The role of the peer: [`Side::Client`] if it connected to us.
    pub fn peer_side(&self) -> Side {
        self.inner.peer_side
    }

    /// The peer's UDP address (as first seen; QUIC may migrate later).
    pub fn remote_address(&self) -> SocketAddr {
        self.inner.remote
    }

    /// The peer's UDP address now, `None` once closed: after the peer moved or its NAT gave
    /// it a new mapping, QUIC validates the new path and sends there, so this differs from
    /// [`Connection::remote_address`] (only a server sees its client migrate).
    pub fn path_remote(&self) -> Option<SocketAddr> {
        lock(&self.inner.quic).as_ref().map(|q| q.remote_address())
    }

    /// For a connection through a tunnel (its remote address is a tunnel end's virtual
    /// address), the id of the connection the tunnel runs on; `None` for a direct one.
    pub fn relayed_via(&self) -> Option<u64> {
        self.inner.relayed_via
    }

    /// Whether both handles are the same connection (ids are only unique per node).
    pub(crate) fn same_as(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The QUIC connection, unless closed and released.
    pub(crate) fn quic_handle(&self) -> Option<quinn::Connection> {
        lock(&self.inner.quic).clone()
    }

    /// The server name (SNI) of the connection: the one the client asked for, on both sides.
    pub fn server_name(&self) -> &str {
        &self.inner.server_name
    }

    /// The certificate chain the peer presented, end-entity first, as accepted by the policy.
    pub fn peer_chain(&self) -> &[CertificateDer<'static>] {
        &self.inner.peer_chain
    }

    /// Queues `frame` on the control stream. Frames are sent in the order they were queued.
    ///
    /// Returns once the frame is in the send queue, not when the peer has it. Waits while the
    /// queue is full; if it stays full for the stall timeout, the peer is taken to have stopped
    /// reading: the connection is closed with [`CloseCode::Stalled`] and this returns
    /// [`TransportError::Stalled`]. On a closed or closing connection, returns
    /// [`TransportError::Closed`]. Cancel-safe: a cancelled send queued nothing.
    pub async fn send(&self, frame: &Frame) -> Result<()> {
        if let Some(reason) = self.close_reason() {
            return Err(TransportError::Closed(reason));
        }
        if let Some((code, reason)) = lock(&self.inner.local_close).clone() {
            return Err(TransportError::Closed(CloseReason::Local { code, reason }));
        }
        // The queue bound is at least MAX_ENCODED_FRAME_LEN (checked by Limits), which fits u32.
        let len = frame.encoded_len() as u32;
        // The common case, room at once, needs no timer.
        if let Ok(room) = self.inner.queue.clone().try_acquire_many_owned(len) {
            return self.enqueue(frame, room).await;
        }
        let wait = self.inner.queue.clone().acquire_many_owned(len);
        let room = match tokio::time::timeout(self.inner.stall_timeout, wait).await {
            Ok(Ok(room)) => room,
            Ok(Err(_)) => return Err(TransportError::Closed(self.closed().await)),
            Err(_) => {
                let queued = self.inner.queue_limit - self.inner.queue.available_permits();
                tracing::debug!(id = self.id(), queued, "peer stalled");
                self.close(CloseCode::Stalled, "peer stopped reading");
                return Err(TransportError::Stalled {
                    queued,
                    waited: self.inner.stall_timeout,
                });
            }
        };
        self.enqueue(frame, room).await
    }

    /// Hands a frame with its queue room to the writer.
    async fn enqueue(&self, frame: &Frame, room: OwnedSemaphorePermit) -> Result<()> {
        let chunks = [
            Bytes::copy_from_slice(&frame.header()),
            frame.payload().clone(),
        ];
        if self
            .inner
            .outgoing
            .send(Outgoing::Frame {
                chunks,
                _room: room,
            })
            .is_err()
        {
            return Err(TransportError::Closed(self.closed().await));
        }
        Ok(())
    }

    /// The next frame from the peer.
    ///
    /// A peer that sends bytes that are not frames (unknown version, oversize length, stream
    /// ending inside a frame) is closed with [`CloseCode::ProtocolViolation`] and the
    /// [`TransportError::Frame`] is returned. Once the connection is closed, the whole frames
    /// that arrived before the close are still returned, then [`TransportError::Closed`].
    /// Cancel-safe: no bytes are lost if the future is dropped. Concurrent calls are served
    /// one after the other.
    pub async fn recv(&self) -> Result<Frame> {
        let mut half = self.inner.recv.lock().await;
        loop {
            match half.decoder.next_frame() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    drop(half);
                    return Err(self.violation(e));
                }
            }
            let Some(stream) = half.stream.as_mut() else {
                // Closed, and every whole frame that arrived before the close was handed out;
                // a partial one left in the decoder is dropped with the connection.
                drop(half);
                return Err(TransportError::Closed(self.closed().await));
            };
            match stream.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => half.decoder.push(&chunk.bytes),
                Ok(None) => {
                    half.stream = None;
                    let end = half.decoder.finish();
                    drop(half);
                    if let Err(e) = end {
                        return Err(self.violation(e));
                    }
                    return Err(TransportError::Closed(self.closed_after_stream_end().await));
                }
                Err(e) => {
                    half.stream = None;
                    drop(half);
                    if let ReadError::Reset(code) = e {
                        self.close(
                            CloseCode::ProtocolViolation,
                            &format!("control stream reset with code {code}"),
                        );
                    }
                    return Err(TransportError::Closed(self.closed().await));
                }
            }
        }
    }

    /// Closes the connection now with `code`; the peer's [`closed`](Self::closed) reports it.
    ///
    /// Frames still queued may not reach the peer. Closing a closed connection does nothing;
    /// the first close wins.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let quic = lock(&self.inner.quic).clone();
        if let Some(quic) = quic {
            lock(&self.inner.local_close).get_or_insert_with(|| (code, reason.to_owned()));
            quic.close(VarInt::from_u32(code.code()), reason.as_bytes());
        }
    }

    /// Closes the connection with `code` once the frames queued so far have reached the peer,
    /// waiting for that at most `timeout`; returns how the connection ended.
    ///
    /// Our side of the control stream is ended after the last queued frame and the close is
    /// sent when the peer's QUIC stack has acknowledged all of it, so the peer's
    /// [`recv`](Self::recv) yields every frame before it reports the close. Sends made after
    /// this call fail with [`TransportError::Closed`]. If the peer does not take the frames
    /// within `timeout` (it stopped reading), the close is sent anyway, as [`close`](Self::close)
    /// would.
    pub async fn close_flushed(
        &self,
        code: CloseCode,
        reason: &str,
        timeout: Duration,
    ) -> CloseReason {
        lock(&self.inner.local_close).get_or_insert_with(|| (code, reason.to_owned()));
        let (done, flushed) = oneshot::channel();
        if self.inner.outgoing.send(Outgoing::Finish(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, flushed).await;
        }
        self.close(code, reason);
        self.closed().await
    }

    /// Records the code a node-wide close is about to send, so that this side reports it.
    pub(crate) fn note_local_close(&self, code: CloseCode, reason: &str) {
        lock(&self.inner.local_close).get_or_insert_with(|| (code, reason.to_owned()));
    }

    /// Waits until the connection is closed and its QUIC state released, and says how it ended.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.inner.closed.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Unreachable: `inner` holds the sender.
                return CloseReason::Transport {
                    reason: "connection state lost".into(),
                };
            }
        }
    }

    /// How the connection ended, or `None` while it is open (or still closing).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.closed.borrow().clone()
    }

    fn violation(&self, e: FrameError) -> TransportError {
        self.close(CloseCode::ProtocolViolation, &e.to_string());
        TransportError::Frame(e)
    }

    /// The peer ended its control stream, which it does only when closing: wait for the close,
    /// but not for ever.
    async fn closed_after_stream_end(&self) -> CloseReason {
        match tokio::time::timeout(self.inner.end_of_stream_grace, self.closed()).await {
            Ok(reason) => reason,
            Err(_) => {
                self.close(CloseCode::ProtocolViolation, "control stream ended");
                self.closed().await
            }
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("remote", &self.inner.remote)
            .field("relayed_via", &self.inner.relayed_via)
            .field("server_name", &self.inner.server_name)
            .field("peer_side", &self.inner.peer_side)
            .finish_non_exhaustive()
    }
}

/// Writes queued frames to the control stream, in order, until the connection closes.
async fn write_loop(
    inner: Arc<Inner>,
    quic: quinn::Connection,
    mut stream: SendStream,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut finished = false;
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = quic.closed() => return,
        };
        // `inner` holds the sender, so the channel stays open while this task runs.
        let (mut chunks, room) = match item {
            None => return,
            // Queued after close_flushed began: the stream is ended, the close is coming.
            Some(Outgoing::Frame { .. }) if finished => continue,
            Some(Outgoing::Frame { chunks, _room }) => (chunks, _room),
            Some(Outgoing::Finish(done)) => {
                finished = true;
                if stream.finish().is_ok() {
                    // Resolves once the peer acknowledged every byte, or the connection ended.
                    let _ = stream.stopped().await;
                }
                let _ = done.send(());
                continue;
            }
        };
        let written = stream.write_all_chunks(&mut chunks).await;
        // The frame is QUIC's now: give its room in the queue back.
        drop(room);
        if let Err(e) = written {
            if quic.close_reason().is_none() {
                // The peer stopped our control stream: that is not how the protocol ends.
                let reason = format!("control stream: {e}");
                lock(&inner.local_close)
                    .get_or_insert_with(|| (CloseCode::ProtocolViolation, reason.clone()));
                quic.close(
                    VarInt::from_u32(CloseCode::ProtocolViolation.code()),
                    reason.as_bytes(),
                );
            }
            return;
        }
    }
}

/// Waits for the close, releases every QUIC handle, then publishes the reason.
async fn monitor(
    inner: Arc<Inner>,
    quic: quinn::Connection,
    [writer, streams]: [tokio::task::JoinHandle<()>; 2],
    registry: Weak<Registry>,
) {
    let error = quic.closed().await;
    drop(quic);
    let local = lock(&inner.local_close).clone();
    let reason = close_reason(error, local);
    // Wake senders waiting for room; they then wait for the reason below.
    inner.queue.close();
    lock(&inner.quic).take();
    let _ = writer.await;
    // It would notice the close too, but it holds a QUIC handle: make sure it is gone.
    streams.abort();
    let _ = streams.await;
    {
        let mut half = inner.recv.lock().await;
        if let Some(mut stream) = half.stream.take() {
            // Keep what arrived before the close, so recv() still yields those frames: at most
            // one flow-control window. The connection is closed, so reads no longer wait (the
            // zero timeout makes sure).
            while let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::ZERO, stream.read_chunk(READ_CHUNK, true)).await
            {
                half.decoder.push(&chunk.bytes);
            }
        }
    }
    if let Some(registry) = registry.upgrade() {
        registry.remove(inner.id);
    }
    tracing::debug!(id = inner.id, %reason, "connection closed");
    inner.closed.send_replace(Some(reason));
}

/// How a QUIC connection error reads as a [`CloseReason`].
fn close_reason(error: ConnectionError, local: Option<(CloseCode, String)>) -> CloseReason {
    match error {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            let raw = close.error_code.into_inner();
            match CloseCode::from_code(raw) {
                Some(code) => CloseReason::Peer { code, reason },
                None => CloseReason::PeerUnknownCode { code: raw, reason },
            }
        }
        ConnectionError::LocallyClosed => {
            let (code, reason) = local.unwrap_or((CloseCode::Shutdown, String::new()));
            CloseReason::Local { code, reason }
        }
        ConnectionError::TimedOut => CloseReason::TimedOut,
        ConnectionError::Reset => CloseReason::Reset,
        other => CloseReason::Transport {
            reason: other.to_string(),
        },
    }
}

/// TLS alerts that mean "the certificate was refused" (by a policy, or a bad signature).
const AUTH_ALERTS: [u8; 8] = [
    42,  // bad_certificate
    43,  // unsupported_certificate
    44,  // certificate_revoked
    45,  // certificate_expired
    46,  // certificate_unknown
    48,  // unknown_ca
    51,  // decrypt_error (handshake signature)
    116, // certificate_required
];
/// The TLS alerts a server sends when it has no certificate for the name asked: rustls sends
/// access_denied (49); handshake_failure (40) is what other stacks send.
const NO_CREDENTIALS_ALERTS: [u8; 2] = [40, 49];
/// QUIC's CONNECTION_REFUSED transport error code.
const QUIC_CONNECTION_REFUSED: u64 = 0x2;

fn tls_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let raw = u64::from(code);
    (0x100..0x200).contains(&raw).then(|| (raw - 0x100) as u8)
}

/// How a failure while connecting reads as a [`TransportError`].
pub(crate) fn connect_error(addr: SocketAddr, error: ConnectionError) -> TransportError {
    let reason = error.to_string();
    match error {
        // Our own TLS stack failed the handshake: our policy refused the peer's chain.
        ConnectionError::TransportError(e) => match tls_alert(e.code) {
            Some(alert) if AUTH_ALERTS.contains(&alert) || alert == 49 => {
                TransportError::NotAuthenticated { addr, reason }
            }
            _ => TransportError::ConnectFailed { addr, reason },
        },
        // The peer's TLS stack failed it: it refused our chain, or has nothing for the name.
        ConnectionError::ConnectionClosed(close) => match tls_alert(close.error_code) {
            Some(alert) if AUTH_ALERTS.contains(&alert) => {
                TransportError::NotAuthenticated { addr, reason }
            }
            Some(alert) if NO_CREDENTIALS_ALERTS.contains(&alert) => {
                TransportError::Refused { addr, reason }
            }
            _ if u64::from(close.error_code) == QUIC_CONNECTION_REFUSED => {
                TransportError::Refused { addr, reason }
            }
            _ => TransportError::ConnectFailed { addr, reason },
        },
        ConnectionError::LocallyClosed => TransportError::NodeClosed,
        other @ ConnectionError::ApplicationClosed(_) => {
            TransportError::Closed(close_reason(other, None))
        }
        _ => TransportError::ConnectFailed { addr, reason },
    }
}

/// Client side of the control stream set-up: open it, say hello, wait for the server's answer.
pub(crate) async fn open_control(
    quic: &quinn::Connection,
) -> std::result::Result<(SendStream, RecvStream), StreamSetupError> {
    let (mut send, mut recv) = quic.open_bi().await?;
    send.write_all(&CLIENT_PREAMBLE)
        .await
        .map_err(|e| match e {
            quinn::WriteError::ConnectionLost(e) => StreamSetupError::Lost(e),
            other => StreamSetupError::Violation(other.to_string()),
        })?;
    let mut answer = [0u8; 4];
    read_preamble(&mut recv, &mut answer).await?;
    if answer != SERVER_PREAMBLE {
        return Err(StreamSetupError::Violation(
            "unexpected server preamble".into(),
        ));
    }
    Ok((send, recv))
}

/// Server side of the control stream set-up: accept it, check the hello, answer.
pub(crate) async fn accept_control(
    quic: &quinn::Connection,
) -> std::result::Result<(SendStream, RecvStream), StreamSetupError> {
    let (mut send, mut recv) = quic.accept_bi().await?;
    let mut hello = [0u8; 4];
    read_preamble(&mut recv, &mut hello).await?;
    if hello != CLIENT_PREAMBLE {
        return Err(StreamSetupError::Violation(
            "unexpected client preamble".into(),
        ));
    }
    send.write_all(&SERVER_PREAMBLE)
        .await
        .map_err(|e| match e {
            quinn::WriteError::ConnectionLost(e) => StreamSetupError::Lost(e),
            other => StreamSetupError::Violation(other.to_string()),
        })?;
    Ok((send, recv))
}

async fn read_preamble(
    recv: &mut RecvStream,
    buf: &mut [u8],
) -> std::result::Result<(), StreamSetupError> {
    recv.read_exact(buf).await.map_err(|e| match e {
        ReadExactError::ReadError(ReadError::ConnectionLost(e)) => StreamSetupError::Lost(e),
        other => StreamSetupError::Violation(other.to_string()),
    })
}

/// Why the control stream could not be set up.
pub(crate) enum StreamSetupError {
    /// The connection ended (for a client: often the server refusing our certificate).
    Lost(ConnectionError),
    /// The peer did not follow the protocol.
    Violation(String),
}

impl From<ConnectionError> for StreamSetupError {
    fn from(e: ConnectionError) -> Self {
        StreamSetupError::Lost(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_errors_read_as_reasons() {
        let app = ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: VarInt::from_u32(2),
            reason: Bytes::from_static(b"bye"),
        });
        assert_eq!(
            close_reason(app, None),
            CloseReason::Peer {
                code: CloseCode::MemberLeft,
                reason: "bye".into()
            }
        );
        let unknown = ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: VarInt::from_u32(99),
            reason: Bytes::new(),
        });
        assert!(matches!(
            close_reason(unknown, None),
            CloseReason::PeerUnknownCode { code: 99, .. }
        ));
        assert_eq!(
            close_reason(ConnectionError::LocallyClosed, None),
            CloseReason::Local {
                code: CloseCode::Shutdown,
                reason: String::new()
            }
        );
        assert_eq!(
            close_reason(ConnectionError::TimedOut, None),
            CloseReason::TimedOut
        );
    }

    #[test]
    fn handshake_alerts_read_as_errors() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let closed = |alert: u8| {
            ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code: quinn::TransportErrorCode::crypto(alert),
                frame_type: None,
                reason: Bytes::new(),
            })
        };
        assert!(matches!(
            connect_error(addr, closed(46)),
            TransportError::NotAuthenticated { .. }
        ));
        assert!(matches!(
            connect_error(addr, closed(49)),
            TransportError::Refused { .. }
        ));
        assert!(matches!(
            connect_error(addr, closed(40)),
            TransportError::Refused { .. }
        ));
        assert!(matches!(
            connect_error(addr, closed(120)),
            TransportError::ConnectFailed { .. }
        ));
        assert!(matches!(
            connect_error(addr, ConnectionError::TimedOut),
            TransportError::ConnectFailed { .. }
        ));
    }
}
