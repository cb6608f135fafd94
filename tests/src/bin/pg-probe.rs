//! `pg-probe`: UDP sockets driven line by line over stdin/stdout, for the NAT lab's self-checks
//! (`tests/tests/common/lab.rs`). One runs per host of a probe, inside its namespace.
//!
//! ```text
//! {"op":"bind","port":P,"echo":true}          -> {"ok":true,"port":P}
//! {"op":"send","port":P,"to":"IP:PORT","text":"…"} -> {"ok":true}
//! {"op":"recv","port":P,"timeout_ms":N}       -> {"ok":true,"from":"IP:PORT","text":"…"}
//!                                                or {"ok":false,"error":"timeout"}
//! {"op":"mdns","port":5353}                    -> {"ok":true,"port":5353}
//! ```
//!
//! `mdns` listens as a bystander on the link's mDNS group (224.0.0.251:5353, shared with any
//! other listener of the host): what it hears is queued for `recv` with `text` the datagram
//! in hex.
//!
//! A socket bound with `echo` answers every datagram with `seen IP:PORT`, the source address
//! it saw (the sender's mapped address behind a NAT); every datagram a socket receives is
//! also queued for `recv`. `port` 0 binds an ephemeral port (the answer gives it). End of
//! input exits 0.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// Largest datagram a probe reads.
const MAX_DATAGRAM: usize = 2048;

struct Bound {
    socket: Arc<UdpSocket>,
    queue: Receiver<(SocketAddr, String)>,
}

fn bind(port: u16, echo: bool) -> std::io::Result<(u16, Bound)> {
    let socket = Arc::new(UdpSocket::bind(("0.0.0.0", port))?);
    let port = socket.local_addr()?.port();
    let (tx, queue) = mpsc::channel();
    let reader = socket.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = reader.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if echo {
                let _ = reader.send_to(format!("seen {from}").as_bytes(), from);
            }
            if tx.send((from, text)).is_err() {
                break;
            }
        }
    });
    Ok((port, Bound { socket, queue }))
}

/// Listens on the link's mDNS group, queuing each datagram as hex.
fn mdns() -> std::io::Result<Bound> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], 5353)).into())?;
    let socket: UdpSocket = s.into();
    socket.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &Ipv4Addr::UNSPECIFIED)?;
    let socket = Arc::new(socket);
    let (tx, queue) = mpsc::channel();
    let reader = socket.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 9000];
        while let Ok((n, from)) = reader.recv_from(&mut buf) {
            let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
            if tx.send((from, hex)).is_err() {
                break;
            }
        }
    });
    Ok(Bound { socket, queue })
}

fn answer(sockets: &mut HashMap<u16, Bound>, req: &Value) -> Result<Value, String> {
    let port = req["port"].as_u64().ok_or("no port")? as u16;
    match req["op"].as_str().ok_or("no op")? {
        "bind" => {
            let echo = req["echo"].as_bool().unwrap_or(false);
            let (port, bound) = bind(port, echo).map_err(|e| format!("bind {port}: {e}"))?;
            sockets.insert(port, bound);
            Ok(json!({"ok": true, "port": port}))
        }
        "mdns" => {
            let bound = mdns().map_err(|e| format!("mdns: {e}"))?;
            sockets.insert(5353, bound);
            Ok(json!({"ok": true, "port": 5353}))
        }
        "send" => {
            let bound = sockets.get(&port).ok_or("port not bound")?;
            let to: SocketAddr = req["to"]
                .as_str()
                .ok_or("no to")?
                .parse()
                .map_err(|e| format!("to: {e}"))?;
            let text = req["text"].as_str().unwrap_or_default();
            bound
                .socket
                .send_to(text.as_bytes(), to)
                .map_err(|e| format!("send to {to}: {e}"))?;
            Ok(json!({"ok": true}))
        }
        "recv" => {
            let bound = sockets.get(&port).ok_or("port not bound")?;
            let ms = req["timeout_ms"].as_u64().unwrap_or(5000);
            match bound.queue.recv_timeout(Duration::from_millis(ms)) {
                Ok((from, text)) => Ok(json!({"ok": true, "from": from.to_string(), "text": text})),
                Err(_) => Err("timeout".into()),
            }
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn main() {
    let mut sockets = HashMap::new();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => {
                answer(&mut sockets, &req).unwrap_or_else(|e| json!({"ok": false, "error": e}))
            }
            Err(e) => json!({"ok": false, "error": format!("not JSON: {e}")}),
        };
        let mut out = stdout.lock();
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
}
