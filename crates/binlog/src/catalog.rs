//! What writing a table does on the source, beyond the table: the half of
//! "which tables does this statement-format DML write" that the binlog
//! cannot tell ([`crate::statement`] is the other half).
//!
//! In statement format the source logs only the statement; everything it
//! sets off runs again on a replica and is never logged on its own: the
//! triggers of the tables it writes, the base tables of a view it writes
//! through, the child tables foreign keys cascade to (InnoDB cascades are
//! not logged in any format), and the stored functions it calls. So before
//! a statement may be skipped, the source's catalog is asked about each of
//! those ([`SourceCatalog::table`], [`SourceCatalog::stored_functions`]).
//!
//! The catalog is read as it is now, not as it was when the event was
//! written: a pipeline lagging behind a trigger's creation refuses (safe);
//! one lagging behind a trigger's removal would skip a statement whose
//! trigger did run on the source (a limit the README states). The answers are only as complete as the source user's view:
//! `information_schema.TRIGGERS` lists triggers only to users with the
//! TRIGGER privilege on the table, so [`TableFacts::triggers`] is `None`
//! (unknown) unless `SHOW GRANTS` shows that privilege; a table the user
//! has no privilege on is not listed at all (`found` empty).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sluice_core::TlsConfig;

use crate::error::BinlogError;
use crate::statement::TableName;

/// What the source says about one table a statement writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFacts {
    /// The tables the name resolves to, as the source spells them (several
    /// when names differ only in case and the source compares them
    /// case-insensitively), each with whether it is a view. Empty: not on
    /// the source, or not visible to the source user.
    pub found: Vec<(TableName, bool)>,
    /// Its triggers; `None` when the source user cannot see them.
    pub triggers: Option<Vec<TableName>>,
    /// Child tables a write can cascade to (ON DELETE/UPDATE CASCADE, SET
    /// NULL, SET DEFAULT, or rules the source user cannot see),
    /// transitively: the child, the constraint, the parent it references.
    pub cascades: Vec<Cascade>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    pub child: TableName,
    pub constraint: String,
    pub parent: TableName,
}

/// A foreign key referencing a table: the child's schema and name, the
/// constraint, and its ON UPDATE / ON DELETE rules (`None`: not visible).
type ForeignKey = (String, String, String, Option<String>, Option<String>);

/// Foreign keys are followed this deep (InnoDB's own limit is 15).
const MAX_CASCADE_DEPTH: usize = 16;

/// How long an answer is reused: a tool writing thousands of statements
/// into one table costs a few catalog queries, not thousands.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// A lazily opened metadata connection to the source, with a short-lived
/// cache of its answers ([`Self::forget`] drops it, e.g. at every DDL
/// event of the stream).
pub struct SourceCatalog {
    url: String,
    tls: TlsConfig,
    timeout: Duration,
    conn: Option<Conn>,
    grants: Option<Vec<Grant>>,
    tables: HashMap<TableName, (Instant, TableFacts)>,
    functions: HashMap<String, (Instant, Vec<(String, String)>)>,
}

impl SourceCatalog {
    pub fn new(url: impl Into<String>, tls: TlsConfig, timeout: Duration) -> Self {
        SourceCatalog {
            url: url.into(),
            tls,
            timeout,
            conn: None,
            grants: None,
            tables: HashMap::new(),
            functions: HashMap::new(),
        }
    }

    /// Drops every cached answer (the schema may have changed).
    pub fn forget(&mut self) {
        self.tables.clear();
        self.functions.clear();
        self.grants = None;
    }

    async fn conn(&mut self) -> Result<&mut Conn, BinlogError> {
        if self.conn.is_none() {
            let conn = crate::connect::connect(&self.url, &self.tls, self.timeout).await?;
            self.conn = Some(conn);
            self.grants = None;
        }
        self.conn
            .as_mut()
            .ok_or_else(|| BinlogError::Preflight("no catalog connection".into()))
    }

    /// Runs a query; a failed connection is dropped so the next call opens
    /// a new one.
    async fn rows<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        what: &str,
        sql: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<Vec<T>, BinlogError> {
        let timeout = self.timeout;
        let conn = self.conn().await?;
        let got = if params.is_empty() {
            tokio::time::timeout(timeout, conn.query::<T, _>(sql)).await
        } else {
            tokio::time::timeout(timeout, conn.exec::<T, _, _>(sql, params)).await
        };
        match got {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                self.conn = None;
                Err(BinlogError::source(what.to_string(), e))
            }
            Err(_) => {
                self.conn = None;
                Err(BinlogError::Io {
                    what: what.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", self.timeout),
                    ),
                })
            }
        }
    }

    /// Whether the source user can see the triggers of `table`.
    async fn sees_triggers(&mut self, table: &TableName) -> Result<bool, BinlogError> {
        if self.grants.is_none() {
            let lines: Vec<String> = self.rows("SHOW GRANTS", "SHOW GRANTS", Vec::new()).await?;
            self.grants = Some(lines.iter().filter_map(|l| parse_grant(l)).collect());
        }
        Ok(self
            .grants
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g.allows_triggers_on(table))))
    }

    /// What writing `table` does on the source.
    pub async fn table(&mut self, table: &TableName) -> Result<TableFacts, BinlogError> {
        if let Some((at, facts)) = self.tables.get(table) {
            if at.elapsed() < CACHE_FOR {
                return Ok(facts.clone());
            }
        }
        let facts = self.read_table(table).await?;
        self.tables
            .insert(table.clone(), (Instant::now(), facts.clone()));
        Ok(facts)
    }

    async fn read_table(&mut self, table: &TableName) -> Result<TableFacts, BinlogError> {
        let found: Vec<(String, String, String)> = self
            .rows(
                "reading information_schema.TABLES",
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                vec![table.schema.as_str().into(), table.table.as_str().into()],
            )
            .await?;
        let found: Vec<(TableName, bool)> = found
            .into_iter()
            .map(|(s, t, ty)| (TableName::new(s, t), ty.eq_ignore_ascii_case("VIEW")))
            .collect();
        let mut names: Vec<TableName> = found.iter().map(|(n, _)| n.clone()).collect();
        if names.is_empty() {
            names.push(table.clone());
        }
        let mut triggers = Some(Vec::new());
        for name in &names {
            if !self.sees_triggers(name).await? {
                triggers = None;
                break;
            }
            let got: Vec<(String, String)> = self
                .rows(
                    "reading information_schema.TRIGGERS",
                    "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS \
                     WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
                    vec![name.schema.as_str().into(), name.table.as_str().into()],
                )
                .await?;
            if let Some(list) = triggers.as_mut() {
                list.extend(got.into_iter().map(|(s, t)| TableName::new(s, t)));
            }
        }
        let mut cascades: Vec<Cascade> = Vec::new();
        let mut frontier = names.clone();
        for _ in 0..MAX_CASCADE_DEPTH {
            let mut next = Vec::new();
            for parent in &frontier {
                // KEY_COLUMN_USAGE lists a foreign key to users with SELECT
                // on the child; MariaDB shows its rules (REFERENTIAL_
                // CONSTRAINTS) only to users with more than that, and a key
                // whose rules cannot be seen counts as cascading.
                let children: Vec<ForeignKey> = self
                    .rows(
                        "reading information_schema.KEY_COLUMN_USAGE",
                        "SELECT DISTINCT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, \
                                r.UPDATE_RULE, r.DELETE_RULE \
                         FROM information_schema.KEY_COLUMN_USAGE k \
                         LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                           ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
                          AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                          AND r.TABLE_NAME = k.TABLE_NAME \
                         WHERE k.REFERENCED_TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME = ?",
                        vec![parent.schema.as_str().into(), parent.table.as_str().into()],
                    )
                    .await?;
                for (schema, child, constraint, on_update, on_delete) in children {
                    let acts = |rule: &Option<String>| {
                        rule.as_deref()
                            .is_none_or(|r| !matches!(r, "RESTRICT" | "NO ACTION"))
                    };
                    if !acts(&on_update) && !acts(&on_delete) {
                        continue;
                    }
                    let child = TableName::new(schema, child);
                    if cascades.iter().any(|c| c.child == child) || names.contains(&child) {
                        continue;
                    }
                    cascades.push(Cascade {
                        child: child.clone(),
                        constraint,
                        parent: parent.clone(),
                    });
                    next.push(child);
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(TableFacts {
            found,
            triggers,
            cascades,
        })
    }

    /// The stored functions among `calls` (names compared as the server
    /// does: routine names ignore case).
    pub async fn stored_functions(
        &mut self,
        calls: &[TableName],
    ) -> Result<Vec<TableName>, BinlogError> {
        let mut schemas: Vec<&str> = calls.iter().map(|c| c.schema.as_str()).collect();
        schemas.sort_unstable();
        schemas.dedup();
        let mut out = Vec::new();
        for schema in schemas {
            let cached = self
                .functions
                .get(schema)
                .filter(|(at, _)| at.elapsed() < CACHE_FOR)
                .map(|(_, f)| f.clone());
            let functions: Vec<(String, String)> = match cached {
                Some(f) => f,
                None => {
                    let f: Vec<(String, String)> = self
                        .rows(
                            "reading information_schema.ROUTINES",
                            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES \
                             WHERE ROUTINE_TYPE = 'FUNCTION' AND ROUTINE_SCHEMA = ?",
                            vec![schema.into()],
                        )
                        .await?;
                    self.functions
                        .insert(schema.to_string(), (Instant::now(), f.clone()));
                    f
                }
            };
            for call in calls.iter().filter(|c| c.schema == schema) {
                if let Some((s, n)) = functions
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(&call.table))
                {
                    out.push(TableName::new(s.clone(), n.clone()));
                }
            }
        }
        Ok(out)
    }
}

/// One `GRANT … ON … TO …` line: the privileges and what they are on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// Upper-cased privilege names (`ALL PRIVILEGES`, `TRIGGER`, …).
    privileges: Vec<String>,
    /// `None`: `*.*`; else the schema pattern and the table (`None`: `db.*`).
    on: Option<(String, Option<String>)>,
}

impl Grant {
    fn allows_triggers_on(&self, table: &TableName) -> bool {
        let privileged = self
            .privileges
            .iter()
            .any(|p| p == "ALL PRIVILEGES" || p == "ALL" || p == "TRIGGER");
        privileged
            && match &self.on {
                None => true,
                Some((schema, None)) => like(schema, &table.schema),
                Some((schema, Some(t))) => schema == &table.schema && t == &table.table,
            }
    }
}

/// Parses a `SHOW GRANTS` line (MySQL and MariaDB spellings); `None` for
/// role grants, proxy grants and routine grants.
fn parse_grant(line: &str) -> Option<Grant> {
    let rest = line.strip_prefix("GRANT ")?;
    let on_at = rest.find(" ON ")?;
    let privileges: Vec<String> = split_privileges(&rest[..on_at]);
    let target = rest[on_at + 4..].trim_start();
    if target.starts_with("FUNCTION ") || target.starts_with("PROCEDURE ") {
        return None;
    }
    let (schema, after) = ident(target)?;
    let after = after.strip_prefix('.')?;
    let (table, tail) = ident(after)?;
    if !tail.trim_start().starts_with("TO ") {
        return None;
    }
    let on = match (schema.as_str(), table.as_str()) {
        ("*", "*") => None,
        (_, "*") => Some((schema, None)),
        _ => Some((schema, Some(table))),
    };
    Some(Grant { privileges, on })
}

/// `SELECT, INSERT (a, b), TRIGGER` → names, column lists dropped.
fn split_privileges(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(current.trim().to_ascii_uppercase());
                current.clear();
            }
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_ascii_uppercase());
    }
    out
}

/// A grant target part: `*`, a backquoted name, or a bare name.
fn ident(text: &str) -> Option<(String, &str)> {
    if let Some(rest) = text.strip_prefix('*') {
        return Some(("*".into(), rest));
    }
    if let Some(rest) = text.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if matches!(chars.peek(), Some((_, '`'))) {
                    chars.next();
                    out.push('`');
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let end = text
        .find(|c: char| c == '.' || c.is_whitespace())
        .unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_string(), &text[end..]))
}

/// MySQL's LIKE as database-level grants use it: `%` any run, `_` any one
/// character, `\` escapes.
fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> TableName {
        TableName::new(s, n)
    }

    #[test]
    fn grants_parse_and_decide_trigger_visibility() {
        let lines = [
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO `repl`@`127.0.0.1` IDENTIFIED BY PASSWORD '*X'",
            "GRANT TRIGGER ON `other`.* TO `repl`@`127.0.0.1`",
            "GRANT SELECT (a, b), TRIGGER ON `shop`.`t``x` TO 'repl'@'%'",
            "GRANT ALL PRIVILEGES ON `tmp\\_%`.* TO `repl`@`127.0.0.1`",
            "GRANT EXECUTE ON FUNCTION `other`.`f` TO `repl`@`127.0.0.1`",
            "GRANT `role1` TO `repl`@`127.0.0.1`",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
        ];
        let grants: Vec<Grant> = lines.iter().filter_map(|l| parse_grant(l)).collect();
        assert_eq!(grants.len(), 4, "{grants:?}");
        let sees = |table: &TableName| grants.iter().any(|g| g.allows_triggers_on(table));
        assert!(sees(&t("other", "a")));
        assert!(!sees(&t("others", "a")));
        assert!(sees(&t("shop", "t`x")));
        assert!(!sees(&t("shop", "y")));
        assert!(sees(&t("tmp_1", "a")));
        assert!(!sees(&t("tmpx1", "a")), "`\\_` is a literal underscore");
        assert!(!sees(&t("hidden", "t")));
        let all =
            parse_grant("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION")
                .expect("parses");
        assert!(all.allows_triggers_on(&t("any", "thing")));
        let mysql = parse_grant("GRANT SELECT, TRIGGER ON `db`.* TO `u`@`%`").expect("parses");
        assert!(mysql.allows_triggers_on(&t("db", "x")));
    }

    #[test]
    fn like_patterns() {
        assert!(like("a%", "abc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "ac"));
        assert!(like("a\\_c", "a_c"));
        assert!(!like("a\\_c", "abc"));
        assert!(like("%", ""));
    }
}
