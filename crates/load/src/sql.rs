//! SQL statements for the target, with every value a bound parameter (or,
//! for statements not worth preparing, an exact literal).
//!
//! # Shapes
//!
//! * upsert (keyed tables):
//!   ``INSERT INTO `s`.`t` (`c1`,…) VALUES (?,…),(?,…) ON DUPLICATE KEY UPDATE
//!   `k`=IF(`k` <=> VALUES(`k`), VALUES(`k`), NULL), `c1`=VALUES(`c1`),…`` —
//!   the full after image, every column. The first assignment is a guard:
//!   when the insert collides not on its own key but on another unique key
//!   (another row holds one of its unique values), plain `ON DUPLICATE KEY
//!   UPDATE` would silently turn that other row into this one; the guard
//!   sets the NOT NULL key column to NULL instead, which strict mode refuses
//!   (error 1048), and the loader handles the collision (see
//!   [`crate::apply`]). `VALUES()` is MariaDB's form and still accepted by
//!   MySQL 8.
//! * replace (keyed tables, [`crate::apply::UniqueConflict::Replace`]):
//!   `REPLACE INTO` with the same rows: rows colliding on any unique key are
//!   deleted first (MySQL's own idempotent replica semantics).
//! * delete by key: ``DELETE FROM `s`.`t` WHERE `id` IN (?,…)``, or
//!   ``WHERE (`a`,`b`) IN ((?,?),…)`` for a composite key of numbers,
//!   temporals and binary strings, or ``WHERE (`a`=? AND `b`=?) OR …`` for
//!   a composite key with a character column (all use the key's index as
//!   ranges). The row-constructor `IN` does not convert bound strings to
//!   the column's charset on MariaDB 10.11: with more than one tuple it
//!   matched no ucs2/utf16/utf32 value and no non-ASCII latin1, gbk, big5 or
//!   sjis value, and deleted nothing without an error (issue 20). A scalar
//!   comparison converts each string, so the OR form matches in every
//!   charset. (Single-column `IN` lists, the upsert's guard, which compares
//!   a column with `VALUES()` of itself, and the keyless `<=>` matches
//!   compare scalars and were checked against every charset family, see
//!   `fidelity::deletes_and_key_changes_match_in_every_charset`.)
//! * insert (tables without a key): plain multi-row `INSERT`.
//! * delete one (tables without a key): ``DELETE FROM `s`.`t` WHERE `c1` <=> ?
//!   AND … LIMIT 1`` — `<=>` so NULLs match.
//!
//! # Size
//!
//! Rows go into one statement while it stays under a byte budget (statement
//! text plus encoded parameters; a single larger row goes alone) and under
//! `max_rows` and MySQL's 65,535 placeholders. Statements are prepared once
//! per connection and cached by text, so the number of distinct texts
//! matters: a multi-row upsert or delete whose row count is not a power of
//! two is padded up to the next one by repeating its last row when the
//! budget allows (an upsert of the same full image twice, or the same key
//! twice in an `IN` list, changes nothing), so a table has at most about
//! log2(max_rows) shapes. Other odd-sized statements are prepared, run and
//! closed without entering the cache. Inserts into tables without a key are
//! never padded: there a repeated row would be a real second row.
//!
//! # Values
//!
//! Each value is sent so the server stores exactly the source's value:
//! integers as 64-bit (unsigned stays unsigned), FLOAT/DOUBLE as binary
//! floats, DECIMAL as its exact text, DATE/DATETIME/TIMESTAMP/TIME as text in
//! the column's format with exactly its fractional digits (zero dates kept;
//! TIMESTAMP rendered in UTC, which the session's `time_zone='+00:00'` reads
//! back to the same epoch; TIME with sign and hours > 24), YEAR as a number
//! (`0` stays the zero year, where the string `'0'` would be 2000), ENUM by
//! label (by index when the table map had no labels; a number is an index
//! to the server) — except ENUM's error value, index 0, which is the number
//! 0 (its text `''` could be a real label) and which a strict session only
//! stores under the relaxed mode of [`crate::relaxed`] —, SET by labels (or
//! by bitmask), BIT as an unsigned
//! integer, JSON as text, GEOMETRY as its stored bytes (SRID + WKB), text as
//! UTF-8 (the connection charset is utf8mb4 and the server converts to the
//! column's charset), and binary strings as bytes. `Absent` (a column missing
//! from a MINIMAL image) and `JsonDiff` (a partial JSON update) cannot be
//! written and are refused.
//!
//! # Inline values
//!
//! A statement the connection's prepared-statement cache will not keep
//! (an odd row count, or a share touching more tables than the cache
//! holds, see [`crate::apply`]) costs three round trips as a prepared
//! statement (prepare, execute, close) and one as a plain query, for the
//! same server work (measured: a multi-row `INSERT` of literals costs the
//! server as much per row as the bound one). [`build_inline`] writes the
//! same statement with each value as the literal the server reads back to
//! exactly the value [`encode_value`] binds: numbers as digits, doubles
//! (and floats, widened exactly) in shortest round-trip scientific form,
//! every string the parameter would send as text as a `_utf8mb4` literal
//! (converted to the column's charset like the parameter), binary strings
//! and geometries as `_binary` literals; a string that is not plain
//! printable ASCII (quotes and backslashes included) is written in hex
//! (`_utf8mb4 X'…'`), so no escaping rule or `sql_mode` can change it.

use sluice_core::value::format_timestamp;
use sluice_core::{Row, TableSchema, Value};
use sqlx::mysql::MySqlArguments;
use sqlx::Arguments as _;

/// MySQL's limit on placeholders in one prepared statement.
pub const MAX_PLACEHOLDERS: usize = 65_535;

/// Rows per composite-key delete matched column by column: MariaDB 10.11's
/// range optimizer handles such an OR of ANDs in linear time up to about
/// 256 disjuncts (≈10 µs a row, like the row-constructor `IN`) and in
/// quadratic time beyond (1024 rows took 4× longer than `IN`).
pub const MAX_OR_ROWS: usize = 256;

/// How big one statement may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Statement text plus encoded parameters, in bytes. Keep it well below
    /// the target's `max_allowed_packet`.
    pub max_bytes: usize,
    /// Rows per multi-row statement.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 << 20,
            max_rows: 1024,
        }
    }
}

/// What a statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'k> {
    /// Upsert full images (keyed tables) on this key, guarded against
    /// collisions on other unique keys.
    Upsert(&'k [usize]),
    /// `REPLACE` full images (keyed tables).
    Replace,
    /// Delete by these key columns.
    Delete(&'k [usize]),
    /// Plain insert (tables without a key).
    Insert,
    /// Delete one row matching every column (tables without a key).
    DeleteOne,
}

impl Kind<'_> {
    fn pads(self) -> bool {
        matches!(self, Kind::Upsert(_) | Kind::Replace | Kind::Delete(_))
    }
}

/// Rows `start..start + len` of the input, sent as `padded` rows (the last
/// one repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub len: usize,
    pub padded: usize,
    /// Whether the statement text is worth caching as a prepared statement.
    pub persistent: bool,
}

/// A statement ready to execute.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    pub args: MySqlArguments,
    pub chunk: Chunk,
}

/// A value that cannot be sent to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub column: String,
    pub reason: String,
}

/// `` `name` `` with backticks doubled.
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_ident(&mut s, name);
    s
}

pub fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
}

/// `` `schema`.`table` ``
pub fn qualified_name(table: &TableSchema) -> String {
    let mut s = String::with_capacity(table.schema.len() + table.table.len() + 5);
    push_ident(&mut s, &table.schema);
    s.push('.');
    push_ident(&mut s, &table.table);
    s
}

/// The table a statement writes and which of its columns: every column,
/// or only some (the target computes its generated columns itself, see
/// [`crate::apply`]). Column indexes are the table map's, so rows are used
/// as they are, never copied to leave columns out.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub table: &'a TableSchema,
    /// Columns written, in table order; `None`: all of them.
    pub only: Option<&'a [usize]>,
}

impl<'a> Target<'a> {
    /// Every column of `table`.
    pub fn all(table: &'a TableSchema) -> Self {
        Target { table, only: None }
    }

    /// Only `cols` (indexes into `table.columns`, ascending).
    pub fn only(table: &'a TableSchema, cols: &'a [usize]) -> Self {
        Target {
            table,
            only: Some(cols),
        }
    }

    /// The written columns' indexes.
    pub fn cols(&self) -> Cols<'a> {
        match self.only {
            None => Cols::All(0..self.table.columns.len()),
            Some(c) => Cols::Only(c.iter()),
        }
    }

    fn ncols(&self) -> usize {
        self.only.map_or(self.table.columns.len(), <[usize]>::len)
    }
}

impl<'a> From<&'a TableSchema> for Target<'a> {
    fn from(table: &'a TableSchema) -> Self {
        Target::all(table)
    }
}

/// Iterator over [`Target::cols`].
#[derive(Debug, Clone)]
pub enum Cols<'a> {
    All(std::ops::Range<usize>),
    Only(std::slice::Iter<'a, usize>),
}

impl Iterator for Cols<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Cols::All(r) => r.next(),
            Cols::Only(i) => i.next().copied(),
        }
    }
}

/// Splits `rows` into statements of kind `kind`.
pub fn chunks<'a>(
    kind: Kind<'_>,
    target: impl Into<Target<'a>>,
    rows: &[&Row],
    limits: Limits,
) -> Vec<Chunk> {
    let target = target.into();
    let table = target.table;
    let cols: Vec<usize> = match kind {
        Kind::Delete(key) => key.to_vec(),
        _ => target.cols().collect(),
    };
    let params_per_row = cols.len().max(1);
    // "(?,?,…)," per row; "?," for a one-column key; "(`a`=? AND …) OR "
    // for a composite key compared column by column.
    let text_per_row = match kind {
        Kind::Delete(key) if key.len() == 1 => 2,
        Kind::Delete(key) if compares_by_column(table, key) => {
            key.iter()
                .map(|&i| table.columns[i].name.len() + 9)
                .sum::<usize>()
                + 4
        }
        _ => 2 * params_per_row + 2,
    };
    let sizes: Vec<usize> = rows
        .iter()
        .map(|r| cols.iter().map(|&i| wire_size(&r[i])).sum::<usize>() + text_per_row)
        .collect();
    let header = header_size(kind, target);
    let max_rows = match kind {
        Kind::DeleteOne => 1,
        Kind::Delete(key) if key.len() > 1 && compares_by_column(table, key) => limits
            .max_rows
            .min(MAX_OR_ROWS)
            .min(MAX_PLACEHOLDERS / params_per_row)
            .max(1),
        _ => limits
            .max_rows
            .min(MAX_PLACEHOLDERS / params_per_row)
            .max(1),
    };
    plan(&sizes, header, max_rows, limits.max_bytes, kind.pads())
}

fn plan(
    sizes: &[usize],
    header: usize,
    max_rows: usize,
    max_bytes: usize,
    pad: bool,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sizes.len() {
        let mut bytes = header;
        let mut len = 0;
        while i + len < sizes.len() && len < max_rows {
            let rb = sizes[i + len];
            if len > 0 && bytes + rb > max_bytes {
                break;
            }
            bytes += rb;
            len += 1;
        }
        let mut padded = len;
        if pad && len < max_rows && !len.is_power_of_two() {
            let p = len.next_power_of_two().min(max_rows);
            let last = sizes[i + len - 1];
            if bytes + (p - len) * last <= max_bytes {
                padded = p;
            }
        }
        out.push(Chunk {
            start: i,
            len,
            padded,
            persistent: padded == max_rows || padded.is_power_of_two(),
        });
        i += len;
    }
    out
}

fn header_size(kind: Kind<'_>, target: Target<'_>) -> usize {
    let table = target.table;
    let names: usize = target.cols().map(|i| table.columns[i].name.len() + 3).sum();
    let base = table.schema.len() + table.table.len() + 32;
    match kind {
        Kind::Upsert(key) => base + 3 * names + 32 + key.len() * 64,
        Kind::Insert | Kind::Replace => base + names,
        Kind::Delete(key) => base + key.len() * 32,
        Kind::DeleteOne => base + 2 * names,
    }
}

/// Bytes a value takes in COM_STMT_EXECUTE (type + value), roughly.
pub fn wire_size(v: &Value) -> usize {
    2 + match v {
        Value::Null | Value::Absent => 0,
        Value::Int(_) | Value::UInt(_) | Value::Double(_) | Value::Bit { .. } => 8,
        Value::Float(_) => 4,
        Value::Year(_) => 2,
        Value::Enum { label: Some(l), .. } => l.len() + 1,
        Value::Enum { label: None, .. } => 2,
        Value::Set {
            labels: Some(l), ..
        } => l.len() + 9,
        Value::Set { labels: None, .. } => 8,
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::JsonDiff(s) => s.len() + 9,
        Value::Bytes(b) | Value::Geometry(b) => b.len() + 9,
        Value::Date { .. } => 11,
        Value::DateTime(_) | Value::Timestamp { .. } => 28,
        Value::Time(_) => 18,
    }
}

/// Builds the statement for one chunk of `rows`, every value a bound
/// parameter.
pub fn build<'a>(
    kind: Kind<'_>,
    target: impl Into<Target<'a>>,
    rows: &[&Row],
    chunk: Chunk,
) -> Result<Statement, EncodeError> {
    let mut args = MySqlArguments::default();
    let sql = build_with(kind, target.into(), rows, chunk, &mut Params(&mut args))?;
    Ok(Statement { sql, args, chunk })
}

/// Builds the statement for one chunk of `rows` with every value written
/// into the text as a literal (see "Inline values" in the module docs), to
/// run as one plain query; `Ok(None)` when a value has no literal form
/// (then send [`build`]'s).
pub fn build_inline<'a>(
    kind: Kind<'_>,
    target: impl Into<Target<'a>>,
    rows: &[&Row],
    chunk: Chunk,
) -> Result<Option<String>, EncodeError> {
    let mut sink = Inline { unwritable: false };
    let sql = build_with(kind, target.into(), rows, chunk, &mut sink)?;
    Ok((!sink.unwritable).then_some(sql))
}

/// Where a statement's values go: bound parameters or literals.
trait Values {
    /// Writes `v`'s place in the text (`?` or the literal).
    fn push(&mut self, sql: &mut String, v: &Value) -> Result<(), String>;
}

struct Params<'p>(&'p mut MySqlArguments);

impl Values for Params<'_> {
    fn push(&mut self, sql: &mut String, v: &Value) -> Result<(), String> {
        sql.push('?');
        encode_value(self.0, v)
    }
}

struct Inline {
    /// A value without a literal form was met.
    unwritable: bool,
}

impl Values for Inline {
    fn push(&mut self, sql: &mut String, v: &Value) -> Result<(), String> {
        match push_literal(sql, v) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.unwritable = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn build_with(
    kind: Kind<'_>,
    target: Target<'_>,
    rows: &[&Row],
    chunk: Chunk,
    values: &mut impl Values,
) -> Result<String, EncodeError> {
    let table = target.table;
    let real = &rows[chunk.start..chunk.start + chunk.len];
    let last = real[real.len() - 1];
    let row_at = |n: usize| if n < real.len() { real[n] } else { last };
    let ncols = target.ncols();
    let mut sql = String::with_capacity(header_size(kind, target) + chunk.padded * (2 * ncols + 2));
    let mut put = |sql: &mut String, row: &Row, i: usize| {
        values.push(sql, &row[i]).map_err(|reason| EncodeError {
            column: table.columns[i].name.clone(),
            reason,
        })
    };
    let name = qualified_name(table);
    match kind {
        Kind::Upsert(_) | Kind::Insert | Kind::Replace => {
            sql.push_str(if kind == Kind::Replace {
                "REPLACE INTO "
            } else {
                "INSERT INTO "
            });
            sql.push_str(&name);
            sql.push_str(" (");
            push_column_list(&mut sql, target);
            sql.push_str(") VALUES ");
            for n in 0..chunk.padded {
                if n > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for (c, i) in target.cols().enumerate() {
                    if c > 0 {
                        sql.push(',');
                    }
                    put(&mut sql, row_at(n), i)?;
                }
                sql.push(')');
            }
            if let Kind::Upsert(key) = kind {
                push_upsert_assignments(&mut sql, target, key);
            }
        }
        Kind::Delete(key) if key.len() > 1 && compares_by_column(table, key) => {
            sql.push_str("DELETE FROM ");
            sql.push_str(&name);
            sql.push_str(" WHERE ");
            for n in 0..chunk.padded {
                if n > 0 {
                    sql.push_str(" OR ");
                }
                sql.push('(');
                for (c, &i) in key.iter().enumerate() {
                    if c > 0 {
                        sql.push_str(" AND ");
                    }
                    push_ident(&mut sql, &table.columns[i].name);
                    sql.push('=');
                    put(&mut sql, row_at(n), i)?;
                }
                sql.push(')');
            }
        }
        Kind::Delete(key) => {
            sql.push_str("DELETE FROM ");
            sql.push_str(&name);
            sql.push_str(" WHERE ");
            if key.len() == 1 {
                push_ident(&mut sql, &table.columns[key[0]].name);
            } else {
                sql.push('(');
                for (n, &i) in key.iter().enumerate() {
                    if n > 0 {
                        sql.push(',');
                    }
                    push_ident(&mut sql, &table.columns[i].name);
                }
                sql.push(')');
            }
            sql.push_str(" IN (");
            for n in 0..chunk.padded {
                if n > 0 {
                    sql.push(',');
                }
                if key.len() == 1 {
                    put(&mut sql, row_at(n), key[0])?;
                } else {
                    sql.push('(');
                    for (c, &i) in key.iter().enumerate() {
                        if c > 0 {
                            sql.push(',');
                        }
                        put(&mut sql, row_at(n), i)?;
                    }
                    sql.push(')');
                }
            }
            sql.push(')');
        }
        Kind::DeleteOne => {
            sql.push_str("DELETE FROM ");
            sql.push_str(&name);
            sql.push_str(" WHERE ");
            for (n, i) in target.cols().enumerate() {
                if n > 0 {
                    sql.push_str(" AND ");
                }
                push_ident(&mut sql, &table.columns[i].name);
                sql.push_str(" <=> ");
                put(&mut sql, last, i)?;
            }
            sql.push_str(" LIMIT 1");
        }
    }
    Ok(sql)
}

/// ` ON DUPLICATE KEY UPDATE <guard>, <every other column>` (see the
/// module docs). The guard comes first: assignments are evaluated left to
/// right, so it still sees the colliding row's own key.
fn push_upsert_assignments(sql: &mut String, target: Target<'_>, key: &[usize]) {
    let table = target.table;
    sql.push_str(" ON DUPLICATE KEY UPDATE ");
    let first = key.first().copied();
    if let Some(k0) = first {
        let name = &table.columns[k0].name;
        push_ident(sql, name);
        sql.push_str("=IF(");
        for (n, &k) in key.iter().enumerate() {
            if n > 0 {
                sql.push_str(" AND ");
            }
            let c = &table.columns[k].name;
            push_ident(sql, c);
            sql.push_str(" <=> VALUES(");
            push_ident(sql, c);
            sql.push(')');
        }
        sql.push_str(", VALUES(");
        push_ident(sql, name);
        sql.push_str("), NULL)");
    }
    let mut written = first.is_some();
    for i in target.cols() {
        let c = &table.columns[i];
        if Some(i) == first {
            continue;
        }
        if written {
            sql.push(',');
        }
        written = true;
        push_ident(sql, &c.name);
        sql.push_str("=VALUES(");
        push_ident(sql, &c.name);
        sql.push(')');
    }
}

/// Whether a composite key is matched column by column (`a=? AND b=?`)
/// rather than by a row constructor: when a key column holds characters
/// (see the module docs). Unknown collations count as characters.
pub fn compares_by_column(table: &TableSchema, key: &[usize]) -> bool {
    use sluice_core::schema::type_code as tc;
    key.iter().any(|&i| {
        let c = &table.columns[i];
        match c.type_code {
            tc::ENUM | tc::SET => true,
            tc::STRING
            | tc::VARCHAR
            | tc::VAR_STRING
            | tc::TINY_BLOB
            | tc::BLOB
            | tc::MEDIUM_BLOB
            | tc::LONG_BLOB
            | tc::VARCHAR_COMPRESSED
            | tc::BLOB_COMPRESSED => c.collation != Some(sluice_core::schema::BINARY_COLLATION),
            _ => false,
        }
    })
}

fn push_column_list(sql: &mut String, target: Target<'_>) {
    for (n, i) in target.cols().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        push_ident(sql, &target.table.columns[i].name);
    }
}

/// Adds one value as a bound parameter (see the module docs for the
/// encoding of each family).
pub fn encode_value(args: &mut MySqlArguments, v: &Value) -> Result<(), String> {
    let res = match v {
        Value::Null => args.add(None::<&str>),
        Value::Int(i) => args.add(*i),
        Value::UInt(u) => args.add(*u),
        Value::Float(f) => args.add(*f),
        Value::Double(d) => args.add(*d),
        Value::Year(y) => args.add(*y),
        Value::Bit { bits, .. } => args.add(*bits),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => args.add(s.as_str()),
        // The error value: by index, never by its text '' (see the docs).
        Value::Enum { index: 0, .. } => args.add(0u64),
        Value::Enum { label: Some(l), .. } => args.add(&**l),
        Value::Enum { index, label: None } => args.add(u64::from(*index)),
        Value::Set {
            labels: Some(l), ..
        } => args.add(l.as_str()),
        Value::Set { bits, labels: None } => args.add(*bits),
        Value::Bytes(b) | Value::Geometry(b) => args.add(b.as_slice()),
        Value::Date { .. } | Value::DateTime(_) | Value::Timestamp { .. } | Value::Time(_) => {
            let text = temporal_text(v).unwrap_or_default();
            args.add(text)
        }
        Value::Absent => {
            return Err(
                "is not in the row image (the source must log binlog_row_image=FULL)".into(),
            )
        }
        Value::JsonDiff(_) => {
            return Err("is a partial JSON update without its document".into());
        }
    };
    res.map_err(|e| format!("cannot be encoded: {e}"))
}

/// Writes `v` as a SQL literal that the server stores exactly as the
/// parameter [`encode_value`] binds (see "Inline values" in the module
/// docs); `Ok(false)` when it has none (a NaN or infinite float).
pub fn push_literal(out: &mut String, v: &Value) -> Result<bool, String> {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = match v {
        Value::Null => {
            out.push_str("NULL");
            Ok(())
        }
        Value::Int(i) => write!(out, "{i}"),
        Value::UInt(u) => write!(out, "{u}"),
        Value::Float(f) => return Ok(push_float(out, f64::from(*f))),
        Value::Double(d) => return Ok(push_float(out, *d)),
        Value::Year(y) => write!(out, "{y}"),
        Value::Bit { bits, .. } => write!(out, "{bits}"),
        Value::Enum { index: 0, .. } => {
            out.push('0');
            Ok(())
        }
        Value::Enum { label: Some(l), .. } => {
            push_text_literal(out, l);
            Ok(())
        }
        Value::Enum { index, label: None } => write!(out, "{index}"),
        Value::Set {
            labels: Some(l), ..
        } => {
            push_text_literal(out, l);
            Ok(())
        }
        Value::Set { bits, labels: None } => write!(out, "{bits}"),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => {
            push_text_literal(out, s);
            Ok(())
        }
        Value::Bytes(b) | Value::Geometry(b) => {
            push_bytes_literal(out, "_binary", b);
            Ok(())
        }
        Value::Date { .. } | Value::DateTime(_) | Value::Timestamp { .. } | Value::Time(_) => {
            push_text_literal(out, &temporal_text(v).unwrap_or_default());
            Ok(())
        }
        Value::Absent => {
            return Err(
                "is not in the row image (the source must log binlog_row_image=FULL)".into(),
            )
        }
        Value::JsonDiff(_) => {
            return Err("is a partial JSON update without its document".into());
        }
    };
    Ok(true)
}

/// A double as its shortest exact form in scientific notation (`1.5e0`),
/// which MySQL reads as a DOUBLE literal rounding back to the same bits; a
/// FLOAT's value widened to double is exact, and the column narrows it
/// back exactly. MySQL stores neither NaN nor infinities.
fn push_float(out: &mut String, d: f64) -> bool {
    use std::fmt::Write as _;
    if !d.is_finite() {
        return false;
    }
    let _ = write!(out, "{d:e}");
    true
}

/// Whether `b` may stand between single quotes as it is: printable ASCII
/// but the quotes and the backslash, so neither `NO_BACKSLASH_ESCAPES` nor
/// `ANSI_QUOTES` changes its meaning.
fn plain(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| (c == b' ' || c.is_ascii_graphic()) && !matches!(c, b'\'' | b'\\' | b'"' | b'`'))
}

/// A string in the connection charset (utf8mb4), as the bound text
/// parameter is: the server converts it to the column's charset.
fn push_text_literal(out: &mut String, s: &str) {
    push_bytes_literal(out, "_utf8mb4", s.as_bytes());
}

/// `_cs'…'` for plain bytes, else `_cs X'…'` (hex: no escaping at all).
fn push_bytes_literal(out: &mut String, introducer: &str, b: &[u8]) {
    out.push_str(introducer);
    if plain(b) {
        out.push('\'');
        // Plain bytes are ASCII.
        out.push_str(std::str::from_utf8(b).unwrap_or_default());
        out.push('\'');
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push_str(" X'");
        out.reserve(2 * b.len() + 1);
        for &c in b {
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        }
        out.push('\'');
    }
}

/// The text form the server parses back to the same temporal value, with
/// exactly the column's fractional digits.
pub fn temporal_text(v: &Value) -> Option<String> {
    match v {
        Value::Date { year, month, day } => Some(format!("{year:04}-{month:02}-{day:02}")),
        Value::DateTime(dt) => Some(dt.to_string()),
        Value::Timestamp { secs, micros, fsp } => Some(format_timestamp(*secs, *micros, *fsp)),
        Value::Time(t) => Some(t.to_string()),
        _ => None,
    }
}

/// A readable form of a statement kind, for logs.
pub fn describe_kind(kind: Kind<'_>) -> &'static str {
    match kind {
        Kind::Upsert(_) => "upsert",
        Kind::Replace => "replace",
        Kind::Delete(_) => "delete",
        Kind::Insert => "insert",
        Kind::DeleteOne => "delete-one",
    }
}

#[cfg(test)]
mod tests;
