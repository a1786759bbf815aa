//! One definition of lag everywhere (`sluice_pipeline::lag`): an idle,
//! caught-up pipeline reads 0 in `/status`, `/metrics`, the progress log,
//! `sluice status` and `sluice positions` alike, however old its last change
//! is; a stuck one (the source silent: no heartbeats) reads a growing lag in
//! all of them, and 0 again once it is back.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sluice_testkit::{free_port, wait_until_async};

use crate::ha::{marker_latency, setup, wait_leader};
use crate::ops::{get, metric};
use crate::pipeline::{server_id, Sluice, TestResult};

/// Every place that shows lag, read once.
#[derive(Debug)]
struct Lags {
    status: Option<u64>,
    metric: Option<f64>,
    cli_status: Option<u64>,
    cli_counters: Option<u64>,
    cli_positions: Option<u64>,
    basis: Value,
    event_unix: Option<i64>,
}

async fn cli_json(args: &[&str], config: &Path) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

async fn read_lags(admin: &str, config: &Path) -> Lags {
    let (_, body) = get(admin, "/status", None).await;
    let status: Value = serde_json::from_str(&body).unwrap_or_default();
    let (_, metrics) = get(admin, "/metrics", None).await;
    let cli = cli_json(&["status", "--json"], config).await;
    let positions = cli_json(&["positions", "--json"], config).await;
    Lags {
        status: status["lag_seconds"].as_u64(),
        metric: metric(&metrics, "sluice_lag_seconds"),
        cli_status: cli["position"]["lag_seconds"].as_u64(),
        cli_counters: cli["stage_counters"]["lag_seconds"].as_u64(),
        cli_positions: positions["position"]["lag_seconds"].as_u64(),
        basis: cli["position"]["lag_basis"].clone(),
        event_unix: cli["position"]["event_unix"].as_i64(),
    }
}

/// Polls until `check` holds for every place, or fails with what was seen.
async fn wait_lags(
    admin: &str,
    config: &Path,
    what: &str,
    timeout: Duration,
    node: &Sluice,
    check: impl Fn(&Lags) -> bool,
) -> Lags {
    let found = wait_until_async(what, timeout, Duration::from_millis(300), || async {
        let lags = read_lags(admin, config).await;
        check(&lags).then_some(lags)
    })
    .await;
    match found {
        Ok(lags) => lags,
        Err(e) => panic!(
            "{e}; last seen {:?}\n{}",
            read_lags(admin, config).await,
            node.log_tail()
        ),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The `lag_s` of the last progress line in `log`, if it has one.
fn last_progress_lag(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(" progress "))?;
    let at = line.find("lag_s=")? + "lag_s=".len();
    line[at..].split_whitespace().next()?.parse().ok()
}

#[tokio::test]
async fn idle_reads_zero_everywhere_and_a_silent_source_reads_growing_lag() -> TestResult {
    let (source, target, etcd, _dir, config) = setup("idle").await?;
    let port = free_port();
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        format!("{text}admin: {{ listen: \"127.0.0.1:{port}\" }}\n"),
    )?;
    let admin = format!("127.0.0.1:{port}");
    let node = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "idle", Some("node-a"), Duration::from_secs(30)).await;
    marker_latency(&source, &target, 1, Duration::from_secs(30), &[&node]).await;

    // Idle: the last change gets older, the lag stays 0 everywhere.
    let idle = wait_lags(
        &admin,
        &config,
        "an idle pipeline reading 0 with a change 5 s old",
        Duration::from_secs(30),
        &node,
        |l| {
            l.event_unix.is_some_and(|t| now_unix() - t >= 5)
                && l.status == Some(0)
                && l.metric == Some(0.0)
                && l.cli_status == Some(0)
                && l.cli_counters == Some(0)
                && l.cli_positions == Some(0)
        },
    )
    .await;
    assert_eq!(idle.basis, "active_node", "{idle:?}");
    // The progress log (every 2 s here) says so too.
    node.wait_log(
        "a progress line with lag_s=0",
        Duration::from_secs(10),
        |log| (last_progress_lag(log) == Some(0)).then_some(()),
    )
    .await;

    // Stuck: the source stops answering (no heartbeats): lag grows, in
    // every place.
    source.pause();
    let stuck = wait_lags(
        &admin,
        &config,
        "a silent source reading a growing lag",
        Duration::from_secs(30),
        &node,
        |l| {
            l.status.is_some_and(|s| s >= 3)
                && l.metric.is_some_and(|m| m >= 3.0)
                && l.cli_status.is_some_and(|s| s >= 3)
                && l.cli_positions.is_some_and(|s| s >= 3)
        },
    )
    .await;
    println!("stuck: {stuck:?}");
    assert!(
        node.log_text()
            .lines()
            .rev()
            .take(50)
            .any(|l| l.contains(" progress ") && !l.contains("lag_s=0 ")),
        "{}",
        node.log_tail()
    );

    // Back: 0 again, and the pipeline still replicates.
    source.resume();
    wait_lags(
        &admin,
        &config,
        "lag back to 0 once the source answers",
        Duration::from_secs(60),
        &node,
        |l| l.status == Some(0) && l.cli_status == Some(0),
    )
    .await;
    marker_latency(&source, &target, 2, Duration::from_secs(30), &[&node]).await;
    Ok(())
}
