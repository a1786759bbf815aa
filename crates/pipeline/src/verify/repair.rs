//! `sluice verify --repair`: the differing rows re-read from the source and
//! written through the loader, then re-verified.
//!
//! The source rows are read in one consistent snapshot; the write is one
//! target transaction per table that first holds the pipeline's current
//! term (`Loader::repair_rows`), so it cannot interleave with a loader of an
//! older or newer term. A row the pipeline changes meanwhile converges
//! anyway: a source change after the snapshot is applied by the pipeline
//! after (or over) the repair, because it is later in the binlog. The one
//! race left — the pipeline applying a change made after the snapshot
//! *before* the repair's write lands, which the write then undoes — is what
//! the re-verification catches: the repaired keys are compared again with
//! the same re-checks as a verify, and the run only reports success (exit
//! 0) when nothing remains.

use std::collections::BTreeMap;

use sluice_core::verify::read::BytesRow;
use sluice_core::verify::{DiffKind, Key};
use sluice_load::verify::Repair;
use sluice_load::Loader;

use super::{TableOutcome, Verifier};
use crate::error::PipelineError;

impl Verifier {
    /// Repairs every table's differences with `loader` (which carries the
    /// term fence), then re-verifies them into `remaining`. Returns how many
    /// rows were written or deleted.
    pub async fn repair(
        &mut self,
        loader: &Loader,
        outcomes: &mut [TableOutcome],
    ) -> Result<u64, PipelineError> {
        let mut total = 0;
        for o in outcomes.iter_mut() {
            let Some(t) = o.plan.clone() else { continue };
            if o.differences.is_empty() {
                o.remaining = Some(Vec::new());
                continue;
            }
            let mut repair = Repair::default();
            if t.is_keyless() {
                for f in &o.differences {
                    match (f.kind, &f.source_row, &f.hash) {
                        (DiffKind::MissingOnTarget, Some(row), _) => {
                            repair.upserts.push(row.clone())
                        }
                        (DiffKind::ExtraOnTarget, _, Some(h)) => {
                            repair.delete_hashes.push(h.clone())
                        }
                        _ => {}
                    }
                }
            } else {
                let keys: Vec<Key> = o.differences.iter().filter_map(|f| f.key.clone()).collect();
                let mut snap = self.source.snapshot().await?;
                let rows = snap.rows_by_keys(&t, &keys).await?;
                snap.end().await;
                let by_key: BTreeMap<Key, BytesRow> = rows
                    .into_iter()
                    .map(|mut r| {
                        r.pop();
                        (
                            t.key.iter().map(|&i| r.get(i).cloned().flatten()).collect(),
                            r,
                        )
                    })
                    .collect();
                for key in keys {
                    match by_key.get(&key) {
                        Some(row) => repair.upserts.push(row.clone()),
                        None => repair.delete_keys.push(key),
                    }
                }
            }
            let n = (repair.upserts.len() + repair.delete_keys.len() + repair.delete_hashes.len())
                as u64;
            loader.repair_rows(&t, &repair).await?;
            tracing::info!(table = %o.table, rows = n, "repaired");
            total += n;
            let remaining = if t.is_keyless() {
                self.compare_keyless(&t).await?.differences
            } else {
                let keys = o.differences.iter().filter_map(|f| f.key.clone()).collect();
                self.persisting(&t, keys).await?
            };
            o.remaining = Some(remaining);
        }
        Ok(total)
    }
}
