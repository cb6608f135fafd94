//! `pg-peer`: one Peergroup host, driven line by line over stdin/stdout.
//!
//! Multi-host tests run one of these per host (e.g. inside a network namespace) and talk to
//! it like a REPL, so the test's logic stays in the test. Every input line is one JSON
//! command; every command gets exactly one JSON line back on stdout, either the answer or
//! `{"ok":false,"error":"…","hresult":N}`.
//!
//! ```text
//! pg-peer --home DIR --listen IP:PORT
//!
//! {"cmd":"identity","classifier":"b"}    -> {"ok":true,"peer_name":"…","xml":"…"}
//! {"cmd":"create"}                       -> {"ok":true,"group":"…"}   (needs an identity)
//! {"cmd":"invite","xml":"…"}             -> {"ok":true,"invitation":"…"}
//!                                            ("inviting":true: the invitee may invite too)
//! {"cmd":"join","invitation":"…"}        -> {"ok":true,"group":"…"}
//! {"cmd":"open","identity":"…","group":"…"} -> {"ok":true,"group":"…"}
//!                                            (a group this home holds: after a restart)
//! {"cmd":"connect"}                      -> {"ok":true}
//! {"cmd":"relay","on":true}              -> {"ok":true}   (relay for other members)
//! {"cmd":"status"}                       -> {"ok":true,"status":3,"neighbours":[…],
//!                                            "disconnects":[…],"listen":[…],
//!                                            "advertised":[…],"nat":"…",
//!                                            "outside":"…"}
//! {"cmd":"wait","bits":3,"timeout_ms":N} -> like "status", once the status has all `bits`
//!                                            or the timeout passed
//! {"cmd":"add","text":"…"}              -> {"ok":true,"id":"<32 hex>"}
//! {"cmd":"records"}                      -> {"ok":true,"count":N,"digest":"<64 hex>",
//!                                            "ids":["<32 hex>",…]}
//! {"cmd":"send","text":"…"}              -> {"ok":true,"sent":N}   (to every neighbour)
//! {"cmd":"direct","member":"…","timeout_ms":N}
//!                                        -> {"ok":true,"connection_id":N,"address":"…",
//!                                            "relayed":bool}   once connected
//! {"cmd":"send_bulk","connection_id":N,"bytes":N,"seed":N}
//!                                        -> {"ok":true,"bytes":N,"sha256":"<64 hex>"}
//! {"cmd":"received"}                     -> {"ok":true,"connections":[{"connection_id",
//!                                            "bytes","messages","sha256","first_ms",
//!                                            "last_ms"},…],
//!                                            "directs":[{"connection_id","status",
//!                                            "hresult"},…]}
//! {"cmd":"members"}                      -> {"ok":true,"members":[{"identity","present",
//!                                            "node_id","addresses"},…]}   (PeerGroupEnumMembers)
//! {"cmd":"directs"}                      -> {"ok":true,"directs":[{"connection_id","member",
//!                                            "address","relayed"},…]}   (open ones)
//! {"cmd":"close_direct","connection_id":N} -> {"ok":true}
//! {"cmd":"close"}                        -> {"ok":true}
//! ```
//!
//! `direct` opens a `PeerGroupOpenDirectConnection` to the member (no address: the library
//! picks the path) and answers once its event says connected, or fails with the event's
//! HRESULT. `send_bulk` sends `bytes` pseudo-random bytes drawn from `seed` in messages of
//! [`BULK_MESSAGE`] bytes on any neighbour or direct connection; `received` sums what arrived
//! per connection since the group was created or joined (SHA-256 over the data in order, and
//! when the first and the last message arrived, in Unix time ms), and the last event of each
//! direct connection (status 1 connected, 2 disconnected, 3 failed).
//!
//! `add` stores a record of the test type [`TEST_RECORD_TYPE`], no attributes, expiring an
//! hour from now, whose data is the UTF-8 `text`. `records` lists the live records of every
//! type (`enum_records(None)`): their ids sorted, and a SHA-256 digest over, for each record
//! in id order, its id (16 bytes), version (4 bytes big-endian), then its data and its security
//! bytes, each preceded by its length (8 bytes big-endian). Two hosts with the same digest hold
//! the same versions of the same records with the same payloads and signatures.
//!
//! A neighbour is `{"connection_id","member","node_id","address","outbound","relayed_by"}`
//! (`relayed_by`: the relay's node id, or null for a direct connection); a disconnect is
//! `{"kind":"timed_out"|"peer"|"local"|"reset"|"transport"|"peer_unknown_code","text"}`.
//! End of input closes the group and exits 0. The transport runs with a short idle timeout
//! (3 s, keep-alives every second) so that a host cut off from the network is noticed soon;
//! `--limits default` keeps the library's own limits instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use peergroup_core::identity::{IdentityError, IdentityStore, PeerName};
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::record::Record;
use peergroup_core::transport::{CloseReason, Limits};
use peergroup_core::{
    CoreError, Event, EventFilter, EventItem, EventKind, GroupHandle, NewRecord, Peergroup,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The transport's idle timeout: a silent peer is declared lost after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Keep-alive period, well below the idle timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The record type of `add`: an application type (not reserved), GUID bytes.
const TEST_RECORD_TYPE: [u8; 16] = *b"pg-peer-testrec1";
/// How long an `add`ed record lives.
const RECORD_LIFETIME_MS: i64 = 3_600_000;
/// The message size of `send_bulk`.
const BULK_MESSAGE: usize = 1 << 20;
/// Queue of the event subscription that collects direct connections and data.
const EVENT_QUEUE: usize = 4096;

/// What arrived on one connection.
struct Received {
    bytes: u64,
    messages: u64,
    first_ms: f64,
    last_ms: f64,
}

/// Unix time in milliseconds: the same clock in every process of the machine, so a bench
/// can time a transfer from its start at the sender to its end here.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// What the hashing thread is asked.
enum ToHasher {
    Data(u64, bytes::Bytes),
    /// The digests of everything sent before, by connection.
    Digests(std::sync::mpsc::Sender<BTreeMap<u64, String>>),
}

/// SHA-256 of each connection's data, on a thread of its own: the event task only stamps
/// and counts, so hashing never slows what a transfer's timing sees.
fn start_hasher() -> std::sync::mpsc::Sender<ToHasher> {
    let (tx, rx) = std::sync::mpsc::channel::<ToHasher>();
    std::thread::spawn(move || {
        let mut sha: BTreeMap<u64, ring::digest::Context> = BTreeMap::new();
        for msg in rx {
            match msg {
                ToHasher::Data(id, data) => sha
                    .entry(id)
                    .or_insert_with(|| ring::digest::Context::new(&ring::digest::SHA256))
                    .update(&data),
                ToHasher::Digests(reply) => {
                    let all = sha
                        .iter()
                        .map(|(id, c)| (*id, hex(c.clone().finish().as_ref())))
                        .collect();
                    let _ = reply.send(all);
                }
            }
        }
    });
    tx
}

/// What the event task collected: direct connection outcomes and data, by connection id.
#[derive(Default)]
struct Inbox {
    /// The last status of each direct connection (1 connected, 2 disconnected, 3 failed)
    /// and its failure HRESULT.
    directs: HashMap<u64, (u32, i32)>,
    received: BTreeMap<u64, Received>,
    hasher: Option<std::sync::mpsc::Sender<ToHasher>>,
}

struct Peer {
    pg: Peergroup,
    identity: Option<PeerName>,
    group: Option<GroupHandle>,
    inbox: Arc<Mutex<Inbox>>,
}

/// Collects the group's direct connection and data events into `inbox` until the group
/// closes.
fn collect_events(group: &GroupHandle, inbox: Arc<Mutex<Inbox>>) -> Result<(), Failure> {
    let filter = EventFilter::kinds(&[EventKind::DirectConnection, EventKind::IncomingData]);
    let mut sub = group.subscribe_with(filter, EVENT_QUEUE, None)?;
    tokio::spawn(async move {
        while let Some(item) = sub.next().await {
            let mut inbox = inbox.lock().unwrap_or_else(|p| p.into_inner());
            match item {
                EventItem::Event(Event::DirectConnection(c)) => {
                    inbox
                        .directs
                        .insert(c.connection_id, (c.status as u32, c.failed_reason));
                }
                EventItem::Event(Event::IncomingData {
                    connection_id,
                    data,
                    ..
                }) => {
                    let r = inbox
                        .received
                        .entry(connection_id)
                        .or_insert_with(|| Received {
                            bytes: 0,
                            messages: 0,
                            first_ms: unix_ms(),
                            last_ms: 0.0,
                        });
                    r.last_ms = unix_ms();
                    r.bytes += data.len() as u64;
                    r.messages += 1;
                    let hasher = inbox.hasher.get_or_insert_with(start_hasher);
                    let _ = hasher.send(ToHasher::Data(connection_id, data));
                }
                EventItem::Event(_) => {}
                EventItem::Lagged(n) => eprintln!("pg-peer: {n} events lost"),
            }
        }
    });
    Ok(())
}

/// `n` bytes of xorshift64* output from `seed`: the same for the same pair everywhere.
fn bulk_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// What a command may fail with: a core error (with its HRESULT) or a bad request.
enum Failure {
    Core(CoreError),
    Usage(String),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

impl From<IdentityError> for Failure {
    fn from(e: IdentityError) -> Self {
        Failure::Core(e.into())
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn str_arg<'a>(req: &'a Value, key: &str) -> Result<&'a str, Failure> {
    req.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| usage(format!("missing string field {key:?}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `records` digest: SHA-256 over (id, version, data, security) of each record, by id.
fn records_digest(records: &[Record]) -> String {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.id);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for r in sorted {
        ctx.update(&r.id);
        ctx.update(&r.version.to_be_bytes());
        for field in [&r.data, &r.security] {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
    }
    hex(ctx.finish().as_ref())
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn disconnect_json(r: &CloseReason) -> Value {
    let kind = match r {
        CloseReason::TimedOut => "timed_out",
        CloseReason::Peer { .. } => "peer",
        CloseReason::PeerUnknownCode { .. } => "peer_unknown_code",
        CloseReason::Local { .. } => "local",
        CloseReason::Reset => "reset",
        CloseReason::Transport { .. } => "transport",
    };
    json!({ "kind": kind, "text": r.to_string() })
}

impl Peer {
    fn inbox_lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn group(&self) -> Result<&GroupHandle, Failure> {
        self.group
            .as_ref()
            .ok_or_else(|| usage("no group: send create or join first"))
    }

    fn identity(&self) -> Result<&PeerName, Failure> {
        self.identity
            .as_ref()
            .ok_or_else(|| usage("no identity: send identity first"))
    }

    fn status(&self) -> Result<Value, Failure> {
        let g = self.group()?;
        let neighbours: Vec<Value> = g
            .neighbours()?
            .iter()
            .map(|n| {
                json!({
                    "connection_id": n.connection_id,
                    "member": n.member,
                    "node_id": n.node_id,
                    "address": n.address.to_string(),
                    "outbound": n.outbound,
                    "relayed_by": n.relayed_by,
                })
            })
            .collect();
        let disconnects: Vec<Value> = g
            .recent_disconnects()?
            .iter()
            .map(disconnect_json)
            .collect();
        let listen: Vec<String> = g.listen_addrs()?.iter().map(|a| a.to_string()).collect();
        let reachable = g.reachable()?;
        let advertised: Vec<String> = reachable.advertised.iter().map(|a| a.to_string()).collect();
        Ok(json!({
            "ok": true,
            "status": g.status()?,
            "neighbours": neighbours,
            "disconnects": disconnects,
            "listen": listen,
            "advertised": advertised,
            "nat": reachable.nat.to_string(),
            "outside": reachable.outside.to_string(),
        }))
    }

    async fn handle(&mut self, req: &Value) -> Result<Value, Failure> {
        match str_arg(req, "cmd")? {
            "identity" => {
                let classifier = req.get("classifier").and_then(Value::as_str);
                let store = self.pg.identities();
                let name = store.create(classifier, classifier, None)?;
                let xml = store.public_xml(&name)?;
                let answer = json!({ "ok": true, "peer_name": name.to_string(), "xml": xml });
                self.identity = Some(name);
                Ok(answer)
            }
            "create" => {
                if self.group.is_some() {
                    return Err(usage("this peer already holds a group"));
                }
                let creator = self.identity()?.to_string();
                let group = self.pg.create_group(GroupProperties {
                    classifier: "netns".into(),
                    friendly_name: "Three hosts".into(),
                    creator_peer_name: creator,
                    ..Default::default()
                })?;
                let answer = json!({ "ok": true, "group": group.group_name().to_string() });
                collect_events(&group, self.inbox.clone())?;
                self.group = Some(group);
                Ok(answer)
            }
            "invite" => {
                let xml = str_arg(req, "xml")?;
                let roles: &[peergroup_core::identity::gmc::Role] =
                    if req.get("inviting").and_then(Value::as_bool) == Some(true) {
                        &[peergroup_core::identity::gmc::Role::InvitingMember]
                    } else {
                        &[]
                    };
                let invitation = self.group()?.create_invitation(xml, None, roles)?;
                Ok(json!({ "ok": true, "invitation": invitation }))
            }
            "join" => {
                if self.group.is_some() {
                    return Err(usage("this peer already holds a group"));
                }
                let invitation = str_arg(req, "invitation")?;
                let group = self.pg.join(Some(self.identity()?), invitation)?;
                let answer = json!({ "ok": true, "group": group.group_name().to_string() });
                collect_events(&group, self.inbox.clone())?;
                self.group = Some(group);
                Ok(answer)
            }
            "open" => {
                if self.group.is_some() {
                    return Err(usage("this peer already holds a group"));
                }
                let parse = |key: &str| -> Result<PeerName, Failure> {
                    str_arg(req, key)?
                        .parse::<PeerName>()
                        .map_err(|e| usage(format!("{key}: {e}")))
                };
                let identity = parse("identity")?;
                let group = self.pg.open_group(Some(&identity), &parse("group")?)?;
                let answer = json!({ "ok": true, "group": group.group_name().to_string() });
                collect_events(&group, self.inbox.clone())?;
                self.identity = Some(identity);
                self.group = Some(group);
                Ok(answer)
            }
            "connect" => {
                self.group()?.connect().await?;
                Ok(json!({ "ok": true }))
            }
            "relay" => {
                let on = req.get("on").and_then(Value::as_bool).unwrap_or(true);
                self.group()?.set_relay(on)?;
                Ok(json!({ "ok": true }))
            }
            "status" => self.status(),
            "wait" => {
                let bits = req.get("bits").and_then(Value::as_u64).unwrap_or(0) as u32;
                let ms = req
                    .get("timeout_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(10_000);
                self.group()?
                    .wait_status(bits, Duration::from_millis(ms))
                    .await?;
                self.status()
            }
            "add" => {
                let text = str_arg(req, "text")?;
                let id = self.group()?.add_record(NewRecord {
                    record_type: TEST_RECORD_TYPE,
                    attributes: String::new(),
                    expires_ms: now_ms() + RECORD_LIFETIME_MS,
                    data: text.as_bytes().to_vec(),
                })?;
                Ok(json!({ "ok": true, "id": hex(&id) }))
            }
            "records" => {
                let records = self.group()?.enum_records(None)?;
                let mut ids: Vec<String> = records.iter().map(|r| hex(&r.id)).collect();
                ids.sort();
                Ok(json!({
                    "ok": true,
                    "count": records.len(),
                    "digest": records_digest(&records),
                    "ids": ids,
                }))
            }
            "send" => {
                let text = str_arg(req, "text")?;
                let group = self.group()?;
                let neighbours = group.neighbours()?;
                for n in &neighbours {
                    group
                        .send_data(n.connection_id, &TEST_RECORD_TYPE, text.as_bytes())
                        .await?;
                }
                Ok(json!({ "ok": true, "sent": neighbours.len() }))
            }
            "direct" => {
                let member: PeerName = str_arg(req, "member")?
                    .parse()
                    .map_err(|e| usage(format!("member: {e}")))?;
                let ms = req
                    .get("timeout_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(30_000);
                let group = self.group()?;
                let id = group.open_direct_connection(&member, None)?;
                let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
                loop {
                    let state = self.inbox_lock().directs.get(&id).copied();
                    match state {
                        Some((1, _)) => break,
                        Some((_, hr)) => {
                            return Ok(json!({
                                "ok": false,
                                "error": format!("direct connection {id} failed"),
                                "hresult": hr,
                            }))
                        }
                        None if tokio::time::Instant::now() >= deadline => {
                            return Err(usage(format!("direct connection {id}: no outcome")))
                        }
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                let flags = peergroup_core::direct::PEER_CONNECTION_DIRECT;
                let info = group
                    .connections(flags)?
                    .into_iter()
                    .find(|c| c.connection_id == id)
                    .ok_or_else(|| usage(format!("direct connection {id} closed at once")))?;
                let relayed =
                    info.flags & peergroup_core::direct::PEERGROUP_CONNECTION_RELAYED != 0;
                Ok(json!({
                    "ok": true,
                    "connection_id": id,
                    "address": info.address.to_string(),
                    "relayed": relayed,
                }))
            }
            "send_bulk" => {
                let id = req
                    .get("connection_id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| usage("missing connection_id"))?;
                let n = req.get("bytes").and_then(Value::as_u64).unwrap_or(0) as usize;
                let seed = req.get("seed").and_then(Value::as_u64).unwrap_or(1);
                let data = bulk_bytes(seed, n);
                let group = self.group()?;
                for chunk in data.chunks(BULK_MESSAGE) {
                    group.send_data(id, &TEST_RECORD_TYPE, chunk).await?;
                }
                let sha = ring::digest::digest(&ring::digest::SHA256, &data);
                Ok(json!({ "ok": true, "bytes": n, "sha256": hex(sha.as_ref()) }))
            }
            "received" => {
                let digests = {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let hasher = self.inbox_lock().hasher.clone();
                    match hasher {
                        Some(h) if h.send(ToHasher::Digests(tx)).is_ok() => {
                            rx.recv().unwrap_or_default()
                        }
                        _ => BTreeMap::new(),
                    }
                };
                let inbox = self.inbox_lock();
                let connections: Vec<Value> = inbox
                    .received
                    .iter()
                    .map(|(id, r)| {
                        json!({
                            "connection_id": id,
                            "bytes": r.bytes,
                            "messages": r.messages,
                            "sha256": digests.get(id).cloned().unwrap_or_default(),
                            "first_ms": r.first_ms,
                            "last_ms": r.last_ms,
                        })
                    })
                    .collect();
                let directs: Vec<Value> = inbox
                    .directs
                    .iter()
                    .map(|(id, (status, hr))| {
                        json!({ "connection_id": id, "status": status, "hresult": hr })
                    })
                    .collect();
                Ok(json!({ "ok": true, "connections": connections, "directs": directs }))
            }
            "members" => {
                let members: Vec<Value> = self
                    .group()?
                    .members(0, None)?
                    .into_iter()
                    .map(|m| {
                        json!({
                            "identity": m.identity,
                            "present": m.is_present(),
                            "node_id": m.node_id,
                            "addresses": m.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                Ok(json!({ "ok": true, "members": members }))
            }
            "directs" => {
                let flags = peergroup_core::direct::PEER_CONNECTION_DIRECT;
                let directs: Vec<Value> = self
                    .group()?
                    .connections(flags)?
                    .into_iter()
                    .map(|c| {
                        json!({
                            "connection_id": c.connection_id,
                            "member": c.member,
                            "address": c.address.to_string(),
                            "relayed": c.flags
                                & peergroup_core::direct::PEERGROUP_CONNECTION_RELAYED
                                != 0,
                        })
                    })
                    .collect();
                Ok(json!({ "ok": true, "directs": directs }))
            }
            "close_direct" => {
                let id = req
                    .get("connection_id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| usage("missing connection_id"))?;
                self.group()?.close_direct_connection(id)?;
                Ok(json!({ "ok": true }))
            }
            "close" => {
                let group = self.group.take().ok_or_else(|| usage("no group"))?;
                group.close().await?;
                Ok(json!({ "ok": true }))
            }
            other => Err(usage(format!("unknown command {other:?}"))),
        }
    }
}

fn parse_args() -> Result<(PathBuf, SocketAddr, Limits), String> {
    let mut home = None;
    let mut listen = None;
    let mut limits = Limits {
        idle_timeout: IDLE_TIMEOUT,
        keep_alive: KEEP_ALIVE,
        ..Limits::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--home" => home = Some(PathBuf::from(value)),
            "--listen" => {
                listen = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--listen {value}: {e}"))?,
                )
            }
            "--limits" if value == "default" => limits = Limits::default(),
            "--limits" => return Err(format!("--limits {value}: only \"default\"")),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok((
        home.ok_or("--home DIR is required")?,
        listen.ok_or("--listen IP:PORT is required")?,
        limits,
    ))
}

/// With `RUST_LOG` set, the library's log on stderr, each line marked with `PG_PEER_LABEL`
/// (the tests' name for this process).
fn log_to_stderr() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let label = std::env::var("PG_PEER_LABEL").unwrap_or_else(|_| "pg-peer".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || Labelled(label.clone()))
        .try_init();
}

/// Writes each log line to stderr after a label.
struct Labelled(String);

impl std::io::Write for Labelled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = format!("[{}] ", self.0).into_bytes();
        line.extend_from_slice(buf);
        std::io::stderr().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    log_to_stderr();
    let (home, listen, limits) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "pg-peer: {e}\nusage: pg-peer --home DIR --listen IP:PORT [--limits default]"
            );
            std::process::exit(2);
        }
    };
    let store = match IdentityStore::open(&home) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pg-peer: cannot open {}: {e}", home.display());
            std::process::exit(1);
        }
    };
    let mut peer = Peer {
        pg: Peergroup::with_limits(store, Some(listen), limits),
        identity: None,
        group: None,
        inbox: Arc::default(),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                eprintln!("pg-peer: reading stdin: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(e) => json!({ "ok": false, "error": format!("not JSON: {e}") }),
            Ok(req) => match peer.handle(&req).await {
                Ok(v) => v,
                Err(Failure::Core(e)) => {
                    json!({ "ok": false, "error": e.to_string(), "hresult": e.hresult() })
                }
                Err(Failure::Usage(e)) => json!({ "ok": false, "error": e }),
            },
        };
        // println! flushes at the newline: stdout is line-buffered.
        println!("{answer}");
    }
    if let Some(group) = peer.group.take() {
        if let Err(e) = group.close().await {
            eprintln!("pg-peer: close: {e}");
        }
    }
}
