//! Initial snapshot: copy every included table, chunk by chunk, without a
//! lock, and hand each chunk into the batch stream exactly at its binlog
//! position.
//!
//! # The rule (why the target ends equal to the source)
//!
//! Streaming starts at the source's binlog end read *before* the first
//! chunk ([`prepare`]). Each chunk is read in its own consistent snapshot
//! whose exact binlog position P is known (MariaDB's
//! `binlog_snapshot_file/position`, [`sluice_binlog::snapshot`]). Extract
//! emits the chunk as batches exactly at P in the stream ([`feed`]): after
//! every transaction that ends at or before P, before any later one. So
//! for the chunk's key range the target receives exactly the source's
//! state at P, and every later change is applied on top, in order.
//!
//! * **Keyed tables** need no skipping at all. Before its chunk, a key's
//!   stream changes upsert full after images or delete by key, so the
//!   target holds, for every key, either nothing or the source's current
//!   row (target ⊆ source at every stream point); the chunk, applied at P,
//!   upserts every row the source had at P, so the range then equals the
//!   source at P.
//! * **Tables without a usable key** are read whole in one consistent
//!   snapshot at P. While their copy is pending their stream rows are
//!   dropped; at P the target table is cleared and every row inserted —
//!   exactly once, because the copy is repeated whole (with the clear) if
//!   it was interrupted. The read is streamed: its rows reach Extract in
//!   parts of at most `chunk_rows` ([`feed`]), all at P; Extract holds the
//!   stream at P until the last part is in and emits each part as its own
//!   batches in order, only the very first with the clear. Load commits
//!   batches strictly in batch-id order (in process one at a time, or
//!   plain chunk batches queued back to back as one combined apply, never
//!   with the clearing batch; with distributed stages loads are claimed in
//!   `batch_id` order), so the clear precedes every part's inserts. Each
//!   part is recorded as it commits, the table `done` only after the last,
//!   so a failover mid-table copies it again whole, clear first. Memory is
//!   bounded by the feed channel (a reader waits to send its next part)
//!   and the batch channels behind it.
//!
//! # Resuming (fenced)
//!
//! Progress lives on the target in `sluice_meta.snapshot_progress`
//! (migration 0005), written under the pipeline's term fence: the tables
//! and the start position before streaming starts, and after each chunk's
//! batches are committed, its last key. A new leader continues each
//! unfinished table after its last recorded key (a chunk re-read is exact:
//! the stream has been applied continuously since before it); the chunk
//! that was in flight is counted in `rows_recopied`. Nothing stored yet but
//! progress rows present (a crash before the first position was stored):
//! streaming starts at the recorded start position.
//!
//! # DDL on a table while it is copied
//!
//! A table's copy never mixes two schemas. When Extract passes a DDL
//! statement naming a table whose copy is not yet whole in the stream (any
//! statement `crate::ddl` routes that names it: `ALTER TABLE`, `CREATE/DROP
//! INDEX`, `TRUNCATE`, `RENAME`, `DROP`), that table's copy restarts from
//! its first chunk with its columns and key described again from the source
//! ([`copying`]): the chunks already in the stream lie before the DDL and
//! stay as they are (the DDL is applied on the target after them), the
//! chunks read after the DDL with the old plan are dropped, and the new
//! copy's chunks, read after the DDL committed, land after it — after it is
//! applied on the target. Keyed and keyless tables alike. Load resets the
//! table's progress row when the restarted copy's first chunk commits
//! (`rows_copied` moves into `rows_recopied`, the last key is forgotten), so
//! a failover before that continues after the last key of the old copy
//! (exact: those chunks are before the DDL) and one after it continues the
//! new copy. The restart is logged, counted per table in `/status`
//! (`restarts`) and sent as a `snapshot_restarted` event. A read that fails
//! because the table changed under it (a dropped column) before the DDL
//! reached Extract lets the stream go on and waits for that restart.
//!
//! # Distributed stages
//!
//! With `stages:`, the active node's readers and Extract work as above and
//! each chunk batch is published on the task board like any batch, its
//! [`CopyMark`] inside its pipe frame ([`crate::pipe`]); whichever node
//! loads it does what the in-process Load does around it (progress rows
//! under the epoch's term fence, a keyless table cleared first, a re-copied
//! range deleted, a restarted copy's progress reset), alone rather than
//! merged with neighbouring batches. The scheduler shows each chunk in the
//! active node's status when it acknowledges the batch.
//!
//! # Re-copy while streaming
//!
//! `sluice snapshot --table` runs the same readers and hand-off on a
//! running term, with each keyed chunk replacing its key range on the
//! target ([`recopy`]); in-process stages only.
//!
//! # Limits (refused or documented)
//!
//! MariaDB sources only (MySQL has no snapshot position: refused when the
//! pipeline starts); a table without a key keeps its read view open (and
//! the stream waiting at its position) for its whole copy, which holds back
//! purge on the source and makes a DDL on it wait for the copy's end (the
//! read holds its metadata lock), and its `rows_copied` counts the parts of
//! an interrupted copy again when the copy is repeated; a
//! table dropped or renamed away during its copy ends its copy there (a
//! table renamed *into* the filter is not copied: re-copy it with `sluice
//! snapshot --table`); a restart waits for Extract to pass the DDL, so a
//! definition change the DDL parser does not name the table in would leave
//! a reader whose read failed waiting; the progress counters
//! (`rows_copied`, `chunks_done`) are at least once where a chunk's record
//! is written again (a transient error after its commit, or a chunk loaded
//! again by another stage node after its loader vanished), the data exactly
//! once; an idle source whose binlog rotated right before a chunk's read
//! holds that chunk until the next transaction.

pub mod copying;
pub mod feed;
mod plan;
mod read;
pub mod recopy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::progress_snapshot::Progress;
pub use copying::Copying;
pub use feed::{CopyChunk, CopyMark, Feed, FeedMsg, KeyRange};
pub use plan::{prepare, Prepared};
pub use read::spawn_readers;

/// Publishes a term's snapshot in the node's status and emits
/// `snapshot_started`.
pub fn announce(status: &crate::status::NodeStatus, plan: &Prepared, chunk_rows: u64) {
    status
        .snapshot()
        .begin(plan.seeds.clone(), plan.rows_recopied, chunk_rows);
    for (table, ..) in &plan.seeds {
        metrics::counter!("sluice_snapshot_rows_total", "table" => table.clone()).increment(0);
    }
    let verb = if plan.continuing {
        "continued"
    } else {
        "started"
    };
    status.events().emit(
        crate::events::EventKind::SnapshotStarted,
        crate::events::EventState::Event,
        format!(
            "snapshot {verb}: {} tables left to copy; streaming from {}",
            plan.tables.len(),
            plan.start
        ),
        crate::events::details([
            ("tables", serde_json::json!(plan.tables.len())),
            ("start", serde_json::json!(plan.start.to_string())),
            ("continuing", serde_json::json!(plan.continuing)),
        ]),
    );
}

/// Which batches are chunks (by batch id), shared by Extract and Load.
#[derive(Debug, Clone, Default)]
pub struct Marks(Arc<Mutex<HashMap<u64, CopyMark>>>);

impl Marks {
    pub fn insert(&self, batch_id: u64, mark: CopyMark) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(batch_id, mark);
    }

    pub fn get(&self, batch_id: u64) -> Option<CopyMark> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&batch_id)
            .cloned()
    }

    pub fn remove(&self, batch_id: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&batch_id);
    }
}

/// What Extract holds of a snapshot.
#[derive(Clone)]
pub struct ExtractSide {
    feed: Arc<Mutex<Option<Feed>>>,
    pub marks: Marks,
    /// Most rows of one chunk batch ([`COPY_BATCH_ROWS`]).
    pub max_rows: usize,
    /// Most bytes of one chunk batch (`batch.max_bytes`).
    pub max_bytes: usize,
}

/// Rows per chunk batch, at least (when `batch.max_rows` is smaller). A
/// chunk is read whole before it is emitted, so cutting it at
/// `batch.max_rows` (2,000) bounded no memory; it only multiplied the
/// chunk's batches, each applied alone between its two progress writes on
/// the target (three target transactions per 2,000 rows; Load now also
/// applies queued chunk batches together, see `crate::load`). Measured on the
/// 4 × 500k-row benchmark: 2,000 rows 24.6 s (133 MiB peak), 5,000 19.1 s
/// (168 MiB), 10,000 13.1 s (195 MiB), 20,000 17.7 s (236 MiB) — one run
/// each on a drifting machine. The bytes bound (`batch.max_bytes`) holds.
pub const COPY_BATCH_ROWS: usize = 10_000;

impl std::fmt::Debug for ExtractSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractSide").finish_non_exhaustive()
    }
}

impl ExtractSide {
    /// `max_rows`, `max_bytes`: the pipeline's `batch` bounds; chunk
    /// batches take at least [`COPY_BATCH_ROWS`] rows.
    pub fn new(feed: Feed, marks: Marks, max_rows: usize, max_bytes: usize) -> Self {
        ExtractSide {
            feed: Arc::new(Mutex::new(Some(feed))),
            marks,
            max_rows: max_rows.max(COPY_BATCH_ROWS),
            max_bytes: max_bytes.max(1),
        }
    }

    /// The feed, once (Extract takes it when it starts).
    pub fn take_feed(&self) -> Option<Feed> {
        self.feed.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
