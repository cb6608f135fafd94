//! `peergroup demo`: a walk through what works today, in a temporary home, with no set-up.
//!
//! It grows with each capability; today: identities, then a group of three members over QUIC
//! on loopback: create, invite, join, password join, records (added at one member, seen at the
//! others), search, a direct connection with data, and the close.

use std::time::Duration;

use peergroup_core::identity::{hresult, IdentityError, IdentityStore};
use peergroup_core::io::{ConnectionStatus, STATUS_HAS_CONNECTIONS, STATUS_LISTENING};
use peergroup_core::properties::{
    GroupProperties, PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PASSWORD_AUTHENTICATION,
};
use peergroup_core::records::view::guid_text;
use peergroup_core::{
    Event, EventFilter, EventItem, EventKind, EventSubscription, GroupHandle, NewRecord, Peergroup,
};

use crate::data_cmd::DATA_TYPE;
use crate::output::CliError;
use crate::record_cmd::{attributes_xml, parse_guid, search_xml, NOTE_TYPE};

const WAIT: Duration = Duration::from_secs(10);

/// The hint of a demo step that went against what Peergroup guarantees.
const BUG: &str =
    "this is a bug in Peergroup: please report it with the output of `peergroup -vv demo`";

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// Runs the demo; any failure is an error (non-zero exit).
pub fn run() -> Result<(), CliError> {
    let tmp = tempfile::tempdir().map_err(|e| CliError::internal("temporary directory", e))?;
    let home_a = tmp.path().join("alice-home");
    let home_b = tmp.path().join("bob-home");
    println!(
        "Peergroup demo: temporary homes under {}",
        tmp.path().display()
    );

    step(
        1,
        "Alice and Bob create identities (ECDSA P-256 keys, self-signed X.509 certificates)",
    );
    let a = IdentityStore::open(&home_a)?;
    let b = IdentityStore::open(&home_b)?;
    let alice = a.create(Some("alice"), Some("Alice"), None)?;
    let bob = b.create(Some("bob"), Some("Bob"), None)?;
    let carol = a.create(Some("carol"), Some("Carol (Alice's laptop)"), None)?;
    println!("    alice: {alice}");
    println!("    bob:   {bob}");
    println!("    the authority is SHA-1 of the public key; the classifier is the caller's");

    step(2, "Alice lists her identities (PeerEnumIdentities)");
    for p in a.list()? {
        println!("    {}  {}", p.peer_name, p.friendly_name);
    }

    step(
        3,
        "Bob hands his public identity XML to an inviter (PeerIdentityGetXML)",
    );
    let xml = b.public_xml(&bob)?;
    println!("    {}… ({} bytes)", &xml[..xml.len().min(72)], xml.len());
    let parsed = peergroup_core::identity::documents::parse_identity_info(&xml)?;
    println!(
        "    verified: names {} with friendly name {:?}",
        parsed.peer_name(),
        parsed.friendly_name()
    );

    step(4, "Alice renames Carol (PeerIdentitySetFriendlyName)");
    a.set_friendly_name(&carol, "Carol")?;
    println!("    {} is now {:?}", carol, a.friendly_name(&carol)?);

    step(
        5,
        "Alice exports Carol with a password and moves her to Bob's home",
    );
    let export = a.export(&carol, "correct horse battery staple")?;
    println!("    export: {} bytes of <PEERIDENTITYEXPORT>", export.len());
    match b.import(&export, "wrong password") {
        Err(e @ IdentityError::WrongPassword) => println!(
            "    a wrong password is refused: {e} (0x{:08X}); Bob's home is unchanged",
            e.hresult() as u32
        ),
        other => {
            return Err(CliError::with_hresult(
                format!("wrong password was not refused: {other:?}"),
                hresult::E_UNEXPECTED,
                Some(BUG),
            ))
        }
    }
    let moved = b.import(&export, "correct horse battery staple")?;
    a.delete(&carol)?;
    println!("    imported {moved} into Bob's home and deleted it from Alice's");

    step(6, "Each home now holds");
    for (who, store) in [("alice-home", &a), ("bob-home", &b)] {
        for p in store.list()? {
            println!("    {who}: {}  {}", p.peer_name, p.friendly_name);
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal("tokio runtime", e))?;
    runtime.block_on(groups(&a, &b, &alice, &bob, &tmp.path().join("carol-home")))?;
    println!("\nDone.");
    Ok(())
}

async fn groups(
    a: &IdentityStore,
    b: &IdentityStore,
    alice: &peergroup_core::identity::PeerName,
    bob: &peergroup_core::identity::PeerName,
    carol_home: &std::path::Path,
) -> Result<(), CliError> {
    let loopback = Some("127.0.0.1:0".parse().expect("an address"));
    let pa = Peergroup::new(a.clone(), loopback);
    let pb = Peergroup::new(b.clone(), loopback);

    step(
        7,
        "Alice creates a group (she becomes its administrator) and connects",
    );
    let group = pa.create_group(GroupProperties {
        classifier: "demo".into(),
        friendly_name: "Demo Group".into(),
        creator_peer_name: alice.to_string(),
        authentication_schemes: PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION,
        group_password: Some("open sesame".into()),
        ..Default::default()
    })?;
    println!("    group: {}", group.group_name());
    group.connect().await?;
    let status = group.wait_status(STATUS_LISTENING, WAIT).await?;
    println!(
        "    status {status:#x} (LISTENING) on {:?}",
        group.listen_addrs()?
    );

    step(
        8,
        "Alice invites Bob's identity; Bob joins and connects over QUIC (mutual TLS)",
    );
    let invitation = group.create_invitation(&b.public_xml(bob)?, None, &[])?;
    let info = Peergroup::parse_invitation(&invitation)?;
    println!(
        "    invitation for {} with roles {:?}, {} bytes",
        info.subject().map(|s| s.0.to_string()).unwrap_or_default(),
        info.roles,
        invitation.len()
    );
    let joined = pb.join(Some(bob), &invitation)?;
    joined.connect().await?;
    let both = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
    let sb = joined.wait_status(both, WAIT).await?;
    let sa = group.wait_status(both, WAIT).await?;
    println!("    Bob {sb:#x}, Alice {sa:#x}: LISTENING | HAS_CONNECTIONS");
    for n in group.neighbours()? {
        println!("    Alice's neighbour: {} at {}", n.member, n.address);
    }

    step(
        9,
        "Carol joins with the group password (SPAKE2: the password never crosses the wire)",
    );
    let c = IdentityStore::open(carol_home)?;
    let carol = c.create(Some("carol"), Some("Carol"), None)?;
    let pc = Peergroup::new(c, loopback);
    let password_invitation = group.create_password_invitation()?;
    match pc
        .password_join(Some(&carol), &password_invitation, "guess")
        .await
    {
        Err(e) => println!(
            "    a wrong password is refused: {e} (0x{:08X})",
            e.hresult() as u32
        ),
        Ok(_) => {
            return Err(CliError::with_hresult(
                "a wrong group password was accepted",
                hresult::E_UNEXPECTED,
                Some(BUG),
            ))
        }
    }
    let (carol_group, _) = pc
        .password_join(Some(&carol), &password_invitation, "open sesame")
        .await?;
    carol_group.connect().await?;
    let sc = carol_group.wait_status(both, WAIT).await?;
    println!("    Carol {sc:#x}, roles {:?}", carol_group.roles()?);

    records(&group, &joined, &carol_group).await?;
    direct_data(&joined, &carol_group, &carol).await?;

    step(
        13,
        "Closing: Alice's last handle closes the group layer by layer",
    );
    let port = pa.local_addr().await.map(|a| a.port());
    group.close().await?;
    println!(
        "    Alice's node closed: {}",
        if pa.local_addr().await.is_none() {
            "UDP port released"
        } else {
            "still bound"
        }
    );
    if let Some(port) = port {
        let free = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        println!("    port {port} can be bound again: {free}");
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = joined.recent_disconnects()?;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("    Bob saw the connection end with: {seen:?}");
    joined.close().await?;
    carol_group.close().await?;
    Ok(())
}

/// The next event of `sub` for which `pick` gives a value, within [`WAIT`].
async fn wait_for<T>(
    sub: &mut EventSubscription,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Result<T, CliError> {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(item) = sub.next().await {
            if let EventItem::Event(e) = item {
                if let Some(t) = pick(e) {
                    return Some(t);
                }
            }
        }
        None
    })
    .await;
    found.ok().flatten().ok_or_else(|| {
        CliError::timeout(
            format!("{what} did not happen within {WAIT:?}"),
            "the machine may be overloaded, or loopback UDP blocked: retry with -v for logs",
        )
    })
}

/// Steps 10 and 11: a record added at Alice reaches Bob and Carol; Carol searches.
async fn records(
    alice: &GroupHandle,
    bob: &GroupHandle,
    carol: &GroupHandle,
) -> Result<(), CliError> {
    step(
        10,
        "Alice adds a record (PeerGroupAddRecord); it floods to Bob and Carol",
    );
    let records_only = || EventFilter::kinds(&[EventKind::RecordChanged]);
    let mut at_bob = bob.subscribe(records_only())?;
    let mut at_carol = carol.subscribe(records_only())?;
    let expires_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        + 3_600_000;
    let id = alice.add_record(NewRecord {
        record_type: parse_guid(NOTE_TYPE)?,
        attributes: attributes_xml(&["Title=string:Minutes".into(), "Pages=int:12".into()])?,
        expires_ms,
        data: b"see you at 9".to_vec(),
    })?;
    println!(
        "    record {} at Alice: Title=Minutes, Pages=12, \"see you at 9\"",
        guid_text(&id)
    );
    for (who, sub, handle) in [("Bob", &mut at_bob, bob), ("Carol", &mut at_carol, carol)] {
        wait_for(sub, &format!("the record reaching {who}"), |e| match e {
            Event::RecordChanged { id: got, .. } if got == id => Some(()),
            _ => None,
        })
        .await?;
        let r = handle.get_record(&id)?;
        println!(
            "    seen at {who} (RECORD_CHANGED): version {}, data {:?}",
            r.version,
            String::from_utf8_lossy(&r.data)
        );
    }

    step(
        11,
        "Carol searches her copy by attributes (PeerGroupSearchRecords)",
    );
    for clause in ["Title=string:Minutes", "Pages=int:12", "Pages=int:99"] {
        let criteria = search_xml(&[clause.into()])?;
        let found = carol.search_records(&criteria)?;
        println!("    {clause}: search found {} record(s)", found.len());
    }
    Ok(())
}

/// Step 12: Bob opens a direct connection to Carol and sends her a message.
async fn direct_data(
    bob: &GroupHandle,
    carol: &GroupHandle,
    carol_name: &peergroup_core::identity::PeerName,
) -> Result<(), CliError> {
    step(
        12,
        "Bob opens a direct connection to Carol and sends her data (PeerGroupSendData)",
    );
    let data_events =
        || EventFilter::kinds(&[EventKind::DirectConnection, EventKind::IncomingData]);
    let mut at_bob = bob.subscribe(data_events())?;
    let mut at_carol = carol.subscribe(data_events())?;
    let address = carol.listen_addrs()?.first().copied();
    let id = bob.open_direct_connection(carol_name, address)?;
    let status = wait_for(&mut at_bob, "Bob's direct connection", |e| match e {
        Event::DirectConnection(c) if c.connection_id == id => Some(c),
        _ => None,
    })
    .await?;
    if status.status != ConnectionStatus::Connected {
        return Err(CliError::with_hresult(
            "the direct connection failed",
            status.failed_reason,
            Some("loopback QUIC between two homes failed: retry with -v for logs"),
        ));
    }
    println!("    direct connection {id} to Carol is up (its own QUIC connection)");
    let data_type = parse_guid(DATA_TYPE)?;
    bob.send_data(id, &data_type, b"hello Carol, just you")
        .await?;
    let (conn, ty, data) = wait_for(&mut at_carol, "Carol's incoming data", |e| match e {
        Event::IncomingData {
            connection_id,
            data_type,
            data,
        } => Some((connection_id, data_type, data)),
        _ => None,
    })
    .await?;
    println!(
        "    Carol received {} bytes of type {} on connection {conn} (INCOMING_DATA): {:?}",
        data.len(),
        guid_text(&ty),
        String::from_utf8_lossy(&data)
    );
    bob.close_direct_connection(id)?;
    wait_for(
        &mut at_carol,
        "Carol seeing the connection close",
        |e| match e {
            Event::DirectConnection(c) if c.connection_id == conn => {
                (c.status == ConnectionStatus::Disconnected).then_some(())
            }
            _ => None,
        },
    )
    .await?;
    println!("    Bob closed it; Carol saw it disconnected");
    Ok(())
}
