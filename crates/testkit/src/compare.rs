//! A semantic comparison of a source schema with its replica on a target.
//!
//! [`compare`] reads every base table of the source schema and the
//! same-named target table through the text protocol (the server's own text
//! form; `HEX()` for binary strings and geometry, `CAST(.. AS UNSIGNED)` for
//! BIT, `JSON_NORMALIZE()` for JSON), matches columns by name, matches rows
//! by the source's primary key (or first all-NOT-NULL unique key), and
//! compares keyless tables as multisets. Column types are compared too
//! unless [`CompareOpts::ignore_column_types`]. Both sessions get
//! `time_zone='+00:00'`, so TIMESTAMP text is comparable across servers.
//! A difference is reported by table, key and column ([`CompareReport`]).

use std::collections::BTreeMap;
use std::fmt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use crate::sql::{q, qt, sql_str, truncate};
use crate::{io_err, Context as _, KitError, MariaDb, Result};

/// What [`compare`] skips or tolerates.
#[derive(Debug, Clone, Default)]
pub struct CompareOpts {
    /// Source tables not compared (and not reported missing on the target).
    pub exclude_tables: Vec<String>,
    /// `(table, column)` pairs not compared; skipped on both sides, so a
    /// target copy of the column (e.g. left NULL) is not "extra" either.
    pub exclude_columns: Vec<(String, String)>,
    /// Target columns the source table lacks are not a difference.
    pub allow_extra_target_columns: bool,
    /// Target tables the source schema lacks are not a difference.
    pub allow_extra_target_tables: bool,
    /// Do not compare COLUMN_TYPE and charset of same-named columns.
    pub ignore_column_types: bool,
}

impl CompareOpts {
    pub fn exclude_column(mut self, table: &str, column: &str) -> Self {
        self.exclude_columns.push((table.into(), column.into()));
        self
    }

    pub fn exclude_table(mut self, table: &str) -> Self {
        self.exclude_tables.push(table.into());
        self
    }

    pub fn allow_extra_target_columns(mut self) -> Self {
        self.allow_extra_target_columns = true;
        self
    }

    pub fn allow_extra_target_tables(mut self) -> Self {
        self.allow_extra_target_tables = true;
        self
    }

    pub fn ignore_column_types(mut self) -> Self {
        self.ignore_column_types = true;
        self
    }
}

/// Differences in one table.
#[derive(Debug, Clone, Default)]
pub struct TableDiff {
    pub table: String,
    pub source_rows: usize,
    pub target_rows: usize,
    /// Missing/extra columns and type differences.
    pub column_problems: Vec<String>,
    /// Source rows (by key) absent from the target.
    pub missing_rows: usize,
    /// Target rows (by key) absent from the source.
    pub extra_rows: usize,
    /// Rows present on both sides with different values.
    pub changed_rows: usize,
    /// Target rows sharing a key (the target lacks the source's key).
    pub duplicate_keys: usize,
    /// The first few differences, readable, in key order.
    pub samples: Vec<String>,
}

impl TableDiff {
    fn is_empty(&self) -> bool {
        self.column_problems.is_empty()
            && self.missing_rows == 0
            && self.extra_rows == 0
            && self.changed_rows == 0
            && self.duplicate_keys == 0
            && self.source_rows == self.target_rows
    }

    fn sample(&mut self, s: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(s);
        }
    }
}

const MAX_SAMPLES: usize = 8;

/// Result of [`compare`]; `Display` is the readable report.
#[derive(Debug, Clone, Default)]
pub struct CompareReport {
    pub source_schema: String,
    pub target_schema: String,
    pub tables_compared: usize,
    pub rows_compared: usize,
    /// Source tables with no same-named target table.
    pub missing_tables: Vec<String>,
    /// Target tables with no same-named source table.
    pub extra_tables: Vec<String>,
    /// Tables that differ.
    pub tables: Vec<TableDiff>,
}

impl CompareReport {
    pub fn is_same(&self) -> bool {
        self.missing_tables.is_empty() && self.extra_tables.is_empty() && self.tables.is_empty()
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_same() { "SAME" } else { "DIFFERENT" };
        writeln!(
            f,
            "source schema `{}` vs target schema `{}`: {verdict} ({} tables, {} source rows compared)",
            self.source_schema, self.target_schema, self.tables_compared, self.rows_compared
        )?;
        for t in &self.missing_tables {
            writeln!(f, "  table `{t}`: missing on target")?;
        }
        for t in &self.extra_tables {
            writeln!(f, "  table `{t}`: only on target")?;
        }
        for d in &self.tables {
            writeln!(
                f,
                "  table `{}`: {} rows on source, {} on target; {} missing on target, {} only on target, {} changed{}",
                d.table,
                d.source_rows,
                d.target_rows,
                d.missing_rows,
                d.extra_rows,
                d.changed_rows,
                if d.duplicate_keys > 0 {
                    format!(", {} duplicate keys on target", d.duplicate_keys)
                } else {
                    String::new()
                }
            )?;
            for p in &d.column_problems {
                writeln!(f, "    {p}")?;
            }
            for s in &d.samples {
                writeln!(f, "    - {s}")?;
            }
        }
        Ok(())
    }
}

type Cell = Option<Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    Null,
    Int(i128),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
struct ColInfo {
    name: String,
    data_type: String,
    column_type: String,
    charset: String,
}

async fn list_tables(conn: &mut Conn, schema: &str) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        sql_str(schema)
    );
    Ok(conn.query(sql).await?)
}

async fn list_columns(conn: &mut Conn, schema: &str, table: &str) -> Result<Vec<ColInfo>> {
    let sql = format!(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IFNULL(CHARACTER_SET_NAME, '') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
         ORDER BY ORDINAL_POSITION",
        sql_str(schema),
        sql_str(table)
    );
    let rows: Vec<(String, String, String, String)> = conn.query(sql).await?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type, column_type, charset)| ColInfo {
            name,
            data_type: data_type.to_ascii_lowercase(),
            column_type: column_type.to_ascii_lowercase(),
            charset,
        })
        .collect())
}

/// The columns rows are matched by: the primary key, else the first UNIQUE
/// key (by name) over NOT NULL whole columns, else none.
async fn key_columns(conn: &mut Conn, schema: &str, table: &str) -> Result<Option<Vec<String>>> {
    let sql = format!(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULLABLE, SUB_PART \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
         ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
        sql_str(schema),
        sql_str(table)
    );
    let rows: Vec<(String, i64, String, String, Option<i64>)> = conn.query(sql).await?;
    let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (index, non_unique, column, nullable, sub_part) in rows {
        let usable = non_unique == 0 && nullable != "YES" && sub_part.is_none();
        match indexes.last_mut() {
            Some((name, cols, ok)) if *name == index => {
                cols.push(column);
                *ok &= usable;
            }
            _ => indexes.push((index, vec![column], usable)),
        }
    }
    Ok(indexes
        .into_iter()
        .find(|(_, _, ok)| *ok)
        .map(|(_, cols, _)| cols))
}

/// MariaDB's JSON is LONGTEXT with a `json_valid(col)` CHECK constraint.
async fn json_columns(conn: &mut Conn, schema: &str, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = {} AND TABLE_NAME = {}",
        sql_str(schema),
        sql_str(table)
    );
    let clauses: Vec<String> = conn.query(sql).await.unwrap_or_default();
    clauses
        .into_iter()
        .filter_map(|c| {
            let c = c.trim();
            let inner = c
                .strip_prefix("json_valid(`")
                .or_else(|| c.strip_prefix("JSON_VALID(`"))?;
            Some(inner.strip_suffix("`)")?.replace("``", "`"))
        })
        .collect()
}

/// The expression that reads a column as comparable text.
fn select_expr(c: &ColInfo, json: bool) -> String {
    let n = q(&c.name);
    match c.data_type.as_str() {
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry"
        | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => format!("HEX({n})"),
        "bit" => format!("CAST({n} AS UNSIGNED)"),
        "json" => format!("JSON_NORMALIZE({n})"),
        _ if json => format!("JSON_NORMALIZE({n})"),
        _ => n,
    }
}

fn is_int_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year"
    )
}

async fn fetch(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Cell>>> {
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .with_context(|| format!("query failed: {}", truncate(sql, 500)))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).into_bytes()),
                })
                .collect()
        })
        .collect())
}

fn show(cell: &Cell) -> String {
    match cell {
        None => "NULL".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{:?}", truncate(s, 60)),
            Err(_) => {
                let hex: String = b.iter().take(30).map(|x| format!("{x:02X}")).collect();
                format!("0x{hex}{}", if b.len() > 30 { "…" } else { "" })
            }
        },
    }
}

fn show_row(cols: &[ColInfo], row: &[Cell]) -> String {
    let parts: Vec<String> = cols
        .iter()
        .zip(row)
        .map(|(c, v)| format!("{}={}", c.name, show(v)))
        .collect();
    truncate(&format!("({})", parts.join(", ")), 300)
}

fn show_key(cols: &[ColInfo], key_idx: &[usize], row: &[Cell]) -> String {
    key_idx
        .iter()
        .map(|&i| format!("{}={}", cols[i].name, show(&row[i])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares every base table of `source_schema` with the same-named table of
/// `target_schema` (see the module docs for how values are read and matched).
/// Sets `time_zone = '+00:00'` on both sessions.
pub async fn compare(
    source: &mut Conn,
    source_schema: &str,
    target: &mut Conn,
    target_schema: &str,
    opts: &CompareOpts,
) -> Result<CompareReport> {
    source.query_drop("SET time_zone = '+00:00'").await?;
    target.query_drop("SET time_zone = '+00:00'").await?;
    let mut report = CompareReport {
        source_schema: source_schema.into(),
        target_schema: target_schema.into(),
        ..CompareReport::default()
    };
    let excluded = |t: &str| opts.exclude_tables.iter().any(|x| x == t);
    let src_tables = list_tables(source, source_schema).await?;
    let tgt_tables = list_tables(target, target_schema).await?;
    for table in &src_tables {
        if excluded(table) {
            continue;
        }
        if !tgt_tables.contains(table) {
            report.missing_tables.push(table.clone());
            continue;
        }
        let diff = compare_table(source, source_schema, target, target_schema, table, opts)
            .await
            .with_context(|| format!("comparing table `{table}`"))?;
        report.tables_compared += 1;
        report.rows_compared += diff.source_rows;
        if !diff.is_empty() {
            report.tables.push(diff);
        }
    }
    if !opts.allow_extra_target_tables {
        report.extra_tables = tgt_tables
            .into_iter()
            .filter(|t| !src_tables.contains(t) && !excluded(t))
            .collect();
    }
    Ok(report)
}

async fn compare_table(
    source: &mut Conn,
    ss: &str,
    target: &mut Conn,
    ts: &str,
    table: &str,
    opts: &CompareOpts,
) -> Result<TableDiff> {
    let skip = |c: &str| {
        opts.exclude_columns
            .iter()
            .any(|(t, col)| t == table && col.eq_ignore_ascii_case(c))
    };
    let mut diff = TableDiff {
        table: table.into(),
        ..TableDiff::default()
    };
    let scols: Vec<ColInfo> = list_columns(source, ss, table)
        .await?
        .into_iter()
        .filter(|c| !skip(&c.name))
        .collect();
    let tcols: Vec<ColInfo> = list_columns(target, ts, table)
        .await?
        .into_iter()
        .filter(|c| !skip(&c.name))
        .collect();
    let mut common: Vec<ColInfo> = Vec::new();
    for s in &scols {
        match tcols.iter().find(|t| t.name.eq_ignore_ascii_case(&s.name)) {
            None => diff
                .column_problems
                .push(format!("column `{}` missing on target", s.name)),
            Some(t) => {
                if !opts.ignore_column_types
                    && (s.column_type != t.column_type || s.charset != t.charset)
                {
                    diff.column_problems.push(format!(
                        "column `{}`: type `{}` {} on source, `{}` {} on target",
                        s.name, s.column_type, s.charset, t.column_type, t.charset
                    ));
                }
                common.push(s.clone());
            }
        }
    }
    if !opts.allow_extra_target_columns {
        for t in &tcols {
            if !scols.iter().any(|s| s.name.eq_ignore_ascii_case(&t.name)) {
                diff.column_problems
                    .push(format!("column `{}` only on target", t.name));
            }
        }
    }
    let json = json_columns(source, ss, table).await;
    let mut exprs: Vec<String> = common
        .iter()
        .map(|c| select_expr(c, json.iter().any(|j| j.eq_ignore_ascii_case(&c.name))))
        .collect();
    if exprs.is_empty() {
        exprs.push("1".into());
    }
    let key_idx: Option<Vec<usize>> = key_columns(source, ss, table).await?.and_then(|k| {
        k.iter()
            .map(|n| common.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
            .collect()
    });
    let list = exprs.join(", ");
    // Both sides sorted the same way (same definitions, same server version),
    // so the comparison can walk them in step and only fall back to maps
    // after the first difference.
    let order: Vec<String> = match &key_idx {
        Some(ki) => ki.iter().map(|&i| q(&common[i].name)).collect(),
        None => common.iter().map(|c| q(&c.name)).collect(),
    };
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let src_sql = format!("SELECT {list} FROM {}{order}", qt(ss, table));
    let tgt_sql = format!("SELECT {list} FROM {}{order}", qt(ts, table));
    let (src_rows, tgt_rows) = tokio::try_join!(fetch(source, &src_sql), fetch(target, &tgt_sql))?;
    diff.source_rows = src_rows.len();
    diff.target_rows = tgt_rows.len();
    match key_idx {
        Some(ki) if !common.is_empty() => {
            compare_keyed(&mut diff, &common, &ki, src_rows, tgt_rows)
        }
        _ => compare_multiset(&mut diff, &common, src_rows, tgt_rows),
    }
    Ok(diff)
}

fn compare_keyed(
    diff: &mut TableDiff,
    cols: &[ColInfo],
    ki: &[usize],
    src: Vec<Vec<Cell>>,
    tgt: Vec<Vec<Cell>>,
) {
    // Fast path: walk both (key-ordered) sides while the keys agree.
    let same_key = |a: &[Cell], b: &[Cell]| ki.iter().all(|&i| a[i] == b[i]);
    let mut n = 0;
    while n < src.len()
        && n < tgt.len()
        && same_key(&src[n], &tgt[n])
        && !tgt.get(n + 1).is_some_and(|next| same_key(next, &tgt[n]))
    {
        if src[n] != tgt[n] {
            changed_row(diff, cols, ki, &src[n], &tgt[n]);
        }
        n += 1;
    }
    if n == src.len() && n == tgt.len() {
        return;
    }
    let (src, tgt) = (&src[n..], &tgt[n..]);
    let mk = |row: &[Cell]| -> Vec<KeyPart> {
        ki.iter()
            .map(|&i| match &row[i] {
                None => KeyPart::Null,
                Some(b) if is_int_type(&cols[i].data_type) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<i128>().ok())
                    .map_or_else(|| KeyPart::Bytes(b.clone()), KeyPart::Int),
                Some(b) => KeyPart::Bytes(b.clone()),
            })
            .collect()
    };
    let mut tmap: BTreeMap<Vec<KeyPart>, &[Cell]> = BTreeMap::new();
    let mut dups = Vec::new();
    for row in tgt {
        if let Some(prev) = tmap.insert(mk(row), row) {
            dups.push(prev);
        }
    }
    for row in dups {
        diff.duplicate_keys += 1;
        diff.sample(format!(
            "key {}: more than one row on target",
            show_key(cols, ki, row)
        ));
    }
    let smap: BTreeMap<Vec<KeyPart>, &[Cell]> = src.iter().map(|r| (mk(r), &r[..])).collect();
    for (k, s) in &smap {
        match tmap.remove(k) {
            None => {
                diff.missing_rows += 1;
                diff.sample(format!(
                    "key {}: missing on target; source row {}",
                    show_key(cols, ki, s),
                    show_row(cols, s)
                ));
            }
            Some(t) if t != *s => changed_row(diff, cols, ki, s, t),
            Some(_) => {}
        }
    }
    for t in tmap.values() {
        diff.extra_rows += 1;
        diff.sample(format!(
            "key {}: only on target; target row {}",
            show_key(cols, ki, t),
            show_row(cols, t)
        ));
    }
}

fn changed_row(diff: &mut TableDiff, cols: &[ColInfo], ki: &[usize], s: &[Cell], t: &[Cell]) {
    diff.changed_rows += 1;
    let differing: Vec<usize> = (0..cols.len()).filter(|&i| s[i] != t[i]).collect();
    let mut parts: Vec<String> = differing
        .iter()
        .take(3)
        .map(|&i| {
            format!(
                "column `{}`: source {} target {}",
                cols[i].name,
                show(&s[i]),
                show(&t[i])
            )
        })
        .collect();
    if differing.len() > 3 {
        parts.push(format!("and {} more columns", differing.len() - 3));
    }
    diff.sample(format!(
        "key {}: {}",
        show_key(cols, ki, s),
        parts.join("; ")
    ));
}

fn compare_multiset(
    diff: &mut TableDiff,
    cols: &[ColInfo],
    src: Vec<Vec<Cell>>,
    tgt: Vec<Vec<Cell>>,
) {
    // Fast path: both sides sorted by all columns; ties between rows that
    // differ only in bytes the collation ignores may come in another order,
    // which the counting below sorts out.
    let n = src.iter().zip(&tgt).take_while(|(s, t)| s == t).count();
    if n == src.len() && n == tgt.len() {
        return;
    }
    let mut counts: BTreeMap<&[Cell], i64> = BTreeMap::new();
    for r in &src[n..] {
        *counts.entry(r).or_default() += 1;
    }
    for r in &tgt[n..] {
        *counts.entry(r).or_default() -= 1;
    }
    for (row, n) in counts {
        if n > 0 {
            diff.missing_rows += n as usize;
            diff.sample(format!(
                "row {} (no key): {n} more on source than on target",
                show_row(cols, row)
            ));
        } else if n < 0 {
            diff.extra_rows += (-n) as usize;
            diff.sample(format!(
                "row {} (no key): {} more on target than on source",
                show_row(cols, row),
                -n
            ));
        }
    }
}

/// [`compare`], panicking with the report unless source and target are the same.
pub async fn assert_same(
    source: &mut Conn,
    source_schema: &str,
    target: &mut Conn,
    target_schema: &str,
    opts: &CompareOpts,
) -> CompareReport {
    let report = compare(source, source_schema, target, target_schema, opts)
        .await
        .unwrap_or_else(|e| panic!("compare failed: {e:#}"));
    assert!(report.is_same(), "{report}");
    report
}

/// Polls [`compare`] until source and target are the same, or fails with the
/// last report after `timeout`. Stop writing to the source first: a compare
/// taken while rows still change on the source can only succeed by chance.
/// Errors (a server restarting, a table renamed between listing and reading)
/// count as "not yet" and reconnect.
pub async fn wait_until_same(
    source: &MariaDb,
    source_schema: &str,
    target: &MariaDb,
    target_schema: &str,
    opts: &CompareOpts,
    timeout: Duration,
) -> Result<CompareReport> {
    let start = Instant::now();
    let mut conns: Option<(Conn, Conn)> = None;
    let mut every = Duration::from_millis(50);
    loop {
        let attempt: Result<CompareReport> = async {
            if conns.is_none() {
                conns = Some((source.conn().await?, target.conn().await?));
            }
            let (s, t) = conns
                .as_mut()
                .ok_or_else(|| KitError::Failed("no connections".into()))?;
            compare(s, source_schema, t, target_schema, opts).await
        }
        .await;
        let last = match attempt {
            Ok(r) if r.is_same() => return Ok(r),
            Ok(r) => r.to_string(),
            Err(e) => {
                conns = None;
                format!("compare failed: {e:#}")
            }
        };
        if start.elapsed() >= timeout {
            return Err(KitError::StillDifferent {
                source_schema: source_schema.into(),
                target_schema: target_schema.into(),
                waited: start.elapsed(),
                report: last,
            });
        }
        tokio::time::sleep(every).await;
        every = (every * 2).min(Duration::from_millis(500));
    }
}

/// Copies a schema with `mariadb-dump | mariadb` (structure and rows), e.g.
/// to seed a target or to check [`compare`] against a known-good copy.
pub async fn copy_schema_with_dump(
    source: &MariaDb,
    source_schema: &str,
    target: &MariaDb,
    target_schema: &str,
) -> Result<()> {
    let dump = crate::find_binary("mariadb-dump", "mariadb-client")?;
    let client = crate::find_binary("mariadb", "mariadb-client")?;
    target
        .exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            q(target_schema)
        ))
        .await?;
    let (sp, tp) = (source.port(), target.port());
    let (ss, ts) = (source_schema.to_string(), target_schema.to_string());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let common = |port: u16| {
            vec![
                "--no-defaults".to_string(),
                "--protocol=TCP".into(),
                "-h127.0.0.1".into(),
                format!("-P{port}"),
                "-uroot".into(),
                "--default-character-set=utf8mb4".into(),
            ]
        };
        let mut d = Command::new(&dump)
            .args(common(sp))
            .args(["--single-transaction", "--hex-blob", "--skip-comments"])
            .arg(&ss)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("running {}", dump.display())))?;
        let out = d
            .stdout
            .take()
            .ok_or_else(|| KitError::Failed("no dump stdout".into()))?;
        let load = Command::new(&client)
            .args(common(tp))
            .arg(&ts)
            .stdin(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(io_err(format!("running {}", client.display())))?;
        let dumped = d
            .wait_with_output()
            .map_err(io_err(format!("waiting for {}", dump.display())))?;
        if !dumped.status.success() {
            return Err(KitError::Failed(format!(
                "mariadb-dump {ss} failed ({}): {}",
                dumped.status,
                String::from_utf8_lossy(&dumped.stderr)
            )));
        }
        if !load.status.success() {
            return Err(KitError::Failed(format!(
                "mariadb {ts} < dump failed ({}): {}",
                load.status,
                String::from_utf8_lossy(&load.stderr)
            )));
        }
        Ok(())
    })
    .await
    .map_err(|e| KitError::Failed(format!("the dump | load thread failed: {e}")))?
}
