//! From a MariaDB GTID position to the binlog file and offset right after it.
//!
//! A resume reconnects by file and offset (plus the GTID state), so a
//! position given only as GTIDs (`sluice positions set --gtid`) has to be
//! placed in the source's binlogs first. The answer is the start of the
//! first transaction not in the position — the offset of its GTID event —
//! or the end of the file when the position is the file's last transaction.
//!
//! How: `BINLOG_GTID_POS(file, 4)` gives the GTID state at the start of each
//! binlog file. The newest file that starts at or before the wanted position
//! is read with `SHOW BINLOG EVENTS` (in pages), advancing the state at each
//! GTID event until it equals the wanted position. Positions that are not a
//! transaction boundary in the binlogs the source still has resolve to
//! `None`, never to a guess. MariaDB only: MySQL's GTID sets have no
//! server function that places them.

use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Row};
use sluice_core::{GtidSet, MariadbGtid, MariadbGtidSet, Position, TlsConfig};

use crate::dialect::Dialect;
use crate::error::{At, BinlogError};

/// Rows per `SHOW BINLOG EVENTS` page.
const EVENTS_PAGE: u64 = 10_000;

/// Connects to the source at `url` (under `tls`, within `timeout`), places
/// `want` with [`position_after`] and disconnects.
pub async fn resolve_on_source(
    url: &str,
    tls: &TlsConfig,
    timeout: Duration,
    want: &MariadbGtidSet,
) -> Result<Option<Position>, BinlogError> {
    let mut conn = crate::connect::connect(url, tls, timeout).await?;
    let result = position_after(&mut conn, want).await;
    let _ = conn.disconnect().await;
    result
}

/// The file and offset right after GTID position `want` on the source
/// `conn` is connected to, carrying `want` as its GTID set; `None` when
/// `want` is not a transaction boundary in the binlogs the source has.
pub async fn position_after(
    conn: &mut Conn,
    want: &MariadbGtidSet,
) -> Result<Option<Position>, BinlogError> {
    let found = file_offset_after(conn, want).await?;
    Ok(found.map(|(file, offset)| {
        let mut position = Position::new(file, offset);
        position.gtid = Some(GtidSet::Mariadb(want.clone()));
        position
    }))
}

async fn file_offset_after(
    conn: &mut Conn,
    want: &MariadbGtidSet,
) -> Result<Option<(String, u64)>, BinlogError> {
    let same = |a: &MariadbGtidSet| a.is_at_or_after(want) && want.is_at_or_after(a);
    let dialect = Dialect::detect(conn).await?;
    let files: Vec<Row> = conn
        .query(dialect.binary_logs())
        .await
        .map_err(|e| BinlogError::source(dialect.binary_logs(), e))?;
    let files: Vec<String> = files
        .into_iter()
        .filter_map(|r| r.get::<String, _>(0))
        .collect();
    for file in files.iter().rev() {
        let start: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (file.as_str(),))
            .await
            .map_err(|e| BinlogError::source(format!("BINLOG_GTID_POS('{file}', 4)"), e))?;
        // NULL: the server cannot say (e.g. the file is being purged).
        let Some(start) = start.flatten() else {
            continue;
        };
        let mut state: MariadbGtidSet = start.parse().map_err(|e| BinlogError::Corrupt {
            at: At {
                file: file.clone(),
                offset: 4,
            },
            reason: format!("the source's GTID state `{start}` at the start of the file: {e}"),
        })?;
        if !want.is_at_or_after(&state) {
            continue; // this file starts after `want`
        }
        let mut from = 4u64;
        let mut end = 4u64;
        loop {
            let page: Vec<Row> = conn
                .query(dialect.binlog_events_from(file, from, EVENTS_PAGE))
                .await
                .map_err(|e| BinlogError::source(format!("SHOW BINLOG EVENTS IN '{file}'"), e))?;
            let count = page.len() as u64;
            for row in page {
                let pos: u64 = row.get(1).unwrap_or_default();
                let kind: String = row.get(2).unwrap_or_default();
                let end_pos: u64 = row.get(4).unwrap_or_default();
                let info: String = row.get(5).unwrap_or_default();
                end = end.max(end_pos);
                if kind == "Gtid" {
                    if same(&state) {
                        return Ok(Some((file.clone(), pos)));
                    }
                    if let Some(gtid) = gtid_of_info(&info) {
                        state.advance(gtid);
                    }
                }
            }
            if count < EVENTS_PAGE || end <= from {
                break;
            }
            from = end;
        }
        if same(&state) {
            return Ok(Some((file.clone(), end)));
        }
        // `want` lies before this file's first transaction boundary that
        // matches; an older file cannot hold it either (it started earlier
        // but `want` is not inside this one's range).
        return Ok(None);
    }
    Ok(None)
}

/// The GTID of a `Gtid` event's `Info` column: `BEGIN GTID 0-1-5`,
/// `GTID 0-1-5` (DDL), possibly followed by `cid=…`.
fn gtid_of_info(info: &str) -> Option<MariadbGtid> {
    let mut words = info.split_whitespace();
    words.find(|w| *w == "GTID")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_info_is_parsed() {
        let g = gtid_of_info("BEGIN GTID 0-1-5").expect("gtid");
        assert_eq!((g.domain, g.server_id, g.seq), (0, 1, 5));
        let g = gtid_of_info("GTID 2-3-40 cid=17").expect("gtid");
        assert_eq!((g.domain, g.server_id, g.seq), (2, 3, 40));
        assert!(gtid_of_info("COMMIT /* xid=5 */").is_none());
    }
}
