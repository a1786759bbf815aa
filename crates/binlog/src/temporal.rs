//! Temporal row-image formats: DATE, YEAR, the MySQL 5.6.4+ TIME2 /
//! DATETIME2 / TIMESTAMP2, the pre-5.6.4 TIME / DATETIME / TIMESTAMP, and
//! MariaDB's 5.3 "hires" TIME / DATETIME / TIMESTAMP.
//!
//! Invariants: zero and partial-zero dates are kept field by field
//! (`0000-00-00`, `2016-00-28`), the fraction is exact microseconds and the
//! value keeps the column's `fsp`. Every decoder takes exactly the bytes
//! of its value (see the `*_len` functions) and fails instead of guessing
//! when the bytes cannot be a value the server wrote.
//!
//! Formats (from MySQL `mysys/my_time.cc` `my_*_packed_from_binary`, and
//! MariaDB `sql/field.cc` + `sql-common/my_time.c`):
//! * DATE (type 10/14): 3 bytes LE, `day | month << 5 | year << 9`.
//! * YEAR: 1 byte, 0 = the zero year, else `1900 + b`.
//! * TIME (legacy, type 11, no fsp): 3 bytes LE signed `±HHMMSS` as decimal
//!   digits of an integer.
//! * DATETIME (legacy, type 12, no fsp): 8 bytes LE `YYYYMMDDhhmmss`.
//! * TIMESTAMP (legacy, type 7, no fsp): 4 bytes LE seconds since the epoch.
//! * TIME2: 3 bytes BE `hms + 0x800000` (`hour << 12 | minute << 6 |
//!   second`), then `ceil(fsp/2)` bytes of fraction. A negative value stores
//!   its fraction negated against the next integer, so reading it borrows:
//!   `-00:00:00.01` is int part −1 and fraction byte 0xFF.
//! * DATETIME2: 5 bytes BE `ymdhms + 0x80_0000_0000` with
//!   `ymd = (year * 13 + month) << 5 | day`, `ymdhms = ymd << 17 | hms`, then
//!   the fraction.
//! * TIMESTAMP2: 4 bytes **BE** seconds, then the fraction.
//!   For these three the fraction has `ceil(fsp/2)` bytes BE and counts
//!   units of 10^-2 (1–2 digits), 10^-4 (3–4) or 10^-6 (5–6) seconds.
//! * MariaDB hires (types 7/11/12 with `meta` = fsp 1..=6; written when
//!   `mysql56_temporal_format=OFF`): the value is the fraction *scaled to
//!   the column's fsp* (`sec_part_shift`: micros / 10^(6-fsp)):
//!   - TIMESTAMP: 4 bytes BE seconds + `[0,1,1,2,2,3,3][fsp]` bytes BE of
//!     the scaled fraction (`Field_timestamp_hires`);
//!   - DATETIME: `[5,6,6,7,7,7,8][fsp]` bytes BE of
//!     `pack_time(t) / 10^(6-fsp)` where `pack_time` is
//!     `((((((year*13+month)*32+day)*24+hour)*60+minute)*60+second)*10^6
//!     + micros` (`Field_datetime_hires`);
//!   - TIME: `[3,4,4,5,5,5,6][fsp]` bytes BE of the same packing of the
//!     signed duration, scaled, plus the zero point
//!     `(838:59:59 + 1 s) * 10^fsp` (`Field_time_hires`).
//!
//!   Checked against a MariaDB 11.8 capture (zongji `capture_hires`):
//!   `'2024-06-15 12:34:56.789'` → `00 42 2E 00 B3 90 95`,
//!   `'-01:02:03.500'` → `00 B3 CE D4 94`, TIMESTAMP(3) → `66 6D 8A 70 03 15`.
//!   Note that MariaDB's TABLE_MAP carries **no** metadata for these types
//!   (the capture's metadata block is empty), so their fsp has to come from
//!   the schema (`information_schema.COLUMNS.DATETIME_PRECISION`); with
//!   `meta == 0` the legacy layouts above are assumed.

use sluice_core::{DateTime, Time, Value};

/// Why bytes are not a temporal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TemporalError {
    #[error("fractional precision {0} is not 0..=6")]
    BadFsp(u16),
    #[error("fraction out of range")]
    BadFraction,
    #[error("value out of range")]
    OutOfRange,
    #[error("{got} bytes given, the format takes {want}")]
    BadLength { got: usize, want: usize },
}

/// Checks the fsp and the byte count a decoder was given.
fn check_len(b: &[u8], fsp: u8, want: usize) -> Result<(), TemporalError> {
    if fsp > 6 {
        return Err(TemporalError::BadFsp(fsp.into()));
    }
    if b.len() != want {
        return Err(TemporalError::BadLength { got: b.len(), want });
    }
    Ok(())
}

/// Bytes of the fraction of a TIME2/DATETIME2/TIMESTAMP2 with `fsp` digits.
pub const fn frac_len(fsp: u8) -> usize {
    (fsp as usize).div_ceil(2)
}

/// Checks a `meta`-derived fsp.
pub fn fsp(meta: u16) -> Result<u8, TemporalError> {
    if meta > 6 {
        return Err(TemporalError::BadFsp(meta));
    }
    Ok(meta as u8)
}

pub const fn time2_len(fsp: u8) -> usize {
    3 + frac_len(fsp)
}

pub const fn datetime2_len(fsp: u8) -> usize {
    5 + frac_len(fsp)
}

pub const fn timestamp2_len(fsp: u8) -> usize {
    4 + frac_len(fsp)
}

const HIRES_DATETIME_LEN: [usize; 7] = [5, 6, 6, 7, 7, 7, 8];
const HIRES_TIME_LEN: [usize; 7] = [3, 4, 4, 5, 5, 5, 6];
const HIRES_FRAC_LEN: [usize; 7] = [0, 1, 1, 2, 2, 3, 3];
const POW10: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
/// TIME's largest value 838:59:59 plus one second, in seconds.
const TIME_ZERO_POINT_SECS: u64 = 838 * 3600 + 59 * 60 + 59 + 1;

/// Byte length of a MariaDB hires DATETIME(fsp); `fsp` above 6 counts as 6.
pub const fn datetime_hires_len(fsp: u8) -> usize {
    HIRES_DATETIME_LEN[clamp_fsp(fsp)]
}

/// Byte length of a MariaDB hires TIME(fsp); `fsp` above 6 counts as 6.
pub const fn time_hires_len(fsp: u8) -> usize {
    HIRES_TIME_LEN[clamp_fsp(fsp)]
}

/// Byte length of a MariaDB hires TIMESTAMP(fsp); `fsp` above 6 counts as 6.
pub const fn timestamp_hires_len(fsp: u8) -> usize {
    4 + HIRES_FRAC_LEN[clamp_fsp(fsp)]
}

const fn clamp_fsp(fsp: u8) -> usize {
    if fsp > 6 {
        6
    } else {
        fsp as usize
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b))
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b))
}

/// DATE / NEWDATE, 3 bytes.
pub fn date(b: [u8; 3]) -> Value {
    let v = le(&b) as u32;
    Value::Date {
        year: (v >> 9) as u16,
        month: ((v >> 5) & 0x0F) as u8,
        day: (v & 0x1F) as u8,
    }
}

/// YEAR, 1 byte.
pub fn year(b: u8) -> Value {
    Value::Year(if b == 0 { 0 } else { 1900 + u16::from(b) })
}

/// Legacy TIME: 3 bytes LE signed `±HHMMSS`.
pub fn time_legacy(b: [u8; 3]) -> Result<Time, TemporalError> {
    // Sign-extend the 24-bit value.
    let v = (i32::from_le_bytes([b[0], b[1], b[2], 0]) << 8) >> 8;
    let a = v.unsigned_abs();
    let (minutes, seconds) = ((a / 100) % 100, a % 100);
    if minutes > 59 || seconds > 59 {
        return Err(TemporalError::OutOfRange);
    }
    Ok(Time {
        negative: v < 0,
        hours: a / 10_000,
        minutes: minutes as u8,
        seconds: seconds as u8,
        micros: 0,
        fsp: 0,
    })
}

/// Legacy DATETIME: 8 bytes LE `YYYYMMDDhhmmss`.
pub fn datetime_legacy(b: [u8; 8]) -> Result<DateTime, TemporalError> {
    let v = u64::from_le_bytes(b);
    let (d, t) = (v / 1_000_000, v % 1_000_000);
    let year = d / 10_000;
    if year > 9999 {
        return Err(TemporalError::OutOfRange);
    }
    Ok(DateTime {
        year: year as u16,
        month: ((d / 100) % 100) as u8,
        day: (d % 100) as u8,
        hour: (t / 10_000) as u8,
        minute: ((t / 100) % 100) as u8,
        second: (t % 100) as u8,
        micros: 0,
        fsp: 0,
    })
}

/// Legacy TIMESTAMP: 4 bytes LE seconds.
pub fn timestamp_legacy(b: [u8; 4]) -> Value {
    Value::Timestamp {
        secs: u32::from_le_bytes(b),
        micros: 0,
        fsp: 0,
    }
}

/// The unsigned fraction of DATETIME2/TIMESTAMP2 in microseconds.
fn frac_micros(bytes: &[u8]) -> Result<u32, TemporalError> {
    let v = be(bytes) as u32;
    let micros = match bytes.len() {
        0 => 0,
        1 => v * 10_000,
        2 => v * 100,
        _ => v,
    };
    if micros > 999_999 {
        return Err(TemporalError::BadFraction);
    }
    Ok(micros)
}

/// TIME2 with `fsp`; `b` is exactly [`time2_len`] bytes.
pub fn time2(b: &[u8], fsp: u8) -> Result<Time, TemporalError> {
    check_len(b, fsp, time2_len(fsp))?;
    const INT_OFS: i64 = 0x80_0000;
    let mut int = be(&b[..3]) as i64 - INT_OFS;
    let f = &b[3..];
    // Signed microseconds of the fractional part, with the borrow for
    // negative values (the server's "reverse fractional part order").
    let frac: i64 = match f.len() {
        0 => 0,
        1 | 2 => {
            let (raw, span, unit) = if f.len() == 1 {
                (i64::from(f[0]), 0x100, 10_000)
            } else {
                (be(f) as i64, 0x1_0000, 100)
            };
            if int < 0 && raw != 0 {
                int += 1;
                (raw - span) * unit
            } else {
                raw * unit
            }
        }
        _ => {
            // 5..6 digits: the whole 6 bytes are one offset integer.
            let packed = be(b) as i64 - 0x8000_0000_0000;
            let neg = packed < 0;
            let a = packed.unsigned_abs();
            return time_from_packed(neg, a >> 24, a & 0xFF_FFFF, fsp);
        }
    };
    let packed = (int << 24) + frac;
    let a = packed.unsigned_abs();
    time_from_packed(packed < 0, a >> 24, a & 0xFF_FFFF, fsp)
}

fn time_from_packed(negative: bool, hms: u64, micros: u64, fsp: u8) -> Result<Time, TemporalError> {
    if micros > 999_999 {
        return Err(TemporalError::BadFraction);
    }
    Ok(Time {
        negative,
        hours: ((hms >> 12) % (1 << 10)) as u32,
        minutes: ((hms >> 6) % (1 << 6)) as u8,
        seconds: (hms % (1 << 6)) as u8,
        micros: micros as u32,
        fsp,
    })
}

/// DATETIME2 with `fsp`; `b` is exactly [`datetime2_len`] bytes.
pub fn datetime2(b: &[u8], fsp: u8) -> Result<DateTime, TemporalError> {
    check_len(b, fsp, datetime2_len(fsp))?;
    const INT_OFS: u64 = 0x80_0000_0000;
    let raw = be(&b[..5]);
    // A DATETIME is never negative; such bytes are corrupt.
    let ymdhms = raw.checked_sub(INT_OFS).ok_or(TemporalError::OutOfRange)?;
    let micros = frac_micros(&b[5..])?;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    Ok(DateTime {
        year: (ym / 13) as u16,
        month: (ym % 13) as u8,
        day: (ymd % (1 << 5)) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) % (1 << 6)) as u8,
        second: (hms % (1 << 6)) as u8,
        micros,
        fsp,
    })
}

/// TIMESTAMP2 with `fsp`; `b` is exactly [`timestamp2_len`] bytes.
pub fn timestamp2(b: &[u8], fsp: u8) -> Result<Value, TemporalError> {
    check_len(b, fsp, timestamp2_len(fsp))?;
    Ok(Value::Timestamp {
        secs: be(&b[..4]) as u32,
        micros: frac_micros(&b[4..])?,
        fsp,
    })
}

/// The micros of a hires fraction scaled to `fsp` digits.
fn hires_micros(scaled: u64, fsp: u8) -> Result<u32, TemporalError> {
    let micros = scaled * POW10[6 - fsp as usize];
    if micros > 999_999 {
        return Err(TemporalError::BadFraction);
    }
    Ok(micros as u32)
}

/// MariaDB hires TIMESTAMP(fsp); `b` is exactly [`timestamp_hires_len`].
pub fn timestamp_hires(b: &[u8], fsp: u8) -> Result<Value, TemporalError> {
    check_len(b, fsp, timestamp_hires_len(fsp))?;
    Ok(Value::Timestamp {
        secs: be(&b[..4]) as u32,
        micros: hires_micros(be(&b[4..]), fsp)?,
        fsp,
    })
}

/// MariaDB hires DATETIME(fsp); `b` is exactly [`datetime_hires_len`].
pub fn datetime_hires(b: &[u8], fsp: u8) -> Result<DateTime, TemporalError> {
    check_len(b, fsp, datetime_hires_len(fsp))?;
    let scale = POW10[6 - fsp as usize];
    let packed = be(b);
    // Undo `pack_time`, as `unpack_time` does.
    let micros = (packed % POW10[fsp as usize]) * scale;
    let mut rest = packed / POW10[fsp as usize];
    let mut next = |radix: u64| {
        let v = rest % radix;
        rest /= radix;
        v
    };
    let second = next(60);
    let minute = next(60);
    let hour = next(24);
    let day = next(32);
    let month = next(13);
    if rest > 9999 {
        return Err(TemporalError::OutOfRange);
    }
    Ok(DateTime {
        year: rest as u16,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        micros: micros as u32,
        fsp,
    })
}

/// MariaDB hires TIME(fsp); `b` is exactly [`time_hires_len`].
pub fn time_hires(b: &[u8], fsp: u8) -> Result<Time, TemporalError> {
    check_len(b, fsp, time_hires_len(fsp))?;
    let zero_point = (TIME_ZERO_POINT_SECS * POW10[fsp as usize]) as i64;
    let scaled = be(b) as i64 - zero_point;
    let negative = scaled < 0;
    let a = scaled.unsigned_abs();
    let unit = POW10[fsp as usize];
    let secs = a / unit;
    let micros = (a % unit) * POW10[6 - fsp as usize];
    let hours = secs / 3600;
    if hours > u64::from(u32::MAX) {
        return Err(TemporalError::OutOfRange);
    }
    Ok(Time {
        negative,
        hours: hours as u32,
        minutes: ((secs / 60) % 60) as u8,
        seconds: (secs % 60) as u8,
        micros: micros as u32,
        fsp,
    })
}

#[cfg(test)]
mod tests;
