//! Every real binlog in the corpus (`SLUICE_FIXTURES`) decodes; every negative input
//! fails with a message naming the offset; decoded values match TYPE_CASES.md.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use crate::fixtures::{self, capture, file, rows};

fn decode(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["binlog", "decode"])
        .arg(path)
        .output()
        .expect("sluice runs")
}

#[test]
fn every_valid_fixture_decodes_and_every_negative_fails_at_an_offset() {
    if fixtures::absent("every_valid_fixture_decodes_and_every_negative_fails_at_an_offset") {
        return;
    }
    let mut valid = 0;
    let mut negative = 0;
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in fixtures::manifest() {
        let path = match entry.kind.as_str() {
            "binlog" | "negative" => entry.path.clone(),
            "binlog-gz" => {
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(std::fs::File::open(&entry.path).expect("gz"))
                    .read_to_end(&mut raw)
                    .expect("gunzip");
                let name = entry.path.file_stem().expect("name");
                let out = tmp.path().join(name);
                std::fs::write(&out, raw).expect("write");
                out
            }
            _ => continue,
        };
        let out = decode(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Whatever was printed is valid JSON Lines, also before damage.
        for line in stdout.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line}: {e}", path.display()));
            assert!(v["kind"].is_string(), "{line}");
        }
        if entry.negative {
            negative += 1;
            assert_eq!(
                out.status.code(),
                Some(1),
                "{} must fail: {stderr}",
                path.display()
            );
            let last = stderr.lines().last().unwrap_or_default();
            let prefix = format!("{}: offset ", path.display());
            let rest = last
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("error must start with `{prefix}`: {last}"));
            let (offset, reason) = rest.split_once(": ").expect("offset: reason");
            offset.parse::<u64>().expect("numeric offset");
            assert!(!reason.is_empty());
        } else {
            valid += 1;
            assert!(
                out.status.success(),
                "{} must decode: {stderr}",
                path.display()
            );
        }
    }
    assert!(valid >= 90, "only {valid} valid fixtures found");
    assert_eq!(negative, 6, "negative fixtures named in MANIFEST.txt");
}

#[test]
fn truncated_file_prints_events_before_the_damage() {
    if fixtures::absent("truncated_file_prints_events_before_the_damage") {
        return;
    }
    let src =
        fixtures::binlog("rust-us__mysql-cdc-rs/tests/events/8.0/32_delete_rows_v2/binlog.000001");
    let bytes = std::fs::read(&src).expect("fixture");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cut = tmp.path().join("cut.000001");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write");
    let out = decode(&cut);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().count() >= 3,
        "events before the damage: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: offset ", cut.display())) && stderr.contains("truncated"),
        "{stderr}"
    );

    // A flipped byte in the middle is caught by the CRC32.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    let flipped = tmp.path().join("flipped.000001");
    std::fs::write(&flipped, &bad).expect("write");
    let out = decode(&flipped);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("offset "), "{stderr}");
}

fn find<'a>(lines: &'a [serde_json::Value], table: &str) -> Vec<&'a serde_json::Value> {
    rows(lines)
        .into_iter()
        .filter(|l| l["table"] == table)
        .collect()
}

/// TYPE_CASES A9, B8, C6, D2, D6, D10, D18, E5, E6, E10, E13, E21, E28, F7,
/// G2, A12: MySQL 8.4 with FULL metadata, through the replica-stream path.
#[test]
fn mysql84_capture_values() {
    if fixtures::absent("mysql84_capture_values") {
        return;
    }
    let lines = capture("vlasky__zongji/test/fixtures/binlog-mysql84-fullmeta.json.packets.hex");
    let r = find(&lines, "capture_types");
    assert_eq!(r.len(), 4, "insert, update, delete, insert");
    let a = &r[0]["after"];
    assert_eq!(a["i_big"], serde_json::json!(9223372036854775807i64));
    assert_eq!(a["u_big"].to_string(), "18446744073709551615");
    assert_eq!(a["dec_col"], "-12345678901234567.0123456789");
    assert_eq!(a["flt"], 1.25);
    assert_eq!(a["dbl"], -2.5);
    assert_eq!(a["d"], "2024-06-15");
    assert_eq!(a["dt"], "2024-06-15 12:34:56.789");
    assert_eq!(a["ts"], "2024-06-15 12:34:56");
    assert_eq!(a["t"], "-01:02:03.500");
    assert_eq!(a["y"], 2024);
    assert_eq!(a["txt_latin1"], "café ñ");
    assert_eq!(a["vc_latin1"], "Ÿ€ señor");
    assert_eq!(a["vc_ucs2"], "héllo");
    assert_eq!(a["vc"], "héllo wörld");
    assert_eq!(a["ch"], "abc");
    assert_eq!(a["bin_col"]["base64"], "3q2+7w==");
    assert_eq!(a["vb"]["base64"], "AQI=");
    assert_eq!(a["e"], "b");
    assert_eq!(a["e2"], "c'd");
    assert_eq!(a["s"], "x,z");
    assert_eq!(a["bt"], 513);
    assert_eq!(a["js"]["big"].to_string(), "9223372036854775807");
    assert_eq!(a["js"]["d"], 1.5);
    assert_eq!(a["geo"]["base64"], "AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA==");
    assert_eq!(r[1]["kind"], "update");
    assert_eq!(r[1]["before"]["id"], 1);
    assert_eq!(r[1]["after"]["id"], 2);
    assert_eq!(r[1]["after"]["vc"], "updated");
    assert_eq!(r[2]["kind"], "delete");
    // A12: id only, every other present column NULL; NOBLOB image omits
    // the absent TEXT/BLOB columns.
    let last = r[3]["after"].as_object().expect("object");
    assert_eq!(last["id"], 3);
    assert!(last.iter().all(|(k, v)| k == "id" || v.is_null()));
    assert!(!last.contains_key("txt") && !last.contains_key("blb"));
    // The stream names the real binlog file and the GTID of each transaction.
    assert!(r[0]["pos"]
        .as_str()
        .unwrap_or_default()
        .starts_with("mysql-bin.000002:"));
    assert!(r[0]["gtid"].as_str().unwrap_or_default().ends_with(":106"));
}

/// Without FULL metadata (MINIMAL): names are @1..@n, and unsigned columns
/// cannot be told apart (TYPE_CASES A7), but values still decode.
#[test]
fn mysql84_minimal_metadata_capture() {
    if fixtures::absent("mysql84_minimal_metadata_capture") {
        return;
    }
    let lines = capture("vlasky__zongji/test/fixtures/binlog-mysql84.json.packets.hex");
    let r = find(&lines, "capture_types");
    assert_eq!(r.len(), 4);
    let a = &r[0]["after"];
    assert_eq!(a["@1"], 1);
    assert_eq!(a["@2"].to_string(), "9223372036854775807");
    assert_eq!(a["@4"], "-12345678901234567.0123456789");
}

/// TYPE_CASES F14/F10/F12 (opaque JSON values) and F22 (partial update).
#[test]
fn mysql_json_fixtures() {
    if fixtures::absent("mysql_json_fixtures") {
        return;
    }
    let lines = file("blackbeam__rust_mysql_common/test-data/binlogs/json-opaque.binlog");
    let r = rows(&lines);
    assert_eq!(
        r[0]["after"]["a"],
        serde_json::json!({"a": "base64:type15:VQ=="})
    );
    assert_eq!(r[1]["after"]["a"], serde_json::json!({"b": "2012-03-18"}));
    assert_eq!(
        r[2]["after"]["a"],
        serde_json::json!({"c": "2012-03-18 11:30:45.000000"})
    );
    assert_eq!(r[4]["after"]["a"]["d"].to_string(), "123.456");

    // json.binlog.000001 was written with a MINIMAL before image: full
    // updates decode, and the partial ones are reported as the diff itself.
    let lines = file("blackbeam__rust_mysql_common/test-data/binlogs/json.binlog.000001");
    let updates: Vec<_> = rows(&lines)
        .into_iter()
        .filter(|l| l["kind"] == "update")
        .collect();
    assert_eq!(updates[0]["after"]["@2"]["age"], 25);
    let diff = updates
        .iter()
        .find_map(|u| u["after"]["@2"].get("json_diff"))
        .expect("a partial update reported as a diff");
    assert_eq!(diff[0]["op"], "replace");
    assert_eq!(diff[0]["path"], "$.age");
}

/// TYPE_CASES H8–H11, E5, A-series on MariaDB 11.8: UUID/INET4/INET6/VECTOR
/// bytes, compressed columns, a compressed rows event, MariaDB GTIDs.
#[test]
fn mariadb118_capture_values() {
    if fixtures::absent("mariadb118_capture_values") {
        return;
    }
    let rel = "vlasky__zongji/test/fixtures/binlog-mariadb118.json.packets.hex";
    let events = fixtures::capture_events(rel);
    // capture_hires uses MariaDB's pre-10.1 temporal layouts, whose fsp is
    // only in the table definition, not in the binlog: decoding them needs
    // the schema (the pipeline resolves it); offline they fail clearly.
    let hires = events
        .iter()
        .find_map(|e| match &e.kind {
            sluice_binlog::EventKind::Rows(r) if r.table.table == "capture_hires" => Some(r),
            _ => None,
        })
        .expect("capture_hires rows");
    let mut out = Vec::new();
    let err = hires
        .decode(&mut out)
        .expect_err("fsp is not in the binlog");
    assert!(err.to_string().contains("capture_hires"), "{err}");

    let lines = fixtures::to_lines_except(events, Some("capture_hires"));
    let m = find(&lines, "capture_mariadb");
    assert!(!m.is_empty(), "capture_mariadb rows");
    let a = &m[0]["after"];
    use base64::Engine as _;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v["base64"].as_str().expect("binary value"))
            .expect("base64")
    };
    // H8: UUID as 16 raw bytes, INET4 4 bytes, INET6 16 bytes, VECTOR f32s.
    assert_eq!(b64(&a["@2"]).len(), 16);
    assert_eq!(b64(&a["@3"]), vec![192, 168, 1, 10]);
    let inet6 = b64(&a["@4"]);
    assert_eq!(&inet6[10..], &[0xff, 0xff, 8, 8, 8, 8]);
    let vec = b64(&a["@5"]);
    assert_eq!(&vec[..4], &1.5f32.to_le_bytes());
    // H10: MariaDB JSON is text.
    assert!(a["@6"].as_str().expect("JSON as text").contains("\"a\""));
    // H9: compressed VARCHAR inflates to the original.
    let vc = a["@7"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8(b64(&a["@7"])).expect("ascii"));
    assert_eq!(vc, "squash-".repeat(30));
    // H11: the compressed rows event (id 3) inflates too.
    let id3 = m
        .iter()
        .find(|l| l["after"]["@1"] == 3)
        .expect("row 3 from the compressed event");
    let vc3 = id3["after"]["@7"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8(b64(&id3["after"]["@7"])).expect("ascii"));
    assert_eq!(vc3, "flat-".repeat(40));
    // MariaDB GTIDs name each transaction.
    let begin = lines.iter().find(|l| l["kind"] == "begin").expect("begin");
    assert!(begin["gtid"].as_str().unwrap_or_default().starts_with("0-"));
}

/// TYPE_CASES values held by individual fixture files: B10–B12, B17, D19,
/// D24, E17, E27, H7 and the tagged GTID of MySQL 9.
#[test]
fn type_cases_in_fixture_files() {
    if fixtures::absent("type_cases_in_fixture_files") {
        return;
    }
    let rc = "blackbeam__rust_mysql_common/test-data/binlogs/";
    let first = |rel: &str| -> serde_json::Value {
        rows(&file(rel))
            .first()
            .map(|v| (*v).clone())
            .expect("a row")
    };

    let dec = rows(&file(
        "go-mysql-org__go-mysql/replication/t/tcb-eval002c-bin.003320",
    ))
    .into_iter()
    .map(|l| l["after"].clone())
    .collect::<Vec<_>>();
    assert_eq!(
        dec[0]["@3"], "-11",
        "B10: DECIMAL(5,0) stores the rounded value"
    );
    assert_eq!(
        dec[0]["@8"], "-9.99999999999999",
        "B11: clipped DECIMAL(15,14)"
    );
    assert_eq!(
        dec[1]["@12"], "0.0123456789012345678912345",
        "B12: DECIMAL(30,25)"
    );

    let easy = first("EasyPost__rust-mysql-binlog/test_data/bin-log.000001");
    assert_eq!(
        easy["after"]["@2"], "0.10000",
        "B17: DECIMAL(10,5) keeps its scale"
    );

    let t = first(&format!("{rc}time_issue.000001"));
    assert_eq!(
        t["after"]["@1"], "-507:48:27",
        "D19: TIME beyond 24 hours, negative"
    );

    let es = rows(&file(&format!("{rc}mysql-enum-string-set.000001")))
        .into_iter()
        .map(|l| l["after"].clone())
        .collect::<Vec<_>>();
    assert_eq!(es[0]["f3"], "var1");
    assert_eq!(es[0]["f4"], "one,three");
    assert_eq!(es[0]["f5"], "0123456789");
    assert_eq!(es[1]["f1"], "field1");
    assert_eq!(es[1]["f4"], "two,four");

    let bit = first(&format!("{rc}mysql_type_bit.000001"));
    assert_eq!(
        bit["after"],
        serde_json::json!({"a": 4, "b": "foo", "c": 32}),
        "E27"
    );

    let vec = first(&format!("{rc}vector.binlog"));
    assert_eq!(
        vec["after"]["vector_column"]["base64"], "zcyMP83MDEAzM1NA",
        "H7: [1.1,2.2,3.3] as f32 LE"
    );

    let tagged = file(&format!("{rc}binlog_transaction_with_GTID_TAG.000001"));
    let row = rows(&tagged)[0].clone();
    assert_eq!(row["gtid"], "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3");
    assert_eq!(row["after"]["@3"], "250.00");

    // D24: MySQL 5.5 legacy DATETIME (8-byte packed) and TIMESTAMP (epoch).
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixtures::binlog(
            "osheroff__mysql-binlog-connector-java/src/test/resources/mysql-bin.sakila.gz",
        ))
        .expect("gz"),
    )
    .read_to_end(&mut raw)
    .expect("gunzip");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("sakila.000001");
    std::fs::write(&path, raw).expect("write");
    let events: Vec<sluice_binlog::Event> = sluice_binlog::file::BinlogFile::open(&path, None)
        .expect("open")
        .map(|e| e.expect("event"))
        .collect();
    let lines = fixtures::to_lines(events);
    let rental = find(&lines, "rental");
    assert_eq!(rental[0]["after"]["@2"], "2005-05-24 22:53:30");
    assert_eq!(rental[0]["after"]["@7"], "2006-02-15 20:30:53");
    assert!(rows(&lines).len() > 40_000, "every sakila row decodes");
}

/// Every `pos` printed for a row change of a real binlog (MySQL 5.1–9.x,
/// MariaDB, compressed payloads included) is a valid `--start-offset`: the
/// decode from there prints exactly the lines from that change on.
#[test]
fn every_row_pos_is_a_valid_start_offset() {
    if fixtures::absent("every_row_pos_is_a_valid_start_offset") {
        return;
    }
    let mut checked = 0;
    for entry in fixtures::manifest() {
        if entry.kind != "binlog" || entry.negative {
            continue;
        }
        let all = decode(&entry.path);
        if !all.status.success() {
            continue; // decoding failures are the test above's business
        }
        let all: Vec<serde_json::Value> = String::from_utf8_lossy(&all.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        // The first and the last row change of each file, and one inside a
        // transaction after its first change, keep the run short.
        let changes: Vec<usize> = (0..all.len())
            .filter(|&i| {
                matches!(
                    all[i]["kind"].as_str(),
                    Some("insert" | "update" | "delete")
                )
            })
            .collect();
        let mut picks: Vec<usize> = changes
            .first()
            .into_iter()
            .chain(changes.last())
            .copied()
            .collect();
        if let Some(&mid) = changes.iter().find(|&&i| {
            i > 0 && all[i - 1]["kind"] != "begin" && all[i - 1]["pos"] != all[i]["pos"]
        }) {
            picks.push(mid);
        }
        picks.dedup();
        for i in picks {
            let pos = all[i]["pos"].as_str().expect("pos");
            let offset = pos.rsplit(':').next().expect("file:offset");
            let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["binlog", "decode", "--start-offset", offset])
                .arg(&entry.path)
                .output()
                .expect("sluice runs");
            assert!(
                out.status.success(),
                "{} --start-offset {offset}: {}",
                entry.path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let from: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON line"))
                .collect();
            // Lines at the same pos as the change (a compressed payload holds
            // the whole transaction at one offset) start the expected tail.
            let first = all
                .iter()
                .position(|l| l["pos"] == all[i]["pos"])
                .expect("pos");
            assert_eq!(
                from,
                all[first..],
                "{} --start-offset {offset}",
                entry.path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} start offsets checked");
}
