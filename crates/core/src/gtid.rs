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

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Classify, ErrorClass};

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
// Uuid
// ---------------------------------------------------------------------------

/// A server UUID (MySQL `server_uuid`), the source part of a MySQL GTID.
///
/// Ordered by its bytes, which is also the order of its lower-case text, the
/// order in which MySQL prints GTID sets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// Byte offsets of the dashes in the 36-character text form.
    const DASHES: [usize; 4] = [8, 13, 18, 23];

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Uuid(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for Uuid {
    type Err = GtidParseError;

    /// Parses the canonical `8-4-4-4-12` hexadecimal form, in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GtidParseError::new(s, GtidParseErrorKind::BadUuid);
        let text = s.as_bytes();
        if text.len() != 36 {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in text.iter().enumerate() {
            if Self::DASHES.contains(&i) {
                if c != b'-' {
                    return Err(bad());
                }
                continue;
            }
            let value = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(bad()),
            };
            // 32 hex digits fill 16 bytes, high nibble first: the first digit
            // of a pair is shifted up when the second arrives.
            let byte = &mut bytes[nibbles / 2];
            *byte = (*byte << 4) | value;
            nibbles += 1;
        }
        Ok(Uuid(bytes))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 36];
        let mut pos = 0;
        for (i, byte) in self.0.iter().enumerate() {
            // Dashes go before bytes 4, 6, 8 and 10 (after 8-4-4-4 digits).
            if matches!(i, 4 | 6 | 8 | 10) {
                out[pos] = b'-';
                pos += 1;
            }
            out[pos] = HEX[usize::from(byte >> 4)];
            out[pos + 1] = HEX[usize::from(byte & 0x0f)];
            pos += 2;
        }
        // Only ASCII was written above.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ---------------------------------------------------------------------------
// GtidTag
// ---------------------------------------------------------------------------

/// A MySQL 8.3+ GTID tag: `[a-z_][a-z0-9_]{0,31}`, stored in lower case.
///
/// Kept inline (no heap) so that it is `Copy` like the UUID it accompanies.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GtidTag {
    len: u8,
    bytes: [u8; GtidTag::MAX_LEN],
}

impl GtidTag {
    /// The longest tag MySQL accepts.
    pub const MAX_LEN: usize = 32;

    /// Validates a tag and normalises it to lower case.
    pub fn new(text: &str) -> Result<Self, GtidParseError> {
        let bad = || GtidParseError::new(text, GtidParseErrorKind::BadTag);
        let raw = text.as_bytes();
        match raw.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
            _ => return Err(bad()),
        }
        if raw.len() > Self::MAX_LEN {
            return Err(bad());
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        for (slot, &c) in bytes.iter_mut().zip(raw) {
            if !(c.is_ascii_alphanumeric() || c == b'_') {
                return Err(bad());
            }
            *slot = c.to_ascii_lowercase();
        }
        Ok(GtidTag {
            // At most MAX_LEN (32), checked above.
            len: raw.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only validated ASCII is ever stored, so this cannot fail; an empty
        // string is a harmless fallback that keeps this free of panics.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl FromStr for GtidTag {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GtidTag::new(s)
    }
}

impl Ord for GtidTag {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for GtidTag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for GtidTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for GtidTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GtidTag({:?})", self.as_str())
    }
}

// ---------------------------------------------------------------------------
// GnoInterval and interval-list algebra
// ---------------------------------------------------------------------------

/// A closed interval `start..=end` of MySQL transaction numbers, with
/// `1 <= start <= end <= MAX_GNO`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GnoInterval {
    start: u64,
    end: u64,
}

impl GnoInterval {
    pub fn new(start: u64, end: u64) -> Result<Self, GtidRangeError> {
        for gno in [start, end] {
            if gno == 0 || gno > MAX_GNO {
                return Err(GtidRangeError::GnoOutOfRange(gno));
            }
        }
        if start > end {
            return Err(GtidRangeError::StartAfterEnd { start, end });
        }
        Ok(GnoInterval { start, end })
    }

    /// The interval holding just `gno`.
    pub fn single(gno: u64) -> Result<Self, GtidRangeError> {
        GnoInterval::new(gno, gno)
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    /// The last number in the interval (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn contains(&self, gno: u64) -> bool {
        self.start <= gno && gno <= self.end
    }
}

impl fmt::Display for GnoInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Debug for GnoInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Operations on interval lists that are sorted, non-overlapping and
/// coalesced (the invariant of [`MysqlGtidSet`]). Every function returns a
/// list with the same invariant; all run in linear time.
mod intervals {
    use super::GnoInterval;

    /// Appends `iv` (whose start is >= every start already in `out`) and
    /// merges it with the last interval if they overlap or touch.
    fn push(out: &mut Vec<GnoInterval>, iv: GnoInterval) {
        if let Some(last) = out.last_mut() {
            // `end <= MAX_GNO < u64::MAX`, so `+ 1` cannot overflow.
            if iv.start <= last.end + 1 {
                last.end = last.end.max(iv.end);
                return;
            }
        }
        out.push(iv);
    }

    /// Sorts and coalesces an arbitrary list.
    pub(super) fn normalise(mut list: Vec<GnoInterval>) -> Vec<GnoInterval> {
        list.sort_unstable();
        let mut out = Vec::with_capacity(list.len());
        for iv in list {
            push(&mut out, iv);
        }
        out
    }

    pub(super) fn contains(list: &[GnoInterval], gno: u64) -> bool {
        let i = list.partition_point(|iv| iv.end < gno);
        list.get(i).is_some_and(|iv| iv.start <= gno)
    }

    /// Adds `iv`, returning whether any number in it was new.
    pub(super) fn insert(list: &mut Vec<GnoInterval>, iv: GnoInterval) -> bool {
        // First interval that overlaps or touches `iv` from the left …
        let first = list.partition_point(|x| x.end + 1 < iv.start);
        // … and one past the last one that overlaps or touches it on the right.
        let last = list.partition_point(|x| x.start <= iv.end + 1);
        if first < last {
            let merged = GnoInterval {
                start: list[first].start.min(iv.start),
                end: list[last - 1].end.max(iv.end),
            };
            // Covered already iff a single existing interval contains `iv`.
            let added = !(list[first].start <= iv.start && iv.end <= list[first].end);
            list.splice(first..last, [merged]);
            added
        } else {
            list.insert(first, iv);
            true
        }
    }

    pub(super) fn union(a: &[GnoInterval], b: &[GnoInterval]) -> Vec<GnoInterval> {
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a = j >= b.len() || (i < a.len() && a[i].start <= b[j].start);
            if take_a {
                push(&mut out, a[i]);
                i += 1;
            } else {
                push(&mut out, b[j]);
                j += 1;
            }
        }
        out
    }

    pub(super) fn difference(a: &[GnoInterval], b: &[GnoInterval]) -> Vec<GnoInterval> {
        let mut out = Vec::new();
        // Index of the first interval of `b` that may still overlap the
        // current interval of `a`; only moves forward because `a` is sorted.
        let mut j = 0;
        for iv in a {
            while j < b.len() && b[j].end < iv.start {
                j += 1;
            }
            // The still-uncovered start of `iv`, or None once `iv` is used up.
            let mut rest = Some(iv.start);
            let mut k = j;
            while let Some(start) = rest {
                let Some(cut) = b.get(k).filter(|cut| cut.start <= iv.end) else {
                    break;
                };
                if cut.start > start {
                    out.push(GnoInterval {
                        start,
                        end: cut.start - 1,
                    });
                }
                rest = (cut.end < iv.end).then_some(cut.end + 1);
                k += 1;
            }
            if let Some(start) = rest {
                out.push(GnoInterval { start, end: iv.end });
            }
        }
        out
    }

    pub(super) fn intersection(a: &[GnoInterval], b: &[GnoInterval]) -> Vec<GnoInterval> {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let start = a[i].start.max(b[j].start);
            let end = a[i].end.min(b[j].end);
            if start <= end {
                out.push(GnoInterval { start, end });
            }
            if a[i].end < b[j].end {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    pub(super) fn is_subset(a: &[GnoInterval], b: &[GnoInterval]) -> bool {
        // Because `b` is coalesced, each interval of `a` must lie inside a
        // single interval of `b`.
        let mut j = 0;
        a.iter().all(|iv| {
            while j < b.len() && b[j].end < iv.start {
                j += 1;
            }
            b.get(j)
                .is_some_and(|cover| cover.start <= iv.start && iv.end <= cover.end)
        })
    }
}

// ---------------------------------------------------------------------------
// MysqlGtidSet
// ---------------------------------------------------------------------------

/// A MySQL GTID set, e.g. `uuid:1-5:7-9:tag1:1-3,uuid2:1-9`.
///
/// See the module docs for the representation invariants; in short, the set
/// is always canonical, so equality and `Display` do not depend on how it was
/// built.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct MysqlGtidSet {
    /// `None` (untagged) sorts before every tag, which is also the order in
    /// which MySQL prints them.
    groups: BTreeMap<(Uuid, Option<GtidTag>), Vec<GnoInterval>>,
}

impl MysqlGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Adds one transaction; returns whether it was not in the set before.
    pub fn add(
        &mut self,
        uuid: Uuid,
        tag: Option<GtidTag>,
        gno: u64,
    ) -> Result<bool, GtidRangeError> {
        Ok(self.add_interval(uuid, tag, GnoInterval::single(gno)?))
    }

    /// Adds a range of transactions; returns whether any of them was new.
    pub fn add_interval(&mut self, uuid: Uuid, tag: Option<GtidTag>, iv: GnoInterval) -> bool {
        intervals::insert(self.groups.entry((uuid, tag)).or_default(), iv)
    }

    pub fn contains(&self, uuid: Uuid, tag: Option<GtidTag>, gno: u64) -> bool {
        self.groups
            .get(&(uuid, tag))
            .is_some_and(|list| intervals::contains(list, gno))
    }

    /// Whether every transaction of `self` is also in `other`.
    pub fn is_subset(&self, other: &MysqlGtidSet) -> bool {
        self.groups.iter().all(|(key, list)| {
            other
                .groups
                .get(key)
                .is_some_and(|theirs| intervals::is_subset(list, theirs))
        })
    }

    pub fn union(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut groups = self.groups.clone();
        for (key, theirs) in &other.groups {
            let merged = match groups.get(key) {
                Some(ours) => intervals::union(ours, theirs),
                None => theirs.clone(),
            };
            groups.insert(*key, merged);
        }
        MysqlGtidSet { groups }
    }

    /// The transactions of `self` that are not in `other` — e.g. what a
    /// replica asked for that the server has already purged.
    pub fn difference(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let groups = self
            .groups
            .iter()
            .filter_map(|(key, ours)| {
                let rest = match other.groups.get(key) {
                    Some(theirs) => intervals::difference(ours, theirs),
                    None => ours.clone(),
                };
                // Keep the invariant that no group is empty.
                (!rest.is_empty()).then_some((*key, rest))
            })
            .collect();
        MysqlGtidSet { groups }
    }

    pub fn intersection(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let groups = self
            .groups
            .iter()
            .filter_map(|(key, ours)| {
                let theirs = other.groups.get(key)?;
                let both = intervals::intersection(ours, theirs);
                (!both.is_empty()).then_some((*key, both))
            })
            .collect();
        MysqlGtidSet { groups }
    }

    /// The groups in display order: by UUID, untagged first, then by tag.
    /// Each interval list is non-empty, sorted and coalesced.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, Option<GtidTag>, &[GnoInterval])> + '_ {
        self.groups
            .iter()
            .map(|((uuid, tag), list)| (*uuid, *tag, list.as_slice()))
    }

    /// Parses one `uuid:element:element…` group into `raw` (unnormalised).
    fn parse_group(
        group: &str,
        raw: &mut BTreeMap<(Uuid, Option<GtidTag>), Vec<GnoInterval>>,
    ) -> Result<(), GtidParseError> {
        let mut elements = group.split(':');
        // `split` always yields at least one item.
        let uuid_text = elements.next().unwrap_or_default().trim();
        let uuid: Uuid = uuid_text.parse()?;
        let mut tag: Option<GtidTag> = None;
        // The UUID or tag that the next intervals belong to, for errors, and
        // whether it has been followed by an interval yet.
        let mut owner = uuid_text;
        let mut has_interval = false;
        for element in elements {
            let element = element.trim();
            if element.is_empty() {
                return Err(GtidParseError::new(group, GtidParseErrorKind::EmptyElement));
            }
            // Tags cannot start with a digit and intervals always do, so the
            // first character tells them apart.
            if element.as_bytes()[0].is_ascii_digit() {
                let iv = parse_interval(element)?;
                raw.entry((uuid, tag)).or_default().push(iv);
                has_interval = true;
            } else {
                // The UUID may be followed directly by a tag; a tag may not.
                if tag.is_some() && !has_interval {
                    return Err(GtidParseError::new(
                        owner,
                        GtidParseErrorKind::MissingIntervals,
                    ));
                }
                tag = Some(GtidTag::new(element)?);
                owner = element;
                has_interval = false;
            }
        }
        if !has_interval {
            return Err(GtidParseError::new(
                owner,
                GtidParseErrorKind::MissingIntervals,
            ));
        }
        Ok(())
    }
}

/// Parses `a` or `a-b` (whitespace allowed around `-`).
fn parse_interval(text: &str) -> Result<GnoInterval, GtidParseError> {
    let number = |s: &str| {
        parse_digits::<u64>(s.trim())
            .ok_or_else(|| GtidParseError::new(text, GtidParseErrorKind::BadNumber))
    };
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    GnoInterval::new(start, end).map_err(|e| GtidParseError::new(text, e))
}

impl FromStr for MysqlGtidSet {
    type Err = GtidParseError;

    /// Parses the text MySQL prints for `@@gtid_executed` and friends; an
    /// empty (or all-whitespace) string is the empty set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Ok(MysqlGtidSet::new());
        }
        let mut raw = BTreeMap::new();
        for group in text.split(',') {
            let group = group.trim();
            if group.is_empty() {
                return Err(GtidParseError::new(text, GtidParseErrorKind::EmptyGroup));
            }
            MysqlGtidSet::parse_group(group, &mut raw)?;
        }
        let groups = raw
            .into_iter()
            .map(|(key, list)| (key, intervals::normalise(list)))
            .collect();
        Ok(MysqlGtidSet { groups })
    }
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current: Option<Uuid> = None;
        for ((uuid, tag), list) in &self.groups {
            // Groups of one UUID are adjacent in the map: print the UUID once.
            if current != Some(*uuid) {
                if current.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{uuid}")?;
                current = Some(*uuid);
            }
            if let Some(tag) = tag {
                write!(f, ":{tag}")?;
            }
            for iv in list {
                write!(f, ":{iv}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MysqlGtidSet({:?})", self.to_string())
    }
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

/// One MariaDB GTID, `domain-server_id-seq`, e.g. `0-1-100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariadbGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl FromStr for MariadbGtid {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let mut parts = text.split('-');
        let (Some(domain), Some(server_id), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GtidParseError::new(
                text,
                GtidParseErrorKind::BadMariadbGtid,
            ));
        };
        let bad = |field, bits| {
            GtidParseError::new(text, GtidParseErrorKind::BadMariadbNumber { field, bits })
        };
        Ok(MariadbGtid {
            domain: parse_digits(domain.trim()).ok_or_else(|| bad("domain id", 32))?,
            server_id: parse_digits(server_id.trim()).ok_or_else(|| bad("server id", 32))?,
            seq: parse_digits(seq.trim()).ok_or_else(|| bad("sequence number", 64))?,
        })
    }
}

impl fmt::Display for MariadbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A MariaDB GTID position: the last GTID of each replication domain, as in
/// `@@gtid_slave_pos` (`0-1-100,1-2-5`).
///
/// Unlike a MySQL set this does not list every transaction: a replica that
/// connects with it receives, per domain, everything after the listed GTID.
/// That is only a well-defined point in the binlog when sequence numbers
/// within a domain only grow, which MariaDB guarantees under
/// `gtid_strict_mode` (and which a sane multi-source topology gives anyway:
/// each domain has one writer at a time, and a new primary continues the
/// domain's sequence). The server id does not take part in ordering.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct MariadbGtidSet {
    domains: BTreeMap<u32, MariadbGtid>,
}

impl MariadbGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Number of domains.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Records `gtid` as the last transaction of its domain, replacing what
    /// was there, as the server does for `gtid_slave_pos`. The replacement is
    /// unconditional: the binlog order is the truth, even if a non-strict
    /// server emitted a lower sequence number.
    pub fn advance(&mut self, gtid: MariadbGtid) {
        self.domains.insert(gtid.domain, gtid);
    }

    /// The last GTID of `domain`, if the position has one.
    pub fn get(&self, domain: u32) -> Option<MariadbGtid> {
        self.domains.get(&domain).copied()
    }

    /// The GTIDs, sorted by domain.
    pub fn iter(&self) -> impl Iterator<Item = MariadbGtid> + '_ {
        self.domains.values().copied()
    }

    /// Whether `self` is at or past `other` in every domain of `other`: for
    /// each of `other`'s domains, `self` has a GTID with a sequence number at
    /// least as high. Domains only in `self` do not matter, so an empty
    /// `other` is always satisfied. See the type docs for why sequence
    /// numbers can be compared.
    pub fn is_at_or_after(&self, other: &MariadbGtidSet) -> bool {
        other.domains.values().all(|theirs| {
            self.domains
                .get(&theirs.domain)
                .is_some_and(|ours| ours.seq >= theirs.seq)
        })
    }
}

impl FromStr for MariadbGtidSet {
    type Err = GtidParseError;

    /// Parses a comma-separated list; an empty string is the empty position.
    /// A domain listed twice is refused, as MariaDB refuses it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let mut set = MariadbGtidSet::new();
        if text.is_empty() {
            return Ok(set);
        }
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(GtidParseError::new(text, GtidParseErrorKind::EmptyGroup));
            }
            let gtid: MariadbGtid = entry.parse()?;
            if set.domains.insert(gtid.domain, gtid).is_some() {
                return Err(GtidParseError::new(
                    text,
                    GtidParseErrorKind::DuplicateDomain(gtid.domain),
                ));
            }
        }
        Ok(set)
    }
}

impl fmt::Display for MariadbGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MariadbGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MariadbGtidSet({:?})", self.to_string())
    }
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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "55778904-0299-11f1-b1b8-4ef0c4956feb";
    const U3: &str = "f0000000-0000-0000-0000-00000000000a";

    fn mysql(text: &str) -> MysqlGtidSet {
        match text.parse() {
            Ok(set) => set,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn uuid(text: &str) -> Uuid {
        text.parse().expect("valid uuid")
    }

    fn tag(text: &str) -> GtidTag {
        GtidTag::new(text).expect("valid tag")
    }

    fn mysql_err(text: &str) -> GtidParseErrorKind {
        match text.parse::<MysqlGtidSet>() {
            Ok(set) => panic!("{text:?} should be refused, parsed as {set}"),
            Err(e) => e.kind().clone(),
        }
    }

    /// Checks the representation invariant of every group.
    fn assert_canonical(set: &MysqlGtidSet) {
        for (_, _, list) in set.iter() {
            assert!(!list.is_empty(), "empty group in {set:?}");
            for iv in list {
                assert!(1 <= iv.start() && iv.start() <= iv.end() && iv.end() <= MAX_GNO);
            }
            for pair in list.windows(2) {
                assert!(
                    pair[0].end() + 1 < pair[1].start(),
                    "not coalesced: {set:?}"
                );
            }
        }
    }

    #[test]
    fn uuid_round_trips_and_normalises_case() {
        let u = uuid("3E11FA47-71CA-11E1-9E33-C80AA9429562");
        assert_eq!(u.to_string(), U1);
        assert_eq!(u.as_bytes()[0], 0x3e);
        assert_eq!(u.as_bytes()[15], 0x62);
        assert_eq!(Uuid::from_bytes(*u.as_bytes()), u);
        for bad in [
            "",
            "3e11fa47-71ca-11e1-9e33-c80aa942956",   // short
            "3e11fa47-71ca-11e1-9e33-c80aa94295622", // long
            "3e11fa4771ca-11e1-9e33-c80aa9429562-",  // dash misplaced
            "3e11fa47-71ca-11e1-9e33-c80aa942956g",  // not hex
            "3e11fa47x71ca-11e1-9e33-c80aa9429562",
        ] {
            let err = bad.parse::<Uuid>().expect_err(bad);
            assert_eq!(err.kind(), &GtidParseErrorKind::BadUuid, "{bad}");
        }
    }

    #[test]
    fn tags_are_validated_and_lower_cased() {
        assert_eq!(tag("MyTag_1").as_str(), "mytag_1");
        assert_eq!(tag("_x").as_str(), "_x");
        assert_eq!(tag(&"a".repeat(32)).as_str().len(), 32);
        for bad in ["", "1abc", "a-b", "a b", "é", &"a".repeat(33)] {
            let err = GtidTag::new(bad).expect_err(bad);
            assert_eq!(err.kind(), &GtidParseErrorKind::BadTag, "{bad:?}");
        }
        assert!(tag("a") < tag("ab") && tag("ab") < tag("b"));
    }

    #[test]
    fn mysql_round_trip_of_canonical_text() {
        for text in [
            "",
            &format!("{U1}:1-5"),
            &format!("{U1}:1-5:7-9,{U2}:1-9"),
            &format!("{U1}:3"),
            &format!("{U2}:1-13:mytag:1-2"),
            &format!("{U1}:1-5:tag1:1-3:7:tag2:4"),
            &format!("{U1}:tag1:1"),
            &format!("{U1}:1-{MAX_GNO}"),
        ] {
            let set = mysql(text);
            assert_eq!(set.to_string(), text);
            assert_eq!(mysql(&set.to_string()), set);
            assert_canonical(&set);
        }
    }

    #[test]
    fn mysql_canonicalises_intervals() {
        assert_eq!(
            mysql(&format!("{U1}:1-3:4-5")).to_string(),
            format!("{U1}:1-5")
        );
        assert_eq!(
            mysql(&format!("{U1}:7-9:1-3:2-5:11:11")).to_string(),
            format!("{U1}:1-5:7-9:11")
        );
        assert_eq!(mysql(&format!("{U1}:5-5")).to_string(), format!("{U1}:5"));
        // A UUID repeated in several groups is merged.
        assert_eq!(
            mysql(&format!("{U1}:1-2,{U2}:4,{U1}:3")).to_string(),
            format!("{U1}:1-3,{U2}:4")
        );
        // Upper case, whitespace and MySQL's `,\n` separator are accepted;
        // UUIDs are sorted.
        let upper = U2.to_uppercase();
        let messy = format!(" {upper} : 1 - 3 : TAG : 2 ,\n{U1}:1-2\n");
        assert_eq!(
            mysql(&messy).to_string(),
            format!("{U1}:1-2,{U2}:1-3:tag:2")
        );
    }

    #[test]
    fn mysql_tags_print_after_untagged_and_sorted() {
        let set = mysql(&format!("{U1}:zeta:1:alpha:2-3:4:5,{U1}:9"));
        assert_eq!(set.to_string(), format!("{U1}:9:alpha:2-5:zeta:1"));
        assert!(set.contains(uuid(U1), Some(tag("ALPHA")), 4));
        assert!(!set.contains(uuid(U1), None, 4));
        assert!(set.contains(uuid(U1), None, 9));
        assert!(!set.contains(uuid(U1), Some(tag("zeta")), 9));
    }

    #[test]
    fn mysql_tagged_example() {
        let set = mysql(&format!("{U2}:1-13:mytag:1-2"));
        assert!(set.contains(uuid(U2), None, 13));
        assert!(!set.contains(uuid(U2), None, 14));
        assert!(set.contains(uuid(U2), Some(tag("mytag")), 2));
        assert!(!set.contains(uuid(U2), Some(tag("mytag")), 3));
        assert!(!set.contains(uuid(U1), None, 1));
    }

    #[test]
    fn mysql_add_reports_novelty_and_coalesces() {
        let mut set = MysqlGtidSet::new();
        let u = uuid(U1);
        assert!(set.is_empty());
        assert_eq!(set.add(u, None, 1), Ok(true));
        assert_eq!(set.add(u, None, 3), Ok(true));
        assert_eq!(set.to_string(), format!("{U1}:1:3"));
        assert_eq!(set.add(u, None, 2), Ok(true));
        assert_eq!(set.to_string(), format!("{U1}:1-3"));
        assert_eq!(set.add(u, None, 2), Ok(false));
        assert_eq!(set.add(u, Some(tag("t")), 2), Ok(true));
        assert_eq!(set.to_string(), format!("{U1}:1-3:t:2"));
        assert_eq!(set.add(u, None, 0), Err(GtidRangeError::GnoOutOfRange(0)));
        assert_eq!(
            set.add(u, None, MAX_GNO + 1),
            Err(GtidRangeError::GnoOutOfRange(MAX_GNO + 1))
        );
        assert_eq!(set.add(u, None, MAX_GNO), Ok(true));
        assert!(set.add_interval(u, None, GnoInterval::new(5, 10).expect("valid")));
        assert!(!set.add_interval(u, None, GnoInterval::new(6, 9).expect("valid")));
        assert!(set.add_interval(u, None, GnoInterval::new(4, 11).expect("valid")));
        assert_eq!(set.to_string(), format!("{U1}:1-11:{MAX_GNO}:t:2"));
        assert_canonical(&set);
    }

    #[test]
    fn mysql_set_arithmetic() {
        let executed = mysql(&format!("{U1}:1-100:t:1-5,{U2}:1-50"));
        let purged = mysql(&format!("{U1}:1-40,{U2}:1-10"));
        let requested = mysql(&format!("{U1}:1-30:t:1-2"));
        assert!(purged.is_subset(&executed));
        assert!(!executed.is_subset(&purged));
        assert!(MysqlGtidSet::new().is_subset(&purged));
        // The replica needs what the server executed and it has not; if that
        // includes purged transactions the start position is unusable.
        let missing = executed.difference(&requested);
        assert_eq!(missing.to_string(), format!("{U1}:31-100:t:3-5,{U2}:1-50"));
        assert_eq!(
            missing.intersection(&purged).to_string(),
            format!("{U1}:31-40,{U2}:1-10")
        );
        assert_eq!(
            purged.union(&requested).to_string(),
            format!("{U1}:1-40:t:1-2,{U2}:1-10")
        );
        assert_eq!(
            mysql(&format!("{U1}:1-10")).difference(&mysql(&format!("{U1}:3-4:6:9-20"))),
            mysql(&format!("{U1}:1-2:5:7-8"))
        );
        assert!(executed.difference(&executed).is_empty());
        // Same numbers under another tag are other transactions.
        let tagged = mysql(&format!("{U1}:t:1-5"));
        assert!(!tagged.is_subset(&mysql(&format!("{U1}:1-5"))));
        assert!(!mysql(&format!("{U1}:1-5")).is_subset(&tagged));
    }

    #[test]
    fn mysql_malformed_input_is_refused_with_reason() {
        use GtidParseErrorKind as K;
        let range = |e| K::Range(e);
        assert_eq!(mysql_err("3e11fa47-71ca-11e1-9e33:1-5"), K::BadUuid);
        assert_eq!(
            mysql_err(&format!("{U1}:0-5")),
            range(GtidRangeError::GnoOutOfRange(0))
        );
        assert_eq!(
            mysql_err(&format!("{U1}:7-5")),
            range(GtidRangeError::StartAfterEnd { start: 7, end: 5 })
        );
        assert_eq!(
            mysql_err(&format!("{U1}:1-{}", MAX_GNO + 1)),
            range(GtidRangeError::GnoOutOfRange(MAX_GNO + 1))
        );
        assert_eq!(
            mysql_err(&format!("{U1}:1-99999999999999999999")),
            K::BadNumber
        );
        assert_eq!(mysql_err(&format!("{U1}:1-+5")), K::BadNumber);
        assert_eq!(mysql_err(&format!("{U1}:1-")), K::BadNumber);
        assert_eq!(mysql_err(&format!("{U1}:1-2-3")), K::BadNumber);
        assert_eq!(mysql_err(&format!("{U1}:1-5:bad-tag:1")), K::BadTag);
        assert_eq!(
            mysql_err(&format!("{U1}:1-5:{}:1", "t".repeat(33))),
            K::BadTag
        );
        assert_eq!(mysql_err(&format!("{U1}:1-5,,{U2}:1")), K::EmptyGroup);
        assert_eq!(mysql_err(&format!("{U1}:1-5,")), K::EmptyGroup);
        assert_eq!(mysql_err(&format!("{U1}:1-5::7")), K::EmptyElement);
        assert_eq!(mysql_err(&format!("{U1}:")), K::EmptyElement);
        assert_eq!(mysql_err(U1), K::MissingIntervals);
        assert_eq!(mysql_err(&format!("{U1}:1-5:tag")), K::MissingIntervals);
        assert_eq!(mysql_err(&format!("{U1}:a:b:1")), K::MissingIntervals);
        assert_eq!(mysql_err("garbage"), K::BadUuid);
        // The message names the offending text and the reason.
        let err = format!("{U1}:1-5:9-3")
            .parse::<MysqlGtidSet>()
            .expect_err("bad");
        assert_eq!(err.fragment(), "9-3");
        assert_eq!(
            err.to_string(),
            "invalid GTID text `9-3`: interval 9-3 starts after it ends"
        );
        // Huge input is quoted back shortened.
        let long = format!("{},", "x".repeat(500));
        let err = long.parse::<MysqlGtidSet>().expect_err("bad");
        assert!(err.fragment().chars().count() <= MAX_EXCERPT + 1);
        assert_eq!(err.class(), ErrorClass::Definite);
    }

    #[test]
    fn mariadb_gtid_round_trip_and_errors() {
        let gtid: MariadbGtid = "0-1-100".parse().expect("valid");
        assert_eq!(
            gtid,
            MariadbGtid {
                domain: 0,
                server_id: 1,
                seq: 100
            }
        );
        assert_eq!(gtid.to_string(), "0-1-100");
        let max = format!("{}-{}-{}", u32::MAX, u32::MAX, u64::MAX);
        assert_eq!(max.parse::<MariadbGtid>().expect("valid").to_string(), max);
        for (bad, kind) in [
            ("0-1", GtidParseErrorKind::BadMariadbGtid),
            ("0-1-2-3", GtidParseErrorKind::BadMariadbGtid),
            (
                "x-1-2",
                GtidParseErrorKind::BadMariadbNumber {
                    field: "domain id",
                    bits: 32,
                },
            ),
            (
                "4294967296-1-2",
                GtidParseErrorKind::BadMariadbNumber {
                    field: "domain id",
                    bits: 32,
                },
            ),
            ("0--1-2", GtidParseErrorKind::BadMariadbGtid),
            (
                "0-1-",
                GtidParseErrorKind::BadMariadbNumber {
                    field: "sequence number",
                    bits: 64,
                },
            ),
        ] {
            let err = bad.parse::<MariadbGtid>().expect_err(bad);
            assert_eq!(err.kind(), &kind, "{bad}");
        }
    }

    #[test]
    fn mariadb_set_semantics() {
        let mut pos: MariadbGtidSet = " 1-2-5 ,\n0-1-100".parse().expect("valid");
        assert_eq!(pos.to_string(), "0-1-100,1-2-5");
        assert_eq!(pos.len(), 2);
        assert_eq!(pos.get(1).map(|g| g.seq), Some(5));
        assert_eq!(pos.get(7), None);

        let earlier: MariadbGtidSet = "0-1-90,1-3-5".parse().expect("valid");
        assert!(pos.is_at_or_after(&earlier));
        assert!(!earlier.is_at_or_after(&pos));
        assert!(pos.is_at_or_after(&pos));
        assert!(pos.is_at_or_after(&MariadbGtidSet::new()));
        // A domain the other side has and we lack means we are not past it.
        let other_domain: MariadbGtidSet = "2-1-1".parse().expect("valid");
        assert!(!pos.is_at_or_after(&other_domain));

        // advance replaces the domain's entry (new server id included).
        pos.advance(MariadbGtid {
            domain: 0,
            server_id: 9,
            seq: 101,
        });
        pos.advance(MariadbGtid {
            domain: 3,
            server_id: 1,
            seq: 1,
        });
        assert_eq!(pos.to_string(), "0-9-101,1-2-5,3-1-1");
        assert_eq!(pos.iter().count(), 3);

        assert_eq!("".parse::<MariadbGtidSet>(), Ok(MariadbGtidSet::new()));
        assert_eq!(MariadbGtidSet::new().to_string(), "");
        let dup = "0-1-1,0-1-2".parse::<MariadbGtidSet>().expect_err("dup");
        assert_eq!(dup.kind(), &GtidParseErrorKind::DuplicateDomain(0));
        let empty = "0-1-1,,1-1-1".parse::<MariadbGtidSet>().expect_err("empty");
        assert_eq!(empty.kind(), &GtidParseErrorKind::EmptyGroup);
    }

    #[test]
    fn gtid_set_detects_flavour() {
        let my: GtidSet = format!("{U1}:1-5").parse().expect("mysql");
        assert!(matches!(my, GtidSet::Mysql(_)));
        let ma: GtidSet = "0-1-100,1-2-5".parse().expect("mariadb");
        assert!(matches!(ma, GtidSet::Mariadb(_)));
        assert_eq!(ma.as_mariadb().map(|s| s.len()), Some(2));
        assert!(ma.as_mysql().is_none() && my.as_mariadb().is_none());

        // Empty sets carry their flavour explicitly.
        for (text, set) in [
            ("mysql:", GtidSet::Mysql(MysqlGtidSet::new())),
            ("mariadb:", GtidSet::Mariadb(MariadbGtidSet::new())),
        ] {
            assert_eq!(set.to_string(), text);
            assert_eq!(text.parse::<GtidSet>(), Ok(set.clone()));
            assert!(set.is_empty());
        }
        assert_eq!(
            "MariaDB:0-1-2".parse::<GtidSet>().map(|s| s.to_string()),
            Ok("0-1-2".to_owned())
        );
        assert_eq!(
            format!("mysql:{U1}:1").parse::<GtidSet>(),
            Ok(GtidSet::Mysql(mysql(&format!("{U1}:1"))))
        );

        use GtidParseErrorKind as K;
        let kind = |t: &str| t.parse::<GtidSet>().expect_err(t).kind().clone();
        assert_eq!(kind(""), K::AmbiguousEmpty);
        assert_eq!(kind("  "), K::AmbiguousEmpty);
        assert_eq!(kind("hello"), K::UnknownFlavour);
        assert_eq!(kind(U1), K::MissingIntervals);
        assert_eq!(
            kind("0-1-x"),
            K::BadMariadbNumber {
                field: "sequence number",
                bits: 64
            }
        );
        assert_eq!(kind("mariadb:0-1"), K::BadMariadbGtid);
        assert_eq!(
            kind(&format!("{U1}:0")),
            K::Range(GtidRangeError::GnoOutOfRange(0))
        );
    }

    #[test]
    fn gtid_set_serde_is_a_string() {
        for text in [
            format!("{U1}:1-5:7-9,{U2}:1-9:tag:1-3"),
            "0-1-100,1-2-5".to_owned(),
            "mysql:".to_owned(),
            "mariadb:".to_owned(),
        ] {
            let set: GtidSet = text.parse().expect("valid");
            let json = serde_json::to_string(&set).expect("serialise");
            assert_eq!(json, format!("\"{text}\""));
            let back: GtidSet = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, set);
        }
        let err = serde_json::from_str::<GtidSet>("\"bogus\"").expect_err("bad");
        assert!(err.to_string().contains("bogus"), "{err}");
        assert!(serde_json::from_str::<GtidSet>("5").is_err());
        let set = mysql(&format!("{U1}:1"));
        let json = serde_json::to_string(&set).expect("serialise");
        assert_eq!(serde_json::from_str::<MysqlGtidSet>(&json).ok(), Some(set));
    }

    /// xorshift64*: deterministic, dependency-free, good enough to explore.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const GNO_LIMIT: u64 = 40;

    fn keys() -> Vec<(Uuid, Option<GtidTag>)> {
        let mut keys = Vec::new();
        for u in [U1, U2, U3] {
            keys.push((uuid(u), None));
            keys.push((uuid(u), Some(tag("t"))));
        }
        keys
    }

    /// A random set built through the text form (unsorted, overlapping
    /// intervals), so that parsing and normalisation are exercised too.
    fn random_set(rng: &mut Rng) -> MysqlGtidSet {
        let keys = keys();
        let mut groups = Vec::new();
        for _ in 0..rng.below(5) {
            let (u, t) = keys[rng.below(keys.len() as u64) as usize];
            let mut group = u.to_string();
            if let Some(t) = t {
                group.push_str(&format!(":{t}"));
            }
            for _ in 0..=rng.below(4) {
                let start = 1 + rng.below(GNO_LIMIT);
                let end = (start + rng.below(8)).min(GNO_LIMIT);
                group.push_str(&format!(":{start}-{end}"));
            }
            groups.push(group);
        }
        mysql(&groups.join(","))
    }

    /// Membership of every (key, gno) in the universe, as a model.
    fn members(set: &MysqlGtidSet) -> Vec<bool> {
        let mut out = Vec::new();
        for (u, t) in keys() {
            for gno in 1..=GNO_LIMIT + 1 {
                out.push(set.contains(u, t, gno));
            }
        }
        out
    }

    #[test]
    fn property_union_difference_intersection_laws() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let empty = MysqlGtidSet::new();
        for _ in 0..500 {
            let (a, b, c) = (
                random_set(&mut rng),
                random_set(&mut rng),
                random_set(&mut rng),
            );
            let (ma, mb) = (members(&a), members(&b));
            let union = a.union(&b);
            let diff = a.difference(&b);
            let inter = a.intersection(&b);
            for set in [&a, &union, &diff, &inter] {
                assert_canonical(set);
                assert_eq!(&mysql(&set.to_string()), set, "text round trip");
            }
            // Pointwise agreement with the boolean model.
            let zip = |f: fn(bool, bool) -> bool| -> Vec<bool> {
                ma.iter().zip(&mb).map(|(&x, &y)| f(x, y)).collect()
            };
            assert_eq!(members(&union), zip(|x, y| x || y), "{a:?} ∪ {b:?}");
            assert_eq!(members(&diff), zip(|x, y| x && !y), "{a:?} \\ {b:?}");
            assert_eq!(members(&inter), zip(|x, y| x && y), "{a:?} ∩ {b:?}");
            // Algebraic laws.
            assert_eq!(union, b.union(&a));
            assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
            assert_eq!(a.union(&a), a);
            assert_eq!(a.union(&empty), a);
            assert_eq!(a.difference(&empty), a);
            assert!(empty.difference(&a).is_empty());
            assert!(a.is_subset(&union) && b.is_subset(&union));
            assert!(diff.is_subset(&a) && inter.is_subset(&a) && inter.is_subset(&b));
            assert!(diff.intersection(&b).is_empty());
            assert_eq!(diff.union(&inter), a);
            assert_eq!(diff.union(&b), union);
            assert_eq!(a.is_subset(&b), diff.is_empty());
            assert_eq!(a.is_subset(&b) && b.is_subset(&a), a == b);
            // Building by single additions gives the same set.
            let mut built = MysqlGtidSet::new();
            for (u, t, list) in union.iter() {
                for iv in list {
                    for gno in (iv.start()..=iv.end()).rev() {
                        assert_eq!(built.add(u, t, gno), Ok(true));
                    }
                }
            }
            assert_eq!(built, union);
        }
    }
}
