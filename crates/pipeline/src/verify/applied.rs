//! How far the pipeline has applied, and waiting until it has applied
//! through a source snapshot's position — the condition under which a
//! target read may be compared with that snapshot (invariant 9, "no false
//! alarm").
//!
//! "Applied through P" is read from the target's checkpoint row (written
//! after every batch fully committed, `sluice_load::meta`) and the
//! acknowledged position in the store (etcd, or the running node's local
//! `position.json`, read without its lock); the further one counts. Both
//! only ever name positions whose changes are all on the target. The store
//! matters where the binlog's last events write nothing to the target
//! (tables outside the filter, skipped statements such as
//! `pt-table-checksum`'s): such batches are acknowledged, and the stored
//! position moves past them, without a checkpoint write. A
//! position only moves with transactions, so after a binlog rotation on an
//! idle source it names the old file's end while a snapshot names the new
//! file: when the source's binlog holds nothing but rotation events
//! between the two, the pipeline has applied through the snapshot too
//! (`SourceVerifier::quiet_between`). While the
//! pipeline lags, verify waits here before each window of chunks, so it
//! never runs further ahead of the pipeline than one window: a lagging
//! pipeline pauses verify instead of verify adding load to a busy source.

use std::cmp::Ordering;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use sluice_binlog::verify::{SnapshotPosition, SourceVerifier};
use sluice_coord::{AnyPositionStore, PositionStore as _};
use sluice_core::{cmp_binlog_file_names, Position};
use sluice_load::Loader;

use crate::error::PipelineError;

/// Polling period while waiting for the pipeline.
const POLL: Duration = Duration::from_millis(100);

/// Reads the pipeline's applied position.
pub struct Applied {
    pub loader: Loader,
    pub pipeline: String,
    pub store: Option<AnyPositionStore>,
    /// With `coordination.local`: the running node's state directory
    /// (`<dir>/<pipeline>`), whose `position.json` is read without the lock
    /// the node holds.
    pub local: Option<std::path::PathBuf>,
    /// Longest wait for the pipeline to apply through one position.
    pub timeout: Duration,
    /// The source, asked whether anything but rotations lies between the
    /// pipeline's position and a snapshot's.
    pub source: SourceVerifier,
}

/// Whether `applied` is at or past `p` (same binlog stream).
pub fn reached(applied: &Position, p: &SnapshotPosition) -> bool {
    match cmp_binlog_file_names(&applied.file, &p.file) {
        Some(Ordering::Greater) => true,
        Some(Ordering::Equal) => applied.offset >= p.offset,
        _ => false,
    }
}

impl Applied {
    /// The positions the pipeline has applied through (checkpoint, store).
    pub async fn positions(&self) -> Result<Vec<Position>, PipelineError> {
        let mut out = Vec::new();
        if let Some(cp) = self.loader.read_checkpoint(&self.pipeline).await? {
            if let Ok(p) = Position::from_str(&cp.position) {
                out.push(p);
            }
        }
        if let Some(store) = &self.store {
            if let Some(stored) = store.load().await? {
                out.push(stored.position);
            }
        }
        if let Some(dir) = &self.local {
            if let Some(stored) = sluice_coord::local::peek(dir)? {
                out.push(stored.position);
            }
        }
        Ok(out)
    }

    /// Waits until the pipeline applied through `p`.
    pub async fn wait_past(&self, p: &SnapshotPosition) -> Result<(), PipelineError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let positions = self.positions().await?;
            if positions.iter().any(|a| reached(a, p)) {
                return Ok(());
            }
            if let Some(a) = positions.iter().max_by(|a, b| {
                cmp_binlog_file_names(&a.file, &b.file)
                    .unwrap_or(Ordering::Equal)
                    .then(a.offset.cmp(&b.offset))
            }) {
                if self.source.quiet_between(&a.file, a.offset, p).await? {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let at = positions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(PipelineError::Verify(format!(
                    "pipeline {:?} did not apply through the source snapshot at {p} within {:?} (applied: {}); is it running?",
                    self.pipeline,
                    self.timeout,
                    if at.is_empty() { "nothing recorded" } else { &at }
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reached_compares_files_then_offsets() {
        let p = SnapshotPosition {
            file: "bin.000002".into(),
            offset: 500,
        };
        let at = |f: &str, o: u64| Position::from_str(&format!("{f}:{o}")).unwrap();
        assert!(reached(&at("bin.000002", 500), &p));
        assert!(reached(&at("bin.000003", 4), &p));
        assert!(!reached(&at("bin.000002", 499), &p));
        assert!(!reached(&at("bin.000001", 900), &p));
    }
}
