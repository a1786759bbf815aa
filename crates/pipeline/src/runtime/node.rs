//! A node's life: with `coordination.etcd` it registers, campaigns, and
//! replicates only while it holds the leader key, going back to standby when
//! its term is lost (resigning at once on a graceful shutdown); with
//! `coordination.local` it replicates straight away.
//!
//! A term that ends in [`PipelineError::Rollback`] (distributed stages lost
//! a batch they cannot recompute) is started again from the last
//! acknowledged position under the same leadership.
//!
//! # Operator control (etcd)
//!
//! Every node follows the pipeline's control records ([`Control`]). While
//! it leads, a [`Desk`] answers operator requests, and before every term
//! the node reads the records: when the pipeline is halted it runs no
//! stage and waits — keeping its lease — until an operator clears the halt,
//! its term ends, or a handover is asked for. A term that fails definitely
//! records the halt ([`crate::control`]) and the node goes on waiting
//! instead of exiting. A handover drains the term like a shutdown, answers
//! the request and hands the leader key to the named node.

use std::time::Duration;

use serde_json::json;
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    AckError, AnyPositionStore, Candidate, ControlWrite, CoordError, ElectionConfig, EtcdOptions,
    EtcdPositionStore, Fence, KeyLayout, Leadership, NodeRecord, OutcomeState,
};
use sluice_core::Classify as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::options::{RunOptions, RunSummary};
use super::retry::retry_transient;
use super::stages;
use super::term::{prepare, Term, TermControl};
use crate::control::desk::{answer_by_id, Desk, DeskContext, HandoverOrder, SwitchSlot};
use crate::control::{halt, switch, Control, FailedSlot};
use crate::error::PipelineError;
use crate::open::open_store;

pub(super) async fn run_node(
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
                control: None,
                failed: FailedSlot::default(),
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
    let control = Control::start(
        client.clone(),
        keys.clone(),
        etcd_opts.request_timeout,
        opts.status.clone(),
    )
    .await;
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
                control.gate(),
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
        address: pipeline
            .admin
            .as_ref()
            .map(|a| opts.admin_address.unwrap_or(a.listen).to_string()),
        role: "standby".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        server_id: Some(opts.server_id.unwrap_or(pipeline.source.server_id)),
        since_unix_ms: 0,
        progress: None,
    };
    let mut candidate = Candidate::new(client.clone(), keys.clone(), election, node);
    let mut summary = RunSummary::default();
    let outcome = async {
        loop {
            let Some(leadership) = candidate.campaign(&shutdown).await? else {
                return Ok(summary);
            };
            opts.status.etcd_link(true);
            opts.status
                .leadership_gained(leadership.fence.leader_revision());
            let (handover_tx, handover_rx) = watch::channel(None);
            let desk_ctx = DeskContext {
                control: control.clone(),
                fence: leadership.fence.clone(),
                node_id: opts.node_id.clone(),
                pipeline: pipeline.clone(),
                status: opts.status.clone(),
                handover: handover_tx,
                switch: SwitchSlot::default(),
                recopy: crate::snapshot::recopy::RecopySlot::default(),
            };
            let desk = Desk::spawn(desk_ctx.clone(), leadership.lost.clone());
            let leading = Leading {
                pipeline,
                opts: &opts,
                shutdown: &shutdown,
                leadership: &leadership,
                client: &client,
                keys: &keys,
                etcd_opts: &etcd_opts,
                dist: dist.as_ref(),
                control: &control,
                switch: &desk_ctx.switch,
                recopy: &desk_ctx.recopy,
            };
            let end = leading.lead(handover_rx, &mut summary).await;
            desk.stop().await;
            match end {
                End::Shutdown(result) => {
                    if leadership.lost.is_cancelled() {
                        leadership.abandon().await;
                    } else {
                        // Graceful: hand over now rather than after the lease
                        // expires.
                        leadership.resign().await;
                    }
                    return result.map(|()| summary);
                }
                End::Lost { fenced_out } => {
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
                }
                End::Handover(order) => {
                    let position = summary.acknowledged.as_ref().map(|(_, p)| p.to_string());
                    let to = order.to.as_deref().unwrap_or("any standby");
                    let message = match &position {
                        Some(p) => format!("drained; position {p} flushed; handing over to {to}"),
                        None => format!("handing over to {to}"),
                    };
                    if let Err(error) = answer_by_id(
                        &desk_ctx,
                        &order.request,
                        OutcomeState::Done,
                        &message,
                        json!({"from": opts.node_id, "to": order.to, "position": position}),
                    )
                    .await
                    {
                        tracing::warn!(%error, "answering the handover request failed");
                    }
                    leadership.hand_over(order.to.as_deref()).await;
                    // The named node campaigns at once; this one lets it.
                    candidate.hold_off(pipeline.ha.standby_delay.max(Duration::from_secs(2)));
                    opts.status.leadership_lost("handed over by an operator");
                    if shutdown.is_cancelled() {
                        return Ok(summary);
                    }
                }
            }
        }
    }
    .await;
    control.stop();
    if let Some(d) = dist {
        d.stop().await;
    }
    outcome
}

/// How a leadership ended.
enum End {
    /// Shutdown, or a failure that ends the process.
    Shutdown(Result<(), PipelineError>),
    Lost {
        fenced_out: bool,
    },
    Handover(HandoverOrder),
}

/// What one leadership works with.
struct Leading<'a> {
    pipeline: &'a Pipeline,
    opts: &'a RunOptions,
    shutdown: &'a CancellationToken,
    leadership: &'a Leadership,
    client: &'a etcd_client::Client,
    keys: &'a sluice_coord::PipelineKeys,
    etcd_opts: &'a EtcdOptions,
    dist: Option<&'a crate::distributed::NodeStages>,
    control: &'a Control,
    switch: &'a SwitchSlot,
    recopy: &'a crate::snapshot::recopy::RecopySlot,
}

impl Leading<'_> {
    /// Terms (or a halt) until the leadership ends.
    async fn lead(
        &self,
        mut handover: watch::Receiver<Option<HandoverOrder>>,
        summary: &mut RunSummary,
    ) -> End {
        let lost = &self.leadership.lost;
        let status = &self.opts.status;
        let stop = {
            let token = CancellationToken::new();
            let (a, b, c) = (self.shutdown.clone(), lost.clone(), token.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = a.cancelled() => {}
                    () = b.cancelled() => {}
                }
                c.cancel();
            });
            token
        };
        loop {
            // Before every term, the records as they are now.
            let state = match retry_transient("reading the control records", &stop, || async {
                self.control
                    .refresh(status)
                    .await
                    .map_err(PipelineError::from)
            })
            .await
            {
                Ok(Some(state)) => state,
                Ok(None) => return self.ended(),
                Err(e) => return End::Shutdown(Err(e)),
            };
            if let Some(h) = &state.halt {
                tracing::error!(stage = %h.value.stage, error = %h.value.message, halted_by = %h.value.node, "pipeline halted: no stage runs until an operator resolves it (`sluice errors`)");
                if let Some(end) = self.wait_halted(&mut handover).await {
                    return end;
                }
                continue;
            }
            let term_stop = CancellationToken::new();
            let (switch_tx, switch_rx) = switch::channel();
            *self.switch.lock().unwrap_or_else(|e| e.into_inner()) = Some(switch_tx);
            let stopper = {
                let (token, shutdown, mut handover) =
                    (term_stop.clone(), self.shutdown.clone(), handover.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = handover.wait_for(Option::is_some) => {}
                    }
                    token.cancel();
                })
            };
            let failed = FailedSlot::default();
            let store: AnyPositionStore = EtcdPositionStore::new(
                self.client.clone(),
                self.keys.clone(),
                self.etcd_opts.request_timeout,
            )
            .into();
            let term = Term {
                lost: lost.clone(),
                fence: self.leadership.fence.clone(),
                publisher: Some(self.leadership.publisher()),
                stages: self.dist.map(|d| d.for_term()),
                control: Some(TermControl {
                    control: self.control.clone(),
                    state,
                    switch: switch_rx,
                    recopy: self.recopy.clone(),
                }),
                failed: failed.clone(),
            };
            let result = run_term(self.pipeline, self.opts, &term_stop, term, store).await;
            stopper.abort();
            *self.switch.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *self.recopy.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let order = handover.borrow().clone();
            match result {
                Err(PipelineError::Rollback { reason }) => {
                    if self.shutdown.is_cancelled() || lost.is_cancelled() {
                        return self.ended();
                    }
                    if let Some(order) = order {
                        return End::Handover(order);
                    }
                    tracing::warn!(%reason, "distributed stages: restarting from the last acknowledged position");
                    // Pacing, so that a persistent cause does not spin.
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(term) => {
                    summary.batches += term.batches;
                    summary.rows += term.rows;
                    summary.ddl += term.ddl;
                    summary.acknowledged = term.acknowledged.or(summary.acknowledged.take());
                    if lost.is_cancelled() {
                        return End::Lost { fenced_out: false };
                    }
                    if let Some(order) = order {
                        return End::Handover(order);
                    }
                    return End::Shutdown(Ok(()));
                }
                Err(e) if fenced_out(&e) || lost.is_cancelled() => {
                    return End::Lost {
                        fenced_out: fenced_out(&e),
                    }
                }
                Err(e) if self.shutdown.is_cancelled() => return End::Shutdown(Err(e)),
                Err(e) if e.class().is_transient() => {
                    // Not the operator's business: the next term waits it out.
                    tracing::warn!(error = %e, "term ended on a transient error; starting again");
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(e) => {
                    if let Some(end) = self.halt(&e, failed.take()).await {
                        return end;
                    }
                }
            }
        }
    }

    fn ended(&self) -> End {
        if self.leadership.lost.is_cancelled() && !self.shutdown.is_cancelled() {
            End::Lost { fenced_out: false }
        } else {
            End::Shutdown(Ok(()))
        }
    }

    /// Records the halt for `error`; `None` to go on (halted).
    async fn halt(
        &self,
        error: &PipelineError,
        batch: Option<sluice_coord::HaltedBatch>,
    ) -> Option<End> {
        let record = halt::halt_record(
            halt::stage_of(error),
            error,
            batch,
            &self.opts.node_id,
            self.leadership.fence.leader_revision(),
            self.pipeline.stages.is_some(),
        );
        let store = self.control.store();
        let written = retry_transient("recording the halt", &self.leadership.lost, || async {
            store
                .write(
                    &self.leadership.fence,
                    &[],
                    vec![ControlWrite::PutHalt(Box::new(record.clone()))],
                )
                .await
                .map_err(PipelineError::from)
        })
        .await;
        match written {
            Ok(Some(_)) => {
                tracing::error!(%error, "definite error: the pipeline is halted (recorded in etcd); this node keeps its lease and runs no stage until an operator resolves it");
                None
            }
            Ok(None) => Some(End::Lost { fenced_out: false }),
            Err(PipelineError::Coord(e)) if e.is_fenced_out() => {
                Some(End::Lost { fenced_out: true })
            }
            Err(write_error) => {
                tracing::error!(error = %write_error, "the halt could not be recorded; stopping");
                Some(End::Shutdown(Err(PipelineError::Stage {
                    stage: "control",
                    message: format!("{error} (and recording the halt failed: {write_error})"),
                })))
            }
        }
    }

    /// Waits while halted; `None` once the halt is cleared.
    async fn wait_halted(
        &self,
        handover: &mut watch::Receiver<Option<HandoverOrder>>,
    ) -> Option<End> {
        let mut rx = self.control.subscribe();
        loop {
            if rx.borrow_and_update().halt.is_none() {
                tracing::info!("halt cleared by an operator: resuming");
                return None;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return Some(End::Shutdown(Ok(()))),
                () = self.leadership.lost.cancelled() => return Some(End::Lost { fenced_out: false }),
                r = handover.wait_for(Option::is_some) => {
                    if let Ok(order) = r {
                        if let Some(order) = order.clone() {
                            return Some(End::Handover(order));
                        }
                    }
                }
                r = rx.changed() => {
                    if r.is_err() {
                        return Some(End::Shutdown(Ok(())));
                    }
                }
            }
        }
    }
}

fn fenced_out(e: &PipelineError) -> bool {
    match e {
        PipelineError::Load(e) => e.is_fenced_out(),
        PipelineError::Coord(e) => matches!(**e, CoordError::FencedOut { .. }),
        PipelineError::Ack(AckError::Stopped(e)) => matches!(**e, CoordError::FencedOut { .. }),
        _ => false,
    }
}

/// One term of replication: prepare, run the stages, stop.
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
    let result = async {
        let Some(prepared) = prepare(pipeline, opts, &term, store, &shutdown_or_lost).await? else {
            return Ok(RunSummary::default());
        };
        stages::run(pipeline, opts, shutdown, &term, prepared).await
    }
    .await;
    linked.abort();
    result
}
