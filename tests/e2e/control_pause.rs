//! Operator pause (issue 18) on etcd: `pause` holds through a failover,
//! `status` and `/readyz` show it, and a pause outlasting the source's
//! `net_write_timeout` (the source drops the unread dump) resumes with
//! nothing lost or repeated. Split from [`crate::control`] for size.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_testkit::MariaDb;

use crate::control::{cli, cli_json, pair, refused, text, wait_errors, PAIR};
use crate::ha::{paced_load, wait_leader};
use crate::ops::{admin_addr, get, metric};
use crate::pipeline::{rows, server_id, wait_same, write_config, Coord, Sluice, TestResult};
use crate::support::ha::setup_with;
use crate::support::sql::number;

/// `pause` under load: no row reaches the target while paused — also
/// after SIGKILL of the active node, the standby taking over paused —;
/// `resume` catches up and the target equals the source.
#[tokio::test]
async fn pause_holds_through_failover_and_resume_catches_up() -> TestResult {
    let (source, target, etcd, dir, config, mut a, mut b) = pair("pause").await?;
    let why = refused(&["resume"], &config).await;
    assert!(why.contains("not paused"), "{why}");
    // Without etcd there is nothing to pause through.
    let local = write_config(
        dir.path(),
        "local",
        &source,
        &target,
        Coord::Local(&dir.path().join("state")),
        "latest",
        "",
    );
    let why = refused(&["pause"], &local).await;
    assert!(why.contains("coordination.etcd"), "{why}");

    let mut conn = source.conn().await?;
    let load = paced_load(&mut conn, 100..800, 10, Some(7));
    let b_addr = admin_addr(&b).await;
    let paused_and_failed_over = async {
        // Part-way into the load: some of its rows reached the target.
        sluice_testkit::wait_until_async(
            "the load under way on the target",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                let n = number(&target, "SELECT COUNT(*) FROM shop.events WHERE id >= 100").await;
                n.is_some_and(|n| n >= 20).then_some(())
            },
        )
        .await
        .expect("the load reaches the target");
        let out = cli_json(&["pause"], &config).await;
        assert_eq!(out["acknowledged_by"], "node-a", "{out:#}");
        let held = rows(&target, "SELECT id, v FROM shop.events ORDER BY id").await;
        let why = refused(&["pause"], &config).await;
        assert!(why.contains("already paused"), "{why}");
        let check = |what: &'static str| {
            let held = held.clone();
            let target = &target;
            async move {
                let now = rows(target, "SELECT id, v FROM shop.events ORDER BY id").await;
                assert!(
                    now == held,
                    "rows reached the target while paused ({what}): {} then {}",
                    held.len(),
                    now.len()
                );
            }
        };
        check("after the pause").await;
        // `sluice status` shows the pause, in JSON and in text.
        let status = cli_json(&["status"], &config).await;
        assert_eq!(status["halted"], false, "{status:#}");
        assert!(
            status["paused"]["operator"]
                .as_str()
                .is_some_and(|o| o.contains('@')),
            "{status:#}"
        );
        let human = cli(&["status"], &config).await;
        assert!(human.status.success(), "{}", text(&human));
        let human = String::from_utf8_lossy(&human.stdout).to_string();
        assert!(
            human
                .lines()
                .any(|l| l.trim_start().starts_with("paused") && l.contains("yes, by")),
            "{human}"
        );
        a.kill().await;
        wait_leader(&etcd, "pause", Some("node-b"), Duration::from_secs(20)).await;
        // node-b leads and confirms the pause.
        wait_errors(&config, "acknowledged by node-b", &[&b], |s| {
            s["paused"]["acknowledged"]["node"] == "node-b"
        })
        .await;
        let (code, body) = get(&b_addr, "/readyz", None).await;
        assert_eq!(code, 503, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(body["reason"], "paused", "{body}");
        let (_, metrics) = get(&b_addr, "/metrics", None).await;
        assert_eq!(
            metric(&metrics, "sluice_paused{pipeline=\"pause\"}"),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "sluice_halted{pipeline=\"pause\"}"),
            Some(0.0),
            "{metrics}"
        );
        check("after the failover").await;
        held
    };
    let ((), held) = tokio::join!(load, paused_and_failed_over);
    // The whole load is on the source; the target still holds what it held.
    assert_eq!(
        rows(&target, "SELECT id, v FROM shop.events ORDER BY id").await,
        held
    );
    let behind = rows(&source, "SELECT COUNT(*) FROM shop.events").await;
    println!(
        "paused with {} rows on the target, {behind:?} on the source",
        held.len()
    );

    let out = cli_json(&["resume"], &config).await;
    assert_eq!(out["state"], "done");
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &b).await;
    let status = cli_json(&["status"], &config).await;
    assert!(status["paused"].is_null(), "{status:#}");
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    Ok(())
}

/// The ids of the source's binlog dump threads.
async fn dump_threads(source: &MariaDb) -> Vec<u64> {
    rows(
        source,
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID",
    )
    .await
    .into_iter()
    .filter_map(|r| r[0].as_deref().and_then(|v| v.parse().ok()))
    .collect()
}

/// A pause outlasting the source's `net_write_timeout`: while paused the
/// node stops reading the dump (the bounded channels fill), so the source
/// gives up on it and closes it. On `resume` the node reconnects from the
/// last whole transaction: the target equals the source — a keyless table
/// shows any repeat — and the log has no ERROR line.
#[tokio::test]
async fn pause_outlasting_the_source_timeout_resumes_without_loss() -> TestResult {
    // Small batches and a window of two: the node buffers little, so a
    // bounded load fills the buffers and the socket's.
    let settings = PAIR.replace(
        "batch: { max_delay: 5ms }",
        "batch: { max_delay: 5ms, max_rows: 200, max_bytes: 256KiB, window: 2 }",
    );
    let (source, target, _etcd, _dir, config) = setup_with("longpause", &settings).await?;
    // A dump the replica stops reading is dropped after 2 s (the dump
    // session takes the global values when it connects, below).
    source
        .exec("SET GLOBAL net_write_timeout = 2; SET GLOBAL net_read_timeout = 2;")
        .await?;
    source
        .exec("CREATE TABLE shop.pad (id BIGINT NOT NULL, pad TEXT)")
        .await?;
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    source
        .exec("INSERT INTO shop.events VALUES (1, 'first'); INSERT INTO shop.pad VALUES (1, 'first');")
        .await?;
    let events = "SELECT id, v FROM shop.events ORDER BY id";
    let pad = "SELECT id, MD5(pad) FROM shop.pad ORDER BY id, MD5(pad)";
    wait_same(
        &source,
        &target,
        events,
        events,
        Duration::from_secs(30),
        &a,
    )
    .await;
    wait_same(&source, &target, pad, pad, Duration::from_secs(30), &a).await;
    let dumps = dump_threads(&source).await;
    assert_eq!(dumps.len(), 1, "one dump: {dumps:?}");

    let out = cli_json(&["pause"], &config).await;
    assert_eq!(out["acknowledged_by"], "node-a", "{out:#}");
    let held = (rows(&target, events).await, rows(&target, pad).await);
    // Load until the source drops the dump it can no longer write to
    // (bounded: at most 4,000 statements of 40 KB).
    let mut conn = source.conn().await?;
    let row = format!("REPEAT('{}', 2000)", 'x');
    let mut id = 100i64;
    let started = Instant::now();
    loop {
        let values = (0..20)
            .map(|i| format!("({}, CONCAT({id}, '-', {i}, {row}))", id + i))
            .collect::<Vec<_>>()
            .join(", ");
        conn.query_drop(format!(
            "INSERT INTO shop.pad VALUES {values}; INSERT INTO shop.events VALUES ({id}, 'load')"
        ))
        .await?;
        id += 20;
        if id % 400 == 0 && !dump_threads(&source).await.contains(&dumps[0]) {
            break;
        }
        assert!(
            id < 100 + 20 * 4000,
            "the source never dropped the dump of a paused node:\n{}",
            a.log_tail()
        );
    }
    println!(
        "the source dropped the paused dump after {} MB of load, {:.1} s into the pause",
        (id - 100) * 2 / 1000,
        started.elapsed().as_secs_f64()
    );
    // A few rows more after the drop, and a pause well past the timeout.
    for more in 0..20i64 {
        conn.exec_drop(
            "INSERT INTO shop.events VALUES (?, 'after the drop')",
            (id + more,),
        )
        .await?;
    }
    assert_eq!(
        (rows(&target, events).await, rows(&target, pad).await),
        held,
        "rows reached the target while paused"
    );
    assert!(a.is_running(), "{}", a.log_tail());

    let out = cli_json(&["resume"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    wait_same(
        &source,
        &target,
        events,
        events,
        Duration::from_secs(120),
        &a,
    )
    .await;
    wait_same(&source, &target, pad, pad, Duration::from_secs(120), &a).await;
    let log = a.log_text();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:#?}");
    if std::env::var_os("SLUICE_TEST_DUMP").is_some() {
        println!("{log}");
    }
    let status = a.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", a.log_tail());
    Ok(())
}
