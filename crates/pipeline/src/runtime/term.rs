//! One term of replication: prepare, run the stages, stop.
//!
//! Preparing a term, in this order, each step waiting out transient trouble:
//! 0. for a bidirectional pipeline, check that the target accepts its
//!    origin tag (a definite refusal names the missing privilege);
//! 1. create or upgrade sluice's tables on the target;
//! 2. raise the term on the target (before reading where to resume: writes
//!    of an older term are then either visible or impossible);
//! 3. read the stored position and the target's checkpoint, and pick the
//!    resume point ([`super::resume`]);
//! 4. with distributed stages, start a new epoch on the task board and
//!    raise its term on the target, fencing every older worker out.
//!
//! Then [`super::stages`] runs the stages until shutdown, a lost term or a
//! definite error ([`super::node`] calls one after the other).

use std::sync::Arc;

use sluice_binlog::stream::StartAt;
use sluice_config::Pipeline;
use sluice_coord::{
    AnyPositionStore, CacheConfig, Fence, PositionCache, PositionStore as _, ProgressPublisher,
    StoredPosition,
};
use sluice_core::Position;
use sluice_load::{Loader, TermFence};
use tokio_util::sync::CancellationToken;

use super::options::RunOptions;
use super::resume::{config_start, resume_point, Resume};
use super::retry::retry_transient;
use crate::error::PipelineError;
use crate::open::loader_with_term;

/// What a term of replication runs under.
pub(crate) struct Term {
    /// Fires when the term is lost (never, without an election).
    pub(crate) lost: CancellationToken,
    pub(crate) fence: Fence,
    pub(crate) publisher: Option<ProgressPublisher>,
    /// Distributed stages: the board and this node's pipe.
    pub(crate) stages: Option<crate::distributed::TermStages>,
    /// Operator control (`coordination.etcd` only).
    pub(crate) control: Option<TermControl>,
    /// Where Load leaves the batch of a definite failure.
    pub(crate) failed: crate::control::FailedSlot,
}

/// What a term takes from the control records (read just before it).
pub(crate) struct TermControl {
    pub(crate) control: crate::control::Control,
    pub(crate) state: sluice_coord::ControlState,
    pub(crate) switch: crate::control::switch::SwitchReceiver,
    /// Where the term's snapshot stage takes re-copy orders (set by the
    /// term, emptied by the node when the term ends).
    pub(crate) recopy: crate::snapshot::recopy::RecopySlot,
}

/// Everything a term's stages start from.
pub(super) struct Prepared {
    pub(super) loader: Arc<Loader>,
    pub(super) resume: Resume,
    /// Where Select starts the dump.
    pub(super) start: StartAt,
    /// Nothing was stored: `source.start` applies.
    pub(super) fresh: bool,
    pub(super) cache: PositionCache<AnyPositionStore>,
    pub(super) first_batch_id: u64,
    /// The stage epoch (distributed stages only).
    pub(super) epoch: Option<u64>,
    /// An operator's resolution in force (in-process Load only).
    pub(super) resolver: Option<crate::control::resolve::Resolver>,
    /// A snapshot to copy while streaming ([`crate::snapshot`]).
    pub(super) snapshot: Option<crate::snapshot::Prepared>,
}

/// Steps 1–4 of the module docs; `None` when stopped meanwhile.
pub(super) async fn prepare(
    pipeline: &Pipeline,
    opts: &RunOptions,
    term: &Term,
    store: AnyPositionStore,
    stop: &CancellationToken,
) -> Result<Option<Prepared>, PipelineError> {
    let fence = term.fence.leader_revision().map(|t| TermFence {
        pipeline: pipeline.name.clone(),
        term: t,
        node: opts.node_id.clone(),
    });
    let loader = Arc::new(loader_with_term(pipeline, fence).await?);
    // A bidirectional pipeline must be able to tag what it applies before
    // it applies anything (`sluice_load::apply::origin`).
    let Some(()) = retry_transient("checking the origin tag on the target", stop, || async {
        loader
            .ensure_origin_tag()
            .await
            .map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
    };
    let Some(()) = retry_transient("migrating the target", stop, || async {
        loader.migrate().await.map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
    };
    opts.status.target_up();
    let Some(()) = retry_transient("claiming the term on the target", stop, || async {
        loader.claim_term().await.map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
    };
    let Some(stored) = retry_transient("loading the stored position", stop, || async {
        store.load().await.map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
    };
    let Some(checkpoint) = retry_transient("reading the target checkpoint", stop, || async {
        loader
            .read_checkpoint(&pipeline.name)
            .await
            .map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
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
    let Some(snapshot) = retry_transient("planning the snapshot", stop, || {
        crate::snapshot::prepare(pipeline, &loader, fresh)
    })
    .await?
    else {
        return Ok(None);
    };
    // The snapshot decides where a first stream starts: the source's binlog
    // end read before the first chunk.
    let start = match (&snapshot, fresh) {
        (Some(plan), true) => StartAt::File {
            file: plan.start.file.clone(),
            pos: plan.start.offset,
        },
        _ => start,
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
        CacheConfig::new(opts.node_id.clone(), term.fence.clone()),
    );
    let first_batch_id = cache.next_batch_id();
    let epoch = match &term.stages {
        Some(st) => match begin_epoch(pipeline, opts, term, st, first_batch_id, stop).await? {
            Some(epoch) => Some(epoch),
            None => return Ok(None),
        },
        None => None,
    };
    let resolver = match term
        .control
        .as_ref()
        .and_then(|c| Some((c, c.state.resolution.clone()?)))
    {
        Some(_) if term.stages.is_some() => {
            tracing::warn!("an operator's resolution is in force, but distributed stages cannot apply skips; it stays until the in-process Load replays the halted range");
            None
        }
        Some((c, resolution)) => {
            let store = c.control.store().clone();
            let fence = term.fence.clone();
            let Some(r) = retry_transient("reading the resolution's history", stop, || {
                crate::control::resolve::Resolver::load(
                    store.clone(),
                    fence.clone(),
                    resolution.clone(),
                )
            })
            .await?
            else {
                return Ok(None);
            };
            Some(r)
        }
        None => None,
    };
    Ok(Some(Prepared {
        loader,
        resume,
        start,
        fresh,
        cache,
        first_batch_id,
        epoch,
        resolver,
        snapshot,
    }))
}

/// Step 4: a new epoch before any batch is published; its term, raised on
/// the target, fences every older worker out. `None` when stopped.
async fn begin_epoch(
    pipeline: &Pipeline,
    opts: &RunOptions,
    term: &Term,
    st: &crate::distributed::TermStages,
    first_batch_id: u64,
    stop: &CancellationToken,
) -> Result<Option<u64>, PipelineError> {
    let Some(epoch) = retry_transient("starting the stage epoch", stop, || async {
        st.board
            .begin_epoch(&term.fence, &opts.node_id, first_batch_id)
            .await
            .map_err(PipelineError::from)
    })
    .await?
    else {
        return Ok(None);
    };
    let epoch_fence = TermFence {
        pipeline: pipeline.name.clone(),
        term: i64::try_from(epoch).unwrap_or(i64::MAX),
        node: opts.node_id.clone(),
    };
    let epoch_loader = loader_with_term(pipeline, Some(epoch_fence)).await?;
    let claimed = retry_transient(
        "claiming the stage epoch's term on the target",
        stop,
        || async { epoch_loader.claim_term().await.map_err(PipelineError::from) },
    )
    .await;
    epoch_loader.close().await;
    if claimed?.is_none() {
        return Ok(None);
    }
    tracing::info!(epoch, first_batch_id, "distributed stages: epoch started");
    Ok(Some(epoch))
}
