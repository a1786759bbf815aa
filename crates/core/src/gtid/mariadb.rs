//! MariaDB GTID positions: one `domain-server_id-seq` GTID per replication
//! domain, with the semantics of `@@gtid_slave_pos`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{parse_digits, GtidParseError, GtidParseErrorKind};

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
