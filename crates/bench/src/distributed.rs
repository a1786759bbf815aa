//! Distributed stages: rows/s of a three-node split (node A select+extract,
//! nodes B and C transform+load, batches moving over the stage pipe and
//! tasks through etcd) against the single-node pipeline, on the same
//! backlog, same source, target and etcd.
//!
//! Both start from the position before the backlog and are timed from
//! spawning their processes until the target's checkpoint reaches the
//! source's end of binlog. Target: the split at ≥ 0.9× one node.
//!
//! etcd requests per batch come from etcd's own `/metrics`: every unary
//! gRPC request it handled (`grpc_server_handled_total`: Range, Txn, Put,
//! DeleteRange, LeaseGrant, …) plus every lease keep-alive message, during
//! the run, divided by the batches the run acknowledged (the target
//! checkpoint's batch id). Target: ≤ 2 per batch, amortised over the
//! backlog.

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
        let requests = etcd_requests(&etcd).await?;
        let started = Instant::now();
        let mut nodes = vec![spawn(sluice_bin, &base, "one-a", 9101)?];
        let took = wait_rows(&target, "one", rows, &mut nodes, started).await?;
        let requests = etcd_requests(&etcd).await? - requests;
        stop(nodes).await;
        (took, requests, checkpoint_batch(&target, "one").await?)
    };
    ensure_same("distributed (one node)", &source, &target, &[ORDERS.into()]).await?;

    target.exec(&format!("TRUNCATE TABLE {ORDERS}")).await?;
    eprintln!("distributed: three nodes ...");
    let split = {
        let base = pipeline_file(dir.path(), "split", &source, &target, &etcd, &before);
        let a = node_file(&base, "split-a", "select, extract")?;
        let b = node_file(&base, "split-b", "transform, load")?;
        let c = node_file(&base, "split-c", "transform, load")?;
        let requests = etcd_requests(&etcd).await?;
        let started = Instant::now();
        let mut nodes = vec![spawn(sluice_bin, &a, "split-a", 9201)?];
        // A leads (the others defer their campaign); B and C claim tasks.
        nodes.push(spawn(sluice_bin, &b, "split-b", 9202)?);
        nodes.push(spawn(sluice_bin, &c, "split-c", 9203)?);
        let took = wait_rows(&target, "split", rows, &mut nodes, started).await?;
        let requests = etcd_requests(&etcd).await? - requests;
        stop(nodes).await;
        (took, requests, checkpoint_batch(&target, "split").await?)
    };
    ensure_same(
        "distributed (three nodes)",
        &source,
        &target,
        &[ORDERS.into()],
    )
    .await?;

    let (single, single_requests, single_batches) = single;
    let (split, split_requests, split_batches) = split;
    let per_batch = |requests: f64, batches: u64| requests / batches.max(1) as f64;
    let s = rows as f64 / split.as_secs_f64();
    let r = rows as f64 / single.as_secs_f64();
    Ok(Outcome {
        scenario: "distributed stages".into(),
        metric: "rows/s".into(),
        sluice: s,
        reference: r,
        reference_tool: "sluice, all stages on one node".into(),
        ratio: s / r,
        target: 0.9,
        note: format!(
            "{rows} rows in {} transactions; three nodes (select+extract | transform+load ×2, tasks in etcd, batches over HTTP) {:.2}s vs one node {:.2}s, same machine; etcd requests per batch: three nodes {:.2} ({split_requests:.0} for {split_batches} batches), one node {:.2} ({single_requests:.0} for {single_batches})",
            rows.div_ceil(ROWS_PER_TXN),
            split.as_secs_f64(),
            single.as_secs_f64(),
            per_batch(split_requests, split_batches),
            per_batch(single_requests, single_batches),
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

/// Requests etcd has handled so far (see the module docs).
async fn etcd_requests(etcd: &Etcd) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", etcd.client_port())).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(count_requests(&body))
}

/// Unary requests handled plus lease keep-alive messages, from etcd's
/// Prometheus text.
fn count_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            (l.starts_with("grpc_server_handled_total{") && l.contains("grpc_type=\"unary\""))
                || (l.starts_with("grpc_server_msg_received_total{")
                    && l.contains("grpc_method=\"LeaseKeepAlive\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The batch id of `pipeline`'s target checkpoint.
async fn checkpoint_batch(target: &MariaDb, pipeline: &str) -> anyhow::Result<u64> {
    let mut conn = target.conn().await?;
    let id: Option<u64> = conn
        .exec_first(
            "SELECT batch_id FROM sluice_meta.checkpoint WHERE pipeline = ?",
            (pipeline,),
        )
        .await?;
    let _ = conn.disconnect().await;
    Ok(id.unwrap_or(0))
}

/// SIGTERM every node, workers first (the leader's drain needs nothing
/// from them once caught up).
async fn stop(nodes: Vec<SluiceProcess>) {
    for mut node in nodes.into_iter().rev() {
        let _ = node.terminate(Duration::from_secs(30)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_unary_requests_and_keep_alives() {
        let text = "\
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 10
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 5
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 3
grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 7
grpc_server_msg_received_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 9
";
        assert_eq!(count_requests(text), 22.0);
    }
}
