use proptest::prelude::*;

use super::*;
use crate::error::{
    AdminCall, AuthorizationError, InvitationError, RecordError, RecordField, SearchError,
};
use crate::events::{ConnectionChange, Event};
use crate::io::{ConnectionStatus, RecordChange};

fn body(frame: &[u8]) -> &[u8] {
    let (body, used) = split_frame(frame).unwrap().unwrap();
    assert_eq!(used, frame.len());
    body
}

fn status(handle: u64) -> ClientFrame {
    ClientFrame {
        id: 7,
        request: Request::Group {
            handle,
            call: GroupCall::Status {},
        },
    }
}

#[test]
fn frames_start_with_their_length_and_the_version() {
    let bytes = status(3).encode();
    assert_eq!(
        u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
        bytes.len() - HEADER_LEN
    );
    assert_eq!(bytes[HEADER_LEN], PROTOCOL_VERSION);
    assert_eq!(ClientFrame::decode(body(&bytes)).unwrap(), status(3));
}

#[test]
fn another_version_is_refused() {
    let mut bytes = status(3).encode();
    bytes[HEADER_LEN] = PROTOCOL_VERSION - 1;
    let err = ClientFrame::decode(body(&bytes)).unwrap_err();
    assert!(matches!(err, CoreError::ServiceVersion(v) if v == PROTOCOL_VERSION - 1));
}

#[test]
fn oversized_prefix_is_refused_before_the_body_arrives() {
    let prefix = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
    assert!(split_frame(&prefix).is_err());
    let fits = (MAX_FRAME_LEN as u32).to_be_bytes();
    assert!(split_frame(&fits).unwrap().is_none());
}

#[test]
fn trailing_bytes_unknown_variants_and_truncation_are_refused() {
    let bytes = status(3).encode();
    let good = body(&bytes).to_vec();
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(ClientFrame::decode(&trailing).is_err());
    assert!(ClientFrame::decode(&good[..good.len() - 1]).is_err());
    assert!(ClientFrame::decode(&[]).is_err());
    // Version, id 1, then a variant number no request has.
    assert!(ClientFrame::decode(&[PROTOCOL_VERSION, 1, 0x7f]).is_err());
}

#[test]
fn too_many_addresses_are_refused() {
    let frame = ClientFrame {
        id: 1,
        request: Request::Connect {
            handle: 1,
            addrs: vec!["127.0.0.1:1".parse().unwrap(); MAX_ADDRS + 1],
        },
    };
    assert!(ClientFrame::decode(body(&frame.encode())).is_err());
}

#[test]
fn errors_come_back_as_the_same_variant() {
    let cases = [
        CoreError::from(AuthorizationError::AdminsOnly(AdminCall::SetProperties)),
        CoreError::RecordNotFound,
        CoreError::ConnectionNotFound(42),
        CoreError::DataTooLarge(17),
        CoreError::from(InvitationError::NeedsJoin),
        CoreError::from(SearchError::BadEscape {
            escaped: 'd',
            pattern: "\\d".into(),
        }),
        CoreError::InvalidGroup,
    ];
    for e in cases {
        let back = WireError::from_error(&e).into_error();
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(back.hresult(), e.hresult());
        assert_eq!(
            std::mem::discriminant(&back),
            std::mem::discriminant(&e),
            "{e}"
        );
    }
    // Others keep their HRESULT and text.
    let e = CoreError::StoreCorrupted {
        path: "x".into(),
        why: "y".into(),
    };
    let back = WireError::from_error(&e).into_error();
    assert_eq!(back.hresult(), e.hresult());
    assert_eq!(back.to_string(), e.to_string());
    // So do proto errors with a source, which do not serialise.
    let e = CoreError::from(RecordError::SigningChain(
        crate::identity::IdentityError::Tampered,
    ));
    let back = WireError::from_error(&e).into_error();
    assert!(matches!(back, CoreError::Service { .. }), "{back:?}");
    assert_eq!(back.hresult(), e.hresult());
    assert_eq!(back.to_string(), e.to_string());
}

#[test]
fn proto_errors_come_back_whole() {
    let e = CoreError::from(RecordError::FieldLength {
        field: RecordField::Modifier,
        len: 300,
        max: 256,
    });
    match WireError::from_error(&e).into_error() {
        CoreError::Proto(ProtoError::Record(RecordError::FieldLength { field, len, max })) => {
            assert_eq!((field, len, max), (RecordField::Modifier, 300, 256))
        }
        other => panic!("{other:?}"),
    }
    // Bytes that are no proto error (a newer service's) keep HRESULT and text.
    let w = WireError {
        hresult: 7,
        message: "new".into(),
        kind: Some(ErrorKind::Proto(vec![0xff; 3])),
    };
    assert!(matches!(
        w.into_error(),
        CoreError::Service { hresult: 7, .. }
    ));
}

#[test]
fn error_messages_are_cut_at_a_char_boundary() {
    let e = CoreError::Database("é".repeat(MAX_MESSAGE_BYTES));
    let w = WireError::from_error(&e);
    assert!(w.message.len() <= MAX_MESSAGE_BYTES);
    assert!(w.message.chars().all(|c| c == 'é'));
}

fn guid() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>()
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        any::<([u8; 16], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u8>(), ".{0,40}", proptest::option::of(addr())).prop_map(
            |(version, home, listen)| Request::Hello {
                version,
                home,
                listen,
                limits: WireLimits::from(&crate::transport::Limits::default()),
            }
        ),
        (any::<u64>(), any::<[u8; 16]>()).prop_map(|(session, token)| Request::Attach {
            version: PROTOCOL_VERSION,
            session,
            token
        }),
        (proptest::option::of(".{0,20}"), ".{0,20}")
            .prop_map(|(identity, group)| Request::OpenGroup { identity, group }),
        (
            any::<u64>(),
            proptest::collection::vec(addr(), 0..MAX_ADDRS)
        )
            .prop_map(|(handle, addrs)| Request::Connect { handle, addrs }),
        any::<u64>().prop_map(|handle| Request::Group {
            handle,
            call: GroupCall::Status {}
        }),
        (
            any::<u64>(),
            guid(),
            ".{0,40}",
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(
                |(handle, id, attributes, expires_ms, data)| Request::Group {
                    handle,
                    call: GroupCall::UpdateRecord {
                        id,
                        attributes,
                        expires_ms,
                        data
                    }
                }
            ),
        (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(handle, bits, timeout_ms)| {
            Request::WaitStatus {
                handle,
                bits,
                timeout_ms,
            }
        }),
        (any::<u64>(), proptest::option::of(guid())).prop_map(|(h, t)| Request::EnumRecords(h, t)),
        (
            any::<u64>(),
            any::<u64>(),
            guid(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(handle, connection, data_type, data)| Request::SendData {
                handle,
                connection,
                data_type,
                data
            }),
    ]
}

fn change() -> impl Strategy<Value = ConnectionChange> {
    (
        prop_oneof![
            Just(ConnectionStatus::Connected),
            Just(ConnectionStatus::Disconnected),
            Just(ConnectionStatus::Failed),
        ],
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<i32>(),
    )
        .prop_map(
            |(status, connection_id, node_id, next_connection_id, failed_reason)| {
                ConnectionChange {
                    status,
                    connection_id,
                    node_id,
                    next_connection_id,
                    failed_reason,
                }
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        any::<u32>().prop_map(Event::StatusChanged),
        Just(Event::PropertyChanged),
        (guid(), guid()).prop_map(|(record_type, id)| Event::RecordChanged {
            change: RecordChange::Updated,
            record_type,
            id,
        }),
        change().prop_map(Event::NeighborConnection),
        change().prop_map(Event::DirectConnection),
        (
            any::<u64>(),
            guid(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(connection_id, data_type, data)| Event::IncomingData {
                connection_id,
                data_type,
                data: data.into(),
            }),
        any::<i32>().prop_map(Event::ConnectionFailed),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u64>(), event()).prop_map(|(subscription, e)| ServerFrame::Event {
            subscription,
            item: EventItem::Event(e),
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(subscription, n)| ServerFrame::Event {
            subscription,
            item: EventItem::Lagged(n),
        }),
        any::<u64>().prop_map(|subscription| ServerFrame::Ended { subscription }),
        (any::<u32>(), any::<u32>()).prop_map(|(id, s)| ServerFrame::Response {
            id,
            response: Response::U32(s),
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(id in any::<u32>(), request in request()) {
        let frame = ClientFrame { id, request };
        prop_assert_eq!(ClientFrame::decode(body(&frame.encode())).unwrap(), frame);
    }

    #[test]
    fn server_frames_round_trip(f in server_frame()) {
        prop_assert_eq!(ServerFrame::decode(body(&f.encode())).unwrap(), f);
    }

    #[test]
    fn request_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ClientFrame::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
    }
}
