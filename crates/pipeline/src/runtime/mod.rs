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
//!   are abandoned unacknowledged and the position (which is before the
//!   failed batch) is flushed. With `coordination.local`, `run` returns the
//!   error; with `coordination.etcd` the node records a halt and stays up,
//!   leading but running no stage, until an operator resolves it
//!   ([`crate::control`]).
//! * An operator's handover: like a shutdown, then the leader key goes to
//!   the named node.
//!
//! # Modules
//!
//! * [`node`] — a node's life: with etcd, campaign, replicate while leader,
//!   back to standby when the term is lost; without, replicate at once;
//! * [`term`] — one term of replication: prepare (migrate, fence, resume),
//!   spawn the stages, supervise them, stop and flush;
//! * [`resume`] — where replication resumes (the rule above);
//! * [`progress`] — the progress log line and the counters published in
//!   the node record.
//!
//! Operator control (halt, resolutions, pause, handover, source switch) is
//! [`crate::control`]; [`node`] wires it into each leadership and term.

use sluice_config::Pipeline;
use tokio_util::sync::CancellationToken;

use crate::error::PipelineError;

mod node;
mod options;
mod progress;
mod resume;
mod retry;
mod stages;
mod term;

pub use options::{RunOptions, RunSummary};

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
    let result = node::run_node(pipeline, opts, shutdown).await;
    status.set_role(crate::status::Role::Stopped);
    result
}
