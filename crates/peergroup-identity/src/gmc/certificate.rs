//! One group membership certificate: reading it ([`Gmc::from_der`]) and writing it.
//!
//! A GMC is an X.509 v3 certificate signed by its issuer's key. Its subject is the member:
//! common name = friendly name, pseudonym (2.5.4.65) = peer name, subject public key = the
//! member's identity key, so the GMC can be the member's TLS end-entity certificate. The
//! membership itself (group, roles, issuer) is in the GMC extension (see
//! [`super::extension`]). GMCs carry no basicConstraints: the right to issue comes from the
//! roles, and leaving cA unset keeps every GMC acceptable as an end-entity certificate. They
//! carry extendedKeyUsage serverAuth + clientAuth, since a member is both in mutual TLS.

use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::der;
use super::extension::{Membership, GMC_EXTENSION_OID_DER};
use super::role::Role;
use crate::cert::{IdentityCertificate, MAX_CERTIFICATE_BYTES, PEER_NAME_ATTRIBUTE_OID};
use crate::error::{IdentityError, Result};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::peer_name::{Authority, PeerName};
use crate::store::validate_friendly_name;

/// Bytes of a GMC's serial number. Windows records name GMCs by 16-byte serials, so every
/// GMC has exactly 16.
pub const GMC_SERIAL_BYTES: usize = 16;

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_PSEUDONYM: &[u8] = &[0x55, 0x04, 0x41];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// AlgorithmIdentifier ecdsa-with-SHA256 (no parameters, RFC 5758).
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier Ed25519 (no parameters, RFC 8410).
const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// Who a GMC is issued to: what it needs of the member, without the member's private key.
///
/// Build it from an [`IdentityCertificate`] (what `PeerGroupCreateInvitation` gets as
/// identity XML) or with [`Subject::new`] from bare parts (a password joiner that proved
/// itself over TLS with a key and a name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    peer_name: PeerName,
    friendly_name: String,
    public_key_der: Vec<u8>,
}

impl Subject {
    /// Checks that the key is a supported SubjectPublicKeyInfo, that the peer name is a secure
    /// name of that key (authority = SHA-1 of the key), and that the friendly name is
    /// acceptable (it may be empty).
    pub fn new(peer_name: PeerName, friendly_name: &str, public_key_der: &[u8]) -> Result<Self> {
        check_supported_key(public_key_der)?;
        if peer_name.authority() != Authority::of_public_key(public_key_der) {
            return Err(IdentityError::InvalidPeerName(format!(
                "{peer_name} is not a name of the subject's key"
            )));
        }
        validate_friendly_name(friendly_name, true)?;
        Ok(Subject {
            peer_name,
            friendly_name: friendly_name.to_owned(),
            public_key_der: public_key_der.to_vec(),
        })
    }

    /// The member's peer name.
    pub fn peer_name(&self) -> &PeerName {
        &self.peer_name
    }

    /// The member's friendly name.
    pub fn friendly_name(&self) -> &str {
        &self.friendly_name
    }

    /// The member's public key, DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }
}

/// An identity certificate was verified when parsed, so its parts need no re-check.
impl From<&IdentityCertificate> for Subject {
    fn from(cert: &IdentityCertificate) -> Self {
        Subject {
            peer_name: cert.peer_name().clone(),
            friendly_name: cert.friendly_name().to_owned(),
            public_key_der: cert.public_key_der().to_vec(),
        }
    }
}

impl From<IdentityCertificate> for Subject {
    fn from(cert: IdentityCertificate) -> Self {
        Subject::from(&cert)
    }
}

/// A parsed membership certificate.
///
/// Parsing checks form, not trust: that the certificate is well-formed, carries a valid GMC
/// extension, and that its subject peer name belongs to its key. Whether its issuer really
/// signed it is for [`super::validate_chain`] to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gmc {
    der: Vec<u8>,
    serial: Vec<u8>,
    peer_name: PeerName,
    friendly_name: String,
    public_key_der: Vec<u8>,
    membership: Membership,
    not_before: i64,
    not_after: i64,
    subject_dn: Vec<u8>,
    issuer_dn: Vec<u8>,
}

impl Gmc {
    /// Parses a GMC, strictly and within [`MAX_CERTIFICATE_BYTES`].
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = parse_x509(der, "GMC")?;
        if cert.version() != X509Version::V3 {
            return Err(bad("not an X.509 v3 certificate"));
        }
        let mut membership = None;
        for ext in cert.extensions() {
            if ext.oid.as_bytes() == GMC_EXTENSION_OID_DER {
                if membership.is_some() {
                    return Err(bad("two GMC extensions"));
                }
                membership = Some(Membership::decode(ext.value)?);
            } else if ext.critical {
                return Err(bad(&format!(
                    "unknown critical extension {}",
                    ext.oid.to_id_string()
                )));
            }
        }
        let membership = membership.ok_or_else(|| bad("no GMC extension"))?;
        let (peer_name, friendly_name, public_key_der) = subject_of(&cert, "GMC")?;
        Ok(Gmc {
            der: der.to_vec(),
            serial: cert.raw_serial().to_vec(),
            peer_name,
            friendly_name,
            public_key_der,
            membership,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            subject_dn: cert.subject().as_raw().to_vec(),
            issuer_dn: cert.issuer().as_raw().to_vec(),
        })
    }

    /// The certificate as DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The serial number's content octets (16 bytes for GMCs issued here).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The member's peer name (subject pseudonym).
    pub fn peer_name(&self) -> &PeerName {
        &self.peer_name
    }

    /// The member's friendly name (subject common name; empty if there is none).
    pub fn friendly_name(&self) -> &str {
        &self.friendly_name
    }

    /// The member's public key, DER SubjectPublicKeyInfo (Windows' `CERT_PUBLIC_KEY_INFO`).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// The group's peer name.
    pub fn group_name(&self) -> &PeerName {
        &self.membership.group_name
    }

    /// The roles granted, in canonical order, never empty.
    pub fn roles(&self) -> &[Role] {
        &self.membership.roles
    }

    /// Whether the GMC grants `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.membership.roles.contains(&role)
    }

    /// The issuer's peer name: another member's, or the group name for the group root.
    pub fn issuer_peer_name(&self) -> &PeerName {
        &self.membership.issuer_name
    }

    /// Validity start, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// Validity end, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// DER of the subject Name, which the certificates it issues name as their issuer.
    pub(crate) fn subject_dn(&self) -> &[u8] {
        &self.subject_dn
    }

    /// DER of the issuer Name.
    pub(crate) fn issuer_dn(&self) -> &[u8] {
        &self.issuer_dn
    }

    /// Checks the signature against the issuer's key; a failure means the GMC was not issued
    /// by that key ([`IdentityError::Untrusted`]).
    pub(crate) fn verify_issued_by(&self, issuer_spki_der: &[u8]) -> Result<()> {
        let untrusted =
            |why: String| IdentityError::Untrusted(format!("GMC of {}: {why}", self.peer_name));
        let (_, cert) = X509Certificate::from_der(&self.der)
            .map_err(|e| untrusted(format!("does not re-parse: {e}")))?;
        let (_, spki) = SubjectPublicKeyInfo::from_der(issuer_spki_der)
            .map_err(|e| untrusted(format!("issuer key does not decode: {e}")))?;
        cert.verify_signature(Some(&spki)).map_err(|e| {
            untrusted(format!(
                "signature does not verify with the issuer's key: {e}"
            ))
        })
    }
}

/// What signs a new GMC, and how it names itself.
pub(crate) struct Signer<'a> {
    pub key: &'a PrivateKey,
    pub subject_dn: &'a [u8],
    pub peer_name: &'a PeerName,
}

/// Writes, signs and re-reads a GMC. Callers have checked roles, times and lengths.
pub(crate) fn sign_gmc(
    signer: &Signer<'_>,
    group_name: &PeerName,
    subject: &Subject,
    roles: &[Role],
    not_before: i64,
    not_after: i64,
) -> Result<Gmc> {
    let membership = Membership {
        group_name: group_name.clone(),
        roles: roles.to_vec(),
        issuer_name: signer.peer_name.clone(),
    };
    let mut serial = [0u8; GMC_SERIAL_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| IdentityError::Crypto("random source failed"))?;
    // Positive, and the top byte non-zero so that the INTEGER keeps all 16 bytes.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let alg = match signer.key.algorithm() {
        KeyAlgorithm::EcdsaP256 => ALG_ECDSA_SHA256,
        KeyAlgorithm::Ed25519 => ALG_ED25519,
    };
    let ext_gmc = der::constructed(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &GMC_EXTENSION_OID_DER),
            &der::tlv(der::OCTET_STRING, &membership.encode()),
        ],
    );
    let eku = der::constructed(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, OID_SERVER_AUTH),
            &der::tlv(der::OID, OID_CLIENT_AUTH),
        ],
    );
    let ext_eku = der::constructed(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, OID_EXT_KEY_USAGE),
            &der::tlv(der::OCTET_STRING, &eku),
        ],
    );
    let tbs = der::constructed(
        der::SEQUENCE,
        &[
            &der::tlv(der::context(0), &der::unsigned_integer(&[2])),
            &der::unsigned_integer(&serial),
            alg,
            signer.subject_dn,
            &der::constructed(
                der::SEQUENCE,
                &[&der::time(not_before)?, &der::time(not_after)?],
            ),
            &name_der(&subject.friendly_name, &subject.peer_name),
            &subject.public_key_der,
            &der::tlv(
                der::context(3),
                &der::constructed(der::SEQUENCE, &[&ext_gmc, &ext_eku]),
            ),
        ],
    );
    let signature = signer.key.sign(&tbs)?;
    let cert = der::constructed(der::SEQUENCE, &[&tbs, alg, &der::bit_string(&signature)]);
    let gmc = Gmc::from_der(&cert)?;
    gmc.verify_issued_by(signer.key.public_key_der())?;
    Ok(gmc)
}

/// `Name ::= SEQUENCE OF RDN`: the common name (left out when empty), then the pseudonym.
fn name_der(friendly_name: &str, peer_name: &PeerName) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        der::tlv(
            der::SET,
            &der::constructed(
                der::SEQUENCE,
                &[
                    &der::tlv(der::OID, oid),
                    &der::tlv(der::UTF8_STRING, value.as_bytes()),
                ],
            ),
        )
    };
    let mut rdns = Vec::new();
    if !friendly_name.is_empty() {
        rdns.extend(rdn(OID_COMMON_NAME, friendly_name));
    }
    rdns.extend(rdn(OID_PSEUDONYM, &peer_name.to_string()));
    der::tlv(der::SEQUENCE, &rdns)
}

/// Parses a certificate of the group (GMC or root) with the checks both need: size, no
/// trailing bytes, the outer algorithm equal to the signed one, a whole-byte signature.
pub(crate) fn parse_x509<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>> {
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(IdentityError::BadEncoding(format!(
            "{what} of {} bytes exceeds the limit of {MAX_CERTIFICATE_BYTES}",
            der.len()
        )));
    }
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| IdentityError::BadEncoding(format!("{what} does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(IdentityError::BadEncoding(format!(
            "trailing bytes after the {what}"
        )));
    }
    check_outer_der(der).map_err(|e| IdentityError::BadEncoding(format!("{what}: {e}")))?;
    Ok(cert)
}

/// The parts of a certificate outside the signed TBSCertificate must not vary either, or one
/// certificate would have many encodings (x509-parser is lenient about tags there). So:
/// `SEQUENCE { tbs, algorithm, BIT STRING }` in strict DER, the outer algorithm byte-equal to
/// the signed one, and the signature whole bytes.
fn check_outer_der(der: &[u8]) -> Result<()> {
    let body = der::read_whole(der::SEQUENCE, der)?;
    let (tbs, rest) = der::read_tlv(der::SEQUENCE, body)?;
    let (algorithm, rest) = der::split_tlv(der::SEQUENCE, rest)?;
    let signature = der::read_whole(der::BIT_STRING, rest)?;
    if signature.first() != Some(&0) {
        return Err(IdentityError::BadEncoding(
            "signature is not whole bytes".into(),
        ));
    }
    // TBSCertificate: [0] version, serial, signature algorithm, ...
    let (_, after_version) = der::read_tlv(der::context(0), tbs)?;
    let (_, after_serial) = der::read_tlv(der::INTEGER, after_version)?;
    let (signed_algorithm, _) = der::split_tlv(der::SEQUENCE, after_serial)?;
    if algorithm != signed_algorithm {
        return Err(IdentityError::BadEncoding(
            "the signature algorithm differs from the signed one".into(),
        ));
    }
    Ok(())
}

/// The subject's peer name, friendly name and key; the name must be the key's (as for
/// identities, a mismatch is a bad signature: the name is not backed by the key).
pub(crate) fn subject_of(
    cert: &X509Certificate<'_>,
    what: &str,
) -> Result<(PeerName, String, Vec<u8>)> {
    let mut peer_name = None;
    let mut friendly_name = None;
    for attr in cert.subject().iter_attributes() {
        let slot = match attr.attr_type().to_id_string().as_str() {
            PEER_NAME_ATTRIBUTE_OID => &mut peer_name,
            "2.5.4.3" => &mut friendly_name,
            other => {
                return Err(IdentityError::BadEncoding(format!(
                    "{what}: unexpected subject attribute {other}"
                )))
            }
        };
        let value = attr
            .as_str()
            .map_err(|_| IdentityError::BadEncoding(format!("{what}: subject is not text")))?;
        if slot.replace(value).is_some() {
            return Err(IdentityError::BadEncoding(format!(
                "{what}: subject attribute repeated"
            )));
        }
    }
    let peer_name: PeerName = peer_name
        .ok_or_else(|| IdentityError::BadEncoding(format!("{what} names no peer")))?
        .parse()?;
    let spki = cert.public_key().raw.to_vec();
    check_supported_key(&spki)?;
    if peer_name.authority() != Authority::of_public_key(&spki) {
        return Err(IdentityError::BadSignature(format!(
            "{what}: the peer name's authority is not the key's hash"
        )));
    }
    let friendly_name = friendly_name.unwrap_or_default().to_owned();
    validate_friendly_name(&friendly_name, true)?;
    Ok((peer_name, friendly_name, spki))
}

/// Accepts the key types identities use: ECDSA P-256 and Ed25519, as DER
/// SubjectPublicKeyInfo with nothing after it.
pub(crate) fn check_supported_key(spki_der: &[u8]) -> Result<()> {
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const ED25519: &str = "1.3.101.112";
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| IdentityError::BadKey(format!("public key does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(IdentityError::BadKey(
            "trailing bytes after the public key".into(),
        ));
    }
    let curve = || {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
    };
    match spki.algorithm.algorithm.to_id_string().as_str() {
        ED25519 if spki.algorithm.parameters.is_none() => Ok(()),
        EC_PUBLIC_KEY if curve().as_deref() == Some(P256) => Ok(()),
        other => Err(IdentityError::BadKey(format!(
            "unsupported public key algorithm {other}; identities use ECDSA P-256 or Ed25519"
        ))),
    }
}

fn bad(why: &str) -> IdentityError {
    IdentityError::BadEncoding(format!("GMC: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    fn subject(alg: KeyAlgorithm, name: &str) -> (PrivateKey, Subject) {
        let key = PrivateKey::generate(alg).unwrap();
        let pn = PeerName::new(key.authority(), "").unwrap();
        let s = Subject::new(pn, name, key.public_key_der()).unwrap();
        (key, s)
    }

    #[test]
    fn written_gmcs_read_back_with_every_field() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let (issuer_key, issuer) = subject(alg, "Issuer");
            let (_, member) = subject(KeyAlgorithm::EcdsaP256, "Mémber");
            let group = PeerName::new(Authority::Secure([3; 20]), "g").unwrap();
            let issuer_dn = name_der(issuer.friendly_name(), issuer.peer_name());
            let signer = Signer {
                key: &issuer_key,
                subject_dn: &issuer_dn,
                peer_name: issuer.peer_name(),
            };
            let far = 40_000_000_000; // in the 3200s: GeneralizedTime
            let gmc = sign_gmc(&signer, &group, &member, &[Role::Member], 1_000, far).unwrap();
            assert_eq!(gmc.peer_name(), member.peer_name());
            assert_eq!(gmc.friendly_name(), "Mémber");
            assert_eq!(gmc.public_key_der(), member.public_key_der());
            assert_eq!(gmc.group_name(), &group);
            assert_eq!(gmc.roles(), [Role::Member]);
            assert!(gmc.has_role(Role::Member) && !gmc.has_role(Role::Admin));
            assert_eq!(gmc.issuer_peer_name(), issuer.peer_name());
            assert_eq!((gmc.not_before(), gmc.not_after()), (1_000, far));
            assert_eq!(gmc.serial().len(), GMC_SERIAL_BYTES);
            assert_eq!(gmc.issuer_dn(), issuer_dn);
            gmc.verify_issued_by(issuer_key.public_key_der()).unwrap();
            let e = gmc.verify_issued_by(member.public_key_der()).unwrap_err();
            assert!(matches!(e, IdentityError::Untrusted(_)), "{e:?}");
            // x509-parser sees the same certificate: v3, EKU for both TLS sides, not a CA.
            let (_, x) = X509Certificate::from_der(gmc.der()).unwrap();
            let eku = x.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            assert!(!x.is_ca());
            assert_eq!(Gmc::from_der(gmc.der()).unwrap(), gmc);
        }
    }

    #[test]
    fn subject_must_name_its_own_key() {
        let (_, a) = subject(KeyAlgorithm::EcdsaP256, "A");
        let (_, b) = subject(KeyAlgorithm::Ed25519, "B");
        let e = Subject::new(a.peer_name().clone(), "A", b.public_key_der()).unwrap_err();
        assert_eq!(e.hresult(), crate::hresult::PEER_E_INVALID_PEER_NAME);
        let e = Subject::new(a.peer_name().clone(), "A", b"\x30\x00").unwrap_err();
        assert_eq!(e.hresult(), crate::hresult::NTE_BAD_KEY);
        let e = Subject::new(a.peer_name().clone(), "bad\n", a.public_key_der()).unwrap_err();
        assert_eq!(e.hresult(), crate::hresult::PEER_E_INVALID_FRIENDLY_NAME);
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let idc = IdentityCertificate::issue(&key, "c", "Carol").unwrap();
        let s = Subject::from(&idc);
        assert_eq!(s.peer_name(), idc.peer_name());
        assert_eq!(s.friendly_name(), "Carol");
        assert_eq!(s.public_key_der(), key.public_key_der());
    }

    #[test]
    fn identity_certificates_are_not_gmcs() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let idc = IdentityCertificate::issue(&key, "c", "Carol").unwrap();
        let e = Gmc::from_der(idc.der()).unwrap_err();
        assert!(matches!(e, IdentityError::BadEncoding(_)), "{e:?}");
    }
}
