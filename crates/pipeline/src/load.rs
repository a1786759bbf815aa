//! Load: apply batches in `batch_id` order, then acknowledge them.
//!
//! For each batch, in order:
//! 1. record the batch as *in flight* on the target (`applying_*` columns
//!    of `sluice_meta.checkpoint`) — unless it is a row batch small enough
//!    for one target transaction, which then carries its checkpoint and
//!    cannot be half applied;
//! 2. apply it with its checkpoint (batch id, end position, position after
//!    its last event) ([`Loader::apply_batch_checkpointed`]: merged by key,
//!    parallel by key hash, idempotent; rows of keyless tables commit
//!    together with the checkpoint, so they are applied exactly once) — or,
//!    for DDL, run the routed statement after every earlier batch is
//!    committed (Load is sequential, so "earlier" is everything already
//!    acknowledged), then record the checkpoint;
//! 3. acknowledge it to the position cache, which flushes to the store.
//!
//! When row batches are already queued behind the one at hand (catching
//! up on a backlog), Load takes them too, up to 20,000 rows, and applies
//! them as one: one merge, larger statements, one round of metadata writes.
//! Each is still acknowledged, in order, after the combined apply committed;
//! the checkpoint is the last one's.
//!
//! Snapshot chunk batches queued back to back are grouped the same way, up
//! to 40,000 rows, but only with each other, only *plain* ones (nothing
//! to do before them but their in-flight record; see [`plain_chunk`]) and
//! at most one chunk of each table (so no more of a table is in flight):
//! their in-flight records are written before the combined apply, in one
//! target transaction, and their progress after it, in order, in another. That is the order applying them
//! one by one would give, since nothing else lies between them in the
//! stream; a crash after the commit but before a chunk's progress is the
//! window a single chunk batch has too (the chunk is copied again, exact,
//! and counted in `rows_recopied`).
//!
//! **Transient** failures (target down, deadlock, lock wait timeout) retry
//! the same batch with backoff for as long as it takes, never acknowledging
//! it: the pipeline waits for the target. **Definite** failures stop the
//! pipeline with the loader's message (batch, table, key, server error);
//! nothing at or after the failing batch is acknowledged. A group of queued
//! batches that fails definitely is first applied again batch by batch, so
//! the batches before the failing one are acknowledged and the failure
//! names the one batch it is in; that batch is left in the
//! [`FailedSlot`](crate::control::FailedSlot) for the halt record.
//!
//! # Two retry levels, on purpose
//!
//! A transient failure is retried at two levels, each under a
//! [`RetryPolicy`] and each deciding by the error's class alone; they retry
//! different units, so the nesting is the design, not an accident:
//!
//! * **The loader** ([`sluice_load::default_retry`], bounded: 8 attempts,
//!   0.1 s doubling to 5 s, about 11 s of waiting) retries *one worker's
//!   transaction* of a batch. A deadlock or lock wait between two workers,
//!   or one dropped connection, rolls back that share only; the other
//!   shares have committed, and applying the whole batch again for it would
//!   redo their work. It is bounded because the loader has no stop signal
//!   and cannot report the target's state: a target that stays down must
//!   come back up to the caller.
//! * **The applier** ([`Applier::retry`], [`APPLY_RETRY`]: unbounded, 0.25 s
//!   doubling to 5 s) applies *the whole batch* again (idempotent by key and
//!   checkpoint) for as long as the target needs, reporting it down and up
//!   ([`NodeStatus`]), counting retries, and stopping at once when the batch
//!   is abandoned (shutdown, term lost): [`retry`] drops the attempt in
//!   flight, inner retries included.
//!
//! So a target down for minutes costs one "target unavailable" warning per
//! outer attempt (each after the inner ≈ 11 s), not a retry storm; a definite error passes
//! both levels at once.
//!
//! # Operator control
//!
//! Every batch passes the pause [`Gate`](crate::control::Gate) before it is
//! applied. While an operator's resolution is in force, Load first drops
//! what its skips say from each batch and records that in the history
//! ([`crate::control::resolve`]); such batches are not grouped.
//!
//! # Replay after a crash
//!
//! The runtime resumes from the target's checkpoint when it is ahead of the
//! stored position, so a crash replays at most the batch that was in
//! flight. That batch may be partly on the target already, i.e. the target
//! is *ahead* of the replayed changes; until the replay passes the in-flight
//! batch's last event (the *horizon*), unique-key collisions are resolved
//! with `REPLACE` ([`UniqueConflict::Replace`]) and DDL failing because it
//! was already applied (table exists, duplicate column, ...) is skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_config::DdlPolicy;
use sluice_coord::{AnyPositionStore, PositionCache};
use sluice_core::retry::{retry, RetryPolicy};
use sluice_core::{Classify as _, Position};
use sluice_load::{CheckpointMark, LoadError, Loader, UniqueConflict};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batch::{is_before, Batch, BatchBody};
use crate::channel::Receiver;
use crate::ddl::DdlDecision;
use crate::error::PipelineError;
use crate::stats::LoadStats;
use crate::status::NodeStatus;

/// The target fenced this node out (another term writes now).
fn fenced(e: &PipelineError) -> bool {
    matches!(e, PipelineError::Load(l) if l.is_fenced_out())
}

pub struct LoadStage {
    pub applier: Applier,
    pub cache: PositionCache<AnyPositionStore>,
    /// Replay horizon: see the module docs.
    pub horizon: Option<Position>,
    /// Id of the last batch acknowledged (read by Extract).
    pub acked: Arc<AtomicU64>,
    /// Where the batch of a definite failure is left.
    pub failed: crate::control::FailedSlot,
    /// An operator's resolution in force.
    pub resolver: Option<crate::control::resolve::Resolver>,
    /// Which batches are snapshot chunks ([`crate::snapshot`]): never
    /// grouped with stream batches, and their progress is recorded after
    /// they commit.
    pub copies: Option<crate::snapshot::Marks>,
}

/// Applies one batch to the target (intent, rows or DDL, checkpoint),
/// retrying transient failures. Shared by the in-process Load stage and
/// the Load tasks of distributed stages.
pub struct Applier {
    pub pipeline: String,
    pub loader: Arc<Loader>,
    pub ddl: DdlPolicy,
    pub stats: Arc<LoadStats>,
    /// Where the target's connection state and alarms are reported.
    pub status: NodeStatus,
    /// How a batch is applied again after a transient failure (unbounded:
    /// the pipeline waits for the target; the loader's own policy is
    /// bounded and retries inside each attempt).
    pub retry: RetryPolicy,
    /// Holds batches while the pipeline is paused.
    pub gate: crate::control::Gate,
}

/// The Applier's default: 250 ms doubling to 5 s, for as long as it takes.
pub const APPLY_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(250), Duration::from_secs(5));

/// Queued row batches are applied together up to this many rows.
const COALESCE_MAX_ROWS: usize = 20_000;

/// Queued plain chunk batches ([`plain_chunk`]) are applied together up to
/// this many rows: four of Extract's chunk batches
/// (`snapshot::COPY_BATCH_ROWS`). Applied alone, each chunk batch was a
/// round of worker transactions whose slowest share idled the others, plus
/// three metadata transactions, with the target's second core half idle
/// (measured, 4 × 500k rows).
const COPY_COALESCE_MAX_ROWS: usize = 40_000;

/// A chunk batch that needs nothing before it but its in-flight record: not
/// the first batch of a keyless table's copy (which clears the table), of
/// a re-copied chunk (which deletes its range) or of a copy a DDL
/// restarted. Such batches queued back to back are applied as one (see
/// the module docs).
fn plain_chunk(mark: &crate::snapshot::CopyMark) -> bool {
    !mark.clear && !mark.restart && mark.range.is_none()
}

/// Gives every batch of a group its changes back from `combined` (the
/// inverse of [`combine`]; `counts` are the batches' row counts).
fn uncombine(
    combined: Batch,
    first: &mut Batch,
    rest: &mut [crate::channel::Sized<Batch>],
    counts: &[usize],
) {
    let BatchBody::Rows(mut changes) = combined.body else {
        return;
    };
    let batches = std::iter::once(first).chain(rest.iter_mut().map(|b| &mut b.item));
    for (batch, n) in batches.zip(counts) {
        let tail = changes.split_off((*n).min(changes.len()));
        batch.body = BatchBody::Rows(std::mem::replace(&mut changes, tail));
    }
}

/// One batch spanning `first` and the row batches behind it (in order),
/// with their changes moved in; it carries the last batch's id and
/// positions, so its checkpoint is the last one's. Shared with the Load
/// tasks of distributed stages, which load runs of batches the same way.
pub(crate) fn combine<'a>(
    first: &mut Batch,
    rest: impl IntoIterator<Item = &'a mut Batch>,
) -> Batch {
    let take = |b: &mut Batch| match &mut b.body {
        BatchBody::Rows(rows) => std::mem::take(rows),
        BatchBody::Ddl(_) => Vec::new(),
    };
    let mut changes = take(first);
    let mut last: Option<&Batch> = None;
    for b in rest {
        changes.append(&mut take(b));
        last = Some(b);
    }
    let last = last.unwrap_or(&*first);
    Batch {
        id: last.id,
        start: first.start.clone(),
        end: last.end.clone(),
        through: last.through.clone(),
        timestamp: last.timestamp,
        body: BatchBody::Rows(changes),
    }
}

impl LoadStage {
    /// Applies batches until the channel closes, or `abandon` fires (then
    /// the batch in progress is left unacknowledged).
    pub async fn run(
        mut self,
        mut rx: Receiver<Batch>,
        abandon: CancellationToken,
    ) -> Result<(), PipelineError> {
        // A non-row batch taken while collecting row batches: next in line.
        let mut stash: Option<crate::channel::Sized<Batch>> = None;
        loop {
            let msg = if stash.is_some() {
                None
            } else {
                tokio::select! {
                    () = abandon.cancelled() => return Ok(()),
                    msg = rx.recv() => msg,
                }
            };
            let Some(mut msg) = stash.take().or(msg) else {
                return Ok(());
            };
            let resolving = self.resolver.is_some();
            if let Some(r) = &mut self.resolver {
                let dropped = r.filter(&mut msg.item);
                if !dropped.is_empty() {
                    r.record(dropped).await?;
                }
            }
            // Row batches already queued behind this one (a backlog) are
            // applied together: one merge, larger statements, one round of
            // metadata writes. Their byte permits are held until applied.
            let mut group: Vec<crate::channel::Sized<Batch>> = Vec::new();
            let copy = self.copies.as_ref().and_then(|c| c.get(msg.item.id));
            let mark_of = |b: &Batch| self.copies.as_ref().and_then(|c| c.get(b.id));
            // The marks of the group's chunk batches after the first, in
            // order (a group is all stream batches or all plain chunks).
            let mut marks: Vec<crate::snapshot::CopyMark> = Vec::new();
            let plain = copy.as_ref().map(plain_chunk);
            if matches!(msg.item.body, BatchBody::Rows(_)) && !resolving && plain != Some(false) {
                let limit = if plain.is_some() {
                    COPY_COALESCE_MAX_ROWS
                } else {
                    COALESCE_MAX_ROWS
                };
                let mut rows = msg.item.rows();
                // Tables whose chunk ends in the group: at most one chunk
                // per table is in flight, so a failover copies no more of a
                // table again than one chunk batch alone would.
                let mut ended: Vec<String> = copy
                    .iter()
                    .filter(|m| m.chunk_end)
                    .map(|m| m.table.clone())
                    .collect();
                while rows < limit {
                    let Some(next) = rx.try_recv() else { break };
                    let next_mark = mark_of(&next.item);
                    let fits = matches!(next.item.body, BatchBody::Rows(_))
                        && match (&next_mark, plain) {
                            (None, None) => true,
                            (Some(m), Some(true)) => plain_chunk(m) && !ended.contains(&m.table),
                            _ => false,
                        };
                    if !fits {
                        stash = Some(next);
                        break;
                    }
                    if let Some(m) = next_mark.as_ref().filter(|m| m.chunk_end) {
                        ended.push(m.table.clone());
                    }
                    marks.extend(next_mark);
                    rows += next.item.rows();
                    group.push(next);
                }
            }
            let chunk_marks: Vec<&crate::snapshot::CopyMark> = copy.iter().chain(&marks).collect();
            if !before_chunks(&self.applier, &chunk_marks, &abandon).await? {
                return Ok(());
            }
            let applied = if group.is_empty() {
                let replaying = self.replaying(&msg.item);
                match self.applier.apply(&msg.item, replaying, &abandon).await {
                    Ok(applied) => applied,
                    Err(e) => {
                        self.failed.set(&msg.item);
                        return Err(e);
                    }
                }
            } else {
                let counts: Vec<usize> = std::iter::once(&msg.item)
                    .chain(group.iter().map(|b| &b.item))
                    .map(Batch::rows)
                    .collect();
                let combined = combine(&mut msg.item, group.iter_mut().map(|b| &mut b.item));
                let replaying = self.replaying(&combined);
                match self.applier.apply(&combined, replaying, &abandon).await {
                    Ok(ok) => {
                        tracing::debug!(
                            first = msg.item.id,
                            last = combined.id,
                            rows = combined.rows(),
                            "queued batches applied together"
                        );
                        ok
                    }
                    Err(e) if e.class().is_transient() || fenced(&e) => return Err(e),
                    Err(e) => {
                        tracing::info!(first = msg.item.id, last = combined.id, error = %e, "queued batches failed together; applying them one by one to find the failing batch");
                        uncombine(combined, &mut msg.item, &mut group, &counts);
                        for (i, batch) in std::iter::once(msg.item)
                            .chain(group.into_iter().map(|b| b.item))
                            .enumerate()
                        {
                            // A group of chunks has a mark for every batch.
                            let mark = chunk_marks.get(i);
                            let replaying = self.replaying(&batch);
                            match self.applier.apply(&batch, replaying, &abandon).await {
                                Ok(true) => {}
                                Ok(false) => return Ok(()),
                                Err(e) => {
                                    self.failed.set(&batch);
                                    return Err(e);
                                }
                            }
                            if let Some(&mark) = mark {
                                if !self.chunks_committed(&[(batch.id, mark)], &abandon).await? {
                                    return Ok(());
                                }
                            }
                            self.acknowledge(std::slice::from_ref(&&batch))?;
                        }
                        // All of them applied one by one.
                        continue;
                    }
                }
            };
            if !applied {
                return Ok(());
            }
            let ids = std::iter::once(msg.item.id).chain(group.iter().map(|b| b.item.id));
            let committed: Vec<(u64, &crate::snapshot::CopyMark)> =
                ids.zip(chunk_marks.iter().copied()).collect();
            if !self.chunks_committed(&committed, &abandon).await? {
                return Ok(());
            }
            let batches: Vec<&Batch> = std::iter::once(&msg.item)
                .chain(group.iter().map(|b| &b.item))
                .collect();
            self.acknowledge(&batches)?;
            if let Some(r) = &mut self.resolver {
                if r.after_ack(&msg.item, &self.cache).await? {
                    self.resolver = None;
                }
            }
        }
    }

    /// After chunk batches `(batch id, mark)` committed: their progress on
    /// the target (one transaction), their status, their marks forgotten,
    /// in order. `Ok(false)`: abandoned.
    async fn chunks_committed(
        &self,
        chunks: &[(u64, &crate::snapshot::CopyMark)],
        abandon: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        if chunks.is_empty() {
            return Ok(true);
        }
        let marks: Vec<&crate::snapshot::CopyMark> = chunks.iter().map(|(_, m)| *m).collect();
        if !after_chunks(&self.applier, &marks, abandon).await? {
            return Ok(false);
        }
        for (batch_id, mark) in chunks {
            report_chunk(&self.applier.status, mark);
            if let Some(copies) = &self.copies {
                copies.remove(*batch_id);
            }
        }
        Ok(true)
    }

    /// Acknowledges `batches` (applied, in order).
    fn acknowledge(&mut self, batches: &[&Batch]) -> Result<(), PipelineError> {
        let Some(last) = batches.last() else {
            return Ok(());
        };
        for batch in batches {
            self.cache.ack(batch.id, batch.end.clone())?;
            self.acked.store(batch.id, Ordering::Relaxed);
        }
        self.applier
            .stats
            .batches
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        metrics::counter!("sluice_batches_total", "stage" => "load")
            .increment(batches.len() as u64);
        if let Some(h) = &self.horizon {
            if !is_before(&last.through, h) {
                tracing::info!(
                    batch_id = last.id,
                    "replay passed the batch that was in flight at the last stop"
                );
                self.horizon = None;
            }
        }
        Ok(())
    }

    fn replaying(&self, batch: &Batch) -> bool {
        self.horizon
            .as_ref()
            .is_some_and(|h| is_before(&batch.start, h))
    }
}

impl Applier {
    /// Applies `batch`; `replaying` when the target may already hold part of
    /// it (see the module docs). `Ok(false)` when abandoned.
    pub async fn apply(
        &self,
        batch: &Batch,
        replaying: bool,
        abandon: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        let Some(_passage) = self.gate.enter(abandon).await else {
            return Ok(false);
        };
        let done = self.apply_passing(batch, replaying, abandon).await?;
        if done {
            // Here, before the passage ends, not when acknowledged: a pause
            // is acknowledged once the gate is idle, and the node record it
            // publishes first must carry this batch's time.
            self.stats
                .last_event_time
                .store(u64::from(batch.timestamp), Ordering::Relaxed);
        }
        Ok(done)
    }

    /// [`Applier::apply`] once through the pause gate.
    async fn apply_passing(
        &self,
        batch: &Batch,
        replaying: bool,
        abandon: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        let rows = match &batch.body {
            BatchBody::Rows(rows) if rows.is_empty() => return Ok(true),
            BatchBody::Rows(rows) => Some(rows),
            BatchBody::Ddl(ddl) => match ddl.decision.as_ref() {
                Some(DdlDecision::Apply(_)) if self.ddl == DdlPolicy::Skip => {
                    tracing::info!(batch_id = batch.id, at = %ddl.at, sql = %ddl.sql, "DDL skipped (load.ddl is skip)");
                    return Ok(true);
                }
                Some(DdlDecision::Apply(_)) if self.ddl == DdlPolicy::Fail => {
                    return Err(PipelineError::DdlRefused {
                        batch_id: batch.id,
                        at: ddl.at.clone(),
                        sql: ddl.sql.clone(),
                    });
                }
                Some(DdlDecision::Apply(_)) => None,
                Some(DdlDecision::Ignore { reason }) => {
                    tracing::debug!(batch_id = batch.id, at = %ddl.at, %reason, "DDL not replicated");
                    return Ok(true);
                }
                None => return Ok(true),
            },
        };
        let through = batch.through.to_string();
        // Row batches record themselves as in flight inside the loader, and
        // only when they take more than one transaction.
        if rows.is_none() {
            let Some(()) = self
                .retrying(batch.id, abandon, || {
                    self.loader
                        .record_intent(&self.pipeline, batch.id, &through)
                })
                .await?
            else {
                return Ok(false);
            };
        }
        let applied = match (rows, &batch.body) {
            (Some(rows), _) => {
                let conflicts = if replaying {
                    UniqueConflict::Replace
                } else {
                    self.loader.options().unique_conflict
                };
                let started = Instant::now();
                let position = batch.end.to_string();
                let mark = CheckpointMark {
                    pipeline: &self.pipeline,
                    position: &position,
                    through: &through,
                };
                // An attempt whose commit answer was lost (the connection
                // broke during COMMIT) may have committed: the next attempt
                // first asks the checkpoint, so rows of keyless tables are
                // never applied twice within a run.
                let mut attempts = 0u32;
                let stats = self
                    .retrying(batch.id, abandon, || {
                        attempts += 1;
                        let again = attempts > 1;
                        let mark = &mark;
                        async move {
                            if again && self.committed(batch.id).await? {
                                tracing::info!(
                                    batch_id = batch.id,
                                    "the failed attempt had committed the batch"
                                );
                                return Ok(None);
                            }
                            self.loader
                                .apply_batch_checkpointed(batch.id, rows, conflicts, mark)
                                .await
                                .map(Some)
                        }
                    })
                    .await?;
                let applied = stats.is_some();
                if applied {
                    self.stats
                        .rows
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    metrics::histogram!("sluice_batch_apply_seconds")
                        .record(started.elapsed().as_secs_f64());
                    crate::status::count_rows("load", rows);
                }
                if let Some(Some(stats)) = &stats {
                    self.report_conflicts(batch.id, &stats.conflicts);
                    if stats.deletes_missed > 0 {
                        metrics::counter!("sluice_deletes_missed_total")
                            .increment(stats.deletes_missed);
                    }
                    tracing::debug!(
                        batch_id = batch.id,
                        rows = rows.len(),
                        upserts = stats.upserts,
                        deletes = stats.deletes,
                        statements = stats.statements,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        replaying,
                        "batch applied"
                    );
                }
                applied
            }
            (None, BatchBody::Ddl(ddl)) => {
                let Some(DdlDecision::Apply(routed)) = &ddl.decision else {
                    return Ok(true);
                };
                let done = self
                    .apply_ddl(batch.id, &ddl.at, routed, replaying, abandon)
                    .await?;
                if !done {
                    return Ok(false);
                }
                self.stats.ddl.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_ddl_total").increment(1);
                let end = batch.end.to_string();
                let recorded = self
                    .retrying(batch.id, abandon, || {
                        self.loader
                            .record_checkpoint(&self.pipeline, batch.id, &end, &through)
                    })
                    .await?;
                recorded.is_some()
            }
            (None, BatchBody::Rows(_)) => true,
        };
        Ok(applied)
    }

    /// Counts the conflicts a batch met (per table and winner) and sends a
    /// `conflict` event for each of the first few; the rest are in the log
    /// and in `sluice_meta.conflicts`.
    fn report_conflicts(&self, batch_id: u64, conflicts: &[sluice_load::ConflictSeen]) {
        /// Events per batch: a burst of conflicts must not flood webhooks.
        const EVENTS_PER_BATCH: usize = 20;
        let policy = self
            .loader
            .options()
            .conflicts
            .as_ref()
            .map(|c| c.policy.name())
            .unwrap_or_default();
        for (n, c) in conflicts.iter().enumerate() {
            let winner = if c.source_won { "source" } else { "target" };
            metrics::counter!("sluice_conflicts_total", "table" => c.table.clone(), "winner" => winner)
                .increment(1);
            self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
            if n < EVENTS_PER_BATCH {
                self.status
                    .conflict(batch_id, &c.table, &c.key, &policy, c.source_won);
            }
        }
        if conflicts.len() > EVENTS_PER_BATCH {
            tracing::warn!(
                batch_id,
                conflicts = conflicts.len(),
                events = EVENTS_PER_BATCH,
                "more conflicts in one batch than events sent; all are in sluice_meta.conflicts"
            );
        }
    }

    /// Whether the target's checkpoint already records `batch_id` (or a
    /// later batch of this term).
    pub(crate) async fn committed(&self, batch_id: u64) -> Result<bool, LoadError> {
        Ok(self
            .loader
            .read_checkpoint(&self.pipeline)
            .await?
            .is_some_and(|c| c.batch_id >= batch_id))
    }

    async fn apply_ddl(
        &self,
        batch_id: u64,
        at: &str,
        routed: &crate::ddl::RoutedDdl,
        replaying: bool,
        abandon: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        // A retry after a transient failure may find the statement already
        // committed (its answer was lost): tolerate "already applied" then
        // too, not only while replaying.
        let mut attempt = 0u32;
        let outcome = self
            .retrying(batch_id, abandon, || {
                attempt += 1;
                self.loader.apply_ddl(
                    batch_id,
                    &routed.create_schemas,
                    &routed.sql,
                    replaying || attempt > 1,
                )
            })
            .await
            .map_err(|e| match e {
                PipelineError::Load(LoadError::Ddl { sql, source, .. }) => PipelineError::Ddl {
                    batch_id,
                    at: at.to_string(),
                    sql,
                    message: source.to_string(),
                },
                other => other,
            })?;
        let Some(outcome) = outcome else {
            return Ok(false);
        };
        tracing::info!(batch_id, %at, kind = ?routed.kind, sql = %routed.sql, skipped = outcome.skipped.len(), "DDL applied");
        Ok(true)
    }

    /// Runs `op` under [`Applier::retry`], reporting the target's state;
    /// `Ok(None)` when abandoned.
    async fn retrying<T, F, Fut>(
        &self,
        batch_id: u64,
        abandon: &CancellationToken,
        op: F,
    ) -> Result<Option<T>, PipelineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, LoadError>>,
    {
        let outcome = retry(
            &self.retry,
            abandon.cancelled(),
            |e: &LoadError, a| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                self.status.target_down(&e.to_string());
                tracing::warn!(batch_id, error = %e, attempt = a.number, retry_in_ms = a.wait.as_millis() as u64, "target unavailable; the batch will be applied again");
            },
            op,
        )
        .await
        .into_result();
        if let Ok(Some(_)) = &outcome {
            self.status.target_up();
        }
        Ok(outcome?)
    }
}

// Snapshot chunks (`crate::snapshot`): what Load does around a chunk's batch.

/// Before a chunk's batch: for the first batch of a copy a DDL restarted,
/// start the table's progress over; note it in flight and, for the first batch of a
/// keyless table's copy, clear the target table; for the first batch of a
/// re-copied chunk, delete the chunk's key range (the batch then inserts
/// the source's rows of that range as of the chunk's position). `Ok(false)`: abandoned.
pub(crate) async fn before_chunk(
    applier: &crate::load::Applier,
    mark: Option<&crate::snapshot::CopyMark>,
    abandon: &tokio_util::sync::CancellationToken,
) -> Result<bool, crate::error::PipelineError> {
    before_chunks(applier, mark.as_slice(), abandon).await
}

/// [`before_chunk`] for chunk batches applied as one, in order: their
/// in-flight records in one target transaction.
async fn before_chunks(
    applier: &crate::load::Applier,
    marks: &[&crate::snapshot::CopyMark],
    abandon: &tokio_util::sync::CancellationToken,
) -> Result<bool, crate::error::PipelineError> {
    if marks.is_empty() {
        return Ok(true);
    }
    let loader = &applier.loader;
    let pipeline = applier.pipeline.as_str();
    for mark in marks.iter().filter(|m| m.restart) {
        if !with_retry(applier, abandon, || async {
            loader.snapshot_restart(pipeline, &mark.table).await
        })
        .await?
        {
            return Ok(false);
        }
    }
    let inflight: Vec<(&str, u64)> = marks.iter().map(|m| (m.table.as_str(), m.rows)).collect();
    with_retry(applier, abandon, || async {
        loader.snapshot_inflight(pipeline, &inflight).await?;
        for mark in marks {
            if mark.clear {
                loader.clear_table(&mark.target.0, &mark.target.1).await?;
            }
            if let Some(r) = &mark.range {
                loader
                    .delete_key_range(
                        &mark.target.0,
                        &mark.target.1,
                        &r.columns,
                        r.after.as_deref(),
                        r.through.as_deref(),
                    )
                    .await?;
            }
        }
        Ok(())
    })
    .await
}

/// After a chunk's batch committed: record it on the target (its last
/// batch: the chunk as done). `Ok(false)`: abandoned. The status is
/// [`report_chunk`]'s.
pub(crate) async fn after_chunk(
    applier: &crate::load::Applier,
    mark: &crate::snapshot::CopyMark,
    abandon: &tokio_util::sync::CancellationToken,
) -> Result<bool, crate::error::PipelineError> {
    after_chunks(applier, &[mark], abandon).await
}

/// [`after_chunk`] for chunk batches applied as one: their records in
/// order, in one target transaction.
async fn after_chunks(
    applier: &crate::load::Applier,
    marks: &[&crate::snapshot::CopyMark],
    abandon: &tokio_util::sync::CancellationToken,
) -> Result<bool, crate::error::PipelineError> {
    let done: Vec<sluice_load::snapshot::ChunkDone<'_>> = marks
        .iter()
        .map(|m| sluice_load::snapshot::ChunkDone {
            table: &m.table,
            last_key: m.last_key.as_deref(),
            rows: m.rows,
            complete: m.complete,
            chunk_end: m.chunk_end,
        })
        .collect();
    let loader = &applier.loader;
    let pipeline = applier.pipeline.as_str();
    with_retry(applier, abandon, || async {
        loader.snapshot_chunks_done(pipeline, &done).await
    })
    .await
}

/// Shows a committed chunk's batch in this node's status (the active
/// node's, which published the snapshot): a restart after a DDL, the rows
/// copied, the table or the whole snapshot finished.
pub(crate) fn report_chunk(status: &NodeStatus, mark: &crate::snapshot::CopyMark) {
    let progress = status.snapshot();
    if mark.restart {
        let recopied = progress.restart(&mark.table);
        tracing::info!(table = %mark.table, rows_recopied = recopied, "snapshot: the table's copy restarted after a DDL on it");
        status.events().emit(
            crate::events::EventKind::SnapshotRestarted,
            crate::events::EventState::Event,
            format!(
                "snapshot of {} restarted from its first chunk after a DDL on it",
                mark.table
            ),
            crate::events::details([
                ("table", serde_json::json!(mark.table)),
                ("rows_recopied", serde_json::json!(recopied)),
            ]),
        );
    }
    metrics::counter!("sluice_snapshot_rows_total", "table" => mark.table.clone())
        .increment(mark.rows);
    if mark.complete {
        tracing::info!(table = %mark.table, "snapshot: table copied");
    }
    if progress.chunk_done(&mark.table, mark.rows, mark.chunk_end, mark.complete) {
        let j = progress.to_json();
        let rows: u64 = j["tables"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["rows_copied"].as_u64()).sum())
            .unwrap_or(0);
        status.events().emit(
            crate::events::EventKind::SnapshotFinished,
            crate::events::EventState::Event,
            format!("snapshot finished: every table copied ({rows} rows); streaming continues"),
            crate::events::details([
                ("rows_copied", serde_json::json!(rows)),
                ("rows_recopied", j["rows_recopied"].clone()),
            ]),
        );
    }
}

async fn with_retry<F, Fut>(
    applier: &crate::load::Applier,
    abandon: &tokio_util::sync::CancellationToken,
    op: F,
) -> Result<bool, crate::error::PipelineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), sluice_load::LoadError>>,
{
    use sluice_core::retry::{retry, Retried};
    match retry(
        &applier.retry,
        abandon.cancelled(),
        |e: &sluice_load::LoadError, a| {
            tracing::warn!(attempt = a.number, error = %e, "snapshot progress: transient target error; retrying");
        },
        op,
    )
    .await
    {
        Retried::Done(()) => Ok(true),
        Retried::Failed(e) => Err(e.into()),
        Retried::Stopped => Ok(false),
    }
}
