//! Every replication statement sluice sends a server, chosen by the
//! server's flavour and version — the one place they are spelled.
//!
//! MySQL renamed its MASTER/SLAVE statements and then removed the old
//! spellings; MariaDB added the new ones as synonyms and keeps the old.
//! Sending a spelling the server no longer has is error 1064, which looks
//! like any other failed query, so each statement is picked here from the
//! version the server reports, and a server that still refuses one is a
//! definite error naming that version ([`Dialect::refused`]).
//!
//! | statement | MySQL | MariaDB |
//! |---|---|---|
//! | binlog status | `SHOW MASTER STATUS` < 8.2.0 ≤ `SHOW BINARY LOG STATUS` (old spelling removed in 8.4) | `SHOW MASTER STATUS` < 10.5.2 ≤ `SHOW BINLOG STATUS` |
//! | replicas of a source | `SHOW SLAVE HOSTS` < 8.0.22 ≤ `SHOW REPLICAS` | `SHOW SLAVE HOSTS` < 10.5.1 ≤ `SHOW REPLICA HOSTS` |
//! | replica status | `SHOW SLAVE STATUS` < 8.0.22 ≤ `SHOW REPLICA STATUS` | `SHOW SLAVE STATUS` < 10.5.1 ≤ `SHOW REPLICA STATUS` |
//! | start/stop a replica | `START/STOP SLAVE` < 8.0.22 ≤ `START/STOP REPLICA` | `START/STOP SLAVE` < 10.5.1 ≤ `START/STOP REPLICA` |
//! | point a replica | `CHANGE MASTER TO MASTER_…` < 8.0.23 ≤ `CHANGE REPLICATION SOURCE TO SOURCE_…` | `CHANGE MASTER TO MASTER_…` (all versions) |
//! | binlog files, events | `SHOW BINARY LOGS`, `SHOW BINLOG EVENTS` (all versions) | same |
//! | executed GTIDs | `@@GLOBAL.gtid_executed` | `@@GLOBAL.gtid_binlog_pos` |
//! | dump session variables | `@master_heartbeat_period`, `@master_binlog_checksum`, and the `@source_…` spellings 8.0.26+ replicas send | `@master_…`, `@mariadb_slave_capability`, `@slave_connect_state` |
//!
//! Sources: MySQL 8.0.22/8.0.23/8.2.0/8.4.0 release notes ("SHOW MASTER
//! STATUS … removed", "use SHOW BINARY LOG STATUS"), MariaDB's
//! `SHOW BINLOG STATUS` (10.5.2) and `SHOW REPLICA …` (10.5.1) pages. The
//! dump's user variables cost nothing when a server ignores them, so both
//! spellings are set rather than guessing which one a server reads.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::error::BinlogError;

/// Which server family the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Mysql,
    Mariadb,
}

/// A server's flavour and `major.minor.patch` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub flavor: Flavor,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// `VERSION()` as the server reported it.
    pub text: String,
}

impl ServerVersion {
    /// Parses `VERSION()`: `8.4.3`, `9.1.0-commercial`,
    /// `10.11.6-MariaDB-0+deb12u1-log`, and the `5.5.5-10.x-MariaDB` form
    /// MariaDB sends in its handshake.
    pub fn parse(text: &str) -> Self {
        let flavor = if text.contains("MariaDB") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        };
        let version = match (flavor, text.strip_prefix("5.5.5-")) {
            (Flavor::Mariadb, Some(rest)) => rest,
            _ => text,
        };
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse::<u32>().unwrap_or(0));
        ServerVersion {
            flavor,
            major: numbers.next().unwrap_or(0),
            minor: numbers.next().unwrap_or(0),
            patch: numbers.next().unwrap_or(0),
            text: text.to_string(),
        }
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.flavor {
            Flavor::Mysql => "MySQL",
            Flavor::Mariadb => "MariaDB",
        };
        write!(f, "{name} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The statements to send one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub version: ServerVersion,
}

/// How a replica reaches its source (for tests and benchmarks that set up
/// native replication).
#[derive(Debug, Clone)]
pub struct SourceAddress<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    /// Position by GTID (MariaDB `slave_pos`, MySQL auto-position).
    pub gtid: bool,
    pub connect_retry_s: u32,
}

/// Server error codes that mean "this server has no such statement".
const NOT_SUPPORTED_CODES: &[u16] = &[
    1047, // ER_UNKNOWN_COM_ERROR
    1064, // ER_PARSE_ERROR
    1149, // ER_SYNTAX_ERROR
    1235, // ER_NOT_SUPPORTED_YET
];

impl Dialect {
    pub fn new(version: ServerVersion) -> Self {
        Dialect { version }
    }

    /// Reads `VERSION()`.
    pub async fn detect(conn: &mut Conn) -> Result<Self, BinlogError> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| BinlogError::source("reading VERSION()", e))?;
        Ok(Dialect::new(ServerVersion::parse(
            &version.unwrap_or_default(),
        )))
    }

    pub fn flavor(&self) -> Flavor {
        self.version.flavor
    }

    fn mysql_at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version.flavor == Flavor::Mysql && self.version.at_least(major, minor, patch)
    }

    fn mariadb_at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version.flavor == Flavor::Mariadb && self.version.at_least(major, minor, patch)
    }

    /// The current binlog file and position (`File`, `Position`, … columns).
    pub fn binlog_status(&self) -> &'static str {
        if self.mysql_at_least(8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else if self.mariadb_at_least(10, 5, 2) {
            "SHOW BINLOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    /// The replicas registered with this source (`Server_id`, `Host`,
    /// `Port`, … columns).
    pub fn replica_hosts(&self) -> &'static str {
        if self.mysql_at_least(8, 0, 22) {
            "SHOW REPLICAS"
        } else if self.mariadb_at_least(10, 5, 1) {
            "SHOW REPLICA HOSTS"
        } else {
            "SHOW SLAVE HOSTS"
        }
    }

    /// The binlog files with their sizes.
    pub fn binary_logs(&self) -> &'static str {
        "SHOW BINARY LOGS"
    }

    /// The first `limit` events of `file`.
    pub fn binlog_events(&self, file: &str, limit: u32) -> String {
        format!("SHOW BINLOG EVENTS IN '{}' LIMIT {limit}", quote_file(file))
    }

    /// At most `limit` events of `file`, from the event at offset `from`.
    pub fn binlog_events_from(&self, file: &str, from: u64, limit: u64) -> String {
        format!(
            "SHOW BINLOG EVENTS IN '{}' FROM {from} LIMIT {limit}",
            quote_file(file)
        )
    }

    /// The GTID set of everything in the binlog.
    pub fn executed_gtids(&self) -> &'static str {
        match self.version.flavor {
            Flavor::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
            Flavor::Mysql => "SELECT @@GLOBAL.gtid_executed",
        }
    }

    /// Whether a missing `binlog_format` variable means ROW: MySQL
    /// deprecated the variable in 8.0.34 on the way to row-only logging;
    /// older servers always have it.
    pub fn row_format_when_unset(&self) -> bool {
        self.mysql_at_least(8, 0, 34)
    }

    /// Session settings of a dump connection before COM_BINLOG_DUMP: the
    /// heartbeat period and checksum negotiation, and on MariaDB the
    /// replica capability (4: GTID events and GTID_LIST) plus, for a GTID
    /// start, the connect state in strict mode.
    pub fn dump_session(&self, heartbeat_ns: u64, gtid_start: Option<&str>) -> Vec<String> {
        let mut out = vec![
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_string(),
        ];
        match self.version.flavor {
            Flavor::Mysql => {
                if self.mysql_at_least(8, 0, 26) {
                    out.push(format!("SET @source_heartbeat_period = {heartbeat_ns}"));
                    out.push("SET @source_binlog_checksum = @@global.binlog_checksum".into());
                }
            }
            Flavor::Mariadb => {
                out.push("SET @mariadb_slave_capability = 4".into());
                if let Some(state) = gtid_start {
                    out.push(format!(
                        "SET @slave_connect_state = '{}'",
                        state.replace('\'', "''")
                    ));
                    out.push("SET @slave_gtid_strict_mode = 1".into());
                    out.push("SET @slave_gtid_ignore_duplicates = 0".into());
                }
            }
        }
        out
    }

    /// This replica's status (`Slave_IO_Running`/`Replica_IO_Running`, …).
    pub fn replica_status(&self) -> &'static str {
        if self.mysql_at_least(8, 0, 22) || self.mariadb_at_least(10, 5, 1) {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        }
    }

    pub fn start_replica(&self) -> &'static str {
        if self.mysql_at_least(8, 0, 22) || self.mariadb_at_least(10, 5, 1) {
            "START REPLICA"
        } else {
            "START SLAVE"
        }
    }

    pub fn stop_replica(&self) -> &'static str {
        if self.mysql_at_least(8, 0, 22) || self.mariadb_at_least(10, 5, 1) {
            "STOP REPLICA"
        } else {
            "STOP SLAVE"
        }
    }

    /// Points this server, as a replica, at `source`.
    pub fn change_source(&self, source: &SourceAddress<'_>) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
        let (verb, prefix) = if self.mysql_at_least(8, 0, 23) {
            ("CHANGE REPLICATION SOURCE TO", "SOURCE")
        } else {
            ("CHANGE MASTER TO", "MASTER")
        };
        let gtid = match (self.version.flavor, source.gtid) {
            (Flavor::Mariadb, true) => ", MASTER_USE_GTID=slave_pos".to_string(),
            (Flavor::Mysql, true) => format!(", {prefix}_AUTO_POSITION=1"),
            (_, false) => String::new(),
        };
        format!(
            "{verb} {prefix}_HOST={}, {prefix}_PORT={}, {prefix}_USER={}, {prefix}_PASSWORD={}, \
             {prefix}_CONNECT_RETRY={}{gtid}",
            quote(source.host),
            source.port,
            quote(source.user),
            quote(source.password),
            source.connect_retry_s,
        )
    }

    /// The error for `statement` failing with `err`: a server that has no
    /// such statement is a definite error naming its version; anything
    /// else is classified as usual.
    pub fn refused(&self, statement: &str, err: mysql_async::Error) -> BinlogError {
        if let mysql_async::Error::Server(s) = &err {
            if NOT_SUPPORTED_CODES.contains(&s.code) {
                return BinlogError::StatementUnsupported {
                    statement: statement.to_string(),
                    server: self.version.to_string(),
                    version: self.version.text.clone(),
                    code: s.code,
                    message: s.message.clone(),
                };
            }
        }
        BinlogError::source(statement.to_string(), err)
    }
}

/// A binlog file name for a single-quoted literal: quotes doubled,
/// backslashes escaped (the server's default `sql_mode`).
fn quote_file(file: &str) -> String {
    file.replace('\\', "\\\\").replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use sluice_core::{Classify, ErrorClass};

    use super::*;

    fn d(version: &str) -> Dialect {
        Dialect::new(ServerVersion::parse(version))
    }

    #[test]
    fn versions_parse() {
        let v = ServerVersion::parse("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!(
            (v.flavor, v.major, v.minor, v.patch),
            (Flavor::Mariadb, 10, 11, 6)
        );
        let v = ServerVersion::parse("5.5.5-10.4.32-MariaDB");
        assert_eq!(
            (v.flavor, v.major, v.minor, v.patch),
            (Flavor::Mariadb, 10, 4, 32)
        );
        let v = ServerVersion::parse("8.4.3");
        assert_eq!(
            (v.flavor, v.major, v.minor, v.patch),
            (Flavor::Mysql, 8, 4, 3)
        );
        let v = ServerVersion::parse("9.1.0-commercial");
        assert_eq!(v.to_string(), "MySQL 9.1.0");
        let v = ServerVersion::parse("5.7.44-log");
        assert_eq!((v.major, v.minor, v.patch), (5, 7, 44));
        let v = ServerVersion::parse("");
        assert_eq!((v.flavor, v.major), (Flavor::Mysql, 0));
    }

    /// The choice per version: (version, binlog status, replica hosts,
    /// replica status, start, change source verb).
    #[test]
    fn statements_by_flavour_and_version() {
        let cases = [
            (
                "5.7.44-log",
                "SHOW MASTER STATUS",
                "SHOW SLAVE HOSTS",
                "SHOW SLAVE STATUS",
                "START SLAVE",
                "CHANGE MASTER TO MASTER_HOST=",
            ),
            (
                "8.0.21",
                "SHOW MASTER STATUS",
                "SHOW SLAVE HOSTS",
                "SHOW SLAVE STATUS",
                "START SLAVE",
                "CHANGE MASTER TO MASTER_HOST=",
            ),
            (
                "8.0.36",
                "SHOW MASTER STATUS",
                "SHOW REPLICAS",
                "SHOW REPLICA STATUS",
                "START REPLICA",
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=",
            ),
            (
                "8.4.3",
                "SHOW BINARY LOG STATUS",
                "SHOW REPLICAS",
                "SHOW REPLICA STATUS",
                "START REPLICA",
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=",
            ),
            (
                "9.1.0",
                "SHOW BINARY LOG STATUS",
                "SHOW REPLICAS",
                "SHOW REPLICA STATUS",
                "START REPLICA",
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=",
            ),
            (
                "10.4.32-MariaDB",
                "SHOW MASTER STATUS",
                "SHOW SLAVE HOSTS",
                "SHOW SLAVE STATUS",
                "START SLAVE",
                "CHANGE MASTER TO MASTER_HOST=",
            ),
            (
                "10.11.6-MariaDB-0+deb12u1-log",
                "SHOW BINLOG STATUS",
                "SHOW REPLICA HOSTS",
                "SHOW REPLICA STATUS",
                "START REPLICA",
                "CHANGE MASTER TO MASTER_HOST=",
            ),
            (
                "11.4.2-MariaDB",
                "SHOW BINLOG STATUS",
                "SHOW REPLICA HOSTS",
                "SHOW REPLICA STATUS",
                "START REPLICA",
                "CHANGE MASTER TO MASTER_HOST=",
            ),
        ];
        let address = SourceAddress {
            host: "127.0.0.1",
            port: 3306,
            user: "repl",
            password: "it's",
            gtid: true,
            connect_retry_s: 1,
        };
        for (version, status, hosts, replica, start, change) in cases {
            let d = d(version);
            assert_eq!(d.binlog_status(), status, "{version}");
            assert_eq!(d.replica_hosts(), hosts, "{version}");
            assert_eq!(d.replica_status(), replica, "{version}");
            assert_eq!(d.start_replica(), start, "{version}");
            assert_eq!(
                d.stop_replica(),
                start.replacen("START", "STOP", 1),
                "{version}"
            );
            assert_eq!(d.binary_logs(), "SHOW BINARY LOGS", "{version}");
            let sql = d.change_source(&address);
            assert!(sql.starts_with(change), "{version}: {sql}");
            assert!(sql.contains("_PASSWORD='it''s'"), "{sql}");
        }
        assert!(d("10.11.6-MariaDB")
            .change_source(&address)
            .ends_with("MASTER_USE_GTID=slave_pos"));
        assert!(d("8.4.3")
            .change_source(&address)
            .ends_with("SOURCE_AUTO_POSITION=1"));
        assert!(d("5.7.44")
            .change_source(&address)
            .ends_with("MASTER_AUTO_POSITION=1"));
    }

    #[test]
    fn dump_session_variables() {
        let maria = d("10.11.6-MariaDB").dump_session(1_000, Some("0-1-5"));
        assert!(maria.contains(&"SET @mariadb_slave_capability = 4".to_string()));
        assert!(maria.contains(&"SET @slave_connect_state = '0-1-5'".to_string()));
        assert!(!maria.iter().any(|s| s.contains("@source_")));
        let old = d("5.7.44").dump_session(1_000, None);
        assert_eq!(old.len(), 2);
        let new = d("8.4.3").dump_session(1_000, None);
        assert!(new.contains(&"SET @source_heartbeat_period = 1000".to_string()));
        assert!(new.contains(&"SET @master_heartbeat_period = 1000".to_string()));
        assert!(!new.iter().any(|s| s.contains("mariadb")));
        assert!(d("8.0.40").row_format_when_unset());
        assert!(!d("5.7.44").row_format_when_unset());
        assert!(!d("10.11.6-MariaDB").row_format_when_unset());
        assert_eq!(d("8.4.3").executed_gtids(), "SELECT @@GLOBAL.gtid_executed");
        assert_eq!(
            d("10.6.1-MariaDB").binlog_events("a'b", 5),
            "SHOW BINLOG EVENTS IN 'a''b' LIMIT 5"
        );
        assert_eq!(
            d("10.11.9-MariaDB").binlog_events_from("mysql-bin.000002", 1234, 50),
            "SHOW BINLOG EVENTS IN 'mysql-bin.000002' FROM 1234 LIMIT 50"
        );
    }

    #[test]
    fn a_statement_the_server_lacks_is_definite_and_names_the_version() {
        let err = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax; … near 'MASTER STATUS'".into(),
            state: "42000".into(),
        });
        let e = d("8.4.3").refused("SHOW MASTER STATUS", err);
        assert_eq!(e.class(), ErrorClass::Definite);
        let text = e.to_string();
        assert!(text.contains("MySQL 8.4.3"), "{text}");
        assert!(text.contains("SHOW MASTER STATUS"), "{text}");
        assert!(text.contains("1064"), "{text}");
        // Other failures keep their own class.
        let lost = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1053,
            message: "Server shutdown in progress".into(),
            state: "08S01".into(),
        });
        assert_eq!(
            d("8.4.3").refused("SHOW BINARY LOG STATUS", lost).class(),
            ErrorClass::Transient
        );
    }
}
