//! `snapshot.mode: initial` with distributed stages (issue 15): chunks are
//! tasks on the board like batches, so the transform/load nodes share the
//! copy.
//!
//! Node A runs select+extract (it reads the chunks and hands them into its
//! stream), B and C transform+load. The source holds a keyed table of
//! [`BIG_ROWS`] rows, a composite-key table and a table without a key; a
//! bounded write load runs on all three from before B and C start (so no
//! chunk can be loaded before it) until after. Ends when the testkit
//! comparison finds the schemas equal; then every progress row is `done`,
//! both B and C loaded chunk batches (A no batch), and A's `sluice status
//! --json` shows the snapshot done with the rows the progress rows count.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::workload::{seed_from_env, Rng};
use sluice_testkit::{Etcd, MariaDb};

use crate::support::cli::{json_of, run_sluice};
use crate::support::ha::wait_leader;
use crate::support::sql::number;
use crate::support::{server_id, write_config, Coord, Sluice, TestResult};

const BIG_ROWS: i128 = 20_000;

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

/// A bounded random write load on the three tables.
async fn load(source: &MariaDb, seed: u64, steps: usize) -> TestResult {
    use mysql_async::prelude::Queryable as _;
    let mut rng = Rng::new(seed);
    let mut conn = source.conn().await?;
    for _ in 0..steps {
        let id = rng.range(1, BIG_ROWS + 1000);
        let n = rng.range(0, 200);
        let sql = match rng.below(8) {
            0 => format!("UPDATE shop.big SET k = k + 1, pad = 'u' WHERE id = {id}"),
            1 => format!("DELETE FROM shop.big WHERE id = {id}"),
            2 => format!("REPLACE INTO shop.big VALUES ({id}, 5, 'r')"),
            3 => format!("UPDATE IGNORE shop.big SET id = id + 10000000 WHERE id = {id}"),
            4 => format!("UPDATE shop.comp SET v = v + 1 WHERE a = {}", n % 50),
            5 => format!("INSERT INTO shop.bag VALUES ({n}, 'n{n}')"),
            6 => format!("DELETE FROM shop.bag WHERE a = {n} LIMIT 1"),
            _ => format!("UPDATE shop.bag SET b = 'u' WHERE a = {n}"),
        };
        conn.query_drop(sql).await?;
    }
    Ok(())
}

#[tokio::test]
async fn distributed_stages_share_the_initial_snapshot() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.big (id BIGINT UNSIGNED PRIMARY KEY, k INT NOT NULL, pad CHAR(40))",
        "CREATE TABLE shop.comp (a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (a, b))",
        "CREATE TABLE shop.bag (a INT, b VARCHAR(20))",
        "INSERT INTO shop.comp SELECT seq % 50, CONCAT('b', seq), seq FROM shop.seq_1_to_3000",
        "INSERT INTO shop.bag SELECT seq % 200, CONCAT('v', seq % 7) FROM shop.seq_1_to_1500",
    ] {
        source.exec(sql).await?;
    }
    source
        .exec(&format!(
            "INSERT INTO shop.big SELECT seq, seq % 1000, MD5(seq) FROM shop.seq_1_to_{BIG_ROWS}"
        ))
        .await?;
    let base = write_config(
        dir.path(),
        "snapsplit",
        &source,
        &target,
        Coord::Etcd(&etcd),
        "latest",
        "ha: { lease_ttl: 3s, standby_delay: 1s }\n\
         batch: { max_delay: 5ms, max_rows: 250 }\n\
         snapshot: { mode: initial, parallel: 2, chunk_rows: 500 }\n",
    );
    let a_cfg = node_config(&base, "node-a", "select, extract");
    let b_cfg = node_config(&base, "node-b", "transform, load");
    let c_cfg = node_config(&base, "node-c", "transform, load");
    let a = Sluice::start_node(&a_cfg, "node-a", Some(server_id()));
    wait_leader(&etcd, "snapsplit", Some("node-a"), Duration::from_secs(30)).await;
    // Writes start before any node can load a chunk, and go on with them.
    load(&source, seed, 500).await?;
    let b = Sluice::start_node(&b_cfg, "node-b", Some(server_id()));
    let c = Sluice::start_node(&c_cfg, "node-c", Some(server_id()));
    let tails = || {
        format!(
            "A:\n{}\nB:\n{}\nC:\n{}",
            a.log_tail(),
            b.log_tail(),
            c.log_tail()
        )
    };
    load(&source, seed ^ 0x57A6E, 1500).await?;
    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop",
        &CompareOpts::default(),
        Duration::from_secs(180),
    )
    .await;
    if let Err(e) = report {
        panic!("{e:#}\n{}", tails());
    }
    let left = "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'snapsplit' AND state <> 'done'";
    let all = "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'snapsplit'";
    assert_eq!(number(&target, all).await, Some(3), "{}", tails());
    assert_eq!(number(&target, left).await, Some(0), "{}", tails());
    let copied = number(
        &target,
        "SELECT rows_copied FROM sluice_meta.snapshot_progress WHERE pipeline = 'snapsplit' AND source_table = 'shop.big'",
    )
    .await
    .unwrap_or(0);
    assert!(copied >= 19_000, "rows_copied {copied}\n{}", tails());
    let count = |log: String, what: &str| log.lines().filter(|l| l.contains(what)).count();
    let (by_b, by_c) = (
        count(b.log_text(), "snapshot chunk loaded"),
        count(c.log_text(), "snapshot chunk loaded"),
    );
    assert!(
        by_b > 0 && by_c > 0,
        "chunk batches: B loaded {by_b}, C {by_c}\n{}",
        tails()
    );
    assert_eq!(count(a.log_text(), "batch loaded"), 0, "{}", tails());
    println!("snapshot over stages: chunk batches loaded by node-b {by_b}, node-c {by_c}");
    let snap = sluice_testkit::wait_until_async(
        "the snapshot published as done",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let out = run_sluice(&["status", "--json"], &a_cfg).await;
            let j = json_of(&out);
            (j["snapshot"]["state"] == "done").then(|| j["snapshot"].clone())
        },
    )
    .await?;
    let rows = |name: &str| {
        snap["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["table"] == name))
            .and_then(|t| t["rows_copied"].as_u64())
    };
    assert_eq!(rows("shop.big"), Some(copied), "{snap:#}");
    assert!(rows("shop.bag").is_some_and(|n| n > 0), "{snap:#}");
    assert!(a.log_text().contains("snapshot: every table read"));
    Ok(())
}
