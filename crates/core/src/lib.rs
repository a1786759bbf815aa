//! The domain model of sluice, shared by every other crate.
//!
//! This crate owns the vocabulary of the pipeline — where a change came from
//! ([`Position`], GTID sets for MySQL and MariaDB), what it is (values, row
//! changes, table schemas, batches) and how failures are classified
//! ([`ErrorClass`]). It deliberately depends on no driver, no etcd and no async
//! runtime: everything here is plain data with exact, lossless representations,
//! so that the stages can be tested without servers and so that a position or a
//! value never changes meaning when it crosses a crate boundary. The one
//! exception is [`retry`], the shared retry loop, which needs tokio's timer
//! (and nothing else of it); [`time`] holds the wall-clock helpers.
//!
//! Dependencies in the workspace point down toward this crate; it points nowhere.

pub mod change;
pub mod error;
pub mod gtid;
pub mod position;
pub mod redact;
pub mod retry;
pub mod schema;
pub mod security;
pub mod time;
pub mod value;
pub mod verify;

pub use change::{ChangeKind, Row, RowChange};
pub use error::{Classify, ErrorClass};
pub use gtid::{
    GnoInterval, GtidParseError, GtidParseErrorKind, GtidRangeError, GtidSet, GtidTag, MariadbGtid,
    MariadbGtidSet, MysqlGtidSet, Uuid, MAX_GNO,
};
pub use position::{cmp_binlog_file_names, Position, PositionParseError};
pub use redact::redact_url;
pub use schema::{Column, TableSchema};
pub use security::{ClientCert, EtcdAuth, EtcdTls, Secret, TlsConfig, TlsMode};
pub use value::{DateTime, Time, Value};
