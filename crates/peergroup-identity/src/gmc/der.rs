//! The few DER building blocks a membership certificate needs, written by hand.
//!
//! rcgen cannot write the GMC extension: its object identifiers are lists of `u64` arcs, and
//! an OID under `2.25` carries a whole 128-bit UUID as one arc. So GMCs are assembled here
//! from definite-length, minimally encoded TLVs and signed with [`crate::PrivateKey::sign`];
//! x509-parser reads them back (and every issued certificate is parsed before it is returned).

use time::OffsetDateTime;

use crate::error::{IdentityError, Result};

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// Context-specific, constructed tag `[n]` (explicit tagging).
pub(crate) const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// One TLV with a minimal definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed value made of already encoded parts.
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes (leading zeros stripped, a zero
/// byte added when the top bit would make it negative).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

/// A BIT STRING of whole bytes (no unused bits).
pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// RFC 5280 §4.1.2.5: UTCTime for the years 1950–2049, GeneralizedTime otherwise; always UTC,
/// with seconds and no fraction. Times outside 1970-01-01 .. 9999-12-31 are refused.
pub(crate) fn time(unix: i64) -> Result<Vec<u8>> {
    if !(0..=MAX_UNIX_TIME).contains(&unix) {
        return Err(IdentityError::InvalidTimePeriod(format!(
            "time {unix} is outside 1970..=9999"
        )));
    }
    let t = OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| IdentityError::InvalidTimePeriod(format!("time {unix} is out of range")))?;
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(if (1950..2050).contains(&t.year()) {
        tlv(UTC_TIME, format!("{:02}{rest}", t.year() % 100).as_bytes())
    } else {
        tlv(
            GENERALIZED_TIME,
            format!("{:04}{rest}", t.year()).as_bytes(),
        )
    })
}

/// 9999-12-31T23:59:59Z, the last instant GeneralizedTime can hold with a four-digit year.
pub const MAX_UNIX_TIME: i64 = 253_402_300_799;

/// Reads exactly one TLV of `tag` spanning all of `input` and returns its content, refusing
/// indefinite and non-minimal lengths (DER, not BER).
pub(crate) fn read_whole(tag: u8, input: &[u8]) -> Result<&[u8]> {
    let (content, rest) = read_tlv(tag, input)?;
    if !rest.is_empty() {
        return Err(bad("bytes after the value"));
    }
    Ok(content)
}

/// Reads one TLV of `tag` (single-byte tag, strict DER length) from the front of `input`:
/// its content and what follows it.
pub(crate) fn read_tlv(tag: u8, input: &[u8]) -> Result<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first().ok_or_else(|| bad("empty input"))?;
    if found != tag {
        return Err(bad(&format!("tag {found:#04x}, expected {tag:#04x}")));
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(|| bad("no length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("unsupported or truncated length"));
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        if len_bytes[0] == 0 {
            return Err(bad("length with a leading zero byte"));
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(bad("long-form length for a short value"));
        }
        len
    };
    if rest.len() < len {
        return Err(bad("value runs past the data"));
    }
    Ok(rest.split_at(len))
}

/// The whole encoding (header and content) of the TLV of `tag` at the front of `input`, and
/// what follows it.
pub(crate) fn split_tlv(tag: u8, input: &[u8]) -> Result<(&[u8], &[u8])> {
    let (_, rest) = read_tlv(tag, input)?;
    Ok(input.split_at(input.len() - rest.len()))
}

fn bad(why: &str) -> IdentityError {
    IdentityError::BadEncoding(format!("DER: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal_and_read_back() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let content = vec![0x5a; len];
            let enc = tlv(OCTET_STRING, &content);
            let header = enc.len() - len;
            let expected_header = match len {
                0..=127 => 2,
                128..=255 => 3,
                256..=65_535 => 4,
                _ => 5,
            };
            assert_eq!(header, expected_header, "length {len}");
            assert_eq!(read_whole(OCTET_STRING, &enc).unwrap(), &content[..]);
        }
    }

    #[test]
    fn reader_refuses_ber_and_mismatches() {
        for bad in [
            &b""[..],
            &[0x04],
            &[0x05, 0x00],
            &[0x04, 0x80],             // indefinite
            &[0x04, 0x81, 0x01, 0xff], // long form for a short length
            &[0x04, 0x82, 0x00, 0x80], // leading zero
            &[0x04, 0x02, 0x00],       // short
            &[0x04, 0x01, 0x00, 0x00], // trailing
            &[0x04, 0x85, 1, 1, 1, 1, 1],
        ] {
            assert!(read_whole(OCTET_STRING, bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn integers_are_positive_and_minimal() {
        assert_eq!(unsigned_integer(&[0, 0, 5]), [0x02, 0x01, 0x05]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[]), [0x02, 0x01, 0x00]);
    }

    #[test]
    fn times_switch_to_generalized_time_in_2050() {
        assert_eq!(time(0).unwrap(), tlv(UTC_TIME, b"700101000000Z"));
        // 2049-12-31T23:59:59Z and one second later.
        assert_eq!(
            time(2_524_607_999).unwrap(),
            tlv(UTC_TIME, b"491231235959Z")
        );
        assert_eq!(
            time(2_524_608_000).unwrap(),
            tlv(GENERALIZED_TIME, b"20500101000000Z")
        );
        assert_eq!(
            time(MAX_UNIX_TIME).unwrap(),
            tlv(GENERALIZED_TIME, b"99991231235959Z")
        );
        assert!(time(-1).is_err());
        assert!(time(MAX_UNIX_TIME + 1).is_err());
    }
}
