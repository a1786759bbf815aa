//! Error classes shared by every stage.
//!
//! Every error sluice creates is classified at the point where it is created,
//! not where it is handled (as in Materialize's MySQL source): the creator knows
//! whether the same operation can succeed if retried. The pipeline then needs a
//! single rule — retry transient errors with backoff without advancing any
//! position; stop on definite errors with one message, leaving the last
//! acknowledged position untouched.

use std::fmt;

/// Whether retrying the failed operation can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The operation may succeed if retried later: connection lost, deadlock,
    /// lock wait timeout, etcd leader change, server starting up.
    Transient,
    /// Retrying cannot help until a human changes something: bad config,
    /// missing privilege, data the target rejects, a purged binlog position,
    /// a corrupt event.
    Definite,
}

impl ErrorClass {
    pub fn is_transient(self) -> bool {
        self == ErrorClass::Transient
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Definite => "definite",
        })
    }
}

/// Implemented by every library error type so that the runtime can decide
/// between retry and stop without knowing the concrete error.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// MySQL/MariaDB error numbers (server errors, and the client's own for a
/// lost server) after which the same statement, or a new connection, can
/// succeed later: the connection broke, the server is shutting down or
/// read-only mid-failover, a lock wait or deadlock rolled the transaction
/// back, a statement timed out or was killed.
///
/// Both server classifiers (`sluice-load` for the target, `sluice-binlog`
/// for the source) use this list, and **every other number is definite**:
/// a data error, a missing table or privilege, a purged binlog position
/// produces the same error again (see [`crate::retry`]).
pub fn is_transient_server_code(code: u16) -> bool {
    matches!(
        code,
        1040 // ER_CON_COUNT_ERROR: too many connections
            | 1053 // ER_SERVER_SHUTDOWN
            | 1152 // ER_ABORTING_CONNECTION
            | 1154
            ..=1161 // net read/write errors, interruptions and timeouts
            | 1180 // ER_ERROR_DURING_COMMIT
            | 1184 // ER_NEW_ABORTING_CONNECTION
            | 1203 // ER_TOO_MANY_USER_CONNECTIONS
            | 1205 // ER_LOCK_WAIT_TIMEOUT
            | 1213 // ER_LOCK_DEADLOCK
            | 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only, e.g. mid-failover
            | 1317 // ER_QUERY_INTERRUPTED: KILL QUERY
            | 1637 // ER_TOO_MANY_CONCURRENT_TRXS
            | 1927 // ER_CONNECTION_KILLED (MariaDB): KILL CONNECTION
            | 1969 // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
            | 2002 // CR_CONNECTION_ERROR
            | 2003 // CR_CONN_HOST_ERROR
            | 2006 // CR_SERVER_GONE_ERROR
            | 2013 // CR_SERVER_LOST
            | 3024 // ER_QUERY_TIMEOUT (MySQL max_execution_time)
            | 3032 // ER_SERVER_OFFLINE_MODE (MySQL)
            | 4031 // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_unknown_are_definite() {
        for code in [1040, 1053, 1205, 1213, 1290, 1927, 2006, 2013] {
            assert!(is_transient_server_code(code), "{code} should be transient");
        }
        // Known definite ones, and numbers no list names.
        for code in [1045, 1062, 1146, 1236, 4052, 1, 9999, u16::MAX] {
            assert!(!is_transient_server_code(code), "{code} should be definite");
        }
    }

    #[test]
    fn display_names_the_class() {
        assert_eq!(ErrorClass::Transient.to_string(), "transient");
        assert_eq!(ErrorClass::Definite.to_string(), "definite");
        assert!(ErrorClass::Transient.is_transient());
        assert!(!ErrorClass::Definite.is_transient());
    }
}
