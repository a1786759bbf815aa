//! End-to-end tests against real servers started by `sluice-testkit`.
//!
//! One test binary for the whole system (as ripgrep does): each module is an
//! area, each test starts the servers it needs on its own ports, so tests run
//! in parallel and alongside other test binaries.

mod binlog_fixtures;
mod binlog_live;
mod config;
mod control;
mod deploy;
mod fixtures;
mod ha;
mod kit;
mod load_target;
mod ops;
mod pipeline;
mod pipeline_workload;
mod positions;
mod stages;
mod tls;
mod workload;
