//! Leader election of an active/standby pair: one etcd lease per node
//! session, the node's registry key and (when elected) the pipeline's leader
//! key both bound to it.
//!
//! # Terms and fencing
//!
//! A node is leader while the leader key exists with the create revision it
//! was elected with ([`Fence::Leader`]); every position write checks that
//! revision in the same etcd transaction, so a node that lost its term can
//! never write, even before it notices.
//!
//! # Self-fencing
//!
//! The lease is renewed every `lease_ttl / 3`. A renewal sent at `t` keeps
//! the lease alive until at least `t + lease_ttl` on the server, so the
//! leader's [`Leadership::lost`] token fires at `t + lease_ttl * 2 / 3` after
//! the last successful renewal: the node stops dumping and loading a third
//! of a TTL *before* any standby can possibly be elected (invariant 2). A
//! renewal answered with TTL 0 (the lease expired) fires it at once.
//!
//! # Fake-death protection (as Canal)
//!
//! When the leader key disappears, the node that held it last may campaign
//! at once; every other node first waits `standby_delay`. A leader that only
//! missed renewals (a GC pause, a short network cut) thus gets its term
//! back without a failover, and a dead leader is replaced after
//! `lease_ttl + standby_delay`.
//!
//! # Planned handover
//!
//! [`Leadership::hand_over`] ends a term on purpose in favour of a named
//! node (or of any standby): it first rewrites the leader key's value with
//! `handover_to`, then deletes the key. Every candidate watching the key
//! gets the deleted value with the delete event, so the named node
//! campaigns at once and every other node — the old leader included, which
//! [`Candidate::hold_off`]s — waits `standby_delay`. If the named node does
//! not take the key in that time (it died meanwhile), the others do.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use sluice_core::retry::{Decision, RetryPolicy};
use sluice_core::time::unix_ms;
use sluice_core::Classify as _;

use crate::error::CoordError;
use crate::keys::PipelineKeys;
use crate::record::Fence;

/// Timing of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    pub lease_ttl: Duration,
    pub standby_delay: Duration,
    /// Deadline of each etcd request.
    pub request_timeout: Duration,
    /// Extra wait before every campaign: nodes that should lead only when
    /// no better-placed node is alive (distributed stages: nodes without
    /// `select` in `node.stages`) set it so that the others win.
    pub campaign_delay: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_ttl: Duration::from_secs(3),
            standby_delay: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            campaign_delay: Duration::ZERO,
        }
    }
}

/// What a node publishes under `nodes/{id}` (and refreshes while it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    /// Where the node's admin endpoint listens, if it has one.
    #[serde(default)]
    pub address: Option<String>,
    /// `leader` or `standby`.
    pub role: String,
    /// sluice version.
    pub version: String,
    /// Replica server_id this node dumps with.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// When the node took its current role (Unix ms).
    pub since_unix_ms: u64,
    /// The leader's stage counters, refreshed while it replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<NodeProgress>,
}

/// Counters the leader publishes in its node record (`sluice status`).
///
/// The counts are per term: they restart at 0 when a node becomes active.
/// Batch *ids* (`last_batch_cut`, `acknowledged_batch`, `flushed_batch`)
/// continue across terms and nodes. Fields added later have serde defaults,
/// so records of older nodes still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// Batches Extract cut this term (a count; it used to carry the last
    /// cut batch's id, which is now `last_batch_cut`).
    pub batches_extracted: u64,
    /// Batches Load applied and acknowledged this term (a count).
    pub batches_loaded: u64,
    /// Rows Load applied this term.
    pub rows_loaded: u64,
    /// DDL statements Load applied this term.
    pub ddl_applied: u64,
    /// Transient target failures retried this term.
    pub retries: u64,
    /// Batches cut but not yet acknowledged.
    pub in_flight: u64,
    /// Id of the last batch Extract cut; `None` before the term's first.
    #[serde(default)]
    pub last_batch_cut: Option<u64>,
    /// Id of the last acknowledged batch, and of the last one flushed to the
    /// store.
    pub acknowledged_batch: Option<u64>,
    pub flushed_batch: Option<u64>,
    /// Replication lag when published (`sluice_pipeline::lag`).
    pub lag_seconds: Option<u64>,
    /// The time up to which the target is known to hold every change of
    /// the source (Unix ms), from which readers compute the lag at their
    /// own "now" (`sluice_pipeline::lag`).
    #[serde(default)]
    pub applied_as_of_unix_ms: Option<u64>,
    pub updated_unix_ms: u64,
    /// The snapshot's progress (the `"snapshot"` object of `/status`), when
    /// one ran in this term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<serde_json::Value>,
}

/// The value of the leader key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub node_id: String,
    /// When the term began (Unix ms).
    pub since_unix_ms: u64,
    /// Written just before a planned handover deletes the key: the node
    /// that should take over at once, or [`HANDOVER_ANY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_to: Option<String>,
}

/// `handover_to` for "any standby" (not a valid node id).
pub const HANDOVER_ANY: &str = "*";

/// A node taking part in the election of one pipeline.
pub struct Candidate {
    client: Client,
    keys: PipelineKeys,
    cfg: ElectionConfig,
    node: NodeRecord,
    /// This process held the leader key last (fake-death protection).
    held_last: bool,
    /// Do not campaign before this (after handing the term over).
    hold_off_until: Option<Instant>,
}

/// This node's term as leader.
pub struct Leadership {
    /// The fence for every position write of this term.
    pub fence: Fence,
    /// Fires when the term can no longer be guaranteed (see the module
    /// docs): stop dumping and loading at once.
    pub lost: CancellationToken,
    lease_id: i64,
    keeper: JoinHandle<()>,
    client: Client,
    leader_key: String,
    request_timeout: Duration,
    node_key: String,
    node: NodeRecord,
}

/// Refreshes the leader's node record (with its progress) under its lease.
#[derive(Clone)]
pub struct ProgressPublisher {
    client: Client,
    lease_id: i64,
    node_key: String,
    node: NodeRecord,
    request_timeout: Duration,
}

impl ProgressPublisher {
    /// Best effort: a failure is logged at debug level and retried on the
    /// next call; `true` when the record was written.
    pub async fn publish(&self, progress: NodeProgress) -> bool {
        let mut node = self.node.clone();
        node.progress = Some(progress);
        let value = serde_json::to_vec(&node).unwrap_or_default();
        let mut kv = self.client.kv_client();
        let put = kv.put(
            self.node_key.as_str(),
            value,
            Some(PutOptions::new().with_lease(self.lease_id)),
        );
        match tokio::time::timeout(self.request_timeout, put).await {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "publishing progress failed");
                false
            }
            Err(_) => {
                tracing::debug!("publishing progress timed out");
                false
            }
        }
    }
}

impl Leadership {
    /// A handle that publishes this term's progress in the node record.
    pub fn publisher(&self) -> ProgressPublisher {
        ProgressPublisher {
            client: self.client.clone(),
            lease_id: self.lease_id,
            node_key: self.node_key.clone(),
            node: self.node.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// Ends the term on purpose (graceful shutdown): deletes the leader key
    /// if it is still ours and revokes the lease, so a standby takes over
    /// after `standby_delay` instead of waiting for the lease to expire.
    pub async fn resign(self) {
        self.lost.cancel();
        self.keeper.abort();
        let mut kv = self.client.kv_client();
        let delete = Txn::new()
            .when(vec![Compare::create_revision(
                self.leader_key.as_str(),
                CompareOp::Equal,
                self.fence.leader_revision().unwrap_or(0),
            )])
            .and_then(vec![TxnOp::delete(self.leader_key.as_str(), None)]);
        let _ = tokio::time::timeout(self.request_timeout, kv.txn(delete)).await;
        let mut lease = self.client.lease_client();
        let _ = tokio::time::timeout(self.request_timeout, lease.revoke(self.lease_id)).await;
        tracing::info!(key = %self.leader_key, "resigned leadership");
    }

    /// Ends the term in favour of `to` (a node id, or any standby when
    /// `None`): marks the leader key with the handover target, then resigns
    /// (see "Planned handover" in the module docs). The caller should
    /// [`Candidate::hold_off`] before campaigning again.
    pub async fn hand_over(self, to: Option<&str>) {
        let record = LeaderRecord {
            node_id: self.node.node_id.clone(),
            since_unix_ms: self.node.since_unix_ms,
            handover_to: Some(to.unwrap_or(HANDOVER_ANY).to_string()),
        };
        let mut kv = self.client.kv_client();
        let mark = Txn::new()
            .when(vec![Compare::create_revision(
                self.leader_key.as_str(),
                CompareOp::Equal,
                self.fence.leader_revision().unwrap_or(0),
            )])
            .and_then(vec![TxnOp::put(
                self.leader_key.as_str(),
                serde_json::to_vec(&record).unwrap_or_default(),
                Some(PutOptions::new().with_lease(self.lease_id)),
            )]);
        match tokio::time::timeout(self.request_timeout, kv.txn(mark)).await {
            Ok(Ok(r)) if r.succeeded() => {
                tracing::info!(to = %to.unwrap_or("any standby"), "handing the term over")
            }
            outcome => tracing::warn!(
                ?outcome,
                "could not mark the leader key for the handover; resigning plainly"
            ),
        }
        self.resign().await;
    }

    /// Ends the term after it was lost: stops renewing and revokes the
    /// lease (best effort; it expires anyway).
    pub async fn abandon(self) {
        self.lost.cancel();
        self.keeper.abort();
        let mut lease = self.client.lease_client();
        let _ = tokio::time::timeout(self.request_timeout, lease.revoke(self.lease_id)).await;
    }
}

impl Candidate {
    pub fn new(client: Client, keys: PipelineKeys, cfg: ElectionConfig, node: NodeRecord) -> Self {
        Candidate {
            client,
            keys,
            cfg,
            node,
            held_last: false,
            hold_off_until: None,
        }
    }

    /// The next campaign waits `delay` before it tries for the key (after
    /// [`Leadership::hand_over`], so the named node wins).
    pub fn hold_off(&mut self, delay: Duration) {
        self.hold_off_until = Some(Instant::now() + delay);
    }

    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, CoordError> {
        crate::etcd::timed(op, key, self.cfg.request_timeout, request).await
    }

    fn ttl_secs(&self) -> i64 {
        self.cfg.lease_ttl.as_secs().max(1) as i64
    }

    /// Registers as standby and waits until elected. `Ok(None)` when
    /// `shutdown` fired first. Transient etcd trouble is retried inside;
    /// only a definite error returns `Err`.
    pub async fn campaign(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Leadership>, CoordError> {
        // `retry` cannot hold the `&mut self` each attempt borrows: the same
        // policy, decided by the error's class, in a loop.
        let policy = RetryPolicy::unbounded(Duration::from_millis(250), Duration::from_secs(2));
        let mut attempt = 1;
        loop {
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            let e = match self.try_campaign(shutdown).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            let Decision::RetryAfter(wait) = policy.decide(attempt, e.class()) else {
                return Err(e);
            };
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "election: etcd unavailable; retrying");
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }

    async fn try_campaign(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Leadership>, CoordError> {
        let leader_key = self.keys.leader();
        let node_key = self.keys.node(&self.node.node_id)?;
        let mut lease_client = self.client.lease_client();
        let lease = self
            .call(
                "lease grant",
                &node_key,
                lease_client.grant(self.ttl_secs(), None),
            )
            .await?;
        let lease_id = lease.id();
        // Keep the lease alive from now on, standby or leader.
        let lost = CancellationToken::new();
        let keeper = spawn_keeper(
            self.client.clone(),
            lease_id,
            self.cfg.lease_ttl,
            lost.clone(),
        );
        let guard = KeeperGuard {
            keeper: Some(keeper),
            client: self.client.clone(),
            lease_id,
        };
        self.node.role = "standby".into();
        self.node.since_unix_ms = unix_ms();
        self.put_node(&node_key, lease_id).await?;
        tracing::info!(node = %self.node.node_id, "registered as standby");
        if !self.cfg.campaign_delay.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(guard.release().await),
                () = tokio::time::sleep(self.cfg.campaign_delay) => {}
            }
        }
        if let Some(until) = self.hold_off_until {
            tracing::info!(
                delay_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                "handed over: letting the named node take the key first"
            );
        }

        loop {
            if lost.is_cancelled() {
                return Err(CoordError::EtcdTimeout {
                    op: "lease keep-alive",
                    key: node_key,
                    timeout: self.cfg.lease_ttl,
                });
            }
            let record = LeaderRecord {
                node_id: self.node.node_id.clone(),
                since_unix_ms: unix_ms(),
                handover_to: None,
            };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            let mut kv = self.client.kv_client();
            // Holding off after a handover: only look (a create revision is
            // never negative), follow the key once someone holds it, and
            // take it only after the hold-off.
            let holding_off = match self.hold_off_until {
                Some(until) if Instant::now() < until => true,
                _ => {
                    self.hold_off_until = None;
                    false
                }
            };
            let txn = Txn::new()
                .when(vec![Compare::create_revision(
                    leader_key.as_str(),
                    if holding_off {
                        CompareOp::Less
                    } else {
                        CompareOp::Equal
                    },
                    0,
                )])
                .and_then(vec![TxnOp::put(
                    leader_key.as_str(),
                    value,
                    Some(PutOptions::new().with_lease(lease_id)),
                )])
                .or_else(vec![TxnOp::get(leader_key.as_str(), None)]);
            let response = self.call("campaign", &leader_key, kv.txn(txn)).await?;
            if response.succeeded() {
                let revision = response.header().map_or(0, |h| h.revision());
                self.held_last = true;
                self.node.role = "leader".into();
                self.node.since_unix_ms = record.since_unix_ms;
                self.put_node(&node_key, lease_id).await?;
                tracing::info!(node = %self.node.node_id, revision, "elected leader");
                let keeper = guard.disarm();
                return Ok(Some(Leadership {
                    fence: Fence::Leader {
                        key: leader_key.clone(),
                        create_revision: revision,
                    },
                    lost,
                    lease_id,
                    keeper,
                    client: self.client.clone(),
                    leader_key,
                    request_timeout: self.cfg.request_timeout,
                    node_key,
                    node: self.node.clone(),
                }));
            }
            // Someone else leads: watch the key until it goes away.
            let held = response.op_responses().into_iter().any(
                |op| matches!(op, etcd_client::TxnOpResponse::Get(get) if !get.kvs().is_empty()),
            );
            if holding_off && !held {
                // Nobody took it yet: look again shortly.
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            let (holder, revision) = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| {
                        (
                            serde_json::from_slice::<LeaderRecord>(kv.value())
                                .map(|r| r.node_id)
                                .unwrap_or_default(),
                            kv.mod_revision(),
                        )
                    }),
                    _ => None,
                })
                .unwrap_or_default();
            if holder == self.node.node_id {
                // Our own key from an earlier term (a lease that has not
                // expired yet): it cannot be renewed from here, wait it out.
                tracing::info!("the leader key is still held by this node's previous lease; waiting for it to expire");
            }
            self.held_last = holder == self.node.node_id;
            let deleted_by = tokio::select! {
                () = shutdown.cancelled() => return Ok(guard.release().await),
                () = lost.cancelled() => continue,
                r = self.wait_deleted(&leader_key, revision) => r?,
            };
            let handover_to = deleted_by.as_ref().and_then(|r| r.handover_to.clone());
            let last_holder = deleted_by.map_or(holder, |r| r.node_id);
            let me = self.node.node_id.as_str();
            let at_once = match handover_to.as_deref() {
                Some(to) => to == me || (to == HANDOVER_ANY && last_holder != me),
                None => last_holder == me && self.held_last,
            };
            if at_once && handover_to.is_some() {
                // Handed to this node: its own hold-off (from an earlier
                // handover away from it) no longer applies.
                self.hold_off_until = None;
                tracing::info!(previous = %last_holder, "leader key handed over to this node; campaigning at once");
            } else if !at_once {
                let delay = self.cfg.standby_delay + self.cfg.campaign_delay;
                tracing::info!(previous = %last_holder, delay_ms = delay.as_millis() as u64, "leader key gone; campaigning after the standby delay");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(guard.release().await),
                    () = tokio::time::sleep(delay) => {}
                }
            } else {
                tracing::info!("leader key gone; this node held it last, campaigning at once");
            }
        }
    }

    async fn put_node(&self, node_key: &str, lease_id: i64) -> Result<(), CoordError> {
        let mut kv = self.client.kv_client();
        let value = serde_json::to_vec(&self.node).unwrap_or_default();
        self.call(
            "register node",
            node_key,
            kv.put(
                node_key,
                value,
                Some(PutOptions::new().with_lease(lease_id)),
            ),
        )
        .await
        .map(|_| ())
    }

    /// Waits until the leader key is deleted (or expires) after `revision`;
    /// returns its last value when etcd sends it (who held it, and a
    /// handover target).
    async fn wait_deleted(
        &self,
        key: &str,
        revision: i64,
    ) -> Result<Option<LeaderRecord>, CoordError> {
        let mut watch = self.client.watch_client();
        let mut stream = self
            .call(
                "watch",
                key,
                watch.watch(
                    key,
                    Some(
                        WatchOptions::new()
                            .with_start_revision(revision + 1)
                            .with_prev_key(),
                    ),
                ),
            )
            .await?;
        loop {
            let message = stream.message().await.map_err(|source| CoordError::Etcd {
                op: "watch",
                key: key.to_owned(),
                source,
            })?;
            let Some(response) = message else {
                return Err(CoordError::EtcdTimeout {
                    op: "watch",
                    key: key.to_owned(),
                    timeout: Duration::ZERO,
                });
            };
            for event in response.events() {
                if event.event_type() == EventType::Delete {
                    return Ok(event
                        .prev_kv()
                        .and_then(|kv| serde_json::from_slice::<LeaderRecord>(kv.value()).ok()));
                }
            }
        }
    }
}

/// Aborts the keeper and revokes the lease unless disarmed (a campaign that
/// ends without being elected leaves no lease behind).
struct KeeperGuard {
    keeper: Option<JoinHandle<()>>,
    client: Client,
    lease_id: i64,
}

impl KeeperGuard {
    fn disarm(mut self) -> JoinHandle<()> {
        self.keeper.take().unwrap_or_else(|| tokio::spawn(async {}))
    }

    /// A standby stopping on purpose: revokes its lease now (and with it
    /// its registration), rather than in a task the exiting process may
    /// never run — so `sluice positions set` and the other nodes see it gone
    /// at once, not `lease_ttl` later. Returns the campaign's `None`.
    async fn release<T>(mut self) -> Option<T> {
        if let Some(k) = self.keeper.take() {
            k.abort();
            let mut lease = self.client.lease_client();
            let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke(self.lease_id)).await;
        }
        None
    }
}

impl Drop for KeeperGuard {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.abort();
            let mut lease = self.client.lease_client();
            let id = self.lease_id;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), lease.revoke(id)).await;
            });
        }
    }
}

/// Renews `lease_id` every `ttl / 3`; cancels `lost` when the lease can no
/// longer be guaranteed (see the module docs).
pub(crate) fn spawn_keeper(
    client: Client,
    lease_id: i64,
    ttl: Duration,
    lost: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = ttl / 3;
        // The lease was granted just now: it lives at least `ttl` from here.
        let mut renewed_at = Instant::now();
        let mut stream_pair = None;
        let mut ticker = tokio::time::interval(every);
        loop {
            let deadline = renewed_at + ttl * 2 / 3;
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    tracing::error!(lease_id, "lease not renewed in time: giving up the term before it can expire");
                    lost.cancel();
                    return;
                }
                _ = ticker.tick() => {}
            }
            let sent = Instant::now();
            if stream_pair.is_none() {
                let mut lease = client.lease_client();
                match tokio::time::timeout(every, lease.keep_alive(lease_id)).await {
                    Ok(Ok(pair)) => stream_pair = Some(pair),
                    Ok(Err(error)) => {
                        tracing::warn!(lease_id, %error, "lease keep-alive failed");
                        continue;
                    }
                    Err(_) => continue,
                }
            }
            let Some((keeper, stream)) = stream_pair.as_mut() else {
                continue;
            };
            let renewed = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(every, renewed).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => renewed_at = sent,
                Ok(Ok(Some(_))) => {
                    tracing::error!(lease_id, "lease expired: giving up the term");
                    lost.cancel();
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    tracing::warn!(lease_id, "lease keep-alive failed; reconnecting");
                    stream_pair = None;
                }
            }
        }
    })
}

/// Deadline of each read of [`read_leader`] and [`read_nodes`].
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one read-only request under [`READ_TIMEOUT`].
async fn read_call<T>(
    op: &'static str,
    key: &str,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CoordError> {
    crate::etcd::timed(op, key, READ_TIMEOUT, request).await
}

/// The pipeline's current leader and the create revision of its leader key
/// (the fencing token of its term), or `None` when nobody leads. For
/// operator tools (`sluice positions`); a node campaigns with
/// [`Candidate`]. A leader key whose value does not parse still means
/// somebody leads: it is reported with an empty node id rather than as
/// "no leader".
pub async fn read_leader(
    client: &Client,
    keys: &PipelineKeys,
) -> Result<Option<(LeaderRecord, i64)>, CoordError> {
    let key = keys.leader();
    let mut kv = client.kv_client();
    let response = read_call("get", &key, kv.get(key.as_str(), None)).await?;
    Ok(response.kvs().first().map(|kv| {
        let record = serde_json::from_slice(kv.value()).unwrap_or_else(|_| LeaderRecord {
            node_id: String::new(),
            since_unix_ms: 0,
            handover_to: None,
        });
        (record, kv.create_revision())
    }))
}

/// Every node registered for the pipeline (leader and standbys), in key
/// order. Registrations that do not parse (a newer node's format) are
/// skipped.
pub async fn read_nodes(
    client: &Client,
    keys: &PipelineKeys,
) -> Result<Vec<NodeRecord>, CoordError> {
    let prefix = keys.nodes_prefix();
    let mut kv = client.kv_client();
    let response = read_call(
        "get",
        &prefix,
        kv.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    Ok(response
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyLayout;
    use sluice_testkit::Etcd;

    fn candidate(client: &Client, keys: &PipelineKeys, id: &str) -> Candidate {
        let cfg = ElectionConfig {
            lease_ttl: Duration::from_secs(3),
            // Long, so that only the handover explains a quick takeover.
            standby_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            campaign_delay: Duration::ZERO,
        };
        let node = NodeRecord {
            node_id: id.into(),
            address: None,
            role: "standby".into(),
            version: "test".into(),
            server_id: None,
            since_unix_ms: 0,
            progress: None,
        };
        Candidate::new(client.clone(), keys.clone(), cfg, node)
    }

    /// A handover to `b` makes `b` leader at once, well before the standby
    /// delay every other node waits; the old leader holds off.
    #[tokio::test]
    async fn hand_over_elects_the_named_node_at_once() {
        let etcd = Etcd::start()
            .await
            .expect("etcd (is the binary installed?)");
        let client = etcd.client().await.expect("client");
        let keys = KeyLayout::new("/el")
            .and_then(|l| l.pipeline("p"))
            .expect("keys");
        let shutdown = CancellationToken::new();
        let mut a = candidate(&client, &keys, "a");
        let lead_a = a
            .campaign(&shutdown)
            .await
            .expect("campaign")
            .expect("a leads");
        let mut b = candidate(&client, &keys, "b");
        let sd_b = shutdown.clone();
        let b_task = tokio::spawn(async move { (b.campaign(&sd_b).await, Instant::now()) });
        // Registered means campaigning: b either watches the key from the
        // revision it read (and so sees the handover's delete, whenever its
        // watch opens) or finds it gone and takes it.
        let started = Instant::now();
        while read_nodes(&client, &keys).await.expect("nodes").len() < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "b never registered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let handed = Instant::now();
        lead_a.hand_over(Some("b")).await;
        a.hold_off(Duration::from_secs(5));
        let (lead_b, elected) = b_task.await.expect("join");
        let lead_b = lead_b.expect("campaign").expect("b leads");
        let took = elected.duration_since(handed);
        assert!(took < Duration::from_secs(1), "b took {took:?}");
        let (leader, _) = read_leader(&client, &keys)
            .await
            .expect("read")
            .expect("a leader");
        assert_eq!(leader.node_id, "b");
        assert_eq!(leader.handover_to, None);
        // The old leader holds off: it does not take the key back.
        let sd_a = shutdown.clone();
        let a_task = tokio::spawn(async move { a.campaign(&sd_a).await.map(|l| l.is_some()) });
        lead_b.resign().await;
        let resigned = Instant::now();
        // b resigned (without a handover): a is then free to take it, but
        // only after its hold-off (5 s from the handover).
        assert!(a_task.await.expect("join").expect("campaign"));
        assert!(
            handed.elapsed() >= Duration::from_secs(5),
            "a campaigned {:?} after the handover, {:?} after b resigned",
            handed.elapsed(),
            resigned.elapsed()
        );
        shutdown.cancel();
    }
}
