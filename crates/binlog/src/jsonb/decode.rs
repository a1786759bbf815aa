//! The binary format (WL#8132, `sql-common/json_binary.cc`): a bounds-checked
//! reader that hands a document to a [`Sink`] as a stream of events, and the
//! text MySQL gives OPAQUE values (decimals, temporals, base64 data).
//!
//! Every read is checked against the enclosing container and charged against
//! the input length (see the parent module's "Defences").

use base64::Engine as _;

use super::text::write_quoted;
use super::{malformed, JsonError, Scalar, Sink, MAX_DEPTH};

// Value type bytes of the binary format.
pub(super) const SMALL_OBJECT: u8 = 0x00;
pub(super) const LARGE_OBJECT: u8 = 0x01;
pub(super) const SMALL_ARRAY: u8 = 0x02;
pub(super) const LARGE_ARRAY: u8 = 0x03;
pub(super) const LITERAL: u8 = 0x04;
pub(super) const INT16: u8 = 0x05;
pub(super) const UINT16: u8 = 0x06;
pub(super) const INT32: u8 = 0x07;
pub(super) const UINT32: u8 = 0x08;
pub(super) const INT64: u8 = 0x09;
pub(super) const UINT64: u8 = 0x0a;
pub(super) const DOUBLE: u8 = 0x0b;
pub(super) const STRING: u8 = 0x0c;
pub(super) const OPAQUE: u8 = 0x0f;

// Literal values.
pub(super) const LITERAL_NULL: u8 = 0x00;
pub(super) const LITERAL_TRUE: u8 = 0x01;
pub(super) const LITERAL_FALSE: u8 = 0x02;

// `enum_field_types` of OPAQUE values that MySQL renders specially.
pub(super) const FIELD_TIMESTAMP: u8 = 7;
pub(super) const FIELD_DATE: u8 = 10;
pub(super) const FIELD_TIME: u8 = 11;
pub(super) const FIELD_DATETIME: u8 = 12;
pub(super) const FIELD_NEWDECIMAL: u8 = 246;
pub(super) const FIELD_VAR_STRING: u8 = 253;

pub(super) fn decode<S: Sink>(bytes: &[u8], sink: &mut S) -> Result<(), JsonError> {
    let Some((&type_byte, _)) = bytes.split_first() else {
        sink.scalar(Scalar::Null);
        return Ok(());
    };
    let mut decoder = Decoder {
        buf: bytes,
        budget: bytes.len(),
    };
    decoder.value(type_byte, 0, 1, bytes.len(), 0, sink)
}

struct Decoder<'a> {
    buf: &'a [u8],
    /// What the rest of the document may still reference (one unit per
    /// value, one per key or string byte); see the module docs.
    budget: usize,
}

impl<'a> Decoder<'a> {
    /// `len` bytes at `pos`, which must end at or before `end`.
    fn bytes(&self, pos: usize, len: usize, end: usize, what: &str) -> Result<&'a [u8], JsonError> {
        pos.checked_add(len)
            .filter(|&stop| stop <= end)
            .and_then(|stop| self.buf.get(pos..stop))
            .ok_or_else(|| {
                malformed(
                    pos,
                    format!(
                        "{what} needs {len} bytes but only {} remain",
                        end.saturating_sub(pos)
                    ),
                )
            })
    }

    /// A little-endian unsigned integer of `len` (<= 8) bytes.
    fn uint(&self, pos: usize, len: usize, end: usize, what: &str) -> Result<u64, JsonError> {
        let bytes = self.bytes(pos, len, end, what)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn charge(&mut self, pos: usize, units: usize) -> Result<(), JsonError> {
        self.budget = self.budget.checked_sub(units).ok_or_else(|| {
            malformed(
                pos,
                "values overlap: the document references more data than it holds",
            )
        })?;
        Ok(())
    }

    /// MySQL's variable-length length: 7 bits per byte, low bits first, at
    /// most 5 bytes, at most `u32::MAX`. Returns (length, bytes used).
    fn varlen(&self, pos: usize, end: usize, what: &str) -> Result<(usize, usize), JsonError> {
        let mut len = 0u64;
        for i in 0..5 {
            let byte = self.uint(pos + i, 1, end, what)?;
            len |= (byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let len = u32::try_from(len)
                    .map_err(|_| malformed(pos, format!("{what} {len} exceeds 4 GiB")))?;
                return Ok((len as usize, i + 1));
            }
        }
        Err(malformed(pos, format!("{what} runs over 5 bytes")))
    }

    /// The value of type `type_byte` (found at `type_pos`) stored at `pos`,
    /// with the bytes up to `end` available to it.
    fn value<S: Sink>(
        &mut self,
        type_byte: u8,
        type_pos: usize,
        pos: usize,
        end: usize,
        depth: usize,
        sink: &mut S,
    ) -> Result<(), JsonError> {
        self.charge(type_pos, 1)?;
        match type_byte {
            SMALL_OBJECT | LARGE_OBJECT | SMALL_ARRAY | LARGE_ARRAY => {
                self.container(type_byte, pos, end, depth, sink)
            }
            _ => self.scalar(type_byte, type_pos, pos, end, sink),
        }
    }

    fn scalar<S: Sink>(
        &mut self,
        type_byte: u8,
        type_pos: usize,
        pos: usize,
        end: usize,
        sink: &mut S,
    ) -> Result<(), JsonError> {
        let value = match type_byte {
            LITERAL => match self.uint(pos, 1, end, "literal")? as u8 {
                LITERAL_NULL => Scalar::Null,
                LITERAL_TRUE => Scalar::Bool(true),
                LITERAL_FALSE => Scalar::Bool(false),
                other => return Err(malformed(pos, format!("unknown literal 0x{other:02x}"))),
            },
            INT16 => Scalar::Int(i64::from(self.uint(pos, 2, end, "int16")? as u16 as i16)),
            UINT16 => Scalar::Uint(self.uint(pos, 2, end, "uint16")?),
            INT32 => Scalar::Int(i64::from(self.uint(pos, 4, end, "int32")? as u32 as i32)),
            UINT32 => Scalar::Uint(self.uint(pos, 4, end, "uint32")?),
            INT64 => Scalar::Int(self.uint(pos, 8, end, "int64")? as i64),
            UINT64 => Scalar::Uint(self.uint(pos, 8, end, "uint64")?),
            DOUBLE => {
                let d = f64::from_bits(self.uint(pos, 8, end, "double")?);
                if !d.is_finite() {
                    return Err(malformed(pos, format!("double {d} is not a JSON number")));
                }
                Scalar::Double(d)
            }
            STRING => {
                let (len, used) = self.varlen(pos, end, "string length")?;
                let data = self.bytes(pos + used, len, end, "string")?;
                self.charge(pos, len)?;
                let s = std::str::from_utf8(data).map_err(|e| {
                    malformed(pos + used + e.valid_up_to(), "string is not valid UTF-8")
                })?;
                sink.scalar(Scalar::Str(s));
                return Ok(());
            }
            OPAQUE => {
                let field_type = self.uint(pos, 1, end, "opaque field type")? as u8;
                let (len, used) = self.varlen(pos + 1, end, "opaque length")?;
                let data_pos = pos + 1 + used;
                let data = self.bytes(data_pos, len, end, "opaque value")?;
                self.charge(pos, len)?;
                let text =
                    opaque_text(field_type, data).map_err(|reason| malformed(data_pos, reason))?;
                sink.scalar(Scalar::Verbatim(&text));
                return Ok(());
            }
            other => {
                return Err(malformed(
                    type_pos,
                    format!("unknown value type 0x{other:02x}"),
                ));
            }
        };
        sink.scalar(value);
        Ok(())
    }

    fn container<S: Sink>(
        &mut self,
        type_byte: u8,
        pos: usize,
        end: usize,
        depth: usize,
        sink: &mut S,
    ) -> Result<(), JsonError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(malformed(
                pos,
                format!("containers nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let large = type_byte == LARGE_OBJECT || type_byte == LARGE_ARRAY;
        let is_object = type_byte == SMALL_OBJECT || type_byte == LARGE_OBJECT;
        let kind = if is_object { "object" } else { "array" };
        let osz = if large { 4 } else { 2 };
        let count = self.uint(pos, osz, end, "element count")?;
        let size = self.uint(pos + osz, osz, end, "container size")?;
        let available = end.saturating_sub(pos);
        if size > available as u64 {
            return Err(malformed(
                pos + osz,
                format!("{kind} size {size} exceeds the {available} bytes available"),
            ));
        }
        let size = size as usize;
        let key_entry = if is_object { osz + 2 } else { 0 };
        let value_entry = 1 + osz;
        let header = (2 * osz) as u64 + count * (key_entry + value_entry) as u64;
        if header > size as u64 {
            return Err(malformed(
                pos,
                format!(
                    "{kind} of {count} entries needs a {header}-byte header but is {size} bytes"
                ),
            ));
        }
        // Both now fit in `size`, itself within the input.
        let (count, header) = (count as usize, header as usize);
        let cend = pos + size;
        let values_at = pos + 2 * osz + count * key_entry;
        if is_object {
            sink.begin_object(count);
            for i in 0..count {
                let entry = pos + 2 * osz + i * key_entry;
                let key_offset = self.uint(entry, osz, cend, "key offset")? as usize;
                let key_len = self.uint(entry + osz, 2, cend, "key length")? as usize;
                if key_offset < header {
                    return Err(malformed(
                        entry,
                        format!("key {i} offset {key_offset} points into the {header}-byte header"),
                    ));
                }
                let key_pos = pos + key_offset;
                let key = self.bytes(key_pos, key_len, cend, "key")?;
                self.charge(key_pos, key_len)?;
                let key = std::str::from_utf8(key)
                    .map_err(|e| malformed(key_pos + e.valid_up_to(), "key is not valid UTF-8"))?;
                sink.key(i, key);
                self.entry(values_at + i * value_entry, large, pos, cend, depth, sink)?;
            }
            sink.end_object();
        } else {
            sink.begin_array(count);
            for i in 0..count {
                sink.element(i);
                self.entry(values_at + i * value_entry, large, pos, cend, depth, sink)?;
            }
            sink.end_array();
        }
        Ok(())
    }

    /// The value entry at `entry` of the container spanning `start..end`.
    fn entry<S: Sink>(
        &mut self,
        entry: usize,
        large: bool,
        start: usize,
        end: usize,
        depth: usize,
        sink: &mut S,
    ) -> Result<(), JsonError> {
        let osz = if large { 4 } else { 2 };
        let type_byte = self.uint(entry, 1, end, "value type")? as u8;
        let inlined = matches!(type_byte, LITERAL | INT16 | UINT16)
            || (large && matches!(type_byte, INT32 | UINT32));
        if inlined {
            self.charge(entry, 1)?;
            return self.scalar(type_byte, entry, entry + 1, entry + 1 + osz, sink);
        }
        let offset = self.uint(entry + 1, osz, end, "value offset")? as usize;
        let entry_end = entry + 1 + osz - start;
        if offset < entry_end || offset > end - start {
            return Err(malformed(
                entry + 1,
                format!(
                    "value offset {offset} is outside {entry_end}..={} of its container",
                    end - start
                ),
            ));
        }
        self.value(type_byte, entry, start + offset, end, depth, sink)
    }
}

/// MySQL's text for an OPAQUE value (see the module docs).
fn opaque_text(field_type: u8, data: &[u8]) -> Result<String, String> {
    match (field_type, std::str::from_utf8(data)) {
        (FIELD_NEWDECIMAL, _) => decimal_text(data),
        (FIELD_DATE | FIELD_TIME | FIELD_DATETIME | FIELD_TIMESTAMP, _) => {
            temporal_text(field_type, data)
        }
        // A string MySQL kept as opaque (`val_json_func_field_subselect`);
        // one that is not UTF-8 falls back to the base64 form below.
        (FIELD_VAR_STRING, Ok(s)) => {
            let mut out = String::with_capacity(s.len() + 2);
            write_quoted(&mut out, s);
            Ok(out)
        }
        _ => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            let mut text = format!("base64:type{field_type}:");
            // MySQL's base64_encode() breaks lines every 76 characters.
            for (i, chunk) in encoded.as_bytes().chunks(76).enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            }
            let mut out = String::with_capacity(text.len() + 8);
            write_quoted(&mut out, &text);
            Ok(out)
        }
    }
}

/// A JSON DECIMAL (precision byte, scale byte, `decimal2bin` bytes) as
/// `decimal2string` prints it: no leading zeros, exactly `scale` fractional
/// digits. The digits are decoded by [`crate::decimal`], as for columns.
fn decimal_text(data: &[u8]) -> Result<String, String> {
    let [precision, scale, bin @ ..] = data else {
        return Err("DECIMAL without its precision and scale bytes".into());
    };
    let (text, used) =
        crate::decimal::decode(bin, *precision, *scale).map_err(|e| e.to_string())?;
    if used != bin.len() {
        return Err(format!(
            "DECIMAL({precision},{scale}) needs {used} bytes, found {}",
            bin.len()
        ));
    }
    Ok(text)
}

/// A packed temporal (`TIME_to_longlong_*_packed`, 8 bytes little-endian) as
/// `my_TIME_to_str(t, 6)` prints it.
fn temporal_text(field_type: u8, data: &[u8]) -> Result<String, String> {
    let packed: [u8; 8] = data
        .try_into()
        .map_err(|_| format!("packed temporal needs 8 bytes, found {}", data.len()))?;
    let packed = i64::from_le_bytes(packed);
    let negative = packed < 0;
    let magnitude = packed.unsigned_abs();
    let micros = magnitude & 0xff_ffff;
    let int_part = magnitude >> 24;
    if micros > 999_999 {
        return Err(format!(
            "fractional part {micros} exceeds 999999 microseconds"
        ));
    }
    if field_type == FIELD_TIME {
        let (hour, minute, second) = (int_part >> 12, (int_part >> 6) & 63, int_part & 63);
        if hour > 838 || minute > 59 || second > 59 {
            return Err(format!("TIME {hour}:{minute}:{second} is out of range"));
        }
        let sign = if negative { "-" } else { "" };
        return Ok(format!(
            "\"{sign}{hour:02}:{minute:02}:{second:02}.{micros:06}\""
        ));
    }
    if negative {
        return Err("negative packed date/datetime".into());
    }
    let ymd = int_part >> 17;
    let (year, month, day) = ((ymd >> 5) / 13, (ymd >> 5) % 13, ymd & 31);
    let hms = int_part & 0x1_ffff;
    let (hour, minute, second) = (hms >> 12, (hms >> 6) & 63, hms & 63);
    if year > 9999 || hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "date/time {year}-{month}-{day} {hour}:{minute}:{second} is out of range"
        ));
    }
    if field_type == FIELD_DATE {
        Ok(format!("\"{year:04}-{month:02}-{day:02}\""))
    } else {
        Ok(format!(
            "\"{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}\""
        ))
    }
}
