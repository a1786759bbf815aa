//! Cutting merged plans into worker shares (by key hash, plan order kept
//! within a share), the serial source-order share of the unique-conflict
//! fallback, and errors that name the row a statement failed on.

use std::sync::Arc;

use sluice_core::{ChangeKind, Row, RowChange, TableSchema};

use super::catalog::{replication_key, TargetKeys, WriteColumns};
use super::options::{ApplyStats, UniqueConflict};
use crate::error::{LoadError, ServerError, ER_BAD_NULL, ER_DUP_ENTRY};
use crate::key::{describe_key, describe_row, key_bytes};
use crate::merge::{qualified, KeyedRow, PlanBody, SerialOp, TablePlan};
use crate::sql::{self, Kind, Target};

/// A keyed table with fewer rows than this in a batch is not split by key
/// over the workers (see [`partition`]).
pub(super) const WHOLE_TABLE_ROWS: usize = 64;

/// What one worker applies, in order.
pub(super) struct Piece<'a> {
    pub(super) table: &'a TableSchema,
    pub(super) op: PieceOp,
    /// Key columns (keyed tables).
    pub(super) key: Option<Arc<[usize]>>,
    pub(super) rows: Vec<&'a Row>,
    /// A delete whose rows the target should hold: rows it does not find
    /// are counted (not the delete that makes room before a re-insert).
    pub(super) counts_missing: bool,
    /// The columns written, when not all (see [`WriteColumns`]).
    pub(super) only: Option<Arc<[usize]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceOp {
    Upsert,
    Replace,
    Delete,
    Insert,
    DeleteOne,
}

impl<'a> Piece<'a> {
    /// The same piece over other rows.
    pub(super) fn with_rows(&self, rows: Vec<&'a Row>) -> Piece<'a> {
        Piece {
            table: self.table,
            op: self.op,
            key: self.key.clone(),
            rows,
            counts_missing: self.counts_missing,
            only: self.only.clone(),
        }
    }

    /// The table and columns its statements write.
    pub(super) fn target(&self) -> Target<'_> {
        Target {
            table: self.table,
            only: self.only.as_deref(),
        }
    }

    pub(super) fn kind(&self) -> Kind<'_> {
        match self.op {
            PieceOp::Upsert => Kind::Upsert(self.key.as_deref().unwrap_or(&[])),
            PieceOp::Replace => Kind::Replace,
            PieceOp::Delete => Kind::Delete(self.key.as_deref().unwrap_or(&[])),
            PieceOp::Insert => Kind::Insert,
            PieceOp::DeleteOne => Kind::DeleteOne,
        }
    }

    /// The key columns (or every column, without a key) of row `i` by
    /// name: what identifies the row exactly.
    pub(super) fn key_values(&self, i: usize) -> Vec<(String, sluice_core::Value)> {
        let row = self.rows[i.min(self.rows.len() - 1)];
        let all: Vec<usize>;
        let cols: &[usize] = match &self.key {
            Some(key) => key,
            None => {
                all = (0..row.len().min(self.table.columns.len())).collect();
                &all
            }
        };
        cols.iter()
            .filter_map(|&c| Some((self.table.columns.get(c)?.name.clone(), row.get(c)?.clone())))
            .collect()
    }

    /// The key (or row) of row `i`, for messages.
    pub(super) fn describe(&self, i: usize) -> String {
        let row = self.rows[i.min(self.rows.len() - 1)];
        match &self.key {
            Some(key) => describe_key(self.table, row, key),
            None => describe_row(self.table, row),
        }
    }
}

pub(super) struct ShareOutcome {
    pub(super) result: Result<Applied, LoadError>,
    pub(super) retries: u32,
}

/// What a committed share did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub(super) statements: usize,
    /// Rows deletes named that the target did not have.
    pub(super) missed: u64,
    /// The first of them, for the log: (table, key).
    pub(super) example: Option<(String, String)>,
    /// Conflicts met (bidirectional pipelines, see `super::conflict`).
    pub(super) conflicts: Vec<super::options::ConflictSeen>,
}

impl Applied {
    pub(super) fn missed(&mut self, n: u64, key: impl FnOnce() -> String, table: &TableSchema) {
        self.missed += n;
        if self.example.is_none() {
            self.example = Some((qualified(table), key()));
        }
    }

    /// Adds to the batch's stats, and reports missed deletes (at debug level
    /// while replaying, see "Deletes that find nothing" in [`super`]).
    pub(super) fn add_to(self, stats: &mut ApplyStats, batch_id: u64, conflicts: UniqueConflict) {
        stats.statements += self.statements;
        stats.deletes_missed += self.missed;
        stats.conflicts.extend(self.conflicts);
        if let Some((table, key)) = self.example {
            let replaying = conflicts == UniqueConflict::Replace;
            if replaying {
                tracing::debug!(batch_id, missed = self.missed, %table, %key, "deletes matched fewer target rows than they named (replayed batch)");
            } else {
                tracing::warn!(batch_id, missed = self.missed, %table, %key, "deletes matched fewer target rows than they named: the target did not hold these rows");
            }
        }
    }
}

/// Splits plans over at most `workers` shares, keeping plan order within
/// each share: a keyed table's rows by key hash, or the whole table to one
/// worker (by table hash) when it has fewer than [`WHOLE_TABLE_ROWS`] rows
/// in the batch. Empty shares are dropped.
pub(super) fn partition<'a>(
    plans: &'a [TablePlan<'a>],
    workers: usize,
    conflicts: UniqueConflict,
    write: &WriteColumns,
) -> Vec<Vec<Piece<'a>>> {
    let n = workers.max(1);
    let upsert = match conflicts {
        UniqueConflict::Fail => PieceOp::Upsert,
        UniqueConflict::Replace => PieceOp::Replace,
    };
    let mut shares: Vec<Vec<Piece<'a>>> = (0..n).map(|_| Vec::new()).collect();
    for plan in plans {
        let table: &TableSchema = plan.table;
        let only = write.of(table);
        match &plan.body {
            PlanBody::Keyed {
                key,
                deletes,
                upserts,
            } => {
                let key: Arc<[usize]> = Arc::from(&key.columns[..]);
                // Deletes of keys the target should hold are counted when
                // they find nothing; the precautionary ones (I+D) not.
                let (expected, precaution): (Vec<_>, Vec<_>) =
                    deletes.iter().partition(|r| r.expect_row);
                let upserts: Vec<&KeyedRow<'a>> = upserts.iter().collect();
                // A table with few rows in the batch goes whole to one
                // worker: split by key it would cost up to one statement per
                // worker for a handful of rows, and a batch spread over
                // thousands of tables would become thousands of one-row
                // statements. (Load is sequential, so which worker applies
                // a key may differ from batch to batch; within the batch
                // the key's one merged operation stays on one worker.)
                let whole = (deletes.len() + upserts.len() < WHOLE_TABLE_ROWS)
                    .then(|| (crate::key::partition_hash(table, None) % n as u64) as usize);
                for (op, list, counts) in [
                    (PieceOp::Delete, precaution, false),
                    (PieceOp::Delete, expected, true),
                    (upsert, upserts, false),
                ] {
                    let mut per: Vec<Vec<&'a Row>> = vec![Vec::new(); n];
                    for r in list {
                        per[whole.unwrap_or((r.hash % n as u64) as usize)].push(r.row);
                    }
                    for (w, rows) in per.into_iter().enumerate() {
                        if !rows.is_empty() {
                            shares[w].push(Piece {
                                table,
                                op,
                                key: Some(key.clone()),
                                rows,
                                counts_missing: counts,
                                only: only.clone(),
                            });
                        }
                    }
                }
            }
            PlanBody::Unkeyed(ops) => {
                let w = (crate::key::partition_hash(table, None) % n as u64) as usize;
                for op in ops {
                    let (pop, row) = match op {
                        SerialOp::Insert(r) => (PieceOp::Insert, *r),
                        SerialOp::DeleteOne(r) => (PieceOp::DeleteOne, *r),
                    };
                    match shares[w].last_mut() {
                        Some(p) if p.op == pop && std::ptr::eq(p.table, table) => p.rows.push(row),
                        _ => shares[w].push(Piece {
                            table,
                            op: pop,
                            key: None,
                            rows: vec![row],
                            counts_missing: pop == PieceOp::DeleteOne,
                            only: only.clone(),
                        }),
                    }
                }
            }
        }
    }
    shares.retain(|s| !s.is_empty());
    shares
}

/// The batch in source order, one row per statement (the unique-conflict
/// fallback), without the changes of keyless tables for which `skip_unkeyed`
/// says they are already committed. Under [`UniqueConflict::Fail`] a row is
/// written as delete-by-key + plain insert, so a collision with another row
/// is the server's own 1062 naming the value and the unique key.
pub(super) fn serial_share<'a>(
    changes: &'a [RowChange],
    keys: &TargetKeys,
    write: &WriteColumns,
    conflicts: UniqueConflict,
    skip_unkeyed: impl Fn(&TableSchema) -> bool,
) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    type Known<'t> = (&'t TableSchema, Option<Arc<[usize]>>, Option<Arc<[usize]>>);
    let mut known: Vec<Known<'a>> = Vec::new();
    let (mut buf_a, mut buf_b) = (Vec::new(), Vec::new());
    for c in changes {
        let table: &'a TableSchema = &c.table;
        let (key, only) = match known.iter().find(|(t, _, _)| std::ptr::eq(*t, table)) {
            Some((_, k, o)) => (k.clone(), o.clone()),
            None => {
                let k: Option<Arc<[usize]>> = replication_key(table, keys).map(Arc::from);
                let o = write.of(table);
                known.push((table, k.clone(), o.clone()));
                (k, o)
            }
        };
        if key.is_none() && skip_unkeyed(table) {
            continue;
        }
        let piece = |op, row: &'a Row| Piece {
            table,
            op,
            key: key.clone(),
            rows: vec![row],
            counts_missing: matches!(op, PieceOp::Delete | PieceOp::DeleteOne),
            only: only.clone(),
        };
        let write = |out: &mut Vec<Piece<'a>>, row: &'a Row| match conflicts {
            UniqueConflict::Fail => {
                // Makes room for the insert: finding nothing is normal.
                let mut room = piece(PieceOp::Delete, row);
                room.counts_missing = false;
                out.push(room);
                out.push(piece(PieceOp::Insert, row));
            }
            UniqueConflict::Replace => out.push(piece(PieceOp::Replace, row)),
        };
        // Images were validated by `merge` before the first attempt.
        match (c.kind, key.as_deref(), &c.before, &c.after) {
            (ChangeKind::Insert, Some(_), _, Some(a)) => write(&mut out, a),
            (ChangeKind::Delete, Some(_), Some(b), _) => out.push(piece(PieceOp::Delete, b)),
            (ChangeKind::Update, Some(k), Some(b), Some(a)) => {
                if key_bytes(&mut buf_a, b, k) != key_bytes(&mut buf_b, a, k) {
                    out.push(piece(PieceOp::Delete, b));
                }
                write(&mut out, a);
            }
            (ChangeKind::Insert, None, _, Some(a)) => out.push(piece(PieceOp::Insert, a)),
            (ChangeKind::Delete, None, Some(b), _) => out.push(piece(PieceOp::DeleteOne, b)),
            (ChangeKind::Update, None, Some(b), Some(a)) => {
                out.push(piece(PieceOp::DeleteOne, b));
                out.push(piece(PieceOp::Insert, a));
            }
            _ => {}
        }
    }
    out
}

/// Turns a failed statement into an error naming the row the server blamed
/// (`at row N`) or the statement's first row.
pub(super) fn statement_error(
    batch_id: u64,
    piece: &Piece<'_>,
    chunk: sql::Chunk,
    sql_text: &str,
    e: sqlx::Error,
) -> LoadError {
    let Some(server) = ServerError::from_sqlx(&e) else {
        return LoadError::target(
            Some(batch_id),
            format!(
                "{} of {} row(s) into {}",
                sql::describe_kind(piece.kind()),
                chunk.len,
                qualified(piece.table)
            ),
            e,
        );
    };
    let named = match server.row_number() {
        Some(n) if n >= 1 => Some(chunk.start + (n - 1).min(chunk.len - 1)),
        _ if chunk.len == 1 => Some(chunk.start),
        _ => None,
    };
    let key = match named {
        Some(i) => piece.describe(i),
        None => format!(
            "{} (first of {} rows in the statement)",
            piece.describe(chunk.start),
            chunk.len
        ),
    };
    let key_values = named.map(|i| piece.key_values(i));
    let class = crate::error::classify_sqlx(&e);
    // The upsert's guard (see `crate::sql`): the first key column set to
    // NULL means the row collided with another row on another unique key.
    let guard = piece.op == PieceOp::Upsert
        && server.code == ER_BAD_NULL
        && piece
            .key
            .as_deref()
            .and_then(|k| k.first())
            .is_some_and(|&k0| {
                server.message
                    == format!("Column '{}' cannot be null", piece.table.columns[k0].name)
            });
    let unique_conflict = guard || server.code == ER_DUP_ENTRY;
    LoadError::Rejected {
        batch_id,
        table: qualified(piece.table),
        detail: Box::new(crate::error::RejectedDetail {
            key,
            key_values,
            statement: shorten(sql_text, 2000),
        }),
        server,
        class,
        attempts: 1,
        unique_conflict,
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
