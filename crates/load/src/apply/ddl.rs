//! Running a replicated DDL statement on the target.
//!
//! DDL commits implicitly, so it cannot share a transaction with the term
//! check: the term is verified on the connection right before (a fenced-out
//! node stops there), then the target schemas the statement needs are
//! created (`CREATE DATABASE IF NOT EXISTS`) and the statement runs.
//!
//! # Already applied
//!
//! A statement may already be on the target: the batch is replayed after a
//! crash (the target is ahead of the resume position), or an earlier attempt
//! committed but its answer was lost. Then the server refuses it with one of
//! [`ALREADY_APPLIED`]'s errors ("table exists", "duplicate column", …).
//! When the caller says the target may be ahead (`tolerate_applied`), such a
//! refusal counts as applied and is reported in [`DdlOutcome::skipped`];
//! otherwise it is the definite error it looks like. Every error is
//! classified here, where the server's answer is seen.

use sqlx::Executor as _;

use super::Loader;
use crate::error::{LoadError, ServerError};
use crate::sql::quote_ident;

/// MySQL errors of DDL that was already applied: tolerated while replaying.
pub const ALREADY_APPLIED: &[u16] = &[
    1050, // table already exists
    1051, // unknown table (DROP)
    1054, // unknown column
    1060, // duplicate column name
    1061, // duplicate key name
    1068, // multiple primary key defined
    1091, // can't DROP; check that column/key exists
    1146, // table doesn't exist
];

/// What [`Loader::apply_ddl`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DdlOutcome {
    /// Statements refused as already applied (and skipped), with the
    /// server's error.
    pub skipped: Vec<(String, ServerError)>,
}

impl Loader {
    /// Verifies the term, creates `create_schemas` on the target, runs `sql`,
    /// and forgets every cached table fact (keys and generated columns may
    /// have changed). See the module docs for `tolerate_applied`. Transient
    /// errors are returned to the caller, which may call again: every step
    /// is idempotent under `tolerate_applied`.
    pub async fn apply_ddl(
        &self,
        batch_id: u64,
        create_schemas: &[String],
        sql: &str,
        tolerate_applied: bool,
    ) -> Result<DdlOutcome, LoadError> {
        self.verify_term().await?;
        let mut statements: Vec<String> = create_schemas
            .iter()
            .map(|s| format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(s)))
            .collect();
        statements.push(sql.to_string());
        let mut outcome = DdlOutcome::default();
        for stmt in statements {
            match self.pool().execute(stmt.as_str()).await {
                Ok(_) => {}
                Err(e) => {
                    let server = ServerError::from_sqlx(&e);
                    match server {
                        Some(s) if tolerate_applied && ALREADY_APPLIED.contains(&s.code) => {
                            tracing::warn!(batch_id, sql = %stmt, error = %s, "DDL already applied on the target; skipped");
                            outcome.skipped.push((stmt, s));
                        }
                        _ => return Err(LoadError::ddl(batch_id, &stmt, e)),
                    }
                }
            }
        }
        self.forget_all_tables();
        Ok(outcome)
    }
}
