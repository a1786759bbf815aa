//! The stage pipe: how batch data moves between the nodes of distributed
//! stages. etcd carries only control records ([`sluice_coord::tasks`]);
//! the data stays on the node that produced it, in a [`PipeStore`], and
//! the consumer either takes it from memory (same node) or fetches it over
//! HTTP from the producer's pipe server.
//!
//! # Frame
//!
//! ```text
//! "SLP1" | crc32 (LE u32, of everything after it) | raw length (LE u64) | LZ4 block
//! ```
//!
//! The payload is the batch in postcard (serde) form, with each table
//! schema written once and referenced by index from its rows (a batch holds
//! thousands of rows of a few tables), followed by the batch's snapshot
//! [`CopyMark`] when it is (part of) a chunk, so the node that loads it
//! does what the in-process Load does around a chunk. A consumer checks the frame's size
//! against `stages.max_transfer` *before* decompressing, the CRC against
//! the frame and against the task record's, and gives up after
//! `stages.fetch_timeout`: a corrupt, oversized or slow transfer is a
//! transient [`PipeError`], after which the task is re-run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::{ChangeKind, Position, Row, RowChange, TableSchema};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, BatchBody, CopyMark, DdlStatement};

const MAGIC: &[u8; 4] = b"SLP1";
const HEADER: usize = 16;

/// Why batch data could not be moved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipeError {
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    /// The producer no longer holds the batch (restarted, or it moved on).
    #[error("{url}: the node no longer holds this batch")]
    Missing { url: String },
    #[error("batch data from {origin} is corrupt: {reason}")]
    Corrupt { origin: String, reason: String },
    #[error("batch data from {origin} is {size} bytes, more than stages.max_transfer ({limit})")]
    TooLarge {
        origin: String,
        size: u64,
        limit: u64,
    },
    #[error("encoding batch {batch_id}: {message}")]
    Encode { batch_id: u64, message: String },
    #[error("serving the stage pipe on {addr}: {message}")]
    Serve { addr: String, message: String },
}

/// A position as it travels: its serde form omits absent fields, which a
/// schemaless binary format cannot represent, and validates file names,
/// which a batch's start (empty before the first event) may not satisfy.
#[derive(Serialize, Deserialize)]
struct WirePosition {
    file: String,
    offset: u64,
    gtid: Option<String>,
    server_id: Option<u32>,
    timestamp: Option<u32>,
}

impl WirePosition {
    fn of(p: &Position) -> Self {
        WirePosition {
            file: p.file.clone(),
            offset: p.offset,
            gtid: p.gtid.as_ref().map(ToString::to_string),
            server_id: p.server_id,
            timestamp: p.timestamp,
        }
    }

    fn into_position(self) -> Result<Position, String> {
        let gtid = match self.gtid {
            Some(text) => Some(
                text.parse()
                    .map_err(|e| format!("undecodable GTID set {text}: {e}"))?,
            ),
            None => None,
        };
        Ok(Position {
            file: self.file,
            offset: self.offset,
            gtid,
            server_id: self.server_id,
            timestamp: self.timestamp,
        })
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    id: u64,
    start: WirePosition,
    end: WirePosition,
    through: WirePosition,
    timestamp: u32,
    tables: Vec<&'a TableSchema>,
    body: WireBodyOut<'a>,
    copy: Option<&'a CopyMark>,
}

#[derive(Serialize)]
enum WireBodyOut<'a> {
    Rows(Vec<ChangeOut<'a>>),
    Ddl(&'a DdlStatement),
}

#[derive(Serialize)]
struct ChangeOut<'a> {
    table: u32,
    kind: ChangeKind,
    before: &'a Option<Row>,
    after: &'a Option<Row>,
}

#[derive(Deserialize)]
struct WireIn {
    id: u64,
    start: WirePosition,
    end: WirePosition,
    through: WirePosition,
    timestamp: u32,
    tables: Vec<TableSchema>,
    body: WireBodyIn,
    copy: Option<CopyMark>,
}

#[derive(Deserialize)]
enum WireBodyIn {
    Rows(Vec<ChangeIn>),
    Ddl(DdlStatement),
}

#[derive(Deserialize)]
struct ChangeIn {
    table: u32,
    kind: ChangeKind,
    before: Option<Row>,
    after: Option<Row>,
}

impl PipeError {
    /// The data is gone or damaged for good: fetching again cannot help,
    /// the stage that produced it must run again.
    pub fn is_lost(&self) -> bool {
        matches!(
            self,
            PipeError::Missing { .. } | PipeError::Corrupt { .. } | PipeError::TooLarge { .. }
        )
    }
}

/// Encodes `batch` (with its snapshot mark when it is a chunk) into a
/// checksummed, compressed frame.
pub fn encode(batch: &Batch, copy: Option<&CopyMark>) -> Result<Bytes, PipeError> {
    let mut tables: Vec<&TableSchema> = Vec::new();
    // Rows of one table share one Arc: index by pointer.
    let mut index: HashMap<*const TableSchema, u32> = HashMap::new();
    let body = match &batch.body {
        BatchBody::Rows(rows) => WireBodyOut::Rows(
            rows.iter()
                .map(|c| {
                    let ptr = Arc::as_ptr(&c.table);
                    let table = *index.entry(ptr).or_insert_with(|| {
                        tables.push(&c.table);
                        (tables.len() - 1) as u32
                    });
                    ChangeOut {
                        table,
                        kind: c.kind,
                        before: &c.before,
                        after: &c.after,
                    }
                })
                .collect(),
        ),
        BatchBody::Ddl(ddl) => WireBodyOut::Ddl(ddl),
    };
    let wire = WireOut {
        id: batch.id,
        start: WirePosition::of(&batch.start),
        end: WirePosition::of(&batch.end),
        through: WirePosition::of(&batch.through),
        timestamp: batch.timestamp,
        tables,
        body,
        copy,
    };
    let raw = postcard::to_stdvec(&wire).map_err(|e| PipeError::Encode {
        batch_id: batch.id,
        message: e.to_string(),
    })?;
    let compressed = lz4_flex::block::compress(&raw);
    let mut frame = Vec::with_capacity(HEADER + compressed.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    frame.extend_from_slice(&compressed);
    let crc = crc32fast::hash(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(Bytes::from(frame))
}

/// CRC-32 of a frame as recorded in its header (for the task record).
pub fn frame_crc(frame: &[u8]) -> u32 {
    frame
        .get(4..8)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a frame into its batch and snapshot mark, refusing one whose
/// payload exceeds `max_raw` bytes.
pub fn decode(
    frame: &[u8],
    max_raw: u64,
    origin: &str,
) -> Result<(Batch, Option<CopyMark>), PipeError> {
    let corrupt = |reason: String| PipeError::Corrupt {
        origin: origin.to_string(),
        reason,
    };
    if frame.len() < HEADER || &frame[..4] != MAGIC {
        return Err(corrupt("not a stage pipe frame".into()));
    }
    let crc = frame_crc(frame);
    let actual = crc32fast::hash(&frame[8..]);
    if crc != actual {
        return Err(corrupt(format!(
            "checksum mismatch (frame says {crc:08x}, data is {actual:08x})"
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&frame[8..16]);
    let raw_len = u64::from_le_bytes(len);
    if raw_len > max_raw {
        return Err(PipeError::TooLarge {
            origin: origin.to_string(),
            size: raw_len,
            limit: max_raw,
        });
    }
    let raw = lz4_flex::block::decompress(&frame[HEADER..], raw_len as usize)
        .map_err(|e| corrupt(format!("decompression failed: {e}")))?;
    let wire: WireIn =
        postcard::from_bytes(&raw).map_err(|e| corrupt(format!("undecodable batch: {e}")))?;
    let tables: Vec<Arc<TableSchema>> = wire.tables.into_iter().map(Arc::new).collect();
    let body = match wire.body {
        WireBodyIn::Rows(changes) => {
            let mut rows = Vec::with_capacity(changes.len());
            for c in changes {
                let table = tables
                    .get(c.table as usize)
                    .ok_or_else(|| corrupt(format!("row refers to missing table {}", c.table)))?;
                rows.push(RowChange {
                    table: Arc::clone(table),
                    kind: c.kind,
                    before: c.before,
                    after: c.after,
                });
            }
            BatchBody::Rows(rows)
        }
        WireBodyIn::Ddl(ddl) => BatchBody::Ddl(ddl),
    };
    let batch = Batch {
        id: wire.id,
        start: wire.start.into_position().map_err(corrupt)?,
        end: wire.end.into_position().map_err(corrupt)?,
        through: wire.through.into_position().map_err(corrupt)?,
        timestamp: wire.timestamp,
        body,
    };
    Ok((batch, wire.copy))
}

/// Frames this node produced, by path (`/pipe/{term}/{batch}/{stage}`),
/// kept until the batch is acknowledged or its epoch ends.
#[derive(Clone, Default)]
pub struct PipeStore {
    inner: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl PipeStore {
    pub fn path(term: u64, batch_id: u64, stage: &str) -> String {
        format!("/pipe/{term}/{batch_id}/{stage}")
    }

    pub fn put(&self, path: String, frame: Bytes) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(path, frame);
        }
    }

    pub fn get(&self, path: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.get(path).cloned()
    }

    /// Keeps only the frames `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|k, _| keep(k));
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .map_or(0, |m| m.values().map(Bytes::len).sum())
    }
}

/// Parses `/pipe/{term}/{batch}/{stage}`.
pub fn parse_path(path: &str) -> Option<(u64, u64, &str)> {
    let rest = path.strip_prefix("/pipe/")?;
    let mut parts = rest.splitn(3, '/');
    let term = parts.next()?.parse().ok()?;
    let batch = parts.next()?.parse().ok()?;
    let stage = parts.next()?;
    Some((term, batch, stage))
}

/// Serves `store` on `listener` until `shutdown` (an injected listener, so
/// tests and `stages.listen: …:0` can bind first and learn the port).
pub async fn serve(
    listener: TcpListener,
    store: PipeStore,
    shutdown: CancellationToken,
) -> Result<(), PipeError> {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    async fn frame(
        State(store): State<PipeStore>,
        Path((term, batch, stage)): Path<(u64, u64, String)>,
    ) -> axum::response::Response {
        match store.get(&PipeStore::path(term, batch, &stage)) {
            Some(bytes) => (
                StatusCode::OK,
                [("content-type", "application/octet-stream")],
                bytes,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "no such batch on this node").into_response(),
        }
    }
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let app = axum::Router::new()
        .route("/pipe/{term}/{batch}/{stage}", axum::routing::get(frame))
        .with_state(store);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| PipeError::Serve {
            addr,
            message: e.to_string(),
        })
}

/// Binds the pipe's listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, PipeError> {
    TcpListener::bind(addr).await.map_err(|e| PipeError::Serve {
        addr: addr.to_string(),
        message: e.to_string(),
    })
}

/// Fetches frames from other nodes' pipes.
#[derive(Clone)]
pub struct PipeClient {
    http: reqwest::Client,
    max_transfer: u64,
}

impl PipeClient {
    pub fn new(timeout: Duration, max_transfer: u64) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        PipeClient { http, max_transfer }
    }

    /// Largest frame accepted: the payload limit plus LZ4's worst case.
    fn frame_limit(&self) -> u64 {
        self.max_transfer + self.max_transfer / 255 + 16 + HEADER as u64
    }

    /// GETs `url`, stopping as soon as the body passes the size limit, and
    /// checks it against `crc32` from the task record.
    pub async fn fetch(&self, url: &str, crc32: u32) -> Result<Bytes, PipeError> {
        let fetch_err = |message: String| PipeError::Fetch {
            url: url.to_string(),
            message,
        };
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(PipeError::Missing {
                url: url.to_string(),
            });
        }
        if !response.status().is_success() {
            return Err(fetch_err(format!("HTTP {}", response.status())));
        }
        let limit = self.frame_limit();
        if let Some(len) = response.content_length() {
            if len > limit {
                return Err(PipeError::TooLarge {
                    origin: url.to_string(),
                    size: len,
                    limit,
                });
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_err(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(PipeError::TooLarge {
                    origin: url.to_string(),
                    size: body.len() as u64,
                    limit,
                });
            }
        }
        if frame_crc(&body) != crc32 {
            return Err(PipeError::Corrupt {
                origin: url.to_string(),
                reason: format!(
                    "checksum {:08x} differs from the task record's {crc32:08x}",
                    frame_crc(&body)
                ),
            });
        }
        Ok(Bytes::from(body))
    }

    pub fn max_transfer(&self) -> u64 {
        self.max_transfer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Column, Value};

    fn batch() -> Batch {
        let table = Arc::new(TableSchema {
            schema: "shop".into(),
            table: "orders".into(),
            columns: vec![Column {
                name: "id".into(),
                type_code: 3,
                meta: 0,
                nullable: false,
                unsigned: false,
                collation: None,
                labels: None,
            }],
            primary_key: vec![0],
            has_names: true,
        });
        let rows = (0..1000)
            .map(|i| RowChange {
                table: Arc::clone(&table),
                kind: ChangeKind::Insert,
                before: None,
                after: Some(vec![Value::Int(i), Value::Text(format!("row {i}"))]),
            })
            .collect();
        Batch {
            id: 9,
            start: Position::new(String::new(), 4),
            end: Position::new("b.000001".to_string(), 900),
            through: Position::new("b.000001".to_string(), 900),
            timestamp: 77,
            body: BatchBody::Rows(rows),
        }
    }

    #[test]
    fn frames_round_trip_and_share_table_schemas() {
        let b = batch();
        let frame = encode(&b, None).unwrap();
        let (back, copy) = decode(&frame, 1 << 30, "test").unwrap();
        assert!(copy.is_none());
        assert_eq!(back.id, 9);
        assert_eq!(back.end, b.end);
        assert_eq!(back.start, b.start);
        let (BatchBody::Rows(a), BatchBody::Rows(z)) = (&b.body, &back.body) else {
            panic!("rows expected");
        };
        assert_eq!(a, z);
        assert!(Arc::ptr_eq(&z[0].table, &z[999].table));
    }

    #[test]
    fn refuses_corrupt_and_oversized_frames() {
        let frame = encode(&batch(), None).unwrap();
        let mut bad = frame.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let err = decode(&bad, 1 << 30, "node-b").unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let err = decode(&frame, 100, "node-b").unwrap_err();
        assert!(matches!(err, PipeError::TooLarge { .. }), "{err}");
        assert!(decode(b"nope", 100, "x").is_err());
    }

    #[test]
    fn chunk_marks_travel_with_their_batch() {
        let mark = CopyMark {
            table: "db.t".into(),
            target: ("db2".into(), "t".into()),
            last_key: Some("[7]".into()),
            clear: false,
            complete: true,
            rows: 1000,
            chunk_end: true,
            range: Some(crate::snapshot::KeyRange {
                columns: vec!["id".into()],
                after: Some(vec![Value::Int(3)]),
                through: None,
            }),
            restart: true,
        };
        let frame = encode(&batch(), Some(&mark)).unwrap();
        let (back, copy) = decode(&frame, 1 << 30, "test").unwrap();
        assert_eq!(back.rows(), 1000);
        let copy = copy.expect("the mark");
        assert_eq!(copy.table, "db.t");
        assert_eq!(copy.target, ("db2".to_string(), "t".to_string()));
        assert_eq!(copy.last_key.as_deref(), Some("[7]"));
        assert!(copy.complete && copy.chunk_end && copy.restart && !copy.clear);
        let range = copy.range.expect("the range");
        assert_eq!(range.after, Some(vec![Value::Int(3)]));
        assert_eq!(range.through, None);
    }

    #[test]
    fn paths_round_trip() {
        let p = PipeStore::path(12, 34, "transformed");
        assert_eq!(parse_path(&p), Some((12, 34, "transformed")));
        assert_eq!(parse_path("/pipe/x/1/y"), None);
    }
}
