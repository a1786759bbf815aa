//! Active-active pairs (`bidirectional:`): two MariaDBs, both with the
//! binlog on, each the source of one pipeline and the target of the other
//! (`a2b`, `b2a`), positions in one etcd.
//!
//! * Loop prevention: concurrent write loads on disjoint keys of both
//!   sides end equal; each server's binlog holds, for the keys its own load
//!   wrote, exactly that load's row changes, all under its own server id
//!   (nothing came back, not even a no-op upsert), and the peer's copy
//!   arrives under the peer's tag; a transaction split across batches
//!   (b2a's batch counter grows by two or more) is not replicated back; and
//!   once the loads stop, both binlogs stop growing (bytes and GTID
//!   positions sampled over 10 s).
//! * `sluice verify` of both directions reports equal at the end; a
//!   `verify --repair` on B is dropped by b2a (its writes carry the tag or
//!   the marker row).
//! * Conflict policies `stop` and `newer_wins` are in `bidi_conflicts`.
//! * Tagging refusal: a target user that may not set its session
//!   `server_id` is refused before anything is applied, with one message
//!   naming the privilege.
//! * Conflicts: rows updated on both sides while both pipelines were down,
//!   with `source_wins` on a2b and `target_wins` on b2a (A is the home site),
//!   end with A's values on both; every conflict is recorded in
//!   `sluice_meta.conflicts` on the target that met it, counted in
//!   `sluice_conflicts_total` and sent as a `conflict` event.
//!
//! Binlogs are read with sluice's own offline decoder
//! (`sluice_binlog::file`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_binlog::EventKind;
use sluice_core::{ChangeKind, Value};
use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::{free_port, Etcd, MariaDb};

use crate::ops::{get, metric};
use crate::support::cli::{json_of, run_sluice};
use crate::support::sql::{number, rows};
use crate::support::{write_config, Coord, Sluice, TestResult};

/// Keys each site's load writes: A below, B from here.
pub(crate) const B_KEYS: i64 = 1_000_000;

pub(crate) struct Pair {
    pub(crate) a: MariaDb,
    pub(crate) b: MariaDb,
    _etcd: Etcd,
    pub(crate) dir: tempfile::TempDir,
}

impl Pair {
    pub(crate) async fn start() -> Self {
        let (a, b, etcd) = tokio::join!(MariaDb::source(), MariaDb::source(), Etcd::start());
        let (a, b, etcd) = (a.expect("A"), b.expect("B"), etcd.expect("etcd"));
        for db in [&a, &b] {
            // Created on each side outside the binlog: the pipelines start
            // at `latest` afterwards.
            db.exec(
                "SET sql_log_bin = 0; CREATE DATABASE app; \
                 CREATE TABLE app.t (id BIGINT PRIMARY KEY, site VARCHAR(8) NOT NULL, \
                 n INT NOT NULL, v VARCHAR(64) NOT NULL, updated_at BIGINT NOT NULL DEFAULT 0)",
            )
            .await
            .expect("schema");
        }
        Pair {
            a,
            b,
            _etcd: etcd,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The pipeline file of one direction.
    pub(crate) fn config(
        &self,
        name: &str,
        source: &MariaDb,
        target: &MariaDb,
        bidi: &str,
        extra: &str,
    ) -> PathBuf {
        write_config(
            self.dir.path(),
            name,
            source,
            target,
            Coord::Etcd(&self._etcd),
            "latest",
            &format!(
                "filter: {{ include: ['app\\..*'] }}\n\
                 batch: {{ max_rows: 200, max_delay: 5ms }}\n\
                 load: {{ workers: 3, ddl: skip }}\n\
                 bidirectional: {bidi}\n{extra}"
            ),
        )
    }
}

/// Waits until `node` dumps (it starts at `latest`), then until a row
/// written on `from` arrives on `to`.
pub(crate) async fn probe(from: &MariaDb, to: &MariaDb, id: i64, node: &Sluice) {
    sluice_testkit::wait_until_async(
        "the binlog dump to start",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            node.log_text()
                .contains("binlog dump started")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
    from.exec(&format!(
        "INSERT INTO app.t (id, site, n, v) VALUES ({id}, 'probe', 0, 'p')"
    ))
    .await
    .expect("probe");
    let sql = format!("SELECT COUNT(*) FROM app.t WHERE id = {id}");
    sluice_testkit::wait_until_async(
        "the probe row to arrive",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { (number(to, &sql).await == Some(1)).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
}

/// A bounded write load on keys `base..`: inserts, updates that change
/// the row, deletes; with `big`, one transaction of `big` inserts. Returns
/// the row changes it made per key (what the server's binlog must hold).
async fn load(db: &MariaDb, site: &str, base: i64, txns: u32, big: u32) -> BTreeMap<i64, u64> {
    let mut conn = db.conn().await.expect("connect");
    use mysql_async::prelude::Queryable;
    let mut changes: BTreeMap<i64, u64> = BTreeMap::new();
    let mut rng = sluice_testkit::workload::Rng::new(base as u64 + 7);
    let mut next = base + 1;
    for t in 0..txns {
        conn.query_drop("BEGIN").await.expect("begin");
        for _ in 0..3 {
            let id = next;
            next += 1;
            conn.exec_drop(
                "INSERT INTO app.t (id, site, n, v) VALUES (?, ?, 0, ?)",
                (id, site, format!("{site}-{t}")),
            )
            .await
            .expect("insert");
            *changes.entry(id).or_default() += 1;
        }
        let id = base + 1 + rng.below((next - base - 1) as u64) as i64;
        conn.exec_drop(
            "UPDATE app.t SET n = n + 1, v = ? WHERE id = ?",
            (format!("u{t}"), id),
        )
        .await
        .expect("update");
        let hit = conn.affected_rows();
        *changes.entry(id).or_default() += hit;
        if t % 7 == 3 {
            let id = base + 1 + rng.below((next - base - 1) as u64) as i64;
            conn.exec_drop("DELETE FROM app.t WHERE id = ?", (id,))
                .await
                .expect("delete");
            let hit = conn.affected_rows();
            *changes.entry(id).or_default() += hit;
        }
        conn.query_drop("COMMIT").await.expect("commit");
    }
    if big > 0 {
        conn.query_drop("BEGIN").await.expect("begin");
        let start = next;
        conn.query_drop(format!(
            "INSERT INTO app.t (id, site, n, v) SELECT {start} + seq, '{site}', 0, 'big' FROM app.seq_0_to_{}",
            big - 1
        ))
        .await
        .expect("big insert");
        conn.query_drop("COMMIT").await.expect("commit");
        for id in start..start + i64::from(big) {
            *changes.entry(id).or_default() += 1;
        }
    }
    changes
}

/// Per key of `app.t`: the row changes in `db`'s binlogs, by the server id
/// in their event headers.
fn binlog_changes(db: &MariaDb, files: &[String]) -> BTreeMap<i64, BTreeMap<u32, u64>> {
    let mut out: BTreeMap<i64, BTreeMap<u32, u64>> = BTreeMap::new();
    for file in files {
        let path = db.binlog_path(file);
        for event in sluice_binlog::file::BinlogFile::open(&path, None).expect("open binlog") {
            let event = event.expect("binlog event");
            let EventKind::Rows(rows) = &event.kind else {
                continue;
            };
            if rows.table.schema != "app" || rows.table.table != "t" {
                continue;
            }
            let mut changes = Vec::new();
            rows.decode(&mut changes).expect("decode rows");
            for c in changes {
                let image = match c.kind {
                    ChangeKind::Delete => c.before.as_ref(),
                    _ => c.after.as_ref(),
                };
                let Some(Value::Int(id)) = image.and_then(|r| r.first()) else {
                    panic!("row without an id: {c:?}");
                };
                *out.entry(*id)
                    .or_default()
                    .entry(event.server_id)
                    .or_default() += 1;
            }
        }
    }
    out
}

async fn binlog_files(db: &MariaDb) -> Vec<String> {
    let rows: Vec<(String, u64)> = db
        .query("SHOW BINARY LOGS")
        .await
        .expect("SHOW BINARY LOGS");
    rows.into_iter().map(|r| r.0).collect()
}

/// Binlog end and GTID position of both servers.
async fn binlog_state(a: &MariaDb, b: &MariaDb) -> Vec<Vec<Option<String>>> {
    let mut all = Vec::new();
    for db in [a, b] {
        all.extend(rows(db, "SHOW MASTER STATUS").await);
        all.extend(rows(db, "SELECT @@gtid_binlog_pos").await);
    }
    all
}

/// Polls both binlogs until they stayed the same for `quiet` (every 200
/// ms); fails if that does not happen within `timeout`.
async fn wait_binlogs_quiet(pair: &Pair, quiet: Duration, timeout: Duration, nodes: &[&Sluice]) {
    let started = Instant::now();
    let mut since = Instant::now();
    let mut last = binlog_state(&pair.a, &pair.b).await;
    let mut samples = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = binlog_state(&pair.a, &pair.b).await;
        samples += 1;
        if now != last {
            last = now;
            since = Instant::now();
            samples = 0;
        } else if since.elapsed() >= quiet {
            assert!(
                samples >= 40,
                "too few samples over the quiet window: {samples}"
            );
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the binlogs kept growing with both sides idle: last {last:?}\n{}",
            nodes
                .iter()
                .map(|n| n.log_tail())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
    }
}

fn tags() -> (u32, u32) {
    (
        sluice_config::tag_server_id("a2b"),
        sluice_config::tag_server_id("b2a"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_loads_end_equal_nothing_comes_back_and_idle_is_idle() -> TestResult {
    disjoint_loads("server_id").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_marker_rows_too() -> TestResult {
    disjoint_loads("marker").await
}

/// The acceptance scenario under `tagging`: the peer's copies arrive under
/// its tag (`server_id`) or under the server's own id after a marker row
/// (`marker`).
async fn disjoint_loads(tagging: &str) -> TestResult {
    let pair = Pair::start().await;
    let a2b = pair.config(
        "a2b",
        &pair.a,
        &pair.b,
        &format!("{{ peer: b2a, tagging: {tagging} }}"),
        "",
    );
    let admin_ba = format!("127.0.0.1:{}", free_port());
    let b2a = pair.config(
        "b2a",
        &pair.b,
        &pair.a,
        &format!("{{ peer: a2b, tagging: {tagging} }}"),
        &format!("admin: {{ listen: \"{admin_ba}\" }}\n"),
    );
    let mut node_ab = Sluice::start_node(&a2b, "node-ab", None);
    let mut node_ba = Sluice::start_node(&b2a, "node-ba", None);
    // Both dump: a row each way (part of each side's writes).
    probe(&pair.a, &pair.b, 0, &node_ab).await;
    probe(&pair.b, &pair.a, B_KEYS, &node_ba).await;

    // Disjoint loads at once.
    let (from_a, mut from_b) = tokio::join!(
        load(&pair.a, "A", 0, 150, 0),
        load(&pair.b, "B", B_KEYS, 150, 0),
    );
    let opts = CompareOpts::default();
    wait_until_same(
        &pair.a,
        "app",
        &pair.b,
        "app",
        &opts,
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n-----\n{}", node_ab.log_tail(), node_ba.log_tail()));
    // Then one transaction on B larger than four batches of b2a (max_rows
    // 200), alone, so that b2a's batch counter shows it was split.
    let batches = || async {
        let (_, body) = get(&admin_ba, "/metrics", None).await;
        metric(&body, "sluice_batches_total{stage=\"load\"}").unwrap_or(0.0)
    };
    let batches_before = batches().await;
    from_b.extend(load(&pair.b, "B", B_KEYS + 100_000, 0, 900).await);
    wait_until_same(
        &pair.a,
        "app",
        &pair.b,
        "app",
        &opts,
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n-----\n{}", node_ab.log_tail(), node_ba.log_tail()));
    sluice_testkit::wait_until_async(
        "b2a to count the big transaction's batches",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { (batches().await - batches_before >= 2.0).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: fewer than 2 batches\n{}", node_ba.log_tail()));
    // Idle is idle: no checkpoint, term or heartbeat write that the peer
    // would read and answer.
    wait_binlogs_quiet(
        &pair,
        Duration::from_secs(10),
        Duration::from_secs(60),
        &[&node_ab, &node_ba],
    )
    .await;

    // Each direction applied only its own source's changes (and its probe
    // row): an echo of the other side's would add at least one row per key
    // it wrote. (The counters are published every 2 s; the binlogs were
    // quiet for 10 s.)
    for (config, made, name) in [(&a2b, &from_a, "a2b"), (&b2a, &from_b, "b2a")] {
        let status = json_of(&run_sluice(&["status", "--json"], config).await);
        let loaded = status["stage_counters"]["rows_loaded"].as_u64();
        let own = made.values().sum::<u64>() + 1;
        assert!(
            loaded.is_some_and(|n| n >= 1 && n <= own),
            "{name} loaded {loaded:?} rows, its source made {own}: {status}"
        );
    }
    let (id_a, id_b) = (pair.a.server_id(), pair.b.server_id());
    // Who the peer's copies are logged under.
    let (tag_ab, tag_ba) = match tagging {
        "marker" => (id_b, id_a),
        _ => tags(),
    };
    let on_a = binlog_changes(&pair.a, &binlog_files(&pair.a).await);
    let on_b = binlog_changes(&pair.b, &binlog_files(&pair.b).await);
    for (site, own, mine, theirs, own_id, peer_tag) in [
        ("A", &on_a, &from_a, &from_b, id_a, tag_ba),
        ("B", &on_b, &from_b, &from_a, id_b, tag_ab),
    ] {
        for (id, n) in mine {
            let seen = own.get(id).cloned().unwrap_or_default();
            assert_eq!(
                seen,
                BTreeMap::from([(own_id, *n)]),
                "{site}'s binlog for its own key {id}: exactly its load's {n} change(s) under server id {own_id}"
            );
        }
        // The other side's keys arrive under the peer's tag only (merged
        // within a batch, so at most as many changes as were made).
        for (id, n) in theirs.iter().filter(|(_, n)| **n > 0) {
            let seen = own.get(id).cloned().unwrap_or_default();
            assert!(
                seen.keys().all(|s| *s == peer_tag) && seen.values().sum::<u64>() <= *n,
                "{site}'s binlog for the other side's key {id}: {seen:?}, expected only tag {peer_tag}"
            );
        }
    }
    // The big transaction's keys are on A, under b2a's tag, in several
    // transactions' worth of rows, and B's binlog holds them once.
    let big = (from_b.keys().max().copied().unwrap_or(0) - 899)
        ..=from_b.keys().max().copied().unwrap_or(0);
    for id in big {
        assert_eq!(
            on_a.get(&id),
            Some(&BTreeMap::from([(tag_ba, 1)])),
            "key {id} on A"
        );
        assert_eq!(
            on_b.get(&id),
            Some(&BTreeMap::from([(id_b, 1)])),
            "key {id} on B"
        );
    }
    // sluice's own verify agrees, in both directions (reads only: the
    // binlogs above are not touched by it).
    for (config, name) in [(&a2b, "a2b"), (&b2a, "b2a")] {
        let doc = json_of(&run_sluice(&["verify", "--json"], config).await);
        assert_eq!(doc["equal"], true, "verify {name}: {doc}");
    }
    // A repair's writes carry the tag (or the marker row) too: b2a drops
    // the transaction that mends B instead of copying it to A.
    let dropped = || async {
        let (_, body) = get(&admin_ba, "/metrics", None).await;
        metric(&body, "sluice_peer_transactions_dropped_total").unwrap_or(0.0)
    };
    let dropped_before = dropped().await;
    pair.b
        .exec("SET sql_log_bin = 0; UPDATE app.t SET v = 'drift' WHERE id = 0")
        .await?;
    let doc = json_of(&run_sluice(&["verify", "--repair", "--json"], &a2b).await);
    assert_eq!(
        number(
            &pair.b,
            "SELECT COUNT(*) FROM app.t WHERE id = 0 AND v = 'p'"
        )
        .await,
        Some(1),
        "repaired: {doc}"
    );
    // b2a read past the repair once a later row of B arrived on A.
    probe(&pair.b, &pair.a, B_KEYS + 200_000, &node_ba).await;
    sluice_testkit::wait_until_async(
        "b2a to drop the repair",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { (dropped().await - dropped_before >= 1.0).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node_ba.log_tail()));
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_user_that_cannot_tag_is_refused_naming_the_privilege() -> TestResult {
    let pair = Pair::start().await;
    pair.b
        .exec(
            "SET sql_log_bin = 0; CREATE USER 'plain'@'%' IDENTIFIED BY 'pw'; \
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON *.* TO 'plain'@'%'",
        )
        .await?;
    // Local coordination: the refusal ends the process (with etcd it would
    // halt in place).
    let state = pair.dir.path().join("state");
    let path = write_config(
        pair.dir.path(),
        "a2b",
        &pair.a,
        &pair.b,
        Coord::Local(&state),
        "latest",
        "bidirectional: { peer: b2a }\n",
    );
    let text =
        std::fs::read_to_string(&path)?.replace(&pair.b.url(), &pair.b.url_for("plain", "pw"));
    std::fs::write(&path, text)?;
    let mut node = Sluice::start_node(&path, "node-ab", None);
    let status = node.wait(Duration::from_secs(60)).await;
    assert!(!status.success());
    let log = node.log_text();
    assert!(
        log.contains("grant it the BINLOG REPLAY privilege")
            && log.contains("bidirectional.tagging: marker"),
        "{log}"
    );
    // Nothing was applied or created on B.
    assert_eq!(
        number(
            &pair.b,
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'sluice_meta'"
        )
        .await,
        Some(0)
    );
    Ok(())
}

/// Updates `app.t` rows 1..=20 on one side while nothing replicates.
async fn update_all(db: &MariaDb, site: &str, stamp: i64) {
    db.exec(&format!(
        "UPDATE app.t SET site = '{site}', v = '{site} wins?', updated_at = {stamp} WHERE id BETWEEN 1 AND 20"
    ))
    .await
    .expect("update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_updates_end_with_the_home_sites_values() -> TestResult {
    let pair = Pair::start().await;
    let admin_ab = format!("127.0.0.1:{}", free_port());
    let admin_ba = format!("127.0.0.1:{}", free_port());
    let a2b = pair.config(
        "a2b",
        &pair.a,
        &pair.b,
        "{ peer: b2a, conflicts: source_wins }",
        &format!("admin: {{ listen: \"{admin_ab}\" }}\n"),
    );
    let b2a = pair.config(
        "b2a",
        &pair.b,
        &pair.a,
        "{ peer: a2b, conflicts: target_wins }",
        &format!("admin: {{ listen: \"{admin_ba}\" }}\n"),
    );
    let mut node_ab = Sluice::start_node(&a2b, "node-ab", None);
    let mut node_ba = Sluice::start_node(&b2a, "node-ba", None);
    probe(&pair.a, &pair.b, 0, &node_ab).await;
    probe(&pair.b, &pair.a, B_KEYS, &node_ba).await;
    pair.a
        .exec("INSERT INTO app.t (id, site, n, v) SELECT seq, 'init', 0, 'x' FROM app.seq_1_to_20")
        .await?;
    let opts = CompareOpts::default();
    wait_until_same(
        &pair.a,
        "app",
        &pair.b,
        "app",
        &opts,
        Duration::from_secs(60),
    )
    .await?;
    // Both sites update the same rows while nothing replicates.
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    update_all(&pair.b, "B", 2).await;
    update_all(&pair.a, "A", 1).await;
    node_ab.restart();
    node_ba.restart();
    let want = vec![vec![Some("20".to_string())]];
    for db in [&pair.a, &pair.b] {
        sluice_testkit::wait_until_async(
            "A's values on both sides",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async {
                (rows(
                    db,
                    "SELECT COUNT(*) FROM app.t WHERE site = 'A' AND id BETWEEN 1 AND 20",
                )
                .await
                    == want)
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n-----\n{}", node_ab.log_tail(), node_ba.log_tail()));
    }
    wait_until_same(
        &pair.a,
        "app",
        &pair.b,
        "app",
        &opts,
        Duration::from_secs(60),
    )
    .await?;
    // Recorded on the target that met them, with the winner by policy.
    let records = |winner: &str, pipeline: &str| {
        format!("SELECT COUNT(*) FROM sluice_meta.conflicts WHERE pipeline = '{pipeline}' AND winner = '{winner}' AND table_name = '`app`.`t`' AND target_row IS NOT NULL AND source_before IS NOT NULL")
    };
    // The two sides can already be equal before b2a has applied B's
    // updates (A's values win there, so applying them changes nothing):
    // wait for each pipeline's records rather than reading them once.
    for (db, winner, pipeline) in [(&pair.b, "source", "a2b"), (&pair.a, "target", "b2a")] {
        let sql = records(winner, pipeline);
        sluice_testkit::wait_until_async(
            &format!("{pipeline}'s 20 conflict records"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async { (number(db, &sql).await == Some(20)).then_some(()) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n-----\n{}", node_ab.log_tail(), node_ba.log_tail()));
    }
    for (admin, winner) in [(&admin_ab, "source"), (&admin_ba, "target")] {
        let series = format!("sluice_conflicts_total{{table=\"`app`.`t`\",winner=\"{winner}\"}}");
        // And each one was sent as a `conflict` event.
        let events = "sluice_events_total{kind=\"conflict\",state=\"event\"}";
        let counted = sluice_testkit::wait_until_async(
            "the conflict metrics",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let (_, body) = get(admin, "/metrics", None).await;
                (metric(&body, &series) == Some(20.0) && metric(&body, events) == Some(20.0))
                    .then_some(())
            },
        )
        .await;
        if let Err(e) = counted {
            let (_, body) = get(admin, "/metrics", None).await;
            panic!("{e}: {series} and {events} in\n{body}");
        }
    }
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    Ok(())
}
