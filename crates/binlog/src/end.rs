//! The source's end of binlog now: where a pipeline must have applied up to
//! for its target to hold everything the source wrote so far
//! (`sluice switchover`).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_core::{Position, TlsConfig};

use crate::dialect::Dialect;
use crate::error::BinlogError;

/// The current binlog file and offset of the source at `url` (the position
/// of the next event it will write) and, where the server has one, its GTID
/// position. Needs `REPLICATION CLIENT` (or `BINLOG MONITOR`), as the
/// pipeline's source user has.
pub async fn binlog_end(
    url: &str,
    tls: &TlsConfig,
    timeout: Duration,
) -> Result<Position, BinlogError> {
    let mut conn = crate::connect::connect(url, tls, timeout).await?;
    let dialect = Dialect::detect(&mut conn).await?;
    let status = dialect.binlog_status();
    let row: Option<mysql_async::Row> = conn
        .query_first(status)
        .await
        .map_err(|e| dialect.refused(status, e))?;
    let row =
        row.ok_or_else(|| BinlogError::Preflight(format!("{status} is empty: is log_bin on?")))?;
    let file: String = row.get(0).unwrap_or_default();
    let offset: u64 = row.get(1).unwrap_or(4);
    let gtid = crate::stream::current_gtid(&mut conn, &dialect).await?;
    let _ = conn.disconnect().await;
    let mut position = Position::new(file, offset);
    position.gtid = gtid;
    Ok(position)
}
