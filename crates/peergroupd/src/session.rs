//! One client process's session: its handles, subscriptions and password holds.
//!
//! Every client handle is a handle of the daemon's in-process instance, so the group layer
//! itself counts handles across all sessions and closes a group when the last one closes.
//! A subscription's forwarder writes its events to the session's event connection; it ends
//! when the group closes for good (then the client is told `Ended`), when it is
//! unsubscribed, or when the session no longer holds any handle of its group.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use peergroup_core::events::EventSubscription;
use peergroup_core::group::GroupKey;
use peergroup_core::service::proto::ServerFrame;
use peergroup_core::{CoreError, GroupHandle, PasswordHold, Peergroup};
use ring::rand::SecureRandom;

use crate::{lock, send, Out};

/// A client handle, shared by the requests that use it; `Close` takes it out, waiting for
/// the requests in flight (each bounded in time).
pub(crate) type SharedHandle = Arc<tokio::sync::RwLock<Option<GroupHandle>>>;

/// A handle held for one request.
pub(crate) type HeldHandle = tokio::sync::OwnedRwLockReadGuard<Option<GroupHandle>, GroupHandle>;

struct HandleEntry {
    key: GroupKey,
    handle: SharedHandle,
}

struct SubEntry {
    key: GroupKey,
    task: tokio::task::JoinHandle<()>,
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How long a closed group's subscriptions may take to deliver their last events.
const DRAIN_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) token: [u8; 16],
    pub(crate) home: PathBuf,
    pub(crate) pg: Peergroup,
    connections: AtomicUsize,
    handles: Mutex<HashMap<u64, HandleEntry>>,
    next_handle: AtomicU64,
    subs: Mutex<HashMap<u64, SubEntry>>,
    holds: Mutex<HashMap<u64, (u64, PasswordHold)>>,
    next_hold: AtomicU64,
    events: tokio::sync::Mutex<Option<Out>>,
}

impl Session {
    pub(crate) fn new(home: PathBuf, pg: Peergroup) -> Session {
        let mut token = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut token)
            .expect("the system's random source works");
        Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            token,
            home,
            pg,
            connections: AtomicUsize::new(0),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            subs: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            next_hold: AtomicU64::new(1),
            events: tokio::sync::Mutex::new(None),
        }
    }

    /// Compares in constant time.
    pub(crate) fn token_matches(&self, token: &[u8; 16]) -> bool {
        self.token
            .iter()
            .zip(token)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    pub(crate) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a connection out; true when it was the last.
    pub(crate) fn disconnected(&self) -> bool {
        self.connections.fetch_sub(1, Ordering::SeqCst) == 1
    }

    pub(crate) async fn set_events(&self, out: Out) {
        *self.events.lock().await = Some(out);
    }

    pub(crate) fn count_handles(&self, key: &GroupKey) -> usize {
        lock(&self.handles)
            .values()
            .filter(|h| &h.key == key)
            .count()
    }

    /// Takes a new handle into the session; its number.
    pub(crate) fn add_handle(&self, handle: GroupHandle) -> (u64, GroupKey) {
        let key = (handle.identity().clone(), handle.group_name().clone());
        let n = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(
            n,
            HandleEntry {
                key: key.clone(),
                handle: Arc::new(tokio::sync::RwLock::new(Some(handle))),
            },
        );
        (n, key)
    }

    /// The session's handle `n`, held for one request.
    pub(crate) async fn handle(&self, n: u64) -> Result<HeldHandle, CoreError> {
        let shared = lock(&self.handles)
            .get(&n)
            .map(|h| h.handle.clone())
            .ok_or(CoreError::InvalidGroup)?;
        tokio::sync::OwnedRwLockReadGuard::try_map(shared.read_owned().await, Option::as_ref)
            .map_err(|_| CoreError::InvalidGroup)
    }

    /// Closes handle `n` (the group's layered close when it was the last anywhere); the ids
    /// of the subscriptions that ended with it.
    pub(crate) async fn close_handle(&self, n: u64) -> Result<Vec<u64>, CoreError> {
        let entry = lock(&self.handles)
            .remove(&n)
            .ok_or(CoreError::InvalidGroup)?;
        lock(&self.holds).retain(|_, (h, _)| *h != n);
        let handle = entry.handle.write().await.take();
        let closed = match handle {
            Some(h) => {
                let name = h.group_name().to_string();
                let r = h.close().await;
                tracing::debug!(group = %name, session = self.id, "client handle closed");
                r
            }
            None => Err(CoreError::InvalidGroup),
        };
        let ended = if self.count_handles(&entry.key) == 0 {
            self.end_subscriptions_of(&entry.key).await
        } else {
            Vec::new()
        };
        closed.map(|()| ended)
    }

    /// Ends this session's subscriptions to the group `key`, which it no longer holds. If
    /// the group closed for good, each forwarder delivers the group's last events and ends by
    /// itself (bounded); else it is stopped. Either way the client is told `Ended`.
    async fn end_subscriptions_of(&self, key: &GroupKey) -> Vec<u64> {
        let still_open = self.pg.as_local().is_some_and(|l| l.is_open(key));
        let ended: Vec<(u64, SubEntry)> = {
            let mut subs = lock(&self.subs);
            let ids: Vec<u64> = subs
                .iter()
                .filter(|(_, s)| &s.key == key)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| subs.remove(&id).map(|s| (id, s)))
                .collect()
        };
        let ids = ended.iter().map(|(id, _)| *id).collect();
        for (id, mut sub) in ended {
            if !still_open
                && tokio::time::timeout(DRAIN_BOUND, &mut sub.task)
                    .await
                    .is_ok()
            {
                // It said `Ended` itself.
                continue;
            }
            sub.task.abort();
            self.send_event(&ServerFrame::Ended { subscription: id })
                .await;
        }
        ids
    }

    async fn send_event(&self, frame: &ServerFrame) -> bool {
        let out = self.events.lock().await.clone();
        match out {
            Some(out) => send(&out, frame).await,
            None => false,
        }
    }

    /// Starts forwarding `sub`'s events as subscription `id` of handle `n`.
    pub(crate) fn add_subscription(
        self: &Arc<Self>,
        n: u64,
        id: u64,
        mut sub: EventSubscription,
    ) -> Result<(), CoreError> {
        let key = lock(&self.handles)
            .get(&n)
            .map(|h| h.key.clone())
            .ok_or(CoreError::InvalidGroup)?;
        let mut subs = lock(&self.subs);
        if subs.contains_key(&id) {
            return Err(CoreError::InvalidRegistration(format!(
                "subscription {id} exists"
            )));
        }
        let this = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                let Some(session) = this.upgrade() else {
                    return;
                };
                let frame = ServerFrame::Event {
                    subscription: id,
                    item,
                };
                if !session.send_event(&frame).await {
                    return;
                }
            }
            // The group closed for good.
            if let Some(session) = this.upgrade() {
                lock(&session.subs).remove(&id);
                session
                    .send_event(&ServerFrame::Ended { subscription: id })
                    .await;
            }
        });
        subs.insert(id, SubEntry { key, task });
        Ok(())
    }

    pub(crate) fn subscription_count(&self) -> usize {
        lock(&self.subs).len()
    }

    pub(crate) fn unsubscribe(&self, id: u64) -> Result<(), CoreError> {
        let sub = lock(&self.subs)
            .remove(&id)
            .ok_or_else(|| CoreError::InvalidRegistration(format!("no subscription {id}")))?;
        sub.task.abort();
        Ok(())
    }

    pub(crate) fn add_hold(&self, n: u64, hold: PasswordHold) -> u64 {
        let id = self.next_hold.fetch_add(1, Ordering::Relaxed);
        lock(&self.holds).insert(id, (n, hold));
        id
    }

    /// Runs `f` with hold `id`.
    pub(crate) fn with_hold<T>(
        &self,
        id: u64,
        f: impl FnOnce(&PasswordHold) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let holds = lock(&self.holds);
        let (_, hold) = holds.get(&id).ok_or_else(|| {
            CoreError::InvalidRegistration("the registration is not of this group".into())
        })?;
        f(hold)
    }

    pub(crate) fn release_hold(&self, id: u64) {
        lock(&self.holds).remove(&id);
    }

    /// The session ended: every forwarder stops, every hold is given up, every handle closes.
    pub(crate) async fn close_all(&self) {
        let subs: Vec<SubEntry> = lock(&self.subs).drain().map(|(_, s)| s).collect();
        subs.iter().for_each(|s| s.task.abort());
        lock(&self.holds).clear();
        let handles: Vec<u64> = lock(&self.handles).keys().copied().collect();
        for n in handles {
            if let Err(e) = self.close_handle(n).await {
                tracing::debug!(session = self.id, "closing handle {n}: {e}");
            }
        }
        *self.events.lock().await = None;
    }
}
