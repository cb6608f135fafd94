//! What the commands share: the identity they act as (`--as`), the library instance and its
//! runtime, opening a group and closing it after the work, waiting for a member, and the
//! arguments several commands read the same way (peer names, roles, input files).
//!
//! Every group command starts the same way: the instance over the home, then the `--as`
//! identity, then a runtime, then `PeerGroupOpen` of the group named on the command line
//! ([`Context`]); it ends by closing its handle ([`close_after`]).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::io::STATUS_HAS_CONNECTIONS;
use peergroup_core::{GroupHandle, Peergroup};

use crate::output::CliError;
use crate::progress::SyncProgress;

/// Which identity a group command acts as.
#[derive(Args)]
pub struct As {
    /// Identity peer name (default: the default identity).
    #[arg(long = "as", global = true)]
    pub identity: Option<String>,
}

/// The `--as` identity, parsed; `None` when it was not given (the default identity).
pub(crate) fn identity(a: &As) -> Result<Option<PeerName>, CliError> {
    a.identity
        .as_deref()
        .map(|s| s.parse::<PeerName>().map_err(CliError::from))
        .transpose()
}

/// A peer name argument: an identity's or a group's.
pub(crate) fn peer_name(s: &str) -> Result<PeerName, CliError> {
    Ok(s.parse::<PeerName>()?)
}

/// A role argument: admin, inviting-member or member.
pub(crate) fn role(text: &str) -> Result<Role, CliError> {
    match text {
        "admin" => Ok(Role::Admin),
        "inviting-member" => Ok(Role::InvitingMember),
        "member" => Ok(Role::Member),
        other => Err(CliError::usage(format!(
            "unknown role {other:?}: admin, inviting-member or member"
        ))),
    }
}

/// The text of an input file argument, "-" for standard input.
pub(crate) fn read_input(path: &PathBuf) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::io("reading standard input", &e))
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::io(format!("reading {}", path.display()), &e))
    }
}

/// The runtime a command's group calls block on: two workers are plenty for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal("tokio runtime", e))
}

/// Runs `work` on a new [`runtime`], then shuts the runtime down waiting at most 100 ms: a
/// command that reads standard input on a blocking thread exits without waiting for that
/// input to end (dropping the runtime would).
pub(crate) fn block_on_detached<T>(
    work: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let rt = runtime()?;
    let result = rt.block_on(work);
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// What a group command works with: the library instance over its home and the identity it
/// acts as.
pub(crate) struct Context {
    store: IdentityStore,
    /// The library instance (in this process, or `peergroupd`'s).
    pub pg: Peergroup,
    /// The identity the command acts as; `None`: the default identity.
    pub me: Option<PeerName>,
}

impl Context {
    /// The instance over `store`, then the `--as` identity (in that order, so a bad `--as`
    /// fails as it always did).
    pub fn new(store: &IdentityStore, who: &As) -> Result<Self, CliError> {
        let pg = Peergroup::new(store.clone(), None);
        let me = identity(who)?;
        Ok(Context {
            store: store.clone(),
            pg,
            me,
        })
    }

    /// The instance over `store`, acting as `me` (already parsed).
    pub fn with_identity(store: &IdentityStore, me: Option<PeerName>) -> Self {
        Context {
            store: store.clone(),
            pg: Peergroup::new(store.clone(), None),
            me,
        }
    }

    /// The identity the command acts as, by name: `--as`, else the default identity (created
    /// the first time it is asked for). Groups opened afterwards are opened as that name.
    pub fn resolve_identity(&mut self) -> Result<PeerName, CliError> {
        let me = match &self.me {
            Some(m) => m.clone(),
            None => self.store.default_identity()?,
        };
        self.me = Some(me.clone());
        Ok(me)
    }

    /// Opens the group named `group` (`PeerGroupOpen`) as the command's identity.
    pub fn open(&self, group: &str) -> Result<GroupHandle, CliError> {
        Ok(self.pg.open_group(self.me.as_ref(), &peer_name(group)?)?)
    }
}

/// Closes `h` after the work done on it and returns the work's result: the work's error
/// comes first, a failed close is reported only after work that succeeded.
pub(crate) async fn close_after<T, E>(h: GroupHandle, work: Result<T, E>) -> Result<T, CliError>
where
    CliError: From<E>,
{
    let closed = h.close().await;
    let value = work?;
    closed?;
    Ok(value)
}

/// Waits until the group has a connection to a member, or `timeout` passed
/// ([`GroupHandle::wait_status`]), with the synchronisation spinner running meanwhile (on a
/// terminal); the status then.
pub(crate) async fn wait_for_member(
    h: &GroupHandle,
    timeout: Duration,
) -> Result<u32, peergroup_core::CoreError> {
    let mut sync = SyncProgress::new(&h.group_name().to_string());
    let waited = h.wait_status(STATUS_HAS_CONNECTIONS, timeout);
    tokio::pin!(waited);
    let status = loop {
        tokio::select! {
            status = &mut waited => break status,
            _ = tokio::time::sleep(Duration::from_millis(100)), if sync.running() => {
                sync.update(h.status()?, h.record_count().ok());
            }
        }
    };
    sync.finish();
    status
}
