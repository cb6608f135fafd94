//! Record attribute XML from strangers: parsing never panics, and what parses serialises to
//! a document that parses to an equal value, whose serialisation is the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergroup_proto::records::attributes::Attributes;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(attributes) = Attributes::parse(text) {
        let xml = attributes.to_xml();
        let again = Attributes::parse(&xml).expect("our own output parses");
        assert_eq!(again, attributes);
        assert_eq!(again.to_xml(), xml);
    }
});
