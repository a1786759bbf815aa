//! The operator console (`GET /ui`), the Grafana dashboard
//! (`deploy/grafana/sluice.json`) and the Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`).
//!
//! * An HA pair under a bounded write load, its console loaded in headless
//!   Chromium: the rendered DOM holds the live role, position, lag and rows/s
//!   of `/status` taken just before and just after the page (within
//!   tolerance), the standby's page shows the active node from etcd, both
//!   charts have points, the page's script refreshes it under its own
//!   Content-Security-Policy, the browser requests nothing from another
//!   origin (its net log), `/ui` without the token is refused, and the page
//!   is under 200 KB and answered in under a second.
//! * `promtool check rules` and `promtool test rules` (Debian package
//!   `prometheus`) accept the alert rules and their unit tests.
//! * Every metric the dashboard or a rule names, with the labels it
//!   selects on, is on a fresh node's `/metrics` before anything happened;
//!   every metric a fresh node exports is in the README's table.
//!
//! `SLUICE_UI_SCREENSHOT=FILE` keeps the console's screenshot (the README's
//! `deploy/console.png` is made that way).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_testkit::{wait_until_async, Etcd, MariaDb};

use crate::ops::{admin_addr, get};
use crate::support::browser::{
    attr, chromium_run, dump_dom, element, request, screenshot, tag_of, text_of, Reply,
};
use crate::support::ha::{marker_latency, wait_leader, HA};
use crate::support::{server_id, start_of_binlog, write_config, Coord, Launch, Sluice, TestResult};

const TOKEN: &str = "console-token-8Hq2";
/// The acceptance limits.
const MAX_PAGE_BYTES: usize = 200 * 1024;
const MAX_ANSWER: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start(config: &Path, node: &str) -> Sluice {
    Sluice::launch(config, Launch::node(node).server_id(server_id()))
}

/// `/status` of `addr` as JSON.
async fn status(addr: &str) -> Value {
    let (code, body) = get(addr, "/status", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("/status is JSON")
}

/// `(file, offset)` of a `/status` document's acknowledged position.
fn position_of(status: &Value) -> (String, u64) {
    (
        status["position"]["file"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status["position"]["offset"].as_u64().unwrap_or(0),
    )
}

/// The points of every polyline (and dot) of the `<svg id=…>`.
fn chart_points(html: &str, id: &str) -> usize {
    let svg = element(html, id).unwrap_or_else(|| panic!("no #{id} in the page:\n{html}"));
    let lines: usize = svg
        .split("points=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .count()
        })
        .sum();
    lines + svg.matches("<circle").count()
}

/// Inserts (and now and then updates) rows until `stop` or `ids` run out,
/// at a pace that changes every 1,500 rows (so the chart has a shape).
async fn write_load(mut conn: mysql_async::Conn, ids: std::ops::Range<i64>, stop: Arc<AtomicBool>) {
    for id in ids {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        conn.exec_drop("INSERT INTO shop.events VALUES (?, 'load')", (id,))
            .await
            .expect("load insert");
        if id % 7 == 0 {
            conn.exec_drop("UPDATE shop.events SET v = 'upd' WHERE id = ?", (id - 3,))
                .await
                .expect("load update");
        }
        let pause = [2, 4, 8, 4][usize::try_from(id / 1500 % 4).unwrap_or(0)];
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// `/ui/history` of `addr` until at least `n` samples of `basis` have a
/// rows/s above 0.
async fn wait_history(addr: &str, basis: &str, n: usize, node: &Sluice) -> Value {
    let last = std::cell::RefCell::new(String::new());
    wait_until_async(
        &format!("{n} samples measured by {basis} in /ui/history"),
        // One sample every 5 s, and a minute to start.
        Duration::from_secs(60 + 6 * n as u64),
        Duration::from_millis(500),
        || {
            let last = &last;
            async move {
                let (code, body) = get(addr, "/ui/history", Some(TOKEN)).await;
                let doc: Value = serde_json::from_str(&body).unwrap_or_default();
                *last.borrow_mut() = format!("{code} {body}");
                let count = doc["samples"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["basis"] == basis && s["rows_per_second"].as_f64() > Some(0.0))
                    .count();
                (count >= n).then_some(doc)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: last {}\n{}", last.borrow(), node.log_tail()))
}

/// Without the token nothing but the sign-in page; a sign-in sets a cookie
/// that is not the token and works for the page and `/status`.
async fn check_access(addr: &str) {
    let refused = request(addr, "GET", "/ui", &[], "").await;
    assert_eq!(refused.code, 401, "{refused:?}");
    assert!(refused.body.contains(r#"id="login""#), "{}", refused.body);
    assert!(!refused.body.contains("mysql-bin") && !refused.body.contains(r#"id="position""#));
    for path in ["/ui/live", "/ui/history", "/status", "/metrics"] {
        assert_eq!(
            request(addr, "GET", path, &[], "").await.code,
            401,
            "{path}"
        );
    }
    let wrong = request(addr, "GET", "/ui?token=nope", &[], "").await;
    assert_eq!(wrong.code, 401);
    assert!(wrong.body.contains("not the admin token"), "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        request(addr, "POST", "/ui/login", &form, "token=nope")
            .await
            .code,
        401
    );

    let signed = request(addr, "GET", &format!("/ui?token={TOKEN}"), &[], "").await;
    assert_eq!(signed.code, 303, "{signed:?}");
    assert_eq!(signed.header("location"), Some("/ui"));
    assert_eq!(signed.header("cache-control"), Some("no-store"));
    let cookie = signed
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds the token: {cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_string();
    let with_cookie = [("Cookie", pair.as_str())];
    let page = request(addr, "GET", "/ui", &with_cookie, "").await;
    assert_eq!(page.code, 200, "{page:?}");
    assert!(!page.body.contains(TOKEN), "the page holds the token");
    assert_eq!(
        request(addr, "GET", "/status", &with_cookie, "").await.code,
        200
    );
    let posted = request(addr, "POST", "/ui/login", &form, &format!("token={TOKEN}")).await;
    assert_eq!(posted.code, 303);
    assert_eq!(
        posted.header("set-cookie").map(|c| c.split(';').next()),
        Some(Some(pair.as_str()))
    );
    let out = request(addr, "POST", "/ui/logout", &with_cookie, "").await;
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{out:?}"
    );
}

/// Size, answer time, CSP and no other origin in the HTML. Returns the
/// slowest answer.
async fn check_page(addr: &str) -> (usize, Duration) {
    let bearer = format!("Bearer {TOKEN}");
    let mut slowest = Duration::ZERO;
    let mut size = 0;
    for _ in 0..5 {
        let r: Reply = request(addr, "GET", "/ui", &[("Authorization", &bearer)], "").await;
        assert_eq!(r.code, 200);
        slowest = slowest.max(r.elapsed);
        size = r.body.len();
        assert!(size < MAX_PAGE_BYTES, "the page is {size} bytes");
        assert!(r.elapsed < MAX_ANSWER, "/ui took {:?}", r.elapsed);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")));
        let csp = r.header("content-security-policy").expect("a CSP");
        let directives: BTreeMap<&str, &str> = csp
            .split(';')
            .filter_map(|d| d.trim().split_once(' '))
            .collect();
        assert_eq!(directives.get("default-src"), Some(&"'none'"), "{csp}");
        assert_eq!(directives.get("connect-src"), Some(&"'self'"), "{csp}");
        assert_eq!(directives.get("frame-ancestors"), Some(&"'none'"), "{csp}");
        for d in ["script-src", "style-src"] {
            let v = directives.get(d).unwrap_or_else(|| panic!("no {d}: {csp}"));
            assert!(v.starts_with("'sha256-") && !v.contains(' '), "{d} {v}");
        }
        for bad in ["http:", "https:", "*", "unsafe", "data:"] {
            assert!(!csp.contains(bad), "{bad} in {csp}");
        }
        let html = &r.body;
        for bad in [
            "http://", "https://", " src=", "url(", "@import", "//fonts", "<link",
        ] {
            assert!(!html.contains(bad), "the page has {bad:?}");
        }
        for (at, _) in html
            .match_indices(" href=\"")
            .chain(html.match_indices(" action=\""))
        {
            let value = &html[at..].split('"').nth(1).unwrap_or_default();
            assert!(
                value.starts_with('/') && !value.starts_with("//"),
                "link {value}"
            );
        }
        for forbidden in [" style=\"", " onclick=", " onload="] {
            assert!(!html.contains(forbidden), "{forbidden} (the CSP blocks it)");
        }
    }
    (size, slowest)
}

/// The console of an HA pair under load, in headless Chromium.
#[tokio::test]
async fn console_shows_the_live_pair_in_chromium() -> TestResult {
    crate::support::browser::chromium();
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start_at = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "shop",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start_at,
        &format!(
            "{HA}admin: {{ listen: \"127.0.0.1:0\", token: \"{TOKEN}\" }}\n\
             filter: {{ include: [shop.events] }}\n\
             alarms: {{ lag_threshold: 30s }}\n"
        ),
    );
    let mut a = start(&config, "node-a");
    wait_leader(&etcd, "shop", Some("node-a"), Duration::from_secs(30)).await;
    let mut b = start(&config, "node-b");
    let (a_addr, b_addr) = (admin_addr(&a).await, admin_addr(&b).await);
    marker_latency(&source, &target, 1, Duration::from_secs(30), &[&a, &b]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(
        source.conn().await?,
        1000..101_000,
        Arc::clone(&stop),
    ));
    wait_history(&a_addr, "this_node", 3, &a).await;
    wait_history(&b_addr, "active_node", 2, &b).await;

    check_access(&a_addr).await;
    let (size, slowest) = check_page(&a_addr).await;
    println!("/ui: {size} bytes, slowest of 5 answers {slowest:?}");

    // The active node's page against /status just before and after it.
    let url = |addr: &str| format!("http://{addr}/ui?token={TOKEN}");
    let before = status(&a_addr).await;
    let dom = dump_dom(&url(&a_addr), None).await;
    let after = status(&a_addr).await;
    let role = tag_of(&dom, "role").unwrap_or_else(|| panic!("no #role:\n{dom}"));
    assert_eq!(attr(role, "data-value"), Some("active"), "{role}");
    assert_eq!(text_of(&dom, "node").as_deref(), Some("node-a"));
    let pos = tag_of(&dom, "position").expect("#position");
    let shown = (
        attr(pos, "data-file").unwrap_or_default().to_string(),
        attr(pos, "data-offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
    );
    assert!(
        position_of(&before) <= shown && shown <= position_of(&after),
        "position {shown:?} not between {:?} and {:?}",
        position_of(&before),
        position_of(&after)
    );
    assert_eq!(
        text_of(&dom, "position").as_deref(),
        Some(format!("{}:{}", shown.0, shown.1).as_str())
    );
    let gtid = text_of(&dom, "gtid").unwrap_or_default();
    assert!(
        [&before, &after]
            .iter()
            .any(|s| s["position"]["gtid"].as_str().is_some())
            && gtid.starts_with("0-"),
        "gtid {gtid:?}"
    );
    let lag: u64 = attr(tag_of(&dom, "lag").expect("#lag"), "data-value")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lag in the page:\n{dom}"));
    let lags = [&before, &after].map(|s| s["lag_seconds"].as_u64().unwrap_or(u64::MAX));
    assert!(
        lag + 1 >= *lags.iter().min().unwrap_or(&0) && lag <= lags.iter().max().unwrap_or(&0) + 1,
        "lag {lag} vs /status {lags:?}"
    );
    let rate: f64 = attr(
        tag_of(&dom, "rows-per-second").expect("#rows-per-second"),
        "data-value",
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or_else(|| panic!("no rows/s in the page:\n{dom}"));
    let rates = [&before, &after].map(|s| s["rows_per_second"].as_f64().unwrap_or(-1.0));
    let (lo, hi) = (rates[0].min(rates[1]), rates[0].max(rates[1]));
    assert!(rate > 0.0, "rows/s {rate} under load");
    assert!(
        rate >= lo * 0.5 - 5.0 && rate <= hi * 1.5 + 5.0,
        "rows/s {rate} vs /status {rates:?}"
    );
    println!("page: position {shown:?}, lag {lag} s, {rate} rows/s; /status lag {lags:?}, rows/s {rates:?}");
    assert!(
        dom.contains(r#"data-node="node-b" data-role="standby""#),
        "{dom}"
    );
    // Each node publishes the address its admin listener is bound to (the
    // configured `127.0.0.1:0` names no port anyone could reach).
    for addr in [&a_addr, &b_addr] {
        assert!(
            dom.contains(&format!(r#"<td class="mono">{addr}</td>"#)),
            "admin address {addr} not in the nodes table:\n{dom}"
        );
    }
    assert_eq!(
        attr(
            tag_of(&dom, "conn-target").expect("#conn-target"),
            "data-value"
        ),
        Some("up")
    );
    assert_eq!(
        attr(tag_of(&dom, "conn-etcd").expect("#conn-etcd"), "data-value"),
        Some("up")
    );
    assert!(chart_points(&dom, "chart-lag") >= 3, "lag chart");
    assert!(chart_points(&dom, "chart-rows") >= 3, "rows chart");

    // The standby's page shows the active node, as etcd has it.
    let dom_b = dump_dom(&url(&b_addr), None).await;
    assert_eq!(
        attr(tag_of(&dom_b, "role").expect("#role"), "data-value"),
        Some("standby")
    );
    assert_eq!(
        attr(
            tag_of(&dom_b, "replication").expect("#replication"),
            "data-basis"
        ),
        Some("active_node")
    );
    assert!(
        dom_b.contains(r#"data-node="node-a" data-role="active""#),
        "{dom_b}"
    );
    assert!(
        dom_b.contains(r#"data-node="node-b" data-role="standby" class="self""#),
        "{dom_b}"
    );
    assert!(
        chart_points(&dom_b, "chart-rows") >= 2,
        "standby rows chart:\n{dom_b}"
    );

    // The page's own script refreshes it (the CSP lets exactly it run and
    // fetch /ui/live), and the browser asks nothing of another origin.
    let netlog = dir.path().join("netlog.json");
    let run = chromium_run(
        &[
            "--dump-dom".to_string(),
            "--virtual-time-budget=12000".to_string(),
            format!("--log-net-log={}", netlog.display()),
        ],
        &url(&a_addr),
    )
    .await;
    let state = tag_of(&run.stdout, "refresh-state").expect("#refresh-state");
    assert_eq!(
        attr(state, "data-state"),
        Some("live"),
        "the script did not refresh: {state}\n{}",
        run.stderr
    );
    let requested = page_requests(&netlog);
    let origin = format!("http://{a_addr}/");
    assert!(
        requested.iter().all(|u| u.starts_with(&origin)),
        "the page requested another origin: {requested:?}"
    );
    for path in ["/ui?token=", "/ui/live"] {
        let url = format!("http://{a_addr}{path}");
        assert!(
            requested.iter().any(|u| u.starts_with(&url)),
            "{path} not in {requested:?}"
        );
    }
    let paths: Vec<&str> = requested
        .iter()
        .map(|u| u[origin.len() - 1..].split('?').next().unwrap_or_default())
        .collect();
    println!("the page's requests, all to {origin}: {paths:?}");

    // Without the token the browser gets the sign-in page only.
    let refused = dump_dom(&format!("http://{a_addr}/ui"), None).await;
    assert!(refused.contains(r#"id="login""#) && tag_of(&refused, "position").is_none());

    let keep = std::env::var_os("SLUICE_UI_SCREENSHOT").map(PathBuf::from);
    if keep.is_some() {
        // For the README: a few minutes of chart.
        wait_history(&a_addr, "this_node", 40, &a).await;
    }
    let shot = keep.unwrap_or_else(|| dir.path().join("console.png"));
    screenshot(&url(&a_addr), &shot, 1280, 900).await;
    println!(
        "screenshot: {} ({} bytes)",
        shot.display(),
        std::fs::metadata(&shot)?.len()
    );

    stop.store(true, Ordering::Relaxed);
    load.await?;
    for node in [&mut a, &mut b] {
        let exit = node.terminate(Duration::from_secs(30)).await;
        assert!(exit.success(), "{}", node.log_tail());
    }
    Ok(())
}

/// The URLs the page made the browser request, from a Chromium net log:
/// every request job whose network isolation key is the page's site
/// (`http://127.0.0.1`) — the page itself, its subresources, its fetches,
/// wherever they go. The browser's own traffic (component updates, network
/// time, accounts: keyed `null` or to google.com, and failing here without
/// a network) is not the page's and is left out.
fn page_requests(netlog: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(netlog).expect("the net log");
    // A log cut short by the browser's exit lacks its closing brackets.
    let log: Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("URL_REQUEST_START_JOB in the net log's constants");
    log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("http://127.0.0.1 "))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}

/// `promtool check rules` and `promtool test rules` accept the alert rules.
#[test]
fn promtool_accepts_the_alert_rules_and_their_tests() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool: {e}: install the Debian package `prometheus` (deploy/local/prereqs.sh does)")
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        println!("promtool {}: {}", args.join(" "), text.trim());
    }
}

/// A Prometheus exposition: metric name → label name → values seen.
type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn parse_exposition(text: &str) -> Exported {
    let mut out = Exported::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let labels = out.entry(name.clone()).or_default();
        let rest = &line[name.len()..];
        if let Some(body) = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(b, _)| b)
        {
            for (k, v) in matchers(body) {
                labels.entry(k).or_default().insert(v.1);
            }
        }
    }
    out
}

/// A label matcher: `(label, (operator, value))`.
type Matcher = (String, (String, String));

/// `k="v",k2!~"v2"` → `[(k, (op, v))]`.
fn matchers(body: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let key: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = rest[key.len()..].trim_start();
        let op: String = rest.chars().take_while(|c| "=!~".contains(*c)).collect();
        rest = rest[op.len()..].trim_start();
        let Some(quoted) = rest.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = quoted.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key, (op, value)));
        rest = quoted[end..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    out
}

/// Every `sluice_*` selector of a PromQL expression: `(name, matchers)`.
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut out = Vec::new();
    for (at, _) in expr.match_indices("sluice_") {
        if at > 0 && expr[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = expr[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = &expr[at + name.len()..];
        let m = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map_or_else(Vec::new, |(body, _)| matchers(body));
        out.push((name, m));
    }
    out
}

/// Labels named in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`,
/// `group_left (…)`, `group_right (…)`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for (at, _) in expr.match_indices(word) {
            let before_ok =
                at == 0 || !expr[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            let rest = expr[at + word.len()..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let inner = rest[1..].split(')').next().unwrap_or_default();
            out.extend(
                inner
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    out
}

/// Every PromQL expression of the dashboard (panel targets and template
/// variable queries).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) | ("definition", Value::String(s)) => {
                            out.push(s.clone())
                        }
                        ("query", Value::Object(q)) => {
                            if let Some(Value::String(s)) = q.get("query") {
                                out.push(s.clone());
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(dashboard, &mut out);
    out
}

/// `expr:` values of the alert rules file.
fn rule_exprs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" || rest == "|-" || rest == ">-" {
            let indent = line.len() - line.trim_start().len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                if !next.trim().is_empty() && next.len() - next.trim_start().len() <= indent {
                    break;
                }
                block.push_str(next.trim());
                block.push(' ');
                lines.next();
            }
            out.push(block);
        } else {
            out.push(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    out
}

/// Each expression names only exported metrics, label names they carry and
/// label values a fresh node already has.
fn check_exprs(what: &str, exprs: &[String], exported: &Exported) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for expr in exprs {
        let sel = selectors(expr);
        let mut labels_here: BTreeSet<String> = ["pipeline", "instance", "job", "le"]
            .map(String::from)
            .into();
        for (name, matchers) in &sel {
            let labels = exported.get(name).unwrap_or_else(|| {
                panic!("{what}: `{name}` is not on a fresh node's /metrics (in `{expr}`)")
            });
            used.insert(name.clone());
            labels_here.extend(labels.keys().cloned());
            for (key, (op, value)) in matchers {
                if key == "pipeline" {
                    continue;
                }
                let values = labels.get(key).unwrap_or_else(|| {
                    panic!("{what}: `{name}` has no label `{key}` (in `{expr}`)")
                });
                if op == "=" && !value.contains('$') {
                    assert!(values.contains(value), "{what}: `{name}{{{key}=\"{value}\"}}` is not exported (has {values:?}) in `{expr}`");
                }
            }
        }
        for label in grouping_labels(expr) {
            assert!(
                labels_here.contains(&label),
                "{what}: label `{label}` of `{expr}` is on none of its metrics"
            );
        }
    }
    used
}

/// The dashboard and the rules name only what a fresh node exports; the
/// README documents every metric it exports.
#[tokio::test]
async fn dashboard_and_rules_name_only_metrics_a_fresh_node_exports() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start_at = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "fresh",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start_at,
        &format!(
            "{HA}admin: {{ listen: \"127.0.0.1:0\" }}\nfilter: {{ include: [shop.events] }}\n\
             routes: [{{ match: 'shop\\.(.*)', to: 'shop_copy.$1' }}]\n"
        ),
    );
    let mut node = start(&config, "fresh-a");
    let addr = admin_addr(&node).await;
    // At once: nothing has happened yet.
    let (code, text) = get(&addr, "/metrics", None).await;
    assert_eq!(code, 200, "{text}");
    let exported = parse_exposition(&text);
    assert!(exported.len() >= 20, "{text}");
    for (name, labels) in &exported {
        assert!(name.starts_with("sluice_"), "{name}");
        assert_eq!(
            labels.get("pipeline"),
            Some(&BTreeSet::from(["fresh".to_string()])),
            "{name} lacks pipeline=\"fresh\""
        );
    }
    assert!(
        text.contains(
            "sluice_rows_total{pipeline=\"fresh\",stage=\"load\",table=\"shop_copy.events\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains("sluice_lag_seconds{pipeline=\"fresh\"} NaN"),
        "{text}"
    );

    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("deploy/grafana/sluice.json"),
    )?)?;
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] != "row" {
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel {} has no query",
                p["title"]
            );
        }
    }
    let exprs = dashboard_exprs(&dashboard);
    let in_dashboard = check_exprs("dashboard", &exprs, &exported);
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml"))?;
    let rule_exprs = rule_exprs(&rules);
    assert!(rule_exprs.len() >= 8, "{rule_exprs:?}");
    let in_rules = check_exprs("alerts.yml", &rule_exprs, &exported);
    for needed in [
        "sluice_lag_seconds",
        "sluice_active",
        "sluice_halted",
        "sluice_errors_total",
        "sluice_connection_up",
    ] {
        assert!(in_rules.contains(needed), "no rule on {needed}");
    }
    for needed in [
        "sluice_lag_seconds",
        "sluice_rows_total",
        "sluice_batch_apply_seconds_bucket",
        "sluice_leadership_changes_total",
        "sluice_errors_total",
        "sluice_queue_bytes",
    ] {
        assert!(in_dashboard.contains(needed), "no panel on {needed}");
    }
    println!(
        "dashboard: {} panels, {} queries over {} metrics; rules: {} over {} metrics",
        panels.len(),
        exprs.len(),
        in_dashboard.len(),
        rule_exprs.len(),
        in_rules.len()
    );

    // The README's metrics table documents every metric a node exports.
    let readme = std::fs::read_to_string(repo().join("README.md"))?;
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split('|')
                .nth(1)
                .unwrap_or_default()
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for name in exported.keys() {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| exported.contains_key(&format!("{f}_bucket")))
            })
            .unwrap_or(name);
        let short = family.trim_start_matches("sluice_");
        assert!(
            documented.contains(short),
            "`{short}` is exported but not in the README's metrics table"
        );
    }
    let exit = node.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{}", node.log_tail());
    Ok(())
}
