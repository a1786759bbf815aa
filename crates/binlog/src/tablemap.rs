//! TABLE_MAP events to [`TableSchema`].
//!
//! Parsed here rather than by mysql_common because the per-column metadata
//! block can only be walked by knowing every type's metadata size, and MariaDB
//! has types (compressed columns, "hires" temporals) a MySQL-only walker does
//! not know. Optional metadata (`binlog_row_metadata=FULL`) supplies names,
//! signedness, charsets, ENUM/SET labels and the primary key; without it
//! columns are named `@1..@n` and a warning says why.

use std::sync::Arc;

use sluice_core::schema::{type_code as t, Column, TableSchema};

use crate::cursor::Cursor;

/// A parsed TABLE_MAP event.
#[derive(Debug, Clone)]
pub struct TableMap {
    pub table_id: u64,
    pub schema: Arc<TableSchema>,
}

/// Parses the body of a TABLE_MAP event (after the common header, without
/// checksum). `table_id_len` is 6 except for ancient servers (4);
/// `mariadb` selects MariaDB's idea of which columns have a charset.
pub fn parse_table_map(
    data: &[u8],
    table_id_len: usize,
    mariadb: bool,
) -> Result<TableMap, String> {
    let mut c = Cursor::new(data);
    let short = |e: crate::cursor::Short| e.to_string();
    let table_id = c.uint_n(table_id_len, "table id").map_err(short)?;
    let _flags = c.u16("flags").map_err(short)?;
    let schema_len = c.u8("schema name length").map_err(short)? as usize;
    let schema =
        String::from_utf8_lossy(c.take(schema_len, "schema name").map_err(short)?).into_owned();
    c.u8("schema name terminator").map_err(short)?;
    let table_len = c.u8("table name length").map_err(short)? as usize;
    let table =
        String::from_utf8_lossy(c.take(table_len, "table name").map_err(short)?).into_owned();
    c.u8("table name terminator").map_err(short)?;
    let ncols = c.packed("column count").map_err(short)? as usize;
    if ncols > 4096 * 4 {
        return Err(format!("implausible column count {ncols}"));
    }
    let types = c.take(ncols, "column types").map_err(short)?.to_vec();
    let meta_len = c.packed("metadata length").map_err(short)? as usize;
    let meta_block = c.take(meta_len, "column metadata").map_err(short)?;
    let nulls = c.take(ncols.div_ceil(8), "null bitmap").map_err(short)?;

    // Neither server writes metadata for the legacy TIME/DATETIME/TIMESTAMP
    // types; MariaDB's pre-10.1 "hires" variants of them carry their fsp only
    // in the table definition (see the fixture capture_hires), so decoding
    // those needs the schema, not the binlog.
    let metas = walk_metadata(&types, meta_block)?;
    let mut columns = Vec::with_capacity(ncols);
    for (i, (&ty, meta)) in types.iter().zip(metas).enumerate() {
        let mut column = Column {
            name: format!("@{}", i + 1),
            type_code: ty,
            meta,
            nullable: nulls[i / 8] & (1 << (i % 8)) != 0,
            unsigned: false,
            collation: None,
            labels: None,
        };
        if ty == t::STRING {
            let real = (meta >> 8) as u8;
            if real == t::ENUM || real == t::SET {
                column.type_code = real;
            }
        }
        columns.push(column);
    }

    let mut schema = TableSchema {
        schema,
        table,
        columns,
        primary_key: Vec::new(),
        has_names: false,
    };
    parse_optional_metadata(&mut c, &mut schema, mariadb)
        .map_err(|e| format!("optional metadata: {e}"))?;
    Ok(TableMap {
        table_id,
        schema: Arc::new(schema),
    })
}

/// Reads every column's metadata; fails unless the block is consumed exactly.
fn walk_metadata(types: &[u8], block: &[u8]) -> Result<Vec<u16>, String> {
    let mut m = Cursor::new(block);
    let mut metas = Vec::with_capacity(types.len());
    for (i, &ty) in types.iter().enumerate() {
        metas.push(read_meta(&mut m, ty).map_err(|e| format!("column {}: {e}", i + 1))?);
    }
    if m.remaining() != 0 {
        return Err(format!(
            "column metadata block has {} bytes left over after {} columns",
            m.remaining(),
            types.len()
        ));
    }
    Ok(metas)
}

/// Reads one column's metadata per the server's `table_def` convention (see
/// [`Column::meta`]).
fn read_meta(m: &mut Cursor<'_>, ty: u8) -> Result<u16, String> {
    let short = |e: crate::cursor::Short| e.to_string();
    Ok(match ty {
        t::TINY_BLOB
        | t::BLOB
        | t::MEDIUM_BLOB
        | t::LONG_BLOB
        | t::DOUBLE
        | t::FLOAT
        | t::GEOMETRY
        | t::JSON
        | t::VECTOR
        | t::BLOB_COMPRESSED
        | t::TIME2
        | t::DATETIME2
        | t::TIMESTAMP2 => u16::from(m.u8("metadata").map_err(short)?),
        t::SET | t::ENUM | t::STRING | t::NEWDECIMAL => {
            let b = m.take(2, "metadata").map_err(short)?;
            u16::from(b[0]) << 8 | u16::from(b[1])
        }
        t::BIT | t::VARCHAR | t::VAR_STRING | t::VARCHAR_COMPRESSED => {
            m.u16("metadata").map_err(short)?
        }
        _ => 0,
    })
}

/// Optional metadata TLVs (MySQL 8.0.1+, MariaDB 10.5+).
fn parse_optional_metadata(
    c: &mut Cursor<'_>,
    schema: &mut TableSchema,
    mariadb: bool,
) -> Result<(), String> {
    let short = |e: crate::cursor::Short| e.to_string();
    let is_numeric = |ty: u8| {
        matches!(
            ty,
            t::TINY
                | t::SHORT
                | t::INT24
                | t::LONG
                | t::LONGLONG
                | t::FLOAT
                | t::DOUBLE
                | t::NEWDECIMAL
                | t::DECIMAL
        )
    };
    // The charset lists cover "character" columns: MySQL counts the string
    // and blob types; MariaDB counts every field with a charset, which adds
    // GEOMETRY (a blob underneath) and the compressed types. Verified against
    // MySQL 8.4 (geometry before latin1 columns) and MariaDB 10.11 captures.
    let is_character = |col: &Column| {
        matches!(
            col.type_code,
            t::STRING
                | t::VAR_STRING
                | t::VARCHAR
                | t::BLOB
                | t::TINY_BLOB
                | t::MEDIUM_BLOB
                | t::LONG_BLOB
        ) || (mariadb
            && matches!(
                col.type_code,
                t::GEOMETRY | t::VARCHAR_COMPRESSED | t::BLOB_COMPRESSED
            ))
    };
    let is_enum_set = |col: &Column| matches!(col.type_code, t::ENUM | t::SET);

    while c.remaining() > 0 {
        let kind = c.u8("metadata type").map_err(short)?;
        let len = c.packed("metadata length").map_err(short)? as usize;
        let body = c.take(len, "metadata value").map_err(short)?;
        let mut b = Cursor::new(body);
        match kind {
            // SIGNEDNESS: one bit per numeric column, most significant first.
            1 => {
                let numeric = schema
                    .columns
                    .iter_mut()
                    .filter(|c| is_numeric(c.type_code));
                for (k, col) in numeric.enumerate() {
                    let byte = body.get(k / 8).copied().unwrap_or(0);
                    col.unsigned = byte & (0x80 >> (k % 8)) != 0;
                }
            }
            // DEFAULT_CHARSET / ENUM_AND_SET_DEFAULT_CHARSET: a default plus
            // (column index among the matching columns, collation) pairs.
            2 | 10 => {
                let default = b.packed("default charset").map_err(short)? as u16;
                let enum_set = kind == 10;
                let mut exceptions = Vec::new();
                while b.remaining() > 0 {
                    let idx = b.packed("charset column").map_err(short)? as usize;
                    let coll = b.packed("charset").map_err(short)? as u16;
                    exceptions.push((idx, coll));
                }
                let mut k = 0usize;
                for col in schema.columns.iter_mut() {
                    let matches = if enum_set {
                        is_enum_set(col)
                    } else {
                        is_character(col)
                    };
                    if matches {
                        let coll = exceptions
                            .iter()
                            .find(|(i, _)| *i == k)
                            .map_or(default, |(_, c)| *c);
                        col.collation = Some(coll);
                        k += 1;
                    }
                }
            }
            // COLUMN_CHARSET / ENUM_AND_SET_COLUMN_CHARSET: one per column.
            3 | 11 => {
                let enum_set = kind == 11;
                for col in schema.columns.iter_mut() {
                    let matches = if enum_set {
                        is_enum_set(col)
                    } else {
                        is_character(col)
                    };
                    if matches {
                        col.collation = Some(b.packed("column charset").map_err(short)? as u16);
                    }
                }
            }
            // COLUMN_NAME
            4 => {
                for col in schema.columns.iter_mut() {
                    let n = b.packed("column name length").map_err(short)? as usize;
                    col.name = String::from_utf8_lossy(b.take(n, "column name").map_err(short)?)
                        .into_owned();
                }
                schema.has_names = true;
            }
            // SET_STR_VALUE / ENUM_STR_VALUE
            5 | 6 => {
                let want = if kind == 5 { t::SET } else { t::ENUM };
                for col in schema.columns.iter_mut().filter(|c| c.type_code == want) {
                    let count = b.packed("label count").map_err(short)? as usize;
                    let mut labels: Vec<Arc<str>> = Vec::with_capacity(count.min(65_536));
                    for _ in 0..count {
                        let n = b.packed("label length").map_err(short)? as usize;
                        let raw = b.take(n, "label").map_err(short)?;
                        labels.push(Arc::from(String::from_utf8_lossy(raw).as_ref()));
                    }
                    col.labels = Some(labels.into());
                }
            }
            // SIMPLE_PRIMARY_KEY
            8 => {
                while b.remaining() > 0 {
                    schema
                        .primary_key
                        .push(b.packed("primary key column").map_err(short)? as usize);
                }
            }
            // PRIMARY_KEY_WITH_PREFIX: (column, prefix length) pairs.
            9 => {
                while b.remaining() > 0 {
                    schema
                        .primary_key
                        .push(b.packed("primary key column").map_err(short)? as usize);
                    b.packed("primary key prefix").map_err(short)?;
                }
            }
            // GEOMETRY_TYPE, COLUMN_VISIBILITY, VECTOR_DIMENSIONALITY and
            // anything newer: not needed to decode or apply rows.
            _ => {}
        }
    }
    if schema
        .primary_key
        .iter()
        .any(|&i| i >= schema.columns.len())
    {
        return Err("primary key names a column past the last one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table map as MariaDB 10.11 writes it for
    /// `CREATE TABLE d.t (id INT UNSIGNED PRIMARY KEY, name VARCHAR(10), e ENUM('x','y'))`
    /// with FULL metadata (built by hand from the format).
    fn sample() -> Vec<u8> {
        let mut v = vec![42, 0, 0, 0, 0, 0, 1, 0];
        v.extend([1, b'd', 0, 1, b't', 0]);
        v.push(3); // columns
        v.extend([t::LONG, t::VARCHAR, t::STRING]);
        v.extend([4, 40, 0, t::ENUM, 1]); // metadata: varchar 40 LE, enum (247,1)
        v.push(0b110); // nullable name, e
        v.extend([1, 1, 0x80]); // signedness: id unsigned
        v.extend([2, 1, 45]); // default charset 45
        v.extend([4, 10, 2, b'i', b'd', 4, b'n', b'a', b'm', b'e', 1, b'e']);
        v.extend([6, 5, 2, 1, b'x', 1, b'y']);
        v.extend([8, 1, 0]);
        v
    }

    #[test]
    fn parses_full_metadata() {
        let tm = parse_table_map(&sample(), 6, true).expect("parses");
        assert_eq!(tm.table_id, 42);
        let s = &tm.schema;
        assert_eq!(s.qualified_name(), "d.t");
        assert!(s.has_names);
        let names: Vec<_> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "e"]);
        assert!(s.columns[0].unsigned);
        assert!(!s.columns[0].nullable && s.columns[1].nullable);
        assert_eq!(s.columns[1].meta, 40);
        assert_eq!(s.columns[1].collation, Some(45));
        assert_eq!(s.columns[2].type_code, t::ENUM);
        let labels = s.columns[2].labels.as_ref().expect("labels");
        assert_eq!(
            labels.iter().map(|l| l.as_ref()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert_eq!(s.primary_key, vec![0]);
    }

    #[test]
    fn truncated_table_maps_fail_cleanly() {
        let full = sample();
        for n in 0..full.len() {
            // Every prefix either parses (optional metadata cut at a TLV
            // boundary) or fails with a message; never panics.
            let _ = parse_table_map(&full[..n], 6, false);
        }
        assert!(parse_table_map(&full[..10], 6, false).is_err());
    }
}
