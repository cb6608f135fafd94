//! The Peergroup service in-process: a daemon on a temporary socket and home, a
//! [`Client`] connected to it, a group opened, brought online (loopback only) and its status
//! printed, then everything shut down.
//!
//! ```sh
//! cargo run -p peergroupd --example in_process
//! ```

use std::time::Duration;

use peergroup_core::identity::IdentityStore;
use peergroup_core::machine::STATUS_LISTENING;
use peergroup_core::properties::GroupProperties;
use peergroup_core::service::Client;
use peergroup_core::Peergroup;
use peergroupd::{bind_socket, current_uid, Daemon};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A temporary home with an identity and a group it created.
    let dir = tempfile::tempdir()?;
    let store = IdentityStore::open(dir.path().join("home"))?;
    let me = store.create(Some("example"), Some("Example"), None)?;
    let pg = Peergroup::new(store, Some("127.0.0.1:0".parse()?));
    let created = pg.create_group(GroupProperties {
        classifier: "example".into(),
        friendly_name: "Service example".into(),
        creator_peer_name: me.to_string(),
        ..Default::default()
    })?;
    let group = created.group_name().clone();
    created.close().await?;
    println!("identity {me}");
    println!("group    {group}");

    // The service on a private socket of its own, for this user only.
    let socket = dir.path().join("run").join("peergroupd.sock");
    let listener = bind_socket(&socket).await?;
    let daemon = Daemon::new(pg, current_uid()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = daemon.clone();
    let served = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    println!("service  listening on {}", socket.display());

    // A client process would do this part: open the group, bring it online, read its status.
    let client = Client::connect(&socket).await?;
    let handle = client.open_group(Some(&me), &group).await?;
    client.connect_group(handle, &[]).await?;
    let status = client
        .wait_status(handle, STATUS_LISTENING, Duration::from_secs(10))
        .await?;
    println!(
        "status   {status:#x}{}",
        if status & STATUS_LISTENING != 0 {
            " (LISTENING)"
        } else {
            ""
        }
    );
    println!(
        "opened   {} handle(s) to the group in the service",
        daemon.open_count(&(me.clone(), group.clone()))
    );

    // Closing the last handle closes the group; then the service stops.
    client.close(handle).await?;
    drop(client);
    let _ = stop.send(());
    served.await??;
    println!("service  stopped");
    Ok(())
}
