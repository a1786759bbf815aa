//! The quick start as a user runs it: `deploy/local/quickstart.sh` starts
//! the servers (`servers.sh`) and an HA pair of nodes in the foreground, and
//! Ctrl-C — SIGINT to the terminal's foreground process group — stops the
//! nodes gracefully, leaving the servers up.
//!
//! Each test gets private ports and a private `SLUICE_STATE` (the scripts'
//! own variables), and the binary cargo built for the tests (`SLUICE_BIN`,
//! instead of the script's release build). A [`Local`] stops its servers
//! when dropped.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use sluice_testkit::free_port;

pub fn repo() -> PathBuf {
    sluice_testkit::repo_root()
}

/// The quick start's servers on private ports, under a private state dir.
pub struct Local {
    pub state: tempfile::TempDir,
    pub source_port: u16,
    pub target_port: u16,
    pub etcd_port: u16,
    pub etcd_peer_port: u16,
    pub admin_a: u16,
    pub admin_b: u16,
}

impl Local {
    /// Private ports and state; checks first that `prereqs.sh` would not
    /// install anything (a missing package fails the test, naming it).
    pub fn new() -> Local {
        let check = Command::new(repo().join("deploy/local/prereqs.sh"))
            .arg("--check")
            .output()
            .expect("run prereqs.sh --check");
        assert!(
            check.status.success(),
            "the quick start's prerequisites are missing:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        Local {
            state: tempfile::tempdir().expect("state dir"),
            source_port: free_port(),
            target_port: free_port(),
            etcd_port: free_port(),
            etcd_peer_port: free_port(),
            admin_a: free_port(),
            admin_b: free_port(),
        }
    }

    /// The scripts' environment for these servers and nodes.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_STATE", self.state.path().display().to_string()),
            ("SLUICE_SOURCE_PORT", self.source_port.to_string()),
            ("SLUICE_TARGET_PORT", self.target_port.to_string()),
            ("SLUICE_ETCD_PORT", self.etcd_port.to_string()),
            ("SLUICE_ETCD_PEER_PORT", self.etcd_peer_port.to_string()),
            ("SLUICE_NODE_A_ADMIN_PORT", self.admin_a.to_string()),
            ("SLUICE_NODE_B_ADMIN_PORT", self.admin_b.to_string()),
            ("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice").to_string()),
        ]
    }

    /// `program` run from the repository root with [`Local::env`] (and
    /// nothing of the caller's `SRC_PASSWORD`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(repo())
            .env_remove("SRC_PASSWORD")
            .env_remove("SLUICE_LOG")
            .envs(self.env());
        cmd
    }

    /// `deploy/local/servers.sh ARG`, which must succeed.
    pub fn servers(&self, arg: &str) -> String {
        let out = self
            .command(repo().join("deploy/local/servers.sh"))
            .arg(arg)
            .output()
            .expect("run servers.sh");
        let text = output_text(&out);
        assert!(out.status.success(), "servers.sh {arg}:\n{text}");
        text
    }

    /// `deploy/local/quickstart.sh` in a process group of its own — as a
    /// shell runs a foreground job — with its output in `log`.
    pub fn spawn_quickstart(&self, log: &Path) -> Child {
        use std::os::unix::process::CommandExt as _;
        let file = std::fs::File::create(log).expect("log file");
        self.command(repo().join("deploy/local/quickstart.sh"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("run quickstart.sh")
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self
            .command(repo().join("deploy/local/servers.sh"))
            .arg("stop")
            .output();
    }
}

pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// Polls `log` until a line contains `needle`; fails (with the log) when
/// `child` exits first or after `timeout`.
pub fn wait_for_line(child: &mut Child, log: &Path, needle: &str, timeout: Duration) {
    sluice_testkit::wait_until(
        &format!("`{needle}`"),
        timeout,
        Duration::from_millis(100),
        || {
            if read(log).contains(needle) {
                return Some(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "quickstart.sh exited ({status}) before printing `{needle}`:\n{}",
                    read(log)
                );
            }
            None
        },
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", read(log)));
}

/// SIGINT to the process group of `child` (what Ctrl-C in a terminal
/// sends to its foreground job), then its exit status within `timeout`.
pub fn ctrl_c(child: &mut Child, timeout: Duration) -> ExitStatus {
    let pgid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a negative pid signals that process group only:
    // the one this test created for the script.
    let rc = unsafe { libc::kill(-pgid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill -INT -{pgid}");
    let exited = sluice_testkit::wait_until(
        "quickstart.sh to exit after Ctrl-C",
        timeout,
        Duration::from_millis(100),
        || child.try_wait().ok().flatten(),
    );
    exited.unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("{e}: quickstart.sh still running");
    })
}

/// Seconds since midnight of a log line's RFC 3339 timestamp
/// (`[node-a] 2026-01-02T10:21:33.562235Z  INFO ...`).
fn line_time(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .find(|w| w.ends_with('Z') && w.contains('T'))?;
    let clock = t.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Lines of a graceful run that must not be there: errors, sluice's own
/// fatal messages, and warnings once the stop began.
fn bad_lines(log: &str, stop_marker: &str) -> Vec<String> {
    let mut stopping = false;
    let mut bad = Vec::new();
    for line in log.lines() {
        stopping |= line.contains(stop_marker);
        let fatal =
            line.contains(" ERROR ") || line.contains("] sluice: ") || line.starts_with("sluice: ");
        if fatal || (stopping && line.contains(" WARN ")) {
            bad.push(line.to_string());
        }
    }
    bad
}

/// Issue 13, item 1: Ctrl-C stops both nodes gracefully (exit 0, no error
/// line), etcd and the two MariaDB servers keep running, and the next start
/// elects a leader at once (the resigned lease is not waited out).
#[test]
fn ctrl_c_stops_the_pair_gracefully_and_leaves_the_servers_running() {
    let local = Local::new();
    let dir = tempfile::tempdir().expect("tempdir");

    for (run, rows) in [(1, 20), (2, 40)] {
        let log = dir.path().join(format!("quickstart-{run}.log"));
        let mut child = local.spawn_quickstart(&log);
        wait_for_line(
            &mut child,
            &log,
            &format!("both hold {rows} rows"),
            Duration::from_secs(180),
        );
        let status = ctrl_c(&mut child, Duration::from_secs(60));
        let text = read(&log);
        println!("--- run {run} ---\n{text}");
        assert!(status.success(), "quickstart.sh exited {status}:\n{text}");
        assert!(
            text.contains("both nodes stopped (exit 0)"),
            "the nodes did not both exit 0:\n{text}"
        );
        for node in ["node-a", "node-b"] {
            assert!(
                text.contains(&format!("[{node}] "))
                    && text.lines().any(|l| l.starts_with(&format!("[{node}] "))
                        && l.contains("INFO sluice::run: stopped")),
                "{node} did not stop gracefully:\n{text}"
            );
        }
        assert!(text.contains("resigned leadership"), "{text}");
        let bad = bad_lines(&text, "shutdown requested");
        assert!(
            bad.is_empty(),
            "a graceful stop printed:\n{}",
            bad.join("\n")
        );

        // The servers are still up and serving.
        let status = local.servers("status");
        assert_eq!(
            status.matches(": running (pid").count(),
            3,
            "servers after Ctrl-C:\n{status}"
        );
        for port in [local.source_port, local.target_port, local.etcd_port] {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "nothing listens on {port} after Ctrl-C"
            );
        }

        // After a resign the next term starts at once: no lease to wait out.
        if run == 2 {
            assert!(
                !text.contains("previous lease"),
                "waited for the resigned lease:\n{text}"
            );
            let time_of = |needle: &str| {
                text.lines()
                    .find(|l| l.contains(needle))
                    .and_then(line_time)
                    .unwrap_or_else(|| panic!("no timed `{needle}` line:\n{text}"))
            };
            let registered = time_of("registered as standby");
            let elected = time_of("elected leader");
            assert!(
                elected - registered < 1.0,
                "leader elected {:.2}s after registering (more than the standby delay):\n{text}",
                elected - registered
            );
        }
    }
    local.servers("stop");
}
