//! An active/standby pair of `sluice run` nodes sharing one pipeline in
//! etcd: failover after SIGKILL, and handover on SIGTERM.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{wait_until_async, MariaDb};

use crate::support::etcd::pipeline_keys;
use crate::support::ha::{start_pair, wait_load_applied};
use crate::support::{server_id, start_of_binlog, wait_same, Sluice, TestResult};

// The HA helpers that lived here are in `crate::support::ha`; these are
// their old paths, kept for tests written against them.
#[allow(unused_imports)]
pub use crate::support::ha::{marker_latency, paced_load, setup, wait_leader};

/// `[from, to)` log timestamps during which `log` says its node replicated
/// as leader (RFC 3339 UTC with fixed width: they compare as strings).
fn active_intervals(log: &str) -> Vec<(String, String)> {
    let stamp = |l: &str| l.split_whitespace().next().unwrap_or_default().to_string();
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for line in log.lines() {
        if line.contains("elected leader") {
            open = Some(stamp(line));
        } else if line.contains("giving up the term")
            || line.contains("leadership lost")
            || line.contains("resigned leadership")
            || line.contains("lease expired")
        {
            if let Some(from) = open.take() {
                out.push((from, stamp(line)));
            }
        }
    }
    if let Some(from) = open {
        out.push((from, "9999".into()));
    }
    out
}

/// SIGKILL the active node under a write load: the standby replicates
/// again within lease_ttl + standby_delay + 2 s, and nothing is lost.
#[tokio::test]
async fn standby_takes_over_after_sigkill() -> TestResult {
    let (source, target, etcd, _dir, config) = setup("pair").await?;
    let (mut a, mut b) = start_pair(&config, &etcd, &source, &target).await;

    // A bounded, paced write load around the kill.
    let mut conn = source.conn().await?;
    let load = paced_load(&mut conn, 100..400, 10, None);
    let kill_and_measure = async {
        // When to inject the fault: part-way into the load, once rows of it
        // are on the target.
        wait_load_applied(&target, 100, 50, Duration::from_secs(30), &[&a, &b]).await;
        a.kill().await;
        let killed = Instant::now();
        wait_leader(&etcd, "pair", Some("node-b"), Duration::from_secs(20)).await;
        marker_latency(&source, &target, 2, Duration::from_secs(20), &[]).await;
        killed.elapsed()
    };
    let ((), failover) = tokio::join!(load, kill_and_measure);
    println!("failover: replicating again {failover:?} after SIGKILL of the active node");
    assert!(
        failover <= Duration::from_secs(3 + 1 + 2),
        "failover took {failover:?}\n{}",
        b.log_tail()
    );
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &b).await;
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    Ok(())
}

/// SIGTERM of the active node hands over at once: the standby resumes
/// exactly where the active one stopped (no replay beyond the last batch).
#[tokio::test]
async fn sigterm_hands_over_without_replay() -> TestResult {
    let (source, target, etcd, _dir, config) = setup("pair").await?;
    let (mut a, mut b) = start_pair(&config, &etcd, &source, &target).await;
    source
        .exec("INSERT INTO shop.events VALUES (3, 'x'), (4, 'y'); UPDATE shop.events SET v = 'z' WHERE id = 3;")
        .await?;
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;

    let started = Instant::now();
    let status = a.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", a.log_tail());
    wait_leader(&etcd, "pair", Some("node-b"), Duration::from_secs(10)).await;
    let handover = started.elapsed();
    let latency = marker_latency(&source, &target, 5, Duration::from_secs(20), &[]).await;
    println!("handover: node-b leader {handover:?} after SIGTERM; marker {latency:?}");
    assert!(handover < Duration::from_secs(3), "{}", b.log_tail());

    let a_log = a.log_text();
    let stopped_at = a_log
        .lines()
        .rev()
        .filter(|l| l.contains(" stopped "))
        .find_map(|l| l.split("position=").nth(1))
        .unwrap_or_else(|| panic!("no stop line in node-a's log:\n{a_log}"))
        .to_string();
    let b_log = b.log_text();
    let resumed = b_log
        .lines()
        .find(|l| l.contains("pipeline starting"))
        .unwrap_or_else(|| panic!("node-b never started:\n{b_log}"));
    let position = stopped_at.split(' ').next().unwrap_or_default();
    assert!(
        resumed.contains(&format!("resume={position}")),
        "node-b resumed elsewhere than node-a stopped ({position}):\n{resumed}"
    );
    wait_same(&source, &target, all, all, Duration::from_secs(30), &b).await;
    let status = b.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", b.log_tail());
    Ok(())
}

/// SIGSTOP the active node for longer than its lease: the standby takes
/// over; after SIGCONT the old node writes no position (etcd's history of
/// the position key shows only the new leader, batch ids never going
/// back), steps down, and the target still equals the source.
#[tokio::test]
async fn paused_leader_steps_down_without_writing() -> TestResult {
    let (source, target, etcd, _dir, config) = setup("pair").await?;
    let (mut a, mut b) = start_pair(&config, &etcd, &source, &target).await;

    let mut conn = source.conn().await?;
    let load = paced_load(&mut conn, 100..600, 10, Some(5));
    let pause = async {
        // When to inject the fault: part-way into the load, once rows of it
        // are on the target.
        wait_load_applied(&target, 100, 40, Duration::from_secs(30), &[&a, &b]).await;
        a.pause();
        let paused = Instant::now();
        wait_leader(&etcd, "pair", Some("node-b"), Duration::from_secs(20)).await;
        // The fault's duration, not a wait for a condition: node-a stays
        // stopped twice its lease while node-b leads (node-b may itself wait
        // for node-a's open target transaction, so no progress of node-b can
        // be awaited here).
        tokio::time::sleep_until((paused + Duration::from_secs(6)).into()).await;
        a.resume();
    };
    tokio::join!(load, pause);

    // node-a notices and goes back to standby.
    wait_until_async(
        "node-a back to standby",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async { a.log_text().contains("back to standby").then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log_tail()));
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(60), &b).await;

    // Every version of the position key: the writer's term (leader
    // revision) and the batch id never go back, so a replaced leader never
    // wrote after a newer term did; and node-b wrote.
    let mut client = etcd.client().await?;
    let keys = pipeline_keys("pair");
    // node-b flushes its position every second (its start may have waited
    // for node-a's open target transaction, which ended at SIGCONT).
    let writer = std::cell::RefCell::new(None);
    wait_until_async(
        "node-b to store a position",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let (writer, keys, etcd) = (&writer, &keys, &etcd);
            async move {
                let values = crate::support::etcd::etcd_values(etcd, &keys.position(), false).await;
                let last = values
                    .first()
                    .map(|r| r["written_by"].as_str().unwrap_or_default().to_string());
                let done = last.as_deref() == Some("node-b");
                *writer.borrow_mut() = last;
                done.then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: node-b never stored a position (last writer {:?})\n{}",
            writer.borrow(),
            b.log_tail()
        )
    });
    let now = client
        .get(keys.position(), None)
        .await?
        .header()
        .map(|h| h.revision())
        .ok_or("no header")?;
    let (mut last_batch, mut last_term) = (0, 0);
    let mut writers = Vec::new();
    for rev in 1..=now {
        let got = client
            .get(
                keys.position(),
                Some(etcd_client::GetOptions::new().with_revision(rev)),
            )
            .await?;
        let Some(kv) = got.kvs().first() else {
            continue;
        };
        if kv.mod_revision() != rev {
            continue;
        }
        let record: serde_json::Value = serde_json::from_slice(kv.value())?;
        let batch = record["batch_id"].as_u64().unwrap_or(0);
        let term = record["leader_revision"].as_i64().unwrap_or(0);
        assert!(
            batch >= last_batch,
            "position went backwards at revision {rev}: {record}"
        );
        assert!(
            term >= last_term,
            "an older term wrote at revision {rev}: {record}"
        );
        (last_batch, last_term) = (batch, term);
        let writer = record["written_by"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if writers.last() != Some(&writer) {
            writers.push(writer);
        }
    }
    println!("position writers in order: {writers:?}");
    assert!(writers.iter().any(|w| w == "node-b"), "{writers:?}");
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// etcd stopped for 10 s under load and started again: at no moment are two
/// nodes active (their leadership intervals, from their logs, never
/// overlap), and replication resumes with nothing lost.
#[tokio::test]
async fn etcd_outage_never_yields_two_leaders() -> TestResult {
    let (source, target, mut etcd, _dir, config) = setup("pair").await?;
    let (mut a, mut b) = start_pair(&config, &etcd, &source, &target).await;

    let mut conn = source.conn().await?;
    let load = paced_load(&mut conn, 100..1100, 12, None);
    let outage = async {
        // When to inject the fault: part-way into the load, once rows of it
        // are on the target; the outage then lasts the 10 s the scenario
        // prescribes.
        wait_load_applied(&target, 100, 40, Duration::from_secs(30), &[&a, &b]).await;
        etcd.stop().await;
        // The outage's prescribed duration.
        tokio::time::sleep(Duration::from_secs(10)).await;
        etcd.restart().await.expect("etcd restart");
    };
    tokio::join!(load, outage);
    let leader = wait_leader(&etcd, "pair", None, Duration::from_secs(30)).await;
    let latency = marker_latency(&source, &target, 2, Duration::from_secs(30), &[]).await;
    println!("after the etcd outage {leader} leads; marker in {latency:?}");
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    let active = if leader == "node-a" { &a } else { &b };
    wait_same(&source, &target, all, all, Duration::from_secs(60), active).await;
    for node in [&mut a, &mut b] {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", node.log_tail());
    }
    for (name, node) in [("node-a", &a), ("node-b", &b)] {
        for line in node.log_text().lines().filter(|l| {
            l.contains("sluice_coord::election")
                || l.contains("leadership")
                || l.contains("stopped")
        }) {
            println!("{name}: {line}");
        }
    }
    let (ia, ib) = (
        active_intervals(&a.log_text()),
        active_intervals(&b.log_text()),
    );
    println!("node-a active: {ia:?}\nnode-b active: {ib:?}");
    for (fa, ta) in &ia {
        for (fb, tb) in &ib {
            assert!(
                ta <= fb || tb <= fa,
                "node-a [{fa}, {ta}) and node-b [{fb}, {tb}) were active at once"
            );
        }
    }
    Ok(())
}

/// `source.urls` lists a primary and its GTID replica: when the primary
/// dies, sluice continues from the replica by GTID and loses nothing.
#[tokio::test]
async fn source_failover_continues_from_the_replica_by_gtid() -> TestResult {
    let (mut primary, replica, target) =
        tokio::try_join!(MariaDb::source(), MariaDb::source(), MariaDb::target())?;
    replica
        .exec(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{}', \
             MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;",
            primary.port(),
            sluice_testkit::REPL_USER,
            sluice_testkit::REPL_PASSWORD,
        ))
        .await?;
    primary
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let start = start_of_binlog(&primary).await;
    let path = dir.path().join("failover.yaml");
    std::fs::write(
        &path,
        format!(
            "name: failover\n\
             source: {{ urls: [\"{}\", \"{}\"], server_id: {}, start: {start}, switch_after: 2s }}\n\
             target: {{ url: \"{}\" }}\n\
             coordination: {{ local: {{ dir: \"{}\" }} }}\n\
             batch: {{ max_delay: 5ms }}\n",
            primary.repl_url(),
            replica.repl_url(),
            server_id(),
            target.url(),
            state.display()
        ),
    )?;
    let mut sluice = Sluice::start(&path);
    let mut conn = primary.conn().await?;
    for id in 1..=200i64 {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'primary')", (id,))
            .await?;
    }
    drop(conn);
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(
        &primary,
        &replica,
        all,
        all,
        Duration::from_secs(30),
        &sluice,
    )
    .await;
    wait_same(
        &primary,
        &target,
        all,
        all,
        Duration::from_secs(60),
        &sluice,
    )
    .await;

    primary.kill();
    let killed = Instant::now();
    // The replica is the new primary: writes go on there.
    replica.exec("STOP SLAVE").await?;
    let mut conn = replica.conn().await?;
    for id in 201..=300i64 {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'replica')", (id,))
            .await?;
    }
    conn.exec_drop("UPDATE shop.events SET v = 'moved' WHERE id <= 10", ())
        .await?;
    wait_same(
        &replica,
        &target,
        all,
        all,
        Duration::from_secs(60),
        &sluice,
    )
    .await;
    println!(
        "replicating from the replica {:?} after the primary died",
        killed.elapsed()
    );
    assert!(
        sluice.log_text().contains("source switched"),
        "{}",
        sluice.log_tail()
    );
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}
