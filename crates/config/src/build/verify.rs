//! `verify`: continuous verification by the active node (interval, rate,
//! chunk size). Every key is checked and every error reported at once.

use crate::model::VerifySettings;
use crate::walk::{Cx, Field, MapReader};

use super::{section, HOUR, SECOND};

/// Rows per chunk when `verify.chunk_rows` is absent (as `sluice verify`).
const DEFAULT_CHUNK_ROWS: u64 = 1000;

pub(super) fn verify(
    cx: &mut Cx<'_>,
    root: &MapReader<'_>,
    field: Field<'_>,
) -> Option<VerifySettings> {
    let mut map = section(
        cx,
        root,
        "verify",
        field,
        &["interval", "rate", "chunk_rows"],
    )?;
    let interval = map
        .required(cx, "interval")
        .and_then(|f| cx.duration(f.node, "verify.interval", SECOND, 365 * 24 * HOUR));
    let rate = map
        .required(cx, "rate")
        .and_then(|f| cx.integer(f.node, "verify.rate", 1, i128::from(u32::MAX)))
        .map(|n| n as u64);
    let chunk_rows = match map.optional("chunk_rows") {
        Some(f) => cx
            .integer(f.node, "verify.chunk_rows", 1, 1_000_000)
            .map(|n| n as u64),
        None => Some(DEFAULT_CHUNK_ROWS),
    };
    map.finish(cx);
    Some(VerifySettings {
        interval: interval?,
        rate: rate?,
        chunk_rows: chunk_rows?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    fn load(yaml: &str) -> Result<crate::Pipeline, String> {
        crate::parse(yaml, "p.yaml", &|_| None).map_err(|e| e.to_string())
    }

    const BASE: &str = "name: p\nsource: { url: \"mysql://u@127.0.0.1:13306\", server_id: 7 }\ntarget: { url: \"mysql://root@127.0.0.1:13307\" }\n";

    #[test]
    fn verify_section_parses_with_defaults() {
        let p = load(&format!("{BASE}verify: {{ interval: 6h, rate: 20000 }}\n")).unwrap();
        let v = p.verify.unwrap();
        assert_eq!(v.interval, Duration::from_secs(6 * 3600));
        assert_eq!((v.rate, v.chunk_rows), (20000, 1000));
        assert!(load(BASE).unwrap().verify.is_none());
    }

    #[test]
    fn verify_errors_are_all_reported_with_positions() {
        let err = load(&format!(
            "{BASE}verify:\n  interval: 10ms\n  rate: 0\n  chunk_rows: 5\n  extra: 1\n"
        ))
        .unwrap_err();
        for want in [
            "p.yaml:5:13",
            "verify.interval",
            "p.yaml:6:9",
            "verify.rate",
            "verify.extra",
        ] {
            assert!(err.contains(want), "{want} missing in {err}");
        }
        let err = load(&format!("{BASE}verify:\n  chunk_rows: 5\n")).unwrap_err();
        assert!(
            err.contains("verify.interval") && err.contains("verify.rate"),
            "{err}"
        );
    }
}
