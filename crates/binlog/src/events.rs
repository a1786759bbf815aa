//! From framed binlog events to what a replicator needs: transaction
//! boundaries with their GTIDs, row events bound to their table schemas, DDL,
//! rotations — each with the binlog position it came from.
//!
//! Invariants:
//! * every event's CRC32 is verified when the source writes checksums
//!   (a mismatch is a [`BinlogError::Corrupt`] naming `file: offset`);
//! * a transaction is `Begin`, then rows, then `Commit`; DDL (and MariaDB
//!   "standalone" events) are transactions of their own; the GTID set
//!   advances only at the end of a transaction, so a position taken after a
//!   `Commit` or `Ddl` never includes a half-applied transaction;
//! * unknown or irrelevant events are skipped (debug log), never fatal.
//!
//! Row images are *not* decoded here: a [`RowsEvent`] carries its raw bytes
//! and schema, and [`RowsEvent::decode`] turns them into typed rows. That
//! split lets the pipeline decode rows (the expensive part) apart from and in
//! parallel with reading the stream.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use mysql_common::binlog::consts::BinlogChecksumAlg;
use mysql_common::binlog::events::{
    Event as RawEvent, ExecuteLoadQueryEvent, GtidEvent, PreviousGtidsEvent, QueryEvent,
    RotateEvent, StatusVarVal, StatusVars,
};
use sluice_core::{
    GtidSet, GtidTag, MariadbGtid, MariadbGtidSet, MysqlGtidSet, RowChange, TableSchema, Uuid,
};

use crate::cursor::Cursor;
use crate::error::{At, BinlogError};
use crate::rows::{RowError, RowsImage, RowsKind};
use crate::tablemap::{parse_table_map, Flavour};

/// Binlog event type codes this module acts on (MySQL and MariaDB).
pub mod code {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    /// MySQL 3.23-4.x LOAD DATA events (5.0 servers may still write them).
    pub const LOAD: u8 = 6;
    pub const CREATE_FILE: u8 = 8;
    pub const APPEND_BLOCK: u8 = 9;
    pub const EXEC_LOAD: u8 = 10;
    pub const DELETE_FILE: u8 = 11;
    pub const NEW_LOAD: u8 = 12;
    /// LOAD DATA since MySQL 5.0: the file's bytes, then the statement.
    pub const BEGIN_LOAD_QUERY: u8 = 17;
    pub const EXECUTE_LOAD_QUERY: u8 = 18;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const PRE_GA_WRITE_ROWS: u8 = 20;
    pub const PRE_GA_DELETE_ROWS: u8 = 22;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const XA_PREPARE: u8 = 38;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    pub const GTID_TAGGED: u8 = 42;
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIA_GTID: u8 = 162;
    pub const MARIA_GTID_LIST: u8 = 163;
    pub const MARIA_START_ENCRYPTION: u8 = 164;
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
    pub const MARIA_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const MARIA_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const MARIA_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const MARIA_WRITE_ROWS_COMPRESSED: u8 = 169;
    pub const MARIA_UPDATE_ROWS_COMPRESSED: u8 = 170;
    pub const MARIA_DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// One binlog event as a replicator sees it, with its position.
#[derive(Debug)]
pub struct Event {
    /// The binlog file the event is in.
    pub file: Arc<str>,
    /// Offset of the event's first byte (for events inside a compressed
    /// transaction payload: the payload event's).
    pub offset: u64,
    /// Offset of the next event: where to resume after this one.
    pub next: u64,
    /// Header timestamp (Unix seconds).
    pub timestamp: u32,
    pub server_id: u32,
    pub kind: EventKind,
}

#[derive(Debug)]
pub enum EventKind {
    /// A transaction starts; `gtid` is `uuid[:tag]:gno` (MySQL) or `d-s-n`
    /// (MariaDB), absent for anonymous transactions.
    Begin {
        gtid: Option<String>,
    },
    /// The transaction ends and is durable on the source.
    Commit {
        xid: Option<u64>,
    },
    Rows(RowsEvent),
    /// A statement replicated as text in its own transaction (DDL, DCL).
    Ddl {
        gtid: Option<String>,
        schema: String,
        sql: String,
    },
    /// A DML statement logged in STATEMENT format (a session with
    /// `binlog_format=STATEMENT` or `MIXED`; `LOAD DATA` from an
    /// EXECUTE_LOAD_QUERY event): sluice cannot replicate it as rows, and
    /// may skip it only if it writes nothing replicated.
    Statement {
        /// The session's default schema.
        schema: String,
        sql: String,
        /// The tables it writes, or why they cannot be told
        /// ([`crate::statement::analyse`]).
        writes: Result<crate::statement::Writes, String>,
        /// Logged outside BEGIN … COMMIT: the statement is its transaction
        /// (the position after it is a transaction boundary).
        standalone: bool,
    },
    /// The source ended this file; the stream continues in `next_file`.
    Rotate {
        next_file: String,
        next_pos: u64,
    },
    /// The source signalled an incident (possible lost events).
    Incident {
        message: String,
    },
    /// Row changes that exist but cannot be decoded (MySQL 5.1 pre-GA rows
    /// events have no table map). Offline decoding reports and skips them;
    /// a replicating pipeline must stop on them.
    Unreplicable {
        reason: String,
    },
    Heartbeat,
}

/// A rows event bound to the table schema of its TABLE_MAP.
#[derive(Debug, Clone)]
pub struct RowsEvent {
    pub table: Arc<TableSchema>,
    pub kind: RowsKind,
    pub columns: Vec<u8>,
    pub columns_after: Vec<u8>,
    pub data: Vec<u8>,
}

impl RowsEvent {
    /// Decodes the row images into typed row changes.
    pub fn decode(&self, out: &mut Vec<RowChange>) -> Result<(), RowError> {
        crate::rows::decode_rows(
            &RowsImage {
                table: &self.table,
                kind: self.kind,
                columns: &self.columns,
                columns_after: &self.columns_after,
                data: &self.data,
            },
            out,
        )
    }
}

#[derive(Debug, Clone)]
enum PendingGtid {
    Mysql {
        uuid: Uuid,
        tag: Option<GtidTag>,
        gno: u64,
    },
    Mariadb(MariadbGtid),
}

impl std::fmt::Display for PendingGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingGtid::Mysql {
                uuid,
                tag: None,
                gno,
            } => write!(f, "{uuid}:{gno}"),
            PendingGtid::Mysql {
                uuid,
                tag: Some(tag),
                gno,
            } => write!(f, "{uuid}:{}:{gno}", tag.as_str()),
            PendingGtid::Mariadb(g) => write!(f, "{g}"),
        }
    }
}

/// Stateful decoder of a binlog event sequence (one file, or one replica
/// stream across rotations).
#[derive(Debug)]
pub struct EventDecoder {
    file: Arc<str>,
    tables: HashMap<u64, Arc<TableSchema>>,
    mariadb: bool,
    table_id_len: usize,
    pending: Option<PendingGtid>,
    in_trx: bool,
    /// MariaDB GTID with FL_STANDALONE: the next statement is the whole
    /// transaction.
    standalone: bool,
    gtid_set: Option<GtidSet>,
    /// Reading a file: positions refer to it, not to names in fake rotates
    /// (relay logs carry the source's file names).
    offline: bool,
}

const MAX_DECOMPRESSED: usize = 1 << 30;

impl EventDecoder {
    pub fn new(file: &str) -> Self {
        Self {
            file: Arc::from(file),
            tables: HashMap::new(),
            mariadb: false,
            table_id_len: 6,
            pending: None,
            in_trx: false,
            standalone: false,
            gtid_set: None,
            offline: false,
        }
    }

    /// Seeds the executed GTID set (e.g. the set a replica stream started
    /// from); it then advances with every committed transaction.
    pub fn with_gtid_set(mut self, set: Option<GtidSet>) -> Self {
        self.gtid_set = set;
        self
    }

    pub fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The GTID set executed up to the last completed transaction.
    pub fn gtid_set(&self) -> Option<&GtidSet> {
        self.gtid_set.as_ref()
    }

    pub fn is_mariadb(&self) -> bool {
        self.mariadb
    }

    /// True between `Begin` and `Commit`.
    pub fn in_transaction(&self) -> bool {
        self.in_trx
    }

    fn at(&self, offset: u64) -> At {
        At {
            file: self.file.to_string(),
            offset,
        }
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> BinlogError {
        BinlogError::Corrupt {
            at: self.at(offset),
            reason: reason.into(),
        }
    }

    /// Checks the event's CRC32 when the stream carries checksums.
    pub fn verify_checksum(&self, ev: &RawEvent, offset: u64) -> Result<(), BinlogError> {
        let footer = ev.footer();
        if !footer.get_checksum_enabled() {
            return Ok(());
        }
        let Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)) = footer.get_checksum_alg()
        else {
            return Ok(());
        };
        let Some(stored) = ev.checksum() else {
            return Ok(());
        };
        let stored = u32::from_le_bytes(stored);
        let computed = ev.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
        if stored != computed {
            return Err(self.corrupt(
                offset,
                format!(
                    "checksum mismatch in event type {} (stored {stored:#010x}, computed {computed:#010x})",
                    ev.header().event_type_raw()
                ),
            ));
        }
        Ok(())
    }

    /// Decodes one event. `offset`/`next` locate it in the current file.
    /// Returns `None` for events that carry nothing for a replicator.
    pub fn decode(
        &mut self,
        ev: &RawEvent,
        offset: u64,
        next: u64,
    ) -> Result<Option<Event>, BinlogError> {
        self.verify_checksum(ev, offset)?;
        let header = ev.header();
        let kind = self.decode_kind(ev, offset)?;
        Ok(kind.map(|kind| Event {
            file: self.file.clone(),
            offset,
            next,
            timestamp: header.timestamp(),
            server_id: header.server_id(),
            kind,
        }))
    }

    fn decode_kind(
        &mut self,
        ev: &RawEvent,
        offset: u64,
    ) -> Result<Option<EventKind>, BinlogError> {
        let ty = ev.header().event_type_raw();
        let data = ev.data();
        let parse_err = |e: std::io::Error| self.corrupt(offset, format!("event type {ty}: {e}"));
        match ty {
            code::FORMAT_DESCRIPTION => {
                // The server version is at bytes 2..52 of the FDE body.
                let version = data.get(2..52).unwrap_or_default();
                self.mariadb =
                    Flavour::of_version(&String::from_utf8_lossy(version)) == Flavour::Mariadb;
                self.tables.clear();
                Ok(None)
            }
            code::ROTATE => {
                let re: RotateEvent<'_> = ev.read_event().map_err(parse_err)?;
                if ev.header().timestamp() == 0 || ev.header().log_pos() == 0 {
                    // Fake rotate at the start of a replica stream: names
                    // the file the stream is in.
                    if !self.offline {
                        let raw = strip_fake_rotate_checksum(ev, re.name_raw());
                        let name = String::from_utf8_lossy(raw);
                        self.file = Arc::from(name.trim_end_matches('\0'));
                    }
                    Ok(None)
                } else {
                    let name = re.name().trim_end_matches('\0').to_string();
                    Ok(Some(EventKind::Rotate {
                        next_file: name,
                        next_pos: re.position(),
                    }))
                }
            }
            code::GTID | code::GTID_TAGGED => {
                let ge: GtidEvent = ev.read_event().map_err(parse_err)?;
                let tag = match ge.tag() {
                    Some(t) => Some(GtidTag::new(t.as_str()).map_err(|e| {
                        self.corrupt(offset, format!("GTID tag: {e}"))
                    })?),
                    None => None,
                };
                self.pending = Some(PendingGtid::Mysql {
                    uuid: Uuid::from_bytes(ge.sid()),
                    tag,
                    gno: ge.gno(),
                });
                Ok(None)
            }
            code::ANONYMOUS_GTID => {
                self.pending = None;
                Ok(None)
            }
            code::PREVIOUS_GTIDS => {
                let pg: PreviousGtidsEvent<'_> = ev.read_event().map_err(parse_err)?;
                let mut set = MysqlGtidSet::new();
                for sid in pg.sids() {
                    let uuid = Uuid::from_bytes(sid.uuid());
                    let tag = match sid.tag() {
                        Some(t) => Some(GtidTag::new(t.as_str()).map_err(|e| {
                            self.corrupt(offset, format!("GTID tag: {e}"))
                        })?),
                        None => None,
                    };
                    for iv in sid.intervals() {
                        // The binlog stores half-open [start, end).
                        if iv.end() > iv.start() {
                            let iv = sluice_core::GnoInterval::new(iv.start(), iv.end() - 1)
                                .map_err(|e| self.corrupt(offset, format!("PREVIOUS_GTIDS: {e}")))?;
                            set.add_interval(uuid, tag, iv);
                        }
                    }
                }
                self.gtid_set = Some(GtidSet::Mysql(set));
                Ok(None)
            }
            code::MARIA_GTID => {
                let mut c = Cursor::new(data);
                let short = |e: crate::cursor::Short| self.corrupt(offset, format!("MariaDB GTID: {e}"));
                let seq = c.u64("sequence").map_err(short)?;
                let domain = c.u32("domain").map_err(short)?;
                let flags = c.u8("flags").map_err(short)?;
                let gtid = MariadbGtid {
                    domain,
                    server_id: ev.header().server_id(),
                    seq,
                };
                self.pending = Some(PendingGtid::Mariadb(gtid));
                if flags & 1 != 0 {
                    self.standalone = true;
                    Ok(None)
                } else {
                    self.standalone = false;
                    self.in_trx = true;
                    Ok(Some(EventKind::Begin {
                        gtid: Some(gtid.to_string()),
                    }))
                }
            }
            code::MARIA_GTID_LIST => {
                let mut c = Cursor::new(data);
                let short = |e: crate::cursor::Short| self.corrupt(offset, format!("GTID_LIST: {e}"));
                let count = c.u32("count").map_err(short)? & 0x0fff_ffff;
                let mut set = MariadbGtidSet::new();
                for _ in 0..count {
                    let domain = c.u32("domain").map_err(short)?;
                    let server_id = c.u32("server id").map_err(short)?;
                    let seq = c.u64("sequence").map_err(short)?;
                    set.advance(MariadbGtid {
                        domain,
                        server_id,
                        seq,
                    });
                }
                self.gtid_set = Some(GtidSet::Mariadb(set));
                Ok(None)
            }
            code::QUERY | code::MARIA_QUERY_COMPRESSED => {
                let qe: QueryEvent<'_> = ev.read_event().map_err(parse_err)?;
                let schema = qe.schema().into_owned();
                let sql = if ty == code::MARIA_QUERY_COMPRESSED {
                    let raw = mariadb_uncompress(qe.query_raw())
                        .map_err(|e| self.corrupt(offset, format!("compressed query: {e}")))?;
                    String::from_utf8_lossy(&raw).into_owned()
                } else {
                    qe.query().into_owned()
                };
                let mode = sql_mode(qe.status_vars());
                Ok(self.on_query(schema, sql, mode))
            }
            code::EXECUTE_LOAD_QUERY => {
                // The LOAD DATA statement of a statement-format session (its
                // data came in BEGIN_LOAD_QUERY/APPEND_BLOCK events).
                let le: ExecuteLoadQueryEvent<'_> = ev.read_event().map_err(parse_err)?;
                let schema = le.schema().into_owned();
                let sql = le.query().into_owned();
                let mode = sql_mode(le.status_vars());
                Ok(Some(self.statement(schema, sql, mode)))
            }
            code::LOAD | code::NEW_LOAD | code::EXEC_LOAD => Ok(Some(EventKind::Unreplicable {
                reason: format!(
                    "pre-5.0 LOAD DATA event (type {ty}): rows loaded by statement, which sluice cannot replicate"
                ),
            })),
            code::XID => {
                let xid = Cursor::new(data).u64("xid").ok();
                Ok(Some(self.commit(xid)))
            }
            code::TABLE_MAP => {
                let flavour = if self.mariadb {
                    Flavour::Mariadb
                } else {
                    Flavour::Mysql
                };
                let tm = parse_table_map(data, self.table_id_len, flavour)
                    .map_err(|e| self.corrupt(offset, format!("TABLE_MAP: {e}")))?;
                if !tm.schema.has_names && !self.tables.contains_key(&tm.table_id) {
                    tracing::warn!(
                        table = %tm.schema.qualified_name(),
                        "table map has no column names (binlog_row_metadata is not FULL); columns are named @1..@n"
                    );
                }
                // A source logs a TABLE_MAP per table per transaction; keep
                // the same `Arc` while the table is unchanged, so consumers
                // can cache per-table work by pointer.
                match self.tables.get(&tm.table_id) {
                    Some(known) if **known == *tm.schema => {}
                    _ => {
                        self.tables.insert(tm.table_id, tm.schema);
                    }
                }
                Ok(None)
            }
            code::WRITE_ROWS_V1..=code::DELETE_ROWS_V1
            | code::WRITE_ROWS_V2..=code::DELETE_ROWS_V2
            | code::PARTIAL_UPDATE_ROWS
            | code::MARIA_WRITE_ROWS_COMPRESSED_V1..=code::MARIA_DELETE_ROWS_COMPRESSED => {
                self.rows(ty, data, offset).map(|r| Some(EventKind::Rows(r)))
            }
            code::PRE_GA_WRITE_ROWS..=code::PRE_GA_DELETE_ROWS => Ok(Some(EventKind::Unreplicable {
                reason: format!(
                    "pre-GA rows event (type {ty}, MySQL 5.1.0-5.1.15) carries no table map and cannot be decoded"
                ),
            })),
            code::INCIDENT => {
                let mut c = Cursor::new(data);
                let _kind = c.u16("incident").ok();
                let len = c.u8("message length").unwrap_or(0) as usize;
                let msg = c.take(len, "message").unwrap_or_default();
                Ok(Some(EventKind::Incident {
                    message: String::from_utf8_lossy(msg).into_owned(),
                }))
            }
            code::HEARTBEAT | code::HEARTBEAT_V2 => Ok(Some(EventKind::Heartbeat)),
            code::MARIA_START_ENCRYPTION => Err(BinlogError::Unsupported {
                at: self.at(offset),
                reason: "encrypted binlog (encrypt_binlog=ON): read it through a replica stream, not as a file".into(),
            }),
            code::STOP
            | code::CREATE_FILE
            | code::APPEND_BLOCK
            | code::DELETE_FILE
            | code::BEGIN_LOAD_QUERY
            | code::XA_PREPARE
            | code::MARIA_ANNOTATE_ROWS
            | code::MARIA_BINLOG_CHECKPOINT
            | code::TRANSACTION_PAYLOAD => Ok(None),
            other => {
                tracing::debug!(event_type = other, offset, "skipping binlog event");
                Ok(None)
            }
        }
    }

    /// A statement-format DML statement, analysed; outside a transaction
    /// it is a transaction of its own.
    fn statement(&mut self, schema: String, sql: String, sql_mode: Option<u64>) -> EventKind {
        let writes = crate::statement::analyse(&schema, &sql, sql_mode);
        let standalone = !self.in_trx;
        if standalone {
            self.standalone = false;
            self.advance_gtid();
        }
        EventKind::Statement {
            schema,
            sql,
            writes,
            standalone,
        }
    }

    fn on_query(
        &mut self,
        schema: String,
        sql: String,
        sql_mode: Option<u64>,
    ) -> Option<EventKind> {
        let head = first_word(&sql);
        match head.as_str() {
            "BEGIN" => {
                if self.in_trx {
                    // MariaDB: the GTID event already began it.
                    return None;
                }
                self.in_trx = true;
                let gtid = self.pending.as_ref().map(ToString::to_string);
                Some(EventKind::Begin { gtid })
            }
            "COMMIT" => Some(self.commit(None)),
            // ROLLBACK in a binlog ends a group whose logged changes (to
            // non-transactional tables) did happen.
            "ROLLBACK" if !sql.to_ascii_uppercase().contains(" TO ") => Some(self.commit(None)),
            "SAVEPOINT" | "ROLLBACK" => None,
            // XA: the rows of a prepared transaction may still be rolled
            // back later, which a row replicator cannot express. Reported,
            // never mistaken for DDL.
            "XA" => {
                self.in_trx = !sql.to_ascii_uppercase().contains("XA END");
                Some(EventKind::Unreplicable {
                    reason: format!(
                        "XA transaction statement `{}` (XA is not supported)",
                        sql.trim()
                    ),
                })
            }
            // DML a statement-format session logged (SELECT/DO: calling a
            // function that writes; WITH: MySQL 8's CTE before UPDATE or
            // DELETE), in a transaction or alone.
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" | "WITH" | "SELECT" | "DO"
            | "CALL" => Some(self.statement(schema, sql, sql_mode)),
            _ => {
                // DDL/DCL: its own transaction, implicitly committed.
                let gtid = self.pending.as_ref().map(ToString::to_string);
                self.in_trx = false;
                self.standalone = false;
                self.advance_gtid();
                Some(EventKind::Ddl { gtid, schema, sql })
            }
        }
    }

    fn commit(&mut self, xid: Option<u64>) -> EventKind {
        self.in_trx = false;
        self.standalone = false;
        self.advance_gtid();
        EventKind::Commit { xid }
    }

    fn advance_gtid(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        match (pending, &mut self.gtid_set) {
            (PendingGtid::Mysql { uuid, tag, gno }, Some(GtidSet::Mysql(set))) => {
                let _ = set.add(uuid, tag, gno);
            }
            (PendingGtid::Mysql { uuid, tag, gno }, slot @ None) => {
                let mut set = MysqlGtidSet::new();
                let _ = set.add(uuid, tag, gno);
                *slot = Some(GtidSet::Mysql(set));
            }
            (PendingGtid::Mariadb(g), Some(GtidSet::Mariadb(set))) => set.advance(g),
            (PendingGtid::Mariadb(g), slot @ None) => {
                let mut set = MariadbGtidSet::new();
                set.advance(g);
                *slot = Some(GtidSet::Mariadb(set));
            }
            // A flavour switch inside one stream cannot happen; keep the set.
            _ => {}
        }
    }

    /// Rotation to a new file (real ROTATE, or a new file opened offline).
    pub fn set_file(&mut self, file: &str) {
        self.file = Arc::from(file);
    }

    fn rows(&self, ty: u8, data: &[u8], offset: u64) -> Result<RowsEvent, BinlogError> {
        let short = |e: crate::cursor::Short| self.corrupt(offset, format!("rows event: {e}"));
        let mut c = Cursor::new(data);
        let table_id = c.uint_n(self.table_id_len, "table id").map_err(short)?;
        let _flags = c.u16("flags").map_err(short)?;
        let v2 = matches!(
            ty,
            code::WRITE_ROWS_V2..=code::DELETE_ROWS_V2
                | code::PARTIAL_UPDATE_ROWS
                | code::MARIA_WRITE_ROWS_COMPRESSED..=code::MARIA_DELETE_ROWS_COMPRESSED
        );
        if v2 {
            let extra = c.u16("extra data length").map_err(short)? as usize;
            c.take(extra.saturating_sub(2), "extra data")
                .map_err(short)?;
        }
        let ncols = c.packed("column count").map_err(short)? as usize;
        let bitmap_len = ncols.div_ceil(8);
        let columns = c
            .take(bitmap_len, "columns bitmap")
            .map_err(short)?
            .to_vec();
        let kind = match ty {
            code::WRITE_ROWS_V1 | code::WRITE_ROWS_V2 => RowsKind::Write,
            code::MARIA_WRITE_ROWS_COMPRESSED_V1 | code::MARIA_WRITE_ROWS_COMPRESSED => {
                RowsKind::Write
            }
            code::UPDATE_ROWS_V1 | code::UPDATE_ROWS_V2 => RowsKind::Update,
            code::MARIA_UPDATE_ROWS_COMPRESSED_V1 | code::MARIA_UPDATE_ROWS_COMPRESSED => {
                RowsKind::Update
            }
            code::PARTIAL_UPDATE_ROWS => RowsKind::PartialUpdate,
            _ => RowsKind::Delete,
        };
        let columns_after = if matches!(kind, RowsKind::Update | RowsKind::PartialUpdate) {
            c.take(bitmap_len, "after-image bitmap")
                .map_err(short)?
                .to_vec()
        } else {
            Vec::new()
        };
        let table =
            self.tables
                .get(&table_id)
                .cloned()
                .ok_or_else(|| BinlogError::UnknownTable {
                    at: self.at(offset),
                    table_id,
                })?;
        if table.columns.len() != ncols {
            return Err(self.corrupt(
                offset,
                format!(
                    "rows event for {} has {ncols} columns but its table map has {}",
                    table.qualified_name(),
                    table.columns.len()
                ),
            ));
        }
        let compressed = ty >= code::MARIA_WRITE_ROWS_COMPRESSED_V1;
        let data = if compressed {
            mariadb_uncompress(c.rest())
                .map_err(|e| self.corrupt(offset, format!("compressed rows event: {e}")))?
        } else {
            c.rest().to_vec()
        };
        Ok(RowsEvent {
            table,
            kind,
            columns,
            columns_after,
            data,
        })
    }
}

/// The session's `sql_mode` from a QUERY event's status variables.
fn sql_mode(vars: &StatusVars<'_>) -> Option<u64> {
    let var = vars.get_status_var(mysql_common::binlog::consts::StatusVarKey::SqlMode)?;
    match var.get_value() {
        Ok(StatusVarVal::SqlMode(mode)) => Some(mode.0),
        _ => None,
    }
}

/// The first word of a statement, upper-cased, skipping leading comments.
fn first_word(sql: &str) -> String {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("/*") {
            match rest.find("*/") {
                Some(end) => s = rest[end + 2..].trim_start(),
                None => return String::new(),
            }
        } else if s.starts_with("--") || s.starts_with('#') {
            match s.find('\n') {
                Some(end) => s = s[end + 1..].trim_start(),
                None => return String::new(),
            }
        } else {
            break;
        }
    }
    s.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The fake ROTATE that opens a replica stream is sent with a checksum even
/// though no FDE has said so yet; if the last 4 bytes are a valid CRC32 of
/// the event, they are not part of the file name.
fn strip_fake_rotate_checksum<'a>(ev: &RawEvent, name: &'a [u8]) -> &'a [u8] {
    let data = ev.data();
    if name.len() <= 4 || data.len() < 4 || !data.ends_with(&name[name.len() - 4..]) {
        return name;
    }
    let mut header = Vec::with_capacity(19);
    let h = ev.header();
    header.extend_from_slice(&h.timestamp().to_le_bytes());
    header.push(h.event_type_raw());
    header.extend_from_slice(&h.server_id().to_le_bytes());
    header.extend_from_slice(&h.event_size().to_le_bytes());
    header.extend_from_slice(&h.log_pos().to_le_bytes());
    header.extend_from_slice(&h.flags_raw().to_le_bytes());
    let split = data.len() - 4;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    hasher.update(&data[..split]);
    let stored = u32::from_le_bytes([
        data[split],
        data[split + 1],
        data[split + 2],
        data[split + 3],
    ]);
    if hasher.finalize() == stored {
        &name[..name.len() - 4]
    } else {
        name
    }
}

/// MariaDB's compressed event payload: a header byte `0x80 | n`, the
/// uncompressed length in `n` big-endian bytes, then a zlib stream.
pub fn mariadb_uncompress(src: &[u8]) -> Result<Vec<u8>, String> {
    let (&head, rest) = src.split_first().ok_or("empty compressed payload")?;
    let lenlen = usize::from(head & 0x07);
    if head & 0x80 == 0 || lenlen == 0 || lenlen > 4 || rest.len() < lenlen {
        return Err(format!("bad compression header {head:#04x}"));
    }
    let len = rest[..lenlen]
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if len > MAX_DECOMPRESSED {
        return Err(format!("declared uncompressed length {len} is too large"));
    }
    let mut out = Vec::with_capacity(len);
    flate2::read::ZlibDecoder::new(&rest[lenlen..])
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "uncompressed {} bytes, header says {len}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_events_are_classified() {
        let mut d = EventDecoder::new("f");
        let kind = |d: &mut EventDecoder, sql: &str| d.on_query("db".into(), sql.into(), Some(0));
        assert!(matches!(
            kind(&mut d, "BEGIN"),
            Some(EventKind::Begin { .. })
        ));
        assert!(d.in_transaction());
        assert!(matches!(
            kind(&mut d, "INSERT INTO t VALUES (1)"),
            Some(EventKind::Statement { .. })
        ));
        assert!(kind(&mut d, "SAVEPOINT a").is_none());
        assert!(kind(&mut d, "ROLLBACK TO a").is_none());
        assert!(d.in_transaction());
        assert!(matches!(
            kind(&mut d, "ROLLBACK"),
            Some(EventKind::Commit { .. })
        ));
        assert!(!d.in_transaction());
        assert!(matches!(
            kind(&mut d, "/* c */ ALTER TABLE t ADD x INT"),
            Some(EventKind::Ddl { .. })
        ));
        assert!(matches!(
            kind(&mut d, "XA START X'01'"),
            Some(EventKind::Unreplicable { .. })
        ));
        assert!(matches!(
            kind(&mut d, "COMMIT"),
            Some(EventKind::Commit { .. })
        ));
    }

    #[test]
    fn first_words() {
        assert_eq!(first_word("  begin"), "BEGIN");
        assert_eq!(first_word("/* c */ CREATE TABLE t"), "CREATE");
        assert_eq!(first_word("-- x\ninsert into t"), "INSERT");
        assert_eq!(first_word("/* unterminated"), "");
    }

    #[test]
    fn mariadb_compression_round_trip() {
        use std::io::Write;
        let payload = b"hello hello hello hello".to_vec();
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&payload).expect("compress");
        let z = enc.finish().expect("finish");
        let mut framed = vec![0x81, payload.len() as u8];
        framed.extend(z);
        assert_eq!(mariadb_uncompress(&framed).expect("inflates"), payload);
        assert!(mariadb_uncompress(&[0x81]).is_err());
        assert!(mariadb_uncompress(&[0x01, 3, 1, 2, 3]).is_err());
        framed[1] = 200; // wrong declared length
        assert!(mariadb_uncompress(&framed).is_err());
    }
}
