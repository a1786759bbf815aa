//! The server's own view of a value in sluice's JSON Lines value encoding.

use std::fmt::Write as _;

use base64::Engine as _;

use super::kind::*;

pub(super) fn b64(b: &[u8]) -> serde_json::Value {
    serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
}

pub(super) fn two(out: &mut String, n: u32) {
    let _ = write!(out, "{n:02}");
}

pub(super) fn push_fsp(out: &mut String, micros: u32, fsp: u32) {
    if fsp > 0 {
        let digits = format!("{micros:06}");
        out.push('.');
        out.push_str(&digits[..fsp as usize]);
    }
}

pub(super) fn expected_value(kind: &Kind, v: &mysql_async::Value) -> serde_json::Value {
    use mysql_async::Value as V;
    use serde_json::Value as J;
    let text = |b: &[u8]| J::String(String::from_utf8_lossy(b).into_owned());
    match (kind, v) {
        (_, V::NULL) => J::Null,
        (Kind::Int { .. } | Kind::Year, V::Int(i)) => J::from(*i),
        (Kind::Int { .. } | Kind::Year, V::UInt(u)) => J::from(*u),
        (Kind::Float, V::Float(f)) => serde_json::from_str(&format!("{f:?}")).unwrap_or(J::Null),
        (Kind::Double, V::Double(d)) => serde_json::from_str(&format!("{d:?}")).unwrap_or(J::Null),
        (Kind::Float, V::Double(d)) => {
            serde_json::from_str(&format!("{:?}", *d as f32)).unwrap_or(J::Null)
        }
        (Kind::Date, V::Date(y, m, d, ..)) => J::String(format!("{y:04}-{m:02}-{d:02}")),
        (Kind::DateTime(fsp) | Kind::Timestamp(fsp), V::Date(y, mo, d, h, mi, s, us)) => {
            let mut out = format!("{y:04}-{mo:02}-{d:02} ");
            two(&mut out, u32::from(*h));
            out.push(':');
            two(&mut out, u32::from(*mi));
            out.push(':');
            two(&mut out, u32::from(*s));
            push_fsp(&mut out, *us, *fsp);
            J::String(out)
        }
        (Kind::Time(fsp), V::Time(neg, days, h, m, s, us)) => {
            let hours = days * 24 + u32::from(*h);
            let zero = hours == 0 && *m == 0 && *s == 0 && *us == 0;
            let mut out = String::new();
            if *neg && !zero {
                out.push('-');
            }
            let _ = write!(out, "{hours:02}:{m:02}:{s:02}");
            push_fsp(&mut out, *us, *fsp);
            J::String(out)
        }
        (Kind::Bit(_), V::Bytes(b)) => {
            J::from(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        }
        // The binlog carries UUID/INET4/INET6 as their binary form in
        // text order (not UUID's in-record form, which swaps the time
        // fields of RFC versions 1–5): what HEX() shows.
        (Kind::Uuid | Kind::Inet4 | Kind::Inet6, V::Bytes(h)) => {
            b64(&unhex(&String::from_utf8_lossy(h)))
        }
        (Kind::Binary(_) | Kind::VarBinary(_) | Kind::Blob | Kind::Geometry, V::Bytes(b)) => b64(b),
        (_, V::Bytes(b)) => text(b),
        (_, other) => J::String(format!("unexpected {other:?}")),
    }
}
