//! The Load stage: applying batches to the target database.
//!
//! Owns the target side — merging a batch's changes by key ([`merge`]),
//! building multi-row statements with bound parameters ([`sql`]), applying
//! them over parallel connections partitioned by key hash with per-key order
//! kept, idempotently, so that replaying any batch converges to the same
//! target state ([`apply`]), and the target's metadata migrations and
//! checkpoint ([`meta`]).
//!
//! Invariants this crate upholds (ARCHITECTURE.md):
//! * **Convergence** (3): keyed tables are written only as full-image upserts
//!   and deletes by key, so a replayed batch converges.
//! * **Order** (4): all operations on one key go to one connection, in the
//!   order of the key's changes.
//! * **Typed fidelity** (6): every value is a bound parameter encoded so the
//!   server stores the source's exact value; values that cannot be written
//!   (`Absent`, `JsonDiff`) are refused before anything is sent.
//!
//! Routing (target schema/table names) is the Transform stage's job: the
//! loader writes to the schema and table named by each change's
//! [`TableSchema`](sluice_core::TableSchema).

pub mod apply;
pub mod error;
pub mod key;
pub mod merge;
pub mod meta;
pub mod relaxed;
pub mod snapshot;
pub mod sql;
pub mod verify;

pub use apply::{
    connect_options, default_retry, ApplyStats, CheckpointMark, ConflictPolicy, ConflictRules,
    ConflictSeen, DdlOutcome, Loader, LoaderOptions, OriginTag, TermFence, UniqueConflict,
    ALREADY_APPLIED, SESSION_SQL_MODE,
};
pub use error::{ConflictRow, LoadError, RejectedDetail, ServerError};
pub use meta::{
    migrate, read_checkpoint, record_checkpoint, record_intent, Checkpoint, META_SCHEMA, MIGRATOR,
};
/// The retry policy type of [`LoaderOptions::retry`] (one policy for all of
/// sluice, see [`sluice_core::retry`]).
pub use sluice_core::retry::RetryPolicy;
pub use sql::Limits;
