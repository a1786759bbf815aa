//! Routing of DDL statements from the binlog to the target.
//!
//! A binlog `Query` event carries a DDL statement as SQL text plus the
//! session's default schema (`USE db`). [`route_ddl`] decides whether the
//! statement concerns replicated tables and, if so, rewrites every table
//! reference in it to the fully qualified, backquoted *target* name
//! (`` `tschema`.`ttable` ``, backquotes in names doubled), so the statement
//! runs on the target with no default database. Everything else of the text —
//! column definitions, comments, executable comments, string literals — is
//! kept byte for byte.
//!
//! # Recognised statements
//!
//! - `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name ...`,
//!   including `... LIKE other` and `... (LIKE other)`;
//! - `ALTER [ONLINE|OFFLINE] [IGNORE] TABLE [IF EXISTS] name ...`, with
//!   `RENAME [TO|AS] new` clauses (not `RENAME COLUMN|INDEX|KEY x TO y`) and
//!   MariaDB/MySQL partition clauses naming a table
//!   (`EXCHANGE PARTITION p WITH TABLE t`, `CONVERT PARTITION p TO TABLE t`,
//!   `CONVERT TABLE t TO PARTITION p`);
//! - `DROP [TEMPORARY] TABLE[S] [IF EXISTS] a[, b ...] [RESTRICT|CASCADE]`;
//! - `RENAME TABLE[S] [IF EXISTS] a [WAIT n|NOWAIT] TO b[, c TO d ...]`;
//! - `TRUNCATE [TABLE] name`;
//! - `CREATE [OR REPLACE] [ONLINE|OFFLINE] [UNIQUE|FULLTEXT|SPATIAL] INDEX
//!   [IF NOT EXISTS] idx [USING ...] ON name ...`;
//! - `DROP [ONLINE|OFFLINE] INDEX [IF EXISTS] idx ON name`.
//!
//! In `CREATE TABLE` and `ALTER TABLE` bodies, `REFERENCES name` (foreign
//! keys) and the MERGE engine's `UNION [=] (a, b, ...)` are references too.
//! Every other statement (databases, views, triggers, routines, events,
//! users, grants, sequences, `SET`, `ANALYZE`, `OPTIMIZE`, `FLUSH`, `XA`, ...)
//! is ignored, with a reason naming the statement kind.
//!
//! # Why a lexer is enough
//!
//! Table names in these statements appear only at a few fixed places: right
//! after the leading keywords, after `LIKE`, `REFERENCES`, `RENAME [TO]`,
//! `TO` (in `RENAME TABLE`), `ON` (indexes) and in comma lists. The rest of a
//! statement (column types, defaults, partitioning, options) never needs to
//! be understood, only skipped — and skipping correctly only requires knowing
//! where comments, strings and quoted identifiers start and end, so a word
//! like `REFERENCES` or `shop.users` inside `COMMENT 'shop.users'` is never
//! mistaken for a reference. A small lexer over the text, keeping byte spans,
//! does exactly that and lets us replace only the name tokens. The lexer
//! knows `-- `, `#` and `/* */` comments; the *contents* of executable
//! comments (`/*!NNNNN ... */`, `/*M!NNNNNN ... */`) are lexed as SQL, since
//! the server executes them (MySQL writes e.g.
//! `DROP /*!40005 TEMPORARY */ TABLE ...`), and their markers are kept in the
//! output; backquoted identifiers (`` `a``b` `` is ``a`b``); single- and
//! double-quoted strings with backslash and doubled-quote escapes
//! (`ANSI_QUOTES` is not assumed: a double-quoted token is a string). Input
//! the lexer or the statement grammar cannot follow (unterminated strings or
//! comments, a missing table name) is ignored with a "cannot parse" reason;
//! nothing here panics on arbitrary input.
//!
//! # Filter and route rules
//!
//! - An unqualified name means the default schema; if there is none, the
//!   statement is ignored (the server could not have run it either).
//! - `CREATE TABLE`, `ALTER TABLE`, `TRUNCATE`, `CREATE INDEX`, `DROP INDEX`
//!   are decided on their *subject* (the first name): ignored when the
//!   filter excludes it. Other names in the statement (`LIKE`,
//!   `REFERENCES`, `ALTER ... RENAME TO`, exchanged partitions) are routed
//!   whatever the filter says of them: the statement is about the subject,
//!   and a reference to a table the target lacks fails loudly there rather
//!   than being silently dropped.
//! - `DROP TABLE a, b, c` is decided per name: the statement is rewritten to
//!   drop only the replicated tables (keeping `IF EXISTS` and the rest), and
//!   ignored if there are none.
//! - `RENAME TABLE a TO b, ...` is decided per pair: a pair is kept when its
//!   source *or* its destination is replicated, and both names are routed.
//!   A rename across the filter boundary changes which name holds the
//!   replicated data: a table renamed out of the replicated set must also
//!   move on the target (or a later table under the old name would collide
//!   with it), and a table renamed into it must be there under the new name
//!   for its row events. The common case is a swap through a scratch name
//!   the filter excludes (`RENAME TABLE t TO tmp_t, t2 TO t, tmp_t TO t2`),
//!   which only works if every pair is kept. Pairs with neither side
//!   replicated are removed; if none remains, the statement is ignored.
//! - Temporary tables are never replicated (`CREATE/DROP TEMPORARY TABLE` is
//!   ignored): their rows are not in a row-based binlog, and a temporary
//!   table created on a pooled target connection would shadow the real
//!   table of the same name for that connection's later writes.
//! - Tables in the system schemas are excluded by [`Filter::includes`].
//!
//! # Limitations
//!
//! - Backslash escapes in strings are assumed (no `NO_BACKSLASH_ESCAPES`).
//! - Table references inside a `SELECT` of `CREATE TABLE ... SELECT` are not
//!   rewritten; with row-based logging the server writes such a statement as
//!   a plain `CREATE TABLE` followed by row events.
//! - Where `DROP TABLE` or `RENAME TABLE` lists are shortened, the kept items
//!   are re-joined with `", "`, so comments between list items are lost.

use sluice_config::{Filter, Routes};

/// What kind of statement (for logs and for the pipeline's decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DdlKind {
    CreateTable,
    AlterTable,
    DropTable,
    RenameTable,
    TruncateTable,
    CreateIndex,
    DropIndex,
}

impl DdlKind {
    /// The statement's leading keywords, e.g. `"CREATE TABLE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DdlKind::CreateTable => "CREATE TABLE",
            DdlKind::AlterTable => "ALTER TABLE",
            DdlKind::DropTable => "DROP TABLE",
            DdlKind::RenameTable => "RENAME TABLE",
            DdlKind::TruncateTable => "TRUNCATE TABLE",
            DdlKind::CreateIndex => "CREATE INDEX",
            DdlKind::DropIndex => "DROP INDEX",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedDdl {
    pub kind: DdlKind,
    /// The statement with every table reference replaced by `` `tschema`.`ttable` `` (backticks in names doubled).
    pub sql: String,
    /// Source tables referenced, in order of appearance, as (schema, table), after qualifying with the default schema.
    pub source_tables: Vec<(String, String)>,
    /// The same references after routing.
    pub target_tables: Vec<(String, String)>,
    /// Target schemas that must exist before the statement runs (for CREATE TABLE, RENAME TABLE and ALTER TABLE .. RENAME: the schemas of the new names), deduplicated.
    pub create_schemas: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DdlDecision {
    Apply(RoutedDdl),
    /// Not replicated; `reason` is a short human phrase for a log line, e.g. "not a table statement (CREATE DATABASE)", "table shop.tmp_x is filtered out", "unqualified table name and no default schema".
    Ignore {
        reason: String,
    },
}

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
type Outcome = Result<RoutedDdl, String>;

fn analyse(default_schema: &str, sql: &str, filter: &Filter, routes: &Routes) -> Outcome {
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

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokKind {
    /// A bare word: keyword or unquoted identifier.
    Word,
    /// A backquoted identifier, unescaped.
    Quoted(String),
    /// A single- or double-quoted string.
    Str,
    /// A run of digits.
    Num,
    /// Any other single byte.
    Punct(u8),
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokKind,
    start: usize,
    end: usize,
}

struct Lexed {
    /// Significant tokens (no whitespace, comments or markers).
    tokens: Vec<Token>,
    /// Byte spans of executable comment markers (`/*!50100`, `/*M!`, `*/`).
    markers: Vec<(usize, usize)>,
}

/// Bytes of bare words: ASCII letters, digits, `_`, `$` and any non-ASCII
/// byte (so a word always covers whole UTF-8 sequences and every token
/// boundary is a char boundary).
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn lex(sql: &str) -> Result<Lexed, &'static str> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut tokens = Vec::new();
    let mut markers = Vec::new();
    let mut in_exec = false;
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#'
            || (c == b'-'
                && b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|&d| d.is_ascii_whitespace() || d.is_ascii_control()))
        {
            i = b[i..]
                .iter()
                .position(|&d| d == b'\n')
                .map_or(n, |p| i + p + 1);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            if let Some(len) = exec_comment_open(&b[i..]) {
                if in_exec {
                    return Err("nested executable comment");
                }
                markers.push((i, i + len));
                in_exec = true;
                i += len;
            } else {
                match find(b, i + 2, b"*/") {
                    Some(j) => i = j + 2,
                    None => return Err("unterminated comment"),
                }
            }
        } else if c == b'*' && in_exec && b.get(i + 1) == Some(&b'/') {
            markers.push((i, i + 2));
            in_exec = false;
            i += 2;
        } else if c == b'`' {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                let close = b[j..]
                    .iter()
                    .position(|&d| d == b'`')
                    .map(|p| j + p)
                    .ok_or("unterminated quoted identifier")?;
                value.push_str(sql.get(j..close).ok_or("invalid identifier")?);
                if b.get(close + 1) == Some(&b'`') {
                    value.push('`');
                    j = close + 2;
                } else {
                    j = close + 1;
                    break;
                }
            }
            tokens.push(Token {
                kind: TokKind::Quoted(value),
                start: i,
                end: j,
            });
            i = j;
        } else if c == b'\'' || c == b'"' {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return Err("unterminated string"),
                    Some(b'\\') => j += 2,
                    Some(&d) if d == c => {
                        if b.get(j + 1) == Some(&c) {
                            j += 2;
                        } else {
                            j += 1;
                            break;
                        }
                    }
                    Some(_) => j += 1,
                }
            }
            tokens.push(Token {
                kind: TokKind::Str,
                start: i,
                end: j,
            });
            i = j;
        } else if is_word_byte(c) {
            let j = b[i..]
                .iter()
                .position(|&d| !is_word_byte(d))
                .map_or(n, |p| i + p);
            let kind = if b[i..j].iter().all(u8::is_ascii_digit) {
                TokKind::Num
            } else {
                TokKind::Word
            };
            tokens.push(Token {
                kind,
                start: i,
                end: j,
            });
            i = j;
        } else {
            tokens.push(Token {
                kind: TokKind::Punct(c),
                start: i,
                end: i + 1,
            });
            i += 1;
        }
    }
    if in_exec {
        return Err("unterminated executable comment");
    }
    Ok(Lexed { tokens, markers })
}

/// Length of an executable comment opener at the start of `b`
/// (`/*!`, `/*M!`, with an optional 5- or 6-digit version), if it is one.
fn exec_comment_open(b: &[u8]) -> Option<usize> {
    let prefix = if b.starts_with(b"/*!") {
        3
    } else if b.starts_with(b"/*M!") {
        4
    } else {
        return None;
    };
    let digits = b[prefix..]
        .iter()
        .take_while(|d| d.is_ascii_digit())
        .count();
    let version = match digits {
        5 => 5,
        d if d >= 6 => 6,
        _ => 0,
    };
    Some(prefix + version)
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

// ---------------------------------------------------------------------------
// Parser helpers

/// A table name as written: `[schema .] table`, with its byte span.
#[derive(Debug, Clone)]
struct NameRef {
    schema: Option<String>,
    table: String,
    start: usize,
    end: usize,
}

struct Parser<'s> {
    sql: &'s str,
    toks: &'s [Token],
    pos: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&'s Token> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn text(&self, t: &Token) -> &'s str {
        self.sql.get(t.start..t.end).unwrap_or("")
    }

    fn is_kw(&self, t: Option<&Token>, kw: &str) -> bool {
        matches!(t, Some(t) if t.kind == TokKind::Word && self.text(t).eq_ignore_ascii_case(kw))
    }

    fn at_kw(&self, kw: &str) -> bool {
        self.is_kw(self.peek(), kw)
    }

    fn at_any(&self, kws: &[&str]) -> bool {
        kws.iter().any(|kw| self.at_kw(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.at_kw(kw);
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_any(&mut self, kws: &[&str]) -> bool {
        let hit = self.at_any(kws);
        if hit {
            self.bump();
        }
        hit
    }

    /// Consumes the keywords `kws` in sequence, or nothing.
    fn eat_seq(&mut self, kws: &[&str]) -> bool {
        let hit = kws
            .iter()
            .enumerate()
            .all(|(k, kw)| self.is_kw(self.toks.get(self.pos + k), kw));
        if hit {
            self.pos += kws.len();
        }
        hit
    }

    fn at_punct(&self, c: u8) -> bool {
        matches!(self.peek(), Some(t) if t.kind == TokKind::Punct(c))
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        let hit = self.at_punct(c);
        if hit {
            self.bump();
        }
        hit
    }

    fn prev_is_kw(&self, kw: &str) -> bool {
        self.pos
            .checked_sub(1)
            .is_some_and(|p| self.is_kw(self.toks.get(p), kw))
    }

    /// A bare or backquoted identifier: (value, start, end).
    fn ident(&mut self) -> Option<(String, usize, usize)> {
        let t = self.peek()?;
        let value = match &t.kind {
            TokKind::Word => self.text(t).to_string(),
            TokKind::Quoted(v) if !v.is_empty() => v.clone(),
            _ => return None,
        };
        self.bump();
        Some((value, t.start, t.end))
    }

    /// `ident [. ident]`; consumes nothing if there is no name here.
    fn name(&mut self) -> Option<NameRef> {
        let save = self.pos;
        let result = self.name_inner();
        if result.is_none() {
            self.pos = save;
        }
        result
    }

    fn name_inner(&mut self) -> Option<NameRef> {
        let (first, start, end) = self.ident()?;
        if !self.eat_punct(b'.') {
            return Some(NameRef {
                schema: None,
                table: first,
                start,
                end,
            });
        }
        let (table, _, end) = self.ident()?;
        Some(NameRef {
            schema: Some(first),
            table,
            start,
            end,
        })
    }

    /// A name, or a "cannot parse" reason mentioning where it was expected.
    fn expect_name(&mut self, after: &str) -> Result<NameRef, String> {
        self.name()
            .ok_or_else(|| format!("cannot parse: expected a table name after {after}"))
    }

    /// `( name [, name ...] )`; consumes nothing if that is not what follows.
    fn paren_name_list(&mut self) -> Option<Vec<NameRef>> {
        let save = self.pos;
        let result = (|| {
            if !self.eat_punct(b'(') {
                return None;
            }
            let mut names = vec![self.name()?];
            while self.eat_punct(b',') {
                names.push(self.name()?);
            }
            self.eat_punct(b')').then_some(names)
        })();
        if result.is_none() {
            self.pos = save;
        }
        result
    }
}

/// Statement kind words for the "not a table statement" reason.
const OBJECT_WORDS: &[&str] = &[
    "DATABASE",
    "SCHEMA",
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "USER",
    "ROLE",
    "SEQUENCE",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "PACKAGE",
    "INSTANCE",
    "RESOURCE",
    "SPATIAL",
    "TABLE",
    "INDEX",
];

/// "not a table statement (CREATE VIEW)": for CREATE/ALTER/DROP/RENAME, the
/// first object word among the next few words (skipping `DEFINER = ...`,
/// `ALGORITHM = ...` and the like), else the next word.
fn not_table(p: &Parser<'_>, first: &str) -> String {
    let mut label = first.to_string();
    if matches!(first, "CREATE" | "ALTER" | "DROP" | "RENAME") {
        let words: Vec<&str> = p.toks[p.pos.min(p.toks.len())..]
            .iter()
            .take(16)
            .filter(|t| t.kind == TokKind::Word)
            .map(|t| p.text(t))
            .collect();
        let object = words
            .iter()
            .find(|w| OBJECT_WORDS.iter().any(|o| o.eq_ignore_ascii_case(w)))
            .or(words.first());
        if let Some(object) = object {
            label.push(' ');
            label.push_str(&object.to_ascii_uppercase());
        }
    }
    format!("not a table statement ({label})")
}

// ---------------------------------------------------------------------------
// Resolution and rewriting

struct Ctx<'a> {
    sql: &'a str,
    default_schema: &'a str,
    filter: &'a Filter,
    routes: &'a Routes,
    markers: &'a [(usize, usize)],
}

/// A reference qualified with the default schema.
#[derive(Debug, Clone)]
struct Ref {
    name: NameRef,
    source: (String, String),
    /// A name the statement creates (its target schema must exist).
    new_name: bool,
}

type Edit = (usize, usize, String);

impl Ctx<'_> {
    fn resolve(&self, name: NameRef, new_name: bool) -> Result<Ref, String> {
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

    fn includes(&self, r: &Ref) -> bool {
        self.filter.includes(&r.source.0, &r.source.1)
    }

    /// The subject must be replicated.
    fn check_subject(&self, subject: &Ref) -> Result<(), String> {
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
    fn splice(&self, start: usize, end: usize, mut edits: Vec<Edit>) -> Result<String, String> {
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

    fn text(&self, start: usize, end: usize) -> Result<&str, String> {
        self.sql
            .get(start..end)
            .ok_or_else(|| "cannot rewrite: invalid span".to_string())
    }
}

/// Accumulates the rewrite of one statement.
#[derive(Default)]
struct Out {
    edits: Vec<Edit>,
    source_tables: Vec<(String, String)>,
    target_tables: Vec<(String, String)>,
    create_schemas: Vec<String>,
}

impl Out {
    /// Routes `r`, records it, and returns its replacement text.
    fn route(&mut self, ctx: &Ctx<'_>, r: &Ref) -> String {
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
    fn replace(&mut self, ctx: &Ctx<'_>, r: &Ref) {
        let replacement = self.route(ctx, r);
        self.edits.push((r.name.start, r.name.end, replacement));
    }

    fn finish(self, ctx: &Ctx<'_>, kind: DdlKind) -> Outcome {
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
struct Item {
    start: usize,
    end: usize,
    refs: Vec<Ref>,
}

/// Rewrites a list of items: in place when every item is kept, otherwise by
/// replacing the whole list with the kept items joined by `", "`.
fn rewrite_list(ctx: &Ctx<'_>, items: &[Item], keep: &[bool], out: &mut Out) -> Result<(), String> {
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

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn quote_name((schema, table): &(String, String)) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

fn display((schema, table): &(String, String)) -> String {
    format!("{schema}.{table}")
}

fn filtered_out(refs: &[&Ref]) -> String {
    let names: Vec<String> = refs.iter().map(|r| display(&r.source)).collect();
    match names.as_slice() {
        [one] => format!("table {one} is filtered out"),
        _ => format!("tables {} are filtered out", names.join(", ")),
    }
}

const TEMPORARY: &str = "temporary table (session-scoped, not replicated)";

// ---------------------------------------------------------------------------
// Statements

fn create(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn create_table(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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
fn scan_body(
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

fn create_index(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn alter(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn drop(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn drop_table(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn drop_index(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn rename(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
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

fn truncate(p: &mut Parser<'_>, ctx: &Ctx<'_>) -> Outcome {
    p.eat_kw("TABLE");
    let subject = ctx.resolve(p.expect_name("TRUNCATE")?, false)?;
    ctx.check_subject(&subject)?;
    let mut out = Out::default();
    out.replace(ctx, &subject);
    out.finish(ctx, DdlKind::TruncateTable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{Route, TablePattern};

    fn pat(p: &str) -> TablePattern {
        TablePattern::new(p).expect("pattern")
    }

    /// Replicates `shop.*` except `shop.tmp_*`, plus `crm.customers`.
    fn filter() -> Filter {
        Filter::new(
            vec![pat(r"shop\..*"), pat(r"crm\.customers")],
            vec![pat(r"shop\.tmp_.*")],
        )
    }

    /// `shop.X` → `shop_copy.X`; everything else keeps its name.
    fn routes() -> Routes {
        Routes::new(vec![
            Route::new(pat(r"shop\.(.*)"), "shop_copy.$1").expect("route")
        ])
    }

    fn apply(default_schema: &str, sql: &str) -> RoutedDdl {
        match route_ddl(default_schema, sql, &filter(), &routes()) {
            DdlDecision::Apply(r) => r,
            DdlDecision::Ignore { reason } => panic!("{sql:?} ignored: {reason}"),
        }
    }

    fn ignore(default_schema: &str, sql: &str) -> String {
        match route_ddl(default_schema, sql, &filter(), &routes()) {
            DdlDecision::Ignore { reason } => reason,
            DdlDecision::Apply(r) => panic!("{sql:?} applied: {r:?}"),
        }
    }

    fn t(schema: &str, table: &str) -> (String, String) {
        (schema.to_string(), table.to_string())
    }

    #[test]
    fn create_table_unqualified_keeps_strings_and_comments() {
        let r = apply(
            "shop",
            "CREATE TABLE users (\n  id INT PRIMARY KEY, -- users.id\n  name VARCHAR(10) COMMENT 'shop.users' # x\n) COMMENT=\"REFERENCES shop.other\"",
        );
        assert_eq!(r.kind, DdlKind::CreateTable);
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`users` (\n  id INT PRIMARY KEY, -- users.id\n  name VARCHAR(10) COMMENT 'shop.users' # x\n) COMMENT=\"REFERENCES shop.other\""
        );
        assert_eq!(r.source_tables, vec![t("shop", "users")]);
        assert_eq!(r.target_tables, vec![t("shop_copy", "users")]);
        assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);
    }

    #[test]
    fn create_table_options() {
        let r = apply(
            "",
            "create or replace table if not exists shop.orders (id int)",
        );
        assert_eq!(
            r.sql,
            "create or replace table if not exists `shop_copy`.`orders` (id int)"
        );
        let r = apply("crm", "CREATE TABLE IF NOT EXISTS customers (id int)");
        assert_eq!(
            r.sql,
            "CREATE TABLE IF NOT EXISTS `crm`.`customers` (id int)"
        );
        assert_eq!(r.create_schemas, vec!["crm".to_string()]);
        assert_eq!(
            ignore("shop", "CREATE TEMPORARY TABLE users (id int)"),
            TEMPORARY
        );
    }

    #[test]
    fn create_table_like() {
        let r = apply("shop", "CREATE TABLE users2 LIKE users");
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`users2` LIKE `shop_copy`.`users`"
        );
        assert_eq!(
            r.source_tables,
            vec![t("shop", "users2"), t("shop", "users")]
        );
        assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);
        let r = apply("x", "CREATE TABLE shop.a ( LIKE `crm` . `customers` )");
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`a` ( LIKE `crm`.`customers` )"
        );
        // LIKE later in the body is an operator, not a reference.
        let r = apply(
            "shop",
            "CREATE TABLE a (b varchar(3), CHECK (b LIKE 'x%'), c int)",
        );
        assert_eq!(r.source_tables, vec![t("shop", "a")]);
    }

    #[test]
    fn references_are_rewritten() {
        let r = apply(
            "shop",
            "CREATE TABLE orders (id INT, user_id INT REFERENCES users(id), crm_id INT,\
             CONSTRAINT fk FOREIGN KEY (crm_id) REFERENCES crm.customers (id) ON DELETE CASCADE)",
        );
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`orders` (id INT, user_id INT REFERENCES `shop_copy`.`users`(id), crm_id INT,\
             CONSTRAINT fk FOREIGN KEY (crm_id) REFERENCES `crm`.`customers` (id) ON DELETE CASCADE)"
        );
        assert_eq!(
            r.source_tables,
            vec![
                t("shop", "orders"),
                t("shop", "users"),
                t("crm", "customers")
            ]
        );
        // Only the created table's schema must exist.
        assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

        let r = apply(
            "shop",
            "ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (x) REFERENCES `other`.`parent` (id)",
        );
        assert_eq!(
            r.sql,
            "ALTER TABLE `shop_copy`.`orders` ADD CONSTRAINT fk2 FOREIGN KEY (x) REFERENCES `other`.`parent` (id)"
        );
        assert!(r.create_schemas.is_empty());
    }

    #[test]
    fn name_forms() {
        for (sql, expected) in [
            (
                "ALTER TABLE shop.users ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE shop . users ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE `shop`.`users` ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE `shop` .\n `users` ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE shop.`users` ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE `users` ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE users ADD c INT",
                "ALTER TABLE `shop_copy`.`users` ADD c INT",
            ),
            (
                "ALTER TABLE `we``ird` ADD c INT",
                "ALTER TABLE `shop_copy`.`we``ird` ADD c INT",
            ),
            (
                "ALTER TABLE `a b`.c ADD d INT",
                "ALTER TABLE `a b`.`c` ADD d INT",
            ),
            (
                "ALTER TABLE shop.$x_1 ADD c INT",
                "ALTER TABLE `shop_copy`.`$x_1` ADD c INT",
            ),
            (
                "ALTER TABLE shop.Ünïcode ADD c INT",
                "ALTER TABLE `shop_copy`.`Ünïcode` ADD c INT",
            ),
        ] {
            let everything = Filter::default();
            let got = match route_ddl("shop", sql, &everything, &routes()) {
                DdlDecision::Apply(r) => r.sql,
                DdlDecision::Ignore { reason } => panic!("{sql}: {reason}"),
            };
            assert_eq!(got, expected, "{sql}");
        }
        let r = apply("shop", "ALTER TABLE `we``ird` ADD c INT");
        assert_eq!(r.source_tables, vec![t("shop", "we`ird")]);
        // Bare identifiers are taken as written: no case folding.
        assert_eq!(
            ignore("shop", "ALTER TABLE Shop.users ADD c INT"),
            "table Shop.users is filtered out"
        );
    }

    #[test]
    fn target_names_are_quoted() {
        let routes = Routes::new(vec![
            Route::new(pat(r"shop\.(.*)"), "we`ird.t_$1").expect("route")
        ]);
        let DdlDecision::Apply(r) =
            route_ddl("shop", "TRUNCATE users", &Filter::default(), &routes)
        else {
            panic!("ignored")
        };
        assert_eq!(r.sql, "TRUNCATE `we``ird`.`t_users`");
        assert_eq!(r.target_tables, vec![t("we`ird", "t_users")]);
    }

    #[test]
    fn alter_rename_table_vs_column_and_index() {
        let r = apply("shop", "ALTER TABLE users RENAME TO archive.users_old");
        assert_eq!(
            r.sql,
            "ALTER TABLE `shop_copy`.`users` RENAME TO `archive`.`users_old`"
        );
        assert_eq!(r.kind, DdlKind::AlterTable);
        assert_eq!(r.create_schemas, vec!["archive".to_string()]);
        assert_eq!(
            r.target_tables,
            vec![t("shop_copy", "users"), t("archive", "users_old")]
        );

        let r = apply(
            "shop",
            "alter table users rename as users2, ALGORITHM=INPLACE",
        );
        assert_eq!(
            r.sql,
            "alter table `shop_copy`.`users` rename as `shop_copy`.`users2`, ALGORITHM=INPLACE"
        );
        let r = apply("shop", "ALTER TABLE users RENAME users2");
        assert_eq!(
            r.sql,
            "ALTER TABLE `shop_copy`.`users` RENAME `shop_copy`.`users2`"
        );
        assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

        for sql in [
            "ALTER TABLE users RENAME COLUMN a TO b",
            "ALTER TABLE users RENAME INDEX a TO b",
            "ALTER TABLE users RENAME KEY a TO b, RENAME COLUMN c TO d",
        ] {
            let r = apply("shop", sql);
            assert_eq!(r.source_tables, vec![t("shop", "users")], "{sql}");
            assert!(r.create_schemas.is_empty(), "{sql}");
            assert_eq!(r.sql, sql.replacen("users", "`shop_copy`.`users`", 1));
        }

        let r = apply(
            "shop",
            "ALTER ONLINE IGNORE TABLE IF EXISTS users RENAME COLUMN a TO b, RENAME TO users_new",
        );
        assert_eq!(
            r.sql,
            "ALTER ONLINE IGNORE TABLE IF EXISTS `shop_copy`.`users` RENAME COLUMN a TO b, RENAME TO `shop_copy`.`users_new`"
        );
        // The subject decides.
        assert_eq!(
            ignore("shop", "ALTER TABLE tmp_x RENAME TO users"),
            "table shop.tmp_x is filtered out"
        );
    }

    #[test]
    fn alter_partition_tables() {
        let r = apply(
            "shop",
            "ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE orders_p0 WITHOUT VALIDATION",
        );
        assert_eq!(
            r.sql,
            "ALTER TABLE `shop_copy`.`orders` EXCHANGE PARTITION p0 WITH TABLE `shop_copy`.`orders_p0` WITHOUT VALIDATION"
        );
        assert!(r.create_schemas.is_empty());
        let r = apply(
            "shop",
            "ALTER TABLE orders CONVERT PARTITION p0 TO TABLE old.p0",
        );
        assert_eq!(
            r.sql,
            "ALTER TABLE `shop_copy`.`orders` CONVERT PARTITION p0 TO TABLE `old`.`p0`"
        );
        assert_eq!(r.create_schemas, vec!["old".to_string()]);
    }

    #[test]
    fn merge_union() {
        let r = apply(
            "shop",
            "CREATE TABLE m (a INT) ENGINE=MERGE UNION=(t1, crm.customers) INSERT_METHOD=LAST",
        );
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`m` (a INT) ENGINE=MERGE UNION=(`shop_copy`.`t1`, `crm`.`customers`) INSERT_METHOD=LAST"
        );
    }

    #[test]
    fn drop_table_mixed_filter() {
        let r = apply(
            "shop",
            "DROP TABLE IF EXISTS users, tmp_import, crm.customers, crm.notes RESTRICT",
        );
        assert_eq!(r.kind, DdlKind::DropTable);
        assert_eq!(
            r.sql,
            "DROP TABLE IF EXISTS `shop_copy`.`users`, `crm`.`customers` RESTRICT"
        );
        assert_eq!(
            r.source_tables,
            vec![t("shop", "users"), t("crm", "customers")]
        );
        assert!(r.create_schemas.is_empty());

        // All kept: rewritten in place, separators untouched.
        let r = apply("shop", "DROP TABLES a ,b");
        assert_eq!(r.sql, "DROP TABLES `shop_copy`.`a` ,`shop_copy`.`b`");

        assert_eq!(
            ignore("shop", "DROP TABLE tmp_a, crm.notes"),
            "tables shop.tmp_a, crm.notes are filtered out"
        );
        assert_eq!(
            ignore("shop", "DROP TABLE tmp_a"),
            "table shop.tmp_a is filtered out"
        );
    }

    #[test]
    fn mariadb_generated_by_server() {
        let r = apply("shop", "DROP TABLE `users` /* generated by server */");
        assert_eq!(
            r.sql,
            "DROP TABLE `shop_copy`.`users` /* generated by server */"
        );
        let r = apply(
            "",
            "DROP TABLE IF EXISTS `shop`.`a`,`shop`.`tmp_b` /* generated by server */",
        );
        assert_eq!(
            r.sql,
            "DROP TABLE IF EXISTS `shop_copy`.`a` /* generated by server */"
        );
    }

    #[test]
    fn temporary_tables_are_ignored() {
        assert_eq!(
            ignore("shop", "DROP TEMPORARY TABLE IF EXISTS users"),
            TEMPORARY
        );
        // MySQL's disconnect cleanup.
        assert_eq!(
            ignore(
                "shop",
                "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `users` /* generated by server */"
            ),
            TEMPORARY
        );
    }

    #[test]
    fn rename_table_pairs() {
        let r = apply(
            "shop",
            "RENAME TABLE users TO users_old, crm.notes TO crm.notes2, new_users TO users",
        );
        assert_eq!(r.kind, DdlKind::RenameTable);
        assert_eq!(
            r.sql,
            "RENAME TABLE `shop_copy`.`users` TO `shop_copy`.`users_old`, `shop_copy`.`new_users` TO `shop_copy`.`users`"
        );
        assert_eq!(
            r.source_tables,
            vec![
                t("shop", "users"),
                t("shop", "users_old"),
                t("shop", "new_users"),
                t("shop", "users")
            ]
        );
        assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

        // A swap through an excluded scratch name keeps every pair.
        let r = apply("shop", "RENAME TABLE a TO tmp_a, b TO a, tmp_a TO b");
        assert_eq!(
            r.sql,
            "RENAME TABLE `shop_copy`.`a` TO `shop_copy`.`tmp_a`, `shop_copy`.`b` TO `shop_copy`.`a`, `shop_copy`.`tmp_a` TO `shop_copy`.`b`"
        );

        // Out of and into the replicated set: both kept, both routed.
        let r = apply(
            "",
            "RENAME TABLE shop.a TO archive.a, staging.c TO crm.customers",
        );
        assert_eq!(
            r.sql,
            "RENAME TABLE `shop_copy`.`a` TO `archive`.`a`, `staging`.`c` TO `crm`.`customers`"
        );
        assert_eq!(
            r.create_schemas,
            vec!["archive".to_string(), "crm".to_string()]
        );

        assert_eq!(
            ignore("shop", "RENAME TABLE tmp_a TO tmp_b, crm.x TO crm.y"),
            "tables shop.tmp_a, shop.tmp_b, crm.x, crm.y are filtered out"
        );
        // MariaDB's IF EXISTS and WAIT.
        let r = apply("shop", "RENAME TABLE IF EXISTS a WAIT 3 TO b");
        assert_eq!(
            r.sql,
            "RENAME TABLE IF EXISTS `shop_copy`.`a` WAIT 3 TO `shop_copy`.`b`"
        );
    }

    #[test]
    fn truncate() {
        let r = apply("shop", "TRUNCATE TABLE users");
        assert_eq!(r.kind, DdlKind::TruncateTable);
        assert_eq!(r.sql, "TRUNCATE TABLE `shop_copy`.`users`");
        assert_eq!(
            apply("shop", "truncate users").sql,
            "truncate `shop_copy`.`users`"
        );
        assert_eq!(
            ignore("shop", "TRUNCATE tmp_x"),
            "table shop.tmp_x is filtered out"
        );
    }

    #[test]
    fn create_and_drop_index() {
        let r = apply("shop", "CREATE UNIQUE INDEX idx_email ON users (email)");
        assert_eq!(r.kind, DdlKind::CreateIndex);
        assert_eq!(
            r.sql,
            "CREATE UNIQUE INDEX idx_email ON `shop_copy`.`users` (email)"
        );
        assert!(r.create_schemas.is_empty());
        let r = apply(
            "shop",
            "CREATE OR REPLACE ONLINE FULLTEXT INDEX IF NOT EXISTS `ft` USING BTREE ON shop.posts (body) COMMENT 'on users'",
        );
        assert_eq!(
            r.sql,
            "CREATE OR REPLACE ONLINE FULLTEXT INDEX IF NOT EXISTS `ft` USING BTREE ON `shop_copy`.`posts` (body) COMMENT 'on users'"
        );
        let r = apply("shop", "DROP INDEX IF EXISTS `PRIMARY` ON users");
        assert_eq!(r.kind, DdlKind::DropIndex);
        assert_eq!(
            r.sql,
            "DROP INDEX IF EXISTS `PRIMARY` ON `shop_copy`.`users`"
        );
        assert_eq!(
            ignore("shop", "DROP INDEX i ON tmp_x"),
            "table shop.tmp_x is filtered out"
        );
    }

    #[test]
    fn executable_comments() {
        let r = apply("shop", "/*!40000 ALTER TABLE `users` DISABLE KEYS */");
        assert_eq!(
            r.sql,
            "/*!40000 ALTER TABLE `shop_copy`.`users` DISABLE KEYS */"
        );
        let r = apply(
            "shop",
            "CREATE TABLE t (a INT, b INT) /*!50100 PARTITION BY HASH (a) */ /*M!100301 COMMENT 'x' */",
        );
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`t` (a INT, b INT) /*!50100 PARTITION BY HASH (a) */ /*M!100301 COMMENT 'x' */"
        );
        // References inside executable comments are rewritten.
        let r = apply(
            "shop",
            "CREATE TABLE o (u INT /*!40101 REFERENCES users (id) */)",
        );
        assert_eq!(
            r.sql,
            "CREATE TABLE `shop_copy`.`o` (u INT /*!40101 REFERENCES `shop_copy`.`users` (id) */)"
        );
        // Without a version, and MariaDB-only.
        let r = apply("shop", "/*! TRUNCATE users */");
        assert_eq!(r.sql, "/*! TRUNCATE `shop_copy`.`users` */");
        let r = apply("shop", "/*M! DROP TABLE IF EXISTS users */");
        assert_eq!(r.sql, "/*M! DROP TABLE IF EXISTS `shop_copy`.`users` */");
        // A name split by a marker cannot be rewritten safely.
        assert!(
            ignore("shop", "ALTER TABLE /*!40000 shop */.users ADD c INT")
                .starts_with("cannot rewrite")
        );
    }

    #[test]
    fn comments_everywhere() {
        let r = apply(
            "shop",
            "/* leading */ -- line\n# hash\nDROP /* a */ TABLE /* b */ users /* c */",
        );
        assert_eq!(
            r.sql,
            "/* leading */ -- line\n# hash\nDROP /* a */ TABLE /* b */ `shop_copy`.`users` /* c */"
        );
        // `--` not followed by whitespace is two minus signs.
        let r = apply("shop", "CREATE TABLE t (a INT DEFAULT 1--1)");
        assert_eq!(r.sql, "CREATE TABLE `shop_copy`.`t` (a INT DEFAULT 1--1)");
        assert_eq!(ignore("shop", "  /* nothing */ -- here"), "empty statement");
        let r = apply("shop", "TRUNCATE users;");
        assert_eq!(r.sql, "TRUNCATE `shop_copy`.`users`;");
    }

    #[test]
    fn strings_are_not_names() {
        let sql = "ALTER TABLE users ADD c VARCHAR(9) DEFAULT 'it\\'s shop.users' COMMENT \"RENAME TO x\", ADD d CHAR(1) DEFAULT 'a''REFERENCES b'";
        let r = apply("shop", sql);
        assert_eq!(r.sql, sql.replacen("users", "`shop_copy`.`users`", 1));
        assert_eq!(r.source_tables, vec![t("shop", "users")]);
    }

    #[test]
    fn unqualified_without_default_schema() {
        let reason = "unqualified table name and no default schema";
        assert_eq!(ignore("", "CREATE TABLE users (id INT)"), reason);
        assert_eq!(ignore("", "DROP TABLE shop.a, b"), reason);
        assert_eq!(ignore("", "CREATE TABLE shop.a LIKE b"), reason);
        // Fully qualified statements need no default schema.
        assert_eq!(
            apply("", "CREATE TABLE shop.a LIKE shop.b").sql,
            "CREATE TABLE `shop_copy`.`a` LIKE `shop_copy`.`b`"
        );
    }

    #[test]
    fn system_schemas_are_filtered() {
        let all = Filter::default();
        let d = route_ddl("", "ALTER TABLE mysql.user ADD c INT", &all, &routes());
        assert_eq!(
            d,
            DdlDecision::Ignore {
                reason: "table mysql.user is filtered out".into()
            }
        );
    }

    #[test]
    fn other_statements_are_ignored() {
        for (sql, reason) in [
            ("CREATE DATABASE shop", "CREATE DATABASE"),
            ("create schema if not exists shop", "CREATE SCHEMA"),
            ("DROP DATABASE shop", "DROP DATABASE"),
            ("ALTER DATABASE shop CHARACTER SET utf8mb4", "ALTER DATABASE"),
            (
                "CREATE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v AS SELECT * FROM users",
                "CREATE VIEW",
            ),
            ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("ALTER ALGORITHM=MERGE VIEW v AS SELECT 1", "ALTER VIEW"),
            (
                "CREATE DEFINER='u'@'h' TRIGGER tr BEFORE INSERT ON users FOR EACH ROW SET NEW.a = 1",
                "CREATE TRIGGER",
            ),
            ("DROP TRIGGER IF EXISTS tr", "DROP TRIGGER"),
            ("CREATE PROCEDURE p() BEGIN END", "CREATE PROCEDURE"),
            ("CREATE AGGREGATE FUNCTION f RETURNS INT SONAME 'x'", "CREATE FUNCTION"),
            ("DROP EVENT e", "DROP EVENT"),
            ("CREATE USER 'a'@'%'", "CREATE USER"),
            ("RENAME USER a TO b", "RENAME USER"),
            ("GRANT SELECT ON shop.* TO 'a'@'%'", "GRANT"),
            ("REVOKE ALL ON *.* FROM a", "REVOKE"),
            ("SET @x = 1", "SET"),
            ("ANALYZE TABLE users", "ANALYZE"),
            ("OPTIMIZE TABLE users", "OPTIMIZE"),
            ("FLUSH PRIVILEGES", "FLUSH"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("XA START 'x'", "XA"),
            ("BEGIN", "BEGIN"),
            ("CREATE TEMPORARY SEQUENCE s", "CREATE SEQUENCE"),
            ("CREATE SEQUENCE s START WITH 1", "CREATE SEQUENCE"),
            ("DROP TEMPORARY VIEW v", "DROP VIEW"),
            ("INSERT INTO users VALUES (1)", "INSERT"),
        ] {
            assert_eq!(
                ignore("shop", sql),
                format!("not a table statement ({reason})"),
                "{sql}"
            );
        }
        assert_eq!(ignore("shop", "(SELECT 1)"), "not a table statement");
    }

    #[test]
    fn garbage_is_ignored_not_panicking() {
        for (sql, reason) in [
            (
                "CREATE TABLE `users",
                "cannot parse: unterminated quoted identifier",
            ),
            (
                "CREATE TABLE t (a CHAR(1) DEFAULT 'x",
                "cannot parse: unterminated string",
            ),
            (
                "CREATE TABLE t (a CHAR(1) DEFAULT 'x\\'",
                "cannot parse: unterminated string",
            ),
            ("DROP TABLE t /* oops", "cannot parse: unterminated comment"),
            (
                "/*!40000 ALTER TABLE t DISABLE KEYS",
                "cannot parse: unterminated executable comment",
            ),
            (
                "/*!40000 /*!40000 x */ */",
                "cannot parse: nested executable comment",
            ),
            (
                "CREATE TABLE",
                "cannot parse: expected a table name after CREATE TABLE",
            ),
            (
                "CREATE TABLE ``",
                "cannot parse: expected a table name after CREATE TABLE",
            ),
            (
                "CREATE TABLE 123 (a int)",
                "cannot parse: expected a table name after CREATE TABLE",
            ),
            (
                "DROP TABLE IF EXISTS",
                "cannot parse: expected a table name after DROP TABLE",
            ),
            (
                "DROP TABLE a,",
                "cannot parse: expected a table name after DROP TABLE",
            ),
            (
                "RENAME TABLE a",
                "cannot parse: expected TO in RENAME TABLE",
            ),
            (
                "RENAME TABLE a TO",
                "cannot parse: expected a table name after TO",
            ),
            (
                "ALTER TABLE t RENAME TO",
                "cannot parse: expected a table name after RENAME",
            ),
            (
                "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES",
                "cannot parse: expected a table name after REFERENCES",
            ),
            (
                "CREATE INDEX",
                "cannot parse: expected an index name after CREATE INDEX",
            ),
            (
                "CREATE INDEX i (a)",
                "cannot parse: expected ON after the index name",
            ),
            (
                "DROP INDEX i",
                "cannot parse: expected ON after the index name",
            ),
            (
                "TRUNCATE",
                "cannot parse: expected a table name after TRUNCATE",
            ),
            (
                "ALTER TABLE shop.",
                "cannot parse: expected a table name after ALTER TABLE",
            ),
            ("", "empty statement"),
        ] {
            assert_eq!(ignore("shop", sql), reason, "{sql:?}");
        }

        // Every prefix of some real statements, and pseudo-random mutations
        // of them: any decision is fine, a panic is not.
        let samples = [
            "CREATE TABLE IF NOT EXISTS `shop`.`o``rders` (id INT REFERENCES users(id) COMMENT 'a\\'b', x CHAR(1) DEFAULT \"q\"\"\") /*!50100 PARTITION BY HASH(id) */ -- end\n",
            "RENAME TABLE a TO tmp_a, b WAIT 1 TO a, `shop` . tmp_a TO b # swap",
            "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS a, crm.customers /* generated by server */",
            "ALTER TABLE ü.ñ RENAME COLUMN a TO b, RENAME TO x.y, EXCHANGE PARTITION p WITH TABLE z UNION=(a,b)",
            "CREATE OR REPLACE UNIQUE INDEX IF NOT EXISTS i USING HASH ON t (a); DROP INDEX `i` ON t",
        ];
        let alphabet: Vec<char> = "`'\"/*!M-#\\., ();=\n\tabTo0é".chars().collect();
        let mut seed: u64 = 0x5eed;
        let mut next = |bound: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % bound.max(1)
        };
        let (f, r) = (filter(), routes());
        for sample in samples {
            let chars: Vec<char> = sample.chars().collect();
            for n in 0..=chars.len() {
                let prefix: String = chars[..n].iter().collect();
                let _ = route_ddl("shop", &prefix, &f, &r);
                let _ = route_ddl("", &prefix, &f, &r);
            }
            for _ in 0..500 {
                let mut mutated = chars.clone();
                for _ in 0..1 + next(4) {
                    let at = next(mutated.len());
                    match next(3) {
                        0 => mutated[at] = alphabet[next(alphabet.len())],
                        1 => mutated.insert(at, alphabet[next(alphabet.len())]),
                        _ => {
                            mutated.remove(at);
                        }
                    }
                    if mutated.is_empty() {
                        break;
                    }
                }
                let text: String = mutated.iter().collect();
                if let DdlDecision::Apply(routed) = route_ddl("shop", &text, &f, &r) {
                    assert_eq!(routed.source_tables.len(), routed.target_tables.len());
                }
            }
        }
    }
}
