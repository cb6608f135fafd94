//! The `peergroupd` command line, shared by the binary and the test harness's copy.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{bind_socket, current_uid, default_socket, Daemon, DaemonError};
use clap::Parser;
use peergroup_core::identity::IdentityStore;
use tokio::signal::unix::{signal, SignalKind};

/// The per-user Peergroup service.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The Unix socket (default: $PEERGROUP_SERVICE_SOCKET, else
    /// $XDG_RUNTIME_DIR/peergroup/peergroupd.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Data directory (default: $PEERGROUP_HOME, else $XDG_DATA_HOME/peergroup).
    #[arg(long, env = "PEERGROUP_HOME")]
    home: Option<PathBuf>,
    /// The transport node's address (default: $PEERGROUP_LISTEN, else [::]:0).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

async fn run(args: Args) -> Result<(), DaemonError> {
    let socket = match args.socket {
        Some(s) => s,
        None => default_socket()?,
    };
    let store = match args.home {
        Some(h) => IdentityStore::open(h),
        None => IdentityStore::from_env(),
    }
    .map_err(peergroup_core::CoreError::from)?;
    let listener = bind_socket(&socket).await?;
    let daemon = Daemon::new(store, args.listen, current_uid()?);
    let mut term = signal(SignalKind::terminate()).map_err(|source| DaemonError::Io {
        what: "installing the SIGTERM handler".into(),
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| DaemonError::Io {
        what: "installing the SIGINT handler".into(),
        source,
    })?;
    tracing::info!(socket = %socket.display(), "peergroupd serving");
    println!("listening {}", socket.display());
    let result = daemon
        .serve(listener, async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await;
    let _ = std::fs::remove_file(&socket);
    result
}

/// The `peergroupd` program: parses the command line, serves until SIGTERM or SIGINT, and
/// exits 1 with a message when it cannot serve.
pub fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peergroupd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("peergroupd: {e}");
        std::process::exit(1);
    }
}
