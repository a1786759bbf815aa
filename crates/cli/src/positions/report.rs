//! `sluice positions` and `sluice status`: what is read from the store and
//! the target ([`Report::collect`]), and how it is shown (tables, JSON).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Value};
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    read_leader, read_nodes, EtcdPositionStore, NodeRecord, PositionStore as _, StoredPosition,
};
use sluice_load::Checkpoint;

use super::time::{db_time, now_unix, utc, utc_ms};
use super::{
    display_id, etcd_client, etcd_read_error, is_missing_table, pipeline_keys, target_loader,
    Election, Table, ETCD_TIMEOUT, TARGET_TIMEOUT,
};

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
pub(super) struct Report {
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
    /// Continuous verification's record as the `"verify"` object (etcd
    /// coordination with `verify:` configured or a record present; else null).
    verify: Value,
}

/// One batch in flight on the task board, as `status` (and the admin
/// console) shows it.
#[derive(Debug, Clone)]
pub(crate) struct TaskView {
    pub(crate) batch_id: u64,
    /// `transforming`, `loading`, or the state it waits in.
    pub(crate) stage: String,
    /// The claiming node, or the node holding the batch's data.
    pub(crate) owner: String,
    pub(crate) age_ms: u64,
    pub(crate) rows: u64,
    pub(crate) load_attempts: u32,
}

impl TaskView {
    pub(crate) fn from_board(board: &sluice_coord::Board, now_ms: u64) -> Vec<TaskView> {
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
    pub(super) async fn collect(pipeline: &Pipeline) -> anyhow::Result<Report> {
        let mut tasks = Vec::new();
        let mut control = None;
        let mut verify = Value::Null;
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
                .map_err(|e| etcd_read_error(e, endpoints))?;
                tasks = TaskView::from_board(&board, sluice_core::time::unix_ms());
                control = Some(
                    sluice_coord::ControlStore::new(client.clone(), keys.clone(), ETCD_TIMEOUT)
                        .read()
                        .await
                        .map_err(|e| etcd_read_error(e, endpoints))?,
                );
                let record = sluice_coord::read_verify(&client, &keys, ETCD_TIMEOUT).await;
                verify = match record {
                    Ok(None) if pipeline.verify.is_none() => Value::Null,
                    Ok(r) => sluice_pipeline::verify::continuous::status_json(r.as_ref(), None),
                    Err(e) => {
                        sluice_pipeline::verify::continuous::status_json(None, Some(&e.to_string()))
                    }
                };
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
            verify,
        })
    }

    /// The acknowledged position, if one is stored.
    pub(super) fn acknowledged(&self) -> Option<&sluice_core::Position> {
        self.position.as_ref().map(|p| &p.position)
    }

    /// [`Self::lag_seconds`], for `switchover` and the peer's line in `status`.
    pub(super) fn lag_now(&self) -> Option<u64> {
        self.lag_seconds()
    }

    /// Lag as `sluice_pipeline::lag` defines it (the same as the nodes'
    /// `/status`): from the active node's applied-as-of time, else — no
    /// active node — from the acknowledged position's event time alone.
    fn lag_seconds(&self) -> Option<u64> {
        use sluice_pipeline::lag;
        let event_s = self.position.as_ref().and_then(|p| p.position.timestamp);
        let complete_at = self.active_progress().and_then(|p| p.applied_as_of_unix_ms);
        let now_ms = u64::try_from(self.now_unix).unwrap_or(0) * 1000;
        lag::lag_seconds(
            now_ms,
            lag::applied_as_of_ms(event_s.map(u64::from), complete_at),
        )
    }

    /// What the lag is measured from: `active_node` (the live lag the active
    /// node publishes) or `last_applied_change` (no active node publishes
    /// one: the acknowledged position's event time only).
    fn lag_basis(&self) -> &'static str {
        match self.active_progress() {
            Some(_) => "active_node",
            None => "last_applied_change",
        }
    }

    fn lag_text(&self) -> String {
        let Some(lag) = self.lag_seconds() else {
            return "unknown".into();
        };
        match (self.lag_basis(), &self.coordination) {
            ("active_node", _) => format!("{lag}s"),
            (_, Coordination::Local { .. }) => format!(
                "{lag}s since the last applied change (a local-coordination node publishes no live lag: see its /status)"
            ),
            _ => format!("{lag}s since the last applied change (no active node)"),
        }
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
            "lag_basis": self.lag_basis(),
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

    pub(super) fn positions_json(&self) -> Value {
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

    pub(super) fn status_json(&self) -> Value {
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
            // The published record, with the lag as of now (as everywhere).
            "stage_counters": self.active_progress().map_or(Value::Null, |p| {
                let mut p = json!(p);
                p["lag_seconds"] = json!(self.lag_seconds());
                p
            }),
            // The copy's progress as the active node published it.
            "snapshot": self.active_progress().and_then(|p| p.snapshot.clone()),
            "verify": self.verify,
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
        t.row("lag", self.lag_text());
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

    pub(super) fn positions_table(&self) -> String {
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

    pub(super) fn status_table(&self) -> String {
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
                t.row("lag", self.lag_text());
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
                let id = |b: Option<u64>| b.map_or_else(|| "-".into(), |b| b.to_string());
                t.row(
                    "",
                    format!(
                        "in flight {} batches; last batch cut {}, acknowledged {}, flushed {}; as of {}",
                        p.in_flight,
                        id(p.last_batch_cut),
                        id(p.acknowledged_batch),
                        id(p.flushed_batch),
                        utc_ms(p.updated_unix_ms)
                    ),
                );
            }
        }
        if let Some(snap) = self.active_progress().and_then(|p| p.snapshot.as_ref()) {
            snapshot_rows(&mut t, snap);
        }
        if !self.verify.is_null() {
            t.row("verify", crate::verify::status_text(&self.verify));
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

async fn read_checkpoint(loader: &sluice_load::Loader, name: &str) -> TargetState {
    let read = sluice_load::read_checkpoint(loader.pool(), name);
    match tokio::time::timeout(TARGET_TIMEOUT, read).await {
        Err(_) => TargetState::Unreachable(format!("no answer within {TARGET_TIMEOUT:?}")),
        Ok(Ok(cp)) => TargetState::Checkpoint(cp),
        Ok(Err(e)) if is_missing_table(&e) => TargetState::NotMigrated,
        Ok(Err(e)) => TargetState::Unreachable(e.to_string()),
    }
}

/// The snapshot's rows of the `status` table: its state, then a line per
/// table not yet copied (rows, chunks, rate, ETA).
fn snapshot_rows(t: &mut super::Table, snap: &Value) {
    let tables = snap["tables"].as_array().cloned().unwrap_or_default();
    let done = tables.iter().filter(|t| t["done"] == true).count();
    t.row(
        "snapshot",
        format!(
            "{}: {done}/{} tables copied, {} rows copied again after failovers",
            snap["state"].as_str().unwrap_or("?"),
            tables.len(),
            snap["rows_recopied"]
        ),
    );
    for table in tables.iter().filter(|t| t["done"] != true) {
        let num = |k: &str| {
            table[k]
                .as_f64()
                .map_or_else(|| "-".into(), |v| format!("{v:.0}"))
        };
        t.row(
            "",
            format!(
                "{}: {}/{} rows, chunks {}/{}, {} rows/s, ETA {} s",
                table["table"].as_str().unwrap_or("?"),
                num("rows_copied"),
                num("rows_estimated"),
                num("chunks_done"),
                num("chunks_total"),
                num("rows_per_s"),
                num("eta_s")
            ),
        );
    }
}
