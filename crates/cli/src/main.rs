//! `sluice`: the command-line entry point.
//!
//! The binary is thin: it parses arguments, sets up logging and hands off to
//! the library crates. It is the only place `anyhow` is used; every library
//! returns typed, classified errors.

mod admin;
mod binlog_cmd;
mod check;
mod control;
mod positions;
mod run;
mod validate;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "MySQL/MariaDB binlog change-data-capture into a remote MySQL"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); also read from `SLUICE_LOG`.
    #[arg(long, global = true, env = "SLUICE_LOG", default_value = "info")]
    log: String,

    /// Log line format: `human` (default) or `json` (one JSON object per
    /// line, for log collectors); also read from `SLUICE_LOG_FORMAT`.
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Human
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replicate the source into the target as the pipeline file says,
    /// until SIGTERM/SIGINT (exit 0) or, with coordination.local, a definite
    /// error (exit 1; with etcd the pipeline halts instead, see `errors`).
    Run(run::RunArgs),
    /// Create or upgrade sluice's metadata tables on the target (`run` does
    /// this too).
    Migrate(run::MigrateArgs),
    /// Connect to a source, a target and etcd and report their state.
    Check(check::CheckArgs),
    /// Check a pipeline file: prints every problem as FILE:LINE:COL (exit 1),
    /// or OK.
    Validate(validate::ValidateArgs),
    /// Read binlogs: decode files offline, or tail a live source.
    #[command(subcommand)]
    Binlog(binlog_cmd::BinlogCommand),
    /// Show who replicates a pipeline and its acknowledged position and
    /// target checkpoint; `positions set` changes the position by hand.
    Positions(positions::PositionsArgs),
    /// Summary of a pipeline: nodes, position, lag, target checkpoint.
    Status(positions::StatusArgs),
    /// Whether the pipeline is halted on an error, and the history of
    /// resolutions; `errors skip|replace|retry` resolve a halt (etcd).
    Errors(control::ErrorsArgs),
    /// Hold every batch before the target until `sluice resume`; survives
    /// failover (etcd).
    Pause(control::CommonArgs),
    /// Undo `sluice pause`.
    Resume(control::CommonArgs),
    /// Planned switchover: the active node drains, flushes and hands over to
    /// a standby, which takes over at once (etcd).
    Handover(control::HandoverArgs),
    /// Planned switchover of the writing site of an active-active pair:
    /// waits until the target holds everything the source wrote up to now,
    /// reports the wait and the lag at start; exit 0 only when caught up.
    Switchover(positions::switchover::SwitchoverArgs),
    /// Source servers: `source switch` moves the active node to another
    /// entry of source.urls, continuing by GTID (etcd).
    #[command(subcommand)]
    Source(control::SourceCommand),
    /// Compare the target with the source while the pipeline replicates
    /// (exit 0 equal, 1 different, 2 could not verify); `--repair` mends
    /// what differs.
    Verify(verify::VerifyArgs),
    /// Copy tables again while the pipeline streams (`--table db.t`,
    /// repeatable), exact at each chunk's binlog position (etcd).
    Snapshot(control::SnapshotArgs),
}

/// mimalloc rather than glibc malloc: a row is a few dozen small blocks
/// that live for one batch, and glibc's free-list upkeep was a quarter of
/// the CPU of a snapshot copy (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's default commits whole arenas eagerly, where freed pages are
/// only reset and stay in the RSS: a 1M-row transaction peaked at 161 MiB
/// of RSS for 82 MiB of live heap (heaptrack). Committing arenas on demand
/// brought it to 127 MiB at the same CPU; also purging freed pages at once
/// (`purge_delay` 0, or 2 ms) gave 105–111 MiB but cost a snapshot copy a
/// quarter more CPU (madvise calls), so the delay stays at its default.
/// The number is `mi_option_arena_eager_commit` of the mimalloc v3 header
/// that libmimalloc-sys 0.1.49 vendors (it exposes no constants for it).
///
/// Run from `.init_array`, before `main`: the first Rust allocation (in the
/// standard library's start-up) creates the first arena, whose commit mode
/// is fixed then. mimalloc keeps an option set this way over its
/// environment default.
extern "C" fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // SAFETY: a plain setter of the allocator's global options, before any
    // thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::new(&cli.log);
    match cli.log_format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Migrate(args) => run::migrate(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Binlog(cmd) => binlog_cmd::run(cmd).await,
            Command::Validate(args) => validate::run(&args),
            Command::Positions(args) => positions::positions(args).await,
            Command::Status(args) => positions::status(args).await,
            Command::Errors(args) => control::errors(args).await,
            Command::Pause(args) => control::pause(args).await,
            Command::Resume(args) => control::resume(args).await,
            Command::Handover(args) => control::handover(args).await,
            Command::Source(cmd) => control::source(cmd).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Snapshot(args) => control::snapshot(args).await,
            Command::Switchover(args) => positions::switchover::switchover(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, `: `-separated, for people: a cause whose text an
/// outer message already includes is skipped (most wrappers print their
/// cause), and nothing of an `etcd_client::Error` but what it means: its own
/// text is tonic's debug dump of the gRPC status. Under a `CoordError`,
/// which already describes it, it is left out; elsewhere it is described
/// the same way (e.g. `tcp connect error: Connection refused (os error 111)`).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut described = false;
    for cause in e.chain() {
        let text = match cause.downcast_ref::<etcd_client::Error>() {
            Some(_) if described => break,
            Some(etcd) => sluice_coord::describe_etcd(etcd),
            None => cause.to_string(),
        };
        described = cause.is::<sluice_coord::CoordError>();
        // mysql_async prefixes the same I/O error once per wrapper.
        if out.contains(text.trim_start_matches("Input/output error: ")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        if cause.is::<etcd_client::Error>() {
            break; // below it: tonic's transport errors, already described
        }
    }
    sluice_core::redact_url(&out)
}
