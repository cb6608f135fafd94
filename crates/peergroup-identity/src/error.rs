//! The identity layer's error type and its one HRESULT table.

use crate::hresult::{self, HRESULT};

/// Everything that can go wrong in the identity layer.
///
/// Each variant says what went wrong in terms a caller can act on; [`IdentityError::hresult`]
/// is the single place where they become Windows HRESULTs.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The text is not a peer name (`authority.classifier`).
    #[error("invalid peer name: {0}")]
    InvalidPeerName(String),
    /// The classifier holds a character a classifier may not hold.
    #[error("invalid classifier: {0}")]
    InvalidClassifier(String),
    /// The classifier is longer than [`crate::MAX_CLASSIFIER_CHARS`].
    #[error("classifier is {0} characters long, the limit is {max}", max = crate::MAX_CLASSIFIER_CHARS)]
    ClassifierTooLong(usize),
    /// The friendly name is empty where it may not be, too long, or holds control characters.
    #[error("invalid friendly name: {0}")]
    InvalidFriendlyName(String),
    /// No identity of that name is in the store.
    #[error("identity {0} not found")]
    NotFound(String),
    /// An identity of that name is already in the store.
    #[error("identity {0} already exists")]
    AlreadyExists(String),
    /// An imported identity's key is already held in the store under that name.
    #[error("the key of identity {0} is already in the store")]
    KeyExists(String),
    /// The identity still belongs to groups; delete them first.
    #[error("identity {0} still has groups")]
    GroupsExist(String),
    /// The key material cannot be used (unknown algorithm, malformed PKCS#8, wrong curve).
    #[error("bad key: {0}")]
    BadKey(String),
    /// The identity's directory exists but its private key file is missing.
    #[error("identity {0} has no private key")]
    NoKey(String),
    /// A signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Authenticated decryption failed although the password was right: the data was altered.
    #[error("the data was altered or corrupted")]
    Tampered,
    /// The password does not open the export.
    #[error("wrong password")]
    WrongPassword,
    /// The binary data ends before its declared structure does.
    #[error("data is truncated: {0}")]
    Truncated(&'static str),
    /// Bytes that do not decode (bad base64, wrong magic, bad DER, bad payload).
    #[error("bad encoding: {0}")]
    BadEncoding(String),
    /// A version this implementation does not read.
    #[error("unsupported version: {0}")]
    UnsupportedVersion(String),
    /// Not the XML document expected (wrong root, missing element, not XML at all, too large).
    #[error("malformed document: {0}")]
    MalformedDocument(String),
    /// A stored identity could not be read back; the store needs repair.
    #[error("identity store entry {path} is corrupted: {why}")]
    StoreCorrupted {
        /// The file or directory concerned.
        path: String,
        /// What was wrong with it.
        why: String,
    },
    /// A GMC chain is longer than [`crate::gmc::MAX_CHAIN_LEN`]; the length counts the root.
    #[error("GMC chain of length {0} (counting the group root) exceeds {max}", max = crate::gmc::MAX_CHAIN_LEN)]
    ChainTooLong(usize),
    /// A key appears twice in a GMC chain.
    #[error("circular GMC chain: {0}")]
    CircularChain(String),
    /// A validity period is empty, does not nest inside its issuer's, or does not contain now.
    #[error("invalid time period: {0}")]
    InvalidTimePeriod(String),
    /// A role was granted (or would be) by someone whose roles do not allow it.
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// A GMC chain does not lead to the group root: wrong group, broken link, bad signature.
    #[error("not trusted: {0}")]
    Untrusted(String),
    /// A GMC was to be issued with no role at all.
    #[error("a membership certificate needs at least one role")]
    NoRoles,
    /// An operation of the crypto library failed for no reason it would say.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of the identity layer.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

impl IdentityError {
    /// The HRESULT a Windows program would see for this error.
    ///
    /// This is the one mapping table of the identity crate. Key and crypto failures take the
    /// values the Microsoft RSA provider and certificate layer return (NTE_*, CRYPT_E_*); a
    /// wrong export password takes the value of Windows' PFX import; the rest are PEER_E_*.
    /// GMC chain failures take the values `PeerGroupJoin` and `PeerGroupCreateInvitation`
    /// document: a chain that does not lead to the group root is an untrusted invitation.
    pub fn hresult(&self) -> HRESULT {
        use IdentityError::*;
        match self {
            InvalidPeerName(_) => hresult::PEER_E_INVALID_PEER_NAME,
            InvalidClassifier(_) => hresult::PEER_E_INVALID_CLASSIFIER,
            ClassifierTooLong(_) => hresult::PEER_E_CLASSIFIER_TOO_LONG,
            InvalidFriendlyName(_) => hresult::PEER_E_INVALID_FRIENDLY_NAME,
            NotFound(_) => hresult::PEER_E_NOT_FOUND,
            AlreadyExists(_) => hresult::PEER_E_ALREADY_EXISTS,
            KeyExists(_) => hresult::NTE_EXISTS,
            GroupsExist(_) => hresult::PEER_E_GROUPS_EXIST,
            BadKey(_) => hresult::NTE_BAD_KEY,
            NoKey(_) => hresult::NTE_NO_KEY,
            BadSignature(_) => hresult::NTE_BAD_SIGNATURE,
            Tampered => hresult::NTE_BAD_DATA,
            WrongPassword => hresult::HRESULT_INVALID_PASSWORD,
            Truncated(_) => hresult::NTE_BAD_LEN,
            BadEncoding(_) => hresult::CRYPT_E_BAD_ENCODE,
            UnsupportedVersion(_) => hresult::NTE_BAD_VER,
            MalformedDocument(_) => hresult::E_INVALIDARG,
            StoreCorrupted { .. } => hresult::PEER_E_CERT_STORE_CORRUPTED,
            ChainTooLong(_) => hresult::PEER_E_CHAIN_TOO_LONG,
            CircularChain(_) => hresult::PEER_E_CIRCULAR_CHAIN_DETECTED,
            InvalidTimePeriod(_) => hresult::PEER_E_INVALID_TIME_PERIOD,
            NotAuthorized(_) => hresult::PEER_E_NOT_AUTHORIZED,
            Untrusted(_) => hresult::PEER_E_INVITATION_NOT_TRUSTED,
            NoRoles => hresult::E_INVALIDARG,
            Crypto(_) => hresult::NTE_FAIL,
            Io { source, .. } => io_hresult(source),
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        IdentityError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Maps an OS error the way Windows' file APIs would report it.
pub fn io_hresult(e: &std::io::Error) -> HRESULT {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => hresult::HRESULT_FILE_NOT_FOUND,
        PermissionDenied => hresult::E_ACCESSDENIED,
        StorageFull => hresult::PEER_E_DISK_FULL,
        OutOfMemory => hresult::E_OUTOFMEMORY,
        _ => hresult::E_FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hresult::*;

    #[test]
    fn table_uses_crypto_codes_where_the_rsa_provider_would() {
        assert_eq!(IdentityError::BadKey("x".into()).hresult(), NTE_BAD_KEY);
        assert_eq!(
            IdentityError::BadSignature("x".into()).hresult(),
            NTE_BAD_SIGNATURE
        );
        assert_eq!(IdentityError::Tampered.hresult(), NTE_BAD_DATA);
        assert_eq!(IdentityError::NoKey("x".into()).hresult(), NTE_NO_KEY);
        assert_eq!(IdentityError::KeyExists("x".into()).hresult(), NTE_EXISTS);
        assert_eq!(IdentityError::WrongPassword.hresult() as u32, 0x80070056);
        assert_eq!(
            IdentityError::GroupsExist("x".into()).hresult(),
            PEER_E_GROUPS_EXIST
        );
        let disk_full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            IdentityError::io("write", "/x".as_ref(), disk_full).hresult(),
            PEER_E_DISK_FULL
        );
    }

    #[test]
    fn gmc_chain_errors_take_the_grouping_codes() {
        assert_eq!(
            IdentityError::ChainTooLong(25).hresult() as u32,
            0x8063_0703
        );
        assert_eq!(
            IdentityError::CircularChain("x".into()).hresult() as u32,
            0x8063_0706
        );
        assert_eq!(
            IdentityError::InvalidTimePeriod("x".into()).hresult() as u32,
            0x8063_0705
        );
        assert_eq!(
            IdentityError::NotAuthorized("x".into()).hresult() as u32,
            0x8063_2020
        );
        assert_eq!(
            IdentityError::Untrusted("x".into()).hresult() as u32,
            0x8063_0701
        );
        assert_eq!(IdentityError::NoRoles.hresult(), E_INVALIDARG);
        assert_eq!(
            IdentityError::Untrusted("x".into()).hresult(),
            PEER_E_INVITATION_NOT_TRUSTED
        );
        assert_eq!(
            IdentityError::ChainTooLong(25).hresult(),
            PEER_E_CHAIN_TOO_LONG
        );
    }
}
