//! Operator control: `sluice errors [skip|replace|retry]`, `sluice pause`,
//! `sluice resume`, `sluice handover` and `sluice source switch`.
//!
//! Each reads the pipeline file (`--config`) for the pipeline's name and
//! its etcd; the records they read and write are described in
//! [`sluice_coord::control`], what the active node does with them in
//! [`sluice_pipeline::control`]. They need `coordination.etcd`.
//!
//! * `errors` shows whether the pipeline is halted, its error, a resolution
//!   in force, the pause, and the history of resolutions (each with
//!   operator@host, time and the skipped or replaced row images). Exit 0
//!   whenever it could read the state (`"halted": false` when running).
//! * `errors skip|replace|retry`, `handover` and `source switch` submit a
//!   request (under a lease of this process, so an unanswered request never
//!   acts later) and wait for the active node's answer: printed, exit 0 when
//!   done, exit 1 with the one-line reason when refused or unanswered.
//! * `pause` records the pause and waits until the active node confirms that
//!   no batch is being applied any more (having first published its node
//!   record, so that `sluice status` then shows the lag of the last applied
//!   batch, growing while paused); `resume` deletes it.
//!
//! Every command refuses with one message and exit 1 when the pipeline is
//! not in a state it applies to (not halted, already paused, no active
//! node, a `--to` that is not an entry of `source.urls`, ...). `--json`
//! prints one JSON object instead of text (on refusal too, besides the
//! message on stderr).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    read_leader, ControlStore, EtcdOptions, HistoryRecord, KeyLayout, OutcomeState, PauseRecord,
    Request, RequestKind, SkipScope,
};
use sluice_core::time::{unix_ms, utc_rfc3339_ms};

/// Deadline of each etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `pause` waits for the active node's confirmation.
const PAUSE_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest replacement file.
const MAX_SQL_BYTES: usize = 256 * 1024;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ErrorsArgs {
    #[command(subcommand)]
    command: Option<ErrorsCommand>,
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum ErrorsCommand {
    /// Skip the failing change (or its batch, or its source transaction)
    /// and resume.
    Skip(SkipArgs),
    /// Run the statements of FILE on the target instead of the failing
    /// change, then resume.
    Replace(ReplaceArgs),
    /// Clear the halt and try the failed batch again (after fixing the
    /// target).
    Retry(CommonArgs),
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scope {
    Change,
    Batch,
    Transaction,
}

#[derive(Debug, clap::Args)]
pub struct SkipArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// What to skip: the failing row's changes in the halted batch
    /// (`change`), the whole batch, or the source transaction(s) changing
    /// the row (`transaction`, including its later slices when split).
    #[arg(long, value_enum, default_value_t = Scope::Change)]
    scope: Scope,
}

#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// SQL statements (`;`-separated) to run on the target, in one
    /// transaction, instead of the failing change.
    #[arg(long, value_name = "FILE")]
    sql: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct HandoverArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The node to hand over to (a registered standby); default: any.
    #[arg(long, value_name = "NODE")]
    to: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A source table (`schema.table`) to copy again while streaming;
    /// repeat for more.
    #[arg(long = "table", value_name = "SCHEMA.TABLE", required = true)]
    tables: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SourceCommand {
    /// Move the active node to another server of `source.urls` now,
    /// continuing by GTID.
    Switch(SwitchArgs),
}

#[derive(Debug, clap::Args)]
pub struct SwitchArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// An entry of `source.urls`, as written or as `host:port`; default: the
    /// entry after the one in use.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
}

/// A refusal: one line for the operator.
struct Refused(String);

/// Prints `value` (JSON) or `text`, exit 0.
fn print_ok(json_out: bool, value: Value, text: &str) -> ExitCode {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{text}");
    }
    ExitCode::SUCCESS
}

/// Prints the refusal, exit 1.
fn print_refused(json_out: bool, action: &str, why: &str) -> ExitCode {
    eprintln!("sluice: {action} refused: {why}");
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"action": action, "state": "refused", "message": why})
            )
            .unwrap_or_default()
        );
    }
    ExitCode::FAILURE
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

/// The pipeline's control store, or why there is none.
async fn store(pipeline: &Pipeline) -> anyhow::Result<Result<ControlStore, Refused>> {
    let Coordination::Etcd {
        endpoints,
        prefix,
        tls,
        auth,
    } = &pipeline.coordination
    else {
        return Ok(Err(Refused(format!(
            "operator control needs coordination.etcd; pipeline `{}` uses coordination.local (stop `sluice run` to stop it)",
            pipeline.name
        ))));
    };
    let keys = KeyLayout::new(prefix)?.pipeline(&pipeline.name)?;
    let mut options = EtcdOptions::new(endpoints.clone()).with_security(tls.clone(), auth.clone());
    options.request_timeout = ETCD_TIMEOUT;
    let client = sluice_coord::etcd::connect(&options)
        .await
        .context("connecting to etcd")?;
    Ok(Ok(ControlStore::new(client, keys, ETCD_TIMEOUT)))
}

/// Loads the config and the store, or prints why not.
async fn open(
    config: &Path,
    json_out: bool,
    action: &str,
) -> anyhow::Result<Result<(Pipeline, ControlStore), ExitCode>> {
    let Some(pipeline) = load_config(config) else {
        return Ok(Err(ExitCode::FAILURE));
    };
    match store(&pipeline).await? {
        Ok(store) => Ok(Ok((pipeline, store))),
        Err(Refused(why)) => Ok(Err(print_refused(json_out, action, &why))),
    }
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

/// `sluice errors [skip|replace|retry]`.
pub async fn errors(args: ErrorsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ErrorsCommand::Skip(a)) => {
            let scope = match a.scope {
                Scope::Change => SkipScope::Change,
                Scope::Batch => SkipScope::Batch,
                Scope::Transaction => SkipScope::Transaction,
            };
            resolve(&a.common, RequestKind::Skip { scope }).await
        }
        Some(ErrorsCommand::Replace(a)) => {
            let sql = match std::fs::read(&a.sql) {
                Ok(bytes) if bytes.len() > MAX_SQL_BYTES => {
                    return Ok(print_refused(
                        a.common.json,
                        "replace",
                        &format!("{} is larger than {MAX_SQL_BYTES} bytes", a.sql.display()),
                    ))
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) if !text.trim().is_empty() => text,
                    Ok(_) => {
                        return Ok(print_refused(
                            a.common.json,
                            "replace",
                            &format!("{} holds no statement", a.sql.display()),
                        ))
                    }
                    Err(_) => {
                        return Ok(print_refused(
                            a.common.json,
                            "replace",
                            &format!("{} is not UTF-8", a.sql.display()),
                        ))
                    }
                },
                Err(e) => {
                    return Ok(print_refused(
                        a.common.json,
                        "replace",
                        &format!("cannot read {}: {e}", a.sql.display()),
                    ))
                }
            };
            let file = a.sql.display().to_string();
            resolve(&a.common, RequestKind::Replace { sql, file }).await
        }
        Some(ErrorsCommand::Retry(a)) => resolve(&a, RequestKind::Retry).await,
        None => {
            let Some(config) = args.config else {
                anyhow::bail!("--config FILE is required");
            };
            show(&config, args.json).await
        }
    }
}

/// Skip, replace or retry: only while halted.
async fn resolve(common: &CommonArgs, kind: RequestKind) -> anyhow::Result<ExitCode> {
    let action = kind.name();
    let (pipeline, store) = match open(&common.config, common.json, action).await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let state = store
        .read()
        .await
        .context("reading the pipeline's control records")?;
    if state.halt.is_none() {
        return Ok(print_refused(
            common.json,
            action,
            &format!(
                "pipeline `{}` is not halted (`sluice errors` shows its state)",
                pipeline.name
            ),
        ));
    }
    request(&store, &pipeline, kind, common.json).await
}

async fn show(config: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let (pipeline, store) = match open(config, json_out, "errors").await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let (state, history) = tokio::try_join!(store.read(), store.history())
        .context("reading the pipeline's control records")?;
    if json_out {
        let value = json!({
            "pipeline": pipeline.name,
            "halted": state.halt.is_some(),
            "error": state.halt.as_ref().map(|h| &h.value),
            "resolution": state.resolution.as_ref().map(|r| &r.value),
            "paused": state.pause.as_ref().map(|p| &p.value),
            "source": state.source.as_ref().map(|s| &s.value),
            "history": history.iter().map(|(_, h)| h).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::default();
    t.row("pipeline", &pipeline.name);
    match &state.halt {
        None => t.row("halted", "no"),
        Some(h) => {
            let h = &h.value;
            t.row(
                "halted",
                format!(
                    "yes, since {} by {} (stage {})",
                    utc_rfc3339_ms(h.halted_at_unix_ms),
                    if h.node.is_empty() { "?" } else { &h.node },
                    h.stage
                ),
            );
            t.row("error", &h.message);
            if let Some(b) = &h.batch {
                t.row(
                    "batch",
                    format!(
                        "{} ({} rows) from {} through {}",
                        b.id,
                        b.rows,
                        b.start
                            .as_ref()
                            .map_or_else(|| "the start".into(), ToString::to_string),
                        b.through
                    ),
                );
                if let Some(ddl) = &b.ddl {
                    t.row("ddl", ddl);
                }
            }
            if let Some(f) = &h.failure {
                if let Some(table) = &f.table {
                    t.row("table", table);
                }
                if let Some(key) = &f.key {
                    t.row(
                        "key",
                        format!(
                            "{key}{}",
                            if f.key_values.is_some() {
                                ""
                            } else {
                                " (not named exactly by the server)"
                            }
                        ),
                    );
                }
                if let Some(s) = &f.statement {
                    t.row("statement", one_line(s, 200));
                }
                if let Some(s) = &f.server {
                    t.row(
                        "server",
                        format!(
                            "error {}{}: {}",
                            s.code,
                            s.sqlstate
                                .as_ref()
                                .map_or_else(String::new, |st| format!(" ({st})")),
                            s.message
                        ),
                    );
                }
            }
            t.row(
                "resolve with",
                "sluice errors skip [--scope change|batch|transaction] | replace --sql FILE | retry",
            );
        }
    }
    if let Some(r) = &state.resolution {
        t.row(
            "resolution",
            format!(
                "{} skip(s) in force until the replay passes {}",
                r.value.skips.len(),
                r.value.through
            ),
        );
    }
    t.row(
        "paused",
        match &state.pause {
            None => "no".to_string(),
            Some(p) => format!(
                "yes, by {} since {}{}",
                p.value.operator,
                utc_rfc3339_ms(p.value.paused_at_unix_ms),
                p.value
                    .acknowledged
                    .as_ref()
                    .map_or_else(String::new, |a| format!(" (held by {})", a.node))
            ),
        },
    );
    if history.is_empty() {
        t.row("history", "none");
    }
    for (i, (_, h)) in history.iter().enumerate() {
        t.row(if i == 0 { "history" } else { "" }, history_line(h));
        for c in &h.skipped {
            let image = c.after.as_ref().or(c.before.as_ref()).map_or_else(
                || c.ddl.clone().unwrap_or_default(),
                |cols| {
                    cols.iter()
                        .map(|cv| {
                            format!(
                                "{}={}",
                                cv.column,
                                serde_json::to_string(&cv.value).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            t.row(
                "",
                format!("  {} {} {}", c.kind, c.table, one_line(&image, 200)),
            );
        }
    }
    print!("{}", t.render());
    Ok(ExitCode::SUCCESS)
}

fn history_line(h: &HistoryRecord) -> String {
    format!(
        "{} {}{} by {} via {} ({}; {} change(s){}): {}",
        utc_rfc3339_ms(h.accepted_at_unix_ms),
        h.action,
        h.scope
            .map_or_else(String::new, |s| format!(" --scope {}", s.name())),
        h.operator,
        h.node,
        match h.state {
            sluice_coord::HistoryState::Done => "done",
            sluice_coord::HistoryState::InProgress => "in progress",
        },
        h.skipped.len(),
        if h.truncated {
            ", more not recorded"
        } else {
            ""
        },
        one_line(&h.error.message, 120)
    )
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Submits `kind`, waits for the active node's answer and prints it.
async fn request(
    store: &ControlStore,
    pipeline: &Pipeline,
    kind: RequestKind,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let action = kind.name();
    let Some((leader, _)) = read_leader(store.client(), store.keys()).await? else {
        return Ok(print_refused(
            json_out,
            action,
            &format!(
                "no node is active for pipeline `{}` (start one with `sluice run`)",
                pipeline.name
            ),
        ));
    };
    let submitted = Instant::now();
    let (id, lease) = store
        .submit(&Request {
            kind,
            operator: sluice_pipeline::control::operator(),
            requested_at_unix_ms: unix_ms(),
            outcome: None,
        })
        .await
        .context("submitting the request")?;
    let outcome = loop {
        match store.request(&id).await {
            Ok(Some(r)) => match r.request.outcome {
                Some(o) if o.state != OutcomeState::Accepted => break Some(o),
                _ => {}
            },
            Ok(None) => break None,
            Err(e) => tracing::debug!(error = %e, "reading the request"),
        }
        if submitted.elapsed() >= ANSWER_TIMEOUT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    store.withdraw(lease).await;
    let Some(outcome) = outcome else {
        return Ok(print_refused(
            json_out,
            action,
            &format!(
                "no answer from the active node ({}) within {ANSWER_TIMEOUT:?}; the request was withdrawn",
                leader.node_id
            ),
        ));
    };
    if outcome.state == OutcomeState::Refused {
        return Ok(print_refused(json_out, action, &outcome.message));
    }
    let mut value = json!({
        "action": action,
        "request": id,
        "state": "done",
        "node": outcome.node,
        "message": outcome.message,
        "details": outcome.details,
        "answered_ms": submitted.elapsed().as_millis() as u64,
    });
    let mut text = format!("{action}: {} (by {})", outcome.message, outcome.node);
    if action == "handover" {
        // Done means resigned: wait for the new active node.
        let from = outcome.node.clone();
        let resigned = Instant::now();
        let started = Instant::now();
        let new_leader = loop {
            if let Ok(Some((l, _))) = read_leader(store.client(), store.keys()).await {
                if l.node_id != from && l.handover_to.is_none() {
                    break Some(l.node_id);
                }
            }
            if started.elapsed() >= Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match new_leader {
            Some(n) => {
                let ms = resigned.elapsed().as_millis() as u64;
                value["new_active"] = json!(n);
                value["elected_after_ms"] = json!(ms);
                text.push_str(&format!(
                    "\nhandover: {n} is active ({ms} ms after {from} resigned)"
                ));
            }
            None => {
                return Ok(print_refused(
                    json_out,
                    action,
                    &format!("{from} resigned, but no other node took over within 30 s"),
                ))
            }
        }
    }
    Ok(print_ok(json_out, value, &text))
}

/// `sluice handover`.
pub async fn handover(args: HandoverArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, store) = match open(&args.common.config, args.common.json, "handover").await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if let Some(to) = &args.to {
        if sluice_coord::keys::check_node_id(to).is_err() {
            return Ok(print_refused(
                args.common.json,
                "handover",
                &format!("`{to}` is not a node id"),
            ));
        }
    }
    request(
        &store,
        &pipeline,
        RequestKind::Handover { to: args.to },
        args.common.json,
    )
    .await
}

/// `sluice snapshot --table db.t`: the active node re-copies the tables
/// while it streams; the answer says it started (`sluice status` shows the
/// progress).
pub async fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, store) = match open(&args.common.config, args.common.json, "snapshot").await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if let Some(bad) = args.tables.iter().find(|t| {
        t.split_once('.')
            .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
    }) {
        return Ok(print_refused(
            args.common.json,
            "snapshot",
            &format!("`{bad}` is not `schema.table`"),
        ));
    }
    request(
        &store,
        &pipeline,
        RequestKind::Snapshot {
            tables: args.tables,
        },
        args.common.json,
    )
    .await
}

/// `sluice source switch`.
pub async fn source(cmd: SourceCommand) -> anyhow::Result<ExitCode> {
    let SourceCommand::Switch(args) = cmd;
    let (pipeline, store) =
        match open(&args.common.config, args.common.json, "source switch").await? {
            Ok(o) => o,
            Err(code) => return Ok(code),
        };
    let urls = &pipeline.source.urls;
    if urls.len() < 2 {
        return Ok(print_refused(
            args.common.json,
            "source switch",
            "source.urls lists one server: there is nothing to switch to",
        ));
    }
    let kind = match &args.to {
        None => RequestKind::SourceSwitch {
            index: None,
            address: None,
        },
        Some(to) => match urls
            .iter()
            .position(|u| u.expose() == to || u.redacted() == *to || u.address() == *to)
        {
            Some(i) => RequestKind::SourceSwitch {
                index: Some(i),
                address: Some(urls[i].address()),
            },
            None => {
                return Ok(print_refused(
                    args.common.json,
                    "source switch",
                    &format!(
                        "`{}` is not an entry of source.urls ({})",
                        sluice_core::redact_url(to),
                        urls.iter()
                            .map(|u| u.address())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        },
    };
    request(&store, &pipeline, kind, args.common.json).await
}

// ---------------------------------------------------------------------------
// pause / resume
// ---------------------------------------------------------------------------

/// `sluice pause`.
pub async fn pause(args: CommonArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, store) = match open(&args.config, args.json, "pause").await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let record = PauseRecord {
        operator: sluice_pipeline::control::operator(),
        paused_at_unix_ms: unix_ms(),
        acknowledged: None,
    };
    if !store.pause(&record).await.context("recording the pause")? {
        let state = store.read().await?;
        let by = state
            .pause
            .map(|p| {
                format!(
                    " by {} since {}",
                    p.value.operator,
                    utc_rfc3339_ms(p.value.paused_at_unix_ms)
                )
            })
            .unwrap_or_default();
        return Ok(print_refused(
            args.json,
            "pause",
            &format!("pipeline `{}` is already paused{by}", pipeline.name),
        ));
    }
    let started = Instant::now();
    let Some((leader, revision)) = read_leader(store.client(), store.keys()).await? else {
        return Ok(print_ok(
            args.json,
            json!({"action": "pause", "state": "done", "acknowledged_by": null}),
            "paused: no node is active; the pause holds when one starts",
        ));
    };
    loop {
        let state = store.read().await?;
        let Some(p) = state.pause else {
            return Ok(print_refused(
                args.json,
                "pause",
                "resumed by someone else meanwhile",
            ));
        };
        if let Some(a) = p
            .value
            .acknowledged
            .filter(|a| a.node == leader.node_id && a.term == Some(revision))
        {
            let ms = started.elapsed().as_millis() as u64;
            return Ok(print_ok(
                args.json,
                json!({"action": "pause", "state": "done", "acknowledged_by": a.node, "acknowledged_ms": ms}),
                &format!("paused: {} holds every batch (confirmed after {ms} ms); `sluice resume` to go on", a.node),
            ));
        }
        if started.elapsed() >= PAUSE_ACK_TIMEOUT {
            return Ok(print_refused(
                args.json,
                "pause",
                &format!(
                    "the pause is recorded, but the active node {} did not confirm within {PAUSE_ACK_TIMEOUT:?} (a batch may still be applying); see `sluice status`",
                    leader.node_id
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `sluice resume`.
pub async fn resume(args: CommonArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, store) = match open(&args.config, args.json, "resume").await? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if !store.unpause().await.context("deleting the pause")? {
        return Ok(print_refused(
            args.json,
            "resume",
            &format!("pipeline `{}` is not paused", pipeline.name),
        ));
    }
    Ok(print_ok(
        args.json,
        json!({"action": "resume", "state": "done"}),
        "resumed",
    ))
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
        use std::fmt::Write as _;
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
