//! A real `mariadbd` for tests: a binlog source or a target.
//!
//! Sources run as a production source must for sluice: `log_bin`, ROW format,
//! FULL row image, FULL row metadata, GTID strict mode, CRC32 checksums, utf8mb4,
//! and a replication user [`REPL_USER`] with REPLICATION SLAVE/CLIENT (+SELECT,
//! which schema lookups need, and REPLICATION MASTER ADMIN, which MariaDB
//! requires for `SHOW SLAVE HOSTS`, the server_id-in-use check). Targets run with the binlog off unless asked.
//! Both use UTC as the session time zone so TIMESTAMP values compare exactly.
//!
//! Durability is relaxed only where it cannot change what a test observes:
//! `innodb_flush_log_at_trx_commit=2` still writes the redo log on commit, so
//! SIGKILL of `mariadbd` loses nothing (only an OS crash could).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::process::{await_ready, find_binary, log_tail, ServerProcess};
use crate::{io_err, ports, KitError, Result};

/// Replication account created on every server (sources need it; targets
/// have it so a target can itself be promoted to a source in failover tests).
pub const REPL_USER: &str = "repl";
pub const REPL_PASSWORD: &str = "repl_pw";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 6;

/// What a server is for; decides its binlog settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Binlog on: ROW / FULL image / FULL metadata / GTID strict mode.
    Source,
    /// Binlog off unless [`MariaDbBuilder::binlog`] asks for it.
    Target,
}

/// Options for a [`MariaDb`] before it starts.
#[derive(Debug, Clone)]
pub struct MariaDbBuilder {
    role: Role,
    binlog: bool,
    server_id: Option<u32>,
    extra_args: Vec<String>,
}

impl MariaDbBuilder {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            binlog: role == Role::Source,
            server_id: None,
            extra_args: Vec::new(),
        }
    }

    /// Turn the binlog (with the source's settings) on or off.
    pub fn binlog(mut self, on: bool) -> Self {
        self.binlog = on;
        self
    }

    /// The server's `server_id` (default: its port, unique on this machine).
    pub fn server_id(mut self, id: u32) -> Self {
        self.server_id = Some(id);
        self
    }

    /// An extra `mariadbd` option, e.g. `--binlog-format=STATEMENT`; later
    /// options override the kit's defaults.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub async fn start(self) -> Result<MariaDb> {
        let mariadbd = find_binary("mariadbd", "mariadb-server")?;
        let template = tokio::task::spawn_blocking(template_datadir)
            .await
            .map_err(|e| KitError::Command {
                what: "bootstrapping the MariaDB template".into(),
                message: e.to_string(),
            })??;
        let dir = tempfile::Builder::new()
            .prefix("sluice-mariadb-")
            .tempdir()
            .map_err(io_err("creating a temp dir for mariadbd"))?;
        let datadir = dir.path().join("data");
        copy_dir(&template, &datadir)?;
        std::fs::write(dir.path().join("init.sql"), init_sql())
            .map_err(io_err("writing init.sql"))?;

        let mut server = MariaDb {
            mariadbd,
            dir,
            process: None,
            port: 0,
            server_id: 0,
            builder: self,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = ports::free_port();
            server.server_id = server.builder.server_id.unwrap_or(u32::from(server.port));
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) if is_port_clash(&e) => {
                    tracing::debug!(
                        port = server.port,
                        "port taken before mariadbd bound it; retrying"
                    );
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| KitError::Command {
            what: "mariadbd".into(),
            message: "no free port".into(),
        }))
    }
}

/// A running MariaDB server in its own temp dir; killed and removed on drop.
#[derive(Debug)]
pub struct MariaDb {
    mariadbd: PathBuf,
    // Field order matters: the process must die before its dir is removed.
    process: Option<ServerProcess>,
    dir: tempfile::TempDir,
    port: u16,
    server_id: u32,
    builder: MariaDbBuilder,
}

impl MariaDb {
    /// A binlog source with the default settings.
    pub async fn source() -> Result<Self> {
        MariaDbBuilder::new(Role::Source).start().await
    }

    /// A target with the binlog off.
    pub async fn target() -> Result<Self> {
        MariaDbBuilder::new(Role::Target).start().await
    }

    pub fn builder(role: Role) -> MariaDbBuilder {
        MariaDbBuilder::new(role)
    }

    pub fn role(&self) -> Role {
        self.builder.role
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// `mysql://root@127.0.0.1:PORT` — all privileges, no password.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// URL of the replication account.
    pub fn repl_url(&self) -> String {
        self.url_for(REPL_USER, REPL_PASSWORD)
    }

    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Path of a binlog file in the data dir (e.g. `mysql-bin.000001`).
    pub fn binlog_path(&self, file: &str) -> PathBuf {
        self.datadir().join(file)
    }

    /// A new root connection.
    pub async fn conn(&self) -> Result<mysql_async::Conn> {
        connect(&self.url()).await.map_err(|source| KitError::Sql {
            what: self.name(),
            source,
        })
    }

    /// Runs one or more `;`-separated statements as root.
    pub async fn exec(&self, sql: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let res = conn.query_drop(sql).await;
        let _ = conn.disconnect().await;
        res.map_err(|source| KitError::Sql {
            what: self.name(),
            source,
        })
    }

    /// Runs a query and returns its rows.
    pub async fn query<T: mysql_async::prelude::FromRow + Send + 'static>(
        &self,
        sql: &str,
    ) -> Result<Vec<T>> {
        let mut conn = self.conn().await?;
        let res = conn.query(sql).await;
        let _ = conn.disconnect().await;
        res.map_err(|source| KitError::Sql {
            what: self.name(),
            source,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    /// SIGKILL: a crash. [`start`](Self::start) brings it back on the same
    /// port and data dir (InnoDB recovers).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Clean shutdown (SIGTERM), waiting up to 30 s.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(30))).await;
        }
    }

    /// Start again after [`kill`](Self::kill) or [`stop`](Self::stop).
    pub async fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.launch().await
    }

    /// SIGSTOP: alive but unresponsive.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    fn name(&self) -> String {
        let role = match self.builder.role {
            Role::Source => "source",
            Role::Target => "target",
        };
        format!("mariadbd ({role}) on 127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", self.datadir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            // A private tmpdir: a starting mariadbd deletes every `#sql*`
            // file in its tmpdir, so servers sharing the system one delete
            // each other's internal temporary tables.
            .arg(format!("--tmpdir={}", self.tmpdir().display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", self.error_log().display()))
            .arg(format!("--init-file={}", dir.join("init.sql").display()))
            .arg(format!("--server-id={}", self.server_id))
            .args(COMMON_ARGS);
        if self.builder.binlog {
            cmd.args(BINLOG_ARGS);
        }
        cmd.args(&self.builder.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// This server's own tmpdir (see [`Self::command`]).
    fn tmpdir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    async fn launch(&mut self) -> Result<()> {
        std::fs::create_dir_all(self.tmpdir()).map_err(io_err("creating mariadbd's tmpdir"))?;
        let process = ServerProcess::spawn(self.name(), self.command(), self.error_log())?;
        self.process = Some(process);
        let url = self.url();
        await_ready(&mut self.process, STARTUP_TIMEOUT, || async {
            let Ok(Ok(mut conn)) =
                tokio::time::timeout(Duration::from_secs(2), connect(&url)).await
            else {
                return false;
            };
            let ok = conn.query_drop("SELECT 1").await.is_ok();
            let _ = conn.disconnect().await;
            ok
        })
        .await
    }
}

async fn connect(url: &str) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::Opts::from_url(url)?;
    mysql_async::Conn::new(opts).await
}

fn is_port_clash(err: &KitError) -> bool {
    match err {
        KitError::Exited { tail, .. } => {
            tail.contains("Address already in use") || tail.contains("already have another")
        }
        _ => false,
    }
}

/// Options for every test server.
const COMMON_ARGS: &[&str] = &[
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--skip-name-resolve",
    "--default-time-zone=+00:00",
    "--innodb-buffer-pool-size=128M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=2",
    "--max-connections=500",
    "--max-allowed-packet=256M",
];

/// What sluice requires of a source.
const BINLOG_ARGS: &[&str] = &[
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--binlog-checksum=CRC32",
    "--gtid-strict-mode=1",
    "--log-slave-updates=1",
];

/// Runs at every start; `sql_log_bin=0` keeps the accounts out of the binlog
/// so a test sees only the events it caused.
fn init_sql() -> String {
    format!(
        "SET SESSION sql_log_bin = 0;\n\
         CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n\
         CREATE USER IF NOT EXISTS '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN, SELECT ON *.* TO '{REPL_USER}'@'127.0.0.1';\n"
    )
}

/// A bootstrapped, never-started data dir shared by every instance of this
/// server version, built once with `mariadb-install-db` and then copied.
fn template_datadir() -> Result<PathBuf> {
    static BUILD: Mutex<()> = Mutex::new(());
    static VERSION: OnceLock<String> = OnceLock::new();
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());

    let mariadbd = find_binary("mariadbd", "mariadb-server")?;
    let install_db = find_binary("mariadb-install-db", "mariadb-server")?;
    let version = match VERSION.get() {
        Some(v) => v.clone(),
        None => {
            let out = Command::new(&mariadbd)
                .arg("--version")
                .output()
                .map_err(io_err("running mariadbd --version"))?;
            let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
            VERSION.get_or_init(|| v).clone()
        }
    };
    let key = fnv1a(version.as_bytes());
    let cache = std::env::temp_dir().join("sluice-testkit");
    let ready = cache.join(format!("mariadb-template-{key:016x}"));
    if ready.join("mysql").is_dir() {
        return Ok(ready);
    }
    std::fs::create_dir_all(&cache).map_err(io_err("creating the testkit cache dir"))?;
    let staging = tempfile::Builder::new()
        .prefix(".template-")
        .tempdir_in(&cache)
        .map_err(io_err("creating a staging dir"))?;
    let data = staging.path().join("data");
    let log = staging.path().join("install.log");
    let log_file = std::fs::File::create(&log).map_err(io_err("creating install.log"))?;
    let status = Command::new(&install_db)
        .arg("--no-defaults")
        .arg("--user=root")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--innodb-log-file-size=8M")
        // Passed on to the bootstrapping mariadbd (see `MariaDb::tmpdir`).
        .arg(format!("--tmpdir={}", staging.path().display()))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(io_err("cloning log handle"))?)
        .stderr(log_file)
        .status()
        .map_err(io_err("running mariadb-install-db"))?;
    if !status.success() {
        return Err(KitError::Command {
            what: "mariadb-install-db".into(),
            message: format!("{status}; log:\n{}", log_tail(&log, 30)),
        });
    }
    // Publish atomically: another test binary may be racing us; whoever
    // renames first wins and the other uses its result.
    match std::fs::rename(&data, &ready) {
        Ok(()) => Ok(ready),
        Err(_) if ready.join("mysql").is_dir() => Ok(ready),
        Err(e) => Err(io_err("publishing the MariaDB template")(e)),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io_err(format!("creating {}", to.display())))?;
    let entries = std::fs::read_dir(from).map_err(io_err(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("reading {}", from.display())))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry
            .file_type()
            .map_err(io_err(format!("stat {}", src.display())))?;
        if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io_err(format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}

/// FNV-1a: a stable cache key for the server version string.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
