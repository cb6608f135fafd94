//! `cargo xtask bench [NAME]`: runs the benchmarks, which print their figures (nothing is
//! asserted: speed is measured here, never in tests).

use anyhow::{bail, Result};

/// Each benchmark: its name, the package and the bench target that runs it.
const BENCHES: &[(&str, &str, &str)] = &[
    ("connect", "peergroup-transport", "connect"),
    ("reconcile", "peergroup-core", "reconcile"),
];

/// Runs the named benchmark, or all of them.
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
    }
    Ok(())
}
