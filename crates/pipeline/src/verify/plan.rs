//! Which tables verify compares and how: the source tables the pipeline's
//! filter includes, each mapped through the pipeline's routes and column
//! rules to its target table and columns — exactly what Transform does to
//! the table's changes (`crate::transform`), so verify compares what the
//! pipeline is supposed to have written.
//!
//! Refused (the table cannot be compared, exit 2): a table missing on the
//! target, a kept column missing there, column rules that drop a key
//! column, a key column whose collation differs between the two sides
//! (each server would order keys differently, so one key range would hold
//! different rows on each side).

use sluice_config::{ColumnRules, Filter, Routes};
use sluice_core::verify::read::DescribedTable;
use sluice_core::verify::{is_utf8mb4, ColumnKind, VerifyColumn, VerifyTable};

/// The source table `schema.table` described as `source`, mapped onto the
/// target described as `target` (`None`: missing there).
pub fn map_table(
    schema: &str,
    table: &str,
    source: &DescribedTable,
    target: Option<&DescribedTable>,
    routes: &Routes,
    columns: &ColumnRules,
) -> Result<VerifyTable, String> {
    let (target_schema, target_table) = routes.route(schema, table);
    let Some(target) = target else {
        return Err(format!(
            "the target has no table {target_schema}.{target_table} (routed from {schema}.{table})"
        ));
    };
    let rule = columns.rule(schema, table);
    let mut out = Vec::new();
    let mut key = Vec::new();
    for col in &source.columns {
        let is_key = source.key.iter().any(|k| k.eq_ignore_ascii_case(&col.name));
        if !rule.is_none_or(|r| r.keeps(&col.name)) {
            if is_key {
                return Err(format!(
                    "the column rules drop `{}`, part of the key of {schema}.{table}",
                    col.name
                ));
            }
            continue;
        }
        let target_name = rule.map_or(col.name.as_str(), |r| r.target_name(&col.name));
        let Some(tcol) = target
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(target_name))
        else {
            return Err(format!(
                "the target table {target_schema}.{target_table} has no column `{target_name}` (from {schema}.{table}.{})",
                col.name
            ));
        };
        if is_key && !tcol.collation.eq_ignore_ascii_case(&col.collation) {
            return Err(format!(
                "key column `{}` of {schema}.{table} has collation {:?} on the source and {:?} on the target: the servers would order keys differently",
                col.name, col.collation, tcol.collation
            ));
        }
        if is_key {
            key.push((
                source
                    .key
                    .iter()
                    .position(|k| k.eq_ignore_ascii_case(&col.name)),
                out.len(),
            ));
        }
        let kind = ColumnKind::from_type(&col.data_type, &col.column_type);
        // The form of a value must be the same on both sides: bounded by
        // the longer of the two declarations.
        let max_bytes = kind
            .max_bytes(col.max_length)
            .zip(kind.max_bytes(tcol.max_length))
            .map(|(s, t)| s.max(t));
        out.push(VerifyColumn {
            source: col.name.clone(),
            target: tcol.name.clone(),
            kind,
            source_utf8mb4: is_utf8mb4(&col.collation),
            target_utf8mb4: is_utf8mb4(&tcol.collation),
            nullable: col.nullable || tcol.nullable,
            max_bytes,
        });
    }
    // Key columns in the key's own order (the index order ranges follow).
    key.sort();
    Ok(VerifyTable {
        source_schema: schema.to_string(),
        source_table: table.to_string(),
        target_schema,
        target_table,
        columns: out,
        key: key.into_iter().map(|(_, i)| i).collect(),
    })
}

/// The source tables to verify: `only` (as `schema.table`, each must exist)
/// or every table `filter` includes.
pub fn select_tables(
    all: &[(String, String)],
    filter: &Filter,
    only: &[String],
) -> Result<Vec<(String, String)>, String> {
    if only.is_empty() {
        return Ok(all
            .iter()
            .filter(|(s, t)| filter.includes(s, t))
            .cloned()
            .collect());
    }
    only.iter()
        .map(|name| {
            all.iter()
                .find(|(s, t)| format!("{s}.{t}") == *name)
                .cloned()
                .ok_or_else(|| format!("the source has no table {name}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{ColumnRule, Route, TablePattern};
    use sluice_core::verify::read::DescribedColumn;

    fn described(cols: &[(&str, &str, &str)], key: &[&str]) -> DescribedTable {
        DescribedTable {
            columns: cols
                .iter()
                .map(|(n, t, c)| DescribedColumn {
                    name: n.to_string(),
                    data_type: t.to_string(),
                    column_type: t.to_string(),
                    collation: c.to_string(),
                    nullable: true,
                    max_length: None,
                })
                .collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn routes_and_column_rules_shape_the_compared_table() {
        let src = described(
            &[
                ("b", "varchar", "utf8mb4_bin"),
                ("id", "int", ""),
                ("secret", "blob", ""),
                ("n", "int", ""),
            ],
            &["id", "b"],
        );
        let tgt = described(
            &[
                ("id", "int", ""),
                ("b", "varchar", "utf8mb4_bin"),
                ("count", "int", ""),
            ],
            &["id", "b"],
        );
        let routes = Routes::new(vec![Route::new(
            TablePattern::new("shop\\.(.*)").unwrap(),
            "copy.$1",
        )
        .unwrap()]);
        let rules = ColumnRules::new(vec![ColumnRule {
            table: TablePattern::new("shop\\.t").unwrap(),
            include: vec![],
            exclude: vec!["secret".into()],
            rename: vec![("n".into(), "count".into())],
        }]);
        let t = map_table("shop", "t", &src, Some(&tgt), &routes, &rules).unwrap();
        assert_eq!(t.target_name(), "copy.t");
        let names: Vec<(&str, &str)> = t
            .columns
            .iter()
            .map(|c| (c.source.as_str(), c.target.as_str()))
            .collect();
        assert_eq!(names, vec![("b", "b"), ("id", "id"), ("n", "count")]);
        // Key order is the index's (id, b), not the table's column order.
        assert_eq!(t.key, vec![1, 0]);
        assert!(map_table("shop", "t", &src, None, &routes, &rules)
            .unwrap_err()
            .contains("copy.t"));
        let other = described(
            &[
                ("id", "int", ""),
                ("b", "varchar", "utf8mb4_general_ci"),
                ("count", "int", ""),
            ],
            &["id"],
        );
        let err = map_table("shop", "t", &src, Some(&other), &routes, &rules).unwrap_err();
        assert!(err.contains("collation"), "{err}");
    }
}
