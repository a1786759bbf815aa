//! Before streaming: which tables are copied, the checks that run before
//! anything is written (`on_nonempty`, `create_tables`), table creation,
//! and the progress rows — or, after a failover, what is left to copy.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sluice_binlog::snapshot::{SnapshotReader, SourceTable};
use sluice_config::{OnNonempty, Pipeline, SnapshotMode};
use sluice_core::{Position, Value};
use sluice_load::snapshot::TableCheck;
use sluice_load::Loader;

use crate::error::PipelineError;

/// One table left to copy.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub source: Arc<SourceTable>,
    /// Routed target `(schema, table)`.
    pub target: (String, String),
    /// Chunk key of the last row already copied.
    pub after: Option<Vec<Value>>,
    /// A re-copy (`sluice snapshot --table`): the key's target column
    /// names, whose chunk ranges are replaced on the target.
    pub recopy: Option<Vec<String>>,
}

/// A snapshot ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tables: Vec<TableCopy>,
    /// Where streaming starts when nothing is stored.
    pub start: Position,
    /// Keyless tables whose stream rows are dropped until copied.
    pub dropping: HashSet<(String, String)>,
    /// Every table of the snapshot as stored when the term starts.
    pub seeds: Vec<crate::progress_snapshot::Seed>,
    /// Rows copied again so far (after failovers).
    pub rows_recopied: u64,
    /// A new leader continues a copy another term began.
    pub continuing: bool,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Plans the snapshot of this term, or `None` when there is nothing to copy.
/// `fresh`: nothing is stored (a first start).
pub async fn prepare(
    pipeline: &Pipeline,
    loader: &Loader,
    fresh: bool,
) -> Result<Option<Prepared>, PipelineError> {
    let progress = loader.snapshot_progress(&pipeline.name).await?;
    // An unfinished re-copy continues whatever the mode.
    let recopying = progress.iter().any(|p| p.recopy);
    if pipeline.snapshot.mode != SnapshotMode::Initial && !recopying {
        return Ok(None);
    }
    if !fresh && progress.is_empty() {
        // Streaming ran before without a snapshot (mode was `never`).
        return Ok(None);
    }
    if !progress.is_empty() && progress.iter().all(|p| p.done) {
        return Ok(None);
    }
    let url = pipeline.source.url().expose().to_string();
    let mut reader = SnapshotReader::connect(&url, &pipeline.source.tls, CONNECT_TIMEOUT).await?;
    if progress.is_empty() {
        return begin(pipeline, loader, &mut reader).await.map(Some);
    }
    // A new leader continues an unfinished copy.
    loader.snapshot_resume(&pipeline.name).await?;
    let start: Position =
        progress[0]
            .start_position
            .parse()
            .map_err(|_| PipelineError::Refused {
                at: "sluice_meta.snapshot_progress".into(),
                reason: format!(
                    "the snapshot's start position `{}` does not parse",
                    progress[0].start_position
                ),
            })?;
    let mut tables = Vec::new();
    let mut dropping = HashSet::new();
    for p in progress.iter().filter(|p| !p.done) {
        let Some((schema, table)) = p.table.split_once('.') else {
            continue;
        };
        let source = Arc::new(reader.describe(schema, table).await?);
        let after = match (&p.last_key, source.key.is_empty()) {
            (Some(json), false) => serde_json::from_str::<Vec<Value>>(json).ok(),
            _ => None,
        };
        if source.key.is_empty() && !p.recopy {
            dropping.insert((schema.to_string(), table.to_string()));
        }
        let (s, t) = pipeline.routes.route(schema, table);
        let recopy = p.recopy.then(|| recopy_key(pipeline, &source));
        tables.push(TableCopy {
            source,
            target: (s.to_string(), t.to_string()),
            after,
            recopy,
        });
    }
    tracing::info!(tables = tables.len(), %start, "snapshot: continuing an unfinished copy");
    let seeds = progress
        .iter()
        .map(|p| {
            (
                p.table.clone(),
                p.rows_copied,
                p.rows_estimated,
                p.chunks_done,
                p.done,
            )
        })
        .collect();
    Ok(Some(Prepared {
        tables,
        start,
        dropping,
        seeds,
        rows_recopied: progress
            .iter()
            .map(|p| p.rows_recopied + p.inflight_rows)
            .sum(),
        continuing: true,
    }))
}

/// A first start: read the start position, plan, check, create, record.
async fn begin(
    pipeline: &Pipeline,
    loader: &Loader,
    reader: &mut SnapshotReader,
) -> Result<Prepared, PipelineError> {
    let start = reader.binlog_end().await?;
    let mut tables = Vec::new();
    for (schema, table) in reader.tables().await? {
        if !pipeline.filter.includes(&schema, &table) {
            continue;
        }
        let source = Arc::new(reader.describe(&schema, &table).await?);
        let (s, t) = pipeline.routes.route(&schema, &table);
        tables.push(TableCopy {
            source,
            target: (s.to_string(), t.to_string()),
            after: None,
            recopy: None,
        });
    }
    // Every check before anything is written.
    let mut create = Vec::new();
    for t in &tables {
        let expected = expected_columns(pipeline, &t.source);
        match loader.check_table(&t.target.0, &t.target.1, &expected).await? {
            TableCheck::Missing if pipeline.snapshot.create_tables => create.push(t),
            TableCheck::Missing => return Err(refuse(format!(
                "target table `{}.{}` does not exist and `snapshot.create_tables` is false",
                t.target.0, t.target.1
            ))),
            TableCheck::Differs(diff) if pipeline.snapshot.create_tables => {
                return Err(refuse(format!(
                    "target table `{}.{}` exists with other columns than the source's `{}`: {diff}",
                    t.target.0,
                    t.target.1,
                    t.source.schema.qualified_name()
                )))
            }
            TableCheck::Matches { nonempty: true }
                if pipeline.snapshot.on_nonempty == OnNonempty::Refuse =>
            {
                return Err(refuse(format!(
                    "target table `{}.{}` already holds rows (snapshot.on_nonempty: refuse); empty it or set `snapshot.on_nonempty: merge`",
                    t.target.0, t.target.1
                )))
            }
            _ => {}
        }
        if pipeline
            .columns
            .rule(&t.source.schema.schema, &t.source.schema.table)
            .is_some()
            && create.iter().any(|c| Arc::ptr_eq(&c.source, &t.source))
        {
            return Err(refuse(format!(
                "`snapshot.create_tables` cannot apply column rules to `{}` yet: create `{}.{}` on the target yourself",
                t.source.schema.qualified_name(),
                t.target.0,
                t.target.1
            )));
        }
    }
    for t in create {
        let sql = routed_create(&t.source.create_sql, &t.target.1);
        loader.create_table(&t.target.0, &sql).await?;
        tracing::info!(table = %format!("{}.{}", t.target.0, t.target.1), "snapshot: target table created");
    }
    let plan: Vec<(String, u64)> = tables
        .iter()
        .map(|t| (t.source.schema.qualified_name(), t.source.rows_estimate))
        .collect();
    loader
        .snapshot_begin(&pipeline.name, &start.to_string(), &plan)
        .await?;
    let dropping = tables
        .iter()
        .filter(|t| t.source.key.is_empty())
        .map(|t| {
            (
                t.source.schema.schema.clone(),
                t.source.schema.table.clone(),
            )
        })
        .collect();
    tracing::info!(tables = tables.len(), %start, "snapshot: starting; streaming starts at the position read before the first chunk");
    let seeds = plan
        .into_iter()
        .map(|(table, estimate)| (table, 0, estimate, 0, false))
        .collect();
    Ok(Prepared {
        tables,
        start,
        dropping,
        seeds,
        rows_recopied: 0,
        continuing: false,
    })
}

pub(super) fn refuse(reason: String) -> PipelineError {
    PipelineError::Refused {
        at: "snapshot".into(),
        reason,
    }
}

/// The target columns a source table becomes under the column rules.
pub(super) fn expected_columns(pipeline: &Pipeline, t: &SourceTable) -> Vec<(String, String)> {
    let rule = pipeline.columns.rule(&t.schema.schema, &t.schema.table);
    t.schema
        .columns
        .iter()
        .zip(&t.column_types)
        .filter(|(c, _)| rule.is_none_or(|r| r.keeps(&c.name)))
        .map(|(c, ty)| {
            let name = rule.map_or(c.name.as_str(), |r| r.target_name(&c.name));
            (name.to_string(), ty.clone())
        })
        .collect()
}

/// The target names of a source table's chunk key columns.
pub(super) fn recopy_key(pipeline: &Pipeline, t: &SourceTable) -> Vec<String> {
    let rule = pipeline.columns.rule(&t.schema.schema, &t.schema.table);
    t.key
        .iter()
        .filter_map(|&i| t.schema.columns.get(i))
        .map(|c| {
            rule.map_or(c.name.as_str(), |r| r.target_name(&c.name))
                .to_string()
        })
        .collect()
}

/// `SHOW CREATE TABLE` text with the table renamed (the schema is chosen
/// by the connection that runs it).
pub(super) fn routed_create(sql: &str, table: &str) -> String {
    let quoted = format!("`{}`", table.replace('`', "``"));
    match sql.find('(') {
        Some(open) => format!("CREATE TABLE {quoted} {}", &sql[open..]),
        None => sql.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statements_take_the_routed_name() {
        assert_eq!(
            routed_create(
                "CREATE TABLE `t` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB",
                "u"
            ),
            "CREATE TABLE `u` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB"
        );
    }
}
