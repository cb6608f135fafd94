//! End-to-end tests of the GMC module: groups, invitations down a chain, and every refusal.

use proptest::prelude::*;

use super::certificate::{sign_gmc, Signer};
use super::chain::now_unix;
use super::*;
use crate::hresult::*;
use crate::{IdentityCertificate, IdentityError, KeyAlgorithm, PeerName, PrivateKey, Result};

struct Person {
    key: PrivateKey,
    idc: IdentityCertificate,
}

fn person(name: &str) -> Person {
    person_with(KeyAlgorithm::EcdsaP256, name)
}

fn person_with(alg: KeyAlgorithm, name: &str) -> Person {
    let key = PrivateKey::generate(alg).unwrap();
    let idc = IdentityCertificate::issue(&key, "", name).unwrap();
    Person { key, idc }
}

/// A group with its creator holding an infinite admin GMC.
fn group() -> (GroupRoot, Person, GmcChain) {
    let root = GroupRoot::create("test", "Test Group").unwrap();
    let creator = person("Creator");
    let grc = root.certificate();
    let chain = root
        .issue(
            &creator.idc,
            &[Role::Admin],
            grc.not_before(),
            grc.not_after(),
        )
        .unwrap();
    (root, creator, chain)
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> HRESULT {
    r.unwrap_err().hresult()
}

/// Signs a GMC as `issuer` with no rule checks, to build chains `issue_gmc` would refuse.
fn forge(
    issuer_key: &PrivateKey,
    issuer: &Gmc,
    group: &PeerName,
    subject: impl Into<Subject>,
    roles: &[Role],
    not_before: i64,
    not_after: i64,
) -> Gmc {
    let signer = Signer {
        key: issuer_key,
        subject_dn: issuer.subject_dn(),
        peer_name: issuer.peer_name(),
    };
    sign_gmc(
        &signer,
        group,
        &subject.into(),
        roles,
        not_before,
        not_after,
    )
    .unwrap()
}

fn prepend(gmc: &Gmc, chain: &GmcChain) -> Vec<Vec<u8>> {
    let mut ders = vec![gmc.der().to_vec()];
    ders.extend(chain.to_der_list());
    ders
}

#[test]
fn creator_gmc_validates() {
    let (root, creator, chain) = group();
    let grc = root.certificate();
    assert_eq!(chain.chain_len(), 2);
    let member = validate_chain(grc, &chain.to_der_list(), now_unix()).unwrap();
    assert_eq!(member.peer_name(), creator.idc.peer_name());
    assert_eq!(member.friendly_name(), "Creator");
    assert_eq!(member.public_key_der(), creator.key.public_key_der());
    assert_eq!(member.roles(), [Role::Admin]);
    assert_eq!(member.not_after(), grc.not_after());
    assert_eq!(member.chain(), &chain);
    assert_eq!(chain.leaf().issuer_peer_name(), root.group_name());
    assert_eq!(chain.leaf().group_name(), root.group_name());
    // Reloading the root from its parts issues chains that validate against the original.
    let again = GroupRoot::from_parts(root.key().pkcs8_der(), grc.der()).unwrap();
    let bob = person("Bob");
    let bob_chain = again
        .issue(&bob.idc, &[Role::Member], grc.not_before(), grc.not_after())
        .unwrap();
    chain::GmcChain::validate(&bob_chain, grc, now_unix()).unwrap();
}

#[test]
fn admin_invites_an_inviting_member_who_invites_a_member() {
    let (root, creator, creator_chain) = group();
    let grc = root.certificate();
    let ivan = person("Ivan");
    let ivan_chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &ivan.idc,
        &[Role::InvitingMember],
        None,
    )
    .unwrap();
    // Ed25519 identities are members like any other.
    let mia = person_with(KeyAlgorithm::Ed25519, "Mia");
    let expiry = now_unix() + 30 * 24 * 3600;
    let mia_chain = issue_gmc(
        &ivan.key,
        &ivan_chain,
        &mia.idc,
        &[Role::Member, Role::Member],
        Some(expiry),
    )
    .unwrap();
    assert_eq!(mia_chain.gmcs().len(), 3);
    assert_eq!(mia_chain.chain_len(), 4);
    let m = validate_chain(grc, &mia_chain.to_der_list(), now_unix()).unwrap();
    assert_eq!(m.peer_name(), mia.idc.peer_name());
    assert_eq!(m.roles(), [Role::Member]);
    assert!(m.has_role(Role::Member) && !m.has_role(Role::InvitingMember));
    assert_eq!(m.not_after(), expiry);
    let gmcs = mia_chain.gmcs();
    assert_eq!(gmcs[0].issuer_peer_name(), ivan.idc.peer_name());
    assert_eq!(gmcs[1].issuer_peer_name(), creator.idc.peer_name());
    assert_eq!(gmcs[1].roles(), [Role::InvitingMember]);
    // With no expiry given, Ivan got the creator's remaining lifetime.
    assert_eq!(gmcs[1].not_after(), grc.not_after());
    assert_eq!(gmcs[2], *creator_chain.leaf());
    let i = validate_chain(grc, &ivan_chain.to_der_list(), now_unix()).unwrap();
    assert_eq!(i.roles(), [Role::InvitingMember]);
    // An inviting member may make another inviting member.
    let ida = person("Ida");
    issue_gmc(
        &ivan.key,
        &ivan_chain,
        &ida.idc,
        &[Role::InvitingMember],
        None,
    )
    .unwrap();
}

#[test]
fn members_issue_nothing_and_nobody_grants_above_their_role() {
    let (_root, creator, creator_chain) = group();
    let ivan = person("Ivan");
    let ivan_chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &ivan.idc,
        &[Role::InvitingMember],
        None,
    )
    .unwrap();
    let mia = person("Mia");
    let mia_chain = issue_gmc(&ivan.key, &ivan_chain, &mia.idc, &[Role::Member], None).unwrap();
    let zed = person("Zed");
    for role in Role::ALL {
        assert_eq!(
            code(issue_gmc(&mia.key, &mia_chain, &zed.idc, &[role], None)),
            PEER_E_NOT_AUTHORIZED,
            "member granting {role:?}"
        );
    }
    assert_eq!(
        code(issue_gmc(
            &ivan.key,
            &ivan_chain,
            &zed.idc,
            &[Role::Admin],
            None
        )),
        PEER_E_NOT_AUTHORIZED
    );
    assert_eq!(
        code(issue_gmc(
            &ivan.key,
            &ivan_chain,
            &zed.idc,
            &[Role::Member, Role::Admin],
            None
        )),
        PEER_E_NOT_AUTHORIZED
    );
    assert_eq!(
        code(issue_gmc(&ivan.key, &ivan_chain, &zed.idc, &[], None)),
        E_INVALIDARG
    );
    // Someone else's key cannot sign with Ivan's chain.
    assert_eq!(
        code(issue_gmc(
            &mia.key,
            &ivan_chain,
            &zed.idc,
            &[Role::Member],
            None
        )),
        NTE_BAD_KEY
    );
}

#[test]
fn validation_refuses_roles_the_issuer_could_not_grant() {
    let (root, creator, creator_chain) = group();
    let grc = root.certificate();
    let ivan = person("Ivan");
    let ivan_chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &ivan.idc,
        &[Role::InvitingMember],
        None,
    )
    .unwrap();
    let zed = person("Zed");
    let leaf = ivan_chain.leaf();
    let forged = forge(
        &ivan.key,
        leaf,
        root.group_name(),
        &zed.idc,
        &[Role::Admin],
        leaf.not_before(),
        leaf.not_after(),
    );
    let e = validate_chain(grc, &prepend(&forged, &ivan_chain), now_unix()).unwrap_err();
    assert!(matches!(e, IdentityError::NotAuthorized(_)), "{e:?}");
}

#[test]
fn validity_is_checked_against_now_and_the_issuer() {
    let (root, creator, creator_chain) = group();
    let grc = root.certificate();
    let bob = person("Bob");
    let now = now_unix();
    let chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &bob.idc,
        &[Role::InvitingMember],
        Some(now + 100),
    )
    .unwrap();
    let ders = chain.to_der_list();
    let leaf = chain.leaf();
    let started = leaf.not_before() + ISSUE_CLOCK_SLACK_SECS;
    assert!((now..=now_unix()).contains(&started), "{started} vs {now}");
    validate_chain(grc, &ders, leaf.not_after()).unwrap();
    validate_chain(grc, &ders, leaf.not_before()).unwrap();
    assert_eq!(
        code(validate_chain(grc, &ders, leaf.not_after() + 1)),
        PEER_E_INVALID_TIME_PERIOD
    );
    assert_eq!(
        code(validate_chain(grc, &ders, leaf.not_before() - 1)),
        PEER_E_INVALID_TIME_PERIOD
    );
    assert_eq!(
        code(validate_chain(grc, &ders, grc.not_after() + 1)),
        PEER_E_INVALID_TIME_PERIOD
    );
    // Issuing: no expiry past the issuer's, none in the past.
    assert_eq!(
        code(issue_gmc(
            &creator.key,
            &creator_chain,
            &bob.idc,
            &[Role::Member],
            Some(grc.not_after() + 1)
        )),
        PEER_E_INVALID_TIME_PERIOD
    );
    assert_eq!(
        code(issue_gmc(
            &creator.key,
            &creator_chain,
            &bob.idc,
            &[Role::Member],
            Some(now - 10)
        )),
        PEER_E_INVALID_TIME_PERIOD
    );
    // A GMC that outlives its issuer's is refused even though now is inside both.
    let carl = person("Carl");
    let outliving = forge(
        &bob.key,
        leaf,
        root.group_name(),
        &carl.idc,
        &[Role::Member],
        leaf.not_before(),
        leaf.not_after() + 1,
    );
    assert_eq!(
        code(validate_chain(grc, &prepend(&outliving, &chain), now)),
        PEER_E_INVALID_TIME_PERIOD
    );
}

#[test]
fn issuing_at_a_given_time_needs_no_system_clock() {
    // A simulated network may run its clock years ahead of the host's.
    let t = 3_000_000_000;
    let root = GroupRoot::create_at("sim", "Sim", t).unwrap();
    let grc = root.certificate();
    let admin = person("Admin");
    let admin_chain = root
        .issue(
            &admin.idc,
            &[Role::Admin],
            grc.not_before(),
            grc.not_after(),
        )
        .unwrap();
    let bob = person("Bob");
    let chain = issue_gmc_at(
        &admin.key,
        &admin_chain,
        &bob.idc,
        &[Role::Member],
        Some(t + 60),
        t,
    )
    .unwrap();
    assert_eq!(chain.leaf().not_before(), t - ISSUE_CLOCK_SLACK_SECS);
    assert_eq!(chain.leaf().not_after(), t + 60);
    chain.validate(grc, t + 60).unwrap();
    assert_eq!(
        code(chain.validate(grc, t + 61)),
        PEER_E_INVALID_TIME_PERIOD
    );
}

#[test]
fn chains_of_another_group_are_untrusted() {
    let (root, creator, chain) = group();
    let (other, _, other_chain) = group();
    let now = now_unix();
    let e = validate_chain(other.certificate(), &chain.to_der_list(), now).unwrap_err();
    assert!(matches!(e, IdentityError::Untrusted(_)), "{e:?}");
    let e = validate_chain(root.certificate(), &other_chain.to_der_list(), now).unwrap_err();
    assert!(matches!(e, IdentityError::Untrusted(_)), "{e:?}");
    // Properly signed, but for another group's name.
    let bob = person("Bob");
    let leaf = chain.leaf();
    let wrong_group = forge(
        &creator.key,
        leaf,
        other.group_name(),
        &bob.idc,
        &[Role::Member],
        leaf.not_before(),
        leaf.not_after(),
    );
    assert_eq!(
        code(validate_chain(
            root.certificate(),
            &prepend(&wrong_group, &chain),
            now
        )),
        PEER_E_INVITATION_NOT_TRUSTED
    );
    // Signed by the creator but naming someone else as issuer.
    let signer = Signer {
        key: &creator.key,
        subject_dn: leaf.subject_dn(),
        peer_name: bob.idc.peer_name(),
    };
    let carl = person("Carl");
    let wrong_issuer = sign_gmc(
        &signer,
        root.group_name(),
        &Subject::from(&carl.idc),
        &[Role::Member],
        leaf.not_before(),
        leaf.not_after(),
    )
    .unwrap();
    assert_eq!(
        code(validate_chain(
            root.certificate(),
            &prepend(&wrong_issuer, &chain),
            now
        )),
        PEER_E_INVITATION_NOT_TRUSTED
    );
    // Links out of order do not chain.
    let ivan = person("Ivan");
    let ivan_chain = issue_gmc(&creator.key, &chain, &ivan.idc, &[Role::Member], None).unwrap();
    let mut reversed = ivan_chain.to_der_list();
    reversed.reverse();
    assert!(validate_chain(root.certificate(), &reversed, now).is_err());
    assert_eq!(
        code(validate_chain(
            root.certificate(),
            &Vec::<Vec<u8>>::new(),
            now
        )),
        PEER_E_INVITATION_NOT_TRUSTED
    );
}

#[test]
fn a_flipped_byte_anywhere_is_an_error_not_a_panic() {
    let (root, creator, creator_chain) = group();
    let ivan = person("Ivan");
    let ivan_chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &ivan.idc,
        &[Role::InvitingMember],
        None,
    )
    .unwrap();
    let mia = person("Mia");
    let chain = issue_gmc(&ivan.key, &ivan_chain, &mia.idc, &[Role::Member], None).unwrap();
    let ders = chain.to_der_list();
    let now = now_unix();
    validate_chain(root.certificate(), &ders, now).unwrap();
    for cert in 0..ders.len() {
        for at in 0..ders[cert].len() {
            for mask in [0x01, 0x80] {
                let mut damaged = ders.clone();
                damaged[cert][at] ^= mask;
                assert!(
                    validate_chain(root.certificate(), &damaged, now).is_err(),
                    "cert {cert}, byte {at}, mask {mask:#x}"
                );
            }
        }
        for cut in [1, ders[cert].len() / 2, ders[cert].len() - 1] {
            let mut damaged = ders.clone();
            damaged[cert].truncate(cut);
            assert!(validate_chain(root.certificate(), &damaged, now).is_err());
        }
    }
}

#[test]
fn chains_longer_than_24_counting_the_root_are_refused() {
    let (root, mut admin, mut chain) = group();
    let grc = root.certificate();
    let now = now_unix();
    while chain.chain_len() < MAX_CHAIN_LEN {
        let next = person("Admin");
        chain = issue_gmc(&admin.key, &chain, &next.idc, &[Role::Admin], None).unwrap();
        admin = next;
    }
    assert_eq!(chain.gmcs().len(), MAX_GMCS);
    assert_eq!(chain.chain_len(), 24);
    validate_chain(grc, &chain.to_der_list(), now).unwrap();
    let one_more = person("One more");
    let e = issue_gmc(&admin.key, &chain, &one_more.idc, &[Role::Member], None).unwrap_err();
    assert!(matches!(e, IdentityError::ChainTooLong(25)), "{e:?}");
    let leaf = chain.leaf();
    let forged = forge(
        &admin.key,
        leaf,
        root.group_name(),
        &one_more.idc,
        &[Role::Member],
        leaf.not_before(),
        leaf.not_after(),
    );
    let ders = prepend(&forged, &chain);
    assert_eq!(ders.len(), 24);
    assert_eq!(code(validate_chain(grc, &ders, now)), PEER_E_CHAIN_TOO_LONG);
    // The compact encoding refuses the count before reading any certificate.
    let mut bytes = chain.to_bytes();
    bytes[5] = 24;
    assert_eq!(code(GmcChain::from_bytes(&bytes)), PEER_E_CHAIN_TOO_LONG);
}

#[test]
fn a_key_twice_in_a_chain_is_circular() {
    let (root, creator, creator_chain) = group();
    let grc = root.certificate();
    let now = now_unix();
    let ann = person("Ann");
    let ann_chain =
        issue_gmc(&creator.key, &creator_chain, &ann.idc, &[Role::Admin], None).unwrap();
    for again in [&ann, &creator] {
        assert_eq!(
            code(issue_gmc(
                &ann.key,
                &ann_chain,
                &again.idc,
                &[Role::Member],
                None
            )),
            PEER_E_CIRCULAR_CHAIN_DETECTED
        );
    }
    let leaf = ann_chain.leaf();
    let to_creator = forge(
        &ann.key,
        leaf,
        root.group_name(),
        &creator.idc,
        &[Role::Admin],
        leaf.not_before(),
        leaf.not_after(),
    );
    assert_eq!(
        code(validate_chain(grc, &prepend(&to_creator, &ann_chain), now)),
        PEER_E_CIRCULAR_CHAIN_DETECTED
    );
    // The group root's key counts too.
    let root_as_member = Subject::new(
        PeerName::new(root.key().authority(), "").unwrap(),
        "Root",
        grc.public_key_der(),
    )
    .unwrap();
    let forged = forge(
        &ann.key,
        leaf,
        root.group_name(),
        root_as_member,
        &[Role::Member],
        leaf.not_before(),
        leaf.not_after(),
    );
    assert_eq!(
        code(validate_chain(grc, &prepend(&forged, &ann_chain), now)),
        PEER_E_CIRCULAR_CHAIN_DETECTED
    );
}

#[test]
fn bare_subjects_can_be_invited() {
    // A password joiner proved a key and a name, but sent no identity certificate.
    let (root, creator, creator_chain) = group();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let name = PeerName::new(key.authority(), "laptop").unwrap();
    let subject = Subject::new(name.clone(), "Joiner", key.public_key_der()).unwrap();
    let chain = issue_gmc(&creator.key, &creator_chain, subject, &[Role::Member], None).unwrap();
    let m = chain.validate(root.certificate(), now_unix()).unwrap();
    assert_eq!(m.peer_name(), &name);
    assert_eq!(m.friendly_name(), "Joiner");
}

#[test]
fn encodings_round_trip_and_refuse_damage() {
    let (root, creator, creator_chain) = group();
    let bob = person("Bob");
    let chain = issue_gmc(
        &creator.key,
        &creator_chain,
        &bob.idc,
        &[Role::Member],
        None,
    )
    .unwrap();
    let bytes = chain.to_bytes();
    assert_eq!(&bytes[..6], b"PGMC\x01\x02");
    assert_eq!(GmcChain::from_bytes(&bytes).unwrap(), chain);
    assert_eq!(
        GmcChain::from_der_list(&chain.to_der_list()).unwrap(),
        chain
    );
    let back = GmcChain::from_bytes(
        &root
            .issue(
                &bob.idc,
                &[Role::Member],
                root.certificate().not_before(),
                root.certificate().not_after(),
            )
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(back.gmcs().len(), 1);

    for cut in 0..bytes.len() {
        assert!(GmcChain::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let with = |at: usize, value: u8| {
        let mut b = bytes.clone();
        b[at] = value;
        GmcChain::from_bytes(&b).unwrap_err().hresult()
    };
    assert_eq!(with(0, b'X'), CRYPT_E_BAD_ENCODE);
    assert_eq!(with(4, 2), NTE_BAD_VER);
    assert_eq!(with(5, 0), CRYPT_E_BAD_ENCODE);
    assert_eq!(with(5, 1), CRYPT_E_BAD_ENCODE); // one certificate, then trailing bytes
    assert_eq!(with(6, 0xff), CRYPT_E_BAD_ENCODE); // a length beyond the limit
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(code(GmcChain::from_bytes(&trailing)), CRYPT_E_BAD_ENCODE);
    assert_eq!(
        code(GmcChain::from_bytes(&vec![0; MAX_CHAIN_BYTES + 1])),
        CRYPT_E_BAD_ENCODE
    );
    assert_eq!(
        code(GmcChain::from_der_list(&Vec::<Vec<u8>>::new())),
        CRYPT_E_BAD_ENCODE
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = GmcChain::from_bytes(&bytes);
        // With a valid header, the fuzz reaches the certificate parser.
        let mut framed = b"PGMC\x01\x01".to_vec();
        framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = GmcChain::from_bytes(&framed);
    }
}
