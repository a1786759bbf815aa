//! The snapshot's progress as `/status`, the progress log line, the metrics
//! and the events show it.
//!
//! One shared record per node: the term that runs a snapshot seeds it from
//! the stored progress rows (so a new leader shows what its predecessor
//! already copied), Load updates it after each chunk commits, and readers
//! take a copy. `rows_per_s` is measured over this term's copy of the
//! table; `eta_s` divides what is left of the estimate by it (`null` until
//! there is a rate). `chunks_total` is an estimate (rows estimated / chunk
//! size, at least the chunks done, plus one while the table is not done).
//! `restarts` counts this term's restarts of a table's copy after a DDL on
//! it ([`crate::snapshot::copying`]); each moves the table's rows copied
//! into `rows_recopied`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    Running,
    Done,
}

#[derive(Debug, Clone)]
struct Table {
    table: String,
    rows_copied: u64,
    rows_estimated: u64,
    chunks_done: u64,
    done: bool,
    /// Times a DDL restarted this table's copy in this term.
    restarts: u64,
    /// Rows copied in this term, and since when.
    term_rows: u64,
    since: Instant,
}

#[derive(Debug, Clone)]
struct View {
    state: State,
    rows_recopied: u64,
    chunk_rows: u64,
    tables: Vec<Table>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Mutex<View>>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(Mutex::new(View {
            state: State::None,
            rows_recopied: 0,
            chunk_rows: 1,
            tables: Vec::new(),
        })))
    }
}

/// One table as the term starts: `(table, rows copied, rows estimated,
/// chunks done, done)`.
pub type Seed = (String, u64, u64, u64, bool);

impl Progress {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A term starts (or continues) a snapshot of `tables`.
    pub fn begin(&self, tables: Vec<Seed>, rows_recopied: u64, chunk_rows: u64) {
        let mut v = self.view();
        let now = Instant::now();
        v.state = State::Running;
        v.rows_recopied = rows_recopied;
        v.chunk_rows = chunk_rows.max(1);
        v.tables = tables
            .into_iter()
            .map(
                |(table, rows_copied, rows_estimated, chunks_done, done)| Table {
                    table,
                    rows_copied,
                    rows_estimated,
                    chunks_done,
                    done,
                    restarts: 0,
                    term_rows: 0,
                    since: now,
                },
            )
            .collect();
        metrics::gauge!("sluice_snapshot_running").set(1.0);
        metrics::counter!("sluice_snapshot_rows_recopied_total").absolute(rows_recopied);
    }

    /// A chunk (or part of one) of `table` committed. Returns true when this
    /// completed the whole snapshot.
    pub fn chunk_done(&self, table: &str, rows: u64, chunk_end: bool, complete: bool) -> bool {
        let mut v = self.view();
        if let Some(t) = v.tables.iter_mut().find(|t| t.table == table) {
            t.rows_copied += rows;
            t.term_rows += rows;
            t.chunks_done += u64::from(chunk_end);
            t.done |= complete;
        }
        let finished = v.state == State::Running && v.tables.iter().all(|t| t.done);
        if finished {
            v.state = State::Done;
            metrics::gauge!("sluice_snapshot_running").set(0.0);
        }
        finished
    }

    /// A DDL restarted `table`'s copy: its rows copied so far count as
    /// copied again. Returns the snapshot's rows copied again in all.
    pub fn restart(&self, table: &str) -> u64 {
        let mut v = self.view();
        let mut moved = 0;
        if let Some(t) = v.tables.iter_mut().find(|t| t.table == table) {
            moved = t.rows_copied;
            t.rows_copied = 0;
            t.chunks_done = 0;
            t.done = false;
            t.restarts += 1;
            t.term_rows = 0;
            t.since = Instant::now();
        }
        v.rows_recopied += moved;
        metrics::counter!("sluice_snapshot_rows_recopied_total").increment(moved);
        v.rows_recopied
    }

    /// `(tables done, tables, rows copied, rows estimated)`, for the log.
    pub fn summary(&self) -> Option<(usize, usize, u64, u64)> {
        let v = self.view();
        (v.state == State::Running).then(|| {
            (
                v.tables.iter().filter(|t| t.done).count(),
                v.tables.len(),
                v.tables.iter().map(|t| t.rows_copied).sum(),
                v.tables.iter().map(|t| t.rows_estimated).sum(),
            )
        })
    }

    /// The `"snapshot"` object of `/status`.
    pub fn to_json(&self) -> serde_json::Value {
        let v = self.view().clone();
        let state = match v.state {
            State::None => "none",
            State::Running => "running",
            State::Done => "done",
        };
        let tables: Vec<serde_json::Value> = v
            .tables
            .iter()
            .map(|t| {
                let secs = t.since.elapsed().as_secs_f64();
                let rate = (secs > 0.0 && t.term_rows > 0).then(|| t.term_rows as f64 / secs);
                let estimated = t.rows_estimated.max(t.rows_copied);
                let chunks_total = if t.done {
                    t.chunks_done
                } else {
                    t.rows_estimated
                        .div_ceil(v.chunk_rows)
                        .max(t.chunks_done + 1)
                };
                let eta = if t.done {
                    Some(0.0)
                } else {
                    rate.map(|r| ((estimated - t.rows_copied) as f64 / r).round())
                };
                json!({
                    "table": t.table,
                    "rows_copied": t.rows_copied,
                    "rows_estimated": estimated,
                    "chunks_done": t.chunks_done,
                    "chunks_total": chunks_total,
                    "rows_per_s": rate.map(|r| (r * 10.0).round() / 10.0),
                    "eta_s": eta,
                    "done": t.done,
                    "restarts": t.restarts,
                })
            })
            .collect();
        json!({
            "state": state,
            "rows_recopied": v.rows_recopied,
            "tables": tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_issue_shape_and_finishes_once() {
        let p = Progress::default();
        assert_eq!(p.to_json()["state"], "none");
        p.begin(
            vec![
                ("db.a".into(), 0, 100, 0, false),
                ("db.b".into(), 50, 50, 1, true),
            ],
            7,
            40,
        );
        let j = p.to_json();
        assert_eq!(j["state"], "running");
        assert_eq!(j["rows_recopied"], 7);
        assert_eq!(j["tables"][0]["chunks_total"], 3);
        assert!(!p.chunk_done("db.a", 40, true, false));
        // A DDL restarts db.a: its 40 rows count as copied again.
        assert_eq!(p.restart("db.a"), 47);
        let j = p.to_json();
        assert_eq!(j["tables"][0]["rows_copied"], 0);
        assert_eq!(j["tables"][0]["chunks_done"], 0);
        assert_eq!(j["tables"][0]["restarts"], 1);
        assert!(!p.chunk_done("db.a", 40, true, false));
        assert!(p.chunk_done("db.a", 60, true, true));
        let j = p.to_json();
        assert_eq!(j["state"], "done");
        assert_eq!(j["tables"][0]["rows_copied"], 100);
        assert_eq!(j["tables"][0]["chunks_done"], 2);
        assert_eq!(j["tables"][0]["eta_s"], 0.0);
        assert!(!p.chunk_done("db.a", 1, true, true), "finishes once");
    }
}
