//! Peer names: `authority.classifier`.
//!
//! A secure name's authority is the SHA-1 of the owner's public key (40 lowercase hex digits),
//! as on Windows, so anyone holding the certificate can check that a name belongs to a key.
//! An unsecured name has the authority `0` and proves nothing.

use std::fmt;
use std::str::FromStr;

use crate::error::{IdentityError, Result};

/// Longest classifier, in characters (Windows: 150 including the terminating NUL).
pub const MAX_CLASSIFIER_CHARS: usize = 149;

/// Longest text accepted as a peer name: a 40-digit authority, the dot and a classifier.
pub const MAX_PEER_NAME_CHARS: usize = 40 + 1 + MAX_CLASSIFIER_CHARS;

/// The part of a peer name before the first dot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Authority {
    /// SHA-1 of the owner's SubjectPublicKeyInfo.
    Secure([u8; 20]),
    /// The authority `0`: anyone may use the name.
    Unsecured,
}

impl Authority {
    /// The authority of a key: SHA-1 over its DER SubjectPublicKeyInfo.
    pub fn of_public_key(spki_der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, spki_der);
        let mut out = [0u8; 20];
        out.copy_from_slice(digest.as_ref());
        Authority::Secure(out)
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authority::Secure(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02x}")),
            Authority::Unsecured => f.write_str("0"),
        }
    }
}

/// A validated peer name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerName {
    authority: Authority,
    classifier: String,
}

impl PeerName {
    /// Builds a name from its parts, checking the classifier.
    pub fn new(authority: Authority, classifier: &str) -> Result<Self> {
        validate_classifier(classifier)?;
        Ok(PeerName {
            authority,
            classifier: classifier.to_owned(),
        })
    }

    /// The authority part.
    pub fn authority(&self) -> Authority {
        self.authority
    }

    /// The classifier part (may be empty).
    pub fn classifier(&self) -> &str {
        &self.classifier
    }

    /// True when the authority is a key hash.
    pub fn is_secure(&self) -> bool {
        matches!(self.authority, Authority::Secure(_))
    }

    /// The same authority with another classifier (`PeerCreatePeerName`).
    pub fn with_classifier(&self, classifier: &str) -> Result<Self> {
        PeerName::new(self.authority, classifier)
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.authority, self.classifier)
    }
}

impl FromStr for PeerName {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| IdentityError::InvalidPeerName(format!("{why}: {:?}", truncate(s)));
        if s.chars().count() > MAX_PEER_NAME_CHARS {
            return Err(bad("too long"));
        }
        let (authority, classifier) = s.split_once('.').ok_or_else(|| bad("no '.'"))?;
        let authority =
            if authority == "0" {
                Authority::Unsecured
            } else {
                Authority::Secure(parse_hex20(authority).ok_or_else(|| {
                    bad("the authority must be 0 or 40 lowercase hexadecimal digits")
                })?)
            };
        match validate_classifier(classifier) {
            Ok(()) => {}
            Err(e @ IdentityError::ClassifierTooLong(_)) => return Err(e),
            Err(_) => {
                return Err(bad(
                    "the classifier holds white space or a control character",
                ))
            }
        }
        Ok(PeerName {
            authority,
            classifier: classifier.to_owned(),
        })
    }
}

/// Checks a classifier: at most [`MAX_CLASSIFIER_CHARS`], no white space, no control characters.
pub fn validate_classifier(classifier: &str) -> Result<()> {
    let chars = classifier.chars().count();
    if chars > MAX_CLASSIFIER_CHARS {
        return Err(IdentityError::ClassifierTooLong(chars));
    }
    if let Some(c) = classifier
        .chars()
        .find(|c| c.is_control() || c.is_whitespace())
    {
        return Err(IdentityError::InvalidClassifier(format!(
            "character {c:?} is not allowed"
        )));
    }
    Ok(())
}

fn parse_hex20(s: &str) -> Option<[u8; 20]> {
    let bytes = s.as_bytes();
    if bytes.len() != 40 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 20];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_secure_and_unsecured_names() {
        let n: PeerName = "0.Games".parse().unwrap();
        assert_eq!(n.authority(), Authority::Unsecured);
        assert_eq!(n.classifier(), "Games");
        let s = format!("{}.Chat.v2", "ab".repeat(20));
        let n: PeerName = s.parse().unwrap();
        assert!(n.is_secure());
        assert_eq!(n.classifier(), "Chat.v2");
        assert_eq!(n.to_string(), s);
        let empty: PeerName = format!("{}.", "01".repeat(20)).parse().unwrap();
        assert_eq!(empty.classifier(), "");
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "",
            "nodot",
            "1.x",
            "ABABABABABABABABABABABABABABABABABABABAB.x",
            &format!("{}.x", "a".repeat(39)),
            "0.has space",
            "0.tab\t",
        ] {
            let e = bad.parse::<PeerName>().unwrap_err();
            assert_eq!(
                e.hresult(),
                crate::hresult::PEER_E_INVALID_PEER_NAME,
                "{bad:?}"
            );
        }
        let long = format!("0.{}", "x".repeat(MAX_CLASSIFIER_CHARS + 1));
        assert_eq!(
            long.parse::<PeerName>().unwrap_err().hresult(),
            crate::hresult::PEER_E_CLASSIFIER_TOO_LONG
        );
    }

    #[test]
    fn authority_is_sha1_of_the_key() {
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
        assert_eq!(
            Authority::of_public_key(b"abc").to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(auth in proptest::array::uniform20(any::<u8>()),
                                          classifier in "[a-zA-Z0-9._\\-é]{0,149}") {
            let name = PeerName::new(Authority::Secure(auth), &classifier).unwrap();
            let back: PeerName = name.to_string().parse().unwrap();
            prop_assert_eq!(back, name);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = s.parse::<PeerName>();
        }
    }
}
