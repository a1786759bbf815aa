//! Conflict policies of active-active pairs beyond `source_wins` and
//! `target_wins` (those are in `bidi`; the setup is `bidi::Pair`):
//!
//! * `stop` (with marker rows, `tagging: marker`): a conflicting row halts
//!   the pipeline; `sluice errors --json` names its table, key and key
//!   values; `errors retry` replays the batch and meets the conflict again
//!   (the source does not win by replaying); `errors skip` drops that row's
//!   change and later changes replicate; `errors replace` runs its
//!   statements after a marker row, so the peer does not copy them back.
//! * `newer_wins: updated_at`: the source's change wins where the source
//!   row is newer, the target row stays where it is newer (both sites, both
//!   outcomes); a table without the column halts the pipeline with a
//!   message naming table and column.

use std::time::Duration;

use serde_json::Value;
use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::wait_until_async;

use crate::bidi::{probe, Pair, B_KEYS};
use crate::support::cli::{json_of, output_text, run_sluice};
use crate::support::sql::{number, rows};
use crate::support::{Sluice, TestResult};

/// `sluice ARGS --json --config CONFIG`, which must succeed.
async fn cli_json(args: &[&str], config: &std::path::Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    json_of(&run_sluice(&all, config).await)
}

/// Polls `sluice errors --json` until `check` holds (60 s at most).
async fn wait_errors(
    config: &std::path::Path,
    what: &str,
    node: &Sluice,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until_async(
        what,
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let state = cli_json(&["errors"], config).await;
            check(&state).then_some(state)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()))
}

/// The value of `v` of row `id` on `db`.
async fn v(db: &sluice_testkit::MariaDb, id: i64) -> Option<String> {
    rows(db, &format!("SELECT v FROM app.t WHERE id = {id}"))
        .await
        .first()
        .and_then(|r| r[0].clone())
}

/// Waits until row `id` on `db` has `v = want`.
async fn wait_v(db: &sluice_testkit::MariaDb, id: i64, want: &str, node: &Sluice) {
    wait_until_async(
        "a row's value",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async { (v(db, id).await.as_deref() == Some(want)).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: row {id} should be {want}\n{}", node.log_tail()));
}

/// The halt's row, as `errors --json` shows it: table, key, key values.
fn halted_row(state: &Value) -> (String, String, String) {
    let f = &state["error"]["failure"];
    (
        f["table"].as_str().unwrap_or_default().to_string(),
        f["key"].as_str().unwrap_or_default().to_string(),
        f["key_values"].to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_halts_naming_the_row_retry_meets_it_again_skip_and_replace_resolve() -> TestResult {
    let pair = Pair::start().await;
    let a2b = pair.config(
        "a2b",
        &pair.a,
        &pair.b,
        "{ peer: b2a, conflicts: stop, tagging: marker }",
        "",
    );
    let b2a = pair.config(
        "b2a",
        &pair.b,
        &pair.a,
        "{ peer: a2b, tagging: marker }",
        "",
    );
    let mut node_ab = Sluice::start_node(&a2b, "node-ab", None);
    let mut node_ba = Sluice::start_node(&b2a, "node-ba", None);
    probe(&pair.a, &pair.b, 0, &node_ab).await;
    probe(&pair.b, &pair.a, B_KEYS, &node_ba).await;
    pair.a
        .exec("INSERT INTO app.t (id, site, n, v) SELECT seq, 'init', 0, 'init' FROM app.seq_1_to_600")
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

    // Row 3 changes on both sides while nothing replicates; A's change is
    // one transaction over 600 rows, several batches of a2b (max_rows 200).
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    pair.b.exec("UPDATE app.t SET v = 'B' WHERE id = 3").await?;
    pair.a
        .exec("UPDATE app.t SET v = 'A', n = n + 1 WHERE id BETWEEN 1 AND 600")
        .await?;
    node_ab.restart();
    let first = wait_errors(&a2b, "a2b halted on the conflict", &node_ab, |s| {
        s["halted"] == true
    })
    .await;
    let (table, key, key_values) = halted_row(&first);
    assert_eq!(table, "`app`.`t`", "{first:#}");
    assert_eq!(key, "(id=3)", "{first:#}");
    assert!(
        key_values.contains("\"id\"") && key_values.contains('3'),
        "{first:#}"
    );
    assert!(
        first["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("conflict"),
        "{first:#}"
    );
    assert_eq!(v(&pair.b, 3).await.as_deref(), Some("B"), "B's row stays");

    // Retrying replays the batch, which meets the same conflict again: the
    // source does not win by being replayed.
    let halted_at = first["error"]["halted_at_unix_ms"].as_u64().unwrap_or(0);
    let out = cli_json(&["errors", "retry"], &a2b).await;
    assert_ne!(out["state"], "refused", "{out:#}");
    let again = wait_errors(&a2b, "a2b halted again after retry", &node_ab, |s| {
        s["halted"] == true
            && s["error"]["halted_at_unix_ms"]
                .as_u64()
                .is_some_and(|t| t > halted_at)
    })
    .await;
    assert_eq!(halted_row(&again).1, "(id=3)", "{again:#}");
    assert_eq!(v(&pair.b, 3).await.as_deref(), Some("B"), "B's row stays");

    // Skipping the row's change resolves it: the rest of A's transaction
    // and later changes arrive; row 3 keeps B's value on B.
    let out = cli_json(&["errors", "skip"], &a2b).await;
    assert_eq!(out["state"], "done", "{out:#}");
    pair.a
        .exec("UPDATE app.t SET v = 'later' WHERE id = 600")
        .await?;
    wait_v(&pair.b, 600, "later", &node_ab).await;
    assert_eq!(
        number(
            &pair.b,
            "SELECT COUNT(*) FROM app.t WHERE id BETWEEN 1 AND 599 AND v = 'A'"
        )
        .await,
        Some(598)
    );
    assert_eq!(v(&pair.b, 3).await.as_deref(), Some("B"));
    let state = cli_json(&["errors"], &a2b).await;
    assert_eq!(state["halted"], false, "{state:#}");

    // A second conflict, resolved by a replacement on B: written after a
    // marker row, so b2a does not copy it to A.
    assert!(node_ab.terminate(Duration::from_secs(30)).await.success());
    pair.b
        .exec("UPDATE app.t SET v = 'B4' WHERE id = 4")
        .await?;
    pair.a
        .exec("UPDATE app.t SET v = 'A4' WHERE id = 4")
        .await?;
    node_ab.restart();
    let state = wait_errors(&a2b, "a2b halted on row 4", &node_ab, |s| {
        s["halted"] == true && halted_row(s).1 == "(id=4)"
    })
    .await;
    assert_eq!(halted_row(&state).0, "`app`.`t`");
    let fix = pair.dir.path().join("fix.sql");
    std::fs::write(&fix, "UPDATE app.t SET v = 'fixed' WHERE id = 4;\n")?;
    let out = run_sluice(
        &[
            "errors",
            "replace",
            "--json",
            "--sql",
            &fix.display().to_string(),
        ],
        &a2b,
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    wait_v(&pair.b, 4, "fixed", &node_ab).await;
    pair.a
        .exec("UPDATE app.t SET v = 'after' WHERE id = 599")
        .await?;
    wait_v(&pair.b, 599, "after", &node_ab).await;

    // b2a now reads B's binlog: B's own update of row 4 (a conflict on A,
    // which the source wins), then the replacement, which carries a2b's
    // marker and is dropped. Had it come back, A's row 4 would be 'fixed'.
    node_ba.restart();
    probe(&pair.b, &pair.a, B_KEYS + 1, &node_ba).await;
    wait_v(&pair.a, 4, "B4", &node_ba).await;
    assert_eq!(v(&pair.b, 4).await.as_deref(), Some("fixed"));
    // Row 3 was settled by b2a the same way (B's change won on A).
    assert_eq!(v(&pair.a, 3).await.as_deref(), Some("B"));
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_wins_keeps_the_newer_row_either_way_and_refuses_a_table_without_the_column(
) -> TestResult {
    let pair = Pair::start().await;
    let policy = "conflicts: { newer_wins: updated_at }";
    let a2b = pair.config(
        "a2b",
        &pair.a,
        &pair.b,
        &format!("{{ peer: b2a, {policy} }}"),
        "",
    );
    let b2a = pair.config(
        "b2a",
        &pair.b,
        &pair.a,
        &format!("{{ peer: a2b, {policy} }}"),
        "",
    );
    let mut node_ab = Sluice::start_node(&a2b, "node-ab", None);
    let mut node_ba = Sluice::start_node(&b2a, "node-ba", None);
    probe(&pair.a, &pair.b, 0, &node_ab).await;
    probe(&pair.b, &pair.a, B_KEYS, &node_ba).await;
    pair.a
        .exec(
            "INSERT INTO app.t (id, site, n, v) SELECT seq, 'init', 0, 'init' FROM app.seq_1_to_4",
        )
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
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    // Row 1: A's change is newer; row 2: B's is.
    pair.a
        .exec("UPDATE app.t SET v = 'A', updated_at = 20 WHERE id = 1; UPDATE app.t SET v = 'A', updated_at = 10 WHERE id = 2")
        .await?;
    pair.b
        .exec("UPDATE app.t SET v = 'B', updated_at = 10 WHERE id = 1; UPDATE app.t SET v = 'B', updated_at = 20 WHERE id = 2")
        .await?;
    node_ab.restart();
    node_ba.restart();
    for (db, node) in [(&pair.a, &node_ba), (&pair.b, &node_ab)] {
        wait_v(db, 1, "A", node).await;
        wait_v(db, 2, "B", node).await;
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
    // Each side recorded both conflicts: on B (a2b) A's row 1 won, B's row
    // 2 stayed; on A (b2a) the other way round.
    let winner = |pipeline: &str, id: i64| {
        format!("SELECT winner FROM sluice_meta.conflicts WHERE pipeline = '{pipeline}' AND row_key = '(id={id})' AND policy LIKE 'newer_wins%'")
    };
    let one = |w: &str| vec![vec![Some(w.to_string())]];
    assert_eq!(rows(&pair.b, &winner("a2b", 1)).await, one("source"));
    assert_eq!(rows(&pair.b, &winner("a2b", 2)).await, one("target"));
    assert_eq!(rows(&pair.a, &winner("b2a", 1)).await, one("target"));
    assert_eq!(rows(&pair.a, &winner("b2a", 2)).await, one("source"));

    // A keyed table without `updated_at`: a2b refuses it by name instead
    // of letting the source win its conflicts.
    for db in [&pair.a, &pair.b] {
        db.exec("SET sql_log_bin = 0; CREATE TABLE app.u (id BIGINT PRIMARY KEY, v INT NOT NULL)")
            .await?;
    }
    pair.a.exec("INSERT INTO app.u VALUES (1, 1)").await?;
    let state = wait_errors(&a2b, "a2b halted on app.u", &node_ab, |s| {
        s["halted"] == true
    })
    .await;
    let message = state["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`app`.`u`")
            && message.contains("`updated_at`")
            && message.contains("newer_wins"),
        "{state:#}"
    );
    assert_eq!(
        number(&pair.b, "SELECT COUNT(*) FROM app.u").await,
        Some(0),
        "nothing of the refused batch was written"
    );
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    Ok(())
}
