//! The event functions of `p2p.h`: `PeerGroupRegisterEvent`, `PeerGroupUnregisterEvent` and
//! `PeerGroupGetEventData`.
//!
//! The Win32 event `HANDLE` is an eventfd here, `(HANDLE)(intptr_t)fd`. A registration
//! (`HPEEREVENT`, an entry of the handle table) holds a subscription to the group's events
//! and a duplicate of the caller's descriptor: when its queue goes from empty to non-empty
//! the library writes 1 to the eventfd, so a caller that closes its descriptor too early
//! never makes the library write into whatever file reuses the number. The caller polls the
//! eventfd, reads it (resetting it), then calls `PeerGroupGetEventData` until
//! `PEER_S_NO_EVENT_DATA`.
//!
//! A registration queues at most [`peergroup_core::events::DEFAULT_QUEUE`] events. Events
//! that find it full are dropped, and the loss is reported at its place in the sequence:
//! one `PeerGroupGetEventData` call returns `E_OUTOFMEMORY` (no data) and the eventfd is
//! signalled again, so a drain loop that stops on the failure comes back for the events after
//! it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use peergroup_core::events::{
    Event, EventFilter, EventItem, EventKind, EventSubscription, Registration, DEFAULT_QUEUE,
};
use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::io::ConnectionStatus;
use peergroup_core::io::RecordChange;
use peergroup_core::PasswordHold;
use slotmap::DefaultKey;

use crate::alloc::CBlock;
use crate::convert::{guid_bytes, guid_from_bytes};
use crate::ffi::{read_in_opt, require_out, slice_in};
use crate::runtime::{entry, from_handle, lock, Object, ToHresult};
use crate::types::{
    DWORD, HANDLE, HGROUP, HPEEREVENT, PEER_CONNECTED, PEER_CONNECTION_FAILED, PEER_DATA,
    PEER_DISCONNECTED, PEER_EVENT_CONNECTION_CHANGE_DATA, PEER_EVENT_INCOMING_DATA,
    PEER_EVENT_RECORD_CHANGE_DATA, PEER_GROUP_EVENT_DATA, PEER_GROUP_EVENT_REGISTRATION,
    PEER_RECORD_ADDED, PEER_RECORD_DELETED, PEER_RECORD_EXPIRED, PEER_RECORD_UPDATED, ULONG,
};

/// Most `PEER_GROUP_EVENT_REGISTRATION`s one registration may have (there are 9 event types;
/// with `pType` filters a few more make sense).
const MAX_REGISTRATIONS: usize = 256;

/// What the eventfd link of the Linux kernel looks like in `/proc/self/fd`.
const EVENTFD_LINK: &str = "anon_inode:[eventfd]";

/// The library's duplicate of the caller's eventfd.
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Checks that `h` is an open, writable eventfd and duplicates it (close-on-exec).
    /// `E_INVALIDARG` otherwise: NULL, negative or out of range, closed, read-only, or (where
    /// `/proc` says what it is) not an eventfd.
    pub fn from_handle(h: HANDLE) -> Result<Self, HRESULT> {
        let fd = i32::try_from(h as isize).map_err(|_| hresult::E_INVALIDARG)?;
        if fd <= 0 {
            return Err(hresult::E_INVALIDARG);
        }
        // SAFETY: F_GETFL only reads the descriptor's flags; an invalid fd gives -1/EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(hresult::E_INVALIDARG);
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(hresult::E_INVALIDARG);
        }
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            if target.as_os_str() != EVENTFD_LINK {
                return Err(hresult::E_INVALIDARG);
            }
        }
        // SAFETY: duplicating an open descriptor; the new one is ours alone.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(hresult::E_OUTOFMEMORY);
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(dup) }))
    }

    /// Adds 1 to the eventfd's counter. Never blocks for long: an eventfd write waits only
    /// when the counter is near 2^64, which signals of 1 never reach.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor this value owns.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// An `HPEEREVENT`: a subscription and the eventfd it signals.
pub struct EventRegistration {
    /// The `HGROUP` it was made through: closing that handle ends it.
    pub group: DefaultKey,
    subscription: EventSubscription,
    signal: Arc<EventFd>,
    /// For a registration listing `PEER_GROUP_EVENT_AUTHENTICATION_FAILED`: its claim to
    /// resume password authentication after a failure (`password_auth.rs`).
    password_hold: Option<PasswordHold>,
}

impl EventRegistration {
    /// Stops delivery; what is queued stays readable.
    pub fn end(&self) {
        self.subscription.close();
    }

    /// The password hold of a registration for authentication failures.
    pub fn password_hold(&self) -> Option<&PasswordHold> {
        self.password_hold.as_ref()
    }
}

/// Reads the registrations: every type must be a `PEER_GROUP_EVENT_TYPE` (`E_INVALIDARG`).
///
/// # Safety
/// `regs` readable for `count` structures whose `pType` is NULL or a readable `GUID`.
unsafe fn read_filter(
    regs: *const PEER_GROUP_EVENT_REGISTRATION,
    count: usize,
) -> Result<EventFilter, HRESULT> {
    // SAFETY: per this function's contract.
    let given = unsafe { slice_in(regs, count) };
    let mut out = Vec::with_capacity(count);
    for r in given {
        let kind = EventKind::from_code(r.eventType).ok_or(hresult::E_INVALIDARG)?;
        // SAFETY: the caller promises NULL or a readable GUID.
        let type_filter = unsafe { read_in_opt(r.pType) }.map(|g| guid_bytes(&g));
        out.push(Registration { kind, type_filter });
    }
    Ok(EventFilter::new(out))
}

/// Registers for the group's events of the listed types; `hEvent` (an eventfd) is signalled
/// when events are queued. `pType` filters record changes by record type (NULL: all). Event
/// types may be registered; `PEER_GROUP_EVENT_INCOMING_DATA` is never dropped (the sender
/// waits instead, see docs/c-api.md). A registration listing
/// `PEER_GROUP_EVENT_AUTHENTICATION_FAILED` takes part in password authentication: after a
/// failure at this member, password joiners are refused until the application calls
/// `PeerGroupResumePasswordAuthentication` with it (or unregisters it).
///
/// `E_POINTER` for a NULL `phPeerEvent`; `E_INVALIDARG` for a NULL array, a count of 0 or
/// over 256, an unknown event type, or an `hEvent` that is not an open, writable eventfd;
/// `PEER_E_INVALID_GROUP` for a bad `hGroup`.
///
/// # Safety
/// `pEventRegistrations` NULL or readable for `cEventRegistration` structures, each `pType`
/// NULL or a readable `GUID`; `phPeerEvent` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupRegisterEvent(
    hGroup: HGROUP,
    hEvent: HANDLE,
    cEventRegistration: DWORD,
    pEventRegistrations: *mut PEER_GROUP_EVENT_REGISTRATION,
    phPeerEvent: *mut HPEEREVENT,
) -> HRESULT {
    entry(|| {
        require_out(phPeerEvent)?;
        let count = cEventRegistration as usize;
        if pEventRegistrations.is_null() || count == 0 || count > MAX_REGISTRATIONS {
            return Err(hresult::E_INVALIDARG);
        }
        // SAFETY: checked non-null; per this function's contract.
        let filter = unsafe { read_filter(pEventRegistrations, count) }?;
        let group = lock().group(hGroup)?;
        let group_key = from_handle(hGroup).ok_or(hresult::PEER_E_INVALID_GROUP)?;
        let signal = Arc::new(EventFd::from_handle(hEvent)?);
        let notify = signal.clone();
        let subscription = group
            .subscribe_with(
                filter,
                DEFAULT_QUEUE,
                Some(Box::new(move || notify.signal())),
            )
            .hr()?;
        let wants_failures = subscription
            .filter()
            .registrations()
            .iter()
            .any(|r| r.kind == EventKind::AuthenticationFailed);
        let password_hold = if wants_failures {
            Some(group.hold_password_authentication().hr()?)
        } else {
            None
        };
        let registration = EventRegistration {
            group: group_key,
            subscription,
            signal,
            password_hold,
        };
        let h = {
            let mut rt = lock();
            // The group may have been closed (or the library shut down) meanwhile.
            rt.group(hGroup)?;
            rt.insert(Object::Event(Arc::new(registration)))
        };
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { phPeerEvent.write(h) };
        Ok(hresult::S_OK)
    })
}

/// Ends a registration: no more events are queued or signalled, and the handle becomes
/// invalid. `E_INVALIDARG` for a NULL, forged, stale or other-kind handle. The eventfd stays
/// the caller's to close.
#[no_mangle]
pub extern "C" fn PeerGroupUnregisterEvent(hPeerEvent: HPEEREVENT) -> HRESULT {
    entry(|| {
        let registration = lock().remove_event(hPeerEvent)?;
        registration.end();
        Ok(hresult::S_OK)
    })
}

/// Takes the oldest queued event as one `PeerFreeData` block: `S_OK` with the event, or
/// `PEER_S_NO_EVENT_DATA` (a success code) with `*ppEventData` NULL when none is queued.
/// Where events were lost to a full queue, one call returns `E_OUTOFMEMORY` (with NULL) and
/// signals the eventfd again. `E_POINTER` for a NULL `ppEventData`; `E_INVALIDARG` for a
/// NULL, forged, stale or other-kind handle.
///
/// # Safety
/// `ppEventData` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn PeerGroupGetEventData(
    hPeerEvent: HPEEREVENT,
    ppEventData: *mut *mut PEER_GROUP_EVENT_DATA,
) -> HRESULT {
    entry(|| {
        require_out(ppEventData)?;
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppEventData.write(std::ptr::null_mut()) };
        let registration = lock().event(hPeerEvent)?;
        let (hr, data) = registration.take();
        // SAFETY: checked non-null; the caller promises it is writable.
        unsafe { ppEventData.write(data) };
        Ok(hr)
    })
}

impl EventRegistration {
    /// The next queued item as `PeerGroupGetEventData` returns it: `S_OK` and a block,
    /// `PEER_S_NO_EVENT_DATA`, or for a loss `E_OUTOFMEMORY` with the eventfd signalled again.
    fn take(&self) -> (HRESULT, *mut PEER_GROUP_EVENT_DATA) {
        match self.subscription.try_next() {
            None => (hresult::PEER_S_NO_EVENT_DATA, std::ptr::null_mut()),
            Some(EventItem::Lagged(_)) => {
                self.signal.signal();
                (hresult::E_OUTOFMEMORY, std::ptr::null_mut())
            }
            Some(EventItem::Event(e)) => (hresult::S_OK, event_block(&e)),
        }
    }
}

fn connection_status(s: ConnectionStatus) -> i32 {
    match s {
        ConnectionStatus::Connected => PEER_CONNECTED,
        ConnectionStatus::Disconnected => PEER_DISCONNECTED,
        ConnectionStatus::Failed => PEER_CONNECTION_FAILED,
    }
}

fn record_change(c: RecordChange) -> i32 {
    match c {
        RecordChange::Added => PEER_RECORD_ADDED,
        RecordChange::Updated => PEER_RECORD_UPDATED,
        RecordChange::Deleted => PEER_RECORD_DELETED,
        RecordChange::Expired => PEER_RECORD_EXPIRED,
    }
}

/// An event as a zeroed `PEER_GROUP_EVENT_DATA` block with its union member filled.
pub fn event_block(e: &Event) -> *mut PEER_GROUP_EVENT_DATA {
    let (mut block, p) = CBlock::for_array::<PEER_GROUP_EVENT_DATA>(1);
    // Incoming data is copied into the same block, so one PeerFreeData frees both.
    let data = match e {
        Event::IncomingData { data, .. } => block.bytes(data),
        _ => std::ptr::null_mut(),
    };
    // SAFETY: `p` is zeroed, aligned memory for one PEER_GROUP_EVENT_DATA owned by `block`;
    // every write below is a plain field of it (the union's bytes are all initialised).
    unsafe {
        (*p).eventType = e.kind().code();
        match e {
            Event::StatusChanged(s) => (*p).u.dwStatus = *s as i32,
            Event::PropertyChanged => {}
            Event::RecordChanged {
                change,
                record_type,
                id,
            } => {
                (*p).u.recordChangeData = PEER_EVENT_RECORD_CHANGE_DATA {
                    dwSize: std::mem::size_of::<PEER_EVENT_RECORD_CHANGE_DATA>() as DWORD,
                    changeType: record_change(*change),
                    recordId: guid_from_bytes(id),
                    recordType: guid_from_bytes(record_type),
                }
            }
            Event::NeighborConnection(c) | Event::DirectConnection(c) => {
                (*p).u.connectionChangeData = PEER_EVENT_CONNECTION_CHANGE_DATA {
                    dwSize: std::mem::size_of::<PEER_EVENT_CONNECTION_CHANGE_DATA>() as DWORD,
                    status: connection_status(c.status),
                    ullConnectionId: c.connection_id,
                    ullNodeId: c.node_id,
                    ullNextConnectionId: c.next_connection_id,
                    hrConnectionFailedReason: c.failed_reason,
                }
            }
            Event::IncomingData {
                connection_id,
                data_type,
                data: bytes,
            } => {
                (*p).u.incomingData = PEER_EVENT_INCOMING_DATA {
                    dwSize: std::mem::size_of::<PEER_EVENT_INCOMING_DATA>() as DWORD,
                    ullConnectionId: *connection_id,
                    r#type: guid_from_bytes(data_type),
                    data: PEER_DATA {
                        cbData: bytes.len() as ULONG,
                        pbData: data,
                    },
                }
            }
            Event::ConnectionFailed(hr) => (*p).u.hrConnectionFailedReason = *hr,
            // Windows has no structure for it: the reason goes in the same union slot.
            Event::AuthenticationFailed(hr) => (*p).u.hrConnectionFailedReason = *hr,
            Event::MemberChanged { change, identity } => {
                let identity = block.wstr(identity);
                (*p).u.memberChangeData = crate::types::PEER_EVENT_MEMBER_CHANGE_DATA {
                    dwSize: std::mem::size_of::<crate::types::PEER_EVENT_MEMBER_CHANGE_DATA>()
                        as DWORD,
                    changeType: *change as i32,
                    pwzIdentity: identity,
                }
            }
        }
    }
    block.into_raw() as *mut PEER_GROUP_EVENT_DATA
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::free_block;
    use peergroup_core::events::ConnectionChange;

    #[test]
    fn event_blocks_carry_their_union_member() {
        let p = event_block(&Event::NeighborConnection(ConnectionChange {
            status: ConnectionStatus::Disconnected,
            connection_id: 7,
            node_id: 99,
            next_connection_id: 0,
            failed_reason: 0,
        }));
        // SAFETY: `p` is a live block from event_block; the NEIGHBOR_CONNECTION member is set.
        unsafe {
            assert_eq!((*p).eventType, 5);
            let c = (*p).u.connectionChangeData;
            assert_eq!(c.dwSize as usize, std::mem::size_of_val(&c));
            assert_eq!((c.status, c.ullConnectionId, c.ullNodeId), (2, 7, 99));
            assert!(free_block(p.cast()));
        }
        let p = event_block(&Event::RecordChanged {
            change: RecordChange::Expired,
            record_type: [1; 16],
            id: [2; 16],
        });
        // SAFETY: as above, the RECORD_CHANGED member is set.
        unsafe {
            assert_eq!((*p).eventType, 3);
            let r = (*p).u.recordChangeData;
            assert_eq!(r.changeType, 4);
            assert_eq!(guid_bytes(&r.recordType), [1; 16]);
            assert_eq!(guid_bytes(&r.recordId), [2; 16]);
            assert!(free_block(p.cast()));
        }
        let p = event_block(&Event::AuthenticationFailed(
            hresult::HRESULT_INVALID_PASSWORD,
        ));
        // SAFETY: as above; the reason is in the hrConnectionFailedReason slot.
        unsafe {
            assert_eq!((*p).eventType, 11);
            assert_eq!((*p).u.hrConnectionFailedReason as u32, 0x8007_0056);
            assert!(free_block(p.cast()));
        }
        let p = event_block(&Event::PropertyChanged);
        // SAFETY: as above; PROPERTY_CHANGED has no member and the union stays zero.
        unsafe {
            assert_eq!((*p).eventType, 2);
            assert_eq!((*p).u.dwStatus, 0);
            assert!(free_block(p.cast()));
        }
    }

    #[test]
    fn only_eventfds_are_accepted() {
        assert_eq!(
            EventFd::from_handle(std::ptr::null_mut()).err(),
            Some(hresult::E_INVALIDARG)
        );
        assert_eq!(
            EventFd::from_handle(-3isize as HANDLE).err(),
            Some(hresult::E_INVALIDARG)
        );
        assert_eq!(
            EventFd::from_handle((1isize << 40) as HANDLE).err(),
            Some(hresult::E_INVALIDARG)
        );
        let file = tempfile_fd();
        assert_eq!(
            EventFd::from_handle(file.as_raw_fd() as isize as HANDLE).err(),
            Some(hresult::E_INVALIDARG),
            "a regular file is no eventfd"
        );
        // SAFETY: creating a fresh eventfd.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw > 0);
        // SAFETY: `raw` is ours.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ours = EventFd::from_handle(raw as isize as HANDLE).unwrap();
        drop(efd); // the caller closes its descriptor early: our duplicate stays valid
        ours.signal();
        ours.signal();
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our descriptor.
        let n = unsafe {
            libc::read(
                ours.0.as_raw_fd(),
                (&mut count as *mut u64).cast::<libc::c_void>(),
                8,
            )
        };
        assert_eq!((n, count), (8, 2));
    }

    fn new_eventfd() -> OwnedFd {
        // SAFETY: creating a fresh, non-blocking eventfd.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(raw > 0);
        // SAFETY: `raw` is ours.
        unsafe { OwnedFd::from_raw_fd(raw) }
    }

    fn counter(fd: &OwnedFd) -> u64 {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from a descriptor we own.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut count as *mut u64).cast::<libc::c_void>(),
                8,
            )
        };
        if n == 8 {
            count
        } else {
            0
        }
    }

    #[test]
    fn a_loss_is_one_e_outofmemory_in_place_and_a_new_signal() {
        use peergroup_core::events::EventHub;
        let efd = new_eventfd();
        let signal = Arc::new(EventFd::from_handle(efd.as_raw_fd() as isize as HANDLE).unwrap());
        let notify = signal.clone();
        let hub = EventHub::new();
        let registration = EventRegistration {
            group: DefaultKey::default(),
            subscription: hub.subscribe(
                EventFilter::all(),
                2,
                Some(Box::new(move || notify.signal())),
            ),
            signal,
            password_hold: None,
        };
        for s in 1..=5 {
            hub.publish(&Event::StatusChanged(s));
        }
        assert_eq!(counter(&efd), 1, "one signal for the first event");
        let mut results = Vec::new();
        loop {
            let (hr, p) = registration.take();
            if !p.is_null() {
                // SAFETY: a live block from take(); STATUS_CHANGED sets dwStatus.
                unsafe {
                    results.push((hr, (*p).u.dwStatus));
                    assert!(free_block(p.cast()));
                }
            } else {
                results.push((hr, -1));
            }
            if hr == hresult::PEER_S_NO_EVENT_DATA {
                break;
            }
        }
        assert_eq!(
            results,
            vec![
                (hresult::S_OK, 1),
                (hresult::S_OK, 2),
                (hresult::E_OUTOFMEMORY, -1),
                (hresult::PEER_S_NO_EVENT_DATA, -1),
            ]
        );
        assert_eq!(counter(&efd), 1, "signalled again at the loss");
        registration.end();
        hub.publish(&Event::StatusChanged(6));
        assert_eq!(registration.take().0, hresult::PEER_S_NO_EVENT_DATA);
        assert_eq!(counter(&efd), 0, "no signal after the end");
    }

    fn tempfile_fd() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("peergroup-evfd-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}
