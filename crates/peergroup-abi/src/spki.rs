//! A minimal, bounded DER walk of an X.509 SubjectPublicKeyInfo, for `CERT_PUBLIC_KEY_INFO`.
//!
//! ```text
//! SubjectPublicKeyInfo ::= SEQUENCE {
//!     algorithm  SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL },
//!     subjectPublicKey BIT STRING }
//! ```
//!
//! Only definite lengths of up to four length bytes and single-byte tags are read; every
//! length is checked against what is left of the input, and the input must be consumed
//! exactly. The keys come from certificates the identity layer already parsed, so anything
//! else is refused rather than guessed at.

/// The parts of a SubjectPublicKeyInfo, borrowed from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spki<'a> {
    /// The algorithm's object identifier in dotted form, e.g. `1.2.840.10045.2.1`.
    pub algorithm: String,
    /// The encoded parameters (a whole DER element, e.g. a curve OID), or empty when absent.
    pub parameters: &'a [u8],
    /// The public key bits.
    pub key: &'a [u8],
    /// Unused bits in the last byte of `key` (0..=7).
    pub unused_bits: u8,
}

const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
/// Longest object identifier accepted, in content bytes.
const MAX_OID_BYTES: usize = 64;

/// Reads one element: (tag, content, rest). `None` for a multi-byte tag, an indefinite or
/// over-long length, or a length past the end of the input.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = match first {
        0x00..=0x7f => usize::from(first),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// Reads an element that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

/// Renders the content of an OBJECT IDENTIFIER in dotted form; `None` when malformed (empty,
/// too long, a truncated or non-minimal arc, or an arc beyond 64 bits).
pub fn oid_to_dotted(content: &[u8]) -> Option<String> {
    if content.is_empty() || content.len() > MAX_OID_BYTES {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // a leading zero septet is not minimal
        }
        if value > (u64::MAX >> 7) {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(value);
            value = 0;
        }
    }
    if in_arc {
        return None;
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    Some(out)
}

/// Splits a DER SubjectPublicKeyInfo into its parts; `None` when it is not one.
pub fn parse_spki(der: &[u8]) -> Option<Spki<'_>> {
    let (spki, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (algorithm, rest) = expect(spki, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let (oid, parameters) = expect(algorithm, OBJECT_IDENTIFIER)?;
    if !parameters.is_empty() {
        // At most one element, and exactly one.
        let (_, _, after) = element(parameters)?;
        if !after.is_empty() {
            return None;
        }
    }
    let (&unused_bits, key) = bits.split_first()?;
    if unused_bits > 7 || (key.is_empty() && unused_bits != 0) {
        return None;
    }
    Some(Spki {
        algorithm: oid_to_dotted(oid)?,
        parameters,
        key,
        unused_bits,
    })
}

/// One DER element with a definite length (short form, or long form up to four bytes).
fn tlv(tag: u8, content: &[u8]) -> Option<Vec<u8>> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = u32::try_from(len).ok()?.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    Some(out)
}

/// The content of an OBJECT IDENTIFIER in dotted form; `None` when malformed.
fn dotted_to_oid(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().ok())
        .collect::<Option<_>>()?;
    let (&a, rest) = arcs.split_first()?;
    let (&b, rest) = rest.split_first()?;
    if a > 2 || (a < 2 && b >= 40) {
        return None;
    }
    let mut out = Vec::new();
    for arc in std::iter::once(a.checked_mul(40)?.checked_add(b)?).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    (out.len() <= MAX_OID_BYTES).then_some(out)
}

/// The DER SubjectPublicKeyInfo of the parts a `CERT_PUBLIC_KEY_INFO` holds: the inverse of
/// [`parse_spki`]. `None` when the parts do not make one it accepts.
pub fn encode_spki(
    algorithm: &str,
    parameters: &[u8],
    key: &[u8],
    unused_bits: u8,
) -> Option<Vec<u8>> {
    let mut alg = tlv(OBJECT_IDENTIFIER, &dotted_to_oid(algorithm)?)?;
    alg.extend_from_slice(parameters);
    let mut body = tlv(SEQUENCE, &alg)?;
    let mut bits = vec![unused_bits];
    bits.extend_from_slice(key);
    body.extend(tlv(BIT_STRING, &bits)?);
    let der = tlv(SEQUENCE, &body)?;
    parse_spki(&der)?;
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_back_to_their_der() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(alg).unwrap();
            let der = key.public_key_der().to_vec();
            let p = parse_spki(&der).unwrap();
            assert_eq!(
                encode_spki(&p.algorithm, p.parameters, p.key, p.unused_bits).unwrap(),
                der
            );
        }
        assert_eq!(dotted_to_oid("2.999.1"), Some(vec![0x88, 0x37, 0x01]));
        assert!(encode_spki("1", &[], &[1], 0).is_none());
        assert!(encode_spki("1.2.3", &[], &[1], 9).is_none());
    }
    use peergroup_core::identity::{KeyAlgorithm, PrivateKey};

    const P256_CURVE: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

    #[test]
    fn ecdsa_p256_keys_decompose() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let spki = parse_spki(key.public_key_der()).unwrap();
        assert_eq!(spki.algorithm, "1.2.840.10045.2.1");
        assert_eq!(spki.parameters, &P256_CURVE);
        assert_eq!(spki.unused_bits, 0);
        assert_eq!(spki.key.len(), 65);
        assert_eq!(spki.key[0], 0x04, "uncompressed point");
    }

    #[test]
    fn ed25519_keys_have_no_parameters() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let spki = parse_spki(key.public_key_der()).unwrap();
        assert_eq!(spki.algorithm, "1.3.101.112");
        assert!(spki.parameters.is_empty());
        assert_eq!(spki.key.len(), 32);
    }

    #[test]
    fn rsa_shape_with_null_parameters_and_long_lengths() {
        // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING (0 unused, 300 bytes) }
        let mut key = vec![0u8; 300];
        key[0] = 0x30;
        let mut bits = vec![0x03, 0x82, 0x01, 0x2d, 0x00];
        bits.extend_from_slice(&key);
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let body_len = alg.len() + bits.len();
        let mut der = vec![0x30, 0x82, (body_len >> 8) as u8, body_len as u8];
        der.extend_from_slice(&alg);
        der.extend_from_slice(&bits);
        let spki = parse_spki(&der).unwrap();
        assert_eq!(spki.algorithm, "1.2.840.113549.1.1.1");
        assert_eq!(spki.parameters, &[0x05, 0x00]);
        assert_eq!(spki.key, &key[..]);
    }

    #[test]
    fn oids_render_in_dotted_form() {
        assert_eq!(oid_to_dotted(&[0x2b, 0x65, 0x70]).unwrap(), "1.3.101.112");
        assert_eq!(oid_to_dotted(&[0x88, 0x37]).unwrap(), "2.999");
        assert_eq!(oid_to_dotted(&[0x00]).unwrap(), "0.0");
        assert_eq!(oid_to_dotted(&[0x27]).unwrap(), "0.39");
        assert_eq!(oid_to_dotted(&[0x28]).unwrap(), "1.0");
        assert_eq!(oid_to_dotted(&[]), None);
        assert_eq!(oid_to_dotted(&[0x2b, 0x86]), None, "truncated arc");
        assert_eq!(oid_to_dotted(&[0x2b, 0x80, 0x01]), None, "non-minimal arc");
        assert_eq!(oid_to_dotted(&[0xff; 11]), None, "arc beyond 64 bits");
        assert_eq!(oid_to_dotted(&[0x01; 65]), None, "too long");
    }

    #[test]
    fn malformed_input_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let good = key.public_key_der().to_vec();
        // Every truncation fails, and so does trailing data.
        for n in 0..good.len() {
            assert!(parse_spki(&good[..n]).is_none(), "truncated at {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse_spki(&trailing).is_none());
        // Indefinite length, five length bytes, a wrong outer tag, a multi-byte tag.
        assert!(parse_spki(&[0x30, 0x80, 0x00, 0x00]).is_none());
        assert!(parse_spki(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).is_none());
        let mut wrong = good.clone();
        wrong[0] = 0x31;
        assert!(parse_spki(&wrong).is_none());
        assert!(parse_spki(&[0x1f, 0x01, 0x00]).is_none());
        // A length that claims more than there is.
        assert!(parse_spki(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        // Unused bits above 7.
        let alg = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
        let mut der = vec![0x30, (alg.len() + 4) as u8];
        der.extend_from_slice(&alg);
        der.extend_from_slice(&[0x03, 0x02, 0x08, 0xff]);
        assert!(parse_spki(&der).is_none());
        der[alg.len() + 4] = 0x01;
        assert_eq!(parse_spki(&der).unwrap().unused_bits, 1);
        // Garbage.
        assert!(parse_spki(b"not der at all").is_none());
    }
}
