//! `peergroup demo`: a walk through what works today, in a temporary home, with no set-up.
//!
//! It grows with each capability; today it shows the identity layer.

use peergroup_core::identity::{IdentityError, IdentityStore};

use crate::output::CliError;

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// Runs the demo; any failure is an error (non-zero exit).
pub fn run() -> Result<(), CliError> {
    let tmp =
        tempfile::tempdir().map_err(|e| CliError::usage(format!("temporary directory: {e}")))?;
    let home_a = tmp.path().join("alice-home");
    let home_b = tmp.path().join("bob-home");
    println!("Peergroup demo: two homes under {}", tmp.path().display());

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
            return Err(CliError::usage(format!(
                "wrong password was not refused: {other:?}"
            )))
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

    println!("\nDone. Groups over QUIC, records and events come next (see README.md).");
    Ok(())
}
