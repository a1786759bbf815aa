//! Comparing one table: chunk checksums at exact source positions, the
//! differing chunks narrowed to rows, the differing rows re-checked.
//!
//! The rule that keeps verify free of false alarms while the pipeline
//! replicates (invariant 9): every comparison reads the source inside a
//! consistent snapshot at an exact binlog position P, then waits until the
//! pipeline applied through P, then reads the target. The target may have
//! moved **past** P by then (later changes are applied too), so a
//! difference found that way is only a candidate: the candidates are read
//! again — on both sides, at a fresh snapshot — `rechecks` times, and only
//! what differs in every round is reported. A change in flight makes a row
//! differ in at most the rounds it races; a real difference (a row the
//! pipeline never wrote) differs in all of them.
//!
//! Keyless tables are compared as whole-table multisets of row hashes (one
//! "chunk"); a row that occurs more often on one side is missing or extra
//! that many times.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_core::verify::read::BytesRow;
use sluice_core::verify::{
    diff_keyed, diff_multiset, ChunkSum, DiffKind, Key, KeyRange, VerifyTable,
};

use sluice_binlog::verify::{SnapshotPosition, SourceVerifier};

use super::{Finding, TableOutcome, Verifier};
use crate::error::PipelineError;

/// The rows/s cap on source reads (`--rate`, `verify.rate`).
#[derive(Debug)]
pub struct Throttle {
    rate: Option<u64>,
    started: Instant,
    rows: u64,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Self {
        Throttle {
            rate: rate.filter(|r| *r > 0),
            started: Instant::now(),
            rows: 0,
        }
    }

    /// Counts `rows` read from the source and sleeps until the average
    /// since the start is back under the cap.
    pub async fn take(&mut self, rows: u64) {
        self.rows += rows;
        let Some(rate) = self.rate else { return };
        let due = Duration::from_secs_f64(self.rows as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// The key of a whole row (canonical values, then the hash).
fn key_of(t: &VerifyTable, row: &BytesRow) -> Key {
    t.key
        .iter()
        .map(|&i| row.get(i).cloned().flatten())
        .collect()
}

fn hash_of(row: &BytesRow) -> Vec<u8> {
    row.last().cloned().flatten().unwrap_or_default()
}

fn strip_hash(mut row: BytesRow) -> BytesRow {
    row.pop();
    row
}

/// A chunk as the source read it: its index in the plan, its range, its
/// checksum and the position of the snapshot it was read in.
struct SourceChunk {
    index: u64,
    range: KeyRange,
    sum: ChunkSum,
    at: SnapshotPosition,
}

/// The planner's ranges, handed out a window at a time with their index in
/// the plan: the first `skip` are dropped (chunks a resumed round already
/// compared), except the last, which is always compared — one range behind
/// the planner, so the last one is known as such.
struct Planned {
    rx: tokio::sync::mpsc::Receiver<KeyRange>,
    held: Option<KeyRange>,
    index: u64,
    skip: u64,
}

impl Planned {
    /// Up to `n` ranges; empty once planning ended.
    async fn window(&mut self, n: usize) -> Vec<(u64, KeyRange)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let next = self.rx.recv().await;
            match (self.held.take(), next) {
                (None, None) => break,
                (None, Some(r)) => self.held = Some(r),
                (Some(h), Some(r)) => {
                    if self.index >= self.skip {
                        out.push((self.index, h));
                    }
                    self.index += 1;
                    self.held = Some(r);
                }
                (Some(h), None) => {
                    out.push((self.index, h));
                    self.index += 1;
                    break;
                }
            }
        }
        out
    }
}

/// What the target lane found: the chunks whose checksums differ, how
/// many it compared, how long it waited for the pipeline and how long the
/// target took.
struct Checked {
    differing: Vec<KeyRange>,
    compared: u64,
    waited: Duration,
    took: Duration,
}

impl Verifier {
    /// Compares `t` (see the module docs).
    pub async fn compare_table(&mut self, t: &VerifyTable) -> Result<TableOutcome, PipelineError> {
        if t.is_keyless() {
            return self.compare_keyless(t).await;
        }
        let began = Instant::now();
        // A resumed continuous round: the chunks its previous leader did
        // (boundaries are re-planned, so this is by index).
        let skip = std::mem::take(&mut self.opts.skip_chunks);
        let window_chunks = self.opts.window_chunks.max(1);
        let chunk_rows = self.opts.chunk_rows;
        // Three lanes joined by bounded queues. The planner cuts the key
        // space on its own session. The source reads a window of chunks in
        // one snapshot and hands each chunk on as soon as it is summed; the
        // target lane waits, once per snapshot, until the pipeline applied
        // through its position, then sums the same chunk. The target trails
        // the source by about one chunk (not a window: the last window's
        // target work would otherwise follow all of the source's), and the
        // queue bounds the source to one window ahead of the target, so a
        // lagging pipeline pauses verify instead of verify adding load to a
        // busy source.
        let Verifier {
            source,
            target,
            applied,
            throttle,
            chunks_done,
            ..
        } = self;
        let source: &SourceVerifier = source;
        let (planned_tx, planned_rx) = tokio::sync::mpsc::channel(window_chunks * 2);
        let (read_tx, read_rx) = tokio::sync::mpsc::channel::<SourceChunk>(window_chunks);
        let planner = async move {
            let began = Instant::now();
            let planned = source.plan_chunks(t, chunk_rows, &planned_tx).await;
            (planned, began.elapsed())
        };
        let read = async move {
            let mut chunks = Planned {
                rx: planned_rx,
                held: None,
                index: 0,
                skip,
            };
            let (mut rows, mut took) = (0, Duration::ZERO);
            loop {
                let window = chunks.window(window_chunks).await;
                if window.is_empty() {
                    break;
                }
                let began = Instant::now();
                let mut snap = source.snapshot().await?;
                let mut busy = began.elapsed();
                let mut window_rows = 0;
                let mut open = true;
                for (index, range) in window {
                    let began = Instant::now();
                    let sum = snap.checksum(t, &range).await?;
                    busy += began.elapsed();
                    window_rows += sum.rows();
                    let at = snap.position.clone();
                    let chunk = SourceChunk {
                        index,
                        range,
                        sum,
                        at,
                    };
                    // A closed queue: the target lane failed, its error is
                    // the outcome.
                    if read_tx.send(chunk).await.is_err() {
                        open = false;
                        break;
                    }
                }
                snap.end().await;
                rows += window_rows;
                took += busy;
                if !open {
                    break;
                }
                throttle.take(window_rows).await;
            }
            Ok::<_, PipelineError>((rows, took))
        };
        let check = async {
            // Owned here, so a target lane that fails closes the queue and
            // the source lane stops instead of waiting on a full queue.
            let mut read_rx = read_rx;
            chunks_done.store(skip, Ordering::Relaxed);
            let mut session = target.checksum_session(t).await?;
            let mut reached: Option<SnapshotPosition> = None;
            let mut out = Checked {
                differing: Vec::new(),
                compared: 0,
                waited: Duration::ZERO,
                took: Duration::ZERO,
            };
            while let Some(chunk) = read_rx.recv().await {
                if reached.as_ref() != Some(&chunk.at) {
                    let began = Instant::now();
                    applied.wait_past(&chunk.at).await?;
                    out.waited += began.elapsed();
                    reached = Some(chunk.at.clone());
                }
                let began = Instant::now();
                let sum = session.checksum(t, &chunk.range).await?;
                out.took += began.elapsed();
                if sum != chunk.sum {
                    out.differing.push(chunk.range);
                }
                out.compared += 1;
                chunks_done.store(chunk.index + 1, Ordering::Relaxed);
            }
            Ok::<_, PipelineError>(out)
        };
        let ((planned, plan_took), read, checked) = tokio::join!(planner, read, check);
        // A planner that failed ended the ranges early: its error is the
        // outcome, whatever the comparison of the ranges it sent found;
        // then the source's, which ends the target lane early.
        planned?;
        let (rows, source_took) = read?;
        let checked = checked?;
        // Where the time went (the lanes overlap: the sum exceeds the wall
        // time when the servers were busy at once).
        tracing::info!(
            table = %t.source_name(),
            chunks = checked.compared,
            suspects = checked.differing.len(),
            plan_ms = plan_took.as_millis() as u64,
            source_ms = source_took.as_millis() as u64,
            target_wait_ms = checked.waited.as_millis() as u64,
            target_ms = checked.took.as_millis() as u64,
            wall_ms = began.elapsed().as_millis() as u64,
            "chunks compared"
        );
        let mut candidates = BTreeSet::new();
        for range in &checked.differing {
            candidates.extend(self.narrow(t, range).await?);
        }
        let differences = self.persisting(t, candidates.into_iter().collect()).await?;
        Ok(TableOutcome::new(t, checked.compared, rows, differences))
    }

    /// The keys that differ in one chunk, by row hash.
    async fn narrow(
        &mut self,
        t: &VerifyTable,
        range: &KeyRange,
    ) -> Result<Vec<Key>, PipelineError> {
        let mut snap = self.source.snapshot().await?;
        let source = snap.row_hashes(t, range).await?;
        let at = snap.position.clone();
        snap.end().await;
        self.throttle.take(source.len() as u64).await;
        self.applied.wait_past(&at).await?;
        let target = self.target.row_hashes(t, range).await?;
        Ok(diff_keyed(&source, &target).into_keys().collect())
    }

    /// Of `keys`, those that differ in every one of `rechecks` fresh
    /// comparisons, with both sides' rows of the last one.
    pub(super) async fn persisting(
        &mut self,
        t: &VerifyTable,
        mut keys: Vec<Key>,
    ) -> Result<Vec<Finding>, PipelineError> {
        let mut last: Vec<Finding> = Vec::new();
        for _ in 0..self.opts.rechecks.max(1) {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut snap = self.source.snapshot().await?;
            let source = snap.rows_by_keys(t, &keys).await?;
            let at = snap.position.clone();
            snap.end().await;
            self.throttle.take(source.len() as u64).await;
            self.applied.wait_past(&at).await?;
            let target = self.target.rows_by_keys(t, &keys).await?;
            let src: BTreeMap<Key, BytesRow> =
                source.into_iter().map(|r| (key_of(t, &r), r)).collect();
            let tgt: BTreeMap<Key, BytesRow> =
                target.into_iter().map(|r| (key_of(t, &r), r)).collect();
            let pairs = |m: &BTreeMap<Key, BytesRow>| -> Vec<(Key, Vec<u8>)> {
                m.iter().map(|(k, r)| (k.clone(), hash_of(r))).collect()
            };
            let diff = diff_keyed(&pairs(&src), &pairs(&tgt));
            keys = diff.keys().cloned().collect();
            last = diff
                .into_iter()
                .map(|(key, kind)| Finding {
                    kind,
                    source_row: src.get(&key).cloned().map(strip_hash),
                    target_row: tgt.get(&key).cloned().map(strip_hash),
                    hash: None,
                    key: Some(key),
                })
                .collect();
        }
        Ok(last)
    }

    /// A keyless table: one checksum, then multisets of row hashes.
    pub(super) async fn compare_keyless(
        &mut self,
        t: &VerifyTable,
    ) -> Result<TableOutcome, PipelineError> {
        let whole = KeyRange::default();
        let mut snap = self.source.snapshot().await?;
        let sum = snap.checksum(t, &whole).await?;
        let at = snap.position.clone();
        snap.end().await;
        self.throttle.take(sum.rows()).await;
        self.applied.wait_past(&at).await?;
        if self.target.checksum(t, &whole).await? == sum {
            return Ok(TableOutcome::new(t, 1, sum.rows(), Vec::new()));
        }
        let mut persisting: Option<BTreeMap<Vec<u8>, (DiffKind, u64)>> = None;
        for _ in 0..self.opts.rechecks.max(1) {
            let mut snap = self.source.snapshot().await?;
            let source = snap.hash_counts(t).await?;
            let at = snap.position.clone();
            snap.end().await;
            self.throttle.take(source.values().sum()).await;
            self.applied.wait_past(&at).await?;
            let target = self.target.hash_counts(t).await?;
            let diff = diff_multiset(&source, &target);
            let next = match persisting {
                None => diff,
                Some(before) => before
                    .into_iter()
                    .filter_map(|(h, (kind, n))| match diff.get(&h) {
                        Some((k, m)) if *k == kind => Some((h, (kind, n.min(*m)))),
                        _ => None,
                    })
                    .collect(),
            };
            let done = next.is_empty();
            persisting = Some(next);
            if done {
                break;
            }
        }
        let differences = self
            .keyless_findings(t, persisting.unwrap_or_default())
            .await?;
        Ok(TableOutcome::new(t, 1, sum.rows(), differences))
    }

    /// One finding per missing or extra copy, with the row it is.
    async fn keyless_findings(
        &mut self,
        t: &VerifyTable,
        diff: BTreeMap<Vec<u8>, (DiffKind, u64)>,
    ) -> Result<Vec<Finding>, PipelineError> {
        let wanted = |kind: DiffKind| -> Vec<Vec<u8>> {
            diff.iter()
                .filter(|(_, (k, _))| *k == kind)
                .map(|(h, _)| h.clone())
                .collect()
        };
        let missing = wanted(DiffKind::MissingOnTarget);
        let extra = wanted(DiffKind::ExtraOnTarget);
        let mut rows: BTreeMap<Vec<u8>, BytesRow> = BTreeMap::new();
        if !missing.is_empty() {
            let mut snap = self.source.snapshot().await?;
            let found = snap.rows_by_hashes(t, &missing).await?;
            snap.end().await;
            rows.extend(found.into_iter().map(|r| (hash_of(&r), strip_hash(r))));
        }
        if !extra.is_empty() {
            let found = self.target.rows_by_hashes(t, &extra).await?;
            rows.extend(found.into_iter().map(|r| (hash_of(&r), strip_hash(r))));
        }
        let mut out = Vec::new();
        for (hash, (kind, n)) in diff {
            let row = rows.get(&hash).cloned();
            for _ in 0..n {
                let (source_row, target_row) = match kind {
                    DiffKind::MissingOnTarget => (row.clone(), None),
                    _ => (None, row.clone()),
                };
                out.push(Finding {
                    kind,
                    key: None,
                    hash: Some(hash.clone()),
                    source_row,
                    target_row,
                });
            }
        }
        Ok(out)
    }
}
