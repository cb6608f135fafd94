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
    /// An error that has no HRESULT (bad command-line use, unreadable file).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hresult: None,
            hint: None,
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
        match e {
            peergroup_core::CoreError::Identity(inner) => inner.into(),
            other => {
                let hint = match &other {
                    peergroup_core::CoreError::NotReady => Some(
                        "the group has not synchronised here yet: connect it while another member is online (`peergroup connect GROUP`)",
                    ),
                    peergroup_core::CoreError::RecordNotFound => {
                        Some("`peergroup record list GROUP` shows the live records")
                    }
                    peergroup_core::CoreError::NoAddress(_) => Some(
                        "the member is not known here: have it online in the group (`peergroup listen GROUP`), or give --address IP:PORT where it listens",
                    ),
                    peergroup_core::CoreError::ConnectToSelf => {
                        Some("--to names another member of the group, not yourself")
                    }
                    peergroup_core::CoreError::GroupInUse(_) => {
                        Some("close every process that has the group online, then retry")
                    }
                    peergroup_core::CoreError::InvalidDatabaseFile(_) => Some(
                        "the file is not an intact export of this group and member (`peergroup db export`)",
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
