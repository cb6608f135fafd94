//! Channel datagrams: a relayed tunnel's packets sent as plain UDP datagrams to the relay's
//! socket instead of as stream data, so that the relay forwards each one as it comes, with
//! no decryption, re-encryption, congestion control or retransmission of its own.
//!
//! A channel datagram is [`CHANNEL_DATAGRAM`], a `u32` big-endian channel id, then one
//! datagram of the inner connection (QUIC ciphertext). It travels on the same 5-tuple as the
//! member connection to the relay, so it passes the same NAT mappings. Public, and built
//! without the `quic` feature, for the fuzz target `channel_datagram`.

use std::net::SocketAddr;
use std::ops::Range;

/// First byte of a channel datagram. QUIC v1 packets always have the fixed bit (0x40) set,
/// since our endpoints never let peers clear it (no `grease_quic_bit`), so a datagram whose
/// first byte is below 0x40 is never QUIC: it is ours to handle, and quinn never sees it.
pub const CHANNEL_DATAGRAM: u8 = 0x01;

/// First byte of a punch datagram: sent to a member's addresses just before dialling it in
/// a coordinated punch, so this side's NAT has a mapping toward the member by the time the
/// member's handshake packets arrive. It carries nothing, and the receiver's wrapper drops it
/// (never QUIC: no stateless reset answers it).
pub const PUNCH_DATAGRAM: u8 = 0x02;

/// A punch datagram: the type byte and zeros, long enough that no middlebox takes it for
/// an empty one.
pub const PUNCH: [u8; 8] = [PUNCH_DATAGRAM, 0, 0, 0, 0, 0, 0, 0];

/// Bytes before the inner datagram: the type byte and the channel id.
pub const CHANNEL_HEADER_LEN: usize = 1 + 4;

/// Whether a datagram with this first byte is a QUIC packet (for the endpoint) rather than
/// one of ours.
pub fn is_quic(first: u8) -> bool {
    first & 0x40 != 0
}

/// Whether every datagram of a received slot (`stride` bytes each, GRO) is a QUIC packet: the
/// common case, which needs nothing more.
pub fn all_quic(slot: &[u8], stride: usize) -> bool {
    let stride = if stride == 0 {
        slot.len().max(1)
    } else {
        stride
    };
    slot.iter().step_by(stride).all(|&first| is_quic(first))
}

/// The header of a channel datagram for channel `id`.
pub fn header(id: u32) -> [u8; CHANNEL_HEADER_LEN] {
    let mut out = [0u8; CHANNEL_HEADER_LEN];
    out[0] = CHANNEL_DATAGRAM;
    out[1..].copy_from_slice(&id.to_be_bytes());
    out
}

/// The channel id and inner datagram of a channel datagram; `None` for anything else. An
/// empty inner datagram is a probe (end to relay) or a confirmation (relay to end).
pub fn parse(datagram: &[u8]) -> Option<(u32, &[u8])> {
    if datagram.len() < CHANNEL_HEADER_LEN || datagram[0] != CHANNEL_DATAGRAM {
        return None;
    }
    let id = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]);
    Some((id, &datagram[CHANNEL_HEADER_LEN..]))
}

/// What to do with one received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A QUIC packet: leave it for the endpoint, from the socket's source address.
    Keep,
    /// Consumed or refused: the endpoint never sees it.
    Drop,
    /// Relay it: its id becomes `id` and it goes to `to`.
    Forward {
        /// The channel id on the other leg.
        id: u32,
        /// The other leg's address.
        to: SocketAddr,
    },
    /// Hand its inner datagram to the endpoint as if it came from `from` (a tunnel end's
    /// virtual address).
    Deliver {
        /// The virtual source address.
        from: SocketAddr,
    },
}

/// The node's side of [`demux_slot`]: which channel is which, and the sending.
pub trait Router {
    /// Routes a channel datagram of channel `id` whose inner datagram is `inner` (empty for a
    /// probe or confirmation). Only called for channel datagrams.
    fn route(&mut self, id: u32, inner: &[u8]) -> Route;
    /// Sends datagrams to `to`: `contents` is one datagram, or several of `segment_size`
    /// bytes each (the last may be shorter), as for GSO.
    fn forward(&mut self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>);
    /// Takes an inner datagram that cannot stay in the buffer (its slot holds QUIC packets
    /// from the socket's source too).
    fn copy_out(&mut self, from: SocketAddr, inner: &[u8]);
}

/// What is left of a slot for the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Bytes at the start of the buffer; 0 when nothing is left.
    pub len: usize,
    /// Size of each datagram in them (the last may be shorter), as GRO reports it.
    pub stride: usize,
    /// A new source address for all of them, or `None` to keep the socket's.
    pub from: Option<SocketAddr>,
}

/// Handles the channel datagrams in one received slot: `len` bytes of `buf`, datagrams of
/// `stride` bytes each (GRO; the last may be shorter). QUIC packets are left for the endpoint,
/// channel datagrams routed by `router`: forwarded ones are rewritten in place and sent in
/// runs to the same address (one GSO send each), delivered ones moved to the front of the
/// buffer as the slot's new contents when nothing else stays, else copied out. The returned
/// slot keeps GRO's shape: all datagrams `stride` long but the last.
pub fn demux_slot<R: Router>(buf: &mut [u8], len: usize, stride: usize, router: &mut R) -> Slot {
    let len = len.min(buf.len());
    let stride = if stride == 0 || stride > len {
        len
    } else {
        stride
    };
    let untouched = Slot {
        len,
        stride,
        from: None,
    };
    if len == 0 {
        return untouched;
    }
    if all_quic(&buf[..len], stride) {
        return untouched;
    }
    let segment = |i: usize| -> Range<usize> { i * stride..((i + 1) * stride).min(len) };
    let count = len.div_ceil(stride);
    // Route each datagram; forwarded ones get the other leg's id in place.
    let mut routes = Vec::with_capacity(count);
    for i in 0..count {
        let seg = &mut buf[segment(i)];
        let route = if is_quic(seg[0]) {
            Route::Keep
        } else {
            match parse(seg) {
                Some((id, inner)) if inner.is_empty() => {
                    // Probes and confirmations are the router's alone.
                    let _ = router.route(id, inner);
                    Route::Drop
                }
                Some((id, inner)) => match router.route(id, inner) {
                    // Not QUIC: the endpoint would only drop it.
                    Route::Keep => Route::Drop,
                    route => route,
                },
                // Not a datagram this version knows.
                None => Route::Drop,
            }
        };
        if let Route::Forward { id, .. } = route {
            seg[1..CHANNEL_HEADER_LEN].copy_from_slice(&id.to_be_bytes());
        }
        routes.push(route);
    }
    // Forward runs of datagrams for the same address, each as one send.
    let mut i = 0;
    while i < count {
        let Route::Forward { to, .. } = routes[i] else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < count && matches!(routes[j], Route::Forward { to: t, .. } if t == to) {
            j += 1;
        }
        let bytes = segment(i).start..segment(j - 1).end;
        router.forward(to, &buf[bytes], (j - i > 1).then_some(stride));
        i = j;
    }
    let keeps = routes.contains(&Route::Keep);
    let mut sources = routes.iter().filter_map(|r| match r {
        Route::Deliver { from } => Some(*from),
        _ => None,
    });
    let first = sources.next();
    let one_source = sources.all(|f| Some(f) == first);
    if !keeps && one_source {
        let Some(from) = first else {
            return Slot {
                len: 0,
                stride,
                from: None,
            };
        };
        // Only delivered datagrams stay: their inner datagrams become the slot. Every one is
        // a full stride but the slot's last, so the shape holds.
        let mut out = 0;
        for (i, route) in routes.iter().enumerate() {
            if matches!(route, Route::Deliver { .. }) {
                let seg = segment(i);
                let inner = seg.start + CHANNEL_HEADER_LEN..seg.end;
                let n = inner.len();
                buf.copy_within(inner, out);
                out += n;
            }
        }
        return Slot {
            len: out,
            stride: stride - CHANNEL_HEADER_LEN,
            from: Some(from),
        };
    }
    // QUIC packets stay, moved together; delivered datagrams go out by copy.
    let mut out = 0;
    for (i, route) in routes.iter().enumerate() {
        let seg = segment(i);
        match route {
            Route::Keep => {
                let n = seg.len();
                buf.copy_within(seg, out);
                out += n;
            }
            Route::Deliver { from } => {
                router.copy_out(*from, &buf[seg.start + CHANNEL_HEADER_LEN..seg.end]);
            }
            Route::Drop | Route::Forward { .. } => {}
        }
    }
    Slot {
        len: out,
        stride,
        from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes by id: 1 → drop, 2 → forward to A as 20, 3 → forward to B as 30, 4 → deliver
    /// from V, 5 → deliver from W.
    #[derive(Default)]
    struct Test {
        routed: Vec<(u32, usize)>,
        forwarded: Vec<(SocketAddr, Vec<u8>, Option<usize>)>,
        copied: Vec<(SocketAddr, Vec<u8>)>,
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    impl Router for Test {
        fn route(&mut self, id: u32, inner: &[u8]) -> Route {
            self.routed.push((id, inner.len()));
            match id {
                2 => Route::Forward {
                    id: 20,
                    to: addr("10.0.0.1:1"),
                },
                3 => Route::Forward {
                    id: 30,
                    to: addr("10.0.0.2:2"),
                },
                4 => Route::Deliver {
                    from: addr("240.0.0.1:1"),
                },
                5 => Route::Deliver {
                    from: addr("240.0.0.2:2"),
                },
                _ => Route::Drop,
            }
        }
        fn forward(&mut self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>) {
            self.forwarded.push((to, contents.to_vec(), segment_size));
        }
        fn copy_out(&mut self, from: SocketAddr, inner: &[u8]) {
            self.copied.push((from, inner.to_vec()));
        }
    }

    fn channel(id: u32, inner: &[u8]) -> Vec<u8> {
        let mut d = header(id).to_vec();
        d.extend_from_slice(inner);
        d
    }

    fn quic(fill: u8, n: usize) -> Vec<u8> {
        let mut d = vec![fill; n];
        d[0] = 0x40 | fill;
        d
    }

    /// A GRO slot of `datagrams`, each padded to `stride` but the last.
    fn slot(datagrams: &[Vec<u8>]) -> (Vec<u8>, usize) {
        let stride = datagrams[0].len();
        let mut buf: Vec<u8> = datagrams.concat();
        let len = buf.len();
        buf.resize(len + 100, 0xEE);
        (buf, stride)
    }

    #[test]
    fn headers_parse_and_quic_is_told_apart() {
        assert_eq!(header(0x0102_0304), [1, 1, 2, 3, 4]);
        assert_eq!(parse(&channel(9, b"abc")), Some((9, &b"abc"[..])));
        assert_eq!(parse(&[1, 0, 0, 0]), None);
        assert_eq!(parse(&[2, 0, 0, 0, 0]), None);
        assert!(is_quic(0x40) && is_quic(0xC3) && !is_quic(CHANNEL_DATAGRAM) && !is_quic(0x3F));
    }

    #[test]
    fn a_slot_of_quic_packets_is_left_alone() {
        let (mut buf, stride) = slot(&[quic(1, 100), quic(2, 100), quic(3, 40)]);
        let before = buf.clone();
        let mut r = Test::default();
        let out = demux_slot(&mut buf, 240, stride, &mut r);
        assert_eq!(
            out,
            Slot {
                len: 240,
                stride: 100,
                from: None
            }
        );
        assert_eq!(buf, before);
        assert!(r.routed.is_empty());
    }

    #[test]
    fn forwarded_runs_go_in_one_send_each_with_their_new_ids() {
        let d = [
            channel(2, &[7; 95]),
            channel(2, &[8; 95]),
            channel(3, &[9; 95]),
            channel(2, &[6; 10]),
        ];
        let (mut buf, stride) = slot(&d);
        let mut r = Test::default();
        let out = demux_slot(&mut buf, 315, stride, &mut r);
        assert_eq!(out.len, 0);
        let mut run = channel(20, &[7; 95]);
        run.extend(channel(20, &[8; 95]));
        assert_eq!(
            r.forwarded,
            vec![
                (addr("10.0.0.1:1"), run, Some(100)),
                (addr("10.0.0.2:2"), channel(30, &[9; 95]), None),
                (addr("10.0.0.1:1"), channel(20, &[6; 10]), None),
            ]
        );
    }

    #[test]
    fn delivered_datagrams_become_the_slot_in_place() {
        let d = [
            channel(4, &[0x41; 95]),
            channel(1, &[0x42; 95]),
            channel(4, &[0x43; 95]),
            channel(4, &[0x44; 30]),
        ];
        let (mut buf, stride) = slot(&d);
        let mut r = Test::default();
        let out = demux_slot(&mut buf, 335, stride, &mut r);
        assert_eq!(
            out,
            Slot {
                len: 95 + 95 + 30,
                stride: 95,
                from: Some(addr("240.0.0.1:1"))
            }
        );
        let mut want = vec![0x41; 95];
        want.extend([0x43; 95]);
        want.extend([0x44; 30]);
        assert_eq!(&buf[..out.len], &want[..]);
        assert!(r.copied.is_empty());
    }

    #[test]
    fn mixed_slots_keep_quic_in_place_and_copy_the_rest_out() {
        let d = [
            quic(1, 100),
            channel(4, &[0x41; 95]),
            quic(2, 100),
            channel(5, &[0x45; 95]),
            quic(3, 20),
        ];
        let (mut buf, stride) = slot(&d);
        let mut r = Test::default();
        let out = demux_slot(&mut buf, 420, stride, &mut r);
        assert_eq!(
            out,
            Slot {
                len: 220,
                stride: 100,
                from: None
            }
        );
        assert_eq!(
            &buf[..220],
            &[quic(1, 100), quic(2, 100), quic(3, 20)].concat()[..]
        );
        assert_eq!(
            r.copied,
            vec![
                (addr("240.0.0.1:1"), vec![0x41; 95]),
                (addr("240.0.0.2:2"), vec![0x45; 95]),
            ]
        );
        // Two virtual sources and nothing else: copied out too.
        let (mut buf, stride) = slot(&[channel(4, &[1; 10]), channel(5, &[2; 10])]);
        let mut r = Test::default();
        assert_eq!(demux_slot(&mut buf, 30, stride, &mut r).len, 0);
        assert_eq!(r.copied.len(), 2);
    }

    #[test]
    fn probes_and_unknown_bytes_never_reach_the_endpoint() {
        // A probe for a delivering channel is routed (the router learns of it) but dropped.
        let (mut buf, stride) = slot(&[channel(4, &[]), vec![0x3F; 5], vec![0x00; 3]]);
        let mut r = Test::default();
        let out = demux_slot(&mut buf, 13, stride, &mut r);
        assert_eq!(out.len, 0);
        assert_eq!(r.routed, vec![(4, 0)]);
        assert!(r.copied.is_empty() && r.forwarded.is_empty());
    }
}
