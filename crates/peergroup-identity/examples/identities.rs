//! The Peer Identity Manager in a temporary home: create an identity, rename it, hand out
//! its public XML, export it under a password and import it into a second home.
//!
//! ```text
//! cargo run -p peergroup-identity --example identities
//! ```

use peergroup_identity::IdentityStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let store = IdentityStore::open(home.path())?;
    let me = store.create(Some("chat"), Some("Alice"), None)?;
    println!("created {me}");
    store.set_friendly_name(&me, "Alice Liddell")?;
    for pair in store.list()? {
        println!("  {} — {}", pair.peer_name, pair.friendly_name);
    }
    let public = store.public_xml(&me)?;
    println!("public XML for inviters: {} bytes", public.len());

    let backup = store.export(&me, "a long passphrase")?;
    let elsewhere = tempfile::tempdir()?;
    let other = IdentityStore::open(elsewhere.path())?;
    match other.import(&backup, "the wrong passphrase") {
        Err(e) => println!(
            "wrong passphrase refused: {e} (HRESULT 0x{:08X})",
            e.hresult() as u32
        ),
        Ok(_) => return Err("a wrong passphrase was accepted".into()),
    }
    let imported = other.import(&backup, "a long passphrase")?;
    assert_eq!(imported, me);
    println!("imported {imported} into a second home");
    Ok(())
}
