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
//! Times are UTC, `YYYY-MM-DDTHH:MM:SSZ`. `lag` is now minus the timestamp
//! of the last event before the acknowledged position: it also grows while
//! the source is idle, and is unknown when the position carries no event
//! timestamp (a position set by hand).
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
//!                              event_unix, lag_seconds, batch_id, written_by,
//!                              leader_revision, written_at, written_at_unix_ms}
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
//! [`PositionStore::force_store`]: batch id one past the stored one (so it
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
//! 2 s (`NodeProgress`). JSON: `pipeline`, `coordination`,
//! `store`, `position`, `target` as above, plus `active` (the leader's node
//! id or null), `nodes` (every registered node as a node object with an
//! extra `active: bool`; null under local coordination),
//! `stage_counters` (the active node's `NodeProgress` fields, or null) and
//! `batches_in_flight` (distributed stages: each task on the board with
//! `batch_id`, `stage` — `extracted`, `transforming`, `transformed`,
//! `loading`, `loaded` —, `owner`, `age_ms`, `rows`, `load_attempts`;
//! empty otherwise), `halted` (bool), `halt` (the halt record, or null) and
//! `paused` (the pause record, or null) — see `sluice errors`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use mysql_async::prelude::Queryable as _;
use serde_json::{json, Value};
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    read_leader, read_nodes, AnyPositionStore, EtcdOptions, EtcdPositionStore, KeyLayout,
    LeaderRecord, LocalPositionStore, NodeRecord, PipelineKeys, PositionStore as _, StoredPosition,
};
use sluice_core::{GtidSet, Position};
use sluice_load::Checkpoint;

/// How long the target may take to answer before it counts as unreachable.
const TARGET_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of each etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for connecting to the source (`--gtid` resolution).
const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per `SHOW BINLOG EVENTS` page while resolving a GTID.
const EVENTS_PAGE: u64 = 10_000;

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
        return set(set_args).await;
    }
    let Some(config) = args.config else {
        anyhow::bail!("--config FILE is required");
    };
    let Some(pipeline) = load_config(&config) else {
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
    let Some(pipeline) = load_config(&args.config) else {
        return Ok(ExitCode::FAILURE);
    };
    let report = Report::collect(&pipeline).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.status_json())?);
    } else {
        print!("{}", report.status_table());
    }
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: &Path) -> Option<Pipeline> {
    match sluice_config::load(path) {
        Ok(p) => Some(p),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the state
// ---------------------------------------------------------------------------

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

/// What the target said about the pipeline's checkpoint.
enum TargetState {
    Checkpoint(Option<Checkpoint>),
    /// `sluice_meta.checkpoint` does not exist (never migrated).
    NotMigrated,
    Unreachable(String),
}

struct TargetInfo {
    url: String,
    state: TargetState,
}

/// Everything `positions` and `status` show.
struct Report {
    pipeline: String,
    coordination: Coordination,
    store: String,
    /// `None` under local coordination.
    election: Option<Election>,
    position: Option<StoredPosition>,
    target: TargetInfo,
    now_unix: i64,
    /// Distributed stages: the batches in flight on the task board.
    tasks: Vec<TaskView>,
    /// Operator control records (etcd coordination only).
    control: Option<sluice_coord::ControlState>,
}

/// One batch in flight on the task board, as `status` shows it.
struct TaskView {
    batch_id: u64,
    /// `transforming`, `loading`, or the state it waits in.
    stage: String,
    /// The claiming node, or the node holding the batch's data.
    owner: String,
    age_ms: u64,
    rows: u64,
    load_attempts: u32,
}

impl TaskView {
    fn from_board(board: &sluice_coord::Board, now_ms: u64) -> Vec<TaskView> {
        use sluice_coord::{TaskStage, TaskState};
        board
            .tasks
            .values()
            .map(|t| {
                let r = &t.record;
                let claim = |stage| board.claims.get(&(r.batch_id, stage));
                let (stage, owner) = if let Some(c) = claim(TaskStage::Load) {
                    ("loading".to_string(), c.record.node.clone())
                } else if let Some(c) = claim(TaskStage::Transform) {
                    ("transforming".to_string(), c.record.node.clone())
                } else {
                    let holder = match r.state {
                        TaskState::Transformed => r.transformed.as_ref().map(|d| d.node.clone()),
                        TaskState::Loaded => r.loaded_by.clone(),
                        _ => Some(r.extracted.node.clone()),
                    };
                    (r.state.name().to_string(), holder.unwrap_or_default())
                };
                TaskView {
                    batch_id: r.batch_id,
                    stage,
                    owner,
                    age_ms: now_ms.saturating_sub(r.created_unix_ms),
                    rows: r.rows,
                    load_attempts: r.load_attempts,
                }
            })
            .collect()
    }
}

impl Report {
    async fn collect(pipeline: &Pipeline) -> anyhow::Result<Report> {
        let mut tasks = Vec::new();
        let mut control = None;
        let (store, election, position) = match &pipeline.coordination {
            Coordination::Etcd {
                endpoints,
                prefix,
                tls,
                auth,
            } => {
                let keys = pipeline_keys(prefix, &pipeline.name)?;
                let client = etcd_client(endpoints, tls, auth).await?;
                let etcd_store = EtcdPositionStore::new(client.clone(), keys.clone(), ETCD_TIMEOUT);
                let board =
                    sluice_coord::TaskBoard::new(client.clone(), keys.clone(), ETCD_TIMEOUT);
                let (leader, nodes, position, board) = tokio::try_join!(
                    read_leader(&client, &keys),
                    read_nodes(&client, &keys),
                    etcd_store.load(),
                    board.snapshot(),
                )
                .context("reading the pipeline's state in etcd")?;
                tasks = TaskView::from_board(&board, sluice_coord::election::unix_ms());
                control = Some(
                    sluice_coord::ControlStore::new(client.clone(), keys.clone(), ETCD_TIMEOUT)
                        .read()
                        .await
                        .context("reading the pipeline's control records in etcd")?,
                );
                (
                    etcd_store.location(),
                    Some(Election { leader, nodes }),
                    position,
                )
            }
            Coordination::Local { dir } => {
                let path = local_position_path(dir, &pipeline.name);
                let position = read_local_position(&path)?;
                (path.display().to_string(), None, position)
            }
        };
        let target = read_target(pipeline).await;
        Ok(Report {
            pipeline: pipeline.name.clone(),
            coordination: pipeline.coordination.clone(),
            store,
            election,
            position,
            target,
            now_unix: now_unix(),
            tasks,
            control,
        })
    }

    fn lag_seconds(&self) -> Option<i64> {
        let ts = self.position.as_ref()?.position.timestamp?;
        Some((self.now_unix - i64::from(ts)).max(0))
    }

    // -- JSON ---------------------------------------------------------------

    fn coordination_json(&self) -> Value {
        match &self.coordination {
            Coordination::Etcd {
                endpoints, prefix, ..
            } => json!({
                "kind": "etcd", "endpoints": endpoints, "prefix": prefix, "dir": null,
            }),
            Coordination::Local { dir } => json!({
                "kind": "local", "endpoints": null, "prefix": null,
                "dir": dir.display().to_string(),
            }),
        }
    }

    fn position_json(&self) -> Value {
        let Some(stored) = &self.position else {
            return Value::Null;
        };
        let p = &stored.position;
        json!({
            "text": p.to_string(),
            "file": p.file,
            "offset": p.offset,
            "gtid": p.gtid.as_ref().map(ToString::to_string),
            "server_id": p.server_id,
            "event_time": p.timestamp.map(|ts| utc(i64::from(ts))),
            "event_unix": p.timestamp,
            "lag_seconds": self.lag_seconds(),
            "batch_id": stored.batch_id,
            "written_by": stored.written_by,
            "leader_revision": stored.leader_revision,
            "written_at": utc_ms(stored.written_at_unix_ms),
            "written_at_unix_ms": stored.written_at_unix_ms,
        })
    }

    fn target_json(&self) -> Value {
        let (reachable, error, checkpoint) = match &self.target.state {
            TargetState::Checkpoint(cp) => (true, None, cp.as_ref()),
            TargetState::NotMigrated => (
                true,
                Some("sluice_meta.checkpoint does not exist (target never migrated)".to_string()),
                None,
            ),
            TargetState::Unreachable(e) => (false, Some(e.clone()), None),
        };
        json!({
            "url": self.target.url,
            "reachable": reachable,
            "error": error,
            "checkpoint": checkpoint.map(|c| json!({
                "batch_id": c.batch_id,
                "position": c.position,
                "updated_at": db_time(&c.updated_at),
                "applying_batch_id": c.applying.as_ref().map(|(id, _)| *id),
            })),
        })
    }

    fn positions_json(&self) -> Value {
        let (active, standby) = match &self.election {
            None => (Value::Null, Value::Null),
            Some(e) => {
                let active = e.leader.as_ref().map_or(Value::Null, |(l, revision)| {
                    let node = e.node(&l.node_id);
                    json!({
                        "node_id": l.node_id,
                        "since": utc_ms(l.since_unix_ms),
                        "since_unix_ms": l.since_unix_ms,
                        "leader_revision": revision,
                        "role": node.map(|n| n.role.clone()),
                        "version": node.map(|n| n.version.clone()),
                        "server_id": node.and_then(|n| n.server_id),
                        "address": node.and_then(|n| n.address.clone()),
                    })
                });
                let standby: Vec<Value> = e.standbys().map(node_json).collect();
                (active, Value::Array(standby))
            }
        };
        json!({
            "pipeline": self.pipeline,
            "coordination": self.coordination_json(),
            "store": self.store,
            "active": active,
            "standby": standby,
            "position": self.position_json(),
            "target": self.target_json(),
        })
    }

    fn status_json(&self) -> Value {
        let (active, nodes) = match &self.election {
            None => (Value::Null, Value::Null),
            Some(e) => {
                let leader = e.leader_id();
                let nodes = e
                    .nodes
                    .iter()
                    .map(|n| {
                        let mut v = node_json(n);
                        v["active"] = json!(Some(n.node_id.as_str()) == leader);
                        v
                    })
                    .collect();
                (json!(leader), Value::Array(nodes))
            }
        };
        json!({
            "pipeline": self.pipeline,
            "coordination": self.coordination_json(),
            "store": self.store,
            "active": active,
            "nodes": nodes,
            "position": self.position_json(),
            "target": self.target_json(),
            "halted": self.control.as_ref().is_some_and(|c| c.halt.is_some()),
            "halt": self.control.as_ref().and_then(|c| c.halt.as_ref()).map(|h| json!(h.value)),
            "paused": self.control.as_ref().and_then(|c| c.pause.as_ref()).map(|p| json!(p.value)),
            "stage_counters": self.active_progress().map_or(Value::Null, |p| json!(p)),
            "batches_in_flight": self.tasks.iter().map(|t| json!({
                "batch_id": t.batch_id,
                "stage": t.stage,
                "owner": t.owner,
                "age_ms": t.age_ms,
                "rows": t.rows,
                "load_attempts": t.load_attempts,
            })).collect::<Vec<_>>(),
        })
    }

    /// The counters the active node published in its node record.
    fn active_progress(&self) -> Option<&sluice_coord::NodeProgress> {
        let e = self.election.as_ref()?;
        let leader = e.leader_id()?;
        e.nodes
            .iter()
            .find(|n| n.node_id == leader)
            .and_then(|n| n.progress.as_ref())
    }

    // -- tables -------------------------------------------------------------

    fn coordination_text(&self) -> String {
        match &self.coordination {
            Coordination::Etcd {
                endpoints, prefix, ..
            } => {
                format!("etcd {} (prefix {prefix})", endpoints.join(","))
            }
            Coordination::Local { dir } => format!("local ({})", dir.display()),
        }
    }

    fn position_rows(&self, t: &mut Table) {
        let Some(stored) = &self.position else {
            t.row(
                "position",
                "none stored (the next run starts at source.start)",
            );
            return;
        };
        let p = &stored.position;
        t.row("position", format!("{}:{}", p.file, p.offset));
        t.row(
            "gtid",
            p.gtid
                .as_ref()
                .map_or_else(|| "-".into(), ToString::to_string),
        );
        t.row(
            "event time",
            p.timestamp
                .map_or_else(|| "unknown".into(), |ts| utc(i64::from(ts))),
        );
        t.row(
            "lag",
            self.lag_seconds()
                .map_or_else(|| "unknown".into(), |s| format!("{s}s")),
        );
        t.row("batch_id", stored.batch_id.to_string());
        t.row("written_by", stored.written_by.as_str());
        t.row("written_at", utc_ms(stored.written_at_unix_ms));
    }

    fn target_rows(&self, t: &mut Table) {
        t.row("target", self.target.url.as_str());
        match &self.target.state {
            TargetState::Unreachable(e) => t.row(
                "target checkpoint",
                format!("unknown: target unreachable ({e})"),
            ),
            TargetState::NotMigrated => t.row(
                "target checkpoint",
                "none (sluice_meta.checkpoint does not exist: target never migrated)",
            ),
            TargetState::Checkpoint(None) => t.row("target checkpoint", "none for this pipeline"),
            TargetState::Checkpoint(Some(c)) => {
                t.row("checkpoint batch_id", c.batch_id.to_string());
                t.row("checkpoint position", c.position.as_str());
                t.row("checkpoint updated", db_time(&c.updated_at));
                if let Some((id, _)) = &c.applying {
                    t.row("checkpoint applying", format!("batch {id}"));
                }
            }
        }
    }

    fn positions_table(&self) -> String {
        let mut t = Table::default();
        t.row("pipeline", self.pipeline.as_str());
        t.row("coordination", self.coordination_text());
        t.row("store", self.store.as_str());
        match &self.election {
            None => {
                t.row("active node", "n/a (local coordination)");
                t.row("standby nodes", "n/a (local coordination)");
            }
            Some(e) => {
                match &e.leader {
                    Some((l, revision)) => t.row(
                        "active node",
                        format!(
                            "{} (since {}, leader revision {revision})",
                            display_id(&l.node_id),
                            utc_ms(l.since_unix_ms)
                        ),
                    ),
                    None => t.row("active node", "none (no leader key)"),
                }
                let standbys: Vec<String> = e.standbys().map(node_text).collect();
                if standbys.is_empty() {
                    t.row("standby nodes", "none");
                }
                for (i, s) in standbys.into_iter().enumerate() {
                    t.row(if i == 0 { "standby nodes" } else { "" }, s);
                }
            }
        }
        self.position_rows(&mut t);
        self.target_rows(&mut t);
        t.render()
    }

    fn status_table(&self) -> String {
        let mut t = Table::default();
        t.row("pipeline", self.pipeline.as_str());
        t.row("coordination", self.coordination_text());
        match &self.election {
            None => t.row("nodes", "n/a (local coordination)"),
            Some(e) if e.nodes.is_empty() && e.leader.is_none() => t.row("nodes", "none running"),
            Some(e) => {
                let leader = e.leader_id();
                let mut lines: Vec<String> = e
                    .nodes
                    .iter()
                    .map(|n| {
                        let tag = if Some(n.node_id.as_str()) == leader {
                            "active"
                        } else {
                            "standby"
                        };
                        format!("{tag:<8}{}", node_text(n))
                    })
                    .collect();
                if let Some((l, _)) = &e.leader {
                    if e.node(&l.node_id).is_none() {
                        lines.insert(
                            0,
                            format!(
                                "{:<8}{} (since {}; not registered)",
                                "active",
                                display_id(&l.node_id),
                                utc_ms(l.since_unix_ms)
                            ),
                        );
                    }
                }
                for (i, line) in lines.into_iter().enumerate() {
                    t.row(if i == 0 { "nodes" } else { "" }, line);
                }
            }
        }
        match &self.position {
            None => t.row("position", "none stored"),
            Some(s) => {
                t.row("position", format!("{} (batch {})", s.position, s.batch_id));
                t.row(
                    "lag",
                    self.lag_seconds()
                        .map_or_else(|| "unknown".into(), |s| format!("{s}s")),
                );
                t.row(
                    "written",
                    format!("{} by {}", utc_ms(s.written_at_unix_ms), s.written_by),
                );
            }
        }
        match &self.target.state {
            TargetState::Unreachable(e) => t.row(
                "target checkpoint",
                format!("unknown: target {} unreachable ({e})", self.target.url),
            ),
            TargetState::NotMigrated => t.row("target checkpoint", "none (target never migrated)"),
            TargetState::Checkpoint(None) => t.row("target checkpoint", "none for this pipeline"),
            TargetState::Checkpoint(Some(c)) => t.row(
                "target checkpoint",
                format!(
                    "batch {} at {} (updated {})",
                    c.batch_id,
                    c.position,
                    db_time(&c.updated_at)
                ),
            ),
        }
        if let Some(c) = &self.control {
            match &c.halt {
                None => t.row("halted", "no"),
                Some(h) => t.row(
                    "halted",
                    format!(
                        "yes, by {} at {}: {} (see `sluice errors`)",
                        display_id(&h.value.node),
                        utc_ms(h.value.halted_at_unix_ms),
                        h.value.message
                    ),
                ),
            }
            t.row(
                "paused",
                c.pause.as_ref().map_or_else(
                    || "no".to_string(),
                    |p| {
                        format!(
                            "yes, by {} since {}",
                            p.value.operator,
                            utc_ms(p.value.paused_at_unix_ms)
                        )
                    },
                ),
            );
        }
        match self.active_progress() {
            None => t.row("stage counters", "none published (no active node)"),
            Some(p) => {
                t.row(
                    "stage counters",
                    format!(
                        "extract: {} batches cut; load: {} batches, {} rows, {} DDL, {} retries",
                        p.batches_extracted,
                        p.batches_loaded,
                        p.rows_loaded,
                        p.ddl_applied,
                        p.retries
                    ),
                );
                t.row(
                    "",
                    format!(
                        "in flight {} batches; acknowledged {}, flushed {}; lag {}; as of {}",
                        p.in_flight,
                        p.acknowledged_batch
                            .map_or_else(|| "-".into(), |b| b.to_string()),
                        p.flushed_batch
                            .map_or_else(|| "-".into(), |b| b.to_string()),
                        p.lag_seconds
                            .map_or_else(|| "-".into(), |l| format!("{l}s")),
                        utc_ms(p.updated_unix_ms)
                    ),
                );
            }
        }
        if !self.tasks.is_empty() {
            for (i, task) in self.tasks.iter().enumerate() {
                t.row(
                    if i == 0 { "batches in flight" } else { "" },
                    format!(
                        "batch {} {} on {} for {:.1}s ({} rows{})",
                        task.batch_id,
                        task.stage,
                        display_id(&task.owner),
                        task.age_ms as f64 / 1000.0,
                        task.rows,
                        if task.load_attempts > 1 {
                            format!(", load attempt {}", task.load_attempts)
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
        t.render()
    }
}

fn node_json(n: &NodeRecord) -> Value {
    json!({
        "node_id": n.node_id,
        "role": n.role,
        "version": n.version,
        "server_id": n.server_id,
        "address": n.address,
        "since": utc_ms(n.since_unix_ms),
        "since_unix_ms": n.since_unix_ms,
    })
}

fn node_text(n: &NodeRecord) -> String {
    let mut s = format!(
        "{} (role {}, version {}, server_id {}, since {}",
        n.node_id,
        n.role,
        n.version,
        n.server_id.map_or_else(|| "-".into(), |id| id.to_string()),
        utc_ms(n.since_unix_ms)
    );
    if let Some(a) = &n.address {
        let _ = write!(s, ", admin {a}");
    }
    s.push(')');
    s
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

/// `{dir}/{name}/position.json`, as `sluice run` writes it.
fn local_position_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("position.json")
}

/// Reads a local store's position file without locking the directory (a
/// running pipeline holds the lock; the file is replaced atomically, so a
/// read sees a whole record).
fn read_local_position(path: &Path) -> anyhow::Result<Option<StoredPosition>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} does not hold a valid position record", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The target's checkpoint row; an unreachable target is a state, not an
/// error.
async fn read_target(pipeline: &Pipeline) -> TargetInfo {
    let url = pipeline.target.url.to_string();
    let state = match target_loader(pipeline).await {
        Err(e) => TargetState::Unreachable(e),
        Ok(loader) => {
            let state = read_checkpoint(&loader, &pipeline.name).await;
            loader.close().await;
            state
        }
    };
    TargetInfo { url, state }
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

async fn read_checkpoint(loader: &sluice_load::Loader, name: &str) -> TargetState {
    let read = sluice_load::read_checkpoint(loader.pool(), name);
    match tokio::time::timeout(TARGET_TIMEOUT, read).await {
        Err(_) => TargetState::Unreachable(format!("no answer within {TARGET_TIMEOUT:?}")),
        Ok(Ok(cp)) => TargetState::Checkpoint(cp),
        Ok(Err(e)) if is_missing_table(&e) => TargetState::NotMigrated,
        Ok(Err(e)) => TargetState::Unreachable(e.to_string()),
    }
}

/// Error 1146 (42S02): the table does not exist.
fn is_missing_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42S02")
}

// ---------------------------------------------------------------------------
// positions set
// ---------------------------------------------------------------------------

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let Some(pipeline) = load_config(&args.config) else {
        return Ok(ExitCode::FAILURE);
    };
    let gtid = args
        .gtid
        .as_deref()
        .map(|g| g.parse::<GtidSet>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--gtid: {e}"))?;
    let position = match (&args.file, args.pos) {
        (Some(file), Some(pos)) => {
            if pos < 4 {
                anyhow::bail!("--pos {pos}: binlog offsets start at 4");
            }
            let text = format!("{file}:{pos}");
            let mut p: Position = text
                .parse()
                .map_err(|e| anyhow::anyhow!("--file/--pos `{text}`: {e}"))?;
            p.gtid = gtid;
            p
        }
        _ => match gtid {
            Some(set) => resolve_gtid(&pipeline, set).await?,
            None => anyhow::bail!("give --gtid, or --file and --pos"),
        },
    };
    let mut out = Table::default();
    out.row("pipeline", pipeline.name.as_str());
    let mut warnings: Vec<String> = Vec::new();

    // 1. Nobody may be replicating (or about to).
    let store: AnyPositionStore = match &pipeline.coordination {
        Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } => {
            let keys = pipeline_keys(prefix, &pipeline.name)?;
            let client = etcd_client(endpoints, tls, auth).await?;
            let (leader, nodes) =
                tokio::try_join!(read_leader(&client, &keys), read_nodes(&client, &keys))
                    .context("reading the pipeline's nodes in etcd")?;
            let election = Election { leader, nodes };
            let running = running_text(&election);
            match (&running, args.force) {
                (None, _) => out.row("active node", "none"),
                (Some(running), false) => {
                    eprintln!(
                        "sluice: refusing to set the position of pipeline `{}`: {running}. Stop every \
                         node of the pipeline first (SIGTERM), or pass --force to fence the active \
                         node out (the nodes then elect a leader again at once).",
                        pipeline.name
                    );
                    return Ok(ExitCode::FAILURE);
                }
                (Some(running), true) => {
                    warnings.push(format!(
                        "--force while nodes run ({running}): the active node is fenced out now, \
                         but the nodes elect a leader again at once and one may have read the old \
                         position or write a new checkpoint; stop them for a clean change"
                    ));
                    out.row("active node", format!("{running} (fenced out by --force)"));
                }
            }
            EtcdPositionStore::new(client, keys, ETCD_TIMEOUT).into()
        }
        Coordination::Local { dir } => {
            // Its lock keeps a running `sluice run` (and --force) out.
            let store = LocalPositionStore::open(dir.join(&pipeline.name)).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; stop `sluice run` of pipeline `{}` first",
                    pipeline.name
                )
            })?;
            out.row("active node", "n/a (local coordination; not running)");
            store.into()
        }
    };

    // 2. The target must be reachable to remove its checkpoint.
    let target_url = pipeline.target.url.to_string();
    let manual_delete = format!(
        "DELETE FROM sluice_meta.checkpoint WHERE pipeline = '{}'",
        pipeline.name
    );
    let loader = target_loader(&pipeline).await;
    if let Err(e) = &loader {
        if !args.force {
            eprintln!(
                "sluice: refusing to set the position of pipeline `{}`: target {target_url} is \
                 unreachable ({e}), so its checkpoint row cannot be removed, and `sluice run` \
                 resumes from the checkpoint when it is ahead of the stored position. Fix the \
                 target, or pass --force and run `{manual_delete}` on it yourself.",
                pipeline.name
            );
            return Ok(ExitCode::FAILURE);
        }
    }

    // 3. Force the position (with an audit entry).
    let old = match store.load().await {
        Ok(Some(old)) => describe_stored(&old),
        Ok(None) => "none stored".to_string(),
        Err(e) => format!("unreadable ({e})"),
    };
    out.row("old position", old);
    let record = store
        .force_store(position, &operator_id())
        .await
        .with_context(|| format!("setting the position at {}", store.location()))?;
    out.row("new position", describe_stored(&record));
    out.row("store", store.location());
    match store.history().await {
        Ok(h) => out.row(
            "history",
            format!("recorded ({} forced change(s) in total)", h.len()),
        ),
        Err(e) => out.row("history", format!("recorded, but unreadable now ({e})")),
    }

    // 4. Remove the target checkpoint, which would otherwise win if ahead.
    let mut failed = false;
    match loader {
        Err(e) => {
            warnings.push(format!(
                "target {target_url} unreachable ({e}): its checkpoint row was NOT removed; if \
                 it is ahead of the new position `sluice run` resumes from it — run \
                 `{manual_delete}` on the target before starting the pipeline"
            ));
            out.row("target checkpoint", "NOT removed (target unreachable)");
        }
        Ok(loader) => {
            match delete_checkpoint(&loader, &pipeline.name).await {
                Ok(Deleted::Row(Some(cp))) => out.row(
                    "target checkpoint",
                    format!(
                        "removed (was batch {} at {}, updated {})",
                        cp.batch_id,
                        cp.position,
                        db_time(&cp.updated_at)
                    ),
                ),
                Ok(Deleted::Row(None)) => out.row("target checkpoint", "none to remove"),
                Ok(Deleted::NoTable) => out.row(
                    "target checkpoint",
                    "none to remove (sluice_meta.checkpoint does not exist)",
                ),
                Err(e) => {
                    failed = true;
                    warnings.push(format!(
                        "the position is set, but removing the target checkpoint failed ({e}); \
                         run `{manual_delete}` on {target_url} before starting the pipeline"
                    ));
                    out.row("target checkpoint", "NOT removed (see the warning)");
                }
            }
            loader.close().await;
        }
    }
    out.row("next run", format!("resumes at {}", record.position));
    print!("{}", out.render());
    for w in &warnings {
        eprintln!("sluice: warning: {w}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Who is running, for refusals: `None` when no leader key exists and no
/// node is registered.
fn running_text(e: &Election) -> Option<String> {
    let mut parts = Vec::new();
    if let Some((l, _)) = &e.leader {
        parts.push(format!(
            "node `{}` is active (leader since {})",
            display_id(&l.node_id),
            utc_ms(l.since_unix_ms)
        ));
    }
    let standbys: Vec<String> = e.standbys().map(|n| format!("`{}`", n.node_id)).collect();
    if !standbys.is_empty() {
        parts.push(format!("node(s) {} registered", standbys.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn describe_stored(s: &StoredPosition) -> String {
    format!(
        "{} (batch {}, written by {} at {})",
        s.position,
        s.batch_id,
        s.written_by,
        utc_ms(s.written_at_unix_ms)
    )
}

enum Deleted {
    Row(Option<Checkpoint>),
    NoTable,
}

/// Deletes the pipeline's checkpoint row; returns what it held.
async fn delete_checkpoint(loader: &sluice_load::Loader, name: &str) -> Result<Deleted, String> {
    let work = async {
        let before = match sluice_load::read_checkpoint(loader.pool(), name).await {
            Ok(cp) => cp,
            Err(e) if is_missing_table(&e) => return Ok(Deleted::NoTable),
            Err(e) => return Err(e.to_string()),
        };
        sqlx::query("DELETE FROM sluice_meta.checkpoint WHERE pipeline = ?")
            .bind(name)
            .execute(loader.pool())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Deleted::Row(before))
    };
    tokio::time::timeout(TARGET_TIMEOUT * 2, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", TARGET_TIMEOUT * 2)))
}

/// `operator@<host> (<user> via sluice positions set)`.
fn operator_id() -> String {
    let host = host_name();
    match std::env::var("USER").ok().filter(|u| !u.trim().is_empty()) {
        Some(user) => format!("operator@{host} ({user} via sluice positions set)"),
        None => format!("operator@{host} (via sluice positions set)"),
    }
    .chars()
    .filter(|c| !c.is_control())
    .take(200)
    .collect()
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    if name.is_empty() {
        "unknown-host".into()
    } else {
        name
    }
}

/// The file and offset right after GTID position `set` on the source:
/// the start of the first transaction not in it (or the end of the binlog).
///
/// MariaDB only: `BINLOG_GTID_POS(file, 4)` gives the GTID state at the
/// start of each binlog file; the newest file that starts at or before
/// `set` is scanned with `SHOW BINLOG EVENTS`, tracking the state across
/// its GTID events, until it equals `set`.
async fn resolve_gtid(pipeline: &Pipeline, set: GtidSet) -> anyhow::Result<Position> {
    let GtidSet::Mariadb(want) = &set else {
        anyhow::bail!(
            "--gtid alone is resolved to a binlog file and offset only on MariaDB sources; give \
             --file and --pos as well (with --gtid to record the set)"
        );
    };
    let source = pipeline.source.url();
    let mut conn =
        sluice_binlog::connect::connect(source.expose(), &pipeline.source.tls, SOURCE_TIMEOUT)
            .await?;
    let result = resolve_mariadb_gtid(&mut conn, want).await;
    let _ = conn.disconnect().await;
    let (file, offset) = result?.ok_or_else(|| {
        anyhow::anyhow!(
            "GTID position {set} is not a transaction boundary in the binlogs source {source} \
             still has; give --file and --pos instead"
        )
    })?;
    let mut position = Position::new(file, offset);
    position.gtid = Some(set);
    Ok(position)
}

async fn resolve_mariadb_gtid(
    conn: &mut mysql_async::Conn,
    want: &sluice_core::MariadbGtidSet,
) -> anyhow::Result<Option<(String, u64)>> {
    let same = |a: &sluice_core::MariadbGtidSet| a.is_at_or_after(want) && want.is_at_or_after(a);
    let files: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("SHOW BINARY LOGS on the source")?;
    let files: Vec<String> = files
        .into_iter()
        .filter_map(|r| r.get::<String, _>(0))
        .collect();
    for file in files.iter().rev() {
        let start: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (file.as_str(),))
            .await
            .context("BINLOG_GTID_POS on the source")?;
        // NULL: the server cannot say (e.g. the file is being purged).
        let Some(start) = start.flatten() else {
            continue;
        };
        let mut state: sluice_core::MariadbGtidSet = start
            .parse()
            .map_err(|e| anyhow::anyhow!("source GTID state `{start}` of {file}: {e}"))?;
        if !want.is_at_or_after(&state) {
            continue; // this file starts after `want`
        }
        let quoted = file.replace('\\', "\\\\").replace('\'', "\\'");
        let mut from = 4u64;
        let mut end = 4u64;
        loop {
            let page: Vec<mysql_async::Row> = conn
                .query(format!(
                    "SHOW BINLOG EVENTS IN '{quoted}' FROM {from} LIMIT {EVENTS_PAGE}"
                ))
                .await
                .with_context(|| format!("SHOW BINLOG EVENTS IN '{file}' on the source"))?;
            let count = page.len() as u64;
            for row in page {
                let pos: u64 = row.get(1).unwrap_or_default();
                let kind: String = row.get(2).unwrap_or_default();
                let end_pos: u64 = row.get(4).unwrap_or_default();
                let info: String = row.get(5).unwrap_or_default();
                end = end.max(end_pos);
                if kind == "Gtid" {
                    if same(&state) {
                        return Ok(Some((file.clone(), pos)));
                    }
                    if let Some(gtid) = gtid_of_info(&info) {
                        state.advance(gtid);
                    }
                }
            }
            if count < EVENTS_PAGE || end <= from {
                break;
            }
            from = end;
        }
        if same(&state) {
            return Ok(Some((file.clone(), end)));
        }
        // `want` lies before this file's first transaction boundary that
        // matches; an older file cannot hold it either (it started earlier
        // but `want` is not inside this one's range).
        return Ok(None);
    }
    Ok(None)
}

/// The GTID of a `Gtid` event's `Info` column: `BEGIN GTID 0-1-5`,
/// `GTID 0-1-5` (DDL), possibly followed by `cid=…`.
fn gtid_of_info(info: &str) -> Option<sluice_core::MariadbGtid> {
    let mut words = info.split_whitespace();
    words.find(|w| *w == "GTID")?;
    words.next()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn utc_ms(ms: u64) -> String {
    utc(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (proleptic Gregorian, UTC).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The checkpoint's `updated_at` (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC) in
/// the same form as the other times; anything else is shown as is.
fn db_time(text: &str) -> String {
    let b = text.as_bytes();
    let shaped = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if shaped {
        format!("{}T{}Z", &text[..10], &text[11..19])
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(utc_ms(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn db_times_are_normalised() {
        assert_eq!(
            db_time("2024-05-01 12:00:01.123456"),
            "2024-05-01T12:00:01Z"
        );
        assert_eq!(db_time("2024-05-01 12:00:01"), "2024-05-01T12:00:01Z");
        assert_eq!(db_time("soon"), "soon");
    }

    #[test]
    fn gtid_info_is_parsed() {
        let g = gtid_of_info("BEGIN GTID 0-1-5").expect("gtid");
        assert_eq!((g.domain, g.server_id, g.seq), (0, 1, 5));
        let g = gtid_of_info("GTID 2-3-40 cid=17").expect("gtid");
        assert_eq!((g.domain, g.server_id, g.seq), (2, 3, 40));
        assert!(gtid_of_info("COMMIT /* xid=5 */").is_none());
    }

    #[test]
    fn table_aligns_keys() {
        let mut t = Table::default();
        t.row("a", "1");
        t.row("longer", "2");
        assert_eq!(t.render(), "a       1\nlonger  2\n");
    }

    #[test]
    fn operator_id_is_a_valid_writer() {
        let id = operator_id();
        assert!(id.starts_with("operator@"), "{id}");
        assert!(!id.chars().any(char::is_control));
    }
}
