//! HRESULT values of the Windows Peer-to-Peer API, exactly as the Windows SDK defines them.
//!
//! They live in the lowest crate so that every crate boundary can map its own error enum onto
//! the same numbers, and so that the C header is generated from this one list. Values come from
//! `shared/design/p2p-api-reference.md` (three independent tables agree on each).

/// The Windows `HRESULT`: negative values are failures, zero and positive values are successes.
pub type HRESULT = i32;

/// `HRESULT_FROM_WIN32(e)` for a Win32 error code.
pub const fn hresult_from_win32(e: u32) -> HRESULT {
    if e == 0 {
        0
    } else {
        (0x8007_0000 | (e & 0xFFFF)) as HRESULT
    }
}

/// True for S_OK and every other success code (`SUCCEEDED` in Windows).
pub const fn succeeded(hr: HRESULT) -> bool {
    hr >= 0
}

/// True for every failure code (`FAILED` in Windows).
pub const fn failed(hr: HRESULT) -> bool {
    hr < 0
}

macro_rules! hresults {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        $( $(#[$doc])* pub const $name: HRESULT = $value as u32 as HRESULT; )*

        /// Every named value, in declaration order: the source of the C header's `#define`s.
        pub const ALL: &[(&str, HRESULT)] = &[ $( (stringify!($name), $name), )* ];

        /// The symbolic name of a known HRESULT, for messages (`None` for unknown values).
        pub fn name(hr: HRESULT) -> Option<&'static str> {
            ALL.iter().find(|(_, v)| *v == hr).map(|(n, _)| *n)
        }
    };
}

hresults! {
    /// Success.
    S_OK = 0x0000_0000;
    /// Success, with a "false" answer.
    S_FALSE = 0x0000_0001;
    /// Not implemented.
    E_NOTIMPL = 0x8000_4001u32; // allowed: declared for C programs; no function returns it
    /// A required pointer argument was NULL.
    E_POINTER = 0x8000_4003u32;
    /// Unspecified failure.
    E_FAIL = 0x8000_4005u32;
    /// Catastrophic failure (used when a panic is caught at the C boundary).
    E_UNEXPECTED = 0x8000_FFFFu32;
    /// Access denied.
    E_ACCESSDENIED = 0x8007_0005u32;
    /// Invalid handle.
    E_HANDLE = 0x8007_0006u32;
    /// Out of memory.
    E_OUTOFMEMORY = 0x8007_000Eu32;
    /// An argument is invalid.
    E_INVALIDARG = 0x8007_0057u32;
    /// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`.
    HRESULT_FILE_NOT_FOUND = 0x8007_0002u32;
    /// `HRESULT_FROM_WIN32(ERROR_INVALID_PASSWORD)`: what Windows' PFX import returns for a wrong password.
    HRESULT_INVALID_PASSWORD = 0x8007_0056u32;
    /// `HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`.
    HRESULT_NO_MORE_ITEMS = 0x8007_0103u32;

    /// The object was not found (`HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`).
    PEER_E_NOT_FOUND = 0x8007_0490u32;
    /// The object already exists (`HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)`).
    PEER_E_ALREADY_EXISTS = 0x8007_00B7u32;
    /// The disk is full (`HRESULT_FROM_WIN32(ERROR_DISK_FULL)`).
    PEER_E_DISK_FULL = 0x8007_0070u32;

    /// IPv6 is not installed.
    PEER_E_IPV6_NOT_INSTALLED = 0x8063_0001u32;
    /// `PeerGroupStartup` has not been called.
    PEER_E_NOT_INITIALIZED = 0x8063_0002u32;
    /// The service cannot start.
    PEER_E_CANNOT_START_SERVICE = 0x8063_0003u32;
    /// Not licensed.
    PEER_E_NOT_LICENSED = 0x8063_0004u32;
    /// Invalid graph.
    PEER_E_INVALID_GRAPH = 0x8063_0010u32;
    /// The database name changed.
    PEER_E_DBNAME_CHANGED = 0x8063_0011u32;
    /// Duplicate graph.
    PEER_E_DUPLICATE_GRAPH = 0x8063_0012u32;
    /// The graph is not ready.
    PEER_E_GRAPH_NOT_READY = 0x8063_0013u32;
    /// The graph is shutting down.
    PEER_E_GRAPH_SHUTTING_DOWN = 0x8063_0014u32;
    /// The graph is in use.
    PEER_E_GRAPH_IN_USE = 0x8063_0015u32;
    /// Invalid database.
    PEER_E_INVALID_DATABASE = 0x8063_0016u32;
    /// Too many attributes.
    PEER_E_TOO_MANY_ATTRIBUTES = 0x8063_0017u32;
    /// No connection with that id.
    PEER_E_CONNECTION_NOT_FOUND = 0x8063_0103u32;
    /// A peer tried to connect to itself.
    PEER_E_CONNECT_SELF = 0x8063_0106u32;
    /// Already listening.
    PEER_E_ALREADY_LISTENING = 0x8063_0107u32;
    /// Node not found.
    PEER_E_NODE_NOT_FOUND = 0x8063_0108u32;
    /// The connection failed.
    PEER_E_CONNECTION_FAILED = 0x8063_0109u32;
    /// The connection is not authenticated.
    PEER_E_CONNECTION_NOT_AUTHENTICATED = 0x8063_010Au32;
    /// The connection was refused.
    PEER_E_CONNECTION_REFUSED = 0x8063_010Bu32;
    /// The classifier is too long.
    PEER_E_CLASSIFIER_TOO_LONG = 0x8063_0201u32;
    /// Too many identities.
    PEER_E_TOO_MANY_IDENTITIES = 0x8063_0202u32;
    /// The key cannot be accessed.
    PEER_E_NO_KEY_ACCESS = 0x8063_0203u32;
    /// The identity still has groups.
    PEER_E_GROUPS_EXIST = 0x8063_0204u32;
    /// Record not found.
    PEER_E_RECORD_NOT_FOUND = 0x8063_0301u32;
    /// Database access denied.
    PEER_E_DATABASE_ACCESSDENIED = 0x8063_0302u32;
    /// Database initialization failed.
    PEER_E_DBINITIALIZATION_FAILED = 0x8063_0303u32;
    /// The record is larger than allowed.
    PEER_E_MAX_RECORD_SIZE_EXCEEDED = 0x8063_0304u32;
    /// The database is already present.
    PEER_E_DATABASE_ALREADY_PRESENT = 0x8063_0305u32;
    /// The database is not present.
    PEER_E_DATABASE_NOT_PRESENT = 0x8063_0306u32;
    /// Identity not found.
    PEER_E_IDENTITY_NOT_FOUND = 0x8063_0401u32;
    /// Event handle not found.
    PEER_E_EVENT_HANDLE_NOT_FOUND = 0x8063_0501u32;
    /// Invalid search criteria.
    PEER_E_INVALID_SEARCH = 0x8063_0601u32;
    /// Invalid record attributes.
    PEER_E_INVALID_ATTRIBUTES = 0x8063_0602u32;
    /// The invitation is not trusted.
    PEER_E_INVITATION_NOT_TRUSTED = 0x8063_0701u32;
    /// The certificate chain is too long.
    PEER_E_CHAIN_TOO_LONG = 0x8063_0703u32;
    /// Outside the validity period.
    PEER_E_INVALID_TIME_PERIOD = 0x8063_0705u32;
    /// A circular certificate chain was detected.
    PEER_E_CIRCULAR_CHAIN_DETECTED = 0x8063_0706u32;
    /// The certificate store is corrupted.
    PEER_E_CERT_STORE_CORRUPTED = 0x8063_0801u32;
    /// No such cloud.
    PEER_E_NO_CLOUD = 0x8063_1001u32;
    /// The cloud name is ambiguous.
    PEER_E_CLOUD_NAME_AMBIGUOUS = 0x8063_1005u32;
    /// Invalid record.
    PEER_E_INVALID_RECORD = 0x8063_2010u32;
    /// Not authorized.
    PEER_E_NOT_AUTHORIZED = 0x8063_2020u32;
    /// The password does not meet policy.
    PEER_E_PASSWORD_DOES_NOT_MEET_POLICY = 0x8063_2021u32;
    /// Validation is deferred.
    PEER_E_DEFERRED_VALIDATION = 0x8063_2030u32;
    /// Invalid group properties.
    PEER_E_INVALID_GROUP_PROPERTIES = 0x8063_2040u32;
    /// Invalid peer name.
    PEER_E_INVALID_PEER_NAME = 0x8063_2050u32;
    /// Invalid classifier.
    PEER_E_INVALID_CLASSIFIER = 0x8063_2060u32;
    /// Invalid friendly name.
    PEER_E_INVALID_FRIENDLY_NAME = 0x8063_2070u32;
    /// Invalid role property.
    PEER_E_INVALID_ROLE_PROPERTY = 0x8063_2071u32;
    /// Invalid classifier property.
    PEER_E_INVALID_CLASSIFIER_PROPERTY = 0x8063_2072u32;
    /// Invalid record expiration.
    PEER_E_INVALID_RECORD_EXPIRATION = 0x8063_2080u32;
    /// Invalid credential info.
    PEER_E_INVALID_CREDENTIAL_INFO = 0x8063_2081u32;
    /// Invalid credential.
    PEER_E_INVALID_CREDENTIAL = 0x8063_2082u32;
    /// Invalid record size.
    PEER_E_INVALID_RECORD_SIZE = 0x8063_2083u32;
    /// Unsupported version.
    PEER_E_UNSUPPORTED_VERSION = 0x8063_2090u32;
    /// The group is not ready.
    PEER_E_GROUP_NOT_READY = 0x8063_2091u32;
    /// The group is in use.
    PEER_E_GROUP_IN_USE = 0x8063_2092u32;
    /// Invalid group handle.
    PEER_E_INVALID_GROUP = 0x8063_2093u32;
    /// No members found.
    PEER_E_NO_MEMBERS_FOUND = 0x8063_2094u32;
    /// No member connections.
    PEER_E_NO_MEMBER_CONNECTIONS = 0x8063_2095u32;
    /// Unable to listen.
    PEER_E_UNABLE_TO_LISTEN = 0x8063_2096u32;
    /// The identity was deleted.
    PEER_E_IDENTITY_DELETED = 0x8063_20A0u32;
    /// The service is not available.
    PEER_E_SERVICE_NOT_AVAILABLE = 0x8063_20A1u32;
    /// Contact not found.
    PEER_E_CONTACT_NOT_FOUND = 0x8063_6001u32;
    /// The peer name cannot be converted.
    PEER_E_CANNOT_CONVERT_PEER_NAME = 0x8063_4001u32;
    /// Invalid peer host name.
    PEER_E_INVALID_PEER_HOST_NAME = 0x8063_4002u32;
    /// No more data.
    PEER_E_NO_MORE = 0x8063_4003u32;
    /// Duplicate PNRP peer name.
    PEER_E_PNRP_DUPLICATE_PEER_NAME = 0x8063_4005u32;
    /// Timed out.
    PEER_E_TIMEOUT = 0x8063_7005u32;
    /// Invalid address.
    PEER_E_INVALID_ADDRESS = 0x8063_7007u32;

    /// Graph data created.
    PEER_S_GRAPH_DATA_CREATED = 0x0063_0001;
    /// No more event data: the drain loop of `PeerGroupGetEventData` ends here.
    PEER_S_NO_EVENT_DATA = 0x0063_0002;
    /// No connectivity.
    PEER_S_NO_CONNECTIVITY = 0x0063_0005;
    /// Already a member.
    PEER_S_ALREADY_A_MEMBER = 0x0063_0006;
    /// Already connected.
    PEER_S_ALREADY_CONNECTED = 0x0063_2000;
    /// Subscription exists.
    PEER_S_SUBSCRIPTION_EXISTS = 0x0063_6000;

    /// Bad UID.
    NTE_BAD_UID = 0x8009_0001u32;
    /// Bad hash.
    NTE_BAD_HASH = 0x8009_0002u32;
    /// Bad key.
    NTE_BAD_KEY = 0x8009_0003u32;
    /// Bad length.
    NTE_BAD_LEN = 0x8009_0004u32;
    /// Bad data.
    NTE_BAD_DATA = 0x8009_0005u32;
    /// Bad signature.
    NTE_BAD_SIGNATURE = 0x8009_0006u32;
    /// Bad version of provider or data.
    NTE_BAD_VER = 0x8009_0007u32;
    /// Bad algorithm id.
    NTE_BAD_ALGID = 0x8009_0008u32;
    /// Bad flags.
    NTE_BAD_FLAGS = 0x8009_0009u32;
    /// Bad type.
    NTE_BAD_TYPE = 0x8009_000Au32;
    /// Key not valid for use in this state.
    NTE_BAD_KEY_STATE = 0x8009_000Bu32;
    /// Key does not exist.
    NTE_NO_KEY = 0x8009_000Du32;
    /// Out of memory in the provider.
    NTE_NO_MEMORY = 0x8009_000Eu32;
    /// Object already exists.
    NTE_EXISTS = 0x8009_000Fu32;
    /// Access denied.
    NTE_PERM = 0x8009_0010u32;
    /// Object not found.
    NTE_NOT_FOUND = 0x8009_0011u32;
    /// Keyset does not exist.
    NTE_BAD_KEYSET = 0x8009_0016u32;
    /// Keyset not defined.
    NTE_KEYSET_NOT_DEF = 0x8009_0019u32;
    /// Internal provider error.
    NTE_FAIL = 0x8009_0020u32;
    /// Error during encode or decode.
    CRYPT_E_BAD_ENCODE = 0x8009_2002u32;
    /// Object or property not found.
    CRYPT_E_NOT_FOUND = 0x8009_2004u32;
    /// Object or property already exists.
    CRYPT_E_EXISTS = 0x8009_2005u32;
    /// ASN.1 bad tag value.
    CRYPT_E_ASN1_BADTAG = 0x8009_310Bu32;
    /// The certificate's signature does not verify.
    TRUST_E_CERT_SIGNATURE = 0x8009_6004u32;
    /// The certificate has expired.
    CERT_E_EXPIRED = 0x800B_0101u32;
    /// The chain ends in an untrusted root.
    CERT_E_UNTRUSTEDROOT = 0x800B_0109u32;
    /// A certificate chain could not be built.
    CERT_E_CHAINING = 0x800B_010Au32;
    /// The certificate was revoked.
    CERT_E_REVOKED = 0x800B_010Cu32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_reference() {
        assert_eq!(PEER_E_INVALID_GROUP as u32, 0x80632093);
        assert_eq!(PEER_E_GROUP_NOT_READY as u32, 0x80632091);
        assert_eq!(PEER_E_NOT_FOUND, hresult_from_win32(1168));
        assert_eq!(PEER_E_ALREADY_EXISTS, hresult_from_win32(183));
        assert_eq!(PEER_E_DISK_FULL, hresult_from_win32(112));
        assert_eq!(HRESULT_INVALID_PASSWORD, hresult_from_win32(86));
        assert!(succeeded(PEER_S_NO_EVENT_DATA) && PEER_S_NO_EVENT_DATA != S_OK);
        assert!(failed(NTE_BAD_DATA));
        assert_eq!(name(PEER_E_GROUPS_EXIST), Some("PEER_E_GROUPS_EXIST"));
        assert_eq!(name(0x1234), None);
    }
}
