//! Streams and positions: what a source sends besides row events, and where
//! sluice stands in it.
//!
//! * Statement-format DML (a session with `binlog_format=STATEMENT` or
//!   `MIXED`, e.g. `pt-table-checksum`): skipped when every table it writes
//!   is outside the filter, refused with one message when it may write a
//!   replicated table (directly, through a trigger, a view or a stored
//!   function) or when that cannot be told.
//! * Positions across every kind of rotation (`FLUSH BINARY LOGS`, a
//!   graceful source restart that ends a file with STOP, a crashed source
//!   whose file just ends, `PURGE BINARY LOGS` while connected, the fake
//!   ROTATE of every new dump): every position sluice reports or stores is an
//!   event boundary of its file, as `mariadb-binlog` lists them, and a
//!   failover afterwards neither loses nor repeats a change (a keyless table
//!   would show a repeat).
//!
//! The helpers for reading etcd's position history and checking it against
//! the binlog files are shared with the fault soak.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_binlog::events::EventKind;
use sluice_binlog::stream::{ReplicaConfig, ReplicaStream, StartAt};
use sluice_testkit::{Etcd, MariaDb};

use crate::ha::{marker_latency, wait_leader};
use crate::ops::admin_addr;
use crate::pipeline::{server_id, start_of_binlog, write_config, Coord, Sluice, TestResult};
use crate::workload::{wait_until_same, CompareOpts};

// ---------------------------------------------------------------------------
// Shared helpers: binlog boundaries and etcd's position history
// ---------------------------------------------------------------------------

/// The event boundaries of a binlog file as `mariadb-binlog` lists them:
/// where each event starts (`# at N`) and ends (`end_log_pos N`).
pub(crate) fn event_boundaries(path: &Path) -> Result<BTreeSet<u64>, String> {
    let tool = sluice_testkit::find_binary("mariadb-binlog", "mariadb-client")
        .map_err(|e| e.to_string())?;
    let out = std::process::Command::new(tool)
        .arg("--no-defaults")
        .arg(path)
        .output()
        .map_err(|e| format!("running mariadb-binlog on {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "mariadb-binlog {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut at = BTreeSet::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# at ") {
            if let Ok(n) = n.trim().parse() {
                at.insert(n);
            }
        } else if let Some((_, rest)) = line.split_once(" end_log_pos ") {
            if let Some(Ok(n)) = rest.split_whitespace().next().map(str::parse) {
                at.insert(n);
            }
        }
    }
    if at.is_empty() {
        return Err(format!("no events listed for {}", path.display()));
    }
    Ok(at)
}

/// Boundaries of a source's binlog files, read from its data dir or, for
/// files purged since, from copies kept with [`Binlogs::keep`].
pub(crate) struct Binlogs {
    datadir: PathBuf,
    kept: tempfile::TempDir,
    cache: BTreeMap<String, BTreeSet<u64>>,
}

impl Binlogs {
    pub(crate) fn new(source: &MariaDb) -> Self {
        Binlogs {
            datadir: source.datadir(),
            kept: tempfile::tempdir().expect("a temp dir for binlog copies"),
            cache: BTreeMap::new(),
        }
    }

    /// Copies every binlog file of the source (before a PURGE).
    pub(crate) fn keep(&self) {
        for entry in std::fs::read_dir(&self.datadir).expect("read the datadir") {
            let entry = entry.expect("datadir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("mysql-bin.0") {
                std::fs::copy(entry.path(), self.kept.path().join(&name)).expect("copy a binlog");
            }
        }
    }

    /// Whether `offset` is an event boundary of `file`. A file still being
    /// written is read again when the offset is past what was seen.
    pub(crate) fn is_boundary(&mut self, file: &str, offset: u64) -> Result<bool, String> {
        let stale = self
            .cache
            .get(file)
            .is_none_or(|b| b.last().is_some_and(|&end| offset > end));
        if stale {
            let live = self.datadir.join(file);
            let path = if live.exists() {
                live
            } else {
                self.kept.path().join(file)
            };
            if !path.exists() {
                return Err(format!(
                    "binlog file {file} is neither on the source nor kept"
                ));
            }
            self.cache
                .insert(file.to_string(), event_boundaries(&path)?);
        }
        Ok(self.cache[file].contains(&offset))
    }
}

/// One version of a pipeline's position key in etcd.
#[derive(Debug, Clone)]
pub(crate) struct StoredPosition {
    pub revision: i64,
    pub file: String,
    pub offset: u64,
    pub batch_id: u64,
    pub leader_revision: i64,
    pub written_by: String,
}

impl std::fmt::Display for StoredPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rev {} {}:{} batch {} term {} by {}",
            self.revision,
            self.file,
            self.offset,
            self.batch_id,
            self.leader_revision,
            self.written_by
        )
    }
}

/// Every version of the pipeline's position key, oldest first (a watch
/// from revision 1 replays the key's whole history).
pub(crate) async fn position_history(etcd: &Etcd, pipeline: &str) -> Vec<StoredPosition> {
    let mut client = etcd.client().await.expect("etcd client");
    let key = sluice_coord::KeyLayout::new("/e2e")
        .and_then(|l| l.pipeline(pipeline))
        .expect("keys")
        .position();
    let got = client.get(key.as_str(), None).await.expect("etcd get");
    let Some(last) = got.kvs().first().map(|kv| kv.mod_revision()) else {
        return Vec::new();
    };
    let mut watch = client
        .watch(
            key.as_str(),
            Some(etcd_client::WatchOptions::new().with_start_revision(1)),
        )
        .await
        .expect("etcd watch");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out
        .last()
        .is_none_or(|p: &StoredPosition| p.revision < last)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, watch.message())
            .await
            .expect("the position history within 30 s")
            .expect("etcd watch message")
            .expect("the watch stays open");
        for event in message.events() {
            let Some(kv) = event.kv() else { continue };
            if event.event_type() != etcd_client::EventType::Put {
                continue;
            }
            let record: serde_json::Value =
                serde_json::from_slice(kv.value()).expect("a JSON position record");
            out.push(StoredPosition {
                revision: kv.mod_revision(),
                file: record["position"]["file"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                offset: record["position"]["offset"].as_u64().unwrap_or(0),
                batch_id: record["batch_id"].as_u64().unwrap_or(0),
                leader_revision: record["leader_revision"].as_i64().unwrap_or(0),
                written_by: record["written_by"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    out
}

/// The checks every position history must pass: batch ids, terms and
/// binlog positions never go back, and every position is an event boundary
/// of its file. Returns the problems found.
pub(crate) fn check_position_history(
    history: &[StoredPosition],
    binlogs: &mut Binlogs,
) -> Vec<String> {
    let mut problems = Vec::new();
    for pair in history.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.batch_id < a.batch_id {
            problems.push(format!("batch id went back: {a} then {b}"));
        }
        if b.leader_revision < a.leader_revision {
            problems.push(format!(
                "an older term wrote after a newer one: {a} then {b}"
            ));
        }
        let order = sluice_core::cmp_binlog_file_names(&a.file, &b.file)
            .map(|o| o.then(a.offset.cmp(&b.offset)));
        if order == Some(std::cmp::Ordering::Greater) {
            problems.push(format!("position went back: {a} then {b}"));
        }
    }
    for p in history {
        match binlogs.is_boundary(&p.file, p.offset) {
            Ok(true) => {}
            Ok(false) => problems.push(format!("not an event boundary of {}: {p}", p.file)),
            Err(e) => problems.push(format!("{p}: {e}")),
        }
    }
    problems
}

/// The source's current binlog file and end offset.
pub(crate) async fn binlog_end(source: &MariaDb) -> (String, u64) {
    let rows: Vec<mysql_async::Row> = source
        .query("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS");
    let row = rows.first().expect("binary logging is on");
    (row.get(0).expect("file"), row.get(1).expect("position"))
}

/// Waits until the stored position is at or past `want`.
pub(crate) async fn wait_stored_past(
    etcd: &Etcd,
    pipeline: &str,
    want: &(String, u64),
    timeout: Duration,
    nodes: &[&Sluice],
) {
    let reached = sluice_testkit::wait_until_async(
        "the stored position",
        timeout,
        Duration::from_millis(100),
        || async {
            let history = position_history(etcd, pipeline).await;
            let last = history.last()?;
            let order = sluice_core::cmp_binlog_file_names(&last.file, &want.0)
                .map(|o| o.then(last.offset.cmp(&want.1)));
            matches!(order, Some(o) if o != std::cmp::Ordering::Less).then_some(())
        },
    )
    .await;
    if let Err(e) = reached {
        let history = position_history(etcd, pipeline).await;
        let logs: Vec<String> = nodes.iter().map(|n| n.log_tail()).collect();
        panic!(
            "{e}: the stored position never reached {}:{} (last {:?}); logs:\n{}",
            want.0,
            want.1,
            history.last().map(ToString::to_string),
            logs.join("\n-----\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------

/// Writes `count` transactions: each inserts a keyed row and a keyless row
/// (every fifth keyless row twice: duplicates must stay duplicates), and
/// some update or delete earlier rows of both tables.
async fn write_both(source: &MariaDb, next: &mut i64, count: i64) {
    let mut conn = source.conn().await.expect("source connection");
    for _ in 0..count {
        let n = *next;
        *next += 1;
        let mut sql = format!(
            "START TRANSACTION; INSERT INTO shop.events VALUES ({n}, 'v{n}'); \
             INSERT INTO shop.log VALUES ({n}, 'v{n}');"
        );
        if n % 5 == 0 {
            sql.push_str(&format!("INSERT INTO shop.log VALUES ({n}, 'v{n}');"));
        }
        if n % 7 == 0 {
            sql.push_str(&format!(
                "UPDATE shop.events SET v = 'u{n}' WHERE id = {}; \
                 UPDATE shop.log SET v = 'u{n}' WHERE n = {};",
                n - 3,
                n - 3
            ));
        }
        if n % 11 == 0 {
            sql.push_str(&format!(
                "DELETE FROM shop.events WHERE id = {}; DELETE FROM shop.log WHERE n = {};",
                n - 6,
                n - 6
            ));
        }
        sql.push_str("COMMIT");
        conn.query_drop(sql).await.expect("source write");
    }
    let _ = conn.disconnect().await;
}

/// CRC-32 (IEEE), bit by bit: a few test events need no table.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A dump packet holding a fake ROTATE to `file` at `pos`, as a source
/// sends it before each file (artificial: timestamp and log_pos 0), with a
/// CRC32 once the stream carries checksums.
fn fake_rotate(file: &str, pos: u64, checksum: bool) -> Vec<u8> {
    let mut body = pos.to_le_bytes().to_vec();
    body.extend_from_slice(file.as_bytes());
    let size = 19 + body.len() + if checksum { 4 } else { 0 };
    let mut event = Vec::with_capacity(size);
    event.extend_from_slice(&0u32.to_le_bytes()); // timestamp
    event.push(4); // ROTATE
    event.extend_from_slice(&1u32.to_le_bytes()); // server id
    event.extend_from_slice(&(size as u32).to_le_bytes());
    event.extend_from_slice(&0u32.to_le_bytes()); // log_pos
    event.extend_from_slice(&0x20u16.to_le_bytes()); // LOG_EVENT_ARTIFICIAL_F
    event.extend_from_slice(&body);
    if checksum {
        let crc = crc32(&event);
        event.extend_from_slice(&crc.to_le_bytes());
    }
    let mut packet = vec![0u8];
    packet.extend(event);
    packet
}

/// A MySQL 8.0 binlog that ends with a STOP event (a graceful shutdown),
/// replayed as a dump of two such files: the source's fake ROTATE to the
/// second file must reset the offset, so each event of the second file has
/// the offsets it has in the file.
#[test]
fn fake_rotate_after_stop_resets_the_offset() {
    if crate::fixtures::absent("fake_rotate_after_stop_resets_the_offset") {
        return;
    }
    let rel = "blackbeam__rust_mysql_common/test-data/binlogs/binlog-invisible-columns.000001";
    let path = crate::fixtures::binlog(rel);
    let bytes = std::fs::read(&path).expect("fixture readable");
    let mut events = Vec::new();
    let mut at = 4usize;
    while at + 19 <= bytes.len() {
        let size = u32::from_le_bytes([
            bytes[at + 9],
            bytes[at + 10],
            bytes[at + 11],
            bytes[at + 12],
        ]) as usize;
        let mut packet = vec![0u8];
        packet.extend_from_slice(&bytes[at..at + size]);
        events.push(packet);
        at += size;
    }
    assert_eq!(at, bytes.len(), "whole events");
    let mut packets = vec![fake_rotate("binlog.000001", 4, false)];
    packets.extend(events.iter().cloned());
    packets.push(fake_rotate("binlog.000002", 4, true));
    packets.extend(events.iter().cloned());
    let streamed: Vec<(String, u64, u64)> = sluice_binlog::stream::replay_capture(packets)
        .map(|e| e.expect("decodes"))
        .map(|e| (e.file.to_string(), e.offset, e.next))
        .collect();
    let offline: Vec<(u64, u64)> = sluice_binlog::file::BinlogFile::open(&path, None)
        .expect("opens")
        .map(|e| e.expect("decodes"))
        .map(|e| (e.offset, e.next))
        .collect();
    let in_file = |name: &str| -> Vec<(u64, u64)> {
        streamed
            .iter()
            .filter(|(f, _, _)| f == name)
            .map(|(_, o, n)| (*o, *n))
            .collect()
    };
    assert!(!offline.is_empty());
    assert_eq!(in_file("binlog.000001"), offline);
    assert_eq!(
        in_file("binlog.000002"),
        offline,
        "offsets after the fake ROTATE"
    );
}

/// The live replica stream across every kind of rotation: the offset and
/// end of every event it reports are event boundaries of the file it
/// names, also after a reconnect.
#[tokio::test]
async fn stream_positions_are_event_boundaries_across_rotations() -> TestResult {
    let mut source = MariaDb::source().await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));
             CREATE TABLE shop.log (n BIGINT NOT NULL, v VARCHAR(20))",
        )
        .await?;
    let mut binlogs = Binlogs::new(&source);
    let (file, pos) = binlog_end(&source).await;
    let id = server_id();
    let mut start = StartAt::File { file, pos };
    let mut next = 1i64;
    // (file, offset, next, kind) of every event read.
    let mut seen: Vec<(String, u64, u64, &'static str)> = Vec::new();
    let mut commits = 0usize;
    let steps = ["flush", "restart", "crash", "purge", "end"];
    for step in steps {
        write_both(&source, &mut next, 20).await;
        let (end_file, end_pos) = binlog_end(&source).await;
        let cfg = ReplicaConfig::new(source.repl_url(), id, start.clone());
        let mut stream = connect_as_again(&cfg).await?;
        // Read up to the source's end.
        let started = Instant::now();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .map_err(|_| format!("no event before {end_file}:{end_pos} ({step})"))?
                .ok_or("stream ended")??;
            let kind = match &ev.kind {
                EventKind::Begin { .. } => "begin",
                EventKind::Commit { .. } => "commit",
                EventKind::Rows(_) => "rows",
                EventKind::Ddl { .. } => "ddl",
                EventKind::Rotate { .. } => "rotate",
                _ => "other",
            };
            if kind != "other" {
                seen.push((ev.file.to_string(), ev.offset, ev.next, kind));
            }
            if matches!(ev.kind, EventKind::Commit { .. } | EventKind::Ddl { .. }) {
                commits += 1;
                let at = stream.position_after(&ev);
                start = StartAt::File {
                    file: at.file.clone(),
                    pos: at.offset,
                };
                if at.file == end_file && at.offset >= end_pos {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{step}: too slow"
            );
        }
        // The rotation under test happens while the stream is connected.
        match step {
            "flush" => source.exec("FLUSH BINARY LOGS").await?,
            "restart" => {
                source.stop().await;
                source.start().await?;
            }
            "crash" => {
                source.kill();
                source.start().await?;
            }
            "purge" => {
                binlogs.keep();
                let (current, _) = binlog_end(&source).await;
                source
                    .exec(&format!("PURGE BINARY LOGS TO '{current}'"))
                    .await?;
            }
            _ => {}
        }
        stream.close().await;
    }
    let mut problems = Vec::new();
    for (file, offset, next, kind) in &seen {
        for at in [offset, next] {
            if !binlogs.is_boundary(file, *at)? {
                problems.push(format!(
                    "{kind} event at {file}:{offset}..{next}: {at} is not a boundary"
                ));
            }
        }
    }
    let files: BTreeSet<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    println!(
        "{} events in {} files ({files:?}), {commits} transactions",
        seen.len(),
        files.len()
    );
    // Four files: the first, then FLUSH, graceful restart, crash (PURGE
    // opens none).
    assert!(files.len() >= 4, "{files:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// An HA pair replicates while the source rotates in every way (FLUSH,
/// graceful restart, crash, PURGE while connected); then the active node
/// is SIGKILLed, and later the source restarts once more under the new
/// leader, which then hands over on SIGTERM. Nothing is lost or repeated
/// (the keyless table would show a repeat), and every position in etcd's
/// history moves forward and is an event boundary of its file.
#[tokio::test]
async fn positions_stay_exact_across_source_restarts_and_failover() -> TestResult {
    let name = "restarts";
    let (mut source, target, etcd, _dir, config) = crate::ha::setup(name).await?;
    source
        .exec("CREATE TABLE shop.log (n BIGINT NOT NULL, v VARCHAR(20))")
        .await?;
    let mut binlogs = Binlogs::new(&source);
    let mut a = Sluice::start_node(&config, "node-a", Some(server_id()));
    wait_leader(&etcd, name, Some("node-a"), Duration::from_secs(30)).await;
    let mut b = Sluice::start_node(&config, "node-b", Some(server_id()));
    marker_latency(&source, &target, 1, Duration::from_secs(30), &[&a]).await;

    let mut next = 1000i64;
    // Each phase ends with the stored position at the source's end, so
    // every file holds stored positions.
    let nodes = [&a, &b];
    write_both(&source, &mut next, 40).await;
    wait_stored_past(
        &etcd,
        name,
        &binlog_end(&source).await,
        Duration::from_secs(60),
        &nodes,
    )
    .await;
    source.exec("FLUSH BINARY LOGS").await?;
    write_both(&source, &mut next, 40).await;
    wait_stored_past(
        &etcd,
        name,
        &binlog_end(&source).await,
        Duration::from_secs(60),
        &nodes,
    )
    .await;
    source.stop().await;
    source.start().await?;
    write_both(&source, &mut next, 40).await;
    wait_stored_past(
        &etcd,
        name,
        &binlog_end(&source).await,
        Duration::from_secs(60),
        &nodes,
    )
    .await;
    source.kill();
    source.start().await?;
    write_both(&source, &mut next, 40).await;
    // Purge everything before the current file once the pipeline stores
    // positions in it (an older stored position would rightly be purged).
    let end = binlog_end(&source).await;
    wait_stored_past(&etcd, name, &end, Duration::from_secs(60), &nodes).await;
    binlogs.keep();
    source
        .exec(&format!("PURGE BINARY LOGS TO '{}'", end.0))
        .await?;
    write_both(&source, &mut next, 40).await;
    let end = binlog_end(&source).await;
    wait_stored_past(&etcd, name, &end, Duration::from_secs(60), &nodes).await;

    // Failover: node-b resumes from what node-a stored.
    a.kill().await;
    wait_leader(&etcd, name, Some("node-b"), Duration::from_secs(20)).await;
    write_both(&source, &mut next, 40).await;
    marker_latency(&source, &target, 2, Duration::from_secs(30), &[&b]).await;
    // The source restarts under node-b; then node-b hands over to node-a.
    source.stop().await;
    source.start().await?;
    write_both(&source, &mut next, 40).await;
    let end = binlog_end(&source).await;
    wait_stored_past(&etcd, name, &end, Duration::from_secs(60), &[&b]).await;
    a.restart();
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    wait_leader(&etcd, name, Some("node-a"), Duration::from_secs(20)).await;
    write_both(&source, &mut next, 40).await;
    marker_latency(&source, &target, 3, Duration::from_secs(30), &[&a]).await;

    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop",
        &CompareOpts::default(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nnode-a:\n{}\nnode-b:\n{}",
            a.log_tail(),
            b.log_tail()
        )
    });
    println!("target equals source: {report}");
    let end = binlog_end(&source).await;
    wait_stored_past(&etcd, name, &end, Duration::from_secs(60), &[&a]).await;
    let status = a.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", a.log_tail());

    let history = position_history(&etcd, name).await;
    let files: BTreeSet<&str> = history.iter().map(|p| p.file.as_str()).collect();
    println!(
        "{} stored positions in {files:?}; writers {:?}",
        history.len(),
        history
            .iter()
            .map(|p| p.written_by.as_str())
            .collect::<Vec<_>>()
            .dedup_by_key_owned()
    );
    let problems = check_position_history(&history, &mut binlogs);
    assert!(
        problems.is_empty(),
        "{}\nnode-a:\n{}\nnode-b:\n{}",
        problems.join("\n"),
        a.log_tail(),
        b.log_tail()
    );
    // The first file, FLUSH, graceful restart, crash, and the restart
    // under node-b: positions were stored in every one.
    assert!(files.len() >= 5, "positions stored in {files:?}");
    Ok(())
}

/// `Vec::dedup` as an expression.
trait DedupOwned<T> {
    fn dedup_by_key_owned(self) -> Vec<T>;
}

impl<T: PartialEq> DedupOwned<T> for Vec<T> {
    fn dedup_by_key_owned(mut self) -> Vec<T> {
        self.dedup();
        self
    }
}

// ---------------------------------------------------------------------------
// Statement-format DML
// ---------------------------------------------------------------------------

const STATEMENT_FILTER: &str = "filter: { include: ['shop\\..*'] }\n\
                                batch: { max_delay: 5ms }\n\
                                admin: { listen: \"127.0.0.1:0\" }\n";

/// A source with `shop` (replicated: a keyed and a keyless table) and
/// `other` (not replicated), where the replication user may see the
/// triggers of `other` and `percona` (what sluice needs to prove a
/// statement harmless).
async fn statement_source() -> Result<MariaDb, sluice_testkit::KitError> {
    let source = MariaDb::source().await?;
    source
        .exec(&format!(
            "CREATE DATABASE shop;
             CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));
             CREATE TABLE shop.log (n BIGINT NOT NULL, v VARCHAR(20));
             CREATE DATABASE other;
             CREATE TABLE other.a (id BIGINT PRIMARY KEY, v INT);
             CREATE TABLE other.b (id BIGINT PRIMARY KEY, v INT);
             GRANT TRIGGER ON other.* TO '{u}'@'127.0.0.1';
             GRANT TRIGGER ON percona.* TO '{u}'@'127.0.0.1';",
            u = sluice_testkit::REPL_USER
        ))
        .await?;
    Ok(source)
}

/// `pt-table-checksum` (which writes `percona.checksums` with
/// `binlog_format=STATEMENT` in its session) runs twice against the source
/// while sluice replicates `shop` under a write load, followed by every
/// other statement form writing only `other` (qualified and by default
/// schema, INSERT … SELECT from a replicated table, multi-table UPDATE and
/// DELETE, LOAD DATA, names of replicated tables in strings and comments),
/// in STATEMENT and MIXED sessions. The pipeline goes on, the target equals
/// the source, and the skipped statements are counted and logged.
#[tokio::test]
async fn pt_table_checksum_and_statements_outside_the_filter_are_skipped() -> TestResult {
    let (source, target) = tokio::try_join!(statement_source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let mut conn = source.conn().await?;
    for chunk in 0..6i64 {
        let values: Vec<String> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| format!("({i}, 'row {i}')"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO shop.events VALUES {}",
            values.join(",")
        ))
        .await?;
    }
    conn.query_drop("INSERT INTO shop.log VALUES (1, 'a'), (1, 'a'), (2, 'b')")
        .await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "checksummed",
        &source,
        &target,
        Coord::Local(&state),
        &start,
        STATEMENT_FILTER,
    );
    let mut sluice = Sluice::start(&config);

    // A write load on the replicated tables while the checksums run.
    let load = async {
        let mut conn = source.conn().await.expect("load connection");
        for i in 0..300i64 {
            conn.query_drop(format!(
                "INSERT INTO shop.events VALUES ({}, 'load'); INSERT INTO shop.log VALUES ({i}, 'load'); \
                 UPDATE shop.events SET v = 'upd' WHERE id = {i}",
                10_000 + i
            ))
            .await
            .expect("load write");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let checksum = async {
        let mut outputs = Vec::new();
        for _ in 0..2 {
            let out = tokio::process::Command::new("pt-table-checksum")
                .arg(format!("h=127.0.0.1,P={},u=root", source.port()))
                .args([
                    "--recursion-method=none",
                    "--databases=shop",
                    "--chunk-size=200",
                    "--no-check-replication-filters",
                ])
                .output()
                .await
                .expect("run pt-table-checksum (Debian package percona-toolkit)");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // Exit status bits: 8 = no replicas found, which is expected.
            assert!(
                matches!(out.status.code(), Some(0 | 8)),
                "pt-table-checksum failed ({:?}):\n{text}",
                out.status
            );
            outputs.push(text);
        }
        outputs
    };
    let ((), outputs) = tokio::join!(load, checksum);
    println!("pt-table-checksum:\n{}", outputs.join("\n"));
    let chunks: u64 = rows_u64(&source, "SELECT COUNT(*) FROM percona.checksums").await;
    assert!(chunks >= 15, "pt-table-checksum wrote {chunks} chunks");

    let data = dir.path().join("load.tsv");
    std::fs::write(&data, "900\t1\n901\t2\n")?;
    let statements = [
        "SET SESSION binlog_format = 'STATEMENT'".to_string(),
        "INSERT INTO other.a VALUES (1, 1), (2, 2)".into(),
        "USE other".into(),
        "INSERT a (id, v) VALUES (3, 3)".into(),
        "REPLACE INTO a VALUES (3, 4)".into(),
        "INSERT INTO other.a (id, v) SELECT id + 100000, 7 FROM shop.events WHERE id < 10".into(),
        "UPDATE other.a JOIN shop.events e ON e.id + 100000 = a.id SET a.v = a.v + 1".into(),
        "UPDATE other.a x, other.b y SET x.v = y.v WHERE x.id = y.id".into(),
        "INSERT INTO `other`.`b` /* shop.events */ VALUES (1, 'shop.events' = 'x'), (2, 2)".into(),
        "DELETE x FROM other.a x JOIN shop.events e ON e.id + 100000 = x.id WHERE e.id = 1".into(),
        "DELETE FROM other.b USING other.b JOIN other.a ON other.a.id = other.b.id WHERE other.a.v = 0"
            .into(),
        format!(
            "LOAD DATA INFILE '{}' INTO TABLE other.b",
            data.display()
        ),
        "UPDATE b SET v = v + 1 ORDER BY id LIMIT 1".into(),
        "DELETE FROM other.a WHERE id = 2".into(),
        "SET SESSION binlog_format = 'MIXED'".into(),
        "INSERT INTO other.a VALUES (4, 4)".into(),
        "UPDATE other.a SET v = 9 WHERE id = 4".into(),
        "DELETE FROM other.a WHERE id = 4".into(),
    ];
    for sql in &statements {
        conn.query_drop(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    drop(conn);
    marker(&source, 20_000).await;

    let report = wait_until_same(
        &source,
        "shop",
        &target,
        "shop",
        &CompareOpts::default(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", sluice.log_tail()));
    println!("target equals source: {report}");
    assert!(sluice.is_running(), "{}", sluice.log_tail());
    let schemas: Vec<String> = target
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('other', 'percona')")
        .await?;
    assert!(schemas.is_empty(), "{schemas:?} reached the target");

    let log = sluice.log_text();
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("statement-based DML outside the filter skipped"))
        .collect();
    for table in ["percona.checksums", "other.a", "other.b"] {
        assert!(
            skipped
                .iter()
                .any(|l| l.contains(&format!("table={table}"))),
            "no skip of {table} logged:\n{}",
            skipped.join("\n")
        );
    }
    let addr = admin_addr(&sluice).await;
    let (code, metrics) = crate::ops::get(&addr, "/metrics", None).await;
    assert_eq!(code, 200, "{metrics}");
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_statements_skipped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!("{} statements skipped ({} logged)", counted, skipped.len());
    assert_eq!(counted as usize, skipped.len(), "{metrics}");
    assert!(counted >= (chunks + 10) as f64, "{metrics}");
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

async fn rows_u64(db: &MariaDb, sql: &str) -> u64 {
    let got: Vec<u64> = db.query(sql).await.expect("query");
    got.first().copied().unwrap_or(0)
}

async fn marker(source: &MariaDb, id: i64) {
    source
        .exec(&format!("INSERT INTO shop.events VALUES ({id}, 'marker')"))
        .await
        .expect("marker");
}

/// Statement-format DML that writes, or may write, a replicated table, or
/// whose tables cannot be told, stops the pipeline at that event with one
/// message naming it — also after a restart. Each case is a pipeline of
/// its own starting right before its statement.
#[tokio::test]
async fn statements_that_may_write_replicated_tables_are_refused() -> TestResult {
    let (source, target) = tokio::try_join!(statement_source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("load.tsv");
    std::fs::write(&data, "1\tloaded\n")?;
    source
        .exec(
            "SET GLOBAL log_bin_trust_function_creators = 1;
             CREATE TRIGGER other.a_copy AFTER INSERT ON other.a FOR EACH ROW
               INSERT INTO shop.events VALUES (NEW.id + 5000, 'trigger');
             CREATE VIEW other.v AS SELECT id, v FROM shop.events;
             CREATE FUNCTION other.f() RETURNS INT MODIFIES SQL DATA
               BEGIN REPLACE INTO shop.events VALUES (6000, 'function'); RETURN 1; END;
             CREATE DATABASE hidden; CREATE TABLE hidden.t (id INT PRIMARY KEY);
             CREATE TABLE other.parent (id INT PRIMARY KEY);
             CREATE TABLE shop.child (id INT PRIMARY KEY, p INT,
               FOREIGN KEY (p) REFERENCES other.parent (id) ON DELETE CASCADE);
             INSERT INTO other.parent VALUES (1); INSERT INTO shop.child VALUES (1, 1);",
        )
        .await?;
    // (name, statement, what the stop message must say)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "direct",
            "UPDATE shop.events SET v = 'stmt' WHERE id = 1".into(),
            "writes `shop`.`events`",
        ),
        (
            "load",
            format!("LOAD DATA INFILE '{}' INTO TABLE shop.log", data.display()),
            "writes `shop`.`log`",
        ),
        (
            "default_schema",
            "/* USE shop */ INSERT INTO events VALUES (7, 'x')".into(),
            "writes `shop`.`events`",
        ),
        (
            "trigger",
            "INSERT INTO other.a VALUES (50, 50)".into(),
            "trigger `other`.`a_copy`",
        ),
        (
            "view",
            "UPDATE other.v SET v = 'view' WHERE id = 2".into(),
            "`other`.`v` is a view",
        ),
        (
            "function",
            "INSERT INTO other.b VALUES (other.f(), 1)".into(),
            "stored function `other`.`f`",
        ),
        (
            "cascade",
            "DELETE FROM other.parent WHERE id = 1".into(),
            "writes `shop`.`child`",
        ),
        (
            "no_trigger_privilege",
            "INSERT INTO hidden.t VALUES (1)".into(),
            "GRANT TRIGGER ON `hidden`.*",
        ),
        (
            "undetermined",
            "SELECT other.f()".into(),
            "cannot tell which tables",
        ),
    ];
    let mut conn = source.conn().await?;
    conn.query_drop("SET SESSION binlog_format = 'STATEMENT'")
        .await?;
    let mut runs = Vec::new();
    for (name, sql, want) in &cases {
        let use_schema = if *name == "default_schema" {
            "shop"
        } else {
            "other"
        };
        conn.query_drop(format!("USE {use_schema}")).await?;
        let (file, pos) = binlog_end(&source).await;
        conn.query_drop(sql.as_str())
            .await
            .map_err(|e| format!("{name}: {sql}: {e}"))?;
        let config = write_config(
            dir.path(),
            name,
            &source,
            &target,
            Coord::Local(&dir.path().join(format!("state-{name}"))),
            &format!("{{ file: {file}, pos: {pos} }}"),
            "filter: { include: ['shop\\..*'] }\nbatch: { max_delay: 5ms }\n",
        );
        runs.push((name, want, file, pos, config));
    }
    drop(conn);
    // The metadata tables first: several first-time migrations of one
    // target at once collide.
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["migrate", "--config"])
        .arg(&runs[0].4)
        .output()
        .await?;
    assert!(migrated.status.success(), "{migrated:?}");
    // All cases at once: each pipeline stops at its own statement.
    let mut nodes: Vec<Sluice> = runs.iter().map(|r| Sluice::start(&r.4)).collect();
    let mut failures = Vec::new();
    for (run, node) in runs.iter().zip(nodes.iter_mut()) {
        let (name, want, file, pos, _) = run;
        for attempt in 0..2 {
            if attempt == 1 {
                node.restart();
            }
            let status = node.wait(Duration::from_secs(60)).await;
            let log = node.log_text();
            let stops: Vec<&str> = log
                .lines()
                .filter(|l| l.starts_with(&format!("sluice: pipeline `{name}` stopped:")))
                .collect();
            let line = stops.last().copied().unwrap_or("<no stop line>");
            println!("{name}: {line}");
            if status.code() != Some(1)
                || stops.len() != attempt + 1
                || !line.contains(*want)
                || !line.contains(&format!("{file}: offset "))
                || !line.contains("statement-based DML")
            {
                failures.push(format!(
                    "{name} (run {}): exit {status:?}, want `{want}` at {file} after {pos}:\n{}",
                    attempt + 1,
                    node.log_tail()
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Nothing of the refused statements reached the target.
    let got: Vec<u64> = target
        .query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'")
        .await?;
    println!("target tables in shop: {got:?}");
    Ok(())
}

/// Connects `cfg`'s replica, waiting out the source's memory of this
/// server id's previous dump (just closed, or cut by the source's restart):
/// the server drops it only when it next writes to that connection.
async fn connect_as_again(
    cfg: &ReplicaConfig,
) -> Result<ReplicaStream, Box<dyn std::error::Error>> {
    let connected = sluice_testkit::wait_until_async(
        "the source to forget this server id's previous dump",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            match ReplicaStream::connect(cfg).await {
                Err(sluice_binlog::BinlogError::ServerIdInUse { .. }) => None,
                other => Some(other),
            }
        },
    )
    .await?;
    Ok(connected?)
}
