//! `cargo xtask ci`: the whole gate, in the order that fails fastest (formatting before a
//! build, unit tests before the slower sanitizer and fuzz builds), stopping at the first failed
//! step so its output is the last thing on screen.

use std::time::Instant;

use anyhow::{bail, Result};

use crate::{cargo, ctest, fuzz, header, layers, run as run_command, service};

type Step = (&'static str, fn() -> Result<()>);

const STEPS: &[Step] = &[
    ("fmt", || {
        run_command(&mut cargo(["fmt", "--all", "--check"]))
    }),
    ("layers", layers::check),
    ("clippy", || {
        run_command(&mut cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    }),
    ("test", || {
        let mut command = cargo(["test", "--workspace"]);
        command.env("PEERGROUP_SERVICE", "off");
        run_command(&mut command)
    }),
    ("header", header::check),
    ("ctest", || {
        std::env::set_var("PEERGROUP_SERVICE", "off");
        ctest::run()?.into_result()
    }),
    ("service", service::run_tests),
    ("doc", || {
        let mut command = cargo(["doc", "--workspace", "--no-deps"]);
        command.env("RUSTDOCFLAGS", "-D warnings");
        run_command(&mut command)
    }),
    ("fuzz", || fuzz::run(&fuzz::Options::smoke())),
];

/// Runs the steps, printing a timing line for each and the `xtask ci: N passed, N failed` line.
pub fn run() -> Result<()> {
    let started = Instant::now();
    let mut passed = 0;
    let mut failure = None;
    for (name, step) in STEPS {
        println!("\n==> xtask ci: {name}");
        let step_started = Instant::now();
        let outcome = step();
        let secs = step_started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("<== xtask ci: {name} ok in {secs:.1}s");
            }
            Err(e) => {
                println!("<== xtask ci: {name} FAILED in {secs:.1}s: {e:#}");
                failure = Some(*name);
                break;
            }
        }
    }
    println!("\nxtask ci: total {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "xtask ci: {passed} passed, {} failed",
        usize::from(failure.is_some())
    );
    match failure {
        Some(name) => bail!("ci stopped at step `{name}`"),
        None => Ok(()),
    }
}
