//! Operations: the admin endpoint (`/healthz`, `/readyz`, `/status`,
//! `/metrics`), alarms delivered to a webhook, log formats, and secrets that
//! must not leak into any of them.
//!
//! Every test runs the real `sluice run` with debug logging and database
//! accounts whose passwords are distinctive strings given literally in the
//! pipeline file, then searches every log, `/status` and `/metrics` text it
//! captured for them. The webhook is a tiny HTTP server of the test's own on
//! loopback; HTTP requests are written by hand (no client dependency).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{server_id, start_of_binlog, wait_same, Launch, Sluice, TestResult};

const SOURCE_PASSWORD: &str = "Src-Pw-9f3Kq-UNLIKELY";
const TARGET_PASSWORD: &str = "Tgt-Pw-7Zx2w-UNLIKELY";
const ADMIN_TOKEN: &str = "adm-token-41c9";
const HOOK_SECRET: &str = "Hook-Secret-66Lp";

/// Every secret that must never be printed.
const SECRETS: [&str; 4] = [SOURCE_PASSWORD, TARGET_PASSWORD, ADMIN_TOKEN, HOOK_SECRET];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Accounts with the distinctive passwords on both servers.
async fn accounts(source: &MariaDb, target: &MariaDb) -> Result<(), Box<dyn std::error::Error>> {
    source
        .exec(&format!(
            "CREATE USER 'opsrepl'@'127.0.0.1' IDENTIFIED BY '{SOURCE_PASSWORD}';
             GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN, SELECT ON *.* TO 'opsrepl'@'127.0.0.1';
             CREATE DATABASE shop;
             CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));"
        ))
        .await?;
    target
        .exec(&format!(
            "CREATE USER 'opsload'@'127.0.0.1' IDENTIFIED BY '{TARGET_PASSWORD}';
             GRANT ALL PRIVILEGES ON *.* TO 'opsload'@'127.0.0.1';"
        ))
        .await?;
    Ok(())
}

/// A pipeline file with the passwords written literally, an admin endpoint
/// on a free port with a token, and `extra` lines.
fn config(
    dir: &Path,
    source: &MariaDb,
    target: &MariaDb,
    coordination: &str,
    start: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        "name: ops\n\
         source: {{ url: \"mysql://opsrepl:{SOURCE_PASSWORD}@127.0.0.1:{sp}\", server_id: {sid}, start: {start} }}\n\
         target: {{ url: \"mysql://opsload:{TARGET_PASSWORD}@127.0.0.1:{tp}\" }}\n\
         {coordination}\n\
         batch: {{ max_delay: 5ms }}\n\
         admin: {{ listen: \"127.0.0.1:0\", token: \"{ADMIN_TOKEN}\" }}\n\
         {extra}\n",
        sp = source.port(),
        tp = target.port(),
        sid = server_id(),
    );
    let path = dir.join("ops.yaml");
    std::fs::write(&path, text).expect("write the pipeline file");
    path
}

/// A `sluice run` with debug logging everywhere (human or JSON lines);
/// output in `<node>.log`.
fn start_node(config: &Path, node_id: &str, json_logs: bool) -> Sluice {
    Sluice::launch(
        config,
        Launch::node(node_id)
            .server_id(server_id())
            .without_progress()
            .log_filter("debug")
            .env("RUST_LOG", "debug")
            .env(
                "SLUICE_LOG_FORMAT",
                if json_logs { "json" } else { "human" },
            ),
    )
}

/// The admin address from the node's `admin HTTP listening` line.
pub(crate) async fn admin_addr(node: &Sluice) -> String {
    wait_until_async(
        "the admin address in the log",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let text = node.log_text();
            let line = text.lines().find(|l| l.contains("admin HTTP listening"))?;
            // Human: `addr=127.0.0.1:PORT`; JSON: `"addr":"127.0.0.1:PORT"`.
            let rest = line
                .split_once("addr=")
                .or_else(|| line.split_once("\"addr\":\""))
                .map(|(_, r)| r)
                .unwrap_or_default();
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            (!addr.is_empty()).then_some(addr)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: no admin address logged:\n{}", node.log_tail()))
}

/// SIGTERM; the node must stop cleanly.
async fn stop(node: &mut Sluice) {
    let status = node.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "sluice did not stop cleanly: {status:?}\n{}",
        node.log_tail()
    );
}

/// `GET path` over HTTP/1.1; `(status, body)`.
pub(crate) async fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .expect("admin request timed out")
        .expect("admin request failed");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// The value of the series `name{labels}` (exact label text) in a
/// Prometheus exposition, if present. Every series carries the global
/// label `pipeline` first; a `series` that does not name it matches
/// without it.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .map(|l| {
            if series.contains("pipeline=") {
                l.to_string()
            } else {
                without_pipeline_label(l)
            }
        })
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next().map(str::to_string))
        .and_then(|v| v.parse().ok())
}

/// `name{pipeline="p",a="b"} 1` → `name{a="b"} 1`, `name{pipeline="p"} 1`
/// → `name 1`.
fn without_pipeline_label(line: &str) -> String {
    let Some(at) = line.find("{pipeline=\"") else {
        return line.to_string();
    };
    let rest = &line[at + "{pipeline=\"".len()..];
    let Some(end) = rest.find('"') else {
        return line.to_string();
    };
    let after = &rest[end + 1..];
    match after.strip_prefix(',') {
        Some(more) => format!("{}{{{more}", &line[..at]),
        None => format!(
            "{}{}",
            &line[..at],
            after.strip_prefix('}').unwrap_or(after)
        ),
    }
}

/// What the test webhook received: JSON bodies and the `x-test` header.
#[derive(Clone, Default)]
pub(crate) struct Hook {
    received: Arc<Mutex<Vec<(serde_json::Value, String)>>>,
}

impl Hook {
    /// Serves on a free loopback port until the returned task is dropped
    /// (aborted). Answers 200 to every POST.
    pub(crate) async fn start() -> (Hook, String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook");
        let addr = listener.local_addr().expect("webhook address").to_string();
        let hook = Hook::default();
        let received = Arc::clone(&hook.received);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let received = Arc::clone(&received);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // One request per connection; bounded by its length.
                    loop {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.trim()
                                        .eq_ignore_ascii_case(name)
                                        .then(|| v.trim().to_string())
                                })
                                .unwrap_or_default()
                        };
                        let length: usize = header("content-length").parse().unwrap_or(0);
                        if body.len() < length {
                            continue;
                        }
                        let value = serde_json::from_str(&body[..length]).unwrap_or_default();
                        received
                            .lock()
                            .expect("hook lock")
                            .push((value, header("x-test")));
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                });
            }
        });
        (hook, format!("http://{addr}/hook?key={HOOK_SECRET}"), task)
    }

    pub(crate) fn events(&self) -> Vec<(serde_json::Value, String)> {
        self.received.lock().expect("hook lock").clone()
    }

    /// Waits for an event of `kind` in `state`.
    async fn wait(
        &self,
        kind: &str,
        state: &str,
        timeout: Duration,
        node: &Sluice,
    ) -> serde_json::Value {
        wait_until_async(
            &format!("a {kind}/{state} event"),
            timeout,
            Duration::from_millis(50),
            || async {
                self.events()
                    .into_iter()
                    .find(|(e, _)| e["kind"] == kind && e["state"] == state)
                    .map(|(event, _)| event)
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: got {:?}\n{}",
                self.events()
                    .iter()
                    .map(|(e, _)| format!("{}/{}", e["kind"], e["state"]))
                    .collect::<Vec<_>>(),
                node.log_tail()
            )
        })
    }
}

/// Polls `/readyz` until it answers `code`; returns the body.
async fn wait_ready(addr: &str, code: u16, node: &Sluice) -> serde_json::Value {
    let last = std::cell::RefCell::new((0, String::new()));
    wait_until_async(
        &format!("/readyz to answer {code}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let last = &last;
            async move {
                let (got, body) = get(addr, "/readyz", None).await;
                let ready = (got == code).then(|| serde_json::from_str(&body).unwrap_or_default());
                *last.borrow_mut() = (got, body);
                ready
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        let (got, body) = last.into_inner();
        panic!(
            "{e}: /readyz never answered {code} (last {got} {body})\n{}",
            node.log_tail()
        )
    })
}

/// Polls `/readyz` until it answers 200 with `role` (a node answers 200 as
/// a standby before it wins the election).
async fn wait_ready_as(addr: &str, role: &str, node: &Sluice) -> serde_json::Value {
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    wait_until_async(
        &format!("/readyz to say {role}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let last = &last;
            async move {
                let ready = wait_ready(addr, 200, node).await;
                let matched = (ready["role"] == role).then(|| ready.clone());
                *last.borrow_mut() = ready;
                matched
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: last {}\n{}", last.borrow(), node.log_tail()))
}

/// Inserts ids `ids` on the source, `pause_ms` apart (bounded).
async fn write_rows(conn: &mut mysql_async::Conn, ids: std::ops::Range<i64>, pause_ms: u64) {
    for id in ids {
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'ops')", (id,))
            .await
            .expect("insert");
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Metrics move during replication; stopping the target raises
/// `target_unreachable` and `lag` on the webhook (and `/readyz` turns 503),
/// restarting it resolves both; no secret in logs, `/status`, `/metrics`.
#[tokio::test]
async fn metrics_move_and_a_stopped_target_alarms_the_webhook() -> TestResult {
    let (source, mut target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    accounts(&source, &target).await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let (hook, hook_url, hook_task) = Hook::start().await;
    let state = dir.path().join("state");
    let config = config(
        dir.path(),
        &source,
        &target,
        &format!("coordination: {{ local: {{ dir: \"{}\" }} }}", state.display()),
        &start,
        &format!(
            "alarms:\n  lag_threshold: 2s\n  webhooks:\n    - url: \"{hook_url}\"\n      headers: {{ X-Test: \"{HOOK_SECRET}\" }}\n      timeout: 2s\n"
        ),
    );
    let mut node = start_node(&config, "solo", false);
    let addr = admin_addr(&node).await;
    let mut captured = String::new();

    assert_eq!(get(&addr, "/healthz", None).await, (200, "ok\n".into()));
    let ready = wait_ready(&addr, 200, &node).await;
    assert_eq!(ready["role"], "active", "{ready}");
    assert_eq!(get(&addr, "/status", None).await.0, 401, "token required");
    assert_eq!(get(&addr, "/metrics", Some("wrong")).await.0, 401);

    // Rows move while replicating.
    let mut conn = source.conn().await?;
    let rows_series = "sluice_rows_total{stage=\"load\",table=\"shop.events\"}";
    write_rows(&mut conn, 1..51, 5).await;
    let scraped = std::cell::RefCell::new(String::new());
    let first = wait_until_async(
        &format!("{rows_series} to reach 50"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let (scraped, addr) = (&scraped, &addr);
            async move {
                let (code, text) = get(addr, "/metrics", Some(ADMIN_TOKEN)).await;
                assert_eq!(code, 200);
                let value = metric(&text, rows_series).filter(|v| *v >= 50.0);
                scraped.borrow_mut().push_str(&text);
                value
            }
        },
    )
    .await;
    captured.push_str(&scraped.take());
    let first = first.unwrap_or_else(|e| panic!("{e}:\n{captured}"));
    write_rows(&mut conn, 51..101, 5).await;
    let last = std::cell::RefCell::new(String::new());
    let moved = wait_until_async(
        "the row counter to move and every gauge to be set",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let (scraped, last, addr) = (&scraped, &last, &addr);
            async move {
                let (_, text) = get(addr, "/metrics", Some(ADMIN_TOKEN)).await;
                scraped.borrow_mut().push_str(&text);
                // Gauges are refreshed by a once-a-second monitor: poll for
                // them too rather than expect them with the row counter.
                let missing: Vec<&str> = [
                    "sluice_batches_total{stage=\"extract\"}",
                    "sluice_rows_total{stage=\"extract\",table=\"shop.events\"}",
                    "sluice_batch_apply_seconds_count",
                    "sluice_acknowledged_offset",
                    "sluice_connection_up{peer=\"target\"}",
                ]
                .into_iter()
                .filter(|series| !metric(&text, series).is_some_and(|v| v > 0.0))
                .collect();
                let moved = metric(&text, rows_series).is_some_and(|v| v >= first + 50.0);
                *last.borrow_mut() =
                    format!("rows moved: {moved}; series missing or zero: {missing:?}\n{text}");
                (moved && missing.is_empty()).then_some(())
            }
        },
    )
    .await;
    captured.push_str(&scraped.take());
    moved.unwrap_or_else(|e| panic!("{e}: {}", last.borrow()));
    // The counters in /status are refreshed by the same once-a-second
    // monitor: poll for them too.
    let (status, body) = wait_until_async(
        "/status to count the rows loaded",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let addr = &addr;
            async move {
                let (code, body) = get(addr, "/status", Some(ADMIN_TOKEN)).await;
                let status: serde_json::Value = serde_json::from_str(&body).ok()?;
                (code == 200 && status["counters"]["rows_loaded"].as_u64() >= Some(100))
                    .then_some((status, body))
            }
        },
    )
    .await?;
    assert_eq!(status["role"], "active");
    assert!(status["position"]["offset"].as_u64() > Some(4), "{status}");
    captured.push_str(&body);

    // Stop the target while the source keeps changing.
    target.stop().await;
    let stopped = Instant::now();
    write_rows(&mut conn, 101..121, 10).await;
    let alarm = hook
        .wait(
            "target_unreachable",
            "firing",
            Duration::from_secs(60),
            &node,
        )
        .await;
    println!(
        "target_unreachable alarm received {:?} after the target stopped",
        stopped.elapsed()
    );
    assert_eq!(alarm["pipeline"], "ops");
    assert_eq!(alarm["node"], "solo");
    assert_eq!(alarm["severity"], "warning");
    let not_ready = wait_ready(&addr, 503, &node).await;
    assert!(
        not_ready["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("target"),
        "{not_ready}"
    );
    // Lag grows while the target is down, and the lag alarm fires.
    hook.wait("lag", "firing", Duration::from_secs(30), &node)
        .await;
    let (_, text) = get(&addr, "/metrics", Some(ADMIN_TOKEN)).await;
    captured.push_str(&text);
    let lag = metric(&text, "sluice_lag_seconds").unwrap_or_default();
    assert!(lag > 2.0, "lag {lag}:\n{text}");
    assert_eq!(
        metric(&text, "sluice_connection_up{peer=\"target\"}"),
        Some(0.0)
    );

    target.start().await?;
    hook.wait(
        "target_unreachable",
        "resolved",
        Duration::from_secs(60),
        &node,
    )
    .await;
    hook.wait("lag", "resolved", Duration::from_secs(30), &node)
        .await;
    wait_ready(&addr, 200, &node).await;
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    // The target catches up after its restart.
    wait_same(&source, &target, all, all, Duration::from_secs(30), &node).await;
    let (_, text) = get(&addr, "/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(metric(&text, "sluice_lag_seconds"), Some(0.0), "{text}");
    assert!(
        metric(
            &text,
            "sluice_events_total{kind=\"target_unreachable\",state=\"firing\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    captured.push_str(&text);
    captured.push_str(&get(&addr, "/status", Some(ADMIN_TOKEN)).await.1);

    stop(&mut node).await;
    // The webhook got its configured header; the events carry no secret.
    let events = hook.events();
    assert!(events.iter().all(|(_, h)| h == HOOK_SECRET));
    let bodies: String = events.iter().map(|(e, _)| e.to_string()).collect();
    assert_no_secret("webhook events", &bodies);
    assert_no_secret("/status and /metrics", &captured);
    let log = node.log_text();
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert_no_secret("the log", &log);
    drop(hook_task);
    Ok(())
}

/// Two nodes with etcd: `/readyz` is 200 on both but says `active` on the
/// leader and `standby` on the other; after the leader stops, the standby
/// becomes active. JSON log lines parse; no secret anywhere.
#[tokio::test]
async fn readyz_tells_active_from_standby() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    accounts(&source, &target).await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let config = config(
        dir.path(),
        &source,
        &target,
        &format!(
            "coordination:\n  etcd: {{ endpoints: [\"{}\"], prefix: /ops }}\nha: {{ lease_ttl: 2s, standby_delay: 0s }}",
            etcd.endpoint()
        ),
        &start,
        "",
    );
    let mut a = start_node(&config, "node-a", false);
    let a_addr = admin_addr(&a).await;
    wait_ready_as(&a_addr, "active", &a).await;
    let mut b = start_node(&config, "node-b", true);
    let b_addr = admin_addr(&b).await;
    let ready = wait_ready(&b_addr, 200, &b).await;
    assert_eq!(ready["role"], "standby", "{ready}");
    assert_eq!(ready["reason"], "standby, campaigning");
    let (_, a_ready) = get(&a_addr, "/readyz", None).await;
    assert!(a_ready.contains("\"active and replicating\""), "{a_ready}");

    let mut conn = source.conn().await?;
    write_rows(&mut conn, 1..21, 5).await;
    let all = "SELECT id, v FROM shop.events ORDER BY id";
    wait_same(&source, &target, all, all, Duration::from_secs(30), &a).await;
    let mut captured = String::new();
    for addr in [&a_addr, &b_addr] {
        for path in ["/status", "/metrics"] {
            let (code, body) = get(addr, path, Some(ADMIN_TOKEN)).await;
            assert_eq!(code, 200, "{path}");
            captured.push_str(&body);
        }
    }
    let (_, a_status) = get(&a_addr, "/status", Some(ADMIN_TOKEN)).await;
    let (_, b_status) = get(&b_addr, "/status", Some(ADMIN_TOKEN)).await;
    let a_status: serde_json::Value = serde_json::from_str(&a_status)?;
    let b_status: serde_json::Value = serde_json::from_str(&b_status)?;
    assert_eq!(a_status["role"], "active");
    assert_eq!(a_status["connections"]["etcd"], "up");
    assert_eq!(b_status["role"], "standby");
    assert_eq!(b_status["node"], "node-b");

    // Handover: the standby becomes active.
    stop(&mut a).await;
    let last = std::cell::RefCell::new((0, String::new()));
    wait_until_async(
        "node-b to become active",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let (last, b_addr) = (&last, &b_addr);
            async move {
                let (code, body) = get(b_addr, "/readyz", None).await;
                let active = code == 200 && body.contains("\"active\"");
                *last.borrow_mut() = (code, body);
                active.then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        let (code, body) = last.into_inner();
        panic!(
            "{e}: node-b never became active: {code} {body}\n{}",
            b.log_tail()
        )
    });
    let (_, metrics) = get(&b_addr, "/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(metric(&metrics, "sluice_active"), Some(1.0), "{metrics}");
    assert!(
        metric(
            &metrics,
            "sluice_leadership_changes_total{change=\"gained\"}"
        ) == Some(1.0),
        "{metrics}"
    );
    captured.push_str(&metrics);
    stop(&mut b).await;

    // `--log-format json`: every line node-b wrote is a JSON object.
    let b_log = b.log_text();
    for line in b_log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(b_log.contains("leadership gained"), "{}", b.log_tail());
    assert_no_secret("/status and /metrics", &captured);
    assert_no_secret("node-a's log", &a.log_text());
    assert_no_secret("node-b's log", &b_log);
    Ok(())
}
