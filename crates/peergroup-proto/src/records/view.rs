//! A stored record as search sees it ([`RecordView`]), and the small conversions the group's
//! record calls need: GUID text, millisecond times as [`Timestamp`]s, the reserved record
//! types and (with the store) the attribute rows the search index keeps.

use std::borrow::Cow;

use super::attributes::{Attributes, Timestamp};
use super::record::Record;
use super::search::RecordView;

/// A GUID in Windows byte order (`Data1`, `Data2`, `Data3` little-endian, then `Data4`) as
/// `StringFromGUID2` writes it: `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, upper case.
pub fn guid_text(g: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
    let d2 = u16::from_le_bytes([g[4], g[5]]);
    let d3 = u16::from_le_bytes([g[6], g[7]]);
    let mut s = format!("{{{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", g[8], g[9]);
    for b in &g[10..] {
        s.push_str(&format!("{b:02X}"));
    }
    s.push('}');
    s
}

/// Milliseconds since the Unix epoch as a [`Timestamp`], clamped to
/// [`Timestamp::MIN`]..=[`Timestamp::MAX`].
pub fn ms_to_timestamp(ms: i64) -> Timestamp {
    let secs = ms.div_euclid(1000);
    let nanos = (ms.rem_euclid(1000) as u32) * 1_000_000;
    Timestamp::from_unix(secs, nanos).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// A [`Timestamp`] as milliseconds since the Unix epoch (floor), as the store indexes dates.
pub fn timestamp_ms(t: Timestamp) -> i64 {
    t.unix_seconds() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)
}

/// True for the record types the infrastructure reserves, which applications may not use
/// (`PEER_E_NOT_AUTHORIZED`): every GUID whose last 12 bytes are zero. That covers the known
/// ones (Graphing's `{00000100-…}` to `{00000400-…}`, the security properties record
/// `{02000000-…}`) and, as the reference supposes without proof, the rest of that range.
pub fn is_reserved_type(record_type: &[u8; 16]) -> bool {
    record_type[4..].iter().all(|&b| b == 0)
}

/// A record with its attributes parsed, for [`crate::records::search::Criteria::matches`].
#[derive(Clone, Debug)]
pub struct StoredRecordView<'a> {
    record: &'a Record,
    attributes: Attributes,
}

impl<'a> StoredRecordView<'a> {
    /// Parses the record's attributes ([`Attributes::parse`]'s errors).
    pub fn new(record: &'a Record) -> crate::error::Result<Self> {
        Ok(StoredRecordView {
            record,
            attributes: Attributes::parse(&record.attributes)?,
        })
    }

    /// The record viewed.
    pub fn record(&self) -> &Record {
        self.record
    }
}

impl RecordView for StoredRecordView<'_> {
    fn creator_id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.record.creator)
    }

    fn last_modified_by(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.record.modifier)
    }

    fn record_id(&self) -> Cow<'_, str> {
        Cow::Owned(guid_text(&self.record.id))
    }

    fn record_type(&self) -> Cow<'_, str> {
        Cow::Owned(guid_text(&self.record.record_type))
    }

    fn creation_time(&self) -> Timestamp {
        ms_to_timestamp(self.record.created)
    }

    fn last_modification_time(&self) -> Timestamp {
        ms_to_timestamp(self.record.modified)
    }

    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_read_as_windows_writes_them() {
        let mut g = [0u8; 16];
        g[..4].copy_from_slice(&0x0000_0100u32.to_le_bytes());
        assert_eq!(guid_text(&g), "{00000100-0000-0000-0000-000000000000}");
        let g = [
            0x27, 0x71, 0x38, 0x04, 0x56, 0xaa, 0x0a, 0x45, 0x8c, 0xe5, 0x4f, 0x56, 0x5c, 0x67,
            0x90, 0xf4,
        ];
        assert_eq!(guid_text(&g), "{04387127-AA56-450A-8CE5-4F565C6790F4}");
    }

    #[test]
    fn reserved_types_are_the_last_twelve_zero_bytes() {
        let mut g = [0u8; 16];
        g[..4].copy_from_slice(&0x0200_0000u32.to_le_bytes());
        assert!(is_reserved_type(&g));
        assert!(is_reserved_type(&[0; 16]));
        g[15] = 1;
        assert!(!is_reserved_type(&g));
    }

    #[test]
    fn milliseconds_convert_both_ways() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            assert_eq!(timestamp_ms(ms_to_timestamp(ms)), ms);
        }
        assert_eq!(ms_to_timestamp(i64::MAX), Timestamp::MAX);
        assert_eq!(ms_to_timestamp(i64::MIN), Timestamp::MIN);
    }
}
