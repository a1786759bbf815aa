//! What the loader learns about target tables: the replication key of tables
//! whose table map has no primary key, and each table's generated columns.
//!
//! # Replication keys
//!
//! Tables without a primary key in their table map get a replication key
//! from the *target*: its PRIMARY KEY, else its smallest unique index whose
//! columns are all NOT NULL, whole (no prefix) and present in the source
//! rows — the index InnoDB itself would cluster on.
//!
//! # Generated columns
//!
//! Row images carry the values of generated columns (MariaDB logs VIRTUAL
//! and STORED ones), but a target refuses explicit values for them (1906,
//! 3105). Each target table's generated columns are read once from
//! `information_schema` (again after [`Loader::forget_table`]) and left out
//! of every statement: the target computes them from the other columns.
//!
//!
//! Both are looked up once per table and cached until
//! [`Loader::forget_table`] (after DDL).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sluice_core::{RowChange, TableSchema};

use super::Loader;
use crate::error::LoadError;
use crate::sql;

/// Most tables named in one lookup of generated columns.
const LOOKUP_TABLES_PER_QUERY: usize = 500;

/// Target-side replication keys of tables whose table map has no primary
/// key: (schema, table) → key column names, or `None` for no usable key.
pub(super) type TargetKeys = HashMap<(String, String), Option<Vec<String>>>;

/// Generated columns of target tables: (schema, table) → column names.
pub(super) type GeneratedColumns = HashMap<(String, String), Arc<[String]>>;

/// The columns written per table of one batch, for the tables that do not
/// write them all (keyed by the address of the table map's schema: one
/// `Arc` per table version, alive for the batch).
#[derive(Debug, Default)]
pub(super) struct WriteColumns(Vec<(usize, Arc<[usize]>)>);

impl WriteColumns {
    /// The columns `table` writes, or `None` for all.
    pub(super) fn of(&self, table: &TableSchema) -> Option<Arc<[usize]>> {
        let at = address(table);
        self.0
            .iter()
            .find(|(a, _)| *a == at)
            .map(|(_, c)| Arc::clone(c))
    }
}

fn address(table: &TableSchema) -> usize {
    std::ptr::from_ref(table) as usize
}

/// The loader's cache of target table facts.
#[derive(Default)]
pub(super) struct Catalog {
    /// Target-side keys of tables whose table map has no primary key:
    /// (schema, table) → key column names, or `None` for no usable key.
    pub(super) keys: Mutex<TargetKeys>,
    /// Generated columns of each target table written so far.
    pub(super) generated: Mutex<GeneratedColumns>,
}

impl Loader {
    /// Forget the cached target key of a table (after DDL on it).
    pub fn forget_table(&self, schema: &str, table: &str) {
        let name = (schema.to_string(), table.to_string());
        self.catalog
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        self.catalog
            .generated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }

    /// Forget every cached target key.
    pub fn forget_all_tables(&self) {
        self.catalog
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.catalog
            .generated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The columns each table of the batch writes: all but the target's
    /// generated columns (see the module docs). Rows are not touched;
    /// statements leave those columns out ([`crate::sql::Target`]).
    pub(super) async fn write_columns(
        &self,
        batch_id: u64,
        changes: &[RowChange],
    ) -> Result<WriteColumns, LoadError> {
        // Distinct tables by pointer (one Arc per table version); a set,
        // not a list: a batch spread over thousands of tables would make a
        // list's scan quadratic.
        let mut seen: HashSet<usize> = HashSet::new();
        let mut tables: Vec<&Arc<TableSchema>> = Vec::new();
        let mut last: Option<&Arc<TableSchema>> = None;
        for c in changes {
            // Consecutive changes mostly share a table: skip the set then.
            if !last.is_some_and(|t| Arc::ptr_eq(t, &c.table)) && seen.insert(address(&c.table)) {
                tables.push(&c.table);
            }
            last = Some(&c.table);
        }
        // Tables not seen before are looked up together, a schema's worth
        // per query: one round trip per table would make the first batch
        // over thousands of tables wait on thousands of round trips.
        let mut missing: Vec<(&str, &str)> = {
            let cache = self
                .catalog
                .generated
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            tables
                .iter()
                .filter(|t| !cache.contains_key(&(t.schema.clone(), t.table.clone())))
                .map(|t| (t.schema.as_str(), t.table.as_str()))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        for group in missing.chunk_by(|a, b| a.0 == b.0) {
            for names in group.chunks(LOOKUP_TABLES_PER_QUERY) {
                let schema = names[0].0;
                let found = self.lookup_generated(batch_id, schema, names).await?;
                let mut cache = self
                    .catalog
                    .generated
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (_, table) in names {
                    // Exact names first; a server with lower_case_table_names
                    // reports its own spelling.
                    let exact = found.iter().any(|(t, _)| t == table);
                    let cols: Vec<String> = found
                        .iter()
                        .filter(|(t, _)| {
                            if exact {
                                t == table
                            } else {
                                t.eq_ignore_ascii_case(table)
                            }
                        })
                        .map(|(_, c)| c.clone())
                        .collect();
                    cache.insert((schema.to_string(), (*table).to_string()), cols.into());
                }
            }
        }
        let cache = self
            .catalog
            .generated
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = WriteColumns::default();
        for t in tables {
            let Some(generated) = cache.get(&(t.schema.clone(), t.table.clone())) else {
                continue;
            };
            if generated.is_empty() {
                continue;
            }
            let keep: Vec<usize> = (0..t.columns.len())
                .filter(|&i| {
                    !generated
                        .iter()
                        .any(|g| g.eq_ignore_ascii_case(&t.columns[i].name))
                })
                .collect();
            if keep.len() < t.columns.len() {
                out.0.push((address(t), keep.into()));
            }
        }
        Ok(out)
    }

    /// (table, column) of the generated (virtual or stored) columns of the
    /// target tables `names` (all in `schema`).
    async fn lookup_generated(
        &self,
        batch_id: u64,
        schema: &str,
        names: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, LoadError> {
        let what = format!(
            "reading the generated columns of {} table(s) of {} on the target",
            names.len(),
            sql::quote_ident(schema)
        );
        let marks = vec!["?"; names.len()].join(",");
        let query = format!(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({marks}) \
             AND (EXTRA LIKE '%VIRTUAL GENERATED%' OR EXTRA LIKE '%STORED GENERATED%' \
                  OR EXTRA IN ('VIRTUAL', 'PERSISTENT'))"
        );
        self.retrying(&what, || async {
            let mut q = sqlx::query_as::<_, (String, String)>(&query).bind(schema);
            for (_, table) in names {
                q = q.bind(*table);
            }
            q.fetch_all(&self.pool)
                .await
                .map_err(|e| LoadError::target(Some(batch_id), what.as_str(), e))
        })
        .await
        .0
    }

    /// Target-side keys of the batch's tables that have no primary key in
    /// their table map.
    pub(super) async fn resolve_keys(
        &self,
        batch_id: u64,
        changes: &[RowChange],
    ) -> Result<TargetKeys, LoadError> {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for c in changes {
            let t = &c.table;
            if t.primary_key.is_empty()
                && !wanted.iter().any(|(s, n)| *s == t.schema && *n == t.table)
            {
                wanted.push((t.schema.clone(), t.table.clone()));
            }
        }
        let mut out = HashMap::new();
        for name in wanted {
            let cached = self
                .catalog
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
            let key = match cached {
                Some(k) => k,
                None => {
                    let k = self.lookup_target_key(batch_id, &name.0, &name.1).await?;
                    self.catalog
                        .keys
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), k.clone());
                    k
                }
            };
            out.insert(name, key);
        }
        Ok(out)
    }

    async fn lookup_target_key(
        &self,
        batch_id: u64,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<String>>, LoadError> {
        let what = format!(
            "reading the unique keys of {}.{} on the target",
            sql::quote_ident(schema),
            sql::quote_ident(table)
        );
        self.retrying(&what, || async {
            sqlx::query_as::<_, (String, String, String, String)>(
                "SELECT INDEX_NAME, COLUMN_NAME, NULLABLE, IF(SUB_PART IS NULL, 'whole', 'prefix') \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map(|rows| choose_unique_key(&rows))
            .map_err(|e| LoadError::target(Some(batch_id), what.as_str(), e))
        })
        .await
        .0
    }
}

/// position: PRIMARY if present, else the smallest unique index whose
/// columns are all NOT NULL and whole (ties by name).
pub(super) fn choose_unique_key(rows: &[(String, String, String, String)]) -> Option<Vec<String>> {
    let mut indexes: Vec<(&str, Vec<String>, bool)> = Vec::new();
    for (index, column, nullable, part) in rows {
        let usable = nullable != "YES" && part == "whole";
        match indexes.last_mut() {
            Some((name, cols, ok)) if *name == index.as_str() => {
                cols.push(column.clone());
                *ok &= usable;
            }
            _ => indexes.push((index.as_str(), vec![column.clone()], usable)),
        }
    }
    if let Some((_, cols, _)) = indexes.iter().find(|(n, _, _)| *n == "PRIMARY") {
        return Some(cols.clone());
    }
    indexes
        .into_iter()
        .filter(|(_, _, ok)| *ok)
        .min_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)))
        .map(|(_, cols, _)| cols)
}

/// The replication key of a table: its primary key, else the target's
/// unique key mapped onto this table map's columns.
pub(super) fn replication_key(t: &TableSchema, keys: &TargetKeys) -> Option<Vec<usize>> {
    if !t.primary_key.is_empty() {
        return Some(t.primary_key.clone());
    }
    let names = keys.get(&(t.schema.clone(), t.table.clone()))?.as_ref()?;
    names.iter().map(|n| t.column_index(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_key_choice() {
        let row = |i: &str, c: &str, n: &str, p: &str| {
            (i.to_string(), c.to_string(), n.to_string(), p.to_string())
        };
        // Nullable and prefix indexes are skipped; the smallest wins.
        let rows = vec![
            row("a_nullable", "x", "YES", "whole"),
            row("b_pair", "y", "", "whole"),
            row("b_pair", "z", "", "whole"),
            row("c_prefix", "t", "", "prefix"),
            row("d_single", "w", "", "whole"),
        ];
        assert_eq!(choose_unique_key(&rows), Some(vec!["w".to_string()]));
        let rows = vec![
            row("PRIMARY", "id", "", "whole"),
            row("d", "w", "", "whole"),
        ];
        assert_eq!(choose_unique_key(&rows), Some(vec!["id".to_string()]));
        assert_eq!(choose_unique_key(&[row("u", "x", "YES", "whole")]), None);
        assert_eq!(choose_unique_key(&[]), None);
    }
}
