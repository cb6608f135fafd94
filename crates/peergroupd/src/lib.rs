//! `peergroupd`: the per-user Peergroup service (see `docs/service.md`).
//!
//! On Windows a service owns the peer groups, so that handles of several processes to one
//! group share its network connections and closing the last handle in any process closes
//! them. This daemon plays that part: it listens on a Unix socket in a directory only its
//! user may enter, accepts only connections of its own user (`SO_PEERCRED`), and owns one
//! [`Peergroup`] (identity store, transport node, open groups).
//!
//! Each client process is one session (see `peergroup_core::service::proto`): its handles,
//! subscriptions and password holds live in `session`, and every client handle is a handle
//! of the daemon's in-process instance for the client's data directory, so the group layer
//! counts handles across all processes and runs the layered close when the last one closes
//! (a `Close`, or the client's connections all ending: it exited or died). Requests are
//! served per connection, in order; events are pushed on the session's event connection.

#![forbid(unsafe_code)]

pub mod cli;
mod serve;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use peergroup_core::group::GroupKey;
use peergroup_core::identity::IdentityStore;
use peergroup_core::service::proto::{ClientFrame, Request, Response, ServerFrame, WireLimits};
use peergroup_core::service::read_frame;
use peergroup_core::transport::Limits;
use peergroup_core::{CoreError, Peergroup};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use session::Session;

/// The longest `WaitStatus` the daemon serves; longer requests wait this long.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long a connection may take to send its first request (`Hello` or `Attach`) before it
/// is closed: a connection that says nothing holds a descriptor and a task for nothing.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections accepted that have not yet sent their first request; one more is closed at
/// once. Bounds what idle or half-sent connections can hold (with [`MAX_HELLO_FRAME`]).
pub const MAX_UNGREETED: usize = 32;
/// Longest first request, in bytes: a `Hello` carries a directory, an address and limits.
/// Checked before anything is allocated (a larger frame would have the daemon wait for its
/// body with the buffer held).
pub const MAX_HELLO_FRAME: usize = 64 * 1024;
/// Longest wait after `accept` failed (out of descriptors, say) before trying again; the
/// wait doubles from [`ACCEPT_BACKOFF_MIN`] to this, so a full descriptor table does not
/// spin the daemon.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// First wait after `accept` failed.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// At most one warning per this interval for refused or failed accepts (with how many
/// there were since the last).
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

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

/// The write half of a client connection, shared by the task serving it and, for the event
/// connection, the subscriptions' forwarders; each frame is written whole under the lock.
type Out = Arc<tokio::sync::Mutex<OwnedWriteHalf>>;

/// Writes one frame whole; false once the client is gone.
async fn send(out: &Out, frame: &ServerFrame) -> bool {
    out.lock().await.write_all(&frame.encode()).await.is_ok()
}

/// A connection's first frame, refused before its body is read or allocated when longer
/// than [`MAX_HELLO_FRAME`].
async fn first_frame(
    read: &mut tokio::net::unix::OwnedReadHalf,
) -> Result<Option<Vec<u8>>, CoreError> {
    use peergroup_core::service::proto::{frame_len, HEADER_LEN};
    use tokio::io::AsyncReadExt;
    let mut prefix = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match read.read(&mut prefix[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(CoreError::ServiceMessage(
                    "stream ends inside a frame".into(),
                ))
            }
            Ok(n) => got += n,
            Err(e) => return Err(CoreError::ServiceNotAvailable(e.to_string())),
        }
    }
    let len = frame_len(prefix)?;
    if len > MAX_HELLO_FRAME {
        return Err(CoreError::ServiceMessage(format!(
            "a first request of {len} bytes: at most {MAX_HELLO_FRAME}"
        )));
    }
    let mut body = vec![0u8; len];
    read.read_exact(&mut body)
        .await
        .map_err(|_| CoreError::ServiceMessage("stream ends inside a frame".into()))?;
    Ok(Some(body))
}

/// Warnings that would repeat on every accept: the first at once, then at most one per
/// [`ACCEPT_LOG_INTERVAL`], counting what it stood for.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, emit: impl FnOnce(u64)) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_INTERVAL) {
            emit(self.since);
            self.since = 0;
            self.last = Some(std::time::Instant::now());
        }
    }
}

/// How long a connection's task polls for the next request after answering one, before it
/// waits for the socket: a client calling in a loop is then served without a thread wake-up,
/// which on a virtual machine costs about as much again.
const REQUEST_SPIN: Duration = Duration::from_micros(20);

/// The next frame of a connection ([`read_frame`]), polled for [`REQUEST_SPIN`] first.
async fn next_frame(
    read: &mut tokio::net::unix::OwnedReadHalf,
) -> Result<Option<Vec<u8>>, CoreError> {
    use peergroup_core::service::proto::{frame_len, HEADER_LEN};
    use tokio::io::AsyncReadExt;
    let torn = || CoreError::ServiceMessage("stream ends inside a frame".into());
    let mut prefix = [0u8; HEADER_LEN];
    let mut got = 0;
    let started = std::time::Instant::now();
    while got == 0 && started.elapsed() < REQUEST_SPIN {
        match read.try_read(&mut prefix) {
            Ok(0) => return Ok(None),
            Ok(n) => got = n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(CoreError::ServiceNotAvailable(e.to_string())),
        }
    }
    if got == 0 {
        return read_frame(read).await;
    }
    while got < HEADER_LEN {
        match read.read(&mut prefix[got..]).await {
            Ok(0) => return Err(torn()),
            Ok(n) => got += n,
            Err(e) => return Err(CoreError::ServiceNotAvailable(e.to_string())),
        }
    }
    let mut body = vec![0u8; frame_len(prefix)?];
    read.read_exact(&mut body).await.map_err(|_| torn())?;
    Ok(Some(body))
}

fn respond(id: u32, response: Response) -> ServerFrame {
    ServerFrame::Response { id, response }
}

struct State {
    uid: u32,
    /// The data directory of `--home`: the one a home-less caller ([`Daemon::open_count`]) means.
    default_home: PathBuf,
    /// One in-process instance per data directory clients named, made on first use, with
    /// the number of sessions using it. Another directory than the daemon's own is let go
    /// when its last session ended (its node closes), so the next session's listen address
    /// applies, as for a process of its own.
    homes: Mutex<HashMap<PathBuf, (Peergroup, usize)>>,
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
}

/// The service: in-process instances (one per data directory) shared by every client.
#[derive(Clone)]
pub struct Daemon {
    state: Arc<State>,
}

impl Daemon {
    /// A daemon accepting connections of the user `uid` only. `home` is its own data
    /// directory, served with `listen` and default limits; a client naming another directory
    /// gets an instance of its own for it.
    pub fn new(home: IdentityStore, listen: Option<SocketAddr>, uid: u32) -> Self {
        let default_home =
            std::path::absolute(home.home()).unwrap_or_else(|_| home.home().to_owned());
        let pg = Peergroup::embedded(home, listen, Limits::default());
        Daemon {
            state: Arc::new(State {
                uid,
                default_home: default_home.clone(),
                homes: Mutex::new(HashMap::from([(default_home, (pg, 1))])),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many client handles point at the group `key` of the daemon's own data directory,
    /// across all sessions.
    pub fn open_count(&self, key: &GroupKey) -> usize {
        let sessions: Vec<Arc<Session>> = lock(&self.state.sessions).values().cloned().collect();
        sessions
            .iter()
            .filter(|s| s.home == self.state.default_home)
            .map(|s| s.count_handles(key))
            .sum()
    }

    /// How many event subscriptions the daemon forwards, over all sessions.
    pub fn subscription_count(&self) -> usize {
        let sessions: Vec<Arc<Session>> = lock(&self.state.sessions).values().cloned().collect();
        sessions.iter().map(|s| s.subscription_count()).sum()
    }

    /// How many client sessions (processes) are connected.
    pub fn session_count(&self) -> usize {
        lock(&self.state.sessions).len()
    }

    /// The instance for `home`, made with `listen` and `limits` when no session uses it;
    /// counts one more session in.
    fn home(
        &self,
        home: &Path,
        listen: Option<SocketAddr>,
        limits: &WireLimits,
    ) -> Result<Peergroup, CoreError> {
        let mut homes = lock(&self.state.homes);
        if let Some((pg, sessions)) = homes.get_mut(home) {
            *sessions += 1;
            return Ok(pg.clone());
        }
        if !home.is_absolute() {
            return Err(CoreError::InvalidArgument(format!(
                "{} is not an absolute path",
                home.display()
            )));
        }
        let store = IdentityStore::open(home)?;
        let pg = Peergroup::embedded(store, listen, Limits::from(limits));
        homes.insert(home.to_owned(), (pg.clone(), 1));
        tracing::info!(home = %home.display(), "serving a data directory");
        Ok(pg)
    }

    /// Counts a session out of `home`'s instance; the last one lets it go (not the daemon's
    /// own directory).
    fn release_home(&self, home: &Path) {
        let mut homes = lock(&self.state.homes);
        if let Some((_, sessions)) = homes.get_mut(home) {
            *sessions -= 1;
            if *sessions == 0 {
                homes.remove(home);
                tracing::debug!(home = %home.display(), "no session uses a data directory");
            }
        }
    }

    /// Serves `listener` until `shutdown` completes; then drops every client connection and
    /// closes every group it holds with the layered close.
    pub async fn serve(
        &self,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        let mut clients = JoinSet::new();
        let ungreeted = Arc::new(tokio::sync::Semaphore::new(MAX_UNGREETED));
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let mut log = RateLimitedLog::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((s, _)) => {
                            backoff = ACCEPT_BACKOFF_MIN;
                            s
                        }
                        Err(e) => {
                            // Out of descriptors, say: retrying at once would spin. The
                            // clients already served go on in their own tasks meanwhile.
                            log.warn(|n| tracing::warn!(failures = n, "accept: {e}; backing off"));
                            tokio::select! {
                                _ = &mut shutdown => break,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                            continue;
                        }
                    };
                    let Ok(permit) = ungreeted.clone().try_acquire_owned() else {
                        log.warn(|n| tracing::warn!(refused = n, "{MAX_UNGREETED} connections have not said Hello; closing new ones"));
                        continue;
                    };
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == self.state.uid => {
                            let daemon = self.clone();
                            clients.spawn(async move { daemon.connection(stream, permit).await });
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
        let sessions: Vec<Arc<Session>> =
            lock(&self.state.sessions).drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.close_all().await;
        }
        Ok(())
    }

    /// One client connection: greeted (a new session, or attached to one), then its requests
    /// in order; when the session's last connection ends, its handles close.
    async fn connection(&self, stream: UnixStream, ungreeted: tokio::sync::OwnedSemaphorePermit) {
        let (mut read, write) = stream.into_split();
        let out: Out = Arc::new(tokio::sync::Mutex::new(write));
        let greeted = tokio::time::timeout(HELLO_TIMEOUT, self.greet(&mut read, &out)).await;
        drop(ungreeted);
        let Ok(Some(session)) = greeted else {
            let _ = out.lock().await.shutdown().await;
            return;
        };
        loop {
            let body = match next_frame(&mut read).await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    // An oversized prefix or a torn frame: the stream cannot be resynchronised.
                    send(&out, &respond(0, Response::error(&e))).await;
                    break;
                }
            };
            let frame = match ClientFrame::decode(&body) {
                Ok(f) => f,
                Err(e) => {
                    send(&out, &respond(0, Response::error(&e))).await;
                    break;
                }
            };
            if matches!(frame.request, Request::Events) {
                session.set_events(out.clone()).await;
                if !send(&out, &respond(frame.id, Response::Ok)).await {
                    break;
                }
                continue;
            }
            if !serve::serve(&session, frame, &out).await {
                break;
            }
        }
        let ended = {
            // Under the sessions lock, so an `Attach` never joins a session that is ending.
            let mut sessions = lock(&self.state.sessions);
            let last = session.disconnected();
            if last {
                sessions.remove(&session.id);
            }
            last
        };
        if ended {
            session.close_all().await;
            self.release_home(&session.home);
            tracing::debug!(session = session.id, "session ended");
        }
        let _ = out.lock().await.shutdown().await;
    }

    /// Reads the first request: `Hello` starts a session, `Attach` joins one; anything else
    /// is answered with an error and the connection closed.
    async fn greet(
        &self,
        read: &mut tokio::net::unix::OwnedReadHalf,
        out: &Out,
    ) -> Option<Arc<Session>> {
        let body = match first_frame(read).await {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                send(out, &respond(0, Response::error(&e))).await;
                return None;
            }
        };
        let frame = match ClientFrame::decode(&body) {
            Ok(f) => f,
            Err(e) => {
                send(out, &respond(0, Response::error(&e))).await;
                return None;
            }
        };
        let result = match frame.request {
            Request::Hello {
                version,
                home,
                listen,
                limits,
            } => self.hello(version, Path::new(&home), listen, &limits),
            Request::Attach {
                version,
                session,
                token,
            } => self.attach(version, session, &token),
            _ => Err(CoreError::ServiceMessage(
                "the first request must be Hello or Attach".into(),
            )),
        };
        match result {
            Ok((session, response)) => {
                // Counted in already: a failed write ends it through the read loop's EOF.
                send(out, &respond(frame.id, response)).await;
                Some(session)
            }
            Err(e) => {
                send(out, &respond(frame.id, Response::error(&e))).await;
                None
            }
        }
    }

    fn hello(
        &self,
        version: u8,
        home: &Path,
        listen: Option<SocketAddr>,
        limits: &WireLimits,
    ) -> Result<(Arc<Session>, Response), CoreError> {
        use peergroup_core::service::proto::PROTOCOL_VERSION;
        if version != PROTOCOL_VERSION {
            return Err(CoreError::ServiceVersion(version));
        }
        let pg = self.home(home, listen, limits)?;
        let session = Arc::new(Session::new(home.to_owned(), pg));
        session.connected();
        lock(&self.state.sessions).insert(session.id, session.clone());
        let response = Response::Session {
            version: PROTOCOL_VERSION,
            id: session.id,
            token: session.token,
        };
        Ok((session, response))
    }

    fn attach(
        &self,
        version: u8,
        id: u64,
        token: &[u8; 16],
    ) -> Result<(Arc<Session>, Response), CoreError> {
        use peergroup_core::service::proto::PROTOCOL_VERSION;
        if version != PROTOCOL_VERSION {
            return Err(CoreError::ServiceVersion(version));
        }
        let sessions = lock(&self.state.sessions);
        match sessions.get(&id) {
            Some(s) if s.token_matches(token) => {
                s.connected();
                Ok((s.clone(), Response::Ok))
            }
            _ => Err(CoreError::ServiceMessage("no such session".into())),
        }
    }
}

/// A daemon serving on a thread of its own (with its own runtime), for tests, benchmarks and
/// programs that embed the service. Stopped by [`Background::stop`] or on drop.
pub struct Background {
    daemon: Daemon,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl Background {
    /// Binds `socket` (as [`bind_socket`]) and serves `home` there for the user `uid`;
    /// returns once it accepts connections.
    pub fn start(
        home: IdentityStore,
        listen: Option<SocketAddr>,
        socket: PathBuf,
        uid: u32,
    ) -> Result<Background, DaemonError> {
        let daemon = Daemon::new(home, listen, uid);
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = daemon.clone();
        let thread = std::thread::Builder::new()
            .name("peergroupd".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(io("starting the runtime"))?;
                rt.block_on(async move {
                    let listener = match bind_socket(&socket).await {
                        Ok(l) => {
                            let _ = ready.send(None);
                            l
                        }
                        Err(e) => {
                            let _ = ready.send(Some(e));
                            return Ok(());
                        }
                    };
                    serving
                        .serve(listener, async {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .map_err(io("starting the service thread"))?;
        let mut background = Background {
            daemon,
            stop: Some(stop),
            thread: Some(thread),
        };
        match is_ready.recv() {
            Ok(None) => Ok(background),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(background.join().err().unwrap_or(DaemonError::Io {
                what: "the service thread".into(),
                source: std::io::Error::other("ended before serving"),
            })),
        }
    }

    /// The daemon, for its counts.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    fn join(&mut self) -> Result<(), DaemonError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }

    /// Stops serving: every client connection is dropped and every group closed.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.join()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
