//! The pipeline's acknowledgement point: the latest acknowledged position in
//! memory, flushed to a [`PositionStore`] on an interval and on shutdown.
//!
//! # Invariants
//!
//! * **In order, without gaps.** [`PositionCache::ack`] accepts exactly the
//!   next batch id (`last + 1`) and refuses anything else. Load acknowledges
//!   a batch only after committing it and every batch before it, so a
//!   skipped id means a batch whose changes may not be on the target; the
//!   position must never pass it (invariant 1, no loss). Every batch is
//!   acknowledged, including empty ones.
//! * **Flushes go forward.** Flushes are serialised, and each writes the
//!   latest acknowledged batch, so the stored batch id only grows; the store
//!   checks this again atomically with the write.
//! * **Write only when changed.** A tick with nothing newly acknowledged
//!   does not touch the store (one etcd write per second per pipeline at
//!   most, none when idle).
//! * **Definite errors latch.** After a definite flush error — above all
//!   [`CoordError::FencedOut`] — the cache never calls the store again:
//!   every later flush returns the same error, `ack` fails with
//!   [`AckError::Stopped`], and the background flusher ends with it, so the
//!   runtime stops the pipeline. A fenced-out node therefore never writes a
//!   position again in that term. Transient errors are recorded in
//!   [`FlushStatus::last_error`] and retried on the next tick; until then the
//!   stored position just lags (replay on restart is safe: Load is
//!   idempotent).
//! * One cache serves one leadership term: its fence is fixed at creation.
//!   A node that becomes leader again builds a new cache from a fresh
//!   [`PositionStore::load`].
//!
//! The final flush on shutdown is a single attempt; if it fails the error is
//! returned and the next run replays from the last stored position.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use sluice_core::{Classify, ErrorClass, Position};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::error::CoordError;
use crate::record::{Fence, StoredPosition};
use crate::store::PositionStore;

/// How often acknowledged positions are written when nothing says otherwise.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Who writes, under which fence, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Node id recorded as `written_by`.
    pub written_by: String,
    /// Guard of every write made by this cache (fixed for its lifetime).
    pub fence: Fence,
    /// Interval of the background flusher.
    pub interval: Duration,
}

impl CacheConfig {
    pub fn new(written_by: impl Into<String>, fence: Fence) -> Self {
        CacheConfig {
            written_by: written_by.into(),
            fence,
            interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

/// An acknowledged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub batch_id: u64,
    /// Where replication resumes after this batch (its end position).
    pub position: Position,
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// A pipeline bug: acknowledging out of order could skip an uncommitted
    /// batch.
    #[error("batch {got} acknowledged out of order: the next batch to acknowledge is {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("batch id {0} is the last representable one; refusing to acknowledge it")]
    BatchIdExhausted(u64),
    /// A definite flush error latched; positions can no longer be stored.
    #[error("positions can no longer be stored: {0}")]
    Stopped(Arc<CoordError>),
}

impl Classify for AckError {
    fn class(&self) -> ErrorClass {
        match self {
            AckError::Stopped(e) => e.class(),
            AckError::OutOfOrder { .. } | AckError::BatchIdExhausted(_) => ErrorClass::Definite,
        }
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Nothing new was acknowledged since the last successful flush.
    Unchanged,
    /// The record of this batch was stored.
    Flushed { batch_id: u64 },
}

/// The most recent failed flush.
#[derive(Debug, Clone)]
pub struct FlushFailure {
    pub error: Arc<CoordError>,
    pub at: SystemTime,
    /// Failed flushes in a row, this one included.
    pub consecutive: u32,
}

/// A snapshot of the cache for status reporting.
#[derive(Debug, Clone, Default)]
pub struct FlushStatus {
    /// Last acknowledged batch (including the one resumed from).
    pub acknowledged: Option<u64>,
    /// Last batch known to be in the store.
    pub flushed: Option<u64>,
    pub last_flush_at: Option<SystemTime>,
    /// Set while flushes are failing; cleared by a successful flush.
    pub last_error: Option<FlushFailure>,
    /// A definite error latched: the cache will not write again.
    pub stopped: bool,
    /// Background flusher ticks so far (each checks whether to write).
    pub ticks: u64,
}

/// The shared acknowledgement point; cheap to clone (all clones share it).
pub struct PositionCache<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for PositionCache<S> {
    fn clone(&self) -> Self {
        PositionCache {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<S> {
    store: S,
    config: CacheConfig,
    state: Mutex<State>,
    /// Serialises flushes so an older snapshot can never be written after a
    /// newer one (which the store would refuse as backwards).
    flush_lock: tokio::sync::Mutex<()>,
}

struct State {
    latest: Option<Acked>,
    next_batch_id: u64,
    latched: Option<Arc<CoordError>>,
    status: FlushStatus,
}

impl<S: PositionStore> PositionCache<S> {
    /// A cache resuming after `resumed` (what `store.load()` returned): the
    /// next acknowledgement must be `resumed.batch_id + 1`, or
    /// [`crate::FIRST_BATCH_ID`] when nothing was stored.
    pub fn new(store: S, resumed: Option<&StoredPosition>, config: CacheConfig) -> Self {
        let status = FlushStatus {
            acknowledged: resumed.map(|r| r.batch_id),
            flushed: resumed.map(|r| r.batch_id),
            ..FlushStatus::default()
        };
        PositionCache {
            shared: Arc::new(Shared {
                store,
                config,
                state: Mutex::new(State {
                    latest: resumed.map(|r| Acked {
                        batch_id: r.batch_id,
                        position: r.position.clone(),
                    }),
                    next_batch_id: StoredPosition::next_batch_id(resumed),
                    latched: None,
                    status,
                }),
                flush_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Acknowledges batch `batch_id`, which Load has committed, ending at
    /// `position`. Must be exactly [`Self::next_batch_id`].
    pub fn ack(&self, batch_id: u64, position: Position) -> Result<(), AckError> {
        let mut state = self.state();
        if let Some(error) = &state.latched {
            return Err(AckError::Stopped(Arc::clone(error)));
        }
        if batch_id != state.next_batch_id {
            return Err(AckError::OutOfOrder {
                expected: state.next_batch_id,
                got: batch_id,
            });
        }
        let next = batch_id
            .checked_add(1)
            .ok_or(AckError::BatchIdExhausted(batch_id))?;
        state.next_batch_id = next;
        state.latest = Some(Acked { batch_id, position });
        state.status.acknowledged = Some(batch_id);
        Ok(())
    }

    /// The batch id the next [`Self::ack`] must carry.
    pub fn next_batch_id(&self) -> u64 {
        self.state().next_batch_id
    }

    /// The latest acknowledged batch (flushed or not).
    pub fn acknowledged(&self) -> Option<Acked> {
        self.state().latest.clone()
    }

    pub fn status(&self) -> FlushStatus {
        self.state().status.clone()
    }

    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Writes the latest acknowledged position now, if it changed since the
    /// last successful flush. Used by the flusher and for graceful shutdown.
    pub async fn flush_now(&self) -> Result<FlushOutcome, Arc<CoordError>> {
        let _one_flush_at_a_time = self.shared.flush_lock.lock().await;
        let latest = {
            let state = self.state();
            if let Some(error) = &state.latched {
                return Err(Arc::clone(error));
            }
            match &state.latest {
                Some(latest) if Some(latest.batch_id) != state.status.flushed => latest.clone(),
                _ => return Ok(FlushOutcome::Unchanged),
            }
        };
        let config = &self.shared.config;
        let record = StoredPosition::new(
            latest.position,
            latest.batch_id,
            config.written_by.clone(),
            &config.fence,
        );
        let result = self.shared.store.store(&record, &config.fence).await;
        let mut state = self.state();
        match result {
            Ok(()) => {
                state.status.flushed = Some(record.batch_id);
                state.status.last_flush_at = Some(SystemTime::now());
                state.status.last_error = None;
                Ok(FlushOutcome::Flushed {
                    batch_id: record.batch_id,
                })
            }
            Err(error) => {
                let error = Arc::new(error);
                let consecutive = state
                    .status
                    .last_error
                    .as_ref()
                    .map_or(1, |f| f.consecutive.saturating_add(1));
                state.status.last_error = Some(FlushFailure {
                    error: Arc::clone(&error),
                    at: SystemTime::now(),
                    consecutive,
                });
                if error.class().is_transient() {
                    tracing::warn!(%error, consecutive, "position flush failed; retrying on the next tick");
                } else {
                    tracing::error!(%error, "position flush failed definitely; no further position writes");
                    state.latched = Some(Arc::clone(&error));
                    state.status.stopped = true;
                }
                Err(error)
            }
        }
    }

    /// Starts the background flusher: every `interval` it flushes if the
    /// position changed; when `shutdown` completes it flushes once more and
    /// ends. It also ends early, with the error, on a definite flush error;
    /// transient errors only show in [`Self::status`].
    ///
    /// `shutdown` is any future: `async move { let _ = rx.changed().await; }`
    /// for a `tokio::sync::watch`, or a cancellation token's `cancelled()`.
    pub fn spawn_flusher(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<Result<(), Arc<CoordError>>>
    where
        S: 'static,
    {
        let cache = self.clone();
        let interval = self.shared.config.interval;
        tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            // After a slow flush (etcd timing out), wait a full interval
            // rather than firing a burst of catch-up ticks.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    _ = ticker.tick() => {
                        cache.state().status.ticks += 1;
                        match cache.flush_now().await {
                            Err(error) if !error.class().is_transient() => return Err(error),
                            _ => {}
                        }
                    }
                }
            }
            cache.flush_now().await.map(|_| ())
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few plain assignments; a panic cannot
        // leave the state half-updated, so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
    use sluice_testkit::Etcd;

    use super::*;
    use crate::etcd::{EtcdOptions, EtcdPositionStore};
    use crate::keys::KeyLayout;
    use crate::local::LocalPositionStore;

    const DEADLINE: Duration = Duration::from_secs(20);

    /// A real local store that counts writes.
    struct Counting {
        inner: LocalPositionStore,
        stores: AtomicU64,
    }

    impl PositionStore for Counting {
        async fn load(&self) -> Result<Option<StoredPosition>, CoordError> {
            self.inner.load().await
        }
        async fn store(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
            self.stores.fetch_add(1, Ordering::SeqCst);
            self.inner.store(record, fence).await
        }
        async fn force_store(
            &self,
            position: Position,
            changed_by: &str,
        ) -> Result<StoredPosition, CoordError> {
            self.inner.force_store(position, changed_by).await
        }
        fn location(&self) -> String {
            self.inner.location()
        }
    }

    fn pos(offset: u64) -> Position {
        Position::new("mysql-bin.000002", offset)
    }

    fn config(interval: Duration) -> CacheConfig {
        CacheConfig {
            interval,
            ..CacheConfig::new("node-a", Fence::None)
        }
    }

    async fn poll<T, F: Future<Output = Option<T>>>(what: &str, check: impl FnMut() -> F) -> T {
        sluice_testkit::wait_until_async(what, DEADLINE, Duration::from_millis(10), check)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn counting(dir: &std::path::Path) -> Arc<Counting> {
        Arc::new(Counting {
            inner: LocalPositionStore::open(dir).expect("open"),
            stores: AtomicU64::new(0),
        })
    }

    #[tokio::test]
    async fn acks_must_be_in_order_without_gaps() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = PositionCache::new(counting(root.path()), None, config(DEFAULT_FLUSH_INTERVAL));
        assert_eq!(cache.next_batch_id(), crate::FIRST_BATCH_ID);
        let err = cache.ack(2, pos(2)).expect_err("gap");
        assert!(
            matches!(
                err,
                AckError::OutOfOrder {
                    expected: 1,
                    got: 2
                }
            ),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Definite);
        cache.ack(1, pos(1)).expect("in order");
        assert!(matches!(
            cache.ack(1, pos(1)),
            Err(AckError::OutOfOrder {
                expected: 2,
                got: 1
            })
        ));
        assert!(cache.ack(0, pos(0)).is_err());
        cache.ack(2, pos(2)).expect("in order");
        assert_eq!(
            cache.acknowledged(),
            Some(Acked {
                batch_id: 2,
                position: pos(2)
            })
        );
        assert_eq!(cache.status().acknowledged, Some(2));
        assert_eq!(cache.status().flushed, None);
    }

    #[tokio::test]
    async fn resumes_after_the_stored_record_and_writes_only_when_changed() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = counting(root.path());
        let resumed = StoredPosition::new(pos(700), 7, "node-a", &Fence::None);
        store.store(&resumed, &Fence::None).await.expect("seed");
        let cache = PositionCache::new(
            Arc::clone(&store),
            Some(&resumed),
            config(DEFAULT_FLUSH_INTERVAL),
        );
        assert_eq!(cache.next_batch_id(), 8);
        assert_eq!(
            cache.flush_now().await.expect("flush"),
            FlushOutcome::Unchanged
        );
        cache.ack(8, pos(800)).expect("ack");
        assert_eq!(
            cache.flush_now().await.expect("flush"),
            FlushOutcome::Flushed { batch_id: 8 }
        );
        assert_eq!(
            cache.flush_now().await.expect("flush"),
            FlushOutcome::Unchanged
        );
        assert_eq!(store.stores.load(Ordering::SeqCst), 2);
        let stored = store.load().await.expect("load").expect("stored");
        assert_eq!((stored.batch_id, stored.position), (8, pos(800)));
        assert!(cache.status().last_flush_at.is_some());
    }

    #[tokio::test]
    async fn flusher_writes_on_its_interval_and_on_shutdown() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = counting(root.path());
        let cache = PositionCache::new(Arc::clone(&store), None, config(Duration::from_millis(20)));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let flusher = cache.spawn_flusher(async move {
            let _ = stopped.changed().await;
        });

        cache.ack(1, pos(10)).expect("ack");
        cache.ack(2, pos(20)).expect("ack");
        poll("batch 2 flushed", || {
            let status = cache.status();
            async move { (status.flushed == Some(2)).then_some(()) }
        })
        .await;
        let stored = store.load().await.expect("load").expect("stored");
        assert_eq!((stored.batch_id, stored.position), (2, pos(20)));

        // Idle ticks do not write.
        let writes = store.stores.load(Ordering::SeqCst);
        let ticks = cache.status().ticks;
        poll("three more ticks", || {
            let status = cache.status();
            async move { (status.ticks >= ticks + 3).then_some(()) }
        })
        .await;
        assert_eq!(store.stores.load(Ordering::SeqCst), writes);

        // Shutdown flushes what the interval has not yet written.
        cache.ack(3, pos(30)).expect("ack");
        stop.send(true).expect("flusher listening");
        flusher.await.expect("join").expect("final flush");
        let stored = store.load().await.expect("load").expect("stored");
        assert_eq!((stored.batch_id, stored.position), (3, pos(30)));
    }

    #[tokio::test]
    async fn shutdown_before_the_first_tick_still_flushes() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = counting(root.path());
        let cache = PositionCache::new(Arc::clone(&store), None, config(Duration::from_secs(3600)));
        cache.ack(1, pos(10)).expect("ack");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let flusher = cache.spawn_flusher(async move {
            let _ = rx.await;
        });
        tx.send(()).expect("send");
        flusher.await.expect("join").expect("final flush");
        assert_eq!(
            store.load().await.expect("load").map(|r| r.batch_id),
            Some(1)
        );
        assert_eq!(store.stores.load(Ordering::SeqCst), 1);
    }

    async fn take_leadership(client: &mut etcd_client::Client, key: &str) -> Fence {
        let lease = client.lease_grant(30, None).await.expect("lease").id();
        let response = client
            .txn(
                Txn::new()
                    .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
                    .and_then(vec![TxnOp::put(
                        key,
                        "node-a",
                        Some(PutOptions::new().with_lease(lease)),
                    )]),
            )
            .await
            .expect("campaign");
        assert!(response.succeeded());
        let leader = client.get(key, None).await.expect("get");
        Fence::Leader {
            key: key.to_owned(),
            create_revision: leader.kvs()[0].create_revision(),
        }
    }

    #[tokio::test]
    async fn fenced_out_latches_and_stops_the_flusher() {
        let etcd = Etcd::start().await.expect("start etcd");
        let keys = KeyLayout::default().pipeline("cachefence").expect("keys");
        let mut options = EtcdOptions::new([etcd.endpoint()]);
        options.request_timeout = Duration::from_secs(2);
        let store = EtcdPositionStore::connect(&options, keys.clone())
            .await
            .expect("connect");
        let mut client = etcd.client().await.expect("client");
        let fence = take_leadership(&mut client, &keys.leader()).await;
        let cache = PositionCache::new(
            store.clone(),
            None,
            CacheConfig {
                interval: Duration::from_millis(20),
                ..CacheConfig::new("node-a", fence.clone())
            },
        );
        cache.ack(1, pos(10)).expect("ack");
        cache.flush_now().await.expect("leader flushes");

        client
            .delete(keys.leader(), None)
            .await
            .expect("lose leadership");
        cache.ack(2, pos(20)).expect("ack");
        let flusher = cache.spawn_flusher(std::future::pending());
        let error = flusher.await.expect("join").expect_err("fenced");
        assert!(error.is_fenced_out(), "{error}");
        let status = cache.status();
        assert!(status.stopped);
        assert!(status.last_error.is_some_and(|f| f.error.is_fenced_out()));
        assert!(matches!(cache.ack(3, pos(30)), Err(AckError::Stopped(_))));
        assert!(cache.flush_now().await.is_err_and(|e| e.is_fenced_out()));
        // Even a new leader key with the same holder name does not revive it.
        take_leadership(&mut client, &keys.leader()).await;
        assert!(cache.flush_now().await.is_err());
        assert_eq!(
            store.load().await.expect("load").map(|r| r.batch_id),
            Some(1)
        );
    }

    #[tokio::test]
    async fn transient_failures_are_reported_and_retried() {
        let mut etcd = Etcd::start().await.expect("start etcd");
        let keys = KeyLayout::default().pipeline("cacheoutage").expect("keys");
        let mut options = EtcdOptions::new([etcd.endpoint()]);
        options.request_timeout = Duration::from_secs(1);
        let store = EtcdPositionStore::connect(&options, keys)
            .await
            .expect("connect");
        let cache = PositionCache::new(store.clone(), None, config(Duration::from_millis(50)));
        let flusher = cache.spawn_flusher(std::future::pending());

        etcd.stop().await;
        cache.ack(1, pos(10)).expect("ack");
        let failure = poll("a reported flush failure", || {
            let status = cache.status();
            async move { status.last_error }
        })
        .await;
        assert_eq!(
            failure.error.class(),
            ErrorClass::Transient,
            "{}",
            failure.error
        );
        assert!(!cache.status().stopped);
        cache
            .ack(2, pos(20))
            .expect("acks continue while etcd is down");

        etcd.restart().await.expect("restart etcd");
        poll("batch 2 flushed after etcd is back", || {
            let status = cache.status();
            async move { (status.flushed == Some(2) && status.last_error.is_none()).then_some(()) }
        })
        .await;
        assert!(!flusher.is_finished());
        flusher.abort();
        assert_eq!(
            store.load().await.expect("load").map(|r| r.batch_id),
            Some(2)
        );
    }
}
