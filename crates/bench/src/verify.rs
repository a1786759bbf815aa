//! `verify`: `sluice verify` of an idle table (default 1M rows, replicated
//! by sluice first, the pipeline still running) against the reference tools
//! on the same table in the same run: `pt-table-checksum` (source side
//! only, `--recursion-method=none`: it would otherwise also need
//! statement-based replication of its checksum queries) and
//! `CHECKSUM TABLE` on both servers one after the other.
//!
//! The three run back to back `--runs` times (default 3) on the same
//! servers, after both servers' InnoDB settled (purge and page flushing
//! from loading the table done), and are compared by their medians.
//!
//! Targets (issue 16): faster than pt-table-checksum (ratio = its time /
//! verify's ≥ 1), and at most twice the two CHECKSUM TABLEs (ratio = their
//! time / verify's ≥ 0.5). Verify's time includes its process start,
//! chunk planning and waiting for the pipeline's checkpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use sluice_testkit::{find_binary, MariaDb, Role};

use crate::bulk::median;
use crate::report::Outcome;
use crate::servers::{self, master_status, BinlogPos};
use crate::sluice::{PipelineSpec, Sluice, Start};

const DDL: &str = "CREATE DATABASE vb;
    CREATE TABLE vb.t (id BIGINT PRIMARY KEY, a INT NOT NULL, b VARCHAR(64), c DECIMAL(12,2), d DATETIME(3))";

/// Rows per verify chunk in this scenario.
const CHUNK_ROWS: &str = "10000";

async fn checksum_table(server: &MariaDb) -> anyhow::Result<Duration> {
    let mut conn = server.conn().await?;
    let began = Instant::now();
    let _: Vec<(String, Option<u64>)> = conn.query("CHECKSUM TABLE vb.t").await?;
    let took = began.elapsed();
    let _ = conn.disconnect().await;
    Ok(took)
}

/// Fails with `tool`'s exit status and output unless it succeeded.
fn succeeded(tool: &str, out: &std::process::Output) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.status.success(),
        "{tool}: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits until the node's stored position (`position.json` in `state`)
/// reaches `end`.
async fn wait_stored(state: &Path, end: &BinlogPos) -> anyhow::Result<()> {
    let began = Instant::now();
    loop {
        let at = sluice_coord::local::peek(state)?.map(|s| BinlogPos {
            file: s.position.file,
            pos: s.position.offset,
        });
        if at.as_ref().is_some_and(|at| at >= end) {
            return Ok(());
        }
        anyhow::ensure!(
            began.elapsed() < Duration::from_secs(60),
            "the pipeline's stored position did not reach {end} within 60 s (at {at:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(bin: &Path, rows: u64, runs: u32) -> anyhow::Result<Vec<Outcome>> {
    eprintln!("verify: {rows} idle rows");
    let source = servers::start(Role::Source, &[]).await?;
    let target = servers::start(Role::Target, &[]).await?;
    let mut conn = source.conn().await?;
    let start = master_status(&mut conn).await?;
    conn.query_drop(DDL).await?;
    // pt-table-checksum writes its results with statement-based
    // replication; the pipeline skips those statements only once it can see
    // that no trigger on them writes a replicated table.
    conn.query_drop(format!(
        "GRANT TRIGGER ON percona.* TO '{}'@'127.0.0.1'",
        sluice_testkit::REPL_USER
    ))
    .await?;
    let mut done = 0;
    while done < rows {
        let n = (rows - done).min(100_000);
        conn.query_drop(format!(
            "INSERT INTO vb.t SELECT seq + {done}, seq % 1000, CONCAT('row ', seq + {done}), seq / 100,
                 '2024-01-01' + INTERVAL (seq + {done}) SECOND FROM vb.seq_1_to_{n}"
        ))
        .await?;
        done += n;
    }
    let end = master_status(&mut conn).await?;
    let _ = conn.disconnect().await;
    let dir = tempfile::tempdir()?;
    let spec = PipelineSpec::new("bench_verify", "vb\\..*", Start::At(start));
    let mut sluice = Sluice::spawn(bin, dir.path(), &spec, &source, &target)?;
    sluice
        .wait_caught_up(
            &target,
            &end,
            Duration::from_secs(1800),
            Duration::from_millis(200),
        )
        .await?;

    for server in [&source, &target] {
        servers::settle(server, Duration::from_secs(120)).await?;
    }
    let config = dir.path().join("bench_verify.yaml");
    let pt = find_binary("pt-table-checksum", "percona-toolkit")?;
    // The machine's speed drifts by tens of percent over minutes: the
    // three are run back to back, `runs` times, and compared by medians.
    let (mut verify_t, mut pt_t, mut checksum_t) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let began = Instant::now();
        let out = tokio::process::Command::new(&pt)
            .arg(format!("h=127.0.0.1,P={},u=root", source.port()))
            .args([
                "--databases=vb",
                "--tables=t",
                "--recursion-method=none",
                "--no-check-binlog-format",
                "--no-check-replication-filters",
                "--no-version-check",
            ])
            .output()
            .await?;
        pt_t.push(began.elapsed());
        succeeded("pt-table-checksum", &out)?;
        // Its statements move the pipeline's stored position, not the
        // target's checkpoint (they write nothing there): verify would wait
        // for the node's next flush (every second), so wait here first.
        let mut conn = source.conn().await?;
        let end = master_status(&mut conn).await?;
        let _ = conn.disconnect().await;
        wait_stored(&dir.path().join("state").join("bench_verify"), &end).await?;
        let began = Instant::now();
        let out = tokio::process::Command::new(bin)
            .args([
                "verify",
                "--table",
                "vb.t",
                "--chunk-rows",
                CHUNK_ROWS,
                "--config",
            ])
            .arg(&config)
            .output()
            .await?;
        verify_t.push(began.elapsed());
        // Where verify's time went (its own log line per table).
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if line.contains("chunks compared") || line.contains("chunks cut") {
                eprintln!("  {line}");
            }
        }
        succeeded("sluice verify", &out)?;

        checksum_t.push(checksum_table(&source).await? + checksum_table(&target).await?);

        eprintln!(
            "  run {run}: sluice verify {:.2}s, pt-table-checksum {:.2}s, CHECKSUM TABLE ×2 {:.2}s",
            verify_t[verify_t.len() - 1].as_secs_f64(),
            pt_t[pt_t.len() - 1].as_secs_f64(),
            checksum_t[checksum_t.len() - 1].as_secs_f64()
        );
    }
    let verify_s = median(&mut verify_t).as_secs_f64();
    let pt_s = median(&mut pt_t).as_secs_f64();
    let checksum_s = median(&mut checksum_t).as_secs_f64();
    sluice.stop().await?;
    eprintln!("  medians: sluice verify {verify_s:.2}s, pt-table-checksum {pt_s:.2}s, CHECKSUM TABLE ×2 {checksum_s:.2}s");
    let note = format!(
        "{rows} rows, chunks of {CHUNK_ROWS}, pipeline running idle; median of {runs}, interleaved"
    );
    Ok(vec![
        Outcome {
            scenario: "verify".into(),
            metric: "seconds to compare an idle table".into(),
            sluice: verify_s,
            reference: pt_s,
            reference_tool: "pt-table-checksum (source only)".into(),
            ratio: pt_s / verify_s,
            target: 1.0,
            note: note.clone(),
        },
        Outcome {
            scenario: "verify".into(),
            metric: "seconds to compare an idle table".into(),
            sluice: verify_s,
            reference: checksum_s,
            reference_tool: "CHECKSUM TABLE on source + target".into(),
            ratio: checksum_s / verify_s,
            target: 0.5,
            note,
        },
    ])
}
