//! `cargo xtask ctest`: the C programs under `crates/peergroup-abi/tests/c/` are the only tests
//! that see the library the way C callers do (through `p2p.h` and the static archive), so they
//! run under AddressSanitizer, LeakSanitizer and UBSan to catch ownership mistakes at the ABI.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cargo, describe, display_path, run as run_command, target_dir, workspace_root};

/// A C test that hangs (a deadlock in a close path, say) must fail CI rather than stall it.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(120);

/// How many C programs passed and failed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Programs that compiled and exited 0.
    pub passed: usize,
    /// Programs that failed to compile, crashed, timed out or exited non-zero.
    pub failed: usize,
}

impl Summary {
    /// Ok when nothing failed.
    pub fn into_result(self) -> Result<()> {
        if self.failed > 0 {
            bail!("{} C test(s) failed", self.failed);
        }
        Ok(())
    }
}

/// Builds the library, then compiles and runs every `tests/c/*.c`, printing one line each and
/// the `ctest: N passed, N failed` summary.
pub fn run() -> Result<Summary> {
    let root = workspace_root();
    let sources = c_sources(&root.join("crates/peergroup-abi/tests/c"))?;
    let mut summary = Summary::default();
    if sources.is_empty() {
        println!("ctest: no C tests in crates/peergroup-abi/tests/c");
    } else {
        run_command(&mut cargo([
            "build",
            "-p",
            "peergroup-abi",
            "-p",
            "peergroupd",
        ]))?;
        let target = target_dir()?;
        let archive = target.join("debug/libpeergroup.a");
        if !archive.is_file() {
            bail!("{} was not built", display_path(&archive));
        }
        let daemon = target.join("debug/peergroupd");
        if !daemon.is_file() {
            bail!("{} was not built", display_path(&daemon));
        }
        let out_dir = target.join("ctest");
        fs::create_dir_all(&out_dir)?;
        for source in &sources {
            let name = source.file_stem().expect("a .c file has a stem");
            let program = out_dir.join(name);
            let started = Instant::now();
            let outcome =
                compile(source, &archive, &program).and_then(|()| execute(&program, &daemon));
            let secs = started.elapsed().as_secs_f64();
            let name = name.to_string_lossy();
            match outcome {
                Ok(()) => {
                    summary.passed += 1;
                    println!("ctest: {name} ... ok ({secs:.2}s)");
                }
                Err(e) => {
                    summary.failed += 1;
                    println!("ctest: {name} ... FAILED ({secs:.2}s): {e:#}");
                }
            }
        }
    }
    println!(
        "ctest: {} passed, {} failed",
        summary.passed, summary.failed
    );
    Ok(summary)
}

/// The `.c` files directly in `dir`, sorted; none when the directory does not exist yet.
fn c_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut sources = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", display_path(dir)))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "c") && path.is_file() {
            sources.push(path);
        }
    }
    sources.sort();
    Ok(sources)
}

/// One program per file: a crash in one test cannot hide the others. `$CC` overrides `cc`.
fn compile(source: &Path, archive: &Path, program: &Path) -> Result<()> {
    let root = workspace_root();
    let cc = std::env::var_os("CC").unwrap_or_else(|| OsString::from("cc"));
    let mut command = Command::new(cc);
    command
        .current_dir(root)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
        .arg("-I")
        .arg(relative(&root.join("crates/peergroup-abi/include")))
        .arg(relative(source))
        .arg(relative(archive))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(relative(program));
    run_command(&mut command).context("compilation failed")
}

/// Runs one program with the sanitizers set to abort and a fresh, private `PEERGROUP_HOME`;
/// `PEERGROUP_DAEMON` names the `peergroupd` binary for programs that start their own.
fn execute(program: &Path, daemon: &Path) -> Result<()> {
    let home = tempfile::Builder::new()
        .prefix("peergroup-ctest-")
        .tempdir()
        .context("creating a temporary PEERGROUP_HOME")?;
    let mut command = Command::new(program);
    command
        .current_dir(workspace_root())
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .env("PEERGROUP_HOME", home.path())
        .env("PEERGROUP_DAEMON", daemon);
    println!("$ {}", describe(&command));
    let child = command
        .spawn()
        .with_context(|| format!("could not start {}", display_path(program)))?;
    let status = wait_with_timeout(child, PROGRAM_TIMEOUT)?;
    if !status.success() {
        bail!("{status}");
    }
    Ok(())
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> Result<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            bail!("timed out after {} s", limit.as_secs());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Paths in the printed compiler command are relative to the root, where it runs.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .to_path_buf()
}
