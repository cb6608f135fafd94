//! The group root: the group's own key pair and its self-signed root certificate (GRC).
//!
//! The group's peer name is `authority.classifier` with the authority the SHA-1 of the root
//! key, exactly as an identity's name is derived from its key. That is the trust anchor: given
//! a group name, only the GRC whose key hashes to its authority is the group's, and every GMC
//! chain must end at that key.

use time::{Duration, OffsetDateTime};

use super::certificate::{parse_x509, sign_gmc, subject_of, Signer, Subject};
use super::chain::{now_unix, GmcChain, ISSUE_CLOCK_SLACK_SECS};
use super::der::MAX_UNIX_TIME;
use super::extension::canonical_roles;
use super::role::Role;
use crate::cert::IDENTITY_CERT_LIFETIME_DAYS;
use crate::error::{IdentityError, Result};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::peer_name::PeerName;
use crate::store::validate_friendly_name;

/// A group root certificate, parsed and checked; usable without the group's private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRootCertificate {
    der: Vec<u8>,
    public_key_der: Vec<u8>,
    group_name: PeerName,
    friendly_name: String,
    not_before: i64,
    not_after: i64,
    subject_dn: Vec<u8>,
}

impl GroupRootCertificate {
    /// Parses a GRC and checks its self-signature, that it is a CA certificate (which is what
    /// tells it apart from an identity certificate, whose name is bound to its key the same
    /// way), and that the group name's authority is the SHA-1 of its key.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = parse_x509(der, "group root certificate")?;
        cert.verify_signature(None).map_err(|e| {
            IdentityError::BadSignature(format!("group root certificate self-signature: {e}"))
        })?;
        if !cert.is_ca() {
            return Err(IdentityError::BadEncoding(
                "the group root certificate is not a CA certificate".into(),
            ));
        }
        let (group_name, friendly_name, public_key_der) =
            subject_of(&cert, "group root certificate")?;
        Ok(GroupRootCertificate {
            der: der.to_vec(),
            public_key_der,
            group_name,
            friendly_name,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            subject_dn: cert.subject().as_raw().to_vec(),
        })
    }

    /// The certificate as DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The group root's public key, DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// The group's peer name (subject pseudonym).
    pub fn group_name(&self) -> &PeerName {
        &self.group_name
    }

    /// The group's friendly name (subject common name).
    pub fn friendly_name(&self) -> &str {
        &self.friendly_name
    }

    /// Validity start, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// Validity end, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    pub(crate) fn subject_dn(&self) -> &[u8] {
        &self.subject_dn
    }
}

/// The group root's key with its certificate: what the group creator holds.
///
/// The key is wiped from memory when the last copy is dropped; `Debug` never prints it.
#[derive(Clone, Debug)]
pub struct GroupRoot {
    key: PrivateKey,
    certificate: GroupRootCertificate,
}

impl GroupRoot {
    /// Creates a group: a new ECDSA P-256 key and a self-signed CA certificate naming the
    /// group `authority.classifier` (pseudonym) and `friendly_name` (common name, left out
    /// when empty), valid from an hour ago (for peers whose clocks lag) for Windows'
    /// "infinite" 1000 years. The time is the system clock's; see [`GroupRoot::create_at`].
    pub fn create(classifier: &str, friendly_name: &str) -> Result<Self> {
        Self::create_at(classifier, friendly_name, now_unix())
    }

    /// [`GroupRoot::create`] at a given time (seconds since the Unix epoch), for callers that
    /// keep their own clock. Certificates hold times from 1970 to 9999 only.
    pub fn create_at(classifier: &str, friendly_name: &str, now_unix: i64) -> Result<Self> {
        validate_friendly_name(friendly_name, true)?;
        let out_of_range =
            || IdentityError::InvalidTimePeriod(format!("time {now_unix} is out of range"));
        let not_before = now_unix
            .checked_sub(ISSUE_CLOCK_SLACK_SECS)
            .filter(|t| *t >= 0)
            .ok_or_else(out_of_range)?;
        let not_before =
            OffsetDateTime::from_unix_timestamp(not_before).map_err(|_| out_of_range())?;
        let not_after = not_before
            .checked_add(Duration::hours(1) + Duration::days(IDENTITY_CERT_LIFETIME_DAYS))
            .filter(|t| t.unix_timestamp() <= MAX_UNIX_TIME)
            .ok_or_else(out_of_range)?;
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
        let group_name = PeerName::new(key.authority(), classifier)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| IdentityError::BadEncoding(e.to_string()))?;
        let mut dn = rcgen::DistinguishedName::new();
        if !friendly_name.is_empty() {
            dn.push(rcgen::DnType::CommonName, friendly_name);
        }
        dn.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 65]),
            group_name.to_string(),
        );
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| IdentityError::Crypto("random source failed"))?;
        serial[0] = (serial[0] & 0x7f) | 0x40;
        params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
        let cert = params
            .self_signed(&key.rcgen_key_pair()?)
            .map_err(|_| IdentityError::Crypto("group root certificate could not be built"))?;
        let certificate = GroupRootCertificate::from_der(cert.der())?;
        Ok(GroupRoot { key, certificate })
    }

    /// Reloads a group root from its PKCS#8 key and GRC, checking that they belong together.
    pub fn from_parts(pkcs8_der: &[u8], grc_der: &[u8]) -> Result<Self> {
        let key = PrivateKey::from_pkcs8(pkcs8_der)?;
        let certificate = GroupRootCertificate::from_der(grc_der)?;
        if key.public_key_der() != certificate.public_key_der() {
            return Err(IdentityError::BadKey(
                "the key is not the group root certificate's key".into(),
            ));
        }
        Ok(GroupRoot { key, certificate })
    }

    /// The group's peer name.
    pub fn group_name(&self) -> &PeerName {
        self.certificate.group_name()
    }

    /// The root certificate, which every member needs to validate chains.
    pub fn certificate(&self) -> &GroupRootCertificate {
        &self.certificate
    }

    /// The group root's private key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Issues a GMC signed by the group root: the start of every chain (normally the
    /// creator's own, with [`Role::Admin`]). The validity must lie inside the GRC's; pass
    /// [`GroupRootCertificate::not_before`] and [`GroupRootCertificate::not_after`] for
    /// the creator's "infinite" membership.
    pub fn issue(
        &self,
        subject: impl Into<Subject>,
        roles: &[Role],
        not_before: i64,
        not_after: i64,
    ) -> Result<GmcChain> {
        let subject = subject.into();
        let roles = canonical_roles(roles);
        if roles.is_empty() {
            return Err(IdentityError::NoRoles);
        }
        let grc = &self.certificate;
        if not_before >= not_after || not_before < grc.not_before || not_after > grc.not_after {
            return Err(IdentityError::InvalidTimePeriod(format!(
                "{not_before}..{not_after} is empty or not inside the group root's {}..{}",
                grc.not_before, grc.not_after
            )));
        }
        if subject.public_key_der() == grc.public_key_der() {
            return Err(IdentityError::CircularChain(
                "the group root key cannot be a member key".into(),
            ));
        }
        let signer = Signer {
            key: &self.key,
            subject_dn: grc.subject_dn(),
            peer_name: grc.group_name(),
        };
        let gmc = sign_gmc(
            &signer,
            grc.group_name(),
            &subject,
            &roles,
            not_before,
            not_after,
        )?;
        GmcChain::from_gmcs(vec![gmc])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::IdentityCertificate;
    use crate::peer_name::Authority;

    #[test]
    fn create_and_reload() {
        let root = GroupRoot::create("Chess.club", "Chess Club").unwrap();
        let grc = root.certificate();
        assert_eq!(root.group_name().classifier(), "Chess.club");
        assert_eq!(
            root.group_name().authority(),
            Authority::of_public_key(grc.public_key_der())
        );
        assert_eq!(root.key().public_key_der(), grc.public_key_der());
        assert_eq!(grc.friendly_name(), "Chess Club");
        assert!(grc.not_after() - grc.not_before() > 365 * 24 * 3600 * 999);
        let again = GroupRoot::from_parts(root.key().pkcs8_der(), grc.der()).unwrap();
        assert_eq!(again.certificate(), grc);
        assert_eq!(GroupRootCertificate::from_der(grc.der()).unwrap(), *grc);

        let other = GroupRoot::create("Chess.club", "Chess Club").unwrap();
        let e = GroupRoot::from_parts(other.key().pkcs8_der(), grc.der()).unwrap_err();
        assert_eq!(e.hresult(), crate::hresult::NTE_BAD_KEY);
    }

    #[test]
    fn create_at_uses_the_given_clock() {
        let t = 2_000_000_000;
        let root = GroupRoot::create_at("g", "G", t).unwrap();
        let grc = root.certificate();
        assert_eq!(grc.not_before(), t - ISSUE_CLOCK_SLACK_SECS);
        assert_eq!(grc.not_after(), t + IDENTITY_CERT_LIFETIME_DAYS * 86_400);
        for bad in [0, MAX_UNIX_TIME] {
            let e = GroupRoot::create_at("g", "G", bad).unwrap_err();
            assert_eq!(e.hresult(), crate::hresult::PEER_E_INVALID_TIME_PERIOD);
        }
    }

    #[test]
    fn identity_certificates_and_damaged_roots_are_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let idc = IdentityCertificate::issue(&key, "c", "Carol").unwrap();
        let e = GroupRootCertificate::from_der(idc.der()).unwrap_err();
        assert!(matches!(e, IdentityError::BadEncoding(_)), "{e:?}");
        let root = GroupRoot::create("", "").unwrap();
        assert_eq!(root.certificate().friendly_name(), "");
        let der = root.certificate().der();
        for i in 0..der.len() {
            let mut d = der.to_vec();
            d[i] ^= 0x01;
            assert!(GroupRootCertificate::from_der(&d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn issue_checks_roles_times_and_keys() {
        let root = GroupRoot::create("g", "G").unwrap();
        let grc = root.certificate();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let idc = IdentityCertificate::issue(&key, "", "Alice").unwrap();
        let (nb, na) = (grc.not_before(), grc.not_after());
        let chain = root.issue(&idc, &[Role::Admin], nb, na).unwrap();
        assert_eq!(chain.gmcs().len(), 1);
        assert_eq!(chain.leaf().issuer_peer_name(), root.group_name());
        let code = |r: Result<GmcChain>| r.unwrap_err().hresult();
        use crate::hresult::*;
        assert_eq!(code(root.issue(&idc, &[], nb, na)), E_INVALIDARG);
        assert_eq!(
            code(root.issue(&idc, &[Role::Member], nb - 1, na)),
            PEER_E_INVALID_TIME_PERIOD
        );
        assert_eq!(
            code(root.issue(&idc, &[Role::Member], nb, na + 1)),
            PEER_E_INVALID_TIME_PERIOD
        );
        assert_eq!(
            code(root.issue(&idc, &[Role::Member], nb + 5, nb + 5)),
            PEER_E_INVALID_TIME_PERIOD
        );
        let itself = Subject::new(
            PeerName::new(root.key().authority(), "").unwrap(),
            "",
            grc.public_key_der(),
        )
        .unwrap();
        assert_eq!(
            code(root.issue(itself, &[Role::Member], nb, na)),
            PEER_E_CIRCULAR_CHAIN_DETECTED
        );
    }
}
