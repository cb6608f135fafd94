//! A tunnel stream from a peer: its 13-byte header, then length-prefixed datagrams and channel
//! grants, in chunks of any size. The decoders must never panic; a header they accept must
//! encode back to the same bytes; the items must not depend on how the stream was split, and
//! must re-encode to a prefix of the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_transport::tunnel::wire::{
    channel_grant, length_prefix, Header, Item, PacketDecoder, StreamError, HEADER_LEN,
};

/// Every item the decoder yields from `chunks`, and whether it stopped at an error.
fn decode(chunks: &[&[u8]]) -> (Vec<Item>, Option<StreamError>) {
    let mut d = PacketDecoder::default();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        loop {
            match d.next_item() {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

// The first two bytes seed the chunk splitting; the rest is the stream.
fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mut seed = u16::from_le_bytes([data[0], data[1]]) as u32 | 1;
    let mut stream = &data[2..];
    if let Some(head) = stream.get(..HEADER_LEN) {
        let head: &[u8; HEADER_LEN] = head.try_into().unwrap();
        if let Ok(h) = Header::decode(head) {
            assert_eq!(&h.encode(), head);
        }
        // The datagrams follow the header.
        stream = &stream[HEADER_LEN..];
    }
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed % 65) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    let whole = decode(&[stream]);
    assert_eq!(decode(&chunks), whole, "the split changed the datagrams");
    let mut again = Vec::new();
    for item in &whole.0 {
        match item {
            Item::Packet(p) => {
                again.extend_from_slice(&length_prefix(p.len()).expect("a decoded length is valid"));
                again.extend_from_slice(p);
            }
            Item::Channel(id) => again.extend_from_slice(&channel_grant(*id)),
        }
    }
    assert!(stream.starts_with(&again));
});
