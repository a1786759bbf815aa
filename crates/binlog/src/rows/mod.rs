//! Row-image decoding: the rows data of WRITE/UPDATE/DELETE/PARTIAL_UPDATE
//! rows events to typed [`Value`]s, driven by the table's schema.
//!
//! Invariants:
//! * Every value keeps the server's real value (see `sluice_core::value`):
//!   unsigned integers, exact DECIMAL text padded to the scale, temporals
//!   with their zero fields and fsp, ENUM/SET indexes with labels, BIT,
//!   binary bytes, JSON text, per-column charsets decoded to UTF-8.
//! * Never panics and never reads out of bounds: malformed or truncated
//!   input is a [`RowError`] naming the column (`schema.table.column`), the
//!   reason and the byte offset within the rows data.
//! * A column that is not in an image (MINIMAL/NOBLOB row images) is
//!   [`Value::Absent`]; a column in the image whose null bit is set is
//!   [`Value::Null`].
//!
//! Layout (MySQL `sql/rpl_record.cc`, `Rows_log_event::print_verbose_one_row`):
//! each row is its image(s) back to back; an image is a null bitmap of
//! `ceil(present/8)` bytes (one bit per column present in the image, LSB
//! first), then the values of the present non-null columns in column order.
//! Updates carry the before image, then the after image. In a MySQL 8.0
//! PARTIAL_UPDATE_ROWS_EVENT the after image starts with `value_options`
//! (a length-encoded integer); when its PARTIAL_JSON_UPDATES bit (value 1)
//! is set it is followed by a bitmap with one bit for **every JSON column
//! of the table, present in the image or not** (`td->json_column_count()`
//! in the server), marking the columns whose value is a JSON diff against
//! the before image rather than a whole document.
//!
//! Speed: the schema is turned into one [`Plan`] per column once per rows
//! event, so the per-value work is a `match` on a small enum and bounds-
//! checked reads from a byte cursor; the only allocations are the row
//! `Vec` (sized to the column count) and each value's own `String`/`Vec`.
//!
//! Text: string and blob columns are decoded with the column's charset
//! ([`crate::charset`]); invalid bytes for the charset stay bytes, the
//! binary charset is bytes, and an unknown collation (no FULL metadata)
//! gives text when the bytes are valid UTF-8. CHAR values are logged
//! without their trailing pad and stay so (a `SELECT` strips it too);
//! BINARY(n) values (known binary collation) are logged without trailing
//! 0x00 bytes and are padded back to `n` bytes, as the server's own
//! `Field_string::unpack` does, so the value is the stored one.
//!
//! MariaDB compressed columns (`VARCHAR/TEXT ... COMPRESSED`, types 141 and
//! 140; MariaDB `sql/field_comp.cc`): after the usual length prefix, an
//! empty payload is the empty string; otherwise the first byte is a header
//! whose high nibble is the method (0 = stored: the rest is the raw value;
//! 8 = zlib), bit 3 says the stream is raw DEFLATE (no zlib wrapper) and the
//! low 3 bits are the byte count of the original length, which follows
//! **big-endian**, then the stream.

use std::sync::Arc;

use sluice_core::schema::type_code as tc;
use sluice_core::{ChangeKind, RowChange, TableSchema, Value};

use crate::decimal::DecimalError;
use crate::temporal::TemporalError;

/// Which rows event the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Write,
    Update,
    Delete,
    /// MySQL 8.0 PARTIAL_UPDATE_ROWS_EVENT (`binlog_row_value_options=
    /// PARTIAL_JSON`); decoded into [`ChangeKind::Update`] changes.
    PartialUpdate,
}

/// The rows part of one rows event, ready to decode.
#[derive(Debug, Clone, Copy)]
pub struct RowsImage<'a> {
    pub table: &'a Arc<TableSchema>,
    pub kind: RowsKind,
    /// Columns-present bitmap of the first image (LSB-first, bit i = column i):
    /// the after image for Write, the before image for Update/Delete/PartialUpdate.
    pub columns: &'a [u8],
    /// Columns-present bitmap of the after image (Update/PartialUpdate only; empty otherwise).
    pub columns_after: &'a [u8],
    /// The rows data: everything after the bitmaps up to (not including) the checksum,
    /// already decompressed for MariaDB compressed rows events.
    pub data: &'a [u8],
}

/// A row image that cannot be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("row image of {column}: {reason} (at byte {offset} of the rows data)")]
pub struct RowError {
    offset: usize,
    column: String,
    reason: RowErrorReason,
}

impl RowError {
    /// Byte offset within the rows data (or the value, for
    /// [`decode_value`]) where decoding failed.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// `schema.table.column` (just the column name for [`decode_value`];
    /// `schema.table` for errors outside any column).
    pub fn column(&self) -> &str {
        &self.column
    }

    pub fn reason(&self) -> &RowErrorReason {
        &self.reason
    }
}

/// Why a row image cannot be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowErrorReason {
    #[error("truncated: needs {needed} bytes, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("column type {0} is not supported")]
    UnsupportedType(u8),
    #[error(
        "pre-5.0 DECIMAL (type 0) carries no binlog metadata to decode it; \
         ALTER the column to DECIMAL to replicate it"
    )]
    OldDecimal,
    #[error("metadata {meta:#06x} is invalid for column type {type_code}")]
    BadMeta { type_code: u8, meta: u16 },
    #[error("DECIMAL: {0}")]
    Decimal(DecimalError),
    #[error("temporal value: {0}")]
    Temporal(TemporalError),
    #[error("compressed column: {0}")]
    Compressed(String),
    #[error("JSON: {0}")]
    Json(String),
    #[error("columns-present bitmap has {bytes} bytes, too short for {columns} columns")]
    BitmapTooShort { bytes: usize, columns: usize },
    #[error("row image holds no column, yet rows data remains")]
    EmptyImage,
    #[error("invalid length-encoded integer (first byte {0:#04x})")]
    BadPackedInt(u8),
}

#[inline]
fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1)
}

/// MySQL's PARTIAL_JSON_UPDATES `binlog_row_value_options` bit.
const PARTIAL_JSON_UPDATES: u64 = 1;

/// The decoder of one rows event.
struct Decoder<'a> {
    table: &'a TableSchema,
    plans: Vec<Plan>,
    json_columns: usize,
}

/// For partial updates: the byte range of each JSON column's document in
/// the before image of the current row.
type JsonRanges = Vec<Option<(usize, usize)>>;

impl<'a> Decoder<'a> {
    fn new(table: &'a TableSchema) -> Self {
        let plans: Vec<Plan> = table.columns.iter().map(Plan::of).collect();
        let json_columns = table
            .columns
            .iter()
            .filter(|c| c.type_code == tc::JSON)
            .count();
        Decoder {
            table,
            plans,
            json_columns,
        }
    }

    fn table_error(&self, f: Fail) -> RowError {
        RowError {
            offset: f.at,
            column: format!("{}.{}", self.table.schema, self.table.table),
            reason: f.reason,
        }
    }

    fn column_error(&self, i: usize, f: Fail) -> RowError {
        let name = self.table.columns.get(i).map_or("?", |c| c.name.as_str());
        RowError {
            offset: f.at,
            column: format!("{}.{}.{}", self.table.schema, self.table.table, name),
            reason: f.reason,
        }
    }

    fn check_bitmap(&self, bitmap: &[u8], at: usize) -> Result<usize, RowError> {
        let n = self.plans.len();
        if bitmap.len() < n.div_ceil(8) {
            return Err(self.table_error(Fail::new(
                at,
                RowErrorReason::BitmapTooShort {
                    bytes: bitmap.len(),
                    columns: n,
                },
            )));
        }
        Ok((0..n).filter(|&i| bit(bitmap, i)).count())
    }

    /// Decodes one image. `json_before` (partial updates, before image)
    /// records where each JSON document is; `partial_after` (partial
    /// updates, after image) holds those ranges to apply diffs against.
    fn image(
        &self,
        present: &[u8],
        n_present: usize,
        cur: &mut Cur<'_>,
        mut json_before: Option<&mut JsonRanges>,
        partial_after: Option<&JsonRanges>,
    ) -> Result<Vec<Value>, RowError> {
        // A partial update's after image starts with value_options and
        // maybe the partial-JSON bitmap.
        let mut partial_bits: &[u8] = &[];
        if partial_after.is_some() {
            let options = cur.packed_int().map_err(|f| self.table_error(f))?;
            if options & PARTIAL_JSON_UPDATES != 0 {
                partial_bits = cur
                    .take(self.json_columns.div_ceil(8))
                    .map_err(|f| self.table_error(f))?;
            }
        }
        let nulls = cur
            .take(n_present.div_ceil(8))
            .map_err(|f| self.table_error(f))?;
        let mut row = Vec::with_capacity(self.plans.len());
        let mut k = 0usize; // index among present columns
        let mut json_k = 0usize; // index among the table's JSON columns
        for (i, (&plan, col)) in self.plans.iter().zip(&self.table.columns).enumerate() {
            let is_partial = if col.type_code == tc::JSON {
                json_k += 1;
                bit(partial_bits, json_k - 1)
            } else {
                false
            };
            if !bit(present, i) {
                row.push(Value::Absent);
                continue;
            }
            let is_null = bit(nulls, k);
            k += 1;
            if is_null {
                row.push(Value::Null);
                continue;
            }
            let start = cur.pos;
            let value = match (plan, is_partial, partial_after) {
                (Plan::Json { prefix }, true, Some(ranges)) => {
                    let diff = cur.prefixed(prefix).map_err(|f| self.column_error(i, f))?;
                    let before = ranges
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|(s, e)| cur.buf.get(s..e));
                    // Without the document (MINIMAL before image) the diff
                    // is reported as a diff, never applied to a guess.
                    let applied = match before {
                        Some(before) => {
                            crate::jsonb::apply_json_diff(before, diff).map(Value::Json)
                        }
                        None => crate::jsonb::json_diff_to_text(diff).map(Value::JsonDiff),
                    };
                    match applied {
                        Ok(v) => v,
                        Err(e) => {
                            return Err(self.column_error(
                                i,
                                Fail::new(start, RowErrorReason::Json(e.to_string())),
                            ))
                        }
                    }
                }
                _ => decode_one(plan, col, cur).map_err(|f| self.column_error(i, f))?,
            };
            if let (Plan::Json { prefix }, Some(ranges)) = (plan, json_before.as_deref_mut()) {
                if let Some(slot) = ranges.get_mut(i) {
                    *slot = Some((start + usize::from(prefix), cur.pos));
                }
            }
            row.push(value);
        }
        Ok(row)
    }
}

/// Decodes every row of a rows event and appends one [`RowChange`] per row
/// to `out`. On error nothing is appended.
pub fn decode_rows(image: &RowsImage<'_>, out: &mut Vec<RowChange>) -> Result<(), RowError> {
    let start_len = out.len();
    let result = decode_rows_inner(image, out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn decode_rows_inner(image: &RowsImage<'_>, out: &mut Vec<RowChange>) -> Result<(), RowError> {
    let dec = Decoder::new(image.table);
    let n_first = dec.check_bitmap(image.columns, 0)?;
    let two_images = matches!(image.kind, RowsKind::Update | RowsKind::PartialUpdate);
    let n_after = if two_images {
        dec.check_bitmap(image.columns_after, 0)?
    } else {
        0
    };
    let partial = image.kind == RowsKind::PartialUpdate;
    let mut json_ranges: JsonRanges = if partial {
        vec![None; dec.plans.len()]
    } else {
        Vec::new()
    };
    let mut cur = Cur {
        buf: image.data,
        pos: 0,
    };
    while cur.pos < image.data.len() {
        let row_start = cur.pos;
        let change = match image.kind {
            RowsKind::Write => RowChange {
                table: Arc::clone(image.table),
                kind: ChangeKind::Insert,
                before: None,
                after: Some(dec.image(image.columns, n_first, &mut cur, None, None)?),
            },
            RowsKind::Delete => RowChange {
                table: Arc::clone(image.table),
                kind: ChangeKind::Delete,
                before: Some(dec.image(image.columns, n_first, &mut cur, None, None)?),
                after: None,
            },
            RowsKind::Update => {
                let before = dec.image(image.columns, n_first, &mut cur, None, None)?;
                let after = dec.image(image.columns_after, n_after, &mut cur, None, None)?;
                RowChange {
                    table: Arc::clone(image.table),
                    kind: ChangeKind::Update,
                    before: Some(before),
                    after: Some(after),
                }
            }
            RowsKind::PartialUpdate => {
                json_ranges.iter_mut().for_each(|r| *r = None);
                let before = dec.image(
                    image.columns,
                    n_first,
                    &mut cur,
                    Some(&mut json_ranges),
                    None,
                )?;
                let after = dec.image(
                    image.columns_after,
                    n_after,
                    &mut cur,
                    None,
                    Some(&json_ranges),
                )?;
                RowChange {
                    table: Arc::clone(image.table),
                    kind: ChangeKind::Update,
                    before: Some(before),
                    after: Some(after),
                }
            }
        };
        if cur.pos == row_start {
            return Err(dec.table_error(Fail::new(row_start, RowErrorReason::EmptyImage)));
        }
        out.push(change);
    }
    Ok(())
}

mod value;

pub use value::decode_value;
use value::{decode_one, Cur, Fail, Plan};

#[cfg(test)]
mod tests;
