//! `cargo xtask bench [NAME]`: runs the benchmarks, which print their figures (nothing is
//! asserted: speed is measured here, never in tests).

use anyhow::{bail, Result};

/// Each benchmark: its name, the package and the bench target that runs it.
const BENCHES: &[(&str, &str, &str)] = &[
    ("connect", "peergroup-transport", "connect"),
    ("direct", "peergroup-core", "direct"),
    ("reconcile", "peergroup-proto", "reconcile"),
    ("records", "peergroup-core", "records"),
    ("relay", "peergroup-transport", "relay"),
    ("relay", "peergroup-tests", "relay_lab"),
    ("relay", "peergroup-tests", "punch_lab"),
    ("service", "peergroupd", "service"),
];

/// Runs the named benchmark, or all of them. `records` also runs the simulator's flood
/// scenarios and (when run alone) the reconciliation table, so that one run prints every
/// figure of the record database.
pub fn run(name: Option<&str>) -> Result<()> {
    let selected: Vec<_> = BENCHES
        .iter()
        .filter(|(n, _, _)| name.is_none_or(|want| *n == want))
        .collect();
    if selected.is_empty() {
        let known: Vec<_> = BENCHES.iter().map(|(n, _, _)| *n).collect();
        bail!("unknown benchmark {name:?}; known: {known:?}");
    }
    for (bench, package, target) in selected {
        println!("==> bench {bench}");
        crate::run(&mut crate::cargo([
            "bench", "-p", package, "--bench", target,
        ]))?;
        if *bench == "direct" {
            println!("==> bench direct: C ABI per call");
            abi_calls()?;
        }
        if *bench == "records" {
            // The same run: floods of 100 and 1000 members in the simulator, and the
            // reconciliation table.
            println!("==> bench records: simulated floods (10-50 ms links)");
            crate::run(&mut crate::cargo([
                "run",
                "--release",
                "-p",
                "peergroup-proto",
                "--features",
                "test-utils",
                "--example",
                "simulate",
                "--",
                "flood-100",
                "flood-1000",
            ]))?;
            if name.is_some() {
                println!("==> bench records: reconciliation");
                crate::run(&mut crate::cargo([
                    "bench",
                    "-p",
                    "peergroup-proto",
                    "--bench",
                    "reconcile",
                ]))?;
            }
        }
    }
    Ok(())
}

/// Builds `crates/peergroup-abi/benches/c/abi_calls.c` with -O2 against the release static
/// library and runs it in a temporary `PEERGROUP_HOME`: the per-call cost of the C ABI.
fn abi_calls() -> Result<()> {
    use anyhow::Context;
    let root = crate::workspace_root();
    crate::run(&mut crate::cargo([
        "build",
        "--release",
        "-p",
        "peergroup-abi",
    ]))?;
    let target = crate::target_dir()?;
    let program = target.join("release/abi_calls");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    crate::run(
        std::process::Command::new(cc)
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(root.join("crates/peergroup-abi/include"))
            .arg(root.join("crates/peergroup-abi/benches/c/abi_calls.c"))
            .arg(target.join("release/libpeergroup.a"))
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&program),
    )?;
    let home = tempfile::Builder::new()
        .prefix("peergroup-bench-")
        .tempdir()
        .context("creating a temporary PEERGROUP_HOME")?;
    crate::run(std::process::Command::new(&program).env("PEERGROUP_HOME", home.path()))
}
