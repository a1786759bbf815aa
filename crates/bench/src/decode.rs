//! Decode: rows/s turning a binlog file into typed rows and printing them
//! as JSON Lines (what `sluice binlog decode` does), vs
//! `mariadb-binlog --base64-output=decode-rows -v` printing its pseudo-SQL,
//! both to a sink, on the same file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{find_binary, Role};

use crate::data::{insert_orders, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, master_status};

pub async fn run(rows: u64, runs: u32, save: Option<&Path>) -> anyhow::Result<Outcome> {
    let mariadb_binlog = find_binary("mariadb-binlog", "mariadb-client")?;
    eprintln!("decode: generating {rows} rows ...");
    let source = servers::start(Role::Source, &[]).await?;
    let mut conn = source.conn().await?;
    conn.query_drop(ORDERS_DDL).await?;
    conn.query_drop("FLUSH BINARY LOGS").await?;
    let file = master_status(&mut conn).await?.file;
    insert_orders(&mut conn, 1, rows, 50_000).await?;
    conn.query_drop("FLUSH BINARY LOGS").await?;
    conn.disconnect().await?;
    let path = source.binlog_path(&file);
    let size = std::fs::metadata(&path)?.len();
    eprintln!("decode: {} ({} MB)", path.display(), size / 1_000_000);
    if let Some(save) = save {
        std::fs::copy(&path, save)?;
    }

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
    eprintln!("decode: sluice {s:.0} rows/s, mariadb-binlog {r:.0} rows/s");
    Ok(Outcome {
        scenario: "decode".into(),
        metric: "rows/s".into(),
        sluice: s,
        reference: r,
        reference_tool: "mariadb-binlog --base64-output=decode-rows -v".into(),
        ratio: s / r,
        target: 1.5,
        note: format!(
            "{rows} rows, {} MB binlog; best of {runs}: sluice {:.2}s, mariadb-binlog {:.2}s (both print every row to a sink)",
            size / 1_000_000,
            best_sluice.as_secs_f64(),
            best_ref.as_secs_f64()
        ),
    })
}

fn sluice_decode(path: &Path) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let mut sink = std::io::sink();
    let mut printer = sluice_binlog::output::LinePrinter::default();
    for event in sluice_binlog::file::BinlogFile::open(path, None)? {
        printer.print(&event?, &mut sink)?;
    }
    Ok((start.elapsed(), printer.rows()))
}
