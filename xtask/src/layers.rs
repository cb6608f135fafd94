//! `cargo xtask layers` (a step of `ci`): `peergroup-proto` stays deterministic. Its normal
//! dependency tree holds no runtime crate, and its code (tests aside) opens no file or socket,
//! reads no clock and spawns no thread; the runtime that does all of that is `peergroup-core`.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Crates that bring I/O, a runtime or a clock: none may be in proto's normal tree.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "rusqlite",
    "libsqlite3-sys",
    "quinn",
    "quinn-proto",
    "quinn-udp",
    "rustls",
    "socket2",
    "if-addrs",
    "tempfile",
];

/// What proto's non-test code may not name: files, sockets, the wall clock and the monotonic
/// clock, threads, the environment.
const FORBIDDEN_CALLS: &[&str] = &[
    "std::fs",
    "std::net::UdpSocket",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "SystemTime::now",
    "Instant::now",
    "std::thread",
    "std::env",
    "std::process",
];

/// The proto crate, relative to the workspace root.
const PROTO: &str = "crates/peergroup-proto";

/// Runs both checks and lists every breach.
pub fn check() -> Result<()> {
    let mut breaches = dependency_breaches()?;
    breaches.extend(source_breaches(
        &crate::workspace_root().join(PROTO).join("src"),
    )?);
    if !breaches.is_empty() {
        for b in &breaches {
            eprintln!("layers: {b}");
        }
        bail!(
            "{} breach(es) of peergroup-proto's rule: no I/O, no runtime",
            breaches.len()
        );
    }
    println!("layers: peergroup-proto's normal dependency tree and code hold no I/O or runtime");
    Ok(())
}

fn dependency_breaches() -> Result<Vec<String>> {
    let output = crate::cargo([
        "tree",
        "-p",
        "peergroup-proto",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-f",
        "{p}",
    ])
    .output()
    .context("could not run `cargo tree`")?;
    if !output.status.success() {
        bail!(
            "`cargo tree` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    Ok(forbidden_in_tree(&tree))
}

/// The forbidden crates named in `cargo tree --prefix none` output ("name vX.Y.Z ...").
fn forbidden_in_tree(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_CRATES.contains(name))
        .map(|name| format!("the crate `{name}` is in peergroup-proto's normal dependency tree"))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn source_breaches(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let shown = crate::display_path(&path);
                found.extend(
                    forbidden_in_source(&text)
                        .into_iter()
                        .map(|(line, call)| format!("{shown}:{line} names `{call}`")),
                );
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `(line number, forbidden name)` for each use outside comments and before the file's
/// `#[cfg(test)]` module (unit tests may use what they like).
fn forbidden_in_source(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        for call in FORBIDDEN_CALLS {
            if code.contains(call) {
                found.push((i + 1, *call));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_crate_in_the_tree_is_named() {
        let tree = "peergroup-proto v0.1.0 (/x)\nbytes v1.0.0\ntokio v1.40.0\ntokio v1.40.0\n";
        assert_eq!(
            forbidden_in_tree(tree),
            ["the crate `tokio` is in peergroup-proto's normal dependency tree"]
        );
        assert!(forbidden_in_tree("serde v1.0.0\ntokio-util-like v1\n").is_empty());
    }

    #[test]
    fn calls_in_code_count_but_not_in_comments_or_tests() {
        let text = "use std::fs::File;\n// std::thread in a comment\nlet t = SystemTime::now(); // x\n#[cfg(test)]\nmod tests { fn f() { std::fs::read(\"\"); } }\n";
        assert_eq!(
            forbidden_in_source(text),
            [(1, "std::fs"), (3, "SystemTime::now")]
        );
    }
}
