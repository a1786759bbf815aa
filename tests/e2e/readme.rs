//! The README's commands run as written: every command of its quick start
//! (both `sh` blocks, after the block's `export`s) and every row of its
//! command-line table, against the quick start's own servers and HA pair.
//! A renamed flag, a changed default or an example that stopped working
//! fails here, not for a reader.
//!
//! What the test changes, and only that: the quick start's ports become
//! private ones (`13306`, `13307`, `23790`, `9090`, `9091` in a command), the
//! release binary `./target/release/sluice` is the one cargo built for the
//! tests, and `PID` is the active node's pid. `cargo test --workspace
//! --locked` is the command running this test: `.ci/run` runs it (and checks
//! the README still says it).
//!
//! The command-line table's synopses are expanded: once with no optional
//! part, and once with every optional part (for each alternative of a `|`
//! group); each placeholder (`FILE`, `N`, `URL`, …) gets a value from the
//! flag before it. Long-running commands (`run`, `binlog tail`) are started,
//! checked to work, and stopped with SIGINT, which must exit 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sluice_testkit::free_port;

use crate::quickstart::{ctrl_c, output_text, read, repo, wait_for_line, Local};

/// The text of `## heading` up to the next `## ` heading.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no `## {heading}` section"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The lines of every ```sh block of `text` (blank and comment lines left
/// out; a trailing `# comment` kept, for [`comment_of`]).
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("closed code block");
        blocks.push(
            body[..end]
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        );
        rest = &body[end + 3..];
    }
    blocks
}

/// A line's trailing `# comment` (after whitespace, outside quotes).
fn comment_of(line: &str) -> &str {
    split_comment(line).1
}

fn split_comment(line: &str) -> (&str, &str) {
    let mut quote: Option<char> = None;
    let bytes: Vec<char> = line.chars().collect();
    let mut offset = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && i > 0 && bytes[i - 1].is_whitespace() => {
                return (line[..offset].trim_end(), line[offset + 1..].trim());
            }
            None => {}
        }
        offset += c.len_utf8();
    }
    (line, "")
}

/// The first-column code span of every `| `sluice …` |` row of the command
/// table, with `\|` unescaped.
fn table_synopses(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `sluice "))
        .map(|rest| {
            let end = rest
                .find("` |")
                .expect("closing backtick of the first column");
            format!("sluice {}", &rest[..end]).replace("\\|", "|")
        })
        .collect()
}

/// One part of a synopsis: a word, or a `[…]`/`(…)` group of alternatives.
enum Part {
    Word(String),
    Group {
        optional: bool,
        alternatives: Vec<Vec<String>>,
    },
}

fn parse_synopsis(synopsis: &str) -> Vec<Part> {
    let spaced = synopsis
        .replace('[', " [ ")
        .replace(']', " ] ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let mut tokens = spaced.split_whitespace();
    let mut parts = Vec::new();
    while let Some(token) = tokens.next() {
        let close = match token {
            "[" => "]",
            "(" => ")",
            word => {
                parts.push(Part::Word(word.to_string()));
                continue;
            }
        };
        let mut alternatives = vec![Vec::new()];
        for inner in tokens.by_ref() {
            match inner {
                t if t == close => break,
                "|" => alternatives.push(Vec::new()),
                "[" | "(" => panic!("nested groups in `{synopsis}`"),
                word => alternatives.last_mut().expect("one").push(word.to_string()),
            }
        }
        // A value written as `a|b|c` inside a group (`[--scope a|b|c]`)
        // gives one alternative per value.
        let alternatives = alternatives
            .into_iter()
            .flat_map(|alt| match alt.iter().position(|w| w.contains('|')) {
                None => vec![alt],
                Some(i) => alt[i]
                    .split('|')
                    .map(|value| {
                        let mut one = alt.clone();
                        one[i] = value.to_string();
                        one
                    })
                    .collect(),
            })
            .collect();
        parts.push(Part::Group {
            optional: close == "]",
            alternatives,
        });
    }
    parts
}

/// The minimal expansion, then every optional part with each alternative.
fn expansions(synopsis: &str) -> Vec<Vec<String>> {
    let parts = parse_synopsis(synopsis);
    let widest = parts
        .iter()
        .map(|p| match p {
            Part::Group { alternatives, .. } => alternatives.len(),
            Part::Word(_) => 1,
        })
        .max()
        .unwrap_or(1);
    let build = |with_optional: bool, k: usize| -> Vec<String> {
        let mut words = Vec::new();
        for part in &parts {
            match part {
                Part::Word(w) => words.push(w.clone()),
                Part::Group {
                    optional,
                    alternatives,
                } => {
                    if *optional && !with_optional {
                        continue;
                    }
                    words.extend(alternatives[k.min(alternatives.len() - 1)].iter().cloned());
                }
            }
        }
        words
    };
    let mut out = vec![build(false, 0)];
    for k in 0..widest {
        let full = build(true, k);
        if !out.contains(&full) {
            out.push(full);
        }
    }
    out
}

/// What the placeholders stand for.
#[derive(Clone)]
struct Values {
    bin: String,
    pipeline: String,
    source_url: String,
    target_url: String,
    etcd_url: String,
    binlog_path: String,
    binlog_file: String,
    binlog_pos: String,
    gtid: String,
    row_offset: String,
    /// A file of SQL statements (`errors replace --sql`).
    sql_file: String,
    run_server_id: u32,
    tail_server_id: u32,
}

impl Values {
    /// `words` with `sluice` → the binary and each placeholder → its value.
    fn fill(&self, words: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let command: Vec<&str> = words
            .iter()
            .skip(1)
            .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .map(String::as_str)
            .collect();
        for (i, word) in words.iter().enumerate() {
            if i == 0 {
                assert_eq!(word, "sluice");
                out.push(self.bin.clone());
                continue;
            }
            let placeholder = word.trim_end_matches("...");
            if placeholder.is_empty() || !placeholder.chars().all(|c| c.is_ascii_uppercase()) {
                out.push(word.clone());
                continue;
            }
            let flag = words[i - 1].as_str();
            let value = match (flag, placeholder) {
                ("--config", "FILE") => self.pipeline.clone(),
                ("--node-id", "ID") => "readme-node".into(),
                ("--server-id", "N") if command[0] == "run" => self.run_server_id.to_string(),
                ("--server-id", "N") => self.tail_server_id.to_string(),
                ("--drain-timeout", "S") => "5".into(),
                ("--timeout", "S") => "60".into(),
                ("--progress-every", "S") => "1".into(),
                ("--start-offset", "N") => self.row_offset.clone(),
                ("--source", "URL") => self.source_url.clone(),
                ("--target", "URL") => self.target_url.clone(),
                ("--etcd", "URL") => self.etcd_url.clone(),
                ("--gtid", "G") => self.gtid.clone(),
                ("--file", "F") => self.binlog_file.clone(),
                ("--pos", "P") => self.binlog_pos.clone(),
                ("--sql", "SQLFILE") => self.sql_file.clone(),
                ("--to", "NODE") => "node-b".into(),
                ("--table", "TABLE") => "shop.orders".into(),
                ("--rate", "N") => "100000".into(),
                ("--chunk-rows", "N") => "500".into(),
                ("--rechecks", "N") => "2".into(),
                ("--wait", "S") => "60".into(),
                ("--to", "URL") => self.source_url.clone(),
                (_, "FILE") if command == ["binlog", "decode"] => self.binlog_path.clone(),
                (_, "FILE") if command == ["validate"] => self.pipeline.clone(),
                _ => panic!(
                    "README: no value for `{word}` after `{flag}` in `{}` (teach tests/e2e/readme.rs)",
                    words.join(" ")
                ),
            };
            out.push(value);
        }
        out
    }
}

/// The quick start's ports → the private ones, the release binary → the
/// tests' one, `PID` → `pid`.
fn localise(line: &str, local: &Local, pid: Option<u32>) -> String {
    let mut line = line.replace("./target/release/sluice", env!("CARGO_BIN_EXE_sluice"));
    for (port, private) in [
        ("13306", local.source_port),
        ("13307", local.target_port),
        ("23790", local.etcd_port),
        ("9090", local.admin_a),
        ("9091", local.admin_b),
    ] {
        line = line.replace(port, &private.to_string());
    }
    if let Some(pid) = pid {
        line = line
            .split(' ')
            .map(|w| {
                if w == "PID" {
                    pid.to_string()
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    line
}

/// `line` through bash from the repository root, with `env`.
fn shell(line: &str, local: &Local, env: &BTreeMap<String, String>) -> Output {
    local
        .command("bash")
        .args(["-c", line])
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

fn must_succeed(what: &str, out: &Output) -> String {
    let text = output_text(out);
    assert!(
        out.status.success(),
        "`{what}` failed ({}):\n{text}",
        out.status
    );
    println!("$ {what}\n{text}");
    text
}

/// `node-a (pid N, …)` in the quick start's output.
fn pid_of(log: &str, node: &str) -> u32 {
    let at = log
        .find(&format!("{node} (pid "))
        .unwrap_or_else(|| panic!("no pid of {node} in:\n{log}"));
    let digits: String = log[at + node.len() + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a pid")
}

fn mariadb(local: &Local, port: u16, sql: &str) -> String {
    let out = local
        .command("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-uroot",
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("-P{port}"))
        .args(["-e", sql])
        .output()
        .expect("mariadb client runs");
    must_succeed(sql, &out).trim().to_string()
}

/// A long-running command: started, `ready` until it has shown it works,
/// then SIGINT; it must exit 0.
fn run_until(
    words: &[String],
    env: &BTreeMap<String, String>,
    local: &Local,
    dir: &Path,
    ready: &dyn Fn(&Path, &Path) -> bool,
) {
    use std::os::unix::process::CommandExt as _;
    let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
    let (out_path, err_path) = (dir.join(format!("{n}.out")), dir.join(format!("{n}.err")));
    let mut child = local
        .command(&words[0])
        .args(&words[1..])
        .envs(env)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("out"))
        .stderr(std::fs::File::create(&err_path).expect("err"))
        .spawn()
        .expect("spawn");
    let what = words[1..].join(" ");
    sluice_testkit::wait_until(
        &format!("`{what}` to get going"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            if ready(&out_path, &err_path) {
                return Some(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "`{what}` exited ({status}) early:\n{}{}",
                    read(&out_path),
                    read(&err_path)
                );
            }
            None
        },
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}{}", read(&out_path), read(&err_path)));
    let status = ctrl_c(&mut child, Duration::from_secs(30));
    let text = format!("{}{}", read(&out_path), read(&err_path));
    assert!(status.success(), "`{what}` after SIGINT: {status}\n{text}");
    assert!(!text.contains(" ERROR "), "`{what}`:\n{text}");
    println!(
        "$ {what}   (stopped with SIGINT, exit 0)\n{}",
        text.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn quick_start_and_command_line_run_as_written() {
    let readme = read(&repo().join("README.md"));
    let quick = section(&readme, "Quick start");
    let blocks = sh_blocks(quick);
    assert!(
        blocks.len() >= 2,
        "the quick start has its two sh blocks: {blocks:?}"
    );
    let local = Local::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env: BTreeMap<String, String> = BTreeMap::new();

    // Block 1: command 1 runs here; command 2 is what runs this test.
    let ci = read(&repo().join(".ci/run"));
    let log = dir.path().join("quickstart.log");
    let mut quickstart = None;
    for line in &blocks[0] {
        let (command, _) = split_comment(line);
        if command == "cargo test --workspace --locked" {
            assert!(
                ci.contains(&format!("TEST_CMD='{command}'")),
                ".ci/run runs `{command}`"
            );
            continue;
        }
        assert!(
            quickstart.is_none(),
            "one long-running command in block 1: {line}"
        );
        use std::os::unix::process::CommandExt as _;
        let file = std::fs::File::create(&log).expect("log");
        let child = local
            .command("bash")
            .args(["-c", &localise(command, &local, None)])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("run the quick start");
        quickstart = Some(child);
    }
    let mut quickstart = quickstart.expect("the quick start's command 1");
    wait_for_line(
        &mut quickstart,
        &log,
        "both hold 20 rows",
        Duration::from_secs(180),
    );

    // Block 2, up to the Ctrl-C in the first terminal.
    let mut after_ctrl_c = Vec::new();
    let mut stopped = false;
    for line in &blocks[1] {
        let (command, comment) = split_comment(line);
        if comment.starts_with("after Ctrl-C") || stopped {
            stopped = true;
            after_ctrl_c.push(command.to_string());
            continue;
        }
        if let Some(assignment) = command.strip_prefix("export ") {
            let (k, v) = assignment.split_once('=').expect("export K=V");
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        if command.split(' ').any(|w| w == "PID") {
            let status: serde_json::Value = serde_json::from_str(&must_succeed(
                "status --json",
                &shell(
                    &format!(
                        "{} status --json --config pipeline.yaml",
                        env!("CARGO_BIN_EXE_sluice")
                    ),
                    &local,
                    &env,
                ),
            ))
            .expect("status JSON");
            let active = status["active"]
                .as_str()
                .expect("an active node")
                .to_string();
            let other = if active == "node-a" {
                "node-b"
            } else {
                "node-a"
            };
            let line = localise(command, &local, Some(pid_of(&read(&log), &active)));
            must_succeed(&line, &shell(&line, &local, &env));
            sluice_testkit::wait_until(
                &format!("{other} to take over after `{line}`"),
                Duration::from_secs(15),
                Duration::from_millis(100),
                || {
                    read(&log)
                        .lines()
                        .any(|l| {
                            l.starts_with(&format!("[{other}]")) && l.contains("elected leader")
                        })
                        .then_some(())
                },
            )
            .unwrap_or_else(|e| panic!("{e}:\n{}", read(&log)));
            continue;
        }
        let line = localise(command, &local, None);
        must_succeed(&line, &shell(&line, &local, &env));
    }

    // The local servers' synopsis (`start` is idempotent; `stop` is the
    // quick start's last line).
    let servers = section(&readme, "Local servers");
    let synopsis = servers
        .split('`')
        .find(|s| s.starts_with("deploy/local/servers.sh "))
        .expect("servers.sh synopsis");
    let (script, verbs) = synopsis.split_once(' ').expect("script and verbs");
    for verb in verbs.split('|').filter(|v| *v != "stop") {
        let line = format!("{script} {verb}");
        must_succeed(&line, &shell(&line, &local, &env));
    }

    // The command-line table, with the pair (one node after `kill`) running.
    let source = local.source_port;
    mariadb(&local, source, "FLUSH BINARY LOGS");
    let (file, pos) = {
        let status = mariadb(&local, source, "SHOW MASTER STATUS");
        let mut cols = status.split('\t');
        (
            cols.next().expect("file").to_string(),
            cols.next().expect("pos").to_string(),
        )
    };
    let first_binlog = mariadb(&local, source, "SHOW BINARY LOGS")
        .lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .expect("a binlog")
        .to_string();
    let binlog_path = local.state.path().join("source/data").join(&first_binlog);
    let decoded = must_succeed(
        "decode",
        &Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["binlog", "decode"])
            .arg(&binlog_path)
            .output()
            .expect("decode"),
    );
    let row_offset = decoded
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["kind"] == "insert")
        .nth(1)
        .and_then(|l| {
            l["pos"]
                .as_str()
                .and_then(|p| p.rsplit(':').next())
                .map(str::to_string)
        })
        .expect("an insert in the first binlog");
    let values = Values {
        bin: env!("CARGO_BIN_EXE_sluice").to_string(),
        pipeline: "pipeline.yaml".into(),
        source_url: format!(
            "mysql://repl:{}@127.0.0.1:{source}",
            env.get("SRC_PASSWORD").cloned().unwrap_or_default()
        ),
        target_url: format!("mysql://root@127.0.0.1:{}", local.target_port),
        etcd_url: format!("http://127.0.0.1:{}", local.etcd_port),
        binlog_path: binlog_path.display().to_string(),
        binlog_file: file,
        binlog_pos: pos,
        gtid: mariadb(&local, source, "SELECT @@gtid_binlog_pos"),
        row_offset,
        sql_file: {
            let path = dir.path().join("replace.sql");
            std::fs::write(&path, "SELECT 1;\n").expect("write replace.sql");
            path.display().to_string()
        },
        run_server_id: 4003,
        tail_server_id: 4005,
    };
    let mut later = Vec::new();
    let synopses = table_synopses(section(&readme, "Command line"));
    assert!(synopses.len() >= 9, "the command table: {synopses:?}");
    let mut tail_id = values.tail_server_id;
    for synopsis in &synopses {
        for words in expansions(synopsis) {
            let sub = words.get(2).map(String::as_str);
            let mut here = values.clone();
            if words[1] == "binlog" && sub == Some("tail") {
                // A replica server id of its own for each run.
                here.tail_server_id = tail_id;
                tail_id += 1;
            }
            let filled = here.fill(&words);
            let what = filled[1..].join(" ");
            match (words[1].as_str(), sub) {
                ("positions", Some("set")) => later.push(filled),
                ("run", _) => {
                    let mut run_env = env.clone();
                    run_env.insert("SLUICE_ADMIN_PORT".into(), free_port().to_string());
                    run_until(&filled, &run_env, &local, dir.path(), &|_, err| {
                        read(err).contains("registered as standby")
                    });
                }
                ("binlog", Some("tail")) => {
                    let marker = format!("tail-{}", here.tail_server_id);
                    let written = std::cell::Cell::new(false);
                    run_until(&filled, &env, &local, dir.path(), &|out, err| {
                        if !written.get() && read(err).contains("binlog dump started") {
                            mariadb(
                                &local,
                                source,
                                &format!("INSERT INTO shop.orders (customer, amount) VALUES ('{marker}', 1.00)"),
                            );
                            written.set(true);
                        }
                        read(out).contains(&marker)
                    });
                }
                // They act on a state the running quick start may not be in
                // (a halted or paused pipeline, another source URL, a
                // standby to hand over to, a table copy still running):
                // as written, they do it or
                // refuse with one message saying why.
                ("errors", Some("skip" | "replace" | "retry"))
                | ("source", Some("switch"))
                | ("pause" | "resume" | "handover" | "snapshot", _) => {
                    let out = local
                        .command(&filled[0])
                        .args(&filled[1..])
                        .envs(&env)
                        .output()
                        .expect("runs");
                    let text = output_text(&out);
                    if !out.status.success() {
                        let err = String::from_utf8_lossy(&out.stderr);
                        let json: Option<serde_json::Value> =
                            serde_json::from_slice(&out.stdout).ok();
                        assert_eq!(out.status.code(), Some(1), "`{what}`: {text}");
                        let said = match &json {
                            // `--json`: the refusal is the document's message.
                            Some(doc) => doc["message"].as_str().is_some_and(|m| !m.is_empty()),
                            None => err.trim().lines().count() == 1,
                        };
                        assert!(said, "`{what}`: one message saying why: {text}");
                    }
                    println!("$ {what}\n{text}");
                }
                ("check", _) if words.len() == 2 => {
                    // No server named: a usage error, not a check.
                    let out = Command::new(&filled[0])
                        .args(&filled[1..])
                        .output()
                        .expect("runs");
                    let text = output_text(&out);
                    assert_eq!(out.status.code(), Some(1), "{text}");
                    assert!(text.contains("nothing to check"), "{text}");
                }
                _ => {
                    let out = local
                        .command(&filled[0])
                        .args(&filled[1..])
                        .envs(&env)
                        .output()
                        .expect("runs");
                    must_succeed(&what, &out);
                }
            }
        }
    }

    // The rest of block 2: Ctrl-C in the first terminal, then its lines.
    let status = ctrl_c(&mut quickstart, Duration::from_secs(60));
    assert!(
        status.success(),
        "the quick start after Ctrl-C: {status}\n{}",
        read(&log)
    );
    // `positions set` wants every node gone: after graceful stops (the
    // active node resigned, the standbys revoked their leases) they are,
    // at once.
    for filled in later {
        let out = local
            .command(&filled[0])
            .args(&filled[1..])
            .envs(&env)
            .output()
            .expect("runs");
        must_succeed(&filled[1..].join(" "), &out);
    }
    assert!(
        !after_ctrl_c.is_empty(),
        "block 2 ends with the servers' stop"
    );
    for command in after_ctrl_c {
        let line = localise(&command, &local, None);
        must_succeed(&line, &shell(&line, &local, &env));
    }
    let status = local.servers("status");
    assert_eq!(status.matches(": stopped").count(), 3, "{status}");
}

#[test]
fn synopses_expand_to_their_variants() {
    let got =
        expansions("sluice positions set --config FILE (--gtid G | --file F --pos P) [--force]");
    let joined: Vec<String> = got.iter().map(|w| w.join(" ")).collect();
    assert_eq!(
        joined,
        [
            "sluice positions set --config FILE --gtid G",
            "sluice positions set --config FILE --gtid G --force",
            "sluice positions set --config FILE --file F --pos P --force",
        ]
    );
    let got = expansions("sluice errors skip --config FILE [--scope change|batch|transaction]");
    let joined: Vec<String> = got.iter().map(|w| w.join(" ")).collect();
    assert_eq!(
        joined,
        [
            "sluice errors skip --config FILE",
            "sluice errors skip --config FILE --scope change",
            "sluice errors skip --config FILE --scope batch",
            "sluice errors skip --config FILE --scope transaction",
        ]
    );
    assert_eq!(comment_of("curl -s x  # a # b"), "a # b");
    assert_eq!(comment_of("echo '# not' # yes"), "yes");
    assert_eq!(split_comment("kill PID").0, "kill PID");
}
