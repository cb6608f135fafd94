//! Application data between members (`PeerGroupSendData`) and the greeting of a direct
//! connection: the frames the membership machine never sees.
//!
//! Two frame kinds, after the group messages of [`crate::wire`]:
//!
//! - [`KIND_DIRECT_HELLO`] (10): `node_id u64 [| token 16 bytes | attempt u8]`. The first
//!   frame each side sends on a direct connection; the connection counts as connected once
//!   the peer's greeting arrived. With a token, the connection is a candidate for the upgrade
//!   of a relayed direct connection ([`crate::upgrade`]), dialled for that attempt, not a new
//!   one.
//! - [`KIND_DATA`] (11): `type 16 bytes | last u8 | chunk…`. One part of a message of
//!   `PeerGroupSendData`: a message longer than one frame is split into parts sent back to
//!   back on the same connection (the sender holds the connection's data lock meanwhile), and
//!   the receiver joins them until the part marked `last`. Every part of a message carries its
//!   type; a part whose type differs from the message's first part is a protocol violation.
//!
//! A message is at most [`MAX_DATA_LEN`] bytes, so the receiver's buffer for one connection is
//! bounded.

use bytes::{Bytes, BytesMut};

use crate::upgrade::Token;
use crate::wire::WireError;

/// Frame kind of the direct connection greeting.
pub const KIND_DIRECT_HELLO: u8 = 10;
/// Frame kind of one part of an application message.
pub const KIND_DATA: u8 = 11;
/// Largest message `PeerGroupSendData` takes (Windows sets none below 4 GiB; we bound what a
/// receiver buffers for one connection).
pub const MAX_DATA_LEN: usize = 16 * 1024 * 1024;
/// Bytes of a [`KIND_DATA`] frame before its chunk.
pub const DATA_HEADER_LEN: usize = 17;
/// Largest chunk one [`KIND_DATA`] frame carries.
pub const MAX_CHUNK: usize = crate::transport::frame::MAX_FRAME_LEN - DATA_HEADER_LEN;

/// Encodes the greeting of a direct connection (with a candidate's upgrade token and
/// attempt).
pub fn encode_direct_hello(node_id: u64, candidate: Option<(&Token, u8)>) -> Vec<u8> {
    let mut b = node_id.to_be_bytes().to_vec();
    if let Some((t, attempt)) = candidate {
        b.extend_from_slice(t);
        b.push(attempt);
    }
    b
}

/// Decodes the greeting of a direct connection: the node id, and a candidate's token and
/// attempt.
pub fn decode_direct_hello(payload: &[u8]) -> Result<(u64, Option<(Token, u8)>), WireError> {
    if payload.len() < 8 {
        return Err(WireError::Truncated);
    }
    let (id, rest) = payload.split_at(8);
    let node_id = u64::from_be_bytes(id.try_into().map_err(|_| WireError::Truncated)?);
    match rest.len() {
        0 => Ok((node_id, None)),
        17 => {
            let token = rest[..16].try_into().map_err(|_| WireError::Truncated)?;
            Ok((node_id, Some((token, rest[16]))))
        }
        n if n < 17 => Err(WireError::Truncated),
        _ => Err(WireError::Trailing),
    }
}

/// The frame payloads that carry one message of `data_type`, in order (one for a message of
/// up to [`MAX_CHUNK`] bytes; at least one, also for an empty message).
pub fn encode_parts(data_type: &[u8; 16], data: &[u8]) -> Vec<Bytes> {
    let mut parts = Vec::with_capacity(data.len() / MAX_CHUNK + 1);
    let mut chunks = data.chunks(MAX_CHUNK).peekable();
    if chunks.peek().is_none() {
        parts.push(part(data_type, true, &[]));
    }
    while let Some(chunk) = chunks.next() {
        parts.push(part(data_type, chunks.peek().is_none(), chunk));
    }
    parts
}

fn part(data_type: &[u8; 16], last: bool, chunk: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(DATA_HEADER_LEN + chunk.len());
    b.extend_from_slice(data_type);
    b.extend_from_slice(&[u8::from(last)]);
    b.extend_from_slice(chunk);
    b.freeze()
}

/// One decoded [`KIND_DATA`] frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPart {
    /// The message's type GUID (Windows byte order).
    pub data_type: [u8; 16],
    /// True on the message's last part.
    pub last: bool,
    /// The bytes of this part (a view of the frame, not a copy).
    pub chunk: Bytes,
}

/// Decodes one [`KIND_DATA`] frame payload.
pub fn decode_part(payload: &Bytes) -> Result<DataPart, WireError> {
    if payload.len() < DATA_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let mut data_type = [0u8; 16];
    data_type.copy_from_slice(&payload[..16]);
    let last = match payload[16] {
        0 => false,
        1 => true,
        other => return Err(WireError::BadFlag(other)),
    };
    Ok(DataPart {
        data_type,
        last,
        chunk: payload.slice(DATA_HEADER_LEN..),
    })
}

/// A whole message received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMessage {
    /// Its type GUID.
    pub data_type: [u8; 16],
    /// Its bytes.
    pub data: Bytes,
}

/// Joins the parts of the messages of one connection, in arrival order.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: Option<([u8; 16], BytesMut)>,
}

impl Reassembler {
    /// A reassembler with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next frame payload: a whole message when it was the last part, `None` while
    /// a message is incomplete. A malformed part, a type change in the middle of a message or
    /// a message over [`MAX_DATA_LEN`] is a protocol violation: the connection must close.
    pub fn push(&mut self, payload: &Bytes) -> Result<Option<DataMessage>, WireError> {
        let part = decode_part(payload)?;
        match self.pending.take() {
            None if part.last => Ok(Some(DataMessage {
                data_type: part.data_type,
                data: part.chunk,
            })),
            None => {
                if part.chunk.len() > MAX_DATA_LEN {
                    return Err(WireError::TooLarge("data message"));
                }
                self.pending = Some((part.data_type, BytesMut::from(&part.chunk[..])));
                Ok(None)
            }
            Some((data_type, mut buf)) => {
                if data_type != part.data_type {
                    return Err(WireError::Inconsistent("type change inside a data message"));
                }
                if buf.len() + part.chunk.len() > MAX_DATA_LEN {
                    return Err(WireError::TooLarge("data message"));
                }
                buf.extend_from_slice(&part.chunk);
                if part.last {
                    Ok(Some(DataMessage {
                        data_type,
                        data: buf.freeze(),
                    }))
                } else {
                    self.pending = Some((data_type, buf));
                    Ok(None)
                }
            }
        }
    }

    /// True while a message has parts received and more to come.
    pub fn in_progress(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 16] = [7; 16];

    fn roundtrip(len: usize) -> DataMessage {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let parts = encode_parts(&T, &data);
        assert_eq!(parts.len(), len.div_ceil(MAX_CHUNK).max(1));
        let mut r = Reassembler::new();
        let mut out = None;
        for (i, p) in parts.iter().enumerate() {
            let got = r.push(p).unwrap();
            if i + 1 < parts.len() {
                assert!(got.is_none() && r.in_progress());
            } else {
                out = got;
            }
        }
        let msg = out.expect("the last part completes the message");
        assert_eq!(msg.data_type, T);
        assert_eq!(&msg.data[..], &data[..]);
        assert!(!r.in_progress());
        msg
    }

    #[test]
    fn messages_of_every_size_class_come_back_whole() {
        for len in [0, 1, 64 * 1024, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + 5] {
            roundtrip(len);
        }
    }

    #[test]
    fn bad_parts_are_refused() {
        let mut r = Reassembler::new();
        assert_eq!(
            r.push(&Bytes::from_static(&[0; 16])),
            Err(WireError::Truncated)
        );
        let mut bad = vec![0u8; 17];
        bad[16] = 2;
        assert_eq!(r.push(&Bytes::from(bad)), Err(WireError::BadFlag(2)));
        // A type change in the middle of a message.
        let first = part(&T, false, b"abc");
        let other = part(&[8; 16], true, b"def");
        assert_eq!(r.push(&first), Ok(None));
        assert!(r.push(&other).is_err());
    }

    #[test]
    fn a_message_over_the_limit_is_refused() {
        let mut r = Reassembler::new();
        let chunk = vec![0u8; MAX_CHUNK];
        let mut total = 0;
        loop {
            match r.push(&part(&T, false, &chunk)) {
                Ok(None) => total += MAX_CHUNK,
                Err(WireError::TooLarge(_)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(total <= MAX_DATA_LEN && total + MAX_CHUNK > MAX_DATA_LEN);
    }

    #[test]
    fn direct_hello_is_eight_bytes_or_a_candidate_s_twenty_five() {
        assert_eq!(
            decode_direct_hello(&encode_direct_hello(42, None)),
            Ok((42, None))
        );
        assert_eq!(
            decode_direct_hello(&encode_direct_hello(42, Some((&[3; 16], 2)))),
            Ok((42, Some(([3; 16], 2))))
        );
        assert_eq!(decode_direct_hello(&[0; 7]), Err(WireError::Truncated));
        assert_eq!(decode_direct_hello(&[0; 9]), Err(WireError::Truncated));
        assert_eq!(decode_direct_hello(&[0; 24]), Err(WireError::Truncated));
        assert_eq!(decode_direct_hello(&[0; 26]), Err(WireError::Trailing));
    }
}
