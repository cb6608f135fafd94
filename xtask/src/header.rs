//! `cargo xtask header`: the C header is generated from the Rust ABI crate, never edited by
//! hand, and checked in so C users need no Rust tooling to read it. `--check` keeps the
//! checked-in copy honest in CI.

use std::fs;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use crate::{display_path, workspace_root};

fn abi_dir() -> PathBuf {
    workspace_root().join("crates/peergroup-abi")
}

fn header_path() -> PathBuf {
    abi_dir().join("include/p2p.h")
}

/// Runs cbindgen over the ABI crate with its `cbindgen.toml` and returns the header text.
fn generate() -> Result<Vec<u8>> {
    let crate_dir = abi_dir();
    let config_path = crate_dir.join("cbindgen.toml");
    println!(
        "cbindgen: {} with {} -> {}",
        display_path(&crate_dir),
        display_path(&config_path),
        display_path(&header_path())
    );
    if !config_path.is_file() {
        bail!("{} does not exist", display_path(&config_path));
    }
    let mut config = cbindgen::Config::from_file(&config_path)
        .map_err(|e| anyhow!("{}: {e}", display_path(&config_path)))?;
    // The HRESULT values come from the one table in peergroup-identity, so the header and
    // the Rust code can never disagree.
    let after = config.after_includes.take().unwrap_or_default();
    config.after_includes = Some(format!("{after}{}", hresult_defines()));
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .map_err(|e| anyhow!("cbindgen failed: {e}"))?;
    let mut text = Vec::new();
    bindings.write(&mut text);
    Ok(text)
}

/// `cargo xtask header`: (re)writes `include/p2p.h` and `peergroup.pc`.
pub fn write() -> Result<()> {
    crate::pkgconfig::write()?;
    let text = generate()?;
    let path = header_path();
    let unchanged = fs::read(&path).is_ok_and(|old| old == text);
    if unchanged {
        println!("header: {} is up to date", display_path(&path));
        return Ok(());
    }
    fs::create_dir_all(path.parent().expect("include/ has a parent"))?;
    fs::write(&path, &text).with_context(|| format!("writing {}", display_path(&path)))?;
    println!(
        "header: wrote {} ({} bytes)",
        display_path(&path),
        text.len()
    );
    Ok(())
}

/// `cargo xtask header --check`: fails when the checked-in header (or `peergroup.pc`)
/// differs from a fresh one.
pub fn check() -> Result<()> {
    crate::pkgconfig::check()?;
    let text = generate()?;
    let path = header_path();
    match fs::read(&path) {
        Ok(old) if old == text => {
            println!("header: {} is up to date", display_path(&path));
            Ok(())
        }
        Ok(old) => {
            let line = first_difference(&old, &text);
            println!("header: the checked-in p2p.h differs from cbindgen's at line {line}");
            bail!("p2p.h is stale: run cargo xtask header")
        }
        Err(e) => bail!(
            "p2p.h is missing ({}: {e}): run cargo xtask header",
            display_path(&path)
        ),
    }
}

/// 1-based line of the first differing byte, to point a reviewer at the change.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    1 + a[..same].iter().filter(|&&byte| byte == b'\n').count()
}

/// `#define NAME ((HRESULT)0x...)` for every value of `peergroup_identity::hresult::ALL`.
fn hresult_defines() -> String {
    let mut out = String::from(
        "\n/* HRESULT values (FACILITY_P2P, Win32, NTE_*, CRYPT_E_*), as in the Windows SDK. */\n",
    );
    for (name, value) in peergroup_identity::hresult::ALL {
        out.push_str(&format!(
            "#define {name} ((HRESULT)0x{:08X})\n",
            *value as u32
        ));
    }
    out
}
