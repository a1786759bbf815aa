//! Legacy charsets decoded by the server's own mapping (see the parent
//! module's docs for why and how the data was derived).
//!
//! A value is cut into *codes* by the charset's byte structure
//! ([`unit_len`]); a code is its bytes as a big-endian integer (`0x815F`,
//! `0x8FA2B7`). Each code's character is the entry of
//! [`super::server_maps`] covering it when there is one (a character, or
//! "none": the server cannot convert it, or would not convert it back to the
//! same bytes), else the base decoder's ([`base_unit`]: a WHATWG decoder from
//! `encoding_rs`, or ASCII for charsets without one). A value with any code
//! that has no character is not text.
//!
//! Single-byte charsets the server maps like their WHATWG decoder (latin1,
//! the common case) decode with it, whole strings at a time; the other
//! single-byte charsets through a 256-entry table built once from the same
//! data.

use std::sync::OnceLock;

use encoding_rs::Encoding;

use super::server_maps;
use super::Charset;

pub use super::NONE;

/// How a charset cuts bytes into codes (MariaDB `strings/ctype-*.c`:
/// `ismbchar_*`, `my_mb_wc_*`, `my_well_formed_char_length_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// Every byte is a code.
    SingleByte,
    /// sjis, cp932: singles 00–7F and A1–DF (half-width katakana); leads
    /// 81–9F, E0–FC with trails 40–7E, 80–FC.
    ShiftJis,
    /// big5: leads A1–F9, trails 40–7E, A1–FE.
    Big5,
    /// gbk: leads 81–FE, trails 40–7E, 80–FE.
    Gbk,
    /// gb2312 (EUC-CN): leads A1–F7, trails A1–FE.
    Gb2312,
    /// euckr (with the UHC extension): leads 81–FE, trails 41–5A, 61–7A,
    /// 81–FE.
    Euckr,
    /// ujis, eucjpms: 8E + A1–DF; 8F + two of A1–FE; A1–FE + A1–FE.
    EucJp,
}

impl Structure {
    pub fn of(cs: Charset) -> Option<Structure> {
        use Charset::*;
        Some(match cs {
            Sjis | Cp932 => Structure::ShiftJis,
            Big5 => Structure::Big5,
            Gbk => Structure::Gbk,
            Gb2312 => Structure::Gb2312,
            Euckr => Structure::Euckr,
            Ujis | Eucjpms => Structure::EucJp,
            Utf8mb3 | Utf8mb4 | Ucs2 | Utf16 | Utf16le | Utf32 | Binary | Gb18030 => return None,
            _ => Structure::SingleByte,
        })
    }
}

/// The length of the code starting at `bytes[0]`, or `None` when the bytes
/// there are not a complete, well-formed code of the structure.
pub fn unit_len(structure: Structure, bytes: &[u8]) -> Option<usize> {
    let b0 = *bytes.first()?;
    let in_ = |i: usize, ranges: &[(u8, u8)]| {
        bytes
            .get(i)
            .is_some_and(|b| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(b)))
    };
    let n = match structure {
        Structure::SingleByte => 1,
        _ if b0 < 0x80 => 1,
        Structure::ShiftJis => match b0 {
            0xA1..=0xDF => 1,
            0x81..=0x9F | 0xE0..=0xFC if in_(1, &[(0x40, 0x7E), (0x80, 0xFC)]) => 2,
            _ => return None,
        },
        Structure::Big5 => match b0 {
            0xA1..=0xF9 if in_(1, &[(0x40, 0x7E), (0xA1, 0xFE)]) => 2,
            _ => return None,
        },
        Structure::Gbk => match b0 {
            0x81..=0xFE if in_(1, &[(0x40, 0x7E), (0x80, 0xFE)]) => 2,
            _ => return None,
        },
        Structure::Gb2312 => match b0 {
            0xA1..=0xF7 if in_(1, &[(0xA1, 0xFE)]) => 2,
            _ => return None,
        },
        Structure::Euckr => match b0 {
            0x81..=0xFE if in_(1, &[(0x41, 0x5A), (0x61, 0x7A), (0x81, 0xFE)]) => 2,
            _ => return None,
        },
        Structure::EucJp => match b0 {
            0x8E if in_(1, &[(0xA1, 0xDF)]) => 2,
            0x8F if in_(1, &[(0xA1, 0xFE)]) && in_(2, &[(0xA1, 0xFE)]) => 3,
            0xA1..=0xFE if in_(1, &[(0xA1, 0xFE)]) => 2,
            _ => return None,
        },
    };
    Some(n)
}

/// The WHATWG decoder used as the base for a charset, if any.
fn whatwg(cs: Charset) -> Option<&'static Encoding> {
    use Charset::*;
    Some(match cs {
        Latin1 => encoding_rs::WINDOWS_1252,
        Latin2 => encoding_rs::ISO_8859_2,
        Latin7 => encoding_rs::ISO_8859_13,
        Greek => encoding_rs::ISO_8859_7,
        Hebrew => encoding_rs::ISO_8859_8,
        Cp1250 => encoding_rs::WINDOWS_1250,
        Cp1251 => encoding_rs::WINDOWS_1251,
        Cp1256 => encoding_rs::WINDOWS_1256,
        Cp1257 => encoding_rs::WINDOWS_1257,
        Cp866 => encoding_rs::IBM866,
        Koi8r => encoding_rs::KOI8_R,
        Koi8u => encoding_rs::KOI8_U,
        Macroman => encoding_rs::MACINTOSH,
        Tis620 => encoding_rs::WINDOWS_874,
        // ISO-8859-9; WHATWG's label maps to windows-1254, which has the
        // same letters from A0 up; 80–9F come from the generated data.
        Latin5 => encoding_rs::WINDOWS_1254,
        Big5 => encoding_rs::BIG5,
        Ujis | Eucjpms => encoding_rs::EUC_JP,
        Sjis | Cp932 => encoding_rs::SHIFT_JIS,
        Euckr => encoding_rs::EUC_KR,
        Gb2312 | Gbk => encoding_rs::GBK,
        _ => return None,
    })
}

/// The base decoder's character for one code (`unit` = its bytes), before
/// the server's exceptions: the WHATWG decoder's single character, or for
/// charsets without one, ASCII.
pub fn base_unit(cs: Charset, unit: &[u8]) -> Option<char> {
    match whatwg(cs) {
        Some(enc) => {
            let s = enc.decode_without_bom_handling_and_without_replacement(unit)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        }
        None => match unit {
            [b] if b.is_ascii() => Some(char::from(*b)),
            _ => None,
        },
    }
}

/// The server's exceptions to [`base_unit`] for a charset.
fn exceptions(cs: Charset) -> &'static [(u32, u32, u32)] {
    server_maps::exceptions(cs)
}

/// The character of one code: the server's exception if there is one, else
/// the base decoder's.
pub fn code_char(cs: Charset, unit: &[u8]) -> Option<char> {
    let code = unit.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b));
    let list = exceptions(cs);
    let i = list.partition_point(|&(_, hi, _)| hi < code);
    match list.get(i) {
        Some(&(lo, _, first)) if lo <= code => {
            if first == NONE {
                None
            } else {
                char::from_u32(first + (code - lo))
            }
        }
        _ => base_unit(cs, unit),
    }
}

/// 256-entry tables of the single-byte charsets, built on first use.
fn single_byte_table(cs: Charset) -> &'static [u32; 256] {
    static TABLES: OnceLock<Vec<(Charset, Box<[u32; 256]>)>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        server_maps::CHARSETS
            .iter()
            .filter(|&&c| Structure::of(c) == Some(Structure::SingleByte))
            .map(|&c| {
                let mut t = Box::new([NONE; 256]);
                for (b, slot) in t.iter_mut().enumerate() {
                    *slot = code_char(c, &[b as u8]).map_or(NONE, u32::from);
                }
                (c, t)
            })
            .collect()
    });
    static EMPTY: [u32; 256] = [NONE; 256];
    tables
        .iter()
        .find(|(c, _)| *c == cs)
        .map_or(&EMPTY, |(_, t)| t)
}

/// Index of a multibyte charset's lookup tables.
fn multibyte_slot(cs: Charset) -> Option<usize> {
    use Charset::*;
    Some(match cs {
        Sjis => 0,
        Cp932 => 1,
        Big5 => 2,
        Gbk => 3,
        Gb2312 => 4,
        Euckr => 5,
        Ujis => 6,
        Eucjpms => 7,
        _ => return None,
    })
}

/// The characters of every code of a multibyte charset, by length: one
/// byte, two bytes, and for EUC-JP `8F xx yy` (indexed by `xx yy`); built on
/// first use from [`code_char`] (up to 512 KiB per charset a source uses),
/// so a code costs one lookup instead of a base-decoder call.
type Tables = (Box<[u32]>, Box<[u32]>, Box<[u32]>);

fn multibyte_tables(cs: Charset, slot: usize) -> &'static Tables {
    static TABLES: [OnceLock<Tables>; 8] = [const { OnceLock::new() }; 8];
    TABLES[slot].get_or_init(|| {
        let structure = Structure::of(cs).unwrap_or(Structure::SingleByte);
        let build = |prefix: Option<u8>| -> Box<[u32]> {
            (0..=0xFFFFu32)
                .map(|c| {
                    let mut unit = Vec::with_capacity(3);
                    unit.extend(prefix);
                    unit.extend([(c >> 8) as u8, c as u8]);
                    if unit_len(structure, &unit) == Some(unit.len()) {
                        code_char(cs, &unit).map_or(NONE, u32::from)
                    } else {
                        NONE
                    }
                })
                .collect()
        };
        let one = (0..=0xFFu8)
            .map(|b| {
                if unit_len(structure, &[b]) == Some(1) {
                    code_char(cs, &[b]).map_or(NONE, u32::from)
                } else {
                    NONE
                }
            })
            .collect();
        let three = if structure == Structure::EucJp {
            build(Some(0x8F))
        } else {
            Box::new([])
        };
        (one, build(None), three)
    })
}

/// Decodes a whole value (see the module docs); `None` unless every code has
/// a character.
pub fn decode(cs: Charset, bytes: &[u8]) -> Option<String> {
    let structure = Structure::of(cs)?;
    if structure == Structure::SingleByte {
        // Where the server agrees with the WHATWG decoder on every byte
        // (latin1, latin2, latin7, koi8r, macroman), its fast whole-string
        // decoder gives the same text.
        if exceptions(cs).is_empty() {
            if let Some(enc) = whatwg(cs) {
                return enc
                    .decode_without_bom_handling_and_without_replacement(bytes)
                    .map(|c| c.into_owned());
            }
        }
        let table = single_byte_table(cs);
        if bytes.is_ascii() && (0..128).all(|b| table[b] == b as u32) {
            return Some(String::from_utf8_lossy(bytes).into_owned());
        }
        let mut s = String::with_capacity(bytes.len() + bytes.len() / 2);
        for &b in bytes {
            s.push(char::from_u32(table[usize::from(b)])?);
        }
        return Some(s);
    }
    // ASCII maps to itself unless the data says otherwise (sjis 0x5C).
    let ascii_exact = exceptions(cs).first().is_none_or(|e| e.0 >= 0x80);
    let mut s = String::with_capacity(bytes.len() * 3 / 2);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest[0] < 0x80 && ascii_exact {
            s.push(char::from(rest[0]));
            i += 1;
            continue;
        }
        let n = unit_len(structure, rest)?;
        let c = match multibyte_slot(cs) {
            Some(slot) => {
                let (one, two, three) = multibyte_tables(cs, slot);
                char::from_u32(match n {
                    1 => one[usize::from(rest[0])],
                    2 => two[usize::from(rest[0]) << 8 | usize::from(rest[1])],
                    _ => three[usize::from(rest[1]) << 8 | usize::from(rest[2])],
                })
            }
            None => code_char(cs, &rest[..n]),
        };
        s.push(c?);
        i += n;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding speed per charset. Run with `cargo test --release -p
    /// sluice-binlog decode_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn decode_speed() {
        let cases: [(Charset, &[u8]); 5] = [
            (
                Charset::Utf8mb4,
                "customer café 中文 naïve 12345".as_bytes(),
            ),
            (Charset::Latin1, b"customer caf\xE9 na\xEFve 12345 \x80uro"),
            (Charset::Cp1250, b"z\xB9\xBFd\xB3o customer 12345"),
            (Charset::Sjis, b"\x89\xCD\x8A\xBF\x8E\x9A customer 12345"),
            (Charset::Gbk, b"\xD6\xD0\xCE\xC4 customer 12345"),
        ];
        for (cs, sample) in cases {
            let value: Vec<u8> = sample.iter().copied().cycle().take(64).collect();
            let value = &value[..value.len() - value.len() % sample.len()];
            let rounds = 200_000;
            let t0 = std::time::Instant::now();
            let mut n = 0;
            for _ in 0..rounds {
                n += super::super::decode_str(std::hint::black_box(value), Some(cs))
                    .map_or(0, |s| s.len());
            }
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "{:>8}: {:.0} MB/s ({:.1} M values/s of {} bytes; {n} chars out)",
                cs.name(),
                (value.len() * rounds) as f64 / secs / 1e6,
                rounds as f64 / secs / 1e6,
                value.len()
            );
        }
    }

    #[test]
    fn structure_cuts_codes() {
        assert_eq!(unit_len(Structure::ShiftJis, b"\x81\x5F"), Some(2));
        assert_eq!(unit_len(Structure::ShiftJis, b"\xA1"), Some(1));
        assert_eq!(unit_len(Structure::ShiftJis, b"\x80"), None);
        assert_eq!(unit_len(Structure::ShiftJis, b"\x81"), None, "lone lead");
        assert_eq!(unit_len(Structure::Big5, b"\xA2\x47"), Some(2));
        assert_eq!(unit_len(Structure::Big5, b"\x87\x40"), None, "HKSCS");
        assert_eq!(unit_len(Structure::EucJp, b"\x8F\xA2\xB7"), Some(3));
        assert_eq!(unit_len(Structure::EucJp, b"\x8E\xB1"), Some(2));
        assert_eq!(unit_len(Structure::Gb2312, b"\x81\x40"), None);
        assert_eq!(unit_len(Structure::Gbk, b"\x81\x40"), Some(2));
    }
}
