//! The wire format between `peergroupd` and its clients: versioned, length-prefixed frames.
//!
//! Every frame is a 4-byte big-endian body length (at most [`MAX_FRAME_LEN`]) and a body. A
//! body starts with the protocol version byte ([`PROTOCOL_VERSION`]); a frame of another
//! version is refused as a whole. The rest of the body is a [`ClientFrame`] or a
//! [`ServerFrame`] in postcard's encoding (serde, varint integers, no field names). Decoding
//! is strict: unknown variants, truncation and trailing bytes are errors, and the decoder
//! never panics (it is the `service_request` fuzz target).
//!
//! One client process is one *session*. Its first connection says [`Request::Hello`] and is
//! given the session's id and a secret token; its other connections say [`Request::Attach`]
//! with them. Handles and subscriptions belong to the session, so any of its connections may
//! use them, and a caller reads its own response on the connection it asked on. One
//! connection of the session says [`Request::Events`] and from then on only carries
//! [`ServerFrame::Event`]s. The session ends, closing its handles, when its last connection
//! closes (the process exited or died).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::calls::{GroupCall, GroupReply};
use crate::data::MAX_DATA_LEN;
use crate::error::{CoreError, ProtoError, Result};
use crate::events::{EventItem, Registration};
use crate::identity::gmc::Role;
use crate::identity::hresult::HRESULT;
use crate::members::Member;
use crate::properties::GroupProperties;
use crate::transport::CloseReason;
use crate::values::{ConnectionInfo, DatabaseProgress, Neighbour};

/// The protocol version this build speaks; the first byte of every frame body.
pub const PROTOCOL_VERSION: u8 = 3;
/// The largest frame body: one message of `PeerGroupSendData` at its largest plus headroom.
pub const MAX_FRAME_LEN: usize = MAX_DATA_LEN + 64 * 1024;
/// At most this many addresses in one `Connect`.
pub const MAX_ADDRS: usize = 32;
/// The length of an error message a response carries at most.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The size of a frame's length prefix.
pub const HEADER_LEN: usize = 4;
/// Records of one [`Response::Records`] part at most (the rest follow in further parts).
pub const RECORDS_PER_PART: usize = 256;

/// A session's handle to an open group.
pub type Handle = u64;

/// Transport bounds a session asks for its home's node (`transport::Limits` in milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLimits {
    /// `handshake_timeout`.
    pub handshake_timeout_ms: u64,
    /// `idle_timeout`.
    pub idle_timeout_ms: u64,
    /// `keep_alive`.
    pub keep_alive_ms: u64,
    /// `stream_window`.
    pub stream_window: u32,
    /// `send_queue_bytes`.
    pub send_queue_bytes: u64,
    /// `stall_timeout`.
    pub stall_timeout_ms: u64,
    /// `max_pending_handshakes`.
    pub max_pending_handshakes: u32,
    /// `accept_backlog`.
    pub accept_backlog: u32,
}

/// A request of a client. Handles are the session's; `PeerGroup…` names say which call each is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first request of a session's first connection → [`Response::Session`].
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u8,
        /// The data directory (`PEERGROUP_HOME`) whose identities and groups the session uses.
        home: String,
        /// Where that home's node listens, if the client asks (`PEERGROUP_LISTEN`).
        listen: Option<SocketAddr>,
        /// The transport bounds of that home's node (used when the node is made).
        limits: WireLimits,
    },
    /// The first request of a session's further connection → [`Response::Ok`].
    Attach {
        /// The client's [`PROTOCOL_VERSION`].
        version: u8,
        /// The session's id.
        session: u64,
        /// The session's secret token.
        token: [u8; 16],
    },
    /// This connection carries the session's events from now on → [`Response::Ok`].
    Events,
    /// The local address of the home's node (bound on first use) → [`Response::Addr`].
    LocalAddr,
    /// `PeerGroupCreate` → [`Response::Handle`].
    CreateGroup(GroupProperties),
    /// `PeerGroupOpen` → [`Response::Handle`].
    OpenGroup {
        /// The identity's peer name (none: the default identity).
        identity: Option<String>,
        /// The group's peer name.
        group: String,
    },
    /// `PeerGroupJoin` → [`Response::Handle`].
    Join {
        /// The identity's peer name.
        identity: Option<String>,
        /// The invitation XML.
        invitation: String,
    },
    /// `PeerGroupPasswordJoin` → [`Response::Handle`] (`flag`: the group was new here).
    PasswordJoin {
        /// The identity's peer name.
        identity: Option<String>,
        /// The invitation XML.
        invitation: String,
        /// The group password.
        password: String,
    },
    /// `PeerGroupDelete` → [`Response::Ok`].
    DeleteGroup {
        /// The identity's peer name.
        identity: Option<String>,
        /// The group's peer name.
        group: String,
    },
    /// `PeerGroupImportConfig` → [`Response::Names`] (identity, group).
    ImportConfig {
        /// The `<PEERGROUPCONFIG>` XML.
        xml: String,
        /// Its password.
        password: String,
        /// `fOverwrite`.
        overwrite: bool,
    },
    /// A call on a handle that answers once ([`GroupCall`]) → [`Response::Group`] with the
    /// [`GroupReply`] of the same name.
    Group {
        /// The handle.
        handle: Handle,
        /// The call.
        call: GroupCall,
    },
    /// `PeerGroupClose` of one handle → [`Response::Ended`].
    Close(Handle),
    /// Waits until the status has all of `bits` or `timeout_ms` passed → [`Response::U32`].
    WaitStatus {
        /// The handle.
        handle: Handle,
        /// `PEER_GROUP_STATUS` bits to wait for.
        bits: u32,
        /// Upper bound of the wait.
        timeout_ms: u64,
    },
    /// `PeerGroupRegisterEvent` → [`Response::Ok`]; events follow on the
    /// session's event connection as [`ServerFrame::Event`].
    Subscribe {
        /// The handle.
        handle: Handle,
        /// The subscription's id, chosen by the client (unique in the session).
        id: u64,
        /// The registrations (at least one).
        registrations: Vec<Registration>,
        /// The service-side queue length.
        capacity: u32,
    },
    /// `PeerGroupUnregisterEvent` → [`Response::Ok`].
    Unsubscribe(u64),
    /// `PeerGroupConnect` (no addresses) or `PeerGroupConnectByAddress` → [`Response::Ok`].
    Connect {
        /// The handle.
        handle: Handle,
        /// Addresses to dial; empty for a plain connect.
        addrs: Vec<SocketAddr>,
    },
    /// `PeerGroupGetRecord` → [`Response::Record`].
    GetRecord(Handle, [u8; 16]),
    /// `PeerGroupEnumRecords` → [`Response::Records`] parts.
    EnumRecords(Handle, Option<[u8; 16]>),
    /// `PeerGroupSearchRecords` → [`Response::Records`] parts.
    SearchRecords(Handle, String),
    /// `PeerGroupExportDatabase` → [`Response::Progress`]… then [`Response::U64`].
    ExportDatabase(Handle, String),
    /// `PeerGroupImportDatabase` → [`Response::Progress`]… then [`Response::U64`].
    ImportDatabase(Handle, String),
    /// Takes a password-authentication hold → [`Response::U64`] (its id).
    HoldPasswordAuthentication(Handle),
    /// Gives a hold up → [`Response::Ok`].
    ReleaseHold(u64),
    /// `PeerGroupResumePasswordAuthentication` → [`Response::Ok`].
    ResumePasswordAuthentication(Handle, u64),
    /// `PeerGroupSendData` → [`Response::Ok`].
    SendData {
        /// The handle.
        handle: Handle,
        /// The connection.
        connection: u64,
        /// The data's type GUID.
        data_type: [u8; 16],
        /// The message.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

/// A failure, as the service reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The HRESULT the in-process call would have returned.
    pub hresult: HRESULT,
    /// A human-readable reason (at most [`MAX_MESSAGE_BYTES`]).
    pub message: String,
    /// The error's variant where it can be restored, so the client returns the same
    /// [`CoreError`] the in-process call would.
    pub kind: Option<ErrorKind>,
}

/// The [`CoreError`] variants a [`WireError`] restores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ErrorKind {
    /// A [`ProtoError`] without a source, whole (postcard, at most [`MAX_MESSAGE_BYTES`]).
    Proto(#[serde(with = "serde_bytes")] Vec<u8>),
    // The runtime's variants; those with text carry it as the message.
    InvalidGroup,
    NotReady,
    GroupNotFound,
    AlreadyMember,
    PasswordRejected,
    NoMemberReachable,
    Protocol,
    RecordNotFound,
    Database,
    GroupInUse,
    ConnectionNotFound(u64),
    ConnectToSelf,
    DataTooLarge(u64),
    NoAddress,
    InvalidRegistration,
    NothingToResume,
    MemberNotFound,
    InvalidArgument,
    ServiceNotAvailable,
    // Added after the first release: appended, so older variants keep their numbers.
    PasswordThrottled(u64),
}

impl WireError {
    /// How `e` travels: its HRESULT, its text, and its variant where it can be restored.
    pub fn from_error(e: &CoreError) -> WireError {
        use CoreError as C;
        use ErrorKind as K;
        // The inner text of a variant that carries one, so the client rebuilds it exactly.
        let (kind, text): (Option<ErrorKind>, Option<&str>) = match e {
            // A proto error with a source (the identity layer's) does not serialise: it
            // travels as HRESULT and text.
            C::Proto(p) => (
                postcard::to_allocvec(p)
                    .ok()
                    .filter(|b| b.len() <= MAX_MESSAGE_BYTES)
                    .map(K::Proto),
                None,
            ),
            C::InvalidGroup => (Some(K::InvalidGroup), None),
            C::NotReady => (Some(K::NotReady), None),
            C::GroupNotFound(s) => (Some(K::GroupNotFound), Some(s)),
            C::AlreadyMember(s) => (Some(K::AlreadyMember), Some(s)),
            C::PasswordRejected => (Some(K::PasswordRejected), None),
            C::PasswordThrottled(s) => (Some(K::PasswordThrottled(*s)), None),
            C::NoMemberReachable(s) => (Some(K::NoMemberReachable), Some(s)),
            C::Protocol(s) => (Some(K::Protocol), Some(s)),
            C::RecordNotFound => (Some(K::RecordNotFound), None),
            C::Database(s) => (Some(K::Database), Some(s)),
            C::GroupInUse(s) => (Some(K::GroupInUse), Some(s)),
            C::ConnectionNotFound(id) => (Some(K::ConnectionNotFound(*id)), None),
            C::ConnectToSelf => (Some(K::ConnectToSelf), None),
            C::DataTooLarge(n) => (Some(K::DataTooLarge(*n as u64)), None),
            C::NoAddress(s) => (Some(K::NoAddress), Some(s)),
            C::InvalidRegistration(s) => (Some(K::InvalidRegistration), Some(s)),
            C::NothingToResume => (Some(K::NothingToResume), None),
            C::MemberNotFound(s) => (Some(K::MemberNotFound), Some(s)),
            C::InvalidArgument(s) => (Some(K::InvalidArgument), Some(s)),
            C::ServiceNotAvailable(s) => (Some(K::ServiceNotAvailable), Some(s)),
            _ => (None, None),
        };
        let full = e.to_string();
        WireError {
            hresult: e.hresult(),
            message: cut(text.map_or(full.as_str(), |t| t)).to_owned(),
            kind,
        }
    }

    /// The error the client returns: the restored variant, else [`CoreError::Service`].
    pub fn into_error(self) -> CoreError {
        use CoreError as C;
        use ErrorKind as K;
        let m = self.message;
        let fallback = |message| C::Service {
            hresult: self.hresult,
            message,
        };
        let Some(kind) = self.kind else {
            return fallback(m);
        };
        match kind {
            K::Proto(bytes) => match postcard::from_bytes::<ProtoError>(&bytes) {
                Ok(p) => C::Proto(p),
                // A proto error of a newer service: its HRESULT and text still hold.
                Err(_) => fallback(m),
            },
            K::InvalidGroup => C::InvalidGroup,
            K::NotReady => C::NotReady,
            K::GroupNotFound => C::GroupNotFound(m),
            K::AlreadyMember => C::AlreadyMember(m),
            K::PasswordRejected => C::PasswordRejected,
            K::PasswordThrottled(s) => C::PasswordThrottled(s),
            K::NoMemberReachable => C::NoMemberReachable(m),
            K::Protocol => C::Protocol(m),
            K::RecordNotFound => C::RecordNotFound,
            K::Database => C::Database(m),
            K::GroupInUse => C::GroupInUse(m),
            K::ConnectionNotFound(id) => C::ConnectionNotFound(id),
            K::ConnectToSelf => C::ConnectToSelf,
            K::DataTooLarge(n) => C::DataTooLarge(n as usize),
            K::NoAddress => C::NoAddress(m),
            K::InvalidRegistration => C::InvalidRegistration(m),
            K::NothingToResume => C::NothingToResume,
            K::MemberNotFound => C::MemberNotFound(m),
            K::InvalidArgument => C::InvalidArgument(m),
            K::ServiceNotAvailable => C::ServiceNotAvailable(m),
        }
    }
}

/// A successful answer, or a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// The answer to `Hello`: the service's version and the new session.
    Session {
        /// The service's [`PROTOCOL_VERSION`].
        version: u8,
        /// The session's id.
        id: u64,
        /// The secret further connections present in `Attach`.
        token: [u8; 16],
    },
    /// A new handle of this session.
    Handle {
        /// The handle.
        handle: Handle,
        /// The identity holding the group.
        identity: String,
        /// The group's peer name.
        group: String,
        /// `PeerGroupPasswordJoin`: whether the group was new here.
        flag: bool,
    },
    /// A number.
    U32(u32),
    /// A number (counts, ids).
    U64(u64),
    /// A time, Unix ms.
    I64(i64),
    /// Yes or no.
    Bool(bool),
    /// A document (invitation, configuration XML).
    Text(String),
    /// Two peer names: identity and group.
    Names(String, String),
    /// An address, if there is one.
    Addr(Option<SocketAddr>),
    /// Addresses.
    Addrs(Vec<SocketAddr>),
    /// Roles.
    Roles(Vec<Role>),
    /// Group properties.
    Properties(GroupProperties),
    /// Why connections ended.
    Disconnects(Vec<CloseReason>),
    /// Neighbour connections.
    Neighbours(Vec<Neighbour>),
    /// Record ids.
    RecordIds(Vec<[u8; 16]>),
    /// One record, its canonical encoding.
    Record(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Records, canonical encodings; `more` while further parts follow on this connection.
    Records {
        /// Up to [`RECORDS_PER_PART`] records.
        records: Vec<serde_bytes::ByteBuf>,
        /// True when this is not the last part.
        more: bool,
    },
    /// How a database export or import goes; the final answer follows on this connection.
    Progress(DatabaseProgress),
    /// Members.
    Members(Vec<Member>),
    /// Connections.
    Connections(Vec<ConnectionInfo>),
    /// The answer to `Close`: the session's subscriptions the close ended (it held the group
    /// no more); their last events and `Ended` were sent on the event connection first.
    Ended(Vec<u64>),
    /// The answer to a [`Request::Group`] call.
    Group(GroupReply),
    /// The request failed.
    Error(WireError),
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Echoed in the response.
    pub id: u32,
    /// The request.
    pub request: Request,
}

/// What the service sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to the request with this id (or a part of it).
    Response {
        /// The request's id.
        id: u32,
        /// The answer.
        response: Response,
    },
    /// An event of a subscription (on the event connection).
    Event {
        /// The subscription id `Subscribe` returned.
        subscription: u64,
        /// The event, or how many were dropped because the client read too slowly.
        item: EventItem,
    },
    /// A subscription ended: its group closed or it was unsubscribed.
    Ended {
        /// The subscription id.
        subscription: u64,
    },
}

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::ServiceMessage(why.into())
}

/// Cuts a message at [`MAX_MESSAGE_BYTES`], on a char boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_MESSAGE_BYTES {
        return s;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits the first frame off `buf`: `Ok(None)` while it is incomplete; an error when the
/// prefix announces more than [`MAX_FRAME_LEN`]. Returns the body and the bytes consumed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>> {
    let Some(prefix) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = frame_len(prefix.try_into().expect("4 bytes"))?;
    Ok(buf
        .get(HEADER_LEN..HEADER_LEN + len)
        .map(|body| (body, HEADER_LEN + len)))
}

/// The body length a prefix announces, refused over [`MAX_FRAME_LEN`].
pub fn frame_len(prefix: [u8; HEADER_LEN]) -> Result<usize> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(bad(format!("frame of {len} bytes exceeds {MAX_FRAME_LEN}")));
    }
    Ok(len)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The prefix and version byte first, patched with the length once the body is known.
    let out = vec![0, 0, 0, 0, PROTOCOL_VERSION];
    let mut out = postcard::to_extend(value, out).expect("serialising to a Vec cannot fail");
    let len = (out.len() - HEADER_LEN) as u32;
    out[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    out
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    let (&version, rest) = body.split_first().ok_or_else(|| bad("empty frame"))?;
    if version != PROTOCOL_VERSION {
        return Err(CoreError::ServiceVersion(version));
    }
    if body.len() > MAX_FRAME_LEN {
        return Err(bad("frame too long"));
    }
    let (value, trailing) =
        postcard::take_from_bytes::<T>(rest).map_err(|e| bad(format!("malformed frame: {e}")))?;
    if !trailing.is_empty() {
        return Err(bad(format!("{} trailing bytes", trailing.len())));
    }
    Ok(value)
}

impl ClientFrame {
    /// The whole frame: length prefix, version byte, body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a frame body (without its prefix), checking the version and every bound.
    pub fn decode(body: &[u8]) -> Result<ClientFrame> {
        let frame: ClientFrame = decode(body)?;
        if let Request::Connect { addrs, .. } = &frame.request {
            if addrs.len() > MAX_ADDRS {
                return Err(bad(format!("more than {MAX_ADDRS} addresses")));
            }
        }
        Ok(frame)
    }
}

impl ServerFrame {
    /// The whole frame: length prefix, version byte, body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a frame body (without its prefix).
    pub fn decode(body: &[u8]) -> Result<ServerFrame> {
        decode(body)
    }
}

impl Response {
    /// The answer for a failed call.
    pub fn error(e: &CoreError) -> Response {
        Response::Error(WireError::from_error(e))
    }
}

/// The wire form of the transport's bounds.
#[cfg(feature = "net")]
impl From<&crate::transport::Limits> for WireLimits {
    fn from(l: &crate::transport::Limits) -> Self {
        WireLimits {
            handshake_timeout_ms: l.handshake_timeout.as_millis() as u64,
            idle_timeout_ms: l.idle_timeout.as_millis() as u64,
            keep_alive_ms: l.keep_alive.as_millis() as u64,
            stream_window: l.stream_window,
            send_queue_bytes: l.send_queue_bytes as u64,
            stall_timeout_ms: l.stall_timeout.as_millis() as u64,
            max_pending_handshakes: l.max_pending_handshakes as u32,
            accept_backlog: l.accept_backlog as u32,
        }
    }
}

#[cfg(feature = "net")]
impl From<&WireLimits> for crate::transport::Limits {
    fn from(w: &WireLimits) -> Self {
        use std::time::Duration;
        crate::transport::Limits {
            handshake_timeout: Duration::from_millis(w.handshake_timeout_ms),
            idle_timeout: Duration::from_millis(w.idle_timeout_ms),
            keep_alive: Duration::from_millis(w.keep_alive_ms),
            stream_window: w.stream_window,
            send_queue_bytes: w.send_queue_bytes as usize,
            stall_timeout: Duration::from_millis(w.stall_timeout_ms),
            max_pending_handshakes: w.max_pending_handshakes as usize,
            accept_backlog: w.accept_backlog as usize,
        }
    }
}

#[cfg(test)]
mod tests;
