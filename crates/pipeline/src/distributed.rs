//! Distributed stages (Otter's SEDA model): Transform and Load as tasks
//! that any node of the pipeline may claim, with the batch data moving
//! between nodes over the stage [`pipe`](crate::pipe).
//!
//! # Who does what
//!
//! * The **active node** (the election's leader) runs Select and Extract,
//!   which cut and number the batches — one place assigns `batch_id`s — and
//!   the **scheduler** ([`schedule`]): it publishes each extracted batch as
//!   a task ([`sluice_coord::tasks`]), keeps at most `stages.window`
//!   batches in flight, acknowledges loaded batches in order (positions are
//!   written exactly as in one process: by the leader, fenced) and handles
//!   failures.
//! * Every node whose `node.stages` includes `transform` or `load` runs a
//!   **worker** ([`run_worker`]), leader or not: it claims the tasks its
//!   stages allow under its own lease, runs them and records the outcome.
//!   Load is claimed strictly in `batch_id` order (the board's `load_next`).
//! * Nodes without `select` in `node.stages` still take part in the
//!   election — a pipeline must go on when every select node is gone — but
//!   campaign only after an extra `standby_delay`, so a select node wins
//!   whenever one is alive.
//!
//! # Failures
//!
//! * A worker that dies loses its lease; its claims vanish with it and the
//!   task is claimable again. Transform's input (the extracted batch) stays
//!   on the leader until the batch is acknowledged, so when the node
//!   holding a *transformed* batch disappears, the scheduler sends the task
//!   back to `extracted` and another node transforms it again.
//! * A load claimed again after its loader vanished is applied with replay
//!   tolerance: the first loader may have committed part of it (Load is
//!   idempotent; the checkpoint commits with the keyless rows).
//! * A task claimed for longer than `stages.task_timeout`, or an epoch
//!   replaced under the scheduler, rolls the pipeline back: the term
//!   restarts from the last acknowledged position with a new epoch, whose
//!   term fences every older worker out of the target.
//! * A definite failure of a stage on any node is recorded in the task and
//!   stops the pipeline on the leader with that message.
//! * A worker cut off from etcd drops its claimed work when its lease can
//!   no longer be guaranteed (2/3 of the TTL after the last renewal, as the
//!   leader does), a third of a TTL before anyone else can claim it. As
//!   with the leader, a statement already sent to the target may still
//!   commit after that; an epoch change (new leader or rollback) fences
//!   such a worker out of the target completely.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::{Pipeline, Stage};
use sluice_coord::{
    AnyPositionStore, Board, DataRef, Fence, PositionCache, Task, TaskBoard, TaskRecord, TaskStage,
    TaskState, WorkerLease,
};
use sluice_core::Position;
use sluice_load::{Loader, TermFence};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batch::{is_before, Batch};
use crate::channel::Receiver;
use crate::error::PipelineError;
use crate::load::{Applier, APPLY_RETRY};
use crate::pipe::{self, PipeClient, PipeStore};
use crate::stats::LoadStats;
use crate::transform::{TransformConfig, Transformer};

/// How often boards are re-read without a watch event.
const POLL: Duration = Duration::from_millis(250);

/// How long a failed task's claim is held before it is given back.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Transform tasks one node runs at once.
const TRANSFORM_PARALLELISM: usize = 2;

/// What the scheduler of one epoch works with.
pub struct Scheduler {
    pub board: TaskBoard,
    pub fence: Fence,
    pub term: u64,
    pub node_id: String,
    /// `http://host:port` of this node's pipe.
    pub advertise: String,
    pub store: PipeStore,
    pub cache: PositionCache<AnyPositionStore>,
    pub window: usize,
    pub horizon: Option<Position>,
    pub task_timeout: Duration,
    pub stats: Arc<LoadStats>,
    /// Id of the last batch acknowledged (read by Extract).
    pub acked: Arc<std::sync::atomic::AtomicU64>,
}

struct InFlight {
    end: Position,
    timestamp: u32,
    rows: u64,
    published_ms: u64,
    /// The last time a warning said nobody claims it.
    warned_ms: u64,
}

/// Publishes Extract's batches as tasks and acknowledges them once loaded,
/// in order, until the input closes and every task is acknowledged, or
/// `abandon`.
pub async fn schedule(
    s: Scheduler,
    mut rx: Receiver<Batch>,
    abandon: CancellationToken,
) -> Result<(), PipelineError> {
    let notify = Arc::new(Notify::new());
    let watch_stop = CancellationToken::new();
    let watcher = s
        .board
        .spawn_watcher(Arc::clone(&notify), watch_stop.clone());
    let result = schedule_inner(&s, &mut rx, &abandon, &notify).await;
    // etcd trouble that outlasted the request timeouts: start the term over
    // rather than stop the node (the lease keeper decides when the term
    // itself is lost).
    let result = result.map_err(|e| {
        use sluice_core::Classify as _;
        if e.class().is_transient() && !matches!(e, PipelineError::Rollback { .. }) {
            PipelineError::Rollback {
                reason: e.to_string(),
            }
        } else {
            e
        }
    });
    watch_stop.cancel();
    watcher.abort();
    // This epoch's frames are of no use to anyone any more.
    let prefix = format!("/pipe/{}/", s.term);
    s.store.retain(|p| !p.starts_with(&prefix));
    result
}

async fn schedule_inner(
    s: &Scheduler,
    rx: &mut Receiver<Batch>,
    abandon: &CancellationToken,
    notify: &Notify,
) -> Result<(), PipelineError> {
    let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut input_open = true;
    let mut ticker = tokio::time::interval(POLL);
    loop {
        if !input_open && in_flight.is_empty() {
            return Ok(());
        }
        let notified = notify.notified();
        tokio::select! {
            () = abandon.cancelled() => return Ok(()),
            msg = rx.recv(), if input_open && in_flight.len() < s.window => {
                match msg {
                    None => input_open = false,
                    Some(sized) => {
                        let batch = sized.into_inner();
                        let meta = publish(s, &batch).await?;
                        in_flight.insert(batch.id, meta);
                    }
                }
                continue;
            }
            () = notified => {}
            _ = ticker.tick() => {}
        }
        if in_flight.is_empty() {
            continue;
        }
        let board = match s.board.snapshot().await {
            Ok(b) => b,
            Err(error) => {
                // The lease keeper decides when etcd trouble ends the term.
                tracing::warn!(%error, "reading the task board failed; retrying");
                continue;
            }
        };
        if board.term() != Some(s.term) {
            return Err(PipelineError::Rollback {
                reason: format!(
                    "the task board's epoch is {:?}, not this term's {}",
                    board.term(),
                    s.term
                ),
            });
        }
        supervise(s, &board, &mut in_flight).await?;
    }
}

/// Encodes `batch`, keeps it in the pipe and publishes its task.
async fn publish(s: &Scheduler, batch: &Batch) -> Result<InFlight, PipelineError> {
    let frame = pipe::encode(batch)?;
    let path = PipeStore::path(s.term, batch.id, "extracted");
    let data = DataRef {
        node: s.node_id.clone(),
        url: format!("{}{path}", s.advertise),
        bytes: frame.len() as u64,
        crc32: pipe::frame_crc(&frame),
    };
    s.store.put(path, frame);
    let now = sluice_core::time::unix_ms();
    let record = TaskRecord {
        term: s.term,
        batch_id: batch.id,
        state: TaskState::Extracted,
        extracted: data,
        transformed: None,
        rows: batch.rows() as u64,
        replay: s
            .horizon
            .as_ref()
            .is_some_and(|h| is_before(&batch.start, h)),
        load_attempts: 0,
        loaded_by: None,
        error: None,
        created_unix_ms: now,
        updated_unix_ms: now,
    };
    s.board.publish(&s.fence, &record).await?;
    tracing::debug!(batch_id = batch.id, rows = record.rows, "batch published");
    Ok(InFlight {
        end: batch.end.clone(),
        timestamp: batch.timestamp,
        rows: record.rows,
        published_ms: now,
        warned_ms: 0,
    })
}

/// Acknowledges loaded batches in order and repairs lost work.
async fn supervise(
    s: &Scheduler,
    board: &Board,
    in_flight: &mut BTreeMap<u64, InFlight>,
) -> Result<(), PipelineError> {
    let now = sluice_core::time::unix_ms();
    let timeout_ms = s.task_timeout.as_millis() as u64;
    // Acknowledge from the front while loaded.
    while let Some((&id, _)) = in_flight.first_key_value() {
        let Some(task) = board.tasks.get(&id) else {
            return Err(PipelineError::Rollback {
                reason: format!("the task of batch {id} vanished from the board"),
            });
        };
        if task.record.state != TaskState::Loaded {
            break;
        }
        let Some(meta) = in_flight.remove(&id) else {
            break;
        };
        s.cache.ack(id, meta.end)?;
        s.acked.store(id, Ordering::Relaxed);
        s.stats.batches.fetch_add(1, Ordering::Relaxed);
        s.stats.rows.fetch_add(meta.rows, Ordering::Relaxed);
        s.stats
            .last_event_time
            .store(u64::from(meta.timestamp), Ordering::Relaxed);
        s.board.remove(&s.fence, id).await?;
        s.store
            .retain(|p| p != PipeStore::path(s.term, id, "extracted"));
        tracing::debug!(
            batch_id = id,
            loaded_by = ?task.record.loaded_by,
            "batch acknowledged"
        );
    }
    for (&id, meta) in in_flight.iter_mut() {
        let Some(task) = board.tasks.get(&id) else {
            continue;
        };
        let record = &task.record;
        if record.state == TaskState::Failed {
            return Err(PipelineError::Remote {
                batch_id: id,
                message: record
                    .error
                    .clone()
                    .unwrap_or_else(|| "a stage failed".into()),
            });
        }
        for stage in [TaskStage::Transform, TaskStage::Load] {
            if let Some(claim) = board.claims.get(&(id, stage)) {
                let age = now.saturating_sub(claim.record.since_unix_ms);
                if age > timeout_ms {
                    return Err(PipelineError::Rollback {
                        reason: format!(
                            "{} of batch {id} claimed by node {} made no progress for {} s (stages.task_timeout)",
                            stage.name(),
                            claim.record.node,
                            age / 1000
                        ),
                    });
                }
            }
        }
        // Transformed data on a node that is gone: transform it again
        // from the leader's copy.
        if record.state == TaskState::Transformed
            && !board.claims.contains_key(&(id, TaskStage::Load))
        {
            if let Some(data) = &record.transformed {
                if !board.nodes.contains(&data.node) {
                    let mut again = record.clone();
                    again.state = TaskState::Extracted;
                    again.transformed = None;
                    again.updated_unix_ms = now;
                    if s.board.reset(&s.fence, task, &again).await? {
                        tracing::warn!(
                            batch_id = id,
                            node = %data.node,
                            "the node holding this transformed batch is gone; transforming it again"
                        );
                    }
                    continue;
                }
            }
        }
        let waiting = match record.state {
            TaskState::Extracted => !board.claims.contains_key(&(id, TaskStage::Transform)),
            TaskState::Transformed => {
                board.load_next == Some(id) && !board.claims.contains_key(&(id, TaskStage::Load))
            }
            _ => false,
        };
        if waiting
            && now.saturating_sub(record.updated_unix_ms.max(meta.published_ms)) > timeout_ms
            && now.saturating_sub(meta.warned_ms) > timeout_ms
        {
            meta.warned_ms = now;
            let stage = if record.state == TaskState::Extracted {
                "transform"
            } else {
                "load"
            };
            tracing::warn!(
                batch_id = id,
                stage,
                "no node has claimed this batch for stages.task_timeout: is a node with `{stage}` in node.stages running?"
            );
        }
    }
    Ok(())
}

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
    let mut backoff = Duration::from_millis(250);
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        let lease = match WorkerLease::grant(
            shared.w.board.client(),
            shared.w.lease_ttl,
            shared.w.request_timeout,
        )
        .await
        {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "stage worker: cannot get a lease; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
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

/// What a leader's term needs of this node's distributed stages.
#[derive(Clone)]
pub struct TermStages {
    pub board: TaskBoard,
    pub store: PipeStore,
    pub advertise: String,
    pub window: usize,
    pub task_timeout: Duration,
}

/// This node's stage pipe and worker, running for the whole process.
pub struct NodeStages {
    term: TermStages,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), crate::pipe::PipeError>>,
    worker: tokio::task::JoinHandle<Result<(), PipelineError>>,
}

impl NodeStages {
    /// Binds the pipe (`stages.listen`) and starts the worker.
    pub async fn start(
        pipeline: &Pipeline,
        settings: &sluice_config::StagesSettings,
        node_id: &str,
        client: etcd_client::Client,
        keys: sluice_coord::PipelineKeys,
        request_timeout: Duration,
    ) -> Result<Self, PipelineError> {
        let listener = pipe::bind(settings.listen).await?;
        let local = listener
            .local_addr()
            .map_err(|e| crate::pipe::PipeError::Serve {
                addr: settings.listen.to_string(),
                message: e.to_string(),
            })?;
        let advertise = settings
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        tracing::info!(listen = %local, %advertise, stages = ?pipeline.node.stages, "stage pipe listening");
        let store = PipeStore::default();
        let stop = CancellationToken::new();
        let server = tokio::spawn(pipe::serve(listener, store.clone(), stop.clone()));
        let board = TaskBoard::new(client, keys, request_timeout);
        let worker = Worker {
            pipeline: pipeline.clone(),
            node_id: node_id.to_string(),
            advertise: advertise.clone(),
            board: board.clone(),
            store: store.clone(),
            client: PipeClient::new(settings.fetch_timeout, settings.max_transfer),
            lease_ttl: pipeline.ha.lease_ttl,
            request_timeout,
            stats: Arc::new(LoadStats::default()),
        };
        let worker = tokio::spawn(run_worker(worker, stop.clone()));
        let window = settings.window.unwrap_or(pipeline.batch.window);
        Ok(NodeStages {
            term: TermStages {
                board,
                store,
                advertise,
                window: usize::try_from(window).unwrap_or(8).max(1),
                task_timeout: settings.task_timeout,
            },
            stop,
            server,
            worker,
        })
    }

    pub fn for_term(&self) -> TermStages {
        self.term.clone()
    }

    /// Stops the worker (revoking its lease, so its claims vanish at once)
    /// and the pipe.
    pub async fn stop(self) {
        self.stop.cancel();
        match self.worker.await {
            Ok(Err(error)) => tracing::error!(%error, "stage worker ended with an error"),
            Err(error) => tracing::error!(%error, "stage worker ended abnormally"),
            Ok(Ok(())) => {}
        }
        let _ = self.server.await;
    }
}
