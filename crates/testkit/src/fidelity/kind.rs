//! Column kinds (type, charset, attributes) and the random values each
//! holds, written as SQL literals.

use std::fmt::Write as _;

use super::Rng;

/// A charset family of character columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cs {
    Utf8mb4,
    Utf8mb3,
    Latin1,
    Ascii,
    Ucs2,
    Utf16,
    Utf32,
    Gbk,
    Big5,
    Sjis,
}

impl Cs {
    pub const ALL: [Cs; 10] = [
        Cs::Utf8mb4,
        Cs::Utf8mb3,
        Cs::Latin1,
        Cs::Ascii,
        Cs::Ucs2,
        Cs::Utf16,
        Cs::Utf32,
        Cs::Gbk,
        Cs::Big5,
        Cs::Sjis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cs::Utf8mb4 => "utf8mb4",
            Cs::Utf8mb3 => "utf8mb3",
            Cs::Latin1 => "latin1",
            Cs::Ascii => "ascii",
            Cs::Ucs2 => "ucs2",
            Cs::Utf16 => "utf16",
            Cs::Utf32 => "utf32",
            Cs::Gbk => "gbk",
            Cs::Big5 => "big5",
            Cs::Sjis => "sjis",
        }
    }

    /// Bytes per character at most.
    fn max_bytes(self) -> usize {
        match self {
            Cs::Latin1 | Cs::Ascii => 1,
            Cs::Ucs2 | Cs::Gbk | Cs::Big5 | Cs::Sjis => 2,
            Cs::Utf8mb3 => 3,
            Cs::Utf8mb4 | Cs::Utf16 | Cs::Utf32 => 4,
        }
    }

    /// Non-ASCII characters the charset holds (and that come back the same
    /// through utf8mb4).
    fn extra(self) -> &'static [char] {
        match self {
            Cs::Ascii => &[],
            Cs::Latin1 => &['é', 'ü', 'ß', 'Ø', '¿', 'ÿ', '€', 'Ÿ', 'œ', 'Š', '«', '°'],
            Cs::Ucs2 | Cs::Utf8mb3 => &['é', 'ß', '中', 'Ω', 'ж', '€', 'ا', '\u{308}'],
            Cs::Utf8mb4 | Cs::Utf16 | Cs::Utf32 => {
                &['é', 'ß', '中', 'Ω', 'ж', '€', '😀', '🦀', '𠜎']
            }
            Cs::Gbk => &['中', '文', '字', '汉', '语', '数', '据', '库', '〇'],
            Cs::Big5 => &['圖', '形', '碼', '中', '臺', '灣', '£', '¢', '¥'],
            Cs::Sjis => &['あ', 'ア', '河', '漢', '〜', '‖', '−', '¢', '£', '¬', 'ｱ'],
        }
    }

    pub(crate) fn char(self, rng: &mut Rng) -> char {
        const ASCII: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,;:'\"\\%/\n\t";
        let extra = self.extra();
        if extra.is_empty() || rng.chance(60) {
            char::from(*rng.pick(ASCII))
        } else {
            *rng.pick(extra)
        }
    }
}

/// A column type.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Int {
        /// 8, 16, 24, 32 or 64.
        bits: u32,
        unsigned: bool,
    },
    Decimal {
        precision: u32,
        scale: u32,
        unsigned: bool,
    },
    Float,
    Double,
    Date,
    DateTime(u32),
    Timestamp(u32),
    Time(u32),
    Year,
    Char(usize, Cs),
    VarChar(usize, Cs),
    Text(Cs),
    Binary(usize),
    VarBinary(usize),
    Blob,
    Enum(Vec<String>, Cs),
    Set(Vec<String>, Cs),
    Bit(u32),
    Json,
    Geometry,
    Uuid,
    Inet4,
    Inet6,
}

/// ENUM/SET labels with non-ASCII characters of the charset. Labels must
/// differ under the column's collation (case-, accent- and language-
/// insensitively: `ü` is `y` in latin1_swedish_ci): each starts with its own
/// ASCII letter. No `,` (the SET separator), no trailing space.
pub(super) fn labels(cs: Cs, rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n.min(26))
        .map(|i| {
            let mut s = String::from(char::from(b'a' + i as u8));
            for _ in 0..rng.between(0, 2) {
                let extra = cs.extra();
                if !extra.is_empty() {
                    s.push(*rng.pick(extra));
                }
            }
            s
        })
        .collect()
}

impl Kind {
    /// A random column type.
    pub(crate) fn random(rng: &mut Rng) -> Kind {
        let cs = *rng.pick(&Cs::ALL);
        match rng.below(24) {
            0..=2 => Kind::Int {
                bits: *rng.pick(&[8, 16, 24, 32, 64]),
                unsigned: rng.chance(50),
            },
            3 => {
                let precision = rng.between(1, 65) as u32;
                let scale = rng.between(0, precision.min(30) as usize) as u32;
                Kind::Decimal {
                    precision,
                    scale,
                    unsigned: rng.chance(30),
                }
            }
            4 => Kind::Float,
            5 => Kind::Double,
            6 => Kind::Date,
            7 => Kind::DateTime(rng.between(0, 6) as u32),
            8 => Kind::Timestamp(rng.between(0, 6) as u32),
            9 => Kind::Time(rng.between(0, 6) as u32),
            10 => Kind::Year,
            11 => Kind::Char(rng.between(1, 20), cs),
            12 | 13 => Kind::VarChar(rng.between(1, 60), cs),
            14 => Kind::Text(cs),
            15 => Kind::Binary(rng.between(1, 20)),
            16 => Kind::VarBinary(rng.between(1, 60)),
            17 => Kind::Blob,
            18 => {
                let n = rng.between(1, 6);
                Kind::Enum(labels(cs, rng, n), cs)
            }
            19 => {
                let n = rng.between(1, 8);
                Kind::Set(labels(cs, rng, n), cs)
            }
            20 => Kind::Bit(rng.between(1, 64) as u32),
            21 => Kind::Json,
            22 => Kind::Geometry,
            _ => rng.pick(&[Kind::Uuid, Kind::Inet4, Kind::Inet6]).clone(),
        }
    }

    /// The column type in SQL.
    pub fn sql(&self) -> String {
        // ENUM/SET definitions take plain quoted strings (the session's
        // charset is utf8mb4).
        let list = |labels: &[String]| {
            labels
                .iter()
                .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Kind::Int { bits, unsigned } => format!(
                "{}{}",
                match bits {
                    8 => "TINYINT",
                    16 => "SMALLINT",
                    24 => "MEDIUMINT",
                    32 => "INT",
                    _ => "BIGINT",
                },
                if *unsigned { " UNSIGNED" } else { "" }
            ),
            Kind::Decimal {
                precision,
                scale,
                unsigned,
            } => format!(
                "DECIMAL({precision},{scale}){}",
                if *unsigned { " UNSIGNED" } else { "" }
            ),
            Kind::Float => "FLOAT".into(),
            Kind::Double => "DOUBLE".into(),
            Kind::Date => "DATE".into(),
            Kind::DateTime(f) => format!("DATETIME({f})"),
            Kind::Timestamp(f) => format!("TIMESTAMP({f})"),
            Kind::Time(f) => format!("TIME({f})"),
            Kind::Year => "YEAR".into(),
            Kind::Char(n, cs) => format!("CHAR({n}) CHARACTER SET {}", cs.name()),
            Kind::VarChar(n, cs) => format!("VARCHAR({n}) CHARACTER SET {}", cs.name()),
            Kind::Text(cs) => format!("TEXT CHARACTER SET {}", cs.name()),
            Kind::Binary(n) => format!("BINARY({n})"),
            Kind::VarBinary(n) => format!("VARBINARY({n})"),
            Kind::Blob => "BLOB".into(),
            Kind::Enum(l, cs) => format!("ENUM({}) CHARACTER SET {}", list(l), cs.name()),
            Kind::Set(l, cs) => format!("SET({}) CHARACTER SET {}", list(l), cs.name()),
            Kind::Bit(w) => format!("BIT({w})"),
            Kind::Json => "JSON".into(),
            Kind::Geometry => "GEOMETRY".into(),
            Kind::Uuid => "UUID".into(),
            Kind::Inet4 => "INET4".into(),
            Kind::Inet6 => "INET6".into(),
        }
    }

    /// Bytes the column takes in a row at most, for InnoDB's row size limit
    /// (long columns go off-page and count little).
    pub(crate) fn row_bytes(&self) -> usize {
        match self {
            Kind::Char(n, cs) => n * cs.max_bytes(),
            Kind::VarChar(n, cs) => (n * cs.max_bytes()).min(256) + 2,
            Kind::Binary(n) => *n,
            Kind::VarBinary(n) => (*n).min(256) + 2,
            Kind::Decimal { .. } => 30,
            _ => 20,
        }
    }

    /// Can be part of a key.
    pub(crate) fn keyable(&self) -> bool {
        matches!(
            self,
            Kind::Int { .. } | Kind::VarChar(..) | Kind::Char(..) | Kind::Date | Kind::VarBinary(_)
        )
    }

    /// A random value as an SQL expression. `lax`: the session is not
    /// strict, so values the server clips or zeroes may come too.
    pub fn value(&self, rng: &mut Rng, lax: bool) -> String {
        if lax && rng.chance(15) {
            if let Some(v) = self.lax_value(rng) {
                return v;
            }
        }
        let edge = rng.chance(20);
        match self {
            Kind::Int { bits, unsigned } => {
                let (min, max) = if *unsigned {
                    (0i128, (1i128 << bits) - 1)
                } else {
                    (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                };
                let v = if edge {
                    *rng.pick(&[min, max, 0, 1, min.max(-1), max - 1])
                } else if rng.chance(50) {
                    rng.range(min.max(-1000), max.min(1000))
                } else {
                    rng.range(min, max)
                };
                v.to_string()
            }
            Kind::Decimal {
                precision,
                scale,
                unsigned,
            } => {
                let int_digits = (precision - scale) as usize;
                let digits = |rng: &mut Rng, n: usize, nine: bool| -> String {
                    (0..n)
                        .map(|_| {
                            if nine {
                                '9'
                            } else {
                                char::from(b'0' + rng.below(10) as u8)
                            }
                        })
                        .collect()
                };
                let nine = edge && rng.chance(50);
                let ip = if int_digits == 0 {
                    "0".to_string()
                } else {
                    let n = if nine {
                        int_digits
                    } else {
                        rng.between(1, int_digits)
                    };
                    digits(rng, n, nine)
                };
                let fp = digits(rng, *scale as usize, nine);
                let sign = if !unsigned && rng.chance(40) { "-" } else { "" };
                if fp.is_empty() {
                    format!("{sign}{ip}")
                } else {
                    format!("{sign}{ip}.{fp}")
                }
            }
            Kind::Float => {
                if edge {
                    rng.pick(&[
                        "0",
                        "-0",
                        "1.5",
                        "-3.4e38",
                        "3.4e38",
                        "1.17549435e-38",
                        "0.1",
                    ])
                    .to_string()
                } else {
                    format!("{:e}", (rng.range(-1_000_000, 1_000_000) as f32) / 128.0)
                }
            }
            Kind::Double => {
                if edge {
                    rng.pick(&[
                        "0",
                        "-0",
                        "1.7976931348623157e308",
                        "-2.2250738585072014e-308",
                        "5e-324",
                        "0.1",
                        "1e16",
                    ])
                    .to_string()
                } else {
                    let bits = rng.next_u64();
                    let d = f64::from_bits(bits);
                    if d.is_finite() {
                        format!("{d:e}")
                    } else {
                        "12345.678".into()
                    }
                }
            }
            Kind::Date => format!("'{}'", date(rng, edge)),
            Kind::DateTime(f) => {
                format!("'{} {}{}'", date(rng, edge), clock(rng), fraction(rng, *f))
            }
            Kind::Timestamp(f) => {
                // 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC.
                let secs = if edge {
                    *rng.pick(&[1u64, 2_147_483_647, 86_400])
                } else {
                    rng.between(1, 2_147_483_647) as u64
                };
                format!(
                    "FROM_UNIXTIME({secs}{})",
                    if *f > 0 {
                        format!(".{}", &fraction(rng, *f)[1..])
                    } else {
                        String::new()
                    }
                )
            }
            Kind::Time(f) => {
                let h = if edge {
                    *rng.pick(&[0u64, 838, 24, 100])
                } else {
                    rng.below(839)
                };
                let sign = if rng.chance(30) { "-" } else { "" };
                let (m, s) = (rng.below(60), rng.below(60));
                let frac = if h == 838 {
                    String::new()
                } else {
                    fraction(rng, *f)
                };
                format!("'{sign}{h:02}:{m:02}:{s:02}{frac}'")
            }
            Kind::Year => {
                if edge {
                    rng.pick(&["0", "1901", "2155"]).to_string()
                } else {
                    rng.between(1901, 2155).to_string()
                }
            }
            Kind::Char(n, cs) | Kind::VarChar(n, cs) => {
                let len = if edge {
                    *rng.pick(&[0, *n])
                } else {
                    rng.between(0, *n)
                };
                let mut s: String = (0..len).map(|_| cs.char(rng)).collect();
                if edge && rng.chance(50) && len < *n {
                    s.push(' ');
                }
                utf8_literal(&s)
            }
            Kind::Text(cs) => {
                let len = if edge {
                    rng.between(0, 300)
                } else {
                    rng.between(0, 40)
                };
                utf8_literal(&(0..len).map(|_| cs.char(rng)).collect::<String>())
            }
            Kind::Binary(n) | Kind::VarBinary(n) => {
                let len = if edge {
                    *rng.pick(&[0, *n])
                } else {
                    rng.between(0, *n)
                };
                hex_literal(&(0..len).map(|_| rng.next_u64() as u8).collect::<Vec<_>>())
            }
            Kind::Blob => {
                let len = if edge {
                    rng.between(0, 2000)
                } else {
                    rng.between(0, 60)
                };
                hex_literal(&(0..len).map(|_| rng.next_u64() as u8).collect::<Vec<_>>())
            }
            Kind::Enum(l, _) => utf8_literal(rng.pick::<String>(l)),
            Kind::Set(l, _) => {
                let chosen: Vec<&str> = l
                    .iter()
                    .filter(|_| rng.chance(40))
                    .map(String::as_str)
                    .collect();
                utf8_literal(&chosen.join(","))
            }
            Kind::Bit(w) => {
                let v = if *w == 64 {
                    rng.next_u64()
                } else {
                    rng.next_u64() & ((1u64 << w) - 1)
                };
                format!("b'{v:b}'")
            }
            Kind::Json => utf8_literal(&json(rng, 0)),
            Kind::Geometry => geometry(rng),
            Kind::Uuid => {
                let mut b: Vec<u8> = (0..16).map(|_| rng.next_u64() as u8).collect();
                match rng.below(3) {
                    // RFC 4122 versions 1–5 (stored with the time fields
                    // swapped, `plugin/type_uuid`).
                    0 => {
                        b[6] = (b[6] & 0x0F) | (rng.between(1, 5) as u8) << 4;
                        b[8] = (b[8] & 0x3F) | 0x80;
                    }
                    1 => return "UUID()".into(),
                    // Other versions and variants MariaDB accepts.
                    _ => {
                        b[6] &= 0x5F;
                        b[8] &= 0x7F;
                    }
                }
                let h = hex(&b);
                format!(
                    "'{}-{}-{}-{}-{}'",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
            Kind::Inet4 => format!(
                "'{}.{}.{}.{}'",
                rng.below(256),
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            Kind::Inet6 => {
                let groups: Vec<String> =
                    (0..8).map(|_| format!("{:x}", rng.below(65536))).collect();
                format!("'{}'", groups.join(":"))
            }
        }
    }

    /// A value only a non-strict session writes; the server clips, zeroes
    /// or truncates it (with a warning).
    fn lax_value(&self, rng: &mut Rng) -> Option<String> {
        Some(match self {
            Kind::Int { .. } => rng
                .pick(&["99999999999999999999999", "-99999999999999999999999"])
                .to_string(),
            Kind::Decimal { .. } => rng
                .pick(&["1e70", "-1e70", "0.000000000000000000000000000000000001"])
                .to_string(),
            Kind::Date => rng
                .pick(&[
                    "'2021-02-30'",
                    "'0000-00-00'",
                    "'2021-00-15'",
                    "'2021-13-01'",
                ])
                .to_string(),
            Kind::DateTime(_) => rng
                .pick(&[
                    "'2021-04-31 10:00:00'",
                    "'0000-00-00 00:00:00'",
                    "'2021-07-00 23:59:59'",
                ])
                .to_string(),
            Kind::Timestamp(_) => "'0000-00-00 00:00:00'".to_string(),
            Kind::Time(_) => rng.pick(&["'900:00:00'", "'-900:00:00'"]).to_string(),
            Kind::Year => "1800".to_string(),
            Kind::Char(n, cs) | Kind::VarChar(n, cs) => {
                utf8_literal(&(0..n + 5).map(|_| cs.char(rng)).collect::<String>())
            }
            Kind::Enum(..) => "'no such label'".to_string(),
            Kind::Set(..) => "'no such label'".to_string(),
            _ => return None,
        })
    }
}

pub(super) fn fraction(rng: &mut Rng, fsp: u32) -> String {
    if fsp == 0 {
        return String::new();
    }
    let mut s = String::from(".");
    for _ in 0..fsp {
        s.push(char::from(b'0' + rng.below(10) as u8));
    }
    s
}

pub(super) fn date(rng: &mut Rng, edge: bool) -> String {
    if edge {
        return rng
            .pick(&[
                "1000-01-01",
                "9999-12-31",
                "1970-01-01",
                "2000-02-29",
                "0000-00-00",
                "2021-00-00",
            ])
            .to_string();
    }
    format!(
        "{:04}-{:02}-{:02}",
        rng.between(1000, 9999),
        rng.between(1, 12),
        rng.between(1, 28)
    )
}

pub(super) fn clock(rng: &mut Rng) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

pub(super) fn json(rng: &mut Rng, depth: u32) -> String {
    match if depth > 2 {
        rng.below(4)
    } else {
        rng.below(6)
    } {
        0 => rng.range(-1_000_000, 1_000_000).to_string(),
        1 => format!("{:?}", format!("s{}é", rng.below(100))),
        2 => rng
            .pick(&["true", "false", "null", "1.5", "18446744073709551615"])
            .to_string(),
        3 => "\"😀\"".into(),
        4 => {
            let n = rng.between(0, 3);
            let items: Vec<String> = (0..n).map(|_| json(rng, depth + 1)).collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            let n = rng.between(0, 3);
            let items: Vec<String> = (0..n)
                .map(|i| format!("\"k{i}\": {}", json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

pub(super) fn geometry(rng: &mut Rng) -> String {
    let p = |rng: &mut Rng| {
        format!(
            "{} {}",
            rng.range(-1000, 1000) as f64 / 8.0,
            rng.range(-1000, 1000) as f64 / 8.0
        )
    };
    let wkt = match rng.below(3) {
        0 => format!("POINT({})", p(rng)),
        1 => format!("LINESTRING({}, {})", p(rng), p(rng)),
        _ => "POLYGON((0 0, 4 0, 4 4, 0 4, 0 0))".to_string(),
    };
    format!("ST_GeomFromText('{wkt}')")
}

/// `_utf8mb4 X'…'`: a utf8mb4 string literal without any escaping.
pub fn utf8_literal(s: &str) -> String {
    format!("_utf8mb4 X'{}'", hex(s.as_bytes()))
}

pub(super) fn hex_literal(b: &[u8]) -> String {
    format!("X'{}'", hex(b))
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02X}");
    }
    s
}

pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}
