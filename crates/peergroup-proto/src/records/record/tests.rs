//! Tests of the record codec, signatures and rights, and the conflict order.

use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;
use crate::error::ProtoError;
use crate::identity::gmc::{issue_gmc, GroupRoot};
use crate::identity::hresult;
use crate::identity::{IdentityCertificate, KeyAlgorithm};

fn sample() -> Record {
    Record {
        record_type: [7; 16],
        id: [9; 16],
        id_nonce: [0; 16],
        version: 1,
        flags: 0,
        creator: "0123456789abcdef0123456789abcdef01234567.alice".into(),
        modifier: "0123456789abcdef0123456789abcdef01234567.alice".into(),
        attributes: "<attributes/>".into(),
        created: 1_700_000_000_000,
        expires: 1_700_000_600_000,
        modified: 1_700_000_000_000,
        data: b"hello".to_vec(),
        security: vec![1, 2, 3],
    }
}

#[test]
fn encode_decode_round_trip() {
    let r = sample();
    let bytes = r.encode();
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(Record::decode(&bytes).unwrap(), r);
}

#[test]
fn decode_refuses_trailing_truncated_and_bad_fields() {
    let bytes = sample().encode();
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Record::decode(&longer),
        Err(RecordError::Trailing(1))
    ));
    for n in 0..bytes.len() {
        assert!(Record::decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
    }
    let mut r = sample();
    r.version = 0;
    assert!(Record::decode(&r.encode()).is_err());
    let mut r = sample();
    r.flags = 0x4;
    assert!(Record::decode(&r.encode()).is_err());
    let mut r = sample();
    r.flags = FLAG_DELETED;
    assert!(Record::decode(&r.encode()).is_err(), "tombstone with data");
    r.data.clear();
    assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    let mut r = sample();
    r.modifier.clear();
    assert!(Record::decode(&r.encode()).is_err());
}

#[test]
fn size_limits() {
    let mut r = sample();
    r.data = vec![0; MAX_RECORD_DATA];
    assert!(r.check().is_ok());
    assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    r.data.push(0);
    let err = r.check().unwrap_err();
    assert_eq!(err.hresult(), hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED);
    assert!(matches!(
        Record::decode(&r.encode()),
        Err(RecordError::TooLarge)
    ));
    let mut r = sample();
    r.attributes = "x".repeat(MAX_ATTRIBUTES_BYTES + 1);
    assert_eq!(
        r.check().unwrap_err().hresult(),
        hresult::PEER_E_INVALID_RECORD
    );
    assert!(matches!(
        Record::decode(&vec![0; MAX_RECORD_BYTES + 1]),
        Err(RecordError::TooLarge)
    ));
}

#[test]
fn expiry_and_tombstone() {
    let r = sample();
    assert!(!r.is_expired(r.expires - 1));
    assert!(r.is_expired(r.expires));
    let t = r.tombstone(&r.creator, r.modified + 5);
    assert!(t.is_deleted());
    assert_eq!(t.version, 2);
    assert!(t.data.is_empty() && t.security.is_empty() && t.attributes.is_empty());
    assert_eq!(
        (t.id, t.record_type, t.expires),
        (r.id, r.record_type, r.expires)
    );
    assert!(t.check().is_ok());
    assert!(t.wins_over(&r));
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        (any::<[u8; 16]>(), any::<[u8; 16]>(), 1u32..4, 0u32..2),
        ("[a-c]{1,3}", "[a-c]{1,3}", ".{0,8}"),
        (0i64..3, any::<i64>(), 0i64..3),
        (
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::collection::vec(0u8..2, 0..3),
        ),
    )
        .prop_map(
            |(
                (record_type, id, version, flags),
                (creator, modifier, attributes),
                (created, expires, modified),
                (data, security),
            )| Record {
                record_type,
                id,
                id_nonce: [3; 16],
                version,
                flags,
                creator,
                modifier,
                attributes,
                created,
                expires,
                modified,
                data,
                security,
            },
        )
}

/// Records drawn from tiny domains, so that every step of the conflict order is reached.
fn arb_version() -> impl Strategy<Value = Record> {
    (
        1u32..3,
        0u32..2,
        prop_oneof![
            Just(String::new()),
            Just("a".to_owned()),
            Just("b".to_owned())
        ],
        0i64..2,
        proptest::collection::vec(0u8..2, 0..2),
        proptest::collection::vec(0u8..2, 0..2),
    )
        .prop_map(|(version, flags, modifier, modified, security, data)| {
            let mut r = sample();
            r.version = version;
            r.flags = flags;
            r.modifier = modifier;
            r.modified = modified;
            r.security = security;
            r.data = data;
            r
        })
}

proptest! {
    #[test]
    fn codec_round_trips(r in arb_record()) {
        let bytes = r.encode();
        prop_assert_eq!(Record::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(r) = Record::decode(&bytes) {
            prop_assert_eq!(r.encode(), bytes);
        }
    }

    #[test]
    fn decode_of_mutated_records_never_panics(
        r in arb_record(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = r.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(d) = Record::decode(&bytes) {
            prop_assert_eq!(d.encode(), bytes);
        }
    }

    #[test]
    fn conflict_order_is_a_strict_total_order(
        a in arb_version(),
        b in arb_version(),
        c in arb_version(),
    ) {
        // Irreflexive, and Equal exactly for identical records.
        prop_assert!(!a.wins_over(&a));
        prop_assert_eq!(a.conflict_cmp(&b) == Ordering::Equal, a == b);
        // Antisymmetric and total: of two distinct records exactly one wins.
        prop_assert_eq!(a.conflict_cmp(&b), b.conflict_cmp(&a).reverse());
        if a != b {
            prop_assert!(a.wins_over(&b) ^ b.wins_over(&a));
        }
        // Transitive.
        if a.wins_over(&b) && b.wins_over(&c) {
            prop_assert!(a.wins_over(&c));
        }
        // Any arrival order keeps the same winner.
        let best = |xs: &[&Record]| {
            xs.iter().copied().fold(None::<&Record>, |kept, x| match kept {
                Some(k) if !x.wins_over(k) => Some(k),
                _ => Some(x),
            }).cloned()
        };
        prop_assert_eq!(best(&[&a, &b, &c]), best(&[&c, &a, &b]));
        prop_assert_eq!(best(&[&a, &b, &c]), best(&[&b, &c, &a]));
    }
}

#[test]
fn conflict_order_steps() {
    let base = sample();
    let with = |f: &dyn Fn(&mut Record)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    // 1. version beats everything after it.
    let newer = with(&|r| {
        r.version = 2;
        r.modifier = "a".into();
        r.modified = 0;
    });
    assert!(newer.wins_over(&with(&|r| r.modifier = "z".into())));
    // 2. updated beats not updated.
    assert!(base.wins_over(&with(&|r| r.modifier.clear())));
    // 3. higher modifier.
    assert!(with(&|r| r.modifier = "z".into()).wins_over(&with(&|r| {
        r.modifier = "y".into();
        r.modified += 10;
    })));
    // 4. later modification.
    assert!(with(&|r| r.modified += 1).wins_over(&with(&|r| r.security = vec![9; 9])));
    // 5. longer security data, then 6. higher security bytes.
    assert!(with(&|r| r.security = vec![0; 4]).wins_over(&with(&|r| r.security = vec![9; 3])));
    assert!(with(&|r| r.security = vec![1, 2, 4]).wins_over(&with(&|r| r.security = vec![1, 2, 3])));
    // 7. the encoding, for the same security data.
    assert!(with(&|r| r.data = vec![1]).wins_over(&with(&|r| r.data = vec![0])));
    assert_eq!(base.conflict_cmp(&base.clone()), Ordering::Equal);
}

struct Person {
    key: PrivateKey,
    chain: GmcChain,
    name: String,
}

struct Group {
    root: GroupRoot,
    admin: Person,
    bob: Person,
    carol: Person,
}

fn group() -> Group {
    let root = GroupRoot::create("records", "Records").unwrap();
    let grc = root.certificate();
    let person = |name: &str| {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let idc = IdentityCertificate::issue(&key, "", name).unwrap();
        (key, idc)
    };
    let (admin_key, admin_idc) = person("Admin");
    let admin_chain = root
        .issue(
            &admin_idc,
            &[Role::Admin],
            grc.not_before(),
            grc.not_after(),
        )
        .unwrap();
    let member = |name: &str| {
        let (key, idc) = person(name);
        let chain = issue_gmc(&admin_key, &admin_chain, &idc, &[Role::Member], None).unwrap();
        Person {
            name: chain.leaf().peer_name().to_string(),
            key,
            chain,
        }
    };
    let bob = member("Bob");
    let carol = member("Carol");
    let admin = Person {
        name: admin_chain.leaf().peer_name().to_string(),
        key: admin_key,
        chain: admin_chain,
    };
    Group {
        root,
        admin,
        bob,
        carol,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record_by(p: &Person, now: i64) -> Record {
    let mut r = sample();
    r.creator = p.name.clone();
    r.modifier = p.name.clone();
    r.created = now;
    r.modified = now;
    r.expires = now + 3_600_000;
    r.id = derive_id(&r.creator, &r.record_type, r.created, &r.id_nonce);
    r.security.clear();
    r.sign(&p.key, &p.chain).unwrap();
    r
}

fn update_by(r: &Record, p: &Person, now: i64) -> Record {
    let mut u = r.clone();
    u.version += 1;
    u.modifier = p.name.clone();
    u.modified = now;
    u.data = b"updated".to_vec();
    u.sign(&p.key, &p.chain).unwrap();
    u
}

#[test]
fn sign_verify_and_rights() {
    let g = group();
    let grc = g.root.certificate();
    let now = now_ms();

    // The creator's record and its own update verify.
    let r = record_by(&g.bob, now);
    let member = r.verify(grc, now).unwrap();
    assert_eq!(member.peer_name().to_string(), g.bob.name);
    assert!(r.security_parts().is_ok());
    let u = update_by(&r, &g.bob, now + 1);
    u.verify(grc, now + 1).unwrap();
    let t = {
        let mut t = u.tombstone(&g.bob.name, now + 2);
        t.sign(&g.bob.key, &g.bob.chain).unwrap();
        t
    };
    t.verify(grc, now + 2).unwrap();

    // A non-creator member may not update; an admin may.
    let forged = update_by(&r, &g.carol, now + 1);
    let err = forged.verify(grc, now + 1).unwrap_err();
    assert!(matches!(err, ProtoError::NotAuthorized(_)), "{err}");
    assert_eq!(err.hresult(), hresult::PEER_E_NOT_AUTHORIZED);
    update_by(&r, &g.admin, now + 1)
        .verify(grc, now + 1)
        .unwrap();

    // Version 1 is made by its creator only, even by an admin.
    let mut in_bobs_name = record_by(&g.admin, now);
    in_bobs_name.creator = g.bob.name.clone();
    in_bobs_name.id = derive_id(
        &g.bob.name,
        &in_bobs_name.record_type,
        in_bobs_name.created,
        &in_bobs_name.id_nonce,
    );
    in_bobs_name.sign(&g.admin.key, &g.admin.chain).unwrap();
    assert!(matches!(
        in_bobs_name.verify(grc, now),
        Err(ProtoError::NotAuthorized(_))
    ));

    // Nobody takes over a record by naming itself its creator, nor changes its type or
    // creation time in a later version: the id no longer matches.
    let mut hijack = update_by(&r, &g.carol, now + 1);
    hijack.creator = g.carol.name.clone();
    hijack.sign(&g.carol.key, &g.carol.chain).unwrap();
    let err = hijack.verify(grc, now + 1).unwrap_err();
    assert!(matches!(err, ProtoError::Record(_)), "{err}");
    for change in [
        &(|u: &mut Record| u.record_type[0] ^= 1) as &dyn Fn(&mut Record),
        &|u: &mut Record| u.created -= 1,
        &|u: &mut Record| u.id_nonce[0] ^= 1,
    ] {
        let mut u = update_by(&r, &g.bob, now + 1);
        change(&mut u);
        u.sign(&g.bob.key, &g.bob.chain).unwrap();
        assert!(matches!(u.verify(grc, now + 1), Err(ProtoError::Record(_))));
    }

    // A flipped byte anywhere fails.
    let mut bad = r.clone();
    bad.data[0] ^= 1;
    assert!(bad.verify(grc, now).is_err());
    for i in [0, 10, r.security.len() / 2, r.security.len() - 1] {
        let mut bad = r.clone();
        bad.security[i] ^= 1;
        assert!(bad.verify(grc, now).is_err(), "security byte {i}");
    }
    let mut bad = r.clone();
    bad.expires += 1;
    assert!(bad.verify(grc, now).is_err());

    // The modifier must be the signer.
    let mut bad = r.clone();
    bad.modifier = g.carol.name.clone();
    assert!(matches!(bad.verify(grc, now), Err(ProtoError::Record(_))));

    // Another group's root does not accept it.
    let other = GroupRoot::create("other", "Other").unwrap();
    assert!(r.verify(other.certificate(), now).is_err());

    // Modified far in the future of the verifier: refused.
    assert!(matches!(
        r.verify(grc, now - MAX_FUTURE_SKEW_MS - 1000),
        Err(ProtoError::Record(_))
    ));
    // Unsigned: refused.
    let mut unsigned = r.clone();
    unsigned.security.clear();
    assert!(matches!(
        unsigned.verify(grc, now),
        Err(ProtoError::Record(_))
    ));
}

#[test]
fn sign_refuses_a_chain_that_is_not_the_modifiers() {
    let g = group();
    let mut r = record_by(&g.bob, now_ms());
    assert!(matches!(
        r.sign(&g.carol.key, &g.carol.chain),
        Err(ProtoError::Record(_))
    ));
    assert!(matches!(
        r.sign(&g.carol.key, &g.bob.chain),
        Err(ProtoError::Record(_))
    ));
    r.data = vec![0; MAX_RECORD_DATA + 1];
    assert!(matches!(
        r.sign(&g.bob.key, &g.bob.chain),
        Err(ProtoError::Record(RecordError::TooLarge))
    ));
}
