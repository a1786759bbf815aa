//! Operator replacements: statements run on the target instead of a change
//! the target refused (`sluice errors replace`).
//!
//! They run in **one transaction** that first holds the term (like every
//! write of the loader, so a node that lost its term cannot run them) and
//! ends by recording the request in `sluice_meta.replacement`; a request
//! already recorded there is not run again. So a replacement runs exactly
//! once, whoever retries it — as long as the statements are DML: DDL
//! commits implicitly in MySQL and MariaDB, and then only the statements up
//! to it are atomic with the record.

use sqlx::Executor as _;

use super::Loader;
use crate::error::LoadError;

impl Loader {
    /// Runs `sql` (one or more statements) for `request` of `pipeline`
    /// unless it ran before; `Ok(true)` when it ran now. A statement the
    /// target refuses rolls everything back and is returned as the
    /// definite (or transient) error it is.
    pub async fn apply_replacement(
        &self,
        pipeline: &str,
        request: &str,
        sql: &str,
    ) -> Result<bool, LoadError> {
        let what = format!("running the replacement statements of request {request}");
        let failed = |e| LoadError::target(None, what.as_str(), e);
        let (outcome, _) = self
            .retrying(&what, || async {
                let mut tx = self.pool().begin().await.map_err(failed)?;
                self.check_term(&mut tx, None, true).await?;
                let done: Option<(i32,)> = sqlx::query_as(
                    "SELECT 1 FROM `sluice_meta`.`replacement` WHERE pipeline = ? AND request = ? FOR UPDATE",
                )
                .bind(pipeline)
                .bind(request)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                if done.is_some() {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                // Before the operator's statements: the peer of a
                // bidirectional pipeline must not copy them back.
                self.write_origin_marker(&mut tx, None, super::origin::REPLACE_WORKER)
                    .await?;
                // Text protocol (no arguments): several statements at once.
                (&mut *tx).execute(sql).await.map_err(failed)?;
                sqlx::query("INSERT INTO `sluice_meta`.`replacement` (pipeline, request) VALUES (?, ?)")
                    .bind(pipeline)
                    .bind(request)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await;
        outcome
    }

    /// Whether `request`'s replacement is recorded as applied.
    pub async fn replacement_applied(
        &self,
        pipeline: &str,
        request: &str,
    ) -> Result<bool, LoadError> {
        let found: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM `sluice_meta`.`replacement` WHERE pipeline = ? AND request = ?",
        )
        .bind(pipeline)
        .bind(request)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| LoadError::target(None, "reading the replacement record", e))?;
        Ok(found.is_some())
    }
}
