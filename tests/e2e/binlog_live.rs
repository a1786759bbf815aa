//! The fake replica against a real MariaDB: type fidelity checked against the
//! server's own SELECT, GTID and file starts, rotation, schema change, and
//! clear refusals.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mysql_async::prelude::Queryable;
use sluice_binlog::events::EventKind;
use sluice_binlog::stream::{ReplicaConfig, ReplicaStream, StartAt};
use sluice_binlog::{BinlogError, Event};
use sluice_core::{GtidSet, RowChange};
use sluice_testkit::MariaDb;

type TestResult = Result<(), Box<dyn std::error::Error>>;

static NEXT_SERVER_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(9001);

fn server_id() -> u32 {
    NEXT_SERVER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Reads events until `done` says so, or fails after `deadline`.
async fn read_until(
    stream: &mut ReplicaStream,
    deadline: Duration,
    mut done: impl FnMut(&Event) -> bool,
) -> Result<Vec<Event>, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        let left = deadline
            .checked_sub(start.elapsed())
            .ok_or("deadline passed before the expected event")?;
        let ev = tokio::time::timeout(left, stream.next())
            .await
            .map_err(|_| "deadline passed before the expected event")?
            .ok_or("stream ended")??;
        let stop = done(&ev);
        events.push(ev);
        if stop {
            return Ok(events);
        }
    }
}

fn is_marker(ev: &Event) -> bool {
    matches!(&ev.kind, EventKind::Ddl { sql, .. } if sql.contains("marker_done"))
}

fn changes(events: &[Event]) -> Vec<RowChange> {
    let mut out = Vec::new();
    for ev in events {
        if let EventKind::Rows(r) = &ev.kind {
            r.decode(&mut out).expect("rows decode");
        }
    }
    out
}

fn row_json(c: &RowChange, image: &sluice_core::Row) -> serde_json::Value {
    let mut s = String::new();
    sluice_binlog::output::push_row(&mut s, &c.table, image);
    serde_json::from_str(&s).expect("valid JSON")
}

/// How to read a column back with SELECT so it compares to our encoding.
#[derive(Clone, Copy, PartialEq)]
enum Fam {
    /// CAST(col AS CHAR) equals our string/number text.
    Text,
    /// Compared as f64 (FLOAT within f32 precision).
    Float,
    /// HEX(col) equals our base64 bytes (binary strings and GEOMETRY).
    Bytes,
    /// CAST(col AS UNSIGNED): BIT.
    Bits,
    /// Integer compare (YEAR: SELECT says `0000`, the encoding says 0).
    Int,
}

struct Table {
    name: &'static str,
    /// (column, SQL type, family)
    cols: &'static [(&'static str, &'static str, Fam)],
    /// Rows as SQL value lists (id first).
    rows: &'static [&'static str],
}

const MATRIX: &[Table] = &[
    Table {
        name: "ints",
        cols: &[
            ("ti", "TINYINT", Fam::Text),
            ("tu", "TINYINT UNSIGNED", Fam::Text),
            ("si", "SMALLINT", Fam::Text),
            ("su", "SMALLINT UNSIGNED", Fam::Text),
            ("mi", "MEDIUMINT", Fam::Text),
            ("mu", "MEDIUMINT UNSIGNED", Fam::Text),
            ("ii", "INT", Fam::Text),
            ("iu", "INT UNSIGNED", Fam::Text),
            ("bi", "BIGINT", Fam::Text),
            ("bu", "BIGINT UNSIGNED", Fam::Text),
            ("bo", "BOOLEAN", Fam::Text),
        ],
        rows: &[
            "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, TRUE)",
            "(2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, FALSE)",
            "(3, -1, 128, -1, 32768, -1, 8388608, -1, 2147483648, -1, 9223372036854775808, NULL)",
            "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "decimals",
        cols: &[
            ("d21", "DECIMAL(2,1)", Fam::Text),
            ("d2010", "DECIMAL(20,10)", Fam::Text),
            ("d4030", "DECIMAL(40,30)", Fam::Text),
            ("d230", "DECIMAL(23,0)", Fam::Text),
            ("d55", "DECIMAL(5,5)", Fam::Text),
            ("d650", "DECIMAL(65,0)", Fam::Text),
            ("d6530", "DECIMAL(65,30)", Fam::Text),
            ("du", "DECIMAL(10,4) UNSIGNED", Fam::Text),
        ],
        rows: &[
            "(1, 4.2, 9000000123.123456, -51.123456789098765432123456789, 12345678912345678912345, 0.12345, 99999999999999999999999999999999999999999999999999999999999999999, 12345678901234567890123456789012345.123456789012345678901234567890, 123456.7890)",
            "(2, -9.9, -9000000123.0000012345, 0, -1234567891234567891234, -0.12345, -1, -0.000000000000000000000000000001, 0)",
            "(3, 0, 0, 0.000000000000000000000000000001, 0, 0, 0, 0, 0.0001)",
            "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "floats",
        cols: &[
            ("f", "FLOAT", Fam::Float),
            ("d", "DOUBLE", Fam::Float),
            ("f105", "FLOAT(10,5)", Fam::Float),
        ],
        rows: &[
            "(1, 42.42, -8.9, 1234.12345)",
            "(2, -0.3, 1234567890.0123456789, 0)",
            "(3, 0, 8589934592.123, -1.5)",
            "(4, 3.4e38, 1.7976931348623157e308, NULL)",
            "(5, NULL, -0.00005, NULL)",
        ],
    },
    Table {
        name: "temporals",
        cols: &[
            ("d", "DATE", Fam::Text),
            ("dt0", "DATETIME", Fam::Text),
            ("dt3", "DATETIME(3)", Fam::Text),
            ("dt6", "DATETIME(6)", Fam::Text),
            ("ts0", "TIMESTAMP NULL", Fam::Text),
            ("ts6", "TIMESTAMP(6) NULL", Fam::Text),
            ("t0", "TIME", Fam::Text),
            ("t3", "TIME(3)", Fam::Text),
            ("t6", "TIME(6)", Fam::Text),
            ("y", "YEAR", Fam::Int),
        ],
        rows: &[
            "(1, '1000-01-01', '1000-01-01 00:00:00', '2024-06-15 12:34:56.789', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', '838:59:59', '-01:02:03.5', '-838:59:59.000000', 1901)",
            "(2, '9999-12-31', '9999-12-31 23:59:59', '1989-03-21 01:02:03.777', '2022-01-02 03:04:05.012345', '2024-06-15 12:34:56', '1984-12-03 12:33:07.1', '-838:59:59', '12:33:07.123', '-00:00:00.000001', 2155)",
            "(3, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '2015-00-21 10:00:00.5', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '00:00:00', '-00:00:00.001', '23:59:59.999999', 0)",
            "(4, '2015-05-00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "strings",
        cols: &[
            ("c12", "CHAR(12) CHARACTER SET latin1", Fam::Text),
            ("v1024", "VARCHAR(1024) CHARACTER SET latin1", Fam::Text),
            ("v4", "VARCHAR(255) CHARACTER SET utf8mb4", Fam::Text),
            ("c255", "CHAR(255) CHARACTER SET utf8mb4", Fam::Text),
            ("v3", "VARCHAR(20) CHARACTER SET utf8mb3", Fam::Text),
            ("ucs", "VARCHAR(10) CHARACTER SET ucs2", Fam::Text),
            ("u16", "VARCHAR(10) CHARACTER SET utf16", Fam::Text),
            ("u32", "VARCHAR(10) CHARACTER SET utf32", Fam::Text),
            ("gbk", "VARCHAR(20) CHARACTER SET gbk", Fam::Text),
            ("big5", "VARCHAR(20) CHARACTER SET big5", Fam::Text),
            ("sjis", "VARCHAR(20) CHARACTER SET sjis", Fam::Text),
            ("tt", "TINYTEXT", Fam::Text),
            ("tx", "TEXT", Fam::Text),
            ("mt", "MEDIUMTEXT", Fam::Text),
            ("lt", "LONGTEXT", Fam::Text),
        ],
        rows: &[
            "(1, 'é', REPEAT('-', 1024), '123abc中文😀', 'a          ', 'ünï', 'héllo', '𠜎x', '😀', '123abc中文', '圖形碼', 'ｱｲｳ', 'tiny', 'World', REPEAT('m', 70000), REPEAT('🦀', 5000))",
            "(2, '€Ÿ', '', '  a    b   ', '           ', '', '∆˚ø¨', '', '', '乪', '', '', '', '', '', '')",
            "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "binaries",
        cols: &[
            ("b4", "BINARY(4)", Fam::Bytes),
            ("b16", "BINARY(16)", Fam::Bytes),
            ("vb", "VARBINARY(8)", Fam::Bytes),
            ("tb", "TINYBLOB", Fam::Bytes),
            ("bl", "BLOB", Fam::Bytes),
            ("mb", "MEDIUMBLOB", Fam::Bytes),
            ("lb", "LONGBLOB", Fam::Bytes),
        ],
        rows: &[
            "(1, X'DEADBEEF', UNHEX(MD5('glob')), X'ff010000', X'00', X'01FF', REPEAT(X'00FF', 40000), X'')",
            "(2, 'a\\0\\0', 'a         ', X'', X'', '', '', 'x')",
            "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "enums",
        cols: &[
            ("e", "ENUM('a','ba','c')", Fam::Text),
            ("e2", "ENUM('a,b','c''d','plain')", Fam::Text),
            ("s", "SET('a','b','c')", Fam::Text),
            ("s64", "SET('m0','m1','m2','m3','m4','m5','m6','m7','m8','m9','m10','m11','m12','m13','m14','m15','m16','m17','m18','m19','m20','m21','m22','m23','m24','m25','m26','m27','m28','m29','m30','m31','m32','m33','m34','m35','m36','m37','m38','m39','m40','m41','m42','m43','m44','m45','m46','m47','m48','m49','m50','m51','m52','m53','m54','m55','m56','m57','m58','m59','m60','m61','m62','m63')", Fam::Text),
            ("b1", "BIT(1)", Fam::Bits),
            ("b10", "BIT(10)", Fam::Bits),
            ("b64", "BIT(64)", Fam::Bits),
        ],
        rows: &[
            "(1, 'ba', 'c''d', 'a,c', 'm0,m63', b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111')",
            "(2, 'a', 'a,b', '', 'm17', b'0', b'0', b'0')",
            "(3, '', 'plain', 'a,b,c', '', NULL, NULL, 409832983)",
            "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
    Table {
        name: "docs",
        cols: &[
            ("j", "JSON", Fam::Text),
            ("g", "GEOMETRY", Fam::Bytes),
            ("pt", "POINT", Fam::Bytes),
            ("vc", "VARCHAR(300) COMPRESSED CHARACTER SET latin1", Fam::Text),
            ("tc", "TEXT COMPRESSED", Fam::Text),
        ],
        rows: &[
            "(1, '{\"a\": 1, \"b\": [1, 2.5, \"x\"], \"c\": null}', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))'), POINT(1, 2), REPEAT('squash-', 30), REPEAT('zipped text ', 500))",
            "(2, '[]', ST_GeomFromText('POINT(40.717957 -73.736501)'), POINT(-1.5, 0), 'café latin one', 'short')",
            "(3, NULL, NULL, NULL, NULL, NULL)",
        ],
    },
];

#[tokio::test]
async fn type_matrix_matches_select() -> TestResult {
    let source = MariaDb::source().await?;
    let mut conn = source.conn().await?;
    conn.query_drop("SET SESSION sql_mode = ''").await?;
    conn.query_drop("CREATE DATABASE tm").await?;
    let mut cfg_start = None;
    for t in MATRIX {
        let cols: Vec<String> = t
            .cols
            .iter()
            .map(|(n, ty, _)| format!("`{n}` {ty}"))
            .collect();
        conn.query_drop(format!(
            "CREATE TABLE tm.{} (id INT PRIMARY KEY, {}) CHARACTER SET utf8mb4",
            t.name,
            cols.join(", ")
        ))
        .await?;
    }
    // Start streaming after the DDL, before the rows.
    let status: Option<(String, u64)> = source
        .query::<(String, u64, String, String)>("SHOW MASTER STATUS")
        .await?
        .into_iter()
        .next()
        .map(|(f, p, _, _)| (f, p));
    if let Some((file, pos)) = status {
        cfg_start = Some(StartAt::File { file, pos });
    }
    for t in MATRIX {
        for row in t.rows {
            conn.query_drop(format!("INSERT INTO tm.{} VALUES {row}", t.name))
                .await?;
        }
    }
    conn.query_drop("CREATE TABLE tm.marker_done (id INT)")
        .await?;

    let cfg = ReplicaConfig::new(
        source.repl_url(),
        server_id(),
        cfg_start.ok_or("no status")?,
    );
    let mut stream = ReplicaStream::connect(&cfg).await?;
    let events = read_until(&mut stream, Duration::from_secs(30), is_marker).await?;
    let changes = changes(&events);

    for t in MATRIX {
        let select: Vec<String> = std::iter::once("CAST(id AS CHAR)".to_string())
            .chain(t.cols.iter().map(|(n, _, fam)| match fam {
                Fam::Text | Fam::Float | Fam::Int => format!("CAST(`{n}` AS CHAR)"),
                Fam::Bytes => format!("HEX(`{n}`)"),
                Fam::Bits => format!("CAST(`{n}` AS UNSIGNED)"),
            }))
            .collect();
        let rows: Vec<mysql_async::Row> = conn
            .query(format!(
                "SELECT {} FROM tm.{} ORDER BY id",
                select.join(", "),
                t.name
            ))
            .await?;
        let decoded: BTreeMap<i64, serde_json::Value> = changes
            .iter()
            .filter(|c| c.table.table == t.name)
            .map(|c| {
                let after = row_json(c, c.after.as_ref().expect("insert has an after image"));
                (after["id"].as_i64().expect("id"), after)
            })
            .collect();
        assert_eq!(
            decoded.len(),
            rows.len(),
            "table {}: rows decoded vs selected",
            t.name
        );
        for row in rows {
            let id: i64 = row.get::<String, _>(0).ok_or("id")?.parse()?;
            let got = &decoded[&id];
            for (i, (name, _, fam)) in t.cols.iter().enumerate() {
                let want: Option<String> = row.get::<Option<String>, _>(i + 1).flatten();
                let have = &got[*name];
                let ctx = format!(
                    "tm.{}.{name} id={id}: decoded {have}, SELECT {want:?}",
                    t.name
                );
                match (want, fam) {
                    (None, _) => assert!(have.is_null(), "{ctx}"),
                    (Some(w), Fam::Text) => {
                        let h = match have {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        assert_eq!(h, w, "{ctx}");
                    }
                    (Some(w), Fam::Float) => {
                        let w: f64 = w.parse()?;
                        let h = have.as_f64().ok_or_else(|| ctx.clone())?;
                        let tol = if t.cols[i].1.starts_with("FLOAT") {
                            1e-6
                        } else {
                            1e-15
                        };
                        assert!((h - w).abs() <= tol * w.abs().max(1.0), "{ctx}");
                    }
                    (Some(w), Fam::Bytes) => {
                        let b64 = have["base64"].as_str().ok_or_else(|| ctx.clone())?;
                        let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
                        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
                        assert_eq!(hex, w, "{ctx}");
                    }
                    (Some(w), Fam::Bits) => assert_eq!(have.to_string(), w, "{ctx}"),
                    (Some(w), Fam::Int) => {
                        assert_eq!(have.as_i64(), Some(w.parse::<i64>()?), "{ctx}")
                    }
                }
            }
        }
    }
    stream.close().await;
    Ok(())
}

async fn master_status(source: &MariaDb) -> Result<(String, u64), Box<dyn std::error::Error>> {
    let rows: Vec<(String, u64, String, String)> = source.query("SHOW MASTER STATUS").await?;
    let (f, p, _, _) = rows.into_iter().next().ok_or("no master status")?;
    Ok((f, p))
}

fn inserted_ids(events: &[Event]) -> Vec<i64> {
    changes(events)
        .iter()
        .filter_map(|c| {
            c.after
                .as_ref()
                .map(|a| row_json(c, a)["id"].as_i64().unwrap_or(-1))
        })
        .collect()
}

#[tokio::test]
async fn starts_from_gtid_and_from_file_offset() -> TestResult {
    let source = MariaDb::source().await?;
    source
        .exec(
            "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY); INSERT INTO s.t VALUES (1)",
        )
        .await?;
    let gtid: Vec<String> = source.query("SELECT @@gtid_binlog_pos").await?;
    let (file, pos) = master_status(&source).await?;
    source
        .exec("INSERT INTO s.t VALUES (2); INSERT INTO s.t VALUES (3); CREATE TABLE s.marker_done (id INT)")
        .await?;

    // From the GTID position after row 1: rows 2 and 3 only.
    let set: GtidSet = gtid[0].parse()?;
    let cfg = ReplicaConfig::new(source.repl_url(), server_id(), StartAt::Gtid(set.clone()));
    let mut stream = ReplicaStream::connect(&cfg).await?;
    let events = read_until(&mut stream, Duration::from_secs(20), is_marker).await?;
    assert_eq!(inserted_ids(&events), vec![2, 3]);
    // Positions advance with each transaction's GTID.
    let last_commit = events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::Commit { .. }))
        .ok_or("no commit")?;
    assert_eq!(
        stream.position_after(last_commit).file,
        file,
        "same file as SHOW MASTER STATUS"
    );
    let begins: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Begin { .. }))
        .collect();
    assert_eq!(begins.len(), 2);
    stream.close().await;

    // From file+offset: the same two rows.
    let cfg = ReplicaConfig::new(source.repl_url(), server_id(), StartAt::File { file, pos });
    let mut stream = ReplicaStream::connect(&cfg).await?;
    assert!(
        stream.start_position().gtid.is_some(),
        "MariaDB maps file:pos to a GTID position"
    );
    let events = read_until(&mut stream, Duration::from_secs(20), is_marker).await?;
    assert_eq!(inserted_ids(&events), vec![2, 3]);
    stream.close().await;
    Ok(())
}

/// `gtid_resolve` places a MariaDB GTID position at the file and offset of
/// the next transaction: where `SHOW MASTER STATUS` stood when that GTID
/// was the last one, also across a rotation (then in the newer file, where
/// the next transaction is) and at the very end of the binlog; a position
/// the source never reached is not placed at all.
#[tokio::test]
async fn gtid_positions_resolve_to_the_next_transaction() -> TestResult {
    let source = MariaDb::source().await?;
    source
        .exec("CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY)")
        .await?;
    // (GTID position, where the next transaction starts)
    let mut marks: Vec<(String, (String, u64))> = Vec::new();
    for id in 0..3 {
        source
            .exec(&format!("INSERT INTO g.t VALUES ({id})"))
            .await?;
        if id == 1 {
            source.exec("FLUSH BINARY LOGS").await?;
        }
        let gtid: Vec<String> = source.query("SELECT @@gtid_binlog_pos").await?;
        marks.push((gtid[0].clone(), master_status(&source).await?));
    }
    assert_ne!(marks[0].1 .0, marks[1].1 .0, "the rotation opened a file");
    let tls = sluice_core::TlsConfig::disabled();
    let resolve = |gtid: String| {
        let url = source.repl_url();
        let tls = tls.clone();
        async move {
            let want: sluice_core::MariadbGtidSet = gtid.parse().expect("a MariaDB GTID position");
            sluice_binlog::gtid_resolve::resolve_on_source(
                &url,
                &tls,
                Duration::from_secs(10),
                &want,
            )
            .await
        }
    };
    for (gtid, (file, offset)) in &marks {
        let found = resolve(gtid.clone())
            .await?
            .ok_or_else(|| format!("{gtid} was not placed"))?;
        assert_eq!((&found.file, found.offset), (file, *offset), "{gtid}");
        assert_eq!(
            found.gtid.map(|g| g.to_string()).as_deref(),
            Some(gtid.as_str())
        );
    }
    let unreached = marks[2]
        .0
        .rsplit_once('-')
        .map(|(head, _)| format!("{head}-999999"));
    let unreached = unreached.ok_or("no sequence number")?;
    assert!(resolve(unreached).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn follows_flush_binary_logs_and_alter_table() -> TestResult {
    let source = MariaDb::source().await?;
    source
        .exec("CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, a VARCHAR(10))")
        .await?;
    let (file, pos) = master_status(&source).await?;
    let cfg = ReplicaConfig::new(
        source.repl_url(),
        server_id(),
        StartAt::File {
            file: file.clone(),
            pos,
        },
    );
    let mut stream = ReplicaStream::connect(&cfg).await?;
    source
        .exec(
            "INSERT INTO s.t VALUES (1, 'one');
             FLUSH BINARY LOGS;
             INSERT INTO s.t VALUES (2, 'two');
             ALTER TABLE s.t ADD COLUMN b INT UNSIGNED DEFAULT 7, MODIFY a VARCHAR(20);
             INSERT INTO s.t VALUES (3, 'three', 4294967295);
             ALTER TABLE s.t DROP COLUMN a;
             INSERT INTO s.t VALUES (4, 0);
             CREATE TABLE s.marker_done (id INT)",
        )
        .await?;
    let events = read_until(&mut stream, Duration::from_secs(20), is_marker).await?;
    let rotate = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Rotate { next_file, .. } => Some(next_file.clone()),
            _ => None,
        })
        .ok_or("no rotate")?;
    assert_ne!(rotate, file);
    let ch = changes(&events);
    let rows: Vec<serde_json::Value> = ch
        .iter()
        .map(|c| row_json(c, c.after.as_ref().expect("after")))
        .collect();
    assert_eq!(rows[0], serde_json::json!({"id": 1, "a": "one"}));
    assert_eq!(rows[1], serde_json::json!({"id": 2, "a": "two"}));
    assert_eq!(
        rows[2],
        serde_json::json!({"id": 3, "a": "three", "b": 4294967295u64})
    );
    assert_eq!(rows[3], serde_json::json!({"id": 4, "b": 0}));
    // Positions after the rotation are in the new file.
    let last = events.last().ok_or("no events")?;
    assert_eq!(&*last.file, rotate.as_str());
    stream.close().await;
    Ok(())
}

#[tokio::test]
async fn purged_start_and_bad_config_are_refused_clearly() -> TestResult {
    let source = MariaDb::source().await?;
    source
        .exec("CREATE DATABASE s; CREATE TABLE s.t (id INT); INSERT INTO s.t VALUES (1); FLUSH BINARY LOGS; INSERT INTO s.t VALUES (2); FLUSH BINARY LOGS")
        .await?;
    // MariaDB keeps a file until its binlog checkpoint has moved past it,
    // so purging may take a moment: retry until the first file is gone.
    sluice_testkit::wait_until_async(
        "mysql-bin.000001 to be purged",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            source
                .exec("PURGE BINARY LOGS TO 'mysql-bin.000002'")
                .await
                .ok()?;
            let logs: Vec<(String, u64)> = source
                .query::<mysql_async::Row>("SHOW BINARY LOGS")
                .await
                .ok()?
                .into_iter()
                .map(|r| (r.get(0).unwrap_or_default(), r.get(1).unwrap_or(0)))
                .collect();
            (logs.first()?.0 == "mysql-bin.000002").then_some(())
        },
    )
    .await?;

    let cfg = ReplicaConfig::new(
        source.repl_url(),
        server_id(),
        StartAt::File {
            file: "mysql-bin.000001".into(),
            pos: 4,
        },
    );
    let err = ReplicaStream::connect(&cfg)
        .await
        .err()
        .ok_or("purged file accepted")?;
    assert!(matches!(err, BinlogError::Purged(_)), "{err}");
    assert!(
        err.to_string()
            .contains("oldest available is mysql-bin.000002:4"),
        "{err}"
    );

    let cfg = ReplicaConfig::new(
        source.repl_url(),
        server_id(),
        StartAt::Gtid("0-1-0".parse()?),
    );
    let err = ReplicaStream::connect(&cfg)
        .await
        .err()
        .ok_or("purged GTID accepted")?;
    assert!(matches!(err, BinlogError::Purged(_)), "{err}");
    assert!(
        err.to_string().contains("oldest available position is"),
        "{err}"
    );

    // The source's own server_id.
    let cfg = ReplicaConfig::new(source.repl_url(), source.server_id(), StartAt::Latest);
    let err = ReplicaStream::connect(&cfg)
        .await
        .err()
        .ok_or("own server_id accepted")?;
    assert!(err.to_string().contains("source's own server_id"), "{err}");

    // A user without replication privileges.
    source
        .exec("CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'weak'@'127.0.0.1'")
        .await?;
    let cfg = ReplicaConfig::new(source.url_for("weak", "pw"), server_id(), StartAt::Latest);
    let err = ReplicaStream::connect(&cfg)
        .await
        .err()
        .ok_or("weak user accepted")?;
    assert!(err.to_string().contains("REPLICATION"), "{err}");

    // A server that is not logging rows.
    source
        .exec("SET GLOBAL binlog_format = 'STATEMENT'")
        .await?;
    let cfg = ReplicaConfig::new(source.repl_url(), server_id(), StartAt::Latest);
    let err = ReplicaStream::connect(&cfg)
        .await
        .err()
        .ok_or("STATEMENT accepted")?;
    assert!(
        err.to_string().contains("binlog_format is STATEMENT"),
        "{err}"
    );
    Ok(())
}

/// A server with the binlog off is refused before any dump.
#[tokio::test]
async fn binlog_disabled_is_refused() -> TestResult {
    let target = MariaDb::target().await?;
    let cfg = ReplicaConfig::new(target.repl_url(), server_id(), StartAt::Latest);
    let err = ReplicaStream::connect(&cfg).await.err().ok_or("accepted")?;
    assert!(err.to_string().contains("log_bin=OFF"), "{err}");
    Ok(())
}

/// `sluice binlog tail` prints live changes as JSON Lines and exits 0 on
/// SIGTERM.
#[tokio::test]
async fn tail_streams_json_lines() -> TestResult {
    use tokio::io::AsyncBufReadExt;

    let source = MariaDb::source().await?;
    source
        .exec("CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(10))")
        .await?;
    let gtid: Vec<String> = source.query("SELECT @@gtid_binlog_pos").await?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "binlog",
            "tail",
            "--source",
            &source.repl_url(),
            "--gtid",
            &gtid[0],
        ])
        .args(["--server-id", &server_id().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    source.exec("INSERT INTO s.t VALUES (1, 'tailed')").await?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            if v["kind"] == "insert" {
                return Some(v);
            }
        }
        None
    })
    .await?
    .ok_or("no insert line")?;
    assert_eq!(found["after"], serde_json::json!({"id": 1, "v": "tailed"}));
    assert_eq!(found["schema"], "s");
    assert!(found["gtid"].as_str().unwrap_or_default().starts_with("0-"));
    let pid = child.id().ok_or("pid")? as i32;
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success(), "tail exits 0 on SIGTERM: {status}");
    Ok(())
}

/// A second replica with a server_id already in use is refused before it
/// can cut the first one off.
#[tokio::test]
async fn server_id_in_use_is_refused() -> TestResult {
    let source = MariaDb::source().await?;
    let id = server_id();
    let cfg = ReplicaConfig::new(source.repl_url(), id, StartAt::Latest);
    let mut first = ReplicaStream::connect(&cfg).await?;
    // The dump registers once the stream is being read.
    source.exec("CREATE DATABASE registered").await?;
    read_until(&mut first, Duration::from_secs(20), |e| {
        matches!(e.kind, EventKind::Ddl { .. })
    })
    .await?;
    let err = sluice_testkit::wait_until_async(
        "the second replica to be refused",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { ReplicaStream::connect(&cfg).await.err() },
    )
    .await?;
    assert!(
        err.to_string()
            .contains(&format!("server_id {id} is already used")),
        "{err}"
    );
    first.close().await;
    Ok(())
}
