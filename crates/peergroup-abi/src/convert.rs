//! Conversions between the C structures of `p2p.h` and the group layer's types: `FILETIME`
//! and Unix time (seconds and milliseconds), role and record `GUID`s, `PEER_ADDRESS`,
//! `PEER_GROUP_PROPERTIES`, `PEER_RECORD`, `CERT_PUBLIC_KEY_INFO` and `PEER_INVITATION_INFO`.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ptr::{self, addr_of};

use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult::{self, HRESULT};
use peergroup_core::invitation::{Credential, Invitation};
use peergroup_core::properties::GroupProperties;
use peergroup_core::records::record::Record;

use crate::alloc::CBlock;
use crate::ffi::{read_opt, try_slice_in};
use crate::spki::parse_spki;
use crate::types::{
    CERT_PUBLIC_KEY_INFO, CRYPT_ALGORITHM_IDENTIFIER, CRYPT_BIT_BLOB, CRYPT_OBJID_BLOB, DWORD,
    FILETIME, GUID, PEER_ADDRESS, PEER_DATA, PEER_GROUP_PROPERTIES, PEER_INVITATION_INFO,
    PEER_RECORD, PWSTR, ULONG,
};

/// Seconds from 1601-01-01 (the `FILETIME` epoch) to 1970-01-01 (the Unix epoch).
pub(crate) const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;
/// `FILETIME` ticks (100 ns) per second.
pub(crate) const TICKS_PER_SEC: i64 = 10_000_000;

/// Unix seconds as a `FILETIME`: ticks = (unix + 11644473600) × 10⁷, clamped to what a
/// `FILETIME` holds (times before 1601 become 0).
pub fn filetime_from_unix(secs: i64) -> FILETIME {
    filetime_from_ticks(
        (i128::from(secs) + i128::from(FILETIME_UNIX_OFFSET_SECS)) * i128::from(TICKS_PER_SEC),
    )
}

/// A `FILETIME` as Unix seconds (sub-second ticks are dropped).
pub fn unix_from_filetime(ft: FILETIME) -> i64 {
    (ticks_of(ft) / TICKS_PER_SEC as u64) as i64 - FILETIME_UNIX_OFFSET_SECS
}

/// Ticks since 1601 as a `FILETIME`, clamped to what it holds (negative ones become 0).
fn filetime_from_ticks(ticks: i128) -> FILETIME {
    let ticks = ticks.clamp(0, i128::from(u64::MAX)) as u64;
    FILETIME {
        dwLowDateTime: ticks as u32,
        dwHighDateTime: (ticks >> 32) as u32,
    }
}

/// A `FILETIME`'s ticks since 1601.
fn ticks_of(ft: FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// `FILETIME` ticks (100 ns) per millisecond.
pub(crate) const TICKS_PER_MS: i64 = 10_000;

/// Unix milliseconds as a `FILETIME`: ticks = (unix_ms + 11644473600000) × 10⁴, clamped to
/// what a `FILETIME` holds (times before 1601 become 0).
pub fn filetime_from_unix_ms(ms: i64) -> FILETIME {
    filetime_from_ticks(
        (i128::from(ms) + i128::from(FILETIME_UNIX_OFFSET_SECS) * 1000) * i128::from(TICKS_PER_MS),
    )
}

/// A `FILETIME` as Unix milliseconds (sub-millisecond ticks are dropped).
pub fn unix_ms_from_filetime(ft: FILETIME) -> i64 {
    (ticks_of(ft) / TICKS_PER_MS as u64) as i64 - FILETIME_UNIX_OFFSET_SECS * 1000
}

/// A `GUID` as its 16 bytes in Windows order (as in memory: Data1..3 little-endian).
pub fn guid_bytes(g: &GUID) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&g.Data1.to_le_bytes());
    b[4..6].copy_from_slice(&g.Data2.to_le_bytes());
    b[6..8].copy_from_slice(&g.Data3.to_le_bytes());
    b[8..16].copy_from_slice(&g.Data4);
    b
}

/// 16 bytes in Windows order as a `GUID`.
pub fn guid_from_bytes(b: &[u8; 16]) -> GUID {
    let mut d4 = [0u8; 8];
    d4.copy_from_slice(&b[8..16]);
    GUID {
        Data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Data2: u16::from_le_bytes([b[4], b[5]]),
        Data3: u16::from_le_bytes([b[6], b[7]]),
        Data4: d4,
    }
}

/// What a caller's `PEER_RECORD` gives: type, id, flags, attributes, expiration (Unix ms)
/// and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInput {
    /// `type`, in Windows byte order.
    pub record_type: [u8; 16],
    /// `id`, in Windows byte order (read by updates only).
    pub id: [u8; 16],
    /// `dwFlags`.
    pub flags: u32,
    /// `pwzAttributes` (NULL: empty).
    pub attributes: String,
    /// `ftExpiration`, Unix milliseconds.
    pub expires_ms: i64,
    /// `data`.
    pub data: Vec<u8>,
}

/// Reads a caller's `PEER_RECORD`: `dwSize` must be `sizeof(PEER_RECORD)` and a non-empty
/// `data` needs a non-NULL `pbData` (else `E_INVALIDARG`); a NULL `pwzAttributes` is empty.
///
/// # Safety
/// `p` non-null, aligned and readable for a `PEER_RECORD`; `pwzAttributes` NULL or
/// NUL-terminated UTF-16; `data.pbData` readable for `data.cbData` bytes.
pub unsafe fn read_record(p: *const PEER_RECORD) -> Result<RecordInput, HRESULT> {
    // SAFETY: per this function's contract.
    let r = unsafe { p.read() };
    if r.dwSize as usize != size_of::<PEER_RECORD>() {
        return Err(hresult::E_INVALIDARG);
    }
    // SAFETY: the caller promises cbData readable bytes at pbData (NULL is refused for a
    // non-zero cbData).
    let data = unsafe { try_slice_in(r.data.pbData, r.data.cbData as usize) }?.to_vec();
    Ok(RecordInput {
        record_type: guid_bytes(&r.r#type),
        id: guid_bytes(&r.id),
        flags: r.dwFlags,
        // SAFETY: per this function's contract.
        attributes: unsafe { read_opt(r.pwzAttributes) }?.unwrap_or_default(),
        expires_ms: unix_ms_from_filetime(r.ftExpiration),
        data,
    })
}

/// A record as a `PEER_RECORD` child of `block`, its strings and data children too.
pub fn record_child(block: &mut CBlock, rec: &Record) -> *mut PEER_RECORD {
    let value = record_value(block, rec);
    block.child(value)
}

fn record_value(block: &mut CBlock, rec: &Record) -> PEER_RECORD {
    PEER_RECORD {
        dwSize: size_of::<PEER_RECORD>() as DWORD,
        r#type: guid_from_bytes(&rec.record_type),
        id: guid_from_bytes(&rec.id),
        dwVersion: rec.version,
        dwFlags: rec.flags,
        pwzCreatorId: block.wstr(&rec.creator),
        pwzModifiedById: block.wstr(&rec.modifier),
        pwzAttributes: block.wstr(&rec.attributes),
        ftCreation: filetime_from_unix_ms(rec.created),
        ftExpiration: filetime_from_unix_ms(rec.expires),
        ftLastModified: filetime_from_unix_ms(rec.modified),
        securityData: PEER_DATA {
            cbData: rec.security.len() as ULONG,
            pbData: block.bytes(&rec.security),
        },
        data: PEER_DATA {
            cbData: rec.data.len() as ULONG,
            pbData: block.bytes(&rec.data),
        },
    }
}

/// A record as one `PeerFreeData` block (`PEER_RECORD` with its strings and data).
pub fn record_block(rec: &Record) -> *mut PEER_RECORD {
    let (mut block, root) = CBlock::for_array::<PEER_RECORD>(1);
    let value = record_value(&mut block, rec);
    // SAFETY: the root holds one zeroed, aligned PEER_RECORD owned by the block.
    unsafe { root.write(value) };
    block.into_raw() as *mut PEER_RECORD
}

/// A role's `GUID` (`PEER_GROUP_ROLE_*`).
pub fn role_guid(role: Role) -> GUID {
    let (d1, d2, d3, d4) = role.guid();
    GUID {
        Data1: d1,
        Data2: d2,
        Data3: d3,
        Data4: d4,
    }
}

/// The role a `GUID` names: `PEER_E_INVALID_ROLE_PROPERTY` for any other GUID (Microsoft
/// documents no code for this; that one names the fault best).
pub fn guid_role(guid: &GUID) -> Result<Role, HRESULT> {
    Role::from_guid((guid.Data1, guid.Data2, guid.Data3, guid.Data4))
        .ok_or(hresult::PEER_E_INVALID_ROLE_PROPERTY)
}

/// A `PEER_ADDRESS` as a socket address. `dwSize` must be `sizeof(PEER_ADDRESS)` and the
/// family `AF_INET6`, else `E_INVALIDARG`; a v4-mapped address (`::ffff:a.b.c.d`) becomes
/// IPv4, since the transport may be bound to an IPv4 socket.
pub fn socket_addr_from_peer_address(a: &PEER_ADDRESS) -> Result<SocketAddr, HRESULT> {
    if a.dwSize as usize != size_of::<PEER_ADDRESS>()
        || a.sin6.sin6_family != libc::AF_INET6 as libc::sa_family_t
    {
        return Err(hresult::E_INVALIDARG);
    }
    let ip = Ipv6Addr::from(a.sin6.sin6_addr.s6_addr);
    let port = u16::from_be(a.sin6.sin6_port);
    Ok(match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        None => SocketAddr::V6(SocketAddrV6::new(
            ip,
            port,
            u32::from_be(a.sin6.sin6_flowinfo),
            a.sin6.sin6_scope_id,
        )),
    })
}

/// A socket address as a `PEER_ADDRESS` (IPv4 becomes v4-mapped IPv6).
pub fn peer_address_from_socket_addr(addr: &SocketAddr) -> PEER_ADDRESS {
    let (ip, flowinfo, scope_id) = match addr {
        SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped(), 0, 0),
        SocketAddr::V6(v6) => (*v6.ip(), v6.flowinfo(), v6.scope_id()),
    };
    // SAFETY: sockaddr_in6 is plain old data; all zeros is a valid value.
    let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_port = addr.port().to_be();
    sin6.sin6_flowinfo = flowinfo.to_be();
    sin6.sin6_addr.s6_addr = ip.octets();
    sin6.sin6_scope_id = scope_id;
    PEER_ADDRESS {
        dwSize: size_of::<PEER_ADDRESS>() as DWORD,
        sin6,
    }
}

/// `dwSize` of the Windows XP `PEER_GROUP_PROPERTIES`, which ends before
/// `dwAuthenticationSchemes`; such a structure is read without the Vista fields.
pub(crate) const PEER_GROUP_PROPERTIES_XP_SIZE: usize =
    offset_of!(PEER_GROUP_PROPERTIES, dwAuthenticationSchemes);

/// Reads a caller's `PEER_GROUP_PROPERTIES`. NULL strings are empty (the password: absent).
/// `dwSize` must be at least the XP size (else `E_INVALIDARG`); below the Vista size the
/// authentication fields keep their defaults (GMC only). A zero `groupPasswordRole` means
/// Member; another GUID that is no role is `PEER_E_INVALID_ROLE_PROPERTY`.
///
/// # Safety
/// `p` must be non-null, aligned, and readable for `dwSize` bytes (at least the `dwSize`
/// field); its strings NULL or NUL-terminated UTF-16.
pub unsafe fn read_properties(p: *const PEER_GROUP_PROPERTIES) -> Result<GroupProperties, HRESULT> {
    // Each field is read through its own raw pointer, so a short (XP) structure is never
    // read past its end.
    macro_rules! field {
        ($f:ident) => {
            // SAFETY: the field lies within dwSize bytes, which the caller promises readable.
            unsafe { addr_of!((*p).$f).read() }
        };
    }
    let size = field!(dwSize) as usize;
    if size < PEER_GROUP_PROPERTIES_XP_SIZE {
        return Err(hresult::E_INVALIDARG);
    }
    let text = |w: PWSTR| -> Result<String, HRESULT> {
        // SAFETY: per this function's contract.
        Ok(unsafe { read_opt(w) }?.unwrap_or_default())
    };
    let mut props = GroupProperties {
        flags: field!(dwFlags),
        cloud: text(field!(pwzCloud))?,
        classifier: text(field!(pwzClassifier))?,
        group_peer_name: text(field!(pwzGroupPeerName))?,
        creator_peer_name: text(field!(pwzCreatorPeerName))?,
        friendly_name: text(field!(pwzFriendlyName))?,
        comment: text(field!(pwzComment))?,
        member_data_lifetime: field!(ulMemberDataLifetime),
        presence_lifetime: field!(ulPresenceLifetime),
        ..GroupProperties::default()
    };
    if size >= size_of::<PEER_GROUP_PROPERTIES>() {
        props.authentication_schemes = field!(dwAuthenticationSchemes);
        let password = field!(pwzGroupPassword);
        // SAFETY: per this function's contract.
        props.group_password = unsafe { read_opt(password) }?;
        let role: GUID = field!(groupPasswordRole);
        props.group_password_role = if role == GUID::default() {
            Role::Member
        } else {
            guid_role(&role)?
        };
    }
    Ok(props)
}

/// Group properties as one `PeerFreeData` block: the structure with its strings. Empty
/// strings are returned as empty strings; an absent password as NULL.
pub fn properties_block(props: &GroupProperties) -> *mut PEER_GROUP_PROPERTIES {
    let (mut block, root) = CBlock::for_array::<PEER_GROUP_PROPERTIES>(1);
    let value = PEER_GROUP_PROPERTIES {
        dwSize: size_of::<PEER_GROUP_PROPERTIES>() as DWORD,
        dwFlags: props.flags,
        pwzCloud: block.wstr(&props.cloud),
        pwzClassifier: block.wstr(&props.classifier),
        pwzGroupPeerName: block.wstr(&props.group_peer_name),
        pwzCreatorPeerName: block.wstr(&props.creator_peer_name),
        pwzFriendlyName: block.wstr(&props.friendly_name),
        pwzComment: block.wstr(&props.comment),
        ulMemberDataLifetime: props.member_data_lifetime,
        ulPresenceLifetime: props.presence_lifetime,
        dwAuthenticationSchemes: props.authentication_schemes,
        pwzGroupPassword: match &props.group_password {
            Some(p) => block.wstr(p),
            None => ptr::null_mut(),
        },
        groupPasswordRole: role_guid(props.group_password_role),
    };
    // SAFETY: the root holds one zeroed, aligned PEER_GROUP_PROPERTIES owned by the block.
    unsafe { root.write(value) };
    block.into_raw() as *mut PEER_GROUP_PROPERTIES
}

/// A DER SubjectPublicKeyInfo as a `CERT_PUBLIC_KEY_INFO` owned by `block`: the dotted OID,
/// the encoded parameters and the key bits are children of the block. `CRYPT_E_ASN1_BADTAG`
/// if the DER is not a SubjectPublicKeyInfo.
pub fn cert_public_key_info(
    block: &mut CBlock,
    spki_der: &[u8],
) -> Result<*mut CERT_PUBLIC_KEY_INFO, HRESULT> {
    let spki = parse_spki(spki_der).ok_or(hresult::CRYPT_E_ASN1_BADTAG)?;
    let info = CERT_PUBLIC_KEY_INFO {
        Algorithm: CRYPT_ALGORITHM_IDENTIFIER {
            pszObjId: block.cstr(&spki.algorithm),
            Parameters: CRYPT_OBJID_BLOB {
                cbData: spki.parameters.len() as DWORD,
                pbData: block.bytes(spki.parameters),
            },
        },
        PublicKey: CRYPT_BIT_BLOB {
            cbData: spki.key.len() as DWORD,
            pbData: block.bytes(spki.key),
            cUnusedBits: DWORD::from(spki.unused_bits),
        },
    };
    Ok(block.child(info))
}

/// A parsed invitation as one `PeerFreeData` block (`PEER_INVITATION_INFO` with its strings,
/// roles and subject key). Password invitations have no subject: its names and key are NULL.
pub fn invitation_block(inv: &Invitation) -> Result<*mut PEER_INVITATION_INFO, HRESULT> {
    let (mut block, root) = CBlock::for_array::<PEER_INVITATION_INFO>(1);
    let (subject_name, subject_friendly, subject_key) = match &inv.credential {
        Credential::Gmc(chain) => {
            let leaf = chain.leaf();
            (
                block.wstr(&leaf.peer_name().to_string()),
                block.wstr(leaf.friendly_name()),
                cert_public_key_info(&mut block, leaf.public_key_der())?,
            )
        }
        Credential::Password => (ptr::null_mut(), ptr::null_mut(), ptr::null_mut()),
    };
    let (from, to) = inv.validity();
    let roles: Vec<GUID> = inv.roles.iter().map(|r| role_guid(*r)).collect();
    let value = PEER_INVITATION_INFO {
        dwSize: size_of::<PEER_INVITATION_INFO>() as DWORD,
        dwFlags: 0,
        pwzCloudName: block.wstr(&inv.cloud),
        dwScope: inv.scope,
        dwCloudFlags: inv.cloud_flags,
        pwzGroupPeerName: block.wstr(&inv.group_name.to_string()),
        pwzIssuerPeerName: block.wstr(&inv.issuer_peer_name),
        pwzSubjectPeerName: subject_name,
        pwzGroupFriendlyName: block.wstr(&inv.group_friendly_name),
        pwzIssuerFriendlyName: block.wstr(&inv.issuer_friendly_name),
        pwzSubjectFriendlyName: subject_friendly,
        ftValidityStart: filetime_from_unix(from),
        ftValidityEnd: filetime_from_unix(to),
        cRoles: roles.len() as u32,
        pRoles: block.array(&roles),
        cClassifiers: 0,
        ppwzClassifiers: ptr::null_mut(),
        pSubjectPublicKey: subject_key,
        authScheme: inv.auth_scheme() as i32,
    };
    // SAFETY: the root holds one zeroed, aligned PEER_INVITATION_INFO owned by the block.
    unsafe { root.write(value) };
    Ok(block.into_raw() as *mut PEER_INVITATION_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::free_block;
    use crate::types::{
        PEER_GROUP_ROLE_ADMIN, PEER_GROUP_ROLE_INVITING_MEMBER, PEER_GROUP_ROLE_MEMBER,
    };

    #[test]
    fn filetime_and_unix_time() {
        // 1970-01-01 is 116444736000000000 ticks (0x019DB1DED53E8000).
        let epoch = filetime_from_unix(0);
        assert_eq!(epoch.dwHighDateTime, 0x019D_B1DE);
        assert_eq!(epoch.dwLowDateTime, 0xD53E_8000);
        assert_eq!(unix_from_filetime(epoch), 0);
        for t in [1, 1_700_000_000, -1, 32_503_680_000 * 10] {
            assert_eq!(unix_from_filetime(filetime_from_unix(t)), t);
        }
        // Sub-second ticks are dropped; before 1601 clamps to 0.
        let mut ft = filetime_from_unix(5);
        ft.dwLowDateTime += 9_999_999;
        assert_eq!(unix_from_filetime(ft), 5);
        assert_eq!(filetime_from_unix(i64::MIN), FILETIME::default());
        assert_eq!(
            unix_from_filetime(FILETIME::default()),
            -FILETIME_UNIX_OFFSET_SECS
        );
        let max = filetime_from_unix(i64::MAX);
        assert_eq!(
            (max.dwLowDateTime, max.dwHighDateTime),
            (u32::MAX, u32::MAX)
        );
    }

    #[test]
    fn filetime_and_unix_ms() {
        // 1970-01-01 is 116444736000000000 ticks either way.
        assert_eq!(filetime_from_unix_ms(0), filetime_from_unix(0));
        assert_eq!(unix_ms_from_filetime(filetime_from_unix(0)), 0);
        assert_eq!(
            filetime_from_unix_ms(1_700_000_000_000),
            filetime_from_unix(1_700_000_000)
        );
        for t in [1, 999, 1_700_000_000_123, -1, -11_644_473_600_000] {
            assert_eq!(unix_ms_from_filetime(filetime_from_unix_ms(t)), t);
        }
        // ticks = (ms + 11644473600000) × 10⁴; sub-millisecond ticks are dropped.
        let mut ft = filetime_from_unix_ms(5);
        let ticks = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
        assert_eq!(ticks, (5 + 11_644_473_600_000) * 10_000);
        ft.dwLowDateTime += 9_999;
        assert_eq!(unix_ms_from_filetime(ft), 5);
        assert_eq!(filetime_from_unix_ms(i64::MIN), FILETIME::default());
        assert_eq!(
            unix_ms_from_filetime(FILETIME::default()),
            -FILETIME_UNIX_OFFSET_SECS * 1000
        );
        let max = filetime_from_unix_ms(i64::MAX);
        assert_eq!(
            (max.dwLowDateTime, max.dwHighDateTime),
            (u32::MAX, u32::MAX)
        );
    }

    #[test]
    fn guid_bytes_are_windows_order() {
        let g = GUID {
            Data1: 0x0403_0201,
            Data2: 0x0605,
            Data3: 0x0807,
            Data4: [9, 10, 11, 12, 13, 14, 15, 16],
        };
        let b = guid_bytes(&g);
        assert_eq!(b, core::array::from_fn::<u8, 16, _>(|i| i as u8 + 1));
        assert_eq!(guid_from_bytes(&b), g);
    }

    #[test]
    fn records_round_trip_through_a_block() {
        let rec = Record {
            record_type: [7; 16],
            id: core::array::from_fn(|i| i as u8),
            id_nonce: [0; 16],
            version: 3,
            flags: 0,
            creator: "a.creator".into(),
            modifier: "b.modifier".into(),
            attributes: "<attributes/>".into(),
            created: 1_700_000_000_001,
            expires: 1_800_000_000_002,
            modified: 1_750_000_000_003,
            data: vec![1, 2, 3],
            security: vec![9; 40],
        };
        let out = record_block(&rec);
        {
            // SAFETY: a live block holding a PEER_RECORD.
            let r = unsafe { &*out };
            assert_eq!(r.dwVersion, 3);
            assert_eq!(text(r.pwzCreatorId), "a.creator");
            assert_eq!(text(r.pwzModifiedById), "b.modifier");
            assert_eq!(unix_ms_from_filetime(r.ftCreation), rec.created);
            assert_eq!(unix_ms_from_filetime(r.ftLastModified), rec.modified);
            assert_eq!(r.securityData.cbData, 40);
            // SAFETY: a live PEER_RECORD with NUL-terminated strings and sized data.
            let back = unsafe { read_record(out) }.unwrap();
            assert_eq!(back.record_type, rec.record_type);
            assert_eq!(back.id, rec.id);
            assert_eq!(back.attributes, rec.attributes);
            assert_eq!(back.expires_ms, rec.expires);
            assert_eq!(back.data, rec.data);
        }
        // A wrong dwSize and data without bytes are refused.
        // SAFETY: a live block holding a PEER_RECORD.
        let mut copy = unsafe { out.read() };
        copy.dwSize -= 1;
        // SAFETY: a complete structure.
        assert_eq!(unsafe { read_record(&copy) }, Err(hresult::E_INVALIDARG));
        copy.dwSize += 1;
        copy.data.pbData = ptr::null_mut();
        // SAFETY: a complete structure.
        assert_eq!(unsafe { read_record(&copy) }, Err(hresult::E_INVALIDARG));
        // SAFETY: made by into_raw, freed once.
        assert!(unsafe { free_block(out as *mut u8) });
    }

    #[test]
    fn role_guids_are_microsofts() {
        assert_eq!(role_guid(Role::Admin), PEER_GROUP_ROLE_ADMIN);
        assert_eq!(role_guid(Role::Member), PEER_GROUP_ROLE_MEMBER);
        assert_eq!(
            role_guid(Role::InvitingMember),
            PEER_GROUP_ROLE_INVITING_MEMBER
        );
        for r in Role::ALL {
            assert_eq!(guid_role(&role_guid(r)), Ok(r));
        }
        let mut other = PEER_GROUP_ROLE_MEMBER;
        other.Data4[7] ^= 1;
        assert_eq!(
            guid_role(&other),
            Err(hresult::PEER_E_INVALID_ROLE_PROPERTY)
        );
        assert_eq!(
            guid_role(&GUID::default()),
            Err(hresult::PEER_E_INVALID_ROLE_PROPERTY)
        );
    }

    #[test]
    fn addresses_round_trip_and_v4_mapped_become_ipv4() {
        for text in [
            "127.0.0.1:4000",
            "[::1]:5",
            "[fe80::1%3]:65535",
            "[2001:db8::7]:1",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let pa = peer_address_from_socket_addr(&addr);
            assert_eq!(pa.sin6.sin6_family, libc::AF_INET6 as libc::sa_family_t);
            assert_eq!(socket_addr_from_peer_address(&pa), Ok(addr), "{text}");
        }
        let v4: SocketAddr = "10.1.2.3:99".parse().unwrap();
        let pa = peer_address_from_socket_addr(&v4);
        assert_eq!(&pa.sin6.sin6_addr.s6_addr[10..], &[0xff, 0xff, 10, 1, 2, 3]);
        assert_eq!(pa.sin6.sin6_port, 99u16.to_be());
        let mut bad = pa;
        bad.dwSize = 4;
        assert_eq!(
            socket_addr_from_peer_address(&bad),
            Err(hresult::E_INVALIDARG)
        );
        let mut bad = pa;
        bad.sin6.sin6_family = libc::AF_INET as libc::sa_family_t;
        assert_eq!(
            socket_addr_from_peer_address(&bad),
            Err(hresult::E_INVALIDARG)
        );
    }

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().chain([0]).collect()
    }

    #[test]
    fn properties_read_every_field_and_round_trip_through_a_block() {
        let (cloud, class, friendly, comment, pw) = (
            w("Global_"),
            w("chat"),
            w("Chat room"),
            w("a comment"),
            w("secret"),
        );
        let input = PEER_GROUP_PROPERTIES {
            dwSize: size_of::<PEER_GROUP_PROPERTIES>() as DWORD,
            dwFlags: 0x2,
            pwzCloud: cloud.as_ptr() as PWSTR,
            pwzClassifier: class.as_ptr() as PWSTR,
            pwzGroupPeerName: ptr::null_mut(),
            pwzCreatorPeerName: ptr::null_mut(),
            pwzFriendlyName: friendly.as_ptr() as PWSTR,
            pwzComment: comment.as_ptr() as PWSTR,
            ulMemberDataLifetime: 86_400,
            ulPresenceLifetime: 600,
            dwAuthenticationSchemes: 0x3,
            pwzGroupPassword: pw.as_ptr() as PWSTR,
            groupPasswordRole: PEER_GROUP_ROLE_INVITING_MEMBER,
        };
        // SAFETY: a complete structure with NUL-terminated strings that outlive the call.
        let props = unsafe { read_properties(&input) }.unwrap();
        assert_eq!(props.flags, 0x2);
        assert_eq!(props.cloud, "Global_");
        assert_eq!(props.classifier, "chat");
        assert_eq!(props.group_peer_name, "");
        assert_eq!(props.creator_peer_name, "");
        assert_eq!(props.friendly_name, "Chat room");
        assert_eq!(props.comment, "a comment");
        assert_eq!(props.member_data_lifetime, 86_400);
        assert_eq!(props.presence_lifetime, 600);
        assert_eq!(props.authentication_schemes, 0x3);
        assert_eq!(props.group_password.as_deref(), Some("secret"));
        assert_eq!(props.group_password_role, Role::InvitingMember);

        let out = properties_block(&props);
        // SAFETY: `out` is a live block holding a PEER_GROUP_PROPERTIES.
        let back = unsafe { read_properties(out) }.unwrap();
        assert_eq!(back, props);
        // SAFETY: made by into_raw, freed once.
        assert!(unsafe { free_block(out as *mut u8) });

        // An XP-sized structure keeps the Vista defaults; smaller is refused.
        let mut xp = input;
        xp.dwSize = PEER_GROUP_PROPERTIES_XP_SIZE as DWORD;
        // SAFETY: as above.
        let props = unsafe { read_properties(&xp) }.unwrap();
        assert_eq!(props.authentication_schemes, 0x1);
        assert_eq!(props.group_password, None);
        assert_eq!(props.group_password_role, Role::Member);
        xp.dwSize -= 1;
        // SAFETY: as above.
        assert_eq!(unsafe { read_properties(&xp) }, Err(hresult::E_INVALIDARG));
        // A zero role is Member; a GUID that is no role is refused.
        let mut r = input;
        r.groupPasswordRole = GUID::default();
        // SAFETY: as above.
        assert_eq!(
            unsafe { read_properties(&r) }.unwrap().group_password_role,
            Role::Member
        );
        r.groupPasswordRole.Data1 = 7;
        // SAFETY: as above.
        assert_eq!(
            unsafe { read_properties(&r) },
            Err(hresult::PEER_E_INVALID_ROLE_PROPERTY)
        );
    }

    /// Reads a NUL-terminated wide string of a block.
    fn text(p: PWSTR) -> String {
        assert!(!p.is_null());
        // SAFETY: the block's strings are NUL-terminated.
        unsafe { read_opt(p) }.unwrap().unwrap()
    }

    #[test]
    fn invitation_info_fills_every_field() {
        use peergroup_core::identity::gmc::GroupRoot;
        use peergroup_core::identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};

        let root = GroupRoot::create("club", "The Club").unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = IdentityCertificate::issue(&key, "bob", "Bob").unwrap();
        let from = root.certificate().not_before();
        let chain = root
            .issue(
                &cert,
                &[Role::Member, Role::InvitingMember],
                from,
                from + 3600,
            )
            .unwrap();
        let mut inv = Invitation {
            group_name: root.group_name().clone(),
            group_friendly_name: "The Club".into(),
            cloud: "Global_".into(),
            scope: 1,
            cloud_flags: 0,
            issuer_peer_name: "issuer.alice".into(),
            issuer_friendly_name: "Alice".into(),
            grc: root.certificate().clone(),
            credential: Credential::Gmc(chain),
            roles: vec![Role::InvitingMember, Role::Member],
            addresses: vec![],
        };
        let info = invitation_block(&inv).unwrap();
        {
            // SAFETY: a live block holding a PEER_INVITATION_INFO.
            let i = unsafe { &*info };
            assert_eq!(i.dwSize as usize, size_of::<PEER_INVITATION_INFO>());
            assert_eq!(i.dwFlags, 0);
            assert_eq!(text(i.pwzCloudName), "Global_");
            assert_eq!((i.dwScope, i.dwCloudFlags), (1, 0));
            assert_eq!(text(i.pwzGroupPeerName), root.group_name().to_string());
            assert_eq!(text(i.pwzIssuerPeerName), "issuer.alice");
            assert_eq!(text(i.pwzSubjectPeerName), cert.peer_name().to_string());
            assert_eq!(text(i.pwzGroupFriendlyName), "The Club");
            assert_eq!(text(i.pwzIssuerFriendlyName), "Alice");
            assert_eq!(text(i.pwzSubjectFriendlyName), "Bob");
            assert_eq!(unix_from_filetime(i.ftValidityStart), from);
            assert_eq!(unix_from_filetime(i.ftValidityEnd), from + 3600);
            assert_eq!(i.cRoles, 2);
            // SAFETY: pRoles holds cRoles GUIDs.
            let roles = unsafe { std::slice::from_raw_parts(i.pRoles, 2) };
            assert_eq!(
                roles,
                &[PEER_GROUP_ROLE_INVITING_MEMBER, PEER_GROUP_ROLE_MEMBER]
            );
            assert_eq!(i.cClassifiers, 0);
            assert!(i.ppwzClassifiers.is_null());
            assert_eq!(i.authScheme, 1);
            assert!(!i.pSubjectPublicKey.is_null());
            // SAFETY: a live CERT_PUBLIC_KEY_INFO of the block.
            let k = unsafe { &*i.pSubjectPublicKey };
            // SAFETY: pszObjId is NUL-terminated.
            let oid = unsafe { std::ffi::CStr::from_ptr(k.Algorithm.pszObjId) };
            assert_eq!(oid.to_str().unwrap(), "1.2.840.10045.2.1");
            assert_eq!(k.Algorithm.Parameters.cbData, 10);
            assert_eq!(k.PublicKey.cbData, 65);
            assert_eq!(k.PublicKey.cUnusedBits, 0);
            // SAFETY: pbData holds cbData bytes.
            let bits = unsafe { std::slice::from_raw_parts(k.PublicKey.pbData, 65) };
            assert_eq!(
                bits,
                &key.public_key_der()[key.public_key_der().len() - 65..]
            );
        }
        // SAFETY: made by into_raw, freed once.
        assert!(unsafe { free_block(info as *mut u8) });

        // A password invitation has no subject.
        inv.credential = Credential::Password;
        inv.roles = vec![Role::Member];
        let info = invitation_block(&inv).unwrap();
        {
            // SAFETY: a live block holding a PEER_INVITATION_INFO.
            let i = unsafe { &*info };
            assert!(i.pwzSubjectPeerName.is_null() && i.pwzSubjectFriendlyName.is_null());
            assert!(i.pSubjectPublicKey.is_null());
            assert_eq!(i.authScheme, 2);
            assert_eq!(
                unix_from_filetime(i.ftValidityEnd),
                root.certificate().not_after()
            );
        }
        // SAFETY: made by into_raw, freed once.
        assert!(unsafe { free_block(info as *mut u8) });
    }
}
