//! The password-protected identity export blob carried in `<PEERIDENTITYEXPORT><DATA>`.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic "PGIX" | version u8 = 1 | kdf u8 = 1 (PBKDF2-HMAC-SHA256) | iterations u32 | salt [16]
//! | verifier [32] | nonce [12] | AES-256-GCM ciphertext of the payload, with its 16-byte tag
//! ```
//!
//! PBKDF2 yields 64 bytes: an AES key and a check key. The verifier is HMAC-SHA256 under the
//! check key over the header and the peer name, so a wrong password is told apart from altered
//! data (which fails the GCM tag). The header and peer name are the GCM associated data too,
//! so neither can be swapped.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::cert::MAX_CERTIFICATE_BYTES;
use crate::error::{IdentityError, Result};

const MAGIC: &[u8; 4] = b"PGIX";
const VERSION: u8 = 1;
const KDF_PBKDF2_SHA256: u8 = 1;
const SALT_LEN: usize = 16;
const VERIFIER_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 4 + 1 + 1 + 4 + SALT_LEN + VERIFIER_LEN + NONCE_LEN;
const VERIFIER_OFFSET: usize = 4 + 1 + 1 + 4 + SALT_LEN;

/// PBKDF2 rounds used for new exports (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewest rounds an export may declare.
pub const MIN_ITERATIONS: u32 = 1_000;
/// Most rounds an import will run, so a hostile blob cannot pin the CPU for long.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Largest private key accepted in a payload.
pub const MAX_KEY_BYTES: usize = 8 * 1024;
/// Largest friendly name accepted in a payload, in bytes.
pub const MAX_FRIENDLY_NAME_BYTES: usize = 4 * 1024;

/// What an export protects: the friendly name, the certificate and the private key.
pub struct ExportPayload {
    /// The identity's friendly name.
    pub friendly_name: String,
    /// The identity certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The private key, PKCS#8 DER (wiped on drop).
    pub pkcs8: Zeroizing<Vec<u8>>,
}

impl ExportPayload {
    /// Encodes the payload: version u8, then u16/u32/u32 length-prefixed fields.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            16 + self.friendly_name.len() + self.certificate_der.len() + self.pkcs8.len(),
        ));
        out.push(1);
        out.extend_from_slice(&(self.friendly_name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.friendly_name.as_bytes());
        out.extend_from_slice(&(self.certificate_der.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.certificate_der);
        out.extend_from_slice(&(self.pkcs8.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.pkcs8);
        out
    }

    /// Decodes a payload, refusing oversize fields and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Cursor(bytes);
        if r.u8()? != 1 {
            return Err(IdentityError::UnsupportedVersion("export payload".into()));
        }
        let name_len = r.u16()? as usize;
        if name_len > MAX_FRIENDLY_NAME_BYTES {
            return Err(IdentityError::BadEncoding("friendly name too long".into()));
        }
        let friendly_name = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| IdentityError::BadEncoding("friendly name is not UTF-8".into()))?
            .to_owned();
        let cert_len = r.u32()? as usize;
        if cert_len > MAX_CERTIFICATE_BYTES {
            return Err(IdentityError::BadEncoding("certificate too long".into()));
        }
        let certificate_der = r.take(cert_len)?.to_vec();
        let key_len = r.u32()? as usize;
        if key_len > MAX_KEY_BYTES {
            return Err(IdentityError::BadEncoding("key too long".into()));
        }
        let pkcs8 = Zeroizing::new(r.take(key_len)?.to_vec());
        if !r.0.is_empty() {
            return Err(IdentityError::BadEncoding(
                "trailing bytes after the payload".into(),
            ));
        }
        Ok(ExportPayload {
            friendly_name,
            certificate_der,
            pkcs8,
        })
    }
}

/// A decoded (still encrypted) export blob.
#[derive(Debug)]
pub struct SealedExport<'a> {
    header: &'a [u8],
    iterations: u32,
    salt: &'a [u8],
    verifier: &'a [u8],
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
}

impl<'a> SealedExport<'a> {
    /// Splits a blob into its fields, checking magic, version, KDF and bounds. No crypto runs.
    pub fn decode(blob: &'a [u8]) -> Result<Self> {
        if blob.len() < 4 {
            return Err(IdentityError::Truncated("export blob"));
        }
        if &blob[..4] != MAGIC {
            return Err(IdentityError::BadEncoding(
                "not a Peergroup identity export".into(),
            ));
        }
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(IdentityError::Truncated("export blob"));
        }
        if blob[4] != VERSION {
            return Err(IdentityError::UnsupportedVersion(format!(
                "identity export version {}",
                blob[4]
            )));
        }
        if blob[5] != KDF_PBKDF2_SHA256 {
            return Err(IdentityError::UnsupportedVersion(format!(
                "key derivation {}",
                blob[5]
            )));
        }
        let iterations = u32::from_be_bytes(blob[6..10].try_into().expect("4 bytes"));
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(IdentityError::BadEncoding(format!(
                "{iterations} key-derivation rounds is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        Ok(SealedExport {
            header: &blob[..HEADER_LEN],
            iterations,
            salt: &blob[10..10 + SALT_LEN],
            verifier: &blob[VERIFIER_OFFSET..VERIFIER_OFFSET + VERIFIER_LEN],
            nonce: blob[HEADER_LEN - NONCE_LEN..HEADER_LEN]
                .try_into()
                .expect("12 bytes"),
            ciphertext: &blob[HEADER_LEN..],
        })
    }

    /// The declared PBKDF2 rounds.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Decrypts with `password`; `peer_name` must be the name the export was made for.
    pub fn open(&self, peer_name: &str, password: &str) -> Result<ExportPayload> {
        let plain = self.open_bytes(peer_name, password)?;
        ExportPayload::decode(&plain).map_err(|_| IdentityError::Tampered)
    }

    /// Decrypts any payload sealed with [`seal_bytes`] for `context` (the group layer's
    /// configuration export reuses this protection). A wrong password or context is
    /// [`IdentityError::WrongPassword`]; altered ciphertext is [`IdentityError::Tampered`].
    pub fn open_bytes(&self, context: &str, password: &str) -> Result<Zeroizing<Vec<u8>>> {
        let peer_name = context;
        let keys = derive(password, self.salt, self.iterations);
        let check = hmac::Key::new(hmac::HMAC_SHA256, &keys[32..]);
        let mut signed = Vec::with_capacity(HEADER_LEN + peer_name.len());
        signed.extend_from_slice(&self.header[..VERIFIER_OFFSET]);
        signed.extend_from_slice(peer_name.as_bytes());
        hmac::verify(&check, &signed, self.verifier).map_err(|_| IdentityError::WrongPassword)?;
        let mut buf = Zeroizing::new(self.ciphertext.to_vec());
        let plain = aead_key(&keys[..32])?
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(associated_data(self.header, peer_name)),
                &mut buf,
            )
            .map_err(|_| IdentityError::Tampered)?
            .len();
        buf.truncate(plain);
        Ok(buf)
    }
}

/// Encrypts a payload for `peer_name` under `password`.
pub fn seal(
    peer_name: &str,
    payload: &ExportPayload,
    password: &str,
    iterations: u32,
) -> Result<Vec<u8>> {
    seal_bytes(peer_name, &payload.encode(), password, iterations)
}

/// Encrypts any `plaintext` under `password`, bound to `context` (which the importer must
/// name again): the blob format of identity exports, for other exports of secrets.
pub fn seal_bytes(
    context: &str,
    plaintext: &[u8],
    password: &str,
    iterations: u32,
) -> Result<Vec<u8>> {
    let peer_name = context;
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(IdentityError::BadEncoding(format!(
            "{iterations} rounds is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
        )));
    }
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut nonce))
        .map_err(|_| IdentityError::Crypto("random source failed"))?;
    let keys = derive(password, &salt, iterations);
    let mut blob = Vec::with_capacity(HEADER_LEN + 256);
    blob.extend_from_slice(MAGIC);
    blob.push(VERSION);
    blob.push(KDF_PBKDF2_SHA256);
    blob.extend_from_slice(&iterations.to_be_bytes());
    blob.extend_from_slice(&salt);
    let mut signed = blob.clone();
    signed.extend_from_slice(peer_name.as_bytes());
    let check = hmac::Key::new(hmac::HMAC_SHA256, &keys[32..]);
    blob.extend_from_slice(hmac::sign(&check, &signed).as_ref());
    blob.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(plaintext.to_vec());
    let aad = associated_data(&blob, peer_name);
    aead_key(&keys[..32])?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut *body,
        )
        .map_err(|_| IdentityError::Crypto("encryption failed"))?;
    blob.extend_from_slice(&body);
    Ok(blob)
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).expect("bounded above zero"),
        salt,
        password.as_bytes(),
        &mut *out,
    );
    out
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&aead::AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| IdentityError::Crypto("AES key setup failed"))
}

fn associated_data(header: &[u8], peer_name: &str) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(peer_name.as_bytes());
    aad
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(IdentityError::Truncated("export payload"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hresult::*;

    fn payload() -> ExportPayload {
        ExportPayload {
            friendly_name: "Alice".into(),
            certificate_der: vec![1, 2, 3],
            pkcs8: Zeroizing::new(vec![9; 40]),
        }
    }

    #[test]
    fn seal_then_open() {
        let blob = seal("0.x", &payload(), "pw", MIN_ITERATIONS).unwrap();
        let sealed = SealedExport::decode(&blob).unwrap();
        let p = sealed.open("0.x", "pw").unwrap();
        assert_eq!(p.friendly_name, "Alice");
        assert_eq!(p.certificate_der, vec![1, 2, 3]);
        assert_eq!(*p.pkcs8, vec![9; 40]);
    }

    #[test]
    fn each_failure_has_its_own_code() {
        let blob = seal("0.x", &payload(), "pw", MIN_ITERATIONS).unwrap();
        let open = |b: &[u8], name: &str, pw: &str| {
            SealedExport::decode(b)
                .and_then(|s| s.open(name, pw))
                .map(|_| ())
                .unwrap_err()
                .hresult()
        };
        assert_eq!(open(&blob, "0.x", "wrong") as u32, 0x80070056);
        assert_eq!(open(&blob, "0.y", "pw") as u32, 0x80070056, "name is bound");
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&tampered, "0.x", "pw"), NTE_BAD_DATA);
        assert_eq!(open(&blob[..HEADER_LEN + 3], "0.x", "pw"), NTE_BAD_LEN);
        assert_eq!(open(&blob[..blob.len() - 1], "0.x", "pw"), NTE_BAD_DATA);
        assert_eq!(open(b"PGI", "0.x", "pw"), NTE_BAD_LEN);
        assert_eq!(
            open(b"garbage garbage garbage", "0.x", "pw"),
            CRYPT_E_BAD_ENCODE
        );
        let mut v2 = blob.clone();
        v2[4] = 2;
        assert_eq!(open(&v2, "0.x", "pw"), NTE_BAD_VER);
        let mut many = blob.clone();
        many[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(open(&many, "0.x", "pw"), CRYPT_E_BAD_ENCODE);
    }

    #[test]
    fn payload_decoder_refuses_trailing_and_short_input() {
        let enc = payload().encode();
        assert!(ExportPayload::decode(&enc).is_ok());
        let mut long = enc.to_vec();
        long.push(0);
        assert!(ExportPayload::decode(&long).is_err());
        for n in 0..enc.len() {
            assert!(ExportPayload::decode(&enc[..n]).is_err());
        }
    }
}
