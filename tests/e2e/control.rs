//! Operator control on an active/standby pair in etcd (issue 18): a
//! definite error halts the pipeline in place and `sluice errors
//! skip|replace|retry` resolve it; `handover` switches the active node
//! within a second without losing or repeating a row; `source switch`
//! moves to a replica by GTID. `pause` is in [`crate::control_pause`],
//! which shares the helpers here.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_testkit::{Etcd, MariaDb};

use crate::ha::{paced_load, wait_leader};
use crate::ops::{admin_addr, get, metric};
use crate::pipeline::{
    rows, server_id, start_of_binlog, wait_same, write_config, Coord, Sluice, TestResult,
};
use crate::support::ha::{setup_with, wait_load_applied};

pub(crate) const PAIR: &str = "ha: { lease_ttl: 3s, standby_delay: 1s }\n\
                    batch: { max_delay: 5ms }\n\
                    admin: { listen: \"127.0.0.1:0\" }\n";

/// Runs `sluice ARGS --config CONFIG` to completion.
pub(crate) async fn cli(args: &[&str], config: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).arg("--config").arg(config);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("sluice answered within 120 s")
        .expect("run sluice")
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sluice ARGS --json`, which must succeed, as JSON.
pub(crate) async fn cli_json(args: &[&str], config: &Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(&all, config).await;
    assert!(out.status.success(), "sluice {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)))
}

/// `sluice ARGS`, which must be refused (exit 1, one line on stderr);
/// returns that line.
pub(crate) async fn refused(args: &[&str], config: &Path) -> String {
    let out = cli(args, config).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "sluice {args:?} should be refused: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(stderr.contains("refused"), "{}", text(&out));
    assert_eq!(stderr.lines().count(), 1, "one message: {}", text(&out));
    stderr
}

/// Polls `sluice errors --json` until `check` holds.
pub(crate) async fn wait_errors(
    config: &Path,
    what: &str,
    nodes: &[&Sluice],
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let state = cli_json(&["errors"], config).await;
        if check(&state) {
            return state;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never {what}: {state:#}\n{}",
            nodes
                .iter()
                .map(|n| n.log_tail())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Source with `shop.events`, target, etcd, a pipeline file for a pair
/// with admin endpoints, and the pair: node-a active (a first row
/// replicated), node-b standby.
pub(crate) async fn pair(
    name: &str,
) -> Result<
    (
        MariaDb,
        MariaDb,
        Etcd,
        tempfile::TempDir,
        PathBuf,
        Sluice,
        Sluice,
    ),
    Box<dyn std::error::Error>,
> {
    let (source, target, etcd, dir, config) = setup_with(name, PAIR).await?;
    let a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, name, Some("node-a"), Duration::from_secs(30)).await;
    let b = Sluice::start_node(&config, "node-b", Some(server_id()));
    source
        .exec("INSERT INTO shop.events VALUES (1, 'first')")
        .await?;
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;
    Ok((source, target, etcd, dir, config, a, b))
}

/// Narrows `shop.events.v` on the target and writes rows around one that no
/// longer fits (id 20): the pipeline halts on it. Returns the halt state.
async fn halt_on_a_long_value(
    source: &MariaDb,
    target: &MariaDb,
    config: &Path,
    nodes: &[&Sluice],
) -> Value {
    target
        .exec("ALTER TABLE shop.events MODIFY v VARCHAR(5)")
        .await
        .expect("narrow");
    let mut conn = source.conn().await.expect("source");
    for id in 10..15i64 {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'ok')", (id,))
            .await
            .expect("insert");
    }
    conn.exec_drop("INSERT INTO shop.events VALUES (20, 'much-too-long')", ())
        .await
        .expect("insert");
    for id in 21..26i64 {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'ok')", (id,))
            .await
            .expect("insert");
    }
    wait_errors(config, "halted", nodes, |s| s["halted"] == true).await
}

/// The target's `shop.events` ids.
async fn target_ids(target: &MariaDb) -> Vec<i64> {
    rows(target, "SELECT id FROM shop.events ORDER BY id")
        .await
        .into_iter()
        .filter_map(|r| r[0].as_deref().and_then(|v| v.parse().ok()))
        .collect()
}

/// A target column narrowed by hand halts the pair in place: both nodes
/// stay up, `/readyz` answers 503 on both, `sluice errors` names the
/// batch, table, key and server error, `load_error` fired once; after a
/// SIGKILL the standby takes over *halted* (it runs no stage). `errors skip`
/// resumes: the skipped row is in the history with its image, everything
/// else arrives.
#[tokio::test]
async fn definite_error_halts_in_place_and_skip_resumes() -> TestResult {
    let (source, target, etcd, dir, config, mut a, mut b) = pair("halt").await?;
    // Not halted: exit 0, `"halted": false`; every resolution is refused,
    // with the same one message.
    let state = cli_json(&["errors"], &config).await;
    assert_eq!(state["halted"], false, "{state}");
    let fix = dir.path().join("fix.sql");
    std::fs::write(&fix, "INSERT INTO shop.events VALUES (20, 'fixed')")?;
    let fix = fix.display().to_string();
    let why = refused(&["errors", "retry"], &config).await;
    assert!(why.contains("not halted"), "{why}");
    for args in [
        &["errors", "skip"][..],
        &["errors", "skip", "--scope", "batch"],
        &["errors", "replace", "--sql", &fix],
    ] {
        let other = refused(args, &config).await;
        assert_eq!(
            other.replace(args[1], "retry"),
            why,
            "{args:?}: the same refusal"
        );
    }

    let state = halt_on_a_long_value(&source, &target, &config, &[&a, &b]).await;
    let error = &state["error"];
    assert_eq!(error["stage"], "load", "{state:#}");
    assert_eq!(error["node"], "node-a");
    assert_eq!(error["failure"]["table"], "`shop`.`events`", "{state:#}");
    assert_eq!(error["failure"]["key"], "(id=20)", "{state:#}");
    assert_eq!(error["failure"]["server"]["code"], 1406, "{state:#}");
    assert!(error["batch"]["start"]["file"].is_string(), "{state:#}");
    assert!(
        error["failure"]["statement"]
            .as_str()
            .unwrap_or_default()
            .contains("INSERT"),
        "{state:#}"
    );
    let human = cli(&["errors"], &config).await;
    assert!(human.status.success(), "{}", text(&human));
    let human = String::from_utf8_lossy(&human.stdout);
    println!("sluice errors:\n{human}");
    assert!(
        human.contains("much") || human.contains("(id=20)"),
        "{human}"
    );

    // Both nodes are up; neither is ready; the gauges and the event say so.
    assert!(
        a.is_running() && b.is_running(),
        "{}\n{}",
        a.log_tail(),
        b.log_tail()
    );
    let (a_addr, b_addr) = (admin_addr(&a).await, admin_addr(&b).await);
    for addr in [&a_addr, &b_addr] {
        let started = Instant::now();
        loop {
            let (code, body) = get(addr, "/readyz", None).await;
            if code == 503 && body.contains("halted") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "/readyz {code} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (_, status) = get(&a_addr, "/status", None).await;
    let status: Value = serde_json::from_str(&status)?;
    assert_eq!(status["halted"]["key"], "(id=20)", "{status:#}");
    let (_, metrics) = get(&a_addr, "/metrics", None).await;
    assert_eq!(
        metric(&metrics, "sluice_halted{pipeline=\"halt\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "sluice_events_total{kind=\"load_error\",state=\"event\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    let status_cli = cli_json(&["status"], &config).await;
    assert_eq!(status_cli["halted"], true, "{status_cli:#}");
    // Nothing at or after the failing row reached the target.
    let before = target_ids(&target).await;
    assert!(!before.iter().any(|id| *id >= 20), "{before:?}");

    // The standby does not take over into the same error: it leads halted.
    a.kill().await;
    wait_leader(&etcd, "halt", Some("node-b"), Duration::from_secs(20)).await;
    b.wait_log(
        "the standby leading halted",
        Duration::from_secs(20),
        |log| log.contains("pipeline halted: no stage runs").then_some(()),
    )
    .await;
    let state = cli_json(&["errors"], &config).await;
    assert_eq!(state["halted"], true);
    assert_eq!(
        state["error"]["node"], "node-a",
        "the record is node-a's: {state:#}"
    );
    assert_eq!(target_ids(&target).await, before);
    assert!(b.is_running(), "{}", b.log_tail());

    // Skip the failing change: the rest arrives, the skip is in the history.
    let out = cli_json(&["errors", "skip"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    assert_eq!(out["node"], "node-b", "{out:#}");
    let but_20 = "SELECT id, v FROM shop.events WHERE id <> 20 ORDER BY id";
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, but_20, all, Duration::from_secs(30), &b).await;
    let state = wait_errors(&config, "skip done", &[&b], |s| {
        s["history"][0]["state"] == "done"
    })
    .await;
    assert_eq!(state["halted"], false, "{state:#}");
    let entry = &state["history"][0];
    assert_eq!(entry["action"], "skip");
    assert_eq!(entry["scope"], "change");
    assert_eq!(entry["node"], "node-b");
    assert!(
        entry["operator"].as_str().unwrap_or_default().contains('@'),
        "{entry:#}"
    );
    assert_eq!(entry["error"]["failure"]["key"], "(id=20)");
    let skipped = entry["skipped"].as_array().cloned().unwrap_or_default();
    assert_eq!(skipped.len(), 1, "{entry:#}");
    assert_eq!(skipped[0]["kind"], "insert");
    let image = skipped[0]["after"].to_string();
    assert!(
        image.contains("much-too-long") && image.contains("20"),
        "{image}"
    );
    assert!(state["resolution"].is_null(), "{state:#}");

    // Replication goes on normally after the resolution.
    source
        .exec("INSERT INTO shop.events VALUES (30, 'after')")
        .await?;
    wait_same(&source, &target, but_20, all, Duration::from_secs(30), &b).await;
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    Ok(())
}

/// `errors skip --scope transaction` drops the whole source transaction
/// of the failing row — here one split over several batches
/// (`batch.max_rows: 2`), so its later slices go too — and nothing else.
#[tokio::test]
async fn skip_transaction_drops_the_split_source_transaction() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let extra = PAIR.replace(
        "batch: { max_delay: 5ms }",
        "batch: { max_delay: 5ms, max_rows: 2 }",
    );
    let config = write_config(
        dir.path(),
        "txn",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        &extra,
    );
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "txn", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node(&config, "node-b", Some(server_id()));
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    source
        .exec("INSERT INTO shop.events VALUES (1, 'first')")
        .await?;
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;

    target
        .exec("ALTER TABLE shop.events MODIFY v VARCHAR(5)")
        .await?;
    source
        .exec(
            "INSERT INTO shop.events VALUES (30, 'ok');
             BEGIN;
             INSERT INTO shop.events VALUES (40, 'ok');
             INSERT INTO shop.events VALUES (41, 'much-too-long');
             INSERT INTO shop.events VALUES (42, 'ok');
             INSERT INTO shop.events VALUES (43, 'ok');
             INSERT INTO shop.events VALUES (44, 'ok');
             COMMIT;
             INSERT INTO shop.events VALUES (50, 'ok');",
        )
        .await?;
    let state = wait_errors(&config, "halted", &[&a, &b], |s| s["halted"] == true).await;
    assert_eq!(state["error"]["failure"]["key"], "(id=41)", "{state:#}");
    println!("halted batch: {}", state["error"]["batch"]);
    let out = cli_json(&["errors", "skip", "--scope", "transaction"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    let without = "SELECT id, v FROM shop.events WHERE id NOT BETWEEN 40 AND 44 ORDER BY id";
    wait_same(&source, &target, without, all, Duration::from_secs(30), &a).await;
    let state = wait_errors(&config, "skip done", &[&a], |s| {
        s["history"][0]["state"] == "done"
    })
    .await;
    let entry = &state["history"][0];
    assert_eq!(entry["scope"], "transaction", "{entry:#}");
    let skipped: Vec<String> = entry["skipped"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|c| c["after"][0]["value"].to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(skipped.len(), 5, "the transaction's five rows: {entry:#}");
    for id in 40..=44 {
        assert!(
            skipped.iter().any(|s| s.contains(&id.to_string())),
            "{id}: {skipped:?}"
        );
    }

    // `--scope batch` drops the whole halted batch (at most `max_rows`
    // rows around the failing one, whichever transactions they belong to)
    // and nothing else.
    source
        .exec(
            "INSERT INTO shop.events VALUES (60, 'ok');
             INSERT INTO shop.events VALUES (61, 'much-too-long');
             INSERT INTO shop.events VALUES (62, 'ok');
             INSERT INTO shop.events VALUES (63, 'ok');",
        )
        .await?;
    let state = wait_errors(&config, "halted again", &[&a, &b], |s| s["halted"] == true).await;
    assert_eq!(state["error"]["failure"]["key"], "(id=61)", "{state:#}");
    let out = cli_json(&["errors", "skip", "--scope", "batch"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    let state = wait_errors(&config, "batch skip done", &[&a], |s| {
        s["history"][1]["state"] == "done"
    })
    .await;
    let entry = &state["history"][1];
    assert_eq!(entry["scope"], "batch", "{entry:#}");
    let dropped: Vec<i64> = entry["skipped"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|c| c["after"][0]["value"]["Int"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    println!("the batch skip dropped {dropped:?}");
    assert!(dropped.contains(&61), "{entry:#}");
    assert_eq!(
        Some(dropped.len() as u64),
        entry["error"]["batch"]["rows"].as_u64(),
        "the halted batch's rows: {entry:#}"
    );
    assert!(
        dropped.len() <= 2 && dropped.iter().all(|id| (60..=63).contains(id)),
        "the halted batch only (max_rows: 2): {entry:#}"
    );
    let list = dropped
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let without = format!(
        "SELECT id, v FROM shop.events WHERE id NOT BETWEEN 40 AND 44 AND id NOT IN ({list}) ORDER BY id"
    );
    wait_same(&source, &target, &without, all, Duration::from_secs(30), &a).await;
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// `errors replace` runs the operator's corrected statement instead of the
/// failing change and resumes; the history keeps the statement and the
/// replaced row; later changes of that row replicate as usual.
#[tokio::test]
async fn errors_replace_applies_the_corrected_statement() -> TestResult {
    let (source, target, _etcd, dir, config, mut a, mut b) = pair("replace").await?;
    halt_on_a_long_value(&source, &target, &config, &[&a, &b]).await;
    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "INSERT INTO shop.events VALUES (20, 'this-is-still-too-long')",
    )?;
    let why = refused(
        &["errors", "replace", "--sql", &bad.display().to_string()],
        &config,
    )
    .await;
    assert!(why.contains("1406") || why.contains("too long"), "{why}");
    assert_eq!(
        cli_json(&["errors"], &config).await["halted"],
        true,
        "still halted"
    );

    let fix = dir.path().join("fix.sql");
    std::fs::write(
        &fix,
        "INSERT INTO shop.events VALUES (20, 'fixed') ON DUPLICATE KEY UPDATE v = 'fixed';\n",
    )?;
    let out = cli_json(
        &["errors", "replace", "--sql", &fix.display().to_string()],
        &config,
    )
    .await;
    assert_eq!(out["state"], "done", "{out:#}");
    let expect = "SELECT id, IF(id = 20, 'fixed', v) FROM shop.events ORDER BY id";
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, expect, all, Duration::from_secs(30), &a).await;
    let state = wait_errors(&config, "replace done", &[&a], |s| {
        s["history"].as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["action"] == "replace" && e["state"] == "done")
        })
    })
    .await;
    let entry = state["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["action"] == "replace"))
        .cloned()
        .unwrap_or_default();
    assert!(
        entry["sql"]
            .as_str()
            .unwrap_or_default()
            .contains("'fixed'"),
        "{entry:#}"
    );
    assert!(
        entry["skipped"].to_string().contains("much-too-long"),
        "{entry:#}"
    );

    // The row's later changes replicate as usual.
    source
        .exec("UPDATE shop.events SET v = 'later' WHERE id = 20")
        .await?;
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// `errors retry` after the column is widened again replays the failed
/// batch: no row is lost.
#[tokio::test]
async fn errors_retry_after_fixing_the_target_loses_nothing() -> TestResult {
    let (source, target, _etcd, _dir, config, mut a, mut b) = pair("retry").await?;
    halt_on_a_long_value(&source, &target, &config, &[&a, &b]).await;
    // A retry without a fix halts again on the same row.
    let out = cli_json(&["errors", "retry"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    let state = wait_errors(&config, "halted again", &[&a, &b], |s| {
        s["halted"] == true && s["history"].as_array().is_some_and(|h| h.len() == 1)
    })
    .await;
    assert_eq!(state["error"]["failure"]["key"], "(id=20)", "{state:#}");

    target
        .exec("ALTER TABLE shop.events MODIFY v VARCHAR(20)")
        .await?;
    let out = cli_json(&["errors", "retry"], &config).await;
    assert_eq!(out["state"], "done", "{out:#}");
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;
    let state = cli_json(&["errors"], &config).await;
    assert_eq!(state["halted"], false, "{state:#}");
    assert_eq!(
        state["history"].as_array().map(Vec::len),
        Some(2),
        "{state:#}"
    );
    assert!(state["history"]
        .as_array()
        .is_some_and(|h| h.iter().all(|e| e["action"] == "retry")));
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// The worst replication delay of rows created in `[from_us, to_us)`
/// (Unix µs): target apply time minus source insert time.
async fn max_delay_ms(target: &MariaDb, table: &str, from_us: u64, to_us: u64) -> f64 {
    let got = rows(
        target,
        &format!(
            "SELECT MAX(TIMESTAMPDIFF(MICROSECOND, created, applied)) FROM shop.{table} \
             WHERE created >= FROM_UNIXTIME({from:.6}) AND created < FROM_UNIXTIME({to:.6})",
            from = from_us as f64 / 1e6,
            to = to_us as f64 / 1e6,
        ),
    )
    .await;
    got.first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |us| us / 1000.0)
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `handover --to node-b` (and back, and to any standby) under load: each
/// takes over within a second — measured as the worst delay of any row
/// written around it, from the source's insert to the target's apply — and
/// no row is lost or repeated (a table without a key shows repeats).
#[tokio::test]
async fn handover_under_load_takes_over_within_a_second() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    let columns = "id BIGINT NOT NULL, v VARCHAR(20), created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)";
    source
        .exec(&format!(
            "CREATE DATABASE shop; CREATE TABLE shop.events ({columns}, PRIMARY KEY (id)); CREATE TABLE shop.log ({columns});"
        ))
        .await?;
    // The target's extra column records when each row was applied.
    let applied = "applied TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)";
    target
        .exec(&format!(
            "CREATE DATABASE shop; CREATE TABLE shop.events ({columns}, {applied}, PRIMARY KEY (id)); CREATE TABLE shop.log ({columns}, {applied});"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    // After the DDL: the target's tables are made by hand.
    let at: Vec<(String, u64)> =
        source
            .query("SHOW MASTER STATUS")
            .await
            .map(|rows: Vec<mysql_async::Row>| {
                rows.into_iter()
                    .map(|r| (r.get(0).unwrap_or_default(), r.get(1).unwrap_or_default()))
                    .collect()
            })?;
    let start = format!("{{ file: {}, pos: {} }}", at[0].0, at[0].1);
    let config = write_config(
        dir.path(),
        "hand",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        PAIR,
    );
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "hand", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node(&config, "node-b", Some(server_id()));
    let events = "SELECT id, v, created FROM shop.events ORDER BY id";
    let log = "SELECT id, v, created FROM shop.log ORDER BY id";
    source
        .exec("INSERT INTO shop.events (id, v) VALUES (1, 'first')")
        .await?;
    wait_same(
        &source,
        &target,
        events,
        events,
        Duration::from_secs(30),
        &a,
    )
    .await;
    let why = refused(&["handover", "--to", "node-c"], &config).await;
    assert!(why.contains("not registered"), "{why}");
    let why = refused(&["handover", "--to", "node-a"], &config).await;
    assert!(why.contains("already the active node"), "{why}");

    let mut conn = source.conn().await?;
    let load = async {
        // Bounded: 1,500 ids, a row in each table, ~5 ms apart.
        for id in 100..1600i64 {
            conn.exec_drop("INSERT INTO shop.events (id, v) VALUES (?, 'load')", (id,))
                .await
                .expect("insert");
            conn.exec_drop("INSERT INTO shop.log (id, v) VALUES (?, 'load')", (id,))
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let handovers = async {
        let mut windows = Vec::new();
        for (n, (to, expect)) in [
            (Some("node-b"), "node-b"),
            (Some("node-a"), "node-a"),
            (None, "node-b"),
        ]
        .into_iter()
        .enumerate()
        {
            // Part-way into the load, and 250 of its rows applied between
            // handovers.
            wait_load_applied(
                &target,
                100,
                250 * (n as u64 + 1),
                Duration::from_secs(60),
                &[&a, &b],
            )
            .await;
            let from_us = now_us();
            let mut args = vec!["handover"];
            if let Some(to) = to {
                args.extend(["--to", to]);
            }
            let out = cli_json(&args, &config).await;
            let to_us = now_us();
            assert_eq!(out["new_active"], expect, "{out:#}");
            wait_leader(&etcd, "hand", Some(expect), Duration::from_secs(5)).await;
            windows.push((
                expect,
                from_us,
                to_us,
                out["elected_after_ms"].as_u64().unwrap_or(0),
            ));
        }
        windows
    };
    let ((), windows) = tokio::join!(load, handovers);
    let active = if wait_leader(&etcd, "hand", None, Duration::from_secs(5)).await == "node-a" {
        &a
    } else {
        &b
    };
    wait_same(
        &source,
        &target,
        events,
        events,
        Duration::from_secs(60),
        active,
    )
    .await;
    wait_same(&source, &target, log, log, Duration::from_secs(60), active).await;
    let mut worst = 0.0f64;
    for (to, from_us, to_us, elected_ms) in &windows {
        // Rows written from the command until a second after it returned.
        let delay = max_delay_ms(&target, "events", *from_us, to_us + 1_000_000)
            .await
            .max(max_delay_ms(&target, "log", *from_us, to_us + 1_000_000).await);
        println!(
            "handover to {to}: command {:.0} ms, new leader {elected_ms} ms after the resignation, worst row delay {delay:.0} ms",
            (to_us - from_us) as f64 / 1000.0
        );
        worst = worst.max(delay);
    }
    let steady = max_delay_ms(&target, "events", 0, windows[0].1).await;
    println!("worst row delay before the first handover: {steady:.0} ms");
    if std::env::var_os("SLUICE_TEST_DUMP").is_some() {
        println!("{}\n=====\n{}", a.log_text(), b.log_text());
    }
    assert!(
        worst <= 1000.0,
        "a handover took {worst:.0} ms (rows waited that long)"
    );
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// `source switch --to` a replica under load: the active node continues
/// there by GTID and nothing is lost; the choice survives a failover;
/// anything that is not an entry of `source.urls` is refused.
#[tokio::test]
async fn source_switch_to_a_replica_continues_by_gtid() -> TestResult {
    let (primary, replica, target, etcd) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::source(),
        MariaDb::target(),
        Etcd::start()
    )?;
    replica
        .exec(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{}', \
             MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;",
            primary.port(),
            sluice_testkit::REPL_USER,
            sluice_testkit::REPL_PASSWORD,
        ))
        .await?;
    primary
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&primary).await;
    let path = dir.path().join("switch.yaml");
    std::fs::write(
        &path,
        format!(
            "name: switch\n\
             source: {{ urls: [\"{}\", \"{}\"], server_id: {}, start: {start}, switch_after: never }}\n\
             target: {{ url: \"{}\" }}\n\
             coordination:\n  etcd: {{ endpoints: [\"{}\"], prefix: /e2e }}\n{PAIR}",
            primary.repl_url(),
            replica.repl_url(),
            server_id(),
            target.url(),
            etcd.endpoint(),
        ),
    )?;
    let mut a = Sluice::start_node(&path, "node-a", Some(server_id()));
    wait_leader(&etcd, "switch", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node(&path, "node-b", Some(server_id()));
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    primary
        .exec("INSERT INTO shop.events VALUES (1, 'first')")
        .await?;
    wait_same(&primary, &target, all, all, Duration::from_secs(30), &a).await;
    let a_addr = admin_addr(&a).await;
    let replica_port = format!(":{}", replica.port());
    let why = refused(&["source", "switch", "--to", "mysql://127.0.0.1:1"], &path).await;
    assert!(why.contains("not an entry of source.urls"), "{why}");
    let why = refused(
        &[
            "source",
            "switch",
            "--to",
            &format!("127.0.0.1:{}", primary.port()),
        ],
        &path,
    )
    .await;
    assert!(why.contains("already reading"), "{why}");

    let mut conn = primary.conn().await?;
    let load = paced_load(&mut conn, 100..700, 10, Some(5));
    let switch = async {
        // Part-way into the load: some of its rows replicated.
        wait_load_applied(&target, 100, 80, Duration::from_secs(30), &[&a, &b]).await;
        let to = format!("127.0.0.1:{}", replica.port());
        let out = cli_json(&["source", "switch", "--to", &to], &path).await;
        assert!(
            out["message"].as_str().unwrap_or_default().contains("GTID"),
            "{out:#}"
        );
    };
    tokio::join!(load, switch);
    wait_same(&primary, &target, all, all, Duration::from_secs(60), &a).await;
    let (_, status) = get(&a_addr, "/status", None).await;
    let status: Value = serde_json::from_str(&status)?;
    assert!(
        status["source"]
            .as_str()
            .unwrap_or_default()
            .contains(&replica_port),
        "{status:#}"
    );
    assert!(
        a.log_text().contains("source switched by an operator"),
        "{}",
        a.log_tail()
    );
    let state = cli_json(&["errors"], &path).await;
    assert_eq!(state["source"]["index"], 1, "{state:#}");

    // A new active node starts on the operator's choice.
    a.kill().await;
    wait_leader(&etcd, "switch", Some("node-b"), Duration::from_secs(20)).await;
    primary
        .exec("INSERT INTO shop.events VALUES (5000, 'after failover')")
        .await?;
    wait_same(&primary, &target, all, all, Duration::from_secs(60), &b).await;
    let b_addr = admin_addr(&b).await;
    let (_, status) = get(&b_addr, "/status", None).await;
    let status: Value = serde_json::from_str(&status)?;
    assert!(
        status["source"]
            .as_str()
            .unwrap_or_default()
            .contains(&replica_port),
        "{status:#}"
    );

    // With `switch_after: never` a dead server is left to the operator:
    // `source switch` (no --to: the next entry) moves back to the primary
    // while the replica is down.
    let mut replica = replica;
    replica.kill();
    primary
        .exec("INSERT INTO shop.events VALUES (5001, 'replica down')")
        .await?;
    let out = cli_json(&["source", "switch"], &path).await;
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!(":{}", primary.port())),
        "{out:#}"
    );
    wait_same(&primary, &target, all, all, Duration::from_secs(60), &b).await;
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    Ok(())
}
