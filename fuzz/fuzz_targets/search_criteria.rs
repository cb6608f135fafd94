//! `PeerGroupSearchRecords` criteria from strangers: parsing never panics, and what parses
//! evaluates against a fixed record without panicking (and gives the same answer twice).
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peergroup_proto::records::attributes::{Attributes, Timestamp};
use peergroup_proto::records::search::{Criteria, RecordView};

struct Fixed {
    attributes: Attributes,
}

impl RecordView for Fixed {
    fn creator_id(&self) -> Cow<'_, str> {
        "0123456789abcdef0123456789abcdef01234567.alice".into()
    }
    fn last_modified_by(&self) -> Cow<'_, str> {
        "0.bob".into()
    }
    fn record_id(&self) -> Cow<'_, str> {
        "{6B5F2C1A-0D3E-4F5A-9B8C-7D6E5F4A3B2C}".into()
    }
    fn record_type(&self) -> Cow<'_, str> {
        "{00000000-0000-0000-0000-0000000000AA}".into()
    }
    fn creation_time(&self) -> Timestamp {
        Timestamp::from_unix(1_043_964_000, 0).expect("in range")
    }
    fn last_modification_time(&self) -> Timestamp {
        Timestamp::from_unix(1_044_050_400, 500_000_000).expect("in range")
    }
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

fn record() -> &'static Fixed {
    static RECORD: OnceLock<Fixed> = OnceLock::new();
    RECORD.get_or_init(|| Fixed {
        attributes: Attributes::parse(
            "<attributes>\
             <attribute name=\"Title\" type=\"string\">Minutes of March</attribute>\
             <attribute name=\"Pages\" type=\"int\">12</attribute>\
             <attribute name=\"Due\" type=\"date\">2003-03-01</attribute>\
             <attribute name=\"Odd\" type=\"string\">a*b?c\\d é😀</attribute>\
             </attributes>",
        )
        .expect("the fixed attributes parse"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(criteria) = Criteria::parse(text) {
        let first = criteria.matches(record());
        assert_eq!(criteria.matches(record()), first);
        assert!(criteria.clause_count() >= 1);
    }
});
