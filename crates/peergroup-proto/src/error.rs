//! The group layer's error type and its one HRESULT table.

use crate::identity::hresult::{self, HRESULT};
use crate::identity::IdentityError;

/// Everything that can go wrong in the group layer.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// From the identity layer (keys, certificates, membership chains, the store).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// From the transport layer.
    #[error(transparent)]
    Transport(crate::transport::TransportError),
    /// Group properties out of range or not allowed here.
    #[error("invalid group properties: {0}")]
    InvalidProperties(String),
    /// The group classifier is not acceptable.
    #[error("invalid classifier: {0}")]
    InvalidClassifier(String),
    /// The group password does not meet the policy.
    #[error("group password: {0}")]
    PasswordPolicy(String),
    /// The caller's roles do not allow this.
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// The handle or group is closed, deleted or was never valid.
    #[error("invalid group")]
    InvalidGroup,
    /// The group has not synchronised yet.
    #[error("the group is not ready")]
    NotReady,
    /// No such group for this identity.
    #[error("group {0} not found")]
    GroupNotFound(String),
    /// The identity already belongs to this group.
    #[error("already a member of {0}")]
    AlreadyMember(String),
    /// The invitation text is malformed.
    #[error("invalid invitation: {0}")]
    InvalidInvitation(String),
    /// The invitation is not trusted (wrong group, bad signature, not for this identity).
    #[error("invitation not trusted: {0}")]
    InvitationNotTrusted(String),
    /// The invitation is expired or not yet valid.
    #[error("invitation outside its validity period")]
    InvitationExpired,
    /// The invitation needs the other join function (password vs. GMC).
    #[error("{0}")]
    WrongJoinKind(String),
    /// A stored group could not be read back.
    #[error("group store entry {path} is corrupted: {why}")]
    StoreCorrupted {
        /// The file concerned.
        path: String,
        /// What was wrong with it.
        why: String,
    },
    /// Password authentication failed: the password is wrong.
    #[error("the group password was not accepted")]
    PasswordRejected,
    /// No member of the group could be reached.
    #[error("no member reachable: {0}")]
    NoMemberReachable(String),
    /// A peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A record's attribute XML is malformed or breaks a rule (`PEER_RECORD.pwzAttributes`).
    #[error("invalid record attributes: {0}")]
    InvalidAttributes(String),
    /// A record carries more attributes than the database accepts.
    #[error(
        "too many record attributes (at most {})",
        crate::records::attributes::MAX_ATTRIBUTES
    )]
    TooManyAttributes,
    /// `PeerGroupSearchRecords` criteria break the schema.
    #[error("invalid search criteria: {0}")]
    InvalidSearch(String),
    /// A string clause of the search criteria holds a backslash sequence other than `\*`, `\?`
    /// or `\\`: Windows answers E_INVALIDARG for this one, not PEER_E_INVALID_SEARCH.
    #[error("invalid escape in search criteria: {0}")]
    InvalidSearchEscape(String),
    /// No record with this id (or it is deleted or expired).
    #[error("record not found")]
    RecordNotFound,
    /// A record breaks a field rule, does not decode, or its signature data is malformed.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The record's data is over `records::record::MAX_RECORD_DATA`, or its encoding over
    /// `records::record::MAX_RECORD_BYTES`.
    #[error("record too large")]
    MaxRecordSize,
    /// A record's expiration is missing, already past, or earlier than the stored version's
    /// (an update may keep or extend it, never shorten it).
    #[error("invalid record expiration: {0}")]
    InvalidRecordExpiration(String),
    /// The record database could not be opened, read or written.
    #[error("record database: {0}")]
    Database(String),
    /// The group is online (connected), and this operation is only allowed before
    /// `PeerGroupConnect`: database export and import.
    #[error("the group is in use: {0}")]
    GroupInUse(String),
    /// A database export file is truncated, corrupted, of another format, or of another
    /// group or member (`records::dbfile`).
    #[error("invalid database file: {0}")]
    InvalidDatabaseFile(String),
    /// No open neighbour or direct connection of the group has this id.
    #[error("no connection {0} in this group")]
    ConnectionNotFound(u64),
    /// A direct connection to oneself.
    #[error("cannot open a direct connection to oneself")]
    ConnectToSelf,
    /// `PeerGroupSendData` with more than `data::MAX_DATA_LEN` bytes.
    #[error("{0} bytes of data is more than one message may carry")]
    DataTooLarge(usize),
    /// No address is known for the member a direct connection was asked to.
    #[error("no address known for member {0}")]
    NoAddress(String),
    /// An event registration that does not fit the call (another group's, or not one for
    /// authentication failures).
    #[error("invalid event registration: {0}")]
    InvalidRegistration(String),
    /// `PeerGroupResumePasswordAuthentication` while password authentication is not
    /// suspended.
    #[error("password authentication is not suspended: nothing to resume")]
    NothingToResume,
    /// No member with this peer name is known (`PeerGroupEnumMembers` with an identity,
    /// `PeerGroupIssueCredentials` without credential information).
    #[error("member not found: {0}")]
    MemberNotFound(String),
    /// An argument outside what the call takes (unknown flags).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No Peergroup service (`peergroupd`) answers, or it went away mid-call.
    #[error("the Peergroup service is not available: {0}")]
    ServiceNotAvailable(String),
    /// A service frame is malformed, oversized or breaks a bound (`service::proto`).
    #[error("bad service message: {0}")]
    ServiceMessage(String),
    /// A service frame of a protocol version this build does not speak.
    #[error("service protocol version {0} is not supported")]
    ServiceVersion(u8),
    /// The service refused a request with this HRESULT (the one the in-process call gives).
    #[error("{message}")]
    Service {
        /// The HRESULT the service answered.
        hresult: HRESULT,
        /// Its reason text.
        message: String,
    },
}

/// Result alias of the group layer.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    /// The HRESULT a Windows program would see: the one table of this crate.
    pub fn hresult(&self) -> HRESULT {
        use CoreError::*;
        match self {
            Identity(e) => e.hresult(),
            Transport(e) => e.hresult(),
            InvalidProperties(_) => hresult::PEER_E_INVALID_GROUP_PROPERTIES,
            InvalidClassifier(_) => hresult::PEER_E_INVALID_CLASSIFIER,
            PasswordPolicy(_) => hresult::PEER_E_PASSWORD_DOES_NOT_MEET_POLICY,
            NotAuthorized(_) => hresult::PEER_E_NOT_AUTHORIZED,
            InvalidGroup => hresult::PEER_E_INVALID_GROUP,
            NotReady => hresult::PEER_E_GROUP_NOT_READY,
            GroupNotFound(_) => hresult::PEER_E_NOT_FOUND,
            AlreadyMember(_) => hresult::PEER_E_ALREADY_EXISTS,
            InvalidInvitation(_) => hresult::E_INVALIDARG,
            InvitationNotTrusted(_) => hresult::PEER_E_INVITATION_NOT_TRUSTED,
            InvitationExpired => hresult::PEER_E_INVALID_TIME_PERIOD,
            WrongJoinKind(_) => hresult::E_INVALIDARG,
            StoreCorrupted { .. } => hresult::PEER_E_INVALID_DATABASE,
            PasswordRejected => hresult::HRESULT_INVALID_PASSWORD,
            NoMemberReachable(_) => hresult::PEER_E_CONNECTION_FAILED,
            Protocol(_) => hresult::E_FAIL,
            InvalidAttributes(_) => hresult::PEER_E_INVALID_ATTRIBUTES,
            TooManyAttributes => hresult::PEER_E_TOO_MANY_ATTRIBUTES,
            InvalidSearch(_) => hresult::PEER_E_INVALID_SEARCH,
            InvalidSearchEscape(_) => hresult::E_INVALIDARG,
            RecordNotFound => hresult::PEER_E_RECORD_NOT_FOUND,
            InvalidRecord(_) => hresult::PEER_E_INVALID_RECORD,
            MaxRecordSize => hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED,
            InvalidRecordExpiration(_) => hresult::PEER_E_INVALID_RECORD_EXPIRATION,
            Database(_) => hresult::PEER_E_DBINITIALIZATION_FAILED,
            GroupInUse(_) => hresult::PEER_E_GROUP_IN_USE,
            InvalidDatabaseFile(_) => hresult::PEER_E_INVALID_DATABASE,
            ConnectionNotFound(_) => hresult::PEER_E_CONNECTION_NOT_FOUND,
            ConnectToSelf => hresult::PEER_E_CONNECT_SELF,
            DataTooLarge(_) => hresult::E_INVALIDARG,
            NoAddress(_) => hresult::PEER_E_NODE_NOT_FOUND,
            InvalidRegistration(_) => hresult::E_INVALIDARG,
            NothingToResume => hresult::PEER_E_NOT_FOUND,
            MemberNotFound(_) => hresult::PEER_E_IDENTITY_NOT_FOUND,
            InvalidArgument(_) => hresult::E_INVALIDARG,
            ServiceNotAvailable(_) => hresult::PEER_E_SERVICE_NOT_AVAILABLE,
            ServiceMessage(_) => hresult::E_INVALIDARG,
            ServiceVersion(_) => hresult::E_INVALIDARG,
            Service { hresult, .. } => *hresult,
        }
    }
}

impl From<crate::transport::TransportError> for CoreError {
    fn from(e: crate::transport::TransportError) -> Self {
        CoreError::Transport(e)
    }
}
