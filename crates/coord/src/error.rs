//! Errors of the coordination layer, each classified where it is created.
//!
//! The split follows the pipeline's single rule (see `sluice_core::error`):
//!
//! * **Transient** — etcd unreachable, timed out, without a leader, changing
//!   leaders, rate limiting; optimistic-concurrency retries exhausted; an
//!   interrupted local write. Retrying later can succeed, and nothing was
//!   advanced (or, for an etcd write whose answer was lost, re-writing the
//!   same record is idempotent).
//! * **Definite** — fenced out (this node lost leadership and must never
//!   write again), a position that would move backwards, a batch id reused for
//!   a different position, a corrupt stored record, invalid names, a locked
//!   state directory, a full or read-only disk. A human has to act.

use std::io;
use std::path::PathBuf;

use sluice_core::{Classify, ErrorClass, Position};

use crate::keys::KeyError;

/// Everything that can go wrong storing or loading coordination state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordError {
    #[error(transparent)]
    Key(#[from] KeyError),

    /// The writer's leader key no longer has the create revision its fence
    /// names: another node leads (or nobody does). The write did not happen.
    #[error(
        "fenced out: {location} may only be written while leader key {key} has create revision \
         {expected}, but it {}; this node lost leadership and must not write positions again",
        describe_revision(.actual)
    )]
    FencedOut {
        location: String,
        key: String,
        expected: i64,
        /// `None` when the leader key does not exist.
        actual: Option<i64>,
    },

    #[error(
        "refusing to move {location} backwards: it holds batch {stored}, this write carries \
         batch {attempted}"
    )]
    Backwards {
        location: String,
        stored: u64,
        attempted: u64,
    },

    #[error(
        "{location} already holds batch {batch_id} at `{stored}`; refusing to store that batch \
         at a different position `{attempted}`"
    )]
    BatchConflict {
        location: String,
        batch_id: u64,
        stored: Box<Position>,
        attempted: Box<Position>,
    },

    /// The record says one thing about its writer's leadership and the fence
    /// another — a caller bug that would make the audit trail lie.
    #[error(
        "position record for batch {batch_id} names leader revision {} but is written under \
         fence {fence}",
        describe_leader_revision(.record_revision)
    )]
    FenceMismatch {
        batch_id: u64,
        record_revision: Option<i64>,
        fence: String,
    },

    #[error("fence names key {got}, but the leader key of this pipeline is {expected}")]
    WrongFenceKey { expected: String, got: String },

    #[error(
        "{location}: a local store cannot check a leader fence (there is no leader key); use \
         Fence::None — its directory lock is the only writer guard"
    )]
    FenceUnsupported { location: String },

    #[error("invalid writer id `{writer}`: {reason}")]
    InvalidWriter {
        writer: String,
        reason: &'static str,
    },

    #[error("{location} does not hold a valid position record: {source}")]
    Corrupt {
        location: String,
        #[source]
        source: serde_json::Error,
    },

    /// The message digs out the reason (refused, certificate not trusted,
    /// name mismatch, authentication failed): tonic's own text is either
    /// "transport error" or a debug dump of the gRPC status.
    #[error("connecting to etcd at {endpoints}: {}", describe_etcd(source))]
    EtcdConnect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },

    /// A file of `coordination.etcd.tls` cannot be read.
    #[error("connecting to etcd at {endpoints}: reading {}: {source}", path.display())]
    EtcdTlsFile {
        endpoints: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("etcd {op} {key}: {}", describe_etcd(source))]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: etcd_client::Error,
    },

    #[error("etcd {op} {key}: no answer within {timeout:?}")]
    EtcdTimeout {
        op: &'static str,
        key: String,
        timeout: std::time::Duration,
    },

    /// Optimistic concurrency on the position key kept losing to other
    /// writers. Transient: the other writers will stop (or fence us out).
    #[error("{location}: other writers kept changing it; gave up after {attempts} attempts")]
    Contention { location: String, attempts: u32 },

    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "state directory {} is in use by another process{holder} (lock file {}); two sluice \
         processes must never share a local store",
        .dir.display(), .lock.display()
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        /// ` (pid N)` when the holder wrote its pid, else empty.
        holder: String,
    },

    /// The local state directory (or its parent) can be changed by other
    /// users, who could then rewrite the position sluice resumes from.
    #[error("state directory {}: {reason}; refusing to keep positions where other users can change them", .dir.display())]
    InsecureStateDir { dir: PathBuf, reason: String },
}

fn describe_revision(actual: &Option<i64>) -> String {
    match actual {
        Some(rev) => format!("has create revision {rev}"),
        None => "does not exist".to_owned(),
    }
}

fn describe_leader_revision(rev: &Option<i64>) -> String {
    match rev {
        Some(rev) => rev.to_string(),
        None => "none".to_owned(),
    }
}

impl CoordError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| CoordError::Io { what, path, source }
    }

    /// True for [`CoordError::FencedOut`]: the caller lost leadership.
    pub fn is_fenced_out(&self) -> bool {
        matches!(self, CoordError::FencedOut { .. })
    }
}

impl Classify for CoordError {
    fn class(&self) -> ErrorClass {
        match self {
            CoordError::Etcd { source, .. } | CoordError::EtcdConnect { source, .. } => {
                classify_etcd(source)
            }
            CoordError::EtcdTlsFile { .. } => ErrorClass::Definite,
            CoordError::EtcdTimeout { .. } | CoordError::Contention { .. } => ErrorClass::Transient,
            CoordError::Io { source, .. } => match source.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut => ErrorClass::Transient,
                // ENOSPC, EROFS, EACCES, EIO: someone has to fix the disk.
                _ => ErrorClass::Definite,
            },
            CoordError::Key(_)
            | CoordError::FencedOut { .. }
            | CoordError::Backwards { .. }
            | CoordError::BatchConflict { .. }
            | CoordError::FenceMismatch { .. }
            | CoordError::WrongFenceKey { .. }
            | CoordError::FenceUnsupported { .. }
            | CoordError::InvalidWriter { .. }
            | CoordError::Corrupt { .. }
            | CoordError::Locked { .. }
            | CoordError::InsecureStateDir { .. } => ErrorClass::Definite,
        }
    }
}

/// gRPC status codes, fixed by the gRPC specification. Matched as numbers
/// (`i32::from(tonic::Code)`) so this crate need not depend on tonic itself.
mod grpc {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

/// Transient: the server is unreachable, has no leader, is changing leader,
/// timed out (etcd reports "leader changed", "no leader" and "request timed
/// out" as UNAVAILABLE), or the connection broke mid-request (tonic reports
/// h2 and transport failures as UNKNOWN, INTERNAL or CANCELLED). Definite:
/// bad arguments, auth, compacted revisions, oversized requests — nothing a
/// retry fixes.
pub(crate) fn classify_etcd(error: &etcd_client::Error) -> ErrorClass {
    use etcd_client::Error as E;
    // A certificate etcd or we do not accept: the next attempt meets the
    // same certificate.
    if etcd_cause(error).is_some_and(is_tls_failure) {
        return ErrorClass::Definite;
    }
    match error {
        E::GRpcStatus(status) => classify_grpc_code(i32::from(status.code())),
        E::TransportError(_) | E::IoError(_) | E::LeaseKeepAliveError(_) | E::WatchError(_) => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Definite,
    }
}

/// Whether a `rustls::Error` (a refused certificate, a TLS alert) is in
/// `error`'s cause chain. rustls errors travel inside `io::Error`s, whose
/// `source()` skips the wrapped error itself, so those are opened by hand.
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// The error inside an etcd-client error, which does not expose it as its
/// `source()`.
fn etcd_cause(error: &etcd_client::Error) -> Option<&(dyn std::error::Error + 'static)> {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => Some(status),
        E::TransportError(e) => Some(e),
        E::IoError(e) => Some(e),
        _ => None,
    }
}

/// An etcd-client error for people: a gRPC status as its message, the
/// root cause of a transport failure (`Connection refused (os error 111)`)
/// and its code; a transport error as its cause chain. Never tonic's own
/// text, which is a debug dump of the status. Also for callers that hold an
/// `etcd_client::Error` themselves (`sluice check`).
pub fn describe_etcd(error: &etcd_client::Error) -> String {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => {
            let text = match std::error::Error::source(status) {
                Some(cause) if status.message().is_empty() => error_chain(cause),
                Some(cause) => {
                    let root = root_cause(cause).to_string();
                    if status.message().contains(&root) {
                        status.message().to_string()
                    } else {
                        format!("{}: {root}", status.message())
                    }
                }
                None => status.message().to_string(),
            };
            format!("{text} ({:?})", status.code())
        }
        E::TransportError(e) => error_chain(e),
        other => other.to_string(),
    }
}

/// The innermost cause, opening `io::Error`s by hand (their `source()`
/// skips the error they wrap).
fn root_cause<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> &'e (dyn std::error::Error + 'static) {
    let mut last = error;
    loop {
        let next = last.source().or_else(|| {
            last.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .map(|inner| inner as &(dyn std::error::Error + 'static))
        });
        match next {
            Some(e) => last = e,
            None => return last,
        }
    }
}

/// `error` and its causes, `: `-separated, without repeats (wrappers often
/// print their cause themselves).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

fn classify_grpc_code(code: i32) -> ErrorClass {
    match code {
        grpc::CANCELLED
        | grpc::UNKNOWN
        | grpc::DEADLINE_EXCEEDED
        | grpc::RESOURCE_EXHAUSTED
        | grpc::ABORTED
        | grpc::INTERNAL
        | grpc::UNAVAILABLE => ErrorClass::Transient,
        _ => ErrorClass::Definite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_classify() {
        // UNAVAILABLE: leader changed / no leader / connection refused.
        assert_eq!(classify_grpc_code(14), ErrorClass::Transient);
        assert_eq!(classify_grpc_code(4), ErrorClass::Transient);
        assert_eq!(classify_grpc_code(1), ErrorClass::Transient);
        // INVALID_ARGUMENT: request too large; PERMISSION_DENIED; OUT_OF_RANGE: compacted.
        assert_eq!(classify_grpc_code(3), ErrorClass::Definite);
        assert_eq!(classify_grpc_code(7), ErrorClass::Definite);
        assert_eq!(classify_grpc_code(11), ErrorClass::Definite);
        assert_eq!(
            classify_etcd(&etcd_client::Error::InvalidArgs("x".into())),
            ErrorClass::Definite
        );
        assert_eq!(
            classify_etcd(&etcd_client::Error::IoError(
                io::ErrorKind::ConnectionReset.into()
            )),
            ErrorClass::Transient
        );
    }

    #[test]
    fn fenced_out_message_names_both_revisions() {
        let e = CoordError::FencedOut {
            location: "etcd key /s/pipelines/p/position".into(),
            key: "/s/pipelines/p/leader".into(),
            expected: 7,
            actual: None,
        };
        let text = e.to_string();
        assert!(text.contains("create revision 7"), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        assert_eq!(e.class(), ErrorClass::Definite);
        assert!(e.is_fenced_out());
    }
}
