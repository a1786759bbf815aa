//! Which tables are being copied, and restarting a table's copy when a DDL
//! on it passes in the stream.
//!
//! A chunk reader reads with the column list it planned; a DDL on the table
//! (`ALTER TABLE … ADD/DROP COLUMN`, …) makes every later read of that plan
//! wrong. So the copy of a table never mixes two schemas: when Extract
//! passes a DDL statement naming a table whose copy is not yet whole in the
//! stream, the table gets a new **generation** ([`Copying::ddl`]) and goes
//! back to the readers' queue from its first chunk, to be described again
//! from the source. Every chunk read under the old generation that is not
//! yet in the stream lies after the DDL (Extract emits chunks at or before a
//! position before taking the transaction after it), and is dropped when it
//! falls due ([`Copying::is_current`]); the chunks already emitted lie
//! before the DDL and stay correct (the DDL is applied on the target after
//! them). The restarted copy's chunks are read after the DDL committed, so
//! they land in the stream after it: after the DDL was applied on the
//! target. Generations come from one counter per term, so a stale chunk
//! can never pass for a later copy of the same table.
//!
//! A table is done here when its last chunk of the current generation is
//! emitted ([`Copying::completed`]); the readers end once no table is left,
//! so a restart that a DDL asks for late still finds a reader.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::plan::TableCopy;

#[derive(Debug)]
struct Entry {
    copy: TableCopy,
    generation: u64,
    /// The copy was restarted: describe the table again before reading.
    restarted: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Source `schema.table` → its copy, while not whole in the stream.
    tables: HashMap<String, Entry>,
    /// Tables waiting for a reader, in order.
    queue: VecDeque<String>,
    next_generation: u64,
    /// Barrier ids ([`super::feed`]), unique in the term: a re-copy's
    /// readers must not reuse the id of a stale barrier still in the feed.
    next_read: u64,
}

/// One table a reader takes.
#[derive(Debug, Clone)]
pub struct Take {
    pub copy: TableCopy,
    pub generation: u64,
    /// Describe the table again (its definition changed).
    pub restarted: bool,
}

/// See the module docs; shared by Extract and the chunk readers of a term.
#[derive(Debug, Clone, Default)]
pub struct Copying(Arc<(Mutex<State>, Notify)>);

impl Copying {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `tables` for the readers.
    pub fn add(&self, tables: &[TableCopy]) {
        let mut s = self.state();
        for t in tables {
            let name = t.source.schema.qualified_name();
            s.next_generation += 1;
            let generation = s.next_generation;
            s.tables.insert(
                name.clone(),
                Entry {
                    copy: t.clone(),
                    generation,
                    restarted: false,
                },
            );
            if !s.queue.contains(&name) {
                s.queue.push_back(name);
            }
        }
        drop(s);
        self.0 .1.notify_waiters();
    }

    /// The next table to read; `None` when none waits now.
    pub fn next(&self) -> Option<Take> {
        let mut s = self.state();
        while let Some(name) = s.queue.pop_front() {
            if let Some(e) = s.tables.get(&name) {
                return Some(Take {
                    copy: e.copy.clone(),
                    generation: e.generation,
                    restarted: e.restarted,
                });
            }
        }
        None
    }

    /// A fresh barrier id.
    pub fn read_id(&self) -> u64 {
        let mut s = self.state();
        s.next_read += 1;
        s.next_read
    }

    /// Every table is whole in the stream.
    pub fn finished(&self) -> bool {
        self.state().tables.is_empty()
    }

    /// Waits for a change (a table queued or finished). Create the future
    /// before checking, so a change in between is not missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.0 .1.notified()
    }

    /// Whether `generation` is still the copy of `table` that counts.
    pub fn is_current(&self, table: &str, generation: u64) -> bool {
        self.state()
            .tables
            .get(table)
            .is_some_and(|e| e.generation == generation)
    }

    /// The table's last chunk of `generation` is in the stream.
    pub fn completed(&self, table: &str, generation: u64) {
        let mut s = self.state();
        if s.tables
            .get(table)
            .is_some_and(|e| e.generation == generation)
        {
            s.tables.remove(table);
        }
        drop(s);
        self.0 .1.notify_waiters();
    }

    /// A DDL statement naming `tables` (source `(schema, table)`) passed in
    /// the stream: the copies still pending among them restart from their
    /// first chunk. Returns the restarted tables.
    pub fn ddl(&self, tables: &[(String, String)]) -> Vec<String> {
        let mut s = self.state();
        let mut restarted = Vec::new();
        for (schema, table) in tables {
            let name = format!("{schema}.{table}");
            if !s.tables.contains_key(&name) || restarted.contains(&name) {
                continue;
            }
            s.next_generation += 1;
            let generation = s.next_generation;
            if let Some(e) = s.tables.get_mut(&name) {
                e.generation = generation;
                e.restarted = true;
                e.copy.after = None;
            }
            if !s.queue.contains(&name) {
                s.queue.push_back(name.clone());
            }
            restarted.push(name);
        }
        drop(s);
        if !restarted.is_empty() {
            self.0 .1.notify_waiters();
        }
        restarted
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use sluice_binlog::snapshot::SourceTable;
    use sluice_core::{Column, TableSchema, Value};

    use super::*;

    /// A planned copy of `db.<table>`, keyed on `id`, already after key 5.
    pub(in crate::snapshot) fn table(name: &str) -> TableCopy {
        let schema = Arc::new(TableSchema {
            schema: "db".into(),
            table: name.into(),
            columns: vec![Column {
                name: "id".into(),
                type_code: 3,
                meta: 0,
                nullable: false,
                unsigned: false,
                collation: None,
                labels: None,
            }],
            primary_key: vec![0],
            has_names: true,
        });
        TableCopy {
            source: Arc::new(SourceTable {
                schema,
                column_types: vec!["int(11)".into()],
                key: vec![0],
                key_name: Some("PRIMARY".into()),
                create_sql: String::new(),
                rows_estimate: 10,
            }),
            target: ("db".into(), name.into()),
            after: Some(vec![Value::Int(5)]),
            recopy: None,
        }
    }

    #[test]
    fn a_ddl_restarts_only_pending_copies_from_their_first_chunk() {
        let c = Copying::default();
        c.add(&[table("a"), table("b")]);
        let a = c.next().expect("a queued");
        assert!(!a.restarted);
        assert_eq!(a.copy.after, Some(vec![Value::Int(5)]));
        let b = c.next().expect("b queued");
        assert!(c.next().is_none());
        // b is whole in the stream: a DDL on it changes nothing.
        c.completed("db.b", b.generation);
        assert!(!c.is_current("db.b", b.generation));
        let restarted = c.ddl(&[
            ("db".into(), "a".into()),
            ("db".into(), "b".into()),
            ("db".into(), "a".into()),
        ]);
        assert_eq!(restarted, ["db.a"]);
        // The old copy's chunks no longer count; the new one starts over.
        assert!(!c.is_current("db.a", a.generation));
        let again = c.next().expect("a queued again");
        assert!(again.restarted);
        assert_eq!(again.copy.after, None);
        assert!(again.generation > b.generation);
        assert!(c.is_current("db.a", again.generation));
        // The old copy's last chunk does not finish the table.
        c.completed("db.a", a.generation);
        assert!(!c.finished());
        c.completed("db.a", again.generation);
        assert!(c.finished());
    }

    #[test]
    fn a_restart_of_a_queued_copy_is_queued_once() {
        let c = Copying::default();
        c.add(&[table("a")]);
        assert_eq!(c.ddl(&[("db".into(), "a".into())]), ["db.a"]);
        let a = c.next().expect("a queued");
        assert!(a.restarted);
        assert!(c.next().is_none());
    }
}
