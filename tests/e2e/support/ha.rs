//! An active/standby pair sharing one pipeline in etcd: servers and the
//! pipeline file, the leader, replication latency markers, a paced write
//! load, and waiting for part of that load to be applied (when a fault
//! test injects its fault "part-way into the load").

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};

use super::etcd::pipeline_keys;
use super::sluice::{server_id, write_config, Coord, Sluice};
use super::sql::{rows, start_of_binlog, wait_count};

/// What every HA test pipeline adds to its file: a short lease, a short
/// standby delay, small batch delays.
pub const HA: &str = "ha: { lease_ttl: 3s, standby_delay: 1s }\n\
                      batch: { max_delay: 5ms }\n";

/// The node holding the pipeline's leader key, polled until `want` (or any
/// leader when `None`) holds it.
pub async fn wait_leader(
    etcd: &Etcd,
    pipeline: &str,
    want: Option<&str>,
    timeout: Duration,
) -> String {
    let client = tokio::sync::Mutex::new(etcd.client().await.expect("etcd client"));
    let key = pipeline_keys(pipeline).leader();
    wait_until_async(
        &format!("leader {want:?} of {pipeline}"),
        timeout,
        Duration::from_millis(50),
        || {
            let (client, key) = (&client, &key);
            async move {
                let got = client.lock().await.get(key.as_str(), None).await.ok()?;
                let kv = got.kvs().first()?;
                let record: serde_json::Value =
                    serde_json::from_slice(kv.value()).unwrap_or_default();
                let node = record["node_id"].as_str().unwrap_or_default().to_string();
                want.is_none_or(|w| w == node).then_some(node)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: no leader {want:?} for {pipeline} within {timeout:?}"))
}

/// Inserts a marker row `id` into `shop.events` on the source and returns
/// how long until the target has it; on timeout, fails with the log tails
/// of `nodes`.
pub async fn marker_latency(
    source: &MariaDb,
    target: &MariaDb,
    id: i64,
    timeout: Duration,
    nodes: &[&Sluice],
) -> Duration {
    let started = Instant::now();
    source
        .exec(&format!("INSERT INTO shop.events VALUES ({id}, 'marker')"))
        .await
        .expect("insert marker");
    let sql = format!("SELECT v FROM shop.events WHERE id = {id}");
    wait_until_async(
        &format!("marker {id} on the target"),
        timeout,
        Duration::from_millis(20),
        || async {
            (rows(target, &sql).await == vec![vec![Some("marker".to_string())]])
                .then(|| started.elapsed())
        },
    )
    .await
    .unwrap_or_else(|e| {
        let logs: Vec<String> = nodes.iter().map(|n| n.log_tail()).collect();
        panic!(
            "{e}: marker {id} never reached the target; logs:\n{}",
            logs.join("\n-----\n")
        )
    })
}

/// A bounded write load paced `pause_ms` apart: an insert per id of `ids`
/// into `shop.events`, and every `update_every` ids an update of an
/// earlier row.
pub async fn paced_load(
    conn: &mut mysql_async::Conn,
    ids: std::ops::Range<i64>,
    pause_ms: u64,
    update_every: Option<i64>,
) {
    for id in ids {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'load')", (id,))
            .await
            .expect("load insert");
        if update_every.is_some_and(|n| id % n == 0) {
            conn.exec_drop("UPDATE shop.events SET v = 'upd' WHERE id = ?", (id - 3,))
                .await
                .expect("load update");
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Waits until the target holds at least `rows` rows of a [`paced_load`]
/// that started at id `first`: the moment a fault test injects its fault
/// "part-way into the load", known to be while replication is under way
/// rather than guessed from a delay.
pub async fn wait_load_applied(
    target: &MariaDb,
    first: i64,
    rows: u64,
    timeout: Duration,
    nodes: &[&Sluice],
) {
    let sql = format!("SELECT COUNT(*) FROM shop.events WHERE id >= {first}");
    wait_count(target, &sql, rows, timeout, nodes).await;
}

/// node-a elected and replicating pipeline `pair` (marker 1 on the target),
/// node-b standing by.
pub async fn start_pair(
    config: &std::path::Path,
    etcd: &Etcd,
    source: &MariaDb,
    target: &MariaDb,
) -> (Sluice, Sluice) {
    let a = Sluice::start_node(config, "node-a", Some(server_id()));
    wait_leader(etcd, "pair", Some("node-a"), Duration::from_secs(30)).await;
    let b = Sluice::start_node(config, "node-b", Some(server_id()));
    marker_latency(source, target, 1, Duration::from_secs(30), &[]).await;
    (a, b)
}

/// A source with `shop.events`, a target, etcd and a pipeline file `name`
/// for an HA pair (coordination in etcd under `/e2e`, [`HA`] settings).
pub async fn setup(
    name: &str,
) -> Result<
    (
        MariaDb,
        MariaDb,
        Etcd,
        tempfile::TempDir,
        std::path::PathBuf,
    ),
    Box<dyn std::error::Error>,
> {
    setup_with(name, HA).await
}

/// [`setup`] with the pipeline file's extra `settings` (YAML lines).
pub async fn setup_with(
    name: &str,
    settings: &str,
) -> Result<
    (
        MariaDb,
        MariaDb,
        Etcd,
        tempfile::TempDir,
        std::path::PathBuf,
    ),
    Box<dyn std::error::Error>,
> {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        name,
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        settings,
    );
    Ok((source, target, etcd, dir, config))
}
