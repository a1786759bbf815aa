//! Unit tests of the canonical encoding's SQL and of the comparisons.

use std::collections::BTreeMap;

use super::sql::{choose_key, keys_predicate, range_predicate, row_hash};
use super::*;

fn table(key: Vec<usize>) -> VerifyTable {
    let col = |s: &str, t: &str, kind| VerifyColumn {
        source: s.into(),
        target: t.into(),
        kind,
        source_utf8mb4: false,
        target_utf8mb4: false,
        nullable: true,
        max_bytes: None,
    };
    VerifyTable {
        source_schema: "shop".into(),
        source_table: "items".into(),
        target_schema: "copy".into(),
        target_table: "items2".into(),
        columns: vec![
            col("a", "a", ColumnKind::Signed),
            col("b", "b2", ColumnKind::Text),
            col("c", "c", ColumnKind::Bit),
        ],
        key,
    }
}

#[test]
fn kinds_follow_the_information_schema_types() {
    assert_eq!(
        ColumnKind::from_type("int", "int(10) unsigned"),
        ColumnKind::Unsigned
    );
    assert_eq!(
        ColumnKind::from_type("BIGINT", "bigint(20)"),
        ColumnKind::Signed
    );
    assert_eq!(
        ColumnKind::from_type("varbinary", "varbinary(8)"),
        ColumnKind::Binary
    );
    assert_eq!(ColumnKind::from_type("enum", "enum('a')"), ColumnKind::Text);
    assert_eq!(
        ColumnKind::from_type("datetime", "datetime(6)"),
        ColumnKind::Temporal
    );
    assert_eq!(
        ColumnKind::Text.canonical("`x`", false),
        "CONVERT(`x` USING utf8mb4)"
    );
    assert_eq!(
        ColumnKind::Text.canonical("`x`", true),
        "CAST(`x` AS BINARY)"
    );
    assert_eq!(
        ColumnKind::Json.canonical("`x`", true),
        "CONVERT(`x` USING utf8mb4)"
    );
    assert_eq!(ColumnKind::Bit.canonical("`x`", true), "(`x` + 0)");
    assert!(is_utf8mb4("utf8mb4_general_ci") && is_utf8mb4("UTF8MB4_BIN"));
    assert!(!is_utf8mb4("latin1_swedish_ci") && !is_utf8mb4("utf8mb3_bin") && !is_utf8mb4(""));
}

#[test]
fn composite_ranges_expand_to_index_ranges() {
    let t = table(vec![0, 1]);
    let range = KeyRange {
        after: Some(vec![BindValue::Int(1), BindValue::Text("x".into())]),
        through: Some(vec![BindValue::Int(5), BindValue::Text("y".into())]),
    };
    let (sql, binds) = range_predicate(&t, Side::Target, &range);
    assert_eq!(
        sql,
        "(`a` > ? OR (`a` = ? AND (`b2` > ?))) AND (`a` < ? OR (`a` = ? AND (`b2` <= ?)))"
    );
    assert_eq!(
        binds,
        vec![
            BindValue::Int(1),
            BindValue::Int(1),
            BindValue::Text("x".into()),
            BindValue::Int(5),
            BindValue::Int(5),
            BindValue::Text("y".into()),
        ]
    );
    let (sql, binds) = range_predicate(&t, Side::Source, &KeyRange::default());
    assert_eq!((sql.as_str(), binds.len()), ("TRUE", 0));
    let (sql, binds) = keys_predicate(
        &table(vec![0]),
        Side::Source,
        &[vec![BindValue::Int(3)], vec![BindValue::Int(4)]],
    );
    assert_eq!(sql, "(`a` = ?) OR (`a` = ?)");
    assert_eq!(binds.len(), 2);
}

#[test]
fn row_hash_uses_each_sides_names_and_marks_nulls() {
    let t = table(vec![0]);
    let src = row_hash(&t, Side::Source);
    let tgt = row_hash(&t, Side::Target);
    assert!(src.contains("CONVERT(`b` USING utf8mb4)"), "{src}");
    assert!(tgt.contains("CONVERT(`b2` USING utf8mb4)"), "{tgt}");
    assert!(
        src.starts_with("SHA1(CONCAT_WS(',', IFNULL(`a`, 'N'), "),
        "{src}"
    );
    // Text is quoted (it may hold the separator; QUOTE keeps NULL as the
    // bare word NULL); numbers are not.
    assert!(
        src.contains(", QUOTE(CONVERT(`b` USING utf8mb4)), "),
        "{src}"
    );
    assert!(src.ends_with("IFNULL((`c` + 0), 'N')))"), "{src}");
}

#[test]
fn a_keyed_chunk_hashes_its_row_hashes_in_key_order_and_a_keyless_one_sums_them() {
    let mut narrow = table(vec![0]);
    let keyed = super::sql::checksum(&narrow, Side::Source, "TRUE");
    assert!(super::sql::narrow(&narrow));
    // Short row texts themselves, long values hashed, a NOT NULL column
    // without its IFNULL.
    assert!(
        keyed.contains("SHA1(GROUP_CONCAT(CONCAT_WS(',', IFNULL(`a`, 'N')"),
        "{keyed}"
    );
    assert!(
        keyed.contains(
            "IF(LENGTH(CONVERT(`b` USING utf8mb4)) > 40, SHA1(CONVERT(`b` USING utf8mb4)), QUOTE(CONVERT(`b` USING utf8mb4)))"
        ),
        "{keyed}"
    );
    // A column declared short enough stands quoted, whatever its values.
    narrow.columns[1].max_bytes = Some(super::sql::INLINE_VALUE);
    let keyed = super::sql::checksum(&narrow, Side::Source, "TRUE");
    assert!(
        keyed.contains(", QUOTE(CONVERT(`b` USING utf8mb4)), "),
        "{keyed}"
    );
    assert!(!keyed.contains("SHA1(CONVERT"), "{keyed}");
    narrow.columns[1].max_bytes = None;
    assert!(keyed.contains("SEPARATOR ';'"), "{keyed}");
    assert!(!keyed.contains("CONV("), "{keyed}");
    narrow.columns[0].nullable = false;
    let keyed = super::sql::checksum(&narrow, Side::Source, "TRUE");
    assert!(keyed.contains("CONCAT_WS(',', `a`, IF(LENGTH("), "{keyed}");
    // Wide rows: each row hashed first, 40 bytes a row in the concatenation.
    let mut wide = table(vec![0]);
    let mut text = wide.columns[1].clone();
    text.max_bytes = Some(super::sql::INLINE_VALUE);
    wide.columns.extend(std::iter::repeat_n(text, 2));
    assert!(!super::sql::narrow(&wide));
    let keyed = super::sql::checksum(&wide, Side::Source, "TRUE");
    assert!(keyed.contains("SHA1(GROUP_CONCAT(SHA1("), "{keyed}");
    let keyless = super::sql::checksum(&table(vec![]), Side::Target, "TRUE");
    assert!(
        keyless.contains("SUM(CAST(CONV(SUBSTRING(h, 17, 16)"),
        "{keyless}"
    );
    assert!(keyless.contains("`copy`.`items2`"), "{keyless}");
}

#[test]
fn the_key_is_the_primary_key_else_a_not_null_unique_index() {
    let row = |i: &str, c: &str, n: &str| (i.to_string(), c.to_string(), n.to_string());
    assert_eq!(
        choose_key(&[
            row("PRIMARY", "id", ""),
            row("PRIMARY", "k", ""),
            row("u", "x", "")
        ]),
        vec!["id", "k"]
    );
    assert_eq!(
        choose_key(&[row("a", "x", "YES"), row("b", "y", ""), row("b", "z", "")]),
        vec!["y", "z"]
    );
    assert!(choose_key(&[row("a", "x", "YES")]).is_empty());
}

#[test]
fn keyed_and_multiset_differences() {
    let k = |n: u8| vec![Some(vec![n])];
    let h = |n: u8| vec![n; 4];
    let src = vec![(k(1), h(1)), (k(2), h(2)), (k(3), h(3))];
    let tgt = vec![(k(2), h(2)), (k(3), h(9)), (k(4), h(4))];
    let d = diff_keyed(&src, &tgt);
    assert_eq!(d.get(&k(1)), Some(&DiffKind::MissingOnTarget));
    assert_eq!(d.get(&k(3)), Some(&DiffKind::Different));
    assert_eq!(d.get(&k(4)), Some(&DiffKind::ExtraOnTarget));
    assert_eq!(d.len(), 3);

    let src = BTreeMap::from([(h(1), 2), (h(2), 1)]);
    let tgt = BTreeMap::from([(h(1), 1), (h(2), 1), (h(3), 2)]);
    let d = diff_multiset(&src, &tgt);
    assert_eq!(d.get(&h(1)), Some(&(DiffKind::MissingOnTarget, 1)));
    assert_eq!(d.get(&h(3)), Some(&(DiffKind::ExtraOnTarget, 2)));
    assert_eq!(d.len(), 2);
    assert_eq!(
        differing_columns(&[Some(vec![1]), None], &[Some(vec![1]), Some(vec![])]),
        vec![1]
    );
}

#[test]
fn canonical_values_bind_as_their_kind() {
    let v = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(
        BindValue::from_canonical(ColumnKind::Signed, &v("-5")),
        BindValue::Int(-5)
    );
    assert_eq!(
        BindValue::from_canonical(ColumnKind::Bit, &v("5")),
        BindValue::UInt(5)
    );
    assert_eq!(
        BindValue::from_canonical(ColumnKind::Text, &v("é")),
        BindValue::Text("é".into())
    );
    assert_eq!(
        BindValue::from_canonical(ColumnKind::Binary, &v("a")),
        BindValue::Bytes(b"a".to_vec())
    );
    assert_eq!(
        BindValue::from_canonical(ColumnKind::Decimal, &None),
        BindValue::Null
    );
    assert_eq!(ChunkSum("12:3:4".into()).rows(), 12);
}

#[test]
fn value_bounds_cut_dense_integer_keys_into_chunks_no_wider_than_chunk_rows() {
    let b: Vec<i128> = value_bounds(1, 10, 10, 3).unwrap().collect();
    // (-inf,3] (3,6] (6,9] (9,+inf): the last range holds only 10.
    assert_eq!(b, vec![3, 6, 9]);
    let b: Vec<i128> = value_bounds(1, 9, 9, 3).unwrap().collect();
    assert_eq!(b, vec![3, 6], "(6, +inf) holds 7..=9");
    assert_eq!(
        value_bounds(5, 5, 1, 1000).unwrap().count(),
        0,
        "one open range"
    );
    // Sparse (span over four times the rows): walk the index instead.
    assert!(value_bounds(1, 1_000_000, 1_000, 100).is_none());
    assert!(value_bounds(1, 400_000, 100_000, 100).is_some());
    // A low estimate still allows four chunks' span.
    assert_eq!(value_bounds(1, 4_000, 0, 1_000).unwrap().count(), 3);
    // Unsigned BIGINT's whole range does not overflow.
    assert!(value_bounds(0, i128::from(u64::MAX), u64::MAX, 1000)
        .is_some_and(|mut b| b.next() == Some(999)));
    assert!(value_bounds(i128::from(i64::MIN), i128::from(i64::MAX), 10, 10).is_none());
    assert!(value_bounds(10, 1, 10, 10).is_none(), "max below min");
}
