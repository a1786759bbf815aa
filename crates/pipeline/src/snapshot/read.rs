//! Chunk readers: `snapshot.parallel` tasks, each with its own source
//! connection, taking tables from a shared queue and reading each table's
//! chunks in key order ([`super::feed`] says how each read is placed in the
//! stream).
//!
//! The chunk size starts at `snapshot.chunk_rows` and halves while one
//! read takes longer than [`READ_BUDGET`] (wide rows), down to 100 rows, so
//! the stream never waits long for one chunk. Memory is bounded: a reader
//! holds at most one chunk, and waits for Extract before reading the next.
//!
//! Tables come from the term's [`Copying`]: a DDL on a table whose copy is
//! pending puts it back there from its first chunk, and the reader that
//! takes it describes the table again (see [`super::copying`]). A reader
//! that finds no table waits while any copy is still pending, so such a
//! restart always finds one. A read that fails because the table changed
//! under it (the DDL has not reached Extract yet) releases the stream and
//! waits for that restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_binlog::snapshot::SnapshotReader;
use sluice_config::Pipeline;
use sluice_core::{ChangeKind, RowChange};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::copying::{Copying, Take};
use super::feed::{CopyChunk, FeedMsg};
use super::plan::{recopy_key, Prepared, TableCopy};
use crate::error::PipelineError;

/// Longest one chunk's read should take.
const READ_BUDGET: Duration = Duration::from_secs(1);
const MIN_CHUNK_ROWS: usize = 100;

/// Starts the readers on `plan`'s tables (queued in `copying`); the task
/// ends when every table of the term's copy is whole in the stream, or on
/// stop (then `Ok` without finishing).
pub fn spawn_readers(
    pipeline: &Pipeline,
    plan: &Prepared,
    copying: &Copying,
    tx: mpsc::Sender<FeedMsg>,
    stop: CancellationToken,
) -> JoinHandle<Result<(), PipelineError>> {
    copying.add(&plan.tables);
    let chunk_rows = usize::try_from(pipeline.snapshot.chunk_rows).unwrap_or(20_000);
    let parallel = usize::try_from(pipeline.snapshot.parallel)
        .unwrap_or(1)
        .min(plan.tables.len())
        .max(1);
    let pipeline = Arc::new(pipeline.clone());
    let copying = copying.clone();
    tokio::spawn(async move {
        let mut tasks: Vec<JoinHandle<Result<(), PipelineError>>> = Vec::new();
        for _ in 0..parallel {
            let ctx = Reader {
                pipeline: Arc::clone(&pipeline),
                copying: copying.clone(),
                chunk_rows,
                tx: tx.clone(),
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(ctx.run()));
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

/// How a streamed read of a keyless table ended.
enum Streamed {
    Done {
        parts: u64,
        rows: u64,
    },
    /// Extract is gone (the term stops).
    Closed,
    /// A DDL restarted the copy; the barrier is cancelled.
    Superseded,
    /// `sent`: a part is already in the stream.
    Failed {
        error: sluice_binlog::BinlogError,
        sent: bool,
    },
}

enum Failed {
    Retry,
    Changed,
    Other,
}

/// A chunk's (or part's) rows as the inserts Extract emits.
fn inserts(t: &TableCopy, rows: Vec<sluice_core::Row>) -> Vec<RowChange> {
    rows.into_iter()
        .map(|r| RowChange {
            table: Arc::clone(&t.source.schema),
            kind: ChangeKind::Insert,
            before: None,
            after: Some(r),
        })
        .collect()
}

/// One reader task.
struct Reader {
    pipeline: Arc<Pipeline>,
    copying: Copying,
    chunk_rows: usize,
    tx: mpsc::Sender<FeedMsg>,
    stop: CancellationToken,
}

impl Reader {
    async fn run(self) -> Result<(), PipelineError> {
        let source = &self.pipeline.source;
        let mut reader =
            SnapshotReader::connect(source.url().expose(), &source.tls, Duration::from_secs(10))
                .await?;
        loop {
            // Created before looking, so a restart queued in between wakes us.
            let changed = self.copying.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(take) = self.copying.next() {
                if !self.copy_table(&mut reader, take).await? {
                    return Ok(());
                }
                continue;
            }
            if self.copying.finished() {
                return Ok(());
            }
            // Tables still in flight may be restarted by a DDL.
            tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                () = changed => {}
            }
        }
    }

    /// Holds Extract and learns the position of a read: the barrier id.
    async fn hold(&self) -> Option<u64> {
        let id = self.copying.read_id();
        let (ack, acked) = oneshot::channel();
        if self.tx.send(FeedMsg::Hold { id, ack }).await.is_err() || acked.await.is_err() {
            return None;
        }
        Some(id)
    }

    /// Reads one table chunk by chunk; `Ok(false)` when stopped.
    async fn copy_table(
        &self,
        reader: &mut SnapshotReader,
        take: Take,
    ) -> Result<bool, PipelineError> {
        let Take {
            copy: mut t,
            generation,
            restarted,
        } = take;
        let name = t.source.schema.qualified_name();
        if restarted {
            // The definition changed: plan the columns (and key) again.
            let (schema, table) = (
                t.source.schema.schema.clone(),
                t.source.schema.table.clone(),
            );
            match reader.describe(&schema, &table).await {
                Ok(now) => {
                    let now = Arc::new(now);
                    if t.recopy.is_some() {
                        t.recopy = Some(recopy_key(&self.pipeline, &now));
                    }
                    t.source = now;
                }
                Err(e) => {
                    let known = reader.tables().await?;
                    if known.contains(&(schema, table)) {
                        return Err(e.into());
                    }
                    // Dropped or renamed away: nothing left to copy.
                    tracing::warn!(table = %name, "snapshot: the table is gone from the source after a DDL; its copy ends here");
                    return self.gone(reader, &t, generation).await;
                }
            }
            tracing::info!(table = %name, columns = t.source.schema.columns.len(), "snapshot: copying the table again from its first chunk after a DDL on it");
        }
        if t.source.key.is_empty() {
            return self.copy_whole(reader, &t, generation, restarted).await;
        }
        let mut after = t.after.clone();
        let mut limit = self.chunk_rows;
        let recopy_key = t.recopy.clone();
        let mut first = true;
        loop {
            if !self.copying.is_current(&name, generation) {
                // A DDL restarted this copy; the restart is queued.
                tracing::debug!(table = %name, "snapshot: copy superseded by a restart");
                return Ok(true);
            }
            let Some(id) = self.hold().await else {
                return Ok(false);
            };
            let started = Instant::now();
            let read = tokio::select! {
                () = self.stop.cancelled() => return Ok(false),
                r = reader.read_chunk(&t.source, after.as_deref(), limit) => r,
            };
            let read = match read {
                Ok(read) => read,
                Err(e) => {
                    // Let the stream go on before anything else.
                    if self.tx.send(FeedMsg::Cancel { id }).await.is_err() {
                        return Ok(false);
                    }
                    match self.after_failure(reader, &t, &e).await {
                        Failed::Retry => {
                            tracing::info!(table = %name, error = %e, "snapshot: the table was rebuilt under the read view; reading the chunk again");
                            continue;
                        }
                        Failed::Changed => {
                            // The DDL that changed it is on its way to
                            // Extract, which restarts this copy when it passes.
                            tracing::info!(table = %name, error = %e, "snapshot: the table changed while being read; waiting for its DDL to reach the stream");
                            return self.await_restart(&name, generation).await;
                        }
                        Failed::Other => return Err(e.into()),
                    }
                }
            };
            let elapsed = started.elapsed();
            if self
                .tx
                .send(FeedMsg::At {
                    id,
                    at: read.at.clone(),
                })
                .await
                .is_err()
            {
                return Ok(false);
            }
            let complete = read.rows.len() < limit;
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
            let rows = inserts(&t, read.rows);
            let n = rows.len();
            let chunk = CopyChunk {
                table: name.clone(),
                target: t.target.clone(),
                rows,
                last_key,
                clear: false,
                complete,
                more: false,
                range,
                generation,
                restart: restarted && first,
            };
            if self.tx.send(FeedMsg::Rows { id, chunk }).await.is_err() {
                return Ok(false);
            }
            first = false;
            tracing::debug!(table = %name, rows = n, at = %read.at, ms = elapsed.as_millis() as u64, "snapshot: chunk read");
            if complete {
                return Ok(true);
            }
            if elapsed > READ_BUDGET {
                limit = (limit / 2).max(MIN_CHUNK_ROWS);
            }
            after = read.last_key;
        }
    }

    /// Copies a table without a key: one read, streamed in parts at one
    /// position. `Ok(false)` when stopped.
    async fn copy_whole(
        &self,
        reader: &mut SnapshotReader,
        t: &TableCopy,
        generation: u64,
        restarted: bool,
    ) -> Result<bool, PipelineError> {
        let name = t.source.schema.qualified_name();
        loop {
            if !self.copying.is_current(&name, generation) {
                tracing::debug!(table = %name, "snapshot: copy superseded by a restart");
                return Ok(true);
            }
            let Some(id) = self.hold().await else {
                return Ok(false);
            };
            let started = Instant::now();
            let streamed = tokio::select! {
                () = self.stop.cancelled() => return Ok(false),
                s = self.stream_whole(reader, t, id, generation, restarted) => s,
            };
            reader.end_read().await;
            match streamed {
                Streamed::Done { parts, rows } => {
                    tracing::info!(table = %name, parts, rows, ms = started.elapsed().as_millis() as u64, "snapshot: table without a key read in one snapshot, in parts");
                    return Ok(true);
                }
                Streamed::Closed => return Ok(false),
                Streamed::Superseded => {
                    tracing::debug!(table = %name, "snapshot: copy superseded by a restart during its read");
                    return Ok(true);
                }
                Streamed::Failed { error, sent: true } => return Err(error.into()),
                Streamed::Failed { error, sent: false } => {
                    // Nothing of it is in the stream: let the stream go on.
                    if self.tx.send(FeedMsg::Cancel { id }).await.is_err() {
                        return Ok(false);
                    }
                    match self.after_failure(reader, t, &error).await {
                        Failed::Retry => {
                            tracing::info!(table = %name, error = %error, "snapshot: the table was rebuilt under the read view; reading it again");
                        }
                        Failed::Changed => {
                            tracing::info!(table = %name, error = %error, "snapshot: the table changed while being read; waiting for its DDL to reach the stream");
                            return self.await_restart(&name, generation).await;
                        }
                        Failed::Other => return Err(error.into()),
                    }
                }
            }
        }
    }

    /// One streamed read of a keyless table under barrier `id`.
    async fn stream_whole(
        &self,
        reader: &mut SnapshotReader,
        t: &TableCopy,
        id: u64,
        generation: u64,
        restarted: bool,
    ) -> Streamed {
        let name = t.source.schema.qualified_name();
        let mut read = match reader.read_whole(&t.source).await {
            Ok(read) => read,
            Err(error) => return Streamed::Failed { error, sent: false },
        };
        if self
            .tx
            .send(FeedMsg::At {
                id,
                at: read.at.clone(),
            })
            .await
            .is_err()
        {
            return Streamed::Closed;
        }
        let limit = self.chunk_rows.max(1);
        let (mut parts, mut total) = (0u64, 0u64);
        loop {
            let part = match read.next_part(limit).await {
                Ok(part) => part,
                Err(error) => {
                    return Streamed::Failed {
                        error,
                        sent: parts > 0,
                    }
                }
            };
            if parts > 0 && !self.copying.is_current(&name, generation) {
                // Extract saw a DDL on the table before reaching this read,
                // so none of its parts were emitted: forget the barrier.
                if self.tx.send(FeedMsg::Cancel { id }).await.is_err() {
                    return Streamed::Closed;
                }
                return Streamed::Superseded;
            }
            // A full part may be the last one: then an empty one follows.
            let more = part.len() == limit;
            let n = part.len() as u64;
            let rows = inserts(t, part);
            let chunk = CopyChunk {
                table: name.clone(),
                target: t.target.clone(),
                rows,
                last_key: None,
                clear: parts == 0,
                complete: !more,
                more,
                range: None,
                generation,
                restart: restarted && parts == 0,
            };
            // Waits while Extract is busy: the backpressure that bounds memory.
            if self.tx.send(FeedMsg::Rows { id, chunk }).await.is_err() {
                return Streamed::Closed;
            }
            parts += 1;
            total += n;
            tracing::debug!(table = %name, part = parts, rows = n, at = %read.at, "snapshot: part of a table without a key read");
            if !more {
                return Streamed::Done { parts, rows: total };
            }
        }
    }

    /// What a failed read means: the server rebuilt the table under the
    /// read view (1412: read again in a new one), the table's columns or
    /// key differ from the plan or it is gone (a DDL the stream has not
    /// passed yet), or anything else (the error stands).
    async fn after_failure(
        &self,
        reader: &mut SnapshotReader,
        t: &TableCopy,
        e: &sluice_binlog::BinlogError,
    ) -> Failed {
        const TABLE_DEF_CHANGED: u16 = 1412;
        if e.server_code() == Some(TABLE_DEF_CHANGED) {
            return Failed::Retry;
        }
        let s = &t.source.schema;
        let changed = match reader.describe(&s.schema, &s.table).await {
            Ok(now) => {
                now.column_types != t.source.column_types
                    || now.key != t.source.key
                    || now
                        .schema
                        .columns
                        .iter()
                        .map(|c| &c.name)
                        .ne(s.columns.iter().map(|c| &c.name))
            }
            Err(_) => reader
                .tables()
                .await
                .is_ok_and(|known| !known.contains(&(s.schema.clone(), s.table.clone()))),
        };
        if changed {
            Failed::Changed
        } else {
            Failed::Other
        }
    }

    /// Waits until Extract restarted this copy (or the term stops).
    async fn await_restart(&self, name: &str, generation: u64) -> Result<bool, PipelineError> {
        loop {
            let changed = self.copying.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.copying.is_current(name, generation) {
                return Ok(true);
            }
            tokio::select! {
                () = self.stop.cancelled() => return Ok(false),
                () = changed => {}
            }
        }
    }

    /// A table dropped from the source during its copy: one empty, final
    /// chunk, so its progress row ends `done` in stream order.
    async fn gone(
        &self,
        reader: &mut SnapshotReader,
        t: &TableCopy,
        generation: u64,
    ) -> Result<bool, PipelineError> {
        let Some(id) = self.hold().await else {
            return Ok(false);
        };
        // Every event Extract took is committed: at or before the end.
        let at = match reader.binlog_end().await {
            Ok(at) => at,
            Err(e) => {
                let _ = self.tx.send(FeedMsg::Cancel { id }).await;
                return Err(e.into());
            }
        };
        let chunk = CopyChunk {
            table: t.source.schema.qualified_name(),
            target: t.target.clone(),
            rows: Vec::new(),
            last_key: None,
            clear: false,
            complete: true,
            more: false,
            range: None,
            generation,
            restart: true,
        };
        if self.tx.send(FeedMsg::At { id, at }).await.is_err()
            || self.tx.send(FeedMsg::Rows { id, chunk }).await.is_err()
        {
            return Ok(false);
        }
        Ok(true)
    }
}
