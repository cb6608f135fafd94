//! Talking to `peergroupd`, the per-user Peergroup service that owns nodes, groups and
//! storage when it runs (see `docs/service.md`).
//!
//! [`proto`] is the wire format (always built: the fuzz crate decodes it without the `net`
//! feature); [`Session`] is one process's conversation with the service and `remote` the
//! group calls made through it (feature `net`). `Peergroup` chooses between the service and
//! the in-process node ([`Mode`]).

pub mod proto;
#[cfg(feature = "net")]
pub(crate) mod remote;
#[cfg(feature = "net")]
mod session;

#[cfg(feature = "net")]
pub use session::{default_socket_path, read_frame, Session, SessionConfig};

/// The socket's file name inside the service directory.
pub const SOCKET_NAME: &str = "peergroupd.sock";
/// The service directory under `$XDG_RUNTIME_DIR`.
pub const SERVICE_DIR: &str = "peergroup";
/// The environment variable naming the socket explicitly (overrides `$XDG_RUNTIME_DIR`).
pub const SOCKET_ENV: &str = "PEERGROUP_SERVICE_SOCKET";
/// The environment variable choosing the [`Mode`].
pub const MODE_ENV: &str = "PEERGROUP_SERVICE";

/// Whether a `Peergroup` goes through `peergroupd` (`$PEERGROUP_SERVICE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Unset or `auto`: the service when one answers on the socket, else the in-process node.
    Auto,
    /// `required`: the service only; without one, calls fail with
    /// `PEER_E_SERVICE_NOT_AVAILABLE`.
    Required,
    /// `off`: the in-process node, even when a service runs.
    Off,
}

impl Mode {
    /// The mode `$PEERGROUP_SERVICE` asks for; an unknown value is `Auto` (and logged).
    pub fn from_env() -> Mode {
        match std::env::var(MODE_ENV).as_deref() {
            Err(_) | Ok("") | Ok("auto") => Mode::Auto,
            Ok("required") => Mode::Required,
            Ok("off") => Mode::Off,
            Ok(other) => {
                tracing::warn!("{MODE_ENV}={other} is not auto, required or off: using auto");
                Mode::Auto
            }
        }
    }
}
