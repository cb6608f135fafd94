//! Opening, answering and abandoning tunnel streams.

use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use tokio::runtime::Handle;

use super::wire::Header;
use super::TunnelRefusal;
use crate::connection::Connection;
use crate::error::{Result, TransportError};

/// Tunnel streams yield to the control stream when both have data to send.
pub(crate) const TUNNEL_PRIORITY: i32 = -1;

/// The stream error code for a tunnel that ends other than by its end of stream.
pub(crate) const ENDED: VarInt = VarInt::from_u32(0);

/// A tunnel stream's two halves.
pub(crate) type Streams = (SendStream, RecvStream);

/// Opens a tunnel stream on `via` with `header` and waits, at most `timeout` (the wait for a
/// free stream included), for the answer; returns the streams once it was 0.
pub(crate) async fn open(via: &Connection, header: Header, timeout: Duration) -> Result<Streams> {
    let Some(quic) = via.quic_handle() else {
        return Err(TransportError::Closed(via.closed().await));
    };
    let addr = via.remote_address();
    let failed = |reason: String| TransportError::ConnectFailed { addr, reason };
    let exchange = async {
        let (mut send, mut recv) = quic
            .open_bi()
            .await
            .map_err(|e| failed(format!("tunnel stream: {e}")))?;
        let _ = send.set_priority(TUNNEL_PRIORITY);
        send.write_all(&header.encode())
            .await
            .map_err(|e| failed(format!("tunnel stream: {e}")))?;
        let mut answer = [0u8; 1];
        recv.read_exact(&mut answer)
            .await
            .map_err(|e| failed(format!("tunnel answer: {e}")))?;
        Ok::<_, TransportError>((send, recv, answer[0]))
    };
    let (send, recv, answer) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed("no tunnel answer within the handshake timeout".into()))??;
    match answer {
        0 => Ok((send, recv)),
        code => Err(match TunnelRefusal::from_code(code) {
            Some(refusal) => TransportError::TunnelRefused(refusal),
            None => failed(format!("unknown tunnel answer {code}")),
        }),
    }
}

/// Ends both halves of a tunnel stream at once.
pub(crate) fn abandon(send: &mut SendStream, recv: &mut RecvStream) {
    let _ = send.reset(ENDED);
    let _ = recv.stop(ENDED);
}

/// A tunnel stream whose header was read and which waits for its answer. Dropped unanswered,
/// it answers [`TunnelRefusal::Busy`].
pub(crate) struct Pending {
    streams: Option<Streams>,
    runtime: Handle,
    timeout: Duration,
}

impl Pending {
    /// Must be made inside the runtime; answers may be given from anywhere.
    pub fn new(streams: Streams, timeout: Duration) -> Self {
        Pending {
            streams: Some(streams),
            runtime: Handle::current(),
            timeout,
        }
    }

    /// The runtime the stream was accepted in.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// The streams, to answer 0 on and carry the tunnel.
    pub fn into_streams(mut self) -> Streams {
        self.streams
            .take()
            .expect("a pending tunnel stream is answered once")
    }

    pub fn refuse(mut self, why: TunnelRefusal) {
        self.answer(why);
    }

    fn answer(&mut self, why: TunnelRefusal) {
        let Some((mut send, mut recv)) = self.streams.take() else {
            return;
        };
        let _ = recv.stop(ENDED);
        let timeout = self.timeout;
        // One byte into a fresh stream's window: the write does not wait for the peer.
        self.runtime.spawn(async move {
            let answered = tokio::time::timeout(timeout, send.write_all(&[why.code()])).await;
            if matches!(answered, Ok(Ok(()))) {
                let _ = send.finish();
            }
        });
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.answer(TunnelRefusal::Busy);
    }
}
