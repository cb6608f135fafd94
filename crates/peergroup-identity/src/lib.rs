//! Peer identities for Peergroup: the Windows Peer Identity Manager, rebuilt on ring and rcgen.
//!
//! An identity is a key pair with a self-signed X.509 certificate. Its peer name is
//! `authority.classifier`, the authority being the SHA-1 of the public key in 40 lowercase hex
//! digits. [`IdentityStore`] keeps identities on disk under `$PEERGROUP_HOME` with crash-safe
//! writes; [`IdentityError::hresult`] is the one table from this crate's errors to Windows
//! HRESULTs (NTE_*/CRYPT_E_* where the Microsoft RSA provider would have failed).
//! Group membership certificates (group roots, GMC chains, roles and their validation) are in
//! [`gmc`].
//!
//! ```
//! # let home = tempfile::tempdir().unwrap();
//! use peergroup_identity::IdentityStore;
//! let store = IdentityStore::open(home.path())?;
//! let alice = store.create(Some("chat"), Some("Alice"), None)?;
//! assert_eq!(store.friendly_name(&alice)?, "Alice");
//! let xml = store.public_xml(&alice)?; // hand this to an inviter
//! assert!(xml.starts_with("<PEERIDENTITYINFO"));
//! # Ok::<(), peergroup_identity::IdentityError>(())
//! ```

#![forbid(unsafe_code)]

pub mod cert;
pub mod documents;
pub mod error;
pub mod export;
pub mod fsutil;
pub mod gmc;
pub mod hresult;
mod identity;
pub mod keys;
pub mod peer_name;
mod store;
pub mod xml;

pub use cert::IdentityCertificate;
pub use error::{IdentityError, Result};
pub use gmc::{
    issue_gmc, issue_gmc_at, validate_chain, Gmc, GmcChain, GroupRoot, GroupRootCertificate,
    Member, Role, Subject, MAX_CHAIN_LEN,
};
pub use identity::{Identity, NamePair};
pub use keys::{KeyAlgorithm, PrivateKey};
pub use peer_name::{Authority, PeerName, MAX_CLASSIFIER_CHARS};
pub use store::{default_home, validate_friendly_name, IdentityStore, MAX_FRIENDLY_NAME_CHARS};
