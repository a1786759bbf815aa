//! Re-copy while streaming (`sluice snapshot --table db.t`): the active
//! node's desk hands the request to the running term ([`RecopyOrder`]),
//! which checks it, records the tables as `recopy` progress rows on the
//! target (under the term fence) and starts chunk readers on the same feed
//! Extract already holds — so every chunk lands exactly at its position P
//! as in the initial snapshot ([`super`]), and streaming waits at most one
//! chunk's read.
//!
//! # Why the target ends equal to the source
//!
//! The target may hold rows the source does not (or other values), so a
//! re-copied chunk does not merely upsert: right before its rows, Load
//! deletes the target rows in the chunk's key range — after the previous
//! chunk's last key (open before the first chunk) through this chunk's last
//! key (open after the last one) — and then inserts the source's rows of
//! that range as of P. After P the range equals the source at P, and every
//! later change is applied on top, in order. A table without a key is
//! re-copied whole at one P (streamed in parts, see [`super::feed`]) with
//! the target table cleared first.
//!
//! # Refusals (one message each)
//!
//! A table the source does not have, one the filter does not include, a
//! snapshot (initial or re-copy) still running, a MySQL source (no exact
//! snapshot position), and a term with distributed `stages:` (its
//! snapshot task takes no orders: the desk finds no term to hand the order
//! to).
//!
//! # Failover
//!
//! The progress rows say `recopy` until each table is done; a new leader's
//! [`super::prepare`] continues them after their last recorded key, ranges
//! included, whatever `snapshot.mode` is.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_binlog::snapshot::SnapshotReader;
use sluice_config::Pipeline;
use sluice_load::snapshot::TableCheck;
use sluice_load::Loader;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::feed::FeedMsg;
use super::plan::{expected_columns, recopy_key, routed_create, Prepared, TableCopy};
use crate::error::PipelineError;
use crate::status::NodeStatus;

/// Copy `tables` (`schema.table`) again; the reply is what happened, or
/// why not (one line).
#[derive(Debug)]
pub struct RecopyOrder {
    pub tables: Vec<String>,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// Where the running term takes re-copy orders (empty between terms and
/// in terms with distributed stages).
pub type RecopySlot = Arc<Mutex<Option<mpsc::Sender<RecopyOrder>>>>;

/// What the term's snapshot task works with.
pub struct Context {
    pub pipeline: Pipeline,
    pub loader: Arc<Loader>,
    pub status: NodeStatus,
    /// Extract's feed.
    pub feed: mpsc::Sender<FeedMsg>,
    /// The term's copies, shared with Extract's feed.
    pub copying: super::Copying,
    pub stop: CancellationToken,
}

/// The term's snapshot stage: runs the initial snapshot's readers (if
/// any), then takes re-copy orders until the term stops. One copy runs at a
/// time.
pub async fn run(
    ctx: Context,
    initial: Option<JoinHandle<Result<(), PipelineError>>>,
    mut orders: mpsc::Receiver<RecopyOrder>,
) -> Result<(), PipelineError> {
    let mut running = initial;
    let mut desk = true;
    loop {
        // Planning awaits outside `select!` (its futures are not `Send`
        // through the macro's higher-ranked borrows).
        let order = tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            done = finished(&mut running), if running.is_some() => {
                running = None;
                joined(done)?;
                if !desk {
                    return Ok(());
                }
                continue;
            }
            order = orders.recv(), if desk => order,
        };
        let Some(order) = order else {
            // No desk (no etcd): finish what runs, then end.
            desk = false;
            if running.is_none() {
                return Ok(());
            }
            continue;
        };
        let answer = if running.is_some() {
            Err("a snapshot is already running (`sluice status` shows its progress)".to_string())
        } else {
            match plan(&ctx.pipeline, &ctx.loader, &order.tables).await {
                Ok(plan) => {
                    super::announce(&ctx.status, &plan, ctx.pipeline.snapshot.chunk_rows);
                    running = Some(super::spawn_readers(
                        &ctx.pipeline,
                        &plan,
                        &ctx.copying,
                        ctx.feed.clone(),
                        ctx.stop.clone(),
                    ));
                    Ok(format!(
                        "re-copying {} while streaming (`sluice status` shows the progress)",
                        order.tables.join(", ")
                    ))
                }
                Err(why) => Err(why),
            }
        };
        let _ = order.reply.send(answer);
    }
}

fn joined(
    done: Result<Result<(), PipelineError>, tokio::task::JoinError>,
) -> Result<(), PipelineError> {
    match done {
        Ok(r) => r,
        Err(join) => Err(PipelineError::Stage {
            stage: "snapshot",
            message: join.to_string(),
        }),
    }
}

async fn finished(
    running: &mut Option<JoinHandle<Result<(), PipelineError>>>,
) -> Result<Result<(), PipelineError>, tokio::task::JoinError> {
    match running {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the order and records the re-copy; `Err`: the refusal.
async fn plan(pipeline: &Pipeline, loader: &Loader, names: &[String]) -> Result<Prepared, String> {
    if names.is_empty() {
        return Err("name at least one table (`--table db.t`)".into());
    }
    let progress = loader
        .snapshot_progress(&pipeline.name)
        .await
        .map_err(|e| format!("reading the snapshot progress: {e}"))?;
    if let Some(p) = progress.iter().find(|p| !p.done) {
        return Err(format!(
            "a snapshot is already running (`{}` is not copied yet)",
            p.table
        ));
    }
    let url = pipeline.source.url().expose().to_string();
    let mut reader = SnapshotReader::connect(&url, &pipeline.source.tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let known: HashSet<(String, String)> = reader
        .tables()
        .await
        .map_err(|e| format!("listing the source's tables: {e}"))?
        .into_iter()
        .collect();
    let mut tables = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        let Some((schema, table)) = name.split_once('.') else {
            return Err(format!("`{name}` is not `schema.table`"));
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        if !known.contains(&(schema.to_string(), table.to_string())) {
            return Err(format!(
                "unknown table `{name}`: the source has no such table"
            ));
        }
        if !pipeline.filter.includes(schema, table) {
            return Err(format!(
                "table `{name}` is not included by the pipeline's filter"
            ));
        }
        let source = Arc::new(
            reader
                .describe(schema, table)
                .await
                .map_err(|e| format!("describing `{name}`: {e}"))?,
        );
        let (s, t) = pipeline.routes.route(schema, table);
        let recopy = Some(recopy_key(pipeline, &source));
        tables.push(TableCopy {
            source,
            target: (s.to_string(), t.to_string()),
            after: None,
            recopy,
        });
    }
    // Target tables: a table newly added to the filter may be missing.
    for t in &tables {
        let expected = expected_columns(pipeline, &t.source);
        let target = format!("{}.{}", t.target.0, t.target.1);
        match loader
            .check_table(&t.target.0, &t.target.1, &expected)
            .await
            .map_err(|e| format!("checking `{target}`: {e}"))?
        {
            TableCheck::Missing if pipeline.snapshot.create_tables => {
                let sql = routed_create(&t.source.create_sql, &t.target.1);
                loader
                    .create_table(&t.target.0, &sql)
                    .await
                    .map_err(|e| format!("creating `{target}`: {e}"))?;
            }
            TableCheck::Missing => {
                return Err(format!(
                    "target table `{target}` does not exist and `snapshot.create_tables` is false"
                ))
            }
            TableCheck::Differs(diff) => {
                return Err(format!(
                    "target table `{target}` has other columns than the source's: {diff}"
                ))
            }
            TableCheck::Matches { .. } => {}
        }
    }
    let start = reader
        .binlog_end()
        .await
        .map_err(|e| format!("reading the source's binlog end: {e}"))?;
    let rows: Vec<(String, u64)> = tables
        .iter()
        .map(|t| (t.source.schema.qualified_name(), t.source.rows_estimate))
        .collect();
    loader
        .snapshot_recopy_begin(&pipeline.name, &start.to_string(), &rows)
        .await
        .map_err(|e| format!("recording the re-copy: {e}"))?;
    tracing::info!(tables = ?names, "snapshot: re-copying tables while streaming");
    let seeds = rows
        .into_iter()
        .map(|(table, estimate)| (table, 0, estimate, 0, false))
        .collect();
    Ok(Prepared {
        tables,
        start,
        dropping: HashSet::new(),
        seeds,
        rows_recopied: 0,
        continuing: false,
    })
}
