//! [`Client`]: one process's connection to `peergroupd` over its Unix socket.
//!
//! Requests may be issued concurrently from any task: each carries an id, a reader task
//! routes the responses back and the pushed events to their [`ServiceSubscription`]s. When
//! the service goes away, every pending and later call fails with
//! [`CoreError::ServiceNotAvailable`] (`PEER_E_SERVICE_NOT_AVAILABLE`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::proto::{
    split_frame, ClientFrame, Request, Response, ServerFrame, HEADER_LEN, PROTOCOL_VERSION,
};
use super::{SERVICE_DIR, SOCKET_ENV, SOCKET_NAME};
use crate::error::{CoreError, Result};
use crate::events::{EventItem, EventKind};
use crate::group::{lock, NewRecord};
use crate::identity::PeerName;
use crate::records::record::{Record, MAX_RECORD_DATA};

/// How many events a subscription queues in the client before it counts them as lost.
pub const CLIENT_EVENT_QUEUE: usize = 256;

/// The service socket: `$PEERGROUP_SERVICE_SOCKET`, else
/// `$XDG_RUNTIME_DIR/peergroup/peergroupd.sock`; `None` without either.
pub fn default_socket_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty())?;
    Some(PathBuf::from(runtime).join(SERVICE_DIR).join(SOCKET_NAME))
}

/// Reads one frame body from `r`: `Ok(None)` at a clean end of stream (between frames).
/// A prefix over the bound is refused before its body is read.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r
            .read(&mut prefix[got..])
            .await
            .map_err(|e| CoreError::ServiceNotAvailable(e.to_string()))?;
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
    // Checks the bound; the body itself is read below.
    split_frame(&prefix)?;
    let len = u32::from_be_bytes(prefix) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|_| CoreError::ServiceMessage("stream ends inside a frame".into()))?;
    Ok(Some(body))
}

struct SubscriptionSlot {
    tx: mpsc::Sender<EventItem>,
    lagged: u64,
}

impl SubscriptionSlot {
    /// Queues `item` without waiting; what does not fit is counted and reported as
    /// [`EventItem::Lagged`] once there is room again. False once the receiver is gone.
    fn offer(&mut self, item: EventItem) -> bool {
        use mpsc::error::TrySendError;
        if self.lagged > 0 {
            match self.tx.try_send(EventItem::Lagged(self.lagged)) {
                Ok(()) => self.lagged = 0,
                Err(TrySendError::Full(_)) => {
                    self.lagged += lost(&item);
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(item)) => {
                self.lagged += lost(&item);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

fn lost(item: &EventItem) -> u64 {
    match item {
        EventItem::Lagged(n) => *n,
        EventItem::Event(_) => 1,
    }
}

/// A request waiting for its response; a `Subscribe` brings its event slot, which the reader
/// installs before it hands over the response, so no event can arrive ahead of its route.
struct Pending {
    tx: oneshot::Sender<Response>,
    slot: Option<SubscriptionSlot>,
}

#[derive(Default)]
struct Routes {
    /// Set when the connection is gone; no new request is accepted then.
    closed: Option<String>,
    pending: HashMap<u32, Pending>,
    subscriptions: HashMap<u64, SubscriptionSlot>,
}

/// One process's connection to `peergroupd`. Handles it returns are valid on this
/// connection only; they are all closed by the service when the connection ends.
pub struct Client {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU32,
    reader: tokio::task::JoinHandle<()>,
}

/// The events of one `Subscribe`, in order; ends when the group closes for this client or
/// the service goes away.
pub struct ServiceSubscription {
    id: u64,
    rx: mpsc::Receiver<EventItem>,
}

impl ServiceSubscription {
    /// The subscription id the service assigned.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event, waiting for it; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<EventItem> {
        self.rx.recv().await
    }
}

impl Client {
    /// Connects to the service at `path` and checks its protocol version.
    /// [`CoreError::ServiceNotAvailable`] when nothing listens there.
    pub async fn connect(path: &Path) -> Result<Client> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| CoreError::ServiceNotAvailable(format!("{}: {e}", path.display())))?;
        let (mut read, write) = stream.into_split();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader_routes = routes.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                let body = match read_frame(&mut read).await {
                    Ok(Some(b)) => b,
                    Ok(None) => break "the service closed the connection".to_owned(),
                    Err(e) => break e.to_string(),
                };
                let frame = match ServerFrame::decode(&body) {
                    Ok(f) => f,
                    Err(e) => break format!("undecodable frame from the service: {e}"),
                };
                let mut routes = lock(&reader_routes);
                match frame {
                    ServerFrame::Response { id, response } => {
                        if let Some(p) = routes.pending.remove(&id) {
                            if let (Response::Subscription(sub), Some(slot)) = (&response, p.slot) {
                                routes.subscriptions.insert(*sub, slot);
                            }
                            let _ = p.tx.send(response);
                        }
                    }
                    ServerFrame::Event { subscription, item } => {
                        let keep = routes
                            .subscriptions
                            .get_mut(&subscription)
                            .is_some_and(|slot| slot.offer(item));
                        if !keep {
                            routes.subscriptions.remove(&subscription);
                        }
                    }
                }
            };
            let mut routes = lock(&reader_routes);
            routes.closed = Some(why);
            // Dropping the senders fails the pending calls and ends the subscriptions.
            routes.pending.clear();
            routes.subscriptions.clear();
        });
        let client = Client {
            writer: tokio::sync::Mutex::new(write),
            routes,
            next_id: AtomicU32::new(1),
            reader,
        };
        match client
            .call(Request::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?
        {
            Response::Hello { version } if version == PROTOCOL_VERSION => Ok(client),
            Response::Hello { version } => Err(CoreError::ServiceVersion(version)),
            other => Err(unexpected(&other)),
        }
    }

    /// [`Client::connect`] to [`default_socket_path`].
    pub async fn connect_default() -> Result<Client> {
        let path = default_socket_path().ok_or_else(|| {
            CoreError::ServiceNotAvailable(format!(
                "neither {SOCKET_ENV} nor XDG_RUNTIME_DIR is set"
            ))
        })?;
        Client::connect(&path).await
    }

    /// Sends one request and waits for its response; a service error is
    /// [`CoreError::Service`] with the service's HRESULT.
    async fn call(&self, request: Request) -> Result<Response> {
        self.call_with(request, None).await
    }

    async fn call_with(
        &self,
        request: Request,
        slot: Option<SubscriptionSlot>,
    ) -> Result<Response> {
        if let Request::AddRecord { data, .. } = &request {
            if data.len() > MAX_RECORD_DATA {
                return Err(CoreError::MaxRecordSize);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = ClientFrame { id, request }.encode();
        // A request the service would refuse as malformed (over a bound) would cost this
        // process its connection and with it every handle: refuse it here instead.
        ClientFrame::decode(&bytes[HEADER_LEN..])?;
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if let Some(why) = &routes.closed {
                return Err(CoreError::ServiceNotAvailable(why.clone()));
            }
            routes.pending.insert(id, Pending { tx, slot });
        }
        let sent = self.writer.lock().await.write_all(&bytes).await;
        if let Err(e) = sent {
            lock(&self.routes).pending.remove(&id);
            return Err(CoreError::ServiceNotAvailable(e.to_string()));
        }
        match rx.await {
            Ok(Response::Error { hresult, message }) => {
                Err(CoreError::Service { hresult, message })
            }
            Ok(r) => Ok(r),
            Err(_) => Err(CoreError::ServiceNotAvailable(
                lock(&self.routes)
                    .closed
                    .clone()
                    .unwrap_or_else(|| "the service went away".into()),
            )),
        }
    }

    /// `PeerGroupOpen` in the service: a new handle to the group, valid on this connection.
    pub async fn open_group(&self, identity: Option<&PeerName>, group: &PeerName) -> Result<u64> {
        match self
            .call(Request::OpenGroup {
                identity: identity.map(ToString::to_string),
                group: group.to_string(),
            })
            .await?
        {
            Response::Handle(h) => Ok(h),
            other => Err(unexpected(&other)),
        }
    }

    /// `PeerGroupConnect` (empty `addrs`) or `PeerGroupConnectByAddress`.
    pub async fn connect_group(&self, handle: u64, addrs: &[SocketAddr]) -> Result<()> {
        self.call_ok(Request::Connect {
            handle,
            addrs: addrs.to_vec(),
        })
        .await
    }

    /// `PeerGroupGetStatus`.
    pub async fn status(&self, handle: u64) -> Result<u32> {
        match self.call(Request::Status { handle }).await? {
            Response::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits in the service until the status has all of `bits` or `timeout` passed.
    pub async fn wait_status(
        &self,
        handle: u64,
        bits: u32,
        timeout: std::time::Duration,
    ) -> Result<u32> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match self
            .call(Request::WaitStatus {
                handle,
                bits,
                timeout_ms,
            })
            .await?
        {
            Response::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// `PeerGroupClose` of one handle; the service closes the group when no client holds it.
    pub async fn close(&self, handle: u64) -> Result<()> {
        self.call_ok(Request::Close { handle }).await
    }

    /// `PeerGroupAddRecord`.
    pub async fn add_record(&self, handle: u64, record: NewRecord) -> Result<[u8; 16]> {
        match self
            .call(Request::AddRecord {
                handle,
                record_type: record.record_type,
                attributes: record.attributes,
                expires_ms: record.expires_ms,
                data: record.data,
            })
            .await?
        {
            Response::RecordId(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// `PeerGroupGetRecord`.
    pub async fn get_record(&self, handle: u64, id: [u8; 16]) -> Result<Record> {
        match self.call(Request::GetRecord { handle, id }).await? {
            Response::Record(r) => Ok(*r),
            other => Err(unexpected(&other)),
        }
    }

    /// The ids of the live records (of one type, or all).
    pub async fn enum_records(
        &self,
        handle: u64,
        record_type: Option<[u8; 16]>,
    ) -> Result<Vec<[u8; 16]>> {
        match self
            .call(Request::EnumRecords {
                handle,
                record_type,
            })
            .await?
        {
            Response::RecordIds(ids) => Ok(ids),
            other => Err(unexpected(&other)),
        }
    }

    /// `PeerGroupRegisterEvent` for `kinds`: the group's events, pushed by the service.
    pub async fn subscribe(&self, handle: u64, kinds: &[EventKind]) -> Result<ServiceSubscription> {
        // The service pushes a subscription's events only after its response, and the reader
        // installs the slot when it reads that response: no event is missed.
        let (tx, rx) = mpsc::channel(CLIENT_EVENT_QUEUE);
        match self
            .call_with(
                Request::Subscribe {
                    handle,
                    kinds: kinds.to_vec(),
                },
                Some(SubscriptionSlot { tx, lagged: 0 }),
            )
            .await?
        {
            Response::Subscription(id) => Ok(ServiceSubscription { id, rx }),
            other => Err(unexpected(&other)),
        }
    }

    async fn call_ok(&self, request: Request) -> Result<()> {
        match self.call(request).await? {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn unexpected(r: &Response) -> CoreError {
    CoreError::ServiceMessage(format!("unexpected response {r:?}"))
}
