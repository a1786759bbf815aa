//! The binlog source: a fake replica and the decoders behind it.
//!
//! Owns everything that reads MySQL/MariaDB binlogs — the replica connection
//! (COM_REGISTER_SLAVE, COM_BINLOG_DUMP / _GTID, MariaDB GTID state), CRC32
//! verification of every event, event and row decoding into `sluice-core`
//! values with the server's exact types, the preflight checks a source must
//! pass, and offline decoding of binlog files. Framing comes from mysql_common
//! (via mysql_async's `binlog` feature); nothing here talks to a target.
//!
//! Status: lands with the binlog source issue.
