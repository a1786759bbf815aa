//! `snapshot.mode: initial` (issue 15): existing rows are copied without a
//! lock while writes continue, and handed off to streaming exactly.
//!
//! The source holds the seeded workload's tables (every type family, a
//! keyless table) plus a composite-key table, a unique-only table, a table
//! of wide rows and a table of [`BIG_ROWS`] rows (1M, as the issue asks:
//! many chunks, adaptive sizing, about 40 s in a debug build; the 4 × 500k
//! copy against the dump tools is in `sluice-bench snapshot`).
//! The target is empty: tables are created from `SHOW CREATE TABLE` through
//! a route. A bounded random write load runs the whole time. The source's
//! general log then shows that no `FLUSH TABLES … READ LOCK` or `LOCK
//! TABLES` ran, and that chunks were read in consistent snapshots.

use std::time::Duration;

use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::workload::{seed_from_env, Rng, Workload};
use sluice_testkit::MariaDb;

use crate::support::sql::number;
use crate::support::{write_config, Coord, Sluice, TestResult};

/// Rows of the large table (see the module docs).
const BIG_ROWS: u64 = 1_000_000;

const EXTRA: &str = "routes: [ { match: 'shop\\.(.*)', to: 'shop_copy.$1' } ]\n\
     batch: { max_rows: 2000, max_delay: 10ms }\n\
     snapshot: { mode: initial, parallel: 4, chunk_rows: 5000 }\n";

/// The extra tables and their rows.
async fn seed_extra(source: &MariaDb) -> TestResult {
    for sql in [
        "CREATE TABLE shop.comp (a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (a, b))",
        "CREATE TABLE shop.uniq (code VARCHAR(30) NOT NULL, v BIGINT, UNIQUE KEY (code))",
        "CREATE TABLE shop.wide (id INT PRIMARY KEY, a LONGTEXT, b LONGBLOB, c VARCHAR(2000))",
        "CREATE TABLE shop.big (id BIGINT UNSIGNED PRIMARY KEY, k INT NOT NULL, pad CHAR(40), d DECIMAL(12,3), t DATETIME(6))",
        "INSERT INTO shop.comp SELECT seq % 97, CONCAT('b', seq), seq FROM shop.seq_1_to_3000",
        "INSERT INTO shop.uniq SELECT CONCAT('code-', seq), seq * 7 FROM shop.seq_1_to_3000",
        "INSERT INTO shop.wide SELECT seq, REPEAT(CONCAT('w', seq), 3000), RANDOM_BYTES(1024), REPEAT('x', 2000) FROM shop.seq_1_to_300",
    ] {
        source.exec(sql).await?;
    }
    source
        .exec(&format!(
            "INSERT INTO shop.big SELECT seq, seq % 1000, MD5(seq), seq / 7, '2024-01-01' + INTERVAL seq SECOND FROM shop.seq_1_to_{BIG_ROWS}"
        ))
        .await?;
    Ok(())
}

/// A bounded random write load on the extra tables (keys inside and past
/// the copied ranges, inserts, updates, deletes, key changes).
async fn extra_load(source: &MariaDb, seed: u64, steps: usize) -> TestResult {
    let mut rng = Rng::new(seed);
    let mut conn = source.conn().await?;
    use mysql_async::prelude::Queryable as _;
    for _ in 0..steps {
        let id = rng.range(1, i128::from(BIG_ROWS) + 5000);
        let n = rng.range(1, 3100);
        let sql = match rng.below(9) {
            0 => format!("UPDATE shop.big SET k = k + 1, pad = 'u' WHERE id = {id}"),
            1 => format!("DELETE FROM shop.big WHERE id = {id}"),
            2 => format!("REPLACE INTO shop.big VALUES ({id}, 5, 'r', 1.5, NOW(6))"),
            3 => format!("UPDATE shop.comp SET v = v + 1 WHERE a = {}", n % 97),
            4 => format!("DELETE FROM shop.comp WHERE b = 'b{n}'"),
            5 => format!("UPDATE shop.uniq SET code = CONCAT(code, '-m') WHERE code = 'code-{n}'"),
            6 => format!("INSERT IGNORE INTO shop.uniq VALUES ('new-{n}', {n})"),
            7 => format!("UPDATE shop.wide SET c = 'changed' WHERE id = {}", n % 300),
            _ => format!("UPDATE IGNORE shop.big SET id = id + 10000000 WHERE id = {id}"),
        };
        conn.query_drop(sql).await?;
    }
    Ok(())
}

#[tokio::test]
async fn initial_snapshot_under_load_equals_the_source_without_a_lock() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    let mut workload = Workload::new(seed, "shop");
    let mut conn = source.conn().await?;
    workload.setup(&mut conn).await?;
    workload.steps(&mut conn, 300).await?;
    seed_extra(&source).await?;
    source
        .exec("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1")
        .await?;
    let config = write_config(
        dir.path(),
        "snap",
        &source,
        &target,
        Coord::Local(&dir.path().join("state")),
        "latest",
        EXTRA,
    );
    let mut sluice = Sluice::start(&config);
    // Writes run while the copy runs (and for a while after it).
    let (a, b) = tokio::join!(
        workload.steps(&mut conn, 400),
        extra_load(&source, seed ^ 0xC0FFEE, 3000)
    );
    a?;
    b?;
    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop_copy",
        &CompareOpts::default(),
        Duration::from_secs(180),
    )
    .await;
    if let Err(e) = report {
        panic!("{e:#}\n{}", sluice.log_tail());
    }
    assert!(sluice.log_text().contains("snapshot: every table read"));
    assert!(sluice.log_text().contains("shop.big"));
    source.exec("SET GLOBAL general_log = 0").await?;
    let locks = number(
        &source,
        "SELECT COUNT(*) FROM mysql.general_log WHERE argument LIKE '%READ LOCK%' \
         OR argument LIKE '%LOCK TABLE%' OR argument LIKE 'FLUSH%'",
    )
    .await;
    assert_eq!(locks, Some(0), "a lock statement ran on the source");
    let snapshots = number(
        &source,
        "SELECT COUNT(*) FROM mysql.general_log WHERE argument LIKE '%WITH CONSISTENT SNAPSHOT%'",
    )
    .await
    .unwrap_or(0);
    assert!(snapshots > 40, "only {snapshots} consistent snapshots");
    let done = number(
        &target,
        "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'snap' AND state = 'done'",
    )
    .await;
    let tables = workload.tables().len() as u64 + 4;
    assert_eq!(done, Some(tables), "{}", sluice.log_tail());
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

/// Starts a snapshot pipeline over `shop` → `shop_copy` and expects it to
/// stop with a message containing every one of `expect`.
async fn refused(source: &MariaDb, target: &MariaDb, extra: &str, expect: &[&str]) -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = write_config(
        dir.path(),
        "refuse",
        source,
        target,
        Coord::Local(&dir.path().join("state")),
        "latest",
        &format!("routes: [ {{ match: 'shop\\.(.*)', to: 'shop_copy.$1' }} ]\n{extra}"),
    );
    let mut sluice = Sluice::start(&config);
    let status = sluice.wait(Duration::from_secs(60)).await;
    assert!(!status.success(), "{}", sluice.log_tail());
    let log = sluice.log_text();
    for e in expect {
        assert!(log.contains(e), "expected `{e}` in:\n{}", sluice.log_tail());
    }
    Ok(())
}

#[tokio::test]
async fn refuses_a_nonempty_or_different_target_table_before_writing() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.a (id INT PRIMARY KEY, v VARCHAR(10)); \
               CREATE TABLE shop.b (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.a VALUES (1, 'x')")
        .await?;
    target
        .exec("CREATE DATABASE shop_copy; CREATE TABLE shop_copy.b (id INT PRIMARY KEY, v VARCHAR(10)); \
               INSERT INTO shop_copy.b VALUES (9, 'old')")
        .await?;
    refused(
        &source,
        &target,
        "snapshot: { mode: initial }\n",
        &["target table `shop_copy.b` already holds rows"],
    )
    .await?;
    // Nothing was written: `shop_copy.a` was not created.
    let created = number(
        &target,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop_copy' AND TABLE_NAME = 'a'",
    )
    .await;
    assert_eq!(created, Some(0));
    target
        .exec("DROP TABLE shop_copy.b; CREATE TABLE shop_copy.b (id INT PRIMARY KEY, v TEXT)")
        .await?;
    refused(
        &source,
        &target,
        "snapshot: { mode: initial, on_nonempty: merge }\n",
        &[
            "`shop_copy.b` exists with other columns",
            "column `v` is `text` on the target but `varchar(10)` on the source",
        ],
    )
    .await?;
    Ok(())
}

/// SIGKILL of the active node of an HA pair part-way into the copy, under
/// load: the standby continues from the chunks already recorded and the
/// target equals the source; the chunks that were in flight are counted in
/// `rows_recopied` (printed).
#[tokio::test]
async fn standby_finishes_the_snapshot_after_sigkill() -> TestResult {
    use crate::support::ha::{wait_leader, HA};
    use crate::support::server_id;
    let (source, target, etcd) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::target(),
        sluice_testkit::Etcd::start()
    )?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    let mut workload = Workload::new(seed, "shop");
    let mut conn = source.conn().await?;
    workload.setup(&mut conn).await?;
    workload.steps(&mut conn, 200).await?;
    seed_extra(&source).await?;
    let config = write_config(
        dir.path(),
        "pair",
        &source,
        &target,
        Coord::Etcd(&etcd),
        "latest",
        &format!(
            "{HA}routes: [ {{ match: 'shop\\.(.*)', to: 'shop_copy.$1' }} ]\n\
             snapshot: {{ mode: initial, parallel: 2, chunk_rows: 2000 }}\n"
        ),
    );
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "pair", Some("node-a"), Duration::from_secs(30)).await;
    let b = Sluice::start_node(&config, "node-b", Some(server_id()));
    let progress = "SELECT COALESCE(SUM(chunks_done), 0) FROM sluice_meta.snapshot_progress \
                    WHERE pipeline = 'pair' AND source_table = 'shop.big' AND state = 'pending'";
    let (la, lb, killed) = tokio::join!(
        workload.steps(&mut conn, 300),
        extra_load(&source, seed ^ 0xBADC0DE, 2500),
        async {
            let mid = sluice_testkit::wait_until_async(
                "part of shop.big copied",
                Duration::from_secs(60),
                Duration::from_millis(20),
                || async { number(&target, progress).await.filter(|n| *n >= 5) },
            )
            .await;
            a.kill().await;
            mid
        }
    );
    la?;
    lb?;
    let chunks_at_kill = killed.unwrap_or_else(|e| panic!("{e}\n{}", a.log_tail()));
    println!("node-a killed with {chunks_at_kill} chunks of shop.big recorded");
    wait_leader(&etcd, "pair", Some("node-b"), Duration::from_secs(30)).await;
    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop_copy",
        &CompareOpts::default(),
        Duration::from_secs(180),
    )
    .await;
    if let Err(e) = report {
        let kept = std::env::temp_dir().join(format!("sluice-snapshot-{}", std::process::id()));
        let _ = std::fs::write(kept.with_extension("a.log"), a.log_text());
        let _ = std::fs::write(kept.with_extension("b.log"), b.log_text());
        panic!("{e:#}\nlogs kept in {}.{{a,b}}.log", kept.display());
    }
    assert!(
        b.log_text()
            .contains("snapshot: continuing an unfinished copy"),
        "{}",
        b.log_tail()
    );
    let pending = number(
        &target,
        "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'pair' AND state <> 'done'",
    )
    .await;
    assert_eq!(pending, Some(0));
    let recopied = number(
        &target,
        "SELECT SUM(rows_recopied) FROM sluice_meta.snapshot_progress WHERE pipeline = 'pair'",
    )
    .await
    .unwrap_or(0);
    println!("rows copied twice after the failover: {recopied}");
    // `sluice status --json` shows the finished copy as node-b published it.
    let snap = sluice_testkit::wait_until_async(
        "the snapshot published as done",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let out = crate::support::cli::run_sluice(&["status", "--json"], &config).await;
            let j = crate::support::cli::json_of(&out);
            (j["snapshot"]["state"] == "done").then(|| j["snapshot"].clone())
        },
    )
    .await?;
    assert_eq!(snap["rows_recopied"].as_u64(), Some(recopied), "{snap:#}");
    let tables = snap["tables"].as_array().cloned().unwrap_or_default();
    assert_eq!(tables.len(), workload.tables().len() + 4, "{snap:#}");
    let big = tables
        .iter()
        .find(|t| t["table"] == "shop.big")
        .cloned()
        .unwrap_or_default();
    // The load deletes some rows of `shop.big` while it is copied.
    assert!(
        big["rows_copied"].as_u64().unwrap_or(0) >= BIG_ROWS * 9 / 10,
        "{big:#}"
    );
    assert_eq!(big["chunks_done"], big["chunks_total"], "{big:#}");
    Ok(())
}

/// Rows of the keyless table of [`keyless_table_streams_in_parts_under_load`].
const KEYLESS_ROWS: u64 = 30_000;

/// A table without a key is copied from one consistent snapshot in parts of
/// `chunk_rows` rows (not read whole into memory), under a bounded load of
/// inserts and deletes on that very table, and ends equal to the source as
/// a multiset (duplicate rows included). A keyed table is copied by a
/// second reader meanwhile, whose reads wait while the keyless one streams.
#[tokio::test]
async fn keyless_table_streams_in_parts_under_load() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.nokey (g INT NOT NULL, v VARCHAR(40), n BIGINT)",
        "CREATE TABLE shop.keyed (id INT PRIMARY KEY, v VARCHAR(40))",
        "INSERT INTO shop.keyed SELECT seq, MD5(seq) FROM shop.seq_1_to_20000",
        // Every value of g twice: duplicate rows, which only a multiset
        // comparison (and an exactly-once copy) gets right.
        &format!(
            "INSERT INTO shop.nokey SELECT seq % {half}, MD5(seq % {half}), seq % {half} FROM shop.seq_1_to_{KEYLESS_ROWS}",
            half = KEYLESS_ROWS / 2
        ),
    ] {
        source.exec(sql).await?;
    }
    let config = write_config(
        dir.path(),
        "keyless",
        &source,
        &target,
        Coord::Local(&dir.path().join("state")),
        "latest",
        "routes: [ { match: 'shop\\.(.*)', to: 'shop_copy.$1' } ]\n\
         batch: { max_rows: 400, max_delay: 10ms }\n\
         snapshot: { mode: initial, parallel: 2, chunk_rows: 1000 }\n",
    );
    let mut sluice = Sluice::start(&config);
    // Writes to the keyless table while it is copied and after.
    let mut rng = Rng::new(seed_from_env() ^ 0x6E6F6B6579);
    let mut conn = source.conn().await?;
    use mysql_async::prelude::Queryable as _;
    for i in 0..1500u64 {
        let g = rng.range(0, i128::from(KEYLESS_ROWS / 2) + 500);
        let sql = match rng.below(5) {
            0 => format!("DELETE FROM shop.nokey WHERE g = {g} LIMIT 1"),
            4 => format!("REPLACE INTO shop.keyed VALUES ({g}, 'r{i}')"),
            1 => format!("UPDATE shop.nokey SET n = n + 1 WHERE g = {g} LIMIT 1"),
            _ => format!("INSERT INTO shop.nokey VALUES ({g}, 'ins-{i}', {i})"),
        };
        conn.query_drop(sql).await?;
    }
    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop_copy",
        &CompareOpts::default(),
        Duration::from_secs(120),
    )
    .await;
    if let Err(e) = report {
        panic!("{e:#}\n{}", sluice.log_tail());
    }
    // The same check in SQL: count and an order-independent checksum.
    let sum = "SELECT COUNT(*) * 1000003 + SUM(CRC32(CONCAT_WS('|', g, v, n))) FROM ";
    let src = number(&source, &format!("{sum} shop.nokey")).await;
    let tgt = number(&target, &format!("{sum} shop_copy.nokey")).await;
    assert!(src.is_some());
    assert_eq!(src, tgt);
    let log = sluice.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("table without a key read in one snapshot"))
        .unwrap_or_else(|| panic!("no streamed read logged\n{}", sluice.log_tail()));
    let parts: u64 = line
        .split("parts=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(parts > 1, "the copy went in {parts} parts: {line}");
    // Each part is recorded as it commits; the table is done after the last.
    let recorded = number(
        &target,
        "SELECT chunks_done FROM sluice_meta.snapshot_progress \
         WHERE pipeline = 'keyless' AND source_table = 'shop.nokey' AND state = 'done'",
    )
    .await;
    assert_eq!(recorded, Some(parts), "{}", sluice.log_tail());
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}
