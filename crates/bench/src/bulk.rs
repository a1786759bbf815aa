//! Bulk catch-up: a backlog of inserted rows, replicated by sluice, vs the
//! same rows loaded into the same target by one `mariadb` client from a
//! `mariadb-dump --no-create-info` file.
//!
//! The backlog is written while sluice is not running; sluice then starts
//! at the position before it (`source.start`), so it applies exactly the
//! backlog. sluice's time runs from spawning the process (connecting,
//! migrating its metadata, dumping, decoding, applying) until the target's
//! checkpoint reaches the source's end of binlog; the reference's from
//! starting the client until it exits. The target table is emptied before
//! each run; both write to the same target server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_testkit::{find_binary, Role};

use crate::data::{insert_orders, ORDERS, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, ensure_same, master_status};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};

/// Rows per source transaction in the backlog.
const ROWS_PER_TXN: u64 = 10_000;

pub async fn run(sluice_bin: &Path, rows: u64, runs: u32) -> anyhow::Result<Outcome> {
    let dump_bin = find_binary("mariadb-dump", "mariadb-client")?;
    let client_bin = find_binary("mariadb", "mariadb-client")?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-bulk-")
        .tempdir()?;
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    source.exec(ORDERS_DDL).await?;
    target.exec(ORDERS_DDL).await?;

    eprintln!("bulk: writing a backlog of {rows} rows ({ROWS_PER_TXN} per transaction) ...");
    let mut conn = source.conn().await?;
    let before = master_status(&mut conn).await?;
    insert_orders(&mut conn, 1, rows, ROWS_PER_TXN).await?;
    let after = master_status(&mut conn).await?;
    conn.disconnect().await?;

    let dump = dir.path().join("orders.sql");
    let status = Command::new(&dump_bin)
        .args(["--no-defaults", "-h127.0.0.1", "-uroot", "--no-create-info"])
        .arg(format!("-P{}", source.port()))
        .args(["bench", "orders"])
        .stdout(std::fs::File::create(&dump)?)
        .stderr(Stdio::inherit())
        .status()?;
    anyhow::ensure!(status.success(), "mariadb-dump failed: {status}");
    let dump_mb = std::fs::metadata(&dump)?.len() / 1_000_000;

    let mut best_ref = Duration::MAX;
    let mut best_sluice = Duration::MAX;
    let mut peak = 0u64;
    let mut best_cpu = Duration::ZERO;
    for run in 0..runs {
        target.exec(&format!("TRUNCATE TABLE {ORDERS}")).await?;
        eprintln!("bulk: run {}: mariadb < dump ({dump_mb} MB) ...", run + 1);
        let start = Instant::now();
        let status = Command::new(&client_bin)
            .args(["--no-defaults", "-h127.0.0.1", "-uroot", "bench"])
            .arg(format!("-P{}", target.port()))
            .stdin(std::fs::File::open(&dump)?)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()?;
        anyhow::ensure!(status.success(), "mariadb < dump failed: {status}");
        let took = start.elapsed();
        eprintln!("bulk:   mariadb client {:.2}s", took.as_secs_f64());
        best_ref = best_ref.min(took);
        ensure_same("bulk (mariadb client)", &source, &target, &[ORDERS.into()]).await?;

        target.exec(&format!("TRUNCATE TABLE {ORDERS}")).await?;
        eprintln!("bulk: run {}: sluice ...", run + 1);
        let spec = PipelineSpec::new(
            &format!("bulk{}", run + 1),
            r"bench\..*",
            Start::At(before.clone()),
        );
        let mut sluice = Sluice::spawn(sluice_bin, dir.path(), &spec, &source, &target)?;
        let done = sluice
            .wait_caught_up(
                &target,
                &after,
                Duration::from_secs(600),
                Duration::from_millis(10),
            )
            .await?;
        let took = done - sluice.started();
        let rss = sluice.peak_rss()?;
        let cpu = sluice.cpu_time()?;
        sluice.stop().await?;
        eprintln!(
            "bulk:   sluice {:.2}s, CPU {:.2}s, peak RSS {:.0} MiB",
            took.as_secs_f64(),
            cpu.as_secs_f64(),
            rss as f64 / MIB
        );
        if took < best_sluice {
            best_cpu = cpu;
        }
        best_sluice = best_sluice.min(took);
        peak = peak.max(rss);
        ensure_same("bulk (sluice)", &source, &target, &[ORDERS.into()]).await?;
    }
    let s = rows as f64 / best_sluice.as_secs_f64();
    let r = rows as f64 / best_ref.as_secs_f64();
    Ok(Outcome {
        scenario: "bulk catch-up".into(),
        metric: "rows/s".into(),
        sluice: s,
        reference: r,
        reference_tool: "mariadb < mariadb-dump --no-create-info".into(),
        ratio: s / r,
        target: 1.0,
        note: format!(
            "{rows} rows in {} transactions, {dump_mb} MB dump; best of {runs}: sluice {:.2}s (process start to checkpoint at the source's end; {:.2}s CPU; peak RSS {:.0} MiB), mariadb client {:.2}s",
            rows.div_ceil(ROWS_PER_TXN),
            best_sluice.as_secs_f64(),
            best_cpu.as_secs_f64(),
            peak as f64 / MIB,
            best_ref.as_secs_f64()
        ),
    })
}
