//! `bidirectional`: one direction of an active-active pair.
//!
//! The section is read on its own here; what it must agree with elsewhere
//! (the peer is not this pipeline, the tags differ from `source.server_id`,
//! `tagging: marker` with `load.ddl`) is checked in [`super::pipeline`]
//! once both sides are valid.

use crate::model::{tag_server_id, Bidirectional, ConflictPolicy, Tagging};
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::Kind;

use super::{section, MAX_NAME};

pub(super) fn bidirectional(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<Bidirectional> {
    const KEYS: &[&str] = &[
        "peer",
        "conflicts",
        "tagging",
        "server_id",
        "peer_server_id",
    ];
    let mut map = section(cx, root, "bidirectional", field, KEYS)?;
    let peer = map.required(cx, "peer").and_then(|f| {
        let text = cx.string(f.node, "bidirectional.peer")?;
        let valid = !text.value.is_empty()
            && text.value.len() <= MAX_NAME
            && text
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            cx.invalid(
                text.pos,
                "bidirectional.peer",
                format!(
                    "invalid pipeline name `{}` (the peer's `name`: 1 to {MAX_NAME} characters from a-z, 0-9, `_` and `-`)",
                    text.shown
                ),
            );
            return None;
        }
        Some(text.value)
    });
    let conflicts = match map.optional("conflicts") {
        Some(f) => conflicts(cx, f),
        None => Some(ConflictPolicy::SourceWins),
    };
    let tagging = match map.optional("tagging") {
        Some(f) => cx
            .choice(f.node, "bidirectional.tagging", &["server_id", "marker"])
            .map(|i| [Tagging::ServerId, Tagging::Marker][i]),
        None => Some(Tagging::ServerId),
    };
    let tag = match map.optional("server_id") {
        Some(f) => cx
            .integer(f.node, "bidirectional.server_id", 1, i128::from(u32::MAX))
            .map(|n| Some(n as u32)),
        None => Some(None),
    };
    let peer_tag = match map.optional("peer_server_id") {
        Some(f) => cx
            .integer(
                f.node,
                "bidirectional.peer_server_id",
                1,
                i128::from(u32::MAX),
            )
            .map(|n| Some(n as u32)),
        None => Some(None),
    };
    map.finish(cx);
    let peer = peer?;
    Some(Bidirectional {
        peer_tag: peer_tag?.unwrap_or_else(|| tag_server_id(&peer)),
        peer,
        conflicts: conflicts?,
        tagging: tagging?,
        // Filled in from the pipeline's name by the caller when not given.
        tag: tag?.unwrap_or(0),
    })
}

/// `source_wins | target_wins | stop | {newer_wins: COLUMN}`.
fn conflicts(cx: &mut Cx<'_>, field: Field<'_>) -> Option<ConflictPolicy> {
    const PATH: &str = "bidirectional.conflicts";
    if let Kind::Map(_) = field.node.kind {
        let mut map = cx.map(field.node, PATH, field.key_pos, &["newer_wins"])?;
        let column = map
            .required(cx, "newer_wins")
            .and_then(|f| cx.nonempty_string(f.node, "bidirectional.conflicts.newer_wins"));
        map.finish(cx);
        let column = column?;
        if column.value.chars().count() > MAX_NAME {
            cx.invalid(
                column.pos,
                "bidirectional.conflicts.newer_wins",
                format!("a column name has at most {MAX_NAME} characters"),
            );
            return None;
        }
        return Some(ConflictPolicy::NewerWins(column.value));
    }
    cx.choice(
        field.node,
        PATH,
        &["source_wins", "target_wins", "stop", "newer_wins"],
    )
    .and_then(|i| match i {
        0 => Some(ConflictPolicy::SourceWins),
        1 => Some(ConflictPolicy::TargetWins),
        2 => Some(ConflictPolicy::Stop),
        _ => {
            cx.invalid(
                field.node.pos,
                PATH,
                "`newer_wins` needs the column that orders the images: `conflicts: {newer_wins: updated_at}`",
            );
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::{parse, ConflictPolicy, Pipeline, Tagging};

    const BASE: &str = "\
name: a2b
source: { url: \"mysql://repl@127.0.0.1:13306\", server_id: 4001 }
target: { url: \"mysql://root@127.0.0.1:13307\" }
";

    fn parsed(extra: &str) -> Result<Pipeline, Vec<String>> {
        parse(&format!("{BASE}{extra}"), "p.yaml", &|_| None)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_derive_both_tags_from_the_names() {
        let p = parsed("bidirectional: { peer: b2a }\n").unwrap();
        let b = p.bidirectional.unwrap();
        assert_eq!(b.peer, "b2a");
        assert_eq!(b.conflicts, ConflictPolicy::SourceWins);
        assert_eq!(b.tagging, Tagging::ServerId);
        assert_eq!(b.tag, crate::tag_server_id("a2b"));
        assert_eq!(b.peer_tag, crate::tag_server_id("b2a"));
        assert_ne!(b.tag, b.peer_tag);
        assert!(b.tag >= 1 << 31 && b.peer_tag >= 1 << 31);
        assert!(parsed("").unwrap().bidirectional.is_none());
    }

    #[test]
    fn every_policy_and_explicit_tags() {
        let p = parsed(
            "bidirectional:\n  peer: b2a\n  conflicts: { newer_wins: updated_at }\n  server_id: 9001\n  peer_server_id: 9002\n",
        )
        .unwrap();
        let b = p.bidirectional.unwrap();
        assert_eq!(b.conflicts, ConflictPolicy::NewerWins("updated_at".into()));
        assert_eq!((b.tag, b.peer_tag), (9001, 9002));
        for (text, want) in [
            ("target_wins", ConflictPolicy::TargetWins),
            ("stop", ConflictPolicy::Stop),
            ("source_wins", ConflictPolicy::SourceWins),
        ] {
            let p = parsed(&format!(
                "bidirectional: {{ peer: b2a, conflicts: {text} }}\n"
            ))
            .unwrap();
            assert_eq!(p.bidirectional.unwrap().conflicts, want);
        }
    }

    #[test]
    fn all_errors_at_once_with_positions() {
        let e = parsed(
            "bidirectional:\n  peer: a2b\n  conflicts: newest\n  tagging: flag\n  server_id: 4001\n  colour: red\n",
        )
        .unwrap_err();
        let text = e.join("\n");
        assert!(
            text.contains("p.yaml:6:14: bidirectional.conflicts: `newest` is not one of"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:7:12: bidirectional.tagging: `flag` is not one of"),
            "{text}"
        );
        assert!(text.contains("p.yaml:9:3: bidirectional.colour"), "{text}");
        assert_eq!(e.len(), 3, "{text}");
        // Cross checks run once the section itself is valid.
        let e = parsed("bidirectional:\n  peer: a2b\n  server_id: 4001\n").unwrap_err();
        let text = e.join("\n");
        assert!(
            text.contains("p.yaml:4:1: bidirectional.peer: the peer is the pipeline replicating the other way"),
            "{text}"
        );
        assert!(
            text.contains(
                "p.yaml:4:1: bidirectional.server_id: tag 4001 equals `source.server_id`"
            ),
            "{text}"
        );
        assert_eq!(e.len(), 2, "{text}");
    }

    #[test]
    fn tags_must_differ_from_each_other_and_the_source() {
        let e =
            parsed("bidirectional: { peer: b2a, server_id: 7, peer_server_id: 7 }\n").unwrap_err();
        assert!(
            e.len() == 1 && e[0].contains("this pipeline's tag 7 equals its peer's"),
            "{e:?}"
        );
        let e = parsed("bidirectional: { peer: b2a, peer_server_id: 4001 }\n").unwrap_err();
        assert!(
            e.len() == 1
                && e[0]
                    .contains("bidirectional.peer_server_id: tag 4001 equals `source.server_id`"),
            "{e:?}"
        );
        let e = parsed("bidirectional: { peer: b2a, server_id: 0 }\n").unwrap_err();
        assert!(e[0].contains("bidirectional.server_id"), "{e:?}");
        let long = "c".repeat(65);
        let e = parsed(&format!(
            "bidirectional: {{ peer: b2a, conflicts: {{ newer_wins: {long} }} }}\n"
        ))
        .unwrap_err();
        assert!(e[0].contains("at most"), "{e:?}");
        let e =
            parsed("bidirectional: { peer: b2a, conflicts: { newer_wins: '' } }\n").unwrap_err();
        assert!(e[0].contains("bidirectional.conflicts.newer_wins"), "{e:?}");
        let p =
            parsed("load: { ddl: fail }\nbidirectional: { peer: b2a, tagging: marker }\n").unwrap();
        assert_eq!(p.bidirectional.unwrap().tagging, Tagging::Marker);
    }

    #[test]
    fn marker_tagging_needs_ddl_skip_or_fail() {
        let e = parsed("bidirectional: { peer: b2a, tagging: marker }\n").unwrap_err();
        assert!(
            e[0].contains("with `tagging: marker` set `load.ddl`"),
            "{e:?}"
        );
        assert!(
            parsed("load: { ddl: skip }\nbidirectional: { peer: b2a, tagging: marker }\n").is_ok()
        );
        let e = parsed("bidirectional: { peer: b2a, conflicts: newer_wins }\n").unwrap_err();
        assert!(e[0].contains("`newer_wins` needs the column"), "{e:?}");
        let e = parsed("bidirectional: { peer: B2A }\n").unwrap_err();
        assert!(e[0].contains("invalid pipeline name `B2A`"), "{e:?}");
    }
}
