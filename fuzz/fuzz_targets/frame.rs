//! Frames arrive from the network in chunks of any size: the decoder must never panic, must
//! give the same answer however the stream is split, and what it yields must be exactly the
//! frames the bytes spell (re-encoding them gives back a prefix of the input).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_transport::frame::{decode_all, Frame, FrameError, MAX_FRAME_LEN};

// The first two bytes seed the chunk splitting; the rest is the stream.
fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mut seed = u16::from_le_bytes([data[0], data[1]]) as u32 | 1;
    let stream = &data[2..];

    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes 0..=64, zero-length chunks included.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed % 65) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }

    let whole = decode_all([stream]);
    let split = decode_all(chunks.iter().copied());
    assert_eq!(split, whole, "chunking changed the result");

    let (frames, error) = whole;
    let prefix: Vec<u8> = frames.iter().flat_map(|f: &Frame| f.encode().to_vec()).collect();
    assert_eq!(&stream[..prefix.len()], &prefix[..], "frames are not what the bytes spell");
    let left = &stream[prefix.len()..];
    match error {
        None => assert!(left.is_empty()),
        Some(FrameError::BadVersion(v)) => assert_eq!(left.first(), Some(&v)),
        Some(FrameError::Oversize { len }) => assert!(len > MAX_FRAME_LEN),
        Some(FrameError::Truncated { buffered }) => assert_eq!(buffered, left.len()),
    }
});
