//! `sluice run` as a child of a test: the kit's spawner
//! ([`sluice_testkit::SluiceProcess`]) with the e2e defaults — the binary
//! cargo built for this test, `--progress-every 2`, `SLUICE_LOG=info,
//! sluice_pipeline=debug`, a log file beside the pipeline file — and the
//! assertions a test wants (a node that does not stop in time fails the
//! test with its log).

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sluice_testkit::{Etcd, MariaDb, SluiceCommand, SluiceProcess};

static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(7001);

/// A replica `server_id` no other test of this process uses.
pub fn server_id() -> u32 {
    NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed)
}

/// How to start a node: its id, replica server_id, environment and logging.
#[derive(Debug, Clone)]
pub struct Launch {
    node_id: String,
    server_id: Option<u32>,
    env: Vec<(String, String)>,
    log_filter: String,
    progress_every: Option<u32>,
}

impl Launch {
    /// Node `node_id` with the e2e defaults.
    pub fn node(node_id: &str) -> Self {
        Launch {
            node_id: node_id.to_string(),
            server_id: None,
            env: Vec::new(),
            log_filter: "info,sluice_pipeline=debug".into(),
            progress_every: Some(2),
        }
    }

    /// `--server-id`; the node then logs to `<node_id>.log` beside the
    /// pipeline file (else to the pipeline file's name with `.log`).
    pub fn server_id(mut self, id: u32) -> Self {
        self.server_id = Some(id);
        self
    }

    /// An environment variable (after `SLUICE_LOG`, so it may replace it).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// `SLUICE_LOG` (default `info,sluice_pipeline=debug`).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = filter.to_string();
        self
    }

    /// No `--progress-every`.
    pub fn without_progress(mut self) -> Self {
        self.progress_every = None;
        self
    }

    fn log_path(&self, config: &Path) -> PathBuf {
        match self.server_id {
            None => config.with_extension("log"),
            Some(_) => config.with_file_name(format!("{}.log", self.node_id)),
        }
    }

    fn command(&self, config: &Path) -> SluiceCommand {
        let mut cmd =
            SluiceCommand::run(env!("CARGO_BIN_EXE_sluice"), config, self.log_path(config))
                .label(format!("sluice ({})", self.node_id));
        if let Some(every) = self.progress_every {
            cmd = cmd.args(["--progress-every", &every.to_string()]);
        }
        cmd = cmd.args(["--node-id", &self.node_id]);
        if let Some(id) = self.server_id {
            cmd = cmd.args(["--server-id", &id.to_string()]);
        }
        cmd = cmd.env("SLUICE_LOG", &self.log_filter);
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }
}

/// A `sluice run` child process, its output appended to a log file.
pub struct Sluice {
    process: SluiceProcess,
    /// How many times the process was started.
    pub runs: u32,
}

impl Sluice {
    pub fn start(config: &Path) -> Self {
        Self::launch(config, Launch::node("e2e"))
    }

    /// One node of an HA group: its own node id, replica server_id and log.
    pub fn start_node(config: &Path, node_id: &str, server_id: Option<u32>) -> Self {
        Self::start_node_with_env(config, node_id, server_id, &[])
    }

    /// [`Self::start_node`] with extra environment variables.
    pub fn start_node_with_env(
        config: &Path,
        node_id: &str,
        server_id: Option<u32>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut launch = Launch::node(node_id);
        if let Some(id) = server_id {
            launch = launch.server_id(id);
        }
        for (k, v) in env {
            launch = launch.env(k, v);
        }
        Self::launch(config, launch)
    }

    /// Starts `sluice run --config <config>` as `launch` says.
    pub fn launch(config: &Path, launch: Launch) -> Self {
        let process = launch
            .command(config)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sluice: {e}"));
        Sluice { process, runs: 1 }
    }

    /// Starts the process again after it exited or was killed.
    pub fn restart(&mut self) {
        assert!(!self.process.is_running(), "sluice is still running");
        self.process
            .restart()
            .unwrap_or_else(|e| panic!("restart sluice: {e}"));
        self.runs = self.process.runs();
    }

    /// The pid of the running process (0 when there is none), for signals
    /// [`Self::pause`], [`Self::resume`] and [`Self::kill`] do not cover.
    #[allow(dead_code)] // kept for fault tests of other areas (was `pipeline::Sluice::pid`)
    pub fn pid(&self) -> i32 {
        self.process.pid().map_or(0, |p| p as i32)
    }

    /// SIGSTOP: the node is frozen (alive but silent).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.process.resume();
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM; waits for the exit (the test fails with the log if it does
    /// not come within `timeout`).
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        match self.process.terminate(timeout).await {
            Ok(status) => status,
            Err(e) => panic!("sluice did not stop: {e}; log:\n{}", self.log_text()),
        }
    }

    /// Waits for the process to exit by itself (the test fails with the log
    /// if it does not within `timeout`; the process is killed then).
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match self.process.wait(timeout).await {
            Ok(status) => status,
            Err(e) => {
                self.process.kill();
                panic!("sluice did not exit: {e}; log:\n{}", self.log_text());
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The last 40 lines of the log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail(40)
    }

    /// Polls the log (every 100 ms) until `find` gives a value; fails with
    /// `what` and the log's tail once `timeout` has passed.
    pub async fn wait_log<T>(
        &self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        sluice_testkit::wait_until_async(what, timeout, Duration::from_millis(100), || async {
            find(&self.log_text())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()))
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
