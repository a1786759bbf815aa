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
//!
//! # Layout
//!
//! `decode` reads the binary format and streams each document into a
//! `Sink` (the event vocabulary shared by the parts, defined here); `text`
//! is the sink that writes MySQL's text; `diff` builds an owned tree from
//! the same events, parses diff vectors and applies them, using `path` for
//! JSON paths. The parts depend on each other in that order
//! only (text ← decode ← diff, text ← path ← diff).

mod decode;
mod diff;
mod path;
#[cfg(test)]
mod tests;
mod text;

use decode::decode;
use diff::{parse_diff_vector, render_node, Tree};
use text::{write_quoted, Text};

/// Deepest nesting of arrays and objects accepted (MySQL's
/// `JSON_DOCUMENT_MAX_DEPTH`).
const MAX_DEPTH: usize = 100;

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
