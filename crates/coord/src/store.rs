//! The position store abstraction.
//!
//! # Why `-> impl Future + Send` and not `async-trait`
//!
//! The methods return `impl Future + Send` (stable since Rust 1.75) so that
//! the flusher can run them inside `tokio::spawn` without boxing every call
//! and without another dependency. Implementations may still write
//! `async fn`. The price is that the trait is not object-safe; the runtime's
//! choice between etcd and a local directory is a closed set, so it is an
//! enum, [`crate::AnyPositionStore`] (in [`crate::any_store`], so that this
//! trait does not depend on its implementations), instead of
//! `Box<dyn PositionStore>`.
//!
//! # Contract for implementations
//!
//! * `store` is atomic: afterwards the store holds either the old or the new
//!   record, never a mix, even across a crash.
//! * `store` checks the fence and the monotonicity rule (see
//!   [`crate::record`]) atomically with the write, so no interleaving of
//!   writers can move a position backwards or let a fenced-out writer in.
//! * `force_store` bypasses the fence and the monotonicity check — it is the
//!   operator's override — but still replaces the record atomically, records
//!   who changed it, and supersedes every record acknowledged so far.

use std::future::Future;
use std::sync::Arc;

use sluice_core::Position;

use crate::error::CoordError;
use crate::record::{Fence, StoredPosition};

/// Where a pipeline's acknowledged position lives.
pub trait PositionStore: Send + Sync {
    /// The stored record, or `None` when this pipeline never stored one.
    fn load(&self) -> impl Future<Output = Result<Option<StoredPosition>, CoordError>> + Send;

    /// Replaces the stored record with `record`, guarded by `fence`.
    ///
    /// Fails definitely with [`CoordError::FencedOut`] when the fence no
    /// longer holds (nothing was written; the caller must never write again
    /// in this term), [`CoordError::Backwards`] / [`CoordError::BatchConflict`]
    /// when the record would not advance the stored one, and
    /// [`CoordError::FenceMismatch`] when `record.leader_revision` disagrees
    /// with `fence`. Re-storing the record already stored succeeds, so a
    /// write retried after a transient error is idempotent.
    fn store(
        &self,
        record: &StoredPosition,
        fence: &Fence,
    ) -> impl Future<Output = Result<(), CoordError>> + Send;

    /// The operator's override (`sluice positions set`): writes `position`
    /// with batch id one past the stored one, `written_by = changed_by` and
    /// no leader revision, and keeps an audit entry. Returns what it wrote.
    ///
    /// The etcd store also deletes the leader key in the same transaction,
    /// which fences out an active leader at that instant: otherwise its
    /// in-flight acknowledgements would overwrite the forced position a
    /// second later. The local store cannot be forced while a pipeline runs
    /// on it — its directory lock refuses a second process.
    fn force_store(
        &self,
        position: Position,
        changed_by: &str,
    ) -> impl Future<Output = Result<StoredPosition, CoordError>> + Send;

    /// Where the position lives, for messages: `etcd key …` or a file path.
    fn location(&self) -> String;
}

impl<T: PositionStore + ?Sized> PositionStore for Arc<T> {
    fn load(&self) -> impl Future<Output = Result<Option<StoredPosition>, CoordError>> + Send {
        (**self).load()
    }

    fn store(
        &self,
        record: &StoredPosition,
        fence: &Fence,
    ) -> impl Future<Output = Result<(), CoordError>> + Send {
        (**self).store(record, fence)
    }

    fn force_store(
        &self,
        position: Position,
        changed_by: &str,
    ) -> impl Future<Output = Result<StoredPosition, CoordError>> + Send {
        (**self).force_store(position, changed_by)
    }

    fn location(&self) -> String {
        (**self).location()
    }
}
