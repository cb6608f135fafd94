//! `PeerGroupSearchRecords` through the attribute index: the parsed [`Criteria`] become an
//! SQL pre-filter over the `attributes` table (index `attributes_name_value(name COLLATE
//! NOCASE, value)`), and [`Criteria::matches`] then decides exactly on the candidates.
//!
//! The pre-filter only ever keeps **more** records than the criteria match, never fewer, so
//! the answer is the one a full scan gives. Per clause on an application attribute `n`:
//!
//! | clause | candidates: records with a row `name = n` (any case), of the clause's type, and |
//! |---|---|
//! | int `equal`/`less`/`greater`/`lessorequal`/`greaterorequal` v | `value` ⟨op⟩ v (exact) |
//! | date, same compares, t | floor-ms(t) compared non-strictly (the index keeps dates as floor ms, so `<` becomes `<=`, `>` becomes `>=`) |
//! | string `equal` without wildcards | `value = text` |
//! | string `equal` with a literal prefix p before the first wildcard | `p <= value < succ(p)` |
//! | string ordering (never wildcards) | `value` ⟨op⟩ text (SQLite compares text as UTF-8 bytes, which is Unicode scalar order, as search does) |
//! | `notequal`, a pattern starting with a wildcard | nothing more: the attribute with its type must exist |
//!
//! Clauses on the six system attributes (`peercreatorid`, …) are not in the index: they
//! cannot narrow. `<and>` narrows by those of its children that can (none: no narrowing);
//! `<or>` narrows only if every child can. Without any narrowing the query is the live scan.

use rusqlite::types::Value;

use super::attributes::{is_reserved_name, AttrType};
use super::record::{Record, FLAG_DELETED};
use super::search::{Clause, Compare, Criteria, Operand};
use super::view::{timestamp_ms, StoredRecordView};

/// An SQL condition on `records` with its parameters, in the order of their `?`s.
struct Filter {
    sql: String,
    params: Vec<Value>,
}

/// The candidate query for `criteria` over the records live at `now_ms` (not tombstones, not
/// expired), ordered by id, with its parameters (anonymous `?`s, in order). It selects the
/// `encoded` column only.
pub fn candidates(criteria: &Criteria, now_ms: i64) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT encoded FROM records WHERE flags & ? = 0 AND expires > ?");
    let mut params = vec![
        Value::Integer(i64::from(FLAG_DELETED)),
        Value::Integer(now_ms),
    ];
    if let Some(filter) = prefilter(criteria) {
        sql.push_str(" AND (");
        sql.push_str(&filter.sql);
        sql.push(')');
        params.extend(filter.params);
    }
    sql.push_str(" ORDER BY id");
    (sql, params)
}

/// Keeps the records that match `criteria` exactly ([`Criteria::matches`]), in order. A
/// record whose attributes do not parse never matches (stored records were checked on the
/// way in, so this is only logged).
pub fn filter_exact(criteria: &Criteria, records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| match StoredRecordView::new(r) {
            Ok(view) => criteria.matches(&view),
            Err(e) => {
                tracing::warn!(error = %e, "a stored record's attributes do not parse");
                false
            }
        })
        .collect()
}

/// The narrowing condition for `criteria`, or `None` when it cannot narrow.
fn prefilter(criteria: &Criteria) -> Option<Filter> {
    match criteria {
        Criteria::Clause(clause) => clause_filter(clause),
        Criteria::And(children) => {
            let parts: Vec<Filter> = children.iter().filter_map(prefilter).collect();
            join(parts, " AND ")
        }
        Criteria::Or(children) => {
            let parts = children
                .iter()
                .map(prefilter)
                .collect::<Option<Vec<Filter>>>()?;
            join(parts, " OR ")
        }
    }
}

fn join(parts: Vec<Filter>, op: &str) -> Option<Filter> {
    if parts.is_empty() {
        return None;
    }
    let mut sql = String::new();
    let mut params = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(op);
        }
        sql.push('(');
        sql.push_str(&part.sql);
        sql.push(')');
        params.extend(part.params);
    }
    Some(Filter { sql, params })
}

fn clause_filter(clause: &Clause) -> Option<Filter> {
    if is_reserved_name(&clause.attrib) {
        return None;
    }
    let (ty, value): (AttrType, Option<(String, Vec<Value>)>) = match &clause.operand {
        Operand::Int(v) => (AttrType::Int, int_condition(clause.compare, *v, false)),
        Operand::Date(t) => (
            AttrType::Date,
            int_condition(clause.compare, timestamp_ms(*t), true),
        ),
        Operand::String(pattern) => (
            AttrType::String,
            match (clause.compare, pattern.literal()) {
                (Compare::NotEqual, _) => None,
                (Compare::Equal, Some(text)) => {
                    Some(("value = ?".into(), vec![Value::Text(text.to_owned())]))
                }
                (Compare::Equal, None) => {
                    let prefix = pattern.literal_prefix();
                    if prefix.is_empty() {
                        None
                    } else {
                        Some(match successor(&prefix) {
                            Some(upper) => (
                                "value >= ? AND value < ?".into(),
                                vec![Value::Text(prefix), Value::Text(upper)],
                            ),
                            None => ("value >= ?".into(), vec![Value::Text(prefix)]),
                        })
                    }
                }
                // The parser refuses wildcards with an ordering, so the pattern is literal.
                (ordering, Some(text)) => Some((
                    format!("value {} ?", sql_op(ordering)),
                    vec![Value::Text(text.to_owned())],
                )),
                (_, None) => None,
            },
        ),
    };
    let mut sql = String::from(
        "id IN (SELECT record_id FROM attributes WHERE name = ? COLLATE NOCASE AND type = ?",
    );
    let mut params = vec![
        Value::Text(clause.attrib.clone()),
        Value::Text(ty.as_str().to_owned()),
    ];
    if let Some((cond, values)) = value {
        sql.push_str(" AND ");
        sql.push_str(&cond);
        params.extend(values);
    }
    sql.push(')');
    Some(Filter { sql, params })
}

/// The condition on an integer-indexed value. `floor` (dates): the index holds the floor of
/// the millisecond, so strict comparisons widen to non-strict ones.
fn int_condition(compare: Compare, v: i64, floor: bool) -> Option<(String, Vec<Value>)> {
    let op = match (compare, floor) {
        (Compare::NotEqual, _) => return None,
        (Compare::Less, true) => "<=",
        (Compare::Greater, true) => ">=",
        (c, _) => sql_op(c),
    };
    Some((format!("value {op} ?"), vec![Value::Integer(v)]))
}

fn sql_op(compare: Compare) -> &'static str {
    match compare {
        Compare::Equal => "=",
        Compare::NotEqual => "!=",
        Compare::Less => "<",
        Compare::Greater => ">",
        Compare::LessOrEqual => "<=",
        Compare::GreaterOrEqual => ">=",
    }
}

/// The least string above every string that starts with `prefix` (in Unicode scalar order,
/// which is UTF-8 byte order): `prefix` with its last character raised by one, dropping
/// trailing `char::MAX`es. `None` when there is none (empty, or only `char::MAX`es).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::attributes::{AttrValue, Attributes, Timestamp};
    use crate::records::store::index_rows;
    use crate::records::store::RecordStore;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;

    fn record(id: u8, attributes: &Attributes, flags: u32, expires: i64) -> Record {
        Record {
            record_type: [0x5A; 16],
            id: [id; 16],
            id_nonce: [0; 16],
            version: 1,
            flags,
            creator: "c.alice".into(),
            modifier: "c.alice".into(),
            attributes: if flags & FLAG_DELETED != 0 {
                String::new()
            } else {
                attributes.to_xml()
            },
            created: NOW,
            expires,
            modified: NOW,
            data: Vec::new(),
            security: Vec::new(),
        }
    }

    fn store_with(records: &[(Record, Attributes)]) -> (tempfile::TempDir, RecordStore) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = RecordStore::open(dir.path().join("records.db")).unwrap();
        let batch: Vec<_> = records
            .iter()
            .map(|(r, a)| {
                let rows = if r.is_deleted() {
                    Vec::new()
                } else {
                    index_rows(a)
                };
                (r.clone(), rows)
            })
            .collect();
        db.put_many(&batch).unwrap();
        (dir, db)
    }

    fn scan(db: &RecordStore, criteria: &Criteria) -> Vec<Record> {
        filter_exact(criteria, db.list(None, NOW).unwrap())
    }

    fn attrs(list: &[(&str, AttrValue)]) -> Attributes {
        let mut a = Attributes::new();
        for (n, v) in list {
            a.push(*n, v.clone()).unwrap();
        }
        a
    }

    fn criteria(body: &str) -> Criteria {
        Criteria::parse(&format!("<peersearch>{body}</peersearch>")).unwrap()
    }

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        for (p, s) in [
            ("ab", "abzzz"),
            ("é", "é\u{10FFFF}"),
            ("a\u{10FFFF}", "a\u{10FFFF}x"),
        ] {
            let upper = successor(p).unwrap();
            assert!(p <= s && s < upper.as_str(), "{p:?} {s:?} {upper:?}");
        }
    }

    #[test]
    fn indexable_searches_use_the_attribute_index() {
        let a = attrs(&[("Title", AttrValue::String("Minutes".into()))]);
        let (_dir, db) = store_with(&[(record(1, &a, 0, NOW + 1000), a.clone())]);
        for body in [
            r#"<clause attrib="title" type="string">Min*</clause>"#,
            r#"<clause attrib="Pages" type="int" compare="greater">3</clause>"#,
            r#"<or><clause attrib="a" type="int">1</clause><clause attrib="b" type="date" compare="less">2003</clause></or>"#,
            r#"<and><clause attrib="peercreatorid" type="string">*</clause><clause attrib="Title" type="string">Minutes</clause></and>"#,
        ] {
            let plan = db.explain_search(&criteria(body), NOW).unwrap().join("\n");
            assert!(plan.contains("attributes_name_value"), "{body}:\n{plan}");
        }
        // A system attribute is not in the index: the plan is the scan of the live records.
        let c = criteria(r#"<clause attrib="peercreatorid" type="string">*</clause>"#);
        let plan = db.explain_search(&c, NOW).unwrap().join("\n");
        assert!(!plan.contains("attributes_name_value"), "{plan}");
        // Names match in any case, as in the scan.
        let c = criteria(r#"<clause attrib="TITLE" type="string">Minutes</clause>"#);
        assert_eq!(db.search(&c, NOW).unwrap().len(), 1);
    }

    #[test]
    fn an_old_case_sensitive_index_is_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.db");
        drop(RecordStore::open(&path).unwrap());
        let index_sql = |conn: &rusqlite::Connection| -> String {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'attributes_name_value'",
                [],
                |row| row.get(0),
            )
            .unwrap()
        };
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP INDEX attributes_name_value; \
                 CREATE INDEX attributes_name_value ON attributes(name, value);",
            )
            .unwrap();
            assert!(!index_sql(&conn).contains("NOCASE"));
        }
        let db = RecordStore::open(&path).unwrap();
        let c = criteria(r#"<clause attrib="n" type="int">7</clause>"#);
        let plan = db.explain_search(&c, NOW).unwrap().join("\n");
        assert!(plan.contains("attributes_name_value"), "{plan}");
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert!(index_sql(&conn).contains("NOCASE"));
    }

    #[test]
    fn the_index_narrows_before_decoding() {
        // 40 records, one with n = 7: the candidate query returns that one only.
        let mut all = Vec::new();
        for i in 0..40u8 {
            let a = attrs(&[("n", AttrValue::Int(i64::from(i % 20)))]);
            all.push((record(i + 1, &a, 0, NOW + 1000), a));
        }
        let (_dir, db) = store_with(&all);
        let c = criteria(r#"<clause attrib="N" type="int">7</clause>"#);
        let (sql, params) = candidates(&c, NOW);
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        let n: usize = conn
            .prepare(&sql)
            .unwrap()
            .query_map(rusqlite::params_from_iter(params), |_| Ok(()))
            .unwrap()
            .count();
        assert_eq!(n, 2, "only the two records with n = 7 are decoded");
        assert_eq!(db.search(&c, NOW).unwrap().len(), 2);
    }

    #[test]
    fn dates_compare_exactly_below_the_millisecond() {
        let t = |nanos| Timestamp::from_unix(1, nanos).unwrap();
        let mut all = Vec::new();
        for (i, nanos) in [0u32, 400_000, 999_999, 1_000_000].into_iter().enumerate() {
            let a = attrs(&[("d", AttrValue::Date(t(nanos)))]);
            all.push((record(i as u8 + 1, &a, 0, NOW + 1000), a));
        }
        let (_dir, db) = store_with(&all);
        for compare in [
            "equal",
            "less",
            "greater",
            "lessorequal",
            "greaterorequal",
            "notequal",
        ] {
            for value in [
                "1970-01-01T00:00:01.0004Z",
                "1970-01-01T00:00:01Z",
                "1970-01-01T00:00:01.001Z",
            ] {
                let c = criteria(&format!(
                    r#"<clause attrib="d" type="date" compare="{compare}">{value}</clause>"#
                ));
                assert_eq!(
                    db.search(&c, NOW).unwrap(),
                    scan(&db, &c),
                    "{compare} {value}"
                );
            }
        }
    }

    fn arb_value() -> impl Strategy<Value = AttrValue> {
        prop_oneof![
            (-2i64..3).prop_map(AttrValue::Int),
            prop::sample::select(vec![
                "x",
                "xy",
                "xz",
                "y",
                "X",
                "é",
                "x*y",
                "\u{10FFFF}",
                "ab"
            ])
            .prop_map(|s| AttrValue::String(s.into())),
            (
                0i64..3,
                prop::sample::select(vec![0u32, 500_000, 999_999_999])
            )
                .prop_map(|(s, n)| AttrValue::Date(Timestamp::from_unix(s, n).unwrap())),
        ]
    }

    fn arb_record() -> impl Strategy<Value = (Vec<(usize, AttrValue)>, u8)> {
        // Attribute name index into NAMES, and a kind: 0..=5 live, 6 tombstone, 7 expired.
        (
            prop::collection::vec((0usize..3, arb_value()), 0..4),
            0u8..8,
        )
    }

    const NAMES: [&str; 3] = ["a", "B", "c"];

    fn arb_clause() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["a", "A", "b", "B", "c", "zz", "peercreatorid"]);
        let compare = prop::sample::select(vec![
            "equal",
            "notequal",
            "less",
            "greater",
            "lessorequal",
            "greaterorequal",
        ]);
        let typed = prop_oneof![
            prop::sample::select(vec!["-1", "0", "2", "5"]).prop_map(|v| ("int", v)),
            prop::sample::select(vec![
                "x",
                "x*",
                "*",
                "x?",
                "?y",
                "*y",
                "é*",
                "x\\*y",
                "xy",
                "X",
                "\u{10FFFF}*",
                "a*b",
                "*.alice",
                "c.alice",
            ])
            .prop_map(|v| ("string", v)),
            prop::sample::select(vec![
                "1970",
                "1970-01-01T00:00:01Z",
                "1970-01-01T00:00:01.0005Z",
                "1970-01-01T00:00:02.5Z",
            ])
            .prop_map(|v| ("date", v)),
        ];
        (name, compare, typed).prop_map(|(n, c, (t, v))| {
            format!(r#"<clause attrib="{n}" type="{t}" compare="{c}">{v}</clause>"#)
        })
    }

    fn arb_criteria() -> impl Strategy<Value = String> {
        arb_clause().prop_recursive(3, 12, 3, |inner| {
            (prop::bool::ANY, prop::collection::vec(inner, 1..4)).prop_map(|(and, children)| {
                let tag = if and { "and" } else { "or" };
                format!("<{tag}>{}</{tag}>", children.concat())
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn indexed_search_equals_the_full_scan(
            records in prop::collection::vec(arb_record(), 0..10),
            queries in prop::collection::vec(arb_criteria(), 1..8),
        ) {
            let mut all = Vec::new();
            for (i, (list, kind)) in records.iter().enumerate() {
                let mut a = Attributes::new();
                for (n, v) in list {
                    let _ = a.push(NAMES[*n], v.clone()); // duplicates are skipped
                }
                let (flags, expires) = match kind {
                    6 => (FLAG_DELETED, NOW + 1000),
                    7 => (0, NOW - 1),
                    _ => (0, NOW + 1000),
                };
                all.push((record(i as u8 + 1, &a, flags, expires), a));
            }
            let (_dir, db) = store_with(&all);
            for q in queries {
                let Ok(c) = Criteria::parse(&format!("<peersearch>{q}</peersearch>")) else {
                    continue; // e.g. a wildcard with an ordering: refused before any search
                };
                prop_assert_eq!(db.search(&c, NOW).unwrap(), scan(&db, &c), "{}", q);
            }
        }
    }
}
