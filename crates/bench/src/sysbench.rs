//! Running `sysbench oltp_write_only` against a server.

use std::process::{Command, Stdio};

use anyhow::Context as _;
use sluice_testkit::{find_binary, MariaDb};

/// Tables, their size and the seed of one sysbench workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub tables: u32,
    pub table_size: u64,
    pub seed: u32,
}

impl Workload {
    fn command(&self, server: &MariaDb, threads: u32) -> anyhow::Result<Command> {
        let bin = find_binary("sysbench", "sysbench")?;
        let mut cmd = Command::new(bin);
        cmd.arg("oltp_write_only")
            .arg("--db-driver=mysql")
            .arg("--mysql-host=127.0.0.1")
            .arg(format!("--mysql-port={}", server.port()))
            .arg("--mysql-user=root")
            .arg("--mysql-db=sbtest")
            .arg(format!("--tables={}", self.tables))
            .arg(format!("--table-size={}", self.table_size))
            .arg(format!("--rand-seed={}", self.seed))
            .arg(format!("--threads={threads}"))
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// `schema.table` names of the workload's tables.
    pub fn tables(&self) -> Vec<String> {
        (1..=self.tables)
            .map(|i| format!("sbtest.sbtest{i}"))
            .collect()
    }

    /// `sysbench prepare`: creates and fills the tables (`sbtest` must exist).
    pub fn prepare(&self, server: &MariaDb) -> anyhow::Result<()> {
        let threads = self.tables.min(4);
        let out = self
            .command(server, threads)?
            .arg("prepare")
            .output()
            .context("running sysbench prepare")?;
        anyhow::ensure!(
            out.status.success(),
            "sysbench prepare failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// `sysbench run` with `extra` options (`--events=N`, `--time=S`,
    /// `--rate=R`); returns the transactions it committed and its rate.
    pub fn run(&self, server: &MariaDb, threads: u32, extra: &[String]) -> anyhow::Result<Ran> {
        let out = self
            .command(server, threads)?
            .args(extra)
            .arg("run")
            .output()
            .context("running sysbench run")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "sysbench run failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        parse_run(&stdout).with_context(|| format!("unexpected sysbench output:\n{stdout}"))
    }
}

/// What a `sysbench run` reported.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub transactions: u64,
    pub per_sec: f64,
}

/// Reads `transactions:   1234 (456.78 per sec.)`.
fn parse_run(stdout: &str) -> Option<Ran> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))?;
    let rest = line.trim_start().strip_prefix("transactions:")?.trim();
    let (count, rate) = rest.split_once('(')?;
    Some(Ran {
        transactions: count.trim().parse().ok()?,
        per_sec: rate.split_whitespace().next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_transaction_line() {
        let ran = parse_run(
            "SQL statistics:\n    transactions:                        100000 (2345.67 per sec.)\n",
        )
        .expect("parses");
        assert_eq!(ran.transactions, 100_000);
        assert!((ran.per_sec - 2345.67).abs() < 1e-9);
    }
}
