//! The node's live status, shared by the runtime and the admin endpoint,
//! and the per-term monitor that feeds it and the metrics gauges.
//!
//! [`NodeStatus`] is a small `Arc`'d, mutex-guarded record: the runtime and
//! the stages report *transitions* (role, connection to source, target and
//! etcd, errors) and the monitor refreshes counters, position and lag once
//! a second. Readers (`/status`, `/readyz`) take a snapshot. The mutex is
//! taken at most once per batch on the hot path (the target's "still up"
//! report), never per row.
//!
//! Transitions are where alarms come from: a link going down raises
//! `*_unreachable` (firing), coming back resolves it; lag above
//! `alarms.lag_threshold` for [`LAG_GRACE`] fires `lag`, back under
//! resolves it ([`crate::events`]).
//!
//! # Lag
//!
//! Defined once, in [`crate::lag`]. The monitor feeds it: Load records the
//! source time of the last applied event; Select records each heartbeat;
//! when nothing is in flight (every batch cut is acknowledged and Select's
//! queue is empty) the monitor takes the last heartbeat as a time the target
//! was complete. The applied-as-of time it derives is what every reader
//! (`/status`, the gauge, the alarm, the progress log, the node record that
//! `sluice status` reads) turns into seconds.
//!
//! # Counters
//!
//! All per term (they restart at 0 when this node becomes active):
//! `batches_extracted` batches Extract cut, `batches_loaded` batches Load
//! applied and acknowledged, `rows_loaded`, `ddl_applied`, `retries`
//! (transient target failures retried), `in_flight` (cut, not yet
//! acknowledged). `last_batch_cut` is a batch *id* (ids continue across terms
//! and nodes), not a count.
//!
//! # Throughput
//!
//! `rows_per_second` is the rate of rows Load applied over the last
//! [`RATE_WINDOW`] (a sliding window of the monitor's once-a-second
//! readings of `rows_loaded`), so one burst of a large batch does not read
//! as a spike. `None` when this node does not replicate, and until the
//! term's monitor has two readings.
//!
//! # Gauges while not replicating
//!
//! `sluice_lag_seconds` is NaN ("unknown") before this node knows the lag
//! and after its term ends: a standby measures nothing, and a stale number
//! — or a 0 that reads as "caught up" — would mislead a dashboard or an
//! alert rule (`NaN > threshold` is false).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sluice_coord::{AnyPositionStore, PositionCache};
use sluice_core::time::unix_ms;
use sluice_core::Position;
use tokio_util::sync::CancellationToken;

use crate::channel::Probe;
use crate::events::{details, EventKind, EventState, Events};
use crate::stats::LoadStats;

/// How long lag must stay above the threshold before the alarm fires.
pub const LAG_GRACE: Duration = Duration::from_secs(3);
/// How often the monitor refreshes the status and gauges.
pub const MONITOR_EVERY: Duration = Duration::from_secs(1);
/// The window `rows_per_second` is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// What this node is doing for its pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Connecting to the coordination store.
    Starting,
    /// Campaigning for the pipeline's leader key (etcd).
    Standby,
    /// Replicating (the leader, or the single node).
    Active,
    /// `run` returned.
    Stopped,
}

/// State of a connection, as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Unknown,
    Up,
    Down,
}

impl Link {
    fn gauge(self) -> f64 {
        if self == Link::Up {
            1.0
        } else {
            0.0
        }
    }
}

/// Stage counters of the current term (as `sluice status` shows them); see
/// the module docs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Batches Extract cut this term (a count).
    pub batches_extracted: u64,
    /// Batches Load applied and acknowledged this term (a count).
    pub batches_loaded: u64,
    pub rows_loaded: u64,
    pub ddl_applied: u64,
    pub retries: u64,
    /// Batches cut but not yet acknowledged.
    pub in_flight: u64,
    /// Id of the last batch Extract cut (not a count), `None` before the
    /// first batch of the term.
    pub last_batch_cut: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub unix_ms: u64,
    /// `transient` (retried) or `definite` (stopped the pipeline).
    pub class: &'static str,
    pub stage: &'static str,
    /// Already free of passwords (error texts carry redacted URLs only).
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
struct State {
    role: Role,
    replicating: bool,
    since_unix_ms: u64,
    source: Link,
    target: Link,
    etcd: Option<Link>,
    /// Redacted URL of the source server in use.
    source_url: Option<String>,
    acknowledged_batch: Option<u64>,
    position: Option<Position>,
    /// See [`crate::lag`]; lag is derived from it when read.
    applied_as_of_ms: Option<u64>,
    counters: Counters,
    last_error: Option<LastError>,
    lag_alarm: bool,
    /// The pipeline's halt and pause (operator control, every node).
    halt: Option<sluice_coord::HaltRecord>,
    pause: Option<sluice_coord::PauseRecord>,
    /// Rows/s applied over the last [`RATE_WINDOW`]; see the module docs.
    rows_per_second: Option<f64>,
    /// Continuous verification (`crate::verify::continuous::status_json`).
    verify: Option<serde_json::Value>,
}

/// Cheap to clone; every clone shares one record.
#[derive(Clone)]
pub struct NodeStatus {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: String,
    node: String,
    events: Events,
    lag_threshold: Duration,
    snapshot: crate::progress_snapshot::Progress,
    state: Mutex<State>,
    /// Asks the monitor for a refresh now, to be published at once.
    publish_request: tokio::sync::Notify,
    /// The monitor refreshed for a request: the publisher writes it.
    publish_ready: tokio::sync::Notify,
    /// How many node records the publisher has written (it bumps this).
    published: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStatus")
            .field("pipeline", &self.inner.pipeline)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Default for NodeStatus {
    fn default() -> Self {
        NodeStatus::new("", "", Events::disabled(), Duration::from_secs(60))
    }
}

impl NodeStatus {
    pub fn new(pipeline: &str, node: &str, events: Events, lag_threshold: Duration) -> Self {
        NodeStatus {
            inner: Arc::new(Inner {
                pipeline: pipeline.to_string(),
                node: node.to_string(),
                events,
                lag_threshold,
                snapshot: crate::progress_snapshot::Progress::default(),
                state: Mutex::new(State {
                    role: Role::Starting,
                    replicating: false,
                    since_unix_ms: unix_ms(),
                    source: Link::Unknown,
                    target: Link::Unknown,
                    etcd: None,
                    source_url: None,
                    acknowledged_batch: None,
                    position: None,
                    applied_as_of_ms: None,
                    counters: Counters::default(),
                    last_error: None,
                    lag_alarm: false,
                    halt: None,
                    pause: None,
                    rows_per_second: None,
                    verify: None,
                }),
                publish_request: tokio::sync::Notify::new(),
                publish_ready: tokio::sync::Notify::new(),
                published: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Has the monitor refresh and the node-record publisher write this
    /// node's progress now, and
    /// waits (up to `within`) until a record written after this call is in
    /// the store; `false` when none was (no publisher runs: no election or
    /// between terms). Used before a pause is acknowledged, so that once
    /// `sluice pause` returns, `sluice status` computes the lag from what
    /// was applied last rather than from a record up to one publishing
    /// period old, and the lag it shows only grows while paused.
    pub async fn publish_now(&self, within: Duration) -> bool {
        let mut published = self.inner.published.subscribe();
        let before = *published.borrow_and_update();
        self.inner.publish_request.notify_one();
        tokio::time::timeout(within, published.wait_for(|&n| n > before))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Resolves when the monitor has refreshed for
    /// [`NodeStatus::publish_now`]: the publisher writes a record.
    pub(crate) async fn publish_ready(&self) {
        self.inner.publish_ready.notified().await;
    }

    /// The publisher wrote a node record.
    pub(crate) fn record_published(&self) {
        self.inner.published.send_modify(|n| *n += 1);
    }

    /// Continuous verification's state, as `/status` shows it.
    pub fn set_verify(&self, verify: serde_json::Value) {
        self.state().verify = Some(verify);
    }

    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The snapshot's progress (`"snapshot"` in `/status`).
    pub fn snapshot(&self) -> &crate::progress_snapshot::Progress {
        &self.inner.snapshot
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn role(&self) -> Role {
        self.state().role
    }

    pub fn set_role(&self, role: Role) {
        let mut s = self.state();
        if s.role != role {
            s.role = role;
            s.since_unix_ms = unix_ms();
        }
        if role != Role::Active {
            s.replicating = false;
        }
        metrics::gauge!("sluice_active").set(if role == Role::Active { 1.0 } else { 0.0 });
    }

    /// Elected leader of the pipeline (etcd).
    pub fn leadership_gained(&self, term: Option<i64>) {
        self.set_role(Role::Active);
        metrics::counter!("sluice_leadership_changes_total", "change" => "gained").increment(1);
        self.inner.events.emit(
            EventKind::LeadershipGained,
            EventState::Event,
            "leadership gained: this node replicates the pipeline",
            details([("term", json!(term))]),
        );
    }

    /// The term ended without a shutdown: back to standby.
    pub fn leadership_lost(&self, reason: &str) {
        self.set_role(Role::Standby);
        metrics::counter!("sluice_leadership_changes_total", "change" => "lost").increment(1);
        self.inner.events.emit(
            EventKind::LeadershipLost,
            EventState::Event,
            "leadership lost: replication stopped on this node; back to standby",
            details([("reason", json!(reason))]),
        );
    }

    /// The stages of a term started (`true`) or stopped.
    pub fn set_replicating(&self, on: bool) {
        self.state().replicating = on;
    }

    /// The binlog dump started on `url` (redacted).
    pub fn source_up(&self, url: &str) {
        let was = {
            let mut s = self.state();
            s.source_url = Some(url.to_string());
            std::mem::replace(&mut s.source, Link::Up)
        };
        metrics::gauge!("sluice_connection_up", "peer" => "source").set(1.0);
        if was == Link::Down {
            self.inner.events.emit(
                EventKind::SourceUnreachable,
                EventState::Resolved,
                "source reachable again: binlog dump running",
                details([("source", json!(url))]),
            );
        }
    }

    /// The binlog dump cannot start on `url` (redacted); `error` is the
    /// driver's message (which never holds the password).
    pub fn source_down(&self, url: &str, error: &str) {
        let was = std::mem::replace(&mut self.state().source, Link::Down);
        metrics::gauge!("sluice_connection_up", "peer" => "source").set(0.0);
        self.transient_error("select", error);
        if was != Link::Down {
            self.inner.events.emit(
                EventKind::SourceUnreachable,
                EventState::Firing,
                "source unreachable: cannot start the binlog dump; retrying",
                details([("source", json!(url)), ("error", json!(error))]),
            );
        }
    }

    pub fn source_switched(&self, from: &str, to: &str, gtid: &str, unreachable_s: u64) {
        metrics::counter!("sluice_source_switches_total").increment(1);
        self.inner.events.emit(
            EventKind::SourceSwitched,
            EventState::Event,
            "source switched: continuing from the GTID set of the last whole transaction",
            details([
                ("from", json!(from)),
                ("to", json!(to)),
                ("gtid", json!(gtid)),
                ("unreachable_s", json!(unreachable_s)),
            ]),
        );
    }

    /// The target accepted a write. Cheap when nothing changes.
    pub fn target_up(&self) {
        let was = {
            let mut s = self.state();
            if s.target == Link::Up {
                return;
            }
            std::mem::replace(&mut s.target, Link::Up)
        };
        metrics::gauge!("sluice_connection_up", "peer" => "target").set(1.0);
        if was == Link::Down {
            self.inner.events.emit(
                EventKind::TargetUnreachable,
                EventState::Resolved,
                "target reachable again: batches are applied",
                serde_json::Map::new(),
            );
        }
    }

    /// A transient target failure (the batch will be applied again).
    pub fn target_down(&self, error: &str) {
        let was = std::mem::replace(&mut self.state().target, Link::Down);
        metrics::gauge!("sluice_connection_up", "peer" => "target").set(0.0);
        self.transient_error("load", error);
        if was != Link::Down {
            self.inner.events.emit(
                EventKind::TargetUnreachable,
                EventState::Firing,
                "target unavailable: the batch will be applied again; nothing is acknowledged meanwhile",
                details([("error", json!(error))]),
            );
        }
    }

    /// Connection to etcd as last observed.
    pub fn etcd_link(&self, up: bool) {
        let link = if up { Link::Up } else { Link::Down };
        self.state().etcd = Some(link);
        metrics::gauge!("sluice_connection_up", "peer" => "etcd").set(link.gauge());
    }

    /// A failure that is retried.
    pub fn transient_error(&self, stage: &'static str, message: &str) {
        metrics::counter!("sluice_errors_total", "class" => "transient", "stage" => stage)
            .increment(1);
        self.state().last_error = Some(LastError {
            unix_ms: unix_ms(),
            class: "transient",
            stage,
            message: message.to_string(),
        });
    }

    /// A failure that stopped the pipeline; a failing Load raises
    /// `load_error`.
    pub fn definite_error(&self, stage: &'static str, message: &str) {
        metrics::counter!("sluice_errors_total", "class" => "definite", "stage" => stage)
            .increment(1);
        self.state().last_error = Some(LastError {
            unix_ms: unix_ms(),
            class: "definite",
            stage,
            message: message.to_string(),
        });
        if stage == "load" || stage == "transform" {
            self.inner.events.emit(
                EventKind::LoadError,
                EventState::Event,
                "load error: the pipeline stopped applying changes (with etcd coordination it halts until an operator resolves it)",
                details([("stage", json!(stage)), ("error", json!(message))]),
            );
        }
    }

    /// The start position is no longer on the source (Select stops next).
    pub fn start_purged(&self, message: &str) {
        self.inner.events.emit(
            EventKind::StartPositionPurged,
            EventState::Event,
            "start position purged on the source: the pipeline cannot continue without a new position",
            details([("error", json!(message))]),
        );
    }

    /// A bidirectional pipeline met a conflict and resolved it
    /// (`sluice_load::apply::conflict`).
    pub fn conflict(&self, batch_id: u64, table: &str, key: &str, policy: &str, source_won: bool) {
        self.inner.events.emit(
            EventKind::Conflict,
            EventState::Event,
            "conflict: the target row was not what the source held before the change",
            details([
                ("batch_id", json!(batch_id)),
                ("table", json!(table)),
                ("key", json!(key)),
                ("policy", json!(policy)),
                (
                    "winner",
                    json!(if source_won { "source" } else { "target" }),
                ),
            ]),
        );
    }

    /// Replication lag now ([`crate::lag`]); `None` while unknown or when
    /// this node does not replicate.
    pub fn lag_seconds(&self) -> Option<u64> {
        crate::lag::lag_seconds(unix_ms(), self.state().applied_as_of_ms)
    }

    /// Rows/s Load applied over the last [`RATE_WINDOW`]; `None` when this
    /// node does not replicate (see the module docs).
    pub fn rows_per_second(&self) -> Option<f64> {
        self.state().rows_per_second
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.inner.pipeline
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// What the leader publishes in its node record for `sluice status`:
    /// this term's counters and the applied-as-of time, as the monitor last
    /// saw them.
    pub fn node_progress(
        &self,
        acknowledged: Option<u64>,
        flushed: Option<u64>,
    ) -> sluice_coord::NodeProgress {
        let now = unix_ms();
        let s = self.state();
        let c = &s.counters;
        sluice_coord::NodeProgress {
            batches_extracted: c.batches_extracted,
            batches_loaded: c.batches_loaded,
            rows_loaded: c.rows_loaded,
            ddl_applied: c.ddl_applied,
            retries: c.retries,
            in_flight: c.in_flight,
            last_batch_cut: c.last_batch_cut,
            acknowledged_batch: acknowledged,
            flushed_batch: flushed,
            lag_seconds: crate::lag::lag_seconds(now, s.applied_as_of_ms),
            applied_as_of_unix_ms: s.applied_as_of_ms,
            updated_unix_ms: now,
            snapshot: Some(self.inner.snapshot.to_json()).filter(|j| j["state"] != "none"),
        }
    }

    /// The pipeline's control records as this node last saw them (halt,
    /// pause), with the `sluice_halted` / `sluice_paused` gauges.
    pub fn control_state(
        &self,
        halt: Option<&sluice_coord::HaltRecord>,
        pause: Option<&sluice_coord::PauseRecord>,
    ) {
        {
            let mut s = self.state();
            s.halt = halt.cloned();
            s.pause = pause.cloned();
        }
        self.control_gauges(halt.is_some(), pause.is_some());
    }

    /// Sets `sluice_halted` and `sluice_paused` (also at startup, so that
    /// `/metrics` names them before anything happens).
    pub fn control_gauges(&self, halted: bool, paused: bool) {
        let pipeline = self.inner.pipeline.clone();
        metrics::gauge!("sluice_halted", "pipeline" => pipeline.clone()).set(if halted {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("sluice_paused", "pipeline" => pipeline).set(if paused {
            1.0
        } else {
            0.0
        });
    }

    /// The redacted URL of the source server in use, once the dump started.
    pub fn source_url(&self) -> Option<String> {
        self.state().source_url.clone()
    }

    /// `Ok(what)` when ready for `/readyz`, else why not.
    pub fn readiness(&self) -> Result<&'static str, String> {
        let s = self.state();
        if matches!(s.role, Role::Active | Role::Standby) {
            // Pipeline-wide: no node of a halted or paused pipeline serves.
            if let Some(h) = &s.halt {
                return Err(format!("halted: {}", h.message));
            }
            if s.pause.is_some() {
                return Err("paused".into());
            }
        }
        match s.role {
            Role::Active if !s.replicating => Err("active, but the stages are not running".into()),
            Role::Active if s.source != Link::Up => {
                Err(format!("active, but the source is {}", link_name(s.source)))
            }
            Role::Active if s.target == Link::Down => {
                Err("active, but the target is unreachable".into())
            }
            Role::Active => Ok("active and replicating"),
            Role::Standby if s.etcd == Some(Link::Up) => Ok("standby, campaigning"),
            Role::Standby => Err("standby, but etcd is not reachable".into()),
            Role::Starting => Err("starting".into()),
            Role::Stopped => Err("stopped".into()),
        }
    }

    /// The `/status` document.
    pub fn to_json(&self) -> serde_json::Value {
        let ready = self.readiness();
        let s = self.state().clone();
        let lag_seconds = crate::lag::lag_seconds(unix_ms(), s.applied_as_of_ms);
        json!({
            "pipeline": self.inner.pipeline,
            "node": self.inner.node,
            "role": s.role,
            "since_unix_ms": s.since_unix_ms,
            "ready": ready.is_ok(),
            "ready_reason": match &ready { Ok(r) => r.to_string(), Err(e) => e.clone() },
            "replicating": s.replicating,
            "connections": {
                "source": s.source,
                "target": s.target,
                "etcd": s.etcd,
            },
            "source": s.source_url,
            "position": s.position.as_ref().map(|p| json!({
                "file": p.file,
                "offset": p.offset,
                "gtid": p.gtid.as_ref().map(ToString::to_string),
                "text": p.to_string(),
            })),
            "acknowledged_batch": s.acknowledged_batch,
            "snapshot": self.inner.snapshot.to_json(),
            "lag_seconds": lag_seconds,
            "applied_as_of_unix_ms": s.applied_as_of_ms,
            "lag_alarm": s.lag_alarm,
            "rows_per_second": s.rows_per_second.map(round_rate),
            "counters": s.counters,
            "last_error": s.last_error,
            "halted": s.halt.as_ref().map(|h| json!({
                "stage": h.stage,
                "message": h.message,
                "node": h.node,
                "halted_at_unix_ms": h.halted_at_unix_ms,
                "batch_id": h.batch.as_ref().map(|b| b.id),
                "position_before": h.batch.as_ref().and_then(|b| b.start.as_ref()).map(ToString::to_string),
                "table": h.failure.as_ref().and_then(|f| f.table.clone()),
                "key": h.failure.as_ref().and_then(|f| f.key.clone()),
            })),
            "paused": s.pause.as_ref().map(|p| json!({
                "operator": p.operator,
                "paused_at_unix_ms": p.paused_at_unix_ms,
                "acknowledged_by": p.acknowledged.as_ref().map(|a| a.node.clone()),
            })),
            "verify": s.verify,
        })
    }
}

/// One decimal: what a reader compares, stable between two readings of
/// the same state.
fn round_rate(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

/// Rows/s from the monitor's readings `(when, rows_loaded)`, oldest first,
/// over at most [`RATE_WINDOW`]; `None` with fewer than two readings.
fn rate_over(readings: &std::collections::VecDeque<(tokio::time::Instant, u64)>) -> Option<f64> {
    let (first, last) = (readings.front()?, readings.back()?);
    let secs = last.0.duration_since(first.0).as_secs_f64();
    (secs > 0.0).then(|| last.1.saturating_sub(first.1) as f64 / secs)
}

fn link_name(link: Link) -> &'static str {
    match link {
        Link::Unknown => "not connected yet",
        Link::Up => "connected",
        Link::Down => "unreachable",
    }
}

/// Records rows and bytes of `rows` per table for `stage`: one counter
/// update per distinct table per batch (tables compared by pointer first,
/// so this is a scan with no allocation per row).
pub(crate) fn count_rows(stage: &'static str, rows: &[sluice_core::RowChange]) {
    let mut tables: Vec<(&Arc<sluice_core::TableSchema>, u64, u64)> = Vec::new();
    for row in rows {
        let bytes = row.size_hint() as u64;
        match tables.iter_mut().rev().find(|(t, _, _)| {
            Arc::ptr_eq(t, &row.table)
                || (t.schema == row.table.schema && t.table == row.table.table)
        }) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += bytes;
            }
            None => tables.push((&row.table, 1, bytes)),
        }
    }
    for (table, n, bytes) in tables {
        let name = format!("{}.{}", table.schema, table.table);
        metrics::counter!("sluice_rows_total", "stage" => stage, "table" => name.clone())
            .increment(n);
        metrics::counter!("sluice_bytes_total", "stage" => stage, "table" => name).increment(bytes);
    }
}

/// What the monitor of one term reads.
pub(crate) struct MonitorInputs {
    pub cache: PositionCache<AnyPositionStore>,
    pub stats: Arc<LoadStats>,
    /// Id of the last batch Extract cut.
    pub cut: Arc<AtomicU64>,
    /// The term's first batch id (counts are relative to it).
    pub first_batch_id: u64,
    /// Heartbeats Select received from the source.
    pub heartbeats: crate::lag::Heartbeats,
    /// Byte use of the queues after Select, Extract and Transform.
    pub queues: Vec<(&'static str, Probe)>,
    /// Positions go to etcd: flush failures say etcd is unreachable.
    pub etcd: bool,
    /// The target loader: its retry count reveals a failing target long
    /// before a batch gives up (a connection attempt waits for its pool's
    /// acquire timeout first).
    pub loader: Arc<sluice_load::Loader>,
}

/// Refreshes `status` and the gauges every [`MONITOR_EVERY`] until `stop`;
/// raises and resolves the lag alarm.
pub(crate) async fn monitor(status: NodeStatus, inputs: MonitorInputs, stop: CancellationToken) {
    status.set_replicating(true);
    {
        // A new term: its counters start at 0, and nothing is known about
        // the target until this term applies or hears something.
        let mut s = status.state();
        s.counters = Counters::default();
        s.applied_as_of_ms = None;
        s.rows_per_second = None;
    }
    let mut ticker = tokio::time::interval(MONITOR_EVERY);
    // (when, rows_loaded) of the last RATE_WINDOW, for rows_per_second.
    let mut readings: std::collections::VecDeque<(tokio::time::Instant, u64)> =
        std::collections::VecDeque::new();
    let mut complete_at: Option<u64> = None;
    let mut above_since: Option<tokio::time::Instant> = None;
    let mut last_retries = inputs.loader.retries_total();
    let mut last_acked: Option<u64> = None;
    let before_first = inputs.first_batch_id.saturating_sub(1);
    loop {
        let requested = tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => false,
            () = status.inner.publish_request.notified() => true,
        };
        // The heartbeat first, then what is in flight: a change that arrives
        // in between is then newer than the heartbeat, never hidden by it.
        // (Extract has cut whatever came before a heartbeat by then: the
        // source sends one only after a whole period without events.)
        let heartbeat = inputs.heartbeats.vouched_until_ms();
        let flush = inputs.cache.status();
        let acked = inputs.cache.acknowledged();
        let cut = inputs.cut.load(Ordering::Relaxed);
        let stats = &inputs.stats;
        let in_flight = cut.saturating_sub(flush.acknowledged.unwrap_or(0));
        let select_queued = inputs
            .queues
            .iter()
            .any(|(name, p)| *name == "select" && p.bytes_in_use() > 0);
        if in_flight == 0 && !select_queued {
            complete_at = heartbeat.or(complete_at);
        }
        let event_time = stats.last_event_time.load(Ordering::Relaxed);
        let as_of = crate::lag::applied_as_of_ms(Some(event_time), complete_at);
        let lag = crate::lag::lag_seconds(unix_ms(), as_of);
        let counters = Counters {
            batches_extracted: cut.saturating_sub(before_first),
            batches_loaded: stats.batches.load(Ordering::Relaxed),
            rows_loaded: stats.rows.load(Ordering::Relaxed),
            ddl_applied: stats.ddl.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            in_flight,
            last_batch_cut: (cut > before_first).then_some(cut),
        };
        let now = tokio::time::Instant::now();
        readings.push_back((now, counters.rows_loaded));
        while readings
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            readings.pop_front();
        }
        let rows_per_second = rate_over(&readings);

        if let Some(lag) = lag {
            metrics::gauge!("sluice_lag_seconds").set(lag as f64);
        }
        metrics::gauge!("sluice_batches_in_flight").set(in_flight as f64);
        for (name, probe) in &inputs.queues {
            metrics::gauge!("sluice_queue_bytes", "queue" => *name)
                .set(probe.bytes_in_use() as f64);
        }
        if let Some(a) = &acked {
            metrics::gauge!("sluice_acknowledged_batch").set(a.batch_id as f64);
            metrics::gauge!("sluice_acknowledged_file_index").set(file_index(&a.position.file));
            metrics::gauge!("sluice_acknowledged_offset").set(a.position.offset as f64);
        }
        if inputs.etcd {
            status.etcd_link(flush.last_error.is_none());
        }
        // Retries without progress: the target is failing now, even though
        // the batch has not given up yet.
        let retries = inputs.loader.retries_total();
        if retries > last_retries && flush.acknowledged == last_acked && in_flight > 0 {
            status.target_down(&format!(
                "the target keeps failing: {} retries and no batch applied in the last {}s (see the log for the errors)",
                retries - last_retries,
                MONITOR_EVERY.as_secs()
            ));
        }
        last_retries = retries;
        last_acked = flush.acknowledged;

        let threshold = status.inner.lag_threshold.as_secs();
        let (fire, resolve) = {
            let mut s = status.state();
            s.counters = counters;
            s.applied_as_of_ms = as_of;
            s.rows_per_second = rows_per_second;
            if let Some(a) = acked {
                s.acknowledged_batch = Some(a.batch_id);
                s.position = Some(a.position);
            }
            match lag {
                Some(l) if l > threshold => {
                    let since = *above_since.get_or_insert_with(tokio::time::Instant::now);
                    let fire = !s.lag_alarm && since.elapsed() >= LAG_GRACE;
                    s.lag_alarm |= fire;
                    (fire, false)
                }
                _ => {
                    above_since = None;
                    let resolve = s.lag_alarm && lag.is_some();
                    if resolve {
                        s.lag_alarm = false;
                    }
                    (false, resolve)
                }
            }
        };
        let lag_details = || {
            details([
                ("lag_seconds", json!(lag)),
                ("threshold_seconds", json!(threshold)),
            ])
        };
        if fire {
            status.events().emit(
                EventKind::Lag,
                EventState::Firing,
                format!(
                    "replication lag {}s is above the threshold of {threshold}s",
                    lag.unwrap_or_default()
                ),
                lag_details(),
            );
        } else if resolve {
            status.events().emit(
                EventKind::Lag,
                EventState::Resolved,
                format!("replication lag back under the threshold of {threshold}s"),
                lag_details(),
            );
        }
        if requested {
            status.inner.publish_ready.notify_one();
        }
    }
    {
        let mut s = status.state();
        s.applied_as_of_ms = None;
        s.rows_per_second = None;
    }
    // Not measured any more on this node (see the module docs).
    metrics::gauge!("sluice_lag_seconds").set(f64::NAN);
    status.set_replicating(false);
}

/// The numeric suffix of a binlog file name (`mysql-bin.000042` → 42).
fn file_index(file: &str) -> f64 {
    file.rsplit('.')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0.0, |n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_role_and_links() {
        let s = NodeStatus::default();
        assert!(s.readiness().is_err());
        s.set_role(Role::Standby);
        assert!(s.readiness().is_err(), "standby without etcd");
        s.etcd_link(true);
        assert_eq!(s.readiness(), Ok("standby, campaigning"));
        s.set_role(Role::Active);
        assert!(s.readiness().is_err(), "stages not running");
        s.set_replicating(true);
        s.source_up("mysql://u:***@h:1");
        assert_eq!(s.readiness(), Ok("active and replicating"));
        s.target_down("connection refused");
        assert!(s.readiness().unwrap_err().contains("target"));
        s.target_up();
        assert!(s.readiness().is_ok());
        let doc = s.to_json();
        assert_eq!(doc["role"], "active");
        assert_eq!(doc["connections"]["target"], "up");
        assert_eq!(doc["last_error"]["class"], "transient");
        assert_eq!(file_index("mysql-bin.000042"), 42.0);
    }

    #[test]
    fn a_halted_or_paused_pipeline_is_not_ready_on_any_node() {
        let s = NodeStatus::default();
        s.set_role(Role::Standby);
        s.etcd_link(true);
        let pause = sluice_coord::PauseRecord {
            operator: "op@h".into(),
            paused_at_unix_ms: 1,
            acknowledged: None,
        };
        s.control_state(None, Some(&pause));
        assert_eq!(s.readiness(), Err("paused".into()));
        let halt = sluice_coord::HaltRecord {
            stage: "load".into(),
            message: "batch 3: table `s`.`t`, key (id=1): the target refused the change".into(),
            class: "definite".into(),
            batch: None,
            failure: None,
            node: "a".into(),
            term: None,
            halted_at_unix_ms: 1,
            distributed: false,
        };
        s.control_state(Some(&halt), Some(&pause));
        assert!(s.readiness().unwrap_err().starts_with("halted: batch 3"));
        let doc = s.to_json();
        assert_eq!(doc["halted"]["stage"], "load");
        assert_eq!(doc["paused"]["operator"], "op@h");
        s.control_state(None, None);
        assert_eq!(s.readiness(), Ok("standby, campaigning"));
        assert!(s.to_json()["halted"].is_null());
    }

    #[test]
    fn rows_per_second_is_the_rate_over_the_readings() {
        use std::collections::VecDeque;
        let t0 = tokio::time::Instant::now();
        let mut r = VecDeque::new();
        assert_eq!(rate_over(&r), None);
        r.push_back((t0, 100));
        assert_eq!(rate_over(&r), None, "one reading is no rate");
        r.push_back((t0 + Duration::from_secs(2), 100));
        assert_eq!(rate_over(&r), Some(0.0));
        r.push_back((t0 + Duration::from_secs(4), 1100));
        assert_eq!(rate_over(&r), Some(250.0));
        assert_eq!(round_rate(1234.5678), 1234.6);
        let s = NodeStatus::default();
        assert!(s.to_json()["rows_per_second"].is_null());
    }
}
