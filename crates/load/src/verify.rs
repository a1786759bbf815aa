//! The target side of `sluice verify`: the same checksums, row hashes and
//! row reads as the source side (`sluice_binlog::verify`, statements from
//! `sluice_core::verify::sql`), and the **repair** writes.
//!
//! Reads run on the loader's pool, whose sessions already use
//! `NAMES utf8mb4` and `time_zone = '+00:00'` — the settings the canonical
//! encoding needs. They are plain reads: the target is compared after the
//! pipeline applied through the source snapshot's position, and what moved
//! on since is re-checked by the caller, never trusted.
//!
//! Repairs ([`Loader::repair_locked`]) run in
//! **one transaction that first holds the pipeline's term** (the share lock
//! every loader write takes, see `apply::fence`), so a repair written under
//! a term that lost the target fails with [`LoadError::FencedOut`] instead
//! of racing the new leader. It then **locks the rows it will write**
//! before the caller reads them from the source: the pipeline's changes to
//! those keys wait, so the target cannot move past the source read while
//! the repair is in flight. The source read happens after the lock, in a
//! snapshot at a position at or after everything the target applied to
//! those rows; changes between the two positions that the pipeline applies
//! after the repair are full row images applied in binlog order, so the
//! rows end as the source's latest — never older than the target had. Keyed rows are upserts of the source's whole row and deletes by
//! key; a keyless table's extra row is deleted by its row hash, one copy at
//! a time (`LIMIT 1`), so one of two identical rows can go.

use std::collections::BTreeMap;

use sluice_core::verify::read::{
    described, hash_count_map, key_binds, split_hash, text, BytesRow, DescribedTable,
};
use sluice_core::verify::sql;
use sluice_core::verify::{BindValue, ChunkSum, Key, KeyRange, Side, VerifyTable};
use sqlx::mysql::{MySqlArguments, MySqlPool};
use sqlx::query::Query;
use sqlx::{MySql, Row as _};

use crate::apply::Loader;
use crate::error::LoadError;

/// Most keys, hashes or rows bound in one statement.
pub const KEYS_PER_STATEMENT: usize = 500;
/// Rows per repair upsert statement.
const ROWS_PER_UPSERT: usize = 100;

fn bind_all<'q>(
    mut q: Query<'q, MySql, MySqlArguments>,
    binds: &'q [BindValue],
) -> Query<'q, MySql, MySqlArguments> {
    for b in binds {
        q = match b {
            BindValue::Null => q.bind(None::<i64>),
            BindValue::Int(i) => q.bind(*i),
            BindValue::UInt(u) => q.bind(*u),
            BindValue::Text(t) => q.bind(t.as_str()),
            BindValue::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

fn bytes_rows(rows: Vec<sqlx::mysql::MySqlRow>) -> Result<Vec<BytesRow>, sqlx::Error> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<Option<Vec<u8>>, _>(i))
                .collect()
        })
        .collect()
}

/// One target session checksumming chunks of a table, one statement each.
pub struct ChecksumSession {
    conn: sqlx::pool::PoolConnection<MySql>,
    what: String,
}

impl ChecksumSession {
    /// The checksum of the rows in `range`.
    pub async fn checksum(
        &mut self,
        t: &VerifyTable,
        range: &KeyRange,
    ) -> Result<ChunkSum, LoadError> {
        let (predicate, binds) = sql::range_predicate(t, Side::Target, range);
        let stmt = sql::checksum(t, Side::Target, &predicate);
        let fail = |e| LoadError::target(None, self.what.clone(), e);
        let rows = bind_all(sqlx::query(&stmt), &binds)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(fail)?;
        let rows = bytes_rows(rows).map_err(fail)?;
        Ok(ChunkSum(text(
            rows.into_iter().next().and_then(|mut r| r.pop().flatten()),
        )))
    }
}

/// Reads the target for verify.
#[derive(Clone)]
pub struct TargetVerifier {
    pool: MySqlPool,
}

impl TargetVerifier {
    /// Reads over `loader`'s pool.
    pub fn new(loader: &Loader) -> Self {
        TargetVerifier {
            pool: loader.pool().clone(),
        }
    }

    async fn run(
        &self,
        what: &str,
        stmt: &str,
        binds: &[BindValue],
    ) -> Result<Vec<BytesRow>, LoadError> {
        let fail = |e| LoadError::target(None, what.to_string(), e);
        let rows = bind_all(sqlx::query(stmt), binds)
            .fetch_all(&self.pool)
            .await
            .map_err(fail)?;
        bytes_rows(rows).map_err(fail)
    }

    /// The table's columns and key; `None` when it does not exist.
    pub async fn describe(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<DescribedTable>, LoadError> {
        let names = [
            BindValue::Text(schema.into()),
            BindValue::Text(table.into()),
        ];
        let what = format!("describing {schema}.{table} on the target");
        let cols = self.run(&what, sql::DESCRIBE_COLUMNS, &names).await?;
        if cols.is_empty() {
            return Ok(None);
        }
        let keys = self.run(&what, sql::DESCRIBE_KEYS, &names).await?;
        Ok(Some(described(cols, keys)))
    }

    /// The checksum of the rows in `range`.
    pub async fn checksum(&self, t: &VerifyTable, range: &KeyRange) -> Result<ChunkSum, LoadError> {
        self.checksum_session(t).await?.checksum(t, range).await
    }

    /// A session for chunk checksums of `t`, held across chunks: it first
    /// makes room for a chunk's concatenated row texts (the loader's
    /// sessions keep the server's default `group_concat_max_len`).
    pub async fn checksum_session(&self, t: &VerifyTable) -> Result<ChecksumSession, LoadError> {
        let what = format!("checksumming {} on the target", t.target_name());
        let fail = |e| LoadError::target(None, what.clone(), e);
        let mut conn = self.pool.acquire().await.map_err(fail)?;
        sqlx::query(sql::GROUP_CONCAT_ROOM)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        Ok(ChecksumSession { conn, what })
    }

    /// `(key, row hash)` of the rows in `range`.
    pub async fn row_hashes(
        &self,
        t: &VerifyTable,
        range: &KeyRange,
    ) -> Result<Vec<(Key, Vec<u8>)>, LoadError> {
        let (predicate, binds) = sql::range_predicate(t, Side::Target, range);
        let stmt = sql::row_hashes(t, Side::Target, &predicate);
        let rows = self
            .run(
                &format!("hashing rows of {} on the target", t.target_name()),
                &stmt,
                &binds,
            )
            .await?;
        Ok(rows.into_iter().map(split_hash).collect())
    }

    /// Every compared column's canonical value (then the row hash) of the
    /// rows with `keys`.
    pub async fn rows_by_keys(
        &self,
        t: &VerifyTable,
        keys: &[Key],
    ) -> Result<Vec<BytesRow>, LoadError> {
        let mut out = Vec::new();
        for part in keys.chunks(KEYS_PER_STATEMENT) {
            let binds: Vec<Vec<BindValue>> = part.iter().map(|k| key_binds(t, k)).collect();
            let (predicate, binds) = sql::keys_predicate(t, Side::Target, &binds);
            let stmt = sql::rows(t, Side::Target, &predicate);
            out.extend(
                self.run(
                    &format!("reading rows of {} on the target", t.target_name()),
                    &stmt,
                    &binds,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// A keyless table's multiset of row hashes.
    pub async fn hash_counts(&self, t: &VerifyTable) -> Result<BTreeMap<Vec<u8>, u64>, LoadError> {
        let stmt = sql::hash_counts(t, Side::Target);
        let rows = self
            .run(
                &format!("hashing rows of {} on the target", t.target_name()),
                &stmt,
                &[],
            )
            .await?;
        Ok(hash_count_map(rows))
    }

    /// Whole rows (canonical values, then the hash) whose hash is one of
    /// `hashes`.
    pub async fn rows_by_hashes(
        &self,
        t: &VerifyTable,
        hashes: &[Vec<u8>],
    ) -> Result<Vec<BytesRow>, LoadError> {
        let mut out = Vec::new();
        for part in hashes.chunks(KEYS_PER_STATEMENT) {
            let predicate = sql::hashes_predicate(t, Side::Target, part.len());
            let binds: Vec<BindValue> = part.iter().map(|h| BindValue::Bytes(h.clone())).collect();
            let stmt = sql::rows(t, Side::Target, &predicate);
            out.extend(
                self.run(
                    &format!("reading rows of {} on the target", t.target_name()),
                    &stmt,
                    &binds,
                )
                .await?,
            );
        }
        Ok(out)
    }
}

/// What one repair writes to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    /// Whole source rows (canonical values of every compared column) to
    /// write: missing and differing keyed rows, missing keyless rows (one
    /// entry per copy).
    pub upserts: Vec<BytesRow>,
    /// Keys of extra keyed rows.
    pub delete_keys: Vec<Key>,
    /// Row hashes of extra keyless rows, one entry per copy to delete.
    pub delete_hashes: Vec<Vec<u8>>,
}

impl Loader {
    /// Repairs `keys` of `t` (every row of a keyless table, whose rows have
    /// no key to lock by) in one target transaction that holds the
    /// pipeline's term and first locks those keys' rows, and the gaps where
    /// missing ones go (`FOR UPDATE` under REPEATABLE READ, for this
    /// transaction only). Only then is `read` called for what to write:
    /// while the locks are held no batch of the pipeline can change those
    /// rows, so a source read started now is at a position at or after
    /// everything the target applied to them (see the module docs). Writes
    /// deletes by key and by row hash, then upserts of whole source rows,
    /// and commits; returns how many rows it wrote or deleted. An error of
    /// `read` rolls back.
    pub async fn repair_locked<E, F, Fut>(
        &self,
        t: &VerifyTable,
        keys: &[Key],
        read: F,
    ) -> Result<u64, E>
    where
        E: From<LoadError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Repair, E>>,
    {
        let what = format!("repairing {} on the target", t.target_name());
        let failed = |e| LoadError::target(None, what.as_str(), e);
        let mut conn = self.pool().acquire().await.map_err(failed)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(failed)?;
        self.check_term(&mut tx, None, true).await?;
        if t.is_keyless() {
            sqlx::query(&sql::lock_rows(t, "TRUE"))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        } else {
            for part in keys.chunks(KEYS_PER_STATEMENT) {
                let keys: Vec<Vec<BindValue>> = part.iter().map(|k| key_binds(t, k)).collect();
                let (predicate, binds) = sql::keys_predicate(t, Side::Target, &keys);
                let stmt = sql::lock_rows(t, &predicate);
                bind_all(sqlx::query(&stmt), &binds)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
        }
        let repair = read().await?;
        // Before the first write (the locks above are not logged): the peer
        // of a bidirectional pipeline must not copy the repair back.
        if !repair.delete_keys.is_empty()
            || !repair.delete_hashes.is_empty()
            || !repair.upserts.is_empty()
        {
            self.write_origin_marker(&mut tx, None, crate::apply::origin::REPAIR_WORKER)
                .await?;
        }
        for part in repair.delete_keys.chunks(KEYS_PER_STATEMENT) {
            let keys: Vec<Vec<BindValue>> = part.iter().map(|k| key_binds(t, k)).collect();
            let (predicate, binds) = sql::keys_predicate(t, Side::Target, &keys);
            let stmt = sql::delete(t, &predicate, false);
            bind_all(sqlx::query(&stmt), &binds)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        let one = sql::delete(t, &sql::hashes_predicate(t, Side::Target, 1), true);
        for h in &repair.delete_hashes {
            sqlx::query(&one)
                .bind(h.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        for part in repair.upserts.chunks(ROWS_PER_UPSERT) {
            let binds: Vec<BindValue> = part
                .iter()
                .flat_map(|row| {
                    t.columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| BindValue::from_canonical(c.kind, v))
                })
                .collect();
            let stmt = sql::upsert(t, part.len());
            bind_all(sqlx::query(&stmt), &binds)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok((repair.upserts.len() + repair.delete_keys.len() + repair.delete_hashes.len()) as u64)
    }
}

/// The pipeline's current term on the target (`sluice_meta.term`) and the
/// node holding it; `None` when no leader ever claimed one (a run without
/// etcd, whose loader writes without a term).
pub async fn current_term(
    loader: &Loader,
    pipeline: &str,
) -> Result<Option<(i64, String)>, LoadError> {
    sqlx::query_as("SELECT term, node FROM `sluice_meta`.`term` WHERE pipeline = ?")
        .bind(pipeline)
        .fetch_optional(loader.pool())
        .await
        .map_err(|e| LoadError::target(None, "reading the pipeline's term on the target", e))
}
