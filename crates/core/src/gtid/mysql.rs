//! MySQL GTID sets: server UUIDs, tags (MySQL 8.3+), closed intervals of
//! transaction numbers, and the set itself (see the parent module's
//! invariants and text forms).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{parse_digits, GtidParseError, GtidParseErrorKind, GtidRangeError, MAX_GNO};

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
