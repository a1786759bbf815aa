//! The deployment examples under `deploy/` (systemd, compose, Kubernetes)
//! stay true to the real binary and the real config schema.
//!
//! Nothing here starts a container or a cluster (no network): the files are
//! parsed and checked structurally, every `sluice` command line they contain
//! is checked against the built binary's own `--help`, and every pipeline
//! file they ship (including the one embedded in the ConfigMap) must pass
//! `sluice validate` with exactly the secrets the example provides — so a
//! renamed flag or config key breaks this test, not a deployment. What can
//! run on the test kit's real servers does: the guide's etcd user and role
//! commands (then a pipeline logs in as that user), and the compose init
//! scripts' SQL on MariaDB 10.11.
//!
//! YAML is read with `saphyr-parser` events (the parser the config crate
//! uses) into a small tree; anchors, aliases and `<<` merge keys (used by
//! compose.yaml) are resolved, duplicate keys and syntax errors fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use saphyr_parser::{Event, Parser};

fn repo() -> PathBuf {
    sluice_testkit::repo_root()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// A minimal YAML tree.

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Scalar(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a key path; panics naming the path when it is absent.
    fn at(&self, path: &[&str]) -> &Yaml {
        path.iter().fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("missing `{}`", path.join(".")))
        })
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Scalar(s) => s,
            other => panic!("expected a scalar, got {other:?}"),
        }
    }

    fn seq(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("expected a sequence, got {other:?}"),
        }
    }

    fn keys(&self) -> BTreeSet<&str> {
        match self {
            Yaml::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    /// A sequence of scalars, or one scalar (compose accepts both forms).
    fn strings(&self) -> Vec<String> {
        match self {
            Yaml::Scalar(s) => vec![s.clone()],
            Yaml::Seq(items) => items.iter().map(|i| i.str().to_string()).collect(),
            other => panic!("expected scalars, got {other:?}"),
        }
    }
}

struct TreeBuilder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Yaml>,
    origin: String,
}

impl<'a> TreeBuilder<'a> {
    fn next(&mut self) -> Event<'a> {
        match self.parser.next_event() {
            Some(Ok((event, _))) => event,
            Some(Err(e)) => panic!(
                "{}:{}:{}: YAML syntax error: {}",
                self.origin,
                e.marker().line(),
                e.marker().col() + 1,
                e.info()
            ),
            None => panic!("{}: unexpected end of YAML", self.origin),
        }
    }

    fn node(&mut self, event: Event<'a>) -> Yaml {
        let (node, anchor) = match event {
            Event::Scalar(value, _, anchor, _) => (Yaml::Scalar(value.into_owned()), anchor),
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned();
                return node.unwrap_or_else(|| panic!("{}: unknown alias", self.origin));
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event)),
                    }
                }
                (Yaml::Seq(items), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping(), anchor),
            other => panic!("{}: unexpected YAML event {other:?}", self.origin),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        node
    }

    /// A mapping; `<<` merge keys add the merged mappings' entries that the
    /// mapping does not set itself (explicit keys win, wherever they are).
    fn mapping(&mut self) -> Yaml {
        let mut own: Vec<(String, Yaml)> = Vec::new();
        let mut merged: Vec<(String, Yaml)> = Vec::new();
        loop {
            let key = match self.next() {
                Event::MappingEnd => break,
                event => match self.node(event) {
                    Yaml::Scalar(k) => k,
                    other => panic!("{}: non-scalar key {other:?}", self.origin),
                },
            };
            let event = self.next();
            let value = self.node(event);
            if key == "<<" {
                let sources = match value {
                    Yaml::Seq(items) => items,
                    single => vec![single],
                };
                for source in sources {
                    let Yaml::Map(entries) = source else {
                        panic!("{}: `<<` needs a mapping", self.origin);
                    };
                    for (k, v) in entries {
                        if !merged.iter().any(|(m, _)| *m == k) {
                            merged.push((k, v));
                        }
                    }
                }
                continue;
            }
            assert!(
                !own.iter().any(|(k, _)| *k == key),
                "{}: duplicate key `{key}`",
                self.origin
            );
            own.push((key, value));
        }
        for (k, v) in merged {
            if !own.iter().any(|(o, _)| *o == k) {
                own.push((k, v));
            }
        }
        Yaml::Map(own)
    }
}

/// Every document of a YAML stream (empty documents skipped).
fn yaml_docs(text: &str, origin: &str) -> Vec<Yaml> {
    let mut builder = TreeBuilder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        origin: origin.to_string(),
    };
    let mut docs = Vec::new();
    loop {
        match builder.next() {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return docs,
            Event::DocumentStart(_) => {
                let event = builder.next();
                let node = builder.node(event);
                if node != Yaml::Scalar(String::new()) {
                    docs.push(node);
                }
            }
            other => panic!("{origin}: unexpected YAML event {other:?}"),
        }
    }
}

fn yaml_file(path: &Path) -> Vec<Yaml> {
    yaml_docs(&read(path), &path.display().to_string())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// The real binary: its flags, and `validate`.

/// `sluice [SUB] --help`: every long flag it lists, and whether it takes a
/// value (`--flag <VALUE>`).
fn help_flags(sub: Option<&str>) -> BTreeMap<String, bool> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(sub).arg("--help");
    let out = cmd.output().expect("sluice runs");
    assert!(out.status.success(), "sluice {sub:?} --help failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags = BTreeMap::new();
    for (at, _) in text.match_indices("--") {
        let rest = &text[at + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let takes_value =
            rest[name.len()..].starts_with(" <") || rest[name.len()..].starts_with("=<");
        let entry = flags.entry(format!("--{name}")).or_insert(false);
        *entry |= takes_value;
    }
    flags
}

/// `sluice --help`'s subcommands.
fn subcommands() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--help")
        .output()
        .expect("sluice runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands = text
        .split_once("Commands:")
        .map(|(_, rest)| rest)
        .expect("`sluice --help` lists its commands");
    commands
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A parsed `sluice` command line (the arguments after the binary).
#[derive(Debug)]
struct SluiceArgs {
    subcommand: String,
    /// `--flag` → value (empty for switches), global and subcommand flags.
    flags: BTreeMap<String, String>,
}

/// Checks a `sluice` argument list against the binary's `--help`: global
/// flags (before the subcommand) must be listed by `sluice --help`, the
/// subcommand by its command list, and later flags by `sluice SUB --help`;
/// a flag that takes a value must have one.
fn check_args(origin: &str, args: &[String]) -> SluiceArgs {
    let global = help_flags(None);
    let mut subcommand: Option<String> = None;
    let mut sub_flags = BTreeMap::new();
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (format!("--{flag}"), None),
            };
            let known = if subcommand.is_some() {
                &sub_flags
            } else {
                &global
            };
            let Some(&takes_value) = known.get(&name) else {
                panic!(
                    "{origin}: `{name}` is not listed by `sluice {}--help` (known: {:?})",
                    subcommand
                        .as_deref()
                        .map_or(String::new(), |s| format!("{s} ")),
                    known.keys().collect::<Vec<_>>()
                );
            };
            let value = match (takes_value, inline) {
                (true, Some(v)) => v,
                (true, None) => {
                    let v = args
                        .get(i)
                        .unwrap_or_else(|| panic!("{origin}: `{name}` needs a value"));
                    i += 1;
                    v.clone()
                }
                (false, None) => String::new(),
                (false, Some(_)) => panic!("{origin}: `{name}` takes no value"),
            };
            flags.insert(name, value);
        } else if subcommand.is_none() {
            assert!(
                subcommands().contains(arg),
                "{origin}: `{arg}` is not a sluice subcommand"
            );
            sub_flags = help_flags(Some(arg));
            subcommand = Some(arg.clone());
        } else {
            panic!("{origin}: unexpected positional argument `{arg}`");
        }
    }
    SluiceArgs {
        subcommand: subcommand.unwrap_or_else(|| panic!("{origin}: no subcommand")),
        flags,
    }
}

/// Every scalar of a tree (keys excluded).
fn scalars(node: &Yaml) -> Vec<&str> {
    match node {
        Yaml::Scalar(s) => vec![s.as_str()],
        Yaml::Seq(items) => items.iter().flat_map(scalars).collect(),
        Yaml::Map(entries) => entries.iter().flat_map(|(_, v)| scalars(v)).collect(),
    }
}

/// The `${VAR}` names a pipeline's values use (`$${` is a literal,
/// `${VAR:-x}` has a default and needs nothing; comments don't count).
fn required_vars(pipeline: &Yaml) -> BTreeSet<String> {
    scalars(pipeline).into_iter().flat_map(vars_in).collect()
}

fn vars_in(text: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let body = &rest[at + 2..];
        let end = body.find('}').expect("closed ${");
        let inner = &body[..end];
        if !escaped && !inner.contains(":-") {
            vars.insert(inner.split(':').next().unwrap_or(inner).to_string());
        }
        rest = &body[end..];
    }
    vars
}

/// `sluice validate` on a pipeline text with exactly `env` as environment.
fn validate_pipeline(origin: &str, text: &str, env: &BTreeMap<String, String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, text).expect("write pipeline");
    // `validate` checks that certificate files exist. The examples name
    // them relative to the pipeline file (they live beside it once
    // installed); placeholders stand in for them here.
    let tree = yaml_docs(text, origin).remove(0);
    for file in tls_files(&tree) {
        assert!(
            Path::new(&file).is_relative(),
            "{origin}: `{file}`: name TLS files relative to the pipeline file"
        );
        let placeholder = dir.path().join(&file);
        if let Some(parent) = placeholder.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&placeholder, "placeholder\n").expect("write placeholder");
    }
    let missing: Vec<_> = required_vars(&tree)
        .into_iter()
        .filter(|v| !env.contains_key(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{origin}: the example provides no value for {missing:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["validate", "--config"])
        .arg(&path)
        .env_clear()
        .envs(env)
        .output()
        .expect("sluice runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "{origin}: `sluice validate` refused it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `ca`/`cert`/`key` paths of every `tls` block in a pipeline.
fn tls_files(node: &Yaml) -> Vec<String> {
    let mut files = Vec::new();
    match node {
        Yaml::Map(entries) => {
            for (key, value) in entries {
                if key == "tls" {
                    for file in ["ca", "cert", "key"] {
                        files.extend(value.get(file).map(|f| f.str().to_string()));
                    }
                } else {
                    files.extend(tls_files(value));
                }
            }
        }
        Yaml::Seq(items) => files.extend(items.iter().flat_map(tls_files)),
        Yaml::Scalar(_) => {}
    }
    files
}

/// The port of a pipeline's `admin.listen`.
fn admin_port(pipeline: &str, origin: &str) -> u16 {
    let docs = yaml_docs(pipeline, origin);
    let listen = docs[0].at(&["admin", "listen"]).str().to_string();
    let port = listen.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
    port.parse()
        .unwrap_or_else(|_| panic!("{origin}: admin.listen `{listen}` has no port"))
}

fn seconds(value: &str) -> u64 {
    let digits = value.trim_end_matches('s');
    digits
        .parse()
        .unwrap_or_else(|_| panic!("`{value}` is not a number of seconds"))
}

/// `KEY=value` lines (comments and blanks skipped), as systemd environment
/// files and compose `.env` files are written here.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not KEY=value: {l}", path.display()));
            (k.to_string(), v.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// systemd

/// A unit file: section → key → values (keys may repeat).
fn unit_file(path: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in read(path).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "{}:{}: keep directives on one line",
            path.display(),
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("{}:{}: outside a section", path.display(), n + 1));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not Key=Value", path.display(), n + 1));
        sections
            .entry(section)
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    sections
}

#[test]
fn systemd_unit_runs_the_real_binary_with_known_flags() {
    let dir = repo().join("deploy/systemd");
    let unit_path = dir.join("sluice@.service");
    let unit = unit_file(&unit_path);
    let origin = unit_path.display().to_string();
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("{origin}: [Service] has no {key}="));
        assert_eq!(values.len(), 1, "{origin}: {key}= given more than once");
        &values[0]
    };

    // The instance name is the pipeline: its file and env file ship here.
    let instance = |s: &str| s.replace("%i", "shop").replace("%H", "node1");
    let exec = instance(one("ExecStart"));
    assert!(
        !exec.contains(['"', '\'']),
        "{origin}: keep ExecStart unquoted (this test splits on spaces)"
    );
    let words: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert_eq!(
        words[0], "/usr/local/bin/sluice",
        "{origin}: ExecStart binary"
    );
    let args = check_args(&origin, &words[1..]);
    assert_eq!(args.subcommand, "run");
    assert_eq!(
        args.flags.get("--node-id").map(String::as_str),
        Some("node1")
    );
    let config = &args.flags["--config"];
    let config_name = config
        .strip_prefix("/etc/sluice/")
        .unwrap_or_else(|| panic!("{origin}: --config {config} outside /etc/sluice"));
    let env_path = instance(one("EnvironmentFile"));
    let env_name = env_path
        .strip_prefix("/etc/sluice/")
        .unwrap_or_else(|| panic!("{origin}: EnvironmentFile {env_path} outside /etc/sluice"));

    // Restart after crashes, never after exit 1 (a definite error).
    assert_eq!(one("Restart"), "on-failure");
    assert!(
        one("RestartPreventExitStatus")
            .split_whitespace()
            .any(|s| s == "1"),
        "{origin}: exit 1 must not be restarted"
    );
    // A clean stop drains first: systemd waits longer than the drain.
    assert_eq!(one("KillSignal"), "SIGTERM");
    let drain: u64 = args
        .flags
        .get("--drain-timeout")
        .map_or(10, |d| d.parse().expect("--drain-timeout is seconds"));
    assert!(
        seconds(one("TimeoutStopSec")) > drain,
        "{origin}: TimeoutStopSec must exceed --drain-timeout {drain}"
    );
    // A dedicated user and the hardening the README promises.
    assert!(!["root", "0"].contains(&one("User")), "{origin}: User=");
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "sluice"),
    ] {
        assert_eq!(one(key), want, "{origin}: {key}=");
    }
    assert_eq!(
        unit["Install"]["WantedBy"],
        ["multi-user.target"],
        "{origin}: [Install]"
    );

    // The example environment file holds every secret the pipeline uses
    // and a server id for this node; with exactly those, the example
    // pipeline validates.
    let env = env_file(&dir.join(format!("{env_name}.example")));
    let server_id: u32 = env
        .get("SLUICE_SERVER_ID")
        .and_then(|s| s.parse().ok())
        .expect("SLUICE_SERVER_ID in the example env file");
    assert!(server_id > 0);
    let pipeline_path = dir.join(config_name);
    validate_pipeline(
        &pipeline_path.display().to_string(),
        &read(&pipeline_path),
        &env,
    );
}

// ---------------------------------------------------------------------------
// docker compose

/// Replaces compose's `${VAR}`, `${VAR:?msg}`, `${VAR:-default}` from `env`
/// (`$$` is a literal `$`).
fn compose_interpolate(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(tail) = tail.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = tail.strip_prefix('{') {
            let end = body.find('}').expect("closed ${");
            let inner = &body[..end];
            let name = inner.split([':', '-', '?']).next().unwrap_or(inner);
            let value = env.get(name).cloned().unwrap_or_else(|| {
                inner
                    .split_once(":-")
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| panic!("compose.yaml: ${{{name}}} is not in example.env"))
            });
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn compose_has_source_target_etcd_and_the_pair() {
    let dir = repo().join("deploy/compose");
    let env = env_file(&dir.join("example.env"));
    let files = yaml_files(&dir);
    for file in &files {
        assert!(!yaml_file(file).is_empty(), "{}: empty", file.display());
    }
    let compose_path = dir.join("compose.yaml");
    let origin = compose_path.display().to_string();
    let text = compose_interpolate(&read(&compose_path), &env);
    let docs = yaml_docs(&text, &origin);
    assert_eq!(docs.len(), 1, "{origin}: one document");
    let services = docs[0].at(&["services"]);
    assert_eq!(
        services.keys(),
        BTreeSet::from(["source", "target", "etcd", "sluice-a", "sluice-b"]),
        "{origin}: services"
    );
    for name in services.keys() {
        let test = services.at(&[name, "healthcheck", "test"]).strings();
        assert!(!test.is_empty(), "{origin}: {name} has a healthcheck");
    }

    // The source is what sluice requires and its live tests run against:
    // MariaDB 10.11, ROW binlog with full images and metadata, strict GTIDs,
    // its own server id.
    let source = services.at(&["source"]);
    assert!(source.at(&["image"]).str().starts_with("mariadb:10.11"));
    assert!(services
        .at(&["target", "image"])
        .str()
        .starts_with("mariadb:10.11"));
    let flags = source.at(&["command"]).strings();
    for want in [
        "--log-bin=mysql-bin",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--gtid-strict-mode=ON",
    ] {
        assert!(
            flags.iter().any(|f| f == want),
            "{origin}: source lacks {want}"
        );
    }
    let source_id = flags
        .iter()
        .find_map(|f| f.strip_prefix("--server-id="))
        .expect("source --server-id");
    for name in ["source", "target"] {
        for volume in services.at(&[name, "volumes"]).strings() {
            if let Some(script) = volume.strip_prefix("./") {
                let script = script.split(':').next().unwrap_or(script);
                assert!(
                    dir.join(script).is_file(),
                    "{origin}: {name} mounts {script}"
                );
            }
        }
    }

    // The pair: built from the Dockerfile (with target/ ignored), distinct
    // node and server ids, a command the binary accepts, a healthcheck on the
    // admin port, a stop grace period above the drain timeout.
    let mut node_ids = BTreeSet::new();
    let mut server_ids = BTreeSet::from([source_id.to_string()]);
    for name in ["sluice-a", "sluice-b"] {
        let node = services.at(&[name]);
        let context = dir.join(node.at(&["build", "context"]).str());
        let dockerfile = context.join(node.at(&["build", "dockerfile"]).str());
        let docker = read(&dockerfile);
        assert!(
            docker.contains(" AS build") && docker.contains("cargo build --release"),
            "{}: a multi-stage cargo build",
            dockerfile.display()
        );
        assert!(docker.contains("ENTRYPOINT [\"/usr/local/bin/sluice\"]"));
        let ignore = read(&context.join(".dockerignore"));
        assert!(
            ignore.lines().any(|l| l.trim() == "target/"),
            ".dockerignore keeps target/ out of the build context"
        );

        let origin = format!("{origin}: {name}");
        let args = check_args(&origin, &node.at(&["command"]).strings());
        assert_eq!(args.subcommand, "run");
        node_ids.insert(args.flags["--node-id"].clone());
        let server_id = node.at(&["environment", "SLUICE_SERVER_ID"]).str();
        server_ids.insert(server_id.to_string());

        let config = &args.flags["--config"];
        let mount = node
            .at(&["volumes"])
            .strings()
            .into_iter()
            .find(|v| v.split(':').nth(1) == Some(config.as_str()))
            .unwrap_or_else(|| panic!("{origin}: nothing mounted at {config}"));
        let pipeline_path = dir.join(mount.split(':').next().unwrap_or_default());
        let pipeline = read(&pipeline_path);
        let node_env: BTreeMap<String, String> = match node.at(&["environment"]) {
            Yaml::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.str().to_string()))
                .collect(),
            other => panic!("{origin}: environment {other:?}"),
        };
        validate_pipeline(
            &format!("{} (as {name})", pipeline_path.display()),
            &pipeline,
            &node_env,
        );

        let port = admin_port(&pipeline, &pipeline_path.display().to_string());
        let check = node.at(&["healthcheck", "test"]).strings().join(" ");
        assert!(
            check.contains(&format!("127.0.0.1:{port}/readyz"))
                || check.contains(&format!("127.0.0.1:{port}/healthz")),
            "{origin}: healthcheck `{check}` on the admin port {port}"
        );
        for published in node.at(&["ports"]).strings() {
            assert!(
                published.ends_with(&format!(":{port}")),
                "{origin}: port `{published}` is not the admin port {port}"
            );
        }
        let drain: u64 = args
            .flags
            .get("--drain-timeout")
            .map_or(10, |d| d.parse().expect("seconds"));
        assert!(seconds(node.at(&["stop_grace_period"]).str()) > drain);
        for dep in ["source", "target", "etcd"] {
            assert_eq!(
                node.at(&["depends_on", dep, "condition"]).str(),
                "service_healthy",
                "{origin}: waits for {dep}"
            );
        }
    }
    assert_eq!(node_ids.len(), 2, "distinct --node-id: {node_ids:?}");
    assert_eq!(
        server_ids.len(),
        3,
        "distinct server ids (source and both nodes): {server_ids:?}"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_two_replicas_probes_configmap_and_secret() {
    let dir = repo().join("deploy/k8s");
    let mut objects: Vec<(String, Yaml)> = Vec::new();
    let mut kustomization = None;
    for file in yaml_files(&dir) {
        for doc in yaml_file(&file) {
            let kind = doc.at(&["kind"]).str().to_string();
            assert!(
                doc.get("apiVersion").is_some(),
                "{}: apiVersion",
                file.display()
            );
            if kind == "Kustomization" {
                kustomization = Some(doc);
            } else {
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                objects.push((name.to_string(), doc));
            }
        }
    }
    // `kubectl apply -k` applies exactly the manifests in the directory,
    // except the example Secret: applying must never overwrite the real
    // secrets the README has the operator create first.
    let kustomization = kustomization.expect("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<String> = kustomization
        .at(&["resources"])
        .strings()
        .into_iter()
        .collect();
    let present: BTreeSet<String> = objects
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| !f.ends_with(".example.yaml"))
        .collect();
    assert_eq!(listed, present, "kustomization resources vs files");
    for (file, doc) in &objects {
        assert!(
            !(listed.contains(file) && doc.at(&["kind"]).str() == "Secret"),
            "{file}: a Secret in the kustomization would overwrite the real one on every apply -k"
        );
    }

    let by_kind = |kind: &str| -> &Yaml {
        let found: Vec<&Yaml> = objects
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d.at(&["kind"]).str() == kind)
            .collect();
        assert_eq!(found.len(), 1, "exactly one {kind}");
        found[0]
    };
    let sts = by_kind("StatefulSet");
    let config_map = by_kind("ConfigMap");
    let secret = by_kind("Secret");
    let service = by_kind("Service");
    let pdb = by_kind("PodDisruptionBudget");

    assert_eq!(sts.at(&["spec", "replicas"]).str(), "2");
    let pod = sts.at(&["spec", "template"]);
    let labels = pod.at(&["metadata", "labels"]);
    for selector in [
        sts.at(&["spec", "selector", "matchLabels"]),
        service.at(&["spec", "selector"]),
        pdb.at(&["spec", "selector", "matchLabels"]),
    ] {
        let Yaml::Map(entries) = selector else {
            panic!("selector {selector:?}")
        };
        for (k, v) in entries {
            assert_eq!(labels.get(k), Some(v), "selector {k} matches the pods");
        }
    }
    assert_eq!(
        sts.at(&["spec", "serviceName"]).str(),
        service.at(&["metadata", "name"]).str()
    );

    let containers = pod.at(&["spec", "containers"]).seq();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    // The pipeline comes from the ConfigMap, mounted where --config points.
    let volumes = pod.at(&["spec", "volumes"]).seq();
    let mounts = container.at(&["volumeMounts"]).seq();
    let cm_name = config_map.at(&["metadata", "name"]).str();
    let cm_volume = volumes
        .iter()
        .find(|v| {
            v.get("configMap")
                .is_some_and(|c| c.at(&["name"]).str() == cm_name)
        })
        .expect("a volume from the ConfigMap");
    let mount_path = mounts
        .iter()
        .find(|m| m.at(&["name"]) == cm_volume.at(&["name"]))
        .expect("the ConfigMap volume is mounted")
        .at(&["mountPath"])
        .str();
    let Yaml::Map(data) = config_map.at(&["data"]) else {
        panic!("ConfigMap data")
    };
    assert_eq!(data.len(), 1, "the ConfigMap holds the pipeline file");
    let (file_name, pipeline) = (&data[0].0, data[0].1.str());

    // The command line, as the pod's shell expands it for each ordinal:
    // the binary replaced by printf shows the argv sluice would get.
    let script = container.at(&["args"]).seq()[0].str();
    assert_eq!(
        container.at(&["command"]).strings(),
        ["/bin/sh", "-c"],
        "a shell only to derive the server id"
    );
    assert!(
        script.starts_with("exec /usr/local/bin/sluice "),
        "{script}"
    );
    let probe = script.replacen("/usr/local/bin/sluice", "printf '%s\\n'", 1);
    let mut server_ids = BTreeSet::new();
    let mut drain = 10;
    for pod_name in ["sluice-shop-0", "sluice-shop-1"] {
        let out = Command::new("/bin/sh")
            .args(["-c", &probe])
            .env("POD_NAME", pod_name)
            .output()
            .expect("/bin/sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let argv: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let args = check_args(&format!("statefulset.yaml ({pod_name})"), &argv);
        assert_eq!(args.subcommand, "run");
        assert_eq!(args.flags["--node-id"], pod_name);
        assert_eq!(args.flags["--config"], format!("{mount_path}/{file_name}"));
        server_ids.insert(args.flags["--server-id"].clone());
        if let Some(d) = args.flags.get("--drain-timeout") {
            drain = d.parse().expect("seconds");
        }
    }
    assert_eq!(
        server_ids.len(),
        2,
        "a server id per replica: {server_ids:?}"
    );
    let grace: u64 = pod
        .at(&["spec", "terminationGracePeriodSeconds"])
        .str()
        .parse()
        .expect("seconds");
    assert!(
        grace > drain,
        "grace period {grace}s > drain timeout {drain}s"
    );

    // Probes: liveness /healthz, readiness /readyz, on the admin port.
    let port = admin_port(pipeline, "configmap.yaml pipeline.yaml");
    let ports = container.at(&["ports"]).seq();
    let port_of = |p: &Yaml| -> u16 {
        let want = p.str();
        let resolved = ports
            .iter()
            .find(|cp| cp.get("name").is_some_and(|n| n.str() == want))
            .map_or(want, |cp| cp.at(&["containerPort"]).str());
        resolved.parse().expect("a port number")
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = container.at(&[probe, "httpGet"]);
        assert_eq!(get.at(&["path"]).str(), path, "{probe}");
        assert_eq!(
            port_of(get.at(&["port"])),
            port,
            "{probe} on the admin port"
        );
    }
    let service_port = &service.at(&["spec", "ports"]).seq()[0];
    assert_eq!(port_of(service_port.at(&["targetPort"])), port);

    // Secrets: the Secret feeds the environment and holds every ${VAR} the
    // pipeline uses; with exactly those, the embedded pipeline validates.
    let secret_name = secret.at(&["metadata", "name"]).str();
    assert!(
        container.at(&["envFrom"]).seq().iter().any(|e| e
            .get("secretRef")
            .is_some_and(|r| r.at(&["name"]).str() == secret_name)),
        "the container's environment comes from the Secret"
    );
    let Yaml::Map(secret_data) = secret.at(&["stringData"]) else {
        panic!("Secret stringData")
    };
    let env: BTreeMap<String, String> = secret_data
        .iter()
        .map(|(k, v)| (k.clone(), v.str().to_string()))
        .collect();
    validate_pipeline("configmap.yaml pipeline.yaml", pipeline, &env);
}

// ---------------------------------------------------------------------------
// On real servers

/// The commands of the first `sh` block after `heading` in a Markdown file
/// (comment lines and blank lines skipped; no line continuations).
fn commands_after(markdown: &str, heading: &str) -> Vec<String> {
    let rest = markdown
        .split_once(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"))
        .1;
    let block = rest
        .split_once("```sh\n")
        .and_then(|(_, b)| b.split_once("```"))
        .map(|(b, _)| b)
        .unwrap_or_else(|| panic!("no sh block after `{heading}`"));
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// deploy/README.md's etcd user and role commands, as written, against a
/// real etcd: afterwards authentication is on, the `sluice` user may use
/// the prefix and nothing else, and a pipeline logging in as it replicates.
#[tokio::test]
async fn the_guides_etcd_user_and_role_work_for_a_pipeline() {
    use crate::ha::marker_latency;
    use crate::pipeline::{server_id, start_of_binlog, Sluice};
    let (source, target, etcd) = tokio::try_join!(
        sluice_testkit::MariaDb::source(),
        sluice_testkit::MariaDb::target(),
        sluice_testkit::Etcd::start()
    )
    .expect("servers");
    let commands = commands_after(
        &read(&repo().join("deploy/README.md")),
        "### etcd: a user and a role for sluice",
    );
    assert!(
        commands.iter().any(|c| c.contains("role grant-permission")),
        "{commands:?}"
    );
    let env = [
        ("ETCDCTL_ENDPOINTS", etcd.endpoint()),
        ("ETCD_ROOT_PASSWORD", "root-pw-e2e".to_string()),
        ("ETCD_PASSWORD", "sluice-pw-e2e".to_string()),
    ];
    for command in &commands {
        let out = Command::new("bash")
            .args(["-c", command])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "`{command}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Only the prefix: outside it, and without a password, etcd refuses.
    for (args, what) in [
        (
            vec!["--user=sluice:sluice-pw-e2e", "put", "/elsewhere", "x"],
            "a key outside the prefix",
        ),
        (vec!["put", "/sluice/x", "x"], "no login"),
    ] {
        let out = Command::new("etcdctl")
            .args(&args)
            .env("ETCDCTL_ENDPOINTS", etcd.endpoint())
            .output()
            .expect("etcdctl runs");
        assert!(!out.status.success(), "etcd allowed {what}");
    }

    source
        .exec("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, v VARCHAR(20));")
        .await
        .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("auth.yaml");
    std::fs::write(
        &config,
        format!(
            "name: auth\n\
             source: {{ url: \"{src}\", server_id: {sid}, start: {start} }}\n\
             target: {{ url: \"{tgt}\" }}\n\
             coordination:\n  etcd: {{ endpoints: [\"{etcd}\"], prefix: /sluice, user: sluice, password: \"${{ETCD_PASSWORD}}\" }}\n\
             batch: {{ max_delay: 5ms }}\n",
            src = source.repl_url(),
            sid = server_id(),
            start = start_of_binlog(&source).await,
            tgt = target.url(),
            etcd = etcd.endpoint(),
        ),
    )
    .expect("write pipeline");
    let node = Sluice::start_node_with_env(
        &config,
        "node-a",
        Some(server_id()),
        &[("ETCD_PASSWORD", "sluice-pw-e2e")],
    );
    let root = etcd_client::Client::connect(
        [etcd.endpoint()],
        Some(etcd_client::ConnectOptions::new().with_user("root", "root-pw-e2e")),
    )
    .await
    .expect("etcd as root");
    let leader = sluice_coord::KeyLayout::new("/sluice")
        .and_then(|l| l.pipeline("auth"))
        .expect("keys")
        .leader();
    let (root, leader) = (&root, leader.as_str());
    sluice_testkit::wait_until_async(
        "node-a to lead as etcd user `sluice`",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(100),
        || async move {
            // A clone per call: `get` needs the client mutably.
            let got = root
                .clone()
                .get(leader, None)
                .await
                .expect("etcd get as root");
            got.kvs()
                .first()
                .is_some_and(|kv| kv.value_str().unwrap_or("").contains("node-a"))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
    marker_latency(
        &source,
        &target,
        1,
        std::time::Duration::from_secs(30),
        &[&node],
    )
    .await;
}

/// The compose example's init scripts, run as the mariadb image runs them
/// (with `mariadb` pointed at a test server instead of the image's socket):
/// the source account can then do what sluice needs (`sluice check`), and
/// the target account can create `shop_copy` and `sluice_meta` tables.
#[tokio::test]
async fn the_compose_init_scripts_grant_what_sluice_needs() {
    let (source, target) = tokio::try_join!(
        sluice_testkit::MariaDb::source(),
        sluice_testkit::MariaDb::target()
    )
    .expect("servers");
    // As in a fresh image: no other `repl` account (the kit's own, for
    // 127.0.0.1, would match before the script's `repl`@`%`).
    source
        .exec("SET SESSION sql_log_bin = 0; DROP USER IF EXISTS 'repl'@'127.0.0.1', 'repl'@'localhost'")
        .await
        .expect("drop the kit's repl account");
    let shim = tempfile::tempdir().expect("tempdir");
    let mariadb = sluice_testkit::find_binary("mariadb", "mariadb-client").expect("mariadb client");
    for (script, server) in [("source-init.sh", &source), ("target-init.sh", &target)] {
        // The image's client on its socket as root: here, root over TCP.
        let wrapper = shim.path().join("mariadb");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --no-defaults -h127.0.0.1 -P{} -uroot\n",
                mariadb.display(),
                server.port()
            ),
        )
        .expect("write shim");
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let path = format!(
            "{}:{}",
            shim.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .arg(repo().join("deploy/compose").join(script))
            .env("PATH", path)
            .env("MARIADB_ROOT_PASSWORD", "unused-here")
            .env("SRC_PASSWORD", "src-pw-e2e")
            .env("DST_PASSWORD", "dst-pw-e2e")
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{script}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let url = format!("mysql://repl:src-pw-e2e@127.0.0.1:{}", source.port());
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--source", &url])
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "the compose source account:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut conn = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!(
            "mysql://sluice:dst-pw-e2e@127.0.0.1:{}",
            target.port()
        ))
        .expect("url"),
    )
    .await
    .expect("the compose target account logs in");
    use mysql_async::prelude::Queryable as _;
    conn.query_drop(
        "CREATE DATABASE IF NOT EXISTS shop_copy; CREATE TABLE shop_copy.t (id INT PRIMARY KEY);
         CREATE DATABASE IF NOT EXISTS sluice_meta; CREATE TABLE sluice_meta.t (id INT PRIMARY KEY)",
    )
    .await
    .expect("rights on shop_copy and sluice_meta");
    assert!(
        conn.query_drop("CREATE DATABASE elsewhere").await.is_err(),
        "the target account may create other schemas"
    );
}
