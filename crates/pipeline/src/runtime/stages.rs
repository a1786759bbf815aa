//! A term's stage tasks: wiring, supervision and the orderly stop.
//!
//! The stages are tokio tasks joined by bounded channels: Select → Extract
//! → Transform → Load, or, with distributed stages, Select → Extract → the
//! scheduler (which publishes batches as tasks and acknowledges them in
//! order). Beside them run the position flusher, the progress log, the
//! status monitor and, under an election, the node-record publisher.
//!
//! Stopping (see [`super`]'s docs): on shutdown Select stops reading and
//! batches already cut may finish for `drain_timeout` (none while the
//! pipeline is paused: they are abandoned at once); a lost term or a
//! definite error in any stage abandons batches in flight at once. Either
//! way the flusher then writes the last acknowledged position. A flusher
//! that ended abnormally (it panicked) fails the run: the position it should
//! have written is unknown, and exit 0 would claim otherwise.

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_config::{Coordination, Pipeline};
use sluice_coord::{AnyPositionStore, CoordError, PositionCache};
use sluice_core::Position;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::options::{RunOptions, RunSummary};
use super::progress::{log_progress, publish_progress};
use super::term::{Prepared, Term};
use crate::channel;
use crate::error::PipelineError;
use crate::extract::{self, ExtractConfig};
use crate::load::{Applier, LoadStage, APPLY_RETRY};
use crate::select::{self, SelectConfig};
use crate::stats::LoadStats;
use crate::transform::{self, TransformConfig, Transformer};

type StageHandle = (&'static str, JoinHandle<Result<(), PipelineError>>);

/// A term's running tasks and what stopping them needs.
struct Running {
    stages: Vec<StageHandle>,
    /// Progress log, monitor, node-record publisher.
    helpers: Vec<JoinHandle<()>>,
    flusher: JoinHandle<Result<(), Arc<CoordError>>>,
    flusher_stop: CancellationToken,
    /// Stops Select and, through closing channels, the stages after it.
    stop: CancellationToken,
    /// Abandons batches in flight.
    abandon: CancellationToken,
    stats: Arc<LoadStats>,
    cache: PositionCache<AnyPositionStore>,
    loader: Arc<sluice_load::Loader>,
    /// The pause gate: batches in flight cannot drain while paused.
    gate: crate::control::Gate,
}

/// Runs the term's stages until they end; see the module docs.
pub(super) async fn run(
    pipeline: &Pipeline,
    opts: &RunOptions,
    shutdown: &CancellationToken,
    term: &Term,
    prepared: Prepared,
) -> Result<RunSummary, PipelineError> {
    let mut running = spawn(pipeline, opts, term, prepared);
    let failure = supervise(&mut running, opts, shutdown, &term.lost).await;
    finish(running, failure).await
}

/// Channels, stage configs and tasks.
fn spawn(pipeline: &Pipeline, opts: &RunOptions, term: &Term, p: Prepared) -> Running {
    let Prepared {
        loader,
        resume,
        start,
        fresh,
        cache,
        first_batch_id,
        epoch,
        resolver,
        snapshot,
    } = p;
    // Id of the last batch Load finished (Extract cuts early when Load is
    // idle).
    let acked = Arc::new(AtomicU64::new(first_batch_id.saturating_sub(1)));
    // Id of the last batch Extract cut (for the in-flight count).
    let cut = Arc::new(AtomicU64::new(first_batch_id.saturating_sub(1)));
    let stop = CancellationToken::new();
    let abandon = CancellationToken::new();
    let flusher_stop = CancellationToken::new();
    let flusher = cache.spawn_flusher(flusher_stop.clone().cancelled_owned());

    let window = usize::try_from(pipeline.batch.window).unwrap_or(8);
    let max_bytes = usize::try_from(pipeline.batch.max_bytes).unwrap_or(4 << 20);
    let budget = max_bytes.saturating_mul(window);
    // Select's read-ahead of raw rows events: Extract decodes one chunk
    // (at most `max_bytes`) while the next waits, which keeps it busy; a
    // whole window of raw events on top of the decoded batches behind it
    // was a quarter of the live heap replicating a 1M-row transaction
    // (heaptrack: 27 of 82 MiB).
    let (sel_tx, sel_rx) = channel::bounded(4096, max_bytes.saturating_mul(2));
    let (ext_tx, ext_rx) = channel::bounded(window, budget);
    let (tr_tx, tr_rx) = channel::bounded(window, budget);

    let select_cfg = select_config(pipeline, opts, term, start, fresh, max_bytes);
    let heartbeats = select_cfg.heartbeats.clone();
    let gate = term
        .control
        .as_ref()
        .map(|c| c.control.gate())
        .unwrap_or_default();
    let queues = vec![
        ("select", sel_tx.probe()),
        ("extract", ext_tx.probe()),
        ("transform", tr_tx.probe()),
    ];
    // A first start with a snapshot streams from the snapshot's start, which
    // Extract compares chunk positions with.
    let start_position = match (&resume.record, &snapshot) {
        (Some(r), _) => r.position.clone(),
        (None, Some(plan)) => plan.start.clone(),
        (None, None) => Position::new(String::new(), 4),
    };
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
        isolate: resolver.as_ref().map(|r| r.through().clone()),
        snapshot: None,
    };
    let mut extract_cfg = extract_cfg;
    // The stream always holds a snapshot feed: the initial snapshot's
    // readers and later re-copies (`sluice snapshot --table`, in-process
    // stages only) hand their chunks in through it. With distributed stages
    // the chunks' marks travel with their batches to the loading node.
    let in_process = !matches!((&term.stages, epoch), (Some(_), Some(_)));
    let copies = crate::snapshot::Marks::default();
    let readers = {
        let (feed_tx, feed_rx) = tokio::sync::mpsc::channel(
            usize::try_from(pipeline.snapshot.parallel).unwrap_or(4) * 2 + 2,
        );
        let dropping = snapshot
            .as_ref()
            .map(|p| p.dropping.clone())
            .unwrap_or_default();
        let copying = crate::snapshot::Copying::default();
        let feed = crate::snapshot::Feed::new(feed_rx, dropping, copying.clone());
        extract_cfg.snapshot = Some(crate::snapshot::ExtractSide::new(
            feed,
            copies.clone(),
            extract_cfg.max_rows,
            extract_cfg.max_bytes,
        ));
        let initial = snapshot.as_ref().map(|plan| {
            crate::snapshot::announce(&opts.status, plan, pipeline.snapshot.chunk_rows);
            crate::snapshot::spawn_readers(pipeline, plan, &copying, feed_tx.clone(), stop.clone())
        });
        let (order_tx, order_rx) = tokio::sync::mpsc::channel(4);
        match &term.control {
            Some(c) if in_process => {
                *c.recopy.lock().unwrap_or_else(|e| e.into_inner()) = Some(order_tx);
            }
            // No desk: the snapshot task finishes the initial copy and ends.
            _ => drop(order_tx),
        }
        let ctx = crate::snapshot::recopy::Context {
            pipeline: pipeline.clone(),
            loader: Arc::clone(&loader),
            status: opts.status.clone(),
            feed: feed_tx,
            copying,
            stop: stop.clone(),
        };
        tokio::spawn(crate::snapshot::recopy::run(ctx, initial, order_rx))
    };
    let stats = Arc::new(LoadStats::default());

    let mut stages: Vec<StageHandle> = vec![
        (
            "select",
            tokio::spawn(select::run(select_cfg, sel_tx, stop.clone())),
        ),
        (
            "extract",
            tokio::spawn(extract::run(extract_cfg, sel_rx, ext_tx, abandon.clone())),
        ),
    ];
    stages.push(("snapshot", readers));
    match (&term.stages, epoch) {
        (Some(st), Some(epoch)) => {
            let scheduler = crate::distributed::Scheduler {
                board: st.board.clone(),
                fence: term.fence.clone(),
                term: epoch,
                node_id: opts.node_id.clone(),
                advertise: st.advertise.clone(),
                store: st.store.clone(),
                cache: cache.clone(),
                window: st.window,
                horizon: resume.horizon.clone(),
                task_timeout: st.task_timeout,
                stats: Arc::clone(&stats),
                acked: Arc::clone(&acked),
                gate: gate.clone(),
                copies: Some(copies.clone()),
                status: opts.status.clone(),
            };
            drop((tr_tx, tr_rx));
            stages.push((
                "schedule",
                tokio::spawn(crate::distributed::schedule(
                    scheduler,
                    ext_rx,
                    abandon.clone(),
                )),
            ));
        }
        _ => {
            let transformer = Transformer::new(TransformConfig {
                filter: pipeline.filter.clone(),
                routes: pipeline.routes.clone(),
                columns: pipeline.columns.clone(),
            });
            let load = LoadStage {
                applier: Applier {
                    pipeline: pipeline.name.clone(),
                    loader: Arc::clone(&loader),
                    ddl: pipeline.load.ddl,
                    stats: Arc::clone(&stats),
                    status: opts.status.clone(),
                    retry: APPLY_RETRY,
                    gate: gate.clone(),
                },
                cache: cache.clone(),
                horizon: resume.horizon,
                acked: Arc::clone(&acked),
                failed: term.failed.clone(),
                resolver,
                copies: Some(copies),
            };
            stages.push((
                "transform",
                tokio::spawn(transform::run(transformer, ext_rx, tr_tx, abandon.clone())),
            ));
            stages.push(("load", tokio::spawn(load.run(tr_rx, abandon.clone()))));
        }
    }
    let mut helpers = vec![
        tokio::spawn(log_progress(
            cache.clone(),
            Arc::clone(&stats),
            opts.status.clone(),
            opts.progress_interval,
            abandon.clone(),
        )),
        tokio::spawn(crate::status::monitor(
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
        )),
    ];
    helpers.extend(spawn_term_helpers(pipeline, opts, term, &cache, &abandon));
    Running {
        stages,
        helpers,
        flusher,
        flusher_stop,
        stop,
        abandon,
        stats,
        cache,
        loader,
        gate,
    }
}

/// Select's settings: the source's URLs and TLS, an operator's earlier
/// switch, the filter and the bidirectional peer.
fn select_config(
    pipeline: &Pipeline,
    opts: &RunOptions,
    term: &Term,
    start: sluice_binlog::stream::StartAt,
    fresh: bool,
    max_bytes: usize,
) -> SelectConfig {
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
    // `never`: only an operator switches.
    select_cfg.switch_after = pipeline.source.switch_after.unwrap_or(Duration::MAX);
    if let Some(tc) = &term.control {
        select_cfg.switch = Some(tc.switch.clone());
        // An operator's earlier switch, if it names this node's entry.
        if let Some(choice) = &tc.state.source {
            match pipeline.source.urls.get(choice.value.index) {
                Some(u) if u.address() == choice.value.address => {
                    select_cfg.start_index = choice.value.index;
                }
                _ => tracing::warn!(
                    index = choice.value.index,
                    address = %choice.value.address,
                    "the operator's source choice is not an entry of this node's source.urls; starting on the first"
                ),
            }
        }
    }
    select_cfg.max_chunk_bytes = max_bytes;
    select_cfg.status = opts.status.clone();
    select_cfg.filter = pipeline.filter.clone();
    select_cfg.peer = crate::open::peer(pipeline);
    select_cfg.heartbeats = crate::lag::Heartbeats::new(select_cfg.heartbeat);
    select_cfg
}

/// The helpers that come with this node's configuration and term:
/// continuous verification and the node-record publisher.
fn spawn_term_helpers(
    pipeline: &Pipeline,
    opts: &RunOptions,
    term: &Term,
    cache: &PositionCache<AnyPositionStore>,
    abandon: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut helpers = Vec::new();
    if let Some(settings) = &pipeline.verify {
        // Continuous verification lives and dies with the term.
        let store = term.control.as_ref().map(|tc| {
            let s = tc.control.store();
            sluice_coord::VerifyStore::new(
                s.client().clone(),
                s.keys().clone(),
                term.fence.clone(),
                Duration::from_secs(5),
            )
        });
        let task = crate::verify::continuous::Continuous {
            pipeline: pipeline.clone(),
            settings: settings.clone(),
            status: opts.status.clone(),
            store,
            node: opts.node_id.clone(),
        };
        helpers.push(tokio::spawn(task.run(abandon.clone())));
    }
    if let Some(p) = term.publisher.clone() {
        helpers.push(tokio::spawn(publish_progress(
            p,
            cache.clone(),
            opts.status.clone(),
            abandon.clone(),
        )));
    }
    helpers
}

/// Waits for every stage; the first error stops the others and is returned.
async fn supervise(
    r: &mut Running,
    opts: &RunOptions,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
) -> Option<PipelineError> {
    let mut failure: Option<PipelineError> = None;
    let mut shutting_down = false;
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    while !r.stages.is_empty() {
        let (done, index) = tokio::select! {
            () = lost.cancelled(), if !r.abandon.is_cancelled() => {
                tracing::error!("leadership lost: stopping the dump and abandoning batches in flight");
                r.stop.cancel();
                r.abandon.cancel();
                shutting_down = true;
                continue;
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                r.stop.cancel();
                if r.gate.is_paused() {
                    // Nothing may reach the target: the batches in flight
                    // are replayed by whoever resumes.
                    tracing::info!("shutdown requested while paused: abandoning batches in flight (they will be replayed)");
                    r.abandon.cancel();
                } else {
                    tracing::info!(drain_timeout_s = opts.drain_timeout.as_secs(), "shutdown requested: finishing batches in flight");
                    drain.as_mut().reset(tokio::time::Instant::now() + opts.drain_timeout);
                }
                continue;
            }
            () = &mut drain, if shutting_down && !r.abandon.is_cancelled() => {
                tracing::warn!("drain timeout: abandoning batches in flight (they will be replayed)");
                r.abandon.cancel();
                continue;
            }
            done = first_finished(&mut r.stages) => done,
        };
        let (stage, _) = r.stages.swap_remove(index);
        let outcome = match done {
            Ok(result) => result,
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
            r.stop.cancel();
            r.abandon.cancel();
            failure.get_or_insert(error);
        }
    }
    failure
}

/// Stops the helpers, flushes the position, closes the loader.
async fn finish(r: Running, failure: Option<PipelineError>) -> Result<RunSummary, PipelineError> {
    r.abandon.cancel();
    for helper in r.helpers {
        let _ = helper.await;
    }
    r.flusher_stop.cancel();
    let flushed = flusher_outcome(r.flusher.await);
    r.loader.close().await;
    let summary = RunSummary {
        batches: r.stats.batches.load(Ordering::Relaxed),
        rows: r.stats.rows.load(Ordering::Relaxed),
        ddl: r.stats.ddl.load(Ordering::Relaxed),
        acknowledged: r.cache.acknowledged().map(|a| (a.batch_id, a.position)),
    };
    run_outcome(summary, failure, flushed)
}

/// What the flusher's end means for the run: a panic (or a cancelled task)
/// is an error like a failed write, since the last position it should have
/// stored is unknown.
fn flusher_outcome(
    joined: Result<Result<(), Arc<CoordError>>, tokio::task::JoinError>,
) -> Result<(), PipelineError> {
    match joined {
        Ok(outcome) => outcome.map_err(PipelineError::from),
        Err(join) => Err(PipelineError::Stage {
            stage: "position flusher",
            message: join.to_string(),
        }),
    }
}

/// The run's result: a stage's failure first (the flush failure is then
/// only logged), else the flush's.
fn run_outcome(
    summary: RunSummary,
    failure: Option<PipelineError>,
    flushed: Result<(), PipelineError>,
) -> Result<RunSummary, PipelineError> {
    if let Some(error) = failure {
        if let Err(flush) = flushed {
            tracing::error!(error = %flush, "final position flush failed; the next run replays from the last stored position");
        }
        return Err(error);
    }
    flushed?;
    Ok(summary)
}

/// The first stage task to finish, with its index.
async fn first_finished(
    stages: &mut [StageHandle],
) -> (
    Result<Result<(), PipelineError>, tokio::task::JoinError>,
    usize,
) {
    std::future::poll_fn(|cx| {
        for (i, (_, handle)) in stages.iter_mut().enumerate() {
            if let std::task::Poll::Ready(r) = std::pin::Pin::new(handle).poll(cx) {
                return std::task::Poll::Ready((r, i));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicked flusher ends the run with an error (never exit 0), and a
    /// stage's failure still wins over it.
    #[tokio::test]
    async fn a_panicked_flusher_fails_the_run() {
        let flusher: JoinHandle<Result<(), Arc<CoordError>>> =
            tokio::spawn(async { panic!("flusher bug") });
        let flushed = flusher_outcome(flusher.await);
        let Err(PipelineError::Stage { stage, message }) = &flushed else {
            panic!("a panicked flusher must be an error: {flushed:?}");
        };
        assert_eq!(*stage, "position flusher");
        assert!(message.contains("panicked"), "{message}");

        let run = run_outcome(RunSummary::default(), None, flushed);
        assert!(
            matches!(
                run,
                Err(PipelineError::Stage {
                    stage: "position flusher",
                    ..
                })
            ),
            "{run:?}"
        );

        let flusher: JoinHandle<Result<(), Arc<CoordError>>> =
            tokio::spawn(async { panic!("flusher bug") });
        let stage = PipelineError::Stage {
            stage: "load",
            message: "refused".into(),
        };
        let run = run_outcome(
            RunSummary::default(),
            Some(stage),
            flusher_outcome(flusher.await),
        );
        assert!(
            matches!(run, Err(PipelineError::Stage { stage: "load", .. })),
            "{run:?}"
        );
    }

    /// A clean flush and no failure is the run's summary.
    #[tokio::test]
    async fn a_clean_flush_returns_the_summary() {
        let flusher: JoinHandle<Result<(), Arc<CoordError>>> = tokio::spawn(async { Ok(()) });
        let summary = RunSummary {
            batches: 3,
            ..RunSummary::default()
        };
        let run = run_outcome(summary, None, flusher_outcome(flusher.await));
        assert_eq!(run.map(|s| s.batches).ok(), Some(3));
    }
}
