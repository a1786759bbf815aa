//! Fidelity on real data (issue 20): values the source server holds reach
//! the decoder and the target exactly.
//!
//! Each test here started as a reproduction that failed before its fix:
//! optional-metadata rules per server flavour, ENUM/SET labels in their
//! column's charset, values a non-strict source holds that a strict target
//! session refuses, deletes on composite keys with non-UTF-8 strings, the
//! server's own charset mappings, MariaDB's UUID/INET types; plus the
//! seeded property test that looks for the next one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_binlog::charset::{decode_str, maps, Charset};
use sluice_testkit::MariaDb;

use crate::pipeline::{start_of_binlog, write_config, Coord, Sluice};
use crate::workload::{compare, CompareOpts};

// ---------------------------------------------------------------------------
// Harness: a source, a target and `sluice run` between them
// ---------------------------------------------------------------------------

/// A source and a target with `sluice run` replicating everything the
/// source's binlog holds, from its first event.
struct Replication {
    source: MariaDb,
    target: MariaDb,
    sluice: Sluice,
    _dir: tempfile::TempDir,
}

impl Replication {
    /// Runs `setup` on the source, then starts sluice at the start of its
    /// binlog (so the DDL in `setup` is replicated too).
    async fn start(name: &str, setup: &str) -> Replication {
        Self::start_with(name, setup, "").await
    }

    /// As [`Self::start`], with `extra` pipeline settings.
    async fn start_with(name: &str, setup: &str, extra: &str) -> Replication {
        let (source, target) =
            tokio::try_join!(MariaDb::source(), MariaDb::target()).expect("servers");
        if !setup.is_empty() {
            source.exec(setup).await.expect("setup on the source");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let start = start_of_binlog(&source).await;
        let config = write_config(
            dir.path(),
            name,
            &source,
            &target,
            Coord::Local(&state),
            &start,
            &format!("batch: {{ max_delay: 5ms }}\n{extra}"),
        );
        let sluice = Sluice::start(&config);
        Replication {
            source,
            target,
            sluice,
            _dir: dir,
        }
    }

    /// Waits until every table of `schema` on the target equals the
    /// source's as text (`workload::compare`) and by `CHECKSUM TABLE`
    /// (bytes; value by value for tables with VIRTUAL columns, see
    /// [`Self::differences`]), or fails with both reports and the sluice log.
    async fn converge(&self, schema: &str) {
        let timeout = Duration::from_secs(60);
        if let Some(last) = self.wait_converged(schema, timeout).await {
            panic!(
                "target never matched the source within {timeout:?}:\n{last}\nsluice log:\n{}",
                self.sluice.log_tail()
            );
        }
    }

    /// Polls [`Self::differences`] (every 100 ms) until there are none;
    /// the last report if that does not happen within `timeout`.
    async fn wait_converged(&self, schema: &str, timeout: Duration) -> Option<String> {
        let last = std::sync::Mutex::new(String::new());
        let converged = sluice_testkit::wait_until_async(
            "the target to match the source",
            timeout,
            Duration::from_millis(100),
            || async {
                let report = match self.differences(schema).await {
                    Ok(None) => return Some(()),
                    Ok(Some(report)) => report,
                    Err(e) => format!("compare failed: {e:#}"),
                };
                *last.lock().expect("report") = report;
                None
            },
        )
        .await;
        converged.err().map(|_| last.into_inner().expect("report"))
    }

    /// `None` when source and target agree on `schema`, else a report.
    async fn differences(&self, schema: &str) -> anyhow::Result<Option<String>> {
        let mut s = self.source.conn().await?;
        let mut t = self.target.conn().await?;
        let report = compare(&mut s, schema, &mut t, schema, &CompareOpts::default()).await?;
        if !report.is_same() {
            return Ok(Some(report.to_string()));
        }
        let tables: Vec<String> = s
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
                (schema,),
            )
            .await?;
        for table in tables {
            // CHECKSUM TABLE reads a VIRTUAL column's null bit from whatever
            // the server's row buffer last held (InnoDB does not store it),
            // so it differs between servers holding the same rows. Such
            // tables are compared value by value, bytes exact.
            let virtual_columns: Option<String> = s
                .exec_first(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA LIKE '%VIRTUAL%' LIMIT 1",
                    (schema, &table),
                )
                .await?;
            if virtual_columns.is_some() {
                let column = byte_difference(&mut s, &mut t, schema, &table).await?;
                if !column.is_empty() {
                    return Ok(Some(format!(
                        "{schema}.{table}: same text, different bytes{column}"
                    )));
                }
                continue;
            }
            let sql = format!("CHECKSUM TABLE `{schema}`.`{table}`");
            let a: Vec<(String, Option<u64>)> = s.query(&sql).await?;
            let b: Vec<(String, Option<u64>)> = t.query(&sql).await?;
            if a[0].1 != b[0].1 {
                let column = byte_difference(&mut s, &mut t, schema, &table).await?;
                return Ok(Some(format!(
                    "{schema}.{table}: same text, different bytes (CHECKSUM TABLE {:?} on the source, {:?} on the target){column}",
                    a[0].1, b[0].1
                )));
            }
        }
        Ok(None)
    }
}

/// The first column whose values differ between the two sides when read
/// exactly (binary protocol; character columns as HEX of their bytes).
async fn byte_difference(
    s: &mut mysql_async::Conn,
    t: &mut mysql_async::Conn,
    schema: &str,
    table: &str,
) -> anyhow::Result<String> {
    let cols: Vec<(String, String)> = s
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await?;
    let exprs: Vec<String> = cols
        .iter()
        .map(|(c, ty)| match ty.as_str() {
            "char" | "varchar" | "text" | "tinytext" | "mediumtext" | "longtext" | "enum"
            | "set" => format!("HEX(`{c}`)"),
            _ => format!("`{c}`"),
        })
        .collect();
    let order: Vec<String> = cols.iter().map(|(c, _)| format!("`{c}`")).collect();
    let sql = format!(
        "SELECT {} FROM `{schema}`.`{table}` ORDER BY {}",
        exprs.join(", "),
        order.join(", ")
    );
    let a: Vec<mysql_async::Row> = s.exec(&sql, ()).await?;
    let b: Vec<mysql_async::Row> = t.exec(&sql, ()).await?;
    for (ra, rb) in a.iter().zip(&b) {
        for (i, (c, ty)) in cols.iter().enumerate() {
            if ra.as_ref(i) != rb.as_ref(i) {
                return Ok(format!(
                    ": column `{c}` ({ty}): source {:?}, target {:?}",
                    ra.as_ref(i),
                    rb.as_ref(i)
                ));
            }
        }
    }
    let show = format!("SHOW CREATE TABLE `{schema}`.`{table}`");
    let da: Vec<(String, String)> = s.query(&show).await?;
    let db: Vec<(String, String)> = t.query(&show).await?;
    if da != db {
        return Ok(format!(
            ": the definitions differ:\n  source {}\n  target {}",
            da[0].1, db[0].1
        ));
    }
    Ok(String::new())
}

/// Every row change `sluice binlog decode` prints for the source's binlog
/// files (as parsed JSON), for one table.
fn decoded(source: &MariaDb, schema: &str, table: &str) -> Vec<serde_json::Value> {
    decoded_all(source)
        .into_iter()
        .filter(|v| v["schema"] == schema && v["table"] == table)
        .collect()
}

/// Every line `sluice binlog decode` prints for the source's binlog files.
fn decoded_all(source: &MariaDb) -> Vec<serde_json::Value> {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(source.datadir())
        .expect("datadir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mysql-bin.0"))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["binlog", "decode"])
        .args(&files)
        .output()
        .expect("sluice binlog decode");
    assert!(
        out.status.success(),
        "decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 JSON Lines")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .collect()
}

/// The last after image decoded for each row of `table`, by its `id`.
fn last_images(source: &MariaDb, schema: &str, table: &str) -> BTreeMap<i64, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in decoded(source, schema, table) {
        if let Some(after) = line.get("after") {
            out.insert(after["id"].as_i64().expect("integer id"), after.clone());
        }
    }
    out
}

/// The rows of a query as strings (NULL → None) over the text protocol.
async fn texts(db: &MariaDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql_async::Row> = db.query(sql).await.expect(sql);
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Item 1: SIGNEDNESS by the flavour that wrote the event
// ---------------------------------------------------------------------------

/// MariaDB gives YEAR a SIGNEDNESS bit and MySQL does not: with a YEAR and
/// a FLOAT before it, a BIGINT UNSIGNED decoded as -1 and the target
/// refused it (1264). Every numeric type after YEAR keeps its sign, in the
/// decoder and on the target.
#[tokio::test]
async fn mariadb_signedness_and_charsets_follow_the_server() {
    let setup = "CREATE DATABASE sig;
        CREATE TABLE sig.t (id INT PRIMARY KEY, y YEAR NULL, f FLOAT NULL, u BIGINT UNSIGNED NULL);
        INSERT INTO sig.t (id, u) VALUES (1, 18446744073709551615);
        CREATE TABLE sig.n (id INT PRIMARY KEY, y YEAR, d DECIMAL(5,2), b BIT(5), f FLOAT,
            tu TINYINT UNSIGNED, su SMALLINT UNSIGNED, y2 YEAR, dd DOUBLE, mu MEDIUMINT UNSIGNED,
            iu INT UNSIGNED, bu BIGINT UNSIGNED, du DECIMAL(10,2) UNSIGNED, ts TINYINT,
            g POINT NULL, uu UUID NULL, v VARCHAR(10) CHARACTER SET latin1);
        INSERT INTO sig.n VALUES (1, 2155, -999.99, b'10101', -1.5, 255, 65535, 1901, -2.25,
            16777215, 4294967295, 18446744073709551615, 99999999.99, -128,
            ST_GeomFromText('POINT(1 2)'), '11111111-2222-3333-4444-555555555555', 'café');";
    let r = Replication::start("sig", setup).await;
    let t = last_images(&r.source, "sig", "t");
    assert_eq!(
        t[&1]["u"],
        serde_json::json!(18446744073709551615u64),
        "decoded {}",
        t[&1]
    );
    let n = last_images(&r.source, "sig", "n");
    let expected = serde_json::json!({"id": 1, "y": 2155, "d": "-999.99", "b": 21, "f": -1.5,
        "tu": 255, "su": 65535, "y2": 1901, "dd": -2.25, "mu": 16777215, "iu": 4294967295u64,
        "bu": 18446744073709551615u64, "du": "99999999.99", "ts": -128, "v": "café"});
    for (k, v) in expected.as_object().expect("object") {
        assert_eq!(&n[&1][k], v, "column {k} of {}", n[&1]);
    }
    r.converge("sig").await;
}

// ---------------------------------------------------------------------------
// Item 2: ENUM/SET labels in their column's charset
// ---------------------------------------------------------------------------

/// Labels are bytes in the column's charset: latin1 `é€ß` came out as
/// U+FFFD (or, when the bytes happened to be valid UTF-8, as other
/// letters), ucs2/utf16/utf32 `a` as "\u0000a". Decoded labels equal the
/// server's SELECT, and the target holds the same values.
#[tokio::test]
async fn enum_and_set_labels_in_the_column_charset() {
    let families = [
        ("latin1", "'é','€','ß','gß€_0'"),
        ("ucs2", "'a','b','ü'"),
        ("utf16", "'a','b','😀'"),
        ("utf32", "'a','b','😀'"),
        ("gbk", "'中','文','a'"),
        ("big5", "'圖','形','£'"),
        ("sjis", "'河','〜','\\\\'"),
        ("utf8mb4", "'é','😀','a'"),
    ];
    let mut setup = String::from("CREATE DATABASE lbl;");
    for (i, (cs, labels)) in families.iter().enumerate() {
        setup.push_str(&format!(
            "CREATE TABLE lbl.t{i} (id INT PRIMARY KEY, e ENUM({labels}) CHARACTER SET {cs} NULL,
                s SET({labels}) CHARACTER SET {cs} NULL);
             INSERT INTO lbl.t{i} SELECT 1, e, e FROM (SELECT ELT(1, {labels}) AS e) x;
             INSERT INTO lbl.t{i} SELECT 2, e, e FROM (SELECT ELT(2, {labels}) AS e) x;
             INSERT INTO lbl.t{i} SELECT 3, e, e FROM (SELECT ELT(3, {labels}) AS e) x;
             UPDATE lbl.t{i} SET s = CONCAT_WS(',', ELT(1, {labels}), ELT(3, {labels})) WHERE id = 3;"
        ));
    }
    setup.push_str("INSERT INTO lbl.t0 VALUES (4, 'gß€_0', 'gß€_0,é');");
    let r = Replication::start("lbl", &setup).await;
    for (i, (cs, _)) in families.iter().enumerate() {
        let table = format!("t{i}");
        let images = last_images(&r.source, "lbl", &table);
        let selected = texts(
            &r.source,
            &format!("SELECT id, e, s FROM lbl.{table} ORDER BY id"),
        )
        .await;
        assert!(selected.len() >= 3, "{cs}: {selected:?}");
        for row in selected {
            let id: i64 = row[0].as_deref().unwrap_or("0").parse().expect("id");
            let image = &images[&id];
            assert_eq!(
                image["e"].as_str(),
                row[1].as_deref(),
                "{cs} ENUM, row {id}: {image}"
            );
            assert_eq!(
                image["s"].as_str(),
                row[2].as_deref(),
                "{cs} SET, row {id}: {image}"
            );
        }
    }
    r.converge("lbl").await;
}

// ---------------------------------------------------------------------------
// The server's charset mappings (item 7)
// ---------------------------------------------------------------------------

/// Every code worth asking the server about for a charset: all single
/// bytes, and for multibyte charsets every lead 81–FE with trail 40–FE,
/// plus EUC-JP's three-byte 8F plane.
fn candidate_codes(structure: maps::Structure) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
    if structure != maps::Structure::SingleByte {
        for a in 0x81u8..=0xFE {
            for b in 0x40u8..=0xFE {
                v.push(vec![a, b]);
            }
        }
    }
    if structure == maps::Structure::EucJp {
        for a in 0xA1u8..=0xFE {
            for b in 0xA1u8..=0xFE {
                v.push(vec![0x8F, a, b]);
            }
        }
    }
    v
}

/// The legacy charsets of the server, with our enum value for each.
async fn legacy_charsets(conn: &mut mysql_async::Conn) -> Vec<(String, Charset)> {
    let rows: Vec<(String, String)> = conn
        .query("SELECT CHARACTER_SET_NAME, DEFAULT_COLLATE_NAME FROM information_schema.CHARACTER_SETS ORDER BY 1")
        .await
        .expect("charsets");
    let mut out = Vec::new();
    for (name, collation) in rows {
        let id: Option<u16> = conn
            .exec_first(
                "SELECT ID FROM information_schema.COLLATIONS WHERE COLLATION_NAME = ?",
                (collation,),
            )
            .await
            .expect("collation id");
        let cs = Charset::from_collation(id.expect("default collation"))
            .unwrap_or_else(|| panic!("charset {name} has a collation id sluice does not know"));
        if maps::Structure::of(cs).is_some() {
            out.push((name, cs));
        }
    }
    out
}

/// What the server makes of each candidate byte string of `charset`: its
/// text when the server converts every byte of it to utf8mb4 (no `?` for an
/// unconvertible code) and back to the same bytes, else `None`; with the
/// server's character count.
async fn server_view(
    conn: &mut mysql_async::Conn,
    name: &str,
    cs: Charset,
) -> Vec<(Vec<u8>, Option<String>, i64)> {
    let structure = maps::Structure::of(cs).expect("legacy charset");
    conn.query_drop(
        "CREATE DATABASE IF NOT EXISTS charset_probe;
         CREATE OR REPLACE TABLE charset_probe.codes (b VARBINARY(4) PRIMARY KEY)",
    )
    .await
    .expect("probe table");
    let codes = candidate_codes(structure);
    for chunk in codes.chunks(4000) {
        let values: Vec<String> = chunk.iter().map(|b| format!("(X'{}')", hex(b))).collect();
        conn.query_drop(format!(
            "INSERT INTO charset_probe.codes VALUES {}",
            values.join(",")
        ))
        .await
        .expect("insert codes");
    }
    // (code, as utf8mb4, character count, converted back)
    type Converted = (Vec<u8>, Vec<u8>, i64, Vec<u8>);
    let rows: Vec<Converted> = conn
        .query(format!(
            "SELECT b, CONVERT(CAST(b AS CHAR CHARACTER SET {name}) USING utf8mb4), \
                    CHAR_LENGTH(CAST(b AS CHAR CHARACTER SET {name})), \
                    CAST(CONVERT(CONVERT(CAST(b AS CHAR CHARACTER SET {name}) USING utf8mb4) USING {name}) AS BINARY) \
             FROM charset_probe.codes ORDER BY b"
        ))
        .await
        .expect("convert codes");
    rows.into_iter()
        .map(|(code, utf8, chars, back)| {
            let text = String::from_utf8(utf8).expect("utf8mb4 result");
            let questions = text.matches('?').count();
            let faithful = questions == code.iter().filter(|&&b| b == b'?').count() && back == code;
            (code, faithful.then_some(text), chars)
        })
        .collect()
}

/// The one character of `text`, if it has exactly one.
fn single(text: &Option<String>) -> Option<char> {
    let mut it = text.as_deref()?.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn code_of(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x))
}

/// Decoding equals the server's conversion for every code of every legacy
/// charset MariaDB has (sjis and big5 by their own tables, gbk as before,
/// and every other), including bytes the server cannot convert or would
/// not convert back, which stay bytes.
#[tokio::test]
async fn charset_maps_match_the_server() {
    let server = MariaDb::target().await.expect("server");
    let mut conn = server.conn().await.expect("connect");
    let mut report = Vec::new();
    let mut checked = 0usize;
    let charsets = legacy_charsets(&mut conn).await;
    assert!(charsets.len() >= 30, "{charsets:?}");
    for (name, cs) in &charsets {
        let mut wrong = 0usize;
        for (code, want, _) in server_view(&mut conn, name, *cs).await {
            checked += 1;
            let ours = decode_str(&code, Some(*cs));
            if ours != want {
                wrong += 1;
                if wrong <= 5 {
                    report.push(format!(
                        "{name} {}: server {want:?}, sluice {ours:?}",
                        hex(&code)
                    ));
                }
            }
        }
        if wrong > 5 {
            report.push(format!("{name}: {wrong} codes differ in all"));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {checked} codes decode differently from the server:\n{}",
        report.len(),
        report.join("\n")
    );
    // The cases of the issue, spelled out.
    let sjis = Some(Charset::Sjis);
    assert_eq!(decode_str(b"\x81\x5F", sjis).as_deref(), Some("\\"));
    assert_eq!(
        decode_str(b"\x81\x60\x81\x61\x81\x7C\x81\x91\x81\x92\x81\xCA", sjis).as_deref(),
        Some("〜‖−¢£¬")
    );
    assert_eq!(
        decode_str(b"\x5C", sjis),
        None,
        "0x5C does not come back as 0x5C"
    );
    let big5 = Some(Charset::Big5);
    assert_eq!(decode_str(b"\xA2\x47", big5).as_deref(), Some("£"));
    assert_eq!(decode_str(b"\xA2\x46\xA2\x44", big5).as_deref(), Some("¢¥"));
    assert_eq!(
        decode_str(b"\xD6\xD0\xCE\xC4", Some(Charset::Gbk)).as_deref(),
        Some("中文")
    );
}

/// Regenerates `crates/binlog/src/charset/server_maps.rs` from the live
/// server: for every legacy charset, the codes where the server's
/// conversion differs from the base decoder, as ranges. Run with
/// `cargo test -p sluice --test e2e fidelity::regenerate_charset_maps -- --ignored`
/// and review the diff; `charset_maps_match_the_server` then proves it.
#[tokio::test]
#[ignore]
async fn regenerate_charset_maps() {
    let server = MariaDb::target().await.expect("server");
    let mut conn = server.conn().await.expect("connect");
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.expect("version");
    let charsets = legacy_charsets(&mut conn).await;
    let mut body = String::new();
    let mut arms = String::new();
    let mut names = String::new();
    for (name, cs) in &charsets {
        let structure = maps::Structure::of(*cs).expect("legacy");
        let mut exceptions: BTreeMap<u32, u32> = BTreeMap::new();
        for (code, text, chars) in server_view(&mut conn, name, *cs).await {
            let fits = maps::unit_len(structure, &code) == Some(code.len());
            let want = single(&text).filter(|_| chars == 1);
            if !fits {
                assert!(
                    want.is_none(),
                    "{name}: the server converts {} as one character but the byte structure rejects it",
                    hex(&code)
                );
                continue;
            }
            if maps::base_unit(*cs, &code) != want {
                exceptions.insert(code_of(&code), want.map_or(maps::NONE, u32::from));
            }
        }
        // Runs of consecutive codes that map to nothing or to consecutive
        // code points.
        let mut ranges: Vec<(u32, u32, u32)> = Vec::new();
        for (&code, &cp) in &exceptions {
            if let Some(last) = ranges.last_mut() {
                let next_cp = if last.2 == maps::NONE {
                    maps::NONE
                } else {
                    last.2 + (last.1 - last.0) + 1
                };
                if code == last.1 + 1 && cp == next_cp {
                    last.1 = code;
                    continue;
                }
            }
            ranges.push((code, code, cp));
        }
        let ident = name.to_uppercase();
        body.push_str(&format!(
            "/// `{name}`: {} codes differ from the base decoder.\nstatic {ident}: &[(u32, u32, u32)] = &[\n",
            exceptions.len()
        ));
        for (lo, hi, cp) in &ranges {
            let cp = if *cp == maps::NONE {
                "NONE".to_string()
            } else {
                format!("0x{cp:04X}")
            };
            body.push_str(&format!("    (0x{lo:X}, 0x{hi:X}, {cp}),\n"));
        }
        body.push_str("];\n\n");
        arms.push_str(&format!("        Charset::{cs:?} => {ident},\n"));
        names.push_str(&format!("    Charset::{cs:?},\n"));
    }
    let text = format!(
        "//! GENERATED by `cargo test -p sluice --test e2e fidelity::regenerate_charset_maps -- --ignored`\n\
         //! from MariaDB {} — do not edit; `fidelity::charset_maps_match_the_server` checks it.\n\
         //!\n\
         //! Per legacy charset, every code (bytes as a big-endian integer) whose\n\
         //! character on the server differs from the base decoder's\n\
         //! ([`super::maps::base_unit`]), as `(first code, last code, first code\n\
         //! point)` ranges over consecutive codes and code points; `NONE`: the\n\
         //! server cannot convert the code, or does not convert it back to the\n\
         //! same bytes.\n\n\
         use super::NONE;\nuse super::Charset;\n\n\
         /// The charsets this data covers.\npub(super) static CHARSETS: &[Charset] = &[\n{names}];\n\n\
         /// The exceptions of one charset (empty for the others).\n\
         pub(super) fn exceptions(cs: Charset) -> &'static [(u32, u32, u32)] {{\n    match cs {{\n{arms}        _ => &[],\n    }}\n}}\n\n{body}",
        version.unwrap_or_default()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../binlog/src/charset/server_maps.rs");
    std::fs::write(&path, text.trim_end().to_string() + "\n").expect("write server_maps.rs");
    println!("wrote {}", path.display());
}

// ---------------------------------------------------------------------------
// Item 3: values a non-strict source holds that a strict session refuses
// ---------------------------------------------------------------------------

/// Every value a non-strict (or unchecked) source session can store that
/// the target's strict session would refuse reaches the target exactly, as
/// MariaDB's own row replication applies it: ENUM's error value (index 0,
/// also next to a real `''` label, also in a key and in a keyless table),
/// zero dates and zero-in-date parts, invalid dates (ALLOW_INVALID_DATES),
/// zero TIMESTAMPs, rows breaking a CHECK constraint and invalid JSON
/// (`check_constraint_checks=0`), rows breaking a FOREIGN KEY (a child
/// without its parent, a parent deleted under its child:
/// `foreign_key_checks=0`), and bytes an `ascii` column cannot convert
/// (written by a binary client).
#[tokio::test]
async fn non_strict_source_values_reach_the_target_exactly() {
    let setup = "CREATE DATABASE lax;
        CREATE TABLE lax.t (id INT PRIMARY KEY, e ENUM('a','b') NOT NULL, e2 ENUM('','x') NULL,
            d DATE NULL, dt DATETIME(3) NULL, ts TIMESTAMP(2) NULL DEFAULT NULL, s SET('p','q') NULL,
            c INT NULL CHECK (c IS NULL OR c > 0), j JSON NULL,
            a VARCHAR(5) CHARACTER SET ascii NULL);
        CREATE TABLE lax.k (e ENUM('a','b') NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (e, id));
        CREATE TABLE lax.nokey (e ENUM('a','b') NULL, d DATE NULL);
        CREATE TABLE lax.u (id INT PRIMARY KEY, e ENUM('a','b') NOT NULL, uq INT NOT NULL, UNIQUE KEY (uq));
        CREATE TABLE lax.parent (id INT PRIMARY KEY);
        CREATE TABLE lax.child (id INT PRIMARY KEY, p INT NULL,
            FOREIGN KEY (p) REFERENCES lax.parent (id));
        SET SESSION sql_mode = 'ANSI';
        INSERT INTO lax.u VALUES (1, 'zzz', 1), (2, 'a', 2);
        INSERT INTO lax.t (id, e, e2) VALUES (1, 'zzz', 'nope'), (2, 'a', ''), (3, 'b', 'x');
        INSERT INTO lax.k VALUES ('zzz', 1, 1), ('zzz', 2, 2), ('a', 3, 3);
        INSERT INTO lax.nokey VALUES ('zzz', '2020-01-01'), ('zzz', '2020-01-01'), ('b', NULL);
        SET SESSION sql_mode = '';
        INSERT INTO lax.t (id, e, d, dt, ts) VALUES
            (4, 'a', '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),
            (5, 'a', '2021-00-15', '2021-07-00 10:11:12.5', NULL);
        SET SESSION sql_mode = 'ALLOW_INVALID_DATES';
        INSERT INTO lax.t (id, e, d, dt) VALUES (6, 'b', '2021-02-30', '2020-04-31 23:59:59.999');
        SET SESSION check_constraint_checks = 0;
        INSERT INTO lax.t (id, e, c, j) VALUES (7, 'a', -5, 'not json');
        INSERT INTO lax.t (id, e, a) VALUES (8, 'a', X'E9FF');
        SET SESSION foreign_key_checks = 0;
        INSERT INTO lax.parent VALUES (1);
        INSERT INTO lax.child VALUES (1, 99), (2, 1);
        DELETE FROM lax.parent WHERE id = 1;
        UPDATE lax.child SET p = 98 WHERE id = 1;
        SET SESSION foreign_key_checks = 1;
        SET SESSION sql_mode = 'ANSI';
        UPDATE lax.t SET s = 'p,q' WHERE id = 1;
        UPDATE lax.t SET e = 'nothing' WHERE id = 3;
        DELETE FROM lax.t WHERE id = 2;
        UPDATE lax.k SET v = 10 WHERE id = 1;
        DELETE FROM lax.k WHERE id = 2;
        DELETE FROM lax.nokey WHERE e = 0 LIMIT 1;
        UPDATE lax.nokey SET d = '0000-00-00' WHERE e = 'b';";
    // Rows holding the ENUM error value swap a unique value in one
    // transaction: the relaxed upsert collides, and the source-order
    // fallback applies it.
    let swap = "SET SESSION sql_mode = 'ANSI'; START TRANSACTION;
        UPDATE lax.u SET uq = 3 WHERE id = 1; UPDATE lax.u SET uq = 1 WHERE id = 2;
        UPDATE lax.u SET uq = 2 WHERE id = 1; COMMIT;";
    let r = Replication::start("lax", setup).await;
    r.converge("lax").await;
    r.source.exec(swap).await.expect("swap");
    r.converge("lax").await;
    assert!(
        r.sluice
            .log_text()
            .contains("applying the batch again in source order"),
        "{}",
        r.sluice.log_tail()
    );
    // The FOREIGN KEY holds on the target too (it came with the CREATE
    // TABLE), and still the orphans arrived.
    let fk = texts(
        &r.target,
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'lax'",
    )
    .await;
    assert_eq!(fk, vec![vec![Some("1".into())]]);
    let orphans = texts(&r.target, "SELECT id, p FROM lax.child ORDER BY id").await;
    assert_eq!(
        orphans,
        vec![
            vec![Some("1".into()), Some("98".into())],
            vec![Some("2".into()), Some("1".into())]
        ]
    );
    // The ENUM error value is index 0 on the target, not the '' label.
    let e = texts(
        &r.target,
        "SELECT id, e + 0, e2 + 0 FROM lax.t WHERE id IN (1, 3) ORDER BY id",
    )
    .await;
    assert_eq!(
        e,
        vec![
            vec![Some("1".into()), Some("0".into()), Some("0".into())],
            vec![Some("3".into()), Some("0".into()), Some("2".into())]
        ]
    );
}

/// A value that does not fit the target's column (schema drift) still stops
/// the pipeline with one message naming the table, the key and the column,
/// also inside a statement that carries an ENUM error value.
#[tokio::test]
async fn a_value_that_does_not_fit_stops_with_one_message() {
    let setup = "CREATE DATABASE drift;
        CREATE TABLE drift.t (id INT PRIMARY KEY, e ENUM('a','b'), v VARCHAR(20));
        INSERT INTO drift.t VALUES (1, 'a', 'ab');";
    let mut r = Replication::start("drift", setup).await;
    r.converge("drift").await;
    r.target
        .exec("ALTER TABLE drift.t MODIFY v VARCHAR(3)")
        .await
        .expect("narrow the target");
    r.source
        .exec(
            "SET SESSION sql_mode = 'ANSI'; INSERT INTO drift.t VALUES (2, 'zzz', 'far too long')",
        )
        .await
        .expect("source insert");
    let status = r.sluice.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1), "{}", r.sluice.log_tail());
    let log = r.sluice.log_text();
    let stops: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("sluice: pipeline `drift` stopped:"))
        .collect();
    assert_eq!(stops.len(), 1, "{log}");
    for part in ["`drift`.`t`", "id=2", "column 'v'"] {
        assert!(
            stops[0].contains(part),
            "`{part}` missing from: {}",
            stops[0]
        );
    }
    let kept = texts(&r.target, "SELECT id FROM drift.t ORDER BY id").await;
    assert_eq!(
        kept,
        vec![vec![Some("1".into())]],
        "nothing of the batch applied"
    );
}

// ---------------------------------------------------------------------------
// Item 6: deletes and key lookups with non-UTF-8 strings
// ---------------------------------------------------------------------------

/// The charset families of item 6, each with values that need converting.
const KEY_FAMILIES: &[(&str, [&str; 3])] = &[
    ("latin1", ["é", "a", "ß€"]),
    ("ucs2", ["é", "a", "ü"]),
    ("utf16", ["é", "a", "😀"]),
    ("utf32", ["é", "a", "😀"]),
    ("gbk", ["中", "a", "文"]),
    ("big5", ["圖", "a", "£"]),
    ("sjis", ["河", "a", "\\\\"]),
    ("utf8mb4", ["é", "a", "😀"]),
    ("binary", ["é", "a", "x"]),
];

/// Composite-key deletes (`(a,b) IN ((?,?),…)` matched nothing for
/// non-ASCII latin1/gbk/big5/sjis and every ucs2/utf16/utf32 value on
/// MariaDB 10.11, silently), single-column keys, key changes, upsert guards
/// and full-row matches of keyless tables, for every charset family; and a
/// delete that finds fewer target rows than it asked for is reported.
#[tokio::test]
async fn deletes_and_key_changes_match_in_every_charset() {
    let mut setup = String::from("CREATE DATABASE ck;");
    for (cs, [x, y, z]) in KEY_FAMILIES {
        let col = if *cs == "binary" {
            "VARBINARY(40)".to_string()
        } else {
            format!("VARCHAR(10) CHARACTER SET {cs}")
        };
        setup.push_str(&format!(
            "CREATE TABLE ck.c_{cs} (a {col} NOT NULL, b INT NOT NULL, v INT, PRIMARY KEY (a, b));
             CREATE TABLE ck.s_{cs} (a {col} NOT NULL PRIMARY KEY, v INT);
             CREATE TABLE ck.u_{cs} (id INT PRIMARY KEY, a {col} NOT NULL, UNIQUE KEY (a));
             CREATE TABLE ck.n_{cs} (a {col} NULL, b INT NULL);
             INSERT INTO ck.c_{cs} VALUES ('{x}', 1, 1), ('{y}', 2, 2), ('{z}', 3, 3), ('{x}', 4, 4);
             INSERT INTO ck.s_{cs} VALUES ('{x}', 1), ('{y}', 2), ('{z}', 3);
             INSERT INTO ck.u_{cs} VALUES (1, '{x}'), (2, '{y}'), (3, '{z}');
             INSERT INTO ck.n_{cs} VALUES ('{x}', 1), ('{y}', 2), ('{z}', 3), ('{x}', 1);"
        ));
    }
    let r = Replication::start("ck", &setup).await;
    r.converge("ck").await;
    let mut change = String::new();
    for (cs, [x, y, z]) in KEY_FAMILIES {
        change.push_str(&format!(
            "START TRANSACTION;
             DELETE FROM ck.c_{cs} WHERE b IN (1, 2);
             UPDATE ck.c_{cs} SET a = '{x}' WHERE b = 3;
             UPDATE ck.c_{cs} SET v = 40 WHERE b = 4;
             DELETE FROM ck.s_{cs} WHERE v IN (1, 2);
             UPDATE ck.s_{cs} SET a = '{y}' WHERE v = 3;
             UPDATE ck.u_{cs} SET a = CONCAT(a, '-') WHERE id = 1;
             UPDATE ck.u_{cs} SET a = '{x}' WHERE id = 3;
             DELETE FROM ck.n_{cs} WHERE b = 1 LIMIT 1;
             UPDATE ck.n_{cs} SET b = 20 WHERE b = 2;
             DELETE FROM ck.n_{cs} WHERE a = '{z}';
             COMMIT;"
        ));
    }
    r.source.exec(&change).await.expect("changes");
    r.converge("ck").await;

    // A delete of a row the target no longer has is noticed.
    r.target
        .exec("DELETE FROM ck.c_latin1 WHERE b = 4")
        .await
        .expect("target-only delete");
    r.source
        .exec("DELETE FROM ck.c_latin1 WHERE b = 4")
        .await
        .expect("source delete");
    r.sluice
        .wait_log(
            "the report of the missed delete",
            Duration::from_secs(30),
            |log| log.contains("matched fewer target rows").then_some(()),
        )
        .await;
    r.converge("ck").await;
}

// ---------------------------------------------------------------------------
// Item 7: sjis and big5 by the server's mapping, byte for byte
// ---------------------------------------------------------------------------

/// sjis `\` (0x815F), `〜‖−¢£¬`, big5 `£¢¥‾∼`: decoded as the server reads
/// them (the JSON Lines equal its SELECT), and the target holds the same
/// bytes, also for a sjis 0x5C written by a sjis client, which the server
/// reads as `\` but would write back as 0x815F.
#[tokio::test]
async fn sjis_and_big5_values_decode_and_replicate_byte_for_byte() {
    let setup = "CREATE DATABASE cjk;
        CREATE TABLE cjk.t (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET sjis,
            b VARCHAR(20) CHARACTER SET big5, g VARCHAR(20) CHARACTER SET gbk);
        INSERT INTO cjk.t VALUES (1, '\\\\', '£', '中文'), (2, '〜‖−¢£¬', '¢¥‾∼', '字'),
            (3, '河', '圖形碼', 'a');
        SET NAMES sjis;
        INSERT INTO cjk.t (id, s) VALUES (4, X'435C');
        SET NAMES utf8mb4;";
    let r = Replication::start("cjk", setup).await;
    let images = last_images(&r.source, "cjk", "t");
    let selected = texts(
        &r.source,
        "SELECT id, s, b, g FROM cjk.t WHERE id < 4 ORDER BY id",
    )
    .await;
    for row in selected {
        let id: i64 = row[0].as_deref().unwrap_or("0").parse().expect("id");
        for (i, c) in ["s", "b", "g"].iter().enumerate() {
            assert_eq!(
                images[&id][*c].as_str(),
                row[i + 1].as_deref(),
                "row {id} column {c}: {}",
                images[&id]
            );
        }
    }
    r.converge("cjk").await;
    let hex = texts(
        &r.target,
        "SELECT HEX(s) FROM cjk.t WHERE id IN (1, 4) ORDER BY id",
    )
    .await;
    assert_eq!(
        hex,
        vec![vec![Some("815F".into())], vec![Some("435C".into())]]
    );
}

// ---------------------------------------------------------------------------
// Also: MariaDB's UUID, INET4, INET6
// ---------------------------------------------------------------------------

/// UUID, INET4 and INET6 columns travel as their binary form (the binlog is
/// indistinguishable from BINARY(16)/(4)); written as bytes into the same
/// types on the target, each value equals the source's as text and by
/// bytes: the server reads a binary string as that same form (UUID's
/// in-record swap of the time fields of RFC versions 1–5 happens inside
/// the server, on both sides).
#[tokio::test]
async fn uuid_and_inet_values_replicate_as_text() {
    let setup = "CREATE DATABASE fbt;
        CREATE TABLE fbt.t (id INT PRIMARY KEY, u UUID NULL, i4 INET4 NULL, i6 INET6 NULL);
        INSERT INTO fbt.t VALUES
            (1, '11111111-2222-3333-4444-555555555555', '192.168.1.10', '::ffff:8.8.8.8'),
            (2, 'e5d1a6b0-1f2e-11ee-8c90-0242ac120002', '0.0.0.0', '::'),
            (3, UUID(), '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
            (4, '00000000-0000-0000-0000-000000000000', NULL, '2001:db8::1'),
            (5, 'ffffffff-ffff-4fff-bfff-ffffffffffff', '10.0.0.1', NULL);
        CREATE TABLE fbt.k (u UUID NOT NULL PRIMARY KEY, v INT);
        INSERT INTO fbt.k VALUES (UUID(), 1), (UUID(), 2), ('e5d1a6b0-1f2e-11ee-8c90-0242ac120002', 3);";
    let r = Replication::start("fbt", setup).await;
    r.converge("fbt").await;
    r.source
        .exec(
            "UPDATE fbt.t SET u = UUID() WHERE id = 2; DELETE FROM fbt.k WHERE v = 1;
               UPDATE fbt.k SET v = 30 WHERE v = 3;",
        )
        .await
        .expect("changes");
    r.converge("fbt").await;
}

// ---------------------------------------------------------------------------
// Also: MySQL 8.0.23+ invisible columns and MySQL 9 VECTOR (fixtures)
// ---------------------------------------------------------------------------

/// MySQL's invisible columns are in every row image and decode like the
/// others (8.0.26 fixture: `f1`, `f2`, `f6` INVISIBLE, two of them
/// UNSIGNED); a VECTOR decodes as its f32 bytes, and the TEXT column after
/// it keeps its charset (MySQL 9 counts VECTOR among the character
/// columns; reading it as MariaDB does decoded `foo` as bytes).
#[test]
fn mysql_invisible_columns_and_vector_decode() {
    if crate::fixtures::absent("mysql_invisible_columns_and_vector_decode") {
        return;
    }
    let rc = "blackbeam__rust_mysql_common/test-data/binlogs/";
    let lines = crate::fixtures::file(&format!("{rc}binlog-invisible-columns.000001"));
    let rows = crate::fixtures::rows(&lines);
    assert_eq!(
        rows[0]["after"],
        serde_json::json!({"f1": 1, "f2": 2, "f3": -3, "f4": "4", "f5": {"base64": "BQ=="}, "f6": 6000000000u64})
    );
    assert_eq!(rows[2]["after"]["f2"], 222);
    assert_eq!(rows[2]["before"]["f6"], serde_json::Value::Null);

    let lines = crate::fixtures::file(&format!("{rc}vector.binlog"));
    let bar: Vec<&serde_json::Value> = crate::fixtures::rows(&lines)
        .into_iter()
        .filter(|l| l["table"] == "bar")
        .collect();
    assert_eq!(bar.len(), 6);
    assert_eq!(
        bar[1]["after"]["foo"], "bar",
        "TEXT after a VECTOR: {}",
        bar[1]
    );
    assert_eq!(bar[4]["before"]["foo"], "bar", "{}", bar[4]);
    assert_eq!(bar[0]["after"]["vector_column"]["base64"], "zcyMP83MDEA=");
    assert_eq!(
        bar[1]["after"]["vector_column2"]["base64"],
        "AAAoQgAALEIAADBCAAA0Qg=="
    );
}

// ---------------------------------------------------------------------------
// A test that finds the next one: random tables, values and transactions
// ---------------------------------------------------------------------------

/// The seeds to run: `SLUICE_PROPTEST_SEEDS` as a comma-separated list, or
/// as `N` random ones (`random:N`, printed); by default a fixed set for CI.
fn proptest_seeds() -> Vec<u64> {
    match std::env::var("SLUICE_PROPTEST_SEEDS") {
        Ok(v) if v.starts_with("random:") => {
            let n: u64 = v["random:".len()..].parse().expect("random:N");
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1);
            (0..n).map(|i| base * 1000 + i).collect()
        }
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("SLUICE_PROPTEST_SEEDS: comma-separated u64s")
            })
            .collect(),
        Err(_) => (1..=16).collect(),
    }
}

/// Transactions per table: `SLUICE_PROPTEST_CASES`, default 16.
fn proptest_cases() -> usize {
    std::env::var("SLUICE_PROPTEST_CASES")
        .ok()
        .map(|v| v.parse().expect("SLUICE_PROPTEST_CASES: a number"))
        .unwrap_or(16)
}

/// `a` vs `b` column by column: the columns that differ.
fn column_diffs(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| {
            format!(
                "column `{n}`: decoded {}, server {}",
                a.get(n).unwrap_or(&serde_json::Value::Null),
                b.get(n).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect()
}

/// What one table's check saw.
#[derive(Default)]
struct PropStats {
    rows: usize,
    values: usize,
    changes: usize,
}

/// Replays the decoded changes of one table (each before image must equal
/// the row as the replay holds it) and compares the result with the
/// server's SELECT, value by value. Returns the mismatches.
fn check_decoded(
    spec: &sluice_testkit::fidelity::TableSpec,
    lines: &[&serde_json::Value],
    selected: &[serde_json::Value],
    stats: &mut PropStats,
) -> Vec<String> {
    let key_cols = spec.key_columns();
    let key_of = |row: &serde_json::Value| -> String {
        if key_cols.is_empty() {
            row.to_string()
        } else {
            key_cols
                .iter()
                .map(|c| row[*c].to_string())
                .collect::<Vec<_>>()
                .join("|")
        }
    };
    // Key → rows (a list, for keyless tables with duplicate rows).
    let mut state: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut problems = Vec::new();
    let ncols = spec.columns.len();
    for line in lines {
        stats.changes += 1;
        if let Some(before) = line.get("before") {
            stats.values += ncols;
            let k = key_of(before);
            let held = state.get_mut(&k);
            let pos = held
                .as_ref()
                .and_then(|rows| rows.iter().position(|r| r == before));
            match (held, pos) {
                (Some(rows), Some(i)) => {
                    rows.remove(i);
                }
                (held, _) => {
                    let now = held.and_then(|r| r.first().cloned()).unwrap_or_default();
                    problems.push(format!(
                        "{} at {}: before image differs from the row as decoded so far: {}",
                        line["kind"],
                        line["pos"],
                        column_diffs(before, &now).join("; ")
                    ));
                }
            }
        }
        if let Some(after) = line.get("after") {
            let k = key_of(after);
            let rows = state.entry(k).or_default();
            if !key_cols.is_empty() && !rows.is_empty() {
                problems.push(format!(
                    "{} at {}: key already held",
                    line["kind"], line["pos"]
                ));
            }
            rows.push(after.clone());
        }
    }
    state.retain(|_, rows| !rows.is_empty());
    let mut server: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for row in selected {
        server.entry(key_of(row)).or_default().push(row.clone());
    }
    stats.rows += selected.len();
    stats.values += selected.len() * ncols;
    for (k, rows) in &server {
        match state.get(k) {
            None => problems.push(format!("row {k}: on the server, never decoded")),
            Some(decoded) if key_cols.is_empty() => {
                let mut a = decoded.iter().map(|v| v.to_string()).collect::<Vec<_>>();
                let mut b = rows.iter().map(|v| v.to_string()).collect::<Vec<_>>();
                a.sort();
                b.sort();
                if a != b {
                    problems.push(format!(
                        "rows {k}: decoded {} times, {} on the server",
                        a.len(),
                        b.len()
                    ));
                }
            }
            Some(decoded) => {
                let d = column_diffs(&decoded[0], &rows[0]);
                if !d.is_empty() {
                    problems.push(format!("row {k}: {}", d.join("; ")));
                }
            }
        }
    }
    for k in state.keys() {
        if !server.contains_key(k) {
            problems.push(format!("row {k}: decoded, not on the server"));
        }
    }
    problems
}

/// Seeded random tables of 1–40 columns over every column type, charset
/// family, NULLs and edge values, written by multi-row transactions of
/// INSERT/UPDATE/DELETE (key changes included) from strict and non-strict
/// sessions (`sluice_testkit::fidelity`). Two checks per seed: every
/// decoded value equals the server's own SELECT in the JSON Lines encoding
/// (before images included, by replaying the changes), and after `sluice
/// run` the target equals the source as text and by `CHECKSUM TABLE`. A
/// failure names the seed, the table's definition and the values.
/// `SLUICE_PROPTEST_SEEDS` (a list, or `random:N`) and
/// `SLUICE_PROPTEST_CASES` (transactions per table) run it longer.
#[tokio::test]
async fn property_random_tables_decode_and_replicate_exactly() {
    property_test("").await;
}

/// The property test with every statement sent as text, its values as
/// literals (`load.statement_cache: 0`, see `sluice_load::sql`): the
/// literals reach the target as exactly the values the bound parameters do.
#[tokio::test]
async fn property_random_tables_replicate_exactly_as_inline_literals() {
    property_test("load: { statement_cache: 0 }\n").await;
}

async fn property_test(extra: &str) {
    use sluice_testkit::fidelity::{Rng, TableSpec};
    let seeds = proptest_seeds();
    let cases = proptest_cases();
    let started = Instant::now();
    let r = Replication::start_with("prop", "", extra).await;
    let mut conn = r.source.conn().await.expect("source");
    let mut specs: Vec<(u64, TableSpec)> = Vec::new();
    let mut refused = 0usize;
    let mut transactions = 0usize;
    for &seed in &seeds {
        let mut rng = Rng::new(seed);
        let schema = format!("prop_{seed}");
        conn.query_drop(format!("CREATE DATABASE `{schema}`"))
            .await
            .expect("create database");
        for t in 0..3 {
            let spec = TableSpec::random(&mut rng, &schema, &format!("t{t}"));
            if let Err(e) = conn.query_drop(spec.create_sql()).await {
                panic!(
                    "seed {seed}: the generator made a table the server refuses: {e}\n{}",
                    spec.create_sql()
                );
            }
            let (mut live, mut next_id) = (Vec::new(), 1u64);
            for _ in 0..cases {
                let sql = spec.transaction(&mut rng, &mut live, &mut next_id);
                transactions += 1;
                conn.query_drop(&sql[0]).await.expect("session mode");
                conn.query_drop("START TRANSACTION").await.expect("begin");
                let mut failed = None;
                for stmt in &sql[1..] {
                    if let Err(e) = conn.query_drop(stmt).await {
                        failed = Some(format!("{e}: {}", &stmt[..stmt.len().min(300)]));
                        break;
                    }
                }
                match failed {
                    None => conn.query_drop("COMMIT").await.expect("commit"),
                    Some(why) => {
                        refused += 1;
                        println!(
                            "seed {seed} {}: the server refused a generated transaction ({why})",
                            spec.name
                        );
                        conn.query_drop("ROLLBACK").await.expect("rollback");
                        live = conn
                            .query(format!("SELECT DISTINCT `id` FROM {}", spec.qualified()))
                            .await
                            .expect("ids");
                    }
                }
            }
            specs.push((seed, spec));
        }
    }
    conn.query_drop("SET SESSION sql_mode = DEFAULT")
        .await
        .expect("mode");

    // Check 1: decoded values equal the server's SELECT.
    let all = decoded_all(&r.source);
    let mut stats = PropStats::default();
    let mut failures = Vec::new();
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .expect("tz");
    for (seed, spec) in &specs {
        let rows: Vec<mysql_async::Row> = conn.exec(spec.select_sql(), ()).await.expect("select");
        let selected: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|r| spec.expected(&r.unwrap()))
            .collect();
        let lines: Vec<&serde_json::Value> = all
            .iter()
            .filter(|l| l["schema"] == spec.schema.as_str() && l["table"] == spec.name.as_str())
            .filter(|l| matches!(l["kind"].as_str(), Some("insert" | "update" | "delete")))
            .collect();
        let problems = check_decoded(spec, &lines, &selected, &mut stats);
        if !problems.is_empty() {
            failures.push(format!(
                "seed {seed}, table {}:\n  {}\n  {}",
                spec.qualified(),
                spec.create_sql(),
                problems
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "decoded values differ from the server's SELECT (replay a seed with SLUICE_PROPTEST_SEEDS=<seed>):\n{}",
        failures.join("\n")
    );
    // Check 2: the target equals the source, as text and as bytes.
    for seed in &seeds {
        let schema = format!("prop_{seed}");
        if let Some(report) = wait_differences(&r, &schema).await {
            let defs: Vec<String> = specs
                .iter()
                .filter(|(s, _)| s == seed)
                .map(|(_, t)| t.create_sql())
                .collect();
            panic!(
                "seed {seed}: the target differs from the source:\n{report}\ntables:\n{}\nsluice log:\n{}",
                defs.join("\n"),
                r.sluice.log_tail()
            );
        }
    }
    let columns: usize = specs.iter().map(|(_, t)| t.columns.len()).sum();
    println!(
        "property test: seeds {seeds:?}, {} tables, {columns} columns, {transactions} transactions \
         ({refused} refused by the server), {} row changes decoded, {} rows and {} values checked, in {:?}",
        specs.len(),
        stats.changes,
        stats.rows,
        stats.values,
        started.elapsed()
    );
}

/// Waits (up to 60 s) for `schema` to converge; the last report if not.
async fn wait_differences(r: &Replication, schema: &str) -> Option<String> {
    r.wait_converged(schema, Duration::from_secs(60)).await
}
