//! Coordination: where a pipeline's acknowledged position lives, and who may
//! write it.
//!
//! * [`keys`] — the etcd key layout; the only place key paths are spelled.
//! * [`PositionStore`] — load / fenced store / operator override of a
//!   pipeline's [`StoredPosition`], implemented by [`EtcdPositionStore`] (one
//!   key per pipeline, writes are etcd transactions guarded by the writer's
//!   leader key) and [`LocalPositionStore`] (a locked directory, atomic
//!   rename + fsync) for runs without etcd.
//! * [`PositionCache`] — the pipeline's acknowledgement point: in-order acks
//!   in memory, flushed every second and on shutdown.
//!
//! # Invariants (ARCHITECTURE.md 1 and 2)
//!
//! * **No loss.** Positions are stored only from in-order, gap-free
//!   acknowledgements of committed batches, and a stored position never
//!   moves backwards (its `batch_id` never decreases), checked atomically
//!   with each write.
//! * **One writer.** Under [`Fence::Leader`] a write commits only while the
//!   writer's leader key still has the create revision it was elected with,
//!   checked by etcd in the same transaction as the write; a failed check is
//!   the definite [`CoordError::FencedOut`], after which a [`PositionCache`]
//!   never writes again. [`Fence::None`] gives no such protection and is for
//!   local / single-node runs only.
//!
//! * [`election`] — node registration and leader election of an
//!   active/standby pair on etcd leases, with self-fencing before the lease
//!   can expire and Canal's fake-death protection.
//!
//! * [`control`] — operator control records: the halt, the pause, the
//!   chosen source, skips in force, requests and their audit history.
//!
//! The stage task queue (distributed stages) builds on the same [`keys`]
//! layout and [`etcd::connect`].

pub mod any_store;
pub mod cache;
pub mod control;
pub mod election;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod local;
pub mod mirror;
pub mod record;
pub mod store;
pub mod tasks;
pub mod verify;

pub use any_store::AnyPositionStore;
pub use cache::{
    AckError, Acked, CacheConfig, FlushFailure, FlushOutcome, FlushStatus, PositionCache,
    DEFAULT_FLUSH_INTERVAL,
};
pub use control::{
    Acknowledgement, ChangeFailure, ColumnValue, ControlCheck, ControlState, ControlStore,
    ControlWrite, HaltRecord, HaltedBatch, HistoryRecord, HistoryState, Outcome, OutcomeState,
    PauseRecord, Request, RequestKind, Resolution, ServerMessage, Skip, SkipScope, SkippedChange,
    SourceChoice, StoredRequest, Versioned,
};
pub use election::{
    read_leader, read_nodes, Candidate, ElectionConfig, LeaderRecord, Leadership, NodeProgress,
    NodeRecord, ProgressPublisher,
};
pub use error::{describe_etcd, CoordError};
pub use etcd::{EtcdOptions, EtcdPositionStore};
pub use keys::{KeyError, KeyLayout, PipelineKeys, DEFAULT_PREFIX};
pub use local::LocalPositionStore;
pub use mirror::BoardMirror;
pub use record::{Fence, HistoryEntry, StoredPosition, FIRST_BATCH_ID};
pub use store::PositionStore;
pub use tasks::{
    Board, Claim, ClaimRecord, DataRef, EpochRecord, Task, TaskBoard, TaskRecord, TaskStage,
    TaskState, WorkerLease,
};
pub use verify::{read_verify, RoundProgress, RoundResult, VerifyRecord, VerifyStore};
