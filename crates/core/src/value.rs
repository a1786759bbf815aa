//! Typed column values that keep the server's real value.
//!
//! Invariant: a [`Value`] decoded from the binlog, written to a target and read
//! back is the same value. So nothing here is lossy: unsigned integers stay
//! unsigned, DECIMAL is its exact digits, temporals keep their fractional
//! digits *and* their declared precision (`fsp`), zero dates keep their zero
//! fields, ENUM/SET keep the stored index/bitmask next to the label, and text
//! is UTF-8 decoded from the column's own charset.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One column value of one row image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    /// The column is not in this row image (MINIMAL/NOBLOB images). sluice
    /// requires FULL images to replicate; decoders still represent it.
    Absent,
    /// TINYINT..BIGINT, signed.
    Int(i64),
    /// TINYINT..BIGINT UNSIGNED.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text with exactly the column's scale, e.g. `-12.3400`.
    Decimal(String),
    /// DATE; zero parts allowed (`0000-00-00`, `2015-00-21`).
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// DATETIME with `fsp` fractional digits (0..=6); zero parts allowed.
    DateTime(DateTime),
    /// TIMESTAMP as seconds since the Unix epoch in UTC; `secs == 0` (with
    /// zero micros) is MySQL's zero timestamp `0000-00-00 00:00:00`.
    Timestamp {
        secs: u32,
        micros: u32,
        fsp: u8,
    },
    /// TIME, which is a signed duration up to ±838:59:59.
    Time(Time),
    /// YEAR; 0 is the zero year.
    Year(u16),
    /// Text decoded to UTF-8 from the column's charset.
    Text(String),
    /// Binary strings (BINARY/VARBINARY/BLOB), VECTOR, and text whose bytes
    /// are not valid in the column's charset.
    Bytes(Vec<u8>),
    /// ENUM: the stored index (1-based; 0 = the empty invalid value) and its
    /// label when the table map carried the labels.
    Enum {
        index: u16,
        label: Option<Arc<str>>,
    },
    /// SET: the stored bitmask and the labels of the set bits in declaration
    /// order, joined by `,`, when the table map carried the labels.
    Set {
        bits: u64,
        labels: Option<String>,
    },
    /// BIT(width): the bits as an unsigned integer.
    Bit {
        bits: u64,
        width: u8,
    },
    /// JSON as text: MySQL binary JSON rendered in MySQL's own text form
    /// (exact integers, doubles keep `.0`, decimals unquoted), or MariaDB's
    /// JSON (a LONGTEXT) as stored.
    Json(String),
    /// GEOMETRY: 4-byte SRID followed by WKB, as stored.
    Geometry(Vec<u8>),
    /// A MySQL partial JSON update (PARTIAL_UPDATE_ROWS) whose before image
    /// did not carry the document (`binlog_row_image` not FULL): the diff as
    /// the server logged it, rendered as a JSON array of
    /// `{"op","path"[,"value"]}`. It is not a document and cannot be applied
    /// to a target; the pipeline refuses it.
    JsonDiff(String),
}

/// A DATETIME value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
    pub fsp: u8,
}

/// A TIME value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub negative: bool,
    pub hours: u32,
    pub minutes: u8,
    pub seconds: u8,
    pub micros: u32,
    pub fsp: u8,
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Approximate heap + inline size, for bounding queues by bytes.
    pub fn size_hint(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::JsonDiff(s) => s.len(),
                Value::Bytes(b) | Value::Geometry(b) => b.len(),
                Value::Set {
                    labels: Some(l), ..
                } => l.len(),
                _ => 0,
            }
    }
}

/// Appends `micros` as exactly `fsp` fractional digits (with the dot), as
/// MySQL prints a column of that precision.
pub fn push_fraction(out: &mut String, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    out.push('.');
    let mut div = 100_000;
    for _ in 0..fsp.min(6) {
        out.push(char::from(b'0' + (micros / div % 10) as u8));
        div /= 10;
    }
}

impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(26);
        let _ = write!(
            s,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        push_fraction(&mut s, self.micros, self.fsp);
        f.write_str(&s)
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(18);
        // "-00:00:00" is not a value: negative zero prints as zero.
        let zero = self.hours == 0 && self.minutes == 0 && self.seconds == 0 && self.micros == 0;
        if self.negative && !zero {
            s.push('-');
        }
        let _ = write!(
            s,
            "{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        );
        push_fraction(&mut s, self.micros, self.fsp);
        f.write_str(&s)
    }
}

/// Renders a Unix timestamp as `YYYY-MM-DD HH:MM:SS[.f]` in UTC; 0 is the
/// zero timestamp.
pub fn format_timestamp(secs: u32, micros: u32, fsp: u8) -> String {
    let mut s = String::with_capacity(26);
    push_timestamp(&mut s, secs, micros, fsp);
    s
}

/// Appends [`format_timestamp`]'s text to `s` without allocating.
pub fn push_timestamp(s: &mut String, secs: u32, micros: u32, fsp: u8) {
    if secs == 0 && micros == 0 {
        s.push_str("0000-00-00 00:00:00");
    } else {
        let days = i64::from(secs / 86_400);
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            s,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        );
    }
    push_fraction(s, micros, fsp);
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_text_forms() {
        let dt = DateTime {
            year: 2024,
            month: 6,
            day: 15,
            hour: 12,
            minute: 34,
            second: 56,
            micros: 789_000,
            fsp: 3,
        };
        assert_eq!(dt.to_string(), "2024-06-15 12:34:56.789");
        let zero = DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
            fsp: 4,
        };
        assert_eq!(zero.to_string(), "0000-00-00 00:00:00.0000");
        let t = Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(t.to_string(), "-838:59:59");
        let negzero = Time {
            negative: true,
            hours: 0,
            minutes: 0,
            seconds: 0,
            micros: 0,
            fsp: 6,
        };
        assert_eq!(negzero.to_string(), "00:00:00.000000");
        assert_eq!(format_timestamp(1_718_454_896, 0, 0), "2024-06-15 12:34:56");
        assert_eq!(
            format_timestamp(2_147_483_647, 999_999, 6),
            "2038-01-19 03:14:07.999999"
        );
        assert_eq!(format_timestamp(0, 0, 4), "0000-00-00 00:00:00.0000");
        assert_eq!(format_timestamp(1, 0, 0), "1970-01-01 00:00:01");
    }
}
