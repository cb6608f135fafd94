//! `cargo xtask layers` (a step of `ci`): `peergroup-proto` stays deterministic. Its normal
//! dependency tree holds no runtime crate, and its code (tests aside) opens no file or socket,
//! reads no clock and spawns no thread; the runtime that does all of that is `peergroup-core`,
//! whose modules are rooms from the bottom up that never use one above their own.

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
    breaches.extend(core_breaches(&crate::workspace_root().join(CORE))?);
    if !breaches.is_empty() {
        for b in &breaches {
            eprintln!("layers: {b}");
        }
        bail!(
            "{} breach(es) of the layers: proto holds no I/O, core's rooms use none above",
            breaches.len()
        );
    }
    println!("layers: peergroup-proto's normal dependency tree and code hold no I/O or runtime");
    println!("layers: no peergroup-core module uses a room above its own");
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

/// The runtime's rooms from the bottom up: a core module may use modules of its own rank or
/// below, never above (`docs/architecture.md` draws the graph). Proto's re-exported modules
/// and the crates below are beneath every room.
const CORE_ROOMS: &[(&str, u8)] = &[
    ("blocking", 0),
    ("clock", 0),
    ("direct", 0),
    ("error", 0),
    ("events", 0),
    ("group_store", 0),
    ("password", 0),
    ("race", 0),
    ("records", 0),
    ("signing", 0),
    ("throttle", 0),
    ("control", 1),
    ("trust", 2),
    ("discovery", 2),
    ("network", 3),
    ("paths", 3),
    ("state", 4),
    ("ports", 5),
    ("driver", 6),
    ("group", 7),
    ("handle", 8),
    // The public face: the facade, its call table and the service client use each other.
    ("api", 9),
    ("calls", 9),
    ("service", 9),
];

/// What core re-exports from below: proto's modules, identity and transport.
const CORE_BELOW: &[&str] = &[
    "config_export",
    "data",
    "dialback",
    "identity",
    "invitation",
    "io",
    "lan",
    "machine",
    "members",
    "port",
    "properties",
    "reachability",
    "relay",
    "reconcile",
    "replication",
    "rng",
    "transport",
    "upgrade",
    "values",
    "wire",
];

/// The core crate's sources, relative to the workspace root.
const CORE: &str = "crates/peergroup-core/src";

fn rank_of(module: &str) -> Option<u8> {
    CORE_ROOMS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, rank)| *rank)
}

/// The core modules `text` names through `crate::` (in code, not comments), including
/// each item of a `use crate::{…}` group.
fn crate_modules(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let module = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The items at the group's top level: nested braces belong to one item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(module(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(module(&item));
        } else {
            let name = module(rest);
            // A lowercase first segment followed by `::` is a module; `crate::Foo` is an item
            // at the root (the facade's re-exports).
            if rest[name.len()..].starts_with("::") {
                found.push(name);
            }
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn core_breaches(src: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let first = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_owned();
            if first == "lib" {
                continue;
            }
            let shown = crate::display_path(&path);
            let Some(rank) = rank_of(&first) else {
                found.push(format!(
                    "{shown}: module `{first}` has no room in xtask's CORE_ROOMS"
                ));
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
            for used in crate_modules(code) {
                if used == first || CORE_BELOW.contains(&used.as_str()) {
                    continue;
                }
                match rank_of(&used) {
                    Some(r) if r <= rank => {}
                    Some(_) => found.push(format!(
                        "{shown}: `{first}` uses `{used}`, a room above it"
                    )),
                    None => found.push(format!(
                        "{shown}: `crate::{used}` is neither a room of CORE_ROOMS nor re-exported from below"
                    )),
                }
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
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

    #[test]
    fn crate_paths_and_use_groups_name_their_modules() {
        let text = "use crate::state::{lock, GroupInner};\nuse crate::{\n    control::X,\n    network::{a, b},\n};\nlet x = crate::LocalGroup::f(); // crate::driver::y\n";
        assert_eq!(crate_modules(text), ["state", "control", "network"]);
    }

    #[test]
    fn every_room_is_ranked_once() {
        let mut names: Vec<_> = CORE_ROOMS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CORE_ROOMS.len());
        assert!(names.iter().all(|n| !CORE_BELOW.contains(n)));
    }
}
