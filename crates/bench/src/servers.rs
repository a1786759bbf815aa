//! Servers for the scenarios, and what is read from them.
//!
//! Every server (source, sluice's target, reference targets) gets the same
//! InnoDB sizing, larger than the test kit's defaults (an 8 MB redo log
//! would make every bulk load checkpoint-bound and measure nothing but
//! that), so sluice and the reference write to identically configured
//! servers.

use anyhow::Context as _;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

use sluice_binlog::dialect::Dialect;
use sluice_testkit::compare::{compare, CompareOpts};
use sluice_testkit::{MariaDb, Role};

/// Options every bench server gets.
const BENCH_ARGS: &[&str] = &[
    "--innodb-buffer-pool-size=1G",
    "--innodb-log-file-size=512M",
];

/// Starts a server with the bench sizing plus `extra` options.
pub async fn start(role: Role, extra: &[&str]) -> anyhow::Result<MariaDb> {
    let mut builder = MariaDb::builder(role);
    for a in BENCH_ARGS.iter().chain(extra) {
        builder = builder.arg(*a);
    }
    let server = builder
        .start()
        .await
        .with_context(|| format!("starting a {role:?} mariadbd"))?;
    Ok(server)
}

/// A binlog coordinate; orders by file name, then offset (file names of one
/// server have fixed-width numbers, so they order as text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl BinlogPos {
    /// The `file:offset` head of sluice's `Position` text form
    /// (`mysql-bin.000001:1234 gtid=... ts=...`).
    pub fn parse_position_text(text: &str) -> Option<Self> {
        let head = text.split_whitespace().next()?;
        let (file, pos) = head.rsplit_once(':')?;
        Some(BinlogPos {
            file: file.to_string(),
            pos: pos.parse().ok()?,
        })
    }
}

/// The replication statements `conn`'s server takes.
pub async fn dialect(conn: &mut mysql_async::Conn) -> anyhow::Result<Dialect> {
    Ok(Dialect::detect(conn).await?)
}

/// The source's current end of binlog (`SHOW MASTER STATUS` or the
/// spelling the server's version takes).
pub async fn master_status(conn: &mut mysql_async::Conn) -> anyhow::Result<BinlogPos> {
    let status = dialect(conn).await?.binlog_status();
    let row: mysql_async::Row = conn
        .query_first(status)
        .await?
        .with_context(|| format!("{status} returned nothing (binlog off?)"))?;
    let file: String = row.get(0).with_context(|| format!("{status}: no File"))?;
    let pos: u64 = row
        .get(1)
        .with_context(|| format!("{status}: no Position"))?;
    Ok(BinlogPos { file, pos })
}

/// `@@gtid_binlog_pos` of a source.
pub async fn gtid_binlog_pos(conn: &mut mysql_async::Conn) -> anyhow::Result<String> {
    let v: Option<String> = conn.query_first("SELECT @@gtid_binlog_pos").await?;
    Ok(v.unwrap_or_default())
}

/// The sequence number of a single-domain MariaDB GTID position
/// (`0-1-123` → 123); 0 for an empty position.
pub fn gtid_seq(gtid: &str) -> anyhow::Result<u64> {
    if gtid.trim().is_empty() {
        return Ok(0);
    }
    anyhow::ensure!(!gtid.contains(','), "expected one GTID domain, got {gtid}");
    gtid.rsplit('-')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("not a GTID: {gtid}"))
}

/// `CHECKSUM TABLE` of each table, in order (the same rows give the same
/// checksum on identically configured servers).
pub async fn checksums(server: &MariaDb, tables: &[String]) -> anyhow::Result<Vec<Option<u64>>> {
    let mut conn = server.conn().await?;
    let mut out = Vec::new();
    for t in tables {
        let row: Option<(String, Option<u64>)> =
            conn.query_first(format!("CHECKSUM TABLE {t}")).await?;
        out.push(row.and_then(|(_, c)| c));
    }
    conn.disconnect().await?;
    Ok(out)
}

/// Fails unless `target` holds the same rows as `source` in `tables`
/// (`schema.table`). The check is `CHECKSUM TABLE` (cheap on millions of
/// rows); when it differs, the test kit's semantic comparison of each
/// schema names the tables, keys and columns that differ.
pub async fn ensure_same(
    what: &str,
    source: &MariaDb,
    target: &MariaDb,
    tables: &[String],
) -> anyhow::Result<()> {
    let a = checksums(source, tables).await?;
    let b = checksums(target, tables).await?;
    if a == b {
        return Ok(());
    }
    let mut schemas: Vec<&str> = tables
        .iter()
        .filter_map(|t| t.split_once('.').map(|(schema, _)| schema))
        .collect();
    schemas.sort_unstable();
    schemas.dedup();
    let mut detail = String::new();
    let (mut s, mut t) = (source.conn().await?, target.conn().await?);
    let opts = CompareOpts::default().allow_extra_target_tables();
    for schema in schemas {
        match compare(&mut s, schema, &mut t, schema, &opts).await {
            Ok(report) => detail.push_str(&report.to_string()),
            Err(e) => detail.push_str(&format!("comparing `{schema}` failed: {e}\n")),
        }
    }
    anyhow::bail!(
        "{what}: target differs from source: checksums {b:?} vs {a:?} for {tables:?}\n{detail}"
    )
}

/// Waits until a native replica's `@@gtid_slave_pos` is `gtid`; fails at
/// once if its SQL or IO thread stopped with an error.
pub async fn wait_replica(
    replica: &MariaDb,
    dialect: &Dialect,
    gtid: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut conn = replica.conn().await?;
    let begin = Instant::now();
    let mut checked = Instant::now();
    loop {
        let pos: Option<String> = conn.query_first("SELECT @@gtid_slave_pos").await?;
        if pos.as_deref() == Some(gtid) {
            conn.disconnect().await?;
            return Ok(());
        }
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            let status: Option<mysql_async::Row> =
                conn.query_first(dialect.replica_status()).await?;
            if let Some(row) = status {
                // MySQL 8.0.22+ names the columns Replica_…, MariaDB Slave_….
                let get = |name: &str| -> String {
                    let other = name.replace("Slave_", "Replica_");
                    row.columns_ref()
                        .iter()
                        .position(|c| c.name_str() == name || c.name_str() == other)
                        .and_then(|i| row.get::<Option<String>, _>(i).flatten())
                        .unwrap_or_default()
                };
                anyhow::ensure!(
                    get("Slave_SQL_Running") == "Yes" && get("Slave_IO_Running") == "Yes",
                    "native replica on port {} stopped: {} {}",
                    replica.port(),
                    get("Last_IO_Error"),
                    get("Last_SQL_Error")
                );
            }
        }
        anyhow::ensure!(
            begin.elapsed() < timeout,
            "timed out after {:.0?} waiting for the replica on port {} to reach {gtid} (at {pos:?})",
            begin.elapsed(),
            replica.port()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (at most `timeout`) until InnoDB on `server` has no background
/// work left from the writes before: purge done (history list empty) and
/// no dirty pages (flushed eagerly meanwhile, `innodb_max_dirty_pages_pct`
/// 0, then restored). A scenario timing reads of an idle table calls it on
/// every server first, so whichever tool runs first does not also compete
/// with the purge and page flushing left by loading the table.
pub async fn settle(server: &MariaDb, timeout: Duration) -> anyhow::Result<()> {
    let mut conn = server.conn().await?;
    let pct: f64 = conn
        .query_first("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
        .await?
        .context("reading innodb_max_dirty_pages_pct")?;
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .await?;
    let began = Instant::now();
    let outcome = loop {
        let dirty: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            .await?;
        let history: Option<u64> = conn
            .query_first(
                "SELECT `count` FROM information_schema.INNODB_METRICS WHERE name = 'trx_rseg_history_len'",
            )
            .await?;
        let (dirty, history) = (dirty.map_or(0, |d| d.1), history.unwrap_or(0));
        if dirty == 0 && history == 0 {
            break Ok(());
        }
        if began.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "server on port {} still busy after {timeout:?}: {dirty} dirty pages, history list {history}",
                server.port()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    conn.query_drop(format!("SET GLOBAL innodb_max_dirty_pages_pct = {pct}"))
        .await?;
    let _ = conn.disconnect().await;
    outcome
}
