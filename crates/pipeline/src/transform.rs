//! Transform: routes and column rules, and the DDL decision.
//!
//! Each change's table is replaced by its *target* table: routed name, the
//! columns the rules keep (renamed), and the key re-indexed over them. The
//! target schema is computed once per source schema version (the binlog
//! decoder keeps one `Arc` per unchanged table, so the cache is keyed by
//! pointer and holds the source `Arc` to keep the pointer valid) and rows
//! are projected by moving values, never copying them.
//!
//! A rule that would drop a column of the source's primary key is refused:
//! the target applies changes by key, so without it updates and deletes
//! could not find their rows.
//!
//! DDL gets its [`DdlDecision`] here ([`crate::ddl::route_ddl`]): whether
//! it concerns a replicated table, and its text with routed names.

use std::sync::Arc;

use sluice_config::{ColumnRules, Filter, Routes};
use sluice_core::{Row, RowChange, TableSchema};
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, BatchBody};
use crate::channel::{Receiver, Sender};
use crate::ddl::route_ddl;
use crate::error::PipelineError;
use crate::table_cache::TableCache;

#[derive(Debug, Clone, Default)]
pub struct TransformConfig {
    pub filter: Filter,
    pub routes: Routes,
    pub columns: ColumnRules,
}

/// A source table's target form.
struct Mapping {
    target: Arc<TableSchema>,
    /// Source column indexes kept, in order; `None` keeps all.
    keep: Option<Vec<usize>>,
}

/// Per-table work cached across batches, per table map
/// ([`crate::table_cache`]).
#[derive(Default)]
pub struct Transformer {
    cfg: TransformConfig,
    cache: TableCache<Mapping>,
}

impl Transformer {
    pub fn new(cfg: TransformConfig) -> Self {
        Transformer {
            cfg,
            cache: TableCache::default(),
        }
    }

    pub fn transform(&mut self, batch: &mut Batch) -> Result<(), PipelineError> {
        match &mut batch.body {
            BatchBody::Rows(changes) => {
                for change in changes.iter_mut() {
                    self.transform_change(change)?;
                }
            }
            BatchBody::Ddl(ddl) => {
                ddl.decision = Some(route_ddl(
                    &ddl.schema,
                    &ddl.sql,
                    &self.cfg.filter,
                    &self.cfg.routes,
                ));
            }
        }
        Ok(())
    }

    fn transform_change(&mut self, change: &mut RowChange) -> Result<(), PipelineError> {
        let cfg = &self.cfg;
        let mapping = self
            .cache
            .get_or_try_insert(&change.table, |t| Self::mapping(cfg, t))?;
        change.table = Arc::clone(&mapping.target);
        if let Some(keep) = &mapping.keep {
            project(&mut change.before, keep);
            project(&mut change.after, keep);
        }
        Ok(())
    }

    fn mapping(cfg: &TransformConfig, source: &TableSchema) -> Result<Mapping, PipelineError> {
        let (schema, table) = cfg.routes.route(&source.schema, &source.table);
        let rule = cfg.columns.rule(&source.schema, &source.table);
        let mut keep = Vec::with_capacity(source.columns.len());
        let mut columns = Vec::with_capacity(source.columns.len());
        for (i, col) in source.columns.iter().enumerate() {
            let kept = rule.is_none_or(|r| r.keeps(&col.name));
            if !kept {
                if source.primary_key.contains(&i) {
                    return Err(PipelineError::Transform {
                        table: source.qualified_name(),
                        reason: format!(
                            "the column rules drop `{}`, part of the primary key; changes are applied by key, so key columns must be kept",
                            col.name
                        ),
                    });
                }
                continue;
            }
            let mut col = col.clone();
            if let Some(r) = rule {
                col.name = r.target_name(&source.columns[i].name).to_string();
            }
            keep.push(i);
            columns.push(col);
        }
        let primary_key = source
            .primary_key
            .iter()
            .filter_map(|k| keep.iter().position(|i| i == k))
            .collect();
        let all = keep.len() == source.columns.len();
        let target = TableSchema {
            schema,
            table,
            columns,
            primary_key,
            has_names: source.has_names,
        };
        Ok(Mapping {
            target: Arc::new(target),
            keep: (!all).then_some(keep),
        })
    }
}

/// Keeps the values at `keep` (ascending indexes), moving them.
fn project(row: &mut Option<Row>, keep: &[usize]) {
    let Some(values) = row.take() else { return };
    let mut next = keep.iter().peekable();
    let projected = values
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| {
            if next.peek() == Some(&&i) {
                next.next();
                Some(v)
            } else {
                None
            }
        })
        .collect();
    *row = Some(projected);
}

pub async fn run(
    mut transformer: Transformer,
    mut rx: Receiver<Batch>,
    tx: Sender<Batch>,
    stop: CancellationToken,
) -> Result<(), PipelineError> {
    while let Some(msg) = rx.recv().await {
        let mut batch = msg.into_inner();
        transformer.transform(&mut batch)?;
        let bytes = match &batch.body {
            BatchBody::Rows(rows) => rows.iter().map(RowChange::size_hint).sum(),
            BatchBody::Ddl(d) => d.sql.len(),
        };
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            r = tx.send(batch, bytes) => if r.is_err() { return Ok(()) },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{ColumnRule, Route, TablePattern};
    use sluice_core::schema::type_code;
    use sluice_core::{ChangeKind, Column, Value};

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            type_code: type_code::LONG,
            meta: 0,
            nullable: true,
            unsigned: false,
            collation: None,
            labels: None,
        }
    }

    fn exclude(table: &str, column: &str) -> ColumnRule {
        ColumnRule {
            table: TablePattern::new(table).unwrap(),
            include: vec![],
            exclude: vec![column.into()],
            rename: vec![],
        }
    }

    fn users() -> Arc<TableSchema> {
        Arc::new(TableSchema {
            schema: "shop".into(),
            table: "users".into(),
            columns: vec![col("id"), col("password_hash"), col("name")],
            primary_key: vec![0],
            has_names: true,
        })
    }

    fn change(table: &Arc<TableSchema>) -> RowChange {
        RowChange {
            table: Arc::clone(table),
            kind: ChangeKind::Update,
            before: Some(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
            after: Some(vec![Value::Int(1), Value::Int(20), Value::Int(30)]),
        }
    }

    #[test]
    fn routes_and_drops_columns_and_reindexes_the_key() {
        let route = Route::new(TablePattern::new(r"shop\.(.*)").unwrap(), "shop_copy.$1").unwrap();
        let rule = exclude(r"shop\.users", "password_hash");
        let mut t = Transformer::new(TransformConfig {
            filter: Filter::default(),
            routes: Routes::new(vec![route]),
            columns: ColumnRules::new(vec![rule]),
        });
        let users = users();
        let mut c = change(&users);
        t.transform_change(&mut c).unwrap();
        assert_eq!(c.table.qualified_name(), "shop_copy.users");
        let names: Vec<_> = c.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name"]);
        assert_eq!(c.table.primary_key, vec![0]);
        assert_eq!(c.before, Some(vec![Value::Int(1), Value::Int(3)]));
        assert_eq!(c.after, Some(vec![Value::Int(1), Value::Int(30)]));
        // Same source Arc: same target Arc.
        let mut d = change(&users);
        t.transform_change(&mut d).unwrap();
        assert!(Arc::ptr_eq(&c.table, &d.table));
    }

    #[test]
    fn dropping_a_key_column_is_refused() {
        let rule = exclude(r"shop\.users", "ID");
        let mut t = Transformer::new(TransformConfig {
            columns: ColumnRules::new(vec![rule]),
            ..TransformConfig::default()
        });
        let err = t.transform_change(&mut change(&users())).unwrap_err();
        assert!(err.to_string().contains("primary key"), "{err}");
    }
}
