//! Group roles and who may grant them.
//!
//! The role GUIDs are Microsoft's (`p2p.h`, confirmed by [MS-PPSEC] §2.2.5.3) so that the C
//! layer can hand out `PEER_GROUP_ROLE_*` values unchanged. The issuing rules are MS-PPSEC's:
//! nobody grants a role above their own.

use std::fmt;

/// A GUID as the C `GUID` struct holds it: `Data1`, `Data2`, `Data3`, `Data4`.
pub type GuidParts = (u32, u16, u16, [u8; 8]);

/// A role a group member holds, as carried in its membership certificate.
///
/// The order (Admin < InvitingMember < Member) is the canonical order in which roles are
/// written into a certificate; it says nothing about rank.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub enum Role {
    /// `PEER_GROUP_ROLE_ADMIN` {04387127-aa56-450a-8ce5-4f565c6790f4}: may issue Admin,
    /// Inviting Member and Member certificates, and modify anyone's records.
    Admin,
    /// `PEER_GROUP_ROLE_INVITING_MEMBER` {4370fd89-dc18-4cfb-8dbf-9853a8a9f905} (Vista+): may
    /// issue Inviting Member and Member certificates.
    InvitingMember,
    /// `PEER_GROUP_ROLE_MEMBER` {f12dc4c7-0857-4ca0-93fc-b1bb19a3d8c2}: may issue nothing.
    Member,
}

impl Role {
    /// Every role, in canonical order.
    pub const ALL: [Role; 3] = [Role::Admin, Role::InvitingMember, Role::Member];

    /// The role's GUID in the fields of the C `GUID` struct.
    pub const fn guid(self) -> GuidParts {
        match self {
            Role::Admin => (
                0x0438_7127,
                0xaa56,
                0x450a,
                [0x8c, 0xe5, 0x4f, 0x56, 0x5c, 0x67, 0x90, 0xf4],
            ),
            Role::InvitingMember => (
                0x4370_fd89,
                0xdc18,
                0x4cfb,
                [0x8d, 0xbf, 0x98, 0x53, 0xa8, 0xa9, 0xf9, 0x05],
            ),
            Role::Member => (
                0xf12d_c4c7,
                0x0857,
                0x4ca0,
                [0x93, 0xfc, 0xb1, 0xbb, 0x19, 0xa3, 0xd8, 0xc2],
            ),
        }
    }

    /// The role's GUID as the 16 bytes of a `GUID` in memory on Windows: `Data1`, `Data2` and
    /// `Data3` little-endian, `Data4` as is. This is also how roles are written into a GMC.
    pub const fn guid_bytes(self) -> [u8; 16] {
        let (d1, d2, d3, d4) = self.guid();
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        [
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ]
    }

    /// The role with these GUID bytes (Windows byte order), if any.
    pub fn from_guid_bytes(bytes: &[u8; 16]) -> Option<Role> {
        Role::ALL.into_iter().find(|r| &r.guid_bytes() == bytes)
    }

    /// The role with this GUID, given as the fields of the C `GUID` struct, if any.
    pub fn from_guid(guid: GuidParts) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.guid() == guid)
    }

    /// Whether a holder of `self` may issue a certificate granting `granted` (MS-PPSEC).
    pub const fn may_issue(self, granted: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::InvitingMember => matches!(granted, Role::InvitingMember | Role::Member),
            Role::Member => false,
        }
    }
}

/// Whether someone holding all of `held` may grant `granted`: one held role suffices.
pub fn roles_may_issue(held: &[Role], granted: Role) -> bool {
    held.iter().any(|r| r.may_issue(granted))
}

/// Prints the GUID in registry form, lowercase, without braces.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d1, d2, d3, d4) = self.guid();
        write!(f, "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-", d4[0], d4[1])?;
        d4[2..].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_microsofts() {
        assert_eq!(
            Role::Admin.to_string(),
            "04387127-aa56-450a-8ce5-4f565c6790f4"
        );
        assert_eq!(
            Role::InvitingMember.to_string(),
            "4370fd89-dc18-4cfb-8dbf-9853a8a9f905"
        );
        assert_eq!(
            Role::Member.to_string(),
            "f12dc4c7-0857-4ca0-93fc-b1bb19a3d8c2"
        );
    }

    #[test]
    fn guid_bytes_are_in_windows_memory_order() {
        assert_eq!(
            Role::Admin.guid_bytes(),
            [
                0x27, 0x71, 0x38, 0x04, 0x56, 0xaa, 0x0a, 0x45, 0x8c, 0xe5, 0x4f, 0x56, 0x5c, 0x67,
                0x90, 0xf4
            ]
        );
        for role in Role::ALL {
            assert_eq!(Role::from_guid_bytes(&role.guid_bytes()), Some(role));
            assert_eq!(Role::from_guid(role.guid()), Some(role));
        }
        assert_eq!(Role::from_guid_bytes(&[0; 16]), None);
        assert_eq!(Role::from_guid((0, 0, 0, [0; 8])), None);
    }

    #[test]
    fn issuing_rules_follow_ms_ppsec() {
        use Role::*;
        let allowed: Vec<(Role, Role)> = Role::ALL
            .into_iter()
            .flat_map(|a| Role::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.may_issue(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Admin, Admin),
                (Admin, InvitingMember),
                (Admin, Member),
                (InvitingMember, InvitingMember),
                (InvitingMember, Member),
            ]
        );
        assert!(roles_may_issue(&[Member, InvitingMember], InvitingMember));
        assert!(!roles_may_issue(&[Member, InvitingMember], Admin));
        assert!(!roles_may_issue(&[], Member));
    }
}
