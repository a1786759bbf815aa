//! Operator control records in etcd: the halt, the pause, the chosen source
//! server, the skips in force, operator requests and the audit history
//! (ARCHITECTURE.md invariant 8, "Halt, don't flap").
//!
//! ```text
//! {root}control/halt                 HaltRecord: the definite error the pipeline halted on
//! {root}control/pause                PauseRecord: who paused, and the active node's acknowledgement
//! {root}control/source               SourceChoice: the server of source.urls an operator switched to
//! {root}control/resolution           Resolution: skips in force while the halted range is replayed
//! {root}control/requests/{id}        Request, under the requesting CLI's lease
//! {root}control/history/{ms}-{id}    HistoryRecord: one resolution (skip, replace, retry), kept
//! ```
//!
//! # Who writes what
//!
//! * The **active node** writes `halt`, `resolution`, `source`, history
//!   entries, request outcomes and pause acknowledgements, each in an etcd
//!   transaction guarded by its leader key's create revision
//!   ([`Fence::Leader`]), exactly like positions: a node that lost its term
//!   cannot halt, resume or answer for the pipeline.
//! * **Operators** (the CLI) write `pause` directly (it is state, not a
//!   request: it must hold while no node runs and across failovers) and
//!   submit requests. A request lives under a lease of the CLI that
//!   submitted it: when the CLI gives up or dies, the request vanishes and
//!   can never be acted on later by surprise. The active node answers by
//!   writing the request's outcome (keeping the lease); the CLI reads it and
//!   revokes the lease.
//! * Every write of the active node that acts on a request compares the
//!   request key's mod revision (still pending) and, where it matters, the
//!   halt key's (the same halt), so two acts on one state are impossible.
//!
//! Records that do not parse are never taken for "nothing there": an
//! unreadable halt still halts, an unreadable pause still pauses.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde::{Deserialize, Serialize};
use sluice_core::time::unix_ms;
use sluice_core::{Position, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::CoordError;
use crate::etcd::timed;
use crate::keys::PipelineKeys;
use crate::record::Fence;

/// How long a submitted request lives when nobody answers it.
pub const REQUEST_TTL: Duration = Duration::from_secs(120);

/// One column's value in a row image or a key, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnValue {
    pub column: String,
    pub value: Value,
}

/// The server's own error, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMessage {
    pub code: u16,
    #[serde(default)]
    pub sqlstate: Option<String>,
    pub message: String,
}

/// The batch a pipeline halted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaltedBatch {
    pub id: u64,
    /// Where replication resumes before the batch (the position before it;
    /// `None` for the first batch of a pipeline that had no position).
    pub start: Option<Position>,
    /// Where replication resumes after it.
    pub end: Position,
    /// The position after its last event.
    pub through: Position,
    pub rows: u64,
    /// The DDL statement, when the batch is one.
    #[serde(default)]
    pub ddl: Option<String>,
}

/// What the target refused, as exactly as the loader could name it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeFailure {
    /// The target table (`` `schema`.`table` ``).
    #[serde(default)]
    pub table: Option<String>,
    /// The failing row's key as text (`(id=5)`).
    #[serde(default)]
    pub key: Option<String>,
    /// The failing row's key values, when the server named the row (a
    /// multi-row statement whose error says no `at row N` leaves it
    /// unknown): what `errors skip --scope change` matches.
    #[serde(default)]
    pub key_values: Option<Vec<ColumnValue>>,
    /// The statement (SQL with placeholders, or the DDL).
    #[serde(default)]
    pub statement: Option<String>,
    #[serde(default)]
    pub server: Option<ServerMessage>,
}

/// `control/halt`: the definite error the pipeline halted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaltRecord {
    /// The stage that failed: `load`, `transform`, `select`, `extract`,
    /// `schedule`, `runtime`, or `control` (an unreadable halt record).
    pub stage: String,
    /// The error as one line.
    pub message: String,
    /// Always `definite`: transient errors are retried, never halt.
    pub class: String,
    #[serde(default)]
    pub batch: Option<HaltedBatch>,
    #[serde(default)]
    pub failure: Option<ChangeFailure>,
    /// The node that halted.
    pub node: String,
    /// Its leader revision.
    #[serde(default)]
    pub term: Option<i64>,
    pub halted_at_unix_ms: u64,
    /// The batch was applied by distributed stages (skip and replace need
    /// the in-process Load).
    #[serde(default)]
    pub distributed: bool,
}

impl HaltRecord {
    /// What a halt record that cannot be read stands for: still a halt.
    fn unreadable(error: &serde_json::Error) -> Self {
        HaltRecord {
            stage: "control".into(),
            message: format!(
                "the halt record in etcd does not parse ({error}); `sluice errors retry` clears it"
            ),
            class: "definite".into(),
            batch: None,
            failure: None,
            node: String::new(),
            term: None,
            halted_at_unix_ms: 0,
            distributed: false,
        }
    }
}

/// The active node saw a pause and holds every batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub node: String,
    #[serde(default)]
    pub term: Option<i64>,
    pub at_unix_ms: u64,
}

/// `control/pause`: present while the pipeline is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// `user@host`.
    pub operator: String,
    pub paused_at_unix_ms: u64,
    /// Set by the active node once no batch is being applied any more (and
    /// again by every new active node).
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
}

/// `control/source`: the server of `source.urls` an operator switched to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceChoice {
    /// Index into `source.urls`.
    pub index: usize,
    /// Its `host:port`, which must match the node's own configuration.
    pub address: String,
    pub operator: String,
    pub at_unix_ms: u64,
}

/// How much `errors skip` drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipScope {
    /// The failing change: that row's changes within the halted batch.
    Change,
    /// The whole halted batch.
    Batch,
    /// The source transaction(s) of the halted batch that change the
    /// failing row, including their slices in later batches (slices of a
    /// split transaction applied before the halted batch stay applied).
    Transaction,
}

impl SkipScope {
    pub fn name(self) -> &'static str {
        match self {
            SkipScope::Change => "change",
            SkipScope::Batch => "batch",
            SkipScope::Transaction => "transaction",
        }
    }
}

/// One skip in force while the halted range is replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    /// The request that asked for it.
    pub request: String,
    /// Its history entry (updated with the rows it drops).
    pub history_key: String,
    pub scope: SkipScope,
    /// The halted batch's range: `(from, through]` in source positions.
    pub from: Option<Position>,
    pub through: Position,
    /// The failing row (scopes `change` and `transaction`).
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub key_values: Option<Vec<ColumnValue>>,
    /// The halted batch is a DDL statement (every scope drops just it).
    #[serde(default)]
    pub ddl: bool,
}

/// `control/resolution`: skips in force until Load passes `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub from: Option<Position>,
    pub through: Position,
    pub skips: Vec<Skip>,
}

/// What an operator asks the active node to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestKind {
    Skip {
        scope: SkipScope,
    },
    Replace {
        sql: String,
        /// Where the statements came from, for the history.
        file: String,
    },
    Retry,
    Handover {
        #[serde(default)]
        to: Option<String>,
    },
    SourceSwitch {
        /// `None`: the next entry of `source.urls`.
        #[serde(default)]
        index: Option<usize>,
        #[serde(default)]
        address: Option<String>,
    },
    /// Copy these source tables (`schema.table`) again while streaming
    /// (`sluice snapshot --table`).
    Snapshot {
        tables: Vec<String>,
    },
}

impl RequestKind {
    pub fn name(&self) -> &'static str {
        match self {
            RequestKind::Skip { .. } => "skip",
            RequestKind::Replace { .. } => "replace",
            RequestKind::Retry => "retry",
            RequestKind::Handover { .. } => "handover",
            RequestKind::SourceSwitch { .. } => "source switch",
            RequestKind::Snapshot { .. } => "snapshot",
        }
    }
}

/// How a request ended (or that it is under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeState {
    /// Taken on; the final answer follows (handover, source switch).
    Accepted,
    Done,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub state: OutcomeState,
    /// The node that answered.
    pub node: String,
    pub at_unix_ms: u64,
    /// One line: what happened, or why not.
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// `control/requests/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub kind: RequestKind,
    /// `user@host`.
    pub operator: String,
    pub requested_at_unix_ms: u64,
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// A request as read from etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRequest {
    pub id: String,
    pub key: String,
    pub mod_revision: i64,
    pub lease: i64,
    pub request: Request,
}

impl StoredRequest {
    pub fn is_pending(&self) -> bool {
        self.request.outcome.is_none()
    }
}

/// A change an operator's resolution dropped, with its row images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedChange {
    /// The replayed batch it was in: `(batch_start, batch_through]`.
    #[serde(default)]
    pub batch_start: Option<Position>,
    pub batch_through: Position,
    /// Its index in that batch.
    pub index: usize,
    /// `insert`, `update`, `delete` or `ddl`.
    pub kind: String,
    pub table: String,
    #[serde(default)]
    pub before: Option<Vec<ColumnValue>>,
    #[serde(default)]
    pub after: Option<Vec<ColumnValue>>,
    #[serde(default)]
    pub ddl: Option<String>,
}

/// Whether a resolution has passed the halted range yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryState {
    /// Accepted; the replay has not passed the halted range yet.
    InProgress,
    Done,
}

/// `control/history/{ms}-{id}`: one resolution, kept for the audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub request: String,
    /// `skip`, `replace` or `retry`.
    pub action: String,
    #[serde(default)]
    pub scope: Option<SkipScope>,
    pub operator: String,
    pub requested_at_unix_ms: u64,
    /// The active node that acted.
    pub node: String,
    pub accepted_at_unix_ms: u64,
    pub state: HistoryState,
    #[serde(default)]
    pub completed_at_unix_ms: Option<u64>,
    /// The halt it resolved.
    pub error: HaltRecord,
    /// `replace`: the statements run instead of the failing change.
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub sql_file: Option<String>,
    /// The changes dropped (skipped, or replaced by `sql`), with their row
    /// images, as the replay met them.
    #[serde(default)]
    pub skipped: Vec<SkippedChange>,
    /// More changes were dropped than the entry has room for (etcd values
    /// are bounded); the log names every one.
    #[serde(default)]
    pub truncated: bool,
}

/// A record with the mod revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// Every control record of a pipeline at one etcd revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlState {
    pub revision: i64,
    pub halt: Option<Versioned<HaltRecord>>,
    pub pause: Option<Versioned<PauseRecord>>,
    pub source: Option<Versioned<SourceChoice>>,
    pub resolution: Option<Versioned<Resolution>>,
    /// Requests, oldest first.
    pub requests: Vec<StoredRequest>,
}

/// A condition a control write depends on.
#[derive(Debug, Clone)]
pub enum ControlCheck {
    /// The halt record is the one read at this mod revision.
    Halt(i64),
    /// No halt record.
    NoHalt,
    /// The pause record is the one read at this mod revision.
    Pause(i64),
    /// The request is still as read (pending, not withdrawn).
    Request { key: String, mod_revision: i64 },
    /// The resolution record is the one read at this mod revision (0:
    /// there is none).
    Resolution(i64),
}

/// One write of a control transaction.
#[derive(Debug, Clone)]
pub enum ControlWrite {
    PutHalt(Box<HaltRecord>),
    DeleteHalt,
    PutResolution(Resolution),
    DeleteResolution,
    PutSource(SourceChoice),
    PutHistory {
        key: String,
        record: Box<HistoryRecord>,
    },
    /// A request's outcome, under the request's own lease.
    Answer {
        key: String,
        lease: i64,
        request: Request,
    },
    PutPause(PauseRecord),
}

/// The control records of one pipeline.
#[derive(Clone)]
pub struct ControlStore {
    client: Arc<Client>,
    keys: PipelineKeys,
    request_timeout: Duration,
}

impl std::fmt::Debug for ControlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl ControlStore {
    pub fn new(client: Client, keys: PipelineKeys, request_timeout: Duration) -> Self {
        ControlStore {
            client: Arc::new(client),
            keys,
            request_timeout,
        }
    }

    pub fn keys(&self) -> &PipelineKeys {
        &self.keys
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, CoordError> {
        timed(op, key, self.request_timeout, request).await
    }

    /// Every control record (history aside), at one revision.
    pub async fn read(&self) -> Result<ControlState, CoordError> {
        let k = &self.keys;
        let read = Txn::new().and_then(vec![
            TxnOp::get(k.halt(), None),
            TxnOp::get(k.pause(), None),
            TxnOp::get(k.source_choice(), None),
            TxnOp::get(k.resolution(), None),
            TxnOp::get(k.requests_prefix(), Some(GetOptions::new().with_prefix())),
        ]);
        let prefix = k.control_prefix();
        let mut kv = self.client.kv_client();
        let response = self.call("txn", &prefix, kv.txn(read)).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut gets = response.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().to_vec(),
            _ => Vec::new(),
        });
        let mut next = || gets.next().unwrap_or_default();
        let (halt, pause, source, resolution, requests) = (next(), next(), next(), next(), next());
        let halt = halt.first().map(|kv| Versioned {
            value: serde_json::from_slice(kv.value())
                .unwrap_or_else(|e| HaltRecord::unreadable(&e)),
            mod_revision: kv.mod_revision(),
        });
        let pause = pause.first().map(|kv| Versioned {
            value: serde_json::from_slice(kv.value()).unwrap_or_else(|error| {
                tracing::warn!(%error, "the pause record does not parse; the pipeline stays paused");
                PauseRecord {
                    operator: "unknown (unreadable pause record)".into(),
                    paused_at_unix_ms: 0,
                    acknowledged: None,
                }
            }),
            mod_revision: kv.mod_revision(),
        });
        let source = source
            .first()
            .and_then(|kv| match serde_json::from_slice(kv.value()) {
                Ok(value) => Some(Versioned {
                    value,
                    mod_revision: kv.mod_revision(),
                }),
                Err(error) => {
                    tracing::warn!(%error, "the source choice record does not parse; ignoring it");
                    None
                }
            });
        let resolution = resolution.first().and_then(|kv| {
            match serde_json::from_slice(kv.value()) {
                Ok(value) => Some(Versioned {
                    value,
                    mod_revision: kv.mod_revision(),
                }),
                // Ignoring skips is safe: the replay halts on the same
                // error again.
                Err(error) => {
                    tracing::error!(%error, "the resolution record does not parse; its skips are not applied");
                    None
                }
            }
        });
        let requests = requests
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let id = k.request_id_of(&key)?.to_string();
                match serde_json::from_slice::<Request>(kv.value()) {
                    Ok(request) => Some(StoredRequest {
                        id,
                        key,
                        mod_revision: kv.mod_revision(),
                        lease: kv.lease(),
                        request,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, key, "ignoring a request that does not parse");
                        None
                    }
                }
            })
            .collect();
        Ok(ControlState {
            revision,
            halt,
            pause,
            source,
            resolution,
            requests,
        })
    }

    /// One request by id.
    pub async fn request(&self, id: &str) -> Result<Option<StoredRequest>, CoordError> {
        let key = self.keys.request(id)?;
        let mut kv = self.client.kv_client();
        let got = self.call("get", &key, kv.get(key.as_str(), None)).await?;
        Ok(got.kvs().first().and_then(|kv| {
            serde_json::from_slice(kv.value())
                .ok()
                .map(|request| StoredRequest {
                    id: id.to_string(),
                    key: key.clone(),
                    mod_revision: kv.mod_revision(),
                    lease: kv.lease(),
                    request,
                })
        }))
    }

    /// The history, oldest first (entries that do not parse are skipped
    /// with a warning).
    pub async fn history(&self) -> Result<Vec<(String, HistoryRecord)>, CoordError> {
        let prefix = self.keys.control_history_prefix();
        let mut kv = self.client.kv_client();
        let got = self
            .call(
                "get",
                &prefix,
                kv.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        Ok(got
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                match serde_json::from_slice(kv.value()) {
                    Ok(record) => Some((key, record)),
                    Err(error) => {
                        tracing::warn!(%error, key, "skipping a history entry that does not parse");
                        None
                    }
                }
            })
            .collect())
    }

    /// Submits `request` under a new lease of [`REQUEST_TTL`]; returns its
    /// id and the lease (revoke it with [`Self::withdraw`]).
    pub async fn submit(&self, request: &Request) -> Result<(String, i64), CoordError> {
        let host: String = sluice_core::time::host_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let id = format!("{:020}-{host}-{}", unix_ms(), std::process::id());
        let key = self.keys.request(&id)?;
        let mut lease = self.client.lease_client();
        let ttl = REQUEST_TTL.as_secs() as i64;
        let lease_id = self
            .call("lease grant", &key, lease.grant(ttl, None))
            .await?
            .id();
        let mut kv = self.client.kv_client();
        self.call(
            "put",
            &key,
            kv.put(
                key.as_str(),
                to_json(request),
                Some(PutOptions::new().with_lease(lease_id)),
            ),
        )
        .await?;
        Ok((id, lease_id))
    }

    /// Revokes a request's lease, which deletes it (best effort).
    pub async fn withdraw(&self, lease: i64) {
        let mut client = self.client.lease_client();
        let _ = tokio::time::timeout(self.request_timeout, client.revoke(lease)).await;
    }

    /// Records a pause unless one is recorded; `false` when already paused.
    pub async fn pause(&self, record: &PauseRecord) -> Result<bool, CoordError> {
        let key = self.keys.pause();
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(key.as_str(), to_json(record), None)]);
        let mut kv = self.client.kv_client();
        Ok(self.call("txn", &key, kv.txn(txn)).await?.succeeded())
    }

    /// Deletes the pause; `false` when the pipeline was not paused.
    pub async fn unpause(&self) -> Result<bool, CoordError> {
        let key = self.keys.pause();
        let mut kv = self.client.kv_client();
        let deleted = self
            .call("delete", &key, kv.delete(key.as_str(), None))
            .await?;
        Ok(deleted.deleted() > 0)
    }

    /// One transaction of the active node: `writes` when every check holds
    /// and the leader key still has `fence`'s create revision. `Ok(false)`
    /// when a check failed (the state changed meanwhile); the definite
    /// [`CoordError::FencedOut`] when the fence did.
    pub async fn write(
        &self,
        fence: &Fence,
        checks: &[ControlCheck],
        writes: Vec<ControlWrite>,
    ) -> Result<bool, CoordError> {
        let k = &self.keys;
        let leader_key = k.leader();
        let mut compares: Vec<Compare> = fence.leader_compare(&leader_key)?.into_iter().collect();
        for check in checks {
            compares.push(match check {
                ControlCheck::Halt(rev) => Compare::mod_revision(k.halt(), CompareOp::Equal, *rev),
                ControlCheck::NoHalt => Compare::create_revision(k.halt(), CompareOp::Equal, 0),
                ControlCheck::Pause(rev) => {
                    Compare::mod_revision(k.pause(), CompareOp::Equal, *rev)
                }
                ControlCheck::Request { key, mod_revision } => {
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, *mod_revision)
                }
                ControlCheck::Resolution(rev) => {
                    Compare::mod_revision(k.resolution(), CompareOp::Equal, *rev)
                }
            });
        }
        let ops: Vec<TxnOp> = writes
            .into_iter()
            .map(|w| match w {
                ControlWrite::PutHalt(r) => TxnOp::put(k.halt(), to_json(&r), None),
                ControlWrite::DeleteHalt => TxnOp::delete(k.halt(), None),
                ControlWrite::PutResolution(r) => TxnOp::put(k.resolution(), to_json(&r), None),
                ControlWrite::DeleteResolution => TxnOp::delete(k.resolution(), None),
                ControlWrite::PutSource(r) => TxnOp::put(k.source_choice(), to_json(&r), None),
                ControlWrite::PutHistory { key, record } => TxnOp::put(key, to_json(&record), None),
                ControlWrite::Answer {
                    key,
                    lease,
                    request,
                } => TxnOp::put(
                    key,
                    to_json(&request),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                ControlWrite::PutPause(r) => TxnOp::put(k.pause(), to_json(&r), None),
            })
            .collect();
        let prefix = k.control_prefix();
        let mut kv = self.client.kv_client();
        let txn = Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(vec![TxnOp::get(leader_key.as_str(), None)]);
        let response = self.call("txn", &prefix, kv.txn(txn)).await?;
        if response.succeeded() {
            return Ok(true);
        }
        let Some(required) = fence.leader_revision() else {
            return Ok(false);
        };
        let actual = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        });
        if actual != Some(required) {
            return Err(CoordError::FencedOut {
                location: format!("etcd key {prefix}"),
                key: leader_key,
                expected: required,
                actual,
            });
        }
        Ok(false)
    }

    /// Notifies `notify` on every change under the control prefix until
    /// `stop` (re-watching after errors).
    pub fn spawn_watcher(&self, notify: Arc<Notify>, stop: CancellationToken) -> JoinHandle<()> {
        let client = Arc::clone(&self.client);
        let prefix = self.keys.control_prefix();
        tokio::spawn(async move {
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let mut watch = client.watch_client();
                let opened = tokio::select! {
                    () = stop.cancelled() => return,
                    r = watch.watch(prefix.as_str(), Some(WatchOptions::new().with_prefix())) => r,
                };
                let Ok(mut stream) = opened else {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                };
                // A (re)opened watch may have missed changes.
                notify.notify_waiters();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        m = stream.message() => m,
                    };
                    match message {
                        Ok(Some(_)) => notify.notify_waiters(),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
