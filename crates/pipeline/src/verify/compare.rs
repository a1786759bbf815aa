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
use sluice_load::verify::TargetVerifier;

use super::{Applied, Finding, TableOutcome, Verifier};
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

/// A window of chunks as the source read it in one snapshot.
struct Window {
    ranges: Vec<KeyRange>,
    sums: Vec<ChunkSum>,
    at: SnapshotPosition,
    /// How long the source took to read it.
    took: Duration,
}

impl Window {
    fn rows(&self) -> u64 {
        self.sums.iter().map(|s| s.rows()).sum()
    }
}

/// The planner's ranges, handed out a window at a time: the first `skip`
/// are dropped (chunks a resumed round already compared), except the last,
/// which is always compared — one range behind the planner, so the last
/// one is known as such.
struct Planned {
    rx: tokio::sync::mpsc::Receiver<KeyRange>,
    held: Option<KeyRange>,
    index: u64,
    skip: u64,
}

impl Planned {
    /// How many ranges were dropped as already compared.
    fn skipped(&self) -> u64 {
        self.index.min(self.skip)
    }

    /// Up to `n` ranges; empty once planning ended.
    async fn window(&mut self, n: usize) -> Vec<KeyRange> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let next = self.rx.recv().await;
            match (self.held.take(), next) {
                (None, None) => break,
                (None, Some(r)) => self.held = Some(r),
                (Some(h), Some(r)) => {
                    if self.index >= self.skip {
                        out.push(h);
                    }
                    self.index += 1;
                    self.held = Some(r);
                }
                (Some(h), None) => {
                    out.push(h);
                    self.index += 1;
                    break;
                }
            }
        }
        out
    }
}

/// Checksums `ranges` in one source snapshot.
async fn read_window(
    source: &SourceVerifier,
    t: &VerifyTable,
    ranges: Vec<KeyRange>,
) -> Result<Window, PipelineError> {
    let began = Instant::now();
    let mut snap = source.snapshot().await?;
    let mut sums = Vec::with_capacity(ranges.len());
    for range in &ranges {
        sums.push(snap.checksum(t, range).await?);
    }
    let at = snap.position.clone();
    snap.end().await;
    Ok(Window {
        ranges,
        sums,
        at,
        took: began.elapsed(),
    })
}

/// Once the pipeline applied through the window's position, the chunks
/// whose target checksum differs; how long it waited for the pipeline and
/// how long the target took.
async fn check_window(
    applied: &Applied,
    target: &TargetVerifier,
    t: &VerifyTable,
    w: &Window,
) -> Result<(Vec<KeyRange>, Duration, Duration), PipelineError> {
    let began = Instant::now();
    applied.wait_past(&w.at).await?;
    let waited = began.elapsed();
    let sums = target.checksums(t, &w.ranges).await?;
    let differing = w
        .ranges
        .iter()
        .zip(&w.sums)
        .zip(sums)
        .filter(|((_, source), target)| *source != target)
        .map(|((range, _), _)| range.clone())
        .collect();
    Ok((differing, waited, began.elapsed() - waited))
}

impl Verifier {
    /// Compares `t` (see the module docs).
    pub async fn compare_table(&mut self, t: &VerifyTable) -> Result<TableOutcome, PipelineError> {
        if t.is_keyless() {
            return self.compare_keyless(t).await;
        }
        let began = Instant::now();
        let (mut source_took, mut waited, mut target_took) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        // A resumed continuous round: the chunks its previous leader did
        // (boundaries are re-planned, so this is by index).
        let skip = std::mem::take(&mut self.opts.skip_chunks);
        let mut rows = 0;
        let mut compared = 0u64;
        let mut suspects = Vec::new();
        let window_chunks = self.opts.window_chunks.max(1);
        let chunk_rows = self.opts.chunk_rows;
        // Three lanes: the planner cuts the key space on its own session,
        // a window ahead at most; while the target checks one window, the
        // source reads the next (the target's check waits for the pipeline
        // to apply through that window's position, so the source never runs
        // more than one window ahead of it).
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
        let planner = async move {
            let began = Instant::now();
            let planned = source.plan_chunks(t, chunk_rows, &planned_tx).await;
            (planned, began.elapsed())
        };
        let compare = async {
            let mut chunks = Planned {
                rx: planned_rx,
                held: None,
                index: 0,
                skip,
            };
            chunks_done.store(skip, Ordering::Relaxed);
            let mut read = match chunks.window(window_chunks).await {
                w if w.is_empty() => None,
                w => Some(read_window(source, t, w).await?),
            };
            while let Some(w) = read.take() {
                rows += w.rows();
                source_took += w.took;
                throttle.take(w.rows()).await;
                let (checked, next) = tokio::join!(check_window(applied, target, t, &w), async {
                    match chunks.window(window_chunks).await {
                        n if n.is_empty() => Ok(None),
                        n => read_window(source, t, n).await.map(Some),
                    }
                });
                let (differing, w_waited, w_took) = checked?;
                suspects.extend(differing);
                (waited, target_took) = (waited + w_waited, target_took + w_took);
                read = next?;
                compared += w.ranges.len() as u64;
                chunks_done.store(chunks.skipped() + compared, Ordering::Relaxed);
            }
            Ok::<_, PipelineError>(())
        };
        let ((planned, plan_took), compared_all) = tokio::join!(planner, compare);
        // A planner that failed ended the ranges early: its error is the
        // outcome, whatever the comparison of the ranges it sent found.
        planned?;
        compared_all?;
        // Where the time went (the lanes overlap: the sum exceeds the wall
        // time when the servers were busy at once).
        tracing::info!(
            table = %t.source_name(),
            chunks = compared,
            suspects = suspects.len(),
            plan_ms = plan_took.as_millis() as u64,
            source_ms = source_took.as_millis() as u64,
            target_wait_ms = waited.as_millis() as u64,
            target_ms = target_took.as_millis() as u64,
            wall_ms = began.elapsed().as_millis() as u64,
            "chunks compared"
        );
        let mut candidates = BTreeSet::new();
        for range in &suspects {
            candidates.extend(self.narrow(t, range).await?);
        }
        let differences = self.persisting(t, candidates.into_iter().collect()).await?;
        Ok(TableOutcome::new(t, compared, rows, differences))
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
