//! Real servers for tests: `mariadbd` and `etcd` processes on free loopback
//! ports, each in its own temp dir, torn down on drop.
//!
//! The key decision: no mocks. Every integration test and benchmark talks to a
//! real MariaDB and a real etcd, started here. To keep that cheap:
//!
//! * a MariaDB data directory is bootstrapped once per server version with
//!   `mariadb-install-db` (≈2 s) into a shared cache and then *copied* for each
//!   instance (≈50 ms), so a server is ready in well under a second;
//! * ports are chosen at random below the kernel's ephemeral range and checked
//!   by binding; a server that still loses the race ("address in use") is
//!   restarted on another port, so parallel test binaries never clash;
//! * readiness is polled with a deadline — never a fixed sleep;
//! * every child is spawned from one long-lived thread with
//!   `PR_SET_PDEATHSIG`, so servers die with the test process even if it is
//!   killed, and are killed and their temp dirs removed on drop.
//!
//! A missing binary is an error naming the Debian package to install, never a
//! silent skip.
//!
//! Besides the servers, the kit holds what the e2e tests and `sluice-bench`
//! share: the `sluice` process spawner ([`SluiceCommand`]), a seeded
//! [`workload`] for a source, and the semantic [`compare`] of a source schema
//! with its replica.

pub mod compare;
pub mod corpus;
mod etcd;
pub mod fidelity;
mod mariadb;
mod ports;
mod process;
mod sluice;
pub mod sql;
mod wait;
pub mod workload;

pub use corpus::{repo_root, skip_without_fixtures};
pub use etcd::{Etcd, EtcdTlsFiles};
pub use mariadb::{MariaDb, MariaDbBuilder, Role, REPL_PASSWORD, REPL_USER};
pub use ports::free_port;
pub use process::{find_binary, log_tail, spawn_guarded, ServerProcess};
pub use sluice::{SluiceCommand, SluiceProcess};
pub use wait::{wait_until, wait_until_async};

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or driving a test server.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("`{binary}` not found on PATH or in /usr/sbin: install the Debian package `{package}` (apt-get install {package})")]
    MissingBinary {
        binary: &'static str,
        package: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} exited during startup ({status}); last log lines from {log}:\n{tail}")]
    Exited {
        what: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} not ready after {waited:?}; last log lines from {log}:\n{tail}")]
    NotReady {
        what: String,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{what}: {message}")]
    Command { what: String, message: String },
    #[error("sql on {what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
    /// A statement of a workload or a comparison failed.
    #[error("{0}")]
    Mysql(#[from] mysql_async::Error),
    /// What was being done when `source` happened.
    #[error("{what}: {source}")]
    Context {
        what: String,
        #[source]
        source: Box<KitError>,
    },
    /// [`compare::wait_until_same`] gave up; `report` is the last comparison.
    #[error("source `{source_schema}` and target `{target_schema}` still differ after {waited:?}:\n{report}")]
    StillDifferent {
        source_schema: String,
        target_schema: String,
        waited: Duration,
        report: String,
    },
    /// Something a tool found that makes it stop (a table the workload
    /// needs is gone, a dump failed).
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = KitError> = std::result::Result<T, E>;

/// `.context(..)` for kit results: wraps any error the kit can hold in
/// [`KitError::Context`], so a failure says what was being done.
pub(crate) trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<KitError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| KitError::Context {
            what: what.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| KitError::Context {
            what: what().into(),
            source: Box::new(e.into()),
        })
    }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KitError {
    let what = what.into();
    move |source| KitError::Io { what, source }
}
