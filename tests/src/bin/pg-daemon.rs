//! `pg-daemon`: `peergroupd` built into this package, so that the integration tests can run
//! the service as a real process (`CARGO_BIN_EXE_*` names only a package's own binaries).
//! It is the same entry point as the `peergroupd` binary: `peergroupd::cli::main`.

fn main() {
    peergroupd::cli::main()
}
