//! The hand-off between chunk readers and Extract: barriers.
//!
//! A reader may not learn its chunk's position P after Extract has already
//! passed P, or the chunk would land after changes it does not contain. So
//! a read goes: the reader sends [`FeedMsg::Hold`] and waits until Extract
//! confirms it stopped taking stream messages; only then it opens its
//! consistent snapshot and reads P (every event Extract took is committed,
//! hence at or before P); it sends [`FeedMsg::At`], and Extract goes on with
//! the stream *up to P*; it sends the rows ([`FeedMsg::Rows`]) and Extract
//! emits them as batches exactly at P — after every transaction ending at
//! or before P, before any later one. Streaming therefore stops for at most
//! one chunk's read.

use std::collections::HashSet;

use sluice_core::{Position, RowChange};
use tokio::sync::{mpsc, oneshot};

pub use crate::batch::{CopyMark, KeyRange};

use super::copying::Copying;
use crate::batch::is_before;

/// One chunk's rows and what Load records once they are committed.
#[derive(Debug)]
pub struct CopyChunk {
    /// Source `schema.table`.
    pub table: String,
    /// Target `(schema, table)` (routed).
    pub target: (String, String),
    /// Inserts of the chunk's rows (full images as of `at`).
    pub rows: Vec<RowChange>,
    /// JSON of the chunk key of the last row.
    pub last_key: Option<String>,
    /// The table has no key: clear the target table first.
    pub clear: bool,
    /// The table's last chunk.
    pub complete: bool,
    /// A re-copy of a keyed table: the range the chunk replaces.
    pub range: Option<KeyRange>,
    /// The table's copy this chunk belongs to ([`super::copying`]).
    pub generation: u64,
    /// The first chunk of a copy restarted after a DDL: Load resets the
    /// table's progress first.
    pub restart: bool,
}

/// Reader → Extract.
#[derive(Debug)]
pub enum FeedMsg {
    /// Stop taking stream messages; answer when stopped.
    Hold {
        id: u64,
        ack: oneshot::Sender<()>,
    },
    /// The read view of `id` is at `at`.
    At {
        id: u64,
        at: Position,
    },
    Rows {
        id: u64,
        chunk: CopyChunk,
    },
    /// The read of `id` failed: forget it (the stream goes on).
    Cancel {
        id: u64,
    },
}

struct Barrier {
    id: u64,
    at: Option<Position>,
    chunk: Option<CopyChunk>,
}

/// Extract's side of the feed.
pub struct Feed {
    rx: mpsc::Receiver<FeedMsg>,
    barriers: Vec<Barrier>,
    /// Keyless tables whose copy is pending: their stream rows are dropped
    /// (the copy, applied at its position, replaces the whole table).
    pub dropping: HashSet<(String, String)>,
    /// The term's copies: which chunks still count, and restarts.
    pub copying: Copying,
    closed: bool,
}

impl Feed {
    pub fn new(
        rx: mpsc::Receiver<FeedMsg>,
        dropping: HashSet<(String, String)>,
        copying: Copying,
    ) -> Self {
        Feed {
            rx,
            barriers: Vec::new(),
            dropping,
            copying,
            closed: false,
        }
    }

    /// The next message (never resolves once every reader is done).
    pub async fn recv(&mut self) -> Option<FeedMsg> {
        if self.closed {
            return std::future::pending().await;
        }
        let msg = self.rx.recv().await;
        if msg.is_none() {
            self.closed = true;
        }
        msg
    }

    /// Takes a message in.
    pub fn take(&mut self, msg: FeedMsg) {
        match msg {
            FeedMsg::Hold { id, ack } => {
                self.barriers.push(Barrier {
                    id,
                    at: None,
                    chunk: None,
                });
                let _ = ack.send(());
            }
            FeedMsg::At { id, at } => {
                if let Some(b) = self.barriers.iter_mut().find(|b| b.id == id) {
                    b.at = Some(at);
                }
            }
            FeedMsg::Rows { id, chunk } => {
                if let Some(b) = self.barriers.iter_mut().find(|b| b.id == id) {
                    b.chunk = Some(chunk);
                }
            }
            FeedMsg::Cancel { id } => self.barriers.retain(|b| b.id != id),
        }
    }

    /// Whether Extract may take the next stream message: no read is
    /// between its hold and its position.
    pub fn stream_open(&self) -> bool {
        self.barriers.iter().all(|b| b.at.is_some())
    }

    /// Whether a stream message that lies after every barrier strictly
    /// before `first` (see [`crate::extract`]'s `first_position`) must wait:
    /// such a barrier has no rows yet.
    pub fn blocks(&self, first: &Position) -> bool {
        self.barriers
            .iter()
            .any(|b| b.chunk.is_none() && b.at.as_ref().is_some_and(|at| is_before(at, first)))
    }

    /// Chunks whose position is at or before `reached` (`strict`: before
    /// it), in position order, taken out; stops at the first such barrier
    /// without rows. Chunks of a copy a DDL restarted are dropped here (they
    /// were read after the DDL, with the old columns).
    pub fn due(&mut self, reached: &Position, strict: bool) -> Vec<CopyChunk> {
        let mut ready: Vec<(Position, u64)> = self
            .barriers
            .iter()
            .filter_map(|b| {
                let at = b.at.as_ref()?;
                let passed = if strict {
                    is_before(at, reached)
                } else {
                    !is_before(reached, at)
                };
                passed.then(|| (at.clone(), b.id))
            })
            .collect();
        ready.sort_by(|a, b| {
            crate::batch::cmp_positions(&a.0, &b.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        let mut out = Vec::new();
        for (_, id) in ready {
            let Some(i) = self.barriers.iter().position(|b| b.id == id) else {
                continue;
            };
            if self.barriers[i].chunk.is_none() {
                break;
            }
            let b = self.barriers.remove(i);
            if let Some(chunk) = b.chunk {
                if self.copying.is_current(&chunk.table, chunk.generation) {
                    out.push(chunk);
                } else {
                    tracing::debug!(table = %chunk.table, rows = chunk.rows.len(), "snapshot: chunk of a restarted copy dropped");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(table: &str, generation: u64) -> CopyChunk {
        CopyChunk {
            table: table.into(),
            target: ("db".into(), "t".into()),
            rows: Vec::new(),
            last_key: None,
            clear: false,
            complete: false,
            range: None,
            generation,
            restart: false,
        }
    }

    #[test]
    fn chunks_of_a_copy_a_ddl_restarted_are_dropped_when_due() {
        let copying = Copying::default();
        copying.add(&[crate::snapshot::copying::tests::table("a")]);
        let take = copying.next().expect("queued");
        let (_tx, rx) = mpsc::channel(1);
        let mut feed = Feed::new(rx, HashSet::new(), copying.clone());
        let p = |o| Position::new("mysql-bin.000001".to_string(), o);
        for (id, at) in [(1, 100), (2, 300)] {
            let (ack, _) = oneshot::channel();
            feed.take(FeedMsg::Hold { id, ack });
            feed.take(FeedMsg::At { id, at: p(at) });
            feed.take(FeedMsg::Rows {
                id,
                chunk: chunk("db.a", take.generation),
            });
        }
        // A failed read is forgotten.
        let (ack, _) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 3, ack });
        assert!(!feed.stream_open());
        feed.take(FeedMsg::Cancel { id: 3 });
        assert!(feed.stream_open());
        assert_eq!(feed.due(&p(200), false).len(), 1);
        // A DDL at 200 on the table: the chunk read at 300 is stale.
        copying.ddl(&[("db".into(), "a".into())]);
        assert!(feed.due(&p(400), false).is_empty());
        assert!(!feed.blocks(&p(400)));
    }
}
