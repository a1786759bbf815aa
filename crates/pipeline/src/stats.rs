//! Counters of a term's Load stage, shared by the stages, the progress log,
//! the monitor and the node record. Plain atomics: written once per batch,
//! read once a second.

use std::sync::atomic::AtomicU64;

/// What Load has done in this term.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Batches acknowledged (each coalesced batch counts).
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    pub ddl: AtomicU64,
    /// Transient failures retried.
    pub retries: AtomicU64,
    /// Conflicts met and resolved (bidirectional pipelines).
    pub conflicts: AtomicU64,
    /// Source time of the last applied event (Unix seconds).
    pub last_event_time: AtomicU64,
}
