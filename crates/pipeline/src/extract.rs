//! Extract: decode rows, apply the table filter, cut batches.
//!
//! Table schemas come from the binlog itself: with
//! `binlog_row_metadata=FULL` every TABLE_MAP carries column names, the
//! primary key, signedness, charsets and ENUM/SET labels *as of that
//! event*, so a schema is never read from `information_schema` (which
//! describes the table as it is now, not as it was when a lagging event was
//! written — the problem Canal's table-meta history exists for). A table map
//! without names is refused rather than guessed.
//!
//! # Batches
//!
//! Batch ids are assigned here, next to Select (they always run on the same
//! node), because only decoded rows give the exact row and byte counts that
//! bound a batch. A batch is cut
//! * at a transaction end once it holds `max_rows` rows or `max_bytes`
//!   bytes, or its first change waited `max_delay`;
//! * inside a transaction once it holds `max_rows` or `max_bytes` (a large
//!   transaction is split; such a batch acknowledges only the position
//!   before the transaction, so a restart replays the whole transaction —
//!   safe, because Load is idempotent);
//! * before and after every DDL statement, which is a batch of its own, so
//!   Load applies it after every earlier change and before any later one.
//!
//! After [`SelectMsg::Restart`] the rows of the unfinished transaction are
//! dropped: Select sends that transaction again from its start.
//!
//! Batches split a transaction only *between* rows events, and each records
//! the position after its last event (`through`). When the last checkpointed
//! batch ended inside a transaction, a restart resumes at that
//! transaction's start and skips its rows events up to `through`, so rows
//! of tables without a key are not applied twice.

use std::sync::Arc;
use std::time::Duration;

use sluice_binlog::error::At;
use sluice_binlog::BinlogError;
use sluice_config::Filter;
use sluice_core::{Position, RowChange, TableSchema};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batch::{is_before, Batch, BatchBody, SelectMsg, Selected, TxnChunk};
use crate::channel::{Receiver, Sender};
use crate::error::PipelineError;
use crate::table_cache::TableCache;

#[derive(Debug, Clone)]
pub struct ExtractConfig {
    pub filter: Filter,
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
    /// Id of the first batch cut.
    pub first_batch_id: u64,
    /// Id of the last batch cut, for progress reports.
    pub cut: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Where the stream starts (the first batch's `start`).
    pub start: Position,
    /// Rows events ending at or before this position are already applied
    /// (the last checkpointed batch ended inside the transaction the stream
    /// resumes at): they are skipped.
    pub skip_through: Option<Position>,
    /// Id of the last batch Load finished. When it has finished every batch
    /// cut so far, Load is idle and waiting for `max_delay` would only add
    /// latency: the batch is cut at the next transaction end. Batches grow
    /// only while Load is busy.
    pub acknowledged: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Replaying a halted range under an operator's resolution
    /// ([`crate::control`]): until this position, cut at every transaction
    /// end, and cut exactly here, so that no batch mixes transactions of the
    /// range or crosses its end.
    pub isolate: Option<Position>,
    /// A snapshot in progress: chunks to hand into the stream at their
    /// positions ([`crate::snapshot`]).
    pub snapshot: Option<crate::snapshot::ExtractSide>,
}

struct Pending {
    start: Position,
    /// End of the last whole transaction seen.
    end: Position,
    through: Position,
    changes: Vec<RowChange>,
    /// `changes.len()` at the last transaction end.
    committed_len: usize,
    bytes: usize,
    committed_bytes: usize,
    timestamp: u32,
    /// When the oldest uncut content arrived.
    since: Option<Instant>,
    /// Inside a transaction (a slice without an end was added last).
    open: bool,
}

/// The table filter's verdict per table map: matching builds the
/// qualified name and runs the patterns, too much for every rows event.
#[derive(Default)]
struct Included {
    cache: TableCache<bool>,
}

impl Included {
    fn includes(&mut self, filter: &Filter, table: &Arc<TableSchema>) -> bool {
        *self
            .cache
            .get_or_insert(table, |t| filter.includes(&t.schema, &t.table))
    }
}

impl Pending {
    fn new(start: Position) -> Self {
        Pending {
            end: start.clone(),
            through: start.clone(),
            start,
            changes: Vec::new(),
            committed_len: 0,
            bytes: 0,
            committed_bytes: 0,
            timestamp: 0,
            since: None,
            open: false,
        }
    }

    /// Something to cut: rows, or a position that moved.
    fn has_content(&self) -> bool {
        self.since.is_some()
    }
}

pub async fn run(
    cfg: ExtractConfig,
    mut rx: Receiver<SelectMsg>,
    tx: Sender<Batch>,
    stop: CancellationToken,
) -> Result<(), PipelineError> {
    let mut next_id = cfg.first_batch_id;
    let mut pending = Pending::new(cfg.start.clone());
    let mut skip = cfg.skip_through.clone();
    let mut included = Included::default();
    let snap = cfg.snapshot.clone();
    let mut feed = snap.as_ref().and_then(|s| s.take_feed());
    // A transaction that must wait until a chunk before it has its rows.
    let mut deferred: Option<TxnChunk> = None;
    loop {
        cfg.cut.store(
            next_id.saturating_sub(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        // At a transaction end with something pending, wait only for what is
        // left of `max_delay`.
        let deadline = match (&pending.since, pending.open) {
            (Some(since), false) => Some(*since + cfg.max_delay),
            _ => None,
        };
        let stream_open = deferred.is_none() && feed.as_ref().is_none_or(|f| f.stream_open());
        // A streamed part waiting for its position: move the stream first.
        let feed_ready = !(stream_open && feed.as_ref().is_some_and(|f| f.buffered()));
        let msg = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            Some(fmsg) = async { match feed.as_mut() { Some(f) => f.recv().await, None => std::future::pending().await } }, if feed_ready => {
                let (Some(f), Some(side)) = (feed.as_mut(), snap.as_ref()) else { continue };
                f.take(fmsg);
                if !pending.open {
                    let due = f.due(&pending.end.clone(), false);
                    emit_copies(side, f, due, &mut pending, &mut next_id, &tx, &stop).await?;
                }
                if let Some(chunk) = deferred.take() {
                    let first = first_position(&chunk);
                    if let Some(first) = &first {
                        // What lies before it, parts of a streamed read too.
                        let due = f.due(first, true);
                        emit_copies(side, f, due, &mut pending, &mut next_id, &tx, &stop).await?;
                    }
                    match first {
                        Some(first) if f.blocks(&first) => deferred = Some(chunk),
                        _ => {
                            let ddl = ddl_tables(&cfg, &chunk);
                            add_chunk(&cfg, chunk, &mut pending, &mut skip, &mut included, &mut next_id, &tx, &stop, Some(&f.dropping)).await?;
                            restart_copies(f, &ddl);
                            if !pending.open {
                                let due = f.due(&pending.end.clone(), false);
                                emit_copies(side, f, due, &mut pending, &mut next_id, &tx, &stop).await?;
                            }
                        }
                    }
                }
                continue;
            }
            () = sleep_until(deadline) => {
                cut(&mut pending, &mut next_id, &tx, &stop).await?;
                continue;
            }
            msg = rx.recv(), if stream_open => msg,
        };
        let Some(msg) = msg else {
            // Select ended (shutdown): pass on what is whole.
            pending.changes.truncate(pending.committed_len);
            pending.open = false;
            if pending.has_content() {
                cut(&mut pending, &mut next_id, &tx, &stop).await?;
            }
            return Ok(());
        };
        match msg.into_inner() {
            SelectMsg::Restart => {
                pending.changes.truncate(pending.committed_len);
                pending.bytes = pending.committed_bytes;
                pending.through = pending.end.clone();
                pending.open = false;
                if pending.changes.is_empty() && pending.end == pending.start {
                    pending.since = None;
                }
            }
            SelectMsg::Chunk(chunk) => {
                if let (Some(f), Some(side), false) = (feed.as_mut(), snap.as_ref(), pending.open) {
                    if let Some(first) = first_position(&chunk) {
                        // Before it: whole chunks, and the parts of a
                        // streamed read that has more to come.
                        let due = f.due(&first, true);
                        emit_copies(side, f, due, &mut pending, &mut next_id, &tx, &stop).await?;
                        if f.blocks(&first) {
                            deferred = Some(chunk);
                            continue;
                        }
                    }
                }
                let ddl = ddl_tables(&cfg, &chunk);
                add_chunk(
                    &cfg,
                    chunk,
                    &mut pending,
                    &mut skip,
                    &mut included,
                    &mut next_id,
                    &tx,
                    &stop,
                    feed.as_ref().map(|f| &f.dropping),
                )
                .await?;
                if let Some(f) = feed.as_mut() {
                    restart_copies(f, &ddl);
                }
                if let (Some(f), Some(side), false) = (feed.as_mut(), snap.as_ref(), pending.open) {
                    let due = f.due(&pending.end.clone(), false);
                    emit_copies(side, f, due, &mut pending, &mut next_id, &tx, &stop).await?;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A position X such that the message's transaction lies after a chunk
/// position P exactly when P < X: its first rows event (never equal to a
/// transaction boundary), else where it ends (a transaction ending at P is
/// before P).
fn first_position(chunk: &TxnChunk) -> Option<Position> {
    match chunk.items.first() {
        Some(Selected::Rows { file, offset, .. }) => Some(Position::new(file.to_string(), *offset)),
        _ => chunk.through.clone().or_else(|| chunk.end.clone()),
    }
}

/// The source tables the DDL statements of `chunk` name (none without a
/// snapshot feed, the common case, or without DDL).
fn ddl_tables(cfg: &ExtractConfig, chunk: &TxnChunk) -> Vec<(String, String)> {
    if cfg.snapshot.is_none() {
        return Vec::new();
    }
    let mut tables = Vec::new();
    for item in &chunk.items {
        if let Selected::Ddl(ddl) = item {
            // Source names do not depend on the routes.
            let routes = sluice_config::Routes::default();
            if let crate::ddl::DdlDecision::Apply(r) =
                crate::ddl::route_ddl(&ddl.schema, &ddl.sql, &cfg.filter, &routes)
            {
                tables.extend(r.source_tables);
            }
        }
    }
    tables
}

/// A DDL naming `tables` was just cut as a batch: the copies still pending
/// among them restart after it ([`crate::snapshot::copying`]), before any
/// chunk at or after its position is emitted.
fn restart_copies(feed: &mut crate::snapshot::Feed, tables: &[(String, String)]) {
    if tables.is_empty() {
        return;
    }
    for table in feed.copying.ddl(tables) {
        tracing::info!(%table, "snapshot: DDL on a table being copied; its copy restarts from the first chunk once the DDL is applied");
    }
}

/// Emits snapshot chunks as batches right here in the stream (after what
/// is pending, which is cut first), split at `side.max_rows` rows or
/// `side.max_bytes`; Load learns which
/// batches are chunks from `side.marks`.
async fn emit_copies(
    side: &crate::snapshot::ExtractSide,
    feed: &mut crate::snapshot::Feed,
    chunks: Vec<crate::snapshot::CopyChunk>,
    pending: &mut Pending,
    next_id: &mut u64,
    tx: &Sender<Batch>,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    if chunks.is_empty() {
        return Ok(());
    }
    if pending.has_content() {
        cut(pending, next_id, tx, stop).await?;
    }
    for chunk in chunks {
        let crate::snapshot::CopyChunk {
            table,
            target,
            mut rows,
            last_key,
            clear,
            complete,
            more,
            range,
            generation,
            restart,
        } = chunk;
        // A keyless table's stream rows are dropped until its whole copy
        // (every part of it: the first clears, later ones have `more` until
        // the last, which is complete).
        // A keyed chunk ends that too: a table given a key by a DDL during
        // its copy is copied again by key, and changes after each chunk must
        // apply; so does a table gone from the source (its last chunk is
        // empty and clears nothing), so a table created later streams.
        if complete || !(clear || more) {
            if let Some((s, t)) = table.split_once('.') {
                feed.dropping.remove(&(s.to_string(), t.to_string()));
            }
        }
        if complete {
            feed.copying.completed(&table, generation);
        }
        let mut first = true;
        loop {
            // At most `max_rows` rows and about `max_bytes` (at least one row).
            let mut cut_at = 0;
            let mut size = 0;
            while cut_at < rows.len().min(side.max_rows) && (cut_at == 0 || size < side.max_bytes) {
                size += rows[cut_at].size_hint();
                cut_at += 1;
            }
            let rest = rows.split_off(cut_at);
            let last = rest.is_empty();
            let part = std::mem::replace(&mut rows, rest);
            let bytes = size;
            side.marks.insert(
                *next_id,
                crate::snapshot::CopyMark {
                    table: table.clone(),
                    target: target.clone(),
                    last_key: if last { last_key.clone() } else { None },
                    clear: clear && first,
                    complete: complete && last,
                    rows: part.len() as u64,
                    chunk_end: last,
                    range: if first { range.clone() } else { None },
                    restart: restart && first,
                },
            );
            let batch = Batch {
                id: *next_id,
                start: pending.start.clone(),
                end: pending.start.clone(),
                through: pending.start.clone(),
                timestamp: u32::try_from(sluice_core::time::unix_secs()).unwrap_or(u32::MAX),
                body: BatchBody::Rows(part),
            };
            *next_id += 1;
            send(tx, batch, bytes, stop).await?;
            first = false;
            if last {
                break;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn add_chunk(
    cfg: &ExtractConfig,
    chunk: TxnChunk,
    pending: &mut Pending,
    skip: &mut Option<Position>,
    included: &mut Included,
    next_id: &mut u64,
    tx: &Sender<Batch>,
    stop: &CancellationToken,
    dropping: Option<&std::collections::HashSet<(String, String)>>,
) -> Result<(), PipelineError> {
    let TxnChunk {
        items,
        through,
        end,
        timestamp,
        urgent,
        ..
    } = chunk;
    pending.since.get_or_insert_with(Instant::now);
    for item in items {
        match item {
            Selected::Rows {
                event,
                file,
                offset,
                next,
            } => {
                // Built only when needed: this runs per rows event.
                let item_end = || Position::new(file.to_string(), next);
                if let Some(until) = skip.as_ref() {
                    if is_before(until, &item_end()) {
                        *skip = None;
                    } else {
                        continue;
                    }
                }
                let table = &event.table;
                if !included.includes(&cfg.filter, table) {
                    continue;
                }
                if dropping.is_some_and(|d| {
                    !d.is_empty() && d.contains(&(table.schema.clone(), table.table.clone()))
                }) {
                    // A keyless table whose copy is pending: the copy
                    // replaces the whole table at its position.
                    continue;
                }
                if !table.has_names {
                    return Err(PipelineError::Refused {
                        at: format!("{file}: offset {offset}"),
                        reason: format!(
                            "the table map of `{}` has no column names: set binlog_row_metadata=FULL on the source (sluice takes schemas from the binlog, never guesses them)",
                            table.qualified_name()
                        ),
                    });
                }
                let before = pending.changes.len();
                event.decode(&mut pending.changes).map_err(|source| {
                    PipelineError::Source(BinlogError::Row {
                        at: At {
                            file: file.to_string(),
                            offset,
                        },
                        source,
                    })
                })?;
                pending.bytes += pending.changes[before..]
                    .iter()
                    .map(RowChange::size_hint)
                    .sum::<usize>();
                pending.open = true;
                let isolate_here = cfg.isolate.as_ref().is_some_and(|i| {
                    crate::batch::cmp_positions(i, &item_end()) == Some(std::cmp::Ordering::Equal)
                });
                if pending.changes.len() >= cfg.max_rows
                    || pending.bytes >= cfg.max_bytes
                    || isolate_here
                {
                    // Split inside the transaction (between rows events):
                    // this batch acknowledges only the end of the last whole
                    // transaction, and ends exactly after this event.
                    pending.through = item_end();
                    pending.timestamp = timestamp;
                    cut(pending, next_id, tx, stop).await?;
                    pending.since = Some(Instant::now());
                    pending.open = true;
                }
            }
            Selected::Ddl(ddl) => {
                // DDL is a transaction of its own (servers commit an open
                // transaction before it): cut what came before it, then send
                // it alone. Rows of a transaction still open here would be
                // lost by either choice, so that is refused.
                if pending.open || pending.changes.len() != pending.committed_len {
                    return Err(PipelineError::Refused {
                        at: ddl.at.clone(),
                        reason:
                            "DDL inside an open transaction: the binlog is not what a server writes"
                                .into(),
                    });
                }
                if !pending.changes.is_empty() || pending.end != pending.start {
                    cut(pending, next_id, tx, stop).await?;
                }
                let (Some(end), Some(through)) = (end.clone(), through.clone()) else {
                    return Err(PipelineError::Stage {
                        stage: "extract",
                        message: format!("DDL at {} without an end position", ddl.at),
                    });
                };
                let batch = Batch {
                    id: *next_id,
                    start: pending.start.clone(),
                    end: end.clone(),
                    through,
                    timestamp,
                    body: BatchBody::Ddl(ddl),
                };
                *next_id += 1;
                send(tx, batch, 0, stop).await?;
                *pending = Pending::new(end);
                return Ok(());
            }
        }
    }
    if let Some(t) = through {
        pending.through = t;
    }
    pending.timestamp = timestamp;
    if let Some(end) = end {
        pending.end = end;
        pending.committed_len = pending.changes.len();
        pending.committed_bytes = pending.bytes;
        pending.open = false;
        let load_idle = !pending.changes.is_empty()
            && cfg
                .acknowledged
                .as_ref()
                .is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed) + 1 >= *next_id);
        let isolating = cfg
            .isolate
            .as_ref()
            .is_some_and(|i| is_before(&pending.start, i));
        let due = urgent
            || load_idle
            || isolating
            || pending.changes.len() >= cfg.max_rows
            || pending.bytes >= cfg.max_bytes
            || pending.since.is_some_and(|s| s.elapsed() >= cfg.max_delay);
        if due {
            cut(pending, next_id, tx, stop).await?;
        }
    }
    Ok(())
}

/// Sends the pending batch and starts the next one where it ended.
async fn cut(
    pending: &mut Pending,
    next_id: &mut u64,
    tx: &Sender<Batch>,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    let next = Pending::new(pending.end.clone());
    let done = std::mem::replace(pending, next);
    let bytes = done.bytes;
    metrics::counter!("sluice_batches_total", "stage" => "extract").increment(1);
    crate::status::count_rows("extract", &done.changes);
    let batch = Batch {
        id: *next_id,
        start: done.start,
        end: done.end,
        through: done.through,
        timestamp: done.timestamp,
        body: BatchBody::Rows(done.changes),
    };
    *next_id += 1;
    send(tx, batch, bytes, stop).await
}

async fn send(
    tx: &Sender<Batch>,
    batch: Batch,
    bytes: usize,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    tokio::select! {
        // Shutdown while Load is busy: the batch is dropped unacknowledged.
        () = stop.cancelled() => Ok(()),
        r = tx.send(batch, bytes) => {
            let _ = r;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::TablePattern;

    fn table(schema: &str, name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            schema: schema.into(),
            table: name.into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            has_names: true,
        })
    }

    /// The verdict is the filter's, decided once per table map and kept
    /// for that `Arc`; another map of the same table is judged again.
    #[test]
    fn filter_verdicts_are_cached_per_table_map() {
        let pattern = |p: &str| TablePattern::new(p).expect("pattern");
        let filter = Filter::new(vec![pattern("shop.*")], vec![pattern("shop.audit")]);
        let mut included = Included::default();
        let (orders, audit, other) = (
            table("shop", "orders"),
            table("shop", "audit"),
            table("crm", "users"),
        );
        for _ in 0..3 {
            assert!(included.includes(&filter, &orders));
            assert!(!included.includes(&filter, &audit));
            assert!(!included.includes(&filter, &other));
        }
        assert_eq!(included.cache.len(), 3);
        let orders_again = table("shop", "orders");
        assert!(included.includes(&filter, &orders_again));
        assert_eq!(included.cache.len(), 4);
        assert!(!included.includes(&filter, &table("mysql", "user")));
    }
}
