//! End-to-end tests of `parse`/`load`: whole files in, `Pipeline`s or exact
//! `file:line:col` messages out.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "SRC_PASSWORD" => Some("s3cr3t-pw".into()),
        "SERVER_ID" => Some("77".into()),
        "LONG" => Some("x".repeat(40)),
        _ => None,
    }
}

fn ok(text: &str) -> Pipeline {
    match parse(text, "p.yaml", &env) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid pipeline, got:\n{e}"),
    }
}

/// The errors' display lines.
fn errs(text: &str) -> Vec<String> {
    match parse(text, "p.yaml", &env) {
        Ok(p) => panic!("expected errors, got {p:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The single error of `text`.
fn err(text: &str) -> String {
    let mut all = errs(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.remove(0)
}

fn kinds(text: &str) -> Vec<ErrorKind> {
    parse(text, "p.yaml", &env)
        .unwrap_err()
        .iter()
        .map(|e| e.kind)
        .collect()
}

const MINIMAL: &str = "\
name: shop
source: { url: \"mysql://repl:${SRC_PASSWORD}@127.0.0.1:13306\", server_id: 4001 }
target: { url: \"mysql://root@127.0.0.1:13307\" }
";

/// `MINIMAL` plus `extra` lines.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn full_example_from_the_issue() {
    let p = ok(r#"
name: shop                        # [a-z0-9_-]+
source: { url: "mysql://repl:${SRC_PASSWORD}@127.0.0.1:13306", server_id: 4001,
          start: latest }         # or {file: mysql-bin.000003, pos: 4} or {gtid: "0-1-100"}
target: { url: "mysql://root@127.0.0.1:13307" }
coordination:
  etcd: { endpoints: ["http://127.0.0.1:23790"], prefix: /sluice }   # or: local: {dir: ./state}
filter: { include: ['shop\..*'], exclude: ['shop\.tmp_.*'] }          # regex on schema.table
routes: [ { match: 'shop\.(.*)', to: 'shop_copy.$1' } ]
columns: [ { table: 'shop\.users', exclude: [password_hash] } ]
batch: { max_rows: 2000, max_bytes: 4MiB, max_delay: 20ms }
load: { workers: 4, ddl: apply }  # ddl: apply | skip | fail
ha: { lease_ttl: 3s, standby_delay: 1s }
node: { id: node-a, stages: [load, select] }
stages: { listen: "0.0.0.0:7070", advertise: "http://node-a:7070/", window: 16, task_timeout: 30s }
admin: { listen: "127.0.0.1:9090" }
"#);
    assert_eq!(p.name, "shop");
    assert_eq!(
        p.source.url().expose(),
        "mysql://repl:s3cr3t-pw@127.0.0.1:13306"
    );
    assert_eq!(p.source.url().port(), 13306);
    assert_eq!(p.source.urls.len(), 1);
    assert_eq!(p.source.server_id, 4001);
    assert_eq!(p.source.start, StartAt::Latest);
    assert_eq!(p.source.switch_after, Some(Duration::from_secs(10)));
    assert_eq!(p.target.url.expose(), "mysql://root@127.0.0.1:13307");
    assert_eq!(
        p.coordination,
        Coordination::Etcd {
            endpoints: vec!["http://127.0.0.1:23790".into()],
            prefix: "/sluice".into(),
            tls: None,
            auth: None,
        }
    );
    assert!(p.filter.includes("shop", "orders"));
    assert!(!p.filter.includes("shop", "tmp_x"));
    assert!(!p.filter.includes("crm", "orders"));
    assert_eq!(
        p.routes.route("shop", "orders"),
        ("shop_copy".into(), "orders".into())
    );
    assert_eq!(p.columns.excluded("shop", "users"), ["password_hash"]);
    assert!(p.columns.excluded("shop", "orders").is_empty());
    assert_eq!(
        p.batch,
        Batch {
            max_rows: 2000,
            max_bytes: 4 * 1024 * 1024,
            max_delay: Duration::from_millis(20),
            window: 8
        }
    );
    assert_eq!(
        p.load,
        Load {
            workers: 4,
            ddl: DdlPolicy::Apply,
            statement_cache: 256,
        }
    );
    assert_eq!(p.ha.lease_ttl, Duration::from_secs(3));
    assert_eq!(p.ha.standby_delay, Duration::from_secs(1));
    assert_eq!(p.node.id.as_deref(), Some("node-a"));
    assert_eq!(p.node.stages, [Stage::Select, Stage::Load]);
    assert!(p.node.runs(Stage::Load) && !p.node.runs(Stage::Extract));
    assert_eq!(p.admin.unwrap().listen.to_string(), "127.0.0.1:9090");
    let stages = p.stages.expect("stages");
    assert_eq!(stages.advertise.as_deref(), Some("http://node-a:7070"));
    assert_eq!(stages.window, Some(16));
    assert_eq!(stages.task_timeout, std::time::Duration::from_secs(30));
    assert_eq!(stages.fetch_timeout, std::time::Duration::from_secs(10));
}

#[test]
fn defaults() {
    let p = ok(MINIMAL);
    assert_eq!(p.source.start, StartAt::Latest);
    assert_eq!(p.source.switch_after, Some(Duration::from_secs(10)));
    assert_eq!(
        p.coordination,
        Coordination::Local {
            dir: PathBuf::from("state")
        }
    );
    assert!(p.filter.include().is_empty() && p.filter.exclude().is_empty());
    assert!(p.filter.includes("any", "table"));
    assert!(!p.filter.includes("mysql", "user"), "system schemas never");
    assert!(p.routes.is_empty());
    assert_eq!(p.routes.route("a", "b"), ("a".into(), "b".into()));
    assert!(p.columns.is_empty());
    assert_eq!(p.batch, Batch::default());
    assert_eq!(p.batch.max_rows, 2000);
    assert_eq!(p.batch.max_bytes, 4 << 20);
    assert_eq!(p.batch.max_delay, Duration::from_millis(20));
    assert_eq!(p.load, Load::default());
    assert_eq!(p.load.workers, 4);
    assert_eq!(p.load.ddl, DdlPolicy::Apply);
    assert_eq!(p.ha, Ha::default());
    assert_eq!(p.node, Node::default());
    assert_eq!(p.node.stages.len(), 4);
    assert!(p.admin.is_none());

    // Empty sections (null) mean "defaults" too.
    let p = ok(&with(
        "filter:\nroutes:\ncolumns:\nbatch:\nload:\ncoordination:\nadmin:\n",
    ));
    assert_eq!(p.batch, Batch::default());
    assert!(matches!(p.coordination, Coordination::Local { .. }));
    assert!(p.admin.is_none());
    // `local:` with no dir is the default directory.
    let p = ok(&with("coordination: { local: }\n"));
    assert_eq!(
        p.coordination,
        Coordination::Local {
            dir: "state".into()
        }
    );
}

#[test]
fn the_repository_pipeline_yaml_parses() {
    let text = include_str!("../../../pipeline.yaml");
    let p = parse(text, "pipeline.yaml", &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "shop");
    assert_eq!(
        p.source.url().expose(),
        "mysql://repl:s3cr3t-pw@127.0.0.1:13306"
    );
    assert_eq!(p.source.server_id, 4001);
    assert_eq!(p.source.start, StartAt::Latest);
    assert_eq!(p.target.url.address(), "127.0.0.1:13307");
    assert_eq!(
        p.coordination,
        Coordination::Etcd {
            endpoints: vec!["http://127.0.0.1:23790".into()],
            prefix: "/sluice".into(),
            tls: None,
            auth: None,
        }
    );
    assert!(p.filter.includes("shop", "users"));
    assert!(!p.filter.includes("other", "users"));
    assert_eq!(
        p.routes.route("shop", "users"),
        ("shop_copy".into(), "users".into())
    );
    assert_eq!(p.batch.max_rows, 2000);
    assert_eq!(p.batch.max_bytes, 4 << 20);
    assert_eq!(p.batch.max_delay, Duration::from_millis(20));
    assert_eq!(
        p.load,
        Load {
            workers: 4,
            ddl: DdlPolicy::Apply,
            statement_cache: 256,
        }
    );

    // Without the password in the environment it says exactly that, where.
    let e = parse(text, "pipeline.yaml", &|_| None).unwrap_err();
    assert_eq!(e.len(), 1);
    let line = text
        .lines()
        .position(|l| l.contains("${SRC_PASSWORD}"))
        .unwrap()
        + 1;
    let col = text.lines().nth(line - 1).unwrap().find("${").unwrap() + 1;
    assert!(
        e.to_string().starts_with(&format!(
            "pipeline.yaml:{line}:{col}: source.url: undefined variable `SRC_PASSWORD`"
        )),
        "{e}"
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        errs("name: shop\nsource: { url: \"mysql://h\", sever_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        [
            "p.yaml:2:1: source.server_id: missing required key `server_id`",
            "p.yaml:2:29: source.sever_id: unknown key `sever_id` (did you mean `server_id`?)",
        ]
    );
    assert_eq!(
        err(&with("batch:\n  max_rows: 10\n  colour: blue\n")),
        "p.yaml:6:3: batch.colour: unknown key `colour` (expected one of: max_rows, max_bytes, max_delay, window)"
    );
    assert_eq!(
        err(&with(
            "routes:\n  - { match: 'a\\.b', to: 'c.d', when: x }\n"
        )),
        "p.yaml:5:33: routes[0].when: unknown key `when` (expected one of: match, to)"
    );
    assert_eq!(
        err(&with("extra: 1\n")),
        "p.yaml:4:1: extra: unknown key `extra` (expected one of: name, source, target, coordination, filter, routes, columns, batch, load, ha, node, admin, alarms, stages, bidirectional, snapshot, verify)"
    );
    assert_eq!(kinds(&with("extra: 1\n")), [ErrorKind::UnknownKey]);
}

#[test]
fn wrong_types() {
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: abc }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:40: source.server_id: expected an integer, found the string \"abc\""
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: \"4001\" }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:40: source.server_id: expected an integer, found the string \"4001\""
    );
    assert_eq!(
        err(&with("filter: { include: 'shop\\..*' }\n")),
        "p.yaml:4:20: filter.include: expected a list, found the string \"shop\\\\..*\""
    );
    assert_eq!(
        err(&with("load: [1, 2]\n")),
        "p.yaml:4:7: load: expected a mapping, found a list"
    );
    assert_eq!(
        err("name: [shop]\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:1:7: name: expected a string, found a list"
    );
    assert_eq!(
        err(&with("load: { workers: 2.5 }\n")),
        "p.yaml:4:18: load.workers: expected an integer, found a number with a fraction"
    );
    assert_eq!(
        err(&with("batch: { max_delay: true }\n")),
        "p.yaml:4:21: batch.max_delay: expected a duration (e.g. 20ms, 1s, 1m30s), found a boolean"
    );
    // `key:` with nothing: reported at the key.
    assert_eq!(
        err("name:\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:1:1: name: expected a string, found nothing (null)"
    );
    assert_eq!(
        err(&with("admin: { listen: !custom 1 }\n")),
        "p.yaml:4:18: admin.listen: unsupported YAML tag `!custom`"
    );
    // The whole document must be a mapping.
    assert_eq!(
        err("- a\n- b\n"),
        "p.yaml:1:1: expected a mapping, found a list"
    );
    assert_eq!(kinds("- a\n"), [ErrorKind::WrongType]);
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        errs(""),
        [
            "p.yaml:1:1: name: missing required key `name`",
            "p.yaml:1:1: source: missing required key `source`",
            "p.yaml:1:1: target: missing required key `target`",
        ]
    );
    // Reported at the key of the section that lacks it.
    assert_eq!(
        err("name: shop\nsource:\n  url: \"mysql://h\"\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:1: source.server_id: missing required key `server_id`"
    );
    assert_eq!(
        err("name: shop\nsource: { server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:1: source.url: missing required key `url` (or `urls`)"
    );
    // In a list, at the item.
    assert_eq!(
        err(&with("routes:\n  - { match: 'a\\.b' }\n")),
        "p.yaml:5:5: routes[0].to: missing required key `to`"
    );
    assert_eq!(
        kinds(&with("routes:\n  - { match: 'a\\.b' }\n")),
        [ErrorKind::MissingKey]
    );
    assert_eq!(
        err(&with("coordination: { etcd: { prefix: /x } }\n")),
        "p.yaml:4:17: coordination.etcd.endpoints: missing required key `endpoints`"
    );
}

#[test]
fn bad_regexes_and_templates() {
    assert_eq!(
        err(&with("filter:\n  include: ['shop\\..*', 'shop\\.(']\n")),
        "p.yaml:5:25: filter.include[1]: invalid regex `shop\\.(`: unclosed group"
    );
    assert_eq!(
        kinds(&with("filter:\n  include: ['shop\\.(']\n")),
        [ErrorKind::BadRegex]
    );
    assert_eq!(
        err(&with("routes:\n  - match: 'shop\\.(.*)'\n    to: 'shop_copy.$2'\n")),
        "p.yaml:6:9: routes[0].to: invalid route target `shop_copy.$2`: `$2` refers to capture group 2, but the `match` pattern has only 1 group"
    );
    assert_eq!(
        err(&with("routes:\n  - { match: 'a\\.b', to: 'c.d' }\n  - { match: 'x', to: 'nodot' }\n")),
        "p.yaml:6:23: routes[1].to: invalid route target `nodot`: expected `SCHEMA.TABLE` with exactly one literal `.` (e.g. `shop_copy.$1`)"
    );
    assert_eq!(
        err(&with("columns:\n  - table: '*'\n    exclude: [a]\n")),
        "p.yaml:5:12: columns[0].table: invalid regex `*`: repetition operator missing expression"
    );
}

#[test]
fn invalid_values() {
    let cases = [
        ("batch: { max_delay: 20 }\n", "p.yaml:4:21: batch.max_delay: invalid duration `20`: missing unit (write e.g. 20ms, 1s, 1m30s, 2h)"),
        ("batch: { max_delay: 5 parsecs }\n", "p.yaml:4:21: batch.max_delay: invalid duration `5 parsecs`: missing unit after `5`"),
        ("batch: { max_delay: 2m }\n", "p.yaml:4:21: batch.max_delay: duration `2m` is out of range (must be between 0 and 1m)"),
        ("batch: { max_bytes: 4M }\n", "p.yaml:4:21: batch.max_bytes: invalid size `4M`: unknown unit `M` (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)"),
        ("batch: { max_bytes: 2GiB }\n", "p.yaml:4:21: batch.max_bytes: size `2GiB` is out of range (must be between 1KiB and 1GiB)"),
        ("batch: { max_bytes: 1.5 }\n", "p.yaml:4:21: batch.max_bytes: invalid size `1.5`: fractional sizes are not supported (write e.g. 1536KiB)"),
        ("batch: { max_rows: 0 }\n", "p.yaml:4:20: batch.max_rows: 0 is out of range (must be between 1 and 1000000)"),
        ("load: { ddl: ignore }\n", "p.yaml:4:14: load.ddl: `ignore` is not one of: apply, skip, fail"),
        ("load: { workers: 100 }\n", "p.yaml:4:18: load.workers: 100 is out of range (must be between 1 and 64)"),
        ("load: { statement_cache: 5000 }\n", "p.yaml:4:26: load.statement_cache: 5000 is out of range (must be between 0 and 4096)"),
        ("ha: { lease_ttl: 2500ms }\ncoordination: { etcd: { endpoints: ['http://e:2379'] } }\n", "p.yaml:4:18: ha.lease_ttl: must be whole seconds (etcd leases have second granularity)"),
        ("coordination: { etcd: { endpoints: ['127.0.0.1:2379'] } }\n", "p.yaml:4:37: coordination.etcd.endpoints[0]: invalid etcd endpoint `127.0.0.1:2379`: not a URL: write http://127.0.0.1:2379 (https://127.0.0.1:2379 for TLS)"),
        ("coordination: { etcd: { endpoints: ['http://e:2379'], prefix: sluice } }\n", "p.yaml:4:63: coordination.etcd.prefix: invalid prefix `sluice`: must start with `/` (e.g. /sluice)"),
        ("coordination: { etcd: { endpoints: [] } }\n", "p.yaml:4:36: coordination.etcd.endpoints: needs at least one endpoint"),
        ("coordination: { local: { dir: a }, etcd: { endpoints: ['http://e:1'] } }\n", "p.yaml:4:17: coordination.local: give either `etcd` or `local`, not both"),
        ("ha: { lease_ttl: 3s }\n", "p.yaml:4:1: ha: an active/standby pair needs `coordination.etcd` (a local directory cannot hold a lease other nodes see)"),
        ("node: { stages: [select] }\n", "p.yaml:4:1: node.stages: running only some stages on this node needs `coordination.etcd` (other nodes must see the stage tasks)"),
        ("node: { stages: [select, select, loader] }\ncoordination: { etcd: { endpoints: ['http://e:2379'] } }\n", "p.yaml:4:26: node.stages[1]: stage `select` is listed twice"),
        ("node: { id: 'a b' }\n", "p.yaml:4:13: node.id: invalid node id `a b` (use 1 to 64 characters from A-Z, a-z, 0-9, `_`, `.` and `-`)"),
        ("admin: { listen: 'localhost:9090' }\n", "p.yaml:4:18: admin.listen: invalid listen address `localhost:9090` (expected IP:PORT, e.g. 127.0.0.1:9090)"),
        ("columns: [ { table: 'a\\.b', include: [x], exclude: [y] } ]\n", "p.yaml:4:43: columns[0].exclude: give either `include` or `exclude`, not both"),
        ("columns: [ { table: 'a\\.b', exclude: [x, X] } ]\n", "p.yaml:4:42: columns[0].exclude[1]: column `X` is listed twice"),
        ("columns:\n  - table: 'a\\.b'\n    exclude: [secret]\n    rename: { secret: s2 }\n", "p.yaml:7:15: columns[0].rename.secret: column `secret` is renamed but not replicated"),
    ];
    for (extra, expected) in cases {
        let all = errs(&with(extra));
        assert_eq!(
            all.first().map(String::as_str),
            Some(expected),
            "{extra}: {all:#?}"
        );
    }
    assert_eq!(
        err(&with("node: { stages: [select, select] }\ncoordination: { etcd: { endpoints: ['http://e:2379'] } }\n")),
        "p.yaml:4:26: node.stages[1]: stage `select` is listed twice"
    );
    assert_eq!(
        kinds(&with("load: { ddl: ignore }\n")),
        [ErrorKind::InvalidValue]
    );
}

#[test]
fn names_and_urls() {
    let body = "source: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n";
    assert_eq!(
        err(&format!("name: Shop Copy\n{body}")),
        "p.yaml:1:7: name: invalid pipeline name `Shop Copy` (use 1 to 64 characters from a-z, 0-9, `_` and `-`)"
    );
    assert!(parse(&format!("name: shop_copy-2\n{body}"), "p", &env).is_ok());
    assert!(
        parse(&format!("name: 2024\n{body}"), "p", &env).is_ok(),
        "digits are a name"
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"postgres://h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:16: source.url: invalid URL `postgres://h`: unsupported scheme `postgres://` (use mysql:// or mariadb://)"
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://u:pw@\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:16: source.url: invalid URL `mysql://u:***@`: missing host (expected mysql://user:password@host:3306)"
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 0 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:40: source.server_id: 0 is out of range (must be between 1 and 4294967295)"
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 4294967296 }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:40: source.server_id: 4294967296 is out of range (must be between 1 and 4294967295)"
    );
    assert!(parse(
        "name: shop\nsource: { url: \"mariadb://h\", server_id: 4294967295 }\ntarget: { url: \"mysql://h2\" }\n",
        "p",
        &env
    )
    .is_ok());
}

#[test]
fn source_urls_list() {
    let p = ok("name: shop\nsource:\n  urls: ['mysql://a:3306', 'mysql://b:3306']\n  server_id: 1\n  switch_after: 30s\ntarget: { url: \"mysql://t\" }\n");
    assert_eq!(p.source.urls.len(), 2);
    assert_eq!(p.source.url().host(), "a");
    assert_eq!(p.source.switch_after, Some(Duration::from_secs(30)));
    let never = ok("name: shop\nsource:\n  urls: ['mysql://a:3306', 'mysql://b:3306']\n  server_id: 1\n  switch_after: never\ntarget: { url: \"mysql://t\" }\n");
    assert_eq!(never.source.switch_after, None);
    assert!(err("name: shop\nsource:\n  urls: ['mysql://a:3306']\n  server_id: 1\n  switch_after: nevr\ntarget: { url: \"mysql://t\" }\n")
        .contains("source.switch_after"));
    assert_eq!(
        err("name: shop\nsource:\n  url: 'mysql://a'\n  urls: ['mysql://b']\n  server_id: 1\ntarget: { url: \"mysql://t\" }\n"),
        "p.yaml:4:3: source.urls: give either `url` or `urls`, not both"
    );
    assert_eq!(
        err("name: shop\nsource:\n  urls: ['mysql://a', 'mysql://a:3306']\n  server_id: 1\ntarget: { url: \"mysql://t\" }\n"),
        "p.yaml:3:23: source.urls[1]: a:3306 is listed twice"
    );
    assert_eq!(
        err("name: shop\nsource:\n  urls: []\n  server_id: 1\ntarget: { url: \"mysql://t\" }\n"),
        "p.yaml:3:9: source.urls: needs at least one URL"
    );
}

#[test]
fn start_positions() {
    let start = |s: &str| {
        ok(&MINIMAL.replace("server_id: 4001", &format!("server_id: 4001, start: {s}")))
            .source
            .start
    };
    assert_eq!(start("latest"), StartAt::Latest);
    assert_eq!(
        start("{file: mysql-bin.000003, pos: 4}"),
        StartAt::File {
            file: "mysql-bin.000003".into(),
            pos: 4
        }
    );
    assert_eq!(
        start("{file: mysql-bin.000003}"),
        StartAt::File {
            file: "mysql-bin.000003".into(),
            pos: 4
        }
    );
    assert_eq!(
        start("{gtid: \"0-1-100\"}"),
        StartAt::Gtid("0-1-100".parse().unwrap())
    );
    assert_eq!(
        start("{gtid: 0-1-100}"),
        StartAt::Gtid("0-1-100".parse().unwrap())
    );

    let bad =
        |s: &str| err(&MINIMAL.replace("server_id: 4001", &format!("server_id: 4001, start: {s}")));
    // The value of `start:` begins at column 88 of line 2.
    assert_eq!(
        bad("earliest"),
        "p.yaml:2:88: source.start: unknown start `earliest` (expected `latest`, `{file: NAME, pos: N}` or `{gtid: SET}`)"
    );
    assert_eq!(
        bad("{file: mysql-bin.000003, pos: 3}"),
        "p.yaml:2:118: source.start.pos: 3 is out of range (must be between 4 and 18446744073709551615)"
    );
    assert_eq!(
        bad("{file: ''}"),
        "p.yaml:2:95: source.start.file: must not be empty"
    );
    assert_eq!(
        bad("{file: /var/lib/mysql/mysql-bin.000003}"),
        "p.yaml:2:95: source.start.file: `/var/lib/mysql/mysql-bin.000003` is not a binlog file name (give the bare name, e.g. mysql-bin.000003)"
    );
    assert_eq!(
        bad("{pos: 4}"),
        "p.yaml:2:81: source.start.file: missing required key `file` (or `gtid`)"
    );
    assert_eq!(
        bad("{file: f.1, gtid: 0-1-1}"),
        "p.yaml:2:100: source.start.gtid: give either `file`/`pos` or `gtid`, not both"
    );
    let e = bad("{gtid: 'not a gtid'}");
    assert!(
        e.starts_with("p.yaml:2:95: source.start.gtid: invalid GTID set: "),
        "{e}"
    );
    assert_eq!(
        bad("[latest]"),
        "p.yaml:2:88: source.start: expected `latest`, `{file: NAME, pos: N}` or `{gtid: SET}`, found a list"
    );
}

#[test]
fn interpolation() {
    // Integers may come from the environment; the text is typed after
    // interpolation.
    // (In block style: inside `{...}` a plain `${X}` is a YAML syntax error,
    // so quote it there.)
    let p = ok("name: shop\nsource:\n  url: mysql://h\n  server_id: ${SERVER_ID}\ntarget: { url: \"mysql://t\" }\n");
    assert_eq!(p.source.server_id, 77);
    let p = ok(&MINIMAL.replace("4001", "\"${SERVER_ID}\""));
    assert_eq!(p.source.server_id, 77);
    // Escape: `$${` is a literal `${` (here inside a regex quantifier).
    let p = ok(&with("filter: { include: ['shop\\.t$${1}x'] }\n"));
    assert_eq!(p.filter.include()[0].as_str(), "shop\\.t${1}x");
    // Defaults.
    let p = ok(&with("batch: { max_delay: '${DELAY:-50ms}' }\n"));
    assert_eq!(p.batch.max_delay, Duration::from_millis(50));
    // A `$` that is not `${` is left alone (regex anchors, route groups).
    let p = ok(&with(
        "routes: [ { match: '(shop)\\.(.*)$', to: '$1_copy.$2' } ]\n",
    ));
    assert_eq!(
        p.routes.route("shop", "t"),
        ("shop_copy".into(), "t".into())
    );
}

#[test]
fn undefined_variables_are_reported_where_they_are_written() {
    // Two on one line: each at its own column.
    assert_eq!(
        errs("name: shop\nsource: { url: \"mysql://${USER}:${PASS}@h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        [
            "p.yaml:2:25: source.url: undefined variable `USER` (set it in the environment, give a default with `${USER:-...}`, or write `$${` for a literal `${`)",
            "p.yaml:2:33: source.url: undefined variable `PASS` (set it in the environment, give a default with `${PASS:-...}`, or write `$${` for a literal `${`)",
        ]
    );
    assert_eq!(
        kinds("name: ${NAME}\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n"),
        [ErrorKind::UndefinedVariable]
    );
    // An escaped `$${` before it does not shift the reported column.
    assert_eq!(
        err(&with("filter: { include: ['a$${b}c${NOPE}'] }\n")),
        "p.yaml:4:29: filter.include[0]: undefined variable `NOPE` (set it in the environment, give a default with `${NOPE:-...}`, or write `$${` for a literal `${`)"
    );
    // In a folded block scalar, on a later line.
    assert_eq!(
        err(&MINIMAL.replace(
            "target: { url: \"mysql://root@127.0.0.1:13307\" }",
            "target:\n  url: >-\n    mysql://root:${TPASS}@\n    127.0.0.1:13307"
        )),
        "p.yaml:5:18: target.url: undefined variable `TPASS` (set it in the environment, give a default with `${TPASS:-...}`, or write `$${` for a literal `${`)"
    );
    // Malformed references.
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://${1}@h2\" }\n"),
        "p.yaml:3:25: target.url: invalid variable name `1` in `${1}` (names are letters, digits and `_`; write `$${` for a literal `${`)"
    );
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://${X@h2\" }\n"),
        "p.yaml:3:25: target.url: unterminated `${` (close it with `}`, or write `$${` for a literal `${`)"
    );
    // A `${` produced by a double-quoted escape cannot be located exactly:
    // the scalar's own position is reported.
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://\\x24{Q}@h2\" }\n"),
        "p.yaml:3:16: target.url: undefined variable `Q` (set it in the environment, give a default with `${Q:-...}`, or write `$${` for a literal `${`)"
    );
}

#[test]
fn interpolation_does_not_move_other_errors() {
    // LONG expands to 40 characters; the bad server_id is still reported at
    // its column in the file.
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://${LONG}@h\", server_id: x }\ntarget: { url: \"mysql://h2\" }\n"),
        "p.yaml:2:48: source.server_id: expected an integer, found the string \"x\""
    );
}

#[test]
fn secrets_never_appear() {
    let p = ok(MINIMAL);
    let debug = format!("{p:?}");
    assert!(!debug.contains("s3cr3t-pw"), "{debug}");
    assert!(
        debug.contains("mysql://repl:***@127.0.0.1:13306"),
        "{debug}"
    );
    assert_eq!(
        p.source.url().to_string(),
        "mysql://repl:***@127.0.0.1:13306"
    );

    // A bad URL built from a secret shows the `${VAR}` text, not the value.
    let e = errs("name: shop\nsource: { url: \"mysql://repl:${SRC_PASSWORD}@h:x\", server_id: x }\ntarget: { url: \"mysql://h2\" }\n");
    assert_eq!(
        e[0],
        "p.yaml:2:16: source.url: invalid URL `mysql://repl:***@h:x`: invalid port (expected 1..65535; percent-encode `:` `/` `@` in passwords)"
    );
    let e = errs("name: shop\nsource: { url: \"mysql://r:${SRC_PASSWORD}\", server_id: 1 }\ntarget: { url: \"mysql://h2\" }\n");
    assert!(!e[0].contains("s3cr3t"), "{e:?}");
    assert!(e[0].contains("${SRC_PASSWORD}"), "{e:?}");
    // Same for any other field fed from the environment.
    assert_eq!(
        err(&with("batch: { max_delay: '${SRC_PASSWORD}' }\n")),
        "p.yaml:4:21: batch.max_delay: invalid duration `${SRC_PASSWORD}`: the interpolated value is not a duration (e.g. 20ms, 1s, 1m30s)"
    );
    assert_eq!(
        err(&with("batch: { max_bytes: '${SRC_PASSWORD}' }\n")),
        "p.yaml:4:21: batch.max_bytes: invalid size `${SRC_PASSWORD}`: the interpolated value is not a size (e.g. 4MiB, 512KiB, 1GB)"
    );
    let e = err(&with("load: { ddl: '${SRC_PASSWORD}' }\n"));
    assert!(
        !e.contains("s3cr3t") && e.contains("${SRC_PASSWORD}"),
        "{e}"
    );
    let e = err(&with("load: { workers: '${SRC_PASSWORD}' }\n"));
    assert!(
        !e.contains("s3cr3t") && e.contains("${SRC_PASSWORD}"),
        "{e}"
    );
}

#[test]
fn many_errors_at_once_sorted_by_position() {
    let text = "\
name: Bad Name
source:
  url: \"mysql://repl:${MISSING}@127.0.0.1:13306\"
  server_id: abc
  colour: red
target: {}
filter: { include: ['shop\\.('] }
routes: [ { match: 'a\\.(b)', to: 'x.$3' } ]
batch: { max_rows: 2000, max_bytes: 4 MiBs, max_delay: 20 }
load: { workers: 4, ddl: maybe }
";
    let e = parse(text, "shop.yaml", &env).unwrap_err();
    let expected = "\
shop.yaml:1:7: name: invalid pipeline name `Bad Name` (use 1 to 64 characters from a-z, 0-9, `_` and `-`)
shop.yaml:3:22: source.url: undefined variable `MISSING` (set it in the environment, give a default with `${MISSING:-...}`, or write `$${` for a literal `${`)
shop.yaml:4:14: source.server_id: expected an integer, found the string \"abc\"
shop.yaml:5:3: source.colour: unknown key `colour` (expected one of: url, urls, server_id, start, switch_after, tls)
shop.yaml:6:1: target.url: missing required key `url`
shop.yaml:7:21: filter.include[0]: invalid regex `shop\\.(`: unclosed group
shop.yaml:8:34: routes[0].to: invalid route target `x.$3`: `$3` refers to capture group 3, but the `match` pattern has only 1 group
shop.yaml:9:37: batch.max_bytes: invalid size `4 MiBs`: unknown unit `MiBs` (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)
shop.yaml:9:56: batch.max_delay: invalid duration `20`: missing unit (write e.g. 20ms, 1s, 1m30s, 2h)
shop.yaml:10:26: load.ddl: `maybe` is not one of: apply, skip, fail";
    assert_eq!(e.to_string(), expected);
    assert_eq!(e.len(), 10);
    let kinds: Vec<ErrorKind> = e.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::InvalidValue,
            ErrorKind::UndefinedVariable,
            ErrorKind::WrongType,
            ErrorKind::UnknownKey,
            ErrorKind::MissingKey,
            ErrorKind::BadRegex,
            ErrorKind::BadRegex,
            ErrorKind::InvalidValue,
            ErrorKind::InvalidValue,
            ErrorKind::InvalidValue,
        ]
    );
    let first = &e.errors()[0];
    assert_eq!((first.line(), first.col()), (Some(1), Some(7)));
    assert_eq!(first.path, "name");
}

#[test]
fn malformed_yaml() {
    assert_eq!(
        err("name: shop\nsource: { url: \"mysql://h\", server_id: 1\ntarget: x\n"),
        "p.yaml:2:9: YAML syntax error: this `{` is never closed: add `}` where the mapping ends \
         (the parser stopped at line 3, column 7: while parsing a flow mapping, did not find expected ',' or '}')"
    );
    assert_eq!(kinds("a: [1, 2\nb: 3\n"), [ErrorKind::Syntax]);
    assert_eq!(
        err("name: shop\nsource:\n\turl: x\n"),
        "p.yaml:3:2: YAML syntax error: tabs disallowed within this context (block indentation)"
    );
    assert_eq!(
        err(&format!("{MINIMAL}---\nname: other\n")),
        "p.yaml:4:1: a pipeline file holds exactly one YAML document (found a second `---`)"
    );
    assert_eq!(
        err(&with("batch: *nowhere\n")),
        "p.yaml:4:8: YAML syntax error: while parsing node, found unknown anchor"
    );
}

#[test]
fn duplicate_keys() {
    assert_eq!(
        err(&with("load: { workers: 2 }\nload: { workers: 3 }\n")),
        "p.yaml:5:1: load: duplicate key (first defined at line 4, column 1)"
    );
    assert_eq!(
        err(&with(
            "columns: [ { table: 'a\\.b', rename: { x: y, X: z } } ]\n"
        )),
        "p.yaml:4:45: columns[0].rename.X: column renamed twice"
    );
}

#[test]
fn anchors_and_aliases() {
    let p = ok(&with(
        "routes:\n  - { match: &m 'shop\\.(.*)', to: 'a.$1' }\ncolumns:\n  - { table: *m, exclude: [secret] }\n",
    ));
    assert_eq!(p.columns.excluded("shop", "users"), ["secret"]);
    // A bad aliased value is reported where it is used.
    assert_eq!(
        errs("name: &a shop\nsource: *a\ntarget: { url: *a }\n"),
        [
            "p.yaml:2:9: source: expected a mapping, found the string \"shop\"",
            "p.yaml:3:16: target.url: invalid URL `shop`: expected a URL like mysql://user:password@host:3306",
        ]
    );
}

#[test]
fn relative_state_dir_follows_the_file() {
    let dir = std::env::temp_dir().join(format!("sluice-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.yaml");
    std::fs::write(
        &path,
        "name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://t\" }\ncoordination: { local: { dir: ./st } }\n",
    )
    .unwrap();
    let p = load(&path).unwrap();
    assert_eq!(
        p.coordination,
        Coordination::Local {
            dir: dir.join("./st")
        }
    );
    std::fs::write(
        &path,
        "name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://t\" }\n",
    )
    .unwrap();
    let p = load(&path).unwrap();
    assert_eq!(
        p.coordination,
        Coordination::Local {
            dir: dir.join("state")
        }
    );
    std::fs::write(
        &path,
        "name: shop\nsource: { url: \"mysql://h\", server_id: 1 }\ntarget: { url: \"mysql://t\" }\ncoordination: { local: { dir: /abs/st } }\n",
    )
    .unwrap();
    let p = load(&path).unwrap();
    assert_eq!(
        p.coordination,
        Coordination::Local {
            dir: "/abs/st".into()
        }
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_utf8_and_unreadable_files() {
    let dir = std::env::temp_dir().join(format!("sluice-config-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.yaml");
    // "name: café" in Latin-1 on line 2: é is 0xe9 at byte offset 20.
    std::fs::write(&path, b"# pipeline\nname: caf\xe9\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.errors()[0].kind, ErrorKind::Encoding);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:10: not valid UTF-8: invalid byte 0xe9 at byte offset 20 (save the file as UTF-8)",
            path.display()
        )
    );
    let missing = dir.join("missing.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.errors()[0].kind, ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn byte_order_mark_and_crlf_are_fine() {
    let text = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
    assert_eq!(ok(&text).name, "shop");
    let text = format!(
        "\u{feff}{}",
        with("load: { workers: 0 }\n").replace('\n', "\r\n")
    );
    assert_eq!(
        err(&text),
        "p.yaml:4:18: load.workers: 0 is out of range (must be between 1 and 64)"
    );
}

#[test]
fn columns_and_renames() {
    let p = ok(&with(
        "columns:\n  - table: 'shop\\.users'\n    exclude: [password_hash]\n    rename: { email: email_address }\n  - table: 'shop\\..*'\n    include: [id, name]\n",
    ));
    let users = p.columns.rule("shop", "users").unwrap();
    assert!(!users.keeps("PASSWORD_HASH"));
    assert_eq!(users.target_name("Email"), "email_address");
    assert!(p.columns.keeps("shop", "orders", "id"));
    assert!(!p.columns.keeps("shop", "orders", "total"));
    assert_eq!(p.columns.target_name("crm", "x", "email"), "email");
}

#[test]
fn admin_token_and_alarms() {
    let p = ok(&with(
        "admin: { listen: '127.0.0.1:0', token: '${SRC_PASSWORD}' }\n\
         alarms:\n  lag_threshold: 30s\n  webhooks:\n\
         \x20   - url: https://hooks.example.com/services/T0/B0/s3cr3t\n\
         \x20     headers: { Authorization: 'Bearer ${SRC_PASSWORD}', X-Env: prod }\n\
         \x20   - { url: 'http://127.0.0.1:8080/hook', timeout: 1s }\n",
    ));
    let admin = p.admin.clone().unwrap();
    assert_eq!(admin.token.as_deref(), Some("s3cr3t-pw"));
    assert_eq!(p.alarms.lag_threshold, Duration::from_secs(30));
    assert_eq!(p.alarms.webhooks.len(), 2);
    let hook = &p.alarms.webhooks[0];
    assert_eq!(
        hook.headers,
        [
            ("Authorization".to_string(), "Bearer s3cr3t-pw".to_string()),
            ("X-Env".to_string(), "prod".to_string())
        ]
    );
    assert_eq!(hook.timeout, Duration::from_secs(5));
    assert_eq!(p.alarms.webhooks[1].timeout, Duration::from_secs(1));
    assert_eq!(hook.shown_url(), "https://hooks.example.com/…");
    // Nothing secret in Debug: not the token, header values or hook path.
    let shown = format!("{p:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");

    let p = ok(MINIMAL);
    assert_eq!(p.alarms, Alarms::default());
    assert_eq!(p.alarms.lag_threshold, Duration::from_secs(60));

    let all = errs(&with(
        "admin: { listen: '127.0.0.1:1', token: 'a b', extra: 1 }\n\
         alarms:\n  lag_threshold: 0s\n  webhooks:\n\
         \x20   - url: ftp://h/x\n\
         \x20     headers: { 'Bad Name': x, ok: \"\\x01\" }\n\
         \x20   - { url: 'http://u:${SRC_PASSWORD}@h/x', timeout: 5m, other: 1 }\n\
         \x20   - { headers: { a: 1, A: 2 } }\n",
    ));
    assert_eq!(
        all,
        [
            "p.yaml:4:40: admin.token: use visible ASCII characters only (no spaces)",
            "p.yaml:4:47: admin.extra: unknown key `extra` (expected one of: listen, token)",
            "p.yaml:6:18: alarms.lag_threshold: duration `0s` is out of range (must be between 1s and 7d)",
            "p.yaml:8:12: alarms.webhooks[0].url: invalid URL `ftp://h/…`: unsupported scheme `ftp://` (use http:// or https://)",
            "p.yaml:9:18: alarms.webhooks[0].headers.Bad Name: invalid HTTP header name",
            "p.yaml:9:37: alarms.webhooks[0].headers.ok: header values take printable ASCII only",
            "p.yaml:10:14: alarms.webhooks[1].url: invalid URL `http://h/…`: credentials do not belong in the URL (use `headers`)",
            "p.yaml:10:55: alarms.webhooks[1].timeout: duration `5m` is out of range (must be between 100ms and 1m)",
            "p.yaml:10:59: alarms.webhooks[1].other: unknown key `other` (expected one of: url, headers, timeout)",
            "p.yaml:11:7: alarms.webhooks[2].url: missing required key `url`",
            "p.yaml:11:26: alarms.webhooks[2].headers.A: header given twice",
        ]
    );
    assert!(!all.join("\n").contains("s3cr3t"));
}

/// A directory with empty certificate files, for the TLS keys (they must
/// exist).
struct CertDir(PathBuf);

impl CertDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sluice-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        for name in ["ca.pem", "client.pem", "client.key"] {
            std::fs::write(dir.join("tls").join(name), b"").unwrap();
        }
        CertDir(dir)
    }

    fn parse(&self, text: &str) -> Result<Pipeline, ConfigErrors> {
        parse_with_base(text, "p.yaml", &env, Some(&self.0))
    }

    fn ok(&self, text: &str) -> Pipeline {
        self.parse(text)
            .unwrap_or_else(|e| panic!("expected a valid pipeline, got:\n{e}"))
    }

    fn errs(&self, text: &str) -> Vec<String> {
        match self.parse(text) {
            Ok(p) => panic!("expected errors, got {p:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_for_source_and_target() {
    use sluice_core::{TlsConfig, TlsMode};
    let d = CertDir::new("tls");
    // Default: disabled, no files.
    let p = d.ok(MINIMAL);
    assert_eq!(p.source.tls, TlsConfig::disabled());
    assert_eq!(p.target.tls, TlsConfig::disabled());

    // Relative paths follow the pipeline file; absolute ones stay.
    let ca_abs = d.0.join("tls/ca.pem");
    let p = d.ok(&format!(
        "\
name: shop
source:
  url: \"mysql://repl:${{SRC_PASSWORD}}@db1:3306\"
  server_id: 1
  tls: {{ mode: verify_identity, ca: tls/ca.pem, cert: tls/client.pem, key: tls/client.key }}
target:
  url: \"mysql://root@db2:3306\"
  tls: {{ mode: verify_ca, ca: '{}' }}
",
        ca_abs.display()
    ));
    assert_eq!(p.source.tls.mode, TlsMode::VerifyIdentity);
    assert_eq!(p.source.tls.ca.as_deref(), Some(ca_abs.as_path()));
    let client = p.source.tls.client.as_ref().unwrap();
    assert_eq!(client.cert, d.0.join("tls/client.pem"));
    assert_eq!(client.key, d.0.join("tls/client.key"));
    assert_eq!(p.target.tls.mode, TlsMode::VerifyCa);
    assert_eq!(p.target.tls.ca.as_deref(), Some(ca_abs.as_path()));
    assert!(p.target.tls.client.is_none());

    // `required` needs no files (but may present a client certificate).
    let p = d.ok(&with("coordination: { local: { dir: st } }\n").replace(
        "server_id: 4001 }",
        "server_id: 4001, tls: { mode: required, cert: tls/client.pem, key: tls/client.key } }",
    ));
    assert_eq!(p.source.tls.mode, TlsMode::Required);
    assert!(p.source.tls.ca.is_none() && p.source.tls.client.is_some());
}

#[test]
fn tls_mistakes_are_refused_all_at_once() {
    let d = CertDir::new("tls-bad");
    let text = "\
name: shop
source:
  url: \"mysql://repl:${SRC_PASSWORD}@db1:3306\"
  server_id: 1
  tls:
    mode: verify_identity
    cert: tls/client.pem
target:
  url: \"mysql://root@db2:3306\"
  tls: { mode: verify_all, ca: tls/missing.pem }
";
    let all = d.errs(text);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(
        all[0],
        "p.yaml:7:5: source.tls.key: `cert` needs `key` (the client certificate's private key)"
    );
    assert_eq!(
        all[1],
        "p.yaml:10:16: target.tls.mode: `verify_all` is not one of: disabled, required, verify_ca, verify_identity"
    );
    assert!(
        all[2].starts_with("p.yaml:10:32: target.tls.ca: cannot use `tls/missing.pem` (")
            && all[2].contains("No such file"),
        "{}",
        all[2]
    );

    let one = |text: &str| {
        let mut all = d.errs(text);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    };
    let source_tls = |tls: &str| {
        MINIMAL.replace(
            "server_id: 4001 }",
            &format!("server_id: 4001, tls: {tls} }}"),
        )
    };
    assert_eq!(
        one(&source_tls("{ mode: verify_ca }")),
        "p.yaml:2:94: source.tls.mode: mode `verify_ca` needs `ca`: the CA certificate (PEM) that signed the server's certificate"
    );
    assert_eq!(
        one(&source_tls("{ mode: required, ca: tls/ca.pem }")),
        "p.yaml:2:104: source.tls.ca: mode `required` does not verify the server, so `ca` would be ignored (use `verify_ca` or `verify_identity`, or drop `ca`)"
    );
    assert_eq!(
        one(&source_tls("{ ca: tls/ca.pem }")),
        "p.yaml:2:88: source.tls: certificate files have no effect with mode `disabled` (set `mode` to `required`, `verify_ca` or `verify_identity`)"
    );
    assert_eq!(
        one(&source_tls("{ mode: required, key: tls/client.key }")),
        "p.yaml:2:104: source.tls.cert: `key` needs `cert` (the client certificate)"
    );
    assert_eq!(
        one(&source_tls("{ mode: required, ca: tls }")),
        "p.yaml:2:108: source.tls.ca: cannot use `tls` (".to_string()
            + &d.0.join("tls").display().to_string()
            + "): not a regular file"
    );
    assert_eq!(
        one(&source_tls("{ mode: required, sslmode: x }")),
        "p.yaml:2:104: source.tls.sslmode: unknown key `sslmode` (expected one of: mode, ca, cert, key)"
    );

    // TLS options in the URL itself: one place decides, named without values.
    let e = one(&MINIMAL.replace(
        "@127.0.0.1:13306",
        "@127.0.0.1:13306/?ssl-mode=${SRC_PASSWORD}",
    ));
    assert_eq!(
        e,
        "p.yaml:2:16: source.url: URL option `ssl-mode`: configure TLS in `source.tls` instead of the URL"
    );
    assert_eq!(
        one(&MINIMAL.replace("@127.0.0.1:13307", "@127.0.0.1:13307?require_ssl=true")),
        "p.yaml:3:16: target.url: URL option `require_ssl`: configure TLS in `target.tls` instead of the URL"
    );
}

#[test]
fn etcd_tls_and_credentials() {
    let d = CertDir::new("etcd");
    let env = |name: &str| match name {
        "ETCD_PASSWORD" => Some("etcd-s3cret".to_string()),
        other => super::tests::env(other),
    };
    let text = "\
name: shop
source: { url: \"mysql://h\", server_id: 1 }
target: { url: \"mysql://t\" }
coordination:
  etcd:
    endpoints: [\"https://etcd1:2379\", \"https://etcd2:2379\"]
    tls: { ca: tls/ca.pem, cert: tls/client.pem, key: tls/client.key }
    user: sluice
    password: ${ETCD_PASSWORD}
";
    let p = parse_with_base(text, "p.yaml", &env, Some(&d.0)).unwrap();
    let Coordination::Etcd { tls, auth, .. } = &p.coordination else {
        panic!("{:?}", p.coordination)
    };
    let tls = tls.as_ref().unwrap();
    assert_eq!(tls.ca, d.0.join("tls/ca.pem"));
    assert_eq!(tls.client.as_ref().unwrap().key, d.0.join("tls/client.key"));
    let auth = auth.as_ref().unwrap();
    assert_eq!(auth.user, "sluice");
    assert_eq!(auth.password.expose(), "etcd-s3cret");
    // Never printed.
    let debug = format!("{p:?}");
    assert!(!debug.contains("etcd-s3cret"), "{debug}");

    let base = "\
name: shop
source: { url: \"mysql://h\", server_id: 1 }
target: { url: \"mysql://t\" }
coordination:
  etcd:
";
    let one = |etcd: &str| {
        let all = match parse_with_base(&format!("{base}{etcd}"), "p.yaml", &env, Some(&d.0)) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(!all[0].contains("etcd-s3cret"), "{all:?}");
        all[0].clone()
    };
    assert_eq!(
        one("    endpoints: [\"https://e:2379\"]\n"),
        "p.yaml:6:17: coordination.etcd.endpoints[0]: an https:// endpoint needs `coordination.etcd.tls` with `ca` (the CA certificate that signed etcd's)"
    );
    assert_eq!(
        one("    endpoints: [\"http://e:2379\"]\n    tls: { ca: tls/ca.pem }\n"),
        "p.yaml:7:5: coordination.etcd.tls: TLS needs https:// endpoints (the endpoints use http://)"
    );
    assert_eq!(
        one("    endpoints: [\"https://e:2379\", \"http://f:2379\"]\n    tls: { ca: tls/ca.pem }\n"),
        "p.yaml:6:35: coordination.etcd.endpoints[1]: all endpoints must use the same scheme (http:// or https://)"
    );
    assert_eq!(
        one("    endpoints: [\"https://e:2379\"]\n    tls: { cert: tls/client.pem, key: tls/client.key }\n"),
        "p.yaml:7:5: coordination.etcd.tls.ca: missing required key `ca`"
    );
    assert_eq!(
        one("    endpoints: [\"http://e:2379\"]\n    user: sluice\n"),
        "p.yaml:7:5: coordination.etcd.password: missing `password`, required with `user` (e.g. password: ${ETCD_PASSWORD})"
    );
    assert_eq!(
        one("    endpoints: [\"http://e:2379\"]\n    password: ${ETCD_PASSWORD}\n"),
        "p.yaml:7:5: coordination.etcd.password: `password` needs `user`"
    );
    assert_eq!(
        one("    endpoints: [\"http://e:2379\"]\n    user: sluice\n    password: ${ETCD_PASSWORD}x\n    pasword: 1\n"),
        "p.yaml:9:5: coordination.etcd.pasword: unknown key `pasword` (did you mean `password`?)"
    );
}

#[test]
fn stages_section_is_checked() {
    let errs_text = |text: &str| errs(text).join("\n");
    let local = "name: p\nsource: { url: \"mysql://r@h\", server_id: 1 }\ntarget: { url: \"mysql://r@h\" }\n";
    let errs = errs_text(&format!("{local}stages: {{ listen: \"127.0.0.1:0\" }}\n"));
    assert!(
        errs.contains("distributed stages need `coordination.etcd`"),
        "{errs}"
    );
    let etcd = format!("{local}coordination: {{ etcd: {{ endpoints: [\"http://e:2379\"] }} }}\n");
    let errs = errs_text(
        &format!("{etcd}node: {{ stages: [transform] }}\nstages: {{ listen: \"0.0.0.0:7070\", advertise: ftp://x, window: 0 }}\n"));
    assert!(errs.contains("stages.advertise"), "{errs}");
    assert!(errs.contains("stages.window"), "{errs}");
    let errs = errs_text(&format!("{etcd}node: {{ stages: [load] }}\n"));
    assert!(errs.contains("needs the `stages` section"), "{errs}");
    let errs = errs_text(&format!("{etcd}stages: {{ listen: \"0.0.0.0:7070\" }}\n"));
    assert!(errs.contains("needs `stages.advertise`"), "{errs}");
}

#[test]
fn snapshot_section_defaults_and_values() {
    let p = ok(MINIMAL);
    assert_eq!(p.snapshot, Snapshot::default());
    assert_eq!(p.snapshot.mode, SnapshotMode::Never);
    let p = ok(&with(
        "snapshot: { mode: initial, parallel: 8, chunk_rows: 5000, create_tables: false, on_nonempty: merge }\n",
    ));
    assert_eq!(
        p.snapshot,
        Snapshot {
            mode: SnapshotMode::Initial,
            parallel: 8,
            chunk_rows: 5000,
            create_tables: false,
            on_nonempty: OnNonempty::Merge,
        }
    );
}

#[test]
fn snapshot_refuses_a_start_other_than_latest_but_not_stages() {
    let text = "\
name: shop
source: { url: \"mysql://repl@127.0.0.1:13306\", server_id: 4001, start: { file: mysql-bin.000003 } }
target: { url: \"mysql://root@127.0.0.1:13307\" }
snapshot: { mode: initial }
";
    let e = err(text);
    assert!(e.starts_with("p.yaml:4:1"), "{e}");
    assert!(e.contains("decides where streaming starts"), "{e}");
    assert!(e.contains("mysql-bin.000003:4"), "{e}");
    // `never` with any start is fine.
    ok(&text.replace("mode: initial", "mode: never"));
    // Chunks are tasks on the stage board like batches.
    ok(&with(
        "coordination: { etcd: { endpoints: [\"http://127.0.0.1:2379\"] } }\n\
         stages: { listen: \"127.0.0.1:0\" }\n\
         snapshot: { mode: initial }\n",
    ));
    let all = errs(&with(
        "snapshot: { mode: sometimes, parallel: 0, chunk_rows: 5, create_tables: maybe, on_nonempty: drop, extra: 1 }\n",
    ));
    assert_eq!(all.len(), 6, "{all:#?}");
}
