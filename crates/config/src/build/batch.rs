//! `batch` (how the stream is cut) and `load` (how batches are applied).

use std::time::Duration;

use crate::model::{Batch, DdlPolicy, Load};
use crate::walk::{Cx, Field, MapReader};

use super::{section, MINUTE};

pub(super) fn batch(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Batch> {
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

pub(super) fn load(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Load> {
    let mut map = section(
        cx,
        root,
        "load",
        field,
        &["workers", "ddl", "statement_cache"],
    )?;
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
    let statement_cache = match map.optional("statement_cache") {
        Some(f) => cx
            .integer(f.node, "load.statement_cache", 0, 4096)
            .map(|n| n as u64),
        None => Some(defaults.statement_cache),
    };
    map.finish(cx);
    Some(Load {
        workers: workers?,
        ddl: ddl?,
        statement_cache: statement_cache?,
    })
}
