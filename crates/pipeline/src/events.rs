//! Events and alarms: logged, counted, and POSTed to webhooks.
//!
//! An [`Event`] is something an operator should hear about (the source or
//! target unreachable, a source switch, leadership gained or lost, lag above
//! `alarms.lag_threshold`, a load error that stopped the pipeline, a purged
//! start position). [`Events::emit`] does three things at once: a structured
//! log line (`event = kind`, `state`), the counter
//! `sluice_events_total{kind,state}`, and a JSON body queued for every
//! configured webhook.
//!
//! Decisions:
//! * **Replication never waits for a webhook.** Each webhook has its own
//!   bounded queue ([`QUEUE_CAP`]) drained by its own task; when a queue is
//!   full the *oldest* event is dropped (the newest says most about now)
//!   and `sluice_webhook_dropped_total` counts it. `emit` only locks a
//!   mutex for a push.
//! * Delivery is at-least-once per attempt sequence: a POST is retried with
//!   doubling backoff (0.5 s … 30 s, [`MAX_ATTEMPTS`] attempts) on network
//!   errors, 408, 429 and 5xx; other statuses are final. A receiver can
//!   de-duplicate on `id`.
//! * Conditions that clear (`source_unreachable`, `target_unreachable`,
//!   `lag`) are sent as `state: "firing"` and later `state: "resolved"`;
//!   one-off events (`source_switched`, `leadership_*`, `load_error`,
//!   `start_position_purged`, `conflict`) as `state: "event"`.
//! * Nothing secret goes out: callers pass redacted URLs and error texts,
//!   and webhook URLs are logged as `scheme://host/…` only (hook URLs often
//!   carry their token in the path).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sluice_config::Webhook;
use sluice_core::retry::{Decision, RetryPolicy};
use sluice_core::ErrorClass;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events queued per webhook before the oldest is dropped.
pub const QUEUE_CAP: usize = 256;
/// Delivery attempts per event and webhook.
pub const MAX_ATTEMPTS: u32 = 6;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SourceUnreachable,
    SourceSwitched,
    TargetUnreachable,
    LeadershipGained,
    LeadershipLost,
    Lag,
    LoadError,
    StartPositionPurged,
    /// A bidirectional pipeline met a conflict (`sluice_load::apply::conflict`).
    Conflict,
    SnapshotStarted,
    SnapshotFinished,
    /// A DDL on a table being copied restarted its copy
    /// (`crate::snapshot::copying`).
    SnapshotRestarted,
    /// A continuous verification round found persisting differences
    /// (`crate::verify::continuous`).
    VerifyMismatch,
}

impl EventKind {
    /// Every kind, for exporting `sluice_events_total` at 0 from the start.
    pub const ALL: [EventKind; 13] = [
        EventKind::SourceUnreachable,
        EventKind::SourceSwitched,
        EventKind::TargetUnreachable,
        EventKind::LeadershipGained,
        EventKind::LeadershipLost,
        EventKind::Lag,
        EventKind::LoadError,
        EventKind::StartPositionPurged,
        EventKind::Conflict,
        EventKind::SnapshotStarted,
        EventKind::SnapshotFinished,
        EventKind::SnapshotRestarted,
        EventKind::VerifyMismatch,
    ];

    /// The states this kind is emitted in: conditions fire and resolve,
    /// one-offs are events.
    pub fn states(self) -> &'static [EventState] {
        match self {
            EventKind::SourceUnreachable | EventKind::TargetUnreachable | EventKind::Lag => {
                &[EventState::Firing, EventState::Resolved]
            }
            EventKind::SourceSwitched
            | EventKind::LeadershipGained
            | EventKind::LeadershipLost
            | EventKind::LoadError
            | EventKind::StartPositionPurged
            | EventKind::Conflict
            | EventKind::SnapshotStarted
            | EventKind::SnapshotFinished
            | EventKind::SnapshotRestarted
            | EventKind::VerifyMismatch => &[EventState::Event],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::SourceUnreachable => "source_unreachable",
            EventKind::SourceSwitched => "source_switched",
            EventKind::TargetUnreachable => "target_unreachable",
            EventKind::LeadershipGained => "leadership_gained",
            EventKind::LeadershipLost => "leadership_lost",
            EventKind::Lag => "lag",
            EventKind::LoadError => "load_error",
            EventKind::StartPositionPurged => "start_position_purged",
            EventKind::Conflict => "conflict",
            EventKind::SnapshotStarted => "snapshot_started",
            EventKind::SnapshotFinished => "snapshot_finished",
            EventKind::SnapshotRestarted => "snapshot_restarted",
            EventKind::VerifyMismatch => "verify_mismatch",
        }
    }

    fn severity(self) -> &'static str {
        match self {
            EventKind::LoadError | EventKind::StartPositionPurged | EventKind::VerifyMismatch => {
                "critical"
            }
            EventKind::SourceUnreachable | EventKind::TargetUnreachable | EventKind::Lag => {
                "warning"
            }
            EventKind::SourceSwitched | EventKind::LeadershipLost | EventKind::Conflict => {
                "warning"
            }
            EventKind::LeadershipGained
            | EventKind::SnapshotStarted
            | EventKind::SnapshotFinished
            | EventKind::SnapshotRestarted => "info",
        }
    }
}

/// `firing`/`resolved` for conditions, `event` for one-offs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    Firing,
    Resolved,
    Event,
}

impl EventState {
    pub fn name(self) -> &'static str {
        match self {
            EventState::Firing => "firing",
            EventState::Resolved => "resolved",
            EventState::Event => "event",
        }
    }
}

/// The JSON body POSTed to webhooks (README, "Operations").
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `<node>-<unix_ms>-<sequence>`: unique per process, for de-duplication.
    pub id: String,
    pub kind: EventKind,
    pub state: EventState,
    pub severity: &'static str,
    pub pipeline: String,
    pub node: String,
    pub message: String,
    /// Kind-specific fields (error text, lag seconds, positions...).
    pub details: serde_json::Map<String, serde_json::Value>,
    pub unix_ms: u64,
}

/// Cheap to clone; all clones share the queues.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: String,
    node: String,
    seq: AtomicU64,
    hooks: Vec<Arc<HookQueue>>,
    closed: CancellationToken,
}

struct HookQueue {
    shown: String,
    queue: Mutex<VecDeque<Arc<Vec<u8>>>>,
    /// Events taken off the queue whose delivery has not finished.
    busy: AtomicU64,
    notify: Notify,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("pipeline", &self.inner.pipeline)
            .field("node", &self.inner.node)
            .field("webhooks", &self.inner.hooks.len())
            .finish()
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::disabled()
    }
}

impl Events {
    /// Logs and counts, delivers nowhere (tools and tests).
    pub fn disabled() -> Self {
        Events::build("", "", &[], false)
    }

    /// Events of `pipeline` on `node`, delivered to `webhooks`: spawns one
    /// delivery task per webhook (needs a tokio runtime).
    pub fn new(pipeline: &str, node: &str, webhooks: &[Webhook]) -> Self {
        Events::build(pipeline, node, webhooks, true)
    }

    fn build(pipeline: &str, node: &str, webhooks: &[Webhook], spawn: bool) -> Self {
        let closed = CancellationToken::new();
        let mut hooks = Vec::new();
        if spawn {
            for hook in webhooks {
                let queue = Arc::new(HookQueue {
                    shown: hook.shown_url(),
                    queue: Mutex::new(VecDeque::new()),
                    busy: AtomicU64::new(0),
                    notify: Notify::new(),
                });
                tokio::spawn(deliver(hook.clone(), Arc::clone(&queue), closed.clone()));
                hooks.push(queue);
            }
        }
        Events {
            inner: Arc::new(Inner {
                pipeline: pipeline.to_string(),
                node: node.to_string(),
                seq: AtomicU64::new(0),
                hooks,
                closed,
            }),
        }
    }

    /// Logs, counts and queues an event. Never blocks on delivery.
    pub fn emit(
        &self,
        kind: EventKind,
        state: EventState,
        message: impl Into<String>,
        details: serde_json::Map<String, serde_json::Value>,
    ) {
        let message = message.into();
        let unix_ms = sluice_core::time::unix_ms();
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let event = Event {
            id: format!("{}-{unix_ms}-{seq}", self.inner.node),
            kind,
            state,
            severity: kind.severity(),
            pipeline: self.inner.pipeline.clone(),
            node: self.inner.node.clone(),
            message,
            details,
            unix_ms,
        };
        let details = serde_json::Value::Object(event.details.clone());
        match (state, event.severity) {
            (EventState::Firing | EventState::Event, "critical") => tracing::error!(
                event = kind.name(),
                state = state.name(),
                details = %details,
                "{}",
                event.message
            ),
            (EventState::Firing | EventState::Event, "warning") => tracing::warn!(
                event = kind.name(),
                state = state.name(),
                details = %details,
                "{}",
                event.message
            ),
            _ => tracing::info!(
                event = kind.name(),
                state = state.name(),
                details = %details,
                "{}",
                event.message
            ),
        }
        metrics::counter!("sluice_events_total", "kind" => kind.name(), "state" => state.name())
            .increment(1);
        if self.inner.hooks.is_empty() {
            return;
        }
        let body = match serde_json::to_vec(&event) {
            Ok(b) => Arc::new(b),
            Err(error) => {
                tracing::error!(%error, "cannot encode an event for webhooks");
                return;
            }
        };
        for hook in &self.inner.hooks {
            {
                let mut queue = hook.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.len() >= QUEUE_CAP {
                    queue.pop_front();
                    metrics::counter!("sluice_webhook_dropped_total").increment(1);
                }
                queue.push_back(Arc::clone(&body));
            }
            hook.notify.notify_one();
        }
    }

    /// Waits up to `within` for queued events to be delivered (or given
    /// up), then stops the delivery tasks. For the last events before exit.
    pub async fn close(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let pending = self.inner.hooks.iter().any(|h| {
                h.busy.load(Ordering::Acquire) > 0
                    || !h.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
            });
            if !pending || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.closed.cancel();
    }
}

/// One webhook's delivery loop.
async fn deliver(hook: Webhook, queue: Arc<HookQueue>, closed: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(hook.timeout).build() {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(webhook = %queue.shown, error = %error.without_url(), "cannot set up the webhook client; its events are dropped");
            return;
        }
    };
    loop {
        let next = {
            let mut q = queue.queue.lock().unwrap_or_else(|p| p.into_inner());
            let next = q.pop_front();
            if next.is_some() {
                queue.busy.fetch_add(1, Ordering::AcqRel);
            }
            next
        };
        let Some(body) = next else {
            tokio::select! {
                () = closed.cancelled() => return,
                () = queue.notify.notified() => continue,
            }
        };
        let delivered = post_with_retries(&client, &hook, &queue.shown, &body, &closed).await;
        metrics::counter!(
            "sluice_webhook_deliveries_total",
            "result" => if delivered { "ok" } else { "failed" }
        )
        .increment(1);
        queue.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a webhook POST is retried (the module doc): doubling from 0.5 s to
/// 30 s, [`MAX_ATTEMPTS`] attempts in all.
const DELIVERY: RetryPolicy = RetryPolicy::bounded(
    MAX_ATTEMPTS,
    Duration::from_millis(500),
    Duration::from_secs(30),
);

async fn post_with_retries(
    client: &reqwest::Client,
    hook: &Webhook,
    shown: &str,
    body: &Arc<Vec<u8>>,
    closed: &CancellationToken,
) -> bool {
    // Not `retry::retry`: that would drop a POST in flight when `closed`
    // fires, and an event under way is still delivered on shutdown.
    for attempt in 1..=MAX_ATTEMPTS {
        let mut request = client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.as_ref().clone());
        for (name, value) in &hook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let class = match request.send().await {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                let status = response.status();
                tracing::warn!(webhook = %shown, status = status.as_u16(), attempt, "webhook refused an event");
                // The receiver is overloaded or down for a moment; any other
                // refusal repeats.
                if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Definite
                }
            }
            Err(error) => {
                // `without_url`: the URL may carry the hook's secret.
                tracing::warn!(webhook = %shown, error = %error.without_url(), attempt, "webhook delivery failed");
                ErrorClass::Transient
            }
        };
        let Decision::RetryAfter(wait) = DELIVERY.decide(attempt, class) else {
            break;
        };
        tokio::select! {
            () = closed.cancelled() => return false,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::warn!(webhook = %shown, "event not delivered; giving up on it");
    false
}

/// Builds a `details` map: `details([("error", json!(..))])`.
pub fn details<const N: usize>(
    fields: [(&str, serde_json::Value); N],
) -> serde_json::Map<String, serde_json::Value> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_the_documented_shape() {
        let e = Event {
            id: "n-1-0".into(),
            kind: EventKind::TargetUnreachable,
            state: EventState::Firing,
            severity: EventKind::TargetUnreachable.severity(),
            pipeline: "shop".into(),
            node: "n".into(),
            message: "m".into(),
            details: details([("error", "x".into())]),
            unix_ms: 1,
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "target_unreachable");
        assert_eq!(v["state"], "firing");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["details"]["error"], "x");
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_emit_never_blocks() {
        // A webhook on a port nobody listens on: deliveries fail and retry,
        // the queue fills, emit still returns at once.
        let hook = Webhook {
            url: "http://127.0.0.1:9/none".into(),
            headers: Vec::new(),
            timeout: Duration::from_millis(100),
        };
        let events = Events::new("p", "n", &[hook]);
        let started = std::time::Instant::now();
        for i in 0..(QUEUE_CAP + 50) {
            events.emit(
                EventKind::Lag,
                EventState::Firing,
                format!("lag {i}"),
                serde_json::Map::new(),
            );
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let len = events.inner.hooks[0].queue.lock().unwrap().len();
        assert!(len <= QUEUE_CAP, "{len}");
        events.close(Duration::ZERO).await;
    }
}
