//! `coordination`: etcd (endpoints, prefix, TLS, credentials) or a local
//! directory for single-node runs.

use std::path::{Path, PathBuf};

use crate::error::ErrorKind;
use crate::model::Coordination;
use crate::security;
use crate::url::parse_etcd_endpoint;
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::Node;

use super::{resolve_dir, section};

pub(super) fn coordination(
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
