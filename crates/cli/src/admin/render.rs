//! The console's HTML: the page, its live part, and the sign-in page.
//!
//! Everything is rendered here, on the server, from the `/status` document
//! (so the page shows exactly what `/status` says, including fields other
//! branches add: `halted`, `paused`, `snapshot`, `verify`), the etcd view
//! and the history. The page's script only swaps in a fresh live part; it
//! renders nothing itself, so there is one renderer to keep right. Every
//! value is HTML-escaped ([`esc`]); no element carries a `style` attribute
//! or an event handler (the CSP allows neither).
//!
//! Stable hooks for tests and scrapers: `#role[data-value]`,
//! `#lag[data-value]`, `#rows-per-second[data-value]`,
//! `#position[data-file][data-offset]`, `#gtid`, `#replication[data-basis]`,
//! `#nodes tr[data-node][data-role]`, `#chart-lag`, `#chart-rows`.
//!
//! # Snapshot and verify sections
//!
//! Rendered when `/status` has a `snapshot` (issue 15) or `verify` (issue
//! 16) object whose `state` is not `"none"`. Fields used, all optional:
//! `state`, `rows_recopied` (snapshot), `equal` (verify), totals
//! (`rows_copied`/`rows_estimated`, `chunks_done`/`chunks_total`,
//! `tables_done`/`tables_total`, `rows`, `chunks`, `differences`), and
//! `tables: [{table, rows_copied, rows_estimated, chunks_done,
//! chunks_total, rows_per_s, eta_s, chunks, rows, differences}]` — a
//! `differences` array is shown as its length. Any other scalar field of
//! the object is listed as it is.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart::Chart;
use super::cluster::ClusterView;
use super::history::{Sample, SAMPLE_EVERY};

/// What one rendering shows.
pub struct Snapshot<'a> {
    /// This node's `/status` document.
    pub status: &'a Value,
    pub view: &'a ClusterView,
    pub history: &'a [Sample],
    pub now_ms: u64,
    /// `alarms.lag_threshold`, drawn on the lag chart.
    pub lag_threshold_s: u64,
    /// `admin.token` is set: offer "sign out".
    pub with_token: bool,
}

/// How often the page refreshes its live part.
pub const REFRESH_MS: u64 = 5_000;
/// Rows of a table shown before "and N more".
const MAX_ROWS: usize = 50;

/// HTML-escapes `text` for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_default()
}

/// `HH:MM:SS` (UTC) of Unix ms, with the full time as a tooltip.
fn time(ms: u64) -> String {
    let full = sluice_core::time::utc_rfc3339_ms(ms);
    let hms = full.get(11..19).unwrap_or(&full).to_string();
    format!(r#"<time datetime="{full}" title="{full}">{hms}</time>"#)
}

fn ago(now_ms: u64, ms: u64) -> String {
    let s = now_ms.saturating_sub(ms) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn badge(class: &str, text: &str) -> String {
    format!(r#"<span class="badge {}">{}</span>"#, esc(class), esc(text))
}

fn rate_text(rate: f64) -> String {
    if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// The whole page: head (with the inline style and script the CSP's
/// hashes allow), header, live part.
pub fn page(s: &Snapshot, css: &str, js: &str) -> String {
    let pipeline = esc(str_of(s.status, "pipeline"));
    let node = esc(str_of(s.status, "node"));
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>sluice · {pipeline} · {node}</title><style>{css}</style></head><body><header><h1>sluice · {pipeline}</h1><span class="sub">node <b>{node}</b> · version {version}</span><span id="refresh-state" class="refresh" data-state="server">rendered {at} UTC; refreshes every {every} s</span>"#,
        version = esc(env!("CARGO_PKG_VERSION")),
        at = time(s.now_ms),
        every = REFRESH_MS / 1000,
    );
    if s.with_token {
        out.push_str(
            r#"<form method="post" action="/ui/logout"><button type="submit">sign out</button></form>"#,
        );
    }
    let _ = write!(
        out,
        r#"</header><main id="live" data-refresh-ms="{REFRESH_MS}">{}</main><footer>JSON: <a href="/status">/status</a> · <a href="/ui/history">/ui/history</a> · <a href="/metrics">/metrics</a> (Prometheus). Times are UTC.</footer><script>{js}</script></body></html>"#,
        live(s),
    );
    out
}

/// The part of the page that refreshes (`/ui/live`).
pub fn live(s: &Snapshot) -> String {
    let mut out = String::with_capacity(24 * 1024);
    banners(&mut out, s.status);
    out.push_str(r#"<div class="grid">"#);
    this_node(&mut out, s);
    replication(&mut out, s);
    in_flight(&mut out, s);
    nodes(&mut out, s);
    last_error(&mut out, s);
    progress_section(&mut out, s.status, "snapshot", "Snapshot");
    progress_section(&mut out, s.status, "verify", "Verify");
    out.push_str("</div>");
    charts(&mut out, s);
    out
}

/// Halted and paused (operator control), pipeline-wide.
fn banners(out: &mut String, status: &Value) {
    let halted = &status["halted"];
    if halted.is_object() || halted.as_bool() == Some(true) {
        let _ = write!(
            out,
            r#"<section id="halted" class="banner bad">HALTED: the pipeline stopped on a definite error and waits for an operator (sluice errors)<span class="detail">{}</span></section>"#,
            fields(
                halted,
                &[
                    "message",
                    "stage",
                    "table",
                    "key",
                    "batch_id",
                    "position_before",
                    "node"
                ],
                "halted_at_unix_ms"
            )
        );
    }
    let paused = &status["paused"];
    if paused.is_object() || paused.as_bool() == Some(true) {
        let _ = write!(
            out,
            r#"<section id="paused" class="banner warn">PAUSED: no batch reaches the target until sluice resume<span class="detail">{}</span></section>"#,
            fields(
                paused,
                &["operator", "acknowledged_by"],
                "paused_at_unix_ms"
            )
        );
    }
}

/// `key: value` of an object's known fields, then its time field.
fn fields(v: &Value, keys: &[&str], time_key: &str) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let value = &v[*k];
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{}: {}", esc(&k.replace('_', " ")), esc(&text)))
        })
        .collect();
    if let Some(ms) = v[time_key].as_u64() {
        parts.push(format!("since {} UTC", time(ms)));
    }
    parts.join(" · ")
}

fn this_node(out: &mut String, s: &Snapshot) {
    let st = s.status;
    let role = str_of(st, "role");
    let ready = st["ready"].as_bool().unwrap_or(false);
    let _ = write!(
        out,
        r#"<section class="card" id="this-node"><h2>This node</h2><dl><dt>node</dt><dd id="node" class="mono">{node}</dd><dt>role</dt><dd><span id="role" class="badge {role_e}" data-value="{role_e}">{role_e}</span> since {since}</dd><dt>ready</dt><dd id="ready" data-value="{ready}">{ready_badge} {reason}</dd><dt>source server</dt><dd class="mono">{source}</dd></dl><h2>Connections</h2><dl>"#,
        node = esc(str_of(st, "node")),
        role_e = esc(role),
        since = st["since_unix_ms"].as_u64().map_or_else(String::new, time),
        ready_badge = badge(
            if ready { "yes" } else { "no" },
            if ready { "ready" } else { "not ready" }
        ),
        reason = esc(str_of(st, "ready_reason")),
        source = esc(st["source"].as_str().unwrap_or("-")),
    );
    for peer in ["source", "target", "etcd"] {
        let link = &st["connections"][peer];
        let state = link
            .as_str()
            .unwrap_or(if peer == "etcd" { "n/a" } else { "unknown" });
        let shown = if peer == "etcd" && link.is_null() {
            "not used (local coordination)".to_string()
        } else {
            state.to_string()
        };
        let _ = write!(
            out,
            r#"<dt>{peer}</dt><dd id="conn-{peer}" data-value="{v}">{b}</dd>"#,
            v = esc(state),
            b = badge(state, &shown),
        );
    }
    out.push_str("</dl></section>");
}

/// Where the replication numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// This node is active: its own `/status`.
    ThisNode,
    /// Another node is active: what it publishes in etcd.
    ActiveNode,
    /// Nobody measures: the stored position only.
    Stored,
}

fn replication(out: &mut String, s: &Snapshot) {
    let st = s.status;
    let view = s.view;
    let basis = if str_of(st, "role") == "active" {
        Basis::ThisNode
    } else if view.leader_progress(s.now_ms).is_some()
        && view.leader_id() != Some(str_of(st, "node"))
    {
        Basis::ActiveNode
    } else if view.position.is_some() {
        Basis::Stored
    } else {
        Basis::ThisNode
    };
    let (lag, rate, file, offset, gtid, batch, applied_as_of, counters) = match basis {
        Basis::ThisNode => (
            st["lag_seconds"].as_u64(),
            st["rows_per_second"].as_f64(),
            st["position"]["file"].as_str().map(str::to_string),
            st["position"]["offset"].as_u64(),
            st["position"]["gtid"].as_str().map(str::to_string),
            st["acknowledged_batch"].as_u64(),
            st["applied_as_of_unix_ms"].as_u64(),
            Some(st["counters"].clone()),
        ),
        Basis::ActiveNode | Basis::Stored => {
            let p = view.position.as_ref();
            let progress = view.leader_progress(s.now_ms);
            (
                view.lag_seconds(s.now_ms),
                view.leader_rows_per_second
                    .filter(|_| basis == Basis::ActiveNode),
                p.map(|p| p.position.file.clone()),
                p.map(|p| p.position.offset),
                p.and_then(|p| p.position.gtid.as_ref().map(ToString::to_string)),
                p.map(|p| p.batch_id),
                progress.and_then(|p| p.applied_as_of_unix_ms),
                progress.map(|p| serde_json::json!(p)),
            )
        }
    };
    let (basis_attr, note) = match basis {
        Basis::ThisNode => ("this_node", "measured by this node".to_string()),
        Basis::ActiveNode => (
            "active_node",
            format!(
                "as the active node {} publishes it in etcd",
                esc(view.leader_id().unwrap_or_default())
            ),
        ),
        Basis::Stored => (
            "stored",
            "no active node publishes progress: the position stored in etcd; lag counted from its event time".to_string(),
        ),
    };
    let lag_text = lag.map_or_else(|| "unknown".to_string(), |l| format!("{l} s"));
    let rate_shown = rate.map_or_else(|| "–".to_string(), rate_text);
    let alarm = st["lag_alarm"].as_bool() == Some(true) && basis == Basis::ThisNode;
    let _ = write!(
        out,
        r#"<section class="card" id="replication" data-basis="{basis_attr}"><h2>Replication <small>{note}</small></h2><div class="big"><div><span class="l">lag{alarm}</span><span class="v" id="lag" data-value="{lag_v}">{lag_text}</span></div><div><span class="l">rows/s applied</span><span class="v" id="rows-per-second" data-value="{rate_v}">{rate_shown}</span></div></div><dl><dt>acknowledged position</dt><dd id="position" class="mono" data-file="{file}" data-offset="{off_v}">{pos_text}</dd><dt>GTID</dt><dd id="gtid" class="mono">{gtid}</dd><dt>acknowledged batch</dt><dd id="batch">{batch}</dd><dt>applied as of</dt><dd>{as_of}</dd>"#,
        alarm = if alarm {
            " (above the alarm threshold)"
        } else {
            ""
        },
        lag_v = lag.map_or_else(String::new, |l| l.to_string()),
        rate_v = rate.map_or_else(String::new, |r| format!("{:.1}", r)),
        file = esc(file.as_deref().unwrap_or_default()),
        off_v = offset.map_or_else(String::new, |o| o.to_string()),
        pos_text = match (&file, offset) {
            (Some(f), Some(o)) => format!("{}:{o}", esc(f)),
            _ => "none acknowledged yet".to_string(),
        },
        gtid = esc(gtid.as_deref().unwrap_or("-")),
        batch = batch.map_or_else(|| "-".to_string(), |b| b.to_string()),
        as_of = applied_as_of.map_or_else(
            || "unknown".to_string(),
            |ms| format!("{} UTC ({})", time(ms), ago(s.now_ms, ms))
        ),
    );
    if let Some(c) = counters.filter(Value::is_object) {
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        let _ = write!(
            out,
            r#"<dt>this term</dt><dd id="counters">{} batches cut, {} applied; {} rows, {} DDL; {} retries</dd>"#,
            n("batches_extracted"),
            n("batches_loaded"),
            n("rows_loaded"),
            n("ddl_applied"),
            n("retries"),
        );
    }
    out.push_str("</dl></section>");
}

fn nodes(out: &mut String, s: &Snapshot) {
    let view = s.view;
    let me = str_of(s.status, "node");
    out.push_str(r#"<section class="card" id="nodes"><h2>Nodes"#);
    if !view.etcd {
        out.push_str(r#"</h2><p class="note">Local coordination: this node alone replicates the pipeline and keeps its position in a local directory; there are no other nodes.</p></section>"#);
        return;
    }
    match (view.read_at_ms, &view.error) {
        (Some(at), None) => {
            let _ = write!(
                out,
                " <small>from etcd, read {}</small></h2>",
                ago(s.now_ms, at)
            );
        }
        (Some(at), Some((_, e))) => {
            let _ = write!(
                out,
                r#" <small>from etcd, read {}</small></h2><p class="error">etcd cannot be read now: {}</p>"#,
                ago(s.now_ms, at),
                esc(e)
            );
        }
        (None, Some((_, e))) => {
            let _ = write!(
                out,
                r#"</h2><p class="error">etcd cannot be read: {}</p></section>"#,
                esc(e)
            );
            return;
        }
        (None, None) => {
            out.push_str(r#"</h2><p class="note">reading etcd…</p></section>"#);
            return;
        }
    }
    let leader = view.leader_id();
    out.push_str("<table><tr><th>node</th><th>role</th><th>version</th><th>server_id</th><th>admin</th><th>since</th></tr>");
    if let Some((l, _)) = &view.leader {
        if !view.nodes.iter().any(|n| n.node_id == l.node_id) {
            let _ = write!(
                out,
                r#"<tr data-node="{id}" data-role="active"><td class="mono">{id}</td><td>{b}</td><td colspan="3">not registered</td><td>{since}</td></tr>"#,
                id = esc(&l.node_id),
                b = badge("active", "active"),
                since = time(l.since_unix_ms),
            );
        }
    }
    for n in &view.nodes {
        let role = if Some(n.node_id.as_str()) == leader {
            "active"
        } else {
            "standby"
        };
        let _ = write!(
            out,
            r#"<tr data-node="{id}" data-role="{role}"{class}><td class="mono nowrap">{id}{this}</td><td>{b}</td><td>{version}</td><td>{sid}</td><td class="mono">{addr}</td><td>{since}</td></tr>"#,
            id = esc(&n.node_id),
            class = if n.node_id == me {
                r#" class="self""#
            } else {
                ""
            },
            this = if n.node_id == me {
                r#" <span class="note">this node</span>"#
            } else {
                ""
            },
            b = badge(role, role),
            version = esc(&n.version),
            sid = n
                .server_id
                .map_or_else(|| "-".to_string(), |i| i.to_string()),
            addr = esc(n.address.as_deref().unwrap_or("-")),
            since = if n.since_unix_ms > 0 {
                time(n.since_unix_ms)
            } else {
                "-".to_string()
            },
        );
    }
    out.push_str("</table>");
    if leader.is_none() {
        out.push_str(
            r#"<p class="error">No active node: nobody holds the pipeline's leader key.</p>"#,
        );
    }
    out.push_str("</section>");
}

fn in_flight(out: &mut String, s: &Snapshot) {
    let view = s.view;
    out.push_str(r#"<section class="card" id="in-flight"><h2>Batches in flight"#);
    if !view.distributed {
        let counters = &s.status["counters"];
        let n = if str_of(s.status, "role") == "active" {
            counters["in_flight"].as_u64()
        } else {
            view.leader_progress(s.now_ms).map(|p| p.in_flight)
        };
        let _ = write!(
            out,
            r#"</h2><p><b id="in-flight-count">{}</b> cut, not yet acknowledged <span class="note">(the stages run in the active node's process)</span></p></section>"#,
            n.map_or_else(|| "-".to_string(), |n| n.to_string())
        );
        return;
    }
    let _ = write!(
        out,
        r#" <small>distributed stages, from the task board</small></h2><p><b id="in-flight-count">{}</b> on the board</p>"#,
        view.tasks.len()
    );
    if !view.tasks.is_empty() {
        out.push_str("<table><tr><th>batch</th><th>stage</th><th>owner</th><th>age</th><th>rows</th><th>load attempts</th></tr>");
        for t in view.tasks.iter().take(MAX_ROWS) {
            let _ = write!(
                out,
                r#"<tr data-batch="{}"><td>{}</td><td>{}</td><td class="mono">{}</td><td>{:.1} s</td><td>{}</td><td>{}</td></tr>"#,
                t.batch_id,
                t.batch_id,
                esc(&t.stage),
                esc(if t.owner.is_empty() { "-" } else { &t.owner }),
                t.age_ms as f64 / 1000.0,
                t.rows,
                t.load_attempts
            );
        }
        out.push_str("</table>");
        if view.tasks.len() > MAX_ROWS {
            let _ = write!(
                out,
                r#"<p class="note">and {} more</p>"#,
                view.tasks.len() - MAX_ROWS
            );
        }
    }
    out.push_str("</section>");
}

fn last_error(out: &mut String, s: &Snapshot) {
    let e = &s.status["last_error"];
    out.push_str(r#"<section class="card" id="last-error"><h2>Last error</h2>"#);
    if e.is_object() {
        let class = str_of(e, "class");
        let _ = write!(
            out,
            r#"<dl><dt>when</dt><dd>{} UTC ({})</dd><dt>class</dt><dd>{}</dd><dt>stage</dt><dd>{}</dd><dt>message</dt><dd class="mono" id="last-error-message">{}</dd></dl>"#,
            e["unix_ms"].as_u64().map_or_else(String::new, time),
            e["unix_ms"]
                .as_u64()
                .map_or_else(String::new, |ms| ago(s.now_ms, ms)),
            badge(class, class),
            esc(str_of(e, "stage")),
            esc(str_of(e, "message")),
        );
    } else {
        out.push_str(r#"<p class="note">none since this node started</p>"#);
    }
    out.push_str("</section>");
}

/// `snapshot` / `verify` (see the module docs).
fn progress_section(out: &mut String, status: &Value, key: &str, title: &str) {
    let v = &status[key];
    if !v.is_object() || v["state"].as_str() == Some("none") {
        return;
    }
    let _ = write!(
        out,
        r#"<section class="card" id="{key}"><h2>{title} <small>{}</small></h2>"#,
        esc(v["state"].as_str().unwrap_or_default())
    );
    let tables: &[Value] = v["tables"].as_array().map_or(&[], Vec::as_slice);
    let sum = |k: &str| -> Option<u64> {
        v[k].as_u64().or_else(|| {
            let values: Vec<u64> = tables.iter().filter_map(|t| count(&t[k])).collect();
            (!values.is_empty()).then(|| values.iter().sum())
        })
    };
    for (done, total, what) in [
        ("rows_copied", "rows_estimated", "rows"),
        ("chunks_done", "chunks_total", "chunks"),
        ("tables_done", "tables_total", "tables"),
    ] {
        if let (Some(d), Some(t)) = (sum(done), sum(total)) {
            let _ = write!(
                out,
                r#"<p>{d} of {t} {what}<progress id="{key}-{what}" value="{d}" max="{}"></progress></p>"#,
                t.max(1)
            );
        }
    }
    out.push_str("<dl>");
    if let Some(eq) = v["equal"].as_bool() {
        let _ = write!(
            out,
            "<dt>equal</dt><dd>{}</dd>",
            badge(
                if eq { "yes" } else { "no" },
                if eq { "equal" } else { "differences found" }
            )
        );
    }
    for (k, value) in v.as_object().into_iter().flatten() {
        let shown = match value {
            Value::String(s) if k != "state" => s.clone(),
            Value::Number(n)
                if !k.ends_with("_done")
                    && !k.ends_with("_total")
                    && !k.ends_with("_copied")
                    && !k.ends_with("_estimated") =>
            {
                n.to_string()
            }
            Value::Bool(b) if k != "equal" => b.to_string(),
            Value::Array(a) if k == "differences" => a.len().to_string(),
            _ => continue,
        };
        let shown = if k.ends_with("unix_ms") {
            value
                .as_u64()
                .map_or(shown, |ms| format!("{} UTC", time(ms)))
        } else {
            esc(&shown)
        };
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{shown}</dd>",
            esc(&k.replace('_', " "))
        );
    }
    out.push_str("</dl>");
    if !tables.is_empty() {
        let columns: Vec<&str> = [
            "rows_copied",
            "rows_estimated",
            "chunks_done",
            "chunks_total",
            "rows_per_s",
            "eta_s",
            "chunks",
            "rows",
            "differences",
            "state",
        ]
        .into_iter()
        .filter(|c| tables.iter().any(|t| !t[*c].is_null()))
        .collect();
        out.push_str("<table><tr><th>table</th>");
        for c in &columns {
            let _ = write!(out, "<th>{}</th>", esc(&c.replace('_', " ")));
        }
        out.push_str("</tr>");
        for t in tables.iter().take(MAX_ROWS) {
            let _ = write!(
                out,
                r#"<tr><td class="mono">{}</td>"#,
                esc(str_of(t, "table"))
            );
            for c in &columns {
                let cell = match &t[*c] {
                    Value::Null => "-".to_string(),
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a.len().to_string(),
                    Value::Number(n) => n
                        .as_f64()
                        .filter(|f| f.fract() != 0.0)
                        .map_or_else(|| n.to_string(), |f| format!("{f:.1}")),
                    other => other.to_string(),
                };
                let _ = write!(out, "<td>{}</td>", esc(&cell));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
        if tables.len() > MAX_ROWS {
            let _ = write!(
                out,
                r#"<p class="note">and {} more tables</p>"#,
                tables.len() - MAX_ROWS
            );
        }
    }
    out.push_str("</section>");
}

/// A count: a number, or the length of an array (`differences`).
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_array().map(|a| a.len() as u64))
}

fn charts(out: &mut String, s: &Snapshot) {
    let lag = Chart {
        id: "chart-lag",
        title: "Lag (seconds), last hour",
        value: |x| x.lag_seconds.map(|v| v as f64),
        threshold: Some(s.lag_threshold_s as f64),
    };
    let rows = Chart {
        id: "chart-rows",
        title: "Rows/s applied, last hour",
        value: |x| x.rows_per_second,
        threshold: None,
    };
    let basis = match s.history.last().map(|x| x.basis) {
        Some(super::history::Basis::ActiveNode) => {
            "the active node's numbers from etcd while this node stands by"
        }
        _ => {
            "this node's numbers while it is active, the active node's from etcd while it stands by"
        }
    };
    let _ = write!(
        out,
        r#"<section class="card wide" id="charts"><h2>Up to the last hour <small>one sample every {} s, kept in this node's memory; {basis}; gaps: nothing measured</small></h2><div class="charts"><div><h2>Lag <small>seconds; dashed: alarm threshold {} s</small></h2>{}</div><div><h2>Rows/s applied</h2>{}</div></div></section>"#,
        SAMPLE_EVERY.as_secs(),
        s.lag_threshold_s,
        lag.svg(s.history, s.now_ms),
        rows.svg(s.history, s.now_ms),
    );
}

/// The sign-in page (`admin.token` set, no valid session).
pub fn login(pipeline: &str, node: &str, message: Option<&str>, css: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>sluice · sign in</title><style>{css}</style></head><body><header><h1>sluice · {pipeline}</h1><span class="sub">node <b>{node}</b></span></header><main><section class="card login" id="login"><h2>Sign in</h2><p>This console needs the admin token (<span class="mono">admin.token</span> of the pipeline file).</p>{message}<form method="post" action="/ui/login"><input type="password" name="token" autocomplete="current-password" aria-label="admin token" placeholder="admin token" required autofocus><button type="submit">Sign in</button></form></section></main></body></html>"#,
        pipeline = esc(pipeline),
        node = esc(node),
        message = message.map_or_else(String::new, |m| format!(
            r#"<p class="error">{}</p>"#,
            esc(m)
        )),
    )
}

#[cfg(test)]
mod tests;
