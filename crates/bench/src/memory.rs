//! Memory: sluice's peak RSS while replicating one transaction that
//! updates every row of a large table.
//!
//! Source and target get the same rows (the same generator statement on
//! both); the `UPDATE` runs while sluice is not running, and sluice then
//! starts at the position before it. Peak RSS is the kernel's high-water
//! mark of the process (`VmHWM`), read once the target's checkpoint is past
//! the transaction, so it covers everything from start-up to the end.

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_testkit::Role;

use crate::data::{insert_orders, ORDERS, ORDERS_DDL};
use crate::report::Outcome;
use crate::servers::{self, ensure_same, master_status};
use crate::sluice::{PipelineSpec, Sluice, Start, MIB};

/// The budget the issue sets, MiB.
const BUDGET_MIB: f64 = 128.0;

pub async fn run(sluice_bin: &Path, rows: u64) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-memory-")
        .tempdir()?;
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    eprintln!("memory: {rows} rows on source and target ...");
    for server in [&source, &target] {
        server.exec(ORDERS_DDL).await?;
        let mut conn = server.conn().await?;
        insert_orders(&mut conn, 1, rows, 50_000).await?;
        conn.disconnect().await?;
    }
    let mut conn = source.conn().await?;
    let before = master_status(&mut conn).await?;
    eprintln!("memory: one UPDATE of all {rows} rows ...");
    conn.query_drop(format!(
        "UPDATE {ORDERS} SET qty = qty + 1, note = CONCAT('updated ', id), status = 'done'"
    ))
    .await?;
    let after = master_status(&mut conn).await?;
    conn.disconnect().await?;
    let binlog_mb = (after.pos.saturating_sub(before.pos)) / 1_000_000;

    eprintln!("memory: sluice replicating it ({binlog_mb} MB of binlog) ...");
    let spec = PipelineSpec::new("memory", r"bench\..*", Start::At(before));
    let mut sluice = Sluice::spawn(sluice_bin, dir.path(), &spec, &source, &target)?;
    let done = sluice
        .wait_caught_up(
            &target,
            &after,
            Duration::from_secs(900),
            Duration::from_millis(20),
        )
        .await?;
    let took = done - sluice.started();
    let rss = sluice.peak_rss()? as f64 / MIB;
    let cpu = sluice.cpu_time()?;
    sluice.stop().await?;
    ensure_same("memory", &source, &target, &[ORDERS.into()]).await?;
    eprintln!("memory: peak RSS {rss:.0} MiB, {:.2}s", took.as_secs_f64());
    Ok(Outcome {
        scenario: "memory".into(),
        metric: "peak RSS MiB".into(),
        sluice: rss,
        reference: BUDGET_MIB,
        reference_tool: "the issue's budget (≤ 128 MiB)".into(),
        ratio: BUDGET_MIB / rss,
        target: 1.0,
        note: format!(
            "one UPDATE of {rows} rows ({binlog_mb} MB of binlog, one transaction); VmHWM of the sluice process; replicated in {:.2}s ({:.0} rows/s, {:.2}s CPU)",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            cpu.as_secs_f64()
        ),
    })
}
