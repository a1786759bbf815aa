//! Resolving table references against the filter and routes, and rewriting
//! them to target names (see "Filter and route rules" in [`super`]).

use sluice_config::{Filter, Routes};

use super::lex::{lex, TokKind};
use super::parse::{not_table, NameRef, Parser};
use super::types::{DdlDecision, DdlKind, RoutedDdl};

/// Decides whether `sql`, run with default schema `default_schema` (empty for
/// none), is replicated, and rewrites its table references to target names.
/// See the module documentation for the rules.
pub fn route_ddl(default_schema: &str, sql: &str, filter: &Filter, routes: &Routes) -> DdlDecision {
    match analyse(default_schema, sql, filter, routes) {
        Ok(routed) => DdlDecision::Apply(routed),
        Err(reason) => DdlDecision::Ignore { reason },
    }
}

/// `Err` is the reason the statement is ignored.
pub(super) type Outcome = Result<RoutedDdl, String>;

pub(super) fn analyse(
    default_schema: &str,
    sql: &str,
    filter: &Filter,
    routes: &Routes,
) -> Outcome {
    let lexed = lex(sql).map_err(|e| format!("cannot parse: {e}"))?;
    let ctx = Ctx {
        sql,
        default_schema,
        filter,
        routes,
        markers: &lexed.markers,
    };
    let mut p = Parser {
        sql,
        toks: &lexed.tokens,
        pos: 0,
    };
    let Some(first) = p.peek() else {
        return Err("empty statement".into());
    };
    if first.kind != TokKind::Word {
        return Err("not a table statement".into());
    }
    let word = p.text(first).to_ascii_uppercase();
    p.bump();
    match word.as_str() {
        "CREATE" => create(&mut p, &ctx),
        "ALTER" => alter(&mut p, &ctx),
        "DROP" => drop(&mut p, &ctx),
        "RENAME" => rename(&mut p, &ctx),
        "TRUNCATE" => truncate(&mut p, &ctx),
        _ => Err(not_table(&p, &word)),
    }
}

pub(super) struct Ctx<'a> {
    pub(super) sql: &'a str,
    pub(super) default_schema: &'a str,
    pub(super) filter: &'a Filter,
    pub(super) routes: &'a Routes,
    pub(super) markers: &'a [(usize, usize)],
}

/// A reference qualified with the default schema.
#[derive(Debug, Clone)]
pub(super) struct Ref {
    pub(super) name: NameRef,
    pub(super) source: (String, String),
    /// A name the statement creates (its target schema must exist).
    pub(super) new_name: bool,
}

pub(super) type Edit = (usize, usize, String);

impl Ctx<'_> {
    pub(super) fn resolve(&self, name: NameRef, new_name: bool) -> Result<Ref, String> {
        let schema = match &name.schema {
            Some(schema) => schema.clone(),
            None if self.default_schema.is_empty() => {
                return Err("unqualified table name and no default schema".into())
            }
            None => self.default_schema.to_string(),
        };
        let source = (schema, name.table.clone());
        Ok(Ref {
            name,
            source,
            new_name,
        })
    }

    pub(super) fn includes(&self, r: &Ref) -> bool {
        self.filter.includes(&r.source.0, &r.source.1)
    }

    /// The subject must be replicated.
    pub(super) fn check_subject(&self, subject: &Ref) -> Result<(), String> {
        if self.includes(subject) {
            Ok(())
        } else {
            Err(format!(
                "table {} is filtered out",
                display(&subject.source)
            ))
        }
    }

    /// Applies `edits` to `sql[start..end]`. Edits must lie inside the range,
    /// not overlap each other, and not touch an executable comment marker.
    pub(super) fn splice(
        &self,
        start: usize,
        end: usize,
        mut edits: Vec<Edit>,
    ) -> Result<String, String> {
        edits.sort_by_key(|e| e.0);
        let mut out = String::with_capacity(end.saturating_sub(start) + 32);
        let mut at = start;
        for (s, e, replacement) in edits {
            if s < at || e > end || s > e {
                return Err("cannot rewrite: overlapping table references".into());
            }
            if self.markers.iter().any(|&(ms, me)| ms < e && me > s) {
                return Err(
                    "cannot rewrite: a table reference spans an executable comment marker".into(),
                );
            }
            out.push_str(self.text(at, s)?);
            out.push_str(&replacement);
            at = e;
        }
        out.push_str(self.text(at, end)?);
        Ok(out)
    }

    pub(super) fn text(&self, start: usize, end: usize) -> Result<&str, String> {
        self.sql
            .get(start..end)
            .ok_or_else(|| "cannot rewrite: invalid span".to_string())
    }
}

/// Accumulates the rewrite of one statement.
#[derive(Default)]
pub(super) struct Out {
    pub(super) edits: Vec<Edit>,
    pub(super) source_tables: Vec<(String, String)>,
    pub(super) target_tables: Vec<(String, String)>,
    pub(super) create_schemas: Vec<String>,
}

impl Out {
    /// Routes `r`, records it, and returns its replacement text.
    pub(super) fn route(&mut self, ctx: &Ctx<'_>, r: &Ref) -> String {
        let target = ctx.routes.route(&r.source.0, &r.source.1);
        if r.new_name && !self.create_schemas.contains(&target.0) {
            self.create_schemas.push(target.0.clone());
        }
        let replacement = quote_name(&target);
        self.source_tables.push(r.source.clone());
        self.target_tables.push(target);
        replacement
    }

    /// Routes `r` and replaces it in place.
    pub(super) fn replace(&mut self, ctx: &Ctx<'_>, r: &Ref) {
        let replacement = self.route(ctx, r);
        self.edits.push((r.name.start, r.name.end, replacement));
    }

    pub(super) fn finish(self, ctx: &Ctx<'_>, kind: DdlKind) -> Outcome {
        let sql = ctx.splice(0, ctx.sql.len(), self.edits)?;
        Ok(RoutedDdl {
            kind,
            sql,
            source_tables: self.source_tables,
            target_tables: self.target_tables,
            create_schemas: self.create_schemas,
        })
    }
}

/// One item of a `DROP TABLE` or `RENAME TABLE` list.
pub(super) struct Item {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) refs: Vec<Ref>,
}

/// Rewrites a list of items: in place when every item is kept, otherwise by
/// replacing the whole list with the kept items joined by `", "`.
pub(super) fn rewrite_list(
    ctx: &Ctx<'_>,
    items: &[Item],
    keep: &[bool],
    out: &mut Out,
) -> Result<(), String> {
    if keep.iter().all(|k| *k) {
        for r in items.iter().flat_map(|i| &i.refs) {
            out.replace(ctx, r);
        }
        return Ok(());
    }
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        return Ok(());
    };
    let mut texts = Vec::new();
    for (item, _) in items.iter().zip(keep).filter(|(_, k)| **k) {
        let edits = item
            .refs
            .iter()
            .map(|r| (r.name.start, r.name.end, out.route(ctx, r)))
            .collect();
        texts.push(ctx.splice(item.start, item.end, edits)?);
    }
    out.edits.push((first.start, last.end, texts.join(", ")));
    Ok(())
}

pub(super) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) fn quote_name((schema, table): &(String, String)) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

pub(super) fn display((schema, table): &(String, String)) -> String {
    format!("{schema}.{table}")
}

pub(super) fn filtered_out(refs: &[&Ref]) -> String {
    let names: Vec<String> = refs.iter().map(|r| display(&r.source)).collect();
    match names.as_slice() {
        [one] => format!("table {one} is filtered out"),
        _ => format!("tables {} are filtered out", names.join(", ")),
    }
}

pub(super) const TEMPORARY: &str = "temporary table (session-scoped, not replicated)";

// ---------------------------------------------------------------------------
// Statements

pub(super) fn create(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    let start = p.pos;
    p.eat_seq(&["OR", "REPLACE"]);
    let mut temporary = false;
    loop {
        if p.eat_kw("TEMPORARY") {
            temporary = true;
        } else if !p.eat_any(&["ONLINE", "OFFLINE", "UNIQUE", "FULLTEXT", "SPATIAL"]) {
            break;
        }
    }
    if p.eat_kw("TABLE") {
        if temporary {
            return Err(TEMPORARY.into());
        }
        create_table(p, ctx)
    } else if p.eat_kw("INDEX") {
        create_index(p, ctx)
    } else {
        p.pos = start;
        Err(not_table(p, "CREATE"))
    }
}

pub(super) fn create_table(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_seq(&["IF", "NOT", "EXISTS"]);
    let subject = ctx.resolve(p.expect_name("CREATE TABLE")?, true)?;
    ctx.check_subject(&subject)?;
    let mut refs = vec![subject];
    // `LIKE other` or `(LIKE other)`, only right after the name.
    let save = p.pos;
    p.eat_punct(b'(');
    if p.eat_kw("LIKE") {
        refs.push(ctx.resolve(p.expect_name("LIKE")?, false)?);
    } else {
        p.pos = save;
    }
    scan_body(p, ctx, false, &mut refs)?;
    let mut out = Out::default();
    for r in &refs {
        out.replace(ctx, r);
    }
    out.finish(ctx, DdlKind::CreateTable)
}

/// Scans the rest of a CREATE/ALTER TABLE statement for references:
/// `REFERENCES name`, `UNION [=] (names)` and, for ALTER, `RENAME [TO|AS]
/// name` and `TABLE name` (partition exchange/conversion).
pub(super) fn scan_body(
    p: &mut Parser<'_>,
    ctx: &Ctx<'_>,
    alter: bool,
    refs: &mut Vec<Ref>,
) -> Result<(), String> {
    while p.peek().is_some() {
        if p.eat_kw("REFERENCES") {
            refs.push(ctx.resolve(p.expect_name("REFERENCES")?, false)?);
        } else if p.eat_kw("UNION") {
            p.eat_punct(b'=');
            for name in p.paren_name_list().unwrap_or_default() {
                refs.push(ctx.resolve(name, false)?);
            }
        } else if alter && p.eat_kw("RENAME") {
            if p.at_any(&["COLUMN", "INDEX", "KEY"]) {
                continue;
            }
            if !p.eat_kw("TO") {
                p.eat_kw("AS");
            }
            refs.push(ctx.resolve(p.expect_name("RENAME")?, true)?);
        } else if alter && p.at_kw("TABLE") {
            let new_name = p.prev_is_kw("TO");
            p.bump();
            if let Some(name) = p.name() {
                refs.push(ctx.resolve(name, new_name)?);
            }
        } else {
            p.bump();
        }
    }
    Ok(())
}

pub(super) fn create_index(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_seq(&["IF", "NOT", "EXISTS"]);
    if p.ident().is_none() {
        return Err("cannot parse: expected an index name after CREATE INDEX".into());
    }
    if p.eat_kw("USING") {
        p.bump();
    }
    if !p.eat_kw("ON") {
        return Err("cannot parse: expected ON after the index name".into());
    }
    let subject = ctx.resolve(p.expect_name("ON")?, false)?;
    ctx.check_subject(&subject)?;
    let mut out = Out::default();
    out.replace(ctx, &subject);
    out.finish(ctx, DdlKind::CreateIndex)
}

pub(super) fn alter(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    let start = p.pos;
    p.eat_any(&["ONLINE", "OFFLINE"]);
    p.eat_kw("IGNORE");
    if !p.eat_kw("TABLE") {
        p.pos = start;
        return Err(not_table(p, "ALTER"));
    }
    p.eat_seq(&["IF", "EXISTS"]);
    let subject = ctx.resolve(p.expect_name("ALTER TABLE")?, false)?;
    ctx.check_subject(&subject)?;
    let mut refs = vec![subject];
    scan_body(p, ctx, true, &mut refs)?;
    let mut out = Out::default();
    for r in &refs {
        out.replace(ctx, r);
    }
    out.finish(ctx, DdlKind::AlterTable)
}

pub(super) fn drop(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    let start = p.pos;
    let temporary = p.eat_kw("TEMPORARY");
    if p.eat_any(&["TABLE", "TABLES"]) {
        if temporary {
            return Err(TEMPORARY.into());
        }
        return drop_table(p, ctx);
    }
    if !temporary {
        p.eat_any(&["ONLINE", "OFFLINE"]);
        if p.eat_kw("INDEX") {
            return drop_index(p, ctx);
        }
    }
    p.pos = start;
    Err(not_table(p, "DROP"))
}

pub(super) fn drop_table(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_seq(&["IF", "EXISTS"]);
    let mut items = Vec::new();
    loop {
        let r = ctx.resolve(p.expect_name("DROP TABLE")?, false)?;
        items.push(Item {
            start: r.name.start,
            end: r.name.end,
            refs: vec![r],
        });
        if !p.eat_punct(b',') {
            break;
        }
    }
    let keep: Vec<bool> = items
        .iter()
        .map(|i| i.refs.iter().any(|r| ctx.includes(r)))
        .collect();
    if !keep.contains(&true) {
        let all: Vec<&Ref> = items.iter().flat_map(|i| &i.refs).collect();
        return Err(filtered_out(&all));
    }
    let mut out = Out::default();
    rewrite_list(ctx, &items, &keep, &mut out)?;
    out.finish(ctx, DdlKind::DropTable)
}

pub(super) fn drop_index(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_seq(&["IF", "EXISTS"]);
    if p.ident().is_none() {
        return Err("cannot parse: expected an index name after DROP INDEX".into());
    }
    if !p.eat_kw("ON") {
        return Err("cannot parse: expected ON after the index name".into());
    }
    let subject = ctx.resolve(p.expect_name("ON")?, false)?;
    ctx.check_subject(&subject)?;
    let mut out = Out::default();
    out.replace(ctx, &subject);
    out.finish(ctx, DdlKind::DropIndex)
}

pub(super) fn rename(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    if !p.eat_any(&["TABLE", "TABLES"]) {
        return Err(not_table(p, "RENAME"));
    }
    p.eat_seq(&["IF", "EXISTS"]);
    let mut items = Vec::new();
    loop {
        let from = ctx.resolve(p.expect_name("RENAME TABLE")?, false)?;
        if p.eat_kw("WAIT") {
            p.bump();
        } else {
            p.eat_kw("NOWAIT");
        }
        if !p.eat_kw("TO") {
            return Err("cannot parse: expected TO in RENAME TABLE".into());
        }
        let to = ctx.resolve(p.expect_name("TO")?, true)?;
        items.push(Item {
            start: from.name.start,
            end: to.name.end,
            refs: vec![from, to],
        });
        if !p.eat_punct(b',') {
            break;
        }
    }
    let keep: Vec<bool> = items
        .iter()
        .map(|i| i.refs.iter().any(|r| ctx.includes(r)))
        .collect();
    if !keep.contains(&true) {
        let all: Vec<&Ref> = items.iter().flat_map(|i| &i.refs).collect();
        return Err(filtered_out(&all));
    }
    let mut out = Out::default();
    rewrite_list(ctx, &items, &keep, &mut out)?;
    out.finish(ctx, DdlKind::RenameTable)
}

pub(super) fn truncate(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_kw("TABLE");
    let subject = ctx.resolve(p.expect_name("TRUNCATE")?, false)?;
    ctx.check_subject(&subject)?;
    let mut out = Out::default();
    out.replace(ctx, &subject);
    out.finish(ctx, DdlKind::TruncateTable)
}
