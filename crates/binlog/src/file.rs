//! Offline binlog files: the same decoder as the replica stream, fed from
//! disk with exact byte offsets, so that every error names `FILE: offset N`.
//!
//! Events before a damaged one are returned normally; the damaged one yields
//! one error and iteration ends. Memory is bounded by the largest event (and,
//! for a MySQL compressed transaction payload, by its uncompressed size).
//!
//! # Starting at an offset
//!
//! Any event's offset is a valid start — also a rows event in the middle of a
//! transaction, whose table map came before it (every `pos` that `sluice
//! binlog decode` prints is one). The decision: instead of seeking there
//! blind (and meeting rows of an unknown table, as `mariadb-binlog
//! --start-position` does), every event before the start goes through the
//! decoder for its state — table maps, GTIDs, transaction boundaries — and is
//! not returned; rows events, which carry no such state, are read past
//! without decoding. An offset that is not an event boundary is refused,
//! naming the events around it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::{Event as RawEvent, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;

use crate::error::{At, BinlogError};
use crate::events::{code, Event, EventDecoder, EventKind};

const MAGIC: &[u8; 4] = b"\xfebin";
const HEADER_LEN: usize = 19;
/// The server's own limit for one event (max_allowed_packet ceiling).
const MAX_EVENT: usize = 1 << 30;

/// An iterator over the events of one binlog file.
pub struct BinlogFile {
    name: String,
    reader: BufReader<File>,
    offset: u64,
    esr: EventStreamReader,
    decoder: EventDecoder,
    /// Inner events of a compressed transaction payload, and the payload
    /// event's own offsets.
    payload: Option<(std::io::Cursor<Vec<u8>>, u64, u64)>,
    /// The current event's bytes, reused from event to event.
    buf: Vec<u8>,
    done: bool,
    /// Started inside a transaction: its `Begin` (not returned).
    begun: Option<Event>,
}

impl BinlogFile {
    /// Opens `path`, checks the magic and reads the format description
    /// event; with `start`, then skips to that offset (which must be an event
    /// boundary, as `mariadb-binlog --start-position`).
    pub fn open(path: &Path, start: Option<u64>) -> Result<Self, BinlogError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let display = path.display().to_string();
        let file = File::open(path).map_err(|source| BinlogError::Io {
            what: format!("opening {display}"),
            source,
        })?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 4];
        let n = read_full(&mut reader, &mut magic).map_err(|source| BinlogError::Io {
            what: format!("reading {display}"),
            source,
        })?;
        if n < 4 || &magic != MAGIC {
            return Err(BinlogError::Corrupt {
                at: At {
                    file: display,
                    offset: 0,
                },
                reason: "not a binlog file (bad magic number)".into(),
            });
        }
        let mut decoder = EventDecoder::new(&name);
        decoder.set_offline(true);
        let mut this = Self {
            name: display,
            reader,
            offset: 4,
            esr: EventStreamReader::new(BinlogVersion::Version4),
            decoder,
            payload: None,
            buf: Vec::new(),
            done: false,
            begun: None,
        };
        if let Some(start) = start.filter(|&s| s > 4) {
            // The FDE decides checksums and header lengths: read it first.
            if let Some((ev, offset, next)) = this.next_raw()? {
                this.decoder.decode(&ev, offset, next)?;
            }
            if start < this.offset {
                return Err(
                    this.corrupt(start, "start offset is inside the format description event")
                );
            }
            this.skip_to(start)?;
        }
        Ok(this)
    }

    /// Feeds the decoder every event before `start` (see the module docs);
    /// afterwards the next event returned is the one at `start`.
    fn skip_to(&mut self, start: u64) -> Result<(), BinlogError> {
        // Inner events of a compressed payload read before `start` belong
        // to it too, though `self.offset` is already past it.
        while self.offset < start || self.payload.is_some() {
            let Some((ev, offset, next)) = self.next_raw()? else {
                return Err(self.corrupt(
                    start,
                    format!(
                        "start offset is past the end of the file (it ends at {})",
                        self.offset
                    ),
                ));
            };
            if offset < start && start < next {
                return Err(self.corrupt(
                    start,
                    format!(
                        "start offset is not an event boundary: it is inside the event at {offset} (the next one starts at {next}); give an event's `pos`"
                    ),
                ));
            }
            if is_rows(ev.header().event_type_raw()) {
                continue;
            }
            match self.decoder.decode(&ev, offset, next)? {
                Some(event) if matches!(event.kind, EventKind::Begin { .. }) => {
                    self.begun = Some(event);
                }
                Some(event)
                    if matches!(event.kind, EventKind::Commit { .. } | EventKind::Ddl { .. }) =>
                {
                    self.begun = None;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// When the start offset fell inside a transaction: that transaction's
    /// `Begin` event (before the start, so not returned), for a reader that
    /// needs its GTID.
    pub fn begun(&self) -> Option<&Event> {
        self.begun.as_ref()
    }

    pub fn decoder(&self) -> &EventDecoder {
        &self.decoder
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> BinlogError {
        BinlogError::Corrupt {
            at: At {
                file: self.name.clone(),
                offset,
            },
            reason: reason.into(),
        }
    }

    /// Reads the next framed event with its start and end offsets.
    fn next_raw(&mut self) -> Result<Option<(RawEvent, u64, u64)>, BinlogError> {
        if let Some((cursor, offset, next)) = &mut self.payload {
            let (offset, next) = (*offset, *next);
            match self.esr.read_decompressed(&mut *cursor) {
                Ok(Some(ev)) => return Ok(Some((ev, offset, next))),
                Ok(None) => self.payload = None,
                Err(e) => {
                    return Err(self.corrupt(offset, format!("inside compressed transaction: {e}")))
                }
            }
        }
        let offset = self.offset;
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        let got = read_full(&mut self.reader, &mut self.buf).map_err(|source| BinlogError::Io {
            what: format!("reading {}", self.name),
            source,
        })?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(self.corrupt(
                offset,
                format!("truncated event header: {got} of {HEADER_LEN} bytes before end of file"),
            ));
        }
        let size =
            u32::from_le_bytes([self.buf[9], self.buf[10], self.buf[11], self.buf[12]]) as usize;
        if !(HEADER_LEN..=MAX_EVENT).contains(&size) {
            return Err(self.corrupt(offset, format!("implausible event size {size}")));
        }
        self.buf.resize(size, 0);
        let got = read_full(&mut self.reader, &mut self.buf[HEADER_LEN..]).map_err(|source| {
            BinlogError::Io {
                what: format!("reading {}", self.name),
                source,
            }
        })?;
        if got < size - HEADER_LEN {
            return Err(self.corrupt(
                offset,
                format!(
                    "truncated event (type {}): header says {size} bytes, file ends after {}",
                    self.buf[4],
                    HEADER_LEN + got
                ),
            ));
        }
        let next = offset + size as u64;
        self.offset = next;
        let ev = match self.esr.read(&self.buf[..]) {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.corrupt(offset, format!("event type {}: {e}", self.buf[4]))),
        };
        if ev.header().event_type_raw() == code::TRANSACTION_PAYLOAD {
            self.decoder.verify_checksum(&ev, offset)?;
            let tpe: TransactionPayloadEvent<'_> = ev
                .read_event()
                .map_err(|e| self.corrupt(offset, format!("transaction payload: {e}")))?;
            let mut inner = Vec::new();
            tpe.decompressed()
                .and_then(|r| r.take(MAX_EVENT as u64 * 4).read_to_end(&mut inner))
                .map_err(|e| self.corrupt(offset, format!("transaction payload: {e}")))?;
            self.payload = Some((std::io::Cursor::new(inner), offset, next));
        }
        Ok(Some((ev, offset, next)))
    }
}

impl Iterator for BinlogFile {
    type Item = Result<Event, BinlogError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let step = self.next_raw().and_then(|raw| match raw {
                None => Ok(None),
                Some((ev, offset, next)) => self.decoder.decode(&ev, offset, next).map(Some),
            });
            match step {
                Ok(None) => self.done = true,
                Ok(Some(Some(event))) => return Some(Ok(event)),
                Ok(Some(None)) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Rows events (MySQL v0 pre-GA, v1, v2, partial JSON updates; MariaDB
/// compressed): they change no decoder state.
fn is_rows(event_type: u8) -> bool {
    matches!(
        event_type,
        code::PRE_GA_WRITE_ROWS..=code::DELETE_ROWS_V1
            | code::WRITE_ROWS_V2..=code::DELETE_ROWS_V2
            | code::PARTIAL_UPDATE_ROWS
            | code::MARIA_WRITE_ROWS_COMPRESSED_V1..=code::MARIA_DELETE_ROWS_COMPRESSED
    )
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
