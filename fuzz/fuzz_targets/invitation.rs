//! Invitation XML from strangers: parsing never panics, and what parses re-serialises to an
//! invitation that parses to the same group, credential kind and addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::invitation::Invitation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(inv) = Invitation::parse(text) {
        let again = Invitation::parse(&inv.to_xml()).expect("our own output parses");
        assert_eq!(again.group_name, inv.group_name);
        assert_eq!(again.auth_scheme(), inv.auth_scheme());
        assert_eq!(again.addresses, inv.addresses);
        assert_eq!(again.roles, inv.roles);
    }
});
