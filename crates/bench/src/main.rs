//! `sluice-bench`: sluice measured against the reference tools, in one run.
//!
//! Every scenario starts its own servers with the test kit, generates its
//! data (seeded, deterministic) and times sluice and the reference on the
//! same input, back to back, on the same machine, and reports the ratio.
//! Absolute numbers on a shared 2-core machine are noise; the ratio is the
//! result. sluice runs as a real process (the release `sluice` binary next
//! to this one, or `--sluice`). Output: progress on stderr, a Markdown
//! table on stdout, the same as JSON with `--json FILE`.
//!
//! Scenarios (one module each): `decode`, `bulk`, `oltp`, `latency`,
//! `memory`, `distributed` (three nodes vs one; no target, reported),
//! `scale` (curves over tables, columns, row size and load workers, written
//! as JSON and SVG charts to `--scale-out`), `verify` (`sluice verify` of an
//! idle table vs pt-table-checksum and CHECKSUM TABLE), `snapshot` (an
//! initial snapshot of 4 tables into an empty target vs `mariadb-dump |
//! mariadb` and mydumper + myloader).
//! `--quick` runs each at a small scale (a smoke run for CI).

mod bulk;
mod chart;
mod data;
mod decode;
mod distributed;
mod latency;
mod memory;
mod oltp;
mod report;
mod scale;
mod servers;
mod sluice;
mod snapshot;
mod sysbench;
mod verify;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use crate::sysbench::Workload;

const SCENARIOS: [&str; 9] = [
    "decode",
    "bulk",
    "oltp",
    "latency",
    "memory",
    "distributed",
    "scale",
    "verify",
    "snapshot",
];

#[derive(Debug, Parser)]
#[command(about = "Benchmarks sluice against reference tools on local servers")]
struct Args {
    /// Scenarios to run (default: all).
    #[arg(value_parser = SCENARIOS)]
    scenarios: Vec<String>,
    /// A small, fast smoke run (CI).
    #[arg(long)]
    quick: bool,
    /// Rows for `decode`, `bulk` and `memory`; `snapshot` copies 4 tables
    /// of half as many each (default 1,000,000; 100,000 with --quick).
    #[arg(long)]
    rows: Option<u64>,
    /// Backlog transactions for `oltp` (default 100,000; 5,000 with --quick).
    #[arg(long)]
    transactions: Option<u64>,
    /// Seconds of steady load for `latency` (default 60; 10 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Timed repetitions per tool for `decode` and `bulk`; the best counts
    /// (default 3; 1 with --quick).
    #[arg(long)]
    runs: Option<u32>,
    /// The `sluice` binary (default: next to this executable).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep sluice's logs (`<pipeline>.log`) in this directory; with
    /// `SLUICE_LOG=debug` for per-batch timings.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Where `scale` writes `scale.json` and its SVG charts.
    #[arg(long, default_value = "crates/bench/results")]
    scale_out: PathBuf,
    /// Keep a copy of the generated decode binlog here (for profiling).
    #[arg(long)]
    save_binlog: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let q = args.quick;
    let want = |s: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|x| x == s);
    let rows = args.rows.unwrap_or(if q { 100_000 } else { 1_000_000 });
    let runs = args.runs.unwrap_or(if q { 1 } else { 3 }).max(1);
    let needs_sluice = SCENARIOS[1..].iter().any(|s| want(s));
    let sluice_bin = if needs_sluice {
        Some(sluice::locate(args.sluice.as_deref())?)
    } else {
        None
    };
    let sluice_bin = sluice_bin.as_deref();
    if let Some(dir) = &args.logs {
        sluice::keep_logs_in(dir.clone())?;
    }
    let began = Instant::now();
    let mut outcomes = Vec::new();

    if want("decode") {
        outcomes.push(decode::run(rows, runs, args.save_binlog.as_deref()).await?);
    }
    if let (true, Some(bin)) = (want("bulk"), sluice_bin) {
        outcomes.extend(bulk::run(bin, rows, runs).await?);
    }
    if let (true, Some(bin)) = (want("oltp"), sluice_bin) {
        let size = oltp::Size {
            workload: Workload {
                tables: if q { 4 } else { 8 },
                table_size: if q { 10_000 } else { 100_000 },
                seed: 1,
            },
            transactions: args.transactions.unwrap_or(if q { 5_000 } else { 100_000 }),
        };
        outcomes.push(oltp::run(bin, &size).await?);
    }
    if let (true, Some(bin)) = (want("latency"), sluice_bin) {
        let size = latency::Size {
            workload: Workload {
                tables: 4,
                table_size: if q { 10_000 } else { 100_000 },
                seed: 2,
            },
            rate: 2_000,
            seconds: args.seconds.unwrap_or(if q { 10 } else { 60 }),
        };
        outcomes.extend(latency::run(bin, &size).await?);
    }
    if let (true, Some(bin)) = (want("memory"), sluice_bin) {
        outcomes.push(memory::run(bin, rows).await?);
    }
    if let (true, Some(bin)) = (want("distributed"), sluice_bin) {
        // A fifth of the bulk size: three nodes share the two cores.
        outcomes.push(distributed::run(bin, (rows / 5).max(10_000)).await?);
    }
    if let (true, Some(bin)) = (want("scale"), sluice_bin) {
        let (_, wide) = scale::run(bin, q, &args.scale_out).await?;
        outcomes.extend(wide);
    }

    if let (true, Some(bin)) = (want("verify"), sluice_bin) {
        outcomes.extend(verify::run(bin, rows, runs).await?);
    }
    if let (true, Some(bin)) = (want("snapshot"), sluice_bin) {
        outcomes.extend(snapshot::run(bin, rows).await?);
    }

    eprintln!(
        "sluice-bench: done in {:.0}s",
        began.elapsed().as_secs_f64()
    );
    print!("{}", report::markdown(&outcomes));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "quick": q,
            "seconds": began.elapsed().as_secs_f64(),
            "results": outcomes.iter().map(report::Outcome::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
