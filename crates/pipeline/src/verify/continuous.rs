//! Continuous verification (`verify:` in the pipeline file): the active
//! node runs verify rounds in the background — the same [`Verifier`] as
//! `sluice verify`, no second comparison engine — one every
//! `verify.interval`, reading at most `verify.rate` source rows/s, and
//! reports (never repairs) what differs.
//!
//! Rules:
//! * It runs only inside a term (spawned with the stages, stopped with
//!   them): a standby never verifies, a node that lost its term stops.
//! * With etcd, the round's progress (tables done, chunks done of the
//!   current table) and the last finished round are one record
//!   (`sluice_coord::VerifyRecord`), written under the leader fence after
//!   every table and at most once a second within one: a new leader
//!   continues an interrupted round where it was, and the next round is due
//!   `interval` after the last one finished — a failover does not restart
//!   the clock. Without a record, the first round is due `interval` after
//!   the term started. Resuming mid-table skips the chunks done by index
//!   (boundaries are re-planned): rows inserted meanwhile below the resume
//!   point wait for the next round.
//! * A round with persisting differences emits `verify_mismatch` naming
//!   each table and up to [`MISMATCH_KEYS`] keys.
//! * A round that fails (a server unreachable, the pipeline not applying
//!   through a snapshot in time) is logged and retried after `interval`
//!   from where it stopped; its progress is kept.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_binlog::verify::SourceVerifier;
use sluice_config::{Pipeline, VerifySettings};
use sluice_coord::verify::MISMATCH_KEYS;
use sluice_coord::{RoundProgress, RoundResult, VerifyRecord, VerifyStore};
use sluice_core::time::unix_ms;
use sluice_load::verify::TargetVerifier;
use tokio_util::sync::CancellationToken;

use super::{report, Applied, TableOutcome, Verifier, VerifyOptions};
use crate::error::PipelineError;
use crate::events::{details, EventKind, EventState};
use crate::status::NodeStatus;

/// Longest wait for the pipeline to apply through one source snapshot.
const APPLIED_TIMEOUT: Duration = Duration::from_secs(120);
/// Progress is written at most this often within one table.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a term's verification task runs with.
pub struct Continuous {
    pub pipeline: Pipeline,
    pub settings: VerifySettings,
    pub status: NodeStatus,
    /// `coordination.etcd`: the record's store under this term's fence.
    pub store: Option<VerifyStore>,
    pub node: String,
}

/// The `"verify"` object of `/status` and `sluice status` for `record`.
pub fn status_json(record: Option<&VerifyRecord>, error: Option<&str>) -> Value {
    let empty = VerifyRecord::default();
    let r = record.unwrap_or(&empty);
    let mismatched = |m: &[(String, Vec<String>)]| -> Value {
        m.iter()
            .map(|(t, keys)| json!({"table": t, "keys": keys}))
            .collect::<Vec<_>>()
            .into()
    };
    json!({
        "state": if r.round.is_some() { "running" } else { "idle" },
        "rounds": r.rounds,
        "node": r.node,
        "round": r.round.as_ref().map(|p| json!({
            "started_unix_ms": p.started_unix_ms,
            "tables_total": p.tables_total,
            "tables_done": p.tables_done.len(),
            "table": p.table,
            "table_chunks_done": p.table_chunks_done,
            "chunks": p.chunks,
            "rows": p.rows,
            "differences": p.differences,
        })),
        "last_round": r.last.as_ref().map(|l| json!({
            "started_unix_ms": l.started_unix_ms,
            "finished_unix_ms": l.finished_unix_ms,
            "tables": l.tables,
            "chunks": l.chunks,
            "rows": l.rows,
            "differences": l.differences,
            "mismatched": mismatched(&l.mismatched),
            "errors": l.errors.iter().map(|(t, e)| json!({"table": t, "error": e})).collect::<Vec<_>>(),
        })),
        "last_error": error,
    })
}

/// When a term that started at `started` runs its first round: at once to
/// continue an interrupted round, `interval` after the last finished one
/// (whichever node ran it), else `interval` after the term's start.
pub fn first_due(record: &VerifyRecord, started: u64, interval_ms: u64) -> u64 {
    match (&record.round, &record.last) {
        (Some(_), _) => started,
        (None, Some(last)) => last.finished_unix_ms.saturating_add(interval_ms),
        (None, None) => started.saturating_add(interval_ms),
    }
}

/// The keys (JSON text) of `o`'s differences, at most [`MISMATCH_KEYS`].
fn keys_of(o: &TableOutcome) -> Vec<String> {
    let Some(t) = &o.plan else {
        return Vec::new();
    };
    o.differences
        .iter()
        .take(MISMATCH_KEYS)
        .map(|f| {
            let j = report::finding_json(t, f);
            match j.get("key") {
                Some(Value::Null) | None => j.get("row").cloned().unwrap_or(Value::Null),
                Some(k) => k.clone(),
            }
            .to_string()
        })
        .collect()
}

impl Continuous {
    async fn save(&self, record: &VerifyRecord, error: Option<&str>) -> Result<(), PipelineError> {
        self.status.set_verify(status_json(Some(record), error));
        if let Some(store) = &self.store {
            store.write(record).await?;
        }
        Ok(())
    }

    /// Runs rounds until `stop` (the term's end) or a lost fence.
    pub async fn run(self, stop: CancellationToken) {
        let started = unix_ms();
        let mut record = match &self.store {
            Some(store) => match store.read().await {
                Ok(r) => r.unwrap_or_default(),
                Err(error) => {
                    tracing::error!(%error, "continuous verification not started: cannot read its record");
                    self.status
                        .set_verify(status_json(None, Some(&error.to_string())));
                    return;
                }
            },
            None => VerifyRecord::default(),
        };
        self.status.set_verify(status_json(Some(&record), None));
        let interval_ms = u64::try_from(self.settings.interval.as_millis()).unwrap_or(u64::MAX);
        let mut due = first_due(&record, started, interval_ms);
        loop {
            let wait = Duration::from_millis(due.saturating_sub(unix_ms()));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                r = self.round(&mut record) => r,
            };
            metrics::gauge!("sluice_verify_running").set(0.0);
            if let Err(error) = outcome {
                if matches!(&error, PipelineError::Coord(e) if e.is_fenced_out()) {
                    tracing::warn!(%error, "continuous verification stops: the term is over");
                    return;
                }
                tracing::warn!(%error, "verify round failed; retrying after verify.interval");
                self.status
                    .set_verify(status_json(Some(&record), Some(&error.to_string())));
            }
            due = unix_ms().saturating_add(interval_ms);
        }
    }

    /// One round, continuing `record.round` when it is set.
    async fn round(&self, record: &mut VerifyRecord) -> Result<(), PipelineError> {
        metrics::gauge!("sluice_verify_running").set(1.0);
        let p = &self.pipeline;
        let source = SourceVerifier::new(p.source.url().expose(), &p.source.tls)?;
        let loader = crate::open::loader(p).await?;
        let store = match &p.coordination {
            sluice_config::Coordination::Etcd { .. } => Some(crate::open::open_store(p).await?),
            sluice_config::Coordination::Local { .. } => None,
        };
        let target = TargetVerifier::new(&loader);
        let applied = Applied {
            loader,
            pipeline: p.name.clone(),
            store,
            local: crate::open::local_state_dir(p),
            timeout: APPLIED_TIMEOUT,
            source: source.clone(),
        };
        let opts = VerifyOptions {
            chunk_rows: self.settings.chunk_rows,
            rate: Some(self.settings.rate),
            ..VerifyOptions::default()
        };
        let mut verifier = Verifier::new(source.clone(), target, applied, opts);
        let result = self.compare_all(&mut verifier, record).await;
        source.close().await;
        verifier.applied.loader.close().await;
        result
    }

    async fn compare_all(
        &self,
        verifier: &mut Verifier,
        record: &mut VerifyRecord,
    ) -> Result<(), PipelineError> {
        let p = &self.pipeline;
        let mut planned = verifier.plan(&p.filter, &p.routes, &p.columns).await?;
        planned.sort_by_key(|t| match t {
            Ok(t) => t.source_name(),
            Err(o) => o.table.clone(),
        });
        let mut round = record.round.take().unwrap_or_else(|| RoundProgress {
            started_unix_ms: unix_ms(),
            ..RoundProgress::default()
        });
        round.tables_total = planned.len() as u64;
        let mut errors = Vec::new();
        record.round = Some(round.clone());
        record.node = self.node.clone();
        self.save(record, None).await?;
        for t in planned {
            let t = match t {
                Ok(t) => t,
                Err(refused) => {
                    errors.push((refused.table.clone(), refused.error.unwrap_or_default()));
                    continue;
                }
            };
            let name = t.source_name();
            if round.tables_done.contains(&name) {
                continue;
            }
            if round.table.as_deref() == Some(name.as_str()) {
                verifier.opts.skip_chunks = round.table_chunks_done;
            } else {
                round.table = Some(name.clone());
                round.table_chunks_done = 0;
            }
            let chunks_done = std::sync::Arc::clone(&verifier.chunks_done);
            let outcome = {
                let compare = verifier.compare_table(&t);
                tokio::pin!(compare);
                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                loop {
                    tokio::select! {
                        r = &mut compare => break r?,
                        _ = tick.tick() => {
                            let done = chunks_done.load(Ordering::Relaxed);
                            if done != round.table_chunks_done {
                                round.table_chunks_done = done;
                                record.round = Some(round.clone());
                                self.save(record, None).await?;
                            }
                        }
                    }
                }
            };
            round.chunks += outcome.chunks;
            round.rows += outcome.rows;
            round.differences += outcome.differences.len() as u64;
            metrics::counter!("sluice_verify_rows_compared_total").increment(outcome.rows);
            if !outcome.differences.is_empty() {
                round.mismatched.push((name.clone(), keys_of(&outcome)));
            }
            round.tables_done.push(name);
            round.table = None;
            round.table_chunks_done = 0;
            record.round = Some(round.clone());
            self.save(record, None).await?;
        }
        let result = RoundResult {
            started_unix_ms: round.started_unix_ms,
            finished_unix_ms: unix_ms(),
            tables: round.tables_done.len() as u64,
            chunks: round.chunks,
            rows: round.rows,
            differences: round.differences,
            mismatched: round.mismatched,
            errors,
        };
        tracing::info!(
            tables = result.tables,
            chunks = result.chunks,
            rows = result.rows,
            differences = result.differences,
            "verify round finished"
        );
        metrics::counter!("sluice_verify_rounds_total").increment(1);
        metrics::gauge!("sluice_verify_differences").set(result.differences as f64);
        if result.differences > 0 {
            self.status.events().emit(
                EventKind::VerifyMismatch,
                EventState::Event,
                "verify: the target differs from the source",
                details([
                    ("differences", json!(result.differences)),
                    (
                        "tables",
                        result
                            .mismatched
                            .iter()
                            .map(|(t, keys)| json!({"table": t, "keys": keys}))
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ]),
            );
        }
        record.round = None;
        record.last = Some(result);
        record.rounds += 1;
        self.save(record, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failover_keeps_the_clock_and_continues_the_round() {
        let mut r = VerifyRecord::default();
        assert_eq!(first_due(&r, 1_000, 500), 1_500);
        r.last = Some(RoundResult {
            finished_unix_ms: 200,
            ..RoundResult::default()
        });
        assert_eq!(first_due(&r, 1_000, 500), 700);
        r.round = Some(RoundProgress::default());
        assert_eq!(first_due(&r, 1_000, 500), 1_000);
        let v = status_json(Some(&r), None);
        assert_eq!(v["state"], "running");
        assert_eq!(v["last_round"]["finished_unix_ms"], 200);
        assert_eq!(status_json(None, Some("x"))["state"], "idle");
    }
}
