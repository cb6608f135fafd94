//! One group's local data for one identity, under the identity's group directory.
//!
//! ```text
//! identities/<identity>/groups/<group>/
//!   group.json        peer name and friendly name (written by the identity store)
//!   config.json       properties, whether we synchronised once, the format version
//!   grc.der           the group root certificate (the trust anchor)
//!   gmc.bin           this member's membership chain (GmcChain::to_bytes)
//!   root.p8           the group root key: the creator only, mode 0600
//!   peers.json        members and addresses last seen
//!   properties.bin    the latest signed properties (when any were set)
//!   bootstrap.json    addresses from the invitation
//! ```
//!
//! Every file is replaced atomically (temp file, fsync, rename), so a crash leaves the old
//! or the new version of each.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::identity::fsutil::{self, PRIVATE_FILE_MODE};
use crate::properties::GroupProperties;
use crate::wire::{PeerEntry, SignedProperties};

const CONFIG: &str = "config.json";
const GRC: &str = "grc.der";
const GMC: &str = "gmc.bin";
const ROOT_KEY: &str = "root.p8";
const PEERS: &str = "peers.json";
const PROPERTIES: &str = "properties.bin";
const BOOTSTRAP: &str = "bootstrap.json";
const FORMAT: u32 = 1;

/// What `config.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredConfig {
    /// Format version of this directory.
    pub format: u32,
    /// The group properties as last known.
    pub properties: GroupProperties,
    /// True once this member has synchronised with the group.
    pub synced: bool,
    /// True when this member relays for other members (opt-in, [`crate::relay`]).
    #[serde(default)]
    pub relay: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredPeer {
    member: String,
    node_id: u64,
    addrs: Vec<SocketAddr>,
    /// The entry's version (files written before versions have none: 0).
    #[serde(default)]
    version: u64,
}

/// The files of one group.
#[derive(Clone, Debug)]
pub struct GroupStore {
    dir: PathBuf,
}

impl GroupStore {
    /// The store in `dir` (which the identity store created).
    pub fn new(dir: PathBuf) -> Self {
        GroupStore { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when a group was fully written here (`config.json` is written last).
    pub fn exists(&self) -> bool {
        self.dir.join(CONFIG).exists()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        Ok(fsutil::write_atomic(
            &self.dir.join(name),
            bytes,
            PRIVATE_FILE_MODE,
        )?)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CoreError::StoreCorrupted {
                path: path.display().to_string(),
                why: e.to_string(),
            }),
        }
    }

    fn corrupted(&self, name: &str, why: impl ToString) -> CoreError {
        CoreError::StoreCorrupted {
            path: self.dir.join(name).display().to_string(),
            why: why.to_string(),
        }
    }

    /// Writes everything a new group needs; `config.json` goes last so a crash before it
    /// leaves no group that `open` would accept.
    pub fn initialize(
        &self,
        config: &StoredConfig,
        grc_der: &[u8],
        gmc_chain: &[u8],
        root_key: Option<&[u8]>,
        bootstrap: &[SocketAddr],
    ) -> Result<()> {
        self.write(GRC, grc_der)?;
        self.write(GMC, gmc_chain)?;
        if let Some(k) = root_key {
            self.write(ROOT_KEY, k)?;
        }
        self.save_bootstrap(bootstrap)?;
        self.save_config(config)
    }

    /// Replaces `config.json`.
    pub fn save_config(&self, config: &StoredConfig) -> Result<()> {
        let json = serde_json::to_vec_pretty(config).expect("plain data serialises");
        self.write(CONFIG, &json)
    }

    /// Reads `config.json`.
    pub fn load_config(&self) -> Result<StoredConfig> {
        let bytes = self
            .read(CONFIG)?
            .ok_or_else(|| self.corrupted(CONFIG, "missing"))?;
        let config: StoredConfig =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupted(CONFIG, e))?;
        if config.format != FORMAT {
            return Err(self.corrupted(CONFIG, format!("unknown format {}", config.format)));
        }
        Ok(config)
    }

    /// The group root certificate.
    pub fn load_grc(&self) -> Result<Vec<u8>> {
        self.read(GRC)?
            .ok_or_else(|| self.corrupted(GRC, "missing"))
    }

    /// This member's membership chain.
    pub fn load_gmc(&self) -> Result<Vec<u8>> {
        self.read(GMC)?
            .ok_or_else(|| self.corrupted(GMC, "missing"))
    }

    /// Replaces this member's membership chain (new credentials).
    pub fn save_gmc(&self, chain: &[u8]) -> Result<()> {
        self.write(GMC, chain)
    }

    /// The group root key, held by the creator only.
    pub fn load_root_key(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        Ok(self.read(ROOT_KEY)?.map(zeroize::Zeroizing::new))
    }

    /// Removes the group root key, if held (a configuration import of a non-owner over an
    /// owner's files).
    pub fn remove_root_key(&self) -> Result<()> {
        let path = self.dir.join(ROOT_KEY);
        match fs::remove_file(&path) {
            Ok(()) => Ok(fsutil::fsync_dir(&self.dir)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.corrupted(ROOT_KEY, e)),
        }
    }

    /// Members and addresses last seen.
    pub fn load_peers(&self) -> Result<Vec<PeerEntry>> {
        let Some(bytes) = self.read(PEERS)? else {
            return Ok(Vec::new());
        };
        let peers: Vec<StoredPeer> =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupted(PEERS, e))?;
        Ok(peers
            .into_iter()
            .map(|p| PeerEntry {
                member: p.member,
                node_id: p.node_id,
                addrs: p.addrs,
                // Relays are where the member was reachable then: asked again, not stored.
                relays: Vec::new(),
                public: false,
                version: p.version,
            })
            .collect())
    }

    /// Replaces the members and addresses last seen.
    pub fn save_peers(&self, peers: &[PeerEntry]) -> Result<()> {
        let stored: Vec<StoredPeer> = peers
            .iter()
            .map(|p| StoredPeer {
                member: p.member.clone(),
                node_id: p.node_id,
                addrs: p.addrs.clone(),
                version: p.version,
            })
            .collect();
        self.write(
            PEERS,
            &serde_json::to_vec(&stored).expect("plain data serialises"),
        )
    }

    /// Addresses from the invitation.
    pub fn load_bootstrap(&self) -> Result<Vec<SocketAddr>> {
        let Some(bytes) = self.read(BOOTSTRAP)? else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&bytes).map_err(|e| self.corrupted(BOOTSTRAP, e))
    }

    /// Replaces the invitation's addresses.
    pub fn save_bootstrap(&self, addrs: &[SocketAddr]) -> Result<()> {
        self.write(
            BOOTSTRAP,
            &serde_json::to_vec(addrs).expect("plain data serialises"),
        )
    }

    /// The latest signed properties.
    pub fn load_signed_properties(&self) -> Result<Option<SignedProperties>> {
        let Some(bytes) = self.read(PROPERTIES)? else {
            return Ok(None);
        };
        match crate::wire::Message::decode(crate::wire::KIND_PROPERTIES, &bytes) {
            Ok(crate::wire::Message::Properties(p)) => Ok(Some(p)),
            _ => Err(self.corrupted(PROPERTIES, "does not decode")),
        }
    }

    /// Replaces the signed properties.
    pub fn save_signed_properties(&self, props: &SignedProperties) -> Result<()> {
        let (_, bytes) = crate::wire::Message::Properties(props.clone()).encode();
        self.write(PROPERTIES, &bytes)
    }
}
