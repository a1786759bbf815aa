//! sluice as a real process: the release `sluice` binary running a
//! generated pipeline file with local (file) coordination.
//!
//! "Caught up" means the target's `sluice_meta.checkpoint` row for the
//! pipeline names a position at or past the source's end of binlog as read
//! after the workload: every change up to there is committed on the target
//! (the checkpoint is written after the batch's rows commit).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mysql_async::prelude::Queryable;
use sluice_testkit::{MariaDb, SluiceCommand, SluiceProcess};

use crate::servers::BinlogPos;

/// Where a pipeline starts when nothing is stored yet.
#[derive(Debug, Clone)]
pub enum Start {
    At(BinlogPos),
    /// The source's end of binlog at start-up (what `snapshot.mode:
    /// initial` needs).
    Latest,
}

/// What to replicate, and how.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub name: String,
    pub server_id: u32,
    pub start: Start,
    /// Anchored regex on `schema.table`.
    pub include: String,
    /// `load.workers`.
    pub workers: usize,
    /// Further top-level YAML sections, appended as given (e.g. `snapshot:`).
    pub extra: String,
}

impl PipelineSpec {
    pub fn new(name: &str, include: &str, start: Start) -> Self {
        PipelineSpec {
            name: name.to_string(),
            server_id: 9001,
            start,
            include: include.to_string(),
            workers: 4,
            extra: String::new(),
        }
    }

    fn yaml(&self, source: &MariaDb, target: &MariaDb, state: &Path) -> String {
        let start = match &self.start {
            Start::At(p) => format!("{{file: {}, pos: {}}}", p.file, p.pos),
            Start::Latest => "latest".to_string(),
        };
        format!(
            "name: {name}\n\
             source:\n  url: \"{src}\"\n  server_id: {sid}\n  start: {start}\n\
             target:\n  url: \"{tgt}\"\n\
             coordination:\n  local: {{dir: \"{state}\"}}\n\
             filter:\n  include: ['{include}']\n\
             load:\n  workers: {workers}\n{extra}",
            name = self.name,
            src = source.repl_url(),
            sid = self.server_id,
            tgt = target.url(),
            state = state.display(),
            include = self.include,
            workers = self.workers,
            extra = self.extra,
        )
    }
}

/// The `sluice` binary: `--sluice`, else next to this executable (both are
/// built into the same `target/<profile>/`).
pub fn locate(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("sluice"),
    };
    anyhow::ensure!(
        path.is_file(),
        "sluice binary not found at {} (build it with `cargo build --release -p sluice -p sluice-bench`, or pass --sluice PATH)",
        path.display()
    );
    Ok(path)
}

/// Where sluice's logs go instead of the scenario's temp dir (`--logs`).
static LOG_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Keep sluice's logs in `dir` (they are removed with the scenario's temp
/// dir otherwise).
pub fn keep_logs_in(dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let _ = LOG_DIR.set(dir);
    Ok(())
}

/// Starts `sluice run --config <config> <extra>` with the kit's spawner
/// (the one the e2e tests use), its output appended to `log` (`SLUICE_LOG`
/// passed through, default `info`).
pub fn run_process(
    bin: &Path,
    config: &Path,
    log: &Path,
    label: &str,
    extra: &[&str],
) -> anyhow::Result<SluiceProcess> {
    let level = std::env::var("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    Ok(SluiceCommand::run(bin, config, log)
        .args(extra)
        .env("SLUICE_LOG", level)
        .label(format!("sluice ({label})"))
        .spawn()?)
}

/// A running `sluice run`.
pub struct Sluice {
    process: SluiceProcess,
    name: String,
    log: PathBuf,
    started: Instant,
}

impl Sluice {
    /// Writes the pipeline file into `dir` (state under `dir/state`) and
    /// starts `sluice run` on it, logging to `dir/<name>.log`.
    pub fn spawn(
        bin: &Path,
        dir: &Path,
        spec: &PipelineSpec,
        source: &MariaDb,
        target: &MariaDb,
    ) -> anyhow::Result<Self> {
        let file = dir.join(format!("{}.yaml", spec.name));
        std::fs::write(&file, spec.yaml(source, target, &dir.join("state")))?;
        let log = LOG_DIR
            .get()
            .map_or(dir, PathBuf::as_path)
            .join(format!("{}.log", spec.name));
        let started = Instant::now();
        let process = run_process(bin, &file, &log, &spec.name, &["--progress-every", "5"])?;
        Ok(Sluice {
            process,
            name: spec.name.clone(),
            log,
            started,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Fails with the log tail if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.process.try_exited() {
            Some(status) => Err(anyhow::Error::new(self.process.exited_error(status))),
            None => Ok(()),
        }
    }

    /// Waits until the target's checkpoint is at or past `until`; returns
    /// when that was first seen. Fails with the log tail if sluice exits.
    pub async fn wait_caught_up(
        &mut self,
        target: &MariaDb,
        until: &BinlogPos,
        timeout: Duration,
        every: Duration,
    ) -> anyhow::Result<Instant> {
        let mut conn = target.conn().await?;
        let sql = format!(
            "SELECT position FROM sluice_meta.checkpoint WHERE pipeline = '{}'",
            self.name
        );
        let begin = Instant::now();
        let mut last_report = Instant::now();
        loop {
            if let Some(status) = self.process.try_exited() {
                return Err(anyhow::Error::new(self.process.exited_error(status)));
            }
            // The table appears once sluice has migrated the target.
            let at: Option<String> = conn.query_first(sql.as_str()).await.unwrap_or(None);
            let at = at.as_deref().and_then(BinlogPos::parse_position_text);
            if at.as_ref().is_some_and(|p| p >= until) {
                let _ = conn.disconnect().await;
                return Ok(Instant::now());
            }
            anyhow::ensure!(
                begin.elapsed() < timeout,
                "timed out after {:.0?} waiting for sluice ({}) to reach {until}; checkpoint at {}; log: {}",
                begin.elapsed(),
                self.name,
                at.map_or("-".to_string(), |p| p.to_string()),
                self.log.display()
            );
            if last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "  ... {:.0?}: checkpoint at {}",
                    begin.elapsed(),
                    at.map_or("-".to_string(), |p| p.to_string())
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The process's peak resident set (VmHWM), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let pid = self.pid().context("sluice is not running")?;
        peak_rss(pid)
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.pid().context("sluice is not running")?;
        cpu_time(pid)
    }

    /// SIGTERM and wait for the graceful exit (drain, position flush).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let stopped = self.process.terminate(Duration::from_secs(30)).await;
        anyhow::ensure!(
            stopped.is_ok(),
            "sluice did not exit within 30 s of SIGTERM (log: {})",
            self.log.display()
        );
        Ok(())
    }
}

/// VmHWM of a process, from /proc/<pid>/status, in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/<pid>/status")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("unreadable VmHWM")?;
    Ok(kb * 1024)
}

/// User + system CPU time of a process, from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name (which may hold spaces):
    // state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("unreadable CPU time in /proc/<pid>/stat")
    };
    let ticks = tick(11)? + tick(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

pub const MIB: f64 = 1024.0 * 1024.0;
