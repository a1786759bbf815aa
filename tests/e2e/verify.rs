//! `sluice verify` end to end (issue 16): exact differences while the
//! pipeline replicates under writes, `--repair`, and clear refusals.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_testkit::{Etcd, MariaDb};

use crate::support::cli::{output_text, run_sluice};
use crate::support::sluice::{write_config, Coord, Sluice};
use crate::support::sql::{start_of_binlog, wait_same};
use crate::support::TestResult;

/// The mixed tables: a wide keyed table, a composite key with a latin1
/// column, a keyless table with duplicates, and the load's own table.
const SCHEMA: &str = "CREATE DATABASE shop;
    CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2),
        updated DATETIME(3), flags BIT(8), data VARBINARY(16), score DOUBLE, doc JSON);
    CREATE TABLE shop.orders (customer INT, seq INT, note TEXT CHARACTER SET latin1,
        qty INT UNSIGNED, at TIMESTAMP(6) NULL, PRIMARY KEY (customer, seq));
    CREATE TABLE shop.log (msg VARCHAR(20), n INT);
    CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));";

async fn fill(source: &MariaDb) -> TestResult {
    let mut conn = source.conn().await?;
    conn.query_drop(SCHEMA).await?;
    conn.query_drop(
        "USE shop;
         INSERT INTO shop.items SELECT seq, CONCAT('näme ', seq), seq / 7, '2024-02-29 12:00:00.125' + INTERVAL seq SECOND,
             seq % 256, UNHEX(LPAD(HEX(seq), 8, '0')), seq / 3, CONCAT('{\"n\": ', seq, '}')
         FROM seq_1_to_3000;
         INSERT INTO shop.orders SELECT s1.seq, s2.seq, CONCAT('café ', s1.seq), s2.seq * 10,
             '2020-01-01 00:00:00' + INTERVAL s1.seq HOUR
         FROM seq_1_to_100 s1, seq_1_to_10 s2;
         INSERT INTO shop.log SELECT CONCAT('m', seq % 20), seq % 20 FROM seq_1_to_60;",
    )
    .await?;
    Ok(())
}

/// A bounded write load away from the rows the test changes on the target:
/// inserts into `events`, updates of items 1001.. and orders 50.., inserts
/// into the keyless log. Ends when `stop` is set or after its cap.
async fn load(source: &MariaDb, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = source.conn().await.expect("load connection");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && n < 30_000 {
        n += 1;
        let item = 1001 + (n * 7919) % 2000;
        let customer = 50 + n % 50;
        conn.query_drop(format!(
            "INSERT INTO shop.events VALUES ({n}, 'e{n}');
             UPDATE shop.items SET price = price + 1, updated = NOW(3), doc = JSON_OBJECT('n', {n}) WHERE id = {item};
             UPDATE shop.orders SET qty = qty + 1 WHERE customer = {customer} AND seq = {};
             {}",
            1 + n % 10,
            if n.is_multiple_of(10) { format!("INSERT INTO shop.log VALUES ('load', {n});") } else { String::new() }
        ))
        .await
        .expect("load statement");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

/// `(table, kind, key or row)` of every reported difference.
fn differences(doc: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for t in doc["tables"].as_array().expect("tables") {
        for d in t["differences"].as_array().expect("differences") {
            let what = if d["key"].is_null() {
                d["row"].to_string()
            } else {
                d["key"].to_string()
            };
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let kind = match d["columns"].as_array() {
                Some(cols) => format!("{kind} {}", Value::from(cols.clone())),
                None => kind,
            };
            assert!(
                out.insert((
                    t["table"].as_str().unwrap_or_default().to_string(),
                    kind,
                    what
                )),
                "duplicate in {doc}"
            );
        }
    }
    out
}

fn expected() -> BTreeSet<(String, String, String)> {
    let e = |t: &str, k: &str, w: &str| (format!("shop.{t}"), k.to_string(), w.to_string());
    [
        e("items", "missing_on_target", r#"{"id":1}"#),
        e("items", "missing_on_target", r#"{"id":2}"#),
        e("items", "missing_on_target", r#"{"id":3}"#),
        e("orders", "missing_on_target", r#"{"customer":1,"seq":1}"#),
        e("orders", "missing_on_target", r#"{"customer":1,"seq":2}"#),
        e("log", "missing_on_target", r#"{"msg":"m1","n":1}"#),
        e("log", "missing_on_target", r#"{"msg":"m2","n":2}"#),
        e("items", r#"different ["price"]"#, r#"{"id":10}"#),
        e("items", r#"different ["name"]"#, r#"{"id":11}"#),
        e("items", r#"different ["flags","data"]"#, r#"{"id":12}"#),
        e(
            "orders",
            r#"different ["qty"]"#,
            r#"{"customer":2,"seq":1}"#,
        ),
        e(
            "orders",
            r#"different ["note"]"#,
            r#"{"customer":2,"seq":2}"#,
        ),
        e("items", "extra_on_target", r#"{"id":90001}"#),
        e("orders", "extra_on_target", r#"{"customer":999,"seq":1}"#),
        e("log", "extra_on_target", r#"{"msg":"extra","n":7}"#),
    ]
    .into_iter()
    .collect()
}

/// The acceptance test: 15 changed rows found exactly, three times under
/// load; `--repair` mends them while the load runs; then verify and
/// `pt-table-sync --print` agree the servers are equal.
#[tokio::test]
async fn finds_exactly_the_changed_rows_under_load_and_repairs_them() -> TestResult {
    let (source, target, etcd) = tokio::try_join!(MariaDb::source(), MariaDb::target(), async {
        Etcd::start().await
    })?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    fill(&source).await?;
    let config = write_config(
        dir.path(),
        "verify",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        "filter: { include: ['shop\\..*'] }\nbatch: { max_delay: 5ms }\n",
    );
    let sluice = Sluice::start(&config);
    let count = "SELECT (SELECT COUNT(*) FROM shop.items), (SELECT COUNT(*) FROM shop.orders), (SELECT COUNT(*) FROM shop.log)";
    wait_same(
        &source,
        &target,
        count,
        count,
        Duration::from_secs(60),
        &sluice,
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = load(&source, Arc::clone(&stop));
    let checks = async {
        // Change the target behind the pipeline's back: 7 deleted, 5
        // changed, 3 extra rows, in three tables, one of them keyless.
        target
            .exec(
                "DELETE FROM shop.items WHERE id IN (1, 2, 3);
                 DELETE FROM shop.orders WHERE customer = 1 AND seq IN (1, 2);
                 DELETE FROM shop.log WHERE msg = 'm1' LIMIT 1;
                 DELETE FROM shop.log WHERE msg = 'm2' LIMIT 1;
                 UPDATE shop.items SET price = price + 0.01 WHERE id = 10;
                 UPDATE shop.items SET name = 'changed' WHERE id = 11;
                 UPDATE shop.items SET flags = 255, data = 'x' WHERE id = 12;
                 UPDATE shop.orders SET qty = 1 WHERE customer = 2 AND seq = 1;
                 UPDATE shop.orders SET note = 'cafe' WHERE customer = 2 AND seq = 2;
                 INSERT INTO shop.items (id, name) VALUES (90001, 'extra');
                 INSERT INTO shop.orders (customer, seq, qty) VALUES (999, 1, 1);
                 INSERT INTO shop.log VALUES ('extra', 7);",
            )
            .await
            .expect("change the target");
        for run in 1..=3 {
            let out = run_sluice(&["verify", "--json", "--chunk-rows", "400"], &config).await;
            assert_eq!(
                out.status.code(),
                Some(1),
                "run {run}: {}",
                output_text(&out)
            );
            let doc: Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
            assert_eq!(doc["equal"], false);
            assert_eq!(
                differences(&doc),
                expected(),
                "run {run}: {}",
                output_text(&out)
            );
            let items = doc["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == "shop.items")
                .cloned()
                .unwrap_or_default();
            assert!(items["chunks"].as_u64().unwrap_or(0) >= 8, "{items}");
        }
        let out = run_sluice(&["verify", "--json", "--repair"], &config).await;
        assert_eq!(out.status.code(), Some(0), "repair: {}", output_text(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("repair JSON");
        assert_eq!(doc["repaired"], 15, "{doc}");
        assert_eq!(doc["equal"], true, "{doc}");
        stop.store(true, Ordering::Relaxed);
    };
    let (loaded, ()) = tokio::join!(writer, checks);
    assert!(
        loaded > 100,
        "the load ran during the checks ({loaded} rounds)"
    );

    let out = run_sluice(&["verify", "--json"], &config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "after repair: {}",
        output_text(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    assert!(differences(&doc).is_empty(), "{doc}");
    let all = "SELECT COUNT(*), SUM(id) FROM shop.events";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;

    // An independent check: pt-table-sync finds nothing to change.
    let dsn = |db: &MariaDb| format!("h=127.0.0.1,P={},u=root", db.port());
    let sync = tokio::process::Command::new("pt-table-sync")
        .args([
            "--print",
            "--databases",
            "shop",
            "--no-check-slave",
            "--no-check-triggers",
        ])
        .arg(dsn(&source))
        .arg(dsn(&target))
        .output()
        .await
        .expect("run pt-table-sync (Debian package percona-toolkit)");
    assert!(
        sync.status.success(),
        "pt-table-sync: {}",
        output_text(&sync)
    );
    let printed = String::from_utf8_lossy(&sync.stdout);
    assert!(
        printed.trim().is_empty(),
        "pt-table-sync would change:\n{printed}"
    );
    Ok(())
}

/// A table whose key collation differs between the servers cannot be
/// compared chunk by chunk: exit 2, saying why; a missing target table too.
#[tokio::test]
async fn refuses_tables_it_cannot_compare() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    source
        .exec(
            "CREATE DATABASE d; CREATE TABLE d.t (k VARCHAR(10) COLLATE utf8mb4_bin PRIMARY KEY);
             CREATE TABLE d.gone (id INT PRIMARY KEY);",
        )
        .await?;
    target
        .exec("CREATE DATABASE d; CREATE TABLE d.t (k VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY);")
        .await?;
    let state = dir.path().join("state");
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "refuse",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "",
    );
    let out = run_sluice(
        &["verify", "--json", "--table", "d.t", "--table", "d.gone"],
        &config,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(doc["equal"], false);
    let errors: Vec<&str> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["error"].as_str())
        .collect();
    assert!(errors.iter().any(|e| e.contains("collation")), "{doc}");
    assert!(
        errors.iter().any(|e| e.contains("has no table d.gone")),
        "{doc}"
    );
    let out = run_sluice(&["verify", "--table", "d.nope"], &config).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no table d.nope"),
        "{}",
        output_text(&out)
    );
    Ok(())
}

/// `--repair` of rows the pipeline is changing at the same time: items
/// 100..=119 are changed on the target, and a load on the source updates
/// exactly those rows (and deletes and re-inserts some) while the repair
/// runs. The repair locks the rows before it reads them from the source,
/// so it never writes an image older than the target holds and never
/// deadlocks for good with the pipeline's batches (a deadlock is retried):
/// once the load stops and the pipeline caught up, verify finds nothing.
#[tokio::test]
async fn repair_of_rows_the_pipeline_is_changing_ends_equal() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let start = start_of_binlog(&source).await;
    fill(&source).await?;
    let config = write_config(
        dir.path(),
        "hot",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "filter: { include: ['shop\\..*'] }\nbatch: { max_delay: 5ms }\n",
    );
    let sluice = Sluice::start(&config);
    let count = "SELECT COUNT(*), SUM(price) FROM shop.items";
    wait_same(
        &source,
        &target,
        count,
        count,
        Duration::from_secs(60),
        &sluice,
    )
    .await;
    target
        .exec("UPDATE shop.items SET name = 'broken' WHERE id BETWEEN 100 AND 119")
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let mut conn = source.conn().await?;
        async move {
            let mut n = 0u64;
            // At least 300 statements, so the load outlasts a fast repair.
            while (n < 300 || !stop.load(Ordering::Relaxed)) && n < 20_000 {
                n += 1;
                let id = 100 + n % 20;
                let sql = if n.is_multiple_of(7) {
                    format!(
                        "DELETE FROM shop.items WHERE id = {id};
                         INSERT INTO shop.items (id, name, price) VALUES ({id}, 'again {n}', {n})"
                    )
                } else {
                    format!("UPDATE shop.items SET price = {n}, name = 'hot {n}' WHERE id = {id}")
                };
                conn.query_drop(sql).await.expect("hot load");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        }
    };
    let repairs = async {
        let mut codes = Vec::new();
        for _ in 0..3 {
            let out = run_sluice(
                &["verify", "--json", "--repair", "--table", "shop.items"],
                &config,
            )
            .await;
            // 0 (repaired) or 1 (rows the load kept changing differed in
            // every re-check); never 2 (could not verify, e.g. a deadlock
            // given up on).
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "repair: {}",
                output_text(&out)
            );
            codes.push(out.status.code());
        }
        stop.store(true, Ordering::Relaxed);
        codes
    };
    let (written, codes) = tokio::join!(writer, repairs);
    eprintln!("repair exit codes under the hot load: {codes:?}; {written} load statements");
    let all = "SELECT COUNT(*), SUM(price), GROUP_CONCAT(name ORDER BY id) FROM shop.items";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;
    let out = run_sluice(&["verify", "--json", "--table", "shop.items"], &config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "after repair: {}",
        output_text(&out)
    );
    Ok(())
}

/// Values that look alike once written as text are still told apart: a
/// separator moved between two text columns, NULL against the string
/// `NULL` and against `N`, a quote against an escaped quote, values swapped
/// between rows, a change past the 40 bytes where long values of a wide
/// declared column are hashed — after writes outside the filter, which
/// leave the target's checkpoint behind — in a narrow table (chunk hashed from its
/// row texts) and in a wide one (one hash per row: four columns declared
/// short enough to stand whole, 2 KB of quoted text at worst), keyed and
/// keyless.
#[tokio::test]
async fn values_that_look_alike_as_text_are_told_apart() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    source
        .exec(
            "CREATE DATABASE look;
             CREATE TABLE look.narrow (id INT PRIMARY KEY, a VARCHAR(20), b VARCHAR(20), n INT, long_text TEXT);
             CREATE TABLE look.wide (id INT PRIMARY KEY, a VARCHAR(64), b VARCHAR(64), c VARCHAR(64),
                 d VARCHAR(64), e VARBINARY(600));
             CREATE TABLE look.bag (a VARCHAR(20), b VARCHAR(20));
             INSERT INTO look.narrow VALUES (1, 'x,y', 'z', 1, NULL), (2, NULL, 'N', NULL, 'short'),
                 (3, 'it''s', '\\\\', 3, REPEAT('l', 100)), (4, 'p', 'q', 4, CONCAT(REPEAT('m', 60), 'a')),
                 (5, 'same', 'same', 5, ''), (6, 'other', 'other', 6, 'x');
             INSERT INTO look.wide SELECT id, a, b, a, b, CAST(a AS BINARY) FROM look.narrow;
             INSERT INTO look.bag VALUES ('x,y', 'z'), (NULL, 'N'), ('1', '2');",
        )
        .await?;
    let config = write_config(
        dir.path(),
        "look",
        &source,
        &target,
        Coord::Local(&dir.path().join("state")),
        &start,
        "filter: { include: ['look\\..*'] }\nbatch: { max_delay: 5ms }\n",
    );
    let sluice = Sluice::start(&config);
    let count = "SELECT (SELECT COUNT(*) FROM look.narrow), (SELECT COUNT(*) FROM look.wide), (SELECT COUNT(*) FROM look.bag)";
    wait_same(
        &source,
        &target,
        count,
        count,
        Duration::from_secs(60),
        &sluice,
    )
    .await;
    // The binlog ends with writes to a table outside the filter: they move
    // the node's stored position but write nothing to the target, so only
    // the node's position file (read beside the running node) shows the
    // pipeline applied through the source's end.
    source
        .exec(
            "CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY);
             INSERT INTO other.t VALUES (1), (2);",
        )
        .await?;
    let out = run_sluice(&["verify", "--json", "--wait", "30"], &config).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for t in ["narrow", "wide"] {
        target
            .exec(&format!(
                "UPDATE look.{t} SET a = 'x', b = 'y,z' WHERE id = 1;
                 UPDATE look.{t} SET a = 'NULL' WHERE id = 2;
                 UPDATE look.{t} SET a = 'it\\\\''s' WHERE id = 3;
                 UPDATE look.{t} SET a = 'other', b = 'other' WHERE id = 5;
                 UPDATE look.{t} SET a = 'same', b = 'same' WHERE id = 6;"
            ))
            .await?;
    }
    target
        .exec(
            "UPDATE look.narrow SET n = NULL WHERE id = 1;
             UPDATE look.narrow SET long_text = CONCAT(REPEAT('m', 60), 'b') WHERE id = 4;
             UPDATE look.wide SET e = 'NULL' WHERE id = 2;
             UPDATE look.bag SET a = 'x', b = 'y,z' WHERE a = 'x,y';
             UPDATE look.bag SET a = 'NULL' WHERE a IS NULL;",
        )
        .await?;
    let out = run_sluice(&["verify", "--json", "--chunk-rows", "2"], &config).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    let found = differences(&doc);
    let e = |t: &str, k: &str, w: &str| (format!("look.{t}"), k.to_string(), w.to_string());
    let mut want: BTreeSet<_> = [
        e("narrow", r#"different ["a","b","n"]"#, r#"{"id":1}"#),
        e("narrow", r#"different ["a"]"#, r#"{"id":2}"#),
        e("narrow", r#"different ["a"]"#, r#"{"id":3}"#),
        e("narrow", r#"different ["long_text"]"#, r#"{"id":4}"#),
        e("narrow", r#"different ["a","b"]"#, r#"{"id":5}"#),
        e("narrow", r#"different ["a","b"]"#, r#"{"id":6}"#),
        e("wide", r#"different ["a","b"]"#, r#"{"id":1}"#),
        e("wide", r#"different ["a","e"]"#, r#"{"id":2}"#),
        e("wide", r#"different ["a"]"#, r#"{"id":3}"#),
        e("wide", r#"different ["a","b"]"#, r#"{"id":5}"#),
        e("wide", r#"different ["a","b"]"#, r#"{"id":6}"#),
    ]
    .into_iter()
    .collect();
    // The keyless table: each changed row is missing and its look-alike
    // extra.
    let bag: Vec<_> = found
        .iter()
        .filter(|d| d.0 == "look.bag")
        .cloned()
        .collect();
    assert_eq!(bag.len(), 4, "{doc}");
    assert_eq!(
        bag.iter().filter(|d| d.1 == "missing_on_target").count(),
        2,
        "{doc}"
    );
    want.extend(bag);
    assert_eq!(found, want, "{doc}");
    drop(sluice);
    Ok(())
}
