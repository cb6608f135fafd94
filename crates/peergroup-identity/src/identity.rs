//! A loaded identity: its certificate and private key.

use crate::cert::IdentityCertificate;
use crate::documents;
use crate::keys::PrivateKey;
use crate::peer_name::PeerName;

/// An identity with its private key, as loaded from the store.
///
/// The key is wiped from memory when the last copy is dropped.
#[derive(Clone, Debug)]
pub struct Identity {
    pub(crate) certificate: IdentityCertificate,
    pub(crate) key: PrivateKey,
    pub(crate) friendly_name: String,
}

impl Identity {
    /// The identity's peer name.
    pub fn peer_name(&self) -> &PeerName {
        self.certificate.peer_name()
    }

    /// The display name.
    pub fn friendly_name(&self) -> &str {
        &self.friendly_name
    }

    /// The identity certificate.
    pub fn certificate(&self) -> &IdentityCertificate {
        &self.certificate
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The public identity document an inviter needs (`PeerIdentityGetXML`).
    pub fn public_xml(&self) -> String {
        documents::identity_info_xml(&self.certificate)
    }
}

/// A peer name with its friendly name: the item of identity and group enumerations
/// (Windows' `PEER_NAME_PAIR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePair {
    /// The peer name.
    pub peer_name: String,
    /// The friendly name.
    pub friendly_name: String,
}
