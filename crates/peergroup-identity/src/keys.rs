//! Identity key pairs, generated and used with ring.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use x509_parser::prelude::FromDer as _;
use zeroize::Zeroizing;

use crate::error::{IdentityError, Result};
use crate::peer_name::Authority;

/// The signature algorithms an identity key may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256: the default, accepted by every TLS 1.3 stack.
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A private key, held as PKCS#8 DER that is wiped from memory when dropped.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("authority", &self.authority().to_string())
            .finish_non_exhaustive()
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey {
            algorithm: self.algorithm,
            pkcs8: self.pkcs8.clone(),
            spki: self.spki.clone(),
        }
    }
}

impl PrivateKey {
    /// Generates a new key pair from the system's secure random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self> {
        let rng = SystemRandom::new();
        let doc = match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| IdentityError::Crypto("key generation failed"))?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Reads a PKCS#8 DER private key of a supported algorithm.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair = rcgen::KeyPair::try_from(der)
            .map_err(|e| IdentityError::BadKey(format!("not a usable PKCS#8 key: {e}")))?;
        let algorithm = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            KeyAlgorithm::EcdsaP256
        } else if pair.algorithm() == &rcgen::PKCS_ED25519 {
            KeyAlgorithm::Ed25519
        } else {
            return Err(IdentityError::BadKey(
                "only ECDSA P-256 and Ed25519 identity keys are supported".into(),
            ));
        };
        use rcgen::PublicKeyData as _;
        Ok(PrivateKey {
            algorithm,
            spki: pair.subject_public_key_info(),
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The private key as PKCS#8 DER. Handle with care.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The peer-name authority of this key.
    pub fn authority(&self) -> Authority {
        Authority::of_public_key(&self.spki)
    }

    /// Signs `message` (ECDSA signatures are ASN.1 DER, as in X.509 and TLS).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &self.pkcs8,
                    &rng,
                )
                .map_err(|_| IdentityError::BadKey("ECDSA key rejected".into()))?;
                let sig = pair
                    .sign(&rng, message)
                    .map_err(|_| IdentityError::Crypto("signing failed"))?;
                Ok(sig.as_ref().to_vec())
            }
            KeyAlgorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .map_err(|_| IdentityError::BadKey("Ed25519 key rejected".into()))?;
                debug_assert!(!pair.public_key().as_ref().is_empty());
                Ok(pair.sign(message).as_ref().to_vec())
            }
        }
    }

    /// The key in the form rcgen signs certificates with.
    pub(crate) fn rcgen_key_pair(&self) -> Result<rcgen::KeyPair> {
        let pair = rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .map_err(|e| IdentityError::BadKey(e.to_string()))?;
        debug_assert!(pair.algorithm() == self.algorithm.rcgen());
        Ok(pair)
    }
}

/// Verifies `signature` over `message` with a DER SubjectPublicKeyInfo of a supported algorithm.
pub fn verify_signature(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| IdentityError::BadKey(format!("public key does not decode: {e}")))?;
    let oid = spki.algorithm.algorithm.to_id_string();
    let alg: &dyn signature::VerificationAlgorithm = match oid.as_str() {
        "1.2.840.10045.2.1" => &signature::ECDSA_P256_SHA256_ASN1,
        "1.3.101.112" => &signature::ED25519,
        other => {
            return Err(IdentityError::BadKey(format!(
                "unsupported key algorithm {other}"
            )))
        }
    };
    signature::UnparsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
        .verify(message, signature)
        .map_err(|_| IdentityError::BadSignature("signature does not verify".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_each_algorithm() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(alg).unwrap();
            let sig = key.sign(b"hello").unwrap();
            verify_signature(key.public_key_der(), b"hello", &sig).unwrap();
            let e = verify_signature(key.public_key_der(), b"hellO", &sig).unwrap_err();
            assert_eq!(e.hresult(), crate::hresult::NTE_BAD_SIGNATURE);
            let again = PrivateKey::from_pkcs8(key.pkcs8_der()).unwrap();
            assert_eq!(again.algorithm(), alg);
            assert_eq!(again.authority(), key.authority());
        }
    }

    #[test]
    fn garbage_key_is_nte_bad_key() {
        let e = PrivateKey::from_pkcs8(b"\x30\x03\x02\x01\x00").unwrap_err();
        assert_eq!(e.hresult(), crate::hresult::NTE_BAD_KEY);
    }
}
