//! Initial snapshot: [`TABLES`] tables of existing rows copied from a
//! source into an empty target by sluice (`snapshot: { mode: initial,
//! parallel: 4, create_tables: true }`), vs the same rows copied by
//! `mariadb-dump | mariadb` (one client) and by `mydumper` + `myloader`
//! with four threads each.
//!
//! The source is idle while the tools run; each tool writes into its own
//! freshly started, identically configured target that holds nothing (not
//! even the `bench` schema: every tool creates schema and tables itself).
//! sluice's time runs from spawning `sluice run` (connecting, migrating its
//! metadata, creating the tables, copying) until every table's row in
//! `sluice_meta.snapshot_progress` is `done` (written after the table's
//! last chunk committed) and the checkpoint is at the source's end of
//! binlog (the pipeline streams); the dump pipe's from spawning both ends
//! until both exit; mydumper's from starting the dump until myloader exits.
//! Each target is checked against the source afterwards (`CHECKSUM TABLE`).
//! Peak RSS is sluice's `VmHWM` once the snapshot is done.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{find_binary, MariaDb, Role};

use crate::data::{insert_rows, ORDERS, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, ensure_same, master_status};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};

/// Tables copied (the issue's 4 × 500k at the default `--rows`).
const TABLES: u64 = 4;
/// Threads of mydumper and myloader, and sluice's `snapshot.parallel`.
const THREADS: u32 = 4;
/// sluice's peak RSS budget the issue sets, MiB.
const BUDGET_MIB: f64 = 256.0;

/// `rows` is the scenario-wide row count: each table gets half of it
/// (500k at the default 1M).
pub async fn run(sluice_bin: &Path, rows: u64) -> anyhow::Result<Vec<Outcome>> {
    let per_table = (rows / 2).max(1_000);
    let total = per_table * TABLES;
    let dump_bin = find_binary("mariadb-dump", "mariadb-client")?;
    let client_bin = find_binary("mariadb", "mariadb-client")?;
    let mydumper = find_binary("mydumper", "mydumper")?;
    let myloader = find_binary("myloader", "mydumper")?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-snapshot-")
        .tempdir()?;
    let source = servers::start(Role::Source, &[]).await?;
    let tables: Vec<String> = (1..=TABLES).map(|i| format!("bench.snap_{i}")).collect();
    eprintln!("snapshot: {TABLES} tables × {per_table} rows on the source ...");
    let mut conn = source.conn().await?;
    for t in &tables {
        source.exec(&ORDERS_DDL.replace(ORDERS, t)).await?;
        insert_rows(&mut conn, t, 1, per_table, 50_000).await?;
    }
    let end = master_status(&mut conn).await?;
    conn.disconnect().await?;

    // sluice first, then the references, each into its own empty target.
    let target = servers::start(Role::Target, &[]).await?;
    eprintln!("snapshot: sluice (initial snapshot, parallel {THREADS}) ...");
    let mut spec = PipelineSpec::new("snapshot", r"bench\.snap_.*", Start::Latest);
    spec.extra =
        format!("snapshot: {{ mode: initial, parallel: {THREADS}, create_tables: true }}\n");
    let mut sluice = Sluice::spawn(sluice_bin, dir.path(), &spec, &source, &target)?;
    wait_snapshot_done(&mut sluice, &target, &spec.name, TABLES).await?;
    let done = sluice
        .wait_caught_up(
            &target,
            &end,
            Duration::from_secs(60),
            Duration::from_millis(10),
        )
        .await?;
    let sluice_t = done - sluice.started();
    let rss = sluice.peak_rss()? as f64 / MIB;
    let cpu = sluice.cpu_time()?;
    sluice.stop().await?;
    eprintln!(
        "snapshot:   sluice {:.2}s, CPU {:.2}s, peak RSS {rss:.0} MiB",
        sluice_t.as_secs_f64(),
        cpu.as_secs_f64()
    );
    ensure_same("snapshot (sluice)", &source, &target, &tables).await?;
    drop(target);

    let target = servers::start(Role::Target, &[]).await?;
    eprintln!("snapshot: mariadb-dump | mariadb ...");
    let client_t = dump_pipe(&dump_bin, &client_bin, &source, &target)?;
    eprintln!("snapshot:   dump | client {:.2}s", client_t.as_secs_f64());
    ensure_same(
        "snapshot (mariadb-dump | mariadb)",
        &source,
        &target,
        &tables,
    )
    .await?;
    drop(target);

    let target = servers::start(Role::Target, &[]).await?;
    eprintln!("snapshot: mydumper + myloader ({THREADS} threads) ...");
    let out = dir.path().join("mydumper");
    let (dump_t, load_t) = mydumper_myloader(&mydumper, &myloader, &out, &source, &target)?;
    let my_t = dump_t + load_t;
    eprintln!(
        "snapshot:   mydumper {:.2}s + myloader {:.2}s",
        dump_t.as_secs_f64(),
        load_t.as_secs_f64()
    );
    ensure_same("snapshot (mydumper + myloader)", &source, &target, &tables).await?;
    drop(target);

    let (fastest_t, fastest_tool) = if my_t < client_t {
        (my_t, format!("mydumper + myloader, {THREADS} threads"))
    } else {
        (client_t, "mariadb-dump | mariadb".to_string())
    };
    let secs = |d: Duration| d.as_secs_f64();
    let note = format!(
        "{TABLES} tables × {per_table} rows ({total} rows), idle source, each tool into its own empty target; one run each: sluice {:.2}s (spawn to every table done and checkpoint at the source's end; {:.2}s CPU; {:.0} rows/s), mariadb-dump | mariadb {:.2}s, mydumper {:.2}s + myloader {:.2}s = {:.2}s",
        secs(sluice_t),
        secs(cpu),
        total as f64 / secs(sluice_t),
        secs(client_t),
        secs(dump_t),
        secs(load_t),
        secs(my_t),
    );
    Ok(vec![
        Outcome {
            scenario: "initial snapshot vs fastest dump".into(),
            metric: "s".into(),
            sluice: secs(sluice_t),
            reference: secs(fastest_t),
            reference_tool: format!("the faster of the dump tools ({fastest_tool})"),
            ratio: secs(fastest_t) / secs(sluice_t),
            target: 1.0,
            note,
        },
        Outcome {
            scenario: "initial snapshot vs one client".into(),
            metric: "s".into(),
            sluice: secs(sluice_t),
            reference: secs(client_t),
            reference_tool: "mariadb-dump --single-transaction | mariadb".into(),
            ratio: secs(client_t) / secs(sluice_t),
            target: 1.5,
            note: String::new(),
        },
        Outcome {
            scenario: "initial snapshot memory".into(),
            metric: "peak RSS MiB".into(),
            sluice: rss,
            reference: BUDGET_MIB,
            reference_tool: "the issue's budget (≤ 256 MiB)".into(),
            ratio: BUDGET_MIB / rss,
            target: 1.0,
            note: String::new(),
        },
    ])
}

/// Polls `sluice_meta.snapshot_progress` on `target` until `tables` rows of
/// `pipeline` are `done`; fails if sluice exits or after 15 minutes.
async fn wait_snapshot_done(
    sluice: &mut Sluice,
    target: &MariaDb,
    pipeline: &str,
    tables: u64,
) -> anyhow::Result<()> {
    let mut conn = target.conn().await?;
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(rows_copied), 0) AS UNSIGNED) FROM sluice_meta.snapshot_progress \
         WHERE pipeline = '{pipeline}' AND state = 'done'"
    );
    let begin = Instant::now();
    let mut last_report = Instant::now();
    loop {
        sluice.ensure_running()?;
        // The table appears once sluice has migrated the target.
        let (done, rows): (u64, u64) = conn
            .query_first(sql.as_str())
            .await
            .ok()
            .flatten()
            .unwrap_or((0, 0));
        if done >= tables {
            let _ = conn.disconnect().await;
            return Ok(());
        }
        anyhow::ensure!(
            begin.elapsed() < Duration::from_secs(900),
            "timed out waiting for sluice's snapshot: {done} of {tables} tables done"
        );
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  ... {:.0?}: {done} tables done ({rows} rows)",
                begin.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connection arguments of the MariaDB command-line tools.
fn client_args(server: &MariaDb) -> [String; 4] {
    [
        "--no-defaults".into(),
        "-h127.0.0.1".into(),
        "-uroot".into(),
        format!("-P{}", server.port()),
    ]
}

/// `mariadb-dump --single-transaction --databases bench | mariadb`, timed
/// from spawning both until both have exited.
fn dump_pipe(
    dump_bin: &Path,
    client_bin: &Path,
    source: &MariaDb,
    target: &MariaDb,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut dump = Command::new(dump_bin)
        .args(client_args(source))
        .args(["--single-transaction", "--databases", "bench"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pipe = dump
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("mariadb-dump has no stdout"))?;
    let client = Command::new(client_bin)
        .args(client_args(target))
        .stdin(pipe)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
    let dumped = dump.wait()?;
    let client = client?;
    let took = start.elapsed();
    anyhow::ensure!(dumped.success(), "mariadb-dump failed: {dumped}");
    anyhow::ensure!(client.success(), "mariadb < dump failed: {client}");
    Ok(took)
}

/// `mydumper` of `bench` into `out`, then `myloader` of it into `target`,
/// [`THREADS`] threads each; the two times.
fn mydumper_myloader(
    mydumper: &Path,
    myloader: &Path,
    out: &Path,
    source: &MariaDb,
    target: &MariaDb,
) -> anyhow::Result<(Duration, Duration)> {
    let port = |s: &MariaDb| s.port().to_string();
    let threads = THREADS.to_string();
    let start = Instant::now();
    let status = Command::new(mydumper)
        .args(["-h", "127.0.0.1", "-u", "root", "-P", port(source).as_str()])
        .args([
            "-t",
            threads.as_str(),
            "-B",
            "bench",
            "--trx-consistency-only",
            "-o",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    anyhow::ensure!(status.success(), "mydumper failed: {status}");
    let dumped = start.elapsed();
    let start = Instant::now();
    let status = Command::new(myloader)
        .args(["-h", "127.0.0.1", "-u", "root", "-P", port(target).as_str()])
        .args(["-t", threads.as_str(), "-d"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    anyhow::ensure!(status.success(), "myloader failed: {status}");
    Ok((dumped, start.elapsed()))
}
