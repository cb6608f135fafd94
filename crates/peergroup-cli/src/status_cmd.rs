//! `peergroup status GROUP`: a group's status as this home sees it — status bits, neighbours,
//! listen addresses and record count.
//!
//! The command brings the group online (`PeerGroupConnect`) and waits until it has a
//! neighbour or `--wait` seconds pass, then reports and closes; `--offline` reports without
//! connecting. It says who runs the group: `peergroupd` (then other processes' handles keep it
//! online after this one closes) or this process.

use std::time::{Duration, Instant};

use clap::Args;
use peergroup_core::identity::IdentityStore;
use peergroup_core::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use serde_json::json;

use crate::context::{runtime, As, Context};
use crate::output::CliError;

/// `peergroup status GROUP [--wait SECONDS] [--offline]`.
#[derive(Args)]
pub struct StatusArgs {
    /// Group peer name.
    group: String,
    /// Longest wait for a first neighbour before reporting.
    #[arg(long, default_value_t = 3)]
    wait: u64,
    /// Report without bringing the group online.
    #[arg(long)]
    offline: bool,
}

/// The names of the `PEER_GROUP_STATUS` bits that are set.
pub(crate) fn status_names(status: u32) -> Vec<&'static str> {
    let mut names = Vec::new();
    if status & STATUS_LISTENING != 0 {
        names.push("LISTENING");
    }
    if status & STATUS_HAS_CONNECTIONS != 0 {
        names.push("HAS_CONNECTIONS");
    }
    names
}

/// Reports a group's status once.
pub fn status(
    store: &IdentityStore,
    who: &As,
    args: StatusArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let ctx = Context::new(store, who)?;
    runtime()?.block_on(async {
        let h = ctx.open(&args.group)?;
        let report = async {
            if !args.offline {
                h.connect().await?;
                // The status bits and the neighbour list are published separately: wait for
                // both to show the first neighbour (bounded).
                let deadline = Instant::now() + Duration::from_secs(args.wait);
                // On a terminal, a spinner follows the wait (and the synchronisation).
                let mut sync = crate::progress::SyncProgress::new(&args.group);
                while Instant::now() < deadline
                    && (h.status()? & STATUS_HAS_CONNECTIONS == 0 || h.neighbours()?.is_empty())
                {
                    if sync.running() {
                        sync.update(h.status()?, h.record_count().ok());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sync.finish();
            }
            let status = h.status()?;
            let listen = h.listen_addrs()?;
            let reachable = h.reachable()?;
            let neighbours = h.neighbours()?;
            // Before the first synchronisation the database is not the group's yet.
            let records = match h.record_count() {
                Ok(n) => Some(n),
                Err(peergroup_core::CoreError::NotReady) => None,
                Err(e) => return Err(e.into()),
            };
            Ok::<_, CliError>((status, listen, reachable, neighbours, records))
        }
        .await;
        h.close().await?;
        let (status, listen, reachable, neighbours, records) = report?;
        tracing::debug!(status, neighbours = neighbours.len(), ?records, "status");
        if as_json {
            let ns: Vec<_> = neighbours
                .iter()
                .map(|n| {
                    json!({
                        "member": n.member,
                        "node_id": n.node_id,
                        "address": n.address.to_string(),
                        "outbound": n.outbound,
                        "relayed_by": n.relayed_by,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "group": args.group,
                    "status": status,
                    "status_names": status_names(status),
                    "listen": listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "advertised": reachable.advertised.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "nat": reachable.nat.to_string(),
                    "outside": reachable.outside.to_string(),
                    "neighbours": ns,
                    "records": records,
                    "service": ctx.pg.is_service(),
                })
            );
        } else {
            println!(
                "status:     {status:#x} ({})",
                status_names(status).join(" | ")
            );
            let listen: Vec<String> = listen.iter().map(|a| a.to_string()).collect();
            println!("listening:  {}", listen.join(", "));
            let advertised: Vec<String> =
                reachable.advertised.iter().map(|a| a.to_string()).collect();
            println!("reachable:  {}", advertised.join(", "));
            println!("nat:        {}", reachable.nat);
            println!("outside:    {}", reachable.outside);
            println!("neighbours: {}", neighbours.len());
            for n in &neighbours {
                let dir = if n.outbound { "out" } else { "in" };
                match n.relayed_by {
                    // A tunnel's address is the transport's own: name the relay instead.
                    Some(relay) => {
                        let by = neighbours
                            .iter()
                            .find(|r| r.node_id == relay && r.relayed_by.is_none())
                            .map_or_else(|| format!("node {relay:016x}"), |r| r.member.clone());
                        println!("  {} relayed by {by} ({dir})", n.member);
                    }
                    None => println!("  {} at {} ({dir})", n.member, n.address),
                }
            }
            match records {
                Some(n) => println!("records:    {n}"),
                None => println!("records:    (not synchronised yet)"),
            }
            let runner = if ctx.pg.is_service() {
                "peergroupd"
            } else {
                "this process"
            };
            println!("run by:     {runner}");
        }
        Ok(())
    })
}
