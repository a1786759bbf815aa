//! `target`: the database sluice writes to.

use std::path::Path;

use sluice_core::TlsConfig;

use crate::model::Target;
use crate::security;
use crate::walk::{Cx, Field, MapReader};

use super::{db_url, section};

pub(super) fn target(
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
