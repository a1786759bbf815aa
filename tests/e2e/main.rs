//! End-to-end tests against real servers started by `sluice-testkit`.
//!
//! One test binary for the whole system (as ripgrep does): each module is an
//! area, each test starts the servers it needs on its own ports, so tests run
//! in parallel and alongside other test binaries. What several areas share
//! (the `sluice` process, SQL, etcd, CLI and wait helpers, the HA setup) is
//! in [`support`].

mod bidi;
mod bidi_conflicts;
mod bidi_switchover;
mod binlog_fixtures;
mod binlog_live;
mod config;
mod console;
mod control;
mod control_pause;
mod decode_start;
mod deploy;
mod fidelity;
mod fixtures;
mod ha;
mod kit;
mod lag;
mod layout;
mod load_target;
mod messages;
mod ops;
mod pipeline;
mod pipeline_workload;
mod positions;
mod quickstart;
mod readme;
mod snapshot;
mod snapshot_ddl;
mod snapshot_recopy;
mod snapshot_stages;
mod soak;
mod stages;
mod streams;
mod support;
mod tls;
mod verify;
mod verify_continuous;
mod workload;
