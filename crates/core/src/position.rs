//! Where the pipeline stands in a source's binlog.
//!
//! A [`Position`] names the binlog file and the offset of the **next** event
//! to read, so resuming from it never re-reads the event it was taken after.
//! It may also carry the GTID set executed up to that point (which, when
//! present, is what a reconnect uses: GTIDs survive failover, file offsets do
//! not), the `server_id` of the source that wrote the binlog, and the unix
//! timestamp (seconds) of the last event, for lag reporting.
//!
//! # Invariants
//!
//! * `file` is non-empty, has no leading or trailing whitespace and no control
//!   characters — checked whenever a position is read from text or JSON, so a
//!   stored position is always one that can be written back out and read in.
//! * Text and JSON round-trip exactly (`Display` → `FromStr`, serde → serde).
//!
//! # Text form
//!
//! One line, fields separated by whitespace:
//!
//! ```text
//! mysql-bin.000003:1234 gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5 server_id=1 ts=1700000000
//! ```
//!
//! The head is `<file>:<offset>`, split at the **last** `:` so that a file
//! name may itself contain colons. Then optional `key=value` fields in any
//! order, each at most once: `gtid=` ([`GtidSet`] text, see its docs; an empty
//! set is `gtid=mysql:` or `gtid=mariadb:`), `server_id=` and `ts=` (decimal,
//! 32-bit). Whitespace is the separator because GTID sets contain `,`, `:` and
//! `-` but never `=` or whitespace in canonical form; for robustness, a
//! `gtid=` value may still be followed by further whitespace-separated words
//! without `=` (MySQL prints sets with `,\n` between UUIDs, so a pasted set
//! keeps working). A token is a field when it starts with `[a-z_]+=`; any
//! other token before the first field belongs to the head, so file names with
//! inner spaces survive too.
//!
//! # Ordering
//!
//! Positions are not totally ordered: two files of different base names (the
//! server's `log_bin` base name changed) cannot be compared, and neither can
//! GTID sets in general. [`Position::cmp_file_offset`] therefore returns an
//! `Option`, and callers must treat `None` as "unknown", never as "equal".

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};
use crate::gtid::{GtidParseError, GtidSet};

const FIELD_GTID: &str = "gtid";
const FIELD_SERVER_ID: &str = "server_id";
const FIELD_TIMESTAMP: &str = "ts";

/// A point in a source's binlog; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PositionJson")]
pub struct Position {
    /// Binlog file name, e.g. `mysql-bin.000003`.
    pub file: String,
    /// Offset in `file` of the next event to read.
    pub offset: u64,
    /// GTIDs executed up to (not including) `offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtid: Option<GtidSet>,
    /// `server_id` of the server that wrote the last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u32>,
    /// Unix timestamp (seconds) of the last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u32>,
}

/// The JSON shape, deserialised first and then validated into a [`Position`].
/// Unknown fields are refused: a position is what decides which changes are
/// replayed, and a field this version does not understand could change that
/// meaning, so guessing is worse than stopping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionJson {
    file: String,
    offset: u64,
    #[serde(default)]
    gtid: Option<GtidSet>,
    #[serde(default)]
    server_id: Option<u32>,
    #[serde(default)]
    timestamp: Option<u32>,
}

impl TryFrom<PositionJson> for Position {
    type Error = PositionParseError;

    fn try_from(json: PositionJson) -> Result<Self, Self::Error> {
        check_file_name(&json.file)?;
        Ok(Position {
            file: json.file,
            offset: json.offset,
            gtid: json.gtid,
            server_id: json.server_id,
            timestamp: json.timestamp,
        })
    }
}

/// Why text or JSON is not a [`Position`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionParseError {
    #[error("empty position; expected `<binlog file>:<offset>`")]
    Empty,
    #[error("`{text}` is not `<binlog file>:<offset>`")]
    MissingOffset { text: String },
    #[error("binlog file name `{file}` {reason}")]
    BadFileName { file: String, reason: &'static str },
    #[error("binlog offset `{text}` is not a decimal number that fits in 64 bits")]
    BadOffset { text: String },
    #[error("`{field}={text}`: not a decimal number that fits in 32 bits")]
    BadNumber { field: &'static str, text: String },
    #[error("unknown position field `{field}=`; expected gtid=, server_id= or ts=")]
    UnknownField { field: String },
    #[error("position field `{field}=` appears twice")]
    DuplicateField { field: String },
    #[error("unexpected `{text}` in position; fields are `key=value`")]
    UnexpectedText { text: String },
    #[error("position field gtid=: {0}")]
    Gtid(#[from] GtidParseError),
}

impl Classify for PositionParseError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Definite
    }
}

impl Position {
    /// A position with just a file and offset.
    pub fn new(file: impl Into<String>, offset: u64) -> Self {
        Position {
            file: file.into(),
            offset,
            gtid: None,
            server_id: None,
            timestamp: None,
        }
    }

    /// Compares the binlog coordinates (file, then offset) of two positions;
    /// `None` when the files cannot be ordered (see
    /// [`cmp_binlog_file_names`]). GTID sets, server ids and timestamps are
    /// ignored.
    pub fn cmp_file_offset(&self, other: &Position) -> Option<Ordering> {
        Some(cmp_binlog_file_names(&self.file, &other.file)?.then(self.offset.cmp(&other.offset)))
    }
}

/// Orders binlog file names the way the server creates them.
///
/// Names are `<base>.<number>`; the number is zero-padded to six digits but
/// keeps growing past `999999` (`mysql-bin.1000000`), so a plain string
/// comparison would be wrong and the numbers are compared numerically — by
/// digit count and then digits, so that any length works without overflow.
/// Identical names are equal. Returns `None` when the bases differ or a name
/// has no numeric suffix: the server restarts numbering under a new base
/// name, so there is no order to report.
pub fn cmp_binlog_file_names(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let (base_a, num_a) = split_binlog_file_name(a)?;
    let (base_b, num_b) = split_binlog_file_name(b)?;
    if base_a != base_b {
        return None;
    }
    let num_a = num_a.trim_start_matches('0');
    let num_b = num_b.trim_start_matches('0');
    Some(num_a.len().cmp(&num_b.len()).then(num_a.cmp(num_b)))
}

/// Splits `mysql-bin.000003` into `("mysql-bin", "000003")`.
fn split_binlog_file_name(name: &str) -> Option<(&str, &str)> {
    let (base, number) = name.rsplit_once('.')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some((base, number))
}

fn check_file_name(file: &str) -> Result<(), PositionParseError> {
    let bad = |reason| PositionParseError::BadFileName {
        file: file.to_owned(),
        reason,
    };
    if file.is_empty() {
        return Err(bad("is empty"));
    }
    if file.trim() != file {
        return Err(bad("has leading or trailing whitespace"));
    }
    if file.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(())
}

/// Whether a whitespace-separated token starts a `key=value` field.
fn field_key(token: &str) -> Option<&str> {
    let (key, _) = token.split_once('=')?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(key)
}

/// Whitespace-separated tokens of `text` with their byte ranges, so that a
/// value spanning several tokens can be taken from `text` with its original
/// spacing.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

fn parse_u32(field: &'static str, text: &str) -> Result<u32, PositionParseError> {
    let bad = || PositionParseError::BadNumber {
        field,
        text: text.to_owned(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let tokens = tokens(text);
        let Some(&(_, first_end)) = tokens.first() else {
            return Err(PositionParseError::Empty);
        };

        // Head: the first token plus any following tokens that are not
        // fields (a file name with spaces).
        let mut i = 1;
        let mut head_end = first_end;
        while let Some(&(start, end)) = tokens.get(i) {
            if field_key(&text[start..end]).is_some() {
                break;
            }
            head_end = end;
            i += 1;
        }
        let head = &text[..head_end];
        let (file, offset_text) =
            head.rsplit_once(':')
                .ok_or_else(|| PositionParseError::MissingOffset {
                    text: head.to_owned(),
                })?;
        check_file_name(file)?;
        if offset_text.is_empty() || !offset_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PositionParseError::BadOffset {
                text: offset_text.to_owned(),
            });
        }
        let offset = offset_text
            .parse()
            .map_err(|_| PositionParseError::BadOffset {
                text: offset_text.to_owned(),
            })?;
        let mut position = Position::new(file, offset);

        let mut seen: Vec<&str> = Vec::new();
        while let Some(&(start, end)) = tokens.get(i) {
            i += 1;
            let token = &text[start..end];
            let Some(key) = field_key(token) else {
                return Err(PositionParseError::UnexpectedText {
                    text: token.to_owned(),
                });
            };
            if seen.contains(&key) {
                return Err(PositionParseError::DuplicateField {
                    field: key.to_owned(),
                });
            }
            seen.push(key);
            let value_start = start + key.len() + 1;
            match key {
                FIELD_GTID => {
                    // The set runs on over following non-field tokens.
                    let mut value_end = end;
                    while let Some(&(next_start, next_end)) = tokens.get(i) {
                        if field_key(&text[next_start..next_end]).is_some() {
                            break;
                        }
                        value_end = next_end;
                        i += 1;
                    }
                    position.gtid = Some(text[value_start..value_end].parse()?);
                }
                FIELD_SERVER_ID => {
                    position.server_id = Some(parse_u32(FIELD_SERVER_ID, &text[value_start..end])?);
                }
                FIELD_TIMESTAMP => {
                    position.timestamp = Some(parse_u32(FIELD_TIMESTAMP, &text[value_start..end])?);
                }
                _ => {
                    return Err(PositionParseError::UnknownField {
                        field: key.to_owned(),
                    })
                }
            }
        }
        Ok(position)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)?;
        if let Some(gtid) = &self.gtid {
            write!(f, " {FIELD_GTID}={gtid}")?;
        }
        if let Some(server_id) = self.server_id {
            write!(f, " {FIELD_SERVER_ID}={server_id}")?;
        }
        if let Some(ts) = self.timestamp {
            write!(f, " {FIELD_TIMESTAMP}={ts}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtid::{MariadbGtidSet, MysqlGtidSet};

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "55778904-0299-11f1-b1b8-4ef0c4956feb";

    fn parse(text: &str) -> Position {
        match text.parse() {
            Ok(p) => p,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn gtid(text: &str) -> GtidSet {
        text.parse().expect("valid GTID set")
    }

    fn full() -> Position {
        Position {
            file: "mysql-bin.000003".into(),
            offset: 1234,
            gtid: Some(gtid(&format!("{U1}:1-5:7-9,{U2}:1-13:mytag:1-2"))),
            server_id: Some(1),
            timestamp: Some(1_700_000_000),
        }
    }

    fn samples() -> Vec<Position> {
        let mut with_mariadb = Position::new("mariadb-bin.000001", 4);
        with_mariadb.gtid = Some(gtid("0-1-100,1-2-5"));
        let mut empty_mysql = Position::new("binlog.1000000", u64::MAX);
        empty_mysql.gtid = Some(GtidSet::Mysql(MysqlGtidSet::new()));
        let mut empty_mariadb = Position::new("mariadb-bin.000002", 0);
        empty_mariadb.gtid = Some(GtidSet::Mariadb(MariadbGtidSet::new()));
        empty_mariadb.server_id = Some(u32::MAX);
        let mut only_ts = Position::new("odd name:with colon.000007", 5);
        only_ts.timestamp = Some(0);
        vec![
            full(),
            Position::new("mysql-bin.000003", 4),
            with_mariadb,
            empty_mysql,
            empty_mariadb,
            only_ts,
        ]
    }

    #[test]
    fn display_form() {
        assert_eq!(
            full().to_string(),
            format!(
                "mysql-bin.000003:1234 gtid={U1}:1-5:7-9,{U2}:1-13:mytag:1-2 server_id=1 ts=1700000000"
            )
        );
        assert_eq!(
            Position::new("mysql-bin.000003", 4).to_string(),
            "mysql-bin.000003:4"
        );
    }

    #[test]
    fn text_round_trip() {
        for p in samples() {
            let text = p.to_string();
            assert_eq!(parse(&text), p, "{text}");
        }
    }

    #[test]
    fn json_round_trip_skips_none() {
        for p in samples() {
            let json = serde_json::to_string(&p).expect("serialise");
            let back: Position = serde_json::from_str(&json).expect(&json);
            assert_eq!(back, p, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Position::new("mysql-bin.000003", 4)).expect("serialise"),
            r#"{"file":"mysql-bin.000003","offset":4}"#
        );
        let json = serde_json::to_value(full()).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "file": "mysql-bin.000003",
                "offset": 1234,
                "gtid": format!("{U1}:1-5:7-9,{U2}:1-13:mytag:1-2"),
                "server_id": 1,
                "timestamp": 1_700_000_000u32,
            })
        );
    }

    #[test]
    fn json_is_validated() {
        for bad in [
            r#"{"file":"","offset":4}"#,
            r#"{"file":"a.1","offset":4,"extra":1}"#,
            r#"{"file":"a.1"}"#,
            r#"{"file":"a.1","offset":-1}"#,
            r#"{"file":"a.1","offset":4,"gtid":""}"#,
            r#"{"file":"a.1","offset":4,"gtid":"0-1"}"#,
            r#"{"file":"a.1","offset":4,"server_id":4294967296}"#,
        ] {
            assert!(serde_json::from_str::<Position>(bad).is_err(), "{bad}");
        }
        let p: Position =
            serde_json::from_str(r#"{"file":"a.1","offset":4,"gtid":null}"#).expect("null is none");
        assert_eq!(p, Position::new("a.1", 4));
    }

    #[test]
    fn text_parsing_is_lenient_where_safe() {
        // Fields in any order, extra whitespace, MySQL's `,\n` inside a set.
        let text = format!(
            "  mysql-bin.000003:1234   ts=1700000000 server_id=1\tgtid={U1}:1-5:7-9,\n{U2}:1-13:MYTAG:1-2 \n"
        );
        assert_eq!(parse(&text), full());
        // A file name with inner spaces.
        let p = parse("my bin.000001:4 server_id=2");
        assert_eq!(p.file, "my bin.000001");
        assert_eq!(parse(&p.to_string()), p);
    }

    #[test]
    fn text_errors_name_what_is_wrong() {
        use PositionParseError as E;
        let err = |t: &str| t.parse::<Position>().expect_err(t);
        assert_eq!(err(""), E::Empty);
        assert_eq!(err("   "), E::Empty);
        assert_eq!(
            err("mysql-bin.000003"),
            E::MissingOffset {
                text: "mysql-bin.000003".into()
            }
        );
        assert!(matches!(err(":4"), E::BadFileName { .. }));
        assert_eq!(err("a.1:x"), E::BadOffset { text: "x".into() });
        assert_eq!(err("a.1:"), E::BadOffset { text: "".into() });
        assert_eq!(err("a.1:+4"), E::BadOffset { text: "+4".into() });
        assert_eq!(
            err("a.1:18446744073709551616"),
            E::BadOffset {
                text: "18446744073709551616".into()
            }
        );
        assert_eq!(
            err("a.1:4 junk"),
            E::BadOffset {
                text: "4 junk".into()
            }
        );
        assert_eq!(
            err("a.1:4 server_id=1 junk"),
            E::UnexpectedText {
                text: "junk".into()
            }
        );
        assert_eq!(
            err("a.1:4 server_id=-1"),
            E::BadNumber {
                field: "server_id",
                text: "-1".into()
            }
        );
        assert_eq!(
            err("a.1:4 ts=4294967296"),
            E::BadNumber {
                field: "ts",
                text: "4294967296".into()
            }
        );
        assert_eq!(
            err("a.1:4 ts=1 ts=2"),
            E::DuplicateField { field: "ts".into() }
        );
        assert_eq!(
            err("a.1:4 file=b"),
            E::UnknownField {
                field: "file".into()
            }
        );
        assert!(matches!(err("a.1:4 gtid="), E::Gtid(_)));
        assert!(matches!(err(&format!("a.1:4 gtid={U1}:0")), E::Gtid(_)));
        let message = err("a.1:4 gtid=0-1-2,0-1-3").to_string();
        assert!(message.contains("domain 0 appears twice"), "{message}");
        assert_eq!(err("a.1:x").class(), ErrorClass::Definite);
    }

    #[test]
    fn binlog_file_names_order_numerically() {
        use Ordering::*;
        let cmp = cmp_binlog_file_names;
        assert_eq!(cmp("mysql-bin.000009", "mysql-bin.000010"), Some(Less));
        assert_eq!(cmp("mysql-bin.000010", "mysql-bin.000009"), Some(Greater));
        assert_eq!(cmp("mysql-bin.999999", "mysql-bin.1000000"), Some(Less));
        assert_eq!(cmp("mysql-bin.1000001", "mysql-bin.1000000"), Some(Greater));
        assert_eq!(
            cmp("mysql-bin.000001", "mysql-bin.99999999999999999999999"),
            Some(Less)
        );
        assert_eq!(cmp("mysql-bin.000003", "mysql-bin.000003"), Some(Equal));
        assert_eq!(cmp("a.b.000002", "a.b.000010"), Some(Less));
        // Not comparable: different bases, no numeric suffix.
        assert_eq!(cmp("mysql-bin.000001", "binlog.000002"), None);
        assert_eq!(cmp("mysql-bin", "mysql-bin.000002"), None);
        assert_eq!(cmp("mysql-bin.", "mysql-bin.000002"), None);
        // … except a name is always equal to itself.
        assert_eq!(cmp("weird", "weird"), Some(Equal));
    }

    #[test]
    fn positions_order_by_file_then_offset() {
        use Ordering::*;
        let p = |file: &str, offset| Position::new(file, offset);
        assert_eq!(
            p("mysql-bin.000009", 900).cmp_file_offset(&p("mysql-bin.000010", 4)),
            Some(Less)
        );
        assert_eq!(
            p("mysql-bin.000010", 900).cmp_file_offset(&p("mysql-bin.000010", 4)),
            Some(Greater)
        );
        assert_eq!(
            full().cmp_file_offset(&p("mysql-bin.000003", 1234)),
            Some(Equal)
        );
        assert_eq!(
            p("mysql-bin.000010", 4).cmp_file_offset(&p("other.000001", 4)),
            None
        );
    }
}
