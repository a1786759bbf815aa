//! `sluice positions`, `sluice positions set` and `sluice status`: the
//! operator's view of a pipeline run by an active/standby pair in etcd, the
//! override of its position (refused while nodes run; rewinds the store,
//! records history and removes the target checkpoint), and the same
//! commands under local coordination with an unreachable target.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};

use crate::support::cli::{json_of, output_text as text, run_sluice as sluice, table_row as row};
use crate::support::etcd::{etcd_values, pipeline_keys as keys, wait_etcd};
use crate::support::ha::setup;
use crate::support::{master_status, rows, server_id, wait_same, Sluice, TestResult};

/// Starts node-a (leader) and node-b (standby), replicates a few rows and
/// waits until the stored position and the target checkpoint agree on the
/// last batch. Returns the nodes, the stored record and the end of binlog
/// before the rows were written (after the DDL).
async fn run_pair(
    name: &str,
    source: &MariaDb,
    target: &MariaDb,
    etcd: &Etcd,
    config: &Path,
) -> (Sluice, Sluice, Value, (String, u64)) {
    let k = keys(name);
    let a = Sluice::start_node(config, "node-a", Some(server_id()));
    wait_etcd(etcd, &k.leader(), false, "node-a leads", |v| {
        v.first().is_some_and(|l| l["node_id"] == "node-a")
    })
    .await;
    let b = Sluice::start_node(config, "node-b", Some(server_id()));
    wait_etcd(etcd, &k.nodes_prefix(), true, "node-b registers", |v| {
        v.iter()
            .any(|n| n["node_id"] == "node-b" && n["role"] == "standby")
    })
    .await;
    let before_rows = master_status(source).await;
    source
        .exec("INSERT INTO shop.events VALUES (1, 'a'), (2, 'b'); UPDATE shop.events SET v = 'c' WHERE id = 2;")
        .await
        .expect("source writes");
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(source, target, all, all, Duration::from_secs(30), &a).await;
    // Positions are flushed every second, after the checkpoint.
    let last = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let agreed = wait_until_async(
        "the stored position and the checkpoint to agree",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let (last, k) = (&last, &k);
            async move {
                let checkpoint = rows(
                    target,
                    &format!(
                        "SELECT position FROM sluice_meta.checkpoint WHERE pipeline = '{name}'"
                    ),
                )
                .await;
                let stored = etcd_values(etcd, &k.position(), false).await;
                let agreed = match (checkpoint.first(), stored.first()) {
                    (Some(cp), Some(stored)) => {
                        let position: sluice_core::Position =
                            serde_json::from_value(stored["position"].clone()).expect("a position");
                        (cp[0].as_deref() == Some(position.to_string().as_str()))
                            .then(|| stored.clone())
                    }
                    _ => None,
                };
                *last.borrow_mut() = (checkpoint, stored);
                agreed
            }
        },
    )
    .await;
    match agreed {
        Ok(stored) => (a, b, stored, before_rows),
        Err(e) => {
            let (checkpoint, stored) = last.into_inner();
            panic!("{e}: stored position and checkpoint never agreed: {checkpoint:?} vs {stored:?}")
        }
    }
}

/// (a) and (c): with node-a active and node-b standing by, `positions`
/// names both and shows the stored position, as a table and as JSON, and
/// `status` summarises the same.
#[tokio::test]
async fn positions_and_status_show_the_active_pair() -> TestResult {
    let name = "shown";
    let (source, target, etcd, _dir, config) = setup(name).await?;
    let (mut a, mut b, stored, _) = run_pair(name, &source, &target, &etcd, &config).await;
    let file = stored["position"]["file"]
        .as_str()
        .expect("file")
        .to_string();
    let offset = stored["position"]["offset"].as_u64().expect("offset");

    let out = sluice(&["positions"], &config).await;
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}");
    assert!(row(&table, "active node").starts_with("node-a "), "{table}");
    assert!(
        row(&table, "standby nodes").starts_with("node-b (role standby"),
        "{table}"
    );
    assert!(!table.contains("node-b (role leader"), "{table}");
    assert_eq!(
        row(&table, "position"),
        format!("{file}:{offset}"),
        "{table}"
    );
    assert_eq!(row(&table, "written_by"), "node-a", "{table}");
    assert!(row(&table, "lag").ends_with('s'), "{table}");
    assert!(
        row(&table, "event time").ends_with('Z'),
        "event time as UTC: {table}"
    );
    assert!(
        row(&table, "checkpoint batch_id").parse::<u64>().is_ok(),
        "{table}"
    );

    let json = json_of(&sluice(&["positions", "--json"], &config).await);
    println!("{}", serde_json::to_string_pretty(&json)?);
    assert_eq!(json["pipeline"], name);
    assert_eq!(json["coordination"]["kind"], "etcd");
    assert_eq!(json["active"]["node_id"], "node-a");
    assert_eq!(json["active"]["role"], "leader");
    assert!(
        json["active"]["leader_revision"].as_i64().is_some(),
        "{json}"
    );
    let standby = json["standby"].as_array().expect("standby list");
    assert_eq!(standby.len(), 1, "{json}");
    assert_eq!(standby[0]["node_id"], "node-b");
    assert_eq!(standby[0]["role"], "standby");
    assert!(standby[0]["server_id"].as_u64().is_some(), "{json}");
    assert_eq!(json["position"]["file"], file.as_str());
    assert_eq!(json["position"]["offset"], offset);
    assert_eq!(json["position"]["batch_id"], stored["batch_id"]);
    assert_eq!(json["position"]["written_by"], "node-a");
    assert!(json["position"]["gtid"].is_string(), "{json}");
    assert!(json["position"]["lag_seconds"].as_i64().is_some(), "{json}");
    assert_eq!(json["target"]["reachable"], true);
    assert!(
        json["target"]["checkpoint"]["batch_id"].as_u64().is_some(),
        "{json}"
    );

    // The active node publishes its counters every 2 s: wait until they
    // include the rows it applied.
    let last = std::cell::RefCell::new(Value::Null);
    wait_until_async(
        "the active node's counters to show loaded rows",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let (last, config) = (&last, &config);
            async move {
                let status = json_of(&sluice(&["status", "--json"], config).await);
                let loaded = status["stage_counters"]["rows_loaded"].as_u64() > Some(0);
                *last.borrow_mut() = status;
                loaded.then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", last.borrow()));
    let out = sluice(&["status"], &config).await;
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}");
    assert!(
        row(&table, "stage counters").starts_with("extract: "),
        "{table}"
    );
    assert!(table.contains("active  node-a"), "{table}");
    assert!(table.contains("standby node-b"), "{table}");
    let status = json_of(&sluice(&["status", "--json"], &config).await);
    println!("{}", serde_json::to_string_pretty(&status)?);
    assert_eq!(status["active"], "node-a");
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{status}");
    assert!(nodes
        .iter()
        .any(|n| n["node_id"] == "node-b" && n["active"] == false));
    assert_eq!(status["position"]["offset"], offset);
    assert!(
        status["stage_counters"]["rows_loaded"].as_u64() > Some(0),
        "{status}"
    );
    assert!(
        status["stage_counters"]["batches_extracted"].as_u64()
            >= status["stage_counters"]["batches_loaded"].as_u64(),
        "{status}"
    );
    assert!(status["target"]["checkpoint"].is_object(), "{status}");

    for node in [&mut b, &mut a] {
        let exit = node.terminate(Duration::from_secs(30)).await;
        assert!(exit.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// (b): `positions set` refuses while a node is active; with the nodes
/// stopped it sets the store (by GTID, then by file and offset back to
/// before the rows), keeps history, removes the target checkpoint, and the
/// next run resumes there and replays the rows.
#[tokio::test]
async fn positions_set_refuses_while_active_then_rewinds() -> TestResult {
    let name = "rewound";
    let (source, target, etcd, _dir, config) = setup(name).await?;
    let (mut a, mut b, running, (mid_file, mid_pos)) =
        run_pair(name, &source, &target, &etcd, &config).await;
    let k = keys(name);
    let mid_pos = mid_pos.to_string();
    let set_mid = ["positions", "set", "--file", &mid_file, "--pos", &mid_pos];

    let refused = sluice(&set_mid, &config).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("node `node-a` is active"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    println!("refused: {stderr}");
    let unchanged = etcd_values(&etcd, &k.position(), false).await.remove(0);
    assert_eq!(unchanged["position"], running["position"]);
    assert_eq!(unchanged["batch_id"], running["batch_id"]);

    for node in [&mut b, &mut a] {
        let exit = node.terminate(Duration::from_secs(30)).await;
        assert!(exit.success(), "{}", node.log_tail());
    }
    // A standby's registration may outlive it by up to the lease TTL.
    wait_etcd(
        &etcd,
        &k.nodes_prefix(),
        true,
        "nodes gone",
        <[Value]>::is_empty,
    )
    .await;
    wait_etcd(
        &etcd,
        &k.leader(),
        false,
        "leader gone",
        <[Value]>::is_empty,
    )
    .await;
    let stored = etcd_values(&etcd, &k.position(), false).await.remove(0);
    assert_eq!(stored["position"], running["position"]);

    // A GTID position the source never reached is refused.
    let out = sluice(&["positions", "set", "--gtid", "0-1-999999"], &config).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a transaction boundary"),
        "{}",
        text(&out)
    );
    assert_eq!(etcd_values(&etcd, &k.position(), false).await[0], stored);

    // By GTID: resolved to the same file and offset on the source.
    let gtid = stored["position"]["gtid"]
        .as_str()
        .expect("gtid")
        .to_string();
    let out = sluice(&["positions", "set", "--gtid", &gtid], &config).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        row(&stdout, "target checkpoint").starts_with("removed (was batch "),
        "{stdout}"
    );
    let by_gtid = etcd_values(&etcd, &k.position(), false).await.remove(0);
    assert_eq!(by_gtid["position"]["file"], stored["position"]["file"]);
    assert_eq!(by_gtid["position"]["offset"], stored["position"]["offset"]);
    assert_eq!(by_gtid["position"]["gtid"], gtid.as_str());
    assert_eq!(
        by_gtid["batch_id"],
        stored["batch_id"].as_u64().expect("id") + 1
    );

    // By file and offset: back to before the rows.
    let out = sluice(&set_mid, &config).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        row(&stdout, "old position").starts_with(&format!(
            "{}:{} ",
            stored["position"]["file"].as_str().expect("file"),
            stored["position"]["offset"]
        )),
        "{stdout}"
    );
    assert!(
        row(&stdout, "new position").starts_with(&format!("{mid_file}:{mid_pos} ")),
        "{stdout}"
    );
    assert_eq!(row(&stdout, "target checkpoint"), "none to remove");
    let now = etcd_values(&etcd, &k.position(), false).await.remove(0);
    assert_eq!(now["position"]["file"], mid_file.as_str());
    assert_eq!(now["position"]["offset"].to_string(), mid_pos);
    assert!(now["leader_revision"].is_null());
    assert!(
        now["written_by"]
            .as_str()
            .is_some_and(|w| w.starts_with("operator@")),
        "{now}"
    );
    let history = etcd_values(&etcd, &k.history_prefix(), true).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["replaced"], stored);
    assert_eq!(history[0]["record"], by_gtid);
    assert_eq!(history[1]["replaced"], by_gtid);
    assert_eq!(history[1]["record"], now);
    // The first set removed the checkpoint, and nothing wrote one since.
    let checkpoint = rows(
        &target,
        &format!("SELECT batch_id FROM sluice_meta.checkpoint WHERE pipeline = '{name}'"),
    )
    .await;
    assert!(
        checkpoint.is_empty(),
        "checkpoint still there: {checkpoint:?}"
    );

    // The next run resumes at the forced position, not at the old
    // checkpoint, and replays the rows idempotently.
    target.exec("DELETE FROM shop.events WHERE id = 1").await?;
    a.restart();
    let want = format!("resume={mid_file}:{mid_pos} ");
    let second_start = wait_until_async(
        "node-a's second start",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let log = a.log_text();
            let starts: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("pipeline starting"))
                .collect();
            (starts.len() == 2).then(|| starts[1].to_string())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log_tail()));
    assert!(second_start.contains(&want), "{second_start}");
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;
    let exit = a.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{}", a.log_tail());
    Ok(())
}

/// Local coordination, target down: `positions` and `status` report it
/// instead of failing; `positions set` refuses without `--force` (it could
/// not remove the checkpoint) and while the state directory is locked.
#[tokio::test]
async fn local_coordination_and_an_unreachable_target() -> TestResult {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let config = dir.path().join("alone.yaml");
    std::fs::write(
        &config,
        format!(
            "name: alone\n\
             source: {{ url: \"mysql://repl:pw@127.0.0.1:1\", server_id: 9, start: latest }}\n\
             target: {{ url: \"mysql://root:secret@127.0.0.1:1\" }}\n\
             coordination:\n  local: {{ dir: \"{}\" }}\n",
            state.display()
        ),
    )?;
    let json = json_of(&sluice(&["positions", "--json"], &config).await);
    assert_eq!(json["coordination"]["kind"], "local");
    assert!(
        json["active"].is_null() && json["standby"].is_null(),
        "{json}"
    );
    assert!(json["position"].is_null(), "{json}");
    assert_eq!(json["target"]["reachable"], false);
    assert!(
        !json.to_string().contains("secret"),
        "password shown: {json}"
    );
    let out = sluice(&["positions"], &config).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row(&table, "active node"), "n/a (local coordination)");
    assert!(
        row(&table, "target checkpoint").contains("unreachable"),
        "{table}"
    );

    let set = [
        "positions",
        "set",
        "--file",
        "mysql-bin.000007",
        "--pos",
        "1234",
    ];
    let refused = sluice(&set, &config).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unreachable"),
        "{}",
        text(&refused)
    );
    {
        // A running pipeline holds the directory: refused even with --force.
        let _held = sluice_coord::LocalPositionStore::open(state.join("alone"))?;
        let locked = sluice(&[&set[..], &["--force"]].concat(), &config).await;
        assert_eq!(locked.status.code(), Some(1), "{}", text(&locked));
        assert!(
            String::from_utf8_lossy(&locked.stderr).contains("in use"),
            "{}",
            text(&locked)
        );
    }
    let forced = sluice(&[&set[..], &["--force"]].concat(), &config).await;
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(
        String::from_utf8_lossy(&forced.stderr)
            .contains("DELETE FROM sluice_meta.checkpoint WHERE pipeline = 'alone'"),
        "{}",
        text(&forced)
    );
    let status = json_of(&sluice(&["status", "--json"], &config).await);
    assert_eq!(status["position"]["text"], "mysql-bin.000007:1234");
    assert!(status["nodes"].is_null(), "{status}");
    assert!(
        status["position"]["written_by"]
            .as_str()
            .is_some_and(|w| w.starts_with("operator@")),
        "{status}"
    );
    Ok(())
}
