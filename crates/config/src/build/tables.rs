//! What is replicated and under which names: `filter`, `routes` and
//! `columns` (table patterns, column lists and renames).

use crate::error::ErrorKind;
use crate::rules::{ColumnRule, ColumnRules, Filter, Route, Routes, TablePattern};
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::{Kind, Node, Pos};

use super::{section, MAX_NAME};

/// A regex on `schema.table`.
fn pattern(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<TablePattern> {
    let text = cx.nonempty_string(node, path)?;
    match TablePattern::new(&text.value) {
        Ok(p) => Some(p),
        Err(why) => {
            cx.error(
                text.pos,
                path,
                ErrorKind::BadRegex,
                format!("invalid regex `{}`: {why}", text.shown),
            );
            None
        }
    }
}

fn patterns(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Vec<TablePattern>> {
    let items = cx.seq(node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match pattern(cx, item, &format!("{path}[{i}]")) {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(super) fn filter(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Filter> {
    let mut map = section(cx, root, "filter", field, &["include", "exclude"])?;
    let include = match map.optional("include") {
        Some(f) => patterns(cx, f.node, "filter.include"),
        None => Some(Vec::new()),
    };
    let exclude = match map.optional("exclude") {
        Some(f) => patterns(cx, f.node, "filter.exclude"),
        None => Some(Vec::new()),
    };
    map.finish(cx);
    Some(Filter::new(include?, exclude?))
}

pub(super) fn routes(cx: &mut Cx<'_>, _root: &MapReader<'_>, field: Field<'_>) -> Option<Routes> {
    let items = cx.seq(field.node, "routes")?;
    let mut routes = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("routes[{i}]");
        let Some(mut map) = cx.map(item, &path, item.pos, &["match", "to"]) else {
            ok = false;
            continue;
        };
        let pattern = map
            .required(cx, "match")
            .and_then(|f| pattern(cx, f.node, &format!("{path}.match")));
        let to = map
            .required(cx, "to")
            .and_then(|f| cx.nonempty_string(f.node, &format!("{path}.to")));
        map.finish(cx);
        match (pattern, to) {
            (Some(pattern), Some(to)) => match Route::new(pattern, &to.value) {
                Ok(route) => routes.push(route),
                Err(why) => {
                    cx.error(
                        to.pos,
                        &format!("{path}.to"),
                        ErrorKind::BadRegex,
                        format!("invalid route target `{}`: {why}", to.shown),
                    );
                    ok = false;
                }
            },
            _ => ok = false,
        }
    }
    ok.then(|| Routes::new(routes))
}

/// A list of column names: non-empty, at most 64 characters, no duplicates
/// (case-insensitively).
fn column_names(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Vec<String>> {
    let items = cx.seq(node, path)?;
    let mut names: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match column_name(cx, item, &item_path) {
            Some(name) if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) => {
                cx.invalid(
                    item.pos,
                    &item_path,
                    format!("column `{name}` is listed twice"),
                );
                ok = false;
            }
            Some(name) => names.push(name),
            None => ok = false,
        }
    }
    ok.then_some(names)
}

fn column_name(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<String> {
    let text = cx.nonempty_string(node, path)?;
    if text.value.chars().count() > MAX_NAME {
        cx.invalid(
            text.pos,
            path,
            format!("column names have at most {MAX_NAME} characters"),
        );
        return None;
    }
    Some(text.value)
}

pub(super) fn columns(
    cx: &mut Cx<'_>,
    _root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<ColumnRules> {
    const KEYS: &[&str] = &["table", "include", "exclude", "rename"];
    let items = cx.seq(field.node, "columns")?;
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("columns[{i}]");
        let Some(mut map) = cx.map(item, &path, item.pos, KEYS) else {
            ok = false;
            continue;
        };
        let table = map
            .required(cx, "table")
            .and_then(|f| pattern(cx, f.node, &format!("{path}.table")));
        let include_field = map.optional("include");
        let include = match include_field {
            Some(f) => column_names(cx, f.node, &format!("{path}.include")),
            None => Some(Vec::new()),
        };
        let exclude_field = map.optional("exclude");
        let exclude = match exclude_field {
            Some(f) => column_names(cx, f.node, &format!("{path}.exclude")),
            None => Some(Vec::new()),
        };
        let rename = match map.optional("rename") {
            Some(f) => renames(cx, f, &format!("{path}.rename")),
            None => Some(Vec::new()),
        };
        map.finish(cx);
        if let (Some(inc), Some(exc), Some(field)) = (&include, &exclude, exclude_field) {
            if !inc.is_empty() && !exc.is_empty() {
                cx.invalid(
                    field.key_pos,
                    &format!("{path}.exclude"),
                    "give either `include` or `exclude`, not both",
                );
                ok = false;
            }
        }
        if let (Some(include), Some(exclude), Some(rename)) = (&include, &exclude, &rename) {
            for (from, _, key_pos) in rename {
                let dropped = exclude.iter().any(|c| c.eq_ignore_ascii_case(from))
                    || (!include.is_empty()
                        && !include.iter().any(|c| c.eq_ignore_ascii_case(from)));
                if dropped {
                    cx.invalid(
                        *key_pos,
                        &format!("{path}.rename.{from}"),
                        format!("column `{from}` is renamed but not replicated"),
                    );
                    ok = false;
                }
            }
        }
        match (table, include, exclude, rename) {
            (Some(table), Some(include), Some(exclude), Some(rename)) => rules.push(ColumnRule {
                table,
                include,
                exclude,
                rename: rename.into_iter().map(|(from, to, _)| (from, to)).collect(),
            }),
            _ => ok = false,
        }
    }
    ok.then(|| ColumnRules::new(rules))
}

fn renames(cx: &mut Cx<'_>, field: Field<'_>, path: &str) -> Option<Vec<(String, String, Pos)>> {
    let Kind::Map(entries) = &field.node.kind else {
        cx.map(field.node, path, field.key_pos, &[])?;
        return None;
    };
    let mut out: Vec<(String, String, Pos)> = Vec::new();
    let mut ok = true;
    for entry in entries {
        let entry_path = format!("{path}.{}", entry.key);
        if entry.key.is_empty() || entry.key.chars().count() > MAX_NAME {
            cx.invalid(
                entry.key_pos,
                &entry_path,
                format!("column names have 1 to {MAX_NAME} characters"),
            );
            ok = false;
            continue;
        }
        if out
            .iter()
            .any(|(from, _, _)| from.eq_ignore_ascii_case(&entry.key))
        {
            cx.error(
                entry.key_pos,
                &entry_path,
                ErrorKind::DuplicateKey,
                "column renamed twice",
            );
            ok = false;
            continue;
        }
        match column_name(cx, &entry.value, &entry_path) {
            Some(to) => out.push((entry.key.clone(), to, entry.key_pos)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
