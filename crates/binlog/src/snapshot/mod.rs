//! Source-side reads of a snapshot: tables, their keys and definitions, the
//! binlog position streaming starts at, and chunks read in consistent
//! snapshots at an exact binlog position.
//!
//! # The one rule that makes the hand-off exact
//!
//! Every chunk is read in its **own** transaction opened with `START
//! TRANSACTION WITH CONSISTENT SNAPSHOT` (REPEATABLE READ). On MariaDB the
//! session variables `binlog_snapshot_file` / `binlog_snapshot_position`
//! then name exactly the binlog position whose committed transactions the
//! read view contains and nothing after it ([`ChunkRead::at`]). No lock is
//! taken: no `FLUSH TABLES WITH READ LOCK`, no `LOCK TABLES`, and source
//! writes continue throughout (the read is an ordinary MVCC read). MySQL has
//! no such variables, so [`SnapshotReader::connect`] refuses it with one
//! message.
//!
//! Chunks follow the **chunk key**: the primary key, else the unique index
//! whose columns are all NOT NULL and whole (the one InnoDB clusters on),
//! read in key order by keyset pagination (`WHERE key > last ORDER BY key
//! LIMIT n`, composite keys as `a > ? OR (a = ? AND b > ?)`, which the range
//! optimizer serves). A table without such a key is read whole in one
//! consistent snapshot, but streamed: [`SnapshotReader::read_whole`] opens
//! the read view and the result set, and [`WholeRead::next_part`] hands the
//! rows on in parts, so a reader holds one part at a time and the server
//! waits (TCP backpressure) while the parts are applied. The read view then
//! stays open for the whole table, which holds back purge on the source
//! and makes a DDL on that table wait for the copy (the read holds its
//! metadata lock); `net_write_timeout` is raised for the session so a slow
//! target does not make the server drop the read.
//!
//! Values are read over the binary protocol in a session with
//! `time_zone='+00:00'` and `NAMES utf8mb4`, so they arrive typed (integers,
//! floats, temporals as fields, exact DECIMAL text, UTF-8 text) and are
//! turned into the same [`Value`]s the loader writes ([`values`]).

mod describe;
mod values;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{BinaryProtocol, Conn, QueryResult};
use sluice_core::{Position, Row, TableSchema, TlsConfig, Value};

use crate::dialect::{Dialect, Flavor};
use crate::error::BinlogError;

pub use describe::key_predicate;

/// One source table as a snapshot reads it.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// Columns as the binlog describes them (type codes, collations,
    /// primary key), so chunk rows travel like stream rows.
    pub schema: Arc<TableSchema>,
    /// `information_schema.COLUMNS.COLUMN_TYPE` of each column, in order
    /// (what `create_tables` compares an existing target table with).
    pub column_types: Vec<String>,
    /// Indexes of the chunk key's columns (empty: the table has no usable
    /// key and is read whole).
    pub key: Vec<usize>,
    /// Name of the index the chunk key is (`PRIMARY` or a unique index).
    pub key_name: Option<String>,
    /// `SHOW CREATE TABLE` as the source prints it.
    pub create_sql: String,
    /// `information_schema.TABLES.TABLE_ROWS` (an estimate).
    pub rows_estimate: u64,
}

/// Rows of one chunk and the exact position of the read view they came
/// from.
#[derive(Debug)]
pub struct ChunkRead {
    pub rows: Vec<Row>,
    /// The binlog position of the read view: every transaction committed
    /// before it is in `rows`, none after it.
    pub at: Position,
    /// The chunk key of the last row (`None`: the chunk was empty).
    pub last_key: Option<Vec<Value>>,
}

/// A source connection for snapshot reads (MariaDB only).
pub struct SnapshotReader {
    conn: Conn,
    dialect: Dialect,
}

impl SnapshotReader {
    /// Connects and prepares the session; refuses a MySQL source.
    pub async fn connect(
        url: &str,
        tls: &TlsConfig,
        timeout: Duration,
    ) -> Result<Self, BinlogError> {
        let mut conn = crate::connect::connect(url, tls, timeout).await?;
        let dialect = Dialect::detect(&mut conn).await?;
        if dialect.flavor() != Flavor::Mariadb {
            return Err(BinlogError::Preflight(
                "`snapshot.mode: initial` needs a MariaDB source: only MariaDB reports the exact binlog position of a consistent snapshot (binlog_snapshot_file/position); copy the tables another way and use `snapshot.mode: never`".into(),
            ));
        }
        for sql in [
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SET SESSION time_zone = '+00:00'",
            "SET NAMES utf8mb4",
        ] {
            conn.query_drop(sql)
                .await
                .map_err(|e| BinlogError::source(format!("running `{sql}`"), e))?;
        }
        Ok(SnapshotReader { conn, dialect })
    }

    /// The source's current binlog end (`SHOW BINLOG STATUS` or the
    /// spelling its version takes, with its GTID position): where streaming
    /// starts, read before any chunk.
    pub async fn binlog_end(&mut self) -> Result<Position, BinlogError> {
        let status = self.dialect.binlog_status();
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(status)
            .await
            .map_err(|e| BinlogError::source(format!("reading {status}"), e))?;
        let Some(row) = row else {
            return Err(BinlogError::Preflight(format!(
                "{status} is empty: binary logging is off on the source"
            )));
        };
        let file: Option<String> = row.get(0);
        let pos: Option<u64> = row.get(1);
        let (Some(file), Some(pos)) = (file, pos) else {
            return Err(BinlogError::Preflight(format!(
                "{status} has no file and position"
            )));
        };
        let executed = self.dialect.executed_gtids();
        let gtid: Option<String> = self
            .conn
            .query_first(executed)
            .await
            .map_err(|e| BinlogError::source(format!("reading `{executed}`"), e))?;
        let mut position = Position::new(file, pos);
        if let Some(g) = gtid.filter(|g| !g.is_empty()) {
            position.gtid = g.parse().ok();
        }
        Ok(position)
    }

    /// Base tables outside the system schemas, as `(schema, table)`.
    pub async fn tables(&mut self) -> Result<Vec<(String, String)>, BinlogError> {
        self.conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
                 ('mysql', 'sys', 'information_schema', 'performance_schema') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await
            .map_err(|e| BinlogError::source("listing tables", e))
    }

    /// Columns, chunk key, definition and row estimate of one table.
    pub async fn describe(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<SourceTable, BinlogError> {
        describe::describe(&mut self.conn, schema, table).await
    }

    /// Opens a consistent snapshot and starts reading all of `t` in it (a
    /// table without a chunk key): the rows come in parts from
    /// [`WholeRead::next_part`], all as of [`WholeRead::at`]. Call
    /// [`Self::end_read`] afterwards, also when this or a part failed.
    pub async fn read_whole(&mut self, t: &SourceTable) -> Result<WholeRead<'_>, BinlogError> {
        let what = || format!("reading `{}`", t.schema.qualified_name());
        // The server waits on us while parts are applied (backpressure); by
        // default it would drop the connection after 60 s of that.
        self.conn
            .query_drop("SET SESSION net_write_timeout = 86400")
            .await
            .map_err(|e| BinlogError::source(what(), e))?;
        self.conn
            .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|e| BinlogError::source(what(), e))?;
        let at = match self.snapshot_position().await {
            Ok(Ok(at)) => at,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BinlogError::source(what(), e)),
        };
        let sql = select_all(t);
        let result = self
            .conn
            .exec_iter(sql, ())
            .await
            .map_err(|e| BinlogError::source(what(), e))?;
        Ok(WholeRead {
            result,
            schema: Arc::clone(&t.schema),
            at,
            ended: false,
        })
    }

    /// Ends the transaction of [`Self::read_whole`] (read only: nothing is
    /// lost; rows not read yet are discarded by the driver first).
    pub async fn end_read(&mut self) {
        let _ = self.conn.query_drop("COMMIT").await;
    }

    /// Reads up to `limit` rows after `after` (the chunk key of the last row
    /// already copied; `None`: from the start) in a consistent snapshot of
    /// its own. A table without a chunk key is read whole (`limit` and
    /// `after` are ignored; [`Self::read_whole`] streams it instead).
    pub async fn read_chunk(
        &mut self,
        t: &SourceTable,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<ChunkRead, BinlogError> {
        let mut sql = select_all(t);
        let mut params: Vec<mysql_async::Value> = Vec::new();
        if !t.key.is_empty() {
            let names: Vec<String> = t
                .key
                .iter()
                .map(|&i| quote(&t.schema.columns[i].name))
                .collect();
            if let Some(after) = after {
                let (pred, p) = key_predicate(&names, after);
                sql.push_str(" WHERE ");
                sql.push_str(&pred);
                params = p;
            }
            sql.push_str(" ORDER BY ");
            sql.push_str(&names.join(", "));
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let what = || format!("reading a chunk of `{}`", t.schema.qualified_name());
        self.conn
            .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|e| BinlogError::source(what(), e))?;
        let result = self.read_in_snapshot(t, &sql, params).await;
        // A read-only transaction: ending it cannot lose anything.
        let _ = self.conn.query_drop("COMMIT").await;
        result.map_err(|e| BinlogError::source(what(), e))?
    }

    async fn read_in_snapshot(
        &mut self,
        t: &SourceTable,
        sql: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<Result<ChunkRead, BinlogError>, mysql_async::Error> {
        let at = match self.snapshot_position().await? {
            Ok(at) => at,
            Err(e) => return Ok(Err(e)),
        };
        let raw: Vec<mysql_async::Row> = self.conn.exec(sql, params).await?;
        let mut rows = Vec::with_capacity(raw.len());
        for r in raw {
            match values::row(&t.schema, r) {
                Ok(row) => rows.push(row),
                Err(reason) => {
                    return Ok(Err(BinlogError::Preflight(format!(
                        "reading `{}`: {reason}",
                        t.schema.qualified_name()
                    ))))
                }
            }
        }
        let last_key = rows
            .last()
            .filter(|_| !t.key.is_empty())
            .map(|r: &Row| t.key.iter().map(|&i| r[i].clone()).collect());
        Ok(Ok(ChunkRead { rows, at, last_key }))
    }

    /// The binlog position of the open consistent snapshot.
    async fn snapshot_position(
        &mut self,
    ) -> Result<Result<Position, BinlogError>, mysql_async::Error> {
        let status: Vec<(String, String)> = self
            .conn
            .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
            .await?;
        let get = |name: &str| {
            status
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let (Some(file), Some(pos)) = (
            get("binlog_snapshot_file"),
            get("binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok()),
        ) else {
            return Ok(Err(BinlogError::Preflight(
                "the source reports no binlog_snapshot_file/position for a consistent snapshot (binary logging off?)".into(),
            )));
        };
        Ok(Ok(Position::new(file, pos)))
    }
}

/// A table being read whole in one consistent snapshot
/// ([`SnapshotReader::read_whole`]): a streaming result set.
pub struct WholeRead<'a> {
    result: QueryResult<'a, 'static, BinaryProtocol>,
    schema: Arc<TableSchema>,
    /// The binlog position of the read view (as [`ChunkRead::at`]).
    pub at: Position,
    ended: bool,
}

impl WholeRead<'_> {
    /// The next up to `limit` rows; fewer than `limit` (possibly none): the
    /// table is read to its end.
    pub async fn next_part(&mut self, limit: usize) -> Result<Vec<Row>, BinlogError> {
        let mut rows = Vec::new();
        let what = || format!("reading `{}`", self.schema.qualified_name());
        while !self.ended && rows.len() < limit {
            match self.result.next().await {
                Ok(Some(raw)) => match values::row(&self.schema, raw) {
                    Ok(row) => rows.push(row),
                    Err(reason) => {
                        return Err(BinlogError::Preflight(format!("{}: {reason}", what())))
                    }
                },
                Ok(None) => self.ended = true,
                Err(e) => return Err(BinlogError::source(what(), e)),
            }
        }
        Ok(rows)
    }
}

/// `SELECT` every column `FROM` the table.
fn select_all(t: &SourceTable) -> String {
    let mut sql = String::from("SELECT ");
    for (i, c) in t.schema.columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quote(&c.name));
    }
    sql.push_str(" FROM ");
    sql.push_str(&quote(&t.schema.schema));
    sql.push('.');
    sql.push_str(&quote(&t.schema.table));
    sql
}

/// `` `schema`.`table` ``.
pub fn quote_qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// A backquoted identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
