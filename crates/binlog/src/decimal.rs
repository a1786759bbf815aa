//! MySQL's binary DECIMAL (NEWDECIMAL) format to exact decimal text.
//!
//! Layout (`strings/decimal.c`, `bin2decimal`): the integer part has
//! `precision - scale` digits and the fraction `scale` digits. Each part is
//! cut into groups of 9 digits stored as 4-byte big-endian integers; the
//! leftover digits (the *leading* group of the integer part, the *trailing*
//! group of the fraction) take `DIG2BYTES[n]` bytes. The sign is the top bit
//! of the first byte, flipped (set = positive); a negative number has every
//! byte inverted as well, so the encoding sorts bytewise.
//!
//! Invariants: the text is exact, has exactly `scale` fraction digits,
//! no leading zeros (but at least one integer digit), and no sign for zero
//! (a stored "negative zero" renders as `0`/`0.00`). A group whose value
//! does not fit its digit count is corrupt data and an error, as in the
//! server.

/// Bytes needed to store 0..=9 leftover digits.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const DIGITS_PER_GROUP: usize = 9;
const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// The largest precision MySQL and MariaDB accept (`DECIMAL(65, s)`).
pub const MAX_PRECISION: u8 = 65;
/// The largest scale (MySQL 30, MariaDB 38).
pub const MAX_SCALE: u8 = 38;

/// Why a binary decimal could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("invalid DECIMAL({precision},{scale}) definition")]
    BadDefinition { precision: u8, scale: u8 },
    #[error("DECIMAL needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("corrupt DECIMAL: a digit group is out of range")]
    BadDigits,
}

/// Byte length of a DECIMAL(precision, scale) value, or an error for an
/// impossible definition.
pub fn binary_size(precision: u8, scale: u8) -> Result<usize, DecimalError> {
    if precision == 0 || precision > MAX_PRECISION || scale > precision || scale > MAX_SCALE {
        return Err(DecimalError::BadDefinition { precision, scale });
    }
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    Ok((intg / DIGITS_PER_GROUP) * 4
        + DIG2BYTES[intg % DIGITS_PER_GROUP]
        + (frac / DIGITS_PER_GROUP) * 4
        + DIG2BYTES[frac % DIGITS_PER_GROUP])
}

/// Decodes one DECIMAL value from the front of `bytes`, appending its text
/// to `out`; returns the number of bytes consumed. On error `out` is left
/// as it was.
pub fn decode_into(
    bytes: &[u8],
    precision: u8,
    scale: u8,
    out: &mut String,
) -> Result<usize, DecimalError> {
    let size = binary_size(precision, scale)?;
    let Some(bin) = bytes.get(..size) else {
        return Err(DecimalError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    };
    let negative = bin[0] & 0x80 == 0;
    let mask: u8 = if negative { 0xFF } else { 0 };
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);

    let start_len = out.len();
    out.reserve(usize::from(precision) + 2);
    if negative {
        out.push('-');
    }
    let digits_start = out.len();

    let mut pos = 0usize;
    // Reads `n` bytes as a big-endian group, undoing the sign flip and the
    // negative inversion.
    let mut group = |n: usize, digits: usize| -> Result<u32, DecimalError> {
        let mut v: u32 = 0;
        for &b in &bin[pos..pos + n] {
            let b = if pos == 0 { b ^ 0x80 } else { b } ^ mask;
            v = (v << 8) | u32::from(b);
            pos += 1;
        }
        if v >= POW10[digits] {
            return Err(DecimalError::BadDigits);
        }
        Ok(v)
    };

    let mut nonzero = false;
    let mut started = false;
    let lead = intg % DIGITS_PER_GROUP;
    let mut result = Ok(());
    // Integer part: the leading partial group, then whole groups.
    let int_groups = std::iter::once(lead)
        .filter(|&d| d > 0)
        .chain(std::iter::repeat_n(
            DIGITS_PER_GROUP,
            intg / DIGITS_PER_GROUP,
        ));
    for digits in int_groups {
        match group(DIG2BYTES[digits], digits) {
            Ok(v) => {
                if v != 0 {
                    nonzero = true;
                }
                if started {
                    push_padded(out, v, digits);
                } else if v != 0 {
                    push_unpadded(out, v);
                    started = true;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        if !started {
            out.push('0');
        }
        if frac > 0 {
            out.push('.');
            let trail = frac % DIGITS_PER_GROUP;
            let frac_groups = std::iter::repeat_n(DIGITS_PER_GROUP, frac / DIGITS_PER_GROUP)
                .chain(std::iter::once(trail).filter(|&d| d > 0));
            for digits in frac_groups {
                match group(DIG2BYTES[digits], digits) {
                    Ok(v) => {
                        if v != 0 {
                            nonzero = true;
                        }
                        push_padded(out, v, digits);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
    }
    if let Err(e) = result {
        out.truncate(start_len);
        return Err(e);
    }
    if negative && !nonzero {
        // Negative zero is zero.
        out.remove(digits_start - 1);
    }
    Ok(size)
}

/// Decodes one DECIMAL value to its text (see [`decode_into`]).
pub fn decode(bytes: &[u8], precision: u8, scale: u8) -> Result<(String, usize), DecimalError> {
    let mut s = String::new();
    let n = decode_into(bytes, precision, scale, &mut s)?;
    Ok((s, n))
}

/// Appends `v` as exactly `digits` decimal digits (zero-padded).
fn push_padded(out: &mut String, mut v: u32, digits: usize) {
    let mut buf = [b'0'; DIGITS_PER_GROUP];
    for slot in buf[..digits].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // The buffer holds ASCII digits only, so this never falls back.
    out.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or_default());
}

/// Appends `v` without leading zeros.
fn push_unpadded(out: &mut String, v: u32) {
    let digits = POW10.iter().position(|&p| p > v).unwrap_or(10).max(1);
    push_padded(out, v, digits.min(DIGITS_PER_GROUP));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test-only encoder: the server's `decimal2bin` for a decimal string
    /// that fits DECIMAL(precision, scale) exactly (no rounding).
    pub(crate) fn encode(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        let intg = usize::from(precision - scale);
        let frac = usize::from(scale);
        assert!(int_part.trim_start_matches('0').len() <= intg, "{text}");
        assert!(frac_part.len() <= frac, "{text}");
        // Left-pad the integer digits and right-pad the fraction digits.
        let int_digits = format!("{int_part:0>intg$}");
        let int_digits = &int_digits[int_digits.len() - intg..];
        let frac_digits = format!("{frac_part:0<frac$}");
        let mut out = Vec::new();
        let put = |out: &mut Vec<u8>, digits: &str| {
            if digits.is_empty() {
                return;
            }
            let v: u32 = digits.parse().unwrap();
            let n = if digits.len() == 9 {
                4
            } else {
                DIG2BYTES[digits.len()]
            };
            out.extend_from_slice(&v.to_be_bytes()[4 - n..]);
        };
        let lead = intg % 9;
        put(&mut out, &int_digits[..lead]);
        for g in int_digits.as_bytes()[lead..].chunks(9) {
            put(&mut out, std::str::from_utf8(g).unwrap());
        }
        for g in frac_digits.as_bytes().chunks(9) {
            put(&mut out, std::str::from_utf8(g).unwrap());
        }
        if negative {
            for b in &mut out {
                *b = !*b;
            }
        }
        out[0] ^= 0x80;
        assert_eq!(out.len(), binary_size(precision, scale).unwrap());
        out
    }

    fn dec(bytes: &[u8], p: u8, s: u8) -> String {
        let (text, n) = decode(bytes, p, s).unwrap();
        assert_eq!(n, bytes.len(), "consumed bytes for DECIMAL({p},{s})");
        text
    }

    #[test]
    fn sizes() {
        assert_eq!(binary_size(4, 2), Ok(2));
        assert_eq!(binary_size(5, 0), Ok(3));
        assert_eq!(binary_size(30, 10), Ok(14));
        assert_eq!(binary_size(30, 25), Ok(15));
        assert_eq!(binary_size(30, 30), Ok(14));
        assert_eq!(binary_size(60, 0), Ok(27));
        assert_eq!(binary_size(40, 16), Ok(19));
        assert_eq!(binary_size(65, 30), Ok(30));
        assert!(binary_size(0, 0).is_err());
        assert!(binary_size(5, 6).is_err());
        assert!(binary_size(66, 0).is_err());
    }

    #[test]
    fn peer_byte_cases() {
        // B8
        assert_eq!(
            dec(
                &[
                    0x7F, 0xFF, 0x43, 0x9E, 0xB1, 0xCA, 0x48, 0x40, 0x78, 0xFF, 0x43, 0x9E, 0xB1,
                    0xF6
                ],
                30,
                10
            ),
            "-12345678901234567.0123456789"
        );
        // B9
        assert_eq!(dec(&[0x75, 0xC8], 4, 2), "-10.55");
        assert_eq!(dec(&[0xE3, 0x63], 4, 2), "99.99");
        assert_eq!(dec(&[0x80, 0x01], 4, 2), "0.01");
        // B10
        assert_eq!(dec(&[0x7F, 0xFF, 0xF4], 5, 0), "-11");
        assert_eq!(dec(&[0x80, 0x30, 0x39], 5, 0), "12345");
        // B12
        assert_eq!(
            dec(
                &[
                    0x80, 0x00, 0x00, 0x00, 0xBC, 0x61, 0x4E, 0x35, 0xB7, 0xBF, 0x87, 0x00, 0x87,
                    0xFD, 0xD9
                ],
                30,
                25
            ),
            "0.0123456789012345678912345"
        );
        // B13: precision == scale, no integer bytes.
        let mut b13 = vec![0x85, 0xF5, 0xE1, 0x00];
        b13.extend_from_slice(&[0; 10]);
        assert_eq!(dec(&b13, 30, 30), "0.100000000000000000000000000000");
        // B14: DECIMAL(60,0) value 1.
        let mut b14 = vec![0x80];
        b14.extend_from_slice(&[0; 25]);
        b14.push(0x01);
        assert_eq!(dec(&b14, 60, 0), "1");
        // B15
        assert_eq!(
            dec(
                &[
                    0x7F, 0xFF, 0x84, 0xE4, 0xCE, 0x6B, 0x05, 0xF2, 0x01, 0xE1, 0xE8, 0xF8, 0xA4,
                    0x32, 0xEA, 0xFF, 0xFE, 0x1D, 0xBF
                ],
                40,
                16
            ),
            "-123456234234234757655.1234567890123456"
        );
    }

    #[test]
    fn peer_value_cases() {
        let cases: &[(&str, u8, u8, &str)] = &[
            ("4.2", 2, 1, "4.2"),                                       // B1
            ("-2.1", 2, 1, "-2.1"),                                     // B2
            ("0", 2, 1, "0.0"),                                         // B2
            ("9000000123.123456", 20, 10, "9000000123.1234560000"),     // B3
            ("9000000123.0000012345", 20, 10, "9000000123.0000012345"), // B4
            ("-42000.123456", 20, 10, "-42000.1234560000"),             // B5
            ("-51.1234", 11, 4, "-51.1234"),                            // B5
            (
                "-51.123456789098765432123456789",
                40,
                30,
                "-51.123456789098765432123456789000",
            ), // B5
            ("10", 23, 0, "10"),                                        // B6
            ("12345678912345678912345", 23, 0, "12345678912345678912345"), // B6
            ("100000", 23, 0, "100000"),                                // B6
            ("-100000", 23, 0, "-100000"),                              // B6
            ("-1234567891234567891234", 23, 0, "-1234567891234567891234"), // B6
            ("0.12345", 5, 5, "0.12345"),                               // B7
            ("-0.12345", 5, 5, "-0.12345"),                             // B7
            ("-9.99999999999999", 15, 14, "-9.99999999999999"),         // B11
            ("0.1", 10, 5, "0.10000"),                                  // B17
        ];
        for &(input, p, s, expected) in cases {
            let bytes = encode(input, p, s);
            assert_eq!(dec(&bytes, p, s), expected, "DECIMAL({p},{s}) {input}");
        }
    }

    #[test]
    fn negative_zero_is_zero() {
        // The bytes of "-0.00": everything inverted, sign bit clear.
        assert_eq!(dec(&[0x7F, 0xFF], 4, 2), "0.00");
        assert_eq!(dec(&[0x7F, 0xFF, 0xFF], 5, 0), "0");
        assert_eq!(dec(&encode("-0", 10, 10), 10, 10), "0.0000000000");
    }

    /// B16 and more: every digit count of 9s, `90.09`-style values, their
    /// negatives and zero round-trip through the server's encoding.
    #[test]
    fn round_trip_matrix() {
        let mut pairs = vec![
            (4, 0),
            (4, 4),
            (10, 0),
            (10, 10),
            (10, 4),
            (18, 9),
            (27, 13),
            (47, 25),
            (65, 30),
            (65, 0),
            (38, 38),
        ];
        for p in 1..=20u8 {
            for s in [0, 1, p / 2, p.saturating_sub(1), p] {
                pairs.push((p, s.min(p)));
            }
        }
        let mut checked = 0;
        for (p, s) in pairs {
            let (p, s): (u8, u8) = (p, s);
            let intg = usize::from(p - s);
            let frac = usize::from(s);
            let mut values = vec!["0".to_string()];
            for i in 0..=intg {
                for f in 0..=frac {
                    if i == 0 && f == 0 {
                        continue;
                    }
                    let int = if i == 0 { "0".into() } else { "9".repeat(i) };
                    values.push(if f == 0 {
                        int.clone()
                    } else {
                        format!("{int}.{}", "9".repeat(f))
                    });
                    // 9, 90.09, 900.009, ...
                    if i > 0 && f > 0 && i == f {
                        let z = "0".repeat(i - 1);
                        values.push(format!("9{z}.{z}9"));
                    }
                    if i > 0 {
                        values.push(format!("1{}", "0".repeat(i - 1)));
                    }
                }
            }
            for v in values {
                for neg in [false, true] {
                    let input = if neg { format!("-{v}") } else { v.clone() };
                    let bytes = encode(&input, p, s);
                    let got = dec(&bytes, p, s);
                    let expected = expected_text(&input, s);
                    assert_eq!(got, expected, "DECIMAL({p},{s}) {input}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 5000, "{checked}");
    }

    /// The expected text: no leading zeros, padded to the scale, no sign on 0.
    fn expected_text(input: &str, scale: u8) -> String {
        let (neg, body) = match input.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, input),
        };
        let (i, f) = body.split_once('.').unwrap_or((body, ""));
        let i = i.trim_start_matches('0');
        let i = if i.is_empty() { "0" } else { i };
        let scale = usize::from(scale);
        let f = format!("{f:0<scale$}");
        let zero = i == "0" && f.bytes().all(|b| b == b'0');
        let mut s = String::new();
        if neg && !zero {
            s.push('-');
        }
        s.push_str(i);
        if scale > 0 {
            s.push('.');
            s.push_str(&f);
        }
        s
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode(&[0x80], 4, 2),
            Err(DecimalError::Truncated {
                needed: 2,
                available: 1
            })
        );
        // A 2-digit group holding 0xFF = 255 > 99.
        assert_eq!(decode(&[0xFF, 0xFF], 4, 2), Err(DecimalError::BadDigits));
        assert_eq!(
            decode(&[0x80], 0, 0),
            Err(DecimalError::BadDefinition {
                precision: 0,
                scale: 0
            })
        );
        let mut s = String::from("keep");
        assert!(decode_into(&[0xFF, 0xFF], 4, 2, &mut s).is_err());
        assert_eq!(s, "keep");
    }
}
