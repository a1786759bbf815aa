//! Chunk readers: `snapshot.parallel` tasks, each with its own source
//! connection, taking tables from a shared queue and reading each table's
//! chunks in key order ([`super::feed`] says how each read is placed in the
//! stream).
//!
//! The chunk size starts at `snapshot.chunk_rows` and halves while one
//! read takes longer than [`READ_BUDGET`] (wide rows), down to 100 rows, so
//! the stream never waits long for one chunk. Memory is bounded: a reader
//! holds at most one chunk, and waits for Extract before reading the next.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_binlog::snapshot::SnapshotReader;
use sluice_config::Pipeline;
use sluice_core::{ChangeKind, RowChange};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::feed::{CopyChunk, FeedMsg};
use super::plan::{Prepared, TableCopy};
use crate::error::PipelineError;

/// Longest one chunk's read should take.
const READ_BUDGET: Duration = Duration::from_secs(1);
const MIN_CHUNK_ROWS: usize = 100;

/// Starts the readers; the task ends when every table is read (or on stop:
/// then `Ok` without finishing).
pub fn spawn_readers(
    pipeline: &Pipeline,
    plan: &Prepared,
    tx: mpsc::Sender<FeedMsg>,
    stop: CancellationToken,
) -> JoinHandle<Result<(), PipelineError>> {
    let queue: Arc<Mutex<VecDeque<TableCopy>>> =
        Arc::new(Mutex::new(plan.tables.iter().cloned().collect()));
    let url = pipeline.source.url().expose().to_string();
    let tls = pipeline.source.tls.clone();
    let chunk_rows = usize::try_from(pipeline.snapshot.chunk_rows).unwrap_or(20_000);
    let parallel = usize::try_from(pipeline.snapshot.parallel)
        .unwrap_or(1)
        .min(plan.tables.len())
        .max(1);
    let ids = Arc::new(AtomicU64::new(1));
    tokio::spawn(async move {
        let mut tasks: Vec<JoinHandle<Result<(), PipelineError>>> = Vec::new();
        for _ in 0..parallel {
            let (queue, url, tls, tx, stop, ids) = (
                Arc::clone(&queue),
                url.clone(),
                tls.clone(),
                tx.clone(),
                stop.clone(),
                Arc::clone(&ids),
            );
            tasks.push(tokio::spawn(async move {
                let mut reader =
                    SnapshotReader::connect(&url, &tls, Duration::from_secs(10)).await?;
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(table) = next else {
                        return Ok(());
                    };
                    if !copy_table(&mut reader, table, chunk_rows, &tx, &stop, &ids).await? {
                        return Ok(());
                    }
                }
            }));
        }
        drop(tx);
        for t in tasks {
            match t.await {
                Ok(r) => r?,
                Err(join) => {
                    return Err(PipelineError::Stage {
                        stage: "snapshot",
                        message: join.to_string(),
                    })
                }
            }
        }
        tracing::info!("snapshot: every table read");
        Ok(())
    })
}

/// Reads one table chunk by chunk; `Ok(false)` when stopped.
async fn copy_table(
    reader: &mut SnapshotReader,
    t: TableCopy,
    chunk_rows: usize,
    tx: &mpsc::Sender<FeedMsg>,
    stop: &CancellationToken,
    ids: &AtomicU64,
) -> Result<bool, PipelineError> {
    let mut after = t.after.clone();
    let mut limit = chunk_rows;
    let keyless = t.source.key.is_empty();
    let recopy_key = t.recopy.clone().filter(|_| !keyless);
    loop {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let (ack, acked) = oneshot::channel();
        if tx.send(FeedMsg::Hold { id, ack }).await.is_err() || acked.await.is_err() {
            return Ok(false);
        }
        let started = Instant::now();
        let read = tokio::select! {
            () = stop.cancelled() => return Ok(false),
            r = reader.read_chunk(&t.source, after.as_deref(), limit) => r?,
        };
        let elapsed = started.elapsed();
        if tx
            .send(FeedMsg::At {
                id,
                at: read.at.clone(),
            })
            .await
            .is_err()
        {
            return Ok(false);
        }
        let complete = keyless || read.rows.len() < limit;
        // A re-copy replaces the chunk's whole key range: from after the
        // previous chunk (open before the first) through this chunk's last
        // key (open after the last chunk).
        let range = recopy_key.as_ref().map(|columns| super::feed::KeyRange {
            columns: columns.clone(),
            after: after.clone(),
            through: if complete {
                None
            } else {
                read.last_key.clone()
            },
        });
        let last_key = read
            .last_key
            .as_ref()
            .and_then(|k| serde_json::to_string(k).ok());
        let rows: Vec<RowChange> = read
            .rows
            .into_iter()
            .map(|r| RowChange {
                table: Arc::clone(&t.source.schema),
                kind: ChangeKind::Insert,
                before: None,
                after: Some(r),
            })
            .collect();
        let n = rows.len();
        let chunk = CopyChunk {
            table: t.source.schema.qualified_name(),
            target: t.target.clone(),
            rows,
            last_key,
            clear: keyless,
            complete,
            range,
        };
        if tx.send(FeedMsg::Rows { id, chunk }).await.is_err() {
            return Ok(false);
        }
        tracing::debug!(table = %t.source.schema.qualified_name(), rows = n, at = %read.at, ms = elapsed.as_millis() as u64, "snapshot: chunk read");
        if complete {
            return Ok(true);
        }
        if elapsed > READ_BUDGET {
            limit = (limit / 2).max(MIN_CHUNK_ROWS);
        }
        after = read.last_key;
    }
}
