//! The public face of the group layer: [`Peergroup`] and [`GroupHandle`], served in this
//! process ([`LocalPeergroup`], [`LocalGroup`]) or by `peergroupd` through the process's
//! service session, as `$PEERGROUP_SERVICE` says ([`Mode`]).
//!
//! Both ways answer every call alike, errors included; what differs is who owns the network:
//! through the service, handles of several processes to one group share its connections, and
//! the group closes when the last handle in any process closes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::calls::{GroupCall, GroupReply};
use crate::error::{CoreError, Result};
use crate::events::{EventFilter, EventSubscription, Notifier};
use crate::group::{LocalGroup, LocalPeergroup};
use crate::handle::password::LocalPasswordHold;
use crate::identity::{IdentityStore, PeerName};
use crate::invitation::Invitation;
use crate::properties::GroupProperties;
use crate::records::record::Record;
use crate::service::proto::WireLimits;
use crate::service::remote::{Remote, RemoteGroup, RemoteHold};
use crate::service::{default_socket_path, Mode, Session, SessionConfig};
use crate::values::{DatabaseProgress, NewRecord};

/// One user's groups: the identity store, and the groups and network either of this process
/// or of `peergroupd`.
#[derive(Clone)]
pub struct Peergroup {
    identities: IdentityStore,
    imp: Imp,
}

#[derive(Clone)]
enum Imp {
    Local(LocalPeergroup),
    Remote(Arc<Remote>),
}

impl Peergroup {
    /// A library instance over an identity store; the network binds on first use to
    /// `listen` (tests: `127.0.0.1:0`), by default `$PEERGROUP_LISTEN` or `[::]:0`. Served by
    /// `peergroupd` when `$PEERGROUP_SERVICE` says so ([`Mode::from_env`]).
    pub fn new(identities: IdentityStore, listen: Option<SocketAddr>) -> Self {
        Self::with_limits(identities, listen, crate::transport::Limits::default())
    }

    /// [`Peergroup::new`] with the transport's bounds and timeouts (e.g. a shorter idle
    /// timeout, so a lost peer is noticed sooner). Through the service they apply when the
    /// service makes the node of this data directory.
    pub fn with_limits(
        identities: IdentityStore,
        listen: Option<SocketAddr>,
        limits: crate::transport::Limits,
    ) -> Self {
        Self::with_mode(identities, listen, limits, Mode::from_env())
    }

    /// An instance in the given [`Mode`]. In [`Mode::Auto`] the service is asked now; if
    /// none answers, the instance stays in this process for its whole life.
    pub fn with_mode(
        identities: IdentityStore,
        listen: Option<SocketAddr>,
        limits: crate::transport::Limits,
        mode: Mode,
    ) -> Self {
        let socket = default_socket_path();
        let remote = match (mode, socket) {
            (Mode::Off, _) | (Mode::Auto, None) => None,
            (Mode::Required, None) => Some(SessionConfig {
                // No socket can be named: every call reports the service missing.
                socket: std::path::PathBuf::new(),
                home: identities.home().to_owned(),
                listen,
                limits: WireLimits::from(&limits),
            }),
            (_, Some(socket)) => Some(SessionConfig {
                socket,
                home: std::path::absolute(identities.home())
                    .unwrap_or_else(|_| identities.home().to_owned()),
                listen: listen.or_else(env_listen),
                limits: WireLimits::from(&limits),
            }),
        };
        let imp = match remote {
            None => Imp::Local(LocalPeergroup::with_limits(
                identities.clone(),
                listen,
                limits,
            )),
            Some(config) if mode == Mode::Required => {
                Imp::Remote(Arc::new(Remote::new(config, None)))
            }
            Some(config) => match Session::start(&config) {
                Ok(session) => Imp::Remote(Arc::new(Remote::new(config, Some(session)))),
                Err(e) => {
                    tracing::debug!("no peergroupd ({e}): groups run in this process");
                    Imp::Local(LocalPeergroup::with_limits(
                        identities.clone(),
                        listen,
                        limits,
                    ))
                }
            },
        };
        Peergroup { identities, imp }
    }

    /// An instance that runs its groups in this process whatever the environment says:
    /// what `peergroupd` itself uses.
    pub fn embedded(
        identities: IdentityStore,
        listen: Option<SocketAddr>,
        limits: crate::transport::Limits,
    ) -> Self {
        Self::with_mode(identities, listen, limits, Mode::Off)
    }

    /// An instance served by the `peergroupd` listening on `socket`, whatever the
    /// environment says; fails with `PEER_E_SERVICE_NOT_AVAILABLE` when none answers there.
    pub fn through_service(
        identities: IdentityStore,
        listen: Option<SocketAddr>,
        limits: crate::transport::Limits,
        socket: std::path::PathBuf,
    ) -> Result<Self> {
        let config = SessionConfig {
            socket,
            home: std::path::absolute(identities.home())
                .unwrap_or_else(|_| identities.home().to_owned()),
            listen: listen.or_else(env_listen),
            limits: WireLimits::from(&limits),
        };
        let session = Session::start(&config)?;
        Ok(Peergroup {
            identities,
            imp: Imp::Remote(Arc::new(Remote::new(config, Some(session)))),
        })
    }

    /// True when `peergroupd` serves this instance.
    pub fn is_service(&self) -> bool {
        matches!(self.imp, Imp::Remote(_))
    }

    /// The in-process instance, when this is one.
    pub fn as_local(&self) -> Option<&LocalPeergroup> {
        match &self.imp {
            Imp::Local(l) => Some(l),
            Imp::Remote(_) => None,
        }
    }

    /// The transport node's bound address, while any group is online.
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        match &self.imp {
            Imp::Local(l) => l.local_addr().await,
            Imp::Remote(r) => r.local_addr().await,
        }
    }

    /// The identity store.
    pub fn identities(&self) -> &IdentityStore {
        &self.identities
    }

    /// `PeerGroupCreate`: a new group with this identity as its administrator.
    pub fn create_group(&self, properties: GroupProperties) -> Result<GroupHandle> {
        Ok(match &self.imp {
            Imp::Local(l) => GroupHandle::local(l.create_group(properties)?),
            Imp::Remote(r) => GroupHandle::remote(r.create_group(properties)?),
        })
    }

    /// `PeerGroupOpen`: a new handle to a group this identity belongs to.
    pub fn open_group(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<GroupHandle> {
        Ok(match &self.imp {
            Imp::Local(l) => GroupHandle::local(l.open_group(identity, group)?),
            Imp::Remote(r) => GroupHandle::remote(r.open_group(identity, group)?),
        })
    }

    /// `PeerGroupJoin`: stores a group from an invitation with a membership certificate.
    pub fn join(&self, identity: Option<&PeerName>, invitation: &str) -> Result<GroupHandle> {
        Ok(match &self.imp {
            Imp::Local(l) => GroupHandle::local(l.join(identity, invitation)?),
            Imp::Remote(r) => GroupHandle::remote(r.join(identity, invitation)?),
        })
    }

    /// `PeerGroupPasswordJoin`: authenticates with the group password at a member; the flag
    /// is true when the group was new to this identity.
    pub async fn password_join(
        &self,
        identity: Option<&PeerName>,
        invitation: &str,
        password: &str,
    ) -> Result<(GroupHandle, bool)> {
        Ok(match &self.imp {
            Imp::Local(l) => {
                let (h, new) = l.password_join(identity, invitation, password).await?;
                (GroupHandle::local(h), new)
            }
            Imp::Remote(r) => {
                let (h, new) = r.password_join(identity, invitation, password).await?;
                (GroupHandle::remote(h), new)
            }
        })
    }

    /// Parses an invitation without acting on it.
    pub fn parse_invitation(invitation: &str) -> Result<Invitation> {
        LocalPeergroup::parse_invitation(invitation)
    }

    /// `PeerGroupDelete`.
    pub async fn delete_group(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<()> {
        match &self.imp {
            Imp::Local(l) => l.delete_group(identity, group).await,
            Imp::Remote(r) => r.delete_group(identity, group).await,
        }
    }

    /// `PeerGroupImportConfig`: (identity, group) of the imported configuration.
    pub fn import_config(
        &self,
        xml: &str,
        password: &str,
        overwrite: bool,
    ) -> Result<(PeerName, PeerName)> {
        match &self.imp {
            Imp::Local(l) => l.import_config(xml, password, overwrite),
            Imp::Remote(r) => r.import_config(xml, password, overwrite),
        }
    }
}

fn env_listen() -> Option<SocketAddr> {
    std::env::var("PEERGROUP_LISTEN").ok()?.parse().ok()
}

/// One handle to an open group (`HGROUP`). Closing the last handle (in any process, when the
/// service serves it) closes the group.
pub struct GroupHandle {
    imp: HandleImp,
}

enum HandleImp {
    Local(LocalGroup),
    // Boxed: it holds both peer names, and a handle is moved around by value.
    Remote(Box<RemoteGroup>),
}

/// Dispatches a call to the in-process or the service handle.
macro_rules! each {
    ($self:ident, $h:ident => $call:expr) => {
        match &$self.imp {
            HandleImp::Local($h) => $call,
            HandleImp::Remote($h) => $call,
        }
    };
}

/// An application's claim to decide when password authentication goes on after a failure.
/// Dropping it gives the claim up (and ends the suspension if it was the last one).
pub struct PasswordHold {
    imp: HoldImp,
}

enum HoldImp {
    Local(LocalPasswordHold),
    Remote(RemoteHold),
}

impl GroupHandle {
    fn local(h: LocalGroup) -> Self {
        GroupHandle {
            imp: HandleImp::Local(h),
        }
    }

    fn remote(h: RemoteGroup) -> Self {
        GroupHandle {
            imp: HandleImp::Remote(Box::new(h)),
        }
    }

    /// The in-process handle, or the service's: what the calls of [`crate::calls`] dispatch on.
    pub(crate) fn local_or_remote(&self) -> std::result::Result<&LocalGroup, &RemoteGroup> {
        match &self.imp {
            HandleImp::Local(h) => Ok(h),
            HandleImp::Remote(h) => Err(h),
        }
    }

    /// Runs a [`GroupCall`] on this handle: in this process, or through the service.
    pub fn run_call(&self, call: GroupCall) -> Result<GroupReply> {
        match &self.imp {
            HandleImp::Local(h) => call.run(h),
            HandleImp::Remote(h) => h.call_group(call),
        }
    }

    /// The group's peer name.
    pub fn group_name(&self) -> &PeerName {
        each!(self, h => h.group_name())
    }

    /// The identity holding this handle.
    pub fn identity(&self) -> &PeerName {
        each!(self, h => h.identity())
    }

    /// Subscribes to this group's events that `filter` matches (`PeerGroupRegisterEvent`);
    /// see [`LocalGroup::subscribe`].
    pub fn subscribe(&self, filter: EventFilter) -> Result<EventSubscription> {
        each!(self, h => h.subscribe(filter))
    }

    /// [`GroupHandle::subscribe`] with a queue of `capacity` items and a `notifier` called
    /// each time the queue goes from empty to non-empty.
    pub fn subscribe_with(
        &self,
        filter: EventFilter,
        capacity: usize,
        notifier: Option<Notifier>,
    ) -> Result<EventSubscription> {
        each!(self, h => h.subscribe_with(filter, capacity, notifier))
    }

    /// `PeerGroupConnect`: brings the group online; the outcome arrives as status changes.
    pub async fn connect(&self) -> Result<()> {
        self.connect_by_address(&[]).await
    }

    /// `PeerGroupConnectByAddress`.
    pub async fn connect_by_address(&self, addrs: &[SocketAddr]) -> Result<()> {
        each!(self, h => h.connect_by_address(addrs).await)
    }

    /// Waits until the status has all of `bits`, or `timeout` passed; the status then.
    pub async fn wait_status(&self, bits: u32, timeout: std::time::Duration) -> Result<u32> {
        each!(self, h => h.wait_status(bits, timeout).await)
    }

    /// `PeerGroupClose`: the last handle closes the group with the layered close.
    pub async fn close(self) -> Result<()> {
        match self.imp {
            HandleImp::Local(h) => h.close().await,
            HandleImp::Remote(h) => (*h).close().await,
        }
    }

    /// `PeerGroupAddRecord`.
    pub fn add_record(&self, new: NewRecord) -> Result<[u8; 16]> {
        self.add_records(vec![new])?
            .pop()
            .ok_or_else(|| CoreError::ServiceMessage("no record id".into()))
    }

    /// `PeerGroupGetRecord`.
    pub fn get_record(&self, id: &[u8; 16]) -> Result<Record> {
        each!(self, h => h.get_record(id))
    }

    /// `PeerGroupEnumRecords`: every record, or those of one type.
    pub fn enum_records(&self, record_type: Option<[u8; 16]>) -> Result<Vec<Record>> {
        each!(self, h => h.enum_records(record_type))
    }

    /// `PeerGroupSearchRecords` with Microsoft's XML criteria.
    pub fn search_records(&self, criteria: &str) -> Result<Vec<Record>> {
        each!(self, h => h.search_records(criteria))
    }

    /// `PeerGroupExportDatabase`: the number of records written.
    pub fn export_database(&self, path: &Path) -> Result<u64> {
        self.export_database_with(path, |_| {})
    }

    /// [`GroupHandle::export_database`], telling `progress` how far it got.
    pub fn export_database_with(
        &self,
        path: &Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        match &self.imp {
            HandleImp::Local(h) => h.export_database_with(path, progress),
            HandleImp::Remote(h) => h.export_database_with(path, &mut progress),
        }
    }

    /// `PeerGroupImportDatabase`: the number of records that changed the database.
    pub fn import_database(&self, path: &Path) -> Result<u64> {
        self.import_database_with(path, |_| {})
    }

    /// [`GroupHandle::import_database`], telling `progress` how far it got.
    pub fn import_database_with(
        &self,
        path: &Path,
        mut progress: impl FnMut(DatabaseProgress),
    ) -> Result<u64> {
        match &self.imp {
            HandleImp::Local(h) => h.import_database_with(path, progress),
            HandleImp::Remote(h) => h.import_database_with(path, &mut progress),
        }
    }

    /// `PeerGroupExportConfig`, sealed with `password`.
    pub fn export_config(&self, password: &str) -> Result<String> {
        self.export_config_with_rounds(password, crate::identity::export::DEFAULT_ITERATIONS)
    }

    /// Takes a [`PasswordHold`]: from now on a failed password authentication at this
    /// member suspends password authentication until
    /// [`GroupHandle::resume_password_authentication`].
    pub fn hold_password_authentication(&self) -> Result<PasswordHold> {
        let imp = match &self.imp {
            HandleImp::Local(h) => HoldImp::Local(h.hold_password_authentication()?),
            HandleImp::Remote(h) => HoldImp::Remote(h.hold_password_authentication()?),
        };
        Ok(PasswordHold { imp })
    }

    /// `PeerGroupResumePasswordAuthentication`.
    pub fn resume_password_authentication(&self, hold: &PasswordHold) -> Result<()> {
        match (&self.imp, &hold.imp) {
            (HandleImp::Local(h), HoldImp::Local(x)) => h.resume_password_authentication(x),
            (HandleImp::Remote(h), HoldImp::Remote(x)) => h.resume_password_authentication(x),
            _ => Err(CoreError::InvalidRegistration(
                "the registration is not of this group".into(),
            )),
        }
    }

    /// `PeerGroupSendData`: one whole message on a neighbour or direct connection.
    pub async fn send_data(&self, id: u64, data_type: &[u8; 16], data: &[u8]) -> Result<()> {
        each!(self, h => h.send_data(id, data_type, data).await)
    }
}
