//! The pipeline as etcd shows it, for the console: who leads, every
//! registered node, the acknowledged position, the active node's published
//! progress and (distributed stages) the batches on the task board.
//!
//! Decisions:
//! * **Read in the background, served from memory.** A poller reads etcd
//!   every [`POLL_EVERY`] (each round bounded by [`POLL_TIMEOUT`]) and keeps
//!   the last view; `/ui` never waits for etcd, so it answers in
//!   milliseconds also while etcd is down, and any number of open pages cost
//!   etcd nothing more. A failed round keeps the last good view and records
//!   the error, which the page shows with the view's age.
//! * **The same reads as `sluice status`** (`read_leader`, `read_nodes`, the
//!   position store, `TaskBoard::snapshot`), and the same batch view
//!   ([`TaskView`]), so the console and the CLI never disagree.
//! * **Rows/s of the active node** is derived from two successive
//!   publications of its node record in the same term (counts restart at 0
//!   with each term): a standby shows the pipeline's throughput without a
//!   new field in the record.
//!
//! Under `coordination.local` there is nothing to read: the view says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    read_leader, read_nodes, EtcdOptions, EtcdPositionStore, KeyLayout, LeaderRecord, NodeRecord,
    PositionStore as _, StoredPosition, TaskBoard,
};
use tokio_util::sync::CancellationToken;

use crate::positions::TaskView;

/// How often etcd is read.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// Deadline of one round of reads.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(1500);
/// A published progress older than this is not shown as live: the active
/// node publishes every 2 s.
pub const PROGRESS_STALE_MS: u64 = 10_000;

/// What the console knows about the pipeline's other nodes.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// `false` under `coordination.local`: no etcd, no other nodes.
    pub etcd: bool,
    /// Distributed stages (`stages:`): the task board is read too.
    pub distributed: bool,
    /// When the last successful read finished (Unix ms).
    pub read_at_ms: Option<u64>,
    /// The last failed read (Unix ms, message), when it came after the last
    /// successful one.
    pub error: Option<(u64, String)>,
    /// The leader key's holder and its create revision (the term).
    pub leader: Option<(LeaderRecord, i64)>,
    pub nodes: Vec<NodeRecord>,
    pub position: Option<StoredPosition>,
    pub tasks: Vec<TaskView>,
    /// Rows/s of the active node, from its last two publications.
    pub leader_rows_per_second: Option<f64>,
}

impl ClusterView {
    pub fn leader_id(&self) -> Option<&str> {
        self.leader.as_ref().map(|(l, _)| l.node_id.as_str())
    }

    /// The active node's published progress, when it is fresh.
    pub fn leader_progress(&self, now_ms: u64) -> Option<&sluice_coord::NodeProgress> {
        let leader = self.leader_id()?;
        let progress = self
            .nodes
            .iter()
            .find(|n| n.node_id == leader)?
            .progress
            .as_ref()?;
        (now_ms.saturating_sub(progress.updated_unix_ms) <= PROGRESS_STALE_MS).then_some(progress)
    }

    /// The pipeline's lag at `now_ms` as `sluice status` computes it: from
    /// the active node's applied-as-of time and the acknowledged position's
    /// event time.
    pub fn lag_seconds(&self, now_ms: u64) -> Option<u64> {
        use sluice_pipeline::lag;
        let event_s = self
            .position
            .as_ref()
            .and_then(|p| p.position.timestamp)
            .map(u64::from);
        let complete_at = self
            .leader_progress(now_ms)
            .and_then(|p| p.applied_as_of_unix_ms);
        lag::lag_seconds(now_ms, lag::applied_as_of_ms(event_s, complete_at))
    }
}

/// The shared, last-read view. Cheap to clone.
#[derive(Clone, Default)]
pub struct Cluster {
    view: Arc<Mutex<ClusterView>>,
}

impl Cluster {
    pub fn view(&self) -> ClusterView {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut ClusterView)) {
        f(&mut self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Starts the poller (with `coordination.etcd`) until `stop`.
    pub fn start(pipeline: &Pipeline, stop: CancellationToken) -> Cluster {
        let cluster = Cluster::default();
        let Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } = &pipeline.coordination
        else {
            return cluster;
        };
        let keys = match KeyLayout::new(prefix).and_then(|l| l.pipeline(&pipeline.name)) {
            Ok(keys) => keys,
            Err(e) => {
                // `run` refuses such a pipeline before this starts.
                tracing::warn!(error = %e, "console: no etcd view");
                return cluster;
            }
        };
        let distributed = pipeline.stages.is_some();
        cluster.update(|v| {
            v.etcd = true;
            v.distributed = distributed;
        });
        let mut options =
            EtcdOptions::new(endpoints.clone()).with_security(tls.clone(), auth.clone());
        options.request_timeout = POLL_TIMEOUT;
        let poller = cluster.clone();
        tokio::spawn(async move {
            let mut client: Option<etcd_client::Client> = None;
            let mut rate = RateTracker::default();
            let mut ticker = tokio::time::interval(POLL_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                if client.is_none() {
                    match sluice_coord::etcd::connect(&options).await {
                        Ok(c) => client = Some(c),
                        Err(e) => {
                            poller.failed(&e.to_string());
                            continue;
                        }
                    }
                }
                let Some(c) = &client else { continue };
                let read = tokio::time::timeout(POLL_TIMEOUT, read(c, &keys, distributed)).await;
                match read {
                    Ok(Ok(mut view)) => {
                        let now = sluice_core::time::unix_ms();
                        view.leader_rows_per_second = rate.observe(&view, now);
                        poller.update(|v| {
                            *v = ClusterView {
                                etcd: true,
                                distributed,
                                read_at_ms: Some(now),
                                error: None,
                                ..view
                            };
                        });
                    }
                    // Connect afresh next round: a client whose members
                    // were replaced, or whose auth token lapsed, may not
                    // recover on its own.
                    Ok(Err(e)) => {
                        poller.failed(&e.to_string());
                        client = None;
                    }
                    Err(_) => {
                        poller.failed(&format!("etcd did not answer within {POLL_TIMEOUT:?}"));
                        client = None;
                    }
                }
            }
        });
        cluster
    }

    fn failed(&self, message: &str) {
        tracing::debug!(error = %message, "console: reading the pipeline from etcd failed");
        let now = sluice_core::time::unix_ms();
        self.update(|v| v.error = Some((now, sluice_core::redact_url(message))));
    }
}

async fn read(
    client: &etcd_client::Client,
    keys: &sluice_coord::PipelineKeys,
    distributed: bool,
) -> Result<ClusterView, sluice_coord::CoordError> {
    let store = EtcdPositionStore::new(client.clone(), keys.clone(), POLL_TIMEOUT);
    let board = async {
        if distributed {
            TaskBoard::new(client.clone(), keys.clone(), POLL_TIMEOUT)
                .snapshot()
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let (leader, nodes, position, board) = tokio::try_join!(
        read_leader(client, keys),
        read_nodes(client, keys),
        store.load(),
        board,
    )?;
    let tasks = board.map_or_else(Vec::new, |b| {
        TaskView::from_board(&b, sluice_core::time::unix_ms())
    });
    Ok(ClusterView {
        leader,
        nodes,
        position,
        tasks,
        ..ClusterView::default()
    })
}

/// Rows/s of the active node from successive publications of its progress.
#[derive(Default)]
struct RateTracker {
    /// (leader id, term, rows_loaded, updated_unix_ms) of the last reading.
    last: Option<(String, i64, u64, u64)>,
    rate: Option<f64>,
}

impl RateTracker {
    fn observe(&mut self, view: &ClusterView, now_ms: u64) -> Option<f64> {
        let Some(((leader, term), progress)) = view
            .leader
            .as_ref()
            .zip(view.leader_progress(now_ms))
            .map(|((l, t), p)| ((l.node_id.clone(), *t), p))
        else {
            self.last = None;
            self.rate = None;
            return None;
        };
        let reading = (leader, term, progress.rows_loaded, progress.updated_unix_ms);
        match &self.last {
            Some((l, t, rows, at)) if *l == reading.0 && *t == reading.1 => {
                if reading.3 > *at && reading.2 >= *rows {
                    let secs = (reading.3 - at) as f64 / 1000.0;
                    self.rate = Some((reading.2 - rows) as f64 / secs);
                    self.last = Some(reading);
                }
                // Not republished since: keep the last rate.
            }
            _ => {
                self.rate = None;
                self.last = Some(reading);
            }
        }
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(term: i64, rows: u64, updated: u64) -> ClusterView {
        ClusterView {
            etcd: true,
            leader: Some((
                LeaderRecord {
                    node_id: "a".into(),
                    since_unix_ms: 1,
                    handover_to: None,
                },
                term,
            )),
            nodes: vec![NodeRecord {
                node_id: "a".into(),
                address: None,
                role: "leader".into(),
                version: "0".into(),
                server_id: None,
                since_unix_ms: 1,
                progress: Some(sluice_coord::NodeProgress {
                    rows_loaded: rows,
                    updated_unix_ms: updated,
                    snapshot: None,
                    applied_as_of_unix_ms: Some(updated - 3_000),
                    ..Default::default()
                }),
            }],
            ..ClusterView::default()
        }
    }

    #[test]
    fn leader_rate_comes_from_two_publications_of_one_term() {
        let mut r = RateTracker::default();
        assert_eq!(r.observe(&view(7, 100, 10_000), 10_500), None);
        assert_eq!(
            r.observe(&view(7, 100, 10_000), 11_000),
            None,
            "same record"
        );
        assert_eq!(r.observe(&view(7, 500, 12_000), 12_100), Some(200.0));
        assert_eq!(r.observe(&view(7, 500, 12_000), 13_000), Some(200.0));
        // A new term restarts the counts: no rate until its second record.
        assert_eq!(r.observe(&view(8, 10, 14_000), 14_100), None);
        // A stale record is no live rate.
        assert_eq!(r.observe(&view(8, 50, 16_000), 40_000), None);
    }

    #[test]
    fn lag_is_counted_from_the_published_applied_as_of_time() {
        let v = view(7, 100, 20_000);
        assert_eq!(v.lag_seconds(21_000), Some(4));
        assert_eq!(v.lag_seconds(60_000), None, "stale and no position");
        assert_eq!(ClusterView::default().lag_seconds(1), None);
    }
}
