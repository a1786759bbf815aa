//! Positions in etcd, one key per pipeline, fenced by the leader key.
//!
//! # How a write is guarded
//!
//! Each `store` is a read followed by one conditional transaction:
//!
//! 1. Read, in one read-only transaction (one consistent snapshot), the
//!    position key and the leader key. If the fence's leader key does not
//!    have the fence's create revision, fail with `FencedOut` right away;
//!    otherwise check that the new record advances the stored one
//!    (`Backwards` / `BatchConflict` otherwise).
//! 2. `If(position.mod_revision == M, leader.create_revision == R)
//!    Then(put position)`, where `M` is the position key's mod revision seen
//!    in step 1 (`0` when absent) and `R` the fence's revision.
//!
//! The leader compare makes fencing atomic with the write: a leader key
//! deleted or re-created (new lease, new term) between step 1 and 2 fails the
//! transaction. The mod-revision compare makes the monotonicity check atomic:
//! the record checked in step 1 is exactly the one replaced, so two writers
//! cannot both pass the check against a stale value. We chose this
//! compare-and-swap over a separate, comparable `batch_id` key because etcd
//! cannot compare the value of a missing key (the first write would need a
//! second branch), and because it keeps the whole record in one key that
//! `sluice positions` reads at once. A failed transaction is re-read and
//! re-checked, so the caller sees `FencedOut` if that is why it failed, and
//! a transient `Contention` only after repeated lost races.
//!
//! Routine writes keep no history key (they happen every second and would
//! grow etcd without bound); etcd's own revisions show recent writes until
//! compaction. Forced writes are logged under `history/` permanently.
//!
//! Every request has a deadline ([`EtcdOptions::request_timeout`]), so an
//! unreachable etcd surfaces as a transient error instead of a hang.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use sluice_core::{EtcdAuth, EtcdTls, Position};

use crate::error::CoordError;
use crate::keys::PipelineKeys;
use crate::record::{
    check_advance, check_writer, forced_record, Fence, HistoryEntry, StoredPosition,
};
use crate::store::PositionStore;

/// Lost compare-and-swap races tolerated before reporting `Contention`.
const MAX_CAS_ATTEMPTS: u32 = 8;

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `http://host:port` of one or more cluster members.
    pub endpoints: Vec<String>,
    /// Deadline for opening a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Deadline for each request. Must stay well below the leader lease TTL
    /// margin, so a stuck write is noticed before the lease matters.
    pub request_timeout: Duration,
    /// HTTP/2 ping interval, so a dead connection is noticed without a
    /// request (etcd refuses pings more often than every 5 s by default).
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// TLS (`https://` endpoints): the CA etcd's certificate must lead to
    /// (host names are always checked), and a client certificate.
    pub tls: Option<EtcdTls>,
    /// User and password for etcd's authentication (`Debug` masks it).
    pub auth: Option<EtcdAuth>,
}

impl EtcdOptions {
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            tls: None,
            auth: None,
        }
    }

    /// With `coordination.etcd.tls` and `user`/`password`.
    pub fn with_security(mut self, tls: Option<EtcdTls>, auth: Option<EtcdAuth>) -> Self {
        self.tls = tls;
        self.auth = auth;
        self
    }
}

/// Runs one etcd request under `timeout`, naming the operation and key in
/// its error (every etcd call of this crate goes through here).
pub(crate) async fn timed<T>(
    op: &'static str,
    key: &str,
    timeout: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CoordError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(CoordError::Etcd {
            op,
            key: key.to_owned(),
            source,
        }),
        Err(_) => Err(CoordError::EtcdTimeout {
            op,
            key: key.to_owned(),
            timeout,
        }),
    }
}

/// Connects an etcd client with `options`. Shared by the position store and
/// (later) election and node registration, so one node uses one connection.
///
/// `require_leader` is set so that a member cut off from its cluster answers
/// "no leader" (transient) at once instead of holding requests until the
/// deadline.
pub async fn connect(options: &EtcdOptions) -> Result<Client, CoordError> {
    let endpoints = options.endpoints.join(",");
    let mut connect_options = ConnectOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_timeout(options.request_timeout)
        .with_keep_alive(options.keep_alive_interval, options.keep_alive_timeout)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if let Some(tls) = &options.tls {
        connect_options = connect_options.with_tls(tls_options(tls, &endpoints)?);
    }
    if let Some(auth) = &options.auth {
        connect_options =
            connect_options.with_user(auth.user.clone(), auth.password.expose().to_owned());
    }
    let connecting = Client::connect(&options.endpoints, Some(connect_options));
    match tokio::time::timeout(options.connect_timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => Err(CoordError::EtcdConnect { endpoints, source }),
        Err(_) => Err(CoordError::EtcdTimeout {
            op: "connect",
            key: endpoints,
            timeout: options.connect_timeout,
        }),
    }
}

/// tonic's TLS settings: `ca` as the only root, the endpoint's host name
/// checked (tonic always does), and the client certificate if any. The
/// files are read here, so a missing or unreadable one is named at once.
fn tls_options(tls: &EtcdTls, endpoints: &str) -> Result<etcd_client::TlsOptions, CoordError> {
    use etcd_client::{Certificate, Identity, TlsOptions};
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| CoordError::EtcdTlsFile {
            endpoints: endpoints.to_owned(),
            path: path.to_owned(),
            source,
        })
    };
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    if let Some(client) = &tls.client {
        options = options.identity(Identity::from_pem(read(&client.cert)?, read(&client.key)?));
    }
    Ok(options)
}

/// A pipeline's position at `{prefix}/pipelines/{name}/position`.
#[derive(Clone)]
pub struct EtcdPositionStore {
    /// Boxed: the client is several KiB, and this store is moved around
    /// inside `AnyPositionStore` and caches.
    client: Arc<Client>,
    keys: PipelineKeys,
    request_timeout: Duration,
}

impl fmt::Debug for EtcdPositionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdPositionStore")
            .field("keys", &self.keys)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// What one consistent read saw.
struct Snapshot {
    /// The position key's raw value, parsed on demand so that a forced
    /// write can replace a corrupt record.
    raw: Option<Vec<u8>>,
    /// `0` when the position key does not exist (what etcd compares against).
    mod_revision: i64,
    leader_create_revision: Option<i64>,
}

impl Snapshot {
    fn current(&self, location: &str) -> Result<Option<StoredPosition>, CoordError> {
        self.raw
            .as_deref()
            .map(|raw| StoredPosition::from_json(raw, location))
            .transpose()
    }
}

impl EtcdPositionStore {
    /// Connects with `options` and serves the pipeline `keys` names.
    pub async fn connect(options: &EtcdOptions, keys: PipelineKeys) -> Result<Self, CoordError> {
        Ok(Self::new(
            connect(options).await?,
            keys,
            options.request_timeout,
        ))
    }

    /// Uses an existing client (e.g. the one election runs on).
    pub fn new(client: Client, keys: PipelineKeys, request_timeout: Duration) -> Self {
        EtcdPositionStore {
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

    /// The forced position changes, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, CoordError> {
        let prefix = self.keys.history_prefix();
        let mut kv = self.client.kv_client();
        let response = self
            .call(
                "get",
                &prefix,
                kv.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        response
            .kvs()
            .iter()
            .map(|entry| {
                let location = format!("etcd key {}", String::from_utf8_lossy(entry.key()));
                serde_json::from_slice(entry.value())
                    .map_err(|source| CoordError::Corrupt { location, source })
            })
            .collect()
    }

    /// Runs one request under the request deadline.
    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, CoordError> {
        timed(op, key, self.request_timeout, request).await
    }

    async fn txn(&self, key: &str, txn: Txn) -> Result<TxnResponse, CoordError> {
        let mut kv = self.client.kv_client();
        self.call("txn", key, kv.txn(txn)).await
    }

    /// Reads the position and leader keys at one revision.
    async fn snapshot(&self) -> Result<Snapshot, CoordError> {
        let position_key = self.keys.position();
        let read = Txn::new().and_then(vec![
            TxnOp::get(position_key.as_str(), None),
            TxnOp::get(self.keys.leader(), None),
        ]);
        let response = self.txn(&position_key, read).await?;
        let mut gets = response.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        let position = gets.next().flatten();
        let leader = gets.next().flatten();
        Ok(Snapshot {
            raw: position.as_ref().map(|kv| kv.value().to_vec()),
            mod_revision: position.as_ref().map_or(0, |kv| kv.mod_revision()),
            leader_create_revision: leader.map(|kv| kv.create_revision()),
        })
    }

    async fn store_fenced(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
        check_writer(&record.written_by)?;
        fence.check_record(record)?;
        let leader_key = self.keys.leader();
        let required_revision = match fence {
            Fence::None => None,
            Fence::Leader {
                key,
                create_revision,
            } => {
                if *key != leader_key {
                    return Err(CoordError::WrongFenceKey {
                        expected: leader_key,
                        got: key.clone(),
                    });
                }
                Some(*create_revision)
            }
        };
        let location = self.location();
        let position_key = self.keys.position();
        let value = record.to_json();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let snapshot = self.snapshot().await?;
            if let Some(required) = required_revision {
                if snapshot.leader_create_revision != Some(required) {
                    tracing::warn!(
                        leader_key,
                        required,
                        actual = ?snapshot.leader_create_revision,
                        "position write fenced out: this node is no longer the leader"
                    );
                    return Err(CoordError::FencedOut {
                        location,
                        key: leader_key,
                        expected: required,
                        actual: snapshot.leader_create_revision,
                    });
                }
            }
            check_advance(&location, snapshot.current(&location)?.as_ref(), record)?;
            let mut compares = vec![Compare::mod_revision(
                position_key.as_str(),
                CompareOp::Equal,
                snapshot.mod_revision,
            )];
            if let Some(required) = required_revision {
                compares.push(Compare::create_revision(
                    leader_key.as_str(),
                    CompareOp::Equal,
                    required,
                ));
            }
            let write = Txn::new().when(compares).and_then(vec![TxnOp::put(
                position_key.as_str(),
                value.clone(),
                None,
            )]);
            if self.txn(&position_key, write).await?.succeeded() {
                return Ok(());
            }
            // Lost a race between read and write: the next snapshot tells
            // whether we were fenced out or overtaken.
        }
        Err(CoordError::Contention {
            location,
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    async fn force(
        &self,
        position: Position,
        changed_by: &str,
    ) -> Result<StoredPosition, CoordError> {
        let location = self.location();
        let position_key = self.keys.position();
        let leader_key = self.keys.leader();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let snapshot = self.snapshot().await?;
            // A corrupt record is exactly what an operator may need to force
            // over; it is logged, since the audit entry cannot hold it.
            let current = match snapshot.current(&location) {
                Ok(current) => current,
                Err(error @ CoordError::Corrupt { .. }) => {
                    let raw = String::from_utf8_lossy(snapshot.raw.as_deref().unwrap_or_default());
                    tracing::warn!(%error, %raw, "forcing a position over a corrupt record");
                    None
                }
                Err(error) => return Err(error),
            };
            let record = forced_record(current.as_ref(), position.clone(), changed_by)?;
            let history_key = self
                .keys
                .history_entry(record.written_at_unix_ms, record.batch_id);
            let entry = HistoryEntry {
                replaced: current,
                record: record.clone(),
            };
            let entry_json = serde_json::to_vec(&entry).expect("HistoryEntry serialises");
            let write = Txn::new()
                .when(vec![
                    Compare::mod_revision(
                        position_key.as_str(),
                        CompareOp::Equal,
                        snapshot.mod_revision,
                    ),
                    // Never overwrite an audit entry.
                    Compare::create_revision(history_key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then(vec![
                    TxnOp::put(position_key.as_str(), record.to_json(), None),
                    TxnOp::put(history_key.as_str(), entry_json, None),
                    TxnOp::delete(leader_key.as_str(), None),
                ]);
            let response = self.txn(&position_key, write).await?;
            if !response.succeeded() {
                continue;
            }
            let deposed = response
                .op_responses()
                .into_iter()
                .any(|op| matches!(op, TxnOpResponse::Delete(d) if d.deleted() > 0));
            tracing::warn!(
                %location,
                position = %record.position,
                batch_id = record.batch_id,
                changed_by,
                deposed_leader = deposed,
                "position forced"
            );
            return Ok(record);
        }
        Err(CoordError::Contention {
            location,
            attempts: MAX_CAS_ATTEMPTS,
        })
    }
}

impl PositionStore for EtcdPositionStore {
    async fn load(&self) -> Result<Option<StoredPosition>, CoordError> {
        let key = self.keys.position();
        let mut kv = self.client.kv_client();
        let response = self.call("get", &key, kv.get(key.as_str(), None)).await?;
        match response.kvs().first() {
            Some(entry) => StoredPosition::from_json(entry.value(), &self.location()).map(Some),
            None => Ok(None),
        }
    }

    async fn store(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
        self.store_fenced(record, fence).await
    }

    async fn force_store(
        &self,
        position: Position,
        changed_by: &str,
    ) -> Result<StoredPosition, CoordError> {
        self.force(position, changed_by).await
    }

    fn location(&self) -> String {
        format!("etcd key {}", self.keys.position())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use etcd_client::PutOptions;
    use sluice_core::{Classify, ErrorClass};
    use sluice_testkit::Etcd;

    use super::*;
    use crate::keys::KeyLayout;

    async fn etcd() -> Etcd {
        Etcd::start()
            .await
            .expect("start etcd (is the etcd binary installed?)")
    }

    fn keys(name: &str) -> PipelineKeys {
        KeyLayout::new("/sluice-test")
            .and_then(|l| l.pipeline(name))
            .expect("valid keys")
    }

    fn options(etcd: &Etcd) -> EtcdOptions {
        let mut options = EtcdOptions::new([etcd.endpoint()]);
        options.request_timeout = Duration::from_secs(2);
        options.connect_timeout = Duration::from_secs(2);
        options
    }

    async fn store(etcd: &Etcd, name: &str) -> EtcdPositionStore {
        EtcdPositionStore::connect(&options(etcd), keys(name))
            .await
            .expect("connect")
    }

    fn pos(offset: u64) -> Position {
        Position::new("mysql-bin.000003", offset)
    }

    /// Takes the leader key under a fresh lease, the way election will: put
    /// only if absent. Returns the fence for that term.
    async fn take_leadership(client: &mut Client, keys: &PipelineKeys, node: &str) -> Fence {
        let lease = client.lease_grant(30, None).await.expect("lease").id();
        let key = keys.leader();
        let response = client
            .txn(
                Txn::new()
                    .when(vec![Compare::create_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then(vec![TxnOp::put(
                        key.as_str(),
                        node,
                        Some(PutOptions::new().with_lease(lease)),
                    )]),
            )
            .await
            .expect("campaign");
        assert!(response.succeeded(), "leader key already held");
        let leader = client.get(key.as_str(), None).await.expect("get leader");
        Fence::Leader {
            key,
            create_revision: leader.kvs()[0].create_revision(),
        }
    }

    #[tokio::test]
    async fn round_trip_and_absent() {
        let etcd = etcd().await;
        let s = store(&etcd, "round").await;
        assert_eq!(s.load().await.expect("load"), None);
        let mut p = pos(1234);
        p.gtid = Some("0-1-100".parse().expect("gtid"));
        p.server_id = Some(1);
        p.timestamp = Some(1_700_000_000);
        let record = StoredPosition::new(p, 1, "node-a", &Fence::None);
        s.store(&record, &Fence::None).await.expect("store");
        assert_eq!(s.load().await.expect("load"), Some(record.clone()));
        // Idempotent re-store (a retry after a lost answer).
        s.store(&record, &Fence::None).await.expect("re-store");
        // Pipelines do not see each other.
        assert_eq!(
            store(&etcd, "round2").await.load().await.expect("load"),
            None
        );
        assert_eq!(
            s.location(),
            "etcd key /sluice-test/pipelines/round/position"
        );
    }

    #[tokio::test]
    async fn corrupt_value_is_definite() {
        let etcd = etcd().await;
        let s = store(&etcd, "corrupt").await;
        let mut client = etcd.client().await.expect("client");
        client
            .put(s.keys().position(), "{not json", None)
            .await
            .expect("put");
        let err = s.load().await.expect_err("corrupt");
        assert!(matches!(err, CoordError::Corrupt { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
        let record = StoredPosition::new(pos(4), 1, "n", &Fence::None);
        let err = s.store(&record, &Fence::None).await.expect_err("corrupt");
        assert!(matches!(err, CoordError::Corrupt { .. }), "{err}");
        // An operator can force over it.
        let forced = s.force_store(pos(4), "alice").await.expect("force");
        assert_eq!(forced.batch_id, 0);
        assert_eq!(s.load().await.expect("load"), Some(forced));
    }

    #[tokio::test]
    async fn fenced_out_after_leader_key_recreated() {
        let etcd = etcd().await;
        let s = store(&etcd, "fence").await;
        let mut client = etcd.client().await.expect("client");
        let fence = take_leadership(&mut client, s.keys(), "node-a").await;
        let first = StoredPosition::new(pos(100), 1, "node-a", &fence);
        s.store(&first, &fence).await.expect("leader writes");
        assert_eq!(s.load().await.expect("load"), Some(first.clone()));

        // Leadership lost: the key disappears (lease expired) ...
        client
            .delete(s.keys().leader(), None)
            .await
            .expect("delete");
        let second = StoredPosition::new(pos(200), 2, "node-a", &fence);
        let err = s.store(&second, &fence).await.expect_err("fenced");
        assert!(
            matches!(err, CoordError::FencedOut { actual: None, .. }),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Definite);

        // ... and another node takes it: a new create revision.
        let new_fence = take_leadership(&mut client, s.keys(), "node-b").await;
        let err = s.store(&second, &fence).await.expect_err("fenced");
        assert!(
            matches!(err, CoordError::FencedOut { actual: Some(r), .. }
                if Some(r) == new_fence.leader_revision()),
            "{err}"
        );
        assert_eq!(s.load().await.expect("load"), Some(first));

        // The new leader writes under its own fence.
        let third = StoredPosition::new(pos(300), 2, "node-b", &new_fence);
        s.store(&third, &new_fence)
            .await
            .expect("new leader writes");
        assert_eq!(s.load().await.expect("load"), Some(third));
    }

    #[tokio::test]
    async fn fence_must_name_this_pipelines_leader_key_and_match_the_record() {
        let etcd = etcd().await;
        let s = store(&etcd, "fencekey").await;
        let mut client = etcd.client().await.expect("client");
        let other = keys("other");
        let fence = take_leadership(&mut client, &other, "node-a").await;
        let record = StoredPosition::new(pos(4), 1, "node-a", &fence);
        let err = s.store(&record, &fence).await.expect_err("wrong key");
        assert!(matches!(err, CoordError::WrongFenceKey { .. }), "{err}");
        let unfenced = StoredPosition::new(pos(4), 1, "node-a", &Fence::None);
        let err = s.store(&unfenced, &fence).await.expect_err("mismatch");
        assert!(matches!(err, CoordError::FenceMismatch { .. }), "{err}");
        assert_eq!(s.load().await.expect("load"), None);
    }

    #[tokio::test]
    async fn backwards_and_conflicting_writes_are_refused() {
        let etcd = etcd().await;
        let s = store(&etcd, "backwards").await;
        let at = |batch, offset| StoredPosition::new(pos(offset), batch, "n", &Fence::None);
        s.store(&at(10, 1000), &Fence::None).await.expect("store");
        let err = s.store(&at(9, 2000), &Fence::None).await.expect_err("back");
        assert!(
            matches!(
                err,
                CoordError::Backwards {
                    stored: 10,
                    attempted: 9,
                    ..
                }
            ),
            "{err}"
        );
        let err = s
            .store(&at(10, 999), &Fence::None)
            .await
            .expect_err("conflict");
        assert!(matches!(err, CoordError::BatchConflict { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
        assert_eq!(s.load().await.expect("load").map(|r| r.batch_id), Some(10));
        s.store(&at(11, 900), &Fence::None).await.expect("forward");
        assert_eq!(
            s.load().await.expect("load").map(|r| r.position),
            Some(pos(900))
        );
    }

    #[tokio::test]
    async fn concurrent_writers_only_the_fence_holder_wins() {
        let etcd = etcd().await;
        let s = Arc::new(store(&etcd, "race").await);
        let mut client = etcd.client().await.expect("client");
        let stale = take_leadership(&mut client, s.keys(), "node-a").await;
        client
            .delete(s.keys().leader(), None)
            .await
            .expect("delete");
        let holder = take_leadership(&mut client, s.keys(), "node-b").await;

        // Interleave writes of both nodes; the stale one writes higher batch
        // ids, so only the fence (not monotonicity) can stop it.
        let mut tasks = Vec::new();
        for i in 0..10u64 {
            for (fence, node, batch) in [(&stale, "node-a", 1000 + i), (&holder, "node-b", i + 1)] {
                let (s, fence) = (Arc::clone(&s), fence.clone());
                tasks.push(tokio::spawn(async move {
                    let record = StoredPosition::new(pos(batch), batch, node, &fence);
                    (node, s.store(&record, &fence).await)
                }));
            }
        }
        let mut wins = 0;
        for task in tasks {
            let (node, result) = task.await.expect("join");
            match (node, result) {
                ("node-a", Err(e)) => assert!(e.is_fenced_out(), "{e}"),
                ("node-a", Ok(())) => panic!("stale leader wrote a position"),
                // The holder's own writes may race each other; the loser of
                // a race sees its lower batch as backwards, never fenced.
                (_, Ok(())) => wins += 1,
                (_, Err(e)) => assert!(
                    matches!(
                        e,
                        CoordError::Backwards { .. } | CoordError::Contention { .. }
                    ),
                    "{e}"
                ),
            }
        }
        assert!(wins >= 1);
        let stored = s.load().await.expect("load").expect("stored");
        assert_eq!(stored.written_by, "node-b");
        assert_eq!(stored.leader_revision, holder.leader_revision());
        assert!(stored.batch_id <= 10);
    }

    #[tokio::test]
    async fn unavailable_etcd_is_transient_and_recovers() {
        let mut etcd = etcd().await;
        let s = store(&etcd, "outage").await;
        let first = StoredPosition::new(pos(4), 1, "n", &Fence::None);
        s.store(&first, &Fence::None).await.expect("store");

        etcd.stop().await;
        let err = s.load().await.expect_err("etcd is down");
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        let second = StoredPosition::new(pos(8), 2, "n", &Fence::None);
        let err = s
            .store(&second, &Fence::None)
            .await
            .expect_err("etcd is down");
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");

        etcd.restart().await.expect("restart etcd");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match s.store(&second, &Fence::None).await {
                Ok(()) => break,
                Err(e) if e.class().is_transient() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("store did not recover: {e}"),
            }
        }
        assert_eq!(s.load().await.expect("load"), Some(second));
    }

    #[tokio::test]
    async fn force_store_supersedes_deposes_the_leader_and_is_audited() {
        let etcd = etcd().await;
        let s = store(&etcd, "force").await;
        let mut client = etcd.client().await.expect("client");

        // On an empty store: batch 0, so resumed batches start at 1.
        let forced = s
            .force_store(pos(4), "alice via sluice positions set")
            .await;
        assert_eq!(forced.expect("force").batch_id, 0);

        let fence = take_leadership(&mut client, s.keys(), "node-a").await;
        let acked = StoredPosition::new(pos(500), 7, "node-a", &fence);
        s.store(&acked, &fence).await.expect("leader writes");

        let forced = s
            .force_store(pos(100), "bob via sluice positions set --force")
            .await
            .expect("force");
        assert_eq!(forced.batch_id, 8);
        assert_eq!(forced.leader_revision, None);
        assert_eq!(s.load().await.expect("load"), Some(forced.clone()));
        // The active leader was deposed: its next acknowledgement cannot
        // overwrite the forced position.
        let late = StoredPosition::new(pos(600), 9, "node-a", &fence);
        let err = s.store(&late, &fence).await.expect_err("fenced");
        assert!(err.is_fenced_out(), "{err}");
        assert_eq!(s.load().await.expect("load"), Some(forced.clone()));

        let history = s.history().await.expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].replaced, None);
        assert_eq!(history[1].replaced, Some(acked));
        assert_eq!(history[1].record, forced);
        assert!(s.force_store(pos(1), "").await.is_err());
    }
}
