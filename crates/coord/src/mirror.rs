//! A node's live copy of the task board, kept by one etcd watch.
//!
//! Every node of a distributed pipeline needs the board after every change
//! to it (a task published, claimed, completed, removed). Reading the whole
//! board on each change cost each node one etcd request per change, about
//! six per batch per node. The mirror instead reads the board once, then
//! applies the watch's events from the next revision on: the copy is the
//! board at the last event's revision, and reading it costs nothing.
//!
//! # Why it is safe to act on a copy
//!
//! Every board write is a transaction that compares what the writer saw
//! (the task's mod revision, the claim key's absence, `load_next`), so a
//! stale copy can only make a write fail, never let a wrong one through;
//! the writer then waits for the next change and tries again.
//!
//! # When the watch breaks
//!
//! A broken watch (etcd restarted, leader change, compaction past the
//! revision we asked for) is re-opened from a fresh read. The copy may lag
//! meanwhile; [`BoardMirror::is_live`] says whether it follows a watch now.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::tasks::{Board, TaskBoard};

/// Pause before re-reading after a failed read or a broken watch.
const RETRY: Duration = Duration::from_millis(250);

/// The copy of one pipeline's task board; dropped, it stops its watch.
pub struct BoardMirror {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    board: Mutex<Option<Board>>,
    /// Whether a watch follows the board now.
    live: Mutex<bool>,
    changed: Arc<Notify>,
}

impl BoardMirror {
    /// Starts mirroring `board`; `changed` fires after every change the
    /// copy took in (and after every fresh read).
    pub fn start(board: &TaskBoard, changed: Arc<Notify>, stop: CancellationToken) -> Self {
        let shared = Arc::new(Shared {
            board: Mutex::new(None),
            live: Mutex::new(false),
            changed,
        });
        let task = tokio::spawn(follow(board.clone(), Arc::clone(&shared), stop));
        BoardMirror { shared, task }
    }

    /// The board as of the last change seen, or `None` before the first
    /// read succeeded.
    pub fn board(&self) -> Option<Board> {
        self.shared
            .board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a watch follows the board now (else the copy may lag).
    pub fn is_live(&self) -> bool {
        *self.shared.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for BoardMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(board: TaskBoard, shared: Arc<Shared>, stop: CancellationToken) {
    let keys = board.keys().clone();
    let root = keys.root().to_string();
    loop {
        if stop.is_cancelled() {
            return;
        }
        set_live(&shared, false);
        let read = tokio::select! {
            () = stop.cancelled() => return,
            r = board.snapshot() => r,
        };
        let fresh = match read {
            Ok(b) => b,
            Err(error) => {
                tracing::debug!(%error, "task board mirror: read failed; retrying");
                if pause(&stop).await {
                    return;
                }
                continue;
            }
        };
        let from = fresh.revision + 1;
        *shared.board.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
        shared.changed.notify_waiters();
        let mut watch = board.client().watch_client();
        let opened = tokio::select! {
            () = stop.cancelled() => return,
            r = watch.watch(
                root.as_str(),
                Some(WatchOptions::new().with_prefix().with_start_revision(from)),
            ) => r,
        };
        let Ok(mut stream) = opened else {
            if pause(&stop).await {
                return;
            }
            continue;
        };
        set_live(&shared, true);
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                m = stream.message() => m,
            };
            let response = match message {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => break,
            };
            if response.canceled() {
                // Compacted past `from`, or cancelled by the server.
                break;
            }
            let mut touched = false;
            {
                let mut guard = shared.board.lock().unwrap_or_else(|e| e.into_inner());
                let Some(b) = guard.as_mut() else {
                    break;
                };
                for event in response.events() {
                    let Some(kv) = event.kv() else {
                        continue;
                    };
                    let key = kv.key_str().unwrap_or_default();
                    if !Board::concerns(&keys, key) {
                        continue;
                    }
                    touched = true;
                    match event.event_type() {
                        EventType::Put => {
                            b.put(&keys, key, kv.value(), kv.mod_revision(), kv.lease());
                        }
                        EventType::Delete => b.delete(&keys, key),
                    }
                    b.revision = b.revision.max(kv.mod_revision());
                }
                if let Some(h) = response.header() {
                    b.revision = b.revision.max(h.revision());
                }
            }
            if touched {
                shared.changed.notify_waiters();
            }
        }
        if pause(&stop).await {
            return;
        }
    }
}

fn set_live(shared: &Shared, live: bool) {
    *shared.live.lock().unwrap_or_else(|e| e.into_inner()) = live;
}

/// Waits [`RETRY`]; `true` when stopped meanwhile.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(RETRY) => false,
    }
}
