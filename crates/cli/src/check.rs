//! `sluice check`: is each server reachable and fit for its role?
//!
//! Reports one line per server (or a JSON document with `--json`) and exits 1
//! if any server is unreachable or a source is not configured for row-based
//! change capture. Passwords are masked in everything printed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use sluice_core::redact_url;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Source MySQL/MariaDB URL (`mysql://user:pass@host:port`).
    #[arg(long, env = "SLUICE_SOURCE_URL")]
    source: Option<String>,
    /// Target MySQL/MariaDB URL.
    #[arg(long, env = "SLUICE_TARGET_URL")]
    target: Option<String>,
    /// etcd endpoint (`http://host:port`).
    #[arg(long, env = "SLUICE_ETCD_ENDPOINT")]
    etcd: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    role: &'static str,
    url: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.source.is_none() && args.target.is_none() && args.etcd.is_none() {
        anyhow::bail!("nothing to check: give --source, --target and/or --etcd");
    }
    let mut reports = Vec::new();
    if let Some(url) = &args.source {
        reports.push(report("source", url, check_source(url).await));
    }
    if let Some(url) = &args.target {
        reports.push(report("target", url, check_target(url).await));
    }
    if let Some(url) = &args.etcd {
        reports.push(report("etcd", url, check_etcd(url).await));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            let state = if r.ok { "ok" } else { "FAIL" };
            println!("{:<7} {:<40} {:<5} {}", r.role, r.url, state, r.detail);
            for p in &r.problems {
                println!("        - {p}");
            }
        }
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(role: &'static str, url: &str, result: anyhow::Result<(String, Vec<String>)>) -> Report {
    let url = redact_url(url);
    match result {
        Ok((detail, problems)) => Report {
            role,
            url,
            ok: problems.is_empty(),
            detail,
            problems,
        },
        Err(e) => Report {
            role,
            url,
            ok: false,
            // Errors from the drivers may echo the URL; mask it again.
            detail: format!("unreachable: {}", redact_url(&format!("{e:#}"))),
            problems: Vec::new(),
        },
    }
}

async fn connect(url: &str) -> anyhow::Result<mysql_async::Conn> {
    let opts = mysql_async::Opts::from_url(url).context("invalid MySQL URL")?;
    tokio::time::timeout(TIMEOUT, mysql_async::Conn::new(opts))
        .await
        .context("connect timed out")?
        .context("connect failed")
}

async fn check_source(url: &str) -> anyhow::Result<(String, Vec<String>)> {
    let mut conn = connect(url).await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata',\
              'binlog_checksum','gtid_binlog_pos','gtid_executed','server_id')",
        )
        .await?;
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut problems = Vec::new();
    if get("log_bin") != Some("ON") {
        problems.push("log_bin is OFF: start the server with --log-bin".to_string());
    }
    for (var, want) in [("binlog_format", "ROW"), ("binlog_row_image", "FULL")] {
        if let Some(v) = get(var) {
            if !v.eq_ignore_ascii_case(want) {
                problems.push(format!("{var} is {v}: sluice needs {want}"));
            }
        }
    }
    let position: Option<(String, u64)> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row.map(|r: mysql_async::Row| {
            let file: String = r.get(0).unwrap_or_default();
            let pos: u64 = r.get(1).unwrap_or_default();
            (file, pos)
        }),
        Err(e) => {
            problems.push(format!(
                "SHOW MASTER STATUS failed: {e} (grant REPLICATION CLIENT)"
            ));
            None
        }
    };
    let _ = conn.disconnect().await;
    let gtid = get("gtid_binlog_pos")
        .or_else(|| get("gtid_executed"))
        .unwrap_or("");
    let mut detail = format!(
        "{version}; binlog {}/{}/{}",
        get("binlog_format").unwrap_or("?"),
        get("binlog_row_image").unwrap_or("?"),
        get("binlog_row_metadata").unwrap_or("?"),
    );
    if let Some((file, pos)) = position {
        detail.push_str(&format!("; at {file}:{pos}"));
    }
    if !gtid.is_empty() {
        detail.push_str(&format!(" gtid {gtid}"));
    }
    Ok((detail, problems))
}

async fn check_target(url: &str) -> anyhow::Result<(String, Vec<String>)> {
    let mut conn = connect(url).await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    Ok((version, Vec::new()))
}

async fn check_etcd(endpoint: &str) -> anyhow::Result<(String, Vec<String>)> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(TIMEOUT)
        .with_timeout(TIMEOUT);
    let mut client = etcd_client::Client::connect([endpoint], Some(opts))
        .await
        .context("connect failed")?;
    let status = client.status().await.context("status failed")?;
    Ok((format!("etcd {}", status.version()), Vec::new()))
}
