//! Event delivery: the group's events, fanned out to subscriptions.
//!
//! Each open group holds one [`EventHub`]. The driver publishes what the membership machine
//! reports ([`GroupEvent`]), converted to [`Event`]: the data Windows puts in
//! `PEER_GROUP_EVENT_DATA`. A subscription ([`EventSubscription`], from
//! [`crate::GroupHandle::subscribe`]) takes the events its [`EventFilter`] matches into a
//! bounded queue of its own; a slow subscriber never makes the hub buffer without bound:
//!
//! - when its queue is full, further events are dropped (the queued ones and their order are
//!   kept) and counted;
//! - the count is reported as one [`EventItem::Lagged`] item, placed after the events queued
//!   before the loss and before the next event that fits (or on its own once the queue drained).
//!
//! The optional notifier is called each time the queue goes from empty to non-empty (the C
//! ABI signals an eventfd with it); [`EventSubscription::try_next`] reads without waiting,
//! [`EventSubscription::next`] (or the `Stream` implementation) waits. Dropping the
//! subscription stops delivery at once. When the group closes for good (its last handle
//! closed, or deleted) the hub closes: subscriptions keep what they queued, then end.
//!
//! ## Adding an event
//!
//! Every `PEER_GROUP_EVENT_TYPE` has its [`EventKind`], so a registration for an event this
//! library does not raise yet is accepted and simply receives none. [`Event`] only has the
//! variants something produces; a new one (direct connection, incoming data,
//! authentication failed) gets its variant here with its kind in [`Event::kind`] (and its
//! type GUID in [`Event::type_guid`] if `pType` filters it), a producer calling
//! [`EventHub::publish`], and its C structure in the ABI's `events.rs`. The matches on
//! [`Event`] are exhaustive so the compiler lists every place to extend.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::io::{ConnectionStatus, GroupEvent, RecordChange};

/// How many undelivered items a subscription holds by default.
pub const DEFAULT_QUEUE: usize = 1024;
/// The smallest queue a subscription may have: room for a lag report and one event.
pub const MIN_QUEUE: usize = 2;
/// Bytes of incoming data a subscription queues before [`EventHub::publish_waiting`] waits
/// for the reader (one message is always let in, whatever its size).
pub const DATA_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// `PEER_GROUP_EVENT_TYPE`: the kinds of group event, with Windows' numbers (7 and 9 unused).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum EventKind {
    /// `PEER_GROUP_EVENT_STATUS_CHANGED` (1).
    StatusChanged = 1,
    /// `PEER_GROUP_EVENT_PROPERTY_CHANGED` (2).
    PropertyChanged = 2,
    /// `PEER_GROUP_EVENT_RECORD_CHANGED` (3).
    RecordChanged = 3,
    /// `PEER_GROUP_EVENT_DIRECT_CONNECTION` (4).
    DirectConnection = 4,
    /// `PEER_GROUP_EVENT_NEIGHBOR_CONNECTION` (5).
    NeighborConnection = 5,
    /// `PEER_GROUP_EVENT_INCOMING_DATA` (6).
    IncomingData = 6,
    /// `PEER_GROUP_EVENT_MEMBER_CHANGED` (8).
    MemberChanged = 8,
    /// `PEER_GROUP_EVENT_CONNECTION_FAILED` (10).
    ConnectionFailed = 10,
    /// `PEER_GROUP_EVENT_AUTHENTICATION_FAILED` (11).
    AuthenticationFailed = 11,
}

impl EventKind {
    /// Every kind, in number order.
    pub const ALL: [EventKind; 9] = [
        EventKind::StatusChanged,
        EventKind::PropertyChanged,
        EventKind::RecordChanged,
        EventKind::DirectConnection,
        EventKind::NeighborConnection,
        EventKind::IncomingData,
        EventKind::MemberChanged,
        EventKind::ConnectionFailed,
        EventKind::AuthenticationFailed,
    ];

    /// The `PEER_GROUP_EVENT_TYPE` value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The kind with this `PEER_GROUP_EVENT_TYPE` value, if there is one.
    pub fn from_code(code: i32) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// `PEER_EVENT_CONNECTION_CHANGE_DATA`: a connection came, went or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionChange {
    /// `status`: connected, disconnected or failed.
    pub status: ConnectionStatus,
    /// `ullConnectionId`: the transport's connection id, as in [`crate::Neighbour`].
    pub connection_id: u64,
    /// `ullNodeId`: the peer's node id.
    pub node_id: u64,
    /// `ullNextConnectionId`: the connection that replaces this one; 0 when none.
    pub next_connection_id: u64,
    /// `hrConnectionFailedReason`: why a connection failed; 0 otherwise.
    pub failed_reason: i32,
}

/// One group event, with the data `PEER_GROUP_EVENT_DATA` carries for it. Only events this
/// library raises have a variant (see the module documentation on adding one).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// `PEER_GROUP_EVENT_STATUS_CHANGED`: the new `PEER_GROUP_STATUS` bits.
    StatusChanged(u32),
    /// `PEER_GROUP_EVENT_PROPERTY_CHANGED`: no data; read the properties again.
    PropertyChanged,
    /// `PEER_GROUP_EVENT_RECORD_CHANGED` (`PEER_EVENT_RECORD_CHANGE_DATA`).
    RecordChanged {
        /// `changeType`.
        change: RecordChange,
        /// `recordType`, GUID bytes in Windows order.
        record_type: [u8; 16],
        /// `recordId`, GUID bytes in Windows order.
        id: [u8; 16],
    },
    /// `PEER_GROUP_EVENT_NEIGHBOR_CONNECTION` (`PEER_EVENT_CONNECTION_CHANGE_DATA`).
    NeighborConnection(ConnectionChange),
    /// `PEER_GROUP_EVENT_DIRECT_CONNECTION` (`PEER_EVENT_CONNECTION_CHANGE_DATA`): a direct
    /// connection opened here or by the peer is up, went down, or could not be made.
    DirectConnection(ConnectionChange),
    /// `PEER_GROUP_EVENT_INCOMING_DATA` (`PEER_EVENT_INCOMING_DATA`): one whole message of
    /// `PeerGroupSendData`, in the order the connection delivered it.
    IncomingData {
        /// `ullConnectionId`: the neighbour or direct connection it came on.
        connection_id: u64,
        /// `type`: the GUID the sender tagged it with (Windows byte order).
        data_type: [u8; 16],
        /// `data`.
        data: Bytes,
    },
    /// `PEER_GROUP_EVENT_CONNECTION_FAILED`: the group could not connect (its HRESULT).
    ConnectionFailed(i32),
    /// `PEER_GROUP_EVENT_AUTHENTICATION_FAILED`: a password joiner failed authentication at
    /// this member; the HRESULT says why (`0x80070056`: wrong password). Windows defines no
    /// structure for it; the C ABI puts the reason in `hrConnectionFailedReason`.
    AuthenticationFailed(i32),
    /// `PEER_GROUP_EVENT_MEMBER_CHANGED` (`PEER_EVENT_MEMBER_CHANGE_DATA`).
    MemberChanged {
        /// `changeType`.
        change: crate::members::MemberChange,
        /// `pwzIdentity`: the member's peer name.
        identity: String,
    },
}

impl Event {
    /// The event's `PEER_GROUP_EVENT_TYPE`.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::StatusChanged(_) => EventKind::StatusChanged,
            Event::PropertyChanged => EventKind::PropertyChanged,
            Event::RecordChanged { .. } => EventKind::RecordChanged,
            Event::NeighborConnection(_) => EventKind::NeighborConnection,
            Event::DirectConnection(_) => EventKind::DirectConnection,
            Event::IncomingData { .. } => EventKind::IncomingData,
            Event::ConnectionFailed(_) => EventKind::ConnectionFailed,
            Event::AuthenticationFailed(_) => EventKind::AuthenticationFailed,
            Event::MemberChanged { .. } => EventKind::MemberChanged,
        }
    }

    /// The type GUID a registration's `pType` is compared with: the record type of a record
    /// change, the data type of incoming data; none for the other events.
    pub fn type_guid(&self) -> Option<[u8; 16]> {
        match self {
            Event::RecordChanged { record_type, .. } => Some(*record_type),
            Event::IncomingData { data_type, .. } => Some(*data_type),
            Event::StatusChanged(_)
            | Event::PropertyChanged
            | Event::NeighborConnection(_)
            | Event::DirectConnection(_)
            | Event::ConnectionFailed(_)
            | Event::AuthenticationFailed(_)
            | Event::MemberChanged { .. } => None,
        }
    }
}

impl From<&GroupEvent> for Event {
    fn from(e: &GroupEvent) -> Self {
        match e {
            GroupEvent::StatusChanged(s) => Event::StatusChanged(*s),
            GroupEvent::PropertyChanged => Event::PropertyChanged,
            GroupEvent::NeighborConnection {
                status,
                conn,
                node_id,
            } => Event::NeighborConnection(ConnectionChange {
                status: *status,
                connection_id: *conn,
                node_id: *node_id,
                next_connection_id: 0,
                failed_reason: 0,
            }),
            GroupEvent::ConnectionFailed(hr) => Event::ConnectionFailed(*hr),
            GroupEvent::MemberChanged { change, identity } => Event::MemberChanged {
                change: *change,
                identity: identity.clone(),
            },
            GroupEvent::RecordChanged {
                change,
                record_type,
                id,
            } => Event::RecordChanged {
                change: *change,
                record_type: *record_type,
                id: *id,
            },
        }
    }
}

/// What a subscription reads: an event, or how many events it lost.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventItem {
    /// An event the filter matched.
    Event(Event),
    /// This many matching events were dropped here because the queue was full.
    Lagged(u64),
}

/// One `PEER_GROUP_EVENT_REGISTRATION`: a kind, and for record changes (later incoming data)
/// optionally the one type GUID wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// The event kind.
    pub kind: EventKind,
    /// `pType`: `None` for every type.
    pub type_filter: Option<[u8; 16]>,
}

/// Which events a subscription wants: the union of its registrations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    registrations: Vec<Registration>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::kinds(&EventKind::ALL)
    }

    /// Every event of these kinds.
    pub fn kinds(kinds: &[EventKind]) -> Self {
        EventFilter {
            registrations: kinds
                .iter()
                .map(|&kind| Registration {
                    kind,
                    type_filter: None,
                })
                .collect(),
        }
    }

    /// From registrations (an empty list matches nothing).
    pub fn new(registrations: Vec<Registration>) -> Self {
        EventFilter { registrations }
    }

    /// The registrations.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// True when some registration takes this event. A type filter applies to events that
    /// carry a type GUID; other events of the kind pass.
    pub fn matches(&self, event: &Event) -> bool {
        let kind = event.kind();
        let guid = event.type_guid();
        self.registrations.iter().any(|r| {
            r.kind == kind
                && match (r.type_filter, guid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    }
}

/// Called when a subscription's queue goes from empty to non-empty. It runs on the thread
/// that publishes (the group's driver task), with no lock held: it must be quick and must
/// not block.
pub type Notifier = Box<dyn Fn() + Send + Sync>;

struct Queue {
    items: VecDeque<EventItem>,
    lost: u64,
    closed: bool,
    waker: Option<Waker>,
    /// Bytes of incoming data in `items`.
    data_bytes: usize,
    /// Publishers waiting for room ([`EventHub::publish_waiting`]).
    room_wakers: Vec<Waker>,
}

impl Queue {
    fn push(&mut self, item: EventItem) {
        self.data_bytes += data_len(&item);
        self.items.push_back(item);
    }

    /// The next item; publishers waiting for room are handed back to be woken.
    fn pop(&mut self) -> (Option<EventItem>, Vec<Waker>) {
        let item = match self.items.pop_front() {
            Some(item) => {
                self.data_bytes -= data_len(&item);
                Some(item)
            }
            None if self.lost > 0 => Some(EventItem::Lagged(std::mem::take(&mut self.lost))),
            None => None,
        };
        let wakers = if item.is_some() {
            std::mem::take(&mut self.room_wakers)
        } else {
            Vec::new()
        };
        (item, wakers)
    }
}

fn data_len(item: &EventItem) -> usize {
    match item {
        EventItem::Event(Event::IncomingData { data, .. }) => data.len(),
        _ => 0,
    }
}

struct Subscriber {
    filter: EventFilter,
    capacity: usize,
    notifier: Option<Notifier>,
    queue: Mutex<Queue>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriber {
    /// Queues an event (or counts it lost); returns true when the queue was empty before.
    fn offer(&self, event: &Event) -> (bool, Option<Waker>) {
        let mut q = lock(&self.queue);
        if q.closed {
            return (false, None);
        }
        let was_empty = q.items.is_empty();
        let len = q.items.len();
        if q.lost > 0 {
            if len + 2 <= self.capacity {
                let lost = std::mem::take(&mut q.lost);
                q.push(EventItem::Lagged(lost));
                q.push(EventItem::Event(event.clone()));
            } else {
                q.lost += 1;
                return (false, None);
            }
        } else if len < self.capacity {
            q.push(EventItem::Event(event.clone()));
        } else {
            q.lost = 1;
            return (false, None);
        }
        (was_empty, q.waker.take())
    }

    /// Queues `event` if there is room for it, else registers `cx` to be woken when the
    /// reader takes an item (or the subscription ends, which drops the event).
    fn offer_or_wait(&self, event: &Event, cx: &mut Context<'_>) -> Poll<(bool, Option<Waker>)> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Poll::Ready((false, None));
        }
        let size = match event {
            Event::IncomingData { data, .. } => data.len(),
            _ => 0,
        };
        let lag_slot = usize::from(q.lost > 0);
        let fits = q.items.len() + lag_slot < self.capacity
            && (q.data_bytes == 0 || q.data_bytes + size <= DATA_QUEUE_BYTES);
        if !fits {
            q.room_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let was_empty = q.items.is_empty();
        if q.lost > 0 {
            let lost = std::mem::take(&mut q.lost);
            q.push(EventItem::Lagged(lost));
        }
        q.push(EventItem::Event(event.clone()));
        Poll::Ready((was_empty, q.waker.take()))
    }

    fn close(&self) -> Vec<Waker> {
        let mut q = lock(&self.queue);
        q.closed = true;
        let mut wakers = std::mem::take(&mut q.room_wakers);
        wakers.extend(q.waker.take());
        wakers
    }

    fn delivered(&self, became_ready: bool, waker: Option<Waker>) {
        if let Some(w) = waker {
            w.wake();
        }
        if became_ready {
            if let Some(n) = &self.notifier {
                n();
            }
        }
    }
}

#[derive(Default)]
struct HubState {
    subscribers: Vec<Arc<Subscriber>>,
    closed: bool,
    /// Called once when the last subscription leaves an open hub.
    on_empty: Option<Box<dyn FnOnce() + Send>>,
}

/// A group's event fan-out. Publishing never blocks and never grows memory without bound.
/// Clones share the hub.
#[derive(Clone, Default)]
pub struct EventHub {
    state: Arc<Mutex<HubState>>,
}

impl EventHub {
    /// An open hub with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A subscription to the events `filter` matches, queueing at most `capacity` items
    /// (at least [`MIN_QUEUE`]), calling `notifier` when its queue stops being empty. On a
    /// closed hub the subscription is born ended.
    pub fn subscribe(
        &self,
        filter: EventFilter,
        capacity: usize,
        notifier: Option<Notifier>,
    ) -> EventSubscription {
        let sub = Arc::new(Subscriber {
            filter,
            capacity: capacity.max(MIN_QUEUE),
            notifier,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                lost: 0,
                closed: false,
                waker: None,
                data_bytes: 0,
                room_wakers: Vec::new(),
            }),
        });
        let mut st = lock(&self.state);
        if st.closed {
            sub.close();
        } else {
            st.subscribers.push(sub.clone());
        }
        EventSubscription {
            sub,
            hub: Arc::downgrade(&self.state),
        }
    }

    /// The subscriptions whose filters take `event` (taken out of the lock, so delivery runs
    /// without it).
    fn matching(&self, event: &Event) -> Vec<Arc<Subscriber>> {
        lock(&self.state)
            .subscribers
            .iter()
            .filter(|s| s.filter.matches(event))
            .cloned()
            .collect()
    }

    /// Delivers an event to every subscription whose filter matches it.
    pub fn publish(&self, event: &Event) {
        for s in self.matching(event) {
            let (became_ready, waker) = s.offer(event);
            s.delivered(became_ready, waker);
        }
    }

    /// Delivers an event like [`EventHub::publish`], but where a matching subscription's
    /// queue is full, waits until its reader makes room instead of counting the event lost.
    ///
    /// For incoming data: a reader that does not keep up slows the sender down (through
    /// QUIC's flow control) rather than losing messages, and memory stays bounded by the
    /// queue's length and [`DATA_QUEUE_BYTES`]. A subscription that ends meanwhile is skipped.
    pub async fn publish_waiting(&self, event: &Event) {
        for s in self.matching(event) {
            let (became_ready, waker) = poll_fn(|cx| s.offer_or_wait(event, cx)).await;
            s.delivered(became_ready, waker);
        }
    }

    /// [`EventHub::publish`] for what the membership machine reported.
    pub fn publish_group_event(&self, event: &GroupEvent) {
        self.publish(&Event::from(event));
    }

    /// Counts `n` events as lost for every subscription: they were dropped before reaching
    /// this hub (the service's queue for a slow client), so readers see `Lagged` as usual.
    pub fn report_lost(&self, n: u64) {
        let subs = lock(&self.state).subscribers.clone();
        for s in subs {
            let (became_ready, waker) = {
                let mut q = lock(&s.queue);
                if q.closed {
                    continue;
                }
                let was_empty = q.items.is_empty() && q.lost == 0;
                q.lost += n;
                (was_empty, q.waker.take())
            };
            s.delivered(became_ready, waker);
        }
    }

    /// Calls `f` once, when the last subscription is dropped or closed while the hub is open
    /// (a service session then tells the service to stop sending).
    pub fn on_last_unsubscribe(&self, f: impl FnOnce() + Send + 'static) {
        lock(&self.state).on_empty = Some(Box::new(f));
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.state).subscribers.len()
    }

    /// Ends every subscription (they keep what they queued) and refuses new ones: the group
    /// closed for good.
    pub fn close(&self) {
        let subs = {
            let mut st = lock(&self.state);
            st.closed = true;
            std::mem::take(&mut st.subscribers)
        };
        for s in subs {
            s.close().into_iter().for_each(Waker::wake);
        }
    }
}

/// A subscription to a group's events. Dropping it (or [`EventSubscription::unsubscribe`])
/// stops delivery.
pub struct EventSubscription {
    sub: Arc<Subscriber>,
    hub: Weak<Mutex<HubState>>,
}

impl EventSubscription {
    /// The next item if one is queued, without waiting.
    pub fn try_next(&self) -> Option<EventItem> {
        let (item, wakers) = lock(&self.sub.queue).pop();
        wakers.into_iter().for_each(Waker::wake);
        item
    }

    /// The next item, waiting for one; `None` once the group closed and the queue is drained.
    pub async fn next(&mut self) -> Option<EventItem> {
        poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&self, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        let mut q = lock(&self.sub.queue);
        let (item, wakers) = q.pop();
        if let Some(item) = item {
            drop(q);
            wakers.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(item));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// True once no more events will come: the group closed (or the subscription was made on
    /// a closed group). Items already queued can still be read.
    pub fn is_closed(&self) -> bool {
        lock(&self.sub.queue).closed
    }

    /// The filter this subscription was made with.
    pub fn filter(&self) -> &EventFilter {
        &self.sub.filter
    }

    /// Stops delivery and drops what is queued (the same as dropping the subscription).
    pub fn unsubscribe(self) {}

    /// Stops delivery but keeps what is queued readable; then the subscription ends, as when
    /// its group closes. (The C ABI does this when the `HGROUP` it was made through closes.)
    pub fn close(&self) {
        if let Some(hub) = self.hub.upgrade() {
            let emptied = {
                let mut st = lock(&hub);
                st.subscribers.retain(|s| !Arc::ptr_eq(s, &self.sub));
                if st.subscribers.is_empty() && !st.closed {
                    st.on_empty.take()
                } else {
                    None
                }
            };
            if let Some(f) = emptied {
                f();
            }
        }
        self.sub.close().into_iter().for_each(Waker::wake);
    }
}

impl Drop for EventSubscription {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(feature = "net")]
impl futures_core::Stream for EventSubscription {
    type Item = EventItem;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        self.poll_item(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn status(s: u32) -> Event {
        Event::StatusChanged(s)
    }

    fn record(t: u8, id: u8) -> Event {
        Event::RecordChanged {
            change: RecordChange::Added,
            record_type: [t; 16],
            id: [id; 16],
        }
    }

    fn drain(s: &EventSubscription) -> Vec<EventItem> {
        std::iter::from_fn(|| s.try_next()).collect()
    }

    #[test]
    fn kinds_keep_windows_numbers() {
        let codes: Vec<i32> = EventKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 8, 10, 11]);
        assert_eq!(EventKind::from_code(5), Some(EventKind::NeighborConnection));
        assert_eq!(EventKind::from_code(7), None);
        assert_eq!(EventKind::from_code(9), None);
        assert_eq!(EventKind::from_code(0), None);
    }

    #[test]
    fn filters_take_their_kinds_and_types_only() {
        let hub = EventHub::new();
        let statuses = hub.subscribe(EventFilter::kinds(&[EventKind::StatusChanged]), 8, None);
        let one_type = hub.subscribe(
            EventFilter::new(vec![Registration {
                kind: EventKind::RecordChanged,
                type_filter: Some([7; 16]),
            }]),
            8,
            None,
        );
        let everything = hub.subscribe(EventFilter::all(), 8, None);
        let nothing = hub.subscribe(EventFilter::new(vec![]), 8, None);
        for e in [
            status(1),
            record(7, 1),
            record(8, 2),
            Event::PropertyChanged,
        ] {
            hub.publish(&e);
        }
        assert_eq!(drain(&statuses), vec![EventItem::Event(status(1))]);
        assert_eq!(drain(&one_type), vec![EventItem::Event(record(7, 1))]);
        assert_eq!(drain(&everything).len(), 4);
        assert!(drain(&nothing).is_empty());
    }

    #[test]
    fn a_type_filter_does_not_hide_events_without_a_type() {
        let f = EventFilter::new(vec![Registration {
            kind: EventKind::StatusChanged,
            type_filter: Some([1; 16]),
        }]);
        assert!(f.matches(&status(3)));
        assert!(!f.matches(&record(1, 1)), "another kind");
    }

    #[test]
    fn events_arrive_in_publication_order() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 64, None);
        let events: Vec<Event> = (0..50).map(status).collect();
        for e in &events {
            hub.publish(e);
        }
        let got: Vec<EventItem> = drain(&s);
        assert_eq!(
            got,
            events.into_iter().map(EventItem::Event).collect::<Vec<_>>()
        );
        assert_eq!(s.try_next(), None);
    }

    #[test]
    fn a_full_queue_reports_the_loss_before_the_next_events() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 4, None);
        for i in 0..10 {
            hub.publish(&status(i));
        }
        // The first four stay, six are lost; nothing more is held.
        assert_eq!(s.try_next(), Some(EventItem::Event(status(0))));
        assert_eq!(s.try_next(), Some(EventItem::Event(status(1))));
        // Room for the report and one event: both go in, in that order.
        hub.publish(&status(10));
        assert_eq!(
            drain(&s),
            vec![
                EventItem::Event(status(2)),
                EventItem::Event(status(3)),
                EventItem::Lagged(6),
                EventItem::Event(status(10)),
            ]
        );
    }

    #[test]
    fn a_loss_is_reported_even_if_nothing_follows() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 2, None);
        for i in 0..5 {
            hub.publish(&status(i));
        }
        assert_eq!(
            drain(&s),
            vec![
                EventItem::Event(status(0)),
                EventItem::Event(status(1)),
                EventItem::Lagged(3),
            ]
        );
        hub.publish(&status(9));
        assert_eq!(drain(&s), vec![EventItem::Event(status(9))]);
    }

    #[test]
    fn the_queue_never_holds_more_than_its_capacity() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 16, None);
        for round in 0..100u32 {
            for i in 0..40 {
                hub.publish(&status(round * 100 + i));
            }
            assert!(lock(&s.sub.queue).items.len() <= 16);
            // Read a few, as a slow consumer would.
            for _ in 0..5 {
                s.try_next();
            }
        }
        let items = drain(&s);
        assert!(items.len() <= 17, "the queue plus one pending lag report");
        assert!(items.iter().any(|i| matches!(i, EventItem::Lagged(_))));
    }

    #[test]
    fn dropping_or_unsubscribing_stops_delivery() {
        let hub = EventHub::new();
        let a = hub.subscribe(EventFilter::all(), 8, None);
        let b = hub.subscribe(EventFilter::all(), 8, None);
        assert_eq!(hub.subscriber_count(), 2);
        a.unsubscribe();
        assert_eq!(hub.subscriber_count(), 1);
        drop(b);
        assert_eq!(hub.subscriber_count(), 0);
        hub.publish(&status(1)); // nobody to deliver to
    }

    #[test]
    fn a_closed_subscription_keeps_its_queue_and_takes_nothing_more() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 8, None);
        hub.publish(&status(1));
        s.close();
        assert!(s.is_closed());
        assert_eq!(hub.subscriber_count(), 0);
        hub.publish(&status(2));
        assert_eq!(drain(&s), vec![EventItem::Event(status(1))]);
    }

    #[test]
    fn the_notifier_fires_when_the_queue_stops_being_empty() {
        let hub = EventHub::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let s = hub.subscribe(
            EventFilter::kinds(&[EventKind::StatusChanged]),
            8,
            Some(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            })),
        );
        hub.publish(&Event::PropertyChanged); // filtered out: no signal
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        hub.publish(&status(1));
        hub.publish(&status(2));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "coalesced while not drained"
        );
        drain(&s);
        hub.publish(&status(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        drop(s);
        hub.publish(&status(4));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no signal after unsubscribing"
        );
    }

    #[test]
    fn closing_the_hub_ends_subscriptions_after_their_queue() {
        let hub = EventHub::new();
        let s = hub.subscribe(EventFilter::all(), 8, None);
        hub.publish(&status(1));
        hub.close();
        assert!(s.is_closed());
        hub.publish(&status(2));
        assert_eq!(drain(&s), vec![EventItem::Event(status(1))]);
        let late = hub.subscribe(EventFilter::all(), 8, None);
        assert!(late.is_closed());
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[tokio::test]
    async fn next_waits_for_an_event_and_ends_with_the_hub() {
        let hub = Arc::new(EventHub::new());
        let mut s = hub.subscribe(EventFilter::all(), 8, None);
        let h = hub.clone();
        let publisher = tokio::spawn(async move {
            tokio::task::yield_now().await;
            h.publish(&status(5));
            h.close();
        });
        assert_eq!(s.next().await, Some(EventItem::Event(status(5))));
        assert_eq!(s.next().await, None);
        publisher.await.unwrap();
    }

    #[test]
    fn machine_events_convert_with_their_data() {
        let e = Event::from(&GroupEvent::NeighborConnection {
            status: ConnectionStatus::Connected,
            conn: 9,
            node_id: 42,
        });
        assert_eq!(
            e,
            Event::NeighborConnection(ConnectionChange {
                status: ConnectionStatus::Connected,
                connection_id: 9,
                node_id: 42,
                next_connection_id: 0,
                failed_reason: 0,
            })
        );
        assert_eq!(e.kind(), EventKind::NeighborConnection);
        assert_eq!(
            Event::from(&GroupEvent::ConnectionFailed(-1)),
            Event::ConnectionFailed(-1)
        );
        let r = Event::from(&GroupEvent::RecordChanged {
            change: RecordChange::Deleted,
            record_type: [1; 16],
            id: [2; 16],
        });
        assert_eq!(r.type_guid(), Some([1; 16]));
    }

    fn data(n: u8, len: usize) -> Event {
        Event::IncomingData {
            connection_id: 7,
            data_type: [n; 16],
            data: Bytes::from(vec![n; len]),
        }
    }

    #[tokio::test]
    async fn incoming_data_waits_for_room_instead_of_being_lost() {
        let hub = Arc::new(EventHub::new());
        let mut sub = hub.subscribe(EventFilter::kinds(&[EventKind::IncomingData]), 2, None);
        hub.publish_waiting(&data(1, 10)).await;
        hub.publish_waiting(&data(2, 10)).await;
        // The queue is full: the third waits until the reader takes one.
        let third = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish_waiting(&data(3, 10)).await }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        for n in 1..=3u8 {
            assert_eq!(sub.next().await, Some(EventItem::Event(data(n, 10))));
        }
        third.await.unwrap();
        assert!(sub.try_next().is_none());
    }

    #[tokio::test]
    async fn queued_data_is_bounded_in_bytes_but_one_message_always_fits() {
        let hub = Arc::new(EventHub::new());
        let sub = hub.subscribe(EventFilter::kinds(&[EventKind::IncomingData]), 1024, None);
        // A message larger than the byte bound still goes into an empty queue.
        hub.publish_waiting(&data(1, DATA_QUEUE_BYTES + 1)).await;
        let second = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish_waiting(&data(2, 1)).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "over the byte bound: waits");
        assert!(matches!(sub.try_next(), Some(EventItem::Event(_))));
        second.await.unwrap();
        assert_eq!(sub.try_next(), Some(EventItem::Event(data(2, 1))));
    }

    #[tokio::test]
    async fn a_subscription_that_ends_releases_a_waiting_publisher() {
        let hub = Arc::new(EventHub::new());
        let sub = hub.subscribe(EventFilter::kinds(&[EventKind::IncomingData]), 2, None);
        hub.publish_waiting(&data(1, 1)).await;
        hub.publish_waiting(&data(2, 1)).await;
        let third = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish_waiting(&data(3, 1)).await }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(sub);
        third.await.unwrap();
        // A subscription that does not take data never holds a publisher up.
        let _status = hub.subscribe(EventFilter::kinds(&[EventKind::StatusChanged]), 2, None);
        for n in 0..10 {
            hub.publish_waiting(&data(n, 1)).await;
        }
    }

    #[test]
    fn the_last_unsubscribe_of_an_open_hub_is_told_once() {
        let hub = EventHub::new();
        let told = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = told.clone();
        hub.on_last_unsubscribe(move || {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let a = hub.subscribe(EventFilter::all(), 8, None);
        let b = hub.subscribe(EventFilter::all(), 8, None);
        drop(a);
        assert_eq!(told.load(std::sync::atomic::Ordering::SeqCst), 0);
        b.close();
        drop(b);
        assert_eq!(told.load(std::sync::atomic::Ordering::SeqCst), 1);

        // A closed hub (its group ended) tells nobody.
        let hub = EventHub::new();
        let t = told.clone();
        hub.on_last_unsubscribe(move || {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let c = hub.subscribe(EventFilter::all(), 8, None);
        hub.close();
        drop(c);
        assert_eq!(told.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
