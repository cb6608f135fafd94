//! The identity certificate (IDC): a self-signed X.509 certificate over the identity's key.
//!
//! The subject carries the friendly name as its common name and the peer name as its
//! pseudonym (id-at-pseudonym, 2.5.4.65), so the certificate alone is everything an inviter
//! needs. Renaming an identity re-issues the certificate with the same key.

use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{IdentityError, Result};
use crate::keys::PrivateKey;
use crate::peer_name::{Authority, PeerName};

/// OID of the subject attribute holding the peer name (id-at-pseudonym).
pub const PEER_NAME_ATTRIBUTE_OID: &str = "2.5.4.65";

/// Largest certificate accepted from outside, in bytes.
pub const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

/// How long an identity certificate is valid: Windows' "infinite", 1000 years.
pub const IDENTITY_CERT_LIFETIME_DAYS: i64 = 365_250;

/// A parsed and verified identity certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityCertificate {
    der: Vec<u8>,
    spki: Vec<u8>,
    peer_name: PeerName,
    friendly_name: String,
    not_before: i64,
    not_after: i64,
}

impl IdentityCertificate {
    /// Issues a new self-signed certificate for `key`, naming it `key-authority.classifier`.
    pub fn issue(key: &PrivateKey, classifier: &str, friendly_name: &str) -> Result<Self> {
        let peer_name = PeerName::new(key.authority(), classifier)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| IdentityError::BadEncoding(e.to_string()))?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, friendly_name);
        dn.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 65]),
            peer_name.to_string(),
        );
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        // An hour of slack for peers whose clocks run behind.
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(IDENTITY_CERT_LIFETIME_DAYS);
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| IdentityError::Crypto("random source failed"))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
        let cert = params
            .self_signed(&key.rcgen_key_pair()?)
            .map_err(|e| IdentityError::Crypto(leak_message(e)))?;
        Self::from_der(cert.der())
    }

    /// Parses a certificate, checks its self-signature and that its peer name belongs to its key.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(IdentityError::BadEncoding(format!(
                "certificate of {} bytes exceeds the limit of {MAX_CERTIFICATE_BYTES}",
                der.len()
            )));
        }
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::BadEncoding(format!("certificate does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(IdentityError::BadEncoding(
                "trailing bytes after the certificate".into(),
            ));
        }
        cert.verify_signature(None).map_err(|e| {
            IdentityError::BadSignature(format!("identity certificate self-signature: {e}"))
        })?;
        let spki = cert.public_key().raw.to_vec();
        let mut peer_name = None;
        let mut friendly_name = None;
        for attr in cert.subject().iter_attributes() {
            let oid = attr.attr_type().to_id_string();
            let value = attr.as_str().ok();
            match oid.as_str() {
                PEER_NAME_ATTRIBUTE_OID => peer_name = value,
                "2.5.4.3" => friendly_name = value,
                _ => {}
            }
        }
        let peer_name: PeerName = peer_name
            .ok_or_else(|| IdentityError::BadEncoding("certificate names no peer".into()))?
            .parse()?;
        if peer_name.authority() != Authority::of_public_key(&spki) {
            return Err(IdentityError::BadSignature(
                "the peer name's authority is not the certificate key's hash".into(),
            ));
        }
        Ok(IdentityCertificate {
            der: der.to_vec(),
            spki,
            friendly_name: friendly_name.unwrap_or_default().to_owned(),
            peer_name,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The certificate as DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The public key as DER SubjectPublicKeyInfo (Windows' `CERT_PUBLIC_KEY_INFO`).
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The peer name the certificate was issued for.
    pub fn peer_name(&self) -> &PeerName {
        &self.peer_name
    }

    /// The friendly name at the time of issue.
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
}

fn leak_message(e: rcgen::Error) -> &'static str {
    match e {
        rcgen::Error::RingUnspecified => "certificate signing failed",
        _ => "certificate could not be built",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    #[test]
    fn issued_certificates_verify_and_name_their_key() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(alg).unwrap();
            let cert = IdentityCertificate::issue(&key, "Chat", "Alice Ä").unwrap();
            assert_eq!(cert.peer_name().authority(), key.authority());
            assert_eq!(cert.peer_name().classifier(), "Chat");
            assert_eq!(cert.friendly_name(), "Alice Ä");
            assert_eq!(cert.public_key_der(), key.public_key_der());
            assert!(cert.not_after() - cert.not_before() > 365 * 24 * 3600 * 900);
            let again = IdentityCertificate::from_der(cert.der()).unwrap();
            assert_eq!(again, cert);
        }
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = IdentityCertificate::issue(&key, "x", "y").unwrap();
        let mut der = cert.der().to_vec();
        let n = der.len();
        der[n - 5] ^= 0x01; // inside the signature
        let e = IdentityCertificate::from_der(&der).unwrap_err();
        assert!(
            matches!(
                e,
                IdentityError::BadSignature(_) | IdentityError::BadEncoding(_)
            ),
            "{e:?}"
        );
        let e = IdentityCertificate::from_der(&der[..n - 10]).unwrap_err();
        assert!(matches!(e, IdentityError::BadEncoding(_)), "{e:?}");
    }
}
