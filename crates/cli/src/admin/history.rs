//! The last hour of lag and rows/s, kept in memory for the console's chart.
//!
//! A bounded ring buffer ([`CAPACITY`] samples, one every [`SAMPLE_EVERY`]:
//! one hour, ~30 KB) filled by one sampler task that lives as long as the
//! process — not by the per-term monitor of `sluice_pipeline::status`,
//! which only runs while this node is active, and would leave a standby's
//! chart (and the hour before a failover) empty.
//!
//! What a sample holds depends on the node's role when it is taken:
//! * **active**: this node's own numbers (the monitor's lag and rows/s, as
//!   `/status` shows them) — `basis: this_node`;
//! * **standby**: the active node's numbers as it publishes them in etcd
//!   (its applied-as-of time, rows/s from two publications; see
//!   [`super::cluster`]) — `basis: active_node`;
//! * neither known (starting, no leader, etcd unreachable): no values
//!   (`basis: none`), drawn as a gap.
//!
//! The buffer is lost with the process; Prometheus keeps the long history
//! (`deploy/grafana/sluice.json`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sluice_pipeline::status::Role;
use sluice_pipeline::NodeStatus;
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;

/// Time between samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How far back the chart goes.
pub const SPAN: Duration = Duration::from_secs(3600);
/// Samples kept: one hour of them.
pub const CAPACITY: usize = (SPAN.as_secs() / SAMPLE_EVERY.as_secs()) as usize;

/// Whose numbers a sample holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    ThisNode,
    ActiveNode,
    None,
}

/// One point of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub unix_ms: u64,
    pub lag_seconds: Option<u64>,
    pub rows_per_second: Option<f64>,
    pub basis: Basis,
}

/// The ring buffer. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct History {
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends, dropping the oldest sample when full.
    pub fn push(&self, sample: Sample) {
        let mut samples = self.lock();
        if samples.len() == CAPACITY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples of the last [`SPAN`] before `now_ms`, oldest first.
    pub fn recent(&self, now_ms: u64) -> Vec<Sample> {
        let from = now_ms.saturating_sub(u64::try_from(SPAN.as_millis()).unwrap_or(u64::MAX));
        self.lock()
            .iter()
            .filter(|s| s.unix_ms >= from)
            .copied()
            .collect()
    }

    /// Samples every [`SAMPLE_EVERY`] until `stop`.
    pub fn start_sampler(&self, status: NodeStatus, cluster: Cluster, stop: CancellationToken) {
        let history = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: skip it, nothing is measured yet.
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                history.push(take(&status, &cluster, sluice_core::time::unix_ms()));
            }
        });
    }
}

/// The sample for `now_ms` (see the module docs).
fn take(status: &NodeStatus, cluster: &Cluster, now_ms: u64) -> Sample {
    if status.role() == Role::Active {
        return Sample {
            unix_ms: now_ms,
            lag_seconds: status.lag_seconds(),
            rows_per_second: status.rows_per_second(),
            basis: Basis::ThisNode,
        };
    }
    let view = cluster.view();
    let other_leads = view
        .leader_id()
        .is_some_and(|leader| leader != status.node());
    match view.leader_progress(now_ms) {
        Some(_) if other_leads => Sample {
            unix_ms: now_ms,
            lag_seconds: view.lag_seconds(now_ms),
            rows_per_second: view.leader_rows_per_second,
            basis: Basis::ActiveNode,
        },
        _ => Sample {
            unix_ms: now_ms,
            lag_seconds: None,
            rows_per_second: None,
            basis: Basis::None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(unix_ms: u64) -> Sample {
        Sample {
            unix_ms,
            lag_seconds: Some(1),
            rows_per_second: Some(2.0),
            basis: Basis::ThisNode,
        }
    }

    #[test]
    fn the_buffer_is_bounded_and_keeps_the_last_hour() {
        assert_eq!(CAPACITY, 720);
        let h = History::default();
        for i in 0..(CAPACITY as u64 + 10) {
            h.push(sample(i * 5_000));
        }
        let now = (CAPACITY as u64 + 9) * 5_000;
        let recent = h.recent(now);
        assert_eq!(recent.len(), CAPACITY, "the oldest 10 were dropped");
        assert_eq!(recent.first().map(|s| s.unix_ms), Some(10 * 5_000));
        // An hour later than the last sample plus one period: none left.
        assert!(h.recent(now + 3_600_000 + 5_000).is_empty());
        assert_eq!(recent.last().map(|s| s.unix_ms), Some(now));
        assert!(recent.iter().all(|s| s.unix_ms >= now - 3_600_000));
        assert_eq!(h.lock().len(), CAPACITY);
    }

    #[test]
    fn a_node_that_is_not_active_samples_nothing_of_its_own() {
        let status = NodeStatus::default();
        let s = take(&status, &Cluster::default(), 1_000);
        assert_eq!(s.basis, Basis::None);
        assert_eq!((s.lag_seconds, s.rows_per_second), (None, None));
        status.set_role(Role::Active);
        assert_eq!(
            take(&status, &Cluster::default(), 1_000).basis,
            Basis::ThisNode
        );
    }
}
