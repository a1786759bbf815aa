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
//! * With `snapshot.mode: initial`, the active node's chunk readers hand
//!   chunks into its Extract as in one process ([`crate::snapshot`]); their
//!   batches are tasks like any other, each carrying its snapshot mark in
//!   its pipe frame, and the worker that loads one records the chunk's
//!   progress on the target under the epoch's term fence.
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
//!   stops the pipeline on the leader with that message (which then halts,
//!   see [`crate::control`]; skip and replace need the in-process Load).
//! * While the pipeline is paused, the scheduler publishes no task and every
//!   worker holds its loads at the pause gate; a load a worker had started
//!   before it saw the pause still completes.
//! * A worker cut off from etcd drops its claimed work when its lease can
//!   no longer be guaranteed (2/3 of the TTL after the last renewal, as the
//!   leader does), a third of a TTL before anyone else can claim it. As
//!   with the leader, a statement already sent to the target may still
//!   commit after that; an epoch change (new leader or rollback) fences
//!   such a worker out of the target completely.

//!
//! # Modules
//!
//! * [`scheduler`] — the active node's side;
//! * [`worker`] — every transform/load node's side.

use std::sync::Arc;
use std::time::Duration;

use sluice_config::Pipeline;
use sluice_coord::TaskBoard;
use tokio_util::sync::CancellationToken;

use crate::error::PipelineError;
use crate::pipe::{self, PipeClient, PipeStore};
use crate::stats::LoadStats;

mod scheduler;
mod worker;

pub use scheduler::{schedule, Scheduler};
pub use worker::{run_worker, Worker};

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
        gate: crate::control::Gate,
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
            gate,
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
