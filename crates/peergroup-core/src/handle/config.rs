//! `PeerGroupExportConfig` and `PeerGroupImportConfig`: moving one identity's membership of a
//! group to another machine (the document: [`crate::config_export`]).
//!
//! Import checks everything before it writes: the document, the password, that the identity
//! exists here, that the chain leads from the group root to this identity, that a carried
//! root key is the group's. Then it writes the group's files the way a join does, each
//! atomically and `config.json` last, so a crash leaves no group that `open` accepts, or
//! (overwriting) each file old or new.

use std::net::SocketAddr;

use crate::clock::unix_now;
use crate::config_export::{GroupConfig, MAX_CONFIG_ADDRESSES};
use crate::error::{CoreError, InvitationError, Result};
use crate::group::{lock, LocalGroup, LocalPeergroup};
use crate::group_store::{GroupStore, StoredConfig};
use crate::identity::export::DEFAULT_ITERATIONS;
use crate::identity::gmc::{GmcChain, GroupRootCertificate};
use crate::identity::{PeerName, PrivateKey};

impl LocalGroup {
    /// `PeerGroupExportConfig`: this identity's membership of the group as a document sealed
    /// under `password` (any password, even empty, as on Windows). The owner's export carries
    /// the group root key: guard it like the identity export.
    pub fn export_config(&self, password: &str) -> Result<String> {
        self.export_config_with_rounds(password, DEFAULT_ITERATIONS)
    }

    /// [`LocalGroup::export_config`] with a chosen number of PBKDF2 rounds (tests use the
    /// minimum, [`crate::identity::export::MIN_ITERATIONS`]).
    pub fn export_config_with_rounds(&self, password: &str, rounds: u32) -> Result<String> {
        let st = self.live()?;
        let store = &self.inner.store;
        let mut addresses: Vec<SocketAddr> = Vec::new();
        let listen = st
            .driver
            .as_ref()
            .map(|d| d.listen_addrs())
            .unwrap_or_default();
        let peers = store.load_peers()?.into_iter().flat_map(|p| p.addrs);
        for a in listen
            .into_iter()
            .chain(peers)
            .chain(store.load_bootstrap()?)
        {
            if !addresses.contains(&a) && addresses.len() < MAX_CONFIG_ADDRESSES {
                addresses.push(a);
            }
        }
        let config = GroupConfig {
            identity: self.inner.key.0.clone(),
            group: self.inner.key.1.clone(),
            properties: st.config.properties.clone(),
            scope: 0,
            cloud_flags: 0,
            synced: st.config.synced,
            grc_der: self.inner.grc.der().to_vec(),
            gmc_chain: st.chain.to_bytes(),
            signed_properties: st
                .signed
                .as_ref()
                .map(|s| crate::wire::Message::Properties(s.clone()).encode().1),
            root_key: store.load_root_key()?,
            addresses,
        };
        drop(st);
        Ok(config.seal(password, rounds)?)
    }
}

impl LocalPeergroup {
    /// `PeerGroupImportConfig`: stores a group configuration exported elsewhere; returns
    /// (identity, group) for [`LocalPeergroup::open_group`]. The identity must exist here
    /// (`PEER_E_NOT_FOUND`: import it first). A group this identity already holds is
    /// `PEER_E_ALREADY_EXISTS` unless `overwrite`; an open one is `PEER_E_GROUP_IN_USE`.
    /// Any refusal leaves the disk as it was.
    pub fn import_config(
        &self,
        xml: &str,
        password: &str,
        overwrite: bool,
    ) -> Result<(PeerName, PeerName)> {
        let config = GroupConfig::open(xml, password)?;
        let (identity, group) = (config.identity.clone(), config.group.clone());
        let identities = &self.shared.identities;
        identities.load(&identity)?;
        let grc = GroupRootCertificate::from_der(&config.grc_der)?;
        if grc.group_name() != &group {
            return Err(InvitationError::RootOfAnotherGroup.into());
        }
        let chain = GmcChain::from_bytes(&config.gmc_chain)?;
        let member = chain.validate(&grc, unix_now())?;
        if member.peer_name() != &identity {
            return Err(InvitationError::ChainOfAnother.into());
        }
        if let Some(key) = &config.root_key {
            if PrivateKey::from_pkcs8(key)?.public_key_der() != grc.public_key_der() {
                return Err(InvitationError::RootKeyNotTheGroups.into());
            }
        }
        let signed = match &config.signed_properties {
            Some(bytes) => {
                match crate::wire::Message::decode(crate::wire::KIND_PROPERTIES, bytes) {
                    Ok(crate::wire::Message::Properties(p)) => {
                        crate::signing::verify_properties(&grc, &p)?;
                        Some(p)
                    }
                    _ => {
                        return Err(CoreError::Protocol(
                            "the signed properties do not decode".into(),
                        ))
                    }
                }
            }
            None => None,
        };
        let held = identities
            .groups(&identity)?
            .iter()
            .any(|g| g.peer_name == group.to_string());
        if held && !overwrite {
            return Err(CoreError::AlreadyMember(group.to_string()));
        }
        // Held while writing, so no `open_group` in this process reads half an import.
        let open = lock(&self.shared.open);
        if open.contains_key(&(identity.clone(), group.clone())) {
            return Err(CoreError::GroupInUse(
                "the group is open: close it before importing over it".into(),
            ));
        }
        let friendly = config.properties.friendly_name.clone();
        let store = GroupStore::new(identities.register_group(&identity, &group, &friendly)?);
        if let Some(s) = &signed {
            store.save_signed_properties(s)?;
        }
        if config.root_key.is_none() {
            store.remove_root_key()?;
        }
        store.initialize(
            &StoredConfig {
                format: 1,
                properties: config.properties.clone(),
                synced: config.synced,
                relay: false,
            },
            &config.grc_der,
            &config.gmc_chain,
            config.root_key.as_deref().map(|k| k.as_slice()),
            &config.addresses,
        )?;
        drop(open);
        tracing::info!(group = %group, identity = %identity, overwrite, "group configuration imported");
        Ok((identity, group))
    }
}
