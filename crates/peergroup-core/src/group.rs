//! Groups on disk and their handles: create, open, join, delete, properties and invitations.
//!
//! [`LocalPeergroup`] is one user's library instance (one identity store, one transport node).
//! Every `create`/`open`/`join` returns a new [`LocalGroup`]; handles to the same
//! (identity, group) share one [`GroupInner`], which counts them. The network side lives in
//! `driver`; it is started by `connect` and stopped when the last handle closes.
//!
//! Each open group keeps its record database ([`RecordStore`]) at `<group dir>/records.db`,
//! opened on the first record call and closed after the driver when the last handle closes
//! or the group is deleted. A record stored by a call here goes to the running group's
//! machine, which floods it; see [`crate::replication`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::signing::sign_properties;
pub(crate) use crate::state::{lock, GroupState, Shared};
pub use crate::state::{GroupInner, GroupKey, RECORDS_FILE};

use crate::clock::unix_now;
use crate::driver;
use crate::error::{CoreError, Result};
use crate::events::{EventFilter, EventHub, EventSubscription, Notifier, DEFAULT_QUEUE};
use crate::group_store::{GroupStore, StoredConfig};
use crate::identity::gmc::{issue_gmc_at, GmcChain, GroupRoot, GroupRootCertificate, Role};
use crate::identity::{documents, Identity, IdentityStore, PeerName};
use crate::invitation::{Credential, Invitation};
use crate::network::Network;
use crate::properties::GroupProperties;
use crate::records::attributes::Attributes;
use crate::records::record::{derive_id, Record};
use crate::records::search::Criteria;
use crate::records::store::index_rows;
use crate::records::store::RecordStore;
use crate::records::view::is_reserved_type;

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
            return Err(CoreError::WrongJoinKind(
                "this invitation carries a membership certificate: use PeerGroupJoin".into(),
            ));
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
            let trust = crate::password::group_trust(&inv.grc);
            match node.connect(*addr, &name, &creds, trust).await {
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
                    match result {
                        Ok(chain) => return Ok(chain),
                        Err(CoreError::PasswordRejected) => {
                            return Err(CoreError::PasswordRejected)
                        }
                        Err(e) => last = e,
                    }
                }
                // The member refused us (say, password authentication is suspended there):
                // its close can arrive before the connection is reported made.
                Err(e) if e.hresult() == crate::identity::hresult::PEER_E_NOT_AUTHORIZED => {
                    last = CoreError::Transport(e)
                }
                Err(e) => last = CoreError::NoMemberReachable(format!("{addr}: {e}")),
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
        Invitation::parse(invitation)
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
            return Err(CoreError::NotAuthorized(
                "only administrators set group properties".into(),
            ));
        }
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        let next = st.config.properties.apply_update(update)?;
        let version = st.signed.as_ref().map_or(0, |s| s.version) + 1;
        let signed = sign_properties(&self.inner.identity, &st.chain, version, &next)?;
        self.inner.store.save_signed_properties(&signed)?;
        st.config.properties = next;
        self.inner.store.save_config(&st.config)?;
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
            return Err(CoreError::NotAuthorized(
                "only administrators and inviting members invite".into(),
            ));
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
            return Err(CoreError::NotAuthorized(
                "only administrators and inviting members invite".into(),
            ));
        }
        if !st.config.properties.password_enabled() {
            return Err(CoreError::InvalidProperties(
                "the group has no password authentication".into(),
            ));
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
            addresses: match st.driver.as_ref().map(|d| d.listen_addrs()) {
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

/// Peer time now, in ms since the Unix epoch (record times).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh id nonce from the system's secure random generator (the record id is derived
/// from it: [`crate::records::record::derive_id`]).
pub(crate) fn new_id_nonce() -> Result<[u8; 16]> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut nonce = [0u8; 16];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CoreError::Protocol("the system random generator failed".into()))?;
    Ok(nonce)
}

/// The rights rule of `PeerGroupUpdateRecord` and `PeerGroupDeleteRecord`: the record's
/// creator, or any administrator.
fn may_modify(me: &str, admin: bool, record: &Record) -> bool {
    admin || record.creator == me
}

/// The record calls (`PeerGroup*Record*`): each change is stored here durably, then flooded
/// to the group when it is online (else reconciled at the next connection).
impl LocalGroup {
    /// The state, checked for a live handle and a synchronised member
    /// (`PEER_E_GROUP_NOT_READY` before the first synchronisation).
    fn ready(&self) -> Result<MutexGuard<'_, GroupState>> {
        let st = self.live()?;
        if !st.config.synced {
            return Err(CoreError::NotReady);
        }
        Ok(st)
    }

    fn with_records<T>(&self, f: impl FnOnce(&mut RecordStore) -> Result<T>) -> Result<T> {
        self.inner.with_records(f)
    }

    /// `PeerGroupAddRecord`: signs and stores a new record of this member; returns its id.
    /// Errors: `PEER_E_GROUP_NOT_READY` before synchronisation, `PEER_E_NOT_AUTHORIZED` for a
    /// reserved type, `PEER_E_INVALID_RECORD_EXPIRATION` for an expiration not in the future,
    /// `PEER_E_INVALID_ATTRIBUTES`/`PEER_E_TOO_MANY_ATTRIBUTES`, `PEER_E_MAX_RECORD_SIZE_EXCEEDED`.
    pub fn add_record(&self, new: NewRecord) -> Result<[u8; 16]> {
        Ok(self.add_records(vec![new])?[0])
    }

    /// [`LocalGroup::add_record`] of many records in one durable transaction (one disk sync
    /// for the batch, where `add_record` syncs each): all are stored, or, when one is refused
    /// with its error, none. Returns the ids in order. Not a Windows call; what a program
    /// loading many records at once wants.
    pub fn add_records(&self, batch: Vec<NewRecord>) -> Result<Vec<[u8; 16]>> {
        let st = self.ready()?;
        let now = now_ms();
        let me = self.inner.key.0.to_string();
        let mut rows = Vec::with_capacity(batch.len());
        for new in batch {
            if is_reserved_type(&new.record_type) {
                return Err(CoreError::NotAuthorized(
                    "the record type is reserved to the infrastructure".into(),
                ));
            }
            if new.expires_ms <= now {
                return Err(CoreError::InvalidRecordExpiration(format!(
                    "expiration {} ms is not after now ({now} ms)",
                    new.expires_ms
                )));
            }
            let attributes = Attributes::parse(&new.attributes)?;
            let id_nonce = new_id_nonce()?;
            let mut record = Record {
                record_type: new.record_type,
                id: derive_id(&me, &new.record_type, now, &id_nonce),
                id_nonce,
                version: 1,
                flags: 0,
                creator: me.clone(),
                modifier: me.clone(),
                attributes: new.attributes,
                created: now,
                expires: new.expires_ms,
                modified: now,
                data: new.data,
                security: Vec::new(),
            };
            record.sign(self.inner.identity.private_key(), &st.chain)?;
            rows.push((record, index_rows(&attributes)));
        }
        self.with_records(|db| db.put_many(&rows))?;
        drop(st);
        let records: Vec<Record> = rows.into_iter().map(|(r, _)| r).collect();
        let ids = records.iter().map(|r| r.id).collect();
        self.publish_local(&records);
        Ok(ids)
    }

    /// The live stored record `id` that this member may modify (its creator, or an admin).
    fn modifiable(&self, st: &GroupState, id: &[u8; 16], now: i64) -> Result<Record> {
        let old = self.with_records(|db| db.get_live(id, now))?;
        let me = self.inner.key.0.to_string();
        if !may_modify(&me, st.member.has_role(Role::Admin), &old) {
            return Err(CoreError::NotAuthorized(
                "only the record's creator or an administrator changes it".into(),
            ));
        }
        Ok(old)
    }

    /// `PeerGroupUpdateRecord`: new attributes, expiration and data for record `id`, as its
    /// next version, modified and signed by this member. Errors: `PEER_E_RECORD_NOT_FOUND`
    /// (absent, deleted or expired), `PEER_E_NOT_AUTHORIZED` (neither creator nor admin),
    /// `PEER_E_INVALID_RECORD_EXPIRATION` (earlier than the stored expiration), and those of
    /// [`LocalGroup::add_record`] for the attributes and the size.
    pub fn update_record(
        &self,
        id: &[u8; 16],
        attributes: &str,
        expires_ms: i64,
        data: Vec<u8>,
    ) -> Result<()> {
        let st = self.ready()?;
        let now = now_ms();
        let old = self.modifiable(&st, id, now)?;
        if expires_ms < old.expires {
            return Err(CoreError::InvalidRecordExpiration(format!(
                "expiration {expires_ms} ms is earlier than the record's {} ms",
                old.expires
            )));
        }
        let parsed = Attributes::parse(attributes)?;
        let version = old
            .version
            .checked_add(1)
            .ok_or_else(|| CoreError::InvalidRecord("no version after the last".into()))?;
        let mut record = Record {
            version,
            modifier: self.inner.key.0.to_string(),
            attributes: attributes.to_owned(),
            expires: expires_ms,
            modified: now,
            data,
            security: Vec::new(),
            ..old
        };
        record.sign(self.inner.identity.private_key(), &st.chain)?;
        self.with_records(|db| db.put_with_attributes(&record, &index_rows(&parsed)))?;
        drop(st);
        self.publish_local(std::slice::from_ref(&record));
        Ok(())
    }

    /// `PeerGroupDeleteRecord`: stores the signed tombstone of record `id`, which floods
    /// like any version and outlives every copy of the record. Same errors and rights as [`LocalGroup::update_record`].
    pub fn delete_record(&self, id: &[u8; 16]) -> Result<()> {
        let st = self.ready()?;
        let now = now_ms();
        let old = self.modifiable(&st, id, now)?;
        let mut tombstone = old.tombstone(&self.inner.key.0.to_string(), now);
        tombstone.sign(self.inner.identity.private_key(), &st.chain)?;
        self.with_records(|db| db.put(&tombstone))?;
        drop(st);
        self.publish_local(std::slice::from_ref(&tombstone));
        Ok(())
    }

    /// Hands records stored here by this process (added, updated, deleted, imported) to the
    /// running group, which floods them to its neighbours and reports them as record events.
    /// Does nothing while the group is offline: the next connection reconciles them.
    pub(crate) fn publish_local(&self, records: &[Record]) {
        let driver = lock(&self.inner.state).driver.clone();
        if let Some(d) = driver {
            d.local_records(records.to_vec());
        }
    }

    /// `PeerGroupGetRecord`: the live record `id` (`PEER_E_RECORD_NOT_FOUND` when it is
    /// absent, deleted or expired).
    pub fn get_record(&self, id: &[u8; 16]) -> Result<Record> {
        let _st = self.ready()?;
        self.with_records(|db| db.get_live(id, now_ms()))
    }

    /// How many live records the group holds here (what `PeerGroupEnumRecords` of every type
    /// would list), without reading them.
    pub fn record_count(&self) -> Result<u64> {
        let _st = self.ready()?;
        let now = now_ms();
        self.with_records(|db| {
            let mut reserved = 0;
            for t in [
                crate::members::MEMBER_DATA_TYPE,
                crate::members::PRESENCE_TYPE,
            ] {
                reserved += db.list(Some(t), now)?.len() as u64;
            }
            Ok(db.count_live(now)?.saturating_sub(reserved))
        })
    }

    /// `PeerGroupEnumRecords`: the live records of `record_type` (`None`: every type), by id.
    /// The library's own member records (reserved types) are listed only when asked for by
    /// type.
    pub fn enum_records(&self, record_type: Option<[u8; 16]>) -> Result<Vec<Record>> {
        let _st = self.ready()?;
        let mut all = self.with_records(|db| db.list(record_type, now_ms()))?;
        if record_type.is_none() {
            all.retain(|r| !is_reserved_type(&r.record_type));
        }
        Ok(all)
    }

    /// `PeerGroupSearchRecords`: the live records that match `criteria` (a `<peersearch>`
    /// document), by id. `PEER_E_INVALID_SEARCH`, or `E_INVALIDARG` for a bad escape.
    pub fn search_records(&self, criteria: &str) -> Result<Vec<Record>> {
        let _st = self.ready()?;
        let criteria = Criteria::parse(criteria)?;
        let mut found = self.with_records(|db| db.search(&criteria, now_ms()))?;
        found.retain(|r| !is_reserved_type(&r.record_type));
        Ok(found)
    }
}

/// `PeerGroupExportDatabase` and `PeerGroupImportDatabase` (file format and rules:
/// [`crate::records::dbfile`]).
impl LocalGroup {
    /// The state, checked for a live handle of a group that is not online: the database
    /// calls are refused once the group connected (`PEER_E_GROUP_IN_USE`).
    fn offline(&self, what: &str) -> Result<MutexGuard<'_, GroupState>> {
        let st = self.live()?;
        if st.driver.is_some() {
            return Err(CoreError::GroupInUse(format!(
                "{what} is only allowed before the group connects"
            )));
        }
        Ok(st)
    }

    /// `PeerGroupExportDatabase`: writes this member's tombstones and live records (not the
    /// expired ones) to `path`, atomically; returns how many. `PEER_E_GROUP_IN_USE` once the
    /// group is online; file-system errors as Windows reports them.
    pub fn export_database(&self, path: &std::path::Path) -> Result<u64> {
        self.export_database_with(path, |_| {})
    }

    /// [`LocalGroup::export_database`], telling `progress` how far it got.
    pub fn export_database_with(
        &self,
        path: &std::path::Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        let _st = self.offline("database export")?;
        progress(DatabaseProgress {
            stage: DatabaseStage::Reading,
            done: 0,
            total: 0,
        });
        let now = now_ms();
        let mut records = self.with_records(|db| {
            let mut all = db.list(None, now)?;
            all.extend(db.tombstones()?.into_iter().filter(|t| !t.is_expired(now)));
            Ok(all)
        })?;
        records.sort_by_key(|r| r.id);
        let total = records.len() as u64;
        progress(DatabaseProgress {
            stage: DatabaseStage::Writing,
            done: 0,
            total,
        });
        crate::records::file::write(
            path,
            &self.inner.key.1.to_string(),
            &self.inner.key.0.to_string(),
            &records,
        )?;
        progress(DatabaseProgress {
            stage: DatabaseStage::Writing,
            done: total,
            total,
        });
        Ok(total)
    }

    /// `PeerGroupImportDatabase`: stores the records of a file [`LocalGroup::export_database`]
    /// wrote for this group and member, each under the conflict order, in one transaction;
    /// returns how many changed the database. The file must be intact, of this group and
    /// member, and every record must verify; else nothing changes (`PEER_E_INVALID_DATABASE`,
    /// or the failing record's error). Expired records are skipped. `PEER_E_GROUP_IN_USE`
    /// once the group is online.
    pub fn import_database(&self, path: &std::path::Path) -> Result<u64> {
        self.import_database_with(path, |_| {})
    }

    /// [`LocalGroup::import_database`], telling `progress` how far it got: reading the
    /// file, verifying each record (the long part), storing them in one transaction.
    pub fn import_database_with(
        &self,
        path: &std::path::Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        let st = self.offline("database import")?;
        let now = now_ms();
        progress(DatabaseProgress {
            stage: DatabaseStage::Reading,
            done: 0,
            total: 0,
        });
        let records = crate::records::file::read(path)?.records_to_import_with(
            &self.inner.key.1.to_string(),
            &self.inner.key.0.to_string(),
            &self.inner.grc,
            now,
            &mut |done, total| {
                progress(DatabaseProgress {
                    stage: DatabaseStage::Verifying,
                    done,
                    total,
                })
            },
        )?;
        let total = records.len() as u64;
        progress(DatabaseProgress {
            stage: DatabaseStage::Storing,
            done: 0,
            total,
        });
        let batch = records
            .into_iter()
            .map(|r| {
                let rows = if r.is_deleted() {
                    Vec::new()
                } else {
                    index_rows(&Attributes::parse(&r.attributes)?)
                };
                Ok((r, rows))
            })
            .collect::<Result<Vec<_>>>()?;
        let outcomes = self.with_records(|db| db.put_many(&batch))?;
        drop(st);
        progress(DatabaseProgress {
            stage: DatabaseStage::Storing,
            done: total,
            total,
        });
        let changed: Vec<Record> = batch
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| *o != crate::records::store::PutOutcome::Ignored)
            .map(|((r, _), _)| r)
            .collect();
        self.publish_local(&changed);
        Ok(changed.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_by(creator: &str) -> Record {
        Record {
            record_type: [1; 16],
            id: [2; 16],
            id_nonce: [0; 16],
            version: 1,
            flags: 0,
            creator: creator.into(),
            modifier: creator.into(),
            attributes: String::new(),
            created: 1,
            expires: 2,
            modified: 1,
            data: Vec::new(),
            security: Vec::new(),
        }
    }

    #[test]
    fn only_the_creator_or_an_admin_modifies_a_record() {
        let r = record_by("alice");
        assert!(may_modify("alice", false, &r), "the creator");
        assert!(may_modify("carol", true, &r), "an administrator");
        assert!(!may_modify("bob", false, &r), "another member");
    }

    #[test]
    fn record_ids_are_version_8_distinct_and_never_reserved() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let id = derive_id("alice", &[1; 16], 5, &new_id_nonce().unwrap());
            assert!(seen.insert(id));
            assert_eq!(id[7] >> 4, 8);
            assert_eq!(id[8] & 0xc0, 0x80);
            assert!(!is_reserved_type(&id));
        }
    }

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
