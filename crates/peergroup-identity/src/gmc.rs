//! Group membership certificates (GMCs): who belongs to a group, with which roles, until when.
//!
//! A group has a root key pair and a self-signed root certificate ([`GroupRoot`],
//! [`GroupRootCertificate`]); the group's peer name is derived from the root key as an
//! identity's is from its key. Every member holds a [`GmcChain`]: its own GMC, signed by its
//! issuer, whose GMC is signed by its issuer, up to a GMC signed by the group root. A GMC is
//! an X.509 certificate over the member's identity key, so the chain is also the member's TLS
//! certificate chain; the group, roles and issuer are in a custom extension
//! ([`GMC_EXTENSION_OID`]).
//!
//! Roles ([`Role`]) decide who may issue: admins anything, inviting members inviting
//! members and members, members nothing. No GMC outlives its issuer's, and chains are at most
//! [`MAX_CHAIN_LEN`] long, counting the root (see [`chain`] for the count).
//!
//! ```
//! use peergroup_identity::gmc::{issue_gmc, validate_chain, GroupRoot, Role};
//! use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
//!
//! // The creator makes the group and its own admin GMC.
//! let root = GroupRoot::create("chess", "Chess Club")?;
//! let grc = root.certificate();
//! let alice_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
//! let alice = IdentityCertificate::issue(&alice_key, "", "Alice")?;
//! let alice_chain = root.issue(&alice, &[Role::Admin], grc.not_before(), grc.not_after())?;
//!
//! // Alice invites Bob (his identity came to her as PeerIdentityGetXML's document).
//! let bob_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
//! let bob = IdentityCertificate::issue(&bob_key, "", "Bob")?;
//! let bob_chain = issue_gmc(&alice_key, &alice_chain, &bob, &[Role::Member], None)?;
//!
//! // Anyone holding the root certificate checks Bob's chain, e.g. from his TLS handshake.
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
//! let member = validate_chain(grc, &bob_chain.to_der_list(), now)?;
//! assert_eq!(member.peer_name(), bob.peer_name());
//! assert_eq!(member.roles(), [Role::Member]);
//! # Ok::<(), peergroup_identity::IdentityError>(())
//! ```

pub mod certificate;
pub mod chain;
mod der;
pub mod extension;
pub mod role;
pub mod root;
#[cfg(test)]
mod tests;

pub use certificate::{Gmc, Subject, GMC_SERIAL_BYTES};
pub use chain::{
    issue_gmc, issue_gmc_at, validate_chain, GmcChain, Member, ISSUE_CLOCK_SLACK_SECS,
    MAX_CHAIN_BYTES, MAX_CHAIN_LEN, MAX_GMCS,
};
pub use der::MAX_UNIX_TIME;
pub use extension::{GMC_EXTENSION_OID, GMC_EXTENSION_OID_DER, GMC_FORMAT_VERSION};
pub use role::{GuidParts, Role};
pub use root::{GroupRoot, GroupRootCertificate};
