//! Applying merged batches to the target over parallel connections.
//!
//! # How a batch is applied
//!
//! 1. Tables without a primary key in their table map get a replication key
//!    from the *target*: its PRIMARY KEY, else its smallest unique index
//!    whose columns are all NOT NULL, whole (no prefix) and present in the
//!    source rows — the index InnoDB itself would cluster on. Lookups are
//!    cached per table; [`Loader::forget_table`] drops an entry after DDL.
//! 2. [`merge`] reduces the batch to per-table deletes and upserts (or, for
//!    tables without any key, their changes in source order).
//! 3. Operations are split over `workers` connections by a hash of
//!    (table, key): one key always lands on one worker, so per-key order
//!    holds (invariant 4). A table with only a few rows in the batch (fewer
//!    than 64) goes whole to one worker, chosen by a hash of the table, so
//!    a batch spread over many tables is not cut into one-row statements.
//!    Tables whose key compares by collation, tables
//!    without a key and tables with a schema change inside the batch go
//!    whole to one worker (see [`crate::key`]).
//! 4. Each worker applies its share in **one transaction** with multi-row
//!    statements ([`crate::sql`]), then commits. Statements the
//!    connection's prepared-statement cache would not keep (odd sizes, or a
//!    share over more tables than the cache holds) go as plain text with
//!    their values inline: one round trip instead of three. A transient failure
//!    (connection lost, deadlock 1213, lock wait timeout 1205, server gone,
//!    too many connections, …) rolls the worker's transaction back and
//!    retries it from the start with exponential backoff, up to
//!    [`RetryPolicy::max_attempts`]; then the batch fails with a transient
//!    error and the pipeline retries the whole batch later.
//!
//! # Why a failed or repeated batch is safe to apply again
//!
//! Workers commit independently, so a failed batch can leave some workers'
//! shares committed and others not, and a crash after the commit but before
//! the acknowledgement replays the batch. Both are safe because every keyed
//! operation is *absolute*: an upsert writes the full after image whatever
//! the row held before, and a delete removes the key whatever it held. So
//! applying a batch's operations to any mix of "before the batch" and
//! "after the batch" rows yields exactly the "after the batch" rows, and
//! replays converge (invariant 3). (Tables without a key are the exception;
//! see [`crate::merge`].)
//!
//! # Exactly once for tables without a key
//!
//! Rows of a table without any usable key are plain inserts and
//! `DELETE … LIMIT 1`s: applying them twice duplicates or over-deletes. So
//! [`Loader::apply_batch_checkpointed`] applies a batch's keyed shares first
//! (in parallel, idempotent) and then every keyless operation in **one
//! transaction that also writes the checkpoint row**: either the keyless
//! rows and the checkpoint are both committed, and a restart resumes after
//! the batch, or neither is, and the replayed batch applies them once.
//!
//! # Unique keys other than the replication key
//!
//! Merging keeps only each key's final image and workers run in parallel,
//! so the target can see states the source never had: two rows swapping a
//! unique value within one batch collide. A plain `ON DUPLICATE KEY UPDATE`
//! would then silently rewrite the *other* row; the upsert's guard
//! ([`crate::sql`]) turns that into an error instead, and so does a 1062.
//! When every failure of a batch is such a collision, the loader applies the
//! batch again **serially in source order**, one row per statement, in one
//! transaction — the order in which the source itself satisfied the
//! constraint (rows of keyless tables whose worker already committed are
//! not applied twice). What happens if that collides too depends on
//! [`UniqueConflict`]: `Fail` (the default) stops with a definite error
//! naming the row and the server's 1062 — right when the target has a
//! unique key the source lacks, wrong when a replay meets a target that is
//! already *ahead* (it holds later values of the unique column); `Replace`
//! deletes the colliding rows, which converges in both cases because every
//! row it deletes is rewritten by its own later change. The pipeline should
//! use `Replace` after a restart for the batches the target may already
//! hold — up to and including the first batch past the target's checkpoint
//! ([`crate::meta`]) — and `Fail` otherwise.
//!
//!
//! # Deletes that find nothing
//!
//! A delete by key of a row the source held before the batch (see
//! [`crate::merge`]), or a keyless delete of one full row, that the server
//! reports as affecting fewer rows than it named means the target lacked
//! those rows. That is expected when a batch is replayed after a restart
//! (the rows went with the first attempt) and when the pipeline started
//! after the rows' inserts; otherwise it means the target had diverged. It
//! is not an error — the target ends as the source wants either way, and
//! stopping would make every replay fail — but it is never silent: the
//! batch's [`ApplyStats::deletes_missed`] counts the rows, and a warning
//! names the table and a key (at debug level for replayed batches).
//!
//! # Submodules
//!
//! * [`options`] — [`LoaderOptions`], the session settings, connect options;
//! * [`fence`] — the term fence and the fenced metadata writes;
//! * [`catalog`] — target keys and generated columns of target tables;
//! * [`partition`] — worker shares and the serial fallback;
//! * [`ddl`] — running replicated DDL on the target;
//! * [`replace`] — operator replacements of a refused change, exactly once;
//! * [`origin`] — origin tags of bidirectional pipelines (loop prevention);
//! * [`conflict`] — conflicts of bidirectional pipelines: detection and
//!   policy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sluice_core::retry::{retry, Retried};
use sluice_core::{Classify, ErrorClass, Row, RowChange, TableSchema};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Executor as _;

use crate::error::{LoadError, ER_BAD_NULL};
use crate::merge::{merge, qualified, MergeError, PlanBody};
use crate::relaxed::{self, TargetFlavour};
use crate::sql;

mod catalog;
pub mod conflict;
pub mod ddl;
mod fence;
pub mod options;
pub mod origin;
mod partition;
pub mod replace;

pub use ddl::{DdlOutcome, ALREADY_APPLIED};
pub use options::{
    connect_options, default_retry, ApplyStats, CheckpointMark, ConflictPolicy, ConflictRules,
    ConflictSeen, LoaderOptions, OriginTag, TermFence, UniqueConflict, SESSION_SQL_MODE,
};

use catalog::{replication_key, Catalog};
use conflict::Expected;
use options::session_statements;
use partition::{partition, serial_share, statement_error, Applied, Piece, PieceOp, ShareOutcome};

/// Pooled connections idle at least this long are pinged before use.
const PING_IF_IDLE: Duration = Duration::from_millis(250);

/// Applies batches to one target database.
pub struct Loader {
    pool: MySqlPool,
    opts: LoaderOptions,
    catalog: Catalog,
    /// The target's server family, read on first need.
    flavour: OnceLock<TargetFlavour>,
    retries: AtomicU64,
}

impl Loader {
    /// A loader for the target at `url` (`mysql://user:pass@host:port`).
    /// Connections open lazily: a target that is down now makes the first
    /// batch fail as transient, not this call. Use [`check`](Self::check)
    /// to fail fast on a wrong address or credentials.
    pub async fn connect(url: &str, opts: LoaderOptions) -> Result<Self, LoadError> {
        let connect =
            connect_options(url, &opts.tls)?.statement_cache_capacity(opts.statement_cache.max(1));
        Ok(Self::with_options(connect, opts))
    }

    /// Like [`connect`](Self::connect), from parsed options.
    pub fn with_options(connect: MySqlConnectOptions, mut opts: LoaderOptions) -> Self {
        opts.workers = opts.workers.max(1);
        let session = session_statements(&opts);
        let pool = MySqlPoolOptions::new()
            // One more than the workers: checkpoints and key lookups must not
            // wait behind a worker.
            .max_connections(opts.workers as u32 + 1)
            .min_connections(0)
            .acquire_timeout(opts.acquire_timeout)
            // A ping before every acquire would put one more round trip
            // on every batch's critical path (intent, each worker,
            // checkpoint): under a steady load that was ~3 of the ~12
            // sequential round trips per batch. Connections idle longer
            // than `PING_IF_IDLE` (e.g. while the target was down and the
            // pipeline waited) are still pinged; a busy connection that
            // died anyway fails its statement as a transient error, which
            // is retried like any other.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let session = session.clone();
                Box::pin(async move {
                    for stmt in &session {
                        conn.execute(stmt.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(connect);
        Loader {
            pool,
            opts,
            catalog: Catalog::default(),
            flavour: OnceLock::new(),
            retries: AtomicU64::new(0),
        }
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub fn options(&self) -> &LoaderOptions {
        &self.opts
    }

    /// Transient failures retried since the loader was created.
    pub fn retries_total(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Connects once and runs `SELECT 1`.
    pub async fn check(&self) -> Result<(), LoadError> {
        self.pool
            .execute("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| LoadError::target(None, "connecting to the target", e))
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Merges and applies one batch (see the module docs). On `Ok`, every
    /// change of the batch is committed on the target. On `Err`, some
    /// workers may have committed; applying the same changes again is safe.
    pub async fn apply_batch(
        &self,
        batch_id: u64,
        changes: &[RowChange],
    ) -> Result<ApplyStats, LoadError> {
        self.apply_batch_with(batch_id, changes, self.opts.unique_conflict)
            .await
    }

    /// [`apply_batch`](Self::apply_batch) with an explicit unique-conflict
    /// policy for this batch (e.g. [`UniqueConflict::Replace`] while
    /// replaying batches the target may already hold).
    pub async fn apply_batch_with(
        &self,
        batch_id: u64,
        changes: &[RowChange],
        conflicts: UniqueConflict,
    ) -> Result<ApplyStats, LoadError> {
        self.apply(batch_id, changes, conflicts, None).await
    }

    /// Applies a batch and records `checkpoint` for it **atomically with the
    /// batch's rows of tables without a key** (see "Exactly once for tables
    /// without a key" in the module docs). On `Ok` the batch and its
    /// checkpoint are committed.
    ///
    /// A batch small enough for one worker (`min_rows_per_worker`) is one
    /// transaction with its checkpoint: committed whole or not at all. A
    /// larger one, whose workers commit separately, is first recorded as
    /// the batch in flight (`record_intent` with `checkpoint.through`), so
    /// that a restart knows the target may hold part of it.
    pub async fn apply_batch_checkpointed(
        &self,
        batch_id: u64,
        changes: &[RowChange],
        conflicts: UniqueConflict,
        checkpoint: &CheckpointMark<'_>,
    ) -> Result<ApplyStats, LoadError> {
        let stats = self
            .apply(batch_id, changes, conflicts, Some(checkpoint))
            .await?;
        if !stats.checkpointed {
            self.record_checkpoint(
                checkpoint.pipeline,
                batch_id,
                checkpoint.position,
                checkpoint.through,
            )
            .await?;
        }
        Ok(stats)
    }

    async fn apply(
        &self,
        batch_id: u64,
        changes: &[RowChange],
        conflicts: UniqueConflict,
        mark: Option<&CheckpointMark<'_>>,
    ) -> Result<ApplyStats, LoadError> {
        let started = Instant::now();
        let mut stats = ApplyStats {
            changes: changes.len(),
            ..ApplyStats::default()
        };
        if changes.is_empty() {
            return Ok(stats);
        }
        let write = self.write_columns(batch_id, changes).await?;
        let keys = self.resolve_keys(batch_id, changes).await?;
        if let Some(rules) = &self.opts.conflicts {
            conflict::check_newer_wins(rules, batch_id, changes, &keys)?;
        }
        let key_of = |t: &TableSchema| replication_key(t, &keys);
        let plans = merge(changes, key_of).map_err(|e| refused(batch_id, e))?;
        // Conflicts are judged against the first before image of each key,
        // replays included: a replayed conflict must not let the source win
        // silently (see `conflict`).
        let expected_keys = self
            .opts
            .conflicts
            .is_some()
            .then(|| Expected::of(changes, &keys));
        let expected = expected_keys.as_ref();
        stats.tables = plans.len();
        for plan in &plans {
            match &plan.body {
                PlanBody::Keyed {
                    deletes, upserts, ..
                } => {
                    stats.deletes += deletes.len();
                    stats.upserts += upserts.len();
                }
                PlanBody::Unkeyed(ops) => stats.serial_ops += ops.len(),
            }
        }

        let workers = self
            .opts
            .workers
            .min(changes.len() / self.opts.min_rows_per_worker.max(1))
            .max(1);
        let mut shares = partition(&plans, workers, conflicts, &write);
        if let (Some(m), 1) = (mark, workers) {
            // One transaction for everything, with the checkpoint: the
            // batch is committed whole or not at all.
            let one: Vec<Piece<'_>> = shares.drain(..).flatten().collect();
            stats.workers = 1;
            let outcome = self.run_share(batch_id, 0, &one, Some(m), expected).await;
            stats.retries += outcome.retries;
            let applied = match outcome.result {
                Ok(n) => n,
                Err(e) if e.is_unique_conflict() => {
                    tracing::info!(
                        batch_id,
                        error = %e,
                        "collision on a unique key other than the replication key; applying the batch again in source order"
                    );
                    let share = serial_share(changes, &keys, &write, conflicts, |_| false);
                    let outcome = self.run_share(batch_id, 0, &share, Some(m), None).await;
                    stats.retries += outcome.retries;
                    stats.serial_fallback = true;
                    outcome.result?
                }
                Err(e) => return Err(e),
            };
            applied.add_to(&mut stats, batch_id, conflicts);
            stats.checkpointed = true;
            stats.atomic = true;
            stats.elapsed = started.elapsed();
            tracing::debug!(batch_id, ?stats, "batch applied");
            return Ok(stats);
        }
        // Workers commit separately: record the batch in flight first, so
        // that a restart knows the target may hold part of it.
        if let Some(m) = mark {
            self.record_intent(m.pipeline, batch_id, m.through).await?;
        }
        // Rows of tables without a key are not idempotent: they run last,
        // in one transaction that also records the checkpoint (when asked).
        let unkeyed: Vec<Piece<'_>> = if mark.is_some() {
            shares
                .iter_mut()
                .flat_map(|share| {
                    let (keyless, keyed): (Vec<_>, Vec<_>) = std::mem::take(share)
                        .into_iter()
                        .partition(|p| p.key.is_none());
                    *share = keyed;
                    keyless
                })
                .collect()
        } else {
            Vec::new()
        };
        shares.retain(|s| !s.is_empty());
        stats.workers = shares.len() + usize::from(!unkeyed.is_empty());
        let outcomes = join_all(
            shares
                .iter()
                .enumerate()
                .map(|(w, share)| self.run_share(batch_id, w, share, None, expected)),
        )
        .await;

        let mut errors = Vec::new();
        // Tables without a key whose share committed: the fallback must not
        // insert their rows a second time.
        let mut committed_unkeyed: HashSet<(&str, &str)> = HashSet::new();
        for (outcome, share) in outcomes.into_iter().zip(&shares) {
            stats.retries += outcome.retries;
            match outcome.result {
                Ok(n) => {
                    n.add_to(&mut stats, batch_id, conflicts);
                    for p in share.iter().filter(|p| p.key.is_none()) {
                        committed_unkeyed.insert((&p.table.schema, &p.table.table));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            let only_conflicts = errors.iter().all(LoadError::is_unique_conflict);
            if !only_conflicts {
                // A definite error stops the pipeline; report it over a
                // transient one.
                let pick = errors
                    .iter()
                    .position(|e| e.class() == ErrorClass::Definite && !e.is_unique_conflict())
                    .or_else(|| {
                        errors
                            .iter()
                            .position(|e| e.class() == ErrorClass::Transient)
                    })
                    .unwrap_or(0);
                return Err(errors.swap_remove(pick));
            }
            tracing::info!(
                batch_id,
                error = %errors[0],
                "collision on a unique key other than the replication key; applying the batch again in source order"
            );
            let share = serial_share(changes, &keys, &write, conflicts, |t| {
                committed_unkeyed.contains(&(t.schema.as_str(), t.table.as_str()))
            });
            let outcome = self.run_share(batch_id, 0, &share, mark, None).await;
            stats.retries += outcome.retries;
            outcome.result?.add_to(&mut stats, batch_id, conflicts);
            stats.serial_fallback = true;
            stats.checkpointed = mark.is_some();
        } else if !unkeyed.is_empty() {
            let outcome = self
                .run_share(batch_id, stats.workers - 1, &unkeyed, mark, expected)
                .await;
            stats.retries += outcome.retries;
            outcome.result?.add_to(&mut stats, batch_id, conflicts);
            stats.checkpointed = mark.is_some();
        }
        stats.elapsed = started.elapsed();
        tracing::debug!(batch_id, ?stats, "batch applied");
        Ok(stats)
    }

    /// One worker's share, retried on transient errors.
    async fn run_share(
        &self,
        batch_id: u64,
        worker: usize,
        share: &[Piece<'_>],
        mark: Option<&CheckpointMark<'_>>,
        expected: Option<&Expected<'_>>,
    ) -> ShareOutcome {
        let what = format!("batch {batch_id}, worker {worker}");
        let (result, retries) = self
            .retrying(&what, || {
                self.try_share(batch_id, worker, share, mark, expected)
            })
            .await;
        ShareOutcome { result, retries }
    }

    /// Applies a share in one transaction, recording `mark` in it when
    /// given; returns what it did.
    async fn try_share(
        &self,
        batch_id: u64,
        worker: usize,
        share: &[Piece<'_>],
        mark: Option<&CheckpointMark<'_>>,
        expected: Option<&Expected<'_>>,
    ) -> Result<Applied, LoadError> {
        let mut tx = self.pool.begin().await.map_err(|e| {
            LoadError::target(Some(batch_id), "starting a transaction on the target", e)
        })?;
        self.check_term(&mut tx, Some(batch_id), true).await?;
        // First write of the transaction: the peer recognises it there.
        self.write_origin_marker(&mut tx, Some(batch_id), worker)
            .await?;
        let mut applied = Applied::default();
        let mut judged = conflict::Judged::new();
        // More tables than the connection caches statements for (about two
        // shapes each): caching would only evict, so nothing is prepared.
        let uncached = self.opts.statement_cache == 0
            || share.len().saturating_mul(2) > self.opts.statement_cache;
        for piece in share {
            let judged_piece;
            let piece = match (&self.opts.conflicts, expected) {
                (Some(rules), Some(expected)) => {
                    let rows = conflict::judge(
                        &mut tx,
                        batch_id,
                        rules,
                        expected,
                        &mut judged,
                        piece,
                        &mut applied.conflicts,
                    )
                    .await?;
                    if rows.is_empty() {
                        continue;
                    }
                    judged_piece = piece.with_rows(rows);
                    &judged_piece
                }
                _ => piece,
            };
            let kind = piece.kind();
            // Rows holding values only the relaxed mode stores go alone,
            // after the others (see `crate::relaxed`).
            let (normal, relaxed_rows) = match relaxed::split(kind, &piece.rows) {
                Some((normal, relaxed_rows)) => (Some(piece.with_rows(normal)), relaxed_rows),
                None => (None, Vec::new()),
            };
            let piece_n = normal.as_ref().unwrap_or(piece);
            for chunk in sql::chunks(kind, piece_n.target(), &piece_n.rows, self.opts.limits) {
                let refused = |e: sql::EncodeError| LoadError::Refused {
                    batch_id,
                    table: qualified(piece.table),
                    key: piece_n.describe(chunk.start),
                    reason: format!("column `{}` {}", e.column, e.reason),
                };
                // A statement the cache will not keep goes as plain text:
                // one round trip instead of prepare, execute and close.
                let inline = if !chunk.persistent || uncached {
                    sql::build_inline(kind, piece_n.target(), &piece_n.rows, chunk)
                        .map_err(refused)?
                } else {
                    None
                };
                let done = match inline {
                    Some(text) => (&mut *tx)
                        .execute(sqlx::raw_sql(&text))
                        .await
                        .map_err(|e| statement_error(batch_id, piece_n, chunk, &text, e))?,
                    None => {
                        let stmt = sql::build(kind, piece_n.target(), &piece_n.rows, chunk)
                            .map_err(refused)?;
                        sqlx::query_with(&stmt.sql, stmt.args)
                            .persistent(chunk.persistent)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| statement_error(batch_id, piece_n, chunk, &stmt.sql, e))?
                    }
                };
                applied.statements += 1;
                if piece.counts_missing && done.rows_affected() < chunk.len as u64 {
                    applied.missed(
                        chunk.len as u64 - done.rows_affected(),
                        || piece_n.describe(chunk.start),
                        piece.table,
                    );
                }
            }
            for row in relaxed_rows {
                self.relaxed_row(batch_id, &mut tx, piece, row).await?;
                applied.statements += 1;
            }
        }
        if let Some(m) = mark {
            crate::meta::record_checkpoint(&mut *tx, m.pipeline, batch_id, m.position, m.through)
                .await
                .map_err(|e| LoadError::target(Some(batch_id), "recording the checkpoint", e))?;
            applied.statements += 1;
        }
        tx.commit()
            .await
            .map_err(|e| LoadError::target(Some(batch_id), "committing on the target", e))?;
        Ok(applied)
    }

    /// Writes one row of `piece` under the relaxed sql_mode and checks that
    /// the server changed nothing but its ENUM error values (see
    /// `crate::relaxed`); any other warning is a definite error.
    async fn relaxed_row(
        &self,
        batch_id: u64,
        conn: &mut sqlx::MySqlConnection,
        piece: &Piece<'_>,
        row: &Row,
    ) -> Result<(), LoadError> {
        let one = piece.with_rows(vec![row]);
        let chunk = sql::Chunk {
            start: 0,
            len: 1,
            padded: 1,
            persistent: false,
        };
        let stmt = sql::build(piece.kind(), one.target(), &one.rows, chunk).map_err(|e| {
            LoadError::Refused {
                batch_id,
                table: qualified(piece.table),
                key: one.describe(0),
                reason: format!("column `{}` {}", e.column, e.reason),
            }
        })?;
        let flavour = self.target_flavour(batch_id, &mut *conn).await?;
        let sql_text = stmt.sql.clone();
        let warnings = relaxed::execute(&mut *conn, flavour, stmt)
            .await
            .map_err(|e| statement_error(batch_id, &one, chunk, &sql_text, e))?;
        if let Some(w) = relaxed::unexpected(&warnings, piece.table, row).first() {
            // Without strictness the upsert's guard (see `crate::sql`) only
            // warns: it still means a collision on another unique key, which
            // the source-order fallback handles. (The transaction is rolled
            // back with this error, so the guard's write is undone.)
            let guard = piece.op == PieceOp::Upsert
                && u16::try_from(w.code) == Ok(ER_BAD_NULL)
                && piece
                    .key
                    .as_deref()
                    .and_then(|k| k.first())
                    .is_some_and(|&k0| {
                        w.message.starts_with(&format!(
                            "Column '{}' cannot be null",
                            piece.table.columns[k0].name
                        ))
                    });
            return Err(LoadError::Rejected {
                batch_id,
                table: qualified(piece.table),
                detail: Box::new(crate::error::RejectedDetail {
                    key: one.describe(0),
                    key_values: Some(one.key_values(0)),
                    statement: sql_text,
                }),
                server: crate::error::ServerError {
                    code: u16::try_from(w.code).unwrap_or(u16::MAX),
                    sqlstate: None,
                    message: w.message.clone(),
                },
                class: ErrorClass::Definite,
                attempts: 1,
                unique_conflict: guard,
            });
        }
        Ok(())
    }

    /// The target's server family (one `SELECT VERSION()` per loader).
    async fn target_flavour(
        &self,
        batch_id: u64,
        conn: &mut sqlx::MySqlConnection,
    ) -> Result<TargetFlavour, LoadError> {
        if let Some(f) = self.flavour.get() {
            return Ok(*f);
        }
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| LoadError::target(Some(batch_id), "reading the target's version", e))?;
        Ok(*self
            .flavour
            .get_or_init(|| TargetFlavour::of_version(&version)))
    }

    /// Runs `op` under the loader's retry policy ([`LoaderOptions::retry`]):
    /// transient errors are retried, definite ones and the last attempt's
    /// are returned (with the attempt count); also returns how many retries
    /// it took.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> (Result<T, LoadError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, LoadError>>,
    {
        let mut retried = 0u32;
        let outcome = retry(
            &self.opts.retry,
            std::future::pending(),
            |e: &LoadError, a| {
                tracing::warn!(what, attempt = a.number, wait_ms = a.wait.as_millis() as u64, error = %e, "transient target error; retrying");
                self.retries.fetch_add(1, Ordering::Relaxed);
                retried += 1;
            },
            op,
        )
        .await;
        match outcome {
            Retried::Done(v) => (Ok(v), retried),
            Retried::Failed(e) => (Err(e.with_attempts(retried + 1)), retried),
            // The stop future never completes.
            Retried::Stopped => unreachable!("the loader's retries have no stop signal"),
        }
    }

    /// Creates or upgrades sluice's metadata tables on the target
    /// ([`crate::meta::migrate`]), retrying transient errors.
    pub async fn migrate(&self) -> Result<(), LoadError> {
        self.retrying("migrations", || crate::meta::migrate(&self.pool))
            .await
            .0
    }
}

fn refused(batch_id: u64, e: MergeError) -> LoadError {
    LoadError::Refused {
        batch_id,
        table: e.table,
        key: e.key,
        reason: e.reason,
    }
}
