//! The group calls made through `peergroupd`: what [`crate::Peergroup`] and
//! [`crate::GroupHandle`] do when a service serves them.
//!
//! Each call is one request of the process's [`Session`]; the answer is what the in-process
//! call returns, errors included (restored to the same [`CoreError`] variant where it
//! carries only text). Calls that may wait (connect, close, password join, sending data) run
//! on tokio's blocking pool when called from a runtime, so they never stall its workers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::proto::{Request, Response};
use super::session::{unexpected, Session, SessionConfig};
use crate::calls::{GroupCall, GroupReply};
use crate::error::{CoreError, Result};
use crate::events::{EventFilter, EventSubscription, Notifier, DEFAULT_QUEUE};
use crate::identity::PeerName;
use crate::properties::GroupProperties;
use crate::records::record::Record;
use crate::state::lock;
use crate::values::DatabaseProgress;

/// Takes the one answer shape a request has, or reports the wrong one.
macro_rules! answer {
    ($result:expr, $pat:pat => $value:expr) => {
        match $result? {
            $pat => Ok($value),
            other => Err(unexpected(&other)),
        }
    };
}

/// The longest a close waits for the service's answer. The service bounds its side: the
/// close waits for the handle's calls in flight (a status wait at most 60 s) and then runs
/// the layered close, whose steps time out in seconds; no answer by then means it is wedged.
const CLOSE_BOUND: std::time::Duration = std::time::Duration::from_secs(90);

/// Runs a blocking call from async code: on tokio's blocking pool inside a runtime, else here.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => match rt.spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        },
        Err(_) => f(),
    }
}

fn name(s: Option<&PeerName>) -> Option<String> {
    s.map(|p| p.to_string())
}

/// An absolute path for the service, which does not share the caller's working directory.
fn absolute(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path)
        .map_err(|e| CoreError::InvalidArgument(format!("{}: {e}", path.display())))?;
    abs.into_os_string()
        .into_string()
        .map_err(|p| CoreError::InvalidArgument(format!("{p:?} is not UTF-8")))
}

/// The service side of a [`crate::Peergroup`]: its session, made again after the service
/// restarted.
pub(crate) struct Remote {
    config: SessionConfig,
    session: Mutex<Option<Arc<Session>>>,
}

impl Remote {
    /// A remote instance; `session` is one already started (the probe of `Mode::Auto`).
    pub(crate) fn new(config: SessionConfig, session: Option<Arc<Session>>) -> Remote {
        Remote {
            config,
            session: Mutex::new(session),
        }
    }

    /// The live session, starting one if there is none or the last one's service went away.
    fn session(&self) -> Result<Arc<Session>> {
        let mut s = lock(&self.session);
        if let Some(live) = s.as_ref().filter(|s| !s.is_dead()) {
            return Ok(live.clone());
        }
        let new = Session::start(&self.config)?;
        *s = Some(new.clone());
        Ok(new)
    }

    fn handle(&self, request: Request) -> Result<(RemoteGroup, bool)> {
        let session = self.session()?;
        let (handle, identity, group, flag) = answer!(session.call(request),
            Response::Handle { handle, identity, group, flag } => (handle, identity, group, flag))?;
        let group = RemoteGroup {
            session,
            handle,
            identity: identity.parse()?,
            group: group.parse()?,
            closed: AtomicBool::new(false),
        };
        Ok((group, flag))
    }

    pub(crate) async fn local_addr(&self) -> Option<SocketAddr> {
        let session = self.session().ok()?;
        off_runtime(move || answer!(session.call(Request::LocalAddr), Response::Addr(a) => a))
            .await
            .ok()
            .flatten()
    }

    pub(crate) fn create_group(&self, properties: GroupProperties) -> Result<RemoteGroup> {
        Ok(self.handle(Request::CreateGroup(properties))?.0)
    }

    pub(crate) fn open_group(
        &self,
        identity: Option<&PeerName>,
        group: &PeerName,
    ) -> Result<RemoteGroup> {
        let request = Request::OpenGroup {
            identity: name(identity),
            group: group.to_string(),
        };
        Ok(self.handle(request)?.0)
    }

    pub(crate) fn join(
        &self,
        identity: Option<&PeerName>,
        invitation: &str,
    ) -> Result<RemoteGroup> {
        let request = Request::Join {
            identity: name(identity),
            invitation: invitation.to_owned(),
        };
        Ok(self.handle(request)?.0)
    }

    pub(crate) async fn password_join(
        self: &Arc<Self>,
        identity: Option<&PeerName>,
        invitation: &str,
        password: &str,
    ) -> Result<(RemoteGroup, bool)> {
        let request = Request::PasswordJoin {
            identity: name(identity),
            invitation: invitation.to_owned(),
            password: password.to_owned(),
        };
        let this = self.clone();
        off_runtime(move || this.handle(request)).await
    }

    pub(crate) async fn delete_group(
        self: &Arc<Self>,
        identity: Option<&PeerName>,
        group: &PeerName,
    ) -> Result<()> {
        let request = Request::DeleteGroup {
            identity: name(identity),
            group: group.to_string(),
        };
        let session = self.session()?;
        off_runtime(move || answer!(session.call(request), Response::Ok => ())).await
    }

    pub(crate) fn import_config(
        &self,
        xml: &str,
        password: &str,
        overwrite: bool,
    ) -> Result<(PeerName, PeerName)> {
        let request = Request::ImportConfig {
            xml: xml.to_owned(),
            password: password.to_owned(),
            overwrite,
        };
        let (i, g) = answer!(self.session()?.call(request), Response::Names(i, g) => (i, g))?;
        Ok((i.parse()?, g.parse()?))
    }
}

/// A handle to a group the service holds: the session's handle number.
pub(crate) struct RemoteGroup {
    session: Arc<Session>,
    handle: u64,
    identity: PeerName,
    group: PeerName,
    closed: AtomicBool,
}

/// A password-authentication hold the service keeps for this process.
pub(crate) struct RemoteHold {
    session: Arc<Session>,
    id: u64,
}

impl Drop for RemoteHold {
    fn drop(&mut self) {
        let _ = self.session.call(Request::ReleaseHold(self.id));
    }
}

impl RemoteGroup {
    fn call(&self, request: Request) -> Result<Response> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        self.session.call(request)
    }

    /// Runs a call that may wait, off the runtime.
    async fn call_off(&self, request: Request) -> Result<Response> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        let session = self.session.clone();
        off_runtime(move || session.call(request)).await
    }

    /// A [`GroupCall`] through the service: one request, one answer.
    pub(crate) fn call_group(&self, call: GroupCall) -> Result<GroupReply> {
        let request = Request::Group {
            handle: self.handle,
            call,
        };
        answer!(self.call(request), Response::Group(reply) => reply)
    }

    pub(crate) fn group_name(&self) -> &PeerName {
        &self.group
    }

    pub(crate) fn identity(&self) -> &PeerName {
        &self.identity
    }

    pub(crate) fn subscribe_with(
        &self,
        filter: EventFilter,
        capacity: usize,
        notifier: Option<Notifier>,
    ) -> Result<EventSubscription> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        self.session
            .subscribe(self.handle, filter, capacity, notifier)
    }

    pub(crate) fn subscribe(&self, filter: EventFilter) -> Result<EventSubscription> {
        self.subscribe_with(filter, DEFAULT_QUEUE, None)
    }

    pub(crate) async fn connect_by_address(&self, addrs: &[SocketAddr]) -> Result<()> {
        let request = Request::Connect {
            handle: self.handle,
            addrs: addrs.to_vec(),
        };
        answer!(self.call_off(request).await, Response::Ok => ())
    }

    pub(crate) async fn wait_status(&self, bits: u32, timeout: std::time::Duration) -> Result<u32> {
        let request = Request::WaitStatus {
            handle: self.handle,
            bits,
            timeout_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
        };
        answer!(self.call_off(request).await, Response::U32(s) => s)
    }

    /// Closes this handle in the service (the last handle anywhere closes the group there).
    pub(crate) async fn close(self) -> Result<()> {
        if self.closed.swap(true, Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        let session = self.session.clone();
        let handle = self.handle;
        // Its subscriptions end when the service says `Ended`, after the group's last events.
        off_runtime(move || session.close_handle(handle, CLOSE_BOUND)).await
    }

    pub(crate) fn get_record(&self, id: &[u8; 16]) -> Result<Record> {
        let bytes =
            answer!(self.call(Request::GetRecord(self.handle, *id)), Response::Record(b) => b)?;
        Ok(Record::decode(&bytes)?)
    }

    /// Records that come in parts: every part decoded, in order.
    fn records(&self, request: Request) -> Result<Vec<Record>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        let mut out = Vec::new();
        let mut take = |encoded: Vec<serde_bytes::ByteBuf>| -> Result<()> {
            for bytes in encoded {
                out.push(Record::decode(&bytes)?);
            }
            Ok(())
        };
        let last = self.session.call_with(request, |part| match part {
            Response::Records { records, .. } => take(records),
            other => Err(unexpected(&other)),
        })?;
        match last {
            Response::Records { records, .. } => take(records)?,
            other => return Err(unexpected(&other)),
        }
        Ok(out)
    }

    pub(crate) fn enum_records(&self, record_type: Option<[u8; 16]>) -> Result<Vec<Record>> {
        self.records(Request::EnumRecords(self.handle, record_type))
    }

    pub(crate) fn search_records(&self, criteria: &str) -> Result<Vec<Record>> {
        self.records(Request::SearchRecords(self.handle, criteria.to_owned()))
    }

    fn database(
        &self,
        request: Request,
        progress: &mut dyn FnMut(DatabaseProgress),
    ) -> Result<u64> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CoreError::InvalidGroup);
        }
        let last = self.session.call_with(request, |part| match part {
            Response::Progress(p) => {
                progress(p);
                Ok(())
            }
            other => Err(unexpected(&other)),
        })?;
        match last {
            Response::U64(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn export_database_with(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(DatabaseProgress),
    ) -> Result<u64> {
        self.database(
            Request::ExportDatabase(self.handle, absolute(path)?),
            progress,
        )
    }

    pub(crate) fn import_database_with(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(DatabaseProgress),
    ) -> Result<u64> {
        self.database(
            Request::ImportDatabase(self.handle, absolute(path)?),
            progress,
        )
    }

    pub(crate) fn hold_password_authentication(&self) -> Result<RemoteHold> {
        let request = Request::HoldPasswordAuthentication(self.handle);
        let id = answer!(self.call(request), Response::U64(id) => id)?;
        Ok(RemoteHold {
            session: self.session.clone(),
            id,
        })
    }

    pub(crate) fn resume_password_authentication(&self, hold: &RemoteHold) -> Result<()> {
        // A hold of another session is not this group's; within the session the service
        // checks the group (another handle's hold may be of the same group).
        if !Arc::ptr_eq(&hold.session, &self.session) {
            return Err(CoreError::InvalidRegistration(
                "the registration is not of this group".into(),
            ));
        }
        let request = Request::ResumePasswordAuthentication(self.handle, hold.id);
        answer!(self.call(request), Response::Ok => ())
    }

    pub(crate) async fn send_data(&self, id: u64, data_type: &[u8; 16], data: &[u8]) -> Result<()> {
        if data.len() > crate::data::MAX_DATA_LEN {
            return Err(CoreError::DataTooLarge(data.len()));
        }
        let request = Request::SendData {
            handle: self.handle,
            connection: id,
            data_type: *data_type,
            data: data.to_vec(),
        };
        answer!(self.call_off(request).await, Response::Ok => ())
    }
}

impl Drop for RemoteGroup {
    fn drop(&mut self) {
        // Fallback only: `close` is the way. The service counts this handle out.
        if !self.closed.swap(true, Ordering::Relaxed) {
            let _ = self.session.close_handle(self.handle, CLOSE_BOUND);
        }
    }
}
