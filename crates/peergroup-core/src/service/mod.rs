//! Talking to `peergroupd`, the per-user Peergroup service that owns nodes, groups and
//! storage when it runs (see `docs/service.md`).
//!
//! [`proto`] is the wire format (always built: the fuzz crate decodes it without the `net`
//! feature); [`Client`] is one process's connection to the service (feature `net`).

#[cfg(feature = "net")]
mod client;
pub mod proto;

#[cfg(feature = "net")]
pub use client::{default_socket_path, read_frame, Client, ServiceSubscription};

/// The socket's file name inside the service directory.
pub const SOCKET_NAME: &str = "peergroupd.sock";
/// The service directory under `$XDG_RUNTIME_DIR`.
pub const SERVICE_DIR: &str = "peergroup";
/// The environment variable naming the socket explicitly (overrides `$XDG_RUNTIME_DIR`).
pub const SOCKET_ENV: &str = "PEERGROUP_SERVICE_SOCKET";
