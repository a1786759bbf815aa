//! The worker every node with `transform` or `load` in `node.stages` runs:
//! claims tasks under its own lease, runs them and records the outcome (see
//! [`super`]'s docs).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::{Pipeline, Stage};
use sluice_coord::{BoardMirror, DataRef, Task, TaskBoard, TaskStage, TaskState, WorkerLease};
use sluice_core::retry::{retry, Retried, RetryPolicy};
use sluice_load::{Loader, TermFence};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::scheduler::POLL;
use crate::batch::{Batch, BatchBody};
use crate::error::PipelineError;
use crate::load::{Applier, APPLY_RETRY};
use crate::pipe::{self, PipeClient, PipeStore};
use crate::snapshot::CopyMark;
use crate::stats::LoadStats;
use crate::transform::{TransformConfig, Transformer};

/// How long a failed task's claim is held before it is given back.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Getting a worker lease: 250 ms doubling to 2 s, until shutdown.
const LEASE_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(250), Duration::from_secs(2));

/// Transform jobs one node runs at once.
const TRANSFORM_PARALLELISM: usize = 2;

/// Batches one Transform job claims together (one claim, one completion).
const TRANSFORM_GROUP: usize = 8;

/// Rows one Load job takes together at most (as the in-process Load
/// coalesces a backlog), in one claim, one apply and one completion.
const LOAD_GROUP_ROWS: u64 = 20_000;

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
    let mirror = BoardMirror::start(&shared.w.board, Arc::clone(&notify), watch_stop.clone());
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
        let outcome = work(
            &shared, &lease, transforms, loads, &mirror, &notify, &shutdown,
        )
        .await;
        lease.revoke().await;
        if let Err(e) = outcome {
            break Err(e);
        }
    };
    watch_stop.cancel();
    drop(mirror);
    if let Some((_, loader)) = shared.loader.lock().await.take() {
        loader.close().await;
    }
    result
}

/// Claims and runs tasks under `lease` until it is lost or `shutdown`.
///
/// Claims are made in groups (one etcd transaction each): a run of
/// consecutive transformed batches from `load_next` for Load, loaded as one
/// apply where they hold rows (as the in-process Load coalesces a backlog);
/// up to [`TRANSFORM_GROUP`] extracted batches per Transform job. The board
/// is read from this node's [`BoardMirror`], never per change.
async fn work(
    shared: &Arc<Shared>,
    lease: &WorkerLease,
    transforms: bool,
    loads: bool,
    mirror: &BoardMirror,
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
        let Some(board) = mirror.board() else {
            continue;
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
            let run = load_run(&board, term);
            if !run.is_empty() {
                if let Some(claimed) = shared
                    .w
                    .board
                    .claim_group(&run, TaskStage::Load, &shared.w.node_id, lease.id)
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
        if transforms {
            let mut slots = TRANSFORM_PARALLELISM.saturating_sub(
                busy.iter()
                    .filter(|(_, s)| *s == TaskStage::Transform)
                    .map(|(id, _)| *id)
                    .collect::<std::collections::HashSet<_>>()
                    .len()
                    .div_ceil(TRANSFORM_GROUP),
            );
            let mut free = board
                .tasks
                .iter()
                .filter(|(id, task)| {
                    task.record.state == TaskState::Extracted
                        && task.record.term == term
                        && !board.claims.contains_key(&(**id, TaskStage::Transform))
                        && !busy.contains(&(**id, TaskStage::Transform))
                })
                .map(|(_, t)| t.clone())
                .collect::<Vec<Task>>()
                .into_iter()
                .peekable();
            while slots > 0 && free.peek().is_some() {
                let group: Vec<Task> = free.by_ref().take(TRANSFORM_GROUP).collect();
                // All or none: another node may have claimed one meanwhile
                // (the next change shows which).
                if let Some(claimed) = shared
                    .w
                    .board
                    .claim_group(&group, TaskStage::Transform, &shared.w.node_id, lease.id)
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
                } else {
                    break;
                }
            }
        }
    };
    jobs_stop.cancel();
    while jobs.join_next().await.is_some() {}
    result
}

/// The run of consecutive transformed batches of `term` from `load_next`,
/// none claimed, up to [`LOAD_GROUP_ROWS`] rows (at least one batch).
fn load_run(board: &sluice_coord::Board, term: u64) -> Vec<Task> {
    let mut run = Vec::new();
    let Some(mut next) = board.load_next else {
        return run;
    };
    let mut rows = 0u64;
    while let Some(task) = board.tasks.get(&next) {
        let r = &task.record;
        if r.state != TaskState::Transformed
            || r.term != term
            || board.claims.contains_key(&(next, TaskStage::Load))
            || (!run.is_empty() && rows + r.rows > LOAD_GROUP_ROWS)
        {
            break;
        }
        rows += r.rows;
        run.push(task.clone());
        next += 1;
    }
    run
}

fn spawn_job(
    jobs: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    running: &Arc<Mutex<Vec<(u64, TaskStage)>>>,
    group: Vec<Task>,
    stage: TaskStage,
    stop: CancellationToken,
) {
    let ids: Vec<u64> = group.iter().map(|t| t.record.batch_id).collect();
    if let Ok(mut r) = running.lock() {
        r.extend(ids.iter().map(|&id| (id, stage)));
    }
    let shared = Arc::clone(shared);
    let running = Arc::clone(running);
    jobs.spawn(async move {
        let outcome = match stage {
            TaskStage::Transform => transform_group(&shared, &group, &stop).await,
            TaskStage::Load => load_group(&shared, &group, &stop).await,
        };
        if let Err(failure) = outcome {
            let board = &shared.w.board;
            let error = &failure.error;
            let first = ids.first().copied().unwrap_or_default();
            if is_definite(error) {
                let id = failure.batch_id.unwrap_or(first);
                tracing::error!(batch_id = id, stage = stage.name(), %error, "stage task failed");
                // The failing task is marked failed; the ones after it are
                // given back unchanged (the leader stops on the failure).
                let records: Vec<_> = group
                    .iter()
                    .map(|t| {
                        let mut r = t.record.clone();
                        if r.batch_id == id {
                            r.state = TaskState::Failed;
                            r.error = Some(format!(
                                "{} on node {}: {error}",
                                stage.name(),
                                shared.w.node_id
                            ));
                            r.updated_unix_ms = sluice_core::time::unix_ms();
                        }
                        r
                    })
                    .collect();
                let _ = board.complete_group(&group, stage, &records).await;
            } else {
                tracing::warn!(batch_id = first, batches = ids.len(), stage = stage.name(), %error, "stage task failed; releasing it for another attempt");
                // Backoff: the claims keep these tasks from being retried at
                // once, here or elsewhere.
                tokio::time::sleep(RETRY_PAUSE).await;
                for &id in &ids {
                    let _ = board.release(id, stage).await;
                }
            }
        }
        if let Ok(mut r) = running.lock() {
            r.retain(|(id, s)| !(*s == stage && ids.contains(id)));
        }
    });
}

/// A group's failure, with the batch it is about when known.
struct GroupFailure {
    batch_id: Option<u64>,
    error: PipelineError,
}

impl From<PipelineError> for GroupFailure {
    fn from(error: PipelineError) -> Self {
        GroupFailure {
            batch_id: None,
            error,
        }
    }
}

impl From<sluice_coord::CoordError> for GroupFailure {
    fn from(error: sluice_coord::CoordError) -> Self {
        GroupFailure::from(PipelineError::from(error))
    }
}

fn is_definite(error: &PipelineError) -> bool {
    use sluice_core::Classify as _;
    match error {
        PipelineError::Load(e) if e.is_fenced_out() => false,
        e => !e.class().is_transient(),
    }
}

/// The batch behind `data` and its snapshot mark: from this node's store,
/// or fetched.
async fn input(
    shared: &Shared,
    data: &DataRef,
) -> Result<(Batch, Option<CopyMark>), PipelineError> {
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
    Ok(pipe::decode(
        &frame,
        shared.w.client.max_transfer(),
        &data.node,
    )?)
}

/// Transforms a claimed group, one batch after the other, and records all
/// of them in one transaction.
async fn transform_group(
    shared: &Shared,
    group: &[Task],
    stop: &CancellationToken,
) -> Result<(), GroupFailure> {
    let mut done = Vec::with_capacity(group.len());
    let mut paths = Vec::with_capacity(group.len());
    for task in group {
        let record = &task.record;
        let fail = |error| GroupFailure {
            batch_id: Some(record.batch_id),
            error,
        };
        let (mut batch, copy) = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            b = input(shared, &record.extracted) => b.map_err(fail)?,
        };
        {
            let mut transformer = shared.transformer.lock().map_err(|_| {
                fail(PipelineError::Stage {
                    stage: "transform",
                    message: "transformer lock poisoned".into(),
                })
            })?;
            transformer.transform(&mut batch).map_err(fail)?;
        }
        let frame = pipe::encode(&batch, copy.as_ref()).map_err(|e| fail(e.into()))?;
        let path = PipeStore::path(record.term, record.batch_id, "transformed");
        let data = DataRef {
            node: shared.w.node_id.clone(),
            url: format!("{}{path}", shared.w.advertise),
            bytes: frame.len() as u64,
            crc32: pipe::frame_crc(&frame),
        };
        shared.w.store.put(path.clone(), frame);
        paths.push(path);
        let mut next = record.clone();
        next.state = TaskState::Transformed;
        next.transformed = Some(data);
        done.push(next);
    }
    if !shared.transform_delay.is_zero() {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(shared.transform_delay) => {}
        }
    }
    if stop.is_cancelled() {
        return Ok(());
    }
    let now = sluice_core::time::unix_ms();
    for r in &mut done {
        r.updated_unix_ms = now;
    }
    if shared
        .w
        .board
        .complete_group(group, TaskStage::Transform, &done)
        .await?
    {
        for r in &done {
            tracing::info!(
                batch_id = r.batch_id,
                rows = r.rows,
                at_ms = now,
                "batch transformed"
            );
        }
    } else {
        shared.w.store.retain(|p| !paths.iter().any(|q| q == p));
    }
    Ok(())
}

/// Loads a claimed run of consecutive batches: row batches together (one
/// apply, one checkpoint: the last's), DDL on its own, in order; then
/// records all of them in one transaction, which advances `load_next`.
async fn load_group(
    shared: &Shared,
    group: &[Task],
    stop: &CancellationToken,
) -> Result<(), GroupFailure> {
    let mut batches = Vec::with_capacity(group.len());
    for task in group {
        let record = &task.record;
        let Some(data) = &record.transformed else {
            return Ok(());
        };
        let fetched = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            b = input(shared, data) => b,
        };
        match fetched {
            Ok(b) => batches.push(b),
            Err(PipelineError::Pipe(e)) if e.is_lost() => {
                // Transform it again from the leader's copy; the batches
                // before it are loaded now, those after it given back.
                tracing::warn!(batch_id = record.batch_id, error = %e, "transformed batch lost; sending it back to transform");
                let keep = batches.len();
                let loaded = load_fetched(shared, &group[..keep], batches, stop).await?;
                if !loaded {
                    return Ok(());
                }
                let now = sluice_core::time::unix_ms();
                let records: Vec<_> = group
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let mut r = t.record.clone();
                        if i < keep {
                            r.state = TaskState::Loaded;
                            r.loaded_by = Some(shared.w.node_id.clone());
                        } else if i == keep {
                            r.state = TaskState::Extracted;
                            r.transformed = None;
                        }
                        r.updated_unix_ms = now;
                        r
                    })
                    .collect();
                shared
                    .w
                    .board
                    .complete_group(group, TaskStage::Load, &records)
                    .await?;
                return Ok(());
            }
            Err(e) => {
                return Err(GroupFailure {
                    batch_id: Some(record.batch_id),
                    error: e,
                })
            }
        }
    }
    let rows: u64 = batches.iter().map(|(b, _)| b.rows() as u64).sum();
    if !load_fetched(shared, group, batches, stop).await? {
        return Ok(());
    }
    let now = sluice_core::time::unix_ms();
    let records: Vec<_> = group
        .iter()
        .map(|t| {
            let mut r = t.record.clone();
            r.state = TaskState::Loaded;
            r.loaded_by = Some(shared.w.node_id.clone());
            r.updated_unix_ms = now;
            r
        })
        .collect();
    if shared
        .w
        .board
        .complete_group(group, TaskStage::Load, &records)
        .await?
    {
        shared
            .w
            .stats
            .batches
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        shared.w.stats.rows.fetch_add(rows, Ordering::Relaxed);
        for r in &records {
            tracing::info!(
                batch_id = r.batch_id,
                rows = r.rows,
                replay = r.replay,
                with = group.len(),
                at_ms = now,
                "batch loaded"
            );
        }
    }
    Ok(())
}

/// Applies `batches` (the fetched inputs of `group`, in order): row batches
/// in a row together, DDL and snapshot chunks alone. `Ok(false)` when
/// stopped.
async fn load_fetched(
    shared: &Shared,
    group: &[Task],
    batches: Vec<(Batch, Option<CopyMark>)>,
    stop: &CancellationToken,
) -> Result<bool, GroupFailure> {
    let Some(first) = group.first() else {
        return Ok(true);
    };
    let loader = epoch_loader(shared, first.record.term).await?;
    let applier = Applier {
        pipeline: shared.w.pipeline.name.clone(),
        loader,
        ddl: shared.w.pipeline.load.ddl,
        stats: Arc::clone(&shared.w.stats),
        status: crate::status::NodeStatus::default(),
        retry: APPLY_RETRY,
        gate: shared.w.gate.clone(),
    };
    let mut pending: Vec<(Batch, bool)> = Vec::new();
    for ((mut batch, copy), task) in batches.into_iter().zip(group) {
        let replay = task.record.replay;
        if let Some(mark) = copy {
            if !apply_rows(&applier, &mut pending, stop).await? {
                return Ok(false);
            }
            batch.id = task.record.batch_id;
            if !load_chunk(&applier, &batch, &mark, replay, stop).await? {
                return Ok(false);
            }
            continue;
        }
        if matches!(batch.body, BatchBody::Ddl(_)) {
            if !apply_rows(&applier, &mut pending, stop).await? {
                return Ok(false);
            }
            let id = batch.id;
            let applied =
                applier
                    .apply(&batch, replay, stop)
                    .await
                    .map_err(|error| GroupFailure {
                        batch_id: Some(id),
                        error,
                    })?;
            if !applied {
                return Ok(false);
            }
            continue;
        }
        batch.id = task.record.batch_id;
        pending.push((batch, replay));
    }
    apply_rows(&applier, &mut pending, stop).await
}

/// Applies one snapshot chunk's batch as the in-process Load does: its
/// progress first (in flight; a keyless table cleared, a re-copied range
/// deleted, a restarted copy's progress reset), the rows with their
/// checkpoint, then the chunk recorded — every write under this epoch's
/// term fence. A batch claimed again whose rows the checkpoint shows
/// committed is only recorded (clearing or inserting again could lose or
/// duplicate keyless rows).
async fn load_chunk(
    applier: &Applier,
    batch: &Batch,
    mark: &CopyMark,
    replay: bool,
    stop: &CancellationToken,
) -> Result<bool, GroupFailure> {
    let fail = |error: PipelineError| GroupFailure {
        batch_id: Some(batch.id),
        error,
    };
    let committed = replay
        && applier
            .committed(batch.id)
            .await
            .map_err(|e| fail(e.into()))?;
    if !committed {
        if !crate::load::before_chunk(applier, Some(mark), stop)
            .await
            .map_err(fail)?
        {
            return Ok(false);
        }
        if !applier.apply(batch, replay, stop).await.map_err(fail)? {
            return Ok(false);
        }
    }
    let recorded = crate::load::after_chunk(applier, mark, stop)
        .await
        .map_err(fail)?;
    if recorded {
        tracing::debug!(batch_id = batch.id, table = %mark.table, rows = mark.rows, complete = mark.complete, again = committed, "snapshot chunk loaded");
    }
    Ok(recorded)
}

/// Applies the row batches in `pending` as one (emptying it).
async fn apply_rows(
    applier: &Applier,
    pending: &mut Vec<(Batch, bool)>,
    stop: &CancellationToken,
) -> Result<bool, GroupFailure> {
    if pending.is_empty() {
        return Ok(true);
    }
    let replay = pending.iter().any(|(_, r)| *r);
    let mut run: Vec<Batch> = pending.drain(..).map(|(b, _)| b).collect();
    let (first, rest) = run.split_at_mut(1);
    let combined = crate::load::combine(&mut first[0], rest.iter_mut());
    let id = combined.id;
    applier
        .apply(&combined, replay, stop)
        .await
        .map_err(|error| GroupFailure {
            batch_id: Some(id),
            error,
        })
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
