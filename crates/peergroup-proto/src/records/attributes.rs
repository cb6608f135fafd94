//! Record attributes: the XML of `PEER_RECORD.pwzAttributes`.
//!
//! ```text
//! <attributes>
//!   <attribute name="Title" type="string">Minutes</attribute>
//!   <attribute name="Pages" type="int">12</attribute>
//!   <attribute name="Due" type="date">2003-01-31</attribute>
//! </attributes>
//! ```
//!
//! Attributes are what `PeerGroupSearchRecords` looks at, so they are parsed once, on add,
//! update and arrival from a neighbour, into typed values; a record whose attributes do not
//! parse is refused with `PEER_E_INVALID_ATTRIBUTES` rather than stored and mis-searched later.
//!
//! Where Microsoft is silent this module decides, strictly:
//! * names are ASCII letters and digits only, 1 to [`MAX_NAME_CHARS`] of them; their case is
//!   kept but they compare case-insensitively (ASCII), for uniqueness, for the reserved names
//!   and for search, so `Title` and `title` cannot name two different values;
//! * a name may appear once: a duplicate is an error, never "last one wins";
//! * the `type` attribute is required and is exactly `string`, `int` or `date`;
//! * the root may carry namespace declarations (`xmlns…`) and nothing else; `<attribute>`
//!   carries `name` and `type` only and holds text, no elements;
//! * values are trimmed (the XML reader trims element text), so a string value never starts
//!   or ends with white space, and it may not hold characters XML 1.0 cannot carry;
//! * `date` values are W3C NOTE-datetime, kept as an instant ([`Timestamp`]): a date without a
//!   time means midnight UTC of its first day, and serialisation writes the full UTC form, so
//!   `2003-01-31` comes back as `2003-01-31T00:00:00Z`.

use std::fmt;

use crate::error::{AttributesError, Result, Shape, ValueError};
use crate::identity::xml::{self, Element};

/// Largest attribute document accepted, in bytes of UTF-8.
pub const MAX_ATTRIBUTES_XML_BYTES: usize = 64 * 1024;
/// Most attributes one record may carry; more is `PEER_E_TOO_MANY_ATTRIBUTES` (Microsoft does
/// not publish its limit). A document with more elements than the XML reader's own cap
/// ([`xml::MAX_ELEMENTS`]) is refused earlier, as malformed.
pub const MAX_ATTRIBUTES: usize = 128;
/// Longest attribute name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest string value, in characters (Unicode scalar values).
pub const MAX_VALUE_CHARS: usize = 4096;

/// The system attribute names: the record's own fields as search sees them. Applications may
/// not set them (in any letter case) because search would then be ambiguous.
pub const RESERVED_NAMES: [&str; 6] = [
    "peercreatorid",
    "peerlastmodifiedby",
    "peerrecordid",
    "peerrecordtype",
    "peercreationtime",
    "peerlastmodificationtime",
];

const ROOT: &str = "attributes";
const ITEM: &str = "attribute";

/// True for one of [`RESERVED_NAMES`], in any letter case.
pub fn is_reserved_name(name: &str) -> bool {
    RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// True if `name` is an acceptable attribute name: 1 to [`MAX_NAME_CHARS`] ASCII letters or
/// digits. Search clauses name attributes under the same rule.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The type an attribute or a search clause declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// `type="string"`.
    String,
    /// `type="int"`: a signed 64-bit integer.
    Int,
    /// `type="date"`: a W3C NOTE-datetime.
    Date,
}

impl AttrType {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Int => "int",
            AttrType::Date => "date",
        }
    }

    /// Reads the XML spelling, exactly (lower case, as Microsoft writes it).
    pub fn from_xml(text: &str) -> Option<Self> {
        match text {
            "string" => Some(AttrType::String),
            "int" => Some(AttrType::Int),
            "date" => Some(AttrType::Date),
            _ => None,
        }
    }
}

/// An instant, UTC, with nanosecond precision, between [`Timestamp::MIN`] and
/// [`Timestamp::MAX`] (years 0000 to 9999, what four-digit W3C years can write). Ordered by
/// time, so search compares dates with `<` and `>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Seconds between 1601-01-01 (the FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;
const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// 0000-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp {
        secs: -62_167_219_200,
        nanos: 0,
    };
    /// 9999-12-31T23:59:59.999999999Z.
    pub const MAX: Timestamp = Timestamp {
        secs: 253_402_300_799,
        nanos: 999_999_999,
    };

    /// From seconds and nanoseconds since 1970-01-01T00:00:00Z; `None` if `nanos` is not below
    /// one second or the instant is outside [`MIN`](Self::MIN)..=[`MAX`](Self::MAX).
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Self> {
        if nanos >= 1_000_000_000 {
            return None;
        }
        let t = Timestamp { secs, nanos };
        (Self::MIN..=Self::MAX).contains(&t).then_some(t)
    }

    /// From a Windows FILETIME (100 ns ticks since 1601-01-01 UTC), as `PEER_RECORD` carries
    /// its times; `None` past year 9999.
    pub fn from_filetime(ticks: u64) -> Option<Self> {
        let secs = (ticks / 10_000_000) as i64 - FILETIME_UNIX_OFFSET_SECS;
        let nanos = (ticks % 10_000_000) as u32 * 100;
        Self::from_unix(secs, nanos)
    }

    /// Whole seconds since 1970-01-01T00:00:00Z (floor).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds past [`unix_seconds`](Self::unix_seconds).
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Parses a W3C NOTE-datetime: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mmTZD`,
    /// `YYYY-MM-DDThh:mm:ssTZD` or `YYYY-MM-DDThh:mm:ss.sTZD`, where TZD is `Z` or `±hh:mm`
    /// and the fraction has 1 to 9 digits. Strict: ASCII digits of exactly the given widths,
    /// real calendar dates, hours 00–23, no leap second, a time always with its zone. A date
    /// without a time is midnight UTC of its first day.
    pub fn parse_w3c(text: &str) -> std::result::Result<Self, &'static str> {
        let b = text.as_bytes();
        let year = num(b, 0, 4).ok_or("the year must be four digits")?;
        let (mut month, mut day) = (1, 1);
        let mut pos = 4;
        if b.len() > pos {
            expect(b, pos, b'-').ok_or("expected '-' after the year")?;
            month = num(b, pos + 1, 2).ok_or("the month must be two digits")?;
            pos += 3;
            if !(1..=12).contains(&month) {
                return Err("the month must be 01 to 12");
            }
        }
        if b.len() > pos {
            expect(b, pos, b'-').ok_or("expected '-' after the month")?;
            day = num(b, pos + 1, 2).ok_or("the day must be two digits")?;
            pos += 3;
            if day < 1 || day > days_in_month(year, month) {
                return Err("no such day in that month");
            }
        }
        let mut secs = days_from_civil(i64::from(year), month, day) * SECS_PER_DAY;
        let mut nanos = 0u32;
        if b.len() > pos {
            expect(b, pos, b'T').ok_or("expected 'T' before the time")?;
            let hour = num(b, pos + 1, 2).ok_or("the hour must be two digits")?;
            expect(b, pos + 3, b':').ok_or("expected ':' after the hour")?;
            let minute = num(b, pos + 4, 2).ok_or("the minutes must be two digits")?;
            pos += 6;
            if hour > 23 || minute > 59 {
                return Err("the time must be 00:00 to 23:59");
            }
            let mut second = 0;
            if expect(b, pos, b':').is_some() {
                second = num(b, pos + 1, 2).ok_or("the seconds must be two digits")?;
                pos += 3;
                if second > 59 {
                    return Err("the seconds must be 00 to 59");
                }
                if expect(b, pos, b'.').is_some() {
                    pos += 1;
                    let digits = b[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if digits == 0 || digits > 9 {
                        return Err("a fraction of a second has 1 to 9 digits");
                    }
                    let frac = num(b, pos, digits).ok_or("bad fraction")?;
                    nanos = frac * 10u32.pow(9 - digits as u32);
                    pos += digits;
                }
            }
            secs += i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
            match b.get(pos) {
                Some(b'Z') => pos += 1,
                Some(&sign @ (b'+' | b'-')) => {
                    let oh = num(b, pos + 1, 2).ok_or("the zone hours must be two digits")?;
                    expect(b, pos + 3, b':').ok_or("expected ':' in the zone")?;
                    let om = num(b, pos + 4, 2).ok_or("the zone minutes must be two digits")?;
                    pos += 6;
                    if oh > 23 || om > 59 {
                        return Err("the zone must be -23:59 to +23:59");
                    }
                    let offset = i64::from(oh) * 3600 + i64::from(om) * 60;
                    // Local time minus its offset is UTC.
                    secs -= if sign == b'+' { offset } else { -offset };
                }
                _ => return Err("a time needs a zone: 'Z' or ±hh:mm"),
            }
        }
        if pos != b.len() {
            return Err("unexpected characters after the date");
        }
        Self::from_unix(secs, nanos).ok_or("the instant is outside years 0000 to 9999 (UTC)")
    }

    /// The canonical text: `YYYY-MM-DDThh:mm:ssZ`, with a fraction of as few digits as exact
    /// when there is one. [`parse_w3c`](Self::parse_w3c) reads it back to the same instant.
    pub fn to_w3c(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(SECS_PER_DAY);
        let rem = self.secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// `width` ASCII digits at `at`, as a number.
fn num(b: &[u8], at: usize, width: usize) -> Option<u32> {
    let digits = b.get(at..at.checked_add(width)?)?;
    digits.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn expect(b: &[u8], at: usize, c: u8) -> Option<()> {
    (b.get(at) == Some(&c)).then_some(())
}

fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A typed attribute value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// Text: at most [`MAX_VALUE_CHARS`] characters, no white space at either end, only
    /// characters XML 1.0 allows.
    String(String),
    /// A signed 64-bit integer.
    Int(i64),
    /// An instant.
    Date(Timestamp),
}

impl AttrValue {
    /// The declared type of this value.
    pub fn attr_type(&self) -> AttrType {
        match self {
            AttrValue::String(_) => AttrType::String,
            AttrValue::Int(_) => AttrType::Int,
            AttrValue::Date(_) => AttrType::Date,
        }
    }

    /// Reads the text of a value of type `ty`.
    pub fn parse(ty: AttrType, text: &str) -> std::result::Result<Self, ValueError> {
        match ty {
            AttrType::String => {
                check_string(text)?;
                Ok(AttrValue::String(text.to_owned()))
            }
            AttrType::Int => text
                .parse::<i64>()
                .map(AttrValue::Int)
                .map_err(|_| ValueError::NotAnInteger(text.to_owned())),
            AttrType::Date => Timestamp::parse_w3c(text)
                .map(AttrValue::Date)
                .map_err(|why| ValueError::NotADate {
                    text: text.to_owned(),
                    why: why.to_owned(),
                }),
        }
    }

    /// The canonical text of the value, as [`Attributes::to_xml`] writes it.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::String(s) => s.clone(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Date(t) => t.to_w3c(),
        }
    }

    fn check(&self) -> std::result::Result<(), ValueError> {
        match self {
            AttrValue::String(s) => check_string(s),
            AttrValue::Int(_) | AttrValue::Date(_) => Ok(()),
        }
    }
}

/// A character XML 1.0 can carry (`Char` of the XML 1.0 grammar).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn check_string(s: &str) -> std::result::Result<(), ValueError> {
    if s.chars().count() > MAX_VALUE_CHARS {
        return Err(ValueError::TooLong);
    }
    if let Some(c) = s.chars().find(|&c| !is_xml_char(c)) {
        return Err(ValueError::NotXml(c));
    }
    if s.trim() != s {
        return Err(ValueError::Space);
    }
    Ok(())
}

/// One named, typed attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The name, case as given.
    pub name: String,
    /// The value.
    pub value: AttrValue,
}

/// A record's attributes, in document order. Only [`parse`](Self::parse) and
/// [`push`](Self::push) build one, so every instance obeys the rules of this module and
/// serialises to a document that parses back to an equal value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    list: Vec<Attribute>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `PEER_RECORD.pwzAttributes`. An empty (or all white space) string means no
    /// attributes. Errors: [`AttributesError::TooMany`] past [`MAX_ATTRIBUTES`], another
    /// [`AttributesError`] for bad XML or a broken rule.
    pub fn parse(text: &str) -> Result<Self, AttributesError> {
        let shape = AttributesError::Shape;
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        let root = xml::parse(text, MAX_ATTRIBUTES_XML_BYTES).map_err(AttributesError::Xml)?;
        if root.name != ROOT {
            return Err(shape(Shape::WrongRoot {
                expected: ROOT.to_owned(),
                found: root.name.clone(),
            }));
        }
        if let Some((k, _)) = root.attributes.iter().find(|(k, _)| !is_namespace_decl(k)) {
            return Err(shape(Shape::UnknownAttribute {
                element: ROOT.to_owned(),
                attribute: k.clone(),
            }));
        }
        if !root.text.is_empty() {
            return Err(shape(Shape::Text {
                element: ROOT.to_owned(),
            }));
        }
        if root.children.len() > MAX_ATTRIBUTES {
            return Err(AttributesError::TooMany);
        }
        let mut out = Self::new();
        for el in &root.children {
            if el.name != ITEM {
                return Err(shape(Shape::Misplaced {
                    parent: ROOT.to_owned(),
                    child: el.name.clone(),
                }));
            }
            if let Some(child) = el.children.first() {
                return Err(shape(Shape::Misplaced {
                    parent: ITEM.to_owned(),
                    child: child.name.clone(),
                }));
            }
            let (mut name, mut ty) = (None, None);
            for (k, v) in &el.attributes {
                let slot = match k.as_str() {
                    "name" => &mut name,
                    "type" => &mut ty,
                    other => {
                        return Err(shape(Shape::UnknownAttribute {
                            element: ITEM.to_owned(),
                            attribute: other.to_owned(),
                        }))
                    }
                };
                if slot.replace(v.as_str()).is_some() {
                    return Err(shape(Shape::RepeatedAttribute {
                        element: ITEM.to_owned(),
                        attribute: k.clone(),
                    }));
                }
            }
            let name = name.ok_or_else(|| {
                shape(Shape::MissingAttribute {
                    element: ITEM.to_owned(),
                    attribute: "name".to_owned(),
                })
            })?;
            let ty = ty.ok_or_else(|| AttributesError::NoType {
                name: name.to_owned(),
            })?;
            let ty = AttrType::from_xml(ty).ok_or_else(|| AttributesError::UnknownType {
                name: name.to_owned(),
                ty: ty.to_owned(),
            })?;
            let value = AttrValue::parse(ty, &el.text).map_err(|why| AttributesError::Value {
                name: name.to_owned(),
                why,
            })?;
            out.push(name, value)?;
        }
        Ok(out)
    }

    /// Appends an attribute after checking every rule of this module (name, reserved names,
    /// uniqueness, value, count).
    pub fn push(
        &mut self,
        name: impl Into<String>,
        value: AttrValue,
    ) -> Result<(), AttributesError> {
        let name = name.into();
        if !is_valid_name(&name) {
            return Err(AttributesError::BadName(name));
        }
        if is_reserved_name(&name) {
            return Err(AttributesError::Reserved(name));
        }
        if self.get(&name).is_some() {
            return Err(AttributesError::Repeated(name));
        }
        if let Err(why) = value.check() {
            return Err(AttributesError::Value { name, why });
        }
        if self.list.len() >= MAX_ATTRIBUTES {
            return Err(AttributesError::TooMany);
        }
        self.list.push(Attribute { name, value });
        Ok(())
    }

    /// The value of the attribute named `name`, compared without regard to ASCII case.
    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.list
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| &a.value)
    }

    /// The attributes in document order.
    pub fn as_slice(&self) -> &[Attribute] {
        &self.list
    }

    /// Iterates in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Attribute> {
        self.list.iter()
    }

    /// How many attributes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The canonical XML: the empty string when there are no attributes (what Windows
    /// accepts as "none"), otherwise `<attributes>` with one `<attribute name type>` per
    /// attribute, in order, values in their canonical text.
    pub fn to_xml(&self) -> String {
        if self.list.is_empty() {
            return String::new();
        }
        self.list
            .iter()
            .fold(Element::new(ROOT), |root, a| {
                root.child(
                    Element::new(ITEM)
                        .attr("name", &a.name)
                        .attr("type", a.value.attr_type().as_str())
                        .text(&a.value.to_text()),
                )
            })
            .to_xml()
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// `xmlns` or `xmlns:prefix`: allowed on a root, ignored.
pub(crate) fn is_namespace_decl(name: &str) -> bool {
    name == "xmlns" || name.starts_with("xmlns:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_w3c(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn attr_doc(items: &str) -> String {
        format!("<attributes>{items}</attributes>")
    }

    fn invalid(text: &str) -> String {
        match Attributes::parse(text) {
            Err(e) if !matches!(e, AttributesError::TooMany) => {
                let e = crate::error::ProtoError::from(e);
                assert_eq!(e.hresult(), hresult::PEER_E_INVALID_ATTRIBUTES);
                e.to_string()
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn parses_the_three_types_and_writes_them_canonically() {
        let text = r#"<attributes xmlns:xs="http://www.w3.org/2001/XMLSchema">
            <attribute name="Title" type="string"> Minutes &amp; notes </attribute>
            <attribute type="int" name="Pages">+12</attribute>
            <attribute name="Due" type="date">2003-01-31</attribute>
        </attributes>"#;
        let a = Attributes::parse(text).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.as_slice()[0].name, "Title");
        assert_eq!(
            a.get("title"),
            Some(&AttrValue::String("Minutes & notes".into()))
        );
        assert_eq!(a.get("PAGES"), Some(&AttrValue::Int(12)));
        assert_eq!(
            a.get("Due"),
            Some(&AttrValue::Date(ts("2003-01-31T00:00Z")))
        );
        assert_eq!(a.get("Missing"), None);
        let canonical = a.to_xml();
        assert_eq!(
            canonical,
            "<attributes>\
             <attribute name=\"Title\" type=\"string\">Minutes &amp; notes</attribute>\
             <attribute name=\"Pages\" type=\"int\">12</attribute>\
             <attribute name=\"Due\" type=\"date\">2003-01-31T00:00:00Z</attribute>\
             </attributes>"
        );
        assert_eq!(Attributes::parse(&canonical).unwrap(), a);
    }

    #[test]
    fn empty_means_none() {
        for text in ["", "  \n", "<attributes/>", "<attributes></attributes>"] {
            assert!(Attributes::parse(text).unwrap().is_empty(), "{text:?}");
        }
        assert_eq!(Attributes::new().to_xml(), "");
    }

    #[test]
    fn empty_string_values_round_trip() {
        let a = Attributes::parse(&attr_doc(r#"<attribute name="x" type="string"/>"#)).unwrap();
        assert_eq!(a.get("x"), Some(&AttrValue::String(String::new())));
        assert_eq!(Attributes::parse(&a.to_xml()).unwrap(), a);
    }

    #[test]
    fn names_are_ascii_alphanumeric_and_bounded() {
        for name in ["a-b", "a_b", "", "a b", "caf\u{e9}", "a.b", "x:y"] {
            invalid(&attr_doc(&format!(
                r#"<attribute name="{name}" type="int">1</attribute>"#
            )));
        }
        let longest = "n".repeat(MAX_NAME_CHARS);
        let ok = attr_doc(&format!(
            r#"<attribute name="{longest}" type="int">1</attribute>"#
        ));
        assert_eq!(Attributes::parse(&ok).unwrap().len(), 1);
        invalid(&attr_doc(&format!(
            r#"<attribute name="{longest}n" type="int">1</attribute>"#
        )));
        assert!(is_valid_name("Abc123") && is_valid_name("9"));
    }

    #[test]
    fn duplicates_are_refused_whatever_their_case() {
        for second in ["Size", "size", "SIZE"] {
            let why = invalid(&attr_doc(&format!(
                r#"<attribute name="Size" type="int">1</attribute>
                   <attribute name="{second}" type="string">x</attribute>"#
            )));
            assert!(why.contains("twice"), "{why}");
        }
    }

    #[test]
    fn reserved_names_are_refused_in_any_case() {
        for name in RESERVED_NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(["PeerCreatorId".to_string(), "PEERRECORDTYPE".to_string()])
        {
            let why = invalid(&attr_doc(&format!(
                r#"<attribute name="{name}" type="string">x</attribute>"#
            )));
            assert!(why.contains("reserved"), "{why}");
        }
        assert!(!is_reserved_name("peercreator"));
    }

    #[test]
    fn ints_are_signed_64_bit() {
        let int = |v: &str| {
            Attributes::parse(&attr_doc(&format!(
                r#"<attribute name="n" type="int">{v}</attribute>"#
            )))
        };
        assert_eq!(
            int("-9223372036854775808").unwrap().get("n"),
            Some(&AttrValue::Int(i64::MIN))
        );
        assert_eq!(
            int("9223372036854775807").unwrap().get("n"),
            Some(&AttrValue::Int(i64::MAX))
        );
        for bad in ["9223372036854775808", "1.5", "", "0x10", "1e3", "--1", "١"] {
            assert_eq!(
                int(bad).unwrap_err().hresult(),
                hresult::PEER_E_INVALID_ATTRIBUTES,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn w3c_dates_in_every_form() {
        assert_eq!(ts("1970"), Timestamp::from_unix(0, 0).unwrap());
        assert_eq!(ts("1970-02"), Timestamp::from_unix(31 * 86_400, 0).unwrap());
        assert_eq!(ts("1970-01-02"), Timestamp::from_unix(86_400, 0).unwrap());
        assert_eq!(
            ts("1970-01-01T01:02Z"),
            Timestamp::from_unix(3720, 0).unwrap()
        );
        assert_eq!(
            ts("1970-01-01T01:02:03Z"),
            Timestamp::from_unix(3723, 0).unwrap()
        );
        assert_eq!(
            ts("1970-01-01T00:00:01.5Z"),
            Timestamp::from_unix(1, 500_000_000).unwrap()
        );
        assert_eq!(
            ts("1970-01-01T00:00:00.000000001Z"),
            Timestamp::from_unix(0, 1).unwrap()
        );
        // The zone is subtracted: 01:00 at +01:00 is midnight UTC.
        assert_eq!(ts("1970-01-01T01:00+01:00"), ts("1970-01-01T00:00Z"));
        assert_eq!(ts("2003-01-31T23:30-01:00"), ts("2003-02-01T00:30:00Z"));
        assert_eq!(ts("2003-01-31T10:00-00:00"), ts("2003-01-31T10:00Z"));
        // The example of the W3C note.
        assert_eq!(ts("1994-11-05T08:15:30-05:00"), ts("1994-11-05T13:15:30Z"));
        assert_eq!(ts("2004-02-29"), ts("2004-02-29T00:00Z"));
        assert_eq!(ts("2000-02-29").unix_seconds(), 951_782_400);
        assert!(ts("2003-01-31") < ts("2003-01-31T00:00:00.1Z"));
    }

    #[test]
    fn w3c_dates_are_strict() {
        for bad in [
            "",
            "03",
            "2003-1",
            "2003-1-31",
            "2003-13",
            "2003-00",
            "2003-01-00",
            "2003-02-29",
            "1900-02-29",
            "2003-04-31",
            "2003-01-31T",
            "2003-01-31T10:00",
            "2003-01-31T10Z",
            "2003-01-31T24:00Z",
            "2003-01-31T10:60Z",
            "2003-01-31T10:00:60Z",
            "2003-01-31T10:00:00.Z",
            "2003-01-31T10:00:00.1234567890Z",
            "2003-01-31T10:00.5Z",
            "2003-01-31T10:00+1:00",
            "2003-01-31T10:00+24:00",
            "2003-01-31T10:00+01:60",
            "2003-01-31T10:00+0100",
            "2003-01-31T10:00z",
            "2003-01-31 10:00Z",
            " 2003",
            "2003 ",
            "+2003",
            "-2003",
            "20030",
            "２００３",
            "2003-01-31T10:00ZZ",
            "2003-01-31Z",
            "2003-01-31T10:00:00,5Z",
        ] {
            assert!(Timestamp::parse_w3c(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn w3c_dates_stay_within_four_digit_years() {
        assert_eq!(ts("0000"), Timestamp::MIN);
        assert_eq!(ts("9999-12-31T23:59:59.999999999Z"), Timestamp::MAX);
        assert!(Timestamp::parse_w3c("9999-12-31T23:59-01:00").is_err());
        assert!(Timestamp::parse_w3c("0000-01-01T00:00+01:00").is_err());
        assert_eq!(Timestamp::MIN.to_w3c(), "0000-01-01T00:00:00Z");
        assert_eq!(Timestamp::MAX.to_w3c(), "9999-12-31T23:59:59.999999999Z");
        assert!(Timestamp::from_unix(Timestamp::MAX.unix_seconds() + 1, 0).is_none());
        assert!(Timestamp::from_unix(0, 1_000_000_000).is_none());
    }

    #[test]
    fn timestamps_write_canonically() {
        assert_eq!(ts("2003-01-31").to_w3c(), "2003-01-31T00:00:00Z");
        assert_eq!(
            ts("1969-12-31T23:59:59.5Z").to_w3c(),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(
            ts("1994-11-05T08:15:30-05:00").to_w3c(),
            "1994-11-05T13:15:30Z"
        );
        assert_eq!(
            ts("2024-02-29T12:00:00.120Z").to_w3c(),
            "2024-02-29T12:00:00.12Z"
        );
    }

    #[test]
    fn filetime_converts() {
        assert_eq!(
            Timestamp::from_filetime(116_444_736_000_000_000),
            Timestamp::from_unix(0, 0)
        );
        assert_eq!(
            Timestamp::from_filetime(116_444_736_000_000_001),
            Timestamp::from_unix(0, 100)
        );
        assert_eq!(
            Timestamp::from_filetime(0).unwrap().to_w3c(),
            "1601-01-01T00:00:00Z"
        );
        assert!(Timestamp::from_filetime(u64::MAX).is_none());
    }

    #[test]
    fn counts_past_the_limit_are_too_many() {
        let items = |n: usize| {
            attr_doc(
                &(0..n)
                    .map(|i| format!(r#"<attribute name="a{i}" type="int">{i}</attribute>"#))
                    .collect::<String>(),
            )
        };
        assert_eq!(
            Attributes::parse(&items(MAX_ATTRIBUTES)).unwrap().len(),
            MAX_ATTRIBUTES
        );
        let err = Attributes::parse(&items(MAX_ATTRIBUTES + 1)).unwrap_err();
        assert!(matches!(err, AttributesError::TooMany));
        assert_eq!(
            crate::error::ProtoError::from(err).hresult(),
            hresult::PEER_E_TOO_MANY_ATTRIBUTES
        );
        let mut full = Attributes::parse(&items(MAX_ATTRIBUTES)).unwrap();
        assert!(matches!(
            full.push("more", AttrValue::Int(1)),
            Err(AttributesError::TooMany)
        ));
    }

    #[test]
    fn structure_is_strict() {
        for bad in [
            "not xml",
            "<attributes>",
            "<attributes><attribute name=\"a\" type=\"int\">1</attributes>",
            "<attrs/>",
            "<x:attributes/>",
            "<attributes version=\"1\"/>",
            "<attributes>loose text</attributes>",
            "<attributes><attr name=\"a\" type=\"int\">1</attr></attributes>",
            "<attributes><attribute type=\"int\">1</attribute></attributes>",
            "<attributes><attribute name=\"a\">1</attribute></attributes>",
            "<attributes><attribute name=\"a\" type=\"bool\">1</attribute></attributes>",
            "<attributes><attribute name=\"a\" type=\"INT\">1</attribute></attributes>",
            "<attributes><attribute name=\"a\" type=\"int\" x=\"y\">1</attribute></attributes>",
            "<attributes><attribute name=\"a\" type=\"int\"><b/></attribute></attributes>",
            "<!DOCTYPE attributes><attributes/>",
            "<attributes/><attributes/>",
        ] {
            invalid(bad);
        }
        let huge = attr_doc(&format!(
            r#"<attribute name="a" type="string">{}</attribute>"#,
            "x".repeat(MAX_ATTRIBUTES_XML_BYTES)
        ));
        invalid(&huge);
    }

    #[test]
    fn string_values_are_bounded_and_xml_safe() {
        let long = "é".repeat(MAX_VALUE_CHARS);
        let doc = attr_doc(&format!(
            r#"<attribute name="s" type="string">{long}</attribute>"#
        ));
        assert_eq!(Attributes::parse(&doc).unwrap().len(), 1);
        invalid(&attr_doc(&format!(
            r#"<attribute name="s" type="string">{long}é</attribute>"#
        )));
        invalid(&attr_doc(
            r#"<attribute name="s" type="string">a&#1;b</attribute>"#,
        ));
        let mut a = Attributes::new();
        for bad in [" lead", "trail\n", "nul\0", "bell\u{7}", "\u{FFFE}"] {
            let err = a.push("s", AttrValue::String(bad.into())).unwrap_err();
            assert_eq!(err.hresult(), hresult::PEER_E_INVALID_ATTRIBUTES, "{bad:?}");
        }
        a.push("s", AttrValue::String("a <b> & \"c\" 'd'\ttab".into()))
            .unwrap();
        assert_eq!(Attributes::parse(&a.to_xml()).unwrap(), a);
    }

    #[test]
    fn push_applies_the_parse_rules() {
        let mut a = Attributes::new();
        a.push("Zeta", AttrValue::Int(1)).unwrap();
        a.push("alpha", AttrValue::Date(Timestamp::MIN)).unwrap();
        assert!(a.push("zeta", AttrValue::Int(2)).is_err());
        assert!(a.push("peerRecordId", AttrValue::Int(2)).is_err());
        assert!(a.push("with space", AttrValue::Int(2)).is_err());
        // Order is kept, not sorted.
        let names: Vec<_> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["Zeta", "alpha"]);
    }

    fn arb_value() -> impl Strategy<Value = AttrValue> {
        prop_oneof![
            any::<i64>().prop_map(AttrValue::Int),
            (
                Timestamp::MIN.secs..=Timestamp::MAX.secs,
                0u32..1_000_000_000
            )
                .prop_map(|(s, n)| AttrValue::Date(Timestamp::from_unix(s, n).unwrap())),
            "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]{0,40}"
                .prop_map(|s| AttrValue::String(s.trim().to_owned())),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            let _ = Attributes::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            parts in proptest::collection::vec(prop_oneof![
                Just("<attributes>".to_string()), Just("</attributes>".to_string()),
                Just("<attribute name=\"a\" type=\"date\">".to_string()),
                Just("<attribute name=\"b\" type=\"int\">".to_string()),
                Just("<attribute name=\"c\" type=\"string\">".to_string()),
                Just("</attribute>".to_string()), Just("&amp;".to_string()),
                "[0-9:TZ+.-]{0,12}",
            ], 0..12)
        ) {
            let _ = Attributes::parse(&parts.concat());
        }

        #[test]
        fn dates_never_panic_and_round_trip(text in "[0-9:TZ+.-]{0,32}") {
            if let Ok(t) = Timestamp::parse_w3c(&text) {
                prop_assert_eq!(Timestamp::parse_w3c(&t.to_w3c()), Ok(t));
            }
        }

        #[test]
        fn serialize_then_parse_is_identity(
            items in proptest::collection::vec(("[A-Za-z0-9]{1,12}", arb_value()), 0..20)
        ) {
            let mut a = Attributes::new();
            for (name, value) in items {
                if is_reserved_name(&name) || a.get(&name).is_some() {
                    continue;
                }
                a.push(name, value).unwrap();
            }
            prop_assert_eq!(Attributes::parse(&a.to_xml()).unwrap(), a);
        }
    }
}
