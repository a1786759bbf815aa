//! GTID sets of MySQL and MariaDB.
//!
//! The two servers name transactions differently, and the difference matters
//! for resuming a binlog dump, so each flavour has its own type:
//!
//! * [`MysqlGtidSet`] — a *set* of transactions, `uuid:1-5:7-9,uuid2:1-9`,
//!   including MySQL 8.3+ tagged GTIDs (`uuid:1-5:tag1:1-3:7:tag2:4`). A MySQL
//!   replica sends the set of everything it has executed; the server sends
//!   everything else, so gaps matter and the set is kept exactly.
//! * [`MariadbGtidSet`] — a MariaDB GTID *position*, one `domain-server-seq`
//!   GTID per replication domain (`0-1-100,1-2-5`), with the semantics of
//!   `@@gtid_slave_pos`: the replica resumes each domain after its last GTID.
//!
//! [`GtidSet`] holds either and is what a [`crate::Position`] carries.
//!
//! # Invariants
//!
//! * A [`MysqlGtidSet`] maps `(uuid, tag)` to a list of **closed** intervals
//!   `start..=end` (closed, not half-open like the server's internals, so that
//!   the largest number needs no `end + 1` and the text form maps 1:1). Every
//!   list is non-empty, sorted, non-overlapping and coalesced: two intervals in
//!   one list are always separated by at least one missing number. Equal sets
//!   therefore have equal representations, so `==` is set equality and
//!   `Display` is canonical.
//! * Transaction numbers lie in `1..=MAX_GNO`. MySQL stores a GNO as a signed
//!   64-bit integer and its intervals half-open, so `2^63 - 2` is the largest
//!   number that can appear in a set; refusing more here means a set we hold
//!   can always be encoded for `COM_BINLOG_DUMP_GTID` (which sends `end + 1`).
//! * Tags are normalised to lower case, as MySQL does, so `TAG` and `tag`
//!   name the same transactions.
//! * A [`MariadbGtidSet`] has at most one GTID per domain.
//!
//! # Text forms
//!
//! Parsing accepts what the servers print: whitespace (including MySQL's
//! `,\n` group separator) around `,`, `:` and `-`, upper- or lower-case hex
//! and tags, groups in any order, a UUID repeated in several groups, and
//! overlapping or unsorted intervals. Display is canonical and compact:
//! UUIDs in lower case and sorted, untagged intervals before tagged ones, tags
//! sorted, groups joined by a bare `,`. The parser is stricter than the server
//! in one respect: a UUID or tag that is followed by no interval (`uuid`,
//! `uuid:`, `uuid:1-3:tag`) and an empty group (`a,,b`, a trailing `,`) are
//! refused, because the servers never print them and they most likely mean
//! that text was truncated.
//!
//! An empty set of either flavour prints as the empty string, which does not
//! say which flavour it is. [`GtidSet`] therefore prints an empty set as
//! `mysql:` or `mariadb:`, accepts those prefixes in front of any set, and
//! refuses a bare empty string instead of guessing.
//!
//! The MySQL flavour (UUIDs, tags, interval lists) lives in `mysql`, the
//! MariaDB one in `mariadb`; this module holds what both share: the errors,
//! the [`GtidSet`] that picks a flavour from text, and serde through text.

mod mariadb;
mod mysql;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Classify, ErrorClass};

pub use mariadb::{MariadbGtid, MariadbGtidSet};
pub use mysql::{GnoInterval, GtidTag, MysqlGtidSet, Uuid};

/// The largest MySQL transaction number (GNO) a GTID set can hold: `2^63 - 2`.
pub const MAX_GNO: u64 = i64::MAX as u64 - 1;

/// Longest text quoted back in an error message; GTID sets of long-lived
/// servers can be kilobytes long and the message must stay readable.
const MAX_EXCERPT: usize = 80;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A transaction number or interval outside what MySQL can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GtidRangeError {
    #[error("transaction number {0} is outside 1..={MAX_GNO}")]
    GnoOutOfRange(u64),
    #[error("interval {start}-{end} starts after it ends")]
    StartAfterEnd { start: u64, end: u64 },
}

impl Classify for GtidRangeError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Definite
    }
}

/// Why a piece of GTID text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GtidParseErrorKind {
    #[error("not a UUID in 8-4-4-4-12 hexadecimal form")]
    BadUuid,
    #[error(
        "not a GTID tag (1 to 32 characters of letters, digits and `_`, not starting with a digit)"
    )]
    BadTag,
    #[error("not a decimal transaction number")]
    BadNumber,
    #[error(transparent)]
    Range(#[from] GtidRangeError),
    #[error("empty group between commas")]
    EmptyGroup,
    #[error("empty element between colons")]
    EmptyElement,
    #[error("UUID or tag is not followed by any interval")]
    MissingIntervals,
    #[error("not a MariaDB GTID `domain-server_id-seq`")]
    BadMariadbGtid,
    #[error("{field} is not a decimal number that fits in {bits} bits")]
    BadMariadbNumber { field: &'static str, bits: u8 },
    #[error("domain {0} appears twice; a MariaDB GTID position holds one GTID per domain")]
    DuplicateDomain(u32),
    #[error("an empty GTID set has no flavour; write `mysql:` or `mariadb:` for an empty set")]
    AmbiguousEmpty,
    #[error(
        "neither a MySQL GTID set (`uuid:1-5,...`) nor a MariaDB GTID list (`domain-server_id-seq,...`)"
    )]
    UnknownFlavour,
}

/// GTID text that could not be parsed: the offending fragment and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GTID text `{fragment}`: {kind}")]
pub struct GtidParseError {
    fragment: String,
    kind: GtidParseErrorKind,
}

impl GtidParseError {
    fn new(fragment: &str, kind: impl Into<GtidParseErrorKind>) -> Self {
        GtidParseError {
            fragment: excerpt(fragment),
            kind: kind.into(),
        }
    }

    /// The offending part of the input (shortened if very long).
    pub fn fragment(&self) -> &str {
        &self.fragment
    }

    /// Why it was refused.
    pub fn kind(&self) -> &GtidParseErrorKind {
        &self.kind
    }
}

impl Classify for GtidParseError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Definite
    }
}

fn excerpt(s: &str) -> String {
    if s.len() <= MAX_EXCERPT {
        return s.to_owned();
    }
    let mut end = MAX_EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses a non-empty run of ASCII digits. `str::parse` alone would also
/// accept a leading `+`, which no server prints.
fn parse_digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------
// GtidSet
// ---------------------------------------------------------------------------

/// A GTID set of either flavour.
///
/// Text form: the flavour's own text when the set is non-empty (the flavour
/// is evident: MySQL sets contain `uuid:`, MariaDB lists are
/// `digits-digits-digits`); `mysql:` or `mariadb:` for an empty set. Either
/// prefix is also accepted in front of a non-empty set, forcing the flavour.
/// Serialised (serde) as that same string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GtidSet {
    Mysql(MysqlGtidSet),
    Mariadb(MariadbGtidSet),
}

impl GtidSet {
    const MYSQL_PREFIX: &'static str = "mysql:";
    const MARIADB_PREFIX: &'static str = "mariadb:";

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::Mysql(set) => set.is_empty(),
            GtidSet::Mariadb(set) => set.is_empty(),
        }
    }

    pub fn as_mysql(&self) -> Option<&MysqlGtidSet> {
        match self {
            GtidSet::Mysql(set) => Some(set),
            GtidSet::Mariadb(_) => None,
        }
    }

    pub fn as_mariadb(&self) -> Option<&MariadbGtidSet> {
        match self {
            GtidSet::Mariadb(set) => Some(set),
            GtidSet::Mysql(_) => None,
        }
    }
}

/// Strips `prefix` case-insensitively.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

impl FromStr for GtidSet {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(rest) = strip_prefix_ignore_case(text, Self::MYSQL_PREFIX) {
            return rest.parse().map(GtidSet::Mysql);
        }
        if let Some(rest) = strip_prefix_ignore_case(text, Self::MARIADB_PREFIX) {
            return rest.parse().map(GtidSet::Mariadb);
        }
        if text.is_empty() {
            return Err(GtidParseError::new(s, GtidParseErrorKind::AmbiguousEmpty));
        }
        // Every valid non-empty MySQL set has a `:` and no MariaDB list does.
        if text.contains(':') {
            return text.parse().map(GtidSet::Mysql);
        }
        // Without a colon, look at the first entry to pick the flavour whose
        // error message will make sense to the operator.
        let first = text.split(',').next().unwrap_or_default().trim();
        match first.matches('-').count() {
            2 => text.parse().map(GtidSet::Mariadb),
            // A bare UUID: the MySQL parser explains that intervals are missing.
            4 => text.parse().map(GtidSet::Mysql),
            _ => Err(GtidParseError::new(
                text,
                GtidParseErrorKind::UnknownFlavour,
            )),
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::Mysql(set) if set.is_empty() => f.write_str(Self::MYSQL_PREFIX),
            GtidSet::Mariadb(set) if set.is_empty() => f.write_str(Self::MARIADB_PREFIX),
            GtidSet::Mysql(set) => fmt::Display::fmt(set, f),
            GtidSet::Mariadb(set) => fmt::Display::fmt(set, f),
        }
    }
}

impl From<MysqlGtidSet> for GtidSet {
    fn from(set: MysqlGtidSet) -> Self {
        GtidSet::Mysql(set)
    }
}

impl From<MariadbGtidSet> for GtidSet {
    fn from(set: MariadbGtidSet) -> Self {
        GtidSet::Mariadb(set)
    }
}

/// Serde through `Display`/`FromStr`, so JSON holds the same text an operator
/// sees and types.
macro_rules! serde_via_string {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_string!(GtidSet, MysqlGtidSet, MariadbGtidSet, MariadbGtid, Uuid);
