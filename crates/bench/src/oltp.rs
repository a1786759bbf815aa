//! OLTP catch-up: a `sysbench oltp_write_only` backlog replicated by sluice
//! vs MariaDB's own replication of the same backlog, single-threaded and
//! with optimistic parallel apply.
//!
//! All three targets start from the same state the same way: sluice and
//! two native replicas (`CHANGE MASTER TO … MASTER_USE_GTID=slave_pos`)
//! replicate `sysbench prepare` from the source, then sluice is stopped
//! (SIGTERM: position flushed) and the replicas `STOP SLAVE`d. The backlog
//! is written while nothing replicates. Then, one after another, each is
//! started again and timed until it holds the whole backlog: sluice until
//! its checkpoint reaches the source's end of binlog (from spawning the
//! process), a replica until `@@gtid_slave_pos` equals the source's
//! `@@gtid_binlog_pos` (from `START SLAVE`: its IO thread fetches the
//! backlog while the SQL threads apply it, as sluice's dump does). Each
//! target's tables are then checksummed against the source.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sluice_binlog::dialect::SourceAddress;
use sluice_testkit::{Role, REPL_PASSWORD, REPL_USER};

use crate::report::Outcome;
use crate::servers::{self, ensure_same, gtid_binlog_pos, gtid_seq, master_status, wait_replica};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};
use crate::sysbench::Workload;

/// Native parallel replication threads (sluice runs 4 workers).
const PARALLEL_THREADS: u32 = 4;

pub struct Size {
    pub workload: Workload,
    pub transactions: u64,
}

pub async fn run(sluice_bin: &Path, size: &Size) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-oltp-")
        .tempdir()?;
    let w = size.workload;
    let tables = w.tables();
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    let single = servers::start(Role::Target, &["--slave-parallel-threads=0"]).await?;
    let threads = format!("--slave-parallel-threads={PARALLEL_THREADS}");
    let parallel = servers::start(
        Role::Target,
        &[threads.as_str(), "--slave-parallel-mode=optimistic"],
    )
    .await?;

    source.exec("CREATE DATABASE sbtest").await?;
    target.exec("CREATE DATABASE IF NOT EXISTS sbtest").await?;
    let mut conn = source.conn().await?;
    let start = master_status(&mut conn).await?;
    // Every reference replica is the same server build.
    let replica_dialect = servers::dialect(&mut single.conn().await?).await?;
    for replica in [&single, &parallel] {
        let change = replica_dialect.change_source(&SourceAddress {
            host: "127.0.0.1",
            port: source.port(),
            user: REPL_USER,
            password: REPL_PASSWORD,
            gtid: true,
            connect_retry_s: 60,
        });
        replica
            .exec(&format!("{change}; {}", replica_dialect.start_replica()))
            .await?;
    }
    let spec = PipelineSpec::new("oltp", r"sbtest\..*", Start::At(start));
    let mut sluice = Sluice::spawn(sluice_bin, dir.path(), &spec, &source, &target)?;

    eprintln!(
        "oltp: sysbench prepare ({} tables x {} rows), replicated to all three targets ...",
        w.tables, w.table_size
    );
    {
        let source = &source;
        tokio::task::block_in_place(|| w.prepare(source))?;
    }
    let prepared = master_status(&mut conn).await?;
    let prepared_gtid = gtid_binlog_pos(&mut conn).await?;
    let long = Duration::from_secs(900);
    sluice
        .wait_caught_up(&target, &prepared, long, Duration::from_millis(50))
        .await?;
    sluice.stop().await?;
    for replica in [&single, &parallel] {
        wait_replica(replica, &replica_dialect, &prepared_gtid, long).await?;
        replica.exec(replica_dialect.stop_replica()).await?;
    }
    for (name, t) in [
        ("sluice", &target),
        ("single-threaded replica", &single),
        ("parallel replica", &parallel),
    ] {
        ensure_same(&format!("oltp prepare ({name})"), &source, t, &tables).await?;
    }

    eprintln!(
        "oltp: writing a backlog of {} transactions while nothing replicates ...",
        size.transactions
    );
    let ran = {
        let source = &source;
        let extra = [format!("--events={}", size.transactions), "--time=0".into()];
        tokio::task::block_in_place(|| w.run(source, 4, &extra))?
    };
    let end = master_status(&mut conn).await?;
    let end_gtid = gtid_binlog_pos(&mut conn).await?;
    conn.disconnect().await?;
    let txns = gtid_seq(&end_gtid)? - gtid_seq(&prepared_gtid)?;
    eprintln!(
        "oltp: backlog of {txns} transactions written at {:.0}/s ({} committed by sysbench)",
        ran.per_sec, ran.transactions
    );

    eprintln!("oltp: sluice catching up ...");
    let mut sluice = Sluice::spawn(sluice_bin, dir.path(), &spec, &source, &target)?;
    let done = sluice
        .wait_caught_up(&target, &end, long, Duration::from_millis(10))
        .await?;
    let sluice_time = done - sluice.started();
    let rss = sluice.peak_rss()?;
    let cpu = sluice.cpu_time()?;
    sluice.stop().await?;
    eprintln!(
        "oltp:   sluice {:.2}s (CPU {:.2}s)",
        sluice_time.as_secs_f64(),
        cpu.as_secs_f64()
    );

    let mut native = Vec::new();
    for (name, replica) in [("single-threaded", &single), ("parallel", &parallel)] {
        eprintln!("oltp: {name} native replica catching up ...");
        let begin = Instant::now();
        replica.exec(replica_dialect.start_replica()).await?;
        wait_replica(replica, &replica_dialect, &end_gtid, long).await?;
        let took = begin.elapsed();
        eprintln!("oltp:   {name} replica {:.2}s", took.as_secs_f64());
        native.push((name, took));
    }
    ensure_same("oltp backlog (sluice)", &source, &target, &tables).await?;
    ensure_same("oltp backlog (single)", &source, &single, &tables).await?;
    ensure_same("oltp backlog (parallel)", &source, &parallel, &tables).await?;

    let rate = |d: Duration| txns as f64 / d.as_secs_f64();
    let (best_name, best_time) = native
        .iter()
        .min_by_key(|(_, d)| *d)
        .copied()
        .context("no native run")?;
    let s = rate(sluice_time);
    let r = rate(best_time);
    Ok(Outcome {
        scenario: "OLTP catch-up".into(),
        metric: "transactions/s".into(),
        sluice: s,
        reference: r,
        reference_tool: format!("MariaDB replication, {best_name} (the faster native mode)"),
        ratio: s / r,
        target: 2.0,
        note: format!(
            "sysbench oltp_write_only, {} tables x {} rows, backlog of {txns} transactions ({} row changes); sluice {:.2}s ({:.2}s CPU, peak RSS {:.0} MiB); native single-threaded {:.2}s ({:.0}/s), parallel optimistic with {PARALLEL_THREADS} threads {:.2}s ({:.0}/s)",
            w.tables,
            w.table_size,
            txns * 4,
            sluice_time.as_secs_f64(),
            cpu.as_secs_f64(),
            rss as f64 / MIB,
            native[0].1.as_secs_f64(),
            rate(native[0].1),
            native[1].1.as_secs_f64(),
            rate(native[1].1),
        ),
    })
}
