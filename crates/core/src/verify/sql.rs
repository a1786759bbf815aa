//! The SQL text of `sluice verify`, the same for source and target (see the
//! parent module for the canonical encoding it implements).
//!
//! Every statement binds its values as `?` parameters (both drivers use that
//! placeholder) and returns every value as `CAST(.. AS BINARY)`, so each
//! driver reads plain bytes and neither converts them. Key ranges are
//! spelled as expanded comparisons (`a > ? OR (a = ? AND b > ?)`), which
//! every MySQL and MariaDB range optimizer turns into an index range (row
//! constructors are not used by older MariaDB optimizers).

use super::{BindValue, ColumnKind, KeyRange, Side, VerifyColumn, VerifyTable};

/// The system schemas, never verified (as never replicated).
pub const SYSTEM_SCHEMAS: &str = "'mysql','sys','information_schema','performance_schema'";

/// Every session that runs verify statements runs these first: text
/// literals in utf8mb4, TIMESTAMP text in UTC on both servers, and room for
/// a chunk's concatenated row hashes ([`checksum`]).
pub const SESSION_SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    GROUP_CONCAT_ROOM,
];

/// A chunk's row hashes (40 bytes a row) or short row texts (at most
/// [`NARROW_ROW`] bytes with their separator, see [`narrow`]) are
/// concatenated on the server: 1 GiB holds 1M rows of 1,024 bytes, the
/// largest chunk (`chunk_rows` ≤ 1,000,000), so the text is never truncated
/// (a truncation would hide differences past it).
pub const GROUP_CONCAT_ROOM: &str = "SET SESSION group_concat_max_len = 1073741824";

/// Base tables outside the system schemas, `(schema, table)`.
pub fn list_tables() -> String {
    format!(
        "SELECT CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) ORDER BY 1, 2"
    )
}

/// A table's columns in order: name, DATA_TYPE, COLUMN_TYPE, collation
/// (empty when none), IS_NULLABLE. Binds schema, table.
pub const DESCRIBE_COLUMNS: &str = "SELECT CAST(COLUMN_NAME AS BINARY), CAST(DATA_TYPE AS BINARY), \
     CAST(COLUMN_TYPE AS BINARY), CAST(COALESCE(COLLATION_NAME, '') AS BINARY), \
     CAST(IS_NULLABLE AS BINARY), CAST(COALESCE(CHARACTER_MAXIMUM_LENGTH, '') AS BINARY) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

/// A table's unique indexes' columns: index name, column name, nullable
/// (`YES` or empty), primary key first, in index order. Binds schema, table.
pub const DESCRIBE_KEYS: &str = "SELECT CAST(INDEX_NAME AS BINARY), CAST(COLUMN_NAME AS BINARY), \
     CAST(NULLABLE AS BINARY) FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
     ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX";

/// One row of [`DESCRIBE_KEYS`]: index name, column name, nullable.
pub type KeyPart = (String, String, String);

/// The key a table is verified by, from [`DESCRIBE_KEYS`]' rows: the
/// primary key, else the first unique index over NOT NULL columns; empty
/// when there is none (keyless).
pub fn choose_key(rows: &[KeyPart]) -> Vec<String> {
    let mut indexes: Vec<(&str, Vec<&KeyPart>)> = Vec::new();
    for row in rows {
        match indexes.last_mut() {
            Some((name, cols)) if *name == row.0 => cols.push(row),
            _ => indexes.push((&row.0, vec![row])),
        }
    }
    indexes
        .into_iter()
        .find(|(_, cols)| cols.iter().all(|c| !c.2.eq_ignore_ascii_case("yes")))
        .map(|(_, cols)| cols.iter().map(|c| c.1.clone()).collect())
        .unwrap_or_default()
}

/// `ident` quoted with backticks.
pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn table_ident(t: &VerifyTable, side: Side) -> String {
    match side {
        Side::Source => format!("{}.{}", quote(&t.source_schema), quote(&t.source_table)),
        Side::Target => format!("{}.{}", quote(&t.target_schema), quote(&t.target_table)),
    }
}

fn column_ident(c: &VerifyColumn, side: Side) -> String {
    quote(match side {
        Side::Source => &c.source,
        Side::Target => &c.target,
    })
}

fn canonical(c: &VerifyColumn, side: Side) -> String {
    let utf8mb4 = match side {
        Side::Source => c.source_utf8mb4,
        Side::Target => c.target_utf8mb4,
    };
    c.kind.canonical(&column_ident(c, side), utf8mb4)
}

/// The row's hash: `SHA1` of its columns' canonical values joined by `,`
/// ([`row_text`]).
pub fn row_hash(t: &VerifyTable, side: Side) -> String {
    format!("SHA1({})", row_text(t, side, false))
}

/// A row's text: its columns' canonical values joined by `,`. Text-like and
/// binary values (which may hold `,`) stand `QUOTE`d — `'…'` with `\`, `'`,
/// NUL and Ctrl-Z escaped, so the closing quote is found without knowing
/// the length, and NULL as the bare word `NULL` (no `IFNULL`); quoting
/// costs the servers about a tenth of the length prefix and `IFNULL` it
/// replaces (measured, 1M rows). Numbers and temporal values (whose text
/// never holds `,` or a quote and is never `N`) stand as they are, `N` for
/// NULL, without the `IFNULL` when the column is NOT NULL on both sides.
/// Unambiguous for a known column order and kinds.
///
/// `short`: a text-like value that may be longer than [`INLINE_VALUE`]
/// bytes (its column's declared length allows it) and is longer than
/// [`SHORT_VALUE`] bytes stands as its `SHA1` — 40 hexadecimal digits
/// without quotes, so still unambiguous — which bounds the text's size
/// whatever the data ([`narrow`]); a column declared short enough stands
/// as itself, without the `IF` and the `LENGTH`s, which were a fifth of the
/// chunk query's work on the benchmark table (measured).
fn row_text(t: &VerifyTable, side: Side, short: bool) -> String {
    let parts: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let v = canonical(c, side);
            if !c.kind.may_hold_separator() {
                return if c.nullable {
                    format!("IFNULL({v}, 'N')")
                } else {
                    v
                };
            }
            if short && !inline(c) {
                format!("IF(LENGTH({v}) > {SHORT_VALUE}, SHA1({v}), QUOTE({v}))")
            } else {
                format!("QUOTE({v})")
            }
        })
        .collect();
    format!("CONCAT_WS(',', {})", parts.join(", "))
}

/// Text-like values up to this many bytes stand as themselves in a chunk's
/// row texts, longer ones as their `SHA1` (40 bytes), unless the column is
/// [`inline`].
pub const SHORT_VALUE: usize = 40;

/// A text-like column whose canonical values are at most this many bytes on
/// both sides (by its declared length) stands as itself in a chunk's row
/// texts, whatever its values.
pub const INLINE_VALUE: u64 = 256;

/// Most bytes of a row's short text with its separator for a chunk to
/// concatenate the texts themselves ([`narrow`]).
pub const NARROW_ROW: usize = 1024;

fn inline(c: &VerifyColumn) -> bool {
    c.max_bytes.is_some_and(|m| m <= INLINE_VALUE)
}

/// Whether a row's short text ([`row_text`]) with its separator is at most
/// [`NARROW_ROW`] bytes whatever its values, so a chunk's checksum can
/// concatenate the rows' texts instead of hashing each row first (the
/// per-row `SHA1` is a quarter of the servers' checksum work).
pub fn narrow(t: &VerifyTable) -> bool {
    let widths: usize = t
        .columns
        .iter()
        .map(|c| {
            1 + match c.kind {
                // `-9223372036854775808`, 18446744073709551615.
                ColumnKind::Signed | ColumnKind::Unsigned | ColumnKind::Bit => 20,
                // 65 digits, a sign and a point.
                ColumnKind::Decimal => 67,
                // `-1.2345678901234567e-308`
                ColumnKind::Float => 24,
                // `2024-01-01 00:00:00.000000`, `-838:59:59.000000`
                ColumnKind::Temporal => 26,
                ColumnKind::Year => 4,
                // Quoted, every byte escaped at worst.
                ColumnKind::Text | ColumnKind::Json | ColumnKind::Binary => match c.max_bytes {
                    Some(m) if inline(c) => 2 + 2 * m as usize,
                    _ => 2 + 2 * SHORT_VALUE,
                },
            }
        })
        .sum();
    widths <= NARROW_ROW
}

/// `CAST(canonical AS BINARY)` of each column in `cols`.
fn select_canonical<'a>(cols: impl Iterator<Item = &'a VerifyColumn>, side: Side) -> String {
    cols.map(|c| format!("CAST({} AS BINARY)", canonical(c, side)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k1 > ? OR (k1 = ? AND (k2 > ? ...))` (`op` `>`), or the `<=` form
/// (`op` `<`, closed at the end), binding into `binds`.
fn tuple_compare(
    keys: &[String],
    vals: &[BindValue],
    op: &str,
    binds: &mut Vec<BindValue>,
) -> String {
    let (Some(k), Some(v)) = (keys.first(), vals.first()) else {
        return if op == "<" {
            "TRUE".into()
        } else {
            "FALSE".into()
        };
    };
    binds.push(v.clone());
    if keys.len() == 1 {
        let op = if op == "<" { "<=" } else { op };
        return format!("{k} {op} ?");
    }
    binds.push(v.clone());
    let rest = tuple_compare(&keys[1..], &vals[1..], op, binds);
    format!("({k} {op} ? OR ({k} = ? AND ({rest})))")
}

/// The WHERE condition of `range` and its parameters.
pub fn range_predicate(t: &VerifyTable, side: Side, range: &KeyRange) -> (String, Vec<BindValue>) {
    let keys: Vec<String> = t.key_columns().map(|c| column_ident(c, side)).collect();
    let mut binds = Vec::new();
    let mut parts = Vec::new();
    if let Some(after) = &range.after {
        parts.push(tuple_compare(&keys, after, ">", &mut binds));
    }
    if let Some(through) = &range.through {
        parts.push(tuple_compare(&keys, through, "<", &mut binds));
    }
    if parts.is_empty() {
        parts.push("TRUE".into());
    }
    (parts.join(" AND "), binds)
}

/// The condition matching exactly `keys` (each in key column order).
pub fn keys_predicate(
    t: &VerifyTable,
    side: Side,
    keys: &[Vec<BindValue>],
) -> (String, Vec<BindValue>) {
    let cols: Vec<String> = t.key_columns().map(|c| column_ident(c, side)).collect();
    let mut binds = Vec::new();
    let one = format!(
        "({})",
        cols.iter()
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let mut parts = Vec::with_capacity(keys.len());
    for key in keys {
        binds.extend(key.iter().cloned());
        parts.push(one.clone());
    }
    if parts.is_empty() {
        parts.push("FALSE".into());
    }
    (parts.join(" OR "), binds)
}

/// One row: the checksum of the rows matching `predicate`.
///
/// Keyed tables: `count:SHA1(row hashes concatenated in scan order)`, one
/// pass with no derived table; for a [`narrow`] table the row texts
/// themselves (long values hashed, see [`row_text`]) joined by `;`, which
/// no number, temporal text, hash or quoted value can hide. The predicate
/// is a key range, so both servers
/// read the primary or unique key's range in key order; should a plan ever
/// read in another order, the chunk only *looks* different and is narrowed
/// to rows by key, where equal rows compare equal — never a false report.
/// Keyless tables have no order to rely on: `count:sum_hi:sum_lo`, exact
/// sums of two 64-bit pieces of every row hash (a multiset, duplicates
/// counted; swaps between rows change it, unlike an XOR of CRC32s).
pub fn checksum(t: &VerifyTable, side: Side, predicate: &str) -> String {
    if !t.is_keyless() && narrow(t) {
        return format!(
            "SELECT CAST(CONCAT(COUNT(*), ':', IFNULL(SHA1(GROUP_CONCAT({} SEPARATOR ';')), '')) \
             AS BINARY) FROM {} WHERE {predicate}",
            row_text(t, side, true),
            table_ident(t, side),
        );
    }
    if !t.is_keyless() {
        return format!(
            "SELECT CAST(CONCAT(COUNT(*), ':', IFNULL(SHA1(GROUP_CONCAT({} SEPARATOR '')), '')) \
             AS BINARY) FROM {} WHERE {predicate}",
            row_hash(t, side),
            table_ident(t, side),
        );
    }
    let lane = |at: u32| {
        format!("COALESCE(SUM(CAST(CONV(SUBSTRING(h, {at}, 16), 16, 10) AS UNSIGNED)), 0)")
    };
    // The LIMIT keeps the derived table from being merged into the outer
    // query, which would compute the hash once per lane.
    format!(
        "SELECT CAST(CONCAT(COUNT(*), ':', {}, ':', {}) AS BINARY) FROM \
         (SELECT {} AS h FROM {} WHERE {predicate} LIMIT 18446744073709551615) AS v",
        lane(1),
        lane(17),
        row_hash(t, side),
        table_ident(t, side),
    )
}

/// Rows of key canonical values then the row hash, for rows matching
/// `predicate`.
pub fn row_hashes(t: &VerifyTable, side: Side, predicate: &str) -> String {
    format!(
        "SELECT {}, CAST({} AS BINARY) FROM {} WHERE {predicate}",
        select_canonical(t.key_columns(), side),
        row_hash(t, side),
        table_ident(t, side)
    )
}

/// Rows of every column's canonical value then the row hash.
pub fn rows(t: &VerifyTable, side: Side, predicate: &str) -> String {
    format!(
        "SELECT {}, CAST({} AS BINARY) FROM {} WHERE {predicate}",
        select_canonical(t.columns.iter(), side),
        row_hash(t, side),
        table_ident(t, side)
    )
}

/// A keyless table's multiset: row hash and count.
pub fn hash_counts(t: &VerifyTable, side: Side) -> String {
    format!(
        "SELECT CAST(h AS BINARY), CAST(COUNT(*) AS BINARY) FROM (SELECT {} AS h FROM {}) AS v GROUP BY h",
        row_hash(t, side),
        table_ident(t, side)
    )
}

/// The condition matching rows whose hash is one of `n` bound hashes.
pub fn hashes_predicate(t: &VerifyTable, side: Side, n: usize) -> String {
    let marks = vec!["?"; n.max(1)].join(", ");
    format!("{} IN ({marks})", row_hash(t, side))
}

/// The upper bound of the chunk after `after`: the key `chunk_rows` rows on
/// (source only: chunk planning). No row means the rest is the last chunk.
pub fn next_bound(
    t: &VerifyTable,
    after: Option<&[BindValue]>,
    chunk_rows: u64,
) -> (String, Vec<BindValue>) {
    let range = KeyRange {
        after: after.map(<[BindValue]>::to_vec),
        through: None,
    };
    let (predicate, binds) = range_predicate(t, Side::Source, &range);
    let order: Vec<String> = t
        .key_columns()
        .map(|c| column_ident(c, Side::Source))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {predicate} ORDER BY {} LIMIT 1 OFFSET {}",
        select_canonical(t.key_columns(), Side::Source),
        table_ident(t, Side::Source),
        order.join(", "),
        chunk_rows.saturating_sub(1)
    );
    (sql, binds)
}

/// For a single integer key (see [`super::value_bounds`]): the key's
/// `MIN` and `MAX` and the server's row estimate, one row of text; `None`
/// for any other key.
pub fn key_span(t: &VerifyTable) -> Option<String> {
    let mut keys = t.key_columns();
    let (Some(k), None) = (keys.next(), keys.next()) else {
        return None;
    };
    if !matches!(k.kind, ColumnKind::Signed | ColumnKind::Unsigned) {
        return None;
    }
    let c = column_ident(k, Side::Source);
    Some(format!(
        "SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR), \
         (SELECT CAST(IFNULL(MAX(TABLE_ROWS), 0) AS CHAR) FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?) FROM {}",
        table_ident(t, Side::Source)
    ))
}

/// Writes `rows` whole rows (every compared column) to the target, keyed
/// rows replacing the row with their key.
pub fn upsert(t: &VerifyTable, rows: usize) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| column_ident(c, Side::Target))
        .collect();
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    let values = vec![one; rows.max(1)].join(", ");
    let update = if t.is_keyless() {
        String::new()
    } else {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
        format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
    };
    format!(
        "INSERT INTO {} ({}) VALUES {values}{update}",
        table_ident(t, Side::Target),
        cols.join(", ")
    )
}

/// Locks the target rows matching `predicate` (and, under REPEATABLE READ,
/// the gaps where missing ones would go) until the transaction ends.
pub fn lock_rows(t: &VerifyTable, predicate: &str) -> String {
    let cols: Vec<String> = if t.is_keyless() {
        vec!["1".into()]
    } else {
        t.key_columns()
            .map(|c| column_ident(c, Side::Target))
            .collect()
    };
    format!(
        "SELECT {} FROM {} WHERE {predicate} FOR UPDATE",
        cols.join(", "),
        table_ident(t, Side::Target)
    )
}

/// Deletes the target rows matching `predicate`; `one` limits it to one row
/// (a keyless table's duplicate).
pub fn delete(t: &VerifyTable, predicate: &str, one: bool) -> String {
    let limit = if one { " LIMIT 1" } else { "" };
    format!(
        "DELETE FROM {} WHERE {predicate}{limit}",
        table_ident(t, Side::Target)
    )
}
