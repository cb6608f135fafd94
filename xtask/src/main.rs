//! Project automation for Peergroup, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`), so that CI and developers run the same steps with nothing but cargo.
//!
//! Arguments are parsed by hand: there are a handful of commands and flags, and CI builds this
//! crate before anything else, so every dependency here is paid for on each fresh clone.

mod bench;
mod ci;
mod ctest;
mod fuzz;
mod header;
mod layers;
mod pkgconfig;
mod service;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                         fmt, clippy, tests (in-process, then through peergroupd),
                             header check, C tests, docs, fuzz smoke
  service-tests              the integration and C tests through a temporary peergroupd
  layers                     check that peergroup-proto holds no I/O (no runtime crate in its
                             tree, no file, socket, clock or thread in its code) and that no
                             peergroup-core module imports a room above its own
  header [--check]           regenerate crates/peergroup-abi/include/p2p.h and peergroup.pc (--check: fail if stale)
  ctest                      build the static library and run the C tests under ASan/UBSan
  bench [NAME]               run the benchmarks (or NAME: connect, reconcile); they print figures
  sim [SCENARIO...] [--seed N]
                             whole-group scenarios in the simulator (release build): flood-100,
                             flood-1000, partition-heal, churn, lossy; prints delivery times,
                             messages per member and whether every database is identical
  fuzz [--smoke] [TARGET] [-- LIBFUZZER_ARGS...]
                             run every fuzz target (or TARGET): 60 s each, or
                             FUZZ_SMOKE_SECONDS (default 5) with --smoke
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "ci" => {
            no_arguments(command, rest)?;
            ci::run()
        }
        "header" => match rest {
            [] => header::write(),
            [flag] if flag == "--check" => header::check(),
            _ => bail!("usage: cargo xtask header [--check]"),
        },
        "layers" => {
            no_arguments(command, rest)?;
            layers::check()
        }
        "service-tests" => {
            no_arguments(command, rest)?;
            service::run_tests()
        }
        "ctest" => {
            no_arguments(command, rest)?;
            ctest::run()?.into_result()
        }
        "fuzz" => fuzz::run(&fuzz::Options::parse(rest)?),
        "bench" => match rest {
            [] => bench::run(None),
            [name] => bench::run(Some(name)),
            _ => bail!("usage: cargo xtask bench [NAME]"),
        },
        "sim" => {
            let mut cmd = cargo([
                "run",
                "--release",
                "-p",
                "peergroup-proto",
                "--features",
                "test-utils",
                "--example",
                "simulate",
                "--",
            ]);
            cmd.args(rest);
            run(&mut cmd)
        }
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command {other:?}")
        }
    }
}

fn no_arguments(command: &str, rest: &[String]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        bail!("`cargo xtask {command}` takes no arguments, got {rest:?}")
    }
}

/// The workspace root: xtask always lives one level below it.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
}

/// `path` relative to the workspace root when it is inside it, for shorter messages.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A `cargo` command run from the workspace root.
///
/// This is the rustup proxy on `PATH`, not `$CARGO`: only the proxy understands `+nightly`, and
/// `cargo run` has already pinned `RUSTUP_TOOLCHAIN` so plain `cargo` stays on this toolchain.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("cargo");
    command.args(args).current_dir(workspace_root());
    command
}

/// The command line as a shell would show it: environment, program, arguments.
pub fn describe(command: &Command) -> String {
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| value.map(|v| format!("{}={}", key.to_string_lossy(), quote(v))))
        .collect();
    words.push(quote(command.get_program()));
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints the command, runs it with inherited output and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    println!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("could not start {:?}", command.get_program()))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Cargo's target directory, which `CARGO_TARGET_DIR` or a config file may have moved.
pub fn target_dir() -> Result<PathBuf> {
    let mut command = cargo(["metadata", "--format-version", "1", "--no-deps"]);
    let output = command.output().context("could not run `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("`cargo metadata` printed invalid JSON")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` gave no target_directory")
}
