//! `peergroup group …`, `invite`, `join`, `connect`, `status`: groups from the command line.
//!
//! Each command is one process: it opens the group (`PeerGroupOpen`), does its work and closes
//! its handle. `connect` stays online until its time is up or standard input closes, printing
//! status changes.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use peergroup_core::identity::IdentityStore;
use peergroup_core::properties::{
    GroupProperties, PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PASSWORD_AUTHENTICATION,
};
use peergroup_core::GroupHandle;
use serde_json::json;

use crate::context::{identity, peer_name, read_input, role, runtime, As, Context};
use crate::output::CliError;

/// Group subcommands.
#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group; the identity becomes its administrator.
    Create {
        /// Classifier of the group's peer name.
        #[arg(long)]
        classifier: String,
        /// Friendly name.
        #[arg(long)]
        name: Option<String>,
        /// Comment.
        #[arg(long, default_value = "")]
        comment: String,
        /// Let members join with a password too.
        #[command(flatten)]
        password: crate::identity_cmd::GroupPassword,
        /// Role given to password joiners: member or inviting-member.
        #[arg(long, default_value = "member")]
        password_role: String,
    },
    /// List the groups of the identity.
    List,
    /// Show a group's properties and this member's roles.
    Show {
        /// Group peer name.
        group: String,
    },
    /// Change a group's friendly name or comment (administrators only).
    Set {
        /// Group peer name.
        group: String,
        /// New friendly name.
        #[arg(long)]
        name: Option<String>,
        /// New comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Mint new credentials (roles, renewal) for a member (administrators only).
    IssueCredentials(crate::members_cmd::IssueCredentialsArgs),
    /// Delete the identity's local data for a group.
    Delete {
        /// Group peer name.
        group: String,
    },
    /// Export this identity's membership of a group, password-protected (PeerGroupExportConfig).
    ExportConfig {
        /// Group peer name.
        group: String,
        #[command(flatten)]
        password: crate::identity_cmd::Password,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Import an exported group configuration (PeerGroupImportConfig); the identity must be
    /// imported first.
    ImportConfig {
        /// The configuration file ("-" for standard input).
        file: PathBuf,
        #[command(flatten)]
        password: crate::identity_cmd::Password,
        /// Replace the group's configuration if this identity already has the group.
        #[arg(long)]
        overwrite: bool,
    },
}

fn print_properties(h: &GroupHandle, as_json: bool) -> Result<(), CliError> {
    let p = h.properties()?;
    let roles: Vec<String> = h.roles()?.iter().map(|r| format!("{r:?}")).collect();
    if as_json {
        println!(
            "{}",
            json!({
                "group_peer_name": p.group_peer_name,
                "friendly_name": p.friendly_name,
                "comment": p.comment,
                "classifier": p.classifier,
                "creator_peer_name": p.creator_peer_name,
                "password_enabled": p.password_enabled(),
                "roles": roles,
            })
        );
    } else {
        println!("group:     {}", p.group_peer_name);
        println!("name:      {}", p.friendly_name);
        println!("comment:   {}", p.comment);
        println!("creator:   {}", p.creator_peer_name);
        println!(
            "password:  {}",
            if p.password_enabled() {
                "enabled"
            } else {
                "off"
            }
        );
        println!("my roles:  {}", roles.join(", "));
    }
    Ok(())
}

/// Runs a group subcommand.
pub fn run(
    store: &IdentityStore,
    who: &As,
    cmd: GroupCommand,
    as_json: bool,
) -> Result<(), CliError> {
    let me = identity(who)?;
    match cmd {
        GroupCommand::ExportConfig {
            group,
            password,
            output,
        } => {
            return crate::config_cmd::export(
                store,
                me.as_ref(),
                &group,
                &password,
                output.as_deref(),
                as_json,
            )
        }
        GroupCommand::ImportConfig {
            file,
            password,
            overwrite,
        } => return crate::config_cmd::import(store, &file, &password, overwrite, as_json),
        _ => {}
    }
    let mut ctx = Context::with_identity(store, me);
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            GroupCommand::Create {
                classifier,
                name,
                comment,
                password,
                password_role,
            } => {
                let creator = ctx.resolve_identity()?;
                let mut props = GroupProperties {
                    classifier,
                    friendly_name: name.unwrap_or_default(),
                    comment,
                    creator_peer_name: creator.to_string(),
                    ..Default::default()
                };
                if let Some(pw) = password.get()? {
                    props.authentication_schemes =
                        PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION;
                    props.group_password = Some(pw);
                    props.group_password_role = role(&password_role)?;
                }
                let h = ctx.pg.create_group(props)?;
                print_properties(&h, as_json)?;
                h.close().await?;
            }
            GroupCommand::List => {
                let who = ctx.resolve_identity()?;
                let groups = store.groups(&who)?;
                if as_json {
                    let items: Vec<_> = groups
                        .iter()
                        .map(
                            |g| json!({"peer_name": g.peer_name, "friendly_name": g.friendly_name}),
                        )
                        .collect();
                    println!("{}", serde_json::Value::Array(items));
                } else {
                    for g in groups {
                        println!("{}  {}", g.peer_name, g.friendly_name);
                    }
                }
            }
            GroupCommand::Show { group } => {
                let h = ctx.open(&group)?;
                print_properties(&h, as_json)?;
                h.close().await?;
            }
            GroupCommand::Set {
                group,
                name,
                comment,
            } => {
                let h = ctx.open(&group)?;
                let mut p = h.properties()?;
                if let Some(n) = name {
                    p.friendly_name = n;
                }
                if let Some(c) = comment {
                    p.comment = c;
                }
                h.set_properties(&p)?;
                print_properties(&h, as_json)?;
                h.close().await?;
            }
            GroupCommand::ExportConfig { .. } | GroupCommand::ImportConfig { .. } => {
                unreachable!("handled above")
            }
            GroupCommand::IssueCredentials(args) => {
                crate::members_cmd::issue_credentials(&ctx, args, as_json).await?;
            }
            GroupCommand::Delete { group } => {
                let g = peer_name(&group)?;
                ctx.pg.delete_group(ctx.me.as_ref(), &g).await?;
                if as_json {
                    println!("{}", json!({"deleted": g.to_string()}));
                } else {
                    println!("deleted {g}");
                }
            }
        }
        Ok(())
    })
}

/// `peergroup invite GROUP (--identity-xml FILE | --password)`.
#[derive(Args)]
pub struct InviteArgs {
    /// Group peer name.
    group: String,
    /// The invitee's public identity XML (from `peergroup identity show --json`'s "xml", or
    /// PeerIdentityGetXML), or "-" for standard input.
    #[arg(long, conflicts_with = "password")]
    identity_xml: Option<PathBuf>,
    /// A password invitation (the group must have a password).
    #[arg(long)]
    password: bool,
    /// Roles to grant: member (default), inviting-member, admin.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Seconds until the invitation expires (default: as long as the issuer's membership).
    #[arg(long)]
    expires_in: Option<i64>,
}

/// Creates an invitation and prints it (with `--json`, as `{"invitation": …}`).
pub fn invite(
    store: &IdentityStore,
    who: &As,
    args: InviteArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let h = ctx.open(&args.group)?;
        let text = if args.password {
            h.create_password_invitation()
        } else {
            let Some(path) = &args.identity_xml else {
                return Err(CliError::usage("give --identity-xml FILE or --password"));
            };
            let xml = read_input(path)?;
            let roles = args
                .roles
                .iter()
                .map(|r| role(r))
                .collect::<Result<Vec<_>, _>>()?;
            let expires = args.expires_in.map(|s| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
                    + s
            });
            h.create_invitation(xml.trim(), expires, &roles)
        };
        let result = text.map_err(CliError::from);
        h.close().await?;
        let invitation = result?;
        tracing::info!(group = %args.group, bytes = invitation.len(), "invitation created");
        if as_json {
            println!("{}", json!({ "invitation": invitation }));
        } else {
            println!("{invitation}");
        }
        Ok(())
    })
}

/// `peergroup join INVITATION [--password P] [--connect [--address ADDR]… [--seconds N]]`.
#[derive(Args)]
pub struct JoinArgs {
    /// The invitation file ("-" for standard input).
    invitation: PathBuf,
    /// The group password, for a password invitation.
    #[command(flatten)]
    password: crate::identity_cmd::GroupPassword,
    /// Then bring the group online and synchronise, as `connect` does.
    #[arg(long)]
    connect: bool,
    /// With --connect: addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address", requires = "connect")]
    addresses: Vec<SocketAddr>,
    /// With --connect: stay online this long, then close (default: until standard input
    /// closes).
    #[arg(long, requires = "connect")]
    seconds: Option<u64>,
}

/// Joins a group and prints its properties; with `--connect`, then brings it online as
/// `connect` does.
pub fn join(
    store: &IdentityStore,
    who: &As,
    args: JoinArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    let text = read_input(&args.invitation)?;
    runtime()?.block_on(async {
        let (h, already) = match args.password.get()? {
            Some(pw) => {
                ctx.pg
                    .password_join(ctx.me.as_ref(), text.trim(), &pw)
                    .await?
            }
            None => (ctx.pg.join(ctx.me.as_ref(), text.trim())?, false),
        };
        if already {
            // PEER_S_ALREADY_A_MEMBER: a success, as on Windows, but not one to keep quiet.
            eprintln!(
                "note: already a member of {}: nothing changed, and the password was not checked",
                h.group_name()
            );
        } else {
            tracing::info!(group = %h.group_name(), "joined");
        }
        let result = match print_properties(&h, as_json) {
            Ok(()) if args.connect => online(&h, &args.addresses, args.seconds, as_json).await,
            other => other,
        };
        h.close().await?;
        result
    })
}

/// `peergroup connect GROUP [--address ADDR]… [--seconds N] [--relay | --no-relay]`.
#[derive(Args)]
pub struct ConnectArgs {
    /// Group peer name.
    group: String,
    /// Addresses of members to connect to (PeerGroupConnectByAddress).
    #[arg(long = "address")]
    addresses: Vec<SocketAddr>,
    /// Stay online this long, then close (default: until standard input closes).
    #[arg(long)]
    seconds: Option<u64>,
    /// Relay for other members of the group from now on (kept with the group): members
    /// behind NATs then reach each other through this one.
    #[arg(long, conflicts_with = "no_relay")]
    relay: bool,
    /// Stop relaying for other members.
    #[arg(long)]
    no_relay: bool,
}

/// Brings a group online and reports its status as it changes, one line each.
pub fn connect(
    store: &IdentityStore,
    who: &As,
    args: ConnectArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let h = ctx.open(&args.group)?;
        if args.relay || args.no_relay {
            h.set_relay(args.relay)?;
        }
        let result = online(&h, &args.addresses, args.seconds, as_json).await;
        h.close().await?;
        result
    })
}

/// Brings an open group online (at `addresses` too) and prints a line (or a JSON object)
/// whenever its status or neighbours change, until `seconds` pass or, without them, standard
/// input ends. On a terminal a spinner follows the first synchronisation.
async fn online(
    h: &GroupHandle,
    addresses: &[SocketAddr],
    seconds: Option<u64>,
    as_json: bool,
) -> Result<(), CliError> {
    h.connect_by_address(addresses).await?;
    tracing::info!(group = %h.group_name(), ?addresses, "connecting");
    let stop = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ =
                    tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin())).await;
            }
        }
    };
    tokio::pin!(stop);
    // On a terminal, a spinner on standard error follows the first synchronisation.
    let mut sync = crate::progress::SyncProgress::new(&h.group_name().to_string());
    let mut last = (u32::MAX, Vec::new());
    loop {
        let status = h.status()?;
        let members: Vec<String> = h.neighbours()?.into_iter().map(|n| n.member).collect();
        if sync.running() {
            // Before the first synchronisation the database is not the group's yet.
            let records = match h.record_count() {
                Ok(n) => Some(n),
                Err(peergroup_core::CoreError::NotReady) => None,
                Err(e) => return Err(e.into()),
            };
            sync.update(status, records);
        }
        if (status, members.clone()) != last {
            tracing::info!(status, neighbours = members.len(), "group status changed");
            let line = if as_json {
                json!({"status": status, "listen": h.listen_addrs()?, "neighbours": members})
                    .to_string()
            } else {
                format!(
                    "status {status:#x} listening on {:?}, neighbours: {}",
                    h.listen_addrs()?,
                    members.join(", ")
                )
            };
            // The reader may be gone (a closed pipe): the group stays online regardless,
            // until its time is up or standard input closes.
            let _ = sync.suspend(|| writeln!(std::io::stdout(), "{line}"));
            last = (status, members);
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    sync.finish();
    Ok(())
}
