//! Opening what a run talks to: the position store its `coordination:`
//! section names and the target loader (shared by the runtime, the
//! distributed workers and the CLI's tools).

use std::path::PathBuf;

use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    AnyPositionStore, EtcdOptions, EtcdPositionStore, KeyLayout, LocalPositionStore,
};
use sluice_load::{Loader, LoaderOptions, TermFence};

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

/// The loader `pipeline` describes (without a term fence: for tools).
pub async fn loader(pipeline: &Pipeline) -> Result<Loader, PipelineError> {
    loader_with_term(pipeline, None).await
}

/// The loader `pipeline` describes, writing under `term` when given.
pub async fn loader_with_term(
    pipeline: &Pipeline,
    term: Option<TermFence>,
) -> Result<Loader, PipelineError> {
    let opts = LoaderOptions {
        workers: usize::try_from(pipeline.load.workers).unwrap_or(4),
        term,
        tls: pipeline.target.tls.clone(),
        ..LoaderOptions::default()
    };
    Ok(Loader::connect(pipeline.target.url.expose(), opts).await?)
}
