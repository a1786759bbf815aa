//! Value generators: per column type, random values and edge cases as SQL
//! literals (every type family: integers at their limits, exact decimals,
//! fractional temporals, zero dates, charsets, binary, BIT, ENUM/SET, JSON,
//! geometry).

use std::fmt::Write as _;

use crate::sql::sql_str;

use super::rng::Rng;

pub(super) fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

pub(super) fn frac(rng: &mut Rng, fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", digits(rng, fsp as usize))
    }
}

pub(super) fn nines(fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", "9".repeat(fsp as usize))
    }
}

/// Character repertoire of a string column (what its charset can store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cs {
    Ascii,
    /// MariaDB's latin1 is cp1252: € Ÿ œ Š are 0x80.. bytes.
    Latin1,
    Utf8,
}

pub(super) const ASCII_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,;:'\"\\%/\n\t";
pub(super) const LATIN1_CHARS: &[char] = &[
    'é', 'ü', 'ñ', 'ß', 'Ø', 'Æ', '¿', '¡', 'à', 'ç', 'ÿ', '€', 'Ÿ', 'œ', 'Š', '«', '»', '°', '±',
    'µ',
];
pub(super) const UTF8_CHARS: &[char] = &[
    '中', '文', '字', '😀', '🦀', 'Ω', 'ж', 'д', '\u{308}', 'ا', 'ب', '𠜎', '€', 'é', 'ß', 'ñ',
];
/// Characters for generated string keys: no digits, '-' or spaces, so
/// `k{n}-{suffix}` is unique for distinct `n` under any collation.
pub(super) const KEY_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Q', 'é', 'ü', 'ß', '中', '😀', 'Ω',
];
pub(super) const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "café", "naïve", "x", "", "Zeta", "omega",
];
pub(super) const ENUM_LABELS: &[&str] = &["a", "ba", "c", "ü", "x y"];
pub(super) const SET_LABELS: &[&str] = &["a", "b", "c", "ü"];
pub(super) const TAG_LABELS: &[&str] = &["new", "old", "gone"];
pub(super) const FLAG_LABELS: &[&str] = &["x", "y", "z"];
pub(super) const JSON_KEYS: &[&str] = &["a", "b", "name", "ü", "emoji😀", "k 1", "nested", "n"];

pub(super) fn rand_char(rng: &mut Rng, cs: Cs) -> char {
    let ascii = |rng: &mut Rng| char::from(*rng.pick(ASCII_CHARS));
    match cs {
        Cs::Ascii => ascii(rng),
        Cs::Latin1 => {
            if rng.chance(70) {
                ascii(rng)
            } else {
                *rng.pick(LATIN1_CHARS)
            }
        }
        Cs::Utf8 => match rng.below(100) {
            0..=59 => ascii(rng),
            60..=74 => *rng.pick(LATIN1_CHARS),
            _ => *rng.pick(UTF8_CHARS),
        },
    }
}

/// How to generate a column's values (as SQL literals).
#[derive(Debug, Clone)]
pub(super) enum Gen {
    Int {
        min: i128,
        max: i128,
    },
    Dec {
        int_digits: usize,
        frac: usize,
        unsigned: bool,
    },
    Float,
    Double,
    /// FLOAT(M,D), staying one integer digit below M-D (see `edges`).
    FixedFloat {
        int_digits: usize,
        frac: usize,
    },
    Date,
    DateTime(u32),
    Timestamp(u32),
    Time(u32),
    Year,
    /// Up to `max` characters (usually short; `long` characters now and then).
    Str {
        max: usize,
        cs: Cs,
        long: usize,
    },
    Bytes {
        max: usize,
        long: usize,
    },
    Enum(&'static [&'static str]),
    Set(&'static [&'static str]),
    Bit(u32),
    Json,
    Point,
    Geometry,
    /// One of a few words: keyless tables select rows by these.
    Word(&'static [&'static str]),
}

pub(super) fn int_gen(bits: u32, unsigned: bool) -> Gen {
    if unsigned {
        Gen::Int {
            min: 0,
            max: (1i128 << bits) - 1,
        }
    } else {
        Gen::Int {
            min: -(1i128 << (bits - 1)),
            max: (1i128 << (bits - 1)) - 1,
        }
    }
}

pub(super) fn str_gen(max: usize, cs: Cs) -> Gen {
    Gen::Str { max, cs, long: 0 }
}

pub(super) fn long_str(max: usize, cs: Cs, long: usize) -> Gen {
    Gen::Str { max, cs, long }
}

pub(super) fn bytes_gen(max: usize, long: usize) -> Gen {
    Gen::Bytes { max, long }
}

pub(super) fn dec(int_digits: usize, frac: usize) -> Gen {
    Gen::Dec {
        int_digits,
        frac,
        unsigned: false,
    }
}

pub(super) fn udec(int_digits: usize, frac: usize) -> Gen {
    Gen::Dec {
        int_digits,
        frac,
        unsigned: true,
    }
}

impl Gen {
    /// A random non-NULL SQL literal.
    pub(super) fn random(&self, rng: &mut Rng) -> String {
        if rng.chance(4) {
            let edges = self.edges();
            return rng.pick(&edges).clone();
        }
        match self {
            Gen::Int { min, max } => {
                let (min, max) = (*min, *max);
                let v = if rng.chance(50) {
                    rng.range((-1000).max(min), 1000.min(max))
                } else {
                    rng.range(min, max)
                };
                v.to_string()
            }
            Gen::Dec {
                int_digits,
                frac,
                unsigned,
            } => {
                let neg = !unsigned && rng.chance(30);
                let i = if *int_digits == 0 {
                    "0".to_string()
                } else {
                    let n = rng.between(1, *int_digits);
                    digits(rng, n)
                };
                let f = rng.between(0, *frac);
                let f = digits(rng, f);
                let sign = if neg { "-" } else { "" };
                if f.is_empty() {
                    format!("{sign}{i}")
                } else {
                    format!("{sign}{i}.{f}")
                }
            }
            Gen::Float | Gen::Double => {
                let sign = if rng.chance(30) { "-" } else { "" };
                let (mant, exp) = match self {
                    Gen::Float => (6, 30),
                    _ => (15, 300),
                };
                if rng.chance(50) {
                    format!("{sign}{}.{}", rng.below(100_000), digits(rng, 2))
                } else {
                    format!(
                        "{sign}{}.{}e{}",
                        1 + rng.below(9),
                        digits(rng, mant),
                        rng.range(-exp, exp)
                    )
                }
            }
            Gen::FixedFloat { int_digits, frac } => {
                let sign = if rng.chance(30) { "-" } else { "" };
                let n = rng.between(1, int_digits.saturating_sub(1).max(1));
                format!("{sign}{}.{}", digits(rng, n), digits(rng, *frac))
            }
            Gen::Date => sql_str(&random_date(rng)),
            Gen::DateTime(fsp) => {
                let date = match rng.below(20) {
                    0 => return sql_str("0000-00-00 00:00:00"),
                    1 => format!("{:04}-{:02}-00", rng.range(1000, 9999), rng.range(0, 12)),
                    _ => random_date(rng),
                };
                let date = if date == "0000-00-00" {
                    "2000-01-01".to_string()
                } else {
                    date
                };
                sql_str(&format!("{date} {}{}", random_clock(rng), frac(rng, *fsp)))
            }
            Gen::Timestamp(fsp) => sql_str(&format!(
                "{:04}-{:02}-{:02} {}{}",
                rng.range(1971, 2037),
                rng.range(1, 12),
                rng.range(1, 28),
                random_clock(rng),
                frac(rng, *fsp)
            )),
            Gen::Time(fsp) => {
                let sign = if rng.chance(30) { "-" } else { "" };
                sql_str(&format!(
                    "{sign}{:02}:{:02}:{:02}{}",
                    rng.range(0, 838),
                    rng.range(0, 59),
                    rng.range(0, 59),
                    frac(rng, *fsp)
                ))
            }
            Gen::Year => rng.range(1901, 2155).to_string(),
            Gen::Str { max, cs, long } => {
                let n = if rng.chance(5) {
                    0
                } else if *long > 0 && rng.chance(3) {
                    *long
                } else {
                    rng.between(1, (*max).min(24))
                };
                let s: String = (0..n.min(*max)).map(|_| rand_char(rng, *cs)).collect();
                sql_str(&s)
            }
            Gen::Bytes { max, long } => {
                let n = if rng.chance(5) {
                    0
                } else if *long > 0 && rng.chance(3) {
                    *long
                } else {
                    rng.between(1, (*max).min(32))
                };
                let mut s = String::with_capacity(2 * n + 3);
                s.push_str("X'");
                for _ in 0..n.min(*max) {
                    let b = match rng.below(10) {
                        0 | 1 => 0,
                        2 => 0xFF,
                        _ => rng.below(256) as u8,
                    };
                    let _ = write!(s, "{b:02X}");
                }
                s.push('\'');
                s
            }
            Gen::Enum(labels) | Gen::Word(labels) => sql_str(rng.pick::<&str>(labels)),
            Gen::Set(labels) => {
                let chosen: Vec<&str> = labels.iter().copied().filter(|_| rng.chance(50)).collect();
                sql_str(&chosen.join(","))
            }
            Gen::Bit(n) => {
                let v = rng.next_u64();
                let v = if *n == 64 { v } else { v & ((1u64 << n) - 1) };
                format!("b'{v:b}'")
            }
            Gen::Json => sql_str(&json_value(rng, 0, true)),
            Gen::Point => format!("POINT({}, {})", coord(rng), coord(rng)),
            Gen::Geometry => {
                let (x, y) = (rng.range(-170, 170), rng.range(-80, 80));
                let wkt = match rng.below(3) {
                    0 => format!("POINT({} {})", coord(rng), coord(rng)),
                    1 => format!(
                        "LINESTRING({x} {y},{} {},{} {})",
                        coord(rng),
                        coord(rng),
                        coord(rng),
                        coord(rng)
                    ),
                    _ => {
                        let s = rng.range(1, 9);
                        format!(
                            "POLYGON(({x} {y},{} {y},{} {},{x} {},{x} {y}))",
                            x + s,
                            x + s,
                            y + s,
                            y + s
                        )
                    }
                };
                format!("ST_GeomFromText('{wkt}')")
            }
        }
    }

    /// Boundary values (at least one), as SQL literals.
    pub(super) fn edges(&self) -> Vec<String> {
        let s = |v: &str| sql_str(v);
        match self {
            Gen::Int { min, max } => vec![
                min.to_string(),
                max.to_string(),
                0.clamp(*min, *max).to_string(),
            ],
            Gen::Dec {
                int_digits,
                frac,
                unsigned,
            } => {
                let i = if *int_digits == 0 {
                    "0".to_string()
                } else {
                    "9".repeat(*int_digits)
                };
                let max = if *frac == 0 {
                    i
                } else {
                    format!("{i}.{}", "9".repeat(*frac))
                };
                let tiny = if *frac == 0 {
                    "1".to_string()
                } else {
                    format!("0.{}1", "0".repeat(frac - 1))
                };
                let low = if *unsigned {
                    "0".to_string()
                } else {
                    format!("-{max}")
                };
                vec![max, low, tiny]
            }
            Gen::Float => vec!["3.4e38".into(), "-3.4e38".into(), "1.17549e-38".into()],
            Gen::Double => vec![
                "1.7976931348623157e308".into(),
                "-1.7976931348623157e308".into(),
                "2.2250738585072014e-308".into(),
            ],
            Gen::FixedFloat { int_digits, frac } => {
                // One integer digit short of the declared maximum: a FLOAT
                // holds ~7 digits, so 99999.99999 is stored as 100000, which
                // strict mode then refuses to insert into FLOAT(10,5) again.
                let i = "9".repeat(int_digits.saturating_sub(1).max(1));
                let m = format!("{i}.{}", "9".repeat(*frac));
                vec![
                    m.clone(),
                    format!("-{m}"),
                    format!("0.{}1", "0".repeat(frac - 1)),
                ]
            }
            Gen::Date => vec![s("0000-00-00"), s("9999-12-31"), s("1000-01-01")],
            Gen::DateTime(f) => vec![
                s("0000-00-00 00:00:00"),
                s(&format!("9999-12-31 23:59:59{}", nines(*f))),
                s("1000-01-01 00:00:00"),
            ],
            Gen::Timestamp(f) => vec![
                s("0000-00-00 00:00:00"),
                s(&format!("2038-01-19 03:14:07{}", nines(*f))),
                s("1970-01-01 00:00:01"),
            ],
            Gen::Time(f) => {
                let tiny = if *f == 0 {
                    "-00:00:01".to_string()
                } else {
                    format!("-00:00:00.{}1", "0".repeat(*f as usize - 1))
                };
                vec![s("-838:59:59"), s("838:59:59"), s(&tiny)]
            }
            Gen::Year => vec!["0".into(), "2155".into(), "1901".into()],
            Gen::Str { max, cs, .. } => {
                let full = match cs {
                    Cs::Ascii => 'z',
                    Cs::Latin1 => 'ÿ',
                    Cs::Utf8 => '😀',
                };
                let full: String = std::iter::repeat_n(full, (*max).min(200)).collect();
                let tricky = if *cs == Cs::Ascii {
                    "a'b\\c\"d\n\0"
                } else {
                    "a'b\\c\"d\n\0é"
                };
                let tricky: String = tricky.chars().take(*max).collect();
                vec![s(""), s(&full), s(&tricky)]
            }
            Gen::Bytes { max, .. } => {
                let n = (*max).min(64);
                vec![
                    "X''".into(),
                    format!("X'{}'", "00".repeat(n)),
                    format!(
                        "X'{}'",
                        "FF00".repeat(n).chars().take(2 * n).collect::<String>()
                    ),
                ]
            }
            Gen::Enum(l) | Gen::Word(l) => vec![s(l[0]), s(l[l.len() - 1])],
            Gen::Set(l) => vec![s(""), s(&l.join(",")), s(l[0])],
            Gen::Bit(n) => vec![
                "b'0'".into(),
                format!("b'{}'", "1".repeat(*n as usize)),
                "b'1'".into(),
            ],
            Gen::Json => vec![
                s("null"),
                s("[]"),
                s(
                    r#"{"a": [1, 2.5, "x", true, null], "b": {"c": -9223372036854775808, "d": 18446744073709551615}, "ü": "😀 \"q\" \\ \n"}"#,
                ),
            ],
            Gen::Point => vec![
                "POINT(0, 0)".into(),
                "POINT(-180.5, 90.25)".into(),
                "POINT(0.000001, 1000000)".into(),
            ],
            Gen::Geometry => vec![
                "ST_GeomFromText('POINT(1 2)')".into(),
                "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))')".into(),
                "ST_GeomFromText('MULTIPOINT(1 1,2 2)')".into(),
            ],
        }
    }

    /// Few distinct values: keyless tables select rows by such a column.
    pub(super) fn is_small_domain(&self) -> bool {
        match self {
            Gen::Int { min, max } => max - min <= 100,
            Gen::Word(_) | Gen::Enum(_) => true,
            _ => false,
        }
    }
}

pub(super) fn random_date(rng: &mut Rng) -> String {
    match rng.below(25) {
        0 => "0000-00-00".into(),
        1 => format!("{:04}-00-00", rng.range(1000, 9999)),
        2 => format!("{:04}-{:02}-00", rng.range(1000, 9999), rng.range(1, 12)),
        3 => rng
            .pick(&["2024-02-29", "1999-12-31", "1970-01-01"])
            .to_string(),
        _ => format!(
            "{:04}-{:02}-{:02}",
            rng.range(1000, 9999),
            rng.range(1, 12),
            rng.range(1, 28)
        ),
    }
}

pub(super) fn random_clock(rng: &mut Rng) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        rng.range(0, 23),
        rng.range(0, 59),
        rng.range(0, 59)
    )
}

pub(super) fn coord(rng: &mut Rng) -> String {
    let sign = if rng.chance(40) { "-" } else { "" };
    format!("{sign}{}.{}", rng.below(180), digits(rng, 6))
}

pub(super) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn json_value(rng: &mut Rng, depth: u32, top: bool) -> String {
    let kind = if top {
        7
    } else if depth >= 2 {
        rng.below(6)
    } else {
        rng.below(8)
    };
    match kind {
        0 => "null".into(),
        1 => rng.pick(&["true", "false"]).to_string(),
        2 => match rng.below(4) {
            0 => rng
                .pick(&[
                    "-9223372036854775808",
                    "18446744073709551615",
                    "9007199254740993",
                    "0",
                ])
                .to_string(),
            _ => rng.range(-100_000, 100_000).to_string(),
        },
        3 => rng
            .pick(&["1.5", "-0.25", "1e10", "3.14159", "2.5E-3", "100.0"])
            .to_string(),
        4 | 5 => {
            let n = rng.between(0, 12);
            let s: String = (0..n).map(|_| rand_char(rng, Cs::Utf8)).collect();
            json_str(&s)
        }
        6 => {
            let n = rng.between(0, 4);
            let items: Vec<String> = (0..n).map(|_| json_value(rng, depth + 1, false)).collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            let mut fields = Vec::new();
            for k in JSON_KEYS {
                if rng.chance(35) {
                    fields.push(format!(
                        "{}: {}",
                        json_str(k),
                        json_value(rng, depth + 1, false)
                    ));
                }
            }
            format!("{{{}}}", fields.join(", "))
        }
    }
}
