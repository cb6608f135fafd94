//! The bytes of a tunnel stream: its header, and then length-prefixed datagrams and control
//! messages. Public (and built without the `quic` feature) for the fuzz target `tunnel_stream`.

use bytes::{Buf, Bytes, BytesMut};

use super::{MAX_TUNNEL_PACKET, TUNNEL_MAGIC};

/// Header length: magic, kind, node id.
pub const HEADER_LEN: usize = 4 + 1 + 8;

/// What the opener of a tunnel stream asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// "Relay me to node `node`" (to a relay).
    Request = 1,
    /// "Node `node` wants a path to you through me" (from a relay).
    Offer = 2,
}

/// The first bytes of a tunnel stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request or offer.
    pub kind: Kind,
    /// The node asked for (request) or the one asking (offer).
    pub node: u64,
}

impl Header {
    /// The header's bytes.
    pub fn encode(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&TUNNEL_MAGIC);
        out[4] = self.kind as u8;
        out[5..].copy_from_slice(&self.node.to_be_bytes());
        out
    }

    /// The header, or why these bytes are not one.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, &'static str> {
        if bytes[..4] != TUNNEL_MAGIC {
            return Err("not a tunnel stream (bad magic)");
        }
        let kind = match bytes[4] {
            1 => Kind::Request,
            2 => Kind::Offer,
            _ => return Err("unknown tunnel kind"),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[5..]);
        Ok(Header {
            kind,
            node: u64::from_be_bytes(id),
        })
    }
}

/// The length prefix of one datagram, or `None` for one a tunnel cannot carry.
pub fn length_prefix(len: usize) -> Option<[u8; 2]> {
    (1..=MAX_TUNNEL_PACKET)
        .contains(&len)
        .then(|| (len as u16).to_be_bytes())
}

/// Control kind 1, relay to end: "send your datagrams as channel datagrams with this id"
/// (see `datagram`); a `u32` big-endian channel id follows.
pub const CONTROL_CHANNEL: u8 = 1;

/// Length of a channel grant on the stream: the zero prefix, the kind, the id.
pub const CHANNEL_GRANT_LEN: usize = 2 + 1 + 4;

/// The bytes of a channel grant: a length prefix of 0 marks a control message.
pub fn channel_grant(id: u32) -> [u8; CHANNEL_GRANT_LEN] {
    let mut out = [0u8; CHANNEL_GRANT_LEN];
    out[2] = CONTROL_CHANNEL;
    out[3..].copy_from_slice(&id.to_be_bytes());
    out
}

/// One thing read from a tunnel stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A datagram of the inner connection.
    Packet(Bytes),
    /// A channel grant from the relay, with its id.
    Channel(u32),
}

/// Why a tunnel stream is not well formed; either ends the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// A datagram length above [`MAX_TUNNEL_PACKET`].
    Length(usize),
    /// A control message of a kind this version does not know.
    Control(u8),
}

/// Splits the stream back into datagrams and control messages; holds at most one unfinished
/// datagram plus the chunk being pushed.
#[derive(Default)]
pub struct PacketDecoder {
    buf: BytesMut,
}

impl PacketDecoder {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole item, `Ok(None)` if more bytes are needed, `Err` for a length above
    /// [`MAX_TUNNEL_PACKET`] or an unknown control kind.
    pub fn next_item(&mut self) -> Result<Option<Item>, StreamError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len == 0 {
            let Some(&kind) = self.buf.get(2) else {
                return Ok(None);
            };
            if kind != CONTROL_CHANNEL {
                return Err(StreamError::Control(kind));
            }
            if self.buf.len() < CHANNEL_GRANT_LEN {
                return Ok(None);
            }
            let id = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
            self.buf.advance(CHANNEL_GRANT_LEN);
            return Ok(Some(Item::Channel(id)));
        }
        if len > MAX_TUNNEL_PACKET {
            return Err(StreamError::Length(len));
        }
        if self.buf.len() < 2 + len {
            return Ok(None);
        }
        self.buf.advance(2);
        Ok(Some(Item::Packet(self.buf.split_to(len).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        for kind in [Kind::Request, Kind::Offer] {
            let h = Header {
                kind,
                node: 0x0102_0304_0506_0708,
            };
            let bytes = h.encode();
            assert_eq!(&bytes[..4], b"PGT1");
            assert_eq!(bytes[4], kind as u8);
            assert_eq!(&bytes[5..], &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(Header::decode(&bytes), Ok(h));
        }
        let mut bad = Header {
            kind: Kind::Request,
            node: 1,
        }
        .encode();
        bad[4] = 3;
        assert!(Header::decode(&bad).is_err());
        assert!(Header::decode(b"HTTP/1.1 200 ").is_err());
    }

    #[test]
    fn packets_split_at_their_prefixes_in_any_chunking() {
        let packets: Vec<Vec<u8>> = vec![vec![1], vec![2; 1200], vec![3; MAX_TUNNEL_PACKET]];
        let mut stream = Vec::new();
        for p in &packets {
            stream.extend_from_slice(&length_prefix(p.len()).unwrap());
            stream.extend_from_slice(p);
            // A grant between every two packets.
            stream.extend_from_slice(&channel_grant(p.len() as u32));
        }
        for chunk in [1, 7, 1500, stream.len()] {
            let mut d = PacketDecoder::default();
            let mut out = Vec::new();
            let mut grants = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(item) = d.next_item().unwrap() {
                    match item {
                        Item::Packet(p) => out.push(p.to_vec()),
                        Item::Channel(id) => grants.push(id),
                    }
                }
            }
            assert_eq!(out, packets, "chunk size {chunk}");
            assert_eq!(
                grants,
                [1, 1200, MAX_TUNNEL_PACKET as u32],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn lengths_outside_the_bound_and_unknown_controls_end_the_tunnel() {
        assert_eq!(length_prefix(0), None);
        assert_eq!(length_prefix(MAX_TUNNEL_PACKET + 1), None);
        assert_eq!(length_prefix(MAX_TUNNEL_PACKET), Some([0xFF, 0xF7]));
        for prefix in [[0xFF, 0xF8], [0xFF, 0xFF]] {
            let mut d = PacketDecoder::default();
            d.push(&prefix);
            let len = usize::from(u16::from_be_bytes(prefix));
            assert_eq!(d.next_item(), Err(StreamError::Length(len)));
        }
        for kind in [0u8, 2, 0xFF] {
            let mut d = PacketDecoder::default();
            d.push(&[0, 0, kind, 1, 2, 3, 4]);
            assert_eq!(d.next_item(), Err(StreamError::Control(kind)));
        }
        // A grant cut short waits for the rest.
        let mut d = PacketDecoder::default();
        d.push(&channel_grant(7)[..5]);
        assert_eq!(d.next_item(), Ok(None));
        d.push(&channel_grant(7)[5..]);
        assert_eq!(d.next_item(), Ok(Some(Item::Channel(7))));
    }
}
