//! `peergroup group export-config` and `group import-config`: moving one identity's membership
//! of a group to another home (`PeerGroupExportConfig`/`PeerGroupImportConfig`).

use std::path::{Path, PathBuf};

use peergroup_core::identity::{IdentityStore, PeerName};
use serde_json::json;

use crate::context::{read_input, runtime, Context};
use crate::identity_cmd::Password;
use crate::output::CliError;

/// Writes the group's configuration, sealed under the password, to `output` (or stdout);
/// with `--json`, `{"group", "config"}` (or `{"group", "file"}` with `output`).
pub fn export(
    store: &IdentityStore,
    me: Option<&PeerName>,
    group: &str,
    password: &Password,
    output: Option<&Path>,
    as_json: bool,
) -> Result<(), CliError> {
    let password = password.get()?;
    let ctx = Context::with_identity(store, me.cloned());
    runtime()?.block_on(async {
        let h = ctx.open(group)?;
        let xml = h.export_config(&password).map_err(CliError::from);
        h.close().await?;
        let xml = xml?;
        match output {
            Some(path) => {
                peergroup_core::identity::fsutil::write_atomic(path, xml.as_bytes(), 0o600)?;
                if as_json {
                    println!(
                        "{}",
                        json!({"group": group, "file": path.display().to_string()})
                    );
                }
            }
            None if as_json => println!("{}", json!({"group": group, "config": xml})),
            None => println!("{xml}"),
        }
        Ok(())
    })
}

/// Imports a configuration file and prints the identity and group to open.
pub fn import(
    store: &IdentityStore,
    file: &PathBuf,
    password: &Password,
    overwrite: bool,
    as_json: bool,
) -> Result<(), CliError> {
    let password = password.get()?;
    let text = read_input(file)?;
    let ctx = Context::with_identity(store, None);
    let (identity, group) = ctx.pg.import_config(text.trim(), &password, overwrite)?;
    if as_json {
        println!(
            "{}",
            json!({"identity": identity.to_string(), "group": group.to_string()})
        );
    } else {
        println!("imported {group} for {identity}");
    }
    Ok(())
}
