//! Errors of the binlog source, classified where they are created.

use sluice_core::error::is_transient_server_code;
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

/// Classifies a driver error by what a retry can do, with the rule of
/// [`sluice_core::retry`]: only what is known to pass is transient, and
/// everything else is definite, so an unforeseen failure stops the pipeline
/// with its message instead of being retried forever.
///
/// Transient: a broken connection (I/O errors, the driver finding it closed
/// or a packet out of place, which is what a stream cut mid-packet looks
/// like) and the server errors of [`is_transient_server_code`] — the source
/// shutting down or restarting (1053, 2006, 2013), KILL of the dump thread
/// (1927), a net read/write timeout on the dump (1159–1161), read-only or
/// lock waits and deadlocks for the queries around the dump. The Select
/// reconnect loop depends on exactly these being transient. Definite: every
/// other server error (a purged position, 1236; access denied; a server_id
/// clash), a bad URL, TLS failures (an untrusted or misnamed certificate, a
/// server without TLS when `source.tls` asks for it, unreadable key files:
/// a retry meets the same certificate) and the driver's other errors.
pub fn classify_mysql(err: &mysql_async::Error) -> ErrorClass {
    use mysql_async::{DriverError, Error, IoError};
    match err {
        Error::Server(e) if is_transient_server_code(e.code) => ErrorClass::Transient,
        Error::Io(IoError::Io(e)) if !is_tls_failure(e) => ErrorClass::Transient,
        Error::Driver(
            DriverError::ConnectionClosed
            | DriverError::PacketOutOfOrder
            | DriverError::UnexpectedPacket { .. }
            | DriverError::BadCompressedPacketHeader,
        ) => ErrorClass::Transient,
        _ => ErrorClass::Definite,
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

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::{DriverError, Error, IoError, ServerError};

    fn server(code: u16) -> Error {
        Error::Server(ServerError {
            code,
            message: format!("error {code}"),
            state: "HY000".into(),
        })
    }

    fn io(kind: std::io::ErrorKind) -> Error {
        Error::Io(IoError::Io(std::io::Error::new(kind, "io")))
    }

    /// What the Select reconnect loop relies on: a lost, reset or timed-out
    /// connection and a source restarting or killing the dump reconnect.
    #[test]
    fn known_transient_failures_are_transient() {
        for code in [1040, 1053, 1159, 1161, 1205, 1213, 1290, 1927, 2006, 2013] {
            assert_eq!(
                classify_mysql(&server(code)),
                ErrorClass::Transient,
                "{code}"
            );
        }
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::TimedOut,
        ] {
            assert_eq!(classify_mysql(&io(kind)), ErrorClass::Transient, "{kind:?}");
        }
        for driver in [DriverError::ConnectionClosed, DriverError::PacketOutOfOrder] {
            assert_eq!(
                classify_mysql(&Error::Driver(driver)),
                ErrorClass::Transient
            );
        }
        let timeout = BinlogError::Io {
            what: "reading the binlog stream".into(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "silent"),
        };
        assert_eq!(timeout.class(), ErrorClass::Transient);
        let lost = BinlogError::source("binlog stream", server(2013));
        assert_eq!(lost.class(), ErrorClass::Transient);
    }

    /// "Clear refusal": known refusals and anything the classifier does not
    /// know are definite.
    #[test]
    fn known_refusals_and_unknown_errors_are_definite() {
        for code in [1044, 1045, 1227, 1236, 4052, 1146, 1105, 1, 9999, u16::MAX] {
            assert_eq!(
                classify_mysql(&server(code)),
                ErrorClass::Definite,
                "{code}"
            );
        }
        assert_eq!(
            classify_mysql(&Error::Other("unforeseen".into())),
            ErrorClass::Definite
        );
        for driver in [
            DriverError::NoKeyFound,
            DriverError::NoClientSslFlagFromServer,
            DriverError::MixedParams,
        ] {
            assert_eq!(classify_mysql(&Error::Driver(driver)), ErrorClass::Definite);
        }
        assert_eq!(
            classify_mysql(&Error::Url(mysql_async::UrlError::Invalid)),
            ErrorClass::Definite
        );
        let purged = BinlogError::source("requesting the binlog dump", server(1236));
        assert_eq!(purged.class(), ErrorClass::Definite);
    }
}
