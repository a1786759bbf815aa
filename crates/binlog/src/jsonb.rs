//! MySQL binary JSON (and partial JSON updates) rendered as MySQL's own JSON
//! text.
//!
//! A MySQL `JSON` column travels in row events in the server's binary format
//! (WL#8132, `sql-common/json_binary.cc`); a `PARTIAL_UPDATE_ROWS` after image
//! may instead carry a `Json_diff_vector` (`sql-common/json_diff.cc`) that has
//! to be applied to the before image. Both end up here and leave as the text
//! MySQL itself prints for the value (`CAST(j AS CHAR)`,
//! `Json_wrapper::to_string`), because that text is what the loader inserts
//! into the target's JSON column.
//!
//! # Text form (what MySQL prints, and why each rule)
//!
//! * `{"k": v, "k2": v2}` and `[1, 2]`: `", "` and `": "` separators; object
//!   members in stored order (MySQL stores keys sorted by length, then bytes).
//! * Strings: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`; every other byte below
//!   0x20 as `\u00xx` (lowercase hex); everything else, non-ASCII included,
//!   verbatim UTF-8 (`double_quote()` in `json_dom.cc`).
//! * Integers exactly (INT16..INT64, UINT16..UINT64; `u64::MAX` stays exact).
//! * Doubles as `my_gcvt(d, MY_GCVT_ARG_DOUBLE, 34)` plus `.0` when that printed
//!   neither `.` nor `e`: the shortest round-trip digits, in fixed notation when
//!   the decimal exponent `decpt` (value = 0.DIGITS × 10^decpt) satisfies
//!   `-14 <= decpt <= 15` (or `decpt == 16` with 17 digits), otherwise `1e15`,
//!   `1.5e-16`, `5e-324` (no `+`, no exponent padding). The `.0` keeps a whole
//!   double a double when the target parses the text back.
//! * OPAQUE values: DECIMAL (field type 246: precision, scale, `decimal2bin`)
//!   unquoted with its scale (`1.0`, `9.00`); DATE (10) `"YYYY-MM-DD"`;
//!   DATETIME (12) / TIMESTAMP (7) `"YYYY-MM-DD hh:mm:ss.ffffff"`; TIME (11)
//!   `"[-]hh:mm:ss.ffffff"` (always 6 fractional digits: `my_TIME_to_str(t, 6)`);
//!   VAR_STRING (253) as a plain string (newer servers do the same); any other
//!   field type as `"base64:typeNN:<base64>"`, with MySQL's line break every 76
//!   base64 characters written as `\n` (MySQL ≥ 8.0 escapes it; the raw
//!   newline older servers printed is not valid JSON).
//! * Zero-length input (a `JSON NOT NULL` column left unset in non-strict
//!   mode) is `null`, as `Field_json::val_json` reads it.
//!
//! The output is always valid JSON that MySQL parses back, but re-parsing is
//! not type-preserving where MySQL's own text is not: a DECIMAL comes back as
//! a DOUBLE, temporals and opaque data come back as strings. That is the
//! inherent limit of JSON text (mysqldump has it too).
//!
//! # Defences (invariant 7: corrupt input is refused, never trusted)
//!
//! Every read is bounds-checked against the enclosing container, exactly like
//! the server's parser (values are found through their offsets, so the holes
//! an in-place partial update leaves behind are honoured). Nesting deeper than
//! 100 containers (MySQL's `JSON_DOCUMENT_MAX_DEPTH`) is refused. Because
//! offsets could make values overlap and turn a small corrupt document into an
//! exponential one, decoding charges every value and every key/string byte
//! against the input length; a real document never references a byte twice,
//! so exceeding it means corruption. Strings and keys must be valid UTF-8,
//! doubles finite, decimals and temporals well-formed. Errors carry the byte
//! offset of the fault. Bytes after the top-level value are ignored, as the
//! server ignores them.
//!
//! The text form is MySQL 8.0's (5.7 printed whole doubles without `.0`).
//!
//! # Partial updates
//!
//! [`apply_json_diff`] follows `apply_json_diff()` of `json_diff.cc`: paths
//! are resolved exactly (no auto-wrapping, no wildcards or ranges), `REPLACE`
//! needs an existing value, `INSERT` adds an absent object member at its
//! sorted position or inserts into an array (index past the end appends,
//! `last-N` counts from the end), `REMOVE` needs an existing member or
//! element. Anything MySQL would reject makes the whole update fail with an
//! error naming the diff and its path: applying a diff to a document that
//! does not match is a lost change, never something to paper over.

use std::cmp::Ordering;
use std::fmt::Write as _;

use base64::Engine as _;

/// Deepest nesting of arrays and objects accepted (MySQL's
/// `JSON_DOCUMENT_MAX_DEPTH`).
const MAX_DEPTH: usize = 100;

// Value type bytes of the binary format.
const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

// Literal values.
const LITERAL_NULL: u8 = 0x00;
const LITERAL_TRUE: u8 = 0x01;
const LITERAL_FALSE: u8 = 0x02;

// `enum_field_types` of OPAQUE values that MySQL renders specially.
const FIELD_TIMESTAMP: u8 = 7;
const FIELD_DATE: u8 = 10;
const FIELD_TIME: u8 = 11;
const FIELD_DATETIME: u8 = 12;
const FIELD_NEWDECIMAL: u8 = 246;
const FIELD_VAR_STRING: u8 = 253;

/// Errors decoding binary JSON or applying a JSON diff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The binary JSON document is corrupt; `offset` is the byte of the
    /// document where the fault was found.
    #[error("malformed binary JSON at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// The JSON diff vector is corrupt; `offset` is the byte of the diff
    /// vector (after the 4-byte length) where the fault was found.
    #[error("malformed JSON diff at byte {offset}: {reason}")]
    MalformedDiff { offset: usize, reason: String },
    /// A well-formed diff does not fit the before image (MySQL would reject
    /// it too): the path does not exist, the member to insert already
    /// exists, and so on. `index` counts diffs from 0.
    #[error(
        "JSON diff #{index} ({operation} {path}) does not apply to the before image: {reason}"
    )]
    DiffNotApplicable {
        index: usize,
        operation: &'static str,
        path: String,
        reason: String,
    },
}

/// Renders a MySQL binary JSON value (the bytes of a JSON column) as MySQL's
/// own JSON text form. Empty input (a JSON NOT NULL column left unset in
/// non-strict mode) renders as `null`.
pub fn jsonb_to_text(bytes: &[u8]) -> Result<String, JsonError> {
    let mut text = Text {
        out: String::with_capacity(bytes.len() + bytes.len() / 4 + 8),
    };
    decode(bytes, &mut text)?;
    Ok(text.out)
}

/// Applies the JSON diff vector of a PARTIAL_UPDATE_ROWS after image (the
/// column's bytes in the after image) to the column's before image (binary
/// JSON), returning the whole after document as MySQL JSON text.
///
/// `diff` is the column value without its 4-byte little-endian length (the
/// length of a JSON column value, which for a partial column is also the
/// `Json_diff_vector` length): a sequence of `operation byte (0 REPLACE,
/// 1 INSERT, 2 REMOVE), length-encoded path text, [length-encoded binary
/// JSON value unless REMOVE]`. An empty vector leaves the document as is.
/// The whole vector is validated before anything is applied; see the module
/// docs for the semantics and [`JsonError`] for what fails.
///
/// `before` must be the full before image of the column
/// (`binlog_row_image=FULL`); with a MINIMAL image the server logs only the
/// key columns and the diff cannot be applied here.
pub fn apply_json_diff(before: &[u8], diff: &[u8]) -> Result<String, JsonError> {
    let diffs = parse_diff_vector(diff)?;
    let mut tree = Tree::default();
    decode(before, &mut tree)?;
    let mut root = tree
        .root
        .ok_or_else(|| malformed(0, "document holds no value"))?;
    for (index, diff) in diffs.into_iter().enumerate() {
        diff.apply(index, &mut root)?;
    }
    let mut text = Text {
        out: String::with_capacity(before.len() + diff.len() + 16),
    };
    render_node(&root, &mut text);
    Ok(text.out)
}

/// Renders a JSON diff vector (see [`apply_json_diff`]) without a document
/// to apply it to: `[{"op": "replace", "path": "$.a", "value": 1}, ...]`.
/// Used when the before image lacks the document (MINIMAL row image), so the
/// change is reported as what it is rather than guessed.
pub fn json_diff_to_text(diff: &[u8]) -> Result<String, JsonError> {
    let diffs = parse_diff_vector(diff)?;
    let mut text = Text {
        out: String::with_capacity(diff.len() + 32),
    };
    text.out.push('[');
    for (i, d) in diffs.iter().enumerate() {
        if i > 0 {
            text.out.push_str(", ");
        }
        text.out.push_str("{\"op\": ");
        write_quoted(&mut text.out, &d.operation.name().to_ascii_lowercase());
        text.out.push_str(", \"path\": ");
        write_quoted(&mut text.out, &d.path);
        if let Some(value) = &d.value {
            text.out.push_str(", \"value\": ");
            render_node(value, &mut text);
        }
        text.out.push('}');
    }
    text.out.push(']');
    Ok(text.out)
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

fn malformed(offset: usize, reason: impl Into<String>) -> JsonError {
    JsonError::Malformed {
        offset,
        reason: reason.into(),
    }
}

/// A scalar as the decoder hands it to a [`Sink`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(&'a str),
    /// An OPAQUE value already rendered as JSON text (quoted where MySQL
    /// quotes it): decimals, temporals, base64 data.
    Verbatim(&'a str),
}

/// Receives a document in order, as a stream of events. One decoder serves
/// both the direct text rendering and the tree the diffs are applied to.
trait Sink {
    fn scalar(&mut self, value: Scalar<'_>);
    fn begin_object(&mut self, count: usize);
    /// Announces member `index`; its value follows.
    fn key(&mut self, index: usize, key: &str);
    fn end_object(&mut self);
    fn begin_array(&mut self, count: usize);
    /// Announces element `index`; its value follows.
    fn element(&mut self, index: usize);
    fn end_array(&mut self);
}

fn decode<S: Sink>(bytes: &[u8], sink: &mut S) -> Result<(), JsonError> {
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

// ---------------------------------------------------------------------------
// Text rendering
// ---------------------------------------------------------------------------

/// Writes MySQL's JSON text straight from the decoder's events.
#[derive(Default)]
struct Text {
    out: String,
}

impl Sink for Text {
    fn scalar(&mut self, value: Scalar<'_>) {
        match value {
            Scalar::Null => self.out.push_str("null"),
            Scalar::Bool(true) => self.out.push_str("true"),
            Scalar::Bool(false) => self.out.push_str("false"),
            Scalar::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Scalar::Uint(u) => {
                let _ = write!(self.out, "{u}");
            }
            Scalar::Double(d) => write_double(&mut self.out, d),
            Scalar::Str(s) => write_quoted(&mut self.out, s),
            Scalar::Verbatim(s) => self.out.push_str(s),
        }
    }

    fn begin_object(&mut self, _count: usize) {
        self.out.push('{');
    }

    fn key(&mut self, index: usize, key: &str) {
        if index > 0 {
            self.out.push_str(", ");
        }
        write_quoted(&mut self.out, key);
        self.out.push_str(": ");
    }

    fn end_object(&mut self) {
        self.out.push('}');
    }

    fn begin_array(&mut self, _count: usize) {
        self.out.push('[');
    }

    fn element(&mut self, index: usize) {
        if index > 0 {
            self.out.push_str(", ");
        }
    }

    fn end_array(&mut self) {
        self.out.push(']');
    }
}

/// A JSON string as MySQL's `double_quote()` writes it.
fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte, hence a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u00{b:02x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A finite double as MySQL prints it in JSON: `my_gcvt(d, DOUBLE, 34)`
/// (shortest round-trip digits; fixed notation for `-14 <= decpt <= 15`, or
/// for `decpt == 16` with 17 digits; otherwise `D.DDDe[-]X`), then `.0` if
/// that printed neither a point nor an exponent.
fn write_double(out: &mut String, d: f64) {
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5", "0e0".
    let formatted = format!("{d:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let len = digits.len() as i32;
    let decpt = exponent + 1;
    if negative {
        out.push('-');
    }
    if decpt >= -14 && (decpt <= 15 || len > decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt < len {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - len) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if len > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{exponent}");
    }
}

// ---------------------------------------------------------------------------
// Owned tree (for partial updates)
// ---------------------------------------------------------------------------

/// An owned JSON document, keeping every value exactly as decoded.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    /// An OPAQUE value, already rendered (see [`Scalar::Verbatim`]).
    Verbatim(String),
    Array(Vec<Node>),
    /// Members in stored order.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// How many containers deep the value is (0 for a scalar).
    fn depth(&self) -> usize {
        match self {
            Node::Array(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Node::Object(members) => 1 + members.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
            _ => "a scalar",
        }
    }
}

/// Builds a [`Node`] from the decoder's events.
#[derive(Default)]
struct Tree {
    stack: Vec<Frame>,
    root: Option<Node>,
}

enum Frame {
    Array(Vec<Node>),
    /// Members so far, and the key of the value being decoded.
    Object(Vec<(String, Node)>, String),
}

impl Tree {
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Array(items)) => items.push(node),
            Some(Frame::Object(members, key)) => members.push((std::mem::take(key), node)),
            None => self.root = Some(node),
        }
    }
}

/// Reserve at most this many slots up front: counts come from untrusted
/// input and real growth is bounded by the decoder's budget instead.
const MAX_PREALLOCATED: usize = 1024;

impl Sink for Tree {
    fn scalar(&mut self, value: Scalar<'_>) {
        let node = match value {
            Scalar::Null => Node::Null,
            Scalar::Bool(b) => Node::Bool(b),
            Scalar::Int(i) => Node::Int(i),
            Scalar::Uint(u) => Node::Uint(u),
            Scalar::Double(d) => Node::Double(d),
            Scalar::Str(s) => Node::Str(s.to_owned()),
            Scalar::Verbatim(s) => Node::Verbatim(s.to_owned()),
        };
        self.attach(node);
    }

    fn begin_object(&mut self, count: usize) {
        self.stack.push(Frame::Object(
            Vec::with_capacity(count.min(MAX_PREALLOCATED)),
            String::new(),
        ));
    }

    fn key(&mut self, _index: usize, key: &str) {
        if let Some(Frame::Object(_, pending)) = self.stack.last_mut() {
            key.clone_into(pending);
        }
    }

    fn end_object(&mut self) {
        if let Some(Frame::Object(members, _)) = self.stack.pop() {
            self.attach(Node::Object(members));
        }
    }

    fn begin_array(&mut self, count: usize) {
        self.stack.push(Frame::Array(Vec::with_capacity(
            count.min(MAX_PREALLOCATED),
        )));
    }

    fn element(&mut self, _index: usize) {}

    fn end_array(&mut self) {
        if let Some(Frame::Array(items)) = self.stack.pop() {
            self.attach(Node::Array(items));
        }
    }
}

fn render_node(node: &Node, text: &mut Text) {
    match node {
        Node::Null => text.scalar(Scalar::Null),
        Node::Bool(b) => text.scalar(Scalar::Bool(*b)),
        Node::Int(i) => text.scalar(Scalar::Int(*i)),
        Node::Uint(u) => text.scalar(Scalar::Uint(*u)),
        Node::Double(d) => text.scalar(Scalar::Double(*d)),
        Node::Str(s) => text.scalar(Scalar::Str(s)),
        Node::Verbatim(s) => text.scalar(Scalar::Verbatim(s)),
        Node::Array(items) => {
            text.begin_array(items.len());
            for (i, item) in items.iter().enumerate() {
                text.element(i);
                render_node(item, text);
            }
            text.end_array();
        }
        Node::Object(members) => {
            text.begin_object(members.len());
            for (i, (key, value)) in members.iter().enumerate() {
                text.key(i, key);
                render_node(value, text);
            }
            text.end_object();
        }
    }
}

// ---------------------------------------------------------------------------
// JSON paths
// ---------------------------------------------------------------------------

/// One leg of a diff path. Diff paths only hold these two kinds: MySQL
/// refuses wildcards, `**` and ranges in paths it updates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leg {
    Member(String),
    /// `[index]`, or `[last-index]` when `from_end`.
    Cell {
        index: u32,
        from_end: bool,
    },
}

impl Leg {
    fn write(&self, out: &mut String) {
        match self {
            Leg::Member(name) => {
                out.push('.');
                let bare = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if bare {
                    out.push_str(name);
                } else {
                    write_quoted(out, name);
                }
            }
            Leg::Cell {
                index,
                from_end: false,
            } => {
                let _ = write!(out, "[{index}]");
            }
            Leg::Cell {
                index: 0,
                from_end: true,
            } => out.push_str("[last]"),
            Leg::Cell {
                index,
                from_end: true,
            } => {
                let _ = write!(out, "[last-{index}]");
            }
        }
    }
}

fn path_text(legs: &[Leg]) -> String {
    let mut out = String::from("$");
    for leg in legs {
        leg.write(&mut out);
    }
    out
}

/// Where an array leg points in an array of `len` elements, and whether that
/// is an existing element (`Json_array_index`): before the start clamps to
/// 0, past the end to `len`.
fn array_position(index: u32, from_end: bool, len: usize) -> (usize, bool) {
    let index = index as usize;
    if from_end {
        match len.checked_sub(index + 1) {
            Some(position) => (position, true),
            None => (0, false),
        }
    } else {
        (index.min(len), index < len)
    }
}

fn is_path_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a MySQL JSON path (`Json_path` syntax, as `Json_path::to_string`
/// writes it into diffs). Errors give the byte position in the path.
fn parse_path(path: &str) -> Result<Vec<Leg>, (usize, String)> {
    let bytes = path.as_bytes();
    let skip_space = |mut pos: usize| {
        while pos < bytes.len() && is_path_space(bytes[pos]) {
            pos += 1;
        }
        pos
    };
    let mut pos = skip_space(0);
    if bytes.get(pos) != Some(&b'$') {
        return Err((pos, "a path starts with `$`".into()));
    }
    pos = skip_space(pos + 1);
    let mut legs = Vec::new();
    while pos < bytes.len() {
        match bytes[pos] {
            b'.' => {
                pos = skip_space(pos + 1);
                match bytes.get(pos) {
                    None => return Err((pos, "member name missing after `.`".into())),
                    Some(b'*') => return Err((pos, "wildcard `.*` cannot be applied".into())),
                    Some(b'"') => {
                        let start = pos;
                        pos += 1;
                        loop {
                            match bytes.get(pos) {
                                None => {
                                    return Err((start, "unterminated quoted member name".into()))
                                }
                                Some(b'\\') => pos += 2,
                                Some(b'"') => break,
                                Some(_) => pos += 1,
                            }
                        }
                        let name = unescape(&path[start + 1..pos])
                            .map_err(|(at, why)| (start + 1 + at, why))?;
                        legs.push(Leg::Member(name));
                        pos += 1;
                    }
                    Some(_) => {
                        let start = pos;
                        while pos < bytes.len()
                            && !is_path_space(bytes[pos])
                            && !matches!(bytes[pos], b'.' | b'[' | b'*')
                        {
                            pos += 1;
                        }
                        if pos == start {
                            return Err((pos, "member name missing after `.`".into()));
                        }
                        let name =
                            unescape(&path[start..pos]).map_err(|(at, why)| (start + at, why))?;
                        legs.push(Leg::Member(name));
                    }
                }
            }
            b'[' => {
                pos = skip_space(pos + 1);
                if bytes.get(pos) == Some(&b'*') {
                    return Err((pos, "wildcard `[*]` cannot be applied".into()));
                }
                let mut from_end = false;
                let mut index = 0u32;
                let mut need_number = true;
                if bytes[pos..].starts_with(b"last") {
                    from_end = true;
                    pos = skip_space(pos + 4);
                    if bytes.get(pos) == Some(&b'-') {
                        pos = skip_space(pos + 1);
                    } else {
                        need_number = false;
                    }
                }
                if need_number {
                    let start = pos;
                    let mut value = 0u64;
                    while let Some(digit) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
                        value = value * 10 + u64::from(digit - b'0');
                        if value > u64::from(u32::MAX) {
                            return Err((start, "array index exceeds 4294967295".into()));
                        }
                        pos += 1;
                    }
                    if pos == start {
                        return Err((pos, "array index expected".into()));
                    }
                    index = value as u32;
                }
                let before_space = pos;
                pos = skip_space(pos);
                if pos > before_space && bytes[pos..].starts_with(b"to") {
                    return Err((pos, "array ranges cannot be applied".into()));
                }
                if bytes.get(pos) != Some(&b']') {
                    return Err((pos, "`]` expected".into()));
                }
                pos += 1;
                legs.push(Leg::Cell { index, from_end });
            }
            b'*' => return Err((pos, "ellipsis `**` cannot be applied".into())),
            _ => return Err((pos, "`.` or `[` expected".into())),
        }
        pos = skip_space(pos);
    }
    Ok(legs)
}

/// The content of a JSON string literal (between the quotes), unescaped.
fn unescape(s: &str) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let escaped = match chars.next() {
                    Some((_, '"')) => '"',
                    Some((_, '\\')) => '\\',
                    Some((_, '/')) => '/',
                    Some((_, 'b')) => '\u{8}',
                    Some((_, 'f')) => '\u{c}',
                    Some((_, 'n')) => '\n',
                    Some((_, 'r')) => '\r',
                    Some((_, 't')) => '\t',
                    Some((_, 'u')) => {
                        let high = hex4(&mut chars).ok_or((at, "bad \\u escape".to_string()))?;
                        let code = if (0xd800..0xdc00).contains(&high) {
                            let low = match (chars.next(), chars.next()) {
                                (Some((_, '\\')), Some((_, 'u'))) => hex4(&mut chars),
                                _ => None,
                            }
                            .filter(|low| (0xdc00..0xe000).contains(low))
                            .ok_or((at, "unpaired UTF-16 surrogate".to_string()))?;
                            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                        } else {
                            high
                        };
                        char::from_u32(code).ok_or((at, "unpaired UTF-16 surrogate".to_string()))?
                    }
                    _ => return Err((at, "bad escape sequence".into())),
                };
                out.push(escaped);
            }
            '"' => return Err((at, "unescaped `\"`".into())),
            c if u32::from(c) < 0x20 => return Err((at, "unescaped control character".into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    (0..4).try_fold(0u32, |acc, _| {
        let (_, c) = chars.next()?;
        Some(acc * 16 + c.to_digit(16)?)
    })
}

// ---------------------------------------------------------------------------
// Diff vectors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Replace,
    Insert,
    Remove,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Replace => "REPLACE",
            Operation::Insert => "INSERT",
            Operation::Remove => "REMOVE",
        }
    }
}

#[derive(Debug)]
struct Diff {
    operation: Operation,
    path: String,
    legs: Vec<Leg>,
    value: Option<Node>,
}

fn malformed_diff(offset: usize, reason: impl Into<String>) -> JsonError {
    JsonError::MalformedDiff {
        offset,
        reason: reason.into(),
    }
}

/// `net_field_length_checked`: a length-encoded integer at `pos`. Returns
/// (value, bytes used).
fn read_lenenc(buf: &[u8], pos: usize, what: &str) -> Result<(usize, usize), JsonError> {
    let truncated = || malformed_diff(pos, format!("{what} is truncated"));
    let first = *buf.get(pos).ok_or_else(truncated)?;
    let width = match first {
        0..=250 => return Ok((usize::from(first), 1)),
        252 => 2,
        253 => 3,
        254 => 8,
        _ => {
            return Err(malformed_diff(
                pos,
                format!("{what} has invalid prefix 0x{first:02x}"),
            ))
        }
    };
    let bytes = buf.get(pos + 1..pos + 1 + width).ok_or_else(truncated)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let value = usize::try_from(value)
        .map_err(|_| malformed_diff(pos, format!("{what} {value} is too large")))?;
    Ok((value, 1 + width))
}

fn parse_diff_vector(buf: &[u8]) -> Result<Vec<Diff>, JsonError> {
    let mut diffs = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let index = diffs.len();
        let operation = match buf[pos] {
            0 => Operation::Replace,
            1 => Operation::Insert,
            2 => Operation::Remove,
            other => {
                return Err(malformed_diff(
                    pos,
                    format!("diff #{index}: unknown operation {other}"),
                ))
            }
        };
        pos += 1;
        let (path_len, used) = read_lenenc(buf, pos, "path length")?;
        pos += used;
        let raw = pos
            .checked_add(path_len)
            .and_then(|stop| buf.get(pos..stop))
            .ok_or_else(|| {
                malformed_diff(
                    pos,
                    format!(
                        "diff #{index}: path of {path_len} bytes but only {} remain",
                        buf.len() - pos
                    ),
                )
            })?;
        let path = std::str::from_utf8(raw).map_err(|e| {
            malformed_diff(
                pos + e.valid_up_to(),
                format!("diff #{index}: path is not valid UTF-8"),
            )
        })?;
        let legs = parse_path(path).map_err(|(at, why)| {
            malformed_diff(
                pos + at,
                format!("diff #{index}: invalid path {path:?}: {why}"),
            )
        })?;
        pos += path_len;
        let value = if operation == Operation::Remove {
            None
        } else {
            let (value_len, used) = read_lenenc(buf, pos, "value length")?;
            pos += used;
            let bytes = pos
                .checked_add(value_len)
                .and_then(|stop| buf.get(pos..stop))
                .ok_or_else(|| {
                    malformed_diff(
                        pos,
                        format!(
                            "diff #{index}: value of {value_len} bytes but only {} remain",
                            buf.len() - pos
                        ),
                    )
                })?;
            if bytes.is_empty() {
                return Err(malformed_diff(pos, format!("diff #{index}: empty value")));
            }
            let mut tree = Tree::default();
            decode(bytes, &mut tree).map_err(|e| match e {
                JsonError::Malformed { offset, reason } => {
                    malformed_diff(pos + offset, format!("diff #{index}: value: {reason}"))
                }
                other => other,
            })?;
            pos += value_len;
            tree.root
        };
        diffs.push(Diff {
            operation,
            path: path.to_owned(),
            legs,
            value,
        });
    }
    Ok(diffs)
}

/// MySQL's member order (`Json_key_comparator`): length first, then bytes.
fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Follows `legs` from `node` without auto-wrapping; on failure returns the
/// index of the leg that found nothing.
fn seek<'n>(mut node: &'n mut Node, legs: &[Leg]) -> Result<&'n mut Node, usize> {
    for (k, leg) in legs.iter().enumerate() {
        node = match (node, leg) {
            (Node::Array(items), Leg::Cell { index, from_end }) => {
                let (position, within) = array_position(*index, *from_end, items.len());
                if !within {
                    return Err(k);
                }
                items.get_mut(position).ok_or(k)?
            }
            (Node::Object(members), Leg::Member(name)) => members
                .iter_mut()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
                .ok_or(k)?,
            _ => return Err(k),
        };
    }
    Ok(node)
}

impl Diff {
    fn apply(self, index: usize, root: &mut Node) -> Result<(), JsonError> {
        let Diff {
            operation,
            path,
            legs,
            value,
        } = self;
        let fail = |reason: String| JsonError::DiffNotApplicable {
            index,
            operation: operation.name(),
            path: path.clone(),
            reason,
        };
        let Some((last, parents)) = legs.split_last() else {
            return Err(fail(
                "the path is the document root, which a diff never addresses".into(),
            ));
        };
        if let Some(value) = &value {
            let depth = legs.len() + value.depth();
            if depth > MAX_DEPTH {
                return Err(fail(format!(
                    "the result would nest {depth} levels deep (more than {MAX_DEPTH})"
                )));
            }
        }
        let parent = seek(root, parents).map_err(|k| {
            fail(format!(
                "{} does not exist in the before image",
                path_text(&legs[..=k])
            ))
        })?;
        let missing = |what: &str| fail(format!("{} {what}", path_text(&legs)));
        match (operation, parent, last, value) {
            (Operation::Replace, parent, _, Some(value)) => {
                let target = seek(parent, std::slice::from_ref(last))
                    .map_err(|_| missing("does not exist in the before image"))?;
                *target = value;
            }
            (Operation::Insert, Node::Object(members), Leg::Member(name), Some(value)) => {
                if members.iter().any(|(key, _)| key == name) {
                    return Err(missing("already exists"));
                }
                let at = members
                    .iter()
                    .position(|(key, _)| key_order(key, name) == Ordering::Greater)
                    .unwrap_or(members.len());
                members.insert(at, (name.clone(), value));
            }
            (Operation::Insert, Node::Array(items), Leg::Cell { index, from_end }, Some(value)) => {
                let (position, _) = array_position(*index, *from_end, items.len());
                items.insert(position, value);
            }
            (Operation::Remove, Node::Object(members), Leg::Member(name), None) => {
                let at = members
                    .iter()
                    .position(|(key, _)| key == name)
                    .ok_or_else(|| missing("does not exist in the before image"))?;
                members.remove(at);
            }
            (Operation::Remove, Node::Array(items), Leg::Cell { index, from_end }, None) => {
                let (position, within) = array_position(*index, *from_end, items.len());
                if !within {
                    return Err(missing("is past the end of the array"));
                }
                items.remove(position);
            }
            (_, parent, _, _) => {
                return Err(fail(format!(
                    "{} is {}, which the last leg cannot address",
                    path_text(parents),
                    parent.kind()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Bytes per group of 0..=9 decimal digits in `decimal2bin`.
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

    use super::*;

    // -- helpers ------------------------------------------------------------

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A document as the test encoder sees it: every binary type explicit.
    #[derive(Debug, Clone)]
    enum T {
        Null,
        True,
        False,
        I16(i16),
        U16(u16),
        I32(i32),
        U32(u32),
        I64(i64),
        U64(u64),
        F64(f64),
        Str(String),
        /// field type, data, expected text.
        Opaque(u8, Vec<u8>, String),
        Arr(Vec<T>),
        Obj(Vec<(String, T)>),
    }

    fn s(v: &str) -> T {
        T::Str(v.to_owned())
    }

    fn obj(members: &[(&str, T)]) -> T {
        T::Obj(
            members
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    fn varlen(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn put(buf: &mut [u8], at: usize, value: usize, width: usize) {
        for i in 0..width {
            buf[at + i] = (value >> (8 * i)) as u8;
        }
    }

    fn inlinable(t: &T, large: bool) -> bool {
        match t {
            T::Null | T::True | T::False | T::I16(_) | T::U16(_) => true,
            T::I32(_) | T::U32(_) => large,
            _ => false,
        }
    }

    /// Type byte and payload of a value.
    fn enc(t: &T, force_large: bool) -> (u8, Vec<u8>) {
        match t {
            T::Null => (LITERAL, vec![LITERAL_NULL]),
            T::True => (LITERAL, vec![LITERAL_TRUE]),
            T::False => (LITERAL, vec![LITERAL_FALSE]),
            T::I16(v) => (INT16, v.to_le_bytes().to_vec()),
            T::U16(v) => (UINT16, v.to_le_bytes().to_vec()),
            T::I32(v) => (INT32, v.to_le_bytes().to_vec()),
            T::U32(v) => (UINT32, v.to_le_bytes().to_vec()),
            T::I64(v) => (INT64, v.to_le_bytes().to_vec()),
            T::U64(v) => (UINT64, v.to_le_bytes().to_vec()),
            T::F64(v) => (DOUBLE, v.to_le_bytes().to_vec()),
            T::Str(v) => {
                let mut out = varlen(v.len());
                out.extend_from_slice(v.as_bytes());
                (STRING, out)
            }
            T::Opaque(ft, data, _) => {
                let mut out = vec![*ft];
                out.extend(varlen(data.len()));
                out.extend_from_slice(data);
                (OPAQUE, out)
            }
            T::Arr(items) => {
                let members: Vec<(Option<&str>, &T)> = items.iter().map(|v| (None, v)).collect();
                container(false, &members, force_large)
            }
            T::Obj(items) => {
                let members: Vec<(Option<&str>, &T)> =
                    items.iter().map(|(k, v)| (Some(k.as_str()), v)).collect();
                container(true, &members, force_large)
            }
        }
    }

    fn container(
        is_object: bool,
        members: &[(Option<&str>, &T)],
        force_large: bool,
    ) -> (u8, Vec<u8>) {
        let (small, large) = if is_object {
            (SMALL_OBJECT, LARGE_OBJECT)
        } else {
            (SMALL_ARRAY, LARGE_ARRAY)
        };
        if !force_large {
            if let Some(bytes) = container_format(is_object, members, false, force_large) {
                return (small, bytes);
            }
        }
        let bytes =
            container_format(is_object, members, true, force_large).expect("fits the large format");
        (large, bytes)
    }

    fn container_format(
        is_object: bool,
        members: &[(Option<&str>, &T)],
        large: bool,
        force_large: bool,
    ) -> Option<Vec<u8>> {
        let osz = if large { 4 } else { 2 };
        let max = if large {
            u32::MAX as usize
        } else {
            u16::MAX as usize
        };
        let n = members.len();
        let key_entry = if is_object { osz + 2 } else { 0 };
        let value_entry = 1 + osz;
        let mut buf = vec![0u8; 2 * osz + n * (key_entry + value_entry)];
        if n > max {
            return None;
        }
        put(&mut buf, 0, n, osz);
        if is_object {
            for (i, (key, _)) in members.iter().enumerate() {
                let key = key.expect("object member has a key");
                let offset = buf.len();
                if offset > max {
                    return None;
                }
                assert!(key.len() <= u16::MAX as usize);
                put(&mut buf, 2 * osz + i * key_entry, offset, osz);
                put(&mut buf, 2 * osz + i * key_entry + osz, key.len(), 2);
                buf.extend_from_slice(key.as_bytes());
            }
        }
        for (i, (_, value)) in members.iter().enumerate() {
            let entry = 2 * osz + n * key_entry + i * value_entry;
            let (type_byte, payload) = enc(value, force_large);
            buf[entry] = type_byte;
            if inlinable(value, large) {
                buf[entry + 1..entry + 1 + payload.len()].copy_from_slice(&payload);
            } else {
                let offset = buf.len();
                if offset > max {
                    return None;
                }
                put(&mut buf, entry + 1, offset, osz);
                buf.extend(payload);
            }
        }
        if buf.len() > max {
            return None;
        }
        let size = buf.len();
        put(&mut buf, osz, size, osz);
        Some(buf)
    }

    fn doc_with(t: &T, force_large: bool) -> Vec<u8> {
        let (type_byte, payload) = enc(t, force_large);
        let mut out = vec![type_byte];
        out.extend(payload);
        out
    }

    fn doc(t: &T) -> Vec<u8> {
        doc_with(t, false)
    }

    /// An independent, char-based reference for MySQL's string quoting.
    fn quote_ref(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn expected(t: &T) -> String {
        match t {
            T::Null => "null".into(),
            T::True => "true".into(),
            T::False => "false".into(),
            T::I16(v) => v.to_string(),
            T::U16(v) => v.to_string(),
            T::I32(v) => v.to_string(),
            T::U32(v) => v.to_string(),
            T::I64(v) => v.to_string(),
            T::U64(v) => v.to_string(),
            T::F64(v) => {
                let mut out = String::new();
                write_double(&mut out, *v);
                out
            }
            T::Str(v) => quote_ref(v),
            T::Opaque(_, _, text) => text.clone(),
            T::Arr(items) => format!(
                "[{}]",
                items.iter().map(expected).collect::<Vec<_>>().join(", ")
            ),
            T::Obj(members) => format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}: {}", quote_ref(k), expected(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// A strict RFC 8259 checker, so every output is proven to be JSON that
    /// a target can parse back.
    fn assert_valid_json(text: &str) {
        struct P<'a> {
            b: &'a [u8],
            i: usize,
        }
        impl P<'_> {
            fn ws(&mut self) {
                while self.i < self.b.len()
                    && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r')
                {
                    self.i += 1;
                }
            }
            fn eat(&mut self, c: u8) -> bool {
                if self.b.get(self.i) == Some(&c) {
                    self.i += 1;
                    true
                } else {
                    false
                }
            }
            fn digits(&mut self) -> usize {
                let start = self.i;
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                self.i - start
            }
            fn value(&mut self) -> Result<(), usize> {
                self.ws();
                match self.b.get(self.i).copied() {
                    Some(b'{') => {
                        self.i += 1;
                        self.ws();
                        if self.eat(b'}') {
                            return Ok(());
                        }
                        loop {
                            self.ws();
                            self.string()?;
                            self.ws();
                            if !self.eat(b':') {
                                return Err(self.i);
                            }
                            self.value()?;
                            self.ws();
                            if self.eat(b'}') {
                                return Ok(());
                            }
                            if !self.eat(b',') {
                                return Err(self.i);
                            }
                        }
                    }
                    Some(b'[') => {
                        self.i += 1;
                        self.ws();
                        if self.eat(b']') {
                            return Ok(());
                        }
                        loop {
                            self.value()?;
                            self.ws();
                            if self.eat(b']') {
                                return Ok(());
                            }
                            if !self.eat(b',') {
                                return Err(self.i);
                            }
                        }
                    }
                    Some(b'"') => self.string(),
                    Some(b't') if self.b[self.i..].starts_with(b"true") => {
                        self.i += 4;
                        Ok(())
                    }
                    Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                        self.i += 5;
                        Ok(())
                    }
                    Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                        self.i += 4;
                        Ok(())
                    }
                    Some(b'-' | b'0'..=b'9') => {
                        self.eat(b'-');
                        if !self.eat(b'0') && self.digits() == 0 {
                            return Err(self.i);
                        }
                        if self.eat(b'.') && self.digits() == 0 {
                            return Err(self.i);
                        }
                        if self.eat(b'e') || self.eat(b'E') {
                            let _ = self.eat(b'+') || self.eat(b'-');
                            if self.digits() == 0 {
                                return Err(self.i);
                            }
                        }
                        Ok(())
                    }
                    _ => Err(self.i),
                }
            }
            fn string(&mut self) -> Result<(), usize> {
                if !self.eat(b'"') {
                    return Err(self.i);
                }
                loop {
                    match self.b.get(self.i).copied() {
                        None => return Err(self.i),
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(());
                        }
                        Some(b'\\') => {
                            self.i += 1;
                            match self.b.get(self.i).copied() {
                                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                                    self.i += 1
                                }
                                Some(b'u') => {
                                    let hex = self.b.get(self.i + 1..self.i + 5).ok_or(self.i)?;
                                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                                        return Err(self.i);
                                    }
                                    self.i += 5;
                                }
                                _ => return Err(self.i),
                            }
                        }
                        Some(c) if c < 0x20 => return Err(self.i),
                        Some(_) => self.i += 1,
                    }
                }
            }
        }
        let mut p = P {
            b: text.as_bytes(),
            i: 0,
        };
        let result = p.value().and_then(|()| {
            p.ws();
            if p.i == p.b.len() {
                Ok(())
            } else {
                Err(p.i)
            }
        });
        if let Err(at) = result {
            panic!("not valid JSON at byte {at}: {text:?}");
        }
    }

    /// Renders `t` through both paths (direct text and the owned tree) and
    /// checks both against the reference text.
    fn check(t: &T) {
        let want = expected(t);
        for force_large in [false, true] {
            let bytes = doc_with(t, force_large);
            assert_eq!(
                jsonb_to_text(&bytes).as_deref(),
                Ok(want.as_str()),
                "large={force_large}"
            );
            assert_eq!(
                apply_json_diff(&bytes, &[]).as_deref(),
                Ok(want.as_str()),
                "tree, large={force_large}"
            );
        }
        assert_valid_json(&want);
    }

    fn text(bytes: &[u8]) -> String {
        jsonb_to_text(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    // -- test-side encoders for OPAQUE payloads --------------------------------

    /// `decimal2bin` of a decimal literal, with the precision/scale prefix.
    fn enc_decimal(literal: &str, precision: usize, scale: usize) -> Vec<u8> {
        let (negative, digits) = match literal.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, literal),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let int_part = int_part.trim_start_matches('0');
        let intg = precision - scale;
        let int_digits = format!("{int_part:0>intg$}");
        let frac_digits = format!("{frac_part:0<scale$}");
        assert_eq!(
            (int_digits.len(), frac_digits.len()),
            (intg, scale),
            "{literal} fits"
        );
        let mut groups: Vec<&str> = Vec::new();
        let lead = intg % 9;
        if lead > 0 {
            groups.push(&int_digits[..lead]);
        }
        for i in 0..intg / 9 {
            groups.push(&int_digits[lead + 9 * i..lead + 9 * i + 9]);
        }
        for i in 0..scale / 9 {
            groups.push(&frac_digits[9 * i..9 * i + 9]);
        }
        let frac_tail = scale % 9;
        if frac_tail > 0 {
            groups.push(&frac_digits[scale - frac_tail..]);
        }
        let mut bin = Vec::new();
        for g in groups {
            let v: u32 = g.parse().expect("digits");
            let width = DIG2BYTES[g.len()];
            bin.extend_from_slice(&v.to_be_bytes()[4 - width..]);
        }
        if negative {
            bin.iter_mut().for_each(|b| *b ^= 0xff);
        }
        bin[0] ^= 0x80;
        let mut out = vec![precision as u8, scale as u8];
        out.extend(bin);
        out
    }

    fn pack_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Vec<u8> {
        let ymd = ((y * 13 + mo) << 5) | d;
        let hms = (h << 12) | (mi << 6) | s;
        ((((ymd << 17) | hms) << 24) + us).to_le_bytes().to_vec()
    }

    fn pack_time(negative: bool, h: i64, mi: i64, s: i64, us: i64) -> Vec<u8> {
        let v = ((((h << 12) | (mi << 6) | s) << 24) + us) * if negative { -1 } else { 1 };
        v.to_le_bytes().to_vec()
    }

    fn decimal(literal: &str, precision: usize, scale: usize, want: &str) -> T {
        T::Opaque(
            FIELD_NEWDECIMAL,
            enc_decimal(literal, precision, scale),
            want.to_owned(),
        )
    }

    // -- TYPE_CASES F: hand-checked documents ----------------------------------

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is the F4 vector, not an approximation of pi
    fn f4_scalars_and_empty_containers() {
        for (t, want) in [
            (s("scalar string"), "\"scalar string\""),
            (T::True, "true"),
            (T::False, "false"),
            (T::Null, "null"),
            (T::I16(-1), "-1"),
            (T::F64(3.14), "3.14"),
            (T::Obj(vec![]), "{}"),
            (T::Arr(vec![]), "[]"),
        ] {
            assert_eq!(expected(&t), want);
            check(&t);
        }
        // Exact bytes MySQL writes for a few of them.
        assert_eq!(text(&hex("0401")), "true");
        assert_eq!(text(&hex("0000000400")), "{}");
        assert_eq!(text(&hex("0200000400")), "[]");
        assert_eq!(
            text(&hex("0c0d 7363616c617220737472696e67")),
            "\"scalar string\""
        );
    }

    #[test]
    fn f5_integer_width_boundaries() {
        for (t, want) in [
            (T::I16(32767), "32767"),
            (T::I32(32768), "32768"),
            (T::I16(-32768), "-32768"),
            (T::I32(-32769), "-32769"),
            (T::I32(2147483647), "2147483647"),
            (T::I64(2147483648), "2147483648"),
            (T::I32(-2147483648), "-2147483648"),
            (T::I64(-2147483649), "-2147483649"),
            (T::I64(i64::MIN), "-9223372036854775808"),
            (T::I64(i64::MAX), "9223372036854775807"),
            (T::U64(u64::MAX), "18446744073709551615"),
            (T::U16(65535), "65535"),
            (T::U32(u32::MAX), "4294967295"),
            (T::U16(1), "1"),
        ] {
            assert_eq!(expected(&t), want);
            check(&t);
            check(&T::Arr(vec![t.clone(), t.clone()]));
            check(&obj(&[("k", t)]));
        }
    }

    #[test]
    fn f6_above_uint64_is_a_double() {
        check(&T::F64(18446744073709551616.0));
        assert_eq!(
            expected(&T::F64(18446744073709551616.0)),
            "1.8446744073709552e19"
        );
    }

    #[test]
    fn f7_key_order_and_72_byte_layout() {
        // Stored order is MySQL's sorted order: a, d, arr, big.
        let t = obj(&[
            ("a", T::I16(1)),
            ("d", T::F64(1.5)),
            ("arr", T::Arr(vec![s("x"), T::True, T::Null])),
            ("big", T::U64(9223372036854775807)),
        ]);
        let bytes = doc(&t);
        assert_eq!(bytes.len(), 72);
        assert_eq!(bytes[0], SMALL_OBJECT);
        assert_eq!(
            text(&bytes),
            r#"{"a": 1, "d": 1.5, "arr": ["x", true, null], "big": 9223372036854775807}"#
        );
        check(&t);
    }

    #[test]
    fn f1_to_f3_and_f16_documents() {
        check(&obj(&[("my_key", s("my_val")), ("my_key2", s("my_val2"))]));
        check(&T::Arr(vec![s("my_val"), s("my_val2")]));
        check(&obj(&[
            ("bar", T::F64(123.4321)),
            (
                "baz",
                T::Arr(vec![
                    T::I16(1),
                    T::I16(2),
                    T::I16(3),
                    obj(&[("hello", s("inside an array"))]),
                ]),
            ),
            ("foo", s("bar")),
        ]));
        check(&obj(&[(
            "a",
            obj(&[(
                "b",
                obj(&[("c", s("d")), ("e", T::Arr(vec![s("f"), s("g")]))]),
            )]),
        )]));
        check(&T::Arr(vec![
            T::I16(-1),
            T::Arr(vec![s("b"), T::Arr(vec![s("c")])]),
            T::I16(1),
        ]));
        check(&obj(&[("bitrate", obj(&[("", T::I16(0))]))]));
        let unicode = obj(&[
            ("miam", s("🍔")),
            ("key", s("éééàààà")),
            ("keybá3", T::I16(34)),
        ]);
        assert_eq!(
            expected(&unicode),
            r#"{"miam": "🍔", "key": "éééàààà", "keybá3": 34}"#
        );
        check(&unicode);
    }

    #[test]
    fn f8_to_f11_temporals() {
        let cases = [
            (
                FIELD_DATETIME,
                pack_datetime(2015, 1, 15, 23, 24, 25, 0),
                "\"2015-01-15 23:24:25.000000\"",
            ),
            (
                FIELD_DATETIME,
                pack_datetime(2015, 1, 15, 23, 24, 25, 23_700),
                "\"2015-01-15 23:24:25.023700\"",
            ),
            (
                FIELD_TIMESTAMP,
                pack_datetime(2024, 1, 15, 10, 30, 45, 123_456),
                "\"2024-01-15 10:30:45.123456\"",
            ),
            (
                FIELD_DATE,
                pack_datetime(2015, 1, 15, 0, 0, 0, 0),
                "\"2015-01-15\"",
            ),
            (
                FIELD_TIME,
                pack_time(false, 23, 24, 25, 0),
                "\"23:24:25.000000\"",
            ),
            (
                FIELD_TIME,
                pack_time(false, 23, 24, 25, 24_000),
                "\"23:24:25.024000\"",
            ),
            (
                FIELD_TIME,
                pack_time(true, 838, 59, 59, 0),
                "\"-838:59:59.000000\"",
            ),
            (
                FIELD_TIME,
                pack_time(true, 0, 0, 1, 500_000),
                "\"-00:00:01.500000\"",
            ),
            (
                FIELD_TIME,
                pack_time(false, 0, 0, 0, 0),
                "\"00:00:00.000000\"",
            ),
            (
                FIELD_DATETIME,
                pack_datetime(0, 0, 0, 0, 0, 0, 0),
                "\"0000-00-00 00:00:00.000000\"",
            ),
            (
                FIELD_TIMESTAMP,
                pack_datetime(0, 0, 0, 0, 0, 0, 0),
                "\"0000-00-00 00:00:00.000000\"",
            ),
            (
                FIELD_DATE,
                pack_datetime(0, 0, 0, 0, 0, 0, 0),
                "\"0000-00-00\"",
            ),
            (
                FIELD_DATETIME,
                pack_datetime(9999, 12, 31, 23, 59, 59, 999_999),
                "\"9999-12-31 23:59:59.999999\"",
            ),
        ];
        for (field_type, data, want) in cases {
            check(&T::Opaque(field_type, data, want.to_owned()));
        }
        // F11: JSON_OBJECT('time_key', TIME, 'datetime_key', DATETIME, 'decimal', DECIMAL(10,2)).
        let t = obj(&[
            ("decimal", decimal("99.99", 10, 2, "99.99")),
            (
                "time_key",
                T::Opaque(
                    FIELD_TIME,
                    pack_time(false, 18, 54, 12, 0),
                    "\"18:54:12.000000\"".into(),
                ),
            ),
            (
                "datetime_key",
                T::Opaque(
                    FIELD_DATETIME,
                    pack_datetime(2023, 9, 24, 18, 54, 12, 0),
                    "\"2023-09-24 18:54:12.000000\"".into(),
                ),
            ),
        ]);
        assert_eq!(
            expected(&t),
            r#"{"decimal": 99.99, "time_key": "18:54:12.000000", "datetime_key": "2023-09-24 18:54:12.000000"}"#
        );
        check(&t);
        // F10: UNIX_TIMESTAMP(...) is a plain integer.
        check(&T::I32(1421364265));
    }

    #[test]
    fn corrupt_temporals_are_refused() {
        for (field_type, data) in [
            (FIELD_DATETIME, pack_datetime(2015, 1, 15, 24, 0, 0, 0)),
            (FIELD_DATETIME, pack_datetime(2015, 1, 15, 23, 60, 0, 0)),
            (
                FIELD_DATETIME,
                pack_datetime(2015, 1, 15, 23, 0, 0, 1_000_000),
            ),
            (FIELD_DATE, (-1i64).to_le_bytes().to_vec()),
            (FIELD_TIME, pack_time(false, 839, 0, 0, 0)),
            (FIELD_TIME, vec![0; 7]),
            (FIELD_DATE, vec![0; 9]),
        ] {
            let bytes = doc(&T::Opaque(field_type, data, String::new()));
            let err = jsonb_to_text(&bytes).expect_err("corrupt temporal");
            assert!(
                matches!(err, JsonError::Malformed { offset: 3, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn f12_decimals_keep_their_scale_unquoted() {
        // GOM's hand-built bytes: opaque DECIMAL(2,1) 81 00 -> 1.0.
        assert_eq!(text(&hex("0f f6 04 02 01 81 00")), "1.0");
        assert_eq!(enc_decimal("1.0", 2, 1), hex("02 01 81 00"));
        for (literal, precision, scale, want) in [
            ("212765.700000000010000", 21, 15, "212765.700000000010000"),
            // CAST(... AS DECIMAL(24,17)) keeps the literal's 14 fractional
            // digits (decimal_round never widens), and that is what is stored.
            ("111111.11111110000001", 20, 14, "111111.11111110000001"),
            ("111111.11111110000001", 24, 17, "111111.11111110000001000"),
            ("99.99", 10, 2, "99.99"),
            ("-99.99", 10, 2, "-99.99"),
            ("0.5", 10, 2, "0.50"),
            ("-0.5", 3, 1, "-0.5"),
            ("0", 10, 0, "0"),
            ("0.00", 10, 2, "0.00"),
            ("7", 1, 0, "7"),
            (
                "123456789012345678901234567890.123456789012345678901234567890",
                65,
                30,
                "123456789012345678901234567890.123456789012345678901234567890",
            ),
            (
                "-123456789012345678901234567890.123456789012345678901234567890",
                65,
                30,
                "-123456789012345678901234567890.123456789012345678901234567890",
            ),
            ("0.000000001", 30, 30, "0.000000001000000000000000000000"),
            ("1000000000", 10, 0, "1000000000"),
            ("9.00", 11, 2, "9.00"),
            ("123.456", 6, 3, "123.456"),
        ] {
            check(&decimal(literal, precision, scale, want));
            check(&obj(&[("d", decimal(literal, precision, scale, want))]));
        }
    }

    #[test]
    fn corrupt_decimals_are_refused() {
        for data in [
            hex(""),
            hex("02"),
            hex("02 01 81"),                // one byte short
            hex("02 01 81 00 00"),          // one byte long
            hex("00 00 80"),                // precision 0
            hex("42 00 80"),                // precision 66
            hex("02 03 80 00"),             // scale > precision
            hex("02 01 8a 00"),             // integer digit 10
            hex("0a 00 80 3b 9a ca 00 00"), // DECIMAL(10,0): word 1e9 out of range
        ] {
            let bytes = doc(&T::Opaque(FIELD_NEWDECIMAL, data.clone(), String::new()));
            assert!(jsonb_to_text(&bytes).is_err(), "{data:02x?}");
        }
    }

    #[test]
    fn f14_opaque_bytes_render_as_base64() {
        check(&T::Opaque(15, hex("cafe"), "\"base64:type15:yv4=\"".into()));
        check(&T::Opaque(
            15,
            hex("cafebabe"),
            "\"base64:type15:yv66vg==\"".into(),
        ));
        check(&T::Opaque(252, vec![], "\"base64:type252:\"".into()));
        // MySQL breaks the base64 text every 76 characters; the newline is escaped.
        let data: Vec<u8> = (0u8..=100).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let want = format!("\"base64:type16:{}\\n{}\"", &b64[..76], &b64[76..]);
        check(&T::Opaque(16, data, want));
        // A VAR_STRING kept as opaque is a plain string; a non-UTF-8 one falls back.
        check(&T::Opaque(
            FIELD_VAR_STRING,
            b"a\"b".to_vec(),
            "\"a\\\"b\"".into(),
        ));
        check(&T::Opaque(
            FIELD_VAR_STRING,
            vec![0xff],
            "\"base64:type253:/w==\"".into(),
        ));
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a test vector, not an approximation of pi
    fn f19_doubles_match_mysql_text() {
        for (d, want) in [
            (1.0, "1.0"),
            (1e10, "10000000000.0"),
            (1.5e-5, "0.000015"),
            (1e15, "1e15"),
            (9.999999999999999e14, "999999999999999.9"),
            (1e16, "1e16"),
            (1e-15, "0.000000000000001"),
            (1e-16, "1e-16"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e308"),
            (-0.0, "-0.0"),
            // More of my_gcvt's thresholds.
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (3.14, "3.14"),
            (123.4321, "123.4321"),
            (-2.5e-7, "-0.00000025"),
            (1.2345e-14, "0.000000000000012345"),
            (1.5e-15, "0.0000000000000015"),
            (1.5e-16, "1.5e-16"),
            (123456789012345.0, "123456789012345.0"),
            (999999999999999.0, "999999999999999.0"),
            (1000000000000000.5, "1000000000000000.5"),
            (1234567890123456.8, "1234567890123456.8"),
            (1.5e15, "1.5e15"),
            (1.25e16, "1.25e16"),
            (-1e100, "-1e100"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100.0, "100.0"),
        ] {
            let mut out = String::new();
            write_double(&mut out, d);
            assert_eq!(out, want, "{d:e}");
            assert_valid_json(&out);
            check(&T::F64(d));
            check(&T::Arr(vec![T::F64(d)]));
        }
    }

    #[test]
    fn non_finite_doubles_are_refused() {
        for d in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = jsonb_to_text(&doc(&T::F64(d))).expect_err("not a JSON number");
            assert!(matches!(err, JsonError::Malformed { offset: 1, .. }));
        }
    }

    #[test]
    fn f20_empty_value_is_null() {
        assert_eq!(jsonb_to_text(&[]).as_deref(), Ok("null"));
        assert_eq!(apply_json_diff(&[], &[]).as_deref(), Ok("null"));
        // ... and no diff can address anything inside it.
        let diff = diff_entry(0, "$.a", Some(&doc(&T::I16(1))));
        assert!(matches!(
            apply_json_diff(&[], &diff),
            Err(JsonError::DiffNotApplicable { .. })
        ));
    }

    #[test]
    fn strings_and_keys_are_escaped_like_mysql() {
        let t = obj(&[(
            "k\"\\\n",
            s("a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1}\u{1f}\u{7f}/é🍔\u{2028}"),
        )]);
        assert_eq!(
            expected(&t),
            "{\"k\\\"\\\\\\n\": \"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u{7f}/é🍔\u{2028}\"}"
        );
        check(&t);
        let mut out = String::new();
        write_quoted(&mut out, "\u{1b}x\u{1a}");
        assert_eq!(out, "\"\\u001bx\\u001a\"");
    }

    #[test]
    fn f18_string_lengths_cross_varlen_boundaries() {
        for len in [
            0, 1, 127, 128, 129, 256, 7383, 16383, 16384, 16388, 65535, 65536, 2_097_151, 2_097_152,
        ] {
            let v = "a".repeat(len);
            let bytes = doc(&T::Str(v.clone()));
            let prefix = match len {
                0..=127 => 1,
                128..=16383 => 2,
                16384..=2_097_151 => 3,
                _ => 4,
            };
            assert_eq!(bytes.len(), 1 + prefix + len, "len {len}");
            assert_eq!(text(&bytes), format!("\"{v}\""));
            check(&obj(&[("twobytelen", T::Str(v))]));
        }
        check(&T::Str("super_long_string".repeat(100)));
        // A varlen that never ends, or exceeds 32 bits, is corrupt.
        assert!(jsonb_to_text(&hex("0c ff ff ff ff ff 00")).is_err());
        assert!(jsonb_to_text(&hex("0c ff ff ff ff 1f")).is_err());
    }

    #[test]
    fn f17_large_documents() {
        // 2560 members of > 64 KB force the large object format.
        let members: Vec<(String, T)> = (0..2560)
            .map(|i| (format!("foooo{i}"), T::Str(format!("baaaaar{i}"))))
            .collect();
        let t = T::Obj(members);
        let bytes = doc(&t);
        assert_eq!(bytes[0], LARGE_OBJECT);
        assert!(bytes.len() > 65536);
        check(&t);
        // 100,000 integers: int16 inlined, int32 inlined only in large arrays.
        let t = T::Arr(
            (0..100_000)
                .map(|i| {
                    if i % 2 == 0 {
                        T::I16(i as i16)
                    } else {
                        T::I32(i)
                    }
                })
                .collect(),
        );
        let bytes = doc(&t);
        assert_eq!(bytes[0], LARGE_ARRAY);
        check(&t);
        // A 64K-1 character key.
        let t = obj(&[(&"a".repeat(65535), T::I16(123))]);
        let bytes = doc(&t);
        assert_eq!(bytes[0], LARGE_OBJECT);
        check(&t);
        // A large document with small children, and small ones forced large.
        let t = T::Arr(vec![
            obj(&[("x", T::I32(70000))]),
            T::Str("z".repeat(70000)),
            T::U32(7),
        ]);
        assert_eq!(doc(&t)[0], LARGE_ARRAY);
        check(&t);
    }

    #[test]
    fn depth_limit_is_mysqls() {
        let mut t = T::I16(1);
        for _ in 0..MAX_DEPTH {
            t = T::Arr(vec![t]);
        }
        check(&t);
        let bytes = doc(&T::Arr(vec![t]));
        let err = jsonb_to_text(&bytes).expect_err("101 levels");
        assert!(err.to_string().contains("deeper than 100"), "{err}");
    }

    #[test]
    fn overlapping_values_cannot_explode() {
        // 40 nested arrays whose two elements both point at the same child:
        // 2^40 values if followed blindly.
        let levels = 40;
        let mut bytes = vec![SMALL_ARRAY];
        for level in 0..levels {
            let size = (levels - level) * 10 + 4;
            bytes.extend_from_slice(&[2, 0]);
            bytes.extend_from_slice(&(size as u16).to_le_bytes());
            bytes.extend_from_slice(&[SMALL_ARRAY, 10, 0, SMALL_ARRAY, 10, 0]);
        }
        bytes.extend_from_slice(&[0, 0, 4, 0]);
        let err = jsonb_to_text(&bytes).expect_err("shared offsets");
        assert!(err.to_string().contains("overlap"), "{err}");
    }

    #[test]
    fn malformed_containers_name_the_offset() {
        for (bytes, offset, needle) in [
            (hex("00 0100"), 3, "container size"),
            (hex("00 01"), 1, "element count"),
            (hex("00 0100 2000 0700 0100 04 0000"), 3, "exceeds"),
            (hex("00 0100 0900 0700 0100 04 0000"), 1, "11-byte header"),
            (hex("00 0500 0800 00 00 00 00"), 1, "header"),
            (hex("00 0100 0b00 0000 0100 04 0000 61"), 5, "points into"),
            (hex("00 0100 0c00 0b00 0200 04 0000 61"), 12, "key needs"),
            (
                hex("00 0100 0c00 0b00 0100 0c 0000 61 00"),
                10,
                "value offset 0",
            ),
            (
                hex("00 0100 0c00 0b00 0100 0c 0d00 61 00"),
                10,
                "value offset 13",
            ),
            (hex("02 0100 0700 0e 0700"), 5, "unknown value type 0x0e"),
            (hex("02 0100 0700 04 0700"), 6, "unknown literal"),
            (hex("0c 02 61 ff"), 3, "UTF-8"),
            (
                hex("00 0100 0c00 0b00 0100 04 0000 ff"),
                12,
                "key is not valid UTF-8",
            ),
            (hex("ee"), 0, "unknown value type 0xee"),
            (hex("05 01"), 1, "int16 needs 2 bytes"),
        ] {
            match jsonb_to_text(&bytes) {
                Err(JsonError::Malformed {
                    offset: got,
                    reason,
                }) => {
                    assert_eq!(got, offset, "{reason}");
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
                }
                other => panic!("{bytes:02x?}: {other:?}"),
            }
        }
    }

    // -- property-style round trips --------------------------------------------

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn gen_string(rng: &mut Rng) -> String {
        const POOL: [char; 20] = [
            'a', 'Z', '0', ' ', '"', '\\', '\n', '\t', '\r', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€',
            '🍔', '/', '\u{2028}', 'x', 'y', '.',
        ];
        let len = match rng.below(10) {
            0 => [127, 128, 129, 16383, 16384][rng.below(5)],
            1..=3 => rng.below(300),
            _ => rng.below(8),
        };
        (0..len).map(|_| POOL[rng.below(POOL.len())]).collect()
    }

    fn gen_scalar(rng: &mut Rng) -> T {
        match rng.below(16) {
            0 => T::Null,
            1 => T::True,
            2 => T::False,
            3 => T::I16(rng.next() as i16),
            4 => T::U16(rng.next() as u16),
            5 => T::I32(rng.next() as i32),
            6 => T::U32(rng.next() as u32),
            7 => T::I64(rng.next() as i64),
            8 => T::U64(rng.next()),
            9 => loop {
                let d = f64::from_bits(rng.next());
                if d.is_finite() {
                    break T::F64(d);
                }
            },
            10 => T::F64(
                [
                    0.0,
                    -0.0,
                    1.0,
                    1e15,
                    1e16,
                    1e-15,
                    1e-16,
                    0.1,
                    5e-324,
                    f64::MAX,
                ][rng.below(10)],
            ),
            11 => {
                let us = rng.below(1_000_000) as i64;
                let dt = pack_datetime(
                    1000 + rng.below(9000) as i64,
                    1 + rng.below(12) as i64,
                    1 + rng.below(28) as i64,
                    13,
                    5,
                    59,
                    us,
                );
                let want = format!("\"{}\"", {
                    let v = i64::from_le_bytes(dt.clone().try_into().expect("8 bytes"));
                    let int = v >> 24;
                    let ymd = int >> 17;
                    format!(
                        "{:04}-{:02}-{:02} 13:05:59.{us:06}",
                        (ymd >> 5) / 13,
                        (ymd >> 5) % 13,
                        ymd & 31
                    )
                });
                T::Opaque(FIELD_DATETIME, dt, want)
            }
            12 => {
                let intg = rng.below(20);
                let scale = rng.below(12);
                let int_digits: String = (0..intg)
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect();
                let frac_digits: String = (0..scale)
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect();
                let negative = rng.below(2) == 0;
                let literal = format!(
                    "{}{int_digits}.{frac_digits}",
                    if negative { "-" } else { "" }
                );
                let int_trim = int_digits.trim_start_matches('0');
                let int_shown = if int_trim.is_empty() { "0" } else { int_trim };
                let zero = int_trim.is_empty() && frac_digits.bytes().all(|b| b == b'0');
                let mut want = format!("{}{int_shown}", if negative && !zero { "-" } else { "" });
                if scale > 0 {
                    want.push('.');
                    want.push_str(&frac_digits);
                }
                let precision = (intg + scale).max(1);
                decimal(&literal, precision, scale, &want)
            }
            13 => {
                let data: Vec<u8> = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).expect("ascii"))
                    .collect();
                T::Opaque(15, data, format!("\"base64:type15:{}\"", lines.join("\\n")))
            }
            _ => T::Str(gen_string(rng)),
        }
    }

    fn gen(rng: &mut Rng, depth: usize) -> T {
        if depth >= 5 || rng.below(3) == 0 {
            return gen_scalar(rng);
        }
        let n = rng.below(7);
        if rng.below(2) == 0 {
            T::Arr((0..n).map(|_| gen(rng, depth + 1)).collect())
        } else {
            T::Obj(
                (0..n)
                    .map(|_| (gen_string(rng), gen(rng, depth + 1)))
                    .collect(),
            )
        }
    }

    #[test]
    fn random_documents_round_trip() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..300 {
            let t = gen(&mut rng, 0);
            check(&t);
        }
    }

    #[test]
    fn every_truncation_errors_and_mutations_never_panic() {
        let mut rng = Rng(0x0dd_ba11);
        let mut docs: Vec<Vec<u8>> = (0..60)
            .map(|_| doc_with(&gen(&mut rng, 0), rng.below(2) == 0))
            .collect();
        docs.push(doc(&obj(&[
            ("a", T::I16(1)),
            ("d", T::F64(1.5)),
            ("arr", T::Arr(vec![s("x"), T::True, T::Null])),
            ("big", T::U64(9223372036854775807)),
        ])));
        for bytes in &docs {
            // Every cut of small documents; a sample of cuts of big ones.
            let cuts: Vec<usize> = if bytes.len() <= 4096 {
                (1..bytes.len()).collect()
            } else {
                (0..512)
                    .map(|_| 1 + rng.below(bytes.len() - 1))
                    .chain([1, bytes.len() - 1])
                    .collect()
            };
            for cut in cuts {
                assert!(
                    jsonb_to_text(&bytes[..cut]).is_err(),
                    "prefix {cut} of {bytes:02x?}"
                );
                assert!(apply_json_diff(&bytes[..cut], &[]).is_err());
            }
            for _ in 0..if bytes.len() <= 4096 { 200 } else { 10 } {
                let mut mutated = bytes.clone();
                for _ in 0..=rng.below(3) {
                    let at = rng.below(mutated.len());
                    mutated[at] = rng.next() as u8;
                }
                if let Ok(out) = jsonb_to_text(&mutated) {
                    assert_valid_json(&out);
                }
                let _ = apply_json_diff(&mutated, &[]);
            }
        }
        for _ in 0..2000 {
            let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            if let Ok(out) = jsonb_to_text(&garbage) {
                assert_valid_json(&out);
            }
            let _ = apply_json_diff(&garbage, &garbage);
        }
    }

    // -- real server bytes --------------------------------------------------------

    #[test]
    fn mysql_9_json_opaque_fixture() {
        // WRITE_ROWS values of json-opaque.binlog (MySQL 9.0.1).
        for (bytes, want) in [
            (
                "0001000f000b0001000f0c00610f0155",
                r#"{"a": "base64:type15:VQ=="}"#,
            ),
            (
                "00010016000b0001000f0c00620a080000000000e48b19",
                r#"{"b": "2012-03-18"}"#,
            ),
            (
                "00010016000b0001000f0c00630c08000000adb7e48b19",
                r#"{"c": "2012-03-18 11:30:45.000000"}"#,
            ),
            (
                "00010016000b0001000f0c00630b08f1fb09ee77050000",
                r#"{"c": "87:31:46.654321"}"#,
            ),
            (
                "00010014000b0001000f0c0064f6060603807b01c8",
                r#"{"d": 123.456}"#,
            ),
            (
                "00010015000b0001000f0c0065f6070b028000000900",
                r#"{"e": 9.00}"#,
            ),
            (
                "0001001c000b000100020c006504001000050000050100040100040200",
                r#"{"e": [0, 1, true, false]}"#,
            ),
            ("0001000c000b00010004000065", r#"{"e": null}"#),
        ] {
            assert_eq!(text(&hex(bytes)), want);
            assert_eq!(apply_json_diff(&hex(bytes), &[]).as_deref(), Ok(want));
        }
    }

    const JOE_AGE_25: &str = "0003003300190003001c000400200004000519000c24000c2f00616765646174616e616d650a78787878787878787878034a6f65";

    #[test]
    fn mysql_8_partial_update_fixture() {
        // json.binlog.000001 (MySQL 8.0.22): the UPDATE_ROWS after image of
        // row 1, then the PARTIAL_UPDATE_ROWS diff `json_col = JSON_SET(json_col, '$.age', 26)`.
        let before = hex(JOE_AGE_25);
        assert_eq!(
            text(&before),
            r#"{"age": 25, "data": "xxxxxxxxxx", "name": "Joe"}"#
        );
        let diff = hex("0005242e61676503051a00");
        assert_eq!(
            apply_json_diff(&before, &diff).as_deref(),
            Ok(r#"{"age": 26, "data": "xxxxxxxxxx", "name": "Joe"}"#)
        );
    }

    #[test]
    fn f24_sparse_documents_after_in_place_remove() {
        // OBC JsonPartialUpdateParseTest: the same JSON_REMOVE as MySQL 5.7
        // and 8.0 write it; 8.0 leaves the removed key and value as holes.
        let v57 = hex("000600e4012e002800560028007e002800a6002800ce002800f6002800001e010035010c4c010085010c9c0100cd01316633613265613562633166363032353864663230353231626565396163363336646636396133613466346439396134333866333334643764626638336131383136303135623336316238343862336239303231313632323931626537326635613830323534383066343462663434643564383164303763396230656431313533326566656136383866646631326232386631343262396562303861383063356536356164303736326332353962303562343836366637323439656162656361626164626535373766663263303765646361613365393837633233666235636334666538363062623532626563663030010017000b0008000c130063757272656e637903555344010017000b0008000c130063757272656e63790355534438746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f335f77696c6c5f62655f72656d6f766564010017000b0008000c130063757272656e63790355534430746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f315f75706461746564010017000b0008000c130063757272656e637903555344");
        let v80 = hex("0006003c025d00280085002800ad002800d5002800fd00280025012800007601008d010ca40100dd010cf401002502010cf4010025023137666339383839343734303238303633393930393134303031663638353466366238623537383431663361326561356263316636303235386466323035323162656539616336333664663639613361346634643939613433386633333464376462663833613138313630313562333631623834386233623930323131363232393162653732663561383032353438306634346266343464356438316430376339623065643131353332656665613638386664663132623238663134326239656230386138306335653635616430373632633235396230356234383636663732343965616265636162616462653537376666326330376564636161336539383763323366623563633466653836306262353262656366303028746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f32010017000b0008000c130063757272656e637903555344010017000b0008000c130063757272656e63790355534438746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f335f77696c6c5f62655f72656d6f766564010017000b0008000c130063757272656e63790355534430746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f315f75706461746564010017000b0008000c130063757272656e637903555344");
        let usd = r#"{"currency": "USD"}"#;
        let want = format!(
            "{{\"1f3a2ea5bc1f60258df20521bee9ac636df69a3a\": {usd}, \
             \"4f4d99a438f334d7dbf83a1816015b361b848b3b\": {usd}, \
             \"9021162291be72f5a8025480f44bf44d5d81d07c\": \"test_field_for_remove_fields_behaviour_3_will_be_removed\", \
             \"9b0ed11532efea688fdf12b28f142b9eb08a80c5\": {usd}, \
             \"e65ad0762c259b05b4866f7249eabecabadbe577\": \"test_field_for_remove_fields_behaviour_1_updated\", \
             \"ff2c07edcaa3e987c23fb5cc4fe860bb52becf00\": {usd}}}"
        );
        assert_eq!(text(&v57), want);
        assert_eq!(text(&v80), want);
        assert!(!text(&v80).contains("17fc9889474028063990914001f6854f6b8b5784"));
        assert_eq!(apply_json_diff(&v80, &[]).as_deref(), Ok(want.as_str()));
    }

    // -- partial updates ----------------------------------------------------------

    fn lenenc(n: usize) -> Vec<u8> {
        match n {
            0..=250 => vec![n as u8],
            251..=0xffff => {
                let mut v = vec![252];
                v.extend_from_slice(&(n as u16).to_le_bytes());
                v
            }
            0x1_0000..=0xff_ffff => {
                let mut v = vec![253];
                v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
                v
            }
            _ => {
                let mut v = vec![254];
                v.extend_from_slice(&(n as u64).to_le_bytes());
                v
            }
        }
    }

    fn diff_entry(op: u8, path: &str, value: Option<&[u8]>) -> Vec<u8> {
        let mut out = vec![op];
        out.extend(lenenc(path.len()));
        out.extend_from_slice(path.as_bytes());
        if let Some(value) = value {
            out.extend(lenenc(value.len()));
            out.extend_from_slice(value);
        }
        out
    }

    fn apply(before: &T, diffs: &[Vec<u8>]) -> Result<String, JsonError> {
        let out = apply_json_diff(&doc(before), &diffs.concat());
        if let Ok(text) = &out {
            assert_valid_json(text);
        }
        out
    }

    fn f22_row() -> T {
        obj(&[
            ("a", s("aaaaaaaaaaaaa")),
            ("c", s("ccccccccccccccc")),
            ("ab", T::Arr(vec![s("abababababababa"), s("babababababab")])),
        ])
    }

    #[test]
    fn f22_replace_with_a_json_string() {
        let value = doc(&s("[\"ab_updatedccc\"]"));
        assert_eq!(
            apply(&f22_row(), &[diff_entry(0, "$.ab", Some(&value))]).as_deref(),
            Ok(r#"{"a": "aaaaaaaaaaaaa", "c": "ccccccccccccccc", "ab": "[\"ab_updatedccc\"]"}"#)
        );
    }

    #[test]
    fn f23_remove_and_replace_plus_remove() {
        assert_eq!(
            apply(&f22_row(), &[diff_entry(2, "$.ab", None)]).as_deref(),
            Ok(r#"{"a": "aaaaaaaaaaaaa", "c": "ccccccccccccccc"}"#)
        );
        let value = doc(&T::Arr(vec![s("ab_ddd")]));
        assert_eq!(
            apply(
                &f22_row(),
                &[
                    diff_entry(0, "$.ab", Some(&value)),
                    diff_entry(2, "$.c", None)
                ]
            )
            .as_deref(),
            Ok(r#"{"a": "aaaaaaaaaaaaa", "ab": ["ab_ddd"]}"#)
        );
    }

    fn f24_row() -> T {
        obj(&[
            ("age", T::I16(22)),
            (
                "addr",
                obj(&[
                    ("code", T::I16(100)),
                    ("detail", obj(&[("ab", s("970785C8-C299"))])),
                ]),
            ),
            ("name", s("Alice")),
        ])
    }

    #[test]
    fn f24_set_replace_remove_nested() {
        let value = doc(&s("xyz"));
        assert_eq!(
            apply(
                &f24_row(),
                &[diff_entry(0, "$.addr.detail.ab", Some(&value))]
            )
            .as_deref(),
            Ok(r#"{"age": 22, "addr": {"code": 100, "detail": {"ab": "xyz"}}, "name": "Alice"}"#)
        );
        assert_eq!(
            apply(&f24_row(), &[diff_entry(2, "$.addr.detail.ab", None)]).as_deref(),
            Ok(r#"{"age": 22, "addr": {"code": 100, "detail": {}}, "name": "Alice"}"#)
        );
        let list = T::Arr(vec![s("foo"), s("bar"), s("baz")]);
        assert_eq!(
            apply(&list, &[diff_entry(2, "$[1]", None)]).as_deref(),
            Ok(r#"["foo", "baz"]"#)
        );
        assert_eq!(
            apply(&list, &[diff_entry(2, "$[last]", None)]).as_deref(),
            Ok(r#"["foo", "bar"]"#)
        );
        assert_eq!(
            apply(&list, &[diff_entry(2, "$[last-2]", None)]).as_deref(),
            Ok(r#"["bar", "baz"]"#)
        );
    }

    #[test]
    fn insert_follows_mysql_semantics() {
        let one = doc(&T::I16(1));
        // New members go to their sorted (length, bytes) position.
        for (path, want) in [
            ("$.b", r#"{"a": 0, "b": 1, "zz": 0, "aaa": 0}"#),
            ("$.zzz", r#"{"a": 0, "zz": 0, "aaa": 0, "zzz": 1}"#),
            ("$.\"\"", r#"{"": 1, "a": 0, "zz": 0, "aaa": 0}"#),
            ("$.ab", r#"{"a": 0, "ab": 1, "zz": 0, "aaa": 0}"#),
        ] {
            let before = obj(&[("a", T::I16(0)), ("zz", T::I16(0)), ("aaa", T::I16(0))]);
            assert_eq!(
                apply(&before, &[diff_entry(1, path, Some(&one))]).as_deref(),
                Ok(want),
                "{path}"
            );
        }
        // Arrays: before an index, past the end appends, `last` counts from the end.
        let list = T::Arr(vec![s("x"), s("y")]);
        for (path, want) in [
            ("$[0]", r#"[1, "x", "y"]"#),
            ("$[1]", r#"["x", 1, "y"]"#),
            ("$[2]", r#"["x", "y", 1]"#),
            ("$[99]", r#"["x", "y", 1]"#),
            ("$[last]", r#"["x", 1, "y"]"#),
            ("$[last-5]", r#"[1, "x", "y"]"#),
        ] {
            assert_eq!(
                apply(&list, &[diff_entry(1, path, Some(&one))]).as_deref(),
                Ok(want),
                "{path}"
            );
        }
        // Several diffs apply in order, each on the previous result.
        let nested = doc(&obj(&[("n", T::Arr(vec![]))]));
        assert_eq!(
            apply(
                &obj(&[("a", T::I16(0))]),
                &[
                    diff_entry(1, "$.b", Some(&nested)),
                    diff_entry(1, "$.b.n[0]", Some(&one)),
                    diff_entry(0, "$.a", Some(&doc(&T::F64(2.0)))),
                    diff_entry(1, "$.b.n[5]", Some(&doc(&T::Null))),
                ]
            )
            .as_deref(),
            Ok(r#"{"a": 2.0, "b": {"n": [1, null]}}"#)
        );
    }

    #[test]
    fn diffs_keep_exact_values() {
        let before = obj(&[
            ("d", decimal("1.50", 5, 2, "1.50")),
            ("u", T::U64(u64::MAX)),
        ]);
        let value = doc(&T::Opaque(
            FIELD_DATE,
            pack_datetime(2012, 3, 18, 0, 0, 0, 0),
            String::new(),
        ));
        assert_eq!(
            apply(&before, &[diff_entry(1, "$.t", Some(&value))]).as_deref(),
            Ok(r#"{"d": 1.50, "t": "2012-03-18", "u": 18446744073709551615}"#)
        );
    }

    #[test]
    fn paths_parse_like_mysql() {
        let member = |s: &str| Leg::Member(s.to_owned());
        let cell = |index: u32, from_end: bool| Leg::Cell { index, from_end };
        // (path, legs, how MySQL's Json_path::to_string writes it back)
        for (path, legs, canonical) in [
            ("$", vec![], "$"),
            (" $ ", vec![], "$"),
            (
                "$.a[1].\"b c\"",
                vec![member("a"), cell(1, false), member("b c")],
                "$.a[1].\"b c\"",
            ),
            (
                "$ . a [ 1 ] . \"b c\"",
                vec![member("a"), cell(1, false), member("b c")],
                "$.a[1].\"b c\"",
            ),
            (
                "$.\"a\\\"b\\\\c\\u00e9\\ud83c\\udf54\"",
                vec![member("a\"b\\cé🍔")],
                "$.\"a\\\"b\\\\cé🍔\"",
            ),
            ("$.\"\"", vec![member("")], "$.\"\""),
            ("$.a_1$", vec![member("a_1$")], "$.a_1$"),
            ("$.\"1a\"", vec![member("1a")], "$.\"1a\""),
            ("$.é_1", vec![member("é_1")], "$.\"é_1\""),
            ("$[last]", vec![cell(0, true)], "$[last]"),
            ("$[last-3]", vec![cell(3, true)], "$[last-3]"),
            ("$[ last - 3 ]", vec![cell(3, true)], "$[last-3]"),
            (
                "$[4294967295]",
                vec![cell(u32::MAX, false)],
                "$[4294967295]",
            ),
        ] {
            assert_eq!(parse_path(path), Ok(legs.clone()), "{path}");
            assert_eq!(path_text(&legs), canonical);
            assert_eq!(parse_path(canonical), Ok(legs), "{canonical}");
        }
        for (path, at) in [
            ("", 0),
            ("a", 0),
            ("$.", 2),
            ("$.*", 2),
            ("$[*]", 2),
            ("$**.a", 1),
            ("$[1 to 2]", 4),
            ("$[4294967296]", 2),
            ("$[-1]", 2),
            ("$[1", 3),
            ("$.\"abc", 2),
            ("$.\"a\\x\"", 4),
            ("$.\"\\ud800\"", 3),
            ("$a", 1),
        ] {
            match parse_path(path) {
                Err((got, _)) => assert_eq!(got, at, "{path}"),
                Ok(legs) => panic!("{path} parsed as {legs:?}"),
            }
        }
    }

    #[test]
    fn inapplicable_diffs_name_the_path() {
        let one = doc(&T::I16(1));
        for (diffs, index, path, needle) in [
            (
                vec![diff_entry(0, "$.addr.nope", Some(&one))],
                0,
                "$.addr.nope",
                "$.addr.nope does not exist",
            ),
            (
                vec![diff_entry(0, "$.x.y", Some(&one))],
                0,
                "$.x.y",
                "$.x does not exist",
            ),
            (
                vec![diff_entry(2, "$.addr.code[0]", None)],
                0,
                "$.addr.code[0]",
                "$.addr.code is a scalar",
            ),
            (
                vec![diff_entry(1, "$.age", Some(&one))],
                0,
                "$.age",
                "already exists",
            ),
            (
                vec![diff_entry(1, "$[0]", Some(&one))],
                0,
                "$[0]",
                "is an object",
            ),
            (
                vec![diff_entry(2, "$.nope", None)],
                0,
                "$.nope",
                "does not exist",
            ),
            (vec![diff_entry(0, "$", Some(&one))], 0, "$", "root"),
            (
                vec![diff_entry(2, "$.name", None), diff_entry(2, "$.name", None)],
                1,
                "$.name",
                "does not exist",
            ),
        ] {
            match apply(&f24_row(), &diffs) {
                Err(JsonError::DiffNotApplicable {
                    index: got,
                    path: got_path,
                    reason,
                    ..
                }) => {
                    assert_eq!((got, got_path.as_str()), (index, path));
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        let list = T::Arr(vec![s("x")]);
        for path in ["$[1]", "$[last-1]"] {
            assert!(matches!(
                apply(&list, &[diff_entry(2, path, None)]),
                Err(JsonError::DiffNotApplicable { .. })
            ));
        }
        // Nesting a value so that the result passes 100 levels is refused.
        let mut deep = T::I16(1);
        for _ in 0..MAX_DEPTH {
            deep = T::Arr(vec![deep]);
        }
        let err =
            apply(&f24_row(), &[diff_entry(0, "$.age", Some(&doc(&deep)))]).expect_err("too deep");
        assert!(err.to_string().contains("101 levels"), "{err}");
    }

    #[test]
    fn malformed_diffs_name_the_offset() {
        let value = doc(&T::I16(1));
        let good = diff_entry(0, "$.age", Some(&value));
        for (diff, offset, needle) in [
            (hex("03 01 24"), 0, "unknown operation 3"),
            (hex("00 fb"), 1, "invalid prefix 0xfb"),
            (hex("00 05 242e6167"), 2, "path of 5 bytes"),
            (hex("02 02 2461"), 3, "invalid path"),
            (hex("02 02 24ff"), 3, "UTF-8"),
            (hex("00 01 24 00"), 4, "empty value"),
            (hex("00 05 242e616765 03 0501"), 8, "value of 3 bytes"),
            (hex("00 05 242e616765 02 0501"), 9, "int16 needs 2 bytes"),
            (hex("00 05 242e616765 02 0e00"), 8, "unknown value type"),
            (hex("00 fc 01"), 1, "path length is truncated"),
        ] {
            match apply(&f24_row(), &[diff]) {
                Err(JsonError::MalformedDiff {
                    offset: got,
                    reason,
                }) => {
                    assert_eq!(got, offset, "{reason}");
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
                }
                other => panic!("{needle}: {other:?}"),
            }
        }
        // Every truncation of a valid vector (after its first diff) is refused.
        let vector = [
            good.clone(),
            diff_entry(2, "$.name", None),
            diff_entry(1, "$.z", Some(&value)),
        ]
        .concat();
        assert!(apply(&f24_row(), std::slice::from_ref(&vector)).is_ok());
        for cut in 1..vector.len() {
            if cut == good.len() || cut == good.len() + diff_entry(2, "$.name", None).len() {
                continue; // a whole number of diffs
            }
            assert!(
                apply(&f24_row(), &[vector[..cut].to_vec()]).is_err(),
                "cut {cut}"
            );
        }
        // Long paths use the multi-byte length prefixes.
        let long_key = "k".repeat(300);
        let before = T::Obj(vec![(long_key.clone(), T::I16(0))]);
        assert_eq!(
            apply(
                &before,
                &[diff_entry(0, &format!("$.{long_key}"), Some(&value))]
            ),
            Ok(format!("{{\"{long_key}\": 1}}"))
        );
    }

    #[test]
    fn random_diffs_against_a_reference_model() {
        // Build random documents, apply random valid REPLACE/INSERT/REMOVE
        // diffs both through the binary diff vector and on the test model,
        // and compare the rendered results.
        fn legs_of(t: &T, rng: &mut Rng, out: &mut Vec<Leg>) {
            match t {
                T::Arr(items) if !items.is_empty() && rng.below(3) > 0 => {
                    let i = rng.below(items.len());
                    out.push(Leg::Cell {
                        index: i as u32,
                        from_end: false,
                    });
                    legs_of(&items[i], rng, out);
                }
                T::Obj(members) if !members.is_empty() && rng.below(3) > 0 => {
                    let i = rng.below(members.len());
                    out.push(Leg::Member(members[i].0.clone()));
                    legs_of(&members[i].1, rng, out);
                }
                _ => {}
            }
        }
        fn at<'t>(t: &'t mut T, legs: &[Leg]) -> &'t mut T {
            legs.iter().fold(t, |t, leg| match (t, leg) {
                (T::Arr(items), Leg::Cell { index, .. }) => &mut items[*index as usize],
                (T::Obj(members), Leg::Member(name)) => {
                    &mut members
                        .iter_mut()
                        .find(|(k, _)| k == name)
                        .expect("member")
                        .1
                }
                _ => unreachable!(),
            })
        }
        let mut rng = Rng(0xd1ff);
        let mut applied = 0;
        for _ in 0..500 {
            // Unique member names per object keep the model unambiguous.
            let mut model = gen(&mut rng, 0);
            fn dedup(t: &mut T) {
                match t {
                    T::Arr(items) => items.iter_mut().for_each(dedup),
                    T::Obj(members) => {
                        let mut seen = std::collections::HashSet::new();
                        members.retain(|(k, _)| seen.insert(k.clone()));
                        members.iter_mut().for_each(|(_, v)| dedup(v));
                    }
                    _ => {}
                }
            }
            dedup(&mut model);
            let before = doc(&model);
            let mut vector = Vec::new();
            for _ in 0..rng.below(4) {
                let mut legs = Vec::new();
                legs_of(&model, &mut rng, &mut legs);
                let value = gen(&mut rng, 3);
                let Some((last, parents)) = legs.split_last() else {
                    continue;
                };
                match rng.below(3) {
                    0 => {
                        *at(&mut model, &legs) = value.clone();
                        vector.extend(diff_entry(0, &path_text(&legs), Some(&doc(&value))));
                    }
                    1 => {
                        let parent = at(&mut model, parents);
                        match (parent, last) {
                            (T::Arr(items), Leg::Cell { index, .. }) => {
                                items.remove(*index as usize);
                            }
                            (T::Obj(members), Leg::Member(name)) => {
                                members.retain(|(k, _)| k != name)
                            }
                            _ => unreachable!(),
                        }
                        vector.extend(diff_entry(2, &path_text(&legs), None));
                    }
                    _ => {
                        let parent = at(&mut model, parents);
                        let leg = match parent {
                            T::Arr(items) => {
                                let i = rng.below(items.len() + 2);
                                items.insert(i.min(items.len()), value.clone());
                                Leg::Cell {
                                    index: i as u32,
                                    from_end: false,
                                }
                            }
                            T::Obj(members) => {
                                let name = format!("new{}", rng.below(1000));
                                if members.iter().any(|(k, _)| *k == name) {
                                    continue;
                                }
                                let i = members
                                    .iter()
                                    .position(|(k, _)| key_order(k, &name) == Ordering::Greater)
                                    .unwrap_or(members.len());
                                members.insert(i, (name.clone(), value.clone()));
                                Leg::Member(name)
                            }
                            _ => unreachable!(),
                        };
                        let mut path = parents.to_vec();
                        path.push(leg);
                        vector.extend(diff_entry(1, &path_text(&path), Some(&doc(&value))));
                    }
                }
                applied += 1;
            }
            assert_eq!(apply_json_diff(&before, &vector), Ok(expected(&model)));
        }
        assert!(applied > 250, "only {applied} diffs exercised");
    }
}
