//! The runtime's error: the deterministic group's ([`ProtoError`]) wrapped, plus what only a
//! running member meets (handles, the network, SQLite, the service), and this crate's
//! HRESULT table.

pub use peergroup_proto::error::*;

use crate::identity::hresult::{self, HRESULT};
use crate::identity::IdentityError;

/// Everything that can go wrong in the group layer.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The deterministic group refused (properties, invitations, records, attributes,
    /// search criteria, database files, roles) or the identity layer did.
    #[error(transparent)]
    Proto(ProtoError),
    /// From the transport layer.
    #[error(transparent)]
    Transport(crate::transport::TransportError),
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
    /// Password authentication refused before any exchange: too many wrong passwords from
    /// this identity or its address lately ([`crate::throttle`]); the seconds to wait.
    #[error("too many wrong passwords: try again in {0} s")]
    PasswordThrottled(u64),
    /// No member of the group could be reached.
    #[error("no member reachable: {0}")]
    NoMemberReachable(String),
    /// A peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// No record with this id (or it is deleted or expired).
    #[error("record not found")]
    RecordNotFound,
    /// The record database could not be opened, read or written.
    #[error("record database: {0}")]
    Database(String),
    /// The group is online (connected), and this operation is only allowed before
    /// `PeerGroupConnect`: database export and import.
    #[error("the group is in use: {0}")]
    GroupInUse(String),
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
    /// The HRESULT a Windows program would see: the one table of this crate (the
    /// deterministic group's errors keep the one of theirs).
    pub fn hresult(&self) -> HRESULT {
        use CoreError::*;
        match self {
            Proto(e) => e.hresult(),
            Transport(e) => e.hresult(),
            InvalidGroup => hresult::PEER_E_INVALID_GROUP,
            NotReady => hresult::PEER_E_GROUP_NOT_READY,
            GroupNotFound(_) => hresult::PEER_E_NOT_FOUND,
            AlreadyMember(_) => hresult::PEER_E_ALREADY_EXISTS,
            StoreCorrupted { .. } => hresult::PEER_E_INVALID_DATABASE,
            PasswordRejected => hresult::HRESULT_INVALID_PASSWORD,
            PasswordThrottled(_) => hresult::E_ACCESSDENIED,
            NoMemberReachable(_) => hresult::PEER_E_CONNECTION_FAILED,
            Protocol(_) => hresult::E_FAIL,
            RecordNotFound => hresult::PEER_E_RECORD_NOT_FOUND,
            Database(_) => hresult::PEER_E_DBINITIALIZATION_FAILED,
            GroupInUse(_) => hresult::PEER_E_GROUP_IN_USE,
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

/// A proto error comes back as the runtime's: a port failure that carried one of ours is
/// unwrapped to it, so a SQLite error raised under the machine reaches the caller unchanged.
impl From<ProtoError> for CoreError {
    fn from(e: ProtoError) -> Self {
        match e {
            ProtoError::Port(port) => {
                let hresult = port.hresult();
                match port.into_source().downcast::<CoreError>() {
                    Ok(ours) => *ours,
                    Err(other) => {
                        CoreError::Proto(ProtoError::Port(PortError::new(hresult, other)))
                    }
                }
            }
            other => CoreError::Proto(other),
        }
    }
}

/// The other way, for the ports this runtime implements: a proto error inside goes back as
/// itself, anything else rides as a [`PortError`] with its HRESULT.
impl From<CoreError> for ProtoError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Proto(p) => p,
            other => ProtoError::Port(PortError::new(other.hresult(), other)),
        }
    }
}

macro_rules! from_proto_part {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CoreError {
            fn from(e: $t) -> Self {
                CoreError::Proto(e.into())
            }
        }
    )*};
}

from_proto_part!(
    IdentityError,
    PropertiesError,
    InvitationError,
    RecordError,
    AttributesError,
    SearchError,
    DatabaseFileError,
    AuthorizationError,
);

impl From<crate::transport::TransportError> for CoreError {
    fn from(e: crate::transport::TransportError) -> Self {
        CoreError::Transport(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_error_crosses_the_machine_unchanged() {
        let through: ProtoError = CoreError::Database("disk full".into()).into();
        assert_eq!(through.hresult(), hresult::PEER_E_DBINITIALIZATION_FAILED);
        let back = CoreError::from(through);
        assert!(
            matches!(back, CoreError::Database(ref s) if s == "disk full"),
            "{back}"
        );
    }

    #[test]
    fn a_proto_error_is_not_wrapped_twice() {
        let e = CoreError::from(RecordError::TooLarge);
        let p: ProtoError = e.into();
        assert!(matches!(p, ProtoError::Record(RecordError::TooLarge)));
        assert_eq!(
            CoreError::from(p).hresult(),
            hresult::PEER_E_MAX_RECORD_SIZE_EXCEEDED
        );
    }
}
