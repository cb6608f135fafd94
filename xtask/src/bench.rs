//! `cargo xtask bench [NAME]`: runs the benchmarks, which print their figures (nothing is
//! asserted: speed is measured here, never in tests).

use anyhow::{bail, Result};

/// Each benchmark: its name, the package and the bench target that runs it.
const BENCHES: &[(&str, &str, &str)] = &[
    ("connect", "peergroup-transport", "connect"),
    ("direct", "peergroup-core", "direct"),
    ("reconcile", "peergroup-core", "reconcile"),
    ("records", "peergroup-core", "records"),
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
        if *bench == "records" {
            // The same run: floods of 100 and 1000 members in the simulator, and the
            // reconciliation table.
            println!("==> bench records: simulated floods (10-50 ms links)");
            crate::run(&mut crate::cargo([
                "run",
                "--release",
                "-p",
                "peergroup-core",
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
                    "peergroup-core",
                    "--bench",
                    "reconcile",
                ]))?;
            }
        }
    }
    Ok(())
}
