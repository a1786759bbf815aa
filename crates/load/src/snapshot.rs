//! Target side of a snapshot: the progress rows (`sluice_meta.
//! snapshot_progress`, migration 0005), table creation and the checks that
//! run before anything is written, and clearing a table without a key
//! before its whole copy.
//!
//! A copy a DDL restarts ([`Loader::snapshot_restart`]) moves its rows
//! copied so far into `rows_recopied` and starts its progress over.
//!
//! A re-copy (`sluice snapshot --table`) marks its rows `recopy` instead of
//! `pending` until done, and deletes each chunk's key range before the
//! chunk's rows ([`Loader::delete_key_range`]).
//!
//! Every write here runs in a transaction that first holds the pipeline's
//! term ([`crate::apply`]'s fence), so a fenced-out old leader can neither
//! record progress nor clear a table.

use sqlx::Row as _;

use crate::apply::Loader;
use crate::error::LoadError;
use crate::sql::quote_ident;

/// One table's snapshot progress as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    /// Source `schema.table`.
    pub table: String,
    pub done: bool,
    /// A re-copy while streaming (`sluice snapshot --table`), not the
    /// initial copy: chunks replace their key range.
    pub recopy: bool,
    /// Where streaming started for this copy (text of a `Position`).
    pub start_position: String,
    /// JSON of the chunk key of the last row copied.
    pub last_key: Option<String>,
    pub chunks_done: u64,
    pub rows_copied: u64,
    pub rows_estimated: u64,
    pub inflight_rows: u64,
    pub rows_recopied: u64,
}

/// One committed chunk batch, as [`Loader::snapshot_chunks_done`] records it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkDone<'a> {
    /// Source `schema.table`.
    pub table: &'a str,
    /// JSON of the chunk key of its last row (`None`: keep the stored one).
    pub last_key: Option<&'a str>,
    pub rows: u64,
    /// The table's copy is complete with it.
    pub complete: bool,
    /// The last batch of its chunk: the chunk counts as done.
    pub chunk_end: bool,
}

/// How a target table compares with the one a snapshot would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableCheck {
    Missing,
    /// Exists with the expected columns; `nonempty` when it holds a row.
    Matches {
        nonempty: bool,
    },
    /// Exists with other columns: the difference, in words.
    Differs(String),
}

/// One progress row. The text columns are `utf8mb4_bin` (table names
/// compare exactly), which the driver reports as binary: read as bytes.
fn progress_row(r: &sqlx::mysql::MySqlRow) -> Result<TableProgress, sqlx::Error> {
    let text = |i: usize| -> Result<String, sqlx::Error> {
        let bytes: Vec<u8> = r.try_get(i)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let last_key: Option<Vec<u8>> = r.try_get(3)?;
    let state = text(1)?;
    Ok(TableProgress {
        table: text(0)?,
        done: state == "done",
        recopy: state == "recopy",
        start_position: text(2)?,
        last_key: last_key.map(|b| String::from_utf8_lossy(&b).into_owned()),
        chunks_done: r.try_get(4)?,
        rows_copied: r.try_get(5)?,
        rows_estimated: r.try_get(6)?,
        inflight_rows: r.try_get(7)?,
        rows_recopied: r.try_get(8)?,
    })
}

fn q(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

impl Loader {
    /// Every progress row of `pipeline`.
    pub async fn snapshot_progress(&self, pipeline: &str) -> Result<Vec<TableProgress>, LoadError> {
        let rows = sqlx::query(
            "SELECT source_table, state, start_position, last_key, chunks_done, rows_copied, \
             rows_estimated, inflight_rows, rows_recopied FROM `sluice_meta`.`snapshot_progress` \
             WHERE pipeline = ? ORDER BY source_table",
        )
        .bind(pipeline)
        .fetch_all(self.pool())
        .await
        .map_err(|e| LoadError::target(None, "reading the snapshot progress", e))?;
        rows.iter()
            .map(progress_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| LoadError::target(None, "reading the snapshot progress", e))
    }

    /// Runs `sql` (with string parameters) in a transaction holding the term.
    async fn fenced(&self, what: &str, sql: &str, binds: &[&str]) -> Result<(), LoadError> {
        let failed = |e| LoadError::target(None, what, e);
        self.retrying(what, || async {
            let mut tx = self.pool().begin().await.map_err(failed)?;
            self.check_term(&mut tx, None, true).await?;
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(*b);
            }
            query.execute(&mut *tx).await.map_err(failed)?;
            tx.commit().await.map_err(failed)
        })
        .await
        .0
    }

    /// Records `tables` (`(source table, rows estimated)`) as pending copies
    /// that streaming from `start` hands off to, replacing earlier rows of
    /// the same tables.
    pub async fn snapshot_begin(
        &self,
        pipeline: &str,
        start: &str,
        tables: &[(String, u64)],
    ) -> Result<(), LoadError> {
        self.snapshot_plan(pipeline, start, tables, "pending").await
    }

    /// Records `tables` as re-copies (`sluice snapshot --table`), replacing
    /// their earlier rows; `start` is only informative here (streaming
    /// continues from the stored position).
    pub async fn snapshot_recopy_begin(
        &self,
        pipeline: &str,
        start: &str,
        tables: &[(String, u64)],
    ) -> Result<(), LoadError> {
        self.snapshot_plan(pipeline, start, tables, "recopy").await
    }

    async fn snapshot_plan(
        &self,
        pipeline: &str,
        start: &str,
        tables: &[(String, u64)],
        state: &str,
    ) -> Result<(), LoadError> {
        for (table, estimate) in tables {
            let estimate = estimate.to_string();
            self.fenced(
                "recording the snapshot plan",
                "REPLACE INTO `sluice_meta`.`snapshot_progress` \
                 (pipeline, source_table, state, start_position, rows_estimated) \
                 VALUES (?, ?, ?, ?, ?)",
                &[pipeline, table, state, start, &estimate],
            )
            .await?;
        }
        Ok(())
    }

    /// Notes that `rows` more rows of `table` are being written (a chunk may
    /// span several batches; [`Self::snapshot_chunks_done`] resets it), for
    /// each `(table, rows)` in `chunks`, in one fenced transaction.
    pub async fn snapshot_inflight(
        &self,
        pipeline: &str,
        chunks: &[(&str, u64)],
    ) -> Result<(), LoadError> {
        let what = "recording the snapshot chunk in flight";
        let failed = |e| LoadError::target(None, what, e);
        self.retrying(what, || async {
            let mut tx = self.pool().begin().await.map_err(failed)?;
            self.check_term(&mut tx, None, true).await?;
            for (table, rows) in chunks {
                sqlx::query(
                    "UPDATE `sluice_meta`.`snapshot_progress` SET inflight_rows = inflight_rows + ? \
                     WHERE pipeline = ? AND source_table = ?",
                )
                .bind(rows)
                .bind(pipeline)
                .bind(table)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)
        })
        .await
        .0
    }

    /// Records each chunk in `chunks` as committed, in order, in one fenced
    /// transaction: its last key (JSON), its rows, and whether its table's
    /// copy is complete.
    pub async fn snapshot_chunks_done(
        &self,
        pipeline: &str,
        chunks: &[ChunkDone<'_>],
    ) -> Result<(), LoadError> {
        let what = "recording a snapshot chunk";
        let failed = |e| LoadError::target(None, what, e);
        self.retrying(what, || async {
            let mut tx = self.pool().begin().await.map_err(failed)?;
            self.check_term(&mut tx, None, true).await?;
            for c in chunks {
                // An unfinished chunk keeps the state (`pending` or `recopy`).
                let state = if c.complete { Some("done") } else { None };
                sqlx::query(
                    "UPDATE `sluice_meta`.`snapshot_progress` SET last_key = COALESCE(?, last_key), \
                     chunks_done = chunks_done + ?, rows_copied = rows_copied + ?, inflight_rows = 0, \
                     state = COALESCE(?, state), updated_at = CURRENT_TIMESTAMP(6) WHERE pipeline = ? AND source_table = ?",
                )
                .bind(c.last_key)
                .bind(u64::from(c.chunk_end))
                .bind(c.rows)
                .bind(state)
                .bind(pipeline)
                .bind(c.table)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)
        })
        .await
        .0
    }

    /// A DDL restarted the copy of `table` from its first chunk: the rows
    /// copied so far (and any in flight) count as copied again, and the
    /// table's progress starts over. Repeating it changes nothing more.
    pub async fn snapshot_restart(&self, pipeline: &str, table: &str) -> Result<(), LoadError> {
        self.fenced(
            "restarting a table's snapshot",
            "UPDATE `sluice_meta`.`snapshot_progress` SET \
             rows_recopied = rows_recopied + rows_copied + inflight_rows, rows_copied = 0, \
             inflight_rows = 0, chunks_done = 0, last_key = NULL, \
             updated_at = CURRENT_TIMESTAMP(6) WHERE pipeline = ? AND source_table = ?",
            &[pipeline, table],
        )
        .await
    }

    /// A new leader takes over an unfinished copy: rows of chunks that were
    /// in flight count as copied again.
    pub async fn snapshot_resume(&self, pipeline: &str) -> Result<(), LoadError> {
        self.fenced(
            "resuming the snapshot",
            "UPDATE `sluice_meta`.`snapshot_progress` SET rows_recopied = rows_recopied + inflight_rows, \
             inflight_rows = 0 WHERE pipeline = ? AND state <> 'done'",
            &[pipeline],
        )
        .await
    }

    /// Deletes every row of a target table (before the whole copy of a
    /// table without a key), under the term.
    pub async fn clear_table(&self, schema: &str, table: &str) -> Result<(), LoadError> {
        self.fenced(
            &format!("clearing {}", q(schema, table)),
            &format!("DELETE FROM {}", q(schema, table)),
            &[],
        )
        .await
    }

    /// Deletes the target rows whose key (`columns`, in order) lies after
    /// `after` and at or before `through` (`None`: open at that end), under
    /// the term: a re-copied chunk then replaces its whole key range, so
    /// rows the target holds but the source did not are gone.
    pub async fn delete_key_range(
        &self,
        schema: &str,
        table: &str,
        columns: &[String],
        after: Option<&[sluice_core::Value]>,
        through: Option<&[sluice_core::Value]>,
    ) -> Result<(), LoadError> {
        let tuple = format!(
            "({})",
            columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let marks = format!("({})", vec!["?"; columns.len()].join(", "));
        let mut conds = Vec::new();
        if after.is_some() {
            conds.push(format!("{tuple} > {marks}"));
        }
        if through.is_some() {
            conds.push(format!("{tuple} <= {marks}"));
        }
        let mut sql = format!("DELETE FROM {}", q(schema, table));
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let what = format!("deleting a re-copied key range of {}", q(schema, table));
        let failed = |e| LoadError::target(None, &what, e);
        self.retrying(&what, || async {
            let mut args = sqlx::mysql::MySqlArguments::default();
            for v in after.into_iter().chain(through).flatten() {
                crate::sql::encode_value(&mut args, v).map_err(|reason| {
                    LoadError::target(None, &what, sqlx::Error::Protocol(reason))
                })?;
            }
            let mut tx = self.pool().begin().await.map_err(failed)?;
            self.check_term(&mut tx, None, true).await?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)
        })
        .await
        .0
    }

    /// Compares the target table with the expected columns (`(name,
    /// COLUMN_TYPE)` in order).
    pub async fn check_table(
        &self,
        schema: &str,
        table: &str,
        expected: &[(String, String)],
    ) -> Result<TableCheck, LoadError> {
        let failed = |e| LoadError::target(None, format!("reading {}", q(schema, table)), e);
        let have: Vec<(String, String)> = sqlx::query_as(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(schema)
        .bind(table)
        .fetch_all(self.pool())
        .await
        .map_err(failed)?;
        if have.is_empty() {
            return Ok(TableCheck::Missing);
        }
        if let Some(diff) = column_difference(expected, &have) {
            return Ok(TableCheck::Differs(diff));
        }
        let any: Option<i32> =
            sqlx::query_scalar(&format!("SELECT 1 FROM {} LIMIT 1", q(schema, table)))
                .fetch_optional(self.pool())
                .await
                .map_err(failed)?;
        Ok(TableCheck::Matches {
            nonempty: any.is_some(),
        })
    }

    /// Runs `create` (a `CREATE TABLE` for `schema`), creating the schema
    /// first if needed.
    pub async fn create_table(&self, schema: &str, create: &str) -> Result<(), LoadError> {
        self.verify_term().await?;
        let what = format!("creating a table in {}", quote_ident(schema));
        let failed = |e| LoadError::target(None, what.as_str(), e);
        use sqlx::Executor as _;
        let create_db = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(schema));
        let use_db = format!("USE {}", quote_ident(schema));
        // Text protocol (`&str`), so the future stays `Send` for any caller.
        let mut conn = self.pool().acquire().await.map_err(failed)?;
        (&mut *conn)
            .execute(create_db.as_str())
            .await
            .map_err(failed)?;
        (&mut *conn)
            .execute(use_db.as_str())
            .await
            .map_err(failed)?;
        let result = (&mut *conn).execute(create).await.map_err(failed);
        // The connection's default database changed: do not pool it again.
        let _ = sqlx::Connection::close(conn.detach()).await;
        result.map(|_| ())
    }
}

/// The first difference between expected and actual `(name, type)` lists,
/// in words; `None` when they agree (names compare case-insensitively).
pub fn column_difference(
    expected: &[(String, String)],
    have: &[(String, String)],
) -> Option<String> {
    for (i, (name, ty)) in expected.iter().enumerate() {
        match have.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => return Some(format!("column `{name}` is missing on the target")),
            Some((_, t)) if !t.eq_ignore_ascii_case(ty) => {
                return Some(format!(
                    "column `{name}` is `{t}` on the target but `{ty}` on the source"
                ))
            }
            Some(_)
                if have
                    .get(i)
                    .is_none_or(|(n, _)| !n.eq_ignore_ascii_case(name)) =>
            {
                return Some(format!(
                    "column `{name}` is at another position on the target"
                ))
            }
            Some(_) => {}
        }
    }
    have.iter()
        .find(|(n, _)| !expected.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)))
        .map(|(n, _)| format!("the target has a column `{n}` the source does not"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn names_the_first_difference() {
        let src = cols(&[("id", "int(11)"), ("v", "varchar(10)")]);
        assert_eq!(column_difference(&src, &src), None);
        assert_eq!(
            column_difference(&src, &cols(&[("id", "int(11)"), ("v", "text")])).unwrap(),
            "column `v` is `text` on the target but `varchar(10)` on the source"
        );
        assert!(column_difference(&src, &cols(&[("id", "int(11)")]))
            .unwrap()
            .contains("missing"));
        assert!(column_difference(
            &src,
            &cols(&[("id", "int(11)"), ("v", "varchar(10)"), ("x", "int(11)")])
        )
        .unwrap()
        .contains("`x`"));
    }
}
