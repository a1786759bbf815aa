//! One-shot `sluice` commands (`positions`, `status`, ...) and their output.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

/// Runs `sluice ARGS --config CONFIG` to completion (within 60 s).
pub async fn run_sluice(args: &[&str], config: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).arg("--config").arg(config);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("sluice answered within 60 s")
        .expect("run sluice")
}

/// Exit code, stdout and stderr, for failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stdout as JSON; the command must have succeeded.
pub fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", output_text(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", output_text(out)))
}

/// The value of the table row `key` (`key  value`).
pub fn table_row<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no `{key}` row in:\n{stdout}"))
}
