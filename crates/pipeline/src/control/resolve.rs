//! Load's side of `errors skip` / `errors replace`: dropping what the skips
//! in force say from the replayed batches, recording it, and ending the
//! resolution once the halted range is behind (see [`super`]'s docs).
//!
//! Batches reach Load in order, so the resolver keeps one piece of state
//! across batches: the start of a source transaction a `transaction` skip is
//! dropping while its slices keep coming (slices of one split transaction
//! all start at the transaction's start position; the last one ends past
//! it).

use std::collections::HashMap;

use sluice_coord::{
    AnyPositionStore, ColumnValue, ControlCheck, ControlStore, ControlWrite, Fence, HistoryRecord,
    HistoryState, PositionCache, Resolution, Skip, SkipScope, SkippedChange, Versioned,
};
use sluice_core::time::unix_ms;
use sluice_core::{Position, Row, RowChange, TableSchema};

use crate::batch::{cmp_positions, is_before, Batch, BatchBody};
use crate::error::PipelineError;

/// Row images kept per history entry, in serialised bytes (etcd values are
/// limited to 1.5 MiB); beyond it the entry says `truncated`.
const HISTORY_BUDGET: usize = 512 * 1024;

/// The resolution in force during one term.
pub struct Resolver {
    store: ControlStore,
    fence: Fence,
    mod_revision: i64,
    filter: SkipFilter,
    /// History entries of the skips, by key, as last written.
    history: HashMap<String, HistoryRecord>,
}

/// Which changes the skips drop (no I/O: the rules alone).
pub struct SkipFilter {
    resolution: Resolution,
    /// A `transaction` skip dropping a split transaction: (skip, its start).
    open_txn: Option<(usize, Position)>,
}

/// What one batch lost, per skip.
pub struct Dropped(Vec<(usize, SkippedChange)>);

impl Dropped {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Resolver {
    /// Loads the history entries of `resolution`'s skips.
    pub async fn load(
        store: ControlStore,
        fence: Fence,
        resolution: Versioned<Resolution>,
    ) -> Result<Self, PipelineError> {
        let wanted: Vec<&str> = resolution
            .value
            .skips
            .iter()
            .map(|s| s.history_key.as_str())
            .collect();
        let history = store
            .history()
            .await?
            .into_iter()
            .filter(|(k, _)| wanted.contains(&k.as_str()))
            .collect();
        tracing::info!(
            skips = resolution.value.skips.len(),
            through = %resolution.value.through,
            "replaying the halted range with the operator's skips"
        );
        Ok(Resolver {
            store,
            fence,
            mod_revision: resolution.mod_revision,
            filter: SkipFilter::new(resolution.value),
            history,
        })
    }

    /// The end of the halted range (Extract cuts there).
    pub fn through(&self) -> &Position {
        &self.filter.resolution.through
    }

    /// Drops from `batch` what the skips say.
    pub fn filter(&mut self, batch: &mut Batch) -> Dropped {
        self.filter.filter(batch)
    }

    /// Writes what `batch` lost into the skips' history entries (before it
    /// is applied, so the record survives a crash; replays add nothing
    /// twice).
    pub async fn record(&mut self, dropped: Dropped) -> Result<(), PipelineError> {
        let mut changed: Vec<String> = Vec::new();
        for (skip, change) in dropped.0 {
            let Some(s) = self.filter.resolution.skips.get(skip) else {
                continue;
            };
            let Some(entry) = self.history.get_mut(&s.history_key) else {
                tracing::warn!(request = %s.request, "the history entry of a skip is missing; the dropped change is only logged");
                // The record is lost, so the log line carries all of it, as the
                // history would have: the JSON of the change and its images.
                let record = serde_json::to_string(&change).unwrap_or_default();
                tracing::warn!(request = %s.request, table = %change.table, kind = %change.kind, change = %record, "change dropped by an operator's skip");
                continue;
            };
            tracing::info!(request = %s.request, table = %change.table, kind = %change.kind, "change dropped by an operator's skip");
            if entry.skipped.contains(&change) || entry.truncated {
                continue;
            }
            entry.skipped.push(change);
            if serde_json::to_vec(entry).map_or(0, |v| v.len()) > HISTORY_BUDGET {
                entry.skipped.pop();
                entry.truncated = true;
            }
            if !changed.contains(&s.history_key) {
                changed.push(s.history_key.clone());
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        let writes = changed
            .into_iter()
            .filter_map(|key| {
                let record = self.history.get(&key)?.clone();
                Some(ControlWrite::PutHistory {
                    key,
                    record: Box::new(record),
                })
            })
            .collect();
        self.store.write(&self.fence, &[], writes).await?;
        Ok(())
    }

    /// After `batch` was acknowledged: once the replay is past the halted
    /// range, flushes the position (so a restart cannot replay the range
    /// without the skips), deletes the resolution and marks its history
    /// entries done. `true` when the resolution is over.
    pub async fn after_ack(
        &mut self,
        batch: &Batch,
        cache: &PositionCache<AnyPositionStore>,
    ) -> Result<bool, PipelineError> {
        if self.filter.open_txn.is_some() || is_before(&batch.through, self.through()) {
            return Ok(false);
        }
        cache.flush_now().await?;
        let now = unix_ms();
        let mut writes = vec![ControlWrite::DeleteResolution];
        for s in &self.filter.resolution.skips {
            if let Some(entry) = self.history.get(&s.history_key) {
                let mut record = entry.clone();
                record.state = HistoryState::Done;
                record.completed_at_unix_ms = Some(now);
                writes.push(ControlWrite::PutHistory {
                    key: s.history_key.clone(),
                    record: Box::new(record),
                });
            }
        }
        let done = self
            .store
            .write(
                &self.fence,
                &[ControlCheck::Resolution(self.mod_revision)],
                writes,
            )
            .await?;
        if done {
            tracing::info!(through = %self.through(), "replay passed the halted range: the operator's resolution is complete");
        } else {
            tracing::warn!("the resolution changed meanwhile; leaving it to the next term");
        }
        Ok(true)
    }
}

impl SkipFilter {
    pub fn new(resolution: Resolution) -> Self {
        SkipFilter {
            resolution,
            open_txn: None,
        }
    }

    /// Drops from `batch` what the skips say (see the module docs).
    pub fn filter(&mut self, batch: &mut Batch) -> Dropped {
        let mut dropped = Vec::new();
        if let Some((skip, start)) = self.open_txn.clone() {
            if same(&batch.start, &start) {
                drop_all(batch, skip, &mut dropped);
                if !same(&batch.end, &start) {
                    self.open_txn = None;
                }
                return Dropped(dropped);
            }
            self.open_txn = None;
        }
        for (i, skip) in self.resolution.skips.iter().enumerate() {
            if !within(batch, skip) {
                continue;
            }
            match (&mut batch.body, skip.scope) {
                (BatchBody::Ddl(_), _) if skip.ddl => drop_all(batch, i, &mut dropped),
                (BatchBody::Ddl(_), _) => {}
                (BatchBody::Rows(_), SkipScope::Batch) => drop_all(batch, i, &mut dropped),
                (BatchBody::Rows(rows), SkipScope::Change) => {
                    let (Some(table), Some(key)) = (&skip.table, &skip.key_values) else {
                        continue;
                    };
                    let mut index = 0;
                    rows.retain(|c| {
                        let hit = matches(c, table, key);
                        if hit {
                            dropped.push((i, skipped(&batch.start, &batch.through, index, c)));
                        }
                        index += 1;
                        !hit
                    });
                }
                (BatchBody::Rows(rows), SkipScope::Transaction) => {
                    let (Some(table), Some(key)) = (&skip.table, &skip.key_values) else {
                        continue;
                    };
                    if rows.iter().any(|c| matches(c, table, key)) {
                        if same(&batch.end, &batch.start) {
                            // A slice: the transaction goes on in later
                            // batches, which start where this one does.
                            self.open_txn = Some((i, batch.start.clone()));
                        }
                        drop_all(batch, i, &mut dropped);
                    }
                }
            }
        }
        Dropped(dropped)
    }
}

/// Equal source positions (file and offset).
fn same(a: &Position, b: &Position) -> bool {
    cmp_positions(a, b) == Some(std::cmp::Ordering::Equal)
}

/// `batch` lies inside the skip's halted range.
fn within(batch: &Batch, skip: &Skip) -> bool {
    let after_from = skip
        .from
        .as_ref()
        .is_none_or(|f| !is_before(&batch.start, f));
    after_from && !is_before(&skip.through, &batch.through)
}

fn drop_all(batch: &mut Batch, skip: usize, dropped: &mut Vec<(usize, SkippedChange)>) {
    let start = (!batch.start.file.is_empty()).then(|| batch.start.clone());
    match std::mem::replace(&mut batch.body, BatchBody::Rows(Vec::new())) {
        BatchBody::Rows(rows) => {
            for (index, c) in rows.iter().enumerate() {
                dropped.push((skip, skipped(&batch.start, &batch.through, index, c)));
            }
        }
        BatchBody::Ddl(ddl) => dropped.push((
            skip,
            SkippedChange {
                batch_start: start,
                batch_through: batch.through.clone(),
                index: 0,
                kind: "ddl".into(),
                table: String::new(),
                before: None,
                after: None,
                ddl: Some(match &ddl.decision {
                    Some(crate::ddl::DdlDecision::Apply(routed)) => routed.sql.clone(),
                    _ => ddl.sql.clone(),
                }),
            },
        )),
    }
}

/// Whether `change` touches the row of `table` with `key` (in its before
/// or its after image).
fn matches(change: &RowChange, table: &str, key: &[ColumnValue]) -> bool {
    if sluice_load::merge::qualified(&change.table) != table {
        return false;
    }
    let has_key = |row: &Row| {
        key.iter().all(|kv| {
            change
                .table
                .columns
                .iter()
                .position(|c| c.name == kv.column)
                .and_then(|i| row.get(i))
                == Some(&kv.value)
        })
    };
    change.before.as_ref().is_some_and(has_key) || change.after.as_ref().is_some_and(has_key)
}

fn image(table: &TableSchema, row: &Option<Row>) -> Option<Vec<ColumnValue>> {
    row.as_ref().map(|r| {
        table
            .columns
            .iter()
            .zip(r)
            .map(|(c, v)| ColumnValue {
                column: c.name.clone(),
                value: v.clone(),
            })
            .collect()
    })
}

fn skipped(start: &Position, through: &Position, index: usize, c: &RowChange) -> SkippedChange {
    SkippedChange {
        batch_start: (!start.file.is_empty()).then(|| start.clone()),
        batch_through: through.clone(),
        index,
        kind: c.kind.as_str().into(),
        table: sluice_load::merge::qualified(&c.table),
        before: image(&c.table, &c.before),
        after: image(&c.table, &c.after),
        ddl: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::{ChangeKind, Column, Value};

    fn table() -> Arc<TableSchema> {
        let col = |name: &str| Column {
            name: name.into(),
            type_code: 0,
            meta: 0,
            nullable: true,
            unsigned: false,
            collation: None,
            labels: None,
        };
        Arc::new(TableSchema {
            schema: "shop".into(),
            table: "events".into(),
            columns: vec![col("id"), col("v")],
            primary_key: vec![0],
            has_names: true,
        })
    }

    fn insert(id: i64, v: &str) -> RowChange {
        RowChange {
            table: table(),
            kind: ChangeKind::Insert,
            before: None,
            after: Some(vec![Value::Int(id), Value::Text(v.into())]),
        }
    }

    fn pos(o: u64) -> Position {
        Position::new("b.000001", o)
    }

    fn batch(start: u64, end: u64, through: u64, rows: Vec<RowChange>) -> Batch {
        Batch {
            id: 1,
            start: pos(start),
            end: pos(end),
            through: pos(through),
            timestamp: 0,
            body: BatchBody::Rows(rows),
        }
    }

    fn skip(scope: SkipScope, from: u64, through: u64) -> Skip {
        Skip {
            request: "r".into(),
            history_key: "h".into(),
            scope,
            from: Some(pos(from)),
            through: pos(through),
            table: Some("`shop`.`events`".into()),
            key_values: Some(vec![ColumnValue {
                column: "id".into(),
                value: Value::Int(5),
            }]),
            ddl: false,
        }
    }

    fn resolver(skips: Vec<Skip>) -> SkipFilter {
        SkipFilter::new(Resolution {
            from: Some(pos(100)),
            through: pos(500),
            skips,
        })
    }

    fn rows(b: &Batch) -> Vec<i64> {
        match &b.body {
            BatchBody::Rows(r) => r
                .iter()
                .map(|c| match c.after.as_ref().map(|a| &a[0]) {
                    Some(Value::Int(i)) => *i,
                    _ => -1,
                })
                .collect(),
            BatchBody::Ddl(_) => vec![],
        }
    }

    #[test]
    fn change_scope_drops_only_that_row_inside_the_range() {
        let mut r = resolver(vec![skip(SkipScope::Change, 100, 500)]);
        let mut b = batch(
            100,
            500,
            500,
            vec![insert(4, "a"), insert(5, "long"), insert(6, "b")],
        );
        let d = r.filter(&mut b);
        assert_eq!(rows(&b), vec![4, 6]);
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].1.index, 1);
        assert_eq!(
            d.0[0].1.after.as_ref().expect("image")[1].value,
            Value::Text("long".into())
        );
        // Outside the range: untouched.
        let mut later = batch(500, 700, 700, vec![insert(5, "later")]);
        assert!(r.filter(&mut later).is_empty());
        assert_eq!(rows(&later), vec![5]);
    }

    #[test]
    fn batch_and_transaction_scopes() {
        let mut r = resolver(vec![skip(SkipScope::Batch, 100, 500)]);
        let mut b = batch(200, 300, 300, vec![insert(1, "a"), insert(2, "b")]);
        assert_eq!(r.filter(&mut b).0.len(), 2);
        assert!(rows(&b).is_empty());

        // A transaction split over batches: its slices start at 300 and the
        // last one ends at 800; the next transaction is kept.
        let mut r = resolver(vec![skip(SkipScope::Transaction, 100, 500)]);
        let mut other = batch(100, 300, 300, vec![insert(1, "a")]);
        assert!(r.filter(&mut other).is_empty());
        let mut slice = batch(300, 300, 500, vec![insert(7, "x"), insert(5, "bad")]);
        assert_eq!(r.filter(&mut slice).0.len(), 2);
        let mut tail = batch(300, 800, 800, vec![insert(8, "y")]);
        assert_eq!(r.filter(&mut tail).0.len(), 1);
        assert!(rows(&tail).is_empty());
        let mut next = batch(800, 900, 900, vec![insert(9, "z")]);
        assert!(r.filter(&mut next).is_empty());
        assert_eq!(rows(&next), vec![9]);
    }
}
