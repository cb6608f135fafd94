//! `peergroupd`: the per-user Peergroup service (see `docs/service.md`).
//!
//! On Windows a service owns the peer groups, so that handles of several processes to one
//! group share its network connections and closing the last handle in any process closes
//! them. This daemon plays that part: it listens on a Unix socket in a directory only its
//! user may enter, accepts only connections of its own user (`SO_PEERCRED`), and owns one
//! [`Peergroup`] (identity store, transport node, open groups).
//!
//! Each client connection has its own handle table. Per open group the daemon holds one
//! [`GroupHandle`] and counts the client handles to it across all connections; when the
//! count falls to 0 (a `Close`, the client's connection ending, or the client dying) the
//! daemon runs the group's layered close. Requests of one connection are served in order;
//! events are pushed as they come, through a bounded queue per connection.

#![forbid(unsafe_code)]

pub mod cli;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use peergroup_core::events::{EventFilter, EventSubscription};
use peergroup_core::group::GroupKey;
use peergroup_core::identity::hresult;
use peergroup_core::identity::PeerName;
use peergroup_core::service::proto::{
    ClientFrame, Request, Response, ServerFrame, PROTOCOL_VERSION,
};
use peergroup_core::service::read_frame;
use peergroup_core::{CoreError, GroupHandle, NewRecord, Peergroup};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// The longest `WaitStatus` the daemon serves; longer requests wait this long.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// What can stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Neither `--socket`, `$PEERGROUP_SERVICE_SOCKET` nor `$XDG_RUNTIME_DIR` names a socket.
    #[error("no socket path: pass --socket or set XDG_RUNTIME_DIR")]
    NoSocketPath,
    /// A file system or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket directory is not private to this user.
    #[error("{0} is not a directory owned by this user")]
    UnsafeDirectory(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0} exists and is not a socket; not replacing it")]
    NotASocket(PathBuf),
    /// Another daemon answers on the socket.
    #[error("a peergroupd already serves {0}")]
    AlreadyRunning(PathBuf),
    /// From the group layer (opening the identity store).
    #[error(transparent)]
    Core(#[from] CoreError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// The socket path when none is given: `$PEERGROUP_SERVICE_SOCKET`, else
/// `$XDG_RUNTIME_DIR/peergroup/peergroupd.sock`.
pub fn default_socket() -> Result<PathBuf, DaemonError> {
    peergroup_core::service::default_socket_path().ok_or(DaemonError::NoSocketPath)
}

/// This process's effective user id: the owner of `/proc/self`.
pub fn current_uid() -> Result<u32, DaemonError> {
    Ok(std::fs::metadata("/proc/self")
        .map_err(io("reading /proc/self"))?
        .uid())
}

/// Creates the socket's directory (mode 0700) if missing, checks that this user owns it and
/// tightens its mode to 0700, replaces a stale socket (one no daemon answers on) and binds.
pub async fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    let meta = std::fs::metadata(dir).map_err(io(format!("reading {}", dir.display())))?;
    if !meta.is_dir() || meta.uid() != current_uid()? {
        return Err(DaemonError::UnsafeDirectory(dir.to_owned()));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod 0700 {}", dir.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(DaemonError::AlreadyRunning(path.to_owned()));
            }
            tracing::info!(socket = %path.display(), "replacing a stale socket");
            std::fs::remove_file(path).map_err(io(format!("removing {}", path.display())))?;
        }
        Ok(_) => return Err(DaemonError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    }
    let listener = UnixListener::bind(path).map_err(io(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod 0600 {}", path.display())))?;
    Ok(listener)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The daemon's handle to one group. Requests hold it shared while they run; closing takes it
/// exclusively, so the close waits for the requests in flight (each bounded in time).
type SharedHandle = Arc<tokio::sync::RwLock<Option<GroupHandle>>>;

/// A group handle held for one request.
type HeldHandle = tokio::sync::OwnedRwLockReadGuard<Option<GroupHandle>, GroupHandle>;

/// One group the daemon holds open, and how many client handles point at it.
struct OpenGroup {
    handle: SharedHandle,
    count: usize,
}

struct State {
    pg: Peergroup,
    uid: u32,
    groups: Mutex<HashMap<GroupKey, OpenGroup>>,
}

/// The service: a [`Peergroup`] shared by every client connection.
#[derive(Clone)]
pub struct Daemon {
    state: Arc<State>,
}

impl Daemon {
    /// A daemon over `pg`, accepting connections of the user `uid` only.
    pub fn new(pg: Peergroup, uid: u32) -> Self {
        Daemon {
            state: Arc::new(State {
                pg,
                uid,
                groups: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many client handles point at the group `key` across all connections.
    pub fn open_count(&self, key: &GroupKey) -> usize {
        lock(&self.state.groups).get(key).map_or(0, |g| g.count)
    }

    /// Serves `listener` until `shutdown` completes; then drops every client connection and
    /// closes every group it holds with the layered close.
    pub async fn serve(
        &self,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        let mut clients = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            continue;
                        }
                    };
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == self.state.uid => {
                            let daemon = self.clone();
                            clients.spawn(async move { daemon.client(stream).await });
                        }
                        Ok(cred) => {
                            tracing::warn!(uid = cred.uid(), "refusing a connection of another user");
                        }
                        Err(e) => tracing::warn!("peer credentials: {e}"),
                    }
                }
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
            }
        }
        tracing::info!("shutting down");
        clients.shutdown().await;
        let open: Vec<OpenGroup> = lock(&self.state.groups).drain().map(|(_, g)| g).collect();
        for g in open {
            close_group(g.handle).await;
        }
        Ok(())
    }

    /// One client connection: its requests in order, its handles closed when it ends.
    async fn client(&self, stream: UnixStream) {
        let (mut read, write) = stream.into_split();
        // Responses are written by this task directly and events by their forwarders, each
        // frame whole under the lock: no hand-off to a writer task on a call's path.
        let out: Out = Arc::new(tokio::sync::Mutex::new(write));
        let mut conn = Connection {
            daemon: self.clone(),
            handles: HashMap::new(),
            next_handle: 1,
            next_subscription: 1,
            greeted: false,
        };
        loop {
            let body = match read_frame(&mut read).await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    // An oversized prefix or a torn frame: the stream cannot be resynchronised.
                    send(&out, &error_frame(0, &e)).await;
                    break;
                }
            };
            let frame = match ClientFrame::decode(&body) {
                Ok(f) => f,
                Err(e) => {
                    send(&out, &error_frame(0, &e)).await;
                    break;
                }
            };
            let (response, subscription, keep) = conn.handle(frame.request).await;
            let response = ServerFrame::Response {
                id: frame.id,
                response,
            };
            if !send(&out, &response).await {
                break;
            }
            if let Some((handle, id, sub)) = subscription {
                let task = tokio::spawn(forward(id, sub, out.clone()));
                if let Some(h) = conn.handles.get_mut(&handle) {
                    h.forwarders.push(task);
                }
            }
            if !keep {
                break;
            }
        }
        conn.close_all().await;
        // Whatever was written reaches the client before the socket closes.
        let _ = out.lock().await.shutdown().await;
    }

    fn release(&self, key: &GroupKey) -> Option<SharedHandle> {
        let mut groups = lock(&self.state.groups);
        let g = groups.get_mut(key)?;
        g.count -= 1;
        if g.count > 0 {
            return None;
        }
        groups.remove(key).map(|g| g.handle)
    }
}

/// Closes the group once no request holds its handle any more: the layered close.
async fn close_group(handle: SharedHandle) {
    let Some(h) = handle.write().await.take() else {
        return;
    };
    let name = h.group_name().to_string();
    match h.close().await {
        Ok(()) => tracing::info!(group = %name, "group closed: no client holds it"),
        Err(e) => tracing::warn!(group = %name, "close: {e}"),
    }
}

/// The write half of a client's socket, shared by its connection task and its forwarders.
type Out = Arc<tokio::sync::Mutex<OwnedWriteHalf>>;

/// Writes one frame whole; false once the client is gone.
async fn send(out: &Out, frame: &ServerFrame) -> bool {
    out.lock().await.write_all(&frame.encode()).await.is_ok()
}

/// Writes a subscription's events to the client as they come. A client that does not read
/// holds this task at the socket; its subscription's bounded queue then counts the loss.
async fn forward(id: u64, mut sub: EventSubscription, out: Out) {
    while let Some(item) = sub.next().await {
        let frame = ServerFrame::Event {
            subscription: id,
            item,
        };
        if !send(&out, &frame).await {
            return;
        }
    }
}

fn error_frame(id: u32, e: &CoreError) -> ServerFrame {
    ServerFrame::Response {
        id,
        response: error(e),
    }
}

fn error(e: &CoreError) -> Response {
    Response::Error {
        hresult: e.hresult(),
        message: e.to_string(),
    }
}

struct ClientHandle {
    key: GroupKey,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

struct Connection {
    daemon: Daemon,
    handles: HashMap<u64, ClientHandle>,
    next_handle: u64,
    next_subscription: u64,
    greeted: bool,
}

/// A new subscription to start once its response is sent: (handle, id, subscription).
type NewSubscription = (u64, u64, EventSubscription);

impl Connection {
    /// The daemon's handle to the group of this connection's `handle`, held for one request.
    async fn group(&self, handle: u64) -> Result<HeldHandle, CoreError> {
        let key = &self
            .handles
            .get(&handle)
            .ok_or(CoreError::InvalidGroup)?
            .key;
        let shared = lock(&self.daemon.state.groups)
            .get(key)
            .map(|g| g.handle.clone())
            .ok_or(CoreError::InvalidGroup)?;
        tokio::sync::OwnedRwLockReadGuard::try_map(shared.read_owned().await, Option::as_ref)
            .map_err(|_| CoreError::InvalidGroup)
    }

    /// Serves one request: the response, a subscription to start, and whether to go on.
    async fn handle(&mut self, request: Request) -> (Response, Option<NewSubscription>, bool) {
        if !self.greeted {
            return match request {
                Request::Hello { version } if version == PROTOCOL_VERSION => {
                    self.greeted = true;
                    (
                        Response::Hello {
                            version: PROTOCOL_VERSION,
                        },
                        None,
                        true,
                    )
                }
                Request::Hello { version } => {
                    (error(&CoreError::ServiceVersion(version)), None, false)
                }
                _ => (
                    error(&CoreError::ServiceMessage(
                        "the first request must be Hello".into(),
                    )),
                    None,
                    false,
                ),
            };
        }
        if let Request::Subscribe { handle, kinds } = request {
            return match self.subscribe(handle, &kinds).await {
                Ok((id, sub)) => (Response::Subscription(id), Some((handle, id, sub)), true),
                Err(e) => (error(&e), None, true),
            };
        }
        match self.serve(request).await {
            Ok(r) => (r, None, true),
            Err(e) => (error(&e), None, true),
        }
    }

    async fn subscribe(
        &mut self,
        handle: u64,
        kinds: &[peergroup_core::EventKind],
    ) -> Result<(u64, EventSubscription), CoreError> {
        if kinds.is_empty() {
            return Err(CoreError::InvalidRegistration("no event kind".into()));
        }
        let sub = self
            .group(handle)
            .await?
            .subscribe(EventFilter::kinds(kinds))?;
        let id = self.next_subscription;
        self.next_subscription += 1;
        Ok((id, sub))
    }

    async fn serve(&mut self, request: Request) -> Result<Response, CoreError> {
        Ok(match request {
            Request::Hello { .. } => {
                return Err(CoreError::ServiceMessage("Hello was already sent".into()))
            }
            Request::OpenGroup { identity, group } => {
                let identity: Option<PeerName> = identity.map(|i| i.parse()).transpose()?;
                let group: PeerName = group.parse()?;
                let key = self.open(identity.as_ref(), &group)?;
                let h = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(
                    h,
                    ClientHandle {
                        key,
                        forwarders: Vec::new(),
                    },
                );
                Response::Handle(h)
            }
            Request::Connect { handle, addrs } => {
                self.group(handle).await?.connect_by_address(&addrs).await?;
                Response::Ok
            }
            Request::Status { handle } => Response::Status(self.group(handle).await?.status()?),
            Request::WaitStatus {
                handle,
                bits,
                timeout_ms,
            } => {
                let wait = Duration::from_millis(timeout_ms.into()).min(MAX_WAIT);
                Response::Status(self.group(handle).await?.wait_status(bits, wait).await?)
            }
            Request::Close { handle } => {
                let h = self
                    .handles
                    .remove(&handle)
                    .ok_or(CoreError::InvalidGroup)?;
                self.release(h).await;
                Response::Ok
            }
            Request::AddRecord {
                handle,
                record_type,
                attributes,
                expires_ms,
                data,
            } => Response::RecordId(self.group(handle).await?.add_record(NewRecord {
                record_type,
                attributes,
                expires_ms,
                data,
            })?),
            Request::GetRecord { handle, id } => {
                Response::Record(Box::new(self.group(handle).await?.get_record(&id)?))
            }
            Request::EnumRecords {
                handle,
                record_type,
            } => {
                let ids: Vec<[u8; 16]> = self
                    .group(handle)
                    .await?
                    .enum_records(record_type)?
                    .iter()
                    .map(|r| r.id)
                    .collect();
                if ids.len() > peergroup_core::service::proto::MAX_RECORD_IDS {
                    return Err(CoreError::Service {
                        hresult: hresult::E_OUTOFMEMORY,
                        message: format!("{} records do not fit one response", ids.len()),
                    });
                }
                Response::RecordIds(ids)
            }
            Request::Subscribe { .. } => {
                return Err(CoreError::ServiceMessage(
                    "subscribe is served apart".into(),
                ))
            }
        })
    }

    /// Counts one more client handle to the group, opening it in the daemon if it is not.
    fn open(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<GroupKey, CoreError> {
        let state = &self.daemon.state;
        let mut groups = lock(&state.groups);
        let identity = match identity {
            Some(i) => i.clone(),
            None => state.pg.identities().default_identity()?,
        };
        let key = (identity, group.clone());
        if let Some(g) = groups.get_mut(&key) {
            g.count += 1;
            return Ok(key);
        }
        let handle = state.pg.open_group(Some(&key.0), group)?;
        tracing::info!(group = %group, "group opened for a client");
        groups.insert(
            key.clone(),
            OpenGroup {
                handle: Arc::new(tokio::sync::RwLock::new(Some(handle))),
                count: 1,
            },
        );
        Ok(key)
    }

    async fn release(&self, h: ClientHandle) {
        h.forwarders.iter().for_each(|t| t.abort());
        if let Some(last) = self.daemon.release(&h.key) {
            close_group(last).await;
        }
    }

    async fn close_all(&mut self) {
        let handles: Vec<ClientHandle> = self.handles.drain().map(|(_, h)| h).collect();
        for h in handles {
            self.release(h).await;
        }
    }
}
