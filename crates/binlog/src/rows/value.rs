//! Decoding one column value from a row image: the per-type plan (widths,
//! length prefixes, metadata checks) and the value it yields.

use std::io::Read as _;
use std::sync::Arc;

use sluice_core::schema::type_code as tc;
use sluice_core::{Column, Value};

use super::{RowError, RowErrorReason};
use crate::charset::{self, Charset};
use crate::decimal::{self, DecimalError};
use crate::temporal::{self, TemporalError};

/// A failure inside the decoder, before the column is named.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) at: usize,
    pub(super) reason: RowErrorReason,
}

impl Fail {
    pub(crate) fn new(at: usize, reason: RowErrorReason) -> Self {
        Fail { at, reason }
    }
}

/// A bounds-checked reader over the rows data.
pub(super) struct Cur<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cur<'a> {
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        match self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
        {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Fail::new(
                self.pos,
                RowErrorReason::Truncated {
                    needed: n,
                    available: self.buf.len().saturating_sub(self.pos),
                },
            )),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A little-endian unsigned integer of `n` (1..=8) bytes.
    #[inline]
    fn uint_le(&mut self, n: usize) -> Result<u64, Fail> {
        let s = self.take(n)?;
        Ok(s.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    /// A length-prefixed byte string (`prefix` = 1..=4 bytes LE).
    #[inline]
    pub(crate) fn prefixed(&mut self, prefix: u8) -> Result<&'a [u8], Fail> {
        let len = self.uint_le(usize::from(prefix))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len)
    }

    /// A length-encoded integer (`net_field_length`).
    pub(crate) fn packed_int(&mut self) -> Result<u64, Fail> {
        let at = self.pos;
        let [first] = self.array::<1>()?;
        match first {
            0..=250 => Ok(u64::from(first)),
            252 => self.uint_le(2),
            253 => self.uint_le(3),
            254 => self.uint_le(8),
            _ => Err(Fail::new(at, RowErrorReason::BadPackedInt(first))),
        }
    }
}

/// How to decode one column, resolved once per rows event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Plan {
    /// MYSQL_TYPE_NULL: no bytes.
    Null,
    I8,
    U8,
    I16,
    U16,
    I24,
    U24,
    I32,
    U32,
    I64,
    U64,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Year,
    Date,
    TimeLegacy,
    DateTimeLegacy,
    TimestampLegacy,
    Time2(u8),
    DateTime2(u8),
    Timestamp2(u8),
    TimeHires(u8),
    DateTimeHires(u8),
    TimestampHires(u8),
    Bit {
        bytes: u8,
        width: u8,
    },
    Enum {
        bytes: u8,
    },
    Set {
        bytes: u8,
    },
    /// CHAR/VARCHAR/BINARY/VARBINARY/TEXT/BLOB: `prefix` length bytes, then
    /// text in `charset` (or bytes).
    Text {
        prefix: u8,
        charset: Option<Charset>,
    },
    /// BINARY(n): logged without its trailing 0x00 pad, which the server
    /// restores on read (`Field_string::unpack`); so do we, to `len` bytes.
    Binary {
        prefix: u8,
        len: u16,
    },
    /// MariaDB VARCHAR/BLOB COMPRESSED.
    Compressed {
        prefix: u8,
        charset: Option<Charset>,
    },
    Geometry {
        prefix: u8,
    },
    Json {
        prefix: u8,
    },
    Vector {
        prefix: u8,
    },
    /// A column whose values cannot be decoded; only an error when a
    /// non-NULL value of it is met.
    Invalid(Invalid),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Invalid {
    OldDecimal,
    Unsupported(u8),
    BadMeta { type_code: u8, meta: u16 },
    Decimal(DecimalError),
    Temporal(TemporalError),
}

impl Invalid {
    fn reason(self) -> RowErrorReason {
        match self {
            Invalid::OldDecimal => RowErrorReason::OldDecimal,
            Invalid::Unsupported(t) => RowErrorReason::UnsupportedType(t),
            Invalid::BadMeta { type_code, meta } => RowErrorReason::BadMeta { type_code, meta },
            Invalid::Decimal(e) => RowErrorReason::Decimal(e),
            Invalid::Temporal(e) => RowErrorReason::Temporal(e),
        }
    }
}

/// The length-prefix width of a blob-like column: `meta` bytes (1..=4), or
/// `default` when the metadata is missing.
pub(super) fn blob_prefix(col: &Column, default: u8) -> Result<u8, Invalid> {
    match col.meta {
        0 => Ok(default),
        m @ 1..=4 => Ok(m as u8),
        meta => Err(Invalid::BadMeta {
            type_code: col.type_code,
            meta,
        }),
    }
}

/// 1-byte length prefix when the maximum byte length is below 256.
pub(super) fn varchar_prefix(max_len: u16) -> u8 {
    if max_len < 256 {
        1
    } else {
        2
    }
}

pub(super) fn enum_bytes(col: &Column, storage: u8) -> Result<u8, Invalid> {
    match storage {
        1 | 2 => Ok(storage),
        _ => match &col.labels {
            Some(l) => Ok(if l.len() < 256 { 1 } else { 2 }),
            None => Err(Invalid::BadMeta {
                type_code: col.type_code,
                meta: col.meta,
            }),
        },
    }
}

pub(super) fn set_bytes(col: &Column, storage: u8) -> Result<u8, Invalid> {
    match storage {
        1..=8 => Ok(storage),
        _ => match &col.labels {
            Some(l) => Ok(match l.len().div_ceil(8) {
                0 => 1,
                n @ 1..=4 => n as u8,
                _ => 8,
            }),
            None => Err(Invalid::BadMeta {
                type_code: col.type_code,
                meta: col.meta,
            }),
        },
    }
}

pub(super) fn temporal_plan(meta: u16, legacy: Plan, hires: fn(u8) -> Plan) -> Plan {
    if meta == 0 {
        return legacy;
    }
    match temporal::fsp(meta) {
        Ok(f) => hires(f),
        Err(e) => Plan::Invalid(Invalid::Temporal(e)),
    }
}

pub(super) fn fsp_plan(meta: u16, make: fn(u8) -> Plan) -> Plan {
    match temporal::fsp(meta) {
        Ok(f) => make(f),
        Err(e) => Plan::Invalid(Invalid::Temporal(e)),
    }
}

impl Plan {
    pub(crate) fn of(col: &Column) -> Plan {
        match Self::try_of(col) {
            Ok(p) => p,
            Err(e) => Plan::Invalid(e),
        }
    }

    fn try_of(col: &Column) -> Result<Plan, Invalid> {
        let meta = col.meta;
        let u = col.unsigned;
        Ok(match col.type_code {
            tc::TINY => {
                if u {
                    Plan::U8
                } else {
                    Plan::I8
                }
            }
            tc::SHORT => {
                if u {
                    Plan::U16
                } else {
                    Plan::I16
                }
            }
            tc::INT24 => {
                if u {
                    Plan::U24
                } else {
                    Plan::I24
                }
            }
            tc::LONG => {
                if u {
                    Plan::U32
                } else {
                    Plan::I32
                }
            }
            tc::LONGLONG => {
                if u {
                    Plan::U64
                } else {
                    Plan::I64
                }
            }
            tc::FLOAT => Plan::Float,
            tc::DOUBLE => Plan::Double,
            tc::NULL => Plan::Null,
            tc::DECIMAL => return Err(Invalid::OldDecimal),
            tc::NEWDECIMAL => {
                let (precision, scale) = ((meta >> 8) as u8, meta as u8);
                decimal::binary_size(precision, scale).map_err(Invalid::Decimal)?;
                Plan::Decimal { precision, scale }
            }
            tc::YEAR => Plan::Year,
            tc::DATE | tc::NEWDATE => Plan::Date,
            tc::TIME => temporal_plan(meta, Plan::TimeLegacy, Plan::TimeHires),
            tc::DATETIME => temporal_plan(meta, Plan::DateTimeLegacy, Plan::DateTimeHires),
            tc::TIMESTAMP => temporal_plan(meta, Plan::TimestampLegacy, Plan::TimestampHires),
            tc::TIME2 => fsp_plan(meta, Plan::Time2),
            tc::DATETIME2 => fsp_plan(meta, Plan::DateTime2),
            tc::TIMESTAMP2 => fsp_plan(meta, Plan::Timestamp2),
            tc::BIT => {
                let (rem, whole) = (meta & 0xFF, meta >> 8);
                let width = whole * 8 + rem;
                if rem >= 8 || width == 0 || width > 64 {
                    return Err(Invalid::BadMeta {
                        type_code: tc::BIT,
                        meta,
                    });
                }
                Plan::Bit {
                    bytes: width.div_ceil(8) as u8,
                    width: width as u8,
                }
            }
            tc::ENUM => Plan::Enum {
                bytes: enum_bytes(col, meta as u8)?,
            },
            tc::SET => Plan::Set {
                bytes: set_bytes(col, meta as u8)?,
            },
            tc::STRING => {
                let (b0, b1) = ((meta >> 8) as u8, meta & 0xFF);
                // A STRING whose real type is ENUM/SET that the schema did
                // not rewrite: decode it as the real type.
                if b0 == tc::ENUM {
                    return Ok(Plan::Enum {
                        bytes: enum_bytes(col, b1 as u8)?,
                    });
                }
                if b0 == tc::SET {
                    return Ok(Plan::Set {
                        bytes: set_bytes(col, b1 as u8)?,
                    });
                }
                // CHAR(n) longer than 255 bytes keeps its two high length
                // bits, inverted, in the real-type byte (bug #37426).
                let len = if meta >= 256 && (b0 & 0x30) != 0x30 {
                    b1 | ((u16::from(b0 & 0x30) ^ 0x30) << 4)
                } else if meta >= 256 {
                    b1
                } else {
                    meta
                };
                match Charset::of_column(col) {
                    Some(Charset::Binary) => Plan::Binary {
                        prefix: varchar_prefix(len),
                        len,
                    },
                    charset => Plan::Text {
                        prefix: varchar_prefix(len),
                        charset,
                    },
                }
            }
            tc::VARCHAR | tc::VAR_STRING => Plan::Text {
                prefix: varchar_prefix(meta),
                charset: Charset::of_column(col),
            },
            tc::VARCHAR_COMPRESSED => Plan::Compressed {
                prefix: varchar_prefix(meta),
                charset: Charset::of_column(col),
            },
            tc::TINY_BLOB | tc::BLOB | tc::MEDIUM_BLOB | tc::LONG_BLOB => {
                let default = match col.type_code {
                    tc::TINY_BLOB => 1,
                    tc::BLOB => 2,
                    tc::MEDIUM_BLOB => 3,
                    _ => 4,
                };
                Plan::Text {
                    prefix: blob_prefix(col, default)?,
                    charset: Charset::of_column(col),
                }
            }
            tc::BLOB_COMPRESSED => Plan::Compressed {
                prefix: blob_prefix(col, 2)?,
                charset: Charset::of_column(col),
            },
            tc::GEOMETRY => Plan::Geometry {
                prefix: blob_prefix(col, 4)?,
            },
            tc::JSON => Plan::Json {
                prefix: blob_prefix(col, 4)?,
            },
            tc::VECTOR => Plan::Vector {
                prefix: blob_prefix(col, 4)?,
            },
            other => return Err(Invalid::Unsupported(other)),
        })
    }
}

/// Decodes one non-NULL value of `column` from the front of `data`;
/// returns it with the number of bytes it took. Errors name the column by
/// its name and give the offset within `data`.
pub fn decode_value(column: &Column, data: &[u8]) -> Result<(Value, usize), RowError> {
    let mut cur = Cur { buf: data, pos: 0 };
    match decode_one(Plan::of(column), column, &mut cur) {
        Ok(v) => Ok((v, cur.pos)),
        Err(f) => Err(RowError {
            offset: f.at,
            column: column.name.clone(),
            reason: f.reason,
        }),
    }
}

/// Decodes one non-NULL value.
#[inline]
pub(super) fn decode_one(plan: Plan, col: &Column, cur: &mut Cur<'_>) -> Result<Value, Fail> {
    let start = cur.pos;
    let temporal_fail = |e: TemporalError| Fail::new(start, RowErrorReason::Temporal(e));
    Ok(match plan {
        Plan::I8 => Value::Int(i64::from(i8::from_le_bytes(cur.array()?))),
        Plan::U8 => Value::UInt(u64::from(u8::from_le_bytes(cur.array()?))),
        Plan::I16 => Value::Int(i64::from(i16::from_le_bytes(cur.array()?))),
        Plan::U16 => Value::UInt(u64::from(u16::from_le_bytes(cur.array()?))),
        Plan::I24 => {
            let [a, b, c] = cur.array()?;
            Value::Int(i64::from((i32::from_le_bytes([a, b, c, 0]) << 8) >> 8))
        }
        Plan::U24 => {
            let [a, b, c] = cur.array()?;
            Value::UInt(u64::from(u32::from_le_bytes([a, b, c, 0])))
        }
        Plan::I32 => Value::Int(i64::from(i32::from_le_bytes(cur.array()?))),
        Plan::U32 => Value::UInt(u64::from(u32::from_le_bytes(cur.array()?))),
        Plan::I64 => Value::Int(i64::from_le_bytes(cur.array()?)),
        Plan::U64 => Value::UInt(u64::from_le_bytes(cur.array()?)),
        Plan::Float => Value::Float(f32::from_le_bytes(cur.array()?)),
        Plan::Double => Value::Double(f64::from_le_bytes(cur.array()?)),
        Plan::Null => Value::Null,
        Plan::Decimal { precision, scale } => {
            let rest = cur.buf.get(cur.pos..).unwrap_or_default();
            let mut s = String::new();
            match decimal::decode_into(rest, precision, scale, &mut s) {
                Ok(n) => {
                    cur.pos += n;
                    Value::Decimal(s)
                }
                Err(DecimalError::Truncated { needed, available }) => {
                    return Err(Fail::new(
                        start,
                        RowErrorReason::Truncated { needed, available },
                    ))
                }
                Err(e) => return Err(Fail::new(start, RowErrorReason::Decimal(e))),
            }
        }
        Plan::Year => {
            let [b] = cur.array()?;
            temporal::year(b)
        }
        Plan::Date => temporal::date(cur.array()?),
        Plan::TimeLegacy => {
            Value::Time(temporal::time_legacy(cur.array()?).map_err(temporal_fail)?)
        }
        Plan::DateTimeLegacy => {
            Value::DateTime(temporal::datetime_legacy(cur.array()?).map_err(temporal_fail)?)
        }
        Plan::TimestampLegacy => temporal::timestamp_legacy(cur.array()?),
        Plan::Time2(fsp) => {
            let b = cur.take(temporal::time2_len(fsp))?;
            Value::Time(temporal::time2(b, fsp).map_err(temporal_fail)?)
        }
        Plan::DateTime2(fsp) => {
            let b = cur.take(temporal::datetime2_len(fsp))?;
            Value::DateTime(temporal::datetime2(b, fsp).map_err(temporal_fail)?)
        }
        Plan::Timestamp2(fsp) => {
            let b = cur.take(temporal::timestamp2_len(fsp))?;
            temporal::timestamp2(b, fsp).map_err(temporal_fail)?
        }
        Plan::TimeHires(fsp) => {
            let b = cur.take(temporal::time_hires_len(fsp))?;
            Value::Time(temporal::time_hires(b, fsp).map_err(temporal_fail)?)
        }
        Plan::DateTimeHires(fsp) => {
            let b = cur.take(temporal::datetime_hires_len(fsp))?;
            Value::DateTime(temporal::datetime_hires(b, fsp).map_err(temporal_fail)?)
        }
        Plan::TimestampHires(fsp) => {
            let b = cur.take(temporal::timestamp_hires_len(fsp))?;
            temporal::timestamp_hires(b, fsp).map_err(temporal_fail)?
        }
        Plan::Bit { bytes, width } => {
            let b = cur.take(usize::from(bytes))?;
            Value::Bit {
                bits: b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)),
                width,
            }
        }
        Plan::Enum { bytes } => {
            let index = cur.uint_le(usize::from(bytes))? as u16;
            Value::Enum {
                index,
                label: enum_label(col, index),
            }
        }
        Plan::Set { bytes } => {
            let bits = cur.uint_le(usize::from(bytes))?;
            Value::Set {
                bits,
                labels: set_labels(col, bits),
            }
        }
        Plan::Text { prefix, charset } => charset::decode_text(cur.prefixed(prefix)?, charset),
        Plan::Binary { prefix, len } => {
            let raw = cur.prefixed(prefix)?;
            let mut v = Vec::with_capacity(raw.len().max(usize::from(len)));
            v.extend_from_slice(raw);
            v.resize(raw.len().max(usize::from(len)), 0);
            Value::Bytes(v)
        }
        Plan::Compressed { prefix, charset } => {
            let payload = cur.prefixed(prefix)?;
            match decompress_column(payload) {
                Ok(Payload::Stored(raw)) => charset::decode_text(raw, charset),
                Ok(Payload::Inflated(v)) => charset::decode_text_owned(v, charset),
                Err(msg) => return Err(Fail::new(start, RowErrorReason::Compressed(msg))),
            }
        }
        Plan::Geometry { prefix } => Value::Geometry(cur.prefixed(prefix)?.to_vec()),
        Plan::Vector { prefix } => Value::Bytes(cur.prefixed(prefix)?.to_vec()),
        Plan::Json { prefix } => {
            let doc = cur.prefixed(prefix)?;
            match crate::jsonb::jsonb_to_text(doc) {
                Ok(s) => Value::Json(s),
                Err(e) => return Err(Fail::new(start, RowErrorReason::Json(e.to_string()))),
            }
        }
        Plan::Invalid(inv) => return Err(Fail::new(start, inv.reason())),
    })
}

/// The label of ENUM index `index`: `""` for the invalid value 0, `None`
/// when the labels are unknown or the index is beyond them.
pub(super) fn enum_label(col: &Column, index: u16) -> Option<Arc<str>> {
    let labels = col.labels.as_ref()?;
    if index == 0 {
        return Some(Arc::from(""));
    }
    labels.get(usize::from(index) - 1).cloned()
}

/// The labels of the set bits, in declaration order, joined by `,`.
pub(super) fn set_labels(col: &Column, bits: u64) -> Option<String> {
    let labels = col.labels.as_ref()?;
    let mut s = String::new();
    for (i, label) in labels.iter().enumerate().take(64) {
        if bits >> i & 1 == 1 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(label);
        }
    }
    Some(s)
}

/// The value of a MariaDB compressed column.
pub(super) enum Payload<'a> {
    Stored(&'a [u8]),
    Inflated(Vec<u8>),
}

/// Uncompresses a MariaDB compressed column value (see the module docs).
pub(super) fn decompress_column(payload: &[u8]) -> Result<Payload<'_>, String> {
    let Some((&header, rest)) = payload.split_first() else {
        return Ok(Payload::Stored(payload));
    };
    match header >> 4 {
        0 => return Ok(Payload::Stored(rest)),
        8 => {}
        method => {
            return Err(format!(
                "unknown compression method {method} (header {header:#04x})"
            ))
        }
    }
    let len_bytes = usize::from(header & 0x07);
    let Some((len_be, stream)) = rest.split_at_checked(len_bytes) else {
        return Err(format!(
            "header {header:#04x} announces a {len_bytes}-byte length, {} bytes follow",
            rest.len()
        ));
    };
    let original = len_be.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
    if original > u64::from(u32::MAX) {
        return Err(format!("original length {original} exceeds 4 GiB"));
    }
    let mut out = Vec::with_capacity(original.min(1 << 20) as usize);
    // Read at most one byte more than announced, to detect a longer stream
    // without inflating a bomb.
    let read = if header & 0x08 != 0 {
        flate2::read::DeflateDecoder::new(stream)
            .take(original + 1)
            .read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(stream)
            .take(original + 1)
            .read_to_end(&mut out)
    };
    if let Err(e) = read {
        return Err(format!("inflate failed: {e}"));
    }
    if out.len() as u64 != original {
        return Err(format!(
            "inflated to {} bytes, header says {original}",
            out.len()
        ));
    }
    Ok(Payload::Inflated(out))
}
