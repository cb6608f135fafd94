//! `peergroup chat GROUP [--name NAME]`: a group chat on records, after the Windows SDK's
//! group chat sample.
//!
//! Each line said is a record of type [`CHAT_TYPE`]: the text (UTF-8) as its data and the
//! author's chat name in an `Author` string attribute, so `record search --where
//! Author=string:NAME` finds a member's lines. Lines are shown as they arrive
//! (`PEER_GROUP_EVENT_RECORD_CHANGED`); the lines still live (a day, [`LINE_LIFETIME_MS`])
//! are printed at start, oldest first.
//!
//! [`Chat`] is the whole chat without a terminal: lines in ([`Chat::input`]), display lines
//! out ([`Chat::start`], [`Chat::input`], [`Chat::next`]); [`chat`] drives it from standard
//! input and output.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;
use peergroup_core::identity::IdentityStore;
use peergroup_core::io::{RecordChange, STATUS_HAS_CONNECTIONS};
use peergroup_core::members::{MemberChange, PEER_MEMBER_PRESENT};
use peergroup_core::records::record::Record;
use peergroup_core::{
    CoreError, Event, EventFilter, EventItem, EventKind, EventSubscription, GroupHandle, NewRecord,
};

use crate::context::{block_on_detached, wait_for_member, As, Context};
use crate::output::CliError;
use crate::record_cmd::{attributes_xml, parse_guid};

/// The record type of chat lines: "peergroup chat".
pub const CHAT_TYPE: &str = "{8B5C2E1A-6F3D-4C7E-9A41-636861742121}";

/// How long a chat line lives: one day.
pub const LINE_LIFETIME_MS: i64 = 86_400_000;

/// The attribute that names a line's author.
const AUTHOR: &str = "Author";

/// The longest wait for the group to take a line said (its own record event).
const SAY_BOUND: Duration = Duration::from_secs(2);

/// The longest wait at start for the other members' presence to arrive.
const PRESENCE_WAIT: Duration = Duration::from_secs(5);

/// What the grace before closing lasts, so neighbours are sent the last lines.
const FLOOD_GRACE: Duration = Duration::from_millis(500);

/// `peergroup chat GROUP`.
#[derive(Args)]
pub struct ChatArgs {
    /// Group peer name.
    group: String,
    /// The name shown with your lines (default: the identity's friendly name).
    #[arg(long)]
    name: Option<String>,
    /// Addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address")]
    addresses: Vec<SocketAddr>,
    /// Longest wait, in seconds, for a first member before the history is printed.
    #[arg(long, default_value_t = 5)]
    wait: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `HH:MM:SS` (UTC) of a time in ms since the Unix epoch.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Text safe to print on a terminal: control characters (escape sequences) replaced.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `Author` attribute of an attribute document, if it has one.
fn author_of(attributes: &str) -> Option<String> {
    let start = attributes.find(&format!("name=\"{AUTHOR}\""))?;
    let rest = &attributes[start..];
    let open = rest.find('>')? + 1;
    let len = rest[open..].find("</attribute>")?;
    Some(xml_unescape(&rest[open..open + len]))
}

/// A short name for a member that has not said anything yet: its peer name's classifier,
/// else the start of its authority.
fn short_name(peer_name: &str) -> String {
    match peer_name.split_once('.') {
        Some((_, c)) if !c.is_empty() => c.to_owned(),
        _ => peer_name.chars().take(8).collect(),
    }
}

/// Who is in the chat: the group's members with a live presence record (other than this
/// one), told by `PEER_GROUP_EVENT_MEMBER_CHANGED` as they come and go; named by the `Author`
/// of their lines once they said something.
#[derive(Default)]
struct Roster {
    /// Chat names by peer name, from the lines seen.
    names: HashMap<String, String>,
    /// The members present now, by peer name.
    present: HashSet<String>,
}

impl Roster {
    fn name(&self, peer_name: &str) -> String {
        self.names
            .get(peer_name)
            .cloned()
            .unwrap_or_else(|| short_name(peer_name))
    }

    /// Notes a line's author.
    fn learn(&mut self, record: &Record) {
        if let Some(a) = author_of(&record.attributes) {
            self.names.insert(record.creator.clone(), printable(&a));
        }
    }

    /// The members present now (from the member list), with the lines for those new here.
    fn refresh(&mut self, h: &GroupHandle) -> Result<Vec<String>, CliError> {
        let me = h.identity().to_string();
        let mut lines = Vec::new();
        for m in h.members(PEER_MEMBER_PRESENT, None)? {
            if m.identity != me && self.present.insert(m.identity.clone()) {
                lines.push(format!("* {} is here", self.name(&m.identity)));
            }
        }
        Ok(lines)
    }

    /// A member coming or going, from a member-changed event: the line to show, if any.
    fn presence(&mut self, h: &GroupHandle, event: &Event) -> Option<String> {
        let Event::MemberChanged { change, identity } = event else {
            return None;
        };
        if *identity == h.identity().to_string() {
            return None;
        }
        match change {
            MemberChange::Connected => self
                .present
                .insert(identity.clone())
                .then(|| format!("* {} is here", self.name(identity))),
            MemberChange::Disconnected | MemberChange::Left => self
                .present
                .remove(identity)
                .then(|| format!("* {} left", self.name(identity))),
            MemberChange::Updated | MemberChange::Joined => None,
        }
    }

    /// The `/who` lines.
    fn who(&self) -> Vec<String> {
        let mut here: Vec<String> = self
            .present
            .iter()
            .map(|m| format!("*   {} ({m})", self.name(m)))
            .collect();
        here.sort();
        if here.is_empty() {
            vec!["* nobody else is here".to_owned()]
        } else {
            let mut out = vec!["* here:".to_owned()];
            out.extend(here);
            out
        }
    }
}

/// A group chat on an open group: lines in, display lines out.
pub struct Chat {
    h: GroupHandle,
    name: String,
    chat_type: [u8; 16],
    sub: EventSubscription,
    shown: HashSet<[u8; 16]>,
    roster: Roster,
    wait: Duration,
}

/// What [`Chat::input`] made of a line.
pub enum Input {
    /// Lines to show.
    Show(Vec<String>),
    /// The user asked to leave.
    Quit,
}

impl Chat {
    /// Joins the chat: brings the group online (at `addresses` too), waits at most `wait`
    /// for a first member, and returns the chat with the lines to show first: the history,
    /// oldest first.
    pub async fn start(
        h: GroupHandle,
        name: String,
        addresses: &[SocketAddr],
        wait: Duration,
    ) -> Result<(Chat, Vec<String>), CliError> {
        let chat_type = parse_guid(CHAT_TYPE)?;
        let sub = match Self::online(&h, addresses, wait).await {
            Ok(sub) => sub,
            Err(e) => {
                let _ = h.close().await;
                return Err(e);
            }
        };
        let mut chat = Chat {
            h,
            name,
            chat_type,
            sub,
            shown: HashSet::new(),
            roster: Roster::default(),
            wait,
        };
        match chat.intro() {
            Ok(lines) => Ok((chat, lines)),
            Err(e) => {
                let _ = chat.close().await;
                Err(e)
            }
        }
    }

    /// Subscribes, connects and waits (bounded) for a first member.
    async fn online(
        h: &GroupHandle,
        addresses: &[SocketAddr],
        wait: Duration,
    ) -> Result<EventSubscription, CliError> {
        let sub = h.subscribe(EventFilter::kinds(&[
            EventKind::RecordChanged,
            EventKind::MemberChanged,
        ]))?;
        h.connect_by_address(addresses).await?;
        tracing::info!(group = %h.group_name(), ?addresses, "chat: connecting");
        wait_for_member(h, wait).await?;
        // Presence records come with the first synchronisation: wait a little (bounded; a
        // group may have presence turned off) so the roster starts with who is here.
        let me = h.identity().to_string();
        let deadline = Instant::now() + wait.min(PRESENCE_WAIT);
        while Instant::now() < deadline {
            let others = h.members(PEER_MEMBER_PRESENT, None)?;
            if others.iter().any(|m| m.identity != me) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(sub)
    }

    /// The first lines: who and where, the history, who is here.
    fn intro(&mut self) -> Result<Vec<String>, CliError> {
        let group = self.h.properties()?;
        let title = if group.friendly_name.is_empty() {
            group.group_peer_name.clone()
        } else {
            group.friendly_name.clone()
        };
        let mut lines = vec![format!(
            "* {} in {} — /who lists who is connected, /quit leaves",
            printable(&self.name),
            printable(&title)
        )];
        match self.h.enum_records(Some(self.chat_type)) {
            Ok(mut history) => {
                history.sort_by_key(|r| (r.created, r.id));
                for r in &history {
                    lines.push(self.show(r));
                }
            }
            Err(CoreError::NotReady) => lines.push(
                "* not synchronised yet: earlier lines appear once a member is reached".to_owned(),
            ),
            Err(e) => return Err(e.into()),
        }
        lines.extend(self.roster.refresh(&self.h)?);
        Ok(lines)
    }

    /// A record as a display line (and noted as shown).
    fn show(&mut self, r: &Record) -> String {
        self.shown.insert(r.id);
        self.roster.learn(r);
        let text = String::from_utf8_lossy(&r.data);
        format!(
            "[{}] {}: {}",
            clock(r.created),
            self.roster.name(&r.creator),
            printable(&text)
        )
    }

    /// The lines an event gives.
    fn on_event(&mut self, item: EventItem) -> Vec<String> {
        match item {
            EventItem::Lagged(n) => {
                vec![format!(
                    "* {n} events were missed: /quit and rejoin to see every line"
                )]
            }
            EventItem::Event(Event::RecordChanged {
                change: RecordChange::Added | RecordChange::Updated,
                record_type,
                id,
            }) if record_type == self.chat_type && !self.shown.contains(&id) => {
                match self.h.get_record(&id) {
                    Ok(r) => vec![self.show(&r)],
                    Err(_) => Vec::new(),
                }
            }
            EventItem::Event(e) => self.roster.presence(&self.h, &e).into_iter().collect(),
        }
    }

    /// Takes a line typed: says it (a record), or runs a command (`/who`, `/quit`,
    /// `/help`). The lines to show include the line said, once the group has taken it.
    pub async fn input(&mut self, line: &str) -> Result<Input, CliError> {
        let line = line.trim_end_matches(['\r', '\n']);
        match line.trim() {
            "" => return Ok(Input::Show(Vec::new())),
            "/quit" | "/exit" => return Ok(Input::Quit),
            "/who" => return Ok(Input::Show(self.roster.who())),
            "/help" => {
                return Ok(Input::Show(vec![
                    "* type a line to say it; /who lists who is connected; /quit leaves".into(),
                ]))
            }
            t if t.starts_with('/') => {
                return Ok(Input::Show(vec![format!(
                    "* unknown command {t}: /who, /quit or /help"
                )]))
            }
            _ => {}
        }
        let new = NewRecord {
            record_type: self.chat_type,
            attributes: attributes_xml(&[format!("{AUTHOR}=string:{}", self.name)])?,
            expires_ms: now_ms().saturating_add(LINE_LIFETIME_MS),
            data: line.as_bytes().to_vec(),
        };
        // A member that joined but never synchronised may not add records yet: retry while
        // it may still synchronise.
        let deadline = Instant::now() + self.wait;
        let id = loop {
            match self.h.add_record(new.clone()) {
                Err(CoreError::NotReady) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(CoreError::NotReady) => {
                    return Ok(Input::Show(vec![
                        "* not synchronised with the group yet: the line was not sent; try again once a member is here".into(),
                    ]))
                }
                other => break other?,
            }
        };
        // Show what arrives until the group reports the line (or the bound passes).
        let mut lines = Vec::new();
        let bound = tokio::time::Instant::now() + SAY_BOUND;
        while !self.shown.contains(&id) {
            match tokio::time::timeout_at(bound, self.sub.next()).await {
                Ok(Some(item)) => lines.extend(self.on_event(item)),
                _ => break,
            }
        }
        if !self.shown.contains(&id) {
            let r = self.h.get_record(&id)?;
            lines.push(self.show(&r));
        }
        Ok(Input::Show(lines))
    }

    /// Waits for what happens next in the group; the lines it gives (often one, maybe none).
    /// `None` once the group is closed. Cancel-safe: nothing is lost when the future is
    /// dropped.
    pub async fn next(&mut self) -> Option<Vec<String>> {
        let item = self.sub.next().await?;
        Some(self.on_event(item))
    }

    /// Leaves: a short grace for the last lines to reach the neighbours, then the group
    /// closes.
    pub async fn close(self) -> Result<(), CliError> {
        if self.h.status().unwrap_or(0) & STATUS_HAS_CONNECTIONS != 0 {
            tokio::time::sleep(FLOOD_GRACE).await;
        }
        drop(self.sub);
        self.h.close().await?;
        Ok(())
    }
}

fn print_lines(lines: &[String]) -> bool {
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

/// Runs the chat on standard input and output until `/quit`, end of input or Ctrl-C.
pub fn chat(store: &IdentityStore, who: &As, args: ChatArgs) -> Result<(), CliError> {
    let mut ctx = Context::new(store, who)?;
    let me = ctx.resolve_identity()?;
    let name = match args.name {
        Some(n) => n,
        None => match store.friendly_name(&me)? {
            n if n.is_empty() => short_name(&me.to_string()),
            n => n,
        },
    };
    if name.trim().is_empty() {
        return Err(CliError::usage("--name must not be empty"));
    }
    block_on_detached(async {
        let h = ctx.open(&args.group)?;
        let (mut chat, history) =
            Chat::start(h, name, &args.addresses, Duration::from_secs(args.wait)).await?;
        print_lines(&history);
        // Standard input on a thread of its own, a line at a time.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let mut failure = None;
        loop {
            tokio::select! {
                line = rx.recv() => {
                    let Some(line) = line else { break };
                    match chat.input(&line).await {
                        Ok(Input::Show(lines)) => {
                            if !print_lines(&lines) {
                                break;
                            }
                        }
                        Ok(Input::Quit) => break,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                lines = chat.next() => {
                    let Some(lines) = lines else { break };
                    if !print_lines(&lines) {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        let closed = chat.close().await;
        match failure {
            Some(e) => Err(e),
            None => closed,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergroup_core::io::STATUS_LISTENING;
    use peergroup_core::properties::GroupProperties;
    use peergroup_core::Peergroup;

    #[test]
    fn authors_and_text_are_read_back_safely() {
        let xml = attributes_xml(&[format!("{AUTHOR}=string:Zoë <&> \"x\"")]).unwrap();
        assert_eq!(author_of(&xml).as_deref(), Some("Zoë <&> \"x\""));
        assert_eq!(author_of(""), None);
        assert_eq!(printable("a\u{1b}[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(short_name("0123456789abcdef.bob"), "bob");
        assert_eq!(short_name("0123456789abcdef."), "01234567");
    }

    const WAIT: Duration = Duration::from_secs(30);

    /// Lines from `chat` until one contains `needle` (bounded by [`WAIT`]); all of them.
    async fn until(chat: &mut Chat, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(lines) = chat.next().await {
                let hit = lines.iter().any(|l| l.contains(needle));
                seen.extend(lines);
                if hit {
                    return;
                }
            }
        })
        .await;
        assert!(found.is_ok(), "{needle:?} never shown; saw {seen:?}");
        seen
    }

    fn said(input: Input) -> Vec<String> {
        match input {
            Input::Show(lines) => lines,
            Input::Quit => panic!("not a quit"),
        }
    }

    /// Two members on loopback, each in a home of its own, chat: a line said at one is shown
    /// at the other with its author's name; a member joining later sees the history in order;
    /// members coming and going are shown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_members_exchange_lines_and_history_is_shown() {
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store_a = IdentityStore::open(home_a.path()).unwrap();
        let store_b = IdentityStore::open(home_b.path()).unwrap();
        let alice = store_a.create(Some("alice"), Some("Alice"), None).unwrap();
        let bob = store_b.create(Some("bob"), Some("Bob"), None).unwrap();
        let pa = Peergroup::new(store_a, Some(listen));
        let pb = Peergroup::new(store_b.clone(), Some(listen));
        let group = pa
            .create_group(GroupProperties {
                classifier: "chat".into(),
                friendly_name: "Chat room".into(),
                creator_peer_name: alice.to_string(),
                ..Default::default()
            })
            .unwrap();
        group.connect().await.unwrap();
        group.wait_status(STATUS_LISTENING, WAIT).await.unwrap();
        let invitation = group
            .create_invitation(&store_b.public_xml(&bob).unwrap(), None, &[])
            .unwrap();
        let joined = pb.join(Some(&bob), &invitation).unwrap();
        let group_name = group.group_name().to_string();

        let (mut a, intro) = Chat::start(group, "Alice".into(), &[], Duration::ZERO)
            .await
            .unwrap();
        assert!(intro[0].contains("Alice in Chat room"), "{intro:?}");
        let (mut b, _) = Chat::start(joined, "Bob".into(), &[], WAIT).await.unwrap();
        until(&mut a, "* bob is here").await;

        let mine = said(a.input("hello, Bob\n").await.unwrap());
        assert!(
            mine.iter().any(|l| l.ends_with("] Alice: hello, Bob")),
            "{mine:?}"
        );
        until(&mut b, "Alice: hello, Bob").await;
        let mine = said(b.input("hi Alice <3").await.unwrap());
        assert!(
            mine.iter().any(|l| l.ends_with("] Bob: hi Alice <3")),
            "{mine:?}"
        );
        until(&mut a, "Bob: hi Alice <3").await;

        // Commands are not said.
        let who = said(a.input("/who").await.unwrap());
        assert!(
            who.iter()
                .any(|l| l.contains("Bob (") && l.contains(&bob.to_string())),
            "{who:?}"
        );
        assert!(matches!(a.input("/quit").await.unwrap(), Input::Quit));

        // Bob leaves (Alice sees it) and comes back: the history, oldest first.
        b.close().await.unwrap();
        until(&mut a, "* Bob left").await;
        let again = pb
            .open_group(Some(&bob), &group_name.parse().unwrap())
            .unwrap();
        let (b, history) = Chat::start(again, "Bob".into(), &[], WAIT).await.unwrap();
        let hello = history
            .iter()
            .position(|l| l.ends_with("Alice: hello, Bob"));
        let hi = history.iter().position(|l| l.ends_with("Bob: hi Alice <3"));
        assert!(hello.is_some() && hi > hello, "{history:?}");
        let all = a.h.enum_records(Some(a.chat_type)).unwrap();
        assert_eq!(all.len(), 2, "commands made no records");
        assert!(all
            .iter()
            .any(|r| author_of(&r.attributes).as_deref() == Some("Bob")));
        b.close().await.unwrap();
        a.close().await.unwrap();
    }
}
