//! What flows between the stages.
//!
//! Select sends [`SelectMsg`]s: whole source transactions, or slices of a
//! large one ([`TxnChunk`]), still as raw rows events. Extract decodes
//! them and cuts [`Batch`]es, which Transform rewrites and Load applies.
//! A batch that is (part of) a snapshot chunk has a [`CopyMark`] (kept
//! beside it by id in one process, inside its pipe frame between nodes).

use std::cmp::Ordering;
use std::sync::Arc;

use sluice_binlog::RowsEvent;
use sluice_core::{cmp_binlog_file_names, Position, RowChange};

use crate::ddl::DdlDecision;

/// Select → Extract.
#[derive(Debug)]
pub enum SelectMsg {
    Chunk(TxnChunk),
    /// The dump was reconnected and continues from the end of the last
    /// chunk that carried an `end` position: a transaction whose first
    /// slices were sent is sent again from its start.
    Restart,
}

/// One source transaction, or a slice of one.
#[derive(Debug, Default)]
pub struct TxnChunk {
    pub items: Vec<Selected>,
    /// Position after the chunk's last event.
    pub through: Option<Position>,
    /// Set when the chunk ends its transaction: where to resume after it.
    pub end: Option<Position>,
    /// Raw bytes of the rows events.
    pub bytes: usize,
    /// Header time of the chunk's last event (Unix seconds).
    pub timestamp: u32,
    /// Cut the batch right after this chunk (the position marker sent when
    /// a pipeline starts for the first time).
    pub urgent: bool,
}

/// One event Select passes on.
#[derive(Debug)]
pub enum Selected {
    Rows {
        event: RowsEvent,
        file: Arc<str>,
        offset: u64,
        /// Offset of the next event (where this one ends).
        next: u64,
    },
    Ddl(DdlStatement),
}

/// A DDL statement from the binlog, and (after Transform) what to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DdlStatement {
    /// The session's default schema when the statement ran.
    pub schema: String,
    pub sql: String,
    /// `file:offset` of the event, for messages.
    pub at: String,
    /// Filled in by Transform.
    pub decision: Option<DdlDecision>,
}

/// A unit of Load and of acknowledgement.
#[derive(Debug)]
pub struct Batch {
    /// Strictly increasing by one, with no gaps (the position cache refuses
    /// anything else).
    pub id: u64,
    /// Where replication would resume before this batch.
    pub start: Position,
    /// Where replication resumes after this batch: the end of its last
    /// whole transaction, or `start` when it holds only part of one.
    pub end: Position,
    /// Position after its last event (past `end` for a slice of a large
    /// transaction).
    pub through: Position,
    /// Source time of the last event (Unix seconds), for lag.
    pub timestamp: u32,
    pub body: BatchBody,
}

#[derive(Debug)]
pub enum BatchBody {
    Rows(Vec<RowChange>),
    Ddl(DdlStatement),
}

impl Batch {
    pub fn rows(&self) -> usize {
        match &self.body {
            BatchBody::Rows(rows) => rows.len(),
            BatchBody::Ddl(_) => 0,
        }
    }
}

/// A re-copied chunk's key range on the target: the rows whose key
/// (`columns`) lies after `after` and at or before `through` (`None`: open
/// at that end) are deleted right before the chunk's rows are written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    pub columns: Vec<String>,
    pub after: Option<Vec<sluice_core::Value>>,
    pub through: Option<Vec<sluice_core::Value>>,
}

/// What Load needs to know about a batch that is (part of) a chunk. With
/// distributed stages it travels in the batch's pipe frame
/// ([`crate::pipe`]); chunks are cut by [`crate::snapshot`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CopyMark {
    pub table: String,
    pub target: (String, String),
    pub last_key: Option<String>,
    pub clear: bool,
    pub complete: bool,
    pub rows: u64,
    /// The last batch of its chunk: record the chunk as done after it.
    pub chunk_end: bool,
    /// The first batch of a re-copied chunk: delete this range first.
    pub range: Option<KeyRange>,
    /// The first batch of a copy restarted after a DDL: the rows copied so
    /// far count as copied again, and the table's progress starts over.
    pub restart: bool,
}

/// Orders two positions of the same source by binlog file and offset;
/// `None` when either has no file (a GTID-only start).
pub fn cmp_positions(a: &Position, b: &Position) -> Option<Ordering> {
    if a.file.is_empty() || b.file.is_empty() {
        return None;
    }
    Some(cmp_binlog_file_names(&a.file, &b.file)?.then(a.offset.cmp(&b.offset)))
}

/// `a` is strictly before `b`.
pub fn is_before(a: &Position, b: &Position) -> bool {
    cmp_positions(a, b) == Some(Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_then_offset() {
        let p = |f: &str, o| Position::new(f.to_string(), o);
        assert!(is_before(
            &p("mysql-bin.000001", 900),
            &p("mysql-bin.000002", 4)
        ));
        assert!(is_before(
            &p("mysql-bin.000002", 4),
            &p("mysql-bin.000002", 5)
        ));
        assert!(!is_before(
            &p("mysql-bin.000002", 5),
            &p("mysql-bin.000002", 5)
        ));
        assert!(is_before(
            &p("mysql-bin.999999", 4),
            &p("mysql-bin.1000000", 4)
        ));
        assert_eq!(cmp_positions(&p("", 4), &p("mysql-bin.000001", 4)), None);
    }
}
