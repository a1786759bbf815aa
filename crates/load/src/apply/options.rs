//! What a [`Loader`](super::Loader) is configured with, what it reports, and
//! the session every target connection runs.
//!
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
//! Strict mode and the values it refuses are the subject of the session's
//! `sql_mode` above; see [`crate::sql`] for how values are encoded.

use std::time::Duration;

use sluice_core::retry::RetryPolicy;
use sluice_core::{TlsConfig, TlsMode};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

use crate::error::LoadError;
use crate::sql::Limits;

/// The session `sql_mode` of every target connection (see the module docs).
pub const SESSION_SQL_MODE: &str =
    "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES";

/// Settings of a [`Loader`](super::Loader).
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
    /// Prepared statements cached per connection; `0`: none, every
    /// statement is sent as text with its values inline
    /// ([`crate::sql::build_inline`]).
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
    /// A bidirectional pipeline's origin tag (see [`super::origin`]);
    /// `None` for one-way pipelines.
    pub origin: Option<OriginTag>,
    /// A bidirectional pipeline's conflict handling (see
    /// [`super::conflict`]); `None`: changes are applied without comparing
    /// the target row with the source's before image.
    pub conflicts: Option<ConflictRules>,
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
            retry: default_retry(),
            lock_wait_timeout: None,
            acquire_timeout: Duration::from_secs(10),
            statement_cache: 256,
            unique_conflict: UniqueConflict::Fail,
            term: None,
            tls: TlsConfig::disabled(),
            min_rows_per_worker: 256,
            origin: None,
            conflicts: None,
        }
    }
}

/// The loader's own retries of one worker transaction (or metadata write):
/// bounded, because whoever called the loader decides what happens next
/// (the pipeline applies the whole batch again under its own, unbounded
/// policy, a tool reports the error). Why the two levels nest is in the
/// pipeline's `load` module doc: this one retries a single worker's
/// transaction, so the shares that committed are not applied again.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::bounded(8, Duration::from_millis(100), Duration::from_secs(5))
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
    /// that find nothing" in [`super`]'s docs).
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
    /// Conflicts met and resolved (bidirectional pipelines, see
    /// [`super::conflict`]).
    pub conflicts: Vec<ConflictSeen>,
    pub elapsed: Duration,
}

/// The checkpoint row written with a batch
/// ([`Loader::apply_batch_checkpointed`](super::Loader::apply_batch_checkpointed)).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointMark<'a> {
    pub pipeline: &'a str,
    /// Where replication resumes after the batch.
    pub position: &'a str,
    /// Position after the batch's last event (past `position` when the
    /// batch ends inside a transaction).
    pub through: &'a str,
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

/// The SET statements run on every new target connection.
pub(super) fn session_statements(opts: &LoaderOptions) -> Vec<String> {
    let mut v = vec![
        format!("SET SESSION sql_mode = '{SESSION_SQL_MODE}'"),
        "SET SESSION time_zone = '+00:00'".to_string(),
        // `/*M!…*/` runs on MariaDB only; MySQL has no such switch.
        "SET SESSION foreign_key_checks = 0 /*M!100201 , check_constraint_checks = 0 */"
            .to_string(),
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
    ];
    if let Some(OriginTag::ServerId(tag)) = &opts.origin {
        // Every event this session logs carries the tag (see `super::origin`).
        v.push(format!("SET SESSION server_id = {tag}"));
    }
    if let Some(t) = opts.lock_wait_timeout {
        v.push(format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            t.as_secs().max(1)
        ));
    }
    v
}

/// How a loader tags what it applies (see [`super::origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginTag {
    /// `SET SESSION server_id = N` on every connection.
    ServerId(u32),
    /// A marker row naming `pipeline` first in every row transaction.
    Marker { pipeline: String },
}

/// What a bidirectional loader does with conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRules {
    /// The pipeline, for the records.
    pub pipeline: String,
    pub policy: ConflictPolicy,
}

/// `bidirectional.conflicts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictPolicy {
    SourceWins,
    TargetWins,
    NewerWins(String),
    Stop,
}

impl ConflictPolicy {
    /// As written in the pipeline file.
    pub fn name(&self) -> String {
        match self {
            ConflictPolicy::SourceWins => "source_wins".into(),
            ConflictPolicy::TargetWins => "target_wins".into(),
            ConflictPolicy::NewerWins(c) => format!("newer_wins:{c}"),
            ConflictPolicy::Stop => "stop".into(),
        }
    }
}

/// One conflict the loader met and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictSeen {
    /// `` `schema`.`table` `` as written on the target.
    pub table: String,
    pub key: String,
    /// `true` when the source's change was applied.
    pub source_won: bool,
}
