//! A table's columns (as binlog type codes), chunk key, definition and row
//! estimate, from `information_schema` and `SHOW CREATE TABLE`.
//!
//! The schema is built to look like the one a TABLE_MAP with
//! `binlog_row_metadata=FULL` gives (type codes, signedness, collation ids,
//! ENUM/SET labels, primary key), because the rest of sluice (transform,
//! merge, key comparison) reads those fields and nothing else.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sluice_core::schema::{type_code as tc, Column, BINARY_COLLATION};
use sluice_core::{TableSchema, Value};

use super::{values, SourceTable};
use crate::error::BinlogError;

type ColumnRow = (
    String,         // COLUMN_NAME
    String,         // DATA_TYPE
    String,         // COLUMN_TYPE
    String,         // IS_NULLABLE
    Option<String>, // COLLATION_NAME
    Option<u64>,    // DATETIME_PRECISION
    Option<u64>,    // collation id
);

pub(super) async fn describe(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<SourceTable, BinlogError> {
    let name = format!("`{schema}`.`{table}`");
    let cols: Vec<ColumnRow> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLLATION_NAME, \
                    c.DATETIME_PRECISION, co.ID \
             FROM information_schema.COLUMNS c \
             LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = c.COLLATION_NAME \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| BinlogError::source(format!("reading the columns of {name}"), e))?;
    if cols.is_empty() {
        return Err(BinlogError::Preflight(format!(
            "{name} is not on the source (or the source user cannot see it)"
        )));
    }
    let columns: Vec<Column> = cols.iter().map(column).collect();
    // (INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART) in index order.
    let index_rows: Vec<(String, u64, String, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(|e| BinlogError::source(format!("reading the indexes of {name}"), e))?;
    let mut indexes: Vec<(String, Vec<usize>, bool)> = Vec::new();
    for (index, non_unique, col, sub_part) in index_rows {
        if non_unique != 0 {
            continue;
        }
        let position = columns.iter().position(|c| c.name == col);
        if indexes.last().is_none_or(|(n, _, _)| *n != index) {
            indexes.push((index.clone(), Vec::new(), true));
        }
        if let Some((_, cols, usable)) = indexes.last_mut() {
            match position {
                Some(p) if sub_part.is_none() && !columns[p].nullable => cols.push(p),
                _ => *usable = false,
            }
        }
    }
    let primary_key = indexes
        .iter()
        .find(|(n, _, _)| n == "PRIMARY")
        .map(|(_, c, _)| c.clone())
        .unwrap_or_default();
    let chunk_key = indexes
        .iter()
        .filter(|(_, c, usable)| *usable && !c.is_empty())
        .min_by_key(|(n, c, _)| (n != "PRIMARY", c.len()))
        .map(|(n, c, _)| (n.clone(), c.clone()));
    let create: Option<(String, String)> = conn
        .query_first(format!(
            "SHOW CREATE TABLE {}",
            super::quote_qualified(schema, table)
        ))
        .await
        .map_err(|e| BinlogError::source(format!("reading SHOW CREATE TABLE {name}"), e))?;
    let estimate: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|e| BinlogError::source(format!("reading the row estimate of {name}"), e))?;
    Ok(SourceTable {
        schema: Arc::new(TableSchema {
            schema: schema.to_string(),
            table: table.to_string(),
            columns,
            primary_key,
            has_names: true,
        }),
        column_types: cols.iter().map(|c| c.2.clone()).collect(),
        key: chunk_key
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_default(),
        key_name: chunk_key.map(|(n, _)| n),
        create_sql: create.map(|(_, sql)| sql).unwrap_or_default(),
        rows_estimate: estimate.flatten().unwrap_or(0),
    })
}

fn column(c: &ColumnRow) -> Column {
    let (name, data_type, column_type, nullable, collation_name, precision, collation_id) = c;
    let ty = data_type.to_ascii_lowercase();
    let fsp = precision.unwrap_or(0).min(6) as u16;
    let (type_code, meta) = match ty.as_str() {
        "tinyint" => (tc::TINY, 0),
        "smallint" => (tc::SHORT, 0),
        "mediumint" => (tc::INT24, 0),
        "int" | "integer" => (tc::LONG, 0),
        "bigint" => (tc::LONGLONG, 0),
        "float" => (tc::FLOAT, 4),
        "double" | "real" => (tc::DOUBLE, 8),
        "decimal" | "numeric" => (tc::NEWDECIMAL, 0),
        "date" => (tc::DATE, 0),
        "datetime" => (tc::DATETIME2, fsp),
        "timestamp" => (tc::TIMESTAMP2, fsp),
        "time" => (tc::TIME2, fsp),
        "year" => (tc::YEAR, 0),
        "char" | "binary" => (tc::STRING, 0),
        "varchar" | "varbinary" => (tc::VARCHAR, 0),
        "enum" => (tc::ENUM, 0),
        "set" => (tc::SET, 0),
        "bit" => (tc::BIT, 0),
        "json" => (tc::JSON, 4),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => (tc::GEOMETRY, 4),
        // tinytext, text, mediumtext, longtext, the blobs, and anything newer.
        _ => (tc::BLOB, 4),
    };
    let binary = matches!(
        ty.as_str(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    );
    let collation = if binary {
        Some(BINARY_COLLATION)
    } else if collation_name.is_some() {
        collation_id.and_then(|id| u16::try_from(id).ok())
    } else {
        None
    };
    let labels = matches!(type_code, tc::ENUM | tc::SET).then(|| {
        let inner = column_type
            .split_once('(')
            .map(|(_, r)| r.trim_end_matches(')'))
            .unwrap_or("");
        let labels: Vec<Arc<str>> = values::split_labels(inner)
            .into_iter()
            .map(Arc::from)
            .collect();
        Arc::from(labels)
    });
    Column {
        name: name.clone(),
        type_code,
        meta,
        nullable: nullable.eq_ignore_ascii_case("YES"),
        unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
        collation,
        labels,
    }
}

/// `key > after` for a (composite) key, as `a > ? OR (a = ? AND b > ?)`,
/// which the range optimizer serves, with its parameters.
pub fn key_predicate(names: &[String], after: &[Value]) -> (String, Vec<mysql_async::Value>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    for i in 0..names.len().min(after.len()) {
        let mut term = Vec::new();
        for j in 0..i {
            term.push(format!("{} = ?", names[j]));
            params.push(values::param(&after[j]));
        }
        term.push(format!("{} > ?", names[i]));
        params.push(values::param(&after[i]));
        terms.push(format!("({})", term.join(" AND ")));
    }
    (terms.join(" OR "), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_compare_as_tuples() {
        let names = vec!["`a`".to_string(), "`b`".to_string()];
        let (sql, params) = key_predicate(&names, &[Value::Int(1), Value::Text("x".into())]);
        assert_eq!(sql, "(`a` > ?) OR (`a` = ? AND `b` > ?)");
        assert_eq!(params.len(), 3);
    }
}
