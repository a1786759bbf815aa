//! `sluice run` and `sluice migrate`.
//!
//! `run` validates the pipeline file (all errors at once, nothing
//! connects before that), then replicates until SIGTERM/SIGINT — exit 0
//! after the batches in flight are applied and the position is flushed —
//! or, under `coordination.local`, until a definite error, which is printed
//! as one line naming what and where (exit 1). With `coordination.etcd` a
//! definite error halts the pipeline instead: the process stays up and
//! keeps its lease until an operator resolves it (`sluice errors`). Transient trouble (source or target down, etcd
//! unreachable) is logged and waited out, never an exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Node id recorded with every position write. Default: `node.id` from
    /// the file, else the host name.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// After SIGTERM/SIGINT, how long batches already read may still be
    /// applied before they are abandoned (and replayed by the next run).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    drain_timeout: u64,
    /// Seconds between progress log lines.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    progress_every: u64,
    /// Replica server_id of this node, overriding `source.server_id`: each
    /// node of an HA pair needs its own.
    #[arg(long, value_name = "ID", env = "SLUICE_SERVER_ID")]
    server_id: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The pipeline file (its `target` is migrated).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

/// The pipeline file; `uses`: the sections whose `${VAR}`s must be set
/// (`run` needs all of them, `migrate` only the target's and `load`'s).
fn load_config(
    path: &std::path::Path,
    uses: sluice_config::Uses,
) -> anyhow::Result<Option<sluice_config::Pipeline>> {
    match sluice_config::load_for(path, uses) {
        Ok(loaded) => Ok(Some(loaded.pipeline)),
        Err(errors) => {
            eprintln!("{errors}");
            Ok(None)
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(pipeline) = load_config(&args.config, sluice_config::Uses::All)? else {
        return Ok(ExitCode::FAILURE);
    };
    let node_id = args
        .node_id
        .or_else(|| pipeline.node.id.clone())
        .unwrap_or_else(default_node_id);
    let events = sluice_pipeline::Events::new(&pipeline.name, &node_id, &pipeline.alarms.webhooks);
    let status = sluice_pipeline::NodeStatus::new(
        &pipeline.name,
        &node_id,
        events.clone(),
        pipeline.alarms.lag_threshold,
    );
    let mut opts = sluice_pipeline::RunOptions {
        node_id,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        progress_interval: Duration::from_secs(args.progress_every.max(1)),
        server_id: args.server_id,
        status: status.clone(),
        admin_address: None,
    };
    // Outlives the pipeline: probes see "stopped" until the process exits.
    let admin_stop = CancellationToken::new();
    if let Some(admin) = &pipeline.admin {
        let metrics = crate::admin::install_metrics(admin_stop.clone(), &pipeline)?;
        // Named in /metrics from the start, not only once something happens.
        status.control_gauges(false, false);
        let listener = tokio::net::TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot listen on {}", admin.listen))?;
        let addr = listener.local_addr()?;
        opts.admin_address = Some(addr);
        tracing::info!(%addr, token = admin.token.is_some(), "admin HTTP listening");
        crate::admin::series::register(&pipeline, &opts.node_id);
        let cluster = crate::admin::cluster::Cluster::start(&pipeline, admin_stop.clone());
        let history = crate::admin::history::History::default();
        history.start_sampler(status.clone(), cluster.clone(), admin_stop.clone());
        let state = crate::admin::AdminState {
            status: status.clone(),
            metrics,
            token: admin.token.clone(),
            console: crate::admin::ui::Console::new(
                &pipeline.name,
                admin.token.as_deref(),
                cluster,
                history,
                pipeline.alarms.lag_threshold.as_secs(),
            ),
        };
        let stop = admin_stop.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::admin::serve(listener, state, stop).await {
                tracing::error!(%error, "admin HTTP server failed");
            }
        });
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        crate::binlog_cmd::shutdown_signal().await;
        signal.cancel();
    });
    let result = sluice_pipeline::run(&pipeline, opts, shutdown).await;
    // The last events (a load error, say) still go out, briefly.
    events.close(Duration::from_secs(5)).await;
    admin_stop.cancel();
    match result {
        Ok(summary) => {
            tracing::info!(
                batches = summary.batches,
                rows = summary.rows,
                ddl = summary.ddl,
                // Left out when this node acknowledged nothing (a standby).
                position = summary
                    .acknowledged
                    .as_ref()
                    .map(|(_, p)| tracing::field::display(p)),
                "stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("sluice: pipeline `{}` stopped: {error}", pipeline.name);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let uses = sluice_config::Uses::Only(&["name", "target", "load"]);
    let Some(pipeline) = load_config(&args.config, uses)? else {
        return Ok(ExitCode::FAILURE);
    };
    let loader = sluice_pipeline::loader(&pipeline).await.context("target")?;
    loader
        .migrate()
        .await
        .with_context(|| format!("migrating {}", pipeline.target.url))?;
    loader.close().await;
    println!(
        "OK: target {} migrated (schema {})",
        pipeline.target.url,
        sluice_load::META_SCHEMA
    );
    Ok(ExitCode::SUCCESS)
}

/// The default node id: the host name with characters outside node ids'
/// `[A-Za-z0-9_.-]` replaced by `_`.
fn default_node_id() -> String {
    sluice_core::time::host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
