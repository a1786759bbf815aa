//! A deterministic workload for a source server, and a semantic comparison of
//! a source schema with its replica on a target: the tools the pipeline's
//! acceptance tests are built from.
//!
//! * [`Workload`] owns a model of its schema (tables, current columns, the
//!   keys of live rows) and generates SQL from a seeded PRNG, so every run is
//!   reproducible: [`seed_from_env`] prints the seed and `SLUICE_SEED=<seed>`
//!   replays it. Generation is pure (`setup_sql`, `next_transaction`,
//!   `next_ddl`); the `async` methods generate and execute.
//! * DML tables (`t_*`) and DDL tables (`d_*`, `extra_N`) are disjoint: the
//!   DDL side only alters, renames, truncates, creates and drops its own
//!   tables (and writes rows into them around each change), so
//!   [`Workload::run_concurrently`] runs both on separate connections without
//!   either making the other fail, and the binlog still sees rows of a table
//!   before and after each of its schema changes.
//! * [`compare`] reads every base table of the source schema and the
//!   same-named target table through the text protocol (the server's own text
//!   form; `HEX()` for binary strings and geometry, `CAST(.. AS UNSIGNED)`
//!   for BIT, `JSON_NORMALIZE()` for JSON), matches columns by name, matches
//!   rows by the source's primary key (or first all-NOT-NULL unique key), and
//!   compares keyless tables as multisets. Column types are compared too
//!   unless [`CompareOpts::ignore_column_types`].
//!
//! Every session this code opens or is given runs with `time_zone='+00:00'`
//! (set by [`compare`] and by each generated transaction), so TIMESTAMP text
//! is comparable across servers.

// The API serves the pipeline's acceptance tests; not every item is used yet.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use sluice_testkit::MariaDb;

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// PRNG and seed
// ---------------------------------------------------------------------------

/// splitmix64: tiny, fast, and good enough to drive a workload.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo + 1) as u128;
        let r = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        lo + (r % span) as i128
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An independent generator derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// The workload seed: `SLUICE_SEED` if set, else from the clock. Printed, so a
/// failing run can be replayed.
pub fn seed_from_env() -> u64 {
    let seed = match std::env::var("SLUICE_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SLUICE_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("workload seed: {seed} (SLUICE_SEED={seed} reproduces this run)");
    seed
}

// ---------------------------------------------------------------------------
// SQL text helpers
// ---------------------------------------------------------------------------

/// A quoted identifier.
pub fn q(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `schema`.`table`
pub fn qt(schema: &str, table: &str) -> String {
    format!("{}.{}", q(schema), q(table))
}

/// A string literal (for the default sql_mode, i.e. backslash escapes on).
pub fn sql_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn frac(rng: &mut Rng, fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", digits(rng, fsp as usize))
    }
}

fn nines(fsp: u32) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", "9".repeat(fsp as usize))
    }
}

// ---------------------------------------------------------------------------
// Value generators
// ---------------------------------------------------------------------------

/// Character repertoire of a string column (what its charset can store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cs {
    Ascii,
    /// MariaDB's latin1 is cp1252: € Ÿ œ Š are 0x80.. bytes.
    Latin1,
    Utf8,
}

const ASCII_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,;:'\"\\%/\n\t";
const LATIN1_CHARS: &[char] = &[
    'é', 'ü', 'ñ', 'ß', 'Ø', 'Æ', '¿', '¡', 'à', 'ç', 'ÿ', '€', 'Ÿ', 'œ', 'Š', '«', '»', '°', '±',
    'µ',
];
const UTF8_CHARS: &[char] = &[
    '中', '文', '字', '😀', '🦀', 'Ω', 'ж', 'д', '\u{308}', 'ا', 'ب', '𠜎', '€', 'é', 'ß', 'ñ',
];
/// Characters for generated string keys: no digits, '-' or spaces, so
/// `k{n}-{suffix}` is unique for distinct `n` under any collation.
const KEY_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Q', 'é', 'ü', 'ß', '中', '😀', 'Ω',
];
const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "café", "naïve", "x", "", "Zeta", "omega",
];
const ENUM_LABELS: &[&str] = &["a", "ba", "c", "ü", "x y"];
const SET_LABELS: &[&str] = &["a", "b", "c", "ü"];
const TAG_LABELS: &[&str] = &["new", "old", "gone"];
const FLAG_LABELS: &[&str] = &["x", "y", "z"];
const JSON_KEYS: &[&str] = &["a", "b", "name", "ü", "emoji😀", "k 1", "nested", "n"];

fn rand_char(rng: &mut Rng, cs: Cs) -> char {
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
enum Gen {
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

fn int_gen(bits: u32, unsigned: bool) -> Gen {
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

fn str_gen(max: usize, cs: Cs) -> Gen {
    Gen::Str { max, cs, long: 0 }
}

fn long_str(max: usize, cs: Cs, long: usize) -> Gen {
    Gen::Str { max, cs, long }
}

fn bytes_gen(max: usize, long: usize) -> Gen {
    Gen::Bytes { max, long }
}

fn dec(int_digits: usize, frac: usize) -> Gen {
    Gen::Dec {
        int_digits,
        frac,
        unsigned: false,
    }
}

fn udec(int_digits: usize, frac: usize) -> Gen {
    Gen::Dec {
        int_digits,
        frac,
        unsigned: true,
    }
}

impl Gen {
    /// A random non-NULL SQL literal.
    fn random(&self, rng: &mut Rng) -> String {
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
    fn edges(&self) -> Vec<String> {
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
    fn is_small_domain(&self) -> bool {
        match self {
            Gen::Int { min, max } => max - min <= 100,
            Gen::Word(_) | Gen::Enum(_) => true,
            _ => false,
        }
    }
}

fn random_date(rng: &mut Rng) -> String {
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

fn random_clock(rng: &mut Rng) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        rng.range(0, 23),
        rng.range(0, 59),
        rng.range(0, 59)
    )
}

fn coord(rng: &mut Rng) -> String {
    let sign = if rng.chance(40) { "-" } else { "" };
    format!("{sign}{}.{}", rng.below(180), digits(rng, 6))
}

fn json_str(s: &str) -> String {
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

fn json_value(rng: &mut Rng, depth: u32, top: bool) -> String {
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

// ---------------------------------------------------------------------------
// Schema model
// ---------------------------------------------------------------------------

/// How a key column's values are made unique (from the table's counter `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyStyle {
    /// `n`: 1, 2, 3, ... (consecutive: ranges are easy to update).
    Seq,
    /// -1, 1, -2, 2, ...
    AltSign,
    /// `n`, and `2^63 + n` for every third `n` (unsigned BIGINT above i64).
    Spread,
    /// A random value of the column's type: only for leading columns of a
    /// composite key (the last column makes the key unique).
    Random,
    /// `'k{n}-{random suffix}'`.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Primary,
    /// A UNIQUE key over NOT NULL columns, no primary key.
    Unique,
    /// No key at all: duplicate rows are allowed.
    None,
}

#[derive(Debug, Clone)]
struct Col {
    name: String,
    /// The type as written in DDL, e.g. `VARCHAR(16) CHARACTER SET latin1`.
    sql: String,
    gen: Gen,
    nullable: bool,
    key: Option<KeyStyle>,
}

fn col(name: &str, sql: &str, gen: Gen) -> Col {
    Col {
        name: name.into(),
        sql: sql.into(),
        gen,
        nullable: true,
        key: None,
    }
}

fn key(name: &str, sql: &str, gen: Gen, style: KeyStyle) -> Col {
    Col {
        name: name.into(),
        sql: sql.into(),
        gen,
        nullable: false,
        key: Some(style),
    }
}

impl Col {
    fn value(&self, rng: &mut Rng) -> String {
        if self.nullable && rng.chance(10) {
            "NULL".into()
        } else {
            self.gen.random(rng)
        }
    }
}

/// Counts of what the generator sent (statements as generated, rows as
/// intended; UPDATE/DELETE count statements, not affected rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepStats {
    pub transactions: usize,
    pub statements: usize,
    pub rows_inserted: usize,
    pub updates: usize,
    pub key_changes: usize,
    pub deletes: usize,
}

impl std::ops::AddAssign for StepStats {
    fn add_assign(&mut self, o: Self) {
        self.transactions += o.transactions;
        self.statements += o.statements;
        self.rows_inserted += o.rows_inserted;
        self.updates += o.updates;
        self.key_changes += o.key_changes;
        self.deletes += o.deletes;
    }
}

#[derive(Debug, Clone)]
struct TableState {
    name: String,
    cols: Vec<Col>,
    key: KeyKind,
    /// Key literals (in key-column order) of the rows that exist now.
    live: Vec<Vec<String>>,
    /// Counter behind new keys.
    next: u64,
}

impl TableState {
    fn new(name: &str, key: KeyKind, cols: Vec<Col>) -> Self {
        Self {
            name: name.into(),
            cols,
            key,
            live: Vec::new(),
            next: 0,
        }
    }

    fn create_sql(&self, schema: &str) -> String {
        let mut parts: Vec<String> = self
            .cols
            .iter()
            .map(|c| {
                let null = if c.nullable { "NULL" } else { "NOT NULL" };
                format!("{} {} {null}", q(&c.name), c.sql)
            })
            .collect();
        let keys: Vec<String> = self
            .key_cols()
            .iter()
            .map(|&i| q(&self.cols[i].name))
            .collect();
        match self.key {
            KeyKind::Primary => parts.push(format!("PRIMARY KEY ({})", keys.join(", "))),
            KeyKind::Unique => parts.push(format!("UNIQUE KEY `uk` ({})", keys.join(", "))),
            KeyKind::None => {}
        }
        format!(
            "CREATE TABLE {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            qt(schema, &self.name),
            parts.join(",\n  ")
        )
    }

    fn key_cols(&self) -> Vec<usize> {
        (0..self.cols.len())
            .filter(|&i| self.cols[i].key.is_some())
            .collect()
    }

    fn nonkey_cols(&self) -> Vec<usize> {
        (0..self.cols.len())
            .filter(|&i| self.cols[i].key.is_none())
            .collect()
    }

    fn new_key(&mut self, rng: &mut Rng) -> Vec<String> {
        self.next += 1;
        let n = self.next;
        self.key_cols()
            .into_iter()
            .map(|i| {
                let c = &self.cols[i];
                match c.key.unwrap_or(KeyStyle::Seq) {
                    KeyStyle::Seq => n.to_string(),
                    KeyStyle::AltSign => {
                        let h = i128::from(n / 2);
                        match n % 2 {
                            0 => h,
                            _ => -h - 1,
                        }
                        .to_string()
                    }
                    KeyStyle::Spread => match n % 3 {
                        0 => ((1u128 << 63) + u128::from(n)).to_string(),
                        _ => n.to_string(),
                    },
                    KeyStyle::Random => c.gen.random(rng),
                    KeyStyle::Text => {
                        let len = rng.below(6);
                        let suffix: String = (0..len).map(|_| *rng.pick(KEY_CHARS)).collect();
                        sql_str(&format!("k{n}-{suffix}"))
                    }
                }
            })
            .collect()
    }

    fn where_key(&self, key: &[String]) -> String {
        self.key_cols()
            .iter()
            .zip(key)
            .map(|(&i, v)| format!("{} = {v}", q(&self.cols[i].name)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn where_keys(&self, keys: &[Vec<String>]) -> String {
        keys.iter()
            .map(|k| format!("({})", self.where_key(k)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    fn insert_prefix(&self, schema: &str) -> String {
        let names: Vec<String> = self.cols.iter().map(|c| q(&c.name)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ",
            qt(schema, &self.name),
            names.join(", ")
        )
    }

    /// A row with the given key and non-key values from `value`.
    fn row(&self, key: &[String], mut value: impl FnMut(&Col) -> String) -> String {
        let mut k = key.iter();
        let vals: Vec<String> = self
            .cols
            .iter()
            .map(|c| match c.key {
                Some(_) => k.next().cloned().unwrap_or_else(|| "NULL".into()),
                None => value(c),
            })
            .collect();
        format!("({})", vals.join(", "))
    }

    /// A multi-row INSERT of `n` random rows with new keys (not yet in `live`).
    fn insert_sql(&mut self, rng: &mut Rng, schema: &str, n: usize) -> (String, Vec<Vec<String>>) {
        let mut sql = self.insert_prefix(schema);
        let mut keys = Vec::with_capacity(n);
        let mut prev: Option<String> = None;
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            if self.key == KeyKind::None {
                // Keyless: sometimes an exact duplicate of the previous row.
                let row = match &prev {
                    Some(p) if rng.chance(25) => p.clone(),
                    _ => self.row(&[], |c| c.value(rng)),
                };
                sql.push_str(&row);
                prev = Some(row);
            } else {
                let k = self.new_key(rng);
                sql.push_str(&self.row(&k, |c| c.value(rng)));
                keys.push(k);
            }
        }
        (sql, keys)
    }

    /// One random DML statement against this table; updates the live keys.
    fn statement(&mut self, rng: &mut Rng, schema: &str, st: &mut StepStats) -> String {
        st.statements += 1;
        let t = qt(schema, &self.name);
        let nonkey = self.nonkey_cols();
        if self.key == KeyKind::None {
            return self.keyless_statement(rng, schema, st);
        }
        let r = rng.below(100);
        if self.live.is_empty() || nonkey.is_empty() || r < 35 {
            let n = if rng.chance(70) {
                1
            } else {
                rng.between(2, 20)
            };
            let (sql, keys) = self.insert_sql(rng, schema, n);
            self.live.extend(keys);
            st.rows_inserted += n;
            return sql;
        }
        let idx = rng.below(self.live.len() as u64) as usize;
        if r < 65 {
            // Non-key columns of one row.
            let mut pool = nonkey.clone();
            let k = rng.between(1, 3.min(pool.len()));
            let sets: Vec<String> = (0..k)
                .map(|_| {
                    let i = pool.swap_remove(rng.below(pool.len() as u64) as usize);
                    format!("{} = {}", q(&self.cols[i].name), self.cols[i].value(rng))
                })
                .collect();
            st.updates += 1;
            format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                self.where_key(&self.live[idx])
            )
        } else if r < 73 {
            // The key itself (and sometimes a value with it).
            let new = self.new_key(rng);
            let old = std::mem::replace(&mut self.live[idx], new.clone());
            let mut sets: Vec<String> = self
                .key_cols()
                .iter()
                .zip(&new)
                .map(|(&i, v)| format!("{} = {v}", q(&self.cols[i].name)))
                .collect();
            if rng.chance(50) {
                let i = *rng.pick(&nonkey);
                sets.push(format!(
                    "{} = {}",
                    q(&self.cols[i].name),
                    self.cols[i].value(rng)
                ));
            }
            st.key_changes += 1;
            format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                self.where_key(&old)
            )
        } else if r < 80 {
            // One column of several rows.
            let keys = self.some_live(rng, 5);
            let i = *rng.pick(&nonkey);
            st.updates += 1;
            format!(
                "UPDATE {t} SET {} = {} WHERE {}",
                q(&self.cols[i].name),
                self.cols[i].value(rng),
                self.where_keys(&keys)
            )
        } else if r < 95 {
            let k = self.live.swap_remove(idx);
            st.deletes += 1;
            format!("DELETE FROM {t} WHERE {}", self.where_key(&k))
        } else {
            let keys = self.some_live(rng, 5);
            self.live.retain(|k| !keys.contains(k));
            st.deletes += 1;
            format!("DELETE FROM {t} WHERE {}", self.where_keys(&keys))
        }
    }

    /// Up to `max` distinct live keys.
    fn some_live(&mut self, rng: &mut Rng, max: usize) -> Vec<Vec<String>> {
        let n = rng.between(1, max);
        let mut keys: Vec<Vec<String>> = (0..n)
            .map(|_| self.live[rng.below(self.live.len() as u64) as usize].clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn keyless_statement(&mut self, rng: &mut Rng, schema: &str, st: &mut StepStats) -> String {
        let t = qt(schema, &self.name);
        let small: Vec<usize> = (0..self.cols.len())
            .filter(|&i| self.cols[i].gen.is_small_domain())
            .collect();
        let r = rng.below(100);
        if small.is_empty() || r < 45 {
            let n = rng.between(1, 5);
            let (sql, _) = self.insert_sql(rng, schema, n);
            st.rows_inserted += n;
            return sql;
        }
        let w = *rng.pick(&small);
        let cond = format!(
            "{} = {}",
            q(&self.cols[w].name),
            self.cols[w].gen.random(rng)
        );
        if r < 75 {
            st.deletes += 1;
            let limit = if rng.chance(80) { 1 } else { 2 };
            format!("DELETE FROM {t} WHERE {cond} LIMIT {limit}")
        } else {
            let others: Vec<usize> = (0..self.cols.len()).filter(|&i| i != w).collect();
            let k = rng.between(1, 2.min(others.len()));
            let sets: Vec<String> = (0..k)
                .map(|_| {
                    let i = *rng.pick(&others);
                    format!("{} = {}", q(&self.cols[i].name), self.cols[i].value(rng))
                })
                .collect();
            st.updates += 1;
            format!("UPDATE {t} SET {} WHERE {cond}", sets.join(", "))
        }
    }

    /// Setup rows: boundary values (keys too, for single integer keys), an
    /// all-NULL row (twice for a keyless table), and `random` random rows.
    fn setup_rows(&mut self, rng: &mut Rng, schema: &str, random: usize) -> Vec<String> {
        let keys = self.key_cols();
        let int_key = match keys.as_slice() {
            [i] if matches!(self.cols[*i].gen, Gen::Int { .. }) => Some(*i),
            _ => None,
        };
        let mut rows = Vec::new();
        for j in 0..3 {
            let k = match (j, int_key, self.key) {
                (_, _, KeyKind::None) => vec![],
                (0 | 1, Some(i), _) => vec![self.cols[i].gen.edges()[j].clone()],
                _ => self.new_key(rng),
            };
            rows.push(self.row(&k, |c| {
                let e = c.gen.edges();
                e[j % e.len()].clone()
            }));
            if !k.is_empty() {
                self.live.push(k);
            }
        }
        let null_rows = if self.key == KeyKind::None { 2 } else { 1 };
        for _ in 0..null_rows {
            let k = if self.key == KeyKind::None {
                vec![]
            } else {
                self.new_key(rng)
            };
            rows.push(self.row(&k, |_| "NULL".into()));
            if !k.is_empty() {
                self.live.push(k);
            }
        }
        let mut out = vec![format!("{}{}", self.insert_prefix(schema), rows.join(", "))];
        if random > 0 {
            let (sql, keys) = self.insert_sql(rng, schema, random);
            self.live.extend(keys);
            out.push(sql);
        }
        out
    }
}

fn dml_tables() -> Vec<TableState> {
    use Cs::*;
    use KeyStyle::*;
    vec![
        TableState::new(
            "t_int",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("ti", "TINYINT", int_gen(8, false)),
                col("tu", "TINYINT UNSIGNED", int_gen(8, true)),
                col("si", "SMALLINT", int_gen(16, false)),
                col("su", "SMALLINT UNSIGNED", int_gen(16, true)),
                col("mi", "MEDIUMINT", int_gen(24, false)),
                col("mu", "MEDIUMINT UNSIGNED", int_gen(24, true)),
                col("ii", "INT", int_gen(32, false)),
                col("iu", "INT UNSIGNED", int_gen(32, true)),
                col("bi", "BIGINT", int_gen(64, false)),
                col("bu", "BIGINT UNSIGNED", int_gen(64, true)),
                col("bo", "BOOLEAN", Gen::Int { min: 0, max: 1 }),
            ],
        ),
        TableState::new(
            "t_num",
            KeyKind::Primary,
            vec![
                key("region", "SMALLINT UNSIGNED", int_gen(16, true), Random),
                key("seq", "BIGINT", int_gen(64, false), AltSign),
                col("d21", "DECIMAL(2,1)", dec(1, 1)),
                col("d104u", "DECIMAL(10,4) UNSIGNED", udec(6, 4)),
                col("d55", "DECIMAL(5,5)", dec(0, 5)),
                col("d2010", "DECIMAL(20,10)", dec(10, 10)),
                col("d650", "DECIMAL(65,0)", dec(65, 0)),
                col("d6530", "DECIMAL(65,30)", dec(35, 30)),
                col("f", "FLOAT", Gen::Float),
                col("d", "DOUBLE", Gen::Double),
                col(
                    "f105",
                    "FLOAT(10,5)",
                    Gen::FixedFloat {
                        int_digits: 5,
                        frac: 5,
                    },
                ),
            ],
        ),
        TableState::new(
            "t_time",
            KeyKind::Primary,
            vec![
                key("id", "BIGINT UNSIGNED", int_gen(64, true), Spread),
                col("d", "DATE", Gen::Date),
                col("dt", "DATETIME", Gen::DateTime(0)),
                col("dt3", "DATETIME(3)", Gen::DateTime(3)),
                col("dt6", "DATETIME(6)", Gen::DateTime(6)),
                col("ts", "TIMESTAMP", Gen::Timestamp(0)),
                col("ts6", "TIMESTAMP(6)", Gen::Timestamp(6)),
                col("t", "TIME", Gen::Time(0)),
                col("t6", "TIME(6)", Gen::Time(6)),
                col("y", "YEAR", Gen::Year),
            ],
        ),
        TableState::new(
            "t_str",
            KeyKind::Primary,
            vec![
                key("k", "VARCHAR(64)", str_gen(64, Utf8), Text),
                col("c", "CHAR(12) CHARACTER SET latin1", str_gen(12, Latin1)),
                col("cu", "CHAR(10)", str_gen(10, Utf8)),
                col(
                    "vl",
                    "VARCHAR(100) CHARACTER SET latin1",
                    str_gen(100, Latin1),
                ),
                col("vu", "VARCHAR(100)", str_gen(100, Utf8)),
                col("vbin", "VARCHAR(40) COLLATE utf8mb4_bin", str_gen(40, Utf8)),
                col("va", "VARCHAR(30) CHARACTER SET ascii", str_gen(30, Ascii)),
                col("tt", "TINYTEXT", str_gen(60, Utf8)),
                col(
                    "tl",
                    "TEXT CHARACTER SET latin1",
                    long_str(5000, Latin1, 5000),
                ),
                col("tx", "TEXT", long_str(3000, Utf8, 3000)),
                col("mt", "MEDIUMTEXT", long_str(20000, Utf8, 20000)),
            ],
        ),
        TableState::new(
            "t_bin",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("b4", "BINARY(4)", bytes_gen(4, 0)),
                col("b16", "BINARY(16)", bytes_gen(16, 0)),
                col("vb", "VARBINARY(64)", bytes_gen(64, 0)),
                col("tb", "TINYBLOB", bytes_gen(255, 255)),
                col("bl", "BLOB", bytes_gen(2000, 2000)),
                col("mb", "MEDIUMBLOB", bytes_gen(70000, 70000)),
                col("lb", "LONGBLOB", bytes_gen(300, 0)),
            ],
        ),
        TableState::new(
            "t_misc",
            KeyKind::Primary,
            vec![
                key("id", "INT UNSIGNED", int_gen(32, true), Seq),
                col("e", "ENUM('a','ba','c','ü','x y')", Gen::Enum(ENUM_LABELS)),
                col("s", "SET('a','b','c','ü')", Gen::Set(SET_LABELS)),
                col("b1", "BIT(1)", Gen::Bit(1)),
                col("b10", "BIT(10)", Gen::Bit(10)),
                col("b64", "BIT(64)", Gen::Bit(64)),
                col("j", "JSON", Gen::Json),
                col("pt", "POINT", Gen::Point),
                col("g", "GEOMETRY", Gen::Geometry),
            ],
        ),
        TableState::new(
            "t_uniq",
            KeyKind::Unique,
            vec![
                key("code", "VARCHAR(40)", str_gen(40, Utf8), Text),
                col("qty", "INT", int_gen(32, false)),
                col("price", "DECIMAL(12,2)", dec(10, 2)),
                col(
                    "note",
                    "VARCHAR(60) CHARACTER SET latin1",
                    str_gen(60, Latin1),
                ),
                col("seen", "DATETIME(6)", Gen::DateTime(6)),
                col("tag", "ENUM('new','old','gone')", Gen::Enum(TAG_LABELS)),
            ],
        ),
        TableState::new(
            "t_nokey",
            KeyKind::None,
            vec![
                col("grp", "TINYINT", Gen::Int { min: 0, max: 9 }),
                col(
                    "label",
                    "VARCHAR(20) CHARACTER SET latin1",
                    Gen::Word(WORDS),
                ),
                col("val", "DECIMAL(10,2)", dec(8, 2)),
                col("n", "BIGINT UNSIGNED", int_gen(64, true)),
                col("note", "TEXT", str_gen(200, Utf8)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
            ],
        ),
        TableState::new(
            "t_bulk",
            KeyKind::Primary,
            vec![
                key("id", "BIGINT", int_gen(64, false), Seq),
                col("grp", "INT", Gen::Int { min: 0, max: 99 }),
                col("name", "VARCHAR(40)", str_gen(40, Utf8)),
                col("amount", "DECIMAL(12,3)", dec(9, 3)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
                col("flag", "TINYINT", Gen::Int { min: 0, max: 1 }),
                col(
                    "note",
                    "VARCHAR(100) CHARACTER SET latin1",
                    str_gen(100, Latin1),
                ),
            ],
        ),
    ]
}

const EVOLVE: usize = 0;
const RENAMED: usize = 1;
const TRUNCATED: usize = 2;
/// `tables[FIRST_EXTRA..]` are the `extra_N` tables, oldest first.
const FIRST_EXTRA: usize = 3;
const REN_A: &str = "d_ren_a";
const REN_B: &str = "d_ren_b";

fn ddl_tables() -> Vec<TableState> {
    use KeyStyle::*;
    vec![
        TableState::new(
            "d_evolve",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("v", "VARCHAR(50)", str_gen(50, Cs::Utf8)),
                col("n", "INT", int_gen(32, false)),
            ],
        ),
        TableState::new(
            REN_A,
            KeyKind::Primary,
            vec![
                key("id", "BIGINT", int_gen(64, false), Seq),
                col("label", "VARCHAR(30)", str_gen(30, Cs::Utf8)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
            ],
        ),
        TableState::new(
            "d_trunc",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), Seq),
                col("v", "VARCHAR(30)", str_gen(30, Cs::Latin1)),
                col("amount", "DECIMAL(10,2)", dec(8, 2)),
            ],
        ),
    ]
}

fn extra_table(name: &str) -> TableState {
    TableState::new(
        name,
        KeyKind::Primary,
        vec![
            key("id", "BIGINT", int_gen(64, false), KeyStyle::Seq),
            col("label", "VARCHAR(30)", str_gen(30, Cs::Utf8)),
            col("amount", "DECIMAL(12,2)", dec(10, 2)),
            col("created", "DATETIME(6)", Gen::DateTime(6)),
            col("payload", "VARBINARY(64)", bytes_gen(64, 0)),
            col("flags", "SET('x','y','z')", Gen::Set(FLAG_LABELS)),
        ],
    )
}

/// Column types ADD COLUMN picks from.
fn added_type(rng: &mut Rng) -> (&'static str, Gen) {
    match rng.below(9) {
        0 => ("INT", int_gen(32, false)),
        1 => ("SMALLINT UNSIGNED", int_gen(16, true)),
        2 => ("VARCHAR(16)", str_gen(16, Cs::Utf8)),
        3 => ("VARCHAR(16) CHARACTER SET latin1", str_gen(16, Cs::Latin1)),
        4 => ("DECIMAL(10,2)", dec(8, 2)),
        5 => ("DATETIME", Gen::DateTime(0)),
        6 => ("TEXT", str_gen(200, Cs::Utf8)),
        7 => ("DOUBLE", Gen::Double),
        _ => ("VARBINARY(16)", bytes_gen(16, 0)),
    }
}

/// What MODIFY COLUMN turns an added column's type into (always a widening,
/// so existing values survive unchanged).
fn widened(sql: &str) -> Option<(&'static str, Gen)> {
    Some(match sql {
        "INT" => ("BIGINT", int_gen(64, false)),
        "SMALLINT UNSIGNED" => ("INT UNSIGNED", int_gen(32, true)),
        "VARCHAR(16)" => ("VARCHAR(64)", str_gen(64, Cs::Utf8)),
        // Widens and converts the stored bytes to another charset.
        "VARCHAR(16) CHARACTER SET latin1" => ("VARCHAR(64)", str_gen(64, Cs::Utf8)),
        "DECIMAL(10,2)" => ("DECIMAL(20,4)", dec(16, 4)),
        "DATETIME" => ("DATETIME(6)", Gen::DateTime(6)),
        "TEXT" => ("MEDIUMTEXT", str_gen(200, Cs::Utf8)),
        "VARBINARY(16)" => ("VARBINARY(64)", bytes_gen(64, 0)),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DdlOp {
    AddColumn,
    CreateTable,
    ModifyColumn,
    RenameTable,
    DropColumn,
    TruncateTable,
    DropTable,
}

const DDL_CYCLE: &[DdlOp] = &[
    DdlOp::AddColumn,
    DdlOp::CreateTable,
    DdlOp::ModifyColumn,
    DdlOp::RenameTable,
    DdlOp::AddColumn,
    DdlOp::DropColumn,
    DdlOp::TruncateTable,
    DdlOp::DropTable,
];

const MAX_ADDED_COLUMNS: usize = 6;

/// The DML side: fixed-schema tables.
#[derive(Debug, Clone)]
struct DmlState {
    rng: Rng,
    tables: Vec<TableState>,
}

/// The DDL side: tables whose schema changes, written only by this side.
#[derive(Debug, Clone)]
struct DdlState {
    rng: Rng,
    tables: Vec<TableState>,
    added: Vec<String>,
    next_col: u64,
    next_extra: u64,
    cycle: usize,
    stats: StepStats,
}

/// Statements per random transaction: 1..=MAX_TXN_STATEMENTS.
const MAX_TXN_STATEMENTS: usize = 6;

impl DmlState {
    fn next_transaction(&mut self, schema: &str) -> (Vec<String>, StepStats) {
        let mut st = StepStats {
            transactions: 1,
            ..StepStats::default()
        };
        let n = self.rng.between(1, MAX_TXN_STATEMENTS);
        let stmts = (0..n)
            .map(|_| {
                let t = self.rng.below(self.tables.len() as u64) as usize;
                self.tables[t].statement(&mut self.rng, schema, &mut st)
            })
            .collect();
        (stmts, st)
    }
}

impl DdlState {
    /// The next schema change and a transaction of rows around it.
    fn next(&mut self, schema: &str) -> (String, Vec<String>) {
        let mut op = DDL_CYCLE[self.cycle % DDL_CYCLE.len()];
        self.cycle += 1;
        // Fall back when an operation has nothing to work on.
        let modifiable = self
            .added
            .iter()
            .filter(|n| {
                self.tables[EVOLVE]
                    .cols
                    .iter()
                    .any(|c| &c.name == *n && widened(&c.sql).is_some())
            })
            .count();
        op = match op {
            DdlOp::AddColumn if self.added.len() >= MAX_ADDED_COLUMNS => DdlOp::DropColumn,
            DdlOp::DropColumn if self.added.is_empty() => DdlOp::AddColumn,
            DdlOp::ModifyColumn if modifiable == 0 => DdlOp::AddColumn,
            DdlOp::DropTable if self.tables.len() == FIRST_EXTRA => DdlOp::CreateTable,
            op => op,
        };
        let rng = &mut self.rng;
        let mut st = StepStats::default();
        let mut follow = Vec::new();
        let (ddl, target) = match op {
            DdlOp::AddColumn => {
                let (ty, gen) = added_type(rng);
                let name = format!("c{}", self.next_col);
                self.next_col += 1;
                let default = if rng.chance(50) {
                    format!(" DEFAULT {}", gen.random(rng))
                } else {
                    String::new()
                };
                let t = &mut self.tables[EVOLVE];
                let r = rng.below(10);
                let (pos, at) = if r < 2 {
                    (" FIRST".to_string(), 0)
                } else if r < 5 {
                    let j = rng.below(t.cols.len() as u64) as usize;
                    (format!(" AFTER {}", q(&t.cols[j].name)), j + 1)
                } else {
                    (String::new(), t.cols.len())
                };
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {ty} NULL{default}{pos}",
                    qt(schema, &t.name),
                    q(&name)
                );
                t.cols.insert(at, col(&name, ty, gen));
                self.added.push(name);
                (sql, Some(EVOLVE))
            }
            DdlOp::DropColumn => {
                let i = rng.below(self.added.len() as u64) as usize;
                let name = self.added.swap_remove(i);
                let t = &mut self.tables[EVOLVE];
                t.cols.retain(|c| c.name != name);
                (
                    format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        qt(schema, &t.name),
                        q(&name)
                    ),
                    Some(EVOLVE),
                )
            }
            DdlOp::ModifyColumn => {
                let t = &mut self.tables[EVOLVE];
                let candidates: Vec<usize> = (0..t.cols.len())
                    .filter(|&i| {
                        self.added.contains(&t.cols[i].name) && widened(&t.cols[i].sql).is_some()
                    })
                    .collect();
                let i = *rng.pick(&candidates);
                let (ty, gen) = widened(&t.cols[i].sql).unwrap_or(("INT", int_gen(32, false)));
                t.cols[i].sql = ty.to_string();
                t.cols[i].gen = gen;
                (
                    format!(
                        "ALTER TABLE {} MODIFY COLUMN {} {ty} NULL",
                        qt(schema, &t.name),
                        q(&t.cols[i].name)
                    ),
                    Some(EVOLVE),
                )
            }
            DdlOp::RenameTable => {
                let t = &mut self.tables[RENAMED];
                let new = if t.name == REN_A { REN_B } else { REN_A };
                let sql = format!(
                    "RENAME TABLE {} TO {}",
                    qt(schema, &t.name),
                    qt(schema, new)
                );
                t.name = new.to_string();
                (sql, Some(RENAMED))
            }
            DdlOp::CreateTable => {
                let t = extra_table(&format!("extra_{}", self.next_extra));
                self.next_extra += 1;
                let sql = t.create_sql(schema);
                self.tables.push(t);
                (sql, Some(self.tables.len() - 1))
            }
            DdlOp::DropTable => {
                let t = self.tables.remove(FIRST_EXTRA);
                (format!("DROP TABLE {}", qt(schema, &t.name)), None)
            }
            DdlOp::TruncateTable => {
                let t = &mut self.tables[TRUNCATED];
                t.live.clear();
                (
                    format!("TRUNCATE TABLE {}", qt(schema, &t.name)),
                    Some(TRUNCATED),
                )
            }
        };
        if let Some(i) = target {
            let n = self.rng.between(1, 8);
            let (sql, keys) = self.tables[i].insert_sql(&mut self.rng, schema, n);
            self.tables[i].live.extend(keys);
            st.statements += 1;
            st.rows_inserted += n;
            follow.push(sql);
            follow.push(self.tables[i].statement(&mut self.rng, schema, &mut st));
        }
        for _ in 0..self.rng.between(1, 3) {
            let i = self.rng.below(self.tables.len() as u64) as usize;
            follow.push(self.tables[i].statement(&mut self.rng, schema, &mut st));
        }
        st.transactions += 1;
        self.stats += st;
        (ddl, follow)
    }
}

/// What [`Workload::run_concurrently`] did.
#[derive(Debug, Clone, Default)]
pub struct ConcurrentStats {
    pub dml: StepStats,
    pub ddl: Vec<String>,
    pub elapsed: Duration,
}

/// A reproducible workload on one schema of a source server.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    schema: String,
    dml: DmlState,
    ddl: DdlState,
}

impl Workload {
    pub fn new(seed: u64, schema: &str) -> Self {
        let mut rng = Rng::new(seed);
        let dml_rng = rng.fork();
        let ddl_rng = rng.fork();
        Self {
            seed,
            schema: schema.into(),
            dml: DmlState {
                rng: dml_rng,
                tables: dml_tables(),
            },
            ddl: DdlState {
                rng: ddl_rng,
                tables: ddl_tables(),
                added: Vec::new(),
                next_col: 1,
                next_extra: 1,
                cycle: 0,
                stats: StepStats::default(),
            },
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Current table names, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Current column names of a table, in table order.
    pub fn columns(&self, table: &str) -> Option<Vec<String>> {
        self.dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .find(|t| t.name == table)
            .map(|t| t.cols.iter().map(|c| c.name.clone()).collect())
    }

    /// Rows the model believes exist in a keyed table (None: keyless/unknown).
    pub fn live_rows(&self, table: &str) -> Option<usize> {
        self.dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .find(|t| t.name == table && t.key != KeyKind::None)
            .map(|t| t.live.len())
    }

    /// CREATE DATABASE, the tables, and their first rows (pure: no I/O).
    pub fn setup_sql(&mut self) -> Vec<String> {
        let schema = self.schema.clone();
        let mut out = vec![format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            q(&schema)
        )];
        for t in self.dml.tables.iter().chain(&self.ddl.tables) {
            out.push(t.create_sql(&schema));
        }
        for t in &mut self.dml.tables {
            out.extend(t.setup_rows(&mut self.dml.rng, &schema, 12));
        }
        for t in &mut self.ddl.tables {
            out.extend(t.setup_rows(&mut self.ddl.rng, &schema, 5));
        }
        out
    }

    /// Creates the schema (which must not exist yet) and fills it.
    pub async fn setup(&mut self, conn: &mut Conn) -> Result<()> {
        conn.query_drop("SET time_zone = '+00:00'").await?;
        for sql in self.setup_sql() {
            conn.query_drop(&sql)
                .await
                .with_context(|| format!("setup statement failed: {}", truncate(&sql, 2000)))?;
        }
        Ok(())
    }

    /// The next random transaction's statements (pure: no I/O).
    pub fn next_transaction(&mut self) -> (Vec<String>, StepStats) {
        self.dml.next_transaction(&self.schema)
    }

    /// One random committed transaction of 1..=6 statements over the DML tables.
    pub async fn step(&mut self, conn: &mut Conn) -> Result<StepStats> {
        let (stmts, st) = self.next_transaction();
        exec_transaction(conn, &stmts).await?;
        Ok(st)
    }

    /// `n` [`step`](Self::step)s.
    pub async fn steps(&mut self, conn: &mut Conn, n: usize) -> Result<StepStats> {
        let mut total = StepStats::default();
        for _ in 0..n {
            total += self.step(conn).await?;
        }
        Ok(total)
    }

    /// One transaction inserting `rows` rows into `t_bulk` with 1000-row
    /// INSERTs, updating half of every tenth chunk and deleting a few of its
    /// own rows before COMMIT. Rows come from a cheap per-row generator (one
    /// PRNG draw each), so 100k rows take about as long as the server needs.
    pub async fn big_transaction(&mut self, conn: &mut Conn, rows: usize) -> Result<StepStats> {
        const CHUNK: u64 = 1000;
        let schema = self.schema.clone();
        let t = self
            .dml
            .tables
            .iter()
            .position(|t| t.name == "t_bulk")
            .ok_or_else(|| anyhow!("no t_bulk table"))?;
        let mut st = StepStats {
            transactions: 1,
            ..StepStats::default()
        };
        let tq = qt(&schema, "t_bulk");
        conn.query_drop("SET time_zone = '+00:00'; BEGIN").await?;
        let res: Result<()> = async {
            let rows = rows as u64;
            let mut done = 0;
            let mut chunk_no = 0;
            while done < rows {
                let n = CHUNK.min(rows - done);
                let table = &mut self.dml.tables[t];
                // Seq keys: the table's counter is the last id used.
                let first = table.next + 1;
                table.next += n;
                let mut sql = format!(
                    "INSERT INTO {tq} (`id`, `grp`, `name`, `amount`, `at`, `flag`, `note`) VALUES "
                );
                for id in first..first + n {
                    if id > first {
                        sql.push_str(", ");
                    }
                    bulk_row(&mut sql, id, self.dml.rng.next_u64());
                }
                conn.query_drop(&sql).await.context("bulk INSERT")?;
                st.statements += 1;
                st.rows_inserted += n as usize;
                let mut deleted = 0..0;
                if chunk_no % 10 == 0 && n >= 10 {
                    let mid = first + n / 2;
                    conn.query_drop(format!(
                        "UPDATE {tq} SET amount = IFNULL(amount, 0) / 2, note = 'bulk update' \
                         WHERE id BETWEEN {first} AND {mid}"
                    ))
                    .await
                    .context("bulk UPDATE")?;
                    deleted = first + n - 3..first + n;
                    conn.query_drop(format!(
                        "DELETE FROM {tq} WHERE id >= {} AND id < {}",
                        deleted.start, deleted.end
                    ))
                    .await
                    .context("bulk DELETE")?;
                    st.statements += 2;
                    st.updates += 1;
                    st.deletes += 1;
                }
                table.live.extend(
                    (first..first + n)
                        .filter(|id| !deleted.contains(id))
                        .map(|id| vec![id.to_string()]),
                );
                done += n;
                chunk_no += 1;
            }
            conn.query_drop("COMMIT").await?;
            Ok(())
        }
        .await;
        if res.is_err() {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        res.map(|()| st)
    }

    /// The next schema change and the transaction that follows it (pure).
    pub fn next_ddl(&mut self) -> (String, Vec<String>) {
        self.ddl.next(&self.schema)
    }

    /// Runs the next schema change, then a transaction writing rows into the
    /// DDL tables (the changed one first). Returns the DDL statement.
    pub async fn ddl_step(&mut self, conn: &mut Conn) -> Result<String> {
        let (ddl, follow) = self.next_ddl();
        ddl_step_exec(conn, &ddl, &follow).await?;
        Ok(ddl)
    }

    /// Totals of the rows written by the DDL side so far.
    pub fn ddl_dml_stats(&self) -> StepStats {
        self.ddl.stats
    }

    /// `dml_steps` random transactions and `ddl_steps` schema changes at the
    /// same time, on two connections to `source`. Both sides are bounded and
    /// write disjoint tables, so neither makes the other fail.
    pub async fn run_concurrently(
        &mut self,
        source: &MariaDb,
        dml_steps: usize,
        ddl_steps: usize,
    ) -> Result<ConcurrentStats> {
        let start = Instant::now();
        let mut c1 = source.conn().await?;
        let mut c2 = source.conn().await?;
        let schema = self.schema.as_str();
        let (dml, ddl) = (&mut self.dml, &mut self.ddl);
        let dml_side = async {
            let mut total = StepStats::default();
            for _ in 0..dml_steps {
                let (stmts, st) = dml.next_transaction(schema);
                exec_transaction(&mut c1, &stmts).await?;
                total += st;
            }
            Ok::<_, anyhow::Error>(total)
        };
        let ddl_side = async {
            let mut done = Vec::new();
            for _ in 0..ddl_steps {
                let (sql, follow) = ddl.next(schema);
                ddl_step_exec(&mut c2, &sql, &follow).await?;
                done.push(sql);
            }
            Ok::<_, anyhow::Error>(done)
        };
        let (a, b) = tokio::join!(dml_side, ddl_side);
        let _ = c1.disconnect().await;
        let _ = c2.disconnect().await;
        Ok(ConcurrentStats {
            dml: a.context("DML side")?,
            ddl: b.context("DDL side")?,
            elapsed: start.elapsed(),
        })
    }
}

/// Pre-escaped strings for bulk rows (utf8mb4 names, latin1-safe notes).
const BULK_NAMES: &[&str] = &[
    "plain",
    "élan",
    "中文",
    "😀smile",
    "O''Brien",
    "back\\\\slash",
    "",
];
const BULK_NOTES: &[&str] = &["note", "café", "€ 5", "naïve", "Ÿ"];

/// One `t_bulk` row (id, grp, name, amount, at, flag, note) from one draw.
fn bulk_row(out: &mut String, id: u64, r: u64) {
    let name = BULK_NAMES[(r >> 8) as usize % BULK_NAMES.len()];
    let sign = if r & (1 << 20) != 0 { "-" } else { "" };
    let _ = write!(
        out,
        "({id}, {}, 'n{id}-{name}', {sign}{}.{:03}, '20{:02}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}', {}, ",
        r % 100,
        (r >> 21) % 1_000_000_000,
        (r >> 51) % 1000,
        (r >> 12) % 38,
        1 + (r >> 18) % 12,
        1 + (r >> 22) % 28,
        (r >> 27) % 24,
        (r >> 32) % 60,
        (r >> 38) % 60,
        (r >> 13) % 1_000_000,
        (r >> 44) & 1,
    );
    match r % 7 {
        0 => out.push_str("NULL)"),
        _ => {
            let note = BULK_NOTES[(r >> 4) as usize % BULK_NOTES.len()];
            let _ = write!(out, "'{note}')");
        }
    }
}

async fn exec_transaction(conn: &mut Conn, stmts: &[String]) -> Result<()> {
    let mut sql = String::from("SET time_zone = '+00:00'; BEGIN");
    for s in stmts {
        sql.push_str(";\n");
        sql.push_str(s);
    }
    sql.push_str(";\nCOMMIT");
    if let Err(e) = conn.query_drop(&sql).await {
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(
            anyhow::Error::new(e).context(format!("transaction failed:\n{}", truncate(&sql, 4000)))
        );
    }
    Ok(())
}

async fn ddl_step_exec(conn: &mut Conn, ddl: &str, follow: &[String]) -> Result<()> {
    conn.query_drop(ddl)
        .await
        .with_context(|| format!("DDL failed: {ddl}"))?;
    exec_transaction(conn, follow).await
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/// What [`compare`] skips or tolerates.
#[derive(Debug, Clone, Default)]
pub struct CompareOpts {
    /// Source tables not compared (and not reported missing on the target).
    pub exclude_tables: Vec<String>,
    /// `(table, column)` pairs not compared; skipped on both sides, so a
    /// target copy of the column (e.g. left NULL) is not "extra" either.
    pub exclude_columns: Vec<(String, String)>,
    /// Target columns the source table lacks are not a difference.
    pub allow_extra_target_columns: bool,
    /// Target tables the source schema lacks are not a difference.
    pub allow_extra_target_tables: bool,
    /// Do not compare COLUMN_TYPE and charset of same-named columns.
    pub ignore_column_types: bool,
}

impl CompareOpts {
    pub fn exclude_column(mut self, table: &str, column: &str) -> Self {
        self.exclude_columns.push((table.into(), column.into()));
        self
    }

    pub fn exclude_table(mut self, table: &str) -> Self {
        self.exclude_tables.push(table.into());
        self
    }

    pub fn allow_extra_target_columns(mut self) -> Self {
        self.allow_extra_target_columns = true;
        self
    }

    pub fn allow_extra_target_tables(mut self) -> Self {
        self.allow_extra_target_tables = true;
        self
    }

    pub fn ignore_column_types(mut self) -> Self {
        self.ignore_column_types = true;
        self
    }
}

/// Differences in one table.
#[derive(Debug, Clone, Default)]
pub struct TableDiff {
    pub table: String,
    pub source_rows: usize,
    pub target_rows: usize,
    /// Missing/extra columns and type differences.
    pub column_problems: Vec<String>,
    /// Source rows (by key) absent from the target.
    pub missing_rows: usize,
    /// Target rows (by key) absent from the source.
    pub extra_rows: usize,
    /// Rows present on both sides with different values.
    pub changed_rows: usize,
    /// Target rows sharing a key (the target lacks the source's key).
    pub duplicate_keys: usize,
    /// The first few differences, readable, in key order.
    pub samples: Vec<String>,
}

impl TableDiff {
    fn is_empty(&self) -> bool {
        self.column_problems.is_empty()
            && self.missing_rows == 0
            && self.extra_rows == 0
            && self.changed_rows == 0
            && self.duplicate_keys == 0
            && self.source_rows == self.target_rows
    }

    fn sample(&mut self, s: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(s);
        }
    }
}

const MAX_SAMPLES: usize = 8;

/// Result of [`compare`]; `Display` is the readable report.
#[derive(Debug, Clone, Default)]
pub struct CompareReport {
    pub source_schema: String,
    pub target_schema: String,
    pub tables_compared: usize,
    pub rows_compared: usize,
    /// Source tables with no same-named target table.
    pub missing_tables: Vec<String>,
    /// Target tables with no same-named source table.
    pub extra_tables: Vec<String>,
    /// Tables that differ.
    pub tables: Vec<TableDiff>,
}

impl CompareReport {
    pub fn is_same(&self) -> bool {
        self.missing_tables.is_empty() && self.extra_tables.is_empty() && self.tables.is_empty()
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_same() { "SAME" } else { "DIFFERENT" };
        writeln!(
            f,
            "source schema `{}` vs target schema `{}`: {verdict} ({} tables, {} source rows compared)",
            self.source_schema, self.target_schema, self.tables_compared, self.rows_compared
        )?;
        for t in &self.missing_tables {
            writeln!(f, "  table `{t}`: missing on target")?;
        }
        for t in &self.extra_tables {
            writeln!(f, "  table `{t}`: only on target")?;
        }
        for d in &self.tables {
            writeln!(
                f,
                "  table `{}`: {} rows on source, {} on target; {} missing on target, {} only on target, {} changed{}",
                d.table,
                d.source_rows,
                d.target_rows,
                d.missing_rows,
                d.extra_rows,
                d.changed_rows,
                if d.duplicate_keys > 0 {
                    format!(", {} duplicate keys on target", d.duplicate_keys)
                } else {
                    String::new()
                }
            )?;
            for p in &d.column_problems {
                writeln!(f, "    {p}")?;
            }
            for s in &d.samples {
                writeln!(f, "    - {s}")?;
            }
        }
        Ok(())
    }
}

type Cell = Option<Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    Null,
    Int(i128),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
struct ColInfo {
    name: String,
    data_type: String,
    column_type: String,
    charset: String,
}

async fn list_tables(conn: &mut Conn, schema: &str) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        sql_str(schema)
    );
    Ok(conn.query(sql).await?)
}

async fn list_columns(conn: &mut Conn, schema: &str, table: &str) -> Result<Vec<ColInfo>> {
    let sql = format!(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IFNULL(CHARACTER_SET_NAME, '') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
         ORDER BY ORDINAL_POSITION",
        sql_str(schema),
        sql_str(table)
    );
    let rows: Vec<(String, String, String, String)> = conn.query(sql).await?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type, column_type, charset)| ColInfo {
            name,
            data_type: data_type.to_ascii_lowercase(),
            column_type: column_type.to_ascii_lowercase(),
            charset,
        })
        .collect())
}

/// The columns rows are matched by: the primary key, else the first UNIQUE
/// key (by name) over NOT NULL whole columns, else none.
async fn key_columns(conn: &mut Conn, schema: &str, table: &str) -> Result<Option<Vec<String>>> {
    let sql = format!(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULLABLE, SUB_PART \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
         ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
        sql_str(schema),
        sql_str(table)
    );
    let rows: Vec<(String, i64, String, String, Option<i64>)> = conn.query(sql).await?;
    let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (index, non_unique, column, nullable, sub_part) in rows {
        let usable = non_unique == 0 && nullable != "YES" && sub_part.is_none();
        match indexes.last_mut() {
            Some((name, cols, ok)) if *name == index => {
                cols.push(column);
                *ok &= usable;
            }
            _ => indexes.push((index, vec![column], usable)),
        }
    }
    Ok(indexes
        .into_iter()
        .find(|(_, _, ok)| *ok)
        .map(|(_, cols, _)| cols))
}

/// MariaDB's JSON is LONGTEXT with a `json_valid(col)` CHECK constraint.
async fn json_columns(conn: &mut Conn, schema: &str, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = {} AND TABLE_NAME = {}",
        sql_str(schema),
        sql_str(table)
    );
    let clauses: Vec<String> = conn.query(sql).await.unwrap_or_default();
    clauses
        .into_iter()
        .filter_map(|c| {
            let c = c.trim();
            let inner = c
                .strip_prefix("json_valid(`")
                .or_else(|| c.strip_prefix("JSON_VALID(`"))?;
            Some(inner.strip_suffix("`)")?.replace("``", "`"))
        })
        .collect()
}

/// The expression that reads a column as comparable text.
fn select_expr(c: &ColInfo, json: bool) -> String {
    let n = q(&c.name);
    match c.data_type.as_str() {
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry"
        | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => format!("HEX({n})"),
        "bit" => format!("CAST({n} AS UNSIGNED)"),
        "json" => format!("JSON_NORMALIZE({n})"),
        _ if json => format!("JSON_NORMALIZE({n})"),
        _ => n,
    }
}

fn is_int_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year"
    )
}

async fn fetch(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Cell>>> {
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .with_context(|| format!("query failed: {}", truncate(sql, 500)))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).into_bytes()),
                })
                .collect()
        })
        .collect())
}

fn show(cell: &Cell) -> String {
    match cell {
        None => "NULL".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{:?}", truncate(s, 60)),
            Err(_) => {
                let hex: String = b.iter().take(30).map(|x| format!("{x:02X}")).collect();
                format!("0x{hex}{}", if b.len() > 30 { "…" } else { "" })
            }
        },
    }
}

fn show_row(cols: &[ColInfo], row: &[Cell]) -> String {
    let parts: Vec<String> = cols
        .iter()
        .zip(row)
        .map(|(c, v)| format!("{}={}", c.name, show(v)))
        .collect();
    truncate(&format!("({})", parts.join(", ")), 300)
}

fn show_key(cols: &[ColInfo], key_idx: &[usize], row: &[Cell]) -> String {
    key_idx
        .iter()
        .map(|&i| format!("{}={}", cols[i].name, show(&row[i])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares every base table of `source_schema` with the same-named table of
/// `target_schema` (see the module docs for how values are read and matched).
/// Sets `time_zone = '+00:00'` on both sessions.
pub async fn compare(
    source: &mut Conn,
    source_schema: &str,
    target: &mut Conn,
    target_schema: &str,
    opts: &CompareOpts,
) -> Result<CompareReport> {
    source.query_drop("SET time_zone = '+00:00'").await?;
    target.query_drop("SET time_zone = '+00:00'").await?;
    let mut report = CompareReport {
        source_schema: source_schema.into(),
        target_schema: target_schema.into(),
        ..CompareReport::default()
    };
    let excluded = |t: &str| opts.exclude_tables.iter().any(|x| x == t);
    let src_tables = list_tables(source, source_schema).await?;
    let tgt_tables = list_tables(target, target_schema).await?;
    for table in &src_tables {
        if excluded(table) {
            continue;
        }
        if !tgt_tables.contains(table) {
            report.missing_tables.push(table.clone());
            continue;
        }
        let diff = compare_table(source, source_schema, target, target_schema, table, opts)
            .await
            .with_context(|| format!("comparing table `{table}`"))?;
        report.tables_compared += 1;
        report.rows_compared += diff.source_rows;
        if !diff.is_empty() {
            report.tables.push(diff);
        }
    }
    if !opts.allow_extra_target_tables {
        report.extra_tables = tgt_tables
            .into_iter()
            .filter(|t| !src_tables.contains(t) && !excluded(t))
            .collect();
    }
    Ok(report)
}

async fn compare_table(
    source: &mut Conn,
    ss: &str,
    target: &mut Conn,
    ts: &str,
    table: &str,
    opts: &CompareOpts,
) -> Result<TableDiff> {
    let skip = |c: &str| {
        opts.exclude_columns
            .iter()
            .any(|(t, col)| t == table && col.eq_ignore_ascii_case(c))
    };
    let mut diff = TableDiff {
        table: table.into(),
        ..TableDiff::default()
    };
    let scols: Vec<ColInfo> = list_columns(source, ss, table)
        .await?
        .into_iter()
        .filter(|c| !skip(&c.name))
        .collect();
    let tcols: Vec<ColInfo> = list_columns(target, ts, table)
        .await?
        .into_iter()
        .filter(|c| !skip(&c.name))
        .collect();
    let mut common: Vec<ColInfo> = Vec::new();
    for s in &scols {
        match tcols.iter().find(|t| t.name.eq_ignore_ascii_case(&s.name)) {
            None => diff
                .column_problems
                .push(format!("column `{}` missing on target", s.name)),
            Some(t) => {
                if !opts.ignore_column_types
                    && (s.column_type != t.column_type || s.charset != t.charset)
                {
                    diff.column_problems.push(format!(
                        "column `{}`: type `{}` {} on source, `{}` {} on target",
                        s.name, s.column_type, s.charset, t.column_type, t.charset
                    ));
                }
                common.push(s.clone());
            }
        }
    }
    if !opts.allow_extra_target_columns {
        for t in &tcols {
            if !scols.iter().any(|s| s.name.eq_ignore_ascii_case(&t.name)) {
                diff.column_problems
                    .push(format!("column `{}` only on target", t.name));
            }
        }
    }
    let json = json_columns(source, ss, table).await;
    let mut exprs: Vec<String> = common
        .iter()
        .map(|c| select_expr(c, json.iter().any(|j| j.eq_ignore_ascii_case(&c.name))))
        .collect();
    if exprs.is_empty() {
        exprs.push("1".into());
    }
    let key_idx: Option<Vec<usize>> = key_columns(source, ss, table).await?.and_then(|k| {
        k.iter()
            .map(|n| common.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
            .collect()
    });
    let list = exprs.join(", ");
    // Both sides sorted the same way (same definitions, same server version),
    // so the comparison can walk them in step and only fall back to maps
    // after the first difference.
    let order: Vec<String> = match &key_idx {
        Some(ki) => ki.iter().map(|&i| q(&common[i].name)).collect(),
        None => common.iter().map(|c| q(&c.name)).collect(),
    };
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let src_sql = format!("SELECT {list} FROM {}{order}", qt(ss, table));
    let tgt_sql = format!("SELECT {list} FROM {}{order}", qt(ts, table));
    let (src_rows, tgt_rows) = tokio::try_join!(fetch(source, &src_sql), fetch(target, &tgt_sql))?;
    diff.source_rows = src_rows.len();
    diff.target_rows = tgt_rows.len();
    match key_idx {
        Some(ki) if !common.is_empty() => {
            compare_keyed(&mut diff, &common, &ki, src_rows, tgt_rows)
        }
        _ => compare_multiset(&mut diff, &common, src_rows, tgt_rows),
    }
    Ok(diff)
}

fn compare_keyed(
    diff: &mut TableDiff,
    cols: &[ColInfo],
    ki: &[usize],
    src: Vec<Vec<Cell>>,
    tgt: Vec<Vec<Cell>>,
) {
    // Fast path: walk both (key-ordered) sides while the keys agree.
    let same_key = |a: &[Cell], b: &[Cell]| ki.iter().all(|&i| a[i] == b[i]);
    let mut n = 0;
    while n < src.len()
        && n < tgt.len()
        && same_key(&src[n], &tgt[n])
        && !tgt.get(n + 1).is_some_and(|next| same_key(next, &tgt[n]))
    {
        if src[n] != tgt[n] {
            changed_row(diff, cols, ki, &src[n], &tgt[n]);
        }
        n += 1;
    }
    if n == src.len() && n == tgt.len() {
        return;
    }
    let (src, tgt) = (&src[n..], &tgt[n..]);
    let mk = |row: &[Cell]| -> Vec<KeyPart> {
        ki.iter()
            .map(|&i| match &row[i] {
                None => KeyPart::Null,
                Some(b) if is_int_type(&cols[i].data_type) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<i128>().ok())
                    .map_or_else(|| KeyPart::Bytes(b.clone()), KeyPart::Int),
                Some(b) => KeyPart::Bytes(b.clone()),
            })
            .collect()
    };
    let mut tmap: BTreeMap<Vec<KeyPart>, &[Cell]> = BTreeMap::new();
    let mut dups = Vec::new();
    for row in tgt {
        if let Some(prev) = tmap.insert(mk(row), row) {
            dups.push(prev);
        }
    }
    for row in dups {
        diff.duplicate_keys += 1;
        diff.sample(format!(
            "key {}: more than one row on target",
            show_key(cols, ki, row)
        ));
    }
    let smap: BTreeMap<Vec<KeyPart>, &[Cell]> = src.iter().map(|r| (mk(r), &r[..])).collect();
    for (k, s) in &smap {
        match tmap.remove(k) {
            None => {
                diff.missing_rows += 1;
                diff.sample(format!(
                    "key {}: missing on target; source row {}",
                    show_key(cols, ki, s),
                    show_row(cols, s)
                ));
            }
            Some(t) if t != *s => changed_row(diff, cols, ki, s, t),
            Some(_) => {}
        }
    }
    for t in tmap.values() {
        diff.extra_rows += 1;
        diff.sample(format!(
            "key {}: only on target; target row {}",
            show_key(cols, ki, t),
            show_row(cols, t)
        ));
    }
}

fn changed_row(diff: &mut TableDiff, cols: &[ColInfo], ki: &[usize], s: &[Cell], t: &[Cell]) {
    diff.changed_rows += 1;
    let differing: Vec<usize> = (0..cols.len()).filter(|&i| s[i] != t[i]).collect();
    let mut parts: Vec<String> = differing
        .iter()
        .take(3)
        .map(|&i| {
            format!(
                "column `{}`: source {} target {}",
                cols[i].name,
                show(&s[i]),
                show(&t[i])
            )
        })
        .collect();
    if differing.len() > 3 {
        parts.push(format!("and {} more columns", differing.len() - 3));
    }
    diff.sample(format!(
        "key {}: {}",
        show_key(cols, ki, s),
        parts.join("; ")
    ));
}

fn compare_multiset(
    diff: &mut TableDiff,
    cols: &[ColInfo],
    src: Vec<Vec<Cell>>,
    tgt: Vec<Vec<Cell>>,
) {
    // Fast path: both sides sorted by all columns; ties between rows that
    // differ only in bytes the collation ignores may come in another order,
    // which the counting below sorts out.
    let n = src.iter().zip(&tgt).take_while(|(s, t)| s == t).count();
    if n == src.len() && n == tgt.len() {
        return;
    }
    let mut counts: BTreeMap<&[Cell], i64> = BTreeMap::new();
    for r in &src[n..] {
        *counts.entry(r).or_default() += 1;
    }
    for r in &tgt[n..] {
        *counts.entry(r).or_default() -= 1;
    }
    for (row, n) in counts {
        if n > 0 {
            diff.missing_rows += n as usize;
            diff.sample(format!(
                "row {} (no key): {n} more on source than on target",
                show_row(cols, row)
            ));
        } else if n < 0 {
            diff.extra_rows += (-n) as usize;
            diff.sample(format!(
                "row {} (no key): {} more on target than on source",
                show_row(cols, row),
                -n
            ));
        }
    }
}

/// [`compare`], panicking with the report unless source and target are the same.
pub async fn assert_same(
    source: &mut Conn,
    source_schema: &str,
    target: &mut Conn,
    target_schema: &str,
    opts: &CompareOpts,
) -> CompareReport {
    let report = compare(source, source_schema, target, target_schema, opts)
        .await
        .unwrap_or_else(|e| panic!("compare failed: {e:#}"));
    assert!(report.is_same(), "{report}");
    report
}

/// Polls [`compare`] until source and target are the same, or fails with the
/// last report after `timeout`. Stop writing to the source first: a compare
/// taken while rows still change on the source can only succeed by chance.
/// Errors (a server restarting, a table renamed between listing and reading)
/// count as "not yet" and reconnect.
pub async fn wait_until_same(
    source: &MariaDb,
    source_schema: &str,
    target: &MariaDb,
    target_schema: &str,
    opts: &CompareOpts,
    timeout: Duration,
) -> Result<CompareReport> {
    let start = Instant::now();
    let mut conns: Option<(Conn, Conn)> = None;
    let mut every = Duration::from_millis(50);
    loop {
        let attempt: Result<CompareReport> = async {
            if conns.is_none() {
                conns = Some((source.conn().await?, target.conn().await?));
            }
            let (s, t) = conns.as_mut().ok_or_else(|| anyhow!("no connections"))?;
            compare(s, source_schema, t, target_schema, opts).await
        }
        .await;
        let last = match attempt {
            Ok(r) if r.is_same() => return Ok(r),
            Ok(r) => r.to_string(),
            Err(e) => {
                conns = None;
                format!("compare failed: {e:#}")
            }
        };
        if start.elapsed() >= timeout {
            bail!(
                "source `{source_schema}` and target `{target_schema}` still differ after {:?}:\n{last}",
                start.elapsed()
            );
        }
        tokio::time::sleep(every).await;
        every = (every * 2).min(Duration::from_millis(500));
    }
}

/// Copies a schema with `mariadb-dump | mariadb` (structure and rows), e.g.
/// to seed a target or to check [`compare`] against a known-good copy.
pub async fn copy_schema_with_dump(
    source: &MariaDb,
    source_schema: &str,
    target: &MariaDb,
    target_schema: &str,
) -> Result<()> {
    let dump = sluice_testkit::find_binary("mariadb-dump", "mariadb-client")?;
    let client = sluice_testkit::find_binary("mariadb", "mariadb-client")?;
    target
        .exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            q(target_schema)
        ))
        .await?;
    let (sp, tp) = (source.port(), target.port());
    let (ss, ts) = (source_schema.to_string(), target_schema.to_string());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let common = |port: u16| {
            vec![
                "--no-defaults".to_string(),
                "--protocol=TCP".into(),
                "-h127.0.0.1".into(),
                format!("-P{port}"),
                "-uroot".into(),
                "--default-character-set=utf8mb4".into(),
            ]
        };
        let mut d = Command::new(&dump)
            .args(common(sp))
            .args(["--single-transaction", "--hex-blob", "--skip-comments"])
            .arg(&ss)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", dump.display()))?;
        let out = d.stdout.take().ok_or_else(|| anyhow!("no dump stdout"))?;
        let load = Command::new(&client)
            .args(common(tp))
            .arg(&ts)
            .stdin(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {}", client.display()))?;
        let dumped = d.wait_with_output()?;
        if !dumped.status.success() {
            bail!(
                "mariadb-dump {ss} failed ({}): {}",
                dumped.status,
                String::from_utf8_lossy(&dumped.stderr)
            );
        }
        if !load.status.success() {
            bail!(
                "mariadb {ts} < dump failed ({}): {}",
                load.status,
                String::from_utf8_lossy(&load.stderr)
            );
        }
        Ok(())
    })
    .await?
}

// ---------------------------------------------------------------------------
// Tests of the tools themselves (no pipeline involved)
// ---------------------------------------------------------------------------

#[test]
fn workload_is_reproducible_from_its_seed() {
    let run = |seed: u64| {
        let mut w = Workload::new(seed, "s");
        let mut out = w.setup_sql();
        for i in 0..200 {
            out.extend(w.next_transaction().0);
            if i % 10 == 0 {
                let (ddl, follow) = w.next_ddl();
                out.push(ddl);
                out.extend(follow);
            }
        }
        out
    };
    let a = run(42);
    assert_eq!(a, run(42), "same seed, same SQL");
    assert_ne!(a, run(43), "another seed, other SQL");
}

#[tokio::test]
async fn workload_copies_compare_equal_and_differences_are_named() -> Result<()> {
    let seed = seed_from_env();
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let mut src = source.conn().await?;
    let mut wl = Workload::new(seed, "wl");

    let t = Instant::now();
    wl.setup(&mut src).await?;
    println!("setup: {} tables in {:?}", wl.tables().len(), t.elapsed());

    let t = Instant::now();
    let steps = 300;
    let st = wl.steps(&mut src, steps).await?;
    let took = t.elapsed();
    println!(
        "{steps} steps in {took:?} ({:.0} transactions/s): {st:?}",
        steps as f64 / took.as_secs_f64()
    );

    let t = Instant::now();
    let st = wl.big_transaction(&mut src, 100_000).await?;
    println!("big transaction in {:?}: {st:?}", t.elapsed());

    let t = Instant::now();
    for _ in 0..DDL_CYCLE.len() {
        let ddl = wl.ddl_step(&mut src).await?;
        println!("ddl: {}", truncate(&ddl.replace('\n', " "), 160));
    }
    println!("{} ddl steps in {:?}", DDL_CYCLE.len(), t.elapsed());

    let c = wl.run_concurrently(&source, 200, DDL_CYCLE.len()).await?;
    println!(
        "concurrently: 200 transactions and {} ddl steps in {:?}: {:?}",
        c.ddl.len(),
        c.elapsed,
        c.dml
    );
    for ddl in &c.ddl {
        println!("ddl: {}", truncate(&ddl.replace('\n', " "), 160));
    }
    println!("tables: {:?}", wl.tables());
    for t in wl.tables() {
        let rows: Vec<u64> = source
            .query(&format!("SELECT COUNT(*) FROM {}", qt("wl", &t)))
            .await?;
        let cols = wl.columns(&t).unwrap_or_default();
        if let Some(live) = wl.live_rows(&t) {
            assert_eq!(rows[0] as usize, live, "model and server disagree on {t}");
        }
        println!("  {t}: {} rows, columns {cols:?}", rows[0]);
    }

    let t = Instant::now();
    copy_schema_with_dump(&source, "wl", &target, "wl_copy").await?;
    println!("dump | load in {:?}", t.elapsed());

    let mut tgt = target.conn().await?;
    let opts = CompareOpts::default();
    let t = Instant::now();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("compare in {:?}: {report}", t.elapsed());
    assert!(report.is_same(), "{report}");
    assert_eq!(report.tables_compared, wl.tables().len());
    assert!(report.rows_compared > 100_000, "{report}");
    let again = wait_until_same(
        &source,
        "wl",
        &target,
        "wl_copy",
        &opts,
        Duration::from_secs(10),
    )
    .await?;
    assert!(again.is_same());

    // JSON compares by value: reformatting it on the target is no difference.
    tgt.query_drop("UPDATE wl_copy.t_misc SET j = JSON_COMPACT(j) WHERE j IS NOT NULL")
        .await?;
    assert!(tgt.affected_rows() > 0, "JSON_COMPACT changed no row");
    assert_same(&mut src, "wl", &mut tgt, "wl_copy", &opts).await;

    // One changed value: named by table, key and column.
    let keys: Vec<String> = target
        .query("SELECT k FROM wl_copy.t_str WHERE vu IS NOT NULL ORDER BY k LIMIT 1")
        .await?;
    let k = keys.first().ok_or_else(|| anyhow!("no t_str row"))?;
    tgt.query_drop(format!(
        "UPDATE wl_copy.t_str SET vu = CONCAT(vu, '#') WHERE k = {}",
        sql_str(k)
    ))
    .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("{report}");
    let text = report.to_string();
    assert!(!report.is_same());
    assert_eq!(report.tables.len(), 1, "{text}");
    assert_eq!(report.tables[0].changed_rows, 1, "{text}");
    assert!(text.contains("table `t_str`"), "{text}");
    assert!(text.contains(&format!("k={k:?}")), "{text}");
    assert!(text.contains("column `vu`"), "{text}");
    let err = wait_until_same(
        &source,
        "wl",
        &target,
        "wl_copy",
        &opts,
        Duration::from_millis(300),
    )
    .await
    .expect_err("target differs");
    assert!(format!("{err:#}").contains("column `vu`"), "{err:#}");
    tgt.query_drop(format!(
        "UPDATE wl_copy.t_str SET vu = LEFT(vu, CHAR_LENGTH(vu) - 1) WHERE k = {}",
        sql_str(k)
    ))
    .await?;
    assert_same(&mut src, "wl", &mut tgt, "wl_copy", &opts).await;

    // One deleted row (keyed), one deleted duplicate (keyless), one extra column.
    let ids: Vec<i64> = target
        .query("SELECT id FROM wl_copy.t_int ORDER BY id LIMIT 1")
        .await?;
    let id = ids.first().ok_or_else(|| anyhow!("no t_int row"))?;
    tgt.query_drop(format!("DELETE FROM wl_copy.t_int WHERE id = {id}"))
        .await?;
    tgt.query_drop("DELETE FROM wl_copy.t_nokey WHERE grp IS NULL LIMIT 1")
        .await?;
    tgt.query_drop("ALTER TABLE wl_copy.t_bin ADD COLUMN extra INT NULL")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("{report}");
    let text = report.to_string();
    assert!(
        text.contains("table `t_int`")
            && text.contains(&format!("key id=\"{id}\": missing on target")),
        "{text}"
    );
    assert!(
        text.contains("table `t_nokey`") && text.contains("1 more on source than on target"),
        "{text}"
    );
    assert!(text.contains("column `extra` only on target"), "{text}");
    let tolerant = opts.clone().allow_extra_target_columns();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert_eq!(report.tables.len(), 2, "{report}");

    // A column type that differs.
    tgt.query_drop("ALTER TABLE wl_copy.t_uniq MODIFY note VARCHAR(61) CHARACTER SET latin1")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert!(
        report.to_string().contains(
            "column `note`: type `varchar(60)` latin1 on source, `varchar(61)` latin1 on target"
        ),
        "{report}"
    );
    let lenient = tolerant.clone().ignore_column_types();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &lenient).await?;
    assert_eq!(report.tables.len(), 2, "{report}");

    // A missing table, and a table only on the target.
    tgt.query_drop("RENAME TABLE wl_copy.t_misc TO wl_copy.t_misc_old")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert_eq!(
        report.missing_tables,
        vec!["t_misc".to_string()],
        "{report}"
    );
    assert_eq!(
        report.extra_tables,
        vec!["t_misc_old".to_string()],
        "{report}"
    );
    Ok(())
}
