//! `peergroup record …`, `db export|import` and `watch`: a group's records and events.
//!
//! Reading commands (`record get|list|search`) read this member's copy of the database
//! offline. Changing commands (`record add|update|delete`) bring the group online first, so
//! the change floods to the neighbours: they connect, wait (bounded by `--wait`) until the
//! group has a connection and has synchronised, make the change, wait until the running group
//! has taken it (its own record event) plus a short grace for the neighbours to be sent it,
//! and close. With `--offline` they only store the change; it reaches the others when the
//! group next connects (reconciliation). `db export|import` always run offline: the core
//! refuses them once a group is online in the process.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Args, Subcommand};
use peergroup_core::io::{ConnectionStatus, RecordChange, STATUS_HAS_CONNECTIONS};
use peergroup_core::records::record::Record;
use peergroup_core::records::view::guid_text;
use peergroup_core::{
    CoreError, DatabaseProgress, DatabaseStage, Event, EventFilter, EventItem, EventKind,
    GroupHandle, NewRecord,
};
use serde_json::json;

use crate::context::{block_on_detached, close_after, runtime, wait_for_member, As, Context};
use crate::output::CliError;

/// The record type `record add` uses without `--type`: "peergroup note".
pub const NOTE_TYPE: &str = "{8B5C2E1A-6F3D-4C7E-9A41-6E6F74657321}";

/// What the grace after a flooded change lasts, so the neighbours are sent it before closing.
const FLOOD_GRACE: Duration = Duration::from_millis(500);

/// Record subcommands.
#[derive(Subcommand)]
pub enum RecordCommand {
    /// Add a record (connects the group so it floods); prints its id.
    Add {
        /// Group peer name.
        group: String,
        #[command(flatten)]
        body: Body,
        #[command(flatten)]
        online: Online,
    },
    /// Print one record.
    Get {
        /// Group peer name.
        group: String,
        /// Record id (GUID).
        id: String,
        /// Write the record's data to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the live records, of one type or all.
    List {
        /// Group peer name.
        group: String,
        /// Only records of this type (GUID).
        #[arg(long = "type")]
        record_type: Option<String>,
    },
    /// Search the records by attributes (PeerGroupSearchRecords).
    Search {
        /// Group peer name.
        group: String,
        /// A <peersearch> document ("-" for standard input).
        #[arg(long, conflicts_with = "wheres")]
        xml: Option<PathBuf>,
        /// NAME=TYPE:VALUE, TYPE string|int|date; repeated clauses must all hold. String
        /// values are matched literally.
        #[arg(long = "where")]
        wheres: Vec<String>,
    },
    /// Replace a record's attributes, expiration or data (connects the group).
    Update {
        /// Group peer name.
        group: String,
        /// Record id (GUID).
        id: String,
        #[command(flatten)]
        body: UpdateBody,
        #[command(flatten)]
        online: Online,
    },
    /// Delete a record (connects the group so the deletion floods).
    Delete {
        /// Group peer name.
        group: String,
        /// Record id (GUID).
        id: String,
        #[command(flatten)]
        online: Online,
    },
}

/// A new record's contents.
#[derive(Args)]
pub struct Body {
    /// Record type GUID (default: the "peergroup note" type).
    #[arg(long = "type", default_value = NOTE_TYPE)]
    record_type: String,
    #[command(flatten)]
    fields: Fields,
    /// How long until the record expires: N[s|m|h|d|w] (default 1d).
    #[arg(long, default_value = "1d")]
    expires: String,
}

/// What `update` may replace; what is not given is kept.
#[derive(Args)]
pub struct UpdateBody {
    #[command(flatten)]
    fields: Fields,
    /// New expiration, from now: N[s|m|h|d|w] (default: keep; never earlier than it was).
    #[arg(long)]
    expires: Option<String>,
}

/// Attributes and data.
#[derive(Args)]
pub struct Fields {
    /// An attribute NAME=TYPE:VALUE, TYPE string|int|date (repeatable).
    #[arg(long = "attr", conflicts_with = "attributes_xml")]
    attrs: Vec<String>,
    /// An <attributes> document ("-" for standard input).
    #[arg(long)]
    attributes_xml: Option<PathBuf>,
    /// The data, as text.
    #[arg(long, conflicts_with = "file")]
    data: Option<String>,
    /// The data, from a file ("-" for standard input).
    #[arg(long)]
    file: Option<PathBuf>,
}

/// How a changing command goes online.
#[derive(Args)]
pub struct Online {
    /// Only store the change; it floods when the group next connects.
    #[arg(long)]
    offline: bool,
    /// Addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address")]
    addresses: Vec<SocketAddr>,
    /// Longest wait, in seconds, for a connection and synchronisation before changing.
    #[arg(long, default_value_t = 10)]
    wait: u64,
}

/// Parses a GUID in `StringFromGUID2` form (braces optional, any case) into Windows byte order.
pub fn parse_guid(text: &str) -> Result<[u8; 16], CliError> {
    let bad = || {
        CliError::usage(format!(
            "bad GUID {text:?}: write it as {{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}}"
        ))
    };
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(t);
    let parts: Vec<&str> = t.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5
        || parts
            .iter()
            .zip(lens)
            .any(|(p, n)| p.len() != n || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad());
    }
    let hex: String = parts.concat();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    // Data1, Data2 and Data3 are little-endian in Windows byte order.
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Ok(b)
}

/// Parses `N[s|m|h|d|w]` (plain N: seconds) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => 0,
    };
    match num.parse::<i64>() {
        Ok(n) if scale != 0 && n > 0 => n
            .checked_mul(scale)
            .ok_or_else(|| CliError::usage(format!("duration {text:?} is too long"))),
        _ => Err(CliError::usage(format!(
            "bad duration {text:?}: a positive number with s, m, h, d or w (30m, 1h, 7d)"
        ))),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Splits `NAME=TYPE:VALUE`; TYPE is string, int or date.
fn name_type_value<'a>(text: &'a str, what: &str) -> Result<(&'a str, &'a str, &'a str), CliError> {
    let bad = |why: &str| {
        CliError::usage(format!(
            "bad {what} {text:?}: {why}; write NAME=TYPE:VALUE with TYPE string, int or date (Title=string:Minutes)"
        ))
    };
    let (name, rest) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (ty, value) = rest
        .split_once(':')
        .ok_or_else(|| bad("no ':' after the type"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("a name is ASCII letters and digits"));
    }
    if !matches!(ty, "string" | "int" | "date") {
        return Err(bad("unknown type"));
    }
    Ok((name, ty, value))
}

/// The `<attributes>` document of `--attr` items (empty for none).
pub fn attributes_xml(attrs: &[String]) -> Result<String, CliError> {
    if attrs.is_empty() {
        return Ok(String::new());
    }
    let mut xml = String::from("<attributes>");
    for a in attrs {
        let (name, ty, value) = name_type_value(a, "--attr")?;
        xml.push_str(&format!(
            "<attribute name=\"{name}\" type=\"{ty}\">{}</attribute>",
            xml_escape(value)
        ));
    }
    xml.push_str("</attributes>");
    Ok(xml)
}

/// The `<peersearch>` document of `--where` items: every clause must hold (equality; string
/// values literal, their wildcards escaped).
pub fn search_xml(wheres: &[String]) -> Result<String, CliError> {
    if wheres.is_empty() {
        return Err(CliError::usage("give --xml FILE or at least one --where"));
    }
    let mut clauses = Vec::new();
    for w in wheres {
        let (name, ty, value) = name_type_value(w, "--where")?;
        let value = if ty == "string" {
            value
                .chars()
                .flat_map(|c| match c {
                    '\\' | '*' | '?' => vec!['\\', c],
                    c => vec![c],
                })
                .collect()
        } else {
            value.to_owned()
        };
        clauses.push(format!(
            "<clause attrib=\"{name}\" type=\"{ty}\" compare=\"equal\">{}</clause>",
            xml_escape(&value)
        ));
    }
    let body = if clauses.len() == 1 {
        clauses.remove(0)
    } else {
        format!("<and>{}</and>", clauses.concat())
    };
    Ok(format!(
        "<peersearch xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">{body}</peersearch>"
    ))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| CliError::io("reading standard input", &e))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| CliError::io(format!("reading {}", path.display()), &e))
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|_| CliError::usage(format!("{} is not UTF-8 text", path.display())))
}

impl Fields {
    /// The attributes given, if any.
    fn attributes(&self) -> Result<Option<String>, CliError> {
        match &self.attributes_xml {
            Some(p) => Ok(Some(read_text(p)?.trim().to_owned())),
            None if self.attrs.is_empty() => Ok(None),
            None => attributes_xml(&self.attrs).map(Some),
        }
    }

    /// The data given, if any.
    fn data(&self) -> Result<Option<Vec<u8>>, CliError> {
        match (&self.data, &self.file) {
            (Some(t), _) => Ok(Some(t.clone().into_bytes())),
            (None, Some(p)) => read_bytes(p).map(Some),
            (None, None) => Ok(None),
        }
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A record as one JSON object: data as text when it is UTF-8, else base64.
pub fn record_json(r: &Record) -> serde_json::Value {
    let (data, encoding) = match std::str::from_utf8(&r.data) {
        Ok(t) => (t.to_owned(), "utf-8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&r.data),
            "base64",
        ),
    };
    json!({
        "id": guid_text(&r.id),
        "type": guid_text(&r.record_type),
        "version": r.version,
        "creator": r.creator,
        "modifier": r.modifier,
        "created": rfc3339(r.created),
        "modified": rfc3339(r.modified),
        "expires": rfc3339(r.expires),
        "attributes": r.attributes,
        "data": data,
        "data_encoding": encoding,
    })
}

fn print_record(r: &Record, as_json: bool) {
    if as_json {
        println!("{}", record_json(r));
        return;
    }
    println!("id:         {}", guid_text(&r.id));
    println!("type:       {}", guid_text(&r.record_type));
    println!("version:    {}", r.version);
    println!("creator:    {}", r.creator);
    println!("modifier:   {}", r.modifier);
    println!("created:    {}", rfc3339(r.created));
    println!("modified:   {}", rfc3339(r.modified));
    println!("expires:    {}", rfc3339(r.expires));
    println!("attributes: {}", r.attributes);
    match std::str::from_utf8(&r.data) {
        Ok(t) => println!("data:       {t}"),
        Err(_) => println!(
            "data (base64): {}",
            base64::engine::general_purpose::STANDARD.encode(&r.data)
        ),
    }
}

fn print_records(records: &[Record], as_json: bool) {
    for r in records {
        if as_json {
            println!("{}", record_json(r));
        } else {
            let preview: String = match std::str::from_utf8(&r.data) {
                Ok(t) => t
                    .chars()
                    .take(40)
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
                Err(_) => format!("<{} bytes>", r.data.len()),
            };
            println!(
                "{}  v{}  {}  {}",
                guid_text(&r.id),
                r.version,
                rfc3339(r.modified),
                preview
            );
        }
    }
}

/// Brings the group online and waits (bounded) until it has a connection and may change
/// records; returns a subscription to its record events.
async fn go_online(
    h: &GroupHandle,
    online: &Online,
) -> Result<peergroup_core::EventSubscription, CliError> {
    let sub = h.subscribe(EventFilter::kinds(&[EventKind::RecordChanged]))?;
    h.connect_by_address(&online.addresses).await?;
    tracing::info!(group = %h.group_name(), addresses = ?online.addresses, "connecting");
    let wait = Duration::from_secs(online.wait);
    let status = wait_for_member(h, wait).await?;
    tracing::info!(status, "online");
    if status & STATUS_HAS_CONNECTIONS == 0 {
        eprintln!(
            "note: no member connected within {}s; the change is stored and floods when the group next connects",
            online.wait
        );
    }
    Ok(sub)
}

/// Runs `change`, retrying while the group has not synchronised yet (bounded by `--wait`).
async fn with_ready<T>(
    online: &Online,
    mut change: impl FnMut() -> Result<T, CoreError>,
) -> Result<T, CliError> {
    let deadline = Instant::now() + Duration::from_secs(online.wait);
    loop {
        match change() {
            Err(CoreError::NotReady) if !online.offline && Instant::now() < deadline => {
                tracing::debug!("not synchronised yet: retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map_err(CliError::from),
        }
    }
}

/// After a change: waits (bounded) until the running group reported record `id`, and a
/// grace for its neighbours to be sent it.
async fn settle(h: &GroupHandle, sub: Option<peergroup_core::EventSubscription>, id: [u8; 16]) {
    let Some(mut sub) = sub else { return };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(item) = sub.next().await {
            if let EventItem::Event(Event::RecordChanged { id: got, .. }) = item {
                if got == id {
                    break;
                }
            }
        }
    })
    .await;
    if h.status().unwrap_or(0) & STATUS_HAS_CONNECTIONS != 0 {
        tokio::time::sleep(FLOOD_GRACE).await;
    }
}

/// Runs a record subcommand.
pub fn run(
    store: &peergroup_core::identity::IdentityStore,
    who: &As,
    cmd: RecordCommand,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let group = match &cmd {
            RecordCommand::Add { group, .. }
            | RecordCommand::Get { group, .. }
            | RecordCommand::List { group, .. }
            | RecordCommand::Search { group, .. }
            | RecordCommand::Update { group, .. }
            | RecordCommand::Delete { group, .. } => group,
        };
        let h = ctx.open(group)?;
        let result = run_open(&h, cmd, as_json).await;
        close_after(h, result).await
    })
}

async fn run_open(h: &GroupHandle, cmd: RecordCommand, as_json: bool) -> Result<(), CliError> {
    match cmd {
        RecordCommand::Add { body, online, .. } => {
            let new = NewRecord {
                record_type: parse_guid(&body.record_type)?,
                attributes: body.fields.attributes()?.unwrap_or_default(),
                expires_ms: now_ms().saturating_add(parse_duration_ms(&body.expires)?),
                data: body.fields.data()?.unwrap_or_default(),
            };
            let sub = if online.offline {
                None
            } else {
                Some(go_online(h, &online).await?)
            };
            let id = with_ready(&online, || h.add_record(new.clone())).await?;
            settle(h, sub, id).await;
            if as_json {
                println!("{}", json!({"id": guid_text(&id)}));
            } else {
                println!("{}", guid_text(&id));
            }
        }
        RecordCommand::Get { id, out, .. } => {
            let r = h.get_record(&parse_guid(&id)?)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &r.data)
                        .map_err(|e| CliError::io(format!("writing {}", path.display()), &e))?;
                    if as_json {
                        println!("{}", record_json(&r));
                    } else {
                        println!("wrote {} bytes to {}", r.data.len(), path.display());
                    }
                }
                None => print_record(&r, as_json),
            }
        }
        RecordCommand::List { record_type, .. } => {
            let t = record_type.as_deref().map(parse_guid).transpose()?;
            print_records(&h.enum_records(t)?, as_json);
        }
        RecordCommand::Search { xml, wheres, .. } => {
            let criteria = match xml {
                Some(p) => read_text(&p)?,
                None => search_xml(&wheres)?,
            };
            print_records(&h.search_records(&criteria)?, as_json);
        }
        RecordCommand::Update {
            id, body, online, ..
        } => {
            let id = parse_guid(&id)?;
            let attributes = body.fields.attributes()?;
            let data = body.fields.data()?;
            let expires = body.expires.as_deref().map(parse_duration_ms).transpose()?;
            let sub = if online.offline {
                None
            } else {
                Some(go_online(h, &online).await?)
            };
            with_ready(&online, || {
                let old = h.get_record(&id)?;
                h.update_record(
                    &id,
                    attributes.as_deref().unwrap_or(&old.attributes),
                    expires.map_or(old.expires, |e| now_ms().saturating_add(e)),
                    data.clone().unwrap_or(old.data),
                )
            })
            .await?;
            settle(h, sub, id).await;
            let r = h.get_record(&id)?;
            if as_json {
                println!("{}", record_json(&r));
            } else {
                println!("{} now at version {}", guid_text(&id), r.version);
            }
        }
        RecordCommand::Delete { id, online, .. } => {
            let id = parse_guid(&id)?;
            let sub = if online.offline {
                None
            } else {
                Some(go_online(h, &online).await?)
            };
            with_ready(&online, || h.delete_record(&id)).await?;
            settle(h, sub, id).await;
            if as_json {
                println!("{}", json!({"deleted": guid_text(&id)}));
            } else {
                println!("deleted {}", guid_text(&id));
            }
        }
    }
    Ok(())
}

/// `db` subcommands.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Write this member's records to a file (PeerGroupExportDatabase); offline only.
    Export {
        /// Group peer name.
        group: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Load records from an export of this group and member (PeerGroupImportDatabase);
    /// offline only.
    Import {
        /// Group peer name.
        group: String,
        /// The export file.
        file: PathBuf,
    },
}

/// A progress bar for `db export|import` (drawn only on a terminal: indicatif hides it
/// otherwise): the stage, records done of the stage's total, and the rate.
fn db_progress_bar(export: bool, file: &std::path::Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>9} {msg} [{bar:30}] {pos}/{len} records ({per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(format!(
        "{} {}",
        if export { "export to" } else { "import of" },
        file.display()
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Runs a `db` subcommand: offline, with a progress bar on a terminal, then the record count.
pub fn db(
    store: &peergroup_core::identity::IdentityStore,
    who: &As,
    cmd: DbCommand,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let (group, file, export) = match &cmd {
            DbCommand::Export { group, file } => (group, file, true),
            DbCommand::Import { group, file } => (group, file, false),
        };
        let h = ctx.open(group)?;
        let bar = db_progress_bar(export, file);
        let report = |p: DatabaseProgress| {
            let stage = match p.stage {
                DatabaseStage::Reading => "reading",
                DatabaseStage::Writing => "writing",
                DatabaseStage::Verifying => "verifying",
                DatabaseStage::Storing => "storing",
            };
            bar.set_prefix(stage);
            if p.total > 0 {
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
        };
        let result = if export {
            h.export_database_with(file, report)
        } else {
            h.import_database_with(file, report)
        };
        bar.finish_and_clear();
        let n = close_after(h, result).await?;
        let verb = if export { "exported" } else { "imported" };
        tracing::info!(records = n, file = %file.display(), "{verb}");
        if as_json {
            println!("{}", json!({ verb: n, "file": file.display().to_string() }));
        } else if export {
            println!("exported {n} records to {}", file.display());
        } else {
            println!("imported {n} records from {}", file.display());
        }
        Ok(())
    })
}

/// `peergroup watch GROUP`.
#[derive(Args)]
pub struct WatchArgs {
    /// Group peer name.
    group: String,
    /// Addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address")]
    addresses: Vec<SocketAddr>,
    /// Only these kinds: status, property, record, neighbor, member, connection-failed,
    /// direct, data, auth-failed (repeatable).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Exit after printing this many events.
    #[arg(long)]
    count: Option<u64>,
}

fn kind(text: &str) -> Result<EventKind, CliError> {
    match text {
        "status" => Ok(EventKind::StatusChanged),
        "property" => Ok(EventKind::PropertyChanged),
        "record" => Ok(EventKind::RecordChanged),
        "neighbor" | "neighbour" => Ok(EventKind::NeighborConnection),
        "connection-failed" => Ok(EventKind::ConnectionFailed),
        "direct" => Ok(EventKind::DirectConnection),
        "data" => Ok(EventKind::IncomingData),
        "auth-failed" => Ok(EventKind::AuthenticationFailed),
        "member" => Ok(EventKind::MemberChanged),
        other => Err(CliError::usage(format!(
            "unknown event kind {other:?}: status, property, record, neighbor, member, \
             connection-failed, direct, data or auth-failed"
        ))),
    }
}

fn change_name(c: RecordChange) -> &'static str {
    match c {
        RecordChange::Added => "added",
        RecordChange::Updated => "updated",
        RecordChange::Deleted => "deleted",
        RecordChange::Expired => "expired",
    }
}

fn connection_json(event: &str, c: &peergroup_core::events::ConnectionChange) -> serde_json::Value {
    json!({
        "event": event,
        "status": match c.status {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
            ConnectionStatus::Failed => "failed",
        },
        "connection_id": c.connection_id,
        "node_id": c.node_id,
        "failed_reason": c.failed_reason,
    })
}

fn member_change_name(c: peergroup_core::members::MemberChange) -> &'static str {
    use peergroup_core::members::MemberChange;
    match c {
        MemberChange::Connected => "connected",
        MemberChange::Disconnected => "disconnected",
        MemberChange::Updated => "updated",
        MemberChange::Joined => "joined",
        MemberChange::Left => "left",
    }
}

/// One event as a JSON object.
pub fn event_json(item: &EventItem) -> serde_json::Value {
    match item {
        EventItem::Lagged(n) => json!({"event": "lagged", "lost": n}),
        EventItem::Event(e) => match e {
            Event::StatusChanged(s) => json!({"event": "status_changed", "status": s}),
            Event::PropertyChanged => json!({"event": "property_changed"}),
            Event::RecordChanged {
                change,
                record_type,
                id,
            } => json!({
                "event": "record_changed",
                "change": change_name(*change),
                "type": guid_text(record_type),
                "id": guid_text(id),
            }),
            Event::NeighborConnection(c) => connection_json("neighbor_connection", c),
            Event::DirectConnection(c) => connection_json("direct_connection", c),
            Event::IncomingData {
                connection_id,
                data_type,
                data,
            } => json!({
                "event": "incoming_data",
                "connection_id": connection_id,
                "type": guid_text(data_type),
                "bytes": data.len(),
            }),
            Event::ConnectionFailed(hr) => json!({
                "event": "connection_failed",
                "hresult": format!("0x{:08X}", *hr as u32),
                "name": peergroup_core::identity::hresult::name(*hr),
            }),
            Event::AuthenticationFailed(hr) => json!({
                "event": "authentication_failed",
                "hresult": format!("0x{:08X}", *hr as u32),
                "name": peergroup_core::identity::hresult::name(*hr),
            }),
            Event::MemberChanged { change, identity } => json!({
                "event": "member_changed",
                "change": member_change_name(*change),
                "identity": identity,
            }),
        },
    }
}

fn event_line(item: &EventItem) -> String {
    match item {
        EventItem::Lagged(n) => format!("lagged: {n} events lost"),
        EventItem::Event(e) => match e {
            Event::StatusChanged(s) => format!("status {s:#x}"),
            Event::PropertyChanged => "properties changed".to_owned(),
            Event::RecordChanged {
                change,
                record_type,
                id,
            } => format!(
                "record {} {} (type {})",
                change_name(*change),
                guid_text(id),
                guid_text(record_type)
            ),
            Event::NeighborConnection(c) => format!(
                "neighbour {:?}: connection {} node {:#x}",
                c.status, c.connection_id, c.node_id
            ),
            Event::DirectConnection(c) => format!(
                "direct connection {:?}: connection {} node {:#x}",
                c.status, c.connection_id, c.node_id
            ),
            Event::IncomingData {
                connection_id,
                data_type,
                data,
            } => format!(
                "data on connection {connection_id}: {} bytes of type {}",
                data.len(),
                guid_text(data_type)
            ),
            Event::ConnectionFailed(hr) => format!(
                "connection failed: {} (0x{:08X})",
                peergroup_core::identity::hresult::name(*hr).unwrap_or("HRESULT"),
                *hr as u32
            ),
            Event::AuthenticationFailed(hr) => format!(
                "password authentication failed: {} (0x{:08X})",
                peergroup_core::identity::hresult::name(*hr).unwrap_or("HRESULT"),
                *hr as u32
            ),
            Event::MemberChanged { change, identity } => {
                format!("member {} {identity}", member_change_name(*change))
            }
        },
    }
}

/// Connects a group and prints its events until Ctrl-C, end of standard input or `--count`.
pub fn watch(
    store: &peergroup_core::identity::IdentityStore,
    who: &As,
    args: WatchArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    let filter = if args.kinds.is_empty() {
        EventFilter::all()
    } else {
        EventFilter::kinds(
            &args
                .kinds
                .iter()
                .map(|k| kind(k))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    block_on_detached(async {
        let h = ctx.open(&args.group)?;
        let mut sub = h.subscribe(filter)?;
        h.connect_by_address(&args.addresses).await?;
        tracing::info!(group = %args.group, addresses = ?args.addresses, "watching");
        // End of standard input, read on a thread of its own so it never holds up the exit.
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = eof_tx.send(());
        });
        tokio::pin!(eof_rx);
        let mut printed = 0u64;
        loop {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            tokio::select! {
                item = sub.next() => {
                    let Some(item) = item else { break };
                    let line = if as_json {
                        event_json(&item).to_string()
                    } else {
                        event_line(&item)
                    };
                    // Nobody reads any more (a closed pipe): stop watching, as `head` would.
                    if writeln!(std::io::stdout(), "{line}").is_err() {
                        break;
                    }
                    printed += 1;
                }
                _ = &mut eof_rx => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        drop(sub);
        h.close().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trips() {
        let g = parse_guid(NOTE_TYPE).unwrap();
        assert_eq!(guid_text(&g), NOTE_TYPE);
        assert_eq!(
            parse_guid("8b5c2e1a-6f3d-4c7e-9a41-6e6f74657321").unwrap(),
            g
        );
        assert_eq!(g[0], 0x1A, "Data1 is little-endian");
        for bad in [
            "",
            "{}",
            "8B5C2E1A6F3D4C7E9A416E6F74657321",
            "{8B5C2E1A-6F3D-4C7E-9A41-6E6F7465732G}",
        ] {
            assert!(parse_guid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30m").unwrap(), 1_800_000);
        assert_eq!(parse_duration_ms("1d").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        for bad in ["", "0h", "-1h", "1y", "h", "99999999999999999w"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_and_search_documents_are_escaped() {
        let xml = attributes_xml(&["T=string:a<&>\"'".into(), "N=int:1".into()]).unwrap();
        assert_eq!(
            xml,
            "<attributes><attribute name=\"T\" type=\"string\">a&lt;&amp;&gt;&quot;&apos;</attribute>\
             <attribute name=\"N\" type=\"int\">1</attribute></attributes>"
        );
        assert_eq!(attributes_xml(&[]).unwrap(), "");
        let q = search_xml(&["T=string:a*?\\<".into()]).unwrap();
        assert!(q.contains(">a\\*\\?\\\\&lt;</clause>"), "{q}");
        assert!(!q.contains("<and>"));
        assert!(search_xml(&["A=int:1".into(), "B=int:2".into()])
            .unwrap()
            .contains("<and>"));
        assert!(search_xml(&[]).is_err());
        for bad in ["T", "T=string", "T=float:1", "=string:x", "a-b=string:x"] {
            assert!(attributes_xml(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
