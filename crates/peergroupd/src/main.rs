//! `peergroupd`: the per-user Peergroup service. See `docs/service.md`.
//!
//! ```text
//! peergroupd [--socket PATH] [--home DIR] [--listen IP:PORT]
//! ```
//!
//! Prints `listening <socket path>` on stdout once it accepts connections; SIGTERM or
//! SIGINT closes every group and exits 0.

#![forbid(unsafe_code)]

fn main() {
    peergroupd::cli::main()
}
