//! Reading what the verify statements return, the same for both drivers:
//! every value arrives as canonical bytes (`None` for NULL).

use std::collections::BTreeMap;

use super::sql;
use super::{BindValue, Key, VerifyTable};

/// A result row as canonical bytes.
pub type BytesRow = Vec<Option<Vec<u8>>>;

/// A column as `information_schema` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedColumn {
    pub name: String,
    pub data_type: String,
    pub column_type: String,
    /// Empty for non-text columns.
    pub collation: String,
    /// `IS_NULLABLE` is not `NO`.
    pub nullable: bool,
    /// `CHARACTER_MAXIMUM_LENGTH`: characters (text) or bytes (binary);
    /// `None` for other types and where the server reports none.
    pub max_length: Option<u64>,
}

/// A table's columns (in order) and the key verify uses (column names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTable {
    pub columns: Vec<DescribedColumn>,
    pub key: Vec<String>,
}

/// A value as (lossy) UTF-8 text, empty for NULL.
pub fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Columns and key from the describe statements' rows.
pub fn described(cols: Vec<BytesRow>, keys: Vec<BytesRow>) -> DescribedTable {
    let columns = cols
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter().map(text);
            DescribedColumn {
                name: it.next().unwrap_or_default(),
                data_type: it.next().unwrap_or_default(),
                column_type: it.next().unwrap_or_default(),
                collation: it.next().unwrap_or_default(),
                // Unknown counts as nullable: the IFNULL form is always right.
                nullable: it.next().is_none_or(|n| n != "NO"),
                max_length: it.next().and_then(|n| n.parse().ok()),
            }
        })
        .collect();
    let keys: Vec<(String, String, String)> = keys
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter().map(text);
            (
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
            )
        })
        .collect();
    DescribedTable {
        columns,
        key: sql::choose_key(&keys),
    }
}

/// The parameters that find the row with canonical key `key`.
pub fn key_binds(t: &VerifyTable, key: &Key) -> Vec<BindValue> {
    t.key_columns()
        .zip(key)
        .map(|(c, v)| BindValue::from_canonical(c.kind, v))
        .collect()
}

/// `(key…, hash)` → `(key, hash)`.
pub fn split_hash(mut row: BytesRow) -> (Key, Vec<u8>) {
    let hash = row.pop().flatten().unwrap_or_default();
    (row, hash)
}

/// `(hash, count)` rows → a multiset.
pub fn hash_count_map(rows: Vec<BytesRow>) -> BTreeMap<Vec<u8>, u64> {
    rows.into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            let h = it.next().flatten()?;
            let n = text(it.next().flatten()).parse().ok()?;
            Some((h, n))
        })
        .collect()
}
