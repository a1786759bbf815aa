//! `sluice switchover` and `sluice status` of an active-active pair (see
//! `bidi` for the setup): under a write load on A, with a2b held back by
//! `sluice pause` so that a lag builds up, `switchover --config a2b.yaml`
//! says what it waits for, does not return while a2b is paused, returns 0
//! once B holds every row A wrote before it started, and reports the lag
//! it waited out (the lag `sluice status` showed, grown by at most the time
//! that passed); `status` shows both directions' lag.

use std::time::{Duration, Instant};

use sluice_testkit::wait_until_async;
use tokio::io::AsyncBufReadExt as _;

use crate::bidi::{probe, Pair, B_KEYS};
use crate::support::cli::{json_of, output_text, run_sluice};
use crate::support::sql::number;
use crate::support::{Sluice, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_load_returns_once_b_caught_up_and_reports_the_lag() -> TestResult {
    let pair = Pair::start().await;
    let a2b = pair.config("a2b", &pair.a, &pair.b, "{ peer: b2a }", "");
    let b2a = pair.config("b2a", &pair.b, &pair.a, "{ peer: a2b }", "");
    let mut node_ab = Sluice::start_node(&a2b, "node-ab", None);
    let mut node_ba = Sluice::start_node(&b2a, "node-ba", None);
    probe(&pair.a, &pair.b, 0, &node_ab).await;
    probe(&pair.b, &pair.a, B_KEYS, &node_ba).await;

    // Both directions' lag in one status (once both positions are flushed).
    let status = wait_until_async(
        "both directions' lag in status",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let s = json_of(&run_sluice(&["status", "--json"], &a2b).await);
            (s["position"]["lag_seconds"].is_u64() && s["peer"]["lag_seconds"].is_u64())
                .then_some(s)
        },
    )
    .await?;
    assert_eq!(status["pipeline"], "a2b");
    assert_eq!(status["peer"]["pipeline"], "b2a", "{status}");
    assert!(status["peer"]["lag_seconds"].is_u64(), "{status}");
    assert!(status["position"]["lag_seconds"].is_u64(), "{status}");

    // A paced load on A for the whole test (bounded: it ends by itself).
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let stop = stop.clone();
        let url = pair.a.url();
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
            let mut id = 1i64;
            while !stop.is_cancelled() && id < 20_000 {
                conn.exec_drop(
                    "INSERT INTO app.t (id, site, n, v) VALUES (?, 'A', 0, 'load')",
                    (id,),
                )
                .await
                .expect("insert");
                id += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            id - 1
        })
    };
    assert!(run_sluice(&["pause"], &a2b).await.status.success());
    // Let a lag of at least 2 s build up (polled, not slept).
    let lag_before = wait_until_async(
        "a2b's lag to reach 2 s",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let s = json_of(&run_sluice(&["status", "--json"], &a2b).await);
            s["position"]["lag_seconds"].as_u64().filter(|l| *l >= 2)
        },
    )
    .await?;
    let read_at = Instant::now();
    let written_before = number(
        &pair.a,
        "SELECT COALESCE(MAX(id), 0) FROM app.t WHERE id < 1000000",
    )
    .await
    .unwrap_or(0);

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["switchover", "--json", "--timeout", "120", "--config"])
        .arg(&a2b)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let said = tokio::time::timeout(Duration::from_secs(60), stderr.next_line())
        .await??
        .unwrap_or_default();
    assert!(
        said.starts_with("waiting for a2b to reach its source's end of binlog"),
        "{said}"
    );
    let waiting_since = Instant::now();
    // Paused, a2b cannot catch up: switchover is still waiting.
    assert!(
        child.try_wait()?.is_none(),
        "switchover returned while a2b was paused"
    );
    // It waited at least from saying so until the resume.
    let paused_for = waiting_since.elapsed();
    assert!(run_sluice(&["resume"], &a2b).await.status.success());
    let out = tokio::time::timeout(Duration::from_secs(150), child.wait_with_output()).await??;
    let elapsed = read_at.elapsed();
    stop.cancel();
    let written = writer.await?;
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["caught_up"], true, "{report}");
    // Every row A wrote before the switchover started is on B now.
    let on_b = number(
        &pair.b,
        &format!("SELECT COUNT(*) FROM app.t WHERE id BETWEEN 1 AND {written_before}"),
    )
    .await;
    assert_eq!(
        on_b,
        Some(written_before),
        "rows 1..={written_before} on B; {report}"
    );
    // The lag it reports is the one status showed, grown by at most the
    // time that passed since.
    let lag = report["lag_at_start_seconds"]
        .as_u64()
        .expect("lag at start");
    assert!(
        lag >= lag_before && lag <= lag_before + elapsed.as_secs() + 1,
        "lag at start {lag} s, status showed {lag_before} s {elapsed:?} before the end; {report}"
    );
    assert!(
        report["waited_ms"].as_u64().is_some_and(
            |w| w as u128 >= paused_for.as_millis() && w as u128 <= elapsed.as_millis()
        ),
        "{report}"
    );
    assert!(
        written > written_before as i64,
        "the load went on during the switchover"
    );
    for node in [&mut node_ab, &mut node_ba] {
        assert!(node.terminate(Duration::from_secs(30)).await.success());
    }
    Ok(())
}
