//! The integration tests once more, served by `peergroupd`: `cargo xtask ci` runs them in
//! both modes (in-process, then through the service), as `cargo xtask service-tests` does
//! alone. One daemon, on a temporary socket and data directory, serves every test process
//! (each test names its own data directory, so the daemon runs an instance per directory);
//! `PEERGROUP_SERVICE=required` makes every `Peergroup` go through it, or fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{cargo, ctest, run, target_dir};

/// A running daemon; stopped with SIGTERM (and checked to exit cleanly) when dropped.
struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Result<(Daemon, std::path::PathBuf)> {
        run(&mut cargo(["build", "-p", "peergroupd"]))?;
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("run").join("peergroupd.sock");
        let program = target_dir()?.join("debug").join("peergroupd");
        let mut child = Command::new(&program)
            .arg("--socket")
            .arg(&socket)
            .arg("--home")
            .arg(dir.path().join("home"))
            .args(["--listen", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .env("PEERGROUP_SERVICE", "off")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("the daemon's stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != format!("listening {}", socket.display()) {
            let _ = child.kill();
            bail!("peergroupd did not start: {line:?}");
        }
        println!("peergroupd serves {}", socket.display());
        Ok((Daemon { child, _dir: dir }, socket))
    }

    fn stop(mut self) -> Result<()> {
        // The daemon closes its groups on SIGTERM and exits 0.
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("peergroupd exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the workspace's integration tests and the C tests through a fresh daemon.
pub fn run_tests() -> Result<()> {
    let (daemon, socket) = Daemon::start()?;
    let with_service = |command: &mut Command| {
        command
            .env("PEERGROUP_SERVICE", "required")
            .env("PEERGROUP_SERVICE_SOCKET", &socket);
    };
    let mut tests = cargo(["test", "--workspace", "--test", "*"]);
    with_service(&mut tests);
    run(&mut tests)?;
    // The C library reads the same variables; `ctest` passes the environment on.
    std::env::set_var("PEERGROUP_SERVICE", "required");
    std::env::set_var("PEERGROUP_SERVICE_SOCKET", &socket);
    let c = ctest::run();
    std::env::remove_var("PEERGROUP_SERVICE");
    std::env::remove_var("PEERGROUP_SERVICE_SOCKET");
    c?.into_result()?;
    daemon.stop()
}
