//! The fuzz seeds of the record decoder and the database import are real, current data:
//! they must decode (a seed the decoder refuses only exercises its first check). When a
//! format changes, regenerate them with
//! `cargo test -p peergroup-core --test fuzz_seeds -- --ignored` and commit the files.

use std::path::{Path, PathBuf};

use peergroup_core::properties::GroupProperties;
use peergroup_core::reconcile::{ItemKey, Reconciler};
use peergroup_core::records::dbfile;
use peergroup_core::records::record::Record;
use peergroup_core::wire::Message;
use peergroup_core::NewRecord;

mod common;

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

#[test]
fn record_decoder_seeds_decode_canonically() {
    for name in ["record.bin", "tombstone.bin"] {
        let bytes = std::fs::read(seeds("record_decoder").join(name)).unwrap();
        let r = Record::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.encode(), bytes, "{name}");
        assert_eq!(r.is_deleted(), name == "tombstone.bin");
    }
}

#[test]
fn database_import_seeds_parse() {
    let two = std::fs::read(seeds("database_import").join("two_records.pgdb")).unwrap();
    let f = dbfile::parse(&two).unwrap();
    assert_eq!(f.records.len(), 2);
    assert!(f.records.iter().any(|r| r.is_deleted()));
    assert_eq!(dbfile::encode(&f.group, &f.member, &f.records), two);
    let empty = std::fs::read(seeds("database_import").join("empty.pgdb")).unwrap();
    assert!(dbfile::parse(&empty).unwrap().records.is_empty());
}

/// Items like the `reconcile_message` target's, with some differences.
fn items(skip: u32) -> Vec<ItemKey> {
    (0u32..300)
        .filter(|i| i % 50 != skip)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            ItemKey::synthetic(id, 1 + i % 3)
        })
        .collect()
}

/// A frame of the `replication` target: kind, u16 length, payload.
fn frame(msg: &Message) -> Vec<u8> {
    let (kind, payload) = msg.encode();
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

#[test]
#[ignore = "writes the fuzz seeds; run by hand when a format changes"]
fn write_reconciliation_seeds() {
    let query = Reconciler::new(items(7)).unwrap().initiate().unwrap();
    let answer = Reconciler::new(items(9)).unwrap().respond(&query).unwrap();
    let dir = seeds("reconcile_message");
    std::fs::write(dir.join("query.bin"), [&[0u8][..], &query].concat()).unwrap();
    std::fs::write(dir.join("answer.bin"), [&[1u8][..], &answer].concat()).unwrap();
    let offer = Message::Offer {
        items: items(3)[..5].to_vec(),
        done: true,
    };
    let request = Message::Request(vec![[1; 16], [2; 16], [40; 16]]);
    let session = [
        frame(&Message::ReconcileQuery(query)),
        frame(&offer),
        frame(&request),
    ]
    .concat();
    std::fs::write(seeds("replication").join("session.bin"), session).unwrap();
}

#[test]
fn reconciliation_seeds_are_messages() {
    let query = std::fs::read(seeds("reconcile_message").join("query.bin")).unwrap();
    assert!(Reconciler::new(items(9))
        .unwrap()
        .respond(&query[1..])
        .is_ok());
    let session = std::fs::read(seeds("replication").join("session.bin")).unwrap();
    let mut rest = &session[..];
    let mut n = 0;
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        Message::decode(rest[0], &rest[3..3 + len]).unwrap();
        rest = &rest[3 + len..];
        n += 1;
    }
    assert_eq!(n, 3);
}

/// The member that writes the seeds, with its group "Seeds" (offline).
fn seed_group() -> (common::Member, peergroup_core::GroupHandle) {
    let seed = common::member_as("seed", "Seed");
    let g = seed
        .pg
        .create_group(GroupProperties {
            classifier: "seeds".into(),
            friendly_name: "Seeds".into(),
            creator_peer_name: seed.id.to_string(),
            ..Default::default()
        })
        .unwrap();
    (seed, g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fuzz seeds; run by hand when a format changes"]
async fn write_seeds() {
    let (seed, g) = seed_group();
    let now = common::now_ms();
    let new = |text: &str| NewRecord {
        record_type: [0x5e; 16],
        attributes: format!(
            "<attributes><attribute name=\"n\" type=\"string\">{text}</attribute></attributes>"
        ),
        // Far in the future, so the seeds stay importable.
        expires_ms: now + 50 * 365 * 86_400_000,
        data: text.as_bytes().to_vec(),
    };
    let empty = seed.home.path().join("empty.pgdb");
    g.export_database(&empty).unwrap();
    let kept = g.add_record(new("kept")).unwrap();
    let gone = g.add_record(new("gone")).unwrap();
    g.delete_record(&gone).unwrap();
    let two = seed.home.path().join("two.pgdb");
    g.export_database(&two).unwrap();
    let db = seeds("database_import");
    std::fs::copy(&empty, db.join("empty.pgdb")).unwrap();
    std::fs::copy(&two, db.join("two_records.pgdb")).unwrap();
    let records = dbfile::parse(&std::fs::read(&two).unwrap())
        .unwrap()
        .records;
    let rd = seeds("record_decoder");
    for r in records {
        let name = if r.id == kept {
            "record.bin"
        } else {
            "tombstone.bin"
        };
        std::fs::write(rd.join(name), r.encode()).unwrap();
    }
    g.close().await.unwrap();
}

#[test]
fn data_message_seed_is_a_greeting_and_two_messages() {
    use peergroup_core::data::{decode_direct_hello, Reassembler, KIND_DATA, KIND_DIRECT_HELLO};
    let session = std::fs::read(seeds("data_message").join("session.bin")).unwrap();
    let mut rest = &session[..];
    let mut parts = Reassembler::new();
    let mut messages = Vec::new();
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let payload = bytes::Bytes::copy_from_slice(&rest[3..3 + len]);
        match rest[0] {
            KIND_DIRECT_HELLO => {
                assert_eq!(decode_direct_hello(&payload), Ok((0x12_3456_7890, None)))
            }
            KIND_DATA => messages.extend(parts.push(&payload).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
        rest = &rest[3 + len..];
    }
    assert!(rest.is_empty());
    let data: Vec<&[u8]> = messages.iter().map(|m| &m.data[..]).collect();
    assert_eq!(data, [&b"first second last"[..], &b""[..]]);
}

#[test]
fn data_message_upgrade_seed_is_a_candidate_greeting_and_a_whole_switch() {
    use peergroup_core::data::{decode_direct_hello, KIND_DIRECT_HELLO};
    use peergroup_core::upgrade::{Candidate, Side, UpgradeMessage, KIND_DIRECT_UPGRADE};
    let session = std::fs::read(seeds("data_message").join("upgrade.bin")).unwrap();
    let mut rest = &session[..];
    let mut hello = None;
    let mut upgrade = Vec::new();
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let payload = &rest[3..3 + len];
        match rest[0] {
            KIND_DIRECT_HELLO => hello = Some(decode_direct_hello(payload).unwrap()),
            KIND_DIRECT_UPGRADE => upgrade.push(UpgradeMessage::decode(payload).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
        rest = &rest[3 + len..];
    }
    let token: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(hello, Some((0x12_3456_7890, Some((token, 1)))));
    assert_eq!(
        upgrade,
        [
            UpgradeMessage::Offer {
                attempt: 1,
                token,
                addrs: vec!["192.0.2.7:4433".parse().unwrap()]
            },
            UpgradeMessage::Answer {
                attempt: 1,
                addrs: vec!["198.51.100.9:5544".parse().unwrap()]
            },
            UpgradeMessage::Switch(Candidate {
                side: Side::Dialer,
                attempt: 1
            }),
            UpgradeMessage::Switched,
        ]
    );
}

/// The names the `config_import` target decodes payloads for.
const FUZZ_IDENTITY: &str = "0000000000000000000000000000000000000000.fuzz";
const FUZZ_GROUP: &str = "1111111111111111111111111111111111111111.fuzz";

#[test]
fn config_import_seeds_open() {
    use peergroup_core::config_export::GroupConfig;
    let dir = seeds("config_import");
    let doc = std::fs::read_to_string(dir.join("config.xml")).unwrap();
    let config = GroupConfig::open(&doc, "password").unwrap();
    assert!(config.root_key.is_some(), "the owner's export");
    let payload = std::fs::read(dir.join("payload.json")).unwrap();
    let decoded = GroupConfig::decode_payload(
        FUZZ_IDENTITY.parse().unwrap(),
        FUZZ_GROUP.parse().unwrap(),
        &payload,
    )
    .unwrap();
    assert_eq!(*decoded.encode_payload(), payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fuzz seeds; run by hand when a format changes"]
async fn write_config_seeds() {
    use peergroup_core::config_export::GroupConfig;
    let (_seed, g) = seed_group();
    let doc = g
        .export_config_with_rounds("password", peergroup_core::identity::export::MIN_ITERATIONS)
        .unwrap();
    let dir = seeds("config_import");
    std::fs::write(dir.join("config.xml"), &doc).unwrap();
    let mut config = GroupConfig::open(&doc, "password").unwrap();
    config.identity = FUZZ_IDENTITY.parse().unwrap();
    config.group = FUZZ_GROUP.parse().unwrap();
    config.properties.group_peer_name = FUZZ_GROUP.into();
    config.addresses = vec!["127.0.0.1:4000".parse().unwrap()];
    std::fs::write(dir.join("payload.json"), &*config.encode_payload()).unwrap();
    g.close().await.unwrap();
}

#[test]
fn presence_seed_decodes_and_round_trips() {
    use peergroup_core::members::Presence;
    let bytes = std::fs::read(seeds("presence").join("presence.json")).unwrap();
    let p = Presence::decode(&bytes).unwrap();
    assert_eq!(p.node_id, 1_234_567);
    assert_eq!(p.addrs.len(), 2);
    assert_eq!(Presence::decode(&p.encode()).unwrap(), p);
}

/// The `service_request` seed: a client session, one frame per common request kind.
fn service_session() -> Vec<peergroup_core::service::proto::ClientFrame> {
    use peergroup_core::events::{EventKind, Registration};
    use peergroup_core::service::proto::{ClientFrame, Request, WireLimits, PROTOCOL_VERSION};
    use peergroup_core::GroupCall;
    use peergroup_core::NewRecord;
    let requests = vec![
        Request::Hello {
            version: PROTOCOL_VERSION,
            home: "/run/user/1000/peergroup-home".into(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            limits: WireLimits::from(&peergroup_core::transport::Limits::default()),
        },
        Request::OpenGroup {
            identity: Some(FUZZ_IDENTITY.into()),
            group: FUZZ_GROUP.into(),
        },
        Request::Connect {
            handle: 1,
            addrs: vec![
                "127.0.0.1:4000".parse().unwrap(),
                "[::1]:4001".parse().unwrap(),
            ],
        },
        Request::Subscribe {
            handle: 1,
            id: 1,
            registrations: vec![
                Registration {
                    kind: EventKind::StatusChanged,
                    type_filter: None,
                },
                Registration {
                    kind: EventKind::RecordChanged,
                    type_filter: Some(*b"service-request1"),
                },
            ],
            capacity: 1024,
        },
        Request::WaitStatus {
            handle: 1,
            bits: 3,
            timeout_ms: 2000,
        },
        Request::Group {
            handle: 1,
            call: GroupCall::AddRecords {
                batch: vec![NewRecord {
                    record_type: *b"service-request1",
                    attributes: String::new(),
                    expires_ms: 1_900_000_000_000,
                    data: b"hello".to_vec(),
                }],
            },
        },
        Request::EnumRecords(1, None),
        Request::SearchRecords(1, "<peersearch/>".into()),
        Request::GetRecord(1, [7; 16]),
        Request::SendData {
            handle: 1,
            connection: 9,
            data_type: [3; 16],
            data: b"data".to_vec(),
        },
        Request::Group {
            handle: 1,
            call: GroupCall::Members {
                flags: 1,
                identity: None,
            },
        },
        Request::Group {
            handle: 1,
            call: GroupCall::Status {},
        },
        Request::Unsubscribe(1),
        Request::Close(1),
    ];
    requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| ClientFrame {
            id: i as u32 + 1,
            request,
        })
        .collect()
}

#[test]
#[ignore = "writes the fuzz seeds; run by hand when a format changes"]
fn write_service_request_seed() {
    let bytes: Vec<u8> = service_session().iter().flat_map(|f| f.encode()).collect();
    std::fs::write(seeds("service_request").join("session.bin"), bytes).unwrap();
}

#[test]
fn service_request_seed_is_a_session() {
    use peergroup_core::service::proto::{split_frame, ClientFrame};
    let bytes = std::fs::read(seeds("service_request").join("session.bin")).unwrap();
    let mut rest = &bytes[..];
    let mut frames = Vec::new();
    while let Some((body, used)) = split_frame(rest).unwrap() {
        frames.push(ClientFrame::decode(body).unwrap());
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(frames, service_session());
}
