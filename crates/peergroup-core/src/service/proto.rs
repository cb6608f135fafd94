//! The wire format between `peergroupd` and its clients: versioned, length-prefixed frames.
//!
//! Every frame is a 4-byte big-endian body length (at most [`MAX_FRAME_LEN`]) and a body. A
//! body starts with the protocol version byte ([`PROTOCOL_VERSION`]); a frame of another
//! version is refused as a whole. Integers are big-endian; a string or byte string is a u32
//! length and its bytes (strings UTF-8); an option is a byte 0/1 and the value. Decoding is
//! strict: unknown tags, bounds exceeded, truncation and trailing bytes are all errors, and
//! the decoder never panics (it is the `service_request` fuzz target).
//!
//! A client sends [`ClientFrame`]s: a request id (chosen by the client, echoed in the
//! response) and a [`Request`]. The service sends [`ServerFrame`]s: a [`Response`] to one
//! request, or an [`EventItem`] of a subscription, pushed whenever it happens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{CoreError, Result};
use crate::events::{ConnectionChange, Event, EventItem, EventKind};
use crate::identity::hresult::HRESULT;
use crate::machine::{ConnectionStatus, RecordChange};
use crate::members::MemberChange;
use crate::records::record::{Record, MAX_ATTRIBUTES_BYTES, MAX_PEER_NAME_BYTES, MAX_RECORD_BYTES};

/// The protocol version this build speaks; the first byte of every frame body.
pub const PROTOCOL_VERSION: u8 = 1;
/// The largest frame body: one record at its largest plus headroom.
pub const MAX_FRAME_LEN: usize = MAX_RECORD_BYTES + 4096;
/// At most this many addresses in one `Connect`.
pub const MAX_ADDRS: usize = 32;
/// At most this many kinds in one `Subscribe`.
pub const MAX_KINDS: usize = 16;
/// At most this many record ids in one `RecordIds` response.
pub const MAX_RECORD_IDS: usize = (MAX_FRAME_LEN - 64) / 16;
/// The length of an error message a response carries at most.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The size of a frame's length prefix.
pub const HEADER_LEN: usize = 4;

/// A request of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The first request of a connection: the client's protocol version.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u8,
    },
    /// `PeerGroupOpen` for `identity` (none: the default identity) → [`Response::Handle`].
    OpenGroup {
        /// The identity's peer name.
        identity: Option<String>,
        /// The group's peer name.
        group: String,
    },
    /// `PeerGroupConnect` (no addresses) or `PeerGroupConnectByAddress`.
    Connect {
        /// A handle of this connection.
        handle: u64,
        /// Addresses to dial; empty for a plain connect.
        addrs: Vec<SocketAddr>,
    },
    /// `PeerGroupGetStatus` → [`Response::Status`].
    Status {
        /// A handle of this connection.
        handle: u64,
    },
    /// Waits until the status has all of `bits` or `timeout_ms` passed → [`Response::Status`].
    WaitStatus {
        /// A handle of this connection.
        handle: u64,
        /// `PEER_GROUP_STATUS` bits to wait for.
        bits: u32,
        /// Upper bound of the wait.
        timeout_ms: u32,
    },
    /// `PeerGroupClose` of one handle.
    Close {
        /// A handle of this connection.
        handle: u64,
    },
    /// `PeerGroupAddRecord` → [`Response::RecordId`].
    AddRecord {
        /// A handle of this connection.
        handle: u64,
        /// The application's record type.
        record_type: [u8; 16],
        /// Attribute XML, or empty.
        attributes: String,
        /// Expiry, peer time in ms since the Unix epoch.
        expires_ms: i64,
        /// The payload.
        data: Vec<u8>,
    },
    /// `PeerGroupGetRecord` → [`Response::Record`].
    GetRecord {
        /// A handle of this connection.
        handle: u64,
        /// The record id.
        id: [u8; 16],
    },
    /// `PeerGroupEnumRecords` → [`Response::RecordIds`] (read each with `GetRecord`).
    EnumRecords {
        /// A handle of this connection.
        handle: u64,
        /// Only this type, or every type.
        record_type: Option<[u8; 16]>,
    },
    /// `PeerGroupRegisterEvent` → [`Response::Subscription`]; events follow as
    /// [`ServerFrame::Event`] until the group closes for this connection.
    Subscribe {
        /// A handle of this connection.
        handle: u64,
        /// The kinds wanted (at least one).
        kinds: Vec<EventKind>,
    },
}

/// A successful answer, or the HRESULT of a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// The answer to `Hello`: the service's version.
    Hello {
        /// The service's [`PROTOCOL_VERSION`].
        version: u8,
    },
    /// A new handle, valid on this connection only.
    Handle(u64),
    /// `PEER_GROUP_STATUS` bits.
    Status(u32),
    /// The id of a new record.
    RecordId([u8; 16]),
    /// One record (its canonical encoding on the wire).
    Record(Box<Record>),
    /// Record ids.
    RecordIds(Vec<[u8; 16]>),
    /// A subscription id; its events carry it.
    Subscription(u64),
    /// The request failed.
    Error {
        /// The HRESULT the in-process call would have returned.
        hresult: HRESULT,
        /// A human-readable reason (at most [`MAX_MESSAGE_BYTES`]).
        message: String,
    },
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFrame {
    /// Echoed in the response.
    pub id: u32,
    /// The request.
    pub request: Request,
}

/// What the service sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// The answer to the request with this id.
    Response {
        /// The request's id.
        id: u32,
        /// The answer.
        response: Response,
    },
    /// An event of a subscription.
    Event {
        /// The subscription id `Subscribe` returned.
        subscription: u64,
        /// The event, or how many were dropped because the client read too slowly.
        item: EventItem,
    },
}

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::ServiceMessage(why.into())
}

/// Splits the first frame off `buf`: `Ok(None)` while it is incomplete; an error when the
/// prefix announces more than [`MAX_FRAME_LEN`]. Returns the body and the bytes consumed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>> {
    let Some(prefix) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(bad(format!("frame of {len} bytes exceeds {MAX_FRAME_LEN}")));
    }
    Ok(buf
        .get(HEADER_LEN..HEADER_LEN + len)
        .map(|body| (body, HEADER_LEN + len)))
}

fn framed(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(vec![PROTOCOL_VERSION])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn guid(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    fn addr(&mut self, a: &SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.0.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.0.extend_from_slice(&ip.octets());
            }
        }
        self.0.extend_from_slice(&a.port().to_be_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Checks the version byte and returns a reader past it.
    fn body(body: &'a [u8]) -> Result<Self> {
        match body.first() {
            None => Err(bad("empty frame")),
            Some(&PROTOCOL_VERSION) => Ok(Reader(&body[1..])),
            Some(&v) => Err(CoreError::ServiceVersion(v)),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad("truncated frame"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(bad(format!("field of {len} bytes exceeds {max}")));
        }
        self.take(len)
    }
    fn string(&mut self, max: usize) -> Result<String> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
    }
    fn guid(&mut self) -> Result<[u8; 16]> {
        let mut g = [0u8; 16];
        g.copy_from_slice(self.take(16)?);
        Ok(g)
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("option byte {b}"))),
        }
    }
    fn count(&mut self, max: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(bad(format!("{n} items exceed {max}")));
        }
        Ok(n)
    }
    fn addr(&mut self) -> Result<SocketAddr> {
        let ip = match self.u8()? {
            4 => {
                let b = self.take(4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            f => return Err(bad(format!("address family {f}"))),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn end(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{} trailing bytes", self.0.len())))
        }
    }
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const STATUS: u8 = 4;
    pub const WAIT_STATUS: u8 = 5;
    pub const CLOSE: u8 = 6;
    pub const ADD_RECORD: u8 = 7;
    pub const GET_RECORD: u8 = 8;
    pub const ENUM_RECORDS: u8 = 9;
    pub const SUBSCRIBE: u8 = 10;

    pub const R_OK: u8 = 0;
    pub const R_HELLO: u8 = 1;
    pub const R_HANDLE: u8 = 2;
    pub const R_STATUS: u8 = 3;
    pub const R_RECORD_ID: u8 = 4;
    pub const R_RECORD: u8 = 5;
    pub const R_RECORD_IDS: u8 = 6;
    pub const R_SUBSCRIPTION: u8 = 7;
    pub const R_ERROR: u8 = 0xFF;

    pub const S_RESPONSE: u8 = 1;
    pub const S_EVENT: u8 = 2;

    pub const I_EVENT: u8 = 0;
    pub const I_LAGGED: u8 = 1;
}

impl ClientFrame {
    /// The frame's bytes, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.id);
        match &self.request {
            Request::Hello { version } => {
                w.u8(tag::HELLO);
                w.u8(*version);
            }
            Request::OpenGroup { identity, group } => {
                w.u8(tag::OPEN);
                match identity {
                    None => w.u8(0),
                    Some(i) => {
                        w.u8(1);
                        w.bytes(i.as_bytes());
                    }
                }
                w.bytes(group.as_bytes());
            }
            Request::Connect { handle, addrs } => {
                w.u8(tag::CONNECT);
                w.u64(*handle);
                w.u32(addrs.len() as u32);
                addrs.iter().for_each(|a| w.addr(a));
            }
            Request::Status { handle } => {
                w.u8(tag::STATUS);
                w.u64(*handle);
            }
            Request::WaitStatus {
                handle,
                bits,
                timeout_ms,
            } => {
                w.u8(tag::WAIT_STATUS);
                w.u64(*handle);
                w.u32(*bits);
                w.u32(*timeout_ms);
            }
            Request::Close { handle } => {
                w.u8(tag::CLOSE);
                w.u64(*handle);
            }
            Request::AddRecord {
                handle,
                record_type,
                attributes,
                expires_ms,
                data,
            } => {
                w.u8(tag::ADD_RECORD);
                w.u64(*handle);
                w.guid(record_type);
                w.bytes(attributes.as_bytes());
                w.i64(*expires_ms);
                w.bytes(data);
            }
            Request::GetRecord { handle, id } => {
                w.u8(tag::GET_RECORD);
                w.u64(*handle);
                w.guid(id);
            }
            Request::EnumRecords {
                handle,
                record_type,
            } => {
                w.u8(tag::ENUM_RECORDS);
                w.u64(*handle);
                match record_type {
                    None => w.u8(0),
                    Some(t) => {
                        w.u8(1);
                        w.guid(t);
                    }
                }
            }
            Request::Subscribe { handle, kinds } => {
                w.u8(tag::SUBSCRIBE);
                w.u64(*handle);
                w.u32(kinds.len() as u32);
                kinds.iter().for_each(|k| w.u32(k.code() as u32));
            }
        }
        framed(w.0)
    }

    /// Decodes one frame body (without its length prefix), strictly. A body of another
    /// version is [`CoreError::ServiceVersion`]; anything else wrong is
    /// [`CoreError::ServiceMessage`].
    pub fn decode(body: &[u8]) -> Result<ClientFrame> {
        if body.len() > MAX_FRAME_LEN {
            return Err(bad("frame too large"));
        }
        let mut r = Reader::body(body)?;
        let id = r.u32()?;
        let request = match r.u8()? {
            tag::HELLO => Request::Hello { version: r.u8()? },
            tag::OPEN => {
                let identity = if r.flag()? {
                    Some(r.string(MAX_PEER_NAME_BYTES)?)
                } else {
                    None
                };
                let group = r.string(MAX_PEER_NAME_BYTES)?;
                Request::OpenGroup { identity, group }
            }
            tag::CONNECT => {
                let handle = r.u64()?;
                let n = r.count(MAX_ADDRS)?;
                let addrs = (0..n).map(|_| r.addr()).collect::<Result<_>>()?;
                Request::Connect { handle, addrs }
            }
            tag::STATUS => Request::Status { handle: r.u64()? },
            tag::WAIT_STATUS => Request::WaitStatus {
                handle: r.u64()?,
                bits: r.u32()?,
                timeout_ms: r.u32()?,
            },
            tag::CLOSE => Request::Close { handle: r.u64()? },
            tag::ADD_RECORD => Request::AddRecord {
                handle: r.u64()?,
                record_type: r.guid()?,
                attributes: r.string(MAX_ATTRIBUTES_BYTES)?,
                expires_ms: r.i64()?,
                data: r.bytes(MAX_FRAME_LEN)?.to_vec(),
            },
            tag::GET_RECORD => Request::GetRecord {
                handle: r.u64()?,
                id: r.guid()?,
            },
            tag::ENUM_RECORDS => {
                let handle = r.u64()?;
                let record_type = if r.flag()? { Some(r.guid()?) } else { None };
                Request::EnumRecords {
                    handle,
                    record_type,
                }
            }
            tag::SUBSCRIBE => {
                let handle = r.u64()?;
                let n = r.count(MAX_KINDS)?;
                let mut kinds = Vec::with_capacity(n);
                for _ in 0..n {
                    let code = r.u32()?;
                    let kind = i32::try_from(code)
                        .ok()
                        .and_then(EventKind::from_code)
                        .ok_or_else(|| bad(format!("event kind {code}")))?;
                    kinds.push(kind);
                }
                Request::Subscribe { handle, kinds }
            }
            t => return Err(bad(format!("request tag {t}"))),
        };
        r.end()?;
        Ok(ClientFrame { id, request })
    }
}

fn connection_status_code(s: ConnectionStatus) -> u8 {
    match s {
        ConnectionStatus::Connected => 1,
        ConnectionStatus::Disconnected => 2,
        ConnectionStatus::Failed => 3,
    }
}

fn connection_status(code: u8) -> Result<ConnectionStatus> {
    match code {
        1 => Ok(ConnectionStatus::Connected),
        2 => Ok(ConnectionStatus::Disconnected),
        3 => Ok(ConnectionStatus::Failed),
        c => Err(bad(format!("connection status {c}"))),
    }
}

fn record_change_code(c: RecordChange) -> u8 {
    match c {
        RecordChange::Added => 1,
        RecordChange::Updated => 2,
        RecordChange::Deleted => 3,
        RecordChange::Expired => 4,
    }
}

fn record_change(code: u8) -> Result<RecordChange> {
    match code {
        1 => Ok(RecordChange::Added),
        2 => Ok(RecordChange::Updated),
        3 => Ok(RecordChange::Deleted),
        4 => Ok(RecordChange::Expired),
        c => Err(bad(format!("record change {c}"))),
    }
}

fn put_change(w: &mut Writer, c: &ConnectionChange) {
    w.u8(connection_status_code(c.status));
    w.u64(c.connection_id);
    w.u64(c.node_id);
    w.u64(c.next_connection_id);
    w.u32(c.failed_reason as u32);
}

fn get_change(r: &mut Reader<'_>) -> Result<ConnectionChange> {
    Ok(ConnectionChange {
        status: connection_status(r.u8()?)?,
        connection_id: r.u64()?,
        node_id: r.u64()?,
        next_connection_id: r.u64()?,
        failed_reason: r.u32()? as i32,
    })
}

fn put_event(w: &mut Writer, e: &Event) {
    w.u32(e.kind().code() as u32);
    match e {
        Event::StatusChanged(s) => w.u32(*s),
        Event::PropertyChanged => {}
        Event::RecordChanged {
            change,
            record_type,
            id,
        } => {
            w.u8(record_change_code(*change));
            w.guid(record_type);
            w.guid(id);
        }
        Event::NeighborConnection(c) | Event::DirectConnection(c) => put_change(w, c),
        Event::IncomingData {
            connection_id,
            data_type,
            data,
        } => {
            w.u64(*connection_id);
            w.guid(data_type);
            w.bytes(data);
        }
        Event::ConnectionFailed(hr) | Event::AuthenticationFailed(hr) => w.u32(*hr as u32),
        Event::MemberChanged { change, identity } => {
            w.u8(*change as u8);
            w.bytes(identity.as_bytes());
        }
    }
}

fn member_change(code: u8) -> Result<MemberChange> {
    Ok(match code {
        1 => MemberChange::Connected,
        2 => MemberChange::Disconnected,
        3 => MemberChange::Updated,
        4 => MemberChange::Joined,
        5 => MemberChange::Left,
        other => return Err(bad(format!("member change {other}"))),
    })
}

fn get_event(r: &mut Reader<'_>) -> Result<Event> {
    let code = r.u32()?;
    let kind = i32::try_from(code)
        .ok()
        .and_then(EventKind::from_code)
        .ok_or_else(|| bad(format!("event kind {code}")))?;
    Ok(match kind {
        EventKind::StatusChanged => Event::StatusChanged(r.u32()?),
        EventKind::PropertyChanged => Event::PropertyChanged,
        EventKind::RecordChanged => Event::RecordChanged {
            change: record_change(r.u8()?)?,
            record_type: r.guid()?,
            id: r.guid()?,
        },
        EventKind::NeighborConnection => Event::NeighborConnection(get_change(r)?),
        EventKind::DirectConnection => Event::DirectConnection(get_change(r)?),
        EventKind::IncomingData => Event::IncomingData {
            connection_id: r.u64()?,
            data_type: r.guid()?,
            data: bytes::Bytes::copy_from_slice(r.bytes(MAX_FRAME_LEN)?),
        },
        EventKind::ConnectionFailed => Event::ConnectionFailed(r.u32()? as i32),
        EventKind::AuthenticationFailed => Event::AuthenticationFailed(r.u32()? as i32),
        EventKind::MemberChanged => Event::MemberChanged {
            change: member_change(r.u8()?)?,
            identity: r.string(MAX_MESSAGE_BYTES)?,
        },
    })
}

impl ServerFrame {
    /// The frame's bytes, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ServerFrame::Response { id, response } => {
                w.u8(tag::S_RESPONSE);
                w.u32(*id);
                match response {
                    Response::Ok => w.u8(tag::R_OK),
                    Response::Hello { version } => {
                        w.u8(tag::R_HELLO);
                        w.u8(*version);
                    }
                    Response::Handle(h) => {
                        w.u8(tag::R_HANDLE);
                        w.u64(*h);
                    }
                    Response::Status(s) => {
                        w.u8(tag::R_STATUS);
                        w.u32(*s);
                    }
                    Response::RecordId(id) => {
                        w.u8(tag::R_RECORD_ID);
                        w.guid(id);
                    }
                    Response::Record(rec) => {
                        w.u8(tag::R_RECORD);
                        w.bytes(&rec.encode());
                    }
                    Response::RecordIds(ids) => {
                        w.u8(tag::R_RECORD_IDS);
                        w.u32(ids.len() as u32);
                        ids.iter().for_each(|id| w.guid(id));
                    }
                    Response::Subscription(s) => {
                        w.u8(tag::R_SUBSCRIPTION);
                        w.u64(*s);
                    }
                    Response::Error { hresult, message } => {
                        w.u8(tag::R_ERROR);
                        w.u32(*hresult as u32);
                        let mut end = message.len().min(MAX_MESSAGE_BYTES);
                        while !message.is_char_boundary(end) {
                            end -= 1;
                        }
                        w.bytes(&message.as_bytes()[..end]);
                    }
                }
            }
            ServerFrame::Event { subscription, item } => {
                w.u8(tag::S_EVENT);
                w.u64(*subscription);
                match item {
                    EventItem::Event(e) => {
                        w.u8(tag::I_EVENT);
                        put_event(&mut w, e);
                    }
                    EventItem::Lagged(n) => {
                        w.u8(tag::I_LAGGED);
                        w.u64(*n);
                    }
                }
            }
        }
        framed(w.0)
    }

    /// Decodes one frame body (without its length prefix), strictly.
    pub fn decode(body: &[u8]) -> Result<ServerFrame> {
        if body.len() > MAX_FRAME_LEN {
            return Err(bad("frame too large"));
        }
        let mut r = Reader::body(body)?;
        let frame = match r.u8()? {
            tag::S_RESPONSE => {
                let id = r.u32()?;
                let response = match r.u8()? {
                    tag::R_OK => Response::Ok,
                    tag::R_HELLO => Response::Hello { version: r.u8()? },
                    tag::R_HANDLE => Response::Handle(r.u64()?),
                    tag::R_STATUS => Response::Status(r.u32()?),
                    tag::R_RECORD_ID => Response::RecordId(r.guid()?),
                    tag::R_RECORD => {
                        let rec = Record::decode(r.bytes(MAX_RECORD_BYTES)?)
                            .map_err(|e| bad(format!("record: {e}")))?;
                        Response::Record(Box::new(rec))
                    }
                    tag::R_RECORD_IDS => {
                        let n = r.count(MAX_RECORD_IDS)?;
                        Response::RecordIds((0..n).map(|_| r.guid()).collect::<Result<_>>()?)
                    }
                    tag::R_SUBSCRIPTION => Response::Subscription(r.u64()?),
                    tag::R_ERROR => Response::Error {
                        hresult: r.u32()? as i32,
                        message: r.string(MAX_MESSAGE_BYTES)?,
                    },
                    t => return Err(bad(format!("response tag {t}"))),
                };
                ServerFrame::Response { id, response }
            }
            tag::S_EVENT => {
                let subscription = r.u64()?;
                let item = match r.u8()? {
                    tag::I_EVENT => EventItem::Event(get_event(&mut r)?),
                    tag::I_LAGGED => EventItem::Lagged(r.u64()?),
                    t => return Err(bad(format!("event item tag {t}"))),
                };
                ServerFrame::Event { subscription, item }
            }
            t => return Err(bad(format!("server frame tag {t}"))),
        };
        r.end()?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(frame: &[u8]) -> &[u8] {
        let (b, used) = split_frame(frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        b
    }

    #[test]
    fn hello_round_trips_and_starts_with_the_version() {
        let f = ClientFrame {
            id: 7,
            request: Request::Hello {
                version: PROTOCOL_VERSION,
            },
        };
        let bytes = f.encode();
        assert_eq!(bytes[HEADER_LEN], PROTOCOL_VERSION);
        assert_eq!(ClientFrame::decode(body(&bytes)).unwrap(), f);
    }

    #[test]
    fn another_version_is_refused() {
        let mut bytes = ClientFrame {
            id: 1,
            request: Request::Status { handle: 3 },
        }
        .encode();
        bytes[HEADER_LEN] = 2;
        assert!(matches!(
            ClientFrame::decode(&bytes[HEADER_LEN..]),
            Err(CoreError::ServiceVersion(2))
        ));
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let prefix = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(
            split_frame(&prefix),
            Err(CoreError::ServiceMessage(_))
        ));
        let exact = (MAX_FRAME_LEN as u32).to_be_bytes();
        assert_eq!(split_frame(&exact).unwrap(), None);
    }

    #[test]
    fn trailing_bytes_unknown_tags_and_truncation_are_refused() {
        let bytes = ClientFrame {
            id: 1,
            request: Request::Close { handle: 9 },
        }
        .encode();
        let mut longer = bytes[HEADER_LEN..].to_vec();
        longer.push(0);
        assert!(ClientFrame::decode(&longer).is_err());
        let short = &bytes[HEADER_LEN..bytes.len() - 1];
        assert!(ClientFrame::decode(short).is_err());
        let mut unknown = bytes[HEADER_LEN..].to_vec();
        unknown[5] = 0x77;
        assert!(ClientFrame::decode(&unknown).is_err());
        assert!(ClientFrame::decode(&[]).is_err());
    }

    #[test]
    fn error_messages_are_cut_at_a_char_boundary() {
        let f = ServerFrame::Response {
            id: 2,
            response: Response::Error {
                hresult: crate::identity::hresult::PEER_E_INVALID_GROUP,
                message: "é".repeat(MAX_MESSAGE_BYTES),
            },
        };
        let bytes = f.encode();
        match ServerFrame::decode(body(&bytes)).unwrap() {
            ServerFrame::Response {
                response: Response::Error { message, .. },
                ..
            } => assert_eq!(message.len(), MAX_MESSAGE_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn split_frame_waits_for_the_whole_frame() {
        let bytes = ClientFrame {
            id: 1,
            request: Request::Status { handle: 3 },
        }
        .encode();
        for cut in 0..bytes.len() {
            assert_eq!(split_frame(&bytes[..cut]).unwrap(), None);
        }
        assert!(split_frame(&bytes).unwrap().is_some());
    }

    fn guid() -> impl Strategy<Value = [u8; 16]> {
        proptest::array::uniform16(any::<u8>())
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    fn request() -> impl Strategy<Value = Request> {
        let kinds = proptest::collection::vec(proptest::sample::select(&EventKind::ALL[..]), 0..8);
        prop_oneof![
            any::<u8>().prop_map(|version| Request::Hello { version }),
            (proptest::option::of(".{0,40}"), ".{0,40}")
                .prop_map(|(identity, group)| Request::OpenGroup { identity, group }),
            (any::<u64>(), proptest::collection::vec(addr(), 0..4))
                .prop_map(|(handle, addrs)| Request::Connect { handle, addrs }),
            any::<u64>().prop_map(|handle| Request::Status { handle }),
            (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(handle, bits, timeout_ms)| {
                Request::WaitStatus {
                    handle,
                    bits,
                    timeout_ms,
                }
            }),
            any::<u64>().prop_map(|handle| Request::Close { handle }),
            (
                any::<u64>(),
                guid(),
                ".{0,40}",
                any::<i64>(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(handle, record_type, attributes, expires_ms, data)| {
                    Request::AddRecord {
                        handle,
                        record_type,
                        attributes,
                        expires_ms,
                        data,
                    }
                }),
            (any::<u64>(), guid()).prop_map(|(handle, id)| Request::GetRecord { handle, id }),
            (any::<u64>(), proptest::option::of(guid())).prop_map(|(handle, record_type)| {
                Request::EnumRecords {
                    handle,
                    record_type,
                }
            }),
            (any::<u64>(), kinds).prop_map(|(handle, kinds)| Request::Subscribe { handle, kinds }),
        ]
    }

    fn change() -> impl Strategy<Value = ConnectionChange> {
        (
            proptest::sample::select(vec![
                ConnectionStatus::Connected,
                ConnectionStatus::Disconnected,
                ConnectionStatus::Failed,
            ]),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<i32>(),
        )
            .prop_map(
                |(status, connection_id, node_id, next_connection_id, failed_reason)| {
                    ConnectionChange {
                        status,
                        connection_id,
                        node_id,
                        next_connection_id,
                        failed_reason,
                    }
                },
            )
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            any::<u32>().prop_map(Event::StatusChanged),
            Just(Event::PropertyChanged),
            (
                proptest::sample::select(vec![
                    RecordChange::Added,
                    RecordChange::Updated,
                    RecordChange::Deleted,
                    RecordChange::Expired
                ]),
                guid(),
                guid()
            )
                .prop_map(|(change, record_type, id)| Event::RecordChanged {
                    change,
                    record_type,
                    id
                }),
            change().prop_map(Event::NeighborConnection),
            change().prop_map(Event::DirectConnection),
            (
                any::<u64>(),
                guid(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(connection_id, data_type, data)| Event::IncomingData {
                    connection_id,
                    data_type,
                    data: data.into()
                }),
            any::<i32>().prop_map(Event::ConnectionFailed),
            any::<i32>().prop_map(Event::AuthenticationFailed),
        ]
    }

    fn server_frame() -> impl Strategy<Value = ServerFrame> {
        let response = prop_oneof![
            Just(Response::Ok),
            any::<u8>().prop_map(|version| Response::Hello { version }),
            any::<u64>().prop_map(Response::Handle),
            any::<u32>().prop_map(Response::Status),
            guid().prop_map(Response::RecordId),
            proptest::collection::vec(guid(), 0..8).prop_map(Response::RecordIds),
            any::<u64>().prop_map(Response::Subscription),
            (any::<i32>(), ".{0,60}")
                .prop_map(|(hresult, message)| Response::Error { hresult, message }),
        ];
        let item = prop_oneof![
            event().prop_map(EventItem::Event),
            any::<u64>().prop_map(EventItem::Lagged),
        ];
        prop_oneof![
            (any::<u32>(), response)
                .prop_map(|(id, response)| ServerFrame::Response { id, response }),
            (any::<u64>(), item)
                .prop_map(|(subscription, item)| ServerFrame::Event { subscription, item }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(id in any::<u32>(), request in request()) {
            let f = ClientFrame { id, request };
            let bytes = f.encode();
            prop_assert_eq!(ClientFrame::decode(body(&bytes)).unwrap(), f);
        }

        #[test]
        fn server_frames_round_trip(f in server_frame()) {
            let bytes = f.encode();
            prop_assert_eq!(ServerFrame::decode(body(&bytes)).unwrap(), f);
        }

        #[test]
        fn what_the_decoder_accepts_is_canonical(
            request in request(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = ClientFrame { id: 1, request }.encode();
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] = byte;
            if let Ok(f) = ClientFrame::decode(&bytes[HEADER_LEN..]) {
                prop_assert_eq!(f.encode(), bytes);
            }
        }

        #[test]
        fn request_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ClientFrame::decode(&bytes);
            let _ = ServerFrame::decode(&bytes);
        }
    }
}
