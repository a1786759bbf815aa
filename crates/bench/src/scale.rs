//! Scale curves: how sluice's throughput and latency change as the work
//! grows along one dimension at a time — tables, columns per row, row size,
//! load workers — from a base point (10 tables, 5 columns, 100-byte rows,
//! 4 workers).
//!
//! Each point gets its own schema on one source/target pair and its own
//! sluice process:
//! 1. **throughput**: a backlog (at most [`BACKLOG_ROWS`] rows and
//!    [`BACKLOG_BYTES`] of payload, spread evenly over the point's tables,
//!    ~1,000 rows per source transaction) is written while sluice is not
//!    running; sluice then starts at the position before it and is timed
//!    from spawning the process until its checkpoint reaches the source's
//!    end (so start-up, ~0.1–0.2 s, is in every point alike);
//! 2. **latency**: with sluice caught up, one probe transaction every
//!    [`PROBE_EVERY`] for [`PROBE_FOR`] — one row of the point's shape into
//!    the next table (round robin) plus a numbered row into the point's
//!    probe table — and the time from sending it on the source to seeing
//!    the probe row on the target (polled every 2 ms), p50/p99.
//!
//! The tables are created on both sides before the backlog (sluice starts
//! after the DDL), so the 10,000-table point measures replication, not
//! 10,000 `CREATE TABLE`s. Peak RSS (`VmHWM`) is read per point; the
//! 10,000-table point against the 10-table point is the memory scenario's
//! wide-source target (≤ 256 MiB, ≥ 0.8× the rows/s). Results go to
//! `--scale-out DIR` as `scale.json` and one SVG chart per dimension
//! ([`crate::chart`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{MariaDb, Role};

use crate::latency::{probe_poller, Percentiles};
use crate::report::{Outcome, Point, Shape};
use crate::servers::{self, master_status};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};

/// Most rows in one point's backlog.
const BACKLOG_ROWS: u64 = 40_000;
/// Most payload bytes in one point's backlog.
const BACKLOG_BYTES: u64 = 48 << 20;
/// Rows per source transaction in the backlog (about).
const ROWS_PER_TXN: u64 = 1_000;
const PROBE_EVERY: Duration = Duration::from_millis(20);
const PROBE_FOR: Duration = Duration::from_secs(3);
/// Ids of probe-phase rows start here (backlog ids are below).
const PROBE_ID_BASE: u64 = 1 << 40;
/// The wide-source budget, MiB.
const WIDE_BUDGET_MIB: f64 = 256.0;

const BASE: Shape = Shape {
    tables: 10,
    columns: 5,
    row_bytes: 100,
    workers: 4,
};

/// The curves: (dimension, its values); every other dimension at [`BASE`].
pub fn curves(quick: bool) -> Vec<(&'static str, Vec<u64>)> {
    if quick {
        return vec![
            ("tables", vec![1, 10, 100]),
            ("columns", vec![5, 50]),
            ("row_bytes", vec![100, 10_000]),
            ("workers", vec![1, 4]),
        ];
    }
    vec![
        ("tables", vec![1, 10, 100, 1_000, 10_000]),
        ("columns", vec![5, 50, 200]),
        ("row_bytes", vec![100, 10_000, 1_000_000]),
        ("workers", vec![1, 2, 4, 8]),
    ]
}

fn shape_of(dimension: &str, x: u64) -> Shape {
    let mut s = BASE;
    match dimension {
        "tables" => s.tables = x,
        "columns" => s.columns = x,
        "row_bytes" => s.row_bytes = x,
        _ => s.workers = usize::try_from(x).unwrap_or(1),
    }
    s
}

pub async fn run(
    sluice_bin: &Path,
    quick: bool,
    out: &Path,
) -> anyhow::Result<(Vec<Point>, Vec<Outcome>)> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-scale-")
        .tempdir()?;
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    let mut points = Vec::new();
    let mut n = 0u32;
    for (dimension, xs) in curves(quick) {
        for x in xs {
            n += 1;
            let shape = shape_of(dimension, x);
            let p = point(
                sluice_bin,
                dir.path(),
                &source,
                &target,
                n,
                dimension,
                x,
                shape,
            )
            .await?;
            eprintln!(
                "scale: {dimension}={x}: {} rows at {:.0} rows/s, p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.0} MiB",
                p.rows, p.rows_per_s, p.p50_ms, p.p99_ms, p.peak_rss_mib
            );
            points.push(p);
        }
    }
    std::fs::create_dir_all(out)?;
    let json: Vec<_> = points
        .iter()
        .map(|p| {
            serde_json::json!({
                "dimension": p.dimension, "x": p.x, "tables": p.shape.tables,
                "columns": p.shape.columns, "row_bytes": p.shape.row_bytes,
                "workers": p.shape.workers, "rows": p.rows, "rows_per_s": p.rows_per_s,
                "p50_ms": p.p50_ms, "p99_ms": p.p99_ms, "peak_rss_mib": p.peak_rss_mib,
            })
        })
        .collect();
    std::fs::write(
        out.join("scale.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "quick": quick, "points": json }))?,
    )?;
    for (dimension, _) in curves(quick) {
        let mine: Vec<&Point> = points.iter().filter(|p| p.dimension == dimension).collect();
        std::fs::write(
            out.join(format!("scale-{dimension}.svg")),
            crate::chart::svg(dimension, &mine)?,
        )?;
    }
    eprintln!("scale: wrote {}", out.display());
    Ok((points.clone(), wide_outcomes(&points)))
}

/// The memory scenario's wide-source target from the tables curve: the
/// most tables measured against 10 tables.
fn wide_outcomes(points: &[Point]) -> Vec<Outcome> {
    let tables = || points.iter().filter(|p| p.dimension == "tables");
    let (Some(ten), Some(wide)) = (
        tables().find(|p| p.x == 10),
        tables().max_by_key(|p| p.x).filter(|p| p.x > 10),
    ) else {
        return Vec::new();
    };
    vec![
        Outcome {
            scenario: format!("memory, {} tables", wide.x),
            metric: "peak RSS MiB".into(),
            sluice: wide.peak_rss_mib,
            reference: WIDE_BUDGET_MIB,
            reference_tool: "the issue's budget (≤ 256 MiB)".into(),
            ratio: WIDE_BUDGET_MIB / wide.peak_rss_mib.max(0.001),
            target: 1.0,
            note: String::new(),
        },
        Outcome {
            scenario: format!("{} tables vs 10", wide.x),
            metric: "rows/s".into(),
            sluice: wide.rows_per_s,
            reference: ten.rows_per_s,
            reference_tool: "sluice, the same load on 10 tables (same run)".into(),
            ratio: wide.rows_per_s / ten.rows_per_s.max(0.001),
            target: 0.8,
            note: format!(
                "scale curve points: {} rows over {} tables ({:.0} rows/s, p99 {:.1} ms, {:.0} MiB) vs {} rows over 10 tables ({:.0} rows/s, p99 {:.1} ms, {:.0} MiB)",
                wide.rows, wide.x, wide.rows_per_s, wide.p99_ms, wide.peak_rss_mib,
                ten.rows, ten.rows_per_s, ten.p99_ms, ten.peak_rss_mib
            ),
        },
    ]
}

/// The select list that generates a row of `shape` from the sequence
/// engine's `seq` (key `seq + offset`).
fn select_list(shape: Shape, offset: u64) -> String {
    let mut cols = vec![
        format!("seq + {offset}"),
        format!("REPEAT(CHAR(65 + seq % 26), {})", shape.row_bytes),
    ];
    for c in 2..shape.columns {
        cols.push(if c % 3 == 0 {
            format!("CONCAT('v', seq * {c})")
        } else {
            format!("seq * {c}")
        });
    }
    cols.join(", ")
}

fn table_ddl(schema: &str, t: u64, shape: Shape) -> String {
    let mut cols = vec![
        "id BIGINT UNSIGNED PRIMARY KEY".to_string(),
        "payload LONGBLOB NOT NULL".to_string(),
    ];
    for c in 2..shape.columns {
        cols.push(if c % 3 == 0 {
            format!("c{c} VARCHAR(32) CHARACTER SET ascii NOT NULL")
        } else {
            format!("c{c} BIGINT NOT NULL")
        });
    }
    format!("CREATE TABLE {schema}.t{t} ({})", cols.join(", "))
}

/// Runs `statements` on `server`, many per round trip.
async fn exec_all(server: &MariaDb, statements: &[String]) -> anyhow::Result<()> {
    let mut conn = server.conn().await?;
    for chunk in statements.chunks(200) {
        conn.query_drop(chunk.join(";\n")).await?;
    }
    conn.disconnect().await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn point(
    bin: &Path,
    dir: &Path,
    source: &MariaDb,
    target: &MariaDb,
    n: u32,
    dimension: &'static str,
    x: u64,
    shape: Shape,
) -> anyhow::Result<Point> {
    let schema = format!("scale{n}");
    let mut ddl = vec![
        format!("CREATE DATABASE {schema}"),
        format!("CREATE TABLE {schema}.probe (id BIGINT UNSIGNED PRIMARY KEY)"),
    ];
    ddl.extend((0..shape.tables).map(|t| table_ddl(&schema, t, shape)));
    exec_all(source, &ddl).await?;
    exec_all(target, &ddl).await?;

    let rows = BACKLOG_ROWS
        .min(BACKLOG_BYTES / shape.row_bytes.max(1))
        .max(shape.tables);
    let per_table = rows / shape.tables;
    let rows = per_table * shape.tables;
    let mut conn = source.conn().await?;
    let before = master_status(&mut conn).await?;
    // Whole tables per transaction, about ROWS_PER_TXN rows each.
    let tables_per_txn = (ROWS_PER_TXN / per_table).max(1);
    let mut t = 0;
    while t < shape.tables {
        let last = shape.tables.min(t + tables_per_txn);
        let mut sql = String::from("START TRANSACTION;\n");
        for tt in t..last {
            sql.push_str(&format!(
                "INSERT INTO {schema}.t{tt} SELECT {} FROM {schema}.seq_1_to_{per_table};\n",
                select_list(shape, 0)
            ));
        }
        sql.push_str("COMMIT");
        conn.query_drop(sql).await?;
        t = last;
    }
    let after = master_status(&mut conn).await?;

    let mut spec = PipelineSpec::new(
        &format!("scale{n}"),
        &format!(r"{schema}\..*"),
        Start::At(before),
    );
    spec.workers = shape.workers;
    let mut sluice = Sluice::spawn(bin, dir, &spec, source, target)?;
    let done = sluice
        .wait_caught_up(
            target,
            &after,
            Duration::from_secs(600),
            Duration::from_millis(5),
        )
        .await?;
    let took = done - sluice.started();

    let stop = Arc::new(AtomicBool::new(false));
    let (expect_tx, expect_rx) = tokio::sync::watch::channel(None);
    let base = Instant::now();
    let poller = tokio::spawn(probe_poller(
        target.conn().await?,
        format!("{schema}.probe"),
        expect_rx,
        base,
    ));
    let writer = {
        let stop = stop.clone();
        let schema = schema.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let id = sent.len() as u64 + 1;
                let t = id % shape.tables;
                sent.push(Instant::now());
                conn.query_drop(format!(
                    "START TRANSACTION; INSERT INTO {schema}.t{t} SELECT {} FROM {schema}.seq_{id}_to_{id}; INSERT INTO {schema}.probe VALUES ({id}); COMMIT",
                    select_list(shape, PROBE_ID_BASE)
                ))
                .await?;
            }
            conn.disconnect().await?;
            anyhow::Ok(sent)
        })
    };
    tokio::time::sleep(PROBE_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await??;
    expect_tx.send_replace(Some(sent.len()));
    let seen = poller.await??;
    let lat = Percentiles::of(&sent, &seen, "the target")?;
    let rss = sluice.peak_rss()? as f64 / MIB;
    sluice.stop().await?;
    Ok(Point {
        dimension,
        x,
        shape,
        rows,
        rows_per_s: rows as f64 / took.as_secs_f64(),
        p50_ms: lat.p50,
        p99_ms: lat.p99,
        peak_rss_mib: rss,
    })
}
