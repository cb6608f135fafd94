//! Two members on loopback, each in its own temporary home: Alice creates a group and
//! invites Bob; Bob joins; a record Alice adds reaches Bob, who is told by an event.
//!
//! ```text
//! cargo run -p peergroup-core --example records
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peergroup_core::identity::IdentityStore;
use peergroup_core::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::GroupProperties;
use peergroup_core::{Event, EventFilter, EventItem, EventKind, NewRecord, Peergroup};

const NOTE: [u8; 16] = [0x4e; 16];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let loopback = Some("127.0.0.1:0".parse()?);
    let (alice_home, bob_home) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let alice_ids = IdentityStore::open(alice_home.path())?;
    let alice = alice_ids.create(Some("notes"), Some("Alice"), None)?;
    let bob_ids = IdentityStore::open(bob_home.path())?;
    let bob = bob_ids.create(Some("notes"), Some("Bob"), None)?;
    let bob_xml = bob_ids.public_xml(&bob)?;
    let (alice_pg, bob_pg) = (
        Peergroup::new(alice_ids, loopback),
        Peergroup::new(bob_ids, loopback),
    );

    // Alice creates the group, goes online and invites Bob's identity.
    let group = alice_pg.create_group(GroupProperties {
        classifier: "notes".into(),
        friendly_name: "Notes".into(),
        creator_peer_name: alice.to_string(),
        ..Default::default()
    })?;
    group.connect().await?;
    group
        .wait_status(STATUS_LISTENING, Duration::from_secs(10))
        .await?;
    let invitation = group.create_invitation(&bob_xml, None, &[])?;
    println!("Alice created {} and invited Bob", group.group_name());

    // Bob joins with the invitation, listens for record changes, and connects.
    let joined = bob_pg.join(Some(&bob), &invitation)?;
    let mut events = joined.subscribe(EventFilter::kinds(&[EventKind::RecordChanged]))?;
    joined.connect().await?;
    let both = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
    joined.wait_status(both, Duration::from_secs(10)).await?;
    println!("Bob is connected");

    // Alice adds a record; it floods to Bob.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let id = group.add_record(NewRecord {
        record_type: NOTE,
        attributes: "<attributes><attribute name=\"topic\" type=\"string\">hello\
                     </attribute></attributes>"
            .into(),
        expires_ms: now + 3_600_000,
        data: b"Hello, Bob!".to_vec(),
    })?;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), events.next()).await?;
        if let Some(EventItem::Event(Event::RecordChanged {
            id: got, change, ..
        })) = item
        {
            if got == id {
                let record = joined.get_record(&id)?;
                println!(
                    "Bob was told ({change:?}) and reads: {:?}, signed by {}",
                    String::from_utf8_lossy(&record.data),
                    record.creator
                );
                break;
            }
        }
    }

    // Closing the last handle closes each member's connections and releases its port.
    joined.close().await?;
    group.close().await?;
    Ok(())
}
