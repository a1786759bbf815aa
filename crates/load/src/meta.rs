//! sluice's metadata tables on the target, and the checkpoint.
//!
//! The migrations live in the repository's top-level `migrations/` (sqlx
//! format, embedded at compile time) and run in the `sluice_meta` database,
//! which [`migrate`] creates first; sqlx records what ran in
//! `sluice_meta._sqlx_migrations` and serialises concurrent runs with a
//! named lock, so two nodes starting at once are safe.
//!
//! # The checkpoint
//!
//! `sluice_meta.checkpoint` holds, per pipeline, the last batch the loader
//! fully applied and that batch's end position. With parallel workers a
//! batch commits in several transactions, so there is no transaction that
//! could carry the checkpoint "with" the rows; it is therefore written
//! **after every worker of the batch committed** ([`Loader::apply_batch`]
//! returned `Ok`), in its own statement. Consequences:
//!
//! * it never names a batch that is not fully on the target (a crash between
//!   the commits and the checkpoint leaves it one batch behind, which a
//!   replay repairs, because apply is idempotent);
//! * it is informational for operators and `sluice status`; resuming uses
//!   the position in the coordination store, which the pipeline advances
//!   only in `batch_id` order after the loader's `Ok`.
//!
//! [`Loader::apply_batch`]: crate::Loader::apply_batch

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlExecutor, MySqlPool};
use sqlx::{Acquire as _, Connection as _, Executor as _};

use crate::error::LoadError;

/// The database sluice keeps its metadata in on the target.
pub const META_SCHEMA: &str = "sluice_meta";

/// The embedded migrations of `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Creates `sluice_meta` if needed and applies pending migrations.
pub async fn migrate(pool: &MySqlPool) -> Result<(), LoadError> {
    let target = |what: &str, e| LoadError::target(None, format!("{what} on the target"), e);
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| target("connecting for migrations", e))?;
    conn.execute(format!("CREATE DATABASE IF NOT EXISTS `{META_SCHEMA}`").as_str())
        .await
        .map_err(|e| target("creating the metadata database", e))?;
    conn.execute(format!("USE `{META_SCHEMA}`").as_str())
        .await
        .map_err(|e| target("selecting the metadata database", e))?;
    let result = MIGRATOR
        .run(
            conn.acquire()
                .await
                .map_err(|e| target("connecting for migrations", e))?,
        )
        .await;
    // The connection's default database is now `sluice_meta`; do not hand it
    // back to the pool.
    let _ = conn.detach().close().await;
    result.map_err(|source| LoadError::Migrate {
        schema: META_SCHEMA,
        source,
    })
}

/// One pipeline's checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub pipeline: String,
    pub batch_id: u64,
    /// The batch's end position, as the pipeline wrote it.
    pub position: String,
    /// `YYYY-MM-DD HH:MM:SS.ffffff` UTC.
    pub updated_at: String,
    /// The batch that was being applied when the row was last written, and
    /// the position after its last event ([`record_intent`]); `None` when
    /// the last batch started also finished.
    pub applying: Option<(u64, String)>,
    /// Position after the last event of the checkpointed batch: past
    /// `position` when that batch ended inside a transaction, whose
    /// already-applied events a resume must then skip.
    pub through: Option<String>,
}

/// Upserts a pipeline's checkpoint. Generic over the executor so the caller
/// may run it in a transaction of its own; [`crate::Loader::record_checkpoint`]
/// runs it on the loader's pool with retries.
pub async fn record_checkpoint<'e>(
    executor: impl MySqlExecutor<'e>,
    pipeline: &str,
    batch_id: u64,
    position: &str,
    through: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO `sluice_meta`.`checkpoint` \
         (pipeline, batch_id, position, applied_through, updated_at) \
         VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE batch_id = VALUES(batch_id), position = VALUES(position), \
         applied_through = VALUES(applied_through), updated_at = VALUES(updated_at), \
         applying_batch_id = NULL, applying_through = NULL",
    )
    .bind(pipeline)
    .bind(batch_id)
    .bind(position)
    .bind(through)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Records that `batch_id`, whose last event ends at `through`, is about to
/// be applied (see `migrations/0002_checkpoint_intent.sql`). Creates the row
/// with batch 0 and an empty position if the pipeline has none yet.
pub async fn record_intent<'e>(
    executor: impl MySqlExecutor<'e>,
    pipeline: &str,
    batch_id: u64,
    through: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO `sluice_meta`.`checkpoint` \
         (pipeline, batch_id, position, updated_at, applying_batch_id, applying_through) \
         VALUES (?, 0, '', CURRENT_TIMESTAMP(6), ?, ?) \
         ON DUPLICATE KEY UPDATE applying_batch_id = VALUES(applying_batch_id), \
         applying_through = VALUES(applying_through)",
    )
    .bind(pipeline)
    .bind(batch_id)
    .bind(through)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Reads a pipeline's checkpoint, if one was recorded.
pub async fn read_checkpoint<'e>(
    executor: impl MySqlExecutor<'e>,
    pipeline: &str,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    type CheckpointRow = (
        String,
        u64,
        String,
        String,
        Option<u64>,
        Option<String>,
        Option<String>,
    );
    let row: Option<CheckpointRow> = sqlx::query_as(
        "SELECT pipeline, batch_id, position, CAST(updated_at AS CHAR), \
         applying_batch_id, applying_through, applied_through \
         FROM `sluice_meta`.`checkpoint` WHERE pipeline = ?",
    )
    .bind(pipeline)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(
        |(pipeline, batch_id, position, updated_at, applying_id, applying_through, through)| {
            Checkpoint {
                pipeline,
                batch_id,
                position,
                updated_at,
                applying: applying_id.zip(applying_through),
                through,
            }
        },
    ))
}

/// Deletes a pipeline's checkpoint row and returns what it held (`None`:
/// the pipeline had no row). `sluice positions set` needs the row gone:
/// `sluice run` resumes from the further of the stored position and the
/// checkpoint, so a rewound position would otherwise lose to it.
///
/// Read and delete run in one transaction on one connection; the caller
/// makes sure no node writes the row meanwhile (`positions set` refuses
/// while nodes run). A target that was never migrated fails with the
/// server's "table does not exist" (42S02), as [`read_checkpoint`] does.
pub async fn delete_checkpoint(
    pool: &MySqlPool,
    pipeline: &str,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before = read_checkpoint(&mut *tx, pipeline).await?;
    sqlx::query("DELETE FROM `sluice_meta`.`checkpoint` WHERE pipeline = ?")
        .bind(pipeline)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(before)
}

/// The statement [`delete_checkpoint`] runs, with the pipeline's name
/// inlined, for an operator to run by hand when the target was unreachable.
/// Pipeline names are `[a-z0-9_-]` (validated by the config), so quoting
/// them needs no escapes; a `'` would still be doubled.
pub fn delete_checkpoint_statement(pipeline: &str) -> String {
    format!(
        "DELETE FROM sluice_meta.checkpoint WHERE pipeline = '{}'",
        pipeline.replace('\'', "''")
    )
}
