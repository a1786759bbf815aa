//! `source`: where and as whom sluice reads the binlog, and where it starts.

use std::path::Path;
use std::time::Duration;

use sluice_core::{GtidSet, TlsConfig};

use crate::error::ErrorKind;
use crate::model::{Source, StartAt};
use crate::security;
use crate::url::DbUrl;
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::{Kind, Node};

use super::{db_url, section, HOUR};

pub(super) fn source(
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
