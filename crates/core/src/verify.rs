//! The canonical row encoding of `sluice verify`, and the comparison of what
//! both servers report.
//!
//! Source and target must hash **the same text for equal values**, so the
//! SQL that produces that text is written once, here ([`sql`]), and both
//! drivers (`sluice-binlog` on the source, `sluice-load` on the target) run
//! it unchanged; only the identifiers differ (routed table, renamed
//! columns). The rule:
//!
//! * every column is turned into its **canonical value** on the server
//!   ([`ColumnKind::canonical`]): text-like columns (CHAR, VARCHAR, TEXT,
//!   ENUM, SET, JSON) as `CONVERT(c USING utf8mb4)`, so a column's charset
//!   does not matter, only its characters — or, where that side's column
//!   already is utf8mb4, as `CAST(c AS BINARY)`: the same bytes without a
//!   conversion (a quarter of the server's work per row on a typical table,
//!   measured); BIT as its unsigned integer;
//!   binary strings as their bytes; numbers, DECIMAL and temporal types as
//!   the server's own text (exact DECIMAL with the column's scale,
//!   fractional seconds with the column's digits, TIMESTAMP in UTC because
//!   every verify session runs with `time_zone = '+00:00'`). FLOAT/DOUBLE
//!   text is the server's shortest form of the stored value, equal for equal
//!   values of the same column type;
//! * a row's text is its columns' canonical values joined by `,`:
//!   text-like and binary values (which may hold `,`) `QUOTE`d (`'…'`, with
//!   `\`, `'`, NUL and Ctrl-Z escaped; NULL as the bare word `NULL`),
//!   numbers and temporal values (whose text never holds `,` or `'` and is
//!   never `N`) as they are, `N` for NULL — unambiguous for a known column
//!   order and kinds, so no two different rows share a text; a column NOT
//!   NULL on both sides goes without the `IFNULL` (it cannot be `N`; the
//!   `IFNULL` was a third of the row text's server work on the benchmark
//!   table), and quoting cost a tenth of the `LENGTH:value` prefix plus
//!   `IFNULL` it replaced;
//! * a row's hash is `SHA1` of that text (160 bits; cheaper than MD5 on
//!   MariaDB 10.11 for short inputs, measured);
//! * a keyed chunk's checksum is its row count and the `SHA1` of its rows'
//!   hashes concatenated in key order (one pass, no derived table; ~4× faster
//!   than summing hash pieces with `CONV`, measured on 1M rows): every row's
//!   hash includes its key, so values swapped between rows change it (an XOR
//!   of CRC32s cancels). For a table whose row text is short whatever its
//!   values ([`sql::narrow`]: at most 1,024 bytes, where a text-like value
//!   that its declared length lets exceed 256 bytes stands as its `SHA1`
//!   once it is over 40), the chunk hashes its rows' texts joined by `;`
//!   instead of their hashes: as strong, without one `SHA1` per row (0.75 s
//!   instead of 1.1 s for 1M five-column rows,
//!   measured). A keyless chunk has no order to rely on: its checksum
//!   is the count and the exact **sums** of two 64-bit pieces of its rows'
//!   hashes, a multiset where duplicates count.
//!
//! Only a differing chunk crosses the network row by row (key + hash), and
//! only differing rows in full. What needs the same type on both sides (a
//! FLOAT against a DOUBLE renders differently) is the operator's schema, not
//! a difference sluice could repair; key columns must also have the same
//! collation on both sides, or the two servers would put different rows in
//! one key range — `sluice verify` refuses such a table.

pub mod read;
pub mod sql;

use std::collections::BTreeMap;

/// How a column's canonical value is produced and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// TINYINT..BIGINT (signed).
    Signed,
    /// TINYINT..BIGINT UNSIGNED.
    Unsigned,
    Decimal,
    Float,
    /// DATE, DATETIME, TIMESTAMP, TIME.
    Temporal,
    Year,
    /// CHAR, VARCHAR, TEXT, ENUM, SET (and MariaDB's JSON, which is text).
    Text,
    /// MySQL's JSON type.
    Json,
    /// BINARY, VARBINARY, BLOB, GEOMETRY, VECTOR.
    Binary,
    Bit,
}

impl ColumnKind {
    /// From `information_schema.COLUMNS`' `DATA_TYPE` and `COLUMN_TYPE`.
    pub fn from_type(data_type: &str, column_type: &str) -> ColumnKind {
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                if unsigned {
                    ColumnKind::Unsigned
                } else {
                    ColumnKind::Signed
                }
            }
            "decimal" | "numeric" => ColumnKind::Decimal,
            "float" | "double" | "real" => ColumnKind::Float,
            "date" | "datetime" | "timestamp" | "time" => ColumnKind::Temporal,
            "year" => ColumnKind::Year,
            "json" => ColumnKind::Json,
            "bit" => ColumnKind::Bit,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "vector" => {
                ColumnKind::Binary
            }
            _ => ColumnKind::Text,
        }
    }

    /// Whether the canonical text may hold the row text's `,` separator (or
    /// be `N`), so it needs its length first (see the module docs).
    pub fn may_hold_separator(self) -> bool {
        matches!(
            self,
            ColumnKind::Text | ColumnKind::Json | ColumnKind::Binary
        )
    }

    /// The most bytes of a canonical value of a column of this kind whose
    /// `CHARACTER_MAXIMUM_LENGTH` is `max_length`: text is utf8mb4 there
    /// (at most 4 bytes a character, whatever the column's charset), binary
    /// strings their bytes; `None` for other kinds, which are not quoted.
    pub fn max_bytes(self, max_length: Option<u64>) -> Option<u64> {
        match self {
            ColumnKind::Text | ColumnKind::Json => max_length?.checked_mul(4),
            ColumnKind::Binary => max_length,
            _ => None,
        }
    }

    /// The SQL expression of `ident`'s canonical value (see the module
    /// docs); `utf8mb4`: the column's charset on this side is utf8mb4, so
    /// its bytes already are the canonical text.
    pub fn canonical(self, ident: &str, utf8mb4: bool) -> String {
        match self {
            ColumnKind::Text if utf8mb4 => format!("CAST({ident} AS BINARY)"),
            ColumnKind::Text | ColumnKind::Json => format!("CONVERT({ident} USING utf8mb4)"),
            ColumnKind::Bit => format!("({ident} + 0)"),
            _ => ident.to_string(),
        }
    }
}

/// One compared column: its name on each side and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyColumn {
    pub source: String,
    pub target: String,
    pub kind: ColumnKind,
    /// The column's charset is utf8mb4 on the source / on the target (see
    /// [`ColumnKind::canonical`]).
    pub source_utf8mb4: bool,
    pub target_utf8mb4: bool,
    /// The column may hold NULL on either side (`false` only when it is
    /// NOT NULL on both): only then does its canonical text need the
    /// `IFNULL(…, 'N')` that keeps a NULL's place, which costs the servers
    /// about a third of the row text's work.
    pub nullable: bool,
    /// The most bytes this column's canonical value can have on either
    /// side, by its declared length ([`ColumnKind::max_bytes`]); `None`
    /// when unbounded or unknown.
    pub max_bytes: Option<u64>,
}

/// Whether a column of `collation` (`information_schema`'s name, empty for
/// non-text columns) stores utf8mb4.
pub fn is_utf8mb4(collation: &str) -> bool {
    collation
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("utf8mb4_"))
}

/// A table as verify compares it: the source table, its routed target, the
/// columns the column rules keep (in source order) and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyTable {
    pub source_schema: String,
    pub source_table: String,
    pub target_schema: String,
    pub target_table: String,
    pub columns: Vec<VerifyColumn>,
    /// Indexes into `columns` of the key (primary key, else a unique key
    /// over NOT NULL columns); empty for a keyless table.
    pub key: Vec<usize>,
}

impl VerifyTable {
    /// `schema.table` of the source.
    pub fn source_name(&self) -> String {
        format!("{}.{}", self.source_schema, self.source_table)
    }

    /// `schema.table` of the target.
    pub fn target_name(&self) -> String {
        format!("{}.{}", self.target_schema, self.target_table)
    }

    pub fn is_keyless(&self) -> bool {
        self.key.is_empty()
    }

    /// The key columns.
    pub fn key_columns(&self) -> impl Iterator<Item = &VerifyColumn> {
        self.key.iter().map(|&i| &self.columns[i])
    }
}

/// Which server a statement is for (which names it uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

/// A canonical value as the servers return it: bytes, `None` for NULL.
pub type Canonical = Option<Vec<u8>>;

/// A row's key (or a keyless row's whole canonical row) as canonical values.
pub type Key = Vec<Canonical>;

/// A parameter bound in verify statements: key bounds and repaired values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BindValue {
    Null,
    Int(i64),
    UInt(u64),
    /// Text in the connection's utf8mb4 (the server converts it to the
    /// column's charset, so an index on the column is used).
    Text(String),
    /// Binary strings.
    Bytes(Vec<u8>),
}

impl BindValue {
    /// The parameter that stands for canonical value `v` of a `kind` column.
    pub fn from_canonical(kind: ColumnKind, v: &Canonical) -> BindValue {
        let Some(bytes) = v else {
            return BindValue::Null;
        };
        let text = std::str::from_utf8(bytes).ok();
        match (kind, text) {
            (ColumnKind::Signed, Some(t)) => t.parse().map(BindValue::Int).ok(),
            (ColumnKind::Unsigned | ColumnKind::Bit, Some(t)) => {
                t.parse().map(BindValue::UInt).ok()
            }
            (ColumnKind::Binary, _) => Some(BindValue::Bytes(bytes.clone())),
            (_, Some(t)) => Some(BindValue::Text(t.to_string())),
            (_, None) => None,
        }
        .unwrap_or_else(|| BindValue::Bytes(bytes.clone()))
    }
}

/// A key range of a chunk: keys after `after` (exclusive) through
/// `through` (inclusive); `None` is open on that side. Keys compare as
/// tuples in the key's column order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub after: Option<Vec<BindValue>>,
    pub through: Option<Vec<BindValue>>,
}

/// Chunk bounds by key *value* for a single integer key: the `through`
/// bound of each chunk but the last (which is open), for keys from `min`
/// to `max` with about `estimated_rows` rows; `None` when the keys are too
/// sparse for it (then the planner walks the key index instead).
///
/// Why: walking the index (`LIMIT 1 OFFSET n-1` per chunk) reads every key
/// once more on the source, as much work as checksumming the rows; two
/// index dives (`MIN`, `MAX`) cost nothing. A chunk `(b-w, b]` of a unique
/// integer key holds at most `w` rows whatever the data, so with `w =
/// chunk_rows` no chunk is ever larger than the walk's (its checksum's
/// `GROUP_CONCAT` stays bounded, a differing chunk narrows to at most
/// `chunk_rows` rows). Sparse keys make chunks smaller, so the plan is used
/// only when the key span is at most four times the rows (by the server's
/// estimate, or `chunk_rows` when it estimates fewer): at most four times
/// the walk's chunk count, however wrong the estimate.
pub fn value_bounds(
    min: i128,
    max: i128,
    estimated_rows: u64,
    chunk_rows: u64,
) -> Option<impl Iterator<Item = i128>> {
    let width = i128::from(chunk_rows.max(1));
    let span = max.checked_sub(min)?.checked_add(1)?;
    let rows = i128::from(estimated_rows.max(chunk_rows));
    if span <= 0 || span > rows.saturating_mul(4) {
        return None;
    }
    let first = min.checked_add(width - 1)?;
    Some(
        std::iter::successors(Some(first), move |b| b.checked_add(width))
            .take_while(move |b| *b < max),
    )
}

/// A chunk's checksum as the server prints it, the row count first
/// (`count:…`, see [`sql::checksum`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSum(pub String);

impl ChunkSum {
    /// The row count part.
    pub fn rows(&self) -> u64 {
        self.0
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// What is wrong with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    MissingOnTarget,
    ExtraOnTarget,
    Different,
}

impl DiffKind {
    /// The name in verify's output.
    pub fn name(self) -> &'static str {
        match self {
            DiffKind::MissingOnTarget => "missing_on_target",
            DiffKind::ExtraOnTarget => "extra_on_target",
            DiffKind::Different => "different",
        }
    }
}

/// The keys whose rows differ between the two `(key, row hash)` lists.
pub fn diff_keyed(source: &[(Key, Vec<u8>)], target: &[(Key, Vec<u8>)]) -> BTreeMap<Key, DiffKind> {
    let src: BTreeMap<&Key, &Vec<u8>> = source.iter().map(|(k, h)| (k, h)).collect();
    let tgt: BTreeMap<&Key, &Vec<u8>> = target.iter().map(|(k, h)| (k, h)).collect();
    let mut out = BTreeMap::new();
    for (k, h) in &src {
        match tgt.get(k) {
            None => {
                out.insert((*k).clone(), DiffKind::MissingOnTarget);
            }
            Some(t) if t != h => {
                out.insert((*k).clone(), DiffKind::Different);
            }
            Some(_) => {}
        }
    }
    for k in tgt.keys() {
        if !src.contains_key(k) {
            out.insert((*k).clone(), DiffKind::ExtraOnTarget);
        }
    }
    out
}

/// The row hashes whose counts differ between two multisets (keyless
/// tables): for each, which side has more and how many more.
pub fn diff_multiset(
    source: &BTreeMap<Vec<u8>, u64>,
    target: &BTreeMap<Vec<u8>, u64>,
) -> BTreeMap<Vec<u8>, (DiffKind, u64)> {
    let mut out = BTreeMap::new();
    for (h, &n) in source {
        let t = target.get(h).copied().unwrap_or(0);
        if n > t {
            out.insert(h.clone(), (DiffKind::MissingOnTarget, n - t));
        }
    }
    for (h, &n) in target {
        let s = source.get(h).copied().unwrap_or(0);
        if n > s {
            out.insert(h.clone(), (DiffKind::ExtraOnTarget, n - s));
        }
    }
    out
}

/// Indexes of the columns whose canonical values differ.
pub fn differing_columns(source: &[Canonical], target: &[Canonical]) -> Vec<usize> {
    (0..source.len().max(target.len()))
        .filter(|&i| source.get(i) != target.get(i))
        .collect()
}

#[cfg(test)]
mod tests;
