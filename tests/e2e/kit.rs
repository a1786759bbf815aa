//! The test kit itself: real servers, isolated from each other.

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{Etcd, MariaDb, REPL_USER};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Rows written on the source show up as row events in its binlog; the same
/// rows copied by hand to the target read back equal.
#[tokio::test]
async fn source_binlog_and_target_copy() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    assert_ne!(source.port(), target.port());

    // The source is configured the way sluice requires.
    let vars: Vec<(String, String)> = source
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format',\
             'binlog_row_image','binlog_row_metadata','gtid_strict_mode',\
             'character_set_server','binlog_checksum','time_zone')",
        )
        .await?;
    let var = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(var("log_bin"), Some("ON"));
    assert_eq!(var("binlog_format"), Some("ROW"));
    assert_eq!(var("binlog_row_image"), Some("FULL"));
    assert_eq!(var("binlog_row_metadata"), Some("FULL"));
    assert_eq!(var("gtid_strict_mode"), Some("ON"));
    assert_eq!(var("binlog_checksum"), Some("CRC32"));
    assert_eq!(var("character_set_server"), Some("utf8mb4"));
    assert_eq!(var("time_zone"), Some("+00:00"));
    let target_log_bin: Vec<(String, String)> =
        target.query("SHOW GLOBAL VARIABLES LIKE 'log_bin'").await?;
    assert_eq!(target_log_bin[0].1, "OFF", "targets run without a binlog");

    source
        .exec(
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2));
             INSERT INTO shop.items VALUES (1, 'ünïcødé 🦀', 9.99), (2, 'plain', 100.00);
             UPDATE shop.items SET price = 10.49 WHERE id = 1;
             DELETE FROM shop.items WHERE id = 2;
             INSERT INTO shop.items VALUES (3, NULL, 0.01);",
        )
        .await?;

    // The binlog holds exactly the row events we caused, and nothing from the
    // kit's own account setup.
    let events: Vec<mysql_async::Row> = source.query("SHOW BINLOG EVENTS").await?;
    let kinds: Vec<String> = events
        .iter()
        .map(|r| r.get::<String, _>(2).unwrap_or_default())
        .collect();
    let infos: Vec<String> = events
        .iter()
        .map(|r| r.get::<String, _>(5).unwrap_or_default())
        .collect();
    let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
    assert_eq!(count("Write_rows_v1"), 2, "events: {kinds:?}");
    assert_eq!(count("Update_rows_v1"), 1, "events: {kinds:?}");
    assert_eq!(count("Delete_rows_v1"), 1, "events: {kinds:?}");
    assert!(count("Table_map") >= 4, "events: {kinds:?}");
    assert!(count("Gtid") >= 6, "events: {kinds:?}");
    assert!(
        !infos.iter().any(|i| i.contains("CREATE USER")),
        "account setup leaked into the binlog: {infos:?}"
    );

    // The replication account can see binlog coordinates.
    let mut repl = mysql_async::Conn::new(mysql_async::Opts::from_url(&source.repl_url())?).await?;
    let status: Option<mysql_async::Row> = repl.query_first("SHOW MASTER STATUS").await?;
    let file: String = status.and_then(|r| r.get(0)).unwrap_or_default();
    assert_eq!(file, "mysql-bin.000001");
    let grants: Vec<String> = repl.query("SHOW GRANTS").await?;
    assert!(
        grants.iter().any(|g| g.contains("REPLICATION SLAVE")),
        "{REPL_USER} grants: {grants:?}"
    );
    repl.disconnect().await?;

    // Manual copy to the target.
    type Item = (i32, Option<String>, String);
    let rows: Vec<Item> = source
        .query("SELECT id, name, CAST(price AS CHAR) FROM shop.items ORDER BY id")
        .await?;
    assert_eq!(rows.len(), 2);
    let mut tconn = target.conn().await?;
    tconn
        .query_drop(
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2))",
        )
        .await?;
    tconn
        .exec_batch(
            "INSERT INTO shop.items VALUES (?, ?, ?)",
            rows.iter().map(|(id, name, price)| (id, name, price)),
        )
        .await?;
    let copied: Vec<Item> = tconn
        .query("SELECT id, name, CAST(price AS CHAR) FROM shop.items ORDER BY id")
        .await?;
    tconn.disconnect().await?;
    assert_eq!(copied, rows);
    assert_eq!(copied[0].1.as_deref(), Some("ünïcødé 🦀"));
    assert_eq!(copied[0].2, "10.49");
    Ok(())
}

#[tokio::test]
async fn etcd_put_get() -> TestResult {
    let etcd = Etcd::start().await?;
    let mut client = etcd.client().await?;
    client.put("/sluice/kit/hello", "world", None).await?;
    let resp = client.get("/sluice/kit/hello", None).await?;
    let kv = resp.kvs().first().ok_or("key missing")?;
    assert_eq!(kv.value_str()?, "world");
    Ok(())
}

/// etcd can be taken away and given back with its data (later HA tests rely
/// on this).
#[tokio::test]
async fn etcd_restart_keeps_data() -> TestResult {
    let mut etcd = Etcd::start().await?;
    etcd.client().await?.put("/k", "v1", None).await?;
    etcd.stop().await;
    assert!(!etcd.is_running());
    etcd.restart().await?;
    let resp = etcd.client().await?.get("/k", None).await?;
    assert_eq!(resp.kvs().first().ok_or("key lost")?.value_str()?, "v1");
    Ok(())
}

/// A SIGKILLed source comes back on the same port with its data and binlog.
#[tokio::test]
async fn source_survives_kill_and_restart() -> TestResult {
    let mut source = MariaDb::source().await?;
    let port = source.port();
    source
        .exec(
            "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1)",
        )
        .await?;
    source.kill();
    assert!(!source.is_running());
    source.start().await?;
    assert_eq!(source.port(), port);
    source.exec("INSERT INTO d.t VALUES (2)").await?;
    let ids: Vec<i32> = source.query("SELECT id FROM d.t ORDER BY id").await?;
    assert_eq!(ids, vec![1, 2]);
    let logs: Vec<mysql_async::Row> = source.query("SHOW BINARY LOGS").await?;
    assert_eq!(logs.len(), 2, "a restart opens a new binlog file");
    Ok(())
}

/// Several servers at once get distinct ports, ids and data.
#[tokio::test]
async fn concurrent_servers_are_isolated() -> TestResult {
    let (a, b, c) = tokio::try_join!(MariaDb::source(), MariaDb::source(), MariaDb::target())?;
    let ports = [a.port(), b.port(), c.port()];
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    assert_ne!(a.server_id(), b.server_id());
    a.exec("CREATE DATABASE only_on_a").await?;
    let dbs: Vec<String> = b.query("SHOW DATABASES LIKE 'only_on_a'").await?;
    assert!(dbs.is_empty(), "servers share state");
    Ok(())
}

/// Two test *processes* running the same servers-starting test at the same
/// time both pass: no port, data-dir or template clash between binaries.
#[test]
fn two_test_processes_in_parallel_do_not_interfere() -> TestResult {
    if std::env::var_os("SLUICE_KIT_CHILD").is_some() {
        return Ok(()); // never recurse
    }
    let exe = std::env::current_exe()?;
    let spawn = || {
        Command::new(&exe)
            .args([
                "kit::source_binlog_and_target_copy",
                "kit::etcd_put_get",
                "--test-threads=2",
            ])
            .env("SLUICE_KIT_CHILD", "1")
            .output()
    };
    let start = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join(), b.join())
    });
    let (a, b) = (
        a.map_err(|_| "thread panicked")??,
        b.map_err(|_| "thread panicked")??,
    );
    for out in [&a, &b] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("2 passed"),
            "child test process failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(start.elapsed() < Duration::from_secs(300));
    Ok(())
}

/// `sluice check` reports each server and flags a source that is not fit.
#[tokio::test]
async fn sluice_check_reports_servers() -> TestResult {
    let (source, target, etcd) = tokio::try_join!(MariaDb::source(), MariaDb::target(), async {
        Etcd::start().await
    })?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "check",
            "--source",
            &source.repl_url(),
            "--target",
            &target.url(),
        ])
        .args(["--etcd", &etcd.endpoint()])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("binlog ROW/FULL/FULL"), "{stdout}");
    assert!(stdout.contains("mysql-bin.000001:"), "{stdout}");
    assert!(stdout.contains("etcd 3."), "{stdout}");
    assert!(
        !stdout.contains(sluice_testkit::REPL_PASSWORD),
        "password leaked: {stdout}"
    );

    // A target is not a source: binlog off is a failure, exit 1.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--json", "--source", &target.url()])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report[0]["ok"], false);
    assert!(report[0]["problems"][0]
        .as_str()
        .unwrap_or("")
        .contains("log_bin is OFF"));

    // An unreachable server is reported, not a crash.
    drop(etcd);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--target", "mysql://root@127.0.0.1:1"])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreachable"));
    Ok(())
}
