//! A manual source switch (`sluice source switch`): the order the desk
//! gives Select, and the check that the new server already holds every
//! transaction Select has read.
//!
//! Select continues on the new server from the GTID set of the last whole
//! transaction it sent. A replica that has not yet applied (and binlogged)
//! that far would refuse the dump — MariaDB answers error 1236, "the slave
//! requested a GTID that is not in the master's binlog", which is definite —
//! so Select first waits, bounded by [`CATCH_UP`], until the server's
//! binlogged GTID set covers its own; if it does not, the switch is refused
//! and Select reconnects to the server it was reading.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use sluice_core::{GtidSet, TlsConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long the new server may take to catch up with Select.
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// Move Select to `source.urls[index]`; the reply is the GTID set it
/// continues from, or why it did not switch.
#[derive(Debug)]
pub struct SwitchOrder {
    pub index: usize,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// Select's end of the order channel (shared, so that `SelectConfig` stays
/// `Clone`; one Select takes it at a time).
pub type SwitchReceiver = Arc<tokio::sync::Mutex<mpsc::Receiver<SwitchOrder>>>;

/// A channel for switch orders.
pub fn channel() -> (mpsc::Sender<SwitchOrder>, SwitchReceiver) {
    let (tx, rx) = mpsc::channel(1);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// Waits until the server at `url` has binlogged every transaction of
/// `want` (MariaDB: `@@gtid_binlog_pos` at or after it in every domain;
/// MySQL: `GTID_SUBSET(want, @@gtid_executed)`), for at most [`CATCH_UP`].
pub async fn wait_until_holds(url: &str, tls: &TlsConfig, want: &GtidSet) -> Result<(), String> {
    let shown = sluice_core::redact_url(url);
    let mut conn = sluice_binlog::connect::connect(url, tls, Duration::from_secs(5))
        .await
        .map_err(|e| format!("cannot connect to {shown}: {e}"))?;
    let started = Instant::now();
    let result = loop {
        let holds = match want {
            GtidSet::Mariadb(want) => {
                let pos: Option<String> = conn
                    .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                    .await
                    .map_err(|e| format!("{shown}: reading @@gtid_binlog_pos: {e}"))?;
                let have: sluice_core::MariadbGtidSet = pos
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| format!("{shown}: @@gtid_binlog_pos: {e}"))?;
                have.is_at_or_after(want)
            }
            GtidSet::Mysql(_) => {
                let subset: Option<i64> = conn
                    .exec_first(
                        "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)",
                        (want.to_string(),),
                    )
                    .await
                    .map_err(|e| format!("{shown}: GTID_SUBSET: {e}"))?;
                subset == Some(1)
            }
        };
        if holds {
            break Ok(());
        }
        if started.elapsed() >= CATCH_UP {
            break Err(format!(
                "{shown} has not caught up with GTID {want} within {CATCH_UP:?}; still reading from the current server"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = conn.disconnect().await;
    result
}
