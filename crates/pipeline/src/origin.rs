//! Recognising what a bidirectional pipeline's peer applied (ARCHITECTURE.md
//! invariant 10, "no loop").
//!
//! The peer's loader tags every transaction it applies to this pipeline's
//! source (see `sluice_load::apply::origin` for the mechanisms and their
//! privileges). Select passes every event through a [`Recognizer`], which
//! drops a whole transaction when
//!
//! * an event of it carries the peer's tag as its header `server_id`
//!   (`tagging: server_id`; MariaDB writes the session's `server_id` into
//!   every event header and GTID of the session's transactions), or
//! * its first rows event is on `sluice_meta.origin` and names the peer in
//!   the `pipeline` column (`tagging: marker`; the peer's loader writes that
//!   row first in every transaction).
//!
//! Both are decided at the transaction's first event carrying rows, before
//! any slice of it is sent, so a transaction split into slices or batches
//! on either side is dropped whole: on the peer's side every slice was
//! applied by a tagged session (or in a transaction starting with a marker),
//! and on this side the decision holds until the transaction's end. The
//! end itself still passes (a chunk without rows), so the position moves
//! past the dropped transaction without a write to the target; dropped
//! transactions are counted in `sluice_peer_transactions_dropped_total`,
//! never as lost or missed.
//!
//! The `sluice_meta` schema itself (checkpoints, terms, conflicts and
//! markers of pipelines writing to this source) is never replicated by a
//! bidirectional pipeline: it is sluice's own state of *that* server.
//!
//! Not to be confused with the pipeline's own replica `server_id` (the id
//! Select registers with, whose clash at reconnect Select waits out): the
//! tags are different numbers, checked apart by the config.

use sluice_binlog::{EventKind, RowsEvent};
use sluice_core::Value;

/// The pipeline replicating the other way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its `name` (what its marker rows hold).
    pub name: String,
    /// Its tag (its `bidirectional.server_id`).
    pub tag: u32,
}

/// The database whose tables a bidirectional pipeline never replicates.
pub const META_SCHEMA: &str = sluice_load::META_SCHEMA;

/// Per-stream state of the recognition (see the module docs).
#[derive(Debug)]
pub struct Recognizer {
    peer: Option<Peer>,
    /// The current transaction is the peer's.
    dropping: bool,
    /// A rows event of the current transaction was seen.
    rows_seen: bool,
}

impl Recognizer {
    pub fn new(peer: Option<Peer>) -> Self {
        Recognizer {
            peer,
            dropping: false,
            rows_seen: false,
        }
    }

    /// The event to pass on, `None` to drop it. A dropped DDL statement
    /// becomes a bare transaction end.
    pub fn see(&mut self, server_id: u32, kind: EventKind) -> Option<EventKind> {
        let Some(peer) = &self.peer else {
            return Some(kind);
        };
        match kind {
            EventKind::Begin { .. } => {
                self.dropping = server_id == peer.tag;
                self.rows_seen = false;
                Some(kind)
            }
            EventKind::Rows(rows) => {
                if server_id == peer.tag {
                    self.dropping = true;
                }
                if !self.rows_seen {
                    self.rows_seen = true;
                    if is_marker_of(&rows, &peer.name) {
                        self.dropping = true;
                    }
                }
                if self.dropping || rows.table.schema == META_SCHEMA {
                    return None;
                }
                Some(EventKind::Rows(rows))
            }
            EventKind::Commit { .. } => {
                if self.dropping {
                    dropped(peer);
                }
                self.dropping = false;
                self.rows_seen = false;
                Some(kind)
            }
            EventKind::Ddl { .. } if server_id == peer.tag => {
                dropped(peer);
                self.dropping = false;
                self.rows_seen = false;
                Some(EventKind::Commit { xid: None })
            }
            other => Some(other),
        }
    }
}

fn dropped(peer: &Peer) {
    metrics::counter!("sluice_peer_transactions_dropped_total").increment(1);
    tracing::trace!(peer = %peer.name, "transaction applied by the peer pipeline dropped");
}

/// Whether `rows` is the peer's marker row (`sluice_meta.origin`, column
/// `pipeline` = the peer's name).
fn is_marker_of(rows: &RowsEvent, peer: &str) -> bool {
    let t = &rows.table;
    if t.schema != META_SCHEMA || t.table != sluice_load::apply::origin::ORIGIN_TABLE {
        return false;
    }
    let Some(col) = t.column_index("pipeline") else {
        return false;
    };
    let mut changes = Vec::new();
    if rows.decode(&mut changes).is_err() {
        return false;
    }
    changes.first().is_some_and(|c| {
        c.after
            .as_ref()
            .or(c.before.as_ref())
            .and_then(|r| r.get(col))
            .is_some_and(|v| matches!(v, Value::Text(s) if s == peer))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_binlog::rows::RowsKind;
    use sluice_core::schema::type_code as tc;
    use sluice_core::{Column, TableSchema};

    use super::*;

    const PEER_TAG: u32 = 3_000_000_001;

    fn col(name: &str, type_code: u8, meta: u16, collation: Option<u16>) -> Column {
        Column {
            name: name.into(),
            type_code,
            meta,
            nullable: false,
            unsigned: true,
            collation,
            labels: None,
        }
    }

    /// A one-row insert into `schema.table`: `(VARCHAR(64) text, INT 7)`.
    fn rows(schema: &str, table: &str, first: &str, text: &str) -> EventKind {
        let t = TableSchema {
            schema: schema.into(),
            table: table.into(),
            columns: vec![
                col(first, tc::VARCHAR, 256, Some(45)),
                col("worker", tc::LONG, 0, None),
            ],
            primary_key: vec![0, 1],
            has_names: true,
        };
        // Null bitmap, 2-byte length (max 256 bytes), the text, INT LE.
        let mut data = vec![0u8];
        data.extend_from_slice(&(text.len() as u16).to_le_bytes());
        data.extend_from_slice(text.as_bytes());
        data.extend_from_slice(&7u32.to_le_bytes());
        EventKind::Rows(RowsEvent {
            table: Arc::new(t),
            kind: RowsKind::Write,
            columns: vec![0b11],
            columns_after: Vec::new(),
            data,
        })
    }

    fn begin() -> EventKind {
        EventKind::Begin { gtid: None }
    }

    fn commit() -> EventKind {
        EventKind::Commit { xid: Some(1) }
    }

    fn peer() -> Option<Peer> {
        Some(Peer {
            name: "b2a".into(),
            tag: PEER_TAG,
        })
    }

    /// What passes of one transaction `(server_id, event)…`.
    fn passed(r: &mut Recognizer, events: Vec<(u32, EventKind)>) -> Vec<&'static str> {
        events
            .into_iter()
            .filter_map(|(id, e)| r.see(id, e))
            .map(|e| match e {
                EventKind::Begin { .. } => "begin",
                EventKind::Rows(_) => "rows",
                EventKind::Commit { .. } => "commit",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn the_peers_tag_drops_the_whole_transaction_but_not_its_end() {
        let mut r = Recognizer::new(peer());
        let txn = |id| {
            vec![
                (id, begin()),
                (id, rows("app", "t", "v", "x")),
                (id, rows("app", "t", "v", "y")),
                (id, commit()),
            ]
        };
        assert_eq!(passed(&mut r, txn(PEER_TAG)), ["begin", "commit"]);
        // The next transaction of another server passes whole.
        assert_eq!(passed(&mut r, txn(1)), ["begin", "rows", "rows", "commit"]);
        // Slices of one transaction: the decision holds until its end.
        assert_eq!(
            passed(
                &mut r,
                vec![(PEER_TAG, begin()), (PEER_TAG, rows("app", "t", "v", "x"))]
            ),
            ["begin"]
        );
        assert_eq!(
            passed(
                &mut r,
                vec![(PEER_TAG, rows("app", "t", "v", "y")), (PEER_TAG, commit())]
            ),
            ["commit"]
        );
        // A tagged DDL statement becomes a bare end.
        let ddl = EventKind::Ddl {
            gtid: None,
            schema: "app".into(),
            sql: "ALTER TABLE t ADD c INT".into(),
        };
        assert_eq!(passed(&mut r, vec![(PEER_TAG, ddl)]), ["commit"]);
        // Without a peer everything passes, sluice_meta included.
        let mut plain = Recognizer::new(None);
        assert_eq!(
            passed(
                &mut plain,
                vec![
                    (PEER_TAG, begin()),
                    (PEER_TAG, rows("sluice_meta", "checkpoint", "v", "x")),
                    (PEER_TAG, commit())
                ]
            ),
            ["begin", "rows", "commit"]
        );
    }

    #[test]
    fn the_peers_marker_first_drops_the_transaction_and_sluice_meta_never_passes() {
        let mut r = Recognizer::new(peer());
        let marked = |name: &str| {
            vec![
                (1, begin()),
                (1, rows(META_SCHEMA, "origin", "pipeline", name)),
                (1, rows("app", "t", "v", "x")),
                (1, commit()),
            ]
        };
        assert_eq!(passed(&mut r, marked("b2a")), ["begin", "commit"]);
        // Another pipeline's marker: its rows pass, the marker does not.
        assert_eq!(passed(&mut r, marked("c2a")), ["begin", "rows", "commit"]);
        // A marker that is not first does not drop the transaction.
        let late = vec![
            (1, begin()),
            (1, rows("app", "t", "v", "x")),
            (1, rows(META_SCHEMA, "origin", "pipeline", "b2a")),
            (1, commit()),
        ];
        assert_eq!(passed(&mut r, late), ["begin", "rows", "commit"]);
        assert!(is_marker_of(
            match &rows(META_SCHEMA, "origin", "pipeline", "b2a") {
                EventKind::Rows(r) => r,
                _ => unreachable!(),
            },
            "b2a"
        ));
    }
}
