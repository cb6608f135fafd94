//! `peergroup identity …`: the Peer Identity Manager from the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use peergroup_core::identity::IdentityStore;
use serde_json::json;

use crate::context::{peer_name, read_input};
use crate::output::CliError;

/// Identity subcommands.
#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Create an identity (a new key pair and certificate).
    Create {
        /// The classifier: the part of the peer name after the dot.
        #[arg(long, default_value = "")]
        classifier: String,
        /// The friendly name (default: the peer name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the identities of this home.
    List,
    /// Show one identity (default: the default identity), with its public XML.
    Show {
        /// Peer name.
        identity: Option<String>,
    },
    /// Print the default identity, creating it if there is none.
    Default,
    /// Change an identity's friendly name.
    Rename {
        /// Peer name.
        identity: String,
        /// The new friendly name.
        name: String,
    },
    /// Export an identity with its private key, encrypted with a password.
    Export {
        /// Peer name.
        identity: String,
        #[command(flatten)]
        password: Password,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Import an exported identity.
    Import {
        /// The export file ("-" for standard input).
        file: PathBuf,
        #[command(flatten)]
        password: Password,
    },
    /// Delete an identity (refused while it belongs to groups).
    Delete {
        /// Peer name.
        identity: String,
    },
}

/// Where the password of an export or import comes from.
#[derive(Args)]
pub struct Password {
    /// The password (visible to other users in the process list; prefer --password-file,
    /// $PEERGROUP_PASSWORD, or no flag at a terminal: then it is asked for without echo).
    #[arg(long, env = "PEERGROUP_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A file whose first line is the password.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

impl Password {
    /// The password, from the flag, the file's first line or `$PEERGROUP_PASSWORD`; with
    /// none of those, asked for on the terminal without echo.
    pub(crate) fn get(&self) -> Result<String, CliError> {
        match secret(self.password.as_ref(), self.password_file.as_ref())? {
            Some(p) => Ok(p),
            None => ask(
                "Password: ",
                "a password is needed: --password-file, $PEERGROUP_PASSWORD, or run at a terminal",
            ),
        }
    }
}

/// The group password of `group create` and `join` (optional: none, no password).
#[derive(Args)]
pub struct GroupPassword {
    /// The group password (visible to other users in the process list; prefer
    /// --password-file, --ask-password or $PEERGROUP_GROUP_PASSWORD).
    #[arg(long, env = "PEERGROUP_GROUP_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A file whose first line is the group password.
    #[arg(long, conflicts_with = "ask_password")]
    password_file: Option<PathBuf>,
    /// Ask for the group password on the terminal, without echo.
    #[arg(long)]
    ask_password: bool,
}

impl GroupPassword {
    /// The group password if one was given.
    pub(crate) fn get(&self) -> Result<Option<String>, CliError> {
        if self.ask_password {
            return ask(
                "Group password: ",
                "--ask-password needs a terminal; use --password-file",
            )
            .map(Some);
        }
        secret(self.password.as_ref(), self.password_file.as_ref())
    }
}

/// A secret given as a file's first line or as a flag (or its environment variable), if
/// either: the file first, since a variable left in the environment is the less deliberate.
fn secret(flag: Option<&String>, file: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    match (file, flag) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| CliError::io(format!("reading {}", f.display()), &e))?;
            Ok(Some(text.lines().next().unwrap_or("").to_owned()))
        }
        (None, Some(p)) => Ok(Some(p.clone())),
        (None, None) => Ok(None),
    }
}

/// Asks for a secret on the terminal without echo; `no_terminal` when there is none.
fn ask(prompt: &str, no_terminal: &str) -> Result<String, CliError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(no_terminal));
    }
    rpassword::prompt_password(prompt).map_err(|e| CliError::io("reading the password", &e))
}

/// Runs one identity subcommand.
pub fn run(store: &IdentityStore, cmd: IdentityCommand, as_json: bool) -> Result<(), CliError> {
    match cmd {
        IdentityCommand::Create { classifier, name } => {
            let id = store.create(Some(&classifier), name.as_deref(), None)?;
            let friendly = store.friendly_name(&id)?;
            print_pair(as_json, &id.to_string(), &friendly);
        }
        IdentityCommand::List => {
            let list = store.list()?;
            if as_json {
                let items: Vec<_> = list
                    .iter()
                    .map(|p| json!({"peer_name": p.peer_name, "friendly_name": p.friendly_name}))
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if list.is_empty() {
                println!("no identities in {}", store.home().display());
            } else {
                for p in list {
                    println!("{}  {}", p.peer_name, p.friendly_name);
                }
            }
        }
        IdentityCommand::Show { identity } => {
            let id = match identity {
                Some(s) => peer_name(&s)?,
                None => store.default_identity()?,
            };
            let loaded = store.load(&id)?;
            let groups = store.groups(&id)?;
            if as_json {
                println!(
                    "{}",
                    json!({
                        "peer_name": id.to_string(),
                        "friendly_name": loaded.friendly_name(),
                        "classifier": id.classifier(),
                        "key_algorithm": format!("{:?}", loaded.private_key().algorithm()),
                        "groups": groups.iter().map(|g| &g.peer_name).collect::<Vec<_>>(),
                        "xml": loaded.public_xml(),
                    })
                );
            } else {
                println!("peer name:     {id}");
                println!("friendly name: {}", loaded.friendly_name());
                println!("key:           {:?}", loaded.private_key().algorithm());
                println!("groups:        {}", groups.len());
                println!("public XML:    {}", loaded.public_xml());
            }
        }
        IdentityCommand::Default => {
            let id = store.default_identity()?;
            let friendly = store.friendly_name(&id)?;
            print_pair(as_json, &id.to_string(), &friendly);
        }
        IdentityCommand::Rename { identity, name } => {
            let id = peer_name(&identity)?;
            store.set_friendly_name(&id, &name)?;
            print_pair(as_json, &id.to_string(), &name);
        }
        IdentityCommand::Export {
            identity,
            password,
            output,
        } => {
            let id = peer_name(&identity)?;
            let xml = store.export(&id, &password.get()?)?;
            match output {
                // The export holds the private key (encrypted): private to the user, and
                // never left half-written.
                Some(path) => {
                    peergroup_core::identity::fsutil::write_atomic(
                        &path,
                        (xml + "\n").as_bytes(),
                        0o600,
                    )?;
                    if as_json {
                        println!(
                            "{}",
                            json!({"peer_name": id.to_string(), "file": path.display().to_string()})
                        );
                    }
                }
                None if as_json => {
                    println!("{}", json!({"peer_name": id.to_string(), "export": xml}));
                }
                None => println!("{xml}"),
            }
        }
        IdentityCommand::Import { file, password } => {
            let text = read_input(&file)?;
            let id = store.import(text.trim(), &password.get()?)?;
            let friendly = store.friendly_name(&id)?;
            print_pair(as_json, &id.to_string(), &friendly);
        }
        IdentityCommand::Delete { identity } => {
            let id = peer_name(&identity)?;
            store.delete(&id)?;
            if as_json {
                println!("{}", json!({"deleted": id.to_string()}));
            } else {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

fn print_pair(as_json: bool, peer_name: &str, friendly: &str) {
    if as_json {
        println!(
            "{}",
            json!({"peer_name": peer_name, "friendly_name": friendly})
        );
    } else {
        println!("{peer_name}  {friendly}");
    }
}
