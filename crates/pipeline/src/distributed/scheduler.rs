//! The scheduler of one epoch, on the active node: publishes each extracted
//! batch as a task, keeps at most `window` in flight, acknowledges loaded
//! batches in order and handles failures (see [`super`]'s docs). A
//! snapshot chunk's batch is published with its mark, so whichever node
//! loads it records the chunk's progress on the target; the scheduler shows
//! it in this node's status when it acknowledges the batch.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_coord::{
    AnyPositionStore, Board, BoardMirror, DataRef, Fence, PositionCache, TaskBoard, TaskRecord,
    TaskStage, TaskState,
};
use sluice_core::Position;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::batch::{is_before, Batch};
use crate::channel::Receiver;
use crate::error::PipelineError;
use crate::pipe::{self, PipeStore};
use crate::stats::LoadStats;

/// How often boards are re-read without a watch event.
pub(super) const POLL: Duration = Duration::from_millis(250);

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
    /// No task is published while the pipeline is paused.
    pub gate: crate::control::Gate,
    /// Which batches are snapshot chunks: their marks are published with
    /// them ([`crate::pipe`]) and, once loaded, shown in `status`.
    pub copies: Option<crate::snapshot::Marks>,
    pub status: crate::status::NodeStatus,
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
    let mirror = BoardMirror::start(&s.board, Arc::clone(&notify), watch_stop.clone());
    let result = schedule_inner(&s, &mut rx, &abandon, &mirror, &notify).await;
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
    drop(mirror);
    // This epoch's frames are of no use to anyone any more.
    let prefix = format!("/pipe/{}/", s.term);
    s.store.retain(|p| !p.starts_with(&prefix));
    result
}

async fn schedule_inner(
    s: &Scheduler,
    rx: &mut Receiver<Batch>,
    abandon: &CancellationToken,
    mirror: &BoardMirror,
    notify: &Notify,
) -> Result<(), PipelineError> {
    let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut input_open = true;
    // The board revision of the last publish: the mirror must show it
    // before a task missing from it counts as vanished.
    let mut published_at = 0i64;
    let mut ticker = tokio::time::interval(POLL);
    loop {
        if !input_open && in_flight.is_empty() {
            return Ok(());
        }
        let notified = notify.notified();
        tokio::select! {
            () = abandon.cancelled() => return Ok(()),
            msg = rx.recv(), if input_open && in_flight.len() < s.window => {
                let Some(sized) = msg else {
                    input_open = false;
                    continue;
                };
                // A backlog is published in one request: every batch
                // already queued, up to the window.
                let mut group = vec![sized.into_inner()];
                while in_flight.len() + group.len() < s.window {
                    match rx.try_recv() {
                        Some(next) => group.push(next.into_inner()),
                        None => break,
                    }
                }
                let Some(passage) = s.gate.enter(abandon).await else {
                    return Ok(());
                };
                drop(passage);
                let (metas, revision) = publish(s, &group).await?;
                published_at = published_at.max(revision);
                for (batch, meta) in group.iter().zip(metas) {
                    in_flight.insert(batch.id, meta);
                }
                continue;
            }
            () = notified => {}
            _ = ticker.tick() => {}
        }
        if in_flight.is_empty() {
            continue;
        }
        let Some(board) = mirror.board() else {
            continue;
        };
        if board.revision < published_at {
            // The mirror has not seen our last publish yet.
            continue;
        }
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

/// Encodes `batches`, keeps them in the pipe and publishes their tasks in
/// one transaction; returns their in-flight records and its revision.
async fn publish(s: &Scheduler, batches: &[Batch]) -> Result<(Vec<InFlight>, i64), PipelineError> {
    let now = sluice_core::time::unix_ms();
    let mut records = Vec::with_capacity(batches.len());
    let mut metas = Vec::with_capacity(batches.len());
    for batch in batches {
        let copy = s.copies.as_ref().and_then(|c| c.get(batch.id));
        let frame = pipe::encode(batch, copy.as_ref())?;
        let path = PipeStore::path(s.term, batch.id, "extracted");
        let data = DataRef {
            node: s.node_id.clone(),
            url: format!("{}{path}", s.advertise),
            bytes: frame.len() as u64,
            crc32: pipe::frame_crc(&frame),
        };
        s.store.put(path, frame);
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
        metas.push(InFlight {
            end: batch.end.clone(),
            timestamp: batch.timestamp,
            rows: record.rows,
            published_ms: now,
            warned_ms: 0,
        });
        records.push(record);
    }
    let revision = s.board.publish_all(&s.fence, &records).await?;
    tracing::debug!(
        first = batches.first().map_or(0, |b| b.id),
        batches = batches.len(),
        "batches published"
    );
    Ok((metas, revision))
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
    let mut old_records = Vec::new();
    // A batch below `load_next` is loaded (its load removed its record).
    let load_next = board.load_next.unwrap_or(0);
    while let Some((&id, _)) = in_flight.first_key_value() {
        let task = board.tasks.get(&id);
        let loaded = id < load_next || task.is_some_and(|t| t.record.state == TaskState::Loaded);
        if task.is_none() && !loaded {
            return Err(PipelineError::Rollback {
                reason: format!("the task of batch {id} vanished from the board"),
            });
        }
        if !loaded {
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
        s.store
            .retain(|p| p != PipeStore::path(s.term, id, "extracted"));
        if let Some(copies) = &s.copies {
            // The loading node recorded the chunk on the target.
            if let Some(mark) = copies.get(id) {
                crate::load::report_chunk(&s.status, &mark);
                copies.remove(id);
            }
        }
        tracing::debug!(batch_id = id, "batch acknowledged");
        if task.is_some() {
            // A record in the state `loaded` (written by an older version).
            old_records.push(id);
        }
    }
    s.board.remove_all(&s.fence, &old_records).await?;
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
