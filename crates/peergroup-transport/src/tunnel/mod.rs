//! Tunnels: virtual UDP paths through a relay node, for members that cannot route to each
//! other.
//!
//! A tunnel is a chain of two extra bidirectional streams, one on each member connection of
//! the relay: the requester's REQUEST stream to the relay and the relay's OFFER stream to the
//! target, copied into each other by the relay. Each end of the chain is a *tunnel end*: a
//! virtual address in 240.0.0.0/4 in the node's socket wrapper, so that quinn sends to and
//! receives from it as from any UDP peer. The connection run through it is an ordinary mutual-TLS
//! Peergroup connection, so the relay only ever sees its ciphertext. Wire format and limits are in
//! `docs/protocol.md`, "Tunnels".
//!
//! Once a tunnel is up, the relay grants each end a *channel*: the ends then send their
//! datagrams as channel datagrams (see [`datagram`]) straight to the relay's UDP socket, on the
//! 5-tuple of their member connection to it, and the relay forwards each to the other end as
//! it comes, without the copying, flow control and second encryption of the stream path. The
//! streams stay open: they bound the tunnel's life and carry what was sent before the channel
//! came up, and a channel that does not come up leaves the tunnel on them.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "quic")]
mod addr;
pub mod datagram;
#[cfg(feature = "quic")]
mod end;
#[cfg(feature = "quic")]
mod hub;
#[cfg(feature = "quic")]
mod incoming;
#[cfg(feature = "quic")]
mod port;
#[cfg(feature = "quic")]
mod relay;
#[cfg(feature = "quic")]
mod stream;
#[cfg(feature = "quic")]
mod table;
pub mod wire;

#[cfg(feature = "quic")]
pub(crate) use hub::Hub;
#[cfg(feature = "quic")]
pub(crate) use incoming::serve_streams;
#[cfg(feature = "quic")]
pub use incoming::{IncomingTunnel, TunnelOffer, TunnelRequest};
#[cfg(feature = "quic")]
pub(crate) use port::Port;
#[cfg(feature = "quic")]
pub use relay::RelayedTunnel;
#[cfg(feature = "quic")]
pub use table::TunnelInfo;
#[cfg(all(feature = "quic", not(test)))]
pub(crate) use table::{Sent, Table};
#[cfg(all(feature = "quic", test))]
pub(crate) use {
    port::Inbound,
    table::{Origin, Reserve, Sent, Table},
};

/// What a tunnel stream starts with: it tells tunnels from any other stream and names the
/// header layout.
pub const TUNNEL_MAGIC: [u8; 4] = *b"PGT1";

/// Tunnel streams each side of a connection may have open at once, besides the control stream.
/// QUIC enforces it: one more waits (at most the handshake timeout) for one to end.
///
/// Kept below 7 so that the server's stream limit (this plus the control stream) stays below
/// 8: quinn announces new stream credit only once more than an eighth of the limit was freed,
/// and below 8 that is every single stream, so a waiting stream goes as soon as one ends.
pub const MAX_TUNNELS_PER_CONNECTION: u32 = 6;

/// Datagrams waiting in one tunnel end's outgoing queue; more are dropped (UDP loss, which
/// QUIC recovers from), so a slow tunnel never makes the endpoint wait. Our endpoint's
/// datagrams are at most 1 452 bytes, so a full queue is about 750 KiB.
pub const TUNNEL_QUEUE_PACKETS: usize = 512;

/// Datagrams from all of a node's tunnels waiting for its endpoint to take them; more are
/// dropped. Peers choose their sizes, so this holds at most `1024 * MAX_TUNNEL_PACKET` bytes.
pub const TUNNEL_RECV_PACKETS: usize = 1024;

/// Incoming tunnel requests and offers waiting for [`Node::accept_tunnel`]; more are refused
/// with [`TunnelRefusal::Busy`] at once.
///
/// [`Node::accept_tunnel`]: crate::Node::accept_tunnel
pub const TUNNEL_BACKLOG: usize = 64;

/// Tunnel ends a node has open at once; more are refused with [`TunnelRefusal::Busy`].
pub const MAX_TUNNEL_ENDS: usize = 64;

/// Largest datagram a tunnel carries: the largest UDP payload over IPv4. Lengths on the wire
/// are 1..=this; anything else ends the tunnel.
pub const MAX_TUNNEL_PACKET: usize = 65_527;

/// Channel ids a node has in use at once: two per tunnel it relays, one per tunnel end of its
/// own with a channel. A tunnel beyond it gets no channel and stays on its streams.
pub const MAX_CHANNELS: usize = 1024;

/// Probes a tunnel end sends its relay, one per [`CHANNEL_PROBE_INTERVAL`], before it gives its
/// channel up and stays on the stream: the relay confirms once both ends have probed.
pub const CHANNEL_PROBES: u32 = 8;

/// Time between a tunnel end's channel probes.
pub const CHANNEL_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Why a tunnel was refused: the byte the side that received the header answers instead of 0.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelRefusal {
    /// 1: the relay (or target) does not allow this tunnel.
    NotAllowed = 1,
    /// 2: the relay has no connection to the node asked for.
    UnknownTarget = 2,
    /// 3: too many tunnels or waiting requests; try later.
    Busy = 3,
    /// 4: the relay asked the target, which refused or did not answer.
    TargetRefused = 4,
}

impl TunnelRefusal {
    /// Every refusal, in numeric order.
    pub const ALL: [TunnelRefusal; 4] = [
        TunnelRefusal::NotAllowed,
        TunnelRefusal::UnknownTarget,
        TunnelRefusal::Busy,
        TunnelRefusal::TargetRefused,
    ];

    /// The answer byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The refusal with that answer byte, if this version knows it (0 is acceptance, not a
    /// refusal).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The refusal's name as the protocol document spells it.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelRefusal::NotAllowed => "NOT_ALLOWED",
            TunnelRefusal::UnknownTarget => "UNKNOWN_TARGET",
            TunnelRefusal::Busy => "BUSY",
            TunnelRefusal::TargetRefused => "TARGET_REFUSED",
        }
    }
}

impl fmt::Display for TunnelRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_are_fixed_and_round_trip() {
        let codes: Vec<u8> = TunnelRefusal::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4]);
        for r in TunnelRefusal::ALL {
            assert_eq!(TunnelRefusal::from_code(r.code()), Some(r));
        }
        assert_eq!(TunnelRefusal::from_code(0), None);
        assert_eq!(TunnelRefusal::from_code(5), None);
        assert_eq!(TunnelRefusal::Busy.to_string(), "BUSY (3)");
    }

    #[test]
    fn each_freed_tunnel_stream_is_credited_at_once() {
        // quinn sends MAX_STREAMS once `freed > limit / 8`; the server's limit counts the
        // control stream too.
        let server_limit = MAX_TUNNELS_PER_CONNECTION + 1;
        assert_eq!(server_limit / 8, 0);
        assert_eq!(MAX_TUNNELS_PER_CONNECTION / 8, 0);
    }

    #[test]
    fn the_largest_packet_fits_the_length_field() {
        assert!(MAX_TUNNEL_PACKET <= usize::from(u16::MAX));
    }
}
