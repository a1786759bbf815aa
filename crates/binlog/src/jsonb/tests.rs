//! Tests of the binary JSON decoder, its text form and partial updates,
//! against documents built by an independent encoder in this file and the
//! real server fixtures.

use std::cmp::Ordering;

use base64::Engine as _;

use super::decode::*;
use super::diff::key_order;
use super::path::{parse_path, path_text, Leg};
use super::text::{write_double, write_quoted};
use super::*;

/// Bytes per group of 0..=9 decimal digits in `decimal2bin`.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

// -- helpers ------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A document as the test encoder sees it: every binary type explicit.
#[derive(Debug, Clone)]
enum T {
    Null,
    True,
    False,
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    /// field type, data, expected text.
    Opaque(u8, Vec<u8>, String),
    Arr(Vec<T>),
    Obj(Vec<(String, T)>),
}

fn s(v: &str) -> T {
    T::Str(v.to_owned())
}

fn obj(members: &[(&str, T)]) -> T {
    T::Obj(
        members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn varlen(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn put(buf: &mut [u8], at: usize, value: usize, width: usize) {
    for i in 0..width {
        buf[at + i] = (value >> (8 * i)) as u8;
    }
}

fn inlinable(t: &T, large: bool) -> bool {
    match t {
        T::Null | T::True | T::False | T::I16(_) | T::U16(_) => true,
        T::I32(_) | T::U32(_) => large,
        _ => false,
    }
}

/// Type byte and payload of a value.
fn enc(t: &T, force_large: bool) -> (u8, Vec<u8>) {
    match t {
        T::Null => (LITERAL, vec![LITERAL_NULL]),
        T::True => (LITERAL, vec![LITERAL_TRUE]),
        T::False => (LITERAL, vec![LITERAL_FALSE]),
        T::I16(v) => (INT16, v.to_le_bytes().to_vec()),
        T::U16(v) => (UINT16, v.to_le_bytes().to_vec()),
        T::I32(v) => (INT32, v.to_le_bytes().to_vec()),
        T::U32(v) => (UINT32, v.to_le_bytes().to_vec()),
        T::I64(v) => (INT64, v.to_le_bytes().to_vec()),
        T::U64(v) => (UINT64, v.to_le_bytes().to_vec()),
        T::F64(v) => (DOUBLE, v.to_le_bytes().to_vec()),
        T::Str(v) => {
            let mut out = varlen(v.len());
            out.extend_from_slice(v.as_bytes());
            (STRING, out)
        }
        T::Opaque(ft, data, _) => {
            let mut out = vec![*ft];
            out.extend(varlen(data.len()));
            out.extend_from_slice(data);
            (OPAQUE, out)
        }
        T::Arr(items) => {
            let members: Vec<(Option<&str>, &T)> = items.iter().map(|v| (None, v)).collect();
            container(false, &members, force_large)
        }
        T::Obj(items) => {
            let members: Vec<(Option<&str>, &T)> =
                items.iter().map(|(k, v)| (Some(k.as_str()), v)).collect();
            container(true, &members, force_large)
        }
    }
}

fn container(is_object: bool, members: &[(Option<&str>, &T)], force_large: bool) -> (u8, Vec<u8>) {
    let (small, large) = if is_object {
        (SMALL_OBJECT, LARGE_OBJECT)
    } else {
        (SMALL_ARRAY, LARGE_ARRAY)
    };
    if !force_large {
        if let Some(bytes) = container_format(is_object, members, false, force_large) {
            return (small, bytes);
        }
    }
    let bytes =
        container_format(is_object, members, true, force_large).expect("fits the large format");
    (large, bytes)
}

fn container_format(
    is_object: bool,
    members: &[(Option<&str>, &T)],
    large: bool,
    force_large: bool,
) -> Option<Vec<u8>> {
    let osz = if large { 4 } else { 2 };
    let max = if large {
        u32::MAX as usize
    } else {
        u16::MAX as usize
    };
    let n = members.len();
    let key_entry = if is_object { osz + 2 } else { 0 };
    let value_entry = 1 + osz;
    let mut buf = vec![0u8; 2 * osz + n * (key_entry + value_entry)];
    if n > max {
        return None;
    }
    put(&mut buf, 0, n, osz);
    if is_object {
        for (i, (key, _)) in members.iter().enumerate() {
            let key = key.expect("object member has a key");
            let offset = buf.len();
            if offset > max {
                return None;
            }
            assert!(key.len() <= u16::MAX as usize);
            put(&mut buf, 2 * osz + i * key_entry, offset, osz);
            put(&mut buf, 2 * osz + i * key_entry + osz, key.len(), 2);
            buf.extend_from_slice(key.as_bytes());
        }
    }
    for (i, (_, value)) in members.iter().enumerate() {
        let entry = 2 * osz + n * key_entry + i * value_entry;
        let (type_byte, payload) = enc(value, force_large);
        buf[entry] = type_byte;
        if inlinable(value, large) {
            buf[entry + 1..entry + 1 + payload.len()].copy_from_slice(&payload);
        } else {
            let offset = buf.len();
            if offset > max {
                return None;
            }
            put(&mut buf, entry + 1, offset, osz);
            buf.extend(payload);
        }
    }
    if buf.len() > max {
        return None;
    }
    let size = buf.len();
    put(&mut buf, osz, size, osz);
    Some(buf)
}

fn doc_with(t: &T, force_large: bool) -> Vec<u8> {
    let (type_byte, payload) = enc(t, force_large);
    let mut out = vec![type_byte];
    out.extend(payload);
    out
}

fn doc(t: &T) -> Vec<u8> {
    doc_with(t, false)
}

/// An independent, char-based reference for MySQL's string quoting.
fn quote_ref(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn expected(t: &T) -> String {
    match t {
        T::Null => "null".into(),
        T::True => "true".into(),
        T::False => "false".into(),
        T::I16(v) => v.to_string(),
        T::U16(v) => v.to_string(),
        T::I32(v) => v.to_string(),
        T::U32(v) => v.to_string(),
        T::I64(v) => v.to_string(),
        T::U64(v) => v.to_string(),
        T::F64(v) => {
            let mut out = String::new();
            write_double(&mut out, *v);
            out
        }
        T::Str(v) => quote_ref(v),
        T::Opaque(_, _, text) => text.clone(),
        T::Arr(items) => format!(
            "[{}]",
            items.iter().map(expected).collect::<Vec<_>>().join(", ")
        ),
        T::Obj(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{}: {}", quote_ref(k), expected(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A strict RFC 8259 checker, so every output is proven to be JSON that
/// a target can parse back.
fn assert_valid_json(text: &str) {
    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.b.get(self.i) == Some(&c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn digits(&mut self) -> usize {
            let start = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            self.i - start
        }
        fn value(&mut self) -> Result<(), usize> {
            self.ws();
            match self.b.get(self.i).copied() {
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    loop {
                        self.ws();
                        self.string()?;
                        self.ws();
                        if !self.eat(b':') {
                            return Err(self.i);
                        }
                        self.value()?;
                        self.ws();
                        if self.eat(b'}') {
                            return Ok(());
                        }
                        if !self.eat(b',') {
                            return Err(self.i);
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b']') {
                        return Ok(());
                    }
                    loop {
                        self.value()?;
                        self.ws();
                        if self.eat(b']') {
                            return Ok(());
                        }
                        if !self.eat(b',') {
                            return Err(self.i);
                        }
                    }
                }
                Some(b'"') => self.string(),
                Some(b't') if self.b[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Ok(())
                }
                Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Ok(())
                }
                Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Ok(())
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.eat(b'-');
                    if !self.eat(b'0') && self.digits() == 0 {
                        return Err(self.i);
                    }
                    if self.eat(b'.') && self.digits() == 0 {
                        return Err(self.i);
                    }
                    if self.eat(b'e') || self.eat(b'E') {
                        let _ = self.eat(b'+') || self.eat(b'-');
                        if self.digits() == 0 {
                            return Err(self.i);
                        }
                    }
                    Ok(())
                }
                _ => Err(self.i),
            }
        }
        fn string(&mut self) -> Result<(), usize> {
            if !self.eat(b'"') {
                return Err(self.i);
            }
            loop {
                match self.b.get(self.i).copied() {
                    None => return Err(self.i),
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(());
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        match self.b.get(self.i).copied() {
                            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                                self.i += 1
                            }
                            Some(b'u') => {
                                let hex = self.b.get(self.i + 1..self.i + 5).ok_or(self.i)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return Err(self.i);
                                }
                                self.i += 5;
                            }
                            _ => return Err(self.i),
                        }
                    }
                    Some(c) if c < 0x20 => return Err(self.i),
                    Some(_) => self.i += 1,
                }
            }
        }
    }
    let mut p = P {
        b: text.as_bytes(),
        i: 0,
    };
    let result = p.value().and_then(|()| {
        p.ws();
        if p.i == p.b.len() {
            Ok(())
        } else {
            Err(p.i)
        }
    });
    if let Err(at) = result {
        panic!("not valid JSON at byte {at}: {text:?}");
    }
}

/// Renders `t` through both paths (direct text and the owned tree) and
/// checks both against the reference text.
fn check(t: &T) {
    let want = expected(t);
    for force_large in [false, true] {
        let bytes = doc_with(t, force_large);
        assert_eq!(
            jsonb_to_text(&bytes).as_deref(),
            Ok(want.as_str()),
            "large={force_large}"
        );
        assert_eq!(
            apply_json_diff(&bytes, &[]).as_deref(),
            Ok(want.as_str()),
            "tree, large={force_large}"
        );
    }
    assert_valid_json(&want);
}

fn text(bytes: &[u8]) -> String {
    jsonb_to_text(bytes).unwrap_or_else(|e| panic!("{e}"))
}

// -- test-side encoders for OPAQUE payloads --------------------------------

/// `decimal2bin` of a decimal literal, with the precision/scale prefix.
fn enc_decimal(literal: &str, precision: usize, scale: usize) -> Vec<u8> {
    let (negative, digits) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let int_part = int_part.trim_start_matches('0');
    let intg = precision - scale;
    let int_digits = format!("{int_part:0>intg$}");
    let frac_digits = format!("{frac_part:0<scale$}");
    assert_eq!(
        (int_digits.len(), frac_digits.len()),
        (intg, scale),
        "{literal} fits"
    );
    let mut groups: Vec<&str> = Vec::new();
    let lead = intg % 9;
    if lead > 0 {
        groups.push(&int_digits[..lead]);
    }
    for i in 0..intg / 9 {
        groups.push(&int_digits[lead + 9 * i..lead + 9 * i + 9]);
    }
    for i in 0..scale / 9 {
        groups.push(&frac_digits[9 * i..9 * i + 9]);
    }
    let frac_tail = scale % 9;
    if frac_tail > 0 {
        groups.push(&frac_digits[scale - frac_tail..]);
    }
    let mut bin = Vec::new();
    for g in groups {
        let v: u32 = g.parse().expect("digits");
        let width = DIG2BYTES[g.len()];
        bin.extend_from_slice(&v.to_be_bytes()[4 - width..]);
    }
    if negative {
        bin.iter_mut().for_each(|b| *b ^= 0xff);
    }
    bin[0] ^= 0x80;
    let mut out = vec![precision as u8, scale as u8];
    out.extend(bin);
    out
}

fn pack_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Vec<u8> {
    let ymd = ((y * 13 + mo) << 5) | d;
    let hms = (h << 12) | (mi << 6) | s;
    ((((ymd << 17) | hms) << 24) + us).to_le_bytes().to_vec()
}

fn pack_time(negative: bool, h: i64, mi: i64, s: i64, us: i64) -> Vec<u8> {
    let v = ((((h << 12) | (mi << 6) | s) << 24) + us) * if negative { -1 } else { 1 };
    v.to_le_bytes().to_vec()
}

fn decimal(literal: &str, precision: usize, scale: usize, want: &str) -> T {
    T::Opaque(
        FIELD_NEWDECIMAL,
        enc_decimal(literal, precision, scale),
        want.to_owned(),
    )
}

// -- TYPE_CASES F: hand-checked documents ----------------------------------

#[test]
#[allow(clippy::approx_constant)] // 3.14 is the F4 vector, not an approximation of pi
fn f4_scalars_and_empty_containers() {
    for (t, want) in [
        (s("scalar string"), "\"scalar string\""),
        (T::True, "true"),
        (T::False, "false"),
        (T::Null, "null"),
        (T::I16(-1), "-1"),
        (T::F64(3.14), "3.14"),
        (T::Obj(vec![]), "{}"),
        (T::Arr(vec![]), "[]"),
    ] {
        assert_eq!(expected(&t), want);
        check(&t);
    }
    // Exact bytes MySQL writes for a few of them.
    assert_eq!(text(&hex("0401")), "true");
    assert_eq!(text(&hex("0000000400")), "{}");
    assert_eq!(text(&hex("0200000400")), "[]");
    assert_eq!(
        text(&hex("0c0d 7363616c617220737472696e67")),
        "\"scalar string\""
    );
}

#[test]
fn f5_integer_width_boundaries() {
    for (t, want) in [
        (T::I16(32767), "32767"),
        (T::I32(32768), "32768"),
        (T::I16(-32768), "-32768"),
        (T::I32(-32769), "-32769"),
        (T::I32(2147483647), "2147483647"),
        (T::I64(2147483648), "2147483648"),
        (T::I32(-2147483648), "-2147483648"),
        (T::I64(-2147483649), "-2147483649"),
        (T::I64(i64::MIN), "-9223372036854775808"),
        (T::I64(i64::MAX), "9223372036854775807"),
        (T::U64(u64::MAX), "18446744073709551615"),
        (T::U16(65535), "65535"),
        (T::U32(u32::MAX), "4294967295"),
        (T::U16(1), "1"),
    ] {
        assert_eq!(expected(&t), want);
        check(&t);
        check(&T::Arr(vec![t.clone(), t.clone()]));
        check(&obj(&[("k", t)]));
    }
}

#[test]
fn f6_above_uint64_is_a_double() {
    check(&T::F64(18446744073709551616.0));
    assert_eq!(
        expected(&T::F64(18446744073709551616.0)),
        "1.8446744073709552e19"
    );
}

#[test]
fn f7_key_order_and_72_byte_layout() {
    // Stored order is MySQL's sorted order: a, d, arr, big.
    let t = obj(&[
        ("a", T::I16(1)),
        ("d", T::F64(1.5)),
        ("arr", T::Arr(vec![s("x"), T::True, T::Null])),
        ("big", T::U64(9223372036854775807)),
    ]);
    let bytes = doc(&t);
    assert_eq!(bytes.len(), 72);
    assert_eq!(bytes[0], SMALL_OBJECT);
    assert_eq!(
        text(&bytes),
        r#"{"a": 1, "d": 1.5, "arr": ["x", true, null], "big": 9223372036854775807}"#
    );
    check(&t);
}

#[test]
fn f1_to_f3_and_f16_documents() {
    check(&obj(&[("my_key", s("my_val")), ("my_key2", s("my_val2"))]));
    check(&T::Arr(vec![s("my_val"), s("my_val2")]));
    check(&obj(&[
        ("bar", T::F64(123.4321)),
        (
            "baz",
            T::Arr(vec![
                T::I16(1),
                T::I16(2),
                T::I16(3),
                obj(&[("hello", s("inside an array"))]),
            ]),
        ),
        ("foo", s("bar")),
    ]));
    check(&obj(&[(
        "a",
        obj(&[(
            "b",
            obj(&[("c", s("d")), ("e", T::Arr(vec![s("f"), s("g")]))]),
        )]),
    )]));
    check(&T::Arr(vec![
        T::I16(-1),
        T::Arr(vec![s("b"), T::Arr(vec![s("c")])]),
        T::I16(1),
    ]));
    check(&obj(&[("bitrate", obj(&[("", T::I16(0))]))]));
    let unicode = obj(&[
        ("miam", s("🍔")),
        ("key", s("éééàààà")),
        ("keybá3", T::I16(34)),
    ]);
    assert_eq!(
        expected(&unicode),
        r#"{"miam": "🍔", "key": "éééàààà", "keybá3": 34}"#
    );
    check(&unicode);
}

#[test]
fn f8_to_f11_temporals() {
    let cases = [
        (
            FIELD_DATETIME,
            pack_datetime(2015, 1, 15, 23, 24, 25, 0),
            "\"2015-01-15 23:24:25.000000\"",
        ),
        (
            FIELD_DATETIME,
            pack_datetime(2015, 1, 15, 23, 24, 25, 23_700),
            "\"2015-01-15 23:24:25.023700\"",
        ),
        (
            FIELD_TIMESTAMP,
            pack_datetime(2024, 1, 15, 10, 30, 45, 123_456),
            "\"2024-01-15 10:30:45.123456\"",
        ),
        (
            FIELD_DATE,
            pack_datetime(2015, 1, 15, 0, 0, 0, 0),
            "\"2015-01-15\"",
        ),
        (
            FIELD_TIME,
            pack_time(false, 23, 24, 25, 0),
            "\"23:24:25.000000\"",
        ),
        (
            FIELD_TIME,
            pack_time(false, 23, 24, 25, 24_000),
            "\"23:24:25.024000\"",
        ),
        (
            FIELD_TIME,
            pack_time(true, 838, 59, 59, 0),
            "\"-838:59:59.000000\"",
        ),
        (
            FIELD_TIME,
            pack_time(true, 0, 0, 1, 500_000),
            "\"-00:00:01.500000\"",
        ),
        (
            FIELD_TIME,
            pack_time(false, 0, 0, 0, 0),
            "\"00:00:00.000000\"",
        ),
        (
            FIELD_DATETIME,
            pack_datetime(0, 0, 0, 0, 0, 0, 0),
            "\"0000-00-00 00:00:00.000000\"",
        ),
        (
            FIELD_TIMESTAMP,
            pack_datetime(0, 0, 0, 0, 0, 0, 0),
            "\"0000-00-00 00:00:00.000000\"",
        ),
        (
            FIELD_DATE,
            pack_datetime(0, 0, 0, 0, 0, 0, 0),
            "\"0000-00-00\"",
        ),
        (
            FIELD_DATETIME,
            pack_datetime(9999, 12, 31, 23, 59, 59, 999_999),
            "\"9999-12-31 23:59:59.999999\"",
        ),
    ];
    for (field_type, data, want) in cases {
        check(&T::Opaque(field_type, data, want.to_owned()));
    }
    // F11: JSON_OBJECT('time_key', TIME, 'datetime_key', DATETIME, 'decimal', DECIMAL(10,2)).
    let t = obj(&[
        ("decimal", decimal("99.99", 10, 2, "99.99")),
        (
            "time_key",
            T::Opaque(
                FIELD_TIME,
                pack_time(false, 18, 54, 12, 0),
                "\"18:54:12.000000\"".into(),
            ),
        ),
        (
            "datetime_key",
            T::Opaque(
                FIELD_DATETIME,
                pack_datetime(2023, 9, 24, 18, 54, 12, 0),
                "\"2023-09-24 18:54:12.000000\"".into(),
            ),
        ),
    ]);
    assert_eq!(
        expected(&t),
        r#"{"decimal": 99.99, "time_key": "18:54:12.000000", "datetime_key": "2023-09-24 18:54:12.000000"}"#
    );
    check(&t);
    // F10: UNIX_TIMESTAMP(...) is a plain integer.
    check(&T::I32(1421364265));
}

#[test]
fn corrupt_temporals_are_refused() {
    for (field_type, data) in [
        (FIELD_DATETIME, pack_datetime(2015, 1, 15, 24, 0, 0, 0)),
        (FIELD_DATETIME, pack_datetime(2015, 1, 15, 23, 60, 0, 0)),
        (
            FIELD_DATETIME,
            pack_datetime(2015, 1, 15, 23, 0, 0, 1_000_000),
        ),
        (FIELD_DATE, (-1i64).to_le_bytes().to_vec()),
        (FIELD_TIME, pack_time(false, 839, 0, 0, 0)),
        (FIELD_TIME, vec![0; 7]),
        (FIELD_DATE, vec![0; 9]),
    ] {
        let bytes = doc(&T::Opaque(field_type, data, String::new()));
        let err = jsonb_to_text(&bytes).expect_err("corrupt temporal");
        assert!(
            matches!(err, JsonError::Malformed { offset: 3, .. }),
            "{err}"
        );
    }
}

#[test]
fn f12_decimals_keep_their_scale_unquoted() {
    // GOM's hand-built bytes: opaque DECIMAL(2,1) 81 00 -> 1.0.
    assert_eq!(text(&hex("0f f6 04 02 01 81 00")), "1.0");
    assert_eq!(enc_decimal("1.0", 2, 1), hex("02 01 81 00"));
    for (literal, precision, scale, want) in [
        ("212765.700000000010000", 21, 15, "212765.700000000010000"),
        // CAST(... AS DECIMAL(24,17)) keeps the literal's 14 fractional
        // digits (decimal_round never widens), and that is what is stored.
        ("111111.11111110000001", 20, 14, "111111.11111110000001"),
        ("111111.11111110000001", 24, 17, "111111.11111110000001000"),
        ("99.99", 10, 2, "99.99"),
        ("-99.99", 10, 2, "-99.99"),
        ("0.5", 10, 2, "0.50"),
        ("-0.5", 3, 1, "-0.5"),
        ("0", 10, 0, "0"),
        ("0.00", 10, 2, "0.00"),
        ("7", 1, 0, "7"),
        (
            "123456789012345678901234567890.123456789012345678901234567890",
            65,
            30,
            "123456789012345678901234567890.123456789012345678901234567890",
        ),
        (
            "-123456789012345678901234567890.123456789012345678901234567890",
            65,
            30,
            "-123456789012345678901234567890.123456789012345678901234567890",
        ),
        ("0.000000001", 30, 30, "0.000000001000000000000000000000"),
        ("1000000000", 10, 0, "1000000000"),
        ("9.00", 11, 2, "9.00"),
        ("123.456", 6, 3, "123.456"),
    ] {
        check(&decimal(literal, precision, scale, want));
        check(&obj(&[("d", decimal(literal, precision, scale, want))]));
    }
}

#[test]
fn corrupt_decimals_are_refused() {
    for data in [
        hex(""),
        hex("02"),
        hex("02 01 81"),                // one byte short
        hex("02 01 81 00 00"),          // one byte long
        hex("00 00 80"),                // precision 0
        hex("42 00 80"),                // precision 66
        hex("02 03 80 00"),             // scale > precision
        hex("02 01 8a 00"),             // integer digit 10
        hex("0a 00 80 3b 9a ca 00 00"), // DECIMAL(10,0): word 1e9 out of range
    ] {
        let bytes = doc(&T::Opaque(FIELD_NEWDECIMAL, data.clone(), String::new()));
        assert!(jsonb_to_text(&bytes).is_err(), "{data:02x?}");
    }
}

#[test]
fn f14_opaque_bytes_render_as_base64() {
    check(&T::Opaque(15, hex("cafe"), "\"base64:type15:yv4=\"".into()));
    check(&T::Opaque(
        15,
        hex("cafebabe"),
        "\"base64:type15:yv66vg==\"".into(),
    ));
    check(&T::Opaque(252, vec![], "\"base64:type252:\"".into()));
    // MySQL breaks the base64 text every 76 characters; the newline is escaped.
    let data: Vec<u8> = (0u8..=100).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let want = format!("\"base64:type16:{}\\n{}\"", &b64[..76], &b64[76..]);
    check(&T::Opaque(16, data, want));
    // A VAR_STRING kept as opaque is a plain string; a non-UTF-8 one falls back.
    check(&T::Opaque(
        FIELD_VAR_STRING,
        b"a\"b".to_vec(),
        "\"a\\\"b\"".into(),
    ));
    check(&T::Opaque(
        FIELD_VAR_STRING,
        vec![0xff],
        "\"base64:type253:/w==\"".into(),
    ));
}

#[test]
#[allow(clippy::approx_constant)] // 3.14 is a test vector, not an approximation of pi
fn f19_doubles_match_mysql_text() {
    for (d, want) in [
        (1.0, "1.0"),
        (1e10, "10000000000.0"),
        (1.5e-5, "0.000015"),
        (1e15, "1e15"),
        (9.999999999999999e14, "999999999999999.9"),
        (1e16, "1e16"),
        (1e-15, "0.000000000000001"),
        (1e-16, "1e-16"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e308"),
        (-0.0, "-0.0"),
        // More of my_gcvt's thresholds.
        (0.0, "0.0"),
        (-1.0, "-1.0"),
        (3.14, "3.14"),
        (123.4321, "123.4321"),
        (-2.5e-7, "-0.00000025"),
        (1.2345e-14, "0.000000000000012345"),
        (1.5e-15, "0.0000000000000015"),
        (1.5e-16, "1.5e-16"),
        (123456789012345.0, "123456789012345.0"),
        (999999999999999.0, "999999999999999.0"),
        (1000000000000000.5, "1000000000000000.5"),
        (1234567890123456.8, "1234567890123456.8"),
        (1.5e15, "1.5e15"),
        (1.25e16, "1.25e16"),
        (-1e100, "-1e100"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (0.1, "0.1"),
        (1.0 / 3.0, "0.3333333333333333"),
        (100.0, "100.0"),
    ] {
        let mut out = String::new();
        write_double(&mut out, d);
        assert_eq!(out, want, "{d:e}");
        assert_valid_json(&out);
        check(&T::F64(d));
        check(&T::Arr(vec![T::F64(d)]));
    }
}

#[test]
fn non_finite_doubles_are_refused() {
    for d in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = jsonb_to_text(&doc(&T::F64(d))).expect_err("not a JSON number");
        assert!(matches!(err, JsonError::Malformed { offset: 1, .. }));
    }
}

#[test]
fn f20_empty_value_is_null() {
    assert_eq!(jsonb_to_text(&[]).as_deref(), Ok("null"));
    assert_eq!(apply_json_diff(&[], &[]).as_deref(), Ok("null"));
    // ... and no diff can address anything inside it.
    let diff = diff_entry(0, "$.a", Some(&doc(&T::I16(1))));
    assert!(matches!(
        apply_json_diff(&[], &diff),
        Err(JsonError::DiffNotApplicable { .. })
    ));
}

#[test]
fn strings_and_keys_are_escaped_like_mysql() {
    let t = obj(&[(
        "k\"\\\n",
        s("a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1}\u{1f}\u{7f}/é🍔\u{2028}"),
    )]);
    assert_eq!(
        expected(&t),
        "{\"k\\\"\\\\\\n\": \"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u{7f}/é🍔\u{2028}\"}"
    );
    check(&t);
    let mut out = String::new();
    write_quoted(&mut out, "\u{1b}x\u{1a}");
    assert_eq!(out, "\"\\u001bx\\u001a\"");
}

#[test]
fn f18_string_lengths_cross_varlen_boundaries() {
    for len in [
        0, 1, 127, 128, 129, 256, 7383, 16383, 16384, 16388, 65535, 65536, 2_097_151, 2_097_152,
    ] {
        let v = "a".repeat(len);
        let bytes = doc(&T::Str(v.clone()));
        let prefix = match len {
            0..=127 => 1,
            128..=16383 => 2,
            16384..=2_097_151 => 3,
            _ => 4,
        };
        assert_eq!(bytes.len(), 1 + prefix + len, "len {len}");
        assert_eq!(text(&bytes), format!("\"{v}\""));
        check(&obj(&[("twobytelen", T::Str(v))]));
    }
    check(&T::Str("super_long_string".repeat(100)));
    // A varlen that never ends, or exceeds 32 bits, is corrupt.
    assert!(jsonb_to_text(&hex("0c ff ff ff ff ff 00")).is_err());
    assert!(jsonb_to_text(&hex("0c ff ff ff ff 1f")).is_err());
}

#[test]
fn f17_large_documents() {
    // 2560 members of > 64 KB force the large object format.
    let members: Vec<(String, T)> = (0..2560)
        .map(|i| (format!("foooo{i}"), T::Str(format!("baaaaar{i}"))))
        .collect();
    let t = T::Obj(members);
    let bytes = doc(&t);
    assert_eq!(bytes[0], LARGE_OBJECT);
    assert!(bytes.len() > 65536);
    check(&t);
    // 100,000 integers: int16 inlined, int32 inlined only in large arrays.
    let t = T::Arr(
        (0..100_000)
            .map(|i| {
                if i % 2 == 0 {
                    T::I16(i as i16)
                } else {
                    T::I32(i)
                }
            })
            .collect(),
    );
    let bytes = doc(&t);
    assert_eq!(bytes[0], LARGE_ARRAY);
    check(&t);
    // A 64K-1 character key.
    let t = obj(&[(&"a".repeat(65535), T::I16(123))]);
    let bytes = doc(&t);
    assert_eq!(bytes[0], LARGE_OBJECT);
    check(&t);
    // A large document with small children, and small ones forced large.
    let t = T::Arr(vec![
        obj(&[("x", T::I32(70000))]),
        T::Str("z".repeat(70000)),
        T::U32(7),
    ]);
    assert_eq!(doc(&t)[0], LARGE_ARRAY);
    check(&t);
}

#[test]
fn depth_limit_is_mysqls() {
    let mut t = T::I16(1);
    for _ in 0..MAX_DEPTH {
        t = T::Arr(vec![t]);
    }
    check(&t);
    let bytes = doc(&T::Arr(vec![t]));
    let err = jsonb_to_text(&bytes).expect_err("101 levels");
    assert!(err.to_string().contains("deeper than 100"), "{err}");
}

#[test]
fn overlapping_values_cannot_explode() {
    // 40 nested arrays whose two elements both point at the same child:
    // 2^40 values if followed blindly.
    let levels = 40;
    let mut bytes = vec![SMALL_ARRAY];
    for level in 0..levels {
        let size = (levels - level) * 10 + 4;
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(size as u16).to_le_bytes());
        bytes.extend_from_slice(&[SMALL_ARRAY, 10, 0, SMALL_ARRAY, 10, 0]);
    }
    bytes.extend_from_slice(&[0, 0, 4, 0]);
    let err = jsonb_to_text(&bytes).expect_err("shared offsets");
    assert!(err.to_string().contains("overlap"), "{err}");
}

#[test]
fn malformed_containers_name_the_offset() {
    for (bytes, offset, needle) in [
        (hex("00 0100"), 3, "container size"),
        (hex("00 01"), 1, "element count"),
        (hex("00 0100 2000 0700 0100 04 0000"), 3, "exceeds"),
        (hex("00 0100 0900 0700 0100 04 0000"), 1, "11-byte header"),
        (hex("00 0500 0800 00 00 00 00"), 1, "header"),
        (hex("00 0100 0b00 0000 0100 04 0000 61"), 5, "points into"),
        (hex("00 0100 0c00 0b00 0200 04 0000 61"), 12, "key needs"),
        (
            hex("00 0100 0c00 0b00 0100 0c 0000 61 00"),
            10,
            "value offset 0",
        ),
        (
            hex("00 0100 0c00 0b00 0100 0c 0d00 61 00"),
            10,
            "value offset 13",
        ),
        (hex("02 0100 0700 0e 0700"), 5, "unknown value type 0x0e"),
        (hex("02 0100 0700 04 0700"), 6, "unknown literal"),
        (hex("0c 02 61 ff"), 3, "UTF-8"),
        (
            hex("00 0100 0c00 0b00 0100 04 0000 ff"),
            12,
            "key is not valid UTF-8",
        ),
        (hex("ee"), 0, "unknown value type 0xee"),
        (hex("05 01"), 1, "int16 needs 2 bytes"),
    ] {
        match jsonb_to_text(&bytes) {
            Err(JsonError::Malformed {
                offset: got,
                reason,
            }) => {
                assert_eq!(got, offset, "{reason}");
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            }
            other => panic!("{bytes:02x?}: {other:?}"),
        }
    }
}

// -- property-style round trips --------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn gen_string(rng: &mut Rng) -> String {
    const POOL: [char; 20] = [
        'a', 'Z', '0', ' ', '"', '\\', '\n', '\t', '\r', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€',
        '🍔', '/', '\u{2028}', 'x', 'y', '.',
    ];
    let len = match rng.below(10) {
        0 => [127, 128, 129, 16383, 16384][rng.below(5)],
        1..=3 => rng.below(300),
        _ => rng.below(8),
    };
    (0..len).map(|_| POOL[rng.below(POOL.len())]).collect()
}

fn gen_scalar(rng: &mut Rng) -> T {
    match rng.below(16) {
        0 => T::Null,
        1 => T::True,
        2 => T::False,
        3 => T::I16(rng.next() as i16),
        4 => T::U16(rng.next() as u16),
        5 => T::I32(rng.next() as i32),
        6 => T::U32(rng.next() as u32),
        7 => T::I64(rng.next() as i64),
        8 => T::U64(rng.next()),
        9 => loop {
            let d = f64::from_bits(rng.next());
            if d.is_finite() {
                break T::F64(d);
            }
        },
        10 => T::F64(
            [
                0.0,
                -0.0,
                1.0,
                1e15,
                1e16,
                1e-15,
                1e-16,
                0.1,
                5e-324,
                f64::MAX,
            ][rng.below(10)],
        ),
        11 => {
            let us = rng.below(1_000_000) as i64;
            let dt = pack_datetime(
                1000 + rng.below(9000) as i64,
                1 + rng.below(12) as i64,
                1 + rng.below(28) as i64,
                13,
                5,
                59,
                us,
            );
            let want = format!("\"{}\"", {
                let v = i64::from_le_bytes(dt.clone().try_into().expect("8 bytes"));
                let int = v >> 24;
                let ymd = int >> 17;
                format!(
                    "{:04}-{:02}-{:02} 13:05:59.{us:06}",
                    (ymd >> 5) / 13,
                    (ymd >> 5) % 13,
                    ymd & 31
                )
            });
            T::Opaque(FIELD_DATETIME, dt, want)
        }
        12 => {
            let intg = rng.below(20);
            let scale = rng.below(12);
            let int_digits: String = (0..intg)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            let frac_digits: String = (0..scale)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            let negative = rng.below(2) == 0;
            let literal = format!(
                "{}{int_digits}.{frac_digits}",
                if negative { "-" } else { "" }
            );
            let int_trim = int_digits.trim_start_matches('0');
            let int_shown = if int_trim.is_empty() { "0" } else { int_trim };
            let zero = int_trim.is_empty() && frac_digits.bytes().all(|b| b == b'0');
            let mut want = format!("{}{int_shown}", if negative && !zero { "-" } else { "" });
            if scale > 0 {
                want.push('.');
                want.push_str(&frac_digits);
            }
            let precision = (intg + scale).max(1);
            decimal(&literal, precision, scale, &want)
        }
        13 => {
            let data: Vec<u8> = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            T::Opaque(15, data, format!("\"base64:type15:{}\"", lines.join("\\n")))
        }
        _ => T::Str(gen_string(rng)),
    }
}

fn gen(rng: &mut Rng, depth: usize) -> T {
    if depth >= 5 || rng.below(3) == 0 {
        return gen_scalar(rng);
    }
    let n = rng.below(7);
    if rng.below(2) == 0 {
        T::Arr((0..n).map(|_| gen(rng, depth + 1)).collect())
    } else {
        T::Obj(
            (0..n)
                .map(|_| (gen_string(rng), gen(rng, depth + 1)))
                .collect(),
        )
    }
}

#[test]
fn random_documents_round_trip() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..300 {
        let t = gen(&mut rng, 0);
        check(&t);
    }
}

#[test]
fn every_truncation_errors_and_mutations_never_panic() {
    let mut rng = Rng(0x0dd_ba11);
    let mut docs: Vec<Vec<u8>> = (0..60)
        .map(|_| doc_with(&gen(&mut rng, 0), rng.below(2) == 0))
        .collect();
    docs.push(doc(&obj(&[
        ("a", T::I16(1)),
        ("d", T::F64(1.5)),
        ("arr", T::Arr(vec![s("x"), T::True, T::Null])),
        ("big", T::U64(9223372036854775807)),
    ])));
    for bytes in &docs {
        // Every cut of small documents; a sample of cuts of big ones.
        let cuts: Vec<usize> = if bytes.len() <= 4096 {
            (1..bytes.len()).collect()
        } else {
            (0..512)
                .map(|_| 1 + rng.below(bytes.len() - 1))
                .chain([1, bytes.len() - 1])
                .collect()
        };
        for cut in cuts {
            assert!(
                jsonb_to_text(&bytes[..cut]).is_err(),
                "prefix {cut} of {bytes:02x?}"
            );
            assert!(apply_json_diff(&bytes[..cut], &[]).is_err());
        }
        for _ in 0..if bytes.len() <= 4096 { 200 } else { 10 } {
            let mut mutated = bytes.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(mutated.len());
                mutated[at] = rng.next() as u8;
            }
            if let Ok(out) = jsonb_to_text(&mutated) {
                assert_valid_json(&out);
            }
            let _ = apply_json_diff(&mutated, &[]);
        }
    }
    for _ in 0..2000 {
        let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        if let Ok(out) = jsonb_to_text(&garbage) {
            assert_valid_json(&out);
        }
        let _ = apply_json_diff(&garbage, &garbage);
    }
}

// -- real server bytes --------------------------------------------------------

#[test]
fn mysql_9_json_opaque_fixture() {
    // WRITE_ROWS values of json-opaque.binlog (MySQL 9.0.1).
    for (bytes, want) in [
        (
            "0001000f000b0001000f0c00610f0155",
            r#"{"a": "base64:type15:VQ=="}"#,
        ),
        (
            "00010016000b0001000f0c00620a080000000000e48b19",
            r#"{"b": "2012-03-18"}"#,
        ),
        (
            "00010016000b0001000f0c00630c08000000adb7e48b19",
            r#"{"c": "2012-03-18 11:30:45.000000"}"#,
        ),
        (
            "00010016000b0001000f0c00630b08f1fb09ee77050000",
            r#"{"c": "87:31:46.654321"}"#,
        ),
        (
            "00010014000b0001000f0c0064f6060603807b01c8",
            r#"{"d": 123.456}"#,
        ),
        (
            "00010015000b0001000f0c0065f6070b028000000900",
            r#"{"e": 9.00}"#,
        ),
        (
            "0001001c000b000100020c006504001000050000050100040100040200",
            r#"{"e": [0, 1, true, false]}"#,
        ),
        ("0001000c000b00010004000065", r#"{"e": null}"#),
    ] {
        assert_eq!(text(&hex(bytes)), want);
        assert_eq!(apply_json_diff(&hex(bytes), &[]).as_deref(), Ok(want));
    }
}

const JOE_AGE_25: &str = "0003003300190003001c000400200004000519000c24000c2f00616765646174616e616d650a78787878787878787878034a6f65";

#[test]
fn mysql_8_partial_update_fixture() {
    // json.binlog.000001 (MySQL 8.0.22): the UPDATE_ROWS after image of
    // row 1, then the PARTIAL_UPDATE_ROWS diff `json_col = JSON_SET(json_col, '$.age', 26)`.
    let before = hex(JOE_AGE_25);
    assert_eq!(
        text(&before),
        r#"{"age": 25, "data": "xxxxxxxxxx", "name": "Joe"}"#
    );
    let diff = hex("0005242e61676503051a00");
    assert_eq!(
        apply_json_diff(&before, &diff).as_deref(),
        Ok(r#"{"age": 26, "data": "xxxxxxxxxx", "name": "Joe"}"#)
    );
}

#[test]
fn f24_sparse_documents_after_in_place_remove() {
    // OBC JsonPartialUpdateParseTest: the same JSON_REMOVE as MySQL 5.7
    // and 8.0 write it; 8.0 leaves the removed key and value as holes.
    let v57 = hex("000600e4012e002800560028007e002800a6002800ce002800f6002800001e010035010c4c010085010c9c0100cd01316633613265613562633166363032353864663230353231626565396163363336646636396133613466346439396134333866333334643764626638336131383136303135623336316238343862336239303231313632323931626537326635613830323534383066343462663434643564383164303763396230656431313533326566656136383866646631326232386631343262396562303861383063356536356164303736326332353962303562343836366637323439656162656361626164626535373766663263303765646361613365393837633233666235636334666538363062623532626563663030010017000b0008000c130063757272656e637903555344010017000b0008000c130063757272656e63790355534438746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f335f77696c6c5f62655f72656d6f766564010017000b0008000c130063757272656e63790355534430746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f315f75706461746564010017000b0008000c130063757272656e637903555344");
    let v80 = hex("0006003c025d00280085002800ad002800d5002800fd00280025012800007601008d010ca40100dd010cf401002502010cf4010025023137666339383839343734303238303633393930393134303031663638353466366238623537383431663361326561356263316636303235386466323035323162656539616336333664663639613361346634643939613433386633333464376462663833613138313630313562333631623834386233623930323131363232393162653732663561383032353438306634346266343464356438316430376339623065643131353332656665613638386664663132623238663134326239656230386138306335653635616430373632633235396230356234383636663732343965616265636162616462653537376666326330376564636161336539383763323366623563633466653836306262353262656366303028746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f32010017000b0008000c130063757272656e637903555344010017000b0008000c130063757272656e63790355534438746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f335f77696c6c5f62655f72656d6f766564010017000b0008000c130063757272656e63790355534430746573745f6669656c645f666f725f72656d6f76655f6669656c64735f6265686176696f75725f315f75706461746564010017000b0008000c130063757272656e637903555344");
    let usd = r#"{"currency": "USD"}"#;
    let want = format!(
        "{{\"1f3a2ea5bc1f60258df20521bee9ac636df69a3a\": {usd}, \
         \"4f4d99a438f334d7dbf83a1816015b361b848b3b\": {usd}, \
         \"9021162291be72f5a8025480f44bf44d5d81d07c\": \"test_field_for_remove_fields_behaviour_3_will_be_removed\", \
         \"9b0ed11532efea688fdf12b28f142b9eb08a80c5\": {usd}, \
         \"e65ad0762c259b05b4866f7249eabecabadbe577\": \"test_field_for_remove_fields_behaviour_1_updated\", \
         \"ff2c07edcaa3e987c23fb5cc4fe860bb52becf00\": {usd}}}"
    );
    assert_eq!(text(&v57), want);
    assert_eq!(text(&v80), want);
    assert!(!text(&v80).contains("17fc9889474028063990914001f6854f6b8b5784"));
    assert_eq!(apply_json_diff(&v80, &[]).as_deref(), Ok(want.as_str()));
}

// -- partial updates ----------------------------------------------------------

fn lenenc(n: usize) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => {
            let mut v = vec![252];
            v.extend_from_slice(&(n as u16).to_le_bytes());
            v
        }
        0x1_0000..=0xff_ffff => {
            let mut v = vec![253];
            v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            v
        }
        _ => {
            let mut v = vec![254];
            v.extend_from_slice(&(n as u64).to_le_bytes());
            v
        }
    }
}

fn diff_entry(op: u8, path: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = vec![op];
    out.extend(lenenc(path.len()));
    out.extend_from_slice(path.as_bytes());
    if let Some(value) = value {
        out.extend(lenenc(value.len()));
        out.extend_from_slice(value);
    }
    out
}

fn apply(before: &T, diffs: &[Vec<u8>]) -> Result<String, JsonError> {
    let out = apply_json_diff(&doc(before), &diffs.concat());
    if let Ok(text) = &out {
        assert_valid_json(text);
    }
    out
}

fn f22_row() -> T {
    obj(&[
        ("a", s("aaaaaaaaaaaaa")),
        ("c", s("ccccccccccccccc")),
        ("ab", T::Arr(vec![s("abababababababa"), s("babababababab")])),
    ])
}

#[test]
fn f22_replace_with_a_json_string() {
    let value = doc(&s("[\"ab_updatedccc\"]"));
    assert_eq!(
        apply(&f22_row(), &[diff_entry(0, "$.ab", Some(&value))]).as_deref(),
        Ok(r#"{"a": "aaaaaaaaaaaaa", "c": "ccccccccccccccc", "ab": "[\"ab_updatedccc\"]"}"#)
    );
}

#[test]
fn f23_remove_and_replace_plus_remove() {
    assert_eq!(
        apply(&f22_row(), &[diff_entry(2, "$.ab", None)]).as_deref(),
        Ok(r#"{"a": "aaaaaaaaaaaaa", "c": "ccccccccccccccc"}"#)
    );
    let value = doc(&T::Arr(vec![s("ab_ddd")]));
    assert_eq!(
        apply(
            &f22_row(),
            &[
                diff_entry(0, "$.ab", Some(&value)),
                diff_entry(2, "$.c", None)
            ]
        )
        .as_deref(),
        Ok(r#"{"a": "aaaaaaaaaaaaa", "ab": ["ab_ddd"]}"#)
    );
}

fn f24_row() -> T {
    obj(&[
        ("age", T::I16(22)),
        (
            "addr",
            obj(&[
                ("code", T::I16(100)),
                ("detail", obj(&[("ab", s("970785C8-C299"))])),
            ]),
        ),
        ("name", s("Alice")),
    ])
}

#[test]
fn f24_set_replace_remove_nested() {
    let value = doc(&s("xyz"));
    assert_eq!(
        apply(
            &f24_row(),
            &[diff_entry(0, "$.addr.detail.ab", Some(&value))]
        )
        .as_deref(),
        Ok(r#"{"age": 22, "addr": {"code": 100, "detail": {"ab": "xyz"}}, "name": "Alice"}"#)
    );
    assert_eq!(
        apply(&f24_row(), &[diff_entry(2, "$.addr.detail.ab", None)]).as_deref(),
        Ok(r#"{"age": 22, "addr": {"code": 100, "detail": {}}, "name": "Alice"}"#)
    );
    let list = T::Arr(vec![s("foo"), s("bar"), s("baz")]);
    assert_eq!(
        apply(&list, &[diff_entry(2, "$[1]", None)]).as_deref(),
        Ok(r#"["foo", "baz"]"#)
    );
    assert_eq!(
        apply(&list, &[diff_entry(2, "$[last]", None)]).as_deref(),
        Ok(r#"["foo", "bar"]"#)
    );
    assert_eq!(
        apply(&list, &[diff_entry(2, "$[last-2]", None)]).as_deref(),
        Ok(r#"["bar", "baz"]"#)
    );
}

#[test]
fn insert_follows_mysql_semantics() {
    let one = doc(&T::I16(1));
    // New members go to their sorted (length, bytes) position.
    for (path, want) in [
        ("$.b", r#"{"a": 0, "b": 1, "zz": 0, "aaa": 0}"#),
        ("$.zzz", r#"{"a": 0, "zz": 0, "aaa": 0, "zzz": 1}"#),
        ("$.\"\"", r#"{"": 1, "a": 0, "zz": 0, "aaa": 0}"#),
        ("$.ab", r#"{"a": 0, "ab": 1, "zz": 0, "aaa": 0}"#),
    ] {
        let before = obj(&[("a", T::I16(0)), ("zz", T::I16(0)), ("aaa", T::I16(0))]);
        assert_eq!(
            apply(&before, &[diff_entry(1, path, Some(&one))]).as_deref(),
            Ok(want),
            "{path}"
        );
    }
    // Arrays: before an index, past the end appends, `last` counts from the end.
    let list = T::Arr(vec![s("x"), s("y")]);
    for (path, want) in [
        ("$[0]", r#"[1, "x", "y"]"#),
        ("$[1]", r#"["x", 1, "y"]"#),
        ("$[2]", r#"["x", "y", 1]"#),
        ("$[99]", r#"["x", "y", 1]"#),
        ("$[last]", r#"["x", 1, "y"]"#),
        ("$[last-5]", r#"[1, "x", "y"]"#),
    ] {
        assert_eq!(
            apply(&list, &[diff_entry(1, path, Some(&one))]).as_deref(),
            Ok(want),
            "{path}"
        );
    }
    // Several diffs apply in order, each on the previous result.
    let nested = doc(&obj(&[("n", T::Arr(vec![]))]));
    assert_eq!(
        apply(
            &obj(&[("a", T::I16(0))]),
            &[
                diff_entry(1, "$.b", Some(&nested)),
                diff_entry(1, "$.b.n[0]", Some(&one)),
                diff_entry(0, "$.a", Some(&doc(&T::F64(2.0)))),
                diff_entry(1, "$.b.n[5]", Some(&doc(&T::Null))),
            ]
        )
        .as_deref(),
        Ok(r#"{"a": 2.0, "b": {"n": [1, null]}}"#)
    );
}

#[test]
fn diffs_keep_exact_values() {
    let before = obj(&[
        ("d", decimal("1.50", 5, 2, "1.50")),
        ("u", T::U64(u64::MAX)),
    ]);
    let value = doc(&T::Opaque(
        FIELD_DATE,
        pack_datetime(2012, 3, 18, 0, 0, 0, 0),
        String::new(),
    ));
    assert_eq!(
        apply(&before, &[diff_entry(1, "$.t", Some(&value))]).as_deref(),
        Ok(r#"{"d": 1.50, "t": "2012-03-18", "u": 18446744073709551615}"#)
    );
}

#[test]
fn paths_parse_like_mysql() {
    let member = |s: &str| Leg::Member(s.to_owned());
    let cell = |index: u32, from_end: bool| Leg::Cell { index, from_end };
    // (path, legs, how MySQL's Json_path::to_string writes it back)
    for (path, legs, canonical) in [
        ("$", vec![], "$"),
        (" $ ", vec![], "$"),
        (
            "$.a[1].\"b c\"",
            vec![member("a"), cell(1, false), member("b c")],
            "$.a[1].\"b c\"",
        ),
        (
            "$ . a [ 1 ] . \"b c\"",
            vec![member("a"), cell(1, false), member("b c")],
            "$.a[1].\"b c\"",
        ),
        (
            "$.\"a\\\"b\\\\c\\u00e9\\ud83c\\udf54\"",
            vec![member("a\"b\\cé🍔")],
            "$.\"a\\\"b\\\\cé🍔\"",
        ),
        ("$.\"\"", vec![member("")], "$.\"\""),
        ("$.a_1$", vec![member("a_1$")], "$.a_1$"),
        ("$.\"1a\"", vec![member("1a")], "$.\"1a\""),
        ("$.é_1", vec![member("é_1")], "$.\"é_1\""),
        ("$[last]", vec![cell(0, true)], "$[last]"),
        ("$[last-3]", vec![cell(3, true)], "$[last-3]"),
        ("$[ last - 3 ]", vec![cell(3, true)], "$[last-3]"),
        (
            "$[4294967295]",
            vec![cell(u32::MAX, false)],
            "$[4294967295]",
        ),
    ] {
        assert_eq!(parse_path(path), Ok(legs.clone()), "{path}");
        assert_eq!(path_text(&legs), canonical);
        assert_eq!(parse_path(canonical), Ok(legs), "{canonical}");
    }
    for (path, at) in [
        ("", 0),
        ("a", 0),
        ("$.", 2),
        ("$.*", 2),
        ("$[*]", 2),
        ("$**.a", 1),
        ("$[1 to 2]", 4),
        ("$[4294967296]", 2),
        ("$[-1]", 2),
        ("$[1", 3),
        ("$.\"abc", 2),
        ("$.\"a\\x\"", 4),
        ("$.\"\\ud800\"", 3),
        ("$a", 1),
    ] {
        match parse_path(path) {
            Err((got, _)) => assert_eq!(got, at, "{path}"),
            Ok(legs) => panic!("{path} parsed as {legs:?}"),
        }
    }
}

#[test]
fn inapplicable_diffs_name_the_path() {
    let one = doc(&T::I16(1));
    for (diffs, index, path, needle) in [
        (
            vec![diff_entry(0, "$.addr.nope", Some(&one))],
            0,
            "$.addr.nope",
            "$.addr.nope does not exist",
        ),
        (
            vec![diff_entry(0, "$.x.y", Some(&one))],
            0,
            "$.x.y",
            "$.x does not exist",
        ),
        (
            vec![diff_entry(2, "$.addr.code[0]", None)],
            0,
            "$.addr.code[0]",
            "$.addr.code is a scalar",
        ),
        (
            vec![diff_entry(1, "$.age", Some(&one))],
            0,
            "$.age",
            "already exists",
        ),
        (
            vec![diff_entry(1, "$[0]", Some(&one))],
            0,
            "$[0]",
            "is an object",
        ),
        (
            vec![diff_entry(2, "$.nope", None)],
            0,
            "$.nope",
            "does not exist",
        ),
        (vec![diff_entry(0, "$", Some(&one))], 0, "$", "root"),
        (
            vec![diff_entry(2, "$.name", None), diff_entry(2, "$.name", None)],
            1,
            "$.name",
            "does not exist",
        ),
    ] {
        match apply(&f24_row(), &diffs) {
            Err(JsonError::DiffNotApplicable {
                index: got,
                path: got_path,
                reason,
                ..
            }) => {
                assert_eq!((got, got_path.as_str()), (index, path));
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    let list = T::Arr(vec![s("x")]);
    for path in ["$[1]", "$[last-1]"] {
        assert!(matches!(
            apply(&list, &[diff_entry(2, path, None)]),
            Err(JsonError::DiffNotApplicable { .. })
        ));
    }
    // Nesting a value so that the result passes 100 levels is refused.
    let mut deep = T::I16(1);
    for _ in 0..MAX_DEPTH {
        deep = T::Arr(vec![deep]);
    }
    let err =
        apply(&f24_row(), &[diff_entry(0, "$.age", Some(&doc(&deep)))]).expect_err("too deep");
    assert!(err.to_string().contains("101 levels"), "{err}");
}

#[test]
fn malformed_diffs_name_the_offset() {
    let value = doc(&T::I16(1));
    let good = diff_entry(0, "$.age", Some(&value));
    for (diff, offset, needle) in [
        (hex("03 01 24"), 0, "unknown operation 3"),
        (hex("00 fb"), 1, "invalid prefix 0xfb"),
        (hex("00 05 242e6167"), 2, "path of 5 bytes"),
        (hex("02 02 2461"), 3, "invalid path"),
        (hex("02 02 24ff"), 3, "UTF-8"),
        (hex("00 01 24 00"), 4, "empty value"),
        (hex("00 05 242e616765 03 0501"), 8, "value of 3 bytes"),
        (hex("00 05 242e616765 02 0501"), 9, "int16 needs 2 bytes"),
        (hex("00 05 242e616765 02 0e00"), 8, "unknown value type"),
        (hex("00 fc 01"), 1, "path length is truncated"),
    ] {
        match apply(&f24_row(), &[diff]) {
            Err(JsonError::MalformedDiff {
                offset: got,
                reason,
            }) => {
                assert_eq!(got, offset, "{reason}");
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            }
            other => panic!("{needle}: {other:?}"),
        }
    }
    // Every truncation of a valid vector (after its first diff) is refused.
    let vector = [
        good.clone(),
        diff_entry(2, "$.name", None),
        diff_entry(1, "$.z", Some(&value)),
    ]
    .concat();
    assert!(apply(&f24_row(), std::slice::from_ref(&vector)).is_ok());
    for cut in 1..vector.len() {
        if cut == good.len() || cut == good.len() + diff_entry(2, "$.name", None).len() {
            continue; // a whole number of diffs
        }
        assert!(
            apply(&f24_row(), &[vector[..cut].to_vec()]).is_err(),
            "cut {cut}"
        );
    }
    // Long paths use the multi-byte length prefixes.
    let long_key = "k".repeat(300);
    let before = T::Obj(vec![(long_key.clone(), T::I16(0))]);
    assert_eq!(
        apply(
            &before,
            &[diff_entry(0, &format!("$.{long_key}"), Some(&value))]
        ),
        Ok(format!("{{\"{long_key}\": 1}}"))
    );
}

#[test]
fn random_diffs_against_a_reference_model() {
    // Build random documents, apply random valid REPLACE/INSERT/REMOVE
    // diffs both through the binary diff vector and on the test model,
    // and compare the rendered results.
    fn legs_of(t: &T, rng: &mut Rng, out: &mut Vec<Leg>) {
        match t {
            T::Arr(items) if !items.is_empty() && rng.below(3) > 0 => {
                let i = rng.below(items.len());
                out.push(Leg::Cell {
                    index: i as u32,
                    from_end: false,
                });
                legs_of(&items[i], rng, out);
            }
            T::Obj(members) if !members.is_empty() && rng.below(3) > 0 => {
                let i = rng.below(members.len());
                out.push(Leg::Member(members[i].0.clone()));
                legs_of(&members[i].1, rng, out);
            }
            _ => {}
        }
    }
    fn at<'t>(t: &'t mut T, legs: &[Leg]) -> &'t mut T {
        legs.iter().fold(t, |t, leg| match (t, leg) {
            (T::Arr(items), Leg::Cell { index, .. }) => &mut items[*index as usize],
            (T::Obj(members), Leg::Member(name)) => {
                &mut members
                    .iter_mut()
                    .find(|(k, _)| k == name)
                    .expect("member")
                    .1
            }
            _ => unreachable!(),
        })
    }
    let mut rng = Rng(0xd1ff);
    let mut applied = 0;
    for _ in 0..500 {
        // Unique member names per object keep the model unambiguous.
        let mut model = gen(&mut rng, 0);
        fn dedup(t: &mut T) {
            match t {
                T::Arr(items) => items.iter_mut().for_each(dedup),
                T::Obj(members) => {
                    let mut seen = std::collections::HashSet::new();
                    members.retain(|(k, _)| seen.insert(k.clone()));
                    members.iter_mut().for_each(|(_, v)| dedup(v));
                }
                _ => {}
            }
        }
        dedup(&mut model);
        let before = doc(&model);
        let mut vector = Vec::new();
        for _ in 0..rng.below(4) {
            let mut legs = Vec::new();
            legs_of(&model, &mut rng, &mut legs);
            let value = gen(&mut rng, 3);
            let Some((last, parents)) = legs.split_last() else {
                continue;
            };
            match rng.below(3) {
                0 => {
                    *at(&mut model, &legs) = value.clone();
                    vector.extend(diff_entry(0, &path_text(&legs), Some(&doc(&value))));
                }
                1 => {
                    let parent = at(&mut model, parents);
                    match (parent, last) {
                        (T::Arr(items), Leg::Cell { index, .. }) => {
                            items.remove(*index as usize);
                        }
                        (T::Obj(members), Leg::Member(name)) => members.retain(|(k, _)| k != name),
                        _ => unreachable!(),
                    }
                    vector.extend(diff_entry(2, &path_text(&legs), None));
                }
                _ => {
                    let parent = at(&mut model, parents);
                    let leg = match parent {
                        T::Arr(items) => {
                            let i = rng.below(items.len() + 2);
                            items.insert(i.min(items.len()), value.clone());
                            Leg::Cell {
                                index: i as u32,
                                from_end: false,
                            }
                        }
                        T::Obj(members) => {
                            let name = format!("new{}", rng.below(1000));
                            if members.iter().any(|(k, _)| *k == name) {
                                continue;
                            }
                            let i = members
                                .iter()
                                .position(|(k, _)| key_order(k, &name) == Ordering::Greater)
                                .unwrap_or(members.len());
                            members.insert(i, (name.clone(), value.clone()));
                            Leg::Member(name)
                        }
                        _ => unreachable!(),
                    };
                    let mut path = parents.to_vec();
                    path.push(leg);
                    vector.extend(diff_entry(1, &path_text(&path), Some(&doc(&value))));
                }
            }
            applied += 1;
        }
        assert_eq!(apply_json_diff(&before, &vector), Ok(expected(&model)));
    }
    assert!(applied > 250, "only {applied} diffs exercised");
}
