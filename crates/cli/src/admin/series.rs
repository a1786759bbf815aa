//! The series a node exports from its first scrape, before anything
//! happens: every counter at 0, every gauge at its "nothing yet" value, and
//! the labelled series of the configured pipeline — so that a fresh node's
//! `/metrics` already names every metric the Grafana dashboard
//! (`deploy/grafana/sluice.json`) and the alert rules
//! (`deploy/prometheus/alerts.yml`) use, `rate()` has a 0 to start from,
//! and an absent series means "not exported", never "not happened yet".
//!
//! * Every series carries `pipeline` (a global label of the recorder,
//!   [`super::install_metrics`]); metric names and their other labels are
//!   unchanged.
//! * Gauges whose value is unknown until this node replicates
//!   (`sluice_lag_seconds`, `sluice_acknowledged_*`) start at NaN, which
//!   no threshold comparison matches and Grafana draws as a gap; a 0 would
//!   claim "caught up".
//! * Per-table series (`sluice_rows_total`, `sluice_bytes_total`) exist from
//!   the start for the tables `filter.include` names literally (`shop.orders`,
//!   `shop\.orders`), under their source name for Extract and their routed
//!   name for Load; tables matched by a pattern appear with their first row.
//!   `sluice_statements_skipped_total{table}` names tables outside the
//!   filter, unknown until one is seen: it appears with the first skip.
//! * `sluice_connection_up{peer="etcd"}` exists only with
//!   `coordination.etcd` (a local node has no etcd to be down).

use sluice_config::{Coordination, Pipeline};
use sluice_pipeline::events::EventKind;

/// Stages that count errors (`sluice_errors_total{stage}`): the four
/// stages, the distributed scheduler and the runtime's own retries.
pub const ERROR_STAGES: &[&str] = &[
    "select",
    "extract",
    "transform",
    "load",
    "schedule",
    "runtime",
];

/// Registers the series (see the module docs) for `pipeline` on `node`.
pub fn register(pipeline: &Pipeline, node: &str) {
    use metrics::{counter, gauge, histogram};
    describe();
    gauge!("sluice_node_info", "node" => node.to_string(), "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
    for (source, target) in literal_tables(pipeline) {
        for (stage, table) in [("extract", source), ("load", target)] {
            counter!("sluice_rows_total", "stage" => stage, "table" => table.clone()).increment(0);
            counter!("sluice_bytes_total", "stage" => stage, "table" => table).increment(0);
        }
    }
    for stage in ["extract", "load"] {
        counter!("sluice_batches_total", "stage" => stage).increment(0);
    }
    counter!("sluice_ddl_total").increment(0);
    let _ = histogram!("sluice_batch_apply_seconds");
    for name in [
        "sluice_lag_seconds",
        "sluice_acknowledged_batch",
        "sluice_acknowledged_file_index",
        "sluice_acknowledged_offset",
    ] {
        gauge!(name).set(f64::NAN);
    }
    gauge!("sluice_batches_in_flight").set(0.0);
    for queue in ["select", "extract", "transform"] {
        gauge!("sluice_queue_bytes", "queue" => queue).set(0.0);
    }
    let etcd = matches!(pipeline.coordination, Coordination::Etcd { .. });
    for peer in ["source", "target", "etcd"] {
        if peer != "etcd" || etcd {
            gauge!("sluice_connection_up", "peer" => peer).set(0.0);
        }
    }
    gauge!("sluice_active").set(0.0);
    // Operator control (halt and pause) sets these under the same keys.
    gauge!("sluice_halted", "pipeline" => pipeline.name.clone()).set(0.0);
    gauge!("sluice_paused", "pipeline" => pipeline.name.clone()).set(0.0);
    for change in ["gained", "lost"] {
        counter!("sluice_leadership_changes_total", "change" => change).increment(0);
    }
    counter!("sluice_source_switches_total").increment(0);
    for class in ["transient", "definite"] {
        for stage in ERROR_STAGES {
            counter!("sluice_errors_total", "class" => class, "stage" => *stage).increment(0);
        }
    }
    for kind in EventKind::ALL {
        for state in kind.states() {
            counter!("sluice_events_total", "kind" => kind.name(), "state" => state.name())
                .increment(0);
        }
    }
    counter!("sluice_deletes_missed_total").increment(0);
    gauge!("sluice_snapshot_running").set(0.0);
    counter!("sluice_snapshot_rows_recopied_total").increment(0);
    for result in ["ok", "failed"] {
        counter!("sluice_webhook_deliveries_total", "result" => result).increment(0);
    }
    counter!("sluice_webhook_dropped_total").increment(0);
    // Continuous verification (`verify:`); set by the active node's rounds.
    counter!("sluice_verify_rounds_total").increment(0);
    counter!("sluice_verify_rows_compared_total").increment(0);
    gauge!("sluice_verify_differences").set(0.0);
    gauge!("sluice_verify_running").set(0.0);
    if pipeline.bidirectional.is_some() {
        // Per-table conflict series appear with their first conflict.
        counter!("sluice_peer_transactions_dropped_total").increment(0);
    }
}

/// `# HELP` of the metrics [`super::describe`] does not describe.
fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "sluice_node_info",
        "Always 1; labels name this node (node id, sluice version)"
    );
    describe_gauge!(
        "sluice_halted",
        "1 while the pipeline is halted on a definite error (until an operator resolves it)"
    );
    describe_gauge!(
        "sluice_paused",
        "1 while the pipeline is paused by an operator"
    );
    describe_gauge!(
        "sluice_snapshot_running",
        "1 while this node copies a snapshot (snapshot.mode: initial)"
    );
    describe_counter!(
        "sluice_snapshot_rows_total",
        "Rows a snapshot copied to the target, by source table"
    );
    describe_counter!(
        "sluice_snapshot_rows_recopied_total",
        "Rows of snapshot chunks copied again because their chunk was in flight at a failover"
    );
    describe_counter!(
        "sluice_deletes_missed_total",
        "Rows a delete named that the target did not hold"
    );
    describe_counter!(
        "sluice_peer_transactions_dropped_total",
        "Source transactions dropped because the peer pipeline of a bidirectional pair applied them"
    );
    describe_counter!(
        "sluice_conflicts_total",
        "Conflicts met by a bidirectional pipeline (target row not the source's before image), by table and winner"
    );
    describe_counter!(
        "sluice_verify_rounds_total",
        "Continuous verification rounds finished"
    );
    describe_counter!(
        "sluice_verify_rows_compared_total",
        "Source rows compared by continuous verification"
    );
    describe_gauge!(
        "sluice_verify_differences",
        "Persisting differences the last continuous verification round found"
    );
    describe_gauge!(
        "sluice_verify_running",
        "1 while a continuous verification round runs on this node"
    );
    describe_counter!(
        "sluice_statements_skipped_total",
        "Statement-format DML skipped because it writes no replicated table, by first table written"
    );
}

/// `(source, routed target)` names of the tables `filter.include` names
/// literally (see the module docs).
fn literal_tables(pipeline: &Pipeline) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pattern in pipeline.filter.include() {
        let Some((schema, table)) = literal_name(pattern.as_str()) else {
            continue;
        };
        if !pipeline.filter.includes(&schema, &table) {
            continue;
        }
        let (ts, tt) = pipeline.routes.route(&schema, &table);
        let entry = (format!("{schema}.{table}"), format!("{ts}.{tt}"));
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// `schema.table` when the regex `pattern` is a plain name (letters,
/// digits, `_`, `$`, `-`, one `.` or `\.` between schema and table).
fn literal_name(pattern: &str) -> Option<(String, String)> {
    let plain = pattern.replace("\\.", ".");
    let (schema, table) = plain.split_once('.')?;
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-')
    };
    (ok(schema) && ok(table)).then(|| (schema.to_string(), table.to_string()))
}

#[cfg(test)]
mod tests {
    use super::literal_name;

    #[test]
    fn only_plain_names_are_literal() {
        let pair = |s: &str, t: &str| Some((s.to_string(), t.to_string()));
        assert_eq!(literal_name("shop.orders"), pair("shop", "orders"));
        assert_eq!(
            literal_name(r"shop\.order_items"),
            pair("shop", "order_items")
        );
        assert_eq!(literal_name(r"shop\..*"), None);
        assert_eq!(literal_name("shop.(a|b)"), None);
        assert_eq!(literal_name("shop"), None);
        assert_eq!(literal_name("a.b.c"), None);
        assert_eq!(literal_name("(?i)shop.orders"), None);
    }
}
