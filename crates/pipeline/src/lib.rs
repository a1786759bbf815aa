//! The Select → Extract → Transform → Load runtime and its scheduler.
//!
//! Generic over the stage traits in `sluice-core`: stages are tokio tasks joined
//! by channels bounded in rows and bytes; batches are cut at transaction ends
//! and acknowledged strictly in `batch_id` order, so a stored position never
//! passes a change the target has not committed.
//!
//! Status: lands with the pipeline issue.
