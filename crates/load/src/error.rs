//! Load errors, classified where they are created.
//!
//! The rule the pipeline relies on: a [`Transient`](ErrorClass::Transient)
//! error means "the same batch may succeed if applied again later" (the
//! connection dropped, a deadlock or lock wait timeout rolled a transaction
//! back, the server is restarting or out of connections); a
//! [`Definite`](ErrorClass::Definite) error means the target will keep
//! refusing this batch until a human changes something (a value does not fit
//! the column, a column or table is missing, a unique key other than the
//! replication key collides even in source order).
//!
//! Every error that concerns data names the batch, the table and the key of a
//! row involved, and carries the server's own error number, SQLSTATE and text.

use std::fmt;

use sluice_core::{Classify, ErrorClass};

/// A MySQL/MariaDB server error as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The server's error number, e.g. 1406.
    pub code: u16,
    /// The SQLSTATE, e.g. `22001`, when the server sent one.
    pub sqlstate: Option<String>,
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(state) => write!(f, "error {} ({state}): {}", self.code, self.message),
            None => write!(f, "error {}: {}", self.code, self.message),
        }
    }
}

impl ServerError {
    /// The server error inside a sqlx error, if it is one.
    pub fn from_sqlx(err: &sqlx::Error) -> Option<Self> {
        let sqlx::Error::Database(db) = err else {
            return None;
        };
        let mysql = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()?;
        Some(ServerError {
            code: mysql.number(),
            sqlstate: mysql.code().map(str::to_string),
            message: mysql.message().to_string(),
        })
    }

    /// `at row N` in a multi-row statement's error (1-based), as MySQL and
    /// MariaDB append to data errors (1406, 1264, 1366, 1292, 1048, ...).
    pub fn row_number(&self) -> Option<usize> {
        let at = self.message.rfind(" at row ")?;
        let digits: String = self.message[at + 8..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

/// Server error numbers after which the same statements can succeed later
/// (the list shared with the source's classifier).
///
/// Everything else the server says is definite: retrying a data error, a
/// missing table or column, a privilege error or a constraint violation
/// produces the same error again.
pub fn is_transient_code(code: u16) -> bool {
    sluice_core::error::is_transient_server_code(code)
}

/// MySQL's error for a duplicate entry on a unique key.
pub const ER_DUP_ENTRY: u16 = 1062;
/// "Column 'x' cannot be null".
pub const ER_BAD_NULL: u16 = 1048;

/// Classifies a sqlx error: server errors by number, and the driver's own
/// errors by what they mean for a retry.
pub fn classify_sqlx(err: &sqlx::Error) -> ErrorClass {
    use sqlx::Error as E;
    match err {
        E::Database(_) => match ServerError::from_sqlx(err) {
            Some(s) if is_transient_code(s.code) => ErrorClass::Transient,
            _ => ErrorClass::Definite,
        },
        // A TLS handshake the certificate check failed (rustls reports it
        // as an I/O error wrapping a `rustls::Error`): the next connection
        // meets the same certificate.
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            ErrorClass::Definite
        }
        // The connection broke (reset, refused while the server restarts,
        // EOF after KILL) or the pool could not get one in time: a new
        // connection later may work.
        E::Io(_) | E::PoolTimedOut | E::WorkerCrashed => ErrorClass::Transient,
        // A packet out of sequence is what a connection cut mid-result looks
        // like; a fresh connection resolves it.
        E::Protocol(_) => ErrorClass::Transient,
        _ => ErrorClass::Definite,
    }
}

/// What can go wrong in the load stage.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A change the loader refuses before sending anything to the target:
    /// a missing row image, a column absent from the image (the source does
    /// not log FULL images), a partial JSON update, a NULL key, a table map
    /// without column names.
    #[error("batch {batch_id}: table {table}, key {key}: {reason}")]
    Refused {
        batch_id: u64,
        table: String,
        key: String,
        reason: String,
    },
    /// The target refused a statement that writes rows of one table.
    #[error(
        "batch {batch_id}: table {table}, key {}: the target refused the change: {server}{}",
        detail.key,
        attempts_note(*attempts, *class)
    )]
    Rejected {
        batch_id: u64,
        table: String,
        /// The row: its key as text, its key values, the statement.
        detail: Box<RejectedDetail>,
        server: ServerError,
        class: ErrorClass,
        attempts: u32,
        /// The row collided with another row on a unique key other than
        /// its replication key (1062, or the upsert guard's 1048).
        unique_conflict: bool,
    },
    /// The connection, transaction or driver failed (no server error to
    /// blame on a row).
    #[error("{}{what}: {source}{}", batch_prefix(*batch_id), attempts_note(*attempts, *class))]
    Target {
        batch_id: Option<u64>,
        what: String,
        #[source]
        source: sqlx::Error,
        class: ErrorClass,
        attempts: u32,
    },
    /// The target's metadata migrations failed.
    #[error("migrating the target's metadata schema `{schema}`: {source}")]
    Migrate {
        schema: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Another leadership term owns the target: this node must stop
    /// writing (see `migrations/0003_term.sql`).
    #[error("fenced out on the target: pipeline {pipeline:?} is now written by term {current} (node {node}), this node holds term {mine}")]
    FencedOut {
        pipeline: String,
        mine: i64,
        current: i64,
        node: String,
    },
    /// The target URL cannot be used.
    #[error("target URL {url}: {message}")]
    Config { url: String, message: String },
    /// The target cannot carry a bidirectional pipeline's origin tag (see
    /// [`crate::apply::origin`]): missing privilege, a MySQL server, a tag
    /// equal to the target's own server id.
    #[error("bidirectional tagging on the target: {message}")]
    Tagging { message: String },
    /// A conflict under `conflicts: stop` (see [`crate::apply::conflict`]):
    /// the target row is not what the source held before the change.
    #[error("batch {batch_id}: table {table}, key {key}: conflict: the target row is not what the source held before the change (bidirectional.conflicts is stop); target row: {}, source before image: {}", .row.target, .row.before)]
    Conflict {
        batch_id: u64,
        table: String,
        key: String,
        row: Box<ConflictRow>,
    },
    /// `conflicts: {newer_wins: COLUMN}` and a keyed table without that
    /// column: its conflicts could not be decided, so the source would win
    /// them silently.
    #[error("batch {batch_id}: table {table} has no column `{column}`, which bidirectional.conflicts.newer_wins compares: add it to the table on both sides, or choose another policy")]
    NewerWinsColumn {
        batch_id: u64,
        table: String,
        column: String,
    },
    /// The target refused (or failed to run) a replicated DDL statement.
    #[error("batch {batch_id}: DDL failed on the target: {sql}: {source}")]
    Ddl {
        batch_id: u64,
        sql: String,
        #[source]
        source: sqlx::Error,
        class: ErrorClass,
    },
}

/// What else [`LoadError::Conflict`] knows about the row (boxed: errors
/// travel in `Result`s everywhere).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConflictRow {
    /// The key columns and values, by name: what `sluice errors skip
    /// --scope change` needs to drop exactly this row.
    pub key_values: Vec<(String, sluice_core::Value)>,
    /// The target row (JSON), or `none`.
    pub target: String,
    /// What the source held before the change, in words.
    pub before: String,
}

/// What else [`LoadError::Rejected`] knows about the refused row (boxed:
/// errors travel in `Result`s everywhere).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RejectedDetail {
    /// The row the server named (`at row N`), or the first row of the
    /// statement and how many others it carried, as text.
    pub key: String,
    /// The key (or, for tables without one, every column) of the row the
    /// server named, by column name; `None` when the statement carried
    /// several rows and the server did not say which failed.
    pub key_values: Option<Vec<(String, sluice_core::Value)>>,
    /// The statement that failed (SQL with placeholders, shortened).
    pub statement: String,
}

fn batch_prefix(batch_id: Option<u64>) -> String {
    batch_id.map_or_else(String::new, |b| format!("batch {b}: "))
}

fn attempts_note(attempts: u32, class: ErrorClass) -> String {
    if attempts > 1 {
        format!(" ({class}; gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl LoadError {
    /// A connection/transaction-level error from sqlx.
    pub(crate) fn target(
        batch_id: Option<u64>,
        what: impl Into<String>,
        source: sqlx::Error,
    ) -> Self {
        let class = classify_sqlx(&source);
        LoadError::Target {
            batch_id,
            what: what.into(),
            source,
            class,
            attempts: 1,
        }
    }

    /// A DDL statement the target refused or could not run.
    pub(crate) fn ddl(batch_id: u64, sql: &str, source: sqlx::Error) -> Self {
        let class = classify_sqlx(&source);
        LoadError::Ddl {
            batch_id,
            sql: sql.to_string(),
            source,
            class,
        }
    }

    /// The server error behind this error, if any.
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            LoadError::Rejected { server, .. } => Some(server.clone()),
            LoadError::Target { source, .. } | LoadError::Ddl { source, .. } => {
                ServerError::from_sqlx(source)
            }
            _ => None,
        }
    }

    /// Records how many attempts were made before this error was surfaced.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        match &mut self {
            LoadError::Rejected { attempts, .. } | LoadError::Target { attempts, .. } => {
                *attempts = n;
            }
            _ => {}
        }
        self
    }

    /// A collision with another row on a unique key other than the
    /// replication key (which upserts absorb).
    /// Another term owns the target.
    pub fn is_fenced_out(&self) -> bool {
        matches!(self, LoadError::FencedOut { .. })
    }

    pub fn is_unique_conflict(&self) -> bool {
        matches!(
            self,
            LoadError::Rejected {
                unique_conflict: true,
                ..
            }
        )
    }
}

impl Classify for LoadError {
    fn class(&self) -> ErrorClass {
        match self {
            LoadError::Rejected { class, .. }
            | LoadError::Target { class, .. }
            | LoadError::Ddl { class, .. } => *class,
            LoadError::Migrate { source, .. } => match source {
                sqlx::migrate::MigrateError::Execute(e) => classify_sqlx(e),
                _ => ErrorClass::Definite,
            },
            LoadError::Refused { .. }
            | LoadError::Config { .. }
            | LoadError::FencedOut { .. }
            | LoadError::Tagging { .. }
            | LoadError::Conflict { .. }
            | LoadError::NewerWinsColumn { .. } => ErrorClass::Definite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        for code in [1040, 1053, 1205, 1213, 1927, 2006, 2013, 1317, 1290] {
            assert!(is_transient_code(code), "{code} should be transient");
        }
        for code in [1406, 1054, 1146, 1062, 1264, 1366, 1292, 1048, 1045, 1142] {
            assert!(!is_transient_code(code), "{code} should be definite");
        }
    }

    #[test]
    fn driver_errors_are_classified() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify_sqlx(&io), ErrorClass::Transient);
        assert_eq!(
            classify_sqlx(&sqlx::Error::PoolTimedOut),
            ErrorClass::Transient
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::PoolClosed),
            ErrorClass::Definite
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::Configuration("bad".into())),
            ErrorClass::Definite
        );
    }

    /// A database error sqlx cannot read as a MySQL one: the classifier
    /// knows nothing about it.
    #[derive(Debug)]
    struct Unknown;
    impl fmt::Display for Unknown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("something no classifier knows")
        }
    }
    impl std::error::Error for Unknown {}
    impl sqlx::error::DatabaseError for Unknown {
        fn message(&self) -> &str {
            "something no classifier knows"
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    /// "Clear refusal": what the classifier does not know is definite, so
    /// the applier stops and names it instead of retrying forever.
    #[test]
    fn unknown_errors_are_definite() {
        for code in [1, 999, 1105, 3000, 9999, u16::MAX] {
            assert!(
                !is_transient_code(code),
                "unknown {code} should be definite"
            );
        }
        assert_eq!(
            classify_sqlx(&sqlx::Error::Database(Box::new(Unknown))),
            ErrorClass::Definite
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::RowNotFound),
            ErrorClass::Definite
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::Decode("odd".into())),
            ErrorClass::Definite
        );
    }

    #[test]
    fn row_number_is_parsed() {
        let e = ServerError {
            code: 1406,
            sqlstate: Some("22001".into()),
            message: "Data too long for column 'v' at row 17".into(),
        };
        assert_eq!(e.row_number(), Some(17));
        assert_eq!(
            e.to_string(),
            "error 1406 (22001): Data too long for column 'v' at row 17"
        );
        let e = ServerError {
            code: 1062,
            sqlstate: None,
            message: "Duplicate entry 'x' for key 'u'".into(),
        };
        assert_eq!(e.row_number(), None);
    }

    #[test]
    fn messages_name_batch_table_key_and_server_error() {
        let e = LoadError::Rejected {
            batch_id: 7,
            table: "`shop`.`users`".into(),
            server: ServerError {
                code: 1406,
                sqlstate: Some("22001".into()),
                message: "Data too long for column 'name' at row 1".into(),
            },
            detail: Box::new(RejectedDetail {
                key: "(id=5)".into(),
                ..RejectedDetail::default()
            }),
            class: ErrorClass::Definite,
            attempts: 1,
            unique_conflict: false,
        };
        assert_eq!(
            e.to_string(),
            "batch 7: table `shop`.`users`, key (id=5): the target refused the change: \
             error 1406 (22001): Data too long for column 'name' at row 1"
        );
        assert_eq!(e.class(), ErrorClass::Definite);
        let t = e.with_attempts(3);
        assert!(t
            .to_string()
            .ends_with("(definite; gave up after 3 attempts)"));
    }
}
