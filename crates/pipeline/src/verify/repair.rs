//! `sluice verify --repair`: the differing rows re-read from the source and
//! written through the loader, then re-verified.
//!
//! Keyed tables: one target transaction per table holds the pipeline's
//! current term and **locks the differing keys' rows and gaps first**
//! (`Loader::repair_locked`); only then are the source rows read, in one
//! consistent snapshot. So the snapshot's position is at or after
//! everything the target applied to those rows, and the pipeline cannot
//! apply anything newer to them before the repair commits: the repair never
//! writes a row older than the target held (the race of writing first-read
//! rows after the pipeline moved on is closed). Changes between the
//! target's position and the snapshot's, which the pipeline applies after
//! the repair, are full row images in binlog order: the rows end as the
//! source's latest. A deadlock with a batch waiting for the same rows is
//! retried.
//!
//! Keyless tables have no key to lock by or re-read: the rows the
//! comparison found missing are inserted and the extra ones deleted by
//! hash, under a lock of the whole table while written. Either way the
//! repaired rows are compared again with the same re-checks as a verify,
//! and the run only reports success (exit 0) when nothing remains.

use std::collections::BTreeMap;

use std::time::Duration;

use sluice_binlog::verify::SourceVerifier;
use sluice_core::retry::{retry, RetryPolicy};
use sluice_core::verify::read::BytesRow;
use sluice_core::verify::{DiffKind, Key, VerifyTable};
use sluice_load::verify::Repair;
use sluice_load::Loader;

use super::{TableOutcome, Verifier};
use crate::error::PipelineError;

/// The source's current rows of `keys` (read in one consistent snapshot):
/// upserts for the keys it has, deletes for those it has not.
async fn read_source_rows(
    source: &SourceVerifier,
    t: &VerifyTable,
    keys: &[Key],
) -> Result<Repair, PipelineError> {
    let mut snap = source.snapshot().await?;
    let rows = snap.rows_by_keys(t, keys).await?;
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
    let mut repair = Repair::default();
    for key in keys {
        match by_key.get(key) {
            Some(row) => repair.upserts.push(row.clone()),
            None => repair.delete_keys.push(key.clone()),
        }
    }
    Ok(repair)
}

/// Runs a repair again after a transient failure (a deadlock with a batch of
/// the pipeline waiting for the same rows is the expected one).
async fn with_retries<F, Fut>(what: &str, op: F) -> Result<u64, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, PipelineError>>,
{
    let policy = RetryPolicy::bounded(5, Duration::from_millis(100), Duration::from_secs(2));
    // No stop signal: `None` (stopped) cannot happen.
    let written = retry(
        &policy,
        std::future::pending(),
        |e: &PipelineError, a| tracing::warn!(what, attempt = a.number, error = %e, "transient error; retrying"),
        op,
    )
    .await
    .into_result()?;
    Ok(written.unwrap_or_default())
}

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
            let n = if t.is_keyless() {
                // No key to lock by or to re-read: what the comparison found
                // (the re-verification below says whether it still holds).
                let mut repair = Repair::default();
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
                with_retries("repairing a keyless table", || {
                    let repair = repair.clone();
                    loader.repair_locked(&t, &[], || async move { Ok(repair) })
                })
                .await?
            } else {
                let keys: Vec<Key> = o.differences.iter().filter_map(|f| f.key.clone()).collect();
                let source = &self.source;
                with_retries("repairing rows", || {
                    loader.repair_locked(&t, &keys, || read_source_rows(source, &t, &keys))
                })
                .await?
            };
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
