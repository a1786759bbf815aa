//! `sluice run` end to end: the real binary between a real source and a real
//! target, with positions in etcd or a local directory.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{Etcd, MariaDb};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

static NEXT_SERVER_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(7001);

pub fn server_id() -> u32 {
    NEXT_SERVER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A `sluice run` child process, its output appended to a log file.
pub struct Sluice {
    child: Option<tokio::process::Child>,
    config: PathBuf,
    log: PathBuf,
    pub runs: u32,
}

impl Sluice {
    pub fn start(config: &Path) -> Self {
        let log = config.with_extension("log");
        let mut s = Sluice {
            child: None,
            config: config.to_path_buf(),
            log,
            runs: 0,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the sluice log");
        let err = out.try_clone().expect("clone the log handle");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--progress-every", "2", "--node-id", "e2e"])
            .env("SLUICE_LOG", "info,sluice_pipeline=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sluice");
        self.child = Some(child);
        self.runs += 1;
    }

    /// Starts the process again after it exited or was killed.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "sluice is still running");
        self.spawn();
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .map_or(0, |p| p as i32)
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM; waits for the exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        self.wait(timeout).await
    }

    /// Waits for the process to exit by itself.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("sluice is running");
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.expect("wait for sluice"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "sluice did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Where positions live in a test.
pub enum Coord<'a> {
    Etcd(&'a Etcd),
    Local(&'a Path),
}

/// Writes a pipeline file into `dir` and returns its path.
pub fn write_config(
    dir: &Path,
    name: &str,
    source: &MariaDb,
    target: &MariaDb,
    coord: Coord<'_>,
    start: &str,
    extra: &str,
) -> PathBuf {
    let coordination = match coord {
        Coord::Etcd(etcd) => format!(
            "coordination:\n  etcd: {{ endpoints: [\"{}\"], prefix: /e2e }}\n",
            etcd.endpoint()
        ),
        Coord::Local(path) => format!(
            "coordination:\n  local: {{ dir: \"{}\" }}\n",
            path.display()
        ),
    };
    let text = format!(
        "name: {name}\n\
         source: {{ url: \"{src}\", server_id: {sid}, start: {start} }}\n\
         target: {{ url: \"{tgt}\" }}\n\
         {coordination}{extra}\n",
        src = source.repl_url(),
        sid = server_id(),
        tgt = target.url(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).expect("write the pipeline file");
    path
}

/// `{file: <first binlog>, pos: 4}`: everything the test writes.
pub async fn start_of_binlog(source: &MariaDb) -> String {
    let rows: Vec<(String, u64)> = source
        .query("SHOW BINARY LOGS")
        .await
        .expect("SHOW BINARY LOGS");
    format!("{{ file: {}, pos: 4 }}", rows[0].0)
}

/// Every row of `sql` as text (NULL as `None`).
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

/// Polls until `sql` returns the same rows on both servers.
pub async fn wait_same(
    source: &MariaDb,
    target: &MariaDb,
    source_sql: &str,
    target_sql: &str,
    timeout: Duration,
    sluice: &Sluice,
) {
    let started = Instant::now();
    loop {
        let a = rows(source, source_sql).await;
        let b = rows(target, target_sql).await;
        if a == b {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "target never matched the source within {timeout:?}\nsource: {:?}\ntarget: {:?}\nsluice log:\n{}",
            &a[..a.len().min(10)],
            &b[..b.len().min(10)],
            sluice.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The basic loop: inserts, updates (incl. a key change), deletes, DDL,
/// a graceful stop that flushes the position, and a resume that neither
/// loses nor repeats anything.
#[tokio::test]
async fn replicates_resumes_and_stops_gracefully() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    source
        .exec(
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2));
             INSERT INTO shop.items VALUES (1, 'ünïcødé 🦀', 9.99), (2, 'plain', 100.00), (3, NULL, 0.01);",
        )
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "basic",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    let mut sluice = Sluice::start(&config);
    let all = "SELECT id, name, price FROM shop.items ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &sluice).await;

    source
        .exec(
            "UPDATE shop.items SET price = 10.49 WHERE id = 1;
             UPDATE shop.items SET id = 20 WHERE id = 2;
             DELETE FROM shop.items WHERE id = 3;
             ALTER TABLE shop.items ADD COLUMN stock INT NOT NULL DEFAULT 7;
             INSERT INTO shop.items (id, name, price, stock) VALUES (4, 'new', 1.00, 3);",
        )
        .await?;
    let all = "SELECT id, name, price, stock FROM shop.items ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &sluice).await;

    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}\n{}", sluice.log_tail());
    assert!(
        sluice.log_text().contains("stopped"),
        "{}",
        sluice.log_tail()
    );

    // Changes while it is down arrive after the restart, exactly once.
    source
        .exec(
            "INSERT INTO shop.items (id, name, price) VALUES (5, 'while down', 2.00);
             UPDATE shop.items SET stock = stock + 1;",
        )
        .await?;
    sluice.restart();
    wait_same(&source, &target, all, all, Duration::from_secs(30), &sluice).await;
    let checkpoint = rows(
        &target,
        "SELECT batch_id, position, applying_batch_id FROM sluice_meta.checkpoint WHERE pipeline = 'basic'",
    )
    .await;
    assert_eq!(checkpoint.len(), 1, "{checkpoint:?}");
    let stored =
        std::fs::read_to_string(state.join("basic").join("position.json")).unwrap_or_default();
    assert!(stored.contains("batch_id"), "stored position: {stored}");
    let started = Instant::now();
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}\n{}", sluice.log_tail());
    assert!(started.elapsed() < Duration::from_secs(15));
    Ok(())
}
