//! Replication keys: which columns identify a row, a canonical byte form of
//! a key for merging and partitioning, and a readable form for messages.
//!
//! Two key values are the *same row* on the target when the target's index
//! says so, which for character columns means by collation (`'a' = 'A'` in a
//! `_ci` collation, `'a' = 'a '` under PAD SPACE). The byte form used here
//! is exact, so it can only be trusted to *separate* rows when every key
//! column compares exactly ([`KeySpec::exact`]). Merging stays correct either
//! way (see [`crate::merge`]); partitioning over workers does not, so tables
//! whose key has a character column are applied by one worker.

use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hasher};

use sluice_core::schema::{type_code as tc, BINARY_COLLATION};
use sluice_core::{Column, Row, TableSchema, Value};

/// The columns that identify a row of one table on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Indexes into [`TableSchema::columns`], in key order; never empty.
    pub columns: Vec<usize>,
    /// Every key column compares byte-for-byte (numbers, temporals,
    /// ENUM/SET/BIT, binary strings), so different canonical bytes are
    /// different rows and the table may be spread over workers by key hash.
    pub exact: bool,
}

impl KeySpec {
    pub fn new(table: &TableSchema, columns: Vec<usize>) -> Self {
        let exact = columns
            .iter()
            .all(|&i| table.columns.get(i).is_some_and(compares_exactly));
        KeySpec { columns, exact }
    }
}

/// Whether the server compares values of this column exactly as their
/// decoded values (so equal canonical bytes ⇔ equal key).
pub fn compares_exactly(col: &Column) -> bool {
    match col.type_code {
        tc::TINY
        | tc::SHORT
        | tc::INT24
        | tc::LONG
        | tc::LONGLONG
        | tc::YEAR
        | tc::DECIMAL
        | tc::NEWDECIMAL
        | tc::FLOAT
        | tc::DOUBLE
        | tc::DATE
        | tc::NEWDATE
        | tc::TIME
        | tc::TIME2
        | tc::DATETIME
        | tc::DATETIME2
        | tc::TIMESTAMP
        | tc::TIMESTAMP2
        | tc::ENUM
        | tc::SET
        | tc::BIT => true,
        // Strings compare by collation unless the charset is binary.
        _ => col.collation == Some(BINARY_COLLATION),
    }
}

/// Appends the canonical bytes of one key value. Variable-length parts are
/// length-prefixed so concatenations of several columns cannot collide.
pub fn push_key_bytes(out: &mut Vec<u8>, v: &Value) {
    fn var(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }
    match v {
        Value::Null => out.push(0),
        Value::Absent => out.push(1),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::UInt(u) => {
            out.push(3);
            out.extend_from_slice(&u.to_le_bytes());
        }
        // -0.0 = 0.0 for the server.
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(
                &(if *f == 0.0 { 0.0f32 } else { *f })
                    .to_bits()
                    .to_le_bytes(),
            );
        }
        Value::Double(d) => {
            out.push(5);
            out.extend_from_slice(
                &(if *d == 0.0 { 0.0f64 } else { *d })
                    .to_bits()
                    .to_le_bytes(),
            );
        }
        Value::Decimal(s) => {
            // "-0.00" = "0.00".
            let zero = s.bytes().all(|b| matches!(b, b'-' | b'0' | b'.'));
            var(
                out,
                6,
                if zero { s.trim_start_matches('-') } else { s }.as_bytes(),
            );
        }
        Value::Date { year, month, day } => {
            out.push(7);
            out.extend_from_slice(&year.to_le_bytes());
            out.extend_from_slice(&[*month, *day]);
        }
        Value::DateTime(dt) => {
            out.push(8);
            out.extend_from_slice(&dt.year.to_le_bytes());
            out.extend_from_slice(&[dt.month, dt.day, dt.hour, dt.minute, dt.second]);
            out.extend_from_slice(&dt.micros.to_le_bytes());
        }
        Value::Timestamp { secs, micros, .. } => {
            out.push(9);
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::Time(t) => {
            out.push(10);
            let zero = t.hours == 0 && t.minutes == 0 && t.seconds == 0 && t.micros == 0;
            out.push(u8::from(t.negative && !zero));
            out.extend_from_slice(&t.hours.to_le_bytes());
            out.extend_from_slice(&[t.minutes, t.seconds]);
            out.extend_from_slice(&t.micros.to_le_bytes());
        }
        Value::Year(y) => {
            out.push(11);
            out.extend_from_slice(&y.to_le_bytes());
        }
        Value::Text(s) => var(out, 12, s.as_bytes()),
        Value::Bytes(b) => var(out, 13, b),
        Value::Enum { index, .. } => {
            out.push(14);
            out.extend_from_slice(&index.to_le_bytes());
        }
        Value::Set { bits, .. } => {
            out.push(15);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Value::Bit { bits, .. } => {
            out.push(16);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Value::Json(s) => var(out, 17, s.as_bytes()),
        Value::Geometry(b) => var(out, 18, b),
        Value::JsonDiff(s) => var(out, 19, s.as_bytes()),
    }
}

/// The canonical bytes of a row's key (`buf` is cleared and reused).
pub fn key_bytes<'b>(buf: &'b mut Vec<u8>, row: &Row, key: &[usize]) -> &'b [u8] {
    buf.clear();
    for &i in key {
        push_key_bytes(buf, &row[i]);
    }
    buf
}

/// A deterministic 64-bit hash of a table name and optional key bytes:
/// which worker applies a row.
pub fn partition_hash(table: &TableSchema, key: Option<&[u8]>) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(table.schema.as_bytes());
    h.write_u8(0);
    h.write(table.table.as_bytes());
    if let Some(k) = key {
        h.write_u8(1);
        h.write(k);
    }
    h.finish()
}

/// Longest rendering of one value in a message.
const MAX_VALUE_CHARS: usize = 64;

/// `(id=5, name='bob')`: the key columns of a row, for messages. Long values
/// are cut; bytes print as hex.
pub fn describe_key(table: &TableSchema, row: &Row, key: &[usize]) -> String {
    describe_columns(table, row, key.iter().copied())
}

/// Every column of a row (for tables without a key), for messages.
pub fn describe_row(table: &TableSchema, row: &Row) -> String {
    describe_columns(table, row, 0..row.len().min(table.columns.len()))
}

fn describe_columns(table: &TableSchema, row: &Row, cols: impl Iterator<Item = usize>) -> String {
    let mut s = String::from("(");
    for (n, i) in cols.enumerate() {
        if n > 0 {
            s.push_str(", ");
        }
        if n == 16 {
            s.push('…');
            break;
        }
        let name = table.columns.get(i).map_or("?", |c| c.name.as_str());
        let _ = write!(s, "{name}=");
        match row.get(i) {
            Some(v) => push_value_text(&mut s, v),
            None => s.push('?'),
        }
    }
    s.push(')');
    s
}

/// A short SQL-literal-like rendering of a value, for messages only.
pub fn push_value_text(s: &mut String, v: &Value) {
    let quoted = |s: &mut String, t: &str| {
        s.push('\'');
        let mut chars = t.chars();
        for c in chars.by_ref().take(MAX_VALUE_CHARS) {
            if c == '\'' {
                s.push('\'');
            }
            s.push(c);
        }
        if chars.next().is_some() {
            s.push('…');
        }
        s.push('\'');
    };
    let hex = |s: &mut String, b: &[u8]| {
        s.push_str("0x");
        for byte in b.iter().take(MAX_VALUE_CHARS / 2) {
            let _ = write!(s, "{byte:02x}");
        }
        if b.len() > MAX_VALUE_CHARS / 2 {
            s.push('…');
        }
    };
    match v {
        Value::Null => s.push_str("NULL"),
        Value::Absent => s.push_str("<absent>"),
        Value::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(s, "{u}");
        }
        Value::Float(f) => {
            let _ = write!(s, "{f:?}");
        }
        Value::Double(d) => {
            let _ = write!(s, "{d:?}");
        }
        Value::Decimal(d) => s.push_str(d),
        Value::Year(y) => {
            let _ = write!(s, "{y}");
        }
        Value::Bit { bits, .. } => {
            let _ = write!(s, "b'{bits:b}'");
        }
        Value::Enum { label: Some(l), .. } => quoted(s, l),
        Value::Enum { index, label: None } => {
            let _ = write!(s, "{index}");
        }
        Value::Set {
            labels: Some(l), ..
        } => quoted(s, l),
        Value::Set { bits, labels: None } => {
            let _ = write!(s, "{bits}");
        }
        Value::Text(t) | Value::Json(t) => quoted(s, t),
        Value::JsonDiff(_) => s.push_str("<partial JSON update>"),
        Value::Bytes(b) | Value::Geometry(b) => hex(s, b),
        Value::Date { .. } | Value::DateTime(_) | Value::Timestamp { .. } | Value::Time(_) => {
            let text = crate::sql::temporal_text(v).unwrap_or_default();
            quoted(s, &text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Time;

    fn bytes(v: &Value) -> Vec<u8> {
        let mut b = Vec::new();
        push_key_bytes(&mut b, v);
        b
    }

    #[test]
    fn equal_server_values_have_equal_bytes() {
        assert_eq!(bytes(&Value::Double(-0.0)), bytes(&Value::Double(0.0)));
        assert_eq!(bytes(&Value::Float(-0.0)), bytes(&Value::Float(0.0)));
        assert_eq!(
            bytes(&Value::Decimal("-0.00".into())),
            bytes(&Value::Decimal("0.00".into()))
        );
        let t = |negative| {
            Value::Time(Time {
                negative,
                hours: 0,
                minutes: 0,
                seconds: 0,
                micros: 0,
                fsp: 0,
            })
        };
        assert_eq!(bytes(&t(true)), bytes(&t(false)));
        assert_ne!(bytes(&Value::Int(1)), bytes(&Value::UInt(1)));
        assert_ne!(
            bytes(&Value::Decimal("-1.00".into())),
            bytes(&Value::Decimal("1.00".into()))
        );
    }

    #[test]
    fn concatenations_do_not_collide() {
        let mut a = Vec::new();
        push_key_bytes(&mut a, &Value::Text("ab".into()));
        push_key_bytes(&mut a, &Value::Text("c".into()));
        let mut b = Vec::new();
        push_key_bytes(&mut b, &Value::Text("a".into()));
        push_key_bytes(&mut b, &Value::Text("bc".into()));
        assert_ne!(a, b);
    }

    #[test]
    fn messages_render_keys_readably() {
        let table = TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: ["id", "name", "blob"]
                .iter()
                .map(|n| Column {
                    name: (*n).into(),
                    type_code: tc::LONG,
                    meta: 0,
                    nullable: false,
                    unsigned: false,
                    collation: None,
                    labels: None,
                })
                .collect(),
            primary_key: vec![0],
            has_names: true,
        };
        let row = vec![
            Value::Int(5),
            Value::Text("it's".into()),
            Value::Bytes(vec![0xca, 0xfe]),
        ];
        assert_eq!(describe_key(&table, &row, &[0, 1]), "(id=5, name='it''s')");
        assert_eq!(
            describe_row(&table, &row),
            "(id=5, name='it''s', blob=0xcafe)"
        );
        let mut s = String::new();
        push_value_text(&mut s, &Value::Text("x".repeat(100)));
        assert_eq!(s.chars().count(), 64 + 3);
    }
}
