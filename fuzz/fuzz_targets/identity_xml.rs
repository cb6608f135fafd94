//! `PEERIDENTITYINFO` documents arrive from other peers (an invitee hands its XML to the
//! inviter), so the parser must refuse anything without panicking, and whatever it accepts must
//! survive a write and a re-read unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_identity::documents;

fuzz_target!(|text: &str| {
    if let Ok(cert) = documents::parse_identity_info(text) {
        let again = documents::parse_identity_info(&documents::identity_info_xml(&cert))
            .expect("a parsed identity must re-parse from its own XML");
        assert_eq!(again, cert);
    }
});
