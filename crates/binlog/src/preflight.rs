//! Preflight: can this source serve sluice as a fake replica, from here?
//!
//! Each `ensure_*` check runs before the dump starts and fails with one
//! message that says what is wrong and what to change (as Materialize's MySQL
//! source does), so an operator never has to read a stack of driver errors.
//! The statements come from the server's [`Dialect`].

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sluice_core::{GtidSet, MariadbGtidSet, MysqlGtidSet};

use crate::dialect::Dialect;
pub use crate::dialect::Flavor;
use crate::error::BinlogError;

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, BinlogError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW GLOBAL VARIABLES LIKE '{name}'"))
        .await
        .map_err(|e| BinlogError::source(format!("reading @@{name}"), e))?;
    Ok(row.map(|(_, v)| v))
}

pub async fn flavor(conn: &mut Conn) -> Result<Flavor, BinlogError> {
    Ok(Dialect::detect(conn).await?.flavor())
}

pub async fn ensure_binlog_enabled(conn: &mut Conn) -> Result<(), BinlogError> {
    match var(conn, "log_bin").await?.as_deref() {
        Some("ON") | Some("1") => Ok(()),
        other => Err(BinlogError::Preflight(format!(
            "binary logging is disabled on the source (log_bin={}): start it with --log-bin",
            other.unwrap_or("unknown")
        ))),
    }
}

pub async fn ensure_row_format(conn: &mut Conn, dialect: &Dialect) -> Result<(), BinlogError> {
    let format = match var(conn, "binlog_format").await? {
        Some(f) => f,
        // A server that dropped the variable logs rows only.
        None if dialect.row_format_when_unset() => return Ok(()),
        None => String::new(),
    };
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(BinlogError::Preflight(format!(
            "binlog_format is {format}: sluice needs ROW (SET GLOBAL binlog_format = 'ROW', and in the server config)"
        )));
    }
    Ok(())
}

pub async fn ensure_full_row_image(conn: &mut Conn) -> Result<(), BinlogError> {
    // Servers before 5.6 have no such variable and always log full rows.
    if let Some(image) = var(conn, "binlog_row_image").await? {
        if !image.eq_ignore_ascii_case("FULL") {
            return Err(BinlogError::Preflight(format!(
                "binlog_row_image is {image}: sluice needs FULL to replicate whole rows (SET GLOBAL binlog_row_image = 'FULL')"
            )));
        }
    }
    Ok(())
}

/// Not fatal: without FULL metadata columns are named `@1..@n` and
/// unsignedness, charsets and ENUM/SET labels are unknown. Returns the
/// warning it logged.
pub async fn check_row_metadata(conn: &mut Conn) -> Result<Option<String>, BinlogError> {
    let meta = var(conn, "binlog_row_metadata").await?;
    match meta {
        Some(m) if m.eq_ignore_ascii_case("FULL") => Ok(None),
        other => {
            let msg = format!(
                "binlog_row_metadata is {}: without FULL, column names, signedness, charsets and ENUM/SET labels are missing from the binlog (SET GLOBAL binlog_row_metadata = 'FULL')",
                other.as_deref().unwrap_or("not supported by this server")
            );
            tracing::warn!("{msg}");
            Ok(Some(msg))
        }
    }
}

/// REPLICATION CLIENT (BINLOG MONITOR) is tested by using it; REPLICATION
/// SLAVE by reading the grants, since it cannot be used without starting a
/// dump.
pub async fn ensure_replication_privileges(
    conn: &mut Conn,
    dialect: &Dialect,
) -> Result<(), BinlogError> {
    let status = dialect.binlog_status();
    if let Err(e) = conn.query_drop(status).await {
        return Err(match &e {
            mysql_async::Error::Server(s) if s.code == 1227 => BinlogError::Preflight(
                "the source user lacks REPLICATION CLIENT (BINLOG MONITOR on MariaDB): GRANT REPLICATION CLIENT ON *.* TO <user>".into(),
            ),
            _ => dialect.refused(status, e),
        });
    }
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(|e| BinlogError::source("SHOW GRANTS", e))?;
    let ok = grants.iter().any(|g| {
        let g = g.to_ascii_uppercase();
        g.contains(" ON *.*")
            && (g.contains("ALL PRIVILEGES")
                || g.contains("REPLICATION SLAVE")
                || g.contains("REPLICATION REPLICA"))
    });
    // Grants through roles are not visible here; let the dump decide then.
    let via_role = grants
        .iter()
        .any(|g| g.to_ascii_uppercase().starts_with("GRANT `"));
    if !ok && !via_role {
        return Err(BinlogError::Preflight(
            "the source user lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO <user>"
                .into(),
        ));
    }
    Ok(())
}

/// No other replica is registered with our server_id (the source would cut
/// one of the two dumps).
pub async fn ensure_server_id_unused(
    conn: &mut Conn,
    dialect: &Dialect,
    server_id: u32,
) -> Result<(), BinlogError> {
    let own: Option<u32> = conn.query_first("SELECT @@server_id").await.ok().flatten();
    if own == Some(server_id) {
        return Err(BinlogError::Preflight(format!(
            "server_id {server_id} is the source's own server_id: give sluice a unique one"
        )));
    }
    // Needs REPLICATION MASTER ADMIN on MariaDB 10.5+; without it we cannot
    // tell, and the source will cut one of two same-id dumps instead.
    let hosts = dialect.replica_hosts();
    let rows = match conn.query::<mysql_async::Row, _>(hosts).await {
        Ok(rows) => rows,
        Err(e) => {
            let error = dialect.refused(hosts, e);
            if matches!(error, BinlogError::StatementUnsupported { .. }) {
                return Err(error);
            }
            tracing::warn!(%error, "cannot list the source's replicas (MariaDB needs REPLICATION MASTER ADMIN): server_id {server_id} not checked for clashes");
            return Ok(());
        }
    };
    for row in rows {
        let id: Option<u32> = row.get(0);
        if id == Some(server_id) {
            let host: String = row.get(1).unwrap_or_default();
            let port: String = row
                .get::<mysql_async::Value, _>(2)
                .map(|v| v.as_sql(true))
                .unwrap_or_default();
            return Err(BinlogError::ServerIdInUse {
                server_id,
                peer: format!("host {host}, port {port}"),
            });
        }
    }
    Ok(())
}

/// The binlog files the source still has, oldest first, with sizes.
pub async fn binary_logs(
    conn: &mut Conn,
    dialect: &Dialect,
) -> Result<Vec<(String, u64)>, BinlogError> {
    let sql = dialect.binary_logs();
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(|e| dialect.refused(sql, e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0).unwrap_or_default(),
                r.get::<u64, _>(1).unwrap_or(0),
            )
        })
        .collect())
}

/// The requested file still exists and the offset is inside it.
pub async fn ensure_file_position_available(
    conn: &mut Conn,
    dialect: &Dialect,
    file: &str,
    pos: u64,
) -> Result<(), BinlogError> {
    let logs = binary_logs(conn, dialect).await?;
    let oldest = logs.first().map(|(f, _)| f.clone()).unwrap_or_default();
    match logs.iter().find(|(f, _)| f == file) {
        None => Err(BinlogError::Purged(format!(
            "binlog file {file} is not on the source (purged or never existed); the oldest available is {oldest}:4"
        ))),
        Some((_, size)) if pos > *size => Err(BinlogError::Purged(format!(
            "offset {pos} is past the end of {file} ({size} bytes)"
        ))),
        Some(_) => Ok(()),
    }
}

/// The transactions after `requested` are all still in the source's binlogs.
pub async fn ensure_gtid_available(
    conn: &mut Conn,
    dialect: &Dialect,
    requested: &GtidSet,
) -> Result<(), BinlogError> {
    match (dialect.flavor(), requested) {
        (Flavor::Mysql, GtidSet::Mysql(req)) => {
            let purged: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_purged")
                .await
                .map_err(|e| BinlogError::source("reading gtid_purged", e))?;
            let purged: MysqlGtidSet = purged
                .unwrap_or_default()
                .parse()
                .map_err(|e| BinlogError::Preflight(format!("source gtid_purged: {e}")))?;
            let missing = purged.difference(req);
            if !missing.is_empty() {
                return Err(BinlogError::Purged(format!(
                    "the source purged transactions {missing} that GTID set {req} has not seen; the oldest available state is {purged}"
                )));
            }
            Ok(())
        }
        (Flavor::Mariadb, GtidSet::Mariadb(req)) => {
            let logs = binary_logs(conn, dialect).await?;
            let Some((first, _)) = logs.first() else {
                return Ok(());
            };
            // The first file's GTID_LIST is the state before its first event:
            // anything at or before it is all that is left.
            let sql = dialect.binlog_events(first, 5);
            let rows: Vec<mysql_async::Row> = conn
                .query(&sql)
                .await
                .map_err(|e| dialect.refused(&sql, e))?;
            let list = rows
                .iter()
                .find(|r| r.get::<String, _>(2).as_deref() == Some("Gtid_list"))
                .and_then(|r| r.get::<String, _>(5))
                .unwrap_or_default();
            let list = list.trim().trim_start_matches('[').trim_end_matches(']');
            if list.is_empty() {
                return Ok(());
            }
            let oldest: MariadbGtidSet = list
                .parse()
                .map_err(|e| BinlogError::Preflight(format!("source Gtid_list `{list}`: {e}")))?;
            for g in oldest.iter() {
                match req.get(g.domain) {
                    Some(r) if r.seq >= g.seq => {}
                    _ => {
                        return Err(BinlogError::Purged(format!(
                            "GTID position {req} needs domain {} from before {g}, which the source purged; the oldest available position is {oldest} (binlog {first})",
                            g.domain
                        )))
                    }
                }
            }
            Ok(())
        }
        (flavor, set) => Err(BinlogError::Preflight(format!(
            "GTID set {set} is not of the source's flavour ({flavor:?})"
        ))),
    }
}
