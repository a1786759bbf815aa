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
//!    holds (invariant 4). Tables whose key compares by collation, tables
//!    without a key and tables with a schema change inside the batch go
//!    whole to one worker (see [`crate::key`]).
//! 4. Each worker applies its share in **one transaction** with multi-row
//!    statements ([`crate::sql`]), then commits. A transient failure
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
//! # Fencing
//!
//! With [`LoaderOptions::term`] set (an HA pair), every transaction first
//! reads the pipeline's row of `sluice_meta.term` with a shared lock and
//! fails with the definite [`LoadError::FencedOut`] unless it still names
//! this loader's term; [`Loader::claim_term`] raises the row for a new
//! leader and waits for the shared locks of the old term's open
//! transactions. A paused or cut-off old leader therefore cannot write
//! after the new one started (`migrations/0003_term.sql`).
//!
//! # Generated columns
//!
//! Row images carry the values of generated columns (MariaDB logs VIRTUAL
//! and STORED ones), but a target refuses explicit values for them (1906,
//! 3105). Each target table's generated columns are read once from
//! `information_schema` (again after [`Loader::forget_table`]) and left out
//! of every statement: the target computes them from the other columns.
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
//! # Session settings
//!
//! Every target connection runs with
//! `sql_mode='STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES'`:
//! strict, so a value the column cannot hold is an error (1406, 1264, …)
//! instead of silently truncated data; no `NO_ZERO_DATE`/`NO_ZERO_IN_DATE`,
//! so zero dates are stored as the source stored them; `ALLOW_INVALID_DATES`
//! for days the source accepted under that mode; `NO_AUTO_VALUE_ON_ZERO` so
//! an AUTO_INCREMENT key 0 stays 0 instead of taking a new number.
//! `time_zone='+00:00'` (TIMESTAMP text is UTC), `NAMES utf8mb4`,
//! `foreign_key_checks=0` (merging and parallel workers reorder changes
//! across tables; the source already enforced its foreign keys),
//! `check_constraint_checks=0` on MariaDB (the source enforced its CHECK
//! constraints, or a session there chose not to), and READ
//! COMMITTED, which takes no gap locks for deletes of absent keys and so
//! keeps workers from deadlocking on each other's ranges. (A target whose
//! binlog is STATEMENT-based cannot log READ COMMITTED writes; use ROW or
//! MIXED there.) The values a non-strict source can store that this strict
//! session refuses, and how each still reaches the target exactly, are
//! listed in [`crate::relaxed`].
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sluice_core::{
    ChangeKind, Classify, ErrorClass, Row, RowChange, TableSchema, TlsConfig, TlsMode,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::Executor as _;

use crate::error::{LoadError, ServerError, ER_BAD_NULL, ER_DUP_ENTRY};
use crate::key::{describe_key, describe_row, key_bytes};
use crate::merge::{merge, qualified, KeyedRow, MergeError, PlanBody, SerialOp, TablePlan};
use crate::relaxed::{self, TargetFlavour};
use crate::sql::{self, Kind, Limits};

/// Target-side replication keys of tables whose table map has no primary
/// key: (schema, table) → key column names, or `None` for no usable key.
type TargetKeys = HashMap<(String, String), Option<Vec<String>>>;

/// Generated columns of target tables: (schema, table) → column names.
type GeneratedColumns = HashMap<(String, String), Arc<[String]>>;

/// Pooled connections idle at least this long are pinged before use.
const PING_IF_IDLE: Duration = Duration::from_millis(250);

/// The session `sql_mode` of every target connection (see the module docs).
pub const SESSION_SQL_MODE: &str =
    "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES";

/// How transient failures are retried inside one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per worker transaction, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): doubling from
    /// `initial_backoff`, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Settings of a [`Loader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Parallel target connections (≥ 1).
    pub workers: usize,
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// Session `innodb_lock_wait_timeout`; `None` keeps the server's.
    pub lock_wait_timeout: Option<Duration>,
    /// How long to wait for a connection (e.g. while the target restarts)
    /// before an attempt fails as transient.
    pub acquire_timeout: Duration,
    /// Prepared statements cached per connection.
    pub statement_cache: usize,
    /// What to do when a row collides on a unique key other than its
    /// replication key even in source order.
    pub unique_conflict: UniqueConflict,
    /// Write only under this leadership term (see "Fencing" in the module
    /// docs); `None` for single-node runs.
    pub term: Option<TermFence>,
    /// TLS towards the target (`target.tls`); default disabled.
    pub tls: TlsConfig,
    /// A batch uses one more worker per this many changes, up to
    /// `workers` (≥ 1): a small batch in one transaction is one commit on
    /// the target instead of one per worker, and its latency is lower.
    pub min_rows_per_worker: usize,
}

/// A write of the pipeline's metadata row.
#[derive(Debug, Clone, Copy)]
enum MetaWrite<'a> {
    Checkpoint { position: &'a str, through: &'a str },
    Intent { through: &'a str },
}

/// The leadership term a loader writes under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermFence {
    pub pipeline: String,
    /// Grows with every new leader (the etcd leader key's revision).
    pub term: i64,
    pub node: String,
}

/// Handling of a row that collides with *another* row on a unique key that
/// is not the replication key (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UniqueConflict {
    /// Stop with a definite error naming the row (after the batch was tried
    /// again serially in source order).
    #[default]
    Fail,
    /// Delete the colliding rows (`REPLACE`), as MySQL's own replica does
    /// in `slave_exec_mode=IDEMPOTENT`. Needed to replay batches onto a
    /// target that is already *ahead* of them (after a crash, the target
    /// may hold later values of unique columns than the replayed batch);
    /// on a target with unique keys the source does not have, it deletes
    /// rows instead of stopping.
    Replace,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            workers: 4,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            lock_wait_timeout: None,
            acquire_timeout: Duration::from_secs(10),
            statement_cache: 256,
            unique_conflict: UniqueConflict::Fail,
            term: None,
            tls: TlsConfig::disabled(),
            min_rows_per_worker: 256,
        }
    }
}

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Row changes in the batch.
    pub changes: usize,
    /// Table segments touched.
    pub tables: usize,
    /// Merged upserts and deletes of keyed tables.
    pub upserts: usize,
    pub deletes: usize,
    /// Inserts and delete-ones of tables without a key.
    pub serial_ops: usize,
    /// Statements executed by the attempts that committed.
    pub statements: usize,
    /// Rows that deletes named but the target did not have (see "Deletes
    /// that find nothing" in the module docs).
    pub deletes_missed: u64,
    /// Worker transactions (connections used in parallel).
    pub workers: usize,
    /// Transient failures retried.
    pub retries: u32,
    /// The batch was applied again in source order after a duplicate-key
    /// collision (see the module docs).
    pub serial_fallback: bool,
    /// The checkpoint was committed with the batch's last transaction.
    pub checkpointed: bool,
    /// The whole batch and its checkpoint committed in one transaction
    /// (no batch-in-flight record was needed).
    pub atomic: bool,
    pub elapsed: Duration,
}

/// The checkpoint row written with a batch
/// ([`Loader::apply_batch_checkpointed`]).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointMark<'a> {
    pub pipeline: &'a str,
    /// Where replication resumes after the batch.
    pub position: &'a str,
    /// Position after the batch's last event (past `position` when the
    /// batch ends inside a transaction).
    pub through: &'a str,
}

/// Applies batches to one target database.
pub struct Loader {
    pool: MySqlPool,
    opts: LoaderOptions,
    /// Target-side keys of tables whose table map has no primary key:
    /// (schema, table) → key column names, or `None` for no usable key.
    keys: Mutex<TargetKeys>,
    /// Generated columns of each target table written so far (see
    /// "Generated columns" in the module docs).
    generated: Mutex<GeneratedColumns>,
    /// The target's server family, read on first need.
    flavour: OnceLock<TargetFlavour>,
    retries: AtomicU64,
}

/// Parses a target URL into connect options with the loader's session
/// settings (charset utf8mb4; the rest is set after connecting) and `tls`.
///
/// TLS modes map onto sqlx's `ssl-mode` of the same name. sqlx (rustls)
/// verifies against `ca` *plus* the public web roots it is built with
/// (webpki-roots); it has no switch to trust `ca` alone, unlike the source
/// side. `disabled` is set explicitly: sqlx's own default would be
/// "preferred", i.e. TLS whenever the server offers it.
pub fn connect_options(url: &str, tls: &TlsConfig) -> Result<MySqlConnectOptions, LoadError> {
    // sqlx reads `mariadb://` as an unknown scheme.
    let url_text = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    };
    let opts: MySqlConnectOptions =
        url_text
            .parse()
            .map_err(|e: sqlx::Error| LoadError::Config {
                url: sluice_core::redact_url(url),
                message: sluice_core::redact_url(&e.to_string()),
            })?;
    let mode = match tls.mode {
        TlsMode::Disabled => MySqlSslMode::Disabled,
        TlsMode::Required => MySqlSslMode::Required,
        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
        TlsMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
    };
    let mut opts = opts.ssl_mode(mode);
    if let Some(ca) = &tls.ca {
        opts = opts.ssl_ca(ca);
    }
    if let Some(client) = &tls.client {
        opts = opts
            .ssl_client_cert(&client.cert)
            .ssl_client_key(&client.key);
    }
    Ok(opts
        .charset("utf8mb4")
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None))
}

impl Loader {
    /// A loader for the target at `url` (`mysql://user:pass@host:port`).
    /// Connections open lazily: a target that is down now makes the first
    /// batch fail as transient, not this call. Use [`check`](Self::check)
    /// to fail fast on a wrong address or credentials.
    pub async fn connect(url: &str, opts: LoaderOptions) -> Result<Self, LoadError> {
        let connect =
            connect_options(url, &opts.tls)?.statement_cache_capacity(opts.statement_cache);
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
            keys: Mutex::new(HashMap::new()),
            generated: Mutex::new(HashMap::new()),
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

    /// Forget the cached target key of a table (after DDL on it).
    pub fn forget_table(&self, schema: &str, table: &str) {
        let name = (schema.to_string(), table.to_string());
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        self.generated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }

    /// Forget every cached target key.
    pub fn forget_all_tables(&self) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.generated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
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
        let stripped;
        let changes = match self.strip_generated(batch_id, changes).await? {
            Some(owned) => {
                stripped = owned;
                &stripped[..]
            }
            None => changes,
        };
        let keys = self.resolve_keys(batch_id, changes).await?;
        let key_of = |t: &TableSchema| replication_key(t, &keys);
        let plans = merge(changes, key_of).map_err(|e| refused(batch_id, e))?;
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
        let mut shares = partition(&plans, workers, conflicts);
        if let (Some(m), 1) = (mark, workers) {
            // One transaction for everything, with the checkpoint: the
            // batch is committed whole or not at all.
            let one: Vec<Piece<'_>> = shares.drain(..).flatten().collect();
            stats.workers = 1;
            let outcome = self.run_share(batch_id, 0, &one, Some(m)).await;
            stats.retries += outcome.retries;
            let applied = match outcome.result {
                Ok(n) => n,
                Err(e) if e.is_unique_conflict() => {
                    tracing::info!(
                        batch_id,
                        error = %e,
                        "collision on a unique key other than the replication key; applying the batch again in source order"
                    );
                    let share = serial_share(changes, &keys, conflicts, |_| false);
                    let outcome = self.run_share(batch_id, 0, &share, Some(m)).await;
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
                .map(|(w, share)| self.run_share(batch_id, w, share, None)),
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
            let share = serial_share(changes, &keys, conflicts, |t| {
                committed_unkeyed.contains(&(t.schema.as_str(), t.table.as_str()))
            });
            let outcome = self.run_share(batch_id, 0, &share, mark).await;
            stats.retries += outcome.retries;
            outcome.result?.add_to(&mut stats, batch_id, conflicts);
            stats.serial_fallback = true;
            stats.checkpointed = mark.is_some();
        } else if !unkeyed.is_empty() {
            let outcome = self
                .run_share(batch_id, stats.workers - 1, &unkeyed, mark)
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
    ) -> ShareOutcome {
        let what = format!("batch {batch_id}, worker {worker}");
        let (result, retries) = self
            .retrying(&what, || self.try_share(batch_id, share, mark))
            .await;
        ShareOutcome { result, retries }
    }

    /// Applies a share in one transaction, recording `mark` in it when
    /// given; returns what it did.
    async fn try_share(
        &self,
        batch_id: u64,
        share: &[Piece<'_>],
        mark: Option<&CheckpointMark<'_>>,
    ) -> Result<Applied, LoadError> {
        let mut tx = self.pool.begin().await.map_err(|e| {
            LoadError::target(Some(batch_id), "starting a transaction on the target", e)
        })?;
        self.check_term(&mut tx, Some(batch_id), true).await?;
        let mut applied = Applied::default();
        for piece in share {
            let kind = piece.kind();
            // Rows holding values only the relaxed mode stores go alone,
            // after the others (see `crate::relaxed`).
            let (normal, relaxed_rows) = match relaxed::split(kind, &piece.rows) {
                Some((normal, relaxed_rows)) => (Some(piece.with_rows(normal)), relaxed_rows),
                None => (None, Vec::new()),
            };
            let piece_n = normal.as_ref().unwrap_or(piece);
            for chunk in sql::chunks(kind, piece.table, &piece_n.rows, self.opts.limits) {
                let stmt = sql::build(kind, piece.table, &piece_n.rows, chunk).map_err(|e| {
                    LoadError::Refused {
                        batch_id,
                        table: qualified(piece.table),
                        key: piece_n.describe(chunk.start),
                        reason: format!("column `{}` {}", e.column, e.reason),
                    }
                })?;
                let done = sqlx::query_with(&stmt.sql, stmt.args)
                    .persistent(chunk.persistent)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| statement_error(batch_id, piece_n, chunk, e))?;
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
        let stmt = sql::build(piece.kind(), piece.table, &one.rows, chunk).map_err(|e| {
            LoadError::Refused {
                batch_id,
                table: qualified(piece.table),
                key: one.describe(0),
                reason: format!("column `{}` {}", e.column, e.reason),
            }
        })?;
        let flavour = self.target_flavour(batch_id, &mut *conn).await?;
        let warnings = relaxed::execute(&mut *conn, flavour, stmt)
            .await
            .map_err(|e| statement_error(batch_id, &one, chunk, e))?;
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
                key: one.describe(0),
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

    /// Raises the target's term row to this loader's term (waiting for the
    /// open transactions of an older term to end), then verifies it holds
    /// it. Call before reading where to resume. No-op without a term.
    pub async fn claim_term(&self) -> Result<(), LoadError> {
        let Some(fence) = &self.opts.term else {
            return Ok(());
        };
        self.retrying("claiming the term on the target", || async {
            sqlx::query(
                "INSERT INTO `sluice_meta`.`term` (pipeline, term, node) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE node = IF(VALUES(term) >= term, VALUES(node), node), \
                 term = GREATEST(term, VALUES(term))",
            )
            .bind(&fence.pipeline)
            .bind(fence.term)
            .bind(&fence.node)
            .execute(&self.pool)
            .await
            .map_err(|e| LoadError::target(None, "claiming the term on the target", e))?;
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| LoadError::target(None, "claiming the term on the target", e))?;
            self.check_term(&mut conn, None, false).await
        })
        .await
        .0
    }

    /// Verifies that the target's term row still names this loader's term
    /// (with a shared lock inside a transaction, so a newer leader's claim
    /// waits for the transaction). No-op without a term.
    async fn check_term(
        &self,
        conn: &mut sqlx::MySqlConnection,
        batch_id: Option<u64>,
        lock: bool,
    ) -> Result<(), LoadError> {
        let Some(fence) = &self.opts.term else {
            return Ok(());
        };
        let sql = if lock {
            "SELECT term, node FROM `sluice_meta`.`term` WHERE pipeline = ? LOCK IN SHARE MODE"
        } else {
            "SELECT term, node FROM `sluice_meta`.`term` WHERE pipeline = ?"
        };
        let row: Option<(i64, String)> = sqlx::query_as(sql)
            .bind(&fence.pipeline)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| LoadError::target(batch_id, "checking the term on the target", e))?;
        match row {
            Some((current, _)) if current == fence.term => Ok(()),
            Some((current, node)) => Err(LoadError::FencedOut {
                pipeline: fence.pipeline.clone(),
                mine: fence.term,
                current,
                node,
            }),
            None => Err(LoadError::FencedOut {
                pipeline: fence.pipeline.clone(),
                mine: fence.term,
                current: 0,
                node: "none (term row missing)".into(),
            }),
        }
    }

    /// [`Self::check_term`] on a pooled connection, for statements that
    /// cannot run in a transaction (DDL).
    pub async fn verify_term(&self) -> Result<(), LoadError> {
        if self.opts.term.is_none() {
            return Ok(());
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| LoadError::target(None, "checking the term on the target", e))?;
        self.check_term(&mut conn, None, false).await
    }

    /// The batch without values for the target's generated columns, or
    /// `None` when no table of the batch has any.
    async fn strip_generated(
        &self,
        batch_id: u64,
        changes: &[RowChange],
    ) -> Result<Option<Vec<RowChange>>, LoadError> {
        // Distinct tables by pointer (one Arc per table version).
        let mut tables: Vec<&Arc<TableSchema>> = Vec::new();
        for c in changes {
            if !tables.iter().any(|t| Arc::ptr_eq(t, &c.table)) {
                tables.push(&c.table);
            }
        }
        let mut plans: Vec<(&Arc<TableSchema>, Arc<TableSchema>, Vec<usize>)> = Vec::new();
        for t in tables {
            let name = (t.schema.clone(), t.table.clone());
            let cached = self
                .generated
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
            let generated = match cached {
                Some(g) => g,
                None => {
                    let g: Arc<[String]> = self
                        .lookup_generated(batch_id, &name.0, &name.1)
                        .await?
                        .into();
                    self.generated
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name, Arc::clone(&g));
                    g
                }
            };
            if generated.is_empty() {
                continue;
            }
            let keep: Vec<usize> = (0..t.columns.len())
                .filter(|&i| {
                    !generated
                        .iter()
                        .any(|g| g.eq_ignore_ascii_case(&t.columns[i].name))
                })
                .collect();
            if keep.len() == t.columns.len() {
                continue;
            }
            let schema = TableSchema {
                schema: t.schema.clone(),
                table: t.table.clone(),
                columns: keep.iter().map(|&i| t.columns[i].clone()).collect(),
                primary_key: t
                    .primary_key
                    .iter()
                    .filter_map(|k| keep.iter().position(|i| i == k))
                    .collect(),
                has_names: t.has_names,
            };
            plans.push((t, Arc::new(schema), keep));
        }
        if plans.is_empty() {
            return Ok(None);
        }
        let project = |row: &Option<Row>, keep: &[usize]| {
            row.as_ref()
                .map(|r| keep.iter().map(|&i| r[i].clone()).collect::<Row>())
        };
        Ok(Some(
            changes
                .iter()
                .map(
                    |c| match plans.iter().find(|(t, _, _)| Arc::ptr_eq(t, &c.table)) {
                        Some((_, schema, keep)) => RowChange {
                            table: Arc::clone(schema),
                            kind: c.kind,
                            before: project(&c.before, keep),
                            after: project(&c.after, keep),
                        },
                        None => c.clone(),
                    },
                )
                .collect(),
        ))
    }

    /// Names of the target table's generated (virtual or stored) columns.
    async fn lookup_generated(
        &self,
        batch_id: u64,
        schema: &str,
        table: &str,
    ) -> Result<Vec<String>, LoadError> {
        let what = format!(
            "reading the generated columns of {}.{} on the target",
            sql::quote_ident(schema),
            sql::quote_ident(table)
        );
        self.retrying(&what, || async {
            sqlx::query_scalar::<_, String>(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 AND (EXTRA LIKE '%VIRTUAL GENERATED%' OR EXTRA LIKE '%STORED GENERATED%' \
                      OR EXTRA IN ('VIRTUAL', 'PERSISTENT'))",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| LoadError::target(Some(batch_id), what.as_str(), e))
        })
        .await
        .0
    }

    /// Target-side keys of the batch's tables that have no primary key in
    /// their table map.
    async fn resolve_keys(
        &self,
        batch_id: u64,
        changes: &[RowChange],
    ) -> Result<TargetKeys, LoadError> {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for c in changes {
            let t = &c.table;
            if t.primary_key.is_empty()
                && !wanted.iter().any(|(s, n)| *s == t.schema && *n == t.table)
            {
                wanted.push((t.schema.clone(), t.table.clone()));
            }
        }
        let mut out = HashMap::new();
        for name in wanted {
            let cached = self
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
            let key = match cached {
                Some(k) => k,
                None => {
                    let k = self.lookup_target_key(batch_id, &name.0, &name.1).await?;
                    self.keys
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), k.clone());
                    k
                }
            };
            out.insert(name, key);
        }
        Ok(out)
    }

    async fn lookup_target_key(
        &self,
        batch_id: u64,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<String>>, LoadError> {
        let what = format!(
            "reading the unique keys of {}.{} on the target",
            sql::quote_ident(schema),
            sql::quote_ident(table)
        );
        self.retrying(&what, || async {
            sqlx::query_as::<_, (String, String, String, String)>(
                "SELECT INDEX_NAME, COLUMN_NAME, NULLABLE, IF(SUB_PART IS NULL, 'whole', 'prefix') \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map(|rows| choose_unique_key(&rows))
            .map_err(|e| LoadError::target(Some(batch_id), what.as_str(), e))
        })
        .await
        .0
    }

    /// Runs `op` until it succeeds, fails definitely, or runs out of
    /// attempts; returns the result and how many retries it took.
    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> (Result<T, LoadError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, LoadError>>,
    {
        let policy = self.opts.retry;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return (Ok(v), attempt - 1),
                Err(e) if e.class().is_transient() && attempt < policy.max_attempts.max(1) => {
                    let wait = policy.backoff(attempt);
                    tracing::warn!(what, attempt, ?wait, error = %e, "transient target error; retrying");
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return (Err(e.with_attempts(attempt)), attempt - 1),
            }
        }
    }

    /// Creates or upgrades sluice's metadata tables on the target
    /// ([`crate::meta::migrate`]), retrying transient errors.
    pub async fn migrate(&self) -> Result<(), LoadError> {
        self.retrying("migrations", || crate::meta::migrate(&self.pool))
            .await
            .0
    }

    /// Records that `batch_id` (ending at `position`) is fully applied. Call
    /// it after [`apply_batch`](Self::apply_batch) returned `Ok` for that
    /// batch (see [`crate::meta`] for why it is not part of the workers'
    /// transactions).
    pub async fn record_checkpoint(
        &self,
        pipeline: &str,
        batch_id: u64,
        position: &str,
        through: &str,
    ) -> Result<(), LoadError> {
        self.fenced_meta_write(
            pipeline,
            batch_id,
            MetaWrite::Checkpoint { position, through },
        )
        .await
    }

    /// Records that `batch_id` is about to be applied
    /// ([`crate::meta::record_intent`]), retrying transient errors.
    pub async fn record_intent(
        &self,
        pipeline: &str,
        batch_id: u64,
        through: &str,
    ) -> Result<(), LoadError> {
        self.fenced_meta_write(pipeline, batch_id, MetaWrite::Intent { through })
            .await
    }

    /// One write of the metadata row, in a transaction that holds the term
    /// (see "Fencing"), retrying transient errors.
    async fn fenced_meta_write(
        &self,
        pipeline: &str,
        batch_id: u64,
        write: MetaWrite<'_>,
    ) -> Result<(), LoadError> {
        let what = match write {
            MetaWrite::Checkpoint { .. } => {
                format!("recording the checkpoint of pipeline {pipeline:?}")
            }
            MetaWrite::Intent { .. } => {
                format!("recording the batch in flight of pipeline {pipeline:?}")
            }
        };
        let failed = |e| LoadError::target(Some(batch_id), what.as_str(), e);
        self.retrying(&what, || async {
            let mut tx = self.pool.begin().await.map_err(failed)?;
            self.check_term(&mut tx, Some(batch_id), true).await?;
            match write {
                MetaWrite::Checkpoint { position, through } => {
                    crate::meta::record_checkpoint(&mut *tx, pipeline, batch_id, position, through)
                        .await
                }
                MetaWrite::Intent { through } => {
                    crate::meta::record_intent(&mut *tx, pipeline, batch_id, through).await
                }
            }
            .map_err(failed)?;
            tx.commit().await.map_err(failed)
        })
        .await
        .0
    }

    /// The checkpoint last recorded for `pipeline`.
    pub async fn read_checkpoint(
        &self,
        pipeline: &str,
    ) -> Result<Option<crate::meta::Checkpoint>, LoadError> {
        self.retrying("reading the checkpoint", || async {
            crate::meta::read_checkpoint(&self.pool, pipeline)
                .await
                .map_err(|e| {
                    LoadError::target(
                        None,
                        format!("reading the checkpoint of pipeline {pipeline:?}"),
                        e,
                    )
                })
        })
        .await
        .0
    }
}

/// The SET statements run on every new target connection.
fn session_statements(opts: &LoaderOptions) -> Vec<String> {
    let mut v = vec![
        format!("SET SESSION sql_mode = '{SESSION_SQL_MODE}'"),
        "SET SESSION time_zone = '+00:00'".to_string(),
        // `/*M!…*/` runs on MariaDB only; MySQL has no such switch.
        "SET SESSION foreign_key_checks = 0 /*M!100201 , check_constraint_checks = 0 */"
            .to_string(),
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
    ];
    if let Some(t) = opts.lock_wait_timeout {
        v.push(format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            t.as_secs().max(1)
        ));
    }
    v
}

/// From `(index, column, nullable, whole|prefix)` rows ordered by index and
/// position: PRIMARY if present, else the smallest unique index whose
/// columns are all NOT NULL and whole (ties by name).
fn choose_unique_key(rows: &[(String, String, String, String)]) -> Option<Vec<String>> {
    let mut indexes: Vec<(&str, Vec<String>, bool)> = Vec::new();
    for (index, column, nullable, part) in rows {
        let usable = nullable != "YES" && part == "whole";
        match indexes.last_mut() {
            Some((name, cols, ok)) if *name == index.as_str() => {
                cols.push(column.clone());
                *ok &= usable;
            }
            _ => indexes.push((index.as_str(), vec![column.clone()], usable)),
        }
    }
    if let Some((_, cols, _)) = indexes.iter().find(|(n, _, _)| *n == "PRIMARY") {
        return Some(cols.clone());
    }
    indexes
        .into_iter()
        .filter(|(_, _, ok)| *ok)
        .min_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)))
        .map(|(_, cols, _)| cols)
}

/// The replication key of a table: its primary key, else the target's
/// unique key mapped onto this table map's columns.
fn replication_key(t: &TableSchema, keys: &TargetKeys) -> Option<Vec<usize>> {
    if !t.primary_key.is_empty() {
        return Some(t.primary_key.clone());
    }
    let names = keys.get(&(t.schema.clone(), t.table.clone()))?.as_ref()?;
    names.iter().map(|n| t.column_index(n)).collect()
}

fn refused(batch_id: u64, e: MergeError) -> LoadError {
    LoadError::Refused {
        batch_id,
        table: e.table,
        key: e.key,
        reason: e.reason,
    }
}

/// What one worker applies, in order.
struct Piece<'a> {
    table: &'a TableSchema,
    op: PieceOp,
    /// Key columns (keyed tables).
    key: Option<Arc<[usize]>>,
    rows: Vec<&'a Row>,
    /// A delete whose rows the target should hold: rows it does not find
    /// are counted (not the delete that makes room before a re-insert).
    counts_missing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceOp {
    Upsert,
    Replace,
    Delete,
    Insert,
    DeleteOne,
}

impl<'a> Piece<'a> {
    /// The same piece over other rows.
    fn with_rows(&self, rows: Vec<&'a Row>) -> Piece<'a> {
        Piece {
            table: self.table,
            op: self.op,
            key: self.key.clone(),
            rows,
            counts_missing: self.counts_missing,
        }
    }

    fn kind(&self) -> Kind<'_> {
        match self.op {
            PieceOp::Upsert => Kind::Upsert(self.key.as_deref().unwrap_or(&[])),
            PieceOp::Replace => Kind::Replace,
            PieceOp::Delete => Kind::Delete(self.key.as_deref().unwrap_or(&[])),
            PieceOp::Insert => Kind::Insert,
            PieceOp::DeleteOne => Kind::DeleteOne,
        }
    }

    /// The key (or row) of row `i`, for messages.
    fn describe(&self, i: usize) -> String {
        let row = self.rows[i.min(self.rows.len() - 1)];
        match &self.key {
            Some(key) => describe_key(self.table, row, key),
            None => describe_row(self.table, row),
        }
    }
}

struct ShareOutcome {
    result: Result<Applied, LoadError>,
    retries: u32,
}

/// What a committed share did.
#[derive(Debug, Default)]
struct Applied {
    statements: usize,
    /// Rows deletes named that the target did not have.
    missed: u64,
    /// The first of them, for the log: (table, key).
    example: Option<(String, String)>,
}

impl Applied {
    fn missed(&mut self, n: u64, key: impl FnOnce() -> String, table: &TableSchema) {
        self.missed += n;
        if self.example.is_none() {
            self.example = Some((qualified(table), key()));
        }
    }

    /// Adds to the batch's stats, and reports missed deletes (at debug level
    /// while replaying, see the module docs).
    fn add_to(self, stats: &mut ApplyStats, batch_id: u64, conflicts: UniqueConflict) {
        stats.statements += self.statements;
        stats.deletes_missed += self.missed;
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
/// each share. Empty shares are dropped.
fn partition<'a>(
    plans: &'a [TablePlan<'a>],
    workers: usize,
    conflicts: UniqueConflict,
) -> Vec<Vec<Piece<'a>>> {
    let n = workers.max(1);
    let upsert = match conflicts {
        UniqueConflict::Fail => PieceOp::Upsert,
        UniqueConflict::Replace => PieceOp::Replace,
    };
    let mut shares: Vec<Vec<Piece<'a>>> = (0..n).map(|_| Vec::new()).collect();
    for plan in plans {
        let table: &TableSchema = plan.table;
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
                for (op, list, counts) in [
                    (PieceOp::Delete, precaution, false),
                    (PieceOp::Delete, expected, true),
                    (upsert, upserts, false),
                ] {
                    let mut per: Vec<Vec<&'a Row>> = vec![Vec::new(); n];
                    for r in list {
                        per[(r.hash % n as u64) as usize].push(r.row);
                    }
                    for (w, rows) in per.into_iter().enumerate() {
                        if !rows.is_empty() {
                            shares[w].push(Piece {
                                table,
                                op,
                                key: Some(key.clone()),
                                rows,
                                counts_missing: counts,
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
fn serial_share<'a>(
    changes: &'a [RowChange],
    keys: &TargetKeys,
    conflicts: UniqueConflict,
    skip_unkeyed: impl Fn(&TableSchema) -> bool,
) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let mut key_cache: Vec<(&'a TableSchema, Option<Arc<[usize]>>)> = Vec::new();
    let (mut buf_a, mut buf_b) = (Vec::new(), Vec::new());
    for c in changes {
        let table: &'a TableSchema = &c.table;
        let key = match key_cache.iter().find(|(t, _)| std::ptr::eq(*t, table)) {
            Some((_, k)) => k.clone(),
            None => {
                let k: Option<Arc<[usize]>> = replication_key(table, keys).map(Arc::from);
                key_cache.push((table, k.clone()));
                k
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
fn statement_error(
    batch_id: u64,
    piece: &Piece<'_>,
    chunk: sql::Chunk,
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
    let key = match server.row_number() {
        Some(n) if n >= 1 => piece.describe(chunk.start + (n - 1).min(chunk.len - 1)),
        _ if chunk.len == 1 => piece.describe(chunk.start),
        _ => format!(
            "{} (first of {} rows in the statement)",
            piece.describe(chunk.start),
            chunk.len
        ),
    };
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
        key,
        server,
        class,
        attempts: 1,
        unique_conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(60), Duration::from_secs(1));
    }

    #[test]
    fn unique_key_choice() {
        let row = |i: &str, c: &str, n: &str, p: &str| {
            (i.to_string(), c.to_string(), n.to_string(), p.to_string())
        };
        // Nullable and prefix indexes are skipped; the smallest wins.
        let rows = vec![
            row("a_nullable", "x", "YES", "whole"),
            row("b_pair", "y", "", "whole"),
            row("b_pair", "z", "", "whole"),
            row("c_prefix", "t", "", "prefix"),
            row("d_single", "w", "", "whole"),
        ];
        assert_eq!(choose_unique_key(&rows), Some(vec!["w".to_string()]));
        let rows = vec![
            row("PRIMARY", "id", "", "whole"),
            row("d", "w", "", "whole"),
        ];
        assert_eq!(choose_unique_key(&rows), Some(vec!["id".to_string()]));
        assert_eq!(choose_unique_key(&[row("u", "x", "YES", "whole")]), None);
        assert_eq!(choose_unique_key(&[]), None);
    }
}
