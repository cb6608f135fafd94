//! What a member publishes about itself, as part of the deterministic machine: its member
//! data and its presence, when to publish them, refresh them and delete them.
//!
//! The machine calls [`MemberDuties`] at its points of change (it listens, it ticks, the
//! application acts, properties change, it closes); each call returns the records it made,
//! already signed (by the host's [`Publisher`]) and stored (through the [`RecordPort`]), which
//! the machine floods and reports like the application's own records.

use crate::io::Millis;
use crate::port::{Publisher, RecordPort};
use crate::properties::{GroupProperties, PEER_DISABLE_PRESENCE, PEER_MEMBER_DATA_OPTIONAL};
use crate::records::record::{derive_id, Record};
use crate::rng::Rng;

use super::{member_data_chain, Presence, MEMBER_DATA_TYPE, PRESENCE_TYPE};

/// The group properties that rule publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSettings {
    /// `ulPresenceLifetime`, in ms.
    pub presence_lifetime_ms: i64,
    /// `ulMemberDataLifetime`, in ms.
    pub member_data_lifetime_ms: i64,
    /// `PEER_DISABLE_PRESENCE`.
    pub disable_presence: bool,
    /// `PEER_MEMBER_DATA_OPTIONAL`.
    pub data_optional: bool,
}

impl MemberSettings {
    /// The settings the properties give (lifetimes of 0 mean the defaults).
    pub fn from_properties(p: &GroupProperties) -> Self {
        let secs = |v: u32, default: u32| i64::from(if v == 0 { default } else { v }) * 1000;
        MemberSettings {
            presence_lifetime_ms: secs(
                p.presence_lifetime,
                crate::properties::DEFAULT_PRESENCE_LIFETIME,
            ),
            member_data_lifetime_ms: secs(
                p.member_data_lifetime,
                crate::properties::MAX_MEMBER_DATA_LIFETIME,
            ),
            disable_presence: p.flags & PEER_DISABLE_PRESENCE != 0,
            data_optional: p.flags & PEER_MEMBER_DATA_OPTIONAL != 0,
        }
    }
}

impl Default for MemberSettings {
    fn default() -> Self {
        Self::from_properties(&GroupProperties::default())
    }
}

/// One member's publishing state.
pub struct MemberDuties {
    publisher: Box<dyn Publisher>,
    settings: MemberSettings,
    me: String,
    node_id: u64,
    /// The member's own live records, once looked up in the database.
    presence: Option<Record>,
    member_data: Option<Record>,
    loaded: bool,
    /// Synchronised and listening in this session: presence is due.
    started: bool,
    /// The application acted (for `PEER_MEMBER_DATA_OPTIONAL`).
    acted: bool,
    addrs: Vec<std::net::SocketAddr>,
    /// When the next refresh is due, set after each round of duties.
    next: Option<Millis>,
    rng: Rng,
}

/// How long after a round that could not publish (a signing failure, a chain that ends
/// within the lifetime) the duties try again, rather than at once and forever.
pub const RETRY_MS: i64 = 60_000;

impl MemberDuties {
    /// Duties of member `me` on node `node_id`.
    pub fn new(
        publisher: Box<dyn Publisher>,
        settings: MemberSettings,
        me: &str,
        node_id: u64,
    ) -> Self {
        MemberDuties {
            publisher,
            settings,
            me: me.to_owned(),
            node_id,
            presence: None,
            member_data: None,
            loaded: false,
            started: false,
            acted: false,
            addrs: Vec::new(),
            next: None,
            rng: Rng::new(node_id ^ 0x6d65_6d62_6572_7321),
        }
    }

    /// When the next refresh is due (half of each lifetime), on the machine's clock.
    pub fn timeout(&self) -> Option<Millis> {
        if self.started {
            self.next
        } else {
            None
        }
    }

    /// The half-life of each own record, and never earlier than [`RETRY_MS`] from `now` when
    /// one is already past (what could not be refreshed now is retried later, not in a loop).
    fn schedule(&mut self, now: i64) {
        let half = |r: &Option<Record>, lifetime: i64| {
            r.as_ref()
                .filter(|r| !r.is_deleted())
                .map(|r| r.expires - lifetime / 2)
        };
        self.next = [
            half(&self.presence, self.settings.presence_lifetime_ms),
            half(&self.member_data, self.settings.member_data_lifetime_ms),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| if t <= now { now + RETRY_MS } else { t })
        .map(|t| t.max(0) as Millis);
    }

    /// The member synchronised and listens at `addrs`: publish (or update) member data and
    /// presence as the settings say.
    pub fn start(
        &mut self,
        now: i64,
        addrs: &[std::net::SocketAddr],
        port: &mut dyn RecordPort,
    ) -> Vec<Record> {
        self.load(port, now);
        self.started = true;
        self.addrs = addrs.to_vec();
        self.due(now)
    }

    /// Time passed: refresh what is at half-life.
    pub fn tick(&mut self, now: i64) -> Vec<Record> {
        if !self.started {
            return Vec::new();
        }
        self.due(now)
    }

    /// The application published something: with `PEER_MEMBER_DATA_OPTIONAL` the member data
    /// is now due.
    pub fn acted(&mut self, now: i64) -> Vec<Record> {
        if self.acted {
            return Vec::new();
        }
        self.acted = true;
        if !self.started {
            return Vec::new();
        }
        self.due(now)
    }

    /// New group properties: presence may be switched off (delete it) or on.
    pub fn settings(&mut self, settings: MemberSettings, now: i64) -> Vec<Record> {
        self.settings = settings;
        if !self.started {
            return Vec::new();
        }
        self.due(now)
    }

    /// A clean close: delete the presence.
    pub fn close(&mut self, now: i64) -> Vec<Record> {
        self.started = false;
        let out = self.delete_presence(now);
        self.loaded = false;
        out
    }

    /// Own records left from an earlier session (updated, not duplicated).
    fn load(&mut self, port: &mut dyn RecordPort, now: i64) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        let me = self.me.clone();
        let newest = |records: Vec<Record>, keep: &dyn Fn(&Record) -> bool| {
            records
                .into_iter()
                .filter(|r| r.creator == me && keep(r))
                .max_by_key(|r| r.modified)
        };
        self.presence = port
            .of_type(&PRESENCE_TYPE, now)
            .ok()
            .and_then(|rs| newest(rs, &|_| true));
        self.member_data = port.of_type(&MEMBER_DATA_TYPE, now).ok().and_then(|rs| {
            newest(rs, &|r| {
                member_data_chain(r).is_ok_and(|c| c.leaf().peer_name().to_string() == me)
            })
        });
    }

    fn due(&mut self, now: i64) -> Vec<Record> {
        let mut out = Vec::new();
        if !self.settings.data_optional || self.acted {
            out.extend(self.publish_member_data(now));
        }
        if self.settings.disable_presence {
            out.extend(self.delete_presence(now));
        } else {
            out.extend(self.publish_presence(now));
        }
        self.schedule(now);
        out
    }

    fn publish_member_data(&mut self, now: i64) -> Option<Record> {
        let chain = self.publisher.chain();
        let data = chain.to_bytes();
        let lifetime = self.settings.member_data_lifetime_ms;
        let limit = chain.leaf().not_after().saturating_mul(1000);
        let expires = now.saturating_add(lifetime).min(limit);
        if expires <= now {
            return None;
        }
        let record = match &self.member_data {
            Some(old) if old.data == data && old.expires - lifetime / 2 > now => return None,
            Some(old) if !old.is_expired(now) => {
                self.next_version(old, data, now, expires.max(old.expires))
            }
            _ => self.new_record(MEMBER_DATA_TYPE, data, now, expires),
        };
        let record = self.finish(record)?;
        self.member_data = Some(record.clone());
        Some(record)
    }

    fn publish_presence(&mut self, now: i64) -> Option<Record> {
        let lifetime = self.settings.presence_lifetime_ms;
        let mut presence = Presence {
            node_id: self.node_id,
            addrs: self
                .addrs
                .iter()
                .copied()
                .take(super::MAX_PRESENCE_ADDRS)
                .collect(),
            attributes: String::new(),
            changed: now,
        };
        let limit = self
            .publisher
            .chain()
            .leaf()
            .not_after()
            .saturating_mul(1000);
        let expires = now.saturating_add(lifetime).min(limit);
        if expires <= now {
            // Design: no presence for a member whose GMC ends within the lifetime.
            return None;
        }
        let record = match &self.presence {
            Some(old) if !old.is_expired(now) => {
                let before = Presence::decode(&old.data).ok();
                let same = before.as_ref().is_some_and(|b| !b.differs_from(&presence));
                if same && old.expires - lifetime / 2 > now {
                    return None;
                }
                let modified = now.max(old.modified);
                presence.changed = match before {
                    Some(b) if same => b.changed,
                    _ => modified,
                };
                self.next_version(old, presence.encode(), modified, expires.max(old.expires))
            }
            _ => self.new_record(PRESENCE_TYPE, presence.encode(), now, expires),
        };
        let record = self.finish(record)?;
        self.presence = Some(record.clone());
        Some(record)
    }

    fn delete_presence(&mut self, now: i64) -> Vec<Record> {
        let Some(old) = self.presence.take() else {
            return Vec::new();
        };
        if old.is_expired(now) {
            return Vec::new();
        }
        let tombstone = old.tombstone(&self.me, now.max(old.modified));
        self.finish(tombstone).into_iter().collect()
    }

    fn new_record(
        &mut self,
        record_type: [u8; 16],
        data: Vec<u8>,
        now: i64,
        expires: i64,
    ) -> Record {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        Record {
            record_type,
            id: derive_id(&self.me, &record_type, now, &nonce),
            id_nonce: nonce,
            version: 1,
            flags: 0,
            creator: self.me.clone(),
            modifier: self.me.clone(),
            attributes: String::new(),
            created: now,
            expires,
            modified: now,
            data,
            security: Vec::new(),
        }
    }

    fn next_version(&self, old: &Record, data: Vec<u8>, now: i64, expires: i64) -> Record {
        Record {
            version: old.version.saturating_add(1),
            modifier: self.me.clone(),
            modified: now.max(old.modified),
            expires,
            data,
            security: Vec::new(),
            ..old.clone()
        }
    }

    /// Signs a record; `None` (logged) when signing fails.
    fn finish(&self, mut record: Record) -> Option<Record> {
        match self.publisher.sign(&mut record) {
            Ok(()) => Some(record),
            Err(e) => {
                tracing::warn!(error = %e, "signing a member record");
                None
            }
        }
    }
}
