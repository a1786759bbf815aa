//! Column charsets: collation id → charset, and charset bytes → UTF-8.
//!
//! Invariants:
//! * Text is decoded from the column's own charset to UTF-8 **exactly as the
//!   server converts it** (`CONVERT(col USING utf8mb4)`), and **without
//!   replacement characters**: bytes the server cannot convert, or that it
//!   would not convert back to the same bytes, are kept as
//!   [`Value::Bytes`] (never lose data, never invent characters). The loader
//!   writes bytes verbatim (the server does not convert from `binary`), so
//!   such a value still reaches the target byte for byte.
//! * The `binary` charset (collation 63) is always bytes.
//! * An unknown collation (no metadata, or an id this table does not know)
//!   gives text when the bytes are valid UTF-8 and bytes otherwise.
//!
//! The collation table was built from a real server
//! (`SELECT ID, CHARACTER_SET_NAME FROM
//! information_schema.COLLATION_CHARACTER_SET_APPLICABILITY` on MariaDB
//! 10.11, which includes the 10.10+ UCA-14.0 ids ≥ 2048 and the `_nopad`
//! ids ≥ 1024) plus MySQL 8.0's own ids: 76 (`utf8mb3_tolower_ci`),
//! 248–250 (gb18030) and 255–323 (utf8mb4 `_0900` collations). Ids below 256
//! mean the same charset on both servers.
//!
//! # The server's own mappings
//!
//! The legacy charsets are not the WHATWG encodings of the same name:
//! MariaDB's `sjis` is JIS X 0208 where `0x815F` is U+005C (WHATWG
//! Shift_JIS, i.e. cp932, says U+FF3C) and `〜‖−¢£¬` are not their
//! full-width forms; its `big5` lacks HKSCS and maps `£` at `A247` and
//! `¢¥‾∼` differently; `ujis`/`eucjpms` differ in JIS X 0212 and the user
//! rows; `greek`, `hebrew`, `koi8u`, `cp866`, `tis620` differ in a few bytes;
//! `dec8`, `cp850`, `hp8`, `keybcs2`, `cp852`, `macce`, `armscii8`,
//! `geostd8`, `swe7` have no WHATWG decoder at all. And some byte sequences
//! do not survive the server's own round trip (sjis `0x5C` reads as `\`, but
//! `\` is written as `0x815F`; cp932's NEC/IBM duplicates; big5 codes the
//! server reads as U+FFFD).
//!
//! So every legacy charset decodes by [`maps`]: the server's byte structure
//! (lead/trail byte ranges, the `ismbchar_*`/`my_mb_wc_*` rules of MariaDB's
//! `strings/ctype-*.c`), a WHATWG decoder from `encoding_rs` as the base
//! where one is close, and a generated list of every code where the server
//! says otherwise ([`server_maps`]: a different character, no character, or
//! no round trip). The list was derived from a live MariaDB by asking it to
//! convert every code point (`fidelity::regenerate_charset_maps`, an ignored
//! e2e test, writes `server_maps.rs`), and `fidelity::charset_maps_match_the_server`
//! checks in CI that decoding equals the server's conversion for every
//! single-, double- and triple-byte code of every charset. `gb18030` (MySQL
//! only, no MariaDB to derive from) decodes with the WHATWG GB18030 decoder;
//! `ucs2`, `utf16`, `utf16le`, `utf32` are decoded here.

use sluice_core::{Column, Value};

pub mod maps;
mod server_maps;

/// "No character" in an exception range and in the single-byte tables of
/// [`maps`] (here, not in `maps`, so the generated [`server_maps`] needs
/// nothing from the code that reads it).
pub const NONE: u32 = u32::MAX;

/// A MySQL/MariaDB character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    Big5,
    Latin2,
    Dec8,
    Cp850,
    Latin1,
    Hp8,
    Koi8r,
    Swe7,
    Ascii,
    Ujis,
    Sjis,
    Cp1251,
    Hebrew,
    Tis620,
    Euckr,
    Latin7,
    Koi8u,
    Gb2312,
    Greek,
    Cp1250,
    Gbk,
    Cp1257,
    Latin5,
    Armscii8,
    Utf8mb3,
    Ucs2,
    Cp866,
    Keybcs2,
    Macce,
    Macroman,
    Cp852,
    Utf8mb4,
    Utf16,
    Utf16le,
    Cp1256,
    Utf32,
    Binary,
    Geostd8,
    Cp932,
    Eucjpms,
    Gb18030,
}

impl Charset {
    /// The charset of a collation id, or `None` for an id this table does
    /// not know.
    pub fn from_collation(id: u16) -> Option<Charset> {
        use Charset::*;
        Some(match id {
            1 | 84 | 1025 | 1108 => Big5,
            2 | 9 | 21 | 27 | 77 | 1033 | 1101 => Latin2,
            3 | 69 | 1027 | 1093 => Dec8,
            4 | 80 | 1028 | 1104 => Cp850,
            5 | 8 | 15 | 31 | 47..=49 | 94 | 1032 | 1071 => Latin1,
            6 | 72 | 1030 | 1096 => Hp8,
            7 | 74 | 1031 | 1098 => Koi8r,
            10 | 82 | 1034 | 1106 => Swe7,
            11 | 65 | 1035 | 1089 => Ascii,
            12 | 91 | 1036 | 1115 => Ujis,
            13 | 88 | 1037 | 1112 => Sjis,
            14 | 23 | 50..=52 | 1074..=1075 => Cp1251,
            16 | 71 | 1040 | 1095 => Hebrew,
            18 | 89 | 1042 | 1113 => Tis620,
            19 | 85 | 1043 | 1109 => Euckr,
            20 | 41..=42 | 79 | 1065 | 1103 => Latin7,
            22 | 75 | 1046 | 1099 => Koi8u,
            24 | 86 | 1048 | 1110 => Gb2312,
            25 | 70 | 1049 | 1094 => Greek,
            26 | 34 | 44 | 66 | 99 | 1050 | 1090 => Cp1250,
            28 | 87 | 1052 | 1111 => Gbk,
            29 | 58..=59 | 1082..=1083 => Cp1257,
            30 | 78 | 1054 | 1102 => Latin5,
            32 | 64 | 1056 | 1088 => Armscii8,
            33
            | 76
            | 83
            | 192..=215
            | 223
            | 576..=578
            | 1057
            | 1107
            | 1216
            | 1238
            | 2048..=2215
            | 2232..=2247 => Utf8mb3,
            35
            | 90
            | 128..=151
            | 159
            | 640..=642
            | 1059
            | 1114
            | 1152
            | 1174
            | 2560..=2727
            | 2744..=2759 => Ucs2,
            36 | 68 | 1060 | 1092 => Cp866,
            37 | 73 | 1061 | 1097 => Keybcs2,
            38 | 43 | 1062 | 1067 => Macce,
            39 | 53 | 1063 | 1077 => Macroman,
            40 | 81 | 1064 | 1105 => Cp852,
            45..=46
            | 224..=247
            | 255..=323
            | 608..=610
            | 1069..=1070
            | 1248
            | 1270
            | 2304..=2471
            | 2488..=2503 => Utf8mb4,
            54..=55
            | 101..=124
            | 672..=674
            | 1078..=1079
            | 1125
            | 1147
            | 2816..=2983
            | 3000..=3015 => Utf16,
            56 | 62 | 1080 | 1086 => Utf16le,
            57 | 67 | 1081 | 1091 => Cp1256,
            60..=61
            | 160..=183
            | 736..=738
            | 1084..=1085
            | 1184
            | 1206
            | 3072..=3239
            | 3256..=3271 => Utf32,
            63 => Binary,
            92..=93 | 1116..=1117 => Geostd8,
            95..=96 | 1119..=1120 => Cp932,
            97..=98 | 1121..=1122 => Eucjpms,
            248..=250 => Gb18030,
            _ => return None,
        })
    }

    /// The charset of a column: `None` when the collation is unknown.
    pub fn of_column(column: &Column) -> Option<Charset> {
        column.collation.and_then(Charset::from_collation)
    }

    /// The server's name for the charset (`SET NAMES`, `CHARACTER SET`).
    pub fn name(self) -> &'static str {
        use Charset::*;
        match self {
            Big5 => "big5",
            Latin2 => "latin2",
            Dec8 => "dec8",
            Cp850 => "cp850",
            Latin1 => "latin1",
            Hp8 => "hp8",
            Koi8r => "koi8r",
            Swe7 => "swe7",
            Ascii => "ascii",
            Ujis => "ujis",
            Sjis => "sjis",
            Cp1251 => "cp1251",
            Hebrew => "hebrew",
            Tis620 => "tis620",
            Euckr => "euckr",
            Latin7 => "latin7",
            Koi8u => "koi8u",
            Gb2312 => "gb2312",
            Greek => "greek",
            Cp1250 => "cp1250",
            Gbk => "gbk",
            Cp1257 => "cp1257",
            Latin5 => "latin5",
            Armscii8 => "armscii8",
            Utf8mb3 => "utf8mb3",
            Ucs2 => "ucs2",
            Cp866 => "cp866",
            Keybcs2 => "keybcs2",
            Macce => "macce",
            Macroman => "macroman",
            Cp852 => "cp852",
            Utf8mb4 => "utf8mb4",
            Utf16 => "utf16",
            Utf16le => "utf16le",
            Cp1256 => "cp1256",
            Utf32 => "utf32",
            Binary => "binary",
            Geostd8 => "geostd8",
            Cp932 => "cp932",
            Eucjpms => "eucjpms",
            Gb18030 => "gb18030",
        }
    }
}

/// Decodes a character value: [`Value::Text`] when the bytes are valid in
/// `charset` (`None` = unknown: valid UTF-8), [`Value::Bytes`] otherwise or
/// for the binary charset.
pub fn decode_text(bytes: &[u8], charset: Option<Charset>) -> Value {
    match decode_str(bytes, charset) {
        Some(s) => Value::Text(s),
        None => Value::Bytes(bytes.to_vec()),
    }
}

/// Like [`decode_text`] but takes ownership, so UTF-8 text is not copied.
pub fn decode_text_owned(bytes: Vec<u8>, charset: Option<Charset>) -> Value {
    match charset {
        None | Some(Charset::Utf8mb3 | Charset::Utf8mb4) => match String::from_utf8(bytes) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        Some(Charset::Binary) => Value::Bytes(bytes),
        Some(_) => match decode_str(&bytes, charset) {
            Some(s) => Value::Text(s),
            None => Value::Bytes(bytes),
        },
    }
}

/// The UTF-8 text of `bytes` in `charset`, or `None` when they are not valid
/// text in it (or the charset is binary, or the server would not convert
/// them back to the same bytes).
pub fn decode_str(bytes: &[u8], charset: Option<Charset>) -> Option<String> {
    use Charset::*;
    let Some(cs) = charset else {
        return std::str::from_utf8(bytes).ok().map(str::to_owned);
    };
    match cs {
        Utf8mb3 | Utf8mb4 => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Binary => None,
        Ucs2 => decode_ucs2(bytes),
        Utf16 => decode_utf16(bytes, u16::from_be_bytes),
        Utf16le => decode_utf16(bytes, u16::from_le_bytes),
        Utf32 => decode_utf32(bytes),
        Gb18030 => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|c| c.into_owned()),
        _ => maps::decode(cs, bytes),
    }
}

/// UCS-2 big-endian: BMP only, so a surrogate code unit is invalid.
fn decode_ucs2(bytes: &[u8]) -> Option<String> {
    if bytes.len() & 1 != 0 {
        return None;
    }
    let mut s = String::with_capacity(bytes.len());
    for pair in bytes.chunks_exact(2) {
        let unit = u16::from_be_bytes([pair[0], pair[1]]);
        s.push(char::from_u32(u32::from(unit))?);
    }
    Some(s)
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    if bytes.len() & 1 != 0 {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|p| unit([p[0], p[1]]));
    let mut s = String::with_capacity(bytes.len());
    for c in char::decode_utf16(units) {
        s.push(c.ok()?);
    }
    Some(s)
}

/// UTF-32 big-endian, four bytes per code point.
fn decode_utf32(bytes: &[u8]) -> Option<String> {
    if bytes.len() & 3 != 0 {
        return None;
    }
    let mut s = String::with_capacity(bytes.len());
    for q in bytes.chunks_exact(4) {
        s.push(char::from_u32(u32::from_be_bytes([
            q[0], q[1], q[2], q[3],
        ]))?);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], id: u16) -> Value {
        decode_text(bytes, Charset::from_collation(id))
    }

    #[test]
    fn collation_ids() {
        assert_eq!(Charset::from_collation(8), Some(Charset::Latin1));
        assert_eq!(Charset::from_collation(33), Some(Charset::Utf8mb3));
        assert_eq!(Charset::from_collation(45), Some(Charset::Utf8mb4));
        assert_eq!(Charset::from_collation(63), Some(Charset::Binary));
        assert_eq!(Charset::from_collation(255), Some(Charset::Utf8mb4));
        assert_eq!(Charset::from_collation(323), Some(Charset::Utf8mb4));
        assert_eq!(Charset::from_collation(248), Some(Charset::Gb18030));
        assert_eq!(Charset::from_collation(2304), Some(Charset::Utf8mb4));
        assert_eq!(Charset::from_collation(2048), Some(Charset::Utf8mb3));
        assert_eq!(Charset::from_collation(1071), Some(Charset::Latin1));
        assert_eq!(Charset::from_collation(17), None);
        assert_eq!(Charset::from_collation(9999), None);
        assert_eq!(Charset::Utf8mb4.name(), "utf8mb4");
    }

    #[test]
    fn latin1_is_cp1252_with_c1_holes() {
        // E5: 'café ñ' and 'Ÿ€ señor'.
        assert_eq!(
            text(&[0x63, 0x61, 0x66, 0xE9, 0x20, 0xF1], 8),
            Value::Text("café ñ".into())
        );
        assert_eq!(
            text(&[0x9F, 0x80, 0x20, 0x73, 0x65, 0xF1, 0x6F, 0x72], 8),
            Value::Text("Ÿ€ señor".into())
        );
        // Every byte maps: the holes are C1 controls.
        assert_eq!(
            text(&[0x81, 0x8D, 0x8F, 0x90, 0x9D], 8),
            Value::Text("\u{81}\u{8D}\u{8F}\u{90}\u{9D}".into())
        );
        let all: Vec<u8> = (0..=255).collect();
        let Value::Text(s) = text(&all, 8) else {
            panic!("latin1 must decode every byte")
        };
        assert_eq!(s.chars().count(), 256);
    }

    #[test]
    fn unicode_charsets() {
        // E6: ucs2 big-endian.
        assert_eq!(
            text(&[0, 0x68, 0, 0xE9, 0, 0x6C, 0, 0x6C, 0, 0x6F], 35),
            Value::Text("héllo".into())
        );
        // A surrogate is not UCS-2.
        assert!(matches!(
            text(&[0xD8, 0x3D, 0xDE, 0x00], 35),
            Value::Bytes(_)
        ));
        // utf16 with a surrogate pair: 😀 U+1F600.
        assert_eq!(
            text(&[0xD8, 0x3D, 0xDE, 0x00], 54),
            Value::Text("😀".into())
        );
        assert_eq!(
            text(&[0x3D, 0xD8, 0x00, 0xDE], 56),
            Value::Text("😀".into())
        );
        assert_eq!(
            text(&[0, 1, 0xF6, 0, 0, 0, 0, 0x41], 60),
            Value::Text("😀A".into())
        );
        assert!(matches!(text(&[0, 0x11, 0, 0], 60), Value::Bytes(_)));
        assert!(matches!(text(&[0, 0x41, 0], 35), Value::Bytes(_)));
        // E7: utf8mb4.
        let b = "123abc中文😀".as_bytes();
        assert_eq!(text(b, 224), Value::Text("123abc中文😀".into()));
        assert_eq!(
            text(&[0xFF, 0xFE], 45),
            Value::Bytes(vec![0xFF, 0xFE]),
            "invalid UTF-8 stays bytes"
        );
    }

    #[test]
    fn cjk_charsets() {
        // E8: gbk / gb18030.
        assert_eq!(
            text(b"123abc\xD6\xD0\xCE\xC4", 28),
            Value::Text("123abc中文".into())
        );
        assert_eq!(
            text(b"123abc\xD6\xD0\xCE\xC4\x94\x39\xFC\x36", 248),
            Value::Text("123abc中文😀".into())
        );
        // big5 圖形碼, ujis 河, sjis/cp932 and euckr.
        assert_eq!(text("圖形碼".as_bytes(), 45), Value::Text("圖形碼".into()));
        assert_eq!(
            text(b"\xB9\xCF\xA7\xCE\xBD\x58", 1),
            Value::Text("圖形碼".into())
        );
        assert_eq!(text(b"\xB2\xCF", 12), Value::Text("河".into()));
        assert_eq!(text(b"\x89\xCD", 13), Value::Text("河".into()));
        assert_eq!(text(b"\xC7\xD1\xB1\xDB", 19), Value::Text("한글".into()));
        // A lone lead byte is invalid: bytes, not U+FFFD.
        assert_eq!(text(b"\xD6", 28), Value::Bytes(vec![0xD6]));
        // sjis is not cp932 (issue 20): JIS X 0208 as the server maps it,
        // and 0x5C, which the server would write back as 0x815F, stays bytes.
        assert_eq!(text(b"\x81\x5F", 13), Value::Text("\\".into()));
        assert_eq!(text(b"\x81\x5F", 95), Value::Text("＼".into()));
        assert_eq!(text(b"C:\x5C", 13), Value::Bytes(b"C:\x5C".to_vec()));
        assert_eq!(text(b"\x87\x40", 13), Value::Bytes(vec![0x87, 0x40]));
        // big5: £ at A247, no HKSCS.
        assert_eq!(text(b"\xA2\x47", 1), Value::Text("£".into()));
        assert_eq!(text(b"\x87\x40", 1), Value::Bytes(vec![0x87, 0x40]));
    }

    #[test]
    fn single_byte_charsets() {
        assert_eq!(text(b"\xC0\xE1", 14), Value::Text("Аб".into()));
        assert_eq!(text(b"\xD0\xDD\xFE", 30), Value::Text("Ğİş".into()));
        assert_eq!(text(b"\xE1\xE2", 7), Value::Text("АБ".into()));
        assert_eq!(text(b"plain", 3), Value::Text("plain".into()));
        // dec8 (DEC MCS) and swe7 have no WHATWG decoder: the server's data.
        assert_eq!(text(b"\xE9", 3), Value::Text("é".into()));
        assert_eq!(text(b"abc", 11), Value::Text("abc".into()));
        assert_eq!(text(b"ab\x80", 11), Value::Bytes(b"ab\x80".to_vec()));
        assert_eq!(text(b"a{", 10), Value::Text("aä".into()));
        assert_eq!(text(b"\x7F", 10), Value::Bytes(vec![0x7F]));
        // tis620: 0xA0 has no character on the server.
        assert_eq!(text(b"\xA0", 18), Value::Bytes(vec![0xA0]));
        // greek is ISO-8859-7:1987 on the server: A1 is U+02BD, not U+2018.
        assert_eq!(text(b"\xA1", 25), Value::Text("\u{2BD}".into()));
        assert_eq!(text(b"\xA1", 18), Value::Text("ก".into()));
    }

    #[test]
    fn binary_and_unknown() {
        assert_eq!(text(b"abc", 63), Value::Bytes(b"abc".to_vec()));
        assert_eq!(
            decode_text(b"abc", None),
            Value::Text("abc".into()),
            "unknown collation: valid UTF-8 is text"
        );
        assert_eq!(decode_text(b"\xFF", None), Value::Bytes(vec![0xFF]));
        assert_eq!(
            decode_text_owned(b"\xFFa".to_vec(), None),
            Value::Bytes(b"\xFFa".to_vec())
        );
        assert_eq!(
            decode_text_owned("é".as_bytes().to_vec(), Some(Charset::Utf8mb4)),
            Value::Text("é".into())
        );
        assert_eq!(
            decode_text_owned(vec![0xE9], Some(Charset::Latin1)),
            Value::Text("é".into())
        );
    }
}
