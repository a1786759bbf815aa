//! `sluice binlog decode|tail`: binlog events as JSON Lines.
//!
//! `decode` reads binlog files offline; `tail` streams a live source as a
//! replica. Both print one object per row change, DDL, statement-format DML
//! and transaction boundary (see `sluice_binlog::output` for the encoding).
//! On a corrupt or truncated file, everything before the damage is printed,
//! then `FILE: offset N: reason` goes to stderr and the exit code is 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sluice_binlog::events::EventKind;
use sluice_binlog::output::LinePrinter;
use sluice_binlog::BinlogError;
use sluice_core::retry::{retry, Retried, RetryPolicy};

#[derive(Debug, clap::Subcommand)]
pub enum BinlogCommand {
    /// Decode binlog files offline to JSON Lines on stdout.
    Decode(DecodeArgs),
    /// Stream a live source as a replica, as JSON Lines on stdout, until
    /// interrupted (SIGINT/SIGTERM).
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("start").args(["gtid", "file"])))]
pub struct TailArgs {
    /// Source URL (`mysql://user:password@host:port`); the user needs
    /// REPLICATION SLAVE and REPLICATION CLIENT.
    #[arg(long, env = "SLUICE_SOURCE_URL")]
    source: String,
    /// Start after this GTID set (MariaDB `d-s-n,...`, MySQL `uuid:1-5,...`).
    #[arg(long)]
    gtid: Option<String>,
    /// Start at this binlog file (with --pos); default: the source's end.
    #[arg(long, requires = "pos")]
    file: Option<String>,
    /// Offset in --file of the first event to read.
    #[arg(long, requires = "file")]
    pos: Option<u64>,
    /// Replica server_id to register with (unique among the source's replicas).
    #[arg(long, default_value_t = 4_000_000_000)]
    server_id: u32,
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Start reading the first file at this byte offset (an event boundary,
    /// e.g. a `pos` printed earlier); the format description is read first.
    #[arg(long, value_name = "N")]
    start_offset: Option<u64>,
    /// Binlog files, decoded in the order given.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub async fn run(cmd: BinlogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BinlogCommand::Decode(args) => {
            // File decoding is CPU-bound and synchronous.
            tokio::task::spawn_blocking(move || decode(args)).await?
        }
        BinlogCommand::Tail(args) => tail(args).await,
    }
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    use sluice_binlog::stream::{ReplicaConfig, ReplicaStream, StartAt};
    use sluice_core::Classify;

    let mut start = match (&args.gtid, &args.file, args.pos) {
        (Some(g), _, _) => StartAt::Gtid(g.parse().map_err(|e| anyhow::anyhow!("--gtid: {e}"))?),
        (None, Some(f), Some(p)) => StartAt::File {
            file: f.clone(),
            pos: p,
        },
        _ => StartAt::Latest,
    };
    let mut printer = LinePrinter::default();
    let policy = RetryPolicy::unbounded(Duration::from_millis(200), Duration::from_secs(10));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let cfg = ReplicaConfig::new(&args.source, args.server_id, start.clone());
        let connected = retry(
            &policy,
            &mut shutdown,
            |e: &sluice_binlog::BinlogError, a| {
                tracing::warn!(error = %e, retry_in_ms = a.wait.as_millis() as u64, "source unreachable; retrying");
            },
            || ReplicaStream::connect(&cfg),
        )
        .await;
        let mut stream = match connected {
            Retried::Done(s) => s,
            Retried::Stopped => return Ok(ExitCode::SUCCESS),
            Retried::Failed(e) => anyhow::bail!("{}", sluice_core::redact_url(&e.to_string())),
        };
        let stdout = std::io::stdout();
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => {
                    stream.close().await;
                    return Ok(ExitCode::SUCCESS);
                }
                n = stream.next() => n,
            };
            match next {
                None => return Ok(ExitCode::SUCCESS),
                Some(Ok(event)) => {
                    let mut out = stdout.lock();
                    printer.print(&event, &mut out)?;
                    out.flush()?;
                    // Resume after the last whole transaction on reconnect.
                    if matches!(event.kind, EventKind::Commit { .. } | EventKind::Ddl { .. }) {
                        let pos = stream.position_after(&event);
                        start = match pos.gtid {
                            Some(g) => StartAt::Gtid(g),
                            None => StartAt::File {
                                file: pos.file,
                                pos: pos.offset,
                            },
                        };
                    }
                }
                Some(Err(e)) if e.class().is_transient() => {
                    tracing::warn!(error = %e, "binlog stream interrupted; reconnecting");
                    break;
                }
                Some(Err(e)) => anyhow::bail!("{e}"),
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn decode(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut printer = LinePrinter::default();
    for (i, path) in args.files.iter().enumerate() {
        let start = if i == 0 { args.start_offset } else { None };
        let result = sluice_binlog::file::BinlogFile::open(path, start).and_then(|file| {
            // Started inside a transaction: its changes still carry its GTID.
            if let Some(begin) = file.begun() {
                printer.print(begin, &mut std::io::sink())?;
            }
            for event in file {
                printer.print(&event?, &mut out)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            out.flush()?;
            eprintln!("{}", error_line(path, &e));
            return Ok(ExitCode::FAILURE);
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `FILE: offset N: reason`, with the file as the user named it.
fn error_line(path: &std::path::Path, e: &BinlogError) -> String {
    match e.at() {
        Some(at) => format!("{}: offset {}: {}", path.display(), at.offset, e.detail()),
        None => format!("{}: {e}", path.display()),
    }
}
