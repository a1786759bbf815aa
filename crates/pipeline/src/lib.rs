//! The Select → Extract → Transform → Load runtime.
//!
//! ```text
//! source ─dump─► select ─txns─► extract ─batches─► transform ─► load ─► target
//!                                                               └─ack─► position store
//! ```
//!
//! * [`select`] owns the replica connection and sends whole transactions
//!   (slices of large ones) as raw rows events;
//! * [`extract`] decodes rows (schemas come from the binlog's own table
//!   maps), applies the table filter and cuts batches at transaction ends,
//!   numbering them;
//! * [`transform`] routes tables, applies column rules and decides DDL
//!   ([`ddl`]);
//! * [`load`] applies batches strictly in `batch_id` order and acknowledges
//!   each one after the target committed it.
//!
//! The stages are tokio tasks joined by [`channel`]s bounded in messages
//! and bytes, so memory stays bounded however large a transaction is
//! (ARCHITECTURE.md invariant 5). The key decision is that **only Load
//! acknowledges, in order, after commit** — positions therefore never pass a
//! change the target does not hold (invariant 1), and any failure anywhere
//! else is handled by simply not acknowledging and replaying (invariant 3:
//! Load is idempotent). [`runtime`] wires the stages, picks the resume
//! point and implements graceful shutdown; [`control`] is the operator's
//! side: halt instead of exit, skip/replace/retry, pause, handover and
//! source switch through etcd.

pub mod ddl;

pub mod batch;
pub mod channel;
pub mod control;
pub mod distributed;
pub mod error;
pub mod events;
pub mod extract;
pub mod lag;
pub mod load;
pub mod open;
pub mod origin;
pub mod pipe;
pub mod progress_snapshot;
pub mod runtime;
pub mod select;
pub mod snapshot;
pub mod statements;
pub mod stats;
pub mod status;
mod table_cache;
pub mod transform;
pub mod verify;

pub use error::PipelineError;
pub use events::Events;
pub use open::{loader, local_state_dir, open_store};
pub use runtime::{run, RunOptions, RunSummary};
pub use status::NodeStatus;
