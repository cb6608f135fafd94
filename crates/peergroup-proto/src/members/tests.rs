use super::*;
use crate::identity::gmc::{GroupRoot, Subject};
use crate::identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use crate::records::record::derive_id;
use std::net::SocketAddr;

const NOW_MS: i64 = 1_750_000_000_000;

struct Someone {
    key: PrivateKey,
    chain: GmcChain,
    name: String,
}

fn group() -> (GroupRoot, Someone, Someone, Someone) {
    let root = GroupRoot::create_at("club", "The Club", NOW_MS / 1000 - 3600).unwrap();
    let grc = root.certificate().clone();
    let person = |name: &str, role: Role| {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let idc = IdentityCertificate::issue(&key, "", name).unwrap();
        let chain = root
            .issue(&idc, &[role], grc.not_before(), grc.not_after())
            .unwrap();
        Someone {
            name: chain.leaf().peer_name().to_string(),
            key,
            chain,
        }
    };
    let admin = person("admin", Role::Admin);
    let bob = person("bob", Role::Member);
    let carol = person("carol", Role::Member);
    (root, admin, bob, carol)
}

fn record(by: &Someone, record_type: [u8; 16], data: Vec<u8>) -> Record {
    let nonce = [7; 16];
    let mut r = Record {
        record_type,
        id: derive_id(&by.name, &record_type, NOW_MS, &nonce),
        id_nonce: nonce,
        version: 1,
        flags: 0,
        creator: by.name.clone(),
        modifier: by.name.clone(),
        attributes: String::new(),
        created: NOW_MS,
        expires: NOW_MS + 300_000,
        modified: NOW_MS,
        data,
        security: Vec::new(),
    };
    r.sign(&by.key, &by.chain).unwrap();
    r
}

fn check(r: &Record, root: &GroupRoot) -> Result<()> {
    let modifier = r.verify(root.certificate(), NOW_MS)?;
    check_reserved(r, &modifier, root.certificate())
}

fn presence(node_id: u64, changed: i64) -> Presence {
    Presence {
        node_id,
        addrs: vec!["127.0.0.1:4000".parse().unwrap()],
        attributes: String::new(),
        changed,
    }
}

#[test]
fn member_data_names_its_publisher_unless_an_administrator_publishes_it() {
    let (root, admin, bob, carol) = group();
    let own = record(&bob, MEMBER_DATA_TYPE, bob.chain.to_bytes());
    assert!(check(&own, &root).is_ok());
    let by_admin = record(&admin, MEMBER_DATA_TYPE, bob.chain.to_bytes());
    assert!(check(&by_admin, &root).is_ok());
    let forged = record(&carol, MEMBER_DATA_TYPE, bob.chain.to_bytes());
    assert_eq!(
        check(&forged, &root).unwrap_err().hresult(),
        crate::identity::hresult::PEER_E_NOT_AUTHORIZED
    );
    let garbage = record(&bob, MEMBER_DATA_TYPE, b"not a chain".to_vec());
    assert!(check(&garbage, &root).is_err());
    // A chain of another group does not validate.
    let (_, _, other_bob, _) = group();
    let foreign = record(&bob, MEMBER_DATA_TYPE, other_bob.chain.to_bytes());
    assert!(check(&foreign, &root).is_err());
}

#[test]
fn presence_is_only_its_members_and_other_reserved_types_are_refused() {
    let (root, admin, bob, _) = group();
    let own = record(&bob, PRESENCE_TYPE, presence(1, NOW_MS).encode());
    assert!(check(&own, &root).is_ok());
    // Even an administrator may not speak for Bob's presence.
    let mut by_admin = Record {
        version: 2,
        modifier: admin.name.clone(),
        modified: NOW_MS + 1,
        security: Vec::new(),
        ..own.clone()
    };
    by_admin.sign(&admin.key, &admin.chain).unwrap();
    assert_eq!(
        check(&by_admin, &root).unwrap_err().hresult(),
        crate::identity::hresult::PEER_E_NOT_AUTHORIZED
    );
    let bad = record(&bob, PRESENCE_TYPE, b"{".to_vec());
    assert!(check(&bad, &root).is_err());
    let mut reserved = [0u8; 16];
    reserved[3] = 9;
    let other = record(&bob, reserved, Vec::new());
    assert!(check(&other, &root).is_err());
    let app = record(&bob, [0x42; 16], Vec::new());
    assert!(check(&app, &root).is_ok());
    let tombstone = {
        let mut t = own.tombstone(&bob.name, NOW_MS + 5);
        t.sign(&bob.key, &bob.chain).unwrap();
        t
    };
    assert!(check(&tombstone, &root).is_ok());
}

#[test]
fn presence_changes_raise_the_right_member_events() {
    let (_, _, bob, _) = group();
    let first = record(&bob, PRESENCE_TYPE, presence(1, NOW_MS).encode());
    let ev = |r: &Record, c| member_event(r, c);
    let bob_event = |change| {
        Some(GroupEvent::MemberChanged {
            change,
            identity: bob.name.clone(),
        })
    };
    assert_eq!(
        ev(&first, RecordChange::Added),
        bob_event(MemberChange::Connected)
    );
    assert_eq!(
        ev(&first, RecordChange::Expired),
        bob_event(MemberChange::Disconnected)
    );
    assert_eq!(
        ev(&first, RecordChange::Deleted),
        bob_event(MemberChange::Disconnected)
    );
    // A refresh keeps `changed`: no event; a change sets it to the version's time.
    let refresh = Record {
        version: 2,
        modified: NOW_MS + 10,
        data: presence(1, NOW_MS).encode(),
        ..first.clone()
    };
    assert_eq!(ev(&refresh, RecordChange::Updated), None);
    let moved = Record {
        version: 3,
        modified: NOW_MS + 20,
        data: presence(2, NOW_MS + 20).encode(),
        ..first.clone()
    };
    assert_eq!(
        ev(&moved, RecordChange::Updated),
        bob_event(MemberChange::Updated)
    );
    let data = record(&bob, MEMBER_DATA_TYPE, bob.chain.to_bytes());
    assert_eq!(
        ev(&data, RecordChange::Added),
        bob_event(MemberChange::Joined)
    );
    assert_eq!(ev(&data, RecordChange::Updated), None);
}

#[test]
fn the_list_puts_the_local_member_first_and_takes_the_newest_chain() {
    let (root, admin, bob, carol) = group();
    let grc = root.certificate();
    let data = vec![
        record(&bob, MEMBER_DATA_TYPE, bob.chain.to_bytes()),
        record(&carol, MEMBER_DATA_TYPE, carol.chain.to_bytes()),
    ];
    let pres = vec![record(&bob, PRESENCE_TYPE, presence(9, NOW_MS).encode())];
    let list = list::build(&carol.name, &carol.chain, grc, &data, &pres);
    let names: Vec<&str> = list.iter().map(|m| m.identity.as_str()).collect();
    assert_eq!(names[0], carol.name);
    assert_eq!(list.len(), 2);
    let b = list.iter().find(|m| m.identity == bob.name).unwrap();
    assert!(b.is_present() && b.node_id == 9 && b.addresses.len() == 1);
    assert!(!list[0].is_present());
    assert_eq!(b.credential.issuer_friendly_name, "The Club");
    // An administrator publishes a newer chain for Bob: the list shows it.
    let promoted = crate::identity::gmc::issue_gmc_at(
        &admin.key,
        &admin.chain,
        Subject::new(
            bob.chain.leaf().peer_name().clone(),
            "bob",
            bob.chain.leaf().public_key_der(),
        )
        .unwrap(),
        &[Role::Admin],
        None,
        NOW_MS / 1000 + 7200,
    )
    .unwrap();
    let mut data = data;
    data.push(record(&admin, MEMBER_DATA_TYPE, promoted.to_bytes()));
    let list = list::build(&carol.name, &carol.chain, grc, &data, &pres);
    let b = list.iter().find(|m| m.identity == bob.name).unwrap();
    assert_eq!(b.credential.roles, vec![Role::Admin]);
    assert_eq!(b.credential.issuer_peer_name, admin.name);
}

struct TestPublisher {
    key: PrivateKey,
    chain: GmcChain,
    fail: bool,
}

impl crate::port::Publisher for TestPublisher {
    fn chain(&self) -> GmcChain {
        self.chain.clone()
    }
    fn sign(&self, record: &mut Record) -> Result<()> {
        if self.fail {
            return Err(crate::error::PortError::new(
                crate::identity::hresult::E_FAIL,
                "no key today",
            )
            .into());
        }
        record.sign(&self.key, &self.chain)
    }
}

fn duties_of(p: &Someone, fail: bool) -> duties::MemberDuties {
    let publisher = TestPublisher {
        key: PrivateKey::from_pkcs8(p.key.pkcs8_der()).unwrap(),
        chain: p.chain.clone(),
        fail,
    };
    duties::MemberDuties::new(
        Box::new(publisher),
        duties::MemberSettings::default(),
        &p.name,
        77,
    )
}

#[test]
fn duties_publish_refresh_update_and_delete_presence() {
    use crate::port::RecordPort;
    use crate::replication::{MemoryPort, Verifier};
    let (root, _, bob, _) = group();
    let mut port = MemoryPort::new(Verifier::new(root.certificate().clone()));
    let mut d = duties_of(&bob, false);
    let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let made = d.start(NOW_MS, &[a], &mut port);
    let types: Vec<[u8; 16]> = made.iter().map(|r| r.record_type).collect();
    assert_eq!(types, vec![MEMBER_DATA_TYPE, PRESENCE_TYPE]);
    port.put(&made).unwrap();
    let lifetime = duties::MemberSettings::default().presence_lifetime_ms;
    let half = (NOW_MS + lifetime / 2) as u64;
    assert_eq!(d.timeout(), Some(half));
    assert!(d.tick(NOW_MS + 1000).is_empty(), "nothing due yet");

    // At half-life a refresh: next version, same content, `changed` kept.
    let refresh = d.tick(half as i64);
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].version, 2);
    assert_eq!(
        member_event(&refresh[0], RecordChange::Updated),
        None,
        "a refresh raises nothing"
    );

    // New addresses: an update others see as UPDATED.
    let b: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let moved = d.start(half as i64 + 10, &[b], &mut port);
    assert_eq!(moved.len(), 1);
    assert!(matches!(
        member_event(&moved[0], RecordChange::Updated),
        Some(GroupEvent::MemberChanged {
            change: MemberChange::Updated,
            ..
        })
    ));

    // Presence switched off: a tombstone, and nothing more to refresh for it.
    let off = d.settings(
        duties::MemberSettings {
            disable_presence: true,
            ..duties::MemberSettings::default()
        },
        half as i64 + 20,
    );
    assert_eq!(off.len(), 1);
    assert!(off[0].is_deleted() && off[0].record_type == PRESENCE_TYPE);
    assert!(d.close(half as i64 + 30).is_empty(), "already deleted");
}

#[test]
fn duties_that_cannot_sign_retry_later_not_in_a_loop() {
    use crate::replication::{MemoryPort, Verifier};
    let (root, _, bob, _) = group();
    let mut port = MemoryPort::new(Verifier::new(root.certificate().clone()));
    let mut good = duties_of(&bob, false);
    let made = good.start(NOW_MS, &[], &mut port);
    crate::port::RecordPort::put(&mut port, &made).unwrap();
    // A later session whose signing fails: its old records are past half-life.
    let mut bad = duties_of(&bob, true);
    let later = NOW_MS + 290_000;
    assert!(bad.start(later, &[], &mut port).is_empty());
    assert_eq!(bad.timeout(), Some((later + duties::RETRY_MS) as u64));
}
