//! `PeerGroupSearchRecords` criteria: parsing the query XML and evaluating it on a record.
//!
//! ```text
//! <peersearch xmlns:xs="http://www.w3.org/2001/XMLSchema">
//!   <and>
//!     <clause attrib="Title" type="string">Min*</clause>
//!     <or>
//!       <clause attrib="Pages" type="int" compare="greater">10</clause>
//!       <clause attrib="peercreationtime" type="date" compare="less">2003-01-31</clause>
//!     </or>
//!   </and>
//! </peersearch>
//! ```
//!
//! The document is parsed once into a [`Criteria`] tree, so a malformed query fails before
//! the database is touched, with the code Windows gives: `E_INVALIDARG` for a backslash
//! sequence other than `\*`, `\?` and `\\` ([`SearchError::BadEscape`],
//! [`SearchError::LoneBackslash`]), `PEER_E_INVALID_SEARCH` for every other [`SearchError`].
//!
//! Where Microsoft is silent this module decides:
//! * **missing or mistyped attributes never match**: a clause on an attribute the record does
//!   not have, or has with another type, is false, for `notequal` too (`notequal` means "has
//!   it, with that type, and a different value"), as in SQL, where a comparison with NULL is
//!   never true;
//! * **attribute names** follow the attribute rules ([`attributes::is_valid_name`]) and
//!   compare without regard to ASCII case; the six reserved names reach the record's own
//!   fields (GUIDs and peer names as strings, times as dates);
//! * **strings compare exactly** (case matters) and **order by Unicode scalar value** (what
//!   Rust's `str` order is; it differs from UTF-16 order only above U+FFFF against
//!   U+E000..U+FFFF); `?` matches one Unicode scalar value;
//! * **wildcards only with `equal` and `notequal`**: `less`, `greater`, `lessorequal` and
//!   `greaterorequal` on a string with an unescaped `*` or `?` are refused (the order of a
//!   pattern means nothing); escaped they are ordinary characters;
//! * **values are trimmed** (the XML reader trims element text), so a pattern cannot start or
//!   end with white space;
//! * `type` is required; `compare` defaults to `equal`; spellings are exact (lower case); the
//!   root may carry namespace declarations and nothing else; and/or/clause carry no text
//!   besides a clause's value.
//!
//! Matching a pattern is linear in practice and O(pattern × text) at worst (the two-pointer
//! glob algorithm, which never backtracks further than the last `*`), so hostile patterns
//! cannot make a search exponential.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::error::{Result, SearchError, Shape, ValueError};
use crate::identity::xml::{self, Element};
use crate::records::attributes::{
    self, is_namespace_decl, AttrType, AttrValue, Attributes, Timestamp,
};

/// Largest criteria document accepted, in bytes of UTF-8.
pub const MAX_CRITERIA_BYTES: usize = 64 * 1024;
/// Most clauses in one query.
pub const MAX_CLAUSES: usize = 256;
/// Deepest nesting of `<and>` and `<or>` (the top one counts as 1).
pub const MAX_NESTING: usize = 8;
/// Longest clause value as written, in characters (escapes included): twice an attribute
/// value, so every value can be matched literally with each character escaped.
pub const MAX_PATTERN_CHARS: usize = 2 * attributes::MAX_VALUE_CHARS;

const ROOT: &str = "peersearch";

/// What a record offers to a search: its system fields and its application attributes. The
/// record store implements it; search only reads.
pub trait RecordView {
    /// `peercreatorid`: the creator's peer name.
    fn creator_id(&self) -> Cow<'_, str>;
    /// `peerlastmodifiedby`: the last modifier's peer name.
    fn last_modified_by(&self) -> Cow<'_, str>;
    /// `peerrecordid`: the record id as GUID text, `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`
    /// in upper case as Windows' `StringFromGUID2` writes it (matching is case-sensitive).
    fn record_id(&self) -> Cow<'_, str>;
    /// `peerrecordtype`: the record type as GUID text, same form as [`record_id`](Self::record_id).
    fn record_type(&self) -> Cow<'_, str>;
    /// `peercreationtime`.
    fn creation_time(&self) -> Timestamp;
    /// `peerlastmodificationtime`.
    fn last_modification_time(&self) -> Timestamp;
    /// The application attributes (`pwzAttributes`, parsed).
    fn attributes(&self) -> &Attributes;
}

/// The `compare` attribute of a clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compare {
    /// `equal` (the default): for strings, the pattern matches.
    Equal,
    /// `notequal`: for strings, the pattern does not match.
    NotEqual,
    /// `less`: the record's value is less than the clause's.
    Less,
    /// `greater`.
    Greater,
    /// `lessorequal`.
    LessOrEqual,
    /// `greaterorequal`.
    GreaterOrEqual,
}

impl Compare {
    /// Reads the XML spelling, exactly.
    pub fn from_xml(text: &str) -> Option<Self> {
        Some(match text {
            "equal" => Compare::Equal,
            "notequal" => Compare::NotEqual,
            "less" => Compare::Less,
            "greater" => Compare::Greater,
            "lessorequal" => Compare::LessOrEqual,
            "greaterorequal" => Compare::GreaterOrEqual,
            _ => return None,
        })
    }

    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compare::Equal => "equal",
            Compare::NotEqual => "notequal",
            Compare::Less => "less",
            Compare::Greater => "greater",
            Compare::LessOrEqual => "lessorequal",
            Compare::GreaterOrEqual => "greaterorequal",
        }
    }

    /// True for the four ordering comparisons.
    pub fn is_ordering(self) -> bool {
        !matches!(self, Compare::Equal | Compare::NotEqual)
    }

    /// Whether `record_value ⟨self⟩ clause_value` holds, given their order.
    fn holds(self, order: Ordering) -> bool {
        match self {
            Compare::Equal => order.is_eq(),
            Compare::NotEqual => order.is_ne(),
            Compare::Less => order.is_lt(),
            Compare::Greater => order.is_gt(),
            Compare::LessOrEqual => order.is_le(),
            Compare::GreaterOrEqual => order.is_ge(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Token {
    Literal(char),
    /// `?`
    One,
    /// `*` (runs collapse into one)
    Many,
}

/// A string clause's value: literal characters, `?` and `*`, escapes resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    tokens: Vec<Token>,
    /// The unescaped text when there are no wildcards.
    literal: Option<String>,
}

impl Pattern {
    /// Reads a clause value: `*` and `?` are wildcards; `\*`, `\?` and `\\` are those
    /// characters; any other backslash is [`SearchError::BadEscape`].
    pub fn parse(text: &str) -> Result<Self, SearchError> {
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => Token::Many,
                '?' => Token::One,
                '\\' => match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => Token::Literal(e),
                    Some(e) => {
                        return Err(SearchError::BadEscape {
                            escaped: e,
                            pattern: text.to_owned(),
                        })
                    }
                    None => {
                        return Err(SearchError::LoneBackslash {
                            pattern: text.to_owned(),
                        })
                    }
                },
                c => Token::Literal(c),
            };
            if !(token == Token::Many && tokens.last() == Some(&Token::Many)) {
                tokens.push(token);
            }
        }
        let literal = tokens
            .iter()
            .map(|t| match t {
                Token::Literal(c) => Some(*c),
                Token::One | Token::Many => None,
            })
            .collect();
        Ok(Pattern { tokens, literal })
    }

    /// The text, if the pattern has no wildcards (escaped ones are literal).
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }

    /// The literal characters before the first wildcard: every text the pattern matches
    /// starts with them (the whole text, for a pattern without wildcards).
    pub fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                Token::One | Token::Many => None,
            })
            .collect()
    }

    /// Whether the whole of `text` matches. Two pointers: on a mismatch, retry from the last
    /// `*` one character further; no other backtracking is ever needed, so the cost is at
    /// most pattern length × text length.
    pub fn matches(&self, text: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal == text;
        }
        let text: Vec<char> = text.chars().collect();
        let p = &self.tokens;
        let (mut pi, mut ti) = (0, 0);
        // The last `*` seen and the text position it currently absorbs up to.
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Token::Many) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Token::One) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Token::Literal(c)) if *c == text[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|t| *t == Token::Many)
    }
}

/// A clause's value, typed by the clause's `type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// `type="string"`.
    String(Pattern),
    /// `type="int"`.
    Int(i64),
    /// `type="date"`.
    Date(Timestamp),
}

/// One `<clause>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Clause {
    /// The attribute compared, as written (looked up without regard to ASCII case).
    pub attrib: String,
    /// How.
    pub compare: Compare,
    /// With what.
    pub operand: Operand,
}

/// A value found on a record.
enum Found<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Date(Timestamp),
}

impl Clause {
    /// Whether the record satisfies this clause; false when it lacks the attribute or has it
    /// with another type.
    pub fn matches(&self, record: &dyn RecordView) -> bool {
        let Some(found) = lookup(record, &self.attrib) else {
            return false;
        };
        match (&self.operand, found) {
            (Operand::Int(want), Found::Int(have)) => self.compare.holds(have.cmp(want)),
            (Operand::Date(want), Found::Date(have)) => self.compare.holds(have.cmp(want)),
            (Operand::String(pattern), Found::Str(have)) => match self.compare {
                Compare::Equal => pattern.matches(&have),
                Compare::NotEqual => !pattern.matches(&have),
                ordering => pattern
                    .literal()
                    .is_some_and(|want| ordering.holds(have.as_ref().cmp(want))),
            },
            _ => false,
        }
    }
}

fn lookup<'a>(record: &'a dyn RecordView, name: &str) -> Option<Found<'a>> {
    let is = |reserved: &str| reserved.eq_ignore_ascii_case(name);
    Some(if is("peercreatorid") {
        Found::Str(record.creator_id())
    } else if is("peerlastmodifiedby") {
        Found::Str(record.last_modified_by())
    } else if is("peerrecordid") {
        Found::Str(record.record_id())
    } else if is("peerrecordtype") {
        Found::Str(record.record_type())
    } else if is("peercreationtime") {
        Found::Date(record.creation_time())
    } else if is("peerlastmodificationtime") {
        Found::Date(record.last_modification_time())
    } else {
        match record.attributes().get(name)? {
            AttrValue::String(s) => Found::Str(Cow::Borrowed(s)),
            AttrValue::Int(i) => Found::Int(*i),
            AttrValue::Date(t) => Found::Date(*t),
        }
    })
}

/// Parsed `PeerGroupSearchRecords` criteria.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Criteria {
    /// `<and>`: every child matches (at least one child).
    And(Vec<Criteria>),
    /// `<or>`: some child matches (at least one child).
    Or(Vec<Criteria>),
    /// `<clause>`.
    Clause(Clause),
}

impl Criteria {
    /// Parses a `<peersearch>` document, within [`MAX_CRITERIA_BYTES`], [`MAX_NESTING`] and
    /// [`MAX_CLAUSES`].
    pub fn parse(text: &str) -> Result<Self, SearchError> {
        let root = xml::parse(text, MAX_CRITERIA_BYTES).map_err(SearchError::Xml)?;
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
        let [only] = root.children.as_slice() else {
            return Err(shape(Shape::Children {
                element: ROOT.to_owned(),
                found: root.children.len(),
            }));
        };
        let mut clauses = 0;
        Self::from_element(ROOT, only, 0, &mut clauses)
    }

    fn from_element(
        parent: &str,
        el: &Element,
        nesting: usize,
        clauses: &mut usize,
    ) -> Result<Self, SearchError> {
        match el.name.as_str() {
            "and" | "or" => {
                if nesting >= MAX_NESTING {
                    return Err(SearchError::TooDeep);
                }
                if let Some((k, _)) = el.attributes.first() {
                    return Err(shape(Shape::UnknownAttribute {
                        element: el.name.clone(),
                        attribute: k.clone(),
                    }));
                }
                if !el.text.is_empty() {
                    return Err(shape(Shape::Text {
                        element: el.name.clone(),
                    }));
                }
                if el.children.is_empty() {
                    return Err(shape(Shape::Children {
                        element: el.name.clone(),
                        found: 0,
                    }));
                }
                let children = el
                    .children
                    .iter()
                    .map(|c| Self::from_element(&el.name, c, nesting + 1, clauses))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if el.name == "and" {
                    Criteria::And(children)
                } else {
                    Criteria::Or(children)
                })
            }
            "clause" => {
                *clauses += 1;
                if *clauses > MAX_CLAUSES {
                    return Err(SearchError::TooManyClauses);
                }
                parse_clause(el).map(Criteria::Clause)
            }
            other => Err(shape(Shape::Misplaced {
                parent: parent.to_owned(),
                child: other.to_owned(),
            })),
        }
    }

    /// Whether the record satisfies the criteria.
    pub fn matches(&self, record: &dyn RecordView) -> bool {
        match self {
            Criteria::And(all) => all.iter().all(|c| c.matches(record)),
            Criteria::Or(any) => any.iter().any(|c| c.matches(record)),
            Criteria::Clause(clause) => clause.matches(record),
        }
    }

    /// How many clauses the tree holds.
    pub fn clause_count(&self) -> usize {
        match self {
            Criteria::And(v) | Criteria::Or(v) => v.iter().map(Self::clause_count).sum(),
            Criteria::Clause(_) => 1,
        }
    }
}

fn shape(s: Shape) -> SearchError {
    SearchError::Shape(s)
}

fn parse_clause(el: &Element) -> Result<Clause, SearchError> {
    if let Some(child) = el.children.first() {
        return Err(shape(Shape::Misplaced {
            parent: "clause".to_owned(),
            child: child.name.clone(),
        }));
    }
    let (mut attrib, mut ty, mut compare) = (None, None, None);
    for (k, v) in &el.attributes {
        let slot = match k.as_str() {
            "attrib" => &mut attrib,
            "type" => &mut ty,
            "compare" => &mut compare,
            other => {
                return Err(shape(Shape::UnknownAttribute {
                    element: "clause".to_owned(),
                    attribute: other.to_owned(),
                }))
            }
        };
        if slot.replace(v.as_str()).is_some() {
            return Err(shape(Shape::RepeatedAttribute {
                element: "clause".to_owned(),
                attribute: k.clone(),
            }));
        }
    }
    let missing = |attribute: &str| {
        shape(Shape::MissingAttribute {
            element: "clause".to_owned(),
            attribute: attribute.to_owned(),
        })
    };
    let attrib = attrib.ok_or_else(|| missing("attrib"))?;
    if !attributes::is_valid_name(attrib) {
        return Err(SearchError::BadName(attrib.to_owned()));
    }
    let ty = ty.ok_or_else(|| missing("type"))?;
    let ty = AttrType::from_xml(ty).ok_or_else(|| SearchError::UnknownType {
        attrib: attrib.to_owned(),
        ty: ty.to_owned(),
    })?;
    let compare = match compare {
        None => Compare::Equal,
        Some(c) => Compare::from_xml(c).ok_or_else(|| SearchError::UnknownCompare {
            attrib: attrib.to_owned(),
            compare: c.to_owned(),
        })?,
    };
    let text = el.text.as_str();
    let operand = match ty {
        AttrType::String => {
            if text.chars().count() > MAX_PATTERN_CHARS {
                return Err(SearchError::PatternTooLong(attrib.to_owned()));
            }
            let pattern = Pattern::parse(text)?;
            if compare.is_ordering() && pattern.literal().is_none() {
                return Err(SearchError::WildcardOrdering {
                    attrib: attrib.to_owned(),
                    compare: compare.as_str().to_owned(),
                });
            }
            Operand::String(pattern)
        }
        AttrType::Int => Operand::Int(text.parse().map_err(|_| SearchError::Value {
            attrib: attrib.to_owned(),
            why: ValueError::NotAnInteger(text.to_owned()),
        })?),
        AttrType::Date => {
            Operand::Date(
                Timestamp::parse_w3c(text).map_err(|why| SearchError::Value {
                    attrib: attrib.to_owned(),
                    why: ValueError::NotADate {
                        text: text.to_owned(),
                        why: why.to_owned(),
                    },
                })?,
            )
        }
    };
    Ok(Clause {
        attrib: attrib.to_owned(),
        compare,
        operand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult;
    use proptest::prelude::*;

    struct Rec {
        attrs: Attributes,
    }

    const CREATOR: &str = "0123456789abcdef0123456789abcdef01234567.alice";
    const MODIFIER: &str = "fedcba9876543210fedcba9876543210fedcba98.bob";
    const ID: &str = "{6B5F2C1A-0D3E-4F5A-9B8C-7D6E5F4A3B2C}";
    const TYPE: &str = "{00000000-0000-0000-0000-0000000000AA}";

    impl RecordView for Rec {
        fn creator_id(&self) -> Cow<'_, str> {
            CREATOR.into()
        }
        fn last_modified_by(&self) -> Cow<'_, str> {
            MODIFIER.into()
        }
        fn record_id(&self) -> Cow<'_, str> {
            ID.into()
        }
        fn record_type(&self) -> Cow<'_, str> {
            TYPE.into()
        }
        fn creation_time(&self) -> Timestamp {
            Timestamp::parse_w3c("2003-01-31T10:00Z").unwrap()
        }
        fn last_modification_time(&self) -> Timestamp {
            Timestamp::parse_w3c("2003-02-01T10:00Z").unwrap()
        }
        fn attributes(&self) -> &Attributes {
            &self.attrs
        }
    }

    fn rec() -> Rec {
        Rec {
            attrs: Attributes::parse(
                r#"<attributes>
                <attribute name="Title" type="string">Minutes of March</attribute>
                <attribute name="Pages" type="int">12</attribute>
                <attribute name="Due" type="date">2003-03-01</attribute>
                <attribute name="Odd" type="string">a*b?c\d</attribute>
                <attribute name="Wide" type="string">｡</attribute>
                </attributes>"#,
            )
            .unwrap(),
        }
    }

    fn clause(attrib: &str, ty: &str, compare: &str, value: &str) -> String {
        let compare = if compare.is_empty() {
            String::new()
        } else {
            format!(r#" compare="{compare}""#)
        };
        format!(r#"<clause attrib="{attrib}" type="{ty}"{compare}>{value}</clause>"#)
    }

    fn search(body: &str) -> String {
        format!(r#"<peersearch xmlns:xs="http://www.w3.org/2001/XMLSchema">{body}</peersearch>"#)
    }

    fn hit(body: &str) -> bool {
        Criteria::parse(&search(body))
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .matches(&rec())
    }

    fn one(attrib: &str, ty: &str, compare: &str, value: &str) -> bool {
        hit(&clause(attrib, ty, compare, value))
    }

    fn invalid(text: &str) {
        match Criteria::parse(text) {
            Err(e)
                if !matches!(
                    e,
                    SearchError::BadEscape { .. } | SearchError::LoneBackslash { .. }
                ) =>
            {
                let e = crate::error::ProtoError::from(e);
                assert_eq!(e.hresult(), hresult::PEER_E_INVALID_SEARCH)
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn parses_a_tree() {
        let c = Criteria::parse(&search(&format!(
            "<and>{}<or>{}{}</or></and>",
            clause("Title", "string", "", "Min*"),
            clause("Pages", "int", "greater", "10"),
            clause("peercreationtime", "date", "less", "2003-01-31"),
        )))
        .unwrap();
        assert_eq!(c.clause_count(), 3);
        let Criteria::And(children) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            children[0],
            Criteria::Clause(Clause {
                attrib: "Title".into(),
                compare: Compare::Equal,
                operand: Operand::String(Pattern::parse("Min*").unwrap()),
            })
        );
        assert!(c.matches(&rec()));
        // Without the namespace declaration too.
        assert!(Criteria::parse(
            "<peersearch><clause attrib=\"a\" type=\"int\">1</clause></peersearch>"
        )
        .is_ok());
    }

    #[test]
    fn int_comparisons() {
        for (compare, value, expect) in [
            ("", "12", true),
            ("equal", "13", false),
            ("notequal", "13", true),
            ("notequal", "12", false),
            ("less", "13", true),
            ("less", "12", false),
            ("greater", "11", true),
            ("greater", "12", false),
            ("lessorequal", "12", true),
            ("lessorequal", "11", false),
            ("greaterorequal", "12", true),
            ("greaterorequal", "13", false),
            ("greater", "-9223372036854775808", true),
        ] {
            assert_eq!(
                one("Pages", "int", compare, value),
                expect,
                "{compare} {value}"
            );
        }
    }

    #[test]
    fn date_comparisons_are_by_instant() {
        assert!(one("Due", "date", "", "2003-03"));
        assert!(one("Due", "date", "", "2003-03-01T01:00+01:00"));
        assert!(one("Due", "date", "greater", "2003-02-28T23:59:59.999Z"));
        assert!(!one("Due", "date", "greater", "2003-03-01T00:00Z"));
        assert!(one("Due", "date", "greaterorequal", "2003"));
        assert!(one("Due", "date", "lessorequal", "2003-03-01T00:00:00Z"));
        assert!(one("Due", "date", "notequal", "2004"));
        assert!(one("Due", "date", "less", "2003-03-01T00:00:00.000000001Z"));
    }

    #[test]
    fn string_wildcards() {
        for (pattern, expect) in [
            ("Minutes of March", true),
            ("minutes of march", false),
            ("Minutes", false),
            ("Min*", true),
            ("*March", true),
            ("*of*", true),
            ("*", true),
            ("Minutes*of*March*", true),
            ("M?nutes of March", true),
            ("Minutes of Marc?", true),
            ("Minutes of March?", false),
            ("?*", true),
            ("*x*", false),
            ("", false),
        ] {
            assert_eq!(one("Title", "string", "", pattern), expect, "{pattern}");
            assert_eq!(
                one("Title", "string", "notequal", pattern),
                !expect,
                "not {pattern}"
            );
        }
        // ? is one Unicode scalar value, whatever its UTF-8 or UTF-16 length.
        let p = Pattern::parse("a?b?c").unwrap();
        assert!(p.matches("aéb😀c"));
        assert!(!p.matches("abc"));
        assert!(Pattern::parse("").unwrap().matches(""));
        assert!(Pattern::parse("*").unwrap().matches(""));
        assert!(!Pattern::parse("?").unwrap().matches(""));
    }

    #[test]
    fn escapes_are_literal() {
        // The record's value is `a*b?c\d`.
        assert!(one("Odd", "string", "", r"a\*b\?c\\d"));
        assert!(!one("Odd", "string", "", r"a\*x\?c\\d"));
        assert!(one("Odd", "string", "", r"a\**"));
        assert!(!Pattern::parse(r"a\*").unwrap().matches("ab"));
        assert_eq!(Pattern::parse(r"\*\?\\").unwrap().literal(), Some(r"*?\"));
        assert_eq!(Pattern::parse("a*").unwrap().literal(), None);
    }

    #[test]
    fn bad_escapes_are_invalid_argument() {
        for value in [r"\d", r"a\", r"\n", r"\ ", r"ok\x", r"\é"] {
            let err = Criteria::parse(&search(&clause("Title", "string", "", value))).unwrap_err();
            assert!(
                matches!(
                    err,
                    SearchError::BadEscape { .. } | SearchError::LoneBackslash { .. }
                ),
                "{value}: {err:?}"
            );
            assert_eq!(
                crate::error::ProtoError::from(err).hresult(),
                hresult::E_INVALIDARG
            );
        }
        // A backslash in an int or date clause is a schema matter, not an escape.
        invalid(&search(&clause("Pages", "int", "", r"\1")));
    }

    #[test]
    fn string_order_is_unicode_scalar_order_and_case_sensitive() {
        assert!(one("Title", "string", "less", "Minutes of May"));
        assert!(one("Title", "string", "greater", "Minutes"));
        assert!(one("Title", "string", "greaterorequal", "Minutes of March"));
        assert!(one("Title", "string", "lessorequal", "Minutes of March"));
        assert!(!one("Title", "string", "less", "Minutes of March"));
        // Upper case sorts before lower case.
        assert!(one("Title", "string", "less", "minutes"));
        // U+FF61 < U+1F600 by scalar value; UTF-16 would put the surrogate pair first.
        assert!(one("Wide", "string", "less", "😀"));
        assert!(!one("Wide", "string", "greater", "😀"));
        // Escaped wildcards are plain characters in an order.
        assert!(one("Odd", "string", "greater", r"a\*"));
    }

    #[test]
    fn wildcards_with_an_order_are_refused() {
        invalid(&search(&clause("Title", "string", "less", "M*")));
        invalid(&search(&clause("Title", "string", "greaterorequal", "M?")));
    }

    #[test]
    fn missing_or_mistyped_attributes_never_match() {
        for compare in ["equal", "notequal", "less", "greater"] {
            assert!(!one("Absent", "int", compare, "1"), "{compare}");
            assert!(!one("Absent", "string", compare, "x"), "{compare}");
            assert!(!one("Pages", "string", compare, "12"), "{compare}");
            assert!(!one("Title", "int", compare, "12"), "{compare}");
            assert!(!one("Due", "string", compare, "2003"), "{compare}");
            assert!(!one("peerrecordid", "int", compare, "1"), "{compare}");
        }
        assert!(!one("Absent", "string", "", "*"));
    }

    #[test]
    fn system_attributes() {
        assert!(one("peercreatorid", "string", "", "*.alice"));
        assert!(one("PeerCreatorId", "string", "", CREATOR));
        assert!(one("peerlastmodifiedby", "string", "", "*.bob"));
        assert!(one("peerrecordid", "string", "", ID));
        assert!(!one("peerrecordid", "string", "", &ID.to_lowercase()));
        assert!(one("peerrecordtype", "string", "", "{*AA}"));
        assert!(one("peercreationtime", "date", "", "2003-01-31T10:00Z"));
        assert!(one(
            "peerlastmodificationtime",
            "date",
            "greater",
            "2003-02-01"
        ));
        assert!(!one(
            "peerlastmodificationtime",
            "date",
            "less",
            "2003-02-01"
        ));
        // Application attribute names are found in any case too.
        assert!(one("PAGES", "int", "", "12"));
    }

    #[test]
    fn and_or_nest() {
        let yes = clause("Pages", "int", "", "12");
        let no = clause("Pages", "int", "", "13");
        assert!(hit(&format!("<and>{yes}</and>")));
        assert!(!hit(&format!("<and>{yes}{no}</and>")));
        assert!(hit(&format!("<or>{no}{yes}</or>")));
        assert!(!hit(&format!("<or>{no}{no}</or>")));
        assert!(hit(&format!(
            "<and>{yes}<or>{no}<and>{yes}{yes}</and></or></and>"
        )));
        assert!(!hit(&format!("<or>{no}<and>{yes}<or>{no}</or></and></or>")));
    }

    #[test]
    fn schema_violations_are_invalid_search() {
        let c = clause("Pages", "int", "", "12");
        for bad in [
            String::new(),
            "not xml".into(),
            "<peersearch/>".into(),
            "<peersearch></peersearch>".into(),
            format!("<search>{c}</search>"),
            format!("<peersearch version=\"1\">{c}</peersearch>"),
            format!("<peersearch>{c}{c}</peersearch>"),
            format!("<peersearch>text{c}</peersearch>"),
            search("<and/>"),
            search("<or></or>"),
            search(&format!("<and><or/>{c}</and>")),
            search(&format!("<not>{c}</not>")),
            search(&format!("<and x=\"1\">{c}</and>")),
            search(&format!("<and>text{c}</and>")),
            search(&format!("<AND>{c}</AND>")),
            search(r#"<clause type="int">1</clause>"#),
            search(r#"<clause attrib="Pages">1</clause>"#),
            search(r#"<clause attrib="Pages" type="int" extra="1">1</clause>"#),
            search(r#"<clause attrib="Pages" type="int">1<x/></clause>"#),
            search(&clause("a-b", "int", "", "1")),
            search(&clause("a_b", "int", "", "1")),
            search(&clause("", "int", "", "1")),
            search(&clause("Pages", "bool", "", "1")),
            search(&clause("Pages", "Int", "", "1")),
            search(&clause("Pages", "int", "Equal", "1")),
            search(&clause("Pages", "int", "like", "1")),
            search(&clause("Pages", "int", "", "1.0")),
            search(&clause("Pages", "int", "", "")),
            search(&clause("Pages", "int", "", "99999999999999999999")),
            search(&clause("Due", "date", "", "31/01/2003")),
            search(&clause("Due", "date", "", "2003-01-31T10:00")),
            format!("<!DOCTYPE peersearch><peersearch>{c}</peersearch>"),
        ] {
            invalid(&bad);
        }
    }

    #[test]
    fn bounds() {
        let c = clause("Pages", "int", "", "12");
        let nested = |n: usize| search(&format!("{}{c}{}", "<and>".repeat(n), "</and>".repeat(n)));
        assert!(Criteria::parse(&nested(MAX_NESTING))
            .unwrap()
            .matches(&rec()));
        invalid(&nested(MAX_NESTING + 1));
        let many = |n: usize| search(&format!("<or>{}</or>", c.repeat(n)));
        assert_eq!(
            Criteria::parse(&many(MAX_CLAUSES)).unwrap().clause_count(),
            MAX_CLAUSES
        );
        invalid(&many(MAX_CLAUSES + 1));
        let long = |n: usize| search(&clause("Title", "string", "", &"*".repeat(n)));
        assert!(Criteria::parse(&long(MAX_PATTERN_CHARS)).is_ok());
        invalid(&long(MAX_PATTERN_CHARS + 1));
        invalid(&search(&clause(
            "Title",
            "string",
            "",
            &"x".repeat(MAX_CRITERIA_BYTES),
        )));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let start = std::time::Instant::now();
        let text = "a".repeat(100_000);
        assert!(!Pattern::parse("*a*a*a*a*a*b").unwrap().matches(&text));
        assert!(Pattern::parse("*a*a*a*a*a*a").unwrap().matches(&text));
        let many_stars = "*a".repeat(50) + "b";
        assert!(!Pattern::parse(&many_stars)
            .unwrap()
            .matches(&"a".repeat(4096)));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    /// The obvious exponential matcher, for comparison on small inputs.
    fn reference(p: &[Token], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((Token::Many, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((Token::One, rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((Token::Literal(c), rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(pattern in "[ab*?\\\\]{0,10}", text in "[ab*?\\\\]{0,12}") {
            if let Ok(p) = Pattern::parse(&pattern) {
                let chars: Vec<char> = text.chars().collect();
                prop_assert_eq!(p.matches(&text), reference(&p.tokens, &chars));
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            if let Ok(c) = Criteria::parse(&text) {
                c.matches(&rec());
            }
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            parts in proptest::collection::vec(prop_oneof![
                Just("<peersearch>".to_string()), Just("</peersearch>".to_string()),
                Just("<and>".to_string()), Just("</and>".to_string()),
                Just("<or>".to_string()), Just("</or>".to_string()),
                Just("<clause attrib=\"Title\" type=\"string\">".to_string()),
                Just("<clause attrib=\"Pages\" type=\"int\" compare=\"less\">".to_string()),
                Just("<clause attrib=\"peercreationtime\" type=\"date\">".to_string()),
                Just("</clause>".to_string()),
                "[a-z0-9*?\\\\:TZ-]{0,8}",
            ], 0..16)
        ) {
            if let Ok(c) = Criteria::parse(&parts.concat()) {
                c.matches(&rec());
            }
        }
    }
}
