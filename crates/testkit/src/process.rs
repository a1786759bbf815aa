//! Child processes that cannot outlive the test that started them.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process. Test threads and tokio's blocking threads come and go, so every
//! child is forked from one spawner thread that lives as long as the process:
//! the servers die with the test binary, even on SIGKILL, and never before.

use std::io::{self, BufRead, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{KitError, Result};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no
                    // memory of the parent; it is the only call made between
                    // fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the testkit spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that the child is SIGKILLed when this process dies.
pub fn spawn_guarded(cmd: Command) -> io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}

/// Finds `binary` on PATH or in the sbin directories Debian installs servers
/// to (not on a non-root PATH).
pub fn find_binary(binary: &'static str, package: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"]
            .into_iter()
            .map(PathBuf::from),
    );
    for dir in dirs {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(KitError::MissingBinary { binary, package })
}

/// A running server process with its log file. Killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    pub fn spawn(name: impl Into<String>, cmd: Command, log: PathBuf) -> Result<Self> {
        let name = name.into();
        let child = spawn_guarded(cmd).map_err(crate::io_err(format!("spawning {name}")))?;
        Ok(Self {
            name,
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Returns the exit status if the process has exited (and reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exited().is_none()
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own child's pid, which is not yet
            // reaped (we hold the Child), so the pid cannot have been reused.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM without waiting: the caller polls [`try_exited`](Self::try_exited)
    /// (e.g. from async code, where [`terminate`](Self::terminate) would block).
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL and reap: an abrupt crash, as in production.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `grace` for a clean exit before SIGKILL.
    /// Returns true if the process exited by itself.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.try_exited().is_some() || self.child.is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// SIGSTOP: the process is frozen (a "fake death": alive but silent).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// An error for a server that exited while we waited for it.
    pub fn exited_error(&self, status: ExitStatus) -> KitError {
        KitError::Exited {
            what: self.name.clone(),
            status: status.to_string(),
            log: self.log.clone(),
            tail: log_tail(&self.log, 30),
        }
    }

    pub fn not_ready_error(&self, waited: Duration) -> KitError {
        KitError::NotReady {
            what: self.name.clone(),
            waited,
            log: self.log.clone(),
            tail: log_tail(&self.log, 30),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused process must be continued or it would never die.
            self.resume();
        }
        self.kill();
    }
}

/// Polls `ready` until it holds. Fails with the server's log tail if the
/// process exits first, or kills it and fails once `timeout` has passed.
pub async fn await_ready<F, Fut>(
    slot: &mut Option<ServerProcess>,
    timeout: Duration,
    mut ready: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        let process = slot.as_mut().ok_or_else(|| KitError::Command {
            what: "server".into(),
            message: "process vanished".into(),
        })?;
        if let Some(status) = process.try_exited() {
            let err = process.exited_error(status);
            *slot = None;
            return Err(err);
        }
        if ready().await {
            tracing::debug!(elapsed = ?start.elapsed(), "server ready");
            return Ok(());
        }
        if start.elapsed() > timeout {
            let err = process.not_ready_error(start.elapsed());
            process.kill();
            *slot = None;
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The last `n` lines of a log file (best effort: diagnostics only).
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    // Only the end matters; servers can log megabytes.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let lines: Vec<String> = io::BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_package() {
        let err = find_binary("definitely-not-a-binary-xyz", "some-package")
            .expect_err("binary does not exist");
        let msg = err.to_string();
        assert!(msg.contains("apt-get install some-package"), "{msg}");
    }

    #[test]
    fn guarded_child_can_be_killed_and_reaped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut p = ServerProcess::spawn("sleep", cmd, dir.path().join("log")).expect("spawn");
        assert!(p.is_running());
        p.pause();
        p.resume();
        assert!(p.terminate(Duration::from_secs(5)));
        assert!(!p.is_running());
    }
}
