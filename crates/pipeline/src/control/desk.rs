//! The active node's request desk: answers operator requests and
//! acknowledges pauses, for the length of one leadership.
//!
//! Requests are taken oldest first, one at a time; each is checked against
//! the control state it was read with and answered in one fenced etcd
//! transaction that also makes the change (and compares the records it
//! depends on), so an answer never disagrees with the state. What needs the
//! runtime — a handover's drain, a running Select's switch — is handed to it
//! and answered when done.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sluice_config::Pipeline;
use sluice_coord::{
    Acknowledgement, ControlCheck, ControlState, ControlWrite, CoordError, Fence, HaltRecord,
    HistoryRecord, HistoryState, Outcome, OutcomeState, RequestKind, Resolution, Skip, SkipScope,
    StoredRequest,
};
use sluice_core::time::unix_ms;
use sluice_load::TermFence;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::switch::{SwitchOrder, CATCH_UP};
use super::Control;
use crate::batch::is_before;
use crate::status::NodeStatus;

/// A handover the desk accepted, for the runtime to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverOrder {
    pub request: String,
    /// `None`: any standby.
    pub to: Option<String>,
}

/// Where the running term's Select takes switch orders (empty between
/// terms).
pub type SwitchSlot = Arc<Mutex<Option<mpsc::Sender<SwitchOrder>>>>;

/// What the desk of one leadership works with.
#[derive(Clone)]
pub struct DeskContext {
    pub control: Control,
    pub fence: Fence,
    pub node_id: String,
    pub pipeline: Pipeline,
    pub status: NodeStatus,
    pub handover: watch::Sender<Option<HandoverOrder>>,
    pub switch: SwitchSlot,
    /// Where the running term takes re-copy orders.
    pub recopy: crate::snapshot::recopy::RecopySlot,
}

/// The desk's tasks; stopped when the leadership ends.
pub struct Desk {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Desk {
    /// Starts answering requests and acknowledging pauses until `lost`
    /// or [`Desk::stop`].
    pub fn spawn(ctx: DeskContext, lost: CancellationToken) -> Desk {
        let stop = lost.child_token();
        let tasks = vec![
            tokio::spawn(requests(ctx.clone(), stop.clone())),
            tokio::spawn(acknowledge_pauses(ctx, stop.clone())),
        ];
        Desk { stop, tasks }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Answers `request` (still as read) with `state`/`message`, together with
/// `writes` and under `checks`; `Ok(false)` when a check failed.
pub async fn answer(
    ctx: &DeskContext,
    request: &StoredRequest,
    state: OutcomeState,
    message: &str,
    details: serde_json::Value,
    mut checks: Vec<ControlCheck>,
    mut writes: Vec<ControlWrite>,
) -> Result<bool, CoordError> {
    let mut answered = request.request.clone();
    answered.outcome = Some(Outcome {
        state,
        node: ctx.node_id.clone(),
        at_unix_ms: unix_ms(),
        message: message.to_string(),
        details,
    });
    checks.push(ControlCheck::Request {
        key: request.key.clone(),
        mod_revision: request.mod_revision,
    });
    writes.push(ControlWrite::Answer {
        key: request.key.clone(),
        lease: request.lease,
        request: answered,
    });
    ctx.control.store().write(&ctx.fence, &checks, writes).await
}

/// Answers request `id` as it is now (after the runtime carried it out).
pub async fn answer_by_id(
    ctx: &DeskContext,
    id: &str,
    state: OutcomeState,
    message: &str,
    details: serde_json::Value,
) -> Result<(), CoordError> {
    if let Some(request) = ctx.control.store().request(id).await? {
        answer(ctx, &request, state, message, details, vec![], vec![]).await?;
    }
    Ok(())
}

/// Why a request does not apply now (one line, for the operator).
struct Refusal(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

async fn requests(ctx: DeskContext, stop: CancellationToken) {
    let mut rx = ctx.control.subscribe();
    let mut handled: HashSet<String> = HashSet::new();
    loop {
        rx.borrow_and_update();
        // One request at a time, each against a fresh read of the state
        // (the previous answer may have changed it).
        loop {
            if stop.is_cancelled() {
                return;
            }
            let state = match ctx.control.refresh(&ctx.status).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "reading the control records failed");
                    break;
                }
            };
            let mut next = None;
            for r in &state.requests {
                if r.is_pending() && !handled.contains(&r.id) {
                    next = Some(r.clone());
                    break;
                }
            }
            let Some(request) = next else {
                break;
            };
            handled.insert(request.id.clone());
            tracing::info!(request = %request.id, kind = request.request.kind.name(), operator = %request.request.operator, "operator request");
            if let Err(error) = handle(&ctx, &state, &request).await {
                // The request stays pending (a new leader may answer it) or
                // expires with its lease.
                tracing::warn!(request = %request.id, %error, "answering an operator request failed");
                if error.is_fenced_out() {
                    return;
                }
                handled.remove(&request.id);
                break;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            // A request whose answer failed transiently is tried again.
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn handle(
    ctx: &DeskContext,
    state: &ControlState,
    request: &StoredRequest,
) -> Result<(), CoordError> {
    let outcome = match &request.request.kind {
        RequestKind::Retry => retry(ctx, state, request).await,
        RequestKind::Skip { scope } => skip(ctx, state, request, *scope, None).await,
        RequestKind::Replace { sql, file } => replace(ctx, state, request, sql, file).await,
        RequestKind::Handover { to } => handover(ctx, request, to.as_deref()).await,
        RequestKind::Snapshot { tables } => recopy(ctx, request, tables).await,
        RequestKind::SourceSwitch { index, address } => {
            source_switch(ctx, request, *index, address.as_deref()).await
        }
    };
    match outcome {
        Ok(Some(())) => Ok(()),
        Ok(None) => {
            answer(
                ctx,
                request,
                OutcomeState::Refused,
                "the pipeline's state changed while the request was handled; check `sluice errors` and try again",
                json!(null),
                vec![],
                vec![],
            )
            .await
            .map(|_| ())
        }
        Err(Refusal(why)) => {
            tracing::info!(request = %request.id, reason = %why, "operator request refused");
            answer(
                ctx,
                request,
                OutcomeState::Refused,
                &why,
                json!(null),
                vec![],
                vec![],
            )
            .await
            .map(|_| ())
        }
    }
}

/// `Ok(Some(()))` answered; `Ok(None)` the state changed; `Err` refused.
type Handled = Result<Option<()>, Refusal>;

fn halted(state: &ControlState) -> Result<(&HaltRecord, i64), Refusal> {
    match &state.halt {
        Some(h) => Ok((&h.value, h.mod_revision)),
        None => refuse("the pipeline is not halted (`sluice errors` shows its state)"),
    }
}

fn history(
    ctx: &DeskContext,
    request: &StoredRequest,
    action: &str,
    halt: &HaltRecord,
) -> HistoryRecord {
    HistoryRecord {
        request: request.id.clone(),
        action: action.into(),
        scope: None,
        operator: request.request.operator.clone(),
        requested_at_unix_ms: request.request.requested_at_unix_ms,
        node: ctx.node_id.clone(),
        accepted_at_unix_ms: unix_ms(),
        state: HistoryState::InProgress,
        completed_at_unix_ms: None,
        error: halt.clone(),
        sql: None,
        sql_file: None,
        skipped: Vec::new(),
        truncated: false,
    }
}

fn history_key(ctx: &DeskContext, request: &StoredRequest) -> Result<String, Refusal> {
    ctx.control
        .store()
        .keys()
        .control_history_entry(unix_ms(), &request.id)
        .map_err(|e| Refusal(e.to_string()))
}

async fn retry(ctx: &DeskContext, state: &ControlState, request: &StoredRequest) -> Handled {
    let (halt, revision) = halted(state)?;
    let mut record = history(ctx, request, "retry", halt);
    record.state = HistoryState::Done;
    record.completed_at_unix_ms = Some(record.accepted_at_unix_ms);
    let key = history_key(ctx, request)?;
    let from = halt
        .batch
        .as_ref()
        .and_then(|b| b.start.as_ref())
        .map_or_else(
            || "the last acknowledged position".to_string(),
            ToString::to_string,
        );
    let message = format!("halt cleared; replaying from {from}");
    write(
        ctx,
        request,
        &message,
        vec![ControlCheck::Halt(revision)],
        vec![
            ControlWrite::DeleteHalt,
            ControlWrite::PutHistory {
                key,
                record: Box::new(record),
            },
        ],
    )
    .await
}

async fn write(
    ctx: &DeskContext,
    request: &StoredRequest,
    message: &str,
    checks: Vec<ControlCheck>,
    writes: Vec<ControlWrite>,
) -> Handled {
    match answer(
        ctx,
        request,
        OutcomeState::Done,
        message,
        json!(null),
        checks,
        writes,
    )
    .await
    {
        Ok(true) => {
            tracing::info!(request = %request.id, "{message}");
            Ok(Some(()))
        }
        Ok(false) => Ok(None),
        Err(e) => refuse(format!("etcd: {e}")),
    }
}

/// What skip and replace need of the halt.
fn skippable(halt: &HaltRecord, scope: SkipScope) -> Result<Skip, Refusal> {
    if halt.distributed {
        return refuse(
            "skip and replace need the in-process Load; with distributed stages (`stages:`) fix the target and run `sluice errors retry`",
        );
    }
    let Some(batch) = &halt.batch else {
        return refuse(format!(
            "this halt is not about a change the target refused (stage {}: {}); fix the cause and run `sluice errors retry`",
            halt.stage, halt.message
        ));
    };
    let ddl = batch.ddl.is_some();
    let failure = halt.failure.clone().unwrap_or_default();
    if !ddl && scope != SkipScope::Batch && failure.key_values.is_none() {
        return refuse(format!(
            "the target's error does not name the failing row exactly ({}); use `--scope batch`, or fix the target and `sluice errors retry`",
            failure.key.as_deref().unwrap_or("no row named")
        ));
    }
    Ok(Skip {
        request: String::new(),
        history_key: String::new(),
        scope,
        from: batch.start.clone(),
        through: batch.through.clone(),
        table: failure.table,
        key_values: failure.key_values,
        ddl,
    })
}

/// The resolution with `skip` added.
fn with_skip(existing: Option<&Resolution>, skip: Skip) -> Resolution {
    let mut r = existing.cloned().unwrap_or(Resolution {
        from: skip.from.clone(),
        through: skip.through.clone(),
        skips: Vec::new(),
    });
    r.from = match (&r.from, &skip.from) {
        (Some(a), Some(b)) if is_before(b, a) => Some(b.clone()),
        (Some(a), Some(_)) => Some(a.clone()),
        _ => None,
    };
    if is_before(&r.through, &skip.through) {
        r.through = skip.through.clone();
    }
    r.skips.push(skip);
    r
}

async fn skip(
    ctx: &DeskContext,
    state: &ControlState,
    request: &StoredRequest,
    scope: SkipScope,
    replaced: Option<(&str, &str)>,
) -> Handled {
    let (halt, revision) = halted(state)?;
    let mut skip = skippable(halt, scope)?;
    let key = history_key(ctx, request)?;
    skip.request = request.id.clone();
    skip.history_key = key.clone();
    let resolution = with_skip(state.resolution.as_ref().map(|r| &r.value), skip);
    let action = if replaced.is_some() {
        "replace"
    } else {
        "skip"
    };
    let mut record = history(ctx, request, action, halt);
    record.scope = Some(scope);
    if let Some((sql, file)) = replaced {
        record.sql = Some(sql.to_string());
        record.sql_file = Some(file.to_string());
    }
    let what = match (&halt.failure, scope) {
        (_, SkipScope::Batch) => "the halted batch".to_string(),
        (Some(f), s) => format!(
            "the {} of {} {}",
            if s == SkipScope::Change {
                "changes"
            } else {
                "transaction(s)"
            },
            f.table.as_deref().unwrap_or("the table"),
            f.key.as_deref().unwrap_or_default()
        ),
        (None, _) => "the halted DDL statement".into(),
    };
    let message = match replaced {
        Some(_) => format!("replacement statements applied instead of {what}; resuming"),
        None => format!("skipping {what}; resuming"),
    };
    write(
        ctx,
        request,
        &message,
        vec![
            ControlCheck::Halt(revision),
            ControlCheck::Resolution(state.resolution.as_ref().map_or(0, |r| r.mod_revision)),
        ],
        vec![
            ControlWrite::DeleteHalt,
            ControlWrite::PutResolution(resolution),
            ControlWrite::PutHistory {
                key,
                record: Box::new(record),
            },
        ],
    )
    .await
}

async fn replace(
    ctx: &DeskContext,
    state: &ControlState,
    request: &StoredRequest,
    sql: &str,
    file: &str,
) -> Handled {
    let (halt, _) = halted(state)?;
    skippable(halt, SkipScope::Change)?;
    if sql.trim().is_empty() {
        return refuse(format!("{file} holds no statement"));
    }
    let Some(term) = ctx.fence.leader_revision() else {
        return refuse("replace needs coordination.etcd");
    };
    let fence = TermFence {
        pipeline: ctx.pipeline.name.clone(),
        term,
        node: ctx.node_id.clone(),
    };
    let loader = crate::open::loader_with_term(&ctx.pipeline, Some(fence))
        .await
        .map_err(|e| Refusal(format!("target: {e}")))?;
    let ran = run_replacement(&loader, &ctx.pipeline.name, &request.id, sql).await;
    loader.close().await;
    match ran {
        Ok(ran) => {
            tracing::info!(request = %request.id, ran_now = ran, file, "replacement statements applied on the target");
        }
        Err(e) => {
            return refuse(format!(
                "the target refused the replacement statements of {file}, nothing was changed and the pipeline stays halted: {e}"
            ))
        }
    }
    match skip(ctx, state, request, SkipScope::Change, Some((sql, file))).await {
        Ok(None) => refuse(
            "the statements ran on the target, but the pipeline's state changed meanwhile; run `sluice errors skip --scope change` to drop the failing change",
        ),
        other => other,
    }
}

/// Runs the replacement exactly once (see [`sluice_load::Loader::apply_replacement`]).
async fn run_replacement(
    loader: &sluice_load::Loader,
    pipeline: &str,
    request: &str,
    sql: &str,
) -> Result<bool, sluice_load::LoadError> {
    // Not `migrate()`: its future is not `Send`, and every term migrates
    // before it runs (a target never migrated to this version says so in
    // the refusal: run `sluice migrate`).
    loader.claim_term().await?;
    match loader.apply_replacement(pipeline, request, sql).await {
        Ok(ran) => Ok(ran),
        // The commit's answer may have been lost: the record says.
        Err(e) => match loader.replacement_applied(pipeline, request).await {
            Ok(true) => Ok(false),
            _ => Err(e),
        },
    }
}

async fn handover(ctx: &DeskContext, request: &StoredRequest, to: Option<&str>) -> Handled {
    let nodes = sluice_coord::read_nodes(ctx.control.store().client(), ctx.control.store().keys())
        .await
        .map_err(|e| Refusal(format!("reading the registered nodes: {e}")))?;
    let standbys: Vec<&str> = nodes
        .iter()
        .map(|n| n.node_id.as_str())
        .filter(|n| *n != ctx.node_id)
        .collect();
    match to {
        Some(n) if n == ctx.node_id => {
            return refuse(format!("node {n} is already the active node"))
        }
        Some(n) if !standbys.contains(&n) => {
            return refuse(format!(
                "node {n} is not registered for this pipeline (standbys: {})",
                if standbys.is_empty() {
                    "none".to_string()
                } else {
                    standbys.join(", ")
                }
            ))
        }
        None if standbys.is_empty() => return refuse("no standby is registered to hand over to"),
        _ => {}
    }
    let message = format!(
        "handing over to {}: draining batches in flight",
        to.unwrap_or("any standby")
    );
    match answer(
        ctx,
        request,
        OutcomeState::Accepted,
        &message,
        json!({"from": ctx.node_id, "to": to}),
        vec![],
        vec![],
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return refuse(format!("etcd: {e}")),
    }
    tracing::info!(request = %request.id, to = %to.unwrap_or("any standby"), "handover accepted");
    ctx.handover.send_replace(Some(HandoverOrder {
        request: request.id.clone(),
        to: to.map(str::to_string),
    }));
    Ok(Some(()))
}

async fn source_switch(
    ctx: &DeskContext,
    request: &StoredRequest,
    index: Option<usize>,
    address: Option<&str>,
) -> Handled {
    let urls = &ctx.pipeline.source.urls;
    if urls.len() < 2 {
        return refuse("source.urls lists one server: there is nothing to switch to");
    }
    let current = ctx
        .status
        .source_url()
        .and_then(|u| urls.iter().position(|x| x.redacted() == u))
        .or_else(|| {
            ctx.control
                .current()
                .source
                .map(|s| s.value.index)
                .filter(|i| *i < urls.len())
        })
        .unwrap_or(0);
    let to = match (index, address) {
        (Some(i), Some(a)) if i < urls.len() && urls[i].address() == a => i,
        (Some(_), Some(a)) => {
            return refuse(format!(
                "{a} is not an entry of the active node's source.urls ({})",
                urls.iter()
                    .map(|u| u.address())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => (current + 1) % urls.len(),
    };
    if to == current {
        return refuse(format!("already reading from {}", urls[to].redacted()));
    }
    let choice = sluice_coord::SourceChoice {
        index: to,
        address: urls[to].address(),
        operator: request.request.operator.clone(),
        at_unix_ms: unix_ms(),
    };
    let sender = ctx.switch.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let message = match sender {
        None => format!(
            "replication is not running; it will read from {} when it resumes",
            urls[to].redacted()
        ),
        Some(sender) => {
            let (reply, answer_rx) = tokio::sync::oneshot::channel();
            if sender.send(SwitchOrder { index: to, reply }).await.is_err() {
                return refuse("replication stopped before the switch; try again");
            }
            match tokio::time::timeout(CATCH_UP + Duration::from_secs(30), answer_rx).await {
                Ok(Ok(Ok(gtid))) => format!("switched to {} at GTID {gtid}", urls[to].redacted()),
                Ok(Ok(Err(why))) => return refuse(why),
                Ok(Err(_)) => return refuse("replication stopped before the switch; try again"),
                Err(_) => return refuse("Select did not take the switch in time; try again"),
            }
        }
    };
    write(
        ctx,
        request,
        &message,
        vec![],
        vec![ControlWrite::PutSource(choice)],
    )
    .await
}

/// `sluice snapshot --table`: handed to the running term, answered with
/// what it did (see [`crate::snapshot::recopy`]).
async fn recopy(ctx: &DeskContext, request: &StoredRequest, tables: &[String]) -> Handled {
    if ctx.pipeline.stages.is_some() {
        return refuse("a re-copy needs the in-process stream: not with `stages:`");
    }
    let sender = ctx.recopy.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(sender) = sender else {
        return refuse("replication is not running on the active node; try again when it streams");
    };
    let (reply, answer_rx) = tokio::sync::oneshot::channel();
    let order = crate::snapshot::recopy::RecopyOrder {
        tables: tables.to_vec(),
        reply,
    };
    if sender.send(order).await.is_err() {
        return refuse("replication stopped before the re-copy started; try again");
    }
    let message = match tokio::time::timeout(Duration::from_secs(60), answer_rx).await {
        Ok(Ok(Ok(message))) => message,
        Ok(Ok(Err(why))) => return refuse(why),
        Ok(Err(_)) => return refuse("replication stopped before the re-copy started; try again"),
        Err(_) => return refuse("the term did not take the re-copy in time; try again"),
    };
    write(ctx, request, &message, vec![], vec![]).await
}

/// Acknowledges every pause once no batch of this node is being applied.
async fn acknowledge_pauses(ctx: DeskContext, stop: CancellationToken) {
    let mut rx = ctx.control.subscribe();
    let gate = ctx.control.gate();
    let term = ctx.fence.leader_revision();
    loop {
        let state = rx.borrow_and_update().clone();
        if let Some(p) = &state.pause {
            let mine = p
                .value
                .acknowledged
                .as_ref()
                .is_some_and(|a| a.node == ctx.node_id && a.term == term);
            if !mine {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = gate.wait_idle() => {}
                }
                // The node record first: once the pause is acknowledged,
                // `sluice status` reads the lag from the last applied batch.
                ctx.status.publish_now(Duration::from_secs(2)).await;
                let mut record = p.value.clone();
                record.acknowledged = Some(Acknowledgement {
                    node: ctx.node_id.clone(),
                    term,
                    at_unix_ms: unix_ms(),
                });
                match ctx
                    .control
                    .store()
                    .write(
                        &ctx.fence,
                        &[ControlCheck::Pause(p.mod_revision)],
                        vec![ControlWrite::PutPause(record)],
                    )
                    .await
                {
                    Ok(true) => {
                        tracing::info!(operator = %p.value.operator, "pause acknowledged: no batch is being applied")
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "acknowledging the pause failed"),
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}
