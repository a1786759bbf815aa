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
//!
//! A table without a key is one read at one P, but its rows come in parts
//! of at most `chunk_rows` ([`CopyChunk::more`]): several `Rows` for the
//! same barrier. Extract emits each part as it arrives, in order, all at P,
//! and keeps holding the stream at P until the last part is in; only then
//! is the barrier gone. Memory stays bounded by the feed channel: a reader
//! waits to send its next part while Extract (and, behind it, Load) is
//! busy. Whether a read still counts (a DDL restarted its copy) is decided
//! once, at its first part, for all of them. While such a read is being
//! streamed, other readers' holds are answered (and their barriers set up)
//! only after its last part: their chunks could not be emitted before it
//! anyway (they lie at or after its position), and would otherwise pile up
//! in the barriers for as long as the whole table takes. And while a part
//! waits for the stream to reach its position, Extract takes no feed
//! message as long as it can take stream messages ([`Feed::buffered`]), so
//! parts never pile up in Extract either.

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
    /// More parts of the same read follow (a keyless table streamed in
    /// parts): the barrier stays until a part without it.
    pub more: bool,
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
    /// Parts received and not yet emitted, in order.
    parts: std::collections::VecDeque<CopyChunk>,
    /// The last part (one without `more`) has arrived.
    whole: bool,
    /// Whether the read's parts count, decided at its first part.
    current: Option<bool>,
    /// A part with `more` arrived: the read is streamed in parts.
    parted: bool,
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
    /// Holds answered once no read is streamed in parts (see the docs).
    held: Vec<(u64, oneshot::Sender<()>)>,
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
            held: Vec::new(),
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
                if self.streaming() {
                    self.held.push((id, ack));
                } else {
                    self.hold(id, ack);
                }
            }
            FeedMsg::At { id, at } => {
                if let Some(b) = self.barriers.iter_mut().find(|b| b.id == id) {
                    b.at = Some(at);
                }
            }
            FeedMsg::Rows { id, chunk } => {
                if let Some(b) = self.barriers.iter_mut().find(|b| b.id == id) {
                    b.whole = !chunk.more;
                    b.parted |= chunk.more;
                    b.parts.push_back(chunk);
                }
                self.release();
            }
            FeedMsg::Cancel { id } => {
                self.barriers.retain(|b| b.id != id);
                self.release();
            }
        }
    }

    fn hold(&mut self, id: u64, ack: oneshot::Sender<()>) {
        self.barriers.push(Barrier {
            id,
            at: None,
            parts: std::collections::VecDeque::new(),
            whole: false,
            current: None,
            parted: false,
        });
        let _ = ack.send(());
    }

    /// A read is being streamed in parts and its last part is not in yet.
    fn streaming(&self) -> bool {
        self.barriers.iter().any(|b| b.parted && !b.whole)
    }

    /// Answers the holds that waited for a streamed read, once none is.
    fn release(&mut self) {
        if !self.streaming() {
            for (id, ack) in std::mem::take(&mut self.held) {
                self.hold(id, ack);
            }
        }
    }

    /// A part of a read streamed in parts waits for the stream to reach its
    /// position: while the stream can move, Extract takes no feed message
    /// (the reader waits: memory stays bounded).
    pub fn buffered(&self) -> bool {
        self.barriers
            .iter()
            .any(|b| b.parted && !b.parts.is_empty())
    }

    /// Whether Extract may take the next stream message: no read is
    /// between its hold and its position.
    pub fn stream_open(&self) -> bool {
        self.barriers.iter().all(|b| b.at.is_some())
    }

    /// Whether a stream message that lies after every barrier strictly
    /// before `first` (see [`crate::extract`]'s `first_position`) must wait:
    /// such a barrier does not have all its rows yet.
    pub fn blocks(&self, first: &Position) -> bool {
        self.barriers
            .iter()
            .any(|b| !b.whole && b.at.as_ref().is_some_and(|at| is_before(at, first)))
    }

    /// Chunks whose position is at or before `reached` (`strict`: before
    /// it), in position order, taken out; stops at the first such barrier
    /// without all its rows (after taking the parts it has). Chunks of a
    /// copy a DDL restarted are dropped here (they were read after the DDL,
    /// with the old columns).
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
            let b = &mut self.barriers[i];
            while let Some(chunk) = b.parts.pop_front() {
                let current = *b
                    .current
                    .get_or_insert_with(|| self.copying.is_current(&chunk.table, chunk.generation));
                if current {
                    out.push(chunk);
                } else {
                    tracing::debug!(table = %chunk.table, rows = chunk.rows.len(), "snapshot: chunk of a restarted copy dropped");
                }
            }
            if !b.whole {
                // Later parts (and every later barrier) wait for the rest.
                break;
            }
            self.barriers.remove(i);
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
            more: false,
            range: None,
            generation,
            restart: false,
        }
    }

    fn part(n: usize, first: bool, more: bool, generation: u64) -> CopyChunk {
        let schema = std::sync::Arc::new(sluice_core::TableSchema {
            schema: "db".into(),
            table: "k".into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            has_names: true,
        });
        CopyChunk {
            rows: (0..n)
                .map(|_| RowChange {
                    table: std::sync::Arc::clone(&schema),
                    kind: sluice_core::ChangeKind::Insert,
                    before: None,
                    after: Some(Vec::new()),
                })
                .collect(),
            clear: first,
            complete: !more,
            more,
            ..chunk("db.k", generation)
        }
    }

    #[test]
    fn a_read_in_parts_holds_the_stream_until_its_last_part() {
        let copying = Copying::default();
        copying.add(&[
            crate::snapshot::copying::tests::table("k"),
            crate::snapshot::copying::tests::table("a"),
        ]);
        let g = copying.next().expect("queued").generation;
        let ga = copying.next().expect("queued").generation;
        let (_tx, rx) = mpsc::channel(1);
        let mut feed = Feed::new(rx, HashSet::new(), copying.clone());
        let p = |o| Position::new("mysql-bin.000001".to_string(), o);
        let (ack, _) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 1, ack });
        feed.take(FeedMsg::At { id: 1, at: p(100) });
        // A keyed chunk read later, at 150, waits behind the streamed read.
        let (ack, _) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 2, ack });
        feed.take(FeedMsg::At { id: 2, at: p(150) });
        feed.take(FeedMsg::Rows {
            id: 2,
            chunk: chunk("db.a", ga),
        });
        assert!(feed.stream_open());
        // Nothing yet: a stream message after 100 waits.
        assert!(feed.blocks(&p(120)));
        assert!(feed.due(&p(200), false).is_empty());
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(3, true, true, g),
        });
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(3, false, true, g),
        });
        // The parts so far come out in order; the stream still waits at 100
        // and the later barrier is not passed.
        let out = feed.due(&p(200), false);
        assert_eq!(
            out.iter().map(|c| (c.clear, c.more)).collect::<Vec<_>>(),
            [(true, true), (false, true)]
        );
        assert!(feed.blocks(&p(120)));
        assert!(feed.due(&p(200), false).is_empty());
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(1, false, false, g),
        });
        assert!(!feed.blocks(&p(120)));
        let out = feed.due(&p(200), false);
        assert_eq!(
            out.iter()
                .map(|c| (c.table.as_str(), c.rows.len(), c.complete))
                .collect::<Vec<_>>(),
            [("db.k", 1, true), ("db.a", 0, false)]
        );
        assert!(!feed.blocks(&p(400)));
        assert!(feed.due(&p(400), false).is_empty());
    }

    #[test]
    fn another_readers_hold_waits_for_a_streamed_reads_last_part() {
        let copying = Copying::default();
        copying.add(&[crate::snapshot::copying::tests::table("k")]);
        let g = copying.next().expect("queued").generation;
        let (_tx, rx) = mpsc::channel(1);
        let mut feed = Feed::new(rx, HashSet::new(), copying.clone());
        let p = |o| Position::new("mysql-bin.000001".to_string(), o);
        let (ack, mut acked) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 1, ack });
        assert!(acked.try_recv().is_ok());
        feed.take(FeedMsg::At { id: 1, at: p(100) });
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(2, true, true, g),
        });
        // Not due yet: the part waits for the stream.
        assert!(feed.buffered());
        let (ack, mut acked) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 2, ack });
        assert!(acked.try_recv().is_err(), "answered while a read streams");
        assert!(
            feed.stream_open(),
            "a waiting hold does not stop the stream"
        );
        assert_eq!(feed.due(&p(100), false).len(), 1);
        assert!(!feed.buffered());
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(0, false, false, g),
        });
        assert!(acked.try_recv().is_ok());
        assert!(!feed.stream_open(), "the second read now holds the stream");
    }

    #[test]
    fn every_part_of_a_stale_read_is_dropped() {
        let copying = Copying::default();
        copying.add(&[crate::snapshot::copying::tests::table("k")]);
        let g = copying.next().expect("queued").generation;
        let (_tx, rx) = mpsc::channel(1);
        let mut feed = Feed::new(rx, HashSet::new(), copying.clone());
        let p = |o| Position::new("mysql-bin.000001".to_string(), o);
        let (ack, _) = oneshot::channel();
        feed.take(FeedMsg::Hold { id: 1, ack });
        feed.take(FeedMsg::At { id: 1, at: p(300) });
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(2, true, true, g),
        });
        // A DDL at 200 restarts the copy before the read is due.
        copying.ddl(&[("db".into(), "k".into())]);
        assert!(feed.due(&p(400), false).is_empty());
        feed.take(FeedMsg::Rows {
            id: 1,
            chunk: part(2, false, false, g),
        });
        assert!(feed.due(&p(400), false).is_empty());
        assert!(!feed.blocks(&p(400)));
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
