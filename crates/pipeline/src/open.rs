//! Opening what a run talks to: the position store its `coordination:`
//! section names and the target loader (shared by the runtime, the
//! distributed workers and the CLI's tools).

use std::path::PathBuf;

use sluice_config::{Coordination, Pipeline, Tagging};
use sluice_coord::{
    AnyPositionStore, EtcdOptions, EtcdPositionStore, KeyLayout, LocalPositionStore,
};
use sluice_load::{ConflictPolicy, ConflictRules, Loader, LoaderOptions, OriginTag, TermFence};

use crate::error::PipelineError;

/// Opens the position store `coordination` names for `pipeline`.
pub async fn open_store(pipeline: &Pipeline) -> Result<AnyPositionStore, PipelineError> {
    Ok(match &pipeline.coordination {
        Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } => {
            let keys = KeyLayout::new(prefix)?.pipeline(&pipeline.name)?;
            let options =
                EtcdOptions::new(endpoints.clone()).with_security(tls.clone(), auth.clone());
            EtcdPositionStore::connect(&options, keys).await?.into()
        }
        Coordination::Local { dir } => {
            let dir: PathBuf = dir.join(&pipeline.name);
            LocalPositionStore::open(dir)?.into()
        }
    })
}

/// With `coordination.local`, the pipeline's own state directory
/// (`<dir>/<name>`), where its `position.json` lives.
pub fn local_state_dir(pipeline: &Pipeline) -> Option<PathBuf> {
    match &pipeline.coordination {
        Coordination::Local { dir } => Some(dir.join(&pipeline.name)),
        Coordination::Etcd { .. } => None,
    }
}

/// The loader `pipeline` describes, for tools: without a term fence and
/// without a bidirectional pipeline's origin tag (tools read, or write
/// only `sluice_meta`, which no bidirectional pipeline replicates).
pub async fn loader(pipeline: &Pipeline) -> Result<Loader, PipelineError> {
    let opts = LoaderOptions {
        workers: usize::try_from(pipeline.load.workers).unwrap_or(4),
        statement_cache: usize::try_from(pipeline.load.statement_cache).unwrap_or(256),
        tls: pipeline.target.tls.clone(),
        ..LoaderOptions::default()
    };
    Ok(Loader::connect(pipeline.target.url.expose(), opts).await?)
}

/// The loader that replicates for `pipeline`, writing under `term` when
/// given, with the origin tag and conflict rules of a bidirectional
/// pipeline.
pub async fn loader_with_term(
    pipeline: &Pipeline,
    term: Option<TermFence>,
) -> Result<Loader, PipelineError> {
    let (origin, conflicts) = match &pipeline.bidirectional {
        Some(b) => (
            Some(match b.tagging {
                Tagging::ServerId => OriginTag::ServerId(b.tag),
                Tagging::Marker => OriginTag::Marker {
                    pipeline: pipeline.name.clone(),
                },
            }),
            Some(ConflictRules {
                pipeline: pipeline.name.clone(),
                policy: match &b.conflicts {
                    sluice_config::ConflictPolicy::SourceWins => ConflictPolicy::SourceWins,
                    sluice_config::ConflictPolicy::TargetWins => ConflictPolicy::TargetWins,
                    sluice_config::ConflictPolicy::NewerWins(c) => {
                        ConflictPolicy::NewerWins(c.clone())
                    }
                    sluice_config::ConflictPolicy::Stop => ConflictPolicy::Stop,
                },
            }),
        ),
        None => (None, None),
    };
    let opts = LoaderOptions {
        workers: usize::try_from(pipeline.load.workers).unwrap_or(4),
        statement_cache: usize::try_from(pipeline.load.statement_cache).unwrap_or(256),
        term,
        tls: pipeline.target.tls.clone(),
        origin,
        conflicts,
        ..LoaderOptions::default()
    };
    Ok(Loader::connect(pipeline.target.url.expose(), opts).await?)
}

/// The peer a bidirectional pipeline drops the transactions of.
pub fn peer(pipeline: &Pipeline) -> Option<crate::origin::Peer> {
    pipeline
        .bidirectional
        .as_ref()
        .map(|b| crate::origin::Peer {
            name: b.peer.clone(),
            tag: b.peer_tag,
        })
}
