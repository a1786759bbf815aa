//! The binlog source: a fake replica and the decoders behind it.
//!
//! Owns everything that reads MySQL/MariaDB binlogs — the replica connection
//! (COM_REGISTER_SLAVE, COM_BINLOG_DUMP / _GTID, MariaDB GTID state), CRC32
//! verification of every event, event and row decoding into `sluice-core`
//! values with the server's exact types, the preflight checks a source must
//! pass, and offline decoding of binlog files. Nothing here talks to a target.
//!
//! The key decision: mysql_common frames events (header, checksum, FDE, QUERY,
//! ROTATE, XID, MySQL GTIDs, compressed transaction payloads), but TABLE_MAP
//! and ROWS events are parsed here, and row images are decoded by a decoder
//! specialised by the table map ([`rows`]). That is both faster than a generic
//! value decoder and the only way to handle MariaDB-only column types
//! (compressed columns, legacy "hires" temporals) and compressed rows events,
//! which a generic per-type metadata walker would misread.

pub mod catalog;
pub mod charset;
pub mod connect;
mod cursor;
pub mod decimal;
pub mod dialect;
pub mod end;
pub mod error;
pub mod events;
pub mod file;
pub mod gtid_resolve;
pub mod jsonb;
pub mod output;
pub mod preflight;
pub mod rows;
pub mod snapshot;
pub mod statement;
pub mod stream;
pub mod tablemap;
pub mod temporal;
pub mod verify;

pub use error::BinlogError;
pub use events::{Event, EventDecoder, EventKind, RowsEvent};
