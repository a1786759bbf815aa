//! Binary-protocol values of a snapshot read → [`Value`]s, and key values
//! back to statement parameters.
//!
//! The session runs with `time_zone='+00:00'`, so TIMESTAMP fields are UTC
//! and become DATETIME-shaped values whose text the target session (also
//! UTC) reads back as the same instant. Text columns arrive as UTF-8
//! (`NAMES utf8mb4`); ENUM and SET arrive as their labels, which is how the
//! loader writes them anyway.

use mysql_async::Value as My;
use sluice_core::schema::type_code as tc;
use sluice_core::value::{DateTime, Time};
use sluice_core::{Row, TableSchema, Value};

/// One result row in the table's column order.
pub(super) fn row(schema: &TableSchema, raw: mysql_async::Row) -> Result<Row, String> {
    let raw = raw.unwrap();
    if raw.len() != schema.columns.len() {
        return Err(format!(
            "{} values for {} columns",
            raw.len(),
            schema.columns.len()
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (col, v) in schema.columns.iter().zip(raw) {
        out.push(value(col, v).map_err(|why| format!("column `{}`: {why}", col.name))?);
    }
    Ok(out)
}

fn value(col: &sluice_core::schema::Column, v: My) -> Result<Value, String> {
    let fsp = (col.meta.min(6)) as u8;
    Ok(match (col.type_code, v) {
        (_, My::NULL) => Value::Null,
        (tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG, My::Int(i)) => {
            if col.unsigned {
                Value::UInt(i as u64)
            } else {
                Value::Int(i)
            }
        }
        (tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG, My::UInt(u)) => {
            if col.unsigned {
                Value::UInt(u)
            } else {
                Value::Int(u as i64)
            }
        }
        (tc::YEAR, My::Int(i)) => Value::Year(i as u16),
        (tc::YEAR, My::UInt(u)) => Value::Year(u as u16),
        (tc::FLOAT, My::Float(f)) => Value::Float(f),
        (tc::FLOAT, My::Double(d)) => Value::Float(d as f32),
        (tc::DOUBLE, My::Double(d)) => Value::Double(d),
        (tc::DOUBLE, My::Float(f)) => Value::Double(f64::from(f)),
        (tc::NEWDECIMAL, My::Bytes(b)) => Value::Decimal(utf8(b)?),
        (tc::DATE, My::Date(y, m, d, ..)) => Value::Date {
            year: y,
            month: m,
            day: d,
        },
        (tc::DATETIME2 | tc::TIMESTAMP2, My::Date(y, mo, d, h, mi, s, us)) => {
            Value::DateTime(DateTime {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
                fsp,
            })
        }
        (tc::TIME2, My::Time(negative, days, h, m, s, us)) => Value::Time(Time {
            negative,
            hours: days * 24 + u32::from(h),
            minutes: m,
            seconds: s,
            micros: us,
            fsp,
        }),
        (tc::BIT, My::Bytes(b)) => {
            let width = u8::try_from(b.len() * 8).unwrap_or(64).min(64);
            Value::Bit {
                bits: b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
                width,
            }
        }
        (tc::GEOMETRY, My::Bytes(b)) => Value::Geometry(b),
        (tc::JSON, My::Bytes(b)) => Value::Json(utf8(b)?),
        (_, My::Bytes(b)) if col.is_text() => match String::from_utf8(b) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        (_, My::Bytes(b)) => Value::Bytes(b),
        (_, My::Int(i)) => Value::Int(i),
        (_, My::UInt(u)) => Value::UInt(u),
        (_, My::Double(d)) => Value::Double(d),
        (_, My::Float(f)) => Value::Float(f),
        (code, other) => return Err(format!("unexpected {other:?} for type code {code}")),
    })
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|_| "not UTF-8".to_string())
}

/// A chunk-key value as a statement parameter.
pub(super) fn param(v: &Value) -> My {
    match v {
        Value::Null | Value::Absent => My::NULL,
        Value::Int(i) => My::Int(*i),
        Value::UInt(u) => My::UInt(*u),
        Value::Float(f) => My::Float(*f),
        Value::Double(d) => My::Double(*d),
        Value::Year(y) => My::UInt(u64::from(*y)),
        Value::Date { year, month, day } => My::Date(*year, *month, *day, 0, 0, 0, 0),
        Value::DateTime(d) => {
            My::Date(d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros)
        }
        Value::Time(t) => My::Time(
            t.negative,
            t.hours / 24,
            (t.hours % 24) as u8,
            t.minutes,
            t.seconds,
            t.micros,
        ),
        Value::Bit { bits, .. } => My::UInt(*bits),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::JsonDiff(s) => {
            My::Bytes(s.as_bytes().to_vec())
        }
        Value::Bytes(b) | Value::Geometry(b) => My::Bytes(b.clone()),
        Value::Enum { label: Some(l), .. } => My::Bytes(l.as_bytes().to_vec()),
        Value::Enum { index, .. } => My::UInt(u64::from(*index)),
        Value::Set {
            labels: Some(l), ..
        } => My::Bytes(l.as_bytes().to_vec()),
        Value::Set { bits, .. } => My::UInt(*bits),
        Value::Timestamp { secs, .. } => My::UInt(u64::from(*secs)),
    }
}

/// The labels of `'a','b''c'` (an ENUM/SET definition's inside).
pub(super) fn split_labels(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            (true, '\'') => {
                quoted = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unquote() {
        assert_eq!(split_labels("'a','b''c',''"), vec!["a", "b'c", ""]);
    }
}
