//! From the marked tree to a [`Pipeline`], section by section.
//!
//! Each section reads what it can and reports what it cannot; a section that
//! fails still lets the others be checked, so one run lists every problem.
//! Cross-section checks run only when both sides are valid, so they never
//! pile a consequence on top of its cause.
//!
//! This module reads the root mapping and runs the cross-section checks;
//! each section has its own submodule (`source`, `target`, `coordination`,
//! `tables` for filter/routes/columns, `batch` for batch/load, `cluster`
//! for ha/node/stages, `admin` for admin/alarms). The helpers they share
//! (`section`, `db_url`, `resolve_dir`, the name limit and duration units)
//! are defined here.

mod admin;
mod batch;
mod bidi;
mod cluster;
mod coordination;
mod snapshot;
mod source;
mod tables;
mod target;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{
    tag_server_id, Alarms, Batch, Coordination, DdlPolicy, Ha, Load, Node as NodeSettings,
    Pipeline, Stage, Tagging,
};
use crate::rules::{ColumnRules, Filter, Routes};
use crate::security;
use crate::url::DbUrl;
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::{Kind, Node, Pos};

use admin::{admin, alarms};
use batch::{batch, load};
use bidi::bidirectional;
use cluster::{ha, node, stages_section};
use coordination::coordination;
use source::source;
use tables::{columns, filter, routes};
use target::target;

const ROOT_KEYS: &[&str] = &[
    "name",
    "source",
    "target",
    "coordination",
    "filter",
    "routes",
    "columns",
    "batch",
    "load",
    "ha",
    "node",
    "admin",
    "alarms",
    "stages",
    "bidirectional",
    "snapshot",
    "verify",
];

/// Longest pipeline name, node id and column name.
const MAX_NAME: usize = 64;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Validates `root` (the document's top node; `None` for an empty file).
/// `base_dir` resolves a relative `coordination.local.dir`.
pub fn pipeline(cx: &mut Cx<'_>, root: Option<&Node>, base_dir: Option<&Path>) -> Option<Pipeline> {
    let empty = Node {
        kind: Kind::Map(Vec::new()),
        pos: Pos { line: 1, col: 1 },
        start: 0,
        end: 0,
    };
    let root = root.unwrap_or(&empty);
    let mut map = cx.map(root, "", root.pos, ROOT_KEYS)?;

    let name = map.required(cx, "name").and_then(|f| pipeline_name(cx, f));
    let source = map
        .required(cx, "source")
        .and_then(|f| source(cx, &map, f, base_dir));
    let target = map
        .required(cx, "target")
        .and_then(|f| target(cx, &map, f, base_dir));
    let coordination_field = map.optional("coordination");
    let coordination = match coordination_field {
        Some(f) => coordination(cx, &map, f, base_dir),
        None => Some(Coordination::Local {
            dir: resolve_dir(PathBuf::from("state"), base_dir),
        }),
    };
    let filter = match map.optional("filter") {
        Some(f) => filter(cx, &map, f),
        None => Some(Filter::default()),
    };
    let routes = match map.optional("routes") {
        Some(f) => routes(cx, &map, f),
        None => Some(Routes::default()),
    };
    let columns = match map.optional("columns") {
        Some(f) => columns(cx, &map, f),
        None => Some(ColumnRules::default()),
    };
    let batch = match map.optional("batch") {
        Some(f) => batch(cx, &map, f),
        None => Some(Batch::default()),
    };
    let load = match map.optional("load") {
        Some(f) => load(cx, &map, f),
        None => Some(Load::default()),
    };
    let ha_field = map.optional("ha");
    let ha = match ha_field {
        Some(f) => ha(cx, &map, f),
        None => Some(Ha::default()),
    };
    let node_field = map.optional("node");
    let node = match node_field {
        Some(f) => node(cx, &map, f),
        None => Some(NodeSettings::default()),
    };
    let admin = match map.optional("admin") {
        Some(f) => admin(cx, &map, f).map(Some),
        None => Some(None),
    };
    let alarms = match map.optional("alarms") {
        Some(f) => alarms(cx, &map, f),
        None => Some(Alarms::default()),
    };
    let stages_field = map.optional("stages");
    let stages_section = match stages_field {
        Some(f) => stages_section(cx, &map, f).map(Some),
        None => Some(None),
    };
    let snapshot_field = map.optional("snapshot");
    let snapshot_section = match snapshot_field {
        Some(f) => snapshot::snapshot(cx, &map, f),
        None => Some(crate::model::Snapshot::default()),
    };
    let bidi_field = map.optional("bidirectional");
    let mut bidirectional = match bidi_field {
        Some(f) => bidirectional(cx, &map, f).map(Some),
        None => Some(None),
    };
    let verify = match map.optional("verify") {
        Some(f) => verify::verify(cx, &map, f).map(Some),
        None => Some(None),
    };
    map.finish(cx);
    if let (Some(field), Some(Some(bidi))) = (bidi_field, bidirectional.as_mut()) {
        check_bidirectional(
            cx,
            field,
            bidi,
            name.as_deref(),
            source.as_ref(),
            load.as_ref(),
        );
    }

    // Distributed features need a shared store: a lease or a task queue in a
    // local directory cannot be seen, let alone fenced, by another node.
    if let Some(Coordination::Local { .. }) = coordination {
        if let (Some(field), Some(_)) = (ha_field, &ha) {
            cx.invalid(
                field.key_pos,
                "ha",
                "an active/standby pair needs `coordination.etcd` (a local directory cannot hold a lease other nodes see)",
            );
        }
        if let (Some(field), Some(node)) = (node_field, &node) {
            if node.stages.len() < Stage::ALL.len() {
                cx.invalid(
                    field.key_pos,
                    "node.stages",
                    "running only some stages on this node needs `coordination.etcd` (other nodes must see the stage tasks)",
                );
            }
        }
        if let Some(field) = stages_field {
            cx.invalid(
                field.key_pos,
                "stages",
                "distributed stages need `coordination.etcd` (other nodes must see the stage tasks)",
            );
        }
    }
    if let (Some(field), Some(node), Some(None)) = (node_field, &node, &stages_section) {
        if node.stages.len() < Stage::ALL.len() {
            cx.invalid(
                field.key_pos,
                "node.stages",
                "running only some stages on this node needs the `stages` section (distributed stages)",
            );
        }
    }

    if let (Some(field), Some(snap)) = (snapshot_field, &snapshot_section) {
        snapshot::cross_check(cx, field, snap, source.as_ref());
    }

    Some(Pipeline {
        snapshot: snapshot_section?,
        name: name?,
        source: source?,
        target: target?,
        coordination: coordination?,
        filter: filter?,
        routes: routes?,
        columns: columns?,
        batch: batch?,
        load: load?,
        ha: ha?,
        node: node?,
        stages: stages_section?,
        admin: admin?,
        alarms: alarms?,
        bidirectional: bidirectional?,
        verify: verify?,
    })
}

/// What `bidirectional` must agree with in other sections; fills in the
/// default tag from the pipeline's name.
fn check_bidirectional(
    cx: &mut Cx<'_>,
    field: Field<'_>,
    bidi: &mut crate::model::Bidirectional,
    name: Option<&str>,
    source: Option<&crate::model::Source>,
    load: Option<&Load>,
) {
    let Some(name) = name else { return };
    if bidi.tag == 0 {
        bidi.tag = tag_server_id(name);
    }
    if bidi.peer == name {
        cx.invalid(
            field.key_pos,
            "bidirectional.peer",
            format!("the peer is the pipeline replicating the other way, not this one (`{name}`)"),
        );
    }
    if bidi.tag == bidi.peer_tag {
        cx.invalid(
            field.key_pos,
            "bidirectional.server_id",
            format!(
                "this pipeline's tag {} equals its peer's: each direction needs its own (set `bidirectional.server_id` or `peer_server_id`)",
                bidi.tag
            ),
        );
    }
    if let Some(source) = source {
        for (tag, key) in [(bidi.tag, "server_id"), (bidi.peer_tag, "peer_server_id")] {
            if tag == source.server_id {
                cx.invalid(
                    field.key_pos,
                    &format!("bidirectional.{key}"),
                    format!(
                        "tag {tag} equals `source.server_id`: a tag must differ from every server and replica id"
                    ),
                );
            }
        }
    }
    if let (Tagging::Marker, Some(load)) = (bidi.tagging, load) {
        if load.ddl == DdlPolicy::Apply {
            cx.invalid(
                field.key_pos,
                "bidirectional.tagging",
                "a marker row cannot travel with DDL, so the peer would replicate applied DDL back: with `tagging: marker` set `load.ddl` to `skip` or `fail`",
            );
        }
    }
}

/// A sub-mapping under `field`, whose missing keys are reported at the key.
fn section<'n>(
    cx: &mut Cx<'_>,
    parent: &MapReader<'_>,
    key: &str,
    field: Field<'n>,
    keys: &'static [&'static str],
) -> Option<MapReader<'n>> {
    cx.map(field.node, &parent.path_of(key), field.key_pos, keys)
}

fn pipeline_name(cx: &mut Cx<'_>, field: Field<'_>) -> Option<String> {
    let text = cx.string(field.node, "name")?;
    let valid = !text.value.is_empty()
        && text.value.len() <= MAX_NAME
        && text
            .value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        cx.invalid(
            text.pos,
            "name",
            format!(
                "invalid pipeline name `{}` (use 1 to {MAX_NAME} characters from a-z, 0-9, `_` and `-`)",
                text.shown
            ),
        );
        return None;
    }
    Some(text.value)
}

fn db_url(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<DbUrl> {
    let text = cx.nonempty_string(node, path)?;
    match DbUrl::parse(&text.value) {
        Ok(url) => {
            let tls_key = if path.starts_with("target") {
                "target.tls"
            } else {
                "source.tls"
            };
            security::refuse_url_tls_options(cx, &url, text.pos, path, tls_key).then_some(url)
        }
        Err(why) => {
            let shown = sluice_core::redact_url(&text.shown);
            cx.invalid(text.pos, path, format!("invalid URL `{shown}`: {why}"));
            None
        }
    }
}

fn resolve_dir(dir: PathBuf, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir,
    }
}
