//! DDL on a table while `snapshot.mode: initial` copies it (issue 15): the
//! table's copy restarts from its first chunk, with its columns planned
//! again, once the DDL is applied — never two schemas in one table's copy.
//!
//! `ddl.a_big` (keyed, 150k rows) is copied in 100-row chunks by one reader,
//! so its copy takes many chunks; `ddl.b_nokey` (no key) waits behind it in
//! the queue. Under a bounded write load, once a_big's progress row shows
//! chunks done: `ALTER TABLE … ADD COLUMN` on both; once a_big's restarted
//! copy shows chunks done again: `ALTER TABLE ddl.a_big DROP COLUMN pad`
//! (the reads still planned with `pad` then fail, and wait for the DDL to
//! restart them). The load writes the new columns after each DDL, so a copy
//! that kept its first column list would leave them at their defaults on the
//! target. Ends when the testkit comparison finds both schemas equal; the
//! progress rows count the re-copied rows, `sluice status --json` counts
//! the restarts, and the log says so. A second test SIGKILLs the active
//! node once the restarted copy has recorded chunks: the standby continues
//! the new copy from its progress row.

use std::time::Duration;

use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::workload::{seed_from_env, Rng};
use sluice_testkit::MariaDb;

use crate::support::cli::{json_of, run_sluice};
use crate::support::sql::number;
use crate::support::{write_config, Coord, Sluice, TestResult};

const BIG_ROWS: i128 = 150_000;

/// A bounded random write load valid in `phase` (0: the first columns; 1:
/// after `ADD COLUMN`s, which it writes; 2: after a_big lost `pad`).
async fn load(source: &MariaDb, seed: u64, steps: usize, phase: u8) -> TestResult {
    use mysql_async::prelude::Queryable as _;
    let mut rng = Rng::new(seed);
    let mut conn = source.conn().await?;
    for _ in 0..steps {
        let id = rng.range(1, BIG_ROWS + 2000);
        let x = rng.range(0, 300);
        let sql = match (rng.below(7), phase) {
            (0, _) => format!("UPDATE ddl.a_big SET k = k + 1 WHERE id = {id}"),
            (1, _) => format!("DELETE FROM ddl.a_big WHERE id = {id}"),
            (2, _) => format!("INSERT IGNORE INTO ddl.a_big (id, k) VALUES ({id}, 9)"),
            (3, _) => format!("INSERT INTO ddl.b_nokey (x, y) VALUES ({x}, 'n{x}')"),
            (4, _) => format!("DELETE FROM ddl.b_nokey WHERE x = {x} LIMIT 1"),
            (5, 0) => format!("UPDATE ddl.a_big SET pad = 'p{x}' WHERE id = {id}"),
            (5, _) => {
                format!("UPDATE ddl.a_big SET extra = 'e{x}' WHERE id BETWEEN {id} AND {id} + 50")
            }
            (_, 0) => format!("UPDATE ddl.b_nokey SET y = 'u' WHERE x = {x}"),
            (_, _) => format!("UPDATE ddl.b_nokey SET z = x * 3 WHERE x = {x}"),
        };
        conn.query_drop(sql).await?;
    }
    Ok(())
}

/// a_big's progress row of `pipeline`, `(chunks_done, rows_recopied)`,
/// while not done.
async fn big_progress(target: &MariaDb, pipeline: &str) -> Option<(u64, u64)> {
    let chunks = number(
        target,
        &format!(
            "SELECT chunks_done FROM sluice_meta.snapshot_progress WHERE pipeline = '{pipeline}' \
             AND source_table = 'ddl.a_big' AND state <> 'done'"
        ),
    )
    .await?;
    let recopied = number(
        target,
        &format!(
            "SELECT rows_recopied FROM sluice_meta.snapshot_progress WHERE pipeline = '{pipeline}' \
             AND source_table = 'ddl.a_big'"
        ),
    )
    .await?;
    Some((chunks, recopied))
}

/// Polls a_big's progress row of `pipeline` until `f` accepts it.
async fn wait_progress(
    target: &MariaDb,
    pipeline: &str,
    what: &str,
    f: fn((u64, u64)) -> bool,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    Ok(sluice_testkit::wait_until_async(
        what,
        Duration::from_secs(120),
        Duration::from_millis(20),
        || async { big_progress(target, pipeline).await.filter(|p| f(*p)) },
    )
    .await?)
}

/// The source tables.
async fn seed(source: &MariaDb) -> TestResult {
    for sql in [
        "CREATE DATABASE ddl",
        "CREATE TABLE ddl.a_big (id INT PRIMARY KEY, k INT NOT NULL, pad CHAR(40))",
        "CREATE TABLE ddl.b_nokey (x INT, y VARCHAR(20))",
        "INSERT INTO ddl.b_nokey SELECT seq % 300, CONCAT('v', seq % 7) FROM ddl.seq_1_to_2000",
    ] {
        source.exec(sql).await?;
    }
    source
        .exec(&format!(
            "INSERT INTO ddl.a_big SELECT seq, seq % 1000, MD5(seq) FROM ddl.seq_1_to_{BIG_ROWS}"
        ))
        .await?;
    Ok(())
}

const EXTRA: &str = "snapshot: { mode: initial, parallel: 1, chunk_rows: 100 }\n";

#[tokio::test]
async fn ddl_during_the_copy_restarts_that_tables_copy() -> TestResult {
    use crate::support::ha::{wait_leader, HA};
    use crate::support::server_id;
    let (source, target, etcd) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::target(),
        sluice_testkit::Etcd::start()
    )?;
    let dir = tempfile::tempdir()?;
    let seed_value = seed_from_env();
    seed(&source).await?;
    let config = write_config(
        dir.path(),
        "ddl",
        &source,
        &target,
        Coord::Etcd(&etcd),
        "latest",
        &format!("{HA}{EXTRA}"),
    );
    let a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "ddl", Some("node-a"), Duration::from_secs(30)).await;
    // ADD COLUMN on both tables while a_big is being copied.
    let (loaded, added) = tokio::join!(load(&source, seed_value, 400, 0), async {
        wait_progress(&target, "ddl", "a_big partly copied", |(chunks, _)| {
            chunks >= 5
        })
        .await?;
        // b_nokey first: it is still queued behind a_big then, so its
        // pending copy restarts too (after a_big's restart it may be read,
        // whole, before its DDL, which needs no restart).
        source
            .exec("ALTER TABLE ddl.b_nokey ADD COLUMN z INT DEFAULT 7")
            .await?;
        source
            .exec("ALTER TABLE ddl.a_big ADD COLUMN extra VARCHAR(20) NOT NULL DEFAULT 'x'")
            .await?;
        TestResult::Ok(())
    });
    loaded?;
    if let Err(e) = added {
        panic!("{e}\n{}", a.log_tail());
    }
    // DROP COLUMN while the restarted copy runs.
    let (loaded, dropped) = tokio::join!(load(&source, seed_value ^ 0xD0, 400, 1), async {
        wait_progress(
            &target,
            "ddl",
            "a_big's copy restarted and partly copied",
            |(chunks, recopied)| recopied > 0 && chunks >= 3,
        )
        .await?;
        source.exec("ALTER TABLE ddl.a_big DROP COLUMN pad").await?;
        TestResult::Ok(())
    });
    loaded?;
    if let Err(e) = dropped {
        panic!("{e}\n{}", a.log_tail());
    }
    load(&source, seed_value ^ 0xD1, 400, 2).await?;
    let report = wait_until_same(
        &source,
        "ddl",
        &target,
        "ddl",
        &CompareOpts::default(),
        Duration::from_secs(180),
    )
    .await;
    if let Err(e) = report {
        panic!("{e:#}\n{}", a.log_tail());
    }
    let left = "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'ddl' AND state <> 'done'";
    assert_eq!(number(&target, left).await, Some(0), "{}", a.log_tail());
    let recopied = number(
        &target,
        "SELECT rows_recopied FROM sluice_meta.snapshot_progress WHERE pipeline = 'ddl' AND source_table = 'ddl.a_big'",
    )
    .await
    .unwrap_or(0);
    // Two restarts of a_big, each after at least three 100-row chunks.
    assert!(
        recopied >= 800,
        "rows_recopied {recopied}\n{}",
        a.log_tail()
    );
    let log = a.log_text();
    assert!(
        log.contains("the table's copy restarted after a DDL on it"),
        "{}",
        a.log_tail()
    );
    let restarts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("its copy restarts"))
        .collect();
    assert!(
        restarts.len() == 3 && restarts.iter().any(|l| l.contains("ddl.b_nokey")),
        "{restarts:#?}\n{}",
        a.log_tail()
    );
    let snap = sluice_testkit::wait_until_async(
        "the snapshot published as done",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let out = run_sluice(&["status", "--json"], &config).await;
            let j = json_of(&out);
            (j["snapshot"]["state"] == "done").then(|| j["snapshot"].clone())
        },
    )
    .await?;
    let restarts = |name: &str| {
        snap["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["table"] == name))
            .and_then(|t| t["restarts"].as_u64())
    };
    assert_eq!(restarts("ddl.a_big"), Some(2), "{snap:#}");
    assert!(snap["rows_recopied"].as_u64() >= Some(800), "{snap:#}");
    Ok(())
}

/// A standby takes over a copy a DDL restarted: the progress row was reset
/// when the restarted copy's first chunk committed, so the new leader
/// continues the new copy (with the new columns) after its last key, and
/// the target ends equal to the source.
#[tokio::test]
async fn a_failover_after_a_restart_continues_the_new_copy() -> TestResult {
    use crate::support::ha::{wait_leader, HA};
    use crate::support::server_id;
    let (source, target, etcd) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::target(),
        sluice_testkit::Etcd::start()
    )?;
    let dir = tempfile::tempdir()?;
    let seed_value = seed_from_env();
    seed(&source).await?;
    let config = write_config(
        dir.path(),
        "ddlha",
        &source,
        &target,
        Coord::Etcd(&etcd),
        "latest",
        &format!("{HA}{EXTRA}"),
    );
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "ddlha", Some("node-a"), Duration::from_secs(30)).await;
    let b = Sluice::start_node(&config, "node-b", Some(server_id()));
    let (loaded, added) = tokio::join!(load(&source, seed_value, 300, 0), async {
        wait_progress(&target, "ddlha", "a_big partly copied", |(c, _)| c >= 5).await?;
        source
            .exec("ALTER TABLE ddl.b_nokey ADD COLUMN z INT DEFAULT 7")
            .await?;
        source
            .exec("ALTER TABLE ddl.a_big ADD COLUMN extra VARCHAR(20) NOT NULL DEFAULT 'x'")
            .await?;
        TestResult::Ok(())
    });
    loaded?;
    if let Err(e) = added {
        panic!("{e}\n{}", a.log_tail());
    }
    let (loaded, killed) = tokio::join!(load(&source, seed_value ^ 0xD2, 300, 1), async {
        let at = wait_progress(
            &target,
            "ddlha",
            "a_big's copy restarted and partly copied",
            |(c, recopied)| recopied > 0 && c >= 3,
        )
        .await;
        a.kill().await;
        at
    });
    loaded?;
    let (chunks, recopied_at_kill) = killed.unwrap_or_else(|e| panic!("{e}\n{}", a.log_tail()));
    println!("node-a killed with {chunks} chunks of the restarted copy recorded, {recopied_at_kill} rows re-copied");
    wait_leader(&etcd, "ddlha", Some("node-b"), Duration::from_secs(30)).await;
    load(&source, seed_value ^ 0xD3, 300, 1).await?;
    let report = wait_until_same(
        &source,
        "ddl",
        &target,
        "ddl",
        &CompareOpts::default(),
        Duration::from_secs(180),
    )
    .await;
    if let Err(e) = report {
        panic!("{e:#}\nA:\n{}\nB:\n{}", a.log_tail(), b.log_tail());
    }
    assert!(
        b.log_text()
            .contains("snapshot: continuing an unfinished copy"),
        "{}",
        b.log_tail()
    );
    let left = "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'ddlha' AND state <> 'done'";
    assert_eq!(number(&target, left).await, Some(0), "{}", b.log_tail());
    let recopied = number(
        &target,
        "SELECT rows_recopied FROM sluice_meta.snapshot_progress WHERE pipeline = 'ddlha' AND source_table = 'ddl.a_big'",
    )
    .await
    .unwrap_or(0);
    // The copy before the DDL, plus at most the chunk in flight at the kill.
    assert!(
        recopied >= recopied_at_kill && recopied <= recopied_at_kill + 100,
        "rows_recopied {recopied}, {recopied_at_kill} at the kill\n{}",
        b.log_tail()
    );
    Ok(())
}
