//! The Load stage: applying batches to the target database.
//!
//! Owns the target side — merging a batch's changes by key, building
//! multi-row statements, applying them over parallel connections partitioned
//! by key hash (per-key order kept), idempotently, so that replaying any batch
//! converges to the same target state, and the target's metadata migrations.
//!
//! Status: lands with the pipeline issue.
