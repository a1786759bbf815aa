//! A node's life: with `coordination.etcd` it registers, campaigns, and
//! replicates only while it holds the leader key, going back to standby when
//! its term is lost (resigning at once on a graceful shutdown); with
//! `coordination.local` it replicates straight away.
//!
//! A term that ends in [`PipelineError::Rollback`] (distributed stages lost
//! a batch they cannot recompute) is started again from the last
//! acknowledged position under the same leadership.

use std::time::Duration;

use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    AckError, AnyPositionStore, Candidate, CoordError, ElectionConfig, EtcdOptions,
    EtcdPositionStore, Fence, KeyLayout, NodeRecord,
};
use tokio_util::sync::CancellationToken;

use super::options::{RunOptions, RunSummary};
use super::retry::retry_transient;
use super::stages;
use super::term::{prepare, Term};
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
