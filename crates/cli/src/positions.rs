//! `sluice positions`, `sluice positions set` and `sluice status`: the
//! operator's view of a pipeline's coordination state, and the override of
//! its acknowledged position.
//!
//! All three read the pipeline file (`--config`) for the pipeline's name,
//! its coordination store and its target; nothing else is configured on the
//! command line.
//!
//! # `sluice positions --config FILE [--json]`
//!
//! Who replicates (the leader key's holder, with `coordination.etcd`), who
//! stands by (every other registered node), the acknowledged position in
//! the store and the target's checkpoint row. The target being down is
//! reported, never an error; the store being unreachable is (exit 1),
//! because then there is nothing to show. Under `coordination.local` the
//! position file is read without taking the directory's lock (a running
//! `sluice run` holds it), and nodes / leader are "n/a (local
//! coordination)".
//!
//! Times are UTC, `YYYY-MM-DDTHH:MM:SSZ`. `lag` is defined once, in
//! `sluice_pipeline::lag`: now minus the time up to which the target holds
//! every change, which the active node publishes (0 while it is caught up
//! and hears the source's heartbeats). With no active node it is now minus
//! the event time of the acknowledged position, and unknown when that
//! position carries none (a position set by hand).
//!
//! ## JSON (`--json`): one object, these field names are stable
//!
//! ```text
//! pipeline            string   the pipeline's name
//! coordination        object   {kind: "etcd"|"local", endpoints: [string]|null,
//!                              prefix: string|null, dir: string|null}
//! store               string   where the position lives (etcd key or file path)
//! active              object|null   the leader, null when nobody leads or under
//!                              local coordination: {node_id, since, since_unix_ms,
//!                              leader_revision, role, version, server_id, address}
//!                              (the last four from its registration, null if absent)
//! standby             [node]|null   registered nodes other than the leader; null
//!                              under local coordination. node = {node_id, role,
//!                              version, server_id, address, since, since_unix_ms}
//! position            object|null   null when nothing is stored:
//!                              {text, file, offset, gtid, server_id, event_time,
//!                              event_unix, lag_seconds, lag_basis, batch_id,
//!                              written_by, leader_revision, written_at,
//!                              written_at_unix_ms} (lag_basis: "active_node" or
//!                              "last_applied_change", see `lag` above)
//!                              (gtid, server_id, event_time, event_unix,
//!                              lag_seconds, leader_revision may be null)
//! target              object   {url (password masked), reachable: bool,
//!                              error: string|null, checkpoint: null |
//!                              {batch_id, position, updated_at, applying_batch_id}}
//!                              (updated_at as YYYY-MM-DDTHH:MM:SSZ;
//!                              checkpoint is null when the target is unreachable,
//!                              has no row for the pipeline or was never migrated)
//! ```
//!
//! # `sluice positions set --config FILE (--gtid G | --file F --pos P) [--force]`
//!
//! Writes a new acknowledged position through
//! `PositionStore::force_store`: batch id one past the stored one (so it
//! supersedes everything acknowledged so far), `written_by` =
//! `operator@<host> (<$USER> via sluice positions set)`, no leader revision,
//! and an audit entry in the store's history. `--gtid` together with
//! `--file`/`--pos` records the set with the coordinates; `--gtid` alone is
//! resolved to the binlog file and offset right after that GTID position on
//! the source (MariaDB sources only: a resume reconnects by file and offset,
//! so those must be known).
//!
//! Safety rules:
//!
//! * Refused (exit 1, naming the nodes) while the pipeline's leader key
//!   exists or any node is registered, unless `--force`: a running node
//!   would overwrite the position with its next acknowledgement, or read
//!   the old one when it takes over. With `--force` the etcd store deletes
//!   the leader key in the same transaction (fencing the active node out),
//!   but the nodes keep running and elect a leader again at once, so the
//!   clean way is to stop every node first. A local store cannot be set
//!   while `sluice run` holds its directory, `--force` or not.
//! * `sluice run` resumes from the further of the stored position and the
//!   target's checkpoint row, so after a rewind the checkpoint would win:
//!   `set` therefore also deletes the pipeline's row from
//!   `sluice_meta.checkpoint` on the target. When the target is unreachable
//!   it refuses before changing anything, unless `--force` (then it warns
//!   and prints the statement to run by hand).
//!
//! Output: the old and new positions and what happened to the checkpoint
//! row, as a key/value table.
//!
//! # `sluice status --config FILE [--json]`
//!
//! A summary: pipeline, coordination, every node with its role, the
//! acknowledged position and lag, and the target checkpoint. Stage-level
//! counters are those the active node publishes in its node record every
//! 2 s (`NodeProgress`: counts per term — `batches_extracted` cut by
//! Extract, `batches_loaded` applied by Load, … — and batch ids
//! `last_batch_cut`, `acknowledged_batch`, `flushed_batch`). JSON: `pipeline`, `coordination`,
//! `store`, `position`, `target` as above, plus `active` (the leader's node
//! id or null), `nodes` (every registered node as a node object with an
//! extra `active: bool`; null under local coordination),
//! `stage_counters` (the active node's `NodeProgress` fields, or null) and
//! `batches_in_flight` (distributed stages: each task on the board with
//! `batch_id`, `stage` — `extracted`, `transforming`, `transformed`,
//! `loading`, `loaded` —, `owner`, `age_ms`, `rows`, `load_attempts`;
//! empty otherwise), `halted` (bool), `halt` (the halt record, or null) and
//! `paused` (the pause record, or null) — see `sluice errors`.
//!
//! # Layout
//!
//! This module holds the arguments, the entry points and what both
//! commands share (the election view, the key/value table, connecting to
//! etcd and the target); `report` collects and renders `positions` and
//! `status`, `set` changes the position, `time` formats times. Target SQL
//! lives in `sluice_load::meta` and GTID placement in
//! `sluice_binlog::gtid_resolve`: the CLI runs no SQL of its own here.

mod report;
mod set;
pub mod switchover;
mod time;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use sluice_config::Pipeline;
use sluice_coord::{EtcdOptions, KeyLayout, LeaderRecord, NodeRecord, PipelineKeys};

use report::Report;
pub(crate) use report::TaskView;

/// How long the target may take to answer before it counts as unreachable.
const TARGET_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of each etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for connecting to the source (`--gtid` resolution).
const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PositionsArgs {
    #[command(subcommand)]
    command: Option<PositionsCommand>,
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    /// Print one JSON object instead of a table (field names: see the docs).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum PositionsCommand {
    /// Set the acknowledged position by hand (all nodes stopped), and
    /// remove the target's checkpoint row so the next run starts there.
    Set(SetArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).multiple(true).args(["gtid", "file"])))]
pub struct SetArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// GTID position to resume after (MySQL `uuid:1-5,...`, MariaDB
    /// `0-1-100,...`). Alone, it is resolved to a file and offset on the
    /// (MariaDB) source; with --file/--pos it is recorded alongside them.
    #[arg(long, value_name = "GTID_SET")]
    gtid: Option<String>,
    /// Binlog file to resume in.
    #[arg(long, value_name = "BINLOG_FILE", requires = "pos")]
    file: Option<String>,
    /// Offset of the next event to read in --file (at least 4).
    #[arg(long, value_name = "OFFSET", requires = "file")]
    pos: Option<u64>,
    /// Set it even while nodes run (fencing the active one out) or while the
    /// target is unreachable (its checkpoint row then stays; delete it by
    /// hand).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `sluice positions [set]`.
pub async fn positions(args: PositionsArgs) -> anyhow::Result<ExitCode> {
    if let Some(PositionsCommand::Set(set_args)) = args.command {
        return set::set(set_args).await;
    }
    let Some(config) = args.config else {
        anyhow::bail!("--config FILE is required");
    };
    let Some(pipeline) = load_config(&config, &[]) else {
        return Ok(ExitCode::FAILURE);
    };
    let report = Report::collect(&pipeline).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.positions_json())?
        );
    } else {
        print!("{}", report.positions_table());
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let Some(pipeline) = load_config(&args.config, &[]) else {
        return Ok(ExitCode::FAILURE);
    };
    let report = Report::collect(&pipeline).await?;
    // A bidirectional pair: the other direction's lag too (its position
    // lives in the same store, under the peer's name).
    let peer = match &pipeline.bidirectional {
        Some(b) => Some((b.peer.clone(), peer_report(&pipeline, &b.peer).await)),
        None => None,
    };
    if args.json {
        let mut json = report.status_json();
        if let Some((name, peer)) = &peer {
            json["peer"] = match peer {
                Ok(r) => serde_json::json!({
                    "pipeline": name,
                    "lag_seconds": r.lag_now(),
                    "position": r.acknowledged().map(ToString::to_string),
                    "error": null,
                }),
                Err(e) => serde_json::json!({
                    "pipeline": name, "lag_seconds": null, "position": null, "error": format!("{e:#}"),
                }),
            };
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.status_table());
        if let Some((name, peer)) = &peer {
            let lag = match peer {
                Ok(r) => r
                    .lag_now()
                    .map_or_else(|| "unknown".to_string(), |l| format!("{l} s")),
                Err(e) => format!("unknown ({e:#})"),
            };
            println!("peer {name} (the other direction): lag {lag}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of the peer pipeline `peer` of a bidirectional `pipeline`:
/// the same store, the peer's name; its target is this pipeline's source
/// (read with the source's credentials; a refusal only leaves the
/// checkpoint unknown).
async fn peer_report(pipeline: &Pipeline, peer: &str) -> anyhow::Result<Report> {
    let mut other = pipeline.clone();
    other.name = peer.to_string();
    other.target.url = pipeline.source.url().clone();
    other.target.tls = pipeline.source.tls.clone();
    Report::collect(&other).await
}

/// The pipeline file, needing `${VAR}`s only in the store's and the target's
/// sections, and in `also` (e.g. `source` to resolve a GTID).
fn load_config(path: &Path, also: &[&str]) -> Option<Pipeline> {
    let loaded = sluice_config::load_for(path, sluice_config::Uses::STORE_AND_TARGET);
    let pipeline = loaded.and_then(|loaded| {
        loaded.require(also)?;
        Ok(loaded.pipeline)
    });
    match pipeline {
        Ok(pipeline) => Some(pipeline),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

/// Who takes part in the election (etcd coordination only).
struct Election {
    leader: Option<(LeaderRecord, i64)>,
    nodes: Vec<NodeRecord>,
}

impl Election {
    fn leader_id(&self) -> Option<&str> {
        self.leader.as_ref().map(|(l, _)| l.node_id.as_str())
    }

    fn standbys(&self) -> impl Iterator<Item = &NodeRecord> {
        let leader = self.leader_id();
        self.nodes
            .iter()
            .filter(move |n| Some(n.node_id.as_str()) != leader)
    }

    fn node(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.node_id == id)
    }
}

fn display_id(id: &str) -> &str {
    if id.is_empty() {
        "<unreadable leader record>"
    } else {
        id
    }
}

/// An aligned two-column table.
#[derive(Default)]
struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    fn row(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.rows.push((key.into(), value.into()));
    }

    fn render(&self) -> String {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

/// A failed read of the pipeline's state; when etcd did not answer
/// (transient), the message starts with what to do about it.
fn etcd_read_error(e: sluice_coord::CoordError, endpoints: &[String]) -> anyhow::Error {
    use sluice_core::Classify as _;
    let what = if e.class() == sluice_core::ErrorClass::Transient {
        format!(
            "cannot read the pipeline's state from etcd at {} (is etcd running there? `sluice check --config FILE` tests each server)",
            endpoints.join(",")
        )
    } else {
        "reading the pipeline's state in etcd".to_string()
    };
    anyhow::Error::new(e).context(what)
}

fn pipeline_keys(prefix: &str, name: &str) -> anyhow::Result<PipelineKeys> {
    Ok(KeyLayout::new(prefix)?.pipeline(name)?)
}

async fn etcd_client(
    endpoints: &[String],
    tls: &Option<sluice_core::EtcdTls>,
    auth: &Option<sluice_core::EtcdAuth>,
) -> anyhow::Result<etcd_client::Client> {
    let mut options = EtcdOptions::new(endpoints.to_vec()).with_security(tls.clone(), auth.clone());
    options.request_timeout = ETCD_TIMEOUT;
    Ok(sluice_coord::etcd::connect(&options).await?)
}

/// The pipeline's loader, once one connection to the target succeeded.
///
/// The probe is a plain connection because the pool only reports "timed
/// out" after retrying for its acquire timeout, while the operator wants
/// the reason (refused, access denied, unknown host) at once.
async fn target_loader(pipeline: &Pipeline) -> Result<sluice_load::Loader, String> {
    use sqlx::Connection as _;
    let options = sluice_load::connect_options(pipeline.target.url.expose(), &pipeline.target.tls)
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(
        TARGET_TIMEOUT,
        sqlx::MySqlConnection::connect_with(&options),
    )
    .await
    {
        Err(_) => return Err(format!("no answer within {TARGET_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
    }
    sluice_pipeline::loader(pipeline)
        .await
        .map_err(|e| e.to_string())
}

/// Error 1146 (42S02): the table does not exist.
fn is_missing_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42S02")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_keys() {
        let mut t = Table::default();
        t.row("a", "1");
        t.row("longer", "2");
        assert_eq!(t.render(), "a       1\nlonger  2\n");
    }
}
