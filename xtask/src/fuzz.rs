//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/`. CI runs each briefly (`--smoke`)
//! to prove the targets build and the seeds pass; real fuzzing is a longer run by hand.
//!
//! libFuzzer needs nightly (`-Z sanitizer`), so everything here goes through `cargo +nightly`.
//! Set `FUZZ_SKIP=1` where no nightly toolchain can be had; `.ci/run` does that when it
//! cannot install one.

use std::fs;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{cargo, describe, run as run_command, workspace_root};

const SMOKE_SECONDS: u64 = 5;
const FULL_SECONDS: u64 = 60;

/// What `cargo xtask fuzz [--smoke] [TARGET] [-- ARGS...]` asked for.
#[derive(Debug, Default)]
pub struct Options {
    smoke: bool,
    target: Option<String>,
    libfuzzer_args: Vec<String>,
}

impl Options {
    /// Parses the arguments after `fuzz`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--" => {
                    options.libfuzzer_args = rest.cloned().collect();
                    break;
                }
                flag if flag.starts_with('-') => bail!("unknown fuzz option {flag:?}"),
                target if options.target.is_none() => options.target = Some(target.to_owned()),
                extra => bail!("only one fuzz target may be named, got a second: {extra:?}"),
            }
        }
        Ok(options)
    }

    /// What CI runs: every target, briefly.
    pub fn smoke() -> Self {
        Options {
            smoke: true,
            ..Options::default()
        }
    }

    /// The smoke length comes from `FUZZ_SMOKE_SECONDS` so CI can be stretched without edits.
    fn seconds(&self) -> Result<u64> {
        if !self.smoke {
            return Ok(FULL_SECONDS);
        }
        match std::env::var("FUZZ_SMOKE_SECONDS") {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("FUZZ_SMOKE_SECONDS={text:?} is not a whole number")),
            Err(_) => Ok(SMOKE_SECONDS),
        }
    }
}

/// Builds the targets once, then runs each for its time budget; every target runs even when
/// an earlier one crashes, so one report shows them all.
pub fn run(options: &Options) -> Result<()> {
    if std::env::var_os("FUZZ_SKIP").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("fuzz smoke skipped: no nightly toolchain");
        return Ok(());
    }
    let seconds = options.seconds()?;
    let all = list_targets()?;
    let targets = match &options.target {
        Some(target) if all.contains(target) => vec![target.clone()],
        Some(target) => bail!("no fuzz target {target:?}; the targets are {all:?}"),
        None => all,
    };

    let started = Instant::now();
    // One build for all targets (cargo-fuzz builds every target when none is named).
    let mut build = nightly_fuzz(["build"]);
    build.args(&options.target);
    run_command(&mut build)?;
    println!("fuzz: build took {:.1}s", started.elapsed().as_secs_f64());

    let root = workspace_root();
    let mut failed = Vec::new();
    for target in &targets {
        // New inputs land in the first corpus directory (gitignored); the seeds stay read-only.
        let corpus = root.join("fuzz/corpus").join(target);
        fs::create_dir_all(&corpus)?;
        let mut command = nightly_fuzz(["run", target.as_str()]);
        command.arg(corpus.strip_prefix(root).unwrap_or(&corpus));
        let seeds = root.join("fuzz/seeds").join(target);
        if seeds.is_dir() {
            command.arg(seeds.strip_prefix(root).unwrap_or(&seeds));
        }
        // libFuzzer lets a later flag win, so `-- -max_total_time=600` overrides the default.
        command
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(&options.libfuzzer_args);
        let started = Instant::now();
        let outcome = run_command(&mut command);
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("fuzz: {target} ... ok ({secs:.1}s)"),
            Err(_) => {
                println!("fuzz: {target} ... FAILED ({secs:.1}s); see fuzz/artifacts/{target}/");
                failed.push(target.clone());
            }
        }
    }
    println!(
        "fuzz: {} passed, {} failed",
        targets.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo +nightly fuzz list`: the targets declared in `fuzz/Cargo.toml`.
fn list_targets() -> Result<Vec<String>> {
    let mut command = nightly_fuzz(["list"]);
    println!("$ {}", describe(&command));
    let output = command
        .output()
        .context("could not run cargo-fuzz (install it: cargo install cargo-fuzz --locked)")?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}\n(is cargo-fuzz installed? cargo install cargo-fuzz --locked)",
            describe(&command),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list found no targets in fuzz/");
    }
    Ok(targets)
}

/// `cargo +nightly fuzz <subcommand> --fuzz-dir fuzz`, cleaned of what `cargo run` put in the
/// environment for the stable toolchain, so cargo-fuzz's inner cargo is nightly's own.
fn nightly_fuzz<const N: usize>(subcommand: [&str; N]) -> Command {
    let mut command = cargo(["+nightly", "fuzz"]);
    command
        .args(subcommand)
        .args(["--fuzz-dir", "fuzz"])
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("LD_LIBRARY_PATH");
    command
}
