//! Bulk catch-up: a backlog of inserted rows, replicated by sluice, vs the
//! same backlog replicated by MariaDB's own replica (the reference the
//! target is set against), and vs the same rows loaded into the same target
//! by one `mariadb` client from a `mariadb-dump --no-create-info` file.
//!
//! The backlog is written while sluice is not running; sluice then starts
//! at the position before it (`source.start`), so it applies exactly the
//! backlog. sluice's time runs from spawning the process (connecting,
//! migrating its metadata, dumping, decoding, applying) until the target's
//! checkpoint reaches the source's end of binlog; the native replica's from
//! `START SLAVE` (at the GTID before the backlog) until its
//! `@@gtid_slave_pos` is the source's; the client's from starting it until
//! it exits. The target table is emptied before each run; all three write
//! to the same target server. Figures are the median of the runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_binlog::dialect::{Dialect, SourceAddress};
use sluice_testkit::{find_binary, MariaDb, Role, REPL_PASSWORD, REPL_USER};

use crate::data::{insert_orders, ORDERS, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, ensure_same, gtid_binlog_pos, master_status, wait_replica};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};

/// Rows per source transaction in the backlog.
const ROWS_PER_TXN: u64 = 10_000;

pub async fn run(sluice_bin: &Path, rows: u64, runs: u32) -> anyhow::Result<Vec<Outcome>> {
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
    let before_gtid = gtid_binlog_pos(&mut conn).await?;
    insert_orders(&mut conn, 1, rows, ROWS_PER_TXN).await?;
    let after = master_status(&mut conn).await?;
    let after_gtid = gtid_binlog_pos(&mut conn).await?;
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

    let dialect = servers::dialect(&mut target.conn().await?).await?;
    let mut client = Vec::new();
    let mut native = Vec::new();
    let mut ours = Vec::new();
    let mut peak = 0u64;
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
        client.push(took);
        ensure_same("bulk (mariadb client)", &source, &target, &[ORDERS.into()]).await?;

        target.exec(&format!("TRUNCATE TABLE {ORDERS}")).await?;
        eprintln!("bulk: run {}: native replica ...", run + 1);
        let took = native_catch_up(&source, &target, &dialect, &before_gtid, &after_gtid).await?;
        eprintln!("bulk:   native replica {:.2}s", took.as_secs_f64());
        native.push(took);
        ensure_same("bulk (native replica)", &source, &target, &[ORDERS.into()]).await?;

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
        ours.push((took, cpu));
        peak = peak.max(rss);
        ensure_same("bulk (sluice)", &source, &target, &[ORDERS.into()]).await?;
    }
    let (sluice_t, cpu) = median_by_key(&mut ours, |(t, _)| *t);
    let native_t = median(&mut native);
    let client_t = median(&mut client);
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let (s, n, c) = (rate(sluice_t), rate(native_t), rate(client_t));
    let note = format!(
        "{rows} rows in {} transactions, {dump_mb} MB dump; median of {runs} (spread {}): sluice {:.2}s (process start to checkpoint at the source's end; {:.2}s CPU; peak RSS {:.0} MiB); native replica {:.2}s (START SLAVE to @@gtid_slave_pos at the source's end, {:.0} rows/s; spread {}); mariadb client {:.2}s ({:.0} rows/s; spread {}); all three into the same emptied target table",
        rows.div_ceil(ROWS_PER_TXN),
        spread(ours.iter().map(|(t, _)| *t)),
        sluice_t.as_secs_f64(),
        cpu.as_secs_f64(),
        peak as f64 / MIB,
        native_t.as_secs_f64(),
        n,
        spread(native.iter().copied()),
        client_t.as_secs_f64(),
        c,
        spread(client.iter().copied()),
    );
    Ok(vec![
        Outcome {
            scenario: "bulk catch-up vs native".into(),
            metric: "rows/s".into(),
            sluice: s,
            reference: n,
            reference_tool: "MariaDB replication of the same backlog (single-threaded)".into(),
            ratio: s / n,
            target: 1.0,
            note: note.clone(),
        },
        Outcome {
            scenario: "bulk catch-up vs client".into(),
            metric: "rows/s".into(),
            sluice: s,
            reference: c,
            reference_tool: "mariadb < mariadb-dump --no-create-info".into(),
            ratio: s / c,
            target: 2.0,
            note: String::new(),
        },
    ])
}

/// The median of `v` (sorted in place; the upper one of an even count).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median_by_key<T: Copy>(v: &mut [T], key: impl Fn(&T) -> Duration) -> T {
    v.sort_by_key(|x| key(x));
    v[v.len() / 2]
}

/// "min–max" of durations, in seconds.
pub fn spread(v: impl Iterator<Item = Duration>) -> String {
    let v: Vec<f64> = v.map(|d| d.as_secs_f64()).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.2}–{hi:.2}s")
}

/// MariaDB's own replica applying the backlog: `target` replicates from
/// `source` starting at `from` (the GTID position before the backlog);
/// timed from `START SLAVE` until `@@gtid_slave_pos` is `to`. The IO
/// thread fetches the backlog while the SQL thread applies it, as sluice's
/// dump does. The replica is reset afterwards.
async fn native_catch_up(
    source: &MariaDb,
    target: &MariaDb,
    dialect: &Dialect,
    from: &str,
    to: &str,
) -> anyhow::Result<Duration> {
    let change = dialect.change_source(&SourceAddress {
        host: "127.0.0.1",
        port: source.port(),
        user: REPL_USER,
        password: REPL_PASSWORD,
        gtid: true,
        connect_retry_s: 60,
    });
    target
        .exec(&format!("SET GLOBAL gtid_slave_pos = '{from}'; {change}"))
        .await?;
    let begin = Instant::now();
    target.exec(dialect.start_replica()).await?;
    wait_replica(target, dialect, to, Duration::from_secs(600)).await?;
    let took = begin.elapsed();
    target
        .exec(&format!("{}; RESET SLAVE ALL", dialect.stop_replica()))
        .await?;
    Ok(took)
}
