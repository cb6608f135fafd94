//! Close codes and close reasons: how a connection ended, as both peers see it.
//!
//! The codes are QUIC application error codes and part of the wire protocol: a peer that
//! closes with [`CloseCode::MemberLeft`] makes the other side's `closed()` return exactly
//! that code. Their numbers never change; new codes only get new numbers (table in
//! `docs/protocol.md`, "Close codes").

use std::fmt;

/// Why a connection is closed, sent to the peer as the QUIC application error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CloseCode {
    /// 0: the node is shutting down, or dropped the connection without saying why. Also what
    /// QUIC stacks (quinn included) send when a connection is dropped without an explicit close.
    Shutdown,
    /// 1: the group was closed on this node (its last handle went away).
    GroupClosed,
    /// 2: the member left the group (deleted its membership).
    MemberLeft,
    /// 3: the peer is not (or no longer) allowed in the group this connection is for.
    NotAuthorized,
    /// 4: the peer broke the protocol (bad frame, unexpected stream, wrong preamble).
    ProtocolViolation,
    /// 5: the peer stopped reading and our bounded send queue stayed full.
    Stalled,
    /// 6: an internal error on the closing side.
    Internal,
}

impl CloseCode {
    /// Every code, in numeric order.
    pub const ALL: [CloseCode; 7] = [
        CloseCode::Shutdown,
        CloseCode::GroupClosed,
        CloseCode::MemberLeft,
        CloseCode::NotAuthorized,
        CloseCode::ProtocolViolation,
        CloseCode::Stalled,
        CloseCode::Internal,
    ];

    /// The code's number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            CloseCode::Shutdown => 0,
            CloseCode::GroupClosed => 1,
            CloseCode::MemberLeft => 2,
            CloseCode::NotAuthorized => 3,
            CloseCode::ProtocolViolation => 4,
            CloseCode::Stalled => 5,
            CloseCode::Internal => 6,
        }
    }

    /// The code with that number, if this version knows it.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| u64::from(c.code()) == code)
    }

    /// The code's name as the protocol document spells it.
    pub const fn name(self) -> &'static str {
        match self {
            CloseCode::Shutdown => "SHUTDOWN",
            CloseCode::GroupClosed => "GROUP_CLOSED",
            CloseCode::MemberLeft => "MEMBER_LEFT",
            CloseCode::NotAuthorized => "NOT_AUTHORIZED",
            CloseCode::ProtocolViolation => "PROTOCOL_VIOLATION",
            CloseCode::Stalled => "STALLED",
            CloseCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CloseReason {
    /// The peer closed it with one of our codes.
    Peer {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason text (informative only, may be empty).
        reason: String,
    },
    /// The peer closed it with an application code this version does not know.
    PeerUnknownCode {
        /// The raw code.
        code: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// We closed it (this connection alone, or the whole node).
    Local {
        /// The code we sent.
        code: CloseCode,
        /// The reason text we sent.
        reason: String,
    },
    /// Nothing was heard from the peer for the idle timeout.
    TimedOut,
    /// The peer answered with a stateless reset: it lost the connection's state (restarted).
    Reset,
    /// The QUIC or TLS layer closed it (a transport protocol error, a TLS alert, the local
    /// endpoint going away); `reason` says which.
    Transport {
        /// What the QUIC stack reported.
        reason: String,
    },
}

impl CloseReason {
    /// The application close code, when the connection was closed with one of ours.
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            CloseReason::Peer { code, .. } | CloseReason::Local { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Peer { code, reason } => write!(f, "closed by the peer: {code} {reason}"),
            CloseReason::PeerUnknownCode { code, reason } => {
                write!(f, "closed by the peer with unknown code {code}: {reason}")
            }
            CloseReason::Local { code, reason } => write!(f, "closed locally: {code} {reason}"),
            CloseReason::TimedOut => f.write_str("timed out"),
            CloseReason::Reset => f.write_str("reset by the peer"),
            CloseReason::Transport { reason } => write!(f, "transport closed: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_fixed_and_round_trip() {
        let numbers: Vec<u32> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4, 5, 6]);
        for c in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(c.code().into()), Some(c));
        }
        assert_eq!(CloseCode::from_code(7), None);
        assert_eq!(CloseCode::from_code(1 << 40), None);
        assert_eq!(CloseCode::MemberLeft.to_string(), "MEMBER_LEFT (2)");
    }
}
