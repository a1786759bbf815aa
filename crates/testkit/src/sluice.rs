//! A `sluice` child process for tests and benchmarks: one implementation for
//! the e2e tests (`tests/e2e/support`) and `sluice-bench`.
//!
//! The process is spawned through the kit's guarded spawner, so it dies with
//! the test or benchmark even when that is SIGKILLed, and is killed on drop.
//! Its stdout and stderr are appended to one log file, which survives
//! restarts (a restarted node's log holds every run). The binary is the
//! caller's: `env!("CARGO_BIN_EXE_sluice")` in the e2e tests, the file next
//! to the bench executable for `sluice-bench`.
//!
//! Waiting for an exit polls the process with a deadline, never a fixed
//! sleep; an exit status is kept once seen, so asking twice is harmless.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{log_tail, ServerProcess};
use crate::{io_err, KitError, Result};

/// How often an exit is polled for.
const POLL: Duration = Duration::from_millis(20);

/// What to run: the binary, its arguments and environment, and the log.
#[derive(Debug, Clone)]
pub struct SluiceCommand {
    bin: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    log: PathBuf,
    label: String,
}

impl SluiceCommand {
    /// `<bin> <args...>`, output appended to `log`.
    pub fn new(bin: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        SluiceCommand {
            bin: bin.into(),
            args: Vec::new(),
            envs: Vec::new(),
            log: log.into(),
            label: "sluice".into(),
        }
    }

    /// `<bin> run --config <config>`, output appended to `log`.
    pub fn run(bin: impl Into<PathBuf>, config: &Path, log: impl Into<PathBuf>) -> Self {
        Self::new(bin, log).arg("run").arg("--config").arg(config)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable of the child; later values of the same name
    /// win.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// How errors name the process (`sluice (node-a)`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the process.
    pub fn spawn(self) -> Result<SluiceProcess> {
        let mut process = SluiceProcess {
            command: self,
            process: None,
            exited: None,
            runs: 0,
        };
        process.start()?;
        Ok(process)
    }
}

/// A running (or exited) `sluice` process. Killed on drop.
#[derive(Debug)]
pub struct SluiceProcess {
    command: SluiceCommand,
    process: Option<ServerProcess>,
    /// The last run's exit status, once seen.
    exited: Option<ExitStatus>,
    runs: u32,
}

impl SluiceProcess {
    fn start(&mut self) -> Result<()> {
        let c = &self.command;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log)
            .map_err(io_err(format!("opening {}", c.log.display())))?;
        let err = out
            .try_clone()
            .map_err(io_err(format!("opening {}", c.log.display())))?;
        let mut cmd = Command::new(&c.bin);
        cmd.args(&c.args)
            .envs(c.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let name = format!("{} ({})", c.label, c.log.display());
        self.process = Some(ServerProcess::spawn(name, cmd, c.log.clone())?);
        self.exited = None;
        self.runs += 1;
        Ok(())
    }

    /// Starts the process again after it exited or was killed; fails if it
    /// still runs.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(KitError::Command {
                what: self.command.label.clone(),
                message: "restart while the process still runs".into(),
            });
        }
        self.start()
    }

    /// How many times the process was started (1 after the first spawn).
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// The pid of the current run, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    pub fn log_path(&self) -> &Path {
        &self.command.log
    }

    /// The whole log (every run), empty if unreadable.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.command.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.command.log, lines)
    }

    /// The exit status if the current run has exited (and reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.process.as_mut().and_then(ServerProcess::try_exited);
            if self.exited.is_some() {
                self.process = None;
            }
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_some() && self.try_exited().is_none()
    }

    /// SIGKILL and reap: an abrupt crash.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGSTOP: alive but silent (a "fake death").
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself. On timeout
    /// it keeps running and the error names the log.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exited() {
                return Ok(status);
            }
            if self.process.is_none() {
                return Err(KitError::Command {
                    what: self.command.label.clone(),
                    message: "not running (killed, or never started)".into(),
                });
            }
            if started.elapsed() >= timeout {
                return Err(KitError::Timeout {
                    what: format!(
                        "{} to exit (log: {})",
                        self.command.label,
                        self.command.log.display()
                    ),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM, then [`wait`](Self::wait) up to `timeout` for the graceful
    /// exit; SIGKILL if it does not come (the error says so).
    pub async fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(p) = &self.process {
            // A paused process would never see the SIGTERM.
            p.resume();
            p.sigterm();
        }
        let result = self.wait(timeout).await;
        if result.is_err() {
            self.kill();
        }
        result
    }

    /// An error for a process that exited while it was expected to run,
    /// with the end of its log.
    pub fn exited_error(&self, status: ExitStatus) -> KitError {
        KitError::Exited {
            what: self.command.label.clone(),
            status: status.to_string(),
            log: self.command.log.clone(),
            tail: log_tail(&self.command.log, 30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spawner's contract on a stand-in binary (`sh`): output goes to
    /// the log across restarts, exit statuses are kept, a SIGTERM ends it,
    /// a process that ignores SIGTERM is killed after the deadline.
    /// Waits until the log holds `n` lines `run one`.
    async fn runs_logged(p: &SluiceProcess, n: usize) {
        crate::wait_until_async(
            "the child's output",
            Duration::from_secs(10),
            POLL,
            || async { (p.log_text().matches("run one").count() == n).then_some(()) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", p.log_text()));
    }

    /// The spawner's contract on a stand-in binary (`sh`): output goes to
    /// the log across restarts, exit statuses are kept, a SIGTERM ends it,
    /// a process that ignores SIGTERM is killed after the deadline.
    #[tokio::test]
    async fn runs_restarts_and_stops_a_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("child.log");
        let mut p = SluiceCommand::new("sh", &log)
            .args(["-c", "echo run $X; exec sleep 30"])
            .env("X", "one")
            .label("sh")
            .spawn()
            .expect("spawn");
        assert!(p.is_running());
        runs_logged(&p, 1).await;
        let status = p.terminate(Duration::from_secs(10)).await.expect("exits");
        assert!(!status.success(), "killed by SIGTERM: {status}");
        assert_eq!(p.try_exited(), Some(status), "the status is kept");
        p.restart().expect("restart");
        assert_eq!(p.runs(), 2);
        runs_logged(&p, 2).await;
        let err = p
            .wait(Duration::from_millis(100))
            .await
            .expect_err("still sleeping");
        assert!(err.to_string().contains("sh to exit"), "{err}");
        p.kill();
        assert!(!p.is_running());

        let mut stubborn = SluiceCommand::new("sh", dir.path().join("stubborn.log"))
            .args([
                "-c",
                "trap '' TERM; echo trapped; while :; do sleep 1; done",
            ])
            .spawn()
            .expect("spawn");
        crate::wait_until_async(
            "the trap to be set",
            Duration::from_secs(10),
            POLL,
            || async { stubborn.log_text().contains("trapped").then_some(()) },
        )
        .await
        .expect("trap set");
        let err = stubborn
            .terminate(Duration::from_millis(300))
            .await
            .expect_err("ignores SIGTERM");
        assert!(matches!(err, KitError::Timeout { .. }), "{err}");
        assert!(!stubborn.is_running(), "killed after the deadline");
    }
}
