//! A received slot of datagrams from the network (GRO: `stride` bytes each, the last shorter),
//! as the socket wrapper sees it before quinn: QUIC packets, channel datagrams and anything
//! else. `demux_slot` must never panic, and must do what handling each datagram on its own
//! would: the same datagrams forwarded (with their new ids) to the same addresses in the
//! same order, the same ones delivered, the QUIC packets left in order, all in GRO's shape.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use peergroup_transport::tunnel::datagram::{
    demux_slot, header, is_quic, parse, Route, Router, Slot, CHANNEL_HEADER_LEN,
};

/// Routes by the id's low bits, and records what it was asked to do.
#[derive(Default)]
struct Recorder {
    /// (address, one datagram) for every datagram forwarded, runs split back into datagrams.
    forwarded: Vec<(SocketAddr, Vec<u8>)>,
    /// (virtual source, inner datagram) copied out.
    copied: Vec<(SocketAddr, Vec<u8>)>,
}

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, (n % 3) as u8], 1000 + (n % 3) as u16))
}

fn virt(n: u32) -> SocketAddr {
    SocketAddr::from(([240, 0, 0, 1 + (n % 2) as u8], 1))
}

fn route_of(id: u32) -> Route {
    match id % 4 {
        0 => Route::Drop,
        1 => Route::Forward {
            id: id.rotate_left(7),
            to: addr(id >> 2),
        },
        2 => Route::Deliver { from: virt(id >> 2) },
        // A router that wrongly keeps a channel datagram.
        _ => Route::Keep,
    }
}

impl Router for Recorder {
    fn route(&mut self, id: u32, _inner: &[u8]) -> Route {
        route_of(id)
    }
    fn forward(&mut self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>) {
        let size = segment_size.unwrap_or(contents.len()).max(1);
        if segment_size.is_none() {
            assert!(!contents.is_empty());
        }
        for d in contents.chunks(size) {
            self.forwarded.push((to, d.to_vec()));
        }
    }
    fn copy_out(&mut self, from: SocketAddr, inner: &[u8]) {
        self.copied.push((from, inner.to_vec()));
    }
}

/// What one datagram on its own becomes.
enum Expect {
    Quic(Vec<u8>),
    Forward(SocketAddr, Vec<u8>),
    Deliver(SocketAddr, Vec<u8>),
    Nothing,
}

fn expect(d: &[u8]) -> Expect {
    if is_quic(d[0]) {
        return Expect::Quic(d.to_vec());
    }
    let Some((id, inner)) = parse(d) else {
        return Expect::Nothing;
    };
    if inner.is_empty() {
        return Expect::Nothing;
    }
    match route_of(id) {
        Route::Forward { id, to } => {
            let mut out = header(id).to_vec();
            out.extend_from_slice(inner);
            Expect::Forward(to, out)
        }
        Route::Deliver { from } => Expect::Deliver(from, inner.to_vec()),
        Route::Drop | Route::Keep => Expect::Nothing,
    }
}

/// The datagrams of a slot.
fn split(buf: &[u8], slot: Slot) -> Vec<Vec<u8>> {
    let stride = slot.stride.max(1);
    buf[..slot.len].chunks(stride).map(<[u8]>::to_vec).collect()
}

// The first byte picks the stride; the rest is the slot.
fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let stride = usize::from(pick) + 1;
    let mut buf = body.to_vec();
    let len = buf.len();
    buf.resize(len + 64, 0);
    let effective = if stride > len { len } else { stride };
    let datagrams: Vec<&[u8]> = if len == 0 {
        Vec::new()
    } else {
        body.chunks(effective).collect()
    };
    let mut rec = Recorder::default();
    let slot = demux_slot(&mut buf, len, stride, &mut rec);
    assert!(slot.len <= len);

    let expected: Vec<Expect> = datagrams.iter().map(|d| expect(d)).collect();
    let forwards: Vec<(SocketAddr, Vec<u8>)> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Forward(to, d) => Some((*to, d.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(rec.forwarded, forwards, "forwarded");
    let quic: Vec<Vec<u8>> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Quic(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let delivered: Vec<(SocketAddr, Vec<u8>)> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Deliver(from, d) => Some((*from, d.clone())),
            _ => None,
        })
        .collect();
    match slot.from {
        // Delivered in place: nothing else stayed, one source.
        Some(from) => {
            assert!(quic.is_empty() && rec.copied.is_empty());
            assert_eq!(slot.stride + CHANNEL_HEADER_LEN, effective);
            let got: Vec<(SocketAddr, Vec<u8>)> =
                split(&buf, slot).into_iter().map(|d| (from, d)).collect();
            assert_eq!(got, delivered, "delivered in place");
        }
        None => {
            assert_eq!(rec.copied, delivered, "copied out");
            if slot.len > 0 {
                assert_eq!(slot.stride, effective);
            }
            let got = if slot.len == 0 { Vec::new() } else { split(&buf, slot) };
            assert_eq!(got, quic, "QUIC packets kept");
        }
    }
});
