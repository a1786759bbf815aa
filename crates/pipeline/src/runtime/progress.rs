//! The progress log line and the counters the leader publishes in its node
//! record for `sluice status`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_coord::{AnyPositionStore, PositionCache, ProgressPublisher};
use tokio_util::sync::CancellationToken;

use crate::stats::LoadStats;

pub(super) async fn log_progress(
    cache: PositionCache<AnyPositionStore>,
    stats: Arc<LoadStats>,
    status: crate::status::NodeStatus,
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
        let flush = cache.status();
        // Absent values are left out of the line, never printed as Rust's
        // `None`/`Some(..)`.
        tracing::info!(
            batches = stats.batches.load(Ordering::Relaxed),
            rows,
            rows_per_s = (rows - last_rows) as f64 / every.as_secs_f64(),
            lag_s = status.lag_seconds(),
            acknowledged = flush.acknowledged,
            flushed = flush.flushed,
            position = cache
                .acknowledged()
                .map(|a| tracing::field::display(a.position)),
            "progress"
        );
        last_rows = rows;
        if let Some((done, tables, copied, estimated)) = status.snapshot().summary() {
            tracing::info!(
                tables_done = done,
                tables,
                rows_copied = copied,
                rows_estimated = estimated,
                "snapshot progress"
            );
        }
    }
}

/// How often the leader refreshes its counters in its node record.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// Publishes the term's counters and lag, as the monitor computes them
/// (`crate::status`), in the node record (`sluice status`): every
/// [`PUBLISH_EVERY`], and at once when asked (`NodeStatus::publish_now`).
pub(super) async fn publish_progress(
    publisher: ProgressPublisher,
    cache: PositionCache<AnyPositionStore>,
    status: crate::status::NodeStatus,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PUBLISH_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
            () = status.publish_ready() => {}
        }
        let flush = cache.status();
        if publisher
            .publish(status.node_progress(flush.acknowledged, flush.flushed))
            .await
        {
            status.record_published();
        }
    }
}
