//! `sluice verify --config FILE [--table db.t …] [--json] [--rate ROWS_PER_S] [--repair]`:
//! compares every included table between source and target while the
//! pipeline replicates (see `sluice_pipeline::verify` for the rule and
//! `sluice_pipeline::verify::report` for the output).
//!
//! Exit 0: equal (with `--repair`: everything found was repaired and
//! re-verified equal). Exit 1: differences (remain). Exit 2: could not
//! verify, with why (a table that cannot be compared, a server that does not
//! answer, a pipeline that does not apply through the source's snapshot
//! positions within `--wait`).
//!
//! The pipeline must be running (or have applied everything the source
//! holds): the target is only compared once the pipeline's checkpoint (or,
//! with etcd, its acknowledged position) is past each source snapshot.
//! `--repair` writes under the term the target currently holds for the
//! pipeline (`sluice_meta.term`), so it is fenced like the loader of the
//! active node: after a failover its writes are refused, never mixed in.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sluice_binlog::verify::SourceVerifier;
use sluice_config::Coordination;
use sluice_load::verify::{current_term, TargetVerifier};
use sluice_load::TermFence;
use sluice_pipeline::verify::{report, Applied, Verifier, VerifyOptions};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Only this source table (`schema.table`; repeatable). Default: every
    /// table the pipeline's filter includes.
    #[arg(long = "table", value_name = "DB.T")]
    tables: Vec<String>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Read at most this many source rows per second.
    #[arg(long, value_name = "ROWS_PER_S")]
    rate: Option<u64>,
    /// Rows per chunk.
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    chunk_rows: u64,
    /// Comparisons a candidate difference must survive to be reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    rechecks: u32,
    /// Longest wait for the pipeline to apply through one source snapshot,
    /// in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    wait: u64,
    /// Write the source's rows over the differing target rows (delete extra
    /// ones), then re-verify them.
    #[arg(long)]
    repair: bool,
}

/// Exit 2: could not verify.
fn unverified(json: bool, why: &str) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({"equal": false, "error": why, "tables": []})
        );
    }
    eprintln!("sluice verify: could not verify: {why}");
    ExitCode::from(2)
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match sluice_config::load(&args.config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    match verify(&args, &pipeline).await {
        Ok(code) => Ok(code),
        Err(e) => Ok(unverified(args.json, &crate::error_text(&e))),
    }
}

async fn verify(args: &VerifyArgs, pipeline: &sluice_config::Pipeline) -> anyhow::Result<ExitCode> {
    let source = SourceVerifier::new(pipeline.source.url().expose(), &pipeline.source.tls)?;
    let loader = sluice_pipeline::loader(pipeline)
        .await
        .context("connecting to the target")?;
    let store = match &pipeline.coordination {
        Coordination::Etcd { .. } => Some(sluice_pipeline::open_store(pipeline).await?),
        // The local store's directory is locked by the running node: its
        // position file is read without the lock (`Applied::local`).
        Coordination::Local { .. } => None,
    };
    let target = TargetVerifier::new(&loader);
    let applied = Applied {
        loader,
        pipeline: pipeline.name.clone(),
        store,
        local: sluice_pipeline::local_state_dir(pipeline),
        timeout: Duration::from_secs(args.wait),
        source: source.clone(),
    };
    let opts = VerifyOptions {
        tables: args.tables.clone(),
        chunk_rows: args.chunk_rows.max(1),
        rechecks: args.rechecks.max(1),
        rate: args.rate,
        ..VerifyOptions::default()
    };
    let mut verifier = Verifier::new(source.clone(), target, applied, opts);
    let mut outcomes = verifier
        .verify_all(&pipeline.filter, &pipeline.routes, &pipeline.columns)
        .await?;
    let mut repaired = None;
    if args.repair && outcomes.iter().any(|o| !o.differences.is_empty()) {
        let fence = current_term(&verifier.applied.loader, &pipeline.name)
            .await?
            .map(|(term, _)| TermFence {
                pipeline: pipeline.name.clone(),
                term,
                node: format!("sluice verify --repair@{}", sluice_core::time::host_name()),
            });
        let writer = sluice_pipeline::open::loader_with_term(pipeline, fence).await?;
        let n = verifier.repair(&writer, &mut outcomes).await;
        writer.close().await;
        repaired = Some(n?);
    } else if args.repair {
        repaired = Some(0);
    }
    source.close().await;
    verifier.applied.loader.close().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::to_json(&outcomes, repaired))?
        );
    } else {
        print!("{}", report::to_text(&outcomes, repaired));
    }
    Ok(if outcomes.iter().any(|o| o.error.is_some()) {
        ExitCode::from(2)
    } else if report::is_equal(&outcomes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line for `sluice status`: continuous verification's `"verify"`
/// object (`sluice_pipeline::verify::continuous::status_json`).
pub fn status_text(v: &serde_json::Value) -> String {
    let n =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "{} ({} rounds)",
        v["state"].as_str().unwrap_or("unknown"),
        n(v, "rounds")
    );
    if let Some(r) = v.get("round").filter(|r| !r.is_null()) {
        out.push_str(&format!(
            "; round: {}/{} tables, {} chunks, {} rows, {} differences so far",
            n(r, "tables_done"),
            n(r, "tables_total"),
            n(r, "chunks"),
            n(r, "rows"),
            n(r, "differences")
        ));
    }
    if let Some(l) = v.get("last_round").filter(|l| !l.is_null()) {
        out.push_str(&format!(
            "; last round: {} tables, {} chunks, {} rows, {} differences",
            n(l, "tables"),
            n(l, "chunks"),
            n(l, "rows"),
            n(l, "differences")
        ));
        for m in l["mismatched"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                " [{}: {}]",
                m["table"].as_str().unwrap_or(""),
                m["keys"]
            ));
        }
    }
    if let Some(e) = v["last_error"].as_str() {
        out.push_str(&format!("; error: {e}"));
    }
    out
}
