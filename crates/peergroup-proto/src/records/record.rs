//! One record of the group database (`PEER_RECORD`): its canonical encoding, its signature
//! and the conflict order every member resolves versions with.
//!
//! **Times** (`created`, `expires`, `modified`) are peer time in **milliseconds since the Unix
//! epoch**. The C layer converts to and from `FILETIME` (100 ns ticks since 1601); milliseconds
//! keep concurrent modifications apart in the conflict order where seconds would tie.
//!
//! **Encoding** ([`Record::encode`], [`Record::decode`]), big-endian, nothing may follow:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `PGRC` |
//! | 1 | format version, 2 |
//! | 16 | record type (GUID bytes in Windows order) |
//! | 16 | record id |
//! | 16 | id nonce (see **Record ids**) |
//! | 4 | version, ≥ 1 |
//! | 4 | flags: only [`FLAG_AUTOREFRESH`] and [`FLAG_DELETED`] |
//! | 8 × 3 | created, expires, modified (i64 ms) |
//! | 2 + n | creator peer name, UTF-8, 1 ..= [`MAX_PEER_NAME_BYTES`] |
//! | 2 + n | modifier peer name, UTF-8, 1 ..= [`MAX_PEER_NAME_BYTES`] |
//! | 4 + n | attributes XML, UTF-8, ..= [`MAX_ATTRIBUTES_BYTES`] |
//! | 4 + n | data, ..= [`MAX_RECORD_DATA`] (empty when [`FLAG_DELETED`] is set) |
//! | 4 + n | security data, ..= [`MAX_SECURITY_BYTES`] |
//!
//! Every field has its own bound and the bounds together fit one transport frame with room
//! for a message header ([`MAX_RECORD_BYTES`]), whatever chain signs the record. The encoding
//! is canonical: a record has exactly one, so the decoder's output re-encodes to its input.
//!
//! **Signature** ([`Record::sign`], [`Record::verify`]): the modifier signs
//! [`Record::signed_bytes`], which is a domain label and the encoding of every field but the
//! security data. The security data is the modifier's GMC chain and that signature:
//!
//! | bytes | field |
//! |---|---|
//! | 4 + n | the modifier's chain, [`GmcChain::to_bytes`], ..= [`MAX_CHAIN_BYTES`] |
//! | 2 + m | the signature, 1 ..= [`MAX_SIGNATURE_BYTES`] |
//!
//! **Record ids** are not free to choose: `id` is [`derive_id`] of the creator, the record
//! type, the creation time and a random 16-byte nonce the creator picked, shaped as a GUID
//! (version 8, RFC 4122 variant). Every version carries the nonce, and [`Record::verify`]
//! recomputes the id. So no member can claim to be the creator of someone else's record (it
//! would need a second preimage of SHA-256 truncated to 122 bits), nor change a record's type
//! or creation time in a later version: the rights rule "only the creator or an
//! administrator" depends on the record alone, and every member decides it the same way
//! whatever versions it has seen.
//!
//! **Conflict order** ([`Record::conflict_cmp`]): see there; it is a strict total order, so
//! every member keeps the same version of a record whatever order versions arrive in.

use std::cmp::Ordering;

use crate::error::{AuthorizationError, RecordError, RecordField, Result};
use crate::identity::gmc::{GmcChain, GroupRootCertificate, Member, Role, MAX_CHAIN_BYTES};
use crate::identity::keys::verify_signature;
use crate::identity::PrivateKey;

/// `PEER_RECORD_FLAG_AUTOREFRESH`: the publisher re-publishes the record before it expires.
pub const FLAG_AUTOREFRESH: u32 = 0x1;
/// `PEER_RECORD_FLAG_DELETED`: this version is a tombstone.
pub const FLAG_DELETED: u32 = 0x2;
/// Every flag a record may carry.
pub const KNOWN_FLAGS: u32 = FLAG_AUTOREFRESH | FLAG_DELETED;

/// Longest creator or modifier peer name, in UTF-8 bytes (a peer name is at most 190
/// characters; this leaves room for non-ASCII classifiers).
pub const MAX_PEER_NAME_BYTES: usize = 1024;
/// Longest attributes XML, in UTF-8 bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
/// Largest record payload (`PEER_RECORD.data`), in bytes: larger is
/// `PEER_E_MAX_RECORD_SIZE_EXCEEDED`. 512 KiB, so that the record with every other field at
/// its bound, signed by the longest chain, still fits a transport frame.
pub const MAX_RECORD_DATA: usize = 512 * 1024;
/// Longest signature in the security data (ECDSA P-256 DER is ≤ 72 bytes, Ed25519 64).
pub const MAX_SIGNATURE_BYTES: usize = 512;
/// Largest security data: the longest chain and the longest signature, with their lengths.
pub const MAX_SECURITY_BYTES: usize = 4 + MAX_CHAIN_BYTES + 2 + MAX_SIGNATURE_BYTES;
/// Room left in a transport frame for the message that carries a record.
pub const FRAME_HEADROOM: usize = 4096;
/// Largest encoded record: a transport frame less [`FRAME_HEADROOM`].
pub const MAX_RECORD_BYTES: usize = crate::transport::frame::MAX_FRAME_LEN - FRAME_HEADROOM;

const MAGIC: [u8; 4] = *b"PGRC";
const FORMAT_VERSION: u8 = 2;
/// Magic, format, type, id, version, flags, three times, and the five length prefixes.
const FIXED_BYTES: usize = 4 + 1 + 16 + 16 + 16 + 4 + 4 + 3 * 8 + 2 + 2 + 4 + 4 + 4;
const SIGNATURE_LABEL: &[u8] = b"peergroup record v1\0";

// Every record within the field bounds encodes within MAX_RECORD_BYTES.
const _: () = assert!(
    FIXED_BYTES
        + 2 * MAX_PEER_NAME_BYTES
        + MAX_ATTRIBUTES_BYTES
        + MAX_RECORD_DATA
        + MAX_SECURITY_BYTES
        <= MAX_RECORD_BYTES
);

/// A record: one version of one entry of the group database (`PEER_RECORD`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The application's record type, GUID bytes in Windows order.
    pub record_type: [u8; 16],
    /// The record id, GUID bytes in Windows order; the same across versions, and
    /// [`derive_id`] of the creator, type, creation time and [`Record::id_nonce`].
    pub id: [u8; 16],
    /// The creator's random nonce that [`Record::id`] is derived from.
    pub id_nonce: [u8; 16],
    /// Starts at 1 and rises by one with each update (a delete is an update).
    pub version: u32,
    /// [`FLAG_AUTOREFRESH`], [`FLAG_DELETED`].
    pub flags: u32,
    /// Peer name of the member that created the record.
    pub creator: String,
    /// Peer name of the member that made this version (the creator's, for version 1).
    pub modifier: String,
    /// The attributes XML, opaque here.
    pub attributes: String,
    /// When version 1 was made, peer-time ms since the Unix epoch.
    pub created: i64,
    /// When the record expires, peer-time ms since the Unix epoch.
    pub expires: i64,
    /// When this version was made, peer-time ms since the Unix epoch.
    pub modified: i64,
    /// The payload.
    pub data: Vec<u8>,
    /// The modifier's chain and signature (see the module documentation); empty until signed.
    pub security: Vec<u8>,
}

impl Record {
    /// True for a tombstone (a deleted version).
    pub fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }

    /// True once the record's expiration time has come: `expires <= now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires <= now_ms
    }

    /// True when the record carries a modifier: [MS-PPGRH]'s "has been updated" (step 2 of
    /// [`Record::conflict_cmp`]). Records made here always do, so this step only separates
    /// records from elsewhere.
    pub fn is_updated(&self) -> bool {
        !self.modifier.is_empty()
    }

    /// The tombstone that deletes this record: the next version, by `modifier` at `now_ms`,
    /// with [`FLAG_DELETED`], no data, no attributes and no security data (sign it next).
    ///
    /// It keeps the record's expiration, the latest of every version's (an update never
    /// shortens it), so the tombstone outlives every copy of what it deletes.
    pub fn tombstone(&self, modifier: &str, now_ms: i64) -> Record {
        Record {
            version: self.version.saturating_add(1),
            flags: (self.flags | FLAG_DELETED) & !FLAG_AUTOREFRESH,
            modifier: modifier.to_owned(),
            attributes: String::new(),
            modified: now_ms,
            data: Vec::new(),
            security: Vec::new(),
            ..self.clone()
        }
    }

    /// Checks the field rules the encoding enforces: sizes ([`RecordError::TooLarge`] for
    /// data over [`MAX_RECORD_DATA`]), version ≥ 1, known flags, non-empty peer names, and
    /// no data in a tombstone.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.data.len() > MAX_RECORD_DATA {
            return Err(RecordError::TooLarge);
        }
        if self.version == 0 {
            return Err(RecordError::VersionZero);
        }
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err(RecordError::UnknownFlags(self.flags));
        }
        for (field, name) in [
            (RecordField::Creator, &self.creator),
            (RecordField::Modifier, &self.modifier),
        ] {
            if name.is_empty() || name.len() > MAX_PEER_NAME_BYTES {
                return Err(length(field, name.len(), MAX_PEER_NAME_BYTES));
            }
        }
        if self.attributes.len() > MAX_ATTRIBUTES_BYTES {
            return Err(length(
                RecordField::Attributes,
                self.attributes.len(),
                MAX_ATTRIBUTES_BYTES,
            ));
        }
        if self.security.len() > MAX_SECURITY_BYTES {
            return Err(length(
                RecordField::Security,
                self.security.len(),
                MAX_SECURITY_BYTES,
            ));
        }
        if self.is_deleted() && !self.data.is_empty() {
            return Err(RecordError::DeletedWithData);
        }
        Ok(())
    }

    /// The canonical encoding (module documentation). A record that passes
    /// [`Record::check`] encodes to bytes [`Record::decode`] accepts.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_fields(&mut out);
        put_u32_bytes(&mut out, &self.security);
        out
    }

    /// The length of [`Record::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        FIXED_BYTES
            + self.creator.len()
            + self.modifier.len()
            + self.attributes.len()
            + self.data.len()
            + self.security.len()
    }

    /// The bytes the modifier's signature covers: a domain label, then the encoding of every
    /// field but the security data.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNATURE_LABEL.len() + self.encoded_len());
        out.extend_from_slice(SIGNATURE_LABEL);
        self.write_fields(&mut out);
        out
    }

    fn write_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.record_type);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.id_nonce);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.created.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(&self.modified.to_be_bytes());
        put_u16_bytes(out, self.creator.as_bytes());
        put_u16_bytes(out, self.modifier.as_bytes());
        put_u32_bytes(out, self.attributes.as_bytes());
        put_u32_bytes(out, &self.data);
    }

    /// Decodes [`Record::encode`]'s output, strictly: every bound, the field rules of
    /// [`Record::check`], and no trailing bytes. Input over [`MAX_RECORD_BYTES`] is refused
    /// before anything is read. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge);
        }
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(RecordError::NotARecord);
        }
        let format = r.take(1)?[0];
        if format != FORMAT_VERSION {
            return Err(RecordError::Format(format));
        }
        let record = Record {
            record_type: r.array()?,
            id: r.array()?,
            id_nonce: r.array()?,
            version: u32::from_be_bytes(r.array()?),
            flags: u32::from_be_bytes(r.array()?),
            created: i64::from_be_bytes(r.array()?),
            expires: i64::from_be_bytes(r.array()?),
            modified: i64::from_be_bytes(r.array()?),
            creator: r.string16(MAX_PEER_NAME_BYTES, RecordField::Creator)?,
            modifier: r.string16(MAX_PEER_NAME_BYTES, RecordField::Modifier)?,
            attributes: r.string32(MAX_ATTRIBUTES_BYTES, RecordField::Attributes)?,
            data: r.bytes32(MAX_RECORD_DATA, RecordField::Data)?.to_vec(),
            security: r
                .bytes32(MAX_SECURITY_BYTES, RecordField::Security)?
                .to_vec(),
        };
        if !r.0.is_empty() {
            return Err(RecordError::Trailing(r.0.len()));
        }
        record.check()?;
        Ok(record)
    }

    /// Signs this version as the member holding `key` and `chain`, replacing the security
    /// data. The chain's member must be [`Record::modifier`] and `key` its key
    /// ([`RecordError`] otherwise); the record must pass [`Record::check`].
    /// Rights are not checked here: [`Record::verify`] does, on every member.
    pub fn sign(&mut self, key: &PrivateKey, chain: &GmcChain) -> Result<()> {
        self.check()?;
        let leaf = chain.leaf();
        if leaf.peer_name().to_string() != self.modifier {
            return Err(RecordError::ChainNotTheModifiers {
                chain: leaf.peer_name().to_string(),
                modifier: self.modifier.clone(),
            }
            .into());
        }
        if leaf.public_key_der() != key.public_key_der() {
            return Err(RecordError::KeyNotTheChains.into());
        }
        let signature = key.sign(&self.signed_bytes())?;
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_BYTES {
            return Err(
                length(RecordField::Signature, signature.len(), MAX_SIGNATURE_BYTES).into(),
            );
        }
        let chain = chain.to_bytes();
        let mut security = Vec::with_capacity(4 + chain.len() + 2 + signature.len());
        put_u32_bytes(&mut security, &chain);
        put_u16_bytes(&mut security, &signature);
        self.security = security;
        Ok(())
    }

    /// The modifier's chain and signature from the security data, strictly decoded.
    pub fn security_parts(&self) -> Result<(GmcChain, Vec<u8>), RecordError> {
        let (chain, signature) = self.split_security()?;
        let chain = GmcChain::from_bytes(chain).map_err(RecordError::SigningChain)?;
        Ok((chain, signature.to_vec()))
    }

    /// The security data's chain bytes and signature, their lengths checked.
    fn split_security(&self) -> Result<(&[u8], &[u8]), RecordError> {
        let mut r = Reader(&self.security);
        let chain = r.bytes32(MAX_CHAIN_BYTES, RecordField::SigningChain)?;
        let n = u16::from_be_bytes(r.array()?) as usize;
        if n == 0 || n > MAX_SIGNATURE_BYTES {
            return Err(length(RecordField::Signature, n, MAX_SIGNATURE_BYTES));
        }
        let signature = r.take(n)?;
        if !r.0.is_empty() {
            return Err(RecordError::Trailing(r.0.len()));
        }
        Ok((chain, signature))
    }

    /// Verifies this version as every member must before storing or forwarding it, and
    /// returns the modifier as validated. In order:
    ///
    /// 1. the field rules ([`Record::check`]);
    /// 2. `modified` is not more than [`MAX_FUTURE_SKEW_MS`] after `now_ms`
    ///    ([`RecordError::FromTheFuture`]), and the id is bound ([`RecordError::IdNotBound`]);
    /// 3. the security data decodes ([`RecordError`]) and its chain validates
    ///    against `grc` **at the record's modification time** (the chain's error);
    /// 4. the chain's member is [`Record::modifier`] ([`RecordError::SignedByAnother`]);
    /// 5. the signature over [`Record::signed_bytes`] verifies with the member's key (the
    ///    identity layer's bad-signature error);
    /// 6. rights: version 1 is made by its creator, later versions by the creator or an
    ///    administrator ([`crate::error::ProtoError::NotAuthorized`]).
    ///
    /// The chain is checked at `modified`, not at `now_ms`, so that the answer is the same on
    /// every member at every time (a late joiner accepts what the others hold, after the
    /// modifier's membership ended); step 2 bounds how far a record may claim the future.
    /// The price: a member whose membership has expired can still back-date versions to
    /// within its old validity.
    pub fn verify(&self, grc: &GroupRootCertificate, now_ms: i64) -> Result<Member> {
        self.verify_cached(grc, now_ms, &mut ChainCache::default())
    }

    /// [`Record::verify`], validating each distinct signing chain once: a member receiving
    /// thousands of records from a few members checks a few chains, and one signature per
    /// record. The cache must only ever be used with the same `grc`.
    pub fn verify_cached(
        &self,
        grc: &GroupRootCertificate,
        now_ms: i64,
        cache: &mut ChainCache,
    ) -> Result<Member> {
        self.check()?;
        if self.modified > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(RecordError::FromTheFuture {
                modified: self.modified,
                now: now_ms,
            }
            .into());
        }
        if self.id
            != derive_id(
                &self.creator,
                &self.record_type,
                self.created,
                &self.id_nonce,
            )
        {
            return Err(RecordError::IdNotBound.into());
        }
        let (chain_bytes, signature) = self.split_security()?;
        let at = self.modified.div_euclid(1000);
        let key = ring::digest::digest(&ring::digest::SHA256, chain_bytes);
        let member = match cache.get(key.as_ref(), at) {
            Some(m) => m,
            None => {
                let chain = GmcChain::from_bytes(chain_bytes).map_err(RecordError::SigningChain)?;
                let member = chain.validate(grc, at)?;
                cache.insert(key.as_ref(), &member);
                member
            }
        };
        if member.peer_name().to_string() != self.modifier {
            return Err(RecordError::SignedByAnother {
                signer: member.peer_name().to_string(),
                modifier: self.modifier.clone(),
            }
            .into());
        }
        verify_signature(member.public_key_der(), &self.signed_bytes(), signature)?;
        if self.modifier != self.creator {
            if self.version == 1 {
                return Err(AuthorizationError::FirstVersionByAnother.into());
            }
            if !member.has_role(Role::Admin) {
                return Err(AuthorizationError::NotCreatorOrAdmin {
                    modifier: self.modifier.clone(),
                }
                .into());
            }
        }
        Ok(member)
    }

    /// The conflict order between two versions of a record, [MS-PPGRH] §3.1.7.32:
    ///
    /// 1. the higher `version` wins;
    /// 2. else an updated record ([`Record::is_updated`]: a modifier is set) beats one
    ///    that is not;
    /// 3. else the higher `modifier` wins (peer names compared as UTF-8 bytes, i.e. by code
    ///    point);
    /// 4. else the later `modified` wins;
    /// 5. else the longer `security` wins;
    /// 6. else the higher `security` bytes win (lexicographically);
    /// 7. else (ours, only reachable between records with the same signature, i.e. not
    ///    both validly signed) the higher canonical encoding wins.
    ///
    /// `Greater` means `self` wins. It is a strict total order on distinct records: `Equal`
    /// only for identical records ("already present"), so every member keeps the same
    /// version whatever the order in which versions reach it.
    pub fn conflict_cmp(&self, other: &Record) -> Ordering {
        self.version
            .cmp(&other.version)
            .then_with(|| self.is_updated().cmp(&other.is_updated()))
            .then_with(|| self.modifier.as_bytes().cmp(other.modifier.as_bytes()))
            .then_with(|| self.modified.cmp(&other.modified))
            .then_with(|| self.security.len().cmp(&other.security.len()))
            .then_with(|| self.security.cmp(&other.security))
            .then_with(|| {
                if self == other {
                    Ordering::Equal
                } else {
                    self.encode().cmp(&other.encode())
                }
            })
    }

    /// True when `self` beats `other` in [`Record::conflict_cmp`].
    pub fn wins_over(&self, other: &Record) -> bool {
        self.conflict_cmp(other) == Ordering::Greater
    }
}

/// Signing chains already validated, by SHA-256 of their bytes, with the membership they
/// prove. A hit counts only at a time inside the membership's validity (which lies within
/// every issuer's and the root's); anything else is validated in full again. Bounded: the
/// cache empties itself when full.
#[derive(Clone, Debug, Default)]
pub struct ChainCache {
    members: std::collections::HashMap<Vec<u8>, Member>,
}

impl ChainCache {
    /// Most chains kept.
    pub const CAPACITY: usize = 4096;

    fn get(&self, key: &[u8], at_unix: i64) -> Option<Member> {
        self.members
            .get(key)
            .filter(|m| m.not_before() <= at_unix && at_unix <= m.not_after())
            .cloned()
    }

    /// Takes in what `other` learned (a worker's copy, back into the shared cache).
    pub fn absorb(&mut self, other: ChainCache) {
        for (k, m) in other.members {
            if self.members.len() >= Self::CAPACITY {
                break;
            }
            self.members.entry(k).or_insert(m);
        }
    }

    fn insert(&mut self, key: &[u8], member: &Member) {
        if self.members.len() >= Self::CAPACITY {
            self.members.clear();
        }
        self.members.insert(key.to_vec(), member.clone());
    }
}

/// The id of a record made by `creator`, of `record_type`, at `created` (ms), with `nonce`:
/// `SHA-256("peergroup record id v1\0" ‖ len ‖ creator ‖ record_type ‖ created ‖ nonce)`,
/// its first 16 bytes shaped as a version 8 GUID in Windows byte order.
pub fn derive_id(
    creator: &str,
    record_type: &[u8; 16],
    created: i64,
    nonce: &[u8; 16],
) -> [u8; 16] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"peergroup record id v1\0");
    ctx.update(&(creator.len() as u64).to_be_bytes());
    ctx.update(creator.as_bytes());
    ctx.update(record_type);
    ctx.update(&created.to_be_bytes());
    ctx.update(nonce);
    let digest = ctx.finish();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest.as_ref()[..16]);
    id[7] = (id[7] & 0x0f) | 0x80; // Data3's high nibble: version 8 (custom)
    id[8] = (id[8] & 0x3f) | 0x80; // the RFC 4122 variant
    id
}

/// How far in the future of the verifier's clock a version's modification time may lie.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

fn length(field: RecordField, len: usize, max: usize) -> RecordError {
    RecordError::FieldLength { field, len, max }
}

fn put_u16_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Callers' fields are bounded far below u16::MAX by `check`; clamp rather than wrap.
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_u32_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn bytes16(&mut self, max: usize, field: RecordField) -> Result<&'a [u8], RecordError> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        if n > max {
            return Err(length(field, n, max));
        }
        self.take(n)
    }
    fn bytes32(&mut self, max: usize, field: RecordField) -> Result<&'a [u8], RecordError> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        if n > max {
            // Oversized data is the size error Windows gives, not a malformed record.
            return Err(if field == RecordField::Data {
                RecordError::TooLarge
            } else {
                length(field, n, max)
            });
        }
        self.take(n)
    }
    fn string16(&mut self, max: usize, field: RecordField) -> Result<String, RecordError> {
        let b = self.bytes16(max, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::NotUtf8(field))
    }
    fn string32(&mut self, max: usize, field: RecordField) -> Result<String, RecordError> {
        let b = self.bytes32(max, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::NotUtf8(field))
    }
}

#[cfg(test)]
mod tests;
