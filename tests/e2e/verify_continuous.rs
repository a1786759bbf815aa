//! Continuous verification end to end (issue 16, `verify:`): the active
//! node's rounds find a target row changed behind the pipeline's back,
//! deliver `verify_mismatch` naming the table and key to the webhook, and
//! `sluice status --json` shows the difference count.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};

use crate::ops::Hook;
use crate::support::cli::{output_text, run_sluice};
use crate::support::sluice::{write_config, Coord, Sluice};
use crate::support::sql::{start_of_binlog, wait_same};
use crate::support::TestResult;

#[tokio::test]
async fn a_changed_target_row_is_reported_by_the_webhook_and_status() -> TestResult {
    let (source, target, etcd) = tokio::try_join!(MariaDb::source(), MariaDb::target(), async {
        Etcd::start().await
    })?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let mut conn = source.conn().await?;
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40));
         USE shop;
         INSERT INTO shop.items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_200;",
    )
    .await?;
    let (hook, hook_url, hook_task) = Hook::start().await;
    let config = write_config(
        dir.path(),
        "verifyloop",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        &format!(
            "filter: {{ include: ['shop\\..*'] }}\nbatch: {{ max_delay: 5ms }}\n\
             verify: {{ interval: 1s, rate: 100000, chunk_rows: 50 }}\n\
             alarms:\n  webhooks:\n    - url: \"{hook_url}\"\n      timeout: 2s\n"
        ),
    );
    let sluice = Sluice::start(&config);
    let count = "SELECT COUNT(*) FROM shop.items";
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
        .exec("UPDATE shop.items SET name = 'changed' WHERE id = 42")
        .await?;

    let event = wait_until_async(
        "a verify_mismatch naming shop.items and id 42",
        Duration::from_secs(90),
        Duration::from_millis(100),
        || async {
            hook.events().into_iter().map(|(e, _)| e).find(|e| {
                e["kind"] == "verify_mismatch"
                    && e["details"]["tables"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|t| {
                            t["table"] == "shop.items"
                                && t["keys"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .any(|k| k == r#"{"id":42}"#)
                        })
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", hook.events(), sluice.log_tail()));
    assert_eq!(event["state"], "event", "{event}");
    assert_eq!(event["details"]["differences"], 1, "{event}");

    let verify = wait_until_async(
        "sluice status --json showing the difference",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let out = run_sluice(&["status", "--json"], &config).await;
            let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
            let v = doc["verify"].clone();
            (v["last_round"]["differences"] == 1).then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log_tail()));
    assert!(verify["rounds"].as_u64().unwrap_or(0) >= 1, "{verify}");
    let last = &verify["last_round"];
    assert_eq!(last["tables"], 1, "{verify}");
    assert_eq!(last["rows"], 200, "{verify}");
    assert_eq!(last["mismatched"][0]["table"], "shop.items", "{verify}");
    assert!(
        last["finished_unix_ms"].as_u64() >= last["started_unix_ms"].as_u64(),
        "{verify}"
    );
    let out = run_sluice(&["status"], &config).await;
    let text = output_text(&out);
    assert!(text.contains("verify"), "{text}");
    assert!(text.contains("1 differences"), "{text}");
    hook_task.abort();
    Ok(())
}
