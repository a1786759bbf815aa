//! `sluice snapshot --table` (issue 15): a running pipeline re-copies
//! tables while it streams, and the target ends equal to the source even
//! though the target table was changed behind its back (rows deleted,
//! changed, extra rows inserted — inside the key range and past its end).
//!
//! The initial snapshot creates and fills `shop_copy`; the test then breaks
//! `shop_copy.big` (keyed) and `shop_copy.bag` (keyless) directly on the
//! target, asks for the re-copy and runs a bounded write load on
//! `shop.big` during it. Done when the progress rows are all `done` and
//! `sluice status --json` shows the re-copied tables finished; then the
//! testkit comparison must report both schemas equal.

use std::time::Duration;

use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::workload::{seed_from_env, Rng};
use sluice_testkit::MariaDb;

use crate::support::cli::{json_of, output_text, run_sluice};
use crate::support::sql::number;
use crate::support::{write_config, Coord, Sluice, TestResult};

const BIG_ROWS: u64 = 30_000;

/// A bounded random write load on `shop.big`.
async fn load(source: &MariaDb, seed: u64, steps: usize) -> TestResult {
    use mysql_async::prelude::Queryable as _;
    let mut rng = Rng::new(seed);
    let mut conn = source.conn().await?;
    for _ in 0..steps {
        let id = rng.range(1, i128::from(BIG_ROWS) + 2000);
        let sql = match rng.below(4) {
            0 => format!("UPDATE shop.big SET k = k + 1, pad = 'u' WHERE id = {id}"),
            1 => format!("DELETE FROM shop.big WHERE id = {id}"),
            2 => format!("REPLACE INTO shop.big VALUES ({id}, 5, 'r')"),
            _ => format!("UPDATE IGNORE shop.big SET id = id + 10000000 WHERE id = {id}"),
        };
        conn.query_drop(sql).await?;
    }
    Ok(())
}

#[tokio::test]
async fn recopy_while_streaming_repairs_a_changed_target() -> TestResult {
    use crate::support::ha::{wait_leader, HA};
    use crate::support::server_id;
    let (source, target, etcd) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::target(),
        sluice_testkit::Etcd::start()
    )?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.big (id BIGINT UNSIGNED PRIMARY KEY, k INT NOT NULL, pad CHAR(40))",
        "CREATE TABLE shop.bag (a INT, b VARCHAR(20))",
        "INSERT INTO shop.bag SELECT seq % 50, CONCAT('v', seq % 7) FROM shop.seq_1_to_800",
    ] {
        source.exec(sql).await?;
    }
    source
        .exec(&format!(
            "INSERT INTO shop.big SELECT seq, seq % 1000, MD5(seq) FROM shop.seq_1_to_{BIG_ROWS}"
        ))
        .await?;
    let config = write_config(
        dir.path(),
        "again",
        &source,
        &target,
        Coord::Etcd(&etcd),
        "latest",
        &format!(
            "{HA}routes: [ {{ match: 'shop\\.(.*)', to: 'shop_copy.$1' }} ]\n\
             snapshot: {{ mode: initial, parallel: 2, chunk_rows: 3000 }}\n"
        ),
    );
    let a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, "again", Some("node-a"), Duration::from_secs(30)).await;
    let same = |why: &'static str| {
        let (source, target) = (&source, &target);
        async move {
            wait_until_same(
                source,
                "shop",
                target,
                "shop_copy",
                &CompareOpts::default(),
                Duration::from_secs(120),
            )
            .await
            .map_err(|e| format!("{why}: {e:#}"))
        }
    };
    if let Err(e) = same("after the initial snapshot").await {
        panic!("{e}\n{}", a.log_tail());
    }
    // Break the target behind the pipeline's back.
    for sql in [
        "DELETE FROM shop_copy.big WHERE id % 10 = 3",
        "UPDATE shop_copy.big SET k = -1, pad = 'wrong' WHERE id % 7 = 0",
        "INSERT INTO shop_copy.big VALUES (5000000, 1, 'extra past the end'), (5000001, 2, 'extra')",
        "DELETE FROM shop_copy.bag WHERE a < 10",
        "INSERT INTO shop_copy.bag VALUES (1, 'v1'), (999, 'extra')",
    ] {
        target.exec(sql).await?;
    }
    let (loaded, out) = tokio::join!(load(&source, seed ^ 0x5EED, 2500), async {
        run_sluice(
            &[
                "snapshot", "--table", "shop.big", "--table", "shop.bag", "--json",
            ],
            &config,
        )
        .await
    });
    loaded?;
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        a.log_tail()
    );
    let answer = json_of(&out);
    assert_eq!(answer["state"], "done", "{answer:#}");
    let left = "SELECT COUNT(*) FROM sluice_meta.snapshot_progress WHERE pipeline = 'again' AND state <> 'done'";
    sluice_testkit::wait_until_async(
        "the re-copy done",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async { number(&target, left).await.filter(|n| *n == 0) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log_tail()));
    if let Err(e) = same("after the re-copy").await {
        panic!("{e}\n{}", a.log_tail());
    }
    let snap = sluice_testkit::wait_until_async(
        "the re-copy published as done",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let out = run_sluice(&["status", "--json"], &config).await;
            let j = json_of(&out);
            (j["snapshot"]["state"] == "done").then(|| j["snapshot"].clone())
        },
    )
    .await?;
    // In the operator's order, or — after a term restart re-reads the
    // progress rows — in the store's (by name): the same two tables.
    let mut tables: Vec<String> = snap["tables"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["table"].as_str().map(str::to_string))
        .collect();
    tables.sort();
    assert_eq!(tables, ["shop.bag", "shop.big"], "{snap:#}");
    assert!(a.log_text().contains("re-copying tables while streaming"));
    // One message for what cannot be re-copied.
    let out = run_sluice(&["snapshot", "--table", "shop.nothere", "--json"], &config).await;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("unknown table `shop.nothere`"),
        "{}",
        output_text(&out)
    );
    Ok(())
}
