//! From the marked tree to a [`Pipeline`], section by section.
//!
//! Each section reads what it can and reports what it cannot; a section that
//! fails still lets the others be checked, so one run lists every problem.
//! Cross-section checks run only when both sides are valid, so they never
//! pile a consequence on top of its cause.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_core::{GtidSet, TlsConfig};

use crate::error::ErrorKind;
use crate::model::{
    Admin, Alarms, Batch, Coordination, DdlPolicy, Ha, Load, Node as NodeSettings, Pipeline,
    Source, Stage, StagesSettings, StartAt, Target, Webhook,
};
use crate::rules::{ColumnRule, ColumnRules, Filter, Route, Routes, TablePattern};
use crate::security;
use crate::url::{parse_etcd_endpoint, DbUrl};
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::{Kind, Node, Pos};

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
    map.finish(cx);

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

    Some(Pipeline {
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
    })
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

fn source(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
    base_dir: Option<&Path>,
) -> Option<Source> {
    const KEYS: &[&str] = &["url", "urls", "server_id", "start", "switch_after", "tls"];
    let mut map = section(cx, root, "source", field, KEYS)?;
    let url = map.raw("url");
    let urls_field = map.raw("urls");
    let urls = match (url, urls_field) {
        (Some(_), Some(f)) => {
            cx.invalid(
                f.key_pos,
                "source.urls",
                "give either `url` or `urls`, not both",
            );
            None
        }
        (Some(f), None) => db_url(cx, f.node, "source.url").map(|u| vec![u]),
        (None, Some(f)) => {
            let items = cx.seq(f.node, "source.urls")?;
            if items.is_empty() {
                cx.invalid(f.node.pos, "source.urls", "needs at least one URL");
                return None;
            }
            let mut urls: Vec<DbUrl> = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let path = format!("source.urls[{i}]");
                match db_url(cx, item, &path) {
                    Some(url) if urls.iter().any(|u| u.address() == url.address()) => {
                        cx.invalid(
                            item.pos,
                            &path,
                            format!("{} is listed twice", url.address()),
                        );
                        ok = false;
                    }
                    Some(url) => urls.push(url),
                    None => ok = false,
                }
            }
            ok.then_some(urls)
        }
        (None, None) => {
            cx.error(
                map.owner,
                "source.url",
                ErrorKind::MissingKey,
                "missing required key `url` (or `urls`)",
            );
            None
        }
    };
    let server_id = map
        .required(cx, "server_id")
        .and_then(|f| cx.integer(f.node, "source.server_id", 1, u32::MAX.into()))
        .map(|n| n as u32);
    let start = match map.optional("start") {
        Some(f) => start(cx, f),
        None => Some(StartAt::Latest),
    };
    let switch_after = match map.optional("switch_after") {
        // `never`: only an operator switches (`sluice source switch`).
        Some(f) if matches!(&f.node.kind, Kind::Scalar(s) if s.value == "never") => Some(None),
        Some(f) => cx
            .duration(
                f.node,
                "source.switch_after",
                Duration::from_millis(100),
                HOUR,
            )
            .map(Some),
        None => Some(Some(Duration::from_secs(10))),
    };
    let tls = match map.optional("tls") {
        Some(f) => security::db_tls(cx, f, "source.tls", base_dir),
        None => Some(TlsConfig::disabled()),
    };
    map.finish(cx);
    Some(Source {
        urls: urls?,
        server_id: server_id?,
        start: start?,
        switch_after: switch_after?,
        tls: tls?,
    })
}

fn start(cx: &mut Cx<'_>, field: Field<'_>) -> Option<StartAt> {
    const PATH: &str = "source.start";
    const SHAPES: &str = "`latest`, `{file: NAME, pos: N}` or `{gtid: SET}`";
    match &field.node.kind {
        Kind::Scalar(_) => {
            let text = cx.string(field.node, PATH)?;
            if text.value == "latest" {
                Some(StartAt::Latest)
            } else {
                cx.invalid(
                    text.pos,
                    PATH,
                    format!("unknown start `{}` (expected {SHAPES})", text.shown),
                );
                None
            }
        }
        Kind::Seq(_) => {
            cx.error(
                field.node.pos,
                PATH,
                ErrorKind::WrongType,
                format!("expected {SHAPES}, found a list"),
            );
            None
        }
        Kind::Map(_) => {
            let mut map = cx.map(field.node, PATH, field.key_pos, &["file", "pos", "gtid"])?;
            let file = map.raw("file");
            let pos = map.raw("pos");
            let gtid = map.raw("gtid");
            let result = match (file, pos, gtid) {
                (None, None, Some(g)) => {
                    let text = cx.string(g.node, "source.start.gtid")?;
                    match text.value.parse::<GtidSet>() {
                        Ok(set) => Some(StartAt::Gtid(set)),
                        Err(e) => {
                            cx.invalid(
                                text.pos,
                                "source.start.gtid",
                                format!("invalid GTID set: {e}"),
                            );
                            None
                        }
                    }
                }
                (Some(_), _, Some(g)) | (_, Some(_), Some(g)) => {
                    cx.invalid(
                        g.key_pos,
                        "source.start.gtid",
                        "give either `file`/`pos` or `gtid`, not both",
                    );
                    None
                }
                (file, pos, None) => {
                    let file = match file {
                        Some(f) => binlog_file(cx, f.node),
                        None => {
                            cx.error(
                                map.owner,
                                "source.start.file",
                                ErrorKind::MissingKey,
                                "missing required key `file` (or `gtid`)",
                            );
                            None
                        }
                    };
                    let pos = match pos {
                        Some(p) => cx
                            .integer(p.node, "source.start.pos", 4, u64::MAX.into())
                            .map(|n| n as u64),
                        None => Some(4),
                    };
                    Some(StartAt::File {
                        file: file?,
                        pos: pos?,
                    })
                }
            };
            map.finish(cx);
            result
        }
    }
}

fn binlog_file(cx: &mut Cx<'_>, node: &Node) -> Option<String> {
    const PATH: &str = "source.start.file";
    let text = cx.nonempty_string(node, PATH)?;
    if text.value.contains(['/', '\\']) || text.value.trim() != text.value {
        cx.invalid(
            text.pos,
            PATH,
            format!(
                "`{}` is not a binlog file name (give the bare name, e.g. mysql-bin.000003)",
                text.shown
            ),
        );
        return None;
    }
    Some(text.value)
}

fn target(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
    base_dir: Option<&Path>,
) -> Option<Target> {
    let mut map = section(cx, root, "target", field, &["url", "tls"])?;
    let url = map
        .required(cx, "url")
        .and_then(|f| db_url(cx, f.node, "target.url"));
    let tls = match map.optional("tls") {
        Some(f) => security::db_tls(cx, f, "target.tls", base_dir),
        None => Some(TlsConfig::disabled()),
    };
    map.finish(cx);
    Some(Target {
        url: url?,
        tls: tls?,
    })
}

fn resolve_dir(dir: PathBuf, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir,
    }
}

fn coordination(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
    base_dir: Option<&Path>,
) -> Option<Coordination> {
    let mut map = section(cx, root, "coordination", field, &["etcd", "local"])?;
    let etcd = map.raw("etcd");
    let local = map.raw("local");
    let result = match (etcd, local) {
        (Some(_), Some(l)) => {
            cx.invalid(
                l.key_pos,
                "coordination.local",
                "give either `etcd` or `local`, not both",
            );
            None
        }
        (Some(f), None) => etcd_section(cx, &map, f, base_dir),
        (None, Some(f)) => {
            let mut local = section(cx, &map, "local", f, &["dir"])?;
            let dir = match local.optional("dir") {
                Some(d) => cx
                    .nonempty_string(d.node, "coordination.local.dir")
                    .map(|t| PathBuf::from(t.value)),
                None => Some(PathBuf::from("state")),
            };
            local.finish(cx);
            dir.map(|dir| Coordination::Local {
                dir: resolve_dir(dir, base_dir),
            })
        }
        (None, None) => {
            cx.error(
                map.owner,
                "coordination.etcd",
                ErrorKind::MissingKey,
                "missing required key `etcd` (or `local`)",
            );
            None
        }
    };
    map.finish(cx);
    result
}

fn etcd_section(
    cx: &mut Cx<'_>,
    parent: &MapReader<'_>,
    field: Field<'_>,
    base_dir: Option<&Path>,
) -> Option<Coordination> {
    const KEYS: &[&str] = &["endpoints", "prefix", "tls", "user", "password"];
    let mut map = section(cx, parent, "etcd", field, KEYS)?;
    let endpoints = map.required(cx, "endpoints").and_then(|f| {
        let items = cx.seq(f.node, "coordination.etcd.endpoints")?;
        if items.is_empty() {
            cx.invalid(
                f.node.pos,
                "coordination.etcd.endpoints",
                "needs at least one endpoint",
            );
            return None;
        }
        let mut endpoints = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("coordination.etcd.endpoints[{i}]");
            let Some(text) = cx.nonempty_string(item, &path) else {
                ok = false;
                continue;
            };
            match parse_etcd_endpoint(&text.value) {
                Ok(endpoint) => endpoints.push((endpoint, text.pos)),
                Err(why) => {
                    cx.invalid(
                        text.pos,
                        &path,
                        format!("invalid etcd endpoint `{}`: {why}", text.shown),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(endpoints)
    });
    let prefix = match map.optional("prefix") {
        Some(f) => etcd_prefix(cx, f.node),
        None => Some("/sluice".to_string()),
    };
    let tls_field = map.optional("tls");
    let tls = match tls_field {
        Some(f) => security::etcd_tls(cx, f, base_dir).map(Some),
        None => Some(None),
    };
    let auth = security::etcd_auth(cx, &mut map);
    map.finish(cx);
    let endpoints = endpoints?;
    let tls = tls?;
    if !security::check_etcd_schemes(cx, &endpoints, tls_field.map(|f| f.key_pos)) {
        return None;
    }
    Some(Coordination::Etcd {
        endpoints: endpoints.into_iter().map(|(e, _)| e).collect(),
        prefix: prefix?,
        tls,
        auth: auth?,
    })
}

fn etcd_prefix(cx: &mut Cx<'_>, node: &Node) -> Option<String> {
    const PATH: &str = "coordination.etcd.prefix";
    let text = cx.string(node, PATH)?;
    let prefix = text.value.trim_end_matches('/');
    let problem = if !text.value.starts_with('/') {
        Some("must start with `/` (e.g. /sluice)")
    } else if prefix.is_empty() {
        Some("must name a key prefix below `/` (e.g. /sluice)")
    } else if prefix.contains("//") || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain `//`, spaces or control characters")
    } else {
        None
    };
    if let Some(problem) = problem {
        cx.invalid(
            text.pos,
            PATH,
            format!("invalid prefix `{}`: {problem}", text.shown),
        );
        return None;
    }
    Some(prefix.to_string())
}

/// A regex on `schema.table`.
fn pattern(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<TablePattern> {
    let text = cx.nonempty_string(node, path)?;
    match TablePattern::new(&text.value) {
        Ok(p) => Some(p),
        Err(why) => {
            cx.error(
                text.pos,
                path,
                ErrorKind::BadRegex,
                format!("invalid regex `{}`: {why}", text.shown),
            );
            None
        }
    }
}

fn patterns(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Vec<TablePattern>> {
    let items = cx.seq(node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match pattern(cx, item, &format!("{path}[{i}]")) {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn filter(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Filter> {
    let mut map = section(cx, root, "filter", field, &["include", "exclude"])?;
    let include = match map.optional("include") {
        Some(f) => patterns(cx, f.node, "filter.include"),
        None => Some(Vec::new()),
    };
    let exclude = match map.optional("exclude") {
        Some(f) => patterns(cx, f.node, "filter.exclude"),
        None => Some(Vec::new()),
    };
    map.finish(cx);
    Some(Filter::new(include?, exclude?))
}

fn routes(cx: &mut Cx<'_>, _root: &MapReader<'_>, field: Field<'_>) -> Option<Routes> {
    let items = cx.seq(field.node, "routes")?;
    let mut routes = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("routes[{i}]");
        let Some(mut map) = cx.map(item, &path, item.pos, &["match", "to"]) else {
            ok = false;
            continue;
        };
        let pattern = map
            .required(cx, "match")
            .and_then(|f| pattern(cx, f.node, &format!("{path}.match")));
        let to = map
            .required(cx, "to")
            .and_then(|f| cx.nonempty_string(f.node, &format!("{path}.to")));
        map.finish(cx);
        match (pattern, to) {
            (Some(pattern), Some(to)) => match Route::new(pattern, &to.value) {
                Ok(route) => routes.push(route),
                Err(why) => {
                    cx.error(
                        to.pos,
                        &format!("{path}.to"),
                        ErrorKind::BadRegex,
                        format!("invalid route target `{}`: {why}", to.shown),
                    );
                    ok = false;
                }
            },
            _ => ok = false,
        }
    }
    ok.then(|| Routes::new(routes))
}

/// A list of column names: non-empty, at most 64 characters, no duplicates
/// (case-insensitively).
fn column_names(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Vec<String>> {
    let items = cx.seq(node, path)?;
    let mut names: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match column_name(cx, item, &item_path) {
            Some(name) if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) => {
                cx.invalid(
                    item.pos,
                    &item_path,
                    format!("column `{name}` is listed twice"),
                );
                ok = false;
            }
            Some(name) => names.push(name),
            None => ok = false,
        }
    }
    ok.then_some(names)
}

fn column_name(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<String> {
    let text = cx.nonempty_string(node, path)?;
    if text.value.chars().count() > MAX_NAME {
        cx.invalid(
            text.pos,
            path,
            format!("column names have at most {MAX_NAME} characters"),
        );
        return None;
    }
    Some(text.value)
}

fn columns(cx: &mut Cx<'_>, _root: &MapReader<'_>, field: Field<'_>) -> Option<ColumnRules> {
    const KEYS: &[&str] = &["table", "include", "exclude", "rename"];
    let items = cx.seq(field.node, "columns")?;
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("columns[{i}]");
        let Some(mut map) = cx.map(item, &path, item.pos, KEYS) else {
            ok = false;
            continue;
        };
        let table = map
            .required(cx, "table")
            .and_then(|f| pattern(cx, f.node, &format!("{path}.table")));
        let include_field = map.optional("include");
        let include = match include_field {
            Some(f) => column_names(cx, f.node, &format!("{path}.include")),
            None => Some(Vec::new()),
        };
        let exclude_field = map.optional("exclude");
        let exclude = match exclude_field {
            Some(f) => column_names(cx, f.node, &format!("{path}.exclude")),
            None => Some(Vec::new()),
        };
        let rename = match map.optional("rename") {
            Some(f) => renames(cx, f, &format!("{path}.rename")),
            None => Some(Vec::new()),
        };
        map.finish(cx);
        if let (Some(inc), Some(exc), Some(field)) = (&include, &exclude, exclude_field) {
            if !inc.is_empty() && !exc.is_empty() {
                cx.invalid(
                    field.key_pos,
                    &format!("{path}.exclude"),
                    "give either `include` or `exclude`, not both",
                );
                ok = false;
            }
        }
        if let (Some(include), Some(exclude), Some(rename)) = (&include, &exclude, &rename) {
            for (from, _, key_pos) in rename {
                let dropped = exclude.iter().any(|c| c.eq_ignore_ascii_case(from))
                    || (!include.is_empty()
                        && !include.iter().any(|c| c.eq_ignore_ascii_case(from)));
                if dropped {
                    cx.invalid(
                        *key_pos,
                        &format!("{path}.rename.{from}"),
                        format!("column `{from}` is renamed but not replicated"),
                    );
                    ok = false;
                }
            }
        }
        match (table, include, exclude, rename) {
            (Some(table), Some(include), Some(exclude), Some(rename)) => rules.push(ColumnRule {
                table,
                include,
                exclude,
                rename: rename.into_iter().map(|(from, to, _)| (from, to)).collect(),
            }),
            _ => ok = false,
        }
    }
    ok.then(|| ColumnRules::new(rules))
}

fn renames(cx: &mut Cx<'_>, field: Field<'_>, path: &str) -> Option<Vec<(String, String, Pos)>> {
    let Kind::Map(entries) = &field.node.kind else {
        cx.map(field.node, path, field.key_pos, &[])?;
        return None;
    };
    let mut out: Vec<(String, String, Pos)> = Vec::new();
    let mut ok = true;
    for entry in entries {
        let entry_path = format!("{path}.{}", entry.key);
        if entry.key.is_empty() || entry.key.chars().count() > MAX_NAME {
            cx.invalid(
                entry.key_pos,
                &entry_path,
                format!("column names have 1 to {MAX_NAME} characters"),
            );
            ok = false;
            continue;
        }
        if out
            .iter()
            .any(|(from, _, _)| from.eq_ignore_ascii_case(&entry.key))
        {
            cx.error(
                entry.key_pos,
                &entry_path,
                ErrorKind::DuplicateKey,
                "column renamed twice",
            );
            ok = false;
            continue;
        }
        match column_name(cx, &entry.value, &entry_path) {
            Some(to) => out.push((entry.key.clone(), to, entry.key_pos)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn batch(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Batch> {
    const KEYS: &[&str] = &["max_rows", "max_bytes", "max_delay", "window"];
    let mut map = section(cx, root, "batch", field, KEYS)?;
    let defaults = Batch::default();
    let max_rows = match map.optional("max_rows") {
        Some(f) => cx
            .integer(f.node, "batch.max_rows", 1, 1_000_000)
            .map(|n| n as u64),
        None => Some(defaults.max_rows),
    };
    let max_bytes = match map.optional("max_bytes") {
        Some(f) => cx.size(f.node, "batch.max_bytes", 1 << 10, 1 << 30),
        None => Some(defaults.max_bytes),
    };
    let max_delay = match map.optional("max_delay") {
        Some(f) => cx.duration(f.node, "batch.max_delay", Duration::ZERO, MINUTE),
        None => Some(defaults.max_delay),
    };
    let window = match map.optional("window") {
        Some(f) => cx
            .integer(f.node, "batch.window", 1, 1024)
            .map(|n| n as u64),
        None => Some(defaults.window),
    };
    map.finish(cx);
    Some(Batch {
        max_rows: max_rows?,
        max_bytes: max_bytes?,
        max_delay: max_delay?,
        window: window?,
    })
}

fn load(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Load> {
    let mut map = section(cx, root, "load", field, &["workers", "ddl"])?;
    let defaults = Load::default();
    let workers = match map.optional("workers") {
        Some(f) => cx.integer(f.node, "load.workers", 1, 64).map(|n| n as u64),
        None => Some(defaults.workers),
    };
    let ddl = match map.optional("ddl") {
        Some(f) => cx
            .choice(f.node, "load.ddl", &["apply", "skip", "fail"])
            .map(|i| [DdlPolicy::Apply, DdlPolicy::Skip, DdlPolicy::Fail][i]),
        None => Some(defaults.ddl),
    };
    map.finish(cx);
    Some(Load {
        workers: workers?,
        ddl: ddl?,
    })
}

fn ha(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Ha> {
    let mut map = section(cx, root, "ha", field, &["lease_ttl", "standby_delay"])?;
    let defaults = Ha::default();
    let lease_ttl = match map.optional("lease_ttl") {
        Some(f) => cx
            .duration(f.node, "ha.lease_ttl", 2 * SECOND, HOUR)
            .and_then(|d| {
                if d.subsec_nanos() == 0 {
                    Some(d)
                } else {
                    cx.invalid(
                        f.node.pos,
                        "ha.lease_ttl",
                        "must be whole seconds (etcd leases have second granularity)",
                    );
                    None
                }
            }),
        None => Some(defaults.lease_ttl),
    };
    let standby_delay = match map.optional("standby_delay") {
        Some(f) => cx.duration(f.node, "ha.standby_delay", Duration::ZERO, HOUR),
        None => Some(defaults.standby_delay),
    };
    map.finish(cx);
    Some(Ha {
        lease_ttl: lease_ttl?,
        standby_delay: standby_delay?,
    })
}

fn node(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<NodeSettings> {
    let mut map = section(cx, root, "node", field, &["id", "stages"])?;
    let id = match map.optional("id") {
        Some(f) => cx.string(f.node, "node.id").and_then(|text| {
            let valid = !text.value.is_empty()
                && text.value.len() <= MAX_NAME
                && text
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if valid {
                Some(Some(text.value))
            } else {
                cx.invalid(
                    text.pos,
                    "node.id",
                    format!(
                        "invalid node id `{}` (use 1 to {MAX_NAME} characters from A-Z, a-z, 0-9, `_`, `.` and `-`)",
                        text.shown
                    ),
                );
                None
            }
        }),
        None => Some(None),
    };
    let stages = match map.optional("stages") {
        Some(f) => stages(cx, f),
        None => Some(Stage::ALL.to_vec()),
    };
    map.finish(cx);
    Some(NodeSettings {
        id: id?,
        stages: stages?,
    })
}

fn stages(cx: &mut Cx<'_>, field: Field<'_>) -> Option<Vec<Stage>> {
    let items = cx.seq(field.node, "node.stages")?;
    if items.is_empty() {
        cx.invalid(field.node.pos, "node.stages", "needs at least one stage");
        return None;
    }
    let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    let mut stages = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("node.stages[{i}]");
        match cx.choice(item, &path, &names) {
            Some(k) if stages.contains(&Stage::ALL[k]) => {
                cx.invalid(
                    item.pos,
                    &path,
                    format!("stage `{}` is listed twice", names[k]),
                );
                ok = false;
            }
            Some(k) => stages.push(Stage::ALL[k]),
            None => ok = false,
        }
    }
    stages.sort();
    ok.then_some(stages)
}

fn stages_section(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<StagesSettings> {
    const KEYS: &[&str] = &[
        "listen",
        "advertise",
        "window",
        "task_timeout",
        "fetch_timeout",
        "max_transfer",
    ];
    let mut map = section(cx, root, "stages", field, KEYS)?;
    let defaults = StagesSettings::default();
    let listen: Option<SocketAddr> = map.required(cx, "listen").and_then(|f| {
        let text = cx.nonempty_string(f.node, "stages.listen")?;
        match text.value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.invalid(
                    text.pos,
                    "stages.listen",
                    format!(
                        "invalid listen address `{}` (expected IP:PORT, e.g. 0.0.0.0:7070)",
                        text.shown
                    ),
                );
                None
            }
        }
    });
    let advertise = match map.optional("advertise") {
        Some(f) => cx.nonempty_string(f.node, "stages.advertise").and_then(|text| {
            let ok = (text.value.starts_with("http://") || text.value.starts_with("https://"))
                && text.value.len() > "https://".len();
            if ok {
                Some(Some(text.value.trim_end_matches('/').to_string()))
            } else {
                cx.invalid(
                    text.pos,
                    "stages.advertise",
                    format!(
                        "invalid URL `{}` (expected http://HOST:PORT, how other nodes reach this node's stage pipe)",
                        text.shown
                    ),
                );
                None
            }
        }),
        None => Some(None),
    };
    if let (Some(addr), Some(None), Some(f)) = (&listen, &advertise, map.optional("listen")) {
        if addr.ip().is_unspecified() {
            cx.invalid(
                f.node.pos,
                "stages.listen",
                "listening on all interfaces needs `stages.advertise` (the URL other nodes fetch batches from)",
            );
        }
    }
    let window = match map.optional("window") {
        Some(f) => cx
            .integer(f.node, "stages.window", 1, 1024)
            .map(|n| Some(n as u64)),
        None => Some(None),
    };
    let task_timeout = match map.optional("task_timeout") {
        Some(f) => cx.duration(f.node, "stages.task_timeout", SECOND, HOUR),
        None => Some(defaults.task_timeout),
    };
    let fetch_timeout = match map.optional("fetch_timeout") {
        Some(f) => cx.duration(
            f.node,
            "stages.fetch_timeout",
            Duration::from_millis(100),
            HOUR,
        ),
        None => Some(defaults.fetch_timeout),
    };
    let max_transfer = match map.optional("max_transfer") {
        Some(f) => cx.size(f.node, "stages.max_transfer", 1 << 20, 4 << 30),
        None => Some(defaults.max_transfer),
    };
    map.finish(cx);
    Some(StagesSettings {
        listen: listen?,
        advertise: advertise?,
        window: window?,
        task_timeout: task_timeout?,
        fetch_timeout: fetch_timeout?,
        max_transfer: max_transfer?,
    })
}

fn admin(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Admin> {
    let mut map = section(cx, root, "admin", field, &["listen", "token"])?;
    let listen = map.required(cx, "listen").and_then(|f| {
        let text = cx.nonempty_string(f.node, "admin.listen")?;
        match text.value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.invalid(
                    text.pos,
                    "admin.listen",
                    format!(
                        "invalid listen address `{}` (expected IP:PORT, e.g. 127.0.0.1:9090)",
                        text.shown
                    ),
                );
                None
            }
        }
    });
    let token = match map.optional("token") {
        Some(f) => cx.nonempty_string(f.node, "admin.token").and_then(|text| {
            // It goes into an HTTP header comparison: visible ASCII only.
            if text.value.bytes().all(|b| b.is_ascii_graphic()) {
                Some(Some(text.value))
            } else {
                cx.invalid(
                    text.pos,
                    "admin.token",
                    "use visible ASCII characters only (no spaces)",
                );
                None
            }
        }),
        None => Some(None),
    };
    map.finish(cx);
    Some(Admin {
        listen: listen?,
        token: token?,
    })
}

fn alarms(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Alarms> {
    let mut map = section(cx, root, "alarms", field, &["lag_threshold", "webhooks"])?;
    let defaults = Alarms::default();
    let lag_threshold = match map.optional("lag_threshold") {
        Some(f) => cx.duration(f.node, "alarms.lag_threshold", SECOND, 7 * 24 * HOUR),
        None => Some(defaults.lag_threshold),
    };
    let webhooks = match map.optional("webhooks") {
        Some(f) => cx.seq(f.node, "alarms.webhooks").and_then(|items| {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match webhook(cx, item, &format!("alarms.webhooks[{i}]")) {
                    Some(w) => out.push(w),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }),
        None => Some(Vec::new()),
    };
    map.finish(cx);
    Some(Alarms {
        lag_threshold: lag_threshold?,
        webhooks: webhooks?,
    })
}

fn webhook(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Webhook> {
    const KEYS: &[&str] = &["url", "headers", "timeout"];
    let mut map = cx.map(node, path, node.pos, KEYS)?;
    let url = map.required(cx, "url").and_then(|f| {
        let url_path = format!("{path}.url");
        let text = cx.nonempty_string(f.node, &url_path)?;
        match check_webhook_url(&text.value) {
            Ok(()) => Some(text.value),
            Err(why) => {
                // Hook URLs often carry their secret: show the text as
                // written (`${VAR}` stays unexpanded) only up to the host.
                let shown = Webhook {
                    url: text.shown.clone(),
                    headers: Vec::new(),
                    timeout: Duration::ZERO,
                }
                .shown_url();
                cx.invalid(text.pos, &url_path, format!("invalid URL `{shown}`: {why}"));
                None
            }
        }
    });
    let headers = match map.optional("headers") {
        Some(f) => webhook_headers(cx, f, &format!("{path}.headers")),
        None => Some(Vec::new()),
    };
    let timeout = match map.optional("timeout") {
        Some(f) => cx.duration(
            f.node,
            &format!("{path}.timeout"),
            Duration::from_millis(100),
            MINUTE,
        ),
        None => Some(5 * SECOND),
    };
    map.finish(cx);
    Some(Webhook {
        url: url?,
        headers: headers?,
        timeout: timeout?,
    })
}

/// `http(s)://host[:port][/path][?query]`, nothing the HTTP client would
/// refuse later.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected http://host/path or https://host/path".into());
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "unsupported scheme `{scheme}://` (use http:// or https://)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("credentials do not belong in the URL (use `headers`)".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("URLs cannot contain spaces or control characters".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if let Some(port) = authority.rsplit_once(':').map(|(_, p)| p) {
        if !authority.ends_with(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid port `{port}`"));
        }
    }
    Ok(())
}

fn webhook_headers(cx: &mut Cx<'_>, field: Field<'_>, path: &str) -> Option<Vec<(String, String)>> {
    let Kind::Map(entries) = &field.node.kind else {
        cx.map(field.node, path, field.key_pos, &[])?;
        return Some(Vec::new());
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut ok = true;
    for entry in entries {
        let entry_path = format!("{path}.{}", entry.key);
        // RFC 9110 token characters.
        let valid_name = !entry.key.is_empty()
            && entry
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            cx.invalid(entry.key_pos, &entry_path, "invalid HTTP header name");
            ok = false;
            continue;
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&entry.key)) {
            cx.error(
                entry.key_pos,
                &entry_path,
                ErrorKind::DuplicateKey,
                "header given twice",
            );
            ok = false;
            continue;
        }
        match cx.string(&entry.value, &entry_path) {
            Some(text)
                if text
                    .value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
            {
                out.push((entry.key.clone(), text.value));
            }
            Some(text) => {
                cx.invalid(
                    text.pos,
                    &entry_path,
                    "header values take printable ASCII only",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}
