//! Why a pipeline stopped. Every variant is definite by the time it gets
//! here: the stages retry transient failures themselves (reconnecting the
//! dump, re-applying a batch) and only give up on what needs a human.

use std::sync::Arc;

use sluice_binlog::BinlogError;
use sluice_coord::{AckError, CoordError, KeyError};
use sluice_core::{Classify, ErrorClass};
use sluice_load::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or decoding the source's binlog.
    #[error(transparent)]
    Source(#[from] BinlogError),
    /// Applying to the target.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The position store.
    #[error("position store: {0}")]
    Coord(Arc<CoordError>),
    #[error("position store: {0}")]
    Ack(#[from] AckError),
    #[error("pipeline name: {0}")]
    Key(#[from] KeyError),
    /// Something in the binlog sluice must not replicate (a statement-based
    /// DML event, an XA transaction, an incident, a table map without
    /// column names).
    #[error("{at}: {reason}")]
    Refused { at: String, reason: String },
    /// `load.ddl: fail` and the binlog holds DDL for a replicated table.
    #[error("batch {batch_id}: DDL at {at} stops the pipeline (load.ddl is `fail`): {sql}")]
    DdlRefused {
        batch_id: u64,
        at: String,
        sql: String,
    },
    /// The target refused a DDL statement.
    #[error("batch {batch_id}: DDL at {at} failed on the target: {sql}: {message}")]
    Ddl {
        batch_id: u64,
        at: String,
        sql: String,
        message: String,
    },
    /// A column rule drops a column the target needs to apply changes.
    #[error("table {table}: {reason}")]
    Transform { table: String, reason: String },
    /// Moving batch data between nodes (distributed stages): transient — the
    /// task is re-run, or the pipeline rolls back and replays.
    #[error("stage pipe: {0}")]
    Pipe(#[from] crate::pipe::PipeError),
    /// A distributed stage failed definitely on another node.
    #[error("batch {batch_id}: {message}")]
    Remote { batch_id: u64, message: String },
    /// Distributed stages lost a batch they cannot recompute (or a task
    /// made no progress): the term restarts from the last acknowledged
    /// position. Handled by the runtime; never ends a run.
    #[error("rolling back to the last acknowledged position: {reason}")]
    Rollback { reason: String },
    /// A stage task panicked or was cancelled unexpectedly.
    #[error("stage {stage} ended abnormally: {message}")]
    Stage {
        stage: &'static str,
        message: String,
    },
    /// `sluice verify` cannot compare what it was asked to (a table missing
    /// on the target, different key collations, the pipeline not applying
    /// through a snapshot's position in time).
    #[error("cannot verify: {0}")]
    Verify(String),
}

impl From<CoordError> for PipelineError {
    fn from(e: CoordError) -> Self {
        PipelineError::Coord(Arc::new(e))
    }
}

impl From<Arc<CoordError>> for PipelineError {
    fn from(e: Arc<CoordError>) -> Self {
        PipelineError::Coord(e)
    }
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Source(e) => e.class(),
            PipelineError::Load(e) => e.class(),
            PipelineError::Coord(e) => e.class(),
            PipelineError::Pipe(_) | PipelineError::Rollback { .. } => ErrorClass::Transient,
            _ => ErrorClass::Definite,
        }
    }
}
