//! What the binlog says happened: row changes, DDL and transaction boundaries.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schema::TableSchema;
use crate::value::Value;

/// The kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// One row image: a value per column of the table, in column order.
pub type Row = Vec<Value>;

/// One changed row. `before` is set for updates and deletes, `after` for
/// inserts and updates; both are full images when the source logs FULL.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub table: Arc<TableSchema>,
    pub kind: ChangeKind,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

impl RowChange {
    /// Approximate size in memory, for bounding queues by bytes.
    pub fn size_hint(&self) -> usize {
        let row = |r: &Option<Row>| {
            r.as_ref()
                .map_or(0, |r| r.iter().map(Value::size_hint).sum::<usize>())
        };
        std::mem::size_of::<Self>() + row(&self.before) + row(&self.after)
    }
}
