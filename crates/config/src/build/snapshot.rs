//! `snapshot`: copying existing rows before streaming, and its checks
//! against `source.start` and `stages`.

use crate::model::{OnNonempty, Snapshot, SnapshotMode, Source, StartAt};
use crate::walk::{Cx, Field, MapReader};

use super::section;

pub(super) fn snapshot(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<Snapshot> {
    const KEYS: &[&str] = &[
        "mode",
        "parallel",
        "chunk_rows",
        "create_tables",
        "on_nonempty",
    ];
    let mut map = section(cx, root, "snapshot", field, KEYS)?;
    let d = Snapshot::default();
    let mode = match map.optional("mode") {
        Some(f) => cx
            .choice(f.node, "snapshot.mode", &["never", "initial"])
            .map(|i| [SnapshotMode::Never, SnapshotMode::Initial][i]),
        None => Some(d.mode),
    };
    let parallel = match map.optional("parallel") {
        Some(f) => cx
            .integer(f.node, "snapshot.parallel", 1, 64)
            .map(|n| n as u64),
        None => Some(d.parallel),
    };
    let chunk_rows = match map.optional("chunk_rows") {
        Some(f) => cx
            .integer(f.node, "snapshot.chunk_rows", 100, 1_000_000)
            .map(|n| n as u64),
        None => Some(d.chunk_rows),
    };
    let create_tables = match map.optional("create_tables") {
        Some(f) => cx
            .choice(
                f.node,
                "snapshot.create_tables",
                &["true", "false", "True", "False", "TRUE", "FALSE"],
            )
            .map(|i| i % 2 == 0),
        None => Some(d.create_tables),
    };
    let on_nonempty = match map.optional("on_nonempty") {
        Some(f) => cx
            .choice(f.node, "snapshot.on_nonempty", &["refuse", "merge"])
            .map(|i| [OnNonempty::Refuse, OnNonempty::Merge][i]),
        None => Some(d.on_nonempty),
    };
    map.finish(cx);
    Some(Snapshot {
        mode: mode?,
        parallel: parallel?,
        chunk_rows: chunk_rows?,
        create_tables: create_tables?,
        on_nonempty: on_nonempty?,
    })
}

/// `mode: initial` decides where streaming starts, so `source.start` must
/// be `latest`. With `stages`, chunks are tasks on the board like batches.
pub(super) fn cross_check(
    cx: &mut Cx<'_>,
    field: Field<'_>,
    snap: &Snapshot,
    source: Option<&Source>,
) {
    if snap.mode != SnapshotMode::Initial {
        return;
    }
    if let Some(source) = source {
        if source.start != StartAt::Latest {
            cx.invalid(
                field.key_pos,
                "snapshot.mode",
                format!(
                    "`snapshot.mode: initial` decides where streaming starts (right before the first chunk is read); remove `source.start: {}` or set it to `latest`",
                    source.start
                ),
            );
        }
    }
}
