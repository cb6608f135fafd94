//! A neighbour sending arbitrary replication messages (records, reconciliation, offers,
//! requests, record batches) to a member holding records: the machine never panics, and a
//! message it cannot use closes that connection (a protocol violation) or is ignored.
//!
//! Input: a sequence of frames `kind (u8) · length (u16, big-endian) · payload`.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peergroup_proto::identity::gmc::{GroupRoot, GroupRootCertificate};
use peergroup_proto::io::Input;
use peergroup_proto::machine::{Config, Group};
use peergroup_proto::reconcile::ItemKey;
use peergroup_proto::records::record::Record;
use peergroup_proto::replication::{MemoryPort, Verifier};
use peergroup_proto::wire::{Hello, Message};

const NOW: u64 = 1_750_000_000_000;

fn grc() -> &'static GroupRootCertificate {
    static GRC: OnceLock<GroupRootCertificate> = OnceLock::new();
    GRC.get_or_init(|| {
        GroupRoot::create("fuzz", "Fuzz")
            .expect("a root")
            .certificate()
            .clone()
    })
}

fn member() -> Group {
    let mut port = MemoryPort::new(Verifier::new(grc().clone()));
    for i in 0u8..20 {
        port.store(Record {
            record_type: [1; 16],
            id: [i; 16],
            id_nonce: [0; 16],
            version: 1,
            flags: 0,
            creator: "c".into(),
            modifier: "c".into(),
            attributes: String::new(),
            created: NOW as i64,
            expires: NOW as i64 + 3_600_000,
            modified: NOW as i64,
            data: vec![i],
            security: vec![i],
        });
    }
    let mut c = Config::new(1, "me");
    c.creator = true;
    let mut g = Group::new(c, Vec::new(), None).with_records(Box::new(port));
    let remote: SocketAddr = "127.0.0.1:2".parse().unwrap();
    g.handle(NOW, Input::Connect);
    g.handle(
        NOW,
        Input::ConnectionUp {
            conn: 7,
            member: "peer".into(),
            remote,
            outbound: false,
            via: None,
        },
    );
    g.handle(
        NOW,
        Input::Message(
            7,
            Message::Hello(Hello {
                node_id: 2,
                listening: true,
                addrs: vec![remote],
                properties_version: 0,
                neighbours: 0,
                observed: None,
                relay: false,
                entry_version: 0,
                dial_back: 0,
            }),
        ),
    );
    while g.poll_output().is_some() {}
    g
}

fuzz_target!(|data: &[u8]| {
    let mut g = member();
    let mut rest = data;
    let mut t = NOW;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        if let Ok(msg) = Message::decode(kind, payload) {
            t += 10;
            g.handle(t, Input::Message(7, msg));
            g.handle(t, Input::Tick);
            while g.poll_output().is_some() {}
        }
    }
    // Whatever happened, the member's database is still a set of distinct items.
    if let Some(port) = g.record_port() {
        let items: Vec<ItemKey> = port.items(NOW as i64).unwrap_or_default();
        let mut ids: Vec<[u8; 16]> = items.iter().map(|i| i.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), items.len());
    }
});
