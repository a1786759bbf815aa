//! Channels between stages, bounded in messages *and* bytes.
//!
//! A message count alone does not bound memory (one batch may hold 2,000
//! rows of 1 KiB or of 1 MiB), and a byte bound alone lets millions of tiny
//! messages queue. So each channel is a bounded `mpsc` plus a semaphore of
//! bytes: the sender takes permits for a message's size before sending, and
//! the permits travel with the message and return when the consumer drops
//! it (after it has finished with the data, not when it dequeued it). A
//! message larger than the whole budget takes the whole budget, so it still
//! passes, alone (invariant 5: bounded memory, and no deadlock).

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// A message with the byte permits it holds.
#[derive(Debug)]
pub struct Sized<T> {
    pub item: T,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<T> Sized<T> {
    /// Splits off the item, releasing its bytes now.
    pub fn into_inner(self) -> T {
        self.item
    }
}

/// The sending half.
#[derive(Debug)]
pub struct Sender<T> {
    tx: mpsc::Sender<Sized<T>>,
    bytes: Arc<Semaphore>,
    budget: usize,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver<T> {
    rx: mpsc::Receiver<Sized<T>>,
}

/// The receiver went away: the pipeline is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// A channel of at most `messages` queued messages holding at most
/// `bytes` bytes between them.
pub fn bounded<T>(messages: usize, bytes: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    // Semaphore permits are capped; budgets beyond are not useful anyway.
    let budget = bytes.clamp(1, Semaphore::MAX_PERMITS);
    (
        Sender {
            tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        },
        Receiver { rx },
    )
}

impl<T> Sender<T> {
    /// Waits for room for `size` bytes and one message, then sends.
    pub async fn send(&self, item: T, size: usize) -> Result<(), Closed> {
        let want = u32::try_from(size.clamp(1, self.budget)).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.bytes)
            .acquire_many_owned(want)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Sized {
                item,
                _permit: Some(permit),
            })
            .await
            .map_err(|_| Closed)
    }

    /// Bytes currently held by queued or in-use messages.
    pub fn bytes_in_use(&self) -> usize {
        self.budget - self.bytes.available_permits()
    }

    /// A handle that reads the byte use without keeping the channel open.
    pub fn probe(&self) -> Probe {
        Probe {
            bytes: Arc::clone(&self.bytes),
            budget: self.budget,
        }
    }
}

/// Reads a channel's byte use (queue depth metrics).
#[derive(Debug, Clone)]
pub struct Probe {
    bytes: Arc<Semaphore>,
    budget: usize,
}

impl Probe {
    pub fn bytes_in_use(&self) -> usize {
        self.budget - self.bytes.available_permits()
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<Sized<T>> {
        self.rx.recv().await
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Option<Sized<T>> {
        self.rx.try_recv().ok()
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bytes_bound_the_queue_until_the_consumer_drops_a_message() {
        let (tx, mut rx) = bounded::<u32>(10, 100);
        tx.send(1, 60).await.unwrap();
        // 60 + 60 > 100: the second send waits.
        let second = tokio::time::timeout(Duration::from_millis(50), tx.send(2, 60)).await;
        assert!(second.is_err(), "second send must wait for bytes");
        let first = rx.recv().await.unwrap();
        assert_eq!(tx.bytes_in_use(), 60, "dequeued but not yet dropped");
        drop(first);
        tx.send(2, 60).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().item, 2);
    }

    #[tokio::test]
    async fn an_oversized_message_passes_alone() {
        let (tx, mut rx) = bounded::<u32>(10, 100);
        tx.send(1, 10_000).await.unwrap();
        assert_eq!(tx.bytes_in_use(), 100);
        assert_eq!(rx.recv().await.unwrap().into_inner(), 1);
        assert_eq!(tx.bytes_in_use(), 0);
    }

    #[tokio::test]
    async fn send_fails_once_the_receiver_is_gone() {
        let (tx, rx) = bounded::<u32>(1, 100);
        drop(rx);
        assert_eq!(tx.send(1, 1).await, Err(Closed));
    }
}
