//! Table schemas as the binlog describes them.
//!
//! A schema comes from a TABLE_MAP event (with `binlog_row_metadata=FULL`:
//! names, signedness, charsets, ENUM/SET labels, primary key) and is shared
//! (`Arc`) by every row change of that table until the next table map. Column
//! types are MySQL's own type codes with their table-map metadata, because
//! those — not the `CREATE TABLE` text — say how each value is encoded.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// MySQL/MariaDB column type codes as they appear in TABLE_MAP events.
pub mod type_code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 20;
    /// MariaDB `TEXT/BLOB ... COMPRESSED`.
    pub const BLOB_COMPRESSED: u8 = 140;
    /// MariaDB `VARCHAR ... COMPRESSED`.
    pub const VARCHAR_COMPRESSED: u8 = 141;
    /// MySQL 9 VECTOR.
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// Collation id 63: the `binary` charset (BINARY/VARBINARY/BLOB columns).
pub const BINARY_COLLATION: u16 = 63;

/// One column of a table, in binlog order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name, or `@n` (1-based) when the table map has no names.
    pub name: String,
    /// The binlog type code (see [`type_code`]). For ENUM/SET columns logged
    /// as STRING this is the *real* type (ENUM or SET), taken from metadata.
    pub type_code: u8,
    /// The table map's per-column metadata as a 16-bit number, read the way
    /// the server's own `table_def` reads it:
    /// * 1 byte (`meta = b0`): FLOAT, DOUBLE, *BLOB, GEOMETRY, JSON, VECTOR,
    ///   MariaDB BLOB_COMPRESSED; TIME2/DATETIME2/TIMESTAMP2 (fsp); MariaDB's
    ///   legacy "hires" TIME/DATETIME/TIMESTAMP (fsp) when present;
    /// * 2 bytes big-endian (`meta = b0 << 8 | b1`): NEWDECIMAL (precision,
    ///   scale), STRING/ENUM/SET (`real_type`, length byte);
    /// * 2 bytes little-endian (`meta = b0 | b1 << 8`): VARCHAR and
    ///   VARCHAR_COMPRESSED (max byte length), BIT (`b0` = bits % 8,
    ///   `b1` = whole bytes);
    /// * none (`0`) for the other types.
    ///
    /// A STRING column whose `real_type` is ENUM or SET has `type_code` ENUM
    /// or SET (the real type) and keeps this raw metadata, whose low byte is
    /// then the storage size in bytes.
    pub meta: u16,
    pub nullable: bool,
    /// From the SIGNEDNESS metadata; false when unknown.
    pub unsigned: bool,
    /// Collation id of a character column (63 = binary), if known.
    pub collation: Option<u16>,
    /// ENUM/SET labels in declaration order, if known.
    pub labels: Option<Arc<[Arc<str>]>>,
}

impl Column {
    /// A character column whose bytes are text (not the binary charset).
    pub fn is_text(&self) -> bool {
        self.collation.is_some_and(|c| c != BINARY_COLLATION)
    }
}

/// A table as described by its latest table map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub schema: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Indexes of primary-key columns, in key order; empty if none or unknown.
    pub primary_key: Vec<usize>,
    /// True when the table map carried column names (FULL row metadata).
    pub has_names: bool,
}

impl TableSchema {
    /// `schema.table`, the form filters and routes match against.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}
