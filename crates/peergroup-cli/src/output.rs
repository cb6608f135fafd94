//! Errors as the command shows them: what failed, the HRESULT a Windows program would see,
//! and what to do about it.

use std::fmt;

use peergroup_core::identity::{hresult, IdentityError};

/// A failed command.
pub struct CliError {
    message: String,
    hresult: Option<i32>,
    hint: Option<&'static str>,
}

impl CliError {
    /// A bad argument (`E_INVALIDARG`): the message says what is wrong and how to write it.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hresult: Some(hresult::E_INVALIDARG),
            hint: Some("`peergroup help COMMAND` shows the command's arguments"),
        }
    }

    /// A file or stream that could not be read or written: `what` it was ("reading
    /// notes.txt") and the system's reason, with the HRESULT a Windows program would see
    /// (`HRESULT_FILE_NOT_FOUND`, `E_ACCESSDENIED`, else `E_FAIL`).
    pub fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        let (hr, hint) = match e.kind() {
            std::io::ErrorKind::NotFound => (
                hresult::HRESULT_FILE_NOT_FOUND,
                "check the path: the file or its directory does not exist",
            ),
            std::io::ErrorKind::PermissionDenied => (
                hresult::E_ACCESSDENIED,
                "check the permissions of the file and its directory",
            ),
            _ => (
                hresult::E_FAIL,
                "check the path, the free space and the permissions",
            ),
        };
        CliError {
            message: format!("{what}: {e}"),
            hresult: Some(hr),
            hint: Some(hint),
        }
    }

    /// Something the command waited for did not happen within its bound (`PEER_E_TIMEOUT`).
    pub fn timeout(message: impl Into<String>, hint: &'static str) -> Self {
        CliError {
            message: message.into(),
            hresult: Some(hresult::PEER_E_TIMEOUT),
            hint: Some(hint),
        }
    }

    /// A failure of the process itself (no runtime, no temporary directory): `E_FAIL`.
    pub fn internal(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        CliError {
            message: format!("{what}: {e}"),
            hresult: Some(hresult::E_FAIL),
            hint: Some(
                "the system is short of a resource (threads, file descriptors, disk): retry",
            ),
        }
    }

    /// A failure the core reported as an HRESULT outside an error value (a failed direct
    /// connection's reason, a timeout), with what to do about it.
    pub fn with_hresult(message: impl Into<String>, hr: i32, hint: Option<&'static str>) -> Self {
        CliError {
            message: message.into(),
            hresult: Some(hr),
            hint,
        }
    }
}

impl From<peergroup_core::CoreError> for CliError {
    fn from(e: peergroup_core::CoreError) -> Self {
        use peergroup_core::error::{InvitationError as I, ProtoError as P, RecordError};
        use peergroup_core::CoreError as C;
        match e {
            C::Proto(P::Identity(inner)) => inner.into(),
            other => {
                let hint = match &other {
                    C::NotReady => Some(
                        "the group has not synchronised here yet: connect it while another member is online (`peergroup connect GROUP`)",
                    ),
                    C::RecordNotFound => {
                        Some("`peergroup record list GROUP` shows the live records")
                    }
                    C::NoAddress(_) => Some(
                        "the member is not known here: have it online in the group (`peergroup listen GROUP`), or give --address IP:PORT where it listens",
                    ),
                    C::ConnectToSelf => {
                        Some("--to names another member of the group, not yourself")
                    }
                    C::GroupInUse(_) => {
                        Some("close every process that has the group online, then retry")
                    }
                    C::Proto(P::DatabaseFile(_)) => Some(
                        "the file is not an intact export of this group and member (`peergroup db export`)",
                    ),
                    C::GroupNotFound(_) => Some(
                        "`peergroup group list` shows the groups of the identity (give --as for another)",
                    ),
                    C::Proto(P::NotAuthorized(_)) => Some(
                        "the identity lacks the role: an administrator can grant it (`peergroup group issue-credentials`)",
                    ),
                    C::AlreadyMember(_) => {
                        Some("the identity is in the group already: `peergroup group show GROUP`")
                    }
                    C::Proto(P::Invitation(I::Expired)) => {
                        Some("the invitation is out of date: ask for a new one")
                    }
                    C::Proto(P::Invitation(I::NeedsJoin | I::NeedsPassword)) => Some(
                        "a password invitation needs --password; an identity invitation takes none",
                    ),
                    C::Proto(P::Invitation(_)) => Some(
                        "ask for a new invitation, made for this identity (`peergroup identity show --json` gives its XML)",
                    ),
                    C::PasswordRejected => {
                        Some("check the group password with the group's administrator")
                    }
                    C::NoMemberReachable(_) => Some(
                        "have a member online (`peergroup connect GROUP`) where the invitation says, or check $PEERGROUP_LISTEN",
                    ),
                    C::MemberNotFound(_) => {
                        Some("`peergroup members GROUP` lists the members known here")
                    }
                    C::Proto(P::Search(_) | P::Attributes(_)) => Some(
                        "write clauses as NAME=TYPE:VALUE (--where/--attr), or check the XML document",
                    ),
                    C::Proto(P::Record(RecordError::TooLarge)) | C::DataTooLarge(_) => {
                        Some("send large data with `peergroup send`, which splits it")
                    }
                    C::ServiceNotAvailable(_) => {
                        Some("start the service: `peergroupd` (or `systemctl --user start peergroupd`)")
                    }
                    C::Transport(_) => Some(
                        "check $PEERGROUP_LISTEN (an address of this machine, a free port) and the network",
                    ),
                    _ => None,
                };
                CliError {
                    message: other.to_string(),
                    hresult: Some(other.hresult()),
                    hint,
                }
            }
        }
    }
}

impl From<IdentityError> for CliError {
    fn from(e: IdentityError) -> Self {
        let hint = match &e {
            IdentityError::NotFound(_) => {
                Some("`peergroup identity list` shows the identities of this home")
            }
            IdentityError::WrongPassword => Some("check the password the export was made with"),
            IdentityError::Tampered
            | IdentityError::Truncated(_)
            | IdentityError::BadEncoding(_) => {
                Some("the export file is damaged: export the identity again")
            }
            IdentityError::GroupsExist(_) => Some("delete the identity's groups first"),
            IdentityError::KeyExists(_) | IdentityError::AlreadyExists(_) => {
                Some("the identity is already in this home")
            }
            IdentityError::InvalidPeerName(_) => Some(
                "a peer name is 40 hex digits, a dot and a classifier, as `identity list` prints",
            ),
            _ => None,
        };
        CliError {
            message: e.to_string(),
            hresult: Some(e.hresult()),
            hint,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hr) = self.hresult {
            let name = hresult::name(hr).unwrap_or("HRESULT");
            write!(f, " ({name}, 0x{:08X})", hr as u32)?;
        }
        if let Some(hint) = self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
