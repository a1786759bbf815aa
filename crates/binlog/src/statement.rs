//! Which tables a statement-format DML statement writes.
//!
//! A session with `binlog_format=STATEMENT` (or `MIXED`, for statements
//! the server deems safe) logs its DML as SQL text in a QUERY event, e.g.
//! `pt-table-checksum` writing `percona.checksums`. sluice replicates rows
//! only, so it may skip such a statement only when it can show the
//! statement writes nothing replicated. This module does the syntactic
//! half: the tables named as written by the statement, each qualified by
//! the event's default schema, plus every routine call in it (a stored
//! function can write anywhere). The other half — triggers, views, foreign
//! key cascades and stored functions on the source — is
//! [`crate::catalog`]'s.
//!
//! # Recognised statements (MySQL and MariaDB grammars)
//!
//! - `INSERT`/`REPLACE [LOW_PRIORITY|DELAYED|HIGH_PRIORITY] [IGNORE] [INTO]
//!   t …` including `… SELECT`, `… ON DUPLICATE KEY UPDATE`, `… RETURNING`:
//!   writes `t` (tables read by the SELECT are not written);
//! - `UPDATE [LOW_PRIORITY] [IGNORE] table_references SET …`: with one
//!   table, that table; with several (joins, comma lists, parenthesised
//!   joins, `{ OJ … }`, derived tables), the tables whose columns the `SET`
//!   assigns — a qualified `x.col` by alias or name, an unqualified column
//!   counting as every table of the statement (it could be any of them);
//! - `DELETE [LOW_PRIORITY] [QUICK] [IGNORE] FROM t …`, and both
//!   multi-table forms `DELETE t1[.*], … FROM table_references` and
//!   `DELETE FROM t1[.*], … USING table_references` (targets resolved by
//!   alias or name);
//! - `LOAD DATA|XML … INTO TABLE t` (from EXECUTE_LOAD_QUERY events);
//! - `WITH … ` before any of these (MySQL 8).
//!
//! Anything else that a server logs as statement DML (`SELECT f()` and
//! `DO f()` calling a function that writes, `CALL`) and anything the parser
//! cannot follow is *undetermined*: an error, which the pipeline turns into
//! a refusal. Over-approximating the written set is safe (it can only
//! refuse); missing a table is not, so every unexpected token is an error.
//!
//! # Lexing
//!
//! Only where tokens start and end matters: comments (`#`, `-- `, `/* */`),
//! strings, backquoted identifiers. Two things change that: the session's
//! `sql_mode` (`ANSI_QUOTES` makes `"…"` an identifier;
//! `NO_BACKSLASH_ESCAPES` makes `\` ordinary in strings), which the QUERY
//! event carries; and executable comments (`/*!NNNNN … */`, `/*M!… */`),
//! whose contents the server ran if its version was high enough. When the
//! mode is unknown, or the statement has executable comments, it is
//! analysed under every reading, and readings that disagree make it
//! undetermined.

use std::collections::BTreeSet;

/// `sql_mode` bits that change how a statement lexes (the same in MySQL and
/// MariaDB).
const MODE_ANSI_QUOTES: u64 = 0x0000_0004;
const MODE_NO_BACKSLASH_ESCAPES: u64 = 0x0010_0000;

/// A table (or routine) as a statement names it: schema and name as
/// written, the schema taken from the default schema when unqualified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl std::fmt::Display for TableName {
    /// `` `schema`.`table` ``, backquotes doubled.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}`.`{}`",
            self.schema.replace('`', "``"),
            self.table.replace('`', "``")
        )
    }
}

/// What the binlog says a statement writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    /// The statement's kind (`INSERT`, `UPDATE`, ...), for messages.
    pub verb: String,
    /// The tables written, as named; sorted, without duplicates.
    pub tables: Vec<TableName>,
    /// Every `name(` in the statement, qualified like a table: candidates
    /// for stored functions (most are built-ins, which no schema holds).
    pub calls: Vec<TableName>,
    /// Whether a call is schema-qualified: `db.f()` is always a stored
    /// function.
    pub qualified_calls: Vec<TableName>,
}

/// Analyses a statement-format DML statement. `sql_mode` is the session's
/// (from the QUERY event), `None` when the event did not carry it. The
/// error says why the written tables cannot be told.
pub fn analyse(default_schema: &str, sql: &str, sql_mode: Option<u64>) -> Result<Writes, String> {
    let modes: Vec<(bool, bool)> = match sql_mode {
        Some(m) => vec![(
            m & MODE_ANSI_QUOTES != 0,
            m & MODE_NO_BACKSLASH_ESCAPES != 0,
        )],
        None => vec![(false, false), (true, true)],
    };
    let mut readings: Vec<Writes> = Vec::new();
    for (ansi_quotes, no_backslash) in modes {
        for exec_comments in [true, false] {
            let lexed = lex(
                sql,
                Lexing {
                    ansi_quotes,
                    no_backslash,
                    exec_comments,
                },
            )?;
            let has_exec = lexed.exec_comments;
            readings.push(parse(default_schema, &lexed.tokens)?);
            if !has_exec {
                break;
            }
        }
    }
    let first = readings.swap_remove(0);
    if readings.iter().any(|r| *r != first) {
        return Err(
            "the statement reads differently depending on sql_mode or on executable comments"
                .into(),
        );
    }
    Ok(first)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word (keyword or identifier), as written.
    Word(String),
    /// A quoted identifier's content.
    Quoted(String),
    Str,
    Num,
    Punct(u8),
}

#[derive(Clone, Copy)]
struct Lexing {
    ansi_quotes: bool,
    no_backslash: bool,
    /// Lex the contents of executable comments as SQL (else skip them).
    exec_comments: bool,
}

struct Lexed {
    tokens: Vec<Tok>,
    /// The statement has executable comments.
    exec_comments: bool,
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn lex(sql: &str, how: Lexing) -> Result<Lexed, String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut tokens = Vec::new();
    let mut in_exec = false;
    let mut saw_exec = false;
    // Reads a quoted run starting at `i` (the opening quote) and returns
    // the content and the index after the closing quote.
    let quoted = |i: usize, q: u8, escapes: bool| -> Result<(String, usize), String> {
        let mut out = Vec::new();
        let mut j = i + 1;
        loop {
            match b.get(j) {
                None => return Err("unterminated quoted string or identifier".into()),
                Some(&c) if c == q => {
                    if b.get(j + 1) == Some(&q) {
                        out.push(q);
                        j += 2;
                    } else {
                        return Ok((String::from_utf8_lossy(&out).into_owned(), j + 1));
                    }
                }
                Some(b'\\') if escapes => {
                    if let Some(&n) = b.get(j + 1) {
                        out.push(n);
                    }
                    j += 2;
                }
                Some(&c) => {
                    out.push(c);
                    j += 1;
                }
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#'
            || (c == b'-'
                && b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|n| n.is_ascii_whitespace() || n.is_ascii_control()))
        {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let exec = match (b.get(i + 2), b.get(i + 3)) {
                (Some(b'!'), _) => Some(i + 3),
                (Some(b'M'), Some(b'!')) => Some(i + 4),
                _ => None,
            };
            match exec {
                Some(mut j) if !in_exec => {
                    saw_exec = true;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if how.exec_comments {
                        in_exec = true;
                        i = j;
                    } else {
                        i = find(b, j, b"*/").ok_or("unterminated comment")? + 2;
                    }
                }
                _ => i = find(b, i + 2, b"*/").ok_or("unterminated comment")? + 2,
            }
        } else if in_exec && c == b'*' && b.get(i + 1) == Some(&b'/') {
            in_exec = false;
            i += 2;
        } else if c == b'`' {
            let (s, j) = quoted(i, b'`', false)?;
            tokens.push(Tok::Quoted(s));
            i = j;
        } else if c == b'"' && how.ansi_quotes {
            let (s, j) = quoted(i, b'"', false)?;
            tokens.push(Tok::Quoted(s));
            i = j;
        } else if c == b'\'' || c == b'"' {
            let (_, j) = quoted(i, c, !how.no_backslash)?;
            tokens.push(Tok::Str);
            i = j;
        } else if is_word_byte(c) {
            let start = i;
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            let word = &sql[start..i];
            if word.bytes().all(|d| d.is_ascii_digit()) {
                tokens.push(Tok::Num);
            } else {
                tokens.push(Tok::Word(word.to_string()));
            }
        } else {
            tokens.push(Tok::Punct(c));
            i += 1;
        }
    }
    if in_exec {
        return Err("unterminated executable comment".into());
    }
    Ok(Lexed {
        tokens,
        exec_comments: saw_exec,
    })
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// A table reference of a FROM/UPDATE list: the table and its alias.
#[derive(Debug, Clone)]
struct TableRef {
    name: TableName,
    alias: Option<String>,
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    default_schema: &'a str,
    /// Token index of the last part of every table name read: a name
    /// followed by `(` there is a column list, not a call.
    names: Vec<usize>,
}

/// Words that end a table factor (so are never an alias).
const NOT_ALIAS: &[&str] = &[
    "ON",
    "USING",
    "JOIN",
    "INNER",
    "CROSS",
    "LEFT",
    "RIGHT",
    "NATURAL",
    "STRAIGHT_JOIN",
    "FULL",
    "OUTER",
    "SET",
    "WHERE",
    "ORDER",
    "LIMIT",
    "USE",
    "IGNORE",
    "FORCE",
    "PARTITION",
    "FOR",
    "RETURNING",
    "WINDOW",
    "GROUP",
    "HAVING",
    "UNION",
    "LATERAL",
    "VALUES",
    "VALUE",
    "SELECT",
    "FROM",
    "AS",
    "INTO",
    "LOCK",
    "EXCEPT",
    "INTERSECT",
];

/// Words that start the next table factor of a join.
const JOIN_WORDS: &[&str] = &[
    "JOIN",
    "INNER",
    "CROSS",
    "LEFT",
    "RIGHT",
    "NATURAL",
    "STRAIGHT_JOIN",
    "OUTER",
    "FULL",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.at)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Tok> {
        self.toks.get(self.at + n)
    }

    fn bump(&mut self) {
        self.at += 1;
    }

    fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
        matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn at_kw(&self, kw: &str) -> bool {
        Self::is_kw(self.peek(), kw)
    }

    fn at_any(&self, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.at_kw(k))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.at_kw(kw);
        if hit {
            self.bump();
        }
        hit
    }

    fn at_punct(&self, c: u8) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        let hit = self.at_punct(c);
        if hit {
            self.bump();
        }
        hit
    }

    fn what(&self) -> String {
        match self.peek() {
            None => "the end of the statement".into(),
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Quoted(q)) => format!("`{q}`"),
            Some(Tok::Str) => "a string".into(),
            Some(Tok::Num) => "a number".into(),
            Some(Tok::Punct(c)) => format!("`{}`", *c as char),
        }
    }

    /// An identifier (word or quoted).
    fn ident(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                let w = w.clone();
                self.bump();
                Some(w)
            }
            _ => None,
        }
    }

    /// `name` or `schema.name` (spaces around the dot allowed).
    fn dotted(&mut self) -> Option<(Option<String>, String)> {
        let first = self.ident()?;
        if self.at_punct(b'.') && matches!(self.peek_at(1), Some(Tok::Word(_) | Tok::Quoted(_))) {
            self.bump();
            let second = self.ident()?;
            return Some((Some(first), second));
        }
        Some((None, first))
    }

    fn qualify(&self, schema: Option<String>, table: String) -> Result<TableName, String> {
        match schema {
            Some(s) => Ok(TableName::new(s, table)),
            None if self.default_schema.is_empty() => Err(format!(
                "`{table}` is not qualified and the event has no default schema"
            )),
            None => Ok(TableName::new(self.default_schema, table)),
        }
    }

    fn table_name(&mut self) -> Result<TableName, String> {
        let (schema, table) = self
            .dotted()
            .ok_or_else(|| format!("expected a table name, found {}", self.what()))?;
        self.names.push(self.at - 1);
        self.qualify(schema, table)
    }

    /// Skips a balanced `( … )` starting at the current `(`.
    fn skip_parens(&mut self) -> Result<(), String> {
        if !self.eat_punct(b'(') {
            return Err(format!("expected `(`, found {}", self.what()));
        }
        let mut depth = 1usize;
        while depth > 0 {
            match self.peek() {
                None => return Err("unbalanced parentheses".into()),
                Some(Tok::Punct(b'(')) => depth += 1,
                Some(Tok::Punct(b')')) => depth -= 1,
                _ => {}
            }
            self.bump();
        }
        Ok(())
    }

    /// Skips an expression up to a comma at depth 0, a `)` closing an
    /// enclosing group, the end, or one of `stop`.
    fn skip_expr(&mut self, stop: &[&str]) -> Result<(), String> {
        loop {
            match self.peek() {
                None | Some(Tok::Punct(b',' | b')' | b'}' | b';')) => return Ok(()),
                Some(Tok::Punct(b'(')) => self.skip_parens()?,
                // `LEFT(…)` is a function, not a join.
                Some(Tok::Word(_))
                    if self.at_any(stop) && self.peek_at(1) != Some(&Tok::Punct(b'(')) =>
                {
                    return Ok(())
                }
                _ => self.bump(),
            }
        }
    }

    fn partition_and_hints(&mut self) -> Result<(), String> {
        loop {
            if self.eat_kw("PARTITION") {
                self.skip_parens()?;
            } else if self.at_any(&["USE", "IGNORE", "FORCE"])
                && (Self::is_kw(self.peek_at(1), "INDEX") || Self::is_kw(self.peek_at(1), "KEY"))
            {
                self.bump();
                self.bump();
                let hint_for = !self.eat_kw("FOR")
                    || self.eat_kw("JOIN")
                    || ((self.eat_kw("ORDER") || self.eat_kw("GROUP")) && self.eat_kw("BY"));
                if !hint_for {
                    return Err(format!("unexpected {} in an index hint", self.what()));
                }
                self.skip_parens()?;
            } else {
                return Ok(());
            }
        }
    }

    fn alias(&mut self) -> Option<String> {
        let explicit = self.eat_kw("AS");
        match self.peek() {
            Some(Tok::Quoted(q)) => {
                let q = q.clone();
                self.bump();
                Some(q)
            }
            Some(Tok::Word(w))
                if explicit || !NOT_ALIAS.iter().any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                let w = w.clone();
                self.bump();
                Some(w)
            }
            // `AS 'alias'` is allowed for tables too.
            Some(Tok::Str) if explicit => {
                self.bump();
                Some(String::new())
            }
            _ => None,
        }
    }

    /// One table factor; real tables are pushed to `out`.
    fn table_factor(&mut self, out: &mut Vec<TableRef>) -> Result<(), String> {
        if self.at_punct(b'(') {
            let derived = matches!(self.peek_at(1), Some(Tok::Word(w))
                if ["SELECT", "WITH", "VALUES", "TABLE"].iter().any(|k| w.eq_ignore_ascii_case(k)));
            if derived {
                // A derived table is read, never written.
                self.skip_parens()?;
                self.alias();
                if self.at_punct(b'(') {
                    self.skip_parens()?;
                }
            } else {
                self.bump();
                self.table_references(out, &[])?;
                if !self.eat_punct(b')') {
                    return Err(format!("expected `)`, found {}", self.what()));
                }
            }
            return Ok(());
        }
        if self.eat_punct(b'{') {
            if !self.eat_kw("OJ") {
                return Err(format!("expected OJ after `{{`, found {}", self.what()));
            }
            self.table_references(out, &[])?;
            if !self.eat_punct(b'}') {
                return Err(format!("expected `}}`, found {}", self.what()));
            }
            return Ok(());
        }
        if self.eat_kw("LATERAL") {
            self.skip_parens()?;
            self.alias();
            return Ok(());
        }
        let name = self.table_name()?;
        self.partition_and_hints()?;
        let alias = self.alias();
        self.partition_and_hints()?;
        out.push(TableRef { name, alias });
        Ok(())
    }

    /// A comma/join list of table factors, up to a `)`, `}`, the end, or one
    /// of `stop` at this level.
    fn table_references(&mut self, out: &mut Vec<TableRef>, stop: &[&str]) -> Result<(), String> {
        self.table_factor(out)?;
        loop {
            if self.eat_punct(b',') {
                self.table_factor(out)?;
            } else if self.at_any(JOIN_WORDS) {
                while self.at_any(JOIN_WORDS) && !self.at_kw("JOIN") && !self.at_kw("STRAIGHT_JOIN")
                {
                    self.bump();
                }
                if !(self.eat_kw("JOIN") || self.eat_kw("STRAIGHT_JOIN")) {
                    return Err(format!("expected JOIN, found {}", self.what()));
                }
                self.table_factor(out)?;
            } else if self.eat_kw("ON") {
                let mut ends: Vec<&str> = JOIN_WORDS.to_vec();
                ends.extend_from_slice(stop);
                self.skip_expr(&ends)?;
            } else if self.at_kw("USING") && self.peek_at(1) == Some(&Tok::Punct(b'(')) {
                self.bump();
                self.skip_parens()?;
            } else {
                return Ok(());
            }
        }
    }

    fn at_end(&self) -> bool {
        match self.peek() {
            None => true,
            Some(Tok::Punct(b';')) => self.toks[self.at + 1..].is_empty(),
            _ => false,
        }
    }
}

/// The statement's tables and calls.
fn parse(default_schema: &str, toks: &[Tok]) -> Result<Writes, String> {
    let mut p = Parser {
        toks,
        at: 0,
        default_schema,
        names: Vec::new(),
    };
    // A statement is one statement: a `;` with more after it is not.
    if let Some(i) = toks.iter().position(|t| *t == Tok::Punct(b';')) {
        if i + 1 < toks.len() {
            return Err("more than one statement in the event".into());
        }
    }
    if p.eat_kw("WITH") {
        p.eat_kw("RECURSIVE");
        loop {
            p.ident()
                .ok_or_else(|| format!("expected a CTE name, found {}", p.what()))?;
            if p.at_punct(b'(') {
                p.skip_parens()?;
            }
            if !p.eat_kw("AS") {
                return Err(format!("expected AS in WITH, found {}", p.what()));
            }
            p.skip_parens()?;
            if !p.eat_punct(b',') {
                break;
            }
        }
    }
    let verb = match p.peek() {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => return Err(format!("unexpected {} at the start", p.what())),
    };
    p.bump();
    let tables = match verb.as_str() {
        "INSERT" | "REPLACE" => {
            while p.eat_kw("LOW_PRIORITY")
                || p.eat_kw("DELAYED")
                || p.eat_kw("HIGH_PRIORITY")
                || p.eat_kw("IGNORE")
            {}
            p.eat_kw("INTO");
            vec![p.table_name()?]
        }
        "UPDATE" => update(&mut p)?,
        "DELETE" => delete(&mut p)?,
        "LOAD" => {
            if !(p.eat_kw("DATA") || p.eat_kw("XML")) {
                return Err(format!("LOAD {}: expected DATA or XML", p.what()));
            }
            loop {
                if p.at_end() {
                    return Err("LOAD without INTO TABLE".into());
                }
                if p.at_kw("INTO") && Parser::is_kw(p.peek_at(1), "TABLE") {
                    p.bump();
                    p.bump();
                    break;
                }
                p.bump();
            }
            vec![p.table_name()?]
        }
        "SELECT" | "DO" | "CALL" | "VALUES" | "TABLE" => {
            return Err(format!(
                "a {verb} statement in the binlog writes through the stored routines it calls"
            ))
        }
        other => return Err(format!("`{other}` is not a DML statement sluice knows")),
    };
    let mut calls = BTreeSet::new();
    let mut qualified = BTreeSet::new();
    for (i, t) in toks.iter().enumerate() {
        let (Tok::Word(name) | Tok::Quoted(name)) = t else {
            continue;
        };
        if toks.get(i + 1) != Some(&Tok::Punct(b'(')) || p.names.contains(&i) {
            continue;
        }
        let schema = match (
            i.checked_sub(2).map(|j| &toks[j]),
            i.checked_sub(1).map(|j| &toks[j]),
        ) {
            (Some(Tok::Word(s) | Tok::Quoted(s)), Some(Tok::Punct(b'.'))) => Some(s.clone()),
            _ => None,
        };
        match schema {
            Some(s) => {
                qualified.insert(TableName::new(s.clone(), name.clone()));
                calls.insert(TableName::new(s, name.clone()));
            }
            None if !default_schema.is_empty() => {
                calls.insert(TableName::new(default_schema, name.clone()));
            }
            None => {}
        }
    }
    let tables: BTreeSet<TableName> = tables.into_iter().collect();
    Ok(Writes {
        verb,
        tables: tables.into_iter().collect(),
        calls: calls.into_iter().collect(),
        qualified_calls: qualified.into_iter().collect(),
    })
}

fn update(p: &mut Parser<'_>) -> Result<Vec<TableName>, String> {
    while p.eat_kw("LOW_PRIORITY") || p.eat_kw("IGNORE") {}
    let mut refs = Vec::new();
    p.table_references(&mut refs, &["SET"])?;
    if !p.eat_kw("SET") {
        return Err(format!("expected SET in UPDATE, found {}", p.what()));
    }
    match refs.len() {
        // Only derived tables: nothing an UPDATE could write.
        0 => return Err("UPDATE of no table sluice can name".into()),
        1 => return Ok(vec![refs[0].name.clone()]),
        _ => {}
    }
    // Several tables: those whose columns are assigned.
    let mut written = Vec::new();
    loop {
        let first = p
            .ident()
            .ok_or_else(|| format!("expected a column in SET, found {}", p.what()))?;
        let mut parts = vec![first];
        while p.eat_punct(b'.') {
            parts.push(
                p.ident()
                    .ok_or_else(|| format!("expected a column after `.`, found {}", p.what()))?,
            );
        }
        match parts.len() {
            1 => written.extend(refs.iter().map(|r| r.name.clone())),
            2 | 3 => {
                let hits: Vec<&TableRef> = refs
                    .iter()
                    .filter(|r| {
                        if parts.len() == 3 {
                            r.name.schema.eq_ignore_ascii_case(&parts[0])
                                && r.name.table.eq_ignore_ascii_case(&parts[1])
                        } else {
                            match &r.alias {
                                Some(a) => a.eq_ignore_ascii_case(&parts[0]),
                                None => r.name.table.eq_ignore_ascii_case(&parts[0]),
                            }
                        }
                    })
                    .collect();
                if hits.is_empty() {
                    return Err(format!(
                        "SET assigns `{}`, which names no table of the UPDATE",
                        parts.join(".")
                    ));
                }
                written.extend(hits.into_iter().map(|r| r.name.clone()));
            }
            _ => return Err(format!("SET assigns `{}`", parts.join("."))),
        }
        if !p.eat_punct(b'=') {
            return Err(format!("expected `=` in SET, found {}", p.what()));
        }
        p.skip_expr(&["WHERE", "ORDER", "LIMIT", "RETURNING"])?;
        if !p.eat_punct(b',') {
            break;
        }
    }
    Ok(written)
}

/// A multi-table DELETE target: `t`, `db.t`, `t.*`, `db.t.*`.
fn delete_target(p: &mut Parser<'_>) -> Result<(Option<String>, String), String> {
    let (schema, name) = p
        .dotted()
        .ok_or_else(|| format!("expected a table in DELETE, found {}", p.what()))?;
    if p.at_punct(b'.') && p.peek_at(1) == Some(&Tok::Punct(b'*')) {
        p.bump();
        p.bump();
    }
    Ok((schema, name))
}

fn delete(p: &mut Parser<'_>) -> Result<Vec<TableName>, String> {
    while p.eat_kw("LOW_PRIORITY") || p.eat_kw("QUICK") || p.eat_kw("IGNORE") {}
    let from_first = p.eat_kw("FROM");
    // Targets up to FROM (form 1) or USING (form 2); the single-table form
    // has exactly one, followed by its alias and clauses.
    let mut targets = vec![delete_target(p)?];
    let multi_list = p.at_punct(b',');
    while p.eat_punct(b',') {
        targets.push(delete_target(p)?);
    }
    let refs_follow = if from_first {
        p.eat_kw("USING")
    } else {
        p.eat_kw("FROM")
    };
    if !refs_follow {
        if !from_first || multi_list {
            return Err(format!(
                "expected {} in a multi-table DELETE, found {}",
                if from_first { "USING" } else { "FROM" },
                p.what()
            ));
        }
        let (schema, table) = targets.remove(0);
        return Ok(vec![p.qualify(schema, table)?]);
    }
    let mut refs = Vec::new();
    p.table_references(&mut refs, &["WHERE", "ORDER", "LIMIT", "RETURNING"])?;
    let mut written = Vec::new();
    for (schema, name) in targets {
        let hits: Vec<&TableRef> = refs
            .iter()
            .filter(|r| match &schema {
                Some(s) => {
                    r.name.schema.eq_ignore_ascii_case(s)
                        && r.name.table.eq_ignore_ascii_case(&name)
                }
                None => match &r.alias {
                    Some(a) => a.eq_ignore_ascii_case(&name),
                    None => r.name.table.eq_ignore_ascii_case(&name),
                },
            })
            .collect();
        if hits.is_empty() {
            return Err(format!(
                "DELETE target `{name}` names no table of its table references"
            ));
        }
        written.extend(hits.into_iter().map(|r| r.name.clone()));
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
