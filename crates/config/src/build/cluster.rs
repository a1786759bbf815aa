//! How nodes share a pipeline: `ha` (the active/standby lease), `node`
//! (this node's id and stages) and `stages` (distributed stages).

use std::net::SocketAddr;
use std::time::Duration;

use crate::model::{Ha, Node as NodeSettings, Stage, StagesSettings};
use crate::walk::{Cx, Field, MapReader};

use super::{section, HOUR, MAX_NAME, SECOND};

pub(super) fn ha(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Ha> {
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

pub(super) fn node(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<NodeSettings> {
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

pub(super) fn stages_section(
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
