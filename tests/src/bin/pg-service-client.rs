//! `pg-service-client`: one client process of `peergroupd`, driven line by line over
//! stdin/stdout like `pg-peer`, so that multi-process service tests keep their logic in the
//! test. It uses the public `Peergroup` API served by the service at `--socket` for the data
//! directory `--home` (as any program would with `PEERGROUP_SERVICE=required`). It connects
//! once at start and answers that with a first line, `{"ok":true}` or the error
//! (`{"ok":false,"error":"…","hresult":N}`, then it exits 1). Every later input line is one
//! JSON command with exactly one JSON line back. Handles are numbered from 1 in this process.
//!
//! ```text
//! pg-service-client --socket PATH --home DIR
//!
//! {"cmd":"open","identity":"…","group":"…"}           -> {"ok":true,"handle":N}
//! {"cmd":"connect","handle":N,"addrs":["IP:PORT",…]}   -> {"ok":true}
//! {"cmd":"status","handle":N}                          -> {"ok":true,"status":S}
//! {"cmd":"wait","handle":N,"bits":B,"timeout_ms":T}    -> {"ok":true,"status":S}
//! {"cmd":"add","handle":N,"text":"…"}                  -> {"ok":true,"id":"<32 hex>"}
//! {"cmd":"records","handle":N}                         -> {"ok":true,"ids":[…],"texts":[…]}
//! {"cmd":"subscribe","handle":N}                       -> {"ok":true,"subscription":I}
//! {"cmd":"event","kind":K,"timeout_ms":T}              -> {"ok":true,"kind":K,"id":"<hex>"}
//! {"cmd":"close","handle":N}                           -> {"ok":true}
//! ```
//!
//! `add` stores a record of the type `pg-peer` uses, expiring in an hour, whose data is the
//! UTF-8 `text`; `records` lists the live records' ids (sorted) with their texts in the same
//! order. `subscribe` registers for every event kind; `event` reads the subscriptions' events
//! (oldest subscription first) until one of kind `K` (a `PEER_GROUP_EVENT_TYPE` number)
//! arrives, or answers `{"ok":false,"error":"timeout"}` after `timeout_ms`; `id` is the record
//! id of a record change, `text` the data of incoming data (as UTF-8), else absent. End of input exits 0 (the service closes the handles).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use peergroup_core::events::{Event, EventFilter, EventItem, EventSubscription};
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::{CoreError, GroupHandle, NewRecord, Peergroup};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The record type of `add` (the one `pg-peer` uses).
const TEST_RECORD_TYPE: [u8; 16] = *b"pg-peer-testrec1";
/// How long an `add`ed record lives.
const RECORD_LIFETIME_MS: i64 = 3_600_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn failure(e: &CoreError) -> Value {
    json!({ "ok": false, "error": e.to_string(), "hresult": e.hresult() })
}

fn usage(msg: String) -> Value {
    json!({ "ok": false, "error": msg })
}

fn handle_arg(req: &Value) -> Result<u64, Value> {
    req.get("handle")
        .and_then(Value::as_u64)
        .ok_or_else(|| usage("missing number field \"handle\"".into()))
}

fn str_arg<'a>(req: &'a Value, key: &str) -> Result<&'a str, Value> {
    req.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| usage(format!("missing string field {key:?}")))
}

struct Session {
    pg: Peergroup,
    handles: HashMap<u64, GroupHandle>,
    next_handle: u64,
    subscriptions: Vec<EventSubscription>,
}

impl Session {
    fn group(&self, req: &Value) -> Result<&GroupHandle, Value> {
        let n = handle_arg(req)?;
        self.handles
            .get(&n)
            .ok_or_else(|| failure(&CoreError::InvalidGroup))
    }

    async fn handle(&mut self, req: &Value) -> Result<Value, Value> {
        match str_arg(req, "cmd")? {
            "open" => {
                let identity: PeerName = str_arg(req, "identity")?
                    .parse()
                    .map_err(|e| usage(format!("identity: {e}")))?;
                let group: PeerName = str_arg(req, "group")?
                    .parse()
                    .map_err(|e| usage(format!("group: {e}")))?;
                let h = self
                    .pg
                    .open_group(Some(&identity), &group)
                    .map_err(|e| failure(&e))?;
                let n = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(n, h);
                Ok(json!({ "ok": true, "handle": n }))
            }
            "connect" => {
                let addrs = match req.get("addrs").and_then(Value::as_array) {
                    None => Vec::new(),
                    Some(list) => list
                        .iter()
                        .map(|a| {
                            a.as_str()
                                .and_then(|s| s.parse().ok())
                                .ok_or_else(|| usage(format!("bad address {a}")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                };
                self.group(req)?
                    .connect_by_address(&addrs)
                    .await
                    .map_err(|e| failure(&e))?;
                Ok(json!({ "ok": true }))
            }
            "status" => {
                let s = self.group(req)?.status().map_err(|e| failure(&e))?;
                Ok(json!({ "ok": true, "status": s }))
            }
            "wait" => {
                let bits = req.get("bits").and_then(Value::as_u64).unwrap_or(0) as u32;
                let ms = req
                    .get("timeout_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(10_000);
                let s = self
                    .group(req)?
                    .wait_status(bits, Duration::from_millis(ms))
                    .await
                    .map_err(|e| failure(&e))?;
                Ok(json!({ "ok": true, "status": s }))
            }
            "add" => {
                let text = str_arg(req, "text")?;
                let id = self
                    .group(req)?
                    .add_record(NewRecord {
                        record_type: TEST_RECORD_TYPE,
                        attributes: String::new(),
                        expires_ms: now_ms() + RECORD_LIFETIME_MS,
                        data: text.as_bytes().to_vec(),
                    })
                    .map_err(|e| failure(&e))?;
                Ok(json!({ "ok": true, "id": hex(&id) }))
            }
            "records" => {
                let mut records = self
                    .group(req)?
                    .enum_records(None)
                    .map_err(|e| failure(&e))?;
                records.sort_by_key(|r| r.id);
                let texts: Vec<String> = records
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                    .collect();
                let ids: Vec<String> = records.iter().map(|r| hex(&r.id)).collect();
                Ok(json!({ "ok": true, "ids": ids, "texts": texts }))
            }
            "subscribe" => {
                let sub = self
                    .group(req)?
                    .subscribe(EventFilter::all())
                    .map_err(|e| failure(&e))?;
                self.subscriptions.push(sub);
                let id = self.subscriptions.len();
                Ok(json!({ "ok": true, "subscription": id }))
            }
            "event" => {
                let kind = req
                    .get("kind")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| usage("missing number field \"kind\"".into()))?;
                let ms = req
                    .get("timeout_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(10_000);
                let found = tokio::time::timeout(Duration::from_millis(ms), async {
                    loop {
                        let mut any = false;
                        for sub in &mut self.subscriptions {
                            if let Some(EventItem::Event(e)) = sub.next().await {
                                any = true;
                                if i64::from(e.kind().code()) == kind {
                                    return Some(e);
                                }
                            }
                        }
                        if !any {
                            return None;
                        }
                    }
                })
                .await;
                match found {
                    Err(_) => Err(usage("timeout".into())),
                    Ok(None) => Err(usage("no subscription is open".into())),
                    Ok(Some(Event::RecordChanged { id, .. })) => {
                        Ok(json!({ "ok": true, "kind": kind, "id": hex(&id) }))
                    }
                    Ok(Some(Event::IncomingData { data, .. })) => Ok(json!({
                        "ok": true,
                        "kind": kind,
                        "text": String::from_utf8_lossy(&data),
                    })),
                    Ok(Some(_)) => Ok(json!({ "ok": true, "kind": kind })),
                }
            }
            "close" => {
                let h = self
                    .handles
                    .remove(&handle_arg(req)?)
                    .ok_or_else(|| failure(&CoreError::InvalidGroup))?;
                h.close().await.map_err(|e| failure(&e))?;
                Ok(json!({ "ok": true }))
            }
            other => Err(usage(format!("unknown command {other:?}"))),
        }
    }
}

fn parse_args() -> Result<(PathBuf, PathBuf), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [s, socket, h, home] if s == "--socket" && h == "--home" => {
            Ok((PathBuf::from(socket), PathBuf::from(home)))
        }
        _ => Err("usage: pg-service-client --socket PATH --home DIR".into()),
    }
}

fn connect(socket: PathBuf, home: PathBuf) -> Result<Peergroup, CoreError> {
    let store = IdentityStore::open(home)?;
    let listen = Some("127.0.0.1:0".parse().expect("an address"));
    Peergroup::through_service(store, listen, Default::default(), socket)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (socket, home) = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pg-service-client: {e}");
            std::process::exit(2);
        }
    };
    let pg = match connect(socket, home) {
        Ok(pg) => pg,
        Err(e) => {
            println!("{}", failure(&e));
            std::process::exit(1);
        }
    };
    println!("{}", json!({ "ok": true }));
    let mut session = Session {
        pg,
        handles: HashMap::new(),
        next_handle: 1,
        subscriptions: Vec::new(),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(e) => usage(format!("not JSON: {e}")),
            Ok(req) => match session.handle(&req).await {
                Ok(v) | Err(v) => v,
            },
        };
        println!("{answer}");
    }
}
