//! Errors of the binlog source, classified where they are created.

use sluice_core::{Classify, ErrorClass};

/// Where in a binlog something went wrong: `file:offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: String,
    pub offset: u64,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: offset {}", self.file, self.offset)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BinlogError {
    /// The binlog bytes are not what they claim: bad magic, truncated or
    /// oversized event, checksum mismatch, an event that does not parse.
    #[error("{at}: {reason}")]
    Corrupt { at: At, reason: String },
    /// A rows event names a table id no TABLE_MAP defined (a start offset in
    /// the middle of a transaction, or a corrupt stream).
    #[error("{at}: rows event for unknown table id {table_id} (no TABLE_MAP before it; start at a transaction boundary)")]
    UnknownTable { at: At, table_id: u64 },
    /// A row image does not decode against its table map.
    #[error("{at}: {source}")]
    Row {
        at: At,
        #[source]
        source: crate::rows::RowError,
    },
    /// Something the binlog contains that sluice refuses to handle
    /// (statement-based events for a table, encrypted binlogs, ...).
    #[error("{at}: {reason}")]
    Unsupported { at: At, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The source server: connection lost, refused, timed out, TLS refused.
    #[error("source {what}: {}", describe_mysql(source))]
    Source {
        what: String,
        class: ErrorClass,
        #[source]
        source: mysql_async::Error,
    },
    /// A preflight check failed: the source cannot serve a fake replica as
    /// configured. The message says what to change.
    #[error("source not ready: {0}")]
    Preflight(String),
    /// Another replica registered with our `server_id` is connected. Definite
    /// for a misconfiguration, but right after a crash it is usually this
    /// node's own previous dump thread, which the source drops once its next
    /// heartbeat write fails: callers restarting after a crash may retry for
    /// a few heartbeat periods.
    #[error("source not ready: server_id {server_id} is already used by a replica connected to the source ({peer}): each sluice node needs a unique server_id")]
    ServerIdInUse { server_id: u32, peer: String },
    /// The requested start position or GTID set is no longer on the source.
    #[error("start position purged: {0}")]
    Purged(String),
    /// The server has no such statement (a spelling its version removed or
    /// never had): retrying cannot help.
    #[error("the source ({server}, `{version}`) does not support `{statement}`: error {code}: {message}")]
    StatementUnsupported {
        statement: String,
        server: String,
        version: String,
        code: u16,
        message: String,
    },
    /// `sluice verify` cannot read this source as it needs to (no exact
    /// snapshot position, a table it cannot compare).
    #[error("cannot verify on the source: {0}")]
    Verify(String),
}

impl Classify for BinlogError {
    fn class(&self) -> ErrorClass {
        match self {
            BinlogError::Source { class, .. } => *class,
            BinlogError::Io { .. } => ErrorClass::Transient,
            _ => ErrorClass::Definite,
        }
    }
}

/// Server error codes that retrying cannot fix.
const DEFINITE_SERVER_CODES: &[u16] = &[
    1045, // access denied
    1227, // missing privilege
    1236, // fatal error reading binlog (purged position, bad file name)
    1044, // access denied to database
    4052, // a replica with the same server_id is connected (MariaDB)
];

/// Classifies a driver error: server errors that need a human are definite,
/// and so are TLS failures (an untrusted or misnamed certificate, a server
/// without TLS when `source.tls` asks for it, unreadable key files): a retry
/// meets the same certificate. Everything else about the connection is
/// transient.
pub fn classify_mysql(err: &mysql_async::Error) -> ErrorClass {
    use mysql_async::{DriverError, Error, IoError};
    match err {
        Error::Server(e) if DEFINITE_SERVER_CODES.contains(&e.code) => ErrorClass::Definite,
        Error::Url(_) => ErrorClass::Definite,
        Error::Io(IoError::Tls(_)) => ErrorClass::Definite,
        Error::Io(IoError::Io(e)) if is_tls_failure(e) => ErrorClass::Definite,
        Error::Driver(DriverError::NoClientSslFlagFromServer | DriverError::NoKeyFound) => {
            ErrorClass::Definite
        }
        _ => ErrorClass::Transient,
    }
}

/// A driver error for people: mysql_async prefixes I/O errors with
/// "Input/output error: " twice; a TLS failure says so.
pub fn describe_mysql(err: &mysql_async::Error) -> String {
    use mysql_async::{Error, IoError};
    match err {
        Error::Io(IoError::Io(e)) if is_tls_failure(e) => format!("TLS handshake failed: {e}"),
        Error::Io(IoError::Io(e)) => format!("I/O error: {e}"),
        Error::Io(IoError::Tls(e)) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}

/// Whether an I/O error is a TLS handshake failure (rustls reports those
/// as `io::Error`s wrapping a `rustls::Error`). Alerts and certificate
/// errors need a human; a connection closed mid-handshake does not.
pub fn is_tls_failure(err: &std::io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some()
}

impl BinlogError {
    /// The server's error code, for an error the source server returned.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            BinlogError::Source {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// Where in a binlog the error is, if it is about binlog content.
    pub fn at(&self) -> Option<&At> {
        match self {
            BinlogError::Corrupt { at, .. }
            | BinlogError::UnknownTable { at, .. }
            | BinlogError::Row { at, .. }
            | BinlogError::Unsupported { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The message without its `file: offset N: ` prefix.
    pub fn detail(&self) -> String {
        let full = self.to_string();
        match self.at() {
            Some(at) => full
                .strip_prefix(&format!("{at}: "))
                .map(str::to_string)
                .unwrap_or(full),
            None => full,
        }
    }

    pub fn source(what: impl Into<String>, source: mysql_async::Error) -> Self {
        BinlogError::Source {
            what: what.into(),
            class: classify_mysql(&source),
            source,
        }
    }
}
