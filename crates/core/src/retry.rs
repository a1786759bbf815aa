//! The one retry policy of sluice.
//!
//! Every operation that can fail transiently (a target write, an etcd call,
//! a binlog dump connection, a webhook POST) is retried by [`retry`] under a
//! [`RetryPolicy`]; **the error's [`ErrorClass`] alone decides** whether to
//! retry, so the rule "transient: wait and try again; definite: stop with one
//! message" (see [`crate::error`]) lives in one place. An error that cannot
//! be classified must say [`ErrorClass::Definite`] (the classifiers in
//! `sluice-load` and `sluice-binlog` default to it): retrying an unknown
//! failure forever would hide it, while stopping names it (invariant 7,
//! "clear refusal").
//!
//! Backoff doubles from [`Backoff::initial`] up to [`Backoff::max`]. Policies
//! are *bounded* ([`RetryPolicy::max_attempts`]) where a caller above retries
//! again (so retries never nest into minutes of silent waiting), and
//! unbounded where the caller's only sensible answer is to wait for the
//! server (the pipeline waiting out a target that is down); then a `stop`
//! future ends the wait at once on shutdown or loss of leadership.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::error::{Classify, ErrorClass};

/// Exponential backoff: `initial`, `2·initial`, … capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max }
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Attempts, the first included; `None`: until success, a definite
    /// error, or the stop signal.
    pub max_attempts: Option<u32>,
}

impl RetryPolicy {
    /// Retries until success or a definite error.
    pub const fn unbounded(initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            backoff: Backoff::new(initial, max),
            max_attempts: None,
        }
    }

    /// At most `attempts` attempts (at least one).
    pub const fn bounded(attempts: u32, initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            backoff: Backoff::new(initial, max),
            max_attempts: Some(attempts),
        }
    }

    /// What to do after attempt `attempt` (1-based) failed with `class`.
    pub fn decide(&self, attempt: u32, class: ErrorClass) -> Decision {
        if class != ErrorClass::Transient {
            return Decision::GiveUp;
        }
        match self.max_attempts {
            Some(max) if attempt >= max.max(1) => Decision::GiveUp,
            _ => Decision::RetryAfter(self.backoff.delay(attempt)),
        }
    }
}

/// The policy's answer to one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    GiveUp,
}

/// The outcome of [`retry`].
#[derive(Debug)]
pub enum Retried<T, E> {
    Done(T),
    /// A definite error, or the last attempt's transient one.
    Failed(E),
    /// `stop` fired first (shutdown, leadership lost, batch abandoned).
    Stopped,
}

impl<T, E> Retried<T, E> {
    /// `Ok(Some(v))`, `Err(e)`, or `Ok(None)` when stopped.
    pub fn into_result(self) -> Result<Option<T>, E> {
        match self {
            Retried::Done(v) => Ok(Some(v)),
            Retried::Failed(e) => Err(e),
            Retried::Stopped => Ok(None),
        }
    }
}

/// One failed attempt about to be retried, for the caller's log line and
/// counters.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1-based number of the attempt that failed.
    pub number: u32,
    pub wait: Duration,
}

/// Runs `op` under `policy`: retries transient errors after the policy's
/// backoff (calling `on_retry` before each wait), returns the first success
/// or the error that ended it, or [`Retried::Stopped`] as soon as `stop`
/// completes (also while `op` is running: the attempt is dropped).
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    stop: impl Future<Output = ()>,
    mut on_retry: impl FnMut(&E, Attempt),
    mut op: F,
) -> Retried<T, E>
where
    E: Classify,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut stop = pin!(stop);
    let mut attempt = 1u32;
    loop {
        let result = match first(stop.as_mut(), op()).await {
            None => return Retried::Stopped,
            Some(r) => r,
        };
        let error = match result {
            Ok(v) => return Retried::Done(v),
            Err(e) => e,
        };
        let wait = match policy.decide(attempt, error.class()) {
            Decision::GiveUp => return Retried::Failed(error),
            Decision::RetryAfter(wait) => wait,
        };
        on_retry(
            &error,
            Attempt {
                number: attempt,
                wait,
            },
        );
        if first(stop.as_mut(), tokio::time::sleep(wait))
            .await
            .is_none()
        {
            return Retried::Stopped;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// `Some(output of work)`, or `None` when `stop` completes first.
async fn first<W: Future>(
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    work: W,
) -> Option<W::Output> {
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    struct E(ErrorClass);
    impl Classify for E {
        fn class(&self) -> ErrorClass {
            self.0
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(60), Duration::from_secs(1));
        assert_eq!(b.delay(0), Duration::from_millis(100));
    }

    #[test]
    fn the_class_decides() {
        let p = RetryPolicy::bounded(3, MS, MS);
        assert_eq!(p.decide(1, ErrorClass::Definite), Decision::GiveUp);
        assert_eq!(p.decide(1, ErrorClass::Transient), Decision::RetryAfter(MS));
        assert_eq!(p.decide(3, ErrorClass::Transient), Decision::GiveUp);
        let u = RetryPolicy::unbounded(MS, MS);
        assert_eq!(
            u.decide(1_000, ErrorClass::Transient),
            Decision::RetryAfter(MS)
        );
        assert_eq!(u.decide(1, ErrorClass::Definite), Decision::GiveUp);
        // At least one attempt even when configured with zero.
        assert_eq!(
            RetryPolicy::bounded(0, MS, MS).decide(1, ErrorClass::Transient),
            Decision::GiveUp
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_until_success() {
        let calls = Cell::new(0);
        let mut seen = Vec::new();
        let r = retry(
            &RetryPolicy::unbounded(MS, 4 * MS),
            std::future::pending(),
            |_: &E, a| seen.push(a.number),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 4 {
                        Err(E(ErrorClass::Transient))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert!(matches!(r, Retried::Done(4)));
        assert_eq!(seen, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn definite_stops_at_once_and_bounded_gives_up() {
        let calls = Cell::new(0);
        let r: Retried<(), E> = retry(
            &RetryPolicy::unbounded(MS, MS),
            std::future::pending(),
            |_, _| {},
            || {
                calls.set(calls.get() + 1);
                async { Err(E(ErrorClass::Definite)) }
            },
        )
        .await;
        assert!(matches!(r, Retried::Failed(E(ErrorClass::Definite))));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let r: Retried<(), E> = retry(
            &RetryPolicy::bounded(3, MS, MS),
            std::future::pending(),
            |_, _| {},
            || {
                calls.set(calls.get() + 1);
                async { Err(E(ErrorClass::Transient)) }
            },
        )
        .await;
        assert!(matches!(r, Retried::Failed(E(ErrorClass::Transient))));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_wait_and_the_attempt() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async {
            let _ = rx.await;
        };
        let task = async {
            retry(
                &RetryPolicy::unbounded(Duration::from_secs(3600), Duration::from_secs(3600)),
                stop,
                |_: &E, _| {},
                || async { Err::<(), _>(E(ErrorClass::Transient)) },
            )
            .await
        };
        let fire = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(());
        };
        let (r, ()) = tokio::join!(task, fire);
        assert!(matches!(r, Retried::Stopped));
        // A hanging attempt is abandoned too.
        let r: Retried<(), E> = retry(
            &RetryPolicy::unbounded(MS, MS),
            std::future::ready(()),
            |_, _| {},
            std::future::pending,
        )
        .await;
        assert!(matches!(r, Retried::Stopped));
    }
}
