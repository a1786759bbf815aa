//! Operator control: halt instead of exit, resolutions (skip, replace,
//! retry), pause, planned handover and manual source switch — all through
//! records under the pipeline's etcd prefix ([`sluice_coord::control`]), so
//! they work from any node, survive failover and leave an audit trail
//! (ARCHITECTURE.md invariant 8, "Halt, don't flap").
//!
//! # Halt, don't flap
//!
//! A definite error in a term (a value the target refuses, DDL it cannot
//! run, a privilege missing on the source, ...) no longer ends the process.
//! The active node stops its stages as before (the position stays before
//! the failed batch), then writes `control/halt` under its leader fence:
//! the stage, the error, the failed batch (id, the position before it and
//! after it, the position after its last event), the table, the key and —
//! when the server named the row — its key *values*, the statement and the
//! server's own error. It keeps its lease and stays up, running no stage:
//! `/readyz` answers 503 `halted: …`, `/status` and `sluice status` show
//! the error, `load_error` fires once. Every node that becomes leader reads
//! `control/halt` before it starts a term and stays halted too, so a standby
//! never "takes over" by replaying into the same error, and a failover keeps
//! the pipeline halted. Without etcd (`coordination.local`) there is no one
//! to hand a halt to: `sluice run` exits 1 as before.
//!
//! # Resolving a halt
//!
//! Operators submit requests (`control/requests/{id}`, under the CLI's
//! lease, see [`sluice_coord::control`]); the active node's [`desk`] checks
//! each against the state and acts in one fenced etcd transaction that also
//! records the outcome and, for resolutions, a history entry with who and
//! when:
//!
//! * **retry** clears the halt; the next term replays the failed batch from
//!   the position before it (Load is idempotent).
//! * **skip** clears the halt and records a [`Skip`](sluice_coord::Skip) in
//!   `control/resolution`. The next term replays the halted range (from the
//!   position before the failed batch through the position after its last
//!   event) *isolated*: Extract cuts a batch at every transaction end in the
//!   range and exactly at its end ([`crate::extract::ExtractConfig::isolate`]),
//!   so every replayed batch is one source transaction or a slice of one,
//!   and nothing outside the range shares a batch with it. Load's
//!   [`resolve::Resolver`] then drops, in the batches inside the range:
//!   `change` — the changes of the failing row (table and key values, from
//!   before or after image; the whole DDL statement for a DDL batch);
//!   `batch` — everything; `transaction` — every transaction that changes
//!   the failing row, including its slices in later batches when it was
//!   split. The dropped changes are written into the skip's history entry,
//!   with their row images, *before* the batch is applied (so a crash cannot
//!   lose the record); once Load acknowledged past the range (and the
//!   position is flushed) the resolution is deleted and its history entries
//!   marked done. A new definite error inside the range halts again while
//!   the earlier skips stay in force.
//! * **replace** runs the operator's statements on the target first —
//!   through `sluice-load`, under the term fence, exactly once
//!   ([`sluice_load::Loader::apply_replacement`]) — and refuses if the
//!   target refuses them (the pipeline stays halted, nothing changed);
//!   then it is a `change` skip of the failing row, recorded as `replace`
//!   with the statements.
//!
//! Skip and replace need the failed batch (a halt of Select, say, has none:
//! fix the cause and retry), the in-process Load (not distributed stages)
//! and, except for `batch` and DDL, a failing row the server named exactly.
//!
//! # Pause
//!
//! `control/pause` is written by the CLI directly (state, not a request: it
//! holds while no node runs and across failovers). Every node follows it
//! through its [`Control`] watcher; [`Gate`] holds every batch before it is
//! applied while paused (Select and Extract back up through the bounded
//! channels and keep their connections), and the active node acknowledges
//! the pause in the record once no batch is being applied any more — after
//! that, no row reaches the target until `resume` deletes the record.
//! `/readyz` answers 503 `paused` on every node. A long pause under load
//! may outlast the source's `net_write_timeout` (Select no longer reads
//! the dump): the source closes it, and after `resume` Select reconnects
//! from the last whole transaction like after any transient error — no
//! keep-alive is needed, and reading on while paused would need unbounded
//! buffers.
//!
//! # Handover and source switch
//!
//! `handover` drains the active node like a shutdown (Select stops, batches
//! in flight finish, the position is flushed), then hands the leader key to
//! the named node ([`sluice_coord::Leadership::hand_over`]), which campaigns
//! at once while the others wait `standby_delay`. `source switch` asks the
//! running Select to move to another entry of `source.urls`: it waits until
//! that server has every transaction Select has read (its GTID set covers
//! Select's), then continues there by GTID ([`switch`]); the choice is kept
//! in `control/source`, so a new leader starts on the same server.

pub mod desk;
pub mod halt;
pub mod resolve;
pub mod switch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_coord::{ControlState, ControlStore, CoordError, PipelineKeys};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::status::NodeStatus;

pub use halt::FailedSlot;

/// How often the control records are re-read without a watch event (a
/// safety net; the watch makes changes visible within milliseconds).
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// A node's view of its pipeline's control records, kept current by an
/// etcd watch for the life of the process (leader or not). Cheap to clone.
#[derive(Clone)]
pub struct Control {
    store: ControlStore,
    state: Arc<watch::Sender<ControlState>>,
    gate: Gate,
    stop: CancellationToken,
}

impl Control {
    /// Reads the records once (waiting out transient etcd trouble until
    /// `shutdown`), then follows them until [`Control::stop`]. Every
    /// change is reported to `status` (halted, paused and their gauges).
    pub async fn start(
        client: etcd_client::Client,
        keys: PipelineKeys,
        request_timeout: Duration,
        status: NodeStatus,
    ) -> Control {
        let store = ControlStore::new(client, keys, request_timeout);
        let (tx, rx) = watch::channel(ControlState::default());
        let state = Arc::new(tx);
        let control = Control {
            store: store.clone(),
            state: Arc::clone(&state),
            gate: Gate::new(Some(rx)),
            stop: CancellationToken::new(),
        };
        let notify = Arc::new(Notify::new());
        let watcher = store.spawn_watcher(Arc::clone(&notify), control.stop.clone());
        let stop = control.stop.clone();
        tokio::spawn(async move {
            let mut last_error: Option<String> = None;
            loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match store.read().await {
                    Ok(fresh) => {
                        last_error = None;
                        publish(&state, &status, fresh);
                    }
                    Err(error) => {
                        let text = error.to_string();
                        if last_error.as_deref() != Some(text.as_str()) {
                            tracing::warn!(%error, "reading the control records failed; keeping the last state");
                        }
                        last_error = Some(text);
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = &mut notified => {}
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                }
            }
            watcher.abort();
        });
        control
    }

    pub fn store(&self) -> &ControlStore {
        &self.store
    }

    /// The records as last seen.
    pub fn current(&self) -> ControlState {
        self.state.borrow().clone()
    }

    /// A receiver of every change.
    pub fn subscribe(&self) -> watch::Receiver<ControlState> {
        self.state.subscribe()
    }

    /// Reads the records now (an authoritative read, not the watch's
    /// view), publishes and returns them.
    pub async fn refresh(&self, status: &NodeStatus) -> Result<ControlState, CoordError> {
        let fresh = self.store.read().await?;
        publish(&self.state, status, fresh.clone());
        Ok(fresh)
    }

    /// The pause gate every batch of this node passes.
    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Publishes `fresh` if it differs (by revision-independent content) and
/// tells `status`.
fn publish(state: &watch::Sender<ControlState>, status: &NodeStatus, fresh: ControlState) {
    status.control_state(
        fresh.halt.as_ref().map(|h| &h.value),
        fresh.pause.as_ref().map(|p| &p.value),
    );
    state.send_if_modified(|current| {
        let mut a = current.clone();
        a.revision = fresh.revision;
        if a == fresh {
            current.revision = fresh.revision;
            false
        } else {
            *current = fresh;
            true
        }
    });
}

/// Holds batches while the pipeline is paused, and counts those being
/// applied (so the active node knows when a pause has taken effect).
#[derive(Clone)]
pub struct Gate {
    state: Option<watch::Receiver<ControlState>>,
    busy: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("busy", &self.busy.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Default for Gate {
    /// A gate that never holds (no coordination store, tests).
    fn default() -> Self {
        Gate::new(None)
    }
}

/// A batch being applied; dropping it ends that.
pub struct Passage {
    gate: Gate,
}

impl Drop for Passage {
    fn drop(&mut self) {
        self.gate.busy.fetch_sub(1, Ordering::SeqCst);
        self.gate.idle.notify_waiters();
    }
}

impl Gate {
    fn new(state: Option<watch::Receiver<ControlState>>) -> Self {
        Gate {
            state,
            busy: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.borrow().pause.is_some())
    }

    /// Waits until the pipeline is not paused and counts the caller as
    /// applying a batch until the [`Passage`] is dropped; `None` when
    /// `abandon` fired first.
    pub async fn enter(&self, abandon: &CancellationToken) -> Option<Passage> {
        let mut logged = false;
        loop {
            // Count first, then look: a pause acknowledged after it saw
            // `busy == 0` can never be passed (see `wait_idle`).
            self.busy.fetch_add(1, Ordering::SeqCst);
            let passage = Passage { gate: self.clone() };
            if !self.is_paused() {
                return Some(passage);
            }
            drop(passage);
            if !logged {
                tracing::info!("paused: holding batches until `sluice resume`");
                logged = true;
            }
            let Some(state) = &self.state else {
                continue;
            };
            let mut state = state.clone();
            let closed = tokio::select! {
                () = abandon.cancelled() => return None,
                r = state.wait_for(|s| s.pause.is_none()) => r.is_err(),
            };
            if closed {
                // The watcher is gone: the process is stopping.
                abandon.cancelled().await;
                return None;
            }
            tracing::info!("resumed: applying batches again");
        }
    }

    /// Waits until no batch is being applied.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Who is acting: `user@host` (`$USER`, else `operator`).
pub fn operator() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".into());
    format!("{user}@{}", sluice_core::time::host_name())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_coord::{PauseRecord, Versioned};

    #[tokio::test]
    async fn gate_holds_while_paused_and_reports_idle() {
        let (tx, rx) = watch::channel(ControlState::default());
        let gate = Gate::new(Some(rx));
        let never = CancellationToken::new();
        let passage = gate.enter(&never).await.expect("open");
        // A batch in progress: not idle.
        let idle = tokio::time::timeout(Duration::from_millis(50), gate.wait_idle()).await;
        assert!(idle.is_err());
        drop(passage);
        gate.wait_idle().await;

        tx.send_modify(|s| {
            s.pause = Some(Versioned {
                value: PauseRecord {
                    operator: "t".into(),
                    paused_at_unix_ms: 0,
                    acknowledged: None,
                },
                mod_revision: 1,
            })
        });
        assert!(gate.is_paused());
        let held = tokio::spawn({
            let gate = gate.clone();
            let never = never.clone();
            async move { gate.enter(&never).await.is_some() }
        });
        // Held: the batch does not pass while paused.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished());
        gate.wait_idle().await;
        tx.send_modify(|s| s.pause = None);
        assert!(held.await.expect("join"));

        // Abandoning releases a held batch.
        tx.send_modify(|s| {
            s.pause = Some(Versioned {
                value: PauseRecord {
                    operator: "t".into(),
                    paused_at_unix_ms: 0,
                    acknowledged: None,
                },
                mod_revision: 2,
            })
        });
        let abandon = CancellationToken::new();
        abandon.cancel();
        assert!(gate.enter(&abandon).await.is_none());
        assert!(Gate::default().enter(&never).await.is_some());
        assert!(operator().contains('@'));
    }
}
