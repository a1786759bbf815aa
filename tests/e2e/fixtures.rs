//! Shared access to the external binlog corpus (`SLUICE_FIXTURES`, default
//! `<repo>/../shared/fixtures`): the real binlogs and their MANIFEST.
//!
//! Every test that reads it starts with `if fixtures::absent("name") {
//! return; }`: without the corpus it reports itself as not run (one line)
//! instead of failing, unless `SLUICE_REQUIRE_FIXTURES=1` (CI) makes that a
//! failure. See `sluice_testkit::corpus`.

use std::path::PathBuf;

use sluice_binlog::events::EventKind;
use sluice_binlog::output::LinePrinter;
use sluice_binlog::Event;

/// True (after one "not run" line) when the corpus is absent; see the
/// module docs.
pub fn absent(test: &str) -> bool {
    sluice_testkit::skip_without_fixtures(&format!("binlog_fixtures::{test}"))
}

/// The corpus directory. Only call it after [`absent`] said it is there.
pub fn dir() -> PathBuf {
    let dir = sluice_testkit::corpus::fixtures_dir();
    assert!(
        dir.join("MANIFEST.txt").is_file(),
        "binlog corpus not found at {}: start the test with `if fixtures::absent(..) {{ return; }}`",
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

/// Without the corpus a corpus test passes reporting one "not run" line; with
/// `SLUICE_REQUIRE_FIXTURES=1` it fails instead (the test binary runs one of
/// its own corpus tests as a child, pointed at a directory that does not exist).
#[test]
fn missing_corpus_is_reported_or_fails_when_required() {
    if std::env::var_os("SLUICE_FIXTURES_CHILD").is_some() {
        return; // never recurse
    }
    let missing = tempfile::tempdir().expect("tempdir");
    let missing = missing.path().join("no-corpus-here");
    let run = |require: &str| {
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["binlog_fixtures::mysql_json_fixtures", "--exact"])
            .env("SLUICE_FIXTURES_CHILD", "1")
            .env(sluice_testkit::corpus::FIXTURES_ENV, &missing)
            .env(sluice_testkit::corpus::REQUIRE_ENV, require)
            .output()
            .expect("test binary runs")
    };
    let out = run("");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{stderr}"
    );
    let reports: Vec<&str> = stderr.lines().filter(|l| l.contains("not run:")).collect();
    assert_eq!(
        reports,
        [format!(
            "binlog_fixtures::mysql_json_fixtures: not run: binlog corpus not found at {} (set SLUICE_FIXTURES to its directory)",
            missing.display()
        )],
        "{stderr}"
    );

    let out = run("1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.contains("1 failed"),
        "required corpus missing must fail:\n{stdout}"
    );
    assert!(
        stdout.contains("SLUICE_REQUIRE_FIXTURES is set"),
        "{stdout}"
    );
}
