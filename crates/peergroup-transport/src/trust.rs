//! Trust decisions: the group layer says which certificate chains it accepts.
//!
//! The transport knows nothing of groups. In every handshake it hands the peer's chain to a
//! [`TrustPolicy`], and a chain the policy refuses fails the handshake: the peer never gets a
//! stream. The handshake's own signatures (that the peer holds the end-entity key) are checked
//! by the transport, not by the policy.

use std::collections::HashSet;

use rustls_pki_types::CertificateDer;

/// The role of the peer whose chain is being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The peer connected to us (it is the TLS client).
    Client,
    /// We connected to the peer (it is the TLS server).
    Server,
}

/// Why a policy refuses a chain. Each kind becomes the matching TLS alert, so the peer learns
/// the category (not the text, which stays in our logs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The chain does not decode or is not shaped as the policy expects (alert `bad_certificate`).
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// Well formed, but not trusted: unknown key, not a member, wrong group (alert
    /// `access_denied`).
    #[error("not trusted: {0}")]
    Untrusted(String),
    /// Outside its validity period (alert `certificate_expired`).
    #[error("certificate expired or not yet valid: {0}")]
    Expired(String),
    /// Revoked (alert `certificate_revoked`).
    #[error("certificate revoked: {0}")]
    Revoked(String),
}

/// Decides whether a peer's certificate chain is acceptable. Implemented by the group layer.
///
/// It is called inside the TLS handshake, must be quick, and must not block.
///
/// - As a client (`peer_side == Side::Server`), `server_name` is the name we asked for, so the
///   policy can check the chain is right for that name (group).
/// - As a server (`peer_side == Side::Client`), `server_name` is `None`: rustls does not show
///   the SNI to the client-certificate check. The policy accepts a chain acceptable for *any*
///   name this node serves; after the handshake, [`Connection::server_name`] and
///   [`Connection::peer_chain`] give the pair so the group layer can re-check that this chain
///   belongs to this name, and close with `NotAuthorized` if not.
///
/// `chain` is end-entity first, as the peer sent it; the end-entity certificate's key is the
/// one that signed the handshake.
///
/// [`Connection::server_name`]: crate::Connection::server_name
/// [`Connection::peer_chain`]: crate::Connection::peer_chain
pub trait TrustPolicy: Send + Sync {
    /// Accepts or refuses the peer's chain.
    fn verify_peer(
        &self,
        peer_side: Side,
        server_name: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), TrustError>;
}

/// A policy that accepts a peer whose end-entity certificate is one of a fixed set (byte for
/// byte), whatever the name: for tests and for pairing two known identities.
#[derive(Clone, Debug, Default)]
pub struct PinnedCertificates {
    pinned: HashSet<Vec<u8>>,
}

impl PinnedCertificates {
    /// Pins the given certificates (DER).
    pub fn new<I, C>(certificates: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        PinnedCertificates {
            pinned: certificates
                .into_iter()
                .map(|c| c.as_ref().to_vec())
                .collect(),
        }
    }
}

impl TrustPolicy for PinnedCertificates {
    fn verify_peer(
        &self,
        _peer_side: Side,
        _server_name: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), TrustError> {
        let leaf = chain
            .first()
            .ok_or_else(|| TrustError::BadCertificate("empty chain".into()))?;
        if self.pinned.contains(leaf.as_ref()) {
            Ok(())
        } else {
            Err(TrustError::Untrusted("certificate is not pinned".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_accepts_only_its_certificates() {
        let policy = PinnedCertificates::new([b"cert-a".as_slice()]);
        let a = CertificateDer::from(b"cert-a".to_vec());
        let b = CertificateDer::from(b"cert-b".to_vec());
        assert_eq!(policy.verify_peer(Side::Client, None, &[a]), Ok(()));
        assert!(matches!(
            policy.verify_peer(Side::Server, Some("x"), &[b]),
            Err(TrustError::Untrusted(_))
        ));
        assert!(matches!(
            policy.verify_peer(Side::Client, None, &[]),
            Err(TrustError::BadCertificate(_))
        ));
    }
}
