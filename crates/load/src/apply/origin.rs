//! Origin tags: how a bidirectional pipeline marks what it applied, so that
//! its peer (replicating the other way) never sends it back.
//!
//! # Mechanisms
//!
//! * **Session `server_id`** ([`OriginTag::ServerId`], the default). Every
//!   loader connection runs `SET SESSION server_id = TAG` when it opens
//!   (with the other session settings, `options::session_statements`), so
//!   every event the server logs for it — GTID, table maps, rows, the
//!   checkpoint and term writes, DDL — carries `TAG` in its event header,
//!   and MariaDB's GTIDs read `domain-TAG-seq`. Nothing extra is written.
//!   It holds however a transaction is split (every slice is applied by a
//!   tagged session) and however many workers apply in parallel (every
//!   pooled connection is tagged before its first use). MariaDB allows a
//!   session `server_id` to a user with `BINLOG REPLAY` or `SUPER`
//!   (`PRIV_SET_SYSTEM_SESSION_VAR_SERVER_ID` in MariaDB's
//!   `sql/privilege.h`, 10.5.2 and later); MySQL has no session
//!   `server_id` at all. [`Loader::ensure_origin_tag`] tries it once before
//!   the pipeline starts and refuses with one message naming the
//!   privilege, or saying to use the marker on MySQL. `TAG` must not be the
//!   target's own `server_id` (checked too) nor a replica id registered with
//!   it.
//! * **Marker row** ([`OriginTag::Marker`]). Every target transaction that
//!   writes rows first upserts the row `(pipeline, worker)` of
//!   `sluice_meta.origin` (`migrations/0006_bidirectional.sql`), before any
//!   other write, so in the binlog the transaction's *first* row change
//!   names the pipeline. One row per worker keeps parallel workers off each
//!   other's row locks. Every worker transaction of every batch carries its
//!   own marker, so a split source transaction (several batches) and
//!   parallel workers are covered; so do the operators' writes through the
//!   pipeline's loader, `verify --repair` and `sluice errors replace`, under
//!   rows of their own ([`REPAIR_WORKER`], [`REPLACE_WORKER`]); the metadata-only transactions
//!   (checkpoint, batch in flight, term) carry none and need none, because
//!   the peer never replicates `sluice_meta`. DDL cannot carry a marker
//!   (it commits on its own), which is why the config refuses `tagging:
//!   marker` with `load.ddl: apply`. No privilege beyond writing
//!   `sluice_meta`.
//!
//! # Recognition
//!
//! The peer's Select (`sluice-pipeline`'s `select`) drops a source
//! transaction when an event of it carries the peer's tag in its header, or
//! when its first rows event is on `sluice_meta.origin` with the peer's
//! name in the `pipeline` column. The dropped transaction still moves the
//! position (an empty batch, which writes nothing to the target).

use sqlx::mysql::MySqlConnection;
use sqlx::Connection as _;

use super::options::OriginTag;
use super::Loader;
use crate::error::{LoadError, ServerError};

/// The table holding the marker rows.
pub const ORIGIN_TABLE: &str = "origin";

/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: "you need (at least one of) the …
/// privilege(s)".
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
/// `ER_GLOBAL_VARIABLE`: "Variable … is a GLOBAL variable".
const ER_GLOBAL_VARIABLE: u16 = 1228;

impl Loader {
    /// Checks, on a connection of its own, that the target accepts this
    /// loader's origin tag (see the module docs); a definite
    /// [`LoadError::Tagging`] with one message when it does not. No-op
    /// without a tag or with the marker (whose table the migrations create).
    pub async fn ensure_origin_tag(&self) -> Result<(), LoadError> {
        let Some(OriginTag::ServerId(tag)) = &self.opts.origin else {
            return Ok(());
        };
        let tag = *tag;
        let options = self.pool.connect_options();
        let mut conn = MySqlConnection::connect_with(&options)
            .await
            .map_err(|e| LoadError::target(None, "connecting to the target", e))?;
        let result = check_server_id_tag(&mut conn, tag).await;
        let _ = conn.close().await;
        result
    }
}

async fn check_server_id_tag(conn: &mut MySqlConnection, tag: u32) -> Result<(), LoadError> {
    let (own, version, user): (u64, String, String) =
        sqlx::query_as("SELECT @@server_id, VERSION(), CURRENT_USER()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| LoadError::target(None, "reading the target's server id", e))?;
    if own == u64::from(tag) {
        return Err(LoadError::Tagging {
            message: format!(
                "the tag {tag} (bidirectional.server_id) is the target's own server_id: choose a tag no server or replica uses"
            ),
        });
    }
    match sqlx::query(&format!("SET SESSION server_id = {tag}"))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match ServerError::from_sqlx(&e) {
            Some(s) if s.code == ER_SPECIFIC_ACCESS_DENIED => Err(LoadError::Tagging {
                message: format!(
                    "the target user {user} may not set its session server_id, which tags what this pipeline applies: grant it the BINLOG REPLAY privilege (`GRANT BINLOG REPLAY ON *.* TO {user}`; SUPER also does), or set `bidirectional.tagging: marker` (server said: {s})"
                ),
            }),
            Some(s) if s.code == ER_GLOBAL_VARIABLE => Err(LoadError::Tagging {
                message: format!(
                    "the target ({version}) has no session server_id (MySQL): set `bidirectional.tagging: marker` (server said: {s})"
                ),
            }),
            _ => Err(LoadError::target(
                None,
                "setting the session server_id that tags applied transactions",
                e,
            )),
        },
    }
}

/// The marker row of `verify --repair`'s transactions (batch workers use
/// `0..workers`; a row of its own keeps a repair off their row locks).
pub(crate) const REPAIR_WORKER: usize = 1_000_000;
/// The marker row of `sluice errors replace`'s transactions.
pub(crate) const REPLACE_WORKER: usize = 1_000_001;

impl Loader {
    /// With `tagging: marker`, the marker upsert for `worker`'s row; run it
    /// before any other write of a target transaction that writes rows
    /// (batches, repairs, replacements), so the peer drops the transaction.
    /// A no-op otherwise (the session `server_id` tags every write).
    pub(crate) async fn write_origin_marker(
        &self,
        conn: &mut MySqlConnection,
        batch_id: Option<u64>,
        worker: usize,
    ) -> Result<(), LoadError> {
        match &self.opts.origin {
            Some(OriginTag::Marker { pipeline }) => {
                write_marker(conn, batch_id, pipeline, worker).await
            }
            _ => Ok(()),
        }
    }
}

/// The marker upsert run first in a row transaction of `pipeline`'s
/// `worker`.
async fn write_marker(
    conn: &mut MySqlConnection,
    batch_id: Option<u64>,
    pipeline: &str,
    worker: usize,
) -> Result<(), LoadError> {
    sqlx::query(
        "INSERT INTO `sluice_meta`.`origin` (pipeline, worker, transactions) VALUES (?, ?, 1) \
         ON DUPLICATE KEY UPDATE transactions = transactions + 1",
    )
    .bind(pipeline)
    .bind(worker as u64)
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(|e| LoadError::target(batch_id, "writing the origin marker", e))
}
