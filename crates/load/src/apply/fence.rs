//! Fencing by leadership term, and the fenced writes of the pipeline's
//! metadata row (checkpoint and batch in flight).
//!
//! With [`LoaderOptions::term`] set (an HA pair), every transaction first
//! reads the pipeline's row of `sluice_meta.term` with a shared lock and
//! fails with the definite [`LoadError::FencedOut`] unless it still names
//! this loader's term; [`Loader::claim_term`] raises the row for a new
//! leader and waits for the shared locks of the old term's open
//! transactions. A paused or cut-off old leader therefore cannot write
//! after the new one started (`migrations/0003_term.sql`).
//!

use super::Loader;
use crate::error::LoadError;

/// A write of the pipeline's metadata row.
#[derive(Debug, Clone, Copy)]
enum MetaWrite<'a> {
    Checkpoint { position: &'a str, through: &'a str },
    Intent { through: &'a str },
}

impl Loader {
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
    pub(crate) async fn check_term(
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
