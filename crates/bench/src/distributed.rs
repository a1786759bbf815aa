//! Distributed stages: rows/s of a three-node split (node A select+extract,
//! nodes B and C transform+load, batches moving over the stage pipe and
//! tasks through etcd) against the single-node pipeline, on the same
//! backlog, same source, target and etcd.
//!
//! Both start from the position before the backlog and are timed from
//! spawning their processes until the target's checkpoint reaches the
//! source's end of binlog. There is no target ratio: the split buys
//! placement (Transform/Load next to the target) and survival of a lost
//! node, not speed on one machine; the figure says what it costs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{Etcd, MariaDb, Role, SluiceProcess};

use crate::data::{insert_orders, ORDERS, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, ensure_same, master_status, BinlogPos};

/// Rows per source transaction in the backlog.
const ROWS_PER_TXN: u64 = 1_000;

pub async fn run(sluice_bin: &Path, rows: u64) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-dist-")
        .tempdir()?;
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    let etcd = Etcd::start().await?;
    source.exec(ORDERS_DDL).await?;
    target.exec(ORDERS_DDL).await?;

    eprintln!("distributed: writing a backlog of {rows} rows ({ROWS_PER_TXN} per transaction) ...");
    let mut conn = source.conn().await?;
    let before = master_status(&mut conn).await?;
    insert_orders(&mut conn, 1, rows, ROWS_PER_TXN).await?;
    conn.disconnect().await?;

    eprintln!("distributed: one node ...");
    let single = {
        let base = pipeline_file(dir.path(), "one", &source, &target, &etcd, &before);
        let started = Instant::now();
        let mut nodes = vec![spawn(sluice_bin, &base, "one-a", 9101)?];
        let took = wait_rows(&target, "one", rows, &mut nodes, started).await?;
        stop(nodes).await;
        took
    };
    ensure_same("distributed (one node)", &source, &target, &[ORDERS.into()]).await?;

    target.exec(&format!("TRUNCATE TABLE {ORDERS}")).await?;
    eprintln!("distributed: three nodes ...");
    let split = {
        let base = pipeline_file(dir.path(), "split", &source, &target, &etcd, &before);
        let a = node_file(&base, "split-a", "select, extract")?;
        let b = node_file(&base, "split-b", "transform, load")?;
        let c = node_file(&base, "split-c", "transform, load")?;
        let started = Instant::now();
        let mut nodes = vec![spawn(sluice_bin, &a, "split-a", 9201)?];
        // A leads (the others defer their campaign); B and C claim tasks.
        nodes.push(spawn(sluice_bin, &b, "split-b", 9202)?);
        nodes.push(spawn(sluice_bin, &c, "split-c", 9203)?);
        let took = wait_rows(&target, "split", rows, &mut nodes, started).await?;
        stop(nodes).await;
        took
    };
    ensure_same(
        "distributed (three nodes)",
        &source,
        &target,
        &[ORDERS.into()],
    )
    .await?;

    let s = rows as f64 / split.as_secs_f64();
    let r = rows as f64 / single.as_secs_f64();
    Ok(Outcome {
        scenario: "distributed stages".into(),
        metric: "rows/s".into(),
        sluice: s,
        reference: r,
        reference_tool: "sluice, all stages on one node".into(),
        ratio: s / r,
        target: 0.0,
        note: format!(
            "{rows} rows in {} transactions; three nodes (select+extract | transform+load ×2, tasks in etcd, batches over HTTP) {:.2}s vs one node {:.2}s, same machine; no target ratio (reported)",
            rows.div_ceil(ROWS_PER_TXN),
            split.as_secs_f64(),
            single.as_secs_f64()
        ),
    })
}

fn pipeline_file(
    dir: &Path,
    name: &str,
    source: &MariaDb,
    target: &MariaDb,
    etcd: &Etcd,
    start: &BinlogPos,
) -> PathBuf {
    let text = format!(
        "name: {name}\n\
         source:\n  url: \"{src}\"\n  server_id: 9100\n  start: {{file: {file}, pos: {pos}}}\n\
         target:\n  url: \"{tgt}\"\n\
         coordination:\n  etcd: {{endpoints: [\"{etcd}\"], prefix: /bench}}\n\
         filter:\n  include: ['bench\\..*']\n",
        src = source.repl_url(),
        file = start.file,
        pos = start.pos,
        tgt = target.url(),
        etcd = etcd.endpoint(),
    );
    let path = dir.join(format!("{name}.yaml"));
    // The directory was just created; a failure here is a bug of the bench.
    std::fs::write(&path, text).expect("write the pipeline file");
    path
}

fn node_file(base: &Path, node: &str, stages: &str) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(base)?;
    let text = format!("{text}node: {{stages: [{stages}]}}\nstages: {{listen: \"127.0.0.1:0\"}}\n");
    let path = base.with_file_name(format!("{node}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn spawn(bin: &Path, config: &Path, node: &str, server_id: u32) -> anyhow::Result<SluiceProcess> {
    let log = config.with_file_name(format!("{node}.log"));
    let id = server_id.to_string();
    crate::sluice::run_process(
        bin,
        config,
        &log,
        node,
        &["--node-id", node, "--server-id", &id],
    )
}

/// Polls the target until it holds all `rows` rows; returns the time
/// since `started`. (Not the checkpoint: a trailing batch without rows —
/// the backlog's last position move — is acknowledged without a target
/// write.) Fails if a node exits.
async fn wait_rows(
    target: &MariaDb,
    pipeline: &str,
    rows: u64,
    nodes: &mut [SluiceProcess],
    started: Instant,
) -> anyhow::Result<Duration> {
    let mut conn = target.conn().await?;
    let sql = format!("SELECT COUNT(*) FROM {ORDERS}");
    let timeout = Duration::from_secs(900);
    loop {
        for node in nodes.iter_mut() {
            if let Some(status) = node.try_exited() {
                return Err(anyhow::Error::new(node.exited_error(status)));
            }
        }
        let have: Option<u64> = conn.query_first(sql.as_str()).await.unwrap_or(None);
        if have == Some(rows) {
            let _ = conn.disconnect().await;
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{pipeline}: the target never held {rows} rows (has {have:?}); logs: {}",
            nodes
                .iter()
                .map(|n| n.log_path().display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM every node, workers first (the leader's drain needs nothing
/// from them once caught up).
async fn stop(nodes: Vec<SluiceProcess>) {
    for mut node in nodes.into_iter().rev() {
        let _ = node.terminate(Duration::from_secs(30)).await;
    }
}
