//! MySQL's JSON text (`Json_wrapper::to_string`): the [`Text`] sink, string
//! quoting as `double_quote()` does it, and doubles as `my_gcvt` prints them.
//! See the parent module's "Text form" for each rule.

use std::fmt::Write as _;

use super::{Scalar, Sink};

/// Writes MySQL's JSON text straight from the decoder's events.
#[derive(Default)]
pub(super) struct Text {
    pub(super) out: String,
}

impl Sink for Text {
    fn scalar(&mut self, value: Scalar<'_>) {
        match value {
            Scalar::Null => self.out.push_str("null"),
            Scalar::Bool(true) => self.out.push_str("true"),
            Scalar::Bool(false) => self.out.push_str("false"),
            Scalar::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Scalar::Uint(u) => {
                let _ = write!(self.out, "{u}");
            }
            Scalar::Double(d) => write_double(&mut self.out, d),
            Scalar::Str(s) => write_quoted(&mut self.out, s),
            Scalar::Verbatim(s) => self.out.push_str(s),
        }
    }

    fn begin_object(&mut self, _count: usize) {
        self.out.push('{');
    }

    fn key(&mut self, index: usize, key: &str) {
        if index > 0 {
            self.out.push_str(", ");
        }
        write_quoted(&mut self.out, key);
        self.out.push_str(": ");
    }

    fn end_object(&mut self) {
        self.out.push('}');
    }

    fn begin_array(&mut self, _count: usize) {
        self.out.push('[');
    }

    fn element(&mut self, index: usize) {
        if index > 0 {
            self.out.push_str(", ");
        }
    }

    fn end_array(&mut self) {
        self.out.push(']');
    }
}

/// A JSON string as MySQL's `double_quote()` writes it.
pub(super) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte, hence a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u00{b:02x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A finite double as MySQL prints it in JSON: `my_gcvt(d, DOUBLE, 34)`
/// (shortest round-trip digits; fixed notation for `-14 <= decpt <= 15`, or
/// for `decpt == 16` with 17 digits; otherwise `D.DDDe[-]X`), then `.0` if
/// that printed neither a point nor an exponent.
pub(super) fn write_double(out: &mut String, d: f64) {
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5", "0e0".
    let formatted = format!("{d:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let len = digits.len() as i32;
    let decpt = exponent + 1;
    if negative {
        out.push('-');
    }
    if decpt >= -14 && (decpt <= 15 || len > decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt < len {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - len) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if len > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{exponent}");
    }
}
