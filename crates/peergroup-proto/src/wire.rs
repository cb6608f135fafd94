//! Group messages carried in transport frames, and their strict, bounded codec.
//!
//! Every message is a frame kind plus a payload of big-endian integers, `u16`-length UTF-8
//! strings, `u32`-length byte strings and socket addresses (`4|a.b.c.d|port` or
//! `6|16 bytes|port`). The decoder refuses trailing bytes and every count over its bound, so
//! a peer cannot make us allocate more than a frame's size. `docs/protocol.md` lists the
//! layouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::reconcile::ItemKey;
use crate::records::record::MAX_RECORD_BYTES;

/// Most addresses one member may advertise.
pub const MAX_ADDRS: usize = 16;
/// Most relays one member names in its entry ([`PeerEntry::relays`]).
pub const MAX_RELAYS: usize = 4;
/// Most members one `Peers` message may list.
pub const MAX_PEER_ENTRIES: usize = 256;
/// Longest string field, in bytes.
pub const MAX_STRING: usize = 1024;
/// Longest byte-string field, in bytes (bounded again by the transport's frame limit).
pub const MAX_BYTES: usize = 256 * 1024;

/// Frame kind of [`Message::Hello`].
pub const KIND_HELLO: u8 = 1;
/// Frame kind of [`Message::Peers`].
pub const KIND_PEERS: u8 = 2;
/// Frame kind of [`Message::Properties`].
pub const KIND_PROPERTIES: u8 = 3;
/// Frame kind of [`Message::Record`].
pub const KIND_RECORD: u8 = 4;
/// Frame kind of [`Message::ReconcileQuery`].
pub const KIND_RECONCILE_QUERY: u8 = 5;
/// Frame kind of [`Message::ReconcileAnswer`].
pub const KIND_RECONCILE_ANSWER: u8 = 6;
/// Frame kind of [`Message::Offer`].
pub const KIND_OFFER: u8 = 7;
/// Frame kind of [`Message::Request`].
pub const KIND_REQUEST: u8 = 8;
/// Frame kind of [`Message::Records`].
pub const KIND_RECORDS: u8 = 9;
/// Frame kind of [`Message::Punch`].
pub const KIND_PUNCH: u8 = 10;
/// Frame kind of [`Message::Observed`].
pub const KIND_OBSERVED: u8 = 11;
/// Frame kind of [`Message::DialBack`].
pub const KIND_DIAL_BACK: u8 = 12;
/// Most IPs a [`DialBack::Ask`] excludes (those the asker sent to lately).
pub const MAX_DIAL_BACK_EXCLUDE: usize = 256;

/// Most items one [`Message::Offer`] lists (32 bytes each).
pub const MAX_OFFER_ITEMS: usize = 4096;
/// Most record ids one [`Message::Request`] asks for, and most records or missing ids one
/// [`Message::Records`] carries.
pub const MAX_REQUEST_IDS: usize = 512;
/// Largest reconciliation message (negentropy's frame limit, and some room).
pub const MAX_RECONCILE_BYTES: usize = crate::reconcile::MAX_MESSAGE as usize + 1024;
/// Largest [`Message::Records`] payload: one transport frame.
pub const MAX_RECORDS_BYTES: usize = crate::transport::frame::MAX_FRAME_LEN;

/// What a decoder refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The payload ended early.
    #[error("message truncated")]
    Truncated,
    /// Bytes were left after the message.
    #[error("trailing bytes after the message")]
    Trailing,
    /// A count or length over its bound.
    #[error("{0} over its limit")]
    TooLarge(&'static str),
    /// A string that is not UTF-8.
    #[error("string is not UTF-8")]
    NotUtf8,
    /// An address family other than 4 or 6.
    #[error("unknown address family {0}")]
    BadAddress(u8),
    /// A boolean byte other than 0 or 1.
    #[error("flag byte {0} is neither 0 nor 1")]
    BadFlag(u8),
    /// Fields that contradict each other (say, a data part of another type than its message).
    #[error("inconsistent message: {0}")]
    Inconsistent(&'static str),
    /// A frame kind this version does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
}

/// The first message on every connection, both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's node id (random per node instance).
    pub node_id: u64,
    /// True when the sender accepts connections for this group.
    pub listening: bool,
    /// Where the sender can be reached.
    pub addrs: Vec<SocketAddr>,
    /// Version of the group properties the sender holds.
    pub properties_version: u64,
    /// The sender's neighbours when it sent this (capped at 255): a member at its maximum
    /// still takes a newcomer with fewer than its target, and drops the neighbour that
    /// reported the most (see the machine's neighbour management).
    pub neighbours: u8,
    /// The address the sender sees this connection's other end at: to a dialler, its
    /// mapped address after any NAT; to the one dialled, the address it was reached at
    /// ([`crate::reachability`]).
    pub observed: Option<SocketAddr>,
    /// True when the sender relays for members of this group ([`crate::relay`]): a member
    /// behind a NAT may then name it in its [`PeerEntry::relays`].
    pub relay: bool,
    /// The version of the sender's own entry ([`PeerEntry::version`]) these addresses are.
    pub entry_version: u64,
    /// On a dial made for a [`DialBack::Dial`]: the asker's nonce, so that the asker knows
    /// this connection is the unsolicited one it asked for; 0 on every other connection.
    pub dial_back: u64,
}

/// A member and where it was last reachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    /// The member's peer name.
    pub member: String,
    /// Its node id.
    pub node_id: u64,
    /// Its addresses.
    pub addrs: Vec<SocketAddr>,
    /// Node ids of relay members it is connected to, through which it can be reached when
    /// none of its addresses answers.
    pub relays: Vec<u64>,
    /// No NAT in front of it (its observers see an interface address): its addresses should
    /// answer, so members dial it through its relays only once a dial there failed (a
    /// firewall between two members), not at the same time as behind a NAT.
    pub public: bool,
    /// Rises whenever the member changes its entry (its clock in ms when it did): members
    /// keep the highest version they heard, so an old copy still gossiped never undoes a
    /// newer one, and gossip of an entry dies out.
    pub version: u64,
}

/// Group properties signed by an administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedProperties {
    /// Rises by one with every change.
    pub version: u64,
    /// The properties as JSON (without the password).
    pub body: Vec<u8>,
    /// The signer's membership chain (`GmcChain::to_bytes`).
    pub signer_chain: Vec<u8>,
    /// The signer's signature over `version` and `body`.
    pub signature: Vec<u8>,
}

impl SignedProperties {
    /// The bytes the signature covers.
    pub fn signed_bytes(version: u64, body: &[u8]) -> Vec<u8> {
        let mut out = b"peergroup properties v1\0".to_vec();
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// A group message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// Members the sender knows, with their addresses.
    Peers(Vec<PeerEntry>),
    /// The group's properties.
    Properties(SignedProperties),
    /// One record version, flooded: its canonical encoding (`Record::encode`).
    Record(Vec<u8>),
    /// A reconciliation message from the initiator (negentropy).
    ReconcileQuery(Vec<u8>),
    /// The responder's answer to a [`Message::ReconcileQuery`].
    ReconcileAnswer(Vec<u8>),
    /// Record versions the sender holds and the receiver lacks (found by reconciliation or
    /// learned by the sender since): the receiver requests those it still wants. `done`
    /// ends a reconciliation.
    Offer {
        /// The versions offered.
        items: Vec<ItemKey>,
        /// True on the initiator's last message of a reconciliation.
        done: bool,
    },
    /// Asks for the current version of these records.
    Request(Vec<[u8; 16]>),
    /// The answer to a [`Message::Request`]: encoded records, and the ids the sender no
    /// longer holds. One request may be answered by several of these.
    Records {
        /// Canonical record encodings.
        records: Vec<Vec<u8>>,
        /// Ids requested that the sender does not hold (or holds only expired).
        missing: Vec<[u8; 16]>,
    },
    /// On a connection through a relay: "I am dialling you now at the addresses you
    /// advertise; dial me now at these" (the sender's advertised addresses, observed ones
    /// first). Both dials leave at once, so each side's NAT has let the other in by the
    /// time the other's packets arrive: a simultaneous open, or hole punch.
    Punch(Vec<SocketAddr>),
    /// "Your packets now reach me from this address": sent on a connection the receiver
    /// dialled when its source address changed under it (the receiver moved, or its NAT
    /// gave it a new mapping); QUIC migrated the connection without a new `Hello`, so this
    /// is the receiver's new mapped address as this observer sees it.
    Observed(SocketAddr),
    /// A test of whether members reach the sender unasked ([`crate::dialback`]).
    DialBack(DialBack),
}

/// The three steps of a dial-back: the asker asks a neighbour it dialled, which asks a
/// third member to dial the asker where that neighbour sees its packets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialBack {
    /// Asker → a neighbour it dialled: "have a member I never sent to dial me where you see
    /// me" (`exclude`: the IPs the asker sent to lately, which its NAT lets in anyway).
    Ask {
        /// The asker's secret for this test, echoed in the dialler's [`Hello::dial_back`].
        nonce: u64,
        /// IPs of members not to ask.
        exclude: Vec<IpAddr>,
    },
    /// That neighbour → a third member: "dial node `node_id` at `addr`" (where the
    /// neighbour sees the asker's packets come from: the asker cannot name another address).
    Dial {
        /// The asker's node id.
        node_id: u64,
        /// Where to dial it.
        addr: SocketAddr,
        /// The asker's nonce, for the dial's `Hello`.
        nonce: u64,
    },
    /// That neighbour → the asker: whether a third member was asked.
    Asked {
        /// The nonce of the [`DialBack::Ask`] answered.
        nonce: u64,
        /// True when a third member was asked to dial.
        sent: bool,
    },
}

impl Message {
    /// Its frame kind (what [`Message::encode`] gives, without encoding).
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => KIND_HELLO,
            Message::Peers(_) => KIND_PEERS,
            Message::Properties(_) => KIND_PROPERTIES,
            Message::Record(_) => KIND_RECORD,
            Message::ReconcileQuery(_) => KIND_RECONCILE_QUERY,
            Message::ReconcileAnswer(_) => KIND_RECONCILE_ANSWER,
            Message::Offer { .. } => KIND_OFFER,
            Message::Request(_) => KIND_REQUEST,
            Message::Records { .. } => KIND_RECORDS,
            Message::Punch(_) => KIND_PUNCH,
            Message::Observed(_) => KIND_OBSERVED,
            Message::DialBack(_) => KIND_DIAL_BACK,
        }
    }

    /// Encodes to a frame kind and payload.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut w = Writer::default();
        match self {
            Message::Hello(h) => {
                w.u64(h.node_id);
                w.u8(h.listening as u8);
                w.addrs(&h.addrs);
                w.u64(h.properties_version);
                w.u8(h.neighbours);
                w.addrs(h.observed.as_slice());
                w.u8(h.relay as u8);
                w.u64(h.entry_version);
                w.u64(h.dial_back);
                (KIND_HELLO, w.0)
            }
            Message::Peers(entries) => {
                w.u16(entries.len() as u16);
                for e in entries {
                    w.str(&e.member);
                    w.u64(e.node_id);
                    w.addrs(&e.addrs);
                    w.ids(&e.relays);
                    w.u8(e.public as u8);
                    w.u64(e.version);
                }
                (KIND_PEERS, w.0)
            }
            Message::Properties(p) => {
                w.u64(p.version);
                w.bytes(&p.body);
                w.bytes(&p.signer_chain);
                w.bytes(&p.signature);
                (KIND_PROPERTIES, w.0)
            }
            Message::Record(bytes) => (KIND_RECORD, bytes.clone()),
            Message::ReconcileQuery(b) => (KIND_RECONCILE_QUERY, b.clone()),
            Message::ReconcileAnswer(b) => (KIND_RECONCILE_ANSWER, b.clone()),
            Message::Offer { items, done } => {
                w.u8(*done as u8);
                w.u16(items.len() as u16);
                for i in items {
                    w.0.extend_from_slice(&i.id);
                    w.0.extend_from_slice(&i.version.to_be_bytes());
                    w.0.extend_from_slice(&i.digest);
                }
                (KIND_OFFER, w.0)
            }
            Message::Request(ids) => {
                w.u16(ids.len() as u16);
                for id in ids {
                    w.0.extend_from_slice(id);
                }
                (KIND_REQUEST, w.0)
            }
            Message::Records { records, missing } => {
                w.u16(records.len() as u16);
                for r in records {
                    w.bytes(r);
                }
                w.u16(missing.len() as u16);
                for id in missing {
                    w.0.extend_from_slice(id);
                }
                (KIND_RECORDS, w.0)
            }
            Message::Punch(addrs) => {
                w.addrs(addrs);
                (KIND_PUNCH, w.0)
            }
            Message::Observed(addr) => {
                w.addrs(std::slice::from_ref(addr));
                (KIND_OBSERVED, w.0)
            }
            Message::DialBack(d) => {
                match d {
                    DialBack::Ask { nonce, exclude } => {
                        let exclude = &exclude[..exclude.len().min(MAX_DIAL_BACK_EXCLUDE)];
                        w.u8(1);
                        w.u64(*nonce);
                        w.u16(exclude.len() as u16);
                        for ip in exclude {
                            w.ip(*ip);
                        }
                    }
                    DialBack::Dial {
                        node_id,
                        addr,
                        nonce,
                    } => {
                        w.u8(2);
                        w.u64(*node_id);
                        w.addrs(std::slice::from_ref(addr));
                        w.u64(*nonce);
                    }
                    DialBack::Asked { nonce, sent } => {
                        w.u8(3);
                        w.u64(*nonce);
                        w.u8(*sent as u8);
                    }
                }
                (KIND_DIAL_BACK, w.0)
            }
        }
    }

    /// Decodes a frame kind and payload.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader(payload);
        let msg = match kind {
            KIND_HELLO => Message::Hello(Hello {
                node_id: r.u64()?,
                listening: r.flag()?,
                addrs: r.addrs()?,
                properties_version: r.u64()?,
                neighbours: r.u8()?,
                observed: match r.addrs()?.as_slice() {
                    [] => None,
                    [one] => Some(*one),
                    _ => return Err(WireError::TooLarge("observed address")),
                },
                relay: r.flag()?,
                entry_version: r.u64()?,
                dial_back: r.u64()?,
            }),
            KIND_PEERS => {
                let n = r.u16()? as usize;
                if n > MAX_PEER_ENTRIES {
                    return Err(WireError::TooLarge("peer entries"));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(PeerEntry {
                        member: r.str()?,
                        node_id: r.u64()?,
                        addrs: r.addrs()?,
                        relays: r.ids()?,
                        public: r.flag()?,
                        version: r.u64()?,
                    });
                }
                Message::Peers(entries)
            }
            KIND_PROPERTIES => Message::Properties(SignedProperties {
                version: r.u64()?,
                body: r.bytes()?,
                signer_chain: r.bytes()?,
                signature: r.bytes()?,
            }),
            KIND_RECORD => {
                if payload.len() > MAX_RECORD_BYTES {
                    return Err(WireError::TooLarge("record"));
                }
                r.0 = &[];
                Message::Record(payload.to_vec())
            }
            KIND_RECONCILE_QUERY | KIND_RECONCILE_ANSWER => {
                if payload.is_empty() {
                    return Err(WireError::Truncated);
                }
                if payload.len() > MAX_RECONCILE_BYTES {
                    return Err(WireError::TooLarge("reconciliation message"));
                }
                r.0 = &[];
                if kind == KIND_RECONCILE_QUERY {
                    Message::ReconcileQuery(payload.to_vec())
                } else {
                    Message::ReconcileAnswer(payload.to_vec())
                }
            }
            KIND_OFFER => {
                let done = r.flag()?;
                let n = r.count(MAX_OFFER_ITEMS, "offered items")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(ItemKey {
                        id: r.array()?,
                        version: u32::from_be_bytes(r.array()?),
                        digest: r.array()?,
                    });
                }
                Message::Offer { items, done }
            }
            KIND_REQUEST => {
                let n = r.count(MAX_REQUEST_IDS, "requested ids")?;
                if n == 0 {
                    return Err(WireError::Truncated);
                }
                let ids = (0..n).map(|_| r.array()).collect::<Result<_, _>>()?;
                Message::Request(ids)
            }
            KIND_RECORDS => {
                if payload.len() > MAX_RECORDS_BYTES {
                    return Err(WireError::TooLarge("records message"));
                }
                let n = r.count(MAX_REQUEST_IDS, "records")?;
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    records.push(r.bytes_up_to(MAX_RECORD_BYTES)?);
                }
                let m = r.count(MAX_REQUEST_IDS, "missing ids")?;
                let missing = (0..m).map(|_| r.array()).collect::<Result<_, _>>()?;
                Message::Records { records, missing }
            }
            KIND_PUNCH => Message::Punch(r.addrs()?),
            KIND_OBSERVED => match r.addrs()?[..] {
                [one] => Message::Observed(one),
                _ => return Err(WireError::Inconsistent("observed: not one address")),
            },
            KIND_DIAL_BACK => Message::DialBack(match r.u8()? {
                1 => {
                    let nonce = r.u64()?;
                    let n = r.count(MAX_DIAL_BACK_EXCLUDE, "dial-back exclusions")?;
                    let exclude = (0..n).map(|_| r.ip()).collect::<Result<_, _>>()?;
                    DialBack::Ask { nonce, exclude }
                }
                2 => DialBack::Dial {
                    node_id: r.u64()?,
                    addr: match r.addrs()?[..] {
                        [one] => one,
                        _ => return Err(WireError::Inconsistent("dial-back: not one address")),
                    },
                    nonce: r.u64()?,
                },
                3 => DialBack::Asked {
                    nonce: r.u64()?,
                    sent: r.flag()?,
                },
                _ => return Err(WireError::Inconsistent("dial-back: unknown step")),
            }),
            other => return Err(WireError::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Trailing);
        }
        Ok(msg)
    }
}

/// Big-endian encoder of the wire's fields (shared with [`crate::upgrade`]).
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        let s = &s.as_bytes()[..s.len().min(MAX_STRING)];
        self.u16(s.len() as u16);
        self.0.extend_from_slice(s);
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    pub(crate) fn ids(&mut self, ids: &[u64]) {
        let ids = &ids[..ids.len().min(MAX_RELAYS)];
        self.u8(ids.len() as u8);
        for id in ids {
            self.u64(*id);
        }
    }
    pub(crate) fn addrs(&mut self, addrs: &[SocketAddr]) {
        let addrs = &addrs[..addrs.len().min(MAX_ADDRS)];
        self.u8(addrs.len() as u8);
        for a in addrs {
            self.ip(a.ip());
            self.u16(a.port());
        }
    }
    pub(crate) fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.0.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.0.extend_from_slice(&ip.octets());
            }
        }
    }
}

/// Decoder of the wire's fields: every read checks the length left.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(WireError::BadFlag(b)),
        }
    }
    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub(crate) fn str(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_STRING {
            return Err(WireError::TooLarge("string"));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| WireError::NotUtf8)
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        self.bytes_up_to(MAX_BYTES)
    }
    pub(crate) fn bytes_up_to(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if n > max {
            return Err(WireError::TooLarge("byte string"));
        }
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    pub(crate) fn count(&mut self, max: usize, what: &'static str) -> Result<usize, WireError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(WireError::TooLarge(what));
        }
        Ok(n)
    }
    pub(crate) fn ids(&mut self) -> Result<Vec<u64>, WireError> {
        let n = self.u8()? as usize;
        if n > MAX_RELAYS {
            return Err(WireError::TooLarge("relay list"));
        }
        (0..n).map(|_| self.u64()).collect()
    }
    pub(crate) fn addrs(&mut self) -> Result<Vec<SocketAddr>, WireError> {
        let n = self.u8()? as usize;
        if n > MAX_ADDRS {
            return Err(WireError::TooLarge("address list"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = self.ip()?;
            out.push(SocketAddr::new(ip, self.u16()?));
        }
        Ok(out)
    }
    pub(crate) fn ip(&mut self) -> Result<IpAddr, WireError> {
        Ok(match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.take(4)?).expect("4"),
            )),
            6 => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.take(16)?).expect("16"),
            )),
            f => return Err(WireError::BadAddress(f)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(Ipv4Addr::from(ip).into(), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(Ipv6Addr::from(ip).into(), p)),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u64>(),
                any::<bool>(),
                proptest::collection::vec(addr(), 0..MAX_ADDRS),
                any::<u64>(),
                any::<u8>(),
                proptest::option::of(addr()),
                any::<bool>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(
                    |(
                        node_id,
                        listening,
                        addrs,
                        properties_version,
                        neighbours,
                        observed,
                        relay,
                        entry_version,
                        dial_back,
                    )| {
                        Message::Hello(Hello {
                            node_id,
                            listening,
                            addrs,
                            properties_version,
                            neighbours,
                            observed,
                            relay,
                            entry_version,
                            dial_back,
                        })
                    }
                ),
            proptest::collection::vec(
                (
                    "[a-f0-9.]{0,60}",
                    any::<u64>(),
                    proptest::collection::vec(addr(), 0..4),
                    proptest::collection::vec(any::<u64>(), 0..=MAX_RELAYS),
                    any::<bool>(),
                    any::<u64>()
                )
                    .prop_map(
                        |(member, node_id, addrs, relays, public, version)| {
                            PeerEntry {
                                member,
                                node_id,
                                addrs,
                                relays,
                                public,
                                version,
                            }
                        }
                    ),
                0..8
            )
            .prop_map(Message::Peers),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Message::Record),
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(Message::ReconcileQuery),
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(Message::ReconcileAnswer),
            (
                proptest::collection::vec(
                    (any::<[u8; 16]>(), any::<u32>(), any::<[u8; 12]>()).prop_map(
                        |(id, version, digest)| ItemKey {
                            id,
                            version,
                            digest
                        }
                    ),
                    0..8
                ),
                any::<bool>()
            )
                .prop_map(|(items, done)| Message::Offer { items, done }),
            proptest::collection::vec(any::<[u8; 16]>(), 1..8).prop_map(Message::Request),
            (
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..4),
                proptest::collection::vec(any::<[u8; 16]>(), 0..4)
            )
                .prop_map(|(records, missing)| Message::Records { records, missing }),
            proptest::collection::vec(addr(), 0..4).prop_map(Message::Punch),
            addr().prop_map(Message::Observed),
            (
                any::<u64>(),
                proptest::collection::vec(addr().prop_map(|a| a.ip()), 0..=MAX_DIAL_BACK_EXCLUDE)
            )
                .prop_map(|(nonce, exclude)| Message::DialBack(DialBack::Ask { nonce, exclude })),
            (any::<u64>(), addr(), any::<u64>()).prop_map(|(node_id, addr, nonce)| {
                Message::DialBack(DialBack::Dial {
                    node_id,
                    addr,
                    nonce,
                })
            }),
            (any::<u64>(), any::<bool>())
                .prop_map(|(nonce, sent)| Message::DialBack(DialBack::Asked { nonce, sent })),
            (
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(version, body, signature)| Message::Properties(
                    SignedProperties {
                        version,
                        body,
                        signer_chain: vec![1, 2, 3],
                        signature
                    }
                )),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(m in message()) {
            let (kind, payload) = m.encode();
            prop_assert_eq!(kind, m.kind());
            prop_assert_eq!(Message::decode(kind, &payload).unwrap(), m);
        }

        #[test]
        fn decoding_garbage_never_panics(kind in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::decode(kind, &payload);
        }
    }

    #[test]
    fn refuses_trailing_short_and_oversized() {
        let (kind, mut payload) = Message::Hello(Hello {
            node_id: 1,
            listening: true,
            addrs: vec![],
            properties_version: 0,
            neighbours: 3,
            observed: None,
            relay: false,
            entry_version: 0,
            dial_back: 0,
        })
        .encode();
        assert_eq!(
            Message::decode(kind, &payload[..payload.len() - 1]),
            Err(WireError::Truncated)
        );
        payload.push(0);
        assert_eq!(Message::decode(kind, &payload), Err(WireError::Trailing));
        assert_eq!(
            Message::decode(KIND_PEERS, &[0xff, 0xff]),
            Err(WireError::TooLarge("peer entries"))
        );
        assert_eq!(Message::decode(99, &[]), Err(WireError::UnknownKind(99)));
        // Found by the group_message fuzz target: a non-canonical boolean.
        let mut hello = vec![0u8; 8];
        hello.extend_from_slice(&[6, 0]);
        hello.extend_from_slice(&[0; 8]);
        assert_eq!(
            Message::decode(KIND_HELLO, &hello),
            Err(WireError::BadFlag(6))
        );
    }
}
