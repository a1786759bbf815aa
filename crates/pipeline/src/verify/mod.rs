//! `sluice verify`: proving the target equals the source while the
//! pipeline replicates, and mending what differs (`--repair`).
//!
//! The pieces, each with its own rule:
//! * the canonical row encoding and its SQL — `sluice_core::verify`, one
//!   definition for both servers;
//! * source reads in consistent snapshots at exact binlog positions —
//!   `sluice_binlog::verify`; target reads and fenced repair writes —
//!   `sluice_load::verify`;
//! * which tables, mapped through routes and column rules — [`plan`];
//! * waiting until the pipeline applied through a snapshot's position —
//!   [`applied`];
//! * the comparison (chunks, narrowing, re-checks) — [`compare`];
//! * repair and its re-verification — [`repair`]; output — [`report`].
//!
//! Chunk planning (`SourceVerifier::plan_chunks`: table, key columns,
//! chunk_rows → key ranges as tuples) is deliberately a small separate
//! piece, so it can be shared with the snapshot's chunking.

pub mod applied;
pub mod compare;
pub mod continuous;
pub mod plan;
pub mod repair;
pub mod report;

use sluice_binlog::verify::SourceVerifier;
use sluice_config::{ColumnRules, Filter, Routes};
use sluice_core::verify::read::BytesRow;
use sluice_core::verify::{DiffKind, Key, VerifyTable};
use sluice_load::verify::TargetVerifier;

pub use applied::Applied;
pub use compare::Throttle;

use crate::error::PipelineError;

/// How a verify run reads.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// `--table db.t` (source names); empty: every included table.
    pub tables: Vec<String>,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Chunks checksummed in one source snapshot before the target is read.
    pub window_chunks: usize,
    /// Comparisons a candidate difference must survive to be reported.
    pub rechecks: u32,
    /// Rows per second read from the source, at most.
    pub rate: Option<u64>,
    /// Chunks of the first keyed table compared to skip (a continuous
    /// round resumed mid-table; 0 otherwise).
    pub skip_chunks: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            tables: Vec::new(),
            chunk_rows: 1000,
            window_chunks: 16,
            rechecks: 3,
            rate: None,
            skip_chunks: 0,
        }
    }
}

/// One differing row (keyed tables) or one missing/extra copy of a row
/// (keyless tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: DiffKind,
    /// The canonical key; `None` for a keyless table.
    pub key: Option<Key>,
    /// A keyless row's hash.
    pub hash: Option<Vec<u8>>,
    /// The rows' canonical values as last read (absent on that side: `None`).
    pub source_row: Option<BytesRow>,
    pub target_row: Option<BytesRow>,
}

/// What verify found for one table.
#[derive(Debug, Clone)]
pub struct TableOutcome {
    /// `schema.table` on the source and the target.
    pub table: String,
    pub target: String,
    /// The compared table, when it could be mapped.
    pub plan: Option<VerifyTable>,
    pub chunks: u64,
    pub rows: u64,
    pub differences: Vec<Finding>,
    /// After `--repair`: what still differs.
    pub remaining: Option<Vec<Finding>>,
    /// Why the table could not be verified.
    pub error: Option<String>,
}

impl TableOutcome {
    pub fn new(t: &VerifyTable, chunks: u64, rows: u64, differences: Vec<Finding>) -> Self {
        TableOutcome {
            table: t.source_name(),
            target: t.target_name(),
            plan: Some(t.clone()),
            chunks,
            rows,
            differences,
            remaining: None,
            error: None,
        }
    }

    fn refused(table: String, target: String, error: String) -> Self {
        TableOutcome {
            table,
            target,
            plan: None,
            chunks: 0,
            rows: 0,
            differences: Vec::new(),
            remaining: None,
            error: Some(error),
        }
    }

    /// The differences that count now: after a repair, what remains.
    pub fn current(&self) -> &[Finding] {
        self.remaining.as_deref().unwrap_or(&self.differences)
    }
}

/// A verify run's reading sides.
pub struct Verifier {
    pub source: SourceVerifier,
    pub target: TargetVerifier,
    pub applied: Applied,
    pub opts: VerifyOptions,
    pub throttle: Throttle,
    /// Chunks of the table being compared that are done (including
    /// skipped ones): what a continuous round records as its progress.
    pub chunks_done: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Verifier {
    pub fn new(
        source: SourceVerifier,
        target: TargetVerifier,
        applied: Applied,
        opts: VerifyOptions,
    ) -> Self {
        let throttle = Throttle::new(opts.rate);
        Verifier {
            source,
            target,
            applied,
            opts,
            throttle,
            chunks_done: Default::default(),
        }
    }

    /// The compared tables: mapped, or refused with why.
    pub async fn plan(
        &self,
        filter: &Filter,
        routes: &Routes,
        columns: &ColumnRules,
    ) -> Result<Vec<Result<VerifyTable, TableOutcome>>, PipelineError> {
        let all = self.source.tables().await?;
        let chosen =
            plan::select_tables(&all, filter, &self.opts.tables).map_err(PipelineError::Verify)?;
        let mut out = Vec::with_capacity(chosen.len());
        for (schema, table) in chosen {
            let (ts, tt) = routes.route(&schema, &table);
            let refused = |e: String| {
                TableOutcome::refused(format!("{schema}.{table}"), format!("{ts}.{tt}"), e)
            };
            let Some(source) = self.source.describe(&schema, &table).await? else {
                out.push(Err(refused("the table disappeared from the source".into())));
                continue;
            };
            let target = self.target.describe(&ts, &tt).await?;
            out.push(
                plan::map_table(&schema, &table, &source, target.as_ref(), routes, columns)
                    .map_err(refused),
            );
        }
        Ok(out)
    }

    /// Plans and compares every table.
    pub async fn verify_all(
        &mut self,
        filter: &Filter,
        routes: &Routes,
        columns: &ColumnRules,
    ) -> Result<Vec<TableOutcome>, PipelineError> {
        let mut out = Vec::new();
        for planned in self.plan(filter, routes, columns).await? {
            match planned {
                Ok(t) => {
                    let outcome = self.compare_table(&t).await?;
                    tracing::info!(
                        table = %outcome.table,
                        chunks = outcome.chunks,
                        rows = outcome.rows,
                        differences = outcome.differences.len(),
                        "verified"
                    );
                    out.push(outcome);
                }
                Err(refused) => out.push(refused),
            }
        }
        Ok(out)
    }
}
