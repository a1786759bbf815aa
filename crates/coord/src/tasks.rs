//! The stage task board of distributed stages: one control record per batch
//! in flight, claims under the claimer's lease, and the epoch that fences
//! them (ARCHITECTURE.md, `distributed/` in "Where things live").
//!
//! ```text
//! {root}epoch                    the leader's current epoch; its mod revision is the epoch's term
//! {root}load_next                the next batch id Load may claim (decimal); every batch below it is loaded
//! {root}batches/{id}             TaskRecord: state, where its data lives, replay flag, error
//! {root}claims/{id}/{stage}      ClaimRecord under the claiming node's lease
//! ```
//!
//! etcd carries control records only; batch data stays on the node that
//! produced it and moves over the stage pipe.
//!
//! # Invariants
//!
//! * **One claim wins.** A claim is a create-if-absent transaction that
//!   also compares the task's mod revision, so a node can only claim the
//!   exact state it looked at. Claims live on the claimer's lease: when it
//!   dies they vanish and the task is claimable again.
//! * **Load in order.** A load claim also compares `load_next` with the
//!   batch id, and completing a load advances `load_next` in the same
//!   transaction: at most one batch is being loaded, and only the next one.
//! * **Epochs fence stale work.** The leader starts every run (a new term,
//!   or a rollback) by deleting all task records and claims and writing a
//!   new `epoch` in one transaction guarded by its leader fence. The epoch's
//!   mod revision is the term Load writes under on the target
//!   (`sluice_meta.term`), so a worker still busy with an older epoch's
//!   batch is refused there, and its etcd completion fails the revision
//!   compare.
//! * **Leader writes are fenced** like position writes: every board change
//!   the scheduler makes compares the leader key's create revision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::CoordError;
use crate::etcd::timed;
use crate::keys::PipelineKeys;
use crate::record::Fence;
use sluice_core::time::unix_ms;

/// The stages that run as claimable tasks (Select and Extract run on the
/// leader, which cuts and numbers the batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStage {
    Transform,
    Load,
}

impl TaskStage {
    pub fn name(self) -> &'static str {
        match self {
            TaskStage::Transform => "transform",
            TaskStage::Load => "load",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "transform" => Some(TaskStage::Transform),
            "load" => Some(TaskStage::Load),
            _ => None,
        }
    }
}

/// How far a batch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Cut by the leader; its data is on the leader. Next: transform.
    Extracted,
    /// Transformed; its data is on `transformed.node`. Next: load (in order).
    Transformed,
    /// Committed on the target; the leader acknowledges it next. (A load's
    /// completion removes the record instead of writing this state:
    /// `load_next` passing a batch says it is loaded; the state remains for
    /// records written by older versions.)
    Loaded,
    /// A stage failed definitely (`error`); the leader stops the pipeline.
    Failed,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Extracted => "extracted",
            TaskState::Transformed => "transformed",
            TaskState::Loaded => "loaded",
            TaskState::Failed => "failed",
        }
    }
}

/// Where a stage's output can be fetched, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRef {
    /// The node holding the data (it serves it while its lease lives).
    pub node: String,
    /// `http://host:port/...` of the data on that node's stage pipe.
    pub url: String,
    /// Size of the encoded (compressed) data.
    pub bytes: u64,
    /// CRC-32 of the encoded data.
    pub crc32: u32,
}

/// The control record of one batch in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The epoch's term; a worker loads under it.
    pub term: u64,
    pub batch_id: u64,
    pub state: TaskState,
    /// The leader's copy of the extracted batch (Transform's input). Kept
    /// until the batch is acknowledged, so a lost transform output can be
    /// recomputed without re-reading the binlog.
    pub extracted: DataRef,
    /// Transform's output (Load's input), once transformed.
    #[serde(default)]
    pub transformed: Option<DataRef>,
    pub rows: u64,
    /// Apply with replay tolerance: the target may already hold part of it
    /// (the batch in flight at the last stop, or a load retried after its
    /// loader vanished).
    pub replay: bool,
    /// How many loads were claimed for it (more than one: a retry).
    #[serde(default)]
    pub load_attempts: u32,
    /// Which node loaded it (for logs and `sluice status`).
    #[serde(default)]
    pub loaded_by: Option<String>,
    /// A definite error from a stage, with the node that hit it.
    #[serde(default)]
    pub error: Option<String>,
    pub created_unix_ms: u64,
    pub updated_unix_ms: u64,
}

/// The value of a claim key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub node: String,
    pub since_unix_ms: u64,
}

/// The value of the epoch key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub leader: String,
    pub first_batch: u64,
    pub since_unix_ms: u64,
}

/// A task with the mod revision its record had when read.
#[derive(Debug, Clone)]
pub struct Task {
    pub record: TaskRecord,
    pub mod_revision: i64,
}

/// A claim as read.
#[derive(Debug, Clone)]
pub struct Claim {
    pub record: ClaimRecord,
    pub lease: i64,
}

/// One consistent read of the board (a single etcd revision).
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// The epoch's term (its mod revision) and record.
    pub epoch: Option<(u64, EpochRecord)>,
    pub load_next: Option<u64>,
    pub tasks: BTreeMap<u64, Task>,
    pub claims: HashMap<(u64, TaskStage), Claim>,
    /// Node ids registered (alive) under `nodes/`.
    pub nodes: HashSet<String>,
    pub revision: i64,
}

impl Board {
    pub fn term(&self) -> Option<u64> {
        self.epoch.as_ref().map(|(t, _)| *t)
    }

    /// Takes in the key/value `key` = `value` (as read, or as a watch saw it
    /// put). Keys that are not the board's are ignored; so are values that
    /// do not parse (with a warning for task records).
    pub fn put(
        &mut self,
        keys: &PipelineKeys,
        key: &str,
        value: &[u8],
        mod_revision: i64,
        lease: i64,
    ) {
        if key == keys.epoch() {
            if let Ok(r) = serde_json::from_slice::<EpochRecord>(value) {
                self.epoch = Some((mod_revision.max(0) as u64, r));
            }
        } else if key == keys.load_next() {
            self.load_next = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if key.starts_with(&keys.batches_prefix()) {
            match serde_json::from_slice::<TaskRecord>(value) {
                Ok(record) => {
                    self.tasks.insert(
                        record.batch_id,
                        Task {
                            record,
                            mod_revision,
                        },
                    );
                }
                Err(error) => tracing::warn!(key, %error, "ignoring an unreadable task record"),
            }
        } else if let Some((id, stage)) = keys
            .claim_of(key)
            .and_then(|(id, s)| Some((id, TaskStage::parse(s)?)))
        {
            if let Ok(record) = serde_json::from_slice::<ClaimRecord>(value) {
                self.claims.insert((id, stage), Claim { record, lease });
            }
        } else if let Some(id) = keys.node_id_of(key) {
            self.nodes.insert(id.to_string());
        }
    }

    /// Forgets `key` (a watch saw it deleted).
    pub fn delete(&mut self, keys: &PipelineKeys, key: &str) {
        if key == keys.epoch() {
            self.epoch = None;
        } else if key == keys.load_next() {
            self.load_next = None;
        } else if let Some(digits) = key.strip_prefix(&keys.batches_prefix()) {
            if let Ok(id) = digits.parse::<u64>() {
                self.tasks.remove(&id);
            }
        } else if let Some((id, stage)) = keys
            .claim_of(key)
            .and_then(|(id, s)| Some((id, TaskStage::parse(s)?)))
        {
            self.claims.remove(&(id, stage));
        } else if let Some(id) = keys.node_id_of(key) {
            self.nodes.remove(id);
        }
    }

    /// Whether `key` is one [`Board::put`] takes in.
    pub fn concerns(keys: &PipelineKeys, key: &str) -> bool {
        key == keys.epoch()
            || key == keys.load_next()
            || key.starts_with(&keys.batches_prefix())
            || key.starts_with(&keys.claims_prefix())
            || key.starts_with(&keys.nodes_prefix())
    }
}

/// Reads and writes the task board of one pipeline.
#[derive(Clone)]
pub struct TaskBoard {
    client: Client,
    keys: PipelineKeys,
    timeout: Duration,
}

impl TaskBoard {
    pub fn new(client: Client, keys: PipelineKeys, timeout: Duration) -> Self {
        TaskBoard {
            client,
            keys,
            timeout,
        }
    }

    pub fn keys(&self) -> &PipelineKeys {
        &self.keys
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn fence_compare(fence: &Fence) -> Vec<Compare> {
        match fence {
            Fence::None => Vec::new(),
            Fence::Leader {
                key,
                create_revision,
            } => vec![Compare::create_revision(
                key.as_str(),
                CompareOp::Equal,
                *create_revision,
            )],
        }
    }

    async fn txn(&self, op: &'static str, key: &str, txn: Txn) -> Result<bool, CoordError> {
        let mut kv = self.client.kv_client();
        let response = timed(op, key, self.timeout, kv.txn(txn)).await?;
        Ok(response.succeeded())
    }

    /// Starts an epoch: clears every task and claim, sets `load_next` to
    /// `first_batch` and writes the epoch record, all under the leader
    /// fence. Returns the epoch's term. `FencedOut` when the fence no
    /// longer holds.
    pub async fn begin_epoch(
        &self,
        fence: &Fence,
        leader: &str,
        first_batch: u64,
    ) -> Result<u64, CoordError> {
        let epoch_key = self.keys.epoch();
        let record = EpochRecord {
            leader: leader.to_string(),
            first_batch,
            since_unix_ms: unix_ms(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let txn = Txn::new().when(Self::fence_compare(fence)).and_then(vec![
            TxnOp::delete(
                self.keys.batches_prefix(),
                Some(DeleteOptions::new().with_prefix()),
            ),
            TxnOp::delete(
                self.keys.claims_prefix(),
                Some(DeleteOptions::new().with_prefix()),
            ),
            TxnOp::put(self.keys.load_next(), first_batch.to_string(), None),
            TxnOp::put(epoch_key.as_str(), value, None),
        ]);
        let mut kv = self.client.kv_client();
        let response = timed("begin epoch", &epoch_key, self.timeout, kv.txn(txn)).await?;
        if !response.succeeded() {
            return Err(fenced(fence, &epoch_key));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        u64::try_from(revision).map_err(|_| CoordError::Etcd {
            op: "begin epoch",
            key: epoch_key,
            source: etcd_client::Error::InvalidArgs(format!("negative revision {revision}")),
        })
    }

    /// Publishes a new task (the leader, under its fence).
    pub async fn publish(&self, fence: &Fence, record: &TaskRecord) -> Result<(), CoordError> {
        self.publish_all(fence, std::slice::from_ref(record))
            .await
            .map(|_| ())
    }

    /// Publishes new tasks in one transaction (the leader, under its fence):
    /// a backlog costs one etcd request per group, not per batch. Returns
    /// the revision they were written at (0 for none).
    pub async fn publish_all(
        &self,
        fence: &Fence,
        records: &[TaskRecord],
    ) -> Result<i64, CoordError> {
        let Some(first) = records.first() else {
            return Ok(0);
        };
        let key = self.keys.batch(first.batch_id);
        let ops = records
            .iter()
            .map(|r| {
                TxnOp::put(
                    self.keys.batch(r.batch_id),
                    serde_json::to_vec(r).unwrap_or_default(),
                    None,
                )
            })
            .collect::<Vec<_>>();
        let txn = Txn::new().when(Self::fence_compare(fence)).and_then(ops);
        let mut kv = self.client.kv_client();
        let response = timed("publish tasks", &key, self.timeout, kv.txn(txn)).await?;
        if response.succeeded() {
            Ok(response.header().map_or(0, |h| h.revision()))
        } else {
            Err(fenced(fence, &key))
        }
    }

    /// Replaces a task record the leader read at `mod_revision` (e.g. to
    /// send it back to an earlier state). `Ok(false)` when it changed since.
    pub async fn reset(
        &self,
        fence: &Fence,
        seen: &Task,
        record: &TaskRecord,
    ) -> Result<bool, CoordError> {
        let key = self.keys.batch(record.batch_id);
        let value = serde_json::to_vec(record).unwrap_or_default();
        let mut when = Self::fence_compare(fence);
        when.push(Compare::mod_revision(
            key.as_str(),
            CompareOp::Equal,
            seen.mod_revision,
        ));
        let txn = Txn::new().when(when).and_then(vec![
            TxnOp::put(key.as_str(), value, None),
            TxnOp::delete(
                self.keys.batch_claims_prefix(record.batch_id),
                Some(DeleteOptions::new().with_prefix()),
            ),
        ]);
        self.txn("reset task", &key, txn).await
    }

    /// Removes an acknowledged batch's record and claims (the leader).
    pub async fn remove(&self, fence: &Fence, batch_id: u64) -> Result<(), CoordError> {
        self.remove_all(fence, &[batch_id]).await
    }

    /// Removes acknowledged batches' records and claims in one transaction.
    pub async fn remove_all(&self, fence: &Fence, batch_ids: &[u64]) -> Result<(), CoordError> {
        let Some(&first) = batch_ids.first() else {
            return Ok(());
        };
        let key = self.keys.batch(first);
        let mut ops = Vec::with_capacity(batch_ids.len() * 2);
        for &id in batch_ids {
            ops.push(TxnOp::delete(self.keys.batch(id), None));
            ops.push(TxnOp::delete(
                self.keys.batch_claims_prefix(id),
                Some(DeleteOptions::new().with_prefix()),
            ));
        }
        let txn = Txn::new().when(Self::fence_compare(fence)).and_then(ops);
        if self.txn("remove tasks", &key, txn).await? {
            Ok(())
        } else {
            Err(fenced(fence, &key))
        }
    }

    /// Reads the whole board at one revision.
    pub async fn snapshot(&self) -> Result<Board, CoordError> {
        let prefix = GetOptions::new().with_prefix();
        let txn = Txn::new().and_then(vec![
            TxnOp::get(self.keys.epoch(), None),
            TxnOp::get(self.keys.load_next(), None),
            TxnOp::get(self.keys.batches_prefix(), Some(prefix.clone())),
            TxnOp::get(self.keys.claims_prefix(), Some(prefix.clone())),
            TxnOp::get(self.keys.nodes_prefix(), Some(prefix.with_keys_only())),
        ]);
        let mut kv = self.client.kv_client();
        let root = self.keys.root().to_string();
        let response = timed("read task board", &root, self.timeout, kv.txn(txn)).await?;
        let mut board = Board {
            revision: response.header().map_or(0, |h| h.revision()),
            ..Board::default()
        };
        for op in response.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                let key = kv.key_str().unwrap_or_default();
                board.put(&self.keys, key, kv.value(), kv.mod_revision(), kv.lease());
            }
        }
        Ok(board)
    }

    /// Claims `stage` of the task read as `seen`, under `lease`. For Load,
    /// also requires `load_next` to be this batch and counts the attempt.
    /// `Ok(None)` when someone else won or the task changed.
    pub async fn claim(
        &self,
        seen: &Task,
        stage: TaskStage,
        node: &str,
        lease: i64,
    ) -> Result<Option<Task>, CoordError> {
        Ok(self
            .claim_group(std::slice::from_ref(seen), stage, node, lease)
            .await?
            .and_then(|mut v| v.pop()))
    }

    /// Claims `stage` of every task in `seen` in one transaction, all or
    /// none. For Load the group must be consecutive batches starting at
    /// `load_next` (compared in the same transaction), so Load still runs
    /// strictly in `batch_id` order; every task's attempt is counted.
    /// `Ok(None)` when any task changed or is claimed by someone else.
    pub async fn claim_group(
        &self,
        seen: &[Task],
        stage: TaskStage,
        node: &str,
        lease: i64,
    ) -> Result<Option<Vec<Task>>, CoordError> {
        let Some(first) = seen.first() else {
            return Ok(Some(Vec::new()));
        };
        let claim = ClaimRecord {
            node: node.to_string(),
            since_unix_ms: unix_ms(),
        };
        let claim_value = serde_json::to_vec(&claim).unwrap_or_default();
        let mut when = Vec::new();
        let mut ops = Vec::new();
        let mut records = Vec::with_capacity(seen.len());
        for (n, task) in seen.iter().enumerate() {
            let id = task.record.batch_id;
            if stage == TaskStage::Load && id != first.record.batch_id + n as u64 {
                return Ok(None);
            }
            let task_key = self.keys.batch(id);
            let claim_key = self.keys.claim(id, stage.name());
            when.push(Compare::mod_revision(
                task_key.as_str(),
                CompareOp::Equal,
                task.mod_revision,
            ));
            when.push(Compare::create_revision(
                claim_key.as_str(),
                CompareOp::Equal,
                0,
            ));
            ops.push(TxnOp::put(
                claim_key.as_str(),
                claim_value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            ));
            let mut record = task.record.clone();
            if stage == TaskStage::Load {
                record.load_attempts += 1;
                if record.load_attempts > 1 {
                    // The previous loader may have committed part of it.
                    record.replay = true;
                }
                record.updated_unix_ms = unix_ms();
                ops.push(TxnOp::put(
                    task_key.as_str(),
                    serde_json::to_vec(&record).unwrap_or_default(),
                    None,
                ));
            }
            records.push(record);
        }
        if stage == TaskStage::Load {
            when.push(Compare::value(
                self.keys.load_next(),
                CompareOp::Equal,
                first.record.batch_id.to_string(),
            ));
        }
        let key = self.keys.claim(first.record.batch_id, stage.name());
        let txn = Txn::new().when(when).and_then(ops);
        let mut kv = self.client.kv_client();
        let response = timed("claim tasks", &key, self.timeout, kv.txn(txn)).await?;
        if !response.succeeded() {
            return Ok(None);
        }
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Some(
            records
                .into_iter()
                .zip(seen)
                .map(|(record, task)| Task {
                    mod_revision: if stage == TaskStage::Load {
                        revision
                    } else {
                        task.mod_revision
                    },
                    record,
                })
                .collect(),
        ))
    }

    /// Records the outcome of a claimed stage: `record` replaces the task
    /// (read as `seen`) and the claim is released; completing a load also
    /// advances `load_next`. `Ok(false)` when the task changed meanwhile
    /// (a new epoch, or the leader reset it): the work is discarded.
    pub async fn complete(
        &self,
        seen: &Task,
        stage: TaskStage,
        record: &TaskRecord,
    ) -> Result<bool, CoordError> {
        self.complete_group(
            std::slice::from_ref(seen),
            stage,
            std::slice::from_ref(record),
        )
        .await
    }

    /// [`complete`](Self::complete) for a claimed group in one transaction,
    /// all or none: `records[i]` replaces `seen[i]`. Completed loads advance
    /// `load_next` past the group's last loaded batch and remove the loaded
    /// batches' records and claims: a batch below `load_next` is loaded.
    pub async fn complete_group(
        &self,
        seen: &[Task],
        stage: TaskStage,
        records: &[TaskRecord],
    ) -> Result<bool, CoordError> {
        let Some(first) = records.first() else {
            return Ok(true);
        };
        let mut when = Vec::with_capacity(seen.len() * 2);
        let mut ops = Vec::with_capacity(records.len() * 2 + 1);
        for (task, record) in seen.iter().zip(records) {
            let id = record.batch_id;
            let task_key = self.keys.batch(id);
            let claim_key = self.keys.claim(id, stage.name());
            when.push(Compare::mod_revision(
                task_key.as_str(),
                CompareOp::Equal,
                task.mod_revision,
            ));
            when.push(Compare::create_revision(
                claim_key.as_str(),
                CompareOp::Greater,
                0,
            ));
            if stage == TaskStage::Load && record.state == TaskState::Loaded {
                // A loaded batch leaves the board with its load: the
                // leader acknowledges every batch below `load_next`, so
                // the record would only cost it one more request.
                ops.push(TxnOp::delete(task_key.as_str(), None));
                ops.push(TxnOp::delete(
                    self.keys.batch_claims_prefix(id),
                    Some(DeleteOptions::new().with_prefix()),
                ));
            } else {
                ops.push(TxnOp::put(
                    task_key.as_str(),
                    serde_json::to_vec(record).unwrap_or_default(),
                    None,
                ));
                ops.push(TxnOp::delete(claim_key.as_str(), None));
            }
        }
        if stage == TaskStage::Load {
            let loaded = records
                .iter()
                .take_while(|r| r.state == TaskState::Loaded)
                .last();
            if let Some(last) = loaded {
                ops.push(TxnOp::put(
                    self.keys.load_next(),
                    (last.batch_id + 1).to_string(),
                    None,
                ));
            }
        }
        let key = self.keys.batch(first.batch_id);
        let txn = Txn::new().when(when).and_then(ops);
        self.txn("complete tasks", &key, txn).await
    }

    /// Gives a claim back without a result (the node could not run it).
    pub async fn release(&self, batch_id: u64, stage: TaskStage) -> Result<(), CoordError> {
        let key = self.keys.claim(batch_id, stage.name());
        let mut kv = self.client.kv_client();
        timed(
            "release claim",
            &key,
            self.timeout,
            kv.delete(key.as_str(), None),
        )
        .await?;
        Ok(())
    }
}

fn fenced(fence: &Fence, key: &str) -> CoordError {
    let (leader_key, expected) = match fence {
        Fence::None => (String::new(), 0),
        Fence::Leader {
            key,
            create_revision,
        } => (key.clone(), *create_revision),
    };
    CoordError::FencedOut {
        location: format!("etcd key {key}"),
        key: leader_key,
        expected,
        actual: None,
    }
}

/// A lease of a node working on stage tasks, kept alive in the background.
/// `lost` fires when it can no longer be guaranteed (2/3 of the TTL after
/// the last renewal, as the leader's): the node then drops its claims'
/// work, because other nodes may already have taken it over.
pub struct WorkerLease {
    pub id: i64,
    pub lost: CancellationToken,
    keeper: JoinHandle<()>,
    client: Client,
}

impl WorkerLease {
    pub async fn grant(
        client: &Client,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, CoordError> {
        let mut lease = client.lease_client();
        let granted = timed(
            "lease grant",
            "worker lease",
            timeout,
            lease.grant(ttl.as_secs().max(1) as i64, None),
        )
        .await?;
        let lost = CancellationToken::new();
        let keeper = crate::election::spawn_keeper(client.clone(), granted.id(), ttl, lost.clone());
        Ok(WorkerLease {
            id: granted.id(),
            lost,
            keeper,
            client: client.clone(),
        })
    }

    /// Stops renewing and revokes the lease (its claims vanish at once).
    pub async fn revoke(self) {
        self.keeper.abort();
        let mut lease = self.client.lease_client();
        let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke(self.id)).await;
    }
}

impl Drop for WorkerLease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json() {
        let record = TaskRecord {
            term: 42,
            batch_id: 7,
            state: TaskState::Transformed,
            extracted: DataRef {
                node: "a".into(),
                url: "http://127.0.0.1:1/pipe/42/7/extracted".into(),
                bytes: 10,
                crc32: 3,
            },
            transformed: None,
            rows: 5,
            replay: false,
            load_attempts: 0,
            loaded_by: None,
            error: None,
            created_unix_ms: 1,
            updated_unix_ms: 2,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"state\":\"transformed\""), "{json}");
        let back: TaskRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert_eq!(TaskStage::parse("load"), Some(TaskStage::Load));
        assert_eq!(TaskStage::parse("select"), None);
    }
}
