//! Frames: the unit of every message on a Peergroup connection, and their one decoder.
//!
//! A frame is `{version, kind, payload}` behind a length prefix (layout in
//! `docs/protocol.md`, "Frames"):
//!
//! ```text
//! offset  size  field
//! 0       1     version       FRAME_VERSION (1)
//! 1       2     kind          u16, big-endian; meaning defined by the group layer
//! 3       4     payload len   u32, big-endian; at most MAX_FRAME_LEN
//! 7       len   payload       opaque to the transport
//! ```
//!
//! The version comes first so that a later layout can change everything after it, and a
//! decoder that meets an unknown version stops at the first byte instead of trusting a length
//! it does not understand. The transport never interprets `kind` or the payload.
//!
//! [`FrameDecoder`] is the only decoder: it takes the stream in chunks of any size, yields whole
//! frames, and fails with a [`FrameError`] for an unknown version, an oversize length (checked
//! as soon as the header is in, before any payload is buffered) or a stream that ends inside a
//! frame. It is a fuzz target (`fuzz/fuzz_targets/frame.rs`) and needs no QUIC dependency.

use bytes::{Buf, Bytes, BytesMut};

/// The frame layout version this implementation writes and reads.
pub const FRAME_VERSION: u8 = 1;

/// Bytes before the payload: version (1), kind (2), payload length (4).
pub const HEADER_LEN: usize = 7;

/// The largest payload a frame may carry: 1 MiB.
///
/// This is the protocol's one size limit for messages. A peer announcing more is violating the
/// protocol (the connection is closed with `ProtocolViolation`), and [`Frame::new`] refuses to
/// build a larger frame, so a message that does not fit must be split by the group layer.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// The largest frame on the wire, header included.
pub const MAX_ENCODED_FRAME_LEN: usize = HEADER_LEN + MAX_FRAME_LEN;

/// Why bytes are not a valid frame sequence.
///
/// Once a decoder has failed, the stream's framing is lost: every later call reports the same
/// error, and a connection that sees one is closed as a protocol violation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload length is above [`MAX_FRAME_LEN`].
    #[error("frame payload of {len} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    Oversize {
        /// The length that was asked for or announced.
        len: usize,
    },
    /// The frame's version byte is not [`FRAME_VERSION`].
    #[error("unsupported frame version {0} (this implementation speaks {FRAME_VERSION})")]
    BadVersion(u8),
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({buffered} bytes of it had arrived)")]
    Truncated {
        /// How many bytes of the unfinished frame were received.
        buffered: usize,
    },
}

/// One message: a kind chosen by the group layer and an opaque payload.
///
/// The payload is [`Bytes`], so cloning a frame or queueing it for sending copies nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    kind: u16,
    payload: Bytes,
}

impl Frame {
    /// Makes a frame, refusing a payload above [`MAX_FRAME_LEN`].
    pub fn new(kind: u16, payload: impl Into<Bytes>) -> Result<Self, FrameError> {
        let payload = payload.into();
        if payload.len() > MAX_FRAME_LEN {
            return Err(FrameError::Oversize { len: payload.len() });
        }
        Ok(Frame { kind, payload })
    }

    /// The message kind (defined by the group layer).
    pub fn kind(&self) -> u16 {
        self.kind
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload, taken out of the frame.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// The frame's size on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// The header that goes before the payload on the wire.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = FRAME_VERSION;
        h[1..3].copy_from_slice(&self.kind.to_be_bytes());
        // Frame::new guarantees the length fits MAX_FRAME_LEN, hence u32.
        h[3..7].copy_from_slice(&(self.payload.len() as u32).to_be_bytes());
        h
    }

    /// The whole frame as one buffer (header and payload).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header());
        out.extend_from_slice(&self.payload);
        out.freeze()
    }
}

/// The incremental frame decoder: feed it the stream in chunks of any size, take frames out.
///
/// It buffers at most one unfinished frame plus the last chunk pushed, provided the caller
/// drains [`next_frame`](Self::next_frame) until it returns `Ok(None)` before pushing again.
///
/// ```
/// use peergroup_transport::frame::{Frame, FrameDecoder};
/// let wire = Frame::new(7, &b"hello"[..]).unwrap().encode();
/// let mut decoder = FrameDecoder::new();
/// decoder.push(&wire[..3]);
/// assert_eq!(decoder.next_frame(), Ok(None));
/// decoder.push(&wire[3..]);
/// let frame = decoder.next_frame().unwrap().unwrap();
/// assert_eq!((frame.kind(), &frame.payload()[..]), (7, &b"hello"[..]));
/// assert_eq!(decoder.finish(), Ok(()));
/// ```
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the stream. After a failure, input is ignored.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the error that ended the
    /// stream's framing (then again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(&version) = self.buf.first() else {
            return Ok(None);
        };
        if version != FRAME_VERSION {
            return self.fail(FrameError::BadVersion(version));
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = u16::from_be_bytes([self.buf[1], self.buf[2]]);
        let len = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]) as usize;
        if len > MAX_FRAME_LEN {
            return self.fail(FrameError::Oversize { len });
        }
        let total = HEADER_LEN + len;
        if self.buf.len() < total {
            // Grow once to the frame's size rather than chunk by chunk; bounded by the check above.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Frame { kind, payload }))
    }

    /// Says the stream has ended: fine between frames, [`FrameError::Truncated`] inside one.
    pub fn finish(&self) -> Result<(), FrameError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None if self.buf.is_empty() => Ok(()),
            None => Err(FrameError::Truncated {
                buffered: self.buf.len(),
            }),
        }
    }

    /// Bytes held that do not yet make a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self, e: FrameError) -> Result<Option<Frame>, FrameError> {
        self.buf = BytesMut::new();
        self.error = Some(e.clone());
        Err(e)
    }
}

/// Decodes `chunks` as one stream: the frames, then the error that stopped decoding, if any
/// (including [`FrameError::Truncated`] when the stream ends inside a frame).
///
/// A convenience for tests and the fuzz target; connections use [`FrameDecoder`] directly.
pub fn decode_all<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Frame>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, decoder.finish().err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wire(frames: &[Frame]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.encode().to_vec()).collect()
    }

    #[test]
    fn layout_matches_the_documented_offsets() {
        let f = Frame::new(0x0102, &b"xyz"[..]).unwrap();
        assert_eq!(&f.encode()[..], b"\x01\x01\x02\x00\x00\x00\x03xyz");
        assert_eq!(f.encoded_len(), 10);
    }

    #[test]
    fn empty_payloads_and_the_size_limit() {
        let empty = Frame::new(9, Bytes::new()).unwrap();
        assert_eq!(decode_all([&empty.encode()[..]]), (vec![empty], None));
        let max = Frame::new(1, vec![0xAB; MAX_FRAME_LEN]).unwrap();
        assert_eq!(max.encoded_len(), MAX_ENCODED_FRAME_LEN);
        assert_eq!(decode_all([&max.encode()[..]]).0, vec![max]);
        assert_eq!(
            Frame::new(1, vec![0; MAX_FRAME_LEN + 1]),
            Err(FrameError::Oversize {
                len: MAX_FRAME_LEN + 1
            })
        );
    }

    #[test]
    fn an_oversize_header_fails_before_any_payload_arrives() {
        let mut d = FrameDecoder::new();
        d.push(&[FRAME_VERSION, 0, 1]);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes());
        let e = FrameError::Oversize {
            len: MAX_FRAME_LEN + 1,
        };
        assert_eq!(d.next_frame(), Err(e.clone()));
        // Sticky: the framing is lost for good, and nothing more is buffered.
        d.push(&[0; 100]);
        assert_eq!(d.next_frame(), Err(e.clone()));
        assert_eq!(d.finish(), Err(e));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_bad_version_fails_at_the_first_byte() {
        let mut d = FrameDecoder::new();
        d.push(&[2]);
        assert_eq!(d.next_frame(), Err(FrameError::BadVersion(2)));
        let good = Frame::new(1, &b"a"[..]).unwrap().encode();
        let mut bytes = good.to_vec();
        bytes.push(0);
        assert_eq!(
            decode_all([&bytes[..]]),
            (
                vec![Frame::new(1, &b"a"[..]).unwrap()],
                Some(FrameError::BadVersion(0))
            )
        );
    }

    #[test]
    fn truncation_is_reported_only_at_the_end_of_the_stream() {
        let bytes = Frame::new(3, &b"hello"[..]).unwrap().encode();
        for cut in 1..bytes.len() {
            let (frames, err) = decode_all([&bytes[..cut]]);
            assert!(frames.is_empty());
            assert_eq!(err, Some(FrameError::Truncated { buffered: cut }));
        }
        assert_eq!(decode_all([]), (vec![], None));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(k, p)| Frame::new(k, p).unwrap())
    }

    /// Splits `bytes` at the (sorted, deduplicated) cut points.
    fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            out.push(&bytes[start..p]);
            start = p;
        }
        out
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_chunking(
            frames in proptest::collection::vec(arb_frame(), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let bytes = wire(&frames);
            let (decoded, err) = decode_all(chunks(&bytes, &cuts));
            prop_assert_eq!(err, None);
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let whole = decode_all([&bytes[..]]);
            let split = decode_all(chunks(&bytes, &cuts));
            prop_assert_eq!(&split, &whole);
            // What was decoded is exactly a prefix of the input.
            let prefix = wire(&whole.0);
            prop_assert_eq!(&bytes[..prefix.len()], &prefix[..]);
        }

        #[test]
        fn a_valid_prefix_then_garbage_yields_the_prefix(
            frames in proptest::collection::vec(arb_frame(), 1..5),
            garbage in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let mut bytes = wire(&frames);
            bytes.extend_from_slice(&garbage);
            let (decoded, _) = decode_all([&bytes[..]]);
            prop_assert_eq!(&decoded[..frames.len()], &frames[..]);
        }
    }
}
