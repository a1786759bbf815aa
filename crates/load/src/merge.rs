//! Merging a batch's row changes into the fewest target operations.
//!
//! # Keyed tables
//!
//! A table with a replication key (its primary key from the table map; if it
//! has none, a unique key of the target table whose columns are all NOT NULL,
//! resolved by [`crate::apply`]) is reduced to **the final state of every key
//! the batch touched**: either *present with its last after-image* (→ one
//! upsert of the full image) or *absent* (→ one delete by key). Per key:
//!
//! | changes in the batch | result |
//! |---|---|
//! | I, then U…          | upsert(last after)            (I+U → I) |
//! | U, then U…          | upsert(last after)            (U+U → U) |
//! | I, then D           | delete(key)                   (I+D → see below) |
//! | D, then I           | upsert(after)                 (D+I → U) |
//! | U, then D           | delete(key)                   (U+D → D) |
//! | U changing k1 → k2  | delete(k1), upsert(k2 after)  |
//! | chain k1→k2→k3      | delete(k1), delete(k2), upsert(k3 after) |
//!
//! Because an upsert writes the *full* after image and a delete removes by
//! key, the result for a key does not depend on what the target held for it
//! before: applying the operations to any target state gives the same rows
//! for every touched key, and leaves other keys alone. That is why a batch
//! can be replayed (invariant 3), including when a replay cuts the binlog
//! into different batches. It is also why I+D yields a delete and not
//! nothing: if an earlier attempt applied the insert alone (a batch that
//! ended between the insert and the delete, committed on the target but not
//! acknowledged), "nothing" would leave the row behind forever. A delete of
//! a key that does not exist costs one entry in an `IN` list.
//!
//! Before images are only used for their key (the old key of a delete or a
//! key-changing update); other columns of before images are not checked.
//!
//! A delete records whether the source held the key before the batch (its
//! first change in the batch was an update or a delete): only then must the
//! target hold it too, and a delete that finds nothing is worth reporting
//! ([`KeyedRow::expect_row`]; an I+D delete is a precaution).
//!
//! Output order per table: all deletes, then all upserts, each in the order
//! of the last change to their key. Deletes first frees unique values that
//! the upserts may take (and makes keys equal only by collation — `'a'` vs
//! `'A'` in a `_ci` column — come out right: at most one key of such a class
//! is present at the end, and it is written after every delete of its
//! class). Partitioning must then keep each such class on one worker, which
//! [`KeySpec::exact`] decides.
//!
//! # Tables without a key
//!
//! No merging: the changes are kept in source order as inserts and
//! "delete one row equal to the before image" (an update is that delete
//! followed by an insert of the after image), and applied serially on one
//! connection. Such tables are at-least-once, not idempotent: a replayed
//! insert adds a second copy of the row, because nothing distinguishes it
//! from a real duplicate. Give such tables a key to get convergence.
//!
//! # Schema changes inside a batch
//!
//! Changes of one table are merged only while their table map has the same
//! columns and key; a different map starts a new segment for that table,
//! applied after the earlier one, and all segments of such a table are kept
//! on one worker so their relative order holds.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::{ChangeKind, Row, RowChange, TableSchema, Value};

use crate::key::{describe_key, describe_row, key_bytes, partition_hash, KeySpec};

/// One row operation of a keyed table, with the hash that picks its worker.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRow<'a> {
    /// For an upsert: the full after image. For a delete: an image whose key
    /// columns hold the key to delete.
    pub row: &'a Row,
    pub hash: u64,
    /// For a delete: the source held this key before the batch, so the
    /// target should hold it (see the module docs).
    pub expect_row: bool,
}

/// One operation of a table without a key, in source order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SerialOp<'a> {
    Insert(&'a Row),
    /// Delete one row equal (`<=>`) to this image in every column.
    DeleteOne(&'a Row),
}

/// What to do to one table (segment).
#[derive(Debug)]
pub enum PlanBody<'a> {
    Keyed {
        key: KeySpec,
        deletes: Vec<KeyedRow<'a>>,
        upserts: Vec<KeyedRow<'a>>,
    },
    Unkeyed(Vec<SerialOp<'a>>),
}

/// The merged operations of one table segment.
#[derive(Debug)]
pub struct TablePlan<'a> {
    pub table: &'a Arc<TableSchema>,
    pub body: PlanBody<'a>,
    /// Row changes of the batch that went into this plan.
    pub changes: usize,
}

impl TablePlan<'_> {
    pub fn op_count(&self) -> usize {
        match &self.body {
            PlanBody::Keyed {
                deletes, upserts, ..
            } => deletes.len() + upserts.len(),
            PlanBody::Unkeyed(ops) => ops.len(),
        }
    }
}

/// A change the loader cannot apply; the caller adds the batch id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    /// `` `schema`.`table` ``
    pub table: String,
    /// The key (or whole row) involved, as [`describe_key`] renders it.
    pub key: String,
    pub reason: String,
}

/// Merges a batch. `key_of` names the replication key columns of a table
/// (`None`: the table has no usable key).
pub fn merge<'a>(
    changes: &'a [RowChange],
    mut key_of: impl FnMut(&TableSchema) -> Option<Vec<usize>>,
) -> Result<Vec<TablePlan<'a>>, MergeError> {
    let mut segments: Vec<Segment<'a>> = Vec::new();
    // (schema, table) → index of its open (latest) segment.
    let mut open: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut segment_count: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut buf = Vec::new();

    for (seq, change) in changes.iter().enumerate() {
        let t = &change.table;
        let name = (t.schema.as_str(), t.table.as_str());
        let seg_idx = match open.get(&name) {
            Some(&i) if segments[i].same_shape(t) => i,
            _ => {
                let seg = Segment::new(t, &mut key_of)?;
                segments.push(seg);
                open.insert(name, segments.len() - 1);
                *segment_count.entry(name).or_default() += 1;
                segments.len() - 1
            }
        };
        let seg = &mut segments[seg_idx];
        seg.last = t;
        seg.changes += 1;
        seg.apply(change, seq, &mut buf)?;
    }

    Ok(segments
        .into_iter()
        .map(|seg| {
            let name = (seg.table.schema.as_str(), seg.table.table.as_str());
            let split = segment_count.get(&name).copied().unwrap_or(1) > 1;
            seg.finish(split)
        })
        .collect())
}

struct Segment<'a> {
    table: &'a Arc<TableSchema>,
    /// The last table map seen equal to `table` (skips re-comparing columns
    /// for every change of a transaction).
    last: &'a Arc<TableSchema>,
    changes: usize,
    state: SegmentState<'a>,
}

enum SegmentState<'a> {
    Keyed {
        key: KeySpec,
        index: HashMap<Vec<u8>, usize>,
        entries: Vec<Entry<'a>>,
    },
    Unkeyed(Vec<SerialOp<'a>>),
}

/// The final state of one key.
struct Entry<'a> {
    row: &'a Row,
    present: bool,
    seq: usize,
    hash: u64,
    /// The key's first change in the batch was to a row the source held.
    existed: bool,
}

impl<'a> Segment<'a> {
    fn new(
        table: &'a Arc<TableSchema>,
        key_of: &mut impl FnMut(&TableSchema) -> Option<Vec<usize>>,
    ) -> Result<Self, MergeError> {
        if !table.has_names {
            return Err(MergeError {
                table: qualified(table),
                key: "(any)".into(),
                reason: "the table map carries no column names; the source must log \
                         binlog_row_metadata=FULL"
                    .into(),
            });
        }
        let state = match key_of(table) {
            Some(cols) if !cols.is_empty() => {
                if let Some(bad) = cols.iter().find(|&&i| i >= table.columns.len()) {
                    return Err(MergeError {
                        table: qualified(table),
                        key: "(any)".into(),
                        reason: format!(
                            "key column #{bad} is outside the table's {} columns",
                            table.columns.len()
                        ),
                    });
                }
                SegmentState::Keyed {
                    key: KeySpec::new(table, cols),
                    index: HashMap::new(),
                    entries: Vec::new(),
                }
            }
            _ => SegmentState::Unkeyed(Vec::new()),
        };
        Ok(Segment {
            table,
            last: table,
            changes: 0,
            state,
        })
    }

    fn same_shape(&self, t: &Arc<TableSchema>) -> bool {
        Arc::ptr_eq(self.last, t)
            || Arc::ptr_eq(self.table, t)
            || (self.table.columns == t.columns && self.table.primary_key == t.primary_key)
    }

    fn apply(
        &mut self,
        change: &'a RowChange,
        seq: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), MergeError> {
        let table = self.table;
        let image = |which: &str, img: &'a Option<Row>| -> Result<&'a Row, MergeError> {
            let row = img.as_ref().ok_or_else(|| MergeError {
                table: qualified(table),
                key: "(unknown)".into(),
                reason: format!("{} without its {which} image", change.kind.as_str()),
            })?;
            if row.len() != table.columns.len() {
                return Err(MergeError {
                    table: qualified(table),
                    key: describe_row(table, row),
                    reason: format!(
                        "{} {which} image has {} values for {} columns",
                        change.kind.as_str(),
                        row.len(),
                        table.columns.len()
                    ),
                });
            }
            Ok(row)
        };
        match &mut self.state {
            SegmentState::Keyed {
                key,
                index,
                entries,
            } => {
                // `existed`: the source held this key before this change.
                let mut set = |buf: &mut Vec<u8>, row: &'a Row, present: bool, existed: bool| {
                    set_key(
                        table,
                        key,
                        index,
                        entries,
                        buf,
                        row,
                        (present, existed),
                        seq,
                    )
                };
                match change.kind {
                    ChangeKind::Insert => set(buf, image("after", &change.after)?, true, false),
                    ChangeKind::Delete => set(buf, image("before", &change.before)?, false, true),
                    ChangeKind::Update => {
                        let before = image("before", &change.before)?;
                        let after = image("after", &change.after)?;
                        check_key(table, before, &key.columns)?;
                        check_key(table, after, &key.columns)?;
                        // Compare canonical bytes, not `Value`s: -0.0 = 0.0.
                        let old = key_bytes(buf, before, &key.columns).to_vec();
                        let moved = old != key_bytes(buf, after, &key.columns);
                        if moved {
                            set(buf, before, false, true)?;
                        }
                        set(buf, after, true, !moved)
                    }
                }
            }
            SegmentState::Unkeyed(ops) => {
                match change.kind {
                    ChangeKind::Insert => {
                        let after = image("after", &change.after)?;
                        check_full(table, after, &[])?;
                        ops.push(SerialOp::Insert(after));
                    }
                    ChangeKind::Delete => {
                        let before = image("before", &change.before)?;
                        check_full(table, before, &[])?;
                        ops.push(SerialOp::DeleteOne(before));
                    }
                    ChangeKind::Update => {
                        let before = image("before", &change.before)?;
                        let after = image("after", &change.after)?;
                        check_full(table, before, &[])?;
                        check_full(table, after, &[])?;
                        ops.push(SerialOp::DeleteOne(before));
                        ops.push(SerialOp::Insert(after));
                    }
                }
                Ok(())
            }
        }
    }

    fn finish(self, split: bool) -> TablePlan<'a> {
        let body = match self.state {
            SegmentState::Keyed {
                key, mut entries, ..
            } => {
                if split {
                    // Segments of one table must share a worker.
                    let h = partition_hash(self.table, None);
                    for e in &mut entries {
                        e.hash = h;
                    }
                }
                entries.sort_by_key(|e| e.seq);
                let (mut deletes, mut upserts) = (Vec::new(), Vec::new());
                for e in entries {
                    let op = KeyedRow {
                        row: e.row,
                        hash: e.hash,
                        expect_row: e.existed,
                    };
                    if e.present {
                        upserts.push(op);
                    } else {
                        deletes.push(op);
                    }
                }
                PlanBody::Keyed {
                    key,
                    deletes,
                    upserts,
                }
            }
            SegmentState::Unkeyed(ops) => PlanBody::Unkeyed(ops),
        };
        TablePlan {
            table: self.table,
            body,
            changes: self.changes,
        }
    }
}

/// Records the final state of the key of `row`.
#[allow(clippy::too_many_arguments)]
fn set_key<'a>(
    table: &TableSchema,
    key: &KeySpec,
    index: &mut HashMap<Vec<u8>, usize>,
    entries: &mut Vec<Entry<'a>>,
    buf: &mut Vec<u8>,
    row: &'a Row,
    (present, existed): (bool, bool),
    seq: usize,
) -> Result<(), MergeError> {
    check_key(table, row, &key.columns)?;
    if present {
        check_full(table, row, &key.columns)?;
    }
    let kb = key_bytes(buf, row, &key.columns);
    match index.get(kb) {
        Some(&i) => {
            let e = &mut entries[i];
            e.row = row;
            e.present = present;
            e.seq = seq;
        }
        None => {
            let hash = if key.exact {
                partition_hash(table, Some(kb))
            } else {
                partition_hash(table, None)
            };
            index.insert(kb.to_vec(), entries.len());
            entries.push(Entry {
                row,
                present,
                seq,
                hash,
                existed,
            });
        }
    }
    Ok(())
}

/// `` `schema`.`table` `` for messages.
pub fn qualified(table: &TableSchema) -> String {
    crate::sql::qualified_name(table)
}

/// Key values must identify a row: present, not NULL, not a JSON diff.
fn check_key(table: &TableSchema, row: &Row, key: &[usize]) -> Result<(), MergeError> {
    for &i in key {
        let problem = match &row[i] {
            Value::Null => "is NULL",
            Value::Absent => "is not in the row image (the source must log binlog_row_image=FULL)",
            Value::JsonDiff(_) => "is a partial JSON update",
            _ => continue,
        };
        return Err(MergeError {
            table: qualified(table),
            key: describe_row(table, row),
            reason: format!("key column `{}` {problem}", table.columns[i].name),
        });
    }
    Ok(())
}

/// A row that will be written (or matched in full) must carry every value.
fn check_full(table: &TableSchema, row: &Row, key: &[usize]) -> Result<(), MergeError> {
    for (i, v) in row.iter().enumerate() {
        let problem = match v {
            Value::Absent => "is not in the row image (the source must log binlog_row_image=FULL)",
            Value::JsonDiff(_) => {
                "is a partial JSON update without its document (the source must log \
                 binlog_row_image=FULL, or binlog_row_value_options='')"
            }
            _ => continue,
        };
        let key_text = if key.is_empty() {
            describe_row(table, row)
        } else {
            describe_key(table, row, key)
        };
        return Err(MergeError {
            table: qualified(table),
            key: key_text,
            reason: format!("column `{}` {problem}", table.columns[i].name),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
