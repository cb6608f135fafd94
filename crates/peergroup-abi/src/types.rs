//! The C types of `p2p.h`, laid out as in the Windows SDK (field names and order kept).
//!
//! Type mapping (see `docs/c-api.md`): `WCHAR` is `char16_t` (UTF-16), `DWORD`/`ULONG` are
//! `uint32_t`, `HRESULT` is `int32_t`, `SOCKADDR_IN6` is Linux's `struct sockaddr_in6`.
//! Structures that later issues fill are declared now so the header is complete.

#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use std::ffi::c_void;

/// `HRESULT`: the same type as the identity layer's.
pub type HRESULT = i32;

/// `DWORD`.
pub type DWORD = u32;
/// `ULONG`.
pub type ULONG = u32;
/// `WORD`.
pub type WORD = u16;
/// `ULONGLONG`.
pub type ULONGLONG = u64;
/// `BOOL`.
pub type BOOL = i32;
/// `BYTE`.
pub type BYTE = u8;
/// `PBYTE`.
pub type PBYTE = *mut BYTE;
/// `WCHAR`: a UTF-16 code unit (`char16_t` in the header).
pub type WCHAR = u16;
/// `PWSTR`.
pub type PWSTR = *mut WCHAR;
/// `PCWSTR`.
pub type PCWSTR = *const WCHAR;
/// `PVOID`.
pub type PVOID = *mut c_void;
/// `HANDLE`: for events, an eventfd descriptor cast with `(HANDLE)(intptr_t)fd`.
pub type HANDLE = *mut c_void;
/// `HCRYPTPROV`: a handle on an identity's key pair.
pub type HCRYPTPROV = usize;
/// A group handle.
pub type HGROUP = *mut c_void;
/// An event registration handle.
pub type HPEEREVENT = *mut c_void;
/// An enumeration handle.
pub type HPEERENUM = *mut c_void;
/// `SOCKADDR_IN6`: Linux's `struct sockaddr_in6`.
pub type SOCKADDR_IN6 = libc::sockaddr_in6;

/// `GUID`, with the Windows layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// `PEER_ROLE_ID`.
pub type PEER_ROLE_ID = GUID;

/// `FILETIME`: 100 ns ticks since 1601-01-01 UTC, split in two halves.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILETIME {
    pub dwLowDateTime: DWORD,
    pub dwHighDateTime: DWORD,
}

/// `PEER_VERSION_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PEER_VERSION_DATA {
    pub wVersion: WORD,
    pub wHighestVersion: WORD,
}

/// `PEER_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_DATA {
    pub cbData: ULONG,
    pub pbData: PBYTE,
}

/// `PEER_NAME_PAIR`: the item of `PeerEnumIdentities` and `PeerEnumGroups`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_NAME_PAIR {
    pub dwSize: DWORD,
    pub pwzPeerName: PWSTR,
    pub pwzFriendlyName: PWSTR,
}

/// `PEER_RECORD`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_RECORD {
    pub dwSize: DWORD,
    pub r#type: GUID,
    pub id: GUID,
    pub dwVersion: DWORD,
    pub dwFlags: DWORD,
    pub pwzCreatorId: PWSTR,
    pub pwzModifiedById: PWSTR,
    pub pwzAttributes: PWSTR,
    pub ftCreation: FILETIME,
    pub ftExpiration: FILETIME,
    pub ftLastModified: FILETIME,
    pub securityData: PEER_DATA,
    pub data: PEER_DATA,
}

/// `PEER_ADDRESS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PEER_ADDRESS {
    pub dwSize: DWORD,
    pub sin6: SOCKADDR_IN6,
}

/// `PEER_CONNECTION_INFO`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PEER_CONNECTION_INFO {
    pub dwSize: DWORD,
    pub dwFlags: DWORD,
    pub ullConnectionId: ULONGLONG,
    pub ullNodeId: ULONGLONG,
    pub pwzPeerId: PWSTR,
    pub address: PEER_ADDRESS,
}

/// Peergroup extension (`PeerGroupGetReachability`): what this member knows of the NAT in
/// front of it and where it says it can be reached. One block for `PeerFreeData`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PEERGROUP_REACHABILITY {
    /// `sizeof(PEERGROUP_REACHABILITY)`.
    pub dwSize: DWORD,
    /// The NAT's mapping class, from other members' views: `PEERGROUP_NAT_*`.
    pub natClass: PEERGROUP_NAT_CLASS,
    /// Whether a member it never sent to reached it unasked (a dial-back):
    /// `PEERGROUP_OUTSIDE_*`.
    pub outside: PEERGROUP_OUTSIDE,
    /// Where that dial-back reached it; all zero (`dwSize` 0) unless `outside` is
    /// `PEERGROUP_OUTSIDE_REACHABLE`.
    pub reachableAt: PEER_ADDRESS,
    /// The addresses presence and invitations carry (confirmed, mapped, then interface).
    pub cAddresses: ULONG,
    pub pAddresses: *mut PEER_ADDRESS,
    /// The relay members it names: where a member that cannot dial it reaches the group.
    pub cRelays: ULONG,
    pub pRelays: *mut PEER_ADDRESS,
}

/// `PEER_EVENT_INCOMING_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_EVENT_INCOMING_DATA {
    pub dwSize: DWORD,
    pub ullConnectionId: ULONGLONG,
    pub r#type: GUID,
    pub data: PEER_DATA,
}

/// `PEER_EVENT_RECORD_CHANGE_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_EVENT_RECORD_CHANGE_DATA {
    pub dwSize: DWORD,
    pub changeType: PEER_RECORD_CHANGE_TYPE,
    pub recordId: GUID,
    pub recordType: GUID,
}

/// `PEER_EVENT_CONNECTION_CHANGE_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_EVENT_CONNECTION_CHANGE_DATA {
    pub dwSize: DWORD,
    pub status: PEER_CONNECTION_STATUS,
    pub ullConnectionId: ULONGLONG,
    pub ullNodeId: ULONGLONG,
    pub ullNextConnectionId: ULONGLONG,
    pub hrConnectionFailedReason: HRESULT,
}

/// `PEER_EVENT_MEMBER_CHANGE_DATA`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_EVENT_MEMBER_CHANGE_DATA {
    pub dwSize: DWORD,
    pub changeType: PEER_MEMBER_CHANGE_TYPE,
    pub pwzIdentity: PWSTR,
}

/// `PEER_GROUP_EVENT_REGISTRATION`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_GROUP_EVENT_REGISTRATION {
    pub eventType: PEER_GROUP_EVENT_TYPE,
    pub pType: *mut GUID,
}

/// The payload union of [`PEER_GROUP_EVENT_DATA`]; anonymous in the C header.
#[repr(C)]
#[derive(Clone, Copy)]
pub union PEER_GROUP_EVENT_DATA_UNION {
    pub dwStatus: PEER_GROUP_STATUS,
    pub incomingData: PEER_EVENT_INCOMING_DATA,
    pub recordChangeData: PEER_EVENT_RECORD_CHANGE_DATA,
    pub connectionChangeData: PEER_EVENT_CONNECTION_CHANGE_DATA,
    pub memberChangeData: PEER_EVENT_MEMBER_CHANGE_DATA,
    pub hrConnectionFailedReason: HRESULT,
}

/// `PEER_GROUP_EVENT_DATA`. The header declares it by hand with an anonymous union so that
/// Windows code such as `pEventData->incomingData` compiles; the layouts are the same.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PEER_GROUP_EVENT_DATA {
    pub eventType: PEER_GROUP_EVENT_TYPE,
    pub u: PEER_GROUP_EVENT_DATA_UNION,
}

/// `CRYPT_OBJID_BLOB` (`CRYPT_DATA_BLOB` shape).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CRYPT_OBJID_BLOB {
    pub cbData: DWORD,
    pub pbData: *mut BYTE,
}

/// `CRYPT_ALGORITHM_IDENTIFIER`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CRYPT_ALGORITHM_IDENTIFIER {
    pub pszObjId: *mut std::ffi::c_char,
    pub Parameters: CRYPT_OBJID_BLOB,
}

/// `CRYPT_BIT_BLOB`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CRYPT_BIT_BLOB {
    pub cbData: DWORD,
    pub pbData: *mut BYTE,
    pub cUnusedBits: DWORD,
}

/// `CERT_PUBLIC_KEY_INFO`: an X.509 SubjectPublicKeyInfo, decoded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CERT_PUBLIC_KEY_INFO {
    pub Algorithm: CRYPT_ALGORITHM_IDENTIFIER,
    pub PublicKey: CRYPT_BIT_BLOB,
}

/// `PEER_CREDENTIAL_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_CREDENTIAL_INFO {
    pub dwSize: DWORD,
    pub dwFlags: DWORD,
    pub pwzFriendlyName: PWSTR,
    pub pPublicKey: *mut CERT_PUBLIC_KEY_INFO,
    pub pwzIssuerPeerName: PWSTR,
    pub pwzIssuerFriendlyName: PWSTR,
    pub ftValidityStart: FILETIME,
    pub ftValidityEnd: FILETIME,
    pub cRoles: ULONG,
    pub pRoles: *mut PEER_ROLE_ID,
}

/// `PEER_MEMBER`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_MEMBER {
    pub dwSize: DWORD,
    pub dwFlags: DWORD,
    pub pwzIdentity: PWSTR,
    pub pwzAttributes: PWSTR,
    pub ullNodeId: ULONGLONG,
    pub cAddresses: ULONG,
    pub pAddresses: *mut PEER_ADDRESS,
    pub pCredentialInfo: *mut PEER_CREDENTIAL_INFO,
}

/// `PEER_INVITATION_INFO`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_INVITATION_INFO {
    pub dwSize: DWORD,
    pub dwFlags: DWORD,
    pub pwzCloudName: PWSTR,
    pub dwScope: DWORD,
    pub dwCloudFlags: DWORD,
    pub pwzGroupPeerName: PWSTR,
    pub pwzIssuerPeerName: PWSTR,
    pub pwzSubjectPeerName: PWSTR,
    pub pwzGroupFriendlyName: PWSTR,
    pub pwzIssuerFriendlyName: PWSTR,
    pub pwzSubjectFriendlyName: PWSTR,
    pub ftValidityStart: FILETIME,
    pub ftValidityEnd: FILETIME,
    pub cRoles: ULONG,
    pub pRoles: *mut PEER_ROLE_ID,
    pub cClassifiers: ULONG,
    pub ppwzClassifiers: *mut PWSTR,
    pub pSubjectPublicKey: *mut CERT_PUBLIC_KEY_INFO,
    pub authScheme: PEER_GROUP_AUTHENTICATION_SCHEME,
}

/// `PEER_GROUP_PROPERTIES`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PEER_GROUP_PROPERTIES {
    pub dwSize: DWORD,
    pub dwFlags: DWORD,
    pub pwzCloud: PWSTR,
    pub pwzClassifier: PWSTR,
    pub pwzGroupPeerName: PWSTR,
    pub pwzCreatorPeerName: PWSTR,
    pub pwzFriendlyName: PWSTR,
    pub pwzComment: PWSTR,
    pub ulMemberDataLifetime: ULONG,
    pub ulPresenceLifetime: ULONG,
    pub dwAuthenticationSchemes: DWORD,
    pub pwzGroupPassword: PWSTR,
    pub groupPasswordRole: PEER_ROLE_ID,
}

/// `PEER_GROUP_EVENT_TYPE`.
pub type PEER_GROUP_EVENT_TYPE = i32;
/// `PEER_GROUP_STATUS`.
pub type PEER_GROUP_STATUS = i32;
/// `PEER_GROUP_PROPERTY_FLAGS`.
pub type PEER_GROUP_PROPERTY_FLAGS = i32;
/// `PEER_GROUP_AUTHENTICATION_SCHEME`.
pub type PEER_GROUP_AUTHENTICATION_SCHEME = i32;
/// `PEER_MEMBER_FLAGS`.
pub type PEER_MEMBER_FLAGS = i32;
/// `PEER_MEMBER_CHANGE_TYPE`.
pub type PEER_MEMBER_CHANGE_TYPE = i32;
/// `PEER_GROUP_ISSUE_CREDENTIAL_FLAGS`.
pub type PEER_GROUP_ISSUE_CREDENTIAL_FLAGS = i32;
/// `PEER_RECORD_CHANGE_TYPE`.
pub type PEER_RECORD_CHANGE_TYPE = i32;
/// `PEER_RECORD_FLAGS`.
pub type PEER_RECORD_FLAGS = i32;
/// `PEER_CONNECTION_STATUS`.
pub type PEER_CONNECTION_STATUS = i32;
/// `PEER_CONNECTION_FLAGS`.
pub type PEER_CONNECTION_FLAGS = i32;

/// Peergroup extension: `PEERGROUP_REACHABILITY::natClass`.
pub type PEERGROUP_NAT_CLASS = i32;
/// Peergroup extension: `PEERGROUP_REACHABILITY::outside`.
pub type PEERGROUP_OUTSIDE = i32;

/// `MAKEWORD(1,1)`: the Grouping version this library implements.
pub const PEER_GROUP_VERSION: WORD = 0x0101;

pub const PEER_GROUP_EVENT_STATUS_CHANGED: PEER_GROUP_EVENT_TYPE = 1;
pub const PEER_GROUP_EVENT_PROPERTY_CHANGED: PEER_GROUP_EVENT_TYPE = 2;
pub const PEER_GROUP_EVENT_RECORD_CHANGED: PEER_GROUP_EVENT_TYPE = 3;
pub const PEER_GROUP_EVENT_DIRECT_CONNECTION: PEER_GROUP_EVENT_TYPE = 4;
pub const PEER_GROUP_EVENT_NEIGHBOR_CONNECTION: PEER_GROUP_EVENT_TYPE = 5;
pub const PEER_GROUP_EVENT_INCOMING_DATA: PEER_GROUP_EVENT_TYPE = 6;
pub const PEER_GROUP_EVENT_MEMBER_CHANGED: PEER_GROUP_EVENT_TYPE = 8;
pub const PEER_GROUP_EVENT_CONNECTION_FAILED: PEER_GROUP_EVENT_TYPE = 10;
pub const PEER_GROUP_EVENT_AUTHENTICATION_FAILED: PEER_GROUP_EVENT_TYPE = 11;

pub const PEER_GROUP_STATUS_LISTENING: PEER_GROUP_STATUS = 0x1;
pub const PEER_GROUP_STATUS_HAS_CONNECTIONS: PEER_GROUP_STATUS = 0x2;

pub const PEER_MEMBER_DATA_OPTIONAL: PEER_GROUP_PROPERTY_FLAGS = 0x1;
pub const PEER_DISABLE_PRESENCE: PEER_GROUP_PROPERTY_FLAGS = 0x2;
pub const PEER_DEFER_EXPIRATION: PEER_GROUP_PROPERTY_FLAGS = 0x4;
/// Peergroup extension: members of this group do not relay for each other (administrators
/// set it with `PeerGroupSetProperties`).
pub const PEERGROUP_DISABLE_RELAYS: PEER_GROUP_PROPERTY_FLAGS = 0x1_0000;

pub const PEER_GROUP_GMC_AUTHENTICATION: PEER_GROUP_AUTHENTICATION_SCHEME = 0x1;
pub const PEER_GROUP_PASSWORD_AUTHENTICATION: PEER_GROUP_AUTHENTICATION_SCHEME = 0x2;

pub const PEER_MEMBER_PRESENT: PEER_MEMBER_FLAGS = 0x1;

pub const PEER_MEMBER_CONNECTED: PEER_MEMBER_CHANGE_TYPE = 1;
pub const PEER_MEMBER_DISCONNECTED: PEER_MEMBER_CHANGE_TYPE = 2;
pub const PEER_MEMBER_UPDATED: PEER_MEMBER_CHANGE_TYPE = 3;
pub const PEER_MEMBER_JOINED: PEER_MEMBER_CHANGE_TYPE = 4;
pub const PEER_MEMBER_LEFT: PEER_MEMBER_CHANGE_TYPE = 5;

pub const PEER_GROUP_STORE_CREDENTIALS: PEER_GROUP_ISSUE_CREDENTIAL_FLAGS = 0x1;

pub const PEER_RECORD_ADDED: PEER_RECORD_CHANGE_TYPE = 1;
pub const PEER_RECORD_UPDATED: PEER_RECORD_CHANGE_TYPE = 2;
pub const PEER_RECORD_DELETED: PEER_RECORD_CHANGE_TYPE = 3;
pub const PEER_RECORD_EXPIRED: PEER_RECORD_CHANGE_TYPE = 4;

pub const PEER_RECORD_FLAG_AUTOREFRESH: PEER_RECORD_FLAGS = 0x1;
pub const PEER_RECORD_FLAG_DELETED: PEER_RECORD_FLAGS = 0x2;

pub const PEER_CONNECTED: PEER_CONNECTION_STATUS = 1;
pub const PEER_DISCONNECTED: PEER_CONNECTION_STATUS = 2;
pub const PEER_CONNECTION_FAILED: PEER_CONNECTION_STATUS = 3;

pub const PEER_CONNECTION_NEIGHBOR: PEER_CONNECTION_FLAGS = 0x1;
pub const PEER_CONNECTION_DIRECT: PEER_CONNECTION_FLAGS = 0x2;
/// Peergroup extension, set in `PEER_CONNECTION_INFO::dwFlags` only (not a filter): the
/// connection runs through a relay member.
pub const PEERGROUP_CONNECTION_RELAYED: PEER_CONNECTION_FLAGS = 0x1_0000;

/// Peergroup extension: no member has told this one where it sees it yet.
pub const PEERGROUP_NAT_UNKNOWN: PEERGROUP_NAT_CLASS = 0;
/// Peergroup extension: members see an interface address, no NAT in front.
pub const PEERGROUP_NAT_NONE: PEERGROUP_NAT_CLASS = 1;
/// Peergroup extension: members at different IPs see one mapping (a cone NAT).
pub const PEERGROUP_NAT_ENDPOINT_INDEPENDENT: PEERGROUP_NAT_CLASS = 2;
/// Peergroup extension: members at different IPs see different mappings (symmetric).
pub const PEERGROUP_NAT_ENDPOINT_DEPENDENT: PEERGROUP_NAT_CLASS = 3;

/// Peergroup extension: not tested (no NAT, an endpoint-dependent one, no member to ask yet,
/// or the member moved since).
pub const PEERGROUP_OUTSIDE_UNKNOWN: PEERGROUP_OUTSIDE = 0;
/// Peergroup extension: a member it never sent to reached it unasked (a full cone).
pub const PEERGROUP_OUTSIDE_REACHABLE: PEERGROUP_OUTSIDE = 1;
/// Peergroup extension: a member asked to dial it did not get through (a restricted NAT).
pub const PEERGROUP_OUTSIDE_UNREACHABLE: PEERGROUP_OUTSIDE = 2;

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> GUID {
    GUID {
        Data1: d1,
        Data2: d2,
        Data3: d3,
        Data4: d4,
    }
}

/// `PEER_GROUP_ROLE_ADMIN` {04387127-aa56-450a-8ce5-4f565c6790f4}.
#[no_mangle]
pub static PEER_GROUP_ROLE_ADMIN: GUID = guid(
    0x0438_7127,
    0xaa56,
    0x450a,
    [0x8c, 0xe5, 0x4f, 0x56, 0x5c, 0x67, 0x90, 0xf4],
);
/// `PEER_GROUP_ROLE_MEMBER` {f12dc4c7-0857-4ca0-93fc-b1bb19a3d8c2}.
#[no_mangle]
pub static PEER_GROUP_ROLE_MEMBER: GUID = guid(
    0xf12d_c4c7,
    0x0857,
    0x4ca0,
    [0x93, 0xfc, 0xb1, 0xbb, 0x19, 0xa3, 0xd8, 0xc2],
);
/// `PEER_GROUP_ROLE_INVITING_MEMBER` {4370fd89-dc18-4cfb-8dbf-9853a8a9f905}.
#[no_mangle]
pub static PEER_GROUP_ROLE_INVITING_MEMBER: GUID = guid(
    0x4370_fd89,
    0xdc18,
    0x4cfb,
    [0x8d, 0xbf, 0x98, 0x53, 0xa8, 0xa9, 0xf9, 0x05],
);

// The header's HRESULT and the identity layer's must be one type.
const _: fn(HRESULT) -> peergroup_core::identity::hresult::HRESULT = |h| h;
