//! Messages that say what happened and what to do (issue 13): a wrong
//! password is "access denied" with the server's words, not "unreachable";
//! a bare `host:port` says which URL to write; etcd down is one readable
//! line, never tonic's debug dump; log lines carry no Rust `Some(..)`/`None`;
//! and a command needs only the `${VAR}`s of the sections it uses.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sluice_testkit::{Etcd, MariaDb};

use crate::pipeline::{server_id, start_of_binlog, write_config, Coord, Sluice, TestResult};

async fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args)
        .env_remove("SRC_PASSWORD")
        .env_remove("SLUICE_LOG");
    cmd.envs(env.iter().copied());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("sluice answered within 60 s")
        .expect("sluice runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No debug dump of a Rust error value in `text`.
fn assert_readable(what: &str, text: &str) {
    for dump in [
        "tonic::",
        "ConnectError(",
        "Os {",
        "Transport,",
        "Some(",
        "None)",
    ] {
        assert!(!text.contains(dump), "{what} prints `{dump}`:\n{text}");
    }
}

#[tokio::test]
async fn check_tells_access_denied_from_unreachable_and_says_which_url_to_write() -> TestResult {
    let source = MariaDb::source().await?;
    let wrong = format!(
        "mysql://{}:not-the-password@127.0.0.1:{}",
        sluice_testkit::REPL_USER,
        source.port()
    );
    let out = sluice(&["check", "--source", &wrong], &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let line = all
        .lines()
        .find(|l| l.starts_with("source"))
        .unwrap_or_default();
    assert!(line.contains("FAIL  access denied: "), "{all}");
    assert!(
        line.contains(&format!(
            "Access denied for user '{}'@'127.0.0.1' (using password: YES)",
            sluice_testkit::REPL_USER
        )),
        "the server's own words are kept: {all}"
    );
    assert!(
        !line.contains("unreachable") && !all.contains("not-the-password"),
        "{all}"
    );

    // Nothing listening: unreachable.
    let out = sluice(&["check", "--target", "mysql://root@127.0.0.1:1"], &[]).await;
    assert!(text(&out).contains("FAIL  unreachable: "), "{}", text(&out));

    // Not a URL: what to write instead.
    let out = sluice(&["check", "--target", "127.0.0.1:13307"], &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        all.contains("--target `127.0.0.1:13307`: not a URL: write mysql://USER@127.0.0.1:13307"),
        "{all}"
    );
    assert!(!all.contains("relative URL without a base"), "{all}");
    let out = sluice(&["check", "--etcd", "127.0.0.1:2379"], &[]).await;
    assert!(
        text(&out).contains("not a URL: write http://127.0.0.1:2379"),
        "{}",
        text(&out)
    );
    Ok(())
}

/// A pipeline file whose source password comes from `${SRC_PASSWORD}`.
fn pipeline_file(
    dir: &Path,
    source: &MariaDb,
    target: &MariaDb,
    coordination: &str,
) -> std::path::PathBuf {
    let path = dir.join("p.yaml");
    std::fs::write(
        &path,
        format!(
            "name: msgs\n\
             source: {{ url: \"mysql://{user}:${{SRC_PASSWORD}}@127.0.0.1:{src}\", server_id: {sid} }}\n\
             target: {{ url: \"{tgt}\" }}\n\
             {coordination}\n",
            user = sluice_testkit::REPL_USER,
            src = source.port(),
            sid = server_id(),
            tgt = target.url(),
        ),
    )
    .expect("write");
    path
}

#[tokio::test]
async fn etcd_down_is_one_readable_line_in_check_status_and_positions() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let port = sluice_testkit::free_port();
    let config = pipeline_file(
        dir.path(),
        &source,
        &target,
        &format!("coordination: {{ etcd: {{ endpoints: [\"http://127.0.0.1:{port}\"] }} }}"),
    );
    let config = config.display().to_string();
    let env = [("SRC_PASSWORD", sluice_testkit::REPL_PASSWORD)];
    for args in [
        &["status", "--config", &config][..],
        &["positions", "--config", &config],
    ] {
        let out = sluice(args, &env).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert_readable(args[0], &all);
        assert_eq!(all.trim().lines().count(), 1, "one line: {all}");
        assert!(
            all.contains(&format!(
                "cannot read the pipeline's state from etcd at http://127.0.0.1:{port} (is etcd running there?"
            )) && all.contains("Connection refused"),
            "{all}"
        );
    }
    let out = sluice(&["check", "--config", &config], &env).await;
    let all = text(&out);
    assert_readable("check", &all);
    let etcd = all
        .lines()
        .find(|l| l.starts_with("etcd"))
        .unwrap_or_default();
    assert!(
        etcd.contains("FAIL  unreachable: ") && etcd.contains("Connection refused"),
        "{all}"
    );
    Ok(())
}

/// Issue 13 item 3: `status`, `positions`, `migrate` and `validate` need no
/// source password; `check` checks the servers it can and names the
/// variable for the one it cannot.
#[tokio::test]
async fn commands_need_only_the_variables_of_the_sections_they_use() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let config = pipeline_file(
        dir.path(),
        &source,
        &target,
        &format!(
            "coordination: {{ local: {{ dir: \"{}\" }} }}",
            state.display()
        ),
    );
    let config = config.display().to_string();
    for args in [
        &["migrate", "--config", &config][..],
        &["status", "--config", &config],
        &["positions", "--config", &config],
        &["validate", &config],
    ] {
        let out = sluice(args, &[]).await;
        assert!(
            out.status.success(),
            "`sluice {}` without SRC_PASSWORD:\n{}",
            args.join(" "),
            text(&out)
        );
    }
    let out = sluice(&["check", "--config", &config], &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let line = |role: &str| {
        all.lines()
            .find(|l| l.starts_with(role))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("source").contains("FAIL  not checked: ")
            && line("source").contains("source.url: undefined variable `SRC_PASSWORD`"),
        "{all}"
    );
    assert!(line("target").contains(" ok "), "{all}");
    // `run` needs it, and says where it is used.
    let out = sluice(&["run", "--config", &config], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("p.yaml:2:"), "{}", text(&out));
    Ok(())
}

/// Log lines of a whole run (start, progress, stop) with nothing known yet
/// and then something: values absent are left out, never `None`/`Some(..)`.
#[tokio::test]
async fn log_lines_have_no_rust_option_debug() -> TestResult {
    let (source, target, etcd) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), Etcd::start())?;
    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await?;
    let dir = tempfile::tempdir()?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "logs",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        "batch: { max_delay: 5ms }\n",
    );
    // A standby that stops before it ever led, and an active node.
    let mut node = Sluice::start_node(&config, "node-a", Some(server_id()));
    crate::ha::wait_leader(&etcd, "logs", Some("node-a"), Duration::from_secs(30)).await;
    let mut standby = Sluice::start_node(&config, "node-b", Some(server_id()));
    crate::ha::marker_latency(&source, &target, 1, Duration::from_secs(30), &[&node]).await;
    // Two progress lines (every 2 s here) after the marker.
    node.wait_log("two progress lines", Duration::from_secs(20), |log| {
        (log.matches(" progress ").count() >= 2).then_some(())
    })
    .await;
    for n in [&mut standby, &mut node] {
        assert!(
            n.terminate(Duration::from_secs(30)).await.success(),
            "{}",
            n.log_tail()
        );
    }
    for (name, log) in [("node-a", node.log_text()), ("node-b", standby.log_text())] {
        for line in log.lines() {
            assert!(
                !line.contains("Some(") && !line.contains("=None"),
                "{name} logged a Rust Option:\n{line}"
            );
        }
        assert!(log.contains("INFO sluice::run: stopped"), "{name}:\n{log}");
    }
    assert!(node.log_text().contains("pipeline starting"));
    Ok(())
}
