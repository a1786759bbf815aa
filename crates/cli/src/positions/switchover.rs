//! `sluice switchover --config a2b.yaml [--timeout S] [--json]`: the drill
//! before moving the writing site of an active-active pair from A to B.
//!
//! It reads the source's (A's) end of binlog *now* — everything A wrote up
//! to this moment — and waits until the pipeline's acknowledged position
//! (B has committed everything before it; positions are acknowledged only
//! after the target committed) reaches it, polling the store every 100 ms.
//! It says on stderr at once what it waits for, and then reports the position it waited for, how long it waited, and the
//! lag the pipeline showed when it started (as `sluice status` defines it):
//! exit 0 only when caught up, 1 on timeout (with how far the pipeline got)
//! or when the source or the store cannot be read.
//!
//! Caught up means at or past that end in the binlog, or at or past its
//! GTID position (after a binlog rotation without a transaction since, the
//! acknowledged file offset stays in the previous file).
//!
//! Writes on A after the start are not waited for: stop them first (that is
//! the switchover), then run this; once it returns 0, B holds every change
//! A made and can take the writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sluice_core::{GtidSet, Position};
use sluice_pipeline::batch::cmp_positions;

use super::{load_config, Report};

/// `sluice switchover`.
#[derive(Debug, clap::Args)]
pub struct SwitchoverArgs {
    /// The pipeline file of the direction to drain (e.g. `a2b.yaml` before
    /// moving the writes from A to B).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Seconds to wait for the target to catch up before giving up (exit 1).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Whether the acknowledged position `at` holds everything up to `end`: at
/// or past it in the binlog, or — a binlog rotated since the last
/// transaction leaves the file offset behind — at or past its GTID position.
fn holds(at: &Position, end: &Position) -> bool {
    if cmp_positions(at, end).is_some_and(|o| o != std::cmp::Ordering::Less) {
        return true;
    }
    match (&at.gtid, &end.gtid) {
        (Some(GtidSet::Mariadb(a)), Some(GtidSet::Mariadb(e))) => a.is_at_or_after(e),
        (Some(GtidSet::Mysql(a)), Some(GtidSet::Mysql(e))) => e.is_subset(a),
        _ => false,
    }
}

/// Waits until the target holds everything the source wrote up to now.
pub async fn switchover(args: SwitchoverArgs) -> anyhow::Result<ExitCode> {
    let Some(pipeline) = load_config(&args.config, &["source"]) else {
        return Ok(ExitCode::FAILURE);
    };
    let started = Instant::now();
    let end = sluice_binlog::end::binlog_end(
        pipeline.source.url().expose(),
        &pipeline.source.tls,
        Duration::from_secs(10),
    )
    .await
    .with_context(|| format!("reading the end of binlog of {}", pipeline.source.url()))?;
    let first = Report::collect(&pipeline).await?;
    let lag_at_start = first.lag_now();
    // Said at once, on stderr: what it waits for (stdout is the result).
    eprintln!(
        "waiting for {} to reach its source's end of binlog {end} (lag now: {})",
        pipeline.name,
        lag_at_start.map_or_else(|| "unknown".into(), |l| format!("{l} s")),
    );
    let deadline = Duration::from_secs(args.timeout);
    let mut report = first;
    let caught_up = loop {
        let reached = report.acknowledged().is_some_and(|p| holds(p, &end));
        if reached {
            break true;
        }
        if started.elapsed() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = Report::collect(&pipeline).await?;
    };
    let waited = started.elapsed();
    let acknowledged = report.acknowledged().map(ToString::to_string);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pipeline": pipeline.name,
                "caught_up": caught_up,
                "source_end": end.to_string(),
                "acknowledged": acknowledged,
                "waited_ms": waited.as_millis() as u64,
                "lag_at_start_seconds": lag_at_start,
            }))?
        );
    } else if caught_up {
        println!(
            "caught up: {} holds everything its source wrote up to {end}; waited {:.1} s (lag at start: {})",
            pipeline.name,
            waited.as_secs_f64(),
            lag_at_start.map_or_else(|| "unknown".into(), |l| format!("{l} s")),
        );
    } else {
        eprintln!(
            "not caught up after {} s: {} acknowledged {} of the source's {end}",
            args.timeout,
            pipeline.name,
            acknowledged.as_deref().unwrap_or("nothing"),
        );
    }
    Ok(if caught_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
