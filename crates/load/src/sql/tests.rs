use sluice_core::schema::type_code as tc;
use sluice_core::{Column, DateTime, Time};
use sqlx::Arguments as _;

use super::*;

fn table(cols: &[&str], key: Vec<usize>) -> TableSchema {
    TableSchema {
        schema: "sh`op".into(),
        table: "us`ers".into(),
        columns: cols
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                type_code: tc::LONG,
                meta: 0,
                nullable: true,
                unsigned: false,
                collation: None,
                labels: None,
            })
            .collect(),
        primary_key: key,
        has_names: true,
    }
}

fn rows(n: usize, width: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            (0..width)
                .map(|c| Value::Int((i * 10 + c) as i64))
                .collect()
        })
        .collect()
}

fn refs(rows: &[Row]) -> Vec<&Row> {
    rows.iter().collect()
}

#[test]
fn identifiers_are_quoted_with_backticks_doubled() {
    assert_eq!(quote_ident("a`b"), "`a``b`");
    assert_eq!(quote_ident("plain"), "`plain`");
    assert_eq!(
        qualified_name(&table(&["id"], vec![0])),
        "`sh``op`.`us``ers`"
    );
}

#[test]
fn statement_shapes() {
    let t = table(&["id", "na`me"], vec![0]);
    let data = rows(2, 2);
    let r = refs(&data);
    let limits = Limits::default();

    let c = chunks(Kind::Upsert(&[0]), &t, &r, limits);
    assert_eq!(c.len(), 1);
    let s = build(Kind::Upsert(&[0]), &t, &r, c[0]).unwrap();
    assert_eq!(
        s.sql,
        "INSERT INTO `sh``op`.`us``ers` (`id`,`na``me`) VALUES (?,?),(?,?) \
         ON DUPLICATE KEY UPDATE `id`=IF(`id` <=> VALUES(`id`), VALUES(`id`), NULL),\
         `na``me`=VALUES(`na``me`)"
    );
    assert_eq!(s.args.len(), 4);

    // Composite key, guard on the first key column, which need not come
    // first in the table.
    let s = build(Kind::Upsert(&[1, 0]), &t, &r, c[0]).unwrap();
    assert_eq!(
        s.sql,
        "INSERT INTO `sh``op`.`us``ers` (`id`,`na``me`) VALUES (?,?),(?,?) \
         ON DUPLICATE KEY UPDATE `na``me`=IF(`na``me` <=> VALUES(`na``me`) AND `id` <=> VALUES(`id`), \
         VALUES(`na``me`), NULL),`id`=VALUES(`id`)"
    );

    let s = build(
        Kind::Replace,
        &t,
        &r,
        chunks(Kind::Replace, &t, &r, limits)[0],
    )
    .unwrap();
    assert_eq!(
        s.sql,
        "REPLACE INTO `sh``op`.`us``ers` (`id`,`na``me`) VALUES (?,?),(?,?)"
    );

    let s = build(
        Kind::Delete(&[0]),
        &t,
        &r,
        chunks(Kind::Delete(&[0]), &t, &r, limits)[0],
    )
    .unwrap();
    assert_eq!(s.sql, "DELETE FROM `sh``op`.`us``ers` WHERE `id` IN (?,?)");
    assert_eq!(s.args.len(), 2);

    let s = build(
        Kind::Delete(&[1, 0]),
        &t,
        &r,
        chunks(Kind::Delete(&[1, 0]), &t, &r, limits)[0],
    )
    .unwrap();
    assert_eq!(
        s.sql,
        "DELETE FROM `sh``op`.`us``ers` WHERE (`na``me`,`id`) IN ((?,?),(?,?))"
    );

    let s = build(
        Kind::Insert,
        &t,
        &r,
        chunks(Kind::Insert, &t, &r, limits)[0],
    )
    .unwrap();
    assert_eq!(
        s.sql,
        "INSERT INTO `sh``op`.`us``ers` (`id`,`na``me`) VALUES (?,?),(?,?)"
    );

    let c = chunks(Kind::DeleteOne, &t, &r, limits);
    assert_eq!(c.len(), 2, "one row per delete-one");
    let s = build(Kind::DeleteOne, &t, &r, c[1]).unwrap();
    assert_eq!(
        s.sql,
        "DELETE FROM `sh``op`.`us``ers` WHERE `id` <=> ? AND `na``me` <=> ? LIMIT 1"
    );
    assert_eq!(s.args.len(), 2);
}

/// A composite key with a character column is matched column by column;
/// one of numbers or binary strings keeps the row constructor.
#[test]
fn composite_keys_with_characters_are_matched_column_by_column() {
    let mut t = table(&["a", "b", "v"], vec![0, 1]);
    t.columns[0].type_code = tc::VARCHAR;
    t.columns[0].collation = Some(8); // latin1
    let data = rows(3, 3);
    let r = refs(&data);
    let limits = Limits::default();
    let c = chunks(Kind::Delete(&[0, 1]), &t, &r, limits);
    assert_eq!((c[0].len, c[0].padded), (3, 4));
    let s = build(Kind::Delete(&[0, 1]), &t, &r, c[0]).unwrap();
    assert_eq!(
        s.sql,
        "DELETE FROM `sh``op`.`us``ers` WHERE (`a`=? AND `b`=?) OR (`a`=? AND `b`=?) \
         OR (`a`=? AND `b`=?) OR (`a`=? AND `b`=?)"
    );
    assert_eq!(s.args.len(), 8);
    assert!(compares_by_column(&t, &[1, 0]));
    // At most MAX_OR_ROWS per statement, where the optimizer stays linear.
    let many = rows(600, 3);
    let c = chunks(Kind::Delete(&[0, 1]), &t, &refs(&many), limits);
    assert_eq!(c.iter().map(|c| c.len).collect::<Vec<_>>(), [256, 256, 88]);
    // ENUM/SET are compared as strings too; a binary string is not.
    t.columns[0].collation = Some(63);
    assert!(!compares_by_column(&t, &[0, 1]));
    t.columns[0].type_code = tc::ENUM;
    assert!(compares_by_column(&t, &[0, 1]));
    // Unknown collation: treated as characters.
    t.columns[0].type_code = tc::STRING;
    t.columns[0].collation = None;
    assert!(compares_by_column(&t, &[0, 1]));
}

/// ENUM's error value goes as the number 0, never as its text `''`, which
/// could be a real label.
#[test]
fn enum_error_value_is_sent_as_its_index() {
    let mut zero = MySqlArguments::default();
    encode_value(
        &mut zero,
        &Value::Enum {
            index: 0,
            label: Some("".into()),
        },
    )
    .unwrap();
    let mut number = MySqlArguments::default();
    number.add(0u64).unwrap();
    let mut empty_label = MySqlArguments::default();
    encode_value(
        &mut empty_label,
        &Value::Enum {
            index: 1,
            label: Some("".into()),
        },
    )
    .unwrap();
    assert_eq!(format!("{zero:?}"), format!("{number:?}"));
    assert_ne!(format!("{zero:?}"), format!("{empty_label:?}"));
}

#[test]
fn chunks_respect_rows_placeholders_and_bytes() {
    let t = table(&["a", "b", "c"], vec![0]);
    let data = rows(3000, 3);
    let r = refs(&data);

    let c = chunks(
        Kind::Upsert(&[0]),
        &t,
        &r,
        Limits {
            max_bytes: usize::MAX,
            max_rows: 1000,
        },
    );
    assert_eq!(
        c.iter().map(|c| c.len).collect::<Vec<_>>(),
        vec![1000, 1000, 1000]
    );
    assert!(c.iter().all(|c| c.padded == 1000 && c.persistent));

    // 65535 placeholders / 3 columns = 21845 rows at most.
    let data = rows(50_000, 3);
    let r = refs(&data);
    let c = chunks(
        Kind::Upsert(&[0]),
        &t,
        &r,
        Limits {
            max_bytes: usize::MAX,
            max_rows: usize::MAX,
        },
    );
    assert!(c.iter().all(|c| c.padded * 3 <= MAX_PLACEHOLDERS));
    assert_eq!(c.iter().map(|c| c.len).sum::<usize>(), 50_000);
    assert_eq!(c[0].len, 21_845);

    // Byte budget: ~10 KiB values, 64 KiB statements.
    let big: Vec<Row> = (0..40)
        .map(|i| vec![Value::Int(i), Value::Text("x".repeat(10_000)), Value::Null])
        .collect();
    let r = refs(&big);
    let limits = Limits {
        max_bytes: 64 << 10,
        max_rows: 1000,
    };
    let c = chunks(Kind::Upsert(&[0]), &t, &r, limits);
    assert_eq!(c.iter().map(|c| c.len).sum::<usize>(), 40);
    for ch in &c {
        let s = build(Kind::Upsert(&[0]), &t, &r, *ch).unwrap();
        let bytes = s.sql.len() + (ch.start..ch.start + ch.padded.min(ch.len)).count() * 10_020;
        assert!(bytes <= limits.max_bytes, "{ch:?} {bytes}");
        assert!(ch.len >= 1);
    }
    // A single row over the budget still goes, alone.
    let huge = vec![vec![
        Value::Int(1),
        Value::Text("y".repeat(100_000)),
        Value::Null,
    ]];
    let r = refs(&huge);
    let c = chunks(Kind::Upsert(&[0]), &t, &r, limits);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].len, c[0].padded), (1, 1));
}

#[test]
fn odd_sizes_are_padded_to_powers_of_two_except_plain_inserts() {
    let t = table(&["a", "b"], vec![0]);
    let data = rows(1500, 2);
    let r = refs(&data);
    let limits = Limits {
        max_bytes: usize::MAX,
        max_rows: 1024,
    };
    let c = chunks(Kind::Upsert(&[0]), &t, &r, limits);
    assert_eq!(
        c.iter().map(|c| (c.len, c.padded)).collect::<Vec<_>>(),
        vec![(1024, 1024), (476, 512)]
    );
    let s = build(Kind::Upsert(&[0]), &t, &r, c[1]).unwrap();
    assert_eq!(s.args.len(), 512 * 2);
    assert_eq!(s.sql.matches("(?,?)").count(), 512);

    let c = chunks(Kind::Delete(&[0]), &t, &r[..3], limits);
    assert_eq!((c[0].len, c[0].padded), (3, 4));
    let s = build(Kind::Delete(&[0]), &t, &r[..3], c[0]).unwrap();
    assert_eq!(s.sql.matches('?').count(), 4);

    let c = chunks(Kind::Insert, &t, &r[..3], limits);
    assert_eq!((c[0].len, c[0].padded, c[0].persistent), (3, 3, false));

    // No padding past the byte budget.
    let c = chunks(
        Kind::Upsert(&[0]),
        &t,
        &r[..5],
        Limits {
            max_bytes: 400,
            max_rows: 1024,
        },
    );
    assert!(c
        .iter()
        .all(|c| c.padded == c.len || c.padded.is_power_of_two()));
}

#[test]
fn temporal_texts_keep_zero_dates_fractions_and_signs() {
    assert_eq!(
        temporal_text(&Value::Date {
            year: 0,
            month: 0,
            day: 0
        })
        .unwrap(),
        "0000-00-00"
    );
    assert_eq!(
        temporal_text(&Value::Date {
            year: 2015,
            month: 0,
            day: 21
        })
        .unwrap(),
        "2015-00-21"
    );
    assert_eq!(
        temporal_text(&Value::DateTime(DateTime {
            year: 9999,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 500_000,
            fsp: 1,
        }))
        .unwrap(),
        "9999-12-31 23:59:59.5"
    );
    assert_eq!(
        temporal_text(&Value::Timestamp {
            secs: 0,
            micros: 0,
            fsp: 2
        })
        .unwrap(),
        "0000-00-00 00:00:00.00"
    );
    assert_eq!(
        temporal_text(&Value::Time(Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        }))
        .unwrap(),
        "-838:59:59"
    );
}

#[test]
fn absent_and_json_diff_are_refused() {
    let t = table(&["id", "doc"], vec![0]);
    let data = vec![vec![Value::Int(1), Value::JsonDiff("[]".into())]];
    let r = refs(&data);
    let c = chunks(Kind::Upsert(&[0]), &t, &r, Limits::default());
    let e = build(Kind::Upsert(&[0]), &t, &r, c[0]).unwrap_err();
    assert_eq!(e.column, "doc");
    assert!(e.reason.contains("partial JSON update"));
    let mut args = MySqlArguments::default();
    assert!(encode_value(&mut args, &Value::Absent).is_err());
    assert!(encode_value(&mut args, &Value::UInt(u64::MAX)).is_ok());
}

/// The inline form is the bound form with each `?` replaced by a literal.
#[test]
fn inline_statements_have_the_bound_shape_with_literals() {
    let t = table(&["id", "na`me"], vec![0]);
    let data = vec![
        vec![Value::Int(-1), Value::Text("it's".into())],
        vec![Value::UInt(u64::MAX), Value::Null],
    ];
    let r = refs(&data);
    let limits = Limits::default();
    let c = chunks(Kind::Upsert(&[0]), &t, &r, limits)[0];
    let s = build_inline(Kind::Upsert(&[0]), &t, &r, c)
        .unwrap()
        .unwrap();
    assert_eq!(
        s,
        "INSERT INTO `sh``op`.`us``ers` (`id`,`na``me`) VALUES (-1,_utf8mb4 X'69742773'),\
         (18446744073709551615,NULL) \
         ON DUPLICATE KEY UPDATE `id`=IF(`id` <=> VALUES(`id`), VALUES(`id`), NULL),\
         `na``me`=VALUES(`na``me`)"
    );
    let mut t2 = table(&["a", "b", "v"], vec![0, 1]);
    t2.columns[0].type_code = tc::VARCHAR;
    t2.columns[0].collation = Some(8);
    let keys = vec![vec![Value::Text("x".into()), Value::Int(2), Value::Null]];
    let rk = refs(&keys);
    let c = chunks(Kind::Delete(&[0, 1]), &t2, &rk, limits)[0];
    assert_eq!(
        build_inline(Kind::Delete(&[0, 1]), &t2, &rk, c)
            .unwrap()
            .unwrap(),
        "DELETE FROM `sh``op`.`us``ers` WHERE (`a`=_utf8mb4'x' AND `b`=2)"
    );
    let c = chunks(Kind::Delete(&[0]), &t, &r, limits)[0];
    assert_eq!(
        build_inline(Kind::Delete(&[0]), &t, &r, c)
            .unwrap()
            .unwrap(),
        "DELETE FROM `sh``op`.`us``ers` WHERE `id` IN (-1,18446744073709551615)"
    );
    let c = chunks(Kind::DeleteOne, &t, &r, limits)[0];
    assert_eq!(
        build_inline(Kind::DeleteOne, &t, &r, c).unwrap().unwrap(),
        "DELETE FROM `sh``op`.`us``ers` WHERE `id` <=> -1 AND `na``me` <=> _utf8mb4 X'69742773' LIMIT 1"
    );
    // A value without a literal: the caller binds instead.
    let nan = vec![vec![Value::Int(1), Value::Double(f64::NAN)]];
    let rn = refs(&nan);
    let c = chunks(Kind::Insert, &t, &rn, limits)[0];
    assert_eq!(build_inline(Kind::Insert, &t, &rn, c).unwrap(), None);
    // Refusals are the same as when binding.
    let absent = vec![vec![Value::Int(1), Value::Absent]];
    let ra = refs(&absent);
    let c = chunks(Kind::Insert, &t, &ra, limits)[0];
    assert_eq!(
        build_inline(Kind::Insert, &t, &ra, c).unwrap_err().column,
        "na`me"
    );
}

fn literal(v: &Value) -> String {
    let mut s = String::new();
    assert!(push_literal(&mut s, v).unwrap(), "{v:?} has a literal");
    s
}

#[test]
fn literals_read_back_as_the_bound_values() {
    assert_eq!(literal(&Value::Int(i64::MIN)), "-9223372036854775808");
    assert_eq!(literal(&Value::Year(0)), "0", "the zero year, not 2000");
    assert_eq!(literal(&Value::Bit { bits: 5, width: 3 }), "5");
    // Shortest round trip: parsing the text gives the same bits.
    for d in [0.1, -0.0, 1e300, 5e-324, f64::MAX, 123.456] {
        let s = literal(&Value::Double(d));
        assert!(s.contains('e'), "{s} is a DOUBLE literal");
        assert_eq!(s.parse::<f64>().unwrap().to_bits(), d.to_bits(), "{s}");
    }
    for f in [0.3f32, -0.3, f32::MAX, f32::MIN_POSITIVE, 1e-45] {
        let s = literal(&Value::Float(f));
        assert_eq!(
            (s.parse::<f64>().unwrap() as f32).to_bits(),
            f.to_bits(),
            "{s}"
        );
    }
    assert_eq!(
        literal(&Value::Decimal("-12.3400".into())),
        "_utf8mb4'-12.3400'"
    );
    assert_eq!(literal(&Value::Text(String::new())), "_utf8mb4''");
    assert_eq!(literal(&Value::Text("a\\b".into())), "_utf8mb4 X'615C62'");
    assert_eq!(literal(&Value::Text("é".into())), "_utf8mb4 X'C3A9'");
    assert_eq!(
        literal(&Value::Text("a\"b`c".into())),
        "_utf8mb4 X'6122626063'"
    );
    assert_eq!(
        literal(&Value::Text("tab\there".into())),
        "_utf8mb4 X'7461620968657265'"
    );
    assert_eq!(literal(&Value::Bytes(vec![0, 0xff])), "_binary X'00FF'");
    assert_eq!(literal(&Value::Bytes(b"ok".to_vec())), "_binary'ok'");
    assert_eq!(literal(&Value::Geometry(vec![1, 2])), "_binary X'0102'");
    assert_eq!(
        literal(&Value::Json("{\"a\": 1}".into())),
        "_utf8mb4 X'7B2261223A20317D'"
    );
    let label = |index, l: Option<&str>| Value::Enum {
        index,
        label: l.map(Into::into),
    };
    assert_eq!(
        literal(&label(0, Some(""))),
        "0",
        "the error value by index"
    );
    assert_eq!(literal(&label(1, Some(""))), "_utf8mb4''");
    assert_eq!(literal(&label(3, None)), "3");
    let set = |bits, labels: Option<&str>| Value::Set {
        bits,
        labels: labels.map(Into::into),
    };
    assert_eq!(literal(&set(5, Some("a,c"))), "_utf8mb4'a,c'");
    assert_eq!(literal(&set(5, None)), "5");
    assert_eq!(
        literal(&Value::Date {
            year: 0,
            month: 0,
            day: 0
        }),
        "_utf8mb4'0000-00-00'"
    );
    let mut s = String::new();
    assert!(!push_literal(&mut s, &Value::Float(f32::INFINITY)).unwrap());
    assert!(push_literal(&mut s, &Value::Absent).is_err());
}
