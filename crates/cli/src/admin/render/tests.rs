//! The console's HTML from made-up states: values escaped, sections shown
//! only when their data exists, stable hooks present.

use serde_json::json;

use super::*;
use crate::admin::history::{Basis, Sample};

fn status() -> Value {
    json!({
        "pipeline": "shop", "node": "node-a", "role": "active", "since_unix_ms": 1_700_000_000_000u64,
        "ready": true, "ready_reason": "active and replicating", "replicating": true,
        "connections": {"source": "up", "target": "down", "etcd": "up"},
        "source": "mysql://repl:***@db1:3306",
        "position": {"file": "mysql-bin.000042", "offset": 1234, "gtid": "0-1-17", "text": "x"},
        "acknowledged_batch": 77, "lag_seconds": 3, "applied_as_of_unix_ms": 1_700_000_100_000u64,
        "lag_alarm": false, "rows_per_second": 1234.5,
        "counters": {"batches_extracted": 9, "batches_loaded": 8, "rows_loaded": 800, "ddl_applied": 0,
                     "retries": 2, "in_flight": 1, "last_batch_cut": 77},
        "last_error": {"unix_ms": 1_700_000_050_000u64, "class": "transient", "stage": "load",
                       "message": "<script>alert(1)</script>"},
    })
}

fn render(status: &Value, view: &ClusterView, history: &[Sample]) -> String {
    live(&Snapshot {
        status,
        view,
        history,
        now_ms: 1_700_000_103_000,
        lag_threshold_s: 60,
        with_token: true,
    })
}

#[test]
fn the_live_part_shows_the_status_with_its_hooks() {
    let history: Vec<Sample> = (0..10)
        .map(|i| Sample {
            unix_ms: 1_700_000_058_000 + i * 5_000,
            lag_seconds: Some(i),
            rows_per_second: Some(100.0 * i as f64),
            basis: Basis::ThisNode,
        })
        .collect();
    let html = render(&status(), &ClusterView::default(), &history);
    for hook in [
        r#"id="role" class="badge active" data-value="active""#,
        r#"id="lag" data-value="3">3 s"#,
        r#"id="rows-per-second" data-value="1234.5">1234"#,
        r#"data-file="mysql-bin.000042" data-offset="1234">mysql-bin.000042:1234"#,
        r#"id="gtid" class="mono">0-1-17"#,
        r#"id="conn-target" data-value="down""#,
        r#"data-basis="this_node""#,
        r#"id="chart-lag""#,
        r#"id="chart-rows""#,
        "Local coordination",
    ] {
        assert!(html.contains(hook), "{hook} missing:\n{html}");
    }
    assert!(!html.contains("<script>"), "escaped: {html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("style="), "no style attributes (CSP)");
    assert!(!html.contains(" on"), "no event handlers");
    assert!(!html.contains("id=\"halted\"") && !html.contains("id=\"snapshot\""));
    assert_eq!(html.matches("<polyline").count(), 2);
}

#[test]
fn halt_pause_snapshot_and_verify_appear_when_the_status_has_them() {
    let mut st = status();
    st["halted"] = json!({"stage": "load", "message": "batch 3: table `s`.`t`: refused",
                          "node": "node-a", "halted_at_unix_ms": 1_700_000_000_000u64,
                          "batch_id": 3, "position_before": null, "table": "s.t", "key": "(id=1)"});
    st["paused"] = json!({"operator": "op@host", "paused_at_unix_ms": 1_700_000_000_000u64, "acknowledged_by": null});
    st["snapshot"] = json!({"state": "running", "rows_recopied": 5, "tables": [
        {"table": "shop.a", "rows_copied": 50, "rows_estimated": 100, "chunks_done": 1, "chunks_total": 2, "rows_per_s": 12.5, "eta_s": 4},
        {"table": "shop.b", "rows_copied": 10, "rows_estimated": 10, "chunks_done": 1, "chunks_total": 1}]});
    st["verify"] = json!({"state": "done", "equal": false, "tables": [
        {"table": "shop.a", "chunks": 3, "rows": 100, "differences": [{"kind": "missing_on_target"}]}]});
    let html = render(&st, &ClusterView::default(), &[]);
    assert!(
        html.contains(r#"id="halted" class="banner bad">HALTED"#),
        "{html}"
    );
    assert!(html.contains("table: s.t"), "{html}");
    assert!(html.contains(r#"id="paused""#) && html.contains("operator: op@host"));
    assert!(html.contains(r#"id="snapshot""#));
    assert!(html.contains("60 of 110 rows"), "{html}");
    assert!(
        html.contains(r#"<progress id="snapshot-chunks" value="2" max="3">"#),
        "{html}"
    );
    assert!(html.contains("<dt>rows recopied</dt><dd>5</dd>"), "{html}");
    assert!(html.contains(r#"id="verify""#) && html.contains("differences found"));
    assert!(html.contains("no samples yet"));
    // A snapshot that never ran shows nothing.
    st["snapshot"] = json!({"state": "none"});
    assert!(!render(&st, &ClusterView::default(), &[]).contains(r#"id="snapshot""#));
}

#[test]
fn a_standby_shows_the_active_node_from_etcd() {
    use sluice_coord::{LeaderRecord, NodeProgress, NodeRecord};
    let mut st = status();
    st["role"] = json!("standby");
    st["node"] = json!("node-b");
    st["lag_seconds"] = Value::Null;
    st["rows_per_second"] = Value::Null;
    let record = |id: &str, progress: Option<NodeProgress>| NodeRecord {
        node_id: id.into(),
        address: Some("127.0.0.1:9091".into()),
        role: "standby".into(),
        version: "0.1.0".into(),
        server_id: Some(4001),
        since_unix_ms: 1_700_000_000_000,
        progress,
    };
    let view = ClusterView {
        etcd: true,
        read_at_ms: Some(1_700_000_102_000),
        leader: Some((
            LeaderRecord {
                node_id: "node-a".into(),
                since_unix_ms: 1_700_000_000_000,
                handover_to: None,
            },
            5,
        )),
        nodes: vec![
            record(
                "node-a",
                Some(NodeProgress {
                    rows_loaded: 10,
                    in_flight: 2,
                    applied_as_of_unix_ms: Some(1_700_000_101_000),
                    updated_unix_ms: 1_700_000_102_500,
                    snapshot: None,
                    ..Default::default()
                }),
            ),
            record("node-b", None),
        ],
        leader_rows_per_second: Some(42.0),
        ..ClusterView::default()
    };
    let html = render(&st, &view, &[]);
    assert!(html.contains(r#"data-basis="active_node""#), "{html}");
    assert!(html.contains("as the active node node-a publishes it"));
    assert!(html.contains(r#"id="lag" data-value="2">2 s"#), "{html}");
    assert!(
        html.contains(r#"id="rows-per-second" data-value="42.0">42.0"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<tr data-node="node-a" data-role="active">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<tr data-node="node-b" data-role="standby" class="self">"#),
        "{html}"
    );
    assert!(html.contains(r#"<b id="in-flight-count">2</b>"#), "{html}");
    // etcd failing after a good read: the view stays, with the error.
    let failing = ClusterView {
        error: Some((1_700_000_103_000, "etcd did not answer".into())),
        ..view
    };
    assert!(render(&st, &failing, &[]).contains("etcd cannot be read now: etcd did not answer"));
}

#[test]
fn the_page_and_the_sign_in_page_are_self_contained() {
    let page = page(
        &Snapshot {
            status: &status(),
            view: &ClusterView::default(),
            history: &[],
            now_ms: 1_700_000_103_000,
            lag_threshold_s: 60,
            with_token: true,
        },
        "body{}",
        "/*js*/",
    );
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<style>body{}</style>") && page.contains("<script>/*js*/</script>"));
    assert!(page.contains(r#"id="refresh-state" class="refresh" data-state="server""#));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let login = login("shop", "node-a", Some("That is not the admin token."), "x");
    assert!(login.contains(r#"action="/ui/login""#) && login.contains("not the admin token"));
    assert!(!login.contains("mysql-bin"));
}

#[test]
fn a_full_page_stays_under_200_kb() {
    use crate::positions::TaskView;
    let history: Vec<Sample> = (0..crate::admin::history::CAPACITY as u64)
        .map(|i| Sample {
            unix_ms: 1_700_000_000_000 + i * 5_000,
            lag_seconds: Some(i % 97 * 1000),
            rows_per_second: Some(123_456.7 + i as f64),
            basis: Basis::ThisNode,
        })
        .collect();
    let now_ms = 1_700_000_000_000 + crate::admin::history::CAPACITY as u64 * 5_000;
    let view = ClusterView {
        etcd: true,
        distributed: true,
        read_at_ms: Some(now_ms),
        tasks: (0..200)
            .map(|i| TaskView {
                batch_id: 1_000_000 + i,
                stage: "transforming".into(),
                owner: "a-long-node-name-of-a-worker".into(),
                age_ms: 12_345,
                rows: 2000,
                load_attempts: 1,
            })
            .collect(),
        ..ClusterView::default()
    };
    let mut st = status();
    st["snapshot"] = json!({"state": "running", "tables": (0..500).map(|i| json!({
        "table": format!("schema_{i}.table_with_a_long_name_{i}"), "rows_copied": i * 1000,
        "rows_estimated": 1_000_000, "chunks_done": i, "chunks_total": 500, "rows_per_s": 1234.5, "eta_s": 99
    })).collect::<Vec<_>>()});
    let html = page(
        &Snapshot {
            status: &st,
            view: &view,
            history: &history,
            now_ms,
            lag_threshold_s: 60,
            with_token: true,
        },
        include_str!("../console.css"),
        include_str!("../console.js"),
    );
    assert!(html.len() < 200 * 1024, "{} bytes", html.len());
    assert!(html.contains("and 150 more") && html.contains("and 450 more tables"));
    println!("a full page: {} bytes", html.len());
}
