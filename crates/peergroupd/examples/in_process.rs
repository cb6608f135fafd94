//! The Peergroup service in-process: a daemon on a temporary socket and home (on a thread of
//! its own), a `Peergroup` served by it, a group opened, brought online (loopback only) and
//! its status printed, then everything shut down.
//!
//! ```sh
//! cargo run -p peergroupd --example in_process
//! ```

use std::time::Duration;

use peergroup_core::identity::IdentityStore;
use peergroup_core::io::STATUS_LISTENING;
use peergroup_core::properties::GroupProperties;
use peergroup_core::Peergroup;
use peergroupd::{current_uid, Background};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A temporary home with an identity and a group it created.
    let dir = tempfile::tempdir()?;
    let store = IdentityStore::open(dir.path().join("home"))?;
    let me = store.create(Some("example"), Some("Example"), None)?;
    let listen = Some("127.0.0.1:0".parse()?);
    let pg = Peergroup::embedded(store, listen, Default::default());
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
    let home = IdentityStore::open(dir.path().join("home"))?;
    let service = Background::start(home.clone(), listen, socket.clone(), current_uid()?)?;
    println!("service  listening on {}", socket.display());

    // A client process would do this part (with PEERGROUP_SERVICE=required and
    // PEERGROUP_SERVICE_SOCKET set, `Peergroup::new` does the same): open the group, bring
    // it online, read its status.
    let client = Peergroup::through_service(home, listen, Default::default(), socket)?;
    let handle = client.open_group(Some(&me), &group)?;
    handle.connect().await?;
    let status = handle
        .wait_status(STATUS_LISTENING, Duration::from_secs(10))
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
        service.daemon().open_count(&(me.clone(), group.clone()))
    );

    // Closing the last handle closes the group; then the service stops.
    handle.close().await?;
    drop(client);
    service.stop()?;
    println!("service  stopped");
    Ok(())
}
