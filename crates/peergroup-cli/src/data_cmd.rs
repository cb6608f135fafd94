//! `peergroup send` and `listen`: application data on direct connections
//! (`PeerGroupOpenDirectConnection`, `PeerGroupSendData`, `PEER_GROUP_EVENT_INCOMING_DATA`).
//!
//! A transfer, as both commands agree on it (docs/cli.md):
//!
//! 1. `send` opens a direct connection to the member and sends the input as messages of the
//!    transfer's type, 1 MiB each (the last one shorter; never an empty one);
//! 2. it ends the transfer with an **empty message** of the same type;
//! 3. `listen` answers that end with an empty message of the same type on the same connection
//!    (the receipt: everything before it was written out);
//! 4. `send` closes the direct connection on the receipt and exits 0; without a receipt it
//!    fails. A connection that closes before its end message is an incomplete transfer.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use peergroup_core::direct::PEER_CONNECTION_DIRECT;
use peergroup_core::events::Registration;
use peergroup_core::identity::{fsutil, hresult, IdentityStore, PeerName};
use peergroup_core::io::{ConnectionStatus, STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::records::view::guid_text;
use peergroup_core::{
    CoreError, Event, EventFilter, EventItem, EventKind, EventSubscription, GroupHandle,
};
use serde_json::json;

use crate::context::{block_on_detached, close_after, As, Context};
use crate::output::CliError;
use crate::record_cmd::parse_guid;

/// The data type `send` and `listen` use without `--type`: "peergroup data".
pub const DATA_TYPE: &str = "{8B5C2E1A-6F3D-4C7E-9A41-646174612121}";

/// The size of the messages a transfer is split into.
pub const CHUNK: usize = 1 << 20;

/// How long `listen` waits for its group to listen.
const LISTEN_BOUND: Duration = Duration::from_secs(10);

/// How long `listen` waits, after its last counted transfer, for the sender to close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// `peergroup send GROUP --to MEMBER [FILE|-]`.
#[derive(Args)]
pub struct SendArgs {
    /// Group peer name.
    group: String,
    /// The member to send to: its identity peer name.
    #[arg(long)]
    to: String,
    /// Where the member listens (default: where the group last saw it). The group also
    /// connects there.
    #[arg(long)]
    address: Option<SocketAddr>,
    /// Data type GUID (default: the "peergroup data" type); `listen` must use the same.
    #[arg(long = "type", default_value = DATA_TYPE)]
    data_type: String,
    /// Longest wait, in seconds, for each step: reaching the group, the direct connection,
    /// the receipt.
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// The file to send ("-" or nothing for standard input).
    file: Option<PathBuf>,
}

/// `peergroup listen GROUP`.
#[derive(Args)]
pub struct ListenArgs {
    /// Group peer name.
    group: String,
    /// Data type GUID to receive (default: the "peergroup data" type).
    #[arg(long = "type", default_value = DATA_TYPE)]
    data_type: String,
    /// Exit after this many complete transfers (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// Write the received data, raw, to this file ("-" for standard output) instead of a
    /// line per message.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address")]
    addresses: Vec<SocketAddr>,
}

fn data_filter(data_type: [u8; 16]) -> EventFilter {
    EventFilter::new(vec![
        Registration {
            kind: EventKind::DirectConnection,
            type_filter: None,
        },
        Registration {
            kind: EventKind::IncomingData,
            type_filter: Some(data_type),
        },
    ])
}

/// The next event within `bound`, `None` when the bound passed or the group closed.
async fn next_event(sub: &mut EventSubscription, bound: Duration) -> Option<EventItem> {
    tokio::time::timeout(bound, sub.next()).await.ok().flatten()
}

fn timed_out(what: &str, wait: u64) -> CliError {
    CliError::with_hresult(
        format!("{what} within {wait}s"),
        hresult::PEER_E_TIMEOUT,
        Some("check that the member is online (`peergroup listen GROUP`) and reachable; raise --wait"),
    )
}

/// Opens a direct connection to `to`: retried while the group has no connection yet and so
/// does not know where the member is, bounded by `wait`.
async fn open_direct(
    h: &GroupHandle,
    to: &PeerName,
    address: Option<SocketAddr>,
    wait: Duration,
) -> Result<u64, CliError> {
    let deadline = Instant::now() + wait;
    // The group's neighbour table follows its status within one step of its driver: a short
    // grace once connected, so a member that is a neighbour is always found.
    let mut connected_since: Option<Instant> = None;
    loop {
        match h.open_direct_connection(to, address) {
            Err(CoreError::NoAddress(_)) if Instant::now() < deadline => {
                if h.status()? & STATUS_HAS_CONNECTIONS != 0 {
                    let since = *connected_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(1) {
                        return Err(CoreError::NoAddress(to.to_string()).into());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map_err(CliError::from),
        }
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the input.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn progress(total: Option<u64>) -> indicatif::ProgressBar {
    let large = total.is_none_or(|t| t > CHUNK as u64);
    if !std::io::stderr().is_terminal() || !large {
        return indicatif::ProgressBar::hidden();
    }
    match total {
        Some(t) => {
            let bar = indicatif::ProgressBar::new(t);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let spinner = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
            {
                spinner.set_style(style);
            }
            spinner
        }
    }
}

/// Sends a file (or standard input) to a member on a direct connection; exits 0 only when
/// the listener confirmed the whole transfer.
pub fn send(
    store: &IdentityStore,
    who: &As,
    args: SendArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    let data_type = parse_guid(&args.data_type)?;
    let to: PeerName = args.to.parse()?;
    let (mut input, total): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p)
                .map_err(|e| CliError::io(format!("reading {}", p.display()), &e))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        _ => (Box::new(std::io::stdin()), None),
    };
    block_on_detached(async {
        let h = ctx.open(&args.group)?;
        let result = send_open(&h, &args, &to, data_type, &mut *input, total).await;
        let (sent, messages, id) = close_after(h, result).await?;
        tracing::info!(sent, messages, connection_id = id, "transfer confirmed");
        if as_json {
            println!(
                "{}",
                json!({"sent": sent, "messages": messages, "to": to.to_string(),
                       "connection_id": id, "type": guid_text(&data_type)})
            );
        } else {
            let plural = if messages == 1 { "" } else { "s" };
            println!("sent {sent} bytes in {messages} message{plural} to {to}");
        }
        Ok(())
    })
}

/// The transfer on an open group: bytes and messages sent, and the connection id.
async fn send_open(
    h: &GroupHandle,
    args: &SendArgs,
    to: &PeerName,
    data_type: [u8; 16],
    input: &mut dyn Read,
    total: Option<u64>,
) -> Result<(u64, u64, u64), CliError> {
    let wait = Duration::from_secs(args.wait);
    let mut sub = h.subscribe(data_filter(data_type))?;
    let addrs: Vec<SocketAddr> = args.address.into_iter().collect();
    h.connect_by_address(&addrs).await?;
    let id = open_direct(h, to, args.address, wait).await?;
    tracing::info!(%to, connection_id = id, "direct connection requested");

    // The outcome of the attempt.
    loop {
        match next_event(&mut sub, wait).await {
            Some(EventItem::Event(Event::DirectConnection(c))) if c.connection_id == id => {
                match c.status {
                    ConnectionStatus::Connected => break,
                    _ => {
                        return Err(CliError::with_hresult(
                            format!("the direct connection to {to} failed"),
                            c.failed_reason,
                            Some("check that the member listens (`peergroup listen GROUP`) at the address given or known"),
                        ))
                    }
                }
            }
            Some(_) => {}
            None => return Err(timed_out("no direct connection", args.wait)),
        }
    }

    let bar = progress(total);
    let mut buf = vec![0u8; CHUNK];
    let (mut sent, mut messages) = (0u64, 0u64);
    let outcome = async {
        loop {
            let n = fill(input, &mut buf).map_err(|e| CliError::io("reading the input", &e))?;
            if n == 0 {
                break;
            }
            h.send_data(id, &data_type, &buf[..n]).await?;
            sent += n as u64;
            messages += 1;
            bar.inc(n as u64);
        }
        // The end of the transfer, then the listener's receipt.
        h.send_data(id, &data_type, &[]).await?;
        loop {
            match next_event(&mut sub, wait).await {
                Some(EventItem::Event(Event::IncomingData {
                    connection_id,
                    data,
                    ..
                })) if connection_id == id && data.is_empty() => return Ok(()),
                Some(EventItem::Event(Event::DirectConnection(c))) if c.connection_id == id => {
                    return Err(CliError::with_hresult(
                        format!("{to} closed the direct connection before confirming the transfer"),
                        hresult::PEER_E_CONNECTION_FAILED,
                        Some("the listener stopped early; send again"),
                    ))
                }
                Some(_) => {}
                None => return Err(timed_out("no receipt from the listener", args.wait)),
            }
        }
    }
    .await;
    bar.finish_and_clear();
    // Closed either way; after a receipt, both sides see it go.
    if h.close_direct_connection(id).is_ok() && outcome.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(item) = sub.next().await {
                if let EventItem::Event(Event::DirectConnection(c)) = item {
                    if c.connection_id == id && c.status != ConnectionStatus::Connected {
                        break;
                    }
                }
            }
        })
        .await;
    }
    outcome.map(|()| (sent, messages, id))
}

/// A transfer in progress on one connection.
#[derive(Default)]
struct Transfer {
    bytes: u64,
    messages: u64,
}

/// Where `listen` writes: the data (raw, or nothing) and its report lines.
struct Sinks {
    data: Option<Box<dyn Write>>,
    to_stdout: bool,
}

impl Sinks {
    /// A report line: on standard output, unless the data goes there.
    fn report(&self, line: &str) {
        if self.to_stdout {
            let _ = writeln!(std::io::stdout(), "{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// `listen --out FILE`: FILE is created (or emptied) only when data or the end of a transfer
/// arrives, so a listen that fails first (a wrong group, no address to listen on) leaves
/// it as it was.
struct LazyFile {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl LazyFile {
    fn open(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        if self.file.is_none() {
            let f = std::fs::File::create(&self.path)?;
            self.file = Some(std::io::BufWriter::new(f));
        }
        Ok(self.file.as_mut().expect("just opened"))
    }
}

impl Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.open()?.write(buf)
    }

    /// Creates the file if nothing came yet: an empty transfer still gives an empty file.
    fn flush(&mut self) -> std::io::Result<()> {
        self.open()?.flush()
    }
}

/// Brings the group online and receives transfers until Ctrl-C or `--count`.
pub fn listen(
    store: &IdentityStore,
    who: &As,
    args: ListenArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let mut ctx = Context::new(store, who)?;
    let me = ctx.resolve_identity()?;
    let data_type = parse_guid(&args.data_type)?;
    let sinks = match &args.out {
        None => Sinks {
            data: None,
            to_stdout: true,
        },
        Some(p) if p.as_os_str() == "-" => Sinks {
            data: Some(Box::new(std::io::BufWriter::new(std::io::stdout()))),
            to_stdout: false,
        },
        Some(p) if p.is_dir() || !fsutil::dir_of(p).is_dir() => {
            // Said now, before the group: where the file cannot be, not after data came.
            let kind = if p.is_dir() {
                std::io::ErrorKind::IsADirectory
            } else {
                std::io::ErrorKind::NotFound
            };
            let e = std::io::Error::from(kind);
            return Err(CliError::io(format!("writing {}", p.display()), &e));
        }
        Some(p) => Sinks {
            data: Some(Box::new(LazyFile {
                path: p.clone(),
                file: None,
            })),
            to_stdout: true,
        },
    };
    block_on_detached(async {
        let h = ctx.open(&args.group)?;
        let result = listen_open(&h, &me, &args, data_type, sinks, as_json).await;
        close_after(h, result).await
    })
}

async fn listen_open(
    h: &GroupHandle,
    me: &PeerName,
    args: &ListenArgs,
    data_type: [u8; 16],
    mut sinks: Sinks,
    as_json: bool,
) -> Result<(), CliError> {
    let mut sub = h.subscribe(data_filter(data_type))?;
    h.connect_by_address(&args.addresses).await?;
    if h.wait_status(STATUS_LISTENING, LISTEN_BOUND).await? & STATUS_LISTENING == 0 {
        return Err(CliError::with_hresult(
            format!("the group is not listening after {}s", LISTEN_BOUND.as_secs()),
            hresult::PEER_E_TIMEOUT,
            Some("check $PEERGROUP_LISTEN: an address of this machine, with a port no other process uses"),
        ));
    }
    let addrs = h.listen_addrs()?;
    tracing::info!(?addrs, "listening");
    sinks.report(&if as_json {
        json!({"event": "listening", "member": me.to_string(), "addresses": addrs,
               "type": guid_text(&data_type)})
        .to_string()
    } else {
        format!(
            "listening as {me} on {addrs:?} for data of type {}",
            guid_text(&data_type)
        )
    });
    let mut transfers: HashMap<u64, Transfer> = HashMap::new();
    let mut done = 0u64;
    let mut last_ended = None;
    let write_err = |e: std::io::Error| CliError::io("writing the data", &e);
    while args.count.is_none_or(|n| done < n) {
        let item = tokio::select! {
            item = sub.next() => item,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(item) = item else { break };
        match item {
            EventItem::Lagged(n) => eprintln!("warning: {n} events were lost"),
            EventItem::Event(Event::DirectConnection(c)) => match c.status {
                ConnectionStatus::Connected => {
                    let member = h
                        .connections(PEER_CONNECTION_DIRECT)?
                        .into_iter()
                        .find(|i| i.connection_id == c.connection_id)
                        .map(|i| i.member)
                        .unwrap_or_default();
                    sinks.report(&if as_json {
                        json!({"event": "connected", "connection_id": c.connection_id,
                               "member": member})
                        .to_string()
                    } else {
                        format!(
                            "connection {}: direct connection from {member}",
                            c.connection_id
                        )
                    });
                }
                _ => {
                    if let Some(t) = transfers.remove(&c.connection_id) {
                        eprintln!(
                            "warning: connection {} closed before the end of its transfer ({} bytes in {} messages received)",
                            c.connection_id, t.bytes, t.messages
                        );
                    }
                }
            },
            EventItem::Event(Event::IncomingData {
                connection_id,
                data_type: ty,
                data,
            }) => {
                if data.is_empty() {
                    // The end of a transfer: everything before it is written out, then the
                    // receipt.
                    if let Some(out) = sinks.data.as_mut() {
                        out.flush().map_err(write_err)?;
                    }
                    let t = transfers.remove(&connection_id).unwrap_or_default();
                    if let Err(e) = h.send_data(connection_id, &ty, &[]).await {
                        eprintln!("warning: no receipt sent on connection {connection_id}: {e}");
                    }
                    sinks.report(&if as_json {
                        json!({"event": "end", "connection_id": connection_id,
                               "type": guid_text(&ty), "bytes": t.bytes, "messages": t.messages})
                        .to_string()
                    } else {
                        format!(
                            "connection {connection_id}: end of transfer, {} bytes in {} messages",
                            t.bytes, t.messages
                        )
                    });
                    done += 1;
                    last_ended = Some(connection_id);
                } else {
                    let t = transfers.entry(connection_id).or_default();
                    t.bytes += data.len() as u64;
                    t.messages += 1;
                    match sinks.data.as_mut() {
                        Some(out) => out.write_all(&data).map_err(write_err)?,
                        None => sinks.report(&if as_json {
                            json!({"event": "data", "connection_id": connection_id,
                                   "type": guid_text(&ty), "bytes": data.len()})
                            .to_string()
                        } else {
                            format!(
                                "connection {connection_id}: {} bytes of type {}",
                                data.len(),
                                guid_text(&ty)
                            )
                        }),
                    }
                }
            }
            EventItem::Event(_) => {}
        }
    }
    if let Some(out) = sinks.data.as_mut() {
        out.flush().map_err(write_err)?;
    }
    // The last sender closes its connection on the receipt: let it, so the receipt is not
    // lost to the group closing first.
    if let Some(id) = last_ended {
        let still_open = |h: &GroupHandle| {
            h.connections(PEER_CONNECTION_DIRECT)
                .map(|l| l.iter().any(|c| c.connection_id == id))
                .unwrap_or(false)
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while still_open(h) {
                match sub.next().await {
                    Some(EventItem::Event(Event::DirectConnection(c))) if c.connection_id == id => {
                        break
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        })
        .await;
    }
    Ok(())
}
