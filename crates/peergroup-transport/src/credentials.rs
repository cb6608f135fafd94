//! What a node presents in the TLS handshake, and how the server side picks it by SNI.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Result, TransportError};
use crate::tls;

/// A certificate chain (end-entity first) and the private key of its end-entity certificate,
/// checked and loaded once so that each handshake only clones an `Arc`.
///
/// Keys are ECDSA P-256 or Ed25519 (the identity layer's algorithms); the key is held by
/// rustls' ring provider and never printed.
#[derive(Clone)]
pub struct Credentials {
    certified: Arc<CertifiedKey>,
}

impl Credentials {
    /// Loads `key` for signing and checks that it belongs to the first certificate of `chain`.
    ///
    /// Fails with [`TransportError::BadCredentials`] (`PEER_E_INVALID_CREDENTIAL`) for an empty
    /// chain, a key rustls cannot use, or a key that is not the end-entity certificate's.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        if chain.is_empty() {
            return Err(TransportError::BadCredentials(
                "the certificate chain is empty".into(),
            ));
        }
        let certified = CertifiedKey::from_der(chain, key, &tls::provider())
            .map_err(|e| TransportError::BadCredentials(e.to_string()))?;
        Ok(Credentials {
            certified: Arc::new(certified),
        })
    }

    /// [`Credentials::new`] with an identity layer key (PKCS#8 from
    /// [`PrivateKey::pkcs8_der`](peergroup_identity::PrivateKey::pkcs8_der)).
    pub fn from_identity(
        key: &peergroup_identity::PrivateKey,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<Self> {
        let der = PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec());
        Self::new(chain, PrivateKeyDer::Pkcs8(der))
    }

    /// Wraps an already loaded key without checking it (tests build forged credentials).
    #[cfg(test)]
    pub(crate) fn from_certified_key(certified: CertifiedKey) -> Self {
        Credentials {
            certified: Arc::new(certified),
        }
    }

    /// The chain presented to peers, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Credentials")
            .field("chain_len", &self.certified.cert.len())
            .finish_non_exhaustive()
    }
}

/// Chooses the server-side credentials for an incoming connection from the server name the
/// client asked for (TLS SNI). The group layer implements it: one name per group, see
/// `Node::connect` for what a name may be.
///
/// `resolve` runs inside the TLS handshake, so it must be quick and must not block. Returning
/// `None` refuses the handshake: the client gets [`TransportError::Refused`].
pub trait CredentialResolver: Send + Sync {
    /// The credentials to present for `server_name`, if this node serves it.
    fn resolve(&self, server_name: &str) -> Option<Credentials>;
}

/// A fixed table of names to credentials, for tests and simple nodes.
impl CredentialResolver for HashMap<String, Credentials> {
    fn resolve(&self, server_name: &str) -> Option<Credentials> {
        self.get(server_name).cloned()
    }
}

/// A resolver that serves nothing: a node that only connects out.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCredentials;

impl CredentialResolver for NoCredentials {
    fn resolve(&self, _server_name: &str) -> Option<Credentials> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergroup_identity::hresult::PEER_E_INVALID_CREDENTIAL;
    use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};

    fn cert_of(key: &PrivateKey) -> CertificateDer<'static> {
        let cert = IdentityCertificate::issue(key, "t", "Test").unwrap();
        CertificateDer::from(cert.der().to_vec())
    }

    #[test]
    fn both_identity_algorithms_load() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(alg).unwrap();
            let creds = Credentials::from_identity(&key, vec![cert_of(&key)]).unwrap();
            assert_eq!(creds.chain().len(), 1);
            assert!(!format!("{creds:?}").contains("key:"));
        }
    }

    #[test]
    fn a_key_of_another_certificate_or_no_chain_is_refused() {
        let a = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let b = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let e = Credentials::from_identity(&a, vec![cert_of(&b)]).unwrap_err();
        assert_eq!(e.hresult(), PEER_E_INVALID_CREDENTIAL, "{e}");
        let e = Credentials::from_identity(&a, vec![]).unwrap_err();
        assert_eq!(e.hresult(), PEER_E_INVALID_CREDENTIAL);
    }
}
