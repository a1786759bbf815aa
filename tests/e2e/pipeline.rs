//! `sluice run` end to end: the real binary between a real source and a real
//! target, with positions in etcd or a local directory.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};

// The helpers that lived here are in `crate::support`; these are their old
// paths, kept for tests written against them.
#[allow(unused_imports)]
pub use crate::support::sluice::{server_id, write_config, Coord, Sluice};
#[allow(unused_imports)]
pub use crate::support::sql::{rows, start_of_binlog, wait_same};
#[allow(unused_imports)]
pub use crate::support::TestResult;

/// The basic loop: inserts, updates (incl. a key change), deletes, DDL,
/// a graceful stop that flushes the position, and a resume that neither
/// loses nor repeats anything.
#[tokio::test]
async fn replicates_resumes_and_stops_gracefully() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    source
        .exec(
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2));
             INSERT INTO shop.items VALUES (1, 'ünïcødé 🦀', 9.99), (2, 'plain', 100.00), (3, NULL, 0.01);",
        )
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "basic",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    let mut sluice = Sluice::start(&config);
    let all = "SELECT id, name, price FROM shop.items ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;

    source
        .exec(
            "UPDATE shop.items SET price = 10.49 WHERE id = 1;
             UPDATE shop.items SET id = 20 WHERE id = 2;
             DELETE FROM shop.items WHERE id = 3;
             ALTER TABLE shop.items ADD COLUMN stock INT NOT NULL DEFAULT 7;
             INSERT INTO shop.items (id, name, price, stock) VALUES (4, 'new', 1.00, 3);",
        )
        .await?;
    let all = "SELECT id, name, price, stock FROM shop.items ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &sluice).await;

    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}\n{}", sluice.log_tail());
    assert!(
        sluice.log_text().contains("stopped"),
        "{}",
        sluice.log_tail()
    );

    // Changes while it is down arrive after the restart, exactly once.
    source
        .exec(
            "INSERT INTO shop.items (id, name, price) VALUES (5, 'while down', 2.00);
             UPDATE shop.items SET stock = stock + 1;",
        )
        .await?;
    sluice.restart();
    wait_same(&source, &target, all, all, Duration::from_secs(30), &sluice).await;
    let checkpoint = rows(
        &target,
        "SELECT batch_id, position, applying_batch_id FROM sluice_meta.checkpoint WHERE pipeline = 'basic'",
    )
    .await;
    assert_eq!(checkpoint.len(), 1, "{checkpoint:?}");
    let stored =
        std::fs::read_to_string(state.join("basic").join("position.json")).unwrap_or_default();
    assert!(stored.contains("batch_id"), "stored position: {stored}");
    let started = Instant::now();
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}\n{}", sluice.log_tail());
    assert!(started.elapsed() < Duration::from_secs(15));
    Ok(())
}

/// Filters, routes and column rules are applied: excluded tables and
/// schemas never reach the target, routed tables land under their new
/// names, an excluded column's values are never copied; the position is in
/// etcd under the pipeline's key.
#[tokio::test]
async fn filters_routes_and_column_rules() -> TestResult {
    let (source, target, etcd) = tokio::try_join!(MariaDb::source(), MariaDb::target(), async {
        Etcd::start().await
    })?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "routes",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        "filter: { include: ['shop\\..*'], exclude: ['shop\\.tmp_.*'] }\n\
         routes: [ { match: 'shop\\.(.*)', to: 'shop_copy.$1' } ]\n\
         columns: [ { table: 'shop\\.users', exclude: [password_hash], rename: {} } ]\n\
         batch: { max_delay: 5ms }\n",
    );
    source
        .exec(
            "CREATE DATABASE shop; CREATE DATABASE other;
             CREATE TABLE shop.users (id INT PRIMARY KEY, name VARCHAR(40), password_hash VARBINARY(64));
             CREATE TABLE shop.tmp_import (id INT PRIMARY KEY, v INT);
             CREATE TABLE other.t (id INT PRIMARY KEY);
             INSERT INTO shop.users VALUES (1, 'ada', UNHEX('DEADBEEF')), (2, 'bob', UNHEX('CAFE'));
             INSERT INTO shop.tmp_import VALUES (1, 1);
             INSERT INTO other.t VALUES (1);
             UPDATE shop.users SET password_hash = UNHEX('00'), name = 'ada l.' WHERE id = 1;
             RENAME TABLE shop.users TO shop.members;
             INSERT INTO shop.members VALUES (3, 'cy', UNHEX('01'));",
        )
        .await?;
    let mut sluice = Sluice::start(&config);
    // `members` is no longer matched by the `shop\.users` column rule: its
    // password_hash is copied from then on, as the rules say.
    wait_same(
        &source,
        &target,
        "SELECT id, name, IF(id = 3, HEX(password_hash), NULL) FROM shop.members ORDER BY id",
        "SELECT id, name, HEX(password_hash) FROM shop_copy.members ORDER BY id",
        Duration::from_secs(60),
        &sluice,
    )
    .await;
    let schemas = rows(&target, "SHOW DATABASES").await;
    let names: Vec<String> = schemas.into_iter().filter_map(|r| r[0].clone()).collect();
    assert!(names.contains(&"shop_copy".to_string()), "{names:?}");
    assert!(!names.contains(&"shop".to_string()), "{names:?}");
    assert!(!names.contains(&"other".to_string()), "{names:?}");
    let tables = rows(&target, "SHOW TABLES FROM shop_copy").await;
    assert_eq!(tables, vec![vec![Some("members".to_string())]]);

    let key = crate::support::etcd::pipeline_keys("routes").position();
    let record = wait_until_async(
        &format!("a position in etcd at {key}"),
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let stored = crate::support::etcd::etcd_values(&etcd, &key, false).await;
            stored.into_iter().next()
        },
    )
    .await?;
    assert_eq!(record["written_by"], "e2e", "{record}");
    assert!(record["batch_id"].as_u64() > Some(0), "{record}");
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

/// The target is down for 10 s while the source keeps writing: sluice
/// waits (it does not exit, it does not skip) and converges afterwards.
#[tokio::test]
async fn waits_out_a_target_outage() -> TestResult {
    let (source, mut target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id INT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "outage",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    let mut sluice = Sluice::start(&config);
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    source
        .exec("INSERT INTO shop.events VALUES (0, 'before')")
        .await?;
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;

    target.stop().await;
    let outage = Instant::now();
    let mut conn = source.conn().await?;
    let mut id = 1;
    // A paced, bounded write load for the outage.
    while outage.elapsed() < Duration::from_secs(10) && id <= 200 {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'during')", (id,))
            .await?;
        if id % 3 == 0 {
            conn.exec_drop(
                "UPDATE shop.events SET v = 'updated' WHERE id = ?",
                (id - 1,),
            )
            .await?;
        }
        id += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sluice.is_running(),
        "sluice exited during the outage:\n{}",
        sluice.log_tail()
    );
    target.start().await?;
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;
    assert!(
        sluice.log_text().contains("transient target error"),
        "{}",
        sluice.log_tail()
    );
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

/// A definite target error stops the pipeline with one message naming the
/// batch, table, key and the server's error; the stored position is before
/// the failing batch, and a restart (after the operator fixed the target)
/// resumes there without losing anything.
#[tokio::test]
async fn definite_target_error_stops_before_the_failing_batch() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.notes (id INT PRIMARY KEY, body VARCHAR(40));
             INSERT INTO shop.notes VALUES (1, 'short');",
        )
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "definite",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    let mut sluice = Sluice::start(&config);
    let all = "SELECT id, body FROM shop.notes ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;

    // The operator's mistake: the target column is narrower than the source's.
    target
        .exec("ALTER TABLE shop.notes MODIFY body VARCHAR(5)")
        .await?;
    let before: Vec<(String, u64, String, String)> = source.query("SHOW MASTER STATUS").await?;
    source
        .exec("INSERT INTO shop.notes VALUES (2, 'far too long for five')")
        .await?;
    let status = sluice.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1), "{}", sluice.log_tail());
    let log = sluice.log_text();
    let line = log
        .lines()
        .find(|l| l.starts_with("sluice: pipeline `definite` stopped:"))
        .unwrap_or_else(|| panic!("no stop message in:\n{log}"));
    for part in [
        "batch ",
        "`shop`.`notes`",
        "key (id=2)",
        "1406",
        "Data too long",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let failed_batch: u64 = line
        .split("batch ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no batch id in: {line}"));
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        state.join("definite").join("position.json"),
    )?)?;
    assert!(
        stored["batch_id"].as_u64() < Some(failed_batch),
        "stored {stored} vs failed batch {failed_batch}"
    );
    let (file, offset) = (&before[0].0, before[0].1);
    assert_eq!(
        stored["position"]["file"].as_str(),
        Some(file.as_str()),
        "{stored}"
    );
    assert!(
        stored["position"]["offset"].as_u64() <= Some(offset),
        "stored {stored} passes the failing insert at {file}:{offset}"
    );

    // Fixed by the operator: a restart applies the batch and goes on.
    target
        .exec("ALTER TABLE shop.notes MODIFY body VARCHAR(40)")
        .await?;
    sluice.restart();
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

/// A broken pipeline file is refused before anything connects, with every
/// problem as FILE:LINE:COL.
#[tokio::test]
async fn run_refuses_a_bad_file_before_connecting() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\n\
         source: { url: \"mysql://repl:${SLUICE_E2E_UNDEFINED}@127.0.0.1:1\", server_id: x }\n\
         target: { url: \"mysql://root@127.0.0.1:1\" }\n\
         filter: { include: ['(unclosed'] }\n\
         batch: { max_rows: 10, colour: blue }\n",
    )?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("SLUICE_E2E_UNDEFINED")
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "bad.yaml:2:30: source.url: undefined variable `SLUICE_E2E_UNDEFINED`",
        "bad.yaml:2:79:",
        "source.server_id",
        "bad.yaml:4:21:",
        "filter.include[0]",
        "bad.yaml:5:24:",
        "batch.colour",
    ] {
        assert!(err.contains(part), "`{part}` missing from:\n{err}");
    }
    assert!(!err.contains("connect"), "{err}");
    Ok(())
}

/// `sluice migrate` creates the metadata tables on the target, and is
/// idempotent.
#[tokio::test]
async fn migrate_creates_the_metadata_tables() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let config = write_config(
        dir.path(),
        "migrate",
        &source,
        &target,
        Coord::Local(&state),
        "latest",
        "",
    );
    for _ in 0..2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["migrate", "--config"])
            .arg(&config)
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("OK: target "), "{stdout}");
    }
    let columns = rows(
        &target,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = 'sluice_meta' AND TABLE_NAME = 'checkpoint' ORDER BY ORDINAL_POSITION",
    )
    .await;
    let names: Vec<String> = columns.into_iter().filter_map(|r| r[0].clone()).collect();
    assert_eq!(
        names,
        [
            "pipeline",
            "batch_id",
            "position",
            "updated_at",
            "applied_through",
            "applying_batch_id",
            "applying_through"
        ]
    );
    Ok(())
}

/// Generated columns are computed by the target, never written.
#[tokio::test]
async fn generated_columns_are_left_to_the_target() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    source
        .exec(
            "CREATE DATABASE shop;
             CREATE TABLE shop.g (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,
                                  s VARCHAR(20) AS (CONCAT('n', a)) STORED, b INT);
             INSERT INTO shop.g (id, a, b) VALUES (1, 10, 1), (2, NULL, 2);
             UPDATE shop.g SET a = 11 WHERE id = 1;
             DELETE FROM shop.g WHERE id = 2;
             INSERT INTO shop.g (id, a, b) VALUES (3, 30, 3);",
        )
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "generated",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    let mut sluice = Sluice::start(&config);
    let all = "SELECT id, a, v, s, b FROM shop.g ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}
