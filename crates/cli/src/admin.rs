//! The admin HTTP endpoint of `sluice run` (`admin.listen`).
//!
//! * `GET /healthz` — 200 `ok` while the process runs.
//! * `GET /readyz` — 200 when active and replicating, or standby and
//!   campaigning with etcd reachable; 503 otherwise. JSON `{ready, reason,
//!   role}` either way.
//! * `GET /status` — the node's [`NodeStatus`] as JSON.
//! * `GET /metrics` — Prometheus text format; every series a dashboard or
//!   alert rule uses exists from the start ([`series`]).
//! * `GET /ui` — the operator console ([`ui`]): one self-contained page with
//!   this node's and the other nodes' state ([`cluster`]) and a chart of
//!   the last hour ([`history`], [`chart`], rendered by [`render`]).
//!
//! With `admin.token`, `/status`, `/metrics` and `/ui` need
//! `Authorization: Bearer TOKEN` or the console's session cookie (401
//! otherwise; `/ui` then shows its sign-in page); `/healthz` and `/readyz`
//! stay open for probes and reveal nothing but readiness.
//!
//! The server takes an already bound listener and a shutdown token (the
//! mini-redis pattern), so tests bind port 0 and read the address from the
//! `admin HTTP listening` log line. Metrics come from the `metrics` facade's
//! global Prometheus recorder; this module only renders it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_pipeline::NodeStatus;
use tokio_util::sync::CancellationToken;

mod chart;
pub mod cluster;
pub mod history;
mod render;
pub mod series;
pub mod ui;

/// What the handlers read.
pub struct AdminState {
    pub status: NodeStatus,
    pub metrics: PrometheusHandle,
    pub token: Option<String>,
    pub console: ui::Console,
}

/// Installs the global Prometheus recorder (once per process), with the
/// global label `pipeline`, and starts its upkeep (histogram maintenance)
/// until `stop`.
pub fn install_metrics(
    stop: CancellationToken,
    pipeline: &sluice_config::Pipeline,
) -> anyhow::Result<PrometheusHandle> {
    // Seconds; batch applies range from a millisecond to minutes of retries.
    const BUCKETS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("sluice_batch_apply_seconds".into()), BUCKETS)?
        .add_global_label("pipeline", pipeline.name.clone())
        .install_recorder()?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

/// `# HELP` lines (the series that show before their first change are
/// registered by [`series::register`]).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "sluice_rows_total",
        "Rows passed by a stage, by stage (extract: source table, load: target table)"
    );
    describe_counter!(
        "sluice_bytes_total",
        Unit::Bytes,
        "Approximate decoded bytes of those rows"
    );
    describe_counter!(
        "sluice_batches_total",
        "Batches cut (extract) or applied (load)"
    );
    describe_counter!("sluice_ddl_total", "DDL statements applied to the target");
    describe_histogram!(
        "sluice_batch_apply_seconds",
        Unit::Seconds,
        "Time to apply one row batch to the target, retries included"
    );
    describe_gauge!(
        "sluice_lag_seconds",
        Unit::Seconds,
        "Replication lag: 0 when caught up, else age of the oldest unapplied change; NaN while this node does not measure it (not active)"
    );
    describe_gauge!("sluice_acknowledged_batch", "Last acknowledged batch id");
    describe_gauge!(
        "sluice_acknowledged_file_index",
        "Binlog file number of the acknowledged position (mysql-bin.000042 = 42)"
    );
    describe_gauge!(
        "sluice_acknowledged_offset",
        "Binlog offset of the acknowledged position"
    );
    describe_gauge!(
        "sluice_batches_in_flight",
        "Batches cut but not yet acknowledged"
    );
    describe_gauge!(
        "sluice_queue_bytes",
        Unit::Bytes,
        "Bytes held by the queue after each stage"
    );
    describe_gauge!(
        "sluice_connection_up",
        "1 when the connection to the peer (source, target, etcd) works, else 0"
    );
    describe_gauge!("sluice_active", "1 while this node is the active one");
    describe_gauge!(
        "sluice_halted",
        "1 while the pipeline is halted on a definite error (until an operator resolves it)"
    );
    describe_gauge!(
        "sluice_paused",
        "1 while the pipeline is paused by an operator"
    );
    describe_counter!(
        "sluice_leadership_changes_total",
        "Leadership gained or lost by this node"
    );
    describe_counter!(
        "sluice_source_switches_total",
        "Moves to another server of source.urls"
    );
    describe_counter!(
        "sluice_errors_total",
        "Errors by class (transient: retried, definite: stopped the pipeline) and stage"
    );
    describe_counter!(
        "sluice_events_total",
        "Events and alarms raised, by kind and state"
    );
    describe_counter!(
        "sluice_webhook_deliveries_total",
        "Webhook deliveries by result (after retries)"
    );
    describe_counter!(
        "sluice_webhook_dropped_total",
        "Events dropped because a webhook's queue was full"
    );
}

/// Serves the admin endpoint on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .route("/ui", get(ui::page))
        .route("/ui/live", get(ui::live))
        .route("/ui/history", get(ui::history))
        .route("/ui/login", axum::routing::post(ui::login))
        .route("/ui/logout", axum::routing::post(ui::logout))
        .with_state(Arc::new(state));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let role = serde_json::to_value(state.status.role()).unwrap_or_default();
    match state.status.readiness() {
        Ok(reason) => json(
            StatusCode::OK,
            &serde_json::json!({"ready": true, "reason": reason, "role": role}),
        ),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"ready": false, "reason": reason, "role": role}),
        ),
    }
}

async fn status(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    json(StatusCode::OK, &state.status.to_json())
}

async fn metrics_text(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Without `admin.token`, everyone; with it, a request with the token as
/// `Authorization: Bearer` or with the console's session cookie.
fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(want) = state.token.as_deref() else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    constant_time_eq(given.as_bytes(), want.as_bytes()) || state.console.has_session(headers)
}

/// `None` when allowed, else the 401 response.
fn check_token(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    if authorized(state, headers) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized: admin.token is set; send Authorization: Bearer TOKEN (or sign in at /ui)\n",
        )
            .into_response(),
    )
}

/// Compares without an early exit, so response time does not reveal how
/// much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
