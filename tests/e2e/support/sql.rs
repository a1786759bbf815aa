//! SQL against the test servers: rows as text, binlog coordinates, and
//! waiting for a target to catch up.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_testkit::{wait_until_async, MariaDb};

use super::sluice::Sluice;

/// `{file: <first binlog>, pos: 4}`: everything the test writes.
pub async fn start_of_binlog(source: &MariaDb) -> String {
    let rows: Vec<(String, u64)> = source
        .query("SHOW BINARY LOGS")
        .await
        .expect("SHOW BINARY LOGS");
    format!("{{ file: {}, pos: 4 }}", rows[0].0)
}

/// The source's current end of binlog (`SHOW MASTER STATUS`).
pub async fn master_status(source: &MariaDb) -> (String, u64) {
    let end: Vec<mysql_async::Row> = source.query("SHOW MASTER STATUS").await.expect("status");
    let file: String = end[0].get(0).expect("file");
    let pos: u64 = end[0].get(1).expect("position");
    (file, pos)
}

/// Every row of `sql` as text (NULL as `None`); a failing query reads as
/// one row `<query failed>` (a table not replicated yet, a server
/// restarting), so waits simply go on.
pub async fn rows(db: &MariaDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut conn = db.conn().await.expect("connect");
    let result: Vec<mysql_async::Row> = match conn.query(sql).await {
        Ok(r) => r,
        Err(_) => return vec![vec![Some("<query failed>".into())]],
    };
    result
        .into_iter()
        .map(|row| {
            (0..row.len())
                .map(|i| match row.as_ref(i) {
                    Some(mysql_async::Value::NULL) | None => None,
                    Some(mysql_async::Value::Bytes(b)) => {
                        Some(String::from_utf8_lossy(b).into_owned())
                    }
                    Some(v) => Some(v.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

/// The first column of the first row of `sql` as a number (`None` if the
/// query fails or returns no number yet).
pub async fn number(db: &MariaDb, sql: &str) -> Option<u64> {
    rows(db, sql)
        .await
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
}

/// Polls until `sql` returns the same rows on both servers; fails with both
/// sides and the node's log tail after `timeout`.
pub async fn wait_same(
    source: &MariaDb,
    target: &MariaDb,
    source_sql: &str,
    target_sql: &str,
    timeout: Duration,
    sluice: &Sluice,
) {
    let last = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let same = wait_until_async(
        "the target to match the source",
        timeout,
        Duration::from_millis(100),
        || {
            let last = &last;
            async move {
                let a = rows(source, source_sql).await;
                let b = rows(target, target_sql).await;
                let same = a == b;
                *last.borrow_mut() = (a, b);
                same.then_some(())
            }
        },
    )
    .await;
    if let Err(e) = same {
        let (a, b) = last.into_inner();
        panic!(
            "{e}: target never matched the source\nsource: {:?}\ntarget: {:?}\nsluice log:\n{}",
            &a[..a.len().min(10)],
            &b[..b.len().min(10)],
            sluice.log_tail()
        );
    }
}

/// Polls until the number `count_sql` returns on `db` reaches `at_least`;
/// returns it. Fails with `nodes`' log tails after `timeout`.
pub async fn wait_count(
    db: &MariaDb,
    count_sql: &str,
    at_least: u64,
    timeout: Duration,
    nodes: &[&Sluice],
) -> u64 {
    wait_until_async(
        &format!("`{count_sql}` to reach {at_least}"),
        timeout,
        Duration::from_millis(20),
        || async { number(db, count_sql).await.filter(|n| *n >= at_least) },
    )
    .await
    .unwrap_or_else(|e| {
        let logs: Vec<String> = nodes.iter().map(|n| n.log_tail()).collect();
        panic!("{e}; logs:\n{}", logs.join("\n-----\n"))
    })
}
