//! Distributed stages: Select and Extract on one node, Transform and Load
//! as tasks claimed by others through etcd, batch data over the stage pipe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_testkit::{wait_until_async, Etcd, MariaDb};

use crate::support::cli::run_sluice;
use crate::support::ha::{marker_latency, paced_load, wait_leader};
use crate::support::{
    rows, server_id, start_of_binlog, wait_same, write_config, Coord, Sluice, TestResult,
};

/// Small batches, so that a short load makes many tasks.
const BASE: &str = "ha: { lease_ttl: 3s, standby_delay: 1s }\n\
                    batch: { max_delay: 5ms, max_rows: 20 }\n";

/// The shared pipeline file with this node's `node.stages` and the pipe on
/// a free loopback port.
fn node_config(base: &Path, node: &str, stages: &str) -> PathBuf {
    let text = std::fs::read_to_string(base).expect("read the pipeline file");
    let text = format!(
        "{text}node: {{ stages: [{stages}] }}\n\
         stages: {{ listen: \"127.0.0.1:0\", task_timeout: 30s, fetch_timeout: 5s }}\n"
    );
    let path = base.with_file_name(format!("{node}.yaml"));
    std::fs::write(&path, text).expect("write the node's pipeline file");
    path
}

async fn setup(
    extra: &str,
) -> Result<(MariaDb, MariaDb, Etcd, tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "split",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        &format!("{BASE}{extra}"),
    );
    Ok((source, target, etcd, dir, config))
}

/// `(batch_id, at_ms)` of every log line with `message` (e.g. `batch
/// loaded`) in `log`.
fn stage_events(log: &str, message: &str) -> Vec<(u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| Some((field(l, "batch_id=")?, field(l, "at_ms=")?)))
        .collect()
}

/// A runs select+extract, B and C transform+load. SIGKILL B under a write
/// load: C takes its work over and the target equals the source. Then
/// SIGKILL A: C becomes the active node (running Select itself) and
/// replication goes on.
#[tokio::test]
async fn worker_and_leader_loss_under_load() -> TestResult {
    let (source, target, etcd, _dir, base) = setup("").await?;
    let a_cfg = node_config(&base, "node-a", "select, extract");
    let b_cfg = node_config(&base, "node-b", "transform, load");
    let c_cfg = node_config(&base, "node-c", "transform, load");
    let mut a = Sluice::start_node(&a_cfg, "node-a", Some(server_id()));
    wait_leader(&etcd, "split", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node(&b_cfg, "node-b", Some(server_id()));
    let mut c = Sluice::start_node(&c_cfg, "node-c", Some(server_id()));
    marker_latency(&source, &target, 1, Duration::from_secs(30), &[&a, &b, &c]).await;

    let mut conn = source.conn().await?;
    let load = paced_load(&mut conn, 100..700, 5, Some(4));
    let kill_b = async {
        // When to inject the fault: part-way into the load, once both
        // workers have loaded a few batches.
        wait_until_async(
            "both workers to load 5 batches",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                (stage_events(&b.log_text(), "batch loaded").len() >= 5
                    && stage_events(&c.log_text(), "batch loaded").len() >= 5)
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: both workers never loaded a batch\nB:\n{}\nC:\n{}",
                b.log_tail(),
                c.log_tail()
            )
        });
        b.kill().await;
    };
    tokio::join!(load, kill_b);
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &c).await;
    let loaded_by_c = stage_events(&c.log_text(), "batch loaded").len();
    let leader_log = a.log_text();
    assert!(
        !leader_log.contains("batch loaded"),
        "node-a (select+extract only) loaded a batch:\n{}",
        a.log_tail()
    );
    println!(
        "split: node-b loaded {} batches before SIGKILL, node-c {loaded_by_c}",
        stage_events(&b.log_text(), "batch loaded").len()
    );

    // Now the active node.
    a.kill().await;
    wait_leader(&etcd, "split", Some("node-c"), Duration::from_secs(30)).await;
    let mut conn = source.conn().await?;
    paced_load(&mut conn, 1000..1200, 5, Some(3)).await;
    wait_same(&source, &target, all, all, Duration::from_secs(60), &c).await;

    let status = c.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", c.log_tail());
    Ok(())
}

/// Batches updating the same row reach Load out of order (node-b holds its
/// transforms back; node-c does not), and are still applied in batch_id
/// order: a trigger on the target records every value the row takes, and
/// that history only ever increases.
#[tokio::test]
async fn load_applies_in_batch_order_across_nodes() -> TestResult {
    let (source, target, etcd, _dir, base) = setup("").await?;
    source
        .exec("CREATE TABLE shop.counter (id INT PRIMARY KEY, v INT NOT NULL);")
        .await?;
    target
        .exec(
            "CREATE DATABASE audit; \
             CREATE TABLE audit.history (seq INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL);",
        )
        .await?;
    let a_cfg = node_config(&base, "node-a", "select, extract");
    let b_cfg = node_config(&base, "node-b", "transform, load");
    let c_cfg = node_config(&base, "node-c", "transform, load");
    let mut a = Sluice::start_node(&a_cfg, "node-a", Some(server_id()));
    wait_leader(&etcd, "split", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node_with_env(
        &b_cfg,
        "node-b",
        Some(server_id()),
        &[("SLUICE_TEST_TRANSFORM_DELAY_MS", "700")],
    );
    let mut c = Sluice::start_node(&c_cfg, "node-c", Some(server_id()));
    marker_latency(&source, &target, 1, Duration::from_secs(30), &[&a, &b, &c]).await;
    // The table exists on the target once its CREATE was replicated.
    wait_until_async(
        "shop.counter on the target",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let exists = rows(
                &target,
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = 'counter'",
            )
            .await;
            (exists == vec![vec![Some("1".to_string())]]).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: shop.counter never reached the target"));
    target
        .exec(
            "CREATE TRIGGER shop.counter_ins AFTER INSERT ON shop.counter FOR EACH ROW \
               INSERT INTO audit.history (v) VALUES (NEW.v); \
             CREATE TRIGGER shop.counter_upd AFTER UPDATE ON shop.counter FOR EACH ROW \
               INSERT INTO audit.history (v) VALUES (NEW.v);",
        )
        .await?;

    let mut conn = source.conn().await?;
    use mysql_async::prelude::Queryable as _;
    conn.query_drop("INSERT INTO shop.counter VALUES (1, 0)")
        .await?;
    for v in 1..=40 {
        // One transaction (and so at least one batch) per value.
        conn.exec_drop("UPDATE shop.counter SET v = ? WHERE id = 1", (v,))
            .await?;
        // Pacing, so that the updates spread over several batches.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // `sluice status` lists the batches in flight (node-b holds some back).
    let last = std::cell::RefCell::new(String::new());
    let in_flight = wait_until_async(
        "a batch in flight in `sluice status`",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let (last, a_cfg) = (&last, &a_cfg);
            async move {
                let out = run_sluice(&["status", "--json"], a_cfg).await;
                let json: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                *last.borrow_mut() = String::from_utf8_lossy(&out.stdout).into_owned();
                let tasks = json["batches_in_flight"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                (!tasks.is_empty()).then_some(tasks)
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: status never showed a batch in flight: {}",
            last.borrow()
        )
    });
    let first = &in_flight[0];
    assert!(first["batch_id"].as_u64().is_some(), "{first}");
    assert!(
        [
            "extracted",
            "transforming",
            "transformed",
            "loading",
            "loaded"
        ]
        .contains(&first["stage"].as_str().unwrap_or_default()),
        "{first}"
    );
    assert!(
        first["owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("node-")),
        "{first}"
    );
    assert!(first["age_ms"].as_u64().is_some(), "{first}");

    let all = "SELECT id, v FROM shop.counter";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &c).await;

    let history: Vec<i64> = rows(&target, "SELECT v FROM audit.history ORDER BY seq")
        .await
        .into_iter()
        .filter_map(|r| r[0].as_deref().and_then(|v| v.parse().ok()))
        .collect();
    assert_eq!(history.last(), Some(&40), "history: {history:?}");
    assert!(
        history.windows(2).all(|w| w[0] <= w[1]),
        "the row went back in time on the target: {history:?}"
    );

    // The batches did arrive at Load out of order: some batch was
    // transformed (by node-c) before an earlier one (held by node-b).
    let mut transformed = stage_events(&b.log_text(), "batch transformed");
    transformed.extend(stage_events(&c.log_text(), "batch transformed"));
    transformed.sort();
    let out_of_order = transformed
        .windows(2)
        .any(|w| w[0].0 < w[1].0 && w[1].1 < w[0].1);
    assert!(
        out_of_order,
        "every batch was transformed in order; the test proves nothing: {transformed:?}"
    );
    // And were loaded in order, whichever node loaded them.
    let mut loaded = stage_events(&b.log_text(), "batch loaded");
    loaded.extend(stage_events(&c.log_text(), "batch loaded"));
    loaded.sort_by_key(|(id, at)| (*at, *id));
    assert!(
        loaded.windows(2).all(|w| w[0].0 < w[1].0),
        "batches were loaded out of order: {loaded:?}"
    );

    for node in [&mut b, &mut c, &mut a] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}
