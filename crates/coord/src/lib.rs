//! Coordination: etcd leases, leader election, fenced positions, stage tasks.
//!
//! The only crate that knows etcd key paths (they are spelled in one module,
//! `keys`). Every position write is an etcd transaction guarded by the writer's
//! leader key, so a node that lost its lease can never move a position. A local
//! single-node store serves runs without etcd.
//!
//! Status: lands with the pipeline and HA issues.
