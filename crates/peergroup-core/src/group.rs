//! Groups on disk and their handles: create, open, join, delete, properties and invitations.
//!
//! [`LocalPeergroup`] is one user's library instance (one identity store, one transport node).
//! Every `create`/`open`/`join` returns a new [`LocalGroup`]; handles to the same
//! (identity, group) share one [`GroupInner`], which counts them. The network side lives in
//! `driver`; it is started by `connect` and stopped when the last handle closes.
//!
//! Each open group keeps its record database
//! ([`RecordStore`](crate::records::store::RecordStore)) at `<group dir>/records.db`, opened
//! on the first record call and closed after the driver when the last handle closes or the
//! group is deleted. The record calls (`handle::records`) store each change, and the running
//! group's machine floods it; see [`crate::replication`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::signing::sign_properties;
pub(crate) use crate::state::{lock, GroupState, Shared};
pub use crate::state::{GroupInner, GroupKey, RECORDS_FILE};

use crate::clock::unix_now;
use crate::driver;
use crate::error::{
    AdminCall, AuthorizationError, CoreError, InvitationError, PropertiesError, Result,
};
use crate::events::{EventFilter, EventHub, EventSubscription, Notifier, DEFAULT_QUEUE};
use crate::group_store::{GroupStore, StoredConfig};
use crate::identity::gmc::{issue_gmc_at, GmcChain, GroupRoot, GroupRootCertificate, Role};
use crate::identity::{documents, Identity, IdentityStore, PeerName};
use crate::invitation::{Credential, Invitation};
use crate::network::Network;
use crate::properties::GroupProperties;

pub use crate::values::{DatabaseProgress, DatabaseStage, NewRecord};

/// One user's groups: the identity store, the open groups and the network.
#[derive(Clone)]
pub struct LocalPeergroup {
    pub(crate) shared: Arc<Shared>,
}

/// One handle to an open group (`HGROUP`). Closing the last handle closes the group.
pub struct LocalGroup {
    pub(crate) inner: Arc<GroupInner>,
    pub(crate) pg: LocalPeergroup,
    closed: bool,
}

impl LocalPeergroup {
    /// A library instance over an identity store; the network binds on first use to
    /// `listen` (tests: `127.0.0.1:0`), by default `$PEERGROUP_LISTEN` or `[::]:0`.
    pub fn new(identities: IdentityStore, listen: Option<SocketAddr>) -> Self {
        Self::with_limits(identities, listen, crate::transport::Limits::default())
    }

    /// [`LocalPeergroup::new`] with the transport's bounds and timeouts (e.g. a shorter idle
    /// timeout, so a lost peer is noticed sooner).
    pub fn with_limits(
        identities: IdentityStore,
        listen: Option<SocketAddr>,
        limits: crate::transport::Limits,
    ) -> Self {
        LocalPeergroup {
            shared: Arc::new(Shared {
                identities,
                open: Mutex::new(HashMap::new()),
                network: Network::new(listen, limits),
            }),
        }
    }

    /// The transport node's bound address, while any group is online.
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.network.local_addr().await
    }

    /// The identity store.
    pub fn identities(&self) -> &IdentityStore {
        &self.shared.identities
    }

    fn identity_or_default(&self, identity: Option<&PeerName>) -> Result<PeerName> {
        Ok(match identity {
            Some(p) => p.clone(),
            None => self.shared.identities.default_identity()?,
        })
    }

    /// `PeerGroupCreate`: a new group whose creator (default: the default identity) becomes
    /// its administrator. The group peer name is generated.
    pub fn create_group(&self, properties: GroupProperties) -> Result<LocalGroup> {
        let mut props = properties.normalized_for_create()?;
        let creator: Option<PeerName> = if props.creator_peer_name.is_empty() {
            None
        } else {
            Some(props.creator_peer_name.parse()?)
        };
        let creator = self.identity_or_default(creator.as_ref())?;
        let identity = self.shared.identities.load(&creator)?;
        let now = unix_now();
        let friendly = if props.friendly_name.is_empty() {
            props.classifier.clone()
        } else {
            props.friendly_name.clone()
        };
        let root = GroupRoot::create_at(&props.classifier, &friendly, now)?;
        let grc = root.certificate().clone();
        let chain = root.issue(
            identity.certificate(),
            &[Role::Admin],
            grc.not_before(),
            grc.not_after(),
        )?;
        props.group_peer_name = root.group_name().to_string();
        props.creator_peer_name = creator.to_string();
        props.friendly_name = friendly.clone();
        let signed = sign_properties(&identity, &chain, 1, &props)?;
        let dir = self
            .shared
            .identities
            .register_group(&creator, root.group_name(), &friendly)?;
        let store = GroupStore::new(dir);
        let config = StoredConfig {
            format: 1,
            properties: props,
            synced: true,
            relay: false,
        };
        store.save_signed_properties(&signed)?;
        store.initialize(
            &config,
            grc.der(),
            &chain.to_bytes(),
            Some(root.key().pkcs8_der()),
            &[],
        )?;
        tracing::info!(group = %root.group_name(), creator = %creator, "group created");
        self.open_group(Some(&creator), root.group_name())
    }

    /// `PeerGroupOpen`: a new handle to a group this identity created or joined.
    pub fn open_group(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<LocalGroup> {
        let identity = self.identity_or_default(identity)?;
        let key = (identity.clone(), group.clone());
        let mut open = lock(&self.shared.open);
        if let Some(inner) = open.get(&key) {
            let mut st = lock(&inner.state);
            if !st.deleted {
                st.handles += 1;
                drop(st);
                return Ok(LocalGroup {
                    inner: inner.clone(),
                    pg: self.clone(),
                    closed: false,
                });
            }
        }
        let loaded = self.shared.identities.load(&identity)?;
        let dir = self
            .shared
            .identities
            .groups(&identity)?
            .into_iter()
            .find(|g| g.peer_name == group.to_string())
            .ok_or_else(|| CoreError::GroupNotFound(group.to_string()))?;
        let store = GroupStore::new(self.shared.identities.register_group(
            &identity,
            group,
            &dir.friendly_name,
        )?);
        if !store.exists() {
            return Err(CoreError::GroupNotFound(group.to_string()));
        }
        let config = store.load_config()?;
        let grc = GroupRootCertificate::from_der(&store.load_grc()?)?;
        let chain = GmcChain::from_bytes(&store.load_gmc()?)?;
        let member = chain.validate(&grc, unix_now())?;
        let signed = store.load_signed_properties()?;
        let inner = Arc::new(GroupInner {
            key: key.clone(),
            identity: loaded,
            store,
            grc,
            state: Mutex::new(GroupState {
                handles: 1,
                deleted: false,
                chain,
                member,
                config,
                signed,
                driver: None,
            }),
            records: Mutex::new(None),
            events: EventHub::new(),
            password_gate: Default::default(),
            throttle: Default::default(),
        });
        open.insert(key, inner.clone());
        Ok(LocalGroup {
            inner,
            pg: self.clone(),
            closed: false,
        })
    }

    /// `PeerGroupJoin`: stores a GMC invitation for `identity` and returns an offline handle;
    /// nothing is sent until `connect`.
    pub fn join(&self, identity: Option<&PeerName>, invitation: &str) -> Result<LocalGroup> {
        let identity = self.identity_or_default(identity)?;
        let inv = Invitation::parse(invitation)?;
        let member = inv.validate_for(&identity, unix_now())?;
        let Credential::Gmc(chain) = &inv.credential else {
            unreachable!("validate_for accepts GMC invitations only");
        };
        debug_assert_eq!(member.peer_name(), &identity);
        let dir = self.shared.identities.register_group(
            &identity,
            &inv.group_name,
            &inv.group_friendly_name,
        )?;
        let store = GroupStore::new(dir);
        if store.exists() {
            // Already a member: take the newer credentials and open.
            store.save_gmc(&chain.to_bytes())?;
            let mut bootstrap = store.load_bootstrap()?;
            for a in &inv.addresses {
                if !bootstrap.contains(a) {
                    bootstrap.push(*a);
                }
            }
            store.save_bootstrap(&bootstrap)?;
        } else {
            let config = joiner_config(&inv);
            store.initialize(
                &config,
                inv.grc.der(),
                &chain.to_bytes(),
                None,
                &inv.addresses,
            )?;
        }
        tracing::info!(group = %inv.group_name, identity = %identity, "joined (offline)");
        self.open_group(Some(&identity), &inv.group_name)
    }

    /// `PeerGroupPasswordJoin`: authenticates with the group password at a member the
    /// invitation names and stores the membership it grants. Returns the handle and whether
    /// this identity was a member already (`PEER_S_ALREADY_A_MEMBER`).
    ///
    /// Unlike Windows, which checks the password at the first connect, the exchange runs
    /// here, so a wrong password is an error of this call (`0x80070056`) and leaves nothing
    /// stored.
    pub async fn password_join(
        &self,
        identity: Option<&PeerName>,
        invitation: &str,
        password: &str,
    ) -> Result<(LocalGroup, bool)> {
        let identity = self.identity_or_default(identity)?;
        let inv = Invitation::parse(invitation)?;
        if !matches!(inv.credential, Credential::Password) {
            return Err(InvitationError::NeedsJoin.into());
        }
        let already = self
            .shared
            .identities
            .groups(&identity)?
            .iter()
            .any(|g| g.peer_name == inv.group_name.to_string());
        if already {
            if let Ok(h) = self.open_group(Some(&identity), &inv.group_name) {
                return Ok((h, true));
            }
        }
        let me = self.shared.identities.load(&identity)?;
        let chain = self.authenticate_with_password(&me, &inv, password).await;
        self.shared.network.release_if_idle().await;
        let chain = chain?;
        let dir = self.shared.identities.register_group(
            &identity,
            &inv.group_name,
            &inv.group_friendly_name,
        )?;
        let config = joiner_config(&inv);
        GroupStore::new(dir).initialize(
            &config,
            inv.grc.der(),
            &chain.to_bytes(),
            None,
            &inv.addresses,
        )?;
        tracing::info!(group = %inv.group_name, identity = %identity, "joined with the group password");
        Ok((self.open_group(Some(&identity), &inv.group_name)?, false))
    }

    async fn authenticate_with_password(
        &self,
        me: &Identity,
        inv: &Invitation,
        password: &str,
    ) -> Result<GmcChain> {
        use crate::transport::{CertificateDer, Credentials};
        let (node, _) = self.shared.network.node().await?;
        let creds = Credentials::from_identity(
            me.private_key(),
            vec![CertificateDer::from(me.certificate().der().to_vec())],
        )?;
        let name = crate::trust::server_name_of(&inv.group_name);
        let mut last = CoreError::NoMemberReachable("the invitation names no address".into());
        for addr in &inv.addresses {
            let mut waited = false;
            loop {
                let trust = crate::password::group_trust(&inv.grc);
                let result = match node.connect(*addr, &name, &creds, trust).await {
                    Ok(conn) => {
                        let result = crate::password::join(
                            &conn,
                            password,
                            &inv.grc,
                            me.certificate(),
                            unix_now(),
                        )
                        .await;
                        conn.close(crate::transport::CloseCode::Shutdown, "password join done");
                        result
                    }
                    // The member refused us (password authentication suspended there, or
                    // throttled): its close can arrive before the connection is reported made.
                    Err(e) if e.hresult() == crate::identity::hresult::PEER_E_NOT_AUTHORIZED => {
                        Err(crate::password::throttled(CoreError::Transport(e)))
                    }
                    Err(e) => Err(CoreError::NoMemberReachable(format!("{addr}: {e}"))),
                };
                match result {
                    Ok(chain) => return Ok(chain),
                    // A short wait after a wrong password (a typo, say): wait it out once.
                    Err(CoreError::PasswordThrottled(secs))
                        if !waited && secs <= crate::password::JOINER_WAITS_UP_TO_S =>
                    {
                        waited = true;
                        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                    }
                    Err(e @ (CoreError::PasswordRejected | CoreError::PasswordThrottled(_))) => {
                        return Err(e)
                    }
                    Err(e) => {
                        last = e;
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// True while some handle of this instance holds the group `key` open.
    pub fn is_open(&self, key: &GroupKey) -> bool {
        lock(&self.shared.open).contains_key(key)
    }

    /// `PeerGroupParseInvitation`.
    pub fn parse_invitation(invitation: &str) -> Result<Invitation> {
        Ok(Invitation::parse(invitation)?)
    }

    /// `PeerGroupDelete`: removes this identity's local data for the group. Every open handle
    /// to it becomes invalid at once, and its connections close as for a last close.
    pub async fn delete_group(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<()> {
        let identity = self.identity_or_default(identity)?;
        let key = (identity.clone(), group.clone());
        let live = lock(&self.shared.open).remove(&key);
        if let Some(inner) = live {
            let driver = {
                let mut st = lock(&inner.state);
                st.deleted = true;
                st.handles = 0;
                st.driver.take()
            };
            if let Some(d) = driver {
                d.close().await;
            }
            inner.events.close();
            inner.close_records();
            self.shared.network.release_if_idle().await;
        }
        self.shared
            .identities
            .unregister_group(&identity, group)
            .map_err(|e| match e {
                crate::identity::IdentityError::NotFound(_) => {
                    CoreError::GroupNotFound(group.to_string())
                }
                other => other.into(),
            })?;
        tracing::info!(group = %group, identity = %identity, "group deleted");
        Ok(())
    }
}

/// What a joiner knows of a group before its first synchronisation: the invitation's names.
fn joiner_config(inv: &Invitation) -> StoredConfig {
    StoredConfig {
        format: 1,
        properties: GroupProperties {
            classifier: inv.group_name.classifier().to_owned(),
            group_peer_name: inv.group_name.to_string(),
            friendly_name: inv.group_friendly_name.clone(),
            cloud: inv.cloud.clone(),
            ..GroupProperties::default()
        },
        synced: false,
        relay: false,
    }
}

impl LocalGroup {
    pub(crate) fn inner(&self) -> &Arc<GroupInner> {
        &self.inner
    }

    pub(crate) fn live(&self) -> Result<MutexGuard<'_, GroupState>> {
        let st = lock(&self.inner.state);
        if self.closed || st.deleted {
            return Err(CoreError::InvalidGroup);
        }
        Ok(st)
    }

    /// The group's peer name.
    pub fn group_name(&self) -> &PeerName {
        &self.inner.key.1
    }

    /// The identity holding this handle.
    pub fn identity(&self) -> &PeerName {
        &self.inner.key.0
    }

    /// This member's roles.
    pub fn roles(&self) -> Result<Vec<Role>> {
        Ok(self.live()?.member.roles().to_vec())
    }

    /// `PeerGroupGetStatus`.
    pub fn status(&self) -> Result<u32> {
        let st = self.live()?;
        Ok(st.driver.as_ref().map_or(0, |d| d.status()))
    }

    /// `PeerGroupGetProperties`.
    pub fn properties(&self) -> Result<GroupProperties> {
        let st = self.live()?;
        Ok(st.config.properties.clone())
    }

    /// `PeerGroupSetProperties`: administrators only; the identifying fields cannot change.
    pub fn set_properties(&self, update: &GroupProperties) -> Result<()> {
        let mut st = self.live()?;
        if !st.member.has_role(Role::Admin) {
            return Err(AuthorizationError::AdminsOnly(AdminCall::SetProperties).into());
        }
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        let next = st.config.properties.apply_update(update)?;
        let version = st.signed.as_ref().map_or(0, |s| s.version) + 1;
        let signed = sign_properties(&self.inner.identity, &st.chain, version, &next)?;
        // Group files are synced to disk: not on an async worker (the service calls this).
        crate::blocking::off_the_workers(|| self.inner.store.save_signed_properties(&signed))?;
        st.config.properties = next;
        crate::blocking::off_the_workers(|| self.inner.store.save_config(&st.config))?;
        st.signed = Some(signed.clone());
        if let Some(d) = &st.driver {
            d.local_properties(signed);
        }
        Ok(())
    }

    /// `PeerGroupCreateInvitation`: an invitation for the identity whose public XML is given,
    /// with `roles` (none: member) until `expiration` (none: the issuer's own expiry).
    pub fn create_invitation(
        &self,
        identity_xml: &str,
        expiration: Option<i64>,
        roles: &[Role],
    ) -> Result<String> {
        let st = self.live()?;
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        if !st.member.has_role(Role::Admin) && !st.member.has_role(Role::InvitingMember) {
            return Err(AuthorizationError::NotInviter.into());
        }
        let subject = documents::parse_identity_info(identity_xml)?;
        let roles = if roles.is_empty() {
            vec![Role::Member]
        } else {
            roles.to_vec()
        };
        let chain = issue_gmc_at(
            self.inner.identity.private_key(),
            &st.chain,
            &subject,
            &roles,
            expiration,
            unix_now(),
        )?;
        Ok(self.invitation(&st, Credential::Gmc(chain), roles).to_xml())
    }

    /// `PeerGroupCreatePasswordInvitation`: for groups with password authentication.
    pub fn create_password_invitation(&self) -> Result<String> {
        let st = self.live()?;
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        if !st.member.has_role(Role::Admin) && !st.member.has_role(Role::InvitingMember) {
            return Err(AuthorizationError::NotInviter.into());
        }
        if !st.config.properties.password_enabled() {
            return Err(PropertiesError::NoPasswordAuthentication.into());
        }
        let role = st.config.properties.group_password_role;
        Ok(self
            .invitation(&st, Credential::Password, vec![role])
            .to_xml())
    }

    pub(crate) fn invitation(
        &self,
        st: &GroupState,
        credential: Credential,
        roles: Vec<Role>,
    ) -> Invitation {
        let props = &st.config.properties;
        Invitation {
            group_name: self.inner.key.1.clone(),
            group_friendly_name: props.friendly_name.clone(),
            cloud: props.cloud.clone(),
            scope: 0,
            cloud_flags: 0,
            issuer_peer_name: self.inner.key.0.to_string(),
            issuer_friendly_name: self.inner.identity.friendly_name().to_owned(),
            grc: self.inner.grc.clone(),
            credential,
            roles,
            // Where members reach us (confirmed and mapped before private interface
            // addresses), else where we listen.
            // Behind a NAT, the relays it names come after: a joiner that cannot reach this
            // member reaches the group through them.
            addresses: match st.driver.as_ref().map(|d| {
                let reachable = d.reachable();
                let mut addrs = if reachable.advertised.is_empty() {
                    d.listen_addrs()
                } else {
                    reachable.advertised
                };
                for a in reachable.relays {
                    if !addrs.contains(&a) && addrs.len() < crate::wire::MAX_ADDRS {
                        addrs.push(a);
                    }
                }
                addrs
            }) {
                Some(addrs) if !addrs.is_empty() => addrs,
                // Offline: the configured listen address, when it names a reachable one.
                _ => self
                    .pg
                    .shared
                    .network
                    .configured_addr()
                    .into_iter()
                    .collect(),
            },
        }
    }

    /// How this group's last connections ended (newest last): the close code each peer used.
    pub fn recent_disconnects(&self) -> Result<Vec<crate::transport::CloseReason>> {
        Ok(self
            .live()?
            .driver
            .as_ref()
            .map(|d| d.recent_disconnects())
            .unwrap_or_default())
    }

    /// The neighbour connections of this group now.
    pub fn neighbours(&self) -> Result<Vec<crate::control::Neighbour>> {
        Ok(self
            .live()?
            .driver
            .as_ref()
            .map(|d| d.neighbours())
            .unwrap_or_default())
    }

    /// Where this group says it can be reached and what it knows of its NAT, from the
    /// other members' views; nothing advertised while offline.
    pub fn reachable(&self) -> Result<crate::values::Reachable> {
        Ok(self
            .live()?
            .driver
            .as_ref()
            .map(|d| d.reachable())
            .unwrap_or(crate::values::Reachable {
                advertised: Vec::new(),
                nat: crate::reachability::NatClass::Unknown,
                relays: Vec::new(),
                outside: crate::dialback::Outside::Unknown,
            }))
    }

    /// Makes this member relay for other members of the group, or stop ([`crate::relay`]):
    /// a member reachable at a public address lets members behind NATs reach each other
    /// through it. Kept in the group's files; neighbours learn it on their next connection.
    /// The group's properties may forbid relaying (`PEERGROUP_DISABLE_RELAYS`).
    pub fn set_relay(&self, on: bool) -> Result<()> {
        let mut st = self.live()?;
        if st.config.relay != on {
            let mut next = st.config.clone();
            next.relay = on;
            crate::blocking::off_the_workers(|| self.inner.store.save_config(&next))?;
            st.config = next;
        }
        if let Some(d) = &st.driver {
            d.set_relay(on);
        }
        Ok(())
    }

    /// True when this member relays for others ([`LocalGroup::set_relay`]).
    pub fn relay(&self) -> Result<bool> {
        Ok(self.live()?.config.relay)
    }

    /// Where this group listens, once it does.
    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>> {
        Ok(self
            .live()?
            .driver
            .as_ref()
            .map(|d| d.listen_addrs())
            .unwrap_or_default())
    }

    /// Subscribes to this group's events that `filter` matches (`PeerGroupRegisterEvent`),
    /// with a queue of [`DEFAULT_QUEUE`] items. The subscription lasts until it is dropped or
    /// the group closes for good (its last handle closed, or deleted); it sees the events of
    /// every handle to the group, since they share one network presence.
    pub fn subscribe(&self, filter: EventFilter) -> Result<EventSubscription> {
        self.subscribe_with(filter, DEFAULT_QUEUE, None)
    }

    /// [`LocalGroup::subscribe`] with a queue of `capacity` items and a `notifier` called
    /// each time the queue goes from empty to non-empty (the C ABI signals an eventfd).
    pub fn subscribe_with(
        &self,
        filter: EventFilter,
        capacity: usize,
        notifier: Option<Notifier>,
    ) -> Result<EventSubscription> {
        let _st = self.live()?;
        Ok(self.inner.events.subscribe(filter, capacity, notifier))
    }

    /// `PeerGroupConnect`: brings the group online; the outcome arrives as status changes.
    pub async fn connect(&self) -> Result<()> {
        self.connect_by_address(&[]).await
    }

    /// `PeerGroupConnectByAddress`.
    pub async fn connect_by_address(&self, addrs: &[SocketAddr]) -> Result<()> {
        let driver = {
            let st = self.live()?;
            st.driver.clone()
        };
        let driver = match driver {
            Some(d) => d,
            None => {
                let d = driver::start(&self.pg.shared, &self.inner).await?;
                let mut st = self.live()?;
                match &st.driver {
                    Some(existing) => existing.clone(),
                    None => {
                        st.driver = Some(d.clone());
                        d
                    }
                }
            }
        };
        driver.connect(addrs.to_vec());
        Ok(())
    }

    /// Waits until the status has all of `bits` (or the timeout passes); returns the status.
    pub async fn wait_status(&self, bits: u32, timeout: std::time::Duration) -> Result<u32> {
        let driver = self.live()?.driver.clone();
        match driver {
            Some(d) => Ok(d.wait_status(bits, timeout).await),
            None => Ok(0),
        }
    }

    /// `PeerGroupClose`: invalidates this handle; the last handle's close takes the group
    /// offline layer by layer (bounded in time) and releases the network when no group is left.
    pub async fn close(mut self) -> Result<()> {
        self.close_inner().await
    }

    async fn close_inner(&mut self) -> Result<()> {
        let driver = {
            // The open-groups lock first, as `open_group` takes it: the last handle leaves
            // the map in the same step that counts it out, so no `open_group` can come
            // between and get a handle to a group that is closing.
            let inner = self.inner.clone();
            let mut open = lock(&self.pg.shared.open);
            let mut st = lock(&inner.state);
            if self.closed || st.deleted {
                return Err(CoreError::InvalidGroup);
            }
            self.closed = true;
            st.handles -= 1;
            if st.handles > 0 {
                return Ok(());
            }
            open.remove(&self.inner.key);
            st.driver.take()
        };
        if let Some(d) = driver {
            d.close().await;
        }
        self.inner.events.close();
        self.inner.close_records();
        self.pg.shared.network.release_if_idle().await;
        Ok(())
    }
}

impl Drop for LocalGroup {
    fn drop(&mut self) {
        // Fallback only: an explicit close() is the way. Count the handle out, and if it was
        // the last, stop the driver without waiting.
        if self.closed {
            return;
        }
        let driver = {
            // Lock order as in `close_inner`.
            let mut open = lock(&self.pg.shared.open);
            let mut st = lock(&self.inner.state);
            if st.deleted {
                return;
            }
            st.handles = st.handles.saturating_sub(1);
            if st.handles > 0 {
                return;
            }
            open.remove(&self.inner.key);
            st.driver.take()
        };
        if let Some(d) = driver {
            d.abort();
        }
        self.inner.events.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle opened while the last other handle closes on another thread is always a
    /// handle to a live group: it either joined the old one before it was counted out, or
    /// opened the group anew; never the one being torn down. (The window was a few
    /// instructions wide, so this exercises the path rather than reliably catching the old
    /// bug; the fix is the lock order in `close_inner`.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_racing_the_last_close_gets_a_live_group() {
        let home = tempfile::tempdir().unwrap();
        let store = IdentityStore::open(home.path()).unwrap();
        let me = store.create(Some("race"), Some("Race"), None).unwrap();
        let pg = LocalPeergroup::new(store, Some("127.0.0.1:0".parse().unwrap()));
        let first = pg
            .create_group(GroupProperties {
                classifier: "race".into(),
                friendly_name: "Race".into(),
                creator_peer_name: me.to_string(),
                ..Default::default()
            })
            .unwrap();
        let name = first.group_name().clone();
        first.close().await.unwrap();
        for _ in 0..30 {
            let old = pg.open_group(Some(&me), &name).unwrap();
            let pg2 = pg.clone();
            let (me2, name2) = (me.clone(), name.clone());
            let opener = tokio::task::spawn_blocking(move || pg2.open_group(Some(&me2), &name2));
            old.close().await.unwrap();
            let new = opener.await.unwrap().unwrap();
            // Live: its events are not ended, its records are readable, it may connect.
            let sub = new.subscribe(EventFilter::all()).unwrap();
            assert!(!sub.is_closed(), "a handle to a group that was closing");
            new.enum_records(None).unwrap();
            drop(sub);
            new.close().await.unwrap();
        }
    }
}
