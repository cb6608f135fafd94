//! The GMC extension: what a membership certificate says about group membership.
//!
//! The extension (OID [`GMC_EXTENSION_OID`], non-critical) has as its value a DER OCTET STRING
//! wrapping this binary payload, integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, [`GMC_FORMAT_VERSION`] |
//! | 2 | length G of the group peer name, 1 ..= [`MAX_NAME_BYTES`] |
//! | G | group peer name, UTF-8 |
//! | 1 | role count R, 1 ..= 3 |
//! | 16·R | role GUIDs in Windows byte order ([`Role::guid_bytes`]), in canonical order, no repeats |
//! | 2 | length I of the issuer's peer name, 1 ..= [`MAX_NAME_BYTES`] |
//! | I | issuer peer name, UTF-8: the group name when the group root signed the GMC |
//!
//! Nothing may follow. The reader accepts exactly one encoding of each value, so two
//! certificates that say the same thing say it in the same bytes.
//!
//! It is not critical so that TLS stacks that do not know it still accept a GMC as an
//! end-entity certificate; Peergroup's verifiers require it instead.

use super::der;
use super::role::Role;
use crate::error::{IdentityError, Result};
use crate::peer_name::{PeerName, MAX_PEER_NAME_CHARS};

/// OID of the GMC extension: `2.25.<UUID 13193850-07e8-4571-87bf-be1fb29e8ad5 as an integer>`,
/// an arc anyone may use without registration (ITU-T X.667).
pub const GMC_EXTENSION_OID: &str = "2.25.25386281497014771707027498826471475925";

/// [`GMC_EXTENSION_OID`] as the content octets of its DER OBJECT IDENTIFIER.
pub const GMC_EXTENSION_OID_DER: [u8; 19] = [
    0x69, 0xa6, 0x99, 0x9c, 0x94, 0x80, 0xfe, 0xc2, 0x95, 0xe3, 0x87, 0xdf, 0xef, 0xc3, 0xfb, 0x94,
    0xfa, 0x95, 0x55,
];

/// The payload format this implementation writes and reads.
pub const GMC_FORMAT_VERSION: u8 = 1;

/// Longest peer name in the payload, in bytes (every character may take four).
pub const MAX_NAME_BYTES: usize = 4 * MAX_PEER_NAME_CHARS;

/// The membership statement a GMC carries besides its subject and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    pub group_name: PeerName,
    /// Canonical order, not empty, no repeats.
    pub roles: Vec<Role>,
    pub issuer_name: PeerName,
}

/// Puts roles into canonical order without repeats.
pub(crate) fn canonical_roles(roles: &[Role]) -> Vec<Role> {
    let mut out = roles.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

impl Membership {
    /// The extension value: `OCTET STRING { payload }`.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = vec![GMC_FORMAT_VERSION];
        put_name(&mut payload, &self.group_name);
        payload.push(self.roles.len() as u8);
        for role in &self.roles {
            payload.extend_from_slice(&role.guid_bytes());
        }
        put_name(&mut payload, &self.issuer_name);
        der::tlv(der::OCTET_STRING, &payload)
    }

    /// Reads an extension value, strictly.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let mut r = Reader(der::read_whole(der::OCTET_STRING, value)?);
        let version = r.take(1)?[0];
        if version != GMC_FORMAT_VERSION {
            return Err(IdentityError::UnsupportedVersion(format!(
                "GMC extension format {version}"
            )));
        }
        let group_name = r.name()?;
        let count = usize::from(r.take(1)?[0]);
        if count == 0 || count > Role::ALL.len() {
            return Err(bad(format!("{count} roles")));
        }
        let mut roles = Vec::with_capacity(count);
        for _ in 0..count {
            let guid: &[u8; 16] = r.take(16)?.try_into().expect("took 16 bytes");
            let role = Role::from_guid_bytes(guid)
                .ok_or_else(|| bad(format!("unknown role GUID {guid:02x?}")))?;
            if roles.last().is_some_and(|last| *last >= role) {
                return Err(bad("roles repeated or out of order".into()));
            }
            roles.push(role);
        }
        let issuer_name = r.name()?;
        if !r.0.is_empty() {
            return Err(bad(format!("{} bytes after the payload", r.0.len())));
        }
        Ok(Membership {
            group_name,
            roles,
            issuer_name,
        })
    }
}

fn put_name(out: &mut Vec<u8>, name: &PeerName) {
    let text = name.to_string();
    // A PeerName is at most MAX_PEER_NAME_CHARS characters, so this always fits.
    debug_assert!(text.len() <= MAX_NAME_BYTES);
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn bad(why: String) -> IdentityError {
    IdentityError::BadEncoding(format!("GMC extension: {why}"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(IdentityError::Truncated("GMC extension"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn name(&mut self) -> Result<PeerName> {
        let len = usize::from(u16::from_be_bytes(
            self.take(2)?.try_into().expect("took 2 bytes"),
        ));
        if len == 0 || len > MAX_NAME_BYTES {
            return Err(bad(format!("peer name of {len} bytes")));
        }
        let text = std::str::from_utf8(self.take(len)?)
            .map_err(|_| bad("peer name is not UTF-8".into()))?;
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_name::Authority;
    use proptest::prelude::*;

    fn sample() -> Membership {
        Membership {
            group_name: PeerName::new(Authority::Secure([7; 20]), "Chess").unwrap(),
            roles: vec![Role::InvitingMember, Role::Member],
            issuer_name: PeerName::new(Authority::Secure([9; 20]), "").unwrap(),
        }
    }

    #[test]
    fn oid_constant_matches_its_der_encoding() {
        let (prefix, arc) = GMC_EXTENSION_OID.rsplit_once('.').unwrap();
        assert_eq!(prefix, "2.25");
        let mut n: u128 = arc.parse().unwrap();
        let mut base128 = vec![(n & 0x7f) as u8];
        n >>= 7;
        while n > 0 {
            base128.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        base128.push(2 * 40 + 25);
        base128.reverse();
        assert_eq!(base128, GMC_EXTENSION_OID_DER);
        let uuid: u128 = 0x13193850_07e8_4571_87bf_be1fb29e8ad5;
        assert_eq!(arc, uuid.to_string());
    }

    #[test]
    fn round_trip_and_exact_layout() {
        let m = sample();
        let enc = m.encode();
        assert_eq!(Membership::decode(&enc).unwrap(), m);
        let payload = der::read_whole(der::OCTET_STRING, &enc).unwrap();
        assert_eq!(payload[0], GMC_FORMAT_VERSION);
        assert_eq!(payload[1..3], [0, 46]); // 40 hex digits, '.', "Chess"
        assert_eq!(payload[49], 2);
        assert_eq!(payload[50..66], Role::InvitingMember.guid_bytes());
        assert_eq!(payload.len(), 1 + 2 + 46 + 1 + 32 + 2 + 41);
    }

    #[test]
    fn refuses_every_non_canonical_or_damaged_form() {
        let enc = sample().encode();
        let payload = der::read_whole(der::OCTET_STRING, &enc).unwrap().to_vec();
        let wrap = |p: &[u8]| der::tlv(der::OCTET_STRING, p);
        let mut version = payload.clone();
        version[0] = 2;
        assert!(matches!(
            Membership::decode(&wrap(&version)),
            Err(IdentityError::UnsupportedVersion(_))
        ));
        let mut swapped = payload.clone();
        swapped[50..66].copy_from_slice(&Role::Member.guid_bytes());
        swapped[66..82].copy_from_slice(&Role::InvitingMember.guid_bytes());
        assert!(Membership::decode(&wrap(&swapped)).is_err());
        let mut repeated = payload.clone();
        repeated[66..82].copy_from_slice(&Role::InvitingMember.guid_bytes());
        assert!(Membership::decode(&wrap(&repeated)).is_err());
        let mut unknown = payload.clone();
        unknown[50] ^= 1;
        assert!(Membership::decode(&wrap(&unknown)).is_err());
        let mut no_roles = payload.clone();
        no_roles[49] = 0;
        assert!(Membership::decode(&wrap(&no_roles)).is_err());
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(Membership::decode(&wrap(&trailing)).is_err());
        for cut in 0..payload.len() {
            assert!(Membership::decode(&wrap(&payload[..cut])).is_err(), "{cut}");
        }
        // The payload must be wrapped in an OCTET STRING.
        assert!(Membership::decode(&payload).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Membership::decode(&bytes);
            let _ = Membership::decode(&der::tlv(der::OCTET_STRING, &bytes));
        }
    }
}
