//! What the e2e tests share: the `sluice` process, SQL and wait helpers, the
//! etcd and CLI helpers, and the HA setup. A test module holds its scenario;
//! anything a second module needs lives here.
//!
//! * [`sluice`] — `sluice run` as a child ([`Sluice`], on the kit's
//!   spawner, which `sluice-bench` uses too), pipeline files, server ids.
//! * [`sql`] — rows as text, binlog coordinates, waiting for a target to
//!   match its source or for rows to be applied.
//! * [`etcd`] — the pipeline's keys under the tests' `/e2e` prefix, reading
//!   and waiting for values.
//! * [`browser`] — headless Chromium, a raw HTTP client and readers of
//!   rendered HTML (the console tests).
//! * [`cli`] — one-shot `sluice` commands and their output.
//! * [`ha`] — an active/standby pair: servers, pipeline file, leader,
//!   markers and a paced write load.
//! * [`layout`] — the workspace's module graph and file sizes, read from the
//!   sources (the `layout` tests check them).
//!
//! Every wait is `sluice_testkit::wait_until_async` (poll with a deadline);
//! on timeout the test fails with what it waited for and the logs that
//! explain why. The workload generator and the semantic comparator are in
//! `sluice_testkit::{workload, compare}`.

pub mod browser;
pub mod cli;
pub mod etcd;
pub mod ha;
pub mod layout;
pub mod sluice;
pub mod sql;

#[allow(unused_imports)]
pub use self::sluice::{server_id, write_config, Coord, Launch, Sluice};
#[allow(unused_imports)]
pub use self::sql::{master_status, rows, start_of_binlog, wait_same};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
