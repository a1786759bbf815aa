//! The loader (`sluice-load`) against a real MariaDB target (one server per test).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_core::schema::type_code as tc;
use sluice_core::{
    ChangeKind, Classify, Column, DateTime, ErrorClass, Row, RowChange, TableSchema, Time, Value,
};
use sluice_load::{
    CheckpointMark, Limits, LoadError, Loader, LoaderOptions, RetryPolicy, UniqueConflict,
};
use sluice_testkit::{wait_until_async, MariaDb};

const UTF8MB4: u16 = 45; // utf8mb4_general_ci
const LATIN1: u16 = 8;
const BINARY: u16 = 63;

fn col(name: &str, type_code: u8, collation: Option<u16>) -> Column {
    Column {
        name: name.into(),
        type_code,
        meta: 0,
        nullable: true,
        unsigned: false,
        collation,
        labels: None,
    }
}

fn schema(db: &str, table: &str, columns: Vec<Column>, pk: Vec<usize>) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        schema: db.into(),
        table: table.into(),
        columns,
        primary_key: pk,
        has_names: true,
    })
}

/// `(id INT, v VARCHAR)` keyed on id.
fn kv(db: &str, table: &str) -> Arc<TableSchema> {
    schema(
        db,
        table,
        vec![
            col("id", tc::LONG, None),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
        ],
        vec![0],
    )
}

fn r(id: i64, v: &str) -> Row {
    vec![Value::Int(id), Value::Text(v.into())]
}

fn ins(t: &Arc<TableSchema>, after: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Insert,
        before: None,
        after: Some(after),
    }
}

fn upd(t: &Arc<TableSchema>, before: Row, after: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Update,
        before: Some(before),
        after: Some(after),
    }
}

fn del(t: &Arc<TableSchema>, before: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Delete,
        before: Some(before),
        after: None,
    }
}

async fn loader(db: &MariaDb, opts: LoaderOptions) -> Loader {
    let l = Loader::connect(&db.url(), opts).await.expect("loader");
    l.check().await.expect("target reachable");
    l
}

fn opts(workers: usize) -> LoaderOptions {
    LoaderOptions {
        workers,
        ..LoaderOptions::default()
    }
}

/// Every row of a query as text (NULL → None), over the text protocol.
async fn text_rows(db: &MariaDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql_async::Row> = db.query(sql).await.expect(sql);
    rows.into_iter()
        .map(|row| {
            row.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).expect("utf8")),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

/// `id:v` lines of a kv table, ordered by id.
async fn kv_rows(db: &MariaDb, table: &str) -> Vec<String> {
    text_rows(db, &format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .into_iter()
        .map(|r| {
            format!(
                "{}:{}",
                r[0].clone().unwrap(),
                r[1].clone().unwrap_or("NULL".into())
            )
        })
        .collect()
}

#[tokio::test]
async fn every_value_family_round_trips() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE ty; CREATE TABLE ty.t (
           id INT PRIMARY KEY,
           i8 TINYINT, u8 TINYINT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
           f FLOAT, d DOUBLE, dec1 DECIMAL(20,4),
           dt DATE, dtm DATETIME(3), ts TIMESTAMP(6) NULL, tm TIME(2), yr YEAR,
           txt VARCHAR(100) CHARACTER SET utf8mb4, lat VARCHAR(20) CHARACTER SET latin1,
           bin VARBINARY(20), blb BLOB,
           en ENUM('a','b','c'), st SET('x','y','z'), bt BIT(10),
           js JSON, geo GEOMETRY NULL, nul INT NULL)",
    )
    .await
    .unwrap();
    let labels = |ls: &[&str]| Some(ls.iter().map(|l| Arc::<str>::from(*l)).collect());
    let mut en = col("en", tc::ENUM, Some(UTF8MB4));
    en.labels = labels(&["a", "b", "c"]);
    let mut st = col("st", tc::SET, Some(UTF8MB4));
    st.labels = labels(&["x", "y", "z"]);
    let t = schema(
        "ty",
        "t",
        vec![
            col("id", tc::LONG, None),
            col("i8", tc::TINY, None),
            col("u8", tc::TINY, None),
            col("i64", tc::LONGLONG, None),
            col("u64", tc::LONGLONG, None),
            col("f", tc::FLOAT, None),
            col("d", tc::DOUBLE, None),
            col("dec1", tc::NEWDECIMAL, None),
            col("dt", tc::DATE, None),
            col("dtm", tc::DATETIME2, None),
            col("ts", tc::TIMESTAMP2, None),
            col("tm", tc::TIME2, None),
            col("yr", tc::YEAR, None),
            col("txt", tc::VARCHAR, Some(UTF8MB4)),
            col("lat", tc::VARCHAR, Some(LATIN1)),
            col("bin", tc::VARCHAR, Some(BINARY)),
            col("blb", tc::BLOB, Some(BINARY)),
            en,
            st,
            col("bt", tc::BIT, None),
            col("js", tc::JSON, None),
            col("geo", tc::GEOMETRY, None),
            col("nul", tc::LONG, None),
        ],
        vec![0],
    );
    let date = |year, month, day| Value::Date { year, month, day };
    let dt = |year, month, day, hour, minute, second, micros| {
        Value::DateTime(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp: 3,
        })
    };
    let time = |negative, hours, minutes, seconds, micros| {
        Value::Time(Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp: 2,
        })
    };
    // POINT(1 2), SRID 0: SRID (LE) + WKB.
    let point: Vec<u8> = [0u8, 0, 0, 0, 1, 1, 0, 0, 0]
        .into_iter()
        .chain(1.0f64.to_le_bytes())
        .chain(2.0f64.to_le_bytes())
        .collect();
    let rows: Vec<Row> = vec![
        vec![
            Value::Int(1),
            Value::Int(-128),
            Value::Int(255),
            Value::Int(-42),
            Value::UInt(42),
            Value::Float(1.5),
            Value::Double(-8.9),
            Value::Decimal("12.3400".into()),
            date(2024, 6, 15),
            dt(2024, 6, 15, 12, 34, 56, 789_000),
            Value::Timestamp {
                secs: 1_718_454_896,
                micros: 123_456,
                fsp: 6,
            },
            time(false, 12, 34, 56, 120_000),
            Value::Year(2024),
            Value::Text("héllo 'q' \"dq\" \\ ✓ 🎉".into()),
            Value::Text("café".into()),
            Value::Bytes(vec![0, 1, 0xfe, 0xff]),
            Value::Bytes(b"blob\0data".to_vec()),
            Value::Enum {
                index: 3,
                label: Some("c".into()),
            },
            Value::Set {
                bits: 0b011,
                labels: Some("x,y".into()),
            },
            Value::Bit {
                bits: 0b10_0000_0001,
                width: 10,
            },
            Value::Json(r#"{"a": [1, 2.0, "x"], "b": null}"#.into()),
            Value::Geometry(point.clone()),
            Value::Null,
        ],
        vec![
            Value::Int(2),
            Value::Int(127),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Float(3.4e38),
            Value::Double(f64::MAX),
            Value::Decimal("-9999999999999999.9999".into()),
            date(0, 0, 0),
            dt(0, 0, 0, 0, 0, 0, 0),
            Value::Timestamp {
                secs: 0,
                micros: 0,
                fsp: 6,
            },
            time(true, 838, 59, 59, 0),
            Value::Year(0),
            Value::Text(String::new()),
            Value::Text("ÿ".into()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![0xff; 300]),
            // No labels in the table map: by index / bitmask.
            Value::Enum {
                index: 2,
                label: None,
            },
            Value::Set {
                bits: 0b101,
                labels: None,
            },
            Value::Bit {
                bits: 1023,
                width: 10,
            },
            Value::Json("[]".into()),
            Value::Null,
            Value::Int(7),
        ],
        vec![
            Value::Int(3),
            Value::Int(0),
            Value::Int(1),
            Value::Int(i64::MAX),
            Value::UInt(0),
            Value::Float(-0.1),
            Value::Double(5e-324),
            Value::Decimal("0.0000".into()),
            date(2015, 0, 21),
            dt(2024, 2, 31, 23, 59, 59, 999_000),
            Value::Timestamp {
                secs: 2_147_483_647,
                micros: 999_999,
                fsp: 6,
            },
            time(false, 100, 0, 0, 500_000),
            Value::Year(1901),
            Value::Text("a\nb\tc\0d".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Enum {
                index: 1,
                label: Some("a".into()),
            },
            Value::Set {
                bits: 0,
                labels: Some(String::new()),
            },
            Value::Bit { bits: 0, width: 10 },
            Value::Json("\"str\"".into()),
            Value::Geometry(point.clone()),
            Value::Null,
        ],
    ];
    let changes: Vec<RowChange> = rows.iter().map(|row| ins(&t, row.clone())).collect();
    let l = loader(&db, opts(2)).await;
    l.apply_batch(1, &changes).await.unwrap();

    let got = text_rows(
        &db,
        "SELECT id, i8, u8, i64, u64, dec1, CAST(dt AS CHAR), CAST(dtm AS CHAR), CAST(ts AS CHAR),
                CAST(tm AS CHAR), CAST(yr AS CHAR), txt, lat, HEX(bin), HEX(blb), CAST(en AS CHAR),
                en + 0, CAST(st AS CHAR), st + 0, bt + 0, js, HEX(geo), nul
         FROM ty.t ORDER BY id",
    )
    .await;
    let s = |v: &str| Some(v.to_string());
    let expected: Vec<Vec<Option<String>>> = vec![
        vec![
            s("1"),
            s("-128"),
            s("255"),
            s("-42"),
            s("42"),
            s("12.3400"),
            s("2024-06-15"),
            s("2024-06-15 12:34:56.789"),
            s("2024-06-15 12:34:56.123456"),
            s("12:34:56.12"),
            s("2024"),
            s("héllo 'q' \"dq\" \\ ✓ 🎉"),
            s("café"),
            s("0001FEFF"),
            s("626C6F620064617461"),
            s("c"),
            s("3"),
            s("x,y"),
            s("3"),
            s("513"),
            s(r#"{"a": [1, 2.0, "x"], "b": null}"#),
            s("000000000101000000000000000000F03F0000000000000040"),
            None,
        ],
        vec![
            s("2"),
            s("127"),
            s("0"),
            s("-9223372036854775808"),
            s("18446744073709551615"),
            s("-9999999999999999.9999"),
            s("0000-00-00"),
            s("0000-00-00 00:00:00.000"),
            s("0000-00-00 00:00:00.000000"),
            s("-838:59:59.00"),
            s("0000"),
            s(""),
            s("ÿ"),
            s(""),
            Some("FF".repeat(300)),
            s("b"),
            s("2"),
            s("x,z"),
            s("5"),
            s("1023"),
            s("[]"),
            None,
            s("7"),
        ],
        vec![
            s("3"),
            s("0"),
            s("1"),
            s("9223372036854775807"),
            s("0"),
            s("0.0000"),
            s("2015-00-21"),
            s("2024-02-31 23:59:59.999"),
            s("2038-01-19 03:14:07.999999"),
            s("100:00:00.50"),
            s("1901"),
            s("a\nb\tc\0d"),
            None,
            None,
            None,
            s("a"),
            s("1"),
            s(""),
            s("0"),
            s("0"),
            s("\"str\""),
            s("000000000101000000000000000000F03F0000000000000040"),
            None,
        ],
    ];
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    assert_eq!(got.len(), 3);

    // Floats exactly, over the binary protocol.
    let mut conn = db.conn().await.unwrap();
    let floats: Vec<(i32, f32, f64)> = conn
        .exec("SELECT id, f, d FROM ty.t ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(
        floats
            .iter()
            .map(|(_, f, d)| (f.to_bits(), d.to_bits()))
            .collect::<Vec<_>>(),
        vec![
            (1.5f32.to_bits(), (-8.9f64).to_bits()),
            (3.4e38f32.to_bits(), f64::MAX.to_bits()),
            ((-0.1f32).to_bits(), 5e-324f64.to_bits()),
        ]
    );
    conn.disconnect().await.unwrap();

    // An AUTO_INCREMENT key 0 stays 0 (NO_AUTO_VALUE_ON_ZERO).
    db.exec("CREATE TABLE ty.ai (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    let ai = kv("ty", "ai");
    l.apply_batch(2, &[ins(&ai, r(0, "zero")), ins(&ai, r(5, "five"))])
        .await
        .unwrap();
    assert_eq!(kv_rows(&db, "ty.ai").await, ["0:zero", "5:five"]);
}

#[tokio::test]
async fn replaying_a_batch_converges() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE rp; CREATE TABLE rp.t (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TABLE rp.c (a INT, b VARCHAR(10) COLLATE utf8mb4_bin, v VARCHAR(20), PRIMARY KEY (a, b));
         INSERT INTO rp.t VALUES (1, 'one'), (2, 'two'), (3, 'three');
         INSERT INTO rp.c VALUES (1, 'x', 'c1')",
    )
    .await
    .unwrap();
    let t = kv("rp", "t");
    let c = schema(
        "rp",
        "c",
        vec![
            col("a", tc::LONG, None),
            col("b", tc::VARCHAR, Some(46)),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
        ],
        vec![0, 1],
    );
    let cr = |a: i64, b: &str, v: &str| {
        vec![Value::Int(a), Value::Text(b.into()), Value::Text(v.into())]
    };
    let batch = vec![
        ins(&t, r(4, "four")),
        upd(&t, r(1, "one"), r(1, "uno")),
        del(&t, r(2, "two")),
        ins(&t, r(5, "five")),
        del(&t, r(5, "five")), // I + D
        del(&t, r(3, "three")),
        ins(&t, r(3, "tres")), // D + I
        upd(&c, cr(1, "x", "c1"), cr(1, "y", "c1")),
        ins(&c, cr(2, "x", "c2")),
    ];
    let l = loader(&db, opts(3)).await;
    let first = l.apply_batch(10, &batch).await.unwrap();
    assert_eq!((first.changes, first.upserts, first.deletes), (9, 5, 3));
    let after_once = (
        kv_rows(&db, "rp.t").await,
        text_rows(&db, "SELECT * FROM rp.c ORDER BY a, b").await,
    );
    assert_eq!(after_once.0, ["1:uno", "3:tres", "4:four"]);
    for _ in 0..2 {
        l.apply_batch(10, &batch).await.unwrap();
        let again = (
            kv_rows(&db, "rp.t").await,
            text_rows(&db, "SELECT * FROM rp.c ORDER BY a, b").await,
        );
        assert_eq!(again, after_once);
    }
    // A replay that cuts the history differently: the first part alone,
    // then everything (the first part again included).
    db.exec("DELETE FROM rp.t; INSERT INTO rp.t VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await
        .unwrap();
    l.apply_batch(11, &batch[..4]).await.unwrap();
    assert_eq!(
        kv_rows(&db, "rp.t").await,
        ["1:uno", "3:three", "4:four", "5:five"]
    );
    l.apply_batch(12, &batch).await.unwrap();
    assert_eq!(kv_rows(&db, "rp.t").await, after_once.0);
}

#[tokio::test]
async fn key_change_chains() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE kc; CREATE TABLE kc.t (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO kc.t VALUES (1, 'a'), (2, 'b'), (10, 'ten')",
    )
    .await
    .unwrap();
    let t = kv("kc", "t");
    let batch = vec![
        // 1 → 3 → 4 → 5, then a new 1 and 3.
        upd(&t, r(1, "a"), r(3, "a")),
        upd(&t, r(3, "a"), r(4, "a")),
        upd(&t, r(4, "a"), r(5, "a2")),
        ins(&t, r(1, "new1")),
        ins(&t, r(3, "new3")),
        // Swap 2 and 10 through a temporary key.
        upd(&t, r(2, "b"), r(99, "b")),
        upd(&t, r(10, "ten"), r(2, "ten")),
        upd(&t, r(99, "b"), r(10, "b")),
        // A key that moves away and back.
        upd(&t, r(5, "a2"), r(6, "a2")),
        upd(&t, r(6, "a2"), r(5, "a3")),
    ];
    let l = loader(&db, opts(4)).await;
    for id in [20, 21] {
        l.apply_batch(id, &batch).await.unwrap();
        assert_eq!(
            kv_rows(&db, "kc.t").await,
            ["1:new1", "2:ten", "3:new3", "5:a3", "10:b"]
        );
    }
}

#[tokio::test]
async fn table_without_a_key_applies_serially_by_full_row() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE nk; CREATE TABLE nk.t (id INT, v VARCHAR(20), f FLOAT, d DATETIME(2))",
    )
    .await
    .unwrap();
    let t = schema(
        "nk",
        "t",
        vec![
            col("id", tc::LONG, None),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
            col("f", tc::FLOAT, None),
            col("d", tc::DATETIME2, None),
        ],
        vec![],
    );
    let when = Value::DateTime(DateTime {
        year: 2024,
        month: 1,
        day: 2,
        hour: 3,
        minute: 4,
        second: 5,
        micros: 60_000,
        fsp: 2,
    });
    let row = |id: i64, v: Option<&str>, f: f32| {
        vec![
            Value::Int(id),
            v.map_or(Value::Null, |v| Value::Text(v.into())),
            Value::Float(f),
            when.clone(),
        ]
    };
    let batch = vec![
        ins(&t, row(1, Some("a"), 0.1)),
        ins(&t, row(1, Some("a"), 0.1)), // a real duplicate
        ins(&t, row(2, Some("b"), 2.5)),
        ins(&t, row(3, None, -1.25)),
        upd(&t, row(1, Some("a"), 0.1), row(1, Some("c"), 0.1)),
        del(&t, row(2, Some("b"), 2.5)),
        del(&t, row(3, None, -1.25)), // NULL matched with <=>
        ins(&t, row(4, Some("d"), 4.0)),
    ];
    let l = loader(&db, opts(4)).await;
    let stats = l.apply_batch(30, &batch).await.unwrap();
    assert_eq!(stats.serial_ops, 9);
    assert_eq!(stats.workers, 1);
    assert_eq!(
        kv_rows(&db, "nk.t").await,
        ["1:a", "1:c", "4:d"],
        "one duplicate updated, one kept"
    );
}

#[tokio::test]
async fn unique_key_of_the_target_is_used_when_the_table_map_has_no_primary_key() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE uk; CREATE TABLE uk.t (code VARCHAR(10) NOT NULL, v VARCHAR(20), n INT NULL,
            UNIQUE KEY by_n (n), UNIQUE KEY by_code (code))",
    )
    .await
    .unwrap();
    let t = schema(
        "uk",
        "t",
        vec![
            col("code", tc::VARCHAR, Some(UTF8MB4)),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
            col("n", tc::LONG, None),
        ],
        vec![],
    );
    let row = |c: &str, v: &str| vec![Value::Text(c.into()), Value::Text(v.into()), Value::Null];
    let batch = vec![
        ins(&t, row("a", "1")),
        ins(&t, row("b", "2")),
        upd(&t, row("a", "1"), row("a", "1b")),
        upd(&t, row("b", "2"), row("c", "2")),
    ];
    let l = loader(&db, opts(2)).await;
    for id in [40, 41, 42] {
        let stats = l.apply_batch(id, &batch).await.unwrap();
        assert_eq!(
            (stats.upserts, stats.deletes, stats.serial_ops),
            (2, 1, 0),
            "keyed by `code`"
        );
        let rows = text_rows(&db, "SELECT code, v FROM uk.t ORDER BY code").await;
        assert_eq!(
            rows,
            vec![
                vec![Some("a".to_string()), Some("1b".to_string())],
                vec![Some("c".to_string()), Some("2".to_string())],
            ]
        );
    }
}

#[tokio::test]
async fn swapped_unique_values_fall_back_to_source_order() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE sw; CREATE TABLE sw.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, UNIQUE KEY (v));
         INSERT INTO sw.t VALUES (1, 'a'), (2, 'b')",
    )
    .await
    .unwrap();
    let t = kv("sw", "t");
    let batch = vec![
        upd(&t, r(1, "a"), r(1, "tmp")),
        upd(&t, r(2, "b"), r(2, "a")),
        upd(&t, r(1, "tmp"), r(1, "b")),
    ];
    let l = loader(&db, opts(2)).await;
    let stats = l.apply_batch(50, &batch).await.unwrap();
    assert!(stats.serial_fallback, "{stats:?}");
    assert_eq!(kv_rows(&db, "sw.t").await, ["1:b", "2:a"]);

    // A duplicate the source order cannot resolve is a definite error with
    // the exact row.
    let bad = vec![ins(&t, r(3, "a"))];
    let e = l.apply_batch(51, &bad).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Definite);
    let msg = e.to_string();
    assert!(
        msg.starts_with("batch 51: table `sw`.`t`, key (id=3): "),
        "{msg}"
    );
    assert!(
        msg.contains("1062") && msg.contains("Duplicate entry 'a'"),
        "{msg}"
    );
    assert_eq!(
        kv_rows(&db, "sw.t").await,
        ["1:b", "2:a"],
        "nothing overwritten"
    );

    // Replaying an older batch onto a target that is already ahead: row 1
    // held 'a' then gave it to row 2. `Fail` stops; `Replace` converges once
    // the later batch is replayed too.
    let older = vec![upd(&t, r(1, "old"), r(1, "a"))];
    let later = vec![upd(&t, r(1, "a"), r(1, "b")), upd(&t, r(2, "x"), r(2, "a"))];
    assert!(l
        .apply_batch(52, &older)
        .await
        .unwrap_err()
        .is_unique_conflict());
    l.apply_batch_with(52, &older, UniqueConflict::Replace)
        .await
        .unwrap();
    assert_eq!(kv_rows(&db, "sw.t").await, ["1:a"], "row 2 deleted for now");
    l.apply_batch_with(53, &later, UniqueConflict::Replace)
        .await
        .unwrap();
    assert_eq!(kv_rows(&db, "sw.t").await, ["1:b", "2:a"]);
}

#[tokio::test]
async fn definite_error_names_batch_table_key_and_server_error() {
    let db = MariaDb::target().await.unwrap();
    db.exec("CREATE DATABASE de; CREATE TABLE de.t (id INT PRIMARY KEY, v VARCHAR(2))")
        .await
        .unwrap();
    let t = kv("de", "t");
    let l = loader(&db, opts(1)).await;
    let batch = vec![
        ins(&t, r(1, "ok")),
        ins(&t, r(2, "no")),
        ins(&t, r(3, "abc")),
        ins(&t, r(4, "x")),
    ];
    let started = Instant::now();
    let e = l.apply_batch(42, &batch).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Definite);
    assert_eq!(l.retries_total(), 0, "definite errors are not retried");
    assert!(started.elapsed() < Duration::from_secs(5));
    let msg = e.to_string();
    assert_eq!(
        msg,
        "batch 42: table `de`.`t`, key (id=3): the target refused the change: \
         error 1406 (22001): Data too long for column 'v' at row 3"
    );
    assert!(matches!(e, LoadError::Rejected { .. }));
    // Nothing of the failed transaction is on the target.
    assert!(kv_rows(&db, "de.t").await.is_empty());

    // A column the target does not have.
    let wider = schema(
        "de",
        "t",
        vec![
            col("id", tc::LONG, None),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
            col("extra", tc::LONG, None),
        ],
        vec![0],
    );
    let e = l
        .apply_batch(
            43,
            &[ins(
                &wider,
                vec![Value::Int(9), Value::Text("z".into()), Value::Int(1)],
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Definite);
    assert!(
        e.to_string()
            .contains("batch 43: table `de`.`t`, key (id=9)"),
        "{e}"
    );
    assert!(e.to_string().contains("1054"), "{e}");

    // Values that cannot be written are refused before any SQL.
    let e = l
        .apply_batch(
            44,
            &[ins(&t, vec![Value::Int(5), Value::JsonDiff("[]".into())])],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LoadError::Refused { .. }));
    assert!(
        e.to_string()
            .starts_with("batch 44: table `de`.`t`, key (id=5): column `v`"),
        "{e}"
    );
}

#[tokio::test]
async fn lock_wait_timeout_is_retried_until_the_lock_is_released() {
    let db = MariaDb::target().await.unwrap();
    db.exec("CREATE DATABASE lw; CREATE TABLE lw.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO lw.t VALUES (1, 'old')")
        .await
        .unwrap();
    let t = kv("lw", "t");
    let l = loader(
        &db,
        LoaderOptions {
            workers: 2,
            lock_wait_timeout: Some(Duration::from_secs(1)),
            retry: RetryPolicy::bounded(30, Duration::from_millis(20), Duration::from_millis(200)),
            ..LoaderOptions::default()
        },
    )
    .await;
    let mut holder = db.conn().await.unwrap();
    holder.query_drop("BEGIN").await.unwrap();
    holder
        .query_drop("SELECT * FROM lw.t WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();

    let batch = vec![upd(&t, r(1, "old"), r(1, "new")), ins(&t, r(2, "two"))];
    let (applied, ()) = tokio::join!(l.apply_batch(60, &batch), async {
        wait_until_async(
            "a retried lock wait timeout",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async { (l.retries_total() >= 1).then_some(()) },
        )
        .await
        .unwrap();
        holder.query_drop("ROLLBACK").await.unwrap();
    });
    let stats = applied.unwrap();
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(kv_rows(&db, "lw.t").await, ["1:new", "2:two"]);
}

#[tokio::test]
async fn killed_connection_is_retried() {
    let db = MariaDb::target().await.unwrap();
    db.exec("CREATE DATABASE kl; CREATE TABLE kl.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO kl.t VALUES (1, 'old')")
        .await
        .unwrap();
    let t = kv("kl", "t");
    let l = loader(
        &db,
        LoaderOptions {
            workers: 1,
            retry: RetryPolicy::bounded(10, Duration::from_millis(20), Duration::from_millis(200)),
            ..LoaderOptions::default()
        },
    )
    .await;
    let mut holder = db.conn().await.unwrap();
    holder.query_drop("BEGIN").await.unwrap();
    holder
        .query_drop("SELECT * FROM kl.t WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();

    let batch = vec![ins(&t, r(0, "zero")), upd(&t, r(1, "old"), r(1, "new"))];
    let (applied, ()) = tokio::join!(l.apply_batch(70, &batch), async {
        // The worker is blocked on the row lock, mid-transaction: kill it.
        let id: u64 = wait_until_async("the loader's blocked statement", Duration::from_secs(30), Duration::from_millis(50), || async {
            let rows: Vec<u64> = db
                .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO `kl`.`t`%'")
                .await
                .unwrap();
            rows.first().copied()
        })
        .await
        .unwrap();
        db.exec(&format!("KILL CONNECTION {id}")).await.unwrap();
        wait_until_async(
            "a retry after KILL",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async { (l.retries_total() >= 1).then_some(()) },
        )
        .await
        .unwrap();
        holder.query_drop("ROLLBACK").await.unwrap();
    });
    let stats = applied.unwrap();
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(kv_rows(&db, "kl.t").await, ["0:zero", "1:new"]);
}

/// splitmix64, for a seeded workload.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[tokio::test]
async fn many_workers_keep_per_key_order() {
    let db = MariaDb::target().await.unwrap();
    db.exec("CREATE DATABASE mw; CREATE TABLE mw.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let t = kv("mw", "t");
    let l = loader(
        &db,
        LoaderOptions {
            workers: 4,
            // Small statements: many per worker.
            limits: Limits {
                max_bytes: 4 << 20,
                max_rows: 16,
            },
            ..LoaderOptions::default()
        },
    )
    .await;
    // The source, modelled: id → v.
    let mut source: std::collections::BTreeMap<i64, String> = Default::default();
    let mut seed = 7u64;
    for batch_id in 0..5u64 {
        let mut batch = Vec::new();
        for n in 0..3000 {
            let k = (next(&mut seed) % 300) as i64;
            let v = format!("b{batch_id}n{n}");
            let change = match source.get(&k).cloned() {
                None => ins(&t, r(k, &v)),
                Some(old) => match next(&mut seed) % 10 {
                    0 => del(&t, r(k, &old)),
                    1 => {
                        let k2 = (next(&mut seed) % 300) as i64;
                        if source.contains_key(&k2) {
                            upd(&t, r(k, &old), r(k, &v))
                        } else {
                            upd(&t, r(k, &old), r(k2, &v))
                        }
                    }
                    _ => upd(&t, r(k, &old), r(k, &v)),
                },
            };
            if let Some(b) = &change.before {
                let Value::Int(id) = b[0] else { unreachable!() };
                source.remove(&id);
            }
            if let Some(a) = &change.after {
                let (Value::Int(id), Value::Text(v)) = (&a[0], &a[1]) else {
                    unreachable!()
                };
                source.insert(*id, v.clone());
            }
            batch.push(change);
        }
        let stats = l.apply_batch(batch_id, &batch).await.unwrap();
        assert_eq!(stats.workers, 4, "{stats:?}");
        let expected: Vec<String> = source.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        assert_eq!(
            kv_rows(&db, "mw.t").await,
            expected,
            "after batch {batch_id}"
        );
    }
}

/// `meta::delete_checkpoint` removes one pipeline's row and returns what
/// it held; another pipeline's row stays; a target never migrated answers
/// with the server's "no such table" (42S02), which `positions set` reports
/// as nothing to remove.
#[tokio::test]
async fn checkpoint_row_is_deleted_with_what_it_held() {
    let db = MariaDb::target().await.unwrap();
    let l = loader(&db, opts(1)).await;
    let missing = sluice_load::meta::delete_checkpoint(l.pool(), "shop")
        .await
        .expect_err("no metadata tables yet");
    let code = missing
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42S02"), "{missing}");
    l.migrate().await.unwrap();
    l.record_checkpoint("shop", 5, "mysql-bin.000001:1234", "mysql-bin.000001:1234")
        .await
        .unwrap();
    l.record_checkpoint("other", 1, "mysql-bin.000002:4", "mysql-bin.000002:4")
        .await
        .unwrap();
    let removed = sluice_load::meta::delete_checkpoint(l.pool(), "shop")
        .await
        .unwrap()
        .expect("the row it removed");
    assert_eq!(
        (removed.batch_id, removed.position.as_str()),
        (5, "mysql-bin.000001:1234")
    );
    assert_eq!(l.read_checkpoint("shop").await.unwrap(), None);
    assert_eq!(
        sluice_load::meta::delete_checkpoint(l.pool(), "shop")
            .await
            .unwrap(),
        None
    );
    let other = l.read_checkpoint("other").await.unwrap().expect("kept");
    assert_eq!(other.batch_id, 1);
    assert_eq!(
        sluice_load::meta::delete_checkpoint_statement("shop"),
        "DELETE FROM sluice_meta.checkpoint WHERE pipeline = 'shop'"
    );
}

#[tokio::test]
async fn migrations_and_checkpoint() {
    let db = MariaDb::target().await.unwrap();
    let l = loader(&db, opts(2)).await;
    l.migrate().await.unwrap();
    l.migrate().await.unwrap(); // idempotent
    assert_eq!(l.read_checkpoint("shop").await.unwrap(), None);
    l.record_checkpoint("shop", 5, "mysql-bin.000001:1234", "mysql-bin.000001:1234")
        .await
        .unwrap();
    l.record_checkpoint("other", 1, "mysql-bin.000002:4", "mysql-bin.000002:4")
        .await
        .unwrap();
    l.record_checkpoint(
        "shop",
        6,
        "mysql-bin.000001:5678 gtid=0-1-9",
        "mysql-bin.000001:7000",
    )
    .await
    .unwrap();
    let cp = l.read_checkpoint("shop").await.unwrap().unwrap();
    assert_eq!(
        (cp.batch_id, cp.position.as_str()),
        (6, "mysql-bin.000001:5678 gtid=0-1-9")
    );
    assert_eq!(cp.updated_at.len(), 26, "{cp:?}");
    assert_eq!(cp.applying, None);
    assert_eq!(cp.through.as_deref(), Some("mysql-bin.000001:7000"));
    // The batch in flight is recorded before it is applied and cleared by
    // its checkpoint.
    l.record_intent("shop", 7, "mysql-bin.000001:9000")
        .await
        .unwrap();
    let cp = l.read_checkpoint("shop").await.unwrap().unwrap();
    assert_eq!(cp.batch_id, 6);
    assert_eq!(cp.applying, Some((7, "mysql-bin.000001:9000".to_string())));
    l.record_checkpoint("shop", 7, "mysql-bin.000001:9000", "mysql-bin.000001:9000")
        .await
        .unwrap();
    let cp = l.read_checkpoint("shop").await.unwrap().unwrap();
    assert_eq!((cp.batch_id, cp.applying), (7, None));
    // A pipeline's first intent creates its row with no position yet.
    l.record_intent("fresh", 1, "mysql-bin.000001:4")
        .await
        .unwrap();
    let cp = l.read_checkpoint("fresh").await.unwrap().unwrap();
    assert_eq!((cp.batch_id, cp.position.as_str()), (0, ""));
    let versions = text_rows(
        &db,
        "SELECT version, success FROM sluice_meta._sqlx_migrations ORDER BY version",
    )
    .await;
    assert_eq!(
        versions,
        vec![
            vec![Some("1".to_string()), Some("1".to_string())],
            vec![Some("2".to_string()), Some("1".to_string())],
            vec![Some("3".to_string()), Some("1".to_string())],
            vec![Some("4".to_string()), Some("1".to_string())],
            vec![Some("5".to_string()), Some("1".to_string())],
            vec![Some("6".to_string()), Some("1".to_string())]
        ]
    );
    // The migration connection's default database did not leak into the
    // pool.
    let current: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(l.pool())
        .await
        .unwrap();
    assert_eq!(current, None);
}

#[tokio::test]
async fn throughput_of_a_100k_row_insert_batch() {
    let db = MariaDb::target().await.unwrap();
    db.exec("CREATE DATABASE tp; CREATE TABLE tp.t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(64), c DOUBLE)")
        .await
        .unwrap();
    let t = schema(
        "tp",
        "t",
        vec![
            col("id", tc::LONGLONG, None),
            col("a", tc::LONG, None),
            col("b", tc::VARCHAR, Some(UTF8MB4)),
            col("c", tc::DOUBLE, None),
        ],
        vec![0],
    );
    const N: i64 = 100_000;
    let batch: Vec<RowChange> = (0..N)
        .map(|i| {
            ins(
                &t,
                vec![
                    Value::Int(i),
                    Value::Int(i * 3),
                    Value::Text(format!("row number {i} with some text")),
                    Value::Double(i as f64 / 7.0),
                ],
            )
        })
        .collect();
    let l = loader(&db, opts(4)).await;
    let started = Instant::now();
    let stats = l.apply_batch(1, &batch).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "load throughput ({profile}): {N} rows in {secs:.2} s = {:.0} rows/s ({} statements, {} workers)",
        N as f64 / secs,
        stats.statements,
        stats.workers
    );
    let count = text_rows(&db, "SELECT COUNT(*), SUM(a) FROM tp.t").await;
    assert_eq!(count[0][0].as_deref(), Some("100000"));
    assert_eq!(
        count[0][1].as_deref(),
        Some(&*(3 * N * (N - 1) / 2).to_string())
    );
}

/// Rows of a table without a key commit in one transaction with the batch's
/// checkpoint, after every keyed share: a batch that fails leaves neither
/// (so its replay inserts them once), a batch that succeeds leaves both.
#[tokio::test]
async fn keyless_rows_commit_with_the_checkpoint() {
    let db = MariaDb::target().await.unwrap();
    db.exec(
        "CREATE DATABASE s;
         CREATE TABLE s.keyed (id INT PRIMARY KEY, v VARCHAR(3));
         CREATE TABLE s.log (id INT, v VARCHAR(40));",
    )
    .await
    .unwrap();
    // One worker per row: the keyed shares and the keyless transaction are
    // separate commits (small batches are otherwise one transaction).
    let l = loader(
        &db,
        LoaderOptions {
            min_rows_per_worker: 1,
            ..opts(2)
        },
    )
    .await;
    l.migrate().await.unwrap();
    let keyed = kv("s", "keyed");
    let log = schema(
        "s",
        "log",
        vec![
            col("id", tc::LONG, None),
            col("v", tc::VARCHAR, Some(UTF8MB4)),
        ],
        vec![],
    );
    let mark = CheckpointMark {
        pipeline: "p",
        position: "mysql-bin.000001:500",
        through: "mysql-bin.000001:500",
    };
    // The keyed row is too long for VARCHAR(3): a definite error.
    let failing = vec![ins(&log, r(1, "once")), ins(&keyed, r(1, "too long"))];
    let err = l
        .apply_batch_checkpointed(7, &failing, UniqueConflict::Fail, &mark)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1406"), "{err}");
    assert_eq!(
        text_rows(&db, "SELECT COUNT(*) FROM s.log").await,
        vec![vec![Some("0".into())]]
    );
    // Only the batch in flight is recorded (its workers commit separately).
    let cp = l.read_checkpoint("p").await.unwrap().unwrap();
    assert_eq!(
        (cp.batch_id, cp.applying),
        (0, Some((7, "mysql-bin.000001:500".to_string())))
    );

    let fixed = vec![ins(&log, r(1, "once")), ins(&keyed, r(1, "ok"))];
    let stats = l
        .apply_batch_checkpointed(7, &fixed, UniqueConflict::Fail, &mark)
        .await
        .unwrap();
    assert!(stats.checkpointed, "{stats:?}");
    assert_eq!(
        text_rows(&db, "SELECT COUNT(*) FROM s.log").await,
        vec![vec![Some("1".into())]]
    );
    let cp = l.read_checkpoint("p").await.unwrap().unwrap();
    assert_eq!(
        (cp.batch_id, cp.position.as_str()),
        (7, "mysql-bin.000001:500")
    );

    // Without keyless rows, over two workers, the checkpoint is written
    // after the batch.
    let mark8 = CheckpointMark {
        position: "mysql-bin.000001:900",
        through: "mysql-bin.000001:950",
        ..mark
    };
    let stats = l
        .apply_batch_checkpointed(
            8,
            &[upd(&keyed, r(1, "ok"), r(1, "new")), ins(&keyed, r(2, "b"))],
            UniqueConflict::Fail,
            &mark8,
        )
        .await
        .unwrap();
    assert!(!stats.checkpointed && !stats.atomic, "{stats:?}");
    let cp = l.read_checkpoint("p").await.unwrap().unwrap();
    assert_eq!(
        (cp.batch_id, cp.through.as_deref(), cp.applying),
        (8, Some("mysql-bin.000001:950"), None)
    );

    // A batch for one worker is one transaction with its checkpoint, and
    // needs no batch-in-flight record.
    let mark9 = CheckpointMark {
        position: "mysql-bin.000001:990",
        through: "mysql-bin.000001:990",
        ..mark
    };
    let stats = l
        .apply_batch_checkpointed(
            9,
            &[upd(&keyed, r(2, "b"), r(2, "c"))],
            UniqueConflict::Fail,
            &mark9,
        )
        .await
        .unwrap();
    assert!(stats.checkpointed && stats.atomic, "{stats:?}");
    let cp = l.read_checkpoint("p").await.unwrap().unwrap();
    assert_eq!(
        (cp.batch_id, cp.position.as_str()),
        (9, "mysql-bin.000001:990")
    );
}
