//! Row image decoding: every type, metadata shape and failure.

use super::*;
use sluice_core::schema::type_code as tc;
use sluice_core::{Column, DateTime, Time};

use std::io::Read as _;

const UTF8MB4: u16 = 45;
const LATIN1: u16 = 8;
const BINARY: u16 = 63;
const UCS2: u16 = 35;

fn col(name: &str, type_code: u8, meta: u16) -> Column {
    Column {
        name: name.into(),
        type_code,
        meta,
        nullable: true,
        unsigned: false,
        collation: None,
        labels: None,
    }
}

fn unsigned(mut c: Column) -> Column {
    c.unsigned = true;
    c
}

fn coll(mut c: Column, id: u16) -> Column {
    c.collation = Some(id);
    c
}

fn labels(mut c: Column, l: &[&str]) -> Column {
    c.labels = Some(l.iter().map(|s| Arc::<str>::from(*s)).collect());
    c
}

fn table(columns: Vec<Column>) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        schema: "db".into(),
        table: "t".into(),
        columns,
        primary_key: vec![0],
        has_names: true,
    })
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Decodes one value, checking it takes all of `bytes`.
fn val(c: &Column, bytes: &[u8]) -> Value {
    let (v, n) = decode_value(c, bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, bytes.len(), "bytes consumed for {}", c.name);
    v
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn rows(
    t: &Arc<TableSchema>,
    kind: RowsKind,
    columns: &[u8],
    columns_after: &[u8],
    data: &[u8],
) -> Result<Vec<RowChange>, RowError> {
    let mut out = Vec::new();
    decode_rows(
        &RowsImage {
            table: t,
            kind,
            columns,
            columns_after,
            data,
        },
        &mut out,
    )?;
    Ok(out)
}

// ---- A. integers -------------------------------------------------

#[test]
fn integers_signed_and_unsigned() {
    use tc::*;
    // A1
    assert_eq!(val(&unsigned(col("u", TINY, 0)), &[0xFF]), Value::UInt(255));
    assert_eq!(val(&col("s", TINY, 0), &[0x80]), Value::Int(-128));
    // A2: BOOLEAN is TINY.
    assert_eq!(val(&col("b", TINY, 0), &[1]), Value::Int(1));
    // A3
    assert_eq!(
        val(&unsigned(col("u", SHORT, 0)), &[0xFF, 0xFF]),
        Value::UInt(65535)
    );
    assert_eq!(val(&col("s", SHORT, 0), &[0x00, 0x80]), Value::Int(-32768));
    // A4: INT24 sign extension.
    let m = col("m", INT24, 0);
    assert_eq!(
        val(&unsigned(col("u", INT24, 0)), &[0xFF, 0xFF, 0xFF]),
        Value::UInt(16_777_215)
    );
    assert_eq!(val(&m, &[0xFF, 0xFF, 0x7F]), Value::Int(8_388_607));
    assert_eq!(val(&m, &[0x00, 0x00, 0x80]), Value::Int(-8_388_608));
    assert_eq!(val(&m, &[8, 0, 0]), Value::Int(8));
    assert_eq!(val(&m, &[0xF8, 0xFF, 0xFF]), Value::Int(-8));
    assert_eq!(val(&m, &[0, 0, 0]), Value::Int(0));
    // A5
    assert_eq!(
        val(&unsigned(col("u", LONG, 0)), &[0xFF; 4]),
        Value::UInt(4_294_967_295)
    );
    assert_eq!(
        val(&col("s", LONG, 0), &[0, 0, 0, 0x80]),
        Value::Int(-2_147_483_648)
    );
    // A6 / A9 / E30
    assert_eq!(
        val(&unsigned(col("u", LONGLONG, 0)), &[0xFF; 8]),
        Value::UInt(u64::MAX)
    );
    assert_eq!(
        val(&col("s", LONGLONG, 0), &[0, 0, 0, 0, 0, 0, 0, 0x80]),
        Value::Int(i64::MIN)
    );
    assert_eq!(
        val(&col("s", LONGLONG, 0), &hex("FF FF FF FF FF FF FF 7F")),
        Value::Int(i64::MAX)
    );
    // A7: without signedness the bytes read as signed.
    assert_eq!(val(&col("s", TINY, 0), &[0xFF]), Value::Int(-1));
    // A8
    let u = |t| unsigned(col("u", t, 0));
    assert_eq!(val(&u(TINY), &[0x80]), Value::UInt(128));
    assert_eq!(val(&u(SHORT), &[0x00, 0x80]), Value::UInt(32768));
    assert_eq!(val(&u(INT24), &[0, 0, 0x80]), Value::UInt(8_388_608));
    assert_eq!(val(&u(LONG), &[0, 0, 0, 0x80]), Value::UInt(2_147_483_648));
    assert_eq!(
        val(&u(LONGLONG), &[0, 0, 0, 0, 0, 0, 0, 0x80]),
        Value::UInt(9_223_372_036_854_775_808)
    );
}

#[test]
fn floats() {
    // C6
    assert_eq!(
        val(&col("f", tc::FLOAT, 4), &hex("00 00 A0 3F")),
        Value::Float(1.25)
    );
    assert_eq!(
        val(&col("d", tc::DOUBLE, 8), &hex("00 00 00 00 00 00 04 C0")),
        Value::Double(-2.5)
    );
    // C2/C4 round trips.
    for x in [-0.3f32, 0.0, 0.3, 42.42, -84.84, 1_234.123_5] {
        assert_eq!(
            val(&col("f", tc::FLOAT, 4), &x.to_le_bytes()),
            Value::Float(x)
        );
    }
    for x in [
        -8.9,
        0.0,
        8.9,
        1_234_567_890.012_345_7,
        0.00005,
        -8_589_934_592.123,
    ] {
        assert_eq!(
            val(&col("d", tc::DOUBLE, 8), &f64::to_le_bytes(x)),
            Value::Double(x)
        );
    }
}

// ---- B. DECIMAL through the column decoder ---------------------------

#[test]
fn decimals() {
    let c = col("d", tc::NEWDECIMAL, (30 << 8) | 10);
    assert_eq!(
        val(&c, &hex("7F FF 43 9E B1 CA 48 40 78 FF 43 9E B1 F6")),
        Value::Decimal("-12345678901234567.0123456789".into())
    );
    let c = col("d", tc::NEWDECIMAL, (4 << 8) | 2);
    assert_eq!(val(&c, &hex("75 C8")), Value::Decimal("-10.55".into()));
    // B13: meta 0x1E1E.
    let c = col("d", tc::NEWDECIMAL, 0x1E1E);
    let mut b = hex("85 F5 E1 00");
    b.extend_from_slice(&[0; 10]);
    assert_eq!(
        val(&c, &b),
        Value::Decimal("0.100000000000000000000000000000".into())
    );
    // B14: meta 0x3C00.
    let c = col("d", tc::NEWDECIMAL, 0x3C00);
    let mut b = vec![0x80];
    b.extend_from_slice(&[0; 25]);
    b.push(1);
    assert_eq!(val(&c, &b), Value::Decimal("1".into()));
    // Extra bytes after the value are not consumed.
    let c = col("d", tc::NEWDECIMAL, (4 << 8) | 2);
    assert_eq!(
        decode_value(&c, &hex("E3 63 FF")).unwrap(),
        (Value::Decimal("99.99".into()), 2)
    );
    // Old DECIMAL and bad definitions are refused, clearly.
    let e = decode_value(&col("old", tc::DECIMAL, 0), &[0; 8]).unwrap_err();
    assert_eq!(e.reason(), &RowErrorReason::OldDecimal);
    assert_eq!(e.column(), "old");
    let e = decode_value(&col("d", tc::NEWDECIMAL, (2 << 8) | 5), &[0; 8]).unwrap_err();
    assert!(matches!(e.reason(), RowErrorReason::Decimal(_)), "{e}");
    let e = decode_value(&col("d", tc::NEWDECIMAL, (4 << 8) | 2), &[0x80]).unwrap_err();
    assert_eq!(
        e.reason(),
        &RowErrorReason::Truncated {
            needed: 2,
            available: 1
        }
    );
}

// ---- D. temporals through the column decoder -------------------------

#[test]
fn temporals() {
    use tc::*;
    assert_eq!(
        val(&col("d", DATE, 0), &hex("CF D0 0F")),
        Value::Date {
            year: 2024,
            month: 6,
            day: 15
        }
    );
    assert_eq!(
        val(&col("d", NEWDATE, 0), &hex("00 00 00")),
        Value::Date {
            year: 0,
            month: 0,
            day: 0
        }
    );
    assert_eq!(
        val(&col("dt", DATETIME2, 0), &hex("99 9A B8 F7 AA")),
        Value::DateTime(DateTime {
            year: 2016,
            month: 10,
            day: 28,
            hour: 15,
            minute: 30,
            second: 42,
            micros: 0,
            fsp: 0
        })
    );
    let Value::DateTime(d6) = val(&col("dt", DATETIME2, 3), &hex("99 B3 9E C8 B8 1E D2")) else {
        panic!()
    };
    assert_eq!(d6.to_string(), "2024-06-15 12:34:56.789");
    assert_eq!(
        val(&col("ts", TIMESTAMP2, 0), &hex("66 6D 8A 70")),
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 0,
            fsp: 0
        }
    );
    assert_eq!(
        val(&col("ts", TIMESTAMP2, 4), &hex("00 00 00 00 00 00")),
        Value::Timestamp {
            secs: 0,
            micros: 0,
            fsp: 4
        }
    );
    assert_eq!(
        val(&col("tm", TIME2, 3), &hex("7F EF 7C EC 78")),
        Value::Time(Time {
            negative: true,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 500_000,
            fsp: 3
        })
    );
    let Value::Time(t) = val(&col("tm", TIME2, 0), &hex("60 43 E5")) else {
        panic!()
    };
    assert_eq!(t.to_string(), "-507:48:27");
    assert_eq!(val(&col("y", YEAR, 0), &[0x7C]), Value::Year(2024));
    assert_eq!(val(&col("y", YEAR, 0), &[0]), Value::Year(0));
    // Legacy layouts (meta 0).
    assert_eq!(
        val(&col("ts", TIMESTAMP, 0), &1_718_454_896u32.to_le_bytes()),
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 0,
            fsp: 0
        }
    );
    let Value::DateTime(d) = val(
        &col("dt", DATETIME, 0),
        &20_050_524_232_425u64.to_le_bytes(),
    ) else {
        panic!()
    };
    assert_eq!(d.to_string(), "2005-05-24 23:24:25");
    let Value::Time(t) = val(&col("t", TIME, 0), &hex("7B EA FF")) else {
        panic!()
    };
    assert_eq!(t.to_string(), "-00:55:09");
    // MariaDB hires (meta = fsp).
    let Value::DateTime(d) = val(&col("dt", DATETIME, 3), &hex("00 42 2E 00 B3 90 95")) else {
        panic!()
    };
    assert_eq!(d.to_string(), "2024-06-15 12:34:56.789");
    let Value::Time(t) = val(&col("t", TIME, 3), &hex("00 B3 CE D4 94")) else {
        panic!()
    };
    assert_eq!(t.to_string(), "-01:02:03.500");
    assert_eq!(
        val(&col("ts", TIMESTAMP, 3), &hex("66 6D 8A 70 03 15")),
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 789_000,
            fsp: 3
        }
    );
    // Bad fsp and bad values.
    let e = decode_value(&col("t", TIME2, 7), &[0; 8]).unwrap_err();
    assert_eq!(
        e.reason(),
        &RowErrorReason::Temporal(TemporalError::BadFsp(7))
    );
    let e = decode_value(&col("dt", DATETIME2, 0), &hex("00 00 00 00 00")).unwrap_err();
    assert_eq!(e.offset(), 0);
    assert!(matches!(e.reason(), RowErrorReason::Temporal(_)));
}

// ---- E. strings, charsets, ENUM/SET/BIT ------------------------------

#[test]
fn strings_and_charsets() {
    use tc::*;
    // E5: latin1 TEXT and VARCHAR(20).
    let t = coll(col("t", BLOB, 2), LATIN1);
    assert_eq!(val(&t, &hex("06 00 63 61 66 E9 20 F1")), text("café ñ"));
    let v = coll(col("v", VARCHAR, 20), LATIN1);
    assert_eq!(
        val(&v, &hex("08 9F 80 20 73 65 F1 6F 72")),
        text("Ÿ€ señor")
    );
    // E6: ucs2 VARCHAR(10) = 20 bytes max, 1-byte prefix.
    let v = coll(col("v", VARCHAR, 20), UCS2);
    assert_eq!(
        val(&v, &hex("0A 00 68 00 E9 00 6C 00 6C 00 6F")),
        text("héllo")
    );
    // E7: utf8mb4 VARCHAR(255) = 1020 bytes, 2-byte prefix.
    let v = coll(col("v", VARCHAR, 1020), 224);
    let s = "123abc中文😀";
    let mut b = (s.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    assert_eq!(val(&v, &b), text(s));
    // E8: gbk and gb18030.
    let v = coll(col("v", VARCHAR, 510), 28);
    assert_eq!(
        val(&v, &hex("0A 00 31 32 33 61 62 63 D6 D0 CE C4")),
        text("123abc中文")
    );
    let v = coll(col("v", VARCHAR, 1020), 248);
    assert_eq!(
        val(&v, &hex("0E 00 31 32 33 61 62 63 D6 D0 CE C4 94 39 FC 36")),
        text("123abc中文😀")
    );
    // E2: VARCHAR(1024) latin1, 2-byte prefix.
    let v = coll(col("v", VARCHAR, 1024), LATIN1);
    let mut b = 1024u16.to_le_bytes().to_vec();
    b.extend_from_slice(&[b'-'; 1024]);
    assert_eq!(val(&v, &b), text(&"-".repeat(1024)));
    // E10: CHAR(5) utf8mb4 (meta FE 14) is logged without pad.
    let c = coll(col("c", STRING, 0xFE14), UTF8MB4);
    assert_eq!(val(&c, &hex("03 61 62 63")), text("abc"));
    let v = coll(col("v", VARCHAR, 80), UTF8MB4);
    let mut b = vec![13];
    b.extend_from_slice("héllo wörld".as_bytes());
    assert_eq!(val(&v, &b), text("héllo wörld"));
    // CHAR(255) utf8mb4 = 1020 bytes: length bits in the real type byte.
    let c = coll(col("c", STRING, 0xCEFC), UTF8MB4);
    let s = "é".repeat(300);
    let mut b = (s.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    assert_eq!(val(&c, &b), text(&s));
    // E11: VARCHAR keeps spaces exactly.
    let v = coll(col("v", VARCHAR, 255), LATIN1);
    assert_eq!(val(&v, b"\x0B  a    b   "), text("  a    b   "));
    // E4: utf8 CHAR.
    let c = coll(col("c", STRING, 0xFE24), 33);
    assert_eq!(val(&c, &hex("03 E2 82 AC")), text("€"));
    // Invalid bytes for the charset stay bytes.
    let v = coll(col("v", VARCHAR, 80), UTF8MB4);
    assert_eq!(val(&v, &hex("02 C3 28")), Value::Bytes(vec![0xC3, 0x28]));
    // Unknown collation: UTF-8 text if valid, else bytes.
    let v = col("v", VARCHAR, 80);
    assert_eq!(val(&v, &hex("02 C3 A9")), text("é"));
    assert_eq!(val(&v, &hex("01 E9")), Value::Bytes(vec![0xE9]));
}

#[test]
fn binary_strings_and_blobs() {
    use tc::*;
    // E13: BINARY(4), VARBINARY(8).
    let b4 = coll(col("b", STRING, 0xFE04), BINARY);
    assert_eq!(
        val(&b4, &hex("04 DE AD BE EF")),
        Value::Bytes(hex("DE AD BE EF"))
    );
    let vb = coll(col("vb", VARCHAR, 8), BINARY);
    assert_eq!(val(&vb, &hex("02 01 02")), Value::Bytes(vec![1, 2]));
    // E12: BINARY's trailing zeros are restored to the column length;
    // VARBINARY keeps NULs and spaces exactly.
    let b6 = coll(col("b", STRING, 0xFE06), BINARY);
    assert_eq!(val(&b6, b"\x01a"), Value::Bytes(b"a\0\0\0\0\0".to_vec()));
    assert_eq!(
        val(&b6, b"\x03\0\0a"),
        Value::Bytes(b"\0\0a\0\0\0".to_vec())
    );
    assert_eq!(val(&b6, b"\x00"), Value::Bytes(vec![0; 6]));
    assert_eq!(val(&b6, b"\x06a     "), Value::Bytes(b"a     ".to_vec()));
    let vb = coll(col("vb", VARCHAR, 6), BINARY);
    assert_eq!(val(&vb, b"\x02a\0"), Value::Bytes(b"a\0".to_vec()));
    // E15: binary bytes are never text.
    let vb = coll(col("vb", VARCHAR, 4), BINARY);
    assert_eq!(
        val(&vb, &hex("04 FF 01 00 00")),
        Value::Bytes(hex("FF 01 00 00"))
    );
    assert_eq!(val(&vb, b"\x02ab"), Value::Bytes(b"ab".to_vec()));
    // E16: BLOB length prefixes of 1..4 bytes; TEXT vs BLOB.
    for (t, meta, prefix) in [
        (TINY_BLOB, 1u16, vec![5u8]),
        (BLOB, 2, vec![5, 0]),
        (MEDIUM_BLOB, 3, vec![5, 0, 0]),
        (LONG_BLOB, 4, vec![5, 0, 0, 0]),
        (BLOB, 1, vec![5]),
        (BLOB, 4, vec![5, 0, 0, 0]),
    ] {
        let mut b = prefix.clone();
        b.extend_from_slice(b"Hello");
        assert_eq!(
            val(&coll(col("b", t, meta), BINARY), &b),
            Value::Bytes(b"Hello".to_vec())
        );
        let mut b = prefix;
        b.extend_from_slice(b"World");
        assert_eq!(val(&coll(col("t", t, meta), LATIN1), &b), text("World"));
    }
    // G1: GEOMETRY (4-byte length, SRID + WKB).
    let g = hex("00000000 01 01000000 000000000000F03F 000000000000F03F");
    let mut b = (g.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&g);
    assert_eq!(val(&col("g", GEOMETRY, 4), &b), Value::Geometry(g));
    // H7: MySQL 9 VECTOR(3), 4-byte length prefix.
    let v = hex("CD CC 8C 3F CD CC 0C 40 33 33 53 40");
    let mut b = hex("0C 00 00 00");
    b.extend_from_slice(&v);
    assert_eq!(val(&col("v", VECTOR, 4), &b), Value::Bytes(v));
    // BLOB with impossible metadata.
    let e = decode_value(&col("b", BLOB, 5), &[0; 8]).unwrap_err();
    assert_eq!(
        e.reason(),
        &RowErrorReason::BadMeta {
            type_code: BLOB,
            meta: 5
        }
    );
}

#[test]
fn enums_sets_bits() {
    use tc::*;
    // E18/E19
    let e = labels(col("e", ENUM, 0xF701), &["a", "ba", "c"]);
    assert_eq!(
        val(&e, &[2]),
        Value::Enum {
            index: 2,
            label: Some("ba".into())
        }
    );
    assert_eq!(
        val(&e, &[0]),
        Value::Enum {
            index: 0,
            label: Some("".into())
        }
    );
    assert_eq!(
        val(&e, &[9]),
        Value::Enum {
            index: 9,
            label: None
        }
    );
    // Without labels: the index alone.
    assert_eq!(
        val(&col("e", ENUM, 0xF701), &[1]),
        Value::Enum {
            index: 1,
            label: None
        }
    );
    // A STRING column with real type ENUM decodes as ENUM too.
    assert_eq!(
        val(&col("e", STRING, 0xF701), &[3]),
        Value::Enum {
            index: 3,
            label: None
        }
    );
    // E20: 258 members → 2 bytes.
    let names: Vec<String> = (0..258).map(|i| i.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let e2 = labels(col("e", ENUM, 0xF702), &names);
    assert_eq!(
        val(&e2, &[0x01, 0x01]),
        Value::Enum {
            index: 257,
            label: Some("256".into())
        }
    );
    // Storage size from the labels when the metadata lacks it.
    assert_eq!(
        val(&labels(col("e", ENUM, 0), &names), &[0x01, 0x00]),
        Value::Enum {
            index: 1,
            label: Some("0".into())
        }
    );
    // E21: labels with commas and quotes come from FULL metadata.
    let e3 = labels(col("e", ENUM, 0xF701), &["a,b", "c'd", "plain"]);
    assert_eq!(
        val(&e3, &[2]),
        Value::Enum {
            index: 2,
            label: Some("c'd".into())
        }
    );
    // E22/E24
    let s = labels(col("s", SET, 0xF801), &["a", "ba", "c"]);
    assert_eq!(
        val(&s, &[7]),
        Value::Set {
            bits: 7,
            labels: Some("a,ba,c".into())
        }
    );
    assert_eq!(
        val(&s, &[5]),
        Value::Set {
            bits: 5,
            labels: Some("a,c".into())
        }
    );
    assert_eq!(
        val(&s, &[0]),
        Value::Set {
            bits: 0,
            labels: Some(String::new())
        }
    );
    // E23: 18 members, 3 bytes.
    let names: Vec<String> = (1..=18).map(|i| i.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let s18 = labels(col("s", SET, 0xF803), &names);
    assert_eq!(
        val(&s18, &[5, 0, 0]),
        Value::Set {
            bits: 5,
            labels: Some("1,3".into())
        }
    );
    assert_eq!(
        val(&s18, &[0, 0, 2]),
        Value::Set {
            bits: 131_072,
            labels: Some("18".into())
        }
    );
    // E25: 52 members, 8 bytes.
    let names: Vec<String> = (0..52).map(|i| format!("m{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let s52 = labels(col("s", SET, 0xF808), &names);
    let bits: u64 = 1 | (1 << 51);
    assert_eq!(
        val(&s52, &bits.to_le_bytes()),
        Value::Set {
            bits,
            labels: Some("m0,m51".into())
        }
    );
    // E26..E29: BIT, big-endian, width from (bits % 8, bytes).
    let bit = |width: u16| col("b", BIT, ((width / 8) << 8) | (width % 8));
    assert_eq!(
        val(&bit(10), &[0x02, 0x01]),
        Value::Bit {
            bits: 0b10_0000_0001,
            width: 10
        }
    );
    assert_eq!(
        val(&bit(6), &[0b10_0010]),
        Value::Bit {
            bits: 0b10_0010,
            width: 6
        }
    );
    assert_eq!(
        val(&bit(64), &[0xFF; 8]),
        Value::Bit {
            bits: u64::MAX,
            width: 64
        }
    );
    assert_eq!(
        val(&bit(24), &hex("E3 8E 56")),
        Value::Bit {
            bits: 14_913_110,
            width: 24
        }
    );
    let e = decode_value(&col("b", BIT, 0x0900), &[0; 9]).unwrap_err();
    assert!(matches!(e.reason(), RowErrorReason::BadMeta { .. }));
}

// ---- H. MariaDB types, compressed columns ----------------------------

#[test]
fn mariadb_uuid_inet_vector() {
    use tc::*;
    // H8: UUID/INET6 are STRING(16), INET4 STRING(4), VECTOR a VARCHAR.
    let uuid = coll(col("u", STRING, 0xFE10), BINARY);
    let raw = hex("11111111 2222 3333 4444 555555555555");
    let mut b = vec![0x10];
    b.extend_from_slice(&raw);
    assert_eq!(val(&uuid, &b), Value::Bytes(raw));
    let inet4 = coll(col("i4", STRING, 0xFE04), BINARY);
    assert_eq!(
        val(&inet4, &hex("04 C0 A8 01 0A")),
        Value::Bytes(hex("C0 A8 01 0A"))
    );
    let inet6 = coll(col("i6", STRING, 0xFE10), BINARY);
    assert_eq!(
        val(&inet6, &hex("10 00000000 00000000 0000FFFF 08080808")),
        Value::Bytes(hex("00000000 00000000 0000FFFF 08080808"))
    );
    // '::' is logged as zero bytes; the stored value is 16 zeros.
    assert_eq!(val(&inet6, &[0]), Value::Bytes(vec![0; 16]));
    let vec3 = coll(col("v", VARCHAR, 12), BINARY);
    assert_eq!(
        val(&vec3, &hex("0C 00 00 C0 3F 00 00 20 40 00 00 60 40")),
        Value::Bytes(hex("00 00 C0 3F 00 00 20 40 00 00 60 40"))
    );
}

#[test]
fn mariadb_compressed_columns() {
    use std::io::Write as _;
    use tc::*;
    // H9: VARCHAR(300) COMPRESSED utf8mb4 (meta 1201 → 2-byte prefix),
    // raw deflate with a 1-byte original length.
    let vc = coll(col("vc", VARCHAR_COMPRESSED, 1201), UTF8MB4);
    assert_eq!(
        val(&vc, &hex("0E 00 89 D2 2B 2E 2C 4D 2C CE D0 2D 1E 3E 14 00")),
        text(&"squash-".repeat(30))
    );
    // H9: TEXT COMPRESSED latin1 stored uncompressed (header 00).
    let tx = coll(col("tx", BLOB_COMPRESSED, 2), LATIN1);
    assert_eq!(
        val(
            &tx,
            &hex("0F 00 00 63 61 66 E9 20 6C 61 74 69 6E 20 6F 6E 65")
        ),
        text("café latin one")
    );
    // H11's inner column: header 89, length C8, raw deflate.
    assert_eq!(
        val(&vc, &hex("0C 00 89 C8 4B CB 49 2C D1 4D 1B FA 04 00")),
        text(&"flat-".repeat(40))
    );
    // Empty value: no header at all.
    assert_eq!(val(&vc, &hex("00 00")), text(""));
    // zlib-wrapped stream (column_compression_zlib_wrap=ON), 2-byte
    // big-endian original length, binary column.
    let original: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8).collect();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&original).unwrap();
    let stream = enc.finish().unwrap();
    let mut payload = vec![0x82, 0x01, 0x2C];
    payload.extend_from_slice(&stream);
    let blob = coll(col("b", BLOB_COMPRESSED, 2), BINARY);
    let mut b = (payload.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(&payload);
    assert_eq!(val(&blob, &b), Value::Bytes(original.clone()));
    // Corrupt headers and streams are errors at the value's start.
    let bad = |payload: &[u8]| {
        let mut b = (payload.len() as u16).to_le_bytes().to_vec();
        b.extend_from_slice(payload);
        let e = decode_value(&blob, &b).unwrap_err();
        assert_eq!(e.offset(), 0);
        assert!(matches!(e.reason(), RowErrorReason::Compressed(_)), "{e}");
    };
    bad(&[0x30, 1, 2]); // unknown method
    bad(&[0x84, 0x01]); // 4 length bytes announced, 1 present
    let mut wrong_len = vec![0x82, 0x01, 0x2D];
    wrong_len.extend_from_slice(&stream);
    bad(&wrong_len); // says 301 bytes, inflates to 300
    let mut short_len = vec![0x81, 0x10];
    short_len.extend_from_slice(&stream);
    bad(&short_len); // says 16 bytes, stream is longer
    bad(&[0x89, 0x05, 0xFF, 0xFF, 0xFF]); // garbage deflate
    bad(&[0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]); // > 4 GiB
}

#[test]
fn json_column_goes_through_jsonb() {
    // MySQL JSON (245): the document is rendered by crate::jsonb; if that
    // refuses, the error must still be framed by this column.
    let j = col("j", tc::JSON, 4);
    let doc = hex("00 01 00 0C 00 0B 00 01 00 05 02 00 61");
    let mut b = (doc.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&doc);
    match decode_value(&j, &b) {
        Ok((v, n)) => {
            assert_eq!(n, b.len());
            assert_eq!(v, Value::Json("{\"a\": 2}".into()));
        }
        Err(e) => {
            assert_eq!(e.offset(), 0);
            assert!(matches!(e.reason(), RowErrorReason::Json(_)), "{e}");
        }
    }
    // MariaDB JSON is a LONGTEXT (BLOB meta 4) and stays text (H10).
    let mj = coll(col("j", tc::BLOB, 4), UTF8MB4);
    assert_eq!(
        val(&mj, &hex("08 00 00 00 7B 22 61 22 3A 20 31 7D")),
        text("{\"a\": 1}")
    );
}

// ---- row images ------------------------------------------------------

#[test]
fn null_bitmap_spanning_three_bytes() {
    // A10: 20 nullable TINYINTs; test2 = -128, test7 = 42, test20 = 84.
    let t = table(
        (1..=20)
            .map(|i| col(&format!("test{i}"), tc::TINY, 0))
            .collect(),
    );
    let data = hex("BD FF F7 80 2A 54");
    let out = rows(&t, RowsKind::Write, &hex("FF FF 0F"), &[], &data).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, ChangeKind::Insert);
    assert!(out[0].before.is_none());
    let after = out[0].after.as_ref().unwrap();
    for (i, v) in after.iter().enumerate() {
        let expected = match i {
            1 => Value::Int(-128),
            6 => Value::Int(42),
            19 => Value::Int(84),
            _ => Value::Null,
        };
        assert_eq!(v, &expected, "test{}", i + 1);
    }
}

#[test]
fn null_in_last_column_does_not_end_the_event() {
    // A11
    let t = table(vec![col("value", tc::TINY, 0)]);
    for (data, expected) in [
        (
            "FE 01 FE 02 FF",
            [Value::Int(1), Value::Int(2), Value::Null],
        ),
        (
            "FE 01 FF FE 02",
            [Value::Int(1), Value::Null, Value::Int(2)],
        ),
    ] {
        let out = rows(&t, RowsKind::Write, &[0x01], &[], &hex(data)).unwrap();
        let got: Vec<Value> = out
            .into_iter()
            .map(|c| c.after.unwrap()[0].clone())
            .collect();
        assert_eq!(got, expected);
    }
}

/// The 26-column `capture_types` table of the zongji captures, with the
/// metadata MariaDB 11.8 logged for it and FULL-metadata collations.
fn capture_types() -> Arc<TableSchema> {
    use tc::*;
    table(vec![
        col("id", LONG, 0),
        col("i_big", LONGLONG, 0),
        unsigned(col("u_big", LONGLONG, 0)),
        col("dec", NEWDECIMAL, 0x1E0A),
        coll(col("vc", VARCHAR, 80), UTF8MB4),
        coll(col("ch", STRING, 0xFE14), UTF8MB4),
        coll(col("bin", STRING, 0xFE04), BINARY),
        coll(col("vbin", VARCHAR, 8), BINARY),
        coll(col("txt", BLOB, 2), UTF8MB4),
        coll(col("blb", BLOB, 2), BINARY),
        col("f", FLOAT, 4),
        col("d", DOUBLE, 8),
        col("dt", DATETIME2, 3),
        col("ts", TIMESTAMP2, 0),
        col("dte", DATE, 0),
        col("tm", TIME2, 3),
        col("yr", YEAR, 0),
        labels(col("en", ENUM, 0xF701), &["a", "b", "c"]),
        labels(col("en2", ENUM, 0xF701), &["a,b", "c'd", "plain"]),
        labels(col("st", SET, 0xF801), &["x", "y", "z"]),
        col("bt", BIT, 0x0102),
        coll(col("js", LONG_BLOB, 4), UTF8MB4),
        col("geo", GEOMETRY, 4),
        coll(col("txt_latin1", BLOB, 2), LATIN1),
        coll(col("vc_latin1", VARCHAR, 20), LATIN1),
        coll(col("vc_ucs2", VARCHAR, 20), UCS2),
    ])
}

const CAPTURE_ROW: &str = "01000000ffffffffffffff7fffffffffffffffff7fff439eb1ca484078ff439eb1f60d68c3a96c6c6f2077c3b6726c640361626304deadbeef0201020a00746578742076616c75650200cafe0000a03f00000000000004c099b39ec8b81ed2666d8a70cfd00f7fef7cec787c0202050201480000007b2261223a20312c2022626967223a20393232333337323033363835343737353830372c2022617272223a205b2278222c20747275652c206e756c6c5d2c202264223a20312e357d19000000000000000101000000000000000000f03f00000000000000400600636166e920f1089f80207365f16f720a006800e9006c006c006f";

fn expected_capture_row(id: u32, vc: &str) -> Vec<Value> {
    let point = hex("00000000 0101000000 000000000000F03F 0000000000000040");
    vec![
        Value::Int(id.into()),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::Decimal("-12345678901234567.0123456789".into()),
        text(vc),
        text("abc"),
        Value::Bytes(hex("DEADBEEF")),
        Value::Bytes(hex("0102")),
        text("text value"),
        Value::Bytes(hex("CAFE")),
        Value::Float(1.25),
        Value::Double(-2.5),
        Value::DateTime(DateTime {
            year: 2024,
            month: 6,
            day: 15,
            hour: 12,
            minute: 34,
            second: 56,
            micros: 789_000,
            fsp: 3,
        }),
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 0,
            fsp: 0,
        },
        Value::Date {
            year: 2024,
            month: 6,
            day: 15,
        },
        Value::Time(Time {
            negative: true,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 500_000,
            fsp: 3,
        }),
        Value::Year(2024),
        Value::Enum {
            index: 2,
            label: Some("b".into()),
        },
        Value::Enum {
            index: 2,
            label: Some("c'd".into()),
        },
        Value::Set {
            bits: 5,
            labels: Some("x,z".into()),
        },
        Value::Bit {
            bits: 0b10_0000_0001,
            width: 10,
        },
        text(r#"{"a": 1, "big": 9223372036854775807, "arr": ["x", true, null], "d": 1.5}"#),
        Value::Geometry(point),
        text("café ñ"),
        text("Ÿ€ señor"),
        text("héllo"),
    ]
}

#[test]
fn mariadb_capture_write_update_delete() {
    let t = capture_types();
    // WRITE_ROWS: full image, null bitmap 00 00 00 FC.
    let data = hex(&format!("000000fc{CAPTURE_ROW}"));
    let out = rows(&t, RowsKind::Write, &hex("ffffff03"), &[], &data).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].after.as_ref().unwrap(),
        &expected_capture_row(1, "héllo wörld")
    );
    assert!(Arc::ptr_eq(&out[0].table, &t));

    // UPDATE_ROWS (NOBLOB: txt, blb, js, txt_latin1 absent).
    let noblob = hex("fffc5f03");
    let before_after = "01000000ffffffffffffff7fffffffffffffffff7fff439eb1ca484078ff439eb1f60d68c3a96c6c6f2077c3b6726c640361626304deadbeef0201020000a03f00000000000004c099b39ec8b81ed2666d8a70cfd00f7fef7cec787c020205020119000000000000000101000000000000000000f03f0000000000000040089f80207365f16f720a006800e9006c006c006f";
    let after = "02000000ffffffffffffff7fffffffffffffffff7fff439eb1ca484078ff439eb1f607757064617465640361626304deadbeef0201020000a03f00000000000004c099b39ec8b81ed2666d8a70cfd00f7fef7cec787c020205020119000000000000000101000000000000000000f03f0000000000000040089f80207365f16f720a006800e9006c006c006f";
    let data = hex(&format!("0000c0{before_after}0000c0{after}"));
    let out = rows(&t, RowsKind::Update, &noblob, &noblob, &data).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, ChangeKind::Update);
    let absent = |mut row: Vec<Value>| {
        for i in [8, 9, 21, 23] {
            row[i] = Value::Absent;
        }
        row
    };
    assert_eq!(
        out[0].before.as_ref().unwrap(),
        &absent(expected_capture_row(1, "héllo wörld"))
    );
    assert_eq!(
        out[0].after.as_ref().unwrap(),
        &absent(expected_capture_row(2, "updated"))
    );

    // DELETE_ROWS
    let data = hex(&format!("0000c0{after}"));
    let out = rows(&t, RowsKind::Delete, &noblob, &[], &data).unwrap();
    assert_eq!(out[0].kind, ChangeKind::Delete);
    assert!(out[0].after.is_none());
    assert_eq!(
        out[0].before.as_ref().unwrap(),
        &absent(expected_capture_row(2, "updated"))
    );

    // A12 (NOBLOB form): INSERT (id) VALUES (3): 22 present columns.
    let out = rows(&t, RowsKind::Write, &noblob, &[], &hex("feffff 03000000")).unwrap();
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(row[0], Value::Int(3));
    for (i, v) in row.iter().enumerate().skip(1) {
        let want = if [8, 9, 21, 23].contains(&i) {
            Value::Absent
        } else {
            Value::Null
        };
        assert_eq!(v, &want, "column {i}");
    }
    // A12 (FULL form): bitmap FF FF FF FF, null bitmap FE FF FF 03.
    let out = rows(
        &t,
        RowsKind::Write,
        &hex("ffffffff"),
        &[],
        &hex("feffff03 03000000"),
    )
    .unwrap();
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(row[0], Value::Int(3));
    assert!(row[1..].iter().all(|v| v == &Value::Null));
    // MySQL 8.4 NOBLOB capture: bitmap FF FC 7F 03, null bitmap FE FF 7F.
    let out = rows(
        &t,
        RowsKind::Write,
        &hex("fffc7f03"),
        &[],
        &hex("feff7f 03000000"),
    )
    .unwrap();
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(row[0], Value::Int(3));
    assert_eq!(row[8], Value::Absent);
    assert_eq!(row[9], Value::Absent);
    assert_eq!(row[21], Value::Null);
    assert_eq!(row[23], Value::Absent);
}

/// MySQL 8.4.8 logs the same row (zongji `binlog-mysql84`) with a
/// binary JSON column (type 245) and utf8mb4 collation 255.
#[test]
fn mysql84_capture_row() {
    let mut cols = capture_types().columns.clone();
    cols[21] = col("js", tc::JSON, 4);
    for c in &mut cols {
        if c.collation == Some(UTF8MB4) {
            c.collation = Some(255);
        }
    }
    let t = table(cols);
    let js = "480000000004004700200001002100010022000300250003000501000b28000230000a3f006164617272626967000000000000f83f03000f000c0d000401000400000178ffffffffffffff7f";
    let head = "01000000ffffffffffffff7fffffffffffffffff7fff439eb1ca484078ff439eb1f60d68c3a96c6c6f2077c3b6726c640361626304deadbeef0201020a00746578742076616c75650200cafe0000a03f00000000000004c099b39ec8b81ed2666d8a70cfd00f7fef7cec787c02020502";
    let tail = "19000000000000000101000000000000000000f03f00000000000000400600636166e920f1089f80207365f16f720a006800e9006c006c006f";
    let row1 = format!("00000000{head}01{js}{tail}");
    let all = hex("ffffffff");
    let check = |row: &[Value], id: i64, vc: &str| {
        let mut want = expected_capture_row(id as u32, vc);
        want[21] = row[21].clone();
        assert_eq!(row, &want[..]);
        match &row[21] {
            Value::Json(doc) => assert_eq!(
                doc,
                r#"{"a": 1, "d": 1.5, "arr": ["x", true, null], "big": 9223372036854775807}"#
            ),
            other => panic!("{other:?}"),
        }
    };
    let data = hex(&row1);
    match rows(&t, RowsKind::Write, &all, &[], &data) {
        Ok(out) => check(out[0].after.as_ref().unwrap(), 1, "héllo wörld"),
        Err(e) => {
            assert!(matches!(e.reason(), RowErrorReason::Json(_)), "{e}");
            assert_eq!(e.column(), "db.t.js");
        }
    }
    // The id-only insert of the FULL capture: null bitmap FE FF FF 03.
    let out = rows(&t, RowsKind::Write, &all, &[], &hex("feffff03 03000000")).unwrap();
    assert_eq!(out[0].after.as_ref().unwrap()[0], Value::Int(3));
}

fn capture_mariadb() -> Arc<TableSchema> {
    use tc::*;
    table(vec![
        col("id", LONG, 0),
        coll(col("u", STRING, 0xFE10), BINARY),
        coll(col("i4", STRING, 0xFE04), BINARY),
        coll(col("i6", STRING, 0xFE10), BINARY),
        coll(col("v", VARCHAR, 12), BINARY),
        coll(col("j", BLOB, 4), UTF8MB4),
        coll(col("vc_comp", VARCHAR_COMPRESSED, 1201), UTF8MB4),
        coll(col("tx_comp", BLOB_COMPRESSED, 2), LATIN1),
    ])
}

#[test]
fn mariadb_capture_types_and_compressed_rows() {
    let t = capture_mariadb();
    // H8/H9 full row.
    let data = hex("0001000000101111111122223333444455555555555504c0a8010a1000000000000000000000ffff080808080c0000c03f0000204000006040080000007b2261223a20317d0e0089d22b2e2c4d2cced02d1e3e14000f0000636166e9206c6174696e206f6e65");
    let out = rows(&t, RowsKind::Write, &[0xFF], &[], &data).unwrap();
    assert_eq!(
        out[0].after.as_ref().unwrap(),
        &vec![
            Value::Int(1),
            Value::Bytes(hex("11111111222233334444555555555555")),
            Value::Bytes(hex("C0A8010A")),
            Value::Bytes(hex("00000000000000000000FFFF08080808")),
            Value::Bytes(hex("0000C03F0000204000006040")),
            text("{\"a\": 1}"),
            text(&"squash-".repeat(30)),
            text("café latin one"),
        ]
    );
    // INSERT (id, i6) VALUES (2, '::'), NOBLOB image.
    let out = rows(&t, RowsKind::Write, &[0x5F], &[], &hex("f6 02000000 00")).unwrap();
    assert_eq!(
        out[0].after.as_ref().unwrap(),
        &vec![
            Value::Int(2),
            Value::Null,
            Value::Null,
            Value::Bytes(vec![0; 16]),
            Value::Null,
            Value::Absent,
            Value::Null,
            Value::Absent,
        ]
    );
    // H11: the WRITE_ROWS_COMPRESSED_EVENT_V1 body inflates (header 81,
    // length 19, zlib) to rows data whose vc_comp is itself compressed.
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(
        &hex("789cbbc7ccc0c0c0c3d079c2fbb4a7ce455fe95f2c0c0037c50601")[..],
    )
    .read_to_end(&mut inflated)
    .unwrap();
    assert_eq!(inflated.len(), 19);
    let out = rows(&t, RowsKind::Write, &[0x5F], &[], &inflated).unwrap();
    let row = out[0].after.as_ref().unwrap();
    assert_eq!(row[0], Value::Int(3));
    assert_eq!(row[6], text(&"flat-".repeat(40)));
    assert_eq!(row[5], Value::Absent);
}

#[test]
fn mariadb_hires_row() {
    // D24: capture_hires, types 12/11/7; fsp 3 supplied by the schema
    // (MariaDB's TABLE_MAP has no metadata for these types).
    let t = table(vec![
        col("dt", tc::DATETIME, 3),
        col("tm", tc::TIME, 3),
        col("ts", tc::TIMESTAMP, 3),
    ]);
    let data = hex("f8 00422e00b39095 00b3ced494 666d8a700315");
    let out = rows(&t, RowsKind::Write, &[0x07], &[], &data).unwrap();
    let row = out[0].after.as_ref().unwrap();
    let Value::DateTime(dt) = &row[0] else {
        panic!()
    };
    assert_eq!(dt.to_string(), "2024-06-15 12:34:56.789");
    let Value::Time(tm) = &row[1] else { panic!() };
    assert_eq!(tm.to_string(), "-01:02:03.500");
    assert_eq!(
        row[2],
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 789_000,
            fsp: 3
        }
    );
}

#[test]
fn update_pairs_and_multiple_rows() {
    let t = table(vec![
        col("id", tc::LONG, 0),
        coll(col("name", tc::VARCHAR, 40), UTF8MB4),
    ]);
    // An update whose MINIMAL after image holds only `name`.
    let data = hex("00 01000000 01 61   FE 01 62");
    let out = rows(&t, RowsKind::Update, &[0x03], &[0x02], &data).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].before, Some(vec![Value::Int(1), text("a")]));
    assert_eq!(out[0].after, Some(vec![Value::Absent, text("b")]));
    // Two pairs in one event; the second sets name to NULL.
    let data = hex("00 02000000 01 63   00 02000000 01 64   00 03000000 00   FE 03000000");
    let out = rows(&t, RowsKind::Update, &[0x03], &[0x03], &data).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].before, Some(vec![Value::Int(2), text("c")]));
    assert_eq!(out[0].after, Some(vec![Value::Int(2), text("d")]));
    assert_eq!(out[1].before, Some(vec![Value::Int(3), text("")]));
    assert_eq!(out[1].after, Some(vec![Value::Int(3), Value::Null]));
    // Many rows in one event.
    let mut data = Vec::new();
    for i in 0..100u32 {
        data.push(0x00);
        data.extend_from_slice(&i.to_le_bytes());
        data.push(1);
        data.push(b'a' + (i % 26) as u8);
    }
    let out = rows(&t, RowsKind::Delete, &[0x03], &[], &data).unwrap();
    assert_eq!(out.len(), 100);
    assert_eq!(out[99].before, Some(vec![Value::Int(99), text("v")]));
}

/// (id INT, j JSON, k JSON) for partial updates.
fn json_table() -> Arc<TableSchema> {
    table(vec![
        col("id", tc::LONG, 0),
        col("j", tc::JSON, 4),
        col("k", tc::JSON, 4),
    ])
}

#[test]
fn partial_update_layout() {
    let t = json_table();
    // value_options = 0: the after image is a plain image.
    let data = hex("06 01000000   00 00 02000000");
    let out = rows(&t, RowsKind::PartialUpdate, &[0x07], &[0x01], &data).unwrap();
    assert_eq!(out[0].kind, ChangeKind::Update);
    assert_eq!(
        out[0].before,
        Some(vec![Value::Int(1), Value::Null, Value::Null])
    );
    assert_eq!(
        out[0].after,
        Some(vec![Value::Int(2), Value::Absent, Value::Absent])
    );
    // value_options = 1 with the partial bitmap (one bit per JSON column
    // of the table: here k only) and k NULL in the after image: the
    // bitmap is skipped, NULL wins.
    let data = hex("06 01000000   01 02 06 01000000");
    let out = rows(&t, RowsKind::PartialUpdate, &[0x07], &[0x07], &data).unwrap();
    assert_eq!(
        out[0].after,
        Some(vec![Value::Int(1), Value::Null, Value::Null])
    );
    // A long value_options (0xFC + 2 bytes) is read as a packed integer.
    let data = hex("06 01000000   FC 01 00 03 06 01000000");
    let out = rows(&t, RowsKind::PartialUpdate, &[0x07], &[0x07], &data).unwrap();
    assert_eq!(out[0].after.as_ref().unwrap()[0], Value::Int(1));
    // A diff for a column absent from the before image cannot apply;
    // a malformed one is still an error naming the column and offset.
    let data = hex("00 01000000   01 01 04 01000000 03000000 AABBCC");
    let e = rows(&t, RowsKind::PartialUpdate, &[0x01], &[0x03], &data).unwrap_err();
    assert!(matches!(e.reason(), RowErrorReason::Json(_)), "{e}");
    assert_eq!(e.column(), "db.t.j");
    assert_eq!(e.offset(), 12);
    // Bad value_options byte.
    let data = hex("06 01000000   FB");
    let e = rows(&t, RowsKind::PartialUpdate, &[0x07], &[0x07], &data).unwrap_err();
    assert_eq!(e.reason(), &RowErrorReason::BadPackedInt(0xFB));
    assert_eq!(e.offset(), 5);
}

#[test]
fn partial_update_applies_diff_against_before_document() {
    // Before: j = a binary JSON document; after: j = a diff. The
    // rendering and diff application belong to crate::jsonb; here the
    // framing is checked: before rendering is tried at byte 5, the diff
    // at byte 5 + 4 + 13 + 1 + 1 + 1 + 4 = 29.
    let t = json_table();
    let doc = hex("00 01 00 0C 00 0B 00 01 00 05 02 00 61");
    // JSON_SET(j, '$.a', 7): REPLACE "$.a" with INT16 7.
    let diff = hex("00 03 24 2E 61 03 05 07 00");
    let mut data = vec![0x04];
    data.extend_from_slice(&1u32.to_le_bytes());
    data.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    data.extend_from_slice(&doc);
    data.extend_from_slice(&[0x01, 0x01, 0x04]);
    data.extend_from_slice(&1u32.to_le_bytes());
    data.extend_from_slice(&(diff.len() as u32).to_le_bytes());
    data.extend_from_slice(&diff);
    match rows(&t, RowsKind::PartialUpdate, &[0x07], &[0x03], &data) {
        Ok(out) => {
            assert_eq!(
                out[0].before.as_ref().unwrap()[1],
                Value::Json("{\"a\": 2}".into())
            );
            assert_eq!(
                out[0].after.as_ref().unwrap(),
                &vec![
                    Value::Int(1),
                    Value::Json("{\"a\": 7}".into()),
                    Value::Absent
                ]
            );
        }
        Err(e) => {
            assert!(matches!(e.reason(), RowErrorReason::Json(_)), "{e}");
            assert_eq!(e.column(), "db.t.j");
            assert!(e.offset() == 5 || e.offset() == 29, "{e}");
        }
    }
}

/// The PARTIAL_UPDATE_ROWS event of MySQL 8.0's `json.binlog.000001`
/// (rust_mysql_common test data): `t(id INT PK, json_col JSON, name
/// VARCHAR(100) AS (json_col->>'$.name'), age INT AS (json_col->'$.age'))`,
/// `UPDATE t SET json_col = JSON_SET(json_col, '$.age', 26)`, logged with
/// a MINIMAL before image (id only).
#[test]
fn mysql_partial_update_fixture() {
    let t = table(vec![
        col("id", tc::LONG, 0),
        col("json_col", tc::JSON, 4),
        coll(col("name", tc::VARCHAR, 400), 255),
        col("age", tc::LONG, 0),
    ]);
    let row1_after = "01 01 00 0b000000 0005242e61676503051a00 0300 4a6f65 1a000000";
    // As logged: the diff has no document to apply to. The layout up to
    // json_col (value_options, one partial bit, null bitmap) is right
    // when the failure points at byte 8.
    let data = hex(&format!("00 01000000 {row1_after}"));
    let out = rows(&t, RowsKind::PartialUpdate, &[0x01], &[0x0E], &data).unwrap();
    assert_eq!(
        out[0].after.as_ref().unwrap()[1],
        Value::JsonDiff(r#"[{"op": "replace", "path": "$.age", "value": 26}]"#.into())
    );
    // With a FULL before image (the row as its WRITE_ROWS logged it) the
    // diff applies to the before document.
    let before = "00 01000000 34000000 0003003300190003001c000400200004000518000c24000c2f00616765646174616e616d650a78787878787878787878034a6f65 0300 4a6f65 18000000";
    let data = hex(&format!("{before} {row1_after}"));
    match rows(&t, RowsKind::PartialUpdate, &[0x0F], &[0x0E], &data) {
        Ok(out) => {
            assert_eq!(out.len(), 1);
            let after = out[0].after.as_ref().unwrap();
            assert_eq!(after[0], Value::Absent);
            let Value::Json(doc) = &after[1] else {
                panic!("{:?}", after[1])
            };
            assert!(doc.contains("\"age\": 26"), "{doc}");
            assert_eq!(after[2], text("Joe"));
            assert_eq!(after[3], Value::Int(26));
            let Value::Json(old) = &out[0].before.as_ref().unwrap()[1] else {
                panic!()
            };
            assert!(old.contains("\"age\": 24"), "{old}");
        }
        Err(e) => assert!(matches!(e.reason(), RowErrorReason::Json(_)), "{e}"),
    }
}

// ---- malformed input ---------------------------------------------------

#[test]
fn truncation_errors_name_column_and_offset() {
    let t = table(vec![
        col("a", tc::LONG, 0),
        coll(col("b", tc::VARCHAR, 10), UTF8MB4),
    ]);
    // b announces 5 bytes, 2 remain: fails at byte 6 (after the prefix).
    let e = rows(
        &t,
        RowsKind::Write,
        &[0x03],
        &[],
        &hex("00 01000000 05 61 62"),
    )
    .unwrap_err();
    assert_eq!(e.column(), "db.t.b");
    assert_eq!(e.offset(), 6);
    assert_eq!(
        e.reason(),
        &RowErrorReason::Truncated {
            needed: 5,
            available: 2
        }
    );
    assert!(e.to_string().contains("db.t.b"), "{e}");
    // a is cut short.
    let e = rows(&t, RowsKind::Write, &[0x03], &[], &hex("00 0100")).unwrap_err();
    assert_eq!((e.column(), e.offset()), ("db.t.a", 1));
    // The second row is cut short: nothing is appended.
    let mut out = vec![];
    let e = decode_rows(
        &RowsImage {
            table: &t,
            kind: RowsKind::Write,
            columns: &[0x03],
            columns_after: &[],
            data: &hex("00 01000000 01 61  00 02"),
        },
        &mut out,
    )
    .unwrap_err();
    assert!(out.is_empty());
    assert_eq!(e.offset(), 8);
    // Bitmap too short for the column count.
    let t9 = table((0..9).map(|i| col(&format!("c{i}"), tc::TINY, 0)).collect());
    let e = rows(&t9, RowsKind::Write, &[0xFF], &[], &[0]).unwrap_err();
    assert_eq!(
        e.reason(),
        &RowErrorReason::BitmapTooShort {
            bytes: 1,
            columns: 9
        }
    );
    assert_eq!(e.column(), "db.t");
    // An image with no columns cannot consume the data.
    let e = rows(&t, RowsKind::Write, &[0x00], &[], &[0x00]).unwrap_err();
    assert_eq!(e.reason(), &RowErrorReason::EmptyImage);
    // Empty data is zero rows.
    assert!(rows(&t, RowsKind::Write, &[0x03], &[], &[])
        .unwrap()
        .is_empty());
}

#[test]
fn invalid_columns_fail_only_when_a_value_is_present() {
    let t = table(vec![
        col("old", tc::DECIMAL, 0),
        col("ta", tc::TYPED_ARRAY, 0),
    ]);
    // Both NULL: fine.
    let out = rows(&t, RowsKind::Write, &[0x03], &[], &[0x03]).unwrap();
    assert_eq!(out[0].after, Some(vec![Value::Null, Value::Null]));
    let e = rows(&t, RowsKind::Write, &[0x03], &[], &[0x02, 0]).unwrap_err();
    assert_eq!(e.reason(), &RowErrorReason::OldDecimal);
    assert!(e.to_string().contains("db.t.old"));
    let e = rows(&t, RowsKind::Write, &[0x03], &[], &[0x01, 0]).unwrap_err();
    assert_eq!(
        e.reason(),
        &RowErrorReason::UnsupportedType(tc::TYPED_ARRAY)
    );
    assert_eq!(e.offset(), 1);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_truncated_and_garbled_rows_never_panic() {
    let t = capture_types();
    let full = hex(&format!("000000fc{CAPTURE_ROW}"));
    // Every truncation of a one-row event is an error within bounds.
    for len in 1..full.len() {
        let e = rows(&t, RowsKind::Write, &hex("ffffff03"), &[], &full[..len]).unwrap_err();
        assert!(e.offset() <= len, "len {len}: {e}");
    }
    // Garbled bytes: any outcome but a panic; errors stay within bounds.
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let tables = [capture_types(), capture_mariadb(), json_table()];
    let seeds = [
        full.clone(),
        hex("0001000000101111111122223333444455555555555504c0a8010a1000000000000000000000ffff080808080c0000c03f0000204000006040080000007b2261223a20317d0e0089d22b2e2c4d2cced02d1e3e14000f0000636166e9206c6174696e206f6e65"),
        hex("04 01000000 0D000000 00 01 00 0C 00 0B 00 01 00 05 02 00 61 01 01 04 01000000 0C000000 01 05 24 2E 61 2E 62 01 04 05 01 00"),
    ];
    let kinds = [
        RowsKind::Write,
        RowsKind::Update,
        RowsKind::Delete,
        RowsKind::PartialUpdate,
    ];
    for _ in 0..6000 {
        let which = rng.below(3);
        let mut data = seeds[which].clone();
        for _ in 0..=rng.below(6) {
            match rng.below(4) {
                0 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data[i] = rng.next() as u8;
                }
                1 if !data.is_empty() => {
                    let l = rng.below(data.len());
                    data.truncate(l);
                }
                2 => {
                    let i = rng.below(data.len() + 1);
                    data.insert(i, rng.next() as u8);
                }
                _ => {
                    for _ in 0..rng.below(16) {
                        data.push(rng.next() as u8);
                    }
                }
            }
        }
        let bitmap: Vec<u8> = (0..4).map(|_| rng.next() as u8).collect();
        let kind = kinds[rng.below(4)];
        if let Err(e) = rows(&tables[which], kind, &bitmap, &bitmap, &data) {
            assert!(e.offset() <= data.len(), "{e}");
        }
    }
    // Random bytes into every column type.
    let columns: Vec<Column> = capture_types()
        .columns
        .iter()
        .chain(capture_mariadb().columns.iter())
        .chain(json_table().columns.iter())
        .cloned()
        .chain([
            col("t", tc::TIME, 6),
            col("dt", tc::DATETIME, 6),
            col("ts", tc::TIMESTAMP, 6),
            col("t0", tc::TIME, 0),
            col("dt0", tc::DATETIME, 0),
            col("t2", tc::TIME2, 6),
            col("d", tc::NEWDECIMAL, 0x4100 | 30),
            col("s", tc::SET, 0xF808),
            col("b", tc::BIT, 0x0800),
            col("c", tc::STRING, 0xCEFC),
        ])
        .collect();
    for _ in 0..20_000 {
        let c = &columns[rng.below(columns.len())];
        let n = rng.below(40);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        match decode_value(c, &bytes) {
            Ok((_, used)) => assert!(used <= bytes.len()),
            Err(e) => assert!(e.offset() <= bytes.len(), "{e}"),
        }
    }
}

/// Decoding speed of a typical OLTP row (INT, BIGINT, VARCHAR(63)
/// utf8mb4, DECIMAL(10,2), DATETIME, INT NULL). Run with
/// `cargo test --release -p sluice-binlog rows_per_second -- --ignored --nocapture`.
#[test]
#[ignore]
fn rows_per_second() {
    let t = table(vec![
        col("id", tc::LONG, 0),
        col("k", tc::LONGLONG, 0),
        coll(col("c", tc::VARCHAR, 252), UTF8MB4),
        col("price", tc::NEWDECIMAL, (10 << 8) | 2),
        col("at", tc::DATETIME2, 0),
        col("n", tc::LONG, 0),
    ]);
    let mut data = Vec::new();
    let rows_n = 100_000u32;
    for i in 0..rows_n {
        data.push(0b10_0000);
        data.extend_from_slice(&i.to_le_bytes());
        data.extend_from_slice(&u64::from(i).wrapping_mul(7919).to_le_bytes());
        let s = format!("customer-{i:08}-some-text-here");
        data.push(s.len() as u8);
        data.extend_from_slice(s.as_bytes());
        data.extend_from_slice(&crate::decimal::tests::encode("12345.67", 10, 2));
        data.extend_from_slice(&hex("99 B3 9E C8 B8"));
    }
    let mut out = Vec::with_capacity(rows_n as usize);
    let t0 = std::time::Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        out.clear();
        decode_rows(
            &RowsImage {
                table: &t,
                kind: RowsKind::Write,
                columns: &[0x3F],
                columns_after: &[],
                data: &data,
            },
            &mut out,
        )
        .unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let rate = f64::from(rows_n * rounds) / secs;
    println!("decoded {:.2} M rows/s", rate / 1e6);
    assert_eq!(out.len(), rows_n as usize);
}
