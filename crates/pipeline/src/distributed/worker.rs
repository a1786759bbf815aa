//! The worker every node with `transform` or `load` in `node.stages` runs:
//! claims tasks under its own lease, runs them and records the outcome (see
//! [`super`]'s docs).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::{Pipeline, Stage};
use sluice_coord::{DataRef, Task, TaskBoard, TaskStage, TaskState, WorkerLease};
use sluice_core::retry::{retry, Retried, RetryPolicy};
use sluice_load::{Loader, TermFence};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::scheduler::POLL;
use crate::batch::Batch;
use crate::error::PipelineError;
use crate::load::{Applier, APPLY_RETRY};
use crate::pipe::{self, PipeClient, PipeStore};
use crate::stats::LoadStats;
use crate::transform::{TransformConfig, Transformer};

/// How long a failed task's claim is held before it is given back.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Getting a worker lease: 250 ms doubling to 2 s, until shutdown.
const LEASE_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(250), Duration::from_secs(2));

/// Transform tasks one node runs at once.
const TRANSFORM_PARALLELISM: usize = 2;

/// A worker's settings.
pub struct Worker {
    pub pipeline: Pipeline,
    pub node_id: String,
    pub advertise: String,
    pub board: TaskBoard,
    pub store: PipeStore,
    pub client: PipeClient,
    pub lease_ttl: Duration,
    pub request_timeout: Duration,
    pub stats: Arc<LoadStats>,
    /// Holds loads while the pipeline is paused.
    pub gate: crate::control::Gate,
}

struct Shared {
    w: Worker,
    transformer: Mutex<Transformer>,
    /// The loader of the current epoch's term.
    loader: tokio::sync::Mutex<Option<(u64, Arc<Loader>)>>,
    /// Test-only fault injection: delay before completing a transform
    /// (`SLUICE_TEST_TRANSFORM_DELAY_MS`), to make batches reach Load out
    /// of order across nodes.
    transform_delay: Duration,
}

/// Claims and runs Transform/Load tasks until `shutdown`.
pub async fn run_worker(w: Worker, shutdown: CancellationToken) -> Result<(), PipelineError> {
    let transforms = w.pipeline.node.runs(Stage::Transform);
    let loads = w.pipeline.node.runs(Stage::Load);
    if !transforms && !loads {
        return Ok(());
    }
    let transformer = Transformer::new(TransformConfig {
        filter: w.pipeline.filter.clone(),
        routes: w.pipeline.routes.clone(),
        columns: w.pipeline.columns.clone(),
    });
    let transform_delay = std::env::var("SLUICE_TEST_TRANSFORM_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let shared = Arc::new(Shared {
        w,
        transformer: Mutex::new(transformer),
        loader: tokio::sync::Mutex::new(None),
        transform_delay,
    });
    tracing::info!(
        node = %shared.w.node_id,
        transform = transforms,
        load = loads,
        "stage worker started"
    );
    let notify = Arc::new(Notify::new());
    let watch_stop = CancellationToken::new();
    let watcher = shared
        .w
        .board
        .spawn_watcher(Arc::clone(&notify), watch_stop.clone());
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        let granted = retry(
            &LEASE_RETRY,
            shutdown.cancelled(),
            |error: &sluice_coord::CoordError, a| {
                tracing::warn!(%error, retry_in_ms = a.wait.as_millis() as u64, "stage worker: cannot get a lease; retrying");
            },
            || {
                WorkerLease::grant(
                    shared.w.board.client(),
                    shared.w.lease_ttl,
                    shared.w.request_timeout,
                )
            },
        )
        .await;
        let lease = match granted {
            Retried::Done(l) => l,
            Retried::Stopped => break Ok(()),
            Retried::Failed(e) => break Err(e.into()),
        };
        let outcome = work(&shared, &lease, transforms, loads, &notify, &shutdown).await;
        lease.revoke().await;
        if let Err(e) = outcome {
            break Err(e);
        }
    };
    watch_stop.cancel();
    watcher.abort();
    if let Some((_, loader)) = shared.loader.lock().await.take() {
        loader.close().await;
    }
    result
}

/// Claims and runs tasks under `lease` until it is lost or `shutdown`.
async fn work(
    shared: &Arc<Shared>,
    lease: &WorkerLease,
    transforms: bool,
    loads: bool,
    notify: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    // Jobs stop when the lease can no longer be guaranteed: their claims
    // may be someone else's by then.
    let jobs_stop = CancellationToken::new();
    let mut jobs: JoinSet<()> = JoinSet::new();
    let running: Arc<Mutex<Vec<(u64, TaskStage)>>> = Arc::default();
    let mut ticker = tokio::time::interval(POLL);
    let result = loop {
        let notified = notify.notified();
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = lease.lost.cancelled() => {
                tracing::warn!("stage worker lost its lease: dropping claimed work");
                break Ok(());
            }
            () = notified => {}
            _ = ticker.tick() => {}
            Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
        }
        let board = match shared.w.board.snapshot().await {
            Ok(b) => b,
            Err(error) => {
                tracing::debug!(%error, "stage worker: reading the task board failed");
                continue;
            }
        };
        // Frames this node produced for tasks that are gone or loaded (a
        // frame is stored before its task says so: keep it meanwhile).
        shared.w.store.retain(|path| match pipe::parse_path(path) {
            Some((term, id, "transformed")) => {
                board.term() == Some(term)
                    && board
                        .tasks
                        .get(&id)
                        .is_some_and(|t| t.record.state != TaskState::Loaded)
            }
            _ => true,
        });
        let Some(term) = board.term() else {
            continue;
        };
        let busy: Vec<(u64, TaskStage)> = running.lock().map(|r| r.clone()).unwrap_or_default();
        if loads && !busy.iter().any(|(_, s)| *s == TaskStage::Load) {
            if let Some(task) = board.load_next.and_then(|n| board.tasks.get(&n)) {
                if task.record.state == TaskState::Transformed
                    && task.record.term == term
                    && !board
                        .claims
                        .contains_key(&(task.record.batch_id, TaskStage::Load))
                {
                    if let Some(claimed) = shared
                        .w
                        .board
                        .claim(task, TaskStage::Load, &shared.w.node_id, lease.id)
                        .await
                        .unwrap_or(None)
                    {
                        spawn_job(
                            &mut jobs,
                            shared,
                            &running,
                            claimed,
                            TaskStage::Load,
                            jobs_stop.child_token(),
                        );
                    }
                }
            }
        }
        if transforms {
            let mut slots = TRANSFORM_PARALLELISM.saturating_sub(
                busy.iter()
                    .filter(|(_, s)| *s == TaskStage::Transform)
                    .count(),
            );
            for (id, task) in &board.tasks {
                if slots == 0 {
                    break;
                }
                if task.record.state != TaskState::Extracted
                    || task.record.term != term
                    || board.claims.contains_key(&(*id, TaskStage::Transform))
                    || busy.contains(&(*id, TaskStage::Transform))
                {
                    continue;
                }
                if let Some(claimed) = shared
                    .w
                    .board
                    .claim(task, TaskStage::Transform, &shared.w.node_id, lease.id)
                    .await
                    .unwrap_or(None)
                {
                    slots -= 1;
                    spawn_job(
                        &mut jobs,
                        shared,
                        &running,
                        claimed,
                        TaskStage::Transform,
                        jobs_stop.child_token(),
                    );
                }
            }
        }
    };
    jobs_stop.cancel();
    while jobs.join_next().await.is_some() {}
    result
}

fn spawn_job(
    jobs: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    running: &Arc<Mutex<Vec<(u64, TaskStage)>>>,
    task: Task,
    stage: TaskStage,
    stop: CancellationToken,
) {
    let id = task.record.batch_id;
    if let Ok(mut r) = running.lock() {
        r.push((id, stage));
    }
    let shared = Arc::clone(shared);
    let running = Arc::clone(running);
    jobs.spawn(async move {
        let outcome = match stage {
            TaskStage::Transform => transform_task(&shared, &task, &stop).await,
            TaskStage::Load => load_task(&shared, &task, &stop).await,
        };
        if let Err(error) = outcome {
            let board = &shared.w.board;
            if is_definite(&error) {
                tracing::error!(batch_id = id, stage = stage.name(), %error, "stage task failed");
                let mut failed = task.record.clone();
                failed.state = TaskState::Failed;
                failed.error = Some(format!("{} on node {}: {error}", stage.name(), shared.w.node_id));
                failed.updated_unix_ms = sluice_core::time::unix_ms();
                let _ = board.complete(&task, stage, &failed).await;
            } else {
                tracing::warn!(batch_id = id, stage = stage.name(), %error, "stage task failed; releasing it for another attempt");
                // Backoff: the claim keeps this task from being retried at
                // once, here or elsewhere.
                tokio::time::sleep(RETRY_PAUSE).await;
                let _ = board.release(id, stage).await;
            }
        }
        if let Ok(mut r) = running.lock() {
            r.retain(|x| *x != (id, stage));
        }
    });
}

fn is_definite(error: &PipelineError) -> bool {
    use sluice_core::Classify as _;
    match error {
        PipelineError::Load(e) if e.is_fenced_out() => false,
        e => !e.class().is_transient(),
    }
}

/// The batch behind `data`: from this node's store, or fetched.
async fn input(shared: &Shared, data: &DataRef) -> Result<Batch, PipelineError> {
    let frame = if data.node == shared.w.node_id {
        let path = data
            .url
            .find("/pipe/")
            .map_or(data.url.as_str(), |i| &data.url[i..]);
        match shared.w.store.get(path) {
            Some(f) => f,
            None => shared.w.client.fetch(&data.url, data.crc32).await?,
        }
    } else {
        shared.w.client.fetch(&data.url, data.crc32).await?
    };
    let batch = pipe::decode(&frame, shared.w.client.max_transfer(), &data.node)?;
    Ok(batch)
}

async fn transform_task(
    shared: &Shared,
    task: &Task,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    let record = &task.record;
    let mut batch = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        b = input(shared, &record.extracted) => b?,
    };
    {
        let mut transformer = shared
            .transformer
            .lock()
            .map_err(|_| PipelineError::Stage {
                stage: "transform",
                message: "transformer lock poisoned".into(),
            })?;
        transformer.transform(&mut batch)?;
    }
    let frame = pipe::encode(&batch)?;
    let path = PipeStore::path(record.term, record.batch_id, "transformed");
    let data = DataRef {
        node: shared.w.node_id.clone(),
        url: format!("{}{path}", shared.w.advertise),
        bytes: frame.len() as u64,
        crc32: pipe::frame_crc(&frame),
    };
    shared.w.store.put(path.clone(), frame);
    if !shared.transform_delay.is_zero() {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(shared.transform_delay) => {}
        }
    }
    if stop.is_cancelled() {
        return Ok(());
    }
    let mut done = record.clone();
    done.state = TaskState::Transformed;
    done.transformed = Some(data);
    done.updated_unix_ms = sluice_core::time::unix_ms();
    if shared
        .w
        .board
        .complete(task, TaskStage::Transform, &done)
        .await?
    {
        tracing::info!(
            batch_id = record.batch_id,
            rows = record.rows,
            at_ms = done.updated_unix_ms,
            "batch transformed"
        );
    } else {
        shared.w.store.retain(|p| p != path);
    }
    Ok(())
}

async fn load_task(
    shared: &Shared,
    task: &Task,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    let record = &task.record;
    let Some(data) = &record.transformed else {
        return Ok(());
    };
    let batch = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        b = input(shared, data) => b,
    };
    let batch = match batch {
        Ok(b) => b,
        Err(PipelineError::Pipe(e)) if e.is_lost() => {
            // Transform it again from the leader's copy.
            tracing::warn!(batch_id = record.batch_id, error = %e, "transformed batch lost; sending it back to transform");
            let mut again = record.clone();
            again.state = TaskState::Extracted;
            again.transformed = None;
            again.updated_unix_ms = sluice_core::time::unix_ms();
            shared
                .w
                .board
                .complete(task, TaskStage::Load, &again)
                .await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let loader = epoch_loader(shared, record.term).await?;
    let applier = Applier {
        pipeline: shared.w.pipeline.name.clone(),
        loader,
        ddl: shared.w.pipeline.load.ddl,
        stats: Arc::clone(&shared.w.stats),
        status: crate::status::NodeStatus::default(),
        retry: APPLY_RETRY,
        gate: shared.w.gate.clone(),
    };
    if !applier.apply(&batch, record.replay, stop).await? {
        return Ok(());
    }
    let mut done = record.clone();
    done.state = TaskState::Loaded;
    done.loaded_by = Some(shared.w.node_id.clone());
    done.updated_unix_ms = sluice_core::time::unix_ms();
    if shared
        .w
        .board
        .complete(task, TaskStage::Load, &done)
        .await?
    {
        shared.w.stats.batches.fetch_add(1, Ordering::Relaxed);
        shared
            .w
            .stats
            .rows
            .fetch_add(batch.rows() as u64, Ordering::Relaxed);
        tracing::info!(
            batch_id = record.batch_id,
            rows = record.rows,
            replay = record.replay,
            at_ms = done.updated_unix_ms,
            "batch loaded"
        );
    }
    Ok(())
}

/// The loader writing under `term` (reconnected when the epoch changes).
async fn epoch_loader(shared: &Shared, term: u64) -> Result<Arc<Loader>, PipelineError> {
    let mut slot = shared.loader.lock().await;
    if let Some((t, loader)) = slot.as_ref() {
        if *t == term {
            return Ok(Arc::clone(loader));
        }
    }
    if let Some((_, old)) = slot.take() {
        old.close().await;
    }
    let fence = TermFence {
        pipeline: shared.w.pipeline.name.clone(),
        term: i64::try_from(term).unwrap_or(i64::MAX),
        node: shared.w.node_id.clone(),
    };
    let loader = Arc::new(crate::open::loader_with_term(&shared.w.pipeline, Some(fence)).await?);
    *slot = Some((term, Arc::clone(&loader)));
    Ok(loader)
}
