//! [`Session`]: one process's conversation with `peergroupd`.
//!
//! Calls are blocking and made on the caller's thread: a call takes an idle connection of the
//! session (or opens one and attaches it), writes its request and reads its own answer. No
//! other thread is woken on a call's path, which keeps the per-call overhead near one round
//! trip over the socket. Events come on one more connection, read by a thread that hands
//! them to the local [`EventHub`] of their subscription.
//!
//! When the service goes away, every pending and later call of the session fails with
//! [`CoreError::ServiceNotAvailable`] (`PEER_E_SERVICE_NOT_AVAILABLE`) and every subscription
//! ends; a new session (the next `Peergroup` call that opens a group) may reach a restarted
//! service.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::proto::{
    frame_len, ClientFrame, Request, Response, ServerFrame, WireLimits, HEADER_LEN,
    PROTOCOL_VERSION,
};
use super::{SERVICE_DIR, SOCKET_ENV, SOCKET_NAME};
use crate::error::{CoreError, Result};
use crate::events::{Event, EventFilter, EventHub, EventItem, EventSubscription, Notifier};
use crate::state::lock;

/// The service socket: `$PEERGROUP_SERVICE_SOCKET`, else
/// `$XDG_RUNTIME_DIR/peergroup/peergroupd.sock`; `None` without either.
pub fn default_socket_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty())?;
    Some(PathBuf::from(runtime).join(SERVICE_DIR).join(SOCKET_NAME))
}

fn gone(e: impl std::fmt::Display) -> CoreError {
    CoreError::ServiceNotAvailable(e.to_string())
}

/// Reads one frame body from `r`: `Ok(None)` at a clean end of stream (between frames).
/// A prefix over the bound is refused before its body is read.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut prefix[got..]).await.map_err(gone)?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(CoreError::ServiceMessage(
                    "stream ends inside a frame".into(),
                ))
            };
        }
        got += n;
    }
    let mut body = vec![0u8; frame_len(prefix)?];
    r.read_exact(&mut body)
        .await
        .map_err(|_| CoreError::ServiceMessage("stream ends inside a frame".into()))?;
    Ok(Some(body))
}

/// [`read_frame`] on a blocking stream; the end of the stream is the service gone.
fn read_frame_blocking(r: &mut UnixStream) -> Result<Vec<u8>> {
    let mut prefix = [0u8; HEADER_LEN];
    r.read_exact(&mut prefix).map_err(gone)?;
    let mut body = vec![0u8; frame_len(prefix)?];
    r.read_exact(&mut body).map_err(gone)?;
    Ok(body)
}

/// How long a caller polls for its answer before it sleeps in `read`. Most calls are answered
/// within this, and a thread woken from sleep costs about as much again on a virtual
/// machine; a longer call pays at most this much spinning.
const ANSWER_SPIN: std::time::Duration = std::time::Duration::from_micros(80);

/// [`read_frame_blocking`] for an answer: polls the socket for up to [`ANSWER_SPIN`], then
/// waits in `read`.
fn read_answer(conn: &mut UnixStream) -> Result<Vec<u8>> {
    let mut prefix = [0u8; HEADER_LEN];
    let mut got = 0;
    conn.set_nonblocking(true).map_err(gone)?;
    let started = std::time::Instant::now();
    while got < HEADER_LEN && started.elapsed() < ANSWER_SPIN {
        match conn.read(&mut prefix[got..]) {
            Ok(0) => return Err(gone("the service closed the connection")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gone(e)),
        }
    }
    conn.set_nonblocking(false).map_err(gone)?;
    conn.read_exact(&mut prefix[got..]).map_err(gone)?;
    let mut body = vec![0u8; frame_len(prefix)?];
    conn.read_exact(&mut body).map_err(gone)?;
    Ok(body)
}

/// Runs a future to completion on this (non-async) thread.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// What a session asks of the service when it starts.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The service socket.
    pub socket: PathBuf,
    /// The data directory whose identities and groups the session uses.
    pub home: PathBuf,
    /// Where that home's node listens.
    pub listen: Option<std::net::SocketAddr>,
    /// The node's transport bounds.
    pub limits: WireLimits,
}

/// The session's subscriptions, shared with the event thread, which signals `ended` each
/// time it ends some (so a close can wait for its subscriptions' last events).
#[derive(Default)]
struct Subs {
    map: Mutex<HashMap<u64, Sub>>,
    ended: std::sync::Condvar,
}

/// How long a close waits for the event thread to deliver its subscriptions' last events.
const ENDED_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// One subscription's local end: the hub its events are published into.
struct Sub {
    hub: EventHub,
}

/// One process's session with the service (see the module documentation).
pub struct Session {
    socket: PathBuf,
    id: u64,
    token: [u8; 16],
    idle: Mutex<Vec<UnixStream>>,
    next_request: AtomicU32,
    next_subscription: AtomicU64,
    subs: Arc<Subs>,
    /// The event connection (a clone of the reader thread's), once a subscription asked for
    /// it; shut down when the session is dropped, which ends the thread.
    events: Mutex<Option<UnixStream>>,
    dead: Arc<AtomicBool>,
}

impl Session {
    /// Connects to the service and starts a session.
    pub fn start(config: &SessionConfig) -> Result<Arc<Session>> {
        let mut conn = UnixStream::connect(&config.socket)
            .map_err(|e| gone(format!("{}: {e}", config.socket.display())))?;
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            home: config.home.to_string_lossy().into_owned(),
            listen: config.listen,
            limits: config.limits.clone(),
        };
        let (id, token) = match exchange(&mut conn, 0, hello, &mut |_| Ok(()))?? {
            Response::Session { version, id, token } if version == PROTOCOL_VERSION => (id, token),
            Response::Session { version, .. } => return Err(CoreError::ServiceVersion(version)),
            other => return Err(unexpected(&other)),
        };
        tracing::info!(
            socket = %config.socket.display(),
            session = id,
            "groups are served by peergroupd"
        );
        Ok(Arc::new(Session {
            socket: config.socket.clone(),
            id,
            token,
            idle: Mutex::new(vec![conn]),
            next_request: AtomicU32::new(1),
            next_subscription: AtomicU64::new(1),
            subs: Arc::new(Subs::default()),
            events: Mutex::new(None),
            dead: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// True once the service went away under this session.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    fn attach(&self) -> Result<UnixStream> {
        let mut conn = UnixStream::connect(&self.socket).map_err(gone)?;
        let attach = Request::Attach {
            version: PROTOCOL_VERSION,
            session: self.id,
            token: self.token,
        };
        match exchange(&mut conn, 0, attach, &mut |_| Ok(()))?? {
            Response::Ok => Ok(conn),
            other => Err(unexpected(&other)),
        }
    }

    /// One call: its final answer (an `Error` answer is returned as the error it carries).
    pub fn call(&self, request: Request) -> Result<Response> {
        self.call_with(request, |r| Err(unexpected(&r)))
    }

    /// One call whose answer comes in parts: `part` sees each part before the final answer.
    pub fn call_with(
        &self,
        request: Request,
        part: impl FnMut(Response) -> Result<()>,
    ) -> Result<Response> {
        self.exchange_on_pool(request, part, None)
    }

    /// [`Session::call`] that gives up after `bound` without an answer: the service is then
    /// taken for gone (`PEER_E_SERVICE_NOT_AVAILABLE`). For closes, which the service bounds
    /// itself.
    pub fn call_bounded(&self, request: Request, bound: std::time::Duration) -> Result<Response> {
        self.exchange_on_pool(request, |r| Err(unexpected(&r)), Some(bound))
    }

    fn exchange_on_pool(
        &self,
        request: Request,
        mut part: impl FnMut(Response) -> Result<()>,
        bound: Option<std::time::Duration>,
    ) -> Result<Response> {
        if self.is_dead() {
            return Err(gone("the service went away"));
        }
        let conn = lock(&self.idle).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => self.attach().inspect_err(|_| self.mark_dead())?,
        };
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        conn.set_read_timeout(bound).map_err(gone)?;
        match exchange(&mut conn, id, request, &mut part) {
            // Answered (a result or a failure): the connection is in step, keep it.
            Ok(answer) => {
                if bound.is_some() {
                    conn.set_read_timeout(None).map_err(gone)?;
                }
                lock(&self.idle).push(conn);
                answer
            }
            Err(e) => {
                if matches!(e, CoreError::ServiceNotAvailable(_)) {
                    self.mark_dead();
                }
                Err(e)
            }
        }
    }

    fn mark_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
        lock(&self.idle).clear();
    }

    /// A subscription to the events of `handle` that `filter` takes, queued locally like an
    /// in-process one (`capacity`, `notifier`).
    pub fn subscribe(
        self: &Arc<Self>,
        handle: u64,
        filter: EventFilter,
        capacity: usize,
        notifier: Option<Notifier>,
    ) -> Result<EventSubscription> {
        self.start_events()?;
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let hub = EventHub::new();
        let sub = hub.subscribe(filter.clone(), capacity, notifier);
        // Dropping (or closing) the subscription stops the service's forwarding at once.
        let weak = Arc::downgrade(self);
        hub.on_last_unsubscribe(move || {
            if let Some(session) = weak.upgrade() {
                if lock(&session.subs.map).remove(&id).is_some() && !session.is_dead() {
                    let _ = session.call(Request::Unsubscribe(id));
                }
            }
        });
        // Registered before the request, so no event of it can arrive unrouted.
        lock(&self.subs.map).insert(id, Sub { hub });
        let request = Request::Subscribe {
            handle,
            id,
            registrations: filter.registrations().to_vec(),
            capacity: capacity.min(u32::MAX as usize) as u32,
        };
        match self.call(request) {
            Ok(Response::Ok) => Ok(sub),
            Ok(other) => {
                lock(&self.subs.map).remove(&id);
                Err(unexpected(&other))
            }
            Err(e) => {
                lock(&self.subs.map).remove(&id);
                Err(e)
            }
        }
    }

    /// Closes `handle` in the service; when that ended subscriptions of this session (it
    /// held the group no more), waits (bounded) until the event thread has delivered their
    /// last events and ended them here, so they read as ended when this returns.
    pub fn close_handle(&self, handle: u64, bound: std::time::Duration) -> Result<()> {
        let ended = match self.call_bounded(Request::Close(handle), bound)? {
            Response::Ended(ids) => ids,
            other => return Err(unexpected(&other)),
        };
        let deadline = std::time::Instant::now() + ENDED_BOUND;
        let mut map = lock(&self.subs.map);
        while ended.iter().any(|id| map.contains_key(id)) && !self.is_dead() {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                break;
            };
            map = self
                .subs
                .ended
                .wait_timeout(map, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Opens the event connection and its reader thread, once.
    fn start_events(self: &Arc<Self>) -> Result<()> {
        let mut events = lock(&self.events);
        if events.is_some() {
            return Ok(());
        }
        let mut conn = self.attach()?;
        match exchange(&mut conn, 0, Request::Events, &mut |_| Ok(()))?? {
            Response::Ok => {}
            other => return Err(unexpected(&other)),
        }
        let ours = conn.try_clone().map_err(gone)?;
        let subs = self.subs.clone();
        let dead = self.dead.clone();
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("peergroup-events".into())
            .spawn(move || read_events(conn, subs, dead, weak))
            .map_err(|e| CoreError::ServiceNotAvailable(format!("event thread: {e}")))?;
        *events = Some(ours);
        Ok(())
    }
}

/// The event connection's reader: routes each event to its subscription's hub, with
/// back-pressure for incoming data (as in-process), until the service goes away.
fn read_events(
    mut conn: UnixStream,
    subs: Arc<Subs>,
    dead: Arc<AtomicBool>,
    session: std::sync::Weak<Session>,
) {
    loop {
        let frame = match read_frame_blocking(&mut conn).and_then(|b| ServerFrame::decode(&b)) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("event connection ended: {e}");
                break;
            }
        };
        match frame {
            ServerFrame::Event { subscription, item } => {
                // None once unsubscribed here (the service stops soon after).
                let hub = lock(&subs.map).get(&subscription).map(|s| s.hub.clone());
                let Some(hub) = hub else { continue };
                match item {
                    EventItem::Event(e @ Event::IncomingData { .. }) => {
                        block_on(hub.publish_waiting(&e))
                    }
                    EventItem::Event(e) => hub.publish(&e),
                    EventItem::Lagged(n) => hub.report_lost(n),
                }
            }
            ServerFrame::Ended { subscription } => {
                // Closed before the map shows it gone: `close_handle` returns as soon as it
                // sees the id gone, and its caller must find the subscription closed.
                let mut map = lock(&subs.map);
                if let Some(s) = map.remove(&subscription) {
                    s.hub.close();
                }
                drop(map);
                subs.ended.notify_all();
            }
            ServerFrame::Response { .. } => {}
        }
    }
    // Only a dying service ends this connection while the session lives.
    if session.upgrade().is_some() {
        dead.store(true, Ordering::Relaxed);
    }
    let all: Vec<Sub> = lock(&subs.map).drain().map(|(_, s)| s).collect();
    all.iter().for_each(|s| s.hub.close());
    subs.ended.notify_all();
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the connections ends the session in the service (its handles close there);
        // the event connection's reader thread sees its end and exits.
        lock(&self.idle).clear();
        if let Some(events) = lock(&self.events).take() {
            let _ = events.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Writes one request and reads its parts and final answer on `conn`. The outer error is the
/// connection's (it is out of step or gone); the inner result is the call's.
fn exchange(
    conn: &mut UnixStream,
    id: u32,
    request: Request,
    part: &mut dyn FnMut(Response) -> Result<()>,
) -> Result<Result<Response>> {
    conn.write_all(&ClientFrame { id, request }.encode())
        .map_err(gone)?;
    let mut failed = None;
    loop {
        let frame = ServerFrame::decode(&read_answer(conn)?)?;
        let ServerFrame::Response { id: got, response } = frame else {
            return Err(CoreError::ServiceMessage(
                "an event on a call connection".into(),
            ));
        };
        if got != id {
            return Err(CoreError::ServiceMessage(format!(
                "answer to request {got} while waiting for {id}"
            )));
        }
        match response {
            r @ (Response::Progress(_) | Response::Records { more: true, .. }) => {
                // Read every part even after a failure, so the connection stays in step.
                if failed.is_none() {
                    if let Err(e) = part(r) {
                        failed = Some(e);
                    }
                }
            }
            Response::Error(e) => return Ok(Err(e.into_error())),
            r => return Ok(failed.map_or(Ok(r), Err)),
        }
    }
}

/// The error for an answer of the wrong kind.
pub fn unexpected(r: &Response) -> CoreError {
    CoreError::ServiceMessage(format!("unexpected answer {r:?}"))
}
