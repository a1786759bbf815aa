//! TABLE_MAP events to [`TableSchema`].
//!
//! Parsed here rather than by mysql_common because the per-column metadata
//! block can only be walked by knowing every type's metadata size, and MariaDB
//! has types (compressed columns, "hires" temporals) a MySQL-only walker does
//! not know. Optional metadata (`binlog_row_metadata=FULL`) supplies names,
//! signedness, charsets, ENUM/SET labels and the primary key; without it
//! columns are named `@1..@n` and a warning says why.
//!
//! # Which columns each optional-metadata field covers
//!
//! Several fields hold one entry per column *of some kind* (a bit per
//! numeric column, a charset per character column, …), in column order, and
//! the two servers disagree on the kinds. Reading one server's event with the
//! other's rule shifts every later entry: a MariaDB table `(id INT, y YEAR,
//! f FLOAT, u BIGINT UNSIGNED)` read with MySQL's numeric rule gives `u` the
//! bit of `f` and decodes 2^64-1 as -1. So the rule is chosen by the flavour
//! that **wrote** the event ([`Flavour`], from the server version in the
//! format description event), never guessed from the column types.
//!
//! | field (type code) | MySQL 8.0.1+ | MariaDB 10.5+ |
//! |---|---|---|
//! | SIGNEDNESS (1) | TINY, SHORT, INT24, LONG, LONGLONG, NEWDECIMAL, FLOAT, DOUBLE | the same plus YEAR and the pre-5.0 DECIMAL |
//! | DEFAULT_CHARSET (2) / COLUMN_CHARSET (3) | STRING, VAR_STRING, VARCHAR, BLOB (every size) and, 9.0+, VECTOR; not ENUM/SET, GEOMETRY, JSON | every column with a charset except ENUM/SET: STRING (also UUID, INET4, INET6, logged as BINARY(n)), VARCHAR, BLOBs (also JSON, a LONGTEXT), GEOMETRY, VARCHAR/BLOB COMPRESSED |
//! | ENUM_AND_SET_DEFAULT_CHARSET (10) / ENUM_AND_SET_COLUMN_CHARSET (11) | ENUM and SET | ENUM and SET |
//! | SET_STR_VALUE (5) / ENUM_STR_VALUE (6) | each SET / ENUM column, labels as bytes **in the column's charset** | same |
//! | GEOMETRY_TYPE (7) | each GEOMETRY column | same |
//! | SIMPLE_PRIMARY_KEY (8) / PRIMARY_KEY_WITH_PREFIX (9) | column indexes (with prefix lengths) | same |
//! | COLUMN_VISIBILITY (12), 8.0.23+ | one bit per column (1 = visible) | not written |
//! | VECTOR_DIMENSIONALITY (13), 9.0+ | each VECTOR column | not written |
//!
//! Sources: MySQL `sql/log_event.cc`, `Table_map_log_event::init_metadata_fields`
//! and `init_signedness_field` / `init_charset_field` with
//! `is_numeric_type(field->binlog_type())`, `is_character_type(field->real_type())`
//! (VECTOR added in 9.0) and `is_enum_or_set_type`. MariaDB
//! `sql/log_event_server.cc`, the same `init_*` functions, which ask each
//! field's `binlog_type_info()` (`sql/field.h`): `Field_num` reports
//! signedness for every numeric field — `Field_year` is a `Field_tiny`, with
//! UNSIGNED_FLAG — and `is_character_field()` is "has a charset and is not
//! ENUM/SET" (`Field_str`, `Field_geom::binlog_type_info` in
//! `sql/sql_type_geom.cc`, and the fixed binary strings of the UUID/INET
//! plugins, `Binlog_type_info_fixed_string(.., &my_charset_bin)`). Checked
//! against MariaDB 10.11 (unit test `mariadb_year_takes_a_signedness_bit`,
//! e2e `fidelity::mariadb_signedness_and_charsets_follow_the_server`) and
//! the MySQL 8.0.26, 8.4 and 9.0 fixtures. (MariaDB's own client,
//! `mariadb-binlog --print-table-metadata`, uses the MySQL rule and so
//! mis-assigns these fields for its own server's YEAR columns.)
//!
//! ENUM/SET labels are decoded with the column's ENUM/SET charset after
//! every field has been read (the servers write the charset field before
//! the labels, but nothing requires it). Labels that are not valid text in
//! that charset are dropped (values then carry their index / bitmask, which
//! the loader writes as numbers), never replaced by U+FFFD. Column
//! visibility is not kept: invisible columns are in every row image and the
//! loader names its columns, so they need nothing special.

use std::sync::Arc;

use sluice_core::schema::{type_code as t, Column, TableSchema};

use crate::charset::Charset;
use crate::cursor::Cursor;

/// A parsed TABLE_MAP event.
#[derive(Debug, Clone)]
pub struct TableMap {
    pub table_id: u64,
    pub schema: Arc<TableSchema>,
}

/// The server family that wrote an event, which decides how optional
/// metadata is assigned to columns (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Mysql,
    Mariadb,
}

impl Flavour {
    /// The flavour of a server version string (`10.11.6-MariaDB-log`,
    /// `8.0.36`), as the format description event carries it.
    pub fn of_version(version: &str) -> Flavour {
        if version.contains("MariaDB") {
            Flavour::Mariadb
        } else {
            Flavour::Mysql
        }
    }

    /// The SIGNEDNESS field has a bit for this column type.
    pub fn has_sign_bit(self, type_code: u8) -> bool {
        match type_code {
            t::TINY
            | t::SHORT
            | t::INT24
            | t::LONG
            | t::LONGLONG
            | t::FLOAT
            | t::DOUBLE
            | t::NEWDECIMAL => true,
            t::YEAR | t::DECIMAL => self == Flavour::Mariadb,
            _ => false,
        }
    }

    /// The DEFAULT_CHARSET / COLUMN_CHARSET fields have an entry for this
    /// column type (ENUM/SET already resolved from STRING).
    pub fn has_charset(self, type_code: u8) -> bool {
        match type_code {
            t::STRING
            | t::VAR_STRING
            | t::VARCHAR
            | t::BLOB
            | t::TINY_BLOB
            | t::MEDIUM_BLOB
            | t::LONG_BLOB => true,
            t::VECTOR => self == Flavour::Mysql,
            t::GEOMETRY | t::VARCHAR_COMPRESSED | t::BLOB_COMPRESSED => self == Flavour::Mariadb,
            _ => false,
        }
    }
}

/// Parses the body of a TABLE_MAP event (after the common header, without
/// checksum). `table_id_len` is 6 except for ancient servers (4); `flavour`
/// is the server family that wrote it (see the module docs).
pub fn parse_table_map(
    data: &[u8],
    table_id_len: usize,
    flavour: Flavour,
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
    parse_optional_metadata(&mut c, &mut schema, flavour)
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

/// Optional metadata TLVs (MySQL 8.0.1+, MariaDB 10.5+); see the module
/// docs for which columns each field covers.
fn parse_optional_metadata(
    c: &mut Cursor<'_>,
    schema: &mut TableSchema,
    flavour: Flavour,
) -> Result<(), String> {
    let short = |e: crate::cursor::Short| e.to_string();
    let is_enum_set = |col: &Column| matches!(col.type_code, t::ENUM | t::SET);
    // Raw labels per column, decoded once every charset is known.
    let mut raw_labels: Vec<Option<Vec<&[u8]>>> = vec![None; schema.columns.len()];

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
                    .filter(|c| flavour.has_sign_bit(c.type_code));
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
                        flavour.has_charset(col.type_code)
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
                        flavour.has_charset(col.type_code)
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
                for (i, col) in schema.columns.iter().enumerate() {
                    if col.type_code != want {
                        continue;
                    }
                    let count = b.packed("label count").map_err(short)? as usize;
                    let mut labels = Vec::with_capacity(count.min(65_536));
                    for _ in 0..count {
                        let n = b.packed("label length").map_err(short)? as usize;
                        labels.push(b.take(n, "label").map_err(short)?);
                    }
                    raw_labels[i] = Some(labels);
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
    for (col, raw) in schema.columns.iter_mut().zip(raw_labels) {
        if let Some(raw) = raw {
            col.labels = decode_labels(&raw, col);
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

/// ENUM/SET labels as text in the column's charset, or `None` (values keep
/// their index / bitmask) when one of them is not valid text in it.
fn decode_labels(raw: &[&[u8]], col: &Column) -> Option<Arc<[Arc<str>]>> {
    let charset = Charset::of_column(col);
    let mut labels: Vec<Arc<str>> = Vec::with_capacity(raw.len());
    for bytes in raw {
        match crate::charset::decode_str(bytes, charset) {
            Some(s) => labels.push(Arc::from(s)),
            None => {
                tracing::warn!(
                    column = %col.name,
                    collation = ?col.collation,
                    "ENUM/SET label is not valid text in the column's charset; its values are kept by index"
                );
                return None;
            }
        }
    }
    Some(labels.into())
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
        let tm = parse_table_map(&sample(), 6, Flavour::Mariadb).expect("parses");
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

    /// A table map for `d.t` with these column types, raw metadata block and
    /// optional-metadata TLVs (all columns nullable).
    fn event(types: &[u8], meta: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut v = vec![7, 0, 0, 0, 0, 0, 1, 0];
        v.extend([1, b'd', 0, 1, b't', 0]);
        v.push(types.len() as u8);
        v.extend(types);
        v.push(meta.len() as u8);
        v.extend(meta);
        v.extend(std::iter::repeat_n(0xFF, types.len().div_ceil(8)));
        for (kind, body) in tlvs {
            v.push(*kind);
            v.push(body.len() as u8);
            v.extend(*body);
        }
        v
    }

    fn unsigned(tm: &TableMap) -> Vec<bool> {
        tm.schema.columns.iter().map(|c| c.unsigned).collect()
    }

    fn collations(tm: &TableMap) -> Vec<Option<u16>> {
        tm.schema.columns.iter().map(|c| c.collation).collect()
    }

    /// `(id INT, y YEAR, f FLOAT, u BIGINT UNSIGNED, b BIT(3), d DECIMAL(5,2)
    /// UNSIGNED)` as MariaDB 10.11 logs it: YEAR has a bit (set: Field_year
    /// is unsigned), BIT has none. SIGNEDNESS = 0101_1000 (captured).
    #[test]
    fn mariadb_year_takes_a_signedness_bit() {
        let types = [
            t::LONG,
            t::YEAR,
            t::FLOAT,
            t::LONGLONG,
            t::BIT,
            t::NEWDECIMAL,
        ];
        let meta = [4, 3, 0, 5, 2];
        let bytes = event(&types, &meta, &[(1, &[0x58])]);
        let tm = parse_table_map(&bytes, 6, Flavour::Mariadb).expect("parses");
        assert_eq!(unsigned(&tm), [false, true, false, true, false, true]);
        // Read with MySQL's rule the same bits shift: `f` takes YEAR's bit
        // and `u` FLOAT's (the bug this rule fixes).
        let tm = parse_table_map(&bytes, 6, Flavour::Mysql).expect("parses");
        assert_eq!(unsigned(&tm), [false, false, true, false, false, true]);
    }

    /// The same table as MySQL 8 logs it: no bit for YEAR (nor BIT).
    #[test]
    fn mysql_year_has_no_signedness_bit() {
        let types = [
            t::LONG,
            t::YEAR,
            t::FLOAT,
            t::LONGLONG,
            t::BIT,
            t::NEWDECIMAL,
        ];
        let meta = [4, 3, 0, 5, 2];
        // id, f, u, d: 0011_0000.
        let bytes = event(&types, &meta, &[(1, &[0x30])]);
        let tm = parse_table_map(&bytes, 6, Flavour::Mysql).expect("parses");
        assert_eq!(unsigned(&tm), [false, false, false, true, false, true]);
    }

    /// MariaDB counts GEOMETRY and the UUID/INET binary strings among the
    /// character columns: `(uu UUID, g POINT, j JSON, v VARCHAR(5) latin1)`
    /// → DEFAULT_CHARSET 63 with exceptions (j → 46, v → 8).
    #[test]
    fn mariadb_charsets_include_geometry() {
        let types = [t::STRING, t::GEOMETRY, t::BLOB, t::VARCHAR];
        let meta = [t::STRING, 16, 4, 4, 5, 0];
        let bytes = event(&types, &meta, &[(2, &[63, 2, 46, 3, 8])]);
        let tm = parse_table_map(&bytes, 6, Flavour::Mariadb).expect("parses");
        assert_eq!(collations(&tm), [Some(63), Some(63), Some(46), Some(8)]);
        // MySQL's rule skips GEOMETRY: j and v would take wrong entries.
        let tm = parse_table_map(&bytes, 6, Flavour::Mysql).expect("parses");
        assert_ne!(collations(&tm)[3], Some(8));
    }

    /// MySQL 9 counts VECTOR among the character columns and GEOMETRY not:
    /// `bar (id SERIAL, v VECTOR(2), foo TEXT, v2 VECTOR(4))` from the
    /// fixture vector.binlog: DEFAULT_CHARSET 63 with (1 → 255).
    #[test]
    fn mysql_charsets_include_vector_not_geometry() {
        let types = [t::LONGLONG, t::VECTOR, t::BLOB, t::VECTOR];
        let meta = [4, 2, 4];
        let bytes = event(
            &types,
            &meta,
            &[
                (1, &[0x80]),
                (2, &[0x3f, 0x01, 0xfc, 0xff, 0x00]),
                (13, &[2, 4]),
            ],
        );
        let tm = parse_table_map(&bytes, 6, Flavour::Mysql).expect("parses");
        assert_eq!(collations(&tm), [None, Some(63), Some(255), Some(63)]);
        assert!(tm.schema.columns[0].unsigned);
        // `(g GEOMETRY, v VARCHAR(5) latin1)` on MySQL: v is the only one.
        let bytes = event(&[t::GEOMETRY, t::VARCHAR], &[4, 5, 0], &[(2, &[8])]);
        let tm = parse_table_map(&bytes, 6, Flavour::Mysql).expect("parses");
        assert_eq!(collations(&tm), [None, Some(8)]);
    }

    /// Labels are bytes in the column's charset: latin1 `é`/`€`, ucs2 `a`,
    /// whichever TLV comes first; labels invalid in the charset are dropped.
    #[test]
    fn enum_and_set_labels_decode_in_their_charset() {
        let types = [t::STRING, t::STRING, t::STRING];
        let meta = [t::ENUM, 1, t::SET, 1, t::ENUM, 1];
        let enum_labels: &[u8] = &[2, 1, 0xE9, 1, 0x80, 1, 2, 0xFF, 0xFE];
        let set_labels: &[u8] = &[2, 2, 0x00, b'a', 2, 0x00, b'b'];
        // ENUM_AND_SET_COLUMN_CHARSET: latin1, ucs2, utf8mb4 — after the
        // labels, to show the order does not matter.
        let bytes = event(
            &types,
            &meta,
            &[(6, enum_labels), (5, set_labels), (11, &[8, 35, 45])],
        );
        let tm = parse_table_map(&bytes, 6, Flavour::Mariadb).expect("parses");
        let labels = |i: usize| {
            tm.schema.columns[i]
                .labels
                .as_ref()
                .map(|l| l.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(labels(0), Some(vec!["é".to_string(), "€".to_string()]));
        assert_eq!(labels(1), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(labels(2), None, "0xFF 0xFE is not utf8mb4");
        assert_eq!(tm.schema.columns[0].type_code, t::ENUM);
        assert_eq!(tm.schema.columns[1].type_code, t::SET);
    }

    #[test]
    fn truncated_table_maps_fail_cleanly() {
        let full = sample();
        for n in 0..full.len() {
            // Every prefix either parses (optional metadata cut at a TLV
            // boundary) or fails with a message; never panics.
            let _ = parse_table_map(&full[..n], 6, Flavour::Mysql);
        }
        assert!(parse_table_map(&full[..10], 6, Flavour::Mysql).is_err());
    }
}
