//! `sluice-bench`: sluice measured against the reference tools, in one run.
//!
//! Every scenario starts its own servers with the test kit, generates its
//! data (seeded, deterministic) and times sluice and the reference on the
//! same input, back to back, on the same machine, and reports the ratio.
//! Absolute numbers on a shared 2-core machine are noise; the ratio is the
//! result. Output: a Markdown table on stdout and the same as JSON
//! (`--json FILE`).
//!
//! Scenarios so far: `decode` (binlog row decoding vs
//! `mariadb-binlog --base64-output=decode-rows -v`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mysql_async::prelude::Queryable;
use sluice_testkit::{find_binary, MariaDb};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks sluice against reference tools on local servers")]
struct Args {
    /// Scenarios to run (default: all).
    #[arg(value_parser = ["decode"])]
    scenarios: Vec<String>,
    /// Rows to generate for the decode scenario.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// A small, fast smoke run (CI).
    #[arg(long)]
    quick: bool,
    /// Timed repetitions per tool; the best run counts.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Keep a copy of the generated decode binlog here (for profiling).
    #[arg(long)]
    save_binlog: Option<std::path::PathBuf>,
}

#[derive(Debug)]
struct Outcome {
    scenario: String,
    metric: String,
    sluice: f64,
    reference: f64,
    reference_tool: String,
    ratio: f64,
    note: String,
}

impl Outcome {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "sluice": self.sluice,
            "reference": self.reference,
            "reference_tool": self.reference_tool,
            "ratio": self.ratio,
            "note": self.note,
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all = args.scenarios.is_empty();
    let mut outcomes = Vec::new();
    if all || args.scenarios.iter().any(|s| s == "decode") {
        let rows = if args.quick {
            args.rows.min(100_000)
        } else {
            args.rows
        };
        outcomes.push(
            decode_scenario(
                rows,
                if args.quick { 1 } else { args.runs },
                args.save_binlog.as_deref(),
            )
            .await?,
        );
    }
    println!("| scenario | metric | sluice | reference | ratio | reference tool |");
    println!("|---|---|---:|---:|---:|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} |",
            o.scenario, o.metric, o.sluice, o.reference, o.ratio, o.reference_tool
        );
    }
    for o in &outcomes {
        if !o.note.is_empty() {
            println!("\n{}: {}", o.scenario, o.note);
        }
    }
    if let Some(path) = &args.json {
        let doc: Vec<serde_json::Value> = outcomes.iter().map(|o| o.to_json()).collect();
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}

/// Decode: rows/s turning a binlog file into typed rows and printing them as
/// JSON Lines, vs `mariadb-binlog --base64-output=decode-rows -v` printing
/// its pseudo-SQL, both to a sink.
async fn decode_scenario(
    rows: u64,
    runs: u32,
    save: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let mariadb_binlog = find_binary("mariadb-binlog", "mariadb-client")?;
    eprintln!("decode: generating {rows} rows ...");
    let source = MariaDb::builder(sluice_testkit::Role::Source)
        .arg("--innodb-buffer-pool-size=512M")
        .arg("--innodb-log-file-size=256M")
        .start()
        .await?;
    let mut conn = source.conn().await?;
    conn.query_drop(
        "CREATE DATABASE bench;
         CREATE TABLE bench.orders (
           id BIGINT UNSIGNED PRIMARY KEY, customer INT NOT NULL, sku VARCHAR(32) NOT NULL,
           qty SMALLINT NOT NULL, price DECIMAL(10,2) NOT NULL, weight DOUBLE,
           note VARCHAR(64) CHARACTER SET utf8mb4, created DATETIME(3) NOT NULL,
           status ENUM('new','paid','shipped','done') NOT NULL)",
    )
    .await?;
    conn.query_drop("FLUSH BINARY LOGS").await?;
    let file: String = conn
        .query_first::<mysql_async::Row, _>("SHOW MASTER STATUS")
        .await?
        .and_then(|r| r.get(0))
        .context("no master status")?;
    // Deterministic data from the row number (the "seed" is the formula).
    let chunk = 50_000u64;
    let mut done = 0u64;
    while done < rows {
        let n = chunk.min(rows - done);
        conn.query_drop(format!(
            "INSERT INTO bench.orders SELECT seq, seq % 100003, CONCAT('SKU-', seq % 9973),
               seq % 50, (seq % 100000) / 100, (seq % 977) * 0.125,
               IF(seq % 7 = 0, NULL, CONCAT('note ', seq, ' ✓')),
               '2024-01-01 00:00:00.000' + INTERVAL seq SECOND,
               1 + seq % 4
             FROM bench.seq_{}_to_{}",
            done + 1,
            done + n
        ))
        .await?;
        done += n;
    }
    conn.query_drop("FLUSH BINARY LOGS").await?;
    let path = source.binlog_path(&file);
    let size = std::fs::metadata(&path)?.len();
    eprintln!("decode: {} ({} MB)", path.display(), size / 1_000_000);
    if let Some(save) = save {
        std::fs::copy(&path, save)?;
    }

    // sluice: decode every row and render it, as `sluice binlog decode` does.
    let mut best_sluice = Duration::MAX;
    let mut decoded = 0u64;
    for _ in 0..runs {
        let p = path.clone();
        let (elapsed, n) = tokio::task::spawn_blocking(move || sluice_decode(&p)).await??;
        decoded = n;
        best_sluice = best_sluice.min(elapsed);
    }
    anyhow::ensure!(
        decoded == rows,
        "sluice decoded {decoded} rows, expected {rows}"
    );

    let mut best_ref = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new(&mariadb_binlog)
            .args(["--no-defaults", "--base64-output=decode-rows", "-v"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "mariadb-binlog failed: {status}");
        best_ref = best_ref.min(start.elapsed());
    }
    let s = rows as f64 / best_sluice.as_secs_f64();
    let r = rows as f64 / best_ref.as_secs_f64();
    Ok(Outcome {
        scenario: "decode".into(),
        metric: "rows/s".into(),
        sluice: s,
        reference: r,
        reference_tool: "mariadb-binlog --base64-output=decode-rows -v".into(),
        ratio: s / r,
        note: format!(
            "{rows} rows, {} MB binlog; best of {runs}: sluice {:.2}s, mariadb-binlog {:.2}s (both print every row to a sink)",
            size / 1_000_000,
            best_sluice.as_secs_f64(),
            best_ref.as_secs_f64()
        ),
    })
}

fn sluice_decode(path: &std::path::Path) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let mut sink = std::io::sink();
    let mut printer = sluice_binlog::output::LinePrinter::default();
    for event in sluice_binlog::file::BinlogFile::open(path, None)? {
        printer.print(&event?, &mut sink)?;
    }
    Ok((start.elapsed(), printer.rows()))
}
