//! JSON Lines for `sluice binlog decode` / `tail`, and the semantic value
//! encoding tests compare with.
//!
//! One object per row change, DDL and transaction boundary:
//! `{"kind":"insert"|"update"|"delete","schema":S,"table":T,"before":{..},"after":{..},"pos":"file:offset","gtid":G,"ts":unix_seconds}`.
//! Values: integers exact (full u64), DECIMAL as a string with the column's
//! scale, FLOAT/DOUBLE as numbers, DATE `YYYY-MM-DD`, DATETIME/TIMESTAMP
//! `YYYY-MM-DD HH:MM:SS[.f]` with exactly the column's fractional digits
//! (TIMESTAMP in UTC, zero dates kept), TIME `[-]HHH:MM:SS[.f]`, YEAR integer,
//! text as a string, binary and GEOMETRY as `{"base64":"..."}`, ENUM label,
//! SET labels joined by `,` (the index / bitmask when the table map had no
//! labels), BIT integer, JSON embedded, NULL null. Columns absent from an
//! image (MINIMAL/NOBLOB row images) are omitted. A partial JSON update
//! without its before document is `{"json_diff":[{"op","path","value"}]}`.
//!
//! Written by hand into a reused `String`: decoding benchmarks print every
//! row, and a generic serializer would dominate them.

use std::fmt::Write as _;

use base64::Engine as _;
use sluice_core::value::{push_fraction, push_timestamp};
use sluice_core::{Row, RowChange, TableSchema, Value};

use crate::error::BinlogError;
use crate::events::{Event, EventKind};
use std::io::Write;

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings (and every column name) need no escaping: one scan, one
    // copy.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends one value in the encoding above.
pub fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Null | Value::Absent => out.push_str("null"),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
        // `{:?}` is the shortest text that round-trips, with an exponent
        // for very large/small magnitudes (a 309-digit integer is not a
        // number most JSON readers accept).
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Double(d) if d.is_finite() => {
            let _ = write!(out, "{d:?}");
        }
        // MySQL never stores NaN/inf, but a corrupt value must not produce
        // invalid JSON.
        Value::Float(_) | Value::Double(_) => out.push_str("null"),
        Value::Decimal(s) => push_json_str(out, s),
        Value::Date { year, month, day } => {
            out.push('"');
            push_date(out, *year, *month, *day);
            out.push('"');
        }
        Value::DateTime(dt) => {
            out.push('"');
            push_date(out, dt.year, dt.month, dt.day);
            out.push(' ');
            push_2(out, u32::from(dt.hour));
            out.push(':');
            push_2(out, u32::from(dt.minute));
            out.push(':');
            push_2(out, u32::from(dt.second));
            push_fraction(out, dt.micros, dt.fsp);
            out.push('"');
        }
        Value::Timestamp { secs, micros, fsp } => {
            out.push('"');
            push_timestamp(out, *secs, *micros, *fsp);
            out.push('"');
        }
        Value::Time(t) => {
            let _ = write!(out, "\"{t}\"");
        }
        Value::Year(y) => out.push_str(itoa::Buffer::new().format(*y)),
        Value::Text(s) => push_json_str(out, s),
        Value::Bytes(b) | Value::Geometry(b) => {
            out.push_str("{\"base64\":\"");
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push_str("\"}");
        }
        Value::Enum { label: Some(l), .. } => push_json_str(out, l),
        Value::Enum { index, label: None } => out.push_str(itoa::Buffer::new().format(*index)),
        Value::Set {
            labels: Some(l), ..
        } => push_json_str(out, l),
        Value::Set { bits, labels: None } => out.push_str(itoa::Buffer::new().format(*bits)),
        Value::Bit { bits, .. } => out.push_str(itoa::Buffer::new().format(*bits)),
        Value::Json(text) => out.push_str(text),
        Value::JsonDiff(diff) => {
            out.push_str("{\"json_diff\":");
            out.push_str(diff);
            out.push('}');
        }
    }
}

/// Two decimal digits, zero-padded.
fn push_2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// `YYYY-MM-DD` without going through `core::fmt` (hot in decoding).
fn push_date(out: &mut String, year: u16, month: u8, day: u8) {
    let y = u32::from(year);
    push_2(out, y / 100);
    push_2(out, y % 100);
    out.push('-');
    push_2(out, u32::from(month));
    out.push('-');
    push_2(out, u32::from(day));
}

/// Appends a row image as a JSON object keyed by column name.
pub fn push_row(out: &mut String, table: &TableSchema, row: &Row) {
    out.push('{');
    let mut first = true;
    for (col, v) in table.columns.iter().zip(row) {
        if matches!(v, Value::Absent) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(out, &col.name);
        out.push(':');
        push_value(out, v);
    }
    out.push('}');
}

/// Where an output line came from.
pub struct LineMeta<'a> {
    pub file: &'a str,
    pub offset: u64,
    pub gtid: Option<&'a str>,
    pub ts: u32,
}

fn push_meta(out: &mut String, meta: &LineMeta<'_>) {
    out.push_str(",\"pos\":");
    // "file:offset" as one JSON string.
    push_json_str(out, meta.file);
    out.pop();
    out.push(':');
    out.push_str(itoa::Buffer::new().format(meta.offset));
    out.push('"');
    out.push_str(",\"gtid\":");
    match meta.gtid {
        Some(g) => push_json_str(out, g),
        None => out.push_str("null"),
    }
    out.push_str(",\"ts\":");
    out.push_str(itoa::Buffer::new().format(meta.ts));
    out.push('}');
}

/// One row change line (without the trailing newline).
pub fn push_change(out: &mut String, change: &RowChange, meta: &LineMeta<'_>) {
    out.push_str("{\"kind\":\"");
    out.push_str(change.kind.as_str());
    out.push_str("\",\"schema\":");
    push_json_str(out, &change.table.schema);
    out.push_str(",\"table\":");
    push_json_str(out, &change.table.table);
    if let Some(before) = &change.before {
        out.push_str(",\"before\":");
        push_row(out, &change.table, before);
    }
    if let Some(after) = &change.after {
        out.push_str(",\"after\":");
        push_row(out, &change.table, after);
    }
    push_meta(out, meta);
}

/// A `ddl` or `statement` line.
pub fn push_statement(out: &mut String, kind: &str, schema: &str, sql: &str, meta: &LineMeta<'_>) {
    out.push_str("{\"kind\":");
    push_json_str(out, kind);
    out.push_str(",\"schema\":");
    push_json_str(out, schema);
    out.push_str(",\"sql\":");
    push_json_str(out, sql);
    push_meta(out, meta);
}

/// A `begin` or `commit` line.
pub fn push_boundary(out: &mut String, kind: &str, meta: &LineMeta<'_>) {
    out.push_str("{\"kind\":");
    push_json_str(out, kind);
    push_meta(out, meta);
}

/// Turns events into JSON Lines, remembering the current transaction's GTID:
/// the one rendering shared by `sluice binlog decode|tail`, the tests and
/// the decode benchmark.
#[derive(Default)]
pub struct LinePrinter {
    line: String,
    gtid: Option<String>,
    changes: Vec<sluice_core::RowChange>,
    rows: u64,
}

impl LinePrinter {
    /// Row changes printed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Prints the lines of one event (none for rotations, heartbeats, and
    /// incidents or unreplicable events, which are logged as warnings).
    pub fn print(&mut self, event: &Event, out: &mut impl Write) -> Result<(), BinlogError> {
        let io = |source| BinlogError::Io {
            what: "writing output".into(),
            source,
        };
        self.line.clear();
        fn meta<'a>(event: &'a Event, gtid: Option<&'a str>) -> LineMeta<'a> {
            LineMeta {
                file: &event.file,
                offset: event.offset,
                gtid,
                ts: event.timestamp,
            }
        }
        match &event.kind {
            EventKind::Begin { gtid } => {
                self.gtid = gtid.clone();
                push_boundary(&mut self.line, "begin", &meta(event, self.gtid.as_deref()));
            }
            EventKind::Commit { .. } => {
                push_boundary(&mut self.line, "commit", &meta(event, self.gtid.as_deref()));
                self.gtid = None;
            }
            EventKind::Ddl { gtid, schema, sql } => {
                push_statement(
                    &mut self.line,
                    "ddl",
                    schema,
                    sql,
                    &meta(event, gtid.as_deref()),
                );
            }
            EventKind::Statement { schema, sql, .. } => {
                push_statement(
                    &mut self.line,
                    "statement",
                    schema,
                    sql,
                    &meta(event, self.gtid.as_deref()),
                );
            }
            EventKind::Rows(rows) => {
                self.changes.clear();
                rows.decode(&mut self.changes)
                    .map_err(|source| BinlogError::Row {
                        at: crate::error::At {
                            file: event.file.to_string(),
                            offset: event.offset,
                        },
                        source,
                    })?;
                let m = meta(event, self.gtid.as_deref());
                self.rows += self.changes.len() as u64;
                for change in &self.changes {
                    push_change(&mut self.line, change, &m);
                    self.line.push('\n');
                }
                self.line.pop();
            }
            EventKind::Incident { message } => {
                tracing::warn!(file = %event.file, offset = event.offset, %message, "incident event: the source may have lost events here");
                return Ok(());
            }
            EventKind::Unreplicable { reason } => {
                tracing::warn!(file = %event.file, offset = event.offset, %reason, "skipped");
                return Ok(());
            }
            EventKind::Rotate { .. } | EventKind::Heartbeat => return Ok(()),
        }
        if !self.line.is_empty() {
            self.line.push('\n');
            out.write_all(self.line.as_bytes()).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{DateTime, Time};

    fn enc(v: &Value) -> String {
        let mut s = String::new();
        push_value(&mut s, v);
        s
    }

    #[test]
    fn encodes_each_family() {
        assert_eq!(enc(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(enc(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(enc(&Value::Decimal("-0.12345".into())), "\"-0.12345\"");
        assert_eq!(enc(&Value::Float(42.42)), "42.42");
        assert_eq!(enc(&Value::Double(-8.9)), "-8.9");
        assert_eq!(enc(&Value::Double(f64::NAN)), "null");
        assert_eq!(enc(&Value::Double(f64::MAX)), "1.7976931348623157e308");
        assert_eq!(enc(&Value::Double(2.0)), "2.0");
        assert_eq!(enc(&Value::Float(3.4e38)), "3.4e38");
        assert_eq!(
            enc(&Value::Date {
                year: 0,
                month: 0,
                day: 0
            }),
            "\"0000-00-00\""
        );
        let dt = DateTime {
            year: 2024,
            month: 6,
            day: 15,
            hour: 1,
            minute: 2,
            second: 3,
            micros: 120_000,
            fsp: 2,
        };
        assert_eq!(enc(&Value::DateTime(dt)), "\"2024-06-15 01:02:03.12\"");
        let t = Time {
            negative: true,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 500_000,
            fsp: 3,
        };
        assert_eq!(enc(&Value::Time(t)), "\"-01:02:03.500\"");
        assert_eq!(
            enc(&Value::Timestamp {
                secs: 1_718_454_896,
                micros: 0,
                fsp: 0
            }),
            "\"2024-06-15 12:34:56\""
        );
        assert_eq!(
            enc(&Value::Text("a\"b\\c\n\u{1}é".into())),
            "\"a\\\"b\\\\c\\n\\u0001é\""
        );
        assert_eq!(
            enc(&Value::Bytes(vec![0xca, 0xfe])),
            "{\"base64\":\"yv4=\"}"
        );
        assert_eq!(
            enc(&Value::Set {
                bits: 5,
                labels: Some("a,c".into())
            }),
            "\"a,c\""
        );
        assert_eq!(
            enc(&Value::Bit {
                bits: 513,
                width: 10
            }),
            "513"
        );
        assert_eq!(enc(&Value::Json("{\"a\": 1}".into())), "{\"a\": 1}");
        assert_eq!(enc(&Value::Year(2155)), "2155");
    }
}
