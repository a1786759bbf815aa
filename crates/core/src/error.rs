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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_class() {
        assert_eq!(ErrorClass::Transient.to_string(), "transient");
        assert_eq!(ErrorClass::Definite.to_string(), "definite");
        assert!(ErrorClass::Transient.is_transient());
        assert!(!ErrorClass::Definite.is_transient());
    }
}
