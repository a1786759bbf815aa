//! What a position store holds, and how a write is guarded.
//!
//! # Invariants
//!
//! * A stored record's `batch_id` never decreases (checked by `check_advance`), so the
//!   acknowledged position never moves backwards, whatever order writes
//!   arrive in. Re-storing the *same* batch at the *same* position is
//!   accepted: an etcd write whose answer was lost (timeout) may or may not
//!   have committed, and the caller's retry must be idempotent. The same
//!   batch at a *different* position is refused — two writers disagree about
//!   what batch N was, and guessing would break invariant 1 (no loss).
//! * A record's `leader_revision` is the create revision of the leader key
//!   it was fenced by (`None` under [`Fence::None`] and for forced writes),
//!   so the position itself records which leadership term wrote it.

use std::fmt;

use sluice_core::time::unix_ms;

use serde::{Deserialize, Serialize};
use sluice_core::Position;

use crate::error::CoordError;

/// The acknowledged position of a pipeline, as stored (JSON).
///
/// Unknown fields are ignored when reading, unlike inside [`Position`]
/// (which refuses them): these fields describe *who wrote* the record, not
/// *where* replication resumes, so a newer node adding one during a rolling
/// upgrade of an HA pair must not stop the older standby from taking over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPosition {
    /// Where replication resumes.
    pub position: Position,
    /// The last batch acknowledged at `position`; batches resumed from this
    /// record are numbered from `batch_id + 1`.
    pub batch_id: u64,
    /// Node id of the writer, or for forced writes who changed it.
    pub written_by: String,
    /// Create revision of the writer's leader key; `None` when written
    /// without a leader fence.
    pub leader_revision: Option<i64>,
    /// Wall-clock time of the write, for `sluice positions`.
    pub written_at_unix_ms: u64,
}

impl StoredPosition {
    /// A record written now by `written_by` under `fence`.
    pub fn new(
        position: Position,
        batch_id: u64,
        written_by: impl Into<String>,
        fence: &Fence,
    ) -> Self {
        StoredPosition {
            position,
            batch_id,
            written_by: written_by.into(),
            leader_revision: fence.leader_revision(),
            written_at_unix_ms: unix_ms(),
        }
    }

    /// The first batch id to use when resuming after `stored` (batch ids
    /// start at [`FIRST_BATCH_ID`] for a pipeline that never acknowledged).
    pub fn next_batch_id(stored: Option<&StoredPosition>) -> u64 {
        stored.map_or(FIRST_BATCH_ID, |s| s.batch_id.saturating_add(1))
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).expect("StoredPosition serialises")
    }

    pub(crate) fn from_json(bytes: &[u8], location: &str) -> Result<Self, CoordError> {
        serde_json::from_slice(bytes).map_err(|source| CoordError::Corrupt {
            location: location.to_owned(),
            source,
        })
    }
}

/// The batch id of the first batch a pipeline ever acknowledges. A forced
/// position on an empty store is written with batch id 0, so that batches
/// resumed from it start here.
pub const FIRST_BATCH_ID: u64 = 1;

/// How a position write is guarded against writers that are no longer
/// entitled to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fence {
    /// **No protection.** Any process can write, including one that a newer
    /// process has long replaced; only the monotonicity check applies. For
    /// local and single-node runs, where there is no leader election (the
    /// local store's directory lock then keeps a second process out).
    None,
    /// The write succeeds only while `key` (the pipeline's leader key) exists
    /// with exactly this create revision — i.e. while the writer's term as
    /// leader lasts. A deleted or re-created leader key has a different (or
    /// no) create revision, so a node that lost its lease can never write,
    /// even if it does not know yet. etcd checks this in the same transaction
    /// as the write.
    Leader { key: String, create_revision: i64 },
}

impl Fence {
    /// The etcd compare that holds this fence in a transaction on the
    /// pipeline whose leader key is `leader_key` (none when unfenced); a
    /// fence on another key is refused rather than silently not checked.
    pub(crate) fn leader_compare(
        &self,
        leader_key: &str,
    ) -> Result<Option<etcd_client::Compare>, CoordError> {
        match self {
            Fence::None => Ok(None),
            Fence::Leader {
                key,
                create_revision,
            } if key == leader_key => Ok(Some(etcd_client::Compare::create_revision(
                leader_key,
                etcd_client::CompareOp::Equal,
                *create_revision,
            ))),
            Fence::Leader { key, .. } => Err(CoordError::WrongFenceKey {
                expected: leader_key.to_string(),
                got: key.clone(),
            }),
        }
    }

    /// The create revision this fence requires, if any.
    pub fn leader_revision(&self) -> Option<i64> {
        match self {
            Fence::None => None,
            Fence::Leader {
                create_revision, ..
            } => Some(*create_revision),
        }
    }

    /// Refuses a record whose `leader_revision` disagrees with this fence.
    pub(crate) fn check_record(&self, record: &StoredPosition) -> Result<(), CoordError> {
        if record.leader_revision == self.leader_revision() {
            return Ok(());
        }
        Err(CoordError::FenceMismatch {
            batch_id: record.batch_id,
            record_revision: record.leader_revision,
            fence: FenceDisplay(self).to_string(),
        })
    }
}

/// One forced position change, kept as an audit log (`sluice positions set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What was stored before; `None` for a pipeline that had no position.
    pub replaced: Option<StoredPosition>,
    /// What was written.
    pub record: StoredPosition,
}

/// Checks that `next` may replace `current` (see the module invariants).
pub(crate) fn check_advance(
    location: &str,
    current: Option<&StoredPosition>,
    next: &StoredPosition,
) -> Result<(), CoordError> {
    let Some(current) = current else {
        return Ok(());
    };
    if next.batch_id < current.batch_id {
        return Err(CoordError::Backwards {
            location: location.to_owned(),
            stored: current.batch_id,
            attempted: next.batch_id,
        });
    }
    if next.batch_id == current.batch_id && next.position != current.position {
        return Err(CoordError::BatchConflict {
            location: location.to_owned(),
            batch_id: next.batch_id,
            stored: Box::new(current.position.clone()),
            attempted: Box::new(next.position.clone()),
        });
    }
    Ok(())
}

/// The record a forced change writes over `current`: one batch past it, so
/// that it supersedes anything acknowledged so far.
pub(crate) fn forced_record(
    current: Option<&StoredPosition>,
    position: Position,
    changed_by: &str,
) -> Result<StoredPosition, CoordError> {
    check_writer(changed_by)?;
    Ok(StoredPosition {
        position,
        batch_id: current.map_or(FIRST_BATCH_ID - 1, |c| c.batch_id.saturating_add(1)),
        written_by: changed_by.to_owned(),
        leader_revision: None,
        written_at_unix_ms: unix_ms(),
    })
}

/// Writer ids are free text (a node id, or `alice@ops-1 via sluice positions
/// set`) but must say something and fit on one line of `sluice positions`.
pub(crate) fn check_writer(writer: &str) -> Result<(), CoordError> {
    let err = |reason| CoordError::InvalidWriter {
        writer: writer.to_owned(),
        reason,
    };
    if writer.trim().is_empty() {
        return Err(err("is empty"));
    }
    if writer.chars().any(char::is_control) {
        return Err(err("contains control characters"));
    }
    if writer.len() > 256 {
        return Err(err("is longer than 256 bytes"));
    }
    Ok(())
}

/// A fence rendered for messages.
pub(crate) struct FenceDisplay<'a>(pub &'a Fence);

impl fmt::Display for FenceDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Fence::None => f.write_str("none"),
            Fence::Leader {
                key,
                create_revision,
            } => write!(f, "{key}@{create_revision}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Classify, ErrorClass};

    fn rec(batch_id: u64, offset: u64) -> StoredPosition {
        StoredPosition::new(
            Position::new("mysql-bin.000001", offset),
            batch_id,
            "n1",
            &Fence::None,
        )
    }

    #[test]
    fn json_round_trip_and_unknown_metadata_ignored() {
        let mut r = rec(5, 100);
        r.leader_revision = Some(42);
        let json = String::from_utf8(r.to_json()).expect("utf8");
        assert_eq!(
            StoredPosition::from_json(json.as_bytes(), "x").expect("ok"),
            r
        );
        let extended = json.replacen('{', r#"{"written_by_version":"9.9","#, 1);
        assert_eq!(
            StoredPosition::from_json(extended.as_bytes(), "x").expect("ok"),
            r
        );
        let err = StoredPosition::from_json(b"{\"position\":1}", "key k").expect_err("corrupt");
        assert!(matches!(err, CoordError::Corrupt { .. }));
        assert!(err.to_string().contains("key k"), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
    }

    #[test]
    fn advance_rules() {
        assert!(check_advance("l", None, &rec(0, 4)).is_ok());
        assert!(check_advance("l", Some(&rec(5, 100)), &rec(6, 90)).is_ok());
        // Idempotent re-write of the same batch.
        assert!(check_advance("l", Some(&rec(5, 100)), &rec(5, 100)).is_ok());
        let back = check_advance("l", Some(&rec(5, 100)), &rec(4, 200)).expect_err("backwards");
        assert!(matches!(
            back,
            CoordError::Backwards {
                stored: 5,
                attempted: 4,
                ..
            }
        ));
        let conflict = check_advance("l", Some(&rec(5, 100)), &rec(5, 101)).expect_err("conflict");
        assert!(matches!(conflict, CoordError::BatchConflict { .. }));
        assert_eq!(conflict.class(), ErrorClass::Definite);
    }

    #[test]
    fn fence_and_record_must_agree() {
        let fence = Fence::Leader {
            key: "/k".into(),
            create_revision: 9,
        };
        let r = StoredPosition::new(Position::new("f.1", 4), 1, "n", &fence);
        assert_eq!(r.leader_revision, Some(9));
        assert!(fence.check_record(&r).is_ok());
        let err = Fence::None.check_record(&r).expect_err("mismatch");
        assert!(err.to_string().contains("leader revision 9"), "{err}");
    }

    #[test]
    fn forced_records_supersede() {
        let p = Position::new("f.1", 4);
        assert_eq!(
            forced_record(None, p.clone(), "op").expect("ok").batch_id,
            0
        );
        let f = forced_record(Some(&rec(7, 1)), p, "alice via cli").expect("ok");
        assert_eq!((f.batch_id, f.leader_revision), (8, None));
        assert_eq!(StoredPosition::next_batch_id(Some(&f)), 9);
        assert_eq!(StoredPosition::next_batch_id(None), FIRST_BATCH_ID);
        assert!(forced_record(None, Position::new("f.1", 4), " ").is_err());
        assert!(forced_record(None, Position::new("f.1", 4), "a\nb").is_err());
    }
}
