//! The progress log line and the counters the leader publishes in its node
//! record for `sluice status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_coord::{AnyPositionStore, NodeProgress, PositionCache, ProgressPublisher};
use sluice_core::time::unix_ms;
use tokio_util::sync::CancellationToken;

use crate::stats::LoadStats;

pub(super) async fn log_progress(
    cache: PositionCache<AnyPositionStore>,
    stats: Arc<LoadStats>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut last_rows = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let rows = stats.rows.load(Ordering::Relaxed);
        let event_time = stats.last_event_time.load(Ordering::Relaxed);
        let lag = (event_time > 0).then(|| (unix_ms() / 1000).saturating_sub(event_time));
        let status = cache.status();
        tracing::info!(
            batches = stats.batches.load(Ordering::Relaxed),
            rows,
            rows_per_s = (rows - last_rows) as f64 / every.as_secs_f64(),
            lag_s = ?lag,
            acknowledged = ?status.acknowledged,
            flushed = ?status.flushed,
            position = %cache.acknowledged().map_or_else(String::new, |a| a.position.to_string()),
            "progress"
        );
        last_rows = rows;
    }
}

/// How often the leader refreshes its counters in its node record.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// Publishes the term's counters in the node record (`sluice status`).
pub(super) async fn publish_progress(
    publisher: ProgressPublisher,
    cache: PositionCache<AnyPositionStore>,
    stats: Arc<LoadStats>,
    cut: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PUBLISH_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = cache.status();
        let event_time = stats.last_event_time.load(Ordering::Relaxed);
        let cut = cut.load(Ordering::Relaxed);
        publisher
            .publish(NodeProgress {
                batches_extracted: cut,
                batches_loaded: stats.batches.load(Ordering::Relaxed),
                rows_loaded: stats.rows.load(Ordering::Relaxed),
                ddl_applied: stats.ddl.load(Ordering::Relaxed),
                retries: stats.retries.load(Ordering::Relaxed),
                in_flight: cut.saturating_sub(status.acknowledged.unwrap_or(0)),
                acknowledged_batch: status.acknowledged,
                flushed_batch: status.flushed,
                lag_seconds: (event_time > 0)
                    .then(|| (unix_ms() / 1000).saturating_sub(event_time)),
                updated_unix_ms: unix_ms(),
            })
            .await;
    }
}
