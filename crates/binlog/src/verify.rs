//! The source side of `sluice verify`: describing tables, planning chunks
//! and reading checksums, row hashes and rows **inside consistent
//! snapshots whose binlog position is exact**.
//!
//! Every read that is compared runs in a [`SourceSnapshot`]: a
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` whose position
//! comes from MariaDB's `binlog_snapshot_file` / `binlog_snapshot_position`
//! status, which the server reports for exactly that read view. The target
//! is compared once the pipeline applied through that position, so a change
//! in flight is never mistaken for a difference. Nothing here writes to the
//! source, and no statement is replicated. A MySQL source (which does not
//! report the snapshot's position) is refused with [`BinlogError::Verify`].
//!
//! The statements themselves are `sluice_core::verify::sql`, shared with
//! the target side so both hash the same canonical text. Chunk planning
//! ([`SourceVerifier::plan_chunks`]) needs no snapshot: chunk bounds only
//! split the key space; what is compared is read later at exact positions.
//! A dense single integer key is cut by value from its `MIN` and `MAX` (two
//! index dives, chunks never wider than `chunk_rows` keys); any other key by
//! one walk over the key index (`LIMIT 1 OFFSET n-1` per chunk), which
//! costs the source about as much as checksumming the rows.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Params, Pool, Row, Value};
use sluice_core::verify::read::{
    described, hash_count_map, key_binds, split_hash, text, DescribedTable,
};
use sluice_core::verify::sql;
use sluice_core::verify::{BindValue, ChunkSum, Key, KeyRange, VerifyTable};
use sluice_core::TlsConfig;

use crate::connect::source_opts;
use crate::error::BinlogError;

/// Most keys or hashes bound in one statement.
pub const KEYS_PER_STATEMENT: usize = 500;

/// The exact binlog position of a snapshot: the read view holds every
/// transaction before it and none after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPosition {
    pub file: String,
    pub offset: u64,
}

impl std::fmt::Display for SnapshotPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

/// Reads the source for verify.
#[derive(Clone)]
pub struct SourceVerifier {
    pool: Pool,
}

pub(crate) fn params(binds: &[BindValue]) -> Params {
    if binds.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        binds
            .iter()
            .map(|b| match b {
                BindValue::Null => Value::NULL,
                BindValue::Int(i) => Value::Int(*i),
                BindValue::UInt(u) => Value::UInt(*u),
                BindValue::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
                BindValue::Bytes(b) => Value::Bytes(b.clone()),
            })
            .collect(),
    )
}

/// A result row as canonical bytes (every verify statement returns
/// `CAST(.. AS BINARY)` or integers).
fn bytes_row(row: Row) -> Vec<Option<Vec<u8>>> {
    row.unwrap()
        .into_iter()
        .map(|v| match v {
            Value::NULL => None,
            Value::Bytes(b) => Some(b),
            Value::Int(i) => Some(i.to_string().into_bytes()),
            Value::UInt(u) => Some(u.to_string().into_bytes()),
            other => Some(other.as_sql(true).into_bytes()),
        })
        .collect()
}

async fn run(
    conn: &mut Conn,
    what: &str,
    sql: &str,
    binds: &[BindValue],
) -> Result<Vec<Vec<Option<Vec<u8>>>>, BinlogError> {
    let rows: Vec<Row> = conn
        .exec(sql, params(binds))
        .await
        .map_err(|e| BinlogError::source(what.to_string(), e))?;
    Ok(rows.into_iter().map(bytes_row).collect())
}

impl SourceVerifier {
    /// A pool of sessions to the source at `url`.
    pub fn new(url: &str, tls: &TlsConfig) -> Result<Self, BinlogError> {
        let opts = source_opts(url, tls)?;
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .setup(
                sql::SESSION_SETUP
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .conn_ttl(Some(Duration::from_secs(60)));
        Ok(SourceVerifier {
            pool: Pool::new(opts),
        })
    }

    async fn conn(&self) -> Result<Conn, BinlogError> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| BinlogError::source("connecting for verify", e))
    }

    /// Base tables outside the system schemas.
    pub async fn tables(&self) -> Result<Vec<(String, String)>, BinlogError> {
        let mut conn = self.conn().await?;
        let rows = run(&mut conn, "listing tables", &sql::list_tables(), &[]).await?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let table = text(r.pop().flatten());
                let schema = text(r.pop().flatten());
                (schema, table)
            })
            .collect())
    }

    /// The table's columns and key; `None` when it does not exist.
    pub async fn describe(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<DescribedTable>, BinlogError> {
        let mut conn = self.conn().await?;
        let names = [
            BindValue::Text(schema.into()),
            BindValue::Text(table.into()),
        ];
        let what = format!("describing {schema}.{table}");
        let cols = run(&mut conn, &what, sql::DESCRIBE_COLUMNS, &names).await?;
        if cols.is_empty() {
            return Ok(None);
        }
        let keys = run(&mut conn, &what, sql::DESCRIBE_KEYS, &names).await?;
        Ok(Some(described(cols, keys)))
    }

    /// Key ranges of about `chunk_rows` rows each covering the whole table,
    /// in key order (one range, open on both sides, for a keyless table or
    /// an empty one), sent to `out` as they are found — so the comparison
    /// of the first chunks overlaps the planning of the rest (on its own
    /// session). Stops early, without an error, once `out`'s receiver is
    /// gone; returns how many ranges it sent.
    pub async fn plan_chunks(
        &self,
        t: &VerifyTable,
        chunk_rows: u64,
        out: &tokio::sync::mpsc::Sender<KeyRange>,
    ) -> Result<u64, BinlogError> {
        if t.is_keyless() {
            return Ok(u64::from(out.send(KeyRange::default()).await.is_ok()));
        }
        let mut conn = self.conn().await?;
        if let Some(sent) = self.plan_by_value(&mut conn, t, chunk_rows, out).await? {
            return Ok(sent);
        }
        let mut sent = 0;
        let mut after: Option<Vec<BindValue>> = None;
        loop {
            let (stmt, binds) = sql::next_bound(t, after.as_deref(), chunk_rows.max(1));
            let rows = run(
                &mut conn,
                &format!("planning chunks of {}", t.source_name()),
                &stmt,
                &binds,
            )
            .await?;
            let Some(row) = rows.into_iter().next() else {
                let last = KeyRange {
                    after,
                    through: None,
                };
                return Ok(sent + u64::from(out.send(last).await.is_ok()));
            };
            let bound: Vec<BindValue> = t
                .key_columns()
                .zip(&row)
                .map(|(c, v)| BindValue::from_canonical(c.kind, v))
                .collect();
            let range = KeyRange {
                after: after.take(),
                through: Some(bound.clone()),
            };
            if out.send(range).await.is_err() {
                return Ok(sent);
            }
            sent += 1;
            after = Some(bound);
        }
    }

    /// [`plan_chunks`](Self::plan_chunks) for a dense single integer key:
    /// ranges of `chunk_rows` key values ([`sluice_core::verify::value_bounds`]),
    /// from two index dives instead of a walk of the index. `None`: the key
    /// is not one integer column, or too sparse; walk it.
    async fn plan_by_value(
        &self,
        conn: &mut Conn,
        t: &VerifyTable,
        chunk_rows: u64,
        out: &tokio::sync::mpsc::Sender<KeyRange>,
    ) -> Result<Option<u64>, BinlogError> {
        let Some(stmt) = sql::key_span(t) else {
            return Ok(None);
        };
        let names = [
            BindValue::Text(t.source_schema.clone()),
            BindValue::Text(t.source_table.clone()),
        ];
        let what = format!("planning chunks of {}", t.source_name());
        let rows = run(conn, &what, &stmt, &names).await?;
        let num = |v: Option<&Option<Vec<u8>>>| -> Option<i128> {
            std::str::from_utf8(v?.as_deref()?).ok()?.parse().ok()
        };
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (Some(min), Some(max)) = (num(row.first()), num(row.get(1))) else {
            // An empty table: the walk's one open range.
            return Ok(None);
        };
        let estimated = num(row.get(2)).map_or(0, |n| u64::try_from(n).unwrap_or(0));
        let Some(bounds) = sluice_core::verify::value_bounds(min, max, estimated, chunk_rows)
        else {
            return Ok(None);
        };
        let bind = |b: i128| match t.key_columns().next().map(|c| c.kind) {
            Some(sluice_core::verify::ColumnKind::Unsigned) => {
                u64::try_from(b).map(BindValue::UInt).ok()
            }
            _ => i64::try_from(b).map(BindValue::Int).ok(),
        };
        let mut sent = 0;
        let mut after: Option<Vec<BindValue>> = None;
        for b in bounds {
            // Inside [min, max], so it fits the column's type.
            let Some(v) = bind(b) else { break };
            let range = KeyRange {
                after: after.take(),
                through: Some(vec![v.clone()]),
            };
            if out.send(range).await.is_err() {
                return Ok(Some(sent));
            }
            sent += 1;
            after = Some(vec![v]);
        }
        let last = KeyRange {
            after,
            through: None,
        };
        let sent = sent + u64::from(out.send(last).await.is_ok());
        tracing::debug!(table = %t.source_name(), min, max, estimated, chunks = sent, "chunks cut by key value");
        Ok(Some(sent))
    }

    /// Opens a consistent snapshot and reads its exact binlog position.
    pub async fn snapshot(&self) -> Result<SourceSnapshot, BinlogError> {
        let mut conn = self.conn().await?;
        let what = "opening a consistent snapshot";
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|e| BinlogError::source(what, e))?;
        let status: Vec<(String, String)> = conn
            .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(|e| BinlogError::source(what, e))?;
        let get = |name: &str| {
            status
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let (Some(file), Some(offset)) =
            (get("binlog_snapshot_file"), get("binlog_snapshot_position"))
        else {
            return Err(BinlogError::Verify(
                "the source does not report binlog_snapshot_file/binlog_snapshot_position (MariaDB does; a MySQL source cannot be verified yet)".into(),
            ));
        };
        let offset = offset.parse().map_err(|_| {
            BinlogError::Verify(format!(
                "binlog_snapshot_position {offset:?} is not a number"
            ))
        })?;
        if file.is_empty() {
            return Err(BinlogError::Verify(
                "the source has no binary log (binlog_snapshot_file is empty)".into(),
            ));
        }
        Ok(SourceSnapshot {
            conn,
            position: SnapshotPosition { file, offset },
        })
    }

    /// Whether the source's binlog holds no transaction from `file:offset`
    /// up to `until`: only events that are not changes (a rotation, the
    /// next file's format description, GTID lists, checkpoints). Then a
    /// pipeline whose position is `file:offset` has applied everything
    /// `until` holds, although its position (which only moves with
    /// transactions) names an earlier place — the case after a binlog
    /// rotation on an idle source. Reads at most a few events: it stops at
    /// the first transaction event.
    pub async fn quiet_between(
        &self,
        file: &str,
        offset: u64,
        until: &SnapshotPosition,
    ) -> Result<bool, BinlogError> {
        const QUIET: &[&str] = &[
            "Format_desc",
            "Gtid_list",
            "Binlog_checkpoint",
            "Rotate",
            "Stop",
            "Start_encryption",
            "Heartbeat",
            "Previous_gtids",
        ];
        let what = "reading the source's binlog events";
        let mut conn = self.conn().await?;
        let dialect = crate::dialect::Dialect::detect(&mut conn).await?;
        let logs: Vec<Row> = conn
            .query(dialect.binary_logs())
            .await
            .map_err(|e| BinlogError::source(what, e))?;
        let names: Vec<String> = logs
            .into_iter()
            .filter_map(|r| r.get::<String, _>(0))
            .collect();
        let order = |a: &str, b: &str| sluice_core::cmp_binlog_file_names(a, b);
        for name in names {
            let (Some(after_start), Some(before_end)) =
                (order(&name, file), order(&name, &until.file))
            else {
                return Ok(false);
            };
            if after_start.is_lt() || before_end.is_gt() {
                continue;
            }
            let from = if name == file { offset } else { 4 };
            let stmt = dialect.binlog_events_from(&name, from, 50);
            let events: Vec<Row> = conn
                .query(stmt)
                .await
                .map_err(|e| BinlogError::source(what, e))?;
            for ev in events {
                let pos: u64 = ev.get(1).unwrap_or(0);
                if name == until.file && pos >= until.offset {
                    break;
                }
                let kind: String = ev.get(2).unwrap_or_default();
                if !QUIET.contains(&kind.as_str()) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// One consistent read view of the source at [`Self::position`].
pub struct SourceSnapshot {
    conn: Conn,
    pub position: SnapshotPosition,
}

impl SourceSnapshot {
    /// The checksum of the rows in `range`.
    pub async fn checksum(
        &mut self,
        t: &VerifyTable,
        range: &KeyRange,
    ) -> Result<ChunkSum, BinlogError> {
        let (predicate, binds) = sql::range_predicate(t, sluice_core::verify::Side::Source, range);
        let stmt = sql::checksum(t, sluice_core::verify::Side::Source, &predicate);
        let rows = run(
            &mut self.conn,
            &format!("checksumming {}", t.source_name()),
            &stmt,
            &binds,
        )
        .await?;
        Ok(ChunkSum(text(
            rows.into_iter().next().and_then(|mut r| r.pop().flatten()),
        )))
    }

    /// `(key, row hash)` of the rows in `range`.
    pub async fn row_hashes(
        &mut self,
        t: &VerifyTable,
        range: &KeyRange,
    ) -> Result<Vec<(Key, Vec<u8>)>, BinlogError> {
        let (predicate, binds) = sql::range_predicate(t, sluice_core::verify::Side::Source, range);
        let stmt = sql::row_hashes(t, sluice_core::verify::Side::Source, &predicate);
        let rows = run(
            &mut self.conn,
            &format!("hashing rows of {}", t.source_name()),
            &stmt,
            &binds,
        )
        .await?;
        Ok(rows.into_iter().map(split_hash).collect())
    }

    /// Every compared column's canonical value (then the row hash) of the
    /// rows with `keys`.
    pub async fn rows_by_keys(
        &mut self,
        t: &VerifyTable,
        keys: &[Key],
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>, BinlogError> {
        let mut out = Vec::new();
        for part in keys.chunks(KEYS_PER_STATEMENT) {
            let binds: Vec<Vec<BindValue>> = part.iter().map(|k| key_binds(t, k)).collect();
            let (predicate, binds) =
                sql::keys_predicate(t, sluice_core::verify::Side::Source, &binds);
            let stmt = sql::rows(t, sluice_core::verify::Side::Source, &predicate);
            out.extend(
                run(
                    &mut self.conn,
                    &format!("reading rows of {}", t.source_name()),
                    &stmt,
                    &binds,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// A keyless table's multiset of row hashes.
    pub async fn hash_counts(
        &mut self,
        t: &VerifyTable,
    ) -> Result<BTreeMap<Vec<u8>, u64>, BinlogError> {
        let stmt = sql::hash_counts(t, sluice_core::verify::Side::Source);
        let rows = run(
            &mut self.conn,
            &format!("hashing rows of {}", t.source_name()),
            &stmt,
            &[],
        )
        .await?;
        Ok(hash_count_map(rows))
    }

    /// Whole rows (canonical values, then the hash) whose hash is one of
    /// `hashes`.
    pub async fn rows_by_hashes(
        &mut self,
        t: &VerifyTable,
        hashes: &[Vec<u8>],
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>, BinlogError> {
        let mut out = Vec::new();
        for part in hashes.chunks(KEYS_PER_STATEMENT) {
            let predicate = sql::hashes_predicate(t, sluice_core::verify::Side::Source, part.len());
            let binds: Vec<BindValue> = part.iter().map(|h| BindValue::Bytes(h.clone())).collect();
            let stmt = sql::rows(t, sluice_core::verify::Side::Source, &predicate);
            out.extend(
                run(
                    &mut self.conn,
                    &format!("reading rows of {}", t.source_name()),
                    &stmt,
                    &binds,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Ends the read view.
    pub async fn end(mut self) {
        let _ = self.conn.query_drop("COMMIT").await;
    }
}
