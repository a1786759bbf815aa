//! Shared access to `../shared/fixtures`: the real binlogs and their MANIFEST.

use std::path::{Path, PathBuf};

use sluice_binlog::events::EventKind;
use sluice_binlog::output::LinePrinter;
use sluice_binlog::Event;

/// `<repo>/../shared/fixtures`; a missing directory is a failure, not a skip.
pub fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.join("MANIFEST.txt").is_file(),
        "fixtures not found at {} (tests expect the shared/ folder beside the repo)",
        dir.display()
    );
    dir
}

/// One MANIFEST entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: String,
    pub negative: bool,
}

pub fn manifest() -> Vec<Entry> {
    let dir = dir();
    let text = std::fs::read_to_string(dir.join("MANIFEST.txt")).expect("MANIFEST.txt readable");
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("- file: ") {
            let (file, kind) = rest.rsplit_once('[').expect("entry has a [kind]");
            entries.push(Entry {
                path: dir.join(file.trim()),
                kind: kind.trim_end_matches(']').to_string(),
                negative: kind.starts_with("negative"),
            });
        } else if let (Some(last), Some(desc)) = (
            entries.last_mut(),
            line.trim_start().strip_prefix("description: "),
        ) {
            let desc = desc.trim_start_matches("[mysql-test] ");
            if desc.starts_with("NEGATIVE") {
                last.negative = true;
            }
        }
    }
    assert!(
        entries.len() > 150,
        "MANIFEST parsed only {} entries",
        entries.len()
    );
    entries
}

/// The fixture at a path relative to `fixtures/binlogs/`.
pub fn binlog(rel: &str) -> PathBuf {
    let p = dir().join("binlogs").join(rel);
    assert!(p.is_file(), "fixture {} missing", p.display());
    p
}

/// Events to the JSON Lines the CLI prints, as parsed JSON values.
pub fn to_lines(events: impl IntoIterator<Item = Event>) -> Vec<serde_json::Value> {
    to_lines_except(events, None)
}

/// As [`to_lines`], leaving out the rows of one table (whose decoding a test
/// checks separately). Uses the CLI's own printer.
pub fn to_lines_except(
    events: impl IntoIterator<Item = Event>,
    skip_table: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut printer = LinePrinter::default();
    let mut out = Vec::new();
    for event in events {
        if let EventKind::Rows(rows) = &event.kind {
            if Some(rows.table.table.as_str()) == skip_table {
                continue;
            }
        }
        printer
            .print(&event, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    String::from_utf8(out)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Decodes a `.packets.hex` capture through the replica-stream path.
pub fn capture(rel: &str) -> Vec<serde_json::Value> {
    to_lines(capture_events(rel))
}

/// The events of a `.packets.hex` capture.
pub fn capture_events(rel: &str) -> Vec<Event> {
    let text = std::fs::read_to_string(binlog(rel)).expect("capture readable");
    let packets: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            (0..l.trim().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l.trim()[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect();
    sluice_binlog::stream::replay_capture(packets)
        .map(|r| r.unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

/// Decodes a binlog file through the library.
pub fn file(rel: &str) -> Vec<serde_json::Value> {
    let events: Vec<Event> = sluice_binlog::file::BinlogFile::open(&binlog(rel), None)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect();
    to_lines(events)
}

/// Row-change lines only.
pub fn rows(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines
        .iter()
        .filter(|l| matches!(l["kind"].as_str(), Some("insert" | "update" | "delete")))
        .collect()
}
