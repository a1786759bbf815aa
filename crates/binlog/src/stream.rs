//! The fake replica: a live binlog stream from a MySQL or MariaDB source.
//!
//! Connecting runs the preflight checks, registers with the source under a
//! unique `server_id` (COM_REGISTER_SLAVE), negotiates checksums and a
//! heartbeat, and requests the dump from a file+offset, from a GTID set
//! (MariaDB: `@mariadb_slave_capability=4` + `@slave_connect_state` in strict
//! mode; MySQL: COM_BINLOG_DUMP_GTID) or from the source's current end.
//! Events then go through the same [`EventDecoder`] as offline files, so CRC32
//! is verified on every event and positions advance only at transaction ends.

use std::time::Duration;

use futures_util::StreamExt as _;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use mysql_common::binlog::events::RotateEvent;
use sluice_core::{GtidSet, Position, TlsConfig};

use crate::dialect::{Dialect, Flavor};
use crate::error::BinlogError;
use crate::events::{Event, EventDecoder, EventKind};
use crate::preflight;

/// Where a replica stream starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    /// The source's current end (`SHOW MASTER STATUS` or its successor).
    Latest,
    /// A binlog file and the offset of the next event to read.
    File { file: String, pos: u64 },
    /// After every transaction in this GTID set.
    Gtid(GtidSet),
}

/// How to connect as a replica.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// `mysql://user:password@host:port` (never printed: `Debug` masks it).
    pub url: String,
    /// TLS towards the source (`source.tls`); default disabled.
    pub tls: TlsConfig,
    /// This replica's server_id: unique among the source's replicas.
    pub server_id: u32,
    pub start: StartAt,
    /// Heartbeat period the source sends when idle; a silent stream for
    /// three periods is treated as a lost connection.
    pub heartbeat: Duration,
    pub connect_timeout: Duration,
}

impl ReplicaConfig {
    pub fn new(url: impl Into<String>, server_id: u32, start: StartAt) -> Self {
        Self {
            url: url.into(),
            tls: TlsConfig::disabled(),
            server_id,
            start,
            heartbeat: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("url", &sluice_core::redact_url(&self.url))
            .field("tls", &self.tls)
            .field("server_id", &self.server_id)
            .field("start", &self.start)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A live, decoded binlog stream.
pub struct ReplicaStream {
    stream: BinlogStream,
    decoder: StreamDecoder,
    dialect: Dialect,
    heartbeat: Duration,
    start: Position,
}

/// Positions for events as a source sends them during a dump, where each
/// real event's header carries its end offset and artificial events (the
/// fake ROTATE, an FDE resent for a mid-file start, heartbeats) and the
/// inner events of a compressed payload do not advance it.
///
/// Every ROTATE, real or fake, says where the stream continues. A real one
/// ends a file. The fake one is what a source sends before each file it
/// opens: at the start of every dump, and after a file that ended without
/// a ROTATE — a STOP event (graceful shutdown) or nothing at all (a crash).
/// It names the file and the offset of that file's next event, and both
/// are taken from it: keeping the old file's end offset would give every
/// later event a position in the new file that is not its own.
#[derive(Debug)]
pub struct StreamDecoder {
    decoder: EventDecoder,
    /// End offset of the last real event: start of the next one.
    next: u64,
}

impl StreamDecoder {
    pub fn new(decoder: EventDecoder, start_pos: u64) -> Self {
        Self {
            decoder,
            next: start_pos,
        }
    }

    pub fn decoder(&self) -> &EventDecoder {
        &self.decoder
    }

    /// Offset of the next event in the current file.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    pub fn decode(
        &mut self,
        raw: &mysql_common::binlog::events::Event,
    ) -> Result<Option<Event>, BinlogError> {
        let header = raw.header();
        let size = u64::from(header.event_size());
        let log_pos = u64::from(header.log_pos());
        let (offset, next) = if log_pos > self.next && log_pos >= size {
            (log_pos - size, log_pos)
        } else {
            (self.next, self.next)
        };
        self.next = next;
        let event = self.decoder.decode(raw, offset, next)?;
        if let Some(Event {
            kind: EventKind::Rotate { next_file, .. },
            ..
        }) = &event
        {
            self.decoder.set_file(next_file);
        }
        if header.event_type_raw() == crate::events::code::ROTATE {
            // Parsed again here: the decoder read it already (and failed on
            // a malformed one), but only the real ROTATE is an event of its
            // own.
            if let Ok(rotate) = raw.read_event::<RotateEvent<'_>>() {
                self.next = rotate.position().max(4);
            }
        }
        Ok(event)
    }
}

/// Replays a captured dump: one packet per item as the source sent it
/// (`0x00` then one event). The same path as a live stream, for tests and
/// for diagnosing captures.
pub fn replay_capture(
    packets: impl IntoIterator<Item = Vec<u8>>,
) -> impl Iterator<Item = Result<Event, BinlogError>> {
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::TransactionPayloadEvent;
    use mysql_common::binlog::EventStreamReader;

    let mut esr = EventStreamReader::new(BinlogVersion::Version4);
    let mut dec = StreamDecoder::new(EventDecoder::new(""), 4);
    let mut out = Vec::new();
    for (i, packet) in packets.into_iter().enumerate() {
        let corrupt = |reason: String| BinlogError::Corrupt {
            at: crate::error::At {
                file: format!("packet {}", i + 1),
                offset: 0,
            },
            reason,
        };
        let Some((&0, body)) = packet.split_first() else {
            out.push(Err(corrupt("packet does not start with 0x00 (OK)".into())));
            break;
        };
        let raw = match esr.read(body) {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                out.push(Err(corrupt(e.to_string())));
                break;
            }
        };
        let mut inner = Vec::new();
        if raw.header().event_type_raw() == crate::events::code::TRANSACTION_PAYLOAD {
            let mut payload = Vec::new();
            let read = raw
                .read_event::<TransactionPayloadEvent<'_>>()
                .and_then(|tpe| {
                    use std::io::Read as _;
                    tpe.decompressed()?.take(1 << 30).read_to_end(&mut payload)
                });
            if let Err(e) = read {
                out.push(Err(corrupt(format!("transaction payload: {e}"))));
                break;
            }
            let mut cursor = std::io::Cursor::new(payload);
            while let Ok(Some(ev)) = esr.read_decompressed(&mut cursor) {
                inner.push(ev);
            }
        }
        match dec.decode(&raw) {
            Ok(Some(ev)) => out.push(Ok(ev)),
            Ok(None) => {}
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
        for ev in inner {
            match dec.decode(&ev) {
                Ok(Some(ev)) => out.push(Ok(ev)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out.into_iter()
}

impl ReplicaStream {
    /// Preflight, register, dump.
    pub async fn connect(cfg: &ReplicaConfig) -> Result<Self, BinlogError> {
        let mut conn = crate::connect::connect(&cfg.url, &cfg.tls, cfg.connect_timeout).await?;

        let dialect = Dialect::detect(&mut conn).await?;
        let flavor = dialect.flavor();
        preflight::ensure_binlog_enabled(&mut conn).await?;
        preflight::ensure_row_format(&mut conn, &dialect).await?;
        preflight::ensure_full_row_image(&mut conn).await?;
        preflight::check_row_metadata(&mut conn).await?;
        preflight::ensure_replication_privileges(&mut conn, &dialect).await?;
        preflight::ensure_server_id_unused(&mut conn, &dialect, cfg.server_id).await?;

        let (file, pos, gtid) = match &cfg.start {
            StartAt::Latest => {
                let status = dialect.binlog_status();
                let row: Option<mysql_async::Row> = conn
                    .query_first(status)
                    .await
                    .map_err(|e| dialect.refused(status, e))?;
                let row = row.ok_or_else(|| {
                    BinlogError::Preflight(format!("{status} is empty: is log_bin on?"))
                })?;
                let file: String = row.get(0).unwrap_or_default();
                let pos: u64 = row.get(1).unwrap_or(4);
                let gtid = current_gtid(&mut conn, &dialect).await?;
                (file, pos, gtid)
            }
            StartAt::File { file, pos } => {
                preflight::ensure_file_position_available(&mut conn, &dialect, file, *pos).await?;
                let gtid = match flavor {
                    // MariaDB can say which GTID state a file position is at.
                    Flavor::Mariadb => {
                        let g: Option<Option<String>> = conn
                            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), *pos))
                            .await
                            .map_err(|e| BinlogError::source("BINLOG_GTID_POS", e))?;
                        match g.flatten().filter(|s| !s.is_empty()) {
                            Some(s) => Some(s.parse::<GtidSet>().map_err(|e| {
                                BinlogError::Preflight(format!("source GTID position `{s}`: {e}"))
                            })?),
                            None => None,
                        }
                    }
                    Flavor::Mysql => None,
                };
                (file.clone(), *pos, gtid)
            }
            StartAt::Gtid(set) => {
                preflight::ensure_gtid_available(&mut conn, &dialect, set).await?;
                (String::new(), 4, Some(set.clone()))
            }
        };

        let period_ns = cfg.heartbeat.as_nanos().min(u128::from(u32::MAX)) as u64;
        let gtid_start = match (&cfg.start, flavor) {
            (StartAt::Gtid(set), Flavor::Mariadb) => Some(set.to_string()),
            _ => None,
        };
        for sql in dialect.dump_session(period_ns, gtid_start.as_deref()) {
            conn.query_drop(&sql)
                .await
                .map_err(|e| BinlogError::source(sql.clone(), e))?;
        }

        let mut request = BinlogStreamRequest::new(cfg.server_id)
            .with_hostname(b"sluice")
            .with_filename(file.as_bytes())
            .with_pos(pos);
        if let (Flavor::Mysql, StartAt::Gtid(GtidSet::Mysql(set))) = (flavor, &cfg.start) {
            request = request.with_gtid().with_gtid_set(mysql_sids(set));
        }
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| BinlogError::source("requesting the binlog dump", e))?;
        tracing::info!(server_id = cfg.server_id, server = %dialect.version, %file, pos, gtid = %gtid.as_ref().map(ToString::to_string).unwrap_or_default(), "binlog dump started");
        let mut start = Position::new(file.clone(), pos);
        start.gtid = gtid.clone();
        Ok(Self {
            stream,
            decoder: StreamDecoder::new(EventDecoder::new(&file).with_gtid_set(gtid), pos),
            dialect,
            heartbeat: cfg.heartbeat,
            start,
        })
    }

    pub fn flavor(&self) -> Flavor {
        self.dialect.flavor()
    }

    /// The source's flavour and version, and the statements it takes.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// Where the stream started.
    pub fn start_position(&self) -> &Position {
        &self.start
    }

    /// The position after the last completed transaction: safe to resume
    /// from (file + offset of the next event, and the executed GTID set).
    pub fn position_after(&self, event: &Event) -> Position {
        let mut p = Position::new(event.file.to_string(), event.next);
        p.gtid = self.decoder.decoder().gtid_set().cloned();
        p.server_id = Some(event.server_id);
        p.timestamp = Some(event.timestamp);
        p
    }

    /// The next decoded event. `None` when the source closed the stream.
    /// Silence for three heartbeat periods is a (transient) error.
    pub async fn next(&mut self) -> Option<Result<Event, BinlogError>> {
        loop {
            let silence = self.heartbeat * 3 + Duration::from_secs(1);
            let raw = match tokio::time::timeout(silence, self.stream.next()).await {
                Err(_) => {
                    return Some(Err(BinlogError::Io {
                        what: "reading the binlog stream".into(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no event or heartbeat for {silence:?}"),
                        ),
                    }))
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some(Err(BinlogError::source("binlog stream", e))),
                Ok(Some(Ok(raw))) => raw,
            };
            match self.decoder.decode(&raw) {
                Ok(None) => continue,
                Ok(Some(event)) => return Some(Ok(event)),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Closes the dump connection.
    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}

pub(crate) async fn current_gtid(
    conn: &mut Conn,
    dialect: &Dialect,
) -> Result<Option<GtidSet>, BinlogError> {
    let sql = dialect.executed_gtids();
    let text: Option<String> = conn
        .query_first(sql)
        .await
        .map_err(|e| BinlogError::source(sql, e))?;
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|e| BinlogError::Preflight(format!("source GTID state `{t}`: {e}"))),
    }
}

/// A MySQL GTID set in mysql_async's form for COM_BINLOG_DUMP_GTID.
fn mysql_sids(set: &sluice_core::MysqlGtidSet) -> Vec<mysql_async::Sid<'static>> {
    let mut sids: Vec<mysql_async::Sid<'static>> = Vec::new();
    for (uuid, tag, intervals) in set.iter() {
        let ivs: Vec<mysql_async::GnoInterval> = intervals
            .iter()
            // The wire form is half-open [start, end).
            .map(|iv| mysql_async::GnoInterval::new(iv.start(), iv.end() + 1))
            .collect();
        let mut sid = mysql_async::Sid::new(*uuid.as_bytes()).with_intervals(ivs);
        if let Some(tag) = tag {
            if let Ok(t) = mysql_common::packets::Tag::new(tag.as_str().to_string()) {
                sid = sid.with_tag(t);
            }
        }
        sids.push(sid);
    }
    sids
}
