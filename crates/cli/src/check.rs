//! `sluice check`: is each server reachable and fit for its role?
//!
//! Reports one line per server (or a JSON document with `--json`) and exits 1
//! if any server is unreachable or a source is not configured for row-based
//! change capture. Passwords are masked in everything printed.
//!
//! With `--config FILE` it checks every server the pipeline names, with the
//! pipeline's own connection settings (`source.tls`, `target.tls`, etcd TLS
//! and credentials), built by the same functions `sluice run` uses; the URL
//! flags connect without TLS.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use sluice_config::Coordination;
use sluice_coord::EtcdOptions;
use sluice_core::{redact_url, TlsConfig};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Check the servers of this pipeline file (every source URL, the
    /// target and etcd), with its TLS and etcd credentials.
    #[arg(long)]
    config: Option<PathBuf>,
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
    if args.config.is_none()
        && args.source.is_none()
        && args.target.is_none()
        && args.etcd.is_none()
    {
        anyhow::bail!("nothing to check: give --config, or --source, --target and/or --etcd");
    }
    let mut reports = Vec::new();
    if let Some(path) = &args.config {
        // Every section's other problems are errors; an undefined `${VAR}`
        // only stops the check of the server whose section holds it.
        let loaded = match sluice_config::load_for(path, sluice_config::Uses::NOTHING) {
            Ok(loaded) => loaded,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let pipeline = &loaded.pipeline;
        let undefined = |section: &str| -> Option<String> {
            let lines: Vec<String> = loaded
                .unresolved_in(section)
                .map(|e| e.to_string())
                .collect();
            (!lines.is_empty()).then(|| format!("not checked: {}", lines.join("; ")))
        };
        for url in &pipeline.source.urls {
            reports.push(match undefined("source") {
                Some(why) => not_checked("source", url.redacted(), why),
                None => {
                    let result = check_source(url.expose(), &pipeline.source.tls).await;
                    report("source", url.expose(), result)
                }
            });
        }
        let target = &pipeline.target;
        reports.push(match undefined("target") {
            Some(why) => not_checked("target", target.url.redacted(), why),
            None => {
                let result = check_target(target.url.expose(), &target.tls).await;
                report("target", target.url.expose(), result)
            }
        });
        if let Coordination::Etcd {
            endpoints,
            tls,
            auth,
            ..
        } = &pipeline.coordination
        {
            reports.push(match undefined("coordination") {
                Some(why) => not_checked("etcd", endpoints.join(","), why),
                None => {
                    let options = EtcdOptions::new(endpoints.clone())
                        .with_security(tls.clone(), auth.clone());
                    let result = check_etcd(&options).await;
                    report("etcd", &endpoints.join(","), result)
                }
            });
        }
    }
    let plain = TlsConfig::disabled();
    if let Some(url) = &args.source {
        reports.push(match db_url_flag("--source", url) {
            Ok(()) => report("source", url, check_source(url, &plain).await),
            Err(why) => not_checked("source", redact_url(url), why),
        });
    }
    if let Some(url) = &args.target {
        reports.push(match db_url_flag("--target", url) {
            Ok(()) => report("target", url, check_target(url, &plain).await),
            Err(why) => not_checked("target", redact_url(url), why),
        });
    }
    if let Some(url) = &args.etcd {
        reports.push(match sluice_config::parse_etcd_endpoint(url) {
            Ok(endpoint) => {
                let options = EtcdOptions::new([endpoint]);
                report("etcd", url, check_etcd(&options).await)
            }
            Err(why) => not_checked("etcd", redact_url(url), format!("--etcd `{url}`: {why}")),
        });
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

/// A server of the pipeline file that cannot be checked (its section has an
/// undefined variable).
fn not_checked(role: &'static str, url: String, why: String) -> Report {
    Report {
        role,
        url,
        ok: false,
        detail: why,
        problems: Vec::new(),
    }
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
            detail: failure(&e),
            problems: Vec::new(),
        },
    }
}

/// A `--source`/`--target` value that is not a database URL, said as what
/// to write instead (the drivers would only say "relative URL without a
/// base").
fn db_url_flag(flag: &str, url: &str) -> Result<(), String> {
    sluice_config::DbUrl::parse(url)
        .map(drop)
        .map_err(|why| format!("{flag} `{}`: {why}", redact_url(url)))
}

/// Why a connection failed, classified: the server answered and refused
/// the login (`access denied`, `refused by the server`), the TLS handshake
/// failed, or nothing usable answered (`unreachable`). The server's own
/// message is kept; URLs in it are masked (drivers may echo them).
fn failure(e: &anyhow::Error) -> String {
    let text = crate::error_text(e);
    let (class, hint) = match server_error(e) {
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, and MariaDB's
        // ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
        Some(1045 | 1044 | 1698) => (
            "access denied",
            " (check the user and password in the URL, and the account's host)",
        ),
        // ER_HOST_NOT_PRIVILEGED: no account for this client's address.
        Some(1130) => ("access denied", " (create the account for this host)"),
        Some(_) => ("refused by the server", ""),
        None if e.chain().any(sluice_coord::error::is_tls_failure) => ("TLS failed", ""),
        None if text.contains("authentication failed") => ("access denied", ""),
        None => ("unreachable", ""),
    };
    format!("{class}: {text}{hint}")
}

/// The MySQL error number the server answered with, if it answered.
fn server_error(e: &anyhow::Error) -> Option<u16> {
    e.chain().find_map(|cause| {
        if let Some(mysql_async::Error::Server(server)) = cause.downcast_ref::<mysql_async::Error>()
        {
            return Some(server.code);
        }
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            return db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|my| my.number());
        }
        None
    })
}

/// A source connection, as the replica stream opens it.
async fn connect(url: &str, tls: &TlsConfig) -> anyhow::Result<mysql_async::Conn> {
    Ok(sluice_binlog::connect::connect(url, tls, TIMEOUT).await?)
}

async fn check_source(url: &str, tls: &TlsConfig) -> anyhow::Result<(String, Vec<String>)> {
    let mut conn = connect(url, tls).await?;
    let dialect = sluice_binlog::dialect::Dialect::detect(&mut conn).await?;
    let version = dialect.version.text.clone();
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
    let status = dialect.binlog_status();
    let position: Option<(String, u64)> = match conn.query_first(status).await {
        Ok(row) => row.map(|r: mysql_async::Row| {
            let file: String = r.get(0).unwrap_or_default();
            let pos: u64 = r.get(1).unwrap_or_default();
            (file, pos)
        }),
        Err(e) => {
            problems.push(match dialect.refused(status, e) {
                unsupported @ sluice_binlog::BinlogError::StatementUnsupported { .. } => {
                    unsupported.to_string()
                }
                other => format!("{other} (grant REPLICATION CLIENT)"),
            });
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

/// A target connection with the loader's own options (sqlx).
async fn check_target(url: &str, tls: &TlsConfig) -> anyhow::Result<(String, Vec<String>)> {
    use sqlx::Connection as _;
    let options = sluice_load::connect_options(url, tls)?;
    let mut conn = tokio::time::timeout(TIMEOUT, sqlx::MySqlConnection::connect_with(&options))
        .await
        .context("connect timed out")?
        .context("connect failed")?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok((version, Vec::new()))
}

async fn check_etcd(options: &EtcdOptions) -> anyhow::Result<(String, Vec<String>)> {
    let mut options = options.clone();
    options.connect_timeout = TIMEOUT;
    options.request_timeout = TIMEOUT;
    let mut client = sluice_coord::etcd::connect(&options).await?;
    let status = client.status().await.context("status failed")?;
    Ok((format!("etcd {}", status.version()), Vec::new()))
}
