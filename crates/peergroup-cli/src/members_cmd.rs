//! `peergroup members` and `peergroup group issue-credentials`: the members this member knows
//! (`PeerGroupEnumMembers`) and new credentials for one of them (`PeerGroupIssueCredentials`).
//!
//! Both read this member's copy of the group database offline: the members and their
//! presence are what replication brought here when the group was last online. A stored
//! credential floods when the group next connects (`peergroup connect`, `watch`, …).

use clap::Args;
use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::{IdentityStore, PeerName};
use peergroup_core::members::{
    CredentialSpec, Member, PEER_GROUP_STORE_CREDENTIALS, PEER_MEMBER_PRESENT,
};
use peergroup_core::GroupHandle;
use serde_json::json;

use crate::context::{close_after, role, runtime, As, Context};
use crate::output::CliError;

/// `peergroup members GROUP [--present] [--member NAME]`.
#[derive(Args)]
pub struct MembersArgs {
    /// Group peer name.
    group: String,
    /// Only the members online (with a live presence record).
    #[arg(long)]
    present: bool,
    /// Only this member (its identity peer name).
    #[arg(long)]
    member: Option<String>,
}

/// `peergroup group issue-credentials GROUP SUBJECT [--role R]… [--store]`.
#[derive(Args)]
pub struct IssueCredentialsArgs {
    /// Group peer name.
    group: String,
    /// The member's identity peer name.
    subject: String,
    /// Roles to grant: member, inviting-member, admin (default: the roles it holds).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Publish the credentials in the group database, where the member picks them up
    /// (PEER_GROUP_STORE_CREDENTIALS); else print them as an invitation.
    #[arg(long)]
    store: bool,
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::InvitingMember => "inviting-member",
        Role::Member => "member",
    }
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// One member as a JSON object.
pub fn member_json(m: &Member) -> serde_json::Value {
    let c = &m.credential;
    json!({
        "identity": m.identity,
        "present": m.is_present(),
        "friendly_name": c.friendly_name,
        "roles": c.roles.iter().map(role_name).collect::<Vec<_>>(),
        "node_id": m.node_id,
        "addresses": m.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "attributes": m.attributes,
        "issuer": c.issuer_peer_name,
        "issuer_friendly_name": c.issuer_friendly_name,
        "valid_from": rfc3339(c.not_before),
        "valid_until": rfc3339(c.not_after),
    })
}

fn member_line(m: &Member) -> String {
    let roles: Vec<&str> = m.credential.roles.iter().map(role_name).collect();
    let addrs: Vec<String> = m.addresses.iter().map(|a| a.to_string()).collect();
    format!(
        "{}  {}  {}  {}{}",
        m.identity,
        m.credential.friendly_name,
        if m.is_present() { "present" } else { "absent" },
        roles.join(","),
        if addrs.is_empty() {
            String::new()
        } else {
            format!("  {}", addrs.join(" "))
        }
    )
}

/// Lists the members (the local one first).
pub fn members(
    store: &IdentityStore,
    who: &As,
    args: MembersArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let h = ctx.open(&args.group)?;
        let member = args
            .member
            .as_deref()
            .map(str::parse::<PeerName>)
            .transpose();
        let flags = if args.present { PEER_MEMBER_PRESENT } else { 0 };
        let listed = match member {
            Ok(m) => h.members(flags, m.as_ref()).map_err(CliError::from),
            Err(e) => Err(e.into()),
        };
        let listed = close_after(h, listed).await?;
        tracing::debug!(members = listed.len(), "members listed");
        if as_json {
            println!(
                "{}",
                serde_json::Value::Array(listed.iter().map(member_json).collect())
            );
        } else {
            for m in &listed {
                println!("{}", member_line(m));
            }
        }
        Ok(())
    })
}

/// Issues credentials (administrators only); prints the invitation unless `--store`.
pub(crate) async fn issue_credentials(
    ctx: &Context,
    args: IssueCredentialsArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let h = ctx.open(&args.group)?;
    let result = issue_open(&h, &args);
    let invitation = close_after(h, result).await?;
    match (args.store, as_json) {
        (true, true) => println!("{}", json!({"stored": args.subject})),
        (true, false) => println!("stored new credentials for {}", args.subject),
        (false, true) => println!("{}", json!({"invitation": invitation})),
        (false, false) => print!("{invitation}"),
    }
    Ok(())
}

fn issue_open(h: &GroupHandle, args: &IssueCredentialsArgs) -> Result<String, CliError> {
    let subject: PeerName = args.subject.parse()?;
    let roles = args
        .roles
        .iter()
        .map(|r| role(r))
        .collect::<Result<Vec<_>, _>>()?;
    let flags = if args.store {
        PEER_GROUP_STORE_CREDENTIALS
    } else {
        0
    };
    let info = if roles.is_empty() {
        None
    } else {
        // The key and name come from the member's stored credentials, as a Windows program
        // takes them from PeerGroupEnumMembers.
        let known = h.members(0, Some(&subject))?;
        let c = &known[0].credential;
        Some(CredentialSpec {
            friendly_name: c.friendly_name.clone(),
            public_key_der: c.public_key_der.clone(),
            roles,
            not_after: None,
        })
    };
    Ok(h.issue_credentials(&subject, info.as_ref(), flags)?)
}
