//! Where replication resumes (see the rule in [`super`]'s docs).

use sluice_binlog::stream::StartAt;
use sluice_coord::{Fence, StoredPosition};
use sluice_core::time::unix_ms;
use sluice_core::Position;
use sluice_load::Checkpoint;

use crate::batch::is_before;

pub(super) struct Resume {
    pub(super) record: Option<StoredPosition>,
    /// Which record won, for the log.
    pub(super) from: &'static str,
    pub(super) horizon: Option<Position>,
    pub(super) skip_through: Option<Position>,
}

/// See the module docs.
pub(super) fn resume_point(
    stored: Option<&StoredPosition>,
    checkpoint: Option<&Checkpoint>,
    node_id: &str,
) -> Resume {
    let parse = |text: &str, what: &str| -> Option<Position> {
        if text.is_empty() {
            return None;
        }
        match text.parse::<Position>() {
            Ok(p) => Some(p),
            Err(error) => {
                tracing::warn!(%error, text, "ignoring the target checkpoint's {what}: it does not parse");
                None
            }
        }
    };
    let checkpoint_position = checkpoint.and_then(|c| parse(&c.position, "position"));
    let in_flight = checkpoint
        .and_then(|c| c.applying.as_ref())
        .and_then(|(_, through)| parse(through, "batch in flight"));
    let (record, from) = match (stored, checkpoint_position, checkpoint) {
        (Some(s), Some(cp), Some(c)) if is_before(&s.position, &cp) => {
            let mut r = StoredPosition::new(cp, c.batch_id.max(s.batch_id), node_id, &Fence::None);
            r.written_at_unix_ms = unix_ms();
            (Some(r), "target checkpoint (ahead of the stored position)")
        }
        (Some(s), _, _) => (Some(s.clone()), "stored position"),
        (None, Some(cp), Some(c)) => {
            tracing::warn!(
                "no stored position, but the target has a checkpoint for this pipeline: resuming from it"
            );
            (
                Some(StoredPosition::new(cp, c.batch_id, node_id, &Fence::None)),
                "target checkpoint (nothing stored)",
            )
        }
        (None, _, _) => (None, "source.start"),
    };
    // Everything up to the checkpoint's `through` is applied; when that is
    // past the resume position (a batch ended inside a transaction), skip
    // those events.
    let skip_through = match (&record, checkpoint.and_then(|c| c.through.as_deref())) {
        (Some(r), Some(t)) => parse(t, "through").filter(|t| is_before(&r.position, t)),
        _ => None,
    };
    let horizon = match (&record, in_flight) {
        (Some(r), Some(h)) if is_before(&r.position, &h) => Some(h),
        (None, Some(h)) => Some(h),
        _ => None,
    };
    Resume {
        record,
        from,
        horizon,
        skip_through,
    }
}

pub(super) fn config_start(start: &sluice_config::StartAt) -> StartAt {
    match start {
        sluice_config::StartAt::Latest => StartAt::Latest,
        sluice_config::StartAt::File { file, pos } => StartAt::File {
            file: file.clone(),
            pos: *pos,
        },
        sluice_config::StartAt::Gtid(set) => StartAt::Gtid(set.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::cmp_positions;

    fn pos(file: &str, offset: u64) -> Position {
        Position::new(file.to_string(), offset)
    }

    fn stored(p: Position, batch_id: u64) -> StoredPosition {
        StoredPosition::new(p, batch_id, "n", &Fence::None)
    }

    fn checkpoint(p: &str, batch_id: u64, applying: Option<&str>) -> Checkpoint {
        Checkpoint {
            pipeline: "p".into(),
            batch_id,
            position: p.into(),
            updated_at: String::new(),
            applying: applying.map(|a| (batch_id + 1, a.to_string())),
            through: None,
        }
    }

    #[test]
    fn resumes_from_the_further_record() {
        let s = stored(pos("b.000001", 100), 5);
        let ahead = checkpoint("b.000001:900", 9, Some("b.000001:1500"));
        let r = resume_point(Some(&s), Some(&ahead), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 900));
        assert_eq!(r.record.as_ref().unwrap().batch_id, 9);
        assert_eq!(r.horizon, Some(pos("b.000001", 1500)));

        let behind = checkpoint("b.000001:50", 3, None);
        let r = resume_point(Some(&s), Some(&behind), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 100));
        assert_eq!(r.horizon, None);

        let r = resume_point(None, Some(&ahead), "n");
        assert_eq!(r.record.unwrap().batch_id, 9);

        // The checkpointed batch ended inside a transaction: resume at the
        // transaction's start, skip what is applied.
        let mut mid = checkpoint("b.000001:900", 9, None);
        mid.through = Some("b.000001:1200".into());
        let r = resume_point(Some(&s), Some(&mid), "n");
        assert_eq!(r.record.as_ref().unwrap().position, pos("b.000001", 900));
        assert_eq!(r.skip_through, Some(pos("b.000001", 1200)));
        mid.through = Some("b.000001:900".into());
        assert_eq!(resume_point(Some(&s), Some(&mid), "n").skip_through, None);

        let r = resume_point(None, None, "n");
        assert!(r.record.is_none());
        // An intent recorded before any checkpoint (first batch) still
        // bounds the replay.
        let first = checkpoint("", 0, Some("b.000001:700"));
        let r = resume_point(None, Some(&first), "n");
        assert!(r.record.is_none());
        assert_eq!(r.horizon, Some(pos("b.000001", 700)));
        assert_eq!(
            cmp_positions(&pos("b.000001", 1), &pos("b.000001", 1)),
            Some(std::cmp::Ordering::Equal)
        );
    }
}
