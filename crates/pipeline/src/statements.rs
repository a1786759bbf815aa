//! Statement-format DML in the stream: skip it, or stop.
//!
//! sluice replicates rows, so a statement a session logged in STATEMENT or
//! MIXED format (`pt-table-checksum` writing `percona.checksums`, a tool's
//! bookkeeping table, …) can only be passed over, and that is right only
//! when nothing it changed is replicated. [`StatementGuard::judge`] skips a
//! statement only when all of this holds, and otherwise refuses it with one
//! message saying which rule failed:
//!
//! 1. the binlog says which tables it writes ([`sluice_binlog::statement`]):
//!    undetermined statements (`SELECT f()`, unparsable text) are refused;
//! 2. none of them is replicated by the filter — checked on the name as
//!    written, lower-cased (a `lower_case_table_names` source compares names
//!    that way) and as the source's catalog spells it;
//! 3. the source shows each of them as a base table (not a view, and not
//!    invisible to the source user);
//! 4. none has triggers, and the source user can see triggers there (the
//!    TRIGGER privilege): statement-format triggers run again on a replica,
//!    their writes are never logged;
//! 5. no foreign key cascades from them into a replicated table;
//! 6. no stored function is called (a schema-qualified call always is one;
//!    an unqualified one is looked up in the default schema).
//!
//! Skipped statements are counted in `sluice_statements_skipped_total`
//! (label `table`, the first table written) and logged at debug. The
//! catalog's answers are reused for a few seconds (a tool writing one
//! table thousands of times costs a few queries) and forgotten at every
//! DDL event the stream passes.

use sluice_binlog::catalog::SourceCatalog;
use sluice_binlog::statement::{TableName, Writes};
use sluice_binlog::BinlogError;
use sluice_config::Filter;

/// What to do with a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing replicated is written: skip. The tables written (with
    /// cascades), for the log.
    Skip { tables: Vec<TableName> },
    /// Why the statement may write a replicated table, or why that cannot
    /// be told (`statement-based DML writes …`).
    Refuse(String),
}

/// Judges statement-format DML against the filter and the source catalog.
pub struct StatementGuard {
    filter: Filter,
    catalog: SourceCatalog,
}

impl StatementGuard {
    pub fn new(filter: Filter, catalog: SourceCatalog) -> Self {
        StatementGuard { filter, catalog }
    }

    /// Forgets what the catalog said: the stream passed a DDL statement
    /// (a trigger, view or function may have appeared).
    pub fn schema_changed(&mut self) {
        self.catalog.forget();
    }

    fn replicated(&self, t: &TableName) -> bool {
        self.filter.includes(&t.schema, &t.table)
            || self
                .filter
                .includes(&t.schema.to_lowercase(), &t.table.to_lowercase())
    }

    /// The verdict on one statement; errors are the catalog's (a lost
    /// connection is transient: the stream reconnects and asks again).
    pub async fn judge(&mut self, writes: &Result<Writes, String>) -> Result<Verdict, BinlogError> {
        let w = match writes {
            Ok(w) => w,
            Err(reason) => {
                return Ok(Verdict::Refuse(format!(
                    "statement-based DML: sluice cannot tell which tables it writes ({reason})"
                )))
            }
        };
        if w.tables.is_empty() {
            return Ok(Verdict::Refuse(
                "statement-based DML: sluice cannot tell which tables it writes (it names none)"
                    .into(),
            ));
        }
        if let Some(f) = w.qualified_calls.first() {
            return Ok(Verdict::Refuse(format!(
                "statement-based DML calls stored function {f}, which may write replicated tables"
            )));
        }
        for t in &w.tables {
            if self.replicated(t) {
                return Ok(Verdict::Refuse(format!(
                    "statement-based DML writes {t}, which the filter replicates"
                )));
            }
        }
        let functions = self.catalog.stored_functions(&w.calls).await?;
        if let Some(f) = functions.first() {
            return Ok(Verdict::Refuse(format!(
                "statement-based DML calls stored function {f}, which may write replicated tables"
            )));
        }
        let mut written = Vec::new();
        for t in &w.tables {
            let facts = self.catalog.table(t).await?;
            if facts.found.is_empty() {
                return Ok(Verdict::Refuse(format!(
                    "statement-based DML writes {t}, which the source does not show (dropped since, temporary, or the source user has no privilege on it), so sluice cannot tell what writing it does"
                )));
            }
            for (name, is_view) in &facts.found {
                if self.replicated(name) {
                    return Ok(Verdict::Refuse(format!(
                        "statement-based DML writes {name}, which the filter replicates"
                    )));
                }
                if *is_view {
                    return Ok(Verdict::Refuse(format!(
                        "statement-based DML writes through a view: {name} is a view, whose base tables may be replicated"
                    )));
                }
                written.push(name.clone());
            }
            match &facts.triggers {
                None => {
                    return Ok(Verdict::Refuse(format!(
                        "statement-based DML writes {t}, whose triggers the source user cannot see: GRANT TRIGGER ON `{}`.* TO the source user so that sluice can check them",
                        t.schema.replace('`', "``")
                    )))
                }
                Some(triggers) => {
                    if let Some(trigger) = triggers.first() {
                        return Ok(Verdict::Refuse(format!(
                            "statement-based DML writes {t}, whose trigger {trigger} may write replicated tables"
                        )));
                    }
                }
            }
            for c in &facts.cascades {
                if self.replicated(&c.child) {
                    return Ok(Verdict::Refuse(format!(
                        "statement-based DML writes {} through foreign key `{}` of {}, which cascades from {t}",
                        c.child, c.constraint, c.parent
                    )));
                }
                written.push(c.child.clone());
            }
        }
        written.sort();
        written.dedup();
        Ok(Verdict::Skip { tables: written })
    }
}

/// `schema.table` for logs and metric labels.
pub fn plain(t: &TableName) -> String {
    format!("{}.{}", t.schema, t.table)
}
