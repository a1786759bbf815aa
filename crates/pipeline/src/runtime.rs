//! One pipeline in one process: where to resume, the four stage tasks, and
//! how they stop.
//!
//! # Where replication resumes
//!
//! Two records say how far replication got: the position in the
//! coordination store (acknowledged batches, flushed every second) and the
//! checkpoint on the target (written right after each batch commits). The
//! checkpoint is never behind what the target holds, and after a crash it is
//! usually ahead of the stored position by up to a second of batches. The
//! runtime resumes from whichever is further, so a crash replays at most
//! the batch that was in flight, whose replay [`crate::load`] makes safe.
//! When the last checkpointed batch ended inside a large transaction, the
//! resume position is that transaction's start and Extract skips its events
//! up to the checkpoint's `through`, which are already applied.
//! When only the target has a checkpoint (a new etcd, or the local state
//! directory lost) it is used, with a warning; when neither exists,
//! `source.start` applies.
//!
//! # Stopping
//!
//! * Shutdown (SIGTERM/SIGINT, via the `shutdown` token): Select stops
//!   reading at once; batches already cut are still applied and
//!   acknowledged for up to `drain_timeout`, then abandoned; the position
//!   is flushed; `run` returns `Ok`.
//! * A definite error in any stage: every stage stops, batches in flight
//!   are abandoned unacknowledged, the position (which is before the failed
//!   batch) is flushed, and `run` returns the error.

use std::future::Future as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_binlog::stream::StartAt;
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    AckError, AnyPositionStore, CacheConfig, Candidate, CoordError, ElectionConfig, EtcdOptions,
    EtcdPositionStore, Fence, KeyLayout, LocalPositionStore, NodeRecord, PositionCache,
    PositionStore as _, ProgressPublisher, StoredPosition,
};
use sluice_core::{Classify, Position};
use sluice_load::{Checkpoint, Loader, LoaderOptions, TermFence};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch::is_before;
use crate::channel;
use crate::error::PipelineError;
use crate::extract::{self, ExtractConfig};
use crate::load::{Applier, LoadStage, LoadStats};
use crate::select::{self, SelectConfig};
use crate::transform::{self, TransformConfig, Transformer};

/// Settings of a run that are not in the pipeline file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This node's id, recorded with every position it writes.
    pub node_id: String,
    /// How long batches already cut may still be applied after shutdown.
    pub drain_timeout: Duration,
    /// How often progress is logged.
    pub progress_interval: Duration,
    /// Replica server_id of this node, overriding `source.server_id` (each
    /// node of an HA pair needs its own).
    pub server_id: Option<u32>,
    /// Live status for the admin endpoint, and where alarms go
    /// ([`crate::status`]).
    pub status: crate::status::NodeStatus,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            node_id: "sluice".into(),
            drain_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_secs(10),
            server_id: None,
            status: crate::status::NodeStatus::default(),
        }
    }
}

/// What a run did, for the caller's last log line.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub batches: u64,
    pub rows: u64,
    pub ddl: u64,
    /// The last acknowledged batch and position.
    pub acknowledged: Option<(u64, Position)>,
}

/// Opens the position store `coordination` names for `pipeline`.
pub async fn open_store(pipeline: &Pipeline) -> Result<AnyPositionStore, PipelineError> {
    Ok(match &pipeline.coordination {
        Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } => {
            let keys = KeyLayout::new(prefix)?.pipeline(&pipeline.name)?;
            let options =
                EtcdOptions::new(endpoints.clone()).with_security(tls.clone(), auth.clone());
            EtcdPositionStore::connect(&options, keys).await?.into()
        }
        Coordination::Local { dir } => {
            let dir: PathBuf = dir.join(&pipeline.name);
            LocalPositionStore::open(dir)?.into()
        }
    })
}

/// The loader `pipeline` describes (without a term fence: for tools).
pub async fn loader(pipeline: &Pipeline) -> Result<Loader, PipelineError> {
    loader_with_term(pipeline, None).await
}

pub(crate) async fn loader_with_term(
    pipeline: &Pipeline,
    term: Option<TermFence>,
) -> Result<Loader, PipelineError> {
    let opts = LoaderOptions {
        workers: usize::try_from(pipeline.load.workers).unwrap_or(4),
        term,
        tls: pipeline.target.tls.clone(),
        ..LoaderOptions::default()
    };
    Ok(Loader::connect(pipeline.target.url.expose(), opts).await?)
}

/// Runs `pipeline` until `shutdown` fires or a definite error.
///
/// With `coordination.etcd` the node first takes part in the leader
/// election ([`sluice_coord::election`]) and replicates only while it is
/// the leader, writing positions under its leader fence; when its term is
/// lost it stops at once and goes back to standby. With
/// `coordination.local` it replicates straight away (the state directory's
/// lock keeps a second process out).
pub async fn run(
    pipeline: &Pipeline,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    let status = opts.status.clone();
    let result = run_node(pipeline, opts, shutdown).await;
    status.set_role(crate::status::Role::Stopped);
    result
}

async fn run_node(
    pipeline: &Pipeline,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    let (endpoints, prefix, tls, auth) = match &pipeline.coordination {
        Coordination::Local { .. } => {
            let store = retry_transient("opening the position store", &shutdown, || {
                open_store(pipeline)
            })
            .await?;
            let Some(store) = store else {
                return Ok(RunSummary::default());
            };
            let never = CancellationToken::new();
            opts.status.set_role(crate::status::Role::Active);
            let term = Term {
                lost: never,
                fence: Fence::None,
                publisher: None,
                stages: None,
            };
            return run_term(pipeline, &opts, &shutdown, term, store).await;
        }
        Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } => (endpoints, prefix, tls, auth),
    };
    let keys = KeyLayout::new(prefix)?.pipeline(&pipeline.name)?;
    let etcd_opts = EtcdOptions::new(endpoints.clone()).with_security(tls.clone(), auth.clone());
    let Some(client) = retry_transient("connecting to etcd", &shutdown, || async {
        sluice_coord::etcd::connect(&etcd_opts)
            .await
            .map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(RunSummary::default());
    };
    opts.status.etcd_link(true);
    opts.status.set_role(crate::status::Role::Standby);
    // Distributed stages: this node's pipe and worker run for the whole
    // process, leader or not.
    let dist = match &pipeline.stages {
        Some(settings) => Some(
            crate::distributed::NodeStages::start(
                pipeline,
                settings,
                &opts.node_id,
                client.clone(),
                keys.clone(),
                etcd_opts.request_timeout,
            )
            .await?,
        ),
        None => None,
    };
    let election = ElectionConfig {
        lease_ttl: pipeline.ha.lease_ttl,
        standby_delay: pipeline.ha.standby_delay,
        request_timeout: etcd_opts.request_timeout,
        // Nodes that cannot run Select lead only when no node that can is
        // alive (see `distributed`).
        campaign_delay: if dist.is_some() && !pipeline.node.runs(sluice_config::Stage::Select) {
            pipeline.ha.standby_delay.max(Duration::from_secs(1))
        } else {
            Duration::ZERO
        },
    };
    let node = NodeRecord {
        node_id: opts.node_id.clone(),
        address: pipeline.admin.as_ref().map(|a| a.listen.to_string()),
        role: "standby".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        server_id: Some(opts.server_id.unwrap_or(pipeline.source.server_id)),
        since_unix_ms: 0,
        progress: None,
    };
    let mut candidate = Candidate::new(client.clone(), keys.clone(), election, node);
    let mut summary = RunSummary::default();
    let outcome = async { loop {
        let Some(leadership) = candidate.campaign(&shutdown).await? else {
            return Ok(summary);
        };
        opts.status.etcd_link(true);
        opts.status
            .leadership_gained(leadership.fence.leader_revision());
        let result = loop {
            let store: AnyPositionStore =
                EtcdPositionStore::new(client.clone(), keys.clone(), etcd_opts.request_timeout)
                    .into();
            let term = Term {
                lost: leadership.lost.clone(),
                fence: leadership.fence.clone(),
                publisher: Some(leadership.publisher()),
                stages: dist.as_ref().map(|d| d.for_term()),
            };
            let result = run_term(pipeline, &opts, &shutdown, term, store).await;
            if let Err(PipelineError::Rollback { reason }) = &result {
                if shutdown.is_cancelled() || leadership.lost.is_cancelled() {
                    break Ok(RunSummary::default());
                }
                tracing::warn!(%reason, "distributed stages: restarting from the last acknowledged position");
                // Pacing, so that a persistent cause does not spin.
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = leadership.lost.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            break result;
        };
        let fenced_out = match &result {
            Err(PipelineError::Load(e)) => e.is_fenced_out(),
            Err(PipelineError::Coord(e)) => matches!(**e, CoordError::FencedOut { .. }),
            Err(PipelineError::Ack(AckError::Stopped(e))) => {
                matches!(**e, CoordError::FencedOut { .. })
            }
            _ => false,
        };
        if let Ok(term) = &result {
            summary.batches += term.batches;
            summary.rows += term.rows;
            summary.ddl += term.ddl;
            summary.acknowledged = term.acknowledged.clone().or(summary.acknowledged);
        }
        if shutdown.is_cancelled() && !leadership.lost.is_cancelled() {
            // Graceful: hand over now rather than after the lease expires.
            leadership.resign().await;
            return result.map(|_| summary);
        }
        if leadership.lost.is_cancelled() || fenced_out {
            leadership.abandon().await;
            if shutdown.is_cancelled() {
                return Ok(summary);
            }
            tracing::warn!("leadership lost: replication stopped; back to standby");
            opts.status.leadership_lost(if fenced_out {
                "fenced out by a newer term"
            } else {
                "lease lost"
            });
            continue;
        }
        leadership.resign().await;
        return result.map(|_| summary);
    } }
    .await;
    if let Some(d) = dist {
        d.stop().await;
    }
    outcome
}

/// What a term of replication runs under.
struct Term {
    /// Fires when the term is lost (never, without an election).
    lost: CancellationToken,
    fence: Fence,
    publisher: Option<ProgressPublisher>,
    /// Distributed stages: the board and this node's pipe.
    stages: Option<crate::distributed::TermStages>,
}

/// One term of replication: resume, run the stages, stop.
async fn run_term(
    pipeline: &Pipeline,
    opts: &RunOptions,
    shutdown: &CancellationToken,
    term: Term,
    store: AnyPositionStore,
) -> Result<RunSummary, PipelineError> {
    // A lost term stops everything at once, like a definite error.
    let shutdown_or_lost = CancellationToken::new();
    let linked = {
        let (a, b, c) = (
            shutdown.clone(),
            term.lost.clone(),
            shutdown_or_lost.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = a.cancelled() => {}
                () = b.cancelled() => {}
            }
            c.cancel();
        })
    };
    let result = run_stages(pipeline, opts, shutdown, &term, store, &shutdown_or_lost).await;
    linked.abort();
    result
}

async fn run_stages(
    pipeline: &Pipeline,
    opts: &RunOptions,
    shutdown: &CancellationToken,
    term_: &Term,
    store: AnyPositionStore,
    shutdown_or_lost: &CancellationToken,
) -> Result<RunSummary, PipelineError> {
    let (lost, fence, publisher) = (&term_.lost, term_.fence.clone(), term_.publisher.clone());
    let term = fence.leader_revision().map(|term| TermFence {
        pipeline: pipeline.name.clone(),
        term,
        node: opts.node_id.clone(),
    });
    let loader = Arc::new(loader_with_term(pipeline, term).await?);
    let Some(()) = retry_transient("migrating the target", shutdown_or_lost, || async {
        loader.migrate().await.map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(RunSummary::default());
    };
    opts.status.target_up();
    // Before reading where to resume: writes of an older term are then
    // either visible or impossible.
    let Some(()) = retry_transient(
        "claiming the term on the target",
        shutdown_or_lost,
        || async { loader.claim_term().await.map_err(PipelineError::from) },
    )
    .await?
    else {
        return Ok(RunSummary::default());
    };
    let Some(stored) = retry_transient("loading the stored position", shutdown_or_lost, || async {
        store.load().await.map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(RunSummary::default());
    };
    let Some(checkpoint) = retry_transient(
        "reading the target checkpoint",
        shutdown_or_lost,
        || async {
            loader
                .read_checkpoint(&pipeline.name)
                .await
                .map_err(PipelineError::from)
        },
    )
    .await?
    else {
        return Ok(RunSummary::default());
    };
    let resume = resume_point(stored.as_ref(), checkpoint.as_ref(), &opts.node_id);

    let (start, fresh) = match &resume.record {
        // With several source servers the stored file offset may belong to
        // another one than `urls[0]`: resume by GTID, which all share.
        Some(StoredPosition {
            position: Position {
                gtid: Some(gtid), ..
            },
            ..
        }) if pipeline.source.urls.len() > 1 => (StartAt::Gtid(gtid.clone()), false),
        Some(r) => (
            StartAt::File {
                file: r.position.file.clone(),
                pos: r.position.offset,
            },
            false,
        ),
        None => (config_start(&pipeline.source.start), true),
    };
    tracing::info!(
        pipeline = %pipeline.name,
        store = %store.location(),
        target = %pipeline.target.url,
        resume = %resume.record.as_ref().map_or_else(|| format!("source.start {} (nothing stored)", pipeline.source.start), |r| r.position.to_string()),
        from = resume.from,
        horizon = resume.horizon.as_ref().map(tracing::field::display),
        skip_through = resume.skip_through.as_ref().map(tracing::field::display),
        "pipeline starting"
    );

    let cache = PositionCache::new(
        store,
        resume.record.as_ref(),
        CacheConfig::new(opts.node_id.clone(), fence),
    );
    let first_batch_id = cache.next_batch_id();
    // Distributed stages: a new epoch before any batch is published; its
    // term, raised on the target, fences every older worker out.
    let epoch = match &term_.stages {
        Some(st) => {
            let Some(epoch) =
                retry_transient("starting the stage epoch", shutdown_or_lost, || async {
                    st.board
                        .begin_epoch(&term_.fence, &opts.node_id, first_batch_id)
                        .await
                        .map_err(PipelineError::from)
                })
                .await?
            else {
                return Ok(RunSummary::default());
            };
            let epoch_fence = TermFence {
                pipeline: pipeline.name.clone(),
                term: i64::try_from(epoch).unwrap_or(i64::MAX),
                node: opts.node_id.clone(),
            };
            let epoch_loader = loader_with_term(pipeline, Some(epoch_fence)).await?;
            let claimed = retry_transient(
                "claiming the stage epoch's term on the target",
                shutdown_or_lost,
                || async { epoch_loader.claim_term().await.map_err(PipelineError::from) },
            )
            .await;
            epoch_loader.close().await;
            if claimed?.is_none() {
                return Ok(RunSummary::default());
            }
            tracing::info!(epoch, first_batch_id, "distributed stages: epoch started");
            Some(epoch)
        }
        None => None,
    };
    // Id of the last batch Load finished (Extract cuts early when Load is
    // idle).
    let acked = Arc::new(AtomicU64::new(first_batch_id.saturating_sub(1)));
    // Id of the last batch Extract cut (for the in-flight count).
    let cut = Arc::new(AtomicU64::new(first_batch_id.saturating_sub(1)));
    // Stops Select and, through closing channels, the stages after it.
    let stop = CancellationToken::new();
    // Abandons batches in flight.
    let abandon = CancellationToken::new();
    let flusher_stop = CancellationToken::new();
    let flusher = cache.spawn_flusher(flusher_stop.clone().cancelled_owned());

    let window = usize::try_from(pipeline.batch.window).unwrap_or(8);
    let max_bytes = usize::try_from(pipeline.batch.max_bytes).unwrap_or(4 << 20);
    let budget = max_bytes.saturating_mul(window);
    let (sel_tx, sel_rx) = channel::bounded(4096, budget);
    let (ext_tx, ext_rx) = channel::bounded(window, budget);
    let (tr_tx, tr_rx) = channel::bounded(window, budget);

    let mut select_cfg = SelectConfig::new(
        pipeline.source.url().expose().to_string(),
        opts.server_id.unwrap_or(pipeline.source.server_id),
        start,
    );
    select_cfg.fresh = fresh;
    select_cfg.tls = pipeline.source.tls.clone();
    select_cfg.fallback_urls = pipeline.source.urls[1..]
        .iter()
        .map(|u| u.expose().to_string())
        .collect();
    select_cfg.switch_after = pipeline.source.switch_after;
    select_cfg.max_chunk_bytes = max_bytes;
    select_cfg.status = opts.status.clone();
    let heartbeats = crate::lag::Heartbeats::new(select_cfg.heartbeat);
    select_cfg.heartbeats = heartbeats.clone();
    let queues = vec![
        ("select", sel_tx.probe()),
        ("extract", ext_tx.probe()),
        ("transform", tr_tx.probe()),
    ];
    let start_position = resume
        .record
        .as_ref()
        .map_or_else(|| Position::new(String::new(), 4), |r| r.position.clone());
    let extract_cfg = ExtractConfig {
        filter: pipeline.filter.clone(),
        max_rows: usize::try_from(pipeline.batch.max_rows).unwrap_or(2000),
        max_bytes,
        max_delay: pipeline.batch.max_delay,
        first_batch_id,
        cut: Arc::clone(&cut),
        start: start_position,
        skip_through: resume.skip_through.clone(),
        acknowledged: Some(Arc::clone(&acked)),
    };
    let transformer = Transformer::new(TransformConfig {
        filter: pipeline.filter.clone(),
        routes: pipeline.routes.clone(),
        columns: pipeline.columns.clone(),
    });
    let stats = Arc::new(LoadStats {
        status: opts.status.clone(),
        ..LoadStats::default()
    });
    let load = LoadStage {
        applier: Applier {
            pipeline: pipeline.name.clone(),
            loader: Arc::clone(&loader),
            ddl: pipeline.load.ddl,
            stats: Arc::clone(&stats),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(5),
        },
        cache: cache.clone(),
        horizon: resume.horizon,
        acked: Arc::clone(&acked),
    };

    let mut tasks: Vec<(&'static str, JoinHandle<Result<(), PipelineError>>)> = vec![
        (
            "select",
            tokio::spawn(select::run(select_cfg, sel_tx, stop.clone())),
        ),
        (
            "extract",
            tokio::spawn(extract::run(extract_cfg, sel_rx, ext_tx, abandon.clone())),
        ),
    ];
    match (&term_.stages, epoch) {
        (Some(st), Some(epoch)) => {
            let scheduler = crate::distributed::Scheduler {
                board: st.board.clone(),
                fence: term_.fence.clone(),
                term: epoch,
                node_id: opts.node_id.clone(),
                advertise: st.advertise.clone(),
                store: st.store.clone(),
                cache: cache.clone(),
                window: st.window,
                horizon: load.horizon.clone(),
                task_timeout: st.task_timeout,
                stats: Arc::clone(&stats),
                acked: Arc::clone(&acked),
            };
            drop((transformer, load, tr_tx, tr_rx));
            tasks.push((
                "schedule",
                tokio::spawn(crate::distributed::schedule(
                    scheduler,
                    ext_rx,
                    abandon.clone(),
                )),
            ));
        }
        _ => {
            tasks.push((
                "transform",
                tokio::spawn(transform::run(transformer, ext_rx, tr_tx, abandon.clone())),
            ));
            tasks.push(("load", tokio::spawn(load.run(tr_rx, abandon.clone()))));
        }
    }
    let progress = tokio::spawn(log_progress(
        cache.clone(),
        Arc::clone(&stats),
        opts.status.clone(),
        opts.progress_interval,
        abandon.clone(),
    ));
    let monitor = tokio::spawn(crate::status::monitor(
        opts.status.clone(),
        crate::status::MonitorInputs {
            cache: cache.clone(),
            stats: Arc::clone(&stats),
            cut: Arc::clone(&cut),
            first_batch_id,
            heartbeats,
            queues,
            etcd: matches!(pipeline.coordination, Coordination::Etcd { .. }),
            loader: Arc::clone(&loader),
        },
        abandon.clone(),
    ));
    let published = publisher.map(|p| {
        tokio::spawn(publish_progress(
            p,
            cache.clone(),
            opts.status.clone(),
            abandon.clone(),
        ))
    });

    // Wait for every stage; the first definite error stops the others.
    let mut failure: Option<PipelineError> = None;
    let mut shutting_down = false;
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    while !tasks.is_empty() {
        let (done, index, _) = tokio::select! {
            () = lost.cancelled(), if !abandon.is_cancelled() => {
                tracing::error!("leadership lost: stopping the dump and abandoning batches in flight");
                stop.cancel();
                abandon.cancel();
                shutting_down = true;
                continue;
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                tracing::info!(drain_timeout_s = opts.drain_timeout.as_secs(), "shutdown requested: finishing batches in flight");
                stop.cancel();
                drain.as_mut().reset(tokio::time::Instant::now() + opts.drain_timeout);
                continue;
            }
            () = &mut drain, if shutting_down && !abandon.is_cancelled() => {
                tracing::warn!("drain timeout: abandoning batches in flight (they will be replayed)");
                abandon.cancel();
                continue;
            }
            r = futures_select(&mut tasks) => r,
        };
        let (stage, _) = tasks.swap_remove(index);
        let outcome = match done {
            Ok(r) => r,
            Err(join) => Err(PipelineError::Stage {
                stage,
                message: join.to_string(),
            }),
        };
        if let Err(error) = outcome {
            tracing::error!(stage, %error, "stage failed; stopping the pipeline");
            let fenced = matches!(&error, PipelineError::Load(e) if e.is_fenced_out());
            if !fenced && !lost.is_cancelled() {
                opts.status.definite_error(stage, &error.to_string());
            }
            stop.cancel();
            abandon.cancel();
            if failure.is_none() {
                failure = Some(error);
            }
        }
    }
    abandon.cancel();
    let _ = progress.await;
    let _ = monitor.await;
    if let Some(p) = published {
        let _ = p.await;
    }
    flusher_stop.cancel();
    let flushed = match flusher.await {
        Ok(r) => r,
        Err(join) => {
            tracing::error!(error = %join, "position flusher ended abnormally");
            Ok(())
        }
    };
    loader.close().await;
    let summary = RunSummary {
        batches: stats.batches.load(Ordering::Relaxed),
        rows: stats.rows.load(Ordering::Relaxed),
        ddl: stats.ddl.load(Ordering::Relaxed),
        acknowledged: cache.acknowledged().map(|a| (a.batch_id, a.position)),
    };
    if let Some(error) = failure {
        if let Err(flush) = flushed {
            tracing::error!(error = %flush, "final position flush failed; the next run replays from the last stored position");
        }
        return Err(error);
    }
    flushed?;
    Ok(summary)
}

/// Polls the stage handles; returns the first finished, with its index.
async fn futures_select(
    tasks: &mut [(&'static str, JoinHandle<Result<(), PipelineError>>)],
) -> (
    Result<Result<(), PipelineError>, tokio::task::JoinError>,
    usize,
    (),
) {
    std::future::poll_fn(|cx| {
        for (i, (_, handle)) in tasks.iter_mut().enumerate() {
            if let std::task::Poll::Ready(r) = std::pin::Pin::new(handle).poll(cx) {
                return std::task::Poll::Ready((r, i, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

struct Resume {
    record: Option<StoredPosition>,
    /// Which record won, for the log.
    from: &'static str,
    horizon: Option<Position>,
    skip_through: Option<Position>,
}

/// See the module docs.
fn resume_point(
    stored: Option<&StoredPosition>,
    checkpoint: Option<&Checkpoint>,
    node_id: &str,
) -> Resume {
    let parse = |text: &str, what: &str| -> Option<Position> {
        if text.is_empty() {
            return None;
        }
        match text.parse::<Position>() {
            Ok(p) => Some(p),
            Err(error) => {
                tracing::warn!(%error, text, "ignoring the target checkpoint's {what}: it does not parse");
                None
            }
        }
    };
    let checkpoint_position = checkpoint.and_then(|c| parse(&c.position, "position"));
    let in_flight = checkpoint
        .and_then(|c| c.applying.as_ref())
        .and_then(|(_, through)| parse(through, "batch in flight"));
    let (record, from) = match (stored, checkpoint_position, checkpoint) {
        (Some(s), Some(cp), Some(c)) if is_before(&s.position, &cp) => {
            let mut r = StoredPosition::new(cp, c.batch_id.max(s.batch_id), node_id, &Fence::None);
            r.written_at_unix_ms = unix_ms();
            (Some(r), "target checkpoint (ahead of the stored position)")
        }
        (Some(s), _, _) => (Some(s.clone()), "stored position"),
        (None, Some(cp), Some(c)) => {
            tracing::warn!(
                "no stored position, but the target has a checkpoint for this pipeline: resuming from it"
            );
            (
                Some(StoredPosition::new(cp, c.batch_id, node_id, &Fence::None)),
                "target checkpoint (nothing stored)",
            )
        }
        (None, _, _) => (None, "source.start"),
    };
    // Everything up to the checkpoint's `through` is applied; when that is
    // past the resume position (a batch ended inside a transaction), skip
    // those events.
    let skip_through = match (&record, checkpoint.and_then(|c| c.through.as_deref())) {
        (Some(r), Some(t)) => parse(t, "through").filter(|t| is_before(&r.position, t)),
        _ => None,
    };
    let horizon = match (&record, in_flight) {
        (Some(r), Some(h)) if is_before(&r.position, &h) => Some(h),
        (None, Some(h)) => Some(h),
        _ => None,
    };
    Resume {
        record,
        from,
        horizon,
        skip_through,
    }
}

use sluice_coord::election::unix_ms;

fn config_start(start: &sluice_config::StartAt) -> StartAt {
    match start {
        sluice_config::StartAt::Latest => StartAt::Latest,
        sluice_config::StartAt::File { file, pos } => StartAt::File {
            file: file.clone(),
            pos: *pos,
        },
        sluice_config::StartAt::Gtid(set) => StartAt::Gtid(set.clone()),
    }
}

/// Runs `op` until it succeeds or fails definitely; `None` on shutdown.
async fn retry_transient<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut op: F,
) -> Result<Option<T>, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PipelineError>>,
{
    let mut wait = Duration::from_millis(250);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            r = op() => r,
        };
        match result {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.class().is_transient() => {
                metrics::counter!("sluice_errors_total", "class" => "transient", "stage" => "runtime")
                    .increment(1);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn log_progress(
    cache: PositionCache<AnyPositionStore>,
    stats: Arc<LoadStats>,
    status: crate::status::NodeStatus,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut last_rows = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let rows = stats.rows.load(Ordering::Relaxed);
        let flush = cache.status();
        // Absent values are left out of the line, never printed as Rust's
        // `None`/`Some(..)`.
        tracing::info!(
            batches = stats.batches.load(Ordering::Relaxed),
            rows,
            rows_per_s = (rows - last_rows) as f64 / every.as_secs_f64(),
            lag_s = status.lag_seconds(),
            acknowledged = flush.acknowledged,
            flushed = flush.flushed,
            position = cache
                .acknowledged()
                .map(|a| tracing::field::display(a.position)),
            "progress"
        );
        last_rows = rows;
    }
}

/// How often the leader refreshes its counters in its node record.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// Publishes the term's counters and lag, as the monitor computes them
/// (`crate::status`), in the node record (`sluice status`).
async fn publish_progress(
    publisher: ProgressPublisher,
    cache: PositionCache<AnyPositionStore>,
    status: crate::status::NodeStatus,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PUBLISH_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let flush = cache.status();
        publisher
            .publish(status.node_progress(flush.acknowledged, flush.flushed))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::cmp_positions;

    fn pos(file: &str, offset: u64) -> Position {
        Position::new(file.to_string(), offset)
    }

    fn stored(p: Position, batch_id: u64) -> StoredPosition {
        StoredPosition::new(p, batch_id, "n", &Fence::None)
    }

    fn checkpoint(p: &str, batch_id: u64, applying: Option<&str>) -> Checkpoint {
        Checkpoint {
            pipeline: "p".into(),
            batch_id,
            position: p.into(),
            updated_at: String::new(),
            applying: applying.map(|a| (batch_id + 1, a.to_string())),
            through: None,
        }
    }

    #[test]
    fn resumes_from_the_further_record() {
        let s = stored(pos("b.000001", 100), 5);
        let ahead = checkpoint("b.000001:900", 9, Some("b.000001:1500"));
        let r = resume_point(Some(&s), Some(&ahead), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 900));
        assert_eq!(r.record.as_ref().unwrap().batch_id, 9);
        assert_eq!(r.horizon, Some(pos("b.000001", 1500)));

        let behind = checkpoint("b.000001:50", 3, None);
        let r = resume_point(Some(&s), Some(&behind), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 100));
        assert_eq!(r.horizon, None);

        let r = resume_point(None, Some(&ahead), "n");
        assert_eq!(r.record.unwrap().batch_id, 9);

        // The checkpointed batch ended inside a transaction: resume at the
        // transaction's start, skip what is applied.
        let mut mid = checkpoint("b.000001:900", 9, None);
        mid.through = Some("b.000001:1200".into());
        let r = resume_point(Some(&s), Some(&mid), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 900));
        assert_eq!(r.skip_through, Some(pos("b.000001", 1200)));
        mid.through = Some("b.000001:900".into());
        assert_eq!(resume_point(Some(&s), Some(&mid), "n").skip_through, None);

        let r = resume_point(None, None, "n");
        assert!(r.record.is_none());
        // An intent recorded before any checkpoint (first batch) still
        // bounds the replay.
        let first = checkpoint("", 0, Some("b.000001:700"));
        let r = resume_point(None, Some(&first), "n");
        assert!(r.record.is_none());
        assert_eq!(r.horizon, Some(pos("b.000001", 700)));
        assert_eq!(
            cmp_positions(&pos("b.000001", 1), &pos("b.000001", 1)),
            Some(std::cmp::Ordering::Equal)
        );
    }
}
